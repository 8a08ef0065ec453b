/*
 * run_lock.c: an exclusive flock on .NAME.lock beside a run file NAME.h5.
 */
#include "experiments/run_lock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/status.h"

/* dir/NAME.h5 -> dir/.NAME.lock (NAME.h5 without the suffix; any other name kept whole) */
static char *lock_path_of(const char *run_path)
{
    const char *slash = strrchr(run_path, '/');
    const char *base = slash ? slash + 1 : run_path;
    size_t dir_len = (size_t)(base - run_path), base_len = strlen(base);
    size_t need;
    char *p;

    if (base_len > 3 && !strcmp(base + base_len - 3, ".h5"))
        base_len -= 3;
    need = dir_len + base_len + sizeof("..lock");
    p = xmalloc(need);
    snprintf(p, need, "%.*s.%.*s.lock", (int)dir_len, run_path, (int)base_len, base);
    return p;
}

int run_lock_acquire(struct run_lock *l, const char *run_path)
{
    int rc;

    l->path = lock_path_of(run_path);
    l->fd = open(l->path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (l->fd < 0) {
        rc = rl_error_set(RL_ERR_IO, "%s: cannot create the run's lock file: %s", l->path,
                          strerror(errno));
        goto fail;
    }
    if (flock(l->fd, LOCK_EX | LOCK_NB) != 0) {
        rc = rl_error_set(RL_ERR, "%s is being written by another process (%s is locked)",
                          run_path, l->path);
        close(l->fd);
        l->fd = -1;
        goto fail;
    }
    return RL_OK;

fail:
    free(l->path);
    l->path = NULL;
    return rc;
}

void run_lock_release(struct run_lock *l)
{
    if (l->fd >= 0) {
        /* unlink while still holding it, so no other process can be
         * between its open and its flock of this inode unnoticed by us */
        unlink(l->path);
        close(l->fd);
    }
    l->fd = -1;
    free(l->path);
    l->path = NULL;
}
