/*
 * threads.h: the one place that decides how many threads do what.
 *
 * Policy: OpenBLAS (the pthreads build Debian ships) owns threads inside GEMMs;
 * OpenMP parallelises elementwise loops. A GEMM is never called from inside an
 * OpenMP parallel region, so the two pools never nest. Both default to the
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

/* OpenMP's worker threads spin after each parallel region by default
 * (OMP_WAIT_POLICY=active), which starves OpenBLAS's threads of the cores
 * during the GEMM that follows: on 2 cores a small model ran 30-80x slower.
 * libgomp reads the policy once, when it is loaded, before main() runs; so
 * when the user has not chosen one, this sets OMP_WAIT_POLICY=passive and
 * re-executes the program (/proc/self/exe) with the same arguments. Call it
 * first thing in main(). Does nothing without OpenMP, when the variable is
 * set, or when the re-exec fails (the program then runs as it is). */
void threads_exec_passive_wait(char **argv);

/* Apply the policy: n > 0 sets both pools to n threads; n == 0 reads
 * RANDLORA_THREADS or else uses every online CPU. Returns the policy in force. */
struct thread_policy threads_init(int n);

/* The policy in force (threads_init must have run; otherwise defaults). */
struct thread_policy threads_current(void);

/* "blas=2 (pthreads) omp=2" into buf; returns buf. */
char *threads_describe(char *buf, size_t len);

#endif /* RANDLORA_CORE_THREADS_H */
