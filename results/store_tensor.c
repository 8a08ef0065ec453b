/*
 * store_tensor.c: phase 3 of a results file: tensors, scalars and attributes
 * written and read by path after training (store_write_tensor and friends).
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

/* ----------------------------------------------- tensors and attributes */

static int need_rw(const struct store *s, const char *fn)
{
    if (s->mode == MODE_RW)
        return RL_OK;
    return rl_error_set(RL_ERR_ARG, "%s: %s: %s", s->path, fn,
                        s->mode == MODE_SWMR ? "cannot create objects while writing in SWMR mode (call store_finish "
                                               "first)"
                                             : "the store is open read-only");
}

/* Remove an existing dataset at path so it can be rewritten; a group there
 * is an error. Creates no parents (the create call does, via lcpl). */
static int clear_for_write(struct store *s, const char *path)
{
    H5I_type_t k = store_i_obj_kind(s->file, path);

    if (k == H5I_BADID)
        return RL_OK;
    if (k != H5I_DATASET)
        return rl_error_set(RL_ERR_ARG, "%s: %s: exists and is not a dataset", s->path, path);
    if (store_i_fault() || H5Ldelete(s->file, path, H5P_DEFAULT) < 0)
        return store_i_h5_error(RL_ERR_WRITE, "%s: %s: cannot replace", s->path, path);
    return RL_OK;
}

static int create_with_parents(struct store *s, const char *path, hid_t ftype, hid_t space, hid_t dcpl, hid_t *out)
{
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    int rc = RL_OK;

    *out = -1;
    if (lcpl < 0 || H5Pset_create_intermediate_group(lcpl, 1) < 0 || store_i_fault() ||
        (*out = H5Dcreate2(s->file, path, ftype, space, lcpl, dcpl, H5P_DEFAULT)) < 0)
        rc = store_i_h5_error(RL_ERR_WRITE, "%s: %s: cannot create the dataset", s->path, path);
    if (lcpl >= 0)
        H5Pclose(lcpl);
    return rc;
}

static int check_path_arg(const struct store *s, const char *path)
{
    size_t n = path ? strlen(path) : 0;

    if (n == 0 || n >= 1024 || path[n - 1] == '/' || strstr(path, "//"))
        return rl_error_set(RL_ERR_ARG, "%s: bad object path '%s'", s->path, path ? path : "(null)");
    return RL_OK;
}

int store_write_tensor(struct store *s, const char *path, const float *data, size_t ndim, const size_t *dims)
{
    hsize_t hd[STORE_MAX_DIMS], chunk[STORE_MAX_DIMS];
    size_t total = 1;
    hid_t sp = -1, dcpl = -1, d = -1;
    int rc;

    store_i_h5_quiet();
    if ((rc = need_rw(s, "store_write_tensor")) || (rc = check_path_arg(s, path)))
        return rc;
    if (ndim < 1 || ndim > STORE_MAX_DIMS)
        return rl_error_set(RL_ERR_ARG, "%s: %s: rank %zu, expected 1..%d", s->path, path, ndim, STORE_MAX_DIMS);
    for (size_t i = 0; i < ndim; i++) {
        if (!size_mul_ok(total, dims[i], &total))
            return rl_error_set(RL_ERR_ARG, "%s: %s: size overflows", s->path, path);
        hd[i] = chunk[i] = dims[i];
    }
    if (total && !data)
        return rl_error_set(RL_ERR_ARG, "%s: %s: no data", s->path, path);
    if ((rc = clear_for_write(s, path)))
        return rc;
    if ((sp = H5Screate_simple((int)ndim, hd, NULL)) < 0 || (dcpl = H5Pcreate(H5P_DATASET_CREATE)) < 0) {
        rc = store_i_h5_error(RL_ERR, "%s: %s: dataspace", s->path, path);
        goto done;
    }
    if (total * sizeof(float) >= 16384) {
        /* chunks of at most 1 MiB: halve the leading dimensions */
        size_t bytes = total * sizeof(float);
        for (size_t i = 0; i < ndim && bytes > (1u << 20); i++)
            while (chunk[i] > 1 && bytes > (1u << 20)) {
                bytes = bytes / chunk[i] * ((chunk[i] + 1) / 2);
                chunk[i] = (chunk[i] + 1) / 2;
            }
        if (H5Pset_chunk(dcpl, (int)ndim, chunk) < 0 || H5Pset_shuffle(dcpl) < 0 ||
            (H5Zfilter_avail(H5Z_FILTER_DEFLATE) > 0 && H5Pset_deflate(dcpl, 4) < 0)) {
            rc = store_i_h5_error(RL_ERR, "%s: %s: chunking", s->path, path);
            goto done;
        }
    }
    if ((rc = create_with_parents(s, path, H5T_IEEE_F32LE, sp, dcpl, &d)))
        goto done;
    if (total && (store_i_fault() || H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0))
        rc = store_i_h5_error(RL_ERR_WRITE, "%s: %s: cannot write", s->path, path);
done:
    if (d >= 0) H5Dclose(d);
    if (dcpl >= 0) H5Pclose(dcpl);
    if (sp >= 0) H5Sclose(sp);
    return rc;
}

int store_read_tensor(struct store *s, const char *path, float **data, size_t *ndim, size_t dims[STORE_MAX_DIMS])
{
    hid_t d = -1, sp = -1;
    hsize_t hd[STORE_MAX_DIMS];
    int rc, nd;

    store_i_h5_quiet();
    *data = NULL;
    *ndim = 0;
    if ((rc = check_path_arg(s, path)))
        return rc;
    if (store_i_obj_kind(s->file, path) != H5I_DATASET)
        return rl_error_set(RL_ERR_FORMAT, "%s: %s: missing (no dataset of that name)", s->path, path);
    if ((d = H5Dopen2(s->file, path, H5P_DEFAULT)) < 0)
        return store_i_h5_error(RL_ERR_FORMAT, "%s: %s: cannot open", s->path, path);
    if ((sp = H5Dget_space(d)) < 0) {
        rc = store_i_h5_error(RL_ERR_FORMAT, "%s: %s: unreadable dataspace", s->path, path);
        goto done;
    }
    nd = H5Sget_simple_extent_type(sp) == H5S_SIMPLE ? H5Sget_simple_extent_ndims(sp) : 0;
    H5Sclose(sp);
    sp = -1;
    H5Dclose(d);
    d = -1;
    if (nd < 1 || nd > STORE_MAX_DIMS)
        return rl_error_set(RL_ERR_FORMAT, "%s: %s: rank %d, expected 1..%d", s->path, path, nd, STORE_MAX_DIMS);
    /* now with the full checks (type, element count limit) */
    if ((rc = store_i_ds_open(s, path, H5T_FLOAT, 4, nd, NULL, hd, &d)))
        return rc;
    size_t total = 1;
    for (int i = 0; i < nd; i++)
        total *= (size_t)hd[i];                  /* <= READ_MAX_ELEMS, checked by ds_open */
    float *p = total ? malloc(total * sizeof(float)) : NULL;
    if (total && !p) {
        rc = rl_error_set(RL_ERR_NOMEM, "%s: %s: no memory for %zu floats", s->path, path, total);
        goto done;
    }
    if (total && H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, p) < 0) {
        free(p);
        rc = store_i_h5_error(RL_ERR_FORMAT, "%s: %s: cannot read", s->path, path);
        goto done;
    }
    *data = p;
    *ndim = (size_t)nd;
    for (int i = 0; i < nd; i++)
        dims[i] = (size_t)hd[i];
done:
    if (sp >= 0) H5Sclose(sp);
    if (d >= 0) H5Dclose(d);
    return rc;
}

static int write_scalar(struct store *s, const char *path, hid_t ftype, hid_t mtype, const void *v)
{
    hid_t sp = -1, d = -1;
    int rc;

    store_i_h5_quiet();
    if ((rc = need_rw(s, "store_write_scalar")) || (rc = check_path_arg(s, path)) ||
        (rc = clear_for_write(s, path)))
        return rc;
    if ((sp = H5Screate(H5S_SCALAR)) < 0)
        return store_i_h5_error(RL_ERR, "%s: %s: dataspace", s->path, path);
    if ((rc = create_with_parents(s, path, ftype, sp, H5P_DEFAULT, &d)) == RL_OK &&
        (store_i_fault() || H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) < 0))
        rc = store_i_h5_error(RL_ERR_WRITE, "%s: %s: cannot write", s->path, path);
    if (d >= 0) H5Dclose(d);
    H5Sclose(sp);
    return rc;
}

int store_write_scalar(struct store *s, const char *path, double value)
{
    return write_scalar(s, path, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value);
}

int store_write_scalar_i64(struct store *s, const char *path, int64_t value)
{
    return write_scalar(s, path, H5T_STD_I64LE, H5T_NATIVE_INT64, &value);
}

int store_write_strings(struct store *s, const char *path, const char *const *v, size_t n)
{
    hsize_t dims[1] = { n };
    hid_t sp = -1, t = -1, d = -1;
    int rc;

    store_i_h5_quiet();
    if ((rc = need_rw(s, "store_write_strings")) || (rc = check_path_arg(s, path)) ||
        (rc = clear_for_write(s, path)))
        return rc;
    if ((sp = H5Screate_simple(1, dims, NULL)) < 0 || (t = H5Tcopy(H5T_C_S1)) < 0 ||
        H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0) {
        rc = store_i_h5_error(RL_ERR, "%s: %s: string type", s->path, path);
    } else if ((rc = create_with_parents(s, path, t, sp, H5P_DEFAULT, &d)) == RL_OK && n &&
               (store_i_fault() || H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) < 0)) {
        rc = store_i_h5_error(RL_ERR_WRITE, "%s: %s: cannot write", s->path, path);
    }
    if (d >= 0) H5Dclose(d);
    if (t >= 0) H5Tclose(t);
    if (sp >= 0) H5Sclose(sp);
    return rc;
}

int store_read_scalar(struct store *s, const char *path, double *value)
{
    store_i_h5_quiet();
    return store_i_read_f64_at(s, path, value);
}

int store_read_scalar_i64(struct store *s, const char *path, int64_t *value)
{
    store_i_h5_quiet();
    return store_i_read_i64_at(s, path, value);
}

int store_attr_set_string(struct store *s, const char *obj, const char *name, const char *value)
{
    int rc;

    store_i_h5_quiet();
    if ((rc = need_rw(s, "store_attr_set_string")))
        return rc;
    if (store_i_obj_kind(s->file, obj) == H5I_BADID)
        return rl_error_set(RL_ERR_ARG, "%s: %s: no such object", s->path, obj);
    return store_i_attr_write_str(s, obj, name, value);
}

int store_attr_set_int64(struct store *s, const char *obj, const char *name, int64_t value)
{
    int rc;

    store_i_h5_quiet();
    if ((rc = need_rw(s, "store_attr_set_int64")))
        return rc;
    if (store_i_obj_kind(s->file, obj) == H5I_BADID)
        return rl_error_set(RL_ERR_ARG, "%s: %s: no such object", s->path, obj);
    return store_i_attr_write_i64(s, obj, name, value);
}

int store_attr_set_double(struct store *s, const char *obj, const char *name, double value)
{
    int rc;

    store_i_h5_quiet();
    if ((rc = need_rw(s, "store_attr_set_double")))
        return rc;
    if (store_i_obj_kind(s->file, obj) == H5I_BADID)
        return rl_error_set(RL_ERR_ARG, "%s: %s: no such object", s->path, obj);
    return store_i_attr_write_f64(s, obj, name, value);
}

int store_attr_get_string(struct store *s, const char *obj, const char *name, char **value)
{
    hid_t a, t;
    int rc;
    char what[256];

    store_i_h5_quiet();
    *value = NULL;
    if ((rc = store_i_attr_open(s, obj, name, H5T_STRING, &a, &t)))
        return rc;
    snprintf(what, sizeof what, "%s: attribute %s", obj, name);
    rc = store_i_read_string(s, a, t, true, what, value);
    H5Tclose(t);
    H5Aclose(a);
    return rc;
}

static int attr_get_num(struct store *s, const char *obj, const char *name, H5T_class_t cls, hid_t mtype,
                        void *value)
{
    hid_t a;
    int rc;

    store_i_h5_quiet();
    if ((rc = store_i_attr_open(s, obj, name, cls, &a, NULL)))
        return rc;
    if (H5Aread(a, mtype, value) < 0)
        rc = store_i_h5_error(RL_ERR_FORMAT, "%s: %s: cannot read attribute %s", s->path, obj, name);
    H5Aclose(a);
    return rc;
}

int store_attr_get_int64(struct store *s, const char *obj, const char *name, int64_t *value)
{
    return attr_get_num(s, obj, name, H5T_INTEGER, H5T_NATIVE_INT64, value);
}

int store_attr_get_uint64(struct store *s, const char *obj, const char *name, uint64_t *value)
{
    return attr_get_num(s, obj, name, H5T_INTEGER, H5T_NATIVE_UINT64, value);
}

int store_attr_get_double(struct store *s, const char *obj, const char *name, double *value)
{
    return attr_get_num(s, obj, name, H5T_FLOAT, H5T_NATIVE_DOUBLE, value);
}
