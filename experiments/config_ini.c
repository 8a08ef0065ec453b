/*
 * config_ini.c: stages 1 and 2 of config.c: collecting an experiment file
 * (libinih through our line reader) and the overrides into slots, then
 * resolving the slots into struct experiment (experiment_parse,
 * experiment_load, experiment_free).
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

    if (cfg_parse_value(&cfg_keys[k], en->value, &v, w, sizeof(w)) == 0) {
        cfg_value_free(&v);
        return 0;
    }
    fail_at(ps, en->line, RL_ERR_ARG, "%s: %s.%s%s%s = '%.120s': %s", loc(ps, en, where,
            sizeof(where)), cfg_keys[k].section, cfg_keys[k].key, suf ? "." : "", suf ? suf : "",
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

    if (!cfg_section_known(section)) {
        fail_at(ps, line, RL_ERR_ARG, "%s: unknown section [%s] (valid sections: %s)", at,
                section, cfg_join_words(cfg_sections, list, sizeof(list)));
        return -1;
    }
    if (klen < sizeof(keyname)) {
        memcpy(keyname, name, klen);
        keyname[klen] = '\0';
        k = cfg_key_index(section, keyname);
    }
    if (k < 0) {
        fail_at(ps, line, RL_ERR_ARG, "%s: unknown key %s.%.*s (valid keys in [%s]: %s)", at,
                section, (int)klen, name, section, cfg_section_keys(section, list, sizeof(list)));
        return -1;
    }
    *k_out = (size_t)k;
    *s_out = 0;
    if (!suffix)
        return 0;
    if (!(cfg_keys[k].flags & F_SUFFIX)) {
        fail_at(ps, line, RL_ERR_ARG, "%s: %s.%s = '%.120s': %s.%s takes no .METHOD suffix (only "
                "the [method] keys but methods and the [train] keys do)", at, section, name,
                value, section, cfg_keys[k].key);
        return -1;
    }
    m = cfg_method_index(suffix);
    if (m < 0) {
        fail_at(ps, line, RL_ERR_ARG, "%s: %s.%s = '%.120s': unknown method '%s' in the suffix "
                "(known: %s)", at, section, name, value, suffix, cfg_method_names(list, sizeof(list)));
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
                    at, value, cfg_keys[ps->pending_key].section, name);
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
            if (!cfg_section_known(name))
                fail_at(ps, ps->line, RL_ERR_ARG, "%s:%d: unknown section [%s] (valid sections: "
                        "%s)", ps->where, ps->line, name, cfg_join_words(cfg_sections, list,
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
    int k = cfg_key_index(section, key);
    const struct entry *en;
    const char *text;
    char w[512];

    RL_ASSERT(k >= 0);
    en = effective(ps, (size_t)k, s);
    text = en ? en->value : cfg_keys[k].def;
    RL_ASSERT(text);
    if (cfg_parse_value(&cfg_keys[k], text, v, w, sizeof(w)))
        RL_ASSERT(!"a checked value failed to parse");
}

static const struct entry *get_entry(struct parser *ps, const char *section, const char *key,
                                     size_t s)
{
    int k = cfg_key_index(section, key);

    RL_ASSERT(k >= 0);
    return effective(ps, (size_t)k, s);
}

static char *get_str(struct parser *ps, const char *section, const char *key)
{
    const struct entry *en = get_entry(ps, section, key, 0);
    int k = cfg_key_index(section, key);

    if (en)
        return xstrdup(en->value);
    return cfg_keys[k].def ? xstrdup(cfg_keys[k].def) : NULL;
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
    int ka = cfg_key_index(sec, a), kb = cfg_key_index(sec, b);
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
    get(ps, "train", "recompute", s, &v);
    t->recompute = v.b;
    get(ps, "train", "precision", s, &v);
    t->precision = (unsigned)v.word;
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
            cfg_value_free(&v);
        }
    }
    adapter_cfg_defaults(&m->adapter, ops->name, 0);
    get(ps, "method", "profile", s, &v);
    m->profile = cfg_w_profile[v.word];
    RL_ASSERT(adapter_cfg_profile(&m->adapter, m->profile) == RL_OK);
    m->adapter.alpha = (float)get_d(ps, "method", "alpha", s);
    m->adapter.dropout = (float)get_d(ps, "method", "dropout", s);
    get(ps, "method", "rslora", s, &v);
    m->adapter.rslora = v.b;
    m->adapter.vera_d_init = (float)get_d(ps, "method", "vera_d_init", s);
    get(ps, "method", "basis", s, &v);
    RL_ASSERT(adapter_basis_parse(cfg_w_basis[v.word], &m->adapter.basis) == RL_OK);
    get(ps, "method", "towers", s, &v);
    m->targets.towers = v.mask;
    cfg_value_free(&v);
    get(ps, "method", "layers", s, &v);
    m->targets.layer_lo = v.lo;
    m->targets.layer_hi = v.hi;
    get(ps, "method", "modules", s, &v);
    m->targets.modules = v.mask;
    cfg_value_free(&v);
    get(ps, "method", "init_seed", s, &v);
    m->init_seed_set = !v.run;
    m->init_seed = v.u64;
    return resolve_train(ps, s, &m->train);
}

/* same dataset and split ("x" reads as "x:train") */
static bool same_split(const char *a, const char *b)
{
    size_t la = cfg_strip_split(a), lb = cfg_strip_split(b);
    const char *sa = a[la] ? a + la : ":train", *sb = b[lb] ? b + lb : ":train";

    return la == lb && !memcmp(a, b, la) && !strcmp(sa, sb);
}

/* data.val, and the checks that involve data.dataset and data.eval */
static int resolve_val(struct parser *ps, struct experiment *e)
{
    const struct entry *en = get_entry(ps, "data", "val", 0);
    struct value v;
    char l[512];
    const char *clash = NULL;

    get(ps, "data", "val", 0, &v);
    e->val.kind = (enum exp_val_kind)v.word;
    e->val.per_class = v.u;
    e->val.fraction = v.d;
    if (v.word == EXP_VAL_SPEC) {
        e->val.spec = v.ls[0];
        free(v.ls);
    }
    if (e->val.kind != EXP_VAL_SPEC)
        return 0;
    if (e->n_datasets != 1) {
        fail_at(ps, en->line ? en->line : -1, RL_ERR_ARG, "%s: data.val = '%.120s': a validation "
                "dataset pairs with one data.dataset, there are %zu (hold items out instead: "
                "val = N or a fraction)", loc(ps, en, l, sizeof(l)), en->value, e->n_datasets);
        return -1;
    }
    if (same_split(e->val.spec, e->evals[0]))
        clash = "the eval (test) set: the test set must not choose anything";
    else if (same_split(e->val.spec, e->datasets[0]))
        clash = "the training set: hold items out of it with val = N or a fraction instead";
    if (clash) {
        fail_at(ps, en->line ? en->line : -1, RL_ERR_ARG, "%s: data.val = '%.120s': is %s",
                loc(ps, en, l, sizeof(l)), en->value, clash);
        return -1;
    }
    return 0;
}

static int resolve(struct parser *ps, struct experiment *e)
{
    struct value v;
    char l[512];

    e->name = get_str(ps, "experiment", "name");
    e->output = get_str(ps, "experiment", "output");
    if (!e->output) {
        const char *root = experiment_output_root();
        size_t n = strlen(root) + strlen(e->name) + 32;

        e->output = xmalloc(n);
        snprintf(e->output, n, "%s/runs/%s", root, e->name);
    }
    e->description = get_str(ps, "experiment", "description");

    e->model.name = get_str(ps, "model", "name");
    e->model.preset = cfg_is_preset(e->model.name);
    e->model.pretrain_dir = get_str(ps, "model", "pretrain_dir");
    if (!e->model.pretrain_dir) {
        const char *root = experiment_output_root();
        size_t n = strlen(root) + strlen(e->model.name) + 32;
        const char *base = strrchr(e->model.name, '/');

        e->model.pretrain_dir = xmalloc(n);
        snprintf(e->model.pretrain_dir, n, "%s/models/%s", root, base ? base + 1 : e->model.name);
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
            size_t len = cfg_strip_split(e->datasets[i]);

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
    if (resolve_val(ps, e))
        return -1;

    get(ps, "method", "methods", 0, &v);
    e->methods = xcalloc(v.n, sizeof(*e->methods));
    for (size_t i = 0; i < v.n; i++) {
        if (resolve_method(ps, v.lu[i], &e->methods[i])) {
            e->n_methods = i + 1;
            cfg_value_free(&v);
            return -1;
        }
        e->n_methods = i + 1;
    }
    cfg_value_free(&v);

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
    free(e->val.spec);
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
