/*
 * plan_list.h: run plans as the listing `sweep` prints before it runs and
 * `sweep --dry-run` / `train --dry-run` print instead of running, and the
 * check of a plan's data a dry run makes.
 *
 *     size_t *n_train = xcalloc(n, sizeof(*n_train));
 *     if ((rc = plan_list_check_data(plans, n, n_train)) != RL_OK)
 *         ... rl_error_msg() names the run, the key and the spec; exit 2 ...
 *     size_t w = plan_list_id_width(plans, n);
 *     plan_list_header(stdout, w, true);
 *     for (size_t i = 0; i < n; i++)
 *         plan_list_line(stdout, &plans[i], w, n_train[i], "to run");
 *
 * One line per plan, columns:
 *     id  method  rank  lr  steps  batch  trainable  [state]
 * rank "r=R" for the methods with a rank ("-" otherwise); lr as given (the
 * peak of the schedule); steps the optimizer steps, with train.epochs
 * resolved as the run will (run_plan_total_steps over the sampled training
 * set: "300 (3 ep)"), or "3 ep" when the training set was not counted;
 * batch the effective batch, train.batch x train.accumulate ("64 = 16x4"
 * when accumulate > 1); trainable the adapter's count over the model's
 * shapes (0 when not known); state what the sweep will do with the run file.
 * Method `none` (evaluated, never trained) shows "-" for lr and batch and 0
 * steps.
 */
#ifndef RANDLORA_EXPERIMENTS_PLAN_LIST_H
#define RANDLORA_EXPERIMENTS_PLAN_LIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "experiments/config.h"

/* Open every distinct data.dataset, data.eval and data.val spec of the
 * plans once, check that each plan's eval (and validation) set has its
 * training set's classes, and sample each plan's training set as the run
 * will (fewshot_split: the validation items held out first, then k shots or
 * a fraction per class, with its sample seed) into n_train[i] (the caller's
 * array of n). RL_ERR_ARG naming the run, the key and the spec when a spec
 * cannot be opened, the classes differ, or a class has too few items. */
int plan_list_check_data(const struct run_plan *plans, size_t n, size_t *n_train);

/* The width of the id column: the longest id (at least 24). */
size_t plan_list_id_width(const struct run_plan *plans, size_t n);

/* The column names (state: with the state column). */
void plan_list_header(FILE *out, size_t id_width, bool state);

/* One plan; n_train SIZE_MAX when its training set was not counted, state
 * NULL for no state column. */
void plan_list_line(FILE *out, const struct run_plan *p, size_t id_width, size_t n_train,
                    const char *state);

#endif /* RANDLORA_EXPERIMENTS_PLAN_LIST_H */
