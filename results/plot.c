/*
 * plot.c: figure data, gnuplot scripts, and running gnuplot (see plot.h).
 *
 * Files are written to STEM.ext.tmp and renamed into place, so a figure
 * drawn while a run trains never reads a half-written data file. Numbers are
 * printed with %.10g in the C locale the program runs in; nothing in the
 * files depends on time or environment, so the same figure gives the same
 * bytes.
 */
#define _GNU_SOURCE   /* posix_spawn_file_actions_addchdir_np (glibc >= 2.29) */

#include "results/plot.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/status.h"

extern char **environ;

#define N_STYLES 8

/* Okabe & Ito (2008): blue, vermillion, bluish green, reddish purple, orange,
 * sky blue, black, yellow (last: weak on white) */
static const char *const palette[N_STYLES] = {
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442",
};
/* filled circle, square, triangle, diamond, inverted triangle; open ones */
static const int point_types[N_STYLES] = {7, 5, 9, 13, 11, 6, 4, 8};
static const int dash_types[5] = {1, 2, 4, 5, 3};

const char *plot_kind_name(enum plot_kind kind)
{
    switch (kind) {
    case PLOT_LOSS:       return "loss";
    case PLOT_ACC_PARAMS: return "acc_params";
    case PLOT_ACC_SHOTS:  return "acc_shots";
    case PLOT_SPECTRUM:   return "spectrum";
    case PLOT_RANK:       return "rank";
    }
    return "unknown";
}

/* ------------------------------------------------------------------------ */
/* text helpers                                                              */

/* a name for comments in the .tsv: control characters become spaces */
static void put_plain(FILE *f, const char *s)
{
    for (; *s; s++)
        fputc((unsigned char)*s < 0x20 || *s == 0x7f ? ' ' : *s, f);
}

/* a gnuplot single-quoted string: no escapes inside except '' for ' */
static void put_quoted(FILE *f, const char *s)
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

static void put_num(FILE *f, double v)
{
    if (v == 0.0)
        v = 0.0;   /* no "-0" */
    fprintf(f, "%.10g", v);
}

/* the name of series i */
static const char *series_name(const struct plot_series *s, size_t i, char *buf, size_t cap)
{
    if (s->name)
        return s->name;
    snprintf(buf, cap, "series %zu", i + 1);
    return buf;
}

/* ------------------------------------------------------------------------ */
/* per-series preparation                                                    */

struct point {
    double x, y, e;
    size_t n;        /* samples behind an averaged point */
    size_t order;    /* original position, for a stable sort */
};

struct prepared {
    struct point *p;
    size_t n;
    int has_err;     /* an error column is meaningful       */
    int group;       /* style slot: index of the distinct name */
    int first;       /* first series of its group: gets the key entry */
    int block;       /* gnuplot index, -1 when nothing is drawn */
};

static int cmp_point(const void *a, const void *b)
{
    const struct point *p = a, *q = b;

    if (p->x < q->x)
        return -1;
    if (p->x > q->x)
        return 1;
    return p->order < q->order ? -1 : p->order > q->order;
}

static int is_acc(enum plot_kind k)
{
    return k == PLOT_ACC_PARAMS || k == PLOT_ACC_SHOTS;
}

/* finite points of one series, sorted and averaged per x for the ACC kinds,
 * normalised for a normalised spectrum */
static void prepare(struct prepared *pr, const struct plot_figure *fig, const struct plot_series *s)
{
    size_t n = 0;

    pr->p = xmalloc_array(s->n ? s->n : 1, sizeof(*pr->p));
    pr->has_err = 0;
    for (size_t i = 0; i < s->n; i++) {
        double x = s->x ? s->x[i] : (double)(i + 1);
        double y = s->y[i], e = s->yerr ? s->yerr[i] : 0.0;

        if (!isfinite(x) || !isfinite(y) || !isfinite(e))
            continue;
        pr->p[n++] = (struct point){x, y, e, 1, i};
    }

    if (is_acc(fig->kind)) {
        qsort(pr->p, n, sizeof(*pr->p), cmp_point);
        if (s->yerr) {
            pr->has_err = 1;
        } else {
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
                pr->p[out] = (struct point){pr->p[i].x, mean,
                                            j - i > 1 ? sqrt(ss / (double)(j - i - 1)) : 0.0,
                                            j - i, pr->p[i].order};
                if (j - i > 1)
                    pr->has_err = 1;
                out++;
                i = j;
            }
            n = out;
        }
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

static char *path_with(const char *stem, const char *ext)
{
    size_t len = strlen(stem) + strlen(ext) + 1;
    char *p = xmalloc(len);

    snprintf(p, len, "%s%s", stem, ext);
    return p;
}

/* open PATH.tmp for writing */
static FILE *open_tmp(const char *path, char **tmp)
{
    FILE *f;

    *tmp = path_with(path, ".tmp");
    f = fopen(*tmp, "w");
    if (!f) {
        rl_error_set(RL_ERR_IO, "plot: cannot write %s: %s", *tmp, strerror(errno));
        free(*tmp);
        *tmp = NULL;
    }
    return f;
}

/* close and rename into place */
static int close_tmp(FILE *f, char *tmp, const char *path)
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

static const char *default_xlabel(const struct plot_figure *fig)
{
    switch (fig->kind) {
    case PLOT_LOSS:       return "step";
    case PLOT_ACC_PARAMS: return "trainable parameters";
    case PLOT_ACC_SHOTS:  return "shots per class";
    case PLOT_SPECTRUM:   return "index i";
    case PLOT_RANK:       return "layer";
    }
    return "x";
}

static const char *default_ylabel(const struct plot_figure *fig)
{
    switch (fig->kind) {
    case PLOT_LOSS:       return "training loss";
    case PLOT_ACC_PARAMS:
    case PLOT_ACC_SHOTS:  return "accuracy";
    case PLOT_SPECTRUM:   return fig->normalise ? "s_i / s_1" : "singular value s_i";
    case PLOT_RANK:       return "rank";
    }
    return "y";
}

static const char *column_names(const struct plot_figure *fig)
{
    switch (fig->kind) {
    case PLOT_LOSS:       return "step\tloss";
    case PLOT_ACC_PARAMS: return "params\tmean_acc\tstd_acc\tn";
    case PLOT_ACC_SHOTS:  return "shots\tmean_acc\tstd_acc\tn";
    case PLOT_SPECTRUM:   return fig->normalise ? "index\ts_over_s1" : "index\ts";
    case PLOT_RANK:       return "layer\trank";
    }
    return "x\ty";
}

static int write_tsv(const struct plot_figure *fig, const struct prepared *pr, const char *path)
{
    char *tmp, nb[32];
    FILE *f = open_tmp(path, &tmp);

    if (!f)
        return RL_ERR_IO;
    fputs("# ", f);
    put_plain(f, fig->title ? fig->title : plot_kind_name(fig->kind));
    fprintf(f, "\n# randlora figure data (%s), written by results/plot.c: one block per "
               "series (gnuplot: index N), blocks separated by two blank lines\n",
            plot_kind_name(fig->kind));
    fprintf(f, "# columns: %s\n", column_names(fig));
    for (size_t i = 0; i < fig->n_series; i++) {
        const char *name = series_name(&fig->series[i], i, nb, sizeof(nb));

        if (pr[i].block < 0) {
            fputs("# series '", f);
            put_plain(f, name);
            fputs("': no finite points, not drawn\n", f);
            continue;
        }
        if (pr[i].block > 0)
            fputs("\n\n", f);
        fprintf(f, "# index %d: ", pr[i].block);
        put_plain(f, name);
        fputc('\n', f);
        for (size_t j = 0; j < pr[i].n; j++) {
            const struct point *p = &pr[i].p[j];

            put_num(f, p->x);
            fputc('\t', f);
            put_num(f, p->y);
            if (is_acc(fig->kind)) {
                fputc('\t', f);
                put_num(f, p->e);
                fprintf(f, "\t%zu", p->n);
            }
            fputc('\n', f);
        }
    }
    return close_tmp(f, tmp, path);
}

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');

    return s ? s + 1 : path;
}

/* distinct positive x values over all drawn series, sorted; for shot tics */
static size_t distinct_x(const struct prepared *pr, size_t n_series, double *out, size_t cap)
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
                return cap + 1;   /* too many: let gnuplot choose tics */
            memmove(out + k + 1, out + k, (n - k) * sizeof(*out));
            out[k] = x;
            n++;
        }
    return n;
}

static void x_extent(const struct prepared *pr, size_t n_series, double *lo, double *hi,
                     int positive)
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

static int write_gp(const struct plot_figure *fig, const struct prepared *pr, int n_groups,
                    const char *path, const char *base)
{
    const int w = fig->width > 0 ? fig->width : 800, h = fig->height > 0 ? fig->height : 560;
    char *tmp, nb[32], *tsv = path_with(base, ".tsv"), *png = path_with(base, ".png");
    char *svg = path_with(base, ".svg");
    FILE *f = open_tmp(path, &tmp);
    double lo, hi;
    int first = 1;

    if (!f) {
        free(tsv);
        free(png);
        free(svg);
        return RL_ERR_IO;
    }
    fputs("# ", f);
    put_plain(f, fig->title ? fig->title : plot_kind_name(fig->kind));
    fprintf(f, "\n# randlora figure (%s), written by results/plot.c from ", plot_kind_name(fig->kind));
    put_plain(f, tsv);
    fputs(".\n# Redraw (PNG and SVG) after restyling, in this directory:  gnuplot ", f);
    put_plain(f, base_name(path));
    fputs("\n\nset encoding utf8\nset datafile separator \"\\t\"\n", f);
    fprintf(f, "set terminal pngcairo noenhanced size %d,%d font 'sans,11' linewidth 1\n", w, h);
    fputs("set output ", f);
    put_quoted(f, png);
    fputs("\n\n", f);

    /* styles: one per distinct name */
    for (int g = 0; g < n_groups; g++)
        fprintf(f, "set linetype %d linecolor rgb '%s' linewidth 2 dashtype %d pointtype %d "
                   "pointsize 1.2\n",
                g + 1, palette[g % N_STYLES], dash_types[(g / N_STYLES + g) % 5],
                point_types[g % N_STYLES]);
    fputc('\n', f);

    if (fig->title) {
        fputs("set title ", f);
        put_quoted(f, fig->title);
        fputs(" noenhanced\n", f);
    }
    fputs("set xlabel ", f);
    put_quoted(f, fig->xlabel ? fig->xlabel : default_xlabel(fig));
    fputs(" noenhanced\nset ylabel ", f);
    put_quoted(f, fig->ylabel ? fig->ylabel : default_ylabel(fig));
    fputs(" noenhanced\nset grid\nset border 3\nset tics nomirror out\n", f);

    switch (fig->kind) {
    case PLOT_LOSS:
        fputs("set key top right noenhanced opaque box\n", f);
        if (fig->logy)
            fputs("set logscale y\n", f);
        break;
    case PLOT_ACC_PARAMS:
        fputs("set key bottom right noenhanced opaque box\nset logscale x 10\n"
              "set format x '%.0s%c'\n", f);
        x_extent(pr, fig->n_series, &lo, &hi, 1);
        if (lo <= hi) {
            fputs("set xrange [", f);
            put_num(f, lo / 1.5);
            fputc(':', f);
            put_num(f, hi * 1.5);
            fputs("]\n", f);
        }
        break;
    case PLOT_ACC_SHOTS: {
        double tics[24];
        size_t nt = distinct_x(pr, fig->n_series, tics, 24);

        fputs("set key bottom right noenhanced opaque box\nset logscale x 2\n", f);
        if (nt >= 1 && nt <= 24) {
            fputs("set xtics (", f);
            for (size_t i = 0; i < nt; i++) {
                if (i)
                    fputs(", ", f);
                put_num(f, tics[i]);
            }
            fputs(")\nset xrange [", f);
            put_num(f, tics[0] / 1.4);
            fputc(':', f);
            put_num(f, tics[nt - 1] * 1.4);
            fputs("]\n", f);
        }
        break;
    }
    case PLOT_SPECTRUM:
        /* normalised spectra all start at 1 on the left and fall, so the
         * bottom left is empty; top right would hide the slowest series */
        fprintf(f, "set key %s noenhanced opaque box\nset logscale y\nset format y '%%.0e'\n",
                fig->normalise ? "bottom left" : "top right");
        break;
    case PLOT_RANK:
        fputs("set key tmargin center horizontal noenhanced\n"
              "set style fill solid 0.85 border rgb 'black'\n"
              "set yrange [0:*]\n", f);
        fprintf(f, "set boxwidth %.6g absolute\n", 0.8 / n_groups);
        x_extent(pr, fig->n_series, &lo, &hi, 0);
        if (lo <= hi) {
            fputs("set xrange [", f);
            put_num(f, lo - 0.6);
            fputc(':', f);
            put_num(f, hi + 0.6);
            fputs("]\n", f);
        }
        if (fig->n_xtics > 0 && fig->xtic_at && fig->xtic_labels) {
            fputs("set xtics rotate by 45 right noenhanced (", f);
            for (size_t i = 0; i < fig->n_xtics; i++) {
                if (i)
                    fputs(", ", f);
                put_quoted(f, fig->xtic_labels[i] ? fig->xtic_labels[i] : "");
                fputc(' ', f);
                put_num(f, fig->xtic_at[i]);
            }
            fputs(")\n", f);
        } else if (lo <= hi && hi - lo <= 40) {
            fputs("set xtics 1\n", f);   /* one tic per layer while they fit */
        }
        break;
    }

    fputs("\nplot \\\n", f);
    for (size_t i = 0; i < fig->n_series; i++) {
        const struct prepared *p = &pr[i];
        const char *name = series_name(&fig->series[i], i, nb, sizeof(nb));

        if (p->block < 0)
            continue;
        if (!first)
            fputs(", \\\n", f);
        first = 0;
        fputs("    ", f);
        put_quoted(f, tsv);
        fprintf(f, " index %d ", p->block);
        switch (fig->kind) {
        case PLOT_LOSS:
            fprintf(f, "using 1:2 with lines linetype %d dashtype 1 linewidth 1.5", p->group + 1);
            break;
        case PLOT_ACC_PARAMS:
        case PLOT_ACC_SHOTS:
            if (p->has_err)
                fprintf(f, "using 1:2:3 with yerrorlines linetype %d", p->group + 1);
            else
                fprintf(f, "using 1:2 with linespoints linetype %d", p->group + 1);
            break;
        case PLOT_SPECTRUM:
            if (p->n > 40)
                fprintf(f, "using 1:2 with lines linetype %d", p->group + 1);
            else
                fprintf(f, "using 1:2 with linespoints linetype %d", p->group + 1);
            break;
        case PLOT_RANK: {
            double off = -0.4 + 0.8 / n_groups * (p->group + 0.5);

            fprintf(f, "using ($1%+.6g):2 with boxes linetype %d dashtype 1 linewidth 1", off, p->group + 1);
            break;
        }
        }
        if (p->first) {
            fputs(" title ", f);
            put_quoted(f, name);
            fputs(" noenhanced", f);
        } else {
            fputs(" notitle", f);
        }
    }
    fputs("\nunset output\n\n", f);
    fprintf(f, "set terminal svg noenhanced size %d,%d dynamic font 'sans,11' "
               "background rgb 'white'\n", w, h);
    fputs("set output ", f);
    put_quoted(f, svg);
    fputs("\nreplot\nunset output\n", f);
    free(tsv);
    free(png);
    free(svg);
    return close_tmp(f, tmp, path);
}

static int check_figure(const struct plot_figure *fig)
{
    if (!fig || !fig->stem || !*fig->stem)
        return rl_error_set(RL_ERR_ARG, "plot: no output stem");
    if ((unsigned)fig->kind > PLOT_RANK)
        return rl_error_set(RL_ERR_ARG, "plot %s: unknown figure kind %d", fig->stem,
                            (int)fig->kind);
    if (fig->n_series == 0 || !fig->series)
        return rl_error_set(RL_ERR_ARG, "plot %s: no series", fig->stem);
    if (fig->n_series > 100000)
        return rl_error_set(RL_ERR_ARG, "plot %s: %zu series", fig->stem, fig->n_series);
    for (size_t i = 0; i < fig->n_series; i++)
        if (fig->series[i].n > 0 && !fig->series[i].y)
            return rl_error_set(RL_ERR_ARG, "plot %s: series %zu has no y values", fig->stem, i);
    if (fig->n_xtics > 0 && (!fig->xtic_at || !fig->xtic_labels))
        return rl_error_set(RL_ERR_ARG, "plot %s: %zu x tics without positions or labels",
                            fig->stem, fig->n_xtics);
    return RL_OK;
}

int plot_write_files(const struct plot_figure *fig)
{
    struct prepared *pr;
    char nb[32], nb2[32];
    char *tsv, *gp;
    int rc, n_groups = 0, n_blocks = 0;

    if ((rc = check_figure(fig)) != RL_OK)
        return rc;
    pr = xcalloc(fig->n_series, sizeof(*pr));
    for (size_t i = 0; i < fig->n_series; i++) {
        const char *name = series_name(&fig->series[i], i, nb, sizeof(nb));
        size_t j;

        prepare(&pr[i], fig, &fig->series[i]);
        pr[i].block = pr[i].n > 0 ? n_blocks++ : -1;
        /* style group: the first earlier series with the same name */
        for (j = 0; j < i; j++)
            if (strcmp(series_name(&fig->series[j], j, nb2, sizeof(nb2)), name) == 0)
                break;
        pr[i].group = j < i ? pr[j].group : n_groups++;
        /* key entry on the first drawn series of the group */
        pr[i].first = pr[i].block >= 0;
        for (j = 0; j < i && pr[i].first; j++)
            if (pr[j].group == pr[i].group && pr[j].block >= 0)
                pr[i].first = 0;
    }

    if (n_blocks == 0) {
        rc = rl_error_set(RL_ERR_ARG, "plot %s: no finite data points in %zu series",
                          fig->stem, fig->n_series);
    } else {
        tsv = path_with(fig->stem, ".tsv");
        gp = path_with(fig->stem, ".gp");
        rc = write_tsv(fig, pr, tsv);
        if (rc == RL_OK)
            rc = write_gp(fig, pr, n_groups, gp, base_name(fig->stem));
        free(tsv);
        free(gp);
    }
    for (size_t i = 0; i < fig->n_series; i++)
        free(pr[i].p);
    free(pr);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* running gnuplot                                                           */

static int is_exec_file(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

/* gnuplot's path into a malloc'd string, or NULL (and *want names it) */
static char *find_gnuplot(const char **want)
{
    const char *env = getenv("RANDLORA_GNUPLOT");
    const char *name = env && *env ? env : "gnuplot";
    const char *path = getenv("PATH");

    *want = name;
    if (strchr(name, '/'))
        return is_exec_file(name) ? xstrdup(name) : NULL;
    if (!path)
        path = "/usr/local/bin:/usr/bin:/bin";
    for (const char *p = path;;) {
        const char *end = strchr(p, ':');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        size_t cap = len + strlen(name) + 3;
        char *cand = xmalloc(cap);

        snprintf(cand, cap, "%.*s/%s", len ? (int)len : 1, len ? p : ".", name);
        if (is_exec_file(cand))
            return cand;
        free(cand);
        if (!end)
            break;
        p = end + 1;
    }
    return NULL;
}

/* the captured stderr as one line: newlines become " | " */
static void one_line(char *s)
{
    size_t n = strlen(s);

    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' ' || s[n - 1] == '\r'))
        s[--n] = '\0';
    for (char *c = s; *c; c++)
        if (*c == '\n' || *c == '\r' || *c == '\t')
            *c = ' ';
}

int plot_render(const char *gp_path)
{
    const char *want;
    char *exe, *dir, *base, errbuf[1024];
    size_t errlen = 0;
    int pfd[2], rc, status, spawn_err;
    posix_spawn_file_actions_t fa;
    pid_t pid;
    const char *slash;

    if (!gp_path || !*gp_path)
        return rl_error_set(RL_ERR_ARG, "plot: no script to render");
    exe = find_gnuplot(&want);
    if (!exe)
        return rl_error_set(RL_ERR_NA, "plot: gnuplot ('%s') not found; %s written but not "
                            "rendered", want, gp_path);

    slash = strrchr(gp_path, '/');
    if (slash) {
        size_t dl = slash == gp_path ? 1 : (size_t)(slash - gp_path);

        dir = xmalloc(dl + 1);
        memcpy(dir, gp_path, dl);
        dir[dl] = '\0';
        base = xstrdup(slash + 1);
    } else {
        dir = xstrdup(".");
        base = xstrdup(gp_path);
    }

    if (pipe2(pfd, O_CLOEXEC) != 0) {
        rc = rl_error_set(RL_ERR, "plot: pipe: %s", strerror(errno));
        goto out;
    }
    posix_spawn_file_actions_init(&fa);
    spawn_err = posix_spawn_file_actions_addchdir_np(&fa, dir);
    if (!spawn_err)
        spawn_err = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    if (!spawn_err)
        spawn_err = posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    if (!spawn_err)
        spawn_err = posix_spawn_file_actions_adddup2(&fa, pfd[1], 2);
    if (!spawn_err) {
        char arg0[] = "gnuplot";
        char *argv[] = {arg0, base, NULL};

        spawn_err = posix_spawn(&pid, exe, &fa, NULL, argv, environ);
    }
    posix_spawn_file_actions_destroy(&fa);
    close(pfd[1]);
    if (spawn_err != 0) {
        close(pfd[0]);
        rc = rl_error_set(RL_ERR, "plot: cannot run %s on %s (in %s): %s", exe, base, dir,
                          strerror(spawn_err));
        goto out;
    }

    /* keep the start of stderr: gnuplot's first error names the line */
    for (;;) {
        char chunk[512];
        ssize_t got = read(pfd[0], chunk, sizeof(chunk));

        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        if (errlen < sizeof(errbuf) - 1) {
            size_t take = (size_t)got;

            if (take > sizeof(errbuf) - 1 - errlen)
                take = sizeof(errbuf) - 1 - errlen;
            memcpy(errbuf + errlen, chunk, take);
            errlen += take;
        }
    }
    errbuf[errlen] = '\0';
    close(pfd[0]);
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            rc = rl_error_set(RL_ERR, "plot: waiting for gnuplot: %s", strerror(errno));
            goto out;
        }
    }
    one_line(errbuf);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        rc = RL_OK;
    else if (WIFEXITED(status))
        rc = rl_error_set(RL_ERR, "plot: gnuplot failed (exit %d) on %s: %s",
                          WEXITSTATUS(status), gp_path, errlen ? errbuf : "(no message)");
    else
        rc = rl_error_set(RL_ERR, "plot: gnuplot killed by signal %d on %s: %s",
                          WIFSIGNALED(status) ? WTERMSIG(status) : -1, gp_path,
                          errlen ? errbuf : "(no message)");
out:
    free(exe);
    free(dir);
    free(base);
    return rc;
}

static int nonempty_file(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0;
}

int plot_write(const struct plot_figure *fig)
{
    char *gp, *png, *svg;
    int rc = plot_write_files(fig);

    if (rc != RL_OK)
        return rc;
    gp = path_with(fig->stem, ".gp");
    png = path_with(fig->stem, ".png");
    svg = path_with(fig->stem, ".svg");
    /* no stale figure survives a failed render */
    remove(png);
    remove(svg);
    rc = plot_render(gp);
    if (rc == RL_OK && (!nonempty_file(png) || !nonempty_file(svg)))
        rc = rl_error_set(RL_ERR, "plot: gnuplot ran on %s but %s or %s is missing or empty",
                          gp, png, svg);
    free(gp);
    free(png);
    free(svg);
    return rc;
}
