/*
 * status.h: status codes and the last-error message.
 *
 * Two tiers of failure (see DESIGN.md, "Reliability"):
 *   - bad input, bad configuration, I/O: functions return an `enum rl_status`
 *     and leave one human-readable line in a thread-local buffer
 *     (rl_error_set / rl_error_msg) naming the file, key or value at fault;
 *   - broken invariants (programmer errors): RL_ASSERT aborts with file:line.
 *
 * Usage:
 *     if (n > limit)
 *         return rl_error_set(RL_ERR_FORMAT, "%s: %zu items, at most %zu", path, n, limit);
 *     ...
 *     int rc = idx_open(&ds, path);
 *     if (rc != RL_OK) { fprintf(stderr, "randlora: %s\n", rl_error_msg()); return rl_exit_code(rc); }
 *
 * To add context to a callee's message, prefix it (never pass rl_error_msg()
 * back into rl_error_set: that formats the buffer into itself):
 *     if ((rc = adapter_check(...)) != RL_OK)
 *         return rl_error_prefix(rc, "%s: %s with rank %zu", file, name, r);
 *     // "x.ini: lora with rank 4096: layer 128x128 is smaller than ..."
 */
#ifndef RANDLORA_CORE_STATUS_H
#define RANDLORA_CORE_STATUS_H

enum rl_status {
    RL_OK         =  0,
    RL_ERR        = -1,   /* other failure                                   */
    RL_ERR_NOMEM  = -2,   /* allocation failed or size overflowed            */
    RL_ERR_ARG    = -3,   /* bad usage: an argument or config value is wrong */
    RL_ERR_IO     = -4,   /* a file could not be opened, read or written     */
    RL_ERR_FORMAT = -5,   /* a file's contents are malformed                 */
    RL_ERR_NA     = -6,   /* not available: an optional operation is absent  */
    RL_ERR_WRITE  = -7,   /* an output could not be written (disk full, I/O
                             error, read-only file system): exit status 1    */
    RL_ERR_INTERRUPTED = -8, /* stopped by SIGINT or SIGTERM (core/interrupt.h):
                                exit status 128 + the signal                 */
};

/* Short, fixed description of a status code ("bad argument", ...). */
const char *rl_strerror(int status);

/* Record a printf-style message for the current thread and return `status`,
 * so a failing path can be written `return rl_error_set(RL_ERR_IO, ...)`. */
int rl_error_set(int status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Put a printf-style prefix and ": " before this thread's current message
 * ("PREFIX: MESSAGE"; just PREFIX when none is recorded) and return
 * `status`. The prefix is formatted into a buffer of its own, so its
 * arguments may point into the current message. Over the buffer's size
 * (RL_ERROR_MAX bytes with the NUL) the prefix is kept whole as far as it
 * fits and the message's tail is cut; the result is always NUL-terminated. */
int rl_error_prefix(int status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define RL_ERROR_MAX 1024

/* The last message recorded on this thread, or rl_strerror of nothing. */
const char *rl_error_msg(void);

/* Forget the last message. */
void rl_error_clear(void);

/* Process exit status for a status code: 0 ok, 2 bad usage or bad input,
 * 130 interrupted (interrupt_exit_code gives 143 for SIGTERM), 1 otherwise. */
int rl_exit_code(int status);

/* Always-on assertion for invariants; never for input validation. */
_Noreturn void rl_abort(const char *file, int line, const char *what);
#define RL_ASSERT(x) do { if (!(x)) rl_abort(__FILE__, __LINE__, #x); } while (0)

#endif /* RANDLORA_CORE_STATUS_H */
