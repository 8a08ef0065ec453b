/*
 * check_inproj.c: the packed in_proj site (models/block.h
 * BLOCK_LIN_IN_PROJ, models/block_qkv.c): q, k and v adapted as ONE
 * (3C, C) linear, as open_clip's nn.MultiheadAttention in_proj_weight.
 *
 *   - targets: the word, its exclusion from "all", its refusal next to
 *     q/k/v_proj on one layer, its shape (3C, C) and name;
 *   - full fine-tuning of the packed site equals three full adapters on
 *     q, k and v holding the same rows (forward and gradients);
 *   - finite differences through the whole tiny model, both towers, every
 *     layer (the pooled last layers included), for all five methods;
 *   - factored == merged == merged from the rows == merged summed over two
 *     micro-batches, last layers pooled or whole, adapter and weight
 *     gradients, for all five methods;
 *   - the merged weights come back bit for bit from the HF file (three
 *     tensors per packed site) and from an open_clip file (one);
 *   - bf16 precision gives q, k and v their copies (full too: it trains a
 *     delta beside W), and a packed site stays factored under bf16.
 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clip_harness.h"
#include "cli/commands.h"
#include "test_cmd.h"
#include "core/rng.h"
#include "core/status.h"
#include "experiments/runner.h"
#include "formats/safetensors.h"
#include "methods/adapter.h"
#include "models/clip.h"
#include "suites.h"
#include "test_util.h"

#define PACK_ATOL 2e-5
#define PACK_RTOL 2e-4

/* the five methods, with a perturbation of the parameters away from their
 * init at a scale where the tiny model stays near-linear enough for
 * central differences over a 1e-2 step (NoLA's coefficients sum k bases,
 * so smaller), and RandLoRA's numerator: at peft's default, alpha = 20 r
 * (s = 20), the tiny text tower is far from linear over that step, and
 * central differences miss by 10% whether q, k and v are adapted packed or
 * apart (measured); alpha = r (s = 1) keeps the check meaningful. */
struct pack_case {
    const char *method;
    size_t r;
    float perturb;
    float alpha;                /* 0: the method's default */
};

static const struct pack_case pack_cases[] = {
    { "lora", 2, 0.3f, 0.0f }, { "vera", 4, 0.3f, 0.0f }, { "randlora", 4, 0.1f, 4.0f },
    { "nola", 2, 0.02f, 0.0f }, { "full", 0, 0.05f, 0.0f },
};
#define N_PACK_CASES ((int)(sizeof(pack_cases) / sizeof(pack_cases[0])))

static void pack_cfg(struct adapter_cfg *cfg, const struct pack_case *c)
{
    adapter_cfg_defaults(cfg, c->method, c->r);
    cfg->nola_bases = 16;
    cfg->alpha = c->alpha;
}

static void init_packed(struct clip_adapters *ca, struct clip_model *m, const char *targets,
                        const struct pack_case *c, uint64_t seed)
{
    struct clip_target t[4];
    struct adapter_cfg acfg;
    struct rng rg;
    size_t nt;
    int rc;

    ck_assert_int_eq(clip_targets_parse(targets, t, 4, &nt), RL_OK);
    pack_cfg(&acfg, c);
    rc = clip_adapters_init(ca, m, &acfg, t, nt, 3, 3);
    ck_assert_msg(rc == RL_OK, "%s", rl_error_msg());
    rng_init(&rg, seed);
    for (size_t i = 0; i < ca->n_params; i++)
        ca->params[i] += c->perturb * rng_normal(&rg);
}

/* ------------------------------------------------------------------------ */
/* targets                                                                   */

START_TEST(test_inproj_targets)
{
    struct clip_model m;
    struct clip_adapters ca;
    struct clip_target t[4];
    struct adapter_cfg acfg;
    struct adapter_shape shapes[64];
    struct exp_targets et = { .towers = 3, .layer_lo = 0, .layer_hi = SIZE_MAX };
    char name[160];
    size_t nt;

    tiny_model(&m, 4);
    ck_assert_int_eq(clip_targets_parse("in_proj", t, 4, &nt), RL_OK);
    ck_assert_uint_eq(t[0].modules, 1u << BLOCK_LIN_IN_PROJ);
    ck_assert_int_eq(clip_targets_parse("all", t, 4, &nt), RL_OK);
    ck_assert_uint_eq(t[0].modules & (1u << BLOCK_LIN_IN_PROJ), 0);
    ck_assert_int_eq(clip_targets_parse("in_proj,out_proj,fc1,fc2", t, 4, &nt), RL_OK);
    adapter_cfg_defaults(&acfg, "lora", 2);
    ck_assert_int_eq(clip_adapters_init(&ca, &m, &acfg, t, nt, 3, 3), RL_OK);
    /* 4 sites per layer, 2 + 2 layers */
    ck_assert_uint_eq(ca.n_sites, 16);
    ck_assert_uint_eq(ca.sites[0].lin, BLOCK_LIN_OUT);      /* enum order */
    ck_assert_uint_eq(ca.sites[3].lin, BLOCK_LIN_IN_PROJ);
    ck_assert_uint_eq(ca.adapters[3].d_out, 3 * m.cfg.vision.hidden);
    ck_assert_uint_eq(ca.adapters[3].d_in, m.cfg.vision.hidden);
    ck_assert_ptr_eq(ca.vision[0].lin[BLOCK_LIN_IN_PROJ], &ca.adapters[3]);
    ck_assert_ptr_null(ca.vision[0].lin[BLOCK_LIN_Q]);
    ck_assert_str_eq(clip_site_name(&ca.sites[3], name, sizeof(name)),
                     "vision_model.encoder.layers.0.self_attn.in_proj");
    /* LoRA's count for the packed site: r (d_in + 3 d_in) */
    ck_assert_uint_eq(ca.adapters[3].n_params, 2 * (16 + 48));
    clip_adapters_free(&ca);

    /* the experiment planner's shapes (randlora params, budgets) agree */
    et.modules = 1u << BLOCK_LIN_IN_PROJ;
    ck_assert_uint_eq(runner_target_shapes(&m.cfg, &et, shapes, 64), 4);
    ck_assert_uint_eq(shapes[0].d_out, 48);
    ck_assert_uint_eq(shapes[0].d_in, 16);
    ck_assert_uint_eq(shapes[3].d_out, 36);
    ck_assert_uint_eq(shapes[3].d_in, 12);

    /* in_proj and q/k/v_proj on one layer: refused, naming both */
    ck_assert_int_eq(clip_targets_parse("vision:1:in_proj;vision:*:k_proj", t, 4, &nt), RL_OK);
    ck_assert_int_eq(clip_adapters_init(&ca, &m, &acfg, t, nt, 3, 3), RL_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(rl_error_msg(), "vision layer 1 gets both in_proj"));
    clip_model_free(&m);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* full on the packed site == full on q, k and v                             */

START_TEST(test_inproj_full_equals_three)
{
    struct clip_model m1, m2;
    struct clip_adapters cp, c3;
    struct clip_target t[1];
    struct adapter_cfg acfg;
    struct pipe p1, p2;
    struct rng rg;
    float *pixels, l1, l2;
    int32_t ids[3 * 7];
    size_t nt;

    tiny_model(&m1, 6);
    tiny_model(&m2, 6);
    adapter_cfg_defaults(&acfg, "full", 0);
    ck_assert_int_eq(clip_targets_parse("in_proj", t, 1, &nt), RL_OK);
    ck_assert_int_eq(clip_adapters_init(&cp, &m1, &acfg, t, nt, 3, 3), RL_OK);
    ck_assert_int_eq(clip_targets_parse("qkv", t, 1, &nt), RL_OK);
    ck_assert_int_eq(clip_adapters_init(&c3, &m2, &acfg, t, nt, 3, 3), RL_OK);
    ck_assert_uint_eq(cp.n_params, c3.n_params);
    /* the packed site's (3C, C) rows are q's, k's, v's: the three sites of
     * a layer are adjacent in c3's block in the same order */
    rng_init(&rg, 3);
    for (size_t i = 0; i < cp.n_params; i++)
        cp.params[i] = c3.params[i] = 0.05f * rng_normal(&rg);
    pixels = test_randn(&rg, 3 * 3 * 8 * 8, 1.0f);
    tiny_ids(ids);
    pipe_init(&p1, &m1, &cp, 3, 7, pixels, ids);
    pipe_init(&p2, &m2, &c3, 3, 7, pixels, ids);
    clip_adapters_zero_grad(&cp);
    clip_adapters_zero_grad(&c3);
    l1 = pipe_backward(&p1, NULL, NULL);
    l2 = pipe_backward(&p2, NULL, NULL);
    ck_assert_msg(fabsf(l1 - l2) <= 1e-6f * fabsf(l2) + 1e-7f, "loss %.9g vs %.9g", l1, l2);
    ck_assert_uint_eq(tensor_compare("logits", p1.h.logits, p2.h.logits, 9, 1e-6, 1e-5), 0);
    ck_assert_uint_eq(tensor_compare("grads", cp.grads, c3.grads, cp.n_params, 1e-6, 1e-4), 0);
    ck_assert(test_max_abs(cp.grads, cp.n_params) > 0.0);
    pipe_free(&p1);
    pipe_free(&p2);
    free(pixels);
    clip_adapters_free(&cp);
    clip_adapters_free(&c3);
    clip_model_free(&m1);
    clip_model_free(&m2);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* finite differences                                                        */

START_TEST(test_inproj_gradcheck)
{
    const struct pack_case *c = &pack_cases[_i];
    struct clip_model m;
    struct clip_adapters ca;
    struct pipe p;
    struct rng rg;
    float *pixels, *grad;
    int32_t ids[3 * 7];
    size_t fails;

    tiny_model(&m, 11);
    /* packed in_proj on every layer of both towers, fc2 on the vision
     * tower's last layer too (a packed and a plain site side by side) */
    init_packed(&ca, &m, "in_proj;vision:1:fc2", c, 5);
    rng_init(&rg, 7);
    pixels = test_randn(&rg, 3 * 3 * 8 * 8, 1.0f);
    tiny_ids(ids);
    pipe_init(&p, &m, &ca, 3, 7, pixels, ids);
    clip_adapters_zero_grad(&ca);
    pipe_backward(&p, NULL, NULL);
    grad = test_copy(ca.grads, ca.n_params);
    ck_assert(test_max_abs(grad, ca.n_params) > 0.0);
    fails = gradcheck(c->method, ca.params, grad, ca.n_params, pipe_loss, &p, 1e-2f, 2e-3, 2e-2,
                      160);
    ck_assert_uint_eq(fails, 0);
    free(grad);
    pipe_free(&p);
    free(pixels);
    clip_adapters_free(&ca);
    clip_model_free(&m);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* the paths                                                                 */

static size_t rel_compare(const char *what, const char *method, const float *got,
                          const float *want, size_t n)
{
    double scale = test_max_abs(want, n), d = test_max_abs_diff(got, want, n);

    if (d <= PACK_RTOL * scale || d == 0.0)
        return 0;
    fprintf(stderr, "%s %s: max |diff| %.3g > %.1g * max |want| %.3g\n", method, what, d,
            PACK_RTOL, scale);
    return 1;
}

/* one step on a path: logits, adapter and weight gradients out; micro
 * backward passes (each of the same batch, so the sums are micro times one
 * pass's); the weights unmerged again before returning */
static void pack_run(struct pipe *p, struct clip_grads *g, enum clip_path_mode mode,
                     enum clip_proj_mode proj, bool pool_last, size_t micro, float *logits,
                     float *grads, float *wgrads)
{
    struct clip_adapters *ca = p->ca;
    const struct clip_step_size sz = {
        .images = p->B, .texts = p->B, .text_tokens = p->T,
        .vision_micro = micro, .text_micro = micro,
    };

    p->vr.pool_last = p->tr.pool_last = pool_last;
    ca->path_mode = mode;
    ca->proj_mode = proj;
    clip_adapters_zero_grad(ca);
    if (g)
        clip_grads_zero(g, p->m);
    clip_adapters_begin_step(ca, p->m, &sz);
    if (mode == CLIP_PATH_MERGED)
        ck_assert_uint_eq(ca->n_merged, ca->n_sites);
    for (size_t k = 0; k < micro; k++)
        pipe_backward(p, g, NULL);
    clip_adapters_end_step(ca, p->m);
    ck_assert_uint_eq(ca->n_merged, 0);
    memcpy(logits, p->h.logits, 9 * sizeof(float));
    memcpy(grads, ca->grads, ca->n_params * sizeof(float));
    for (size_t i = 0; i < ca->n_params; i++)
        grads[i] /= (float)micro;
    if (g)
        for (size_t i = 0; i < p->m->n_params; i++)
            wgrads[i] = g->buf[i] / (float)micro;
}

START_TEST(test_inproj_paths_agree)
{
    const struct pack_case *c = &pack_cases[_i];
    struct clip_model m;
    struct clip_adapters ca;
    struct clip_grads cg;
    struct pipe p;
    struct rng rg;
    float *pixels, *lg0, *gr0, *wg0, *lg, *gr, *wg;
    int32_t ids[3 * 7];
    size_t fails = 0;
    static const struct {
        enum clip_path_mode mode;
        enum clip_proj_mode proj;
        bool pool, weights;
        size_t micro;
    } runs[] = {
        { CLIP_PATH_MERGED, CLIP_PROJ_WEIGHT, true, false, 1 },
        { CLIP_PATH_MERGED, CLIP_PROJ_ROWS, true, false, 1 },
        { CLIP_PATH_MERGED, CLIP_PROJ_WEIGHT, true, false, 2 },     /* summed, once */
        { CLIP_PATH_MERGED, CLIP_PROJ_WEIGHT, false, false, 1 },
        { CLIP_PATH_FACTORED, CLIP_PROJ_AUTO, false, false, 1 },
        { CLIP_PATH_MERGED, CLIP_PROJ_AUTO, true, true, 1 },         /* + weight grads */
    };

    tiny_model(&m, 21);
    init_packed(&ca, &m, "in_proj;mlp", c, 17);
    clip_grads_init(&cg, &m);
    rng_init(&rg, 9);
    pixels = test_randn(&rg, 3 * 3 * 8 * 8, 1.0f);
    tiny_ids(ids);
    pipe_init(&p, &m, &ca, 3, 7, pixels, ids);
    lg0 = test_zeros(9);
    lg = test_zeros(9);
    gr0 = test_zeros(ca.n_params);
    gr = test_zeros(ca.n_params);
    wg0 = test_zeros(m.n_params);
    wg = test_zeros(m.n_params);
    pack_run(&p, &cg, CLIP_PATH_FACTORED, CLIP_PROJ_AUTO, true, 1, lg0, gr0, wg0);
    ck_assert(test_max_abs(gr0, ca.n_params) > 0.0);
    for (size_t k = 0; k < sizeof(runs) / sizeof(runs[0]); k++) {
        pack_run(&p, runs[k].weights ? &cg : NULL, runs[k].mode, runs[k].proj, runs[k].pool,
                 runs[k].micro, lg, gr, wg);
        fails += tensor_compare("logits", lg, lg0, 9, PACK_ATOL, PACK_RTOL);
        fails += rel_compare("adapter grads", c->method, gr, gr0, ca.n_params);
        if (runs[k].weights)
            fails += rel_compare("weight grads", c->method, wg, wg0, m.n_params);
    }
    ck_assert_uint_eq(fails, 0);
    free(lg0);
    free(lg);
    free(gr0);
    free(gr);
    free(wg0);
    free(wg);
    pipe_free(&p);
    free(pixels);
    clip_grads_free(&cg);
    clip_adapters_free(&ca);
    clip_model_free(&m);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* rebase from either layout                                                 */

static void check_rebase(enum clip_layout layout)
{
    struct clip_model m;
    struct clip_adapters ca;
    const struct pack_case c = { "lora", 2, 0.3f, 0.0f };
    char dir[1024];
    char *path;
    float *w0;
    const struct clip_step_size sz = {
        .images = 3, .texts = 3, .text_tokens = 7, .vision_micro = 1, .text_micro = 1,
    };

    {
        struct clip_config cfg;

        tiny_config(&cfg);
        cfg.text.act = cfg.vision.act;      /* open_clip has one activation */
        ck_assert_int_eq(clip_model_init(&m, &cfg), RL_OK);
        clip_model_init_random(&m, 8);
    }
    ck_assert_ptr_nonnull(test_tmpdir_make(dir, sizeof(dir), "inproj"));
    ck_assert_int_eq(clip_model_save_as(&m, dir, ST_F32, layout), RL_OK);
    m.layout = layout;
    path = clip_dir_file(dir, layout, true);
    init_packed(&ca, &m, "in_proj", &c, 3);
    w0 = test_copy(m.params, m.n_params);
    ca.path_mode = CLIP_PATH_MERGED;
    for (int k = 0; k < 5; k++) {
        for (size_t i = 0; i < ca.n_params; i++)
            ca.params[i] += 0.5f;
        clip_adapters_begin_step(&ca, &m, &sz);
        ck_assert_uint_eq(ca.n_merged, ca.n_sites);
        clip_adapters_end_step(&ca, &m);
    }
    ck_assert(test_max_abs_diff(m.params, w0, m.n_params) > 0.0);
    ck_assert_int_eq(clip_adapters_rebase(&ca, &m, path), RL_OK);
    ck_assert_int_eq(memcmp(m.params, w0, m.n_params * sizeof(float)), 0);
    free(w0);
    free(path);
    test_tmpdir_remove(dir);
    clip_adapters_free(&ca);
    clip_model_free(&m);
}

START_TEST(test_inproj_rebase_hf)
{
    check_rebase(CLIP_LAYOUT_HF);
}
END_TEST

START_TEST(test_inproj_rebase_openclip)
{
    check_rebase(CLIP_LAYOUT_OPENCLIP);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* bf16 copies                                                               */

START_TEST(test_inproj_bf16_copies)
{
    struct clip_model m;
    struct clip_adapters ca;
    const struct pack_case lora = { "lora", 2, 0.0f, 0.0f }, full = { "full", 0, 0.0f, 0.0f };
    int rc;

    tiny_model(&m, 2);
    init_packed(&ca, &m, "in_proj", &lora, 1);
    rc = clip_adapters_set_precision(&ca, &m, CLIP_PRECISION_BF16);
    if (rc == RL_ERR_NA) {                  /* no bf16 GEMM on this CPU */
        clip_adapters_free(&ca);
        clip_model_free(&m);
        return;
    }
    ck_assert_int_eq(rc, RL_OK);
    ck_assert_ptr_nonnull(ca.vision[0].w_bf16[BLOCK_LIN_Q]);
    ck_assert_ptr_nonnull(ca.text[1].w_bf16[BLOCK_LIN_V]);
    ck_assert_ptr_null(ca.vision[0].w_bf16[BLOCK_LIN_IN_PROJ]);
    clip_adapters_free(&ca);
    /* full trains a delta beside each frozen W (methods/full.c), so q, k and
     * v keep their copies under a full in_proj too (the model's, made once);
     * a packed site stays factored under bf16, even where the merged path
     * is forced (its merged backward would read the released fp32 weights) */
    init_packed(&ca, &m, "in_proj", &full, 1);
    ck_assert_int_eq(clip_adapters_set_precision(&ca, &m, CLIP_PRECISION_BF16), RL_OK);
    ck_assert_ptr_nonnull(ca.vision[0].w_bf16[BLOCK_LIN_Q]);
    ck_assert_ptr_nonnull(ca.vision[0].w_bf16[BLOCK_LIN_K]);
    ck_assert_ptr_null(ca.vision[0].w_bf16[BLOCK_LIN_IN_PROJ]);
    ck_assert_ptr_nonnull(ca.vision[0].w_bf16[BLOCK_LIN_OUT]);
    ck_assert_uint_eq(clip_model_fp32_linear_bytes(&m), 0);
    ca.path_mode = CLIP_PATH_MERGED;
    clip_adapters_begin_step(&ca, &m, &(struct clip_step_size){ .images = 1, .texts = 1,
                             .text_tokens = 7, .vision_micro = 1, .text_micro = 1 });
    ck_assert_uint_eq(ca.n_merged, 0);
    clip_adapters_end_step(&ca, &m);
    clip_adapters_free(&ca);
    clip_model_free(&m);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* the paper's LoRA on a packed site: their MultiheadAttention's init        */

START_TEST(test_inproj_paper_lora_init)
{
    struct clip_model m;
    struct clip_adapters ca;
    struct clip_target t[1];
    struct adapter_cfg acfg;
    const size_t r = 4;
    size_t nt;

    tiny_model(&m, 5);
    ck_assert_int_eq(clip_targets_parse("vision:0:in_proj,fc1", t, 1, &nt), RL_OK);
    adapter_cfg_defaults(&acfg, "lora", r);
    ck_assert_int_eq(adapter_cfg_profile(&acfg, "paper"), RL_OK);
    ck_assert_int_eq(clip_adapters_init(&ca, &m, &acfg, t, nt, 3, 3), RL_OK);
    for (size_t k = 0; k < 2; k++) {
        const struct adapter *a = &ca.adapters[k];
        const bool packed = ca.sites[k].lin == BLOCK_LIN_IN_PROJ;
        const float *A = a->params, *B = a->params + r * a->d_in;
        /* packed: A (r, d_in) ~ U(+-1/sqrt(r d_in)), B = 0; fc1 (an
         * nn.Linear there): A = 0, B ~ U(+-1/sqrt(r d_out)) */
        const double bound = 1.0 / sqrt((double)(r * (packed ? a->d_in : a->d_out)));
        const float *rand = packed ? A : B, *zero = packed ? B : A;
        const size_t n_rand = packed ? r * a->d_in : a->d_out * r;
        const size_t n_zero = packed ? a->d_out * r : r * a->d_in;

        ck_assert_uint_eq(a->layer, packed ? ADAPTER_LAYER_PACKED_QKV : ADAPTER_LAYER_LINEAR);
        ck_assert_double_eq(test_max_abs(zero, n_zero), 0.0);
        ck_assert(test_max_abs(rand, n_rand) <= bound);
        ck_assert(test_max_abs(rand, n_rand) > 0.5 * bound);
    }
    ck_assert_uint_eq(ca.sites[1].lin, BLOCK_LIN_IN_PROJ);
    clip_adapters_free(&ca);
    clip_model_free(&m);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* the paper's placement on ViT-B/32: randlora params --model                */

/* randlora params --count for method args on clip-vit-b-32's in_proj, fc1,
 * fc2, both towers */
static size_t params_count(const char *dir, const char *method, const char *rank,
                           const char *profile)
{
    struct test_captured c = test_run_cmd(dir, cmd_params, "params", "--method", method,
                                          "--rank", rank, "--profile", profile, "--model",
                                          "clip-vit-b-32", "--modules", "in_proj,fc1,fc2",
                                          "--count", NULL);
    size_t n;

    ck_assert_msg(c.status == 0, "params %s: %s", method, c.err);
    n = strtoull(c.out, NULL, 10);
    test_captured_free(&c);
    return n;
}

START_TEST(test_inproj_paper_counts)
{
    /* per tower: width d, MLP 4d, 12 layers; in_proj (3d, d), fc1 (4d, d),
     * fc2 (d, 4d): min dimension d everywhere, max 3d, 4d, 4d */
    const size_t dv = 768, dt = 512, L = 12, r_rl = 6, r_lo = 32, r_ve = 256, k = 1024;
    const size_t nv = dv / r_rl + 1, nt = dt / r_rl + 1;   /* paper: floor(d/r) + 1 */
    char dir[1024];
    struct test_captured c;

    ck_assert_ptr_nonnull(test_tmpdir_make(dir, sizeof(dir), "inproj_counts"));
    /* RandLoRA n (r + d) per layer: 5,198,184 (the "about 5.2 M") */
    ck_assert_uint_eq(params_count(dir, "randlora", "6", "paper"),
                      3 * L * (nv * (r_rl + dv) + nt * (r_rl + dt)));
    /* LoRA r (d_in + d_out): 6,881,280 ("about 6.9 M") */
    ck_assert_uint_eq(params_count(dir, "lora", "32", "paper"),
                      L * r_lo * ((dv + 3 * dv) + 2 * (dv + 4 * dv) +
                                  (dt + 3 * dt) + 2 * (dt + 4 * dt)));
    /* VeRA r + d_out */
    ck_assert_uint_eq(params_count(dir, "vera", "256", "peft"),
                      L * (3 * r_ve + 3 * dv + 4 * dv + dv + 3 * r_ve + 3 * dt + 4 * dt + dt));
    /* NoLA 2 k per layer at any shape */
    ck_assert_uint_eq(params_count(dir, "nola", "1", "paper"), 2 * k * 6 * L);
    /* full: the adapted matrices */
    ck_assert_uint_eq(params_count(dir, "full", "1", "peft"),
                      L * (3 * dv * dv + 8 * dv * dv + 3 * dt * dt + 8 * dt * dt));
    c = test_run_cmd(dir, cmd_params, "params", "--method", "lora", "--rank", "4", "--model",
                     "clip-vit-b-32", "--modules", "in_proj,q_proj", NULL);
    test_assert_one_line_error(&c, "randlora params: ", "in_proj is q, k and v as one linear",
                               "in_proj with q_proj");
    test_captured_free(&c);
    test_tmpdir_remove(dir);
}
END_TEST

Suite *suite_inproj(void)
{
    Suite *s = suite_create("inproj");
    TCase *tc = tcase_create("inproj");

    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_inproj_targets);
    tcase_add_test(tc, test_inproj_full_equals_three);
    tcase_add_loop_test(tc, test_inproj_gradcheck, 0, N_PACK_CASES);
    tcase_add_loop_test(tc, test_inproj_paths_agree, 0, N_PACK_CASES);
    tcase_add_test(tc, test_inproj_rebase_hf);
    tcase_add_test(tc, test_inproj_rebase_openclip);
    tcase_add_test(tc, test_inproj_bf16_copies);
    tcase_add_test(tc, test_inproj_paper_lora_init);
    tcase_add_test(tc, test_inproj_paper_counts);
    suite_add_tcase(s, tc);
    return s;
}
