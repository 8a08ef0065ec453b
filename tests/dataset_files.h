/*
 * dataset_files.h: what the dataset suites share (check_datasets.c,
 * check_images.c): a fresh temporary directory per test (a checked
 * fixture), paths in it, writing plain or gzip'd files, and asserting a
 * failure's status and message. Failures abort the test (Check).
 */
#ifndef RANDLORA_TESTS_DATASET_FILES_H
#define RANDLORA_TESTS_DATASET_FILES_H

#include <stddef.h>
#include <string.h>

#include "core/status.h"
#include "test_util.h"

/* the test's directory, made by ds_tmp_setup, removed by ds_tmp_teardown */
extern char ds_tmpdir[256];
void ds_tmp_setup(void);
void ds_tmp_teardown(void);

/* a path inside ds_tmpdir */
#define tp(...) test_path(ds_tmpdir, __VA_ARGS__)

/* mkdir path (asserted) */
void ds_mkdir(const char *path);
/* path with data[0..n), gzip-compressed when gz */
void ds_write_bytes(const char *path, const void *data, size_t n, int gz);

/* an RGB PNG of h x w pixels at path, pixel values from seed (asserted) */
void ds_write_png(const char *path, int h, int w, int seed);

/* the call failed with `status` and a message that holds `needle` */
#define ck_fails_with(call, status, needle)                                               \
    do {                                                                                 \
        int rc_ = (call);                                                                \
        ck_assert_msg(rc_ == (status), "%s gave %d (%s), expected %d", #call, rc_,       \
                      rl_error_msg(), (status));                                         \
        ck_assert_msg(strstr(rl_error_msg(), (needle)) != NULL,                          \
                      "message '%s' does not name '%s'", rl_error_msg(), (needle));      \
    } while (0)

#endif /* RANDLORA_TESTS_DATASET_FILES_H */
