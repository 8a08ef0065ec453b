/*
 * store.c: the HDF5 results file of one run; see store.h for the schema, the
 * writer's life cycle and the ownership rules.
 *
 * Every entry point silences HDF5's error printing first (h5_quiet) and turns
 * a failure into one rl_error_set line: "<file>: <object>: <what> (HDF5:
 * <innermost HDF5 message>)".
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

enum store_mode { MODE_READ, MODE_SWMR, MODE_RW };

#define N_TRAIN 5
#define N_EVAL  3
#define N_CKPT  8
#define RNG_WORDS 6
#define CURVE_CHUNK 1024
/* largest dataset a reader will allocate for, in elements (hostile sizes) */
#define READ_MAX_ELEMS ((hsize_t)1 << 32)
/* largest string (config, attribute) a reader accepts, in bytes */
#define READ_MAX_STRING ((size_t)64 << 20)
/* how long store_finish waits for readers to close the file */
#define FINISH_WAIT_MS 3000
/* metadata read attempts of a SWMR reader (see file_open_lock) */
#define SWMR_READ_ATTEMPTS 24

static const char *const train_names[N_TRAIN] = { "step", "loss", "lr", "grad_norm", "wall_s" };
static const char *const eval_names[N_EVAL]   = { "step", "accuracy", "loss" };
enum { CK_CURRENT, CK_STEP, CK_TRAIN_ROWS, CK_EVAL_ROWS, CK_RNG, CK_PARAMS, CK_M, CK_V };
static const char *const ckpt_names[N_CKPT] = {
    "current", "step", "train_rows", "eval_rows", "rng", "params", "adam_m", "adam_v"
};

struct store {
    char           *path;
    hid_t           file;
    enum store_mode mode;
    bool            swmr_read;        /* opened with H5F_ACC_SWMR_READ            */
    hid_t           train[N_TRAIN];   /* open while mode == MODE_SWMR, else -1    */
    hid_t           eval[N_EVAL];
    hid_t           ckpt[N_CKPT];
    size_t          train_rows, eval_rows;
    size_t          n_trainable;
    size_t          flush_every, since_flush;
    int64_t         current;          /* writer: current checkpoint slot or -1    */
};

/* ------------------------------------------------------------ HDF5 errors */

static void h5_quiet(void)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

struct walk_ctx {
    char msg[160];
};

static herr_t walk_cb(unsigned n, const H5E_error2_t *e, void *data)
{
    struct walk_ctx *w = data;

    if (n == 0 && e->desc)
        snprintf(w->msg, sizeof w->msg, "%s", e->desc);
    return 0;
}

/* HDF5's innermost message, kept by h5_keep for an h5_error that comes after
 * cleanup calls (every HDF5 call clears the error stack on entry). */
static char kept_msg[160];

static void h5_keep(void)
{
    struct walk_ctx w = { { 0 } };

    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, walk_cb, &w);
    H5Eclear2(H5E_DEFAULT);
    if (w.msg[0])
        memcpy(kept_msg, w.msg, sizeof kept_msg);
}

/* rl_error_set with " (HDF5: innermost message)" appended when HDF5 has one
 * (on its stack, or kept by h5_keep); clears both. */
__attribute__((format(printf, 2, 3)))
static int h5_error(int status, const char *fmt, ...)
{
    char head[512];
    struct walk_ctx w = { { 0 } };
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(head, sizeof head, fmt, ap);
    va_end(ap);
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, walk_cb, &w);
    H5Eclear2(H5E_DEFAULT);
    if (!w.msg[0])
        memcpy(w.msg, kept_msg, sizeof w.msg);
    kept_msg[0] = '\0';
    if (w.msg[0])
        return rl_error_set(status, "%s (HDF5: %s)", head, w.msg);
    return rl_error_set(status, "%s", head);
}

static void close_id(hid_t *id)
{
    if (*id >= 0) {
        H5Oclose(*id);
        *id = -1;
    }
}

static const char *class_name(H5T_class_t c)
{
    switch (c) {
    case H5T_INTEGER:   return "integer";
    case H5T_FLOAT:     return "float";
    case H5T_STRING:    return "string";
    case H5T_BITFIELD:  return "bitfield";
    case H5T_OPAQUE:    return "opaque";
    case H5T_COMPOUND:  return "compound";
    case H5T_REFERENCE: return "reference";
    case H5T_ENUM:      return "enum";
    case H5T_VLEN:      return "vlen";
    case H5T_ARRAY:     return "array";
    default:            return "unknown";
    }
}

/* ------------------------------------------------------------ store basics */

static struct store *store_new(const char *path)
{
    struct store *s = xcalloc(1, sizeof(*s));

    s->path = xstrdup(path);
    s->file = -1;
    for (int i = 0; i < N_TRAIN; i++) s->train[i] = -1;
    for (int i = 0; i < N_EVAL; i++)  s->eval[i] = -1;
    for (int i = 0; i < N_CKPT; i++)  s->ckpt[i] = -1;
    s->current = -1;
    s->flush_every = 1;
    return s;
}

static void close_handles(struct store *s)
{
    for (int i = 0; i < N_TRAIN; i++) close_id(&s->train[i]);
    for (int i = 0; i < N_EVAL; i++)  close_id(&s->eval[i]);
    for (int i = 0; i < N_CKPT; i++)  close_id(&s->ckpt[i]);
}

void store_close(struct store *s)
{
    if (!s)
        return;
    h5_quiet();
    close_handles(s);
    if (s->file >= 0)
        H5Fclose(s->file);
    H5Eclear2(H5E_DEFAULT);
    free(s->path);
    free(s);
}

const char *store_path(const struct store *s)
{
    return s->path;
}

size_t store_n_trainable(const struct store *s)
{
    return s->n_trainable;
}

/* File access: latest format (SWMR needs it), file locking where the file
 * system supports it. */
static hid_t make_fapl(bool clear_flags, bool lock)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);

    if (fapl < 0)
        return -1;
    if (H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST) < 0 ||
        H5Pset_file_locking(fapl, lock, 1) < 0) {
        H5Pclose(fapl);
        return -1;
    }
    if (clear_flags) {
        /* what h5clear -s does: a library-registered file access property
         * that clears the superblock's "open for write" flags on open */
        hbool_t yes = 1;
        if (H5Pexist(fapl, "clear_status_flags") > 0)
            H5Pset(fapl, "clear_status_flags", &yes);
    }
    H5Eclear2(H5E_DEFAULT);
    return fapl;
}

/* Create (flags == 0: truncate) or open `path`; on failure -1 and the HDF5
 * reason, if any, in `why` ("" otherwise). */
static hid_t file_open_lock(const char *path, unsigned flags, bool create, bool clear_flags, bool lock,
                            char why[192])
{
    struct walk_ctx w = { { 0 } };
    hid_t fapl = make_fapl(clear_flags, lock), f = -1;

    /* A SWMR reader retries a metadata read that fails its checksum (a
     * write in progress), sleeping 1 ns, 2 ns, 4 ns, ... between attempts;
     * HDF5's default of 100 attempts makes a damaged file hang its reader
     * for hours. 24 attempts: about 17 ms of retrying per bad entry. */
    if (fapl >= 0 && (flags & H5F_ACC_SWMR_READ) && H5Pset_metadata_read_attempts(fapl, SWMR_READ_ATTEMPTS) < 0) {
        H5Pclose(fapl);
        fapl = -1;
    }
    if (fapl >= 0)
        f = create ? H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl) : H5Fopen(path, flags, fapl);
    if (f < 0) {
        H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, walk_cb, &w);
        H5Eclear2(H5E_DEFAULT);
    }
    if (fapl >= 0)
        H5Pclose(fapl);
    snprintf(why, 192, "%s%s%s", w.msg[0] ? " (HDF5: " : "", w.msg, w.msg[0] ? ")" : "");
    return f;
}

static hid_t file_open(const char *path, unsigned flags, bool create, bool clear_flags, char why[192])
{
    return file_open_lock(path, flags, create, clear_flags, true, why);
}

/* ------------------------------------------------------ objects and checks */

/* Does `path` resolve through hard links only (no soft or external links)?
 * 1 yes, 0 no. Walks the components, so a missing parent is "no", not an
 * error. */
static int obj_exists(hid_t file, const char *path)
{
    char buf[1024];
    size_t len = strlen(path);

    if (len == 0 || len >= sizeof buf)
        return 0;
    if (!strcmp(path, "/"))
        return 1;
    memcpy(buf, path, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        if (buf[i - 1] == '/')
            return 0;                        /* empty component */
        char c = buf[i];
        H5L_info_t li;
        buf[i] = '\0';
        htri_t ex = H5Lexists(file, buf, H5P_DEFAULT);
        int ok = ex > 0 && H5Lget_info(file, buf, &li, H5P_DEFAULT) >= 0 && li.type == H5L_TYPE_HARD;
        buf[i] = c;
        if (!ok) {
            H5Eclear2(H5E_DEFAULT);
            return 0;
        }
    }
    return 1;
}

/* H5I_GROUP, H5I_DATASET, other H5I type, or H5I_BADID when missing */
static H5I_type_t obj_kind(hid_t file, const char *path)
{
    if (!obj_exists(file, path))
        return H5I_BADID;
    hid_t o = H5Oopen(file, path, H5P_DEFAULT);
    if (o < 0) {
        H5Eclear2(H5E_DEFAULT);
        return H5I_BADID;
    }
    H5I_type_t t = H5Iget_type(o);
    H5Oclose(o);
    return t;
}

#define ANY_DIM ((hsize_t)-1)

/* Open dataset `path` checking its type class (and element size, when
 * elsize != 0), its rank (0 = scalar) and, where want != NULL, each
 * dimension (ANY_DIM = any). dims (rank entries) receives the extent. A
 * SWMR reader refreshes the dataset first. RL_ERR_FORMAT naming the object
 * on any mismatch. */
static int ds_open(struct store *s, const char *path, H5T_class_t cls, size_t elsize,
                   int rank, const hsize_t *want, hsize_t *dims, hid_t *out)
{
    hid_t d = -1, t = -1, sp = -1;
    int rc = RL_OK;

    *out = -1;
    if (obj_kind(s->file, path) != H5I_DATASET)
        return rl_error_set(RL_ERR_FORMAT, "%s: %s: missing (no dataset of that name)", s->path, path);
    if ((d = H5Dopen2(s->file, path, H5P_DEFAULT)) < 0)
        return h5_error(RL_ERR_FORMAT, "%s: %s: cannot open the dataset", s->path, path);
    if (s->swmr_read && H5Drefresh(d) < 0) {
        rc = h5_error(RL_ERR_FORMAT, "%s: %s: cannot refresh the dataset", s->path, path);
        goto done;
    }
    if ((t = H5Dget_type(d)) < 0 || (sp = H5Dget_space(d)) < 0) {
        rc = h5_error(RL_ERR_FORMAT, "%s: %s: unreadable type or dataspace", s->path, path);
        goto done;
    }
    H5T_class_t c = H5Tget_class(t);
    size_t sz = H5Tget_size(t);
    if (c != cls) {
        rc = rl_error_set(RL_ERR_FORMAT, "%s: %s: expected a %s dataset, found %s",
                          s->path, path, class_name(cls), class_name(c));
        goto done;
    }
    if ((elsize && sz != elsize) || ((cls == H5T_INTEGER || cls == H5T_FLOAT) && (sz == 0 || sz > 8))) {
        rc = rl_error_set(RL_ERR_FORMAT, "%s: %s: expected %zu-byte %s elements, found %zu bytes",
                          s->path, path, elsize ? elsize : 8, class_name(cls), sz);
        goto done;
    }
    H5S_class_t sc = H5Sget_simple_extent_type(sp);
    int nd = sc == H5S_SIMPLE ? H5Sget_simple_extent_ndims(sp) : sc == H5S_SCALAR ? 0 : -1;
    if (nd != rank) {
        if (rank == 0)
            rc = rl_error_set(RL_ERR_FORMAT, "%s: %s: expected a scalar, found rank %d", s->path, path, nd);
        else
            rc = rl_error_set(RL_ERR_FORMAT, "%s: %s: expected rank %d, found %s%d", s->path, path, rank,
                              nd < 0 ? "a null dataspace " : "rank ", nd < 0 ? 0 : nd);
        goto done;
    }
    if (rank > 0) {
        hsize_t got[STORE_MAX_DIMS];
        if (rank > STORE_MAX_DIMS || H5Sget_simple_extent_dims(sp, got, NULL) != rank) {
            rc = h5_error(RL_ERR_FORMAT, "%s: %s: unreadable dimensions", s->path, path);
            goto done;
        }
        hsize_t total = 1;
        for (int i = 0; i < rank; i++) {
            if (want && want[i] != ANY_DIM && got[i] != want[i]) {
                rc = rl_error_set(RL_ERR_FORMAT, "%s: %s: dimension %d is %llu, expected %llu", s->path, path,
                                  i, (unsigned long long)got[i], (unsigned long long)want[i]);
                goto done;
            }
            if (got[i] != 0 && total > READ_MAX_ELEMS / got[i]) {
                rc = rl_error_set(RL_ERR_FORMAT, "%s: %s: more than %llu elements", s->path, path,
                                  (unsigned long long)READ_MAX_ELEMS);
                goto done;
            }
            total *= got[i];
            if (dims)
                dims[i] = got[i];
        }
    }
    *out = d;
    d = -1;
done:
    if (sp >= 0) H5Sclose(sp);
    if (t >= 0) H5Tclose(t);
    if (d >= 0) H5Dclose(d);
    return rc;
}

/* Open attribute `name` of `obj`, checking type class and that it holds one
 * value (scalar or a single-element simple dataspace). */
static int attr_open(struct store *s, const char *obj, const char *name, H5T_class_t cls, hid_t *out,
                     hid_t *type_out)
{
    hid_t a = -1, t = -1, sp = -1;
    int rc = RL_OK;

    *out = -1;
    if (obj_kind(s->file, obj) == H5I_BADID)
        return rl_error_set(RL_ERR_FORMAT, "%s: %s: missing (looking for its attribute %s)", s->path, obj, name);
    htri_t ex = H5Aexists_by_name(s->file, obj, name, H5P_DEFAULT);
    if (ex <= 0) {
        H5Eclear2(H5E_DEFAULT);
        return rl_error_set(RL_ERR_FORMAT, "%s: %s: no attribute %s", s->path, obj, name);
    }
    if ((a = H5Aopen_by_name(s->file, obj, name, H5P_DEFAULT, H5P_DEFAULT)) < 0)
        return h5_error(RL_ERR_FORMAT, "%s: %s: cannot open attribute %s", s->path, obj, name);
    if ((t = H5Aget_type(a)) < 0 || (sp = H5Aget_space(a)) < 0) {
        rc = h5_error(RL_ERR_FORMAT, "%s: %s: attribute %s: unreadable type or dataspace", s->path, obj, name);
        goto done;
    }
    H5T_class_t c = H5Tget_class(t);
    if (c != cls) {
        rc = rl_error_set(RL_ERR_FORMAT, "%s: %s: attribute %s: expected %s, found %s", s->path, obj, name,
                          class_name(cls), class_name(c));
        goto done;
    }
    if (c != H5T_STRING && (H5Tget_size(t) == 0 || H5Tget_size(t) > 8)) {
        rc = rl_error_set(RL_ERR_FORMAT, "%s: %s: attribute %s: %zu-byte %s", s->path, obj, name,
                          H5Tget_size(t), class_name(c));
        goto done;
    }
    H5S_class_t sc = H5Sget_simple_extent_type(sp);
    if (!(sc == H5S_SCALAR || (sc == H5S_SIMPLE && H5Sget_simple_extent_npoints(sp) == 1))) {
        rc = rl_error_set(RL_ERR_FORMAT, "%s: %s: attribute %s: expected a single value", s->path, obj, name);
        goto done;
    }
    *out = a;
    a = -1;
    if (type_out) {
        *type_out = t;
        t = -1;
    }
done:
    if (sp >= 0) H5Sclose(sp);
    if (t >= 0) H5Tclose(t);
    if (a >= 0) H5Aclose(a);
    return rc;
}

/* Read a string (attribute when is_attr, else scalar dataset) of type `t`
 * from object `id` into an allocated, NUL-terminated copy. */
static int read_string(struct store *s, hid_t id, hid_t t, bool is_attr, const char *what, char **out)
{
    int rc = RL_OK;
    hid_t mt = -1;

    *out = NULL;
    if (H5Tis_variable_str(t) > 0) {
        char *v = NULL;
        if ((mt = H5Tcopy(H5T_C_S1)) < 0 || H5Tset_size(mt, H5T_VARIABLE) < 0 ||
            H5Tset_cset(mt, H5Tget_cset(t)) < 0)
            rc = h5_error(RL_ERR, "%s: %s: string type", s->path, what);
        else if ((is_attr ? H5Aread(id, mt, &v) : H5Dread(id, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, &v)) < 0)
            rc = h5_error(RL_ERR_FORMAT, "%s: %s: cannot read the string", s->path, what);
        else if (v && strlen(v) > READ_MAX_STRING)
            rc = rl_error_set(RL_ERR_FORMAT, "%s: %s: string longer than %zu bytes", s->path, what,
                              READ_MAX_STRING);
        else
            *out = xstrdup(v ? v : "");
        if (v)
            H5free_memory(v);
    } else {
        size_t n = H5Tget_size(t);
        if (n == 0 || n > READ_MAX_STRING)
            return rl_error_set(RL_ERR_FORMAT, "%s: %s: fixed string of %zu bytes", s->path, what, n);
        char *v = xcalloc(n + 1, 1);
        if ((mt = H5Tcopy(H5T_C_S1)) < 0 || H5Tset_size(mt, n) < 0 || H5Tset_cset(mt, H5Tget_cset(t)) < 0)
            rc = h5_error(RL_ERR, "%s: %s: string type", s->path, what);
        else if ((is_attr ? H5Aread(id, mt, v) : H5Dread(id, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, v)) < 0)
            rc = h5_error(RL_ERR_FORMAT, "%s: %s: cannot read the string", s->path, what);
        if (rc == RL_OK)
            *out = v;
        else
            free(v);
    }
    if (mt >= 0)
        H5Tclose(mt);
    return rc;
}

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
        return h5_error(RL_ERR_IO, "%s: %s: cannot open to set attribute %s", s->path, obj, name);
    if (H5Aexists(o, name) > 0 && H5Adelete(o, name) < 0) {
        rc = h5_error(RL_ERR_IO, "%s: %s: cannot replace attribute %s", s->path, obj, name);
        goto done;
    }
    if ((sp = H5Screate(H5S_SCALAR)) < 0 ||
        (a = H5Acreate2(o, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT)) < 0 ||
        H5Awrite(a, mtype, value) < 0)
        rc = h5_error(RL_ERR_IO, "%s: %s: cannot write attribute %s", s->path, obj, name);
done:
    if (a >= 0) H5Aclose(a);
    if (sp >= 0) H5Sclose(sp);
    H5Oclose(o);
    return rc;
}

static int attr_write_str(struct store *s, const char *obj, const char *name, const char *value)
{
    hid_t t = str_type();
    const char *v = value ? value : "";
    int rc;

    if (t < 0)
        return h5_error(RL_ERR, "%s: string type", s->path);
    rc = attr_write(s, obj, name, t, t, &v);
    H5Tclose(t);
    return rc;
}

static int attr_write_i64(struct store *s, const char *obj, const char *name, int64_t v)
{
    return attr_write(s, obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &v);
}

static int attr_write_u64(struct store *s, const char *obj, const char *name, uint64_t v)
{
    return attr_write(s, obj, name, H5T_STD_U64LE, H5T_NATIVE_UINT64, &v);
}

static int attr_write_f64(struct store *s, const char *obj, const char *name, double v)
{
    return attr_write(s, obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &v);
}

static int make_group(struct store *s, const char *path)
{
    hid_t g = H5Gcreate2(s->file, path, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);

    if (g < 0)
        return h5_error(RL_ERR_IO, "%s: %s: cannot create the group", s->path, path);
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
        H5Pset_fill_value(dcpl, mtype, fill) < 0 ||
        (d = H5Dcreate2(s->file, path, ftype, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT)) < 0)
        rc = h5_error(RL_ERR_IO, "%s: %s: cannot create the dataset", s->path, path);
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
        (d = H5Dcreate2(s->file, path, ftype, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT)) < 0)
        rc = h5_error(RL_ERR_IO, "%s: %s: cannot create the dataset", s->path, path);
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

    if (sp < 0 || (d = H5Dcreate2(s->file, path, ftype, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)) < 0 ||
        H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
        rc = h5_error(RL_ERR_IO, "%s: %s: cannot write the dataset", s->path, path);
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

    if (fs >= 0 && H5Sselect_hyperslab(fs, H5S_SELECT_SET, off, NULL, cnt, NULL) >= 0 &&
        (ms = H5Screate_simple(rank, cnt, NULL)) >= 0 &&
        H5Dwrite(d, mtype, ms, fs, H5P_DEFAULT, data) >= 0)
        ok = 1;
    else
        h5_keep();
    if (ms >= 0) H5Sclose(ms);
    if (fs >= 0) H5Sclose(fs);
    return ok ? 0 : -1;
}

static int open_writer_handles(struct store *s)
{
    char p[64];

    for (int i = 0; i < N_TRAIN; i++) {
        snprintf(p, sizeof p, "/train/%s", train_names[i]);
        if ((s->train[i] = H5Dopen2(s->file, p, H5P_DEFAULT)) < 0)
            return h5_error(RL_ERR_IO, "%s: %s: cannot open for writing", s->path, p);
    }
    for (int i = 0; i < N_EVAL; i++) {
        snprintf(p, sizeof p, "/eval/%s", eval_names[i]);
        if ((s->eval[i] = H5Dopen2(s->file, p, H5P_DEFAULT)) < 0)
            return h5_error(RL_ERR_IO, "%s: %s: cannot open for writing", s->path, p);
    }
    for (int i = 0; i < N_CKPT; i++) {
        snprintf(p, sizeof p, "/checkpoint/%s", ckpt_names[i]);
        if ((s->ckpt[i] = H5Dopen2(s->file, p, H5P_DEFAULT)) < 0)
            return h5_error(RL_ERR_IO, "%s: %s: cannot open for writing", s->path, p);
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
    if ((rc = attr_write_i64(s, "/", "schema_version", STORE_SCHEMA_VERSION)) ||
        (rc = attr_write_str(s, "/", "harness_version", in->harness_version)) ||
        (rc = attr_write_str(s, "/", "git_commit", in->git_commit)) ||
        (rc = attr_write_str(s, "/", "created_utc", when)) ||
        (rc = attr_write_str(s, "/", "host", host)) ||
        (rc = attr_write_str(s, "/", "threads", in->threads)) ||
        (rc = attr_write_str(s, "/", "blas", in->blas)))
        return rc;

    /* config */
    if ((t = str_type()) < 0)
        return h5_error(RL_ERR, "%s: string type", s->path);
    const char *cfg = in->config_text ? in->config_text : "";
    rc = write_all(s, "/config", t, t, 0, NULL, &cfg);
    H5Tclose(t);
    if (rc)
        return rc;

    /* method */
    if ((rc = make_group(s, "/method")) ||
        (rc = attr_write_str(s, "/method", "method", in->method)) ||
        (rc = attr_write_i64(s, "/method", "rank", in->rank)) ||
        (rc = attr_write_f64(s, "/method", "alpha", in->alpha)) ||
        (rc = attr_write_str(s, "/method", "profile", in->profile)) ||
        (rc = attr_write_i64(s, "/method", "n_trainable", (int64_t)in->n_trainable)) ||
        (rc = attr_write_i64(s, "/method", "n_frozen_shared", (int64_t)in->n_frozen_shared)))
        return rc;

    /* data */
    hsize_t nidx = in->n_train_index;
    if ((rc = make_group(s, "/data")) ||
        (rc = attr_write_str(s, "/data", "spec", in->data_spec)) ||
        (rc = attr_write_i64(s, "/data", "shots", in->shots)) ||
        (rc = attr_write_f64(s, "/data", "fraction", in->fraction)) ||
        (rc = attr_write_u64(s, "/data", "sampling_seed", in->sampling_seed)) ||
        (rc = write_all(s, "/data/train_index", H5T_STD_I64LE, H5T_NATIVE_INT64, 1, &nidx,
                        in->train_index)))
        return rc;

    /* curves */
    char p[64];
    if ((rc = make_group(s, "/train")) || (rc = make_group(s, "/eval")))
        return rc;
    for (int i = 0; i < N_TRAIN; i++) {
        snprintf(p, sizeof p, "/train/%s", train_names[i]);
        if ((rc = i == 0 ? make_curve(s, p, H5T_STD_I64LE, H5T_NATIVE_INT64, &step_fill)
                         : make_curve(s, p, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &nan_fill)))
            return rc;
    }
    for (int i = 0; i < N_EVAL; i++) {
        snprintf(p, sizeof p, "/eval/%s", eval_names[i]);
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
        (rc = make_fixed(s, "/final/completed", H5T_STD_I64LE, H5T_NATIVE_INT64, 0, NULL, &zero_i)))
        return rc;
    return RL_OK;
}

static int start_swmr(struct store *s)
{
    if (H5Fstart_swmr_write(s->file) < 0)
        return h5_error(RL_ERR_IO, "%s: cannot start SWMR writing", s->path);
    s->mode = MODE_SWMR;
    return open_writer_handles(s);
}

int store_create(struct store **out, const char *path, const struct store_run_info *info)
{
    struct store *s;
    char why[192];
    int rc;

    h5_quiet();
    *out = NULL;
    if (!path || !*path || !info)
        return rl_error_set(RL_ERR_ARG, "store_create: no path or no run info");
    if ((int64_t)info->n_trainable < 0 || (int64_t)info->n_train_index < 0 ||
        (info->n_train_index && !info->train_index))
        return rl_error_set(RL_ERR_ARG, "%s: bad run info (n_trainable %zu, %zu train indices)", path,
                            info->n_trainable, info->n_train_index);
    s = store_new(path);
    s->n_trainable = info->n_trainable;
    s->flush_every = info->flush_every ? info->flush_every : 1;
    s->file = file_open(path, 0, true, false, why);
    if (s->file < 0) {
        store_close(s);
        return rl_error_set(RL_ERR_IO, "%s: cannot create the results file%s", path, why);
    }
    s->mode = MODE_RW;
    if ((rc = write_layout(s, info)) || (rc = start_swmr(s))) {
        store_close(s);
        return rc;
    }
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
        if (H5Dflush(ids[i]) < 0)
            return h5_error(RL_ERR_IO, "%s: /%s: cannot flush", s->path, group);
    return RL_OK;
}

/* Append one row across n datasets: values first, step (index 0) last. */
static int append_row(struct store *s, hid_t *ids, int n, const char *const *names, const char *group,
                      size_t rows, const int64_t *step, const double *vals)
{
    hsize_t newn = (hsize_t)rows + 1;

    for (int k = 1; k <= n; k++) {
        int i = k % n;       /* 1, 2, ..., n-1, then 0 (step) */
        int bad = H5Dset_extent(ids[i], &newn) < 0 ||
                  (i == 0 ? write_rows(ids[i], H5T_NATIVE_INT64, 1, rows, 1, 1, step)
                          : write_rows(ids[i], H5T_NATIVE_DOUBLE, 1, rows, 1, 1, &vals[i - 1])) < 0;
        if (bad)
            return h5_error(RL_ERR_IO, "%s: /%s/%s: cannot append row %zu", s->path, group, names[i], rows);
    }
    return RL_OK;
}

int store_append_train(struct store *s, const struct store_train_row *row)
{
    int rc;

    h5_quiet();
    if ((rc = need_swmr(s, "store_append_train")))
        return rc;
    double v[N_TRAIN - 1] = { row->loss, row->lr, row->grad_norm, row->wall_s };
    if ((rc = append_row(s, s->train, N_TRAIN, train_names, "train", s->train_rows, &row->step, v)))
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

    h5_quiet();
    if ((rc = need_swmr(s, "store_append_eval")))
        return rc;
    double v[N_EVAL - 1] = { accuracy, loss };
    if ((rc = append_row(s, s->eval, N_EVAL, eval_names, "eval", s->eval_rows, &step, v)))
        return rc;
    s->eval_rows++;
    return flush_curves(s);
}

int store_flush(struct store *s)
{
    h5_quiet();
    if (s->mode == MODE_READ)
        return RL_OK;
    if (H5Fflush(s->file, H5F_SCOPE_LOCAL) < 0)
        return h5_error(RL_ERR_IO, "%s: cannot flush", s->path);
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

    h5_quiet();
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
        return h5_error(RL_ERR_IO, "%s: /checkpoint: cannot write slot %lld", s->path, (long long)slot);
    if ((rc = flush_set(s, s->ckpt + 1, N_CKPT - 1, "checkpoint")))
        return rc;
    /* only now is the new slot complete: make it current */
    if (H5Dwrite(s->ckpt[CK_CURRENT], H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, &slot) < 0)
        return h5_error(RL_ERR_IO, "%s: /checkpoint/current: cannot write", s->path);
    if ((rc = flush_set(s, s->ckpt + CK_CURRENT, 1, "checkpoint")))
        return rc;
    s->current = slot;
    return RL_OK;
}

static int write_scalar_at(struct store *s, const char *path, hid_t mtype, const void *v)
{
    hid_t d = H5Dopen2(s->file, path, H5P_DEFAULT);
    int rc = d < 0 || H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) < 0 || H5Dflush(d) < 0
                 ? h5_error(RL_ERR_IO, "%s: %s: cannot write", s->path, path) : RL_OK;

    if (d >= 0)
        H5Dclose(d);
    return rc;
}

int store_write_final(struct store *s, const struct store_final *f)
{
    int rc;
    const int64_t one = 1;

    h5_quiet();
    if ((rc = need_swmr(s, "store_write_final")) || (rc = flush_curves(s)))
        return rc;
    if ((rc = write_scalar_at(s, "/final/accuracy", H5T_NATIVE_DOUBLE, &f->accuracy)) ||
        (rc = write_scalar_at(s, "/final/loss", H5T_NATIVE_DOUBLE, &f->loss)) ||
        (rc = write_scalar_at(s, "/final/images_per_s", H5T_NATIVE_DOUBLE, &f->images_per_s)) ||
        (rc = write_scalar_at(s, "/final/peak_rss_bytes", H5T_NATIVE_INT64, &f->peak_rss_bytes)) ||
        (rc = write_scalar_at(s, "/final/completed", H5T_NATIVE_INT64, &one)))
        return rc;
    return RL_OK;
}

int store_finish(struct store *s)
{
    int rc;
    char why[192];

    h5_quiet();
    if ((rc = need_swmr(s, "store_finish")))
        return rc;
    close_handles(s);
    herr_t e = H5Fclose(s->file);
    s->file = -1;
    if (e < 0)
        return h5_error(RL_ERR_IO, "%s: cannot close the SWMR writer", s->path);
    /* A SWMR reader holds a shared lock while it has the file open. Give
     * readers (plots polling the file) FINISH_WAIT_MS to let go, then open
     * without the lock rather than lose the adapter: the file is safe, a
     * reader still open may read errors until it reopens. */
    for (int waited = 0;; waited += 10) {
        s->file = file_open(s->path, H5F_ACC_RDWR, false, false, why);
        if (s->file >= 0 || !strstr(why, "lock") || waited >= FINISH_WAIT_MS)
            break;
        nanosleep(&(struct timespec){ 0, 10 * 1000 * 1000 }, NULL);
    }
    if (s->file < 0 && strstr(why, "lock"))
        s->file = file_open_lock(s->path, H5F_ACC_RDWR, false, false, false, why);
    if (s->file < 0)
        return rl_error_set(RL_ERR_IO, "%s: cannot reopen read-write after training%s", s->path, why);
    s->mode = MODE_RW;
    return RL_OK;
}

/* ------------------------------------------------------------- opening */

static int read_i64_at(struct store *s, const char *path, int64_t *v)
{
    hid_t d;
    int rc = ds_open(s, path, H5T_INTEGER, 0, 0, NULL, NULL, &d);

    if (rc)
        return rc;
    if (H5Dread(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) < 0)
        rc = h5_error(RL_ERR_FORMAT, "%s: %s: cannot read", s->path, path);
    H5Dclose(d);
    return rc;
}

static int read_f64_at(struct store *s, const char *path, double *v)
{
    hid_t d;
    int rc = ds_open(s, path, H5T_FLOAT, 0, 0, NULL, NULL, &d);

    if (rc)
        return rc;
    if (H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) < 0)
        rc = h5_error(RL_ERR_FORMAT, "%s: %s: cannot read", s->path, path);
    H5Dclose(d);
    return rc;
}

/* check a dataset's shape and close it again */
static int check_ds(struct store *s, const char *path, H5T_class_t cls, size_t elsize, int rank,
                    const hsize_t *want, hsize_t *dims)
{
    hid_t d;
    int rc = ds_open(s, path, cls, elsize, rank, want, dims, &d);

    if (rc == RL_OK)
        H5Dclose(d);
    return rc;
}

/* schema_version, then every phase-1 object's type and shape */
static int validate(struct store *s)
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
    if ((rc = attr_open(s, "/", "schema_version", H5T_INTEGER, &a, NULL)))
        return rc;
    herr_t e = H5Aread(a, H5T_NATIVE_INT64, &ver);
    if (e < 0)
        h5_keep();
    H5Aclose(a);
    if (e < 0)
        return h5_error(RL_ERR_FORMAT, "%s: /: cannot read schema_version", s->path);
    if (ver != STORE_SCHEMA_VERSION)
        return rl_error_set(RL_ERR_FORMAT, "%s: /: schema_version %lld, this build reads version %d", s->path,
                            (long long)ver, STORE_SCHEMA_VERSION);

    if ((rc = store_attr_get_int64(s, "/method", "n_trainable", &ntr)))
        return rc;
    if (ntr < 0 || (uint64_t)ntr > READ_MAX_ELEMS)
        return rl_error_set(RL_ERR_FORMAT, "%s: /method: n_trainable %lld out of range", s->path, (long long)ntr);
    s->n_trainable = (size_t)ntr;

    hid_t d;
    if ((rc = ds_open(s, "/config", H5T_STRING, 0, 0, NULL, NULL, &d)))
        return rc;
    H5Dclose(d);
    if ((rc = check_ds(s, "/data/train_index", H5T_INTEGER, 0, 1, NULL, NULL)))
        return rc;
    for (int i = 0; i < N_TRAIN; i++) {
        snprintf(p, sizeof p, "/train/%s", train_names[i]);
        if ((rc = check_ds(s, p, i == 0 ? H5T_INTEGER : H5T_FLOAT, 0, 1, NULL, NULL)))
            return rc;
    }
    for (int i = 0; i < N_EVAL; i++) {
        snprintf(p, sizeof p, "/eval/%s", eval_names[i]);
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
static int check_is_hdf5(const char *path)
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

static int open_common(struct store **out, const char *path, bool rw)
{
    struct store *s;
    char why[192];
    int rc;

    h5_quiet();
    *out = NULL;
    if (!path || !*path)
        return rl_error_set(RL_ERR_ARG, "store_open: no path");
    if ((rc = check_is_hdf5(path)))
        return rc;
    s = store_new(path);
    if (rw) {
        s->file = file_open(path, H5F_ACC_RDWR, false, false, why);
        s->mode = MODE_RW;
    } else {
        s->file = file_open(path, H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, false, false, why);
        s->swmr_read = s->file >= 0;
        if (s->file < 0)
            s->file = file_open(path, H5F_ACC_RDONLY, false, false, why);
        s->mode = MODE_READ;
    }
    if (s->file < 0) {
        rc = rl_error_set(rw ? RL_ERR_IO : RL_ERR_FORMAT, "%s: cannot open%s%s", path, rw ? " read-write" : "", why);
        store_close(s);
        return rc;
    }
    if ((rc = validate(s))) {
        store_close(s);
        return rc;
    }
    *out = s;
    return RL_OK;
}

int store_open(struct store **out, const char *path)
{
    return open_common(out, path, false);
}

int store_open_rw(struct store **out, const char *path)
{
    return open_common(out, path, true);
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

static int group_rows(struct store *s, const char *group, const char *const *names, int count, size_t *rows)
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

    h5_quiet();
    if (s->mode == MODE_SWMR) {
        t = s->train_rows;
        e = s->eval_rows;
    } else if ((rc = group_rows(s, "train", train_names, N_TRAIN, &t)) ||
               (rc = group_rows(s, "eval", eval_names, N_EVAL, &e))) {
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
        h5_keep();
    if (ms >= 0) H5Sclose(ms);
    if (fs >= 0) H5Sclose(fs);
    return ok ? RL_OK : h5_error(RL_ERR_FORMAT, "%s: %s: cannot read %zu rows", s->path, path, n);
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

    h5_quiet();
    if (steps) *steps = NULL;
    *values = NULL;
    *n = 0;
    if (snprintf(ps, sizeof ps, "/%s/step", group) >= (int)sizeof ps ||
        snprintf(pv, sizeof pv, "/%s/%s", group, name) >= (int)sizeof pv)
        return rl_error_set(RL_ERR_ARG, "%s: curve name too long", s->path);
    if ((rc = ds_open(s, ps, H5T_INTEGER, 0, 1, NULL, &ns, &ds)) ||
        (rc = ds_open(s, pv, H5T_FLOAT, 0, 1, NULL, &nv, &dv)))
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
    int rc = ds_open(s, path, mtype == H5T_NATIVE_FLOAT ? H5T_FLOAT : H5T_INTEGER,
                     mtype == H5T_NATIVE_FLOAT ? 4 : 0, rank, NULL, NULL, &d);
    hsize_t off[2] = { slot, 0 }, cnt[2] = { 1, width };
    hid_t fs = -1, ms = -1;

    if (rc)
        return rc;
    if ((fs = H5Dget_space(d)) < 0 || H5Sselect_hyperslab(fs, H5S_SELECT_SET, off, NULL, cnt, NULL) < 0 ||
        (ms = H5Screate_simple(rank, cnt, NULL)) < 0 || H5Dread(d, mtype, ms, fs, H5P_DEFAULT, buf) < 0)
        rc = h5_error(RL_ERR_FORMAT, "%s: %s: cannot read slot %llu", s->path, path, (unsigned long long)slot);
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

    h5_quiet();
    if ((rc = read_i64_at(s, "/checkpoint/current", &cur)))
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

    h5_quiet();
    if ((rc = read_f64_at(s, "/final/accuracy", &f->accuracy)) ||
        (rc = read_f64_at(s, "/final/loss", &f->loss)) ||
        (rc = read_f64_at(s, "/final/images_per_s", &f->images_per_s)) ||
        (rc = read_i64_at(s, "/final/peak_rss_bytes", &f->peak_rss_bytes)) ||
        (rc = read_i64_at(s, "/final/completed", &c)))
        return rc;
    if (completed)
        *completed = c == 1;
    return RL_OK;
}

int store_read_config(struct store *s, char **text)
{
    hid_t d, t;
    int rc;

    h5_quiet();
    *text = NULL;
    if ((rc = ds_open(s, "/config", H5T_STRING, 0, 0, NULL, NULL, &d)))
        return rc;
    if ((t = H5Dget_type(d)) < 0)
        rc = h5_error(RL_ERR_FORMAT, "%s: /config: unreadable type", s->path);
    else
        rc = read_string(s, d, t, false, "/config", text);
    if (t >= 0)
        H5Tclose(t);
    H5Dclose(d);
    return rc;
}

int store_read_train_index(struct store *s, int64_t **index, size_t *n)
{
    hid_t d;
    hsize_t len = 0;
    int rc;

    h5_quiet();
    *index = NULL;
    *n = 0;
    if ((rc = ds_open(s, "/data/train_index", H5T_INTEGER, 0, 1, NULL, &len, &d)))
        return rc;
    int64_t *p = alloc_or_null((size_t)len, sizeof(*p));
    if (len && !p)
        rc = rl_error_set(RL_ERR_NOMEM, "%s: /data/train_index: no memory for %llu entries", s->path,
                          (unsigned long long)len);
    else if ((rc = read_prefix(s, "/data/train_index", d, H5T_NATIVE_INT64, (size_t)len, p)) == RL_OK) {
        *index = p;
        *n = (size_t)len;
        p = NULL;
    }
    free(p);
    H5Dclose(d);
    return rc;
}

bool store_has(struct store *s, const char *path)
{
    h5_quiet();
    return obj_exists(s->file, path) == 1;
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

    h5_quiet();
    *names = NULL;
    *n = 0;
    H5I_type_t k = obj_kind(s->file, path);
    if (k == H5I_BADID)
        return rl_error_set(RL_ERR_NA, "%s: %s: no such group", s->path, path);
    if (k != H5I_GROUP)
        return rl_error_set(RL_ERR_FORMAT, "%s: %s: not a group", s->path, path);
    if (H5Literate_by_name(s->file, path, H5_INDEX_NAME, H5_ITER_INC, &idx, list_cb, &c, H5P_DEFAULT) < 0) {
        store_free_names(c.names, c.n);
        return h5_error(RL_ERR_FORMAT, "%s: %s: cannot list the group", s->path, path);
    }
    *names = c.names;
    *n = c.n;
    return RL_OK;
}

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
    H5I_type_t k = obj_kind(s->file, path);

    if (k == H5I_BADID)
        return RL_OK;
    if (k != H5I_DATASET)
        return rl_error_set(RL_ERR_ARG, "%s: %s: exists and is not a dataset", s->path, path);
    if (H5Ldelete(s->file, path, H5P_DEFAULT) < 0)
        return h5_error(RL_ERR_IO, "%s: %s: cannot replace", s->path, path);
    return RL_OK;
}

static int create_with_parents(struct store *s, const char *path, hid_t ftype, hid_t space, hid_t dcpl, hid_t *out)
{
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    int rc = RL_OK;

    *out = -1;
    if (lcpl < 0 || H5Pset_create_intermediate_group(lcpl, 1) < 0 ||
        (*out = H5Dcreate2(s->file, path, ftype, space, lcpl, dcpl, H5P_DEFAULT)) < 0)
        rc = h5_error(RL_ERR_IO, "%s: %s: cannot create the dataset", s->path, path);
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

    h5_quiet();
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
        rc = h5_error(RL_ERR, "%s: %s: dataspace", s->path, path);
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
            rc = h5_error(RL_ERR, "%s: %s: chunking", s->path, path);
            goto done;
        }
    }
    if ((rc = create_with_parents(s, path, H5T_IEEE_F32LE, sp, dcpl, &d)))
        goto done;
    if (total && H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
        rc = h5_error(RL_ERR_IO, "%s: %s: cannot write", s->path, path);
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

    h5_quiet();
    *data = NULL;
    *ndim = 0;
    if ((rc = check_path_arg(s, path)))
        return rc;
    if (obj_kind(s->file, path) != H5I_DATASET)
        return rl_error_set(RL_ERR_FORMAT, "%s: %s: missing (no dataset of that name)", s->path, path);
    if ((d = H5Dopen2(s->file, path, H5P_DEFAULT)) < 0)
        return h5_error(RL_ERR_FORMAT, "%s: %s: cannot open", s->path, path);
    if ((sp = H5Dget_space(d)) < 0) {
        rc = h5_error(RL_ERR_FORMAT, "%s: %s: unreadable dataspace", s->path, path);
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
    if ((rc = ds_open(s, path, H5T_FLOAT, 4, nd, NULL, hd, &d)))
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
        rc = h5_error(RL_ERR_FORMAT, "%s: %s: cannot read", s->path, path);
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

    h5_quiet();
    if ((rc = need_rw(s, "store_write_scalar")) || (rc = check_path_arg(s, path)) ||
        (rc = clear_for_write(s, path)))
        return rc;
    if ((sp = H5Screate(H5S_SCALAR)) < 0)
        return h5_error(RL_ERR, "%s: %s: dataspace", s->path, path);
    if ((rc = create_with_parents(s, path, ftype, sp, H5P_DEFAULT, &d)) == RL_OK &&
        H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) < 0)
        rc = h5_error(RL_ERR_IO, "%s: %s: cannot write", s->path, path);
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

int store_read_scalar(struct store *s, const char *path, double *value)
{
    h5_quiet();
    return read_f64_at(s, path, value);
}

int store_read_scalar_i64(struct store *s, const char *path, int64_t *value)
{
    h5_quiet();
    return read_i64_at(s, path, value);
}

int store_attr_set_string(struct store *s, const char *obj, const char *name, const char *value)
{
    int rc;

    h5_quiet();
    if ((rc = need_rw(s, "store_attr_set_string")))
        return rc;
    if (obj_kind(s->file, obj) == H5I_BADID)
        return rl_error_set(RL_ERR_ARG, "%s: %s: no such object", s->path, obj);
    return attr_write_str(s, obj, name, value);
}

int store_attr_set_int64(struct store *s, const char *obj, const char *name, int64_t value)
{
    int rc;

    h5_quiet();
    if ((rc = need_rw(s, "store_attr_set_int64")))
        return rc;
    if (obj_kind(s->file, obj) == H5I_BADID)
        return rl_error_set(RL_ERR_ARG, "%s: %s: no such object", s->path, obj);
    return attr_write_i64(s, obj, name, value);
}

int store_attr_set_double(struct store *s, const char *obj, const char *name, double value)
{
    int rc;

    h5_quiet();
    if ((rc = need_rw(s, "store_attr_set_double")))
        return rc;
    if (obj_kind(s->file, obj) == H5I_BADID)
        return rl_error_set(RL_ERR_ARG, "%s: %s: no such object", s->path, obj);
    return attr_write_f64(s, obj, name, value);
}

int store_attr_get_string(struct store *s, const char *obj, const char *name, char **value)
{
    hid_t a, t;
    int rc;
    char what[256];

    h5_quiet();
    *value = NULL;
    if ((rc = attr_open(s, obj, name, H5T_STRING, &a, &t)))
        return rc;
    snprintf(what, sizeof what, "%s: attribute %s", obj, name);
    rc = read_string(s, a, t, true, what, value);
    H5Tclose(t);
    H5Aclose(a);
    return rc;
}

static int attr_get_num(struct store *s, const char *obj, const char *name, H5T_class_t cls, hid_t mtype,
                        void *value)
{
    hid_t a;
    int rc;

    h5_quiet();
    if ((rc = attr_open(s, obj, name, cls, &a, NULL)))
        return rc;
    if (H5Aread(a, mtype, value) < 0)
        rc = h5_error(RL_ERR_FORMAT, "%s: %s: cannot read attribute %s", s->path, obj, name);
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

/* ------------------------------------------------------------- resume */

static int truncate_group(struct store *s, const char *group, const char *const *names, int count, size_t rows)
{
    char p[64];
    hsize_t n = rows;

    for (int i = 0; i < count; i++) {
        snprintf(p, sizeof p, "/%s/%s", group, names[i]);
        hid_t d = H5Dopen2(s->file, p, H5P_DEFAULT);
        int rc = d < 0 || H5Dset_extent(d, &n) < 0
                     ? h5_error(RL_ERR_IO, "%s: %s: cannot truncate to %zu rows", s->path, p, rows) : RL_OK;
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
    char why[192];

    h5_quiet();
    *out = NULL;
    if (!path || !*path)
        return rl_error_set(RL_ERR_ARG, "store_resume: no path");
    if ((rc = check_is_hdf5(path)))
        return rc;
    s = store_new(path);
    s->file = file_open(path, H5F_ACC_RDWR, false, true, why);
    if (s->file < 0) {
        store_close(s);
        return rl_error_set(RL_ERR_IO, "%s: cannot reopen read-write to resume%s", path, why);
    }
    s->mode = MODE_RW;
    /* The dead SWMR writer's metadata may lie past the end of allocation
     * recorded in the superblock: grow it to the file's size (h5clear -i 0). */
    if (H5Fincrement_filesize(s->file, 0) < 0) {
        rc = h5_error(RL_ERR_IO, "%s: cannot reset the end of allocation to resume", path);
        goto fail;
    }
    if ((rc = validate(s)) || (rc = store_read_final(s, &f, &completed)) ||
        (rc = read_i64_at(s, "/checkpoint/current", &cur)))
        goto fail;
    if (completed) {
        rc = rl_error_set(RL_ERR_ARG, "%s: the run was completed; nothing to resume", path);
        goto fail;
    }
    if (cur != -1 && (rc = store_read_checkpoint(s, &ci, NULL, NULL, NULL, NULL)))
        goto fail;
    if ((rc = group_rows(s, "train", train_names, N_TRAIN, &trows)) ||
        (rc = group_rows(s, "eval", eval_names, N_EVAL, &erows)))
        goto fail;
    if (ci.train_rows > trows || ci.eval_rows > erows) {
        rc = rl_error_set(RL_ERR_FORMAT, "%s: /checkpoint: covers %zu train and %zu eval rows, the file has %zu "
                          "and %zu", path, ci.train_rows, ci.eval_rows, trows, erows);
        goto fail;
    }
    if ((rc = truncate_group(s, "train", train_names, N_TRAIN, ci.train_rows)) ||
        (rc = truncate_group(s, "eval", eval_names, N_EVAL, ci.eval_rows)))
        goto fail;
    s->train_rows = ci.train_rows;
    s->eval_rows = ci.eval_rows;
    s->current = cur;
    if ((rc = start_swmr(s)))
        goto fail;
    *out = s;
    return RL_OK;
fail:
    store_close(s);
    return rc;
}
