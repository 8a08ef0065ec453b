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
#include "core/utf8.h"
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
    /* stage 2: per key, the item of an axis list that the setting being
     * resolved takes (NULL: the key's own text); N_KEYS entries or NULL */
    const char **pick;
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
    char lhs[160], section[64], *val;
    size_t k, s, a, b, bad = utf8_invalid_at((const unsigned char *)ov, strlen(ov));
    struct entry *en;
    int rc;

    if (bad < strlen(ov)) {
        fail_at(ps, -1, RL_ERR_ARG, "-s: an override is not valid UTF-8 (byte 0x%02x at offset "
                "%zu); values are stored as UTF-8 text", (unsigned char)ov[bad], bad);
        return -1;
    }
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
    val = xstrdup(eq);
    for (size_t n = strlen(val); n && (val[n - 1] == ' ' || val[n - 1] == '\t'); n--)
        val[n - 1] = '\0';
    if (find_key(ps, section, dot + 1, val, "-s", -1, &k, &s)) {
        free(val);
        return -1;
    }
    en = slot(ps, k, s);
    free(en->value);
    en->value = val;
    en->src = "-s";
    en->line = 0;
    rc = check_entry(ps, k, s, en);
    return rc;
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
    if (ps->pick && ps->pick[k])
        text = ps->pick[k];
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

/* Whether an axis key changes anything for method ops (slot s): the [train]
 * keys for every method that trains (of the pairs steps / epochs and
 * lr_min / lr_min_ratio only the one that applies), alpha for LoRA and
 * RandLoRA, dropout for the methods with branch dropout, rslora for LoRA,
 * vera_d_init for VeRA, profile and basis for RandLoRA. A list on a key
 * that does not apply is not an axis for that method (its first item is
 * stored, unused). */
static bool axis_applies(struct parser *ps, const struct adapter_ops *ops, size_t k, size_t s)
{
    const char *key = cfg_keys[k].key, *name = ops->name;
    int p;

    if (!strcmp(cfg_keys[k].section, "train")) {
        if (!strcmp(name, "none"))
            return false;
        if (!strcmp(key, "steps") || !strcmp(key, "epochs")) {
            p = pair(ps, "train", "steps", "epochs", s);
            return p >= 0 && !strcmp(key, p == 2 ? "epochs" : "steps");
        }
        if (!strcmp(key, "lr_min") || !strcmp(key, "lr_min_ratio")) {
            p = pair(ps, "train", "lr_min", "lr_min_ratio", s);
            return p >= 0 && !strcmp(key, p == 2 ? "lr_min_ratio" : "lr_min");
        }
        return true;
    }
    if (!strcmp(key, "alpha"))
        return !strcmp(name, "lora") || !strcmp(name, "randlora");
    if (!strcmp(key, "dropout"))
        return (ops->flags & ADAPTER_F_DROPOUT) != 0;
    if (!strcmp(key, "rslora"))
        return !strcmp(name, "lora");
    if (!strcmp(key, "vera_d_init"))
        return !strcmp(name, "vera");
    if (!strcmp(key, "profile") || !strcmp(key, "basis"))
        return !strcmp(name, "randlora");
    return false;
}

/* the method keys and [train] of one setting (the picks in ps->pick) */
static int resolve_setting(struct parser *ps, const struct adapter_ops *ops, size_t s,
                           struct exp_setting *st)
{
    struct value v;

    adapter_cfg_defaults(&st->adapter, ops->name, 0);
    get(ps, "method", "profile", s, &v);
    st->profile = cfg_w_profile[v.word];
    RL_ASSERT(adapter_cfg_profile(&st->adapter, st->profile) == RL_OK);
    st->adapter.alpha = (float)get_d(ps, "method", "alpha", s);
    st->adapter.dropout = (float)get_d(ps, "method", "dropout", s);
    get(ps, "method", "rslora", s, &v);
    st->adapter.rslora = v.b;
    st->adapter.vera_d_init = (float)get_d(ps, "method", "vera_d_init", s);
    get(ps, "method", "basis", s, &v);
    RL_ASSERT(adapter_basis_parse(cfg_w_basis[v.word], &st->adapter.basis) == RL_OK);
    return resolve_train(ps, s, &st->train);
}

/* "-lr0.003": an axis value as its run-id part */
static void axis_id_part(const struct keydef *kd, const struct value *v, char *buf, size_t cap)
{
    const char *tag = cfg_axis_tag(kd);
    char num[48];

    switch (kd->type) {
    case K_DOUBLE:
        cfg_fmt_id_number(num, sizeof(num), v->d);
        snprintf(buf, cap, "-%s%s", tag, num);
        break;
    case K_UINT:
        snprintf(buf, cap, "-%s%zu", tag, v->u);
        break;
    case K_WORD:
        snprintf(buf, cap, "-%s%s", tag, kd->words[v->word]);
        break;
    case K_BOOL:
        snprintf(buf, cap, "-%s%d", tag, v->b ? 1 : 0);
        break;
    default:
        RL_ASSERT(!"an axis of a type without an id form");
    }
}

struct axis {
    size_t key;
    char *buf, **items;     /* cfg_split_list of the key's text */
    size_t n;
};

/* The settings of method reg: the grid of the axis keys that apply to it and
 * have more than one item, the last axis fastest. */
static int resolve_settings(struct parser *ps, size_t reg, struct exp_method *m)
{
    const struct adapter_ops *ops = m->ops;
    size_t s = 1 + reg, n_axes = 0, total = 1;
    struct axis *ax = xcalloc(N_KEYS, sizeof(*ax));
    int rc = 0;

    for (size_t k = 0; k < N_KEYS && !rc; k++) {
        const struct entry *en;
        const char *text;
        char w[256];
        struct axis a = { k, NULL, NULL, 0 };

        if (!cfg_axis_tag(&cfg_keys[k]) || !axis_applies(ps, ops, k, s)) {
            if (ps->err_line)
                rc = -1;
            continue;
        }
        en = effective(ps, k, s);
        text = en ? en->value : cfg_keys[k].def;
        if (!text)
            continue;
        RL_ASSERT(cfg_split_list(text, &a.buf, &a.items, &a.n, w, sizeof(w)) == 0);
        if (a.n < 2) {
            free(a.buf);
            free(a.items);
            continue;
        }
        if (!size_mul_ok(total, a.n, &total) || total > EXP_MAX_RUNS) {
            char l[512];

            fail_at(ps, en->line ? en->line : -1, RL_ERR_ARG, "%s: %s.%s = '%.120s': the axes of "
                    "%s give more than %d settings", loc(ps, en, l, sizeof(l)),
                    cfg_keys[k].section, cfg_keys[k].key, en->value, ops->name, EXP_MAX_RUNS);
            free(a.buf);
            free(a.items);
            rc = -1;
            break;
        }
        ax[n_axes++] = a;
    }
    if (!rc) {
        ps->pick = xcalloc(N_KEYS, sizeof(*ps->pick));
        m->settings = xcalloc(total, sizeof(*m->settings));
        for (size_t i = 0; i < total && !rc; i++) {
            struct exp_setting *st = &m->settings[i];
            char tag[1024] = "";
            size_t idx = i, off = 0;

            for (size_t a = n_axes; a-- > 0;) {
                ps->pick[ax[a].key] = ax[a].items[idx % ax[a].n];
                idx /= ax[a].n;
            }
            rc = resolve_setting(ps, ops, s, st);
            for (size_t a = 0; a < n_axes; a++) {
                struct value v;

                get(ps, cfg_keys[ax[a].key].section, cfg_keys[ax[a].key].key, s, &v);
                axis_id_part(&cfg_keys[ax[a].key], &v, tag + off, sizeof(tag) - off);
                off += strlen(tag + off);
            }
            st->tag = xstrdup(tag);
            m->n_settings = i + 1;
        }
        free(ps->pick);
        ps->pick = NULL;
    }
    for (size_t a = 0; a < n_axes; a++) {
        free(ax[a].buf);
        free(ax[a].items);
    }
    free(ax);
    return rc;
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
    if (resolve_settings(ps, reg, m))
        return -1;
    m->adapter = m->settings[0].adapter;
    m->profile = m->settings[0].profile;
    m->train = m->settings[0].train;
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
    for (size_t i = 0; i < e->n_methods; i++) {
        free(e->methods[i].sizes);
        for (size_t j = 0; j < e->methods[i].n_settings; j++)
            free(e->methods[i].settings[j].tag);
        free(e->methods[i].settings);
    }
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
    {
        size_t len = strlen(text), bad = utf8_invalid_at((const unsigned char *)text, len);

        if (bad < len) {
            size_t line = 1, col = 1;

            for (size_t i = 0; i < bad; i++) {
                col = text[i] == '\n' ? 1 : col + 1;
                line += text[i] == '\n';
            }
            return rl_error_set(RL_ERR_ARG, "%s:%zu: not valid UTF-8 (byte 0x%02x at column %zu); "
                                "experiment files are UTF-8 text", where, line,
                                (unsigned char)text[bad], col);
        }
    }
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
