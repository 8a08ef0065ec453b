/*
 * check_config_axes.c: hyperparameters as grid axes (experiments/config.h).
 *
 *   grid            lr and weight_decay lists, lr.vera's own list: counts,
 *                   the order (size, shots, axes, seed), ids, plan values
 *   every_axis      each key that takes a list: two values give two runs
 *                   that differ in that field only, named by its id tag
 *   applies         a list on a key a method does not read is no axis for
 *                   it (no duplicate runs; ids unchanged)
 *   per_method      key.METHOD's list replaces the plain list for that
 *                   method only; methods without a list keep their ids
 *   order           axes expand in the key table's order, whatever the
 *                   file's order; a list's items in the order given
 *   budget          budget matching per setting (profile changes the count)
 *   errors          repeats (also equal in float32), bad items, lists on keys
 *                   that take none, cross-key checks per setting, too many
 *   id_numbers      the id form of numbers reads back as the same double
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

/* parse text with overrides and expand with clip-tiny's fake shapes */
static size_t expand_ov(const char *text, const char *const *ov, size_t n_ov,
                        struct experiment *e, struct run_plan **p)
{
    struct fake_model fm = { .calls = 0 };
    size_t n;
    int rc = experiment_parse(e, text, "t.ini", ov, n_ov);

    ck_assert_msg(rc == RL_OK, "%s", rl_error_msg());
    rc = experiment_expand(e, fake_shapes, &fm, p, &n);
    ck_assert_msg(rc == RL_OK, "%s", rl_error_msg());
    ck_assert_uint_eq(n, experiment_n_runs(e));
    return n;
}

START_TEST(test_axes_grid)
{
    struct experiment e;
    struct run_plan *p;
    const char *text =
        "[data]\nshots = 1, 4\n"
        "[method]\nmethods = lora, vera, randlora, full, none\n"
        "[train]\nlr = 1e-3, 3e-3\nlr.vera = 1e-2, 3e-2, 1e-1\nweight_decay = 0, 0.1\n"
        "[sweep]\nseeds = 1, 2\n";
    static const char *const lora_ids[16] = {
        "lora-r8-s1-lr1e-3-wd0-seed1", "lora-r8-s1-lr1e-3-wd0-seed2",
        "lora-r8-s1-lr1e-3-wd0.1-seed1", "lora-r8-s1-lr1e-3-wd0.1-seed2",
        "lora-r8-s1-lr3e-3-wd0-seed1", "lora-r8-s1-lr3e-3-wd0-seed2",
        "lora-r8-s1-lr3e-3-wd0.1-seed1", "lora-r8-s1-lr3e-3-wd0.1-seed2",
        "lora-r8-s4-lr1e-3-wd0-seed1", "lora-r8-s4-lr1e-3-wd0-seed2",
        "lora-r8-s4-lr1e-3-wd0.1-seed1", "lora-r8-s4-lr1e-3-wd0.1-seed2",
        "lora-r8-s4-lr3e-3-wd0-seed1", "lora-r8-s4-lr3e-3-wd0-seed2",
        "lora-r8-s4-lr3e-3-wd0.1-seed1", "lora-r8-s4-lr3e-3-wd0.1-seed2",
    };
    size_t n;

    n = expand_ov(text, NULL, 0, &e, &p);
    /* lora, randlora, full: 2 shots x 4 settings x 2 seeds; vera 2 x 6 x 2;
     * none trains nothing: no train axis, 2 x 2 */
    ck_assert_uint_eq(n, 16 + 24 + 16 + 16 + 4);
    ck_assert_uint_eq(find_method(&e, "lora")->n_settings, 4);
    ck_assert_uint_eq(find_method(&e, "vera")->n_settings, 6);
    ck_assert_uint_eq(find_method(&e, "none")->n_settings, 1);
    for (size_t i = 0; i < 16; i++) {
        ck_assert_str_eq(p[i].id, lora_ids[i]);
        ck_assert_uint_eq(p[i].index, i);
        ck_assert(p[i].train.lr == ((i / 4) % 2 ? 3e-3 : 1e-3));
        ck_assert(p[i].train.weight_decay == ((i / 2) % 2 ? 0.1 : 0.0));
        ck_assert_uint_eq(p[i].shots, i < 8 ? 1 : 4);
        ck_assert_uint_eq(p[i].seed, 1 + i % 2);
    }
    ck_assert_str_eq(p[16].id, "vera-r256-s1-lr0.01-wd0-seed1");
    ck_assert_str_eq(p[18].id, "vera-r256-s1-lr0.01-wd0.1-seed1");
    ck_assert_str_eq(p[20].id, "vera-r256-s1-lr0.03-wd0-seed1");
    ck_assert_str_eq(p[24].id, "vera-r256-s1-lr0.1-wd0-seed1");
    ck_assert(p[24].train.lr == 1e-1);
    ck_assert_str_eq(p[40].id, "randlora-r32-s1-lr1e-3-wd0-seed1");
    ck_assert_str_eq(p[56].id, "full-s1-lr1e-3-wd0-seed1");
    ck_assert_str_eq(p[72].id, "none-s1-seed1");
    ck_assert_str_eq(p[75].id, "none-s4-seed2");
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            ck_assert_str_ne(p[i].id, p[j].id);
    for (size_t i = 0; i < n; i += 5)
        check_round_trip(&p[i]);
    run_plans_free(p, n);
    experiment_free(&e);
}
END_TEST

/* one key with two values on one method: the field the two runs differ in,
 * and the id parts */
static const struct {
    const char *ov, *method, *field, *id0, *id1;
} every_axis[] = {
    { "method.alpha=8, 16", "lora", "method.alpha",
      "lora-r8-s4-alpha8-seed1", "lora-r8-s4-alpha16-seed1" },
    { "method.dropout=0, 0.1", "lora", "method.dropout",
      "lora-r8-s4-drop0-seed1", "lora-r8-s4-drop0.1-seed1" },
    { "method.rslora=false, true", "lora", "method.rslora",
      "lora-r8-s4-rslora0-seed1", "lora-r8-s4-rslora1-seed1" },
    { "method.vera_d_init=0.1, -1", "vera", "method.vera_d_init",
      "vera-r256-s4-dinit0.1-seed1", "vera-r256-s4-dinit-1-seed1" },
    { "method.profile=peft, paper", "randlora", "method.profile",
      "randlora-r32-s4-peft-seed1", "randlora-r32-s4-paper-seed1" },
    { "method.basis=dense, very_sparse", "randlora", "method.basis",
      "randlora-r32-s4-dense-seed1", "randlora-r32-s4-very_sparse-seed1" },
    { "train.steps=10, 20", "full", "train.steps",
      "full-s4-steps10-seed1", "full-s4-steps20-seed1" },
    { "train.epochs=1, 2", "lora", "train.epochs",
      "lora-r8-s4-ep1-seed1", "lora-r8-s4-ep2-seed1" },
    { "train.batch=8, 16", "lora", "train.batch",
      "lora-r8-s4-bs8-seed1", "lora-r8-s4-bs16-seed1" },
    { "train.accumulate=1, 4", "lora", "train.accumulate",
      "lora-r8-s4-acc1-seed1", "lora-r8-s4-acc4-seed1" },
    { "train.lr=1e-4, 3e-4", "vera", "train.lr",
      "vera-r256-s4-lr1e-4-seed1", "vera-r256-s4-lr3e-4-seed1" },
    { "train.weight_decay=0.01, 0.1", "lora", "train.weight_decay",
      "lora-r8-s4-wd0.01-seed1", "lora-r8-s4-wd0.1-seed1" },
    { "train.warmup=0, 10", "lora", "train.warmup",
      "lora-r8-s4-warm0-seed1", "lora-r8-s4-warm10-seed1" },
    { "train.lr_min=0, 1e-5", "lora", "train.lr_min",
      "lora-r8-s4-lrmin0-seed1", "lora-r8-s4-lrmin1e-5-seed1" },
    { "train.lr_min_ratio=0.1, 0.01", "lora", "train.lr_min",
      "lora-r8-s4-lrminr0.1-seed1", "lora-r8-s4-lrminr0.01-seed1" },
    { "train.clip=0, 1", "lora", "train.clip",
      "lora-r8-s4-clip0-seed1", "lora-r8-s4-clip1-seed1" },
};

START_TEST(test_axes_every_axis)
{
    for (size_t i = 0; i < sizeof(every_axis) / sizeof(every_axis[0]); i++) {
        char methods[64], text[256];
        const char *ov[2];
        struct experiment e;
        struct run_plan *p, other;
        size_t n;

        snprintf(methods, sizeof(methods), "method.methods=%s", every_axis[i].method);
        ov[0] = methods;
        ov[1] = every_axis[i].ov;
        /* steps and epochs at the same level would be refused */
        snprintf(text, sizeof(text), "[data]\nshots = 4\n%s",
                 strcmp(every_axis[i].field, "train.epochs") ? "[train]\nsteps = 100\n" : "");
        n = expand_ov(text, ov, 2, &e, &p);
        ck_assert_msg(n == 2, "%s: %zu runs", ov[1], n);
        ck_assert_str_eq(p[0].id, every_axis[i].id0);
        ck_assert_str_eq(p[1].id, every_axis[i].id1);
        /* the two runs differ in the axis' field and nowhere else */
        other = p[1];
        other.id = p[0].id;
        ck_assert_ptr_nonnull(run_plan_diff(&p[0], &other));
        ck_assert_str_eq(run_plan_diff(&p[0], &other), every_axis[i].field);
        ck_assert_ptr_null(run_plan_diff(&p[0], &p[0]));
        check_round_trip(&p[0]);
        check_round_trip(&p[1]);
        run_plans_free(p, n);
        experiment_free(&e);
    }
}
END_TEST

START_TEST(test_axes_applies)
{
    struct experiment e;
    struct run_plan *p;
    size_t n;

    /* alpha is read by lora and randlora only, vera_d_init by vera only,
     * profile and basis by randlora only, [train] by every method but none */
    n = expand_ov("[method]\nmethods = vera, full, none, lora\nalpha = 8, 16\n"
                  "vera_d_init = 0.1, 0.2\nprofile = peft, paper\nbasis = dense, sparse\n"
                  "rslora = false, true\n[train]\nclip = 0, 1\n", NULL, 0, &e, &p);
    /* vera: d_init x clip; full: clip; none: 1; lora: alpha x rslora x clip */
    ck_assert_uint_eq(n, 4 + 2 + 1 + 8);
    ck_assert_str_eq(p[0].id, "vera-r256-f1-dinit0.1-clip0-seed1");
    ck_assert_str_eq(p[4].id, "full-f1-clip0-seed1");
    ck_assert_str_eq(p[6].id, "none-f1-seed1");
    ck_assert_str_eq(p[7].id, "lora-r8-f1-alpha8-rslora0-clip0-seed1");
    /* the first item is stored where the key does not apply */
    ck_assert(p[0].adapter.alpha == 8.0f);
    ck_assert(p[7].adapter.vera_d_init == 0.1f);
    run_plans_free(p, n);
    experiment_free(&e);

    /* of steps / epochs only the one in effect is an axis */
    n = expand_ov("[method]\nmethods = lora, vera\n[train]\nsteps = 10, 20\nepochs.lora = 3\n",
                  NULL, 0, &e, &p);
    ck_assert_uint_eq(n, 1 + 2);
    ck_assert_str_eq(p[0].id, "lora-r8-f1-seed1");
    ck_assert_uint_eq(p[0].train.epochs, 3);
    ck_assert_str_eq(p[1].id, "vera-r256-f1-steps10-seed1");
    run_plans_free(p, n);
    experiment_free(&e);
    /* and of lr_min / lr_min_ratio */
    n = expand_ov("[train]\nlr_min = 0, 1e-6\nlr_min_ratio.lora = 0.1\n", NULL, 0, &e, &p);
    ck_assert_uint_eq(n, 1);
    ck_assert(p[0].train.lr_min == 1e-3 * 0.1);
    run_plans_free(p, n);
    experiment_free(&e);
}
END_TEST

START_TEST(test_axes_per_method)
{
    struct experiment e;
    struct run_plan *p;
    size_t n;

    /* a single per-method value replaces the plain list: no axis for vera */
    n = expand_ov("[method]\nmethods = lora, vera\n[train]\nlr = 1e-3, 3e-3\nlr.vera = 1e-2\n",
                  NULL, 0, &e, &p);
    ck_assert_uint_eq(n, 3);
    ck_assert_str_eq(p[0].id, "lora-r8-f1-lr1e-3-seed1");
    ck_assert_str_eq(p[1].id, "lora-r8-f1-lr3e-3-seed1");
    ck_assert_str_eq(p[2].id, "vera-r256-f1-seed1");
    ck_assert(p[2].train.lr == 1e-2);
    run_plans_free(p, n);
    experiment_free(&e);

    /* a per-method list: lora keeps the id it had without any list */
    {
        const char *ov[] = { "train.lr.vera=1e-2, 3e-2, 1e-1" };

        n = expand_ov("[method]\nmethods = lora, vera\n", ov, 1, &e, &p);
        ck_assert_uint_eq(n, 4);
        ck_assert_str_eq(p[0].id, "lora-r8-f1-seed1");
        ck_assert(p[0].train.lr == 1e-3);
        ck_assert_str_eq(p[1].id, "vera-r256-f1-lr0.01-seed1");
        ck_assert_str_eq(p[3].id, "vera-r256-f1-lr0.1-seed1");
        run_plans_free(p, n);
        experiment_free(&e);
    }
}
END_TEST

START_TEST(test_axes_order)
{
    struct experiment e1, e2;
    struct run_plan *p1, *p2;
    size_t n1, n2;

    n1 = expand_ov("[method]\nalpha = 4, 2\n[train]\nlr = 3e-3, 1e-3\nbatch = 16, 8\n", NULL, 0,
                   &e1, &p1);
    n2 = expand_ov("[train]\nbatch = 16, 8\nlr = 3e-3, 1e-3\n[method]\nalpha = 4, 2\n", NULL, 0,
                   &e2, &p2);
    ck_assert_uint_eq(n1, 8);
    ck_assert_uint_eq(n2, 8);
    for (size_t i = 0; i < n1; i++)
        ck_assert_str_eq(p1[i].id, p2[i].id);
    /* key table order: alpha, batch, lr; items as listed; the last fastest */
    ck_assert_str_eq(p1[0].id, "lora-r8-f1-alpha4-bs16-lr3e-3-seed1");
    ck_assert_str_eq(p1[1].id, "lora-r8-f1-alpha4-bs16-lr1e-3-seed1");
    ck_assert_str_eq(p1[2].id, "lora-r8-f1-alpha4-bs8-lr3e-3-seed1");
    ck_assert_str_eq(p1[7].id, "lora-r8-f1-alpha2-bs8-lr1e-3-seed1");
    /* the settings' tags */
    ck_assert_str_eq(e1.methods[0].settings[0].tag, "-alpha4-bs16-lr3e-3");
    run_plans_free(p1, n1);
    run_plans_free(p2, n2);
    experiment_free(&e1);
    experiment_free(&e2);
}
END_TEST

START_TEST(test_axes_budget)
{
    struct experiment e;
    struct run_plan *p;
    struct fake_model fm = { .calls = 0 };
    size_t n;

    n = expand_ov("[method]\nmethods = randlora\nbudget = 25000\nprofile = peft, paper\n"
                  "[data]\nshots = 1, 2\n", NULL, 0, &e, &p);
    ck_assert_uint_eq(n, 4);
    ck_assert_str_eq(p[0].id, "randlora-b25000-s1-peft-seed1");
    ck_assert_str_eq(p[1].id, "randlora-b25000-s1-paper-seed1");
    for (size_t i = 0; i < n; i++) {
        const struct adapter_ops *ops = adapter_ops_find("randlora");
        const struct adapter_shape *sh;
        size_t nsh, r, count;
        struct adapter_cfg cfg = p[i].adapter;

        ck_assert_int_eq(fake_shapes(&fm, &p[i], &sh, &nsh), RL_OK);
        ck_assert_int_eq(adapter_match_budget(ops, &cfg, sh, nsh, 25000, &r, &count), RL_OK);
        ck_assert_uint_eq(p[i].adapter.r, r);
        ck_assert_uint_eq(p[i].n_trainable, count);
    }
    /* the paper profile's basis count differs, so does its matched rank */
    ck_assert_uint_ne(p[0].adapter.r, p[1].adapter.r);
    run_plans_free(p, n);
    experiment_free(&e);
}
END_TEST

START_TEST(test_axes_errors)
{
    expect_error("[train]\nlr = 1e-3, 0.001\n", NULL, 0, "t.ini:2: train.lr = '1e-3, 0.001': "
                 "'0.001' is listed twice (equal in float32)");
    expect_error("[train]\nlr = 1e-3, 1.00000001e-3\n", NULL, 0, "t.ini:2: train.lr = "
                 "'1e-3, 1.00000001e-3': '1.00000001e-3' is listed twice (equal in float32)");
    expect_error("[train]\nbatch = 8, 8\n", NULL, 0,
                 "t.ini:2: train.batch = '8, 8': '8' is listed twice");
    expect_error("[method]\nprofile = peft, paper, peft\n", NULL, 0,
                 "t.ini:2: method.profile = 'peft, paper, peft': 'peft' is listed twice");
    expect_error("[train]\nlr = 1e-3, x\n", NULL, 0,
                 "t.ini:2: train.lr = '1e-3, x': item 'x': expected a number in [1e-30, 10]");
    expect_error("[train]\nlr = 1e-3,\n", NULL, 0,
                 "t.ini:2: train.lr = '1e-3,': an empty item in the list");
    expect_error("[method]\nrslora = true, maybe\n", NULL, 0, "t.ini:2: method.rslora = "
                 "'true, maybe': item 'maybe': expected true or false");
    expect_error("[train]\neps = 1e-8, 1e-7\n", NULL, 0, "t.ini:2: train.eps = '1e-8, 1e-7': "
                 "expected one value: train.eps takes no list (docs/experiments.md lists the "
                 "keys that do)");
    expect_error("[train]\nseed.lora = 1, 2\n", NULL, 0, "t.ini:2: train.seed.lora = '1, 2': "
                 "expected one value: train.seed takes no list (docs/experiments.md lists the "
                 "keys that do)");
    /* the checks between keys hold for every setting */
    expect_error("[train]\nlr = 1e-2, 1e-3\nlr_min = 5e-3\n", NULL, 0,
                 "t.ini:3: train.lr_min = '0.005': expected at most train.lr (0.001)");
    expect_error("[train]\nsteps = 20, 10\nwarmup = 15\n", NULL, 0,
                 "t.ini:3: train.warmup = '15': expected at most train.steps (10)");
    /* more than EXP_MAX_RUNS settings */
    {
        size_t cap = 64 * 2100, off = 0;
        char *text = malloc(cap);

        ck_assert_ptr_nonnull(text);
        off += (size_t)snprintf(text + off, cap - off, "[train]\nbatch = 1");
        for (int i = 2; i <= 1001; i++)
            off += (size_t)snprintf(text + off, cap - off, ",\n  %d", i);
        off += (size_t)snprintf(text + off, cap - off, "\nwarmup = 0");
        for (int i = 1; i <= 1000; i++)
            off += (size_t)snprintf(text + off, cap - off, ",\n  %d", i);
        snprintf(text + off, cap - off, "\n");
        expect_error_prefix(text, "t.ini:1003: train.warmup = '0, 1, 2, 3,");
        ck_assert_ptr_nonnull(strstr(rl_error_msg(), "': the axes of lora give more than "
                                     "1000000 settings"));
        free(text);
    }
}
END_TEST

START_TEST(test_axes_id_numbers)
{
    struct experiment e;
    struct run_plan *p;
    size_t n;
    const char *ov[] = { "train.lr=1e-4, 3e-05, 0.00012345, 0.5, 10, 1.5e-7, 0.001",
                         "train.weight_decay=0, 1e-2, 0.125, 2.5" };
    static const char *const lr_text[] = {
        "lr1e-4", "lr3e-5", "lr1.2345e-4", "lr0.5", "lr10", "lr1.5e-7", "lr1e-3",
    };

    n = expand_ov("", ov, 2, &e, &p);
    ck_assert_uint_eq(n, 7 * 4);
    for (size_t i = 0; i < n; i++) {
        const char *at = strstr(p[i].id, "-lr");
        const char *wd = strstr(p[i].id, "-wd");
        char lr[32];

        ck_assert_ptr_nonnull(at);
        ck_assert_ptr_nonnull(wd);
        ck_assert(strncmp(at + 1, lr_text[i / 4], strlen(lr_text[i / 4])) == 0);
        /* the number in the id reads back as the plan's value */
        snprintf(lr, sizeof(lr), "%.*s", (int)(wd - at - 3), at + 3);
        ck_assert(strtod(lr, NULL) == p[i].train.lr);
        ck_assert(strtod(wd + 3, NULL) == p[i].train.weight_decay);
    }
    ck_assert_str_eq(p[1].id, "lora-r8-f1-lr1e-4-wd0.01-seed1");
    run_plans_free(p, n);
    experiment_free(&e);
}
END_TEST

Suite *suite_config_axes(void)
{
    Suite *s = suite_create("config_axes");
    TCase *tc = tcase_create("config_axes");

    tcase_add_test(tc, test_axes_grid);
    tcase_add_test(tc, test_axes_every_axis);
    tcase_add_test(tc, test_axes_applies);
    tcase_add_test(tc, test_axes_per_method);
    tcase_add_test(tc, test_axes_order);
    tcase_add_test(tc, test_axes_budget);
    tcase_add_test(tc, test_axes_errors);
    tcase_add_test(tc, test_axes_id_numbers);
    suite_add_tcase(s, tc);
    return s;
}
