/*
 * store_resume.c: store_resume, reopening the file of a dead writer. The
 * repairs are made in a working copy (store_commit.c): it clears the dead
 * writer's flags, repairs the end of allocation, truncates the curves to the
 * last checkpoint and starts SWMR writing; only then is it renamed over the
 * file. A resume killed half-way leaves the file as it was (the repairs
 * outside SWMR mode would leave it "open for write", unreadable).
 */
#include <hdf5.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/status.h"
#include "results/store.h"
#include "results/store_impl.h"

/* ------------------------------------------------------------- resume */

static int truncate_group(struct store *s, const char *group, const char *const *names, int count, size_t rows)
{
    char p[64];
    hsize_t n = rows;

    for (int i = 0; i < count; i++) {
        snprintf(p, sizeof p, "/%s/%s", group, names[i]);
        hid_t d = H5Dopen2(s->file, p, H5P_DEFAULT);
        int rc = d < 0 || store_i_fault() || H5Dset_extent(d, &n) < 0
                     ? store_i_h5_error(RL_ERR_WRITE, "%s: %s: cannot truncate to %zu rows", s->path, p, rows) : RL_OK;
        if (d >= 0)
            H5Dclose(d);
        if (rc)
            return rc;
    }
    return RL_OK;
}

int store_resume(struct store **out, const char *path)
{
    struct store *s;
    struct store_checkpoint_info ci = { 0, 0, 0 };
    struct store_final f;
    int completed = 0, rc;
    int64_t cur = -1;
    size_t trows, erows;

    store_i_h5_quiet();
    *out = NULL;
    if (!path || !*path)
        return rl_error_set(RL_ERR_ARG, "store_resume: no path");
    if ((rc = store_i_check_is_hdf5(path)))
        return rc;
    s = store_new(path);
    if ((rc = store_i_open_work(s, RL_ERR_IO, true)))
        goto fail;
    /* The dead SWMR writer's metadata may lie past the end of allocation
     * recorded in the superblock: grow it to the file's size (h5clear -i 0). */
    if (store_i_fault() || H5Fincrement_filesize(s->file, 0) < 0) {
        rc = store_i_h5_error(RL_ERR_WRITE, "%s: cannot reset the end of allocation to resume", path);
        goto fail;
    }
    if ((rc = store_i_validate(s)) || (rc = store_read_final(s, &f, &completed)) ||
        (rc = store_i_read_i64_at(s, "/checkpoint/current", &cur)))
        goto fail;
    if (completed) {
        rc = rl_error_set(RL_ERR_ARG, "%s: the run was completed; nothing to resume", path);
        goto fail;
    }
    if (cur != -1 && (rc = store_read_checkpoint(s, &ci, NULL, NULL, NULL, NULL)))
        goto fail;
    if ((rc = store_i_group_rows(s, "train", store_i_train_names, N_TRAIN, &trows)) ||
        (rc = store_i_group_rows(s, "eval", store_i_eval_names, N_EVAL, &erows)))
        goto fail;
    if (ci.train_rows > trows || ci.eval_rows > erows) {
        rc = rl_error_set(RL_ERR_FORMAT, "%s: /checkpoint: covers %zu train and %zu eval rows, the file has %zu "
                          "and %zu", path, ci.train_rows, ci.eval_rows, trows, erows);
        goto fail;
    }
    if ((rc = truncate_group(s, "train", store_i_train_names, N_TRAIN, ci.train_rows)) ||
        (rc = truncate_group(s, "eval", store_i_eval_names, N_EVAL, ci.eval_rows)))
        goto fail;
    s->train_rows = ci.train_rows;
    s->eval_rows = ci.eval_rows;
    s->current = cur;
    if ((rc = store_i_start_swmr(s)))
        goto fail;
    if (store_i_fault() || rename(s->work_path, path) != 0) {
        rc = rl_error_set(RL_ERR_WRITE, "%s: cannot replace it with its repaired copy %s: %s", path, s->work_path,
                          strerror(errno));
        goto fail;
    }
    free(s->work_path);
    s->work_path = NULL;
    *out = s;
    return RL_OK;
fail:
    store_i_close(s, false);
    return rc;
}
