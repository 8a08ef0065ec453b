/*
 * check_runner_val.c: runs with a validation split (data.val) on the tiny
 * random CLIP and shapes-count: the split stored equals the sampler's
 * (fewshot_split with the run's sample seed), disjoint from the training
 * sample, other seeds other splits; periodic and final /eval rows are the
 * validation split and /final/accuracy the test set (checked against runs
 * that evaluate those sets directly); the fraction and spec forms; resume
 * bit for bit with a split; `randlora info` on such a file; a run file
 * from before the split resumed by the runner.
 */
#include <check.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/commands.h"
#include "core/status.h"
#include "datasets/dataset.h"
#include "datasets/fewshot.h"
#include "experiments/config.h"
#include "experiments/runner.h"
#include "results/store.h"
#include "runner_harness.h"
#include "suites.h"
#include "test_proc.h"

/* the split fewshot_split draws from shapes-count for a plan */
static void expected_split(const struct run_plan *p, size_t **train, size_t *n_train, size_t **val,
                           size_t *n_val)
{
    struct dataset ds;
    struct fewshot_request rq = { .shots = p->shots, .fraction = p->fraction, .seed = p->sample_seed };

    if (p->val.kind == EXP_VAL_PER_CLASS)
        rq.val_per_class = p->val.per_class;
    else
        rq.val_fraction = p->val.fraction;
    ck_assert_int_eq(dataset_open(&ds, p->dataset), RL_OK);
    int *labels = dataset_labels(&ds);
    ck_assert_int_eq(fewshot_split(labels, ds.n, ds.n_classes, NULL, &rq, train, n_train, val, n_val), RL_OK);
    free(labels);
    dataset_close(&ds);
}

/* the stored index equals want[0..n) */
static void assert_index(const int64_t *got, size_t n_got, const size_t *want, size_t n)
{
    ck_assert_uint_eq(n_got, n);
    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(got[i], (int64_t)want[i]);
}

/* no element of sorted a is in sorted b */
static void assert_disjoint(const int64_t *a, size_t na, const int64_t *b, size_t nb)
{
    for (size_t i = 0, j = 0; i < na && j < nb;) {
        ck_assert_msg(a[i] != b[j], "index %lld is in both", (long long)a[i]);
        if (a[i] < b[j])
            i++;
        else
            j++;
    }
}

/* run plans[0] to `name` in t and read back its two indices */
static void run_and_read(const struct run_plan *p, const struct tmp *t, const char *name,
                         struct runner_result *res, int64_t **train, size_t *n_train, int64_t **val,
                         size_t *n_val)
{
    char path[256];
    struct store *s;

    snprintf(path, sizeof(path), "%s/%s", t->dir, name);
    ck_assert_msg(run_quiet(p, path, NULL, false, res) == RL_OK, "%s", rl_error_msg());
    ck_assert_int_eq(store_open(&s, path), RL_OK);
    ck_assert_int_eq(store_read_train_index(s, train, n_train), RL_OK);
    ck_assert_int_eq(store_read_val_index(s, val, n_val), RL_OK);
    store_close(s);
}

/* the split of a run: stored as sampled, disjoint, with the run's seed */
START_TEST(test_val_split_sampled)
{
    static const char *const ov[][4] = {
        { "data.val=3", "train.steps=2", "train.eval_every=0", "sweep.seeds=1" },
        { "data.val=3", "train.steps=2", "train.eval_every=0", "sweep.seeds=2" },
        { "data.val=3", "train.steps=2", "train.eval_every=0", "data.sample_seed=5" },
    };
    struct tmp t;
    int64_t *tr[3], *va[3];
    size_t ntr[3], nva[3];

    tmp_setup(&t, true);
    for (int k = 0; k < 3; k++) {
        struct experiment e;
        struct run_plan *plans;
        struct runner_result res;
        size_t *wt, *wv, nwt, nwv;
        char name[32];

        make_plan(&plans, &e, &t, ov[k], 4);
        snprintf(name, sizeof(name), "run%d.h5", k);
        run_and_read(&plans[0], &t, name, &res, &tr[k], &ntr[k], &va[k], &nva[k]);
        ck_assert_uint_eq(nva[k], 9);                  /* 3 classes x 3 */
        ck_assert_uint_eq(ntr[k], 12);                 /* 3 classes x 4 shots */
        ck_assert_uint_eq(res.n_val_items, 9);
        expected_split(&plans[0], &wt, &nwt, &wv, &nwv);
        assert_index(tr[k], ntr[k], wt, nwt);
        assert_index(va[k], nva[k], wv, nwv);
        assert_disjoint(tr[k], ntr[k], va[k], nva[k]);
        free(wt);
        free(wv);
        run_plans_free(plans, 1);
        experiment_free(&e);
    }
    /* seed 2 and sample_seed 5 draw other splits than seed 1 */
    ck_assert(memcmp(va[0], va[1], 9 * sizeof(int64_t)) != 0);
    ck_assert(memcmp(va[0], va[2], 9 * sizeof(int64_t)) != 0);
    for (int k = 0; k < 3; k++) {
        free(tr[k]);
        free(va[k]);
    }
    tmp_cleanup(&t);
}
END_TEST

/* a trained run with a split: its /eval rows (steps 3 and 6) are the split,
 * /final has both sets, the file says which */
START_TEST(test_val_run_records)
{
    static const char *const ov[] = { "data.val=2" };
    struct tmp t;
    struct experiment e;
    struct run_plan *plans;
    struct runner_result res;
    struct store *s;
    struct store_final f;
    int completed = 0;
    int64_t *steps;
    double *acc, *loss;
    size_t n;
    const char *split;
    char path[256], *str;

    tmp_setup(&t, true);
    make_plan(&plans, &e, &t, ov, 1);
    snprintf(path, sizeof(path), "%s/val.h5", t.dir);
    ck_assert_msg(run_quiet(&plans[0], path, NULL, false, &res) == RL_OK, "%s", rl_error_msg());
    ck_assert(res.val_accuracy >= 0 && res.val_accuracy <= 1);
    ck_assert(res.accuracy >= 0 && res.accuracy <= 1);
    ck_assert_int_eq(store_open(&s, path), RL_OK);
    ck_assert_int_eq(store_read_eval_split(s, &split), RL_OK);
    ck_assert_str_eq(split, "val");
    ck_assert_int_eq(store_attr_get_string(s, "/data", "val", &str), RL_OK);
    ck_assert_str_eq(str, "2");
    free(str);
    ck_assert_int_eq(store_attr_get_string(s, "/data", "val_spec", &str), RL_OK);
    ck_assert_str_eq(str, "shapes-count");
    free(str);
    ck_assert_int_eq(store_read_curve(s, "eval", "accuracy", &steps, &acc, &n), RL_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(steps[0], 3);
    ck_assert_int_eq(steps[1], 6);
    free(steps);
    ck_assert_int_eq(store_read_curve(s, "eval", "loss", NULL, &loss, &n), RL_OK);
    ck_assert_int_eq(store_read_final(s, &f, &completed), RL_OK);
    ck_assert(completed && f.has_val);
    ck_assert(f.val_accuracy == acc[1] && f.val_loss == loss[1]);
    ck_assert(f.val_accuracy == res.val_accuracy && f.accuracy == res.accuracy);
    ck_assert(f.loss == res.loss && f.loss != f.val_loss);   /* 48 test vs 6 val items */
    free(acc);
    free(loss);
    store_close(s);

    /* randlora info tells the split, the rows' set and both finals */
    char *argv[] = { "info", path, NULL }, *txt, want[128];
    ck_assert_int_eq(run_cmd_captured(cmd_info, 2, argv, &txt), 0);
    ck_assert_msg(strstr(txt, "2 per class of shapes-count, 6 items held out"), "%s", txt);
    ck_assert_msg(strstr(txt, "2 rows on the val set, last at step 6"), "%s", txt);
    snprintf(want, sizeof(want), "val accuracy %.4f", f.val_accuracy);
    ck_assert_msg(strstr(txt, want), "%s lacks %s", txt, want);
    free(txt);
    run_plans_free(plans, 1);
    experiment_free(&e);
    tmp_cleanup(&t);
}
END_TEST

/* the final accuracy and loss of a run of the frozen model on `ov` */
static void none_run(const struct tmp *t, const char *const *ov, size_t n_ov, const char *name,
                     struct store_final *f, double *last_row_acc, double *last_row_loss)
{
    struct experiment e;
    struct run_plan *plans;
    struct runner_result res;
    struct store *s;
    int completed = 0;
    double *acc, *loss;
    size_t n;
    char path[256];

    make_plan(&plans, &e, t, ov, n_ov);
    snprintf(path, sizeof(path), "%s/%s", t->dir, name);
    ck_assert_msg(run_quiet(&plans[0], path, NULL, false, &res) == RL_OK, "%s", rl_error_msg());
    ck_assert_int_eq(store_open(&s, path), RL_OK);
    ck_assert_int_eq(store_read_final(s, f, &completed), RL_OK);
    ck_assert_int_eq(store_read_curve(s, "eval", "accuracy", NULL, &acc, &n), RL_OK);
    ck_assert_uint_eq(n, 1);
    *last_row_acc = acc[0];
    free(acc);
    ck_assert_int_eq(store_read_curve(s, "eval", "loss", NULL, &loss, &n), RL_OK);
    *last_row_loss = loss[0];
    free(loss);
    store_close(s);
    run_plans_free(plans, 1);
    experiment_free(&e);
}

/* the spec form on the frozen model: the /eval row of a run whose split is
 * shapes-count:test and whose eval set is shapes-count:train equals the
 * test accuracy of a run evaluating shapes-count:test, and its /final the
 * one of a run evaluating shapes-count:train: rows are the split, /final
 * the test (eval) set */
START_TEST(test_val_spec_sets)
{
    static const char *const swapped[] = { "method.methods=none", "data.val=shapes-count:test",
                                           "data.eval=shapes-count:train" };
    static const char *const on_test[] = { "method.methods=none" };
    static const char *const on_train[] = { "method.methods=none", "data.eval=shapes-count:train" };
    struct tmp t;
    struct store_final fs, ft, fr;
    double row_s, row_t, row_r, loss_s, loss_t, loss_r;

    tmp_setup(&t, true);
    none_run(&t, swapped, 3, "swapped.h5", &fs, &row_s, &loss_s);
    none_run(&t, on_test, 1, "test.h5", &ft, &row_t, &loss_t);
    none_run(&t, on_train, 2, "train.h5", &fr, &row_r, &loss_r);
    ck_assert(fs.has_val && !ft.has_val && !fr.has_val);
    ck_assert(row_s == ft.accuracy && loss_s == ft.loss);        /* the row: the split */
    ck_assert(fs.val_accuracy == ft.accuracy && fs.val_loss == ft.loss);
    ck_assert(fs.accuracy == fr.accuracy && fs.loss == fr.loss);  /* /final: the eval set */
    ck_assert(ft.loss != fr.loss);                               /* the two sets differ */
    (void)row_t;
    (void)row_r;
    (void)loss_t;
    (void)loss_r;
    tmp_cleanup(&t);
}
END_TEST

/* the fraction form: 0.0001 of a class of about 33,333 items holds out 3,
 * and the shots are drawn from the rest */
START_TEST(test_val_fraction_form)
{
    static const char *const ov[] = { "data.val=0.0001", "train.steps=1", "train.eval_every=0" };
    struct tmp t;
    struct experiment e;
    struct run_plan *plans;
    struct runner_result res;
    int64_t *tr, *va;
    size_t ntr, nva, *wt, *wv, nwt, nwv;

    tmp_setup(&t, true);
    make_plan(&plans, &e, &t, ov, 3);
    ck_assert_int_eq(plans[0].val.kind, EXP_VAL_FRACTION);
    run_and_read(&plans[0], &t, "frac.h5", &res, &tr, &ntr, &va, &nva);
    expected_split(&plans[0], &wt, &nwt, &wv, &nwv);
    ck_assert_uint_eq(nva, 3 * 3);
    ck_assert_uint_eq(ntr, 3 * 4);
    assert_index(va, nva, wv, nwv);
    assert_index(tr, ntr, wt, nwt);
    assert_disjoint(tr, ntr, va, nva);
    free(tr);
    free(va);
    free(wt);
    free(wv);
    run_plans_free(plans, 1);
    experiment_free(&e);
    tmp_cleanup(&t);
}
END_TEST

/* resume with a split: the interrupted and resumed run ends with the
 * adapter, the split and the final numbers of the uninterrupted one */
START_TEST(test_val_resume_exact)
{
    static const char *const ov[] = { "data.val=2", "method.dropout=0.1", "data.augment=flip",
                                      "train.steps=10", "train.batch=8", "train.eval_every=2" };
    struct tmp t;
    struct experiment e;
    struct run_plan *plans;
    struct runner_result res;
    char a[256], b[256];
    float *pa, *pb;
    size_t na;
    struct store_final fa, fb;
    int ca = 0, cb = 0;

    tmp_setup(&t, true);
    make_plan(&plans, &e, &t, ov, 6);
    interrupted_and_straight(&plans[0], &t, a, b, &pa, &pb, &na, &res);
    ck_assert_msg(memcmp(pa, pb, na * sizeof(float)) == 0, "resumed adapter differs");
    free(pa);
    free(pb);

    struct store *sa, *sb;
    int64_t *ia, *ib;
    double *ea, *eb;
    size_t nia, nib, nea, neb;
    ck_assert_int_eq(store_open(&sa, a), RL_OK);
    ck_assert_int_eq(store_open(&sb, b), RL_OK);
    ck_assert_int_eq(store_read_final(sa, &fa, &ca), RL_OK);
    ck_assert_int_eq(store_read_final(sb, &fb, &cb), RL_OK);
    ck_assert(ca && cb && fa.has_val && fb.has_val);
    ck_assert(fa.val_accuracy == fb.val_accuracy && fa.val_loss == fb.val_loss);
    ck_assert(fa.accuracy == fb.accuracy && fa.loss == fb.loss);
    ck_assert_int_eq(store_read_val_index(sa, &ia, &nia), RL_OK);
    ck_assert_int_eq(store_read_val_index(sb, &ib, &nib), RL_OK);
    ck_assert_uint_eq(nia, 6);
    ck_assert_uint_eq(nia, nib);
    ck_assert(memcmp(ia, ib, nia * sizeof(*ia)) == 0);
    ck_assert_int_eq(store_read_curve(sa, "eval", "loss", NULL, &ea, &nea), RL_OK);
    ck_assert_int_eq(store_read_curve(sb, "eval", "loss", NULL, &eb, &neb), RL_OK);
    ck_assert_uint_eq(nea, 5);                  /* steps 2, 4, 6, 8, 10: once each */
    ck_assert_uint_eq(nea, neb);
    ck_assert(memcmp(ea, eb, nea * sizeof(*ea)) == 0);
    free(ia);
    free(ib);
    free(ea);
    free(eb);
    store_close(sa);
    store_close(sb);
    run_plans_free(plans, 1);
    experiment_free(&e);
    tmp_cleanup(&t);
}
END_TEST

/* a run file of the code before the validation split: an interrupted run
 * without a split, the split's objects deleted; the runner resumes it to the
 * end and the file still reads as having no split */
START_TEST(test_old_file_resumes)
{
    struct tmp t;
    struct experiment e;
    struct run_plan *plans;
    struct runner_result res;
    size_t kill_step = 4;
    struct runner_hooks h = { .ctx = &kill_step, .on_step = exit_at_step };
    char path[256];
    int status, completed = 0;
    pid_t pid;

    tmp_setup(&t, true);
    make_plan(&plans, &e, &t, NULL, 0);
    snprintf(path, sizeof(path), "%s/old.h5", t.dir);
    pid = test_fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        run_quiet(&plans[0], path, &h, false, &res);
        _exit(3);
    }
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);

    /* what the old code did not write (h5clear's flag reset, then delete) */
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    struct store *st;
    ck_assert_int_eq(store_resume(&st, path), RL_OK);     /* clears the dead writer's flags */
    store_close(st);
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    ck_assert(f >= 0);
    ck_assert(H5Ldelete(f, "/data/val_index", H5P_DEFAULT) >= 0);
    ck_assert(H5Ldelete(f, "/final/val_accuracy", H5P_DEFAULT) >= 0);
    ck_assert(H5Ldelete(f, "/final/val_loss", H5P_DEFAULT) >= 0);
    ck_assert(H5Adelete_by_name(f, "/data", "val", H5P_DEFAULT) >= 0);
    ck_assert(H5Adelete_by_name(f, "/data", "val_spec", H5P_DEFAULT) >= 0);
    ck_assert(H5Adelete_by_name(f, "/eval", "split", H5P_DEFAULT) >= 0);
    ck_assert(H5Fclose(f) >= 0);

    ck_assert_msg(run_quiet(&plans[0], path, NULL, true, &res) == RL_OK, "%s", rl_error_msg());
    ck_assert_uint_eq(res.resumed_from, 3);
    ck_assert(isnan(res.val_accuracy));
    struct store *s;
    struct store_final fin;
    const char *split;
    ck_assert_int_eq(store_open(&s, path), RL_OK);
    ck_assert_int_eq(store_read_final(s, &fin, &completed), RL_OK);
    ck_assert(completed && !fin.has_val && fin.accuracy == res.accuracy);
    ck_assert_int_eq(store_read_eval_split(s, &split), RL_OK);
    ck_assert_str_eq(split, "test");
    store_close(s);
    run_plans_free(plans, 1);
    experiment_free(&e);
    tmp_cleanup(&t);
}
END_TEST

Suite *suite_runner_val(void)
{
    Suite *s = suite_create("runner_val");
    TCase *tc = tcase_create("runner_val");

    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_val_split_sampled);
    tcase_add_test(tc, test_val_run_records);
    tcase_add_test(tc, test_val_spec_sets);
    tcase_add_test(tc, test_val_fraction_form);
    tcase_add_test(tc, test_val_resume_exact);
    tcase_add_test(tc, test_old_file_resumes);
    suite_add_tcase(s, tc);
    return s;
}
