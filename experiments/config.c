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
 *      suffixable cfg_keys, plus the checks that involve two keys.
 *   3. expand: the grid into plans (budget matching through the caller's
 *      shapes), and a plan rendered back as INI text.
 * The key table is the single source of the cfg_keys, their types, ranges and
 * defaults; config.h and the README document it.
 *
 * This file holds the key table and the typed values (parsing and checking
 * one value); stages 1-2 live in config_ini.c, stage 3 in config_plan.c and
 * the rendering in config_render.c; config_impl.h declares what they share.
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
#include "experiments/config_impl.h"

#define MAX_WORD        160          /* longest run without a space in a value */
#define MAX_LIST        4096
#define FLOAT_TINY      1e-30        /* smallest non-zero magnitude of a float key */
#define MAX_PATH_CHARS  1024         /* a path or dataset spec (file names built on it
                                        stay within the 4096 of PATH_MAX) */

/* ------------------------------------------------------------------------ */
/* the key table                                                             */

const char *const cfg_w_templates[] = { "prompt", "dataset", NULL };
const char *const cfg_w_augment[]   = { "none", "flip", "crop_flip", NULL };
const char *const cfg_w_profile[]   = { "peft", "paper", "paper_2024", NULL };
const char *const cfg_w_precision[] = { "fp32", "bf16", NULL };   /* enum clip_precision */
const char *const cfg_w_basis[]     = { "dense", "sparse", "very_sparse", NULL };
const char *const cfg_w_module[EXP_N_MODULES] = {
    "q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2",
};
static const char *const presets[] = {
    "clip-tiny", "clip-vit-b-32", "clip-vit-b-16", "clip-vit-l-14", NULL,
};

#define BIG 1e9
#define UMAX 18446744073709551615.0

const struct keydef cfg_keys[] = {
    { "experiment", "name",         K_NAME,   0, "experiment", 0, 0, NULL },
    { "experiment", "output",       K_PATH,   0, NULL, 0, 0, NULL },
    { "experiment", "description",  K_TEXT,   0, "", 0, 0, NULL },

    { "model", "name",                  K_MODEL,  0, "clip-tiny", 0, 0, NULL },
    { "model", "pretrain_dir",          K_PATH,   0, NULL, 0, 0, NULL },
    { "model", "pretrain_data",         K_SPEC,   0, "shapes", 0, 0, NULL },
    { "model", "pretrain_corpus",       K_UINT,   0, "20000", 1, BIG, NULL },
    { "model", "pretrain_steps",        K_UINT,   0, "2000", 1, BIG, NULL },
    { "model", "pretrain_batch",        K_UINT,   0, "64", 1, 1e6, NULL },
    { "model", "pretrain_lr",           K_DOUBLE, 0, "1e-3", FLOAT_TINY, 10, NULL },
    { "model", "pretrain_weight_decay", K_DOUBLE, 0, "0.1", 0, 10, NULL },
    { "model", "pretrain_warmup",       K_UINT,   0, "100", 0, BIG, NULL },
    { "model", "pretrain_seed",         K_SEED,   0, "0", 0, 0, NULL },

    { "data", "dataset",     K_SPECS,     0, "fashion-mnist", 0, 0, NULL },
    { "data", "eval",        K_SPECS,     0, NULL, 0, 0, NULL },
    { "data", "image_size",  K_UINT,      0, "0", 0, 4096, NULL },
    { "data", "prompt",      K_PROMPT,    0, "a photo of a {}.", 0, 0, NULL },
    { "data", "templates",   K_WORD,      0, "prompt", 0, 0, cfg_w_templates },
    { "data", "augment",     K_WORD,      0, "none", 0, 0, cfg_w_augment },
    { "data", "shots",       K_UINTS,     0, NULL, 1, 1e6, NULL },
    { "data", "fractions",   K_FRACTIONS, 0, NULL, 0, 1, NULL },
    { "data", "sample_seed", K_SEED,      F_RUN, "run", 0, 0, NULL },
    { "data", "eval_limit",  K_UINT,      0, "0", 0, UMAX, NULL },
    { "data", "val",         K_VAL,       0, "none", 1, 1e6, NULL },

    { "method", "methods",     K_METHODS, 0, "lora", 0, 0, NULL },
    { "method", "rank",        K_UINTS,   F_SUFFIX, NULL, 1, EXP_MAX_RANK, NULL },
    { "method", "budget",      K_UINTS,   F_SUFFIX, NULL, 1, UMAX, NULL },
    { "method", "alpha",       K_DOUBLE,  F_SUFFIX, "0", 0, 1e6, NULL },
    { "method", "dropout",     K_DOUBLE,  F_SUFFIX | F_HI_OPEN, "0", 0, 1, NULL },
    { "method", "rslora",      K_BOOL,    F_SUFFIX, "false", 0, 0, NULL },
    { "method", "vera_d_init", K_DOUBLE,  F_SUFFIX, "0.1", -1e6, 1e6, NULL },
    { "method", "profile",     K_WORD,    F_SUFFIX, "peft", 0, 0, cfg_w_profile },
    { "method", "basis",       K_WORD,    F_SUFFIX, "dense", 0, 0, cfg_w_basis },
    { "method", "nola_bases",  K_UINT,    F_SUFFIX, "0", 0, 1 << 24, NULL },
    { "method", "towers",      K_TOWERS,  F_SUFFIX, "vision, text", 0, 0, NULL },
    { "method", "layers",      K_LAYERS,  F_SUFFIX, "*", 0, 0, NULL },
    { "method", "modules",     K_MODULES, F_SUFFIX, "q_proj, k_proj, v_proj, fc1, fc2", 0, 0, NULL },
    { "method", "init_seed",   K_SEED,    F_SUFFIX | F_RUN, "run", 0, 0, NULL },

    { "train", "steps",            K_UINT,   F_SUFFIX, "1000", 1, BIG, NULL },
    { "train", "epochs",           K_UINT,   F_SUFFIX, NULL, 1, 1e6, NULL },
    { "train", "min_epoch_steps",  K_UINT,   F_SUFFIX, "10", 1, BIG, NULL },
    { "train", "batch",            K_UINT,   F_SUFFIX, "32", 1, 1e6, NULL },
    { "train", "accumulate",       K_UINT,   F_SUFFIX, "1", 1, 1e6, NULL },
    { "train", "lr",               K_DOUBLE, F_SUFFIX, "1e-3", FLOAT_TINY, 10, NULL },
    { "train", "weight_decay",     K_DOUBLE, F_SUFFIX, "0.01", 0, 10, NULL },
    { "train", "beta1",            K_DOUBLE, F_SUFFIX | F_HI_OPEN, "0.9", 0, 1, NULL },
    { "train", "beta2",            K_DOUBLE, F_SUFFIX | F_HI_OPEN, "0.999", 0, 1, NULL },
    { "train", "eps",              K_DOUBLE, F_SUFFIX, "1e-8", FLOAT_TINY, 1, NULL },
    { "train", "warmup",           K_UINT,   F_SUFFIX, "0", 0, BIG, NULL },
    { "train", "lr_min",           K_DOUBLE, F_SUFFIX, "0", 0, 10, NULL },
    { "train", "lr_min_ratio",     K_DOUBLE, F_SUFFIX, NULL, 0, 1, NULL },
    { "train", "clip",             K_DOUBLE, F_SUFFIX, "1.0", 0, 1e9, NULL },
    { "train", "eval_every",       K_UINT,   F_SUFFIX, "0", 0, BIG, NULL },
    { "train", "checkpoint_every", K_UINT,   F_SUFFIX, "0", 0, BIG, NULL },
    { "train", "recompute",        K_BOOL,   F_SUFFIX, "false", 0, 0, NULL },
    { "train", "precision",        K_WORD,   F_SUFFIX, "fp32", 0, 0, cfg_w_precision },
    { "train", "seed",             K_SEED,   F_SUFFIX | F_RUN, "run", 0, 0, NULL },

    { "sweep", "seeds", K_SEEDS, 0, "1", 0, 0, NULL },
    { "sweep", "jobs",  K_UINT,  0, "1", 1, 1024, NULL },

    { "run", "id",        K_NAME, 0, NULL, 0, 0, NULL },
    { "run", "rank",      K_UINT, 0, NULL, 1, EXP_MAX_RANK, NULL },
    { "run", "trainable", K_UINT, 0, NULL, 0, UMAX, NULL },
};

const size_t cfg_n_keys = sizeof(cfg_keys) / sizeof(cfg_keys[0]);

/* The keys that take a comma list expanded as a grid axis (the run id names
 * the value after the tag; "" = the value alone). The axes expand in the key
 * table's order above, the first one outermost. */
static const struct {
    const char *section, *key, *tag;
} axes[] = {
    { "method", "alpha", "alpha" },       { "method", "dropout", "drop" },
    { "method", "rslora", "rslora" },     { "method", "vera_d_init", "dinit" },
    { "method", "profile", "" },          { "method", "basis", "" },
    { "train", "steps", "steps" },        { "train", "epochs", "ep" },
    { "train", "batch", "bs" },           { "train", "accumulate", "acc" },
    { "train", "lr", "lr" },              { "train", "weight_decay", "wd" },
    { "train", "warmup", "warm" },        { "train", "lr_min", "lrmin" },
    { "train", "lr_min_ratio", "lrminr" }, { "train", "clip", "clip" },
};

const char *cfg_axis_tag(const struct keydef *kd)
{
    for (size_t i = 0; i < sizeof(axes) / sizeof(axes[0]); i++)
        if (!strcmp(axes[i].section, kd->section) && !strcmp(axes[i].key, kd->key))
            return axes[i].tag;
    return NULL;
}

const char *const cfg_sections[] = {
    "experiment", "model", "data", "method", "train", "sweep", "run", NULL,
};

/* indices of the keys the code refers to, found by name once */
int cfg_key_index(const char *section, const char *key)
{
    for (size_t i = 0; i < N_KEYS; i++)
        if (!strcmp(cfg_keys[i].section, section) && !strcmp(cfg_keys[i].key, key))
            return (int)i;
    return -1;
}

bool cfg_section_known(const char *s)
{
    for (size_t i = 0; cfg_sections[i]; i++)
        if (!strcmp(cfg_sections[i], s))
            return true;
    return false;
}

/* "a, b, c" into buf */
const char *cfg_join_words(const char *const *w, char *buf, size_t cap)
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

const char *cfg_section_keys(const char *section, char *buf, size_t cap)
{
    size_t off = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < N_KEYS && off < cap; i++) {
        int n;

        if (strcmp(cfg_keys[i].section, section))
            continue;
        n = snprintf(buf + off, cap - off, "%s%s", off ? ", " : "", cfg_keys[i].key);
        if (n < 0)
            break;
        off += (size_t)n;
    }
    return buf;
}

const char *cfg_method_names(char *buf, size_t cap)
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

int cfg_method_index(const char *name)
{
    const struct adapter_ops *const *r = adapter_registry();

    for (size_t i = 0; r[i]; i++)
        if (!strcmp(r[i]->name, name))
            return (int)i;
    return -1;
}

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
    &dataset_cifar100_coarse_ops, &dataset_folder_ops, &dataset_shapes_ops,
    &dataset_shapes_count_ops,
};

size_t cfg_strip_split(const char *s)
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
    size_t len = cfg_strip_split(s), nlen;
    const char *colon = memchr(s, ':', len);
    char known[512];
    size_t off = 0;

    nlen = colon ? (size_t)(colon - s) : len;
    if (strlen(s) > MAX_PATH_CHARS)
        return why(w, wn, "expected a dataset spec of at most %d characters", MAX_PATH_CHARS);
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
        cfg_value_free(out);
    return rc;
}

const char *experiment_output_root(void)
{
    const char *root = getenv("RANDLORA_OUT");

    return root && *root ? root : "out";
}
