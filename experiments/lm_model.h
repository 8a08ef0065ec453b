/*
 * lm_model.h: what the runner and the other commands need to know about a
 * plan whose model is a Llama-family decoder (experiments/train_lm.c):
 * its config, the adapted linears' shapes (budget matching), the mapping
 * of method.modules onto the decoder's linears, and llama-tiny's byte-level
 * tokenizer.json.
 *
 * method.modules on a decoder: q_proj, k_proj, v_proj as named, out_proj =
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
/* a tokenizer.json whose ids are the bytes (0..255, byte-level symbols, no
 * merges) with <s> = bos and </s> = eos added as special tokens: the
 * llama-tiny preset's vocabulary */
int  lm_write_byte_tokenizer(const char *path, int bos, int eos);

#endif /* RANDLORA_EXPERIMENTS_LM_MODEL_H */
