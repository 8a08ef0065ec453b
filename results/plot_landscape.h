/*
 * plot_landscape.h: the figures of a landscape file (`randlora landscape`,
 * docs/results.md "Landscape files"), drawn by `randlora plot`:
 *
 *   STEM.{png,svg,gp,tsv}          the loss over the (x, y) grid as a
 *                                  colour map (gnuplot pm3d, seen from
 *                                  above) with contour lines, the three
 *                                  solutions marked and labelled; the colour
 *                                  range stops at 1.2 x the highest of the
 *                                  solutions' losses (loss_barrier.py's
 *                                  `top`), higher losses take its colour;
 *   STEM_barrier.{png,svg,gp,tsv}  the loss along the straight path between
 *                                  each two solutions (t = 0 the first,
 *                                  t = 1 the second), with the frozen
 *                                  model's loss as a reference line.
 *
 * STEM is the file's name without ".h5", prefixed with "landscape_" unless
 * it starts with "landscape".
 *
 * Reading is hostile-input safe: a root attribute `kind` other than
 * "landscape", a missing object, a wrong type or shape, axes that are not
 * finite and increasing, sizes beyond the writer's limits: RL_ERR_FORMAT
 * naming the file and the object.
 */
#ifndef RANDLORA_RESULTS_PLOT_LANDSCAPE_H
#define RANDLORA_RESULTS_PLOT_LANDSCAPE_H

#include <stdbool.h>
#include <stddef.h>

#include "results/landscape.h"

struct plot_landscape {
    char *path;
    char *label[LANDSCAPE_RUNS], *run[LANDSCAPE_RUNS], *dataset;
    size_t nx, ny, n_items;
    double *x, *y, *loss;                   /* loss (nx, ny)                  */
    double corner_x[LANDSCAPE_RUNS], corner_y[LANDSCAPE_RUNS];
    double corner_loss[LANDSCAPE_RUNS];
    double zero_loss, data_ratio;
    size_t n_path;                          /* 0: no barrier                  */
    double *t, *path_loss;                  /* (n_path), (3, n_path)          */
};

/* Is path an HDF5 file whose root attribute `kind` is "landscape"? (No
 * error is set; false for anything else, unreadable files included.) */
bool plot_landscape_is(const char *path);

int  plot_landscape_read(const char *path, struct plot_landscape *out);
void plot_landscape_free(struct plot_landscape *p);   /* safe on a zeroed struct */

/* Write (and render) the two figures of p into outdir. RL_ERR_NA when
 * gnuplot is missing (the .tsv and .gp written); *written counts the
 * figures written. */
int  plot_landscape_draw(const struct plot_landscape *p, const char *outdir, size_t *written);

#endif /* RANDLORA_RESULTS_PLOT_LANDSCAPE_H */
