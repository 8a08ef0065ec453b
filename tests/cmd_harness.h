/*
 * cmd_harness.h: what the model-command suites share (check_encode.c,
 * check_model_cmds.c): a temporary directory per test (a checked fixture)
 * beside the absolute path of the fixture model tests/fixtures/clip_tiny,
 * a model directory of links to it, and running a command IN-PROCESS with
 * its stdout and stderr captured (so `make check` needs no ./randlora
 * binary, and ASan/LSan see the commands' code). Failures abort the test.
 */
#ifndef RANDLORA_TESTS_CMD_HARNESS_H
#define RANDLORA_TESTS_CMD_HARNESS_H

#include <limits.h>

#include "test_util.h"

/* the fixture model's golden shapes (make_clip_golden.py) */
#define GB   3        /* golden rows                      */
#define GCTX 12       /* fixture text context             */
#define GIMG 16       /* fixture image size               */
#define GD   16       /* fixture projection               */

/* the test's directory and the fixture's absolute path, set by
 * cmd_tmp_setup; cmd_tmp_teardown removes the directory */
extern char cmd_tmpdir[256];
extern char cmd_fixdir[PATH_MAX];
void cmd_tmp_setup(void);
void cmd_tmp_teardown(void);

/* a path inside cmd_tmpdir */
#define tp(...) test_path(cmd_tmpdir, __VA_ARGS__)

/* cmd_fixdir/name, in one of 4 rotating static buffers */
const char *cmd_fixture_file(const char *name);

/* a model directory cmd_tmpdir/name: config.json and (unless no_weights)
 * the fixture's model.safetensors, vocab.json, merges.txt as symlinks; the
 * path in one of 4 rotating static buffers */
const char *cmd_model_dir(const char *name, int no_weights);

/* a command's exit status and its captured output (owned) */
struct captured {
    int status;
    char *out, *err;
};
void captured_free(struct captured *c);

/* fn(argv...) with argv NULL-terminated; argv[0] is the command's name */
struct captured run_cmd(int (*fn)(int, char **), ...);

/* exit 2 and exactly one line on stderr that starts with prefix and
 * contains want (when not NULL) */
void assert_one_line_error(const struct captured *c, const char *prefix, const char *want,
                           const char *what);

/* no OUT.tmp.* left in cmd_tmpdir */
void assert_no_temp_files(void);

#endif /* RANDLORA_TESTS_CMD_HARNESS_H */
