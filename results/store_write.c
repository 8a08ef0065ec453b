/*
 * store_write.c: the writer side of the results file: the writing helpers,
 * store_create (phase 1, the layout), the SWMR appends of phase 2 (curves,
 * checkpoints) and the final record. See store.h for the life cycle and
 * store_commit.c for store_finish and the commit. Every write is preceded by
 * store_i_fault() (the tests' hook) and fails with RL_ERR_WRITE.
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

/* ------------------------------------------------------- writing helpers */

static hid_t str_type(void)
{
    hid_t t = H5Tcopy(H5T_C_S1);

    if (t >= 0 && (H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0)) {
        H5Tclose(t);
        return -1;
    }
    return t;
}

/* create or replace attribute `name` on object `obj` */
static int attr_write(struct store *s, const char *obj, const char *name, hid_t ftype, hid_t mtype,
                      const void *value)
{
    hid_t o = -1, sp = -1, a = -1;
    int rc = RL_OK;

    if ((o = H5Oopen(s->file, obj, H5P_DEFAULT)) < 0)
        return store_i_h5_error(RL_ERR_IO, "%s: %s: cannot open to set attribute %s", s->path, obj, name);
    if (H5Aexists(o, name) > 0 && H5Adelete(o, name) < 0) {
        rc = store_i_h5_error(RL_ERR_WRITE, "%s: %s: cannot replace attribute %s", s->path, obj, name);
        goto done;
    }
    if ((sp = H5Screate(H5S_SCALAR)) < 0 || store_i_fault() ||
        (a = H5Acreate2(o, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT)) < 0 ||
        H5Awrite(a, mtype, value) < 0)
        rc = store_i_h5_error(RL_ERR_WRITE, "%s: %s: cannot write attribute %s", s->path, obj, name);
done:
    if (a >= 0) H5Aclose(a);
    if (sp >= 0) H5Sclose(sp);
    H5Oclose(o);
    return rc;
}

int store_i_attr_write_str(struct store *s, const char *obj, const char *name, const char *value)
{
    hid_t t = str_type();
    const char *v = value ? value : "";
    int rc;

    if (t < 0)
        return store_i_h5_error(RL_ERR, "%s: string type", s->path);
    rc = attr_write(s, obj, name, t, t, &v);
    H5Tclose(t);
    return rc;
}

int store_i_attr_write_i64(struct store *s, const char *obj, const char *name, int64_t v)
{
    return attr_write(s, obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &v);
}

static int attr_write_u64(struct store *s, const char *obj, const char *name, uint64_t v)
{
    return attr_write(s, obj, name, H5T_STD_U64LE, H5T_NATIVE_UINT64, &v);
}

int store_i_attr_write_f64(struct store *s, const char *obj, const char *name, double v)
{
    return attr_write(s, obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &v);
}

static int make_group(struct store *s, const char *path)
{
    hid_t g = store_i_fault() ? -1 : H5Gcreate2(s->file, path, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);

    if (g < 0)
        return store_i_h5_error(RL_ERR_WRITE, "%s: %s: cannot create the group", s->path, path);
    H5Gclose(g);
    return RL_OK;
}

/* 1-D chunked unlimited curve, empty, with a fill value */
static int make_curve(struct store *s, const char *path, hid_t ftype, hid_t mtype, const void *fill)
{
    hsize_t zero = 0, unl = H5S_UNLIMITED, chunk = CURVE_CHUNK;
    hid_t sp = H5Screate_simple(1, &zero, &unl);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    hid_t d = -1;
    int rc = RL_OK;

    if (sp < 0 || dcpl < 0 || H5Pset_chunk(dcpl, 1, &chunk) < 0 ||
        H5Pset_fill_value(dcpl, mtype, fill) < 0 || store_i_fault() ||
        (d = H5Dcreate2(s->file, path, ftype, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT)) < 0)
        rc = store_i_h5_error(RL_ERR_WRITE, "%s: %s: cannot create the dataset", s->path, path);
    if (d >= 0) H5Dclose(d);
    if (dcpl >= 0) H5Pclose(dcpl);
    if (sp >= 0) H5Sclose(sp);
    return rc;
}

/* Fixed-size contiguous dataset (rank 0 = scalar), storage allocated now so
 * that writes in SWMR mode only overwrite raw data. With fill == NULL the
 * storage is never filled (the checkpoint blocks: large, and meaningless
 * until /checkpoint/current says otherwise). */
static int make_fixed(struct store *s, const char *path, hid_t ftype, hid_t mtype, int rank,
                      const hsize_t *dims, const void *fill)
{
    hid_t sp = rank == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(rank, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    hid_t d = -1;
    int rc = RL_OK;

    if (sp < 0 || dcpl < 0 || H5Pset_layout(dcpl, H5D_CONTIGUOUS) < 0 ||
        H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_EARLY) < 0 ||
        (fill ? H5Pset_fill_value(dcpl, mtype, fill) : H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER)) < 0 ||
        store_i_fault() || (d = H5Dcreate2(s->file, path, ftype, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT)) < 0)
        rc = store_i_h5_error(RL_ERR_WRITE, "%s: %s: cannot create the dataset", s->path, path);
    if (d >= 0) H5Dclose(d);
    if (dcpl >= 0) H5Pclose(dcpl);
    if (sp >= 0) H5Sclose(sp);
    return rc;
}

/* write a whole (small, fixed) dataset */
static int write_all(struct store *s, const char *path, hid_t ftype, hid_t mtype, int rank,
                     const hsize_t *dims, const void *data)
{
    hid_t sp = rank == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(rank, dims, NULL);
    hid_t d = -1;
    int rc = RL_OK;

    if (sp < 0 || store_i_fault() ||
        (d = H5Dcreate2(s->file, path, ftype, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)) < 0 ||
        H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
        rc = store_i_h5_error(RL_ERR_WRITE, "%s: %s: cannot write the dataset", s->path, path);
    if (d >= 0) H5Dclose(d);
    if (sp >= 0) H5Sclose(sp);
    return rc;
}

/* Write `count` elements along dimension 0 at row `row` of a dataset of rank
 * 1 or 2 (row width `width` for rank 2). */
static int write_rows(hid_t d, hid_t mtype, int rank, hsize_t row, hsize_t count, hsize_t width,
                      const void *data)
{
    hsize_t off[2] = { row, 0 }, cnt[2] = { count, width };
    hid_t fs = H5Dget_space(d), ms = -1;
    int ok = 0;

    if (!store_i_fault() && fs >= 0 && H5Sselect_hyperslab(fs, H5S_SELECT_SET, off, NULL, cnt, NULL) >= 0 &&
        (ms = H5Screate_simple(rank, cnt, NULL)) >= 0 &&
        H5Dwrite(d, mtype, ms, fs, H5P_DEFAULT, data) >= 0)
        ok = 1;
    else
        store_i_h5_keep();
    if (ms >= 0) H5Sclose(ms);
    if (fs >= 0) H5Sclose(fs);
    return ok ? 0 : -1;
}

static int open_writer_handles(struct store *s)
{
    char p[64];

    for (int i = 0; i < N_TRAIN; i++) {
        snprintf(p, sizeof p, "/train/%s", store_i_train_names[i]);
        if ((s->train[i] = H5Dopen2(s->file, p, H5P_DEFAULT)) < 0)
            return store_i_h5_error(RL_ERR_IO, "%s: %s: cannot open for writing", s->path, p);
    }
    for (int i = 0; i < N_EVAL; i++) {
        snprintf(p, sizeof p, "/eval/%s", store_i_eval_names[i]);
        if ((s->eval[i] = H5Dopen2(s->file, p, H5P_DEFAULT)) < 0)
            return store_i_h5_error(RL_ERR_IO, "%s: %s: cannot open for writing", s->path, p);
    }
    for (int i = 0; i < N_CKPT; i++) {
        snprintf(p, sizeof p, "/checkpoint/%s", store_i_ckpt_names[i]);
        if ((s->ckpt[i] = H5Dopen2(s->file, p, H5P_DEFAULT)) < 0)
            return store_i_h5_error(RL_ERR_IO, "%s: %s: cannot open for writing", s->path, p);
    }
    return RL_OK;
}

static void utc_now(char *buf, size_t n)
{
    time_t t = time(NULL);
    struct tm tm;

    if (gmtime_r(&t, &tm))
        strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
    else
        snprintf(buf, n, "unknown");
}

/* everything of phase 1 */
static int write_layout(struct store *s, const struct store_run_info *in)
{
    const int64_t step_fill = -1, zero_i = 0, none = -1;
    const double nan_fill = NAN;
    char host[256] = "unknown", when[32];
    int rc;
    hid_t t;

    if (gethostname(host, sizeof host - 1) != 0)
        snprintf(host, sizeof host, "unknown");
    host[sizeof host - 1] = '\0';
    utc_now(when, sizeof when);

    /* root */
    if ((rc = store_i_attr_write_i64(s, "/", "schema_version", STORE_SCHEMA_VERSION)) ||
        (rc = store_i_attr_write_str(s, "/", "harness_version", in->harness_version)) ||
        (rc = store_i_attr_write_str(s, "/", "git_commit", in->git_commit)) ||
        (rc = store_i_attr_write_str(s, "/", "created_utc", when)) ||
        (rc = store_i_attr_write_str(s, "/", "host", host)) ||
        (rc = store_i_attr_write_str(s, "/", "threads", in->threads)) ||
        (rc = store_i_attr_write_str(s, "/", "blas", in->blas)) ||
        (rc = store_i_attr_write_str(s, "/", "precision",
                                     in->precision ? in->precision : "fp32")) ||
        (rc = store_i_attr_write_str(s, "/", "bf16_gemm", in->bf16_gemm)))
        return rc;

    /* config */
    if ((t = str_type()) < 0)
        return store_i_h5_error(RL_ERR, "%s: string type", s->path);
    const char *cfg = in->config_text ? in->config_text : "";
    rc = write_all(s, "/config", t, t, 0, NULL, &cfg);
    H5Tclose(t);
    if (rc)
        return rc;

    /* method */
    if ((rc = make_group(s, "/method")) ||
        (rc = store_i_attr_write_str(s, "/method", "method", in->method)) ||
        (rc = store_i_attr_write_i64(s, "/method", "rank", in->rank)) ||
        (rc = store_i_attr_write_f64(s, "/method", "alpha", in->alpha)) ||
        (rc = store_i_attr_write_str(s, "/method", "profile", in->profile)) ||
        (rc = store_i_attr_write_i64(s, "/method", "n_trainable", (int64_t)in->n_trainable)) ||
        (rc = store_i_attr_write_i64(s, "/method", "n_frozen_shared", (int64_t)in->n_frozen_shared)))
        return rc;

    /* data */
    hsize_t nidx = in->n_train_index, nval = in->n_val_index;
    bool has_val = in->val && *in->val;
    if ((rc = make_group(s, "/data")) ||
        (rc = store_i_attr_write_str(s, "/data", "spec", in->data_spec)) ||
        (rc = store_i_attr_write_i64(s, "/data", "shots", in->shots)) ||
        (rc = store_i_attr_write_f64(s, "/data", "fraction", in->fraction)) ||
        (rc = attr_write_u64(s, "/data", "sampling_seed", in->sampling_seed)) ||
        (rc = store_i_attr_write_str(s, "/data", "val", in->val)) ||
        (rc = store_i_attr_write_str(s, "/data", "val_spec", has_val ? in->val_spec : "")) ||
        (rc = write_all(s, "/data/train_index", H5T_STD_I64LE, H5T_NATIVE_INT64, 1, &nidx,
                        in->train_index)) ||
        (rc = write_all(s, "/data/val_index", H5T_STD_I64LE, H5T_NATIVE_INT64, 1, &nval,
                        in->val_index)))
        return rc;

    /* curves */
    char p[64];
    if ((rc = make_group(s, "/train")) || (rc = make_group(s, "/eval")) ||
        (rc = store_i_attr_write_str(s, "/eval", "split", has_val ? "val" : "test")))
        return rc;
    for (int i = 0; i < N_TRAIN; i++) {
        snprintf(p, sizeof p, "/train/%s", store_i_train_names[i]);
        if ((rc = i == 0 ? make_curve(s, p, H5T_STD_I64LE, H5T_NATIVE_INT64, &step_fill)
                         : make_curve(s, p, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &nan_fill)))
            return rc;
    }
    for (int i = 0; i < N_EVAL; i++) {
        snprintf(p, sizeof p, "/eval/%s", store_i_eval_names[i]);
        if ((rc = i == 0 ? make_curve(s, p, H5T_STD_I64LE, H5T_NATIVE_INT64, &step_fill)
                         : make_curve(s, p, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &nan_fill)))
            return rc;
    }

    /* checkpoint: two slots */
    hsize_t two = 2, rng_dims[2] = { 2, RNG_WORDS }, blk[2] = { 2, in->n_trainable };
    const uint64_t zero_u = 0;
    if ((rc = make_group(s, "/checkpoint")) ||
        (rc = make_fixed(s, "/checkpoint/current", H5T_STD_I64LE, H5T_NATIVE_INT64, 0, NULL, &none)) ||
        (rc = make_fixed(s, "/checkpoint/step", H5T_STD_I64LE, H5T_NATIVE_INT64, 1, &two, &none)) ||
        (rc = make_fixed(s, "/checkpoint/train_rows", H5T_STD_I64LE, H5T_NATIVE_INT64, 1, &two, &zero_i)) ||
        (rc = make_fixed(s, "/checkpoint/eval_rows", H5T_STD_I64LE, H5T_NATIVE_INT64, 1, &two, &zero_i)) ||
        (rc = make_fixed(s, "/checkpoint/rng", H5T_STD_U64LE, H5T_NATIVE_UINT64, 2, rng_dims, &zero_u)) ||
        (rc = make_fixed(s, "/checkpoint/params", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, blk, NULL)) ||
        (rc = make_fixed(s, "/checkpoint/adam_m", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, blk, NULL)) ||
        (rc = make_fixed(s, "/checkpoint/adam_v", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, blk, NULL)))
        return rc;

    /* final */
    if ((rc = make_group(s, "/final")) ||
        (rc = make_fixed(s, "/final/accuracy", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 0, NULL, &nan_fill)) ||
        (rc = make_fixed(s, "/final/loss", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 0, NULL, &nan_fill)) ||
        (rc = make_fixed(s, "/final/images_per_s", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 0, NULL, &nan_fill)) ||
        (rc = make_fixed(s, "/final/peak_rss_bytes", H5T_STD_I64LE, H5T_NATIVE_INT64, 0, NULL, &zero_i)) ||
        (rc = make_fixed(s, "/final/completed", H5T_STD_I64LE, H5T_NATIVE_INT64, 0, NULL, &zero_i)) ||
        (rc = make_fixed(s, "/final/val_accuracy", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 0, NULL, &nan_fill)) ||
        (rc = make_fixed(s, "/final/val_loss", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 0, NULL, &nan_fill)))
        return rc;
    return RL_OK;
}

int store_i_start_swmr(struct store *s)
{
    if (store_i_fault() || H5Fstart_swmr_write(s->file) < 0)
        return store_i_h5_error(RL_ERR_WRITE, "%s: cannot start SWMR writing", s->path);
    s->mode = MODE_SWMR;
    return open_writer_handles(s);
}

int store_create(struct store **out, const char *path, const struct store_run_info *info)
{
    struct store *s;
    char why[192];
    int rc;

    store_i_h5_quiet();
    *out = NULL;
    if (!path || !*path || !info)
        return rl_error_set(RL_ERR_ARG, "store_create: no path or no run info");
    if ((int64_t)info->n_trainable < 0 || (int64_t)info->n_train_index < 0 ||
        (info->n_train_index && !info->train_index) || (int64_t)info->n_val_index < 0 ||
        (info->n_val_index && !info->val_index))
        return rl_error_set(RL_ERR_ARG, "%s: bad run info (n_trainable %zu, %zu train indices, %zu val indices)",
                            path, info->n_trainable, info->n_train_index, info->n_val_index);
    s = store_new(path);
    s->n_trainable = info->n_trainable;
    s->flush_every = info->flush_every ? info->flush_every : 1;
    /* written as "<path>.tmp" and renamed to path once in SWMR mode: path
     * never holds a half-made layout */
    s->work_path = store_i_work_name(path);
    s->file = store_i_file_open(s->work_path, 0, true, false, why);
    if (s->file < 0) {
        free(s->work_path);
        s->work_path = NULL;
        store_i_close(s, false);
        return rl_error_set(RL_ERR_IO, "%s: cannot create the results file%s", path, why);
    }
    s->mode = MODE_RW;
    if ((rc = write_layout(s, info)) || (rc = store_i_start_swmr(s))) {
        store_i_close(s, false);
        return rc;
    }
    if (store_i_fault() || rename(s->work_path, path) != 0) {
        rc = rl_error_set(RL_ERR_WRITE, "%s: cannot rename %s to it: %s", path, s->work_path, strerror(errno));
        store_i_close(s, false);
        return rc;
    }
    free(s->work_path);
    s->work_path = NULL;
    *out = s;
    return RL_OK;
}

static int need_swmr(const struct store *s, const char *fn)
{
    if (s->mode != MODE_SWMR)
        return rl_error_set(RL_ERR_ARG, "%s: %s: the store is not writing in SWMR mode (%s)", s->path, fn,
                            s->mode == MODE_READ ? "opened read-only" : "after store_finish");
    return RL_OK;
}

static int flush_set(struct store *s, hid_t *ids, int n, const char *group)
{
    for (int i = 0; i < n; i++)
        if (store_i_fault() || H5Dflush(ids[i]) < 0)
            return store_i_h5_error(RL_ERR_WRITE, "%s: /%s: cannot flush", s->path, group);
    return RL_OK;
}

/* Append one row across n datasets: values first, step (index 0) last. */
static int append_row(struct store *s, hid_t *ids, int n, const char *const *names, const char *group,
                      size_t rows, const int64_t *step, const double *vals)
{
    hsize_t newn = (hsize_t)rows + 1;

    for (int k = 1; k <= n; k++) {
        int i = k % n;       /* 1, 2, ..., n-1, then 0 (step) */
        int bad = store_i_fault() || H5Dset_extent(ids[i], &newn) < 0 ||
                  (i == 0 ? write_rows(ids[i], H5T_NATIVE_INT64, 1, rows, 1, 1, step)
                          : write_rows(ids[i], H5T_NATIVE_DOUBLE, 1, rows, 1, 1, &vals[i - 1])) < 0;
        if (bad)
            return store_i_h5_error(RL_ERR_WRITE, "%s: /%s/%s: cannot append row %zu", s->path, group, names[i], rows);
    }
    return RL_OK;
}

int store_append_train(struct store *s, const struct store_train_row *row)
{
    int rc;

    store_i_h5_quiet();
    if ((rc = need_swmr(s, "store_append_train")))
        return rc;
    double v[N_TRAIN - 1] = { row->loss, row->lr, row->grad_norm, row->wall_s };
    if ((rc = append_row(s, s->train, N_TRAIN, store_i_train_names, "train", s->train_rows, &row->step, v)))
        return rc;
    s->train_rows++;
    if (++s->since_flush >= s->flush_every) {
        /* values first, step last: a reader trusts a row once its step is there */
        if ((rc = flush_set(s, s->train + 1, N_TRAIN - 1, "train")) || (rc = flush_set(s, s->train, 1, "train")))
            return rc;
        s->since_flush = 0;
    }
    return RL_OK;
}

static int flush_curves(struct store *s)
{
    int rc;

    if ((rc = flush_set(s, s->train + 1, N_TRAIN - 1, "train")) || (rc = flush_set(s, s->train, 1, "train")) ||
        (rc = flush_set(s, s->eval + 1, N_EVAL - 1, "eval")) || (rc = flush_set(s, s->eval, 1, "eval")))
        return rc;
    s->since_flush = 0;
    return RL_OK;
}

int store_append_eval(struct store *s, int64_t step, double accuracy, double loss)
{
    int rc;

    store_i_h5_quiet();
    if ((rc = need_swmr(s, "store_append_eval")))
        return rc;
    double v[N_EVAL - 1] = { accuracy, loss };
    if ((rc = append_row(s, s->eval, N_EVAL, store_i_eval_names, "eval", s->eval_rows, &step, v)))
        return rc;
    s->eval_rows++;
    return flush_curves(s);
}

int store_flush(struct store *s)
{
    store_i_h5_quiet();
    if (s->mode == MODE_READ)
        return RL_OK;
    if (store_i_fault() || H5Fflush(s->file, H5F_SCOPE_LOCAL) < 0)
        return store_i_h5_error(RL_ERR_WRITE, "%s: cannot flush", s->path);
    s->since_flush = 0;
    return RL_OK;
}

static void rng_pack(uint64_t w[RNG_WORDS], const struct rng *r)
{
    for (int i = 0; i < 4; i++)
        w[i] = r->s[i];
    memcpy(&w[4], &r->spare, sizeof(double));
    w[5] = r->has_spare ? 1 : 0;
}

int store_write_checkpoint(struct store *s, int64_t step, const float *params, const float *m,
                           const float *v, const struct rng *rng)
{
    int rc;
    hsize_t n = s->n_trainable;

    store_i_h5_quiet();
    if ((rc = need_swmr(s, "store_write_checkpoint")))
        return rc;
    if (n && (!params || !m || !v))
        return rl_error_set(RL_ERR_ARG, "%s: store_write_checkpoint: missing parameter or moment block", s->path);
    if (!rng)
        return rl_error_set(RL_ERR_ARG, "%s: store_write_checkpoint: no RNG state", s->path);

    /* the rows the checkpoint covers must be in the file before it */
    if ((rc = flush_curves(s)))
        return rc;

    int64_t slot = s->current == 0 ? 1 : 0;
    int64_t trows = (int64_t)s->train_rows, erows = (int64_t)s->eval_rows;
    uint64_t w[RNG_WORDS];
    rng_pack(w, rng);
    hsize_t hs = (hsize_t)slot;
    if (write_rows(s->ckpt[CK_STEP], H5T_NATIVE_INT64, 1, hs, 1, 1, &step) < 0 ||
        write_rows(s->ckpt[CK_TRAIN_ROWS], H5T_NATIVE_INT64, 1, hs, 1, 1, &trows) < 0 ||
        write_rows(s->ckpt[CK_EVAL_ROWS], H5T_NATIVE_INT64, 1, hs, 1, 1, &erows) < 0 ||
        write_rows(s->ckpt[CK_RNG], H5T_NATIVE_UINT64, 2, hs, 1, RNG_WORDS, w) < 0 ||
        (n && (write_rows(s->ckpt[CK_PARAMS], H5T_NATIVE_FLOAT, 2, hs, 1, n, params) < 0 ||
               write_rows(s->ckpt[CK_M], H5T_NATIVE_FLOAT, 2, hs, 1, n, m) < 0 ||
               write_rows(s->ckpt[CK_V], H5T_NATIVE_FLOAT, 2, hs, 1, n, v) < 0)))
        return store_i_h5_error(RL_ERR_WRITE, "%s: /checkpoint: cannot write slot %lld", s->path, (long long)slot);
    if ((rc = flush_set(s, s->ckpt + 1, N_CKPT - 1, "checkpoint")))
        return rc;
    /* only now is the new slot complete: make it current */
    if (store_i_fault() || H5Dwrite(s->ckpt[CK_CURRENT], H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, &slot) < 0)
        return store_i_h5_error(RL_ERR_WRITE, "%s: /checkpoint/current: cannot write", s->path);
    if ((rc = flush_set(s, s->ckpt + CK_CURRENT, 1, "checkpoint")))
        return rc;
    s->current = slot;
    return RL_OK;
}

static int write_scalar_at(struct store *s, const char *path, hid_t mtype, const void *v)
{
    hid_t d = H5Dopen2(s->file, path, H5P_DEFAULT);
    int rc = d < 0 || store_i_fault() || H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) < 0
                 ? store_i_h5_error(RL_ERR_WRITE, "%s: %s: cannot write", s->path, path) : RL_OK;

    if (d >= 0)
        H5Dclose(d);
    return rc;
}

int store_write_final(struct store *s, const struct store_final *f)
{
    int rc;
    const int64_t one = 1;

    store_i_h5_quiet();
    if (s->mode != MODE_RW || !s->work_path)
        return rl_error_set(RL_ERR_ARG, "%s: store_write_final: after store_finish only (the final records go "
                            "into the working copy that store_commit makes the file)", s->path);
    if ((rc = write_scalar_at(s, "/final/accuracy", H5T_NATIVE_DOUBLE, &f->accuracy)) ||
        (rc = write_scalar_at(s, "/final/loss", H5T_NATIVE_DOUBLE, &f->loss)) ||
        (rc = write_scalar_at(s, "/final/images_per_s", H5T_NATIVE_DOUBLE, &f->images_per_s)) ||
        (rc = write_scalar_at(s, "/final/peak_rss_bytes", H5T_NATIVE_INT64, &f->peak_rss_bytes)) ||
        (f->has_val && (rc = write_scalar_at(s, "/final/val_accuracy", H5T_NATIVE_DOUBLE, &f->val_accuracy))) ||
        (f->has_val && (rc = write_scalar_at(s, "/final/val_loss", H5T_NATIVE_DOUBLE, &f->val_loss))) ||
        (rc = write_scalar_at(s, "/final/completed", H5T_NATIVE_INT64, &one)))
        return rc;
    return RL_OK;
}
