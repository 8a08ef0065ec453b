/*
 * check_protocol.c: the keys that run the paper's protocol as the authors'
 * code does (docs/comparison.md): per-dataset epochs
 * (train.dataset_epochs), the authors' over-sampling rule
 * (train.min_epoch_rule = repeat), and clip_b32_full.ini's aTLAS table.
 *
 *   dataset_epochs        each dataset's plans get its epochs, names match
 *                         ignoring case, unlisted datasets keep train.epochs,
 *                         a method suffix, steps replaced
 *   dataset_epochs_errors bad items, names twice, a table beside an axis
 *   repeat_rule           step counts computed by hand from finetune.py
 *   dataset_name          the names the table matches (zhou split files)
 *   full_ini              clip_b32_full.ini: all 22 aTLAS entries
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "experiments/config.h"
#include "suites.h"
#include "config_util.h"

static const struct run_plan *plan_by_id(const struct run_plan *p, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(p[i].id, id))
            return &p[i];
    ck_abort_msg("no run %s", id);
    return NULL;
}

START_TEST(test_dataset_epochs)
{
    struct experiment e;
    struct run_plan *p;
    size_t n;

    ck_assert_int_eq(parse(&e, "[data]\n"
                               "dataset = folder:/d/DTD, folder:/d/eurosat/, cifar10:/d/c10\n"
                               "shots = 4\n"
                               "[method]\nmethods = lora, full\n"
                               "[train]\n"
                               "steps = 100\n"
                               "epochs.full = 3\n"
                               "dataset_epochs = dtd:76, EuroSAT:13, unused:9\n"
                               "dataset_epochs.full = EUROSAT:2\n"), RL_OK);
    ck_assert_int_eq(experiment_expand(&e, NULL, NULL, &p, &n), RL_OK);
    ck_assert_uint_eq(n, 6);
    /* lora: the table (case ignored), else train.steps */
    ck_assert_uint_eq(plan_by_id(p, n, "DTD-lora-r8-s4-seed1")->train.epochs, 76);
    ck_assert_uint_eq(plan_by_id(p, n, "DTD-lora-r8-s4-seed1")->train.steps, 0);
    ck_assert_uint_eq(plan_by_id(p, n, "eurosat-lora-r8-s4-seed1")->train.epochs, 13);
    ck_assert_uint_eq(plan_by_id(p, n, "c10-lora-r8-s4-seed1")->train.steps, 100);
    ck_assert_uint_eq(plan_by_id(p, n, "c10-lora-r8-s4-seed1")->train.epochs, 0);
    /* full: its own table, else epochs.full */
    ck_assert_uint_eq(plan_by_id(p, n, "eurosat-full-s4-seed1")->train.epochs, 2);
    ck_assert_uint_eq(plan_by_id(p, n, "DTD-full-s4-seed1")->train.epochs, 3);
    ck_assert_uint_eq(plan_by_id(p, n, "c10-full-s4-seed1")->train.epochs, 3);
    /* a run file stores the resolved epochs and reads back as itself */
    for (size_t i = 0; i < n; i++)
        check_round_trip(&p[i]);
    {
        char *ini = run_plan_to_ini(plan_by_id(p, n, "DTD-lora-r8-s4-seed1"));

        ck_assert_ptr_nonnull(strstr(ini, "\nepochs = 76\n"));
        ck_assert_ptr_null(strstr(ini, "dataset_epochs"));
        free(ini);
    }
    run_plans_free(p, n);
    experiment_free(&e);

    /* one dataset: no id prefix, still matched by its name */
    ck_assert_int_eq(parse(&e, "[data]\ndataset = folder:/d/dtd\nshots = 1\n"
                               "[train]\nepochs = 10\ndataset_epochs = DTD:76\n"), RL_OK);
    ck_assert_int_eq(experiment_expand(&e, NULL, NULL, &p, &n), RL_OK);
    ck_assert_str_eq(p[0].id, "lora-r8-s1-seed1");
    ck_assert_uint_eq(p[0].train.epochs, 76);
    run_plans_free(p, n);
    experiment_free(&e);
}
END_TEST

START_TEST(test_dataset_epochs_errors)
{
    expect_error("[train]\ndataset_epochs = dtd 76\n", NULL, 0,
                 "t.ini:2: train.dataset_epochs = 'dtd 76': item 'dtd 76': expected NAME:EPOCHS "
                 "(a dataset's name, as run ids name it, and its epochs)");
    expect_error("[train]\ndataset_epochs = dtd:0\n", NULL, 0,
                 "t.ini:2: train.dataset_epochs = 'dtd:0': item 'dtd:0': expected the epochs as "
                 "an integer in [1, 1000000]");
    expect_error("[train]\ndataset_epochs = dtd:5, DTD:6\n", NULL, 0,
                 "t.ini:2: train.dataset_epochs = 'dtd:5, DTD:6': the dataset 'DTD' is listed "
                 "twice (names match ignoring case)");
    expect_error("[train]\ndataset_epochs = a/b:5\n", NULL, 0,
                 "t.ini:2: train.dataset_epochs = 'a/b:5': item 'a/b:5': the name 'a/b' is not "
                 "a dataset name (letters, digits, '.', '_' and '-')");
    expect_error("[train]\nepochs = 2, 3\ndataset_epochs = dtd:5\n", NULL, 0,
                 "t.ini:3: train.dataset_epochs = 'dtd:5': lora has a list on train.steps or "
                 "train.epochs; the table fixes the epochs per dataset (give one value)");
    expect_error("[train]\nmin_epoch_rule = oversample\n", NULL, 0,
                 "t.ini:2: train.min_epoch_rule = 'oversample': expected one of steps, repeat");
    expect_error("[train]\nloss = contrastive\n", NULL, 0,
                 "t.ini:2: train.loss = 'contrastive': expected one of prompts, inbatch");
    expect_error("[train]\nlogit_scale = 100\n", NULL, 0,
                 "t.ini:2: train.logit_scale = '100': expected one of exp, raw");
}
END_TEST

/* a plan with epochs, batch and accumulate set, the rest as parsed */
static size_t steps_of(bool repeat, size_t epochs, size_t batch, size_t acc, size_t min,
                       size_t n_items)
{
    struct run_plan p;

    memset(&p, 0, sizeof(p));
    p.train.epochs = epochs;
    p.train.batch = batch;
    p.train.accumulate = acc;
    p.train.min_epoch_steps = min;
    p.train.epoch_repeat = repeat;
    return run_plan_total_steps(&p, n_items);
}

START_TEST(test_repeat_rule)
{
    /* finetune.py lines 70-77 and 104 (batch 128, no accumulation), by hand:
     * DTD 1-shot, 47 items: r = 47/128, int(10/r) + 1 = 27 + 1 = 28 repeats,
     * 47 * 28 * 10 = 13160 items, ceil(13160 / 128) = 103 steps */
    ck_assert_uint_eq(steps_of(true, 10, 128, 1, 10, 47), 103);
    /* DTD 16-shot, 752 items: int(1280 / 752) + 1 = 2, 15040 items, 118 steps */
    ck_assert_uint_eq(steps_of(true, 10, 128, 1, 10, 752), 118);
    /* 10 batches exactly (1280 items): not below the minimum, no repeat */
    ck_assert_uint_eq(steps_of(true, 10, 128, 1, 10, 1280), 100);
    /* 1279 items: int(1280 / 1279) + 1 = 2 repeats, 25580 items, 200 steps */
    ck_assert_uint_eq(steps_of(true, 10, 128, 1, 10, 1279), 200);
    /* accumulation: micro-batches of 32 counted, steps of 128:
     * 40 items, 320 / 40 + 1 = 9, 40 * 9 * 7 = 2520, ceil(2520 / 128) = 20 */
    ck_assert_uint_eq(steps_of(true, 7, 32, 4, 10, 40), 20);
    /* the harness's own rule on the same sets: max(10, ceil(n / 128)) a epoch */
    ck_assert_uint_eq(steps_of(false, 10, 128, 1, 10, 47), 100);
    ck_assert_uint_eq(steps_of(false, 10, 128, 1, 10, 752), 100);
    ck_assert_uint_eq(steps_of(false, 10, 128, 1, 10, 1409), 120);
}
END_TEST

START_TEST(test_dataset_name)
{
    char b[128];

    exp_dataset_name("zhou:/data/dtd/split_zhou_DescribableTextures.json", b, sizeof(b));
    ck_assert_str_eq(b, "DescribableTextures");
    exp_dataset_name("zhou:/data/dtd/split_zhou_DescribableTextures.json:test", b, sizeof(b));
    ck_assert_str_eq(b, "DescribableTextures");
    exp_dataset_name("zhou:/data/pets/my_split.json", b, sizeof(b));
    ck_assert_str_eq(b, "my_split.json");
    exp_dataset_name("folder:/data/dtd/", b, sizeof(b));
    ck_assert_str_eq(b, "dtd");
    exp_dataset_name("fashion-mnist", b, sizeof(b));
    ck_assert_str_eq(b, "fashion-mnist");
    exp_dataset_name("folder:/data/my dtd", b, sizeof(b));
    ck_assert_str_eq(b, "my_dtd");
}
END_TEST

/* clip_b32_full.ini: the aTLAS table of finetune.py lines 192-215 */
START_TEST(test_full_ini)
{
    static const struct { const char *name; size_t epochs; } atlas[] = {
        { "Cars", 35 }, { "DTD", 76 }, { "EuroSAT", 13 }, { "GTSRB", 11 }, { "MNIST", 5 },
        { "RESISC45", 15 }, { "SUN397", 14 }, { "SVHN", 4 }, { "CIFAR10", 5 },
        { "CIFAR100", 6 }, { "STL10", 4 }, { "Food101", 15 }, { "Caltech256", 8 },
        { "FGVCAircraft", 60 }, { "Flowers102", 40 }, { "OxfordIIITPet", 5 }, { "CUB200", 20 },
        { "PascalVOC", 10 }, { "Country211", 15 }, { "Caltech101", 10 }, { "UCF101", 20 },
        { "ImageNet", 10 },
    };
    const char *ov[] = { "data.dataset=folder:/d/dtd, folder:/d/SUN397, folder:/d/other" };
    struct experiment e;
    struct run_plan *p;
    size_t n;
    int rc = experiment_load(&e, experiment_path("clip_b32_full.ini"), NULL, 0);

    ck_assert_msg(rc == RL_OK, "%s", rl_error_msg());
    for (size_t mi = 0; mi < e.n_methods; mi++) {
        const struct exp_method *m = &e.methods[mi];

        for (size_t i = 0; i < sizeof(atlas) / sizeof(atlas[0]); i++) {
            size_t j;

            for (j = 0; j < m->n_epoch_table; j++)
                if (!strcmp(m->epoch_names[j], atlas[i].name))
                    break;
            ck_assert_msg(j < m->n_epoch_table, "%s missing", atlas[i].name);
            ck_assert_uint_eq(m->epoch_values[j], atlas[i].epochs);
        }
    }
    ck_assert_uint_eq(e.n_fractions, 2);
    ck_assert_uint_eq(e.n_shots, 0);
    /* no over-sampling on fractions: ceil(n x epochs / 128) steps */
    ck_assert_uint_eq(e.methods[0].train.min_epoch_steps, 1);
    ck_assert(e.methods[0].train.epoch_repeat);
    experiment_free(&e);

    rc = experiment_load(&e, experiment_path("clip_b32_full.ini"), ov, 1);
    ck_assert_msg(rc == RL_OK, "%s", rl_error_msg());
    ck_assert_int_eq(experiment_expand(&e, NULL, NULL, &p, &n), RL_OK);
    ck_assert_uint_eq(n, 3 * 5 * 2);          /* datasets x methods x fractions */
    ck_assert_uint_eq(plan_by_id(p, n, "dtd-nola-r1-f1-seed8539")->train.epochs, 76);
    ck_assert_uint_eq(plan_by_id(p, n, "dtd-randlora-r6-f0.5-seed8539")->train.epochs, 76);
    ck_assert_uint_eq(plan_by_id(p, n, "SUN397-vera-r256-f1-seed8539")->train.epochs, 14);
    ck_assert_uint_eq(plan_by_id(p, n, "other-full-f1-seed8539")->train.epochs, 10);
    run_plans_free(p, n);
    experiment_free(&e);
}
END_TEST

Suite *suite_protocol(void)
{
    Suite *s = suite_create("protocol");
    TCase *tc = tcase_create("protocol");

    tcase_add_test(tc, test_dataset_epochs);
    tcase_add_test(tc, test_dataset_epochs_errors);
    tcase_add_test(tc, test_repeat_rule);
    tcase_add_test(tc, test_dataset_name);
    tcase_add_test(tc, test_full_ini);
    suite_add_tcase(s, tc);
    return s;
}
