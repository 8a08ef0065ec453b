/*
 * store.c: the HDF5 results file of one run; see store.h for the schema, the
 * writer's life cycle and the ownership rules.
 *
 * Every entry point silences HDF5's error printing first (store_i_h5_quiet) and turns
 * a failure into one rl_error_set line: "<file>: <object>: <what> (HDF5:
 * <innermost HDF5 message>)".
 *
 * This file holds what the other parts share: the HDF5 error helpers, the
 * store basics (store_close, store_path, store_n_trainable), opening HDF5
 * files, and the object, dataset and attribute checks. The rest lives in
 * store_write.c, store_read.c, store_tensor.c and store_resume.c; the shared
 * internals are declared in store_impl.h.
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

const char *const store_i_train_names[N_TRAIN] = { "step", "loss", "lr", "grad_norm", "wall_s" };
const char *const store_i_eval_names[N_EVAL]   = { "step", "accuracy", "loss" };
const char *const store_i_ckpt_names[N_CKPT] = {
    "current", "step", "train_rows", "eval_rows", "rng", "params", "adam_m", "adam_v"
};

/* ------------------------------------------------------------ HDF5 errors */

void store_i_h5_quiet(void)
{
    static bool first = true;

    /* No exit-time cleanup: HDF5's would flush and close again a file whose
     * H5Fclose failed (a full disk), and crash in it. Every file is closed
     * (and its failure reported) by store_close / store_commit; one left
     * open at exit, by a writer that died half-way, is what a kill leaves,
     * which the SWMR file and the commit protocol survive (store.h). Only
     * effective before the library's first call, which this is. */
    if (first) {
        first = false;
        H5dont_atexit();
    }
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

struct walk_ctx {
    char msg[160];
    bool is_errno;             /* msg is a system call's strerror */
};

/* HDF5's innermost message; a failed system call's (the sec2 driver's
 * "file write failed: time = ..., errno = 28, error message = '...', ...")
 * is cut to the system's text of errno: "No space left on device". */
static herr_t walk_cb(unsigned n, const H5E_error2_t *e, void *data)
{
    struct walk_ctx *w = data;
    const char *en;

    if (n != 0 || !e->desc)
        return 0;
    w->is_errno = (en = strstr(e->desc, "errno = ")) != NULL && atoi(en + 8) > 0;
    if (w->is_errno)
        snprintf(w->msg, sizeof w->msg, "%s", strerror(atoi(en + 8)));
    else
        snprintf(w->msg, sizeof w->msg, "%s", e->desc);
    return 0;
}

/* HDF5's innermost message, kept by h5_keep for an h5_error that comes after
 * cleanup calls (every HDF5 call clears the error stack on entry). */
static char kept_msg[160];
static bool kept_is_errno;

void store_i_h5_keep(void)
{
    struct walk_ctx w = { { 0 }, false };

    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, walk_cb, &w);
    H5Eclear2(H5E_DEFAULT);
    if (w.msg[0]) {
        memcpy(kept_msg, w.msg, sizeof kept_msg);
        kept_is_errno = w.is_errno;
    }
}

/* the cause of a failure outside HDF5 (an injected one, a copy, a rename),
 * for the next store_i_h5_error */
void store_i_keep_errno(int err)
{
    snprintf(kept_msg, sizeof kept_msg, "%s", strerror(err));
    kept_is_errno = true;
}

/* rl_error_set with " (HDF5: innermost message)" appended when HDF5 has one
 * (on its stack, or kept by store_i_h5_keep / store_i_keep_errno), or
 * " (No space left on device)" when that is a failed system call's; clears
 * both. */
__attribute__((format(printf, 2, 3)))
int store_i_h5_error(int status, const char *fmt, ...)
{
    char head[512];
    struct walk_ctx w = { { 0 }, false };
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(head, sizeof head, fmt, ap);
    va_end(ap);
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, walk_cb, &w);
    H5Eclear2(H5E_DEFAULT);
    if (!w.msg[0]) {
        memcpy(w.msg, kept_msg, sizeof w.msg);
        w.is_errno = kept_is_errno;
    }
    kept_msg[0] = '\0';
    if (w.msg[0])
        return rl_error_set(status, "%s (%s%s)", head, w.is_errno ? "" : "HDF5: ", w.msg);
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

struct store *store_new(const char *path)
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

void store_i_close_handles(struct store *s)
{
    for (int i = 0; i < N_TRAIN; i++) close_id(&s->train[i]);
    for (int i = 0; i < N_EVAL; i++)  close_id(&s->eval[i]);
    for (int i = 0; i < N_CKPT; i++)  close_id(&s->ckpt[i]);
}

int store_close(struct store *s)
{
    return store_i_close(s, true);
}

/* store_close; report false: a failure of the close is not recorded (the
 * caller is failing already and keeps its own message) */
int store_i_close(struct store *s, bool report)
{
    int rc = RL_OK;

    if (!s)
        return RL_OK;
    store_i_h5_quiet();
    store_i_close_handles(s);
    if (s->file >= 0) {
        /* a writer's close writes what is cached: a write like any other;
         * a reader's failing close loses nothing and is not reported */
        bool writer = s->mode != MODE_READ;
        if ((writer && store_i_fault()) || (H5Fclose(s->file) < 0 && writer))
            rc = report ? store_i_h5_error(RL_ERR_WRITE, "%s: cannot close (what was written since the last "
                                           "flush is lost)", s->path)
                        : RL_ERR_WRITE;
        s->file = -1;        /* a failed close is not retried, nor at exit */
    }
    H5Eclear2(H5E_DEFAULT);
    store_i_discard_work(s);
    free(s->path);
    free(s);
    return rc;
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
hid_t store_i_file_open_lock(const char *path, unsigned flags, bool create, bool clear_flags, bool lock,
                     char why[192])
{
    struct walk_ctx w = { { 0 }, false };
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

hid_t store_i_file_open(const char *path, unsigned flags, bool create, bool clear_flags, char why[192])
{
    return store_i_file_open_lock(path, flags, create, clear_flags, true, why);
}

/* ------------------------------------------------------ objects and checks */

/* Does `path` resolve through hard links only (no soft or external links)?
 * 1 yes, 0 no. Walks the components, so a missing parent is "no", not an
 * error. */
int store_i_obj_exists(hid_t file, const char *path)
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
H5I_type_t store_i_obj_kind(hid_t file, const char *path)
{
    if (!store_i_obj_exists(file, path))
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

/* Open dataset `path` checking its type class (and element size, when
 * elsize != 0), its rank (0 = scalar) and, where want != NULL, each
 * dimension (ANY_DIM = any). dims (rank entries) receives the extent. A
 * SWMR reader refreshes the dataset first. RL_ERR_FORMAT naming the object
 * on any mismatch. */
int store_i_ds_open(struct store *s, const char *path, H5T_class_t cls, size_t elsize,
            int rank, const hsize_t *want, hsize_t *dims, hid_t *out)
{
    hid_t d = -1, t = -1, sp = -1;
    int rc = RL_OK;

    *out = -1;
    if (store_i_obj_kind(s->file, path) != H5I_DATASET)
        return rl_error_set(RL_ERR_FORMAT, "%s: %s: missing (no dataset of that name)", s->path, path);
    if ((d = H5Dopen2(s->file, path, H5P_DEFAULT)) < 0)
        return store_i_h5_error(RL_ERR_FORMAT, "%s: %s: cannot open the dataset", s->path, path);
    if (s->swmr_read && H5Drefresh(d) < 0) {
        rc = store_i_h5_error(RL_ERR_FORMAT, "%s: %s: cannot refresh the dataset", s->path, path);
        goto done;
    }
    if ((t = H5Dget_type(d)) < 0 || (sp = H5Dget_space(d)) < 0) {
        rc = store_i_h5_error(RL_ERR_FORMAT, "%s: %s: unreadable type or dataspace", s->path, path);
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
            rc = store_i_h5_error(RL_ERR_FORMAT, "%s: %s: unreadable dimensions", s->path, path);
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
int store_i_attr_open(struct store *s, const char *obj, const char *name, H5T_class_t cls, hid_t *out,
              hid_t *type_out)
{
    hid_t a = -1, t = -1, sp = -1;
    int rc = RL_OK;

    *out = -1;
    if (store_i_obj_kind(s->file, obj) == H5I_BADID)
        return rl_error_set(RL_ERR_FORMAT, "%s: %s: missing (looking for its attribute %s)", s->path, obj, name);
    htri_t ex = H5Aexists_by_name(s->file, obj, name, H5P_DEFAULT);
    if (ex <= 0) {
        H5Eclear2(H5E_DEFAULT);
        return rl_error_set(RL_ERR_FORMAT, "%s: %s: no attribute %s", s->path, obj, name);
    }
    if ((a = H5Aopen_by_name(s->file, obj, name, H5P_DEFAULT, H5P_DEFAULT)) < 0)
        return store_i_h5_error(RL_ERR_FORMAT, "%s: %s: cannot open attribute %s", s->path, obj, name);
    if ((t = H5Aget_type(a)) < 0 || (sp = H5Aget_space(a)) < 0) {
        rc = store_i_h5_error(RL_ERR_FORMAT, "%s: %s: attribute %s: unreadable type or dataspace", s->path, obj, name);
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
int store_i_read_string(struct store *s, hid_t id, hid_t t, bool is_attr, const char *what, char **out)
{
    int rc = RL_OK;
    hid_t mt = -1;

    *out = NULL;
    if (H5Tis_variable_str(t) > 0) {
        char *v = NULL;
        /* HDF5 trusts the global heap it reads the string from */
        if ((rc = store_i_check_heaps(s)))
            return rc;
        if ((mt = H5Tcopy(H5T_C_S1)) < 0 || H5Tset_size(mt, H5T_VARIABLE) < 0 ||
            H5Tset_cset(mt, H5Tget_cset(t)) < 0)
            rc = store_i_h5_error(RL_ERR, "%s: %s: string type", s->path, what);
        else if ((is_attr ? H5Aread(id, mt, &v) : H5Dread(id, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, &v)) < 0)
            rc = store_i_h5_error(RL_ERR_FORMAT, "%s: %s: cannot read the string", s->path, what);
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
            rc = store_i_h5_error(RL_ERR, "%s: %s: string type", s->path, what);
        else if ((is_attr ? H5Aread(id, mt, v) : H5Dread(id, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, v)) < 0)
            rc = store_i_h5_error(RL_ERR_FORMAT, "%s: %s: cannot read the string", s->path, what);
        if (rc == RL_OK)
            *out = v;
        else
            free(v);
    }
    if (mt >= 0)
        H5Tclose(mt);
    return rc;
}
