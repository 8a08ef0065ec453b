/*
 * cli.c: the subcommands' shared command-line helpers (cli.h).
 */
#include "cli/cli.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/alloc.h"

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

/* append arg to buf (at *len of cap), single-quoted unless it is plain */
static void append_quoted(char **buf, size_t *len, size_t *cap, const char *arg)
{
    bool plain = *arg != '\0';

    for (const char *c = arg; *c && plain; c++)
        plain = isalnum((unsigned char)*c) || strchr("-_./=:,@+%", *c);
    size_t need = *len + 4 * strlen(arg) + 4;
    if (need > *cap) {
        *cap = 2 * need;
        *buf = xrealloc_array(*buf, *cap, 1);
    }
    char *o = *buf + *len;
    *o++ = ' ';
    if (!plain)
        *o++ = '\'';
    for (const char *c = arg; *c; c++) {
        if (!plain && *c == '\'') {
            memcpy(o, "'\\''", 4);
            o += 4;
        } else {
            *o++ = *c;
        }
    }
    if (!plain)
        *o++ = '\'';
    *o = '\0';
    *len = (size_t)(o - *buf);
}

char *cli_resume_command(const char *cmd, int argc, char **argv)
{
    size_t cap = 64, len;
    char *buf = xmalloc(cap);
    bool has_resume = false;

    len = (size_t)snprintf(buf, cap, "randlora %s", cmd);
    if (len >= cap) {
        cap = len + 1;
        buf = xrealloc_array(buf, cap, 1);
        snprintf(buf, cap, "randlora %s", cmd);
    }
    for (int i = 1; i < argc; i++) {
        bool is_value = i > 1 && argv[i - 1][0] == '-' && strcmp(argv[i - 1], "--resume") &&
                        strcmp(argv[i - 1], "--force") && strcmp(argv[i - 1], "-q");
        if (!is_value && !strcmp(argv[i], "--force"))
            continue;                     /* the file is to be continued now */
        has_resume |= !is_value && !strcmp(argv[i], "--resume");
        append_quoted(&buf, &len, &cap, argv[i]);
    }
    if (!has_resume)
        append_quoted(&buf, &len, &cap, "--resume");
    return buf;
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
