/*
 * timer.h: monotonic wall-clock time in seconds.
 *
 *     double t0 = timer_now();
 *     ...
 *     double elapsed = timer_now() - t0;
 */
#ifndef RANDLORA_CORE_TIMER_H
#define RANDLORA_CORE_TIMER_H

/* Seconds since an arbitrary fixed point (CLOCK_MONOTONIC). */
double timer_now(void);

#endif /* RANDLORA_CORE_TIMER_H */
