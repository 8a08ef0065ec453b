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
 *     double total = 0.0;
 *     PARALLEL_FOR_SUM(total, N * M)
 *     for (size_t n = 0; n < N; n++) total += ...;
 *
 * Every iteration must be independent (or a `+` reduction on the named
 * variable), so the result does not depend on the thread count except for
 * the order of a reduction's additions.
 */
#ifndef RANDLORA_CORE_PARALLEL_H
#define RANDLORA_CORE_PARALLEL_H

#include <stddef.h>

#define PARALLEL_MIN_WORK ((size_t)1 << 14)

#ifdef _OPENMP
#define PARALLEL_PRAGMA_(x) _Pragma(#x)
#define PARALLEL_FOR(work) \
    PARALLEL_PRAGMA_(omp parallel for schedule(static) if ((work) >= PARALLEL_MIN_WORK))
#define PARALLEL_FOR_SUM(var, work) \
    PARALLEL_PRAGMA_(omp parallel for schedule(static) reduction(+:var) if ((work) >= PARALLEL_MIN_WORK))
/* PARALLEL_FOR whose iterations are independent elementwise work that GCC
 * does not vectorize inside an outlined parallel loop on its own (the
 * activations); simd only allows vector execution, not reassociation */
#define PARALLEL_FOR_SIMD(work) \
    PARALLEL_PRAGMA_(omp parallel for simd schedule(static) if ((work) >= PARALLEL_MIN_WORK))
#else
#define PARALLEL_FOR_SIMD(work)
#define PARALLEL_FOR(work)
#define PARALLEL_FOR_SUM(var, work)
#endif

#endif /* RANDLORA_CORE_PARALLEL_H */
