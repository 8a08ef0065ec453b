/*
 * config_value.c: one value of an experiment file, parsed and checked by the
 * type its key has in the key table (config.c): numbers in their ranges (and
 * representable in float32 where the key is a float), words from their lists,
 * dataset specs, model names, comma lists and axis lists.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/alloc.h"
#include "core/status.h"
#include "datasets/dataset.h"
#include "experiments/config.h"
#include "experiments/config_impl.h"

#define MAX_WORD        160          /* longest run without a space in a value */
#define MAX_LIST        4096
#define MAX_PATH_CHARS  1024         /* a path or dataset spec (file names built on it
                                        stay within the 4096 of PATH_MAX) */

static const char *const presets[] = {
    "clip-tiny", "clip-vit-b-32", "clip-vit-b-16", "clip-vit-l-14", "vit-tiny",
    "llama-tiny", "qwen2-0.5b", NULL,
};

/* ------------------------------------------------------------------------ */
/* typed values                                                              */

void cfg_value_free(struct value *v)
{
    free(v->lu);
    free(v->ld);
    free(v->l64);
    if (v->ls)
        for (size_t i = 0; i < v->n; i++)
            free(v->ls[i]);
    free(v->ls);
    memset(v, 0, sizeof(*v));
}

static int why(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int why(char *buf, size_t cap, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
    return -1;
}

static bool parse_u64(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v;

    if (*s < '0' || *s > '9')
        return false;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || *end)
        return false;
    *out = v;
    return true;
}

static bool parse_num(const char *s, double *out)
{
    char *end;
    double v;

    if (!*s || *s == ' ' || *s == '\t')
        return false;
    errno = 0;
    v = strtod(s, &end);
    if (*end || !isfinite(v) || errno == ERANGE)
        return false;
    *out = v;
    return true;
}

/* a range as text: "[0, 1)", "> 0", ">= 1" */
static void range_text(const struct keydef *kd, char *buf, size_t cap)
{
    bool lo_open = kd->flags & F_LO_OPEN, hi_open = kd->flags & F_HI_OPEN;

    if (kd->hi >= UMAX || (kd->type == K_DOUBLE && kd->hi >= BIG))
        snprintf(buf, cap, "%s %g", lo_open ? ">" : ">=", kd->lo);
    else
        snprintf(buf, cap, "in %c%.15g, %.15g%c", lo_open ? '(' : '[', kd->lo, kd->hi,
                 hi_open ? ')' : ']');
}

static bool uint_in(const struct keydef *kd, const char *s, size_t *out)
{
    uint64_t v;

    if (!parse_u64(s, &v) || v > SIZE_MAX)
        return false;
    if ((double)v < kd->lo || (kd->hi < UMAX && (double)v > kd->hi))
        return false;
    *out = (size_t)v;
    return true;
}

static bool double_in(const struct keydef *kd, double v)
{
    if ((kd->flags & F_LO_OPEN) ? !(v > kd->lo) : !(v >= kd->lo))
        return false;
    if ((kd->flags & F_HI_OPEN) ? !(v < kd->hi) : !(v <= kd->hi))
        return false;
    return true;
}

/* v as kd's number: in range as a double and after rounding to float32 (the
 * training arithmetic), and 0 or at least FLOAT_TINY in magnitude */
static int check_double(const struct keydef *kd, const char *s, double *out, char *w, size_t wn)
{
    char rt[96];
    double v;

    range_text(kd, rt, sizeof(rt));
    if (!parse_num(s, &v) || !double_in(kd, v))
        return why(w, wn, "expected a number %s", rt);
    if (v != 0.0 && fabs(v) < FLOAT_TINY)
        return why(w, wn, "expected a number %s, and 0 or at least %g in magnitude (float32 "
                   "arithmetic)", rt, FLOAT_TINY);
    if (!double_in(kd, (double)(float)v))
        return why(w, wn, "expected a number %s also in float32 (it rounds to %.9g there)", rt,
                   (double)(float)v);
    *out = v;
    return 0;
}

bool cfg_is_preset(const char *s)
{
    for (size_t i = 0; presets[i]; i++)
        if (!strcmp(presets[i], s))
            return true;
    return false;
}

/* the readers of datasets/dataset.c, to check a spec without opening it */
static const struct dataset_ops *const readers[] = {
    &dataset_fashion_mnist_ops, &dataset_idx_ops, &dataset_cifar10_ops, &dataset_cifar100_ops,
    &dataset_cifar100_coarse_ops, &dataset_folder_ops, &dataset_zhou_ops, &dataset_shapes_ops,
    &dataset_shapes_count_ops,
};

size_t cfg_strip_split(const char *s)
{
    size_t len = strlen(s);

    if (len >= 6 && !strcmp(s + len - 6, ":train"))
        return len - 6;
    if (len >= 5 && !strcmp(s + len - 5, ":test"))
        return len - 5;
    if (len >= 4 && !strcmp(s + len - 4, ":val"))
        return len - 4;
    return len;
}

static int check_spec(const char *s, char *w, size_t wn)
{
    size_t len = cfg_strip_split(s), nlen;
    const char *colon = memchr(s, ':', len);
    char known[512];
    size_t off = 0;

    nlen = colon ? (size_t)(colon - s) : len;
    if (strlen(s) > MAX_PATH_CHARS)
        return why(w, wn, "expected a dataset spec of at most %d characters", MAX_PATH_CHARS);
    /* the commonsense format (a decoder's data; experiments/train_lm.c) */
    if (nlen == strlen(CFG_COMMONSENSE) && !memcmp(s, CFG_COMMONSENSE, nlen)) {
        if (!colon || len == nlen + 1)
            return why(w, wn, "dataset '%s' needs a directory, as in %s:DIR", CFG_COMMONSENSE,
                       CFG_COMMONSENSE);
        return 0;
    }
    for (size_t i = 0; i < sizeof(readers) / sizeof(readers[0]); i++) {
        const struct dataset_ops *r = readers[i];

        if (strlen(r->name) != nlen || memcmp(r->name, s, nlen))
            continue;
        if (colon && r->arg == 0)
            return why(w, wn, "dataset '%s' takes no argument (only :train or :test)", r->name);
        if (colon && len == nlen + 1)
            return why(w, wn, "empty directory after '%s:'", r->name);
        if (!colon && r->arg == 2)
            return why(w, wn, "dataset '%s' needs a directory, as in %s:DIR", r->name, r->name);
        if (!r->has_val && s[len] == ':' && !strcmp(s + len, ":val"))
            return why(w, wn, "dataset '%s' has no :val split (only :train and :test; folder "
                       "and zhou have :val)", r->name);
        return 0;
    }
    for (size_t i = 0; i < sizeof(readers) / sizeof(readers[0]) && off < sizeof(known); i++) {
        int n = snprintf(known + off, sizeof(known) - off, "%s%s", i ? ", " : "",
                         readers[i]->name);

        if (n < 0)
            break;
        off += (size_t)n;
    }
    return why(w, wn, "expected a dataset spec: unknown reader '%.*s' (known: %s; optional "
               ":train or :test)", (int)nlen, s, known);
}

/* data.val: none | N (per class) | a fraction "0.1" or "10%" | a dataset spec */
static int parse_val(const struct keydef *kd, const char *v, struct value *out, char *w, size_t wn)
{
    size_t len = strlen(v);
    double d;

    if (!strcmp(v, "none")) {
        out->word = EXP_VAL_NONE;
        return 0;
    }
    if (len > 1 && v[len - 1] == '%') {
        char num[64];

        if (len - 1 < sizeof(num)) {
            memcpy(num, v, len - 1);
            num[len - 1] = '\0';
            if (parse_num(num, &d) && d > 0 && d < 100) {
                out->word = EXP_VAL_FRACTION;
                out->d = d / 100.0;
                return 0;
            }
        }
        return why(w, wn, "expected a percentage in (0%%, 100%%) of every class of the training pool");
    }
    if (strspn(v, "0123456789") == len && len > 0) {
        if (!uint_in(kd, v, &out->u))
            return why(w, wn, "expected an integer in [1, 1000000] (items of every class held out)");
        out->word = EXP_VAL_PER_CLASS;
        return 0;
    }
    if (parse_num(v, &d)) {
        if (!(d > 0 && d < 1))
            return why(w, wn, "expected a fraction in (0, 1) of every class of the training pool");
        out->word = EXP_VAL_FRACTION;
        out->d = d;
        return 0;
    }
    if (check_spec(v, w, wn))
        return why(w, wn, "expected none, N (items of every class held out of the training pool), "
                   "a fraction such as 0.1 or 10%%, or a dataset spec (such as cifar10:DIR:test)");
    out->word = EXP_VAL_SPEC;
    out->ls = xcalloc(1, sizeof(*out->ls));
    out->ls[0] = xstrdup(v);
    out->n = 1;
    return 0;
}

/* split a comma list into trimmed items (in a copy, *buf to free) */
int cfg_split_list(const char *s, char **buf, char ***items, size_t *n, char *w, size_t wn)
{
    char *copy, *p;
    size_t cap = 1;

    *buf = NULL;
    *items = NULL;
    *n = 0;
    for (const char *q = s; *q; q++)
        cap += *q == ',';
    if (cap > MAX_LIST)
        return why(w, wn, "more than %d items", MAX_LIST);
    p = copy = xstrdup(s);
    while (*p == ' ' || *p == '\t')
        p++;
    if (!*p) {
        free(copy);
        return why(w, wn, "an empty list");
    }
    *items = xmalloc_array(cap, sizeof(**items));
    for (;;) {
        char *comma = strchr(p, ','), *end;

        if (comma)
            *comma = '\0';
        while (*p == ' ' || *p == '\t')
            p++;
        end = p + strlen(p);
        while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
            *--end = '\0';
        if (!*p) {
            free(copy);
            free(*items);
            *items = NULL;
            return why(w, wn, "an empty item in the list");
        }
        (*items)[(*n)++] = p;
        if (!comma)
            break;
        p = comma + 1;
    }
    *buf = copy;
    return 0;
}

static bool bad_name(const char *s)
{
    if (!*s || *s == '.' || strlen(s) > EXP_MAX_ID)
        return true;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '_' || *p == '-'))
            return true;
    return false;
}

static int parse_one(const struct keydef *kd, const char *v, struct value *out, char *w,
                     size_t wn);

static bool is_scalar_type(enum ktype t)
{
    return t == K_WORD || t == K_UINT || t == K_DOUBLE || t == K_BOOL || t == K_SEED ||
           t == K_LAYERS;
}

/* the items of an axis value (a comma list), each parsed as one value; out
 * holds the first; two items equal (in float32 for numbers) are refused */
static int parse_axis_list(const struct keydef *kd, const char *v, struct value *out, char *w,
                           size_t wn)
{
    char *buf, **it, sub[512];
    size_t n;
    struct value *vals;
    int rc = 0;

    if (cfg_split_list(v, &buf, &it, &n, w, wn))
        return -1;
    vals = xcalloc(n, sizeof(*vals));
    for (size_t i = 0; i < n && !rc; i++) {
        if (parse_one(kd, it[i], &vals[i], sub, sizeof(sub))) {
            rc = why(w, wn, "item '%s': %s", it[i], sub);
            break;
        }
        for (size_t j = 0; j < i && !rc; j++) {
            bool same = kd->type == K_DOUBLE ? (float)vals[j].d == (float)vals[i].d
                      : kd->type == K_BOOL   ? vals[j].b == vals[i].b
                      : kd->type == K_WORD   ? vals[j].word == vals[i].word
                                             : vals[j].u == vals[i].u;

            if (same)
                rc = why(w, wn, "'%s' is listed twice%s", it[i],
                         kd->type == K_DOUBLE && strcmp(it[i], it[j]) ? " (equal in float32)"
                                                                      : "");
        }
    }
    if (!rc)
        *out = vals[0];
    free(vals);
    free(buf);
    free(it);
    return rc;
}

/* Parse v as kd's type into out; -1 with an explanation in w. */
int cfg_parse_value(const struct keydef *kd, const char *v, struct value *out, char *w,
                size_t wn)
{
    memset(out, 0, sizeof(*out));
    /* every value must survive being written back into an INI file */
    {
        size_t run = 0;

        if (*v == ';')
            return why(w, wn, "a value cannot start with ';' (an INI file reads it back as a "
                       "comment)");
        for (const char *p = v; *p; p++) {
            if (*p == '\n' || *p == '\r')
                return why(w, wn, "a value cannot contain a line break");
            if (*p == ';' && p > v && (p[-1] == ' ' || p[-1] == '\t'))
                return why(w, wn, "' ;' would start a comment in an INI file");
            run = *p == ' ' ? 0 : run + 1;
            if (run > MAX_WORD)
                return why(w, wn, "has a word longer than %d characters", MAX_WORD);
        }
    }
    if (is_scalar_type(kd->type) && strchr(v, ',')) {
        if (cfg_axis_tag(kd))
            return parse_axis_list(kd, v, out, w, wn);
        return why(w, wn, "expected one value: %s.%s takes no list (docs/experiments.md lists "
                   "the keys that do)", kd->section, kd->key);
    }
    return parse_one(kd, v, out, w, wn);
}

/* one value of kd's type (lists: every item) */
static int parse_one(const struct keydef *kd, const char *v, struct value *out, char *w,
                     size_t wn)
{
    char rt[96], words[256], *buf = NULL, **it = NULL;
    size_t n = 0;
    int rc = 0;

    memset(out, 0, sizeof(*out));
    switch (kd->type) {
    case K_NAME:
        if (bad_name(v))
            return why(w, wn, "expected a name of letters, digits, '.', '_' and '-' (at most 64, "
                       "not starting with '.')");
        return 0;
    case K_TEXT:
        return 0;
    case K_PATH:
        if (strlen(v) > MAX_PATH_CHARS)
            return why(w, wn, "expected a path of at most %d characters", MAX_PATH_CHARS);
        return *v ? 0 : why(w, wn, "expected a path");
    case K_MODEL:
        if (strlen(v) > MAX_PATH_CHARS)
            return why(w, wn, "expected a preset or a model directory of at most %d characters",
                       MAX_PATH_CHARS);
        if (cfg_is_preset(v) || (strchr(v, '/') && *v))
            return 0;
        return why(w, wn, "expected a preset (%s) or a model directory (a path with a '/', "
                   "e.g. ./%s)", cfg_join_words(presets, words, sizeof(words)), v);
    case K_SPEC:
        return check_spec(v, w, wn);
    case K_PROMPT: {
        const char *a = strstr(v, "{}");

        if (!a || strstr(a + 2, "{}"))
            return why(w, wn, "expected a prompt with exactly one '{}' for the class name");
        return 0;
    }
    case K_WORD:
        for (int i = 0; kd->words[i]; i++)
            if (!strcmp(kd->words[i], v)) {
                out->word = i;
                return 0;
            }
        return why(w, wn, "expected one of %s", cfg_join_words(kd->words, words, sizeof(words)));
    case K_UINT:
        if (!uint_in(kd, v, &out->u)) {
            range_text(kd, rt, sizeof(rt));
            return why(w, wn, "expected an integer %s", rt);
        }
        return 0;
    case K_DOUBLE:
        return check_double(kd, v, &out->d, w, wn);
    case K_BOOL:
        if (!strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "1"))
            out->b = true;
        else if (!strcmp(v, "false") || !strcmp(v, "no") || !strcmp(v, "0"))
            out->b = false;
        else
            return why(w, wn, "expected true or false");
        return 0;
    case K_SEED:
        if ((kd->flags & F_RUN) && !strcmp(v, "run")) {
            out->run = true;
            return 0;
        }
        if (!parse_u64(v, &out->u64))
            return why(w, wn, "expected an integer in [0, 2^64)%s",
                       (kd->flags & F_RUN) ? " or run" : "");
        return 0;
    case K_VAL:
        return parse_val(kd, v, out, w, wn);
    case K_LAYERS: {
        const char *dash;
        uint64_t a, b;

        if (!strcmp(v, "*") || !strcmp(v, "all")) {
            out->lo = 0;
            out->hi = SIZE_MAX;
            return 0;
        }
        dash = strchr(v, '-');
        if (!dash) {
            if (parse_u64(v, &a) && a < 100000) {
                out->lo = out->hi = (size_t)a;
                return 0;
            }
        } else {
            char first[32];
            size_t fl = (size_t)(dash - v);

            if (fl > 0 && fl < sizeof(first)) {
                memcpy(first, v, fl);
                first[fl] = '\0';
                if (parse_u64(first, &a) && parse_u64(dash + 1, &b) && a <= b && b < 100000) {
                    out->lo = (size_t)a;
                    out->hi = (size_t)b;
                    return 0;
                }
            }
        }
        return why(w, wn, "expected * (every layer), a layer N or a range A-B with A <= B "
                   "(0-based, inclusive)");
    }
    default:
        break;
    }

    /* lists */
    if (cfg_split_list(v, &buf, &it, &n, w, wn))
        return -1;
    switch (kd->type) {
    case K_SPECS:
        out->ls = xcalloc(n, sizeof(*out->ls));
        for (size_t i = 0; i < n && !rc; i++) {
            char sub[400];

            if (check_spec(it[i], sub, sizeof(sub)))
                rc = why(w, wn, "item '%s': %s", it[i], sub);
            else
                out->ls[out->n++] = xstrdup(it[i]);
        }
        break;
    case K_UINTS:
        out->lu = xmalloc_array(n, sizeof(*out->lu));
        for (size_t i = 0; i < n && !rc; i++) {
            if (!uint_in(kd, it[i], &out->lu[i])) {
                range_text(kd, rt, sizeof(rt));
                rc = why(w, wn, "item '%s': expected an integer %s", it[i], rt);
            }
            for (size_t j = 0; j < i && !rc; j++)
                if (out->lu[j] == out->lu[i])
                    rc = why(w, wn, "'%s' is listed twice", it[i]);
            out->n = i + 1;
        }
        break;
    case K_FRACTIONS:
        out->ld = xmalloc_array(n, sizeof(*out->ld));
        for (size_t i = 0; i < n && !rc; i++) {
            if (!parse_num(it[i], &out->ld[i]) || !(out->ld[i] > 0 && out->ld[i] <= 1))
                rc = why(w, wn, "item '%s': expected a fraction in (0, 1]", it[i]);
            for (size_t j = 0; j < i && !rc; j++)
                if (out->ld[j] == out->ld[i])
                    rc = why(w, wn, "'%s' is listed twice", it[i]);
            out->n = i + 1;
        }
        break;
    case K_SEEDS:
        out->l64 = xmalloc_array(n, sizeof(*out->l64));
        for (size_t i = 0; i < n && !rc; i++) {
            if (!parse_u64(it[i], &out->l64[i]))
                rc = why(w, wn, "item '%s': expected an integer in [0, 2^64)", it[i]);
            for (size_t j = 0; j < i && !rc; j++)
                if (out->l64[j] == out->l64[i])
                    rc = why(w, wn, "'%s' is listed twice", it[i]);
            out->n = i + 1;
        }
        break;
    case K_METHODS:
        out->lu = xmalloc_array(n, sizeof(*out->lu));
        for (size_t i = 0; i < n && !rc; i++) {
            int m = cfg_method_index(it[i]);

            if (m < 0)
                rc = why(w, wn, "unknown method '%s' (known: %s)", it[i],
                         cfg_method_names(words, sizeof(words)));
            else
                out->lu[i] = (size_t)m;
            for (size_t j = 0; j < i && !rc; j++)
                if (out->lu[j] == out->lu[i])
                    rc = why(w, wn, "'%s' is listed twice", it[i]);
            out->n = i + 1;
        }
        break;
    case K_EPOCH_TABLE:
        out->ls = xcalloc(n, sizeof(*out->ls));
        out->lu = xcalloc(n, sizeof(*out->lu));
        for (size_t i = 0; i < n && !rc; i++) {
            const char *colon = strrchr(it[i], ':');

            if (!colon || colon == it[i]) {
                rc = why(w, wn, "item '%s': expected NAME:EPOCHS (a dataset's name, as run ids "
                         "name it, and its epochs)", it[i]);
                break;
            }
            out->ls[i] = xstrdup(it[i]);
            out->ls[i][colon - it[i]] = '\0';
            out->n = i + 1;
            if (bad_name(out->ls[i]))
                rc = why(w, wn, "item '%s': the name '%s' is not a dataset name (letters, "
                         "digits, '.', '_' and '-')", it[i], out->ls[i]);
            else if (!uint_in(kd, colon + 1, &out->lu[i])) {
                range_text(kd, rt, sizeof(rt));
                rc = why(w, wn, "item '%s': expected the epochs as an integer %s", it[i], rt);
            }
            for (size_t j = 0; j < i && !rc; j++)
                if (!strcasecmp(out->ls[j], out->ls[i]))
                    rc = why(w, wn, "the dataset '%s' is listed twice (names match ignoring "
                             "case)", out->ls[i]);
        }
        break;
    case K_TOWERS:
        for (size_t i = 0; i < n && !rc; i++) {
            if (!strcmp(it[i], "vision"))
                out->mask |= EXP_TOWER_VISION;
            else if (!strcmp(it[i], "text"))
                out->mask |= EXP_TOWER_TEXT;
            else if (!strcmp(it[i], "both"))
                out->mask |= EXP_TOWER_VISION | EXP_TOWER_TEXT;
            else
                rc = why(w, wn, "item '%s': expected vision, text or both", it[i]);
        }
        break;
    case K_MODULES:
        for (size_t i = 0; i < n && !rc; i++) {
            unsigned bit = 0;

            for (int k = 0; k < EXP_N_MODULES; k++)
                if (!strcmp(it[i], cfg_w_module[k]))
                    bit = 1u << k;
            if (!strcmp(it[i], "attn"))
                bit = 0xfu;
            else if (!strcmp(it[i], "qkv"))
                bit = 0x7u;
            else if (!strcmp(it[i], "mlp"))
                bit = 0x30u;
            else if (!strcmp(it[i], "all"))
                bit = 0x3fu;
            if (!bit)
                rc = why(w, wn, "item '%s': expected %s, or attn, qkv, mlp, all", it[i],
                         cfg_join_words((const char *const[]){ "q_proj", "k_proj", "v_proj",
                                                           "out_proj", "fc1", "fc2", "in_proj",
                                                           NULL },
                                    words, sizeof(words)));
            out->mask |= bit;
        }
        /* in_proj is q, k and v as one packed linear (open_clip's) */
        if (!rc && (out->mask & 0x40u) && (out->mask & 0x7u))
            rc = why(w, wn, "in_proj adapts q, k and v as one linear; list it or q_proj, k_proj, "
                     "v_proj (qkv), not both");
        break;
    default:
        RL_ASSERT(0);
    }
    free(buf);
    free(it);
    if (rc)
        cfg_value_free(out);
    return rc;
}
