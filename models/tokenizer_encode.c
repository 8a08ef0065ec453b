/*
 * tokenizer_encode.c: text -> ids and back (tokenizer.h steps 4-5 and the
 * framing): the pre-tokenisation loop over the regex matches, BPE per word
 * with a min-heap of candidate pairs, the framed rows (tok_encode*), the
 * unframed ids (tok_tokenize) and tok_decode.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/status.h"
#include "models/tokenizer_impl.h"

/* ------------------------------------------------------------------ encoding */

struct ivec { int32_t *v; size_t n, cap; };

static void ivec_push(struct ivec *a, int32_t x)
{
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 64;
        a->v = xrealloc_array(a->v, a->cap, sizeof(*a->v));
    }
    a->v[a->n++] = x;
}

struct hent { int32_t rank, pos, a, b; };

/* one word's work arrays, grown to the longest word seen (cap bytes) */
struct bpe_work {
    int32_t *sym, *nxt, *prv;
    struct hent *heap, *batch;
    size_t nheap, nbatch, cap;
};

static void work_reserve(struct bpe_work *w, size_t n)
{
    if (n <= w->cap)
        return;
    w->cap = n > 2 * w->cap ? n : 2 * w->cap;
    w->sym = xrealloc_array(w->sym, w->cap, sizeof(*w->sym));
    w->nxt = xrealloc_array(w->nxt, w->cap, sizeof(*w->nxt));
    w->prv = xrealloc_array(w->prv, w->cap, sizeof(*w->prv));
    free(w->heap);
    free(w->batch);
    w->heap = xmalloc_array(w->cap, 3 * sizeof(*w->heap));
    w->batch = xmalloc_array(w->cap, 3 * sizeof(*w->batch));
}

static void work_free(struct bpe_work *w)
{
    free(w->sym);
    free(w->nxt);
    free(w->prv);
    free(w->heap);
    free(w->batch);
}

static bool hless(const struct hent *x, const struct hent *y)
{
    return x->rank < y->rank || (x->rank == y->rank && x->pos < y->pos);
}

static void hpush(struct bpe_work *w, struct hent e)
{
    size_t i = w->nheap++;

    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!hless(&e, &w->heap[p]))
            break;
        w->heap[i] = w->heap[p];
        i = p;
    }
    w->heap[i] = e;
}

static struct hent hpop(struct bpe_work *w)
{
    struct hent top = w->heap[0], last = w->heap[--w->nheap];
    size_t i = 0, n = w->nheap;

    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && hless(&w->heap[c + 1], &w->heap[c]))
            c++;
        if (!hless(&w->heap[c], &last))
            break;
        w->heap[i] = w->heap[c];
        i = c;
    }
    if (n)
        w->heap[i] = last;
    return top;
}

static void push_pair(const struct tokenizer *t, struct bpe_work *w, int32_t pos)
{
    int32_t q = w->nxt[pos];
    const struct mslot *m;

    if (q < 0)
        return;
    m = tok_merge_get(t, w->sym[pos], w->sym[q]);
    if (m)
        hpush(w, (struct hent){ m->rank, pos, w->sym[pos], w->sym[q] });
}

/* BPE of one word of n >= 1 bytes; the heap holds at most 3n entries
 * (n - 1 initial pairs, two per merge). */
static void bpe_word(const struct tokenizer *t, struct bpe_work *w, const uint8_t *s, size_t n,
                     struct ivec *out)
{
    work_reserve(w, n);
    for (size_t i = 0; i < n; i++) {
        w->sym[i] = i + 1 < n ? t->byte_id[s[i]] : t->byte_end_id[s[i]];
        w->nxt[i] = i + 1 < n ? (int32_t)(i + 1) : -1;
        w->prv[i] = (int32_t)i - 1;
    }
    w->nheap = 0;
    for (size_t i = 0; i + 1 < n; i++)
        push_pair(t, w, (int32_t)i);
    while (w->nheap) {
        int32_t rank = w->heap[0].rank;
        /* every current occurrence of the best pair, in position order */
        w->nbatch = 0;
        while (w->nheap && w->heap[0].rank == rank)
            w->batch[w->nbatch++] = hpop(w);
        for (size_t k = 0; k < w->nbatch; k++) {
            const struct hent *e = &w->batch[k];
            int32_t p = e->pos, q;
            const struct mslot *m;
            if (w->sym[p] != e->a || (q = w->nxt[p]) < 0 || w->sym[q] != e->b)
                continue;                         /* stale: a symbol has been merged away */
            m = tok_merge_get(t, e->a, e->b);
            w->sym[p] = m->id;
            w->sym[q] = -1;
            w->nxt[p] = w->nxt[q];
            if (w->nxt[q] >= 0)
                w->prv[w->nxt[q]] = p;
            if (w->prv[p] >= 0)
                push_pair(t, w, w->prv[p]);
            push_pair(t, w, p);
        }
    }
    for (int32_t p = 0; p >= 0; p = w->nxt[p])
        ivec_push(out, w->sym[p]);
}


/* The words of the normalised text, in order, until out holds at least
 * limit ids (SIZE_MAX: all). Normalisation sees the whole text (its
 * clean-up and Final_Sigma look ahead); BPE then runs word by word, so its
 * work is the longest word, and a framed row stops after the words it
 * needs: the ids already out never change when more words follow. */
static void bpe_tokenize(const struct tokenizer *t, const char *text, size_t len, size_t limit,
                         struct ivec *out)
{
    size_t n, pos = 0;
    char *s = tok_normalize(t, text, len, &n);
    pcre2_match_data *md;
    struct bpe_work w = { 0 };

    if (n == 0) {
        free(s);
        return;
    }
    md = pcre2_match_data_create_from_pattern(t->re, NULL);
    RL_ASSERT(md != NULL);
    while (pos < n && out->n < limit) {
        int rc = pcre2_match(t->re, (PCRE2_SPTR)s, n, pos, PCRE2_NO_UTF_CHECK, md, NULL);
        PCRE2_SIZE *ov;
        size_t b, e;
        if (rc == PCRE2_ERROR_NOMATCH)
            break;
        RL_ASSERT(rc > 0);
        ov = pcre2_get_ovector_pointer(md);
        b = ov[0];
        e = ov[1];
        RL_ASSERT(e > b && e <= n);               /* no alternative matches the empty string */
        if (e - b == sizeof(TOK_SOT_STR) - 1 && memcmp(s + b, TOK_SOT_STR, e - b) == 0)
            ivec_push(out, t->sot);
        else if (e - b == sizeof(TOK_EOT_STR) - 1 && memcmp(s + b, TOK_EOT_STR, e - b) == 0)
            ivec_push(out, t->eot);
        else
            bpe_word(t, &w, (const uint8_t *)s + b, e - b, out);
        pos = e;
    }
    work_free(&w);
    pcre2_match_data_free(md);
    free(s);
}

/* at least limit ids of the text when it has them (all: SIZE_MAX) */
static void tokenize_into(const struct tokenizer *t, const char *text, size_t len, size_t limit,
                          struct ivec *out)
{
    if (t->kind == TOK_BYTES) {
        for (size_t i = 0; i < len && out->n < limit; i++)
            ivec_push(out, t->offset + (uint8_t)text[i]);
        return;
    }
    bpe_tokenize(t, text, len, limit, out);
}

int tok_tokenize(const struct tokenizer *t, const char *text, size_t len, int32_t **ids, size_t *n)
{
    struct ivec v = { 0 };

    tokenize_into(t, text, len, SIZE_MAX, &v);
    *ids = v.v;
    *n = v.n;
    return RL_OK;
}

int tok_encode_n(const struct tokenizer *t, const char *text, size_t len, int32_t *ids, int *eot_pos)
{
    struct ivec v = { 0 };
    size_t keep, ctx = (size_t)t->ctx;
    int rc = RL_OK;

    if (len > TOK_MAX_TEXT_BYTES)
        return rl_error_set(RL_ERR_ARG, "a text of %zu bytes is longer than the tokenizer's "
                            "limit of %zu bytes", len, (size_t)TOK_MAX_TEXT_BYTES);
    /* ctx - 2 ids fill the row; one more tells whether the text overflows */
    tokenize_into(t, text, len, ctx - 1, &v);
    keep = v.n;
    if (keep + 2 > ctx) {
        keep = ctx - 2;
        if (!t->truncate)
            rc = rl_error_set(RL_ERR_ARG, "text of more than %zu tokens does not fit the context "
                              "of %d (with start and end tokens)", keep, t->ctx);
    }
    ids[0] = t->sot;
    if (keep)
        memcpy(ids + 1, v.v, keep * sizeof(*ids));
    ids[keep + 1] = t->eot;
    for (size_t i = keep + 2; i < ctx; i++)
        ids[i] = t->pad;
    if (eot_pos) {
        size_t i = 0;
        while (ids[i] != t->eot)
            i++;
        *eot_pos = (int)i;
    }
    free(v.v);
    return rc;
}

int tok_encode(const struct tokenizer *t, const char *text, int32_t *ids, int *eot_pos)
{
    return tok_encode_n(t, text, strlen(text), ids, eot_pos);
}

int tok_encode_batch(const struct tokenizer *t, const char *const *texts, size_t n,
                     int32_t *ids, int *eot_pos)
{
    for (size_t i = 0; i < n; i++) {
        int rc = tok_encode(t, texts[i], ids + i * (size_t)t->ctx, eot_pos ? eot_pos + i : NULL);
        if (rc != RL_OK)
            return rl_error_prefix(rc, "text %zu", i);
    }
    return RL_OK;
}

/* ------------------------------------------------------------------ decoding */

static const struct dslot *dec_find(const struct tokenizer *t, int32_t id)
{
    size_t lo = 0, hi = t->ndec;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (t->dec[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < t->ndec && t->dec[lo].id == id ? &t->dec[lo] : NULL;
}

int tok_decode(const struct tokenizer *t, const int32_t *ids, size_t n, char **text, size_t *len)
{
    size_t cap = 64, o = 0;
    char *out = xmalloc(cap);

    for (size_t i = 0; i < n; i++) {
        const char *s;
        size_t sl, need;
        char one;
        const struct dslot *d = NULL;

        if (ids[i] == t->sot || ids[i] == t->eot) {
            s = ids[i] == t->sot ? TOK_SOT_STR : TOK_EOT_STR;
            sl = strlen(s);
        } else if (t->kind == TOK_BYTES) {
            if (ids[i] < t->offset || ids[i] > t->offset + 255) {
                free(out);
                return rl_error_set(RL_ERR_ARG, "tokenizer: id %d is not a byte id", (int)ids[i]);
            }
            one = (char)(uint8_t)(ids[i] - t->offset);
            s = &one;
            sl = 1;
        } else {
            d = dec_find(t, ids[i]);
            if (!d || d->len == 0) {
                free(out);
                return rl_error_set(RL_ERR_ARG, "tokenizer: id %d is not in the vocabulary",
                                    (int)ids[i]);
            }
            s = t->pool + d->off;
            sl = d->len;
        }
        need = o + sl + 2;
        if (need > cap) {
            while (cap < need)
                cap *= 2;
            out = xrealloc_array(out, cap, 1);
        }
        if (!d) {
            memcpy(out + o, s, sl);
            o += sl;
            continue;
        }
        /* token symbols back to bytes; a trailing </w> is a space */
        {
            bool eow = sl >= TOK_EOW_LEN && memcmp(s + sl - TOK_EOW_LEN, TOK_EOW, TOK_EOW_LEN) == 0;
            size_t end = eow ? sl - TOK_EOW_LEN : sl, j = 0;
            uint32_t cpbuf[1];
            while (j < end) {
                size_t step = 1;
                uint8_t c0 = (uint8_t)s[j];
                if (c0 >= 0xC0 && c0 < 0xE0 && j + 1 < end)
                    step = 2;
                else if (c0 >= 0xE0)
                    step = c0 >= 0xF0 ? 4 : 3;
                if (j + step > end)
                    step = end - j;
                tok_utf8_decode((const uint8_t *)s + j, step, cpbuf);
                if (cpbuf[0] < 0x144 && t->cp_byte[cpbuf[0]] >= 0)
                    out[o++] = (char)t->cp_byte[cpbuf[0]];
                else {                       /* not a byte symbol (an odd vocab entry): as is */
                    memcpy(out + o, s + j, step);
                    o += step;
                }
                j += step;
            }
            if (eow)
                out[o++] = ' ';
        }
    }
    out[o] = '\0';
    *text = out;
    if (len)
        *len = o;
    return RL_OK;
}
