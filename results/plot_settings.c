/*
 * plot_settings.c: runs grouped into settings (the whole configuration but
 * the seed), their statistics over seeds, and the selected setting of each
 * group (plot_runs.h).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/status.h"
#include "results/plot_runs.h"

void plot_mean_std(const double *v, size_t n, double *mean, double *std, size_t *used)
{
    double m = 0.0, ss = 0.0;
    size_t k = 0;

    for (size_t i = 0; i < n; i++)
        if (isfinite(v[i])) {
            m += v[i];
            k++;
        }
    if (k == 0) {
        *mean = *std = NAN;
        *used = 0;
        return;
    }
    m /= (double)k;
    for (size_t i = 0; i < n; i++)
        if (isfinite(v[i]))
            ss += (v[i] - m) * (v[i] - m);
    *mean = m;
    *std = k > 1 ? sqrt(ss / (double)(k - 1)) : 0.0;
    *used = k;
}

static void setting_stats(struct plot_setting *st, const struct plot_run *runs)
{
    double *acc = xmalloc_array(st->n, sizeof(double)), *val = xmalloc_array(st->n, sizeof(double));
    size_t used;

    for (size_t i = 0; i < st->n; i++) {
        acc[i] = runs[st->runs[i]].accuracy;
        val[i] = runs[st->runs[i]].val_accuracy;
    }
    plot_mean_std(acc, st->n, &st->acc_mean, &st->acc_std, &st->n_done);
    plot_mean_std(val, st->n, &st->val_mean, &st->val_std, &used);
    free(acc);
    free(val);
}

/* seeds ascending within a setting, then file names */
static const struct plot_run *sort_runs;
static int seed_cmp(const void *a, const void *b)
{
    const struct plot_run *p = &sort_runs[*(const size_t *)a], *q = &sort_runs[*(const size_t *)b];
    if (p->key.seed != q->key.seed)
        return p->key.seed < q->key.seed ? -1 : 1;
    return strcmp(p->path, q->path);
}

/* labels (the keys that differ in the group) of the group of settings[g0] */
static void group_label(struct plot_setting *st, size_t n, size_t g0, bool *seen)
{
    const char *group = st[g0].key->group;
    size_t m = 0, *members = xmalloc_array(n, sizeof(size_t));
    const char **settings = xmalloc_array(n, sizeof(char *));

    for (size_t i = g0; i < n; i++)
        if (!seen[i] && !strcmp(st[i].key->group, group)) {
            seen[i] = true;
            settings[m] = st[i].key->setting;
            members[m++] = i;
        }
    for (size_t j = 0; j < m; j++) {
        struct plot_setting *s = &st[members[j]];
        s->label = m > 1 ? run_key_setting_compact(s->key->setting, settings, m) : xstrdup("");
        s->group_settings = m;
    }
    free(members);
    free(settings);
}

/* the setting of group g's setting k among st[0..n) */
static struct plot_setting *find_setting(struct plot_setting *st, size_t n, const struct report_group *g, size_t k)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(st[i].key->group, g->first->key.group) && !strcmp(st[i].key->setting, g->settings[k].setting))
            return &st[i];
    return NULL;
}

/* the report engine's choice per group (plot_runs.h) */
static void select_settings(struct plot_set *set)
{
    const struct report_options o = { .metric = REPORT_VAL_ACCURACY };

    for (size_t i = 0; i < set->n_runs; i++)
        report_set_add(&set->report_runs, &set->runs[i].rec);     /* moved: index i */
    if (report_build(&set->report, &set->report_runs, &o) != RL_OK) {
        /* nothing selected: every setting drawn, as for a group without
         * validation data */
        for (size_t i = 0; i < set->n_settings; i++)
            set->settings[i].group_unselected = set->settings[i].group_settings > 1;
        return;
    }
    for (size_t g = 0; g < set->report.n_groups; g++) {
        const struct report_group *grp = &set->report.groups[g];
        for (size_t k = 0; k < grp->n_settings; k++) {
            struct plot_setting *st = find_setting(set->settings, set->n_settings, grp, k);
            if (!st)
                continue;
            if (grp->choice == REPORT_CHOSEN)
                st->selected = (long)k == grp->chosen;
            else if (grp->n_settings == 1)
                st->selected = true;             /* REPORT_ONLY; or still training */
            else
                st->group_unselected = true;     /* nothing to select by (yet) */
        }
    }
}

void plot_set_group(struct plot_set *set)
{
    struct plot_setting *st = xcalloc(set->n_runs ? set->n_runs : 1, sizeof(*st));
    size_t n = 0;

    for (size_t i = 0; i < set->n_runs; i++) {
        const struct run_key *k = &set->runs[i].key;
        size_t j;
        for (j = 0; j < n; j++)
            if (!strcmp(st[j].key->config, k->config))
                break;
        if (j == n) {
            st[n].key = k;
            st[n].runs = xmalloc_array(set->n_runs, sizeof(size_t));
            n++;
        }
        st[j].runs[st[j].n++] = i;
    }
    sort_runs = set->runs;
    for (size_t j = 0; j < n; j++) {
        qsort(st[j].runs, st[j].n, sizeof(size_t), seed_cmp);
        for (size_t k = 1; k < st[j].n; k++)
            if (set->runs[st[j].runs[k]].key.seed == set->runs[st[j].runs[k - 1]].key.seed)
                st[j].n_dup_seeds++;
        setting_stats(&st[j], set->runs);
    }
    bool *seen = xcalloc(n ? n : 1, sizeof(bool));
    for (size_t j = 0; j < n; j++)
        if (!seen[j])
            group_label(st, n, j, seen);
    free(seen);
    set->settings = st;
    set->n_settings = n;
    select_settings(set);
}

void plot_set_free(struct plot_set *set)
{
    for (size_t i = 0; i < set->n_settings; i++) {
        free(set->settings[i].runs);
        free(set->settings[i].label);
    }
    free(set->settings);
    report_free(&set->report);
    report_set_free(&set->report_runs);
    for (size_t i = 0; i < set->n_runs; i++)
        plot_run_free(&set->runs[i]);
    free(set->runs);
    memset(set, 0, sizeof(*set));
}
