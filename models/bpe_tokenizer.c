/*
 * bpe_tokenizer.c: the byte-level BPE tokenizer object (bpe_tokenizer.h):
 * the Oniguruma -> PCRE2 pattern rewrite, freeing, the accessors and
 * decoding. Loading is in bpe_tokenizer_load.c, encoding in
 * bpe_tokenizer_encode.c; the layout in bpe_tokenizer_impl.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/status.h"
#include "models/bpe_tokenizer_impl.h"

/* Oniguruma's Unicode classes (Ruby syntax, UTF-8, the library's options),
 * spelt out for PCRE2: inside a character class and outside one. */
struct escape_map { char c; const char *in_class, *outside; };

static const struct escape_map ESCAPES[] = {
    { 's', "\\p{White_Space}", "\\p{White_Space}" },
    { 'S', NULL,               "\\P{White_Space}" },
    { 'd', "\\p{Nd}",          "\\p{Nd}" },
    { 'D', NULL,               "\\P{Nd}" },
    { 'w', "\\p{L}\\p{M}\\p{Nd}\\p{Pc}", "[\\p{L}\\p{M}\\p{Nd}\\p{Pc}]" },
    { 'W', NULL,               "[^\\p{L}\\p{M}\\p{Nd}\\p{Pc}]" },
    { 'h', "0-9a-fA-F",        "[0-9a-fA-F]" },
    { 'H', NULL,               "[^0-9a-fA-F]" },
};

/* the rewritten pattern (allocated), or NULL when an escape has no PCRE2
 * form in a class (*bad set to it) */
static char *rewrite(const char *pat, size_t len, char *bad)
{
    char *out = xmalloc_array(len + 1, 32);
    size_t o = 0;
    bool in_class = false;

    for (size_t i = 0; i < len; i++) {
        char c = pat[i];
        if (c == '\\' && i + 1 < len) {
            const struct escape_map *m = NULL;
            for (size_t k = 0; k < sizeof ESCAPES / sizeof ESCAPES[0]; k++)
                if (ESCAPES[k].c == pat[i + 1])
                    m = &ESCAPES[k];
            if (m) {
                const char *s = in_class ? m->in_class : m->outside;
                if (!s) {
                    *bad = m->c;
                    free(out);
                    return NULL;
                }
                memcpy(out + o, s, strlen(s));
                o += strlen(s);
            } else {
                out[o++] = c;
                out[o++] = pat[i + 1];
            }
            i++;
            continue;
        }
        out[o++] = c;
        if (!in_class && c == '[') {
            in_class = true;
            if (i + 1 < len && pat[i + 1] == '^')
                out[o++] = pat[++i];
            if (i + 1 < len && pat[i + 1] == ']')      /* a leading ] is literal */
                out[o++] = pat[++i];
        } else if (in_class && c == ']') {
            in_class = false;
        }
    }
    out[o] = '\0';
    return out;
}

pcre2_code *bpe_compile_regex(const char *pattern, size_t len, bool literal, const char *what)
{
    char bad = 0, *pat = literal ? NULL : rewrite(pattern, len, &bad);
    int err;
    PCRE2_SIZE off;
    pcre2_code *re;

    if (!literal && !pat) {
        rl_error_set(RL_ERR_FORMAT, "%s: \\%c inside a character class is not supported", what, bad);
        return NULL;
    }
    re = pcre2_compile((PCRE2_SPTR)(literal ? pattern : pat), literal ? len : strlen(pat),
                       PCRE2_UTF | (literal ? PCRE2_LITERAL : PCRE2_UCP), &err, &off, NULL);
    free(pat);
    if (!re) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(err, msg, sizeof msg);
        rl_error_set(RL_ERR_FORMAT, "%s: the regex does not compile (PCRE2: %s)", what,
                     (const char *)msg);
        return NULL;
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);          /* optional speed-up */
    return re;
}

void bpe_tokenizer_free(struct bpe_tokenizer *t)
{
    if (!t)
        return;
    tok_free(t->tab);
    for (int i = 0; i < t->n_pre; i++)
        pcre2_code_free(t->pre[i].re);
    for (size_t k = 0; k < t->n_added; k++) {
        free(t->added[k].content);
        free(t->added[k].match);
    }
    free(t->added);
    free(t->tokens);
    pcre2_code_free(t->re_word);
    pcre2_match_context_free(t->mctx);
    free(t);
}

int32_t bpe_vocab_size(const struct bpe_tokenizer *t) { return t->vocab_size; }

int32_t bpe_bos_id(const struct bpe_tokenizer *t) { return t->n_prefix ? t->prefix[0] : -1; }

void bpe_template(const struct bpe_tokenizer *t, const int32_t **prefix, int *n_prefix,
                  const int32_t **suffix, int *n_suffix)
{
    *prefix = t->prefix;
    *n_prefix = t->n_prefix;
    *suffix = t->suffix;
    *n_suffix = t->n_suffix;
}

bool bpe_is_special(const struct bpe_tokenizer *t, int32_t id)
{
    return id >= 0 && id < t->vocab_size && t->tokens[id].added >= 0 &&
           t->added[t->tokens[id].added].special;
}

int32_t bpe_token_id(const struct bpe_tokenizer *t, const char *token)
{
    for (size_t k = 0; k < t->n_added; k++)
        if (strcmp(t->added[k].content, token) == 0)
            return t->added[k].id;
    return tok_vocab_get(t->tab, token, strlen(token));
}

/* ------------------------------------------------------------------ decoding */

struct bytes { char *p; size_t n, cap; };

static void bytes_put(struct bytes *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        b->cap = b->cap ? b->cap : 64;
        while (b->n + n + 1 > b->cap)
            b->cap *= 2;
        b->p = xrealloc_array(b->p, b->cap, 1);
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
}

/* ByteLevel decoder: a token's symbols back to bytes, or its UTF-8 as is
 * when one of its characters is not a byte symbol */
static void byte_level_token(const struct tokenizer *tab, const char *s, size_t n, struct bytes *b)
{
    uint32_t *cp = xmalloc_array(n + 1, sizeof(*cp));
    size_t m = tok_utf8_decode((const uint8_t *)s, n, cp), k;
    char *raw = xmalloc(m + 1);

    for (k = 0; k < m; k++) {
        if (cp[k] >= 0x144 || tab->cp_byte[cp[k]] < 0)
            break;
        raw[k] = (char)tab->cp_byte[cp[k]];
    }
    if (k == m)
        bytes_put(b, raw, m);
    else
        bytes_put(b, s, n);
    free(raw);
    free(cp);
}

int bpe_decode(const struct bpe_tokenizer *t, const int32_t *ids, size_t n, bool skip_special,
               char **text, size_t *len)
{
    struct bytes raw = { 0 }, out = { 0 };
    bool first = true;

    for (size_t i = 0; i < n; i++) {
        const struct bpe_idtok *tk;
        if (ids[i] < 0)
            return free(raw.p), rl_error_set(RL_ERR_ARG, "tokenizer: id %d at %zu is negative",
                                             (int)ids[i], i);
        if (ids[i] >= t->vocab_size || !t->tokens[ids[i]].s)
            continue;                                  /* no token: dropped, as tokenizers */
        tk = &t->tokens[ids[i]];
        if (skip_special && tk->added >= 0 && t->added[tk->added].special)
            continue;
        if (t->has_decoder) {
            byte_level_token(t->tab, tk->s, tk->len, &raw);
        } else {                                       /* no decoder: tokens joined by spaces */
            if (!first)
                bytes_put(&raw, " ", 1);
            bytes_put(&raw, tk->s, tk->len);
        }
        first = false;
    }
    /* invalid UTF-8 -> U+FFFD, as String::from_utf8_lossy */
    {
        uint32_t *cp = xmalloc_array(raw.n + 1, sizeof(*cp));
        size_t m = tok_utf8_decode((const uint8_t *)raw.p, raw.n, cp);
        bytes_put(&out, "", 0);
        for (size_t k = 0; k < m; k++) {
            char u[4];
            bytes_put(&out, u, (size_t)tok_utf8_put(cp[k], u));
        }
        free(cp);
    }
    free(raw.p);
    out.p[out.n] = '\0';
    *text = out.p;
    if (len)
        *len = out.n;
    return RL_OK;
}
