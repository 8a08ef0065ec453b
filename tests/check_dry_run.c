/*
 * check_dry_run.c: `randlora sweep --dry-run` and `randlora train --dry-run`
 * (experiments/plan_list.h) on a Hugging Face model directory that holds
 * only config.json (tests/fixtures/clip_tiny's: no weights, no tokenizer),
 * and the refusals at expansion as the commands report them (exit 2, one
 * line, nothing created).
 *
 *   listing        the columns: id, method, rank, lr, steps (epochs resolved
 *                  over the sampled training set), effective batch,
 *                  trainable count (from config.json's shapes), state
 *   train          train --dry-run lists every run, or the one --run names
 *   data           a train, eval or val spec that cannot be opened, classes
 *                  that differ, too few items for the validation split or the
 *                  shots: exit 2 naming them
 *   refusals       layers selecting nothing, VeRA at a budget of 1e11, a run
 *                  id over the limit, ';' values, non-UTF-8 overrides, eps 0:
 *                  exit 2 from sweep and train, with and without --dry-run
 *   no_config      a model directory without config.json: exit 2
 */
#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/commands.h"
#include "core/status.h"
#include "datasets/dataset.h"
#include "runner_harness.h"
#include "suites.h"
#include "test_util.h"

struct dry {
    char dir[256];
    char ini[512], out[512], model[512];
};

/* DIR/model/config.json (only), DIR/exp.ini of lora, full and none on
 * shapes-count, 2 shots, lr an axis; output DIR/out */
static void dry_setup(struct dry *d)
{
    char cmd[1200];
    FILE *fp;

    ck_assert_ptr_nonnull(test_tmpdir_make(d->dir, sizeof(d->dir), "dry"));
    snprintf(d->model, sizeof(d->model), "%s/model", d->dir);
    snprintf(d->ini, sizeof(d->ini), "%s/exp.ini", d->dir);
    snprintf(d->out, sizeof(d->out), "%s/out", d->dir);
    ck_assert_int_eq(mkdir(d->model, 0755), 0);
    snprintf(cmd, sizeof(cmd), "cp '%s' '%s/config.json'", fixture_path("clip_tiny/config.json"),
             d->model);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_ptr_nonnull(fp = fopen(d->ini, "w"));
    fprintf(fp,
            "[experiment]\nname = drytest\noutput = %s\n"
            "[model]\nname = %s\n"
            "[data]\ndataset = shapes-count\neval = shapes-count:test\nshots = 2\n"
            "[method]\nmethods = lora, full, none\nrank = 4\nmodules = q_proj, v_proj\n"
            "[train]\nsteps = 50\nbatch = 8\nlr = 1e-3, 3e-3\nepochs.full = 2\n"
            "accumulate.full = 4\n", d->out, d->model);
    fclose(fp);
}

/* `randlora CMD -c DIR/exp.ini ARGS...`: exit status and what it printed
 * (stdout and stderr together; a listing prints no error, a refusal no
 * listing) */
static int dry_cmd(const struct dry *d, cmd_fn cmd, const char *name, const char *const *args,
                   size_t n_args, char **text)
{
    const char *argv[24] = { name, "-c", d->ini };
    size_t argc = 3;

    ck_assert(n_args + 3 < sizeof(argv) / sizeof(argv[0]));
    for (size_t i = 0; i < n_args; i++)
        argv[argc++] = args[i];
    return run_cmd_captured(cmd, (int)argc, (char **)argv, text);
}

/* the line of the listing that starts with id (after the indent) */
static const char *line_of(const char *text, const char *id)
{
    char key[128];

    snprintf(key, sizeof(key), "\n  %s ", id);
    return strstr(text, key);
}

/* the line's whitespace-separated fields, from its start */
static int fields(const char *line, char f[][32], int max)
{
    int n = 0;

    while (*line == '\n' || *line == ' ')
        line++;
    while (*line && *line != '\n' && n < max) {
        int k = 0;

        while (*line && *line != ' ' && *line != '\n' && k < 31)
            f[n][k++] = *line++;
        f[n++][k] = '\0';
        while (*line == ' ')
            line++;
    }
    return n;
}

START_TEST(test_dry_listing)
{
    struct dry d;
    struct dataset ds;
    char *out, f[16][32], steps[32];
    const char *args[] = { "--dry-run" };
    size_t n_train, per_epoch;
    int n;

    dry_setup(&d);
    ck_assert_int_eq(dry_cmd(&d, cmd_sweep, "sweep", args, 1, &out), 0);
    ck_assert(strncmp(out, "sweep drytest: 5 runs -> ", 25) == 0);
    ck_assert_ptr_null(strstr(out, "randlora sweep:"));
    n = fields(strstr(out, "\n  id "), f, 16);
    ck_assert_int_eq(n, 8);
    ck_assert_str_eq(f[0], "id");
    ck_assert_str_eq(f[3], "lr");
    ck_assert_str_eq(f[4], "steps");
    ck_assert_str_eq(f[5], "batch");
    ck_assert_str_eq(f[6], "trainable");
    ck_assert_str_eq(f[7], "state");
    /* lora r=4 on q_proj and v_proj of 2 vision layers (32 wide) and 2 text
     * layers (24 wide): r (d_in + d_out) each = 4 (2 2 64 + 2 2 48) */
    ck_assert_ptr_nonnull(line_of(out, "lora-r4-s2-lr1e-3-seed1"));
    n = fields(line_of(out, "lora-r4-s2-lr3e-3-seed1"), f, 16);
    ck_assert_int_eq(n, 9);
    ck_assert_str_eq(f[1], "lora");
    ck_assert_str_eq(f[2], "r=4");
    ck_assert_str_eq(f[3], "0.003");
    ck_assert_str_eq(f[4], "50");
    ck_assert_str_eq(f[5], "8");
    ck_assert_str_eq(f[6], "1792");
    ck_assert_str_eq(f[7], "to");
    ck_assert_str_eq(f[8], "run");
    /* full: 2 epochs over 2 shots x the classes, at 8 x 4 = 32 per step, at
     * least min_epoch_steps (10) per epoch */
    ck_assert_int_eq(dataset_open(&ds, "shapes-count"), RL_OK);
    n_train = 2 * (size_t)ds.n_classes;
    dataset_close(&ds);
    per_epoch = (n_train + 31) / 32 < 10 ? 10 : (n_train + 31) / 32;
    snprintf(steps, sizeof(steps), "%zu", 2 * per_epoch);
    n = fields(line_of(out, "full-s2-lr1e-3-seed1"), f, 16);
    ck_assert_int_eq(n, 13);
    ck_assert_str_eq(f[2], "-");
    ck_assert_str_eq(f[3], "0.001");
    ck_assert_str_eq(f[4], steps);
    ck_assert_str_eq(f[5], "(2");
    ck_assert_str_eq(f[6], "ep)");
    ck_assert_str_eq(f[7], "32");
    ck_assert_str_eq(f[8], "=");
    ck_assert_str_eq(f[9], "8x4");
    ck_assert_uint_gt(strtoull(f[10], NULL, 10), 1792);
    /* none: evaluated only */
    n = fields(line_of(out, "none-s2-seed1"), f, 16);
    ck_assert_int_eq(n, 9);
    ck_assert_str_eq(f[3], "-");
    ck_assert_str_eq(f[4], "0");
    ck_assert_str_eq(f[5], "-");
    ck_assert_str_eq(f[6], "0");
    /* nothing was created, and no weights were needed */
    ck_assert_int_ne(access(d.out, F_OK), 0);
    ck_assert_int_ne(access(test_path(d.model, "model.safetensors"), F_OK), 0);
    free(out);
    test_tmpdir_remove(d.dir);
}
END_TEST

START_TEST(test_dry_train)
{
    struct dry d;
    char *out;

    dry_setup(&d);
    {
        const char *args[] = { "--dry-run" };

        ck_assert_int_eq(dry_cmd(&d, cmd_train, "train", args, 1, &out), 0);
        ck_assert(strncmp(out, "train ", 6) == 0);
        ck_assert_ptr_nonnull(strstr(out, "5 runs (dry run: nothing trained)\n"));
        ck_assert_ptr_nonnull(line_of(out, "lora-r4-s2-lr1e-3-seed1"));
        ck_assert_ptr_nonnull(line_of(out, "none-s2-seed1"));
        ck_assert_ptr_null(strstr(out, "state"));
        free(out);
    }
    {
        const char *args[] = { "--dry-run", "--run", "full-s2-lr3e-3-seed1" };

        ck_assert_int_eq(dry_cmd(&d, cmd_train, "train", args, 3, &out), 0);
        ck_assert_ptr_nonnull(strstr(out, ": 1 run (dry run: nothing trained)\n"));
        ck_assert_ptr_nonnull(line_of(out, "full-s2-lr3e-3-seed1"));
        ck_assert_ptr_null(line_of(out, "full-s2-lr1e-3-seed1"));
        free(out);
    }
    {
        const char *args[] = { "--dry-run", "--run", "nope" };

        ck_assert_int_eq(dry_cmd(&d, cmd_train, "train", args, 3, &out), 2);
        ck_assert_ptr_nonnull(strstr(out, "no run 'nope'"));
        free(out);
    }
    ck_assert_int_ne(access(d.out, F_OK), 0);
    test_tmpdir_remove(d.dir);
}
END_TEST

/* `NAME -c FILE -s OV [-s OV2] [--dry-run]`: exit 2, one line on stderr
 * containing want, nothing created */
static void expect_refusal2(const struct dry *d, cmd_fn cmd, const char *name,
                            const char *ov, const char *ov2, bool dry_run, const char *want)
{
    const char *args[5] = { "-s", ov };
    size_t n = 2;
    char *err;

    if (ov2) {
        args[n++] = "-s";
        args[n++] = ov2;
    }
    if (dry_run)
        args[n++] = "--dry-run";
    ck_assert_int_eq(dry_cmd(d, cmd, name, args, n, &err), 2);
    if (!strstr(err, want))
        ck_abort_msg("%s -s '%s': stderr '%s' does not hold '%s'", name, ov, err, want);
    /* one line */
    ck_assert(strchr(err, '\n') == err + strlen(err) - 1);
    free(err);
    ck_assert_int_ne(access(d->out, F_OK), 0);
}

static void expect_dry_refusal(const struct dry *d, cmd_fn cmd, const char *name,
                               const char *ov, bool dry_run, const char *want)
{
    expect_refusal2(d, cmd, name, ov, NULL, dry_run, want);
}

START_TEST(test_dry_data)
{
    struct dry d;

    dry_setup(&d);
    expect_dry_refusal(&d, cmd_sweep, "sweep", "data.dataset=folder:/nonexistent/x", true,
                       "randlora sweep: run lora-r4-s2-lr1e-3-seed1: data.dataset = "
                       "'folder:/nonexistent/x' cannot be opened: ");
    expect_dry_refusal(&d, cmd_sweep, "sweep", "data.eval=folder:/nonexistent/y:test", true,
                       "randlora sweep: run lora-r4-s2-lr1e-3-seed1: data.eval = "
                       "'folder:/nonexistent/y:test' cannot be opened: ");
    expect_dry_refusal(&d, cmd_train, "train", "data.eval=folder:/nonexistent/y:test", true,
                       "randlora train: run lora-r4-s2-lr1e-3-seed1: data.eval = "
                       "'folder:/nonexistent/y:test' cannot be opened: ");
    expect_dry_refusal(&d, cmd_sweep, "sweep", "data.val=folder:/nonexistent/v", true,
                       "randlora sweep: run lora-r4-s2-lr1e-3-seed1: data.val = "
                       "'folder:/nonexistent/v' cannot be opened: ");
    expect_dry_refusal(&d, cmd_sweep, "sweep", "data.val=1000000", true,
                       "randlora sweep: run lora-r4-s2-lr1e-3-seed1: data.dataset = "
                       "'shapes-count': ");
    expect_dry_refusal(&d, cmd_sweep, "sweep", "data.eval=shapes:test", true,
                       "randlora sweep: run lora-r4-s2-lr1e-3-seed1: data.dataset = "
                       "'shapes-count' has ");
    expect_dry_refusal(&d, cmd_sweep, "sweep", "data.shots=1000000", true,
                       "randlora sweep: run lora-r4-s1000000-lr1e-3-seed1: data.dataset = "
                       "'shapes-count': ");
    test_tmpdir_remove(d.dir);
}
END_TEST

START_TEST(test_dry_refusals)
{
    struct dry d;
    static const struct {
        const char *ov, *want, *ov2;
    } cases[] = {
        { "method.layers=99", ": lora: method.towers, method.layers and method.modules "
          "(vision:99:q_proj,v_proj;text:99:q_proj,v_proj) select no layer of model ", NULL },
        { "data.dataset=folder:/d/abcdefghijklmnopqrstuvwxyz0123456789ABCDEF, shapes-count",
          "is 66 characters, over the limit of 64 (run.id)",
          "data.eval=shapes-count:test, shapes-count:test" },
        { "experiment.description=;x", "-s: experiment.description = ';x': a value cannot "
          "start with ';'", NULL },
        { "data.prompt=a \xff {}", "-s: an override is not valid UTF-8 (byte 0xff at offset "
          "14)", NULL },
        { "train.eps=0", "-s: train.eps = '0': expected a number in [1e-30, 1]", NULL },
        { "train.eps=1e-300", "-s: train.eps = '1e-300': expected a number in [1e-30, 1]", NULL },
    };

    dry_setup(&d);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        for (int dry = 0; dry < 2; dry++) {
            expect_refusal2(&d, cmd_sweep, "sweep", cases[i].ov, cases[i].ov2, dry,
                            cases[i].want);
            expect_refusal2(&d, cmd_train, "train", cases[i].ov, cases[i].ov2, dry,
                            cases[i].want);
        }
    }
    /* VeRA at a budget of 1e11: refused by the rank limit at expansion (the
     * run would allocate terabytes of shared bases); the file's method.rank
     * would clash with method.budget, so it is written without one */
    {
        FILE *fp = fopen(d.ini, "w");

        ck_assert_ptr_nonnull(fp);
        fprintf(fp, "[experiment]\nname = drytest\noutput = %s\n[model]\nname = %s\n"
                "[data]\ndataset = shapes-count\nshots = 2\n[method]\nmethods = vera\n", d.out,
                d.model);
        fclose(fp);
        for (int dry = 0; dry < 2; dry++) {
            const char *want = "vera at method.budget = 100000000000: the matched rank "
                               "1073741824 is over the limit of 1000000 (run.rank); give a "
                               "smaller budget";

            expect_dry_refusal(&d, cmd_sweep, "sweep", "method.budget=100000000000", dry, want);
            expect_dry_refusal(&d, cmd_train, "train", "method.budget=100000000000", dry, want);
        }
    }
    ck_assert_int_ne(access(d.out, F_OK), 0);
    test_tmpdir_remove(d.dir);
}
END_TEST

START_TEST(test_dry_no_config)
{
    struct dry d;
    const char *args[] = { "--dry-run" };
    char *err;

    dry_setup(&d);
    ck_assert_int_eq(unlink(test_path(d.model, "config.json")), 0);
    ck_assert_int_eq(dry_cmd(&d, cmd_sweep, "sweep", args, 1, &err), 2);
    ck_assert_ptr_nonnull(strstr(err, "config.json"));
    free(err);
    test_tmpdir_remove(d.dir);
}
END_TEST

Suite *suite_dry_run(void)
{
    Suite *s = suite_create("dry_run");
    TCase *tc = tcase_create("dry_run");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_dry_listing);
    tcase_add_test(tc, test_dry_train);
    tcase_add_test(tc, test_dry_data);
    tcase_add_test(tc, test_dry_refusals);
    tcase_add_test(tc, test_dry_no_config);
    suite_add_tcase(s, tc);
    return s;
}
