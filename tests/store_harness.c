/*
 * store_harness.c: the store suites' shared helpers (store_harness.h).
 */
#include "store_harness.h"

#include <check.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "core/rng.h"
#include "core/status.h"
#include "test_util.h"

static char dir[256];

void store_test_dir_make(void)
{
    ck_assert_ptr_nonnull(test_tmpdir_make(dir, sizeof dir, "store"));
}

void store_test_dir_remove(void)
{
    test_tmpdir_remove(dir);
    dir[0] = '\0';
}

const char *store_test_dir(void)
{
    return dir;
}

const char *store_test_path(const char *name)
{
    return test_path(dir, "%s", name);
}

static int64_t train_index[NIDX];

struct store_run_info store_test_run_info(size_t flush_every)
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
struct store_train_row store_test_row_at(int i, double salt)
{
    struct store_train_row r = {
        .step = i + 1, .loss = 2.0 / (i + 1) + salt, .lr = 1e-3 * cos(0.01 * i),
        .grad_norm = i % 17 == 16 ? NAN : 0.1 * i + salt, .wall_s = 0.25 * (i + 1) + 1e-9 * i,
    };
    return r;
}

void store_test_block_at(int step, float *p, float *m, float *v)
{
    for (int j = 0; j < NTR; j++) {
        p[j] = (float)step + 0.001f * j;
        m[j] = -0.5f * (float)step + (float)j;
        v[j] = 1e-8f * (float)(j + 1) * (float)step;
    }
}

void store_test_expect_error(int rc, int want, const char *substr)
{
    ck_assert_int_eq(rc, want);
    ck_assert_msg(strstr(rl_error_msg(), substr) != NULL, "message '%s' lacks '%s'", rl_error_msg(), substr);
    ck_assert_ptr_null(strchr(rl_error_msg(), '\n'));
}

/* child: create, 50 train rows (eval every 10), checkpoint after row 30, die */
void store_test_writer_then_die(const char *path)
{
    struct store_run_info in = store_test_run_info(1);
    struct store *s;
    float p[NTR], m[NTR], v[NTR];
    struct rng rng;

    rng_init(&rng, 7);
    if (store_create(&s, path, &in) != RL_OK)
        _exit(3);
    for (int i = 0; i < 50; i++) {
        struct store_train_row r = store_test_row_at(i, 0);
        if (store_append_train(s, &r) != RL_OK)
            _exit(4);
        if ((i + 1) % 10 == 0 && store_append_eval(s, i + 1, 0.5, 1.0) != RL_OK)
            _exit(5);
        if (i + 1 == 30) {
            store_test_block_at(30, p, m, v);
            if (store_write_checkpoint(s, 30, p, m, v, &rng) != RL_OK)
                _exit(6);
        }
    }
    _exit(0);                                     /* no store_close: an interruption */
}
