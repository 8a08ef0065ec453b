/*
 * log.c: leveled log lines on stderr.
 */
#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int log_level = -1;   /* -1: not yet read from the environment */

static enum log_level level_from_env(void)
{
    const char *env = getenv("RANDLORA_LOG");

    if (!env || !*env || !strcmp(env, "info"))
        return LOG_LEVEL_INFO;
    if (!strcmp(env, "quiet"))
        return LOG_LEVEL_QUIET;
    if (!strcmp(env, "debug"))
        return LOG_LEVEL_DEBUG;
    fprintf(stderr, "randlora: ignoring RANDLORA_LOG=%s (want quiet, info or debug)\n", env);
    return LOG_LEVEL_INFO;
}

void log_set_level(enum log_level level)
{
    log_level = (int)level;
}

enum log_level log_get_level(void)
{
    if (log_level < 0)
        log_level = (int)level_from_env();
    return (enum log_level)log_level;
}

static void log_vprint(enum log_level level, const char *tag, const char *fmt, va_list ap)
{
    if (level > log_get_level())
        return;
    fprintf(stderr, "randlora: %s", tag);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void log_warn(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_vprint(LOG_LEVEL_QUIET, "warning: ", fmt, ap);
    va_end(ap);
}

void log_info(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_vprint(LOG_LEVEL_INFO, "", fmt, ap);
    va_end(ap);
}

void log_debug(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_vprint(LOG_LEVEL_DEBUG, "debug: ", fmt, ap);
    va_end(ap);
}
