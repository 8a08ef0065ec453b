/*
 * check_sweep_summary.c: summary.tsv's validation and hyperparameter
 * columns, the report table `randlora sweep` prints at its end, and
 * `sweep --summary` naming a run file whose stored plan is not a run of
 * the grid (experiments/sweep.h), on tiny untrained run files.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "core/status.h"
#include "experiments/config.h"
#include "experiments/sweep.h"
#include "run_files.h"
#include "suites.h"
#include "test_util.h"

/* the text of field `col` (by header name) of the row starting with id */
static void field(const char *tsv, const char *id, const char *col, char *buf, size_t cap)
{
    const char *h = tsv, *row;
    char key[96];
    int idx = 0;
    size_t clen = strlen(col);

    for (;;) {                                   /* the column's index */
        size_t len = strcspn(h, "\t\n");

        if (len == clen && !strncmp(h, col, clen))
            break;
        ck_assert_msg(h[len] == '\t', "no column %s", col);
        h += len + 1;
        idx++;
    }
    snprintf(key, sizeof(key), "\n%s\t", id);
    ck_assert_ptr_nonnull(row = strstr(tsv, key));
    row++;
    for (int i = 0; i < idx; i++)
        row = strchr(row, '\t') + 1;
    snprintf(buf, cap, "%.*s", (int)strcspn(row, "\t\n"), row);
}

/* lora lr 1e-3 seeds 1-2 (validation 0.6, test 0.5), a lora run at lr 3e-3
 * under the id of seed 1's grid run (another file name), none seed 1-2 */
static void write_runs(const char *dir)
{
    const char *s1[] = { "sweep.seeds=1" };
    const char *s2[] = { "sweep.seeds=2" };
    const char *hi[] = { "sweep.seeds=1", "train.lr=3e-3", "train.weight_decay=0.1",
                         "method.modules=q_proj, v_proj" };
    const char *n1[] = { "sweep.seeds=1", "method.methods=none" };
    const char *n2[] = { "sweep.seeds=2", "method.methods=none" };

    run_file_write(dir, &(struct run_file_spec){ s1, 1, NULL, true, true, 0.625, 0.75, 0.5, 100 });
    run_file_write(dir, &(struct run_file_spec){ s2, 1, NULL, true, true, 0.575, 0.8, 0.5, 100 });
    run_file_write(dir, &(struct run_file_spec){ hi, 4, "old-lr3e-3.h5", true, true, 0.9, 0.1,
                                                 0.9, 100 });
    run_file_write(dir, &(struct run_file_spec){ n1, 2, NULL, true, false, 0, 0, 0.125, 0 });
    run_file_write(dir, &(struct run_file_spec){ n2, 2, NULL, false, false, 0, 0, 0, 0 });
}

START_TEST(test_summary_columns)
{
    char dir[128], buf[128], *tsv, *table = NULL, *err = NULL;
    size_t tlen = 0, elen = 0, n_rows = 0;
    FILE *ft, *fe;

    ck_assert_ptr_nonnull(test_tmpdir_make(dir, sizeof(dir), "sweepsum"));
    write_runs(dir);
    ft = open_memstream(&table, &tlen);
    fe = open_memstream(&err, &elen);
    ck_assert_int_eq(sweep_write_summary(dir, NULL, 0, ft, fe, &n_rows), RL_OK);
    fclose(ft);
    fclose(fe);
    ck_assert_uint_eq(n_rows, 5);
    ck_assert_ptr_nonnull(tsv = run_files_slurp(test_path(dir, "%s", SWEEP_SUMMARY_FILE)));
    static const char header[] = "id\tdataset\tmethod\trank\tbudget\tshots\tfraction\tseed\tn_trainable"
                            "\taccuracy\tloss\tsteps_done\tseconds\timages_per_s\tpeak_rss_bytes"
                            "\tstatus\tval_accuracy\tval_loss\tlr\tweight_decay\talpha\tscaling"
                            "\tsteps\tepochs\tbatch\taccumulate\twarmup\tdropout\tprofile\tbasis"
                            "\tmodules\ttowers\n";
    ck_assert(!strncmp(tsv, header, strlen(header)));
    for (size_t i = 0; i < SWEEP_N_HYPER; i++)
        ck_assert_ptr_nonnull(strstr(tsv, sweep_hyper_column(i)));
    ck_assert_ptr_null(sweep_hyper_column(SWEEP_N_HYPER));
    field(tsv, "lora-r4-s4-seed2", "val_accuracy", buf, sizeof(buf));
    ck_assert_str_eq(buf, "0.57499999999999996");
    field(tsv, "lora-r4-s4-seed2", "val_loss", buf, sizeof(buf));
    ck_assert_str_eq(buf, "0.80000000000000004");
    field(tsv, "lora-r4-s4-seed2", "lr", buf, sizeof(buf));
    ck_assert_str_eq(buf, "0.001");
    field(tsv, "lora-r4-s4-seed2", "scaling", buf, sizeof(buf));
    ck_assert_str_eq(buf, "alpha/r");
    field(tsv, "lora-r4-s4-seed2", "steps", buf, sizeof(buf));
    ck_assert_str_eq(buf, "10");
    field(tsv, "lora-r4-s4-seed2", "epochs", buf, sizeof(buf));
    ck_assert_str_eq(buf, "-");
    field(tsv, "lora-r4-s4-seed2", "modules", buf, sizeof(buf));
    ck_assert_str_eq(buf, "q_proj,k_proj,v_proj,fc1,fc2");
    field(tsv, "lora-r4-s4-seed2", "towers", buf, sizeof(buf));
    ck_assert_str_eq(buf, "vision,text");
    /* the lr 3e-3 file: rows are by file name after the grid's, same id */
    ck_assert_ptr_nonnull(strstr(tsv, "\t0.003\t0.1\t0\talpha/r\t10\t-\t32\t1\t0"
                                      "\t0\tpeft\tdense\tq_proj,v_proj\tvision,text\n"));
    field(tsv, "none-s4-seed1", "val_accuracy", buf, sizeof(buf));
    ck_assert_str_eq(buf, "nan");
    field(tsv, "none-s4-seed1", "scaling", buf, sizeof(buf));
    ck_assert_str_eq(buf, "-");
    field(tsv, "none-s4-seed2", "status", buf, sizeof(buf));
    ck_assert_str_eq(buf, "incomplete");
    /* the table is the report: lr 3e-3 has the better validation mean */
    ck_assert_ptr_nonnull(strstr(table, "at the setting with the best mean val_accuracy"));
    ck_assert_ptr_nonnull(strstr(table, "0.9000 (1)*"));
    ck_assert_ptr_nonnull(strstr(table, "0.1250 (1)*"));           /* none: seed 2 unfinished */
    ck_assert_str_eq(err, "");                                     /* no grid: nothing named */
    free(tsv);
    free(table);
    free(err);
    test_tmpdir_remove(dir);
}
END_TEST

/* sweep --summary -c FILE: the grid (lora and none at lr 1e-3, seeds 1-2)
 * names the file holding another plan under one of its ids */
START_TEST(test_summary_names_other_plans)
{
    char dir[128], out[192];
    FILE *fp;
    char *o, *e;

    ck_assert_ptr_nonnull(test_tmpdir_make(dir, sizeof(dir), "sweepsum"));
    snprintf(out, sizeof(out), "%s/runs", dir);
    {
        char cmd[256];

        snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", out);
        ck_assert_int_eq(system(cmd), 0);
    }
    write_runs(out);
    ck_assert_ptr_nonnull(fp = fopen(test_path(dir, "exp.ini"), "w"));
    fprintf(fp, "%s", run_files_base);
    fclose(fp);
    char o_out[256];
    snprintf(o_out, sizeof(o_out), "experiment.output=%s", out);
    const char *argv[] = { "sweep", "--summary", "-c", test_path(dir, "exp.ini"), "-s", o_out,
                           "-s", "sweep.seeds=1,2", "-s", "method.methods=none,lora" };
    ck_assert_int_eq(run_files_cmd_captured(cmd_sweep, 10, argv, test_path(dir, "o.txt"),
                                      test_path(dir, "e.txt")), 0);
    o = run_files_slurp(test_path(dir, "o.txt"));
    e = run_files_slurp(test_path(dir, "e.txt"));
    ck_assert_ptr_nonnull(strstr(e, "randlora sweep: warning: "));
    ck_assert_msg(strstr(e, "old-lr3e-3.h5: its stored plan differs from the grid's "
                                    "run lora-r4-s4-seed1 (file vs grid: modules=q_proj,v_proj vs "
                                    "q_proj,k_proj,v_proj,fc1,fc2; lr=0.003 vs 0.001; "
                                    "wd=0.1 vs 0.01)"), "%s", e);
    ck_assert_ptr_null(strstr(e, "lora-r4-s4-seed1.h5"));      /* the grid's own runs */
    ck_assert_ptr_null(strstr(e, "none-s4-seed1.h5"));
    ck_assert_ptr_nonnull(strstr(o, "none"));
    free(o);
    free(e);
    test_tmpdir_remove(dir);
}
END_TEST

Suite *suite_sweep_summary(void)
{
    Suite *s = suite_create("sweep_summary");
    TCase *tc = tcase_create("sweep_summary");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_summary_columns);
    tcase_add_test(tc, test_summary_names_other_plans);
    suite_add_tcase(s, tc);
    return s;
}
