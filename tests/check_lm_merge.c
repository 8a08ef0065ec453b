/*
 * check_lm_merge.c: `randlora merge --run` on decoder runs, and `randlora
 * bench --generate`.
 *
 * Two tiny random decoders with llama-tiny's byte vocabulary and tokenizer:
 * a Qwen2 layout (q/k/v biases, 4 heads over 2 key/value heads, tied head)
 * and a Llama layout (no biases, GQA, separate lm_head). A short run of
 * LoRA, RandLoRA, full fine-tuning, VeRA or NoLA on the procedural commonsense task is
 * merged into its model; `randlora score` of the merged directory equals
 * `randlora score --run` on the base model (the adapters attached,
 * factored) within MERGE_TOL per token log-probability, and differs from
 * the base model's. Refusals (exit 2, one line): a run of method none, a
 * run merged into a model of other shapes, a directory given as the run,
 * --adapter with a decoder model, --layout with --run.
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/commands.h"
#include "core/status.h"
#include "datasets/commonsense_synth.h"
#include "experiments/config.h"
#include "experiments/lm_model.h"
#include "experiments/runner.h"
#include "formats/safetensors.h"
#include "models/llama.h"
#include "runner_harness.h"
#include "suites.h"
#include "test_cmd.h"
#include "test_h5.h"
#include "test_util.h"

/* per token log-probability, merged against factored (measured: at most
 * 4.8e-7 apart) */
#define MERGE_TOL 5e-6

static struct tmp t;
static char qwen2_dir[192], llama_dir[192];

/* a tiny random decoder of arch with the byte tokenizer at dir */
static void write_model(const char *dir, enum llama_arch arch, uint64_t seed)
{
    struct llama_config c;
    struct llama_model m;
    char path[256];

    ck_assert_int_eq(llama_config_preset(&c, "llama-tiny"), RL_OK);
    c.arch = arch;
    c.hidden = 32;
    c.intermediate = 64;
    c.layers = 2;
    c.heads = 4;
    c.kv_heads = 2;
    c.head_dim = 8;
    if (arch == LLAMA_ARCH_QWEN2) {
        c.qkv_bias = true;
        c.rope_theta = 1000000.0;
    } else {
        c.tie_word_embeddings = false;
        c.hidden = 24;                      /* other shapes than the Qwen2 one */
        c.head_dim = 6;
    }
    ck_assert_int_eq(llama_model_init(&m, &c), RL_OK);
    llama_model_init_random(&m, seed);
    for (size_t l = 0; l < c.layers && c.qkv_bias; l++)     /* non-zero biases */
        for (size_t i = 0; i < c.heads * c.head_dim; i++)
            m.layer[l].t[LT_Q_B][i] = 0.01f * (float)((i * 7 + l) % 11) - 0.05f;
    ck_assert_int_eq(llama_model_save(&m, dir, ST_F32, 1), RL_OK);
    llama_model_free(&m);
    snprintf(path, sizeof(path), "%s/tokenizer.json", dir);
    ck_assert_int_eq(lm_write_byte_tokenizer(path, 256, 257), RL_OK);
}

static void setup(void)
{
    char data[160];

    tmp_setup(&t, false);
    snprintf(qwen2_dir, sizeof(qwen2_dir), "%s/qwen2", t.dir);
    snprintf(llama_dir, sizeof(llama_dir), "%s/llama", t.dir);
    write_model(qwen2_dir, LLAMA_ARCH_QWEN2, 21);
    write_model(llama_dir, LLAMA_ARCH_LLAMA, 22);
    snprintf(data, sizeof(data), "%s/data", t.dir);
    ck_assert_int_eq(cs_synth_write(data, 3, 24, 4), RL_OK);
}

static void teardown(void)
{
    tmp_cleanup(&t);
}

/* a 3-step run of method on model into t.dir/<name>.h5 */
static void train_run(const char *model, const char *method, const char *name, char *run,
                      size_t cap)
{
    struct run_plan *plans = NULL;
    struct experiment e;
    struct runner_shapes sh = { 0 };
    char text[2048];
    size_t n = 0;

    snprintf(text, sizeof(text),
             "[experiment]\nname = lm\noutput = %s\n"
             "[model]\nname = %s\n"
             "[data]\ndataset = commonsense:%s/data\ncutoff = 480\nmax_new_tokens = 2\n"
             "eval_limit = 2\n"
             "[method]\nmethods = %s\nrank = 2\n"
             "[train]\nsteps = 3\nbatch = 2\nlr = 1e-2\nlr.full = 1e-3\nlr.vera = 1e-1\n"
             "eval_every = 0\n",
             t.dir, model, t.dir, method);
    ck_assert_msg(experiment_parse(&e, text, "lm.ini", NULL, 0) == RL_OK, "%s", rl_error_msg());
    ck_assert_msg(experiment_expand(&e, runner_plan_shapes, &sh, &plans, &n) == RL_OK, "%s",
                  rl_error_msg());
    runner_shapes_free(&sh);
    ck_assert_uint_eq(n, 1);
    snprintf(run, cap, "%s/%s.h5", t.dir, name);
    ck_assert_msg(run_quiet(&plans[0], run, NULL, false, NULL) == RL_OK, "%s", rl_error_msg());
    run_plans_free(plans, 1);
    experiment_free(&e);
}

/* the token log-probabilities of a score file */
static float *read_logprobs(const char *file, size_t *n)
{
    return test_h5_read_floats(file, "/token_logprob", n);
}

/* randlora score --model model [--run run] --ids ids -o out */
static float *score(const char *model, const char *run, const char *ids, const char *out,
                    size_t *n)
{
    struct test_captured c = run ? test_run_cmd(t.dir, cmd_score, "score", "--model", model,
                                                "--ids", ids, "-o", out, "--run", run, NULL)
                                 : test_run_cmd(t.dir, cmd_score, "score", "--model", model,
                                                "--ids", ids, "-o", out, NULL);

    ck_assert_msg(c.status == 0, "score %s: %s", model, c.err);
    test_captured_free(&c);
    return read_logprobs(out, n);
}

static const char *const arch_names[2] = { "qwen2", "llama" };
static const char *const methods[5] = { "lora", "randlora", "full", "vera", "nola" };

/* loop i: arch i / 5, method i % 5 */
START_TEST(test_merge_decoder_run)
{
    const char *model = _i / 5 ? llama_dir : qwen2_dir, *method = methods[_i % 5];
    char name[64], run[256], out[256], ids[256], a[256], b[256], c0[256], cfg[300];
    struct test_captured c;
    float *x, *y, *z;
    size_t nx, ny, nz;
    double worst = 0.0, moved = 0.0;

    snprintf(name, sizeof(name), "%s-%s", arch_names[_i / 5], method);
    train_run(model, method, name, run, sizeof(run));
    snprintf(out, sizeof(out), "%s/merged-%s", t.dir, name);
    c = test_run_cmd(t.dir, cmd_merge, "merge", "--model", model, "--run", run, "-o", out,
                     NULL);
    ck_assert_msg(c.status == 0, "merge %s: %s", name, c.err);
    ck_assert_msg(strstr(c.out, "1 tokenizer file copied") != NULL, "%s", c.out);
    test_captured_free(&c);
    snprintf(cfg, sizeof(cfg), "%s/tokenizer.json", out);
    ck_assert(access(cfg, F_OK) == 0);
    snprintf(cfg, sizeof(cfg), "%s/config.json", out);
    ck_assert(llama_config_file_is_decoder(cfg));

    snprintf(ids, sizeof(ids), "%s/ids.txt", t.dir);
    test_write_text(ids, "72 101 108 108 111 32 119 111 114 108 100\n84 104 101 32 97\n"
                         "256 66 111 111 108 81 32 116 114 117 101 257\n");
    snprintf(a, sizeof(a), "%s/%s-run.h5", t.dir, name);
    snprintf(b, sizeof(b), "%s/%s-merged.h5", t.dir, name);
    snprintf(c0, sizeof(c0), "%s/%s-base.h5", t.dir, name);
    x = score(model, run, ids, a, &nx);
    y = score(out, NULL, ids, b, &ny);
    z = score(model, NULL, ids, c0, &nz);
    ck_assert_uint_eq(nx, ny);
    ck_assert_uint_eq(nx, nz);
    for (size_t i = 0; i < nx; i++) {
        if (isnan(x[i])) {                  /* padding */
            ck_assert(isnan(y[i]));
            continue;
        }
        worst = fmax(worst, fabs((double)x[i] - y[i]));
        moved = fmax(moved, fabs((double)x[i] - z[i]));
    }
    if (getenv("RANDLORA_TEST_VERBOSE"))
        printf("merge %s: merged vs adapted max |d logprob| %.3g, adapted vs base %.3g\n",
               name, worst, moved);
    ck_assert_msg(worst <= MERGE_TOL, "%s: merged differs from the adapted model by %g", name,
                  worst);
    ck_assert_msg(moved > 1e-3, "%s: the adapters changed nothing (%g)", name, moved);
    free(x);
    free(y);
    free(z);
}
END_TEST

/* bad input: exit 2 and one line naming what is wrong */
START_TEST(test_merge_decoder_refusals)
{
    char run[256], none_run[256], out[256], adapter[256];
    struct test_captured c;

    train_run(llama_dir, "lora", "llama-lora", run, sizeof(run));
    train_run(llama_dir, "none", "llama-none", none_run, sizeof(none_run));
    snprintf(out, sizeof(out), "%s/out", t.dir);

    c = test_run_cmd(t.dir, cmd_merge, "merge", "--model", llama_dir, "--run", none_run, "-o",
                     out, NULL);
    test_assert_one_line_error(&c, "randlora merge: ", "not a decoder run with adapters",
                               "a run of method none");
    test_captured_free(&c);
    c = test_run_cmd(t.dir, cmd_merge, "merge", "--model", qwen2_dir, "--run", run, "-o", out,
                     NULL);
    test_assert_one_line_error(&c, "randlora merge: ", "the run's method has",
                               "a run merged into a model of other shapes");
    test_captured_free(&c);
    c = test_run_cmd(t.dir, cmd_merge, "merge", "--model", llama_dir, "--run", t.dir, "-o", out,
                     NULL);
    test_assert_one_line_error(&c, "randlora merge: ", "is a directory: give one run's results",
                               "a directory as the run");
    test_captured_free(&c);
    snprintf(adapter, sizeof(adapter), "%s/adapter", t.dir);
    c = test_run_cmd(t.dir, cmd_merge, "merge", "--model", llama_dir, "--adapter", adapter,
                     "-o", out, NULL);
    test_assert_one_line_error(&c, "randlora merge: ", "is a decoder: merge a decoder run's",
                               "--adapter with a decoder");
    test_captured_free(&c);
    c = test_run_cmd(t.dir, cmd_merge, "merge", "--model", llama_dir, "--run", run, "-o", out,
                     "--layout", "hf", NULL);
    test_assert_one_line_error(&c, "randlora merge: ", "--layout applies to CLIP models",
                               "--layout with --run");
    test_captured_free(&c);
    c = test_run_cmd(t.dir, cmd_merge, "merge", "--model", llama_dir, "--run", run, "--adapter",
                     adapter, "-o", out, NULL);
    test_assert_one_line_error(&c, "randlora merge: ", "exclude each other",
                               "--adapter and --run");
    test_captured_free(&c);
    /* nothing was written by the refusals */
    ck_assert(access(out, F_OK) != 0 || rmdir(out) == 0);
}
END_TEST

/* randlora bench --generate: the prefill and decoding rates as JSON */
START_TEST(test_bench_generate)
{
    struct test_captured c = test_run_cmd(t.dir, cmd_bench, "bench", "--model", "llama-tiny",
                                          "--seq", "16", "--batch", "3", "--generate", "4",
                                          "--threads", "1", "--json", NULL);

    ck_assert_msg(c.status == 0, "%s", c.err);
    ck_assert(strstr(c.out, "\"kind\":\"generate\"") != NULL);
    ck_assert(strstr(c.out, "\"batch\":3,\"seq\":16,\"generate\":4") != NULL);
    ck_assert(strstr(c.out, "\"prefill_tokens_per_s\":") != NULL);
    ck_assert(strstr(c.out, "\"decode_tokens_per_s\":") != NULL);
    test_captured_free(&c);
    c = test_run_cmd(t.dir, cmd_bench, "bench", "--model", "llama-tiny", "--seq", "500",
                     "--generate", "20", NULL);
    test_assert_one_line_error(&c, "randlora bench: ", "--seq 500 + --generate 20 exceed",
                               "a generation past the positions");
    test_captured_free(&c);
    c = test_run_cmd(t.dir, cmd_bench, "bench", "--model", "clip-tiny", "--generate", "2",
                     NULL);
    test_assert_one_line_error(&c, "randlora bench: ", "--generate applies to a decoder",
                               "--generate on CLIP");
    test_captured_free(&c);
}
END_TEST

Suite *suite_lm_merge(void)
{
    Suite *s = suite_create("lm_merge");
    TCase *tc = tcase_create("lm_merge");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, test_merge_decoder_run, 0, 10);
    tcase_add_test(tc, test_merge_decoder_refusals);
    tcase_add_test(tc, test_bench_generate);
    suite_add_tcase(s, tc);
    return s;
}
