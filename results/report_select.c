/*
 * report_select.c: runs grouped into tables, groups and settings, the
 * setting chosen per group on validation data, and the statistics at it
 * (report.h).
 */
#include "results/report.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/status.h"
#include "methods/adapter.h"

/* ------------------------------------------------------------------------ */
/* the set of runs                                                           */

void report_run_free(struct report_run *r)
{
    free(r->path);
    run_key_free(&r->key);
    memset(r, 0, sizeof(*r));
}

void report_set_add(struct report_set *set, struct report_run *r)
{
    if (set->n == set->cap) {
        set->cap = set->cap ? 2 * set->cap : 32;
        set->runs = xrealloc_array(set->runs, set->cap, sizeof(*set->runs));
    }
    set->runs[set->n++] = *r;
    memset(r, 0, sizeof(*r));
}

void report_set_free(struct report_set *set)
{
    for (size_t i = 0; i < set->n; i++)
        report_run_free(&set->runs[i]);
    free(set->runs);
    memset(set, 0, sizeof(*set));
}

const char *report_metric_name(enum report_metric m)
{
    return m == REPORT_VAL_LOSS ? "val_loss" : "val_accuracy";
}

/* ------------------------------------------------------------------------ */
/* statistics                                                                */

/* t(0.975, df) for df = 1..30 */
static const double t975_table[30] = {
    12.706204736, 4.302652730, 3.182446305, 2.776445105, 2.570581836, 2.446911851,
    2.364624252,  2.306004135, 2.262157163, 2.228138852, 2.200985160, 2.178812830,
    2.160368656,  2.144786688, 2.131449546, 2.119905299, 2.109815578, 2.100922040,
    2.093024054,  2.085963447, 2.079613845, 2.073873068, 2.068657610, 2.063898562,
    2.059538553,  2.055529439, 2.051830516, 2.048407142, 2.045229642, 2.042272456,
};

double report_t975(size_t df)
{
    /* beyond the table, the Cornish-Fisher expansion around the normal
     * quantile (error below 1e-7 from df = 31 on) */
    const double z = 1.959963984540054;
    double v = (double)df, z2 = z * z;

    if (df == 0)
        return NAN;
    if (df <= 30)
        return t975_table[df - 1];
    return z + (z2 * z + z) / (4 * v) + (5 * z2 * z2 * z + 16 * z2 * z + 3 * z) / (96 * v * v) +
           (3 * z2 * z2 * z2 * z + 19 * z2 * z2 * z + 17 * z2 * z - 15 * z) / (384 * v * v * v) +
           (79 * pow(z, 9) + 776 * pow(z, 7) + 1482 * pow(z, 5) - 1920 * z2 * z - 945 * z) /
               (92160 * v * v * v * v);
}

void report_stat_compute(struct report_stat *st, const double *x, size_t n)
{
    /* sums of the differences from the first value: equal values give
     * exactly that value and sd 0, and nothing cancels for nearby ones */
    double x0 = NAN, d = 0.0, dd = 0.0, ss;

    st->n = 0;
    st->mean = st->sd = st->lo = st->hi = NAN;
    for (size_t i = 0; i < n; i++)
        if (isfinite(x[i])) {
            if (!st->n)
                x0 = x[i];
            d += x[i] - x0;
            dd += (x[i] - x0) * (x[i] - x0);
            st->n++;
        }
    if (!st->n)
        return;
    st->mean = x0 + d / (double)st->n;
    if (st->n < 2)
        return;
    ss = dd - d * d / (double)st->n;
    st->sd = sqrt(ss > 0.0 ? ss / (double)(st->n - 1) : 0.0);
    if (st->n >= 3) {
        double half = report_t975(st->n - 1) * st->sd / sqrt((double)st->n);

        st->lo = st->mean - half;
        st->hi = st->mean + half;
    }
}

/* ------------------------------------------------------------------------ */
/* grouping                                                                  */

static bool same_table(const struct run_key *a, const struct run_key *b)
{
    return !strcmp(a->dataset, b->dataset) && !strcmp(a->model, b->model);
}

/* none first, full last, the registry's methods in registry order (lora,
 * vera, randlora, nola: the order a sweep runs them), anything else after
 * them in order of first appearance; so a report's row order does not
 * depend on the order its files were read in */
static int method_rank(const char *method, const char *const *seen, size_t n_seen)
{
    const struct adapter_ops *const *reg = adapter_registry();
    size_t n_reg = adapter_registry_size();

    if (!strcmp(method, "none"))
        return -1;
    if (!strcmp(method, "full"))
        return 1 << 20;
    for (size_t i = 0; i < n_reg; i++)
        if (!strcmp(method, reg[i]->name))
            return (int)i;
    for (size_t i = 0; i < n_seen; i++)
        if (!strcmp(method, seen[i]))
            return (int)(n_reg + i);
    return (int)(n_reg + n_seen);
}

static int cmp_num(double a, double b)
{
    return a < b ? -1 : a > b;
}

static int group_cmp(const void *pa, const void *pb)
{
    const struct report_group *a = pa, *b = pb;
    const struct run_key *x = &a->first->key, *y = &b->first->key;
    int c;

    if (a->table != b->table)
        return a->table < b->table ? -1 : 1;
    if (a->method_order != b->method_order)
        return a->method_order < b->method_order ? -1 : 1;
    if ((c = strcmp(x->method, y->method)))
        return c;
    if ((x->budget == 0) != (y->budget == 0))       /* ranks before budgets */
        return x->budget ? 1 : -1;
    if ((c = cmp_num((double)x->budget, (double)y->budget)))
        return c;
    if (!x->budget && (c = cmp_num((double)x->rank, (double)y->rank)))
        return c;
    if ((x->shots == 0) != (y->shots == 0))         /* shots before fractions */
        return x->shots ? -1 : 1;
    if ((c = cmp_num((double)x->shots, (double)y->shots)))
        return c;
    if ((c = cmp_num(x->fraction, y->fraction)))
        return c;
    return strcmp(x->group, y->group);
}

/* the run indices idx[0..n) in seed order (stable; n is small) */
static void sort_by_seed(size_t *idx, size_t n, const struct report_set *set)
{
    for (size_t i = 1; i < n; i++) {
        size_t v = idx[i], j = i;

        for (; j > 0 && set->runs[idx[j - 1]].key.seed > set->runs[v].key.seed; j--)
            idx[j] = idx[j - 1];
        idx[j] = v;
    }
}

/* ------------------------------------------------------------------------ */
/* notes                                                                     */

static void note_add(char **notes, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note_add(char **notes, const char *fmt, ...)
{
    char line[512];
    size_t old = *notes ? strlen(*notes) : 0, add;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    add = strlen(line);
    *notes = xrealloc_array(*notes, old + add + 2, 1);
    if (old)
        (*notes)[old++] = '\n';
    memcpy(*notes + old, line, add + 1);
}

/* "lr=0.001: " naming the setting in a note, "" when it is the only one */
static const char *setting_label(const struct report_setting *s)
{
    static char buf[512];

    if (!s->compact || !*s->compact)
        return "";
    snprintf(buf, sizeof(buf), "%s: ", s->compact);
    return buf;
}

/* ------------------------------------------------------------------------ */
/* the choice                                                                */

static double metric_of(const struct report_run *r, enum report_metric m)
{
    return m == REPORT_VAL_LOSS ? r->val_loss : r->val_accuracy;
}

static double lr_of(const char *setting)
{
    const char *p = strstr(setting, "train.lr=");

    if (p && (p == setting || p[-1] == '\n'))
        return strtod(p + 9, NULL);
    return NAN;
}

/* <0 when a is better than b under `metric` (report.h's rule); *level: the
 * rule that decided (0: the metric's mean) */
static int setting_better(const struct report_setting *a, const struct report_setting *b,
                          enum report_metric metric, int *level)
{
    int sign = metric == REPORT_VAL_LOSS ? 1 : -1;     /* -1: higher is better */
    double am, bm, as, bs;
    int c;

    *level = 0;
    if ((c = sign * cmp_num(a->val.mean, b->val.mean)))
        return c;
    *level = 1;
    am = a->other_val.mean;
    bm = b->other_val.mean;
    if (isnan(am) != isnan(bm))
        return isnan(am) ? 1 : -1;
    if (!isnan(am) && (c = -sign * cmp_num(am, bm)))
        return c;
    *level = 2;
    if (a->val.n != b->val.n)
        return a->val.n > b->val.n ? -1 : 1;
    *level = 3;
    as = isnan(a->val.sd) ? INFINITY : a->val.sd;
    bs = isnan(b->val.sd) ? INFINITY : b->val.sd;
    if ((c = cmp_num(as, bs)))
        return c;
    *level = 4;
    am = lr_of(a->setting);
    bm = lr_of(b->setting);
    if (!isnan(am) && !isnan(bm) && (c = cmp_num(am, bm)))
        return c;
    *level = 5;
    return strcmp(a->setting, b->setting);
}

static const char *const tie_rule[] = {
    "", "the other validation metric", "more seeds", "the smaller standard deviation",
    "the smaller learning rate", "the setting's name",
};

static void choose(struct report_group *g, enum report_metric metric)
{
    size_t n_sel = 0, n_noval = 0, n_complete = 0;
    long best = -1;
    int level = 0;

    for (size_t s = 0; s < g->n_settings; s++) {
        n_complete += g->settings[s].test.n;
        if (g->settings[s].selectable)
            n_sel++;
        else if (g->settings[s].val.n == 0 && g->settings[s].test.n > 0)
            n_noval++;                  /* completed, but no validation metric */
    }
    if (n_complete == 0 && n_sel == 0) {
        g->choice = REPORT_NONE_COMPLETE;
        return;
    }
    if (g->n_settings == 1) {
        g->choice = g->settings[0].test.n ? REPORT_ONLY : REPORT_NONE_COMPLETE;
        g->chosen = g->settings[0].test.n ? 0 : -1;
        return;
    }
    if (n_sel == 0) {
        g->choice = REPORT_NOT_SELECTABLE;
        return;
    }
    for (size_t s = 0; s < g->n_settings; s++) {
        int lv;

        if (!g->settings[s].selectable)
            continue;
        if (best < 0 || setting_better(&g->settings[s], &g->settings[best], metric, &lv) < 0)
            best = (long)s;
    }
    /* the deciding rule against the runner-up, when it was not the mean */
    for (size_t s = 0; s < g->n_settings; s++) {
        int lv;

        if (!g->settings[s].selectable || (long)s == best)
            continue;
        setting_better(&g->settings[best], &g->settings[s], metric, &lv);
        if (lv > level)
            level = lv;
    }
    g->choice = REPORT_CHOSEN;
    g->chosen = best;
    g->settings[best].chosen = true;
    if (level > 0) {
        g->marks |= REPORT_MARK_TIE;
        note_add(&g->notes, "tie on the mean %s, decided by %s", report_metric_name(metric),
                 tie_rule[level]);
    }
    if (n_noval) {
        g->marks |= REPORT_MARK_NO_VAL;
        note_add(&g->notes, "%zu setting%s without a validation metric left out of the choice",
                 n_noval, n_noval == 1 ? "" : "s");
    }
}

/* seeds of one kind of trouble in a setting, for one note line */
#define SEED_LIST_MAX 12

struct seed_list {
    uint64_t seed[SEED_LIST_MAX];
    size_t n;                   /* all of them, also past SEED_LIST_MAX */
    const char *path;           /* the first one's file, or NULL */
};

static void seed_list_add(struct seed_list *l, uint64_t seed, const char *path)
{
    if (l->n < SEED_LIST_MAX)
        l->seed[l->n] = seed;
    if (!l->n)
        l->path = path;
    l->n++;
}

/* "lr=0.001: seed 3 did not finish (PATH)" or "seeds 2, 3, 5 missing" */
static void seed_list_note(char **notes, const struct report_setting *st,
                           const struct seed_list *l, const char *what)
{
    char seeds[256];
    size_t len = 0;

    if (!l->n)
        return;
    for (size_t i = 0; i < l->n && i < SEED_LIST_MAX; i++)
        len += (size_t)snprintf(seeds + len, sizeof(seeds) - len, "%s%llu", i ? ", " : "",
                                (unsigned long long)l->seed[i]);
    if (l->n > SEED_LIST_MAX)
        snprintf(seeds + len, sizeof(seeds) - len, ", ... (%zu in all)", l->n);
    if (l->n == 1 && l->path)
        note_add(notes, "%sseed %s %s (%s)", setting_label(st), seeds, what, l->path);
    else
        note_add(notes, "%sseed%s %s %s", setting_label(st), l->n == 1 ? "" : "s", seeds, what);
}

/* ------------------------------------------------------------------------ */
/* one setting                                                               */

static void setting_compute(struct report_group *g, struct report_setting *st,
                            const struct report_set *set, enum report_metric metric,
                            const uint64_t *seeds, size_t n_seeds)
{
    double *v = xcalloc(st->n_runs, sizeof(double));
    double *o = xcalloc(st->n_runs, sizeof(double));
    double *t = xcalloc(st->n_runs, sizeof(double));
    struct seed_list twice = { 0 }, stopped = { 0 }, no_file = { 0 }, unfinished = { 0 };
    struct seed_list missing = { 0 };

    sort_by_seed(st->runs, st->n_runs, set);
    st->n_trainable = set->runs[st->runs[0]].key.n_trainable;
    st->rank = set->runs[st->runs[0]].key.rank;
    for (size_t i = 0; i < st->n_runs; i++) {
        const struct report_run *r = &set->runs[st->runs[i]];
        bool done = r->present && r->completed;

        v[i] = o[i] = t[i] = NAN;
        /* the same run twice (e.g. two directories holding copies): the
         * first one counts, once */
        if (i && set->runs[st->runs[i - 1]].key.seed == r->key.seed && r->present &&
            set->runs[st->runs[i - 1]].present) {
            seed_list_add(&twice, r->key.seed, r->path);
            continue;
        }
        v[i] = done && r->has_val ? metric_of(r, metric) : NAN;
        o[i] = done && r->has_val ? metric_of(r, metric == REPORT_VAL_LOSS ? REPORT_VAL_ACCURACY
                                                                           : REPORT_VAL_LOSS)
                                  : NAN;
        t[i] = done ? r->test_accuracy : NAN;
        if (r->stopped)
            seed_list_add(&stopped, r->key.seed, r->path);
        else if (!r->present)
            seed_list_add(&no_file, r->key.seed, NULL);
        else if (!r->completed)
            seed_list_add(&unfinished, r->key.seed, r->path);
    }
    /* expected seeds without any run of this setting */
    for (size_t k = 0; k < n_seeds; k++) {
        bool found = false;

        for (size_t i = 0; i < st->n_runs && !found; i++)
            found = set->runs[st->runs[i]].key.seed == seeds[k];
        if (!found)
            seed_list_add(&missing, seeds[k], NULL);
    }
    if (stopped.n || no_file.n || unfinished.n || missing.n)
        g->marks |= REPORT_MARK_INCOMPLETE;
    seed_list_note(&g->notes, st, &stopped, "stopped (non-finite loss): not selectable");
    seed_list_note(&g->notes, st, &unfinished, "did not finish");
    seed_list_note(&g->notes, st, &no_file, "without a run file");
    seed_list_note(&g->notes, st, &missing, "missing");
    seed_list_note(&g->notes, st, &twice, "twice: the copy not counted");
    report_stat_compute(&st->val, v, st->n_runs);
    report_stat_compute(&st->other_val, o, st->n_runs);
    report_stat_compute(&st->test, t, st->n_runs);
    st->selectable = st->val.n > 0 && stopped.n == 0;
    free(v);
    free(o);
    free(t);
}

/* the seeds of the runs of table `table` (sorted, distinct) */
static uint64_t *table_seeds(const struct report_set *set, const size_t *run_table, size_t table,
                             size_t *n)
{
    uint64_t *s = xcalloc(set->n ? set->n : 1, sizeof(*s));

    *n = 0;
    for (size_t i = 0; i < set->n; i++) {
        size_t k;

        if (run_table[i] != table)
            continue;
        for (k = 0; k < *n && s[k] != set->runs[i].key.seed; k++)
            ;
        if (k == *n)
            s[(*n)++] = set->runs[i].key.seed;
    }
    return s;
}

/* compact forms: each setting against the other settings of its method in
 * its table */
static void compact_settings(struct report *rep)
{
    for (size_t g = 0; g < rep->n_groups; g++) {
        const struct report_group *gr = &rep->groups[g];
        const char **all = NULL;
        size_t n_all = 0, cap = 0;

        for (size_t h = 0; h < rep->n_groups; h++) {
            const struct report_group *o = &rep->groups[h];

            if (o->table != gr->table || strcmp(o->first->key.method, gr->first->key.method))
                continue;
            for (size_t s = 0; s < o->n_settings; s++) {
                size_t k;

                for (k = 0; k < n_all && strcmp(all[k], o->settings[s].setting); k++)
                    ;
                if (k < n_all)
                    continue;
                if (n_all == cap) {
                    cap = cap ? 2 * cap : 16;
                    all = xrealloc_array(all, cap, sizeof(*all));
                }
                all[n_all++] = o->settings[s].setting;
            }
        }
        for (size_t s = 0; s < gr->n_settings; s++)
            gr->settings[s].compact = run_key_setting_compact(gr->settings[s].setting, all, n_all);
        free(all);
    }
}

int report_build(struct report *rep, const struct report_set *set, const struct report_options *o)
{
    size_t *run_table = xcalloc(set->n ? set->n : 1, sizeof(*run_table));
    size_t *run_group = xcalloc(set->n ? set->n : 1, sizeof(*run_group));
    const char **methods = xcalloc(set->n ? set->n : 1, sizeof(*methods));
    size_t n_methods = 0, cap = 0;

    memset(rep, 0, sizeof(*rep));
    rep->metric = o->metric;
    /* tables, groups and the method order, by first appearance */
    for (size_t i = 0; i < set->n; i++) {
        const struct run_key *k = &set->runs[i].key;
        size_t t, g, m;

        for (t = 0; t < i && !same_table(&set->runs[t].key, k); t++)
            ;
        run_table[i] = t < i ? run_table[t] : rep->n_tables++;
        for (m = 0; m < n_methods && strcmp(methods[m], k->method); m++)
            ;
        if (m == n_methods)
            methods[n_methods++] = k->method;
        for (g = 0; g < rep->n_groups && strcmp(rep->groups[g].first->key.group, k->group); g++)
            ;
        if (g == rep->n_groups) {
            if (rep->n_groups == cap) {
                cap = cap ? 2 * cap : 16;
                rep->groups = xrealloc_array(rep->groups, cap, sizeof(*rep->groups));
            }
            memset(&rep->groups[g], 0, sizeof(rep->groups[g]));
            rep->groups[g].first = &set->runs[i];
            rep->groups[g].table = run_table[i];
            rep->groups[g].chosen = -1;
            rep->n_groups++;
        }
        run_group[i] = g;
    }
    /* settings */
    for (size_t i = 0; i < set->n; i++) {
        struct report_group *g = &rep->groups[run_group[i]];
        size_t s;

        for (s = 0; s < g->n_settings && strcmp(g->settings[s].setting, set->runs[i].key.setting);
             s++)
            ;
        if (s == g->n_settings) {
            g->settings = xrealloc_array(g->settings, s + 1, sizeof(*g->settings));
            memset(&g->settings[s], 0, sizeof(g->settings[s]));
            g->settings[s].setting = set->runs[i].key.setting;
            g->n_settings++;
        }
        g->settings[s].runs = xrealloc_array(g->settings[s].runs, g->settings[s].n_runs + 1,
                                             sizeof(size_t));
        g->settings[s].runs[g->settings[s].n_runs++] = i;
    }
    /* order: table, method, size, column (before the statistics: the group
     * pointers are stable from here on) */
    for (size_t g = 0; g < rep->n_groups; g++)
        rep->groups[g].method_order = method_rank(rep->groups[g].first->key.method, methods,
                                                  n_methods);
    if (rep->n_groups)
        qsort(rep->groups, rep->n_groups, sizeof(*rep->groups), group_cmp);
    compact_settings(rep);
    for (size_t g = 0; g < rep->n_groups; g++) {
        struct report_group *gr = &rep->groups[g];
        uint64_t *seeds = NULL;
        size_t n_seeds = o->n_seeds;

        if (!o->seeds)
            seeds = table_seeds(set, run_table, gr->table, &n_seeds);
        for (size_t s = 0; s < gr->n_settings; s++)
            setting_compute(gr, &gr->settings[s], set, o->metric, o->seeds ? o->seeds : seeds,
                            n_seeds);
        choose(gr, o->metric);
        free(seeds);
    }
    free(methods);
    free(run_table);
    free(run_group);
    return RL_OK;
}

void report_free(struct report *rep)
{
    for (size_t g = 0; g < rep->n_groups; g++) {
        for (size_t s = 0; s < rep->groups[g].n_settings; s++) {
            free(rep->groups[g].settings[s].compact);
            free(rep->groups[g].settings[s].runs);
        }
        free(rep->groups[g].settings);
        free(rep->groups[g].notes);
    }
    free(rep->groups);
    memset(rep, 0, sizeof(*rep));
}
