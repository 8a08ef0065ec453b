/*
 * test_cmd.c: commands run in-process with stdout and stderr captured
 * (test_cmd.h).
 */
#include "test_cmd.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/status.h"

void test_captured_free(struct test_captured *c)
{
    free(c->out);
    free(c->err);
    memset(c, 0, sizeof(*c));
}

char *test_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;

    ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
    ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
    n = ftell(f);
    ck_assert_int_ge(n, 0);
    rewind(f);
    buf = xmalloc((size_t)n + 1);
    ck_assert_uint_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    buf[n] = '\0';
    if (len)
        *len = (size_t)n;
    return buf;
}

struct test_captured test_run_cmd(const char *dir, int (*fn)(int, char **), ...)
{
    char *argv[32];
    int argc = 0, save_out, save_err, fo, fe;
    struct test_captured c;
    va_list ap;
    char outp[1100], errp[1100];

    va_start(ap, fn);
    for (const char *a; (a = va_arg(ap, const char *)) != NULL;) {
        ck_assert_int_lt(argc, 31);
        argv[argc++] = (char *)a;
    }
    va_end(ap);
    argv[argc] = NULL;
    snprintf(outp, sizeof outp, "%s/.stdout", dir);
    snprintf(errp, sizeof errp, "%s/.stderr", dir);
    fflush(stdout);
    fflush(stderr);
    save_out = dup(1);
    save_err = dup(2);
    fo = open(outp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    fe = open(errp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ck_assert(save_out >= 0 && save_err >= 0 && fo >= 0 && fe >= 0);
    dup2(fo, 1);
    dup2(fe, 2);
    close(fo);
    close(fe);
    rl_error_clear();
    c.status = fn(argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(save_out, 1);
    dup2(save_err, 2);
    close(save_out);
    close(save_err);
    c.out = test_slurp(outp, NULL);
    c.err = test_slurp(errp, NULL);
    unlink(outp);
    unlink(errp);
    return c;
}

void test_assert_one_line_error(const struct test_captured *c, const char *prefix,
                                const char *want, const char *what)
{
    size_t nl = 0, len = strlen(c->err);

    for (const char *p = c->err; *p; p++)
        nl += *p == '\n';
    if (getenv("RANDLORA_TEST_VERBOSE"))
        printf("%-24.24s exit %d: %s", what, c->status, c->err);
    ck_assert_msg(c->status == 2, "%s: exit %d, expected 2 (stderr: %s)", what, c->status, c->err);
    ck_assert_msg(nl == 1 && len > 1 && c->err[len - 1] == '\n',
                  "%s: stderr is not one line: '%s'", what, c->err);
    ck_assert_msg(!strncmp(c->err, prefix, strlen(prefix)), "%s: stderr '%s' does not start "
                  "with '%s'", what, c->err, prefix);
    if (want)
        ck_assert_msg(strstr(c->err, want) != NULL, "%s: stderr '%s' does not mention '%s'",
                      what, c->err, want);
}
