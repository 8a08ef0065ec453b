/*
 * check_analysis.c: results/analysis (singular values, ranks, norms, linear
 * CKA) against constructed matrices and numpy golden values. The figure
 * writer: check_plot_writer.c.
 */

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/rng.h"
#include "core/status.h"
#include "results/analysis.h"
#include "suites.h"
#include "test_util.h"

/* ------------------------------------------------------------------------ */
/* helpers                                                                   */

/* m x k matrix (row-major, double) with orthonormal columns: modified
 * Gram-Schmidt, applied twice, on Gaussian columns */
static double *orthonormal_columns(struct rng *r, size_t m, size_t k)
{
    double *q = xmalloc_array(m * k, sizeof(*q));

    for (size_t i = 0; i < m * k; i++)
        q[i] = rng_normal(r);
    for (size_t j = 0; j < k; j++) {
        for (int pass = 0; pass < 2; pass++)
            for (size_t c = 0; c < j; c++) {
                double d = 0.0;

                for (size_t i = 0; i < m; i++)
                    d += q[i * k + c] * q[i * k + j];
                for (size_t i = 0; i < m; i++)
                    q[i * k + j] -= d * q[i * k + c];
            }
        double nrm = 0.0;

        for (size_t i = 0; i < m; i++)
            nrm += q[i * k + j] * q[i * k + j];
        nrm = sqrt(nrm);
        for (size_t i = 0; i < m; i++)
            q[i * k + j] /= nrm;
    }
    return q;
}

/* float m x n = U diag(s) V^T with U m x k, V n x k orthonormal */
static float *with_spectrum(struct rng *r, size_t m, size_t n, const double *s, size_t k)
{
    double *u = orthonormal_columns(r, m, k), *v = orthonormal_columns(r, n, k);
    float *a = xmalloc_array(m * n, sizeof(*a));

    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) {
            double acc = 0.0;

            for (size_t c = 0; c < k; c++)
                acc += u[i * k + c] * s[c] * v[j * k + c];
            a[i * n + j] = (float)acc;
        }
    free(u);
    free(v);
    return a;
}

/* float m x n sum of k Gaussian outer products, accumulated in float */
static float *outer_products(struct rng *r, size_t m, size_t n, size_t k)
{
    float *a = test_zeros(m * n), *u = test_randn(r, m, 1.0f), *v = test_randn(r, n, 1.0f);

    for (size_t q = 0; q < k; q++) {
        rng_fill_normal(r, u, m, 0.0f, 1.0f);
        rng_fill_normal(r, v, n, 0.0f, 1.0f);
        for (size_t i = 0; i < m; i++)
            for (size_t j = 0; j < n; j++)
                a[i * n + j] += u[i] * v[j];
    }
    free(u);
    free(v);
    return a;
}

static int close_rel(double got, double want, double rtol, double atol)
{
    return fabs(got - want) <= atol + rtol * fabs(want);
}

#define ck_assert_close(got, want, rtol, atol)                                               \
    ck_assert_msg(close_rel((got), (want), (rtol), (atol)), "%s = %.17g, want %.17g", #got, \
                  (double)(got), (double)(want))

/* ------------------------------------------------------------------------ */
/* singular values                                                           */

/* a diagonal in both shapes: catches a wrong leading dimension */
START_TEST(test_sv_diagonal)
{
    float a[3 * 5] = {0}, at[5 * 3] = {0};
    const float d[3] = {2.0f, -5.0f, 1.0f};
    const double want[3] = {5.0, 2.0, 1.0};
    double s[3];

    for (int i = 0; i < 3; i++) {
        a[i * 5 + i] = d[i];
        at[i * 3 + i] = d[i];
    }
    ck_assert_int_eq(analysis_singular_values(s, a, 3, 5), RL_OK);
    for (int i = 0; i < 3; i++)
        ck_assert_close(s[i], want[i], 1e-12, 0.0);
    ck_assert_int_eq(analysis_singular_values(s, at, 5, 3), RL_OK);
    for (int i = 0; i < 3; i++)
        ck_assert_close(s[i], want[i], 1e-12, 0.0);

    /* a non-diagonal where a transposed view with the wrong stride differs */
    {
        const float b[2 * 3] = {3, 0, 0, 0, 0, 4};  /* rows (3,0,0), (0,0,4) */
        ck_assert_int_eq(analysis_singular_values(s, b, 2, 3), RL_OK);
        ck_assert_close(s[0], 4.0, 1e-12, 0.0);
        ck_assert_close(s[1], 3.0, 1e-12, 0.0);
    }
}
END_TEST

/* U diag(s) V^T with known s, both shapes and square */
START_TEST(test_sv_known_spectrum)
{
    const size_t shapes[3][2] = {{40, 24}, {24, 40}, {30, 30}};
    struct rng r;

    rng_init(&r, 7);
    for (int t = 0; t < 3; t++) {
        size_t m = shapes[t][0], n = shapes[t][1], k = m < n ? m : n;
        double *s = xmalloc_array(k, sizeof(*s)), *got = xmalloc_array(k, sizeof(*got));
        float *a;

        for (size_t i = 0; i < k; i++)
            s[i] = 5.0 - 4.0 * (double)i / (double)(k - 1);   /* 5 .. 1 */
        a = with_spectrum(&r, m, n, s, k);
        ck_assert_int_eq(analysis_singular_values(got, a, m, n), RL_OK);
        for (size_t i = 0; i < k; i++)
            ck_assert_msg(close_rel(got[i], s[i], 1e-5, 0.0), "%zux%zu s[%zu] = %.9g, want %.9g",
                          m, n, i, got[i], s[i]);
        for (size_t i = 1; i < k; i++)
            ck_assert(got[i] <= got[i - 1]);
        free(a);
        free(s);
        free(got);
    }
}
END_TEST

/* ------------------------------------------------------------------------ */
/* ranks and norms                                                           */

START_TEST(test_rank_outer_products)
{
    const size_t shapes[2][2] = {{20, 50}, {50, 20}};
    const size_t ks[5] = {0, 1, 3, 7, 20};
    struct rng r;

    rng_init(&r, 11);
    for (int t = 0; t < 2; t++)
        for (int q = 0; q < 5; q++) {
            size_t m = shapes[t][0], n = shapes[t][1];
            float *a = outer_products(&r, m, n, ks[q]);
            struct layer_analysis la;

            ck_assert_int_eq(analysis_layer(&la, a, m, n, ANALYSIS_REL_TOL), RL_OK);
            ck_assert_msg(la.rank == ks[q], "%zux%zu rank-%zu matrix: rank %zu (s_k+1 %.3g, tol %.3g)",
                          m, n, ks[q], la.rank, ks[q] < la.n_s ? la.s[ks[q]] : 0.0, la.tol);
            ck_assert_uint_le(la.rank_rel, la.rank);
            ck_assert_uint_eq(la.n_s, 20);
            ck_assert_uint_eq(la.d_out, m);
            ck_assert(isnan(la.cka));
            if (ks[q] == 0) {
                ck_assert(la.s_max == 0.0);
                ck_assert(la.effective_rank == 0.0);
                ck_assert(la.stable_rank == 0.0);
                ck_assert_uint_eq(la.rank_rel, 0);
            } else {
                /* float rounding leaves tiny singular values beyond k, which
                 * the entropy counts a little */
                ck_assert_msg(la.effective_rank >= 1.0 - 1e-9 &&
                              la.effective_rank <= (double)ks[q] * (1.0 + 1e-3),
                              "rank-%zu: effective rank %.9g", ks[q], la.effective_rank);
                ck_assert(la.stable_rank >= 1.0 - 1e-9 && la.stable_rank <= ks[q] + 1e-6);
            }
            analysis_layer_free(&la);
            analysis_layer_free(&la);   /* twice is safe */
            free(a);
        }
}
END_TEST

START_TEST(test_effective_and_stable_rank)
{
    const size_t n = 10;
    float *eye = test_zeros(n * n);
    float one[4 * 6];
    struct layer_analysis la;
    const double flat[4] = {1, 1, 1, 1}, single[3] = {3, 0, 0}, d211[3] = {2, 1, 1};

    for (size_t i = 0; i < n; i++)
        eye[i * n + i] = 1.0f;
    ck_assert_int_eq(analysis_layer(&la, eye, n, n, ANALYSIS_REL_TOL), RL_OK);
    ck_assert_close(la.effective_rank, 10.0, 1e-12, 0.0);
    ck_assert_close(la.stable_rank, 10.0, 1e-12, 0.0);
    ck_assert_uint_eq(la.rank, 10);
    ck_assert_uint_eq(la.rank_rel, 10);
    ck_assert_close(la.nuclear_norm, 10.0, 1e-12, 0.0);
    ck_assert_close(la.frobenius_norm, sqrt(10.0), 1e-12, 0.0);
    analysis_layer_free(&la);

    /* rank 1 with exactly representable entries: u (1..4) v (1,-2,3,-1,2,1) */
    {
        const float u[4] = {1, 2, 3, 4}, v[6] = {1, -2, 3, -1, 2, 1};

        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 6; j++)
                one[i * 6 + j] = u[i] * v[j];
    }
    ck_assert_int_eq(analysis_layer(&la, one, 4, 6, 0.5), RL_OK);
    ck_assert_uint_eq(la.rank, 1);
    ck_assert_uint_eq(la.rank_rel, 1);
    ck_assert_close(la.rel_tol, 0.5, 0.0, 0.0);
    ck_assert_close(la.effective_rank, 1.0, 1e-9, 0.0);
    ck_assert_close(la.stable_rank, 1.0, 1e-12, 0.0);
    ck_assert_close(la.s_max, sqrt(30.0) * sqrt(20.0), 1e-12, 0.0);
    analysis_layer_free(&la);

    ck_assert_close(analysis_effective_rank(flat, 4), 4.0, 1e-15, 0.0);
    ck_assert_close(analysis_effective_rank(single, 3), 1.0, 0.0, 0.0);
    ck_assert_close(analysis_stable_rank(d211, 3, sqrt(6.0)), 1.5, 1e-15, 0.0);
    ck_assert_uint_eq(analysis_rank(d211, 3, 1.0), 1);
    ck_assert_close(analysis_rank_tol(2.0, 3, 7), 14.0 * 1.1920928955078125e-07, 1e-15, 0.0);
    free(eye);
}
END_TEST

START_TEST(test_norms_of_signed_diagonal)
{
    const float a[2 * 2] = {3, 0, 0, -4};
    struct layer_analysis la;

    ck_assert_int_eq(analysis_layer(&la, a, 2, 2, ANALYSIS_REL_TOL), RL_OK);
    ck_assert_close(la.nuclear_norm, 7.0, 1e-15, 0.0);
    ck_assert_close(la.frobenius_norm, 5.0, 1e-15, 0.0);
    ck_assert_close(la.stable_rank, 25.0 / 16.0, 1e-15, 0.0);
    ck_assert_close(la.s[0], 4.0, 1e-15, 0.0);
    ck_assert_close(la.s[1], 3.0, 1e-15, 0.0);
    analysis_layer_free(&la);
}
END_TEST

START_TEST(test_analysis_errors)
{
    float a[4] = {1, 2, 3, 4};
    double s[2];
    struct layer_analysis la;

    ck_assert_int_eq(analysis_singular_values(s, a, 0, 4), RL_ERR_ARG);
    ck_assert_msg(strstr(rl_error_msg(), "empty"), "%s", rl_error_msg());
    ck_assert_int_eq(analysis_layer(&la, a, 2, 0, ANALYSIS_REL_TOL), RL_ERR_ARG);
    ck_assert_ptr_null(la.s);
    ck_assert_int_eq(analysis_layer(&la, a, 2, 2, 1.5), RL_ERR_ARG);
    ck_assert_int_eq(analysis_layer(&la, a, 2, 2, NAN), RL_ERR_ARG);
    a[3] = NAN;
    ck_assert_int_eq(analysis_layer(&la, a, 2, 2, ANALYSIS_REL_TOL), RL_ERR_ARG);
    ck_assert_msg(strstr(rl_error_msg(), "non-finite") && strstr(rl_error_msg(), "(1, 1)"), "%s",
                  rl_error_msg());
    ck_assert_ptr_null(la.s);
    ck_assert_int_eq(analysis_layer(&la, a, (size_t)1 << 32, 2, ANALYSIS_REL_TOL), RL_ERR_ARG);
    analysis_layer_free(&la);
    analysis_layer_free(NULL);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* numpy golden values                                                       */

static void read_floats(FILE *f, float *x, size_t n, const char *tag)
{
    char word[64];

    ck_assert_int_eq(fscanf(f, "%63s", word), 1);
    ck_assert_str_eq(word, tag);
    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(fscanf(f, "%f", &x[i]), 1);
}

START_TEST(test_golden_numpy)
{
    FILE *f = fopen(fixture_path("analysis_golden.txt"), "r");
    char line[512], word[64], name[64];
    int version = 0, n_mat = 0, n_cka = 0;

    ck_assert_msg(f != NULL, "%s: %s", fixture_path("analysis_golden.txt"), strerror(errno));
    ck_assert_int_eq(fscanf(f, "randlora-analysis-golden %d", &version), 1);
    ck_assert_int_eq(version, 1);
    for (;;) {
        ck_assert_int_eq(fscanf(f, "%63s", word), 1);
        if (word[0] == '#') {
            ck_assert_ptr_nonnull(fgets(line, sizeof(line), f));
            continue;
        }
        if (strcmp(word, "end") == 0)
            break;
        if (strcmp(word, "matrix") == 0) {
            size_t m, n, k, rank;
            double eff, stable, nuclear, fro;
            float *a;
            double *s;
            struct layer_analysis la;

            ck_assert_int_eq(fscanf(f, "%63s %zu %zu", name, &m, &n), 3);
            k = m < n ? m : n;
            a = xmalloc_array(m * n, sizeof(*a));
            s = xmalloc_array(k, sizeof(*s));
            read_floats(f, a, m * n, "a");
            ck_assert_int_eq(fscanf(f, "%63s", word), 1);
            ck_assert_str_eq(word, "s");
            for (size_t i = 0; i < k; i++)
                ck_assert_int_eq(fscanf(f, "%lf", &s[i]), 1);
            ck_assert_int_eq(fscanf(f, " rank %zu effective %lf stable %lf nuclear %lf "
                                       "frobenius %lf", &rank, &eff, &stable, &nuclear, &fro), 5);
            ck_assert_int_eq(analysis_layer(&la, a, m, n, ANALYSIS_REL_TOL), RL_OK);
            /* same float32 input, both in double: agreement to double rounding */
            for (size_t i = 0; i < k; i++)
                ck_assert_msg(close_rel(la.s[i], s[i], 1e-9, 1e-12 * s[0]),
                              "%s: s[%zu] = %.17g, numpy %.17g", name, i, la.s[i], s[i]);
            ck_assert_msg(la.rank == rank, "%s: rank %zu, numpy %zu", name, la.rank, rank);
            ck_assert_close(la.effective_rank, eff, 1e-9, 0.0);
            ck_assert_close(la.stable_rank, stable, 1e-9, 0.0);
            ck_assert_close(la.nuclear_norm, nuclear, 1e-9, 0.0);
            ck_assert_close(la.frobenius_norm, fro, 1e-12, 0.0);
            analysis_layer_free(&la);
            free(a);
            free(s);
            n_mat++;
        } else if (strcmp(word, "cka") == 0) {
            size_t n, p1, p2;
            double want, got;
            float *x, *y;

            ck_assert_int_eq(fscanf(f, "%63s %zu %zu %zu", name, &n, &p1, &p2), 4);
            x = xmalloc_array(n * p1, sizeof(*x));
            y = xmalloc_array(n * p2, sizeof(*y));
            read_floats(f, x, n * p1, "x");
            read_floats(f, y, n * p2, "y");
            ck_assert_int_eq(fscanf(f, " value %lf", &want), 1);
            ck_assert_int_eq(analysis_linear_cka_ex(&got, x, y, n, p1, p2, CKA_FEATURE), RL_OK);
            ck_assert_msg(close_rel(got, want, 1e-9, 0.0), "%s feature: %.17g, numpy %.17g", name,
                          got, want);
            ck_assert_int_eq(analysis_linear_cka_ex(&got, x, y, n, p1, p2, CKA_GRAM), RL_OK);
            ck_assert_msg(close_rel(got, want, 1e-9, 0.0), "%s gram: %.17g, numpy %.17g", name,
                          got, want);
            free(x);
            free(y);
            n_cka++;
        } else {
            ck_abort_msg("analysis_golden.txt: unexpected '%s'", word);
        }
    }
    fclose(f);
    ck_assert_int_eq(n_mat, 4);
    ck_assert_int_eq(n_cka, 2);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* CKA                                                                       */

START_TEST(test_cka_self_and_invariances)
{
    const size_t n = 200, p1 = 12, p2 = 7;
    struct rng r;
    float *x, *y, *y2, *x_off;
    double *q, c1, c2, c3;

    rng_init(&r, 5);
    x = test_randn(&r, n * p1, 1.0f);
    y = xmalloc_array(n * p2, sizeof(*y));
    /* Y: a noisy linear map of X, so CKA is neither 0 nor 1 */
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < p2; j++) {
            double acc = 0.0;

            for (size_t c = 0; c < p1; c++)
                acc += x[i * p1 + c] * (double)((c + 2 * j) % 5 - 2);
            y[i * p2 + j] = (float)(acc + 2.0 * rng_normal(&r));
        }

    ck_assert_int_eq(analysis_linear_cka(&c1, x, x, n, p1, p1), RL_OK);
    ck_assert_close(c1, 1.0, 1e-12, 0.0);
    ck_assert_int_eq(analysis_linear_cka_ex(&c1, x, x, n, p1, p1, CKA_GRAM), RL_OK);
    ck_assert_close(c1, 1.0, 1e-12, 0.0);

    ck_assert_int_eq(analysis_linear_cka(&c1, x, y, n, p1, p2), RL_OK);
    ck_assert(c1 > 0.1 && c1 < 0.99);
    ck_assert_int_eq(analysis_linear_cka(&c2, y, x, n, p2, p1), RL_OK);
    ck_assert_close(c2, c1, 1e-12, 0.0);   /* symmetric */

    /* Y -> 3.7 Y Q with Q orthogonal: unchanged (up to float rounding of Y') */
    q = orthonormal_columns(&r, p2, p2);
    y2 = xmalloc_array(n * p2, sizeof(*y2));
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < p2; j++) {
            double acc = 0.0;

            for (size_t c = 0; c < p2; c++)
                acc += y[i * p2 + c] * q[c * p2 + j];
            y2[i * p2 + j] = (float)(3.7 * acc);
        }
    ck_assert_int_eq(analysis_linear_cka(&c2, x, y2, n, p1, p2), RL_OK);
    ck_assert_close(c2, c1, 0.0, 1e-5);

    /* column offsets are centred away */
    x_off = test_copy(x, n * p1);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < p1; j++)
            x_off[i * p1 + j] += (float)(10.0 * (double)j - 30.0);
    ck_assert_int_eq(analysis_linear_cka(&c3, x_off, y, n, p1, p2), RL_OK);
    ck_assert_close(c3, c1, 0.0, 1e-5);

    /* the two forms agree */
    ck_assert_int_eq(analysis_linear_cka_ex(&c2, x, y, n, p1, p2, CKA_FEATURE), RL_OK);
    ck_assert_int_eq(analysis_linear_cka_ex(&c3, x, y, n, p1, p2, CKA_GRAM), RL_OK);
    ck_assert_close(c3, c2, 1e-10, 0.0);

    free(x);
    free(y);
    free(y2);
    free(x_off);
    free(q);
}
END_TEST

START_TEST(test_cka_independent_small)
{
    const size_t n = 2000, p1 = 10, p2 = 8;
    struct rng r;
    float *x, *y;
    double c;

    rng_init(&r, 99);
    x = test_randn(&r, n * p1, 1.0f);
    y = test_randn(&r, n * p2, 1.0f);
    ck_assert_int_eq(analysis_linear_cka(&c, x, y, n, p1, p2), RL_OK);
    /* expected about sqrt(p1 p2) / n ~ 0.005 */
    ck_assert_msg(c >= 0.0 && c < 0.03, "CKA of independent data %.4g", c);
    free(x);
    free(y);
}
END_TEST

START_TEST(test_cka_errors)
{
    float x[6] = {1, 2, 3, 4, 5, 6}, flat[6] = {2, 2, 2, 2, 2, 2};
    double c = 0.0;

    ck_assert_int_eq(analysis_linear_cka(&c, x, x, 1, 6, 6), RL_ERR_ARG);
    ck_assert(isnan(c));
    ck_assert_int_eq(analysis_linear_cka(&c, x, x, 3, 0, 2), RL_ERR_ARG);
    ck_assert_int_eq(analysis_linear_cka(&c, x, flat, 3, 2, 2), RL_ERR_ARG);
    ck_assert_msg(strstr(rl_error_msg(), "constant"), "%s", rl_error_msg());
    ck_assert_int_eq(analysis_linear_cka_ex(&c, flat, x, 3, 2, 2, CKA_GRAM), RL_ERR_ARG);
    x[2] = INFINITY;
    ck_assert_int_eq(analysis_linear_cka(&c, x, x, 3, 2, 2), RL_ERR_ARG);
    ck_assert_msg(strstr(rl_error_msg(), "non-finite"), "%s", rl_error_msg());
}
END_TEST

Suite *suite_analysis(void)
{
    Suite *s = suite_create("analysis");
    TCase *tc = tcase_create("spectrum");

    tcase_add_test(tc, test_sv_diagonal);
    tcase_add_test(tc, test_sv_known_spectrum);
    tcase_add_test(tc, test_rank_outer_products);
    tcase_add_test(tc, test_effective_and_stable_rank);
    tcase_add_test(tc, test_norms_of_signed_diagonal);
    tcase_add_test(tc, test_analysis_errors);
    tcase_add_test(tc, test_golden_numpy);
    suite_add_tcase(s, tc);

    tc = tcase_create("cka");
    tcase_add_test(tc, test_cka_self_and_invariances);
    tcase_add_test(tc, test_cka_independent_small);
    tcase_add_test(tc, test_cka_errors);
    suite_add_tcase(s, tc);

    return s;
}
