/*
 * check_clip_bf16.c: train.precision = bf16 on a whole clip-tiny step
 * (models/clip_precision.c, the bf16 products in models/block_linear.c).
 *
 * bf16 is not bit-exact, so the step is compared with the fp32 step on the
 * same weights and inputs within a bound derived from bf16 rounding
 * (step_bound below), and shown to fail that bound when the bf16 weights
 * are wrong. The merged path: the copies stay bf16(W) and each merged site
 * gets a second term bf16(dW) (checked against the fp32 merge), nothing
 * drifts, so a rebase has nothing to restore. The fp32 linears are given
 * back by set_precision (check_bf16_memory.c tests that), so the tests here
 * compare against a copy of the weights taken at init. On a CPU without
 * AVX512-BF16 or AMX: the precision is refused with a clear message and
 * nothing changes (tested), and the step comparison prints why it skips.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/bf16.h"
#include "core/gemm_bf16.h"
#include "core/rng.h"
#include "core/status.h"
#include "experiments/config.h"
#include "models/clip.h"
#include "clip_harness.h"
#include "suites.h"
#include "test_util.h"

/* LoRA r8, parameters moved by N(0, 0.05) */
static void step_case_init(struct step_case *s)
{
    step_case_init_method(s, "lora", 8, 0.05f);
}

/* a model's fp32 weights before set_precision gives its linears back: a
 * copy of the block and where each linear lies in it */
struct init_copy {
    float *w0;
    size_t lin_off[CLIP_NUM_TOWERS][4][BLOCK_LIN_IN_PROJ];
};

static void init_record(struct init_copy *c, const struct clip_model *m)
{
    c->w0 = test_copy(m->params, m->n_params);
    for (int tw = 0; tw < CLIP_NUM_TOWERS; tw++)
        for (size_t l = 0; l < 4; l++)
            for (int i = 0; i < BLOCK_LIN_IN_PROJ; i++)
                c->lin_off[tw][l][i] = (size_t)(block_linear_weight(
                    tw == CLIP_TOWER_VISION ? &m->vlayer[l] : &m->tlayer[l],
                    (enum block_linear)i) - m->params);
}

/* linear i of layer l of tower tw as recorded (fp32) */
static const float *w_init(const struct init_copy *c, int tw, size_t l, int i)
{
    return c->w0 + c->lin_off[tw][l][i];
}

/* one forward + backward on ca.path_mode (factored or merged everywhere);
 * the loss, the adapter gradients into grads */
static float step_run(struct step_case *s, float *grads)
{
    const struct clip_step_size sz = {
        .images = STEP_B, .texts = STEP_B, .text_tokens = STEP_T,
        .vision_micro = 1, .text_micro = 1,
    };
    float loss;

    clip_adapters_zero_grad(&s->ca);
    clip_adapters_begin_step(&s->ca, &s->m, &sz);
    ck_assert_uint_eq(s->ca.n_merged,
                      s->ca.path_mode == CLIP_PATH_MERGED ? s->ca.n_sites : 0);
    loss = pipe_backward(&s->p, NULL, NULL);
    clip_adapters_end_step(&s->ca, &s->m);
    memcpy(grads, s->ca.grads, s->ca.n_params * sizeof(float));
    return loss;
}

/*
 * The bound. One bf16 product perturbs each output element by at most
 * (2u + u^2) sum_k |a_k b_k| (core/gemm_bf16.h), u = 2^-8: a relative
 * perturbation of at most 2u + u^2 of the product taken in absolute values.
 * Taking that as the relative perturbation of each product's output, and
 * the layers as non-expanding (pre-LN residual blocks at this scale), the
 * first-order errors of the products a value passes through add: the loss
 * passes through the forward chain of each tower (q/k/v, out_proj, fc1,
 * fc2: 4 sequential bf16 products per layer, L = 4 layers: 16), an adapter
 * gradient through the forward and the backward chain (32). So
 *     |loss16 - loss32| <= 16 (2u + u^2) |loss32|,
 *     ||g16 - g32|| <= 32 (2u + u^2) ||g32||.
 * A worst case (every rounding aligned): bf16 typically lands far inside it
 * (printed), and a wrong bf16 weight lands far outside (tested).
 */
static double step_bound(size_t products)
{
    const double u = BF16_UNIT_ROUNDOFF;

    return (double)products * (2 * u + u * u);
}

/* a bf16 step (loss16, g16) against the fp32 one: loss within
 * step_bound(16), the n gradients within step_bound(32) in norm (L = 4
 * layers, above), printed with `what`; and not equal (bf16 ran) */
static void assert_step_within_bound(const char *what, float loss16, float loss32,
                                     const float *g16, const float *g32, size_t n)
{
    const size_t L = 4;
    const double dl = fabs((double)loss16 - loss32) / fabs((double)loss32);
    const double dg = test_rel_l2(g16, g32, n);

    printf("check_clip_bf16: %s: loss %.7g (fp32 %.7g): rel. diff %.2e (bound %.2e); "
           "grads rel. diff %.2e (bound %.2e)\n", what, (double)loss16, (double)loss32, dl,
           step_bound(4 * L), dg, step_bound(8 * L));
    ck_assert(isfinite(loss16));
    ck_assert_msg(dl <= step_bound(4 * L), "%s: loss rel. diff %.3g", what, dl);
    ck_assert_msg(dg <= step_bound(8 * L), "%s: grad rel. diff %.3g", what, dg);
    ck_assert_msg(dg > 0.0, "%s: bf16 changed nothing: the bf16 path did not run", what);
}

static size_t assert_copies_are_weights(const struct step_case *s, const struct init_copy *c,
                                        const uint16_t *before);

/* one step of s in fp32, then bf16 copies of every linear of both towers
 * (LoRA trains none of the weights; full trains a delta beside each), the
 * same step in bf16: the copies are the weights' roundings, and the bf16
 * step is within the bound of the fp32 one */
static void compare_steps(struct step_case *s, const char *what)
{
    const size_t L = 4, lin_per_layer = 4 * 128 * 128 + 2 * 128 * 512;
    float *g32 = test_zeros(s->ca.n_params), *g16 = test_zeros(s->ca.n_params);
    float loss32, loss16;

    struct init_copy c;

    loss32 = step_run(s, g32);
    init_record(&c, &s->m);     /* the weights as they are now (a merged step rounds them) */
    ck_assert_int_eq(clip_adapters_set_precision(&s->ca, &s->m, CLIP_PRECISION_BF16), RL_OK);
    ck_assert_uint_eq(s->ca.n_w_bf16, 2 * L * lin_per_layer);
    loss16 = step_run(s, g16);
    assert_copies_are_weights(s, &c, NULL);
    free(c.w0);
    assert_step_within_bound(what, loss16, loss32, g16, g32, s->ca.n_params);
    free(g32);
    free(g16);
}

/* bf16 within the bound of fp32 on loss and every adapter gradient; the
 * copies cover every linear weight of both towers (LoRA trains none of
 * them) */
START_TEST(test_bf16_step_within_bound)
{
    struct step_case s;

    if (gemm_bf16_check() != RL_OK) {
        printf("check_clip_bf16: step comparison skipped: %s\n", rl_error_msg());
        return;
    }
    step_case_init(&s);
    compare_steps(&s, "factored");
    step_case_free(&s);
}
END_TEST

/* the bound can fail: with every bf16 copy zeroed the step is far outside
 * it. (Subtler wiring faults, a copy of the wrong layer, move a random-init
 * model's gradients by only a few percent, inside this worst-case bound:
 * test_bf16_copies_are_the_weights checks the wiring exactly, and
 * check_gemm_bf16.c the linear's products per element.) */
START_TEST(test_bf16_step_bound_detects_wrong_weights)
{
    struct step_case s;
    float *g32, *g16;
    const size_t L = 4;

    if (gemm_bf16_check() != RL_OK) {
        printf("check_clip_bf16: wrong-weight test skipped: %s\n", rl_error_msg());
        return;
    }
    step_case_init(&s);
    g32 = test_zeros(s.ca.n_params);
    g16 = test_zeros(s.ca.n_params);
    step_run(&s, g32);
    ck_assert_int_eq(clip_adapters_set_precision(&s.ca, &s.m, CLIP_PRECISION_BF16), RL_OK);
    memset(s.ca.w_bf16, 0, s.ca.n_w_bf16 * sizeof(bf16));
    step_run(&s, g16);
    ck_assert_msg(test_rel_l2(g16, g32, s.ca.n_params) > step_bound(8 * L),
                  "zeroed bf16 weights stayed within the bound (%.3g)",
                  test_rel_l2(g16, g32, s.ca.n_params));
    free(g32); free(g16);
    step_case_free(&s);
}
END_TEST

/* every layer's every linear points at exactly the bf16 rounding of its
 * own fp32 weight at init (the copies never change); returns how many
 * copies' elements differ from `before` (a saved ca.w_bf16, or NULL) */
static size_t assert_copies_are_weights(const struct step_case *s, const struct init_copy *c,
                                        const uint16_t *before)
{
    size_t changed = 0;

    for (int tw = 0; tw < CLIP_NUM_TOWERS; tw++)
        for (size_t l = 0; l < 4; l++) {
            const struct block_adapters *ad = tw == CLIP_TOWER_VISION ? &s->ca.vision[l]
                                                                      : &s->ca.text[l];

            ck_assert_ptr_null(ad->w_bf16[BLOCK_LIN_IN_PROJ]);  /* q, k, v's serve it */
            for (int i = 0; i < BLOCK_LIN_IN_PROJ; i++) {
                const float *w = w_init(c, tw, l, i);
                size_t n = i >= BLOCK_LIN_FC1 ? 128 * 512 : 128 * 128;

                ck_assert_ptr_nonnull(ad->w_bf16[i]);
                for (size_t k = 0; k < n; k++) {
                    ck_assert_msg(ad->w_bf16[i][k] == bf16_from_f32(w[k]),
                                  "tower %d layer %zu linear %d element %zu", tw, l, i, k);
                    if (before)
                        changed += ad->w_bf16[i][k] != before[ad->w_bf16[i] - s->ca.w_bf16 + k];
                }
            }
        }
    return changed;
}

/* each layer's every linear points at exactly the bf16 rounding of its own
 * fp32 weight */
START_TEST(test_bf16_copies_are_the_weights)
{
    struct step_case s;
    struct init_copy c;

    if (gemm_bf16_check() != RL_OK) {
        printf("check_clip_bf16: wiring test skipped: %s\n", rl_error_msg());
        return;
    }
    step_case_init(&s);
    init_record(&c, &s.m);
    ck_assert_int_eq(clip_adapters_set_precision(&s.ca, &s.m, CLIP_PRECISION_BF16), RL_OK);
    assert_copies_are_weights(&s, &c, NULL);
    free(c.w0);
    step_case_free(&s);
}
END_TEST

static const struct clip_step_size step_size = {
    .images = STEP_B, .texts = STEP_B, .text_tokens = STEP_T, .vision_micro = 1, .text_micro = 1,
};

/* the merged fp32 weight of linear i of layer l of tower tw in s32 (fp32) */
static const float *w_now(const struct step_case *s, int tw, size_t l, int i)
{
    return block_linear_weight(tw == CLIP_TOWER_VISION ? &s->m.vlayer[l] : &s->m.tlayer[l],
                               (enum block_linear)i);
}

/* The merged path in bf16: the copies stay the load-time bf16(W) bit for
 * bit, and each merged site's second term is bf16 of the update the fp32
 * merge adds (s32's merged weights minus W: within 2u in norm, u bf16's
 * unit roundoff); the step within the bound of the fp32 merged step; after
 * end_step no second term remains */
START_TEST(test_bf16_merged_step)
{
    struct step_case s, s32;
    float *g32, *g16, loss32, loss16;
    uint16_t *load_copy;
    struct init_copy c;
    double err = 0.0, norm = 0.0;

    if (gemm_bf16_check() != RL_OK) {
        printf("check_clip_bf16: merged test skipped: %s\n", rl_error_msg());
        return;
    }
    step_case_init(&s);
    step_case_init(&s32);
    init_record(&c, &s.m);
    ck_assert_int_eq(clip_adapters_set_precision(&s.ca, &s.m, CLIP_PRECISION_BF16), RL_OK);
    load_copy = xmalloc_array(s.ca.n_w_bf16, sizeof(uint16_t));
    memcpy(load_copy, s.ca.w_bf16, s.ca.n_w_bf16 * sizeof(uint16_t));
    g32 = test_zeros(s.ca.n_params);
    g16 = test_zeros(s.ca.n_params);
    s.ca.path_mode = s32.ca.path_mode = CLIP_PATH_MERGED;
    clip_adapters_zero_grad(&s.ca);
    clip_adapters_zero_grad(&s32.ca);
    clip_adapters_begin_step(&s.ca, &s.m, &step_size);
    clip_adapters_begin_step(&s32.ca, &s32.m, &step_size);
    ck_assert_uint_eq(s.ca.n_merged, s.ca.n_sites);
    ck_assert_uint_eq(assert_copies_are_weights(&s, &c, load_copy), 0);
    for (int tw = 0; tw < CLIP_NUM_TOWERS; tw++)
        for (size_t l = 0; l < 4; l++)
            for (int i = 0; i < BLOCK_LIN_IN_PROJ; i++) {
                const struct block_adapters *ad = tw == CLIP_TOWER_VISION ? &s.ca.vision[l]
                                                                          : &s.ca.text[l];
                const float *merged = w_now(&s32, tw, l, i), *w = w_init(&c, tw, l, i);
                const size_t n = i >= BLOCK_LIN_FC1 ? 128 * 512 : 128 * 128;

                ck_assert_ptr_nonnull(ad->w_bf16_lo[i]);
                for (size_t e = 0; e < n; e++) {
                    const double dw = (double)merged[e] - w[e];
                    const double d = bf16_to_f32(ad->w_bf16_lo[i][e]) - dw;

                    err += d * d;
                    norm += dw * dw;
                }
            }
    printf("check_clip_bf16: merged second terms against the fp32 merge's update: rel. "
           "error %.2e (bound %.2e)\n", sqrt(err / norm), 2 * BF16_UNIT_ROUNDOFF);
    ck_assert(norm > 0.0);
    ck_assert_msg(sqrt(err / norm) <= 2 * BF16_UNIT_ROUNDOFF, "%.3g", sqrt(err / norm));
    loss16 = pipe_backward(&s.p, NULL, NULL);
    loss32 = pipe_backward(&s32.p, NULL, NULL);
    clip_adapters_end_step(&s.ca, &s.m);
    clip_adapters_end_step(&s32.ca, &s32.m);
    ck_assert_uint_eq(assert_copies_are_weights(&s, &c, load_copy), 0);
    for (size_t l = 0; l < 4; l++)
        for (int i = 0; i < BLOCK_NUM_LINEARS; i++)
            ck_assert(s.ca.vision[l].w_bf16_lo[i] == NULL && s.ca.text[l].w_bf16_lo[i] == NULL);
    memcpy(g16, s.ca.grads, s.ca.n_params * sizeof(float));
    memcpy(g32, s32.ca.grads, s.ca.n_params * sizeof(float));
    assert_step_within_bound("merged", loss16, loss32, g16, g32, s.ca.n_params);
    free(load_copy);
    free(c.w0);
    free(g32); free(g16);
    step_case_free(&s);
    step_case_free(&s32);
}
END_TEST

/* An update far below bf16's rounding of W (full fine-tuning's dW at
 * ~2e-5, W's elements ~0.03: half a bf16 step is ~1e-4) must still reach
 * the merged bf16 weight. While merged, every site keeps hi = bf16(W) and
 * has its second term lo = bf16(dW): the update the products see is dW
 * within 1% in norm; one bf16 weight, bf16(W + dW) - bf16(W), is more than
 * 50% off (asserted, so the 1% can fail). After end_step no site has a
 * second term. */
START_TEST(test_bf16_merged_keeps_small_update)
{
    struct step_case s;
    struct rng r;
    struct init_copy c;
    double err_split = 0.0, err_hi = 0.0, norm = 0.0;
    size_t with_lo = 0;

    if (gemm_bf16_check() != RL_OK) {
        printf("check_clip_bf16: small-update test skipped: %s\n", rl_error_msg());
        return;
    }
    step_case_init_method(&s, "full", 0, 0.0f);
    rng_init(&r, 9);
    for (size_t i = 0; i < s.ca.n_params; i++)
        s.ca.params[i] = 2e-5f * rng_normal(&r);
    init_record(&c, &s.m);
    ck_assert_int_eq(clip_adapters_set_precision(&s.ca, &s.m, CLIP_PRECISION_BF16), RL_OK);
    s.ca.path_mode = CLIP_PATH_MERGED;
    clip_adapters_begin_step(&s.ca, &s.m, &step_size);
    ck_assert_uint_eq(s.ca.n_merged, s.ca.n_sites);
    for (int tw = 0; tw < CLIP_NUM_TOWERS; tw++)
        for (size_t l = 0; l < 4; l++) {
            const struct block_adapters *ad = tw == CLIP_TOWER_VISION ? &s.ca.vision[l]
                                                                      : &s.ca.text[l];

            ck_assert_ptr_null(ad->w_bf16[BLOCK_LIN_IN_PROJ]);  /* q, k, v's serve it */
            for (int i = 0; i < BLOCK_LIN_IN_PROJ; i++) {
                const uint16_t *hi = ad->w_bf16[i], *lo = ad->w_bf16_lo[i];
                const size_t n = i >= BLOCK_LIN_FC1 ? 128 * 512 : 128 * 128;
                const float *pristine = w_init(&c, tw, l, i);
                /* full's parameters are dW itself, (d_out, d_in) as W */
                const float *delta = clip_adapters_find(&s.ca, (enum clip_tower)tw, l,
                                                        (enum block_linear)i)->params;

                ck_assert_ptr_nonnull(lo);
                with_lo++;
                for (size_t e = 0; e < n; e++) {
                    const double dw = delta[e];
                    const double one = (double)bf16_to_f32(bf16_from_f32(pristine[e] + delta[e])) -
                                       bf16_to_f32(hi[e]);

                    ck_assert(hi[e] == bf16_from_f32(pristine[e]));
                    err_split += (bf16_to_f32(lo[e]) - dw) * (bf16_to_f32(lo[e]) - dw);
                    err_hi += (one - dw) * (one - dw);
                    norm += dw * dw;
                }
            }
        }
    ck_assert_uint_eq(with_lo, s.ca.n_sites);
    printf("check_clip_bf16: a small update in the merged bf16 weight: rel. error %.2e with "
           "the second term, %.2e with one bf16 weight\n", sqrt(err_split / norm),
           sqrt(err_hi / norm));
    ck_assert(norm > 0.0);
    ck_assert_msg(sqrt(err_split / norm) <= 0.01, "split: %.3g", sqrt(err_split / norm));
    ck_assert_msg(sqrt(err_hi / norm) > 0.5, "one bf16 weight kept the update (%.3g): the "
                  "test cannot tell the split from it", sqrt(err_hi / norm));
    clip_adapters_end_step(&s.ca, &s.m);
    for (size_t l = 0; l < 4; l++)
        for (int i = 0; i < BLOCK_NUM_LINEARS; i++)
            ck_assert(s.ca.vision[l].w_bf16_lo[i] == NULL && s.ca.text[l].w_bf16_lo[i] == NULL);
    free(c.w0);
    step_case_free(&s);
}
END_TEST

/* Many merge / change / unmerge rounds with large updates drift fp32
 * weights merged in place (the fp32 twin: asserted, so the bf16 check below
 * could fail); under bf16 nothing is merged in place: the copies are the
 * load-time ones bit for bit, no site is marked drifted, and a rebase has
 * nothing to read (a path that does not exist is never opened) */
START_TEST(test_bf16_merges_leave_copies_exact)
{
    struct step_case s, s32;
    uint16_t *load_copy;
    struct init_copy c, c32;
    struct rng r;

    if (gemm_bf16_check() != RL_OK) {
        printf("check_clip_bf16: rebase test skipped: %s\n", rl_error_msg());
        return;
    }
    step_case_init(&s);
    step_case_init(&s32);
    init_record(&c, &s.m);
    init_record(&c32, &s32.m);
    ck_assert_int_eq(clip_adapters_set_precision(&s.ca, &s.m, CLIP_PRECISION_BF16), RL_OK);
    load_copy = xmalloc_array(s.ca.n_w_bf16, sizeof(uint16_t));
    memcpy(load_copy, s.ca.w_bf16, s.ca.n_w_bf16 * sizeof(uint16_t));
    s.ca.path_mode = s32.ca.path_mode = CLIP_PATH_MERGED;
    rng_init(&r, 4);
    for (int round = 0; round < 20; round++) {
        for (size_t i = 0; i < s.ca.n_params; i++)
            s32.ca.params[i] = s.ca.params[i] += 2.0f * rng_normal(&r);
        clip_adapters_begin_step(&s.ca, &s.m, &step_size);
        clip_adapters_begin_step(&s32.ca, &s32.m, &step_size);
        ck_assert_uint_eq(s.ca.n_merged, s.ca.n_sites);
        clip_adapters_end_step(&s.ca, &s.m);
        clip_adapters_end_step(&s32.ca, &s32.m);
    }
    ck_assert_msg(memcmp(s32.m.params, c32.w0, s32.m.n_params * sizeof(float)) != 0,
                  "20 fp32 merge rounds left the weights exact: the bf16 check proves nothing");
    ck_assert_uint_eq(assert_copies_are_weights(&s, &c, load_copy), 0);
    for (size_t k = 0; k < s.ca.n_sites; k++)
        ck_assert(!s.ca.drifted[k]);
    ck_assert_int_eq(clip_adapters_rebase(&s.ca, &s.m, "/nonexistent/model.safetensors"), RL_OK);
    ck_assert_uint_eq(clip_model_fp32_linear_bytes(&s.m), 0);
    free(load_copy);
    free(c.w0);
    free(c32.w0);
    step_case_free(&s);
    step_case_free(&s32);
}
END_TEST

/* fp32 precision makes no copies; bf16 on a CPU without it is refused with
 * gemm_bf16_check's message and leaves the step on fp32; names parse */
START_TEST(test_precision_parse_and_refusal)
{
    struct step_case s;
    enum clip_precision p;

    ck_assert_int_eq(clip_precision_parse("bf16", &p), RL_OK);
    ck_assert_int_eq(p, CLIP_PRECISION_BF16);
    ck_assert_str_eq(clip_precision_name(p), "bf16");
    ck_assert_int_eq(clip_precision_parse("fp32", &p), RL_OK);
    ck_assert_int_eq(p, CLIP_PRECISION_FP32);
    ck_assert_int_eq(clip_precision_parse("fp16", &p), RL_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(rl_error_msg(), "'fp16': expected fp32 or bf16"));

    step_case_init(&s);
    ck_assert_int_eq(clip_adapters_set_precision(&s.ca, &s.m, CLIP_PRECISION_FP32), RL_OK);
    ck_assert_ptr_null(s.ca.w_bf16);
    if (gemm_bf16_check() != RL_OK) {
        ck_assert_int_eq(clip_adapters_set_precision(&s.ca, &s.m, CLIP_PRECISION_BF16),
                         RL_ERR_NA);
        ck_assert_ptr_nonnull(strstr(rl_error_msg(), "use precision fp32"));
        ck_assert_ptr_null(s.ca.w_bf16);
        ck_assert_ptr_null(s.ca.vision[0].w_bf16[BLOCK_LIN_Q]);
    }
    step_case_free(&s);
}
END_TEST

/* full fine-tuning trains a delta dW beside each frozen W: every linear
 * gets a copy, and its step (merged: bf16(W + dW), merged in fp32) is within
 * the bound of the fp32 full step */
START_TEST(test_bf16_full_fine_tuning)
{
    struct step_case s;

    if (gemm_bf16_check() != RL_OK) {
        printf("check_clip_bf16: full fine-tuning test skipped: %s\n", rl_error_msg());
        return;
    }
    step_case_init_method(&s, "full", 0, 0.002f);
    s.ca.path_mode = CLIP_PATH_MERGED;
    compare_steps(&s, "full");
    step_case_free(&s);
}
END_TEST

/* train.precision: parsed into the plan (per method with a suffix), written
 * into the run's experiment file only when bf16 (fp32 files unchanged),
 * and read back; an unknown word is refused with the words it takes */
START_TEST(test_train_precision_key)
{
    const char *text = "[method]\nmethods = lora, vera\nrank = 2\n"
                       "[train]\nprecision.lora = bf16\n";
    struct experiment e;
    struct run_plan *p, *back;
    size_t n, n_back;
    char *ini[2];

    ck_assert_int_eq(experiment_parse(&e, text, "t.ini", NULL, 0), RL_OK);
    ck_assert_int_eq(experiment_expand(&e, NULL, NULL, &p, &n), RL_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(p[0].method, "lora");
    ck_assert_uint_eq(p[0].train.precision, CLIP_PRECISION_BF16);
    ck_assert_uint_eq(p[1].train.precision, CLIP_PRECISION_FP32);
    for (int i = 0; i < 2; i++)
        ini[i] = run_plan_to_ini(&p[i]);
    ck_assert_ptr_nonnull(strstr(ini[0], "precision = bf16"));
    ck_assert_ptr_null(strstr(ini[1], "precision"));
    experiment_free(&e);
    ck_assert_int_eq(experiment_parse(&e, ini[0], "run.ini", NULL, 0), RL_OK);
    ck_assert_int_eq(experiment_expand(&e, NULL, NULL, &back, &n_back), RL_OK);
    ck_assert_uint_eq(back[0].train.precision, CLIP_PRECISION_BF16);
    run_plans_free(back, n_back);
    experiment_free(&e);
    ck_assert_int_eq(experiment_parse(&e, "[train]\nprecision = fp16\n", "t.ini", NULL, 0),
                     RL_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(rl_error_msg(), "fp32, bf16"));
    free(ini[0]);
    free(ini[1]);
    run_plans_free(p, n);
}
END_TEST

Suite *suite_clip_bf16(void)
{
    Suite *s = suite_create("clip_bf16");
    TCase *tc = tcase_create("step");

    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_bf16_step_within_bound);
    tcase_add_test(tc, test_bf16_step_bound_detects_wrong_weights);
    tcase_add_test(tc, test_bf16_copies_are_the_weights);
    tcase_add_test(tc, test_bf16_merged_step);
    tcase_add_test(tc, test_bf16_merged_keeps_small_update);
    tcase_add_test(tc, test_bf16_merges_leave_copies_exact);
    tcase_add_test(tc, test_precision_parse_and_refusal);
    tcase_add_test(tc, test_bf16_full_fine_tuning);
    tcase_add_test(tc, test_train_precision_key);
    suite_add_tcase(s, tc);
    return s;
}
