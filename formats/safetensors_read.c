/*
 * safetensors_read.c: the safetensors reader: opening a file (read-only
 * mmap, or a borrowed memory image), parsing and validating the header as
 * hostile input, the lookups (tensors by name, __metadata__), and the
 * conversion of a tensor to float32. See safetensors.h for the checks and
 * ownership.
 */
#include "formats/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/alloc.h"
#include "core/status.h"
#include "formats/safetensors_impl.h"

/* ------------------------------------------------------------------------ */
/* helpers                                                                   */

/* A name from a hostile file, made safe to print: at most ~80 bytes,
 * control characters and quotes replaced by '?'. */
static const char *shown(char *buf, size_t cap, const char *s)
{
    size_t n = 0, i = 0;

    for (; s[i] && n + 1 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        buf[n++] = (c < 0x20 || c == 0x7f || c == '\'') ? '?' : (char)c;
    }
    if (s[i] && cap >= 4) {
        if (n > cap - 4)
            n = cap - 4;
        memcpy(buf + n, "...", 4);
    } else {
        buf[n] = '\0';
    }
    return buf;
}

#define SHOWN_CAP 96

static uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;

    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* ------------------------------------------------------------------------ */
/* reader                                                                    */

struct st_file {
    char *path;
    const uint8_t *base;          /* whole file image */
    size_t size;
    void *map;                    /* mmap'd (map_len bytes) or NULL */
    size_t map_len;
    void *owned;                  /* read() fallback buffer or NULL */
    const uint8_t *data;          /* data section */
    size_t data_len;
    size_t n;
    struct st_info *t;            /* sorted by name */
    size_t n_meta;
    char **meta_key, **meta_val;  /* sorted by key */
};

static int cmp_info_name(const void *a, const void *b)
{
    return strcmp(((const struct st_info *)a)->name, ((const struct st_info *)b)->name);
}

static int cmp_info_ptr_offset(const void *a, const void *b)
{
    const struct st_info *x = *(const struct st_info *const *)a;
    const struct st_info *y = *(const struct st_info *const *)b;
    size_t xe = x->offset + x->nbytes, ye = y->offset + y->nbytes;

    if (x->offset != y->offset)
        return x->offset < y->offset ? -1 : 1;
    if (xe != ye)
        return xe < ye ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* A JSON number that must be a non-negative integer no larger than 2^53
 * (above that a double cannot hold it exactly, and no file is that big). */
static int json_uint(const struct st_file *f, const char *tname, const char *field,
                     const cJSON *v, uint64_t *out)
{
    char sb[SHOWN_CAP];

    if (!cJSON_IsNumber(v))
        return rl_error_set(RL_ERR_FORMAT, "%s: tensor '%s': %s has a non-number entry",
                            f->path, shown(sb, sizeof sb, tname), field);
    double d = v->valuedouble;
    if (d < 0)
        return rl_error_set(RL_ERR_FORMAT, "%s: tensor '%s': %s has a negative entry %g",
                            f->path, shown(sb, sizeof sb, tname), field, d);
    if (!(d <= 0x1p53))
        return rl_error_set(RL_ERR_FORMAT, "%s: tensor '%s': %s entry %g is too large",
                            f->path, shown(sb, sizeof sb, tname), field, d);
    if (d != (double)(uint64_t)d)
        return rl_error_set(RL_ERR_FORMAT, "%s: tensor '%s': %s entry %g is not an integer",
                            f->path, shown(sb, sizeof sb, tname), field, d);
    *out = (uint64_t)d;
    return RL_OK;
}

/* The member named `key` of object `o`, or NULL; RL_ERR_FORMAT if it occurs twice. */
static int unique_member(const struct st_file *f, const char *tname, const cJSON *o,
                         const char *key, const cJSON **out)
{
    char sb[SHOWN_CAP];
    const cJSON *c;

    *out = NULL;
    cJSON_ArrayForEach(c, o) {
        if (c->string && strcmp(c->string, key) == 0) {
            if (*out)
                return rl_error_set(RL_ERR_FORMAT, "%s: tensor '%s': duplicate field \"%s\"",
                                    f->path, shown(sb, sizeof sb, tname), key);
            *out = c;
        }
    }
    return RL_OK;
}

static int parse_tensor(struct st_file *f, const cJSON *e, struct st_info *t)
{
    char sb[SHOWN_CAP];
    const char *nm = shown(sb, sizeof sb, e->string);
    const cJSON *dt, *shape, *offs;
    int rc;

    if (!cJSON_IsObject(e))
        return rl_error_set(RL_ERR_FORMAT, "%s: tensor '%s': entry is not a JSON object",
                            f->path, nm);
    if ((rc = unique_member(f, e->string, e, "dtype", &dt)) != RL_OK ||
        (rc = unique_member(f, e->string, e, "shape", &shape)) != RL_OK ||
        (rc = unique_member(f, e->string, e, "data_offsets", &offs)) != RL_OK)
        return rc;
    if (!dt || !shape || !offs)
        return rl_error_set(RL_ERR_FORMAT, "%s: tensor '%s': missing \"%s\"", f->path, nm,
                            !dt ? "dtype" : !shape ? "shape" : "data_offsets");

    if (!cJSON_IsString(dt))
        return rl_error_set(RL_ERR_FORMAT, "%s: tensor '%s': dtype is not a string", f->path, nm);
    int d = st_dtype_from_name(dt->valuestring);
    if (d < 0) {
        char db[SHOWN_CAP];
        return rl_error_set(RL_ERR_FORMAT,
                            "%s: tensor '%s': unknown or unsupported dtype \"%s\"", f->path, nm,
                            shown(db, sizeof db, dt->valuestring));
    }
    t->dtype = (enum st_dtype)d;

    if (!cJSON_IsArray(shape))
        return rl_error_set(RL_ERR_FORMAT, "%s: tensor '%s': shape is not an array", f->path, nm);
    int nd = cJSON_GetArraySize(shape);
    if (nd > ST_MAX_DIMS)
        return rl_error_set(RL_ERR_FORMAT, "%s: tensor '%s': shape has %d dimensions, at most %d",
                            f->path, nm, nd, ST_MAX_DIMS);
    t->ndim = nd;
    /* checked product in order, as the reference's try_fold(checked_mul) */
    size_t numel = 1, nbytes;
    bool overflow = false;
    int i = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, shape) {
        uint64_t v;
        if ((rc = json_uint(f, e->string, "shape", c, &v)) != RL_OK)
            return rc;
        t->shape[i++] = (int64_t)v;
        if (!overflow && !size_mul_ok(numel, (size_t)v, &numel))
            overflow = true;
    }
    if (overflow || !size_mul_ok(numel, st_dtype_size(t->dtype), &nbytes))
        return rl_error_set(RL_ERR_FORMAT, "%s: tensor '%s': shape size overflows", f->path, nm);
    t->numel = numel;
    t->nbytes = nbytes;

    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2)
        return rl_error_set(RL_ERR_FORMAT,
                            "%s: tensor '%s': data_offsets is not an array of two integers",
                            f->path, nm);
    uint64_t b, en;
    if ((rc = json_uint(f, e->string, "data_offsets", offs->child, &b)) != RL_OK ||
        (rc = json_uint(f, e->string, "data_offsets", offs->child->next, &en)) != RL_OK)
        return rc;
    if (b > en)
        return rl_error_set(RL_ERR_FORMAT,
                            "%s: tensor '%s': data_offsets [%llu, %llu] has begin > end",
                            f->path, nm, (unsigned long long)b, (unsigned long long)en);
    if (en > f->data_len)
        return rl_error_set(RL_ERR_FORMAT,
                            "%s: tensor '%s': data_offsets [%llu, %llu] out of bounds "
                            "(data section is %zu bytes)",
                            f->path, nm, (unsigned long long)b, (unsigned long long)en,
                            f->data_len);
    if (en - b != t->nbytes)
        return rl_error_set(RL_ERR_FORMAT,
                            "%s: tensor '%s': data_offsets [%llu, %llu] span %llu bytes but "
                            "%s shape needs %zu",
                            f->path, nm, (unsigned long long)b, (unsigned long long)en,
                            (unsigned long long)(en - b), st_dtype_name(t->dtype), t->nbytes);
    t->offset = (size_t)b;
    t->name = xstrdup(e->string);
    return RL_OK;
}

static int cmp_str_ptr(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int parse_metadata(struct st_file *f, const cJSON *m)
{
    char sb[SHOWN_CAP];
    const cJSON *c;
    size_t n = 0;

    if (cJSON_IsNull(m))
        return RL_OK;
    if (!cJSON_IsObject(m))
        return rl_error_set(RL_ERR_FORMAT, "%s: __metadata__ is not a JSON object", f->path);
    cJSON_ArrayForEach(c, m) {
        if (!cJSON_IsString(c))
            return rl_error_set(RL_ERR_FORMAT, "%s: __metadata__ value of '%s' is not a string",
                                f->path, shown(sb, sizeof sb, c->string));
        n++;
    }
    /* pairs are stored key, value adjacent so one sort keeps them together */
    char **kv = xcalloc(n ? n : 1, 2 * sizeof(char *));
    size_t i = 0;
    cJSON_ArrayForEach(c, m) {
        kv[2 * i] = xstrdup(c->string);
        kv[2 * i + 1] = xstrdup(c->valuestring);
        i++;
    }
    qsort(kv, n, 2 * sizeof(char *), cmp_str_ptr);
    f->meta_key = xcalloc(n ? n : 1, sizeof(char *));
    f->meta_val = xcalloc(n ? n : 1, sizeof(char *));
    for (i = 0; i < n; i++) {
        f->meta_key[i] = kv[2 * i];
        f->meta_val[i] = kv[2 * i + 1];
    }
    f->n_meta = n;
    free(kv);
    for (i = 1; i < n; i++)
        if (strcmp(f->meta_key[i - 1], f->meta_key[i]) == 0)
            return rl_error_set(RL_ERR_FORMAT, "%s: __metadata__ key '%s' appears twice",
                                f->path, shown(sb, sizeof sb, f->meta_key[i]));
    return RL_OK;
}

static int parse(struct st_file *f)
{
    char sa[SHOWN_CAP], sb[SHOWN_CAP];

    if (f->size < 8)
        return rl_error_set(RL_ERR_FORMAT,
                            "%s: file is %zu bytes, too short for a safetensors header",
                            f->path, f->size);
    uint64_t hlen = le64(f->base);
    if (hlen > ST_MAX_HEADER_SIZE)
        return rl_error_set(RL_ERR_FORMAT,
                            "%s: header length %llu exceeds the limit of %u bytes "
                            "(not a safetensors file?)",
                            f->path, (unsigned long long)hlen, ST_MAX_HEADER_SIZE);
    if (hlen > f->size - 8)
        return rl_error_set(RL_ERR_FORMAT,
                            "%s: header length %llu runs past the end of the file (%zu bytes)",
                            f->path, (unsigned long long)hlen, f->size);
    const char *hdr = (const char *)f->base + 8;
    size_t hn = (size_t)hlen;
    f->data = f->base + 8 + hn;
    f->data_len = f->size - 8 - hn;

    if (hn == 0 || hdr[0] != '{')
        return rl_error_set(RL_ERR_FORMAT, "%s: header does not start with '{'", f->path);
    for (size_t i = 0; i < hn; i++) {
        unsigned char c = (unsigned char)hdr[i];
        if (c < 0x20 && c != '\t' && c != '\n' && c != '\r')
            return rl_error_set(RL_ERR_FORMAT,
                                "%s: header has a control byte 0x%02x at offset %zu",
                                f->path, c, i);
    }
    if (!st_utf8_valid((const unsigned char *)hdr, hn))
        return rl_error_set(RL_ERR_FORMAT, "%s: header is not valid UTF-8", f->path);

    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(hdr, hn, &end, 0);
    if (!root) {
        size_t at = (end && end >= hdr && end <= hdr + hn) ? (size_t)(end - hdr) : 0;
        return rl_error_set(RL_ERR_FORMAT, "%s: header is not valid JSON (near byte %zu of %zu)",
                            f->path, at, hn);
    }
    int rc = RL_OK;
    for (const char *p = end; p < hdr + hn; p++) {
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            rc = rl_error_set(RL_ERR_FORMAT, "%s: trailing bytes after the header JSON",
                              f->path);
            goto out;
        }
    }
    if (!cJSON_IsObject(root)) {
        rc = rl_error_set(RL_ERR_FORMAT, "%s: header is not a JSON object", f->path);
        goto out;
    }

    size_t n = 0;
    const cJSON *c, *meta = NULL;
    cJSON_ArrayForEach(c, root) {
        if (!c->string) {
            rc = rl_error_set(RL_ERR_FORMAT, "%s: header entry without a name", f->path);
            goto out;
        }
        if (strcmp(c->string, "__metadata__") == 0) {
            if (meta) {
                rc = rl_error_set(RL_ERR_FORMAT, "%s: __metadata__ appears twice", f->path);
                goto out;
            }
            meta = c;
        } else {
            n++;
        }
    }
    if (meta && (rc = parse_metadata(f, meta)) != RL_OK)
        goto out;

    f->t = xcalloc(n ? n : 1, sizeof(*f->t));
    cJSON_ArrayForEach(c, root) {
        if (c == meta)
            continue;
        if ((rc = parse_tensor(f, c, &f->t[f->n])) != RL_OK)
            goto out;
        f->n++;
    }

    qsort(f->t, n, sizeof(*f->t), cmp_info_name);
    for (size_t i = 1; i < n; i++) {
        if (strcmp(f->t[i - 1].name, f->t[i].name) == 0) {
            rc = rl_error_set(RL_ERR_FORMAT, "%s: tensor '%s' appears twice", f->path,
                              shown(sa, sizeof sa, f->t[i].name));
            goto out;
        }
    }

    /* Metadata::validate: sorted by offset, contiguous from 0 to the end */
    const struct st_info **byoff = xcalloc(n ? n : 1, sizeof(*byoff));
    for (size_t i = 0; i < n; i++)
        byoff[i] = &f->t[i];
    qsort(byoff, n, sizeof(*byoff), cmp_info_ptr_offset);
    size_t pos = 0;
    for (size_t i = 0; i < n && rc == RL_OK; i++) {
        const struct st_info *t = byoff[i];
        if (t->offset < pos)
            rc = rl_error_set(RL_ERR_FORMAT, "%s: tensors '%s' and '%s' overlap at byte %zu",
                              f->path, shown(sa, sizeof sa, byoff[i - 1]->name),
                              shown(sb, sizeof sb, t->name), t->offset);
        else if (t->offset > pos)
            rc = rl_error_set(RL_ERR_FORMAT,
                              "%s: gap in the data section: bytes %zu..%zu belong to no tensor "
                              "(before '%s')",
                              f->path, pos, t->offset, shown(sa, sizeof sa, t->name));
        pos = t->offset + t->nbytes;
    }
    free(byoff);
    if (rc == RL_OK && pos != f->data_len)
        rc = rl_error_set(RL_ERR_FORMAT,
                          "%s: data section is %zu bytes but the tensors cover %zu "
                          "(truncated or trailing bytes)",
                          f->path, f->data_len, pos);
out:
    cJSON_Delete(root);
    return rc;
}

void st_close(struct st_file *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->n; i++)
        free((char *)f->t[i].name);
    free(f->t);
    for (size_t i = 0; i < f->n_meta; i++) {
        free(f->meta_key[i]);
        free(f->meta_val[i]);
    }
    free(f->meta_key);
    free(f->meta_val);
    if (f->map)
        munmap(f->map, f->map_len);
    free(f->owned);
    free(f->path);
    free(f);
}

static int finish_open(struct st_file **out, struct st_file *f)
{
    int rc = parse(f);

    if (rc != RL_OK) {
        st_close(f);
        return rc;
    }
    *out = f;
    return RL_OK;
}

int st_open_memory(struct st_file **out, const void *data, size_t size, const char *name)
{
    struct st_file *f = xcalloc(1, sizeof(*f));

    *out = NULL;
    f->path = xstrdup(name ? name : "<memory>");
    f->base = data;
    f->size = data ? size : 0;
    return finish_open(out, f);
}

int st_open(struct st_file **out, const char *path)
{
    struct st_file *f;
    struct stat sbuf;
    int fd;

    *out = NULL;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return rl_error_set(RL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (fstat(fd, &sbuf) != 0) {
        int e = errno;
        close(fd);
        return rl_error_set(RL_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(sbuf.st_mode)) {
        close(fd);
        return rl_error_set(RL_ERR_IO, "%s: not a regular file", path);
    }
    if ((uint64_t)sbuf.st_size > SIZE_MAX) {
        close(fd);
        return rl_error_set(RL_ERR_IO, "%s: file too large to map", path);
    }
    f = xcalloc(1, sizeof(*f));
    f->path = xstrdup(path);
    f->size = (size_t)sbuf.st_size;
    if (f->size >= 8) {
        void *m = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m != MAP_FAILED) {
            f->map = m;
            f->map_len = f->size;
            f->base = m;
        } else {                                       /* fall back to read() */
            uint8_t *buf = malloc(f->size);
            size_t got = 0;
            if (!buf) {
                close(fd);
                st_close(f);
                return rl_error_set(RL_ERR_NOMEM, "%s: cannot map or allocate %zu bytes",
                                    path, (size_t)sbuf.st_size);
            }
            f->owned = buf;
            while (got < f->size) {
                ssize_t r = read(fd, buf + got, f->size - got);
                if (r < 0 && errno == EINTR)
                    continue;
                if (r <= 0) {
                    int e = errno;
                    close(fd);
                    st_close(f);
                    return rl_error_set(RL_ERR_IO, "%s: read failed: %s", path,
                                        r < 0 ? strerror(e) : "unexpected end of file");
                }
                got += (size_t)r;
            }
            f->base = buf;
        }
    }
    close(fd);
    return finish_open(out, f);
}

const char *st_path(const struct st_file *f) { return f->path; }
size_t st_count(const struct st_file *f) { return f->n; }

const struct st_info *st_info_at(const struct st_file *f, size_t i)
{
    return i < f->n ? &f->t[i] : NULL;
}

const struct st_info *st_find(const struct st_file *f, const char *name)
{
    struct st_info key = {.name = name};

    if (f->n == 0)
        return NULL;
    return bsearch(&key, f->t, f->n, sizeof(*f->t), cmp_info_name);
}

size_t st_metadata_count(const struct st_file *f) { return f->n_meta; }

void st_metadata_at(const struct st_file *f, size_t i, const char **key, const char **value)
{
    *key = i < f->n_meta ? f->meta_key[i] : NULL;
    *value = i < f->n_meta ? f->meta_val[i] : NULL;
}

const char *st_metadata_get(const struct st_file *f, const char *key)
{
    if (f->n_meta == 0)
        return NULL;
    const char *const *k = bsearch(&key, f->meta_key, f->n_meta, sizeof(char *), cmp_str_ptr);

    return k ? f->meta_val[k - (const char *const *)f->meta_key] : NULL;
}

const void *st_data(const struct st_file *f, const struct st_info *t)
{
    return f->data + t->offset;
}

#define CONVERT(T, EXPR)                                  \
    do {                                                  \
        for (size_t i = 0; i < n; i++) {                  \
            T v;                                          \
            memcpy(&v, p + i * sizeof(T), sizeof(T));     \
            out[i] = (EXPR);                              \
        }                                                 \
    } while (0)

int st_read_f32(const struct st_file *f, const struct st_info *t, float *out)
{
    const uint8_t *p = f->data + t->offset;
    size_t n = t->numel;
    char sb[SHOWN_CAP];

    switch (t->dtype) {
    case ST_F32:  if (n) memcpy(out, p, n * sizeof(float)); break;
    case ST_F16:  CONVERT(uint16_t, st_f16_to_f32(v)); break;
    case ST_BF16: CONVERT(uint16_t, st_bf16_to_f32(v)); break;
    case ST_F64:  CONVERT(double, (float)v); break;
    case ST_BOOL: CONVERT(uint8_t, v ? 1.0f : 0.0f); break;
    case ST_U8:   CONVERT(uint8_t, (float)v); break;
    case ST_I8:   CONVERT(int8_t, (float)v); break;
    case ST_I16:  CONVERT(int16_t, (float)v); break;
    case ST_U16:  CONVERT(uint16_t, (float)v); break;
    case ST_I32:  CONVERT(int32_t, (float)v); break;
    case ST_U32:  CONVERT(uint32_t, (float)v); break;
    case ST_I64:  CONVERT(int64_t, (float)v); break;
    case ST_U64:  CONVERT(uint64_t, (float)v); break;
    default:
        return rl_error_set(RL_ERR_FORMAT,
                            "%s: tensor '%s' has dtype %s, which cannot be read as float32",
                            f->path, shown(sb, sizeof sb, t->name), st_dtype_name(t->dtype));
    }
    return RL_OK;
}

static void format_shape(char *buf, size_t cap, int ndim, const int64_t *shape)
{
    size_t n = 0;

    n += (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (n < cap)
        snprintf(buf + n, cap - n, "]");
}

int st_load_f32(const struct st_file *f, const char *name, int ndim, const int64_t *shape,
                float *out)
{
    const struct st_info *t = st_find(f, name);
    char sb[SHOWN_CAP];

    if (!t)
        return rl_error_set(RL_ERR_FORMAT, "%s: tensor '%s' not found", f->path,
                            shown(sb, sizeof sb, name));
    bool same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++)
        same = t->shape[i] == shape[i];
    if (!same) {
        char got[256], want[256];
        format_shape(got, sizeof got, t->ndim, t->shape);
        format_shape(want, sizeof want, ndim, shape);
        return rl_error_set(RL_ERR_FORMAT, "%s: tensor '%s' has shape %s, expected %s", f->path,
                            shown(sb, sizeof sb, name), got, want);
    }
    int rc = st_read_f32(f, t, out);
    if (rc != RL_OK)
        return rc;
    /* weights: a NaN or an infinity would make every output NaN */
    for (size_t i = 0; i < t->numel; i++)
        if (!isfinite(out[i]))
            return rl_error_set(RL_ERR_FORMAT, "%s: tensor '%s' has a non-finite value (%g) at "
                                "element %zu; weights must be finite", f->path,
                                shown(sb, sizeof sb, name), (double)out[i], i);
    return RL_OK;
}

