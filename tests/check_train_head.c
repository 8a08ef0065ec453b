/*
 * check_train_head.c: runs with model.head = linear (experiments/train_head.c)
 * on a tiny random DINOv2 (with a register token, run at its native size)
 * and on the tiny CLIP's image tower, on shapes-count:
 *
 *   methods   LoRA, VeRA, RandLoRA, NoLA, full and none (linear probing) each
 *             train: the training loss falls, the head is saved as
 *             /adapter/classifier/{weight,bias} (peft's modules_to_save
 *             names), n_trainable counts adapters + head;
 *   resume    a run killed after its checkpoint and resumed ends with the
 *             adapter and head of an uninterrupted run, bit for bit;
 *   lr_head   the head's own learning rate changes the head (and only what
 *             the schedule says: lr_head = 0 is refused by the key's range);
 *   refusals  a DINOv2 model without a head, cls_mean on CLIP, a hostile
 *             preprocessor_config.json (each named); DINOv2 preprocessing
 *             read from it (256 / 224, ImageNet statistics).
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "core/status.h"
#include "datasets/transforms.h"
#include "experiments/config.h"
#include "experiments/runner.h"
#include "formats/safetensors.h"
#include "models/dinov2.h"
#include "results/store.h"
#include "runner_harness.h"
#include "suites.h"

/* shared with train_head.c (declared in experiments/runner_impl.h) */
int head_preprocessing(const char *dir, size_t image_size, size_t data_size,
                       struct transform *t, bool *from_file);

/* a DINOv2 of 16 px, patch 4, width 32, 2 layers, 1 register token, saved
 * over t->model */
static void write_tiny_dinov2(const struct tmp *t)
{
    struct clip_config c;
    struct clip_model m;
    char cmd[300];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t->model);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_int_eq(dinov2_config_preset(&c, "vit-tiny"), RL_OK);
    c.vision.image_size = 16;
    c.vision.hidden = 32;
    c.vision.layers = 2;
    c.vision.heads = 2;
    c.vision.intermediate = 64;
    ck_assert_int_eq(dinov2_model_init(&m, &c), RL_OK);
    dinov2_model_init_random(&m, 5);
    ck_assert_int_eq(clip_model_save(&m, t->model, ST_F32), RL_OK);
    clip_model_free(&m);
}

static const char *const head_ov[] = {
    "model.head=linear", "model.features=cls_mean", "method.towers=vision",
    "train.steps=24", "train.lr_head=1e-2", "train.eval_every=0", "train.checkpoint_every=0",
    "data.eval_limit=24",
};
#define N_HEAD_OV (sizeof(head_ov) / sizeof(head_ov[0]))

/* one run of `method` (override list + method); the mean loss of the first
 * and last 4 steps, the first step's */
static double loss0;

static void run_method(const struct tmp *t, const char *method, const char *extra,
                       double *first, double *last, struct runner_result *res)
{
    const char *ov[N_HEAD_OV + 2];
    char mo[64], path[256];
    struct experiment e;
    struct run_plan *plans;
    struct store *s;
    int64_t *steps;
    double *loss;
    size_t n, k = 0, dims[STORE_MAX_DIMS], nd;
    float *w;

    for (size_t i = 0; i < N_HEAD_OV; i++)
        ov[k++] = head_ov[i];
    snprintf(mo, sizeof(mo), "method.methods=%s", method);
    ov[k++] = mo;
    if (extra)
        ov[k++] = extra;
    make_plan(&plans, &e, t, ov, k);
    snprintf(path, sizeof(path), "%s/%s.h5", t->dir, method);
    ck_assert_msg(run_quiet(&plans[0], path, NULL, false, res) == RL_OK, "%s: %s", method,
                  rl_error_msg());
    ck_assert_int_eq(store_open(&s, path), RL_OK);
    ck_assert_int_eq(store_read_curve(s, "train", "loss", &steps, &loss, &n), RL_OK);
    ck_assert_uint_eq(n, 24);
    loss0 = loss[0];
    *first = (loss[0] + loss[1] + loss[2] + loss[3]) / 4;
    *last = (loss[20] + loss[21] + loss[22] + loss[23]) / 4;
    ck_assert_int_eq(store_read_tensor(s, "/adapter/classifier/weight", &w, &nd, dims), RL_OK);
    ck_assert_uint_eq(nd, 2);
    ck_assert_uint_eq(dims[1], 64);            /* cls_mean: 2 x width 32 */
    free(w);
    ck_assert_int_eq(store_read_tensor(s, "/adapter/classifier/bias", &w, &nd, dims), RL_OK);
    ck_assert_uint_eq(nd, 1);
    free(w);
    free(steps);
    free(loss);
    store_close(s);
    run_plans_free(plans, 1);
    experiment_free(&e);
}

START_TEST(test_methods_train_dinov2)
{
    static const char *const methods[] = { "lora", "vera", "randlora", "nola", "full", "none" };
    struct tmp t;
    struct runner_result res;
    double first, last;

    tmp_setup(&t, false);
    write_tiny_dinov2(&t);
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        run_method(&t, methods[i], NULL, &first, &last, &res);
        ck_assert_msg(last < 0.9 * first, "%s: loss %.4f -> %.4f", methods[i], first, last);
        ck_assert_uint_eq(res.steps, 24);
        /* the head: M classes x (64 + 1) */
        ck_assert_uint_ge(res.n_trainable, 65);
        if (!strcmp(methods[i], "none"))
            ck_assert_uint_eq(res.n_trainable % 65, 0);
        ck_assert(res.accuracy >= 0 && res.accuracy <= 1);
    }
    /* the rest of the pipeline reads a head run: export writes the adapters
     * under the checkpoint's module paths, analyze and info read it */
    {
        char run[256], out[256], *txt = NULL;
        char *ex[] = { "export", run, "-o", out, NULL };
        char *an[] = { "analyze", run, NULL };
        char *in[] = { "info", run, NULL };
        struct st_file *f;

        snprintf(run, sizeof(run), "%s/lora.h5", t.dir);
        snprintf(out, sizeof(out), "%s/exported", t.dir);
        ck_assert_msg(run_cmd_captured(cmd_export, 4, ex, &txt) == 0, "%s", txt);
        free(txt);
        snprintf(out, sizeof(out), "%s/exported/adapter_model.safetensors", t.dir);
        ck_assert_int_eq(st_open(&f, out), RL_OK);
        ck_assert_ptr_nonnull(st_find(f, "base_model.model.encoder.layer.1.attention.attention."
                                         "query.lora_A.weight"));
        st_close(f);
        ck_assert_msg(run_cmd_captured(cmd_analyze, 2, an, &txt) == 0, "%s", txt);
        free(txt);
        ck_assert_msg(run_cmd_captured(cmd_info, 2, in, &txt) == 0, "%s", txt);
        ck_assert_ptr_nonnull(strstr(txt, "method       lora"));
        free(txt);
    }
    tmp_cleanup(&t);
}
END_TEST

START_TEST(test_clip_image_tower)
{
    static const char *const ov[] = { "model.head=linear", "method.towers=vision, text",
                                      "train.steps=3", "data.eval_limit=8" };
    static const char *const bad[] = { "model.head=linear", "model.features=cls_mean" };
    struct tmp t;
    struct experiment e;
    struct run_plan *plans;
    struct runner_result res;
    char path[256];

    tmp_setup(&t, true);
    make_plan(&plans, &e, &t, ov, 4);
    snprintf(path, sizeof(path), "%s/clip.h5", t.dir);
    ck_assert_msg(run_quiet(&plans[0], path, NULL, false, &res) == RL_OK, "%s", rl_error_msg());
    ck_assert_uint_eq(res.steps, 3);
    run_plans_free(plans, 1);
    experiment_free(&e);

    make_plan(&plans, &e, &t, bad, 2);
    snprintf(path, sizeof(path), "%s/bad.h5", t.dir);
    ck_assert_int_eq(run_quiet(&plans[0], path, NULL, false, &res), RL_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(rl_error_msg(), "cls_mean needs a DINOv2 model"));
    run_plans_free(plans, 1);
    experiment_free(&e);
    /* the prompt classifier's loss options with a head */
    {
        static const char *const inb[] = { "model.head=linear", "train.loss=inbatch" };

        make_plan(&plans, &e, &t, inb, 2);
        ck_assert_int_eq(run_quiet(&plans[0], path, NULL, false, &res), RL_ERR_ARG);
        ck_assert_ptr_nonnull(strstr(rl_error_msg(), "are the prompt classifier's"));
        run_plans_free(plans, 1);
        experiment_free(&e);
    }

    /* a DINOv2 model with the prompt classifier */
    write_tiny_dinov2(&t);
    make_plan(&plans, &e, &t, NULL, 0);
    ck_assert_int_eq(run_quiet(&plans[0], path, NULL, false, &res), RL_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(rl_error_msg(), "set model.head = linear"));
    run_plans_free(plans, 1);
    experiment_free(&e);
    tmp_cleanup(&t);
}
END_TEST

/* killed at step 7 (checkpoint at 6), resumed: adapters and head as a run
 * straight through, bit for bit (LoRA with dropout and augmentation) */
START_TEST(test_resume_exact)
{
    static const char *const ov[] = { "model.head=linear", "method.methods=lora",
                                      "method.towers=vision", "method.rank=2",
                                      "method.dropout=0.1", "data.augment=crop_flip",
                                      "train.steps=10", "train.batch=8", "train.accumulate=2",
                                      "train.warmup=2", "train.checkpoint_every=3" };
    struct tmp t;
    struct experiment e;
    struct run_plan *plans;
    struct runner_result res;
    char a[256], b[256];
    float *pa, *pb;
    size_t na;

    tmp_setup(&t, false);
    write_tiny_dinov2(&t);
    make_plan(&plans, &e, &t, ov, sizeof(ov) / sizeof(ov[0]));
    interrupted_and_straight(&plans[0], &t, a, b, &pa, &pb, &na, &res);
    ck_assert_uint_eq(na, res.n_trainable);    /* LoRA's tensors + the head */
    ck_assert_msg(memcmp(pa, pb, na * sizeof(float)) == 0, "resumed adapter or head differs");
    free(pa);
    free(pb);
    run_plans_free(plans, 1);
    experiment_free(&e);
    tmp_cleanup(&t);
}
END_TEST

/* the head's learning rate is its own: two linear probes differing only in
 * train.lr_head end with different heads, in train.lr not at all */
START_TEST(test_lr_head)
{
    struct tmp t;
    struct runner_result res;
    double f1, l1, f2, l2, f3, l3, first1;

    tmp_setup(&t, false);
    write_tiny_dinov2(&t);
    run_method(&t, "none", "train.lr_head=1e-4", &f1, &l1, &res);
    first1 = loss0;
    run_method(&t, "none", "train.lr=0.5", &f2, &l2, &res);      /* lr_head 1e-2 */
    ck_assert(first1 == loss0);                 /* the same first step's loss */
    run_method(&t, "none", "train.lr=0.25", &f3, &l3, &res);
    ck_assert_msg(l2 < l1, "lr_head 1e-2 %.4f vs 1e-4 %.4f", l2, l1);
    ck_assert_msg(l2 == l3, "train.lr moved a linear probe: %.6f vs %.6f", l2, l3);
    tmp_cleanup(&t);
}
END_TEST

static void write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");

    ck_assert_ptr_nonnull(fp);
    fputs(text, fp);
    fclose(fp);
}

static void expect_pp_error(const struct tmp *t, const char *json, const char *needle)
{
    char path[256];
    struct transform tf;
    bool ff;

    snprintf(path, sizeof(path), "%s/preprocessor_config.json", t->dir);
    write_file(path, json);
    memset(&tf, 0, sizeof(tf));
    ck_assert_int_eq(head_preprocessing(t->dir, 518, 0, &tf, &ff), RL_ERR_FORMAT);
    ck_assert_msg(strstr(rl_error_msg(), needle) && strstr(rl_error_msg(), path),
                  "'%s' does not name '%s'", rl_error_msg(), needle);
}

START_TEST(test_preprocessing)
{
    static const char *const dinov2_pp =
        "{\"crop_size\": {\"height\": 224, \"width\": 224}, \"do_center_crop\": true,\n"
        " \"do_convert_rgb\": true, \"do_normalize\": true, \"do_rescale\": true,\n"
        " \"do_resize\": true, \"image_mean\": [0.485, 0.456, 0.406],\n"
        " \"image_processor_type\": \"BitImageProcessor\",\n"
        " \"image_std\": [0.229, 0.224, 0.225], \"resample\": 3,\n"
        " \"rescale_factor\": 0.00392156862745098, \"size\": {\"shortest_edge\": 256}}\n";
    struct tmp t;
    struct transform tf;
    char path[256];
    bool ff;

    tmp_setup(&t, false);
    memset(&tf, 0, sizeof(tf));
    ck_assert_int_eq(head_preprocessing(t.dir, 32, 0, &tf, &ff), RL_OK);
    ck_assert(!ff);
    ck_assert_int_eq(tf.size, 32);
    ck_assert(fabsf(tf.mean[0] - 0.485f) < 1e-7f && fabsf(tf.std[2] - 0.225f) < 1e-7f);
    snprintf(path, sizeof(path), "%s/preprocessor_config.json", t.dir);
    write_file(path, dinov2_pp);
    ck_assert_int_eq(head_preprocessing(t.dir, 518, 0, &tf, &ff), RL_OK);
    ck_assert(ff);
    ck_assert_int_eq(tf.size, 224);
    ck_assert_int_eq(tf.resize, 256);
    ck_assert_int_eq(head_preprocessing(t.dir, 518, 196, &tf, &ff), RL_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(rl_error_msg(), "data.image_size = 196"));
    expect_pp_error(&t, "{\"resample\": 2}", "resample");
    expect_pp_error(&t, "{\"image_std\": [0.2, 0, 0.2]}", "image_std[1]");
    expect_pp_error(&t, "{\"image_mean\": [0.2, 0.2]}", "image_mean");
    expect_pp_error(&t, "{\"size\": {\"shortest_edge\": \"256\"}}", "size");
    expect_pp_error(&t, "{\"crop_size\": -3}", "crop_size");
    expect_pp_error(&t, "{\"do_center_crop\": false}", "do_center_crop");
    expect_pp_error(&t, "{\"rescale_factor\": 1}", "rescale_factor");
    expect_pp_error(&t, "{\"size\": 200, \"crop_size\": 224}", "below crop_size");
    expect_pp_error(&t, "[1, 2", "malformed JSON");
    tmp_cleanup(&t);
}
END_TEST

/* the keys round-trip through a run's stored config; a prompt-classifier
 * run's text is as before unless they are set */
START_TEST(test_config_keys)
{
    static const char *const set[] = { "train.lr_head=0.01", "model.features=cls_mean" };
    static const char *const head[] = { "model.head=linear" };
    struct tmp t;
    struct experiment e;
    struct run_plan *plans;
    char *text;

    tmp_setup(&t, false);
    make_plan(&plans, &e, &t, NULL, 0);
    text = run_plan_to_ini(&plans[0]);
    ck_assert_ptr_null(strstr(text, "head"));
    ck_assert_ptr_null(strstr(text, "features"));
    free(text);
    run_plans_free(plans, 1);
    experiment_free(&e);
    make_plan(&plans, &e, &t, set, 2);
    ck_assert_int_eq(run_plan_check_roundtrip(&plans[0]), RL_OK);
    text = run_plan_to_ini(&plans[0]);
    ck_assert_ptr_nonnull(strstr(text, "lr_head = 0.01"));
    ck_assert_ptr_nonnull(strstr(text, "features = cls_mean"));
    free(text);
    run_plans_free(plans, 1);
    experiment_free(&e);
    make_plan(&plans, &e, &t, head, 1);
    ck_assert_int_eq(run_plan_check_roundtrip(&plans[0]), RL_OK);
    text = run_plan_to_ini(&plans[0]);
    ck_assert_ptr_nonnull(strstr(text, "head = linear"));
    ck_assert_ptr_nonnull(strstr(text, "lr_head = 0.001"));
    free(text);
    run_plans_free(plans, 1);
    experiment_free(&e);
    tmp_cleanup(&t);
}
END_TEST

Suite *suite_train_head(void)
{
    Suite *s = suite_create("train_head");
    TCase *tc = tcase_create("train_head");

    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_methods_train_dinov2);
    tcase_add_test(tc, test_clip_image_tower);
    tcase_add_test(tc, test_resume_exact);
    tcase_add_test(tc, test_lr_head);
    tcase_add_test(tc, test_preprocessing);
    tcase_add_test(tc, test_config_keys);
    suite_add_tcase(s, tc);
    return s;
}
