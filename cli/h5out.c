/*
 * h5out.c: a plain HDF5 output file written through a temporary name and a
 * rename (h5out.h).
 */
#include "cli/h5out.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/tmp_guard.h"
#include "core/alloc.h"
#include "core/status.h"

/* HDF5's innermost message, appended to ours */
static herr_t h5out_walk(unsigned n, const H5E_error2_t *e, void *data)
{
    (void)n;
    if (e->desc && *e->desc)
        snprintf((char *)data, 256, "%s", e->desc);
    return 0;
}

static int h5out_fail(const struct h5out *o, const char *what)
{
    char msg[256] = "";

    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, h5out_walk, msg);
    H5Eclear2(H5E_DEFAULT);
    return rl_error_set(RL_ERR_IO, "%s: %s%s%s", o->path, what, *msg ? ": " : "", msg);
}

int h5out_create(struct h5out *o, const char *path)
{
    size_t n = strlen(path) + 32;
    hid_t fapl;

    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    o->path = path;
    o->tmp = xmalloc(n);
    snprintf(o->tmp, n, "%s.tmp.%ld", path, (long)getpid());
    tmp_guard_set(o->tmp);           /* a fatal signal from here on removes it */
    fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0)
        return h5out_fail(o, "cannot create");
    H5Pset_file_locking(fapl, 0, 1);
    if (o->latest)
        H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST);
    o->file = H5Fcreate(o->tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    if (o->file < 0) {
        int rc = h5out_fail(o, "cannot create");

        tmp_guard_clear();
        free(o->tmp);
        o->tmp = NULL;
        return rc;
    }
    return RL_OK;
}

/* a scalar root attribute of file type ftype, written from value as
 * memtype (the types are closed here when owned) */
static int attr_scalar(struct h5out *o, const char *name, hid_t ftype, hid_t memtype, const void *value,
                       bool owned)
{
    hid_t space = H5Screate(H5S_SCALAR), attr = -1;
    int ok = ftype >= 0 && space >= 0 &&
             (attr = H5Acreate2(o->file, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT)) >= 0 &&
             H5Awrite(attr, memtype, value) >= 0;

    if (attr >= 0)
        H5Aclose(attr);
    if (space >= 0)
        H5Sclose(space);
    if (owned && ftype >= 0)
        H5Tclose(ftype);
    return ok ? RL_OK : h5out_fail(o, "cannot write an attribute");
}

/* a UTF-8 string type: variable-length (size 0) or of `size` bytes */
static hid_t string_type(size_t size)
{
    hid_t t = H5Tcopy(H5T_C_S1);

    if (t >= 0 && (H5Tset_size(t, size ? size : H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0 ||
                   (size && H5Tset_strpad(t, H5T_STR_NULLTERM) < 0))) {
        H5Tclose(t);
        t = -1;
    }
    return t;
}

int h5out_attr_string(struct h5out *o, const char *name, const char *value)
{
    hid_t t = string_type(0);

    return attr_scalar(o, name, t, t, &value, true);
}

int h5out_attr_fixed_string(struct h5out *o, const char *name, const char *value)
{
    hid_t t = string_type(strlen(value) + 1);

    return attr_scalar(o, name, t, t, value, true);
}

int h5out_attr_double(struct h5out *o, const char *name, double value)
{
    return attr_scalar(o, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value, false);
}

int h5out_attr_int64(struct h5out *o, const char *name, int64_t value)
{
    return attr_scalar(o, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &value, false);
}

/* a fixed-size dataset (rows, cols) or (rows) when cols == 0 */
int h5out_dataset(struct h5out *o, const char *name, hid_t type, size_t rows, size_t cols,
                      hid_t *out)
{
    hsize_t dims[2] = { rows, cols };
    hid_t space = H5Screate_simple(cols ? 2 : 1, dims, NULL);

    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);

    if (lcpl >= 0)
        H5Pset_create_intermediate_group(lcpl, 1);
    *out = space < 0 || lcpl < 0 ? -1 : H5Dcreate2(o->file, name, type, space, lcpl, H5P_DEFAULT,
                                                   H5P_DEFAULT);
    if (lcpl >= 0)
        H5Pclose(lcpl);
    if (space >= 0)
        H5Sclose(space);
    return *out >= 0 ? RL_OK : h5out_fail(o, "cannot create a dataset");
}

/* rows row0 .. row0 + n of a dataset made by h5_dataset */
int h5out_write_rows(struct h5out *o, hid_t ds, hid_t memtype, size_t row0, size_t n,
                         size_t cols, const void *data)
{
    hsize_t start[2] = { row0, 0 }, count[2] = { n, cols };
    int rank = cols ? 2 : 1;
    hid_t fs = H5Dget_space(ds), ms = H5Screate_simple(rank, count, NULL);
    int ok = fs >= 0 && ms >= 0 &&
             H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL) >= 0 &&
             H5Dwrite(ds, memtype, ms, fs, H5P_DEFAULT, data) >= 0;

    if (ms >= 0)
        H5Sclose(ms);
    if (fs >= 0)
        H5Sclose(fs);
    return ok ? RL_OK : h5out_fail(o, "cannot write");
}

/* close and rename into place */
int h5out_commit(struct h5out *o)
{
    int rc = RL_OK;

    if (H5Fclose(o->file) < 0)
        rc = h5out_fail(o, "cannot close");
    o->file = -1;
    if (!rc && rename(o->tmp, o->path) != 0)
        rc = rl_error_set(RL_ERR_IO, "%s: cannot rename %s into place: %s", o->path, o->tmp,
                          strerror(errno));
    if (rc)
        unlink(o->tmp);
    tmp_guard_clear();
    free(o->tmp);
    o->tmp = NULL;
    return rc;
}

/* close and remove the temporary file (after a failure) */
void h5out_abort(struct h5out *o)
{
    if (!o->tmp)
        return;
    if (o->file >= 0)
        H5Fclose(o->file);
    H5Eclear2(H5E_DEFAULT);
    o->file = -1;
    unlink(o->tmp);
    tmp_guard_clear();
    free(o->tmp);
    o->tmp = NULL;
}

int h5out_write(struct h5out *o, const char *name, hid_t type, hid_t memtype, size_t rows, size_t cols,
                const void *data)
{
    hid_t ds = -1;
    int rc = h5out_dataset(o, name, type, rows, cols, &ds);

    if (!rc && rows > 0)
        rc = h5out_write_rows(o, ds, memtype, 0, rows, cols, data);
    if (ds >= 0)
        H5Dclose(ds);
    return rc;
}
