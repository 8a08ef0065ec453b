/*
 * config_util.c: what the experiment-file suites (check_config*.c) share
 * (config_util.h).
 */
#include "config_util.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"

int fake_shapes(void *ctx, const struct run_plan *plan, const struct adapter_shape **shapes,
                size_t *n)
{
    struct fake_model *fm = ctx;
    static const struct adapter_shape lin[EXP_N_MODULES] = {
        { 128, 128 }, { 128, 128 }, { 128, 128 }, { 128, 128 }, { 512, 128 }, { 128, 512 },
    };
    size_t k = 0;

    fm->calls++;
    for (unsigned t = 0; t < 2; t++) {
        if (!(plan->targets.towers & (1u << t)))
            continue;
        for (size_t l = 0; l < 4; l++) {
            if (l < plan->targets.layer_lo || l > plan->targets.layer_hi)
                continue;
            for (int i = 0; i < EXP_N_MODULES; i++)
                if (plan->targets.modules & (1u << i))
                    fm->shapes[k++] = lin[i];
        }
    }
    *shapes = fm->shapes;
    *n = k;
    return RL_OK;
}

int parse(struct experiment *e, const char *text)
{
    return experiment_parse(e, text, "t.ini", NULL, 0);
}

/* parse must fail with RL_ERR_ARG and exactly this message */
void expect_error(const char *text, const char *const *ov, size_t n_ov, const char *msg)
{
    struct experiment e;
    int rc = experiment_parse(&e, text, "t.ini", ov, n_ov);

    ck_assert_int_eq(rc, RL_ERR_ARG);
    ck_assert_str_eq(rl_error_msg(), msg);
    ck_assert_ptr_null(e.name);
}

/* parse must fail with RL_ERR_ARG and a message starting with prefix */
void expect_error_prefix(const char *text, const char *prefix)
{
    struct experiment e;
    int rc = parse(&e, text);

    ck_assert_int_eq(rc, RL_ERR_ARG);
    if (strncmp(rl_error_msg(), prefix, strlen(prefix)))
        ck_abort_msg("message '%s' does not start with '%s'", rl_error_msg(), prefix);
}

const struct exp_method *find_method(const struct experiment *e, const char *name)
{
    for (size_t i = 0; i < e->n_methods; i++)
        if (!strcmp(e->methods[i].ops->name, name))
            return &e->methods[i];
    return NULL;
}

/* render, re-parse (no shapes), expand: one plan, the same in every field */
void check_round_trip(const struct run_plan *a)
{
    struct experiment e;
    struct run_plan *b;
    size_t n;
    char *t1 = run_plan_to_ini(a), *t2;
    int rc;

    rc = experiment_parse(&e, t1, "rendered.ini", NULL, 0);
    if (rc != RL_OK)
        ck_abort_msg("%s\n%s", rl_error_msg(), t1);
    rc = experiment_expand(&e, NULL, NULL, &b, &n);
    if (rc != RL_OK)
        ck_abort_msg("%s\n%s", rl_error_msg(), t1);
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(b->id, a->id);
    ck_assert_str_eq(b->experiment, a->experiment);
    ck_assert_str_eq(b->output, a->output);
    ck_assert_str_eq(b->description, a->description);
    ck_assert_str_eq(b->model.name, a->model.name);
    ck_assert_str_eq(b->model.pretrain_dir, a->model.pretrain_dir);
    ck_assert_str_eq(b->model.pretrain_data, a->model.pretrain_data);
    ck_assert(b->model.preset == a->model.preset);
    ck_assert_uint_eq(b->model.pretrain_steps, a->model.pretrain_steps);
    ck_assert(b->model.pretrain_lr == a->model.pretrain_lr);
    ck_assert(b->model.pretrain_seed == a->model.pretrain_seed);
    ck_assert_str_eq(b->dataset, a->dataset);
    ck_assert_str_eq(b->eval, a->eval);
    ck_assert_str_eq(b->prompt, a->prompt);
    ck_assert_uint_eq(b->image_size, a->image_size);
    ck_assert_uint_eq(b->eval_limit, a->eval_limit);
    ck_assert_int_eq(b->val.kind, a->val.kind);
    ck_assert_uint_eq(b->val.per_class, a->val.per_class);
    ck_assert(b->val.fraction == a->val.fraction);
    if (a->val.spec || b->val.spec) {
        ck_assert_ptr_nonnull(a->val.spec);
        ck_assert_ptr_nonnull(b->val.spec);
        ck_assert_str_eq(b->val.spec, a->val.spec);
    }
    ck_assert_int_eq(b->templates, a->templates);
    ck_assert_str_eq(b->classnames, a->classnames);
    ck_assert_int_eq(b->augment, a->augment);
    ck_assert_uint_eq(b->shots, a->shots);
    ck_assert(b->fraction == a->fraction);
    ck_assert(b->seed == a->seed);
    ck_assert(b->sample_seed == a->sample_seed);
    ck_assert_str_eq(b->method, a->method);
    ck_assert_str_eq(b->adapter.method, a->adapter.method);
    ck_assert_uint_eq(b->adapter.r, a->adapter.r);
    ck_assert(b->adapter.alpha == a->adapter.alpha);
    ck_assert(b->adapter.dropout == a->adapter.dropout);
    ck_assert(b->adapter.rslora == a->adapter.rslora);
    ck_assert(b->adapter.vera_d_init == a->adapter.vera_d_init);
    ck_assert_int_eq(b->adapter.basis, a->adapter.basis);
    ck_assert_int_eq(b->adapter.n_rule, a->adapter.n_rule);
    ck_assert_int_eq(b->adapter.scaling, a->adapter.scaling);
    ck_assert_int_eq(b->adapter.lambda_init, a->adapter.lambda_init);
    ck_assert_int_eq(b->adapter.gamma_init, a->adapter.gamma_init);
    ck_assert(b->adapter.seed == a->adapter.seed);
    ck_assert_str_eq(b->profile, a->profile);
    ck_assert_uint_eq(b->budget, a->budget);
    ck_assert_uint_eq(b->n_trainable, a->n_trainable);
    ck_assert_uint_eq(b->targets.towers, a->targets.towers);
    ck_assert_uint_eq(b->targets.layer_lo, a->targets.layer_lo);
    ck_assert_uint_eq(b->targets.layer_hi, a->targets.layer_hi);
    ck_assert_uint_eq(b->targets.modules, a->targets.modules);
    ck_assert(memcmp(&b->train, &a->train, sizeof(a->train)) == 0);
    t2 = run_plan_to_ini(b);
    ck_assert_str_eq(t2, t1);
    free(t1);
    free(t2);
    run_plans_free(b, n);
    experiment_free(&e);
}

const char *experiment_path(const char *name)
{
    static char buf[512];
    const char *dir = getenv("RANDLORA_EXPERIMENTS");

    snprintf(buf, sizeof(buf), "%s/%s", dir ? dir : "experiments", name);
    return buf;
}

const char every_key[] =
    "; every key, none at its default\n"
    "[experiment]\n"
    "name = every.key_1\n"
    "output = /tmp/out dir\n"
    "description = all the keys ; an inline comment\n"
    "[model]\n"
    "name = ./models/my-clip\n"
    "pretrain_dir = /tmp/pre\n"
    "pretrain_data = shapes-count\n"
    "pretrain_corpus = 500\n"
    "pretrain_steps = 7\n"
    "pretrain_batch = 8\n"
    "pretrain_lr = 2e-3\n"
    "pretrain_weight_decay = 0\n"
    "pretrain_warmup = 3\n"
    "pretrain_seed = 18446744073709551615\n"
    "[data]\n"
    "dataset = cifar10:/d/c10, idx:/d/mnist:train\n"
    "eval = cifar10:/d/c10:test, idx:/d/mnist:test\n"
    "image_size = 64\n"
    "prompt = An image of {}\n"
    "templates = dataset\n"
    "classnames = dtd\n"
    "augment = crop_flip\n"
    "shots = 2, 8\n"
    "fractions = 0.25, 1\n"
    "sample_seed = 99\n"
    "eval_limit = 123\n"
    "[method]\n"
    "methods = randlora, lora\n"
    "rank = 4, 16\n"
    "alpha = 12.5\n"
    "dropout = 0.25\n"
    "rslora = yes\n"
    "vera_d_init = 0.5\n"
    "profile = paper\n"
    "basis = very_sparse\n"
    "towers = vision\n"
    "layers = 1-2\n"
    "modules = attn, fc2\n"
    "init_seed = 5\n"
    "[train]\n"
    "epochs = 3\n"
    "min_epoch_steps = 4\n"
    "min_epoch_rule = repeat\n"
    "dataset_epochs = c10:5, MNIST:7\n"
    "batch = 16\n"
    "accumulate = 8\n"
    "lr = 5e-4\n"
    "weight_decay = 0.2\n"
    "beta1 = 0.8\n"
    "beta2 = 0.99\n"
    "eps = 1e-6\n"
    "warmup = 11\n"
    "lr_min = 1e-5\n"
    "clip = 0\n"
    "loss = inbatch\n"
    "logit_scale = raw\n"
    "eval_every = 13\n"
    "checkpoint_every = 17\n"
    "seed = 42\n"
    "[sweep]\n"
    "seeds = 3, 1, 2\n"
    "jobs = 4\n";
