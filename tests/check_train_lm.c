/*
 * check_train_lm.c: decoder runs (experiments/train_lm.c) on a tiny random
 * Llama (width 32, 2 layers, llama-tiny's byte vocabulary and tokenizer)
 * and the procedural commonsense task:
 *   - every method (lora, vera, randlora, nola, full, none) trains,
 *     evaluates by generation and commits: per-task counts and generations
 *     under /lm, /final/accuracy the mean of the tasks' accuracies, the
 *     adapter under the decoder's module paths;
 *   - an interrupted (SIGINT) and resumed run (dropout on, evaluations and
 *     checkpoints every 3 steps) ends with the adapter of the uninterrupted
 *     one, bit for bit; so does one killed in a forked child on one thread
 *     and resumed on three, with the same loss at every step;
 *   - data.lm_loss changes the loss (response only vs every token), and a
 *     cutoff that removes every loss span is refused;
 *   - refusals: commonsense data on a CLIP model, data.shots;
 *   - score --run (the run's adapters attached) equals score on the merged
 *     weights and differs from the base model;
 *   - randlora export writes peft's keys
 *     base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight.
 */
#define _GNU_SOURCE
#include <hdf5.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "core/interrupt.h"
#include "core/threads.h"
#include "core/status.h"
#include "datasets/commonsense_synth.h"
#include "experiments/config.h"
#include "experiments/lm_model.h"
#include "experiments/runner.h"
#include "formats/safetensors.h"
#include "models/llama.h"
#include "results/store.h"
#include "runner_harness.h"
#include "suites.h"
#include "test_cmd.h"
#include "test_h5.h"
#include "test_util.h"

static struct tmp t;

/* t.model: the tiny decoder with its tokenizer.json; t.dir/data: the task */
static void setup(void)
{
    struct llama_config c;
    struct llama_model m;
    char path[256], data[160];

    tmp_setup(&t, false);
    ck_assert_int_eq(llama_config_preset(&c, "llama-tiny"), RL_OK);
    c.hidden = 32;
    c.intermediate = 64;
    c.layers = 2;
    c.head_dim = 8;
    ck_assert_int_eq(llama_model_init(&m, &c), RL_OK);
    llama_model_init_random(&m, 11);
    ck_assert_int_eq(llama_model_save(&m, t.model, ST_F32, 1), RL_OK);
    llama_model_free(&m);
    snprintf(path, sizeof(path), "%s/tokenizer.json", t.model);
    ck_assert_int_eq(lm_write_byte_tokenizer(path, 256, 257), RL_OK);
    snprintf(data, sizeof(data), "%s/data", t.dir);
    ck_assert_int_eq(cs_synth_write(data, 3, 40, 4), RL_OK);
}

static void teardown(void)
{
    tmp_cleanup(&t);
}

/* the one plan of the decoder experiment with overrides */
static void lm_plan(struct run_plan **plans, struct experiment *e, const char *const *ov,
                    size_t n_ov)
{
    char text[2048];
    size_t n = 0;

    snprintf(text, sizeof(text),
             "[experiment]\nname = lm\noutput = %s\n"
             "[model]\nname = %s\n"
             "[data]\ndataset = commonsense:%s/data\ncutoff = 480\nmax_new_tokens = 6\n"
             "eval_limit = 3\nval = 4\n"
             "[method]\nmethods = lora\nrank = 2\ndropout = 0.1\n"
             "[train]\nsteps = 8\nbatch = 2\nlr = 1e-2\neval_every = 3\n"
             "checkpoint_every = 3\nwarmup = 2\n",
             t.dir, t.model, t.dir);
    ck_assert_msg(experiment_parse(e, text, "lm.ini", ov, n_ov) == RL_OK, "%s", rl_error_msg());
    struct runner_shapes sh = { 0 };

    ck_assert_msg(experiment_expand(e, runner_plan_shapes, &sh, plans, &n) == RL_OK, "%s",
                  rl_error_msg());
    runner_shapes_free(&sh);
    ck_assert_uint_eq(n, 1);
}

static double read_scalar(struct store *st, const char *path)
{
    double v = NAN;

    ck_assert_msg(store_read_scalar(st, path, &v) == RL_OK, "%s: %s", path, rl_error_msg());
    return v;
}

/* the strings of a 1-D string dataset: their count, each non-NULL */
static size_t count_strings(const char *file, const char *name)
{
    hid_t f = H5Fopen(file, H5F_ACC_RDONLY, H5P_DEFAULT), d, sp, ty;
    hsize_t dims[1] = { 0 };
    char **v;

    ck_assert_int_ge(f, 0);
    d = H5Dopen2(f, name, H5P_DEFAULT);
    ck_assert_int_ge(d, 0);
    sp = H5Dget_space(d);
    H5Sget_simple_extent_dims(sp, dims, NULL);
    ty = H5Dget_type(d);
    ck_assert(H5Tis_variable_str(ty) > 0);
    v = calloc(dims[0] + 1, sizeof(char *));
    ck_assert_int_ge(H5Dread(d, ty, H5S_ALL, H5S_ALL, H5P_DEFAULT, v), 0);
    for (hsize_t i = 0; i < dims[0]; i++)
        ck_assert_ptr_nonnull(v[i]);
    H5Dvlen_reclaim(ty, sp, H5P_DEFAULT, v);
    free(v);
    H5Tclose(ty);
    H5Sclose(sp);
    H5Dclose(d);
    H5Fclose(f);
    return (size_t)dims[0];
}

static const char *const methods[] = { "lora", "vera", "randlora", "nola", "full", "none" };

START_TEST(test_lm_methods)
{
    char ov[64], out[256], path[256];
    const char *o[2] = { ov, "method.rank.vera=8" };
    struct run_plan *plans = NULL;
    struct experiment e;
    struct runner_result res;
    struct store *st;
    double mean = 0.0;

    snprintf(ov, sizeof(ov), "method.methods=%s", methods[_i]);
    lm_plan(&plans, &e, o, 2);
    snprintf(out, sizeof(out), "%s/%s.h5", t.dir, methods[_i]);
    ck_assert_msg(run_quiet(&plans[0], out, NULL, false, &res) == RL_OK, "%s: %s", methods[_i],
                  rl_error_msg());
    ck_assert(isfinite(res.accuracy) && isfinite(res.val_accuracy) && isfinite(res.loss));
    ck_assert_uint_eq(res.n_val_items, 4);
    ck_assert_uint_eq(res.n_train_items, 36);
    ck_assert_uint_eq(res.steps, _i == 5 ? 0 : 8);
    ck_assert_int_eq(store_open(&st, out), RL_OK);
    for (size_t k = 0; k < CS_SYNTH_N_TASKS; k++) {
        int64_t total = 0, correct = -1;

        snprintf(path, sizeof(path), "/lm/%s/total", CS_SYNTH_TASKS[k]);
        ck_assert_int_eq(store_read_scalar_i64(st, path, &total), RL_OK);
        ck_assert_int_eq(total, 3);
        snprintf(path, sizeof(path), "/lm/%s/correct", CS_SYNTH_TASKS[k]);
        ck_assert_int_eq(store_read_scalar_i64(st, path, &correct), RL_OK);
        snprintf(path, sizeof(path), "/lm/%s/accuracy", CS_SYNTH_TASKS[k]);
        ck_assert_double_eq(read_scalar(st, path), (double)correct / 3.0);
        mean += (double)correct / 3.0;
    }
    ck_assert_double_eq_tol(read_scalar(st, "/final/accuracy"), mean / CS_SYNTH_N_TASKS, 1e-12);
    if (_i < 5) {
        float *a = NULL;
        size_t nd, dims[STORE_MAX_DIMS];
        const char *want = _i == 0 ? "lora_A.weight" : _i == 4 ? "weight_delta" : NULL;

        if (want) {
            snprintf(path, sizeof(path), "/adapter/model.layers.1.mlp.down_proj/%s", want);
            ck_assert_msg(store_read_tensor(st, path, &a, &nd, dims) == RL_OK, "%s",
                          rl_error_msg());
            free(a);
        }
        ck_assert_uint_gt(res.n_trainable, 0);
    } else {
        ck_assert_uint_eq(res.n_trainable, 0);
    }
    store_close(st);
    snprintf(path, sizeof(path), "/lm/%s/generations", CS_SYNTH_TASKS[0]);
    ck_assert_uint_eq(count_strings(out, path), 3);
    run_plans_free(plans, 1);
    experiment_free(&e);
}
END_TEST

/* on_step: a SIGINT to this process after step *(size_t *)ctx */
static void interrupt_at_step(void *ctx, size_t step)
{
    if (step == *(const size_t *)ctx)
        raise(SIGINT);
}

/* interrupted (SIGINT) after step 7, resumed from the checkpoint at 6, in
 * this process: the same adapter as the run straight through */
START_TEST(test_lm_resume)
{
    struct run_plan *plans = NULL;
    struct experiment e;
    struct runner_result res;
    size_t stop = 7, n, nb;
    struct runner_hooks h = { .ctx = &stop, .on_step = interrupt_at_step };
    char a[256], b[256];
    float *pa, *pb;

    lm_plan(&plans, &e, NULL, 0);
    snprintf(a, sizeof(a), "%s/interrupted.h5", t.dir);
    snprintf(b, sizeof(b), "%s/straight.h5", t.dir);
    interrupt_install();
    ck_assert_int_eq(run_quiet(&plans[0], a, &h, false, &res), RL_ERR_INTERRUPTED);
    interrupt_clear();
    interrupt_restore();
    ck_assert_msg(run_quiet(&plans[0], a, NULL, true, &res) == RL_OK, "%s", rl_error_msg());
    ck_assert_uint_eq(res.resumed_from, 6);
    ck_assert_msg(run_quiet(&plans[0], b, NULL, false, &res) == RL_OK, "%s", rl_error_msg());
    pa = read_adapter(a, &n);
    pb = read_adapter(b, &nb);
    ck_assert_uint_eq(n, nb);
    ck_assert_uint_gt(n, 0);
    ck_assert_int_eq(memcmp(pa, pb, n * sizeof(float)), 0);
    free(pa);
    free(pb);
    run_plans_free(plans, 1);
    experiment_free(&e);
}
END_TEST

/* the /train/loss curve of a run file (caller frees) */
static double *read_loss_curve(const char *path, size_t *n)
{
    struct store *st;
    double *v = NULL;

    ck_assert_int_eq(store_open(&st, path), RL_OK);
    ck_assert_int_eq(store_read_curve(st, "train", "loss", NULL, &v, n), RL_OK);
    store_close(st);
    return v;
}

/* killed after step 7 in a forked child on one thread (as the CLIP suites'
 * runs, runner_harness.c), resumed from the checkpoint at 6 here on three
 * threads, beside the run straight through on three: the same loss at
 * every step and the same adapter, bit for bit. A sweep's run is such a
 * child, on cores/jobs threads, and `randlora train --resume` continues it
 * on every core. This failed while OpenBLAS's serial and threaded drivers
 * summed K > 448 (the weight gradients' tokens) in different blocks
 * (core/gemm_f32.h), OpenMP reductions added the loss's rows per thread
 * (core/parallel.h) and NoLA mixed its bases through a threaded gemv
 * (methods/nola.c). LoRA, and NoLA for its own sums. */
static const char *const resume_methods[] = { "method.methods=lora", "method.methods=nola" };

START_TEST(test_lm_resume_other_threads)
{
    struct run_plan *plans = NULL;
    struct experiment e;
    struct runner_result res;
    struct thread_policy before = threads_current();
    char a[256], b[256];
    float *pa, *pb;
    double *la, *lb;
    size_t n, na, nb;

    lm_plan(&plans, &e, &resume_methods[_i], 1);
    threads_init(3);
    interrupted_and_straight(&plans[0], &t, a, b, &pa, &pb, &n, &res);
    threads_init(before.n_omp);                   /* the next tests run as before */
    ck_assert_uint_gt(n, 0);
    ck_assert_msg(memcmp(pa, pb, n * sizeof(float)) == 0, "%s: the adapters differ",
                  resume_methods[_i]);
    la = read_loss_curve(a, &na);
    lb = read_loss_curve(b, &nb);
    ck_assert_uint_eq(na, 8);
    ck_assert_uint_eq(nb, 8);
    for (size_t i = 0; i < na; i++)
        ck_assert_msg(memcmp(&la[i], &lb[i], sizeof(double)) == 0,
                      "%s: step %zu: loss %.17g resumed, %.17g straight", resume_methods[_i],
                      i + 1, la[i], lb[i]);
    free(la);
    free(lb);
    free(pa);
    free(pb);
    run_plans_free(plans, 1);
    experiment_free(&e);
}
END_TEST

/* the first step's loss under each loss span */
static double first_loss(const char *span)
{
    char ov[64], out[256];
    const char *o[3] = { ov, "train.steps=1", "train.warmup=0" };
    struct run_plan *plans = NULL;
    struct experiment e;
    struct store *st;
    double *v = NULL, l;
    size_t n = 0;

    snprintf(ov, sizeof(ov), "data.lm_loss=%s", span);
    lm_plan(&plans, &e, o, 3);
    {
        char want[64], *ini = run_plan_to_ini(&plans[0]);

        snprintf(want, sizeof(want), "lm_loss = %s\n", span);
        ck_assert_msg(strstr(ini, want) != NULL, "%s", ini);
        free(ini);
    }
    snprintf(out, sizeof(out), "%s/span_%s.h5", t.dir, span);
    ck_assert_msg(run_quiet(&plans[0], out, NULL, false, NULL) == RL_OK, "%s", rl_error_msg());
    ck_assert_int_eq(store_open(&st, out), RL_OK);
    ck_assert_int_eq(store_read_curve(st, "train", "loss", NULL, &v, &n), RL_OK);
    ck_assert_uint_eq(n, 1);
    l = v[0];
    free(v);
    store_close(st);
    run_plans_free(plans, 1);
    experiment_free(&e);
    return l;
}

START_TEST(test_lm_loss_span)
{
    const double r = first_loss("response"), a = first_loss("all");

    ck_assert(isfinite(r) && isfinite(a));
    ck_assert_msg(r != a, "the loss span changed nothing (%g)", r);
}
END_TEST

static void expect_refused(const char *const *ov, size_t n_ov, const char *want)
{
    struct run_plan *plans = NULL;
    struct experiment e;
    char out[256];
    int rc;

    lm_plan(&plans, &e, ov, n_ov);
    snprintf(out, sizeof(out), "%s/refused.h5", t.dir);
    rc = run_quiet(&plans[0], out, NULL, false, NULL);
    ck_assert_int_ne(rc, RL_OK);
    ck_assert_msg(strstr(rl_error_msg(), want) != NULL, "'%s' lacks '%s'", rl_error_msg(), want);
    run_plans_free(plans, 1);
    experiment_free(&e);
    remove(out);
}

START_TEST(test_lm_refusals)
{
    const char *cut[] = { "data.cutoff=100", "data.lm_loss=response" };
    const char *shots[] = { "data.shots=2" };
    const char *clip[] = { "model.name=clip-tiny" };
    const char *bf16[] = { "train.precision=bf16" };

    expect_refused(cut, 2, "cuts every training item");
    expect_refused(shots, 1, "data.shots");
    expect_refused(clip, 1, "no Llama-family decoder");
    expect_refused(bf16, 1, "not available for a decoder");
}
END_TEST

START_TEST(test_lm_export_peft_keys)
{
    struct run_plan *plans = NULL;
    struct experiment e;
    char out[256], dir[256], st_path[300], *text = NULL;
    const char *o[1] = { "train.steps=2" };
    char *argv[5];
    size_t len;

    lm_plan(&plans, &e, o, 1);
    snprintf(out, sizeof(out), "%s/exp.h5", t.dir);
    ck_assert_msg(run_quiet(&plans[0], out, NULL, false, NULL) == RL_OK, "%s", rl_error_msg());
    snprintf(dir, sizeof(dir), "%s/peft", t.dir);
    argv[0] = "export";
    argv[1] = out;
    argv[2] = "-o";
    argv[3] = dir;
    argv[4] = NULL;
    ck_assert_int_eq(run_cmd_captured(cmd_export, 4, argv, &text), 0);
    free(text);
    snprintf(st_path, sizeof(st_path), "%s/adapter_model.safetensors", dir);
    text = test_slurp(st_path, &len);
    ck_assert_ptr_nonnull(text);
    /* the header (JSON at the start) names every tensor */
    ck_assert(memmem(text, len, "\"base_model.model.model.layers.0.self_attn.q_proj.lora_A."
                     "weight\"", 62) != NULL);
    ck_assert(memmem(text, len, "\"base_model.model.model.layers.1.mlp.down_proj.lora_B."
                     "weight\"", 59) != NULL);
    free(text);
    run_plans_free(plans, 1);
    experiment_free(&e);
}
END_TEST

/* the token log-probabilities of a score file */
static float *read_logprobs(const char *file, size_t *n)
{
    return test_h5_read_floats(file, "/token_logprob", n);
}

static void score_cmd(const char *model, const char *run, const char *ids, const char *out)
{
    char *argv[11], *text = NULL;
    int argc = 0;

    argv[argc++] = "score";
    argv[argc++] = "--model";
    argv[argc++] = (char *)model;
    argv[argc++] = "--ids";
    argv[argc++] = (char *)ids;
    argv[argc++] = "-o";
    argv[argc++] = (char *)out;
    if (run) {
        argv[argc++] = "--run";
        argv[argc++] = (char *)run;
    }
    argv[argc] = NULL;
    ck_assert_msg(run_cmd_captured(cmd_score, argc, argv, &text) == 0, "%s", text);
    free(text);
}

/* score --run (the run's adapters attached, factored) equals score on the
 * model with the adapters merged into its weights, and differs from the
 * base model; a run file of method none is refused */
START_TEST(test_lm_score_run)
{
    struct run_plan *plans = NULL;
    struct experiment e;
    struct llama_model m;
    struct llama_adapters la;
    char run[256], ids[256], merged[256], a[256], b[256], c[256];
    const char *o[2] = { "train.steps=3", "method.methods=randlora" };
    float *x, *y, *z;
    size_t nx, ny, nz;
    double moved = 0.0;

    lm_plan(&plans, &e, o, 2);
    snprintf(run, sizeof(run), "%s/run.h5", t.dir);
    ck_assert_msg(run_quiet(&plans[0], run, NULL, false, NULL) == RL_OK, "%s", rl_error_msg());
    snprintf(ids, sizeof(ids), "%s/ids.txt", t.dir);
    test_write_text(ids, "72 101 108 108 111 32 119\n84 104 101 32 97\n");
    ck_assert_int_eq(llama_model_load(&m, t.model), RL_OK);
    ck_assert_msg(lm_run_adapters_load(run, &m, &la, 64) == RL_OK, "%s", rl_error_msg());
    llama_adapters_merge(&la, &m);
    snprintf(merged, sizeof(merged), "%s/merged", t.dir);
    ck_assert_int_eq(llama_model_save(&m, merged, ST_F32, 1), RL_OK);
    llama_adapters_free(&la);
    llama_model_free(&m);
    snprintf(a, sizeof(a), "%s/a.h5", t.dir);
    snprintf(b, sizeof(b), "%s/b.h5", t.dir);
    snprintf(c, sizeof(c), "%s/c.h5", t.dir);
    score_cmd(t.model, run, ids, a);
    score_cmd(merged, NULL, ids, b);
    score_cmd(t.model, NULL, ids, c);
    x = read_logprobs(a, &nx);
    y = read_logprobs(b, &ny);
    z = read_logprobs(c, &nz);
    ck_assert_uint_eq(nx, ny);
    for (size_t i = 0; i < nx; i++) {
        if (isnan(x[i])) {
            ck_assert(isnan(y[i]));
            continue;
        }
        ck_assert_msg(fabsf(x[i] - y[i]) < 1e-4f, "%zu: %g vs merged %g", i, x[i], y[i]);
        moved = fmax(moved, fabs((double)x[i] - z[i]));
    }
    ck_assert_msg(moved > 1e-4, "the adapters changed nothing (%g)", moved);
    free(x);
    free(y);
    free(z);
    run_plans_free(plans, 1);
    experiment_free(&e);
}
END_TEST

Suite *suite_train_lm(void)
{
    Suite *s = suite_create("train_lm");
    TCase *tc = tcase_create("train_lm");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, test_lm_methods, 0, 6);
    tcase_add_test(tc, test_lm_resume);
    tcase_add_loop_test(tc, test_lm_resume_other_threads, 0, 2);
    tcase_add_test(tc, test_lm_loss_span);
    tcase_add_test(tc, test_lm_refusals);
    tcase_add_test(tc, test_lm_export_peft_keys);
    tcase_add_test(tc, test_lm_score_run);
    suite_add_tcase(s, tc);
    return s;
}
