/*
 * cli.c: the subcommands' shared command-line helpers (cli.h).
 */
#include "cli/cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

int cli_bad(const char *cmd, bool help_hint, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "randlora %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    if (help_hint)
        fprintf(stderr, " (see randlora %s --help)", cmd);
    fputc('\n', stderr);
    return 2;
}

int cli_parse_count(const char *s, size_t max, size_t *out)
{
    char *end;
    unsigned long long v;

    if (!s || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || *end || v == 0 || v > max)
        return -1;
    *out = (size_t)v;
    return 0;
}
