/*
 * cmd_harness.c: the model-command suites' temporary directory, fixture
 * paths and in-process command runner (cmd_harness.h).
 */
#include "cmd_harness.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <check.h>

#include "core/status.h"

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
void assert_no_temp_files(void)
{
    char cmd[1200];

    snprintf(cmd, sizeof cmd, "ls %s | grep -q '\\.tmp\\.'", cmd_tmpdir);
    ck_assert_msg(system(cmd) != 0, "a temporary file was left in %s", cmd_tmpdir);
}
