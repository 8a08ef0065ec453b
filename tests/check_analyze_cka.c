/*
 * check_analyze_cka.c: the activation CKA of `randlora analyze --reference`
 * (results/analyze_cka.h) on run files of small random models saved as
 * model directories: a run against itself gives 1 at every layer of both
 * towers (with the batch and row counts stored under /analysis/cka);
 * against a full fine-tuning run, values in [0, 1); against a run that
 * differs only in its text adapters, 1 in the vision tower and below 1 in
 * the text tower; a run of another model or other eval data is refused
 * (exit 2, named, nothing written) while the others of the command are
 * still analysed; without --reference or with --cka-batch 0 the values are
 * reset to NaN.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "core/status.h"
#include "experiments/config.h"
#include "methods/adapter.h"
#include "formats/safetensors.h"
#include "models/clip.h"
#include "results/run_adapters.h"
#include "results/store.h"
#include "analyze_harness.h"
#include "suites.h"
#include "test_cmd.h"
#include "test_util.h"

/* ------------------------------------------------- activation CKA (model) */

/* a CLIP with clip-tiny's byte vocabulary, 16x16 images (17 tokens), width
 * 32, 2 layers per tower (tests/check_runner.c's) */
static void cka_model(const char *dir, uint64_t seed)
{
    struct clip_config c;
    struct clip_model m;

    ck_assert_int_eq(clip_config_preset(&c, "clip-tiny"), RL_OK);
    c.vision.image_size = 16;
    c.vision.patch_size = 4;
    c.vision.hidden = 32;
    c.vision.layers = 2;
    c.vision.heads = 2;
    c.vision.intermediate = 64;
    c.text.hidden = 32;
    c.text.layers = 2;
    c.text.heads = 2;
    c.text.intermediate = 64;
    c.projection_dim = 32;
    ck_assert_int_eq(clip_model_init(&m, &c), RL_OK);
    clip_model_init_random(&m, seed);
    ck_assert_int_eq(clip_model_save(&m, dir, ST_F32), RL_OK);
    clip_model_free(&m);
}

static struct run_plan *cka_plan(const char *model, const char *method, const char *eval)
{
    char ini[1024];
    size_t n;
    struct experiment e;
    struct run_plan *plans = NULL;

    snprintf(ini, sizeof ini,
             "[experiment]\nname = cka\n[model]\nname = %s\n"
             "[data]\ndataset = shapes-count\neval = %s\nprompt = a {}\nshots = 4\n"
             "[method]\nmethods = %s\n%stowers = vision, text\nmodules = q_proj, v_proj, fc1\n"
             "[train]\nsteps = 6\n[sweep]\nseeds = 1\n",
             model, eval, method, strcmp(method, "full") ? "rank = 4\n" : "");
    ck_assert_msg(experiment_parse(&e, ini, "cka.ini", NULL, 0) == RL_OK, "%s", rl_error_msg());
    ck_assert_msg(experiment_expand(&e, NULL, NULL, &plans, &n) == RL_OK, "%s", rl_error_msg());
    experiment_free(&e);
    ck_assert_uint_eq(n, 1);
    return plans;
}

/* A finished run of `plan` on its model with random adapter parameters:
 * vision synth_sites drawn from vseed, text synth_sites from tseed, each |p| <= scale. */
static void write_model_run(const char *path, const struct run_plan *plan, uint64_t vseed, uint64_t tseed,
                            float scale)
{
    struct clip_model m;
    struct clip_adapters ca;
    struct clip_target t = { plan->targets.towers, plan->targets.layer_lo, plan->targets.layer_hi,
                             plan->targets.modules };
    struct rng rv, rt;
    char *ini = run_plan_to_ini(plan);
    int64_t idx[1] = { 0 };
    struct store *s;
    char p[512], name[256];

    ck_assert_msg(clip_model_load(&m, plan->model.name) == RL_OK, "%s", rl_error_msg());
    ck_assert_msg(clip_adapters_init(&ca, &m, &plan->adapter, &t, 1, 1, 1) == RL_OK, "%s", rl_error_msg());
    rng_init(&rv, vseed);
    rng_init(&rt, tseed);
    for (size_t i = 0; i < ca.n_sites; i++) {
        struct rng *r = ca.sites[i].tower == CLIP_TOWER_VISION ? &rv : &rt;
        for (size_t k = 0; k < ca.adapters[i].n_params; k++)
            ca.adapters[i].params[k] = scale * (2.0f * rng_uniform(r) - 1.0f);
    }
    struct store_run_info info = {
        .harness_version = "test", .git_commit = "0", .threads = "1", .blas = "openblas", .config_text = ini,
        .method = plan->method, .rank = (int64_t)plan->adapter.r, .alpha = plan->adapter.alpha,
        .profile = plan->profile, .n_trainable = ca.n_params, .data_spec = plan->dataset,
        .shots = (int64_t)plan->shots, .sampling_seed = plan->sample_seed, .train_index = idx,
        .n_train_index = 1,
    };
    ck_assert_msg(store_create(&s, path, &info) == RL_OK, "%s", rl_error_msg());
    ck_assert_int_eq(store_append_train(s, &(struct store_train_row){ 1, 1.0, 1e-3, 1.0, 0.1 }), RL_OK);
    ck_assert_int_eq(store_finish(s), RL_OK);
    for (size_t i = 0; i < ca.n_sites; i++) {
        struct adapter_tensor tv[8];
        size_t nt = adapter_tensors(&ca.adapters[i], false, tv, 8);
        clip_site_name(&ca.sites[i], name, sizeof name);
        for (size_t k = 0; k < nt; k++) {
            snprintf(p, sizeof p, "/adapter/%s/%s", name, tv[k].name);
            ck_assert_int_eq(store_write_tensor(s, p, tv[k].data, (size_t)tv[k].ndim, tv[k].shape), RL_OK);
        }
        snprintf(p, sizeof p, "/adapter/%s", name);
        ck_assert_int_eq(store_attr_set_int64(s, p, "d_out", (int64_t)ca.adapters[i].d_out), RL_OK);
        ck_assert_int_eq(store_attr_set_int64(s, p, "d_in", (int64_t)ca.adapters[i].d_in), RL_OK);
    }
    ck_assert_int_eq(store_attr_set_string(s, "/adapter", "method", plan->method), RL_OK);
    ck_assert_int_eq(store_attr_set_int64(s, "/adapter", "r", (int64_t)plan->adapter.r), RL_OK);
    ck_assert_int_eq(store_write_final(s, &(struct store_final){ .accuracy = 0.5, .loss = 1.0,
                                                       .peak_rss_bytes = 1 << 20, .images_per_s = 100.0 }), RL_OK);
    ck_assert_int_eq(store_commit(s), RL_OK);
    store_close(s);
    clip_adapters_free(&ca);
    clip_model_free(&m);
    free(ini);
}

static double read_cka(const char *path, const char *tower, size_t layer)
{
    struct store *s;
    char p[128];
    double v = -1;

    ck_assert_int_eq(store_open(&s, path), RL_OK);
    snprintf(p, sizeof p, "/analysis/cka/%s_layer_%zu", tower, layer);
    ck_assert_msg(store_read_scalar(s, p, &v) == RL_OK, "%s", rl_error_msg());
    store_close(s);
    return v;
}

START_TEST(test_cka)
{
    an_make_tmpdir();
    char model[256], model2[256];
    const char *lora = an_tmp_path("lora.h5"), *lora_t = an_tmp_path("lora_text.h5"), *full = an_tmp_path("full.h5");
    const char *other = an_tmp_path("other_model.h5"), *oeval = an_tmp_path("other_eval.h5");
    const char *out = an_tmp_path("out.txt");
    struct store *s;
    char *txt;
    int rc;

    snprintf(model, sizeof model, "%s/model", an_tmpdir);
    snprintf(model2, sizeof model2, "%s/model2", an_tmpdir);
    cka_model(model, 7);
    cka_model(model2, 8);
    struct run_plan *pl = cka_plan(model, "lora", "shapes-count:test");
    struct run_plan *pf = cka_plan(model, "full", "shapes-count:test");
    struct run_plan *po = cka_plan(model2, "lora", "shapes-count:test");
    struct run_plan *pe = cka_plan(model, "lora", "shapes:test");
    write_model_run(lora, pl, 11, 12, 0.3f);
    write_model_run(lora_t, pl, 11, 99, 0.3f);     /* only the text adapters differ */
    write_model_run(full, pf, 21, 22, 0.1f);
    write_model_run(other, po, 11, 12, 0.3f);
    write_model_run(oeval, pe, 11, 12, 0.3f);

    /* a run against itself: 1 at every layer of both towers */
    rc = an_analyze(out, lora, "--reference", lora, NULL);
    txt = test_slurp(out, NULL);
    ck_assert_msg(rc == 0 && strstr(txt, "activation CKA") && strstr(txt, "64 images x 17 tokens = 1088 rows"),
                  "%s", txt);
    free(txt);
    for (size_t l = 0; l < 2; l++) {
        ck_assert_double_eq_tol(read_cka(lora, "vision", l), 1.0, 1e-6);
        ck_assert_double_eq_tol(read_cka(lora, "text", l), 1.0, 1e-6);
    }
    int64_t n_images = 0, rows = 0;
    ck_assert_int_eq(store_open(&s, lora), RL_OK);
    ck_assert_int_eq(store_attr_get_int64(s, "/analysis/cka", "n_images", &n_images), RL_OK);
    ck_assert_int_eq(store_attr_get_int64(s, "/analysis/cka", "vision_rows", &rows), RL_OK);
    ck_assert_int_eq(n_images, 64);
    ck_assert_int_eq(rows, 64 * 17);
    ck_assert_int_eq(store_attr_get_int64(s, "/analysis/cka", "text_rows", &rows), RL_OK);
    ck_assert_int_gt(rows, 4);
    store_close(s);

    /* against the full run: in [0, 1] and below 1 everywhere (both towers
     * adapted differently); --cka-batch sets the images */
    rc = an_analyze6(out, lora, lora_t, "--reference", full, "--cka-batch", "24");
    txt = test_slurp(out, NULL);
    ck_assert_msg(rc == 0 && strstr(txt, "24 images x 17 tokens"), "%s", txt);
    free(txt);
    for (size_t l = 0; l < 2; l++)
        for (int t = 0; t < 2; t++) {
            double c = read_cka(lora, t ? "text" : "vision", l);
            ck_assert_msg(c >= 0 && c < 1 - 1e-6, "%s layer %zu: %.9f", t ? "text" : "vision", l, c);
        }

    /* against a run that differs only in its text adapters: the vision tower
     * is identical (CKA 1), the text tower is not */
    ck_assert_int_eq(an_analyze(out, lora_t, "--reference", lora, NULL), 0);
    for (size_t l = 0; l < 2; l++) {
        ck_assert_double_eq_tol(read_cka(lora_t, "vision", l), 1.0, 1e-6);
        double c = read_cka(lora_t, "text", l);
        ck_assert_msg(c >= 0 && c < 1 - 1e-6, "text layer %zu: %.9f", l, c);
    }

    /* another model, other eval data: exit 2, named, nothing written */
    rc = an_analyze(out, other, "--reference", lora, NULL);
    txt = test_slurp(out, NULL);
    ck_assert_msg(rc == 2 && strstr(txt, other) && strstr(txt, "one model"), "%s", txt);
    free(txt);
    rc = an_analyze(out, oeval, "--reference", lora, NULL);
    txt = test_slurp(out, NULL);
    ck_assert_msg(rc == 2 && strstr(txt, "eval data 'shapes:test'") && strstr(txt, "shapes-count:test"), "%s", txt);
    free(txt);
    ck_assert_int_eq(store_open(&s, other), RL_OK);
    ck_assert(!store_has(s, "/analysis"));
    store_close(s);
    ck_assert_int_eq(store_open(&s, oeval), RL_OK);
    ck_assert(!store_has(s, "/analysis"));
    store_close(s);
    /* the others of the same command are still analysed */
    rc = an_analyze(out, oeval, lora_t, "--reference", lora);
    ck_assert_int_eq(rc, 2);
    ck_assert_double_eq_tol(read_cka(lora_t, "vision", 0), 1.0, 1e-6);

    /* without --reference (or with --cka-batch 0): the CKA values are reset */
    ck_assert_int_eq(an_analyze(out, lora, NULL, NULL, NULL), 0);
    ck_assert(isnan(read_cka(lora, "vision", 0)) && isnan(read_cka(lora, "text", 1)));
    ck_assert_int_eq(an_analyze6(out, lora_t, "--reference", lora, "--cka-batch", "0", NULL), 0);
    ck_assert(isnan(read_cka(lora_t, "vision", 1)));
    ck_assert_int_eq(an_analyze6(out, lora, "--reference", lora, "--cka-batch", "-1", NULL), 2);

    run_plans_free(pl, 1);
    run_plans_free(pf, 1);
    run_plans_free(po, 1);
    run_plans_free(pe, 1);
    test_tmpdir_remove(an_tmpdir);
}
END_TEST

Suite *suite_analyze_cka(void)
{
    Suite *s = suite_create("analyze_cka");
    TCase *tc = tcase_create("cka");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_cka);
    suite_add_tcase(s, tc);
    return s;
}
