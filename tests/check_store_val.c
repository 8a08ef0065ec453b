/*
 * check_store_val.c: the validation split's part of the results file
 * (results/store.h): /data/val_index and the /data attributes val and
 * val_spec, /eval's split attribute, /final/val_accuracy and val_loss read
 * back as written; a run without a split reads as none; and a file older
 * than these objects (made here by deleting them) still opens, reads as no
 * split (empty index, "test", NaN) and resumes to completion.
 */
#include <hdf5.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "core/status.h"
#include "results/store.h"
#include "suites.h"
#include "test_util.h"

#define NTR 5

static const int64_t train_index[4] = { 3, 9, 27, 81 };
static const int64_t val_index[3] = { 4, 10, 28 };

static struct store_run_info info_with(const char *val)
{
    struct store_run_info in = {
        .harness_version = "t", .config_text = "[data]\n", .method = "lora", .rank = 2,
        .n_trainable = NTR, .data_spec = "shapes:train", .shots = 2, .sampling_seed = 7,
        .train_index = train_index, .n_train_index = 4,
    };
    if (val) {
        in.val = val;
        in.val_spec = "shapes:train";
        in.val_index = val_index;
        in.n_val_index = 3;
    }
    return in;
}

/* a finished run: two eval rows, a final record (val_* when has_val) */
static void write_run(const char *path, const char *val, bool has_val)
{
    struct store *s;
    struct store_run_info in = info_with(val);

    ck_assert_int_eq(store_create(&s, path, &in), RL_OK);
    ck_assert_int_eq(store_append_eval(s, 1, 0.25, 2.0), RL_OK);
    ck_assert_int_eq(store_append_eval(s, 2, 0.5, 1.5), RL_OK);
    struct store_final f = { .accuracy = 0.625, .loss = 1.25, .peak_rss_bytes = 1, .images_per_s = 2,
                             .val_accuracy = 0.75, .val_loss = 0.875, .has_val = has_val };
    ck_assert_int_eq(store_finish(s), RL_OK);
    ck_assert_int_eq(store_write_final(s, &f), RL_OK);
    ck_assert_int_eq(store_commit(s), RL_OK);
    store_close(s);
}

START_TEST(test_val_roundtrip)
{
    char dir[256];
    struct store *s;
    struct store_final f;
    int64_t *idx;
    size_t n;
    int completed;
    const char *split;
    char *str;

    ck_assert_ptr_nonnull(test_tmpdir_make(dir, sizeof dir, "store_val"));
    const char *path = test_path(dir, "val.h5");
    write_run(path, "2", true);
    ck_assert_int_eq(store_open(&s, path), RL_OK);
    ck_assert_int_eq(store_read_val_index(s, &idx, &n), RL_OK);
    ck_assert_uint_eq(n, 3);
    ck_assert_int_eq(memcmp(idx, val_index, sizeof val_index), 0);
    free(idx);
    ck_assert_int_eq(store_read_train_index(s, &idx, &n), RL_OK);
    ck_assert_uint_eq(n, 4);
    ck_assert_int_eq(memcmp(idx, train_index, sizeof train_index), 0);
    free(idx);
    ck_assert_int_eq(store_read_eval_split(s, &split), RL_OK);
    ck_assert_str_eq(split, "val");
    ck_assert_int_eq(store_attr_get_string(s, "/data", "val", &str), RL_OK);
    ck_assert_str_eq(str, "2");
    free(str);
    ck_assert_int_eq(store_attr_get_string(s, "/data", "val_spec", &str), RL_OK);
    ck_assert_str_eq(str, "shapes:train");
    free(str);
    ck_assert_int_eq(store_read_final(s, &f, &completed), RL_OK);
    ck_assert_int_eq(completed, 1);
    ck_assert(f.has_val);
    ck_assert(f.accuracy == 0.625 && f.loss == 1.25);
    ck_assert(f.val_accuracy == 0.75 && f.val_loss == 0.875);
    store_close(s);

    /* no split: empty index, "test" rows, no val metrics even when the
     * struct carries numbers (has_val false writes none) */
    path = test_path(dir, "noval.h5");
    write_run(path, NULL, false);
    ck_assert_int_eq(store_open(&s, path), RL_OK);
    ck_assert_int_eq(store_read_val_index(s, &idx, &n), RL_OK);
    ck_assert_uint_eq(n, 0);
    ck_assert_ptr_null(idx);
    ck_assert_int_eq(store_read_eval_split(s, &split), RL_OK);
    ck_assert_str_eq(split, "test");
    ck_assert_int_eq(store_attr_get_string(s, "/data", "val", &str), RL_OK);
    ck_assert_str_eq(str, "");
    free(str);
    ck_assert_int_eq(store_read_final(s, &f, &completed), RL_OK);
    ck_assert(!f.has_val && isnan(f.val_accuracy) && isnan(f.val_loss));
    ck_assert(f.accuracy == 0.625);
    store_close(s);
    test_tmpdir_remove(dir);
}
END_TEST

/* delete what files older than the validation split do not have */
static void make_old(const char *path)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    ck_assert(f >= 0);
    ck_assert(H5Ldelete(f, "/data/val_index", H5P_DEFAULT) >= 0);
    ck_assert(H5Ldelete(f, "/final/val_accuracy", H5P_DEFAULT) >= 0);
    ck_assert(H5Ldelete(f, "/final/val_loss", H5P_DEFAULT) >= 0);
    ck_assert(H5Adelete_by_name(f, "/data", "val", H5P_DEFAULT) >= 0);
    ck_assert(H5Adelete_by_name(f, "/data", "val_spec", H5P_DEFAULT) >= 0);
    ck_assert(H5Adelete_by_name(f, "/eval", "split", H5P_DEFAULT) >= 0);
    ck_assert(H5Fclose(f) >= 0);
}

START_TEST(test_old_file)
{
    char dir[256];
    struct store *s;
    struct store_final f;
    int64_t *idx = (int64_t *)1;
    size_t n = 99;
    int completed;
    const char *split = NULL;
    float p[NTR] = { 1, 2, 3, 4, 5 }, m[NTR] = { 0 }, v[NTR] = { 0 };
    struct rng r;

    ck_assert_ptr_nonnull(test_tmpdir_make(dir, sizeof dir, "store_val"));
    const char *path = test_path(dir, "old.h5");

    /* an interrupted old run: one checkpoint, then the writer is gone */
    rng_init(&r, 3);
    struct store_run_info in = info_with(NULL);
    ck_assert_int_eq(store_create(&s, path, &in), RL_OK);
    ck_assert_int_eq(store_append_train(s, &(struct store_train_row){ 1, 2.0, 1e-3, 0.5, 0.1 }), RL_OK);
    ck_assert_int_eq(store_append_eval(s, 1, 0.5, 1.0), RL_OK);
    ck_assert_int_eq(store_write_checkpoint(s, 1, p, m, v, &r), RL_OK);
    store_close(s);
    make_old(path);

    ck_assert_int_eq(store_open(&s, path), RL_OK);
    ck_assert_int_eq(store_read_val_index(s, &idx, &n), RL_OK);
    ck_assert_uint_eq(n, 0);
    ck_assert_ptr_null(idx);
    ck_assert_int_eq(store_read_eval_split(s, &split), RL_OK);
    ck_assert_str_eq(split, "test");
    ck_assert_int_eq(store_read_final(s, &f, &completed), RL_OK);
    ck_assert(!f.has_val && isnan(f.val_accuracy) && isnan(f.val_loss) && completed == 0);
    store_close(s);

    /* it resumes and finishes as an old file (no val metrics to write) */
    ck_assert_int_eq(store_resume(&s, path), RL_OK);
    ck_assert_int_eq(store_append_train(s, &(struct store_train_row){ 2, 1.0, 1e-3, 0.5, 0.2 }), RL_OK);
    ck_assert_int_eq(store_finish(s), RL_OK);
    ck_assert_int_eq(store_write_final(s, &(struct store_final){ .accuracy = 0.5, .loss = 1.0 }), RL_OK);
    ck_assert_int_eq(store_commit(s), RL_OK);
    store_close(s);
    ck_assert_int_eq(store_open(&s, path), RL_OK);
    ck_assert_int_eq(store_read_final(s, &f, &completed), RL_OK);
    ck_assert(completed == 1 && f.accuracy == 0.5 && !f.has_val && isnan(f.val_accuracy));
    store_close(s);
    test_tmpdir_remove(dir);
}
END_TEST

/* a hostile split attribute is a format error naming it */
START_TEST(test_bad_split)
{
    char dir[256];
    struct store *s;
    const char *split;

    ck_assert_ptr_nonnull(test_tmpdir_make(dir, sizeof dir, "store_val"));
    const char *path = test_path(dir, "bad.h5");
    write_run(path, "2", true);
    ck_assert_int_eq(store_open_rw(&s, path), RL_OK);
    ck_assert_int_eq(store_attr_set_string(s, "/eval", "split", "train"), RL_OK);
    ck_assert_int_eq(store_commit(s), RL_OK);
    store_close(s);
    ck_assert_int_eq(store_open(&s, path), RL_OK);
    ck_assert_int_eq(store_read_eval_split(s, &split), RL_ERR_FORMAT);
    ck_assert_msg(strstr(rl_error_msg(), "/eval") && strstr(rl_error_msg(), "split"), "%s", rl_error_msg());
    store_close(s);
    test_tmpdir_remove(dir);
}
END_TEST

Suite *suite_store_val(void)
{
    Suite *s = suite_create("store_val");
    TCase *tc = tcase_create("val");

    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_val_roundtrip);
    tcase_add_test(tc, test_old_file);
    tcase_add_test(tc, test_bad_split);
    suite_add_tcase(s, tc);
    return s;
}
