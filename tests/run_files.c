/*
 * run_files.c: tiny synthetic run files (run_files.h).
 */
#include "run_files.h"

#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/status.h"
#include "experiments/config.h"
#include "results/store.h"

const char run_files_base[] =
    "[experiment]\nname = rf\n"
    "[data]\ndataset = shapes-count\nshots = 4\n"
    "[method]\nmethods = lora\nrank = 4\n"
    "[train]\nsteps = 10\nlr = 1e-3\n"
    "[sweep]\nseeds = 1\n";

const char *run_file_write(const char *dir, const struct run_file_spec *spec)
{
    static char path[512];
    struct experiment e;
    struct run_plan *p;
    size_t n;
    struct store *s;
    int64_t idx[1] = { 0 };
    char *ini;

    ck_assert_int_eq(experiment_parse(&e, run_files_base, "run_files", spec->overrides,
                                      spec->n_overrides), RL_OK);
    ck_assert_int_eq(experiment_expand(&e, NULL, NULL, &p, &n), RL_OK);
    ck_assert_uint_eq(n, 1);
    ini = run_plan_to_ini(&p[0]);
    struct store_run_info in = {
        .config_text = ini, .method = p[0].method, .rank = (int64_t)p[0].adapter.r,
        .n_trainable = spec->n_trainable, .data_spec = p[0].dataset,
        .shots = (int64_t)p[0].shots, .fraction = p[0].shots ? 0.0 : p[0].fraction,
        .sampling_seed = p[0].sample_seed, .train_index = idx, .n_train_index = 1,
    };
    if (spec->name)
        snprintf(path, sizeof(path), "%s/%s", dir, spec->name);
    else
        snprintf(path, sizeof(path), "%s/%s.h5", dir, p[0].id);
    ck_assert_int_eq(store_create(&s, path, &in), RL_OK);
    if (spec->complete) {
        struct store_final f = {
            .accuracy = spec->test_accuracy, .loss = 1.0, .peak_rss_bytes = 1 << 20,
            .images_per_s = 100.0, .val_accuracy = spec->val_accuracy,
            .val_loss = spec->val_loss, .has_val = spec->has_val,
        };
        ck_assert_int_eq(store_finish(s), RL_OK);
        ck_assert_int_eq(store_write_final(s, &f), RL_OK);
        ck_assert_int_eq(store_commit(s), RL_OK);
    }
    store_close(s);
    free(ini);
    run_plans_free(p, n);
    experiment_free(&e);
    return path;
}

int run_files_cmd_captured(int (*cmd)(int, char **), int argc, const char **argv,
                     const char *out_path, const char *err_path)
{
    int saved_out, saved_err, fo, fe, rc;

    fflush(stdout);
    fflush(stderr);
    saved_out = dup(1);
    saved_err = dup(2);
    fo = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    fe = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ck_assert(fo >= 0 && fe >= 0 && saved_out >= 0 && saved_err >= 0);
    dup2(fo, 1);
    dup2(fe, 2);
    close(fo);
    close(fe);
    rc = cmd(argc, (char **)argv);
    fflush(stdout);
    fflush(stderr);
    dup2(saved_out, 1);
    dup2(saved_err, 2);
    close(saved_out);
    close(saved_err);
    return rc;
}

char *run_files_slurp(const char *path)
{
    FILE *fp = fopen(path, "rb");
    char *buf;
    long n;

    if (!fp)
        return NULL;
    fseek(fp, 0, SEEK_END);
    n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, fp) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    if (buf)
        buf[n] = '\0';
    fclose(fp);
    return buf;
}
