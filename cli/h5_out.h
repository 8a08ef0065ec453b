/*
 * h5_out.h: a plain HDF5 output file (not a run file) written to
 * OUT.tmp.PID next to OUT and renamed into place when complete, so OUT is
 * either absent, the old file, or the whole new one; the temporary file is
 * removed on every failure, a fatal signal included (cli/tmp_guard.h).
 * Used by `randlora encode` and `randlora score`.
 *
 *     struct h5out o = { .file = -1 };
 *     hid_t ds;
 *     if ((rc = h5out_create(&o, "out.h5")) ||
 *         (rc = h5out_attr_string(&o, "harness", "randlora score")) ||
 *         (rc = h5out_dataset(&o, "logprob", H5T_IEEE_F64LE, n, 0, &ds)) ||
 *         (rc = h5out_write_rows(&o, ds, H5T_NATIVE_DOUBLE, 0, n, 0, values)))
 *         goto fail;
 *     H5Dclose(ds);
 *     rc = h5out_commit(&o);
 *   fail:
 *     h5out_abort(&o);        // a no-op after a commit
 *
 * Every failure returns RL_ERR_IO with one line naming OUT and HDF5's
 * innermost message.
 */
#ifndef RANDLORA_CLI_H5_OUT_H
#define RANDLORA_CLI_H5_OUT_H

#include <stddef.h>

#include <hdf5.h>

struct h5out {
    const char *path;         /* the final name (borrowed)                  */
    char *tmp;                /* where it is written                        */
    hid_t file;
};

/* the error with HDF5's innermost message appended */
int h5out_fail(const struct h5out *o, const char *what);
/* create the temporary file and guard it */
int h5out_create(struct h5out *o, const char *path);
/* a UTF-8 string attribute on the root */
int h5out_attr_string(struct h5out *o, const char *name, const char *value);
/* a fixed-size dataset (rows, cols), or (rows) when cols == 0 */
int h5out_dataset(struct h5out *o, const char *name, hid_t type, size_t rows, size_t cols,
                  hid_t *out);
/* rows row0 .. row0 + n of such a dataset */
int h5out_write_rows(struct h5out *o, hid_t ds, hid_t memtype, size_t row0, size_t n,
                     size_t cols, const void *data);
/* close and rename into place (the temporary file removed on failure) */
int h5out_commit(struct h5out *o);
/* close and remove the temporary file (after a failure; no-op when none) */
void h5out_abort(struct h5out *o);

#endif /* RANDLORA_CLI_H5_OUT_H */
