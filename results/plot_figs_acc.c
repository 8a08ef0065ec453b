/*
 * plot_figs_acc.c: the accuracy figures (plot_figs.h): accuracy against
 * trainable parameters, shots, learning rate, peak memory and training
 * time. Each point is one setting: the mean test accuracy over its
 * finished seeds with the sample standard deviation as error bar; chance
 * and the zero-shot accuracy are reference lines; the y range follows
 * plot_acc_yrange.
 */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "results/plot_figs_impl.h"

/* does method m have drawn settings of several ranks (rank-sized) at d? */
static bool several_ranks(const struct plot_ctx *c, const char *m, const struct plot_dset *d, size_t budget)
{
    size_t r0 = 0;

    for (size_t i = 0; i < c->set->n_settings; i++) {
        const struct plot_setting *st = &c->set->settings[i];
        if (strcmp(st->key->method, m) || !plot_drawn(c, st) || st->key->budget != budget ||
            (d && !plot_dset_has(d, st->key)))
            continue;
        if (r0 && st->key->rank != r0)
            return true;
        r0 = st->key->rank;
    }
    return false;
}

/* one accuracy figure per data setting: x from xf, for drawn finished
 * settings (keep: extra filter) */
struct acc_fig {
    const char *base, *what, *xlabel;
    enum plot_kind kind;
    double (*xf)(const struct plot_ctx *c, const struct plot_setting *st, double *xerr);
};

static double x_params(const struct plot_ctx *c, const struct plot_setting *st, double *xerr)
{
    (void)c;
    *xerr = 0;
    return st->key->n_trainable > 0 ? (double)st->key->n_trainable : NAN;
}

/* mean and std over a setting's finished seeds of a per-run value */
static double run_mean(const struct plot_ctx *c, const struct plot_setting *st, size_t off, double *xerr)
{
    double *v = xmalloc_array(st->n, sizeof(double)), m;
    size_t used;

    for (size_t i = 0; i < st->n; i++) {
        const struct plot_run *r = &c->set->runs[st->runs[i]];
        v[i] = isfinite(r->accuracy) ? *(const double *)((const char *)r + off) : NAN;
    }
    plot_mean_std(v, st->n, &m, xerr, &used);
    free(v);
    return m;
}

static double x_memory(const struct plot_ctx *c, const struct plot_setting *st, double *xerr)
{
    return run_mean(c, st, offsetof(struct plot_run, peak_rss_mib), xerr);
}

static double x_time(const struct plot_ctx *c, const struct plot_setting *st, double *xerr)
{
    return run_mean(c, st, offsetof(struct plot_run, train_s), xerr);
}

static void acc_by_dset(struct plot_ctx *c, const struct acc_fig *af)
{
    const struct plot_set *set = c->set;
    struct plot_dset *ds = xcalloc(set->n_runs ? set->n_runs : 1, sizeof(*ds));
    size_t nd = plot_dsets(set, ds), drawn = 0;

    for (size_t j = 0; j < nd; j++) {
        struct plot_sb b = { 0 };
        struct plot_refline refs[2];
        double chance, lo = INFINITY, hi = -INFINITY;
        size_t nref = plot_acc_reflines(c, &ds[j], refs, &chance);
        char nb[256], name[96], dtext[48], title[400], ylabel[96];

        snprintf(ylabel, sizeof ylabel, "test accuracy (%s)", plot_seeds_note(c));
        for (size_t i = 0; i < set->n_settings; i++) {
            const struct plot_setting *st = &set->settings[i];
            double xe, x;
            if (!plot_drawn(c, st) || !plot_dset_has(&ds[j], st->key) || st->n_done == 0 ||
                !strcmp(st->key->method, "none"))
                continue;
            x = af->xf(c, st, &xe);
            if (!isfinite(x) || !(x > 0))
                continue;
            lo = fmin(lo, x);
            hi = fmax(hi, x);
            plot_setting_name(c, st, false, nb, sizeof nb);
            plot_sb_add(&b, nb, NULL, x, st->acc_mean, st->acc_std, isfinite(xe) ? xe : 0.0, st->n_done);
        }
        if (b.n) {
            plot_dset_text(&ds[j], dtext, sizeof dtext);
            plot_dset_name(af->base, &ds[j], drawn == 0, name, sizeof name);
            snprintf(title, sizeof title, "test accuracy vs %s, %s%s", af->what, dtext, plot_selection_note(c));
            struct plot_figure fig = { .kind = af->kind, .title = title, .xlabel = af->xlabel,
                                       .ylabel = ylabel, .reflines = refs, .n_reflines = nref,
                                       .chance = chance, .logx = hi > 10 * lo };
            plot_sb_draw(c, &b, &fig, name);
            drawn++;
        }
        plot_sb_free(&b);
    }
    if (drawn == 0)
        printf("note: %s: no finished run with a final accuracy and a %s; skipped\n", af->base, af->what);
    free(ds);
}

/* acc_shots: one figure per budget (the rank-free methods, full and none,
 * in each); rank-sized runs in one more, the rank in the name where a
 * method has several */
static int size_desc(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x > y ? -1 : x < y ? 1 : 0;
}

static void fig_acc_shots(struct plot_ctx *c)
{
    const struct plot_set *set = c->set;
    size_t *budgets = xcalloc(set->n_settings + 1, sizeof(*budgets)), nb = 0, drawn = 0;
    bool rank_runs = false;

    for (size_t i = 0; i < set->n_settings; i++) {
        const struct plot_setting *st = &set->settings[i];
        if (st->key->shots == 0 || st->n_done == 0 || !plot_drawn(c, st) ||
            !set->runs[st->runs[0]].has_rank)
            continue;
        if (st->key->budget == 0) {
            rank_runs = true;
            continue;
        }
        size_t j;
        for (j = 0; j < nb && budgets[j] != st->key->budget; j++)
            ;
        if (j == nb)
            budgets[nb++] = st->key->budget;
    }
    qsort(budgets, nb, sizeof(*budgets), size_desc);
    if (rank_runs || nb == 0)
        budgets[nb++] = 0;
    for (size_t b = 0; b < nb; b++) {
        struct plot_sb sb = { 0 };
        struct plot_refline refs[2];
        double chance;
        size_t nref = plot_acc_reflines(c, NULL, refs, &chance);
        char name[256], title[400], fname[64], ylabel[96];

        snprintf(ylabel, sizeof ylabel, "test accuracy (%s)", plot_seeds_note(c));

        for (size_t i = 0; i < set->n_settings; i++) {
            const struct plot_setting *st = &set->settings[i];
            bool has_rank = set->runs[st->runs[0]].has_rank;
            if (st->key->shots == 0 || st->n_done == 0 || !plot_drawn(c, st) || !strcmp(st->key->method, "none") ||
                (has_rank && st->key->budget != budgets[b]))
                continue;
            bool rk = has_rank && budgets[b] == 0 && several_ranks(c, st->key->method, NULL, 0);
            plot_setting_name(c, st, rk, name, sizeof name);
            plot_sb_add(&sb, name, NULL, (double)st->key->shots, st->acc_mean, st->acc_std, 0, st->n_done);
        }
        if (sb.n) {
            if (budgets[b] > 0)
                snprintf(title, sizeof title, "test accuracy vs shots, budget %zu trainable%s", budgets[b],
                         plot_selection_note(c));
            else
                snprintf(title, sizeof title, "test accuracy vs shots per class%s", plot_selection_note(c));
            if (drawn == 0)
                snprintf(fname, sizeof fname, "acc_shots");
            else if (budgets[b] > 0)
                snprintf(fname, sizeof fname, "acc_shots_b%zu", budgets[b]);
            else
                snprintf(fname, sizeof fname, "acc_shots_rank");
            struct plot_figure fig = { .kind = PLOT_ACC_SHOTS, .title = title, .ylabel = ylabel,
                                       .reflines = refs, .n_reflines = nref, .chance = chance };
            plot_sb_draw(c, &sb, &fig, fname);
            drawn++;
        }
        plot_sb_free(&sb);
    }
    if (drawn == 0)
        printf("note: acc_shots: no finished run with shots per class and a final accuracy; skipped\n");
    free(budgets);
}

/* the setting's label without its lr (and lr_min, the absolute floor
 * lr_min_ratio makes of it): what else differs in its group */
static void label_without_lr(const char *label, char *buf, size_t cap)
{
    size_t len = 0;
    const char *p = label;

    buf[0] = 0;
    while (*p) {
        const char *e = strchr(p, ' ');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (strncmp(p, "lr=", 3) && strncmp(p, "lr_min=", 7) && len + n + 2 < cap) {
            len += (size_t)snprintf(buf + len, cap - len, "%s%.*s", len ? " " : "", (int)n, p);
        }
        p += n;
        while (*p == ' ')
            p++;
    }
}

/* acc_lr: every setting (the walk the selection made), one series per
 * method (and what else differs), validation accuracy solid where the runs
 * have a split, test accuracy dashed */
static void fig_acc_lr(struct plot_ctx *c)
{
    const struct plot_set *set = c->set;
    struct plot_dset *ds = xcalloc(set->n_runs ? set->n_runs : 1, sizeof(*ds));
    size_t nd = plot_dsets(set, ds), drawn = 0;

    for (size_t j = 0; j < nd; j++) {
        struct plot_sb b = { 0 };
        struct plot_refline refs[2];
        double chance;
        size_t nref = plot_acc_reflines(c, &ds[j], refs, &chance), n_lr = 0;
        double lr0 = NAN;
        bool val = false;
        char nb[256], rest[200], name[96], dtext[48], title[400], ylabel[96];

        for (size_t i = 0; i < set->n_settings; i++) {
            const struct plot_setting *st = &set->settings[i];
            double lr = set->runs[st->runs[0]].lr;
            if (!plot_dset_has(&ds[j], st->key) || st->n_done == 0 || !strcmp(st->key->method, "none") ||
                !(lr > 0))
                continue;
            if (lr != lr0)
                n_lr++;
            lr0 = lr;
            label_without_lr(st->label, rest, sizeof rest);
            bool rk = set->runs[st->runs[0]].has_rank && several_ranks(c, st->key->method, &ds[j], st->key->budget);
            int len = snprintf(nb, sizeof nb, "%s", st->key->method);
            if (rk)
                len += snprintf(nb + len, sizeof nb - (size_t)len, " r%zu", st->key->rank);
            if (rest[0])
                snprintf(nb + len, sizeof nb - (size_t)len, " %s", rest);
            if (isfinite(st->val_mean)) {
                val = true;
                plot_sb_add(&b, nb, "validation", lr, st->val_mean, st->val_std, 0, st->n_done);
            }
            plot_sb_add(&b, nb, "test", lr, st->acc_mean, st->acc_std, 0, st->n_done);
        }
        if (b.n && n_lr > 1) {
            plot_dset_text(&ds[j], dtext, sizeof dtext);
            plot_dset_name("acc_lr", &ds[j], drawn == 0, name, sizeof name);
            snprintf(title, sizeof title, "accuracy vs learning rate, %s (every setting)", dtext);
            snprintf(ylabel, sizeof ylabel, "%saccuracy (%s)", val ? "" : "test ", plot_seeds_note(c));
            struct plot_figure fig = { .kind = PLOT_ACC_LR, .title = title, .ylabel = ylabel, .reflines = refs,
                                       .n_reflines = nref, .chance = chance };
            plot_sb_draw(c, &b, &fig, name);
            drawn++;
        }
        plot_sb_free(&b);
    }
    if (drawn == 0)
        printf("note: acc_lr: no data setting with finished runs at several learning rates; skipped\n");
    free(ds);
}

void plot_figs_acc(struct plot_ctx *c)
{
    static const struct acc_fig params = { "acc_params", "trainable parameters", "trainable parameters",
                                           PLOT_ACC_PARAMS, x_params };
    static const struct acc_fig memory = { "acc_memory", "peak memory", "peak resident memory (MiB)",
                                           PLOT_ACC_COST, x_memory };
    static const struct acc_fig time = { "acc_time", "training time", "training time (s, wall clock)",
                                         PLOT_ACC_COST, x_time };

    acc_by_dset(c, &params);
    fig_acc_shots(c);
    fig_acc_lr(c);
    acc_by_dset(c, &memory);
    acc_by_dset(c, &time);
}
