/*
 * gemm_count.c: the cblas_sgemm interposer of bench/gemm_count.h.
 */
#define _GNU_SOURCE
#include <cblas.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench/gemm_count.h"
#include "core/timer.h"

typedef void (*sgemm_fn)(const enum CBLAS_ORDER, const enum CBLAS_TRANSPOSE,
                         const enum CBLAS_TRANSPOSE, const blasint, const blasint, const blasint,
                         const float, const float *, const blasint, const float *, const blasint,
                         const float, float *, const blasint);

static sgemm_fn real_sgemm;
static pthread_once_t real_sgemm_once = PTHREAD_ONCE_INIT;
static int gemm_counting;               /* read and written with __atomic    */
static pthread_t gemm_owner;            /* the thread whose GEMMs are timed  */
static double gemm_seconds;             /* owner's time inside cblas_sgemm   */
static unsigned long long gemm_flops;   /* every thread's, __atomic adds     */
static unsigned long long gemm_calls;

static void resolve_sgemm(void)
{
    union {
        void *p;
        sgemm_fn f;
    } u;

    u.p = dlsym(RTLD_NEXT, "cblas_sgemm");
    if (!u.p) {
        fprintf(stderr, "randlora: cblas_sgemm not found in the loaded libraries (%s)\n",
                dlerror());
        abort();
    }
    real_sgemm = u.f;
}

void cblas_sgemm(const enum CBLAS_ORDER Order, const enum CBLAS_TRANSPOSE TransA,
                 const enum CBLAS_TRANSPOSE TransB, const blasint M, const blasint N,
                 const blasint K, const float alpha, const float *A, const blasint lda,
                 const float *B, const blasint ldb, const float beta, float *C,
                 const blasint ldc)
{
    double t0;
    unsigned long long f;

    pthread_once(&real_sgemm_once, resolve_sgemm);
    if (!__atomic_load_n(&gemm_counting, __ATOMIC_RELAXED)) {
        real_sgemm(Order, TransA, TransB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    f = 2ULL * (unsigned long long)M * (unsigned long long)N * (unsigned long long)K;
    if (!pthread_equal(pthread_self(), gemm_owner)) {
        /* a GEMM from another thread (none today: threads.h's policy) is
         * counted but not timed: its time overlaps the owner's */
        real_sgemm(Order, TransA, TransB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        __atomic_fetch_add(&gemm_calls, 1, __ATOMIC_RELAXED);
        __atomic_fetch_add(&gemm_flops, f, __ATOMIC_RELAXED);
        return;
    }
    t0 = timer_now();
    real_sgemm(Order, TransA, TransB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    gemm_seconds += timer_now() - t0;
    __atomic_fetch_add(&gemm_calls, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&gemm_flops, f, __ATOMIC_RELAXED);
}

void gemm_count_start(void)
{
    gemm_owner = pthread_self();
    gemm_seconds = 0.0;
    __atomic_store_n(&gemm_flops, 0ULL, __ATOMIC_RELAXED);
    __atomic_store_n(&gemm_calls, 0ULL, __ATOMIC_RELAXED);
    __atomic_store_n(&gemm_counting, 1, __ATOMIC_SEQ_CST);
}

void gemm_count_stop(void)
{
    __atomic_store_n(&gemm_counting, 0, __ATOMIC_SEQ_CST);
}

double gemm_count_seconds(void)
{
    return gemm_seconds;
}

unsigned long long gemm_count_flops(void)
{
    return __atomic_load_n(&gemm_flops, __ATOMIC_RELAXED);
}

unsigned long long gemm_count_calls(void)
{
    return __atomic_load_n(&gemm_calls, __ATOMIC_RELAXED);
}
