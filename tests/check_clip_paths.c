/*
 * check_clip_paths.c: the two paths of an adapted linear in the CLIP towers
 * (models/block.h, models/clip.h): factored against merged in place, the
 * gradients from the rows, summed over micro-batches or projected at once,
 * weights kept merged across steps, the choice, drift and rebase.
 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clip_harness.h"
#include "core/rng.h"
#include "core/status.h"
#include "methods/adapter.h"
#include "models/clip.h"
#include "suites.h"
#include "test_util.h"

/* ------------------------------------------------------------------------ */
/* (f) the two paths: factored vs merged in place (block.h, clip.h)          */

/* tolerances of merged vs factored: the same sums in another order (fp32
 * round-off of the tiny model's O(1) values) */
#define PATH_ATOL 2e-5
#define PATH_RTOL 2e-4

struct path_case {
    const char *method;
    size_t r;
    enum adapter_basis basis;
};

static const struct path_case path_cases[] = {
    { "lora", 2, ADAPTER_BASIS_DENSE },
    { "vera", 4, ADAPTER_BASIS_DENSE },
    { "randlora", 4, ADAPTER_BASIS_DENSE },
    { "randlora", 3, ADAPTER_BASIS_SPARSE },
    { "full", 0, ADAPTER_BASIS_DENSE },
};

/* max |got - want| <= rtol * max |want|: round-off measured against the
 * tensor's scale (single elements may cancel to near zero) */
static size_t path_compare(const char *name, const char *method, const float *got,
                           const float *want, size_t n, double rtol)
{
    double scale = 0.0, d = test_max_abs_diff(got, want, n);

    for (size_t i = 0; i < n; i++)
        if (fabs((double)want[i]) > scale)
            scale = fabs((double)want[i]);
    if (getenv("CLIP_VERBOSE"))
        fprintf(stderr, "  %-8s %-14s max |diff| %.3g, max |want| %.3g\n", method, name, d,
                scale);
    if (d <= rtol * scale || d == 0.0)
        return 0;
    fprintf(stderr, "%s %s: max |diff| %.3g > %.1g * max |want| %.3g\n", method, name, d, rtol,
            scale);
    return 1;
}

/* max |W| + |dW| over the adapted weights: the scale of a merge's round-off */
static double merged_scale(struct clip_adapters *ca, const struct clip_model *m)
{
    double most = 0.0;

    for (size_t k = 0; k < ca->n_sites; k++) {
        struct adapter *a = &ca->adapters[k];
        size_t n = a->d_out * a->d_in;
        float *dw = test_zeros(n);
        char name[160];
        const float *w;

        clip_site_name(&ca->sites[k], name, sizeof(name) - 8);
        strcat(name, ".weight");
        w = clip_model_tensor(m, name);
        ck_assert_ptr_nonnull(w);
        adapter_delta_weight(a, dw);
        for (size_t i = 0; i < n; i++) {
            double v = fabs((double)w[i]) + fabs((double)dw[i]);

            if (v > most)
                most = v;
        }
        free(dw);
    }
    return most;
}

/* clip_adapters_begin_step for `images` images and `texts` prompts of
 * `tokens` tokens, `micro` backward passes of each tower */
static void begin_step(struct clip_adapters *ca, struct clip_model *m, size_t images,
                       size_t texts, size_t tokens, size_t micro)
{
    const struct clip_step_size sz = {
        .images = images, .texts = texts, .text_tokens = tokens,
        .vision_micro = micro, .text_micro = micro,
    };

    clip_adapters_begin_step(ca, m, &sz);
}

/* one forward + backward on a path mode, the towers' last layers at the
 * pooled rows or whole; logits, loss, adapter and weight gradients out; the
 * weights are unmerged again before returning */
static float path_run(struct pipe *p, struct clip_grads *g, enum clip_path_mode mode,
                      bool pool_last, float *logits, float *grads, float *wgrads)
{
    struct clip_adapters *ca = p->ca;
    float loss;

    p->vr.pool_last = p->tr.pool_last = pool_last;
    ca->path_mode = mode;
    clip_adapters_zero_grad(ca);
    clip_grads_zero(g, p->m);
    begin_step(ca, p->m, p->B, p->B, p->T, 1);
    if (mode == CLIP_PATH_MERGED)
        ck_assert_uint_eq(ca->n_merged, ca->n_sites);
    if (mode == CLIP_PATH_FACTORED)
        ck_assert_uint_eq(ca->n_merged, 0);
    loss = pipe_backward(p, g, NULL);
    clip_adapters_end_step(ca, p->m);
    ck_assert_uint_eq(ca->n_merged, 0);
    memcpy(logits, p->h.logits, p->B * p->B * sizeof(float));
    memcpy(grads, ca->grads, ca->n_params * sizeof(float));
    memcpy(wgrads, g->buf, p->m->n_params * sizeof(float));
    return loss;
}

/* merged everywhere == factored everywhere: logits, loss, every adapter
 * gradient and every weight gradient (g: the frozen weights' own gradient,
 * which on the merged path comes from the same projected scratch), for each
 * method, adapters on all six linears of both towers; and the same with the
 * towers' last layers run whole instead of at the pooled rows
 * (block_pooled_forward), on either path */
START_TEST(test_paths_agree)
{
    const struct path_case *c = &path_cases[_i];
    struct clip_model m;
    struct clip_adapters ca;
    struct clip_grads cg;
    struct clip_target t[1];
    struct adapter_cfg acfg;
    struct pipe p;
    struct rng rg;
    float *pixels, *w0, *lg[5], *gr[5], *wg[5], loss[5];
    int32_t ids[3 * 7];
    size_t nt, fails = 0;
    int rc;

    tiny_model(&m, 21);
    ck_assert_int_eq(clip_targets_parse("all", t, 1, &nt), RL_OK);
    adapter_cfg_defaults(&acfg, c->method, c->r);
    acfg.basis = c->basis;
    rc = clip_adapters_init(&ca, &m, &acfg, t, nt, 3, 3);
    ck_assert_msg(rc == RL_OK, "%s", rl_error_msg());
    rng_init(&rg, 17);
    for (size_t i = 0; i < ca.n_params; i++)
        ca.params[i] += 0.3f * rng_normal(&rg);
    clip_grads_init(&cg, &m);
    pixels = test_randn(&rg, 3 * 3 * 8 * 8, 1.0f);
    tiny_ids(ids);
    pipe_init(&p, &m, &ca, 3, 7, pixels, ids);
    w0 = test_copy(m.params, m.n_params);
    for (int k = 0; k < 5; k++) {
        lg[k] = test_zeros(9);
        gr[k] = test_zeros(ca.n_params);
        wg[k] = test_zeros(m.n_params);
    }
    loss[0] = path_run(&p, &cg, CLIP_PATH_FACTORED, true, lg[0], gr[0], wg[0]);
    ck_assert_int_eq(memcmp(m.params, w0, m.n_params * sizeof(float)), 0);
    loss[1] = path_run(&p, &cg, CLIP_PATH_MERGED, true, lg[1], gr[1], wg[1]);
    loss[2] = path_run(&p, &cg, CLIP_PATH_AUTO, true, lg[2], gr[2], wg[2]);
    loss[3] = path_run(&p, &cg, CLIP_PATH_FACTORED, false, lg[3], gr[3], wg[3]);
    loss[4] = path_run(&p, &cg, CLIP_PATH_MERGED, false, lg[4], gr[4], wg[4]);
    for (int k = 1; k < 5; k++) {
        ck_assert_msg(fabsf(loss[k] - loss[0]) <= PATH_ATOL + PATH_RTOL * fabsf(loss[0]),
                      "%s: loss %.9g vs factored %.9g", c->method, loss[k], loss[0]);
        fails += tensor_compare("logits", lg[k], lg[0], 9, PATH_ATOL, PATH_RTOL);
        fails += path_compare("adapter grads", c->method, gr[k], gr[0], ca.n_params, PATH_RTOL);
        fails += path_compare("weight grads", c->method, wg[k], wg[0], m.n_params, PATH_RTOL);
    }
    ck_assert_uint_eq(fails, 0);
    /* three merge/unmerge pairs (merged twice, auto): the weights are back
     * within 3 ulp of max |W| + |dW| (clip.h) */
    {
        double bound = 3.0 * merged_scale(&ca, &m) * FLT_EPSILON;

        ck_assert_msg(test_max_abs_diff(m.params, w0, m.n_params) <= bound,
                      "%s: weights drifted %.3g > %.3g", c->method,
                      test_max_abs_diff(m.params, w0, m.n_params), bound);
    }
    for (int k = 0; k < 5; k++) {
        free(lg[k]);
        free(gr[k]);
        free(wg[k]);
    }
    free(w0);
    pipe_free(&p);
    free(pixels);
    clip_grads_free(&cg);
    clip_adapters_free(&ca);
    clip_model_free(&m);
}
END_TEST

/* an optimizer step of n_micro micro-batches (different images each) on a
 * path mode, declared to begin_step as `declared` micro-batches: with more
 * than one, the merged sites sum their weight gradients and end_step
 * projects each sum once. The adapter gradients (summed, not averaged) out. */
static void path_run_micro(struct pipe *p, enum clip_path_mode mode, enum clip_proj_mode proj,
                           size_t n_micro, size_t declared, float *pixels, size_t n_pixels,
                           float *grads)
{
    struct clip_adapters *ca = p->ca;
    struct rng rg;

    rng_init(&rg, 41);
    ca->path_mode = mode;
    ca->proj_mode = proj;
    clip_adapters_zero_grad(ca);
    begin_step(ca, p->m, p->B, p->B, p->T, declared);
    for (size_t k = 0; k < n_micro; k++) {
        for (size_t i = 0; i < n_pixels; i++)
            pixels[i] = rng_normal(&rg);
        pipe_backward(p, NULL, NULL);
    }
    if (declared > 1 && ca->n_merged == ca->n_sites && proj == CLIP_PROJ_WEIGHT &&
        !(ca->method.ops->flags & ADAPTER_F_GRAD_IS_GW)) {
        /* nothing projected yet: every gradient waits in its site's sum */
        for (size_t i = 0; i < ca->n_params; i++)
            ck_assert_float_eq(ca->grads[i], 0.0f);
        for (size_t k = 0; k < ca->n_sites; k++) {
            const struct adapter *a = &ca->adapters[k];
            float *zero = test_zeros(a->d_out * a->d_in);

            ck_assert_ptr_nonnull(ca->gw_sum[k]);
            ck_assert_double_gt(test_max_abs_diff(ca->gw_sum[k], zero, a->d_out * a->d_in), 0.0);
            free(zero);
        }
    }
    clip_adapters_end_step(ca, p->m);
    memcpy(grads, ca->grads, ca->n_params * sizeof(float));
}

/* gradient accumulation on the merged path: 3 micro-batches whose weight
 * gradients are summed per site and projected once == the same 3
 * projected one by one == the parameter gradients taken from the rows (no
 * weight gradient at all) == the factored path, for each method; the sums
 * are the adapters' own (one per merged site; none for full, which
 * accumulates into its gradient directly, nor on the rows route) and the
 * weights come back */
START_TEST(test_paths_micro_sum)
{
    const struct path_case *c = &path_cases[_i];
    const size_t n_pixels = 3 * 3 * 8 * 8;
    struct clip_model m;
    struct clip_adapters ca;
    struct clip_target t[1];
    struct adapter_cfg acfg;
    struct pipe p;
    struct rng rg;
    float *pixels, *w0, *gr[4];
    int32_t ids[3 * 7];
    size_t nt, fails = 0, n_sums = 0;

    tiny_model(&m, 23);
    ck_assert_int_eq(clip_targets_parse("all", t, 1, &nt), RL_OK);
    adapter_cfg_defaults(&acfg, c->method, c->r);
    acfg.basis = c->basis;
    ck_assert_int_eq(clip_adapters_init(&ca, &m, &acfg, t, nt, 3, 3), RL_OK);
    rng_init(&rg, 19);
    for (size_t i = 0; i < ca.n_params; i++)
        ca.params[i] += 0.3f * rng_normal(&rg);
    pixels = test_zeros(n_pixels);
    tiny_ids(ids);
    pipe_init(&p, &m, &ca, 3, 7, pixels, ids);
    w0 = test_copy(m.params, m.n_params);
    for (int k = 0; k < 4; k++)
        gr[k] = test_zeros(ca.n_params);
    path_run_micro(&p, CLIP_PATH_FACTORED, CLIP_PROJ_AUTO, 3, 3, pixels, n_pixels, gr[0]);
    path_run_micro(&p, CLIP_PATH_MERGED, CLIP_PROJ_WEIGHT, 3, 1, pixels, n_pixels, gr[1]);
    /* rows first: the sums are allocated only by the weight-gradient run */
    path_run_micro(&p, CLIP_PATH_MERGED, CLIP_PROJ_ROWS, 3, 3, pixels, n_pixels, gr[3]);
    for (size_t k = 0; k < ca.n_sites; k++)
        ck_assert_ptr_null(ca.gw_sum[k]);
    path_run_micro(&p, CLIP_PATH_MERGED, CLIP_PROJ_WEIGHT, 3, 3, pixels, n_pixels, gr[2]);
    for (size_t k = 0; k < ca.n_sites; k++)
        n_sums += ca.gw_sum[k] != NULL;
    /* all merged, all summed; full's gradient is its weight gradient, formed
     * in place with no sum */
    ck_assert_uint_eq(n_sums, (ca.method.ops->flags & ADAPTER_F_GRAD_IS_GW) ? 0 : ca.n_sites);
    fails += path_compare("per micro", c->method, gr[1], gr[0], ca.n_params, PATH_RTOL);
    fails += path_compare("summed", c->method, gr[2], gr[0], ca.n_params, PATH_RTOL);
    fails += path_compare("from rows", c->method, gr[3], gr[0], ca.n_params, PATH_RTOL);
    ck_assert_uint_eq(fails, 0);
    /* a step abandoned after its backward, before end_backward: the next
     * begin_step drops its sums instead of projecting them into the new
     * step's zeroed gradients */
    if (!(ca.method.ops->flags & ADAPTER_F_GRAD_IS_GW)) {
        ca.proj_mode = CLIP_PROJ_WEIGHT;
        clip_adapters_zero_grad(&ca);
        begin_step(&ca, &m, 3, 3, 7, 2);
        pipe_backward(&p, NULL, NULL);
        clip_adapters_zero_grad(&ca);
        begin_step(&ca, &m, 3, 3, 7, 2);
        clip_adapters_end_step(&ca, &m);
        for (size_t i = 0; i < ca.n_params; i++)
            ck_assert_float_eq(ca.grads[i], 0.0f);
    }
    ck_assert_double_le(test_max_abs_diff(m.params, w0, m.n_params),
                        2.0 * merged_scale(&ca, &m) * FLT_EPSILON);
    for (int k = 0; k < 4; k++)
        free(gr[k]);
    free(w0);
    pipe_free(&p);
    free(pixels);
    clip_adapters_free(&ca);
    clip_model_free(&m);
}
END_TEST

/* the choice: dropout (training) forces factored even when merged is asked
 * for; eval mode lifts it; auto follows adapter_choose_path per tower rows;
 * a tower with 0 rows is never merged */
START_TEST(test_paths_choice)
{
    struct clip_model m;
    struct clip_adapters ca;
    struct clip_target t[1];
    struct adapter_cfg acfg;
    size_t nt, want;

    tiny_model(&m, 4);
    ck_assert_int_eq(clip_targets_parse("all", t, 1, &nt), RL_OK);
    adapter_cfg_defaults(&acfg, "lora", 2);
    acfg.dropout = 0.1f;
    ck_assert_int_eq(clip_adapters_init(&ca, &m, &acfg, t, nt, 3, 3), RL_OK);
    ca.path_mode = CLIP_PATH_MERGED;
    begin_step(&ca, &m, 3, 3, 7, 1);
    ck_assert_uint_eq(ca.n_merged, 0);
    clip_adapters_end_step(&ca, &m);
    clip_adapters_set_training(&ca, false);
    begin_step(&ca, &m, 3, 0, 7, 1);
    ck_assert_uint_eq(ca.n_merged, 12);                     /* vision only */
    ck_assert(ca.vision[1].merged[BLOCK_LIN_FC2] && !ca.text[0].merged[BLOCK_LIN_Q]);
    clip_adapters_end_step(&ca, &m);
    ca.path_mode = CLIP_PATH_AUTO;
    begin_step(&ca, &m, 3, 3, 7, 1);
    want = 0;
    for (size_t k = 0; k < ca.n_sites; k++) {
        const struct clip_site *s = &ca.sites[k];
        const bool vision = s->tower == CLIP_TOWER_VISION;
        const bool pooled = s->layer == 1 && s->lin != BLOCK_LIN_K && s->lin != BLOCK_LIN_V;
        const size_t rows = pooled ? 3 : vision ? 15 : 21;
        const struct clip_step_size sz = { .images = 3, .texts = 3, .text_tokens = 7 };

        /* the last layer (1) runs q, out_proj, fc1, fc2 at the 3 pooled rows */
        ck_assert_uint_eq(clip_site_rows(&m, s, &sz), rows);
        want += adapter_choose_path(&ca.adapters[k], rows, 1) == ADAPTER_PATH_MERGED;
    }
    ck_assert_uint_eq(ca.n_merged, want);
    clip_adapters_end_step(&ca, &m);
    ck_assert_int_eq(clip_path_mode_parse("merged", &ca.path_mode), RL_OK);
    ck_assert_int_eq(ca.path_mode, CLIP_PATH_MERGED);
    ck_assert_int_eq(clip_path_mode_parse("fast", &ca.path_mode), RL_ERR_ARG);
    clip_adapters_free(&ca);
    clip_model_free(&m);
}
END_TEST

/* many merge / change params / unmerge rounds (an optimizer's life): the
 * drift stays within the documented bound, and rebase from the model's
 * file restores the weights bit for bit */
START_TEST(test_paths_rebase)
{
    struct clip_model m;
    struct clip_adapters ca;
    struct clip_target t[4];
    struct adapter_cfg acfg;
    struct rng rg;
    char dir[1024], path[1200];
    float *w0;
    double most = 0.0, drift;
    size_t nt;
    const int rounds = 50;

    tiny_model(&m, 8);
    ck_assert_int_eq(clip_targets_parse("vision:*:q_proj,fc1;text:1:fc2", t, 4, &nt), RL_OK);
    adapter_cfg_defaults(&acfg, "randlora", 3);
    ck_assert_int_eq(clip_adapters_init(&ca, &m, &acfg, t, nt, 3, 3), RL_OK);
    ck_assert_ptr_nonnull(test_tmpdir_make(dir, sizeof(dir), "clip"));
    write_weights(&m, dir, NULL, NULL);
    snprintf(path, sizeof(path), "%s/model.safetensors", dir);
    w0 = test_copy(m.params, m.n_params);
    /* nothing merged yet: rebase does nothing */
    ck_assert_int_eq(clip_adapters_rebase(&ca, &m, "/nonexistent/model.safetensors"), RL_OK);
    ca.path_mode = CLIP_PATH_MERGED;
    rng_init(&rg, 2);
    for (int k = 0; k < rounds; k++) {
        for (size_t i = 0; i < ca.n_params; i++)
            ca.params[i] += 0.05f * rng_normal(&rg);        /* a step */
        {
            double sc = merged_scale(&ca, &m);

            if (sc > most)
                most = sc;
        }
        begin_step(&ca, &m, 3, 3, 7, 1);
        ck_assert_uint_eq(ca.n_merged, ca.n_sites);
        ck_assert_int_eq(clip_adapters_rebase(&ca, &m, path), RL_ERR_ARG);   /* merged */
        clip_adapters_end_step(&ca, &m);
    }
    ck_assert_uint_eq(ca.round_trips, (size_t)rounds);
    drift = test_max_abs_diff(m.params, w0, m.n_params);
    /* documented: <= k ulp of max |W| + |dW| (ulp(x) <= 2 eps x... taken as
     * eps per pair of roundings of values below `most`) */
    ck_assert_msg(drift <= rounds * most * FLT_EPSILON, "drift %.3g > %.3g", drift,
                  rounds * most * FLT_EPSILON);
    if (getenv("CLIP_VERBOSE"))
        fprintf(stderr, "  rebase: %d round trips drifted %.3g (bound %.3g)\n", rounds, drift,
                rounds * most * FLT_EPSILON);
    ck_assert_msg(drift > 0.0, "expected some round-off to undo");
    ck_assert_int_eq(clip_adapters_rebase(&ca, &m, path), RL_OK);
    ck_assert_int_eq(memcmp(m.params, w0, m.n_params * sizeof(float)), 0);
    ck_assert_uint_eq(ca.round_trips, 0);
    free(w0);
    test_tmpdir_remove(dir);
    clip_adapters_free(&ca);
    clip_model_free(&m);
}
END_TEST

/* Weights kept merged across optimizer steps (the runner's life, for
 * methods with a cheaper re-merge): each step's begin_step re-merges
 * W + dW(old) -> W + dW(new) without an unmerge; other methods unmerge in
 * end_backward and merge afresh. Over 12 steps of changing parameters the merged model's logits,
 * loss and adapter gradients equal those of an identical model and
 * adapters on the factored path; end_step then returns the weights within
 * the documented drift, and rebase restores them bit for bit. */
START_TEST(test_paths_kept_merged)
{
    const struct path_case *c = &path_cases[_i];
    struct clip_model m, m2;
    struct clip_adapters ca, ca2;
    struct clip_target t[1];
    struct adapter_cfg acfg;
    struct pipe p, p2;
    struct rng rg;
    char dir[1024], path[1200];
    float *pixels, *w0;
    int32_t ids[3 * 7];
    size_t nt, fails = 0;
    double most = 0.0;
    const int rounds = 12;

    tiny_model(&m, 29);
    tiny_model(&m2, 29);
    ck_assert_int_eq(clip_targets_parse("all", t, 1, &nt), RL_OK);
    adapter_cfg_defaults(&acfg, c->method, c->r);
    acfg.basis = c->basis;
    ck_assert_int_eq(clip_adapters_init(&ca, &m, &acfg, t, nt, 3, 3), RL_OK);
    ck_assert_int_eq(clip_adapters_init(&ca2, &m2, &acfg, t, nt, 3, 3), RL_OK);
    ck_assert_ptr_nonnull(test_tmpdir_make(dir, sizeof(dir), "clip"));
    write_weights(&m, dir, NULL, NULL);
    snprintf(path, sizeof(path), "%s/model.safetensors", dir);
    w0 = test_copy(m.params, m.n_params);
    rng_init(&rg, 31);
    pixels = test_randn(&rg, 3 * 3 * 8 * 8, 1.0f);
    tiny_ids(ids);
    pipe_init(&p, &m, &ca, 3, 7, pixels, ids);
    pipe_init(&p2, &m2, &ca2, 3, 7, pixels, ids);
    ca.path_mode = CLIP_PATH_MERGED;
    ca2.path_mode = CLIP_PATH_FACTORED;
    for (int k = 0; k < rounds; k++) {
        float l1, l2;

        for (size_t i = 0; i < ca.n_params; i++)
            ca.params[i] += 0.02f * rng_normal(&rg);        /* an optimizer step */
        memcpy(ca2.params, ca.params, ca.n_params * sizeof(float));
        {
            double sc = merged_scale(&ca, &m2);             /* m2: the pristine W */

            if (sc > most)
                most = sc;
        }
        clip_adapters_zero_grad(&ca);
        clip_adapters_zero_grad(&ca2);
        begin_step(&ca, &m, 3, 3, 7, 1);
        ck_assert_uint_eq(ca.n_merged, ca.n_sites);
        begin_step(&ca2, &m2, 3, 3, 7, 1);
        l1 = pipe_backward(&p, NULL, NULL);
        clip_adapters_end_backward(&ca, &m);
        l2 = pipe_backward(&p2, NULL, NULL);
        clip_adapters_end_step(&ca2, &m2);
        ck_assert_msg(fabsf(l1 - l2) <= PATH_ATOL + PATH_RTOL * fabsf(l2),
                      "%s step %d: loss %.9g vs factored %.9g", c->method, k, l1, l2);
        fails += tensor_compare("logits", p.h.logits, p2.h.logits, 9, PATH_ATOL, PATH_RTOL);
        /* test_paths_agree's rtol; measured worst 6.8e-6 of max |grad|
         * over the 60 comparisons. (With steps of 0.2 the parameters grow
         * until the loss amplifies round-off: even a fresh merge then
         * differs from factored by up to 8e-4, so the steps stay small.) */
        fails += path_compare("adapter grads", c->method, ca.grads, ca2.grads, ca.n_params,
                              PATH_RTOL);
    }
    ck_assert_uint_eq(fails, 0);
    /* still merged where re-merging is cheaper (randlora), unmerged by
     * end_backward elsewhere */
    ck_assert_uint_eq(ca.n_merged, ca.method.ops->add_delta_change ? ca.n_sites : 0);
    ck_assert(!ca.merged_params == !ca.method.ops->add_delta_change);
    /* randlora: one merge, 11 re-merges (the parameters changed each time)
     * and one unmerge; the others: 12 merge/unmerge pairs */
    clip_adapters_end_step(&ca, &m);
    ck_assert_uint_eq(ca.n_merged, 0);
    ck_assert_uint_eq(ca.round_trips, (size_t)rounds);
    ck_assert_msg(test_max_abs_diff(m.params, w0, m.n_params) <= 2.0 * rounds * most * FLT_EPSILON,
                  "%s: drift %.3g > %.3g", c->method, test_max_abs_diff(m.params, w0, m.n_params),
                  2.0 * rounds * most * FLT_EPSILON);
    ck_assert_int_eq(clip_adapters_rebase(&ca, &m, path), RL_OK);
    ck_assert_int_eq(memcmp(m.params, w0, m.n_params * sizeof(float)), 0);
    free(w0);
    free(pixels);
    pipe_free(&p);
    pipe_free(&p2);
    test_tmpdir_remove(dir);
    clip_adapters_free(&ca);
    clip_adapters_free(&ca2);
    clip_model_free(&m);
    clip_model_free(&m2);
}
END_TEST

Suite *suite_clip_paths(void)
{
    Suite *s = suite_create("clip_paths");
    TCase *tc = tcase_create("clip_paths");
    const int n_cases = (int)(sizeof(path_cases) / sizeof(path_cases[0]));

    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_paths_agree, 0, n_cases);
    tcase_add_loop_test(tc, test_paths_micro_sum, 0, n_cases);
    tcase_add_loop_test(tc, test_paths_kept_merged, 0, n_cases);
    tcase_add_test(tc, test_paths_choice);
    tcase_add_test(tc, test_paths_rebase);
    suite_add_tcase(s, tc);
    return s;
}
