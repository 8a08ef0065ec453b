/*
 * plot.h: the result figures, drawn by gnuplot.
 *
 * Each figure is three things next to each other, so it can be restyled and
 * redrawn without the program:
 *     STEM.tsv   the data: '#' header comments (the reference lines too),
 *                then one block per series, blocks separated by two blank
 *                lines (gnuplot's `index N`);
 *     STEM.gp    a gnuplot script that reads STEM.tsv and draws STEM.png
 *                (pngcairo) and STEM.svg; run it in its directory:
 *                    cd DIR && gnuplot STEM.gp
 *     STEM.png, STEM.svg, drawn by running that script.
 * Text is drawn literally (noenhanced), so names like oxford_pets keep their
 * underscores. Colours are the Okabe-Ito colour-blind-safe palette, with
 * dash and point types varied too so the figure reads in black and white.
 * Series with the same name (e.g. several seeds of one method in a loss
 * figure) share a colour and one key entry; series with the same `style`
 * share a dash type (e.g. "train" solid, "val" dashed; or one per shot
 * count), and each style gets its own black key entry. Non-finite points
 * are left out. The same input gives byte-identical .tsv and .gp files.
 *
 * The kinds:
 *   PLOT_LOSS        training loss against step, one line per run (log y
 *                    with `logy`, fitted to the data, when they span at
 *                    least 4x; else linear);
 *   PLOT_ACC_PARAMS  accuracy against trainable parameters, log x;
 *   PLOT_ACC_SHOTS   accuracy against shots per class, log2 x with a tic at
 *                    each shot count present;
 *   PLOT_ACC_LR      accuracy against learning rate, log10 x with a tic at
 *                    each learning rate present;
 *       for the three ACC kinds above, points of one series with equal x
 *       (seeds) are averaged and drawn with error bars of their sample
 *       standard deviation, unless the caller gives yerr (and count), which
 *       is then drawn as is;
 *   PLOT_ACC_COST    accuracy against a cost (peak memory, time): points with
 *                    x and y error bars (xerr, yerr), no lines (log x with
 *                    `logx`);
 *   PLOT_CURVE       a value against step, one line per series, with a band
 *                    of +- yerr (the standard deviation over seeds) around it
 *                    where yerr is given (log y with `logy`);
 *   PLOT_SPECTRUM    singular values of dW of one layer, one series per
 *                    method, log y, x = index (x NULL gives 1..n); with
 *                    `normalise` each series is divided by its largest value;
 *   PLOT_RANK        rank per layer: x = layer index, grouped boxes, one
 *                    colour per method; optional names for the x tics;
 *   PLOT_LAYER       a value per layer (x = layer index, optional names for
 *                    the x tics), lines and points, one series per method.
 *
 * Reference lines (`reflines`): horizontal dashed grey lines across the
 * plot, each labelled with its name and value (chance, the zero-shot
 * accuracy, the numerical-rank threshold), listed in the .tsv header and
 * the .gp; the y range always includes them.
 *
 * The y range of accuracy figures (the ACC kinds, and PLOT_CURVE or
 * PLOT_LAYER with `acc_yrange`) follows one rule, plot_acc_yrange: it starts
 * at or below chance (0 when chance is not known) and spans at least
 * PLOT_ACC_MIN_SPAN (20 accuracy points), so a gap of a few points is drawn
 * as the small gap it is. Other figures take a fixed range with ymin < ymax,
 * one from 0 with `yzero` (ranks), else gnuplot's automatic one. Error bars
 * and bands are drawn only where some yerr is nonzero.
 *
 *     double steps[3] = {0, 10, 20}, loss[3] = {2.3, 1.1, 0.7};
 *     struct plot_series s = { .name = "lora", .n = 3, .x = steps, .y = loss };
 *     struct plot_figure f = { .kind = PLOT_LOSS, .stem = "out/loss", .series = &s,
 *                              .n_series = 1, .title = "Fashion-MNIST, 4 shots" };
 *     int rc = plot_write(&f);
 *     if (rc == RL_ERR_NA) ... files written, gnuplot absent: not rendered
 *     else if (rc != RL_OK) ... rl_error_msg()
 *
 * gnuplot is the one named by $RANDLORA_GNUPLOT when set (a path, or a name
 * looked up on PATH), else `gnuplot` on PATH; it is run without a shell
 * (results/plot_render.c).
 */
#ifndef RANDLORA_RESULTS_PLOT_H
#define RANDLORA_RESULTS_PLOT_H

#include <stddef.h>

enum plot_kind {
    PLOT_LOSS = 0,
    PLOT_ACC_PARAMS,
    PLOT_ACC_SHOTS,
    PLOT_SPECTRUM,
    PLOT_RANK,
    PLOT_ACC_LR,
    PLOT_ACC_COST,
    PLOT_CURVE,
    PLOT_LAYER,
};
#define PLOT_N_KINDS 9

/* the y range rule of accuracy figures (see above) */
#define PLOT_ACC_MIN_SPAN 0.2

/* one named series; the caller owns the arrays */
struct plot_series {
    const char *name;      /* key entry (method), drawn literally; NULL: "series N" */
    size_t n;              /* number of points                                     */
    const double *x;       /* n values; NULL: 1, 2, ..., n                         */
    const double *y;       /* n values                                             */
    const double *yerr;    /* n values or NULL (see the kinds above)               */
    const double *xerr;    /* PLOT_ACC_COST: n values or NULL                      */
    const size_t *count;   /* samples behind each point (the .tsv's n), or NULL    */
    const char *style;     /* dash group and its key entry; NULL: solid, no entry  */
};

/* a labelled horizontal reference line */
struct plot_refline {
    const char *label;     /* e.g. "chance"; the value is appended            */
    double y;
};

struct plot_figure {
    enum plot_kind kind;
    const char *stem;                 /* output path without extension; its
                                         directory must exist                  */
    const char *title;                /* NULL: no title                         */
    const char *xlabel, *ylabel;      /* NULL: the kind's default              */
    const struct plot_series *series;
    size_t n_series;
    int logy;                         /* PLOT_LOSS, PLOT_CURVE: log y axis
                                         (when the data span at least 4x)      */
    int logx;                         /* PLOT_ACC_COST: log x axis              */
    int normalise;                    /* PLOT_SPECTRUM: s_i / s_1 per series    */
    size_t n_xtics;                   /* PLOT_RANK, PLOT_LAYER: named x tics:   */
    const double *xtic_at;            /*   positions                            */
    const char *const *xtic_labels;   /*   and their labels                     */
    const struct plot_refline *reflines;
    size_t n_reflines;
    double chance;                    /* accuracy figures: 1/classes; 0 unknown */
    int acc_yrange;                   /* PLOT_CURVE, PLOT_LAYER: accuracy rule  */
    double ymin, ymax;                /* fixed y range when ymin < ymax         */
    int yzero;                        /* else from 0, the top automatic         */
    int width, height;                /* pixels; 0: 800 (wider for key entries
                                         over 16 characters, up to 1600) x 560 */
};

/* Write STEM.tsv and STEM.gp, then render STEM.png and STEM.svg.
 * RL_OK: all four written. RL_ERR_NA: gnuplot not found; the .tsv and .gp are
 * written, the figure is not rendered (the message says so). RL_ERR_ARG: bad
 * figure (no stem, no series, no finite point...). RL_ERR_IO: a file could
 * not be written. RL_ERR: gnuplot failed (the message quotes its stderr). */
int plot_write(const struct plot_figure *fig);

/* Only the .tsv and .gp files. */
int plot_write_files(const struct plot_figure *fig);

/* Run gnuplot on the script at gp_path, in the script's directory, with no
 * shell. RL_OK when it exits with status 0; RL_ERR_NA when gnuplot is not
 * found; RL_ERR with gnuplot's first lines of stderr otherwise. */
int plot_render(const char *gp_path);

/* The y range of an accuracy figure whose data (error bars and reference
 * lines included) spans [data_lo, data_hi], chance 1/classes (0 or NaN:
 * unknown, taken as 0): lo = min(chance, data_lo) less a margin of 0.01,
 * rounded down to a multiple of 0.05 (not below 0); hi = data_hi plus 0.01
 * rounded up to a multiple of 0.05 (not above 1); then widened to
 * PLOT_ACC_MIN_SPAN, upwards first (to at most 1), then downwards. */
void plot_acc_yrange(double data_lo, double data_hi, double chance, double *lo, double *hi);

/* Short name of a kind ("loss", "acc_params", ...). */
const char *plot_kind_name(enum plot_kind kind);

#endif /* RANDLORA_RESULTS_PLOT_H */
