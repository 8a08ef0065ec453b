/*
 * lm_model.h: what the runner and the other commands need to know about a
 * plan whose model is a Llama-family decoder (experiments/train_lm.c):
 * its config, the adapted linears' shapes (budget matching), the mapping
 * of method.modules onto the decoder's linears, and llama-tiny's byte-level
 * tokenizer.json.
 *
 * method.modules on a decoder: q_proj, k_proj, v_proj as named (in_proj: the
 * three), out_proj =
 * o_proj, fc1 = up_proj, fc2 = down_proj (so the default list is the
 * paper's q, k, v, up, down); gate_proj is not reachable from an experiment
 * file. method.towers does not apply.
 */
#ifndef RANDLORA_EXPERIMENTS_LM_MODEL_H
#define RANDLORA_EXPERIMENTS_LM_MODEL_H

#include <stdbool.h>
#include <stddef.h>

#include "experiments/config.h"
#include "methods/adapter.h"
#include "models/llama.h"

/* the model is a decoder: a llama preset, or a directory whose
 * config.json names a causal LM */
bool lm_model_is_decoder(const struct exp_model *m);
/* the decoder's config: a preset's shapes, or DIR/config.json */
int  lm_plan_config(const struct exp_model *m, struct llama_config *cfg);
/* the llama target of a plan's method.layers and method.modules */
void lm_plan_target(const struct exp_targets *t, struct llama_target *out);
/* the adapted linears' (d_out, d_in), layer by layer: at most max into out
 * (may be NULL); returns how many there are */
size_t lm_target_shapes(const struct llama_config *c, const struct exp_targets *t,
                        struct adapter_shape *out, size_t max);
/* The split of N training items (train_lm.c draws which): *n_val held out
 * by data.val (N items or a fraction of all), *n_train the data.fractions
 * share of the rest (at least 1). RL_ERR_ARG naming the run for data.shots,
 * a data.val spec, or a split that holds out none or all. */
int  lm_split_counts(const struct run_plan *p, size_t N, size_t *n_val, size_t *n_train);
/* the dry run's data check of a decoder plan: DIR/train.json read, at
 * least one DIR/<task>/test.json there; *n_train as the run samples */
int  lm_check_data(const struct run_plan *p, size_t *n_train);

/* A decoder run's trained adapters (its results file) on m, for forwards
 * of at most max_rows rows, in evaluation mode (lm_run_adapters.c).
 * RL_ERR_ARG when the file is no decoder run with adapters or they do not
 * fit m; RL_ERR_FORMAT for a missing or mis-sized tensor. */
int  lm_run_adapters_load(const char *path, const struct llama_model *m,
                          struct llama_adapters *la, size_t max_rows);

/* a tokenizer.json whose ids are the bytes (0..255, byte-level symbols, no
 * merges) with <s> = bos and </s> = eos added as special tokens: the
 * llama-tiny preset's vocabulary */
int  lm_write_byte_tokenizer(const char *path, int bos, int eos);

#endif /* RANDLORA_EXPERIMENTS_LM_MODEL_H */
