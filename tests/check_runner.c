/*
 * check_runner.c: the fine-tuning runner (experiments/runner.h), the
 * pretraining of a byte-level CLIP (experiments/pretrain.h) and the train
 * command's usage errors, on a tiny random CLIP saved to a temporary
 * directory and the procedural shapes-count data.
 */
#include <check.h>
#include <math.h>
#include <png.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/status.h"
#include "cli/commands.h"
#include "experiments/config.h"
#include "experiments/pretrain.h"
#include "experiments/runner.h"
#include "models/clip.h"
#include "formats/safetensors.h"
#include "results/store.h"
#include "suites.h"

/* a CLIP with clip-tiny's byte vocabulary, 16x16 images, width 32, 2 layers */
#include "runner_harness.h"


/* ------------------------------------------------------------------------ */

START_TEST(test_run_file_schema)
{
    struct tmp t;
    struct experiment e;
    struct run_plan *plans;
    struct runner_result res;
    struct store *s;
    struct store_final f;
    int completed = 0;
    char path[256], *cfg = NULL, *ini, *method = NULL;
    int64_t *steps, *idx, d_out = 0, r = 0;
    double *vals;
    size_t n, n_idx;

    tmp_setup(&t, true);
    make_plan(&plans, &e, &t, NULL, 0);
    snprintf(path, sizeof(path), "%s/run.h5", t.dir);
    ck_assert_msg(run_quiet(&plans[0], path, NULL, false, &res) == RL_OK, "%s", rl_error_msg());
    ck_assert(res.accuracy >= 0 && res.accuracy <= 1);
    ck_assert_uint_eq(res.steps, 6);
    ck_assert_uint_eq(res.n_train_items, 12);
    ck_assert_uint_gt(res.n_trainable, 0);
    ck_assert(res.images_per_s > 0);

    ck_assert_int_eq(store_open(&s, path), RL_OK);
    ck_assert_int_eq(store_read_config(s, &cfg), RL_OK);
    ini = run_plan_to_ini(&plans[0]);
    ck_assert_str_eq(cfg, ini);
    ck_assert_uint_eq(store_n_trainable(s), res.n_trainable);
    ck_assert_int_eq(store_read_curve(s, "train", "loss", &steps, &vals, &n), RL_OK);
    ck_assert_uint_eq(n, 6);
    ck_assert_int_eq(steps[0], 1);
    ck_assert_int_eq(steps[5], 6);
    for (size_t i = 0; i < n; i++)
        ck_assert(isfinite(vals[i]) && vals[i] > 0);
    free(steps);
    free(vals);
    ck_assert_int_eq(store_read_curve(s, "eval", "accuracy", &steps, &vals, &n), RL_OK);
    ck_assert_uint_eq(n, 2);                        /* steps 3 and 6 */
    ck_assert_int_eq(steps[0], 3);
    ck_assert_int_eq(steps[1], 6);
    ck_assert(vals[1] == res.accuracy);
    free(steps);
    free(vals);
    ck_assert_int_eq(store_read_train_index(s, &idx, &n_idx), RL_OK);
    ck_assert_uint_eq(n_idx, 12);
    free(idx);
    ck_assert_int_eq(store_read_final(s, &f, &completed), RL_OK);
    ck_assert_int_eq(completed, 1);
    ck_assert(f.accuracy == res.accuracy && f.peak_rss_bytes > 0 && f.images_per_s > 0);
    ck_assert(store_has(s, "/adapter/vision_model.encoder.layers.0.self_attn.q_proj/lora_A.weight"));
    ck_assert(store_has(s, "/adapter/text_model.encoder.layers.1.mlp.fc1/lora_B.weight"));
    ck_assert_int_eq(store_attr_get_int64(s, "/adapter/text_model.encoder.layers.1.mlp.fc1",
                                          "d_out", &d_out), RL_OK);
    ck_assert_int_eq(d_out, 64);
    ck_assert_int_eq(store_attr_get_string(s, "/adapter", "method", &method), RL_OK);
    ck_assert_str_eq(method, "lora");
    ck_assert_int_eq(store_attr_get_int64(s, "/adapter", "r", &r), RL_OK);
    ck_assert_int_eq(r, 4);
    ck_assert(!store_has(s, "/adapter/shared"));
    store_close(s);
    free(method);
    free(cfg);
    free(ini);
    run_plans_free(plans, 1);
    experiment_free(&e);
    tmp_cleanup(&t);
}
END_TEST

/* VeRA stores its shared A/B under /adapter/shared */
START_TEST(test_run_shared_tensors)
{
    static const char *const ov[] = { "method.methods=vera", "method.rank=16", "train.steps=2" };
    struct tmp t;
    struct experiment e;
    struct run_plan *plans;
    struct runner_result res;
    struct store *s;
    char path[256];
    int64_t nfs = 0;

    tmp_setup(&t, true);
    make_plan(&plans, &e, &t, ov, 3);
    snprintf(path, sizeof(path), "%s/vera.h5", t.dir);
    ck_assert_msg(run_quiet(&plans[0], path, NULL, false, &res) == RL_OK, "%s", rl_error_msg());
    ck_assert_uint_gt(res.n_frozen_shared, 0);
    ck_assert_int_eq(store_open(&s, path), RL_OK);
    ck_assert(store_has(s, "/adapter/shared/vera_A"));
    ck_assert(store_has(s, "/adapter/shared/vera_B"));
    ck_assert(store_has(s, "/adapter/vision_model.encoder.layers.1.self_attn.v_proj/vera_lambda_b"));
    ck_assert_int_eq(store_attr_get_int64(s, "/method", "n_frozen_shared", &nfs), RL_OK);
    ck_assert_int_eq(nfs, (int64_t)res.n_frozen_shared);
    store_close(s);
    run_plans_free(plans, 1);
    experiment_free(&e);
    tmp_cleanup(&t);
}
END_TEST

START_TEST(test_loss_falls)
{
    static const char *const ov[] = { "train.steps=30", "train.eval_every=0",
                                      "train.checkpoint_every=0" };
    struct tmp t;
    struct experiment e;
    struct run_plan *plans;
    struct runner_result res;
    struct store *s;
    char path[256];
    int64_t *steps;
    double *loss, first, last;
    size_t n;

    tmp_setup(&t, true);
    make_plan(&plans, &e, &t, ov, 3);
    snprintf(path, sizeof(path), "%s/fall.h5", t.dir);
    ck_assert_msg(run_quiet(&plans[0], path, NULL, false, &res) == RL_OK, "%s", rl_error_msg());
    ck_assert_int_eq(store_open(&s, path), RL_OK);
    ck_assert_int_eq(store_read_curve(s, "train", "loss", &steps, &loss, &n), RL_OK);
    ck_assert_uint_eq(n, 30);
    first = (loss[0] + loss[1] + loss[2]) / 3;
    last = (loss[27] + loss[28] + loss[29]) / 3;
    ck_assert_msg(last < 0.7 * first, "loss %.4f -> %.4f", first, last);
    free(steps);
    free(loss);
    store_close(s);
    run_plans_free(plans, 1);
    experiment_free(&e);
    tmp_cleanup(&t);
}
END_TEST


/* a run killed after step 7 (checkpoint at 6) and resumed ends with the
 * adapter of an uninterrupted run, bit for bit; RandLoRA with dropout and
 * augmentation, so the dropout streams and the data order must be restored */
START_TEST(test_resume_exact)
{
    static const char *const ov[] = { "method.methods=randlora", "method.rank=8",
                                      "method.dropout=0.1", "data.augment=crop_flip",
                                      "train.steps=10", "train.batch=8", "train.accumulate=2",
                                      "train.warmup=2" };
    struct tmp t;
    struct experiment e;
    struct run_plan *plans;
    struct runner_result res;
    char a[256], b[256];
    float *pa, *pb;
    size_t na, n;
    struct store *s;
    int64_t *steps;
    double *vals;

    tmp_setup(&t, true);
    make_plan(&plans, &e, &t, ov, 8);
    interrupted_and_straight(&plans[0], &t, a, b, &pa, &pb, &na, &res);
    ck_assert_uint_gt(na, res.n_trainable);        /* + the shared bases */
    ck_assert_msg(memcmp(pa, pb, na * sizeof(float)) == 0, "resumed adapter differs");
    free(pa);
    free(pb);

    /* the curves of the resumed file are whole: steps 1..10 once each */
    ck_assert_int_eq(store_open(&s, a), RL_OK);
    ck_assert_int_eq(store_read_curve(s, "train", "loss", &steps, &vals, &n), RL_OK);
    ck_assert_uint_eq(n, 10);
    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(steps[i], (int64_t)i + 1);
    free(steps);
    free(vals);
    store_close(s);

    /* resuming a finished run does nothing and says so */
    ck_assert_int_eq(run_quiet(&plans[0], a, NULL, true, &res), RL_OK);
    ck_assert(res.already_complete);
    run_plans_free(plans, 1);
    experiment_free(&e);
    tmp_cleanup(&t);
}
END_TEST

START_TEST(test_none_eval_only)
{
    static const char *const ov[] = { "method.methods=none" };
    struct tmp t;
    struct experiment e;
    struct run_plan *plans;
    struct runner_result res;
    struct store *s;
    char path[256];
    size_t tr = 9, er = 9;

    tmp_setup(&t, true);
    make_plan(&plans, &e, &t, ov, 1);
    snprintf(path, sizeof(path), "%s/none.h5", t.dir);
    ck_assert_msg(run_quiet(&plans[0], path, NULL, false, &res) == RL_OK, "%s", rl_error_msg());
    ck_assert_uint_eq(res.n_trainable, 0);
    ck_assert_uint_eq(res.steps, 0);
    ck_assert(res.accuracy >= 0 && res.accuracy <= 1);
    ck_assert_int_eq(store_open(&s, path), RL_OK);
    ck_assert_int_eq(store_rows(s, &tr, &er), RL_OK);
    ck_assert_uint_eq(tr, 0);
    ck_assert_uint_eq(er, 1);
    ck_assert(!store_has(s, "/adapter"));
    store_close(s);
    run_plans_free(plans, 1);
    experiment_free(&e);
    tmp_cleanup(&t);
}
END_TEST

struct grab {
    float *g;
    size_t n;
};

static void grab_grads(void *ctx, size_t step, const float *g, size_t n)
{
    struct grab *gr = ctx;

    if (step != 1)
        return;
    gr->g = malloc(n * sizeof(float));
    memcpy(gr->g, g, n * sizeof(float));
    gr->n = n;
}

/* 2 micro-batches of 6 = one batch of 12 (the same 12 items) */
START_TEST(test_accumulation)
{
    static const char *const ov_a[] = { "train.steps=1", "train.batch=6", "train.accumulate=2",
                                        "train.eval_every=0", "train.checkpoint_every=0" };
    static const char *const ov_b[] = { "train.steps=1", "train.batch=12",
                                        "train.eval_every=0", "train.checkpoint_every=0" };
    struct grab ga = { 0 }, gb = { 0 };
    struct runner_hooks ha = { .ctx = &ga, .on_grads = grab_grads };
    struct runner_hooks hb = { .ctx = &gb, .on_grads = grab_grads };
    struct tmp t;
    struct experiment ea, eb;
    struct run_plan *pa, *pb;
    struct runner_result ra, rb;
    char a[256], b[256];
    double maxg = 0, maxd = 0;

    tmp_setup(&t, true);
    make_plan(&pa, &ea, &t, ov_a, 5);
    make_plan(&pb, &eb, &t, ov_b, 4);
    snprintf(a, sizeof(a), "%s/acc.h5", t.dir);
    snprintf(b, sizeof(b), "%s/big.h5", t.dir);
    ck_assert_msg(run_quiet(&pa[0], a, &ha, false, &ra) == RL_OK, "%s", rl_error_msg());
    ck_assert_msg(run_quiet(&pb[0], b, &hb, false, &rb) == RL_OK, "%s", rl_error_msg());
    ck_assert_uint_eq(ga.n, gb.n);
    ck_assert_uint_gt(ga.n, 0);
    for (size_t i = 0; i < ga.n; i++) {
        double d = fabs((double)ga.g[i] - (double)gb.g[i]);

        maxg = fmax(maxg, fabs((double)gb.g[i]));
        maxd = fmax(maxd, d);
    }
    ck_assert(maxg > 0);
    ck_assert_msg(maxd <= 1e-5 * maxg, "max |diff| %g, max |g| %g", maxd, maxg);
    free(ga.g);
    free(gb.g);
    run_plans_free(pa, 1);
    run_plans_free(pb, 1);
    experiment_free(&ea);
    experiment_free(&eb);
    tmp_cleanup(&t);
}
END_TEST

static void nan_at_3(void *ctx, size_t step, size_t micro, double *loss)
{
    (void)ctx;
    if (step == 3 && micro == 0)
        *loss = NAN;
}

START_TEST(test_nonfinite_stops)
{
    struct runner_hooks h = { .on_loss = nan_at_3 };
    struct tmp t;
    struct experiment e;
    struct run_plan *plans;
    struct runner_result res;
    struct store *s;
    struct store_final f;
    char path[256], *why = NULL;
    int completed = 1;
    int64_t at = 0, *steps;
    double *loss;
    size_t n;

    tmp_setup(&t, true);
    make_plan(&plans, &e, &t, NULL, 0);
    snprintf(path, sizeof(path), "%s/nan.h5", t.dir);
    ck_assert_int_eq(run_quiet(&plans[0], path, &h, false, &res), RL_ERR);
    ck_assert_ptr_nonnull(strstr(rl_error_msg(), "non-finite loss"));
    ck_assert(res.stopped);
    ck_assert_int_eq(store_open(&s, path), RL_OK);
    ck_assert_int_eq(store_attr_get_string(s, "/", "stopped", &why), RL_OK);
    ck_assert_ptr_nonnull(strstr(why, "non-finite loss (nan) at step 3"));
    ck_assert_int_eq(store_attr_get_int64(s, "/", "stopped_step", &at), RL_OK);
    ck_assert_int_eq(at, 3);
    ck_assert_int_eq(store_read_final(s, &f, &completed), RL_OK);
    ck_assert_int_eq(completed, 0);
    ck_assert_int_eq(store_read_curve(s, "train", "loss", &steps, &loss, &n), RL_OK);
    ck_assert_uint_eq(n, 3);
    ck_assert(isnan(loss[2]));
    free(steps);
    free(loss);
    free(why);
    store_close(s);
    run_plans_free(plans, 1);
    experiment_free(&e);
    tmp_cleanup(&t);
}
END_TEST

START_TEST(test_pretrain_dir)
{
    struct tmp t;
    struct clip_config c;
    struct clip_model m;
    struct tokenizer *tok = NULL;
    char dir[160];
    struct exp_model model = { .name = "clip-tiny", .preset = true, .pretrain_dir = dir,
                               .pretrain_data = "shapes", .pretrain_corpus = 64,
                               .pretrain_steps = 3, .pretrain_batch = 8, .pretrain_lr = 1e-3,
                               .pretrain_weight_decay = 0.1, .pretrain_warmup = 1,
                               .pretrain_seed = 5 };
    struct pretrain_options o = { .cfg = &c, .verbosity = 0, .eval_items = 32 };
    struct pretrain_result r;
    double acc = -1;
    static const char *const tmpl[] = { "{}" };

    tmp_setup(&t, false);
    runner_tiny_config(&c);
    snprintf(dir, sizeof(dir), "%s/pre/tiny", t.dir);

    /* the runner refuses a preset that was not pretrained, naming the command */
    ck_assert_int_eq(runner_load_model(&m, &model), RL_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(rl_error_msg(), "randlora pretrain"));

    ck_assert_msg(pretrain_run(&model, &o, &r) == RL_OK, "%s", rl_error_msg());
    ck_assert(!r.skipped);
    ck_assert_uint_eq(r.steps, 3);
    ck_assert(isfinite(r.final_loss) && r.retrieval_acc >= 0 && r.retrieval_acc <= 1);
    ck_assert_int_eq(clip_model_load(&m, dir), RL_OK);
    ck_assert_uint_eq(m.cfg.vision.hidden, 32);
    ck_assert_int_eq(runner_load_tokenizer(&tok, dir, &m.cfg), RL_OK);
    ck_assert_int_eq(tok_kind(tok), TOK_BYTES);
    ck_assert_int_eq(tok_eot(tok), 257);
    ck_assert_int_eq(pretrain_zeroshot(&m, tok, "shapes-count:test", tmpl, 1, 20, &acc), RL_OK);
    ck_assert(acc >= 0 && acc <= 1);
    tok_free(tok);
    clip_model_free(&m);

    /* a second call finds it; other settings train again */
    ck_assert_int_eq(pretrain_run(&model, &o, &r), RL_OK);
    ck_assert(r.skipped);
    model.pretrain_steps = 2;
    ck_assert_int_eq(pretrain_run(&model, &o, &r), RL_OK);
    ck_assert(!r.skipped);
    ck_assert_uint_eq(r.steps, 2);
    tmp_cleanup(&t);
}
END_TEST

/* 8-bit RGB PNG of h x w, a gradient coloured by the class */
static void write_png(const char *path, int h, int w, int cls, int seed)
{
    FILE *f = fopen(path, "wb");
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    uint8_t row[3 * 64];

    ck_assert_ptr_nonnull(f);
    ck_assert(png && info && w <= 64);
    ck_assert_int_eq(setjmp(png_jmpbuf(png)), 0);
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++)
                row[x * 3 + c] = (uint8_t)(c == cls ? 200 + (x + y + seed) % 50 : (x * y) % 40);
        png_write_row(png, row);
    }
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    fclose(f);
}

/* a class-per-folder dataset (streaming reader, read-ahead thread) with a
 * templates.txt: evaluation ensembles the dataset's 2 templates per class;
 * adapters on the vision tower only (text features computed once) */
START_TEST(test_folder_templates)
{
    static const char *const cls[3] = { "red", "green", "blue" };
    static const char *const ov[] = { "data.dataset=folder:PLACEHOLDER", "data.eval=",
                                      "data.templates=dataset", "method.towers=vision",
                                      "train.steps=4", "train.batch=4", "data.shots=2" };
    struct tmp t;
    struct experiment e;
    struct run_plan *plans;
    struct runner_result res;
    char path[512], ds_ov[256], ev_ov[256];
    const char *o[7];
    FILE *fp;

    tmp_setup(&t, true);
    for (int split = 0; split < 2; split++) {
        snprintf(path, sizeof(path), "%s/img", t.dir);
        mkdir(path, 0755);
        snprintf(path, sizeof(path), "%s/img/%s", t.dir, split ? "test" : "train");
        mkdir(path, 0755);
        for (int c = 0; c < 3; c++) {
            snprintf(path, sizeof(path), "%s/img/%s/%s", t.dir, split ? "test" : "train", cls[c]);
            mkdir(path, 0755);
            for (int i = 0; i < 3; i++) {
                snprintf(path, sizeof(path), "%s/img/%s/%s/%d.png", t.dir,
                         split ? "test" : "train", cls[c], i);
                write_png(path, 20 + i, 24 - i, c, i + 7 * split);
            }
        }
    }
    snprintf(path, sizeof(path), "%s/img/templates.txt", t.dir);
    fp = fopen(path, "w");
    ck_assert_ptr_nonnull(fp);
    fputs("a photo of a {}.\na {} picture\n", fp);
    fclose(fp);
    snprintf(ds_ov, sizeof(ds_ov), "data.dataset=folder:%s/img", t.dir);
    snprintf(ev_ov, sizeof(ev_ov), "data.eval=folder:%s/img:test", t.dir);
    memcpy(o, ov, sizeof(o));
    o[0] = ds_ov;
    o[1] = ev_ov;
    make_plan(&plans, &e, &t, o, 7);
    ck_assert_int_eq(plans[0].templates, EXP_TEMPLATES_DATASET);
    snprintf(path, sizeof(path), "%s/folder.h5", t.dir);
    ck_assert_msg(run_quiet(&plans[0], path, NULL, false, &res) == RL_OK, "%s", rl_error_msg());
    ck_assert_uint_eq(res.n_train_items, 6);
    ck_assert(res.accuracy >= 0 && res.accuracy <= 1 && isfinite(res.loss));
    run_plans_free(plans, 1);
    experiment_free(&e);
    tmp_cleanup(&t);
}
END_TEST

/* bad usage and bad input: one line, exit 2 */
/* ------------------------------------------------------------------------ */
/* the per-layer path (models/clip.h): RANDLORA_ADAPTER_PATH forces one       */

/* the final adapter of a run on the tiny model with the path forced by
 * RANDLORA_ADAPTER_PATH = mode (NULL: unset, i.e. auto) */
static float *path_run(const struct tmp *t, const char *method, const char *mode, size_t *n)
{
    char m_ov[64], path[256];
    const char *ov[] = { m_ov, "method.rank=4", "train.accumulate=2", "train.batch=6",
                         "train.eval_every=3", "train.checkpoint_every=0" };
    struct experiment e;
    struct run_plan *plans;
    struct runner_result res;
    float *a;

    snprintf(m_ov, sizeof(m_ov), "method.methods=%s", method);
    if (mode)
        ck_assert_int_eq(setenv("RANDLORA_ADAPTER_PATH", mode, 1), 0);
    else
        unsetenv("RANDLORA_ADAPTER_PATH");
    make_plan(&plans, &e, t, ov, 6);
    snprintf(path, sizeof(path), "%s/%s-%s.h5", t->dir, method, mode ? mode : "auto");
    ck_assert_msg(run_quiet(&plans[0], path, NULL, false, &res) == RL_OK, "%s", rl_error_msg());
    unsetenv("RANDLORA_ADAPTER_PATH");
    a = read_adapter(path, n);
    run_plans_free(plans, 1);
    experiment_free(&e);
    return a;
}

/* auto and merged-everywhere train the same adapter as factored-everywhere
 * up to fp32 round-off carried through 6 AdamW steps (accumulation 2,
 * evaluations merged too): max |diff| <= 1e-4 max |adapter| */
START_TEST(test_paths_same_training)
{
    static const char *const methods[] = { "lora", "vera", "randlora", "full", "nola" };
    const char *method = methods[_i];
    struct tmp t;
    float *f, *x;
    size_t nf, nx;

    tmp_setup(&t, true);
    f = path_run(&t, method, "factored", &nf);
    for (int k = 0; k < 2; k++) {
        const char *mode = k ? "merged" : NULL;
        double d = 0.0, scale = 0.0;

        x = path_run(&t, method, mode, &nx);
        ck_assert_uint_eq(nx, nf);
        for (size_t i = 0; i < nf; i++) {
            double v = fabs((double)x[i] - (double)f[i]);

            if (v > d)
                d = v;
            if (fabs((double)f[i]) > scale)
                scale = fabs((double)f[i]);
        }
        if (getenv("RUNNER_VERBOSE"))
            fprintf(stderr, "  %s %s vs factored: max |diff| %.3g, max |adapter| %.3g\n",
                    method, mode ? mode : "auto", d, scale);
        ck_assert_msg(d <= 1e-4 * scale, "%s %s: adapter differs by %.3g (max %.3g)", method,
                      mode ? mode : "auto", d, scale);
        free(x);
    }
    free(f);
    tmp_cleanup(&t);
}
END_TEST

/* resume under the merged path: rebasing the merged weights from the model
 * file at every checkpoint keeps a resumed run bit-identical */
START_TEST(test_paths_resume_exact)
{
    static const char *const ov[] = { "method.methods=randlora", "method.rank=8",
                                      "data.augment=crop_flip", "train.steps=10",
                                      "train.batch=8", "train.accumulate=2", "train.warmup=2" };
    struct tmp t;
    struct experiment e;
    struct run_plan *plans;
    struct runner_result res;
    char a[256], b[256];
    float *pa, *pb;
    size_t na;

    ck_assert_int_eq(setenv("RANDLORA_ADAPTER_PATH", "merged", 1), 0);
    tmp_setup(&t, true);
    make_plan(&plans, &e, &t, ov, 7);
    interrupted_and_straight(&plans[0], &t, a, b, &pa, &pb, &na, &res);
    ck_assert_msg(memcmp(pa, pb, na * sizeof(float)) == 0, "resumed adapter differs");
    free(pa);
    free(pb);
    unsetenv("RANDLORA_ADAPTER_PATH");
    run_plans_free(plans, 1);
    experiment_free(&e);
    tmp_cleanup(&t);
}
END_TEST

/* train.recompute: the same run, bit for bit (adapter, accuracy, loss),
 * with branch dropout drawing masks and the merged path where it applies;
 * the key is written into the run file only when set */
START_TEST(test_recompute_same_training)
{
    static const char *const methods[] = { "lora", "randlora" };
    struct tmp t;
    float *adapter[2];
    size_t n[2];
    double acc[2], loss[2];
    size_t act[2];

    tmp_setup(&t, true);
    for (int k = 0; k < 2; k++) {
        char m_ov[64], path[256];
        const char *ov[] = { m_ov, _i ? "method.dropout=0" : "method.dropout=0.1",
                             "train.accumulate=2",
                             "train.batch=6", "train.checkpoint_every=0",
                             k ? "train.recompute=true" : "train.recompute=false" };
        struct experiment e;
        struct run_plan *plans;
        struct runner_result res;
        struct store *st;
        char *ini = NULL;

        snprintf(m_ov, sizeof(m_ov), "method.methods=%s", methods[_i]);
        make_plan(&plans, &e, &t, ov, 6);
        snprintf(path, sizeof(path), "%s/%s-%d.h5", t.dir, methods[_i], k);
        ck_assert_msg(run_quiet(&plans[0], path, NULL, false, &res) == RL_OK, "%s",
                      rl_error_msg());
        acc[k] = res.accuracy;
        loss[k] = res.loss;
        act[k] = res.activation_bytes;
        adapter[k] = read_adapter(path, &n[k]);
        ck_assert_int_eq(store_open(&st, path), RL_OK);
        ck_assert_int_eq(store_read_config(st, &ini), RL_OK);
        ck_assert_int_eq(strstr(ini, "recompute = true") != NULL, k);
        ck_assert_ptr_null(strstr(ini, "recompute = false"));
        free(ini);
        store_close(st);
        run_plans_free(plans, 1);
        experiment_free(&e);
    }
    ck_assert_uint_eq(n[0], n[1]);
    ck_assert_msg(memcmp(adapter[0], adapter[1], n[0] * sizeof(float)) == 0,
                  "%s: the recomputing run trained another adapter", methods[_i]);
    ck_assert(memcmp(&acc[0], &acc[1], sizeof(double)) == 0);
    ck_assert(memcmp(&loss[0], &loss[1], sizeof(double)) == 0);
    /* and it did recompute: of 3 layers per tower one layer's activations
     * fewer are kept */
    ck_assert_uint_lt(act[1], act[0]);
    free(adapter[0]);
    free(adapter[1]);
    tmp_cleanup(&t);
}
END_TEST

START_TEST(test_cmd_train_usage)
{
    struct tmp t;
    char ini[160];
    FILE *fp;
    char *no_c[] = { "train", NULL };
    char *unknown[] = { "train", "--bogus", NULL };
    char *several[] = { "train", "-q", "-c", ini, NULL };
    char *no_run[] = { "train", "-q", "-c", ini, "--run", "nope", NULL };
    char *bad_key[] = { "train", "-q", "-c", ini, "-s", "train.nope=1", NULL };

    tmp_setup(&t, true);
    snprintf(ini, sizeof(ini), "%s/x.ini", t.dir);
    fp = fopen(ini, "w");
    ck_assert_ptr_nonnull(fp);
    fprintf(fp, "[model]\nname = %s/model\n[data]\ndataset = shapes-count\nshots = 1, 2\n", t.dir);
    fclose(fp);
    ck_assert_int_eq(cmd_train(1, no_c), 2);
    ck_assert_int_eq(cmd_train(2, unknown), 2);
    ck_assert_int_eq(cmd_train(4, several), 2);
    ck_assert_int_eq(cmd_train(6, no_run), 2);
    ck_assert_int_eq(cmd_train(6, bad_key), 2);
    tmp_cleanup(&t);
}
END_TEST

Suite *suite_runner(void)
{
    Suite *s = suite_create("runner");
    TCase *tc = tcase_create("runner");

    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_run_file_schema);
    tcase_add_test(tc, test_run_shared_tensors);
    tcase_add_test(tc, test_loss_falls);
    tcase_add_test(tc, test_resume_exact);
    tcase_add_test(tc, test_none_eval_only);
    tcase_add_test(tc, test_accumulation);
    tcase_add_test(tc, test_nonfinite_stops);
    tcase_add_test(tc, test_pretrain_dir);
    tcase_add_test(tc, test_folder_templates);
    tcase_add_test(tc, test_cmd_train_usage);
    tcase_add_loop_test(tc, test_paths_same_training, 0, 5);
    tcase_add_test(tc, test_paths_resume_exact);
    tcase_add_loop_test(tc, test_recompute_same_training, 0, 2);
    suite_add_tcase(s, tc);
    return s;
}
