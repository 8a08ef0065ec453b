/*
 * check_analysis.c: results/analysis (singular values, ranks, norms, linear
 * CKA) against constructed matrices and numpy golden values, and
 * results/plot (figure data, gnuplot scripts, rendering).
 */

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/rng.h"
#include "core/status.h"
#include "results/analysis.h"
#include "results/plot.h"
#include "suites.h"
#include "test_cmd.h"
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

/* ------------------------------------------------------------------------ */
/* plots                                                                     */

static char tmpdir[512];

static void tmp_setup(void)
{
    ck_assert_ptr_nonnull(test_tmpdir_make(tmpdir, sizeof(tmpdir), "plot"));
}

static void tmp_teardown(void)
{
    test_tmpdir_remove(tmpdir);
    tmpdir[0] = '\0';
}

static char *tpath(const char *name)
{
    static char bufs[32][1024];   /* stems stay valid across a test's later calls */
    static int next;
    char *b = bufs[next++ % 32];

    snprintf(b, sizeof(bufs[0]), "%s/%s", tmpdir, name);
    return b;
}

#define slurp test_slurp     /* test_cmd.h */

static long file_size(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

#define ck_assert_has(text, needle) \
    ck_assert_msg(strstr((text), (needle)) != NULL, "missing \"%s\" in:\n%s", (needle), (text))

static const double steps[4] = {0, 10, 20, 30};
static const double loss_a[4] = {2.5, 1.25, 0.75, 0.5};
static const double loss_b[4] = {2.25, 1.5, NAN, 0.625};
static const double loss_c[4] = {2.5, 1.0, 0.5, 0.25};

static struct plot_figure loss_figure(struct plot_series *s, const char *stem)
{
    s[0] = (struct plot_series){.name = "lora", .n = 4, .x = steps, .y = loss_a};
    s[1] = (struct plot_series){.name = "vera_r256_seed_0", .n = 4, .x = steps, .y = loss_b};
    s[2] = (struct plot_series){.name = "lora", .n = 4, .x = steps, .y = loss_c};
    return (struct plot_figure){.kind = PLOT_LOSS, .stem = stem, .title = "oxford_pets, 4 shots",
                                .series = s, .n_series = 3, .logy = 1};
}

START_TEST(test_plot_files_content)
{
    struct plot_series s[3];
    struct plot_figure fig = loss_figure(s, tpath("loss"));
    char *tsv, *gp;

    ck_assert_int_eq(plot_write_files(&fig), RL_OK);
    tsv = slurp(tpath("loss.tsv"), NULL);
    gp = slurp(tpath("loss.gp"), NULL);

    /* data: header comments, blocks split by two blank lines, NaN left out */
    ck_assert_msg(strncmp(tsv, "# oxford_pets, 4 shots\n", 23) == 0, "%s", tsv);
    ck_assert_has(tsv, "# columns: step\tloss\n");
    ck_assert_has(tsv, "# index 0: lora\n0\t2.5\n10\t1.25\n20\t0.75\n30\t0.5\n\n\n# index 1: "
                       "vera_r256_seed_0\n0\t2.25\n10\t1.5\n30\t0.625\n\n\n# index 2: lora\n");
    ck_assert(strstr(tsv, "nan") == NULL && strstr(tsv, "NaN") == NULL);
    ck_assert(strstr(tsv, "\n\n\n\n") == NULL);

    /* script: both terminals, literal names, logscale, a key entry per name */
    ck_assert_has(gp, "set datafile separator \"\\t\"\n");
    ck_assert_has(gp, "set terminal pngcairo noenhanced");
    ck_assert_has(gp, "set output 'loss.png'\n");
    ck_assert_has(gp, "set terminal svg noenhanced");
    ck_assert_has(gp, "set output 'loss.svg'\n");
    ck_assert_has(gp, "unset output\n");
    ck_assert_has(gp, "set title 'oxford_pets, 4 shots' noenhanced\n");
    ck_assert_has(gp, "set logscale y\n");
    ck_assert_has(gp, "set linetype 1 linecolor rgb '#0072B2'");
    ck_assert_has(gp, "'loss.tsv' index 0 using 1:2 with lines linetype 1");
    ck_assert_has(gp, "title 'vera_r256_seed_0' noenhanced");
    ck_assert_has(gp, "'loss.tsv' index 2 using 1:2 with lines linetype 1 dashtype 1 "
                      "linewidth 1.5 notitle");
    ck_assert(strstr(gp, "set linetype 3 ") == NULL);   /* two names, two styles */
    ck_assert(strstr(gp, tmpdir) == NULL);              /* relocatable: bare file names */
    free(tsv);
    free(gp);
}
END_TEST

START_TEST(test_plot_deterministic)
{
    struct plot_series s[3];
    struct plot_figure fig = loss_figure(s, tpath("det"));
    char *t1, *g1, *t2, *g2;
    size_t lt1, lg1, lt2, lg2;

    ck_assert_int_eq(plot_write_files(&fig), RL_OK);
    t1 = slurp(tpath("det.tsv"), &lt1);
    g1 = slurp(tpath("det.gp"), &lg1);
    ck_assert_int_eq(plot_write_files(&fig), RL_OK);
    t2 = slurp(tpath("det.tsv"), &lt2);
    g2 = slurp(tpath("det.gp"), &lg2);
    ck_assert_uint_eq(lt1, lt2);
    ck_assert_uint_eq(lg1, lg2);
    ck_assert(memcmp(t1, t2, lt1) == 0);
    ck_assert(memcmp(g1, g2, lg1) == 0);
    ck_assert_int_eq(access(tpath("det.tsv.tmp"), F_OK), -1);
    free(t1);
    free(g1);
    free(t2);
    free(g2);
}
END_TEST

START_TEST(test_plot_shots_aggregates_seeds)
{
    /* two seeds at 1, 4 and 16 shots (out of order), one point at 2 */
    const double x[7] = {4, 1, 16, 4, 1, 16, 2};
    const double y[7] = {0.6, 0.5, 0.9, 0.8, 0.5, 0.9, 0.55};
    const double x2[2] = {1, 8}, y2[2] = {0.25, 0.5};
    struct plot_series s[2] = {{.name = "rand_lora", .n = 7, .x = x, .y = y}, {.name = "lora", .n = 2, .x = x2, .y = y2}};
    struct plot_figure fig = {.kind = PLOT_ACC_SHOTS, .stem = tpath("shots"), .series = s,
                              .n_series = 2};
    char *tsv, *gp;

    ck_assert_int_eq(plot_write_files(&fig), RL_OK);
    tsv = slurp(tpath("shots.tsv"), NULL);
    gp = slurp(tpath("shots.gp"), NULL);
    ck_assert_has(tsv, "# columns: shots\tmean_acc\tstd_acc\tn\n");
    ck_assert_has(tsv, "# index 0: rand_lora\n1\t0.5\t0\t2\n2\t0.55\t0\t1\n4\t0.7\t0.1414213562\t2\n"
                       "16\t0.9\t0\t2\n\n\n# index 1: lora\n1\t0.25\t0\t1\n8\t0.5\t0\t1\n");
    ck_assert_has(gp, "set logscale x 2\n");
    ck_assert_has(gp, "set xtics (1, 2, 4, 8, 16)\n");
    ck_assert_has(gp, "index 0 using 1:2:3 with yerrorlines linetype 1 title 'rand_lora' noenhanced");
    ck_assert_has(gp, "index 1 using 1:2 with linespoints linetype 2 title 'lora' noenhanced");
    free(tsv);
    free(gp);
}
END_TEST

START_TEST(test_plot_other_kinds_content)
{
    const double sv[5] = {4, 2, 1, 1e-9, 0};
    const double layer[3] = {0, 1, 2}, rk[3] = {8, 8, 7}, rk2[3] = {64, 64, 64};
    const double params[2] = {1e4, 1e5}, acc[2] = {0.5, 0.625}, err[2] = {0.01, 0.02};
    const double at[3] = {0, 1, 2};
    const char *labels[3] = {"v0.q_proj", "it's_v1", "v2"};
    struct plot_series sp = {.name = "lora_r8", .n = 5, .x = NULL, .y = sv};
    struct plot_series rs[2] = {{.name = "lora", .n = 3, .x = layer, .y = rk}, {.name = "randlora", .n = 3, .x = layer, .y = rk2}};
    struct plot_series ps = {.name = "vera", .n = 2, .x = params, .y = acc, .yerr = err};
    struct plot_figure f1 = {.kind = PLOT_SPECTRUM, .stem = tpath("spec"), .series = &sp,
                             .n_series = 1, .normalise = 1};
    struct plot_figure f2 = {.kind = PLOT_RANK, .stem = tpath("rank"), .series = rs,
                             .n_series = 2, .n_xtics = 3, .xtic_at = at, .xtic_labels = labels};
    struct plot_figure f3 = {.kind = PLOT_ACC_PARAMS, .stem = tpath("params"), .series = &ps,
                             .n_series = 1, .xlabel = "trainable_params"};
    char *t, *g;

    ck_assert_int_eq(plot_write_files(&f1), RL_OK);
    t = slurp(tpath("spec.tsv"), NULL);
    g = slurp(tpath("spec.gp"), NULL);
    ck_assert_has(t, "# index 0: lora_r8\n1\t1\n2\t0.5\n3\t0.25\n4\t2.5e-10\n5\t0\n");
    ck_assert_has(g, "set logscale y\n");
    ck_assert_has(g, "set ylabel 's_i / s_1' noenhanced\n");
    ck_assert_has(g, "with linespoints linetype 1 title 'lora_r8' noenhanced");
    free(t);
    free(g);

    ck_assert_int_eq(plot_write_files(&f2), RL_OK);
    t = slurp(tpath("rank.tsv"), NULL);
    g = slurp(tpath("rank.gp"), NULL);
    ck_assert_has(t, "# index 1: randlora\n0\t64\n1\t64\n2\t64\n");
    ck_assert_has(g, "set boxwidth 0.4 absolute\n");
    ck_assert_has(g, "using ($1-0.2):2 with boxes linetype 1");
    ck_assert_has(g, "using ($1+0.2):2 with boxes linetype 2");
    ck_assert_has(g, "('v0.q_proj' 0, 'it''s_v1' 1, 'v2' 2)");
    free(t);
    free(g);

    ck_assert_int_eq(plot_write_files(&f3), RL_OK);
    t = slurp(tpath("params.tsv"), NULL);
    g = slurp(tpath("params.gp"), NULL);
    ck_assert_has(t, "10000\t0.5\t0.01\t1\n100000\t0.625\t0.02\t1\n");
    ck_assert_has(g, "set logscale x 10\n");
    ck_assert_has(g, "set xlabel 'trainable_params' noenhanced\n");
    ck_assert_has(g, "using 1:2:3 with yerrorlines linetype 1 title 'vera' noenhanced");
    free(t);
    free(g);
}
END_TEST

/* all five kinds rendered to non-empty PNG and SVG, when gnuplot is here */
START_TEST(test_plot_render_all_kinds)
{
    const double x[5] = {1, 2, 4, 8, 16}, y[5] = {0.5, 0.6, 0.7, 0.75, 0.8};
    const double y2[5] = {0.45, 0.55, 0.72, 0.7, 0.85};
    const double sv[5] = {4, 2, 1, 0.5, 0.25};
    struct plot_series s2[2] = {{.name = "lora", .n = 5, .x = x, .y = y}, {.name = "full_ft", .n = 5, .x = x, .y = y2}};
    struct plot_series ls[3];
    struct plot_figure figs[5];
    const char *stems[5] = {"r_loss", "r_params", "r_shots", "r_spec", "r_rank"};
    static const unsigned char png_magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

    figs[0] = loss_figure(ls, tpath(stems[0]));
    for (int k = 1; k < 5; k++)
        figs[k] = (struct plot_figure){.kind = (enum plot_kind)k, .stem = tpath(stems[k]),
                                       .series = s2, .n_series = 2};
    figs[3].series = (struct plot_series[]){{.name = "lora", .n = 5, .x = NULL, .y = sv}};
    figs[3].n_series = 1;
    for (int k = 0; k < 5; k++) {
        char name[64], *png;
        int rc = plot_write(&figs[k]);

        if (rc == RL_ERR_NA) {
            printf("check_analysis: gnuplot not found, rendering not tested (%s)\n",
                   rl_error_msg());
            return;
        }
        ck_assert_msg(rc == RL_OK, "%s: %s", stems[k], rl_error_msg());
        snprintf(name, sizeof(name), "%s.png", stems[k]);
        ck_assert_int_gt(file_size(tpath(name)), 1000);
        png = slurp(tpath(name), NULL);
        ck_assert(memcmp(png, png_magic, 8) == 0);
        free(png);
        snprintf(name, sizeof(name), "%s.svg", stems[k]);
        ck_assert_int_gt(file_size(tpath(name)), 1000);
    }
    /* the underscore name is drawn literally into the SVG */
    {
        char *svg = slurp(tpath("r_shots.svg"), NULL);

        ck_assert_has(svg, "full_ft");
        free(svg);
    }
}
END_TEST

START_TEST(test_plot_without_gnuplot)
{
    struct plot_series s[3];
    struct plot_figure fig = loss_figure(s, tpath("nognu"));
    const char *old = getenv("RANDLORA_GNUPLOT");
    char *saved = old ? xstrdup(old) : NULL;
    int rc;

    setenv("RANDLORA_GNUPLOT", "/nonexistent/dir/gnuplot", 1);
    rc = plot_write(&fig);
    if (saved) {
        setenv("RANDLORA_GNUPLOT", saved, 1);
        free(saved);
    } else {
        unsetenv("RANDLORA_GNUPLOT");
    }
    ck_assert_int_eq(rc, RL_ERR_NA);
    ck_assert_msg(strstr(rl_error_msg(), "not rendered"), "%s", rl_error_msg());
    ck_assert_int_gt(file_size(tpath("nognu.tsv")), 0);
    ck_assert_int_gt(file_size(tpath("nognu.gp")), 0);
    ck_assert_int_eq(file_size(tpath("nognu.png")), -1);
}
END_TEST

START_TEST(test_plot_gnuplot_error)
{
    FILE *f = fopen(tpath("bad.gp"), "w");
    int rc;

    ck_assert_ptr_nonnull(f);
    fputs("set terminal pngcairo\nset output 'bad.png'\nplot 'no_such_file.tsv' using 1:2\n", f);
    fclose(f);
    rc = plot_render(tpath("bad.gp"));
    if (rc == RL_ERR_NA) {
        printf("check_analysis: gnuplot not found, failure path not tested\n");
        return;
    }
    ck_assert_int_eq(rc, RL_ERR);
    ck_assert_msg(strstr(rl_error_msg(), "gnuplot failed") &&
                  strstr(rl_error_msg(), "no_such_file"), "%s", rl_error_msg());
    ck_assert(strchr(rl_error_msg(), '\n') == NULL);
}
END_TEST

START_TEST(test_plot_errors)
{
    const double y[2] = {NAN, INFINITY};
    struct plot_series s = {.name = "a", .n = 2, .x = NULL, .y = y};
    struct plot_series ok = {.name = "a", .n = 1, .y = y + 0};
    const double fine[1] = {1.0};
    struct plot_figure fig = {.kind = PLOT_LOSS, .stem = NULL, .series = &s, .n_series = 1};

    ck_assert_int_eq(plot_write(&fig), RL_ERR_ARG);
    fig.stem = tpath("e");
    fig.n_series = 0;
    ck_assert_int_eq(plot_write(&fig), RL_ERR_ARG);
    fig.n_series = 1;
    ck_assert_int_eq(plot_write(&fig), RL_ERR_ARG);
    ck_assert_msg(strstr(rl_error_msg(), "no finite data"), "%s", rl_error_msg());
    ok.y = fine;
    fig.series = &ok;
    fig.stem = tpath("no/such/dir/e");
    ck_assert_int_eq(plot_write(&fig), RL_ERR_IO);
    ck_assert_msg(strstr(rl_error_msg(), "no/such/dir/e.tsv"), "%s", rl_error_msg());
    ck_assert_int_eq(plot_render(""), RL_ERR_ARG);
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

    tc = tcase_create("plot");
    tcase_add_checked_fixture(tc, tmp_setup, tmp_teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_plot_files_content);
    tcase_add_test(tc, test_plot_deterministic);
    tcase_add_test(tc, test_plot_shots_aggregates_seeds);
    tcase_add_test(tc, test_plot_other_kinds_content);
    tcase_add_test(tc, test_plot_render_all_kinds);
    tcase_add_test(tc, test_plot_without_gnuplot);
    tcase_add_test(tc, test_plot_gnuplot_error);
    tcase_add_test(tc, test_plot_errors);
    suite_add_tcase(s, tc);
    return s;
}
