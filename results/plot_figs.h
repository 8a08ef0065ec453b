/*
 * plot_figs.h: the figures of `randlora plot` drawn from a plot_set
 * (results/plot_runs.h) with results/plot.h; docs/analysis.md describes
 * each one (what it shows, its files, its reference lines).
 *
 * Which settings are drawn: by default each group's selected setting
 * (plot_runs.h: best mean validation accuracy over seeds), and every
 * setting of a group that has no selection; with `all` every setting, each
 * its own series named by the keys that differ in its group ("lora
 * lr=0.003"). Seeds of one setting are averaged (mean +- sample standard
 * deviation); different settings never are. Titles say when the drawn
 * settings were selected.
 *
 * Families (one file each):
 *   plot_figs_acc.c     acc_params, acc_shots, acc_lr, acc_memory, acc_time
 *   plot_figs_curves.c  loss, curves_acc, curves_loss, loss_shots
 *   plot_figs_layers.c  spectrum, rank, effective_rank, cka, ref_cosine,
 *                       ref_overlap
 */
#ifndef RANDLORA_RESULTS_PLOT_FIGS_H
#define RANDLORA_RESULTS_PLOT_FIGS_H

#include <stdbool.h>
#include <stddef.h>

#include "results/plot.h"
#include "results/plot_runs.h"

struct plot_ctx {
    const char *outdir;          /* existing directory                        */
    const struct plot_set *set;
    bool all_settings;           /* --settings all                            */
    const char *layer;           /* --layer: the spectrum's site, or NULL     */
    bool gnuplot_missing;        /* noted once                                */
    int status;                  /* worst exit code so far                    */
    size_t n_written;
};

/* write (and render) fig as OUTDIR/name.*, printing what was written */
void plot_ctx_draw(struct plot_ctx *c, struct plot_figure *fig, const char *name);

/* is setting st drawn (see above)? */
bool plot_drawn(const struct plot_ctx *c, const struct plot_setting *st);

/* the series name of a drawn setting: the method, its rank when `rank`,
 * its differing keys under `all` (buf of size cap) */
const char *plot_setting_name(const struct plot_ctx *c, const struct plot_setting *st, bool rank, char *buf,
                              size_t cap);

/* a second title line, "\nselected setting per method: best mean val
 * accuracy", when a drawn group had several settings and a selection (or
 * what was drawn instead), else "" */
const char *plot_selection_note(const struct plot_ctx *c);

/* "mean +- std over seeds", or "one seed: no spread shown" when no drawn
 * setting has more than one run: for the y labels */
const char *plot_seeds_note(const struct plot_ctx *c);

void plot_figs_acc(struct plot_ctx *c);
void plot_figs_curves(struct plot_ctx *c);
void plot_figs_layers(struct plot_ctx *c);

#endif /* RANDLORA_RESULTS_PLOT_FIGS_H */
