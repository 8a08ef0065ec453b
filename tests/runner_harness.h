/*
 * runner_harness.h: helpers the runner suites share (check_runner.c,
 * check_runner_val.c, check_commit.c, check_stop.c). Failures abort the
 * test (Check).
 */
#ifndef RANDLORA_TESTS_RUNNER_HARNESS_H
#define RANDLORA_TESTS_RUNNER_HARNESS_H

#include <stdbool.h>
#include <stddef.h>

#include "experiments/config.h"
#include "experiments/runner.h"
#include "models/clip.h"

/* a CLIP with clip-tiny's byte vocabulary, 16x16 images, width 32, 3 layers */
void runner_tiny_config(struct clip_config *c);

/* a fresh /tmp/rl_runner_XXXXXX; with_model: a tiny random CLIP saved in
 * dir/model */
struct tmp {
    char dir[64];
    char model[128];
};
void tmp_setup(struct tmp *t, bool with_model);
void tmp_cleanup(struct tmp *t);

/* the text of a one-run experiment file on the tiny model (shapes-count, 4
 * shots, LoRA r 4 on both towers' q, v, fc1, 6 steps of 12, eval and
 * checkpoint every 3, output t->dir) */
void tiny_ini_text(char *text, size_t cap, const struct tmp *t);

/* Overrides that make it short: 3 steps of 4 (a checkpoint at 2: the last
 * step is redone on resume), eval at 2 and after the last, a small adapter
 * (r2 on the vision tower's q_proj: 3 sites), 8 eval items. */
#define RUN_SHORT_N 8
#define RUN_SHORT_STEPS 3
extern const char *const run_short[RUN_SHORT_N];

/* its plan, with overrides */
void make_plan(struct run_plan **plans, struct experiment *e, const struct tmp *t,
               const char *const *ov, size_t n_ov);

/* runner_run with verbosity 0 */
int run_quiet(const struct run_plan *p, const char *path, const struct runner_hooks *h,
              bool resume, struct runner_result *res);

/* every /adapter tensor of a finished file, concatenated (caller frees) */
float *read_adapter(const char *path, size_t *n_out);

/* on_step hook: _exit(0) after step *(size_t *)ctx */
void exit_at_step(void *ctx, size_t step);

/* plans[0] twice in t's folder: "interrupted.h5", killed at step 7 in a
 * child and resumed from its checkpoint at step 6, and "straight.h5", run
 * through; both adapters out, asserted to be the same size */
void interrupted_and_straight(const struct run_plan *plan, const struct tmp *t,
                              char a[256], char b[256], float **pa, float **pb,
                              size_t *n, struct runner_result *res);

/* A command (commands.h) with stdout and stderr both captured: its exit
 * status; *text (caller frees) what it printed. argv[argc] must be NULL. */
typedef int (*cmd_fn)(int argc, char **argv);
int run_cmd_captured(cmd_fn cmd, int argc, char **argv, char **text);

/* the final test loss of a finished run file (asserts it completed) */
double run_final_loss(const char *path);

#endif /* RANDLORA_TESTS_RUNNER_HARNESS_H */
