/*
 * config_plan.c: stage 3 of config.c: the grid of an experiment expanded into
 * run plans, their run ids and step counts (experiment_expand and friends).
 */
#include "experiments/config.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ini.h>

#include "core/alloc.h"
#include "core/status.h"
#include "datasets/dataset.h"
#include "experiments/config_impl.h"

/* ------------------------------------------------------------------------ */
/* stage 3: expand                                                           */

/* runs of one method per dataset, shots or fraction and seed */
static size_t method_runs(const struct exp_method *m)
{
    size_t n = m->n_sizes ? m->n_sizes : 1;

    return size_mul_ok(n, m->n_settings, &n) ? n : SIZE_MAX;
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

void cfg_fmt_double(char *buf, size_t cap, double v)
{
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, cap, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            return;
    }
}

/* "3e-05" -> "3e-5", "1e+06" -> "1e6" in place */
static void plain_exponent(char *s)
{
    char *e = strchr(s, 'e'), *d;

    if (!e)
        return;
    d = e + 1;
    if (*d == '+')
        memmove(d, d + 1, strlen(d));
    else if (*d == '-')
        d++;
    while (d[0] == '0' && d[1])
        memmove(d, d + 1, strlen(d));
}

void cfg_fmt_id_number(char *buf, size_t cap, double v)
{
    char fixed[64] = "", expo[48];
    int prec;

    for (prec = 1; prec < 17; prec++) {
        snprintf(expo, sizeof(expo), "%.*e", prec - 1, v);
        if (strtod(expo, NULL) == v)
            break;
    }
    snprintf(expo, sizeof(expo), "%.*e", prec - 1, v);
    plain_exponent(expo);
    if (fabs(v) < 1e15)
        for (int d = 0; d <= 20; d++) {
            snprintf(fixed, sizeof(fixed), "%.*f", d, v);
            if (strtod(fixed, NULL) == v)
                break;
        }
    snprintf(buf, cap, "%s", *fixed && strlen(fixed) <= strlen(expo) ? fixed : expo);
}

/* a file-name-safe name for a dataset spec: "fashion-mnist", "dtd"; a
 * published split file's dataset name ("zhou:D/split_zhou_OxfordPets.json":
 * "OxfordPets") */
void exp_dataset_name(const char *spec, char *buf, size_t cap)
{
    size_t len = cfg_strip_split(spec), o = 0;
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
        } else if (colon - spec == 4 && !memcmp(spec, "zhou", 4)) {
            const size_t pre = strlen("split_zhou_"), suf = strlen(".json");

            if ((size_t)(end - start) > pre + suf && !memcmp(start, "split_zhou_", pre) &&
                !memcmp(end - suf, ".json", suf)) {
                start += pre;
                end -= suf;
            }
        }
    }
    for (const char *p = start; p < end && o + 1 < cap; p++)
        buf[o++] = ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                    (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.') ? *p : '_';
    buf[o] = '\0';
}

/* train.dataset_epochs: the dataset's entry, if any, replaces the steps or
 * epochs of t */
static void dataset_epochs(const struct exp_method *m, const char *name, struct exp_train *t)
{
    for (size_t i = 0; i < m->n_epoch_table; i++)
        if (!strcasecmp(m->epoch_names[i], name)) {
            t->epochs = m->epoch_values[i];
            t->steps = 0;
            return;
        }
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
    free(p->init_adapter);
    free(p->classnames);
    free(p->val.spec);
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
    dst->init_adapter = dup_or_null(src->init_adapter);
    dst->classnames = dup_or_null(src->classnames);
    dst->val.spec = dup_or_null(src->val.spec);
}

static int cmp_id(const void *a, const void *b)
{
    const struct run_plan *const *x = a, *const *y = b;

    return strcmp((*x)->id, (*y)->id);
}

/* the rank, budget and counts of one (dataset, method, size, setting) */
struct sized {
    struct adapter_cfg adapter;   /* the setting's, with the matched rank (or NoLA's k) */
    size_t budget, n_trainable;
};

/* r, budget, counts for one (dataset, method, size, setting) into *out; the
 * limits a run file must be able to read back are checked here, before
 * anything is allocated for the run */
static int plan_size(const struct experiment *e, const struct exp_method *m, size_t size_i,
                     struct run_plan *base, exp_shapes_fn shapes, void *ctx, struct sized *out)
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
        if (nsh == 0 && strcmp(m->ops->name, "none")) {
            char spec[256] = "";

            exp_targets_spec(&base->targets, spec, sizeof(spec));
            return rl_error_set(RL_ERR_ARG, "%s: %s: method.towers, method.layers and "
                                "method.modules (%s) select no layer of model %s", e->source,
                                m->ops->name, spec, base->model.name);
        }
        if (m->by_budget && !e->run_rank) {
            rc = adapter_match_budget_cfg(m->ops, &base->adapter, sh, nsh, base->budget,
                                          &base->adapter, &count);
            if (rc != RL_OK)
                return rl_error_prefix(rc, "%s: %s at budget %zu", e->source, m->ops->name,
                                       base->budget);
            if (base->adapter.r > EXP_MAX_RANK)
                return rl_error_set(RL_ERR_ARG, "%s: %s at method.budget = %zu: the matched rank "
                                    "%zu is over the limit of %d (run.rank); give a smaller "
                                    "budget", e->source, m->ops->name, base->budget,
                                    base->adapter.r, EXP_MAX_RANK);
        }
        for (size_t i = 0; i < nsh; i++) {
            rc = adapter_check(m->ops, &base->adapter, sh[i].d_out, sh[i].d_in);
            if (rc != RL_OK)
                return rl_error_prefix(rc, "%s: %s with rank %zu", e->source, m->ops->name,
                                       base->adapter.r);
        }
        base->n_trainable = adapter_count(m->ops, &base->adapter, sh, nsh);
        count = adapter_count_shared(m->ops, &base->adapter, sh, nsh);
        if (base->n_trainable > EXP_MAX_PARAMS || count > EXP_MAX_PARAMS)
            return rl_error_set(RL_ERR_ARG, "%s: %s with rank %zu: %zu trainable and %zu shared "
                                "frozen parameters, over the limit of %llu each", e->source,
                                m->ops->name, base->adapter.r, base->n_trainable, count,
                                (unsigned long long)EXP_MAX_PARAMS);
    } else if (e->run_trainable) {
        base->n_trainable = e->run_trainable;
    }
    out->adapter = base->adapter;
    out->budget = base->budget;
    out->n_trainable = base->n_trainable;
    return RL_OK;
}

/* the run id: [DATASET-]METHOD[-rR|-bB]-(sK|fF)[AXES]-seedS, checked against
 * what run.id accepts */
static int plan_id(const struct experiment *e, const char *tag, const struct exp_method *m,
                   size_t size_i, const struct run_plan *base, const struct exp_setting *st,
                   char *id, size_t cap)
{
    char size_part[48] = "", data_part[48];

    if (m->n_sizes)
        snprintf(size_part, sizeof(size_part), "-%c%zu", m->by_budget ? 'b' : 'r',
                 m->sizes[size_i]);
    if (base->shots) {
        snprintf(data_part, sizeof(data_part), "s%zu", base->shots);
    } else {
        char f[32];

        cfg_fmt_double(f, sizeof(f), base->fraction);
        snprintf(data_part, sizeof(data_part), "f%s", f);
    }
    snprintf(id, cap, "%s%s%s%s-%s%s-seed%llu", tag, *tag ? "-" : "", m->ops->name, size_part,
             data_part, st->tag, (unsigned long long)base->seed);
    if (e->run_id)
        return RL_OK;
    return cfg_check_run_id(e->source, id);
}

int experiment_expand(const struct experiment *e, exp_shapes_fn shapes, void *ctx,
                      struct run_plan **plans_out, size_t *n_out)
{
    return cfg_expand(e, shapes, ctx, plans_out, n_out, true);
}

int cfg_expand(const struct experiment *e, exp_shapes_fn shapes, void *ctx,
               struct run_plan **plans_out, size_t *n_out, bool check_store)
{
    size_t n = experiment_n_runs(e), k = 0, n_data = e->n_shots + e->n_fractions;
    struct run_plan *plans, base;
    int rc = RL_OK;

    *plans_out = NULL;
    *n_out = 0;
    if (n == SIZE_MAX || n > EXP_MAX_RUNS)
        return rl_error_set(RL_ERR_ARG, "%s: the grid is too large (more than %d runs)",
                            e->source, EXP_MAX_RUNS);
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
    base.init_adapter = e->init_adapter;
    base.image_size = e->image_size;
    base.eval_limit = e->eval_limit;
    base.lm = e->lm;
    base.val = e->val;
    base.templates = e->templates;
    base.classnames = e->classnames;
    base.augment = e->augment;
    for (size_t d = 0; d < e->n_datasets && rc == RL_OK; d++) {
        char tag[128] = "";

        char name[128];

        exp_dataset_name(e->datasets[d], name, sizeof(name));
        if (e->n_datasets > 1)
            snprintf(tag, sizeof(tag), "%s", name);
        base.dataset = e->datasets[d];
        base.eval = e->evals[d];
        for (size_t mi = 0; mi < e->n_methods && rc == RL_OK; mi++) {
            const struct exp_method *m = &e->methods[mi];
            size_t n_sizes = m->n_sizes ? m->n_sizes : 1, n_set = m->n_settings;
            struct sized *sz = xcalloc(n_sizes * n_set, sizeof(*sz));

            base.method = m->ops->name;
            base.targets = m->targets;
            /* budget matching once per (size, setting): a setting can change
             * the count (profile, basis, rslora) */
            for (size_t si = 0; si < n_sizes && rc == RL_OK; si++)
                for (size_t ti = 0; ti < n_set && rc == RL_OK; ti++) {
                    base.adapter = m->settings[ti].adapter;
                    rc = plan_size(e, m, si, &base, shapes, ctx, &sz[si * n_set + ti]);
                }
            for (size_t si = 0; si < n_sizes && rc == RL_OK; si++)
                for (size_t di = 0; di < n_data && rc == RL_OK; di++)
                    for (size_t ti = 0; ti < n_set && rc == RL_OK; ti++)
                        for (size_t zi = 0; zi < e->n_seeds && rc == RL_OK; zi++) {
                            const struct exp_setting *st = &m->settings[ti];
                            const struct sized *z = &sz[si * n_set + ti];
                            char id[512];

                            base.adapter = z->adapter;
                            base.profile = st->profile;
                            base.train = st->train;
                            base.budget = z->budget;
                            base.n_trainable = z->n_trainable;
                            base.shots = di < e->n_shots ? e->shots[di] : 0;
                            base.fraction = di < e->n_shots ? 0 : e->fractions[di - e->n_shots];
                            base.seed = e->seeds[zi];
                            base.sample_seed = e->sample_seed_set ? e->sample_seed : base.seed;
                            base.adapter.seed = m->init_seed_set ? m->init_seed : base.seed;
                            base.train.seed = st->train.seed_set ? st->train.seed : base.seed;
                            dataset_epochs(m, name, &base.train);
                            base.train.seed_set = true;
                            rc = plan_id(e, tag, m, si, &base, st, id, sizeof(id));
                            if (rc != RL_OK)
                                break;
                            base.id = e->run_id ? e->run_id : id;
                            base.index = k;
                            plan_copy(&plans[k], &base);
                            k++;
                        }
            free(sz);
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
    /* everything a run file must read back: refused here, never trained */
    for (size_t i = 0; i < n && rc == RL_OK && check_store; i++)
        rc = cfg_check_plan(e->source, &plans[i]);
    if (rc != RL_OK) {
        run_plans_free(plans, k);
        return rc;
    }
    *plans_out = plans;
    *n_out = n;
    return RL_OK;
}

bool run_plan_is_lm(const struct run_plan *p)
{
    return p->dataset && !strncmp(p->dataset, CFG_COMMONSENSE ":", strlen(CFG_COMMONSENSE) + 1);
}

size_t run_plan_total_steps(const struct run_plan *p, size_t n_train_items)
{
    size_t per_step, per_epoch, total;

    if (p->train.steps)
        return p->train.steps;
    if (!size_mul_ok(p->train.batch, p->train.accumulate, &per_step) || per_step == 0)
        return SIZE_MAX;
    if (p->train.epoch_repeat) {
        /* finetune.py lines 70-77: r = n / batch micro-batches; below the
         * minimum the set is repeated int(min / r) + 1 times */
        size_t reps = 1, items, min_items;

        if (!size_mul_ok(p->train.min_epoch_steps, p->train.batch, &min_items))
            return SIZE_MAX;
        if (n_train_items > 0 && n_train_items < min_items)
            reps = min_items / n_train_items + 1;
        if (!size_mul_ok(n_train_items, reps, &items) ||
            !size_mul_ok(items, p->train.epochs, &items))
            return SIZE_MAX;
        return items / per_step + (items % per_step != 0);
    }
    per_epoch = n_train_items / per_step + (n_train_items % per_step != 0);
    if (per_epoch < p->train.min_epoch_steps)
        per_epoch = p->train.min_epoch_steps;
    if (!size_mul_ok(per_epoch, p->train.epochs, &total))
        return SIZE_MAX;
    return total;
}
