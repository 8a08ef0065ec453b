/*
 * config_check.c: what a run file will have to read back, checked when the
 * grid is expanded (cfg_check_run_id, cfg_check_plan), and the round trip
 * "render(plan) parses back to plan" (run_plan_check_roundtrip,
 * run_plan_diff). A run stores run_plan_to_ini(plan) as its /config;
 * export, analyze, plot and summary.tsv read it back with experiment_parse +
 * experiment_expand. A plan whose text would not read back as itself is
 * refused before anything is trained.
 */
#include "experiments/config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/status.h"
#include "experiments/config_impl.h"

int cfg_check_run_id(const char *source, const char *id)
{
    const struct keydef *kd = &cfg_keys[cfg_key_index("run", "id")];
    struct value v;
    char why[512];
    size_t len = strlen(id);

    if (len > EXP_MAX_ID)
        return rl_error_set(RL_ERR_ARG, "%s: run id '%s' is %zu characters, over the limit of %d "
                            "(run.id): shorten the dataset folder name or vary fewer keys",
                            source, id, len, EXP_MAX_ID);
    if (cfg_parse_value(kd, id, &v, why, sizeof(why)))
        return rl_error_set(RL_ERR_ARG, "%s: run id '%s' cannot be stored as run.id: %s", source,
                            id, why);
    cfg_value_free(&v);
    return RL_OK;
}

/* plan strings that are derived (or copied) into keys of the stored file */
static int check_string(const char *source, const struct run_plan *p, const char *section,
                        const char *key, const char *value)
{
    int k = cfg_key_index(section, key);
    struct value v;
    char why[512];

    RL_ASSERT(k >= 0);
    if (!value)
        return RL_OK;
    if (cfg_parse_value(&cfg_keys[k], value, &v, why, sizeof(why)))
        return rl_error_set(RL_ERR_ARG, "%s: run %s: %s.%s = '%.120s': %s (the run file stores "
                            "it and must read it back)", source, p->id, section, key, value, why);
    cfg_value_free(&v);
    return RL_OK;
}

static bool str_eq(const char *a, const char *b)
{
    return (!a && !b) || (a && b && !strcmp(a, b));
}

const char *run_plan_diff(const struct run_plan *a, const struct run_plan *b)
{
    const struct exp_train *s = &a->train, *t = &b->train;

#define DIFF(cond, name) do { if (!(cond)) return name; } while (0)
    DIFF(str_eq(a->id, b->id), "run.id");
    DIFF(str_eq(a->experiment, b->experiment), "experiment.name");
    DIFF(str_eq(a->output, b->output), "experiment.output");
    DIFF(str_eq(a->description, b->description), "experiment.description");
    DIFF(str_eq(a->model.name, b->model.name), "model.name");
    DIFF(a->model.preset == b->model.preset, "model.name");
    DIFF(str_eq(a->model.pretrain_dir, b->model.pretrain_dir), "model.pretrain_dir");
    DIFF(str_eq(a->model.pretrain_data, b->model.pretrain_data), "model.pretrain_data");
    DIFF(a->model.pretrain_corpus == b->model.pretrain_corpus, "model.pretrain_corpus");
    DIFF(a->model.pretrain_steps == b->model.pretrain_steps, "model.pretrain_steps");
    DIFF(a->model.pretrain_batch == b->model.pretrain_batch, "model.pretrain_batch");
    DIFF(a->model.pretrain_warmup == b->model.pretrain_warmup, "model.pretrain_warmup");
    DIFF(a->model.pretrain_lr == b->model.pretrain_lr, "model.pretrain_lr");
    DIFF(a->model.pretrain_weight_decay == b->model.pretrain_weight_decay,
         "model.pretrain_weight_decay");
    DIFF(a->model.pretrain_seed == b->model.pretrain_seed, "model.pretrain_seed");
    DIFF(a->model.head == b->model.head, "model.head");
    DIFF(a->model.features == b->model.features, "model.features");
    DIFF(str_eq(a->dataset, b->dataset), "data.dataset");
    DIFF(str_eq(a->eval, b->eval), "data.eval");
    DIFF(str_eq(a->prompt, b->prompt), "data.prompt");
    DIFF(a->image_size == b->image_size, "data.image_size");
    DIFF(a->eval_limit == b->eval_limit, "data.eval_limit");
    DIFF(a->lm.loss == b->lm.loss, "data.lm_loss");
    DIFF(a->lm.cutoff == b->lm.cutoff, "data.cutoff");
    DIFF(a->lm.max_new_tokens == b->lm.max_new_tokens, "data.max_new_tokens");
    DIFF(a->templates == b->templates, "data.templates");
    DIFF(str_eq(a->classnames, b->classnames), "data.classnames");
    DIFF(a->augment == b->augment, "data.augment");
    DIFF(a->shots == b->shots, "data.shots");
    DIFF(a->fraction == b->fraction, "data.fractions");
    DIFF(a->val.kind == b->val.kind && a->val.per_class == b->val.per_class &&
         a->val.fraction == b->val.fraction && str_eq(a->val.spec, b->val.spec), "data.val");
    DIFF(a->seed == b->seed, "sweep.seeds");
    DIFF(a->sample_seed == b->sample_seed, "data.sample_seed");
    DIFF(str_eq(a->method, b->method), "method.methods");
    DIFF(str_eq(a->adapter.method, b->adapter.method), "method.methods");
    DIFF(a->adapter.r == b->adapter.r, "method.rank");
    DIFF(a->adapter.alpha == b->adapter.alpha, "method.alpha");
    DIFF(a->adapter.dropout == b->adapter.dropout, "method.dropout");
    DIFF(a->adapter.rslora == b->adapter.rslora, "method.rslora");
    DIFF(a->adapter.vera_d_init == b->adapter.vera_d_init, "method.vera_d_init");
    DIFF(a->adapter.basis == b->adapter.basis, "method.basis");
    DIFF(a->adapter.n_rule == b->adapter.n_rule && a->adapter.scaling == b->adapter.scaling &&
         a->adapter.lambda_init == b->adapter.lambda_init &&
         a->adapter.gamma_init == b->adapter.gamma_init && str_eq(a->profile, b->profile),
         "method.profile");
    DIFF(a->adapter.seed == b->adapter.seed, "method.init_seed");
    DIFF(a->budget == b->budget, "method.budget");
    DIFF(a->n_trainable == b->n_trainable, "run.trainable");
    DIFF(a->targets.towers == b->targets.towers, "method.towers");
    DIFF(a->targets.layer_lo == b->targets.layer_lo && a->targets.layer_hi == b->targets.layer_hi,
         "method.layers");
    DIFF(a->targets.modules == b->targets.modules, "method.modules");
    DIFF(s->steps == t->steps, "train.steps");
    DIFF(s->epochs == t->epochs, "train.epochs");
    DIFF(s->min_epoch_steps == t->min_epoch_steps, "train.min_epoch_steps");
    DIFF(s->epoch_repeat == t->epoch_repeat, "train.min_epoch_rule");
    DIFF(s->loss == t->loss, "train.loss");
    DIFF(s->logit_scale_raw == t->logit_scale_raw, "train.logit_scale");
    DIFF(s->batch == t->batch, "train.batch");
    DIFF(s->accumulate == t->accumulate, "train.accumulate");
    DIFF(s->lr == t->lr, "train.lr");
    DIFF(s->lr_head == t->lr_head, "train.lr_head");
    DIFF(s->weight_decay == t->weight_decay, "train.weight_decay");
    DIFF(s->beta1 == t->beta1, "train.beta1");
    DIFF(s->beta2 == t->beta2, "train.beta2");
    DIFF(s->eps == t->eps, "train.eps");
    DIFF(s->warmup == t->warmup, "train.warmup");
    DIFF(s->lr_min == t->lr_min, "train.lr_min");
    DIFF(s->clip == t->clip, "train.clip");
    DIFF(s->eval_every == t->eval_every, "train.eval_every");
    DIFF(s->checkpoint_every == t->checkpoint_every, "train.checkpoint_every");
    DIFF(s->recompute == t->recompute, "train.recompute");
    DIFF(s->seed_set == t->seed_set && s->seed == t->seed, "train.seed");
    DIFF(str_eq(a->init_adapter, b->init_adapter), "train.init_adapter");
#undef DIFF
    return NULL;
}

int run_plan_check_roundtrip(const struct run_plan *p)
{
    char *text = run_plan_to_ini(p), *again = NULL, msg[1024];
    struct experiment e;
    struct run_plan *q = NULL;
    size_t n = 0;
    const char *field;
    int rc;

    rc = experiment_parse(&e, text, "(stored /config)", NULL, 0);
    if (rc == RL_OK) {
        rc = cfg_expand(&e, NULL, NULL, &q, &n, false);
        experiment_free(&e);
    }
    if (rc != RL_OK) {
        snprintf(msg, sizeof(msg), "%s", rl_error_msg());
        rc = rl_error_set(RL_ERR_ARG, "its stored configuration would not read back: %s", msg);
    } else if (n != 1) {
        rc = rl_error_set(RL_ERR_ARG, "its stored configuration reads back as %zu runs", n);
    } else if ((field = run_plan_diff(p, q)) != NULL) {
        rc = rl_error_set(RL_ERR_ARG, "its stored configuration reads back with another %s",
                          field);
    } else {
        again = run_plan_to_ini(q);
        if (strcmp(again, text))
            rc = rl_error_set(RL_ERR_ARG, "its stored configuration reads back as another text");
    }
    free(again);
    run_plans_free(q, n);
    free(text);
    return rc;
}

int cfg_check_plan(const char *source, const struct run_plan *p)
{
    char msg[1200];
    int rc;

    if ((rc = check_string(source, p, "experiment", "output", p->output)) ||
        (rc = check_string(source, p, "experiment", "description", p->description)) ||
        (rc = check_string(source, p, "model", "pretrain_dir", p->model.pretrain_dir)) ||
        (rc = check_string(source, p, "model", "pretrain_data", p->model.pretrain_data)) ||
        (rc = check_string(source, p, "data", "dataset", p->dataset)) ||
        (rc = check_string(source, p, "data", "eval", p->eval)) ||
        (rc = check_string(source, p, "data", "val", p->val.spec)) ||
        (rc = check_string(source, p, "data", "prompt", p->prompt)) ||
        (rc = check_string(source, p, "train", "init_adapter", p->init_adapter)))
        return rc;
    if (p->adapter.r > EXP_MAX_RANK)
        return rl_error_set(RL_ERR_ARG, "%s: run %s: rank %zu is over the limit of %d (run.rank)",
                            source, p->id, p->adapter.r, EXP_MAX_RANK);
    if ((rc = run_plan_check_roundtrip(p)) != RL_OK) {
        snprintf(msg, sizeof(msg), "%s", rl_error_msg());
        return rl_error_set(RL_ERR_ARG, "%s: run %s: %s", source, p->id, msg);
    }
    return RL_OK;
}
