/*
 * plot.c: figure data (the .tsv) and the checks of a figure (see plot.h);
 * the scripts are written by plot_gp.c, gnuplot run by plot_render.c.
 *
 * Files are written to STEM.ext.tmp and renamed into place, so a figure
 * drawn while a run trains never reads a half-written data file. Numbers are
 * printed with %.10g in the C locale the program runs in; nothing in the
 * files depends on time or environment, so the same figure gives the same
 * bytes.
 */
#include "results/plot.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/status.h"
#include "results/plot_impl.h"

const char *plot_kind_name(enum plot_kind kind)
{
    switch (kind) {
    case PLOT_LOSS:       return "loss";
    case PLOT_ACC_PARAMS: return "acc_params";
    case PLOT_ACC_SHOTS:  return "acc_shots";
    case PLOT_SPECTRUM:   return "spectrum";
    case PLOT_RANK:       return "rank";
    case PLOT_ACC_LR:     return "acc_lr";
    case PLOT_ACC_COST:   return "acc_cost";
    case PLOT_CURVE:      return "curve";
    case PLOT_LAYER:      return "layer";
    }
    return "unknown";
}

int plot_is_acc(enum plot_kind k)
{
    return k == PLOT_ACC_PARAMS || k == PLOT_ACC_SHOTS || k == PLOT_ACC_LR || k == PLOT_ACC_COST;
}

int plot_uses_acc_range(const struct plot_figure *fig)
{
    return plot_is_acc(fig->kind) || ((fig->kind == PLOT_CURVE || fig->kind == PLOT_LAYER) && fig->acc_yrange);
}

void plot_acc_yrange(double data_lo, double data_hi, double chance, double *lo, double *hi)
{
    const double step = 0.05, margin = 0.01;
    double c = isfinite(chance) && chance > 0.0 ? chance : 0.0;

    if (!isfinite(data_lo) || !isfinite(data_hi) || data_lo > data_hi)
        data_lo = data_hi = c;
    double l = fmin(c, data_lo) - margin, h = data_hi + margin;
    /* the 1e-9 keeps a value already on the grid (0.3 + 0.01 - 0.01) there */
    l = floor(l / step + 1e-9) * step;
    h = ceil(h / step - 1e-9) * step;
    if (l < 0.0)
        l = 0.0;
    if (h > 1.0)
        h = fmax(1.0, data_hi);      /* never cut data off */
    if (h - l < PLOT_ACC_MIN_SPAN) {
        h = fmin(fmax(1.0, h), l + PLOT_ACC_MIN_SPAN);
        if (h - l < PLOT_ACC_MIN_SPAN)
            l = fmax(0.0, h - PLOT_ACC_MIN_SPAN);
    }
    *lo = l;
    *hi = h;
}

/* ------------------------------------------------------------------------ */
/* text helpers                                                              */

void plot_put_plain(FILE *f, const char *s)
{
    for (; *s; s++)
        fputc((unsigned char)*s < 0x20 || *s == 0x7f ? ' ' : *s, f);
}

/* a gnuplot single-quoted string: no escapes inside except '' for ' */
void plot_put_quoted(FILE *f, const char *s)
{
    fputc('\'', f);
    for (; *s; s++) {
        if (*s == '\'')
            fputs("''", f);
        else
            fputc((unsigned char)*s < 0x20 || *s == 0x7f ? ' ' : *s, f);
    }
    fputc('\'', f);
}

void plot_put_num(FILE *f, double v)
{
    if (v == 0.0)
        v = 0.0;   /* no "-0" */
    fprintf(f, "%.10g", v);
}

const char *plot_series_name(const struct plot_series *s, size_t i, char *buf, size_t cap)
{
    if (s->name)
        return s->name;
    snprintf(buf, cap, "series %zu", i + 1);
    return buf;
}

const char *plot_base_name(const char *path)
{
    const char *s = strrchr(path, '/');

    return s ? s + 1 : path;
}

/* ------------------------------------------------------------------------ */
/* per-series preparation                                                    */

static int cmp_point(const void *a, const void *b)
{
    const struct plot_point *p = a, *q = b;

    if (p->x < q->x)
        return -1;
    if (p->x > q->x)
        return 1;
    return p->order < q->order ? -1 : p->order > q->order;
}

/* points of one series with equal x averaged: mean and sample std */
static size_t average_per_x(struct plot_prepared *pr, size_t n)
{
    size_t out = 0;

    for (size_t i = 0; i < n;) {
        size_t j = i;
        double mean = 0.0, ss = 0.0;

        while (j < n && pr->p[j].x == pr->p[i].x)
            j++;
        for (size_t k = i; k < j; k++)
            mean += pr->p[k].y;
        mean /= (double)(j - i);
        for (size_t k = i; k < j; k++)
            ss += (pr->p[k].y - mean) * (pr->p[k].y - mean);
        pr->p[out] = (struct plot_point){pr->p[i].x, mean, j - i > 1 ? sqrt(ss / (double)(j - i - 1)) : 0.0,
                                         0.0, j - i, pr->p[i].order};
        if (j - i > 1)
            pr->has_err = 1;
        out++;
        i = j;
    }
    return out;
}

/* finite points of one series, sorted and averaged per x for the ACC kinds,
 * normalised for a normalised spectrum */
static void prepare(struct plot_prepared *pr, const struct plot_figure *fig, const struct plot_series *s)
{
    size_t n = 0;

    pr->p = xmalloc_array(s->n ? s->n : 1, sizeof(*pr->p));
    pr->has_err = 0;
    for (size_t i = 0; i < s->n; i++) {
        double x = s->x ? s->x[i] : (double)(i + 1);
        double y = s->y[i], e = s->yerr ? s->yerr[i] : 0.0, xe = s->xerr ? s->xerr[i] : 0.0;

        if (!isfinite(x) || !isfinite(y) || !isfinite(e) || !isfinite(xe))
            continue;
        pr->p[n++] = (struct plot_point){x, y, e, xe, s->count ? s->count[i] : 1, i};
        if (e != 0.0)
            pr->has_err = 1;   /* bars and bands only where there is a spread */
    }

    if (plot_is_acc(fig->kind) && fig->kind != PLOT_ACC_COST) {
        qsort(pr->p, n, sizeof(*pr->p), cmp_point);
        if (!s->yerr)
            n = average_per_x(pr, n);
    } else if (fig->kind == PLOT_SPECTRUM && fig->normalise && n > 0) {
        double m = 0.0;

        for (size_t i = 0; i < n; i++)
            m = fmax(m, fabs(pr->p[i].y));
        if (m > 0.0)
            for (size_t i = 0; i < n; i++)
                pr->p[i].y /= m;
    }
    pr->n = n;
}

/* ------------------------------------------------------------------------ */
/* files                                                                     */

char *plot_path_with(const char *stem, const char *ext)
{
    size_t len = strlen(stem) + strlen(ext) + 1;
    char *p = xmalloc(len);

    snprintf(p, len, "%s%s", stem, ext);
    return p;
}

FILE *plot_open_tmp(const char *path, char **tmp)
{
    FILE *f;

    *tmp = plot_path_with(path, ".tmp");
    f = fopen(*tmp, "w");
    if (!f) {
        rl_error_set(RL_ERR_IO, "plot: cannot write %s: %s", *tmp, strerror(errno));
        free(*tmp);
        *tmp = NULL;
    }
    return f;
}

int plot_close_tmp(FILE *f, char *tmp, const char *path)
{
    int bad = ferror(f);
    int err = 0;

    errno = 0;
    if (fclose(f) != 0 || bad)
        err = errno ? errno : EIO;
    if (!err && rename(tmp, path) != 0)
        err = errno;
    if (err) {
        remove(tmp);
        free(tmp);
        return rl_error_set(RL_ERR_IO, "plot: cannot write %s: %s", path, strerror(err));
    }
    free(tmp);
    return RL_OK;
}

static const char *column_names(const struct plot_figure *fig)
{
    switch (fig->kind) {
    case PLOT_LOSS:       return "step\tloss";
    case PLOT_ACC_PARAMS: return "params\tmean_acc\tstd_acc\tn";
    case PLOT_ACC_SHOTS:  return "shots\tmean_acc\tstd_acc\tn";
    case PLOT_ACC_LR:     return "lr\tmean_acc\tstd_acc\tn";
    case PLOT_ACC_COST:   return "cost\tmean_acc\tstd_acc\tn\tstd_cost";
    case PLOT_CURVE:      return "step\tmean\tstd\tn";
    case PLOT_SPECTRUM:   return fig->normalise ? "index\ts_over_s1" : "index\ts";
    case PLOT_RANK:       return "layer\trank";
    case PLOT_LAYER:      return "layer\tmean\tstd\tn";
    }
    return "x\ty";
}

/* the kinds whose .tsv rows carry mean, std and n */
static int has_stats(enum plot_kind k)
{
    return plot_is_acc(k) || k == PLOT_CURVE || k == PLOT_LAYER;
}

static int write_tsv(const struct plot_figure *fig, const struct plot_prepared *pr, const char *path)
{
    char *tmp, nb[32];
    FILE *f = plot_open_tmp(path, &tmp);

    if (!f)
        return RL_ERR_IO;
    fputs("# ", f);
    plot_put_plain(f, fig->title ? fig->title : plot_kind_name(fig->kind));
    fprintf(f, "\n# randlora figure data (%s), written by results/plot.c: one block per "
               "series (gnuplot: index N), blocks separated by two blank lines\n",
            plot_kind_name(fig->kind));
    fprintf(f, "# columns: %s\n", column_names(fig));
    for (size_t i = 0; i < fig->n_reflines; i++) {
        fputs("# reference line: ", f);
        plot_put_plain(f, fig->reflines[i].label ? fig->reflines[i].label : "reference");
        fputs(" = ", f);
        plot_put_num(f, fig->reflines[i].y);
        fputc('\n', f);
    }
    for (size_t i = 0; i < fig->n_series; i++) {
        const char *name = plot_series_name(&fig->series[i], i, nb, sizeof(nb));

        if (pr[i].block < 0) {
            fputs("# series '", f);
            plot_put_plain(f, name);
            fputs("': no finite points, not drawn\n", f);
            continue;
        }
        if (pr[i].block > 0)
            fputs("\n\n", f);
        fprintf(f, "# index %d: ", pr[i].block);
        plot_put_plain(f, name);
        if (fig->series[i].style) {
            fputs(" (", f);
            plot_put_plain(f, fig->series[i].style);
            fputc(')', f);
        }
        fputc('\n', f);
        for (size_t j = 0; j < pr[i].n; j++) {
            const struct plot_point *p = &pr[i].p[j];

            plot_put_num(f, p->x);
            fputc('\t', f);
            plot_put_num(f, p->y);
            if (has_stats(fig->kind)) {
                fputc('\t', f);
                plot_put_num(f, p->e);
                fprintf(f, "\t%zu", p->n);
            }
            if (fig->kind == PLOT_ACC_COST) {
                fputc('\t', f);
                plot_put_num(f, p->xe);
            }
            fputc('\n', f);
        }
    }
    return plot_close_tmp(f, tmp, path);
}

static int check_figure(const struct plot_figure *fig)
{
    if (!fig || !fig->stem || !*fig->stem)
        return rl_error_set(RL_ERR_ARG, "plot: no output stem");
    if ((unsigned)fig->kind >= PLOT_N_KINDS)
        return rl_error_set(RL_ERR_ARG, "plot %s: unknown figure kind %d", fig->stem, (int)fig->kind);
    if (fig->n_series == 0 || !fig->series)
        return rl_error_set(RL_ERR_ARG, "plot %s: no series", fig->stem);
    if (fig->n_series > 100000)
        return rl_error_set(RL_ERR_ARG, "plot %s: %zu series", fig->stem, fig->n_series);
    for (size_t i = 0; i < fig->n_series; i++)
        if (fig->series[i].n > 0 && !fig->series[i].y)
            return rl_error_set(RL_ERR_ARG, "plot %s: series %zu has no y values", fig->stem, i);
    if (fig->n_xtics > 0 && (!fig->xtic_at || !fig->xtic_labels))
        return rl_error_set(RL_ERR_ARG, "plot %s: %zu x tics without positions or labels", fig->stem,
                            fig->n_xtics);
    if (fig->n_reflines > 0 && !fig->reflines)
        return rl_error_set(RL_ERR_ARG, "plot %s: %zu reference lines without values", fig->stem,
                            fig->n_reflines);
    for (size_t i = 0; i < fig->n_reflines; i++)
        if (!isfinite(fig->reflines[i].y))
            return rl_error_set(RL_ERR_ARG, "plot %s: reference line %zu is not finite", fig->stem, i);
    return RL_OK;
}

/* index of the first of series 0..i-1 whose string (name or style) equals
 * series i's, or i */
static size_t first_same(const struct plot_figure *fig, size_t i, int style)
{
    char nb[32], nb2[32];
    const char *a = style ? fig->series[i].style : plot_series_name(&fig->series[i], i, nb, sizeof nb);

    for (size_t j = 0; j < i; j++) {
        const char *b = style ? fig->series[j].style : plot_series_name(&fig->series[j], j, nb2, sizeof nb2);
        if (a && b && !strcmp(a, b))
            return j;
    }
    return i;
}

int plot_write_files(const struct plot_figure *fig)
{
    struct plot_prepared *pr;
    char *tsv, *gp;
    int rc, n_groups = 0, n_dashes = 0, n_blocks = 0;

    if ((rc = check_figure(fig)) != RL_OK)
        return rc;
    pr = xcalloc(fig->n_series, sizeof(*pr));
    for (size_t i = 0; i < fig->n_series; i++) {
        size_t j = first_same(fig, i, 0);

        prepare(&pr[i], fig, &fig->series[i]);
        pr[i].block = pr[i].n > 0 ? n_blocks++ : -1;
        pr[i].group = j < i ? pr[j].group : n_groups++;
        if (!fig->series[i].style)
            pr[i].dash = -1;
        else
            pr[i].dash = (j = first_same(fig, i, 1)) < i ? pr[j].dash : n_dashes++;
        /* key entry on the first drawn series of the group */
        pr[i].first = pr[i].block >= 0;
        for (j = 0; j < i && pr[i].first; j++)
            if (pr[j].group == pr[i].group && pr[j].block >= 0)
                pr[i].first = 0;
    }

    if (n_blocks == 0) {
        rc = rl_error_set(RL_ERR_ARG, "plot %s: no finite data points in %zu series", fig->stem, fig->n_series);
    } else {
        tsv = plot_path_with(fig->stem, ".tsv");
        gp = plot_path_with(fig->stem, ".gp");
        rc = write_tsv(fig, pr, tsv);
        if (rc == RL_OK)
            rc = plot_write_gp(fig, pr, n_groups, n_dashes, gp, plot_base_name(fig->stem));
        free(tsv);
        free(gp);
    }
    for (size_t i = 0; i < fig->n_series; i++)
        free(pr[i].p);
    free(pr);
    return rc;
}
