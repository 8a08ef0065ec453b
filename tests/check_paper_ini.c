/*
 * check_paper_ini.c: the shipped paper protocol files run, not only
 * expand. experiments/clip_b32_fewshot.ini and clip_b32_full.ini, with
 * only the model, the data and the length overridden, train every one of
 * their methods (RandLoRA, LoRA, VeRA, NoLA, full; the paper's placement:
 * q, k, v packed as in_proj, fc1, fc2 on both towers; the in-batch loss,
 * the raw logit scale, the repeat rule) on a tiny model of either
 * directory layout, Hugging Face and open_clip, and a converted pair gives
 * the same runs.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/status.h"
#include "experiments/config.h"
#include "experiments/runner.h"
#include "models/block.h"
#include "config_util.h"
#include "runner_harness.h"
#include "suites.h"

#define MAX_RUNS 64

struct paper_run {
    char id[128];
    size_t trainable, steps;
    double loss;
};

/* every plan of FILE with the overrides that make it tiny (the model dir,
 * shapes-count data, a short run) and `extra` (the data's size) run in t's
 * folder; what each plan gave, in plan order */
static size_t run_file(const char *file, const char *model, const struct tmp *t,
                       const char *tag, const char *extra, struct paper_run *out)
{
    char model_ov[256], out_ov[256];
    const char *ov[] = {
        model_ov, out_ov, extra,
        "data.dataset=shapes-count", "data.eval=shapes-count:test", "data.val=4",
        "data.eval_limit=16", "data.augment=none", "train.batch=8", "train.epochs=1",
        "train.min_epoch_steps=2", "method.rank.randlora=4", "method.rank.lora=4",
        "method.rank.vera=16",
    };
    struct experiment e;
    struct run_plan *p;
    size_t n;
    int rc;

    snprintf(model_ov, sizeof(model_ov), "model.name=%s", model);
    snprintf(out_ov, sizeof(out_ov), "experiment.output=%s/%s", t->dir, tag);
    rc = experiment_load(&e, experiment_path(file), ov, sizeof(ov) / sizeof(ov[0]));
    ck_assert_msg(rc == RL_OK, "%s: %s", file, rl_error_msg());
    ck_assert_int_eq(experiment_expand(&e, NULL, NULL, &p, &n), RL_OK);
    ck_assert_uint_le(n, MAX_RUNS);
    for (size_t i = 0; i < n; i++) {
        struct runner_result res;
        char path[512];

        /* the paper's placement and loss, as the file says */
        ck_assert_uint_eq(p[i].targets.modules & (1u << BLOCK_LIN_IN_PROJ),
                          1u << BLOCK_LIN_IN_PROJ);
        ck_assert_int_eq(p[i].train.loss, EXP_LOSS_INBATCH);
        ck_assert(p[i].train.logit_scale_raw);
        snprintf(path, sizeof(path), "%s/%s-%s.h5", t->dir, tag, p[i].id);
        rc = run_quiet(&p[i], path, NULL, false, &res);
        ck_assert_msg(rc == RL_OK, "%s %s on %s: %s", file, p[i].id, model, rl_error_msg());
        ck_assert_msg(isfinite(res.loss) && res.steps >= 2 && res.n_trainable > 0,
                      "%s %s: loss %g, %zu steps, %zu trainable", file, p[i].id, res.loss,
                      res.steps, res.n_trainable);
        snprintf(out[i].id, sizeof(out[i].id), "%s", p[i].id);
        out[i].trainable = res.n_trainable;
        out[i].steps = res.steps;
        out[i].loss = res.loss;
    }
    run_plans_free(p, n);
    experiment_free(&e);
    return n;
}

static bool has_method(const struct paper_run *r, size_t n, const char *method)
{
    for (size_t i = 0; i < n; i++)
        if (!strncmp(r[i].id, method, strlen(method)) && r[i].id[strlen(method)] == '-')
            return true;
    return false;
}

/* the few-shot file on the open_clip fixture and on its HF conversion: every
 * method trains, and the two layouts give the same runs */
START_TEST(test_fewshot_ini_runs_both_layouts)
{
    static const char *const methods[] = { "randlora", "lora", "vera", "nola", "full" };
    struct paper_run oc[MAX_RUNS], hf[MAX_RUNS];
    struct tmp t;
    size_t n_oc, n_hf;

    tmp_setup(&t, false);
    n_oc = run_file("clip_b32_fewshot.ini", "tests/fixtures/openclip_tiny", &t, "oc",
                    "data.shots=2", oc);
    n_hf = run_file("clip_b32_fewshot.ini", "tests/fixtures/openclip_tiny_hf", &t, "hf",
                    "data.shots=2", hf);
    ck_assert_uint_eq(n_oc, 5);                       /* 5 methods x 1 shot count */
    ck_assert_uint_eq(n_hf, n_oc);
    for (size_t m = 0; m < 5; m++)
        ck_assert_msg(has_method(oc, n_oc, methods[m]), "no %s run", methods[m]);
    for (size_t i = 0; i < n_oc; i++) {
        ck_assert_str_eq(oc[i].id, hf[i].id);
        ck_assert_uint_eq(oc[i].trainable, hf[i].trainable);
        ck_assert_uint_eq(oc[i].steps, hf[i].steps);
        ck_assert_msg(oc[i].loss == hf[i].loss, "%s: open_clip loss %.9g, HF %.9g", oc[i].id,
                      oc[i].loss, hf[i].loss);
    }
    tmp_cleanup(&t);
}
END_TEST

/* the 50% / 100% file: the same five methods on a fraction */
START_TEST(test_full_ini_runs)
{
    static const char *const methods[] = { "randlora", "lora", "vera", "nola", "full" };
    struct paper_run r[MAX_RUNS];
    struct tmp t;
    size_t n;

    tmp_setup(&t, false);
    n = run_file("clip_b32_full.ini", "tests/fixtures/openclip_tiny", &t, "full",
                 "data.fractions=0.02", r);
    ck_assert_uint_eq(n, 5);                          /* 5 methods x 1 fraction */
    for (size_t m = 0; m < 5; m++)
        ck_assert_msg(has_method(r, n, methods[m]), "no %s run", methods[m]);
    tmp_cleanup(&t);
}
END_TEST

Suite *suite_paper_ini(void)
{
    Suite *s = suite_create("paper_ini");
    TCase *tc = tcase_create("paper_ini");

    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_fewshot_ini_runs_both_layouts);
    tcase_add_test(tc, test_full_ini_runs);
    suite_add_tcase(s, tc);
    return s;
}
