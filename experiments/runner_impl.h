/*
 * runner_impl.h: the state of one run, shared by runner.c (set-up, the
 * results file, resume) and train_step.c (the optimizer step and the
 * evaluation). Internal to the runner.
 */
#ifndef RANDLORA_EXPERIMENTS_RUNNER_IMPL_H
#define RANDLORA_EXPERIMENTS_RUNNER_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/rng.h"
#include "datasets/dataset.h"
#include "datasets/loader.h"
#include "experiments/runner.h"
#include "models/clip.h"
#include "models/optim.h"

struct run_state {
    const struct run_plan *plan;
    const struct runner_hooks *hooks;

    struct clip_model m;
    bool trains;                 /* a method with a trainable block (not none) */
    struct clip_adapters ca;
    bool vision_adapted, text_adapted;
    struct clip_vision_run vr;
    struct clip_text_run tr;
    struct clip_head head;

    size_t M;                    /* classes                                      */
    size_t K;                    /* eval templates per class                     */
    size_t D, ctx, B, accumulate;
    float scale;                 /* exp(logit_scale), frozen                     */

    int32_t *train_ids;          /* (M, ctx) the class prompts                   */
    int32_t *eval_ids;           /* (M*K, ctx) class-major                       */
    float *txt;                  /* (M, D) train text embeddings                 */
    float *dtxt;                 /* (M, D)                                       */
    bool txt_valid;              /* txt holds the frozen text features           */
    float *eval_txt;             /* (M*K, D)                                     */
    float *class_feat;           /* (M, D)                                       */
    bool class_feat_valid;       /* frozen text: eval class features computed    */
    float *img, *dimg;           /* (B, D)                                       */

    struct dataset train_ds, eval_ds;
    struct loader *train_L, *eval_L;
    size_t *train_idx, n_train;
    /* the validation split (plan->val): items val_idx of train_ds when held
     * out of the pool, the first n_val of val_ds for a spec; val_L NULL when
     * the run has none. The test loader eval_L is read only after the last
     * step. */
    bool has_val;
    struct dataset val_ds;
    struct loader *val_L;
    size_t *val_idx, n_val;

    struct adamw opt;
    struct lr_cosine sched;
    size_t total_steps;
    uint64_t dropout_seed;       /* root of the per-micro-batch dropout streams  */
    struct rng rng;              /* the run's RNG (checkpointed)                 */

    size_t images_seen;          /* training images in this call                 */
    char *weights_path;          /* the model's safetensors file (rebase), or NULL */
};

/* The first micro-batch of step `step` (1-based) is micro-batch
 * (step - 1) * accumulate of the data stream: put the loader there. */
int run_seek(struct run_state *s, size_t step);

/* One optimizer step (1-based `step`). *loss: the rows-weighted mean
 * loss; *gnorm: the norm before clipping; *lr: the lr used. RL_OK, or
 * RL_ERR with `why` filled ("non-finite loss (nan) at step 3, micro-batch 0")
 * when the loss or the norm is not finite (the optimizer is then not
 * stepped), or a loader / model error. */
int run_step(struct run_state *s, size_t step, double *loss, double *gnorm, double *lr,
             char *why, size_t why_size);

/* Unmerge the sites the steps left merged, then restore the weights merged
 * since the last rebase from s->weights_path, bit for bit (models/clip.h
 * clip_adapters_rebase); RL_OK when nothing drifted or there is no file.
 * Between steps only. */
int run_rebase(struct run_state *s);

/* Accuracy and mean cross-entropy on the items of loader L (s->val_L or
 * s->eval_L; `what` names the set in errors), adapters in eval mode; layers
 * merged for the eval where that is cheaper, unmerged after. */
int run_eval(struct run_state *s, struct loader *L, const char *what, double *accuracy,
             double *loss);

#endif /* RANDLORA_EXPERIMENTS_RUNNER_IMPL_H */
