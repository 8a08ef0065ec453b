/*
 * runner.h: one fine-tuning run, from a resolved run plan (experiments/
 * config.h) to a results file (results/store.h).
 *
 *     struct runner_options o;
 *     struct runner_result res;
 *     runner_options_init(&o);
 *     o.resume = true;                       // continue RUN.h5 if it has a checkpoint
 *     rc = runner_run(&plans[i], "out/runs/x/lora-r8-s4-seed1.h5", &o, &res);
 *     if (rc) ... rl_error_msg() has one line; rl_exit_code(rc) ...
 *     printf("%s %.4f %zu\n", plans[i].id, res.accuracy, res.n_trainable);
 *
 * What a run does (runner.c, train_step.c):
 *   - the model: a preset name loads the pretrained model directory
 *     plan->model.pretrain_dir (written by `randlora pretrain`; a missing one
 *     is RL_ERR_ARG naming the command to run); a path loads that Hugging
 *     Face directory. The tokenizer comes from the same directory
 *     (runner_load_tokenizer);
 *   - data: the train spec, k-shot or fraction sampled with
 *     plan->sample_seed (indices stored in the file); the validation split
 *     (plan->val, optional): items of every class held out of the training
 *     pool before the shots are drawn (datasets/fewshot.h fewshot_split), or
 *     the first eval_limit items of its own spec (indices stored); the eval
 *     (test) spec, its first eval_limit items; all through the loader at the
 *     model's image size (CLIP transform; augmentation as plan->augment, for
 *     training only);
 *   - class prompts: plan->prompt with each class name, tokenized once; for
 *     evaluation with templates = dataset, the dataset's templates ensembled
 *     (clip_class_features);
 *   - adapters on plan->targets (clip_adapters_init); method `none`: the
 *     frozen model is evaluated once (step 0) and nothing is trained;
 *   - a step: `accumulate` micro-batches, each: text tower on the class
 *     prompts (when the text tower has adapters; otherwise the class
 *     features are computed once), vision tower on the images, logits =
 *     exp(logit_scale) * cosine with the model's logit_scale frozen,
 *     cross-entropy, backward through both towers into the trainable block.
 *     With accumulate > 1 each micro-batch's loss is weighted by its rows
 *     and the gradient divided by the step's rows, so 2 x B equals one batch
 *     of 2B up to float rounding. Then clip_grad_norm (train.clip; 0: no
 *     clipping, the norm is still recorded), lr from lr_cosine (warmup,
 *     lr_min), adamw_step. Each adapted linear takes the factored or the
 *     merged path for the whole step (models/clip.h clip_adapters_begin_step:
 *     the cheaper one for B * tokens vision rows and M * cut text rows,
 *     factored under dropout; RANDLORA_ADAPTER_PATH=auto|factored|merged
 *     forces it): merged weights are merged in place before the first
 *     micro-batch and unmerged before adamw_step, and re-read bit for bit
 *     from the model's model.safetensors at every checkpoint, every
 *     CLIP_REBASE_EVERY steps and at the end (the file must not change
 *     during the run);
 *   - evaluation every eval_every steps and after the last: accuracy and
 *     mean cross-entropy (adapters in eval mode, no grad; merged where
 *     cheaper, as no dropout applies) on the validation split when the run
 *     has one, else on the eval set; these are the /eval rows (attribute
 *     split says which). After the last step the test (eval) set is
 *     evaluated too, and only then: nothing during training reads it;
 *   - a checkpoint every checkpoint_every steps: the trainable block, AdamW's
 *     m and v, the step (= AdamW's t), the run's RNG. The data order and
 *     augmentation are functions of (seed, epoch, batch) (loader.h) and the
 *     dropout streams are re-derived from (init seed, step, micro-batch,
 *     layer) before every micro-batch, so nothing else needs saving: a run
 *     resumed from step s computes exactly what the uninterrupted run
 *     computed after step s (bit for bit, same thread count);
 *   - a non-finite loss or gradient norm stops the run: the step's /train row
 *     is appended with the non-finite value, root attributes `stopped`
 *     ("non-finite loss (nan) at step 12, micro-batch 2") and `stopped_step`
 *     are written, /final/completed stays 0, and runner_run returns RL_ERR
 *     with that message.
 *
 * The results file (store.h's schema 1) gets, besides the store's phase-1
 * layout: /config = run_plan_to_ini(plan); /method counts (n_trainable, and
 * n_frozen_shared = the method's shared tensors, VeRA's A/B or RandLoRA's
 * bases); /data/train_index, /data/val_index; /train and /eval live; /final
 * (test accuracy and loss, val_accuracy and val_loss with a split, peak RSS
 * from getrusage, training images/s); and after training:
 *     /adapter                     attrs method (string), r (int64)
 *     /adapter/<site>/<tensor>     float32, peft's tensor names and shapes
 *                                  (adapter_tensors), site = clip_site_name,
 *                                  e.g. vision_model.encoder.layers.0.self_attn.q_proj;
 *                                  group attrs d_out, d_in (int64)
 *     /adapter/shared/<name>       the method's shared frozen tensors
 *                                  (adapter_method_tensors), when it has any
 * (no /adapter for `none`). Root attr `runner_steps` (int64): the steps done.
 *
 * Threads: the caller applies the policy (threads_init) once per process;
 * the runner only reads it (threads_describe into the file).
 */
#ifndef RANDLORA_EXPERIMENTS_RUNNER_H
#define RANDLORA_EXPERIMENTS_RUNNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "experiments/config.h"
#include "methods/adapter.h"
#include "models/clip.h"
#include "models/tokenizer.h"

/* test and instrumentation hooks; every member may be NULL */
struct runner_hooks {
    void *ctx;
    /* after micro-batch `micro` (0-based) of step `step` (1-based) computed
     * its mean loss; may change it (tests inject NaN) */
    void (*on_loss)(void *ctx, size_t step, size_t micro, double *loss);
    /* the step's gradient (accumulated and averaged over its micro-batches,
     * before clipping), n = n_trainable */
    void (*on_grads)(void *ctx, size_t step, const float *grads, size_t n);
    /* after step `step` is complete: optimizer stepped, /train row appended,
     * eval and checkpoint done when due (tests interrupt the run here) */
    void (*on_step)(void *ctx, size_t step);
};

struct runner_options {
    bool resume;            /* continue out_path from its checkpoint when it has one
                               (no file: start afresh; a completed file: report it) */
    int  verbosity;         /* 0 silent, 1 progress line + eval lines (default)     */
    FILE *log;              /* where progress goes; NULL: stderr                   */
    size_t flush_every;     /* store's /train flush period; 0: 1 (every row)      */
    const char *resume_command; /* named in the interruption message ("randlora
                               train -c x.ini --resume"); NULL: "--resume"        */
    const struct runner_hooks *hooks;
};

struct runner_result {
    double   accuracy, loss;     /* final eval on the test set (NaN when stopped) */
    double   val_accuracy, val_loss; /* final eval on the validation split (NaN:
                                        none, or stopped)                         */
    size_t   n_val_items;        /* validation items (0: no split)                */
    size_t   n_trainable, n_frozen_shared;
    size_t   n_train_items;      /* sampled training items                        */
    size_t   steps;              /* optimizer steps done in all (incl. resumed)   */
    size_t   resumed_from;       /* step the run resumed at (0: fresh)            */
    double   seconds;            /* wall time of this call                        */
    double   images_per_s;       /* training images per second (this call)        */
    int64_t  peak_rss_bytes;
    size_t   activation_bytes;   /* the towers' activations and workspaces        */
    bool     already_complete;   /* resume found a finished run: nothing done     */
    bool     stopped;            /* non-finite loss or norm                       */
};

void runner_options_init(struct runner_options *o);

/* One run (see above). out_path's directory must exist. RL_ERR_ARG for a
 * plan the model or data refuse (a missing pretrained model, an image size
 * other than the model's, too few items for the shots), RL_ERR_IO /
 * RL_ERR_FORMAT for files, RL_ERR_WRITE when the results file cannot be
 * written (disk full, I/O error: the file then resumes once the cause is
 * gone), RL_ERR for a stopped (non-finite) run, RL_ERR_INTERRUPTED after a
 * SIGINT or SIGTERM (core/interrupt.h, installed by the caller): the step in
 * progress is finished and recorded, the run stops with "<id>: interrupted
 * at step N (SIGINT); resume with <opt->resume_command>", and the file
 * resumes bit for bit. res may be NULL. */
int runner_run(const struct run_plan *plan, const char *out_path,
               const struct runner_options *opt, struct runner_result *res);

/* ------------------------------------------------------------------------ */
/* helpers shared with other commands (pretrain, sweep, encode, ...)         */

/* The model directory of a plan's model: plan->model.pretrain_dir for a
 * preset, the name itself for a path. */
const char *runner_model_dir(const struct exp_model *model);

/* Open a model: a preset loads its pretrained directory (RL_ERR_ARG naming
 * `randlora pretrain -c FILE` when it is not there), a path loads the
 * directory. */
int runner_load_model(struct clip_model *m, const struct exp_model *model);

/* The tokenizer of a model directory: CLIP BPE when DIR has vocab.json +
 * merges.txt or tokenizer.json; byte-level when DIR/tokenizer_bytes.json
 * exists ({"type": "bytes", "offset": 0, "sot": 256, "eot": 257}, written by
 * `randlora pretrain`) or, with no tokenizer file at all, when the config
 * is clip-tiny's byte layout (vocab 258, bos 256, eos 257). Framed to the
 * model's context, padded with its pad_token_id, truncating. */
int runner_load_tokenizer(struct tokenizer **out, const char *dir, const struct clip_config *cfg);

/* A class prompt: tmpl with its first "{}" replaced by name (tmpl as it is
 * when it has none), truncated to size. */
void runner_fill_prompt(char *buf, size_t size, const char *tmpl, const char *name);

/* mkdir -p: create dir and its missing parents (RL_ERR_IO naming it). */
int runner_mkdir_p(const char *dir);

/* Budget matching for experiment_expand: the adapted layers' shapes of a
 * plan from its model's config (preset, or DIR/config.json; no weights
 * read). ctx is a struct runner_shapes, zeroed before the first call and
 * released with runner_shapes_free. */
struct runner_shapes {
    struct adapter_shape *shapes;
    size_t n, cap;
};
int  runner_plan_shapes(void *ctx, const struct run_plan *plan,
                        const struct adapter_shape **shapes, size_t *n);
void runner_shapes_free(struct runner_shapes *s);

/* The adapted layer shapes of targets on a config (vision before text, by
 * layer, by linear: clip_adapters' site order); *n = the count. out may be
 * NULL to count; at most max are written. */
size_t runner_target_shapes(const struct clip_config *cfg, const struct exp_targets *t,
                            struct adapter_shape *out, size_t max);

#endif /* RANDLORA_EXPERIMENTS_RUNNER_H */
