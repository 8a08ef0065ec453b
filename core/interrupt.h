/*
 * interrupt.h: SIGINT and SIGTERM as a request to stop cleanly.
 *
 * interrupt_install replaces the two signals' actions with a handler that
 * only records which one came (and, in a parent that registered child
 * processes, passes it on to them). Long loops poll interrupt_pending()
 * at a point where their records are whole (the runner: after a step's
 * rows, evaluation and checkpoint), stop, and return RL_ERR_INTERRUPTED; the
 * command exits with interrupt_exit_code (128 + the signal: 130 for SIGINT,
 * 143 for SIGTERM). Further signals change nothing (the step in progress
 * still finishes); SIGKILL or SIGQUIT stop at once, which a run file
 * survives too (it resumes from its last checkpoint).
 *
 *     interrupt_install();
 *     for (...) { ...; if (interrupt_pending()) return rl_error_set(RL_ERR_INTERRUPTED, ...); }
 *     interrupt_restore();
 *     return interrupt_exit_code(rc);
 *
 * Process-wide state; the handler is async-signal-safe.
 */
#ifndef RANDLORA_CORE_INTERRUPT_H
#define RANDLORA_CORE_INTERRUPT_H

#include <stddef.h>
#include <sys/types.h>

/* Catch SIGINT and SIGTERM (SA_RESTART: system calls in progress resume);
 * clears any earlier request. */
void interrupt_install(void);

/* The actions before interrupt_install; the recorded signal is kept. */
void interrupt_restore(void);

/* The signal received since interrupt_install (SIGINT or SIGTERM), 0 if none. */
int interrupt_pending(void);

/* Forget a received signal (a child process that inherited the state). */
void interrupt_clear(void);

/* Pass a received signal on to pids[0..n) (entries <= 0 are skipped); the
 * array stays the caller's and is read by the handler: keep it valid until
 * interrupt_forward(NULL, 0). */
void interrupt_forward(const volatile pid_t *pids, size_t n);

/* Block (block != 0) or unblock the two signals in this thread, e.g. around
 * fork so a child can reset its state before one arrives. */
void interrupt_block(int block);

/* The exit status for a status code: 128 + the signal for
 * RL_ERR_INTERRUPTED, rl_exit_code otherwise. */
int interrupt_exit_code(int status);

#endif /* RANDLORA_CORE_INTERRUPT_H */
