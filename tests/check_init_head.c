/*
 * check_init_head.c: a model.head = linear run exported with its head
 * (cli/cmd_export.c: modules_to_save ["classifier"]) and read back by
 * train.init_adapter (experiments/runner_init.c), on the tiny DINOv2
 * fixture (tests/fixtures/dinov2_tiny):
 *   - export writes base_model.model.classifier.weight / .bias and says so;
 *   - a head run started from the export with learning rates of 1e-30 (its
 *     adapters and head stay the exported ones) ends with the exported
 *     run's test loss, while the same run started afresh does not: the
 *     head is read, not only the adapters.
 * and, on the tiny CLIP's image tower, `randlora merge` of such an export
 * merges the adapters and leaves the head in the adapter, saying so.
 * (A DINOv2 run without a head is refused before any import; an adapter
 * with a head into adapters without one is check_adapter_io_head.c's.)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "core/status.h"
#include "formats/safetensors.h"
#include "results/store.h"
#include "runner_harness.h"
#include "suites.h"
#include "test_cmd.h"
#include "test_util.h"

/* one head run (model.head = linear; cls_mean features or cls) with these
 * overrides (NULL-terminated) */
static int train(const struct tmp *t, const char *path, bool cls_mean, const char *const *extra)
{
    const char *ov[20] = { "train.steps=4", "train.eval_every=0", "train.checkpoint_every=0",
                           "data.eval_limit=16", "train.lr=3e-2", "method.towers=vision",
                           "method.modules=q_proj, v_proj, fc1" };
    size_t n = 7;
    struct experiment e;
    struct run_plan *plans = NULL;
    int rc;

    ov[n++] = "model.head=linear";
    ov[n++] = "train.lr_head=3e-2";
    if (cls_mean)                 /* DINOv2's; CLIP's image tower gives cls */
        ov[n++] = "model.features=cls_mean";
    for (; extra && *extra && n < 20; extra++)
        ov[n++] = *extra;
    make_plan(&plans, &e, t, ov, n);
    rc = run_quiet(&plans[0], path, NULL, false, NULL);
    run_plans_free(plans, 1);
    experiment_free(&e);
    return rc;
}

START_TEST(test_init_head)
{
    struct tmp t;
    char r1[256], r2[256], r3[256], dir[256], opt[320], w[320];
    struct test_captured c;
    struct st_file *f = NULL;
    double l1, l2, l3;

    tmp_setup(&t, false);
    snprintf(t.model, sizeof t.model, "%s", fixture_path("dinov2_tiny"));
    snprintf(r1, sizeof r1, "%s/r1.h5", t.dir);
    snprintf(r2, sizeof r2, "%s/r2.h5", t.dir);
    snprintf(r3, sizeof r3, "%s/r3.h5", t.dir);
    snprintf(dir, sizeof dir, "%s/exported", t.dir);
    ck_assert_msg(train(&t, r1, true, NULL) == RL_OK, "%s", rl_error_msg());

    c = test_run_cmd(t.dir, cmd_export, "export", r1, "-o", dir, NULL);
    ck_assert_msg(c.status == 0, "%s", c.err);
    ck_assert_msg(strstr(c.out, "head: classifier (") != NULL, "%s", c.out);
    test_captured_free(&c);
    snprintf(w, sizeof w, "%s/adapter_model.safetensors", dir);
    ck_assert_int_eq(st_open(&f, w), RL_OK);
    ck_assert_ptr_nonnull(st_find(f, "base_model.model.classifier.weight"));
    ck_assert_ptr_nonnull(st_find(f, "base_model.model.classifier.bias"));
    ck_assert_int_eq(st_find(f, "base_model.model.classifier.weight")->shape[1], 64);
    st_close(f);

    snprintf(opt, sizeof opt, "train.init_adapter=%s", dir);
    {
        const char *from[] = { opt, "train.lr=1e-30", "train.lr_head=1e-30", "train.steps=1", NULL };
        const char *fresh[] = { "train.lr=1e-30", "train.lr_head=1e-30", "train.steps=1", NULL };

        ck_assert_msg(train(&t, r2, true, from) == RL_OK, "%s", rl_error_msg());
        ck_assert_msg(train(&t, r3, true, fresh) == RL_OK, "%s", rl_error_msg());
    }
    l1 = run_final_loss(r1);
    l2 = run_final_loss(r2);
    l3 = run_final_loss(r3);
    ck_assert_msg(fabs(l2 - l1) <= 1e-6 * (1.0 + fabs(l1)), "from the export %.9f, exported run %.9f", l2, l1);
    ck_assert_msg(fabs(l3 - l1) > 1e-4, "afresh %.9f, trained %.9f: the test cannot tell them apart", l3, l1);

    tmp_cleanup(&t);
}
END_TEST

/* a head on CLIP's image tower: export, then merge: the adapters are
 * merged, the head is read and checked and left in the adapter (said so) */
START_TEST(test_merge_head)
{
    struct tmp t;
    char r1[256], dir[256], out[256];
    struct test_captured c;

    tmp_setup(&t, true);
    snprintf(r1, sizeof r1, "%s/r1.h5", t.dir);
    snprintf(dir, sizeof dir, "%s/exported", t.dir);
    snprintf(out, sizeof out, "%s/merged", t.dir);
    ck_assert_msg(train(&t, r1, false, NULL) == RL_OK, "%s", rl_error_msg());
    c = test_run_cmd(t.dir, cmd_export, "export", r1, "-o", dir, NULL);
    ck_assert_msg(c.status == 0 && strstr(c.out, "head: classifier ("), "%s%s", c.out, c.err);
    test_captured_free(&c);
    c = test_run_cmd(t.dir, cmd_merge, "merge", "--model", t.model, "--adapter", dir, "-o", out, NULL);
    ck_assert_msg(c.status == 0, "%s", c.err);
    ck_assert_msg(strstr(c.out, "linear head 'classifier'") &&
                  strstr(c.out, "is not part of the backbone checkpoint"), "%s", c.out);
    test_captured_free(&c);
    tmp_cleanup(&t);
}
END_TEST

Suite *suite_init_head(void)
{
    Suite *s = suite_create("init_head");
    TCase *tc = tcase_create("init_head");

    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_init_head);
    tcase_add_test(tc, test_merge_head);
    suite_add_tcase(s, tc);
    return s;
}
