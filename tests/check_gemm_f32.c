/*
 * check_gemm_f32.c: the fp32 GEMM in fixed K pieces (core/gemm_f32.h):
 *   - it computes the product: every transpose, padded leading dimensions,
 *     alpha and beta (0, 1, other), K = 0, K below, at and past the piece
 *     size, against a double-precision reference within fp32 round-off;
 *   - the same bits on 1, 2 and 3 threads at shapes whose K (932 to 1734)
 *     OpenBLAS 0.3.21's serial and threaded drivers block differently
 *     (cblas_sgemm itself differed there: this fails with the pieces made
 *     larger than K).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/gemm_f32.h"
#include "core/rng.h"
#include "core/threads.h"
#include "suites.h"
#include "test_util.h"

struct gemm_case {
    int M, N, K;
    enum CBLAS_TRANSPOSE ta, tb;
    float alpha, beta;
};

/* A, B, C stored for the case, with pad extra columns per row */
struct gemm_data {
    float *A, *B, *C;
    int lda, ldb, ldc;
};

static void data_make(struct gemm_data *d, const struct gemm_case *c, int pad, uint64_t seed)
{
    struct rng r;
    const int arows = c->ta == CblasNoTrans ? c->M : c->K;
    const int brows = c->tb == CblasNoTrans ? c->K : c->N;

    rng_init(&r, seed);
    d->lda = (c->ta == CblasNoTrans ? c->K : c->M) + pad;
    d->ldb = (c->tb == CblasNoTrans ? c->N : c->K) + pad;
    d->ldc = c->N + pad;
    d->A = test_randn(&r, (size_t)arows * (size_t)d->lda + 1, 1.0f);
    d->B = test_randn(&r, (size_t)brows * (size_t)d->ldb + 1, 1.0f);
    d->C = test_randn(&r, (size_t)c->M * (size_t)d->ldc + 1, 1.0f);
}

static void data_free(struct gemm_data *d)
{
    free(d->A);
    free(d->B);
    free(d->C);
}

static float op_a(const struct gemm_data *d, const struct gemm_case *c, int i, int k)
{
    return c->ta == CblasNoTrans ? d->A[(size_t)i * d->lda + k] : d->A[(size_t)k * d->lda + i];
}

static float op_b(const struct gemm_data *d, const struct gemm_case *c, int k, int j)
{
    return c->tb == CblasNoTrans ? d->B[(size_t)k * d->ldb + j] : d->B[(size_t)j * d->ldb + k];
}

static const struct gemm_case reference_cases[] = {
    { 5, 7, 0, CblasNoTrans, CblasNoTrans, 1.0f, 0.5f },
    { 5, 7, 3, CblasNoTrans, CblasTrans, 0.5f, 0.0f },
    { 9, 6, GEMM_F32_K_CHUNK, CblasTrans, CblasNoTrans, 1.0f, 1.0f },
    { 9, 6, GEMM_F32_K_CHUNK + 1, CblasTrans, CblasTrans, -2.0f, 0.25f },
    { 17, 3, 3 * GEMM_F32_K_CHUNK + 7, CblasNoTrans, CblasNoTrans, 1.0f, 0.0f },
    { 4, 33, 2 * GEMM_F32_K_CHUNK + 100, CblasNoTrans, CblasTrans, 1.0f, 1.0f },
    { 8, 8, 2 * GEMM_F32_K_CHUNK + 100, CblasTrans, CblasNoTrans, 0.75f, 0.0f },
    { 3, 11, 5 * GEMM_F32_K_CHUNK + 1, CblasTrans, CblasTrans, 1.0f, -1.0f },
};

/* each element within fp32 round-off of the double-precision product:
 * |err| <= 2 (K + 2) 2^-24 (|alpha| sum_k |a b| + |beta c|) */
START_TEST(test_gemm_f32_reference)
{
    const struct gemm_case *c = &reference_cases[_i];
    struct gemm_data d;

    data_make(&d, c, 3, 100 + (uint64_t)_i);
    float *C0 = test_copy(d.C, (size_t)c->M * (size_t)d.ldc + 1);

    gemm_f32(c->ta, c->tb, c->M, c->N, c->K, c->alpha, d.A, d.lda, d.B, d.ldb, c->beta, d.C,
             d.ldc);
    for (int i = 0; i < c->M; i++)
        for (int j = 0; j < c->N; j++) {
            const double c0 = C0[(size_t)i * d.ldc + j];
            double want = 0.0, mag = 0.0;

            for (int k = 0; k < c->K; k++) {
                const double p = (double)op_a(&d, c, i, k) * (double)op_b(&d, c, k, j);
                want += p;
                mag += fabs(p);
            }
            want = (double)c->alpha * want + (double)c->beta * c0;
            mag = fabs((double)c->alpha) * mag + fabs((double)c->beta * c0);
            const double tol = 2.0 * (c->K + 2) * ldexp(1.0, -24) * mag + 1e-30;
            const double got = d.C[(size_t)i * d.ldc + j];

            ck_assert_msg(fabs(got - want) <= tol, "case %d (%d,%d): %.9g, want %.9g (tol %g)",
                          _i, i, j, got, want, tol);
        }
    /* the padding between rows is untouched */
    for (int i = 0; i < c->M; i++)
        for (int j = c->N; j < d.ldc; j++)
            ck_assert(memcmp(&d.C[(size_t)i * d.ldc + j], &C0[(size_t)i * d.ldc + j],
                             sizeof(float)) == 0);
    free(C0);
    data_free(&d);
}
END_TEST

/* shapes on which cblas_sgemm gave other bits on 1 thread than on 2 */
static const struct gemm_case thread_cases[] = {
    { 32, 500, 932, CblasTrans, CblasTrans, 1.0f, 0.0f },
    { 128, 500, 933, CblasTrans, CblasNoTrans, 1.0f, 1.0f },
    { 128, 64, 1707, CblasNoTrans, CblasTrans, 1.0f, 0.0f },
    { 100, 250, 1028, CblasTrans, CblasTrans, 1.0f, 0.0f },
    { 64, 352, 1734, CblasTrans, CblasNoTrans, 1.0f, 1.0f },
};

START_TEST(test_gemm_f32_threads)
{
    const size_t n_cases = sizeof(thread_cases) / sizeof(thread_cases[0]);
    struct thread_policy before = threads_current();

    for (size_t t = 0; t < n_cases; t++) {
        const struct gemm_case *c = &thread_cases[t];
        struct gemm_data d;
        float *C0, *out[3];

        data_make(&d, c, 0, 7 + t);
        C0 = test_copy(d.C, (size_t)c->M * (size_t)d.ldc);
        for (int n = 1; n <= 3; n++) {
            memcpy(d.C, C0, (size_t)c->M * (size_t)d.ldc * sizeof(float));
            threads_init(n);
            gemm_f32(c->ta, c->tb, c->M, c->N, c->K, c->alpha, d.A, d.lda, d.B, d.ldb, c->beta,
                     d.C, d.ldc);
            out[n - 1] = test_copy(d.C, (size_t)c->M * (size_t)d.ldc);
        }
        threads_init(before.n_omp);               /* the next tests run as before */
        for (int n = 2; n <= 3; n++)
            ck_assert_msg(memcmp(out[0], out[n - 1],
                                 (size_t)c->M * (size_t)d.ldc * sizeof(float)) == 0,
                          "M %d N %d K %d: 1 thread and %d differ", c->M, c->N, c->K, n);
        for (int n = 0; n < 3; n++)
            free(out[n]);
        free(C0);
        data_free(&d);
    }
}
END_TEST

Suite *suite_gemm_f32(void)
{
    Suite *s = suite_create("gemm_f32");
    TCase *tc = tcase_create("gemm_f32");

    tcase_add_loop_test(tc, test_gemm_f32_reference, 0,
                        (int)(sizeof(reference_cases) / sizeof(reference_cases[0])));
    tcase_add_test(tc, test_gemm_f32_threads);
    suite_add_tcase(s, tc);
    return s;
}
