/*
 * plot_impl.h: what results/plot.c (data, .tsv), plot_gp.c (.gp scripts)
 * and plot_render.c (gnuplot) share. Not part of the public API (plot.h).
 */
#ifndef RANDLORA_RESULTS_PLOT_IMPL_H
#define RANDLORA_RESULTS_PLOT_IMPL_H

#include <stdio.h>

#include "results/plot.h"

/* one drawn point: a mean (y) with its spread (e, xe) over n samples */
struct plot_point {
    double x, y, e, xe;
    size_t n;        /* samples behind an averaged point */
    size_t order;    /* original position, for a stable sort */
};

/* one series, ready to write */
struct plot_prepared {
    struct plot_point *p;
    size_t n;
    int has_err;     /* an error column is meaningful          */
    int group;       /* colour slot: index of the distinct name */
    int dash;        /* dash slot: index of the distinct style, -1 none */
    int first;       /* first drawn series of its group: gets the key entry */
    int block;       /* gnuplot index, -1 when nothing is drawn */
};

/* the accuracy kinds (averaged per x, y range rule) */
int plot_is_acc(enum plot_kind k);

/* the figure obeys the accuracy y range rule */
int plot_uses_acc_range(const struct plot_figure *fig);

/* "STEM" + ".ext", malloc'd */
char *plot_path_with(const char *stem, const char *ext);

/* PATH.tmp opened for writing (*tmp malloc'd), NULL with the error set */
FILE *plot_open_tmp(const char *path, char **tmp);

/* close and rename into place; frees tmp */
int plot_close_tmp(FILE *f, char *tmp, const char *path);

/* text: control characters become spaces; quoted: a gnuplot '...' string */
void plot_put_plain(FILE *f, const char *s);
void plot_put_quoted(FILE *f, const char *s);
void plot_put_num(FILE *f, double v);

/* the name of series i (s->name, else "series N" in buf) */
const char *plot_series_name(const struct plot_series *s, size_t i, char *buf, size_t cap);

/* the part of a path after its last '/' */
const char *plot_base_name(const char *path);

/* Write the gnuplot script at `path` reading BASE.tsv (plot_gp.c). */
int plot_write_gp(const struct plot_figure *fig, const struct plot_prepared *pr, int n_groups,
                  int n_dashes, const char *path, const char *base);

#endif /* RANDLORA_RESULTS_PLOT_IMPL_H */
