/*
 * pretrain_vit.h: `randlora pretrain` for a DINOv2-layout preset (vit-tiny):
 * supervised classification from a random init on a labelled procedural
 * dataset (model.pretrain_data: `shapes`, the kind of the first shape, 4
 * classes; or `shapes-count`, 3), so the offline budget experiment
 * fine-tunes a backbone that has learnt image features.
 *
 *     struct pretrain_vit_result r;
 *     rc = pretrain_vit_run(&e.model, NULL, &r);   // e from experiment_load
 *
 * What it does: dinov2_model_preset(model->name, pretrain_seed) (HF's
 * init), a temporary linear head (head.h, nn.Linear's init) on the
 * features DINOv2's linear evaluation reads (class token + mean of the
 * patch tokens, DINOV2_POOL_CLS_MEAN), softmax cross-entropy on the
 * dataset's labels; every backbone weight and the head trained
 * (dinov2_backward_full; LayerScale, which block.h gives no gradient, is
 * kept at its init value: a per-channel scale the out_proj / fc2 rows
 * already express), AdamW (pretrain_lr, pretrain_weight_decay on every
 * weight), cosine schedule with pretrain_warmup linear warmup down to
 * lr / 100, gradient clipping at 1.0 over backbone and head together,
 * batches of pretrain_batch drawn without augmentation from the first
 * pretrain_corpus training items, preprocessed as the runner preprocesses
 * this directory for fine-tuning (head_preprocessing: ImageNet mean/std at
 * the model's image size). The head is discarded.
 *
 * model.pretrain_steps = 0 writes the random init untrained (the baseline
 * a pretrained backbone is compared with); nothing is evaluated then.
 *
 * Held-out: the head's mean cross-entropy and accuracy on the first
 * eval_items items of the dataset's test split (another root: no image is
 * shared with training), before training and after.
 *
 * The model directory (model->pretrain_dir) gets, in this order:
 *     config.json, model.safetensors   (dinov2_model_save, F32, HF names:
 *                                       dinov2_io / backbone_model_load read it)
 *     pretrain.json                    the settings and held-out figures;
 *                                      written last: its presence marks a
 *                                      complete directory
 * Cached: a directory whose pretrain.json holds the same settings (the
 * keys above and the model's config) is kept (r.skipped); other settings
 * train again and replace the files.
 */
#ifndef RANDLORA_EXPERIMENTS_PRETRAIN_VIT_H
#define RANDLORA_EXPERIMENTS_PRETRAIN_VIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "experiments/config.h"
#include "models/clip.h"

struct pretrain_vit_options {
    const struct clip_config *cfg;  /* NULL: the preset model->name; tests pass a
                                       smaller DINOv2 config (the runner reads
                                       only the preset's)                        */
    int    verbosity;               /* 0 silent, 1 progress line                  */
    FILE  *log;                     /* NULL: stderr                               */
    size_t eval_items;              /* held-out items; 0: 2000                    */
};

struct pretrain_vit_result {
    bool   skipped;                 /* the directory was complete already        */
    size_t steps;
    double seconds;
    size_t classes;                 /* of pretrain_data                          */
    double final_loss;              /* mean training loss of the last 10% of steps */
    double init_heldout_loss;       /* held-out cross-entropy before training    */
    double init_heldout_acc;
    double heldout_loss;            /* after training                            */
    double heldout_acc;
    size_t heldout_items;
};

int pretrain_vit_run(const struct exp_model *model, const struct pretrain_vit_options *opt,
                     struct pretrain_vit_result *res);

/* Does model->pretrain_dir hold this preset pretrained with these settings
 * (pretrain.json last written, settings equal)? */
bool pretrain_vit_is_cached(const struct exp_model *model);

#endif /* RANDLORA_EXPERIMENTS_PRETRAIN_VIT_H */
