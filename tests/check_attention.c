/*
 * check_attention.c: multi-head self-attention (models/attention.c).
 *
 *   - central finite differences of dq, dk, dv for the BLAS path and the
 *     naive path, causal and not, NH = 2 and NH = 1;
 *   - naive loops against the BLAS path on a larger, odd shape;
 *   - known values: the causal mask (exact zeros, rows summing to 1, no
 *     information flowing from the future), uniform attention;
 *   - conventions: forward overwrites, backward accumulates, NULL gradients
 *     are skipped, the scratch buffer need not be initialised.
 */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "models/nn.h"
#include "suites.h"
#include "test_util.h"

/* one attention problem with its buffers */
struct att_case {
    size_t B, T, C, NH;
    bool causal, naive;
    float *q, *k, *v;      /* (B,T,C) inputs               */
    float *out, *att;      /* (B,T,C), (B,NH,T,T) outputs  */
    float *R;              /* (B,T,C) fixed upstream dout  */
    float *dq, *dk, *dv;   /* (B,T,C) gradients            */
    float *scratch;        /* (B,NH,T,T)                   */
};

static size_t ac_n(const struct att_case *c) { return c->B * c->T * c->C; }
static size_t ac_natt(const struct att_case *c) { return c->B * c->NH * c->T * c->T; }

static void ac_init(struct att_case *c, size_t B, size_t T, size_t C, size_t NH,
                    bool causal, uint64_t seed)
{
    struct rng r;
    size_t n, na;

    memset(c, 0, sizeof(*c));
    c->B = B; c->T = T; c->C = C; c->NH = NH; c->causal = causal;
    n = ac_n(c);
    na = ac_natt(c);
    rng_init(&r, seed);
    c->q = test_randn(&r, n, 1.0f);
    c->k = test_randn(&r, n, 1.0f);
    c->v = test_randn(&r, n, 1.0f);
    c->R = test_randn(&r, n, 1.0f);
    c->out = test_zeros(n);
    c->att = test_zeros(na);
    c->dq = test_zeros(n);
    c->dk = test_zeros(n);
    c->dv = test_zeros(n);
    c->scratch = test_zeros(na);
}

static void ac_free(struct att_case *c)
{
    free(c->q); free(c->k); free(c->v); free(c->R);
    free(c->out); free(c->att);
    free(c->dq); free(c->dk); free(c->dv); free(c->scratch);
}

static void ac_forward(struct att_case *c)
{
    if (c->naive)
        attention_forward_naive(c->out, c->att, c->q, c->k, c->v,
                                c->B, c->T, c->C, c->NH, c->causal);
    else
        attention_forward(c->out, c->att, c->q, c->k, c->v,
                          c->B, c->T, c->C, c->NH, c->causal);
}

/* backward with dout = R into whichever of dq, dk, dv are given */
static void ac_backward(struct att_case *c, float *dq, float *dk, float *dv)
{
    if (c->naive)
        attention_backward_naive(dq, dk, dv, c->R, c->att, c->q, c->k, c->v,
                                 c->B, c->T, c->C, c->NH, c->causal);
    else
        attention_backward(dq, dk, dv, c->scratch, c->R, c->att, c->q, c->k, c->v,
                           c->B, c->T, c->C, c->NH, c->causal);
}

/* elements where |a - b| > tol, silently (for differences a test expects) */
static size_t count_differ(const float *a, const float *b, size_t n, float tol)
{
    size_t m = 0;

    for (size_t i = 0; i < n; i++)
        m += !(fabsf(a[i] - b[i]) <= tol);
    return m;
}

/* L = sum(out * R), the forward recomputed from the current inputs */
static double ac_loss(void *ctx)
{
    struct att_case *c = ctx;

    ac_forward(c);
    return dot_double(c->out, c->R, ac_n(c));
}

/* ------------------------------------------------------------------------ */

/*
 * Finite differences in float: eps = 1e-3 on inputs of scale 1; the loss
 * is a sum of 80 products in double from float outputs (relative error
 * ~1e-7, absolute ~1e-6), so the numeric derivative carries ~1e-3 of noise
 * at worst; truncation error is O(eps^2). Tolerance: atol 2e-3, rtol 1e-2.
 */
#define GC_EPS  1e-3f
#define GC_ATOL 2e-3
#define GC_RTOL 1e-2

static void gradcheck_attention(size_t NH, bool causal, bool naive)
{
    struct att_case c;
    size_t n;

    ac_init(&c, 2, 5, 8, NH, causal, 1000 + NH * 10 + causal * 2 + naive);
    c.naive = naive;
    n = ac_n(&c);
    ac_forward(&c);
    ac_backward(&c, c.dq, c.dk, c.dv);
    ck_assert_int_eq(gradcheck("q", c.q, c.dq, n, ac_loss, &c, GC_EPS, GC_ATOL, GC_RTOL, n), 0);
    ck_assert_int_eq(gradcheck("k", c.k, c.dk, n, ac_loss, &c, GC_EPS, GC_ATOL, GC_RTOL, n), 0);
    ck_assert_int_eq(gradcheck("v", c.v, c.dv, n, ac_loss, &c, GC_EPS, GC_ATOL, GC_RTOL, n), 0);
    /* the gradient is not trivially zero (a broken backward returning 0
     * would pass gradcheck only if the loss were flat) */
    ck_assert(dot_double(c.dq, c.dq, n) > 1e-3);
    ck_assert(dot_double(c.dk, c.dk, n) > 1e-3);
    ac_free(&c);
}

START_TEST(test_gradcheck_fast)
{
    /* _i: 0 NH=2 full, 1 NH=2 causal, 2 NH=1 full, 3 NH=1 causal */
    gradcheck_attention(_i < 2 ? 2 : 1, _i % 2 == 1, false);
}
END_TEST

START_TEST(test_gradcheck_naive)
{
    gradcheck_attention(_i < 2 ? 2 : 1, _i % 2 == 1, true);
}
END_TEST

/* ------------------------------------------------------------------------ */

/* naive vs BLAS on B=2, T=17, C=32, NH=4 (odd T), and on B=2, T=64, C=64,
 * NH=4 (large enough for the softmax loops to run multithreaded): forward
 * out and att; backward into gradients that already hold random values (so
 * accumulation is compared too). The two sum in different orders and
 * precisions: atol 1e-5, rtol 1e-4. */
START_TEST(test_naive_vs_fast)
{
    const bool causal = _i % 2 == 1;
    const size_t T = _i < 2 ? 17 : 64, C = _i < 2 ? 32 : 64;
    struct att_case f, s;
    struct rng r;
    size_t n, na;
    float *g0;

    ac_init(&f, 2, T, C, 4, causal, 77);
    ac_init(&s, 2, T, C, 4, causal, 77);  /* same seed: same inputs */
    s.naive = true;
    n = ac_n(&f);
    na = ac_natt(&f);

    ac_forward(&f);
    ac_forward(&s);
    ck_assert_int_eq(tensor_compare("att", f.att, s.att, na, 1e-6, 1e-4), 0);
    ck_assert_int_eq(tensor_compare("out", f.out, s.out, n, 1e-5, 1e-4), 0);

    rng_init(&r, 78);
    g0 = test_randn(&r, 3 * n, 0.5f);
    memcpy(f.dq, g0, n * sizeof(float));
    memcpy(s.dq, g0, n * sizeof(float));
    memcpy(f.dk, g0 + n, n * sizeof(float));
    memcpy(s.dk, g0 + n, n * sizeof(float));
    memcpy(f.dv, g0 + 2 * n, n * sizeof(float));
    memcpy(s.dv, g0 + 2 * n, n * sizeof(float));
    ac_backward(&f, f.dq, f.dk, f.dv);
    ac_backward(&s, s.dq, s.dk, s.dv);
    ck_assert_int_eq(tensor_compare("dq", f.dq, s.dq, n, 1e-5, 1e-4), 0);
    ck_assert_int_eq(tensor_compare("dk", f.dk, s.dk, n, 1e-5, 1e-4), 0);
    ck_assert_int_eq(tensor_compare("dv", f.dv, s.dv, n, 1e-5, 1e-4), 0);
    /* and something actually was added */
    ck_assert(count_differ(f.dq, g0, n, 1e-3f) > n / 2);
    ck_assert(count_differ(f.dk, g0 + n, n, 1e-3f) > n / 2);
    ck_assert(count_differ(f.dv, g0 + 2 * n, n, 1e-3f) > n / 2);
    free(g0);
    ac_free(&f);
    ac_free(&s);
}
END_TEST

/* ------------------------------------------------------------------------ */

/* causal: att exactly 0 above the diagonal (even when att held NaN before
 * the forward), rows sum to 1, the first query sees only itself (att 1,
 * out = v exactly); non-causal: every entry positive, rows sum to 1. */
START_TEST(test_mask_and_rows)
{
    const bool naive = _i == 1;

    for (int causal = 0; causal <= 1; causal++) {
        struct att_case c;
        size_t B = 2, T = 9, C = 12, NH = 3, hs = C / NH;

        ac_init(&c, B, T, C, NH, causal, 5 + causal);
        c.naive = naive;
        for (size_t i = 0; i < ac_natt(&c); i++)
            c.att[i] = NAN;
        for (size_t i = 0; i < ac_n(&c); i++)
            c.out[i] = NAN;
        ac_forward(&c);
        for (size_t bh = 0; bh < B * NH; bh++)
            for (size_t i = 0; i < T; i++) {
                const float *row = c.att + (bh * T + i) * T;
                double sum = 0.0;
                for (size_t j = 0; j < T; j++) {
                    if (causal && j > i)
                        ck_assert_msg(row[j] == 0.0f && !signbit(row[j]),
                                      "att[%zu,%zu,%zu] = %g above the diagonal",
                                      bh, i, j, (double)row[j]);
                    else
                        ck_assert_msg(row[j] > 0.0f && row[j] <= 1.0f,
                                      "att[%zu,%zu,%zu] = %g", bh, i, j, (double)row[j]);
                    sum += row[j];
                }
                ck_assert_msg(fabs(sum - 1.0) < 1e-6, "row sum %.9g", sum);
            }
        for (size_t i = 0; i < ac_n(&c); i++)
            ck_assert(isfinite(c.out[i]));
        if (causal)
            for (size_t b = 0; b < B; b++)
                for (size_t h = 0; h < NH; h++) {
                    ck_assert(c.att[(b * NH + h) * T * T] == 1.0f);
                    for (size_t d = 0; d < hs; d++)
                        ck_assert(c.out[b * T * C + h * hs + d] == c.v[b * T * C + h * hs + d]);
                }
        ac_free(&c);
    }
}
END_TEST

/* causal: changing q, k, v at the last position changes no earlier output
 * (bit for bit); without the mask it changes them. */
START_TEST(test_causal_no_future)
{
    for (int causal = 0; causal <= 1; causal++) {
        struct att_case c;
        size_t B = 2, T = 6, C = 8, NH = 2, n;
        float *out0;
        size_t early;

        ac_init(&c, B, T, C, NH, causal, 31);
        n = ac_n(&c);
        ac_forward(&c);
        out0 = test_copy(c.out, n);
        for (size_t b = 0; b < B; b++)
            for (size_t d = 0; d < C; d++) {
                size_t at = (b * T + T - 1) * C + d;
                c.q[at] += 1.5f;
                c.k[at] -= 2.0f;
                c.v[at] += 3.0f;
            }
        ac_forward(&c);
        early = 0;
        for (size_t b = 0; b < B; b++)
            early += count_differ(c.out + b * T * C, out0 + b * T * C, (T - 1) * C, 0.0f);
        if (causal)
            ck_assert_uint_eq(early, 0);
        else
            ck_assert_uint_eq(early, B * (T - 1) * C);
        free(out0);
        ac_free(&c);
    }
}
END_TEST

/* q = 0: every score is 0, so att is uniform over the visible keys and
 * out_i is the mean of the visible v_j. */
START_TEST(test_uniform_attention)
{
    const bool causal = _i == 1;
    struct att_case c;
    size_t B = 1, T = 7, C = 6, NH = 2;

    ac_init(&c, B, T, C, NH, causal, 9);
    memset(c.q, 0, ac_n(&c) * sizeof(float));
    ac_forward(&c);
    for (size_t h = 0; h < NH; h++)
        for (size_t i = 0; i < T; i++) {
            size_t nvis = causal ? i + 1 : T;
            for (size_t j = 0; j < nvis; j++)
                ck_assert_float_eq_tol(c.att[(h * T + i) * T + j], 1.0f / (float)nvis, 1e-7f);
            for (size_t d = 0; d < C; d++) {
                double mean = 0.0;
                for (size_t j = 0; j < nvis; j++)
                    mean += c.v[j * C + d];
                mean /= (double)nvis;
                /* column d belongs to head d / hs; only check head h's columns */
                if (d / (C / NH) == h)
                    ck_assert_double_eq_tol(c.out[i * C + d], mean, 1e-6);
            }
        }
    ac_free(&c);
}
END_TEST

/* ------------------------------------------------------------------------ */

/* NULL gradients: each alone equals the full backward's; the scratch
 * contents before the call do not matter; a second backward doubles the
 * gradients; all NULL leaves everything untouched. */
START_TEST(test_null_and_accumulate)
{
    const bool naive = _i % 2 == 1, causal = _i >= 2;
    struct att_case c;
    size_t n, na;
    float *dq1, *dk1, *dv1;

    ac_init(&c, 2, 5, 8, 2, causal, 444);
    c.naive = naive;
    n = ac_n(&c);
    na = ac_natt(&c);
    ac_forward(&c);
    ac_backward(&c, c.dq, c.dk, c.dv);
    dq1 = test_copy(c.dq, n);
    dk1 = test_copy(c.dk, n);
    dv1 = test_copy(c.dv, n);

    /* each gradient alone, with garbage in scratch */
    float *g = test_zeros(n);
    for (size_t i = 0; i < na; i++)
        c.scratch[i] = NAN;
    ac_backward(&c, g, NULL, NULL);
    ck_assert_int_eq(tensor_compare("dq-alone", g, dq1, n, 1e-7, 1e-6), 0);
    memset(g, 0, n * sizeof(float));
    for (size_t i = 0; i < na; i++)
        c.scratch[i] = 1e30f;
    ac_backward(&c, NULL, g, NULL);
    ck_assert_int_eq(tensor_compare("dk-alone", g, dk1, n, 1e-7, 1e-6), 0);
    memset(g, 0, n * sizeof(float));
    ac_backward(&c, NULL, NULL, g);
    ck_assert_int_eq(tensor_compare("dv-alone", g, dv1, n, 1e-7, 1e-6), 0);
    ac_backward(&c, NULL, NULL, NULL);

    /* second full backward: twice the first */
    ac_backward(&c, c.dq, c.dk, c.dv);
    for (size_t i = 0; i < n; i++) {
        dq1[i] *= 2.0f;
        dk1[i] *= 2.0f;
        dv1[i] *= 2.0f;
    }
    ck_assert_int_eq(tensor_compare("dq-twice", c.dq, dq1, n, 1e-7, 1e-6), 0);
    ck_assert_int_eq(tensor_compare("dk-twice", c.dk, dk1, n, 1e-7, 1e-6), 0);
    ck_assert_int_eq(tensor_compare("dv-twice", c.dv, dv1, n, 1e-7, 1e-6), 0);
    free(g);
    free(dq1);
    free(dk1);
    free(dv1);
    ac_free(&c);
}
END_TEST

/* forward on scores far apart (q, k of scale 30): the softmax subtracts
 * the row max, so nothing overflows; att stays finite and normalised, and
 * the backward stays finite. */
START_TEST(test_large_scores_stable)
{
    struct att_case c;
    size_t n;

    ac_init(&c, 1, 8, 8, 1, false, 12);
    n = ac_n(&c);
    for (size_t i = 0; i < n; i++) {
        c.q[i] *= 30.0f;
        c.k[i] *= 30.0f;
    }
    ac_forward(&c);
    for (size_t i = 0; i < ac_natt(&c); i++)
        ck_assert(isfinite(c.att[i]) && c.att[i] >= 0.0f && c.att[i] <= 1.0f);
    for (size_t i = 0; i < c.T; i++) {
        double s = 0.0;
        for (size_t j = 0; j < c.T; j++)
            s += c.att[i * c.T + j];
        ck_assert_double_eq_tol(s, 1.0, 1e-6);
    }
    ac_backward(&c, c.dq, c.dk, c.dv);
    for (size_t i = 0; i < n; i++)
        ck_assert(isfinite(c.out[i]) && isfinite(c.dq[i]) && isfinite(c.dk[i]) &&
                  isfinite(c.dv[i]));
    ac_free(&c);
}
END_TEST

Suite *suite_attention(void)
{
    Suite *s = suite_create("attention");
    TCase *tc = tcase_create("attention");

    tcase_add_loop_test(tc, test_gradcheck_fast, 0, 4);
    tcase_add_loop_test(tc, test_gradcheck_naive, 0, 4);
    tcase_add_loop_test(tc, test_naive_vs_fast, 0, 4);
    tcase_add_loop_test(tc, test_mask_and_rows, 0, 2);
    tcase_add_test(tc, test_causal_no_future);
    tcase_add_loop_test(tc, test_uniform_attention, 0, 2);
    tcase_add_loop_test(tc, test_null_and_accumulate, 0, 4);
    tcase_add_test(tc, test_large_scores_stable);
    suite_add_tcase(s, tc);
    return s;
}
