/*
 * plan_list.c: the listing of run plans and the dry run's data check
 * (plan_list.h).
 */
#include "experiments/plan_list.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/status.h"
#include "datasets/dataset.h"
#include "datasets/fewshot.h"
#include "experiments/lm_model.h"
#include "datasets/meta.h"
#include "methods/adapter.h"

/* one opened spec, kept while the plans are checked */
struct opened {
    const char *spec;           /* the plans' string */
    struct dataset ds;
    int *labels;                /* train specs only  */
};

struct opened_set {
    struct opened *v;
    size_t n;
};

/* the spec opened (once), or NULL with the error set */
static struct opened *open_spec(struct opened_set *set, const struct run_plan *p,
                                const char *key, const char *spec, bool labels)
{
    struct opened *o = NULL;
    char msg[1024];
    int rc;

    for (size_t i = 0; i < set->n && !o; i++)
        if (!strcmp(set->v[i].spec, spec))
            o = &set->v[i];
    if (!o) {
        o = &set->v[set->n];
        memset(o, 0, sizeof(*o));
        o->spec = spec;
        if ((rc = dataset_open(&o->ds, spec)) != RL_OK) {
            snprintf(msg, sizeof(msg), "%s", rl_error_msg());
            rl_error_set(RL_ERR_ARG, "run %s: %s = '%s' cannot be opened: %s", p->id, key, spec,
                         msg);
            return NULL;
        }
        set->n++;
    }
    if (labels && !o->labels)
        o->labels = dataset_labels(&o->ds);
    return o;
}

/* The size of a training set depends on the labels and the shots or the
 * fraction only, not on the sampling seed: a plan with the same spec, shots
 * and fraction as an earlier one has its count. */
static bool same_sample(const struct run_plan *a, const struct run_plan *b)
{
    return !strcmp(a->dataset, b->dataset) && !strcmp(a->eval, b->eval) &&
           a->shots == b->shots && a->fraction == b->fraction && a->val.kind == b->val.kind &&
           a->val.per_class == b->val.per_class && a->val.fraction == b->val.fraction &&
           (a->val.kind != EXP_VAL_SPEC || !strcmp(a->val.spec, b->val.spec));
}

int plan_list_check_data(const struct run_plan *plans, size_t n, size_t *n_train)
{
    struct opened_set set = { xcalloc(2 * n + 1, sizeof(struct opened)), 0 };
    char msg[1024];
    int rc = RL_OK;
    size_t *firsts = xcalloc(n ? n : 1, sizeof(*firsts)), n_firsts = 0;

    for (size_t i = 0; i < n && rc == RL_OK; i++) {
        const struct run_plan *p = &plans[i];
        struct opened *tr, *ev, *va = NULL;
        struct fewshot_request rq = { .shots = p->shots, .fraction = p->fraction,
                                      .seed = p->sample_seed };
        size_t *idx = NULL, *val_idx = NULL, n_val = 0, f;

        if (run_plan_is_lm(p)) {
            /* commonsense data (experiments/lm_model.h) */
            rc = lm_check_data(p, &n_train[i]);
            continue;
        }
        for (f = 0; f < n_firsts && !same_sample(&plans[firsts[f]], p); f++)
            ;
        if (f < n_firsts) {
            n_train[i] = n_train[firsts[f]];
            continue;
        }
        firsts[n_firsts++] = i;
        tr = open_spec(&set, p, "data.dataset", p->dataset, true);
        if (!tr || !(ev = open_spec(&set, p, "data.eval", p->eval, false))) {
            rc = RL_ERR_ARG;
            break;
        }
        if (p->val.kind == EXP_VAL_SPEC &&
            !(va = open_spec(&set, p, "data.val", p->val.spec, false))) {
            rc = RL_ERR_ARG;
            break;
        }
        if (tr->ds.n_classes != ev->ds.n_classes || (va && va->ds.n_classes != tr->ds.n_classes)) {
            rc = rl_error_set(RL_ERR_ARG, "run %s: data.dataset = '%s' has %d classes but "
                              "%s = '%s' has %d", p->id, p->dataset, tr->ds.n_classes,
                              va && va->ds.n_classes != tr->ds.n_classes ? "data.val"
                                                                          : "data.eval",
                              va && va->ds.n_classes != tr->ds.n_classes ? p->val.spec : p->eval,
                              va && va->ds.n_classes != tr->ds.n_classes ? va->ds.n_classes
                                                                          : ev->ds.n_classes);
            break;
        }
        if (p->classnames) {
            char name[128];

            exp_dataset_name(p->dataset, name, sizeof(name));
            if ((rc = ds_meta_select(&tr->ds, p->classnames, name)) != RL_OK) {
                snprintf(msg, sizeof(msg), "%s", rl_error_msg());
                rc = rl_error_set(RL_ERR_ARG, "run %s: %s", p->id, msg);
                break;
            }
        }
        /* as the run samples it (runner.c sample_data): the validation items
         * held out first, then the shots or the fraction of what is left */
        if (p->val.kind == EXP_VAL_PER_CLASS)
            rq.val_per_class = p->val.per_class;
        else if (p->val.kind == EXP_VAL_FRACTION)
            rq.val_fraction = p->val.fraction;
        rc = fewshot_split(tr->labels, tr->ds.n, tr->ds.n_classes,
                           (const char *const *)tr->ds.class_names, &rq, &idx, &n_train[i],
                           &val_idx, &n_val);
        free(idx);
        free(val_idx);
        if (rc != RL_OK) {
            snprintf(msg, sizeof(msg), "%s", rl_error_msg());
            rc = rl_error_set(RL_ERR_ARG, "run %s: data.dataset = '%s': %s", p->id, p->dataset,
                              msg);
        }
    }
    for (size_t i = 0; i < set.n; i++) {
        free(set.v[i].labels);
        dataset_close(&set.v[i].ds);
    }
    free(set.v);
    free(firsts);
    return rc;
}

size_t plan_list_id_width(const struct run_plan *plans, size_t n)
{
    size_t w = 24;

    for (size_t i = 0; i < n; i++)
        if (strlen(plans[i].id) > w)
            w = strlen(plans[i].id);
    return w;
}

void plan_list_header(FILE *out, size_t id_width, bool state)
{
    fprintf(out, "  %-*s %-9s %-8s %8s %12s %10s %11s%s\n", (int)id_width, "id", "method", "rank",
            "lr", "steps", "batch", "trainable", state ? "  state" : "");
}

void plan_list_line(FILE *out, const struct run_plan *p, size_t id_width, size_t n_train,
                    const char *state)
{
    const struct adapter_ops *ops = adapter_ops_find(p->method);
    char rank[32] = "-", steps[48], batch[48];
    const struct exp_train *t = &p->train;
    size_t eff = t->batch * t->accumulate;

    if (!strcmp(p->method, "none") && p->model.head == EXP_HEAD_PROMPT) {  /* never trained */
        fprintf(out, "  %-*s %-9s %-8s %8s %12s %10s %11zu%s%s\n", (int)id_width, p->id,
                p->method, "-", "-", "0", "-", p->n_trainable, state ? "  " : "",
                state ? state : "");
        return;
    }
    if (ops && (ops->flags & ADAPTER_F_RANK))
        snprintf(rank, sizeof(rank), "r=%zu", (size_t)p->adapter.r);
    if (t->steps)
        snprintf(steps, sizeof(steps), "%zu", t->steps);
    else if (n_train == SIZE_MAX)
        snprintf(steps, sizeof(steps), "%zu ep", t->epochs);
    else
        snprintf(steps, sizeof(steps), "%zu (%zu ep)", run_plan_total_steps(p, n_train),
                 t->epochs);
    if (t->accumulate > 1)
        snprintf(batch, sizeof(batch), "%zu = %zux%zu", eff, t->batch, t->accumulate);
    else
        snprintf(batch, sizeof(batch), "%zu", eff);
    fprintf(out, "  %-*s %-9s %-8s %8.6g %12s %10s %11zu%s%s\n", (int)id_width, p->id, p->method,
            rank, t->lr, steps, batch, p->n_trainable, state ? "  " : "", state ? state : "");
}
