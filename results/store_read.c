/*
 * store_read.c: opening a results file (store_open), the
 * validation of its layout and the readers of curves, checkpoints, the final
 * record, the config text, the train index and the listing of groups.
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

/* ------------------------------------------------------------- opening */

/* a scalar dataset of class cls at path, read as mtype into v */
static int read_scalar_at(struct store *s, const char *path, H5T_class_t cls, hid_t mtype,
                          void *v)
{
    hid_t d;
    int rc = store_i_ds_open(s, path, cls, 0, 0, NULL, NULL, &d);

    if (rc)
        return rc;
    if (H5Dread(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) < 0)
        rc = store_i_h5_error(RL_ERR_FORMAT, "%s: %s: cannot read", s->path, path);
    H5Dclose(d);
    return rc;
}

int store_i_read_i64_at(struct store *s, const char *path, int64_t *v)
{
    return read_scalar_at(s, path, H5T_INTEGER, H5T_NATIVE_INT64, v);
}

int store_i_read_f64_at(struct store *s, const char *path, double *v)
{
    return read_scalar_at(s, path, H5T_FLOAT, H5T_NATIVE_DOUBLE, v);
}

/* check a dataset's shape and close it again */
static int check_ds(struct store *s, const char *path, H5T_class_t cls, size_t elsize, int rank,
                    const hsize_t *want, hsize_t *dims)
{
    hid_t d;
    int rc = store_i_ds_open(s, path, cls, elsize, rank, want, dims, &d);

    if (rc == RL_OK)
        H5Dclose(d);
    return rc;
}

/* schema_version, then every phase-1 object's type and shape */
int store_i_validate(struct store *s)
{
    int64_t ver, ntr;
    int rc;
    hid_t a;
    char p[64];

    if (H5Aexists(s->file, "schema_version") <= 0) {
        H5Eclear2(H5E_DEFAULT);
        return rl_error_set(RL_ERR_FORMAT, "%s: /: no schema_version attribute (not a randlora results file)",
                            s->path);
    }
    if ((rc = store_i_attr_open(s, "/", "schema_version", H5T_INTEGER, &a, NULL)))
        return rc;
    herr_t e = H5Aread(a, H5T_NATIVE_INT64, &ver);
    if (e < 0)
        store_i_h5_keep();
    H5Aclose(a);
    if (e < 0)
        return store_i_h5_error(RL_ERR_FORMAT, "%s: /: cannot read schema_version", s->path);
    if (ver != STORE_SCHEMA_VERSION)
        return rl_error_set(RL_ERR_FORMAT, "%s: /: schema_version %lld, this build reads version %d", s->path,
                            (long long)ver, STORE_SCHEMA_VERSION);

    if ((rc = store_attr_get_int64(s, "/method", "n_trainable", &ntr)))
        return rc;
    if (ntr < 0 || (uint64_t)ntr > READ_MAX_ELEMS)
        return rl_error_set(RL_ERR_FORMAT, "%s: /method: n_trainable %lld out of range", s->path, (long long)ntr);
    s->n_trainable = (size_t)ntr;

    hid_t d;
    if ((rc = store_i_ds_open(s, "/config", H5T_STRING, 0, 0, NULL, NULL, &d)))
        return rc;
    H5Dclose(d);
    if ((rc = check_ds(s, "/data/train_index", H5T_INTEGER, 0, 1, NULL, NULL)))
        return rc;
    for (int i = 0; i < N_TRAIN; i++) {
        snprintf(p, sizeof p, "/train/%s", store_i_train_names[i]);
        if ((rc = check_ds(s, p, i == 0 ? H5T_INTEGER : H5T_FLOAT, 0, 1, NULL, NULL)))
            return rc;
    }
    for (int i = 0; i < N_EVAL; i++) {
        snprintf(p, sizeof p, "/eval/%s", store_i_eval_names[i]);
        if ((rc = check_ds(s, p, i == 0 ? H5T_INTEGER : H5T_FLOAT, 0, 1, NULL, NULL)))
            return rc;
    }
    hsize_t two[1] = { 2 }, rngd[2] = { 2, RNG_WORDS }, blk[2] = { 2, s->n_trainable };
    if ((rc = check_ds(s, "/checkpoint/current", H5T_INTEGER, 0, 0, NULL, NULL)) ||
        (rc = check_ds(s, "/checkpoint/step", H5T_INTEGER, 0, 1, two, NULL)) ||
        (rc = check_ds(s, "/checkpoint/train_rows", H5T_INTEGER, 0, 1, two, NULL)) ||
        (rc = check_ds(s, "/checkpoint/eval_rows", H5T_INTEGER, 0, 1, two, NULL)) ||
        (rc = check_ds(s, "/checkpoint/rng", H5T_INTEGER, 8, 2, rngd, NULL)) ||
        (rc = check_ds(s, "/checkpoint/params", H5T_FLOAT, 4, 2, blk, NULL)) ||
        (rc = check_ds(s, "/checkpoint/adam_m", H5T_FLOAT, 4, 2, blk, NULL)) ||
        (rc = check_ds(s, "/checkpoint/adam_v", H5T_FLOAT, 4, 2, blk, NULL)) ||
        (rc = check_ds(s, "/final/accuracy", H5T_FLOAT, 0, 0, NULL, NULL)) ||
        (rc = check_ds(s, "/final/loss", H5T_FLOAT, 0, 0, NULL, NULL)) ||
        (rc = check_ds(s, "/final/images_per_s", H5T_FLOAT, 0, 0, NULL, NULL)) ||
        (rc = check_ds(s, "/final/peak_rss_bytes", H5T_INTEGER, 0, 0, NULL, NULL)) ||
        (rc = check_ds(s, "/final/completed", H5T_INTEGER, 0, 0, NULL, NULL)))
        return rc;
    return RL_OK;
}

/* Is `path` an HDF5 file? RL_OK, or RL_ERR_IO / RL_ERR_FORMAT with a message. */
int store_i_check_is_hdf5(const char *path)
{
    FILE *fp = fopen(path, "rb");

    if (!fp)
        return rl_error_set(RL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    fclose(fp);
#if H5_VERSION_GE(1, 12, 0)
    htri_t ok = H5Fis_accessible(path, H5P_DEFAULT);
#else
    htri_t ok = H5Fis_hdf5(path);
#endif
    H5Eclear2(H5E_DEFAULT);
    if (ok <= 0)
        return rl_error_set(RL_ERR_FORMAT, "%s: not an HDF5 file", path);
    return RL_OK;
}

int store_open(struct store **out, const char *path)
{
    struct store *s;
    char why[192];
    int rc;

    store_i_h5_quiet();
    *out = NULL;
    if (!path || !*path)
        return rl_error_set(RL_ERR_ARG, "store_open: no path");
    if ((rc = store_i_check_is_hdf5(path)))
        return rc;
    s = store_new(path);
    s->file = store_i_file_open(path, H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, false, false, why);
    s->swmr_read = s->file >= 0;
    if (s->file < 0)
        s->file = store_i_file_open(path, H5F_ACC_RDONLY, false, false, why);
    s->mode = MODE_READ;
    if (s->file < 0) {
        rc = rl_error_set(RL_ERR_FORMAT, "%s: cannot open%s", path, why);
        store_close(s);
        return rc;
    }
    if ((rc = store_i_validate(s))) {
        store_close(s);
        return rc;
    }
    *out = s;
    return RL_OK;
}

/* extent of a 1-D dataset at path (checked as a curve) */
static int curve_len(struct store *s, const char *path, H5T_class_t cls, size_t *n)
{
    hsize_t d = 0;
    int rc = check_ds(s, path, cls, 0, 1, NULL, &d);

    if (rc == RL_OK)
        *n = (size_t)d;
    return rc;
}

int store_i_group_rows(struct store *s, const char *group, const char *const *names, int count, size_t *rows)
{
    char p[64];
    size_t m = SIZE_MAX, n;
    int rc;

    for (int i = 0; i < count; i++) {
        snprintf(p, sizeof p, "/%s/%s", group, names[i]);
        if ((rc = curve_len(s, p, i == 0 ? H5T_INTEGER : H5T_FLOAT, &n)))
            return rc;
        if (n < m)
            m = n;
    }
    *rows = m;
    return RL_OK;
}

int store_rows(struct store *s, size_t *train_rows, size_t *eval_rows)
{
    size_t t, e;
    int rc;

    store_i_h5_quiet();
    if (s->mode == MODE_SWMR) {
        t = s->train_rows;
        e = s->eval_rows;
    } else if ((rc = store_i_group_rows(s, "train", store_i_train_names, N_TRAIN, &t)) ||
               (rc = store_i_group_rows(s, "eval", store_i_eval_names, N_EVAL, &e))) {
        return rc;
    }
    if (train_rows) *train_rows = t;
    if (eval_rows) *eval_rows = e;
    return RL_OK;
}

/* read the first n elements of a 1-D dataset */
static int read_prefix(struct store *s, const char *path, hid_t d, hid_t mtype, size_t n, void *buf)
{
    hsize_t off = 0, cnt = n;
    hid_t fs = H5Dget_space(d), ms = -1;
    int ok = 0;

    if (n == 0)
        ok = 1;
    else if (fs >= 0 && H5Sselect_hyperslab(fs, H5S_SELECT_SET, &off, NULL, &cnt, NULL) >= 0 &&
             (ms = H5Screate_simple(1, &cnt, NULL)) >= 0 && H5Dread(d, mtype, ms, fs, H5P_DEFAULT, buf) >= 0)
        ok = 1;
    else
        store_i_h5_keep();
    if (ms >= 0) H5Sclose(ms);
    if (fs >= 0) H5Sclose(fs);
    return ok ? RL_OK : store_i_h5_error(RL_ERR_FORMAT, "%s: %s: cannot read %zu rows", s->path, path, n);
}

static void *alloc_or_null(size_t n, size_t size)
{
    return n ? malloc(n * size) : NULL;      /* n * size <= READ_MAX_ELEMS * 8: no overflow */
}

int store_read_curve(struct store *s, const char *group, const char *name, int64_t **steps, double **values,
                     size_t *n)
{
    char ps[256], pv[256];
    hid_t ds = -1, dv = -1;
    hsize_t ns, nv;
    int64_t *st = NULL;
    double *va = NULL;
    int rc;

    store_i_h5_quiet();
    if (steps) *steps = NULL;
    *values = NULL;
    *n = 0;
    if (snprintf(ps, sizeof ps, "/%s/step", group) >= (int)sizeof ps ||
        snprintf(pv, sizeof pv, "/%s/%s", group, name) >= (int)sizeof pv)
        return rl_error_set(RL_ERR_ARG, "%s: curve name too long", s->path);
    if ((rc = store_i_ds_open(s, ps, H5T_INTEGER, 0, 1, NULL, &ns, &ds)) ||
        (rc = store_i_ds_open(s, pv, H5T_FLOAT, 0, 1, NULL, &nv, &dv)))
        goto done;
    size_t m = (size_t)(ns < nv ? ns : nv);
    st = alloc_or_null(m, sizeof(*st));
    va = alloc_or_null(m, sizeof(*va));
    if (m && (!st || !va)) {
        rc = rl_error_set(RL_ERR_NOMEM, "%s: %s: no memory for %zu rows", s->path, pv, m);
        goto done;
    }
    if ((rc = read_prefix(s, ps, ds, H5T_NATIVE_INT64, m, st)) ||
        (rc = read_prefix(s, pv, dv, H5T_NATIVE_DOUBLE, m, va)))
        goto done;
    while (m > 0 && st[m - 1] == -1)        /* extended but not yet written (live file) */
        m--;
    *n = m;
    if (m == 0) {
        free(st);
        free(va);
        st = NULL;
        va = NULL;
    }
    if (steps) {
        *steps = st;
        st = NULL;
    }
    *values = va;
    va = NULL;
done:
    free(st);
    free(va);
    if (ds >= 0) H5Dclose(ds);
    if (dv >= 0) H5Dclose(dv);
    return rc;
}

static void rng_unpack(struct rng *r, const uint64_t w[RNG_WORDS])
{
    for (int i = 0; i < 4; i++)
        r->s[i] = w[i];
    memcpy(&r->spare, &w[4], sizeof(double));
    r->has_spare = (int)w[5];
}

/* read row `slot` of a [2, width] dataset (or element `slot` of a [2] one) */
static int read_slot(struct store *s, const char *path, hid_t mtype, int rank, hsize_t slot, hsize_t width,
                     void *buf)
{
    hid_t d;
    int rc = store_i_ds_open(s, path, mtype == H5T_NATIVE_FLOAT ? H5T_FLOAT : H5T_INTEGER,
                     mtype == H5T_NATIVE_FLOAT ? 4 : 0, rank, NULL, NULL, &d);
    hsize_t off[2] = { slot, 0 }, cnt[2] = { 1, width };
    hid_t fs = -1, ms = -1;

    if (rc)
        return rc;
    if ((fs = H5Dget_space(d)) < 0 || H5Sselect_hyperslab(fs, H5S_SELECT_SET, off, NULL, cnt, NULL) < 0 ||
        (ms = H5Screate_simple(rank, cnt, NULL)) < 0 || H5Dread(d, mtype, ms, fs, H5P_DEFAULT, buf) < 0)
        rc = store_i_h5_error(RL_ERR_FORMAT, "%s: %s: cannot read slot %llu", s->path, path, (unsigned long long)slot);
    if (ms >= 0) H5Sclose(ms);
    if (fs >= 0) H5Sclose(fs);
    H5Dclose(d);
    return rc;
}

int store_read_checkpoint(struct store *s, struct store_checkpoint_info *info, float *params, float *m,
                          float *v, struct rng *rng)
{
    int64_t cur, step, tr, er;
    uint64_t w[RNG_WORDS];
    hsize_t n = s->n_trainable;
    int rc;

    store_i_h5_quiet();
    if ((rc = store_i_read_i64_at(s, "/checkpoint/current", &cur)))
        return rc;
    if (cur == -1)
        return rl_error_set(RL_ERR_NA, "%s: no checkpoint was written", s->path);
    if (cur != 0 && cur != 1)
        return rl_error_set(RL_ERR_FORMAT, "%s: /checkpoint/current: %lld is not a slot (0, 1 or -1)", s->path,
                            (long long)cur);
    hsize_t slot = (hsize_t)cur;
    if ((rc = read_slot(s, "/checkpoint/step", H5T_NATIVE_INT64, 1, slot, 1, &step)) ||
        (rc = read_slot(s, "/checkpoint/train_rows", H5T_NATIVE_INT64, 1, slot, 1, &tr)) ||
        (rc = read_slot(s, "/checkpoint/eval_rows", H5T_NATIVE_INT64, 1, slot, 1, &er)) ||
        (rc = read_slot(s, "/checkpoint/rng", H5T_NATIVE_UINT64, 2, slot, RNG_WORDS, w)))
        return rc;
    if (tr < 0 || er < 0)
        return rl_error_set(RL_ERR_FORMAT, "%s: /checkpoint: negative row counts (%lld, %lld)", s->path,
                            (long long)tr, (long long)er);
    if (w[5] > 1)
        return rl_error_set(RL_ERR_FORMAT, "%s: /checkpoint/rng: has_spare is %llu, not 0 or 1", s->path,
                            (unsigned long long)w[5]);
    if (n && ((params && (rc = read_slot(s, "/checkpoint/params", H5T_NATIVE_FLOAT, 2, slot, n, params))) ||
              (m && (rc = read_slot(s, "/checkpoint/adam_m", H5T_NATIVE_FLOAT, 2, slot, n, m))) ||
              (v && (rc = read_slot(s, "/checkpoint/adam_v", H5T_NATIVE_FLOAT, 2, slot, n, v)))))
        return rc;
    if (info) {
        info->step = step;
        info->train_rows = (size_t)tr;
        info->eval_rows = (size_t)er;
    }
    if (rng)
        rng_unpack(rng, w);
    return RL_OK;
}

int store_read_final(struct store *s, struct store_final *f, int *completed)
{
    int64_t c;
    int rc;

    store_i_h5_quiet();
    if ((rc = store_i_read_f64_at(s, "/final/accuracy", &f->accuracy)) ||
        (rc = store_i_read_f64_at(s, "/final/loss", &f->loss)) ||
        (rc = store_i_read_f64_at(s, "/final/images_per_s", &f->images_per_s)) ||
        (rc = store_i_read_i64_at(s, "/final/peak_rss_bytes", &f->peak_rss_bytes)) ||
        (rc = store_i_read_i64_at(s, "/final/completed", &c)))
        return rc;
    /* absent in files older than the validation split */
    f->val_accuracy = f->val_loss = NAN;
    if (store_i_obj_exists(s->file, "/final/val_accuracy") &&
        ((rc = store_i_read_f64_at(s, "/final/val_accuracy", &f->val_accuracy)) ||
         (rc = store_i_read_f64_at(s, "/final/val_loss", &f->val_loss))))
        return rc;
    f->has_val = !isnan(f->val_accuracy);
    if (completed)
        *completed = c == 1;
    return RL_OK;
}

int store_read_config(struct store *s, char **text)
{
    hid_t d, t;
    int rc;

    store_i_h5_quiet();
    *text = NULL;
    if ((rc = store_i_ds_open(s, "/config", H5T_STRING, 0, 0, NULL, NULL, &d)))
        return rc;
    if ((t = H5Dget_type(d)) < 0)
        rc = store_i_h5_error(RL_ERR_FORMAT, "%s: /config: unreadable type", s->path);
    else
        rc = store_i_read_string(s, d, t, false, "/config", text);
    if (t >= 0)
        H5Tclose(t);
    H5Dclose(d);
    return rc;
}

/* a whole int64[n] index dataset at path */
static int read_index(struct store *s, const char *path, int64_t **index, size_t *n)
{
    hid_t d;
    hsize_t len = 0;
    int rc;

    store_i_h5_quiet();
    *index = NULL;
    *n = 0;
    if ((rc = store_i_ds_open(s, path, H5T_INTEGER, 0, 1, NULL, &len, &d)))
        return rc;
    int64_t *p = alloc_or_null((size_t)len, sizeof(*p));
    if (len && !p)
        rc = rl_error_set(RL_ERR_NOMEM, "%s: %s: no memory for %llu entries", s->path, path,
                          (unsigned long long)len);
    else if ((rc = read_prefix(s, path, d, H5T_NATIVE_INT64, (size_t)len, p)) == RL_OK) {
        *index = p;
        *n = (size_t)len;
        p = NULL;
    }
    free(p);
    H5Dclose(d);
    return rc;
}

int store_read_train_index(struct store *s, int64_t **index, size_t *n)
{
    return read_index(s, "/data/train_index", index, n);
}

int store_read_val_index(struct store *s, int64_t **index, size_t *n)
{
    store_i_h5_quiet();
    *index = NULL;
    *n = 0;
    if (!store_i_obj_exists(s->file, "/data/val_index"))
        return RL_OK;                    /* a file older than the validation split */
    return read_index(s, "/data/val_index", index, n);
}

int store_read_eval_split(struct store *s, const char **split)
{
    char *v = NULL;
    int rc;

    store_i_h5_quiet();
    *split = "test";
    if (H5Aexists_by_name(s->file, "/eval", "split", H5P_DEFAULT) <= 0) {
        H5Eclear2(H5E_DEFAULT);
        return RL_OK;                    /* a file older than the attribute */
    }
    if ((rc = store_attr_get_string(s, "/eval", "split", &v)))
        return rc;
    if (!strcmp(v, "val"))
        *split = "val";
    else if (strcmp(v, "test"))
        rc = rl_error_set(RL_ERR_FORMAT, "%s: /eval: attribute split is \"%s\", expected \"val\" or \"test\"",
                          s->path, v);
    free(v);
    return rc;
}

bool store_has(struct store *s, const char *path)
{
    store_i_h5_quiet();
    return store_i_obj_exists(s->file, path) == 1;
}

struct list_ctx {
    char **names;
    size_t n, cap;
};

static herr_t list_cb(hid_t g, const char *name, const H5L_info_t *info, void *data)
{
    struct list_ctx *c = data;

    (void)g;
    (void)info;
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 16;
        c->names = xrealloc_array(c->names, c->cap, sizeof(*c->names));
    }
    c->names[c->n++] = xstrdup(name);
    return 0;
}

void store_free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

int store_list(struct store *s, const char *path, char ***names, size_t *n)
{
    struct list_ctx c = { NULL, 0, 0 };
    hsize_t idx = 0;

    store_i_h5_quiet();
    *names = NULL;
    *n = 0;
    H5I_type_t k = store_i_obj_kind(s->file, path);
    if (k == H5I_BADID)
        return rl_error_set(RL_ERR_NA, "%s: %s: no such group", s->path, path);
    if (k != H5I_GROUP)
        return rl_error_set(RL_ERR_FORMAT, "%s: %s: not a group", s->path, path);
    if (H5Literate_by_name(s->file, path, H5_INDEX_NAME, H5_ITER_INC, &idx, list_cb, &c, H5P_DEFAULT) < 0) {
        store_free_names(c.names, c.n);
        return store_i_h5_error(RL_ERR_FORMAT, "%s: %s: cannot list the group", s->path, path);
    }
    *names = c.names;
    *n = c.n;
    return RL_OK;
}
