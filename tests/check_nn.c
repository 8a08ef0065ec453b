/*
 * check_nn.c: the kernels of models/nn.c: linear, layer norm, activations
 * (and exp_vec.h), residual; and every OpenMP kernel against its serial run.
 * The embeddings, the patch embedding, the class token and row pooling are
 * in check_nn_embed.c; the tolerances and helpers both use in nn_checks.h.
 *
 * Four kinds of test, one test case each:
 *   gradcheck  central finite differences of L = sum(out * R) (R fixed and
 *              random, so dout = R) for every input and every parameter of
 *              every kernel, on tiny shapes, the forward recomputed per probe;
 *   naive      the BLAS paths against plain loops (linear_*_naive);
 *   null       a NULL gradient is skipped without touching the others, and
 *              backward accumulates: two calls give exactly twice one call;
 *   known      values worked out by hand.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "models/exp_vec.h"
#include "models/nn.h"
#include "nn_checks.h"
#include "suites.h"
#include "test_util.h"

/* ======================================================================== */
/* linear                                                                    */
/* ======================================================================== */

struct linear_ctx {
    float *out, *inp, *w, *b;
    const float *r;
    size_t N, C, OC;
};

static double linear_loss(void *p)
{
    struct linear_ctx *x = p;

    linear_forward(x->out, x->inp, x->w, x->b, x->N, x->C, x->OC);
    return dot_double(x->out, x->r, x->N * x->OC);
}

static void linear_gradcheck(int with_bias)
{
    enum { N = 5, C = 7, OC = 6 };
    struct rng rg;
    struct linear_ctx x;
    float *dinp = test_zeros(N * C), *dw = test_zeros(OC * C), *db = test_zeros(OC);

    rng_init(&rg, 101);
    x.inp = test_randn(&rg, N * C, 1.0f);
    x.w = test_randn(&rg, OC * C, 0.5f);
    x.b = with_bias ? test_randn(&rg, OC, 0.5f) : NULL;
    x.r = test_randn(&rg, N * OC, 1.0f);
    x.out = test_zeros(N * OC);
    x.N = N;
    x.C = C;
    x.OC = OC;

    linear_forward(x.out, x.inp, x.w, x.b, N, C, OC);
    linear_backward(dinp, dw, with_bias ? db : NULL, x.r, x.inp, x.w, N, C, OC);
    ASSERT_GRAD("inp", x.inp, dinp, N * C, linear_loss, &x, GC_EPS_LIN);
    ASSERT_GRAD("w", x.w, dw, OC * C, linear_loss, &x, GC_EPS_LIN);
    if (with_bias)
        ASSERT_GRAD("b", x.b, db, OC, linear_loss, &x, GC_EPS_LIN);
    else
        ck_assert_uint_eq(count_not_value(db, 0.0f, OC), 0);

    free(x.inp); free(x.w); free(x.b); free((float *)x.r); free(x.out);
    free(dinp); free(dw); free(db);
}

START_TEST(test_linear_gradcheck_bias)
{
    linear_gradcheck(1);
}
END_TEST

START_TEST(test_linear_gradcheck_nobias)
{
    linear_gradcheck(0);
}
END_TEST

/* BLAS path against the naive loops, backward starting from nonzero
 * gradients so the accumulation (beta = 1) is part of what is compared */
START_TEST(test_linear_naive_vs_blas)
{
    enum { N = 37, C = 65, OC = 29 };
    struct rng rg;
    float *inp, *w, *b, *dout, *out, *out_ref;
    float *g0[3], *g[3], *gref[3];
    const size_t n[3] = { N * C, OC * C, OC };

    rng_init(&rg, 102);
    inp = test_randn(&rg, N * C, 1.0f);
    w = test_randn(&rg, OC * C, 0.2f);
    b = test_randn(&rg, OC, 0.5f);
    dout = test_randn(&rg, N * OC, 1.0f);
    out = test_zeros(N * OC);
    out_ref = test_zeros(N * OC);

    for (int bias = 0; bias < 2; bias++) {
        fill_value(out, 123.0f, N * OC);        /* forward must overwrite */
        linear_forward(out, inp, w, bias ? b : NULL, N, C, OC);
        linear_forward_naive(out_ref, inp, w, bias ? b : NULL, N, C, OC);
        ASSERT_CLOSE("linear out", out, out_ref, N * OC);
    }

    for (int i = 0; i < 3; i++) {
        g0[i] = test_randn(&rg, n[i], 1.0f);
        g[i] = test_copy(g0[i], n[i]);
        gref[i] = test_copy(g0[i], n[i]);
    }
    linear_backward(g[0], g[1], g[2], dout, inp, w, N, C, OC);
    linear_backward_naive(gref[0], gref[1], gref[2], dout, inp, w, N, C, OC);
    ASSERT_CLOSE("linear dinp", g[0], gref[0], n[0]);
    ASSERT_CLOSE("linear dw", g[1], gref[1], n[1]);
    ASSERT_CLOSE("linear db", g[2], gref[2], n[2]);

    for (int i = 0; i < 3; i++) {
        free(g0[i]); free(g[i]); free(gref[i]);
    }
    free(inp); free(w); free(b); free(dout); free(out); free(out_ref);
}
END_TEST

/* Every NULL pattern of (dinp, dw, db), BLAS and naive: the gradients given
 * equal the full computation, the skipped ones are not touched. */
START_TEST(test_linear_null_and_accumulate)
{
    enum { N = 5, C = 7, OC = 6 };
    struct rng rg;
    float *inp, *w, *dout, *full[3], *g[3];
    const size_t n[3] = { N * C, OC * C, OC };

    rng_init(&rg, 103);
    inp = test_randn(&rg, N * C, 1.0f);
    w = test_randn(&rg, OC * C, 0.5f);
    dout = test_randn(&rg, N * OC, 1.0f);
    for (int i = 0; i < 3; i++) {
        full[i] = test_zeros(n[i]);
        g[i] = test_zeros(n[i]);
    }

    for (int naive = 0; naive < 2; naive++) {
        void (*bwd)(float *, float *, float *, const float *, const float *, const float *,
                    size_t, size_t, size_t) = naive ? linear_backward_naive : linear_backward;

        for (int i = 0; i < 3; i++)
            memset(full[i], 0, n[i] * sizeof(float));
        bwd(full[0], full[1], full[2], dout, inp, w, N, C, OC);

        for (unsigned mask = 0; mask < 8; mask++) {
            float *p[3];

            for (int i = 0; i < 3; i++) {
                fill_value(g[i], 0.0f, n[i]);
                p[i] = mask & (1u << i) ? g[i] : NULL;
            }
            bwd(p[0], p[1], p[2], dout, inp, w, N, C, OC);
            for (int i = 0; i < 3; i++)
                if (p[i])
                    ASSERT_SAME("linear grad", g[i], full[i], n[i]);
                else
                    ck_assert_uint_eq(count_not_value(g[i], 0.0f, n[i]), 0);
        }

        /* accumulation: a second call adds the same again */
        for (int i = 0; i < 3; i++)
            memcpy(g[i], full[i], n[i] * sizeof(float));
        bwd(g[0], g[1], g[2], dout, inp, w, N, C, OC);
        for (int i = 0; i < 3; i++)
            ck_assert_uint_eq(count_not_double(g[i], full[i], n[i]), 0);
    }

    for (int i = 0; i < 3; i++) {
        free(full[i]); free(g[i]);
    }
    free(inp); free(w); free(dout);
}
END_TEST

/* ======================================================================== */
/* layer norm                                                                */
/* ======================================================================== */

#define LN_EPS 1e-5f

struct ln_ctx {
    float *out, *mean, *rstd, *inp, *w, *b;
    const float *r;
    size_t N, C;
};

static double ln_loss(void *p)
{
    struct ln_ctx *x = p;

    layernorm_forward(x->out, x->mean, x->rstd, x->inp, x->w, x->b, x->N, x->C, LN_EPS);
    return dot_double(x->out, x->r, x->N * x->C);
}

START_TEST(test_layernorm_gradcheck)
{
    enum { N = 5, C = 7 };
    struct rng rg;
    struct ln_ctx x;
    float *dinp = test_zeros(N * C), *dw = test_zeros(C), *db = test_zeros(C);

    rng_init(&rg, 201);
    /* rows with a nonzero mean and a non-unit spread, so that the mean and
     * rstd terms of the backward both matter */
    x.inp = test_randn(&rg, N * C, 1.5f);
    for (size_t i = 0; i < N * C; i++)
        x.inp[i] += 0.5f * (float)(i / C);
    x.w = test_randn(&rg, C, 1.0f);
    x.b = test_randn(&rg, C, 1.0f);
    x.r = test_randn(&rg, N * C, 1.0f);
    x.out = test_zeros(N * C);
    x.mean = test_zeros(N);
    x.rstd = test_zeros(N);
    x.N = N;
    x.C = C;

    layernorm_forward(x.out, x.mean, x.rstd, x.inp, x.w, x.b, N, C, LN_EPS);
    layernorm_backward(dinp, dw, db, x.r, x.inp, x.w, x.mean, x.rstd, N, C);
    ASSERT_GRAD("ln inp", x.inp, dinp, N * C, ln_loss, &x, GC_EPS_NL);
    ASSERT_GRAD("ln w", x.w, dw, C, ln_loss, &x, GC_EPS_NL);
    ASSERT_GRAD("ln b", x.b, db, C, ln_loss, &x, GC_EPS_NL);

    free(x.inp); free(x.w); free(x.b); free((float *)x.r);
    free(x.out); free(x.mean); free(x.rstd);
    free(dinp); free(dw); free(db);
}
END_TEST

START_TEST(test_layernorm_null_and_accumulate)
{
    enum { N = 5, C = 7 };
    struct rng rg;
    float *inp, *w, *b, *dout, *out, *mean, *rstd, *full[3], *g[3];
    const size_t n[3] = { N * C, C, C };

    rng_init(&rg, 202);
    inp = test_randn(&rg, N * C, 1.0f);
    w = test_randn(&rg, C, 1.0f);
    b = test_randn(&rg, C, 1.0f);
    dout = test_randn(&rg, N * C, 1.0f);
    out = test_zeros(N * C);
    mean = test_zeros(N);
    rstd = test_zeros(N);
    layernorm_forward(out, mean, rstd, inp, w, b, N, C, LN_EPS);
    for (int i = 0; i < 3; i++) {
        full[i] = test_zeros(n[i]);
        g[i] = test_zeros(n[i]);
    }
    layernorm_backward(full[0], full[1], full[2], dout, inp, w, mean, rstd, N, C);

    for (unsigned mask = 0; mask < 8; mask++) {
        float *p[3];

        for (int i = 0; i < 3; i++) {
            fill_value(g[i], 0.0f, n[i]);
            p[i] = mask & (1u << i) ? g[i] : NULL;
        }
        layernorm_backward(p[0], p[1], p[2], dout, inp, w, mean, rstd, N, C);
        for (int i = 0; i < 3; i++)
            if (p[i])
                ASSERT_SAME("ln grad", g[i], full[i], n[i]);
            else
                ck_assert_uint_eq(count_not_value(g[i], 0.0f, n[i]), 0);
    }
    for (int i = 0; i < 3; i++)
        memcpy(g[i], full[i], n[i] * sizeof(float));
    layernorm_backward(g[0], g[1], g[2], dout, inp, w, mean, rstd, N, C);
    for (int i = 0; i < 3; i++)
        ck_assert_uint_eq(count_not_double(g[i], full[i], n[i]), 0);

    for (int i = 0; i < 3; i++) {
        free(full[i]); free(g[i]);
    }
    free(inp); free(w); free(b); free(dout); free(out); free(mean); free(rstd);
}
END_TEST

START_TEST(test_layernorm_known)
{
    enum { C = 4 };
    /* row 0 constant: normalises to 0, so out = b; row 1 = 1,2,3,4:
     * mean 2.5, biased variance 1.25 */
    float inp[2 * C] = { 3.25f, 3.25f, 3.25f, 3.25f, 1.0f, 2.0f, 3.0f, 4.0f };
    float w[C] = { 1.0f, 1.0f, 1.0f, 1.0f };
    float b[C] = { 0.5f, -1.0f, 2.0f, 0.0f };
    float out[2 * C], mean[2], rstd[2];
    double s = 1.0 / sqrt(1.25 + (double)LN_EPS);

    layernorm_forward(out, mean, rstd, inp, w, b, 2, C, LN_EPS);
    ASSERT_SAME("ln const row", out, b, C);
    ck_assert_float_eq(mean[0], 3.25f);
    ck_assert_float_eq_tol(rstd[0], 1.0f / sqrtf(LN_EPS), 1e-3f * (1.0f / sqrtf(LN_EPS)));
    ck_assert_float_eq(mean[1], 2.5f);
    ck_assert_double_eq_tol(rstd[1], s, 1e-6);
    for (int c = 0; c < C; c++)
        ck_assert_double_eq_tol(out[C + c], ((c + 1) - 2.5) * s + b[c], 1e-6);
}
END_TEST

/* ======================================================================== */
/* activations and residual                                                  */
/* ======================================================================== */

struct act_ctx {
    void (*fwd)(float *, const float *, size_t);
    float *out, *inp;
    const float *r;
    size_t n;
};

static double act_loss(void *p)
{
    struct act_ctx *x = p;

    x->fwd(x->out, x->inp, x->n);
    return dot_double(x->out, x->r, x->n);
}

static void act_gradcheck(const char *name, void (*fwd)(float *, const float *, size_t),
                          void (*bwd)(float *, const float *, const float *, size_t))
{
    enum { N = 5 * 7 };
    struct rng rg;
    struct act_ctx x;
    float *dinp = test_zeros(N), *again;

    rng_init(&rg, 301);
    x.fwd = fwd;
    x.inp = test_randn(&rg, N, 2.0f);     /* both tails and the bend */
    x.r = test_randn(&rg, N, 1.0f);
    x.out = test_zeros(N);
    x.n = N;

    bwd(dinp, x.r, x.inp, N);
    ASSERT_GRAD(name, x.inp, dinp, N, act_loss, &x, GC_EPS_NL);
    /* accumulation */
    again = test_copy(dinp, N);
    bwd(again, x.r, x.inp, N);
    ck_assert_uint_eq(count_not_double(again, dinp, N), 0);

    free(x.inp); free((float *)x.r); free(x.out); free(dinp); free(again);
}

START_TEST(test_quick_gelu_gradcheck)
{
    act_gradcheck("quick_gelu", quick_gelu_forward, quick_gelu_backward);
}
END_TEST

START_TEST(test_gelu_gradcheck)
{
    act_gradcheck("gelu", gelu_forward, gelu_backward);
}
END_TEST

START_TEST(test_activations_known)
{
    float x[5] = { 1.0f, 0.0f, -1.0f, -100.0f, 100.0f }, y[5], dy[5] = { 0 }, one[5];

    fill_value(one, 1.0f, 5);

    /* quick_gelu(x) = x sigmoid(1.702 x) */
    quick_gelu_forward(y, x, 5);
    ck_assert_double_eq_tol(y[0], 1.0 / (1.0 + exp(-1.702)), 1e-6);
    ck_assert_float_eq(y[1], 0.0f);
    ck_assert_double_eq_tol(y[2], -1.0 / (1.0 + exp(1.702)), 1e-6);
    ck_assert_float_eq(y[3], 0.0f);        /* no NaN from exp overflow */
    ck_assert_float_eq(y[4], 100.0f);
    quick_gelu_backward(dy, one, x, 5);
    ck_assert_double_eq_tol(dy[1], 0.5, 1e-7);   /* s(0) + 0 */
    ck_assert_float_eq(dy[3], 0.0f);
    ck_assert_float_eq(dy[4], 1.0f);

    /* exact gelu, not the tanh approximation (which gives 0.841192 at 1) */
    gelu_forward(y, x, 5);
    ck_assert_double_eq_tol(y[0], 0.8413447460685429, 1e-6);
    ck_assert_float_eq(y[1], 0.0f);
    ck_assert_double_eq_tol(y[2], -0.15865525393145707, 1e-6);
    ck_assert_float_eq(y[3], 0.0f);
    ck_assert_float_eq(y[4], 100.0f);
    fill_value(dy, 0.0f, 5);
    gelu_backward(dy, one, x, 5);
    /* gelu'(1) = Phi(1) + phi(1) */
    ck_assert_double_eq_tol(dy[0], 0.8413447460685429 + exp(-0.5) / sqrt(2.0 * M_PI), 1e-6);
    ck_assert_double_eq_tol(dy[1], 0.5, 1e-7);
    ck_assert_float_eq(dy[3], 0.0f);
    ck_assert_float_eq(dy[4], 1.0f);
}
END_TEST

/* exp_vec (the activations' and softmax's exp): within 2 ulp of exp in
 * double over its range, stepping through [-90, 90] (~490k points, every
 * ulp band of r = x - n ln2); 0 below -86.6, +inf above expf's last finite
 * input, NaN for NaN; and the loop over it gives the same as one by one
 * (the vectorized body is the scalar one) */
START_TEST(test_exp_vec)
{
    const float hi = 0x1.62e42ep+6f;       /* the largest x with a finite expf */
    double worst = 0.0;
    float worst_x = 0.0f;
    size_t n = 0;
    float xs[1000], ys[1000];

    for (float x = -90.0f; x <= 90.0f; x += 0.000367f) {
        float y = exp_vec(x);
        double want = exp((double)x), ulp;

        if (x < -86.6f) {
            ck_assert_float_eq(y, 0.0f);
            continue;
        }
        if (x > hi) {
            ck_assert(isinf(y) && y > 0.0f);
            continue;
        }
        ulp = ldexp(1.0, ilogb(want) - 23);
        if (fabs((double)y - want) / ulp > worst) {
            worst = fabs((double)y - want) / ulp;
            worst_x = x;
        }
        n++;
    }
    ck_assert_uint_gt(n, 400000);
    ck_assert_msg(worst <= 2.0, "exp_vec: %.3f ulp at %.9g", worst, worst_x);
    ck_assert_float_eq(exp_vec(0.0f), 1.0f);
    ck_assert_float_eq(exp_vec(hi), expf(hi));
    ck_assert(isfinite(exp_vec(hi)));
    ck_assert(isnan(exp_vec(NAN)));
    ck_assert(isinf(exp_vec(INFINITY)));
    ck_assert_float_eq(exp_vec(-INFINITY), 0.0f);
    for (size_t i = 0; i < 1000; i++)
        xs[i] = -80.0f + 0.17f * (float)i;
    for (size_t i = 0; i < 1000; i++)
        ys[i] = exp_vec(xs[i]);
    for (size_t i = 0; i < 1000; i += 37) {
        volatile float x = xs[i];

        ck_assert_float_eq(ys[i], exp_vec(x));
    }
}
END_TEST

struct res_ctx {
    float *out, *a, *b;
    const float *r;
    size_t n;
};

static double res_loss(void *p)
{
    struct res_ctx *x = p;

    residual_forward(x->out, x->a, x->b, x->n);
    return dot_double(x->out, x->r, x->n);
}

START_TEST(test_residual)
{
    enum { N = 5 * 7 };
    struct rng rg;
    struct res_ctx x;
    float *da = test_zeros(N), *db = test_zeros(N), *g = test_zeros(N);

    rng_init(&rg, 401);
    x.a = test_randn(&rg, N, 1.0f);
    x.b = test_randn(&rg, N, 1.0f);
    x.r = test_randn(&rg, N, 1.0f);
    x.out = test_zeros(N);
    x.n = N;

    residual_forward(x.out, x.a, x.b, N);
    for (size_t i = 0; i < N; i++)
        ck_assert_float_eq(x.out[i], x.a[i] + x.b[i]);
    residual_backward(da, db, x.r, N);
    ASSERT_GRAD("res a", x.a, da, N, res_loss, &x, GC_EPS_LIN);
    ASSERT_GRAD("res b", x.b, db, N, res_loss, &x, GC_EPS_LIN);

    /* NULL on either side; accumulation */
    residual_backward(NULL, g, x.r, N);
    ASSERT_SAME("res db only", g, db, N);
    fill_value(g, 0.0f, N);
    residual_backward(g, NULL, x.r, N);
    ASSERT_SAME("res da only", g, da, N);
    residual_backward(g, NULL, x.r, N);
    ck_assert_uint_eq(count_not_double(g, da, N), 0);
    residual_backward(NULL, NULL, x.r, N);

    free(x.a); free(x.b); free((float *)x.r); free(x.out); free(da); free(db); free(g);
}
END_TEST
/* ======================================================================== */
/* linear, known values and degenerate sizes                                 */
/* ======================================================================== */

START_TEST(test_linear_known)
{
    /* inp (2,3), w (2,3): out = inp @ w^T + b */
    const float inp[6] = { 1, 2, 3, -1, 0, 2 };
    const float w[6] = { 1, 0, -1, 0.5f, 0.5f, 0.5f };
    const float b[2] = { 10, -10 };
    const float want[4] = { 1 - 3 + 10, 0.5f * 6 - 10, -1 - 2 + 10, 0.5f * 1 - 10 };
    float out[4];

    linear_forward(out, inp, w, b, 2, 3, 2);
    ASSERT_SAME("linear known", out, want, 4);

    /* C = 0: the output is the bias (or zero), no BLAS call with a zero
     * leading dimension */
    fill_value(out, 7.0f, 4);
    linear_forward(out, inp, w, b, 2, 0, 2);
    ck_assert_float_eq(out[0], 10.0f);
    ck_assert_float_eq(out[3], -10.0f);
    linear_forward(out, inp, w, NULL, 2, 0, 2);
    ck_assert_uint_eq(count_not_value(out, 0.0f, 4), 0);
}
END_TEST

/* ======================================================================== */
/* the OpenMP paths                                                          */
/* ======================================================================== */

/* The tiny shapes above run every loop serially (nn.c parallelises a loop
 * only from 2^14 floats up). Here each kernel runs once on a shape above that
 * threshold and again one row / one image at a time (serial); the loops are
 * row-independent and sum in the same order, so the results must be
 * bit-identical; only the GEMM outputs, whose blocking depends on the
 * shape, are compared with the BLAS tolerance. */
START_TEST(test_parallel_matches_serial)
{
    enum { N = 64, C = 320, B = 4, T = 16, PB = 6, CH = 3, H = 32, W = 32, PS = 8, PC = 8 };
    enum { P = (H / PS) * (W / PS), K = CH * PS * PS };
    struct rng rg;
    float *inp, *w, *b, *dout, *o1, *o2, *m1, *m2, *s1, *s2, *g1[3], *g2[3];
    float *pix, *pw, *pdo, *pt1, *pt2, *sc1, *sc2;
    int32_t ids[B * T];

    rng_init(&rg, 901);
    inp = test_randn(&rg, N * C, 1.0f);
    w = test_randn(&rg, N * C, 1.0f);
    b = test_randn(&rg, C, 1.0f);
    dout = test_randn(&rg, N * C, 1.0f);
    o1 = test_zeros(N * C);
    o2 = test_zeros(N * C);
    m1 = test_zeros(N);
    m2 = test_zeros(N);
    s1 = test_zeros(N);
    s2 = test_zeros(N);
    for (int i = 0; i < 3; i++) {
        g1[i] = test_zeros(N * C);
        g2[i] = test_zeros(N * C);
    }

    /* layer norm, forward and all three gradients */
    layernorm_forward(o1, m1, s1, inp, w, b, N, C, LN_EPS);
    layernorm_backward(g1[0], g1[1], g1[2], dout, inp, w, m1, s1, N, C);
    for (size_t n = 0; n < N; n++) {
        layernorm_forward(o2 + n * C, m2 + n, s2 + n, inp + n * C, w, b, 1, C, LN_EPS);
        layernorm_backward(g2[0] + n * C, g2[1], g2[2], dout + n * C, inp + n * C, w,
                           m2 + n, s2 + n, 1, C);
    }
    ASSERT_SAME("par ln out", o1, o2, N * C);
    ASSERT_SAME("par ln rstd", s1, s2, N);
    ASSERT_SAME("par ln dinp", g1[0], g2[0], N * C);
    ASSERT_SAME("par ln dw", g1[1], g2[1], C);
    ASSERT_SAME("par ln db", g1[2], g2[2], C);

    /* activations and residual */
    for (int k = 0; k < 3; k++) {
        void (*fwd)(float *, const float *, size_t) =
            k == 0 ? quick_gelu_forward : k == 1 ? gelu_forward : NULL;
        void (*bwd)(float *, const float *, const float *, size_t) =
            k == 0 ? quick_gelu_backward : k == 1 ? gelu_backward : NULL;

        memset(g1[0], 0, N * C * sizeof(float));
        memset(g2[0], 0, N * C * sizeof(float));
        if (fwd) {
            fwd(o1, inp, N * C);
            bwd(g1[0], dout, inp, N * C);
        } else {
            residual_forward(o1, inp, w, N * C);
            residual_backward(g1[0], NULL, dout, N * C);
        }
        for (size_t n = 0; n < N; n++) {
            if (fwd) {
                fwd(o2 + n * C, inp + n * C, C);
                bwd(g2[0] + n * C, dout + n * C, inp + n * C, C);
            } else {
                residual_forward(o2 + n * C, inp + n * C, w + n * C, C);
                residual_backward(g2[0] + n * C, NULL, dout + n * C, C);
            }
        }
        ASSERT_SAME("par act out", o1, o2, N * C);
        ASSERT_SAME("par act dinp", g1[0], g2[0], N * C);
    }

    /* linear (N,C) -> (N,C): the bias fill and db against the naive loops */
    memset(g1[2], 0, C * sizeof(float));
    memset(g2[2], 0, C * sizeof(float));
    linear_forward(o1, inp, w, b, N, C, C / 64);   /* w reused as (C/64, C) */
    linear_forward_naive(o2, inp, w, b, N, C, C / 64);
    ASSERT_CLOSE("par linear out", o1, o2, N * (C / 64));
    linear_backward(NULL, NULL, g1[2], dout, inp, w, N, C, C);
    linear_backward_naive(NULL, NULL, g2[2], dout, inp, w, N, C, C);
    ASSERT_SAME("par linear db", g1[2], g2[2], C);

    /* embeddings: (B,T,C) with B*T = N; positions summed over the batch */
    for (size_t i = 0; i < B * T; i++)
        ids[i] = (int32_t)((i * 7) % T);
    memset(g1[1], 0, N * C * sizeof(float));
    memset(g2[1], 0, N * C * sizeof(float));
    embedding_forward(o1, ids, w, w, B, T, C);
    embedding_backward(NULL, g1[1], dout, ids, B, T, C);
    for (size_t bi = 0; bi < B; bi++) {
        embedding_forward(o2 + bi * T * C, ids + bi * T, w, w, 1, T, C);
        embedding_backward(NULL, g2[1], dout + bi * T * C, ids + bi * T, 1, T, C);
    }
    ASSERT_SAME("par emb out", o1, o2, N * C);
    ASSERT_SAME("par emb dwpe", g1[1], g2[1], T * C);

    /* class token: (B, T-1 patches + 1, C) */
    for (int i = 0; i < 3; i++) {
        memset(g1[i], 0, N * C * sizeof(float));
        memset(g2[i], 0, N * C * sizeof(float));
    }
    class_embed_forward(o1, inp, b, w, B, T - 1, C);
    class_embed_backward(g1[0], g1[1], g1[2], dout, B, T - 1, C);
    for (size_t bi = 0; bi < B; bi++) {
        class_embed_forward(o2 + bi * T * C, inp + bi * (T - 1) * C, b, w, 1, T - 1, C);
        class_embed_backward(g2[0] + bi * (T - 1) * C, g2[1], g2[2], dout + bi * T * C,
                             1, T - 1, C);
    }
    ASSERT_SAME("par class out", o1, o2, N * C);
    ASSERT_SAME("par class dpatch", g1[0], g2[0], B * (T - 1) * C);
    ASSERT_SAME("par class dcls", g1[1], g2[1], C);
    ASSERT_SAME("par class dpos", g1[2], g2[2], T * C);

    /* patch embedding: im2col and col2im over PB*P*K >= 2^14 floats */
    pix = test_randn(&rg, PB * CH * H * W, 1.0f);
    pw = test_randn(&rg, PC * K, 0.1f);
    pdo = test_randn(&rg, PB * P * PC, 1.0f);
    pt1 = test_zeros(PB * P * K);
    pt2 = test_zeros(PB * P * K);
    sc1 = test_zeros(PB * P * K);
    sc2 = test_zeros(PB * P * K);
    memset(g1[0], 0, PB * CH * H * W * sizeof(float));   /* N*C >= PB*CH*H*W */
    memset(g2[0], 0, PB * CH * H * W * sizeof(float));
    ck_assert_uint_ge(N * C, PB * CH * H * W);
    ck_assert_uint_ge(N * C, PB * P * PC);
    patch_embed_forward(o1, pt1, pix, pw, PB, CH, H, W, PS, PC);
    patch_embed_backward(g1[0], NULL, sc1, pdo, pt1, pw, PB, CH, H, W, PS, PC);
    for (size_t bi = 0; bi < PB; bi++) {
        patch_embed_forward(o2 + bi * P * PC, pt2 + bi * P * K, pix + bi * CH * H * W, pw,
                            1, CH, H, W, PS, PC);
        patch_embed_backward(g2[0] + bi * CH * H * W, NULL, sc2, pdo + bi * P * PC,
                             pt2 + bi * P * K, pw, 1, CH, H, W, PS, PC);
    }
    ASSERT_SAME("par patches", pt1, pt2, PB * P * K);
    ASSERT_CLOSE("par patch out", o1, o2, PB * P * PC);
    ASSERT_CLOSE("par patch dpixels", g1[0], g2[0], PB * CH * H * W);

    for (int i = 0; i < 3; i++) {
        free(g1[i]); free(g2[i]);
    }
    free(inp); free(w); free(b); free(dout); free(o1); free(o2);
    free(m1); free(m2); free(s1); free(s2);
    free(pix); free(pw); free(pdo); free(pt1); free(pt2); free(sc1); free(sc2);
}
END_TEST

Suite *suite_nn(void)
{
    Suite *s = suite_create("nn");
    TCase *grad = tcase_create("gradcheck");
    TCase *naive = tcase_create("naive");
    TCase *null = tcase_create("null");
    TCase *known = tcase_create("known");

    tcase_add_test(grad, test_linear_gradcheck_bias);
    tcase_add_test(grad, test_linear_gradcheck_nobias);
    tcase_add_test(grad, test_layernorm_gradcheck);
    tcase_add_test(grad, test_quick_gelu_gradcheck);
    tcase_add_test(grad, test_gelu_gradcheck);
    tcase_add_test(grad, test_residual);
    suite_add_tcase(s, grad);

    tcase_add_test(naive, test_linear_naive_vs_blas);
    tcase_add_test(naive, test_parallel_matches_serial);
    suite_add_tcase(s, naive);

    tcase_add_test(null, test_linear_null_and_accumulate);
    tcase_add_test(null, test_layernorm_null_and_accumulate);
    suite_add_tcase(s, null);

    tcase_add_test(known, test_layernorm_known);
    tcase_add_test(known, test_activations_known);
    tcase_add_test(known, test_exp_vec);
    tcase_add_test(known, test_linear_known);
    suite_add_tcase(s, known);
    return s;
}
