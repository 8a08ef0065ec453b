/*
 * cmd_harness.c: the model-command suites' temporary directory, fixture
 * paths and in-process command runner (cmd_harness.h).
 */
#include "cmd_harness.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <check.h>

#include "core/status.h"
#include "run_files.h"

char cmd_tmpdir[256];
char cmd_fixdir[PATH_MAX];

void cmd_tmp_setup(void)
{
    ck_assert_ptr_nonnull(test_tmpdir_make(cmd_tmpdir, sizeof(cmd_tmpdir), "encode"));
    ck_assert_msg(realpath(fixture_path("clip_tiny"), cmd_fixdir) != NULL, "fixture: %s",
                  strerror(errno));
}

void cmd_tmp_teardown(void)
{
    test_tmpdir_remove(cmd_tmpdir);
}

const char *cmd_fixture_file(const char *name)
{
    static char bufs[4][PATH_MAX + 64];
    static int next;
    char *b = bufs[next++ % 4];

    snprintf(b, PATH_MAX + 64, "%s/%s", cmd_fixdir, name);
    return b;
}
const char *cmd_model_dir(const char *name, int no_weights)
{
    static const char *const files[] = { "config.json", "model.safetensors", "vocab.json",
                                         "merges.txt" };
    const char *dir = tp("%s", name);
    static char keep[4][1024];
    static int next;
    char *d = keep[next++ % 4];

    snprintf(d, 1024, "%s", dir);
    ck_assert_int_eq(mkdir(d, 0777), 0);
    for (size_t i = 0; i < 4; i++) {
        char link[1200];

        if (no_weights && i == 1)
            continue;
        snprintf(link, sizeof link, "%s/%s", d, files[i]);
        ck_assert_int_eq(symlink(cmd_fixture_file(files[i]), link), 0);
    }
    return d;
}
void captured_free(struct captured *c)
{
    free(c->out);
    free(c->err);
    memset(c, 0, sizeof(*c));
}

struct captured run_cmd(int (*fn)(int, char **), ...)
{
    const char *argv[32];
    int argc = 0;
    struct captured c;
    va_list ap;
    char outp[1100], errp[1100];

    va_start(ap, fn);
    for (const char *a; (a = va_arg(ap, const char *)) != NULL;) {
        ck_assert_int_lt(argc, 31);
        argv[argc++] = a;
    }
    va_end(ap);
    argv[argc] = NULL;
    snprintf(outp, sizeof outp, "%s/.stdout", cmd_tmpdir);
    snprintf(errp, sizeof errp, "%s/.stderr", cmd_tmpdir);
    rl_error_clear();
    c.status = run_files_cmd_captured(fn, argc, argv, outp, errp);
    c.out = test_read_file(outp, NULL);
    c.err = test_read_file(errp, NULL);
    unlink(outp);
    unlink(errp);
    return c;
}

void assert_one_line_error(const struct captured *c, const char *prefix, const char *want,
                           const char *what)
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
void assert_no_temp_files(void)
{
    char cmd[1200];

    snprintf(cmd, sizeof cmd, "ls %s | grep -q '\\.tmp\\.'", cmd_tmpdir);
    ck_assert_msg(system(cmd) != 0, "a temporary file was left in %s", cmd_tmpdir);
}
