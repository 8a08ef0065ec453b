/*
 * config_util.h: helpers of the experiment-file suites (check_config.c,
 * check_config_grid.c, check_config_axes.c, check_config_store.c).
 */
#ifndef RANDLORA_TESTS_CONFIG_UTIL_H
#define RANDLORA_TESTS_CONFIG_UTIL_H

#include <stddef.h>

#include "experiments/config.h"
#include "methods/adapter.h"

/* clip-tiny's adapted linears for a plan's targets: width 128, MLP 512,
 * 4 layers per tower (an exp_shapes_fn; ctx a struct fake_model). Targets
 * that select no layer give n = 0, as runner_plan_shapes does. */
struct fake_model {
    struct adapter_shape shapes[64];
    size_t calls;
};
int fake_shapes(void *ctx, const struct run_plan *plan, const struct adapter_shape **shapes,
                size_t *n);

/* experiment_parse(e, text, "t.ini", no overrides) */
int parse(struct experiment *e, const char *text);
/* parse must fail with RL_ERR_ARG and exactly this message */
void expect_error(const char *text, const char *const *ov, size_t n_ov, const char *msg);
/* parse must fail with RL_ERR_ARG and a message starting with prefix */
void expect_error_prefix(const char *text, const char *prefix);
const struct exp_method *find_method(const struct experiment *e, const char *name);

/* render, re-parse (no shapes), expand: one plan, the same in every field
 * (compared here field by field, independently of run_plan_diff), and the
 * same text rendered again */
void check_round_trip(const struct run_plan *a);

/* experiments/NAME, or $RANDLORA_EXPERIMENTS/NAME */
const char *experiment_path(const char *name);

/* an experiment file with every key set to a value other than its default */
extern const char every_key[];

#endif /* RANDLORA_TESTS_CONFIG_UTIL_H */
