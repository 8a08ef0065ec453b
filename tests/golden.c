/*
 * golden.c: the golden-file reader (format in golden.h).
 *
 * Two passes over the bytes read into memory: the first validates every
 * header against what is left and totals names and floats, so the second
 * allocates once per category and copies without further checks.
 */
#include "golden.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/status.h"

static const unsigned char golden_magic[4] = { 'R', 'L', 'G', 'T' };

/* a cursor over the file's bytes */
struct cursor {
    const unsigned char *p;
    size_t left;
};

static int take_u32(struct cursor *c, uint32_t *v)
{
    if (c->left < 4)
        return 0;
    *v = (uint32_t)c->p[0] | (uint32_t)c->p[1] << 8 | (uint32_t)c->p[2] << 16 |
         (uint32_t)c->p[3] << 24;
    c->p += 4;
    c->left -= 4;
    return 1;
}

static float le_float(const unsigned char *b)
{
    uint32_t u = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
                 (uint32_t)b[3] << 24;
    float f;

    memcpy(&f, &u, sizeof(f));
    return f;
}

/* read the whole file (at most GOLDEN_MAX_BYTES) into a fresh buffer */
static int read_file(const char *path, unsigned char **buf, size_t *size)
{
    FILE *f = fopen(path, "rb");
    long end;
    unsigned char *b;

    *buf = NULL;
    *size = 0;
    if (!f)
        return rl_error_set(RL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (fseek(f, 0, SEEK_END) != 0 || (end = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return rl_error_set(RL_ERR_IO, "%s: cannot seek", path);
    }
    if ((unsigned long)end > GOLDEN_MAX_BYTES) {
        fclose(f);
        return rl_error_set(RL_ERR_FORMAT, "%s: %ld bytes, more than the %zu a golden file may have",
                            path, end, GOLDEN_MAX_BYTES);
    }
    b = xmalloc((size_t)end + 1);
    if (fread(b, 1, (size_t)end, f) != (size_t)end) {
        free(b);
        fclose(f);
        return rl_error_set(RL_ERR_IO, "%s: short read", path);
    }
    fclose(f);
    *buf = b;
    *size = (size_t)end;
    return RL_OK;
}

/* One tensor header: checks it against the bytes left and leaves the cursor
 * after the data. Sets *name, *name_len, *ndim, dims, *n, *data. */
static int parse_one(struct cursor *c, const char *path, size_t index,
                     const unsigned char **name, size_t *name_len,
                     size_t *ndim, size_t dims[GOLDEN_MAX_DIMS], size_t *n,
                     const unsigned char **data)
{
    uint32_t len, nd, d;
    size_t count = 1, bytes;

    if (!take_u32(c, &len))
        return rl_error_set(RL_ERR_FORMAT, "%s: tensor %zu: file ends before its name length",
                            path, index);
    if (len == 0 || len > GOLDEN_MAX_NAME)
        return rl_error_set(RL_ERR_FORMAT, "%s: tensor %zu: name length %u not in [1, %d]",
                            path, index, len, GOLDEN_MAX_NAME);
    if (len > c->left)
        return rl_error_set(RL_ERR_FORMAT, "%s: tensor %zu: name of %u bytes, only %zu left",
                            path, index, len, c->left);
    *name = c->p;
    *name_len = len;
    if (memchr(c->p, '\0', len))
        return rl_error_set(RL_ERR_FORMAT, "%s: tensor %zu: name contains a NUL byte", path, index);
    c->p += len;
    c->left -= len;

    if (!take_u32(c, &nd))
        return rl_error_set(RL_ERR_FORMAT, "%s: tensor %zu (%.*s): file ends before ndim",
                            path, index, (int)len, (const char *)*name);
    if (nd > GOLDEN_MAX_DIMS)
        return rl_error_set(RL_ERR_FORMAT, "%s: tensor %zu (%.*s): ndim %u, at most %d",
                            path, index, (int)len, (const char *)*name, nd, GOLDEN_MAX_DIMS);
    *ndim = nd;
    for (uint32_t i = 0; i < nd; i++) {
        if (!take_u32(c, &d))
            return rl_error_set(RL_ERR_FORMAT, "%s: tensor %zu (%.*s): file ends inside its dims",
                                path, index, (int)len, (const char *)*name);
        dims[i] = d;
        if (!size_mul_ok(count, d, &count))
            return rl_error_set(RL_ERR_FORMAT, "%s: tensor %zu (%.*s): element count overflows",
                                path, index, (int)len, (const char *)*name);
    }
    if (!size_mul_ok(count, sizeof(float), &bytes) || bytes > c->left)
        return rl_error_set(RL_ERR_FORMAT,
                            "%s: tensor %zu (%.*s): %zu elements need more than the %zu bytes left",
                            path, index, (int)len, (const char *)*name, count, c->left);
    *n = count;
    *data = c->p;
    c->p += bytes;
    c->left -= bytes;
    return RL_OK;
}

void golden_close(struct golden *g)
{
    free(g->path);
    free(g->t);
    free(g->data);
    free(g->names);
    memset(g, 0, sizeof(*g));
}

int golden_open(struct golden *g, const char *path, const char *hint)
{
    unsigned char *buf;
    size_t size, total_floats = 0, total_names = 0;
    uint32_t version, count;
    struct cursor c;
    int rc;

    memset(g, 0, sizeof(*g));
    rc = read_file(path, &buf, &size);
    if (rc != RL_OK)
        return rc;
    c.p = buf;
    c.left = size;

    /* header */
    if (size < 4 || memcmp(buf, golden_magic, 4) != 0) {
        rc = rl_error_set(RL_ERR_FORMAT, "%s: bad magic (not a golden tensor file)", path);
        goto out;
    }
    c.p += 4;
    c.left -= 4;
    if (!take_u32(&c, &version)) {
        rc = rl_error_set(RL_ERR_FORMAT, "%s: file ends before the version", path);
        goto out;
    }
    if (version != GOLDEN_VERSION) {
        rc = rl_error_set(RL_ERR_FORMAT, "%s: version %u, this reader wants %u\nHINT: regenerate with %s",
                          path, version, GOLDEN_VERSION, hint ? hint : "the tests/ref script that wrote it");
        goto out;
    }
    if (!take_u32(&c, &count)) {
        rc = rl_error_set(RL_ERR_FORMAT, "%s: file ends before the tensor count", path);
        goto out;
    }
    /* the smallest entry is 13 bytes (name length, 1-byte name, ndim, one float) */
    if (count > c.left / 13) {
        rc = rl_error_set(RL_ERR_FORMAT, "%s: %u tensors cannot fit in the %zu bytes left",
                          path, count, c.left);
        goto out;
    }

    /* pass 1: validate every entry, total names and floats */
    {
        struct cursor v = c;

        for (size_t i = 0; i < count; i++) {
            const unsigned char *name, *data;
            size_t name_len, ndim, dims[GOLDEN_MAX_DIMS], n;

            rc = parse_one(&v, path, i, &name, &name_len, &ndim, dims, &n, &data);
            if (rc != RL_OK)
                goto out;
            /* both bounded by the file size, so these cannot overflow */
            total_floats += n;
            total_names += name_len + 1;
        }
        if (v.left != 0) {
            rc = rl_error_set(RL_ERR_FORMAT, "%s: %zu bytes after the last of %u tensors",
                              path, v.left, count);
            goto out;
        }
    }

    /* pass 2: copy out; sizes are known good */
    g->path = xstrdup(path);
    g->count = count;
    g->t = xcalloc(count ? count : 1, sizeof(*g->t));
    g->data = xmalloc_array(total_floats ? total_floats : 1, sizeof(float));
    g->names = xmalloc(total_names ? total_names : 1);
    {
        float *fp = g->data;
        char *np = g->names;

        for (size_t i = 0; i < count; i++) {
            struct golden_tensor *t = &g->t[i];
            const unsigned char *name, *data;
            size_t name_len;

            rc = parse_one(&c, path, i, &name, &name_len, &t->ndim, t->dims, &t->n, &data);
            RL_ASSERT(rc == RL_OK);
            memcpy(np, name, name_len);
            np[name_len] = '\0';
            t->name = np;
            np += name_len + 1;
            for (size_t j = 0; j < t->n; j++)
                fp[j] = le_float(data + 4 * j);
            t->data = fp;
            fp += t->n;
            /* names are unique (count is small, quadratic is fine) */
            for (size_t k = 0; k < i; k++)
                if (strcmp(g->t[k].name, t->name) == 0) {
                    rc = rl_error_set(RL_ERR_FORMAT, "%s: tensor name '%s' appears twice",
                                      path, t->name);
                    goto out;
                }
        }
    }
    rc = RL_OK;

out:
    free(buf);
    if (rc != RL_OK)
        golden_close(g);
    return rc;
}

const struct golden_tensor *golden_find(const struct golden *g, const char *name)
{
    for (size_t i = 0; i < g->count; i++)
        if (strcmp(g->t[i].name, name) == 0)
            return &g->t[i];
    return NULL;
}

/* "(2,5,16)" into buf */
static const char *shape_str(char *buf, size_t cap, size_t ndim, const size_t *dims)
{
    size_t used = 0;

    buf[0] = '\0';
    used += (size_t)snprintf(buf, cap, "(");
    for (size_t i = 0; i < ndim && used < cap; i++)
        used += (size_t)snprintf(buf + used, cap - used, i ? ",%zu" : "%zu", dims[i]);
    if (used < cap)
        snprintf(buf + used, cap - used, ")");
    return buf;
}

const float *golden_get(const struct golden *g, const char *name,
                        size_t ndim, const size_t *dims)
{
    const struct golden_tensor *t = golden_find(g, name);
    char want[128], have[128];
    int same;

    if (!t) {
        rl_error_set(RL_ERR_FORMAT, "%s: no tensor named '%s'", g->path ? g->path : "?", name);
        return NULL;
    }
    same = t->ndim == ndim;
    for (size_t i = 0; same && i < ndim; i++)
        same = t->dims[i] == dims[i];
    if (!same) {
        rl_error_set(RL_ERR_FORMAT, "%s: tensor '%s' has shape %s, expected %s", g->path, name,
                     shape_str(have, sizeof(have), t->ndim, t->dims),
                     shape_str(want, sizeof(want), ndim, dims));
        return NULL;
    }
    return t->data;
}
