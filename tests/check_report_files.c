/*
 * check_report_files.c: `randlora report` end to end on real (tiny,
 * untrained) run files: the setting best on validation is reported although
 * another is better on test, every --format, the grid comparison (-c) names
 * a file whose stored plan differs and counts grid runs without a file as
 * missing, old files without validation metrics are not selected on test,
 * and bad arguments exit 2.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "run_files.h"
#include "suites.h"
#include "test_util.h"

struct fx {
    char dir[128];
    char runs[192];
};

/* lora at lr 1e-3 (best on validation) and 3e-3 (best on test), and none,
 * 3 seeds each; has_val false: files as written before the validation split */
static void fx_setup(struct fx *f, bool has_val)
{
    char cmd[256];

    ck_assert_ptr_nonnull(test_tmpdir_make(f->dir, sizeof(f->dir), "report"));
    snprintf(f->runs, sizeof(f->runs), "%s/runs", f->dir);
    snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", f->runs);
    ck_assert_int_eq(system(cmd), 0);
    for (int seed = 1; seed <= 3; seed++) {
        char o_seed[32], name[64];
        const char *lo[] = { o_seed, "train.lr=1e-3" };
        const char *hi[] = { o_seed, "train.lr=3e-3" };
        const char *none[] = { o_seed, "method.methods=none" };

        snprintf(o_seed, sizeof(o_seed), "sweep.seeds=%d", seed);
        snprintf(name, sizeof(name), "lora-lr1e-3-seed%d.h5", seed);
        run_file_write(f->runs, &(struct run_file_spec){
            lo, 2, name, true, has_val, 0.58 + 0.02 * seed, 1.0, 0.48 + 0.02 * seed, 1000 });
        snprintf(name, sizeof(name), "lora-lr3e-3-seed%d.h5", seed);
        run_file_write(f->runs, &(struct run_file_spec){
            hi, 2, name, true, has_val, 0.54 + 0.01 * seed, 0.9, 0.69 + 0.01 * seed, 1000 });
        run_file_write(f->runs, &(struct run_file_spec){
            none, 2, NULL, true, has_val, 0.1, 2.3, 0.1, 0 });
    }
}

static int report(const struct fx *f, int argc, const char **argv, char **out, char **err)
{
    const char *po = test_path(f->dir, "out.txt"), *pe = test_path(f->dir, "err.txt");
    int rc = run_files_cmd_captured(cmd_report, argc, argv, po, pe);

    *out = run_files_slurp(po);
    *err = run_files_slurp(pe);
    ck_assert(*out && *err);
    return rc;
}

START_TEST(test_report_selects_on_validation)
{
    struct fx f;
    char *out, *err;

    fx_setup(&f, true);
    const char *argv[] = { "report", f.runs };
    ck_assert_int_eq(report(&f, 2, argv, &out, &err), 0);
    ck_assert_ptr_nonnull(strstr(out, "0.5200 +- 0.0200 (3)"));
    ck_assert_ptr_nonnull(strstr(out, "lr=0.001"));
    ck_assert_ptr_nonnull(strstr(out, "[0.4703, 0.5697]"));
    ck_assert_ptr_null(strstr(out, "0.7100"));         /* the test-best setting */
    ck_assert_ptr_nonnull(strstr(out, "\nnone "));
    ck_assert_ptr_nonnull(strstr(out, "0.1000 +- 0.0000 (3)"));
    ck_assert_str_eq(err, "");
    free(out);
    free(err);

    const char *all[] = { "report", f.runs, "--all", "--metric", "val_accuracy" };
    ck_assert_int_eq(report(&f, 5, all, &out, &err), 0);
    ck_assert_ptr_nonnull(strstr(out, "0.7100 +- 0.0100 (3)"));
    free(out);
    free(err);

    const char *loss[] = { "report", f.runs, "--metric", "val_loss" };
    ck_assert_int_eq(report(&f, 4, loss, &out, &err), 0);
    ck_assert_ptr_nonnull(strstr(out, "0.7100 +- 0.0100 (3)"));   /* lower val loss */
    free(out);
    free(err);
    test_tmpdir_remove(f.dir);
}
END_TEST

START_TEST(test_report_formats)
{
    static const char *const fmts[] = { "md", "tsv", "latex", "text" };
    static const char *const expect[] = {
        "| lora | - | 4 | 1000 | 0.5200 ± 0.0200 (3) |",
        "shapes-count\tclip-tiny\tlora\t0\t4\t4\t0\tchosen\tlr=0.001\t1000\t3\t3\t",
        "lora & -- & 4 & 1000 & $0.5200 \\pm 0.0200$",
        "lora r4            4-shot   lr=0.001",
    };
    struct fx f;
    char *out, *err;

    fx_setup(&f, true);
    for (size_t i = 0; i < 4; i++) {
        const char *argv[] = { "report", "--format", fmts[i], f.runs };

        ck_assert_int_eq(report(&f, 4, argv, &out, &err), 0);
        ck_assert_msg(strstr(out, expect[i]), "%s: no '%s' in:\n%s", fmts[i], expect[i], out);
        free(out);
        free(err);
    }
    test_tmpdir_remove(f.dir);
}
END_TEST

/* -c FILE: the grid is lr 1e-3 over seeds 1..4; the lr 3e-3 files are not
 * its runs (named, with what differs), seed 4 has no file (marked) */
START_TEST(test_report_grid)
{
    struct fx f;
    char *out, *err;
    FILE *fp;
    const char *ini;

    fx_setup(&f, true);
    ini = test_path(f.dir, "exp.ini");
    ck_assert_ptr_nonnull(fp = fopen(ini, "w"));
    fprintf(fp, "%s", run_files_base);
    fclose(fp);
    const char *argv[] = { "report", f.runs, "-c", ini, "-s", "sweep.seeds=1,2,3,4", "-s",
                           "method.methods=lora,none" };
    ck_assert_int_eq(report(&f, 8, argv, &out, &err), 0);
    ck_assert_ptr_nonnull(strstr(err, "lora-lr3e-3-seed1.h5: its stored plan differs from the "
                                      "grid's run lora-r4-s4-seed1 (file vs grid: lr=0.003 vs 0.001)"));
    ck_assert_ptr_nonnull(strstr(err, "lora-lr3e-3-seed3.h5"));
    ck_assert_ptr_null(strstr(err, "lora-lr1e-3-seed1.h5"));   /* a run of the grid */
    ck_assert_ptr_nonnull(strstr(out, "seed 4 without a run file"));
    ck_assert_ptr_nonnull(strstr(out, "0.5200 +- 0.0200 (3)*"));
    free(out);
    free(err);

    /* the same grid without the overrides: the files of none are no runs of it */
    const char *plain[] = { "report", f.runs, "-c", ini };
    ck_assert_int_eq(report(&f, 4, plain, &out, &err), 0);
    ck_assert_ptr_nonnull(strstr(err, "none-s4-seed2.h5: not a run of the grid (run id "
                                      "none-s4-seed2)"));
    free(out);
    free(err);
    test_tmpdir_remove(f.dir);
}
END_TEST

/* files without validation metrics: two settings are not selectable (no
 * test number shown), a single setting (none) is reported */
START_TEST(test_report_old_files)
{
    struct fx f;
    char *out, *err;

    fx_setup(&f, false);
    const char *argv[] = { "report", f.runs };
    ck_assert_int_eq(report(&f, 2, argv, &out, &err), 0);
    ck_assert_ptr_nonnull(strstr(out, "no val split"));
    ck_assert_ptr_nonnull(strstr(out, "no validation split: not selectable"));
    ck_assert_ptr_null(strstr(out, "0.5200"));
    ck_assert_ptr_null(strstr(out, "0.7100"));
    ck_assert_ptr_nonnull(strstr(out, "0.1000 +- 0.0000 (3)"));
    free(out);
    free(err);
    test_tmpdir_remove(f.dir);
}
END_TEST

START_TEST(test_report_errors)
{
    struct fx f;
    char *out, *err;
    FILE *fp;

    ck_assert_ptr_nonnull(test_tmpdir_make(f.dir, sizeof(f.dir), "report"));
    snprintf(f.runs, sizeof(f.runs), "%s", f.dir);
    const char *none[] = { "report" };
    ck_assert_int_eq(report(&f, 1, none, &out, &err), 2);
    ck_assert_ptr_nonnull(strstr(err, "randlora report: no directory given"));
    free(out);
    free(err);
    const char *fmt[] = { "report", f.dir, "--format", "xml" };
    ck_assert_int_eq(report(&f, 4, fmt, &out, &err), 2);
    ck_assert_ptr_nonnull(strstr(err, "--format 'xml': expected text, md, tsv or latex"));
    free(out);
    free(err);
    const char *metric[] = { "report", f.dir, "--metric", "accuracy" };
    ck_assert_int_eq(report(&f, 4, metric, &out, &err), 2);
    ck_assert_ptr_nonnull(strstr(err, "--metric 'accuracy'"));
    free(out);
    free(err);
    const char *latex_all[] = { "report", f.dir, "--format", "latex", "--all" };
    ck_assert_int_eq(report(&f, 5, latex_all, &out, &err), 2);
    ck_assert_ptr_nonnull(strstr(err, "--all goes with --format text, md or tsv"));
    free(out);
    free(err);
    const char *missing[] = { "report", "/nonexistent/runs" };
    ck_assert_int_eq(report(&f, 2, missing, &out, &err), 2);
    ck_assert_ptr_nonnull(strstr(err, "/nonexistent/runs: No such file or directory"));
    free(out);
    free(err);
    const char *s_only[] = { "report", f.dir, "-s", "train.lr=1" };
    ck_assert_int_eq(report(&f, 4, s_only, &out, &err), 2);
    free(out);
    free(err);
    /* a directory with only a file that is no run file: named, then exit 2 */
    ck_assert_ptr_nonnull(fp = fopen(test_path(f.dir, "junk.h5"), "w"));
    fputs("not hdf5", fp);
    fclose(fp);
    const char *empty[] = { "report", f.dir };
    ck_assert_int_eq(report(&f, 2, empty, &out, &err), 2);
    ck_assert_ptr_nonnull(strstr(err, "junk.h5: left out"));
    ck_assert_ptr_nonnull(strstr(err, "no readable run file"));
    free(out);
    free(err);
    test_tmpdir_remove(f.dir);
}
END_TEST

Suite *suite_report_files(void)
{
    Suite *s = suite_create("report_files");
    TCase *tc = tcase_create("report_files");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_report_selects_on_validation);
    tcase_add_test(tc, test_report_formats);
    tcase_add_test(tc, test_report_grid);
    tcase_add_test(tc, test_report_old_files);
    tcase_add_test(tc, test_report_errors);
    suite_add_tcase(s, tc);
    return s;
}
