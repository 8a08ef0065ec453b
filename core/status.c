/*
 * status.c: status codes, the thread-local last-error message, abort.
 */
#include "core/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static _Thread_local char last_error[1024];

const char *rl_strerror(int status)
{
    switch (status) {
    case RL_OK:         return "ok";
    case RL_ERR:        return "failed";
    case RL_ERR_NOMEM:  return "out of memory";
    case RL_ERR_ARG:    return "bad argument";
    case RL_ERR_IO:     return "input/output error";
    case RL_ERR_FORMAT: return "malformed input";
    case RL_ERR_NA:     return "not available";
    case RL_ERR_WRITE:  return "write failed";
    case RL_ERR_INTERRUPTED: return "interrupted";
    default:            return "unknown status";
    }
}

int rl_error_set(int status, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(last_error, sizeof(last_error), fmt, ap);
    va_end(ap);
    return status;
}

const char *rl_error_msg(void)
{
    return last_error[0] ? last_error : "no error recorded";
}

void rl_error_clear(void)
{
    last_error[0] = '\0';
}

int rl_exit_code(int status)
{
    switch (status) {
    case RL_OK:         return 0;
    case RL_ERR_ARG:
    case RL_ERR_FORMAT:
    case RL_ERR_IO:     return 2;
    case RL_ERR_INTERRUPTED: return 130;
    default:            return 1;
    }
}

_Noreturn void rl_abort(const char *file, int line, const char *what)
{
    fflush(stdout);
    fprintf(stderr, "randlora: %s:%d: internal error: %s\n", file, line, what);
    abort();
}
