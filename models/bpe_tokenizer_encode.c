/*
 * bpe_tokenizer_encode.c: text -> ids for byte-level BPE (bpe_tokenizer.h,
 * steps 1-7): UTF-8 repair, cutting out added tokens, NFC (ICU), the
 * pre-tokenizers as a recursion over their stages, BPE per piece with a
 * min-heap of candidate merges in tokenizers' order, and the template ids.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <unicode/unorm2.h>
#include <unicode/ustring.h>

#include "core/alloc.h"
#include "core/status.h"
#include "core/utf8.h"
#include "models/bpe_tokenizer_impl.h"

struct merge_ent { int32_t rank, pos, id; };

/* one call's state: the ids so far and the per-piece work arrays */
struct enc {
    const struct bpe_tokenizer *t;
    int32_t *ids;
    size_t n, cap;
    int32_t *sym, *prev, *next;
    struct merge_ent *heap;
    size_t nheap, wcap;
    char *mapped;                    /* ignore_merges: the piece as symbols */
    pcre2_match_data *md;
};

static void push_id(struct enc *e, int32_t id)
{
    if (e->n == e->cap) {
        e->cap = e->cap ? 2 * e->cap : 64;
        e->ids = xrealloc_array(e->ids, e->cap, sizeof(*e->ids));
    }
    e->ids[e->n++] = id;
}

/* ------------------------------------------------------------------ BPE */

static bool ent_less(const struct merge_ent *a, const struct merge_ent *b)
{
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static void heap_push(struct enc *e, int32_t rank, int32_t pos, int32_t id)
{
    struct merge_ent x = { rank, pos, id };
    size_t i = e->nheap++;

    while (i > 0 && ent_less(&x, &e->heap[(i - 1) / 2])) {
        e->heap[i] = e->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    e->heap[i] = x;
}

static struct merge_ent heap_pop(struct enc *e)
{
    struct merge_ent top = e->heap[0], last = e->heap[--e->nheap];
    size_t i = 0;

    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= e->nheap)
            break;
        if (c + 1 < e->nheap && ent_less(&e->heap[c + 1], &e->heap[c]))
            c++;
        if (!ent_less(&e->heap[c], &last))
            break;
        e->heap[i] = e->heap[c];
        i = c;
    }
    if (e->nheap)
        e->heap[i] = last;
    return top;
}

static void push_pair(struct enc *e, int32_t pos)
{
    const struct mslot *m;

    if (pos < 0 || e->next[pos] < 0)
        return;
    m = tok_merge_get(e->t->tab, e->sym[pos], e->sym[e->next[pos]]);
    if (m)
        heap_push(e, m->rank, pos, m->id);
}

static void reserve(struct enc *e, size_t n)
{
    if (n <= e->wcap)
        return;
    e->wcap = n > 2 * e->wcap ? n : 2 * e->wcap;
    e->sym = xrealloc_array(e->sym, e->wcap, sizeof(*e->sym));
    e->prev = xrealloc_array(e->prev, e->wcap, sizeof(*e->prev));
    e->next = xrealloc_array(e->next, e->wcap, sizeof(*e->next));
    e->heap = xrealloc_array(e->heap, e->wcap, 3 * sizeof(*e->heap));
    e->mapped = xrealloc_array(e->mapped, e->wcap, 2);
}

/* One piece of n >= 1 bytes, as tokenizers' Word::merge_all: pop the
 * lowest (rank, position); skip it if its left symbol is gone, has no right
 * neighbour, or the pair there no longer merges into the same id; else
 * merge and queue the pairs with both new neighbours. At most 3n entries. */
static void bpe_piece(struct enc *e, const uint8_t *s, size_t n)
{
    const struct bpe_tokenizer *t = e->t;

    reserve(e, n);
    if (t->ignore_merges) {
        size_t m = 0;
        int32_t whole;
        for (size_t i = 0; i < n; i++) {
            size_t k = strlen(t->tab->byte_sym[s[i]]);
            memcpy(e->mapped + m, t->tab->byte_sym[s[i]], k);
            m += k;
        }
        whole = tok_vocab_get(t->tab, e->mapped, m);
        if (whole >= 0) {
            push_id(e, whole);
            return;
        }
    }
    for (size_t i = 0; i < n; i++) {
        e->sym[i] = t->byte_id[s[i]];
        e->prev[i] = (int32_t)i - 1;
        e->next[i] = i + 1 < n ? (int32_t)(i + 1) : -1;
    }
    e->nheap = 0;
    for (size_t i = 0; i + 1 < n; i++)
        push_pair(e, (int32_t)i);
    while (e->nheap) {
        struct merge_ent top = heap_pop(e);
        int32_t p = top.pos, q = e->next[p];
        const struct mslot *m;

        if (e->sym[p] < 0 || q < 0)
            continue;
        m = tok_merge_get(t->tab, e->sym[p], e->sym[q]);
        if (!m || m->id != top.id)
            continue;                                  /* expired entry */
        e->sym[p] = top.id;
        e->sym[q] = -1;
        e->next[p] = e->next[q];
        if (e->next[q] >= 0)
            e->prev[e->next[q]] = p;
        push_pair(e, e->prev[p]);
        push_pair(e, p);
    }
    for (int32_t p = 0; p >= 0; p = e->next[p])
        push_id(e, e->sym[p]);
}

/* ------------------------------------------------------------------ pre-tokenizers */

static int pretokenize(struct enc *e, int stage, const char *s, size_t n);

/* the pieces of s by the stage's pattern: gaps always, matches when kept;
 * an empty match only cuts */
static int split_regex(struct enc *e, int stage, const char *s, size_t n)
{
    const struct bpe_pretok *p = &e->t->pre[stage];
    size_t pos = 0, last = 0;
    int rc = RL_OK;

    while (pos <= n && rc == RL_OK) {
        int mr = pcre2_match(p->re, (PCRE2_SPTR)s, n, pos, PCRE2_NO_UTF_CHECK, e->md, e->t->mctx);
        PCRE2_SIZE *ov;
        size_t b, end;

        if (mr == PCRE2_ERROR_NOMATCH)
            break;
        if (mr < 0) {
            PCRE2_UCHAR msg[120];
            pcre2_get_error_message(mr, msg, sizeof msg);
            return rl_error_set(RL_ERR_ARG, "tokenizer: the pre-tokenizer's regex gave up on "
                                "this text (PCRE2: %s)", (const char *)msg);
        }
        ov = pcre2_get_ovector_pointer(e->md);
        b = ov[0];
        end = ov[1];
        if (b < last || end < b || end > n)           /* \K tricks: not a plain match */
            return rl_error_set(RL_ERR_ARG, "tokenizer: the pre-tokenizer's regex matched "
                                "outside its subject");
        rc = pretokenize(e, stage + 1, s + last, b - last);
        if (rc == RL_OK && p->keep_matches)
            rc = pretokenize(e, stage + 1, s + b, end - b);
        last = end;
        pos = end;
        if (end == b) {                                /* empty: step over one character */
            if (pos == n)
                break;
            pos++;
            while (pos < n && ((uint8_t)s[pos] & 0xC0) == 0x80)
                pos++;
        }
    }
    if (rc == RL_OK)
        rc = pretokenize(e, stage + 1, s + last, n - last);
    return rc;
}

static int pretokenize(struct enc *e, int stage, const char *s, size_t n)
{
    const struct bpe_pretok *p;
    char *buf = NULL;
    int rc;

    if (n == 0)
        return RL_OK;                                  /* empty pieces are dropped */
    if (stage == e->t->n_pre) {
        bpe_piece(e, (const uint8_t *)s, n);
        return RL_OK;
    }
    p = &e->t->pre[stage];
    if (p->kind == BPE_PRE_BYTELEVEL && p->add_prefix_space && s[0] != ' ') {
        buf = xmalloc(n + 1);
        buf[0] = ' ';
        memcpy(buf + 1, s, n);
        s = buf;
        n++;
    }
    rc = p->re ? split_regex(e, stage, s, n) : pretokenize(e, stage + 1, s, n);
    free(buf);
    return rc;
}

/* ------------------------------------------------------------------ normalizer */

/* NFC of s[0..n) (valid UTF-8) in a new buffer */
int bpe_nfc(const char *s, size_t n, char **out, size_t *on)
{
    UErrorCode err = U_ZERO_ERROR;
    const UNormalizer2 *nf = unorm2_getNFCInstance(&err);
    UChar *u, *v = NULL;
    int32_t ul = 0, vl, ol = 0;

    if (U_FAILURE(err))
        return rl_error_set(RL_ERR, "tokenizer: ICU has no NFC normalizer (%s)", u_errorName(err));
    u = xmalloc_array(n + 1, sizeof(*u));
    u_strFromUTF8(u, (int32_t)n + 1, &ul, s, (int32_t)n, &err);
    if (U_SUCCESS(err) && !unorm2_isNormalized(nf, u, ul, &err) && U_SUCCESS(err)) {
        vl = unorm2_normalize(nf, u, ul, NULL, 0, &err);     /* preflight */
        err = U_ZERO_ERROR;
        v = xmalloc_array((size_t)vl + 1, sizeof(*v));
        unorm2_normalize(nf, u, ul, v, vl + 1, &err);
        free(u);
        u = v;
        ul = vl;
    }
    if (U_SUCCESS(err)) {
        u_strToUTF8(NULL, 0, &ol, u, ul, &err);              /* preflight */
        if (err == U_BUFFER_OVERFLOW_ERROR)
            err = U_ZERO_ERROR;
    }
    if (U_FAILURE(err)) {
        free(u);
        return rl_error_set(RL_ERR, "tokenizer: NFC failed (ICU: %s)", u_errorName(err));
    }
    *out = xmalloc((size_t)ol + 1);
    u_strToUTF8(*out, ol + 1, NULL, u, ul, &err);
    free(u);
    *on = (size_t)ol;
    return RL_OK;
}

/* ------------------------------------------------------------------ added tokens */

/* Unicode White_Space (Rust's char::is_whitespace, the regex crate's \s) */
static bool white_space(uint32_t c)
{
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

/* the code point starting at s[i] (valid UTF-8) and its length */
static uint32_t cp_at(const char *s, size_t n, size_t i, size_t *len)
{
    size_t k = 1;
    uint32_t c;

    while (i + k < n && ((uint8_t)s[i + k] & 0xC0) == 0x80)
        k++;
    tok_utf8_decode((const uint8_t *)s + i, k, &c);
    *len = k;
    return c;
}

/* start of the character that ends at s[i] (i > 0) */
static size_t cp_before(const char *s, size_t i)
{
    do
        i--;
    while (i > 0 && ((uint8_t)s[i] & 0xC0) == 0x80);
    return i;
}

static bool word_char_at(const struct bpe_tokenizer *t, struct enc *e, const char *s, size_t n,
                         size_t i)
{
    size_t k;

    cp_at(s, n, i, &k);
    return pcre2_match(t->re_word, (PCRE2_SPTR)s + i, k, 0, PCRE2_ANCHORED | PCRE2_NO_UTF_CHECK,
                       e->md, NULL) >= 0;
}

/* the longest added token of this pass (normalized or not) at s[i], or NULL */
static const struct bpe_added *added_at(const struct bpe_tokenizer *t, bool normalized,
                                        const char *s, size_t n, size_t i)
{
    const struct bpe_added *best = NULL;

    if (!(t->added_first[(uint8_t)s[i]] & (normalized ? 2 : 1)))
        return NULL;
    for (size_t k = 0; k < t->n_added; k++) {
        const struct bpe_added *a = &t->added[k];
        if (a->normalized == normalized && a->len <= n - i && (!best || a->len > best->len) &&
            memcmp(s + i, a->match, a->len) == 0)
            best = a;
    }
    return best;
}

static int normalize_piece(struct enc *e, const char *s, size_t n);

/* tokenizers' AddedVocabulary::find_matches over s, then the pieces
 * between matches go on: to the normalizer (first pass) or the
 * pre-tokenizers (second pass, on normalized text) */
static int split_added(struct enc *e, bool normalized, const char *s, size_t n)
{
    const struct bpe_tokenizer *t = e->t;
    size_t i = 0, done = 0;
    int rc = RL_OK;

    while (i < n && rc == RL_OK) {
        const struct bpe_added *a = added_at(t, normalized, s, n, i);
        size_t start = i, stop, k;

        if (!a) {
            i++;
            continue;
        }
        stop = i + a->len;
        i = stop;                                    /* the next search starts after the match */
        if (a->single_word &&
            ((start > 0 && word_char_at(t, e, s, n, cp_before(s, start))) ||
             (stop < n && word_char_at(t, e, s, n, stop))))
            continue;
        if (a->lstrip) {
            while (start > 0) {
                size_t b = cp_before(s, start);
                if (!white_space(cp_at(s, n, b, &k)))
                    break;
                start = b;
            }
            if (start < done)
                start = done;
        }
        if (a->rstrip)
            while (stop < n && white_space(cp_at(s, n, stop, &k)))
                stop += k;
        if (start > done)
            rc = normalized ? pretokenize(e, 0, s + done, start - done)
                            : normalize_piece(e, s + done, start - done);
        push_id(e, a->id);
        done = stop;
    }
    if (rc == RL_OK && done < n)
        rc = normalized ? pretokenize(e, 0, s + done, n - done) : normalize_piece(e, s + done, n - done);
    return rc;
}

static int normalize_piece(struct enc *e, const char *s, size_t n)
{
    char *norm = NULL;
    int rc;

    if (n == 0)
        return RL_OK;
    if (e->t->nfc) {
        if ((rc = bpe_nfc(s, n, &norm, &n)) != RL_OK)
            return rc;
        s = norm;
    }
    rc = e->t->any_normalized ? split_added(e, true, s, n) : pretokenize(e, 0, s, n);
    free(norm);
    return rc;
}

/* ------------------------------------------------------------------ encode */

/* text with each maximal invalid UTF-8 subpart replaced by U+FFFD */
static char *repair_utf8(const char *text, size_t len, size_t *out_len)
{
    uint32_t *cp = xmalloc_array(len + 1, sizeof(*cp));
    size_t m = tok_utf8_decode((const uint8_t *)text, len, cp), o = 0;
    char *out = xmalloc_array(len + 1, 3);

    for (size_t k = 0; k < m; k++)
        o += (size_t)tok_utf8_put(cp[k], out + o);
    free(cp);
    *out_len = o;
    return out;
}

int bpe_encode(const struct bpe_tokenizer *t, const char *text, size_t len, bool add_special,
               int32_t **ids, size_t *n)
{
    struct enc e = { .t = t };
    char *fixed = NULL;
    int rc;

    *ids = NULL;
    *n = 0;
    if (len > BPE_MAX_TEXT_BYTES)
        return rl_error_set(RL_ERR_ARG, "a text of %zu bytes is longer than the tokenizer's "
                            "limit of %zu bytes", len, BPE_MAX_TEXT_BYTES);
    if (!utf8_valid((const unsigned char *)text, len))
        text = fixed = repair_utf8(text, len, &len);
    e.md = pcre2_match_data_create(16, NULL);
    RL_ASSERT(e.md != NULL);
    for (int k = 0; add_special && k < t->n_prefix; k++)
        push_id(&e, t->prefix[k]);
    rc = t->n_added ? split_added(&e, false, text, len) : normalize_piece(&e, text, len);
    for (int k = 0; add_special && k < t->n_suffix; k++)
        push_id(&e, t->suffix[k]);
    pcre2_match_data_free(e.md);
    free(e.sym);
    free(e.prev);
    free(e.next);
    free(e.heap);
    free(e.mapped);
    free(fixed);
    if (rc != RL_OK) {
        free(e.ids);
        return rc;
    }
    *ids = e.ids;
    *n = e.n;
    return RL_OK;
}
