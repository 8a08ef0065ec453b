/*
 * store_commit.c: the commit protocol of the results file (store.h,
 * "Commit"). What a finished writer adds (the final records, /adapter,
 * attributes) and what store_open_rw's caller adds (/analysis) is written
 * into a working copy, "<file>.tmp" beside the file, which replaces the file
 * in one rename(2) once it is whole and synced: a process killed at any
 * moment leaves the file as it was before, or complete. Also the fault hook
 * the tests use to kill the process at, or fail, each write.
 */
#define _GNU_SOURCE                       /* copy_file_range */
#include <hdf5.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/status.h"
#include "results/store.h"
#include "results/store_impl.h"

/* ------------------------------------------------------------ fault hook */

static store_fault_fn fault_fn;
static void *fault_ctx;
static unsigned long fault_count;

void store_set_fault_hook(store_fault_fn fn, void *ctx)
{
    fault_fn = fn;
    fault_ctx = ctx;
    fault_count = 0;
}

int store_i_fault(void)
{
    int err;

    if (!fault_fn || !(err = fault_fn(fault_ctx, ++fault_count)))
        return 0;
    store_i_keep_errno(err);
    errno = err;
    return 1;
}

/* ---------------------------------------------------------- working copy */

char *store_i_work_name(const char *path)
{
    size_t n = strlen(path) + sizeof(".tmp");
    char *w = xmalloc(n);

    snprintf(w, n, "%s.tmp", path);
    return w;
}

void store_i_discard_work(struct store *s)
{
    if (s->work_path) {
        unlink(s->work_path);
        free(s->work_path);
        s->work_path = NULL;
    }
}

/* write all of buf[0..n) to fd; 0 or errno */
static int write_all_fd(int fd, const char *buf, size_t n)
{
    while (n > 0) {
        ssize_t k = write(fd, buf, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return k < 0 ? errno : EIO;
        buf += k;
        n -= (size_t)k;
    }
    return 0;
}

/* The rest of `in` into `out` by read and write; 0, errno of the write, or
 * -errno of the read. */
static int copy_plain(int in, int out)
{
    char buf[1 << 16];

    for (;;) {
        ssize_t r = read(in, buf, sizeof buf);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return r < 0 ? -errno : 0;
        int err = write_all_fd(out, buf, (size_t)r);
        if (err)
            return err;
    }
}

/* Copy the bytes of `from` into `to` (created, or truncated, with from's
 * permission bits): copy_file_range (in the kernel; a reflink where the file
 * system has them), or read and write where it cannot. */
static int copy_file(struct store *s, const char *from, const char *to)
{
    struct stat st;
    int in = open(from, O_RDONLY | O_CLOEXEC), out = -1, err = 0;
    bool started = false;

    if (in < 0 || fstat(in, &st) != 0) {
        err = errno;
        if (in >= 0)
            close(in);
        return rl_error_set(RL_ERR_IO, "%s: cannot read it to write the results: %s", from, strerror(err));
    }
    if (store_i_fault())
        err = errno;
    else if ((out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, st.st_mode & 0777)) < 0)
        err = errno;
    while (!err) {
        ssize_t k = copy_file_range(in, NULL, out, NULL, (size_t)1 << 30, 0);
        if (k > 0) {
            started = true;
            continue;
        }
        if (k == 0)
            break;
        if (errno == EINTR)
            continue;
        if (!started && (errno == EXDEV || errno == ENOSYS || errno == EINVAL || errno == EOPNOTSUPP))
            err = copy_plain(in, out);
        else
            err = errno;
        break;
    }
    close(in);
    if (out >= 0 && close(out) != 0 && !err)
        err = errno;
    if (out >= 0 && err)
        unlink(to);
    if (err < 0)
        return rl_error_set(RL_ERR_IO, "%s: cannot read it to write the results: %s", from, strerror(-err));
    if (err)
        return rl_error_set(RL_ERR_WRITE, "%s: cannot write its working copy %s: %s", s->path, to, strerror(err));
    return RL_OK;
}

/* fsync a file, or a directory (where the file system cannot, EINVAL: no
 * error); 0 or errno */
static int sync_path(const char *path, bool dir)
{
    int fd = open(path, (dir ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC), err = 0;

    if (fd < 0)
        return errno;
    if (fsync(fd) != 0 && !(dir && errno == EINVAL))
        err = errno;
    close(fd);
    return err;
}

int store_i_open_work(struct store *s, int open_status, bool clear_flags)
{
    char why[192];
    int rc;

    s->work_path = store_i_work_name(s->path);
    if ((rc = copy_file(s, s->path, s->work_path))) {
        free(s->work_path);
        s->work_path = NULL;
        return rc;
    }
    s->file = store_i_file_open(s->work_path, H5F_ACC_RDWR, false, clear_flags, why);
    if (s->file < 0) {
        store_i_discard_work(s);
        return rl_error_set(open_status, "%s: cannot open its working copy read-write%s", s->path, why);
    }
    s->mode = MODE_RW;
    return RL_OK;
}

/* ---------------------------------------------------------------- finish */

int store_finish(struct store *s)
{
    store_i_h5_quiet();
    if (s->mode != MODE_SWMR)
        return rl_error_set(RL_ERR_ARG, "%s: store_finish: the store is not writing in SWMR mode", s->path);
    store_i_close_handles(s);
    bool bad = store_i_fault() || H5Fclose(s->file) < 0;
    s->file = -1;
    s->mode = MODE_READ;
    if (bad)
        return store_i_h5_error(RL_ERR_WRITE, "%s: cannot close the SWMR writer", s->path);
    return store_i_open_work(s, RL_ERR_WRITE, false);
}

int store_open_rw(struct store **out, const char *path)
{
    struct store *s;
    int rc;

    store_i_h5_quiet();
    *out = NULL;
    if (!path || !*path)
        return rl_error_set(RL_ERR_ARG, "store_open_rw: no path");
    if ((rc = store_i_check_is_hdf5(path)))
        return rc;
    s = store_new(path);
    if ((rc = store_i_open_work(s, RL_ERR_IO, false)) || (rc = store_i_validate(s))) {
        store_i_close(s, false);
        return rc;
    }
    *out = s;
    return RL_OK;
}

int store_commit(struct store *s)
{
    int rc, err;
    char *dir;

    store_i_h5_quiet();
    if (!s->work_path || s->file < 0)
        return rl_error_set(RL_ERR_ARG, "%s: store_commit: no working copy (store_finish or store_open_rw first)",
                            s->path);
    store_i_close_handles(s);
    bool bad = store_i_fault() || H5Fclose(s->file) < 0;
    s->file = -1;
    s->mode = MODE_READ;
    if (bad) {
        rc = store_i_h5_error(RL_ERR_WRITE, "%s: cannot write the results (closing its working copy %s)", s->path,
                              s->work_path);
        goto fail;
    }
    if ((err = store_i_fault() ? errno : sync_path(s->work_path, false))) {
        rc = rl_error_set(RL_ERR_WRITE, "%s: cannot sync its working copy %s: %s", s->path, s->work_path,
                          strerror(err));
        goto fail;
    }
    if (store_i_fault() || rename(s->work_path, s->path) != 0) {
        rc = rl_error_set(RL_ERR_WRITE, "%s: cannot replace it with its working copy %s: %s", s->path, s->work_path,
                          strerror(errno));
        goto fail;
    }
    free(s->work_path);
    s->work_path = NULL;
    /* the rename itself, durable (a process that dies has nothing to lose
     * here; this is for the machine) */
    dir = xstrdup(s->path);
    err = store_i_fault() ? errno : sync_path(dirname(dir), true);
    free(dir);
    if (err)
        return rl_error_set(RL_ERR_WRITE, "%s: written, but its directory could not be synced: %s", s->path,
                            strerror(err));
    return RL_OK;
fail:
    store_i_discard_work(s);
    return rc;
}
