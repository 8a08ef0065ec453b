/*
 * check_run_precision.c: what a run file records about its precision: the
 * root attributes precision ("fp32" | "bf16") and bf16_gemm (oneDNN's line,
 * gemm_bf16_describe: the ISA and matmul kernel the bf16 products ran on;
 * "" for fp32), and what `randlora info` prints of them. Short runs of the
 * runner suites' tiny model (runner_harness.h).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "core/gemm_bf16.h"
#include "core/status.h"
#include "experiments/config.h"
#include "experiments/runner.h"
#include "results/store.h"
#include "runner_harness.h"
#include "suites.h"

/* a short run with train.precision = prec into t's folder as NAME.h5;
 * returns the runner's status */
static int short_run(const struct tmp *t, const char *prec, const char *name, char *path,
                     size_t cap)
{
    const char *ov[RUN_SHORT_N + 1];
    char prec_ov[64];
    struct experiment e;
    struct run_plan *plans;
    struct runner_result res;
    int rc;

    memcpy(ov, run_short, sizeof(run_short));
    snprintf(prec_ov, sizeof(prec_ov), "train.precision=%s", prec);
    ov[RUN_SHORT_N] = prec_ov;
    make_plan(&plans, &e, t, ov, RUN_SHORT_N + 1);
    snprintf(path, cap, "%s/%s.h5", t->dir, name);
    rc = run_quiet(&plans[0], path, NULL, false, &res);
    run_plans_free(plans, 1);
    experiment_free(&e);
    return rc;
}

static char *root_attr(const char *path, const char *name)
{
    struct store *s;
    char *v = NULL;

    ck_assert_int_eq(store_open(&s, path), RL_OK);
    ck_assert_msg(store_attr_get_string(s, "/", name, &v) == RL_OK, "%s: %s", path, name);
    store_close(s);
    return v;
}

/* `randlora info PATH`'s output (caller frees) */
static char *info_text(const char *path)
{
    char *argv[] = { "info", (char *)path, NULL }, *text = NULL;

    ck_assert_int_eq(run_cmd_captured(cmd_info, 2, argv, &text), 0);
    return text;
}

START_TEST(test_fp32_run_records_precision)
{
    struct tmp t;
    char path[256], *v, *text;

    tmp_setup(&t, true);
    ck_assert_msg(short_run(&t, "fp32", "fp32", path, sizeof(path)) == RL_OK, "%s",
                  rl_error_msg());
    v = root_attr(path, "precision");
    ck_assert_str_eq(v, "fp32");
    free(v);
    v = root_attr(path, "bf16_gemm");
    ck_assert_str_eq(v, "");
    free(v);
    text = info_text(path);
    ck_assert_msg(strstr(text, "precision    fp32\n") != NULL, "%s", text);
    ck_assert_msg(strstr(text, "bf16 gemm") == NULL, "%s", text);
    free(text);
    tmp_cleanup(&t);
}
END_TEST

/* bf16: the attribute is gemm_bf16_describe's line (oneDNN's version, ISA
 * and matmul kernel), and info prints it; without AVX512-BF16 or AMX the run
 * is refused with the reason instead */
START_TEST(test_bf16_run_records_isa)
{
    struct tmp t;
    char path[256], line[160], *v, *text;
    int rc;

    tmp_setup(&t, true);
    rc = short_run(&t, "bf16", "bf16", path, sizeof(path));
    if (gemm_bf16_check() != RL_OK) {
        ck_assert_int_eq(rc, RL_ERR_ARG);
        ck_assert_ptr_nonnull(strstr(rl_error_msg(), "train.precision = bf16"));
        printf("check_run_precision: bf16 refused here: %s\n", rl_error_msg());
        tmp_cleanup(&t);
        return;
    }
    ck_assert_msg(rc == RL_OK, "%s", rl_error_msg());
    gemm_bf16_describe(line, sizeof(line));
    ck_assert_ptr_nonnull(strstr(line, " isa="));
    v = root_attr(path, "precision");
    ck_assert_str_eq(v, "bf16");
    free(v);
    v = root_attr(path, "bf16_gemm");
    ck_assert_str_eq(v, line);
    free(v);
    text = info_text(path);
    ck_assert_msg(strstr(text, "precision    bf16\n") != NULL, "%s", text);
    ck_assert_msg(strstr(text, line) != NULL, "%s", text);
    free(text);
    tmp_cleanup(&t);
}
END_TEST

Suite *suite_run_precision(void)
{
    Suite *s = suite_create("run_precision");
    TCase *tc = tcase_create("attrs");

    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_fp32_run_records_precision);
    tcase_add_test(tc, test_bf16_run_records_isa);
    suite_add_tcase(s, tc);
    return s;
}
