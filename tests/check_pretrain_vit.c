/*
 * check_pretrain_vit.c: `randlora pretrain` for vit-tiny
 * (experiments/pretrain_vit.h) and the runner's use of its directory:
 *
 *   directory  a short pretrain writes config.json + model.safetensors that
 *              backbone_model_load reads as DINOv2 (vit-tiny's shapes, the
 *              weights moved from the random init of the same seed) and
 *              pretrain.json; the runner refuses the preset before, loads
 *              it after;
 *   cache      equal settings: skipped, files untouched; another seed or
 *              step count: trained again, and the runner refuses a
 *              directory pretrained with other settings than the file's;
 *   random     pretrain_steps = 0 writes the seed's random init untrained
 *              (the baseline);
 *   learns     a short pretrain on shapes-count lowers the held-out
 *              cross-entropy below its own value at init;
 *   refusals   a model directory, a batch larger than the corpus; clip-tiny
 *              with pretrain_steps = 0 (the command, exit 2); a sweep on a
 *              directory pretrained otherwise (exit 2, naming pretrain.json).
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/commands.h"
#include "core/read_file.h"
#include "core/status.h"
#include "experiments/pretrain_vit.h"
#include "experiments/runner.h"
#include "models/dinov2.h"
#include "runner_harness.h"
#include "suites.h"
#include "test_util.h"

static struct exp_model vit_model(char *dir)
{
    return (struct exp_model){ .name = "vit-tiny", .preset = true, .pretrain_dir = dir,
                               .pretrain_data = "shapes", .pretrain_corpus = 64,
                               .pretrain_steps = 3, .pretrain_batch = 4, .pretrain_lr = 1e-3,
                               .pretrain_weight_decay = 0.1, .pretrain_warmup = 1,
                               .pretrain_seed = 5 };
}

#define PRETRAIN_LEARN_STEPS 150

static const struct pretrain_vit_options quiet = { .verbosity = 0, .eval_items = 8 };

static double max_abs_diff(const float *a, const float *b, size_t n)
{
    double d = 0.0;

    for (size_t i = 0; i < n; i++)
        if (fabs((double)a[i] - b[i]) > d)
            d = fabs((double)a[i] - b[i]);
    return d;
}

static long mtime_ns(const char *dir, const char *name)
{
    char path[300];
    struct stat st;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    ck_assert_int_eq(stat(path, &st), 0);
    return (long)st.st_mtim.tv_sec * 1000000000L + st.st_mtim.tv_nsec;
}

START_TEST(test_pretrain_vit_dir)
{
    struct tmp t;
    char dir[160];
    struct exp_model em = vit_model(dir);
    struct pretrain_vit_result r;
    struct clip_model m, init;
    char *json = NULL;
    size_t len;
    long stamp;

    tmp_setup(&t, false);
    snprintf(dir, sizeof(dir), "%s/models/vit-tiny", t.dir);

    /* before: the runner refuses the preset, naming the command */
    ck_assert_int_eq(runner_load_model(&m, &em), RL_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(rl_error_msg(), "randlora pretrain"));
    ck_assert(!pretrain_vit_is_cached(&em));

    ck_assert_msg(pretrain_vit_run(&em, &quiet, &r) == RL_OK, "%s", rl_error_msg());
    ck_assert(!r.skipped);
    ck_assert_uint_eq(r.steps, 3);
    ck_assert_uint_eq(r.classes, 4);
    ck_assert_uint_eq(r.heldout_items, 8);
    ck_assert(isfinite(r.final_loss) && isfinite(r.heldout_loss));
    ck_assert(r.heldout_acc >= 0 && r.heldout_acc <= 1);
    ck_assert(pretrain_vit_is_cached(&em));

    /* a DINOv2 directory of vit-tiny's shapes, trained away from its init */
    ck_assert_msg(backbone_model_load(&m, dir) == RL_OK, "%s", rl_error_msg());
    ck_assert_int_eq(m.cfg.arch, CLIP_ARCH_DINOV2);
    ck_assert_uint_eq(m.cfg.vision.hidden, 128);
    ck_assert_uint_eq(m.cfg.vision.register_tokens, 1);
    ck_assert_int_eq(dinov2_model_preset(&init, "vit-tiny", 5), RL_OK);
    ck_assert_uint_eq(m.n_params, init.n_params);
    ck_assert(max_abs_diff(m.w.v_patch, init.w.v_patch, 128 * 3 * 16) > 1e-4);
    ck_assert(max_abs_diff(m.w.v_post_w, init.w.v_post_w, 128) > 1e-4);
    ck_assert(max_abs_diff(m.w.v_pos, init.w.v_pos, 65 * 128) > 1e-4);
    /* LayerScale kept at its init (no gradient, no decay) */
    ck_assert(max_abs_diff(m.vlayer[2].ls1, init.vlayer[2].ls1, 2 * 128) == 0.0);
    clip_model_free(&init);
    clip_model_free(&m);
    ck_assert_msg(runner_load_model(&m, &em) == RL_OK, "%s", rl_error_msg());
    clip_model_free(&m);
    {
        char path[300];

        snprintf(path, sizeof(path), "%s/pretrain.json", dir);
        ck_assert_int_eq(rl_read_file(path, 1 << 20, &json, &len), RL_OK);
        ck_assert_ptr_nonnull(strstr(json, "\"heldout_accuracy\""));
        ck_assert_ptr_nonnull(strstr(json, "\"data\":\t\"shapes\""));
        free(json);
    }

    /* equal settings: kept; another step count: trained again */
    stamp = mtime_ns(dir, "model.safetensors");
    ck_assert_int_eq(pretrain_vit_run(&em, &quiet, &r), RL_OK);
    ck_assert(r.skipped);
    ck_assert(mtime_ns(dir, "model.safetensors") == stamp);
    em.pretrain_steps = 2;
    ck_assert(!pretrain_vit_is_cached(&em));
    /* the runner refuses a directory of other settings than the file's */
    ck_assert_int_eq(runner_load_model(&m, &em), RL_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(rl_error_msg(), "not pretrained with this file"));
    ck_assert_int_eq(pretrain_vit_run(&em, &quiet, &r), RL_OK);
    ck_assert(!r.skipped);
    ck_assert_uint_eq(r.steps, 2);
    ck_assert(pretrain_vit_is_cached(&em));
    tmp_cleanup(&t);
}
END_TEST

START_TEST(test_pretrain_vit_random)
{
    struct tmp t;
    char dir[160];
    struct exp_model em = vit_model(dir);
    struct pretrain_vit_result r;
    struct clip_model m, init;

    tmp_setup(&t, false);
    snprintf(dir, sizeof(dir), "%s/models/random", t.dir);
    em.pretrain_steps = 0;
    ck_assert_msg(pretrain_vit_run(&em, &quiet, &r) == RL_OK, "%s", rl_error_msg());
    ck_assert_uint_eq(r.steps, 0);
    ck_assert_msg(runner_load_model(&m, &em) == RL_OK, "%s", rl_error_msg());
    ck_assert_int_eq(dinov2_model_preset(&init, "vit-tiny", 5), RL_OK);
    ck_assert_uint_eq(m.n_params, init.n_params);
    ck_assert(max_abs_diff(m.params, init.params, m.n_params) == 0.0);
    clip_model_free(&init);
    clip_model_free(&m);
    /* the training keys do not matter to a random init: still cached */
    em.pretrain_data = "shapes-count";
    em.pretrain_batch = 32;
    em.pretrain_lr = 3e-3;
    ck_assert(pretrain_vit_is_cached(&em));
    /* another seed is another model: trained again */
    em.pretrain_seed = 6;
    ck_assert(!pretrain_vit_is_cached(&em));
    ck_assert_int_eq(pretrain_vit_run(&em, &quiet, &r), RL_OK);
    ck_assert(!r.skipped);
    tmp_cleanup(&t);
}
END_TEST

START_TEST(test_pretrain_vit_learns)
{
    struct tmp t;
    char dir[160];
    struct exp_model em = vit_model(dir);
    struct clip_config c;
    struct pretrain_vit_options o = { .cfg = &c, .verbosity = 0, .eval_items = 256 };
    struct pretrain_vit_result r;

    /* vit-tiny's layout at 16 px, width 32, 2 layers: the test's size */
    ck_assert_int_eq(dinov2_config_preset(&c, "vit-tiny"), RL_OK);
    c.vision.image_size = 16;
    c.vision.hidden = 32;
    c.vision.layers = 2;
    c.vision.heads = 2;
    c.vision.intermediate = 64;
    tmp_setup(&t, false);
    snprintf(dir, sizeof(dir), "%s/models/learn", t.dir);
    em.pretrain_data = "shapes-count";
    em.pretrain_corpus = 4000;
    em.pretrain_steps = PRETRAIN_LEARN_STEPS;
    em.pretrain_batch = 32;
    em.pretrain_warmup = 10;
    em.pretrain_lr = 3e-3;
    ck_assert_msg(pretrain_vit_run(&em, &o, &r) == RL_OK, "%s", rl_error_msg());
    ck_assert_uint_eq(r.classes, 3);
    ck_assert_msg(r.heldout_loss < r.init_heldout_loss - 0.05,
                  "held-out loss %.4f after %zu steps, %.4f at init", r.heldout_loss, r.steps,
                  r.init_heldout_loss);
    tmp_cleanup(&t);
}
END_TEST

START_TEST(test_pretrain_vit_refusals)
{
    struct tmp t;
    char dir[160], ini[300], spec[64];
    struct exp_model em = vit_model(dir);
    struct pretrain_vit_result r;
    FILE *fp;

    tmp_setup(&t, false);
    snprintf(dir, sizeof(dir), "%s/models/bad", t.dir);
    em.pretrain_batch = 100;            /* more than the 64-item corpus */
    ck_assert_int_eq(pretrain_vit_run(&em, &quiet, &r), RL_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(rl_error_msg(), "model.pretrain_batch = 100"));
    em = vit_model(dir);
    em.preset = false;
    ck_assert_int_eq(pretrain_vit_run(&em, &quiet, &r), RL_ERR_ARG);

    /* the command: clip-tiny has no untrained mode */
    snprintf(ini, sizeof(ini), "%s/clip.ini", t.dir);
    ck_assert_ptr_nonnull(fp = fopen(ini, "w"));
    fprintf(fp, "[experiment]\nname = x\noutput = %s/out\n[model]\nname = clip-tiny\n"
            "pretrain_dir = %s/clip\npretrain_steps = 0\n[data]\ndataset = shapes\n"
            "[method]\nmethods = none\n", t.dir, t.dir);
    fclose(fp);
    snprintf(spec, sizeof(spec), "-q");
    {
        char *argv[] = { "pretrain", "-c", ini, spec, NULL };

        ck_assert_int_eq(cmd_pretrain(4, argv), 2);
    }

    /* a sweep on vit-tiny whose directory holds another pretraining (here
     * the random init, steps 0) refuses before running, naming the command */
    em = vit_model(dir);
    em.pretrain_steps = 0;
    ck_assert_int_eq(pretrain_vit_run(&em, &quiet, &r), RL_OK);
    snprintf(ini, sizeof(ini), "%s/vit.ini", t.dir);
    ck_assert_ptr_nonnull(fp = fopen(ini, "w"));
    fprintf(fp, "[experiment]\nname = x\noutput = %s/out\n[model]\nname = vit-tiny\n"
            "pretrain_dir = %s\npretrain_steps = 3\npretrain_seed = 5\nhead = linear\n"
            "[data]\ndataset = shapes\nshots = 2\n[method]\nmethods = none\n"
            "towers = vision\n", t.dir, dir);
    fclose(fp);
    {
        char *argv[] = { "sweep", "-c", ini, spec, NULL };

        ck_assert_int_eq(cmd_sweep(4, argv), 2);
        ck_assert_ptr_nonnull(strstr(rl_error_msg(), "pretrain.json of these settings"));
    }
    tmp_cleanup(&t);
}
END_TEST

Suite *suite_pretrain_vit(void)
{
    Suite *s = suite_create("pretrain_vit");
    TCase *tc = tcase_create("core");

    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_pretrain_vit_dir);
    tcase_add_test(tc, test_pretrain_vit_random);
    tcase_add_test(tc, test_pretrain_vit_learns);
    tcase_add_test(tc, test_pretrain_vit_refusals);
    suite_add_tcase(s, tc);
    return s;
}
