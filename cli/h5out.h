/*
 * h5out.h: a plain HDF5 output file written whole or not at all, for the
 * commands that write one (encode, landscape): created as OUT.tmp.PID,
 * guarded against fatal signals (cli/tmp_guard.h), renamed over OUT when
 * complete, removed on any failure.
 *
 *     struct h5out o = { .file = -1 };
 *     hid_t d;
 *     if ((rc = h5out_create(&o, "x.h5")) ||
 *         (rc = h5out_attr_string(&o, "kind", "images")) ||
 *         (rc = h5out_dataset(&o, "embeds", H5T_IEEE_F32LE, n, D, &d)) ||
 *         (rc = h5out_write_rows(&o, d, H5T_NATIVE_FLOAT, 0, n, D, data)))
 *         goto fail;
 *     H5Dclose(d);
 *     rc = h5out_commit(&o);          // renamed into place (or removed)
 *   fail:
 *     h5out_abort(&o);                // after a failure: the temporary removed
 *
 * Attributes go on the root group. Dataset names may contain '/': missing
 * groups are created. Failures are RL_ERR_IO naming the final path, with
 * HDF5's innermost message appended.
 */
#ifndef RANDLORA_CLI_H5OUT_H
#define RANDLORA_CLI_H5OUT_H

#include <hdf5.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct h5out {
    const char *path;         /* the final name (borrowed)                  */
    char *tmp;                /* where it is written                        */
    hid_t file;
    bool latest;              /* set before h5out_create: HDF5 1.10's format
                                 (checksummed object headers; 1.8 tools
                                 cannot read it), as run files are          */
};

int h5out_create(struct h5out *o, const char *path);
int h5out_attr_string(struct h5out *o, const char *name, const char *value);
/* a fixed-length UTF-8 string (no global heap: readers of hostile files
 * need not trust one) */
int h5out_attr_fixed_string(struct h5out *o, const char *name, const char *value);
int h5out_attr_double(struct h5out *o, const char *name, double value);
int h5out_attr_int64(struct h5out *o, const char *name, int64_t value);
/* a fixed-size dataset (rows, cols), or (rows) when cols == 0 */
int h5out_dataset(struct h5out *o, const char *name, hid_t type, size_t rows, size_t cols, hid_t *out);
/* rows row0 .. row0 + n of a dataset made by h5out_dataset, from memtype data */
int h5out_write_rows(struct h5out *o, hid_t ds, hid_t memtype, size_t row0, size_t n, size_t cols,
                     const void *data);
/* a whole dataset in one call (created, written, closed) */
int h5out_write(struct h5out *o, const char *name, hid_t type, hid_t memtype, size_t rows, size_t cols,
                const void *data);
/* close and rename into place (the temporary removed on failure) */
int h5out_commit(struct h5out *o);
/* close and remove the temporary file (after a failure; no-op after commit) */
void h5out_abort(struct h5out *o);

#endif /* RANDLORA_CLI_H5OUT_H */
