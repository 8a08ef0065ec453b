/*
 * plot_gp.c: the gnuplot script of a figure (see plot.h): terminal, styles,
 * axes per kind, the reference lines, the y range rule, the plot command,
 * and the same again for the SVG.
 */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/status.h"
#include "results/plot_impl.h"

#define N_STYLES 8
#define N_DASHES 5

/* Okabe & Ito (2008): blue, vermillion, bluish green, reddish purple, orange,
 * sky blue, black, yellow (last: weak on white) */
static const char *const palette[N_STYLES] = {
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442",
};
/* filled circle, square, triangle, diamond, inverted triangle; open ones */
static const int point_types[N_STYLES] = {7, 5, 9, 13, 11, 6, 4, 8};
/* a style's points where points are drawn: the linetype's own (filled)
 * for the first style, open ones for the others */
static const int style_points[N_DASHES] = {0, 6, 4, 8, 12};
/* solid, dashed, dotted, dash-dot, long dash */
static const int dash_types[N_DASHES] = {1, 2, 3, 4, 5};
#define REF_COLOUR "#505050"

static const char *default_xlabel(const struct plot_figure *fig)
{
    switch (fig->kind) {
    case PLOT_LOSS:
    case PLOT_CURVE:      return "step";
    case PLOT_ACC_PARAMS: return "trainable parameters";
    case PLOT_ACC_SHOTS:  return "shots per class";
    case PLOT_ACC_LR:     return "learning rate";
    case PLOT_ACC_COST:   return "cost";
    case PLOT_SPECTRUM:   return "index i";
    case PLOT_RANK:
    case PLOT_LAYER:      return "layer";
    }
    return "x";
}

static const char *default_ylabel(const struct plot_figure *fig)
{
    switch (fig->kind) {
    case PLOT_LOSS:       return "training loss";
    case PLOT_ACC_PARAMS:
    case PLOT_ACC_SHOTS:
    case PLOT_ACC_LR:
    case PLOT_ACC_COST:   return "accuracy";
    case PLOT_CURVE:      return "value";
    case PLOT_SPECTRUM:   return fig->normalise ? "s_i / s_1" : "singular value s_i";
    case PLOT_RANK:       return "rank";
    case PLOT_LAYER:      return "value";
    }
    return "y";
}

/* distinct positive x values over all drawn series, sorted; for tics */
static size_t distinct_x(const struct plot_prepared *pr, size_t n_series, double *out, size_t cap)
{
    size_t n = 0;

    for (size_t i = 0; i < n_series; i++)
        for (size_t j = 0; j < pr[i].n; j++) {
            double x = pr[i].p[j].x;
            size_t k = 0;

            if (!(x > 0.0))
                continue;
            while (k < n && out[k] < x)
                k++;
            if (k < n && out[k] == x)
                continue;
            if (n == cap)
                return cap + 1;   /* too many for named tics */
            memmove(out + k + 1, out + k, (n - k) * sizeof(*out));
            out[k] = x;
            n++;
        }
    return n;
}

static void x_extent(const struct plot_prepared *pr, size_t n_series, double *lo, double *hi, int positive)
{
    *lo = INFINITY;
    *hi = -INFINITY;
    for (size_t i = 0; i < n_series; i++)
        for (size_t j = 0; j < pr[i].n; j++) {
            double x = pr[i].p[j].x;

            if (positive && !(x > 0.0))
                continue;
            *lo = fmin(*lo, x);
            *hi = fmax(*hi, x);
        }
}

/* y extent with the error bars and the reference lines */
static void y_extent(const struct plot_figure *fig, const struct plot_prepared *pr, double *lo, double *hi)
{
    *lo = INFINITY;
    *hi = -INFINITY;
    for (size_t i = 0; i < fig->n_series; i++)
        for (size_t j = 0; j < pr[i].n; j++) {
            *lo = fmin(*lo, pr[i].p[j].y - pr[i].p[j].e);
            *hi = fmax(*hi, pr[i].p[j].y + pr[i].p[j].e);
        }
    for (size_t i = 0; i < fig->n_reflines; i++) {
        *lo = fmin(*lo, fig->reflines[i].y);
        *hi = fmax(*hi, fig->reflines[i].y);
    }
}

static void put_range(FILE *f, const char *axis, double lo, double hi)
{
    fprintf(f, "set %srange [", axis);
    plot_put_num(f, lo);
    fputc(':', f);
    plot_put_num(f, hi);
    fputs("]\n", f);
}

/* tics at each distinct x (learning rates, shot counts) while they fit */
static void named_x_tics(FILE *f, const struct plot_figure *fig, const struct plot_prepared *pr, double pad)
{
    double tics[24];
    size_t nt = distinct_x(pr, fig->n_series, tics, 24);

    if (nt < 1 || nt > 24)
        return;
    fputs("set xtics (", f);
    for (size_t i = 0; i < nt; i++) {
        if (i)
            fputs(", ", f);
        plot_put_num(f, tics[i]);
    }
    fputs(")\n", f);
    put_range(f, "x", tics[0] / pad, tics[nt - 1] * pad);
}

static void layer_x_tics(FILE *f, const struct plot_figure *fig, const struct plot_prepared *pr)
{
    double lo, hi;

    x_extent(pr, fig->n_series, &lo, &hi, 0);
    if (lo <= hi)
        put_range(f, "x", lo - 0.6, hi + 0.6);
    if (fig->n_xtics > 0 && fig->xtic_at && fig->xtic_labels) {
        fputs("set xtics rotate by 45 right noenhanced (", f);
        for (size_t i = 0; i < fig->n_xtics; i++) {
            if (i)
                fputs(", ", f);
            plot_put_quoted(f, fig->xtic_labels[i] ? fig->xtic_labels[i] : "");
            fputc(' ', f);
            plot_put_num(f, fig->xtic_at[i]);
        }
        fputs(")\n", f);
    } else if (lo <= hi && hi - lo <= 40) {
        fputs("set xtics 1\n", f);   /* one tic per layer while they fit */
    }
}

/* a text of several lines ('\n') as one gnuplot string: 'a' . "\n" . 'b' */
static void put_lines(FILE *f, const char *s)
{
    for (;;) {
        const char *nl = strchr(s, '\n');
        size_t n = nl ? (size_t)(nl - s) : strlen(s);
        char *line = xmalloc(n + 1);

        memcpy(line, s, n);
        line[n] = '\0';
        plot_put_quoted(f, line);
        free(line);
        if (!nl)
            return;
        fputs(" . \"\\n\" . ", f);
        s = nl + 1;
    }
}

/* a log y axis fitted to the data (gnuplot would round out to decades),
 * with a tic every factor of 2 when the data span less than 30x; data
 * spanning less than 4x get a linear axis (a log one would show one tic) */
static void log_y_range(FILE *f, const struct plot_figure *fig, const struct plot_prepared *pr)
{
    double lo = INFINITY, hi = -INFINITY;

    for (size_t i = 0; i < fig->n_series; i++)
        for (size_t j = 0; j < pr[i].n; j++) {
            double a = pr[i].p[j].y - pr[i].p[j].e, b = pr[i].p[j].y + pr[i].p[j].e;
            if (pr[i].p[j].y > 0) {
                lo = fmin(lo, a > 0 ? a : pr[i].p[j].y);
                hi = fmax(hi, b);
            }
        }
    if (!(lo <= hi) || hi < 4 * lo)
        return;
    fputs("set logscale y\n", f);
    put_range(f, "y", lo / 1.15, hi * 1.15);
    if (hi / lo < 30) {
        /* tics at 1-2-5 (1-2-3-5-7 within a decade) of each decade */
        static const double m3[] = {1, 2, 5}, m5[] = {1, 2, 3, 5, 7};
        const double *m = hi / lo < 10 ? m5 : m3;
        size_t nm = hi / lo < 10 ? 5 : 3;
        int first = 1;

        fputs("set ytics (", f);
        for (int d = (int)floor(log10(lo / 1.15)); d <= (int)ceil(log10(hi * 1.15)); d++)
            for (size_t k = 0; k < nm; k++) {
                double v = m[k] * pow(10.0, d);
                if (v < lo / 1.15 || v > hi * 1.15)
                    continue;
                fputs(first ? "" : ", ", f);
                plot_put_num(f, v);
                first = 0;
            }
        fputs(")\nset format y '%g'\n", f);
    }
}

/* the axes and key of each kind */
static void write_axes(FILE *f, const struct plot_figure *fig, const struct plot_prepared *pr, int n_groups)
{
    double lo, hi;

    switch (fig->kind) {
    case PLOT_LOSS:
    case PLOT_CURVE:
        if (fig->logy)
            log_y_range(f, fig, pr);
        break;
    case PLOT_ACC_PARAMS:
        fputs("set logscale x 10\nset format x '%.0s%c'\n", f);
        x_extent(pr, fig->n_series, &lo, &hi, 1);
        if (lo <= hi)
            put_range(f, "x", lo / 1.5, hi * 1.5);
        break;
    case PLOT_ACC_SHOTS:
        fputs("set logscale x 2\n", f);
        named_x_tics(f, fig, pr, 1.4);
        break;
    case PLOT_ACC_LR:
        fputs("set logscale x 10\nset format x '%g'\n", f);
        named_x_tics(f, fig, pr, 1.6);
        break;
    case PLOT_ACC_COST:
        if (fig->logx)
            fputs("set logscale x 10\n", f);
        x_extent(pr, fig->n_series, &lo, &hi, fig->logx);
        if (lo <= hi && fig->logx)
            put_range(f, "x", lo / 1.5, hi * 1.5);
        else if (lo <= hi) {
            /* a tenth of the range each side; 5% of the value when all equal */
            double pad = fmax(0.1 * (hi - lo), fmax(0.05 * fabs(hi), 1e-9));
            put_range(f, "x", lo - pad, hi + pad);
        }
        break;
    case PLOT_SPECTRUM:
        fputs("set logscale y\nset format y '%.0e'\n", f);
        break;
    case PLOT_RANK:
        fputs("set style fill solid 0.85 border rgb 'black'\nset yrange [0:*]\n", f);
        fprintf(f, "set boxwidth %.6g absolute\n", 0.8 / n_groups);
        layer_x_tics(f, fig, pr);
        break;
    case PLOT_LAYER:
        layer_x_tics(f, fig, pr);
        break;
    }
    /* the key beside the plot (never over the data), above it for boxes */
    if (fig->kind == PLOT_RANK)
        fputs("set key tmargin center horizontal noenhanced\n", f);
    else
        fputs("set key outside right top vertical noenhanced box\n", f);

    if (plot_uses_acc_range(fig)) {
        y_extent(fig, pr, &lo, &hi);
        plot_acc_yrange(lo, hi, fig->chance, &lo, &hi);
        fprintf(f, "# y range rule (plot_acc_yrange): from chance or below, at least %g accuracy wide\n",
                PLOT_ACC_MIN_SPAN);
        put_range(f, "y", lo, hi);
    } else if (fig->ymin < fig->ymax) {
        put_range(f, "y", fig->ymin, fig->ymax);
    } else if (fig->yzero && !fig->logy) {
        fputs("set yrange [0:*]\n", f);
    }
}

/* reference lines: dashed grey, labelled at the left above the line; a
 * line within 5% of the y range of an earlier one gets its label below,
 * so two close lines (chance and a zero-shot at chance) stay readable */
static void write_reflines(FILE *f, const struct plot_figure *fig, const struct plot_prepared *pr)
{
    double lo, hi;

    y_extent(fig, pr, &lo, &hi);
    for (size_t i = 0; i < fig->n_reflines; i++) {
        const struct plot_refline *r = &fig->reflines[i];
        char label[256];
        bool below = false;

        for (size_t j = 0; j < i; j++)
            if (fabs(fig->reflines[j].y - r->y) <= 0.05 * (hi - lo))
                below = true;
        snprintf(label, sizeof label, "%s %.3g", r->label ? r->label : "reference", r->y);
        fputs("# reference line: ", f);
        plot_put_plain(f, label);
        fprintf(f, "\nset arrow %zu from graph 0, first ", i + 1);
        plot_put_num(f, r->y);
        fputs(" to graph 1, first ", f);
        plot_put_num(f, r->y);
        fputs(" nohead front linecolor rgb '" REF_COLOUR "' linewidth 1.5 dashtype 2\n", f);
        fprintf(f, "set label %zu ", i + 1);
        plot_put_quoted(f, label);
        fputs(" at graph 0.02, first ", f);
        plot_put_num(f, r->y);
        fprintf(f, " left offset 0,%s front textcolor rgb '" REF_COLOUR "' noenhanced\n", below ? "-0.7" : "0.6");
    }
}

static int has_points(enum plot_kind k)
{
    return k == PLOT_ACC_PARAMS || k == PLOT_ACC_SHOTS || k == PLOT_ACC_LR || k == PLOT_LAYER;
}

/* one series' plot clause(s) */
static void write_series(FILE *f, const struct plot_figure *fig, const struct plot_prepared *p, const char *tsv,
                         int n_groups)
{
    int lt = p->group + 1;
    char dt[48] = "";   /* a style's dash type; else the linetype's own */

    if (p->dash >= 0 || fig->kind == PLOT_LOSS)
        snprintf(dt, sizeof dt, " dashtype %d", p->dash >= 0 ? dash_types[p->dash % N_DASHES] : 1);
    if (p->dash > 0 && has_points(fig->kind))
        snprintf(dt + strlen(dt), sizeof dt - strlen(dt), " pointtype %d", style_points[p->dash % N_DASHES]);

    if (fig->kind == PLOT_CURVE && p->has_err) {
        /* the band first, under its line */
        plot_put_quoted(f, tsv);
        fprintf(f, " index %d using 1:($2-$3):($2+$3) with filledcurves linecolor rgb '%s' "
                   "fillstyle transparent solid 0.18 noborder notitle, \\\n    ",
                p->block, palette[p->group % N_STYLES]);
    }
    plot_put_quoted(f, tsv);
    fprintf(f, " index %d ", p->block);
    switch (fig->kind) {
    case PLOT_LOSS:
        fprintf(f, "using 1:2 with lines linetype %d%s linewidth 1.5", lt, dt);
        break;
    case PLOT_CURVE:
        fprintf(f, "using 1:2 with lines linetype %d%s linewidth 2", lt, dt);
        break;
    case PLOT_ACC_PARAMS:
    case PLOT_ACC_SHOTS:
    case PLOT_ACC_LR:
        if (p->has_err)
            fprintf(f, "using 1:2:3 with yerrorlines linetype %d%s", lt, dt);
        else
            fprintf(f, "using 1:2 with linespoints linetype %d%s", lt, dt);
        break;
    case PLOT_ACC_COST:
        fprintf(f, "using 1:2:5:3 with xyerrorbars linetype %d pointsize 1.6", lt);
        break;
    case PLOT_SPECTRUM:
        fprintf(f, "using 1:2 with %s linetype %d%s", p->n > 40 ? "lines" : "linespoints", lt, dt);
        break;
    case PLOT_RANK:
        fprintf(f, "using ($1%+.6g):2 with boxes linetype %d dashtype 1 linewidth 1",
                -0.4 + 0.8 / n_groups * (p->group + 0.5), lt);
        break;
    case PLOT_LAYER:
        if (p->has_err)
            fprintf(f, "using 1:2:3 with yerrorlines linetype %d%s", lt, dt);
        else
            fprintf(f, "using 1:2 with linespoints linetype %d%s", lt, dt);
        break;
    }
}

/* whether the key is drawn from stand-in entries: a colour per name, a
 * black line per style (so a dashed first series does not stand for its
 * method) */
static int styled(const struct plot_prepared *pr, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (pr[i].dash >= 0 && pr[i].block >= 0)
            return 1;
    return 0;
}

/* the default width, grown by 7 pixels per character of the longest key
 * entry beyond 16 (the key sits beside the plot), at most 1600 */
static int default_width(const struct plot_figure *fig)
{
    size_t longest = 0;

    for (size_t i = 0; i < fig->n_series; i++) {
        size_t n = fig->series[i].name ? strlen(fig->series[i].name) : 9;
        longest = n > longest ? n : longest;
    }
    return longest > 16 ? (int)fmin(1600.0, 800.0 + 7.0 * (double)(longest - 16)) : 800;
}

int plot_write_gp(const struct plot_figure *fig, const struct plot_prepared *pr, int n_groups, int n_dashes,
                  const char *path, const char *base)
{
    const int w = fig->width > 0 ? fig->width : default_width(fig), h = fig->height > 0 ? fig->height : 560;
    char *tmp, nb[32], *tsv = plot_path_with(base, ".tsv"), *png = plot_path_with(base, ".png");
    char *svg = plot_path_with(base, ".svg");
    FILE *f = plot_open_tmp(path, &tmp);
    int first = 1, stand_in = styled(pr, fig->n_series);

    if (!f) {
        free(tsv);
        free(png);
        free(svg);
        return RL_ERR_IO;
    }
    fputs("# ", f);
    plot_put_plain(f, fig->title ? fig->title : plot_kind_name(fig->kind));
    fprintf(f, "\n# randlora figure (%s), written by results/plot_gp.c from ", plot_kind_name(fig->kind));
    plot_put_plain(f, tsv);
    fputs(".\n# Redraw (PNG and SVG) after restyling, in this directory:  gnuplot ", f);
    plot_put_plain(f, plot_base_name(path));
    fputs("\n\nset encoding utf8\nset datafile separator \"\\t\"\n", f);
    fprintf(f, "set terminal pngcairo noenhanced size %d,%d font 'sans,11' linewidth 1\n", w, h);
    fputs("set output ", f);
    plot_put_quoted(f, png);
    fputs("\n\n", f);

    /* styles: one per distinct name */
    for (int g = 0; g < n_groups; g++)
        fprintf(f, "set linetype %d linecolor rgb '%s' linewidth 2 dashtype %d pointtype %d pointsize 1.2\n", g + 1,
                palette[g % N_STYLES], dash_types[(g / N_STYLES + g) % N_DASHES], point_types[g % N_STYLES]);
    fputc('\n', f);

    if (fig->title) {
        fputs("set title ", f);
        put_lines(f, fig->title);
        fputs(" noenhanced\n", f);
    }
    fputs("set xlabel ", f);
    plot_put_quoted(f, fig->xlabel ? fig->xlabel : default_xlabel(fig));
    fputs(" noenhanced\nset ylabel ", f);
    plot_put_quoted(f, fig->ylabel ? fig->ylabel : default_ylabel(fig));
    fputs(" noenhanced\nset grid\nset border 3\nset tics nomirror out\n", f);
    write_axes(f, fig, pr, n_groups);
    write_reflines(f, fig, pr);

    fputs("\nplot \\\n", f);
    for (size_t i = 0; i < fig->n_series; i++) {
        const struct plot_prepared *p = &pr[i];
        const char *name = plot_series_name(&fig->series[i], i, nb, sizeof(nb));

        if (p->block < 0)
            continue;
        if (!first)
            fputs(", \\\n", f);
        first = 0;
        fputs("    ", f);
        write_series(f, fig, p, tsv, n_groups);
        if (p->first && !stand_in) {
            fputs(" title ", f);
            plot_put_quoted(f, name);
            fputs(" noenhanced", f);
        } else {
            fputs(" notitle", f);
        }
    }
    if (stand_in) {
        /* key: one solid coloured entry per name, one black entry per style */
        for (size_t i = 0; i < fig->n_series; i++) {
            if (!pr[i].first)
                continue;
            fprintf(f, ", \\\n    NaN with lines linetype %d dashtype 1 linewidth 2 title ", pr[i].group + 1);
            plot_put_quoted(f, plot_series_name(&fig->series[i], i, nb, sizeof(nb)));
        }
        for (int d = 0; d < n_dashes; d++)
            for (size_t i = 0; i < fig->n_series; i++)
                if (pr[i].dash == d) {
                    if (has_points(fig->kind))
                        fprintf(f, ", \\\n    NaN with linespoints linecolor rgb 'black' dashtype %d linewidth 2 "
                                   "pointtype %d title ",
                                dash_types[d % N_DASHES], d % N_DASHES ? style_points[d % N_DASHES] : 7);
                    else
                        fprintf(f, ", \\\n    NaN with lines linecolor rgb 'black' dashtype %d linewidth 2 title ",
                                dash_types[d % N_DASHES]);
                    plot_put_quoted(f, fig->series[i].style);
                    break;
                }
    }
    fputs("\nunset output\n\n", f);
    fprintf(f, "set terminal svg noenhanced size %d,%d dynamic font 'sans,11' background rgb 'white'\n", w, h);
    fputs("set output ", f);
    plot_put_quoted(f, svg);
    fputs("\nreplot\nunset output\n", f);
    free(tsv);
    free(png);
    free(svg);
    return plot_close_tmp(f, tmp, path);
}
