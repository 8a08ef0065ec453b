/*
 * sweep_ranks.h: `randlora sweep` under mpirun (dist_size() > 1): rank 0
 * hands whole runs out to the ranks, one run per rank at a time
 * (docs/cluster.md, "Sweeps under mpirun").
 *
 *     rank 0                                   ranks 1..K-1
 *     rc = sweep_run(...);                     status = sweep_ranks_serve(plans, n, &o);
 *       (scans, lists, refuses; then               (waits for orders; runs each
 *        sweep_ranks_run hands out runs)            plan it is given; returns
 *     status = interrupt_exit_code(rc);             rank 0's status)
 *     sweep_ranks_release(status);
 *
 * Rank 0 alone reads the grid's files, decides what is to run (the refusals
 * and --resume's choices are those of one process), prints the progress and
 * writes summary.tsv; every run index is handed out once, to the first rank
 * that is free, so no run is done twice and long runs do not hold up a
 * static share. Rank 0 runs runs too, in its own child, polling for the
 * other ranks' results between (every 10 ms; it uses no CPU otherwise).
 * Each run is a child process (as in a one-process sweep) that leaves the
 * MPI job (dist_detach): it is one process, its training never exchanges
 * gradients with the other ranks. Why indices from rank 0 rather than every
 * rank claiming runs through the run lock: a lock is free again once its
 * run ended, so a second rank could not tell a run done (or failed) in this
 * sweep from one not yet started without a further record; rank 0's list is
 * that record, and it keeps the progress and the failure list in one place.
 *
 * A run that fails on some rank is reported by that rank like any result
 * (rank 0 prints "FAILED ... rank 1: message" and the sweep goes on, exit
 * status 1 at the end): nothing waits for it. A rank that dies (killed, or
 * a crash outside a run's child) ends the job: Open MPI's mpirun takes the
 * others down; each run's child gets SIGTERM when its rank dies (Linux), so
 * it records its step and stops, and `--resume` continues it.
 *
 * Orders and results are point-to-point messages of fixed size (core/dist.h
 * dist_send / dist_recv); a rank waiting for rank 0 polls every 20 ms
 * rather than spinning in MPI_Recv, so a node's idle ranks leave its cores
 * to the running ones.
 */
#ifndef RANDLORA_EXPERIMENTS_SWEEP_RANKS_H
#define RANDLORA_EXPERIMENTS_SWEEP_RANKS_H

#include <stddef.h>
#include <stdio.h>

#include "experiments/config.h"
#include "experiments/sweep.h"
#include "experiments/sweep_child.h"

/* Rank 0: run plans[todo[0..n_todo)] (files paths[...]) over all ranks,
 * counted into t with one line per run on out ("... rank R"); with
 * o->verbosity > 0 also a line per start ("rank R: start ID"). Returns when
 * every handed-out run has ended and either all were handed out or this
 * process got SIGINT / SIGTERM (it then hands out no more). */
void sweep_ranks_run(const struct run_plan *plans, char *const *paths, const size_t *todo,
                     size_t n_todo, const struct sweep_options *o, FILE *out, FILE *err,
                     struct sweep_tally *t);

/* Rank 0, once, last: the other ranks end their sweep_ranks_serve with
 * exit status `status`. */
void sweep_ranks_release(int status);

/* Ranks 1..K-1: run what rank 0 hands out (plans as every rank expanded
 * them from the same experiment file and options) until it releases them;
 * rank 0's exit status. Prints nothing but the runs' own errors. */
int sweep_ranks_serve(const struct run_plan *plans, size_t n, const struct sweep_options *o);

#endif /* RANDLORA_EXPERIMENTS_SWEEP_RANKS_H */
