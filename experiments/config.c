/*
 * config.c: experiment files (INI via libinih) -> struct experiment -> plans.
 *
 * Three stages:
 *   1. collect: libinih reads the text through our line reader (which counts
 *      lines and checks section names and line lengths); every key=value is
 *      looked up in the key table and stored, as text, in a slot per key and
 *      per method suffix (slot 0: the plain key). A value is checked by the
 *      parser of its type once it is complete (after its continuation lines).
 *      Overrides go through the same checks and replace slots.
 *   2. resolve: every key parsed again into typed fields, per method for the
 *      suffixable keys, plus the checks that involve two keys.
 *   3. expand: the grid into plans (budget matching through the caller's
 *      shapes), and a plan rendered back as INI text.
 * The key table is the single source of the keys, their types, ranges and
 * defaults; config.h and the README document it.
 */
#include "experiments/config.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>

#include "core/alloc.h"
#include "core/status.h"
#include "datasets/dataset.h"

#define MAX_FILE_BYTES  (1u << 20)
#define MAX_WORD        160          /* longest run without a space in a value */
#define MAX_LIST        4096
#define WRAP_COL        100

/* ------------------------------------------------------------------------ */
/* the key table                                                             */

enum ktype {
    K_NAME,         /* [A-Za-z0-9._-]+                                   */
    K_TEXT,         /* anything, may be empty                            */
    K_PATH,         /* non-empty                                         */
    K_MODEL,        /* a preset or a path with '/'                       */
    K_SPEC,         /* one dataset spec                                  */
    K_SPECS,        /* list of dataset specs                             */
    K_PROMPT,       /* exactly one "{}"                                  */
    K_WORD,         /* one of kd->words                                  */
    K_UINT,         /* integer in [ulo, uhi]                             */
    K_UINTS,        /* list of those, no repeats                         */
    K_DOUBLE,       /* finite number in the range                        */
    K_FRACTIONS,    /* list of numbers in (0, 1], no repeats             */
    K_BOOL,
    K_SEED,         /* a 64-bit integer, or "run" with F_RUN             */
    K_SEEDS,        /* list of 64-bit integers, no repeats               */
    K_METHODS,      /* list of registry names, no repeats                */
    K_TOWERS,
    K_LAYERS,
    K_MODULES,
};

enum {
    F_SUFFIX  = 1u << 0,    /* takes a .METHOD suffix             */
    F_LO_OPEN = 1u << 1,    /* K_DOUBLE: > dlo rather than >=     */
    F_HI_OPEN = 1u << 2,    /* K_DOUBLE: < dhi rather than <=     */
    F_RUN     = 1u << 3,    /* K_SEED: "run" allowed              */
};

struct keydef {
    const char *section, *key;
    enum ktype type;
    unsigned flags;
    const char *def;        /* default as text; NULL: none (derived) */
    double lo, hi;          /* ranges of K_UINT(S) and K_DOUBLE      */
    const char *const *words;
};

static const char *const w_templates[] = { "prompt", "dataset", NULL };
static const char *const w_augment[]   = { "none", "flip", "crop_flip", NULL };
static const char *const w_profile[]   = { "peft", "paper", NULL };
static const char *const w_basis[]     = { "dense", "sparse", "very_sparse", NULL };
static const char *const w_module[EXP_N_MODULES] = {
    "q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2",
};
static const char *const presets[] = {
    "clip-tiny", "clip-vit-b-32", "clip-vit-b-16", "clip-vit-l-14", NULL,
};

#define BIG 1e9
#define UMAX 18446744073709551615.0

static const struct keydef keys[] = {
    { "experiment", "name",         K_NAME,   0, "experiment", 0, 0, NULL },
    { "experiment", "output",       K_PATH,   0, NULL, 0, 0, NULL },
    { "experiment", "description",  K_TEXT,   0, "", 0, 0, NULL },

    { "model", "name",                  K_MODEL,  0, "clip-tiny", 0, 0, NULL },
    { "model", "pretrain_dir",          K_PATH,   0, NULL, 0, 0, NULL },
    { "model", "pretrain_data",         K_SPEC,   0, "shapes", 0, 0, NULL },
    { "model", "pretrain_corpus",       K_UINT,   0, "20000", 1, BIG, NULL },
    { "model", "pretrain_steps",        K_UINT,   0, "2000", 1, BIG, NULL },
    { "model", "pretrain_batch",        K_UINT,   0, "64", 1, 1e6, NULL },
    { "model", "pretrain_lr",           K_DOUBLE, F_LO_OPEN, "1e-3", 0, 10, NULL },
    { "model", "pretrain_weight_decay", K_DOUBLE, 0, "0.1", 0, 10, NULL },
    { "model", "pretrain_warmup",       K_UINT,   0, "100", 0, BIG, NULL },
    { "model", "pretrain_seed",         K_SEED,   0, "0", 0, 0, NULL },

    { "data", "dataset",     K_SPECS,     0, "fashion-mnist", 0, 0, NULL },
    { "data", "eval",        K_SPECS,     0, NULL, 0, 0, NULL },
    { "data", "image_size",  K_UINT,      0, "0", 0, 4096, NULL },
    { "data", "prompt",      K_PROMPT,    0, "a photo of a {}.", 0, 0, NULL },
    { "data", "templates",   K_WORD,      0, "prompt", 0, 0, w_templates },
    { "data", "augment",     K_WORD,      0, "none", 0, 0, w_augment },
    { "data", "shots",       K_UINTS,     0, NULL, 1, 1e6, NULL },
    { "data", "fractions",   K_FRACTIONS, 0, NULL, 0, 1, NULL },
    { "data", "sample_seed", K_SEED,      F_RUN, "run", 0, 0, NULL },
    { "data", "eval_limit",  K_UINT,      0, "0", 0, UMAX, NULL },

    { "method", "methods",     K_METHODS, 0, "lora", 0, 0, NULL },
    { "method", "rank",        K_UINTS,   F_SUFFIX, NULL, 1, 1e6, NULL },
    { "method", "budget",      K_UINTS,   F_SUFFIX, NULL, 1, UMAX, NULL },
    { "method", "alpha",       K_DOUBLE,  F_SUFFIX, "0", 0, 1e6, NULL },
    { "method", "dropout",     K_DOUBLE,  F_SUFFIX | F_HI_OPEN, "0", 0, 1, NULL },
    { "method", "rslora",      K_BOOL,    F_SUFFIX, "false", 0, 0, NULL },
    { "method", "vera_d_init", K_DOUBLE,  F_SUFFIX, "0.1", -1e6, 1e6, NULL },
    { "method", "profile",     K_WORD,    F_SUFFIX, "peft", 0, 0, w_profile },
    { "method", "basis",       K_WORD,    F_SUFFIX, "dense", 0, 0, w_basis },
    { "method", "towers",      K_TOWERS,  F_SUFFIX, "vision, text", 0, 0, NULL },
    { "method", "layers",      K_LAYERS,  F_SUFFIX, "*", 0, 0, NULL },
    { "method", "modules",     K_MODULES, F_SUFFIX, "q_proj, k_proj, v_proj, fc1, fc2", 0, 0, NULL },
    { "method", "init_seed",   K_SEED,    F_SUFFIX | F_RUN, "run", 0, 0, NULL },

    { "train", "steps",            K_UINT,   F_SUFFIX, "1000", 1, BIG, NULL },
    { "train", "epochs",           K_UINT,   F_SUFFIX, NULL, 1, 1e6, NULL },
    { "train", "min_epoch_steps",  K_UINT,   F_SUFFIX, "10", 1, BIG, NULL },
    { "train", "batch",            K_UINT,   F_SUFFIX, "32", 1, 1e6, NULL },
    { "train", "accumulate",       K_UINT,   F_SUFFIX, "1", 1, 1e6, NULL },
    { "train", "lr",               K_DOUBLE, F_SUFFIX | F_LO_OPEN, "1e-3", 0, 10, NULL },
    { "train", "weight_decay",     K_DOUBLE, F_SUFFIX, "0.01", 0, 10, NULL },
    { "train", "beta1",            K_DOUBLE, F_SUFFIX | F_HI_OPEN, "0.9", 0, 1, NULL },
    { "train", "beta2",            K_DOUBLE, F_SUFFIX | F_HI_OPEN, "0.999", 0, 1, NULL },
    { "train", "eps",              K_DOUBLE, F_SUFFIX, "1e-8", 0, 1, NULL },
    { "train", "warmup",           K_UINT,   F_SUFFIX, "0", 0, BIG, NULL },
    { "train", "lr_min",           K_DOUBLE, F_SUFFIX, "0", 0, 10, NULL },
    { "train", "lr_min_ratio",     K_DOUBLE, F_SUFFIX, NULL, 0, 1, NULL },
    { "train", "clip",             K_DOUBLE, F_SUFFIX, "1.0", 0, 1e9, NULL },
    { "train", "eval_every",       K_UINT,   F_SUFFIX, "0", 0, BIG, NULL },
    { "train", "checkpoint_every", K_UINT,   F_SUFFIX, "0", 0, BIG, NULL },
    { "train", "seed",             K_SEED,   F_SUFFIX | F_RUN, "run", 0, 0, NULL },

    { "sweep", "seeds", K_SEEDS, 0, "1", 0, 0, NULL },
    { "sweep", "jobs",  K_UINT,  0, "1", 1, 1024, NULL },

    { "run", "id",        K_NAME, 0, NULL, 0, 0, NULL },
    { "run", "rank",      K_UINT, 0, NULL, 1, 1e6, NULL },
    { "run", "trainable", K_UINT, 0, NULL, 0, UMAX, NULL },
};

#define N_KEYS (sizeof(keys) / sizeof(keys[0]))

static const char *const sections[] = {
    "experiment", "model", "data", "method", "train", "sweep", "run", NULL,
};

/* indices of the keys the code refers to, found by name once */
static int key_index(const char *section, const char *key)
{
    for (size_t i = 0; i < N_KEYS; i++)
        if (!strcmp(keys[i].section, section) && !strcmp(keys[i].key, key))
            return (int)i;
    return -1;
}

static bool section_known(const char *s)
{
    for (size_t i = 0; sections[i]; i++)
        if (!strcmp(sections[i], s))
            return true;
    return false;
}

/* "a, b, c" into buf */
static const char *join_words(const char *const *w, char *buf, size_t cap)
{
    size_t off = 0;

    buf[0] = '\0';
    for (size_t i = 0; w[i] && off < cap; i++) {
        int n = snprintf(buf + off, cap - off, "%s%s", i ? ", " : "", w[i]);

        if (n < 0)
            break;
        off += (size_t)n;
    }
    return buf;
}

static const char *section_keys(const char *section, char *buf, size_t cap)
{
    size_t off = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < N_KEYS && off < cap; i++) {
        int n;

        if (strcmp(keys[i].section, section))
            continue;
        n = snprintf(buf + off, cap - off, "%s%s", off ? ", " : "", keys[i].key);
        if (n < 0)
            break;
        off += (size_t)n;
    }
    return buf;
}

static const char *method_names(char *buf, size_t cap)
{
    const struct adapter_ops *const *r = adapter_registry();
    size_t off = 0;

    buf[0] = '\0';
    for (size_t i = 0; r[i] && off < cap; i++) {
        int n = snprintf(buf + off, cap - off, "%s%s", i ? ", " : "", r[i]->name);

        if (n < 0)
            break;
        off += (size_t)n;
    }
    return buf;
}

static int method_index(const char *name)
{
    const struct adapter_ops *const *r = adapter_registry();

    for (size_t i = 0; r[i]; i++)
        if (!strcmp(r[i]->name, name))
            return (int)i;
    return -1;
}

/* ------------------------------------------------------------------------ */
/* typed values                                                              */

struct value {
    size_t   u;
    double   d;
    uint64_t u64;
    bool     b, run;
    int      word;
    size_t  *lu;     size_t n;     /* K_UINTS, K_METHODS (registry indices) */
    double  *ld;                   /* K_FRACTIONS                           */
    uint64_t *l64;                 /* K_SEEDS                               */
    char   **ls;                   /* K_SPECS                               */
    unsigned mask;                 /* K_TOWERS, K_MODULES                   */
    size_t   lo, hi;               /* K_LAYERS                              */
};

static void value_free(struct value *v)
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

static bool is_preset(const char *s)
{
    for (size_t i = 0; presets[i]; i++)
        if (!strcmp(presets[i], s))
            return true;
    return false;
}

/* the readers of datasets/dataset.c, to check a spec without opening it */
static const struct dataset_ops *const readers[] = {
    &dataset_fashion_mnist_ops, &dataset_idx_ops, &dataset_cifar10_ops, &dataset_cifar100_ops,
    &dataset_cifar100_coarse_ops, &dataset_folder_ops, &dataset_shapes_ops,
    &dataset_shapes_count_ops,
};

static size_t strip_split(const char *s)
{
    size_t len = strlen(s);

    if (len >= 6 && !strcmp(s + len - 6, ":train"))
        return len - 6;
    if (len >= 5 && !strcmp(s + len - 5, ":test"))
        return len - 5;
    return len;
}

static int check_spec(const char *s, char *w, size_t wn)
{
    size_t len = strip_split(s), nlen;
    const char *colon = memchr(s, ':', len);
    char known[512];
    size_t off = 0;

    nlen = colon ? (size_t)(colon - s) : len;
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

/* split a comma list into trimmed items (in a copy, *buf to free) */
static int split_list(const char *s, char **buf, char ***items, size_t *n, char *w, size_t wn)
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
    if (!*s || *s == '.' || strlen(s) > 64)
        return true;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '_' || *p == '-'))
            return true;
    return false;
}

/* Parse v as kd's type into out; -1 with an explanation in w. */
static int parse_value(const struct keydef *kd, const char *v, struct value *out, char *w,
                       size_t wn)
{
    char rt[96], words[256], *buf = NULL, **it = NULL;
    size_t n = 0;
    int rc = 0;

    memset(out, 0, sizeof(*out));
    /* every value must survive being written back into an INI file */
    {
        size_t run = 0;

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
    switch (kd->type) {
    case K_NAME:
        if (bad_name(v))
            return why(w, wn, "expected a name of letters, digits, '.', '_' and '-' (at most 64, "
                       "not starting with '.')");
        return 0;
    case K_TEXT:
        return 0;
    case K_PATH:
        return *v ? 0 : why(w, wn, "expected a path");
    case K_MODEL:
        if (is_preset(v) || (strchr(v, '/') && *v))
            return 0;
        return why(w, wn, "expected a preset (%s) or a model directory (a path with a '/', "
                   "e.g. ./%s)", join_words(presets, words, sizeof(words)), v);
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
        return why(w, wn, "expected one of %s", join_words(kd->words, words, sizeof(words)));
    case K_UINT:
        if (!uint_in(kd, v, &out->u)) {
            range_text(kd, rt, sizeof(rt));
            return why(w, wn, "expected an integer %s", rt);
        }
        return 0;
    case K_DOUBLE:
        if (!parse_num(v, &out->d) || !double_in(kd, out->d)) {
            range_text(kd, rt, sizeof(rt));
            return why(w, wn, "expected a number %s", rt);
        }
        return 0;
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
    if (split_list(v, &buf, &it, &n, w, wn))
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
            int m = method_index(it[i]);

            if (m < 0)
                rc = why(w, wn, "unknown method '%s' (known: %s)", it[i],
                         method_names(words, sizeof(words)));
            else
                out->lu[i] = (size_t)m;
            for (size_t j = 0; j < i && !rc; j++)
                if (out->lu[j] == out->lu[i])
                    rc = why(w, wn, "'%s' is listed twice", it[i]);
            out->n = i + 1;
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
                if (!strcmp(it[i], w_module[k]))
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
                         join_words((const char *const[]){ "q_proj", "k_proj", "v_proj",
                                                           "out_proj", "fc1", "fc2", NULL },
                                    words, sizeof(words)));
            out->mask |= bit;
        }
        break;
    default:
        RL_ASSERT(0);
    }
    free(buf);
    free(it);
    if (rc)
        value_free(out);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* stage 1: collect                                                          */

struct entry {
    char *value;            /* NULL: not set                      */
    const char *src;        /* file name or "-s"                  */
    int   line;             /* 0 for an override                  */
};

struct parser {
    struct entry *ent;      /* N_KEYS x n_slots                   */
    size_t n_slots;         /* 1 + registry size                  */
    const char *where;
    /* reader */
    const char *p;
    int line;
    bool indented;
    /* the entry whose value is still growing, for continuations */
    struct entry *pending;
    size_t pending_key, pending_slot;
    /* first error */
    int err_line;           /* 0: none; -1: not tied to a line     */
    int err_rc;
};

static struct entry *slot(struct parser *ps, size_t k, size_t s)
{
    return &ps->ent[k * ps->n_slots + s];
}

static const char *slot_suffix(const struct parser *ps, size_t s)
{
    (void)ps;
    return s ? adapter_registry()[s - 1]->name : NULL;
}

/* "FILE:LINE" or "-s" or "FILE" */
static const char *loc(const struct parser *ps, const struct entry *en, char *buf, size_t cap)
{
    if (en && en->value && en->line == 0)
        snprintf(buf, cap, "-s");
    else if (en && en->value)
        snprintf(buf, cap, "%s:%d", en->src, en->line);
    else
        snprintf(buf, cap, "%s", ps->where);
    return buf;
}

static void fail_at(struct parser *ps, int line, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void fail_at(struct parser *ps, int line, int rc, const char *fmt, ...)
{
    char msg[1536];
    va_list ap;

    if (ps->err_line)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    ps->err_line = line ? line : -1;
    ps->err_rc = rc;
    rl_error_set(rc, "%s", msg);
}

/* check the value of a complete entry */
static int check_entry(struct parser *ps, size_t k, size_t s, struct entry *en)
{
    char w[1024], where[512];
    struct value v;
    const char *suf = slot_suffix(ps, s);

    if (parse_value(&keys[k], en->value, &v, w, sizeof(w)) == 0) {
        value_free(&v);
        return 0;
    }
    fail_at(ps, en->line, RL_ERR_ARG, "%s: %s.%s%s%s = '%.120s': %s", loc(ps, en, where,
            sizeof(where)), keys[k].section, keys[k].key, suf ? "." : "", suf ? suf : "",
            en->value, w);
    return -1;
}

static int flush_pending(struct parser *ps)
{
    struct entry *en = ps->pending;

    ps->pending = NULL;
    return en ? check_entry(ps, ps->pending_key, ps->pending_slot, en) : 0;
}

/* Look up "key[.suffix]" of section; -1 with the error recorded. */
static int find_key(struct parser *ps, const char *section, const char *name, const char *value,
                    const char *at, int line, size_t *k_out, size_t *s_out)
{
    char keyname[128], list[512];
    const char *dot = strchr(name, '.'), *suffix = dot ? dot + 1 : NULL;
    size_t klen = dot ? (size_t)(dot - name) : strlen(name);
    int k = -1, m;

    if (!section_known(section)) {
        fail_at(ps, line, RL_ERR_ARG, "%s: unknown section [%s] (valid sections: %s)", at,
                section, join_words(sections, list, sizeof(list)));
        return -1;
    }
    if (klen < sizeof(keyname)) {
        memcpy(keyname, name, klen);
        keyname[klen] = '\0';
        k = key_index(section, keyname);
    }
    if (k < 0) {
        fail_at(ps, line, RL_ERR_ARG, "%s: unknown key %s.%.*s (valid keys in [%s]: %s)", at,
                section, (int)klen, name, section, section_keys(section, list, sizeof(list)));
        return -1;
    }
    *k_out = (size_t)k;
    *s_out = 0;
    if (!suffix)
        return 0;
    if (!(keys[k].flags & F_SUFFIX)) {
        fail_at(ps, line, RL_ERR_ARG, "%s: %s.%s = '%.120s': %s.%s takes no .METHOD suffix (only "
                "the [method] keys but methods and the [train] keys do)", at, section, name,
                value, section, keys[k].key);
        return -1;
    }
    m = method_index(suffix);
    if (m < 0) {
        fail_at(ps, line, RL_ERR_ARG, "%s: %s.%s = '%.120s': unknown method '%s' in the suffix "
                "(known: %s)", at, section, name, value, suffix, method_names(list, sizeof(list)));
        return -1;
    }
    *s_out = 1 + (size_t)m;
    return 0;
}

static int on_key(void *user, const char *section, const char *name, const char *value)
{
    struct parser *ps = user;
    char at[512];
    size_t k, s;
    struct entry *en;

    if (ps->err_line)
        return 1;
    snprintf(at, sizeof(at), "%s:%d", ps->where, ps->line);
    /* an indented line continues the value before it */
    if (ps->indented && ps->pending) {
        if (strchr(value, '=')) {
            fail_at(ps, ps->line, RL_ERR_ARG, "%s: indented line '%.120s' would continue %s.%s; "
                    "start keys at the beginning of a line (indent only continuation lines)",
                    at, value, keys[ps->pending_key].section, name);
            return 0;
        }
        {
            size_t a = strlen(ps->pending->value), b = strlen(value);
            char *joined = xmalloc(a + b + 2);

            memcpy(joined, ps->pending->value, a);
            joined[a] = ' ';
            memcpy(joined + a + 1, value, b + 1);
            free(ps->pending->value);
            ps->pending->value = joined;
        }
        return 1;
    }
    if (flush_pending(ps))
        return 0;
    if (!*section) {
        fail_at(ps, ps->line, RL_ERR_ARG, "%s: %s = '%.120s' is outside a section (start with "
                "a [section] line)", at, name, value);
        return 0;
    }
    if (find_key(ps, section, name, value, at, ps->line, &k, &s))
        return 0;
    en = slot(ps, k, s);
    if (en->value) {
        fail_at(ps, ps->line, RL_ERR_ARG, "%s: %s.%s is given twice (first at line %d)", at,
                section, name, en->line);
        return 0;
    }
    en->value = xstrdup(value);
    en->src = ps->where;
    en->line = ps->line;
    ps->pending = en;
    ps->pending_key = k;
    ps->pending_slot = s;
    return 1;
}

/* fgets over the text: counts lines, checks lengths and section names */
static char *read_line(char *str, int num, void *stream)
{
    struct parser *ps = stream;
    const char *nl, *s;
    size_t len, body;

    if (!*ps->p || ps->err_line)
        return NULL;
    nl = strchr(ps->p, '\n');
    len = nl ? (size_t)(nl - ps->p) + 1 : strlen(ps->p);
    body = len - (nl ? 1 : 0);
    if (body && ps->p[body - 1] == '\r')
        body--;
    ps->line++;
    if (body + 3 > (size_t)num) {
        fail_at(ps, ps->line, RL_ERR_ARG, "%s:%d: line longer than %d characters (continue a long "
                "value on indented lines)", ps->where, ps->line, num - 3);
        return NULL;
    }
    memcpy(str, ps->p, len);
    str[len] = '\0';
    ps->p += len;
    ps->indented = str[0] == ' ' || str[0] == '\t';
    s = str;
    if (*s == '[') {
        const char *end = strchr(s, ']');
        char name[128], list[256];

        if (end && (size_t)(end - s - 1) < sizeof(name)) {
            memcpy(name, s + 1, (size_t)(end - s - 1));
            name[end - s - 1] = '\0';
            if (!section_known(name))
                fail_at(ps, ps->line, RL_ERR_ARG, "%s:%d: unknown section [%s] (valid sections: "
                        "%s)", ps->where, ps->line, name, join_words(sections, list,
                                                                     sizeof(list)));
        }
        /* a new section ends the value before it */
        if (!ps->err_line && flush_pending(ps))
            return NULL;
        if (ps->err_line)
            return NULL;
    }
    return str;
}

static int apply_override(struct parser *ps, const char *ov)
{
    const char *eq = strchr(ov, '='), *dot;
    char lhs[160], section[64], val[4096];
    size_t k, s, a, b;
    struct entry *en;

    if (!eq || (dot = memchr(ov, '.', (size_t)(eq - ov))) == NULL) {
        fail_at(ps, -1, RL_ERR_ARG, "-s: '%.120s': expected section.key=value", ov);
        return -1;
    }
    /* trim both sides */
    for (a = 0; ov[a] == ' '; a++)
        ;
    for (b = (size_t)(eq - ov); b > a && ov[b - 1] == ' '; b--)
        ;
    if (b - a >= sizeof(lhs)) {
        fail_at(ps, -1, RL_ERR_ARG, "-s: '%.120s': key too long", ov);
        return -1;
    }
    memcpy(lhs, ov + a, b - a);
    lhs[b - a] = '\0';
    dot = strchr(lhs, '.');
    if (!dot || (size_t)(dot - lhs) >= sizeof(section) || dot == lhs) {
        fail_at(ps, -1, RL_ERR_ARG, "-s: '%.120s': expected section.key=value", ov);
        return -1;
    }
    memcpy(section, lhs, (size_t)(dot - lhs));
    section[dot - lhs] = '\0';
    for (eq++; *eq == ' ' || *eq == '\t'; eq++)
        ;
    snprintf(val, sizeof(val), "%s", eq);
    for (size_t n = strlen(val); n && (val[n - 1] == ' ' || val[n - 1] == '\t'); n--)
        val[n - 1] = '\0';
    if (find_key(ps, section, dot + 1, val, "-s", -1, &k, &s))
        return -1;
    en = slot(ps, k, s);
    free(en->value);
    en->value = xstrdup(val);
    en->src = "-s";
    en->line = 0;
    return check_entry(ps, k, s, en);
}

static void parser_free(struct parser *ps)
{
    if (ps->ent)
        for (size_t i = 0; i < N_KEYS * ps->n_slots; i++)
            free(ps->ent[i].value);
    free(ps->ent);
    ps->ent = NULL;
}

static int collect(struct parser *ps, const char *text, const char *where,
                   const char *const *ov, size_t n_ov)
{
    int ret;

    memset(ps, 0, sizeof(*ps));
    ps->n_slots = 1 + adapter_registry_size();
    ps->ent = xcalloc(N_KEYS * ps->n_slots, sizeof(*ps->ent));
    ps->where = where;
    ps->p = text;
    ret = ini_parse_stream(read_line, ps, on_key, ps);
    if (!ps->err_line)
        flush_pending(ps);
    if (ret > 0 && (!ps->err_line || ps->err_line < 0 || ret < ps->err_line)) {
        ps->err_line = 0;
        fail_at(ps, ret, RL_ERR_ARG, "%s:%d: syntax error: expected [section], key = value, or a "
                "comment", where, ret);
        ps->err_line = ret;
    } else if (ret < 0 && !ps->err_line) {
        fail_at(ps, -1, RL_ERR_NOMEM, "%s: the INI parser failed (%d)", where, ret);
    }
    for (size_t i = 0; i < n_ov && !ps->err_line; i++)
        apply_override(ps, ov[i]);
    return ps->err_line ? ps->err_rc : RL_OK;
}

/* ------------------------------------------------------------------------ */
/* stage 2: resolve                                                          */

/* the entry that applies for method slot s (0: plain only), or NULL */
static const struct entry *effective(struct parser *ps, size_t k, size_t s)
{
    const struct entry *en;

    if (s) {
        en = slot(ps, k, s);
        if (en->value)
            return en;
    }
    en = slot(ps, k, 0);
    return en->value ? en : NULL;
}

/* parse what applies (or the default) into v; never fails on checked text */
static void get(struct parser *ps, const char *section, const char *key, size_t s, struct value *v)
{
    int k = key_index(section, key);
    const struct entry *en;
    const char *text;
    char w[512];

    RL_ASSERT(k >= 0);
    en = effective(ps, (size_t)k, s);
    text = en ? en->value : keys[k].def;
    RL_ASSERT(text);
    if (parse_value(&keys[k], text, v, w, sizeof(w)))
        RL_ASSERT(!"a checked value failed to parse");
}

static const struct entry *get_entry(struct parser *ps, const char *section, const char *key,
                                     size_t s)
{
    int k = key_index(section, key);

    RL_ASSERT(k >= 0);
    return effective(ps, (size_t)k, s);
}

static char *get_str(struct parser *ps, const char *section, const char *key)
{
    const struct entry *en = get_entry(ps, section, key, 0);
    int k = key_index(section, key);

    if (en)
        return xstrdup(en->value);
    return keys[k].def ? xstrdup(keys[k].def) : NULL;
}

static size_t get_u(struct parser *ps, const char *sec, const char *key, size_t s)
{
    struct value v;

    get(ps, sec, key, s, &v);
    return v.u;
}

static double get_d(struct parser *ps, const char *sec, const char *key, size_t s)
{
    struct value v;

    get(ps, sec, key, s, &v);
    return v.d;
}

/* Of an exclusive pair (a, b) for slot s: 1 when a applies, 2 when b does,
 * 0 when neither is set; -1 (error recorded) when both at the same level. */
static int pair(struct parser *ps, const char *sec, const char *a, const char *b, size_t s)
{
    int ka = key_index(sec, a), kb = key_index(sec, b);
    const struct entry *ea, *eb;
    int la, lb;
    char l1[512], l2[512];

    ea = effective(ps, (size_t)ka, s);
    eb = effective(ps, (size_t)kb, s);
    la = !ea ? 0 : (s && ea == slot(ps, (size_t)ka, s)) ? 2 : 1;
    lb = !eb ? 0 : (s && eb == slot(ps, (size_t)kb, s)) ? 2 : 1;
    if (la == 0 && lb == 0)
        return 0;
    if (la > lb)
        return 1;
    if (lb > la)
        return 2;
    {
        const char *suf = la == 2 ? slot_suffix(ps, s) : NULL;

        fail_at(ps, eb->line ? eb->line : -1, RL_ERR_ARG, "%s: %s.%s%s%s = '%.120s': give %s.%s "
                "or %s.%s, not both (%s.%s%s%s at %s)", loc(ps, eb, l1, sizeof(l1)), sec, b,
                suf ? "." : "", suf ? suf : "", eb->value, sec, a, sec, b, sec, a, suf ? "." : "",
                suf ? suf : "", loc(ps, ea, l2, sizeof(l2)));
    }
    return -1;
}

static int resolve_train(struct parser *ps, size_t s, struct exp_train *t)
{
    struct value v;
    int p;
    char l[512];

    memset(t, 0, sizeof(*t));
    if ((p = pair(ps, "train", "steps", "epochs", s)) < 0)
        return -1;
    if (p == 2)
        t->epochs = get_u(ps, "train", "epochs", s);
    else
        t->steps = get_u(ps, "train", "steps", s);
    t->min_epoch_steps = get_u(ps, "train", "min_epoch_steps", s);
    t->batch = get_u(ps, "train", "batch", s);
    t->accumulate = get_u(ps, "train", "accumulate", s);
    t->lr = get_d(ps, "train", "lr", s);
    t->weight_decay = get_d(ps, "train", "weight_decay", s);
    t->beta1 = get_d(ps, "train", "beta1", s);
    t->beta2 = get_d(ps, "train", "beta2", s);
    t->eps = get_d(ps, "train", "eps", s);
    t->warmup = get_u(ps, "train", "warmup", s);
    if ((p = pair(ps, "train", "lr_min", "lr_min_ratio", s)) < 0)
        return -1;
    t->lr_min = p == 2 ? get_d(ps, "train", "lr_min_ratio", s) * t->lr
                       : get_d(ps, "train", "lr_min", s);
    t->clip = get_d(ps, "train", "clip", s);
    t->eval_every = get_u(ps, "train", "eval_every", s);
    t->checkpoint_every = get_u(ps, "train", "checkpoint_every", s);
    get(ps, "train", "seed", s, &v);
    t->seed_set = !v.run;
    t->seed = v.u64;
    if (t->lr_min > t->lr) {
        const struct entry *en = get_entry(ps, "train", "lr_min", s);

        fail_at(ps, en && en->line ? en->line : -1, RL_ERR_ARG, "%s: train.lr_min = '%.17g': "
                "expected at most train.lr (%.17g)", loc(ps, en, l, sizeof(l)), t->lr_min, t->lr);
        return -1;
    }
    if (t->steps && t->warmup > t->steps) {
        const struct entry *en = get_entry(ps, "train", "warmup", s);

        fail_at(ps, en && en->line ? en->line : -1, RL_ERR_ARG, "%s: train.warmup = '%zu': "
                "expected at most train.steps (%zu)", loc(ps, en, l, sizeof(l)), t->warmup,
                t->steps);
        return -1;
    }
    return 0;
}

static int resolve_method(struct parser *ps, size_t reg, struct exp_method *m)
{
    const struct adapter_ops *ops = adapter_registry()[reg];
    size_t s = 1 + reg;
    struct value v;
    int p;

    memset(m, 0, sizeof(*m));
    m->ops = ops;
    if (ops->flags & ADAPTER_F_RANK) {
        if ((p = pair(ps, "method", "rank", "budget", s)) < 0)
            return -1;
        if (p == 0) {
            /* peft's default ranks */
            m->sizes = xmalloc(sizeof(*m->sizes));
            m->sizes[0] = !strcmp(ops->name, "vera") ? 256 : !strcmp(ops->name, "lora") ? 8 : 32;
            m->n_sizes = 1;
        } else {
            get(ps, "method", p == 1 ? "rank" : "budget", s, &v);
            m->by_budget = p == 2;
            m->sizes = v.lu;
            m->n_sizes = v.n;
            v.lu = NULL;
            value_free(&v);
        }
    }
    adapter_cfg_defaults(&m->adapter, ops->name, 0);
    get(ps, "method", "profile", s, &v);
    m->profile = w_profile[v.word];
    RL_ASSERT(adapter_cfg_profile(&m->adapter, m->profile) == RL_OK);
    m->adapter.alpha = (float)get_d(ps, "method", "alpha", s);
    m->adapter.dropout = (float)get_d(ps, "method", "dropout", s);
    get(ps, "method", "rslora", s, &v);
    m->adapter.rslora = v.b;
    m->adapter.vera_d_init = (float)get_d(ps, "method", "vera_d_init", s);
    get(ps, "method", "basis", s, &v);
    RL_ASSERT(adapter_basis_parse(w_basis[v.word], &m->adapter.basis) == RL_OK);
    get(ps, "method", "towers", s, &v);
    m->targets.towers = v.mask;
    value_free(&v);
    get(ps, "method", "layers", s, &v);
    m->targets.layer_lo = v.lo;
    m->targets.layer_hi = v.hi;
    get(ps, "method", "modules", s, &v);
    m->targets.modules = v.mask;
    value_free(&v);
    get(ps, "method", "init_seed", s, &v);
    m->init_seed_set = !v.run;
    m->init_seed = v.u64;
    return resolve_train(ps, s, &m->train);
}

static int resolve(struct parser *ps, struct experiment *e)
{
    struct value v;
    char l[512];

    e->name = get_str(ps, "experiment", "name");
    e->output = get_str(ps, "experiment", "output");
    if (!e->output) {
        size_t n = strlen(e->name) + 32;

        e->output = xmalloc(n);
        snprintf(e->output, n, "results/runs/%s", e->name);
    }
    e->description = get_str(ps, "experiment", "description");

    e->model.name = get_str(ps, "model", "name");
    e->model.preset = is_preset(e->model.name);
    e->model.pretrain_dir = get_str(ps, "model", "pretrain_dir");
    if (!e->model.pretrain_dir) {
        size_t n = strlen(e->model.name) + 32;
        const char *base = strrchr(e->model.name, '/');

        e->model.pretrain_dir = xmalloc(n);
        snprintf(e->model.pretrain_dir, n, "results/models/%s", base ? base + 1 : e->model.name);
    }
    e->model.pretrain_data = get_str(ps, "model", "pretrain_data");
    e->model.pretrain_corpus = get_u(ps, "model", "pretrain_corpus", 0);
    e->model.pretrain_steps = get_u(ps, "model", "pretrain_steps", 0);
    e->model.pretrain_batch = get_u(ps, "model", "pretrain_batch", 0);
    e->model.pretrain_warmup = get_u(ps, "model", "pretrain_warmup", 0);
    e->model.pretrain_lr = get_d(ps, "model", "pretrain_lr", 0);
    e->model.pretrain_weight_decay = get_d(ps, "model", "pretrain_weight_decay", 0);
    get(ps, "model", "pretrain_seed", 0, &v);
    e->model.pretrain_seed = v.u64;

    get(ps, "data", "dataset", 0, &v);
    e->datasets = v.ls;
    e->n_datasets = v.n;
    if (get_entry(ps, "data", "eval", 0)) {
        const struct entry *en = get_entry(ps, "data", "eval", 0);

        get(ps, "data", "eval", 0, &v);
        e->evals = v.ls;
        if (v.n != e->n_datasets) {
            for (size_t i = 0; i < v.n; i++)
                free(v.ls[i]);
            free(v.ls);
            e->evals = NULL;
            fail_at(ps, en->line ? en->line : -1, RL_ERR_ARG, "%s: data.eval = '%.120s': expected "
                    "%zu spec%s, one per data.dataset", loc(ps, en, l, sizeof(l)), en->value,
                    e->n_datasets, e->n_datasets == 1 ? "" : "s");
            return -1;
        }
    } else {
        e->evals = xcalloc(e->n_datasets, sizeof(*e->evals));
        for (size_t i = 0; i < e->n_datasets; i++) {
            size_t len = strip_split(e->datasets[i]);

            e->evals[i] = xmalloc(len + 8);
            snprintf(e->evals[i], len + 8, "%.*s:test", (int)len, e->datasets[i]);
        }
    }
    e->image_size = get_u(ps, "data", "image_size", 0);
    e->prompt = get_str(ps, "data", "prompt");
    get(ps, "data", "templates", 0, &v);
    e->templates = (enum exp_templates)v.word;
    get(ps, "data", "augment", 0, &v);
    e->augment = (enum exp_augment)v.word;
    if (get_entry(ps, "data", "shots", 0)) {
        get(ps, "data", "shots", 0, &v);
        e->shots = v.lu;
        e->n_shots = v.n;
    }
    if (get_entry(ps, "data", "fractions", 0)) {
        get(ps, "data", "fractions", 0, &v);
        e->fractions = v.ld;
        e->n_fractions = v.n;
    } else if (!e->n_shots) {
        e->fractions = xmalloc(sizeof(*e->fractions));
        e->fractions[0] = 1.0;
        e->n_fractions = 1;
    }
    get(ps, "data", "sample_seed", 0, &v);
    e->sample_seed_set = !v.run;
    e->sample_seed = v.u64;
    e->eval_limit = get_u(ps, "data", "eval_limit", 0);

    get(ps, "method", "methods", 0, &v);
    e->methods = xcalloc(v.n, sizeof(*e->methods));
    for (size_t i = 0; i < v.n; i++) {
        if (resolve_method(ps, v.lu[i], &e->methods[i])) {
            e->n_methods = i + 1;
            value_free(&v);
            return -1;
        }
        e->n_methods = i + 1;
    }
    value_free(&v);

    get(ps, "sweep", "seeds", 0, &v);
    e->seeds = v.l64;
    e->n_seeds = v.n;
    e->jobs = get_u(ps, "sweep", "jobs", 0);

    e->run_id = get_str(ps, "run", "id");
    if (get_entry(ps, "run", "rank", 0))
        e->run_rank = get_u(ps, "run", "rank", 0);
    if (get_entry(ps, "run", "trainable", 0))
        e->run_trainable = get_u(ps, "run", "trainable", 0);
    return 0;
}

void experiment_free(struct experiment *e)
{
    if (!e)
        return;
    free(e->source);
    free(e->name);
    free(e->output);
    free(e->description);
    free(e->model.name);
    free(e->model.pretrain_dir);
    free(e->model.pretrain_data);
    for (size_t i = 0; i < e->n_datasets; i++) {
        free(e->datasets[i]);
        if (e->evals)
            free(e->evals[i]);
    }
    free(e->datasets);
    free(e->evals);
    free(e->prompt);
    free(e->shots);
    free(e->fractions);
    for (size_t i = 0; i < e->n_methods; i++)
        free(e->methods[i].sizes);
    free(e->methods);
    free(e->seeds);
    free(e->run_id);
    memset(e, 0, sizeof(*e));
}

int experiment_parse(struct experiment *e, const char *text, const char *where,
                     const char *const *overrides, size_t n_overrides)
{
    struct parser ps;
    int rc;

    memset(e, 0, sizeof(*e));
    if (!where)
        where = "(string)";
    rc = collect(&ps, text, where, overrides, n_overrides);
    if (rc == RL_OK && resolve(&ps, e))
        rc = ps.err_rc;
    parser_free(&ps);
    if (rc != RL_OK) {
        experiment_free(e);
        return rc;
    }
    e->source = xstrdup(where);
    return RL_OK;
}

int experiment_load(struct experiment *e, const char *path,
                    const char *const *overrides, size_t n_overrides)
{
    FILE *f;
    char *text;
    size_t n;
    int rc;

    memset(e, 0, sizeof(*e));
    f = fopen(path, "rb");
    if (!f)
        return rl_error_set(RL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    text = xmalloc(MAX_FILE_BYTES + 1);
    n = fread(text, 1, MAX_FILE_BYTES + 1, f);
    if (ferror(f)) {
        fclose(f);
        free(text);
        return rl_error_set(RL_ERR_IO, "%s: read error", path);
    }
    fclose(f);
    if (n > MAX_FILE_BYTES) {
        free(text);
        return rl_error_set(RL_ERR_ARG, "%s: larger than %u bytes; not an experiment file", path,
                            MAX_FILE_BYTES);
    }
    if (memchr(text, '\0', n)) {
        free(text);
        return rl_error_set(RL_ERR_ARG, "%s: contains a NUL byte; not an experiment file", path);
    }
    text[n] = '\0';
    rc = experiment_parse(e, text, path, overrides, n_overrides);
    free(text);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* stage 3: expand                                                           */

static size_t method_runs(const struct exp_method *m)
{
    return m->n_sizes ? m->n_sizes : 1;
}

static bool mul_ok(size_t *acc, size_t b)
{
    return size_mul_ok(*acc, b, acc);
}

size_t experiment_n_runs(const struct experiment *e)
{
    size_t per = 0, n;

    for (size_t i = 0; i < e->n_methods; i++)
        if (!size_add_ok(per, method_runs(&e->methods[i]), &per))
            return SIZE_MAX;
    n = per;
    if (!mul_ok(&n, e->n_datasets) || !mul_ok(&n, e->n_shots + e->n_fractions) ||
        !mul_ok(&n, e->n_seeds))
        return SIZE_MAX;
    return n;
}

/* shortest text that strtod reads back as v */
static void fmt_double(char *buf, size_t cap, double v)
{
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, cap, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            return;
    }
}

/* a file-name-safe tag for a dataset spec: "fashion-mnist", "dtd" */
static void dataset_tag(const char *spec, char *buf, size_t cap)
{
    size_t len = strip_split(spec), o = 0;
    const char *colon = memchr(spec, ':', len), *start = spec, *end = spec + len;

    if (colon) {
        start = colon + 1;
        while (end > start && end[-1] == '/')
            end--;
        for (const char *p = start; p < end; p++)
            if (*p == '/')
                start = p + 1;
        if (start == end) {
            start = spec;
            end = colon;
        }
    }
    for (const char *p = start; p < end && o + 1 < cap; p++)
        buf[o++] = ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                    (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.') ? *p : '_';
    buf[o] = '\0';
}

static char *dup_or_null(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

void run_plan_free(struct run_plan *p)
{
    if (!p)
        return;
    free(p->id);
    free(p->experiment);
    free(p->output);
    free(p->description);
    free(p->model.name);
    free(p->model.pretrain_dir);
    free(p->model.pretrain_data);
    free(p->dataset);
    free(p->eval);
    free(p->prompt);
    memset(p, 0, sizeof(*p));
}

void run_plans_free(struct run_plan *plans, size_t n)
{
    if (!plans)
        return;
    for (size_t i = 0; i < n; i++)
        run_plan_free(&plans[i]);
    free(plans);
}

static void plan_copy(struct run_plan *dst, const struct run_plan *src)
{
    *dst = *src;
    dst->id = dup_or_null(src->id);
    dst->experiment = dup_or_null(src->experiment);
    dst->output = dup_or_null(src->output);
    dst->description = dup_or_null(src->description);
    dst->model.name = dup_or_null(src->model.name);
    dst->model.pretrain_dir = dup_or_null(src->model.pretrain_dir);
    dst->model.pretrain_data = dup_or_null(src->model.pretrain_data);
    dst->dataset = dup_or_null(src->dataset);
    dst->eval = dup_or_null(src->eval);
    dst->prompt = dup_or_null(src->prompt);
}

static int cmp_id(const void *a, const void *b)
{
    const struct run_plan *const *x = a, *const *y = b;

    return strcmp((*x)->id, (*y)->id);
}

/* r, budget, counts for one (dataset, method, size) */
static int plan_size(const struct experiment *e, const struct exp_method *m, size_t size_i,
                     struct run_plan *base, exp_shapes_fn shapes, void *ctx)
{
    const struct adapter_shape *sh = NULL;
    size_t nsh = 0, r = 0, count = 0;
    int rc;

    base->budget = 0;
    base->adapter.r = 0;
    base->n_trainable = 0;
    if (e->run_rank && !m->by_budget)
        return rl_error_set(RL_ERR_ARG, "%s: run.rank pins the rank a budget matched, but %s "
                            "uses method.rank", e->source, m->ops->name);
    if (m->n_sizes) {
        if (m->by_budget) {
            base->budget = m->sizes[size_i];
            if (e->run_rank)
                r = e->run_rank;
            else if (!shapes)
                return rl_error_set(RL_ERR_ARG, "%s: method.budget (%s) needs the model's layer "
                                    "shapes to pick a rank", e->source, m->ops->name);
        } else {
            r = m->sizes[size_i];
        }
        base->adapter.r = r;
    }
    if (shapes) {
        rc = shapes(ctx, base, &sh, &nsh);
        if (rc != RL_OK)
            return rc;
        if (m->by_budget && !e->run_rank) {
            rc = adapter_match_budget(m->ops, &base->adapter, sh, nsh, base->budget, &r, &count);
            if (rc != RL_OK)
                return rl_error_set(rc, "%s: %s at budget %zu: %s", e->source, m->ops->name,
                                    base->budget, rl_error_msg());
            base->adapter.r = r;
        }
        for (size_t i = 0; i < nsh; i++) {
            rc = adapter_check(m->ops, &base->adapter, sh[i].d_out, sh[i].d_in);
            if (rc != RL_OK)
                return rl_error_set(rc, "%s: %s with rank %zu: %s", e->source, m->ops->name,
                                    base->adapter.r, rl_error_msg());
        }
        base->n_trainable = adapter_count(m->ops, &base->adapter, sh, nsh);
    } else if (e->run_trainable) {
        base->n_trainable = e->run_trainable;
    }
    return RL_OK;
}

int experiment_expand(const struct experiment *e, exp_shapes_fn shapes, void *ctx,
                      struct run_plan **plans_out, size_t *n_out)
{
    size_t n = experiment_n_runs(e), k = 0, n_data = e->n_shots + e->n_fractions;
    struct run_plan *plans, base;
    int rc = RL_OK;

    *plans_out = NULL;
    *n_out = 0;
    if (n == SIZE_MAX || n > 1000000)
        return rl_error_set(RL_ERR_ARG, "%s: the grid is too large (more than a million runs)",
                            e->source);
    if (e->run_id && n != 1)
        return rl_error_set(RL_ERR_ARG, "%s: [run] pins one run but the grid has %zu", e->source,
                            n);
    plans = xcalloc(n ? n : 1, sizeof(*plans));
    memset(&base, 0, sizeof(base));
    base.experiment = e->name;
    base.output = e->output;
    base.description = e->description;
    base.model = e->model;
    base.prompt = e->prompt;
    base.image_size = e->image_size;
    base.eval_limit = e->eval_limit;
    base.templates = e->templates;
    base.augment = e->augment;
    for (size_t d = 0; d < e->n_datasets && rc == RL_OK; d++) {
        char tag[128] = "";

        if (e->n_datasets > 1)
            dataset_tag(e->datasets[d], tag, sizeof(tag));
        base.dataset = e->datasets[d];
        base.eval = e->evals[d];
        for (size_t mi = 0; mi < e->n_methods && rc == RL_OK; mi++) {
            const struct exp_method *m = &e->methods[mi];

            base.method = m->ops->name;
            base.adapter = m->adapter;
            base.profile = m->profile;
            base.targets = m->targets;
            base.train = m->train;
            for (size_t si = 0; si < method_runs(m) && rc == RL_OK; si++) {
                char size_part[48] = "";

                rc = plan_size(e, m, si, &base, shapes, ctx);
                if (rc != RL_OK)
                    break;
                if (m->n_sizes)
                    snprintf(size_part, sizeof(size_part), "-%c%zu", m->by_budget ? 'b' : 'r',
                             m->sizes[si]);
                for (size_t di = 0; di < n_data; di++) {
                    for (size_t zi = 0; zi < e->n_seeds; zi++) {
                        struct run_plan *p = &plans[k];
                        char data_part[48], id[512];

                        if (di < e->n_shots) {
                            base.shots = e->shots[di];
                            base.fraction = 0;
                            snprintf(data_part, sizeof(data_part), "s%zu", base.shots);
                        } else {
                            char f[32];

                            base.shots = 0;
                            base.fraction = e->fractions[di - e->n_shots];
                            fmt_double(f, sizeof(f), base.fraction);
                            snprintf(data_part, sizeof(data_part), "f%s", f);
                        }
                        base.seed = e->seeds[zi];
                        base.sample_seed = e->sample_seed_set ? e->sample_seed : base.seed;
                        base.adapter.seed = m->init_seed_set ? m->init_seed : base.seed;
                        base.train.seed = m->train.seed_set ? m->train.seed : base.seed;
                        base.train.seed_set = true;
                        snprintf(id, sizeof(id), "%s%s%s%s-%s-seed%llu", tag, *tag ? "-" : "",
                                 m->ops->name, size_part, data_part,
                                 (unsigned long long)base.seed);
                        base.id = e->run_id ? e->run_id : id;
                        base.index = k;
                        plan_copy(p, &base);
                        k++;
                    }
                }
            }
        }
    }
    if (rc == RL_OK) {
        struct run_plan **order = xmalloc_array(n ? n : 1, sizeof(*order));

        for (size_t i = 0; i < n; i++)
            order[i] = &plans[i];
        qsort(order, n, sizeof(*order), cmp_id);
        for (size_t i = 1; i < n && rc == RL_OK; i++)
            if (!strcmp(order[i - 1]->id, order[i]->id))
                rc = rl_error_set(RL_ERR_ARG, "%s: two runs get the id '%s' (give the datasets "
                                  "distinct names)", e->source, order[i]->id);
        free(order);
    }
    if (rc != RL_OK) {
        run_plans_free(plans, k);
        return rc;
    }
    *plans_out = plans;
    *n_out = n;
    return RL_OK;
}

size_t run_plan_total_steps(const struct run_plan *p, size_t n_train_items)
{
    size_t per_step, per_epoch, total;

    if (p->train.steps)
        return p->train.steps;
    if (!size_mul_ok(p->train.batch, p->train.accumulate, &per_step) || per_step == 0)
        return SIZE_MAX;
    per_epoch = n_train_items / per_step + (n_train_items % per_step != 0);
    if (per_epoch < p->train.min_epoch_steps)
        per_epoch = p->train.min_epoch_steps;
    if (!size_mul_ok(per_epoch, p->train.epochs, &total))
        return SIZE_MAX;
    return total;
}

/* ------------------------------------------------------------------------ */
/* rendering                                                                 */

struct sbuf {
    char *s;
    size_t len, cap;
};

static void sb_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    RL_ASSERT(n >= 0);
    if (b->len + (size_t)n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;

        while (b->len + (size_t)n + 1 > cap)
            cap *= 2;
        b->s = xrealloc_array(b->s, cap, 1);
        b->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* key = value, wrapped onto indented continuation lines at single spaces */
static void sb_kv(struct sbuf *b, const char *key, const char *value)
{
    size_t col = strlen(key) + 3;
    const char *p = value;

    sb_printf(b, "%s =", key);
    if (!*p) {
        sb_printf(b, "\n");
        return;
    }
    sb_printf(b, " ");
    while (*p) {
        /* the longest piece that fits, ending before a single space */
        size_t len = strlen(p), cut = len;

        if (col + len > WRAP_COL && !strchr(p, '=')) {
            size_t best = 0;

            for (size_t i = 1; i + 1 < len; i++)
                if (p[i] == ' ' && p[i - 1] != ' ' && p[i + 1] != ' ' && p[i + 1] != ';' &&
                    p[i + 1] != '#' && (col + i <= WRAP_COL || !best))
                    best = i;
            if (best)
                cut = best;
        }
        sb_printf(b, "%.*s\n", (int)cut, p);
        p += cut;
        if (*p == ' ') {
            p++;
            sb_printf(b, "    ");
            col = 4;
        }
    }
}

static void sb_kv_fmt(struct sbuf *b, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void sb_kv_fmt(struct sbuf *b, const char *key, const char *fmt, ...)
{
    char v[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(v, sizeof(v), fmt, ap);
    va_end(ap);
    sb_kv(b, key, v);
}

static void sb_kv_d(struct sbuf *b, const char *key, double v)
{
    char f[40];

    fmt_double(f, sizeof(f), v);
    sb_kv(b, key, f);
}

/* shortest text that reads back as the same float */
static void sb_kv_f(struct sbuf *b, const char *key, float v)
{
    char f[40];

    for (int prec = 1; prec <= 9; prec++) {
        snprintf(f, sizeof(f), "%.*g", prec, (double)v);
        if ((float)strtod(f, NULL) == v)
            break;
    }
    sb_kv(b, key, f);
}

static void sb_kv_u(struct sbuf *b, const char *key, size_t v)
{
    sb_kv_fmt(b, key, "%zu", v);
}

static void sb_kv_u64(struct sbuf *b, const char *key, uint64_t v)
{
    sb_kv_fmt(b, key, "%llu", (unsigned long long)v);
}

static const char *towers_text(unsigned t)
{
    return t == (EXP_TOWER_VISION | EXP_TOWER_TEXT) ? "vision, text"
         : t == EXP_TOWER_VISION ? "vision" : "text";
}

static void layers_text(const struct exp_targets *t, char *buf, size_t cap)
{
    if (t->layer_lo == 0 && t->layer_hi == SIZE_MAX)
        snprintf(buf, cap, "*");
    else if (t->layer_lo == t->layer_hi)
        snprintf(buf, cap, "%zu", t->layer_lo);
    else
        snprintf(buf, cap, "%zu-%zu", t->layer_lo, t->layer_hi);
}

static void modules_text(unsigned mods, const char *sep, char *buf, size_t cap)
{
    size_t off = 0;

    buf[0] = '\0';
    for (int i = 0; i < EXP_N_MODULES && off < cap; i++) {
        int n;

        if (!(mods & (1u << i)))
            continue;
        n = snprintf(buf + off, cap - off, "%s%s", off ? sep : "", w_module[i]);
        if (n < 0)
            break;
        off += (size_t)n;
    }
}

int exp_targets_spec(const struct exp_targets *t, char *buf, size_t size)
{
    char layers[48], mods[128];
    const char *names[2] = { "vision", "text" };
    size_t off = 0;

    layers_text(t, layers, sizeof(layers));
    modules_text(t->modules, ",", mods, sizeof(mods));
    if (size)
        buf[0] = '\0';
    for (int i = 0; i < 2; i++) {
        int n;

        if (!(t->towers & (1u << i)))
            continue;
        n = snprintf(buf + off, size - off, "%s%s:%s:%s", off ? ";" : "", names[i], layers, mods);
        if (n < 0 || (size_t)n >= size - off)
            return rl_error_set(RL_ERR_ARG, "targets spec longer than %zu characters", size);
        off += (size_t)n;
    }
    return RL_OK;
}

char *run_plan_to_ini(const struct run_plan *p)
{
    struct sbuf b = { 0 };
    char tmp[256];
    bool has_rank = p->adapter.r && adapter_ops_find(p->method) &&
                    (adapter_ops_find(p->method)->flags & ADAPTER_F_RANK);

    sb_printf(&b, "; run %s of experiment %s, every setting resolved\n", p->id, p->experiment);
    sb_printf(&b, "\n[experiment]\n");
    sb_kv(&b, "name", p->experiment);
    sb_kv(&b, "output", p->output);
    sb_kv(&b, "description", p->description);

    sb_printf(&b, "\n[model]\n");
    sb_kv(&b, "name", p->model.name);
    sb_kv(&b, "pretrain_dir", p->model.pretrain_dir);
    sb_kv(&b, "pretrain_data", p->model.pretrain_data);
    sb_kv_u(&b, "pretrain_corpus", p->model.pretrain_corpus);
    sb_kv_u(&b, "pretrain_steps", p->model.pretrain_steps);
    sb_kv_u(&b, "pretrain_batch", p->model.pretrain_batch);
    sb_kv_d(&b, "pretrain_lr", p->model.pretrain_lr);
    sb_kv_d(&b, "pretrain_weight_decay", p->model.pretrain_weight_decay);
    sb_kv_u(&b, "pretrain_warmup", p->model.pretrain_warmup);
    sb_kv_u64(&b, "pretrain_seed", p->model.pretrain_seed);

    sb_printf(&b, "\n[data]\n");
    sb_kv(&b, "dataset", p->dataset);
    sb_kv(&b, "eval", p->eval);
    sb_kv_u(&b, "image_size", p->image_size);
    sb_kv(&b, "prompt", p->prompt);
    sb_kv(&b, "templates", w_templates[p->templates]);
    sb_kv(&b, "augment", w_augment[p->augment]);
    if (p->shots)
        sb_kv_u(&b, "shots", p->shots);
    else
        sb_kv_d(&b, "fractions", p->fraction);
    sb_kv_u64(&b, "sample_seed", p->sample_seed);
    sb_kv_u(&b, "eval_limit", p->eval_limit);

    sb_printf(&b, "\n[method]\n");
    sb_kv(&b, "methods", p->method);
    if (has_rank && p->budget)
        sb_kv_u(&b, "budget", p->budget);
    else if (has_rank)
        sb_kv_u(&b, "rank", p->adapter.r);
    sb_kv_f(&b, "alpha", p->adapter.alpha);
    sb_kv_f(&b, "dropout", p->adapter.dropout);
    sb_kv(&b, "rslora", p->adapter.rslora ? "true" : "false");
    sb_kv_f(&b, "vera_d_init", p->adapter.vera_d_init);
    sb_kv(&b, "profile", p->profile);
    sb_kv(&b, "basis", w_basis[p->adapter.basis]);
    sb_kv(&b, "towers", towers_text(p->targets.towers));
    layers_text(&p->targets, tmp, sizeof(tmp));
    sb_kv(&b, "layers", tmp);
    modules_text(p->targets.modules, ", ", tmp, sizeof(tmp));
    sb_kv(&b, "modules", tmp);
    sb_kv_u64(&b, "init_seed", p->adapter.seed);

    sb_printf(&b, "\n[train]\n");
    if (p->train.steps)
        sb_kv_u(&b, "steps", p->train.steps);
    else
        sb_kv_u(&b, "epochs", p->train.epochs);
    sb_kv_u(&b, "min_epoch_steps", p->train.min_epoch_steps);
    sb_kv_u(&b, "batch", p->train.batch);
    sb_kv_u(&b, "accumulate", p->train.accumulate);
    sb_kv_d(&b, "lr", p->train.lr);
    sb_kv_d(&b, "weight_decay", p->train.weight_decay);
    sb_kv_d(&b, "beta1", p->train.beta1);
    sb_kv_d(&b, "beta2", p->train.beta2);
    sb_kv_d(&b, "eps", p->train.eps);
    sb_kv_u(&b, "warmup", p->train.warmup);
    sb_kv_d(&b, "lr_min", p->train.lr_min);
    sb_kv_d(&b, "clip", p->train.clip);
    sb_kv_u(&b, "eval_every", p->train.eval_every);
    sb_kv_u(&b, "checkpoint_every", p->train.checkpoint_every);
    sb_kv_u64(&b, "seed", p->train.seed);

    sb_printf(&b, "\n[sweep]\n");
    sb_kv_u64(&b, "seeds", p->seed);
    sb_kv_u(&b, "jobs", 1);

    sb_printf(&b, "\n[run]\n");
    sb_kv(&b, "id", p->id);
    if (has_rank && p->budget)
        sb_kv_u(&b, "rank", p->adapter.r);
    if (p->n_trainable)
        sb_kv_u(&b, "trainable", p->n_trainable);
    return b.s;
}
