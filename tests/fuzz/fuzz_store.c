/*
 * fuzz_store.c: libFuzzer harness for the readers of HDF5 run files
 * (results/store*.c, results/run_adapters.c) as `randlora info`, `export`,
 * `analyze`, `plot` and `sweep` use them.
 *
 * The input is a whole run file: it is written to a private temporary file
 * and then
 *   - `randlora info FILE` runs on it (cmd_info, stdout to /dev/null), which
 *     reads every attribute, curve, checkpoint and final record it shows;
 *   - store_open, then the config text (store_read_config), the run's plan
 *     (run_plan_read) and its adapters (run_adapters_load, what export and
 *     analyze read), the checkpoint with its parameter and moment blocks (up
 *     to 2^20 parameters), every curve, the train and validation indices,
 *     the record `report` reads (report_run_read), and every dataset under
 *     /adapter and /analysis read as a tensor or a scalar, found by listing
 *     the groups;
 *   - what `plot` reads of a run (plot_run_read).
 * Any status is fine; a crash, sanitizer report or hang is a bug. Leaks
 * are not checked input by input (tests/fuzz/store.options): libhdf5 keeps
 * memory from one input to the next, so libFuzzer's leak check (run when an
 * input allocated more than it freed) ran on every input, 4 times slower;
 * the replay in make check still reports leaks at exit.
 * Seeds (tests/fuzz/corpus/store/): a finished run of a tiny LoRA train, and
 * the same with the flipped byte in a global heap that made `info` spin
 * inside libhdf5 (issue 13, finding 3).
 *
 *     make fuzz FUZZ_SECONDS=60       # every harness; or one of them:
 *     build/fuzz/fuzz_store -max_total_time=60 build/fuzz/corpus/store tests/fuzz/corpus/store
 */
#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "core/status.h"
#include "results/plot_runs.h"
#include "results/report.h"
#include "results/run_adapters.h"
#include "results/store.h"
#include "tests/fuzz/fuzz_files.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_PARAMS ((size_t)1 << 20)
#define MAX_OBJECTS 512

static void read_curves(struct store *s)
{
    static const char *const curves[][2] = { { "train", "loss" }, { "train", "lr" },
                                              { "train", "grad_norm" }, { "eval", "accuracy" },
                                              { "eval", "loss" } };

    for (size_t i = 0; i < sizeof curves / sizeof curves[0]; i++) {
        int64_t *steps = NULL;
        double *values = NULL;
        size_t n = 0;

        if (store_read_curve(s, curves[i][0], curves[i][1], &steps, &values, &n) == RL_OK && n &&
            (!steps || !values))
            abort();
        free(steps);
        free(values);
    }
}

static void read_attrs(struct store *s)
{
    static const char *const strings[][2] = { { "/", "harness_version" }, { "/", "git_commit" },
                                              { "/method", "method" }, { "/method", "profile" },
                                              { "/data", "spec" }, { "/adapter", "method" } };
    static const char *const ints[][2] = { { "/method", "rank" }, { "/method", "n_trainable" },
                                           { "/data", "shots" }, { "/adapter", "r" } };

    for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++) {
        char *v = NULL;

        if (store_attr_get_string(s, strings[i][0], strings[i][1], &v) == RL_OK && !v)
            abort();
        free(v);
    }
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        int64_t v;
        uint64_t u;

        (void)store_attr_get_int64(s, ints[i][0], ints[i][1], &v);
        (void)store_attr_get_uint64(s, ints[i][0], ints[i][1], &u);
    }
    double d;
    (void)store_attr_get_double(s, "/data", "fraction", &d);
    (void)store_attr_get_double(s, "/method", "alpha", &d);
}

static void read_checkpoint(struct store *s)
{
    size_t n = store_n_trainable(s);
    struct store_checkpoint_info ci;
    struct rng r;

    if (n > MAX_PARAMS)
        return;
    float *p = malloc((n ? n : 1) * sizeof(float)), *m = malloc((n ? n : 1) * sizeof(float)),
          *v = malloc((n ? n : 1) * sizeof(float));
    if (p && m && v)
        (void)store_read_checkpoint(s, &ci, p, m, v, &r);
    free(p);
    free(m);
    free(v);
}

/* every dataset below `path` (depth first), as a tensor, then as scalars */
static void read_tree(struct store *s, const char *path, int depth, size_t *budget)
{
    char **names = NULL;
    size_t n = 0;

    if (depth > 4 || store_list(s, path, &names, &n) != RL_OK)
        return;
    for (size_t i = 0; i < n && *budget > 0; i++, (*budget)--) {
        char child[1024];
        float *t = NULL;
        size_t nd = 0, dims[STORE_MAX_DIMS];
        double d;
        int64_t v;

        int len = snprintf(child, sizeof child, "%s/%s", strcmp(path, "/") ? path : "", names[i]);
        if (len < 0 || (size_t)len >= sizeof child || !store_has(s, child))
            continue;
        if (store_read_tensor(s, child, &t, &nd, dims) == RL_OK && nd > STORE_MAX_DIMS)
            abort();
        free(t);
        (void)store_read_scalar(s, child, &d);
        (void)store_read_scalar_i64(s, child, &v);
        read_tree(s, child, depth + 1, budget);
    }
    store_free_names(names, n);
}

static void read_run(const char *path)
{
    struct store *s;
    struct run_plan *plan = NULL;
    struct run_adapters ra;
    struct store_final f;
    char *text = NULL;
    size_t rows[2], budget = MAX_OBJECTS;
    int completed;

    if (store_open(&s, path) != RL_OK)
        return;
    if (store_read_config(s, &text) == RL_OK && !text)
        abort();
    free(text);
    if (run_plan_read(s, &plan) == RL_OK)
        run_plans_free(plan, 1);
    memset(&ra, 0, sizeof ra);
    (void)run_adapters_load(&ra, s);
    run_adapters_free(&ra);
    (void)store_rows(s, &rows[0], &rows[1]);
    (void)store_read_final(s, &f, &completed);
    read_attrs(s);
    read_curves(s);
    read_checkpoint(s);
    int64_t *idx = NULL;
    size_t nidx;
    if (store_read_train_index(s, &idx, &nidx) == RL_OK && nidx && !idx)
        abort();
    free(idx);
    idx = NULL;
    if (store_read_val_index(s, &idx, &nidx) == RL_OK && nidx && !idx)
        abort();
    free(idx);
    const char *split;
    (void)store_read_eval_split(s, &split);
    struct report_run rr;
    memset(&rr, 0, sizeof rr);
    if (report_run_read(s, path, &rr) == RL_OK)
        report_run_free(&rr);
    read_tree(s, "/", 0, &budget);
    store_close(s);

    struct plot_run pr;
    memset(&pr, 0, sizeof pr);
    if (plot_run_read(path, &pr) == RL_OK)
        plot_run_free(&pr);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char path[64];
    char *argv[3] = { "info", path, NULL };

    if (!path[0]) {
        snprintf(path, sizeof path, "/tmp/fuzz_store_%ld.h5", (long)getpid());
        if (!freopen("/dev/null", "w", stdout))
            abort();
        /* no free lists in libhdf5: its freed blocks go back to malloc,
         * where ASan sees them */
        if (H5set_free_list_limits(0, 0, 0, 0, 0, 0) < 0)
            abort();
    }
    if (fuzz_write_file(path, data, size) != 0)
        abort();
    (void)cmd_info(2, argv);
    read_run(path);
    unlink(path);
    return 0;
}

#include "tests/fuzz/fuzz_replay.h"
