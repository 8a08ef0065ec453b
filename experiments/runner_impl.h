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
#include "datasets/transforms.h"
#include "experiments/runner.h"
#include "models/clip.h"
#include "models/optim.h"
#include "results/store.h"

struct run_head;                 /* train_head.c */
struct run_lm;                   /* train_lm.c */
struct linear_head;

struct run_state {
    const struct run_plan *plan;
    const struct runner_hooks *hooks;
    /* the classifier: NULL, CLIP's class prompts (the fields below); else
     * model.head = linear, an image backbone + a trained linear head, whose
     * state train_head.c owns (the prompt fields then stay unused) */
    struct run_head *rh;
    /* a decoder on commonsense data (run_plan_is_lm): train_lm.c owns the
     * model, tokenizer and items; the CLIP fields stay unused */
    struct run_lm *lm;
    size_t lm_empty_items;       /* training items the cutoff left no loss in   */

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
    /* train.loss = inbatch (train_inbatch.c): the micro-batch's prompts, their
     * features and gradients, the targets; NULL for the prompts loss */
    int32_t *ib_ids;             /* (B, ctx)                                     */
    float *ib_txt, *ib_dtxt;     /* (B, D)                                       */
    int32_t *ib_targets;         /* (B) first index of each row's class          */

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

    size_t images_seen;          /* training images in this call (all ranks')    */

    /* data-parallel runs (core/dist.h; one rank in one process): each
     * step's rows-weighted micro-batch losses, this rank's (accumulate; 0
     * for the others' micro-batches) and every rank's (K x accumulate);
     * each rank's outcome of its share (K) */
    double *micro_loss, *micro_loss_all;
    struct share_outcome *outcomes;
    char *weights_path;          /* the model's safetensors file (rebase), or NULL */
};

/* The first micro-batch of step `step` (1-based) is micro-batch
 * (step - 1) * accumulate of the data stream: put the loader there. */
int run_seek(struct run_state *s, size_t step);

/* The rank's share of the steps: RL_ERR_ARG when train.accumulate is
 * below the number of ranks (each rank computes at least one micro-batch);
 * the buffers above. */
int run_share_init(struct run_state *s);

/* runner_init.c: train.init_adapter read into the run's adapters (nothing
 * without it); RL_ERR_ARG / RL_ERR_FORMAT naming the directory */
int run_init_adapter(struct run_state *s);

/* One optimizer step (1-based `step`), the step's micro-batches shared
 * among the ranks (docs/cluster.md) and their gradients summed. *loss: the rows-weighted mean
 * loss; *gnorm: the norm before clipping; *lr: the lr used. RL_OK, or
 * RL_ERR with `why` filled ("non-finite loss (nan) at step 3, micro-batch 0")
 * when the loss or the norm is not finite (the optimizer is then not
 * stepped), or a loader / model error. */
int run_step(struct run_state *s, size_t step, double *loss, double *gnorm, double *lr,
             char *why, size_t why_size);

/* ------------------------------------------- train_inbatch.c: the loss */

/* targets[i] = the first j with labels[j] == labels[i] (the authors'
 * argmax over the same-class matrix squared) */
void inbatch_targets(const int32_t *labels, size_t n, int32_t *targets);

/* The forward of one in-batch micro-batch: n <= B images x (n, 3, H, W)
 * with these labels; the text side (one class prompt per image) through
 * the adapted text tower, or copied from the frozen class features
 * (computed once into s->txt); the vision tower; *loss = the mean
 * cross-entropy of the n x n image x prompt logits (s->scale) against
 * inbatch_targets. */
int  inbatch_forward(struct run_state *s, const float *x, const int32_t *labels, size_t n,
                     double *loss);
/* Its backward, scaled by dloss: adds to the adapters' gradients (s->ca)
 * through both towers where they are adapted. */
void inbatch_backward(struct run_state *s, size_t n, float dloss);

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

/* dropout masks of micro-batch `mb` of the run (train_step.c) */
void run_seed_dropout(struct run_state *s, uint64_t mb);

/* ------------------------------------- train_head.c: model.head = linear */

/* Before the loaders: the image size and, for DINOv2, the preprocessing
 * (*custom: tf replaces CLIP's transform); allocates s->rh. */
int  run_head_prepare(struct run_state *s, size_t *size, struct transform *tf, bool *custom);
/* After the adapters: the head, the optimizer over adapters + head, the
 * backbone's activations. */
int  run_head_init(struct run_state *s);
void run_head_free(struct run_state *s);
size_t run_head_activation_floats(const struct run_state *s);
int  run_head_step(struct run_state *s, size_t step, double *loss, double *gnorm, double *lr,
                   char *why, size_t why_size);
int  run_head_eval(struct run_state *s, struct loader *L, const char *what, double *accuracy,
                   double *loss);
/* the head (NULL for the prompt classifier) */
const struct linear_head *run_head_of(const struct run_state *s);
/* the same, to write its parameters (train.init_adapter, runner_init.c) */
struct linear_head *run_head_params(struct run_state *s);
/* DINOv2's transform from DIR/preprocessor_config.json (exposed for tests) */
int  head_preprocessing(const char *dir, size_t image_size, size_t data_size,
                        struct transform *t, bool *from_file);

/* ------------------------------- train_lm.c: a decoder on commonsense data */

/* Everything a decoder run needs before its first step (after s->plan,
 * trains, B, accumulate): allocates s->lm, fills the sample, the split,
 * the schedule and the optimizer. */
int    run_lm_init(struct run_state *s);
void   run_lm_free(struct run_state *s);
int    run_lm_step(struct run_state *s, size_t step, double *loss, double *gnorm, double *lr,
                   char *why, size_t why_size);
/* accuracy by greedy generation and the teacher-forced loss: of the
 * validation items (val) or the test tasks (the mean of their accuracies) */
int    run_lm_eval(struct run_state *s, bool val, double *accuracy, double *loss);
size_t run_lm_n_trainable(const struct run_state *s);
float *run_lm_params(struct run_state *s);
size_t run_lm_activation_floats(const struct run_state *s);
size_t run_lm_shared(struct run_state *s, struct adapter_tensor *t, size_t max);
/* the adapted sites: their count, and site k's adapter with its module path
 * (model.layers.N.self_attn.q_proj) into name; /adapter is written from them */
size_t run_lm_n_sites(const struct run_state *s);
struct adapter *run_lm_site(struct run_state *s, size_t k, char *name, size_t size);
/* /lm/<task>/{accuracy, correct, total, generations} of the last test eval */
int    run_lm_write_results(struct store *st, struct run_state *s);

/* The evaluation of the validation split (val) or the test set, whichever
 * kind of run s is (train_step.c). */
int run_eval_split(struct run_state *s, bool val, const char *what, double *accuracy,
                   double *loss);

/* The checkpoint block (either classifier): its floats; the parameters
 * gathered into it (the adapters' block itself for the prompt classifier,
 * NULL when nothing trains); after a checkpoint was read into that buffer,
 * run_ckpt_scatter puts it back where the parameters live. */
size_t run_n_trainable(const struct run_state *s);
float *run_ckpt_params(struct run_state *s);
void   run_ckpt_scatter(struct run_state *s);

/* ---------------------------------------------- runner_results.c: the file */

/* the method's shared frozen tensors (VeRA's A/B, RandLoRA's bases), at most
 * max into t; 0 for method none */
size_t runner_shared_count(struct run_state *s, struct adapter_tensor *t, size_t max);

/* Create the results file with the run's metadata (store_create). */
int runner_create_store(struct store **st, struct run_state *s, const char *path, const char *ini,
                        size_t flush_every);

/* what an earlier writer of a file left: completed, its last eval and wall */
struct run_prior {
    bool completed;
    struct store_final fin;
    double last_wall;
    int64_t last_eval_step;
    double last_acc, last_loss;
};

/* Read it (RL_ERR_ARG when the file holds another configuration than ini). */
int runner_read_prior(const char *path, const char *ini, const char *id, struct run_prior *pr);

/* The end of a finished run: store_finish, /adapter, root attr runner_steps,
 * /final (completed last), store_commit. Until the commit's rename the
 * file is the unfinished run, after it the complete one. */
int runner_commit_final(struct store *st, struct run_state *s, const struct store_final *f);

/* The end of a run stopped by a non-finite value: root attrs stopped and
 * stopped_step committed the same way; /final/completed stays 0. */
int runner_commit_stopped(struct store *st, const char *why, size_t step);

/* peak resident set size of the process (getrusage), -1 when unknown */
int64_t runner_peak_rss_bytes(void);

#endif /* RANDLORA_EXPERIMENTS_RUNNER_IMPL_H */
