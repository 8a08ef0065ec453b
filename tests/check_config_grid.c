/*
 * check_config_grid.c: an experiment's grid expanded into run plans
 * (experiments/config.h).
 *
 *   grid            counts and order of the expansion, ids
 *   budget          ranks from a fake shape list (clip-tiny's linears) equal
 *                   adapter_match_budget's; counts equal adapter_count
 *   ids             unique; colliding ids are an error
 *   round_trip      run_plan_to_ini -> parse -> expand gives the same plan
 *   targets_spec    exp_targets_spec's text
 *   shipped         the three experiments/ files (*.ini) parse and expand as documented
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "experiments/config.h"
#include "methods/adapter.h"
#include "models/block.h"
#include "suites.h"
#include "config_util.h"

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
    /* targets that select no layer of the model are refused (not a run of
     * 0 trainable parameters) */
    ck_assert_int_eq(parse(&e, "[method]\nlayers = 9\n"), RL_OK);
    ck_assert_int_eq(experiment_expand(&e, fake_shapes, &fm, &p, &n), RL_ERR_ARG);
    ck_assert_str_eq(rl_error_msg(), "t.ini: lora: method.towers, method.layers and "
                     "method.modules (vision:9:q_proj,k_proj,v_proj,fc1,fc2;"
                     "text:9:q_proj,k_proj,v_proj,fc1,fc2) select no layer of model clip-tiny");
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

START_TEST(test_shipped)
{
    struct experiment e;
    struct run_plan *p;
    struct fake_model fm = { .calls = 0 };
    size_t n;
    int rc;

    /* quickstart: none + 4 methods at one matched budget, 2 shots, 2 seeds,
     * three learning rates per trained method: 4 + 4 x 3 x 2 x 2 = 52 */
    rc = experiment_load(&e, experiment_path("quickstart.ini"), NULL, 0);
    ck_assert_msg(rc == RL_OK, "%s", rl_error_msg());
    ck_assert_str_eq(e.output, "out/runs/quickstart");
    ck_assert_str_eq(e.model.name, "clip-tiny");
    ck_assert_uint_eq(e.n_shots, 2);
    ck_assert_uint_eq(e.n_fractions, 0);
    ck_assert_int_eq(experiment_expand(&e, fake_shapes, &fm, &p, &n), RL_OK);
    ck_assert_uint_eq(n, 52);
    ck_assert_str_eq(p[0].id, "none-s4-seed1");
    ck_assert_str_eq(p[4].id, "lora-b25000-s4-lr1e-3-seed1");
    ck_assert_uint_eq(p[4].adapter.r, 2);
    ck_assert_str_eq(p[5].id, "lora-b25000-s4-lr1e-3-seed2");
    ck_assert_str_eq(p[16].id, "vera-b25000-s4-lr0.03-seed1");
    ck_assert_uint_eq(p[16].adapter.r, 420);
    ck_assert(p[16].train.lr == 3e-2);
    ck_assert_str_eq(p[28].id, "randlora-b25000-s4-lr1e-3-seed1");
    ck_assert_uint_eq(p[28].adapter.r, 32);
    ck_assert(p[28].train.lr == 1e-3);
    ck_assert_str_eq(p[51].id, "full-s16-lr1e-3-seed2");
    ck_assert(p[51].train.lr == 1e-3);
    ck_assert_uint_eq(p[51].targets.towers, EXP_TOWER_VISION | EXP_TOWER_TEXT);
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
    /* 2 datasets x 5 methods x 4 shots (50% and 100%: clip_b32_full.ini) */
    ck_assert_uint_eq(n, 40);
    ck_assert_str_eq(p[0].id, "dtd-randlora-r6-s1-seed8539");
    ck_assert_uint_eq(p[0].adapter.r, 6);
    ck_assert_int_eq(p[0].adapter.n_rule, ADAPTER_N_FLOOR_PLUS_ONE);
    ck_assert_int_eq(p[0].adapter.scaling, ADAPTER_SCALE_ONE_OVER_R);
    /* q, k and v packed, as the authors' code adapts them */
    ck_assert_uint_eq(p[0].targets.modules,
                      (1u << BLOCK_LIN_IN_PROJ) | (1u << BLOCK_LIN_FC1) | (1u << BLOCK_LIN_FC2));
    ck_assert_str_eq(p[4].id, "dtd-lora-r32-s1-seed8539");
    ck_assert_str_eq(p[4].profile, "paper");     /* the authors' LoRA */
    ck_assert_int_eq(p[4].adapter.lora_rule, ADAPTER_LORA_PAPER);
    ck_assert(p[4].adapter.alpha <= 0.0f);       /* the rule's default, 1 */
    ck_assert_str_eq(p[8].id, "dtd-vera-r256-s1-seed8539");
    ck_assert(p[8].train.lr == 1e-2);
    ck_assert(fabs(p[8].train.lr_min - 1e-4) < 1e-18);
    ck_assert_str_eq(p[12].id, "dtd-nola-r1-s1-seed8539");
    ck_assert_uint_eq(p[12].adapter.nola_bases, 1024);
    ck_assert_str_eq(p[19].id, "dtd-full-s16-seed8539");
    ck_assert_uint_eq(p[19].train.epochs, 10);
    ck_assert_uint_eq(p[19].train.batch, 128);
    ck_assert_uint_eq(p[19].train.accumulate, 1);
    ck_assert(p[19].train.lr == 1e-3);
    ck_assert(p[19].train.weight_decay == 0.1);
    ck_assert(p[19].train.clip == 1.0);
    ck_assert_uint_eq(p[19].train.warmup, 0);
    ck_assert(p[19].train.epoch_repeat);
    ck_assert_int_eq(p[19].train.loss, EXP_LOSS_INBATCH);
    ck_assert(p[19].train.logit_scale_raw);
    ck_assert_str_eq(p[20].id, "eurosat-randlora-r6-s1-seed8539");
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
        ck_assert_uint_eq(experiment_n_runs(&e), 20);      /* 5 methods x 4 shots */
        ck_assert_str_eq(e.evals[0], "folder:/data/dtd:test");
        experiment_free(&e);
    }
}
END_TEST

Suite *suite_config_grid(void)
{
    Suite *s = suite_create("config_grid");
    TCase *tc = tcase_create("config_grid");

    tcase_add_test(tc, test_grid);
    tcase_add_test(tc, test_budget);
    tcase_add_test(tc, test_ids);
    tcase_add_test(tc, test_round_trip);
    tcase_add_test(tc, test_targets_spec);
    tcase_add_test(tc, test_shipped);
    suite_add_tcase(s, tc);
    return s;
}
