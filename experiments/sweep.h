/*
 * sweep.h: the whole grid of an experiment file (experiments/config.h), one
 * run file per plan (experiments/runner.h), and summary.tsv.
 *
 *     struct experiment e;  struct run_plan *plans;  size_t n;
 *     struct runner_shapes shapes = { 0 };
 *     experiment_load(&e, "experiments/quickstart.ini", NULL, 0);
 *     experiment_expand(&e, runner_plan_shapes, &shapes, &plans, &n);  // budget matching
 *     struct sweep_options o;
 *     struct sweep_counts c;
 *     sweep_options_init(&o);
 *     o.resume = true;  o.jobs = 2;
 *     rc = sweep_run(&e, plans, n, &o, &c);   // RL_ERR when some run failed
 *
 * What sweep_run does, in order:
 *   1. selects the plans of this shard: plan->index % n_shards == shard
 *      (n_shards 0 or 1: all of them);
 *   2. prints the grid: its size, the shard's share, one line per selected
 *      plan (experiments/plan_list.h: id, method, rank, lr, steps, effective
 *      batch, trainable count, and what will happen to it); with dry_run it
 *      stops here (nothing created, nothing run);
 *   3. refuses (RL_ERR_ARG, nothing run) when a preset model is not
 *      pretrained yet (naming `randlora pretrain -c FILE`), or, without
 *      resume, when a selected plan's run file <output>/<id>.h5 already exists
 *      (naming --resume: a sweep never overwrites a run file); with resume, a
 *      file whose /final/completed is 1 is skipped, and a file that holds
 *      another configuration than its plan is refused the same way;
 *   4. creates <output> (mkdir -p) and runs the remaining plans, each in a
 *      child process (fork), at most `jobs` at once. Every child applies the
 *      thread policy threads_init(max(1, cores / min(jobs, runs))) (cores =
 *      RANDLORA_THREADS, else the online CPUs) and calls runner_run with
 *      resume (a file left with a checkpoint continues where it stopped).
 *      A child holds an flock on <output>/.<id>.lock while it runs (removed
 *      after), so a second sweep on the same output fails that run ("being
 *      written by another process") instead of writing its file twice; the
 *      lock does not cover `randlora train` on the same file. The parent
 *      uses neither OpenBLAS nor OpenMP and has no HDF5 file open at a fork. A run that fails (exit status, signal, or a failed
 *      fork) is reported with its message and does not stop the others. One
 *      line per finished run:
 *          [ 3/12] lora-b25000-s4-seed1  accuracy 0.6120  41.2 s
 *   5. rewrites <output>/summary.tsv from the run files present
 *      (sweep_write_summary), names any run file there that is not a run
 *      of the grid (its stored plan differs), and prints the report table
 *      (results/report.h: per dataset, method, budget or rank and shots or
 *      fraction, the setting with the best mean val_accuracy over seeds and
 *      its test accuracy; a shard prints instead how to get the report of
 *      the whole grid: --summary after the last shard). When runs failed,
 *      their ids and messages are listed last and RL_ERR is returned.
 *      A run whose results file could not be written (disk full: the
 *      runner's RL_ERR_WRITE) is a failed run like any other.
 *      Under mpirun (dist_size() > 1) the runs go to the ranks instead, one
 *      per rank at a time (experiments/sweep_ranks.h): sweep_run is rank 0's
 *      part, with `jobs` taken as 1; the caller runs sweep_ranks_serve on the
 *      other ranks and sweep_ranks_release on rank 0 afterwards
 *      (cli/cmd_sweep.c). Each child gets SIGTERM if its parent dies (Linux),
 *      so a killed sweep leaves resumable files and no running orphans.
 *
 * SIGINT and SIGTERM (core/interrupt.h): the parent passes the signal on to
 * the running children (each finishes its step, records it and exits 130 /
 * 143, its file resumable), starts no more runs, waits for the children,
 * writes the summary and returns RL_ERR_INTERRUPTED: "interrupted (SIGINT)
 * with 3 of 12 runs unfinished; resume with <resume_command>".
 *
 * Each run goes in its own process so that runs do not share memory, peak
 * RSS is per run, and a crash costs one run; `randlora train --run ID` runs
 * one plan in-process (for a debugger).
 *
 * summary.tsv: a header line, then one row per run file (every *.h5 directly
 * in the directory that holds a run configuration): first the grid's runs in
 * grid order, then any other run files by name. Columns, tab-separated:
 *     id dataset method rank budget shots fraction seed n_trainable
 *     accuracy loss steps_done seconds images_per_s peak_rss_bytes status
 *     val_accuracy val_loss
 *     lr weight_decay alpha scaling steps epochs batch accumulate warmup
 *     dropout profile basis modules towers
 * budget 0: sized by rank; shots 0: a fraction of the training set, else
 * fraction 0; accuracy and loss (the final evaluation on the test set) and
 * val_accuracy, val_loss (on the validation split; nan without one) with
 * %.17g, so equal text means bit-identical values, "nan" until the run
 * completed; steps_done: the steps done; seconds: the training wall time
 * (all sessions of a resumed run); status: complete, stopped (non-finite
 * loss; root attr `stopped`), or incomplete (interrupted, or still
 * running). The hyperparameter columns are the stored plan's values as the
 * experiment file writes them ("-" where the plan has none: steps of a run
 * sized in epochs and the reverse; lists without spaces, "q_proj,v_proj");
 * alpha 0 is the method's default; scaling is the adapter's scaling rule
 * (LoRA alpha/r or alpha/sqrt(r) with rslora, RandLoRA alpha/r,
 * alpha/(r*sqrt(n)) or 1/r by profile, "-" for the others). The file is
 * written to a temporary name in the same directory and renamed over the
 * old one, so a reader sees a whole table; since it is derived from the run
 * files only, shards and resumed sweeps converge to the same summary.
 */
#ifndef RANDLORA_EXPERIMENTS_SWEEP_H
#define RANDLORA_EXPERIMENTS_SWEEP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "experiments/config.h"
#include "results/report.h"

#define SWEEP_SUMMARY_FILE "summary.tsv"

struct sweep_options {
    const char *config_path;  /* named in messages ("randlora pretrain -c FILE")    */
    bool   resume;            /* skip complete run files, continue unfinished ones   */
    bool   dry_run;           /* print the selected plans, run nothing               */
    size_t jobs;              /* runs at once; 0: the experiment's [sweep] jobs      */
    size_t shard, n_shards;   /* this shard: index % n_shards == shard (0/0: all)    */
    int    verbosity;         /* 0: one line per run; 1: also the runner's progress
                                 (with one run at a time) and a line per start       */
    FILE  *out;               /* grid, per-run lines, table; NULL: stdout            */
    FILE  *err;               /* failures; NULL: stderr                              */
    const char *resume_command; /* named when interrupted ("randlora sweep -c x.ini
                                 --resume"); NULL: "--resume"                        */
    const size_t *n_train;    /* per plan (by position): its sampled training items,
                                 to list epochs as steps (plan_list_check_data);
                                 NULL: not counted                                   */
};

struct sweep_counts {
    size_t grid;              /* plans in the grid                                   */
    size_t selected;          /* plans of this shard                                 */
    size_t skipped;           /* complete already (resume)                           */
    size_t run, failed;       /* runs started, and of those failed                   */
    size_t rows;              /* rows written to summary.tsv                         */
};

/* the hyperparameter columns of summary.tsv (sweep_hyper_column) */
#define SWEEP_N_HYPER 14

/* one row of summary.tsv, read from a run file (strings owned) */
struct sweep_row {
    char    *id, *dataset, *method, *status;
    int64_t  rank;
    size_t   budget, shots;
    double   fraction;
    uint64_t seed;
    int64_t  n_trainable;
    double   accuracy, loss;      /* test set; NaN unless complete             */
    double   val_accuracy, val_loss;  /* NaN unless complete with a val split  */
    int64_t  steps;               /* the steps done (column steps_done)        */
    double   seconds, images_per_s;
    int64_t  peak_rss_bytes;
    char    *hyper[SWEEP_N_HYPER];    /* the hyperparameter columns' text       */
    struct report_run run;        /* the report's record of the file           */
};

void sweep_options_init(struct sweep_options *o);

/* The sweep (above) over plans (the expanded grid of e, in order). RL_OK
 * when every selected run is complete at the end; RL_ERR_ARG (nothing run)
 * for a refusal in step 3; RL_ERR_IO when <output> cannot be made; RL_ERR
 * when runs failed (the message counts and names them). c may be NULL. */
int sweep_run(const struct experiment *e, const struct run_plan *plans, size_t n,
              const struct sweep_options *o, struct sweep_counts *c);

/* "I/N" with 0 <= I < N: RL_ERR_ARG with a message otherwise. */
int sweep_parse_shard(const char *spec, size_t *shard, size_t *n_shards);

/* The name of hyperparameter column i (< SWEEP_N_HYPER): "lr", ...,
 * "towers"; NULL past the end. */
const char *sweep_hyper_column(size_t i);

/* The summary row of a run file: RL_ERR_FORMAT / RL_ERR_IO when it is not
 * a readable run file. */
int  sweep_read_row(const char *path, struct sweep_row *row);
void sweep_row_free(struct sweep_row *row);

/* Rewrite dir/summary.tsv (atomically, see above) from the run files in
 * dir, rows of the grid's plans (may be NULL) first. Files that cannot be
 * read are left out with a line on err (NULL: stderr). With plans, every
 * run file whose stored plan is not a run of the grid is named on err
 * ("randlora sweep: warning: PATH: ...", report_grid_check). *n_rows may be
 * NULL. With table non-NULL, the report is printed there (report_print,
 * text; the grid's runs without a file count as missing seeds). */
int sweep_write_summary(const char *dir, const struct run_plan *plans, size_t n_plans,
                        FILE *table, FILE *err, size_t *n_rows);

#endif /* RANDLORA_EXPERIMENTS_SWEEP_H */
