/*
 * check_report.c: the selection engine of `randlora report`
 * (results/report.h) on in-memory runs: the setting is chosen on
 * validation data even when another setting is better on test, ties follow
 * the documented rule, missing seeds and unfinished or stopped runs are
 * marked and never filled in, runs without validation data are not
 * selected on test, the mean / sample sd / t interval against hand-computed
 * values, and every output format.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/status.h"
#include "results/report.h"
#include "suites.h"

/* a run of method `method` (rank 4, 4 shots, dataset d, model m) with the
 * setting "train.lr=LR"; val < 0: no validation metrics; test < 0: did not
 * finish */
static void add(struct report_set *set, const char *method, size_t shots, const char *lr,
                uint64_t seed, double val_acc, double val_loss, double test)
{
    struct report_run r;
    char group[256], setting[128];
    bool rank = strcmp(method, "none") && strcmp(method, "full");

    memset(&r, 0, sizeof(r));
    snprintf(group, sizeof(group), "model.name=m\ndata.dataset=d\ndata.shots=%zu\n"
             "method.methods=%s%s", shots, method, rank ? "\nmethod.rank=4" : "");
    snprintf(setting, sizeof(setting), "train.lr=%s\ntrain.steps=10", lr);
    r.key.dataset = xstrdup("d");
    r.key.model = xstrdup("m");
    r.key.method = xstrdup(method);
    r.key.id = xstrdup("id");
    r.key.rank = rank ? 4 : 0;
    r.key.shots = shots;
    r.key.n_trainable = rank ? 1000 : !strcmp(method, "full") ? 99999 : 0;
    r.key.seed = seed;
    r.key.group = xstrdup(group);
    r.key.setting = xstrdup(setting);
    r.path = xstrdup("run.h5");
    r.present = true;
    r.completed = test >= 0;
    r.has_val = val_acc >= 0;
    r.val_accuracy = val_acc >= 0 ? val_acc : NAN;
    r.val_loss = val_acc >= 0 ? val_loss : NAN;
    r.test_accuracy = test >= 0 ? test : NAN;
    r.test_loss = NAN;
    report_set_add(set, &r);
}

/* a randlora run sized by budget 50000 whose setting (lr) matched rank r */
static void add_budget(struct report_set *set, const char *lr, uint64_t seed, double val,
                       double test, size_t r, size_t trainable)
{
    add(set, "randlora", 4, lr, seed, val, 1.0, test);
    struct run_key *k = &set->runs[set->n - 1].key;

    free(k->group);
    k->group = xstrdup("model.name=m\ndata.dataset=d\ndata.shots=4\nmethod.methods=randlora\n"
                       "method.budget=50000");
    k->budget = 50000;
    k->rank = r;
    k->n_trainable = trainable;
}

static const struct report_options acc_opts = { REPORT_VAL_ACCURACY, NULL, 0 };

static const struct report_group *find(const struct report *rep, const char *method,
                                       size_t shots)
{
    for (size_t g = 0; g < rep->n_groups; g++)
        if (!strcmp(rep->groups[g].first->key.method, method) &&
            rep->groups[g].first->key.shots == shots)
            return &rep->groups[g];
    ck_abort_msg("no group %s %zu", method, shots);
    return NULL;
}

static const char *chosen_lr(const struct report_group *g)
{
    ck_assert_int_ge(g->chosen, 0);
    return strstr(g->settings[g->chosen].setting, "train.lr=") + 9;
}

/* best on validation (lr 1e-3) is not best on test (lr 3e-3): the report
 * picks 1e-3 and reports its test accuracy */
static void selection_set(struct report_set *set)
{
    for (uint64_t s = 1; s <= 3; s++) {
        add(set, "lora", 4, "0.001", s, 0.58 + 0.02 * (double)s, 1.0, 0.48 + 0.02 * (double)s);
        add(set, "lora", 4, "0.003", s, 0.54 + 0.01 * (double)s, 0.9, 0.69 + 0.01 * (double)s);
        add(set, "none", 4, "0.001", s, 0.1, 2.3, 0.1);
    }
}

START_TEST(test_pick_by_validation)
{
    struct report_set set = { 0 };
    struct report rep;
    const struct report_group *g;
    const struct report_setting *s;

    selection_set(&set);
    ck_assert_int_eq(report_build(&rep, &set, &acc_opts), RL_OK);
    ck_assert_uint_eq(rep.n_groups, 2);
    ck_assert_uint_eq(rep.n_tables, 1);
    /* none first */
    ck_assert_str_eq(rep.groups[0].first->key.method, "none");
    g = find(&rep, "lora", 4);
    ck_assert_int_eq(g->choice, REPORT_CHOSEN);
    ck_assert_str_eq(chosen_lr(g), "0.001\ntrain.steps=10");
    ck_assert_uint_eq(g->marks, 0);
    s = &g->settings[g->chosen];
    ck_assert_str_eq(s->compact, "lr=0.001");
    ck_assert_uint_eq(s->test.n, 3);
    ck_assert_double_eq_tol(s->test.mean, 0.52, 1e-12);
    ck_assert_double_eq_tol(s->test.sd, 0.02, 1e-12);
    ck_assert_double_eq_tol(s->test.hi - s->test.mean, 0.04968275423789961, 1e-12);
    ck_assert_double_eq_tol(s->test.mean - s->test.lo, 0.04968275423789961, 1e-12);
    ck_assert_double_eq_tol(s->val.mean, 0.62, 1e-12);
    report_free(&rep);

    /* by val_loss the other setting (lower loss) wins */
    struct report_options lo = { REPORT_VAL_LOSS, NULL, 0 };
    ck_assert_int_eq(report_build(&rep, &set, &lo), RL_OK);
    ck_assert_str_eq(chosen_lr(find(&rep, "lora", 4)), "0.003\ntrain.steps=10");
    report_free(&rep);
    report_set_free(&set);
}
END_TEST

START_TEST(test_ties)
{
    struct report_set set = { 0 };
    struct report rep;
    const struct report_group *g;

    /* equal mean val_accuracy: the lower val_loss decides */
    for (uint64_t s = 1; s <= 2; s++) {
        add(&set, "lora", 4, "0.001", s, 0.5, 1.2, 0.9);
        add(&set, "lora", 4, "0.003", s, 0.5, 1.1, 0.1);
    }
    /* equal val metrics: more seeds */
    for (uint64_t s = 1; s <= 3; s++)
        add(&set, "vera", 4, "0.01", s, 0.5, 1.0, 0.3);
    for (uint64_t s = 1; s <= 2; s++)
        add(&set, "vera", 4, "0.03", s, 0.5, 1.0, 0.9);
    /* all equal, same seeds: smaller sd, then smaller lr */
    for (uint64_t s = 1; s <= 2; s++) {
        add(&set, "randlora", 4, "1e-3", s, 0.5, 1.0, 0.3);
        add(&set, "randlora", 4, "0.01", s, 0.5, 1.0, 0.3);
    }
    for (uint64_t s = 1; s <= 2; s++) {
        add(&set, "full", 4, "0.001", s, s == 1 ? 0.4 : 0.6, 1.0, 0.3);
        add(&set, "full", 4, "0.0001", s, s == 1 ? 0.3 : 0.7, 1.0, 0.3);
    }
    ck_assert_int_eq(report_build(&rep, &set, &acc_opts), RL_OK);
    g = find(&rep, "lora", 4);
    ck_assert_str_eq(chosen_lr(g), "0.003\ntrain.steps=10");
    ck_assert(g->marks & REPORT_MARK_TIE);
    ck_assert_ptr_nonnull(strstr(g->notes, "the other validation metric"));
    g = find(&rep, "vera", 4);
    ck_assert_str_eq(chosen_lr(g), "0.01\ntrain.steps=10");
    /* the setting with two seeds also lacks seed 3: marked */
    ck_assert(g->marks & REPORT_MARK_INCOMPLETE);
    ck_assert_ptr_nonnull(strstr(g->notes, "more seeds"));
    g = find(&rep, "randlora", 4);
    ck_assert_str_eq(chosen_lr(g), "1e-3\ntrain.steps=10");   /* not the strcmp-first */
    ck_assert_ptr_nonnull(strstr(g->notes, "the smaller learning rate"));
    g = find(&rep, "full", 4);
    ck_assert_str_eq(chosen_lr(g), "0.001\ntrain.steps=10");
    ck_assert_ptr_nonnull(strstr(g->notes, "the smaller standard deviation"));
    report_free(&rep);
    report_set_free(&set);
}
END_TEST

START_TEST(test_missing_and_unfinished)
{
    struct report_set set = { 0 };
    struct report rep;
    const struct report_group *g;
    const struct report_setting *s;

    /* lora: lr 0.001 lacks seed 3, lr 0.003 has seed 3 unfinished */
    add(&set, "lora", 4, "0.001", 1, 0.7, 1.0, 0.50);
    add(&set, "lora", 4, "0.001", 2, 0.7, 1.0, 0.60);
    for (uint64_t k = 1; k <= 3; k++)
        add(&set, "lora", 4, "0.003", k, 0.6, 1.0, k == 3 ? -1 : 0.4);
    /* vera: one run stopped (diverged): not selectable although its mean is best */
    for (uint64_t k = 1; k <= 3; k++) {
        struct report_run *r;

        add(&set, "vera", 4, "0.1", k, 0.9, 1.0, 0.9);
        r = &set.runs[set.n - 1];
        if (k == 2) {
            r->stopped = true;
            r->completed = false;
        }
        add(&set, "vera", 4, "0.01", k, 0.5, 1.0, 0.45);
    }
    ck_assert_int_eq(report_build(&rep, &set, &acc_opts), RL_OK);
    g = find(&rep, "lora", 4);
    ck_assert(g->marks & REPORT_MARK_INCOMPLETE);
    ck_assert_str_eq(chosen_lr(g), "0.001\ntrain.steps=10");
    s = &g->settings[g->chosen];
    ck_assert_uint_eq(s->test.n, 2);                 /* never filled in */
    ck_assert_double_eq_tol(s->test.mean, 0.55, 1e-12);
    ck_assert_double_eq_tol(s->test.sd, 0.07071067811865475, 1e-12);
    ck_assert(isnan(s->test.lo));                    /* n < 3: no interval */
    ck_assert_ptr_nonnull(strstr(g->notes, "lr=0.001: seed 3 missing"));
    ck_assert_ptr_nonnull(strstr(g->notes, "lr=0.003: seed 3 did not finish"));
    g = find(&rep, "vera", 4);
    ck_assert_str_eq(chosen_lr(g), "0.01\ntrain.steps=10");
    ck_assert(g->marks & REPORT_MARK_INCOMPLETE);
    ck_assert_ptr_nonnull(strstr(g->notes, "seed 2 stopped"));
    report_free(&rep);

    /* a copy of a run (same setting and seed) counts once */
    add(&set, "lora", 4, "0.001", 2, 0.7, 1.0, 0.99);
    ck_assert_int_eq(report_build(&rep, &set, &acc_opts), RL_OK);
    g = find(&rep, "lora", 4);
    s = &g->settings[g->chosen];
    ck_assert_uint_eq(s->test.n, 2);
    ck_assert_double_eq_tol(s->test.mean, 0.55, 1e-12);
    ck_assert_ptr_nonnull(strstr(g->notes, "lr=0.001: seed 2 twice: the copy not counted (run.h5)"));
    report_free(&rep);

    /* with the grid's seeds 1..4, every setting misses seed 4 */
    uint64_t seeds[] = { 1, 2, 3, 4 };
    struct report_options o = { REPORT_VAL_ACCURACY, seeds, 4 };
    ck_assert_int_eq(report_build(&rep, &set, &o), RL_OK);
    g = find(&rep, "vera", 4);
    ck_assert_ptr_nonnull(strstr(g->notes, "lr=0.01: seed 4 missing"));
    report_free(&rep);
    report_set_free(&set);
}
END_TEST

START_TEST(test_no_validation)
{
    struct report_set set = { 0 };
    struct report rep;
    const struct report_group *g;

    for (uint64_t k = 1; k <= 2; k++) {
        /* lora: two settings, no validation data: not selectable on test */
        add(&set, "lora", 4, "0.001", k, -1, 0, 0.3);
        add(&set, "lora", 4, "0.003", k, -1, 0, 0.9);
        /* vera: a single setting: reported, nothing chosen */
        add(&set, "vera", 4, "0.01", k, -1, 0, 0.4);
        /* randlora: one setting with validation data, one without */
        add(&set, "randlora", 4, "0.001", k, 0.5, 1.0, 0.2);
        add(&set, "randlora", 4, "0.003", k, -1, 0, 0.8);
    }
    ck_assert_int_eq(report_build(&rep, &set, &acc_opts), RL_OK);
    g = find(&rep, "lora", 4);
    ck_assert_int_eq(g->choice, REPORT_NOT_SELECTABLE);
    ck_assert_int_eq(g->chosen, -1);
    g = find(&rep, "vera", 4);
    ck_assert_int_eq(g->choice, REPORT_ONLY);
    ck_assert_double_eq_tol(g->settings[0].test.mean, 0.4, 1e-12);
    g = find(&rep, "randlora", 4);
    ck_assert_int_eq(g->choice, REPORT_CHOSEN);
    ck_assert_str_eq(chosen_lr(g), "0.001\ntrain.steps=10");
    ck_assert(g->marks & REPORT_MARK_NO_VAL);
    report_free(&rep);
    report_set_free(&set);
}
END_TEST

START_TEST(test_statistics)
{
    struct report_stat st;
    const double x[] = { 0.61, NAN, 0.64, 0.70, 0.65 };
    const double one[] = { 0.3 };

    report_stat_compute(&st, x, 5);
    ck_assert_uint_eq(st.n, 4);
    ck_assert_double_eq_tol(st.mean, 0.65, 1e-12);
    ck_assert_double_eq_tol(st.sd, 0.037416573867739396, 1e-12);
    ck_assert_double_eq_tol(st.hi - st.mean, 0.0595381186255734, 1e-12);
    {
        const double same[] = { 0.1, 0.1, 0.1 };

        report_stat_compute(&st, same, 3);          /* equal values: exact */
        ck_assert(st.mean == 0.1 && st.sd == 0.0 && st.lo == 0.1 && st.hi == 0.1);
    }
    report_stat_compute(&st, one, 1);
    ck_assert_uint_eq(st.n, 1);
    ck_assert(isnan(st.sd) && isnan(st.lo));
    report_stat_compute(&st, x + 1, 1);
    ck_assert_uint_eq(st.n, 0);
    ck_assert(isnan(st.mean));
    ck_assert_double_eq_tol(report_t975(1), 12.706204736, 1e-9);
    ck_assert_double_eq_tol(report_t975(2), 4.302652730, 1e-9);
    ck_assert_double_eq_tol(report_t975(30), 2.042272456, 1e-9);
    ck_assert_double_eq_tol(report_t975(31), 2.039513446, 1e-7);
    ck_assert_double_eq_tol(report_t975(40), 2.021075390, 1e-7);
    ck_assert_double_eq_tol(report_t975(1000), 1.962339081, 1e-7);
}
END_TEST

static char *print_to_string(const struct report *rep, enum report_format fmt, bool all)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&buf, &len);

    ck_assert_ptr_nonnull(fp);
    report_print(fp, rep, fmt, all);
    fclose(fp);
    return buf;
}

static size_t count_lines(const char *s)
{
    size_t n = 0;

    for (; *s; s++)
        n += *s == '\n';
    return n;
}

START_TEST(test_formats)
{
    struct report_set set = { 0 };
    struct report rep;
    char *t;

    selection_set(&set);
    add(&set, "lora", 16, "0.001", 1, 0.7, 1.0, 0.8);   /* 16-shot: 1 seed of 3 */
    ck_assert_int_eq(report_build(&rep, &set, &acc_opts), RL_OK);

    t = print_to_string(&rep, REPORT_TEXT, false);
    ck_assert_ptr_nonnull(strstr(t, "d, model m: test accuracy, mean +- sd over seeds (n), at "
                                    "the setting with the best mean val_accuracy"));
    ck_assert_ptr_nonnull(strstr(t, "4-shot"));
    ck_assert_ptr_nonnull(strstr(t, "16-shot"));
    ck_assert_ptr_nonnull(strstr(t, "0.5200 +- 0.0200 (3)"));
    ck_assert_ptr_nonnull(strstr(t, "0.8000 (1)*"));
    ck_assert_ptr_nonnull(strstr(t, "[0.4703, 0.5697]"));
    ck_assert_ptr_nonnull(strstr(t, "none"));
    ck_assert_ptr_nonnull(strstr(t, "0.1000 +- 0.0000 (3)"));
    ck_assert_ptr_nonnull(strstr(t, "lora r4"));
    ck_assert_ptr_nonnull(strstr(t, "lr=0.001"));
    ck_assert_ptr_nonnull(strstr(t, "seeds 2, 3 missing"));
    ck_assert_ptr_null(strstr(t, "every setting"));
    /* the test mean of the unchosen setting appears only with --all */
    ck_assert_ptr_null(strstr(t, "0.7100"));
    free(t);

    t = print_to_string(&rep, REPORT_TEXT, true);
    ck_assert_ptr_nonnull(strstr(t, "every setting"));
    ck_assert_ptr_nonnull(strstr(t, "0.7100 +- 0.0100 (3)"));
    free(t);

    t = print_to_string(&rep, REPORT_MD, false);
    ck_assert_ptr_nonnull(strstr(t, "| method | budget | rank | trainable | 4-shot | 16-shot |"));
    ck_assert_ptr_nonnull(strstr(t, "| lora | - | 4 | 1000 | 0.5200 ± 0.0200 (3) |"));
    ck_assert_ptr_nonnull(strstr(t, "| none | - | - | 0 | 0.1000 ± 0.0000 (3) |"));
    free(t);

    t = print_to_string(&rep, REPORT_TSV, false);
    ck_assert_uint_eq(count_lines(t), 1 + 3);        /* header + 3 cells */
    ck_assert_ptr_nonnull(strstr(t, "dataset\tmodel\tmethod\tbudget\trank\tshots"));
    ck_assert_ptr_nonnull(strstr(t, "d\tm\tlora\t0\t4\t4\t0\tchosen\tlr=0.001\t1000\t3\t3\t"));
    free(t);
    t = print_to_string(&rep, REPORT_TSV, true);
    ck_assert_uint_eq(count_lines(t), 1 + 4);        /* one row per setting */
    free(t);

    t = print_to_string(&rep, REPORT_LATEX, false);
    ck_assert_ptr_nonnull(strstr(t, "\\begin{tabular}{lrrrcc}"));
    ck_assert_ptr_nonnull(strstr(t, "lora & -- & 4 & 1000 & $0.5200 \\pm 0.0200$"));
    ck_assert_ptr_nonnull(strstr(t, "$0.8000$$^{*}$"));
    ck_assert_ptr_nonnull(strstr(t, "% *: seeds missing or runs unfinished"));
    ck_assert_ptr_nonnull(strstr(t, "\\end{tabular}"));
    free(t);
    report_free(&rep);
    report_set_free(&set);
}
END_TEST

/* a budget row shows its budget, and the rank and count of the chosen
 * setting (which the budget matched for it) */
START_TEST(test_budget_rows)
{
    struct report_set set = { 0 };
    struct report rep;
    char *t = NULL;
    size_t len = 0;
    FILE *fp;

    for (uint64_t s = 1; s <= 2; s++) {
        add_budget(&set, "0.001", s, 0.4, 0.3, 2, 49000);
        add_budget(&set, "0.003", s, 0.6, 0.5, 3, 50100);
    }
    ck_assert_int_eq(report_build(&rep, &set, &acc_opts), RL_OK);
    ck_assert_uint_eq(rep.n_groups, 1);
    ck_assert_ptr_nonnull(fp = open_memstream(&t, &len));
    report_print(fp, &rep, REPORT_TEXT, false);
    fclose(fp);
    ck_assert_msg(strstr(t, "randlora      50000     3      50100  0.5000 +- 0.0000 (2)"), "%s", t);
    ck_assert_ptr_nonnull(strstr(t, "randlora b50000    4-shot   lr=0.003"));
    free(t);
    report_free(&rep);
    report_set_free(&set);
}
END_TEST

/* the rows come in the registry's method order (none, lora, vera,
 * randlora, nola, full) whatever order the runs were read in: a standalone
 * report reads its files sorted by name, a sweep in plan order */
START_TEST(test_method_order)
{
    static const char *const read_order[] = { "full", "lora", "nola", "none", "randlora", "vera" };
    static const char *const want[] = { "none", "lora", "vera", "randlora", "nola", "full" };
    struct report_set set = { 0 };
    struct report rep;

    for (size_t i = 0; i < sizeof(read_order) / sizeof(read_order[0]); i++)
        add(&set, read_order[i], 4, "0.001", 1, 0.5, 1.0, 0.5);
    ck_assert_int_eq(report_build(&rep, &set, &acc_opts), RL_OK);
    ck_assert_uint_eq(rep.n_groups, 6);
    for (size_t g = 0; g < rep.n_groups; g++)
        ck_assert_str_eq(rep.groups[g].first->key.method, want[g]);
    report_free(&rep);
    report_set_free(&set);
}
END_TEST

Suite *suite_report(void)
{
    Suite *s = suite_create("report");
    TCase *tc = tcase_create("report");

    tcase_add_test(tc, test_pick_by_validation);
    tcase_add_test(tc, test_ties);
    tcase_add_test(tc, test_missing_and_unfinished);
    tcase_add_test(tc, test_no_validation);
    tcase_add_test(tc, test_statistics);
    tcase_add_test(tc, test_formats);
    tcase_add_test(tc, test_budget_rows);
    tcase_add_test(tc, test_method_order);
    suite_add_tcase(s, tc);
    return s;
}
