/*
 * check_plot.c: `randlora plot`'s grouping and figures on synthetic run
 * directories written with the store API (results/plot_runs.h,
 * results/plot_figs.h, results/plot.h):
 *   - runs at different learning rates are never averaged; seeds of one
 *     setting are (3 settings of 3 seeds, not one of 9);
 *   - the selected setting is the best mean validation accuracy, not the
 *     best test accuracy; --settings all draws every setting;
 *   - mean +- std numbers in the .tsv (accuracy points and loss bands);
 *   - chance, zero-shot and numerical-rank reference lines in the .gp;
 *   - the y range rule (plot_acc_yrange) and its use in the .gp;
 *   - every figure's four files from a synthetic directory.
 * RANDLORA_TEST_KEEP=1 keeps each test's directory (runs and figures).
 */
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/status.h"
#include "cli/commands.h"
#include "experiments/config.h"
#include "results/plot.h"
#include "results/plot_figs.h"
#include "results/plot_runs.h"
#include "results/store.h"
#include "suites.h"
#include "test_util.h"

#define CLASSES 10
#define SITE "vision_model.encoder.layers.0.self_attn.q_proj"

static char dir[256];

static struct run_plan *plan_for(const char *method, double lr, int shots, int seed)
{
    char ini[512];
    struct experiment e;
    struct run_plan *plans = NULL;
    size_t n = 0;

    snprintf(ini, sizeof ini,
             "[experiment]\nname = synth\n[method]\nmethods = %s\n%s[data]\nshots = %d\n"
             "[sweep]\nseeds = %d\n[train]\nsteps = 10\nlr = %g\nlr_min_ratio = 0.01\n",
             method, strcmp(method, "lora") ? "" : "rank = 4\n", shots, seed, lr);
    ck_assert_msg(experiment_parse(&e, ini, "synthetic.ini", NULL, 0) == RL_OK, "%s", rl_error_msg());
    ck_assert_msg(experiment_expand(&e, NULL, NULL, &plans, &n) == RL_OK, "%s", rl_error_msg());
    ck_assert_uint_eq(n, 1);
    experiment_free(&e);
    return plans;
}

/* a finished run: test accuracy acc, validation accuracy val (NaN: no
 * split), training loss 2 - 0.1 t + off at steps 1..10 */
struct synth {
    const char *method;
    double lr;
    int shots, seed;
    double acc, val, off;
    bool analysis;
    const char *tag;     /* file name suffix (a second file of one run) */
};

static void write_synth(const struct synth *y)
{
    struct run_plan *p = plan_for(y->method, y->lr, y->shots, y->seed);
    char *ini = run_plan_to_ini(p);
    size_t n_idx = (size_t)y->shots * CLASSES;
    int64_t *idx = xcalloc(n_idx, sizeof(int64_t)), vidx[1] = { 0 };
    bool has_val = isfinite(y->val);
    struct store_run_info info = {
        .harness_version = "test", .git_commit = "0", .threads = "1", .blas = "openblas", .config_text = ini,
        .method = p->method, .rank = (int64_t)p->adapter.r, .alpha = 1, .profile = p->profile,
        .n_trainable = !strcmp(y->method, "none") ? 0 : !strcmp(y->method, "full") ? 50000 : 1000,
        .data_spec = p->dataset, .shots = y->shots, .sampling_seed = 1, .train_index = idx,
        .n_train_index = n_idx, .val = has_val ? "1" : NULL, .val_spec = has_val ? p->dataset : NULL,
        .val_index = vidx, .n_val_index = has_val ? 1 : 0,
    };
    struct store *s;
    const char *path = test_path(dir, "%s-lr%g-s%d-seed%d%s.h5", y->method, y->lr, y->shots, y->seed,
                                 y->tag ? y->tag : "");

    ck_assert_msg(store_create(&s, path, &info) == RL_OK, "%s", rl_error_msg());
    for (int t = 1; t <= 10; t++) {
        struct store_train_row row = { t, 2.0 - 0.1 * t + y->off, y->lr, 1.0, 0.5 * t };
        ck_assert_int_eq(store_append_train(s, &row), RL_OK);
        if (t % 5 == 0)
            ck_assert_int_eq(store_append_eval(s, t, (has_val ? y->val : y->acc) * t / 10.0, 2.5 - 0.1 * t), RL_OK);
    }
    struct store_final f = { .accuracy = y->acc, .loss = 0.5, .peak_rss_bytes = (int64_t)(100 + y->seed) << 20,
                             .images_per_s = 50, .val_accuracy = y->val, .val_loss = 0.6, .has_val = has_val };
    ck_assert_int_eq(store_finish(s), RL_OK);
    ck_assert_int_eq(store_write_final(s, &f), RL_OK);
    if (y->analysis) {
        const float sv[3] = { 2.0f, 1.0f, 1e-9f };
        size_t d = 3;
        ck_assert_int_eq(store_write_tensor(s, "/analysis/" SITE "/singular_values", sv, 1, &d), RL_OK);
        ck_assert_int_eq(store_write_scalar_i64(s, "/analysis/" SITE "/rank", 2), RL_OK);
        ck_assert_int_eq(store_write_scalar(s, "/analysis/" SITE "/effective_rank", 1.8), RL_OK);
        ck_assert_int_eq(store_write_scalar(s, "/analysis/" SITE "/ref_cosine", 0.3), RL_OK);
        ck_assert_int_eq(store_write_scalar(s, "/analysis/" SITE "/ref_overlap_out", 0.5), RL_OK);
        ck_assert_int_eq(store_write_scalar(s, "/analysis/" SITE "/ref_overlap_in", 0.4), RL_OK);
        ck_assert_int_eq(store_attr_set_int64(s, "/analysis/" SITE, "d_out", 32), RL_OK);
        ck_assert_int_eq(store_attr_set_int64(s, "/analysis/" SITE, "d_in", 16), RL_OK);
        ck_assert_int_eq(store_write_scalar(s, "/analysis/cka/vision_layer_0", 0.9), RL_OK);
        ck_assert_int_eq(store_write_scalar(s, "/analysis/cka/vision_layer_1", 0.8), RL_OK);
        ck_assert_int_eq(store_write_scalar(s, "/analysis/cka/text_layer_0", 0.95), RL_OK);
        /* analysed against full fine-tuning at lr 1e-3, seed 1 (itself, for that run) */
        char ref[300];
        snprintf(ref, sizeof ref, "%s/full-lr0.001-s4-seed1.h5", dir);
        ck_assert_int_eq(store_attr_set_string(s, "/analysis", "reference", ref), RL_OK);
    }
    ck_assert_int_eq(store_commit(s), RL_OK);
    store_close(s);
    free(idx);
    free(ini);
    run_plans_free(p, 1);
}

/* full fine-tuning at three learning rates x three seeds: the best test
 * accuracy is at 1e-2, the best validation accuracy at 1e-3 */
static const double lrs[3] = { 1e-4, 1e-3, 1e-2 };
static const double test_base[3] = { 0.30, 0.40, 0.50 };
static const double val_base[3] = { 0.31, 0.45, 0.35 };

static void write_lr_sweep(bool val, bool analysis)
{
    for (int l = 0; l < 3; l++)
        for (int seed = 1; seed <= 3; seed++)
            write_synth(&(struct synth){ "full", lrs[l], 4, seed, test_base[l] + 0.01 * seed,
                                         val ? val_base[l] + 0.01 * seed : NAN, 0.1 * (seed - 1),
                                         analysis && seed == 1, NULL });
}

static char *slurp_file(const char *path)
{
    FILE *fp = fopen(path, "rb");
    char *buf = xcalloc(1 << 16, 1);

    ck_assert_msg(fp != NULL, "%s missing", path);
    size_t n = fread(buf, 1, (1 << 16) - 1, fp);
    buf[n] = '\0';
    fclose(fp);
    return buf;
}

/* plot dir (argv after "plot dir"), stdout and stderr to dir/out.txt */
static int plot(const char *opt1, const char *opt2)
{
    char *argv[5] = { "plot", dir, (char *)opt1, (char *)opt2, NULL };
    int argc = opt1 ? (opt2 ? 4 : 3) : 2;
    int fd = open(test_path(dir, "out.txt"), O_WRONLY | O_CREAT | O_TRUNC, 0600), so = dup(1), se = dup(2);

    fflush(stdout);
    fflush(stderr);
    dup2(fd, 1);
    dup2(fd, 2);
    int rc = cmd_plot(argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(so, 1);
    dup2(se, 2);
    close(so);
    close(se);
    close(fd);
    return rc;
}

/* the first data row after the line holding `block` in a .tsv whose
 * first column is x; fills mean, std, n */
static bool tsv_row(const char *tsv, const char *block, double x, double *mean, double *std, int *n)
{
    const char *p = strstr(tsv, block);

    while (p && (p = strchr(p, '\n')) != NULL && *++p && *p != '#' && *p != '\n') {
        double x0;
        if (sscanf(p, "%lf\t%lf\t%lf\t%d", &x0, mean, std, n) == 4 && fabs(x0 - x) <= 1e-12 * fabs(x))
            return true;
    }
    return false;
}

static void setup(void)
{
    ck_assert_ptr_nonnull(test_tmpdir_make(dir, sizeof dir, "plot"));
}

/* RANDLORA_TEST_KEEP=1 keeps each test's run directory and figures */
static void teardown(void)
{
    const char *keep = getenv("RANDLORA_TEST_KEEP");

    if (keep && *keep && strcmp(keep, "0"))
        printf("check_plot: kept %s\n", dir);
    else
        test_tmpdir_remove(dir);
}

START_TEST(test_grouping_never_merges_lrs)
{
    write_lr_sweep(true, false);
    struct plot_set set = { 0 };
    set.runs = xcalloc(9, sizeof(*set.runs));
    for (int l = 0; l < 3; l++)
        for (int seed = 1; seed <= 3; seed++) {
            const char *path = test_path(dir, "full-lr%g-s4-seed%d.h5", lrs[l], seed);
            ck_assert_msg(plot_run_read(path, &set.runs[set.n_runs++]) == RL_OK, "%s", rl_error_msg());
        }
    plot_set_group(&set);
    ck_assert_uint_eq(set.n_settings, 3);
    size_t n_selected = 0;
    for (size_t i = 0; i < 3; i++) {
        const struct plot_setting *st = &set.settings[i];
        ck_assert_uint_eq(st->n, 3);            /* the three seeds, merged */
        ck_assert_uint_eq(st->n_done, 3);
        double lr = set.runs[st->runs[0]].lr;
        for (size_t k = 1; k < 3; k++)
            ck_assert(set.runs[st->runs[k]].lr == lr);      /* one lr each */
        size_t l = lr < 5e-4 ? 0 : lr < 5e-3 ? 1 : 2;
        ck_assert_double_eq_tol(st->acc_mean, test_base[l] + 0.02, 1e-12);
        ck_assert_double_eq_tol(st->acc_std, 0.01, 1e-12);
        ck_assert_ptr_nonnull(strstr(st->label, "lr="));
        if (st->selected) {
            n_selected++;
            ck_assert_uint_eq(l, 1);            /* best validation, not best test */
        }
    }
    ck_assert_uint_eq(n_selected, 1);
    plot_set_free(&set);

    /* the figures: acc_params draws the selected setting, n = 3 */
    ck_assert_int_eq(plot(NULL, NULL), 0);
    char *txt = slurp_file(test_path(dir, "out.txt"));
    ck_assert_msg(strstr(txt, "9 runs, 3 settings") &&
                      strstr(txt, "selected lr=0.001 (mean val accuracy 0.4700 over 3 seeds)"),
                  "%s", txt);
    free(txt);
    char *tsv = slurp_file(test_path(dir, "figures/acc_params.tsv"));
    double m, sd;
    int n;
    ck_assert_msg(tsv_row(tsv, "# index 0: full", 50000, &m, &sd, &n), "%s", tsv);
    ck_assert_double_eq_tol(m, 0.42, 1e-9);
    ck_assert_double_eq_tol(sd, 0.01, 1e-9);
    ck_assert_int_eq(n, 3);
    ck_assert_ptr_null(strstr(tsv, "# index 1"));
    ck_assert_msg(strstr(tsv, "selected setting"), "%s", tsv);
    free(tsv);
    char *gp = slurp_file(test_path(dir, "figures/acc_params.gp"));
    ck_assert_msg(strstr(gp, "4 shots' . \"\\n\" . 'selected setting per method"), "%s", gp);
    free(gp);
    /* acc_lr: every learning rate its own point, validation and test */
    tsv = slurp_file(test_path(dir, "figures/acc_lr.tsv"));
    for (int l = 0; l < 3; l++) {
        ck_assert_msg(tsv_row(tsv, "full (test)", lrs[l], &m, &sd, &n), "%s", tsv);
        ck_assert_double_eq_tol(m, test_base[l] + 0.02, 1e-9);
        ck_assert_int_eq(n, 3);
        ck_assert_msg(tsv_row(tsv, "full (validation)", lrs[l], &m, &sd, &n), "%s", tsv);
        ck_assert_double_eq_tol(m, val_base[l] + 0.02, 1e-9);
    }
    free(tsv);

    /* --settings all: three series, one per learning rate */
    ck_assert_int_eq(plot("--settings", "all"), 0);
    tsv = slurp_file(test_path(dir, "figures/acc_params.tsv"));
    ck_assert_msg(strstr(tsv, "full lr=0.0001") && strstr(tsv, "full lr=0.001\n") && strstr(tsv, "full lr=0.01"),
                  "%s", tsv);
    ck_assert_msg(tsv_row(tsv, "full lr=0.01", 50000, &m, &sd, &n) && n == 3, "%s", tsv);
    free(tsv);
    ck_assert_int_eq(plot("--settings", "best"), 2);
}
END_TEST

/* without validation accuracy, several settings are all drawn, named; a
 * seed present twice in one setting is named */
START_TEST(test_no_validation_draws_every_setting)
{
    write_lr_sweep(false, false);
    ck_assert_int_eq(plot(NULL, NULL), 0);
    char *txt = slurp_file(test_path(dir, "out.txt"));
    ck_assert_msg(strstr(txt, "no validation accuracy to select by") && !strstr(txt, "the same seed"), "%s", txt);
    free(txt);
    write_synth(&(struct synth){ "full", 1e-2, 4, 2, 0.5, NAN, 0, false, "-again" });
    ck_assert_int_eq(plot(NULL, NULL), 0);
    txt = slurp_file(test_path(dir, "out.txt"));
    ck_assert_msg(strstr(txt, "full-lr0.01-s4-seed2-again.h5 and ") &&
                      strstr(txt, "full-lr0.01-s4-seed2.h5: one setting, the same seed 2: both averaged"),
                  "%s", txt);
    free(txt);
    char *tsv = slurp_file(test_path(dir, "figures/acc_params.tsv"));
    double m, sd;
    int n;
    ck_assert_msg(tsv_row(tsv, "full lr=0.0001", 50000, &m, &sd, &n) && n == 3, "%s", tsv);
    ck_assert_double_eq_tol(m, 0.32, 1e-9);
    ck_assert_msg(strstr(tsv, "every setting"), "%s", tsv);
    free(tsv);
}
END_TEST

/* loss bands: mean and std over seeds at each step */
START_TEST(test_band_numbers)
{
    write_lr_sweep(true, false);
    ck_assert_int_eq(plot(NULL, NULL), 0);
    char *tsv = slurp_file(test_path(dir, "figures/curves_loss.tsv"));
    double m, sd;
    int n;
    /* step 4: 2 - 0.4 + {0, 0.1, 0.2}: mean 1.7, std 0.1 */
    ck_assert_msg(tsv_row(tsv, "full (train)", 4, &m, &sd, &n), "%s", tsv);
    ck_assert_double_eq_tol(m, 1.7, 1e-9);
    ck_assert_double_eq_tol(sd, 0.1, 1e-9);
    ck_assert_int_eq(n, 3);
    ck_assert_msg(tsv_row(tsv, "full (validation)", 10, &m, &sd, &n) && n == 3, "%s", tsv);
    ck_assert_double_eq_tol(m, 1.5, 1e-9);
    ck_assert_double_eq_tol(sd, 0.0, 1e-12);
    free(tsv);
    char *gp = slurp_file(test_path(dir, "figures/curves_loss.gp"));
    ck_assert_msg(strstr(gp, "filledcurves") && strstr(gp, "title 'train'") && strstr(gp, "title 'validation'"),
                  "%s", gp);
    /* losses from 1.0 to 2.4: less than 4x, a linear axis */
    ck_assert_msg(!strstr(gp, "set logscale y"), "%s", gp);
    free(gp);
    /* the validation accuracy curve at step 10: 0.45 + 0.01 seed */
    tsv = slurp_file(test_path(dir, "figures/curves_acc.tsv"));
    ck_assert_msg(tsv_row(tsv, "# index 0: full", 10, &m, &sd, &n), "%s", tsv);
    ck_assert_double_eq_tol(m, 0.47, 1e-9);
    ck_assert_double_eq_tol(sd, 0.01, 1e-9);
    free(tsv);
}
END_TEST

START_TEST(test_reference_lines)
{
    write_lr_sweep(true, true);
    write_synth(&(struct synth){ "none", 1e-3, 4, 1, 0.15, 0.16, 0, false, NULL });
    write_synth(&(struct synth){ "lora", 1e-3, 4, 1, 0.3, 0.3, 0, true, NULL });
    ck_assert_int_eq(plot(NULL, NULL), 0);
    static const char *const acc_figs[] = { "acc_params", "acc_shots", "acc_lr", "acc_memory", "acc_time",
                                            "curves_acc" };
    for (size_t i = 0; i < sizeof acc_figs / sizeof acc_figs[0]; i++) {
        char *gp = slurp_file(test_path(dir, "figures/%s.gp", acc_figs[i]));
        ck_assert_msg(strstr(gp, "set label 1 'chance 0.1'") && strstr(gp, "set arrow 1 from graph 0, first 0.1 ") &&
                          strstr(gp, "set label 2 'zero-shot (none) 0.15'") &&
                          strstr(gp, "set arrow 2 from graph 0, first 0.15 "),
                      "%s: %s", acc_figs[i], gp);
        /* chance 0.1, the selected 0.42 +- 0.01: [0.05, 0.45] by the rule */
        if (i == 0)
            ck_assert_msg(strstr(gp, "set yrange [0.05:0.45]"), "%s", gp);
        free(gp);
        char *tsv = slurp_file(test_path(dir, "figures/%s.tsv", acc_figs[i]));
        ck_assert_msg(strstr(tsv, "# reference line: chance = 0.1\n"), "%s", tsv);
        free(tsv);
    }
    /* the spectrum: max(32, 16) * FLT_EPSILON */
    char *gp = slurp_file(test_path(dir, "figures/spectrum.gp"));
    char want[96];
    snprintf(want, sizeof want, "first %.10g to graph 1", 32 * 1.1920928955078125e-07);
    ck_assert_msg(strstr(gp, "'numerical-rank threshold") && strstr(gp, want), "%s", gp);
    free(gp);
    /* the similarity figures: orthogonal updates at 0 */
    gp = slurp_file(test_path(dir, "figures/ref_cosine.gp"));
    ck_assert_msg(strstr(gp, "'orthogonal updates 0'"), "%s", gp);
    free(gp);
}
END_TEST

START_TEST(test_every_figure_written)
{
    write_lr_sweep(true, true);
    for (int seed = 1; seed <= 2; seed++)
        for (int shots = 1; shots <= 4; shots *= 4)
            write_synth(&(struct synth){ "lora", 1e-3, shots, seed, 0.3 + 0.01 * shots, 0.3, 0.05 * seed, seed == 1, NULL });
    ck_assert_int_eq(plot(NULL, NULL), 0);
    static const char *const figs[] = { "acc_params", "acc_params_s1", "acc_shots", "acc_lr", "acc_memory",
                                        "acc_time", "loss", "curves_acc", "curves_acc_s1", "curves_loss",
                                        "loss_shots", "spectrum", "rank", "effective_rank", "cka", "ref_cosine",
                                        "ref_overlap" };
    static const char *const ext[] = { "tsv", "gp", "png", "svg" };
    bool rendered = access(test_path(dir, "figures/loss.png"), F_OK) == 0;
    for (size_t i = 0; i < sizeof figs / sizeof figs[0]; i++)
        for (size_t e = 0; e < (rendered ? 4u : 2u); e++) {
            FILE *fp = fopen(test_path(dir, "figures/%s.%s", figs[i], ext[e]), "rb");
            ck_assert_msg(fp != NULL, "%s.%s missing", figs[i], ext[e]);
            ck_assert(fgetc(fp) != EOF);
            fclose(fp);
        }
    /* loss_shots tells the shots apart by line style, with its key */
    char *gp = slurp_file(test_path(dir, "figures/loss_shots.gp"));
    ck_assert_msg(strstr(gp, "title '1 shot'") && strstr(gp, "title '4 shots'"), "%s", gp);
    free(gp);
    /* cka: vision and text layers, y from 0 to 1; the reference run itself
     * (full, analysed against itself) is not a result and is left out */
    char *tsv = slurp_file(test_path(dir, "figures/cka.tsv"));
    ck_assert_msg(strstr(tsv, "lora r4 (vision)") && strstr(tsv, "lora r4 (text)") && strstr(tsv, "\n2\t0.95\t") &&
                      !strstr(tsv, ": full ("),
                  "%s", tsv);
    free(tsv);
    tsv = slurp_file(test_path(dir, "figures/ref_cosine.tsv"));
    ck_assert_msg(strstr(tsv, "lora r4") && !strstr(tsv, "# index 1"), "%s", tsv);
    free(tsv);
    gp = slurp_file(test_path(dir, "figures/cka.gp"));
    ck_assert_msg(strstr(gp, "'reference: ") && strstr(gp, "full-lr0.001-s4-seed1.h5'"), "%s", gp);
    free(gp);
}
END_TEST

/* the documented y range rule */
START_TEST(test_acc_yrange_rule)
{
    double lo, hi;

    plot_acc_yrange(0.30, 0.46, 0.1, &lo, &hi);         /* from chance */
    ck_assert_double_eq_tol(lo, 0.05, 1e-12);
    ck_assert_double_eq_tol(hi, 0.5, 1e-12);
    plot_acc_yrange(0.90, 0.91, NAN, &lo, &hi);         /* chance unknown: from 0 */
    ck_assert_double_eq_tol(lo, 0.0, 1e-12);
    ck_assert_double_eq_tol(hi, 0.95, 1e-12);
    plot_acc_yrange(0.50, 0.52, 0.5, &lo, &hi);         /* two classes: widened up */
    ck_assert_double_eq_tol(lo, 0.45, 1e-12);
    ck_assert_double_eq_tol(hi, 0.65, 1e-12);
    ck_assert(hi - lo >= PLOT_ACC_MIN_SPAN - 1e-12);
    plot_acc_yrange(0.95, 0.99, 0.9, &lo, &hi);         /* at the top: widened down */
    ck_assert_double_eq_tol(lo, 0.8, 1e-12);
    ck_assert_double_eq_tol(hi, 1.0, 1e-12);
    plot_acc_yrange(0.02, 0.05, 0.1, &lo, &hi);         /* below chance: data kept */
    ck_assert_double_eq_tol(lo, 0.0, 1e-12);
    ck_assert_double_eq_tol(hi, 0.2, 1e-12);
}
END_TEST

Suite *suite_plot(void)
{
    Suite *s = suite_create("plot");
    TCase *tc = tcase_create("figures");

    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_grouping_never_merges_lrs);
    tcase_add_test(tc, test_no_validation_draws_every_setting);
    tcase_add_test(tc, test_band_numbers);
    tcase_add_test(tc, test_reference_lines);
    tcase_add_test(tc, test_every_figure_written);
    tcase_add_test(tc, test_acc_yrange_rule);
    suite_add_tcase(s, tc);
    return s;
}
