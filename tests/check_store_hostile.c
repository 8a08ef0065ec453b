/*
 * check_store_hostile.c: the store's readers on hostile files (wrong types,
 * shapes, sizes and attributes, truncation, a file that is not HDF5: each a
 * clear RL_ERR_FORMAT / RL_ERR_IO, never a crash), and `randlora info` on a
 * run file and on broken ones. Shared helpers: store_harness.h.
 */
#include <check.h>
#include <fcntl.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/commands.h"
#include "core/alloc.h"
#include "core/rng.h"
#include "core/status.h"
#include "results/store.h"
#include "store_harness.h"
#include "suites.h"
#include "test_cmd.h"

/* ------------------------------------------------------------- hostile */

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void make_valid(const char *path)
{
    struct store_run_info in = store_test_run_info(1);
    struct store *s;
    float p[NTR], m[NTR], v[NTR];
    struct rng rng;

    rng_init(&rng, 1);
    store_test_block_at(3, p, m, v);
    ck_assert_int_eq(store_create(&s, path, &in), RL_OK);
    for (int i = 0; i < 3; i++) {
        struct store_train_row r = store_test_row_at(i, 0);
        ck_assert_int_eq(store_append_train(s, &r), RL_OK);
    }
    ck_assert_int_eq(store_write_checkpoint(s, 3, p, m, v, &rng), RL_OK);
    ck_assert_int_eq(store_finish(s), RL_OK);
    store_close(s);
}

static hid_t raw_open(const char *path)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST);
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, fapl);
    H5Pclose(fapl);
    ck_assert_int_ge(f, 0);
    return f;
}

/* replace dataset `name` with one of type `t` and the given shape (filled with zeros) */
static void replace_ds(const char *path, const char *name, hid_t t, int rank, const hsize_t *dims)
{
    hid_t f = raw_open(path);
    ck_assert_int_ge(H5Ldelete(f, name, H5P_DEFAULT), 0);
    hid_t sp = rank ? H5Screate_simple(rank, dims, NULL) : H5Screate(H5S_SCALAR);
    hid_t d = H5Dcreate2(f, name, t, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert_int_ge(d, 0);
    H5Dclose(d);
    H5Sclose(sp);
    H5Fclose(f);
}

static void set_root_attr_i64(const char *path, const char *name, int64_t v)
{
    hid_t f = raw_open(path);
    H5Adelete(f, name);
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(f, name, H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert_int_ge(H5Awrite(a, H5T_NATIVE_INT64, &v), 0);
    H5Aclose(a);
    H5Sclose(sp);
    H5Fclose(f);
}

static int open_status(const char *path)
{
    struct store *s = (struct store *)1;
    int rc = store_open(&s, path);

    if (rc == RL_OK)
        store_close(s);
    else
        ck_assert_ptr_null(s);
    return rc;
}

START_TEST(test_hostile)
{
    store_test_dir_make();
    const char *path = store_test_path("h.h5");
    struct store *s;

    /* not there, not HDF5, empty */
    store_test_expect_error(open_status(store_test_path("missing.h5")), RL_ERR_IO, "missing.h5");
    FILE *fp = fopen(path, "wb");
    fputs("this is not HDF5, just text\n", fp);
    fclose(fp);
    store_test_expect_error(open_status(path), RL_ERR_FORMAT, "not an HDF5 file");
    store_test_expect_error(store_resume(&s, path), RL_ERR_FORMAT, "not an HDF5 file");
    fclose(fopen(path, "wb"));
    store_test_expect_error(open_status(path), RL_ERR_FORMAT, "not an HDF5 file");

    /* an HDF5 file that is not a results file */
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    H5Fclose(f);
    store_test_expect_error(open_status(path), RL_ERR_FORMAT, "schema_version");

    /* schema versions */
    make_valid(path);
    ck_assert_int_eq(open_status(path), RL_OK);
    set_root_attr_i64(path, "schema_version", 2);
    store_test_expect_error(open_status(path), RL_ERR_FORMAT, "schema_version 2");
    make_valid(path);
    {
        hid_t ff = raw_open(path);
        H5Adelete(ff, "schema_version");
        hid_t t = H5Tcopy(H5T_C_S1);
        H5Tset_size(t, 4);
        hid_t sp = H5Screate(H5S_SCALAR);
        hid_t a = H5Acreate2(ff, "schema_version", t, sp, H5P_DEFAULT, H5P_DEFAULT);
        H5Awrite(a, t, "1\0\0\0");
        H5Aclose(a);
        H5Sclose(sp);
        H5Tclose(t);
        H5Fclose(ff);
    }
    store_test_expect_error(open_status(path), RL_ERR_FORMAT, "schema_version");

    /* /train/loss: wrong type, wrong rank, a group, a soft link, missing */
    hsize_t d3 = 3, d2[2] = { 3, 2 };
    make_valid(path);
    replace_ds(path, "/train/loss", H5T_STD_I32LE, 1, &d3);
    store_test_expect_error(open_status(path), RL_ERR_FORMAT, "/train/loss: expected a float dataset, found integer");
    make_valid(path);
    replace_ds(path, "/train/loss", H5T_IEEE_F64LE, 2, d2);
    store_test_expect_error(open_status(path), RL_ERR_FORMAT, "/train/loss: expected rank 1, found rank 2");
    make_valid(path);
    replace_ds(path, "/train/loss", H5T_IEEE_F64LE, 0, NULL);
    store_test_expect_error(open_status(path), RL_ERR_FORMAT, "/train/loss");
    make_valid(path);
    f = raw_open(path);
    H5Ldelete(f, "/train/loss", H5P_DEFAULT);
    H5Gclose(H5Gcreate2(f, "/train/loss", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    H5Fclose(f);
    store_test_expect_error(open_status(path), RL_ERR_FORMAT, "/train/loss: missing");
    make_valid(path);
    f = raw_open(path);
    H5Ldelete(f, "/train/loss", H5P_DEFAULT);
    H5Lcreate_soft("/train/lr", f, "/train/loss", H5P_DEFAULT, H5P_DEFAULT);
    H5Fclose(f);
    store_test_expect_error(open_status(path), RL_ERR_FORMAT, "/train/loss");
    make_valid(path);
    f = raw_open(path);
    H5Ldelete(f, "/train", H5P_DEFAULT);
    H5Fclose(f);
    store_test_expect_error(open_status(path), RL_ERR_FORMAT, "/train/step: missing");

    /* checkpoint block of the wrong size, current slot out of range */
    hsize_t wrong[2] = { 2, NTR + 1 };
    make_valid(path);
    replace_ds(path, "/checkpoint/adam_v", H5T_IEEE_F32LE, 2, wrong);
    store_test_expect_error(open_status(path), RL_ERR_FORMAT, "/checkpoint/adam_v: dimension 1 is 38, expected 37");
    make_valid(path);
    replace_ds(path, "/checkpoint/params", H5T_IEEE_F64LE, 2, wrong);
    store_test_expect_error(open_status(path), RL_ERR_FORMAT, "/checkpoint/params");
    make_valid(path);
    {
        hid_t ff = raw_open(path);
        hid_t d = H5Dopen2(ff, "/checkpoint/current", H5P_DEFAULT);
        int64_t seven = 7;
        H5Dwrite(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, &seven);
        H5Dclose(d);
        H5Fclose(ff);
    }
    ck_assert_int_eq(store_open(&s, path), RL_OK);
    struct store_checkpoint_info ci;
    store_test_expect_error(store_read_checkpoint(s, &ci, NULL, NULL, NULL, NULL), RL_ERR_FORMAT, "/checkpoint/current");
    store_close(s);
    store_test_expect_error(store_resume(&s, path), RL_ERR_FORMAT, "/checkpoint/current");

    /* a method count of the wrong type */
    make_valid(path);
    {
        hid_t ff = raw_open(path);
        H5Adelete_by_name(ff, "/method", "n_trainable", H5P_DEFAULT);
        hid_t sp = H5Screate(H5S_SCALAR);
        hid_t a = H5Acreate_by_name(ff, "/method", "n_trainable", H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT,
                                    H5P_DEFAULT);
        double x = 37;
        H5Awrite(a, H5T_NATIVE_DOUBLE, &x);
        H5Aclose(a);
        H5Sclose(sp);
        H5Fclose(ff);
    }
    store_test_expect_error(open_status(path), RL_ERR_FORMAT, "/method: attribute n_trainable: expected integer, found float");

    /* a huge declared curve is refused before allocating */
    make_valid(path);
    {
        hid_t ff = raw_open(path);
        hid_t d = H5Dopen2(ff, "/train/lr", H5P_DEFAULT);
        hsize_t big = (hsize_t)1 << 40;
        ck_assert_int_ge(H5Dset_extent(d, &big), 0);
        H5Dclose(d);
        H5Fclose(ff);
    }
    store_test_expect_error(open_status(path), RL_ERR_FORMAT, "/train/lr: more than");

    /* truncated file */
    make_valid(path);
    {
        FILE *in = fopen(path, "rb");
        fseek(in, 0, SEEK_END);
        long size = ftell(in);
        ck_assert_int_gt(size, 4096);
        ck_assert_int_eq(truncate(path, size / 2), 0);
        fclose(in);
    }
    int rc = open_status(path);
    ck_assert_msg(rc == RL_ERR_FORMAT || rc == RL_ERR_IO, "truncated: %d %s", rc, rl_error_msg());
    ck_assert_ptr_nonnull(strstr(rl_error_msg(), path));

    /* A dead writer's file cut back to the end of allocation its superblock
     * records (what `h5clear -s` does to it): the metadata written since is
     * gone. A SWMR reader must fail quickly rather than retry for hours. */
    const char *cut = store_test_path("cut.h5");
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0)
        store_test_writer_then_die(cut);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    {
        hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
        H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST);
        hid_t ff = H5Fopen(cut, H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, fapl);
        haddr_t eoa = 0;
        ck_assert_int_ge(ff, 0);
        ck_assert_int_ge(H5Fget_eoa(ff, &eoa), 0);
        H5Fclose(ff);
        H5Pclose(fapl);
        ck_assert_int_eq(truncate(cut, (off_t)eoa), 0);
    }
    double t0 = now_s();
    rc = store_open(&s, cut);
    if (rc == RL_OK) {
        int64_t *steps;
        double *vals;
        size_t n;
        rc = store_read_curve(s, "train", "loss", &steps, &vals, &n);
        if (rc == RL_OK) {
            free(steps);
            free(vals);
        }
        store_close(s);
    }
    ck_assert_msg(rc == RL_ERR_FORMAT, "cut file: %d %s", rc, rl_error_msg());
    ck_assert_msg(now_s() - t0 < 2.0, "cut file took %.1f s", now_s() - t0);
    store_test_dir_remove();
}
END_TEST

/* ---------------------------------------------------------- randlora info */

/* run cmd_info with stdout and stderr sent to `out`; returns its exit status */
START_TEST(test_info)
{
    store_test_dir_make();
    const char *path = store_test_path("info.h5");
    struct store *s;

    make_valid(path);
    ck_assert_int_eq(store_open_rw(&s, path), RL_OK);
    ck_assert_int_eq(store_write_tensor(s, "/adapter/l0/A", (float[]){ 1, 2 }, 1, &(size_t){ 2 }), RL_OK);
    ck_assert_int_eq(store_write_tensor(s, "/adapter/l1/A", (float[]){ 1, 2 }, 1, &(size_t){ 2 }), RL_OK);
    ck_assert_int_eq(store_commit(s), RL_OK);
    store_close(s);
    struct test_captured c = test_run_cmd(store_test_dir(), cmd_info, "info", path, NULL);
    const char *txt = c.out;

    ck_assert_int_eq(c.status, 0);
    ck_assert_msg(strstr(txt, "randlora, rank 6, alpha 1.5") != NULL, "%s", txt);
    ck_assert_msg(strstr(txt, "37 trainable, 123456789012 frozen shared") != NULL, "%s", txt);
    ck_assert_msg(strstr(txt, "3 rows, steps 1..3, last loss 0.666667") != NULL, "%s", txt);
    ck_assert_msg(strstr(txt, "step 3 (covers 3 train, 0 eval rows)") != NULL, "%s", txt);
    ck_assert_msg(strstr(txt, "not written") != NULL, "%s", txt);
    ck_assert_msg(strstr(txt, "/adapter (2 layers)") != NULL, "%s", txt);
    test_captured_free(&c);

    replace_ds(path, "/train/loss", H5T_STD_I32LE, 1, &(hsize_t){ 3 });
    c = test_run_cmd(store_test_dir(), cmd_info, "info", path, NULL);
    test_assert_one_line_error(&c, "randlora info: ", "/train/loss", "/train/loss of int32");
    test_captured_free(&c);

    FILE *fp = fopen(path, "wb");
    fputs("{\"not\": \"hdf5\"}", fp);
    fclose(fp);
    c = test_run_cmd(store_test_dir(), cmd_info, "info", path, NULL);
    test_assert_one_line_error(&c, "randlora info: ", "not an HDF5 file", "a JSON file");
    test_captured_free(&c);
    c = test_run_cmd(store_test_dir(), cmd_info, "info", store_test_path("absent.h5"), NULL);
    ck_assert_int_eq(c.status, 2);
    test_captured_free(&c);
    store_test_dir_remove();
}
END_TEST

Suite *suite_store_hostile(void)
{
    Suite *s = suite_create("store_hostile");
    TCase *tc = tcase_create("hostile");

    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_hostile);
    tcase_add_test(tc, test_info);
    suite_add_tcase(s, tc);
    return s;
}
