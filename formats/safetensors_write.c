/*
 * safetensors_write.c: the safetensors writer: tensors (float32 data
 * stored as F32, F16 or BF16) and __metadata__ pairs collected, then laid
 * out as the reference writer does and written to memory or to a file
 * through a temporary file and rename(). See safetensors.h for ownership.
 */
#include "formats/safetensors.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/status.h"
#include "formats/safetensors_impl.h"

/* ------------------------------------------------------------------------ */
/* writer                                                                    */

struct wtensor {
    char *name;
    const float *data;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    size_t numel;
    enum st_dtype dtype;
    size_t offset;
};

struct st_writer {
    struct wtensor *t;
    size_t n, cap;
    char **mkey, **mval;
    size_t n_meta, cap_meta;
};

struct st_writer *st_writer_new(void)
{
    return xcalloc(1, sizeof(struct st_writer));
}

void st_writer_free(struct st_writer *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->n; i++)
        free(w->t[i].name);
    free(w->t);
    for (size_t i = 0; i < w->n_meta; i++) {
        free(w->mkey[i]);
        free(w->mval[i]);
    }
    free(w->mkey);
    free(w->mval);
    free(w);
}

int st_writer_add(struct st_writer *w, const char *name, const float *data,
                  int ndim, const int64_t *shape, enum st_dtype dtype)
{
    size_t numel = 1, bytes;

    if (!name || !*name || strcmp(name, "__metadata__") == 0 ||
        !st_utf8_valid((const unsigned char *)name, strlen(name)))
        return rl_error_set(RL_ERR_ARG, "safetensors writer: invalid tensor name '%s'",
                            name ? name : "(null)");
    if (dtype != ST_F32 && dtype != ST_F16 && dtype != ST_BF16)
        return rl_error_set(RL_ERR_ARG, "safetensors writer: tensor '%s': dtype %s not "
                            "supported for writing (F32, F16, BF16)", name, st_dtype_name(dtype));
    if (ndim < 0 || ndim > ST_MAX_DIMS || (ndim > 0 && !shape))
        return rl_error_set(RL_ERR_ARG, "safetensors writer: tensor '%s': bad ndim %d",
                            name, ndim);
    for (int i = 0; i < ndim; i++)
        if (shape[i] < 0 || (uint64_t)shape[i] > SIZE_MAX ||
            !size_mul_ok(numel, (size_t)shape[i], &numel))
            return rl_error_set(RL_ERR_ARG, "safetensors writer: tensor '%s': bad shape",
                                name);
    if (!size_mul_ok(numel, sizeof(float), &bytes) || (numel && !data))
        return rl_error_set(RL_ERR_ARG, "safetensors writer: tensor '%s': %s", name,
                            numel ? "no data" : "size overflows");
    for (size_t i = 0; i < w->n; i++)
        if (strcmp(w->t[i].name, name) == 0)
            return rl_error_set(RL_ERR_ARG, "safetensors writer: tensor '%s' added twice",
                                name);
    if (w->n == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 16;
        w->t = xrealloc_array(w->t, w->cap, sizeof(*w->t));
    }
    struct wtensor *t = &w->t[w->n++];
    memset(t, 0, sizeof(*t));
    t->name = xstrdup(name);
    t->data = data;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        t->shape[i] = shape[i];
    t->numel = numel;
    t->dtype = dtype;
    return RL_OK;
}

int st_writer_set_metadata(struct st_writer *w, const char *key, const char *value)
{
    if (!key || !value || !st_utf8_valid((const unsigned char *)key, strlen(key)) ||
        !st_utf8_valid((const unsigned char *)value, strlen(value)))
        return rl_error_set(RL_ERR_ARG, "safetensors writer: metadata key and value must be "
                            "UTF-8 strings");
    for (size_t i = 0; i < w->n_meta; i++) {
        if (strcmp(w->mkey[i], key) == 0) {
            free(w->mval[i]);
            w->mval[i] = xstrdup(value);
            return RL_OK;
        }
    }
    if (w->n_meta == w->cap_meta) {
        w->cap_meta = w->cap_meta ? 2 * w->cap_meta : 4;
        w->mkey = xrealloc_array(w->mkey, w->cap_meta, sizeof(char *));
        w->mval = xrealloc_array(w->mval, w->cap_meta, sizeof(char *));
    }
    w->mkey[w->n_meta] = xstrdup(key);
    w->mval[w->n_meta] = xstrdup(value);
    w->n_meta++;
    return RL_OK;
}

/* growable string */
struct sbuf {
    char *s;
    size_t n, cap;
};

static void sb_put(struct sbuf *b, const char *s, size_t n)
{
    if (b->cap - b->n < n + 1) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap - b->n < n + 1)
            cap *= 2;
        b->s = xrealloc_array(b->s, cap, 1);
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = '\0';
}

static void sb_puts(struct sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_printf(struct sbuf *b, const char *fmt, unsigned long long v)
{
    char tmp[32];
    int k = snprintf(tmp, sizeof tmp, fmt, v);

    sb_put(b, tmp, (size_t)k);
}

static void sb_json_string(struct sbuf *b, const char *s)
{
    sb_puts(b, "\"");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            sb_put(b, e, 2);
        } else if (c < 0x20) {
            sb_printf(b, "\\u%04llx", c);
        } else {
            sb_put(b, (const char *)&c, 1);
        }
    }
    sb_puts(b, "\"");
}

/* the reference writer's order: dtype descending (alignment), then name */
static int cmp_wt(const void *a, const void *b)
{
    const struct wtensor *x = *(const struct wtensor *const *)a;
    const struct wtensor *y = *(const struct wtensor *const *)b;

    if (x->dtype != y->dtype)
        return x->dtype > y->dtype ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* Build the padded header and the data order; returns total file size. */
static int build(const struct st_writer *w, struct sbuf *hdr, struct wtensor ***order,
                 size_t *total)
{
    struct wtensor **o = xcalloc(w->n ? w->n : 1, sizeof(*o));
    size_t pos = 0;

    for (size_t i = 0; i < w->n; i++)
        o[i] = &w->t[i];
    qsort(o, w->n, sizeof(*o), cmp_wt);

    sb_puts(hdr, "{");
    if (w->n_meta) {
        /* metadata keys sorted, for a deterministic header */
        size_t *idx = xcalloc(w->n_meta, sizeof(size_t));
        for (size_t i = 0; i < w->n_meta; i++)
            idx[i] = i;
        for (size_t i = 1; i < w->n_meta; i++)          /* insertion sort: few keys */
            for (size_t j = i; j > 0 && strcmp(w->mkey[idx[j - 1]], w->mkey[idx[j]]) > 0; j--) {
                size_t tmp = idx[j];
                idx[j] = idx[j - 1];
                idx[j - 1] = tmp;
            }
        sb_puts(hdr, "\"__metadata__\":{");
        for (size_t i = 0; i < w->n_meta; i++) {
            if (i)
                sb_puts(hdr, ",");
            sb_json_string(hdr, w->mkey[idx[i]]);
            sb_puts(hdr, ":");
            sb_json_string(hdr, w->mval[idx[i]]);
        }
        sb_puts(hdr, "}");
        free(idx);
    }
    for (size_t i = 0; i < w->n; i++) {
        struct wtensor *t = o[i];
        size_t nbytes;
        if (!size_mul_ok(t->numel, st_dtype_size(t->dtype), &nbytes) ||
            !size_add_ok(pos, nbytes, &nbytes)) {
            free(o);
            return rl_error_set(RL_ERR_ARG, "safetensors writer: total size overflows");
        }
        t->offset = pos;
        if (i || w->n_meta)
            sb_puts(hdr, ",");
        sb_json_string(hdr, t->name);
        sb_puts(hdr, ":{\"dtype\":\"");
        sb_puts(hdr, st_dtype_name(t->dtype));
        sb_puts(hdr, "\",\"shape\":[");
        for (int d = 0; d < t->ndim; d++)
            sb_printf(hdr, d ? ",%llu" : "%llu", (unsigned long long)t->shape[d]);
        sb_puts(hdr, "],\"data_offsets\":[");
        sb_printf(hdr, "%llu,", (unsigned long long)pos);
        sb_printf(hdr, "%llu]}", (unsigned long long)nbytes);
        pos = nbytes;
    }
    sb_puts(hdr, "}");
    while (hdr->n % 8)                                   /* the reference's alignment */
        sb_puts(hdr, " ");
    if (hdr->n > ST_MAX_HEADER_SIZE || !size_add_ok(8 + hdr->n, pos, total)) {
        free(o);
        return rl_error_set(RL_ERR_ARG, "safetensors writer: header of %zu bytes too large",
                            hdr->n);
    }
    *order = o;
    return RL_OK;
}

/* Convert n floats of t from element `at` into dst as t->dtype. */
static void encode(const struct wtensor *t, size_t at, size_t n, uint8_t *dst)
{
    const float *x = t->data + at;

    if (t->dtype == ST_F32) {
        memcpy(dst, x, n * sizeof(float));
        return;
    }
    for (size_t i = 0; i < n; i++) {
        uint16_t h = t->dtype == ST_F16 ? st_f32_to_f16(x[i]) : st_f32_to_bf16(x[i]);
        memcpy(dst + 2 * i, &h, 2);
    }
}

static void put_len(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

int st_writer_write_memory(const struct st_writer *w, void **buf, size_t *size)
{
    struct sbuf hdr = {0};
    struct wtensor **o = NULL;
    size_t total;
    int rc;

    *buf = NULL;
    *size = 0;
    if ((rc = build(w, &hdr, &o, &total)) != RL_OK) {
        free(hdr.s);
        return rc;
    }
    uint8_t *p = xmalloc(total);
    put_len(p, hdr.n);
    memcpy(p + 8, hdr.s, hdr.n);
    uint8_t *d = p + 8 + hdr.n;
    for (size_t i = 0; i < w->n; i++)
        encode(o[i], 0, o[i]->numel, d + o[i]->offset);
    free(o);
    free(hdr.s);
    *buf = p;
    *size = total;
    return RL_OK;
}

int st_writer_write(const struct st_writer *w, const char *path)
{
    struct sbuf hdr = {0};
    struct wtensor **o = NULL;
    size_t total;
    int rc;

    if ((rc = build(w, &hdr, &o, &total)) != RL_OK) {
        free(hdr.s);
        return rc;
    }
    size_t tlen = strlen(path) + 32;
    char *tmp = xmalloc(tlen);
    snprintf(tmp, tlen, "%s.tmp.%ld", path, (long)getpid());
    FILE *fp = fopen(tmp, "wb");
    if (!fp) {
        rc = rl_error_set(RL_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
        goto out;
    }
    uint8_t len[8];
    put_len(len, hdr.n);
    bool ok = fwrite(len, 1, 8, fp) == 8 && fwrite(hdr.s, 1, hdr.n, fp) == hdr.n;
    enum { CHUNK = 4096 };
    uint8_t *chunk = xmalloc(CHUNK * sizeof(float));
    for (size_t i = 0; ok && i < w->n; i++) {
        const struct wtensor *t = o[i];
        size_t es = st_dtype_size(t->dtype);
        for (size_t at = 0; ok && at < t->numel; at += CHUNK) {
            size_t k = t->numel - at < CHUNK ? t->numel - at : CHUNK;
            encode(t, at, k, chunk);
            ok = fwrite(chunk, es, k, fp) == k;
        }
    }
    free(chunk);
    if (ok)
        ok = fflush(fp) == 0 && fsync(fileno(fp)) == 0;
    int e = errno;
    if (fclose(fp) != 0 && ok) {
        ok = false;
        e = errno;
    }
    if (!ok) {
        remove(tmp);
        rc = rl_error_set(RL_ERR_IO, "%s: write failed: %s", path, strerror(e));
        goto out;
    }
    if (rename(tmp, path) != 0) {
        e = errno;
        remove(tmp);
        rc = rl_error_set(RL_ERR_IO, "%s: cannot rename %s into place: %s", path, tmp,
                          strerror(e));
    }
out:
    free(tmp);
    free(o);
    free(hdr.s);
    return rc;
}
