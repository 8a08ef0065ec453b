/*
 * fuzz_plan.c: libFuzzer harness for experiment files (INI, experiments/
 * config*.c) and the property the store relies on: a plan's rendering
 * (run_plan_to_ini, what a run file keeps in /config) parses back to the
 * same plan.
 *
 * The input is the file's text. It is parsed (experiment_parse) and, when
 * it has at most 64 runs, expanded (experiment_expand, with the linear
 * shapes of a tiny model so budget-matched methods expand too). For each of
 * the first 8 plans, run_plan_check_roundtrip must pass (experiment_expand
 * promises it), and, checked here again without it, its rendering must
 * parse and expand, without shapes, to exactly one plan equal to it in
 * every field (run_plan_diff) whose rendering is the same text. Any status
 * of the first parse and expansion is fine; a crash, sanitizer report,
 * leak, hang or a broken round trip is a bug. Seeds (tests/fuzz/corpus/plan/): the
 * experiment files of experiments/ and small plans with lists, suffixes and axes.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "experiments/config.h"
#include "methods/adapter.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_RUNS 64
#define MAX_CHECKED 8

/* the linears of a tiny two-tower model: q/k/v projections and the MLP */
static int tiny_shapes(void *ctx, const struct run_plan *plan, const struct adapter_shape **shapes,
                       size_t *n)
{
    static const struct adapter_shape s[] = { { 32, 32 }, { 32, 32 }, { 32, 32 }, { 64, 32 }, { 32, 64 },
                                              { 24, 24 }, { 24, 24 }, { 24, 24 }, { 48, 24 }, { 24, 48 } };

    (void)ctx;
    (void)plan;
    *shapes = s;
    *n = sizeof s / sizeof s[0];
    return RL_OK;
}

static void check_roundtrip(const struct run_plan *p)
{
    struct experiment e;
    struct run_plan *back = NULL;
    size_t n = 0;
    char *ini = run_plan_to_ini(p), *again;

    if (!ini)
        abort();
    if (run_plan_check_roundtrip(p) != RL_OK) {
        fprintf(stderr, "fuzz_plan: run_plan_check_roundtrip: %s\n", rl_error_msg());
        abort();
    }
    if (experiment_parse(&e, ini, "rendered.ini", NULL, 0) != RL_OK) {
        fprintf(stderr, "fuzz_plan: the rendering does not parse: %s\n%s", rl_error_msg(), ini);
        abort();
    }
    if (experiment_expand(&e, NULL, NULL, &back, &n) != RL_OK || n != 1) {
        fprintf(stderr, "fuzz_plan: the rendering expands to %zu plans: %s\n%s", n, rl_error_msg(), ini);
        abort();
    }
    const char *differs = run_plan_diff(p, &back[0]);
    if (differs) {
        fprintf(stderr, "fuzz_plan: %s differs after the round trip of\n%s", differs, ini);
        abort();
    }
    again = run_plan_to_ini(&back[0]);
    if (!again || strcmp(again, ini) != 0) {
        fprintf(stderr, "fuzz_plan: the rendering changes on a round trip:\n%s---\n%s", ini,
                again ? again : "(null)");
        abort();
    }
    free(again);
    run_plans_free(back, n);
    experiment_free(&e);
    free(ini);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct experiment e;
    struct run_plan *plans = NULL;
    size_t n = 0;
    char *text = malloc(size + 1);

    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    if (experiment_parse(&e, text, "fuzz.ini", NULL, 0) == RL_OK) {
        if (experiment_n_runs(&e) <= MAX_RUNS && experiment_expand(&e, tiny_shapes, NULL, &plans, &n) == RL_OK) {
            for (size_t i = 0; i < n && i < MAX_CHECKED; i++)
                check_roundtrip(&plans[i]);
            run_plans_free(plans, n);
        }
        experiment_free(&e);
    }
    free(text);
    return 0;
}

#include "tests/fuzz/fuzz_replay.h"
