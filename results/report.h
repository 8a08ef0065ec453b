/*
 * report.h: the comparison table of a set of runs (`randlora report`, and
 * the table `randlora sweep` prints at its end): per group, the setting
 * chosen on validation data, and the test accuracy at that setting over
 * seeds. docs/comparison.md tells the same story for users.
 *
 * Words (results/run_group.h): a run's group is its cell of the table
 * (dataset, model, method, budget or rank, shots or fraction); its setting
 * is every other hyperparameter; runs of one group and setting that differ
 * only in their seed are the replicates averaged over.
 *
 * Selection, per group:
 *   - a setting is selectable when at least one of its runs completed with
 *     a finite validation metric and none of its runs was stopped (a
 *     non-finite loss: a diverged setting is never chosen);
 *   - the chosen setting is the selectable one with the best mean metric
 *     over its seeds (val_accuracy: highest; val_loss: lowest). Ties, in
 *     this order: the better mean of the other validation metric (loss
 *     lowest / accuracy highest), more seeds, the smaller sample standard
 *     deviation of the metric, the smaller train.lr, and last the canonical
 *     setting string in strcmp order (deterministic, not meaningful);
 *   - a group with a single setting needs no choice: it is reported even
 *     when its runs have no validation metric (nothing was chosen on test);
 *   - a group of several settings none of which has a validation metric is
 *     not selectable: its cell says so, and its test accuracy is not shown
 *     (choosing on test would be the bias this exists to avoid).
 * The test metric never enters the choice.
 *
 * At the chosen setting: the test accuracy's mean over its completed runs,
 * the sample standard deviation (n - 1 in the denominator; none when
 * n = 1), n, and for n >= 3 the 95% Student t interval
 * mean +- t(0.975, n - 1) * sd / sqrt(n).
 *
 * Marks on a cell (explained under each table):
 *   *  some seeds are missing or some runs did not finish in this group: the
 *      expected seeds are the grid's (report_options.seeds) or else every
 *      seed seen in the same table (dataset and model); a setting that
 *      lacks one, has an unfinished or stopped run, or (with a grid) a run
 *      without a file marks its group, and the notes name them, one line
 *      per setting and kind. Nothing is filled in: the means are over the
 *      runs that completed. (The same run twice, e.g. a copy in a second
 *      directory, counts once, with a note and no mark.)
 *   !  some settings of the group completed without a validation metric and
 *      were left out of the choice.
 *   =  the best mean was tied and a tie rule above decided.
 *
 * Ownership: a report_set owns its runs (and every string in them);
 * a report owns its groups and settings, and points into the report_set it
 * was built from (which must outlive it).
 */
#ifndef RANDLORA_RESULTS_REPORT_H
#define RANDLORA_RESULTS_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "results/run_group.h"

struct store;
struct run_plan;

/* one run (a run file, or a run of the grid with no file) */
struct report_run {
    char  *path;            /* the run file; NULL for a grid run without one  */
    struct run_key key;     /* group, setting, seed, counts (owned)           */
    bool   present;         /* a file exists                                  */
    bool   completed;       /* /final/completed                               */
    bool   stopped;         /* stopped on a non-finite loss                   */
    bool   has_val;         /* the file has a validation split's metrics      */
    double val_accuracy, val_loss;     /* NaN when absent                     */
    double test_accuracy, test_loss;   /* NaN unless completed                */
};

/* a set of runs (grows with report_set_add) */
struct report_set {
    struct report_run *runs;
    size_t n, cap;
};

enum report_metric { REPORT_VAL_ACCURACY = 0, REPORT_VAL_LOSS };
enum report_format { REPORT_TEXT = 0, REPORT_MD, REPORT_TSV, REPORT_LATEX };

struct report_options {
    enum report_metric metric;
    const uint64_t *seeds;  /* the grid's seeds, or NULL: the seeds seen in  */
    size_t n_seeds;         /* each table                                    */
};

/* how a group's cell came about */
enum report_choice {
    REPORT_CHOSEN = 0,      /* best validation metric among several settings */
    REPORT_ONLY,            /* a single setting: nothing to choose           */
    REPORT_NOT_SELECTABLE,  /* several settings, none with validation data   */
    REPORT_NONE_COMPLETE,   /* no run of the group completed                 */
};

#define REPORT_MARK_INCOMPLETE 1u   /* '*' */
#define REPORT_MARK_NO_VAL     2u   /* '!' */
#define REPORT_MARK_TIE        4u   /* '=' */

/* summary statistics of one metric over the runs of a setting */
struct report_stat {
    size_t n;               /* finite values                                  */
    double mean, sd;        /* NaN when n == 0; sd NaN when n < 2             */
    double lo, hi;          /* 95% t interval; NaN when n < 3                 */
};

struct report_setting {
    const char *setting;    /* canonical (points into the set)                */
    char   *compact;        /* what differs from the method's other settings  */
    size_t  n_runs;         /* runs of the setting, present or not            */
    size_t  n_trainable;    /* of its first run                               */
    size_t  rank;           /* of its first run (the matched one under a budget) */
    struct report_stat val, other_val, test;   /* metric, the other one, test */
    bool    selectable;
    bool    chosen;
    size_t *runs;           /* indices into the set, sorted by seed           */
};

struct report_group {
    const struct report_run *first;     /* its first run: dataset, method...  */
    size_t   table;         /* index of its table                             */
    int      method_order;  /* row order of its method: none first, full      */
                            /* last, the others by first appearance           */
    struct report_setting *settings;
    size_t   n_settings;
    long     chosen;        /* index into settings, or -1                     */
    enum report_choice choice;
    unsigned marks;         /* REPORT_MARK_*                                  */
    char    *notes;         /* the footnote text ('\n'-separated), or NULL    */
};

struct report {
    enum report_metric metric;
    struct report_group *groups;    /* sorted: table, method, size, column    */
    size_t n_groups;
    size_t n_tables;                /* distinct (dataset, model)              */
};

/* ---------------------------------------------------------------- runs */

/* Add a run (moved in: the set owns its strings from now on; *r is zeroed). */
void report_set_add(struct report_set *set, struct report_run *r);
void report_set_free(struct report_set *set);

/* The record of an open run file (path: for messages). RL_ERR_FORMAT when
 * its /config is not one run's plan. */
int report_run_read(struct store *s, const char *path, struct report_run *r);
void report_run_free(struct report_run *r);

/* The names of the *.h5 files directly in dir (not starting with '.'), in
 * strcmp order; allocated (free each and the array). RL_ERR_IO with one
 * line when dir cannot be read. */
int report_list_run_files(const char *dir, char ***names, size_t *n);

/* Every *.h5 directly in dir, in name order (or dir itself when it is a
 * file), added to set. A file that cannot be read is left out with one line
 * on err naming it; RL_ERR_ARG (nothing added) when dir cannot be read. */
int report_set_load(struct report_set *set, const char *dir, FILE *err);

/* Compare the set (run files) with the grid's runs `plans` (an expanded
 * experiment file): a plan whose configuration and seed no run has is added
 * as a run without a file (present = false: a missing seed, or a setting
 * never run, marked in the report); a file whose stored plan is not a run
 * of the grid gets one warning line on err, "PROG: warning: PATH: ...",
 * naming what differs when a run of the grid has its id (run_key_diff). The
 * file stays in the set as a setting of its own. *n_differ (may be NULL):
 * the files named. RL_ERR_FORMAT when a plan does not render back. */
int report_grid_check(struct report_set *set, const struct run_plan *plans, size_t n_plans,
                      const char *prog, FILE *err, size_t *n_differ);

/* Compare set with the grid (when plans is non-NULL: report_grid_check,
 * the expected seeds then default to the grid's), then build and print the
 * report on out (out NULL: only the comparison). */
int report_set_print(FILE *out, FILE *err, const char *prog, struct report_set *set,
                     const struct run_plan *plans, size_t n_plans,
                     const struct report_options *o, enum report_format fmt, bool all);

/* Everything `randlora report` does after parsing its arguments: load the
 * run files of dirs[0..n_dirs) (each a directory or a run file), compare
 * them with the grid when plans is non-NULL (seeds then default to the
 * grid's), build and print. prog prefixes the warning lines on err.
 * RL_ERR_ARG when a directory cannot be read or no run file was read. */
int report_from_dirs(FILE *out, FILE *err, const char *prog, const char *const *dirs,
                     size_t n_dirs, const struct run_plan *plans, size_t n_plans,
                     const struct report_options *o, enum report_format fmt, bool all);

/* ---------------------------------------------------------------- selection */

/* Group, select and compute as described above. */
int  report_build(struct report *rep, const struct report_set *set,
                  const struct report_options *o);
void report_free(struct report *rep);

/* mean, sample sd and 95% t interval of x[0..n) (NaN entries skipped) */
void report_stat_compute(struct report_stat *st, const double *x, size_t n);

/* t(0.975, df), the two-sided 95% quantile of Student's t; df >= 1 */
double report_t975(size_t df);

/* ---------------------------------------------------------------- output */

/* The tables (one per dataset and model; methods as rows with budget, rank
 * and trainable count; shots / fractions as columns), the chosen settings,
 * footnotes; with all, every setting of every group. */
void report_print(FILE *out, const struct report *rep, enum report_format fmt, bool all);

const char *report_metric_name(enum report_metric m);

#endif /* RANDLORA_RESULTS_REPORT_H */
