/*
 * dist_harness.h: starting randlora under mpirun in tests (check_dist.c,
 * check_dist_sweep.c). Failures abort the test (Check).
 */
#ifndef RANDLORA_TESTS_DIST_HARNESS_H
#define RANDLORA_TESTS_DIST_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* How the tests start mpirun: as root too (CI), more ranks than cores
 * allowed. Under SAN=1 LeakSanitizer would report Open MPI's own
 * allocations (left at MPI_Finalize, some in its unloaded plugins, beyond a
 * suppression by name) and fail every rank, so leak detection is off in
 * the ranks; the one-process runs and the other suites still check ours.
 * Append the number of ranks. */
#define MPIRUN "ASAN_OPTIONS=\"${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0\" " \
               "mpirun --oversubscribe --allow-run-as-root -np "

/* the randlora binary: $RANDLORA_BIN (make check sets it), else ./randlora */
const char *dist_bin(void);

/* true when this build and this machine can run mpirun; else why not on
 * stderr, naming `who` (the suite) */
bool mpi_available(const char *who);

/* the pid of MPI rank `rank` among the children of mpirun's threads (Open
 * MPI forks the ranks from one of them and sets OMPI_COMM_WORLD_RANK in
 * each), or -1 */
pid_t rank_pid(pid_t mpirun, int rank);

/* Kill MPI rank `rank` of the job mpirun started (SIGKILL) and wait for
 * mpirun, asserting that it fails. false when the rank's pid cannot be
 * found: mpirun is then killed and waited for, and a line on stderr says
 * that `test` of suite `who` was skipped. */
bool kill_rank(pid_t mpirun, int rank, const char *who, const char *test);

/* whether the run file at path (being written, SWMR) holds a checkpoint of
 * step min_step or later */
bool has_checkpoint(const char *path, size_t min_step);

/* `exec cmd` through /bin/sh in a child (test_fork): its pid */
pid_t start_shell(const char *cmd);

#endif /* RANDLORA_TESTS_DIST_HARNESS_H */
