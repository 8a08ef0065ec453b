/*
 * check_bench.c: `randlora bench` (cli/cmd_bench.c) on a tiny custom
 * config (a config.json in a temporary directory), in-process, 2 steps per
 * method: the JSON line has every field, the loss is finite, the FLOP counts
 * are positive and 0 < GEMM share <= 1; the text output has its lines; bad
 * usage exits 2. No timing assertions: speed targets are `make bench`'s.
 */
#include <check.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "core/gemm_bf16.h"
#include "core/status.h"
#include "suites.h"

static const char tiny_config[] =
    "{\"projection_dim\": 16,\n"
    " \"text_config\": {\"vocab_size\": 64, \"max_position_embeddings\": 24,\n"
    "   \"hidden_size\": 32, \"num_hidden_layers\": 1, \"num_attention_heads\": 2,\n"
    "   \"intermediate_size\": 64, \"hidden_act\": \"quick_gelu\",\n"
    "   \"bos_token_id\": 62, \"eos_token_id\": 63, \"pad_token_id\": 63},\n"
    " \"vision_config\": {\"image_size\": 16, \"patch_size\": 8, \"num_channels\": 3,\n"
    "   \"hidden_size\": 32, \"num_hidden_layers\": 1, \"num_attention_heads\": 2,\n"
    "   \"intermediate_size\": 64, \"hidden_act\": \"quick_gelu\"}}\n";

static char dir[64], cfg_path[128], out_path[128];

static void setup_dir(void)
{
    FILE *f;

    snprintf(dir, sizeof(dir), "/tmp/rl_bench_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(cfg_path, sizeof(cfg_path), "%s/config.json", dir);
    snprintf(out_path, sizeof(out_path), "%s/out.txt", dir);
    f = fopen(cfg_path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(tiny_config, f);
    fclose(f);
}

static void cleanup_dir(void)
{
    unlink(cfg_path);
    unlink(out_path);
    rmdir(dir);
}

/* cmd_bench with argv, its stdout captured into buf; returns the status */
static int run_bench(char **argv, int argc, char *buf, size_t size)
{
    int saved, fd, rc;
    FILE *f;
    size_t n;

    fflush(stdout);
    saved = dup(STDOUT_FILENO);
    fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ck_assert_int_ge(fd, 0);
    dup2(fd, STDOUT_FILENO);
    close(fd);
    rc = cmd_bench(argc, argv);
    fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    f = fopen(out_path, "r");
    ck_assert_ptr_nonnull(f);
    n = fread(buf, 1, size - 1, f);
    buf[n] = '\0';
    fclose(f);
    return rc;
}

/* the number after "KEY": in a JSON line; NAN when missing */
static double field(const char *json, const char *key)
{
    char pat[64];
    const char *p;

    snprintf(pat, sizeof(pat), "\"%s\":", key);
    p = strstr(json, pat);
    return p ? strtod(p + strlen(pat), NULL) : NAN;
}

/* the numbers of "losses":[...] into out (at most max); returns how many */
static size_t losses_field(const char *json, double *out, size_t max)
{
    const char *p = strstr(json, "\"losses\":[");
    size_t n = 0;
    char *end;

    if (!p)
        return 0;
    p += strlen("\"losses\":[");
    while (*p && *p != ']' && n < max) {
        out[n++] = strtod(p, &end);
        if (end == p)
            return 0;
        p = *end == ',' ? end + 1 : end;
    }
    return n;
}

START_TEST(test_bench_json_fields)
{
    static const char *const methods[] = { "lora", "vera", "randlora", "full" };
    char buf[4096];

    setup_dir();
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        char *argv[] = { "bench", "--model", cfg_path, "--method", (char *)methods[i],
                         "--rank", "4", "--batch", "4", "--classes", "3", "--steps", "2",
                         "--threads", "2", "--json", "--in-process", NULL };
        int rc = run_bench(argv, (int)(sizeof(argv) / sizeof(argv[0])) - 1, buf, sizeof(buf));

        ck_assert_msg(rc == 0, "%s: status %d", methods[i], rc);
        ck_assert_msg(strstr(buf, "\"impl\":\"c\"") && buf[strlen(buf) - 1] == '\n',
                      "%s: %s", methods[i], buf);
        ck_assert_msg(strchr(buf, '\n') == buf + strlen(buf) - 1, "one line: %s", buf);
        ck_assert(isfinite(field(buf, "loss")));
        {
            double l[8];

            /* the warm-up step and the 2 timed ones; the last is "loss" */
            ck_assert_msg(losses_field(buf, l, 8) == 3, "%s", buf);
            ck_assert(isfinite(l[0]) && isfinite(l[1]));
            ck_assert(fabs(l[2] - field(buf, "loss")) <= 1e-5 * fabs(l[2]));
        }
        ck_assert(field(buf, "bf16_gemm_share") == 0 && field(buf, "peak_bf16_gflops") == 0);
        ck_assert(field(buf, "model_gflop") > 0);
        ck_assert(field(buf, "gemm_gflop_counted") > 0);
        ck_assert(field(buf, "gemm_share") > 0 && field(buf, "gemm_share") <= 1.0);
        ck_assert(field(buf, "step_s") > 0 && field(buf, "step_min_s") > 0);
        ck_assert(field(buf, "step_min_s") <= field(buf, "step_s"));
        ck_assert(field(buf, "images_per_s") > 0 && field(buf, "gflops") > 0);
        ck_assert(field(buf, "gemm_gflops") > 0 && field(buf, "peak_gflops") > 0);
        ck_assert(field(buf, "peak_rss_mb") > 0);
        ck_assert(field(buf, "n_trainable") > 0);
        /* q, k, v, out, fc1, fc2 of the one layer of each tower */
        ck_assert(field(buf, "n_sites") == 12);
        ck_assert(field(buf, "merged_sites") >= 0 && field(buf, "merged_sites") <= 12);
        ck_assert(field(buf, "batch") == 4 && field(buf, "accumulate") == 1);
        ck_assert(field(buf, "steps") == 2 && field(buf, "classes") == 3);
        /* prompts: EOT at 16..23 for a byte-sized vocabulary, cut to 24 tokens */
        ck_assert(field(buf, "text_tokens") == 19);
        ck_assert(strstr(buf, methods[i]) != NULL);
    }
    cleanup_dir();
}
END_TEST

/* --precision bf16: the time in oneDNN's products, their rate and oneDNN's
 * calibration are reported (refused where the CPU has no bf16) */
START_TEST(test_bench_bf16_fields)
{
    char buf[4096];
    char *argv[] = { "bench", "--model", cfg_path, "--method", "lora", "--rank", "4",
                     "--batch", "4", "--classes", "3", "--steps", "2", "--threads", "2",
                     "--precision", "bf16", "--json", "--in-process", NULL };
    int rc;

    setup_dir();
    rc = run_bench(argv, (int)(sizeof(argv) / sizeof(argv[0])) - 1, buf, sizeof(buf));
    if (gemm_bf16_check() != RL_OK) {
        ck_assert_int_eq(rc, 2);
        cleanup_dir();
        return;
    }
    ck_assert_msg(rc == 0, "status %d", rc);
    ck_assert_msg(strstr(buf, "\"precision\":\"bf16\"") != NULL, "%s", buf);
    ck_assert_msg(strstr(buf, "isa=") != NULL, "%s", buf);
    ck_assert(field(buf, "bf16_gemm_gflop") > 0);
    ck_assert(field(buf, "bf16_gemm_share") > 0 && field(buf, "bf16_gemm_share") < 1.0);
    ck_assert(field(buf, "bf16_gemm_share") + field(buf, "gemm_share") <= 1.0);
    ck_assert(field(buf, "bf16_gemm_gflops") > 0 && field(buf, "peak_bf16_gflops") > 0);
    cleanup_dir();
}
END_TEST

START_TEST(test_bench_text_accumulate)
{
    char buf[4096];
    char *argv[] = { "bench", "--model", cfg_path, "--method", "randlora", "--rank", "4",
                     "--batch", "3", "--accumulate", "2", "--classes", "3", "--steps", "2",
                     "--threads", "2", "--in-process", NULL };
    int rc;

    setup_dir();
    rc = run_bench(argv, (int)(sizeof(argv) / sizeof(argv[0])) - 1, buf, sizeof(buf));
    ck_assert_int_eq(rc, 0);
    ck_assert_msg(strstr(buf, "batch 2 x 3") != NULL, "%s", buf);
    ck_assert(strstr(buf, "images/s") && strstr(buf, "model FLOPs / step"));
    ck_assert(strstr(buf, "of step time (measured)") && strstr(buf, "peak RSS"));
    cleanup_dir();
}
END_TEST

START_TEST(test_bench_none_and_errors)
{
    char buf[4096];
    char *none[] = { "bench", "--model", cfg_path, "--method", "none", "--batch", "2",
                     "--steps", "2", "--threads", "2", "--json", "--in-process", NULL };
    char *bad_method[] = { "bench", "--model", cfg_path, "--method", "dora", NULL };
    char *no_model[] = { "bench", "--method", "lora", NULL };
    char *bad_batch[] = { "bench", "--model", cfg_path, "--method", "lora", "--batch", "0",
                          NULL };
    char *bad_preset[] = { "bench", "--model", "clip-huge", "--method", "lora", "--in-process",
                           NULL };

    setup_dir();
    ck_assert_int_eq(run_bench(none, 13, buf, sizeof(buf)), 0);
    ck_assert(isfinite(field(buf, "loss")) && field(buf, "model_gflop") > 0);
    ck_assert(field(buf, "n_trainable") == 0);
    ck_assert_int_eq(run_bench(bad_method, 5, buf, sizeof(buf)), 2);
    ck_assert_int_eq(run_bench(no_model, 3, buf, sizeof(buf)), 2);
    ck_assert_int_eq(run_bench(bad_batch, 7, buf, sizeof(buf)), 2);
    ck_assert_int_eq(run_bench(bad_preset, 6, buf, sizeof(buf)), 2);
    cleanup_dir();
}
END_TEST

Suite *suite_bench(void)
{
    Suite *s = suite_create("bench");
    TCase *tc = tcase_create("bench");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_bench_json_fields);
    tcase_add_test(tc, test_bench_bf16_fields);
    tcase_add_test(tc, test_bench_text_accumulate);
    tcase_add_test(tc, test_bench_none_and_errors);
    suite_add_tcase(s, tc);
    return s;
}
