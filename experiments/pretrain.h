/*
 * pretrain.h: contrastive pretraining of a small CLIP from scratch (the
 * `randlora pretrain` command), and the held-out checks that say whether the
 * backbone is any good (image->text retrieval, zero-shot classification).
 *
 *     struct pretrain_result r;
 *     rc = pretrain_run(&e.model, NULL, &r);     // e from experiment_load
 *     if (r.skipped) ... the directory already held this model ...
 *
 * What it does: clip_model_preset(model->name, pretrain_seed) (random init,
 * HF's scheme), every weight trainable (clip_grads), AdamW (pretrain_lr,
 * pretrain_weight_decay on every weight), cosine schedule with
 * pretrain_warmup linear warmup down to lr / 100, gradient clipping at 1.0,
 * the symmetric contrastive loss with a trainable logit_scale (clamped to
 * ln 100 as CLIP does) on batches of pretrain_batch image-caption pairs from
 * the first pretrain_corpus items of pretrain_data (`shapes`: the caption of
 * each scene; dataset_caption). Captions are byte-level tokenized and cut to
 * the model's context, as clip.tokenize(truncate=True) does: clip-tiny's 32
 * positions hold the first shape's phrase ("a large striped red circle at
 * th"), not the later shapes.
 *
 * The model directory (model->pretrain_dir) gets, in this order:
 *     config.json, model.safetensors      (clip_model_save, F32, HF names)
 *     tokenizer_bytes.json                {"type": "bytes", "offset": 0,
 *                                          "sot": 256, "eot": 257}: the model
 *                                          has a byte-level tokenizer (read by
 *                                          runner_load_tokenizer)
 *     pretrain.json                       the settings it was trained with and
 *                                          its held-out figures; written last,
 *                                          so its presence marks a complete
 *                                          directory
 * Cached: when the directory holds all four and pretrain.json's settings
 * equal the requested ones, nothing is trained (r.skipped). With other
 * settings the model is trained again and the files replaced.
 *
 * Only byte-level presets can be pretrained (clip-tiny; the OpenAI shapes
 * have a BPE vocabulary and come with weights): RL_ERR_ARG otherwise. A
 * model given as a directory has nothing to pretrain: r.skipped, RL_OK.
 */
#ifndef RANDLORA_EXPERIMENTS_PRETRAIN_H
#define RANDLORA_EXPERIMENTS_PRETRAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "experiments/config.h"
#include "models/clip.h"
#include "models/tokenizer.h"

struct pretrain_options {
    const struct clip_config *cfg;  /* NULL: the preset model->name (tests pass a
                                       smaller byte-level config)              */
    int    verbosity;               /* 0 silent, 1 progress line and summary     */
    FILE  *log;                     /* NULL: stderr                             */
    size_t eval_items;              /* held-out items for the checks; 0: 1024    */
};

struct pretrain_result {
    bool   skipped;                 /* the directory was complete already        */
    size_t steps;
    double seconds;
    double final_loss;              /* mean contrastive loss of the last 10% of steps */
    double heldout_loss;            /* contrastive loss on held-out batches      */
    double retrieval_acc;           /* image->text top-1 within held-out batches */
    size_t retrieval_group;         /* candidates per image (the batch)          */
};

int pretrain_run(const struct exp_model *model, const struct pretrain_options *opt,
                 struct pretrain_result *res);

/* Is dir a complete pretrained directory for these settings? */
bool pretrain_is_cached(const struct exp_model *model);

/* Held-out checks on the first `limit` items of a captioned dataset spec:
 * contrastive loss and image->text top-1 accuracy within consecutive groups
 * of `group` pairs (a caption equal to the true one counts as right). */
int pretrain_retrieval(const struct clip_model *m, const struct tokenizer *tok, const char *spec,
                       size_t limit, size_t group, double *loss, double *acc);

/* Zero-shot accuracy of the frozen model on the first `limit` items of a
 * classification spec: class features from K templates ("a {}") per class
 * (clip_class_features), argmax of the cosine. */
int pretrain_zeroshot(const struct clip_model *m, const struct tokenizer *tok, const char *spec,
                      const char *const *templates, size_t K, size_t limit, double *acc);

/* Shared by every preset kind's pretraining (pretrain_vit.c): does
 * DIR/pretrain.json hold "settings": want? And a new pretrain.json object
 * with "settings", the [model] pretrain_* keys, steps and seconds (the
 * caller adds its figures, prints and frees it). */
bool pretrain_settings_match(const char *dir, const char *want);
/* DIR holds every file of the NULL-terminated list and a pretrain.json
 * whose settings equal want: a whole directory trained as asked */
bool pretrain_dir_is_cached(const char *dir, const char *const *files, const char *want);
struct cJSON *pretrain_json_new(const struct exp_model *model, const char *settings,
                                size_t steps, double seconds);

#endif /* RANDLORA_EXPERIMENTS_PRETRAIN_H */
