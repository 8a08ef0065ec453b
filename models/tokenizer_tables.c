/*
 * tokenizer_tables.c: the lookup tables of a BPE tokenizer (layout in
 * tokenizer_impl.h): the pool of token strings, the open-addressing
 * vocabulary table (token string -> id) and the merge table
 * ((left id, right id) -> (rank, merged id)). Filled by tokenizer_load.c,
 * read by tokenizer_encode.c.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/status.h"
#include "models/tokenizer_impl.h"

/* ------------------------------------------------------------------ string pool and vocabulary */

static uint32_t fnv1a(const char *s, size_t n)
{
    uint32_t h = 2166136261u;

    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

static size_t pool_add(struct tokenizer *t, const char *s, size_t n)
{
    size_t off = t->pool_len;

    if (t->pool_len + n + 1 > t->pool_cap) {
        size_t cap = t->pool_cap ? t->pool_cap : 4096;
        while (cap < t->pool_len + n + 1)
            cap *= 2;
        t->pool = xrealloc_array(t->pool, cap, 1);
        t->pool_cap = cap;
    }
    memcpy(t->pool + off, s, n);
    t->pool[off + n] = '\0';
    t->pool_len += n + 1;
    return off;
}

static struct vslot *vfind(const struct tokenizer *t, const char *s, size_t n, uint32_t h)
{
    size_t mask = t->vcap - 1;

    for (size_t i = h & mask;; i = (i + 1) & mask) {
        struct vslot *e = &t->vtab[i];
        if (e->off == UINT32_MAX)
            return e;
        if (e->hash == h && e->len == n && memcmp(t->pool + e->off, s, n) == 0)
            return e;
    }
}

int32_t tok_vocab_get(const struct tokenizer *t, const char *s, size_t n)
{
    const struct vslot *e;

    if (!t->vcap)
        return -1;
    e = vfind(t, s, n, fnv1a(s, n));
    return e->off == UINT32_MAX ? -1 : e->id;
}

static void vocab_grow(struct tokenizer *t)
{
    size_t old = t->vcap;
    struct vslot *otab = t->vtab;

    t->vcap = old ? old * 2 : 1024;
    t->vtab = xmalloc_array(t->vcap, sizeof(*t->vtab));
    for (size_t i = 0; i < t->vcap; i++)
        t->vtab[i].off = UINT32_MAX;
    for (size_t i = 0; i < old; i++)
        if (otab[i].off != UINT32_MAX)
            *vfind(t, t->pool + otab[i].off, otab[i].len, otab[i].hash) = otab[i];
    free(otab);
}

/* insert or overwrite (a repeated token keeps its last id, as Python's json) */
int tok_vocab_put(struct tokenizer *t, const char *s, size_t n, int32_t id, const char *file)
{
    struct vslot *e;
    uint32_t h = fnv1a(s, n);

    if ((t->vcount + 1) * 2 > t->vcap)
        vocab_grow(t);
    e = vfind(t, s, n, h);
    if (e->off == UINT32_MAX) {
        size_t off = pool_add(t, s, n);
        if (off + n >= UINT32_MAX)
            return rl_error_set(RL_ERR_FORMAT, "%s: vocabulary too large", file);
        e->off = (uint32_t)off;
        e->len = (uint32_t)n;
        e->hash = h;
        t->vcount++;
    }
    e->id = id;
    return RL_OK;
}

/* ------------------------------------------------------------------ merges */

static uint32_t pair_hash(int32_t a, int32_t b)
{
    uint64_t k = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;

    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return (uint32_t)k;
}

static struct mslot *mfind(const struct tokenizer *t, int32_t a, int32_t b)
{
    size_t mask = t->mcap - 1;

    for (size_t i = pair_hash(a, b) & mask;; i = (i + 1) & mask) {
        struct mslot *e = &t->mtab[i];
        if (e->a < 0 || (e->a == a && e->b == b))
            return e;
    }
}

void tok_merge_put(struct tokenizer *t, int32_t a, int32_t b, int32_t rank, int32_t id)
{
    struct mslot *e;

    if ((t->mcount + 1) * 2 > t->mcap) {
        size_t old = t->mcap;
        struct mslot *otab = t->mtab;
        t->mcap = old ? old * 2 : 1024;
        t->mtab = xmalloc_array(t->mcap, sizeof(*t->mtab));
        for (size_t i = 0; i < t->mcap; i++)
            t->mtab[i].a = -1;
        for (size_t i = 0; i < old; i++)
            if (otab[i].a >= 0)
                *mfind(t, otab[i].a, otab[i].b) = otab[i];
        free(otab);
    }
    e = mfind(t, a, b);
    if (e->a < 0)
        t->mcount++;
    e->a = a;
    e->b = b;
    e->rank = rank;                  /* a repeated pair keeps its last rank */
    e->id = id;
}

const struct mslot *tok_merge_get(const struct tokenizer *t, int32_t a, int32_t b)
{
    const struct mslot *e;

    if (!t->mcap)
        return NULL;
    e = mfind(t, a, b);
    return e->a < 0 ? NULL : e;
}
