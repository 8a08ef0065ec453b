/*
 * check_dinov2_grads.c: every weight's gradient of a DINOv2 backbone
 * (dinov2_backward_full, used to pretrain vit-tiny):
 *
 *   gradcheck   central differences of L = sum(features * R) against the
 *               analytic gradient of every tensor group: patch conv weight
 *               and bias, class token, position table, register tokens,
 *               the layers' 16 tensors, the final layernorm (a small
 *               random DINOv2 with a register token, weights spread so no
 *               gradient is trivially small);
 *   untouched   LayerScale and the mask token get no gradient (zero);
 *   refusal     a run at another input size than the native one.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "core/status.h"
#include "models/dinov2.h"
#include "suites.h"
#include "test_util.h"

struct full_pipe {
    struct clip_model *m;
    struct dinov2_run r;
    const float *pixels;
    float *feats, *proj;
    size_t B, FD;
};

static double full_loss(void *ctx)
{
    struct full_pipe *p = ctx;

    ck_assert_int_eq(dinov2_forward(&p->r, p->m, NULL, p->pixels, p->B, DINOV2_POOL_CLS_MEAN,
                                    p->feats), RL_OK);
    return dot_double(p->feats, p->proj, p->B * p->FD);
}

/* 16 px, patch 4, width 16, 2 layers, 2 heads, MLP 32, 1 register token */
static void small_model(struct clip_model *m, uint64_t seed)
{
    struct clip_config c;
    struct rng rg;

    ck_assert_int_eq(dinov2_config_preset(&c, "vit-tiny"), RL_OK);
    c.vision.image_size = 16;
    c.vision.hidden = 16;
    c.vision.layers = 2;
    c.vision.heads = 2;
    c.vision.intermediate = 32;
    ck_assert_int_eq(dinov2_model_init(m, &c), RL_OK);
    dinov2_model_init_random(m, seed);
    /* HF's init is std 0.02: spread every weight so each path carries signal */
    rng_init(&rg, seed + 1);
    for (size_t i = 0; i < m->n_params; i++)
        m->params[i] += 0.2f * rng_normal(&rg);
}

START_TEST(test_full_gradcheck)
{
    struct clip_model m;
    struct dinov2_grads g;
    struct full_pipe p;
    struct rng rg;
    float *pixels;
    size_t fails = 0, npix, C, F, lf, sizes[BLOCK_NUM_PARAMS];

    small_model(&m, 3);
    C = m.cfg.vision.hidden;
    F = m.cfg.vision.intermediate;
    npix = 2 * 3 * 16 * 16;
    rng_init(&rg, 9);
    pixels = test_randn(&rg, npix, 1.0f);
    memset(&p, 0, sizeof(p));
    p.m = &m;
    p.B = 2;
    p.FD = dinov2_feature_dim(&m, DINOV2_POOL_CLS_MEAN);
    p.pixels = pixels;
    p.feats = test_zeros(p.B * p.FD);
    p.proj = test_randn(&rg, p.B * p.FD, 1.0f);
    dinov2_run_init(&p.r, &m, p.B, true);
    dinov2_grads_init(&g, &m);
    ck_assert_uint_eq(g.n, m.n_params);
    full_loss(&p);
    ck_assert_int_eq(dinov2_backward_full(&p.r, &m, &g, p.proj), RL_OK);

    /* each group at its own offset: the gradient lies where the weight does */
#define GROUP(name, field, count, probes)                                                  \
    fails += gradcheck(name, m.w.field, g.w.field, count, full_loss, &p, 1e-2f, 2e-3, 2e-2, \
                       probes)
    GROUP("patch.weight", v_patch, C * 3 * 4 * 4, 24);
    GROUP("patch.bias", v_patch_b, C, 16);
    GROUP("cls_token", v_class, C, 16);
    GROUP("position_embeddings", v_pos, (1 + 16) * C, 32);
    GROUP("register_tokens", v_registers, C, 16);
    GROUP("layernorm.weight", v_post_w, C, 16);
    GROUP("layernorm.bias", v_post_b, C, 16);
#undef GROUP
    lf = block_param_sizes(sizes, C, F);
    for (size_t l = 0; l < 2; l++) {
        const size_t stride = lf + 2 * C;
        float *pl = m.w.v_layers + l * stride, *gl = g.w.v_layers + l * stride;
        size_t off = 0;

        for (size_t k = 0; k < BLOCK_NUM_PARAMS; k++) {
            char name[48];

            snprintf(name, sizeof(name), "layer%zu.tensor%zu", l, k);
            fails += gradcheck(name, pl + off, gl + off, sizes[k], full_loss, &p, 1e-2f, 2e-3,
                               2e-2, 12);
            off += sizes[k];
        }
        /* LayerScale: no gradient */
        for (size_t c = 0; c < 2 * C; c++)
            ck_assert_float_eq(gl[lf + c], 0.0f);
    }
    for (size_t c = 0; c < C; c++)
        ck_assert_float_eq(g.w.v_mask[c], 0.0f);
    ck_assert_uint_eq(fails, 0);

    /* accumulates: a second backward doubles it */
    {
        float *once = test_copy(g.buf, g.n);

        full_loss(&p);
        ck_assert_int_eq(dinov2_backward_full(&p.r, &m, &g, p.proj), RL_OK);
        for (size_t i = 0; i < g.n; i++)
            ck_assert_msg(fabsf(g.buf[i] - 2.0f * once[i]) <= 1e-4f * (1.0f + fabsf(once[i])),
                          "float %zu: %g then %g", i, once[i], g.buf[i]);
        free(once);
    }
    dinov2_grads_free(&g);
    dinov2_run_free(&p.r);
    free(pixels);
    free(p.feats);
    free(p.proj);
    clip_model_free(&m);
}
END_TEST

START_TEST(test_full_refuses_other_size)
{
    struct clip_model m;
    struct dinov2_grads g;
    struct dinov2_run r;
    float *pixels, *feats, *dfeats;

    small_model(&m, 4);
    ck_assert_int_eq(dinov2_set_input_size(&m, 24), RL_OK);
    dinov2_run_init(&r, &m, 1, true);
    dinov2_grads_init(&g, &m);
    pixels = test_zeros(3 * 24 * 24);
    feats = test_zeros(dinov2_feature_dim(&m, DINOV2_POOL_CLS));
    dfeats = test_zeros(dinov2_feature_dim(&m, DINOV2_POOL_CLS));
    ck_assert_int_eq(dinov2_forward(&r, &m, NULL, pixels, 1, DINOV2_POOL_CLS, feats), RL_OK);
    ck_assert_int_eq(dinov2_backward_full(&r, &m, &g, dfeats), RL_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(rl_error_msg(), "native input size 16"));
    free(pixels);
    free(feats);
    free(dfeats);
    dinov2_grads_free(&g);
    dinov2_run_free(&r);
    clip_model_free(&m);
}
END_TEST

Suite *suite_dinov2_grads(void)
{
    Suite *s = suite_create("dinov2_grads");
    TCase *tc = tcase_create("core");

    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_full_gradcheck);
    tcase_add_test(tc, test_full_refuses_other_size);
    suite_add_tcase(s, tc);
    return s;
}
