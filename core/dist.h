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
 * the network (an MPI_Allreduce may associate differently). Rank 0's
 * gather buffer (at most K x 4 MiB) is kept from call to call and freed by
 * dist_finalize. Each call is timed (dist_sum_stats): a barrier first (the
 * wait for the slowest rank), then the exchange (gather, sum, broadcast). */
void dist_sum_floats(float *x, size_t n);

/* What dist_sum_floats cost this process so far (zeros in one process). */
struct dist_sum_stats {
    size_t calls;             /* dist_sum_floats calls with several ranks  */
    size_t floats;            /* floats summed, over all calls             */
    double wait_seconds;      /* in the barrier: waiting for other ranks   */
    double exchange_seconds;  /* gather + sum + broadcast                  */
};
struct dist_sum_stats dist_sum_stats(void);

/* each rank's `bytes` bytes of mine into all (dist_size() * bytes, rank
 * order), on every rank */
void dist_allgather(const void *mine, void *all, size_t bytes);

/* rank 0's buf[0..bytes) into every rank's buf */
void dist_broadcast(void *buf, size_t bytes);

/* the lowest rank whose flag is true, or -1 when none is: how the ranks
 * agree to stop together (a failure, an interruption) */
int dist_first(bool flag);

/* Point to point, for rank 0 to hand out work (the sweep): `bytes` bytes
 * to rank `to`, or from rank `from`, blocking (messages between two ranks
 * arrive in the order sent). dist_poll: a rank whose message to this rank
 * is waiting (not received), or -1 when none is; it never blocks. One process: no other rank exists; these must not be
 * called (RL_ASSERT). */
void dist_send(int to, const void *buf, size_t bytes);
void dist_recv(int from, void *buf, size_t bytes);
int  dist_poll(void);

/* This process leaves the job without a word to MPI: from now on it is
 * rank 0 of 1 (every call above a no-op or a copy, dist_abort a plain
 * exit, dist_finalize nothing). For a child forked by a rank (a sweep's
 * run): it must not touch the parent's MPI state, and its training must
 * not engage the other ranks. */
void dist_detach(void);

/* End every rank of the job now with exit status `status` (a failure only
 * this rank saw, after which the others would wait forever); in one
 * process, exit(status). Not collective. */
void dist_abort(int status);

#endif /* RANDLORA_CORE_DIST_H */
