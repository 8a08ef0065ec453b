/*
 * check_clip_bf16.c: train.precision = bf16 on a whole clip-tiny step
 * (models/clip_precision.c, the bf16 products in models/block_linear.c).
 *
 * bf16 is not bit-exact, so the step is compared with the fp32 step on the
 * same weights and inputs within a bound derived from bf16 rounding
 * (step_bound below), and shown to fail that bound when the bf16 weights
 * are wrong. On a CPU without AVX512-BF16 or AMX: the precision is refused
 * with a clear message and nothing changes (tested), and the step
 * comparison prints why it skips.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/bf16.h"
#include "core/gemm_bf16.h"
#include "core/rng.h"
#include "core/status.h"
#include "experiments/config.h"
#include "models/clip.h"
#include "clip_harness.h"
#include "suites.h"
#include "test_util.h"

enum { STEP_B = 4, STEP_T = 9 };

struct step_case {
    struct clip_model m;
    struct clip_adapters ca;
    struct pipe p;
    float *pixels;
    int32_t ids[STEP_B * STEP_T];
};

/* clip-tiny with random weights, LoRA r8 on all six linears of both towers
 * (B non-zero, so every adapter gradient is), 4 images, 4 prompts of 9
 * tokens (bos, bytes, eos at 5..8), factored path everywhere (the path bf16
 * applies to) */
static void step_case_init(struct step_case *s)
{
    struct clip_target t[1];
    struct adapter_cfg acfg;
    struct rng r;
    size_t nt;

    memset(s, 0, sizeof(*s));
    ck_assert_int_eq(clip_model_preset(&s->m, "clip-tiny", 7), RL_OK);
    ck_assert_int_eq(clip_targets_parse("all", t, 1, &nt), RL_OK);
    adapter_cfg_defaults(&acfg, "lora", 8);
    ck_assert_int_eq(clip_adapters_init(&s->ca, &s->m, &acfg, t, nt, STEP_B, STEP_B), RL_OK);
    s->ca.path_mode = CLIP_PATH_FACTORED;
    rng_init(&r, 15);
    for (size_t i = 0; i < s->ca.n_params; i++)
        s->ca.params[i] += 0.05f * rng_normal(&r);
    s->pixels = test_randn(&r, STEP_B * 3 * 32 * 32, 1.0f);
    for (size_t b = 0; b < STEP_B; b++) {
        size_t eos = 5 + b;

        for (size_t k = 0; k < STEP_T; k++)
            s->ids[b * STEP_T + k] = k == 0 ? 256 : k < eos ? (int32_t)rng_below(&r, 256) : 257;
    }
    pipe_init(&s->p, &s->m, &s->ca, STEP_B, STEP_T, s->pixels, s->ids);
}

static void step_case_free(struct step_case *s)
{
    pipe_free(&s->p);
    free(s->pixels);
    clip_adapters_free(&s->ca);
    clip_model_free(&s->m);
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

/* ||a - b|| / ||b|| in double */
static double rel_l2(const float *a, const float *b, size_t n)
{
    double d = 0.0, r = 0.0;

    for (size_t i = 0; i < n; i++) {
        d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        r += (double)b[i] * b[i];
    }
    return sqrt(d / r);
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

/* bf16 within the bound of fp32 on loss and every adapter gradient; the
 * copies cover every linear weight of both towers (LoRA trains none of
 * them) */
START_TEST(test_bf16_step_within_bound)
{
    struct step_case s;
    float *g32, *g16, loss32, loss16;
    const size_t L = 4, lin_per_layer = 4 * 128 * 128 + 2 * 128 * 512;
    double dl, dg;

    if (gemm_bf16_check() != RL_OK) {
        printf("check_clip_bf16: step comparison skipped: %s\n", rl_error_msg());
        return;
    }
    step_case_init(&s);
    g32 = test_zeros(s.ca.n_params);
    g16 = test_zeros(s.ca.n_params);
    loss32 = step_run(&s, g32);
    ck_assert_int_eq(clip_adapters_set_precision(&s.ca, &s.m, CLIP_PRECISION_BF16), RL_OK);
    ck_assert_uint_eq(s.ca.n_w_bf16, 2 * L * lin_per_layer);
    loss16 = step_run(&s, g16);
    dl = fabs((double)loss16 - loss32) / fabs((double)loss32);
    dg = rel_l2(g16, g32, s.ca.n_params);
    printf("check_clip_bf16: loss %.7g (fp32 %.7g): rel. diff %.2e (bound %.2e); "
           "adapter grads rel. diff %.2e (bound %.2e)\n",
           (double)loss16, (double)loss32, dl, step_bound(4 * L), dg, step_bound(8 * L));
    ck_assert(isfinite(loss16));
    ck_assert_msg(dl <= step_bound(4 * L), "loss rel. diff %.3g", dl);
    ck_assert_msg(dg <= step_bound(8 * L), "grad rel. diff %.3g", dg);
    ck_assert_msg(dg > 0.0, "bf16 changed nothing: the bf16 path did not run");
    free(g32); free(g16);
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
    ck_assert_msg(rel_l2(g16, g32, s.ca.n_params) > step_bound(8 * L),
                  "zeroed bf16 weights stayed within the bound (%.3g)",
                  rel_l2(g16, g32, s.ca.n_params));
    free(g32); free(g16);
    step_case_free(&s);
}
END_TEST

/* every layer's every linear points at exactly the bf16 rounding of its own
 * fp32 weight, and on the merged path the copies are not used: the step is
 * the fp32 merged step bit for bit */
START_TEST(test_bf16_copies_are_the_weights)
{
    struct step_case s, s32;
    float *g32, *g16, loss32, loss16;

    if (gemm_bf16_check() != RL_OK) {
        printf("check_clip_bf16: wiring test skipped: %s\n", rl_error_msg());
        return;
    }
    step_case_init(&s);
    ck_assert_int_eq(clip_adapters_set_precision(&s.ca, &s.m, CLIP_PRECISION_BF16), RL_OK);
    for (int tw = 0; tw < CLIP_NUM_TOWERS; tw++)
        for (size_t l = 0; l < 4; l++) {
            const struct block_params *p = tw == CLIP_TOWER_VISION ? &s.m.vlayer[l]
                                                                   : &s.m.tlayer[l];
            const struct block_adapters *ad = tw == CLIP_TOWER_VISION ? &s.ca.vision[l]
                                                                      : &s.ca.text[l];
            const float *w[BLOCK_NUM_LINEARS] = { p->q_w, p->k_w, p->v_w, p->o_w, p->fc1_w,
                                                  p->fc2_w };

            ck_assert_ptr_null(ad->w_bf16[BLOCK_LIN_IN_PROJ]);  /* q, k, v's serve it */
            for (int i = 0; i < BLOCK_LIN_IN_PROJ; i++) {
                size_t n = i >= BLOCK_LIN_FC1 ? 128 * 512 : 128 * 128;

                ck_assert_ptr_nonnull(ad->w_bf16[i]);
                for (size_t k = 0; k < n; k++)
                    ck_assert_msg(ad->w_bf16[i][k] == bf16_from_f32(w[i][k]),
                                  "tower %d layer %zu linear %d element %zu", tw, l, i, k);
            }
        }
    /* merged everywhere, against a fresh fp32 case merged everywhere */
    step_case_init(&s32);
    g32 = test_zeros(s.ca.n_params);
    g16 = test_zeros(s.ca.n_params);
    s.ca.path_mode = s32.ca.path_mode = CLIP_PATH_MERGED;
    loss16 = step_run(&s, g16);
    loss32 = step_run(&s32, g32);
    ck_assert(loss16 == loss32);
    ck_assert_int_eq(memcmp(g16, g32, s.ca.n_params * sizeof(float)), 0);
    free(g32); free(g16);
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

/* full fine-tuning trains the weights: none of them gets a bf16 copy */
START_TEST(test_bf16_skips_trained_weights)
{
    struct clip_model m;
    struct clip_adapters ca;
    struct clip_target t[1];
    struct adapter_cfg acfg;
    size_t nt;

    if (gemm_bf16_check() != RL_OK) {
        printf("check_clip_bf16: full fine-tuning test skipped: %s\n", rl_error_msg());
        return;
    }
    ck_assert_int_eq(clip_model_preset(&m, "clip-tiny", 3), RL_OK);
    ck_assert_int_eq(clip_targets_parse("all", t, 1, &nt), RL_OK);
    adapter_cfg_defaults(&acfg, "full", 0);
    ck_assert_int_eq(clip_adapters_init(&ca, &m, &acfg, t, nt, 2, 2), RL_OK);
    ck_assert_int_eq(clip_adapters_set_precision(&ca, &m, CLIP_PRECISION_BF16), RL_OK);
    ck_assert_uint_eq(ca.n_w_bf16, 0);
    for (size_t l = 0; l < 4; l++)
        for (int i = 0; i < BLOCK_NUM_LINEARS; i++)
            ck_assert_ptr_null(ca.vision[l].w_bf16[i]);
    clip_adapters_free(&ca);
    clip_model_free(&m);
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
    tcase_add_test(tc, test_precision_parse_and_refusal);
    tcase_add_test(tc, test_bf16_skips_trained_weights);
    tcase_add_test(tc, test_train_precision_key);
    suite_add_tcase(s, tc);
    return s;
}
