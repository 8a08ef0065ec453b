/*
 * threads.h: the one place that decides how many threads do what.
 *
 * Policy: OpenBLAS (the pthreads build Debian ships) owns threads inside GEMMs;
 * OpenMP parallelises elementwise loops. A GEMM is called from inside an
 * OpenMP parallel region only where OpenBLAS runs it on the calling thread
 * (attention's per-head products, below OpenBLAS's multithreading size:
 * models/attention.c), so the two pools never nest. Both default to the
 * number of online CPUs, overridable with RANDLORA_THREADS or threads_init(n).
 */
#ifndef RANDLORA_CORE_THREADS_H
#define RANDLORA_CORE_THREADS_H

#include <stddef.h>

struct thread_policy {
    int n_blas;            /* threads OpenBLAS may use inside one GEMM       */
    int n_omp;             /* threads for OpenMP elementwise loops (1: none) */
    const char *blas_mode; /* "pthreads", "openmp" or "sequential"           */
};

/* Both pools keep their idle threads spinning by default, and on few cores
 * the spinning pool starves the working one:
 *   - OpenMP's workers spin after each parallel region (OMP_WAIT_POLICY
 *     active) and take the cores from OpenBLAS's threads in the GEMM that
 *     follows: on 2 cores a small model ran 30-80x slower;
 *   - OpenBLAS's workers spin (sched_yield) for 2^28 cycles after each GEMM
 *     and take cycles from the OpenMP loops between GEMMs: clip-tiny's
 *     step spent ~13% of its samples in the scheduler and ran ~12% slower
 *     than with OPENBLAS_THREAD_TIMEOUT=16 (2^16 cycles, ~20 us: long enough
 *     for back-to-back GEMMs).
 * Both libraries read their variable once, when they are loaded, before
 * main() runs; so for each the user has not set, this sets
 * OMP_WAIT_POLICY=passive (with OpenMP) and OPENBLAS_THREAD_TIMEOUT=16 and
 * re-executes the program (/proc/self/exe) with the same arguments. Call it
 * first thing in main(). Does nothing when both are set, and runs on with
 * the defaults when the re-exec fails. */
#define THREADS_BLAS_TIMEOUT "16"
void threads_exec_wait_policy(char **argv);

/* Apply the policy: n > 0 sets both pools to n threads; n == 0 reads
 * RANDLORA_THREADS or else uses every online CPU. Returns the policy in force. */
struct thread_policy threads_init(int n);

/* The policy in force (threads_init must have run; otherwise defaults). */
struct thread_policy threads_current(void);

/* "blas=2 (pthreads) omp=2 wait=passive" into buf (wait: OMP_WAIT_POLICY
 * as this process runs with it, the user's or threads_exec_wait_policy's;
 * "default" when unset); returns buf. */
char *threads_describe(char *buf, size_t len);

#endif /* RANDLORA_CORE_THREADS_H */
