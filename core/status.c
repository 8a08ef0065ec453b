/*
 * status.c: status codes, the thread-local last-error message, abort.
 */
#include "core/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char last_error[RL_ERROR_MAX];

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

int rl_error_prefix(int status, const char *fmt, ...)
{
    char prefix[RL_ERROR_MAX];
    size_t np, nm, room;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    np = strlen(prefix);
    nm = strlen(last_error);
    if (nm == 0) {
        memcpy(last_error, prefix, np + 1);
        return status;
    }
    /* PREFIX ": " MESSAGE, cut to the buffer: the message moves right first
     * (memmove: it overlaps itself), then the prefix goes in front */
    room = sizeof(last_error) - 1;
    if (np > room - 2)
        np = room - 2;
    if (nm > room - np - 2)
        nm = room - np - 2;
    memmove(last_error + np + 2, last_error, nm);
    memcpy(last_error, prefix, np);
    last_error[np] = ':';
    last_error[np + 1] = ' ';
    last_error[np + 2 + nm] = '\0';
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
