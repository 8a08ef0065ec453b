/*
 * check_run_group.c: a run's group, setting and seed from its stored plan
 * (results/run_group.h): seeds never split a setting, hyperparameters never
 * merge into one, a budget groups by the budget, bookkeeping keys are left
 * out, the compact form names what differs, and bad text is refused.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "experiments/config.h"
#include "results/run_group.h"
#include "results/store.h"
#include "suites.h"
#include "test_util.h"

static const char base[] =
    "[experiment]\nname = g\noutput = /tmp/g\n"
    "[data]\ndataset = shapes-count\nshots = 4\n"
    "[method]\nmethods = lora\nrank = 4\n"
    "[train]\nsteps = 10\nlr = 1e-3\n"
    "[sweep]\nseeds = 1\n";

/* the stored plan (rendered INI) of the one run of base + overrides */
static char *plan_text(const char *const *ov, size_t n_ov)
{
    struct experiment e;
    struct run_plan *plans;
    size_t n;
    char *ini;

    ck_assert_int_eq(experiment_parse(&e, base, "base", ov, n_ov), RL_OK);
    ck_assert_int_eq(experiment_expand(&e, NULL, NULL, &plans, &n), RL_OK);
    ck_assert_uint_eq(n, 1);
    ini = run_plan_to_ini(&plans[0]);
    run_plans_free(plans, n);
    experiment_free(&e);
    return ini;
}

static void key_of(struct run_key *k, const char *const *ov, size_t n_ov)
{
    char *ini = plan_text(ov, n_ov);

    ck_assert_int_eq(run_key_from_config_text(ini, "test", k), RL_OK);
    free(ini);
}

START_TEST(test_seed_is_not_setting)
{
    const char *s2[] = { "sweep.seeds=2" };
    const char *other_out[] = { "sweep.seeds=3", "experiment.output=/tmp/elsewhere",
                                "experiment.name=other", "train.checkpoint_every=5" };
    const char *pinned[] = { "train.seed=77", "method.init_seed=5", "data.sample_seed=9" };
    struct run_key a, b, c, d;

    key_of(&a, NULL, 0);
    key_of(&b, s2, 1);
    key_of(&c, other_out, 4);
    key_of(&d, pinned, 3);
    ck_assert_uint_eq(a.seed, 1);
    ck_assert_uint_eq(b.seed, 2);
    ck_assert_uint_eq(c.seed, 3);
    ck_assert_str_eq(a.group, b.group);
    ck_assert_str_eq(a.setting, b.setting);
    ck_assert_str_eq(a.config, b.config);
    /* output, name, checkpointing: bookkeeping, not a setting */
    ck_assert_str_eq(a.config, c.config);
    /* pinned derived seeds are seeds too */
    ck_assert_str_eq(a.config, d.config);
    ck_assert_ptr_null(strstr(a.config, "train.seed"));
    ck_assert_ptr_null(strstr(a.config, "init_seed"));
    ck_assert_ptr_null(strstr(a.config, "sample_seed"));
    ck_assert_ptr_null(strstr(a.config, "sweep."));
    ck_assert_ptr_null(strstr(a.config, "output"));
    ck_assert_str_ne(a.id, b.id);
    ck_assert_str_eq(a.method, "lora");
    ck_assert_str_eq(a.dataset, "shapes-count");
    ck_assert_uint_eq(a.rank, 4);
    ck_assert_uint_eq(a.shots, 4);
    ck_assert(a.fraction == 0.0);
    run_key_free(&a);
    run_key_free(&b);
    run_key_free(&c);
    run_key_free(&d);
    run_key_free(&d);                       /* twice is safe */
}
END_TEST

START_TEST(test_hyperparameters_split_settings)
{
    const char *lr[] = { "train.lr=3e-3" };
    const char *wd[] = { "train.lr=3e-3", "train.weight_decay=0.1" };
    const char *mods[] = { "method.modules=q_proj, v_proj" };
    const char *epochs[] = { "train.epochs.lora=2" };
    struct run_key a, b, c, m, e;
    char *s;

    key_of(&a, NULL, 0);
    key_of(&b, lr, 1);
    key_of(&c, wd, 2);
    key_of(&m, mods, 1);
    key_of(&e, epochs, 1);
    ck_assert_str_eq(a.group, b.group);
    ck_assert_str_ne(a.setting, b.setting);
    ck_assert_str_ne(b.setting, c.setting);
    ck_assert_str_ne(a.setting, m.setting);
    ck_assert_str_ne(a.config, b.config);
    ck_assert_str_eq(run_key_get(&a, "train.lr"), "0.001");
    ck_assert_str_eq(run_key_get(&b, "train.lr"), "0.003");
    ck_assert_str_eq(run_key_get(&m, "method.modules"), "q_proj, v_proj");
    ck_assert_ptr_null(run_key_get(&a, "train.epochs"));
    ck_assert_str_eq(run_key_get(&e, "train.epochs"), "2");
    ck_assert_ptr_null(run_key_get(&a, "train.seed"));
    ck_assert_str_eq(a.brief, "lr=0.001 wd=0.01 steps=10 batch=32");

    {
        const char *all[] = { a.setting, b.setting, c.setting };

        s = run_key_setting_compact(c.setting, all, 3);
        ck_assert_str_eq(s, "lr=0.003 wd=0.1");
        free(s);
        s = run_key_setting_compact(a.setting, all, 3);
        ck_assert_str_eq(s, "lr=0.001 wd=0.01");
        free(s);
        s = run_key_setting_compact(b.setting, all, 2);   /* a and b: only lr */
        ck_assert_str_eq(s, "lr=0.003");
        free(s);
        s = run_key_setting_compact(a.setting, all, 1);   /* nothing differs */
        ck_assert_str_eq(s, "");
        free(s);
    }
    {
        const char *two[] = { a.setting, m.setting };

        s = run_key_setting_compact(m.setting, two, 2);
        ck_assert_str_eq(s, "modules=q_proj,v_proj");
        free(s);
    }
    {
        const char *two[] = { a.setting, e.setting };   /* steps against epochs */

        s = run_key_setting_compact(e.setting, two, 2);
        ck_assert_str_eq(s, "epochs=2 steps=-");
        free(s);
        s = run_key_setting_compact(a.setting, two, 2);
        ck_assert_str_eq(s, "steps=10 epochs=-");
        free(s);
    }
    {
        /* lr_min_ratio stores an lr_min that follows lr: named once, as lr */
        const char *r1[] = { "train.lr_min_ratio=0.01" };
        const char *r3[] = { "train.lr=3e-3", "train.lr_min_ratio=0.01" };
        struct run_key x, y;

        key_of(&x, r1, 1);
        key_of(&y, r3, 2);
        ck_assert_str_ne(run_key_get(&x, "train.lr_min"), run_key_get(&y, "train.lr_min"));
        {
            const char *two[] = { x.setting, y.setting };

            s = run_key_setting_compact(y.setting, two, 2);
            ck_assert_str_eq(s, "lr=0.003");
            free(s);
        }
        run_key_free(&x);
        run_key_free(&y);
    }
    run_key_free(&a);
    run_key_free(&b);
    run_key_free(&c);
    run_key_free(&m);
    run_key_free(&e);
}
END_TEST

START_TEST(test_groups)
{
    const char *shots8[] = { "data.shots=8" };
    const char *r8[] = { "method.rank=8" };
    const char *vera[] = { "method.methods=vera" };
    const char *full[] = { "method.methods=full", "train.lr=1e-4" };
    const char *none[] = { "method.methods=none" };
    struct run_key a, s8, f, r, v, fu, no;

    key_of(&a, NULL, 0);
    key_of(&s8, shots8, 1);
    key_of(&r, r8, 1);
    key_of(&v, vera, 1);
    key_of(&fu, full, 2);
    key_of(&no, none, 1);
    ck_assert_str_ne(a.group, s8.group);
    ck_assert_str_eq(a.setting, s8.setting);
    ck_assert_str_ne(a.group, r.group);
    ck_assert_str_eq(a.setting, r.setting);
    ck_assert_str_ne(a.group, v.group);
    ck_assert_str_eq(a.group, "model.name=clip-tiny\ndata.dataset=shapes-count\n"
                              "data.shots=4\nmethod.methods=lora\nmethod.rank=4");
    ck_assert_str_eq(fu.group, "model.name=clip-tiny\ndata.dataset=shapes-count\n"
                               "data.shots=4\nmethod.methods=full");
    ck_assert_str_eq(no.method, "none");
    {
        const char *none_lr[] = { "method.methods=none", "train.lr=5e-2", "method.alpha=3" };
        struct run_key no2;

        key_of(&no2, none_lr, 3);       /* nothing trained: lr and alpha change nothing */
        ck_assert_str_eq(no.config, no2.config);
        ck_assert_ptr_null(run_key_get(&no2, "train.lr"));
        ck_assert_ptr_nonnull(run_key_get(&no2, "data.eval_limit"));
        run_key_free(&no2);
    }
    ck_assert_uint_eq(fu.rank, 0);
    ck_assert_str_eq(run_key_get(&fu, "train.lr"), "0.0001");
    {
        struct experiment e;
        const char *ov[] = { "data.fractions=0.5" };
        static const char nofew[] =
            "[data]\ndataset = shapes-count\n[method]\nmethods = lora\nrank = 4\n"
            "[train]\nsteps = 10\n";
        struct run_plan *plans;
        size_t n;
        char *ini;

        ck_assert_int_eq(experiment_parse(&e, nofew, "nofew", ov, 1), RL_OK);
        ck_assert_int_eq(experiment_expand(&e, NULL, NULL, &plans, &n), RL_OK);
        ini = run_plan_to_ini(&plans[0]);
        ck_assert_int_eq(run_key_from_config_text(ini, "f", &f), RL_OK);
        ck_assert_uint_eq(f.shots, 0);
        ck_assert(f.fraction == 0.5);
        ck_assert_ptr_nonnull(strstr(f.group, "data.fractions=0.5"));
        free(ini);
        run_plans_free(plans, n);
        experiment_free(&e);
    }
    run_key_free(&a);
    run_key_free(&s8);
    run_key_free(&f);
    run_key_free(&r);
    run_key_free(&v);
    run_key_free(&fu);
    run_key_free(&no);
}
END_TEST

/* a run sized by a budget: grouped by the budget, never by the rank the
 * budget matched (that may differ between settings) */
START_TEST(test_budget_group)
{
    static const char text[] =
        "[data]\ndataset = shapes-count\nshots = 4\n"
        "[method]\nmethods = randlora\nbudget = 50000\n"
        "[train]\nsteps = 10\n[sweep]\nseeds = 3\n"
        "[run]\nid = randlora-b50000-s4-seed3\nrank = 6\ntrainable = 49000\n";
    struct experiment e;
    struct run_plan *plans;
    size_t n;
    char *ini;
    struct run_key k;

    ck_assert_int_eq(experiment_parse(&e, text, "budget", NULL, 0), RL_OK);
    ck_assert_int_eq(experiment_expand(&e, NULL, NULL, &plans, &n), RL_OK);
    ini = run_plan_to_ini(&plans[0]);
    ck_assert_int_eq(run_key_from_config_text(ini, "b", &k), RL_OK);
    ck_assert_str_eq(k.group, "model.name=clip-tiny\ndata.dataset=shapes-count\n"
                              "data.shots=4\nmethod.methods=randlora\nmethod.budget=50000");
    ck_assert_uint_eq(k.budget, 50000);
    ck_assert_uint_eq(k.rank, 6);
    ck_assert_uint_eq(k.n_trainable, 49000);
    ck_assert_uint_eq(k.seed, 3);
    ck_assert_ptr_null(strstr(k.config, "rank"));
    ck_assert_ptr_null(strstr(k.config, "trainable"));
    run_key_free(&k);
    free(ini);
    run_plans_free(plans, n);
    experiment_free(&e);
}
END_TEST

START_TEST(test_bad_text)
{
    struct run_key k;
    static const char two_runs[] =
        "[data]\ndataset = shapes-count\nshots = 1, 2\n[method]\nmethods = lora\n";

    ck_assert_int_eq(run_key_from_config_text("[train]\nlr = banana\n", "x.h5", &k),
                     RL_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(rl_error_msg(), "x.h5"));
    ck_assert_ptr_null(k.group);
    ck_assert_int_eq(run_key_from_config_text(two_runs, "y.h5", &k), RL_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(rl_error_msg(), "several runs"));
    run_key_free(&k);
}
END_TEST

/* from a run file: the stored /method rank and trainable count win */
START_TEST(test_from_store)
{
    char dir[128];
    char *ini = plan_text(NULL, 0);
    struct store *s;
    struct run_key k;
    int64_t idx[2] = { 0, 1 };
    struct store_run_info in = {
        .config_text = ini, .method = "lora", .rank = 4, .alpha = 8,
        .n_trainable = 12345, .data_spec = "shapes-count", .shots = 4, .sampling_seed = 1,
        .train_index = idx, .n_train_index = 2,
    };

    ck_assert_ptr_nonnull(test_tmpdir_make(dir, sizeof(dir), "rungroup"));
    ck_assert_int_eq(store_create(&s, test_path(dir, "a.h5"), &in), RL_OK);
    store_close(s);
    ck_assert_int_eq(store_open(&s, test_path(dir, "a.h5")), RL_OK);
    ck_assert_int_eq(run_key_from_store(s, &k), RL_OK);
    ck_assert_uint_eq(k.n_trainable, 12345);
    ck_assert_uint_eq(k.rank, 4);
    ck_assert_str_eq(k.id, "lora-r4-s4-seed1");
    run_key_free(&k);
    store_close(s);
    test_tmpdir_remove(dir);
    free(ini);
}
END_TEST

START_TEST(test_diff)
{
    const char *other[] = { "train.lr=3e-3", "data.shots=8", "sweep.seeds=2",
                            "experiment.output=/tmp/x" };
    const char *epochs[] = { "train.epochs.lora=2" };
    struct run_key a, b, c;
    char *d;

    key_of(&a, NULL, 0);
    key_of(&b, other, 4);
    key_of(&c, epochs, 1);
    ck_assert_ptr_null(run_key_diff(&a, &a));
    d = run_key_diff(&a, &b);
    ck_assert_str_eq(d, "shots=4 vs 8; lr=0.001 vs 0.003; seed 1 vs 2");
    free(d);
    d = run_key_diff(&a, &c);
    ck_assert_str_eq(d, "steps=10 vs -; epochs=- vs 2");
    free(d);
    run_key_free(&a);
    run_key_free(&b);
    run_key_free(&c);
}
END_TEST

START_TEST(test_short_names)
{
    ck_assert_str_eq(run_key_short_name("train.weight_decay"), "wd");
    ck_assert_str_eq(run_key_short_name("train.lr"), "lr");
    ck_assert_str_eq(run_key_short_name("method.alpha"), "alpha");
    ck_assert_str_eq(run_key_short_name("train.accumulate"), "acc");
    ck_assert_str_eq(run_key_short_name("model.pretrain_dir"), "model.pretrain_dir");
}
END_TEST

Suite *suite_run_group(void)
{
    Suite *s = suite_create("run_group");
    TCase *tc = tcase_create("run_group");

    tcase_add_test(tc, test_seed_is_not_setting);
    tcase_add_test(tc, test_hyperparameters_split_settings);
    tcase_add_test(tc, test_groups);
    tcase_add_test(tc, test_budget_group);
    tcase_add_test(tc, test_bad_text);
    tcase_add_test(tc, test_from_store);
    tcase_add_test(tc, test_diff);
    tcase_add_test(tc, test_short_names);
    suite_add_tcase(s, tc);
    return s;
}
