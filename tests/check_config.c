/*
 * check_config.c: reading experiment files (experiments/config.h).
 *
 *   defaults        an empty file resolves to the documented defaults
 *   every_key       every key set to a non-default value lands in its field
 *   suffix          key.METHOD overrides key for that method only; the
 *                   exclusive pairs (rank/budget, steps/epochs, lr_min/
 *                   lr_min_ratio) follow the suffix-wins rule
 *   overrides       -s replaces file values, is checked like a file line
 *   continuation    indented lines continue a value; an indented key is refused
 *   errors          every error class, with its exact message
 *
 * Expansion is check_config_grid.c, the hyperparameter axes
 * check_config_axes.c, what a run file must read back check_config_store.c.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "experiments/config.h"
#include "methods/adapter.h"
#include "suites.h"
#include "config_util.h"

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
    ck_assert_str_eq(e.classnames, "dtd");
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
        ck_assert(m->train.epoch_repeat);
        ck_assert_int_eq(m->train.loss, EXP_LOSS_INBATCH);
        ck_assert(m->train.logit_scale_raw);
        ck_assert_uint_eq(m->n_epoch_table, 2);
        ck_assert_str_eq(m->epoch_names[1], "MNIST");
        ck_assert_uint_eq(m->epoch_values[1], 7);
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
                     "epochs, min_epoch_steps, min_epoch_rule, dataset_epochs, batch, accumulate, lr, "
                     "lr_head, weight_decay, beta1, beta2, eps, warmup, lr_min, lr_min_ratio, clip, loss, "
                     "logit_scale, eval_every, checkpoint_every, "
                     "recompute, precision, seed, init_adapter)");
    }
    {
        const char *o1[] = { "train.lr=fast" };

        expect_error(text, o1, 1, "-s: train.lr = 'fast': expected a number in [1e-30, 10]");
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

START_TEST(test_errors)
{
    char long_line[400];

    expect_error("[trian]\nlr = 1\n", NULL, 0, "t.ini:1: unknown section [trian] (valid "
                 "sections: experiment, model, data, method, train, sweep, run)");
    expect_error("[data]\n[empty]\n", NULL, 0, "t.ini:2: unknown section [empty] (valid "
                 "sections: experiment, model, data, method, train, sweep, run)");
    expect_error("[data]\nshot = 1\n", NULL, 0, "t.ini:2: unknown key data.shot (valid keys in "
                 "[data]: dataset, eval, image_size, prompt, templates, classnames, augment, "
                 "shots, fractions, sample_seed, eval_limit, val, lm_loss, cutoff, "
                 "max_new_tokens)");
    expect_error("lr = 1\n", NULL, 0, "t.ini:1: lr = '1' is outside a section (start with a "
                 "[section] line)");
    expect_error("[train]\nlr = 1e-3x\n", NULL, 0,
                 "t.ini:2: train.lr = '1e-3x': expected a number in [1e-30, 10]");
    expect_error("[train]\nlr = 0\n", NULL, 0,
                 "t.ini:2: train.lr = '0': expected a number in [1e-30, 10]");
    expect_error("[train]\nlr = nan\n", NULL, 0,
                 "t.ini:2: train.lr = 'nan': expected a number in [1e-30, 10]");
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
                 "vera, randlora, nola, full, none)");
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
                 "lora, vera, randlora, nola, full, none)");
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
                 "cifar100-coarse, folder, zhou, shapes, shapes-count; optional :train or :test)");
    expect_error("[data]\ndataset = folder\n", NULL, 0,
                 "t.ini:2: data.dataset = 'folder': item 'folder': dataset 'folder' needs a "
                 "directory, as in folder:DIR");
    expect_error("[data]\nprompt = a photo\n", NULL, 0, "t.ini:2: data.prompt = 'a photo': "
                 "expected a prompt with exactly one '{}' for the class name");
    expect_error("[data]\naugment = mixup\n", NULL, 0,
                 "t.ini:2: data.augment = 'mixup': expected one of none, flip, crop_flip");
    expect_error("[model]\nname = clip-vit-b32\n", NULL, 0, "t.ini:2: model.name = "
                 "'clip-vit-b32': expected a preset (clip-tiny, clip-vit-b-32, clip-vit-b-16, "
                 "clip-vit-l-14, vit-tiny, llama-tiny, qwen2-0.5b) or a model directory (a path "
                 "with a '/', e.g. ./clip-vit-b32)");
    expect_error("[method]\nmodules = q_proj, c_fc\n", NULL, 0,
                 "t.ini:2: method.modules = 'q_proj, c_fc': item 'c_fc': expected q_proj, "
                 "k_proj, v_proj, out_proj, fc1, fc2, in_proj, or attn, qkv, mlp, all");
    expect_error("[method]\nmodules = in_proj, k_proj\n", NULL, 0,
                 "t.ini:2: method.modules = 'in_proj, k_proj': in_proj adapts q, k and v as one "
                 "linear; list it or q_proj, k_proj, v_proj (qkv), not both");
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
                 "t.ini:2: train.lr = 'x': expected a number in [1e-30, 10]");
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

Suite *suite_config(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("config");

    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_every_key);
    tcase_add_test(tc, test_suffix);
    tcase_add_test(tc, test_overrides);
    tcase_add_test(tc, test_continuation);
    tcase_add_test(tc, test_errors);
    suite_add_tcase(s, tc);
    return s;
}
