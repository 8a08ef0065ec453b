/*
 * analysis.c: spectra, ranks and norms of weight updates; linear CKA.
 * See analysis.h for the definitions and costs.
 *
 * LAPACK is called through its Fortran symbol (OpenBLAS exports dgesdd_):
 * arguments by reference, column-major storage, 32-bit integers (OpenBLAS's
 * LP64 build, the one pkg-config's "openblas" names), and gfortran's hidden
 * length of the CHARACTER argument passed after the others. A row-major
 * d_out x d_in matrix is, read column-major, its transpose (d_in x d_out,
 * leading dimension d_in); a matrix and its transpose have the same singular
 * values, so no transposing copy is needed.
 */
#include "results/analysis.h"

#include <cblas.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/status.h"

/* LAPACK (Fortran ABI) */
void dgesdd_(const char *jobz, const int *m, const int *n, double *a, const int *lda, double *s,
             double *u, const int *ldu, double *vt, const int *ldvt, double *work,
             const int *lwork, int *iwork, int *info, size_t jobz_len);

/* sizes LAPACK and CBLAS can take: each dimension and their product in an int */
static int check_dims(const char *what, size_t a, size_t b)
{
    if (a == 0 || b == 0)
        return rl_error_set(RL_ERR_ARG, "%s: empty matrix (%zu x %zu)", what, a, b);
    if (a > INT_MAX || b > INT_MAX || a > (size_t)INT_MAX / b)
        return rl_error_set(RL_ERR_ARG, "%s: %zu x %zu is beyond LAPACK's 32-bit sizes", what,
                            a, b);
    return RL_OK;
}

/* widen a row-major float matrix to double; fails on a non-finite entry.
 * *sumsq gets the sum of squares (for the Frobenius norm) when non-NULL. */
static int to_double(double *dst, const float *src, size_t rows, size_t cols, const char *what,
                     double *sumsq)
{
    double acc = 0.0;

    for (size_t i = 0; i < rows; i++)
        for (size_t j = 0; j < cols; j++) {
            float v = src[i * cols + j];

            if (!isfinite(v))
                return rl_error_set(RL_ERR_ARG, "%s: non-finite value %g at (%zu, %zu)", what,
                                    (double)v, i, j);
            dst[i * cols + j] = v;
            acc += (double)v * (double)v;
        }
    if (sumsq)
        *sumsq = acc;
    return RL_OK;
}

/* singular values of a row-major double matrix (destroyed) */
static int svd_values_double(double *s, double *a, size_t d_out, size_t d_in)
{
    /* column-major view: M = d_in rows, N = d_out columns, lda = d_in */
    const int m = (int)d_in, n = (int)d_out, lda = m, one = 1, query = -1;
    const size_t k = d_in < d_out ? d_in : d_out;
    double dummy_u = 0.0, dummy_vt = 0.0, wq = 0.0;
    int info = 0, lwork;
    int *iwork;
    double *work;

    iwork = xmalloc_array(8 * k, sizeof(*iwork));
    dgesdd_("N", &m, &n, a, &lda, s, &dummy_u, &one, &dummy_vt, &one, &wq, &query, iwork,
            &info, 1);
    if (info != 0) {
        free(iwork);
        return rl_error_set(RL_ERR, "analysis: dgesdd workspace query failed (info %d) for "
                            "%zu x %zu", info, d_out, d_in);
    }
    if (!(wq >= 1.0 && wq < (double)INT_MAX)) {
        free(iwork);
        return rl_error_set(RL_ERR_ARG, "analysis: dgesdd wants %g doubles of workspace for "
                            "%zu x %zu", wq, d_out, d_in);
    }
    lwork = (int)ceil(wq);
    work = xmalloc_array((size_t)lwork, sizeof(*work));
    dgesdd_("N", &m, &n, a, &lda, s, &dummy_u, &one, &dummy_vt, &one, work, &lwork, iwork,
            &info, 1);
    free(work);
    free(iwork);
    if (info < 0)
        return rl_error_set(RL_ERR, "analysis: dgesdd rejected argument %d for %zu x %zu",
                            -info, d_out, d_in);
    if (info > 0)
        return rl_error_set(RL_ERR, "analysis: dgesdd did not converge (info %d) for %zu x %zu",
                            info, d_out, d_in);
    return RL_OK;
}

int analysis_singular_values(double *s, const float *a, size_t d_out, size_t d_in)
{
    double *ad;
    int rc = check_dims("analysis: singular values", d_out, d_in);

    if (rc != RL_OK)
        return rc;
    ad = xmalloc_array(d_out * d_in, sizeof(*ad));
    rc = to_double(ad, a, d_out, d_in, "analysis: singular values", NULL);
    if (rc == RL_OK)
        rc = svd_values_double(s, ad, d_out, d_in);
    free(ad);
    return rc;
}

size_t analysis_rank(const double *s, size_t k, double tol)
{
    size_t r = 0;

    for (size_t i = 0; i < k; i++)
        r += s[i] > tol;
    return r;
}

double analysis_rank_tol(double s_max, size_t d_out, size_t d_in)
{
    return (double)(d_out > d_in ? d_out : d_in) * (double)FLT_EPSILON * s_max;
}

double analysis_effective_rank(const double *s, size_t k)
{
    double total = 0.0, h = 0.0;

    for (size_t i = 0; i < k; i++)
        total += s[i];
    if (!(total > 0.0))
        return 0.0;
    for (size_t i = 0; i < k; i++) {
        double p = s[i] / total;

        if (p > 0.0)
            h -= p * log(p);
    }
    return exp(h);
}

double analysis_stable_rank(const double *s, size_t k, double frobenius_norm)
{
    if (k == 0 || !(s[0] > 0.0))
        return 0.0;
    return (frobenius_norm / s[0]) * (frobenius_norm / s[0]);
}

int analysis_layer(struct layer_analysis *out, const float *dw, size_t d_out, size_t d_in,
                   double rel_tol)
{
    struct layer_analysis la;
    double *ad, sumsq = 0.0;
    int rc;

    memset(out, 0, sizeof(*out));
    out->cka = NAN;
    if (!(rel_tol >= 0.0 && rel_tol < 1.0))
        return rl_error_set(RL_ERR_ARG, "analysis: relative rank threshold %g not in [0, 1)",
                            rel_tol);
    rc = check_dims("analysis: dW", d_out, d_in);
    if (rc != RL_OK)
        return rc;

    memset(&la, 0, sizeof(la));
    la.d_out = d_out;
    la.d_in = d_in;
    la.n_s = d_out < d_in ? d_out : d_in;
    la.cka = NAN;
    ad = xmalloc_array(d_out * d_in, sizeof(*ad));
    rc = to_double(ad, dw, d_out, d_in, "analysis: dW", &sumsq);
    if (rc == RL_OK) {
        la.s = xmalloc_array(la.n_s, sizeof(*la.s));
        rc = svd_values_double(la.s, ad, d_out, d_in);
    }
    free(ad);
    if (rc != RL_OK) {
        free(la.s);
        return rc;
    }

    la.s_max = la.s[0];
    la.frobenius_norm = sqrt(sumsq);
    la.tol = analysis_rank_tol(la.s_max, d_out, d_in);
    la.rank = analysis_rank(la.s, la.n_s, la.tol);
    la.rel_tol = rel_tol;
    la.rank_rel = la.s_max > 0.0 ? analysis_rank(la.s, la.n_s, rel_tol * la.s_max) : 0;
    la.effective_rank = analysis_effective_rank(la.s, la.n_s);
    la.stable_rank = analysis_stable_rank(la.s, la.n_s, la.frobenius_norm);
    for (size_t i = 0; i < la.n_s; i++)
        la.nuclear_norm += la.s[i];
    *out = la;
    return RL_OK;
}

void analysis_layer_free(struct layer_analysis *la)
{
    if (!la)
        return;
    free(la->s);
    memset(la, 0, sizeof(*la));
    la->cka = NAN;
}

/* ------------------------------------------------------------------------ */
/* linear CKA                                                                */

/* centred double copy of a row-major n x p float matrix */
static int centred(double **out, const float *x, size_t n, size_t p, const char *what)
{
    double *c = xmalloc_array(n * p, sizeof(*c));
    double *mean = xcalloc(p, sizeof(*mean));
    int rc = to_double(c, x, n, p, what, NULL);

    if (rc != RL_OK) {
        free(mean);
        free(c);
        return rc;
    }
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < p; j++)
            mean[j] += c[i * p + j];
    for (size_t j = 0; j < p; j++)
        mean[j] /= (double)n;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < p; j++)
            c[i * p + j] -= mean[j];
    free(mean);
    *out = c;
    return RL_OK;
}

/* Frobenius inner product of two symmetric q x q matrices of which only the
 * upper triangles are set */
static double sym_dot_upper(const double *a, const double *b, size_t q)
{
    double diag = 0.0, off = 0.0;

    for (size_t i = 0; i < q; i++) {
        diag += a[i * q + i] * b[i * q + i];
        for (size_t j = i + 1; j < q; j++)
            off += a[i * q + j] * b[i * q + j];
    }
    return diag + 2.0 * off;
}

int analysis_linear_cka(double *cka, const float *x, const float *y, size_t n, size_t p1,
                        size_t p2)
{
    return analysis_linear_cka_ex(cka, x, y, n, p1, p2, CKA_AUTO);
}

int analysis_linear_cka_ex(double *cka, const float *x, const float *y, size_t n, size_t p1,
                           size_t p2, enum cka_method method)
{
    double *xc = NULL, *yc = NULL, num, nx, ny;
    int rc;

    *cka = NAN;
    if (n < 2)
        return rl_error_set(RL_ERR_ARG, "analysis: CKA needs at least 2 inputs, got %zu", n);
    if ((rc = check_dims("analysis: CKA X", n, p1)) != RL_OK ||
        (rc = check_dims("analysis: CKA Y", n, p2)) != RL_OK)
        return rc;
    if (method == CKA_AUTO)
        method = n < p1 + p2 ? CKA_GRAM : CKA_FEATURE;
    if (method == CKA_GRAM && n > 46340)   /* n * n must fit an int */
        return rl_error_set(RL_ERR_ARG, "analysis: CKA Gram form with %zu inputs is too large",
                            n);
    if (method != CKA_GRAM && method != CKA_FEATURE)
        return rl_error_set(RL_ERR_ARG, "analysis: unknown CKA method %d", (int)method);
    if ((rc = centred(&xc, x, n, p1, "analysis: CKA X")) != RL_OK)
        return rc;
    if ((rc = centred(&yc, y, n, p2, "analysis: CKA Y")) != RL_OK) {
        free(xc);
        return rc;
    }

    if (method == CKA_FEATURE) {
        double *sxx = xcalloc(p1 * p1, sizeof(*sxx));
        double *syy = xcalloc(p2 * p2, sizeof(*syy));
        double *syx = xmalloc_array(p2 * p1, sizeof(*syx));

        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)p1, (int)n, 1.0, xc, (int)p1,
                    0.0, sxx, (int)p1);
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)p2, (int)n, 1.0, yc, (int)p2,
                    0.0, syy, (int)p2);
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)p2, (int)p1, (int)n, 1.0, yc,
                    (int)p2, xc, (int)p1, 0.0, syx, (int)p1);
        num = 0.0;
        for (size_t i = 0; i < p2 * p1; i++)
            num += syx[i] * syx[i];
        nx = sqrt(sym_dot_upper(sxx, sxx, p1));
        ny = sqrt(sym_dot_upper(syy, syy, p2));
        free(sxx);
        free(syy);
        free(syx);
    } else {
        double *kx = xcalloc(n * n, sizeof(*kx));
        double *ky = xcalloc(n * n, sizeof(*ky));

        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, (int)n, (int)p1, 1.0, xc, (int)p1,
                    0.0, kx, (int)n);
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, (int)n, (int)p2, 1.0, yc, (int)p2,
                    0.0, ky, (int)n);
        num = sym_dot_upper(kx, ky, n);
        nx = sqrt(sym_dot_upper(kx, kx, n));
        ny = sqrt(sym_dot_upper(ky, ky, n));
        free(kx);
        free(ky);
    }
    free(xc);
    free(yc);

    if (!(nx > 0.0))
        return rl_error_set(RL_ERR_ARG, "analysis: CKA X is constant over its %zu inputs", n);
    if (!(ny > 0.0))
        return rl_error_set(RL_ERR_ARG, "analysis: CKA Y is constant over its %zu inputs", n);
    *cka = num / (nx * ny);
    return RL_OK;
}
