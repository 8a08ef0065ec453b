/*
 * tokenizer.c: CLIP byte-level BPE and the byte-level tokenizer (see
 * tokenizer.h for the behaviour and the reference it follows).
 *
 * Layout: token strings live in one pool; a string -> id open-addressing
 * table serves the vocabulary, a (left id, right id) -> (rank, merged id)
 * table the merges. BPE runs per word on a linked list of symbols with a
 * min-heap of candidate pairs ordered by (rank, position); all entries of
 * the lowest rank are taken at once and merged left to right, which is the
 * reference's "merge every occurrence of the best pair, then look again"
 * in O(n log n) instead of its O(n^2) (a long hostile word stays cheap).
 */
#include "models/tokenizer.h"

#include <errno.h>
#include <limits.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <wctype.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <cjson/cJSON.h>

#include "core/alloc.h"
#include "core/status.h"

#define TOK_MAX_FILE (256u << 20)   /* vocab/merges/tokenizer.json size limit */
#define EOW "</w>"
#define EOW_LEN 4

static const char SOT_STR[] = "<|startoftext|>";
static const char EOT_STR[] = "<|endoftext|>";

/* The reference regex, \s written out as White_Space (what Python's `regex`
 * module matches for \s; PCRE2's UCP \s would add U+180E). */
static const char PATTERN[] =
    "<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|"
    "[^\\t\\n\\x0b\\f\\r \\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}"
    "\\x{202f}\\x{205f}\\x{3000}\\p{L}\\p{N}]+";

struct vslot { uint32_t off, len, hash; int32_t id; };         /* off == UINT32_MAX: empty */
struct mslot { int32_t a, b, rank, id; };                       /* a < 0: empty */
struct dslot { int32_t id; uint32_t off, len, seq; };

struct tokenizer {
    enum tok_kind kind;
    int ctx;
    int32_t pad;
    bool truncate;
    int32_t sot, eot, vocab_size;
    int32_t offset;                  /* TOK_BYTES */

    /* TOK_BPE */
    char *pool;
    size_t pool_len, pool_cap;
    struct vslot *vtab;
    size_t vcap, vcount;
    struct mslot *mtab;
    size_t mcap, mcount;
    struct dslot *dec;
    size_t ndec;
    int32_t byte_id[256], byte_end_id[256];
    char byte_sym[256][3];           /* UTF-8 of bytes_to_unicode(b), NUL-terminated */
    int16_t cp_byte[0x144];          /* inverse map, -1 where none */
    pcre2_code *re, *re_cased, *re_ignorable;
    locale_t loc;
};

/* ------------------------------------------------------------------ small helpers */

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

static int32_t vocab_get(const struct tokenizer *t, const char *s, size_t n)
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
static int vocab_put(struct tokenizer *t, const char *s, size_t n, int32_t id, const char *file)
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

static void merge_put(struct tokenizer *t, int32_t a, int32_t b, int32_t rank, int32_t id)
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

static const struct mslot *merge_get(const struct tokenizer *t, int32_t a, int32_t b)
{
    const struct mslot *e;

    if (!t->mcap)
        return NULL;
    e = mfind(t, a, b);
    return e->a < 0 ? NULL : e;
}

static int utf8_put(uint32_t c, char *o)
{
    if (c < 0x80) {
        o[0] = (char)c;
        return 1;
    }
    if (c < 0x800) {
        o[0] = (char)(0xC0 | (c >> 6));
        o[1] = (char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        o[0] = (char)(0xE0 | (c >> 12));
        o[1] = (char)(0x80 | ((c >> 6) & 0x3F));
        o[2] = (char)(0x80 | (c & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (c >> 18));
    o[1] = (char)(0x80 | ((c >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((c >> 6) & 0x3F));
    o[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

/* UTF-8 -> code points, each maximal invalid subpart -> U+FFFD (the Unicode
 * "substitution of maximal subparts" practice Python's errors="replace"
 * follows). out has room for n code points; returns the count. */
static size_t utf8_decode(const uint8_t *s, size_t n, uint32_t *out)
{
    size_t i = 0, k = 0;

    while (i < n) {
        uint8_t c = s[i];
        uint32_t cp;
        int need;
        uint8_t lo = 0x80, hi = 0xBF;

        if (c < 0x80) {
            out[k++] = c;
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) {
            need = 1;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            cp = c & 0x0F;
            if (c == 0xE0) lo = 0xA0;
            if (c == 0xED) hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            cp = c & 0x07;
            if (c == 0xF0) lo = 0x90;
            if (c == 0xF4) hi = 0x8F;
        } else {
            out[k++] = 0xFFFD;
            i++;
            continue;
        }
        i++;
        for (int j = 0; j < need; j++, i++) {
            if (i >= n || s[i] < lo || s[i] > hi) {
                cp = 0xFFFD;
                need = -1;
                break;
            }
            cp = (cp << 6) | (s[i] & 0x3F);
            lo = 0x80;
            hi = 0xBF;
        }
        out[k++] = need < 0 ? 0xFFFD : cp;
    }
    return k;
}

/* Python's str.isspace() */
static bool py_isspace(uint32_t c)
{
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
           c == 0x202F || c == 0x205F || c == 0x3000;
}

/* the reference regex's \s: Unicode White_Space */
static bool re_isspace(uint32_t c)
{
    return py_isspace(c) && !(c >= 0x1C && c <= 0x1F);
}

static bool cp_matches(const pcre2_code *re, uint32_t c)
{
    char buf[4];
    int n = utf8_put(c, buf);
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    int rc;

    if (!md)
        return false;
    rc = pcre2_match(re, (PCRE2_SPTR)buf, (PCRE2_SIZE)n, 0, PCRE2_ANCHORED | PCRE2_NO_UTF_CHECK,
                     md, NULL);
    pcre2_match_data_free(md);
    return rc > 0;
}

/* Python's Final_Sigma rule for U+03A3 at cp[i] */
static uint32_t lower_sigma(const struct tokenizer *t, const uint32_t *cp, size_t n, size_t i)
{
    size_t j = i;
    bool final;

    while (j > 0 && cp_matches(t->re_ignorable, cp[j - 1]))
        j--;
    final = j > 0 && cp_matches(t->re_cased, cp[j - 1]);
    if (final) {
        j = i + 1;
        while (j < n && cp_matches(t->re_ignorable, cp[j]))
            j++;
        final = j == n || !cp_matches(t->re_cased, cp[j]);
    }
    return final ? 0x3C2 : 0x3C3;
}

/* ------------------------------------------------------------------ file reading */

static int read_whole(const char *path, char **buf, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    struct stat sb;
    char *p;
    size_t n;

    if (!fp)
        return rl_error_set(RL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (fstat(fileno(fp), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(fp);
        return rl_error_set(RL_ERR_IO, "%s: not a regular file", path);
    }
    if ((unsigned long long)sb.st_size > TOK_MAX_FILE) {
        fclose(fp);
        return rl_error_set(RL_ERR_FORMAT, "%s: %lld bytes, at most %u accepted", path,
                            (long long)sb.st_size, TOK_MAX_FILE);
    }
    n = (size_t)sb.st_size;
    p = xmalloc(n + 1);
    if (n && fread(p, 1, n, fp) != n) {
        free(p);
        fclose(fp);
        return rl_error_set(RL_ERR_IO, "%s: read failed", path);
    }
    fclose(fp);
    p[n] = '\0';
    *buf = p;
    *len = n;
    return RL_OK;
}

static int parse_json(const char *path, const char *buf, size_t len, cJSON **out)
{
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(buf, len + 1, &end, 1);   /* buf[len] is NUL; no trailing garbage */

    if (!root) {
        size_t line = 1, col = 1;
        for (const char *p = buf; end && p < end && p < buf + len; p++) {
            if (*p == '\n') {
                line++;
                col = 1;
            } else {
                col++;
            }
        }
        return rl_error_set(RL_ERR_FORMAT, "%s:%zu:%zu: malformed JSON", path, line, col);
    }
    *out = root;
    return RL_OK;
}

/* ------------------------------------------------------------------ loading */

static struct tokenizer *tok_alloc(enum tok_kind kind)
{
    struct tokenizer *t = xcalloc(1, sizeof(*t));

    t->kind = kind;
    t->ctx = TOK_CLIP_CONTEXT;
    t->pad = 0;
    t->truncate = true;
    return t;
}

static void bytes_to_unicode(struct tokenizer *t)
{
    int n = 0;

    for (int i = 0; i < 0x144; i++)
        t->cp_byte[i] = -1;
    for (int b = 0; b < 256; b++) {
        bool kept = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        uint32_t cp = kept ? (uint32_t)b : (uint32_t)(256 + n++);
        int k = utf8_put(cp, t->byte_sym[b]);
        t->byte_sym[b][k] = '\0';
        t->cp_byte[cp] = (int16_t)b;
    }
}

static int load_vocab(struct tokenizer *t, const cJSON *obj, const char *file, const char *what)
{
    const cJSON *e;

    if (!cJSON_IsObject(obj))
        return rl_error_set(RL_ERR_FORMAT, "%s: %s is not a JSON object of token -> id", file, what);
    cJSON_ArrayForEach(e, obj) {
        double v = e->valuedouble;
        int rc;
        if (!cJSON_IsNumber(e) || !(v >= 0 && v < (double)INT32_MAX) || v != (double)(int32_t)v)
            return rl_error_set(RL_ERR_FORMAT, "%s: token '%.60s' has an id that is not an "
                                "integer in [0, 2^31 - 1)", file, e->string);
        rc = vocab_put(t, e->string, strlen(e->string), (int32_t)v, file);
        if (rc != RL_OK)
            return rc;
    }
    if (t->vcount == 0)
        return rl_error_set(RL_ERR_FORMAT, "%s: %s is empty", file, what);
    return RL_OK;
}

/* one merge "a b" (a, b not NUL-terminated); where names the place for errors */
static int add_merge(struct tokenizer *t, const char *a, size_t na, const char *b, size_t nb,
                     int32_t rank, const char *where, const char *vfile)
{
    int32_t ia = vocab_get(t, a, na), ib = vocab_get(t, b, nb), im;
    char *cat;

    if (ia < 0)
        return rl_error_set(RL_ERR_FORMAT, "%s: merge token '%.*s' is not in %s", where,
                            (int)(na > 60 ? 60 : na), a, vfile);
    if (ib < 0)
        return rl_error_set(RL_ERR_FORMAT, "%s: merge token '%.*s' is not in %s", where,
                            (int)(nb > 60 ? 60 : nb), b, vfile);
    cat = xmalloc(na + nb + 1);
    memcpy(cat, a, na);
    memcpy(cat + na, b, nb);
    im = vocab_get(t, cat, na + nb);
    free(cat);
    if (im < 0)
        return rl_error_set(RL_ERR_FORMAT, "%s: merged token '%.*s%.*s' is not in %s", where,
                            (int)(na > 40 ? 40 : na), a, (int)(nb > 40 ? 40 : nb), b, vfile);
    merge_put(t, ia, ib, rank, im);
    return RL_OK;
}

/* split a merge line on runs of blanks into exactly two fields */
static int split_pair(const char *s, size_t n, const char **a, size_t *na, const char **b,
                      size_t *nb)
{
    const char *f[3];
    size_t fl[3];
    int nf = 0;
    size_t i = 0;

    while (i < n) {
        while (i < n && (s[i] == ' ' || s[i] == '\t'))
            i++;
        if (i == n)
            break;
        if (nf == 3)
            return -1;
        f[nf] = s + i;
        while (i < n && s[i] != ' ' && s[i] != '\t')
            i++;
        fl[nf] = (size_t)(s + i - f[nf]);
        nf++;
    }
    if (nf != 2)
        return -1;
    *a = f[0], *na = fl[0], *b = f[1], *nb = fl[1];
    return 0;
}

static int load_merges_txt(struct tokenizer *t, const char *path, const char *vfile)
{
    char *buf;
    size_t len, pos = 0, line = 0;
    int32_t rank = 0;
    size_t wsize = strlen(path) + 32;
    char *where;
    int rc = read_whole(path, &buf, &len);

    if (rc != RL_OK)
        return rc;
    where = xmalloc(wsize);
    while (pos < len && rank < TOK_CLIP_MAX_MERGES) {
        const char *s = buf + pos, *nl = memchr(s, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - s) : len - pos;
        const char *a, *b;
        size_t na, nb;

        pos += n + (nl ? 1 : 0);
        line++;
        if (n && s[n - 1] == '\r')
            n--;
        if (line == 1) {
            if (n < 8 || memcmp(s, "#version", 8) != 0) {
                rc = rl_error_set(RL_ERR_FORMAT, "%s:1: missing the '#version: 0.2' header line "
                                  "(the reference tokenizers disagree on such files)", path);
                goto out;
            }
            continue;
        }
        if (n == 0) {
            size_t k = pos;
            while (k < len && (buf[k] == '\n' || buf[k] == '\r'))
                k++;
            if (k == len)
                break;                 /* trailing empty lines */
            rc = rl_error_set(RL_ERR_FORMAT, "%s:%zu: empty line among the merges", path, line);
            goto out;
        }
        if (split_pair(s, n, &a, &na, &b, &nb) != 0) {
            rc = rl_error_set(RL_ERR_FORMAT, "%s:%zu: expected two tokens 'left right'", path, line);
            goto out;
        }
        snprintf(where, wsize, "%s:%zu", path, line);
        rc = add_merge(t, a, na, b, nb, rank++, where, vfile);
        if (rc != RL_OK)
            goto out;
    }
    if (line == 0)
        rc = rl_error_set(RL_ERR_FORMAT, "%s: empty file (expected a '#version' header line)", path);
out:
    free(where);
    free(buf);
    return rc;
}

static int load_merges_json(struct tokenizer *t, const cJSON *arr, const char *file)
{
    const cJSON *e;
    int32_t rank = 0;
    size_t i = 0;

    if (!cJSON_IsArray(arr))
        return rl_error_set(RL_ERR_FORMAT, "%s: model.merges is not an array", file);
    cJSON_ArrayForEach(e, arr) {
        const char *a, *b;
        size_t na, nb;
        char where[80];
        int rc;

        if (rank >= TOK_CLIP_MAX_MERGES)
            break;
        if (cJSON_IsString(e)) {
            if (split_pair(e->valuestring, strlen(e->valuestring), &a, &na, &b, &nb) != 0)
                return rl_error_set(RL_ERR_FORMAT, "%s: model.merges[%zu]: expected \"left right\"",
                                    file, i);
        } else if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2 &&
                   cJSON_IsString(cJSON_GetArrayItem(e, 0)) &&
                   cJSON_IsString(cJSON_GetArrayItem(e, 1))) {
            a = cJSON_GetArrayItem(e, 0)->valuestring;
            b = cJSON_GetArrayItem(e, 1)->valuestring;
            na = strlen(a);
            nb = strlen(b);
        } else {
            return rl_error_set(RL_ERR_FORMAT, "%s: model.merges[%zu]: expected \"left right\" or "
                                "[\"left\", \"right\"]", file, i);
        }
        snprintf(where, sizeof(where), "model.merges[%zu]", i);
        rc = add_merge(t, a, na, b, nb, rank++, where, "model.vocab");
        if (rc != RL_OK) {
            char msg[512];
            snprintf(msg, sizeof(msg), "%s", rl_error_msg());
            return rl_error_set(rc, "%s: %s", file, msg);
        }
        i++;
    }
    return RL_OK;
}

static int dslot_cmp(const void *pa, const void *pb)
{
    const struct dslot *a = pa, *b = pb;

    if (a->id != b->id)
        return a->id < b->id ? -1 : 1;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

static pcre2_code *compile(const char *pat, uint32_t opts)
{
    int err;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_UCP | opts, &err, &off, NULL);

    RL_ASSERT(re != NULL);           /* fixed patterns: a failure is a build problem */
    return re;
}

/* checks and tables once vocab and merges are in */
static int finish_bpe(struct tokenizer *t, const char *vfile)
{
    size_t k = 0;

    for (int b = 0; b < 256; b++) {
        char sym[3 + EOW_LEN + 1];
        size_t n = strlen(t->byte_sym[b]);
        memcpy(sym, t->byte_sym[b], n);
        memcpy(sym + n, EOW, EOW_LEN + 1);
        t->byte_id[b] = vocab_get(t, sym, n);
        t->byte_end_id[b] = vocab_get(t, sym, n + EOW_LEN);
        if (t->byte_id[b] < 0 || t->byte_end_id[b] < 0)
            return rl_error_set(RL_ERR_FORMAT, "%s: no entry for the symbol of byte 0x%02x ('%s'%s)",
                                vfile, b, t->byte_id[b] < 0 ? t->byte_sym[b] : sym,
                                t->byte_id[b] < 0 ? "" : " with </w>");
    }
    if (t->sot < 0)
        t->sot = vocab_get(t, SOT_STR, strlen(SOT_STR));
    if (t->eot < 0)
        t->eot = vocab_get(t, EOT_STR, strlen(EOT_STR));
    if (t->sot < 0 || t->eot < 0)
        return rl_error_set(RL_ERR_FORMAT, "%s: no entry for %s", vfile,
                            t->sot < 0 ? SOT_STR : EOT_STR);

    t->dec = xmalloc_array(t->vcount + 2, sizeof(*t->dec));
    for (size_t i = 0; i < t->vcap; i++) {
        const struct vslot *e = &t->vtab[i];
        if (e->off == UINT32_MAX)
            continue;
        /* sequence = pool offset: file order, so the last token of an id wins */
        t->dec[k++] = (struct dslot){ e->id, e->off, e->len, e->off };
    }
    t->dec[k++] = (struct dslot){ t->sot, 0, 0, UINT32_MAX - 1 };   /* len 0: special, below */
    t->dec[k++] = (struct dslot){ t->eot, 0, 0, UINT32_MAX };
    qsort(t->dec, k, sizeof(*t->dec), dslot_cmp);
    t->ndec = 0;
    for (size_t i = 0; i < k; i++) {
        if (t->ndec && t->dec[t->ndec - 1].id == t->dec[i].id)
            t->ndec--;
        t->dec[t->ndec++] = t->dec[i];
    }
    t->vocab_size = t->dec[t->ndec - 1].id + 1;

    t->re = compile(PATTERN, PCRE2_CASELESS);
    t->re_cased = compile("\\p{Cased}", 0);
    t->re_ignorable = compile("\\p{Case_Ignorable}", 0);
    pcre2_jit_compile(t->re, PCRE2_JIT_COMPLETE);    /* optional speed-up */
    t->loc = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
    if (!t->loc)
        return rl_error_set(RL_ERR, "the C.UTF-8 locale is not available: cannot lower-case "
                            "Unicode text as the reference does");
    return RL_OK;
}

int tok_load_bpe(struct tokenizer **out, const char *vocab_json, const char *merges_txt)
{
    struct tokenizer *t = tok_alloc(TOK_BPE);
    char *buf = NULL;
    size_t len;
    cJSON *root = NULL;
    int rc;

    *out = NULL;
    t->sot = t->eot = -1;
    bytes_to_unicode(t);
    rc = read_whole(vocab_json, &buf, &len);
    if (rc == RL_OK)
        rc = parse_json(vocab_json, buf, len, &root);
    if (rc == RL_OK)
        rc = load_vocab(t, root, vocab_json, "the top level");
    cJSON_Delete(root);
    free(buf);
    if (rc == RL_OK)
        rc = load_merges_txt(t, merges_txt, vocab_json);
    if (rc == RL_OK)
        rc = finish_bpe(t, vocab_json);
    if (rc != RL_OK) {
        tok_free(t);
        return rc;
    }
    *out = t;
    return RL_OK;
}

static int32_t added_token(const cJSON *root, const char *content)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "added_tokens"), *e;

    if (!cJSON_IsArray(arr))
        return -1;
    cJSON_ArrayForEach(e, arr) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(e, "content");
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
        if (cJSON_IsString(c) && strcmp(c->valuestring, content) == 0 && cJSON_IsNumber(id) &&
            id->valuedouble >= 0 && id->valuedouble <= INT32_MAX &&
            id->valuedouble == (double)(int32_t)id->valuedouble)
            return (int32_t)id->valuedouble;
    }
    return -1;
}

int tok_load_json(struct tokenizer **out, const char *path)
{
    struct tokenizer *t = tok_alloc(TOK_BPE);
    char *buf = NULL;
    size_t len;
    cJSON *root = NULL;
    const cJSON *model = NULL, *ty, *eow;
    int rc;

    *out = NULL;
    t->sot = t->eot = -1;
    bytes_to_unicode(t);
    rc = read_whole(path, &buf, &len);
    if (rc == RL_OK)
        rc = parse_json(path, buf, len, &root);
    if (rc == RL_OK) {
        model = cJSON_GetObjectItemCaseSensitive(root, "model");
        if (!cJSON_IsObject(model))
            rc = rl_error_set(RL_ERR_FORMAT, "%s: no \"model\" object", path);
    }
    if (rc == RL_OK) {
        ty = cJSON_GetObjectItemCaseSensitive(model, "type");
        eow = cJSON_GetObjectItemCaseSensitive(model, "end_of_word_suffix");
        if (ty && !(cJSON_IsString(ty) && strcmp(ty->valuestring, "BPE") == 0))
            rc = rl_error_set(RL_ERR_FORMAT, "%s: model.type is not \"BPE\"", path);
        else if (eow && !cJSON_IsNull(eow) &&
                 !(cJSON_IsString(eow) && strcmp(eow->valuestring, EOW) == 0))
            rc = rl_error_set(RL_ERR_FORMAT, "%s: model.end_of_word_suffix is not \"</w>\"", path);
    }
    if (rc == RL_OK)
        rc = load_vocab(t, cJSON_GetObjectItemCaseSensitive(model, "vocab"), path, "model.vocab");
    if (rc == RL_OK)
        rc = load_merges_json(t, cJSON_GetObjectItemCaseSensitive(model, "merges"), path);
    if (rc == RL_OK) {
        if (vocab_get(t, SOT_STR, strlen(SOT_STR)) < 0)
            t->sot = added_token(root, SOT_STR);
        if (vocab_get(t, EOT_STR, strlen(EOT_STR)) < 0)
            t->eot = added_token(root, EOT_STR);
        rc = finish_bpe(t, path);
    }
    cJSON_Delete(root);
    free(buf);
    if (rc != RL_OK) {
        tok_free(t);
        return rc;
    }
    *out = t;
    return RL_OK;
}

static bool is_file(const char *path)
{
    struct stat sb;

    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

int tok_load_dir(struct tokenizer **out, const char *dir)
{
    size_t n = strlen(dir) + 32;
    char *v = xmalloc(n), *m = xmalloc(n), *j = xmalloc(n);
    int rc;

    snprintf(v, n, "%s/vocab.json", dir);
    snprintf(m, n, "%s/merges.txt", dir);
    snprintf(j, n, "%s/tokenizer.json", dir);
    *out = NULL;
    if (is_file(v) && is_file(m))
        rc = tok_load_bpe(out, v, m);
    else if (is_file(j))
        rc = tok_load_json(out, j);
    else
        rc = rl_error_set(RL_ERR_IO, "%s: no vocab.json + merges.txt and no tokenizer.json", dir);
    free(v);
    free(m);
    free(j);
    return rc;
}

struct tokenizer *tok_new_bytes(int32_t offset, int32_t sot, int32_t eot)
{
    struct tokenizer *t;

    RL_ASSERT(offset >= 0 && offset <= INT32_MAX - 256 && sot >= 0 && eot >= 0);
    RL_ASSERT(sot != eot && (sot < offset || sot > offset + 255) &&
              (eot < offset || eot > offset + 255));
    t = tok_alloc(TOK_BYTES);
    t->offset = offset;
    t->sot = sot;
    t->eot = eot;
    t->vocab_size = offset + 256;
    if (sot + 1 > t->vocab_size)
        t->vocab_size = sot + 1;
    if (eot + 1 > t->vocab_size)
        t->vocab_size = eot + 1;
    return t;
}

void tok_free(struct tokenizer *t)
{
    if (!t)
        return;
    free(t->pool);
    free(t->vtab);
    free(t->mtab);
    free(t->dec);
    pcre2_code_free(t->re);
    pcre2_code_free(t->re_cased);
    pcre2_code_free(t->re_ignorable);
    if (t->loc)
        freelocale(t->loc);
    free(t);
}

enum tok_kind tok_kind(const struct tokenizer *t) { return t->kind; }
int32_t tok_sot(const struct tokenizer *t) { return t->sot; }
int32_t tok_eot(const struct tokenizer *t) { return t->eot; }
int32_t tok_vocab_size(const struct tokenizer *t) { return t->vocab_size; }
int tok_context(const struct tokenizer *t) { return t->ctx; }

int tok_set_frame(struct tokenizer *t, int context, int32_t pad_id, bool truncate)
{
    if (context < 2)
        return rl_error_set(RL_ERR_ARG, "tokenizer: context length %d, at least 2 needed", context);
    if (pad_id < 0)
        return rl_error_set(RL_ERR_ARG, "tokenizer: pad id %d is negative", (int)pad_id);
    t->ctx = context;
    t->pad = pad_id;
    t->truncate = truncate;
    return RL_OK;
}

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

struct bpe_work {
    int32_t *sym, *nxt, *prv;
    struct hent *heap, *batch;
    size_t nheap, nbatch;
};

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
    m = merge_get(t, w->sym[pos], w->sym[q]);
    if (m)
        hpush(w, (struct hent){ m->rank, pos, w->sym[pos], w->sym[q] });
}

/* BPE of one word of n >= 1 bytes; the heap holds at most 3n entries
 * (n - 1 initial pairs, two per merge). */
static void bpe_word(const struct tokenizer *t, struct bpe_work *w, const uint8_t *s, size_t n,
                     struct ivec *out)
{
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
            m = merge_get(t, e->a, e->b);
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

/* decode, clean white space, lower-case: UTF-8 in a new buffer */
static char *normalize(const struct tokenizer *t, const char *text, size_t len, size_t *out_len)
{
    size_t cap, n, a, b, k = 0, o = 0;
    bool prev_ws = false;
    uint32_t *cp;
    char *out;

    if (!size_mul_ok(len, 4, &cap) || !size_add_ok(cap, 4, &cap))
        RL_ASSERT(!"text length overflows");
    cp = xmalloc_array(len + 1, sizeof(*cp));
    n = utf8_decode((const uint8_t *)text, len, cp);
    /* collapse runs of White_Space into one space */
    for (size_t i = 0; i < n; i++) {
        bool ws = re_isspace(cp[i]);
        if (!ws || !prev_ws)
            cp[k++] = ws ? ' ' : cp[i];
        prev_ws = ws;
    }
    n = k;
    a = 0;
    b = n;
    while (a < b && py_isspace(cp[a]))
        a++;
    while (b > a && py_isspace(cp[b - 1]))
        b--;
    out = xmalloc(cap);
    for (size_t i = a; i < b; i++) {
        uint32_t c = cp[i];
        if (c < 0x80) {
            out[o++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
            continue;
        }
        if (c == 0x130) {                         /* Python: "i" + COMBINING DOT ABOVE */
            out[o++] = 'i';
            o += (size_t)utf8_put(0x307, out + o);
            continue;
        }
        if (c == 0x3A3)
            c = lower_sigma(t, cp + a, b - a, i - a);
        else
            c = (uint32_t)towlower_l((wint_t)c, t->loc);
        o += (size_t)utf8_put(c, out + o);
    }
    free(cp);
    out[o] = '\0';
    *out_len = o;
    return out;
}

static void bpe_tokenize(const struct tokenizer *t, const char *text, size_t len, struct ivec *out)
{
    size_t n, pos = 0;
    char *s = normalize(t, text, len, &n);
    pcre2_match_data *md;
    struct bpe_work w;

    if (n == 0) {
        free(s);
        return;
    }
    md = pcre2_match_data_create_from_pattern(t->re, NULL);
    RL_ASSERT(md != NULL);
    w.sym = xmalloc_array(n, sizeof(*w.sym));
    w.nxt = xmalloc_array(n, sizeof(*w.nxt));
    w.prv = xmalloc_array(n, sizeof(*w.prv));
    w.heap = xmalloc_array(n, 3 * sizeof(*w.heap));
    w.batch = xmalloc_array(n, 3 * sizeof(*w.batch));
    while (pos < n) {
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
        if (e - b == sizeof(SOT_STR) - 1 && memcmp(s + b, SOT_STR, e - b) == 0)
            ivec_push(out, t->sot);
        else if (e - b == sizeof(EOT_STR) - 1 && memcmp(s + b, EOT_STR, e - b) == 0)
            ivec_push(out, t->eot);
        else
            bpe_word(t, &w, (const uint8_t *)s + b, e - b, out);
        pos = e;
    }
    free(w.sym);
    free(w.nxt);
    free(w.prv);
    free(w.heap);
    free(w.batch);
    pcre2_match_data_free(md);
    free(s);
}

static void tokenize_into(const struct tokenizer *t, const char *text, size_t len, struct ivec *out)
{
    if (t->kind == TOK_BYTES) {
        for (size_t i = 0; i < len; i++)
            ivec_push(out, t->offset + (uint8_t)text[i]);
        return;
    }
    bpe_tokenize(t, text, len, out);
}

int tok_tokenize(const struct tokenizer *t, const char *text, size_t len, int32_t **ids, size_t *n)
{
    struct ivec v = { 0 };

    tokenize_into(t, text, len, &v);
    *ids = v.v;
    *n = v.n;
    return RL_OK;
}

int tok_encode_n(const struct tokenizer *t, const char *text, size_t len, int32_t *ids, int *eot_pos)
{
    struct ivec v = { 0 };
    size_t keep, ctx = (size_t)t->ctx;
    int rc = RL_OK;

    tokenize_into(t, text, len, &v);
    keep = v.n;
    if (keep + 2 > ctx) {
        keep = ctx - 2;
        if (!t->truncate)
            rc = rl_error_set(RL_ERR_ARG, "text of %zu tokens does not fit the context of %d "
                              "(with start and end tokens)", v.n, t->ctx);
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
        if (rc != RL_OK) {
            char msg[512];
            snprintf(msg, sizeof(msg), "%s", rl_error_msg());
            return rl_error_set(rc, "text %zu: %s", i, msg);
        }
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
            s = ids[i] == t->sot ? SOT_STR : EOT_STR;
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
            bool eow = sl >= EOW_LEN && memcmp(s + sl - EOW_LEN, EOW, EOW_LEN) == 0;
            size_t end = eow ? sl - EOW_LEN : sl, j = 0;
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
                utf8_decode((const uint8_t *)s + j, step, cpbuf);
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
