/*
 * config_resolve.c: stage 2 of config.c: the collected slots (config_ini.c)
 * resolved into struct experiment: typed values, the exclusive pairs, the
 * per-method keys, and each method's hyperparameter axes expanded into
 * settings (struct exp_setting).
 */
#include "experiments/config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/status.h"
#include "experiments/config_impl.h"

/* ------------------------------------------------------------------------ */
/* stage 2: resolve                                                          */

/* the entry that applies for method slot s (0: plain only), or NULL */
static const struct entry *effective(struct parser *ps, size_t k, size_t s)
{
    const struct entry *en;

    if (s) {
        en = cfg_slot(ps, k, s);
        if (en->value)
            return en;
    }
    en = cfg_slot(ps, k, 0);
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
    la = !ea ? 0 : (s && ea == cfg_slot(ps, (size_t)ka, s)) ? 2 : 1;
    lb = !eb ? 0 : (s && eb == cfg_slot(ps, (size_t)kb, s)) ? 2 : 1;
    if (la == 0 && lb == 0)
        return 0;
    if (la > lb)
        return 1;
    if (lb > la)
        return 2;
    {
        const char *suf = la == 2 ? cfg_slot_suffix(ps, s) : NULL;

        cfg_fail_at(ps, eb->line ? eb->line : -1, RL_ERR_ARG,
                    "%s: %s.%s%s%s = '%.120s': give %s.%s "
                    "or %s.%s, not both (%s.%s%s%s at %s)", cfg_loc(ps, eb, l1, sizeof(l1)), sec, b,
                suf ? "." : "", suf ? suf : "", eb->value, sec, a, sec, b, sec, a, suf ? "." : "",
                    suf ? suf : "", cfg_loc(ps, ea, l2, sizeof(l2)));
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
    get(ps, "train", "min_epoch_rule", s, &v);
    t->epoch_repeat = v.word == 1;
    get(ps, "train", "loss", s, &v);
    t->loss = (enum exp_loss)v.word;
    get(ps, "train", "logit_scale", s, &v);
    t->logit_scale_raw = v.word == 1;
    t->batch = get_u(ps, "train", "batch", s);
    t->accumulate = get_u(ps, "train", "accumulate", s);
    t->lr = get_d(ps, "train", "lr", s);
    t->lr_head = get_d(ps, "train", "lr_head", s);
    t->weight_decay = get_d(ps, "train", "weight_decay", s);
    t->beta1 = get_d(ps, "train", "beta1", s);
    t->beta2 = get_d(ps, "train", "beta2", s);
    t->eps = get_d(ps, "train", "eps", s);
    t->warmup = get_u(ps, "train", "warmup", s);
    if ((p = pair(ps, "train", "lr_min", "lr_min_ratio", s)) < 0)
        return -1;
    t->lr_min = p == 2 ? get_d(ps, "train", "lr_min_ratio", s) * t->lr
                       : get_d(ps, "train", "lr_min", s);
    if (p == 2 && t->lr_min != 0.0 && t->lr_min < 1e-30) {
        const struct entry *en = get_entry(ps, "train", "lr_min_ratio", s);
        char a[40];

        cfg_fmt_double(a, sizeof(a), t->lr_min);
        cfg_fail_at(ps, en->line ? en->line : -1, RL_ERR_ARG,
                    "%s: train.lr_min_ratio = '%.120s': the floor lr x lr_min_ratio = %s is "
                    "below 1e-30 (float32 arithmetic); use 0 or a larger ratio",
                    cfg_loc(ps, en, l, sizeof(l)), en->value, a);
        return -1;
    }
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
        char a[40], b[40];

        cfg_fmt_double(a, sizeof(a), t->lr_min);
        cfg_fmt_double(b, sizeof(b), t->lr);
        cfg_fail_at(ps, en && en->line ? en->line : -1, RL_ERR_ARG, "%s: train.lr_min = '%s': "
                "expected at most train.lr (%s)", cfg_loc(ps, en, l, sizeof(l)), a, b);
        return -1;
    }
    if (t->steps && t->warmup > t->steps) {
        const struct entry *en = get_entry(ps, "train", "warmup", s);

        cfg_fail_at(ps, en && en->line ? en->line : -1, RL_ERR_ARG, "%s: train.warmup = '%zu': "
                "expected at most train.steps (%zu)", cfg_loc(ps, en, l, sizeof(l)), t->warmup,
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
        return !strcmp(name, "lora") || !strcmp(name, "randlora") || !strcmp(name, "nola");
    if (!strcmp(key, "dropout"))
        return (ops->flags & ADAPTER_F_DROPOUT) != 0;
    if (!strcmp(key, "rslora"))
        return !strcmp(name, "lora");
    if (!strcmp(key, "vera_d_init"))
        return !strcmp(name, "vera");
    if (!strcmp(key, "profile") || !strcmp(key, "basis"))
        return !strcmp(name, "randlora") || !strcmp(name, "nola");
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
    if (get_u(ps, "method", "nola_bases", s))       /* 0: the profile's k */
        st->adapter.nola_bases = get_u(ps, "method", "nola_bases", s);
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

            cfg_fail_at(ps, en->line ? en->line : -1, RL_ERR_ARG,
                        "%s: %s.%s = '%.120s': the axes of %s give more than %d settings",
                        cfg_loc(ps, en, l, sizeof(l)),
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

/* train.dataset_epochs for method slot s into m (after its settings): it
 * fixes the epochs per dataset, so a list on train.steps or train.epochs
 * (an axis) beside it would give runs that differ only in their ids */
static int resolve_epoch_table(struct parser *ps, size_t s, struct exp_method *m)
{
    const struct entry *en = get_entry(ps, "train", "dataset_epochs", s);
    struct value v;
    char l[512];

    if (!en || !strcmp(m->ops->name, "none"))
        return 0;
    for (size_t i = 1; i < m->n_settings; i++)
        if (m->settings[i].train.steps != m->settings[0].train.steps ||
            m->settings[i].train.epochs != m->settings[0].train.epochs) {
            cfg_fail_at(ps, en->line ? en->line : -1, RL_ERR_ARG,
                        "%s: train.dataset_epochs = '%.120s': %s has a list on train.steps or "
                        "train.epochs; the table fixes the epochs per dataset (give one value)",
                        cfg_loc(ps, en, l, sizeof(l)), en->value, m->ops->name);
            return -1;
        }
    get(ps, "train", "dataset_epochs", s, &v);
    m->epoch_names = v.ls;
    m->epoch_values = v.lu;
    m->n_epoch_table = v.n;
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
            /* the method's default rank (peft's; NoLA the paper's 1) */
            m->sizes = xmalloc(sizeof(*m->sizes));
            m->sizes[0] = ops->default_rank;
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
    if (resolve_epoch_table(ps, s, m))
        return -1;
    m->adapter = m->settings[0].adapter;
    m->profile = m->settings[0].profile;
    m->train = m->settings[0].train;
    return 0;
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
        cfg_fail_at(ps, en->line ? en->line : -1, RL_ERR_ARG,
                    "%s: data.val = '%.120s': a validation dataset pairs with one data.dataset, "
                    "there are %zu (hold items out instead: val = N or a fraction)",
                    cfg_loc(ps, en, l, sizeof(l)), en->value, e->n_datasets);
        return -1;
    }
    if (same_split(e->val.spec, e->evals[0]))
        clash = "the eval (test) set: the test set must not choose anything";
    else if (same_split(e->val.spec, e->datasets[0]))
        clash = "the training set: hold items out of it with val = N or a fraction instead";
    if (clash) {
        cfg_fail_at(ps, en->line ? en->line : -1, RL_ERR_ARG, "%s: data.val = '%.120s': is %s",
                    cfg_loc(ps, en, l, sizeof(l)), en->value, clash);
        return -1;
    }
    return 0;
}

int cfg_resolve(struct parser *ps, struct experiment *e)
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
    get(ps, "model", "head", 0, &v);
    e->model.head = (enum exp_head)v.word;
    get(ps, "model", "features", 0, &v);
    e->model.features = (unsigned)v.word;

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
            cfg_fail_at(ps, en->line ? en->line : -1, RL_ERR_ARG,
                        "%s: data.eval = '%.120s': expected "
                    "%zu spec%s, one per data.dataset", cfg_loc(ps, en, l, sizeof(l)), en->value,
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
    e->init_adapter = get_str(ps, "train", "init_adapter");
    get(ps, "data", "templates", 0, &v);
    e->templates = (enum exp_templates)v.word;
    e->classnames = get_str(ps, "data", "classnames");
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
    get(ps, "data", "lm_loss", 0, &v);
    e->lm.loss = (enum exp_lm_loss)v.word;
    e->lm.cutoff = get_u(ps, "data", "cutoff", 0);
    e->lm.max_new_tokens = get_u(ps, "data", "max_new_tokens", 0);
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

