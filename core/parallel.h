/*
 * parallel.h: the OpenMP loop pragmas, written once.
 *
 * The thread policy (core/threads.h): OpenMP runs elementwise and row loops,
 * OpenBLAS runs GEMMs, and no GEMM is called inside one of these loops.
 * A loop goes parallel only when it touches at least PARALLEL_MIN_WORK
 * floats: below that, waking the team costs more than the work (and on a
 * loaded machine a spinning team can cost far more). Without -fopenmp
 * (make NO_OMP=1) the macros vanish and the loops run serially.
 *
 *     PARALLEL_FOR(N * C)
 *     for (size_t n = 0; n < N; n++) { ... }
 *
 * Every iteration must be independent, so the result does not depend on
 * the thread count. There is no reduction macro: an OpenMP reduction adds
 * per-thread partial sums, split by the thread count, so its last bits
 * change with it (a run resumed on another thread count would not redo its
 * steps exactly). A sum over rows is written as PARALLEL_SUM_BLOCK rows at
 * a time, each row's term into a stack array in parallel, then added in row
 * order:
 *
 *     double total = 0.0;
 *     for (size_t n0 = 0; n0 < N; n0 += PARALLEL_SUM_BLOCK) {
 *         const size_t nb = N - n0 < PARALLEL_SUM_BLOCK ? N - n0 : PARALLEL_SUM_BLOCK;
 *         double part[PARALLEL_SUM_BLOCK];
 *         PARALLEL_FOR(nb * M)
 *         for (size_t i = 0; i < nb; i++) part[i] = ...row n0 + i...;
 *         total += parallel_sum_rows(part, nb);
 *     }
 */
#ifndef RANDLORA_CORE_PARALLEL_H
#define RANDLORA_CORE_PARALLEL_H

#include <stddef.h>

#define PARALLEL_MIN_WORK ((size_t)1 << 14)

#ifdef _OPENMP
#define PARALLEL_PRAGMA_(x) _Pragma(#x)
#define PARALLEL_FOR(work) \
    PARALLEL_PRAGMA_(omp parallel for schedule(static) if ((work) >= PARALLEL_MIN_WORK))
/* PARALLEL_FOR whose iterations are independent elementwise work that GCC
 * does not vectorize inside an outlined parallel loop on its own (the
 * activations); simd only allows vector execution, not reassociation */
#define PARALLEL_FOR_SIMD(work) \
    PARALLEL_PRAGMA_(omp parallel for simd schedule(static) if ((work) >= PARALLEL_MIN_WORK))
#else
#define PARALLEL_FOR_SIMD(work)
#define PARALLEL_FOR(work)
#endif

#define PARALLEL_SUM_BLOCK 64

/* part[0] + part[1] + ... + part[n-1], in that order */
static inline double parallel_sum_rows(const double *part, size_t n)
{
    double s = 0.0;

    for (size_t i = 0; i < n; i++)
        s += part[i];
    return s;
}

#endif /* RANDLORA_CORE_PARALLEL_H */
