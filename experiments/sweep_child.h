/*
 * sweep_child.h: one run of a sweep in a child process, and what the
 * parent makes of its end (internal to sweep.c and sweep_ranks.c).
 *
 *     struct sweep_child_args a = { .resume = true, .threads = 2, .log = stderr };
 *     int fd;
 *     pid_t pid = sweep_child_start(&plans[k], paths[k], &a, NULL, 0, &pids[j], &fd, why,
 *                                   sizeof(why));
 *     waitpid(pid, &wstatus, 0);
 *     struct sweep_outcome oc;
 *     sweep_child_collect(fd, wstatus, timer_now() - t0, &oc);
 *     sweep_tally_end(&tally, out, plans, k, "", interrupt_pending(), &oc);  // the line
 *
 * The child takes the run's lock (experiments/run_lock.h), applies
 * threads_init(threads), leaves any MPI job (dist_detach: its run is one
 * process, whatever its parent's rank), gets SIGTERM when its parent dies
 * (Linux: the run records its step and stops, its file resumable), calls
 * runner_run, writes a report into a pipe and exits with the run's status.
 */
#ifndef RANDLORA_EXPERIMENTS_SWEEP_CHILD_H
#define RANDLORA_EXPERIMENTS_SWEEP_CHILD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

#include "experiments/config.h"

#define SWEEP_MSG_MAX 1024

struct sweep_child_args {
    bool        resume;          /* runner_options.resume                          */
    const char *resume_command;  /* runner_options.resume_command                  */
    int         threads;         /* threads_init in the child                      */
    int         verbosity;       /* the runner's progress (0: none)                */
    FILE       *log;             /* the runner's log stream                        */
};

/* what a child sends back through its pipe (then its error message) */
struct sweep_child_report {
    int    ok;
    int    already_complete;
    double accuracy, seconds;
    size_t n_trainable, steps;
};

/* the end of one run as its parent saw it; plain data (sent between ranks) */
struct sweep_outcome {
    int    wstatus;                    /* waitpid's status                        */
    int    have_report;                /* the child's report arrived              */
    struct sweep_child_report rep;
    double seconds;                    /* wall time from start to end             */
    char   msg[SWEEP_MSG_MAX];         /* the child's error message, or ""        */
};

/* the runs of one process's share of a sweep: counts, failures */
struct sweep_failure {
    size_t plan;                       /* index into the plans                    */
    char  *msg;                        /* owned                                   */
};
struct sweep_tally {
    size_t n_todo;                     /* runs to do                              */
    size_t done, ok;                   /* ended so far; of which complete         */
    struct sweep_failure *fails;       /* n_fails of n_todo slots                 */
    size_t n_fails;
    int    signal;                     /* a run's process stopped on SIGINT or
                                          SIGTERM (interrupted: see below), 0 if none */
};

void sweep_tally_init(struct sweep_tally *t, size_t n_todo);
void sweep_tally_free(struct sweep_tally *t);

/* <output>/<id>.h5 of p (owned by the caller) */
char *sweep_plan_path(const struct run_plan *p);

/* threads for each of `jobs` runs at once: RANDLORA_THREADS when set, else
 * the online CPUs, divided by jobs, at least 1 */
int sweep_threads(size_t jobs);

/* Fork a child that runs p into path (above). Returns its pid and *fd, the
 * read end of its report pipe (the caller closes it: sweep_child_collect);
 * the pid is also stored in *forward_slot (an entry of the array given to
 * interrupt_forward) before SIGINT and SIGTERM are unblocked again, so a
 * signal from then on reaches the child. The child closes
 * close_fds[0..n_close) first (the pipes of its running siblings). -1 when
 * no process could be started, the reason in why. */
pid_t sweep_child_start(const struct run_plan *p, const char *path,
                        const struct sweep_child_args *a, const int *close_fds, size_t n_close,
                        volatile pid_t *forward_slot, int *fd, char *why, size_t why_size);

/* Read the ended child's report from fd (closed here) into oc, with its
 * wait status and wall time. */
void sweep_child_collect(int fd, int wstatus, double seconds, struct sweep_outcome *oc);

/* plans[k] could not be started (why): counted as ended and failed, with
 *     [ 3/12] lora-b25000-s4-seed1 FAILED: cannot start a process: ... */
void sweep_tally_not_started(struct sweep_tally *t, FILE *out, const struct run_plan *plans,
                             size_t k, const char *why);

/* plans[k] ended as oc says: counted, and one line on out,
 *     [ 3/12] lora-b25000-s4-seed1  accuracy 0.6120  41.2 s<where>
 * (where: "" or e.g. "  rank 1"), "interrupted after" when it stopped on
 * the sweep's own interruption (interrupted: the signal reached the
 * process that ran it; not a failure), else "FAILED after ...: message"
 * with oc->msg completed by how the child ended (a failure). */
void sweep_tally_end(struct sweep_tally *t, FILE *out, const struct run_plan *plans, size_t k,
                     const char *where, bool interrupted, struct sweep_outcome *oc);

#endif /* RANDLORA_EXPERIMENTS_SWEEP_CHILD_H */
