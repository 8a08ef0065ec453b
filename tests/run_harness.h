/*
 * run_harness.h: the tiny fine-tuning setup the runner suites share
 * (check_runner.c, check_commit.c, check_interrupt.c): a random CLIP with
 * clip-tiny's byte vocabulary (16x16 images, width 32, 3 layers) saved into
 * a temporary directory, a one-run experiment on the procedural shapes-count
 * data, a quiet run, and a finished file's adapter. Failures abort the test
 * (Check).
 */
#ifndef RANDLORA_TESTS_RUN_HARNESS_H
#define RANDLORA_TESTS_RUN_HARNESS_H

#include <stdbool.h>
#include <stddef.h>

#include "experiments/config.h"
#include "experiments/runner.h"
#include "models/clip.h"

struct tmp {
    char dir[64];                   /* /tmp/rl_runner_XXXXXX   */
    char model[128];                /* dir/model, the tiny CLIP */
};

/* clip-tiny's byte vocabulary, 16x16 images, width 32, 3 layers */
void run_tiny_config(struct clip_config *c);

/* a fresh directory, with the tiny model saved in it when with_model */
void tmp_setup(struct tmp *t, bool with_model);
void tmp_cleanup(struct tmp *t);

/* the experiment file's text: lora r4 on both towers (q, v, fc1), 6 steps
 * of 12, eval and checkpoint every 3, output t->dir */
void tiny_ini_text(char *text, size_t cap, const struct tmp *t);

/* its one plan, with overrides ("train.steps=2") */
void make_plan(struct run_plan **plans, struct experiment *e, const struct tmp *t,
               const char *const *ov, size_t n_ov);

/* Overrides that make the plan short: 3 steps of 4 (a checkpoint at 2: the
 * last step is redone on resume), eval at 2 and after the last, a small
 * adapter (r2 on the vision tower's q_proj: 3 sites), 8 eval items. */
#define RUN_SHORT_N 8
#define RUN_SHORT_STEPS 3
extern const char *const run_short[RUN_SHORT_N];

/* runner_run with verbosity 0 */
int run_quiet(const struct run_plan *p, const char *path, const struct runner_hooks *h,
              bool resume, struct runner_result *res);

/* every /adapter tensor of a finished file, concatenated (allocated) */
float *read_adapter(const char *path, size_t *n_out);

#endif /* RANDLORA_TESTS_RUN_HARNESS_H */
