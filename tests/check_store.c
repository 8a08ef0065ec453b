/*
 * check_store.c: the HDF5 results file (results/store.c): a whole life cycle
 * read back bit for bit, h5dump on the result, a writer killed without
 * closing (every flushed row readable, resume truncating to the checkpoint
 * and continuing), and a SWMR reader watching a live writer. Hostile files
 * and `randlora info`: check_store_hostile.c; shared helpers: store_harness.h.
 */
#include <fcntl.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/rng.h"
#include "core/status.h"
#include "cli/commands.h"
#include "results/store.h"
#include "store_harness.h"
#include "suites.h"

/* ---------------------------------------------------------------- helpers */

static int same_double(double a, double b)
{
    return (isnan(a) && isnan(b)) || memcmp(&a, &b, sizeof a) == 0;
}

/* assert /train holds rows [0, n) of store_test_row_at(., salt_lo) below `split` and
 * store_test_row_at(., salt_hi) from there on */
static void check_train(struct store *s, size_t n, size_t split, double salt_lo, double salt_hi)
{
    static const char *names[4] = { "loss", "lr", "grad_norm", "wall_s" };

    for (int k = 0; k < 4; k++) {
        int64_t *steps;
        double *vals;
        size_t got;
        ck_assert_int_eq(store_read_curve(s, "train", names[k], &steps, &vals, &got), RL_OK);
        ck_assert_uint_eq(got, n);
        for (size_t i = 0; i < n; i++) {
            struct store_train_row r = store_test_row_at((int)i, i < split ? salt_lo : salt_hi);
            double want = k == 0 ? r.loss : k == 1 ? r.lr : k == 2 ? r.grad_norm : r.wall_s;
            ck_assert_int_eq(steps[i], r.step);
            ck_assert_msg(same_double(vals[i], want), "%s[%zu]: %.17g want %.17g", names[k], i, vals[i], want);
        }
        free(steps);
        free(vals);
    }
}


/* ------------------------------------------------------------- round trip */

START_TEST(test_roundtrip)
{
    struct store_run_info in = store_test_run_info(1);
    struct store *s;
    float p[NTR], m[NTR], v[NTR];
    struct rng rng, rng_at20;

    store_test_dir_make();
    const char *path = store_test_path("run.h5");
    ck_assert_int_eq(store_create(&s, path, &in), RL_OK);
    rng_init(&rng, 42);
    (void)rng_normal(&rng);                       /* leaves a Box-Muller spare */
    for (int i = 0; i < 20; i++) {
        struct store_train_row r = store_test_row_at(i, 0);
        ck_assert_int_eq(store_append_train(s, &r), RL_OK);
        if ((i + 1) % 5 == 0)
            ck_assert_int_eq(store_append_eval(s, i + 1, 0.1 * (i + 1) / 2.0, 1.0 / (i + 1)), RL_OK);
        if (i + 1 == 10 || i + 1 == 20) {         /* two checkpoints: both slots */
            store_test_block_at(i + 1, p, m, v);
            (void)rng_u64(&rng);
            if (i + 1 == 20)
                rng_at20 = rng;
            ck_assert_int_eq(store_write_checkpoint(s, i + 1, p, m, v, &rng), RL_OK);
        }
    }
    /* SWMR mode: no new objects */
    size_t dims2[2] = { 2, 3 };
    float small[6] = { 1, 2, 3, 4, 5, 6 };
    store_test_expect_error(store_write_tensor(s, "/adapter/x/A", small, 2, dims2), RL_ERR_ARG, "SWMR");
    store_test_expect_error(store_attr_set_int64(s, "/", "late", 1), RL_ERR_ARG, "SWMR");

    struct store_final fin = { .accuracy = 0.8125, .loss = 0.4375, .peak_rss_bytes = 123456789,
                              .images_per_s = 987.5 };
    store_test_expect_error(store_write_final(s, &fin), RL_ERR_ARG, "after store_finish");
    ck_assert_int_eq(store_finish(s), RL_OK);
    store_test_expect_error(store_append_eval(s, 99, 0, 0), RL_ERR_ARG, "SWMR");
    ck_assert_int_eq(store_write_final(s, &fin), RL_OK);

    /* phase 3: adapter tensors (one big enough to be chunked + compressed) and analysis */
    size_t big_dims[3] = { 64, 33, 17 };
    size_t nbig = 64 * 33 * 17;
    float *big = xmalloc_array(nbig, sizeof(float));
    for (size_t i = 0; i < nbig; i++)
        big[i] = (float)i * 0.5f - 3.25f;
    ck_assert_int_eq(store_write_tensor(s, "/adapter/vision.0.q/lora_A", small, 2, dims2), RL_OK);
    ck_assert_int_eq(store_write_tensor(s, "/adapter/vision.0.q/lora_B", big, 3, big_dims), RL_OK);
    ck_assert_int_eq(store_write_tensor(s, "/adapter/text.11.v/lora_A", small, 1, &(size_t){ 6 }), RL_OK);
    small[0] = 42;                                /* replace an existing tensor */
    ck_assert_int_eq(store_write_tensor(s, "/adapter/vision.0.q/lora_A", small, 2, dims2), RL_OK);
    ck_assert_int_eq(store_write_tensor(s, "/analysis/vision.0.q/singular_values", small, 1, &(size_t){ 6 }),
                     RL_OK);
    ck_assert_int_eq(store_write_scalar_i64(s, "/analysis/vision.0.q/numerical_rank", 6), RL_OK);
    ck_assert_int_eq(store_write_scalar(s, "/analysis/vision.0.q/stable_rank", 2.75), RL_OK);
    ck_assert_int_eq(store_attr_set_string(s, "/final", "stop_reason", "finished"), RL_OK);
    ck_assert_int_eq(store_attr_set_double(s, "/analysis", "tolerance", 1e-6), RL_OK);
    store_test_expect_error(store_write_tensor(s, "/adapter", small, 1, &(size_t){ 6 }), RL_ERR_ARG, "not a dataset");
    store_test_expect_error(store_write_tensor(s, "/adapter/bad//x", small, 1, &(size_t){ 6 }), RL_ERR_ARG, "bad object path");
    ck_assert_int_eq(store_commit(s), RL_OK);
    store_close(s);

    /* everything back */
    ck_assert_int_eq(store_open(&s, path), RL_OK);
    ck_assert_uint_eq(store_n_trainable(s), NTR);
    int64_t i64;
    uint64_t u64;
    double d;
    char *str;
    ck_assert_int_eq(store_attr_get_int64(s, "/", "schema_version", &i64), RL_OK);
    ck_assert_int_eq(i64, 1);
    ck_assert_int_eq(store_attr_get_string(s, "/", "git_commit", &str), RL_OK);
    ck_assert_str_eq(str, "abc123def");
    free(str);
    ck_assert_int_eq(store_attr_get_string(s, "/", "created_utc", &str), RL_OK);
    ck_assert_uint_eq(strlen(str), 20);
    ck_assert_int_eq(str[19], 'Z');
    free(str);
    ck_assert_int_eq(store_attr_get_string(s, "/", "blas", &str), RL_OK);
    ck_assert_str_eq(str, "openblas (pthreads)");
    free(str);
    ck_assert_int_eq(store_attr_get_string(s, "/method", "profile", &str), RL_OK);
    ck_assert_str_eq(str, "vision+text qkvo");
    free(str);
    ck_assert_int_eq(store_attr_get_double(s, "/method", "alpha", &d), RL_OK);
    ck_assert(d == 1.5);
    ck_assert_int_eq(store_attr_get_int64(s, "/method", "n_frozen_shared", &i64), RL_OK);
    ck_assert_int_eq(i64, 123456789012LL);
    ck_assert_int_eq(store_attr_get_uint64(s, "/data", "sampling_seed", &u64), RL_OK);
    ck_assert_uint_eq(u64, 0xfedcba9876543210ULL);
    ck_assert_int_eq(store_attr_get_int64(s, "/data", "shots", &i64), RL_OK);
    ck_assert_int_eq(i64, 4);
    ck_assert_int_eq(store_attr_get_string(s, "/final", "stop_reason", &str), RL_OK);
    ck_assert_str_eq(str, "finished");
    free(str);
    store_test_expect_error(store_attr_get_int64(s, "/method", "method", &i64), RL_ERR_FORMAT, "attribute method");
    store_test_expect_error(store_attr_get_int64(s, "/method", "nope", &i64), RL_ERR_FORMAT, "no attribute nope");

    ck_assert_int_eq(store_read_config(s, &str), RL_OK);
    ck_assert_str_eq(str, in.config_text);
    free(str);
    int64_t *idx;
    size_t n;
    ck_assert_int_eq(store_read_train_index(s, &idx, &n), RL_OK);
    ck_assert_uint_eq(n, NIDX);
    ck_assert_int_eq(memcmp(idx, in.train_index, NIDX * sizeof(*idx)), 0);
    free(idx);

    size_t tr, er;
    ck_assert_int_eq(store_rows(s, &tr, &er), RL_OK);
    ck_assert_uint_eq(tr, 20);
    ck_assert_uint_eq(er, 4);
    check_train(s, 20, 20, 0, 0);
    int64_t *steps;
    double *vals;
    ck_assert_int_eq(store_read_curve(s, "eval", "accuracy", &steps, &vals, &n), RL_OK);
    ck_assert_uint_eq(n, 4);
    for (size_t i = 0; i < 4; i++) {
        ck_assert_int_eq(steps[i], 5 * (i + 1));
        ck_assert(same_double(vals[i], 0.1 * (5 * (i + 1)) / 2.0));
    }
    free(steps);
    free(vals);

    struct store_checkpoint_info ci;
    float gp[NTR], gm[NTR], gv[NTR];
    struct rng grng;
    ck_assert_int_eq(store_read_checkpoint(s, &ci, gp, gm, gv, &grng), RL_OK);
    ck_assert_int_eq(ci.step, 20);
    ck_assert_uint_eq(ci.train_rows, 20);
    ck_assert_uint_eq(ci.eval_rows, 4);
    store_test_block_at(20, p, m, v);
    ck_assert_int_eq(memcmp(gp, p, sizeof p), 0);
    ck_assert_int_eq(memcmp(gm, m, sizeof m), 0);
    ck_assert_int_eq(memcmp(gv, v, sizeof v), 0);
    ck_assert_int_eq(memcmp(grng.s, rng_at20.s, sizeof grng.s), 0);
    ck_assert_int_eq(grng.has_spare, 1);
    ck_assert(same_double(grng.spare, rng_at20.spare));
    ck_assert(rng_normal(&grng) == rng_normal(&rng_at20));   /* continues the same stream */

    struct store_final gf;
    int completed;
    ck_assert_int_eq(store_read_final(s, &gf, &completed), RL_OK);
    ck_assert_int_eq(completed, 1);
    ck_assert(gf.accuracy == fin.accuracy && gf.loss == fin.loss && gf.images_per_s == fin.images_per_s);
    ck_assert_int_eq(gf.peak_rss_bytes, fin.peak_rss_bytes);

    char **names;
    ck_assert_int_eq(store_list(s, "/adapter", &names, &n), RL_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(names[0], "text.11.v");
    ck_assert_str_eq(names[1], "vision.0.q");
    store_free_names(names, n);
    ck_assert_int_eq(store_list(s, "/nothing", &names, &n), RL_ERR_NA);
    ck_assert_uint_eq(n, 0);
    store_test_expect_error(store_list(s, "/config", &names, &n), RL_ERR_FORMAT, "not a group");

    float *t;
    size_t nd, td[STORE_MAX_DIMS];
    ck_assert_int_eq(store_read_tensor(s, "/adapter/vision.0.q/lora_A", &t, &nd, td), RL_OK);
    ck_assert_uint_eq(nd, 2);
    ck_assert_uint_eq(td[0], 2);
    ck_assert_uint_eq(td[1], 3);
    ck_assert_int_eq(memcmp(t, small, sizeof small), 0);
    free(t);
    ck_assert_int_eq(store_read_tensor(s, "/adapter/vision.0.q/lora_B", &t, &nd, td), RL_OK);
    ck_assert_uint_eq(nd, 3);
    ck_assert(td[0] == 64 && td[1] == 33 && td[2] == 17);
    ck_assert_int_eq(memcmp(t, big, nbig * sizeof(float)), 0);
    free(t);
    ck_assert_int_eq(store_read_scalar_i64(s, "/analysis/vision.0.q/numerical_rank", &i64), RL_OK);
    ck_assert_int_eq(i64, 6);
    ck_assert_int_eq(store_read_scalar(s, "/analysis/vision.0.q/stable_rank", &d), RL_OK);
    ck_assert(d == 2.75);
    store_test_expect_error(store_read_tensor(s, "/analysis/vision.0.q/numerical_rank", &t, &nd, td), RL_ERR_FORMAT,
                 "numerical_rank");
    store_test_expect_error(store_read_tensor(s, "/adapter/missing/A", &t, &nd, td), RL_ERR_FORMAT, "/adapter/missing/A");
    ck_assert_ptr_null(t);
    ck_assert(store_has(s, "/analysis/vision.0.q"));
    ck_assert(!store_has(s, "/analysis/vision.0.q/nope"));
    ck_assert(!store_has(s, "/config/below"));
    store_test_expect_error(store_write_scalar(s, "/x", 1.0), RL_ERR_ARG, "read-only");
    store_close(s);

    /* a finished run reopened read-write gets more analysis */
    ck_assert_int_eq(store_open_rw(&s, path), RL_OK);
    ck_assert_int_eq(store_write_scalar(s, "/analysis/text.11.v/effective_rank", 3.5), RL_OK);
    ck_assert_int_eq(store_commit(s), RL_OK);
    store_close(s);
    ck_assert_int_eq(store_open(&s, path), RL_OK);
    ck_assert_int_eq(store_read_scalar(s, "/analysis/text.11.v/effective_rank", &d), RL_OK);
    ck_assert(d == 3.5);
    store_close(s);
    store_test_expect_error(store_resume(&s, path), RL_ERR_ARG, "completed");
    ck_assert_ptr_null(s);

    /* h5dump reads it, when the tool is installed */
    if (system("command -v h5dump >/dev/null 2>&1") == 0) {
        char cmd[256];
        snprintf(cmd, sizeof cmd, "h5dump -H %s >/dev/null 2>&1", path);
        ck_assert_int_eq(system(cmd), 0);
        snprintf(cmd, sizeof cmd, "h5dump -d /train/loss %s >/dev/null 2>&1", path);
        ck_assert_int_eq(system(cmd), 0);
    }
    free(big);
    store_test_dir_remove();
}
END_TEST

/* ------------------------------------------------ interruption and resume */

START_TEST(test_interrupted_and_resume)
{
    struct store *s;
    int status;

    store_test_dir_make();
    const char *path = store_test_path("killed.h5");
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0)
        store_test_writer_then_die(path);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 0);

    /* flush_every = 1: every row appended before the death is there (all 50) */
    ck_assert_int_eq(store_open(&s, path), RL_OK);
    size_t tr, er;
    ck_assert_int_eq(store_rows(s, &tr, &er), RL_OK);
    ck_assert_uint_eq(tr, 50);
    ck_assert_uint_eq(er, 5);
    check_train(s, 50, 50, 0, 0);
    struct store_checkpoint_info ci;
    float gp[NTR], p[NTR], m[NTR], v[NTR];
    struct rng grng, rng;
    ck_assert_int_eq(store_read_checkpoint(s, &ci, gp, NULL, NULL, &grng), RL_OK);
    ck_assert_int_eq(ci.step, 30);
    ck_assert_uint_eq(ci.train_rows, 30);
    ck_assert_uint_eq(ci.eval_rows, 3);
    store_test_block_at(30, p, m, v);
    ck_assert_int_eq(memcmp(gp, p, sizeof p), 0);
    rng_init(&rng, 7);
    ck_assert_int_eq(memcmp(grng.s, rng.s, sizeof rng.s), 0);
    struct store_final f;
    int completed = 1;
    ck_assert_int_eq(store_read_final(s, &f, &completed), RL_OK);
    ck_assert_int_eq(completed, 0);
    ck_assert(isnan(f.accuracy));
    store_close(s);

    /* resume: back to the checkpoint's 30 rows, then on to 50 with new values */
    ck_assert_msg(store_resume(&s, path) == RL_OK, "%s", rl_error_msg());
    ck_assert_int_eq(store_rows(s, &tr, &er), RL_OK);
    ck_assert_uint_eq(tr, 30);
    ck_assert_uint_eq(er, 3);
    ck_assert_int_eq(store_read_checkpoint(s, &ci, gp, NULL, NULL, NULL), RL_OK);
    ck_assert_int_eq(ci.step, 30);
    for (int i = 30; i < 50; i++) {
        struct store_train_row r = store_test_row_at(i, 0.125);
        ck_assert_int_eq(store_append_train(s, &r), RL_OK);
        if ((i + 1) % 10 == 0)
            ck_assert_int_eq(store_append_eval(s, i + 1, 0.75, 1.0), RL_OK);
    }
    store_test_block_at(50, p, m, v);
    ck_assert_int_eq(store_write_checkpoint(s, 50, p, m, v, &rng), RL_OK);
    struct store_final fin = { .accuracy = 0.75, .loss = 0.5, .peak_rss_bytes = 1 << 20, .images_per_s = 100 };
    ck_assert_int_eq(store_finish(s), RL_OK);
    ck_assert_int_eq(store_write_final(s, &fin), RL_OK);
    ck_assert_int_eq(store_commit(s), RL_OK);
    store_close(s);

    ck_assert_int_eq(store_open(&s, path), RL_OK);
    check_train(s, 50, 30, 0, 0.125);
    int64_t *steps;
    double *acc;
    size_t n;
    ck_assert_int_eq(store_read_curve(s, "eval", "accuracy", &steps, &acc, &n), RL_OK);
    ck_assert_uint_eq(n, 5);
    ck_assert(acc[2] == 0.5 && acc[3] == 0.75 && steps[4] == 50);
    free(steps);
    free(acc);
    ck_assert_int_eq(store_read_checkpoint(s, &ci, gp, NULL, NULL, NULL), RL_OK);
    ck_assert_int_eq(ci.step, 50);
    ck_assert_uint_eq(ci.train_rows, 50);
    ck_assert_int_eq(memcmp(gp, p, sizeof p), 0);
    store_close(s);

    /* a run that died before its first checkpoint resumes from row 0 */
    const char *path2 = store_test_path("early.h5");
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        struct store_run_info in = store_test_run_info(1);
        if (store_create(&s, path2, &in) != RL_OK)
            _exit(3);
        for (int i = 0; i < 7; i++) {
            struct store_train_row r = store_test_row_at(i, 0);
            if (store_append_train(s, &r) != RL_OK)
                _exit(4);
        }
        _exit(0);
    }
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ck_assert_int_eq(store_open(&s, path2), RL_OK);
    ck_assert_int_eq(store_rows(s, &tr, NULL), RL_OK);
    ck_assert_uint_eq(tr, 7);
    store_test_expect_error(store_read_checkpoint(s, &ci, NULL, NULL, NULL, NULL), RL_ERR_NA, "no checkpoint");
    store_close(s);
    ck_assert_int_eq(store_resume(&s, path2), RL_OK);
    ck_assert_int_eq(store_rows(s, &tr, NULL), RL_OK);
    ck_assert_uint_eq(tr, 0);
    store_close(s);
    store_test_dir_remove();
}
END_TEST

/* ------------------------------------------------- a live writer, a reader */

static void wait_byte(int fd)
{
    char c;

    while (read(fd, &c, 1) < 0)
        ;
}

START_TEST(test_swmr_live_reader)
{
    int to_parent[2], to_child[2];
    struct store *s;

    store_test_dir_make();
    const char *path = store_test_path("live.h5");
    ck_assert_int_eq(pipe(to_parent), 0);
    ck_assert_int_eq(pipe(to_child), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        struct store_run_info in = store_test_run_info(1);
        struct store *w;
        int code = 0;
        if (store_create(&w, path, &in) != RL_OK)
            _exit(3);
        for (int i = 0; i < 12; i++) {
            struct store_train_row r = store_test_row_at(i, 0);
            code |= store_append_train(w, &r) != RL_OK;
        }
        code |= store_append_eval(w, 12, 0.25, 2.0) != RL_OK;
        if (write(to_parent[1], "1", 1) != 1)
            _exit(7);
        wait_byte(to_child[0]);
        for (int i = 12; i < 40; i++) {
            struct store_train_row r = store_test_row_at(i, 0);
            code |= store_append_train(w, &r) != RL_OK;
        }
        if (write(to_parent[1], "2", 1) != 1)
            _exit(7);
        wait_byte(to_child[0]);
        /* the reader still has the file open: the commit renames a new
         * file over it */
        if (store_finish(w) != RL_OK ||
            store_write_tensor(w, "/adapter/l0/A", (float[]){ 1, 2, 3 }, 1, &(size_t){ 3 }) != RL_OK ||
            store_commit(w) != RL_OK) {
            fprintf(stderr, "live writer: %s\n", rl_error_msg());
            code = 1;
        }
        store_close(w);
        _exit(code ? 4 : 0);
    }
    wait_byte(to_parent[0]);
    /* the writer is live, in SWMR mode */
    ck_assert_int_eq(store_open(&s, path), RL_OK);
    size_t tr, er;
    ck_assert_int_eq(store_rows(s, &tr, &er), RL_OK);
    ck_assert_uint_eq(tr, 12);
    ck_assert_uint_eq(er, 1);
    check_train(s, 12, 12, 0, 0);
    ck_assert_int_eq(write(to_child[1], "g", 1), 1);
    wait_byte(to_parent[0]);
    /* same reader, more rows (datasets are refreshed on each read) */
    check_train(s, 40, 40, 0, 0);
    ck_assert_int_eq(write(to_child[1], "g", 1), 1);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 0);
    /* the old reader may see errors now, never a crash */
    int rc = store_rows(s, &tr, &er);
    ck_assert(rc == RL_OK || rc == RL_ERR_FORMAT);
    store_close(s);
    ck_assert_int_eq(store_open(&s, path), RL_OK);
    check_train(s, 40, 40, 0, 0);
    ck_assert(store_has(s, "/adapter/l0/A"));
    store_close(s);
    close(to_parent[0]);
    close(to_parent[1]);
    close(to_child[0]);
    close(to_child[1]);
    store_test_dir_remove();
}
END_TEST

Suite *suite_store(void)
{
    Suite *s = suite_create("store");
    TCase *tc = tcase_create("lifecycle");

    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_roundtrip);
    tcase_add_test(tc, test_interrupted_and_resume);
    tcase_add_test(tc, test_swmr_live_reader);
    suite_add_tcase(s, tc);

    return s;
}
