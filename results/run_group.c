/*
 * run_group.c: a run's group, setting and seed from its stored plan
 * (run_group.h).
 */
#include "results/run_group.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/status.h"
#include "experiments/config.h"
#include "results/store.h"

/* where a rendered key goes (run_group.h) */
enum place { PLACE_SETTING = 0, PLACE_GROUP, PLACE_SEED, PLACE_IGNORED };

static const char *const group_keys[] = {
    "data.dataset", "model.name", "method.methods", "method.budget", "method.rank",
    "data.shots", "data.fractions",
};
static const char *const seed_keys[] = {
    "sweep.seeds", "train.seed", "method.init_seed", "data.sample_seed",
};
static const char *const ignored_keys[] = {
    "sweep.jobs", "train.checkpoint_every", "train.recompute",
};

static bool in_list(const char *key, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(key, list[i]))
            return true;
    return false;
}

#define IN(key, list) in_list((key), (list), sizeof(list) / sizeof((list)[0]))

static enum place place_of(const char *key)
{
    if (!strncmp(key, "experiment.", 11) || !strncmp(key, "run.", 4) || IN(key, ignored_keys))
        return PLACE_IGNORED;
    if (IN(key, seed_keys))
        return PLACE_SEED;
    if (IN(key, group_keys))
        return PLACE_GROUP;
    return PLACE_SETTING;
}

/* ------------------------------------------------------------------------ */
/* growing strings and item lists                                            */

struct text {
    char  *s;
    size_t len, cap;
};

static void text_add(struct text *t, const char *s, size_t n)
{
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 256;

        while (t->len + n + 1 > cap)
            cap *= 2;
        t->s = xrealloc_array(t->s, cap, 1);
        t->cap = cap;
    }
    memcpy(t->s + t->len, s, n);
    t->len += n;
    t->s[t->len] = '\0';
}

static void text_puts(struct text *t, const char *s)
{
    text_add(t, s, strlen(s));
}

/* an empty string rather than NULL */
static char *text_take(struct text *t)
{
    char *s = t->s ? t->s : xstrdup("");

    memset(t, 0, sizeof(*t));
    return s;
}

/* the first n characters of s, terminated (caller frees) */
static char *copy_n(const char *s, size_t n)
{
    char *c = xmalloc(n + 1);

    memcpy(c, s, n);
    c[n] = '\0';
    return c;
}

struct items {
    struct run_key_item *v;
    size_t n, cap;
};

static void items_push(struct items *it, char *key, char *value)
{
    if (it->n == it->cap) {
        it->cap = it->cap ? 2 * it->cap : 64;
        it->v = xrealloc_array(it->v, it->cap, sizeof(*it->v));
    }
    it->v[it->n].key = key;
    it->v[it->n].value = value;
    it->n++;
}

static void items_free(struct run_key_item *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].key);
        free(v[i].value);
    }
    free(v);
}

/* The items of INI text as run_plan_to_ini writes it: "[section]" lines,
 * "key = value" lines, values continued on lines that start with a space
 * (joined with one space), comments starting with ';' or '#'. */
static void parse_rendered(const char *ini, struct items *out)
{
    char section[64] = "";
    const char *p = ini;

    while (*p) {
        const char *end = strchr(p, '\n');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *line = p;

        p += len + (end ? 1 : 0);
        if (len && line[len - 1] == '\r')
            len--;
        if (!len || line[0] == ';' || line[0] == '#')
            continue;
        if (line[0] == ' ' || line[0] == '\t') {          /* continuation */
            struct text v = { 0 };
            size_t skip = 0;

            if (!out->n)
                continue;
            while (skip < len && (line[skip] == ' ' || line[skip] == '\t'))
                skip++;
            text_puts(&v, out->v[out->n - 1].value);
            text_add(&v, " ", 1);
            text_add(&v, line + skip, len - skip);
            free(out->v[out->n - 1].value);
            out->v[out->n - 1].value = text_take(&v);
            continue;
        }
        if (line[0] == '[') {
            const char *close = memchr(line, ']', len);
            size_t n = close ? (size_t)(close - line - 1) : 0;

            if (n >= sizeof(section))
                n = sizeof(section) - 1;
            memcpy(section, line + 1, n);
            section[n] = '\0';
            continue;
        }
        const char *eq = memchr(line, '=', len);
        if (!eq)
            continue;
        size_t klen = (size_t)(eq - line), vstart = klen + 1;
        while (klen && line[klen - 1] == ' ')
            klen--;
        while (vstart < len && line[vstart] == ' ')
            vstart++;
        if (vstart > len)
            vstart = len;

        struct text key = { 0 };
        text_puts(&key, section);
        text_add(&key, ".", 1);
        text_add(&key, line, klen);
        items_push(out, text_take(&key), copy_n(line + vstart, len - vstart));
    }
}

static void add_line(struct text *t, const struct run_key_item *it)
{
    if (t->len)
        text_add(t, "\n", 1);
    text_puts(t, it->key);
    text_add(t, "=", 1);
    text_puts(t, it->value);
}

/* ------------------------------------------------------------------------ */
/* short forms                                                               */

static const struct { const char *key, *name; } short_names[] = {
    { "train.weight_decay", "wd" },
    { "train.accumulate", "acc" },
    { "train.min_epoch_steps", "min_epoch_steps" },
    { "model.pretrain_dir", "model.pretrain_dir" },
    { "model.pretrain_data", "model.pretrain_data" },
};

const char *run_key_short_name(const char *key)
{
    const char *dot = strchr(key, '.');

    for (size_t i = 0; i < sizeof(short_names) / sizeof(short_names[0]); i++)
        if (!strcmp(key, short_names[i].key))
            return short_names[i].name;
    return dot ? dot + 1 : key;
}

/* "name=value" (key NULL: the value alone) appended to t, numbers with %g,
 * lists without their spaces */
static void add_value(struct text *t, const char *key, const char *value)
{
    char num[48];
    char *end;
    double v = strtod(value, &end);

    if (key) {
        text_puts(t, run_key_short_name(key));
        text_add(t, "=", 1);
    }
    if (*value && !*end && end != value && isfinite(v)) {
        snprintf(num, sizeof(num), "%g", v);
        text_puts(t, num);
    } else {
        for (const char *c = value; *c; c++)
            if (*c != ' ')
                text_add(t, c, 1);
    }
}

/* "name=value" appended to t, space-separated */
static void add_compact(struct text *t, const char *key, const char *value)
{
    if (t->len)
        text_add(t, " ", 1);
    add_value(t, key, value);
}

static void make_brief(struct run_key *k)
{
    static const char *const keys[] = {
        "train.lr", "train.weight_decay", "train.steps", "train.epochs", "train.batch",
    };
    struct text t = { 0 };

    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        const char *v = run_key_get(k, keys[i]);

        if (v)
            add_compact(&t, keys[i], v);
    }
    k->brief = text_take(&t);
}

/* the items of a canonical setting string ("key=value" lines) */
static void parse_setting(const char *setting, struct items *out)
{
    for (const char *p = setting; p && *p;) {
        const char *nl = strchr(p, '\n');
        size_t line = nl ? (size_t)(nl - p) : strlen(p);
        const char *eq = memchr(p, '=', line);

        if (eq) {
            struct text key = { 0 }, value = { 0 };

            text_add(&key, p, (size_t)(eq - p));
            text_add(&value, eq + 1, line - (size_t)(eq - p) - 1);
            items_push(out, text_take(&key), text_take(&value));
        }
        p = nl ? nl + 1 : NULL;
    }
}

static const char *items_get(const struct items *it, const char *key)
{
    for (size_t i = 0; i < it->n; i++)
        if (!strcmp(it->v[i].key, key))
            return it->v[i].value;
    return NULL;
}

static bool in_keys(const struct items *it, const char *key)
{
    for (size_t i = 0; i < it->n; i++)
        if (!strcmp(it->v[i].key, key))
            return true;
    return false;
}

static bool same_value(const char *a, const char *b)
{
    return a && b ? !strcmp(a, b) : a == b;
}

/* whether `key` has another value (or is missing) in one of others[0..n) */
static bool key_differs(const struct items *mine, const struct items *others, size_t n,
                        const char *key)
{
    const char *v = items_get(mine, key);

    for (size_t i = 0; i < n; i++)
        if (!same_value(v, items_get(&others[i], key)))
            return true;
    return false;
}

char *run_key_setting_compact(const char *setting, const char *const *settings, size_t n)
{
    struct items mine = { 0 }, *others = xcalloc(n ? n : 1, sizeof(*others));
    struct items keys = { 0 };              /* every key, setting's first; values unused */
    struct text t = { 0 };

    parse_setting(setting, &mine);
    for (size_t i = 0; i < mine.n; i++)
        items_push(&keys, xstrdup(mine.v[i].key), NULL);
    for (size_t i = 0; i < n; i++) {
        parse_setting(settings[i], &others[i]);
        for (size_t j = 0; j < others[i].n; j++)
            if (!in_keys(&keys, others[i].v[j].key))
                items_push(&keys, xstrdup(others[i].v[j].key), NULL);
    }
    bool lr_differs = key_differs(&mine, others, n, "train.lr");

    for (size_t k = 0; k < keys.n; k++) {
        const char *v = items_get(&mine, keys.v[k].key);

        /* the stored lr_min is the floor lr_min_ratio derives from lr: it
         * differs whenever lr does and says nothing more */
        if (lr_differs && !strcmp(keys.v[k].key, "train.lr_min"))
            continue;
        if (key_differs(&mine, others, n, keys.v[k].key))
            add_compact(&t, keys.v[k].key, v ? v : "-");
    }
    for (size_t i = 0; i < n; i++)
        items_free(others[i].v, others[i].n);
    free(others);
    items_free(mine.v, mine.n);
    items_free(keys.v, keys.n);
    return text_take(&t);
}

char *run_key_diff(const struct run_key *a, const struct run_key *b)
{
    struct items x = { 0 }, y = { 0 };
    struct text t = { 0 };
    char num[64];

    parse_setting(a->config, &x);
    parse_setting(b->config, &y);
    for (int pass = 0; pass < 2; pass++) {
        const struct items *from = pass ? &y : &x, *other = pass ? &x : &y;

        for (size_t i = 0; i < from->n; i++) {
            const char *key = from->v[i].key;
            const char *va = items_get(&x, key), *vb = items_get(&y, key);

            if (same_value(va, vb) || (pass && items_get(other, key)))
                continue;                   /* equal, or listed in pass 0 */
            if (t.len)
                text_puts(&t, "; ");
            add_value(&t, key, va ? va : "-");
            text_puts(&t, " vs ");
            add_value(&t, NULL, vb ? vb : "-");
        }
    }
    if (a->seed != b->seed) {
        snprintf(num, sizeof(num), "%sseed %llu vs %llu", t.len ? "; " : "",
                 (unsigned long long)a->seed, (unsigned long long)b->seed);
        text_puts(&t, num);
    }
    items_free(x.v, x.n);
    items_free(y.v, y.n);
    return t.s;
}

/* ------------------------------------------------------------------------ */
/* keys                                                                      */

void run_key_free(struct run_key *k)
{
    free(k->id);
    free(k->dataset);
    free(k->model);
    free(k->method);
    free(k->group);
    free(k->setting);
    free(k->config);
    free(k->brief);
    items_free(k->items, k->n_items);
    memset(k, 0, sizeof(*k));
}

const char *run_key_get(const struct run_key *k, const char *key)
{
    for (size_t i = 0; i < k->n_items; i++)
        if (!strcmp(k->items[i].key, key))
            return k->items[i].value;
    return NULL;
}

int run_plan_from_config_text(const char *ini, const char *where, struct run_plan **plan)
{
    struct experiment e;
    size_t n_plans = 0;
    int rc = RL_OK;

    *plan = NULL;
    memset(&e, 0, sizeof(e));
    if (!where)
        where = "run";
    if (experiment_parse(&e, ini, where, NULL, 0) != RL_OK ||
        experiment_expand(&e, NULL, NULL, plan, &n_plans) != RL_OK || n_plans != 1) {
        rc = n_plans > 1
                 ? rl_error_set(RL_ERR_FORMAT, "%s: /config is not one run: several runs", where)
                 : rl_error_prefix(RL_ERR_FORMAT, "%s: /config is not one run", where);
        if (*plan)
            run_plans_free(*plan, n_plans);
        *plan = NULL;
    }
    experiment_free(&e);
    return rc;
}

void run_key_from_plan(const struct run_plan *plan, struct run_key *k)
{
    struct items all = { 0 }, setting = { 0 };
    struct text group = { 0 }, set = { 0 }, config = { 0 };
    char *canon;

    memset(k, 0, sizeof(*k));
    k->id = xstrdup(plan->id);
    k->dataset = xstrdup(plan->dataset);
    k->model = xstrdup(plan->model.name);
    k->method = xstrdup(plan->method);
    k->rank = plan->adapter.r;
    k->budget = plan->budget;
    k->shots = plan->shots;
    k->fraction = plan->shots ? 0.0 : plan->fraction;
    k->n_trainable = plan->n_trainable;
    k->seed = plan->seed;

    canon = run_plan_to_ini(plan);
    parse_rendered(canon, &all);
    free(canon);
    for (size_t i = 0; i < all.n; i++) {
        enum place pl = place_of(all.v[i].key);

        /* a budget-sized run's group is its budget, not the rank it matched */
        if (pl == PLACE_GROUP && plan->budget && !strcmp(all.v[i].key, "method.rank"))
            pl = PLACE_IGNORED;
        /* `none` trains nothing: its [train] and [method] keys change nothing */
        if (pl == PLACE_SETTING && !strcmp(plan->method, "none") &&
            (!strncmp(all.v[i].key, "train.", 6) || !strncmp(all.v[i].key, "method.", 7)))
            pl = PLACE_IGNORED;
        if (pl == PLACE_GROUP)
            add_line(&group, &all.v[i]);
        if (pl == PLACE_SETTING) {
            add_line(&set, &all.v[i]);
            items_push(&setting, all.v[i].key, all.v[i].value);
            all.v[i].key = all.v[i].value = NULL;
        }
    }
    k->group = text_take(&group);
    k->setting = text_take(&set);
    text_puts(&config, k->group);
    if (*k->setting) {
        text_add(&config, "\n", 1);
        text_puts(&config, k->setting);
    }
    k->config = text_take(&config);
    k->items = setting.v;
    k->n_items = setting.n;
    make_brief(k);
    items_free(all.v, all.n);
}

int run_key_from_config_text(const char *ini, const char *where, struct run_key *k)
{
    struct run_plan *plan;
    int rc;

    memset(k, 0, sizeof(*k));
    if ((rc = run_plan_from_config_text(ini, where, &plan)) != RL_OK)
        return rc;
    run_key_from_plan(plan, k);
    run_plans_free(plan, 1);
    rl_error_clear();
    return RL_OK;
}

int run_key_from_store(struct store *s, struct run_key *k)
{
    char *text = NULL;
    int64_t rank = 0, n_trainable = 0;
    int rc;

    memset(k, 0, sizeof(*k));
    if ((rc = store_read_config(s, &text)) != RL_OK)
        return rc;
    rc = run_key_from_config_text(text, store_path(s), k);
    free(text);
    if (rc != RL_OK)
        return rc;
    if (store_attr_get_int64(s, "/method", "rank", &rank) == RL_OK && rank >= 0)
        k->rank = (size_t)rank;
    if (store_attr_get_int64(s, "/method", "n_trainable", &n_trainable) == RL_OK &&
        n_trainable >= 0)
        k->n_trainable = (size_t)n_trainable;
    rl_error_clear();
    return RL_OK;
}
