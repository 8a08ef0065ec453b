/*
 * cmd_harness.h: what the model-command suites share (check_encode.c,
 * check_model_cmds.c): a temporary directory per test (a checked fixture)
 * beside the absolute path of the fixture model tests/fixtures/clip_tiny,
 * and a model directory of links to it; the commands run IN-PROCESS through
 * test_cmd.h (test_run_cmd with cmd_tmpdir). Failures abort the test.
 */
#ifndef RANDLORA_TESTS_CMD_HARNESS_H
#define RANDLORA_TESTS_CMD_HARNESS_H

#include <limits.h>

#include "test_cmd.h"
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

/* no OUT.tmp.* left in cmd_tmpdir */
void assert_no_temp_files(void);

#endif /* RANDLORA_TESTS_CMD_HARNESS_H */
