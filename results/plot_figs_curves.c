/*
 * plot_figs_curves.c: the figures over training steps (plot_figs.h):
 *   loss          training loss of every drawn run, one colour per method;
 *   curves_acc    the periodic evaluation's accuracy (validation split, or
 *                 the test set for runs without one) per method, mean +- std
 *                 band over seeds, chance and zero-shot lines; one figure
 *                 per data setting;
 *   curves_loss   training loss (solid) beside the evaluation loss (dashed)
 *                 per method, bands over seeds, so overfitting shows as the
 *                 gap opening; one figure per data setting;
 *   loss_shots    training loss per method (colour) and shot count (dash
 *                 type), bands over seeds, every data setting in one figure.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "results/plot_figs_impl.h"

enum which { TRAIN_LOSS, EVAL_ACC, EVAL_LOSS };

static const struct plot_curve *curve_of(const struct plot_run *r, enum which w)
{
    return w == TRAIN_LOSS ? &r->train_loss : w == EVAL_ACC ? &r->eval_acc : &r->eval_loss;
}

static int dbl_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* the seeds of st averaged step by step (every step any seed has; n says
 * how many seeds are behind each point) into b as (name, style) */
static void seed_curve(const struct plot_ctx *c, const struct plot_setting *st, enum which w, struct plot_sb *b,
                       const char *name, const char *style)
{
    size_t total = 0, nx = 0;

    for (size_t i = 0; i < st->n; i++)
        total += curve_of(&c->set->runs[st->runs[i]], w)->n;
    if (total == 0)
        return;
    double *xs = xmalloc_array(total, sizeof(double)), *v = xmalloc_array(st->n, sizeof(double));
    size_t *pos = xcalloc(st->n, sizeof(size_t));
    for (size_t i = 0; i < st->n; i++) {
        const struct plot_curve *cv = curve_of(&c->set->runs[st->runs[i]], w);
        memcpy(xs + nx, cv->x, cv->n * sizeof(double));
        nx += cv->n;
    }
    qsort(xs, nx, sizeof(double), dbl_cmp);
    for (size_t k = 0; k < nx; k++) {
        if (k > 0 && xs[k] == xs[k - 1])
            continue;
        for (size_t i = 0; i < st->n; i++) {
            const struct plot_curve *cv = curve_of(&c->set->runs[st->runs[i]], w);
            while (pos[i] < cv->n && cv->x[pos[i]] < xs[k])
                pos[i]++;
            v[i] = pos[i] < cv->n && cv->x[pos[i]] == xs[k] ? cv->y[pos[i]] : NAN;
        }
        double m, sd;
        size_t used;
        plot_mean_std(v, st->n, &m, &sd, &used);
        if (used)
            plot_sb_add(b, name, style, xs[k], m, sd, 0, used);
    }
    free(xs);
    free(v);
    free(pos);
}

static void fig_loss(struct plot_ctx *c)
{
    const struct plot_set *set = c->set;
    struct plot_series *ser = xcalloc(set->n_runs ? set->n_runs : 1, sizeof(*ser));
    size_t k = 0;
    char title[160];

    for (size_t s = 0; s < set->n_settings; s++) {
        const struct plot_setting *st = &set->settings[s];
        if (!plot_drawn(c, st))
            continue;
        for (size_t i = 0; i < st->n; i++) {
            const struct plot_run *r = &set->runs[st->runs[i]];
            if (r->train_loss.n)
                ser[k++] = (struct plot_series){ .name = r->key.method, .n = r->train_loss.n, .x = r->train_loss.x,
                                                 .y = r->train_loss.y };
        }
    }
    if (k == 0) {
        printf("note: loss: no run has training rows yet; skipped\n");
    } else {
        snprintf(title, sizeof title, "training loss, every seed (%zu run%s)%s", k, k == 1 ? "" : "s",
                 plot_selection_note(c));
        struct plot_figure fig = { .kind = PLOT_LOSS, .title = title, .series = ser, .n_series = k, .logy = 1 };
        plot_ctx_draw(c, &fig, "loss");
    }
    free(ser);
}

/* the split the drawn runs' /eval rows evaluate: "val", "test", or "mixed" */
static const char *eval_split(const struct plot_ctx *c, const struct plot_dset *d)
{
    const char *split = NULL;

    for (size_t i = 0; i < c->set->n_runs; i++) {
        const struct plot_run *r = &c->set->runs[i];
        if (!r->eval_acc.n || (d && !plot_dset_has(d, &r->key)))
            continue;
        if (split && strcmp(split, r->eval_split))
            return "mixed";
        split = r->eval_split;
    }
    return split ? split : "test";
}

/* is st its method's largest drawn budget (or rank) at its data setting?
 * The curve figures draw one line (pair) per method: that one. */
static bool largest_size(const struct plot_ctx *c, const struct plot_setting *st)
{
    size_t size = st->key->budget ? st->key->budget : st->key->rank;

    for (size_t i = 0; i < c->set->n_settings; i++) {
        const struct plot_setting *o = &c->set->settings[i];
        size_t os = o->key->budget ? o->key->budget : o->key->rank;
        if (plot_drawn(c, o) && !strcmp(o->key->method, st->key->method) && o->key->shots == st->key->shots &&
            o->key->fraction == st->key->fraction && os > size)
            return false;
    }
    return true;
}

/* a title line, "largest budget or rank per method", when some smaller
 * one is left out */
static const char *size_note(const struct plot_ctx *c)
{
    for (size_t i = 0; i < c->set->n_settings; i++)
        if (plot_drawn(c, &c->set->settings[i]) && !largest_size(c, &c->set->settings[i]))
            return "\nlargest budget or rank per method";
    return "";
}

/* curves_acc and curves_loss for each data setting */
static void fig_curves(struct plot_ctx *c, bool loss)
{
    const struct plot_set *set = c->set;
    struct plot_dset *ds = xcalloc(set->n_runs ? set->n_runs : 1, sizeof(*ds));
    size_t nd = plot_dsets(set, ds), drawn = 0;
    const char *base = loss ? "curves_loss" : "curves_acc";

    for (size_t j = 0; j < nd; j++) {
        struct plot_sb b = { 0 };
        struct plot_refline refs[2];
        double chance = 0;
        size_t nref = loss ? 0 : plot_acc_reflines(c, &ds[j], refs, &chance);
        const char *split = eval_split(c, &ds[j]);
        const char *ev = !strcmp(split, "val") ? "validation" : !strcmp(split, "test") ? "test" : "val or test";
        char nb[256], name[96], dtext[48], title[400], ylabel[160], style[48];

        for (size_t i = 0; i < set->n_settings; i++) {
            const struct plot_setting *st = &set->settings[i];
            if (!plot_drawn(c, st) || !plot_dset_has(&ds[j], st->key) || !largest_size(c, st) ||
                !strcmp(st->key->method, "none"))
                continue;
            plot_setting_name(c, st, false, nb, sizeof nb);
            if (loss) {
                seed_curve(c, st, TRAIN_LOSS, &b, nb, "train");
                snprintf(style, sizeof style, "%s", ev);
                seed_curve(c, st, EVAL_LOSS, &b, nb, style);
            } else {
                seed_curve(c, st, EVAL_ACC, &b, nb, NULL);
            }
        }
        if (b.n) {
            plot_dset_text(&ds[j], dtext, sizeof dtext);
            plot_dset_name(base, &ds[j], drawn == 0, name, sizeof name);
            if (loss) {
                snprintf(title, sizeof title, "training and %s loss, %s%s%s", ev, dtext, size_note(c),
                         plot_selection_note(c));
                snprintf(ylabel, sizeof ylabel, "loss (%s)", plot_seeds_note(c));
            } else {
                snprintf(title, sizeof title, "%s accuracy during training, %s%s%s", ev, dtext, size_note(c),
                         plot_selection_note(c));
                snprintf(ylabel, sizeof ylabel, "%s accuracy (%s)", ev, plot_seeds_note(c));
            }
            struct plot_figure fig = { .kind = PLOT_CURVE, .title = title, .ylabel = ylabel, .logy = loss,
                                       .reflines = refs, .n_reflines = nref, .chance = chance,
                                       .acc_yrange = !loss };
            plot_sb_draw(c, &b, &fig, name);
            drawn++;
        }
        plot_sb_free(&b);
    }
    if (drawn == 0)
        printf("note: %s: no run has evaluation rows yet; skipped\n", base);
    free(ds);
}

static void fig_loss_shots(struct plot_ctx *c)
{
    const struct plot_set *set = c->set;
    struct plot_sb b = { 0 };
    struct plot_dset *ds = xcalloc(set->n_runs ? set->n_runs : 1, sizeof(*ds));
    size_t nd = plot_dsets(set, ds);
    char nb[256], style[48], title[300];

    /* fewest shots first, so the legend reads upwards */
    for (size_t j = nd; j-- > 0;)
        for (size_t i = 0; i < set->n_settings; i++) {
            const struct plot_setting *st = &set->settings[i];
            if (!plot_drawn(c, st) || !plot_dset_has(&ds[j], st->key) || !largest_size(c, st) ||
                !strcmp(st->key->method, "none"))
                continue;
            plot_dset_text(&ds[j], style, sizeof style);
            seed_curve(c, st, TRAIN_LOSS, &b, plot_setting_name(c, st, false, nb, sizeof nb), style);
        }
    if (nd < 2)
        printf("note: loss_shots: one data setting only (curves_loss shows it); skipped\n");
    else if (b.n == 0)
        printf("note: loss_shots: no run has training rows yet; skipped\n");
    else {
        char ylabel[96];
        snprintf(title, sizeof title, "training loss by shots (line style)%s%s", size_note(c),
                 plot_selection_note(c));
        snprintf(ylabel, sizeof ylabel, "training loss (%s)", plot_seeds_note(c));
        struct plot_figure fig = { .kind = PLOT_CURVE, .title = title, .ylabel = ylabel, .logy = 1 };
        plot_sb_draw(c, &b, &fig, "loss_shots");
    }
    plot_sb_free(&b);
    free(ds);
}

void plot_figs_curves(struct plot_ctx *c)
{
    fig_loss(c);
    fig_curves(c, false);
    fig_curves(c, true);
    fig_loss_shots(c);
}
