/*
 * plot_figs.c: what the figure families share (plot_figs.h): drawing one
 * figure, which settings are drawn and their names, and the series
 * builder (plot_figs_impl.h).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/status.h"
#include "results/plot_figs.h"
#include "results/plot_figs_impl.h"

void plot_ctx_draw(struct plot_ctx *c, struct plot_figure *fig, const char *name)
{
    char stem[4096];
    int rc;

    snprintf(stem, sizeof stem, "%s/%s", c->outdir, name);
    fig->stem = stem;
    rc = plot_write(fig);
    if (rc == RL_OK) {
        printf("wrote %s.{png,svg,gp,tsv}\n", stem);
        c->n_written++;
    } else if (rc == RL_ERR_NA) {
        if (!c->gnuplot_missing)
            printf("note: %s\n", rl_error_msg());
        c->gnuplot_missing = true;
        printf("wrote %s.{gp,tsv} (not rendered)\n", stem);
        c->n_written++;
    } else {
        fprintf(stderr, "randlora plot: %s: %s\n", name, rl_error_msg());
        c->status = rl_exit_code(rc) == 1 || c->status == 0 ? rl_exit_code(rc) : c->status;
    }
}

bool plot_drawn(const struct plot_ctx *c, const struct plot_setting *st)
{
    return c->all_settings || st->selected || st->group_unselected;
}

const char *plot_setting_name(const struct plot_ctx *c, const struct plot_setting *st, bool rank, char *buf,
                              size_t cap)
{
    size_t len = (size_t)snprintf(buf, cap, "%s", st->key->method);

    if (rank && len < cap)
        len += (size_t)snprintf(buf + len, cap - len, " r%zu", st->key->rank);
    if ((c->all_settings || st->group_unselected) && st->label[0] && len < cap)
        snprintf(buf + len, cap - len, " %s", st->label);
    return buf;
}

const char *plot_selection_note(const struct plot_ctx *c)
{
    bool selected = false, unselected = false;

    for (size_t i = 0; i < c->set->n_settings; i++) {
        const struct plot_setting *st = &c->set->settings[i];
        if (st->group_settings > 1 && st->selected)
            selected = true;
        if (st->group_unselected)
            unselected = true;
    }
    if (c->all_settings)
        return selected || unselected ? "\nevery setting" : "";
    if (selected && unselected)
        return "\nselected setting by best mean val accuracy; groups without val: every setting";
    if (selected)
        return "\nselected setting per method: best mean val accuracy";
    if (unselected)
        return "\nevery setting: no validation accuracy to select by";
    return "";
}

const char *plot_seeds_note(const struct plot_ctx *c)
{
    for (size_t i = 0; i < c->set->n_settings; i++)
        if (plot_drawn(c, &c->set->settings[i]) && c->set->settings[i].n > 1)
            return "mean +- std over seeds";
    return "one seed: no spread shown";
}

/* ------------------------------------------------------------ data settings */

bool plot_dset_has(const struct plot_dset *d, const struct run_key *k)
{
    return k->shots > 0 ? k->shots == d->shots : (d->shots == 0 && k->fraction == d->fraction);
}

/* largest shots first, then fractions largest first */
static int dset_cmp(const void *a, const void *b)
{
    const struct plot_dset *x = a, *y = b;

    if ((x->shots > 0) != (y->shots > 0))
        return x->shots > 0 ? -1 : 1;
    if (x->shots != y->shots)
        return x->shots > y->shots ? -1 : 1;
    return x->fraction > y->fraction ? -1 : x->fraction < y->fraction ? 1 : 0;
}

size_t plot_dsets(const struct plot_set *set, struct plot_dset *out)
{
    size_t n = 0;

    for (size_t i = 0; i < set->n_runs; i++) {
        const struct run_key *k = &set->runs[i].key;
        size_t j;
        for (j = 0; j < n; j++)
            if (plot_dset_has(&out[j], k))
                break;
        if (j == n)
            out[n++] = (struct plot_dset){ k->shots, k->shots ? 0.0 : k->fraction };
    }
    qsort(out, n, sizeof(*out), dset_cmp);
    return n;
}

void plot_dset_name(const char *base, const struct plot_dset *d, bool first, char *buf, size_t cap)
{
    if (first)
        snprintf(buf, cap, "%s", base);
    else if (d->shots > 0)
        snprintf(buf, cap, "%s_s%zu", base, d->shots);
    else
        snprintf(buf, cap, "%s_f%g", base, d->fraction);
}

void plot_dset_text(const struct plot_dset *d, char *buf, size_t cap)
{
    if (d->shots > 0)
        snprintf(buf, cap, "%zu shot%s", d->shots, d->shots == 1 ? "" : "s");
    else
        snprintf(buf, cap, "fraction %g", d->fraction);
}

/* ----------------------------------------------------------- series builder */

void plot_sb_add(struct plot_sb *b, const char *name, const char *style, double x, double y, double e, double xe,
                 size_t n)
{
    size_t i;

    for (i = 0; i < b->n; i++)
        if (!strcmp(b->s[i].name, name) && (b->s[i].style == NULL) == (style == NULL) &&
            (!style || !strcmp(b->s[i].style, style)))
            break;
    if (i == b->n) {
        if (b->n == b->cap) {
            b->cap = b->cap ? 2 * b->cap : 8;
            b->s = xrealloc_array(b->s, b->cap, sizeof(*b->s));
        }
        b->s[i] = (struct plot_sb_series){ .name = xstrdup(name), .style = style ? xstrdup(style) : NULL };
        b->n++;
    }
    struct plot_sb_series *s = &b->s[i];
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 16;
        s->x = xrealloc_array(s->x, s->cap, sizeof(double));
        s->y = xrealloc_array(s->y, s->cap, sizeof(double));
        s->e = xrealloc_array(s->e, s->cap, sizeof(double));
        s->xe = xrealloc_array(s->xe, s->cap, sizeof(double));
        s->cnt = xrealloc_array(s->cnt, s->cap, sizeof(size_t));
    }
    s->x[s->n] = x;
    s->y[s->n] = y;
    s->e[s->n] = e;
    s->xe[s->n] = xe;
    s->cnt[s->n] = n;
    s->n++;
}

struct plot_series *plot_sb_series(const struct plot_sb *b)
{
    struct plot_series *ser = xcalloc(b->n ? b->n : 1, sizeof(*ser));

    for (size_t i = 0; i < b->n; i++)
        ser[i] = (struct plot_series){ .name = b->s[i].name, .n = b->s[i].n, .x = b->s[i].x, .y = b->s[i].y,
                                       .yerr = b->s[i].e, .xerr = b->s[i].xe, .count = b->s[i].cnt,
                                       .style = b->s[i].style };
    return ser;
}

void plot_sb_free(struct plot_sb *b)
{
    for (size_t i = 0; i < b->n; i++) {
        struct plot_sb_series *s = &b->s[i];
        free(s->name);
        free(s->style);
        free(s->x);
        free(s->y);
        free(s->e);
        free(s->xe);
        free(s->cnt);
    }
    free(b->s);
    memset(b, 0, sizeof(*b));
}

void plot_sb_draw(struct plot_ctx *c, struct plot_sb *b, struct plot_figure *fig, const char *name)
{
    struct plot_series *ser = plot_sb_series(b);

    fig->series = ser;
    fig->n_series = b->n;
    plot_ctx_draw(c, fig, name);
    free(ser);
}

/* ------------------------------------------------------- reference lines */

size_t plot_acc_reflines(const struct plot_ctx *c, const struct plot_dset *d, struct plot_refline *out,
                         double *chance)
{
    const struct plot_set *set = c->set;
    size_t classes = 0, n = 0;
    bool mixed = false;
    double zs[2] = { 0, 0 };   /* sum, count: this data setting's none runs */
    double za[2] = { 0, 0 };   /* any data setting's */
    bool probe = false;        /* a none run with model.head = linear: a linear probe */

    for (size_t i = 0; i < set->n_runs; i++) {
        const struct plot_run *r = &set->runs[i];
        if (d && !plot_dset_has(d, &r->key) && strcmp(r->key.method, "none"))
            continue;
        if (r->n_classes && classes && r->n_classes != classes)
            mixed = true;
        if (r->n_classes)
            classes = r->n_classes;
        if (!strcmp(r->key.method, "none") && isfinite(r->accuracy)) {
            const char *head = run_key_get(&r->key, "model.head");

            probe = probe || (head && !strcmp(head, "linear"));
            za[0] += r->accuracy;
            za[1]++;
            if (!d || plot_dset_has(d, &r->key)) {
                zs[0] += r->accuracy;
                zs[1]++;
            }
        }
    }
    *chance = classes && !mixed ? 1.0 / (double)classes : 0.0;
    if (*chance > 0)
        out[n++] = (struct plot_refline){ "chance", *chance };
    const char *label = probe ? "linear probe (none)" : "zero-shot (none)";
    if (zs[1] > 0)
        out[n++] = (struct plot_refline){ label, zs[0] / zs[1] };
    else if (za[1] > 0)
        out[n++] = (struct plot_refline){ label, za[0] / za[1] };
    return n;
}
