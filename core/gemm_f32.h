/*
 * gemm_f32.h: fp32 matrix products whose results do not depend on the
 * thread count.
 *
 *     gemm_f32(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)
 *
 * is cblas_sgemm(CblasRowMajor, ta, tb, ...) with the same arguments, and
 * every fp32 GEMM of the models goes through it.
 *
 * Why: OpenBLAS splits the inner dimension K into blocks of GEMM_Q (448 for
 * sgemm on SkylakeX in 0.3.21) and adds each block's products into C.
 * Once K exceeds GEMM_Q its serial driver (one thread) and its threaded
 * driver halve the remainder differently (one rounds the half up to the
 * kernel's unroll, the other does not), so the same product rounds
 * differently on 1 thread and on 2: about a quarter of random shapes with
 * K in 450..2100 differ in the last bits. A decoder's weight gradients sum
 * over every token of a batch (K = batch x sequence, hundreds to
 * thousands), so a run resumed with another thread count than it started
 * with (a sweep's forked run at cores/jobs threads resumed by `randlora
 * train` at every core; another machine) left the uninterrupted run's
 * path. Below GEMM_Q both drivers compute each element of C with the same
 * kernel in the same order (tested: tests/check_determinism.c).
 *
 * So K is cut here into pieces of GEMM_F32_K_CHUNK (below GEMM_Q of
 * OpenBLAS's x86 kernels), each one cblas_sgemm adding into C in order
 * (beta on the first, 1 on the rest: what OpenBLAS does with its own
 * blocks). Measured on 2 cores: within the run-to-run noise (0.88-1.05x)
 * at Qwen2-0.5B's gradient shapes (896 x 4864 x 4096).
 */
#ifndef RANDLORA_CORE_GEMM_F32_H
#define RANDLORA_CORE_GEMM_F32_H

#include <cblas.h>

#define GEMM_F32_K_CHUNK 256

/* C (M,N) = alpha op(A) op(B) + beta C, all row-major: op(A) is (M,K) (A
 * stored (K,M) when ta is CblasTrans), op(B) is (K,N) (B stored (N,K) when
 * tb is CblasTrans). Dimensions are CBLAS's ints. */
void gemm_f32(enum CBLAS_TRANSPOSE ta, enum CBLAS_TRANSPOSE tb, int M, int N, int K,
              float alpha, const float *A, int lda, const float *B, int ldb, float beta,
              float *C, int ldc);

#endif /* RANDLORA_CORE_GEMM_F32_H */
