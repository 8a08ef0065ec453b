/*
 * plot_runs.h: what `randlora plot` reads from run files, and how it groups
 * them (cli/cmd_plot.c; the figures are results/plot_figs.h).
 *
 * A run (plot_run_read): its key (results/run_group.h: group, setting,
 * the whole configuration but the seed, the seed), /final (test and
 * validation accuracy and loss, peak RSS), the /train loss and wall-clock
 * curve, the /eval accuracy and loss curves with the split they evaluate,
 * and /analysis when `randlora analyze` wrote it: per layer the singular
 * values, numerical and effective rank, shape, and the update similarity to
 * a reference; per encoder layer the activation CKA. A run still training
 * is read as far as it has flushed (no /final: NaN).
 *
 * Settings (plot_set_group): runs whose whole configuration but the seed is
 * equal (run_key.config, strcmp) are one setting; only those are averaged
 * (mean and sample standard deviation over seeds). Runs at different
 * learning rates, or differing in any other key, are never merged. Within
 * a group (dataset, model, method, budget or rank, shots or fraction) one
 * setting is selected by the report engine (results/report.h,
 * report_build: the best mean validation accuracy over seeds, its tie
 * rules, stopped runs never chosen), so plot draws what `randlora report`
 * tabulates. A group of several settings none of which has a validation
 * accuracy selects nothing (all are drawn, and plot says so); a group of
 * one setting selects it.
 *
 * Ownership: a plot_set owns its runs and settings; plot_set_free frees
 * them. Settings point into their first run's key (valid while the set is).
 */
#ifndef RANDLORA_RESULTS_PLOT_RUNS_H
#define RANDLORA_RESULTS_PLOT_RUNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "results/report.h"
#include "results/run_group.h"

/* one adapted layer's /analysis */
struct plot_layer {
    char *site;
    size_t rank, d_out, d_in;       /* d_*: 0 when not stored                 */
    float *sv;                      /* singular values, descending            */
    size_t n_sv;
    double effective_rank;          /* NaN when not stored                    */
    double ref_cosine, ref_overlap_out, ref_overlap_in;   /* NaN: no reference */
};

/* one curve: n points (x ascending as stored) */
struct plot_curve {
    double *x, *y;
    size_t n;
};

struct plot_run {
    char *path;
    struct run_key key;             /* method, shots, budget, rank, seed, ... */
    bool has_rank;                  /* the method takes a rank                */
    double lr;                      /* train.lr (NaN when absent)             */
    size_t n_classes;               /* training items / shots; 0: unknown     */
    int completed;                  /* /final written                         */
    double accuracy, loss;          /* /final, the test set; NaN until done   */
    double val_accuracy, val_loss;  /* /final/val_*; NaN without a split      */
    double peak_rss_mib;            /* NaN until done                         */
    double train_s;                 /* wall clock of the last /train row      */
    struct plot_curve train_loss, eval_acc, eval_loss;
    const char *eval_split;         /* "val" or "test" (static)               */
    struct plot_layer *layers;      /* in site order                          */
    size_t n_layers;
    double *cka_vision, *cka_text;  /* per encoder layer; NaN: not computed   */
    size_t n_cka_vision, n_cka_text;
    char *reference;                /* /analysis attr reference ("" none)     */
    bool is_reference;              /* that reference is this file itself     */
    struct report_run rec;          /* the report engine's record (moved into
                                       plot_set.report_runs by plot_set_group) */
};

/* the runs of one whole configuration but the seed */
struct plot_setting {
    const struct run_key *key;      /* the first run's                        */
    size_t *runs;                   /* indices into plot_set.runs, seed order */
    size_t n;                       /* runs (seeds)                           */
    size_t n_done;                  /* with a final test accuracy             */
    double acc_mean, acc_std;       /* test accuracy over finished seeds      */
    double val_mean, val_std;       /* validation accuracy, NaN without       */
    char *label;                    /* the keys that differ in its group, "" */
    bool selected;                  /* the group's selected setting           */
    bool group_unselected;          /* its group has several, none selected   */
    size_t group_settings;          /* settings in its group                  */
    size_t n_dup_seeds;             /* runs whose seed an earlier run of the
                                       setting has (averaged all the same;
                                       plot names them)                     */
};

struct plot_set {
    struct plot_run *runs;
    size_t n_runs;
    struct plot_setting *settings;  /* in order of their first run            */
    size_t n_settings;
    struct report_set report_runs;  /* run i's record at index i              */
    struct report report;           /* the selection                          */
};

/* Read one run file (read-only, SWMR read). On failure r is freed and the
 * error set (RL_ERR_FORMAT for a bad file, RL_ERR_IO when it cannot be
 * opened). */
int  plot_run_read(const char *path, struct plot_run *r);
void plot_run_free(struct plot_run *r);

/* Group set->runs into settings, their statistics, labels and selection. */
void plot_set_group(struct plot_set *set);
void plot_set_free(struct plot_set *set);

/* mean and sample standard deviation (0 for one value) of the finite
 * values among v[0..n); *used: how many; NaN mean when none */
void plot_mean_std(const double *v, size_t n, double *mean, double *std, size_t *used);

#endif /* RANDLORA_RESULTS_PLOT_RUNS_H */
