/*
 * check_bf16_branches.c: the adapters' branches in bf16
 * (train.precision = bf16): the general product gemm_bf16_mm
 * (core/gemm_bf16.h), each element against a double reference within the
 * bound bf16 rounding predicts, and the methods' forward and backward taking
 * it (methods/adapter_impl.h mm_branch) when their method's bf16_products
 * is set. Skipped, with the reason printed, on a CPU without AVX512-BF16 or
 * AMX.
 *
 *   mm_within_bound   every transpose, beta 0 and 1, alpha 1 and not,
 *                     padded row strides (the padding of C untouched)
 *   mm_check_can_fail the checker sees a transposed operand and a dropped
 *                     alpha (so the test above would)
 *   mm_refuses        beta other than 0 / 1, short strides, alpha 0:
 *                     RL_ERR_ARG (mm_branch then runs sgemm)
 *   methods           LoRA, VeRA, NoLA, RandLoRA: with bf16_products the
 *                     forward and backward run bf16 products (counted),
 *                     differ from fp32 (rounded) and stay close to it
 *   path_choice       under bf16 the path choice prices the branch at bf16's
 *                     rate and the merged site's second bf16 term: LoRA
 *                     256x256 r 8 at 1024 rows turns factored; full
 *                     fine-tuning (fp32 products) stays merged
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapter_harness.h"
#include "core/bf16.h"
#include "core/gemm_bf16.h"
#include "core/rng.h"
#include "core/status.h"
#include "suites.h"
#include "test_util.h"

static int bf16_here(const char *test)
{
    return test_bf16_available("check_bf16_branches", test);
}

struct mm_case {
    int ta, tb;
    size_t M, N, K, lda, ldb, ldc;
    float alpha, beta;
    const float *A, *B, *C0;     /* C0: C before the call, M x ldc */
};

static double op_a(const struct mm_case *c, size_t i, size_t k)
{
    return c->ta ? c->A[k * c->lda + i] : c->A[i * c->lda + k];
}

static double op_b(const struct mm_case *c, size_t k, size_t j)
{
    return c->tb ? c->B[j * c->ldb + k] : c->B[k * c->ldb + j];
}

/*
 * Per element: ref = beta C0 + alpha sum_k a_ik b_kj (double). The product
 * saw a, b rounded to bf16 (|d| <= u = 2^-8 each: (2u + u^2) S off, S =
 * sum |a b|), formed the products exactly in fp32, summed K of them in
 * fp32, scaled by alpha and added beta C0, each in fp32: K + 1 roundings,
 * within gamma_{K+1} (|beta C0| + |alpha| (1+u)^2 S). The padding columns
 * of C (j >= N) must be C0's. Returns the elements over their bound.
 */
static size_t mm_check(const struct mm_case *c, const float *C)
{
    const double u = BF16_UNIT_ROUNDOFF;
    size_t bad = 0;

    for (size_t i = 0; i < c->M; i++)
        for (size_t j = 0; j < c->ldc; j++) {
            const size_t at = i * c->ldc + j;
            double ref, S = 0.0, sum = 0.0, bound;

            if (j >= c->N) {
                bad += C[at] != c->C0[at];
                continue;
            }
            for (size_t k = 0; k < c->K; k++) {
                double p = op_a(c, i, k) * op_b(c, k, j);

                sum += p;
                S += fabs(p);
            }
            ref = c->beta * (double)c->C0[at] + c->alpha * sum;
            bound = fabs(c->alpha) * (2 * u + u * u) * S +
                    test_gamma_fp32(c->K + 1) * (fabs(c->beta * c->C0[at]) +
                                            fabs(c->alpha) * (1 + u) * (1 + u) * S);
            if (!(fabs(C[at] - ref) <= bound))
                bad++;
        }
    return bad;
}

/* one case on random data into a fresh C; returns the elements over bound
 * (C freed); checked against `as` (the case itself unless a test wants a
 * wrong reading) */
static size_t mm_run(struct rng *r, struct mm_case *c, const struct mm_case *as_given)
{
    const size_t a_rows = c->ta ? c->K : c->M, b_rows = c->tb ? c->N : c->K;
    float *A = test_randn(r, a_rows * c->lda, 1.0f), *B = test_randn(r, b_rows * c->ldb, 0.5f);
    float *C0 = test_randn(r, c->M * c->ldc, 2.0f), *C = test_copy(C0, c->M * c->ldc);
    struct mm_case as;
    size_t bad;

    c->A = A;
    c->B = B;
    c->C0 = C0;
    ck_assert_int_eq(gemm_bf16_mm(c->ta, c->tb, c->M, c->N, c->K, c->alpha, A, c->lda, B,
                                  c->ldb, c->beta, C, c->ldc), RL_OK);
    as = as_given ? *as_given : *c;
    as.A = A;
    as.B = B;
    as.C0 = C0;
    bad = mm_check(&as, C);
    free(A); free(B); free(C0); free(C);
    return bad;
}

static const struct { size_t M, N, K; } mm_shapes[] = {
    { 1, 1, 1 }, { 7, 5, 3 }, { 33, 17, 65 }, { 100, 32, 129 }, { 32, 200, 96 }, { 64, 64, 300 },
};

START_TEST(test_mm_within_bound)
{
    struct rng r;

    if (!bf16_here("mm_within_bound"))
        return;
    rng_init(&r, 1515);
    for (size_t s = 0; s < sizeof(mm_shapes) / sizeof(mm_shapes[0]); s++)
        for (int t = 0; t < 4; t++)
            for (int v = 0; v < 4; v++) {
                const size_t M = mm_shapes[s].M, N = mm_shapes[s].N, K = mm_shapes[s].K;
                const int ta = t & 1, tb = t >> 1, pad = (v & 1) ? 3 : 0;
                struct mm_case c = {
                    .ta = ta, .tb = tb, .M = M, .N = N, .K = K,
                    .lda = (ta ? M : K) + pad, .ldb = (tb ? K : N) + pad, .ldc = N + pad,
                    .alpha = (v & 2) ? -0.37f : 1.0f, .beta = (float)((v + t) & 1),
                };

                ck_assert_msg(mm_run(&r, &c, NULL) == 0,
                              "%zux%zux%zu ta %d tb %d pad %d alpha %g beta %g", M, N, K, ta, tb,
                              pad, (double)c.alpha, (double)c.beta);
            }
}
END_TEST

/* A read untransposed where it was given transposed, or the result checked
 * without its alpha: far outside the bound */
START_TEST(test_mm_check_can_fail)
{
    struct rng r;
    struct mm_case c = { .ta = 1, .tb = 0, .M = 9, .N = 7, .K = 9, .lda = 9, .ldb = 7,
                         .ldc = 7, .alpha = 1.0f, .beta = 0.0f }, wrong = c;

    if (!bf16_here("mm_check_can_fail"))
        return;
    rng_init(&r, 1516);
    wrong.ta = 0;
    ck_assert_uint_gt(mm_run(&r, &c, &wrong), 0);
    c.alpha = 0.5f;
    wrong = c;
    wrong.alpha = 1.0f;
    ck_assert_uint_gt(mm_run(&r, &c, &wrong), 0);
}
END_TEST

START_TEST(test_mm_refuses)
{
    float A[4] = { 1, 2, 3, 4 }, B[4] = { 1, 0, 0, 1 }, C[4] = { 0 };

    ck_assert_int_eq(gemm_bf16_mm(0, 0, 2, 2, 2, 1.0f, A, 2, B, 2, 0.5f, C, 2), RL_ERR_ARG);
    ck_assert_int_eq(gemm_bf16_mm(0, 0, 2, 2, 2, 1.0f, A, 1, B, 2, 0.0f, C, 2), RL_ERR_ARG);
    ck_assert_int_eq(gemm_bf16_mm(0, 0, 2, 2, 2, 1.0f, A, 2, B, 2, 0.0f, C, 1), RL_ERR_ARG);
    ck_assert_int_eq(gemm_bf16_mm(0, 0, 2, 2, 2, 0.0f, A, 2, B, 2, 0.0f, C, 2), RL_ERR_ARG);
}
END_TEST

/* ||a - b|| / ||b|| */
static double rel_diff(const float *a, const float *b, size_t n)
{
    double d = 0.0, s = 0.0;

    for (size_t i = 0; i < n; i++) {
        d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        s += (double)b[i] * b[i];
    }
    return s > 0 ? sqrt(d / s) : sqrt(d);
}

/* the adapter's forward (y from y0) and backward (dx from 0, grads from
 * 0), with or without bf16 products */
static void branch_pass(struct adapter *a, int use_bf16, const float *x, const float *dy,
                        float *y, float *dx, size_t N)
{
    a->method->bf16_products = use_bf16 != 0;
    memset(y, 0, N * a->d_out * sizeof(float));
    memset(dx, 0, N * a->d_in * sizeof(float));
    memset(a->grads, 0, a->n_params * sizeof(float));
    adapter_forward(a, x, y, N);
    adapter_backward(a, x, dy, dx, N);
}

START_TEST(test_methods_take_bf16)
{
    const struct adapter_ops *ops[] = { &lora_ops, &vera_ops, &nola_ops, &randlora_ops };
    const size_t N = N_ROWS;

    if (!bf16_here("methods"))
        return;
    for (size_t o = 0; o < 4; o++)
        for (size_t s = 0; s < N_SHAPES; s++) {
            const size_t dout = adapter_test_shapes[s].d_out, din = adapter_test_shapes[s].d_in;
            struct adapter_method m;
            struct adapter a;
            struct adapter_cfg cfg;
            struct rng r;
            float *x, *dy, *y32, *y16, *dx32, *dx16, *g32;
            size_t calls;
            double ey, edx, eg;

            adapter_test_cfg(&cfg, ops[o], &adapter_test_variants[0], RANK);
            adapter_test_setup(&m, &a, &cfg, dout, din);
            rng_init(&r, 1517 + s);
            adapter_test_randomize(&a, &r, 0.3f);
            x = test_randn(&r, N * din, 1.0f);
            dy = test_randn(&r, N * dout, 1.0f);
            y32 = test_zeros(N * dout); y16 = test_zeros(N * dout);
            dx32 = test_zeros(N * din); dx16 = test_zeros(N * din);
            branch_pass(&a, 0, x, dy, y32, dx32, N);
            g32 = test_copy(a.grads, a.n_params);
            calls = gemm_bf16_stats().calls;
            branch_pass(&a, 1, x, dy, y16, dx16, N);
            ck_assert_msg(gemm_bf16_stats().calls >= calls + 4, "%s: %zu bf16 products",
                          ops[o]->name, gemm_bf16_stats().calls - calls);
            ey = rel_diff(y16, y32, N * dout);
            edx = rel_diff(dx16, dx32, N * din);
            eg = rel_diff(a.grads, g32, a.n_params);
            /* rounded (not fp32 bit for bit), and within a few bf16 units:
             * each value is two or three chained products on rounded inputs */
            ck_assert_msg(ey > 0 || edx > 0 || eg > 0, "%s: bit-identical to fp32", ops[o]->name);
            ck_assert_msg(ey < 8 * BF16_UNIT_ROUNDOFF && edx < 8 * BF16_UNIT_ROUNDOFF &&
                          eg < 8 * BF16_UNIT_ROUNDOFF,
                          "%s %zux%zu: relative differences y %.3g dx %.3g grads %.3g",
                          ops[o]->name, dout, din, ey, edx, eg);
            a.method->bf16_products = false;
            free(x); free(dy); free(y32); free(y16); free(dx32); free(dx16); free(g32);
            adapter_test_teardown(&m, &a);
        }
}
END_TEST

START_TEST(test_path_choice_bf16)
{
    struct adapter_cfg cfg;
    struct adapter_method m;
    struct adapter a;

    /* fp32 (check_adapter_methods.c): merged from 257 rows, the rows route
     * 2097152 + 16384 N against factored 24576 N. bf16: factored 24576 N /
     * rate against that plus 4 N 256^2 / rate: factored at any rate >= 0.65 */
    adapter_cfg_defaults(&cfg, "lora", 8);
    ck_assert_int_eq(adapter_method_init(&m, &cfg, 256, 256, 1024), RL_OK);
    ck_assert_int_eq(adapter_init(&a, &m, 256, 256, NULL, NULL), RL_OK);
    ck_assert_int_eq(adapter_choose_path(&a, 1024, 1), ADAPTER_PATH_MERGED);
    m.bf16_products = true;
    ck_assert_int_eq(adapter_choose_path(&a, 1024, 1), ADAPTER_PATH_FACTORED);
    ck_assert_int_eq(adapter_choose_path(&a, 1024, 4), ADAPTER_PATH_FACTORED);
    adapter_free(&a);
    adapter_method_free(&m);

    adapter_cfg_defaults(&cfg, "full", 0);
    ck_assert_int_eq(adapter_method_init(&m, &cfg, 64, 64, 8), RL_OK);
    ck_assert_int_eq(adapter_init(&a, &m, 64, 64, NULL, NULL), RL_OK);
    m.bf16_products = true;
    ck_assert_int_eq(adapter_choose_path(&a, 1, 1), ADAPTER_PATH_MERGED);
    adapter_free(&a);
    adapter_method_free(&m);
}
END_TEST

Suite *suite_bf16_branches(void)
{
    Suite *s = suite_create("bf16_branches");
    TCase *tc = tcase_create("bf16_branches");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_mm_within_bound);
    tcase_add_test(tc, test_mm_check_can_fail);
    tcase_add_test(tc, test_mm_refuses);
    tcase_add_test(tc, test_methods_take_bf16);
    tcase_add_test(tc, test_path_choice_bf16);
    suite_add_tcase(s, tc);
    return s;
}
