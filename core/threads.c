/*
 * threads.c: OpenBLAS and OpenMP thread counts, set once, logged.
 */
#include "core/threads.h"

#include <cblas.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* OpenBLAS extensions; declared here so the header's variant does not matter */
extern void openblas_set_num_threads(int num_threads);
extern int  openblas_get_num_threads(void);
extern int  openblas_get_parallel(void);

static struct thread_policy policy;

static int threads_default(void)
{
    const char *env = getenv("RANDLORA_THREADS");
    long n;

    if (env && *env) {
        char *end;
        n = strtol(env, &end, 10);
        if (*end == '\0' && n > 0 && n <= 4096)
            return (int)n;
        fprintf(stderr, "randlora: ignoring RANDLORA_THREADS=%s (want a positive integer)\n", env);
    }
    n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* set name=value unless the user set it; true when it was set here */
static bool setenv_default(const char *name, const char *value)
{
    if (getenv(name))
        return false;
    return setenv(name, value, 1) == 0;
}

void threads_exec_wait_policy(char **argv)
{
    bool omp, blas;

#ifdef _OPENMP
    omp = setenv_default("OMP_WAIT_POLICY", "passive");
#else
    omp = false;
#endif
    blas = setenv_default("OPENBLAS_THREAD_TIMEOUT", THREADS_BLAS_TIMEOUT);
    if (!omp && !blas)
        return;
    fflush(NULL);
    execv("/proc/self/exe", argv);
    /* still here: exec failed (no /proc); run with the libraries' defaults */
    if (omp)
        unsetenv("OMP_WAIT_POLICY");
    if (blas)
        unsetenv("OPENBLAS_THREAD_TIMEOUT");
}

struct thread_policy threads_init(int n)
{
    if (n <= 0)
        n = threads_default();
    openblas_set_num_threads(n);
    policy.n_blas = openblas_get_num_threads();
#ifdef _OPENMP
    omp_set_num_threads(n);
    policy.n_omp = n;
#else
    policy.n_omp = 1;
#endif
    switch (openblas_get_parallel()) {
    case 0:  policy.blas_mode = "sequential"; break;
    case 1:  policy.blas_mode = "pthreads";   break;
    default: policy.blas_mode = "openmp";     break;
    }
    return policy;
}

struct thread_policy threads_current(void)
{
    if (!policy.blas_mode)
        return threads_init(0);
    return policy;
}

char *threads_describe(char *buf, size_t len)
{
    struct thread_policy p = threads_current();

    const char *wait = getenv("OMP_WAIT_POLICY");

    snprintf(buf, len, "blas=%d (%s) omp=%d wait=%s", p.n_blas, p.blas_mode, p.n_omp,
             wait && *wait ? wait : "default");
    return buf;
}
