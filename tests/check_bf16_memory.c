/*
 * check_bf16_memory.c: under train.precision = bf16 the fp32 linear
 * weights are given back (models/clip_precision.c,
 * clip_model_linears_to_bf16), and training does not miss them:
 *
 *   - the bytes of fp32 linear weights held drop from all of them to 0, the
 *     resident set drops by about as much (measured in /proc/self/statm),
 *     and every other tensor of the block is untouched;
 *   - a reader of a released weight aborts (the fp32 forward without the
 *     copies, clip_model_tensor, the savers, clip_site_weight), in a child;
 *   - training steps (AdamW) with the fp32 weights released give the same
 *     losses and parameters bit for bit as the same steps with them kept
 *     resident (clip_model_linears_to_bf16(m, true): what the bf16 step held
 *     before they were released), on the factored path, the merged path
 *     (LoRA, unmerged each step) and RandLoRA's kept-merged path;
 *   - the merged and the factored bf16 step agree within twice the bf16
 *     bound of check_clip_bf16.c (each is within it of the fp32 step);
 *   - full fine-tuning in bf16 with the fp32 weights released trains (the
 *     loss falls over AdamW steps) on the merged path;
 *   - DINOv2 (the same model struct) releases its linears too, its step
 *     unchanged bit for bit.
 * Each test prints why it skips on a CPU without a fast bf16 GEMM.
 */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/bf16.h"
#include "core/gemm_bf16.h"
#include "core/rng.h"
#include "core/status.h"
#include "formats/safetensors.h"
#include "models/clip.h"
#include "models/dinov2.h"
#include "models/optim.h"
#include "clip_harness.h"
#include "suites.h"
#include "test_proc.h"
#include "test_util.h"

enum { MEM_L = 4 };

/* clip-tiny's linear weights: 4 layers of each tower, q, k, v, out (128 x
 * 128) and fc1, fc2 (512 x 128) */
#define TINY_LINEAR_FLOATS ((size_t)2 * MEM_L * (4 * 128 * 128 + 2 * 128 * 512))

/* clip_harness.h's step case (clip-tiny, `method` on every linear of both
 * towers, 4 images, 4 prompts) and an AdamW */
struct mem_case {
    struct step_case c;
    struct adamw opt;
};

/* the step case moved by N(0, noise), an AdamW at lr; the precision is
 * left to the caller */
static void mem_case_init(struct mem_case *s, const char *method, size_t r_, float noise,
                          double lr)
{
    struct adamw_cfg oc = ADAMW_CFG_DEFAULT;

    step_case_init_method(&s->c, method, r_, noise);
    oc.lr = lr;
    ck_assert_int_eq(adamw_init(&s->opt, &oc, s->c.ca.n_params), RL_OK);
}

static void mem_case_free(struct mem_case *s)
{
    adamw_free(&s->opt);
    step_case_free(&s->c);
}

static const struct clip_step_size mem_step = {
    .images = STEP_B, .texts = STEP_B, .text_tokens = STEP_T, .vision_micro = 1, .text_micro = 1,
};

/* `steps` training steps (forward, backward, AdamW) on ca.path_mode; each
 * step's loss into losses; the last step's gradients stay in ca.grads */
static void train(struct mem_case *s, float *losses, int steps)
{
    for (int k = 0; k < steps; k++) {
        clip_adapters_zero_grad(&s->c.ca);
        clip_adapters_begin_step(&s->c.ca, &s->c.m, &mem_step);
        losses[k] = pipe_backward(&s->c.p, NULL, NULL);
        clip_adapters_end_backward(&s->c.ca, &s->c.m);
        adamw_step(&s->opt, s->c.ca.params, s->c.ca.grads);
    }
    clip_adapters_end_step(&s->c.ca, &s->c.m);
}

/* resident bytes of this process (/proc/self/statm) */
static size_t rss_bytes(void)
{
    unsigned long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");

    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fscanf(f, "%lu %lu", &size, &resident), 2);
    fclose(f);
    return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

#define SKIP_WITHOUT_BF16(what)                                                        \
    do {                                                                               \
        if (gemm_bf16_check() != RL_OK) {                                              \
            printf("check_bf16_memory: %s skipped: %s\n", what, rl_error_msg());       \
            return;                                                                    \
        }                                                                              \
    } while (0)

/* held bytes: all 4 x TINY_LINEAR_FLOATS after the load and after a
 * conversion that keeps them; 0 after the release, which drops the
 * resident set by at least 80% of them (the ranges' edge pages stay: they
 * share pages with biases); every tensor that is not a released weight is
 * bit for bit what it was, and the views of the released ones are NULL */
START_TEST(test_release_drops_fp32_linears)
{
    struct clip_model m;
    float *before;
    size_t rss0, rss1, bytes = TINY_LINEAR_FLOATS * sizeof(float), untouched = 0;

    SKIP_WITHOUT_BF16("release test");
    ck_assert_int_eq(clip_model_preset(&m, "clip-tiny", 7), RL_OK);
    ck_assert_uint_eq(clip_model_fp32_linear_bytes(&m), bytes);
    before = test_copy(m.params, m.n_params);
    ck_assert_int_eq(clip_model_linears_to_bf16(&m, true), RL_OK);
    ck_assert_uint_eq(m.n_w_bf16, TINY_LINEAR_FLOATS);
    ck_assert_uint_eq(clip_model_fp32_linear_bytes(&m), bytes);
    rss0 = rss_bytes();
    clip_model_release_fp32_linears(&m);
    rss1 = rss_bytes();
    printf("check_bf16_memory: released %zu bytes of fp32 linears: resident set %zu -> %zu "
           "bytes (-%zd)\n", bytes, rss0, rss1, (ssize_t)(rss0 - rss1));
    ck_assert_uint_eq(clip_model_fp32_linear_bytes(&m), 0);
    ck_assert_msg(rss0 > rss1 && rss0 - rss1 >= bytes / 10 * 8,
                  "the resident set fell by %zd of %zu bytes", (ssize_t)(rss0 - rss1), bytes);
    ck_assert_ptr_null(m.vlayer[0].q_w);
    ck_assert_ptr_null(m.tlayer[MEM_L - 1].fc2_w);
    ck_assert_ptr_nonnull(m.vlayer[0].q_b);
    for (size_t i = 0; i < m.n_tensors; i++) {
        const struct clip_tensor *t = &m.tensors[i];

        if (clip_model_range_released(&m, t->offset, t->numel))
            continue;
        ck_assert_msg(memcmp(m.params + t->offset, before + t->offset,
                             t->numel * sizeof(float)) == 0, "%s changed", t->name);
        untouched++;
    }
    ck_assert_uint_eq(untouched, m.n_tensors - 2 * MEM_L * 6);
    free(before);
    clip_model_free(&m);
}
END_TEST

/* the children: each touches a released weight through one reader */
static struct clip_model *child_model(void)
{
    static struct clip_model m;

    if (clip_model_preset(&m, "clip-tiny", 7) != RL_OK ||
        clip_model_linears_to_bf16(&m, false) != RL_OK)
        _exit(3);
    return &m;
}

static void read_by_forward(void *arg)
{
    struct clip_model *m = child_model();
    struct clip_vision_run vr;
    float *pixels = calloc(3 * 32 * 32, sizeof(float)), emb[512];

    (void)arg;
    clip_vision_run_init(&vr, m, 1, false);
    clip_vision_forward(&vr, m, NULL, pixels, 1, emb);     /* no copies: fp32 */
    _exit(0);
}

static void read_by_tensor(void *arg)
{
    (void)arg;
    clip_model_tensor(child_model(), "text_model.encoder.layers.1.mlp.fc1.weight");
    _exit(0);
}

static void read_by_save(void *arg)
{
    (void)arg;
    clip_model_save(child_model(), "/nonexistent-dir-bf16/x", ST_F32);
    _exit(0);
}

static void read_by_site_weight(void *arg)
{
    struct clip_site site = { .tower = CLIP_TOWER_VISION, .layer = 2, .lin = BLOCK_LIN_OUT };

    (void)arg;
    clip_site_weight(child_model(), &site);
    _exit(0);
}

/* every reader of a released weight aborts (RL_ASSERT), none reads it;
 * the same children without the release exit 0 (so the abort is the
 * release's) for the tensor lookup */
START_TEST(test_released_readers_abort)
{
    void (*readers[])(void *) = { read_by_forward, read_by_tensor, read_by_save,
                                  read_by_site_weight };
    const char *names[] = { "fp32 forward", "clip_model_tensor", "clip_model_save",
                            "clip_site_weight" };
    struct clip_model m;

    SKIP_WITHOUT_BF16("reader test");
    for (size_t i = 0; i < sizeof(readers) / sizeof(readers[0]); i++) {
        int st = test_in_child(readers[i], NULL);

        ck_assert_msg(st != -1 && WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT,
                      "%s on a released weight: wait status %d, not an abort", names[i], st);
    }
    ck_assert_int_eq(clip_model_preset(&m, "clip-tiny", 7), RL_OK);
    ck_assert_int_eq(clip_model_linears_to_bf16(&m, true), RL_OK);
    ck_assert_ptr_nonnull(clip_model_tensor(&m, "text_model.encoder.layers.1.mlp.fc1.weight"));
    clip_model_free(&m);
}
END_TEST

/* `steps` AdamW steps of method on `mode`, fp32 linears kept (the
 * reference) and released: every loss and every final parameter equal bit
 * for bit; the released run holds no fp32 linear, the kept one all */
static void assert_release_changes_nothing(const char *method, size_t r, float noise,
                                           enum clip_path_mode mode, int steps)
{
    struct mem_case kept, rel;
    float lk[8], lr[8];

    ck_assert_int_le(steps, 8);
    mem_case_init(&kept, method, r, noise, 1e-3);
    mem_case_init(&rel, method, r, noise, 1e-3);
    ck_assert_int_eq(clip_model_linears_to_bf16(&kept.c.m, true), RL_OK);
    ck_assert_int_eq(clip_adapters_set_precision(&kept.c.ca, &kept.c.m, CLIP_PRECISION_BF16), RL_OK);
    ck_assert_int_eq(clip_adapters_set_precision(&rel.c.ca, &rel.c.m, CLIP_PRECISION_BF16), RL_OK);
    ck_assert_uint_eq(clip_model_fp32_linear_bytes(&kept.c.m), TINY_LINEAR_FLOATS * sizeof(float));
    ck_assert_uint_eq(clip_model_fp32_linear_bytes(&rel.c.m), 0);
    kept.c.ca.path_mode = rel.c.ca.path_mode = mode;
    train(&kept, lk, steps);
    train(&rel, lr, steps);
    for (int k = 0; k < steps; k++) {
        ck_assert(isfinite(lr[k]));
        ck_assert_msg(memcmp(&lk[k], &lr[k], sizeof(float)) == 0,
                      "%s step %d: loss %.9g released, %.9g kept", method, k, (double)lr[k],
                      (double)lk[k]);
    }
    ck_assert_msg(memcmp(kept.c.ca.params, rel.c.ca.params, rel.c.ca.n_params * sizeof(float)) == 0,
                  "%s: the trained parameters differ", method);
    printf("check_bf16_memory: %s, %s path, %d steps: losses %.7g .. %.7g, the same bits with "
           "the fp32 linears kept and released\n", method,
           mode == CLIP_PATH_MERGED ? "merged" : "factored", steps, (double)lr[0],
           (double)lr[steps - 1]);
    mem_case_free(&kept);
    mem_case_free(&rel);
}

START_TEST(test_release_bit_identical_factored)
{
    SKIP_WITHOUT_BF16("bit-identity test");
    assert_release_changes_nothing("lora", 8, 0.05f, CLIP_PATH_FACTORED, 3);
}
END_TEST

START_TEST(test_release_bit_identical_merged)
{
    SKIP_WITHOUT_BF16("bit-identity test");
    assert_release_changes_nothing("lora", 8, 0.05f, CLIP_PATH_MERGED, 3);
    /* RandLoRA keeps its sites merged across steps (a re-merge each step) */
    assert_release_changes_nothing("randlora", 4, 0.05f, CLIP_PATH_MERGED, 3);
}
END_TEST

/* one step's loss and gradients of s on `mode` (parameters unchanged) */
static float one_step(struct mem_case *s, enum clip_path_mode mode, float *grads)
{
    float loss;

    s->c.ca.path_mode = mode;
    clip_adapters_zero_grad(&s->c.ca);
    clip_adapters_begin_step(&s->c.ca, &s->c.m, &mem_step);
    ck_assert_uint_eq(s->c.ca.n_merged, mode == CLIP_PATH_MERGED ? s->c.ca.n_sites : 0);
    loss = pipe_backward(&s->c.p, NULL, NULL);
    clip_adapters_end_step(&s->c.ca, &s->c.m);
    memcpy(grads, s->c.ca.grads, s->c.ca.n_params * sizeof(float));
    return loss;
}

/* merged against factored, both bf16 with the fp32 linears released: the
 * loss within 2 x 16 (2u + u^2) and the gradients within 2 x 32 (2u + u^2)
 * relative (check_clip_bf16.c's per-run bounds against fp32, L = 4, twice:
 * each path is within its bound of the same fp32 step); and not equal (the
 * merged path's second terms ran) */
static void assert_paths_agree(const char *method, size_t r, float noise)
{
    const double u = BF16_UNIT_ROUNDOFF, per = 2 * u + u * u;
    struct mem_case s;
    float *gf, *gm, lf, lm;
    double dl, dg;

    mem_case_init(&s, method, r, noise, 1e-3);
    ck_assert_int_eq(clip_adapters_set_precision(&s.c.ca, &s.c.m, CLIP_PRECISION_BF16), RL_OK);
    gf = test_zeros(s.c.ca.n_params);
    gm = test_zeros(s.c.ca.n_params);
    lf = one_step(&s, CLIP_PATH_FACTORED, gf);
    lm = one_step(&s, CLIP_PATH_MERGED, gm);
    dl = fabs((double)lm - lf) / fabs((double)lf);
    dg = test_rel_l2(gm, gf, s.c.ca.n_params);
    printf("check_bf16_memory: %s merged vs factored (bf16, fp32 released): loss rel. diff "
           "%.2e (bound %.2e), grads %.2e (bound %.2e)\n", method, dl, 2 * 16 * per, dg,
           2 * 32 * per);
    ck_assert(isfinite(lf) && isfinite(lm));
    ck_assert_msg(dl <= 2 * 16 * per, "%s: loss rel. diff %.3g", method, dl);
    ck_assert_msg(dg <= 2 * 32 * per, "%s: grads rel. diff %.3g", method, dg);
    ck_assert_msg(dg > 0.0, "%s: the merged step equals the factored one bit for bit", method);
    free(gf);
    free(gm);
    mem_case_free(&s);
}

START_TEST(test_merged_agrees_with_factored)
{
    SKIP_WITHOUT_BF16("path test");
    assert_paths_agree("lora", 8, 0.05f);
    assert_paths_agree("vera", 16, 0.05f);
    /* RandLoRA's parameters moved less: at N(0, 0.05) its full-rank dW is
     * several times W and its gradients are so ill-conditioned that even
     * the factored bf16 step is 25% off the fp32 one (measured; the merged
     * path, whose bf16 input rounding then falls on the large dW too, 105%
     * off the fp32 merged step) */
    assert_paths_agree("randlora", 4, 0.005f);
    assert_paths_agree("full", 0, 0.002f);
}
END_TEST

/* full fine-tuning, bf16, the fp32 linears released, merged path: six
 * AdamW steps on one batch bring the loss down (a step that lost dW, or
 * read zeros for W, would not); the bf16 copies stay the load-time ones */
START_TEST(test_full_trains_released)
{
    struct mem_case s;
    float losses[6];
    uint16_t *load_copy;

    SKIP_WITHOUT_BF16("full fine-tuning test");
    mem_case_init(&s, "full", 0, 0.0f, 1e-3);
    ck_assert_int_eq(clip_adapters_set_precision(&s.c.ca, &s.c.m, CLIP_PRECISION_BF16), RL_OK);
    ck_assert_uint_eq(clip_model_fp32_linear_bytes(&s.c.m), 0);
    load_copy = xmalloc_array(s.c.m.n_w_bf16, sizeof(uint16_t));
    memcpy(load_copy, s.c.m.w_bf16, s.c.m.n_w_bf16 * sizeof(uint16_t));
    s.c.ca.path_mode = CLIP_PATH_MERGED;
    train(&s, losses, 6);
    printf("check_bf16_memory: full, bf16, fp32 released: loss %.6g -> %.6g over 6 steps\n",
           (double)losses[0], (double)losses[5]);
    for (int k = 0; k < 6; k++)
        ck_assert(isfinite(losses[k]));
    ck_assert_msg(losses[5] < 0.9f * losses[0], "loss %.6g -> %.6g", (double)losses[0],
                  (double)losses[5]);
    ck_assert(memcmp(load_copy, s.c.m.w_bf16, s.c.m.n_w_bf16 * sizeof(uint16_t)) == 0);
    free(load_copy);
    mem_case_free(&s);
}
END_TEST

/* one DINOv2 forward + backward (vit-tiny, LoRA on its six linears, 2
 * images): features and adapter gradients into feats, grads */
static void dinov2_step(bool release, float *feats, float *grads, size_t *held)
{
    const size_t B = 2, S = 32;
    struct clip_model m;
    struct clip_adapters ca;
    struct clip_target t;
    struct adapter_cfg acfg;
    struct dinov2_run r;
    struct rng g;
    size_t nt, FD;
    float *pixels, *dfeats;

    ck_assert_int_eq(dinov2_model_preset(&m, "vit-tiny", 3), RL_OK);
    ck_assert_int_eq(clip_targets_parse("vision:all", &t, 1, &nt), RL_OK);
    adapter_cfg_defaults(&acfg, "lora", 4);
    ck_assert_int_eq(clip_adapters_init(&ca, &m, &acfg, &t, 1, B, 0), RL_OK);
    rng_init(&g, 5);
    for (size_t i = 0; i < ca.n_params; i++)
        ca.params[i] += 0.05f * rng_normal(&g);
    if (!release)
        ck_assert_int_eq(clip_model_linears_to_bf16(&m, true), RL_OK);
    ck_assert_int_eq(clip_adapters_set_precision(&ca, &m, CLIP_PRECISION_BF16), RL_OK);
    *held = clip_model_fp32_linear_bytes(&m);
    FD = dinov2_feature_dim(&m, DINOV2_POOL_CLS_MEAN);
    dinov2_run_init(&r, &m, B, true);
    pixels = test_randn(&g, B * 3 * S * S, 1.0f);
    dfeats = test_randn(&g, B * FD, 1.0f);
    ck_assert_int_eq(dinov2_forward(&r, &m, &ca, pixels, B, DINOV2_POOL_CLS_MEAN, feats), RL_OK);
    clip_adapters_zero_grad(&ca);
    dinov2_backward(&r, &m, &ca, dfeats, NULL);
    memcpy(grads, ca.grads, ca.n_params * sizeof(float));
    free(pixels);
    free(dfeats);
    dinov2_run_free(&r);
    clip_adapters_free(&ca);
    clip_model_free(&m);
}

/* DINOv2 takes train.precision = bf16 through the same model struct: its
 * fp32 linears are released too (all of them: 0 bytes held), and its step
 * is bit for bit the one with them kept */
START_TEST(test_dinov2_release)
{
    float feats[2][2 * 2 * 128], *grads[2];
    size_t held[2];

    SKIP_WITHOUT_BF16("DINOv2 test");
    grads[0] = test_zeros(1u << 20);
    grads[1] = test_zeros(1u << 20);
    dinov2_step(false, feats[0], grads[0], &held[0]);
    dinov2_step(true, feats[1], grads[1], &held[1]);
    ck_assert_uint_eq(held[0], (size_t)4 * (4 * 128 * 128 + 2 * 128 * 512) * sizeof(float));
    ck_assert_uint_eq(held[1], 0);
    ck_assert(memcmp(feats[0], feats[1], sizeof(feats[0])) == 0);
    ck_assert(memcmp(grads[0], grads[1], (1u << 20) * sizeof(float)) == 0);
    free(grads[0]);
    free(grads[1]);
}
END_TEST

Suite *suite_bf16_memory(void)
{
    Suite *s = suite_create("bf16_memory");
    TCase *tc = tcase_create("release");

    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, test_release_drops_fp32_linears);
    tcase_add_test(tc, test_released_readers_abort);
    tcase_add_test(tc, test_release_bit_identical_factored);
    tcase_add_test(tc, test_release_bit_identical_merged);
    tcase_add_test(tc, test_merged_agrees_with_factored);
    tcase_add_test(tc, test_full_trains_released);
    tcase_add_test(tc, test_dinov2_release);
    suite_add_tcase(s, tc);
    return s;
}
