/*
 * check_config.c: experiment files (experiments/config.h).
 *
 *   defaults        an empty file resolves to the documented defaults
 *   every_key       every key set to a non-default value lands in its field
 *   suffix          key.METHOD overrides key for that method only; the
 *                   exclusive pairs (rank/budget, steps/epochs, lr_min/
 *                   lr_min_ratio) follow the suffix-wins rule
 *   overrides       -s replaces file values, is checked like a file line
 *   continuation    indented lines continue a value; an indented key is refused
 *   grid            counts and order of the expansion, ids
 *   budget          ranks from a fake shape list (clip-tiny's linears) equal
 *                   adapter_match_budget's; counts equal adapter_count
 *   ids             unique; colliding ids are an error
 *   round_trip      run_plan_to_ini -> parse -> expand gives the same plan
 *   errors          every error class, with its exact message
 *   shipped         the three experiments/ files (*.ini) parse and expand as documented
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "experiments/config.h"
#include "methods/adapter.h"
#include "suites.h"

/* ------------------------------------------------------------------------ */
/* helpers                                                                   */

/* clip-tiny's adapted linears for a plan's targets: width 128, MLP 512,
 * 4 layers per tower */
struct fake_model {
    struct adapter_shape shapes[64];
    size_t calls;
};

static int fake_shapes(void *ctx, const struct run_plan *plan,
                       const struct adapter_shape **shapes, size_t *n)
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
    if (k == 0)
        return rl_error_set(RL_ERR_ARG, "targets match no layer");
    *shapes = fm->shapes;
    *n = k;
    return RL_OK;
}

static int parse(struct experiment *e, const char *text)
{
    return experiment_parse(e, text, "t.ini", NULL, 0);
}

/* parse must fail with RL_ERR_ARG and exactly this message */
static void expect_error(const char *text, const char *const *ov, size_t n_ov, const char *msg)
{
    struct experiment e;
    int rc = experiment_parse(&e, text, "t.ini", ov, n_ov);

    ck_assert_int_eq(rc, RL_ERR_ARG);
    ck_assert_str_eq(rl_error_msg(), msg);
    ck_assert_ptr_null(e.name);
}

/* parse must fail with RL_ERR_ARG and a message starting with prefix */
static void expect_error_prefix(const char *text, const char *prefix)
{
    struct experiment e;
    int rc = parse(&e, text);

    ck_assert_int_eq(rc, RL_ERR_ARG);
    if (strncmp(rl_error_msg(), prefix, strlen(prefix)))
        ck_abort_msg("message '%s' does not start with '%s'", rl_error_msg(), prefix);
}

static const struct exp_method *find_method(const struct experiment *e, const char *name)
{
    for (size_t i = 0; i < e->n_methods; i++)
        if (!strcmp(e->methods[i].ops->name, name))
            return &e->methods[i];
    return NULL;
}

/* ------------------------------------------------------------------------ */

START_TEST(test_defaults)
{
    struct experiment e;
    const struct exp_method *m;

    ck_assert_int_eq(parse(&e, ""), RL_OK);
    ck_assert_str_eq(e.source, "t.ini");
    ck_assert_str_eq(e.name, "experiment");
    ck_assert_str_eq(e.output, "out/runs/experiment");
    ck_assert_str_eq(e.description, "");
    ck_assert_str_eq(e.model.name, "clip-tiny");
    ck_assert(e.model.preset);
    ck_assert_str_eq(e.model.pretrain_dir, "out/models/clip-tiny");
    ck_assert_str_eq(e.model.pretrain_data, "shapes");
    ck_assert_uint_eq(e.model.pretrain_corpus, 20000);
    ck_assert_uint_eq(e.model.pretrain_steps, 2000);
    ck_assert_uint_eq(e.model.pretrain_batch, 64);
    ck_assert_uint_eq(e.model.pretrain_warmup, 100);
    ck_assert(e.model.pretrain_lr == 1e-3);
    ck_assert(e.model.pretrain_weight_decay == 0.1);
    ck_assert_uint_eq(e.model.pretrain_seed, 0);
    ck_assert_uint_eq(e.n_datasets, 1);
    ck_assert_str_eq(e.datasets[0], "fashion-mnist");
    ck_assert_str_eq(e.evals[0], "fashion-mnist:test");
    ck_assert_uint_eq(e.image_size, 0);
    ck_assert_str_eq(e.prompt, "a photo of a {}.");
    ck_assert_int_eq(e.templates, EXP_TEMPLATES_PROMPT);
    ck_assert_int_eq(e.augment, EXP_AUGMENT_NONE);
    ck_assert_uint_eq(e.n_shots, 0);
    ck_assert_uint_eq(e.n_fractions, 1);
    ck_assert(e.fractions[0] == 1.0);
    ck_assert(!e.sample_seed_set);
    ck_assert_uint_eq(e.eval_limit, 0);
    ck_assert_uint_eq(e.n_methods, 1);
    m = &e.methods[0];
    ck_assert_str_eq(m->ops->name, "lora");
    ck_assert(!m->by_budget);
    ck_assert_uint_eq(m->n_sizes, 1);
    ck_assert_uint_eq(m->sizes[0], 8);
    ck_assert(m->adapter.alpha == 0.0f);
    ck_assert(m->adapter.dropout == 0.0f);
    ck_assert(!m->adapter.rslora);
    ck_assert(m->adapter.vera_d_init == 0.1f);
    ck_assert_str_eq(m->profile, "peft");
    ck_assert_int_eq(m->adapter.basis, ADAPTER_BASIS_DENSE);
    ck_assert_uint_eq(m->targets.towers, EXP_TOWER_VISION | EXP_TOWER_TEXT);
    ck_assert_uint_eq(m->targets.layer_lo, 0);
    ck_assert_uint_eq(m->targets.layer_hi, SIZE_MAX);
    ck_assert_uint_eq(m->targets.modules, 0x37u);     /* q k v fc1 fc2 */
    ck_assert(!m->init_seed_set);
    ck_assert_uint_eq(m->train.steps, 1000);
    ck_assert_uint_eq(m->train.epochs, 0);
    ck_assert_uint_eq(m->train.min_epoch_steps, 10);
    ck_assert_uint_eq(m->train.batch, 32);
    ck_assert_uint_eq(m->train.accumulate, 1);
    ck_assert(m->train.lr == 1e-3);
    ck_assert(m->train.weight_decay == 0.01);
    ck_assert(m->train.beta1 == 0.9 && m->train.beta2 == 0.999 && m->train.eps == 1e-8);
    ck_assert_uint_eq(m->train.warmup, 0);
    ck_assert(m->train.lr_min == 0.0);
    ck_assert(m->train.clip == 1.0);
    ck_assert_uint_eq(m->train.eval_every, 0);
    ck_assert_uint_eq(m->train.checkpoint_every, 0);
    ck_assert(!m->train.seed_set);
    ck_assert_uint_eq(e.n_seeds, 1);
    ck_assert_uint_eq(e.seeds[0], 1);
    ck_assert_uint_eq(e.jobs, 1);
    ck_assert_ptr_null(e.run_id);
    ck_assert_uint_eq(experiment_n_runs(&e), 1);
    experiment_free(&e);
    experiment_free(&e);      /* safe twice */

    /* peft's default ranks per method */
    ck_assert_int_eq(parse(&e, "[method]\nmethods = vera, randlora, full, none\n"), RL_OK);
    ck_assert_uint_eq(find_method(&e, "vera")->sizes[0], 256);
    ck_assert_uint_eq(find_method(&e, "randlora")->sizes[0], 32);
    ck_assert_uint_eq(find_method(&e, "full")->n_sizes, 0);
    ck_assert_uint_eq(find_method(&e, "none")->n_sizes, 0);
    ck_assert_uint_eq(experiment_n_runs(&e), 4);
    experiment_free(&e);
}
END_TEST

static const char every_key[] =
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
    "eval_every = 13\n"
    "checkpoint_every = 17\n"
    "seed = 42\n"
    "[sweep]\n"
    "seeds = 3, 1, 2\n"
    "jobs = 4\n";

START_TEST(test_every_key)
{
    struct experiment e;
    const struct exp_method *m;

    ck_assert_int_eq(parse(&e, every_key), RL_OK);
    ck_assert_str_eq(e.name, "every.key_1");
    ck_assert_str_eq(e.output, "/tmp/out dir");
    ck_assert_str_eq(e.description, "all the keys");
    ck_assert_str_eq(e.model.name, "./models/my-clip");
    ck_assert(!e.model.preset);
    ck_assert_str_eq(e.model.pretrain_dir, "/tmp/pre");
    ck_assert_str_eq(e.model.pretrain_data, "shapes-count");
    ck_assert_uint_eq(e.model.pretrain_corpus, 500);
    ck_assert_uint_eq(e.model.pretrain_steps, 7);
    ck_assert_uint_eq(e.model.pretrain_batch, 8);
    ck_assert(e.model.pretrain_lr == 2e-3);
    ck_assert(e.model.pretrain_weight_decay == 0.0);
    ck_assert_uint_eq(e.model.pretrain_warmup, 3);
    ck_assert(e.model.pretrain_seed == UINT64_MAX);
    ck_assert_uint_eq(e.n_datasets, 2);
    ck_assert_str_eq(e.datasets[0], "cifar10:/d/c10");
    ck_assert_str_eq(e.datasets[1], "idx:/d/mnist:train");
    ck_assert_str_eq(e.evals[0], "cifar10:/d/c10:test");
    ck_assert_str_eq(e.evals[1], "idx:/d/mnist:test");
    ck_assert_uint_eq(e.image_size, 64);
    ck_assert_str_eq(e.prompt, "An image of {}");
    ck_assert_int_eq(e.templates, EXP_TEMPLATES_DATASET);
    ck_assert_int_eq(e.augment, EXP_AUGMENT_CROP_FLIP);
    ck_assert_uint_eq(e.n_shots, 2);
    ck_assert_uint_eq(e.shots[0], 2);
    ck_assert_uint_eq(e.shots[1], 8);
    ck_assert_uint_eq(e.n_fractions, 2);
    ck_assert(e.fractions[0] == 0.25 && e.fractions[1] == 1.0);
    ck_assert(e.sample_seed_set);
    ck_assert_uint_eq(e.sample_seed, 99);
    ck_assert_uint_eq(e.eval_limit, 123);
    ck_assert_uint_eq(e.n_methods, 2);
    ck_assert_str_eq(e.methods[0].ops->name, "randlora");
    ck_assert_str_eq(e.methods[1].ops->name, "lora");
    for (size_t i = 0; i < 2; i++) {
        m = &e.methods[i];
        ck_assert(!m->by_budget);
        ck_assert_uint_eq(m->n_sizes, 2);
        ck_assert_uint_eq(m->sizes[0], 4);
        ck_assert_uint_eq(m->sizes[1], 16);
        ck_assert(m->adapter.alpha == 12.5f);
        ck_assert(m->adapter.dropout == 0.25f);
        ck_assert(m->adapter.rslora);
        ck_assert(m->adapter.vera_d_init == 0.5f);
        ck_assert_str_eq(m->profile, "paper");
        ck_assert_int_eq(m->adapter.n_rule, ADAPTER_N_FLOOR_PLUS_ONE);
        ck_assert_int_eq(m->adapter.basis, ADAPTER_BASIS_VERY_SPARSE);
        ck_assert_uint_eq(m->targets.towers, EXP_TOWER_VISION);
        ck_assert_uint_eq(m->targets.layer_lo, 1);
        ck_assert_uint_eq(m->targets.layer_hi, 2);
        ck_assert_uint_eq(m->targets.modules, 0x2fu);   /* q k v out fc2 */
        ck_assert(m->init_seed_set);
        ck_assert_uint_eq(m->init_seed, 5);
        ck_assert_uint_eq(m->train.steps, 0);
        ck_assert_uint_eq(m->train.epochs, 3);
        ck_assert_uint_eq(m->train.min_epoch_steps, 4);
        ck_assert_uint_eq(m->train.batch, 16);
        ck_assert_uint_eq(m->train.accumulate, 8);
        ck_assert(m->train.lr == 5e-4);
        ck_assert(m->train.weight_decay == 0.2);
        ck_assert(m->train.beta1 == 0.8 && m->train.beta2 == 0.99 && m->train.eps == 1e-6);
        ck_assert_uint_eq(m->train.warmup, 11);
        ck_assert(m->train.lr_min == 1e-5);
        ck_assert(m->train.clip == 0.0);
        ck_assert_uint_eq(m->train.eval_every, 13);
        ck_assert_uint_eq(m->train.checkpoint_every, 17);
        ck_assert(m->train.seed_set);
        ck_assert_uint_eq(m->train.seed, 42);
    }
    ck_assert_uint_eq(e.n_seeds, 3);
    ck_assert_uint_eq(e.seeds[0], 3);
    ck_assert_uint_eq(e.seeds[2], 2);
    ck_assert_uint_eq(e.jobs, 4);
    /* 2 datasets x 2 methods x 2 ranks x (2 shots + 2 fractions) x 3 seeds */
    ck_assert_uint_eq(experiment_n_runs(&e), 96);
    experiment_free(&e);
}
END_TEST

START_TEST(test_suffix)
{
    struct experiment e;
    const char *text =
        "[method]\n"
        "methods = lora, vera, randlora, full\n"
        "budget = 20000, 40000\n"
        "rank.lora = 32\n"              /* wins over the plain budget for lora */
        "budget.vera = 30000\n"         /* wins over the plain budget for vera */
        "dropout.lora = 0.1\n"
        "basis.randlora = sparse\n"
        "rank.none = 3\n"               /* a method not listed: accepted, unused */
        "[train]\n"
        "lr = 1e-3\n"
        "lr.vera = 1e-2\n"
        "steps = 100\n"
        "epochs.full = 2\n"             /* suffix beats the plain steps */
        "lr_min_ratio = 0.01\n"
        "lr_min.randlora = 0\n";
    const struct exp_method *lora, *vera, *rl, *full;

    ck_assert_int_eq(parse(&e, text), RL_OK);
    lora = find_method(&e, "lora");
    vera = find_method(&e, "vera");
    rl = find_method(&e, "randlora");
    full = find_method(&e, "full");
    ck_assert(!lora->by_budget);
    ck_assert_uint_eq(lora->n_sizes, 1);
    ck_assert_uint_eq(lora->sizes[0], 32);
    ck_assert(vera->by_budget);
    ck_assert_uint_eq(vera->n_sizes, 1);
    ck_assert_uint_eq(vera->sizes[0], 30000);
    ck_assert(rl->by_budget);
    ck_assert_uint_eq(rl->n_sizes, 2);
    ck_assert_uint_eq(rl->sizes[1], 40000);
    ck_assert_uint_eq(full->n_sizes, 0);
    ck_assert(lora->adapter.dropout == 0.1f);
    ck_assert(vera->adapter.dropout == 0.0f);
    ck_assert_int_eq(rl->adapter.basis, ADAPTER_BASIS_SPARSE);
    ck_assert_int_eq(lora->adapter.basis, ADAPTER_BASIS_DENSE);
    ck_assert(lora->train.lr == 1e-3);
    ck_assert(vera->train.lr == 1e-2);
    ck_assert(vera->train.lr_min == 1e-2 * 0.01);
    ck_assert(lora->train.lr_min == 1e-3 * 0.01);
    ck_assert(rl->train.lr_min == 0.0);
    ck_assert_uint_eq(lora->train.steps, 100);
    ck_assert_uint_eq(full->train.steps, 0);
    ck_assert_uint_eq(full->train.epochs, 2);
    /* 1 + 1 + 2 + 1 */
    ck_assert_uint_eq(experiment_n_runs(&e), 5);
    experiment_free(&e);
}
END_TEST

START_TEST(test_overrides)
{
    struct experiment e;
    const char *text = "[train]\nlr = 1e-3\nsteps = 10\n[method]\nmethods = lora, vera\n";
    const char *ov[] = {
        "train.lr=2e-3", " train.lr.vera = 3e-2 ", "method.rank.lora=4", "data.shots=1,2",
        "train.lr=4e-3",                                  /* a later one wins */
        "experiment.description=",                        /* an empty text */
    };

    ck_assert_int_eq(experiment_parse(&e, text, "t.ini", ov, 6), RL_OK);
    ck_assert(find_method(&e, "lora")->train.lr == 4e-3);
    ck_assert(find_method(&e, "vera")->train.lr == 3e-2);
    ck_assert_uint_eq(find_method(&e, "lora")->sizes[0], 4);
    ck_assert_uint_eq(find_method(&e, "vera")->sizes[0], 256);
    ck_assert_uint_eq(e.n_shots, 2);
    ck_assert_uint_eq(e.n_fractions, 0);
    ck_assert_str_eq(e.description, "");
    experiment_free(&e);

    /* an override that makes a pair ambiguous is caught, located at -s */
    {
        const char *o1[] = { "train.epochs=3" };

        expect_error(text, o1, 1, "-s: train.epochs = '3': give train.steps or train.epochs, "
                     "not both (train.steps at t.ini:3)");
    }
    {
        const char *o1[] = { "train.lrr=1" };

        expect_error(text, o1, 1, "-s: unknown key train.lrr (valid keys in [train]: steps, "
                     "epochs, min_epoch_steps, batch, accumulate, lr, weight_decay, beta1, beta2, "
                     "eps, warmup, lr_min, lr_min_ratio, clip, eval_every, checkpoint_every, "
                     "recompute, precision, seed)");
    }
    {
        const char *o1[] = { "train.lr=fast" };

        expect_error(text, o1, 1, "-s: train.lr = 'fast': expected a number in (0, 10]");
    }
    {
        const char *o1[] = { "trainlr=1" };

        expect_error(text, o1, 1, "-s: 'trainlr=1': expected section.key=value");
    }
    {
        const char *o1[] = { "train.lr" };

        expect_error(text, o1, 1, "-s: 'train.lr': expected section.key=value");
    }
    {
        const char *o1[] = { "sweep.seeds.lora=1" };

        expect_error(text, o1, 1, "-s: sweep.seeds.lora = '1': sweep.seeds takes no .METHOD "
                     "suffix (only the [method] keys but methods and the [train] keys do)");
    }
    {
        const char *o1[] = { "experiment.description=a ; b" };

        expect_error(text, o1, 1, "-s: experiment.description = 'a ; b': ' ;' would start a "
                     "comment in an INI file");
    }
}
END_TEST

START_TEST(test_continuation)
{
    struct experiment e;

    ck_assert_int_eq(parse(&e, "[data]\nshots = 1, 2,\n    4, 16\n; comment\n"
                               "prompt = a photo\n  of a {}.\n"), RL_OK);
    ck_assert_uint_eq(e.n_shots, 4);
    ck_assert_uint_eq(e.shots[3], 16);
    ck_assert_str_eq(e.prompt, "a photo of a {}.");
    experiment_free(&e);
    expect_error("[train]\nlr = 1\n  steps = 3\n", NULL, 0,
                 "t.ini:3: indented line 'steps = 3' would continue train.lr; start keys at the "
                 "beginning of a line (indent only continuation lines)");
    /* the first key of a section may be indented */
    ck_assert_int_eq(parse(&e, "[train]\n  lr = 0.5\n"), RL_OK);
    ck_assert(e.methods[0].train.lr == 0.5);
    experiment_free(&e);
}
END_TEST

START_TEST(test_grid)
{
    struct experiment e;
    struct run_plan *p;
    size_t n;
    const char *text =
        "[data]\nshots = 1, 4\nfractions = 0.5\n"
        "[method]\nmethods = lora, full\nrank = 4, 8\n"
        "[sweep]\nseeds = 1, 2\n";
    static const char *const want[] = {
        "lora-r4-s1-seed1", "lora-r4-s1-seed2", "lora-r4-s4-seed1", "lora-r4-s4-seed2",
        "lora-r4-f0.5-seed1", "lora-r4-f0.5-seed2",
        "lora-r8-s1-seed1", "lora-r8-s1-seed2", "lora-r8-s4-seed1", "lora-r8-s4-seed2",
        "lora-r8-f0.5-seed1", "lora-r8-f0.5-seed2",
        "full-s1-seed1", "full-s1-seed2", "full-s4-seed1", "full-s4-seed2",
        "full-f0.5-seed1", "full-f0.5-seed2",
    };

    ck_assert_int_eq(parse(&e, text), RL_OK);
    ck_assert_uint_eq(experiment_n_runs(&e), 18);
    ck_assert_int_eq(experiment_expand(&e, NULL, NULL, &p, &n), RL_OK);
    ck_assert_uint_eq(n, 18);
    for (size_t i = 0; i < n; i++) {
        ck_assert_str_eq(p[i].id, want[i]);
        ck_assert_uint_eq(p[i].index, i);
        ck_assert_str_eq(p[i].dataset, "fashion-mnist");
        ck_assert_str_eq(p[i].eval, "fashion-mnist:test");
        ck_assert_uint_eq(p[i].n_trainable, 0);
    }
    ck_assert_str_eq(p[0].method, "lora");
    ck_assert_uint_eq(p[0].adapter.r, 4);
    ck_assert_str_eq(p[0].adapter.method, "lora");
    ck_assert_uint_eq(p[7].adapter.r, 8);
    ck_assert_uint_eq(p[3].shots, 4);
    ck_assert(p[4].fraction == 0.5 && p[4].shots == 0);
    /* the run's seed drives sampling, adapter init and training by default */
    ck_assert_uint_eq(p[1].seed, 2);
    ck_assert_uint_eq(p[1].sample_seed, 2);
    ck_assert_uint_eq(p[1].adapter.seed, 2);
    ck_assert_uint_eq(p[1].train.seed, 2);
    ck_assert_uint_eq(p[12].adapter.r, 0);
    ck_assert_uint_eq(p[12].budget, 0);
    run_plans_free(p, n);
    experiment_free(&e);

    /* fixed seeds stay fixed across the seed axis */
    ck_assert_int_eq(parse(&e, "[data]\nsample_seed = 7\n[method]\ninit_seed = 8\n"
                               "[train]\nseed = 9\n[sweep]\nseeds = 1, 2\n"), RL_OK);
    ck_assert_int_eq(experiment_expand(&e, NULL, NULL, &p, &n), RL_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_uint_eq(p[1].seed, 2);
    ck_assert_uint_eq(p[1].sample_seed, 7);
    ck_assert_uint_eq(p[1].adapter.seed, 8);
    ck_assert_uint_eq(p[1].train.seed, 9);
    ck_assert_str_eq(p[1].id, "lora-r8-f1-seed2");
    run_plans_free(p, n);
    experiment_free(&e);

    /* several datasets: outermost axis, ids prefixed with the dataset's name */
    ck_assert_int_eq(parse(&e, "[data]\ndataset = folder:/x/dtd/, cifar10:/y/c10:train, shapes\n"
                               "shots = 2\n"), RL_OK);
    ck_assert_int_eq(experiment_expand(&e, NULL, NULL, &p, &n), RL_OK);
    ck_assert_uint_eq(n, 3);
    ck_assert_str_eq(p[0].id, "dtd-lora-r8-s2-seed1");
    ck_assert_str_eq(p[0].eval, "folder:/x/dtd/:test");
    ck_assert_str_eq(p[1].id, "c10-lora-r8-s2-seed1");
    ck_assert_str_eq(p[1].eval, "cifar10:/y/c10:test");
    ck_assert_str_eq(p[2].id, "shapes-lora-r8-s2-seed1");
    run_plans_free(p, n);
    experiment_free(&e);

    /* epochs to steps */
    {
        struct run_plan q;

        memset(&q, 0, sizeof(q));
        q.train.epochs = 10;
        q.train.batch = 32;
        q.train.accumulate = 4;
        q.train.min_epoch_steps = 10;
        ck_assert_uint_eq(run_plan_total_steps(&q, 16 * 10), 100);     /* over-sampled */
        ck_assert_uint_eq(run_plan_total_steps(&q, 128 * 25 + 1), 260); /* ceil */
        q.train.steps = 77;
        ck_assert_uint_eq(run_plan_total_steps(&q, 5), 77);
    }
}
END_TEST

START_TEST(test_budget)
{
    struct experiment e;
    struct run_plan *p;
    struct fake_model fm = { .calls = 0 };
    size_t n;
    const char *text =
        "[method]\nmethods = lora, vera, randlora, full\nbudget = 25000, 65536\n"
        "towers.vera = vision\nlayers.vera = 0-1\n"
        "[data]\nshots = 16\n";

    ck_assert_int_eq(parse(&e, text), RL_OK);
    /* budgets need shapes */
    ck_assert_int_eq(experiment_expand(&e, NULL, NULL, &p, &n), RL_ERR_ARG);
    ck_assert_str_eq(rl_error_msg(), "t.ini: method.budget (lora) needs the model's layer "
                     "shapes to pick a rank");
    ck_assert_ptr_null(p);
    ck_assert_int_eq(experiment_expand(&e, fake_shapes, &fm, &p, &n), RL_OK);
    ck_assert_uint_eq(n, 7);
    for (size_t i = 0; i < n; i++) {
        const struct adapter_ops *ops = adapter_ops_find(p[i].method);
        const struct adapter_shape *sh;
        size_t nsh, r, count;

        ck_assert_int_eq(fake_shapes(&fm, &p[i], &sh, &nsh), RL_OK);
        if (ops->flags & ADAPTER_F_RANK) {
            struct adapter_cfg cfg = p[i].adapter;

            ck_assert_int_eq(adapter_match_budget(ops, &cfg, sh, nsh, p[i].budget, &r, &count),
                             RL_OK);
            ck_assert_uint_eq(p[i].adapter.r, r);
            ck_assert_uint_eq(p[i].n_trainable, count);
        } else {
            ck_assert_uint_eq(p[i].budget, 0);
        }
        ck_assert_uint_eq(p[i].n_trainable, adapter_count(ops, &p[i].adapter, sh, nsh));
    }
    /* the ranks documented in quickstart.ini and budget_sweep.ini */
    ck_assert_str_eq(p[0].id, "lora-b25000-s16-seed1");
    ck_assert_uint_eq(p[0].adapter.r, 2);
    ck_assert_uint_eq(p[0].n_trainable, 32768);
    ck_assert_uint_eq(p[1].adapter.r, 4);
    ck_assert_str_eq(p[4].id, "randlora-b25000-s16-seed1");
    ck_assert_uint_eq(p[4].adapter.r, 32);
    ck_assert_uint_eq(p[4].n_trainable, 25600);
    ck_assert_str_eq(p[6].id, "full-s16-seed1");
    ck_assert_uint_eq(p[6].n_trainable, 8 * (3 * 128 * 128 + 2 * 512 * 128));
    /* vera on 2 vision layers only: 10 linears, count 10 r + 2*(3*128+512+128) */
    ck_assert_uint_eq(p[2].n_trainable % 10, (2 * (3 * 128 + 512 + 128)) % 10);
    run_plans_free(p, n);
    experiment_free(&e);

    /* a rank a layer refuses is caught when shapes are given */
    ck_assert_int_eq(parse(&e, "[method]\nmethods = lora\nrank = 200\n"), RL_OK);
    ck_assert_int_eq(experiment_expand(&e, fake_shapes, &fm, &p, &n), RL_ERR_ARG);
    if (strncmp(rl_error_msg(), "t.ini: lora with rank 200: ", 27))
        ck_abort_msg("%s", rl_error_msg());
    experiment_free(&e);
    /* the caller's error passes through */
    ck_assert_int_eq(parse(&e, "[method]\nlayers = 9\n"), RL_OK);
    ck_assert_int_eq(experiment_expand(&e, fake_shapes, &fm, &p, &n), RL_ERR_ARG);
    ck_assert_str_eq(rl_error_msg(), "targets match no layer");
    experiment_free(&e);
}
END_TEST

START_TEST(test_ids)
{
    struct experiment e;
    struct run_plan *p;
    struct fake_model fm = { .calls = 0 };
    size_t n;

    ck_assert_int_eq(parse(&e, "[data]\ndataset = folder:/a/x, folder:/b/x\n"), RL_OK);
    ck_assert_int_eq(experiment_expand(&e, NULL, NULL, &p, &n), RL_ERR_ARG);
    ck_assert_str_eq(rl_error_msg(), "t.ini: two runs get the id 'x-lora-r8-f1-seed1' (give the "
                     "datasets distinct names)");
    experiment_free(&e);

    /* a large grid: all ids distinct */
    ck_assert_int_eq(parse(&e, "[data]\nshots = 1, 2, 4, 8, 16\nfractions = 0.5, 1\n"
                               "[method]\nmethods = lora, vera, randlora, full, none\n"
                               "budget = 20000, 40000, 80000\nrank.vera = 16, 64\n"
                               "[sweep]\nseeds = 1, 2, 3\n"), RL_OK);
    ck_assert_uint_eq(experiment_n_runs(&e), (3 + 2 + 3 + 1 + 1) * 7 * 3);
    ck_assert_int_eq(experiment_expand(&e, fake_shapes, &fm, &p, &n), RL_OK);
    ck_assert_uint_eq(n, 210);
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            ck_assert_str_ne(p[i].id, p[j].id);
    ck_assert_str_eq(p[n - 1].id, "none-f1-seed3");
    run_plans_free(p, n);
    experiment_free(&e);
}
END_TEST

/* render, re-parse (no shapes), expand: one plan, the same in every field */
static void check_round_trip(const struct run_plan *a)
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
    ck_assert_int_eq(b->templates, a->templates);
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

START_TEST(test_round_trip)
{
    struct experiment e;
    struct run_plan *p;
    struct fake_model fm = { .calls = 0 };
    size_t n;
    const char *text =
        "[experiment]\nname = rt\ndescription = a long description that must be wrapped onto "
        "continuation lines when it is written back, because INI lines are limited to about "
        "two hundred characters by libinih, and a = sign inside\n"
        "[model]\nname = /models/some where/clip\npretrain_lr = 0.0003\n"
        "[data]\ndataset = folder:/data/dtd, fashion-mnist\nshots = 1, 16\nfractions = 0.1\n"
        "prompt = a blurry photo of a {}, seen from far away\naugment = flip\n"
        "[method]\nmethods = lora, vera, randlora, full\nbudget = 30000\nrank.lora = 3, 7\n"
        "alpha.lora = 0.3\ndropout = 0.1\nvera_d_init = 0.7\nprofile.randlora = paper\n"
        "basis = sparse\nlayers = 1-3\nmodules = mlp, q_proj\ntowers.full = text\n"
        "[train]\nlr = 3e-4\nlr.vera = 0.01\nlr_min_ratio = 0.1\nepochs.full = 2\nsteps = 20\n"
        "weight_decay = 0.3\n[sweep]\nseeds = 5, 6\n";

    ck_assert_int_eq(parse(&e, text), RL_OK);
    ck_assert_int_eq(experiment_expand(&e, fake_shapes, &fm, &p, &n), RL_OK);
    ck_assert_uint_eq(n, 2 * 5 * 3 * 2);
    for (size_t i = 0; i < n; i++)
        check_round_trip(&p[i]);
    /* the rendered text of one run, for the eye */
    {
        char *t = run_plan_to_ini(&p[0]);

        ck_assert_ptr_nonnull(strstr(t, "\n[run]\nid = dtd-lora-r3-s1-seed5\ntrainable = "));
        const char *lm = strstr(t, "\nlr_min = ");

        ck_assert_ptr_nonnull(lm);
        ck_assert(strtod(lm + 10, NULL) == 3e-4 * 0.1);     /* exact, shortest text */
        free(t);
    }
    run_plans_free(p, n);
    experiment_free(&e);

    /* without shapes (rank runs only) */
    ck_assert_int_eq(parse(&e, every_key), RL_OK);
    ck_assert_int_eq(experiment_expand(&e, NULL, NULL, &p, &n), RL_OK);
    for (size_t i = 0; i < n; i += 7)
        check_round_trip(&p[i]);
    run_plans_free(p, n);
    experiment_free(&e);

    /* [run] pins one run */
    ck_assert_int_eq(parse(&e, "[run]\nid = x\n[data]\nshots = 1, 2\n"), RL_OK);
    ck_assert_int_eq(experiment_expand(&e, NULL, NULL, &p, &n), RL_ERR_ARG);
    ck_assert_str_eq(rl_error_msg(), "t.ini: [run] pins one run but the grid has 2");
    experiment_free(&e);
    ck_assert_int_eq(parse(&e, "[run]\nrank = 3\n"), RL_OK);
    ck_assert_int_eq(experiment_expand(&e, NULL, NULL, &p, &n), RL_ERR_ARG);
    ck_assert_str_eq(rl_error_msg(), "t.ini: run.rank pins the rank a budget matched, but lora "
                     "uses method.rank");
    experiment_free(&e);
}
END_TEST

START_TEST(test_errors)
{
    char long_line[400];

    expect_error("[trian]\nlr = 1\n", NULL, 0, "t.ini:1: unknown section [trian] (valid "
                 "sections: experiment, model, data, method, train, sweep, run)");
    expect_error("[data]\n[empty]\n", NULL, 0, "t.ini:2: unknown section [empty] (valid "
                 "sections: experiment, model, data, method, train, sweep, run)");
    expect_error("[data]\nshot = 1\n", NULL, 0, "t.ini:2: unknown key data.shot (valid keys in "
                 "[data]: dataset, eval, image_size, prompt, templates, augment, shots, fractions, "
                 "sample_seed, eval_limit, val)");
    expect_error("lr = 1\n", NULL, 0, "t.ini:1: lr = '1' is outside a section (start with a "
                 "[section] line)");
    expect_error("[train]\nlr = 1e-3x\n", NULL, 0,
                 "t.ini:2: train.lr = '1e-3x': expected a number in (0, 10]");
    expect_error("[train]\nlr = 0\n", NULL, 0,
                 "t.ini:2: train.lr = '0': expected a number in (0, 10]");
    expect_error("[train]\nlr = nan\n", NULL, 0,
                 "t.ini:2: train.lr = 'nan': expected a number in (0, 10]");
    expect_error("[train]\nbatch = -3\n", NULL, 0,
                 "t.ini:2: train.batch = '-3': expected an integer in [1, 1000000]");
    expect_error("[train]\nbatch = 3.5\n", NULL, 0,
                 "t.ini:2: train.batch = '3.5': expected an integer in [1, 1000000]");
    expect_error("[train]\nclip = -1\n", NULL, 0,
                 "t.ini:2: train.clip = '-1': expected a number >= 0");
    expect_error("[method]\ndropout = 1\n", NULL, 0,
                 "t.ini:2: method.dropout = '1': expected a number in [0, 1)");
    expect_error("[sweep]\nseeds = 1, 18446744073709551616\n", NULL, 0,
                 "t.ini:2: sweep.seeds = '1, 18446744073709551616': item "
                 "'18446744073709551616': expected an integer in [0, 2^64)");
    expect_error("[data]\nsample_seed = soon\n", NULL, 0,
                 "t.ini:2: data.sample_seed = 'soon': expected an integer in [0, 2^64) or run");
    expect_error("[method]\nmethods = lora, dora\n", NULL, 0,
                 "t.ini:2: method.methods = 'lora, dora': unknown method 'dora' (known: lora, "
                 "vera, randlora, full, none)");
    expect_error("[data]\nshots =\n", NULL, 0, "t.ini:2: data.shots = '': an empty list");
    expect_error("[data]\nshots = 1,,4\n", NULL, 0,
                 "t.ini:2: data.shots = '1,,4': an empty item in the list");
    expect_error("[data]\nshots = 4, 1, 4\n", NULL, 0,
                 "t.ini:2: data.shots = '4, 1, 4': '4' is listed twice");
    expect_error("[data]\nfractions = 0.5, 1.5\n", NULL, 0,
                 "t.ini:2: data.fractions = '0.5, 1.5': item '1.5': expected a fraction in "
                 "(0, 1]");
    expect_error("[train]\nlr.vear = 1e-2\n", NULL, 0,
                 "t.ini:2: train.lr.vear = '1e-2': unknown method 'vear' in the suffix (known: "
                 "lora, vera, randlora, full, none)");
    expect_error("[data]\nshots.lora = 1\n", NULL, 0,
                 "t.ini:2: data.shots.lora = '1': data.shots takes no .METHOD suffix (only the "
                 "[method] keys but methods and the [train] keys do)");
    expect_error("[train]\nlr = 1e-3\nsteps = 3\nlr = 2e-3\n", NULL, 0,
                 "t.ini:4: train.lr is given twice (first at line 2)");
    expect_error("[train]\nlr.vera = 1e-3\n[train]\nlr.vera = 2e-3\n", NULL, 0,
                 "t.ini:4: train.lr.vera is given twice (first at line 2)");
    expect_error("[method]\nrank = 4\nbudget = 1000\n", NULL, 0,
                 "t.ini:3: method.budget = '1000': give method.rank or method.budget, not both "
                 "(method.rank at t.ini:2)");
    expect_error("[method]\nrank.lora = 4\nbudget.lora = 1000\n", NULL, 0,
                 "t.ini:3: method.budget.lora = '1000': give method.rank or method.budget, not "
                 "both (method.rank.lora at t.ini:2)");
    expect_error("[train]\nlr_min = 0\nlr_min_ratio = 0.1\n", NULL, 0,
                 "t.ini:3: train.lr_min_ratio = '0.1': give train.lr_min or train.lr_min_ratio, "
                 "not both (train.lr_min at t.ini:2)");
    expect_error("[train]\nlr = 1e-3\nlr_min = 1e-2\n", NULL, 0,
                 "t.ini:3: train.lr_min = '0.01': expected at most train.lr (0.001)");
    expect_error("[train]\nsteps = 10\nwarmup = 20\n", NULL, 0,
                 "t.ini:3: train.warmup = '20': expected at most train.steps (10)");
    expect_error("[data]\ndataset = fashion-mnist, shapes\neval = shapes:test\n", NULL, 0,
                 "t.ini:3: data.eval = 'shapes:test': expected 2 specs, one per data.dataset");
    expect_error("[data]\ndataset = imagenet:/x\n", NULL, 0,
                 "t.ini:2: data.dataset = 'imagenet:/x': item 'imagenet:/x': expected a dataset "
                 "spec: unknown reader 'imagenet' (known: fashion-mnist, idx, cifar10, cifar100, "
                 "cifar100-coarse, folder, shapes, shapes-count; optional :train or :test)");
    expect_error("[data]\ndataset = folder\n", NULL, 0,
                 "t.ini:2: data.dataset = 'folder': item 'folder': dataset 'folder' needs a "
                 "directory, as in folder:DIR");
    expect_error("[data]\nprompt = a photo\n", NULL, 0, "t.ini:2: data.prompt = 'a photo': "
                 "expected a prompt with exactly one '{}' for the class name");
    expect_error("[data]\naugment = mixup\n", NULL, 0,
                 "t.ini:2: data.augment = 'mixup': expected one of none, flip, crop_flip");
    expect_error("[model]\nname = clip-vit-b32\n", NULL, 0, "t.ini:2: model.name = "
                 "'clip-vit-b32': expected a preset (clip-tiny, clip-vit-b-32, clip-vit-b-16, "
                 "clip-vit-l-14) or a model directory (a path with a '/', e.g. ./clip-vit-b32)");
    expect_error("[method]\nmodules = q_proj, c_fc\n", NULL, 0,
                 "t.ini:2: method.modules = 'q_proj, c_fc': item 'c_fc': expected q_proj, "
                 "k_proj, v_proj, out_proj, fc1, fc2, or attn, qkv, mlp, all");
    expect_error("[method]\nlayers = 5-2\n", NULL, 0, "t.ini:2: method.layers = '5-2': expected "
                 "* (every layer), a layer N or a range A-B with A <= B (0-based, inclusive)");
    expect_error("[method]\ntowers = audio\n", NULL, 0, "t.ini:2: method.towers = 'audio': item "
                 "'audio': expected vision, text or both");
    expect_error("[method]\nrslora = maybe\n", NULL, 0,
                 "t.ini:2: method.rslora = 'maybe': expected true or false");
    expect_error("[experiment]\nname = my run\n", NULL, 0, "t.ini:2: experiment.name = 'my run': "
                 "expected a name of letters, digits, '.', '_' and '-' (at most 64, not starting "
                 "with '.')");
    expect_error("[experiment]\noutput =\n", NULL, 0,
                 "t.ini:2: experiment.output = '': expected a path");
    expect_error("[train]\nlr = 1\n[data\nshots = 1\n", NULL, 0,
                 "t.ini:3: syntax error: expected [section], key = value, or a comment");
    expect_error("[train]\nlr = 1\njust words\n", NULL, 0,
                 "t.ini:3: syntax error: expected [section], key = value, or a comment");
    expect_error_prefix("[run]\nid = a/b\n", "t.ini:2: run.id = 'a/b': expected a name");
    expect_error_prefix("[sweep]\njobs = 0\n", "t.ini:2: sweep.jobs = '0': expected an integer");
    /* the first error wins, in line order */
    expect_error("[train]\nlr = x\nbatch = y\n", NULL, 0,
                 "t.ini:2: train.lr = 'x': expected a number in (0, 10]");
    memset(long_line, 'a', sizeof(long_line));
    memcpy(long_line, "[experiment]\ndescription = ", 27);
    long_line[27 + 250] = '\n';
    long_line[27 + 251] = '\0';
    expect_error(long_line, NULL, 0, "t.ini:2: line longer than 197 characters (continue a long "
                 "value on indented lines)");
    /* a file that is not there */
    {
        struct experiment e;

        ck_assert_int_eq(experiment_load(&e, "/nonexistent/x.ini", NULL, 0), RL_ERR_IO);
        ck_assert_str_eq(rl_error_msg(), "/nonexistent/x.ini: cannot open: No such file or "
                         "directory");
    }
}
END_TEST

START_TEST(test_targets_spec)
{
    struct exp_targets t = { EXP_TOWER_VISION | EXP_TOWER_TEXT, 0, SIZE_MAX, 0x3u };
    char buf[128];

    ck_assert_int_eq(exp_targets_spec(&t, buf, sizeof(buf)), RL_OK);
    ck_assert_str_eq(buf, "vision:*:q_proj,k_proj;text:*:q_proj,k_proj");
    t.towers = EXP_TOWER_TEXT;
    t.layer_lo = 2;
    t.layer_hi = 5;
    t.modules = 0x30u;
    ck_assert_int_eq(exp_targets_spec(&t, buf, sizeof(buf)), RL_OK);
    ck_assert_str_eq(buf, "text:2-5:fc1,fc2");
    ck_assert_int_eq(exp_targets_spec(&t, buf, 8), RL_ERR_ARG);
}
END_TEST

static const char *experiment_path(const char *name)
{
    static char buf[512];
    const char *dir = getenv("RANDLORA_EXPERIMENTS");

    snprintf(buf, sizeof(buf), "%s/%s", dir ? dir : "experiments", name);
    return buf;
}

START_TEST(test_shipped)
{
    struct experiment e;
    struct run_plan *p;
    struct fake_model fm = { .calls = 0 };
    size_t n;
    int rc;

    /* quickstart: 4 methods x 3 shots, one matched budget */
    rc = experiment_load(&e, experiment_path("quickstart.ini"), NULL, 0);
    ck_assert_msg(rc == RL_OK, "%s", rl_error_msg());
    ck_assert_str_eq(e.output, "out/runs/quickstart");
    ck_assert_str_eq(e.model.name, "clip-tiny");
    ck_assert_uint_eq(e.n_shots, 3);
    ck_assert_uint_eq(e.n_fractions, 0);
    ck_assert_int_eq(experiment_expand(&e, fake_shapes, &fm, &p, &n), RL_OK);
    ck_assert_uint_eq(n, 12);
    ck_assert_str_eq(p[0].id, "lora-b25000-s1-seed1");
    ck_assert_uint_eq(p[0].adapter.r, 2);
    ck_assert_str_eq(p[3].id, "vera-b25000-s1-seed1");
    ck_assert_uint_eq(p[3].adapter.r, 420);
    ck_assert(p[3].train.lr == 1e-2);
    ck_assert_str_eq(p[6].id, "randlora-b25000-s1-seed1");
    ck_assert_uint_eq(p[6].adapter.r, 32);
    ck_assert_str_eq(p[11].id, "full-s16-seed1");
    ck_assert_uint_eq(p[11].targets.towers, EXP_TOWER_VISION | EXP_TOWER_TEXT);
    run_plans_free(p, n);
    experiment_free(&e);

    /* budget sweep: (5 lora + 3 vera + 5 randlora + 1 full) x 2 seeds */
    rc = experiment_load(&e, experiment_path("budget_sweep.ini"), NULL, 0);
    ck_assert_msg(rc == RL_OK, "%s", rl_error_msg());
    ck_assert_int_eq(experiment_expand(&e, fake_shapes, &fm, &p, &n), RL_OK);
    ck_assert_uint_eq(n, 28);
    {
        static const size_t lora_r[] = { 1, 2, 4, 8, 16 }, rl_r[] = { 77, 31, 11, 5, 3 };

        for (size_t i = 0; i < 5; i++) {
            ck_assert_uint_eq(p[2 * i].adapter.r, lora_r[i]);
            ck_assert_uint_eq(p[16 + 2 * i].adapter.r, rl_r[i]);
        }
        ck_assert_str_eq(p[10].id, "vera-r64-s16-seed1");
        ck_assert_uint_eq(p[10].n_trainable, 10752);
        ck_assert_str_eq(p[27].id, "full-s16-seed2");
    }
    run_plans_free(p, n);
    experiment_free(&e);

    /* the paper's protocol: ranks given, no shapes needed */
    rc = experiment_load(&e, experiment_path("clip_b32_fewshot.ini"), NULL, 0);
    ck_assert_msg(rc == RL_OK, "%s", rl_error_msg());
    ck_assert(!e.model.preset);
    ck_assert_str_eq(e.prompt, "An image of {}");
    ck_assert_int_eq(experiment_expand(&e, NULL, NULL, &p, &n), RL_OK);
    /* 2 datasets x 4 methods x (4 shots + 2 fractions) */
    ck_assert_uint_eq(n, 48);
    ck_assert_str_eq(p[0].id, "dtd-randlora-r6-s1-seed8539");
    ck_assert_uint_eq(p[0].adapter.r, 6);
    ck_assert_int_eq(p[0].adapter.n_rule, ADAPTER_N_FLOOR_PLUS_ONE);
    ck_assert_int_eq(p[0].adapter.scaling, ADAPTER_SCALE_ONE_OVER_R);
    ck_assert_str_eq(p[6].id, "dtd-lora-r32-s1-seed8539");
    ck_assert_int_eq(p[6].adapter.n_rule, ADAPTER_N_CEIL);
    ck_assert_str_eq(p[12].id, "dtd-vera-r256-s1-seed8539");
    ck_assert(p[12].train.lr == 1e-2);
    ck_assert(fabs(p[12].train.lr_min - 1e-4) < 1e-18);
    ck_assert_str_eq(p[23].id, "dtd-full-f1-seed8539");
    ck_assert_uint_eq(p[23].train.epochs, 10);
    ck_assert_uint_eq(p[23].train.batch * p[23].train.accumulate, 128);
    ck_assert(p[23].train.weight_decay == 0.1);
    ck_assert(p[23].train.clip == 1.0);
    ck_assert_uint_eq(p[23].train.warmup, 0);
    ck_assert_str_eq(p[24].id, "eurosat-randlora-r6-s1-seed8539");
    for (size_t i = 0; i < n; i += 5)
        check_round_trip(&p[i]);
    run_plans_free(p, n);
    experiment_free(&e);

    /* and with an override, as `randlora sweep -c FILE -s ...` will pass */
    {
        const char *ov[] = { "model.name=/data/clip-vit-base-patch32",
                             "data.dataset=folder:/data/dtd" };

        rc = experiment_load(&e, experiment_path("clip_b32_fewshot.ini"), ov, 2);
        ck_assert_msg(rc == RL_OK, "%s", rl_error_msg());
        ck_assert_uint_eq(experiment_n_runs(&e), 24);
        ck_assert_str_eq(e.evals[0], "folder:/data/dtd:test");
        experiment_free(&e);
    }
}
END_TEST

Suite *suite_config(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("config");

    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_every_key);
    tcase_add_test(tc, test_suffix);
    tcase_add_test(tc, test_overrides);
    tcase_add_test(tc, test_continuation);
    tcase_add_test(tc, test_grid);
    tcase_add_test(tc, test_budget);
    tcase_add_test(tc, test_ids);
    tcase_add_test(tc, test_round_trip);
    tcase_add_test(tc, test_errors);
    tcase_add_test(tc, test_targets_spec);
    tcase_add_test(tc, test_shipped);
    suite_add_tcase(s, tc);
    return s;
}
