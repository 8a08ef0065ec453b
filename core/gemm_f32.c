/*
 * gemm_f32.c: fp32 GEMMs in fixed K pieces (gemm_f32.h).
 */
#include "core/gemm_f32.h"

#include <stddef.h>

void gemm_f32(enum CBLAS_TRANSPOSE ta, enum CBLAS_TRANSPOSE tb, int M, int N, int K,
              float alpha, const float *A, int lda, const float *B, int ldb, float beta,
              float *C, int ldc)
{
    int k0 = 0;

    do {
        const int k = K - k0 < GEMM_F32_K_CHUNK ? K - k0 : GEMM_F32_K_CHUNK;
        /* columns k0.. of op(A): columns of A, or rows of A stored (K,M);
         * rows k0.. of op(B): rows of B, or columns of B stored (N,K) */
        const float *a = ta == CblasNoTrans ? A + k0 : A + (size_t)k0 * (size_t)lda;
        const float *b = tb == CblasNoTrans ? B + (size_t)k0 * (size_t)ldb : B + k0;

        cblas_sgemm(CblasRowMajor, ta, tb, M, N, k, alpha, a, lda, b, ldb,
                    k0 == 0 ? beta : 1.0f, C, ldc);
        k0 += k;
    } while (k0 < K);
}
