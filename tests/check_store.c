/*
 * check_store.c: the HDF5 results file (results/store.c): a whole life cycle
 * read back bit for bit, h5dump on the result, a writer killed without
 * closing (every flushed row readable, resume truncating to the checkpoint
 * and continuing), a SWMR reader watching a live writer, hostile files
 * (RL_ERR_FORMAT naming the object, never a crash), and `randlora info`.
 */
#include <dirent.h>
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
#include "suites.h"

/* ---------------------------------------------------------------- helpers */

static char tmpdir[64];

static void make_tmpdir(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/rl_store_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void remove_tmpdir(void)
{
    DIR *d = opendir(tmpdir);
    struct dirent *e;
    char p[512];

    if (!d)
        return;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        snprintf(p, sizeof p, "%s/%s", tmpdir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(tmpdir);
}

static const char *tmp_path(const char *name)
{
    static char buf[4][128];
    static int k;

    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
    return buf[k];
}

#define NTR 37          /* n_trainable of the test runs */
#define NIDX 12

static int64_t train_index[NIDX];

static struct store_run_info run_info(size_t flush_every)
{
    for (int i = 0; i < NIDX; i++)
        train_index[i] = 1000 - 7 * i;
    struct store_run_info in = {
        .harness_version = "0.1-test", .git_commit = "abc123def", .threads = "blas=2 omp=2",
        .blas = "openblas (pthreads)",
        .config_text = "[train]\nsteps = 50\nlr = 1e-3\n; unicode: \xc3\xa9\xe2\x82\xac\n",
        .method = "randlora", .rank = 6, .alpha = 1.5, .profile = "vision+text qkvo",
        .n_trainable = NTR, .n_frozen_shared = 123456789012LL,
        .data_spec = "fashion-mnist:tests/fixtures", .shots = 4, .fraction = 0,
        .sampling_seed = 0xfedcba9876543210ULL, .train_index = train_index, .n_train_index = NIDX,
        .flush_every = flush_every,
    };
    return in;
}

/* deterministic row i, with a non-finite grad_norm now and then */
static struct store_train_row row_at(int i, double salt)
{
    struct store_train_row r = {
        .step = i + 1, .loss = 2.0 / (i + 1) + salt, .lr = 1e-3 * cos(0.01 * i),
        .grad_norm = i % 17 == 16 ? NAN : 0.1 * i + salt, .wall_s = 0.25 * (i + 1) + 1e-9 * i,
    };
    return r;
}

static void block_at(int step, float *p, float *m, float *v)
{
    for (int j = 0; j < NTR; j++) {
        p[j] = (float)step + 0.001f * j;
        m[j] = -0.5f * (float)step + (float)j;
        v[j] = 1e-8f * (float)(j + 1) * (float)step;
    }
}

static int same_double(double a, double b)
{
    return (isnan(a) && isnan(b)) || memcmp(&a, &b, sizeof a) == 0;
}

/* assert /train holds rows [0, n) of row_at(., salt_lo) below `split` and
 * row_at(., salt_hi) from there on */
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
            struct store_train_row r = row_at((int)i, i < split ? salt_lo : salt_hi);
            double want = k == 0 ? r.loss : k == 1 ? r.lr : k == 2 ? r.grad_norm : r.wall_s;
            ck_assert_int_eq(steps[i], r.step);
            ck_assert_msg(same_double(vals[i], want), "%s[%zu]: %.17g want %.17g", names[k], i, vals[i], want);
        }
        free(steps);
        free(vals);
    }
}

static void expect_error(int rc, int want, const char *substr)
{
    ck_assert_int_eq(rc, want);
    ck_assert_msg(strstr(rl_error_msg(), substr) != NULL, "message '%s' lacks '%s'", rl_error_msg(), substr);
    ck_assert_ptr_null(strchr(rl_error_msg(), '\n'));
}

/* ------------------------------------------------------------- round trip */

START_TEST(test_roundtrip)
{
    struct store_run_info in = run_info(1);
    struct store *s;
    float p[NTR], m[NTR], v[NTR];
    struct rng rng, rng_at20;

    make_tmpdir();
    const char *path = tmp_path("run.h5");
    ck_assert_int_eq(store_create(&s, path, &in), RL_OK);
    rng_init(&rng, 42);
    (void)rng_normal(&rng);                       /* leaves a Box-Muller spare */
    for (int i = 0; i < 20; i++) {
        struct store_train_row r = row_at(i, 0);
        ck_assert_int_eq(store_append_train(s, &r), RL_OK);
        if ((i + 1) % 5 == 0)
            ck_assert_int_eq(store_append_eval(s, i + 1, 0.1 * (i + 1) / 2.0, 1.0 / (i + 1)), RL_OK);
        if (i + 1 == 10 || i + 1 == 20) {         /* two checkpoints: both slots */
            block_at(i + 1, p, m, v);
            (void)rng_u64(&rng);
            if (i + 1 == 20)
                rng_at20 = rng;
            ck_assert_int_eq(store_write_checkpoint(s, i + 1, p, m, v, &rng), RL_OK);
        }
    }
    /* SWMR mode: no new objects */
    size_t dims2[2] = { 2, 3 };
    float small[6] = { 1, 2, 3, 4, 5, 6 };
    expect_error(store_write_tensor(s, "/adapter/x/A", small, 2, dims2), RL_ERR_ARG, "SWMR");
    expect_error(store_attr_set_int64(s, "/", "late", 1), RL_ERR_ARG, "SWMR");

    struct store_final fin = { .accuracy = 0.8125, .loss = 0.4375, .peak_rss_bytes = 123456789,
                              .images_per_s = 987.5 };
    expect_error(store_write_final(s, &fin), RL_ERR_ARG, "after store_finish");
    ck_assert_int_eq(store_finish(s), RL_OK);
    expect_error(store_append_eval(s, 99, 0, 0), RL_ERR_ARG, "SWMR");
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
    expect_error(store_write_tensor(s, "/adapter", small, 1, &(size_t){ 6 }), RL_ERR_ARG, "not a dataset");
    expect_error(store_write_tensor(s, "/adapter/bad//x", small, 1, &(size_t){ 6 }), RL_ERR_ARG, "bad object path");
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
    expect_error(store_attr_get_int64(s, "/method", "method", &i64), RL_ERR_FORMAT, "attribute method");
    expect_error(store_attr_get_int64(s, "/method", "nope", &i64), RL_ERR_FORMAT, "no attribute nope");

    ck_assert_int_eq(store_read_config(s, &str), RL_OK);
    ck_assert_str_eq(str, in.config_text);
    free(str);
    int64_t *idx;
    size_t n;
    ck_assert_int_eq(store_read_train_index(s, &idx, &n), RL_OK);
    ck_assert_uint_eq(n, NIDX);
    ck_assert_int_eq(memcmp(idx, train_index, sizeof train_index), 0);
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
    block_at(20, p, m, v);
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
    expect_error(store_list(s, "/config", &names, &n), RL_ERR_FORMAT, "not a group");

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
    expect_error(store_read_tensor(s, "/analysis/vision.0.q/numerical_rank", &t, &nd, td), RL_ERR_FORMAT,
                 "numerical_rank");
    expect_error(store_read_tensor(s, "/adapter/missing/A", &t, &nd, td), RL_ERR_FORMAT, "/adapter/missing/A");
    ck_assert_ptr_null(t);
    ck_assert(store_has(s, "/analysis/vision.0.q"));
    ck_assert(!store_has(s, "/analysis/vision.0.q/nope"));
    ck_assert(!store_has(s, "/config/below"));
    expect_error(store_write_scalar(s, "/x", 1.0), RL_ERR_ARG, "read-only");
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
    expect_error(store_resume(&s, path), RL_ERR_ARG, "completed");
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
    remove_tmpdir();
}
END_TEST

/* ------------------------------------------------ interruption and resume */

/* child: create, 50 train rows (eval every 10), checkpoint after row 30, die */
static void writer_then_die(const char *path)
{
    struct store_run_info in = run_info(1);
    struct store *s;
    float p[NTR], m[NTR], v[NTR];
    struct rng rng;

    rng_init(&rng, 7);
    if (store_create(&s, path, &in) != RL_OK)
        _exit(3);
    for (int i = 0; i < 50; i++) {
        struct store_train_row r = row_at(i, 0);
        if (store_append_train(s, &r) != RL_OK)
            _exit(4);
        if ((i + 1) % 10 == 0 && store_append_eval(s, i + 1, 0.5, 1.0) != RL_OK)
            _exit(5);
        if (i + 1 == 30) {
            block_at(30, p, m, v);
            if (store_write_checkpoint(s, 30, p, m, v, &rng) != RL_OK)
                _exit(6);
        }
    }
    _exit(0);                                     /* no store_close: an interruption */
}

START_TEST(test_interrupted_and_resume)
{
    struct store *s;
    int status;

    make_tmpdir();
    const char *path = tmp_path("killed.h5");
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0)
        writer_then_die(path);
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
    block_at(30, p, m, v);
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
        struct store_train_row r = row_at(i, 0.125);
        ck_assert_int_eq(store_append_train(s, &r), RL_OK);
        if ((i + 1) % 10 == 0)
            ck_assert_int_eq(store_append_eval(s, i + 1, 0.75, 1.0), RL_OK);
    }
    block_at(50, p, m, v);
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
    const char *path2 = tmp_path("early.h5");
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        struct store_run_info in = run_info(1);
        if (store_create(&s, path2, &in) != RL_OK)
            _exit(3);
        for (int i = 0; i < 7; i++) {
            struct store_train_row r = row_at(i, 0);
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
    expect_error(store_read_checkpoint(s, &ci, NULL, NULL, NULL, NULL), RL_ERR_NA, "no checkpoint");
    store_close(s);
    ck_assert_int_eq(store_resume(&s, path2), RL_OK);
    ck_assert_int_eq(store_rows(s, &tr, NULL), RL_OK);
    ck_assert_uint_eq(tr, 0);
    store_close(s);
    remove_tmpdir();
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

    make_tmpdir();
    const char *path = tmp_path("live.h5");
    ck_assert_int_eq(pipe(to_parent), 0);
    ck_assert_int_eq(pipe(to_child), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        struct store_run_info in = run_info(1);
        struct store *w;
        int code = 0;
        if (store_create(&w, path, &in) != RL_OK)
            _exit(3);
        for (int i = 0; i < 12; i++) {
            struct store_train_row r = row_at(i, 0);
            code |= store_append_train(w, &r) != RL_OK;
        }
        code |= store_append_eval(w, 12, 0.25, 2.0) != RL_OK;
        if (write(to_parent[1], "1", 1) != 1)
            _exit(7);
        wait_byte(to_child[0]);
        for (int i = 12; i < 40; i++) {
            struct store_train_row r = row_at(i, 0);
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
    remove_tmpdir();
}
END_TEST

/* ------------------------------------------------------------- hostile */

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void make_valid(const char *path)
{
    struct store_run_info in = run_info(1);
    struct store *s;
    float p[NTR], m[NTR], v[NTR];
    struct rng rng;

    rng_init(&rng, 1);
    block_at(3, p, m, v);
    ck_assert_int_eq(store_create(&s, path, &in), RL_OK);
    for (int i = 0; i < 3; i++) {
        struct store_train_row r = row_at(i, 0);
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
    make_tmpdir();
    const char *path = tmp_path("h.h5");
    struct store *s;

    /* not there, not HDF5, empty */
    expect_error(open_status(tmp_path("missing.h5")), RL_ERR_IO, "missing.h5");
    FILE *fp = fopen(path, "wb");
    fputs("this is not HDF5, just text\n", fp);
    fclose(fp);
    expect_error(open_status(path), RL_ERR_FORMAT, "not an HDF5 file");
    expect_error(store_resume(&s, path), RL_ERR_FORMAT, "not an HDF5 file");
    fclose(fopen(path, "wb"));
    expect_error(open_status(path), RL_ERR_FORMAT, "not an HDF5 file");

    /* an HDF5 file that is not a results file */
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    H5Fclose(f);
    expect_error(open_status(path), RL_ERR_FORMAT, "schema_version");

    /* schema versions */
    make_valid(path);
    ck_assert_int_eq(open_status(path), RL_OK);
    set_root_attr_i64(path, "schema_version", 2);
    expect_error(open_status(path), RL_ERR_FORMAT, "schema_version 2");
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
    expect_error(open_status(path), RL_ERR_FORMAT, "schema_version");

    /* /train/loss: wrong type, wrong rank, a group, a soft link, missing */
    hsize_t d3 = 3, d2[2] = { 3, 2 };
    make_valid(path);
    replace_ds(path, "/train/loss", H5T_STD_I32LE, 1, &d3);
    expect_error(open_status(path), RL_ERR_FORMAT, "/train/loss: expected a float dataset, found integer");
    make_valid(path);
    replace_ds(path, "/train/loss", H5T_IEEE_F64LE, 2, d2);
    expect_error(open_status(path), RL_ERR_FORMAT, "/train/loss: expected rank 1, found rank 2");
    make_valid(path);
    replace_ds(path, "/train/loss", H5T_IEEE_F64LE, 0, NULL);
    expect_error(open_status(path), RL_ERR_FORMAT, "/train/loss");
    make_valid(path);
    f = raw_open(path);
    H5Ldelete(f, "/train/loss", H5P_DEFAULT);
    H5Gclose(H5Gcreate2(f, "/train/loss", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    H5Fclose(f);
    expect_error(open_status(path), RL_ERR_FORMAT, "/train/loss: missing");
    make_valid(path);
    f = raw_open(path);
    H5Ldelete(f, "/train/loss", H5P_DEFAULT);
    H5Lcreate_soft("/train/lr", f, "/train/loss", H5P_DEFAULT, H5P_DEFAULT);
    H5Fclose(f);
    expect_error(open_status(path), RL_ERR_FORMAT, "/train/loss");
    make_valid(path);
    f = raw_open(path);
    H5Ldelete(f, "/train", H5P_DEFAULT);
    H5Fclose(f);
    expect_error(open_status(path), RL_ERR_FORMAT, "/train/step: missing");

    /* checkpoint block of the wrong size, current slot out of range */
    hsize_t wrong[2] = { 2, NTR + 1 };
    make_valid(path);
    replace_ds(path, "/checkpoint/adam_v", H5T_IEEE_F32LE, 2, wrong);
    expect_error(open_status(path), RL_ERR_FORMAT, "/checkpoint/adam_v: dimension 1 is 38, expected 37");
    make_valid(path);
    replace_ds(path, "/checkpoint/params", H5T_IEEE_F64LE, 2, wrong);
    expect_error(open_status(path), RL_ERR_FORMAT, "/checkpoint/params");
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
    expect_error(store_read_checkpoint(s, &ci, NULL, NULL, NULL, NULL), RL_ERR_FORMAT, "/checkpoint/current");
    store_close(s);
    expect_error(store_resume(&s, path), RL_ERR_FORMAT, "/checkpoint/current");

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
    expect_error(open_status(path), RL_ERR_FORMAT, "/method: attribute n_trainable: expected integer, found float");

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
    expect_error(open_status(path), RL_ERR_FORMAT, "/train/lr: more than");

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
    const char *cut = tmp_path("cut.h5");
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0)
        writer_then_die(cut);
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
    remove_tmpdir();
}
END_TEST

/* ---------------------------------------------------------- randlora info */

/* run cmd_info with stdout and stderr sent to `out`; returns its exit status */
static int run_info_cmd(const char *file, const char *out)
{
    char *argv[3] = { "info", (char *)file, NULL };
    int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int so = dup(1), se = dup(2);

    ck_assert_int_ge(fd, 0);
    fflush(stdout);
    fflush(stderr);
    dup2(fd, 1);
    dup2(fd, 2);
    int rc = cmd_info(2, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(so, 1);
    dup2(se, 2);
    close(so);
    close(se);
    close(fd);
    return rc;
}

static char *slurp(const char *path)
{
    FILE *fp = fopen(path, "rb");
    char *buf = xcalloc(65536, 1);

    ck_assert_ptr_nonnull(fp);
    size_t n = fread(buf, 1, 65535, fp);
    buf[n] = '\0';
    fclose(fp);
    return buf;
}

START_TEST(test_info)
{
    make_tmpdir();
    const char *path = tmp_path("info.h5");
    const char *out = tmp_path("info.txt");
    struct store *s;

    make_valid(path);
    ck_assert_int_eq(store_open_rw(&s, path), RL_OK);
    ck_assert_int_eq(store_write_tensor(s, "/adapter/l0/A", (float[]){ 1, 2 }, 1, &(size_t){ 2 }), RL_OK);
    ck_assert_int_eq(store_write_tensor(s, "/adapter/l1/A", (float[]){ 1, 2 }, 1, &(size_t){ 2 }), RL_OK);
    ck_assert_int_eq(store_commit(s), RL_OK);
    store_close(s);
    ck_assert_int_eq(run_info_cmd(path, out), 0);
    char *txt = slurp(out);
    ck_assert_msg(strstr(txt, "randlora, rank 6, alpha 1.5") != NULL, "%s", txt);
    ck_assert_msg(strstr(txt, "37 trainable, 123456789012 frozen shared") != NULL, "%s", txt);
    ck_assert_msg(strstr(txt, "3 rows, steps 1..3, last loss 0.666667") != NULL, "%s", txt);
    ck_assert_msg(strstr(txt, "step 3 (covers 3 train, 0 eval rows)") != NULL, "%s", txt);
    ck_assert_msg(strstr(txt, "not written") != NULL, "%s", txt);
    ck_assert_msg(strstr(txt, "/adapter (2 layers)") != NULL, "%s", txt);
    free(txt);

    replace_ds(path, "/train/loss", H5T_STD_I32LE, 1, &(hsize_t){ 3 });
    ck_assert_int_eq(run_info_cmd(path, out), 2);
    txt = slurp(out);
    ck_assert_msg(strstr(txt, "randlora info: ") == txt && strstr(txt, "/train/loss") != NULL, "%s", txt);
    free(txt);

    FILE *fp = fopen(path, "wb");
    fputs("{\"not\": \"hdf5\"}", fp);
    fclose(fp);
    ck_assert_int_eq(run_info_cmd(path, out), 2);
    txt = slurp(out);
    ck_assert_msg(strstr(txt, "not an HDF5 file") != NULL, "%s", txt);
    free(txt);
    ck_assert_int_eq(run_info_cmd(tmp_path("absent.h5"), out), 2);
    remove_tmpdir();
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

    tc = tcase_create("hostile");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_hostile);
    tcase_add_test(tc, test_info);
    suite_add_tcase(s, tc);
    return s;
}
