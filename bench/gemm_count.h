/*
 * gemm_count.h: an interposed cblas_sgemm that times and counts GEMMs, for
 * what measures (`randlora bench`, its tests).
 *
 * bench/gemm_count.c defines cblas_sgemm itself; an executable that links it
 * calls it instead of libopenblas's (the executable's definition wins), and
 * it forwards to the real one (dlsym(RTLD_NEXT)). Until gemm_count_start()
 * it only forwards. Between start and stop it times each call made from the
 * thread that called start and counts the FLOPs (2 M N K) and calls of every
 * thread. It is not in librandlora.a: the engine never depends on it.
 *
 *     gemm_count_start();
 *     ... a training step ...
 *     gemm_count_stop();
 *     share = gemm_count_seconds() / step_seconds;
 */
#ifndef RANDLORA_BENCH_GEMM_COUNT_H
#define RANDLORA_BENCH_GEMM_COUNT_H

/* zero the counters and start counting; the calling thread's calls are timed */
void gemm_count_start(void);
/* stop counting (the counters keep their values) */
void gemm_count_stop(void);
/* seconds the counting thread spent inside cblas_sgemm since the start */
double gemm_count_seconds(void);
/* FLOPs (2 M N K summed) and calls of every thread since the start */
unsigned long long gemm_count_flops(void);
unsigned long long gemm_count_calls(void);

#endif
