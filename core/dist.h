/*
 * dist.h: the processes of a data-parallel run (docs/cluster.md). Built
 * over MPI when the Makefile finds it (RANDLORA_MPI); otherwise, and when
 * the program was not started by an MPI launcher (mpirun, srun), there is
 * one process: rank 0 of 1, and every call below is a no-op or a copy.
 *
 * All calls are collective (every rank makes them, in the same order)
 * except dist_rank and dist_size, and are made from the main thread only.
 * A transport failure aborts the job (MPI's default error handler): there
 * is nothing a rank could do alone.
 */
#ifndef RANDLORA_CORE_DIST_H
#define RANDLORA_CORE_DIST_H

#include <stdbool.h>
#include <stddef.h>

/* Start MPI when a launcher started this process (its environment says
 * so); otherwise, or in a build without MPI, nothing. Call once, first in
 * main; dist_finalize before exiting. */
void dist_init(int *argc, char ***argv);
void dist_finalize(void);

int dist_rank(void);               /* 0..dist_size()-1                       */
int dist_size(void);               /* 1 without MPI or without a launcher    */
bool dist_built_with_mpi(void);

/* x[0..n) summed over the ranks into every rank's x, in a fixed order:
 * rank 0 gathers the ranks' blocks (in pieces) and adds them left to
 * right, x_0 + x_1 + ... + x_{K-1}, then broadcasts the sums. The result
 * depends only on the ranks' values, never on the MPI implementation or
 * the network (an MPI_Allreduce may associate differently). */
void dist_sum_floats(float *x, size_t n);

/* each rank's `bytes` bytes of mine into all (dist_size() * bytes, rank
 * order), on every rank */
void dist_allgather(const void *mine, void *all, size_t bytes);

/* rank 0's buf[0..bytes) into every rank's buf */
void dist_broadcast(void *buf, size_t bytes);

/* the lowest rank whose flag is true, or -1 when none is: how the ranks
 * agree to stop together (a failure, an interruption) */
int dist_first(bool flag);

/* End every rank of the job now with exit status `status` (a failure only
 * this rank saw, after which the others would wait forever); in one
 * process, exit(status). Not collective. */
void dist_abort(int status);

#endif /* RANDLORA_CORE_DIST_H */
