/*
 * tokenizer_text.c: the Unicode text handling of CLIP BPE (tokenizer.h
 * steps 1-4): UTF-8 encoding and decoding with U+FFFD replacement, the
 * whitespace clean-up, lower-casing as Python's str.lower() (with the
 * Final_Sigma rule), and the PCRE2 patterns: the pre-tokenisation regex,
 * matched by tokenizer_encode.c, and the \p{Cased} / \p{Case_Ignorable}
 * classes used here.
 */
#include <stdint.h>
#include <stdlib.h>
#include <wctype.h>

#include "core/alloc.h"
#include "core/status.h"
#include "models/tokenizer_impl.h"

/* The reference regex, \s written out as White_Space (what Python's `regex`
 * module matches for \s; PCRE2's UCP \s would add U+180E). */
static const char PATTERN[] =
    "<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|"
    "[^\\t\\n\\x0b\\f\\r \\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}"
    "\\x{202f}\\x{205f}\\x{3000}\\p{L}\\p{N}]+";

int tok_utf8_put(uint32_t c, char *o)
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
size_t tok_utf8_decode(const uint8_t *s, size_t n, uint32_t *out)
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
    int n = tok_utf8_put(c, buf);
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

/* decode, clean white space, lower-case: UTF-8 in a new buffer */
char *tok_normalize(const struct tokenizer *t, const char *text, size_t len, size_t *out_len)
{
    size_t cap, n, a, b, k = 0, o = 0;
    bool prev_ws = false;
    uint32_t *cp;
    char *out;

    if (!size_mul_ok(len, 4, &cap) || !size_add_ok(cap, 4, &cap))
        RL_ASSERT(!"text length overflows");
    cp = xmalloc_array(len + 1, sizeof(*cp));
    n = tok_utf8_decode((const uint8_t *)text, len, cp);
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
            o += (size_t)tok_utf8_put(0x307, out + o);
            continue;
        }
        if (c == 0x3A3)
            c = lower_sigma(t, cp + a, b - a, i - a);
        else
            c = (uint32_t)towlower_l((wint_t)c, t->loc);
        o += (size_t)tok_utf8_put(c, out + o);
    }
    free(cp);
    out[o] = '\0';
    *out_len = o;
    return out;
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


/* the regexes and the locale, once a BPE vocabulary is loaded */
int tok_text_init(struct tokenizer *t)
{
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
