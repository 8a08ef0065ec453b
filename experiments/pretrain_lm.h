/*
 * pretrain_lm.h: `randlora pretrain` for a decoder preset (llama-tiny):
 * next-token prediction from a random init (llama_model_preset with
 * model.pretrain_seed) on the procedural corpus of the commonsense task's
 * small world (cs_synth_corpus: sentences stating its facts), so the
 * offline language quickstart fine-tunes a model that knows the facts but
 * not the task format.
 *
 * Every weight trains: AdamW (model.pretrain_lr, pretrain_weight_decay),
 * cosine schedule with pretrain_warmup linear warmup down to lr / 100,
 * gradient clipping at 1.0; pretrain_steps steps of pretrain_batch windows
 * of PRETRAIN_LM_SEQ bytes (as long as llama-tiny's positions and the
 * fine-tuning items with their prompt template, 356 to 465 bytes: with 128
 * the model never attended further back than 128 bytes, and fine-tuned it
 * ignored the answer format its prompt asked for, docs/experiments.md)
 * drawn at random (pretrain_seed) from a corpus of
 * pretrain_corpus lines (about 48 bytes each); llama-tiny's vocabulary is
 * the bytes, so a byte is a token. The last 5% of the corpus is held out:
 * its mean token loss is reported after training.
 *
 * The directory (model.pretrain_dir) gets config.json, model.safetensors
 * (F32), tokenizer.json (the byte-level one, lm_model.h) and pretrain.json
 * (the settings, written last); a directory whose pretrain.json holds the
 * same settings is kept (result.skipped).
 */
#ifndef RANDLORA_EXPERIMENTS_PRETRAIN_LM_H
#define RANDLORA_EXPERIMENTS_PRETRAIN_LM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "experiments/config.h"

#define PRETRAIN_LM_SEQ 512

struct pretrain_lm_result {
    bool   skipped;
    size_t steps;
    double seconds;
    double final_loss;          /* mean loss of the last 10% of steps        */
    double heldout_loss;        /* mean token loss on the held-out corpus    */
};

/* verbosity 0: silent, 1: a progress line; log NULL: stderr */
int pretrain_lm_run(const struct exp_model *model, int verbosity, FILE *log,
                    struct pretrain_lm_result *r);

#endif /* RANDLORA_EXPERIMENTS_PRETRAIN_LM_H */
