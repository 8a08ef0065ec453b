/*
 * check_init_adapter.c: a run that starts from a peft-format adapter
 * (train.init_adapter, experiments/runner_init.c) and what `export` names
 * as the base model (cli/cmd_export.c), on a tiny random CLIP:
 *   - round trip: a LoRA run trained, exported, and a second run started
 *     from the export with a learning rate of 1e-30 (its parameters stay
 *     the exported ones): its final test loss equals the first run's on
 *     the same evaluation batch, while the same run started afresh does
 *     not; its stored /config names the adapter;
 *   - refusals before anything is written (exit status 2, one line naming
 *     the directory): another method, another rank, other layers, a
 *     missing directory;
 *   - export's base_model_name_or_path: the model directory's absolute path,
 *     or the hub id its config.json records in "_name_or_path"; a local
 *     path recorded there is not taken for a name.
 */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli/commands.h"
#include "core/status.h"
#include "results/store.h"
#include "runner_harness.h"
#include "suites.h"
#include "test_cmd.h"
#include "test_util.h"

static double final_loss(const char *path)
{
    struct store *s;
    struct store_final f;
    int completed = 0;

    ck_assert_int_eq(store_open(&s, path), RL_OK);
    ck_assert_int_eq(store_read_final(s, &f, &completed), RL_OK);
    ck_assert_int_eq(completed, 1);
    store_close(s);
    return f.loss;
}

/* one run of the tiny experiment with these overrides (NULL-terminated) */
static int train(const struct tmp *t, const char *path, const char *const *extra)
{
    const char *ov[16] = { "train.steps=4", "train.eval_every=0", "train.checkpoint_every=0",
                           "data.eval_limit=16", "train.lr=3e-2" };
    size_t n = 5;
    struct experiment e;
    struct run_plan *plans = NULL;
    int rc;

    for (; extra && *extra && n < 16; extra++)
        ov[n++] = *extra;
    make_plan(&plans, &e, t, ov, n);
    rc = run_quiet(&plans[0], path, NULL, false, NULL);
    run_plans_free(plans, 1);
    experiment_free(&e);
    return rc;
}

static char *config_base_model(const char *dir)
{
    char path[400], *text, *out;
    cJSON *o;

    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    text = test_slurp(path, NULL);
    o = cJSON_Parse(text);
    ck_assert_ptr_nonnull(o);
    out = strdup(cJSON_GetObjectItem(o, "base_model_name_or_path")->valuestring);
    cJSON_Delete(o);
    free(text);
    return out;
}

/* the model's config.json with "_name_or_path" set to name */
static void set_name_or_path(const struct tmp *t, const char *name)
{
    char path[300], *text, *s;
    cJSON *o;
    FILE *f;

    snprintf(path, sizeof path, "%s/config.json", t->model);
    text = test_slurp(path, NULL);
    o = cJSON_Parse(text);
    ck_assert_ptr_nonnull(o);
    cJSON_DeleteItemFromObject(o, "_name_or_path");
    cJSON_AddStringToObject(o, "_name_or_path", name);
    s = cJSON_Print(o);
    f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(s, f);
    fclose(f);
    free(s);
    cJSON_Delete(o);
    free(text);
}

START_TEST(test_init_adapter)
{
    struct tmp t;
    char r1[256], r2[256], r3[256], bad[256], dir[256], dir2[256], opt[320], real[PATH_MAX];
    struct test_captured c;
    char *base;
    double l1, l2, l3;

    tmp_setup(&t, true);
    snprintf(r1, sizeof r1, "%s/r1.h5", t.dir);
    snprintf(r2, sizeof r2, "%s/r2.h5", t.dir);
    snprintf(r3, sizeof r3, "%s/r3.h5", t.dir);
    snprintf(bad, sizeof bad, "%s/bad.h5", t.dir);
    snprintf(dir, sizeof dir, "%s/exported", t.dir);
    snprintf(dir2, sizeof dir2, "%s/exported2", t.dir);
    ck_assert_msg(train(&t, r1, NULL) == RL_OK, "%s", rl_error_msg());

    /* export: the model directory's absolute path */
    c = test_run_cmd(t.dir, cmd_export, "export", r1, "-o", dir, NULL);
    ck_assert_msg(c.status == 0, "%s", c.err);
    ck_assert_ptr_nonnull(strstr(c.out, "base_model_name_or_path:"));
    test_captured_free(&c);
    ck_assert_ptr_nonnull(realpath(t.model, real));
    base = config_base_model(dir);
    ck_assert_str_eq(base, real);
    free(base);

    /* a run started from the export, parameters kept (lr 1e-30): the same
     * final loss on the same evaluation batch; afresh: another */
    snprintf(opt, sizeof opt, "train.init_adapter=%s", dir);
    {
        const char *from[] = { opt, "train.lr=1e-30", "train.steps=1", NULL };
        const char *fresh[] = { "train.lr=1e-30", "train.steps=1", NULL };

        ck_assert_msg(train(&t, r2, from) == RL_OK, "%s", rl_error_msg());
        ck_assert_msg(train(&t, r3, fresh) == RL_OK, "%s", rl_error_msg());
    }
    l1 = final_loss(r1);
    l2 = final_loss(r2);
    l3 = final_loss(r3);
    ck_assert_msg(fabs(l2 - l1) <= 1e-6 * (1.0 + fabs(l1)), "started from the export: %.9f, exported run: %.9f", l2,
                  l1);
    ck_assert_msg(fabs(l3 - l1) > 1e-4, "afresh %.9f, trained %.9f: the test cannot tell them apart", l3, l1);
    {
        struct store *s;
        char *cfg = NULL;

        ck_assert_int_eq(store_open(&s, r2), RL_OK);
        ck_assert_int_eq(store_read_config(s, &cfg), RL_OK);
        store_close(s);
        ck_assert_ptr_nonnull(strstr(cfg, "init_adapter = "));
        ck_assert_ptr_nonnull(strstr(cfg, dir));
        free(cfg);
    }

    /* refusals: nothing written */
    {
        static const struct {
            const char *ov, *want;
        } cases[] = {
            { "method.methods=vera", "is a lora adapter, but the run's method is vera" },
            { "method.rank=2", "has rank 4, but the run's is 2" },
            { "method.modules=q_proj", "names a module that is not among the" },
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            const char *ov[] = { opt, cases[i].ov, NULL };
            int rc = train(&t, bad, ov);

            ck_assert_int_eq(rl_exit_code(rc), 2);
            ck_assert_msg(strstr(rl_error_msg(), cases[i].want) && strstr(rl_error_msg(), dir), "case %zu: %s", i,
                          rl_error_msg());
            ck_assert_int_eq(access(bad, F_OK), -1);
        }
        const char *missing[] = { "train.init_adapter=/nonexistent/adapter", NULL };
        ck_assert_int_eq(rl_exit_code(train(&t, bad, missing)), 2);
        ck_assert_ptr_nonnull(strstr(rl_error_msg(), "/nonexistent/adapter"));
        ck_assert_int_eq(access(bad, F_OK), -1);
    }

    /* export: the hub id the model's config records; a local path there is
     * not a name */
    set_name_or_path(&t, "openai/clip-vit-base-patch32");
    c = test_run_cmd(t.dir, cmd_export, "export", r1, "-o", dir2, NULL);
    ck_assert_msg(c.status == 0, "%s", c.err);
    test_captured_free(&c);
    base = config_base_model(dir2);
    ck_assert_str_eq(base, "openai/clip-vit-base-patch32");
    free(base);
    set_name_or_path(&t, "/home/someone/clip");
    c = test_run_cmd(t.dir, cmd_export, "export", r1, "-o", dir2, "--force", NULL);
    ck_assert_msg(c.status == 0, "%s", c.err);
    test_captured_free(&c);
    base = config_base_model(dir2);
    ck_assert_str_eq(base, real);
    free(base);
    tmp_cleanup(&t);
}
END_TEST

Suite *suite_init_adapter(void)
{
    Suite *s = suite_create("init_adapter");
    TCase *tc = tcase_create("init_adapter");

    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_init_adapter);
    suite_add_tcase(s, tc);
    return s;
}
