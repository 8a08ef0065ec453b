/*
 * run_lock.h: one writer per run file.
 *
 * A run file is written by one process at a time; `randlora train` and
 * `randlora sweep` both take an exclusive flock on a lock file beside it
 * (RUN.h5 -> .RUN.lock in the same directory) for as long as they write,
 * so a second writer fails with a clear message instead of interleaving
 * its rows with the first one's. The lock is advisory: tools that only
 * read (info, plot, analyze) do not take it.
 *
 *     struct run_lock lk;
 *     if ((rc = run_lock_acquire(&lk, "out/runs/x/lora-r8-s4-seed1.h5")))
 *         return rc;                       // RL_ERR: held by another process
 *     ... runner_run(...) ...
 *     run_lock_release(&lk);               // removes the lock file
 */
#ifndef RANDLORA_EXPERIMENTS_RUN_LOCK_H
#define RANDLORA_EXPERIMENTS_RUN_LOCK_H

struct run_lock {
    int   fd;        /* -1 when not held                 */
    char *path;      /* the lock file; owned, freed on release */
};

/* The lock of run_path: RL_OK and l held; RL_ERR naming both files when
 * another process holds it; RL_ERR_IO when the lock file cannot be made.
 * On failure l is left released. */
int  run_lock_acquire(struct run_lock *l, const char *run_path);
/* Remove the lock file and release the lock; safe on a released lock. */
void run_lock_release(struct run_lock *l);

#endif /* RANDLORA_EXPERIMENTS_RUN_LOCK_H */
