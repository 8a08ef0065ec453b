/*
 * plot_figs_impl.h: what the figure families (results/plot_figs_*.c)
 * share: data settings, the series builder, the accuracy reference lines.
 */
#ifndef RANDLORA_RESULTS_PLOT_FIGS_IMPL_H
#define RANDLORA_RESULTS_PLOT_FIGS_IMPL_H

#include "results/plot_figs.h"

/* a data setting: shots > 0, or the fraction */
struct plot_dset {
    size_t shots;
    double fraction;
};

/* the distinct data settings of the runs, largest shots first, then
 * fractions largest first; out has room for set->n_runs */
size_t plot_dsets(const struct plot_set *set, struct plot_dset *out);
bool   plot_dset_has(const struct plot_dset *d, const struct run_key *k);
/* figure name: base for the first, base_s<K> / base_f<F> for the others */
void   plot_dset_name(const char *base, const struct plot_dset *d, bool first, char *buf, size_t cap);
/* "4 shots", "fraction 0.1" */
void   plot_dset_text(const struct plot_dset *d, char *buf, size_t cap);

/* series built point by point, keyed by (name, style); owns its copies */
struct plot_sb_series {
    char *name, *style;
    double *x, *y, *e, *xe;
    size_t *cnt, n, cap;
};
struct plot_sb {
    struct plot_sb_series *s;
    size_t n, cap;
};
void plot_sb_add(struct plot_sb *b, const char *name, const char *style, double x, double y, double e, double xe,
                 size_t n);
/* plot_series views of b (caller frees the array, not what it points to) */
struct plot_series *plot_sb_series(const struct plot_sb *b);
/* fig->series from b, drawn as name */
void plot_sb_draw(struct plot_ctx *c, struct plot_sb *b, struct plot_figure *fig, const char *name);
void plot_sb_free(struct plot_sb *b);

/* chance (1/classes, when every run of data setting d, or of all runs when
 * d is NULL, has the same known class count) and the zero-shot accuracy
 * (mean of the finished `none` runs at d, else at any data setting) as
 * reference lines into out[2]; *chance 0 when unknown */
size_t plot_acc_reflines(const struct plot_ctx *c, const struct plot_dset *d, struct plot_refline *out,
                         double *chance);

#endif /* RANDLORA_RESULTS_PLOT_FIGS_IMPL_H */
