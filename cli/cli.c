/*
 * cli.c: the subcommands' shared command-line helpers (cli.h).
 */
#include "cli/cli.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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

int cli_output_dir_ok(const char *cmd, const char *dir, bool force)
{
    struct stat st;
    struct dirent *e;
    size_t entries = 0;
    DIR *d;

    if (stat(dir, &st) != 0)
        return 0;                                  /* missing: created by the writer */
    if (!S_ISDIR(st.st_mode))
        return cli_bad(cmd, false, "%s exists and is not a directory; give an output directory", dir);
    if (force)
        return 0;
    if (!(d = opendir(dir)))
        return cli_bad(cmd, false, "%s: cannot read the output directory: %s", dir, strerror(errno));
    while ((e = readdir(d)) != NULL)
        entries += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    if (entries == 0)
        return 0;
    return cli_bad(cmd, false, "%s is not empty (%zu entr%s); write elsewhere, or add --force to write "
                   "into it (files of the same names are replaced)", dir, entries,
                   entries == 1 ? "y" : "ies");
}
