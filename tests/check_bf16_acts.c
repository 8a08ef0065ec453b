/*
 * check_bf16_acts.c: activations kept for the backward in bf16 under
 * train.precision = bf16 (block_acts_point_as with BLOCK_ACTS_BF16,
 * clip_*_run_store_bf16; docs/kernels.md, "bf16 activations").
 *
 * Exact where exactness is owed: a layer storing q, k, v, atty and fch in
 * bf16 runs the same forward bit for bit, keeps every other saved tensor
 * (layer-norm statistics, attention probabilities, h) bit for bit in fp32,
 * keeps exactly the bf16 roundings of the fp32 layer's q, k, v, atty and
 * fch, and its backward equals, bit for bit, the fp32-stored layer's
 * backward with those five rounded to bf16 in place; with bf16 products as
 * with fp32 ones. On a whole clip-tiny
 * step (every method of the study): the loss unchanged bit for bit, every
 * gradient within a bound derived from bf16 rounding of the fp32-stored
 * step's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/bf16.h"
#include "core/gemm_bf16.h"
#include "core/rng.h"
#include "core/status.h"
#include "methods/adapter.h"
#include "models/block.h"
#include "models/clip.h"
#include "clip_harness.h"
#include "suites.h"
#include "test_util.h"

/* ------------------------------------------------------------------------ */
/* one layer                                                                 */

enum { LB = 2, LT = 5, LC = 16, LNH = 2, LF = 64 };

/* a layer's parameters, input, output weights R (loss = sum(y R)) and, when
 * bf16 products are asked for, the bf16 copies of its four weights */
struct layer_case {
    struct block_config cfg;
    float *pbuf;
    struct block_params p;
    float *x, *R;
    bf16 *w16;
    struct block_adapters ad;
};

static void layer_case_init(struct layer_case *lc, enum block_act act, bool causal,
                            bool bf16_products)
{
    size_t sizes[BLOCK_NUM_PARAMS];
    const size_t np = block_param_sizes(sizes, LC, LF);
    struct rng r;

    memset(lc, 0, sizeof(*lc));
    lc->cfg = (struct block_config){ .C = LC, .NH = LNH, .F = LF, .act = act,
                                     .causal = causal, .eps = 1e-5f };
    rng_init(&r, 41);
    lc->pbuf = test_randn(&r, np, 0.3f);
    block_params_point(&lc->p, lc->pbuf, LC, LF);
    lc->x = test_randn(&r, LB * LT * LC, 1.0f);
    lc->R = test_randn(&r, LB * LT * LC, 1.0f);
    if (bf16_products) {
        const enum block_linear lin[6] = { BLOCK_LIN_Q, BLOCK_LIN_K, BLOCK_LIN_V, BLOCK_LIN_OUT,
                                           BLOCK_LIN_FC1, BLOCK_LIN_FC2 };
        size_t off = 0;

        lc->w16 = xmalloc_array(4 * LC * LC + 2 * LC * LF, sizeof(bf16));
        for (int i = 0; i < 6; i++) {
            size_t d_out, d_in;

            block_linear_shape(lin[i], LC, LF, &d_out, &d_in);
            bf16_from_f32_array(lc->w16 + off, block_linear_weight(&lc->p, lin[i]),
                                d_out * d_in);
            lc->ad.w_bf16[lin[i]] = lc->w16 + off;
            off += d_out * d_in;
        }
    }
}

static void layer_case_free(struct layer_case *lc)
{
    free(lc->pbuf);
    free(lc->x);
    free(lc->R);
    free(lc->w16);
}

/* one forward and backward of a layer with its acts stored as `st`:
 * every output kept for comparison */
struct layer_out {
    float *abuf, *scratch, *gabuf, *gbuf;
    struct block_acts a;
    float *y, *dx;
    size_t n_grads;
};

/* the forward into o (acts stored as st) */
static void layer_forward(struct layer_out *o, const struct layer_case *lc,
                          enum block_acts_store st)
{
    const size_t n = LB * LT * LC;

    memset(o, 0, sizeof(*o));
    o->abuf = test_zeros(block_acts_size_as(LB, LT, LC, LNH, LF, st));
    o->scratch = test_zeros(block_acts_scratch_size_as(LB, LT, LC, LF, st));
    block_acts_point_as(&o->a, o->abuf, o->scratch, LB, LT, LC, LNH, LF, st);
    o->y = test_zeros(n);
    block_forward_adapted(o->y, &o->a, lc->x, &lc->p, lc->w16 ? &lc->ad : NULL, &lc->cfg, LB,
                          LT);
}

/* then the backward of sum(y R): dx and every parameter's gradient, or,
 * with frozen_weights, all but the four linears' weights (their input
 * gradients then run as bf16 products when lc has the copies) */
static void layer_backward(struct layer_out *o, const struct layer_case *lc, bool frozen_weights)
{
    size_t sizes[BLOCK_NUM_PARAMS];
    struct block_grads g;
    struct block_grad_acts ga;

    o->n_grads = block_param_sizes(sizes, LC, LF);
    o->gbuf = test_zeros(o->n_grads);
    o->gabuf = test_zeros(block_grad_acts_size(LB, LT, LC, LNH, LF));
    o->dx = test_zeros(LB * LT * LC);
    block_grads_point(&g, o->gbuf, LC, LF);
    if (frozen_weights)
        g.q_w = g.k_w = g.v_w = g.o_w = g.fc1_w = g.fc2_w = NULL;
    block_grad_acts_point(&ga, o->gabuf, LB, LT, LC, LNH, LF);
    block_backward_adapted(o->dx, &g, &ga, lc->R, &o->a, lc->x, &lc->p,
                           lc->w16 ? &lc->ad : NULL, &lc->cfg, LB, LT);
}

static void layer_out_free(struct layer_out *o)
{
    free(o->abuf);
    free(o->scratch);
    free(o->gabuf);
    free(o->gbuf);
    free(o->y);
    free(o->dx);
}

/* n values equal bit for bit, and not all of them representable in bf16
 * (so that a tensor rounded to bf16 would fail the equality) */
static void assert_exact_fp32(const char *what, const float *got, const float *want, size_t n)
{
    size_t off_grid = 0;

    ck_assert_msg(memcmp(got, want, n * sizeof(float)) == 0,
                  "%s: changed by the bf16 storage (must stay fp32, bit for bit)", what);
    for (size_t i = 0; i < n; i++)
        off_grid += bf16_to_f32(bf16_from_f32(want[i])) != want[i];
    ck_assert_msg(off_grid > 0, "%s: every value is a bf16 value: the check could not fail",
                  what);
}

/* the stored copy is exactly the rounding of the fp32 tensor */
static void assert_rounding_of(const char *what, const uint16_t *got, const float *want,
                               size_t n)
{
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(got[i] == bf16_from_f32(want[i]), "%s[%zu]: %04x, bf16 of %.9g is %04x",
                      what, i, got[i], (double)want[i], bf16_from_f32(want[i]));
}

static void round_in_place(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = bf16_to_f32(bf16_from_f32(x[i]));
}

/* the whole comparison for one layer configuration */
static void check_layer(enum block_act act, bool causal, bool bf16_products, bool frozen)
{
    const size_t N = LB * LT, NC = N * LC, NF = N * LF, NHTT = LB * LNH * LT * LT;
    struct layer_case lc;
    struct layer_out ref, got;

    layer_case_init(&lc, act, causal, bf16_products);
    layer_forward(&ref, &lc, BLOCK_ACTS_FP32);
    layer_forward(&got, &lc, BLOCK_ACTS_BF16);
    ck_assert_ptr_null(ref.a.q16);
    ck_assert_ptr_null(ref.a.atty16);
    ck_assert_ptr_null(ref.a.fch16);
    ck_assert_ptr_nonnull(got.a.q16);
    ck_assert_ptr_nonnull(got.a.atty16);
    ck_assert_ptr_nonnull(got.a.fch16);
    /* the forward: the same output, the fp32 tensors the same bits, the
     * bf16 ones the rounding of the fp32 layer's */
    ck_assert_msg(memcmp(got.y, ref.y, NC * sizeof(float)) == 0, "the forward changed");
    assert_exact_fp32("ln1_mean", got.a.ln1_mean, ref.a.ln1_mean, N);
    assert_exact_fp32("ln1_rstd", got.a.ln1_rstd, ref.a.ln1_rstd, N);
    assert_exact_fp32("ln2_mean", got.a.ln2_mean, ref.a.ln2_mean, N);
    assert_exact_fp32("ln2_rstd", got.a.ln2_rstd, ref.a.ln2_rstd, N);
    assert_exact_fp32("att", got.a.att, ref.a.att, NHTT);
    assert_exact_fp32("h", got.a.h, ref.a.h, NC);
    assert_rounding_of("q16", got.a.q16, ref.a.q, NC);
    assert_rounding_of("k16", got.a.k16, ref.a.k, NC);
    assert_rounding_of("v16", got.a.v16, ref.a.v, NC);
    assert_rounding_of("atty16", got.a.atty16, ref.a.atty, NC);
    assert_rounding_of("fch16", got.a.fch16, ref.a.fch, NF);
    /* the backward: the fp32-stored layer's with q, k, v, atty and fch
     * rounded */
    round_in_place(ref.a.q, NC);
    round_in_place(ref.a.k, NC);
    round_in_place(ref.a.v, NC);
    round_in_place(ref.a.atty, NC);
    round_in_place(ref.a.fch, NF);
    layer_backward(&ref, &lc, frozen);
    layer_backward(&got, &lc, frozen);
    ck_assert_msg(memcmp(got.dx, ref.dx, NC * sizeof(float)) == 0, "dx differs");
    ck_assert_msg(memcmp(got.gbuf, ref.gbuf, ref.n_grads * sizeof(float)) == 0,
                  "a parameter gradient differs");
    layer_out_free(&ref);
    layer_out_free(&got);
    layer_case_free(&lc);
}

/* fp32 products (the storage is the precision's, not the products'):
 * quick_gelu and gelu, causal or not, weights trained or frozen */
START_TEST(test_layer_bf16_store_exact)
{
    check_layer(BLOCK_ACT_QUICK_GELU, false, false, false);
    check_layer(BLOCK_ACT_GELU, true, false, false);
    check_layer(BLOCK_ACT_QUICK_GELU, false, false, true);
}
END_TEST

/* bf16 products: out_proj reads the kept bf16 atty directly (gemm_bf16),
 * the same bits as rounding the fp32 atty in the product (gemm_bf16_f32a) */
START_TEST(test_layer_bf16_store_exact_bf16_products)
{
    if (gemm_bf16_check() != RL_OK) {
        printf("check_bf16_acts: bf16-product layer test skipped: %s\n", rl_error_msg());
        return;
    }
    check_layer(BLOCK_ACT_QUICK_GELU, false, true, true);
    check_layer(BLOCK_ACT_GELU, true, true, true);
    check_layer(BLOCK_ACT_QUICK_GELU, false, true, false);
}
END_TEST

/* the layouts: fp32 is block_acts_size as ever; bf16 saves half of the
 * floats of q, k, v, atty and fch (to 64-byte rounding), and its scratch
 * holds the fp32 q, k, v */
START_TEST(test_layout_sizes)
{
    const size_t B = 3, T = 7, C = 24, NH = 4, F = 96;
    const size_t NC = B * T * C, NF = B * T * F;
    const size_t s32 = block_acts_size(B, T, C, NH, F);
    const size_t s16 = block_acts_size_as(B, T, C, NH, F, BLOCK_ACTS_BF16);

    ck_assert_uint_eq(block_acts_size_as(B, T, C, NH, F, BLOCK_ACTS_FP32), s32);
    ck_assert_uint_le(s32 - s16, (4 * NC + NF) / 2);
    ck_assert_uint_ge(s32 - s16, (4 * NC + NF) / 2 - 5 * 16);
    ck_assert_uint_eq(block_acts_scratch_size_as(B, T, C, F, BLOCK_ACTS_FP32),
                      block_acts_scratch_size(B, T, C, F));
    ck_assert_uint_eq(block_acts_scratch_size_as(B, T, C, F, BLOCK_ACTS_BF16),
                      block_acts_scratch_size(B, T, C, F) + 3 * NC);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* a whole clip-tiny step                                                    */

/* a step case with train.precision = bf16 when bf16_products */
static void step_init(struct step_case *s, const char *method, size_t rank, float noise,
                      bool bf16_products)
{
    step_case_init_method(s, method, rank, noise);
    if (bf16_products)
        ck_assert_int_eq(clip_adapters_set_precision(&s->ca, &s->m, CLIP_PRECISION_BF16),
                         RL_OK);
}

static float step_run(struct step_case *s, float *grads)
{
    const struct clip_step_size sz = {
        .images = STEP_B, .texts = STEP_B, .text_tokens = STEP_T, .vision_micro = 1, .text_micro = 1,
    };
    float loss;

    clip_adapters_zero_grad(&s->ca);
    clip_adapters_begin_step(&s->ca, &s->m, &sz);
    loss = pipe_backward(&s->p, NULL, NULL);
    clip_adapters_end_step(&s->ca, &s->m);
    memcpy(grads, s->ca.grads, s->ca.n_params * sizeof(float));
    return loss;
}

/*
 * The bound. Storing a tensor in bf16 moves each element by at most u =
 * 2^-8 relative. The forward is unchanged (tested exactly), so the towers'
 * output gradients are too, and a gradient moves only through what the
 * backward reads from the kept tensors of its own tower's layers: per layer
 * atty (out_proj's weight and adapter gradients: one relative perturbation
 * of at most u), fch (read twice, by the activation recomputed for fc2's
 * gradients and by the activation's derivative: 2u) and q, k, v (each read
 * once by attention's backward, v's perturbation reaching dq and dk through
 * the probabilities' gradient: 3u). Adding these first-order relative
 * perturbations along the backward through L layers, the layers taken as
 * non-expanding as in check_clip_bf16.c:
 *     ||g_bf16-stored - g_fp32-stored|| <= 6 L u ||g_fp32-stored||
 * (L = 4 for clip-tiny: 0.094). A worst case; the step lands far inside.
 */
static double store_bound(size_t L)
{
    return 6.0 * (double)L * BF16_UNIT_ROUNDOFF;
}

static void check_step(const char *method, size_t rank, float noise, bool bf16_products)
{
    struct step_case s;
    float *g32, *g16, loss32, loss16;
    double d;

    step_init(&s, method, rank, noise, bf16_products);
    g32 = test_zeros(s.ca.n_params);
    g16 = test_zeros(s.ca.n_params);
    loss32 = step_run(&s, g32);
    clip_vision_run_store_bf16(&s.p.vr, &s.m);
    clip_text_run_store_bf16(&s.p.tr, &s.m);
    ck_assert_uint_eq(s.p.vr.acts_store, BLOCK_ACTS_BF16);
    loss16 = step_run(&s, g16);
    d = test_rel_l2(g16, g32, s.ca.n_params);
    printf("check_bf16_acts: %s (%s products): grads rel. diff %.2e (bound %.2e)\n", method,
           bf16_products ? "bf16" : "fp32", d, store_bound(4));
    ck_assert_msg(loss16 == loss32, "%s: the forward changed (loss %.9g, fp32-stored %.9g)",
                  method, (double)loss16, (double)loss32);
    ck_assert_msg(d <= store_bound(4), "%s: grad rel. diff %.3g", method, d);
    ck_assert_msg(d > 0.0, "%s: nothing changed: the bf16 storage did not run", method);
    free(g32);
    free(g16);
    step_case_free(&s);
}

/* every method of the study (RandLoRA's branch is scaled by alpha / r =
 * 20: its parameters moved 20x less), with bf16 products when the CPU has
 * them (the precision the storage is for), and with fp32 products */
START_TEST(test_step_within_bound)
{
    const bool have_bf16 = gemm_bf16_check() == RL_OK;

    if (!have_bf16)
        printf("check_bf16_acts: bf16 products unavailable (%s): fp32 products only\n",
               rl_error_msg());
    for (int pass = 0; pass < (have_bf16 ? 2 : 1); pass++) {
        const bool prod = have_bf16 && pass == 0;

        check_step("lora", 8, 0.05f, prod);
        check_step("vera", 64, 0.05f, prod);
        check_step("randlora", 6, 0.0025f, prod);
        check_step("nola", 8, 0.05f, prod);
        check_step("full", 0, 0.0f, prod);
    }
}
END_TEST

/* recomputation keeps the bf16 storage exact: the runs that recompute
 * each lower layer's forward (re-rounding its kept copies; made at once
 * with the bf16 storage by clip_*_run_init_as) give the storing runs'
 * loss and gradients bit for bit, as in fp32 (check_clip_recompute.c) */
START_TEST(test_recompute_with_bf16_store)
{
    const bool have_bf16 = gemm_bf16_check() == RL_OK;
    struct step_case s;
    float *ga, *gb, la, lb;

    step_init(&s, "lora", 8, 0.05f, have_bf16);
    ga = test_zeros(s.ca.n_params);
    gb = test_zeros(s.ca.n_params);
    clip_vision_run_store_bf16(&s.p.vr, &s.m);
    clip_text_run_store_bf16(&s.p.tr, &s.m);
    la = step_run(&s, ga);
    clip_vision_run_free(&s.p.vr);
    clip_text_run_free(&s.p.tr);
    clip_vision_run_init_as(&s.p.vr, &s.m, STEP_B, true, true, BLOCK_ACTS_BF16);
    clip_text_run_init_as(&s.p.tr, &s.m, STEP_B, 0, true, true, BLOCK_ACTS_BF16);
    ck_assert(s.p.vr.recompute && s.p.tr.acts_store == BLOCK_ACTS_BF16);
    lb = step_run(&s, gb);
    ck_assert_msg(la == lb, "loss %.9g, recomputing %.9g", (double)la, (double)lb);
    ck_assert_msg(memcmp(ga, gb, s.ca.n_params * sizeof(float)) == 0,
                  "recomputation changed a gradient under bf16 storage");
    free(ga);
    free(gb);
    step_case_free(&s);
}
END_TEST

Suite *suite_bf16_acts(void)
{
    Suite *s = suite_create("bf16_acts");
    TCase *tc = tcase_create("store");

    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, test_layer_bf16_store_exact);
    tcase_add_test(tc, test_layer_bf16_store_exact_bf16_products);
    tcase_add_test(tc, test_layout_sizes);
    tcase_add_test(tc, test_step_within_bound);
    tcase_add_test(tc, test_recompute_with_bf16_store);
    suite_add_tcase(s, tc);
    return s;
}
