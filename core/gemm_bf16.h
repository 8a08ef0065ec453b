/*
 * gemm_bf16.h: bf16 matrix products with fp32 accumulation, through
 * oneDNN's matmul primitive (AMX or AVX512-BF16 where the CPU has them).
 *
 *     C[M,N] (fp32)  =  beta * C  +  A[M,K] (bf16)  x  op(B)  (bf16)
 *
 * with every product formed and summed in fp32. B is given either as
 * [N,K] row-major (GEMM_BF16_B_NK: the layout of a weight W[out,in], so
 * C = A W^T, the linear layer's forward) or as [K,N] row-major
 * (GEMM_BF16_B_KN: C = A W, the linear layer's input gradient with W[out,in]
 * read as [K=out, N=in]). All matrices are contiguous (leading dimension =
 * row length). beta is 0 (overwrite; C need not be initialised) or 1
 * (accumulate, oneDNN's sum post-op).
 *
 * Primitives: one per (M, N, K, layout, beta), created on the first call of
 * that shape and cached for the life of the process (GEMM_BF16_MAX_SHAPES of
 * them; a further shape fails with RL_ERR_NA rather than evict, so a step
 * never creates one). The scratchpad oneDNN needs is one buffer owned here,
 * grown when a primitive is created, never during a call. gemm_bf16_f32a
 * converts an fp32 A into a bf16 buffer owned here (grown on the first call
 * of a larger shape, then reused).
 *
 * Numerics: with A and B already bf16, the only error is fp32 accumulation
 * (the products of two 8-bit significands are exact in fp32):
 *     |C - C_exact| <= gamma_K * sum_k |a_ik b_kj|,  gamma_K = K 2^-24 / (1 - K 2^-24)
 * With fp32 inputs rounded to bf16 first (relative error <= u = 2^-8 each),
 * add (2u + u^2) * sum_k |a_ik b_kj|. tests/check_gemm_bf16.c asserts both
 * bounds per element.
 *
 * Availability (the rule, from measurements in docs/BENCHMARKS.md "bf16
 * without AMX"): bf16 runs where the CPU has bf16 instructions.
 *   - AMX (avx512_core_amx): bf16 products run 3-4x OpenBLAS's fp32 rate.
 *   - AVX512-BF16 without AMX (avx512_core_bf16): bf16 products measured at
 *     0.56-0.76x the fp32 rate, the step at 0.42-0.86x fp32's: refused like
 *     the next case (RL_ERR_NA, the message names the variable), unless
 *     RANDLORA_BF16_NO_AMX=1, which runs them; gemm_bf16_warn_if_slow() then
 *     says once that fp32 is faster, and describe marks the line
 *     "(no AMX: slower than fp32)".
 *   - No bf16 instructions: oneDNN would emulate bf16 (avx512_core,
 *     gemm:jit, 0.21-0.28x the fp32 rate) or run its reference kernel
 *     (avx2 and older): gemm_bf16_check() returns RL_ERR_NA with a message
 *     to use fp32, and the products return RL_ERR_NA too, never running
 *     either.
 *
 * Threads: oneDNN runs each product on the OpenMP team (omp_set_num_threads
 * in core/threads.c). Not reentrant: one caller at a time (the cache, the
 * scratchpad and the conversion buffer are shared), and never from inside an
 * OpenMP parallel region.
 */
#ifndef RANDLORA_CORE_GEMM_BF16_H
#define RANDLORA_CORE_GEMM_BF16_H

#include <stddef.h>

#include "core/bf16.h"

enum gemm_bf16_b_layout {
    GEMM_BF16_B_NK,      /* B is [N,K] row-major: C = A B^T (W[out,in]) */
    GEMM_BF16_B_KN,      /* B is [K,N] row-major: C = A B               */
};

#define GEMM_BF16_MAX_SHAPES 1024

/* C[M,N] = beta*C + A[M,K] op(B); A bf16. beta must be 0 or 1. Returns
 * RL_OK, or RL_ERR_NA (no fast bf16 kernel on this CPU, or the shape cache
 * is full) / RL_ERR_ARG (a zero or oversized dimension, beta not 0 or 1),
 * with rl_error_msg set. */
int gemm_bf16(float *C, const bf16 *A, const bf16 *B, size_t M, size_t N, size_t K,
              enum gemm_bf16_b_layout b_layout, float beta);

/* The same with A in fp32, rounded to bf16 (nearest even) on the way in. */
int gemm_bf16_f32a(float *C, const float *A, const bf16 *B, size_t M, size_t N, size_t K,
                   enum gemm_bf16_b_layout b_layout, float beta);

/* The general product on fp32 operands, as cblas_sgemm (row-major) takes
 * them:  C (M,N; row stride ldc) = alpha op(A) op(B) + beta C,  op(A) (M,K)
 * is A (lda) or, with ta, A^T of A stored [K,M]; op(B) (K,N) is B (ldb) or,
 * with tb, B^T of B stored [N,K]. A and B are rounded to bf16 (nearest
 * even) into compact copies owned here, multiplied with fp32 accumulation,
 * scaled by alpha in fp32 (oneDNN's output scale) and added to beta C.
 * beta 0 or 1, alpha finite and nonzero; other arguments: RL_ERR_ARG (the
 * caller's cue to use sgemm). Error bound as gemm_bf16_f32a's, scaled by
 * |alpha|, plus one fp32 rounding of the scaled product. The adapters'
 * branches use it under train.precision = bf16 (methods/adapter_impl.h
 * mm_branch). */
int gemm_bf16_mm(int ta, int tb, size_t M, size_t N, size_t K, float alpha,
                 const float *A, size_t lda, const float *B, size_t ldb, float beta,
                 float *C, size_t ldc);

/* RL_OK when bf16 products run on an optimised oneDNN kernel here, else
 * RL_ERR_NA with one line in rl_error_msg naming the CPU's ISA and what to
 * use instead. Creates (and caches) one probe primitive on its first call. */
int gemm_bf16_check(void);

/* Where bf16 runs but is slower than fp32 (AVX512-BF16 without AMX, allowed
 * by RANDLORA_BF16_NO_AMX=1): one
 * warning line on stderr (log_warn), the first time it is called in the
 * process; nothing on AMX or where bf16 is refused. Callers: where a run
 * or benchmark sets its precision to bf16. */
void gemm_bf16_warn_if_slow(void);

/* How many times OpenBLAS's fp32 rate bf16 products run at on this ISA
 * class, as measured (docs/BENCHMARKS.md, the step's shapes with the fp32
 * inputs' conversion counted): 3.0 with AMX (2.8-4.3x on the frozen
 * linears' shapes, 1.5-20x on the adapters' branches), 0.65 on AVX512-BF16
 * without AMX (0.56-0.76x), 1.0 where bf16 is refused. A constant per ISA,
 * not a timing: the adapters' path choice prices bf16 work with it, and
 * must not depend on the load of the moment. */
double gemm_bf16_rate_over_fp32(void);

/* The ISA oneDNN uses on this CPU: "avx512_core_amx", "avx512_core_bf16",
 * "avx512_core", "avx2", ... (a static string). */
const char *gemm_bf16_isa(void);

/* The matmul implementation oneDNN picks for a bf16 product here, e.g.
 * "brg:avx512_core_amx_bf16" or "ref:any" (a static string). */
const char *gemm_bf16_impl(void);

/* One line for `randlora threads` and run files, e.g.
 * "oneDNN 2.6.3 isa=avx512_core_amx matmul=brg:avx512_core_amx_bf16", with
 * " (no AMX: slower than fp32)" after it on AVX512-BF16 without AMX;
 * into buf; returns buf. */
char *gemm_bf16_describe(char *buf, size_t len);

/* Counters for tests and benchmarks. */
struct gemm_bf16_stats {
    size_t primitives_created;   /* matmul primitives created so far   */
    size_t calls;                /* products run so far                */
    size_t scratchpad_bytes;     /* the shared scratchpad's size       */
    double seconds;              /* wall time inside the products (the
                                    conversion of an fp32 A included)  */
    double flops;                /* 2 M N K summed over the products   */
};
struct gemm_bf16_stats gemm_bf16_stats(void);

#endif /* RANDLORA_CORE_GEMM_BF16_H */
