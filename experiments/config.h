/*
 * config.h: experiment files (INI, read with libinih) turned into a sweep
 * description and fully resolved per-run plans.
 *
 *     struct experiment e;
 *     struct run_plan *plans;
 *     size_t n;
 *     const char *ov[] = { "train.lr.vera=1e-2" };          // -s overrides
 *     if ((rc = experiment_load(&e, "experiments/quickstart.ini", ov, 1)))
 *         ... rl_error_msg(): "FILE:LINE: section.key = 'value': expected ..."
 *     if ((rc = experiment_expand(&e, my_shapes, &model, &plans, &n)))
 *         ...                                               // budget matching needs shapes
 *     for (size_t i = 0; i < n; i++) {
 *         char *ini = run_plan_to_ini(&plans[i]);           // stored in the results file
 *         ... run plans[i], file name plans[i].id ...
 *         free(ini);
 *     }
 *     run_plans_free(plans, n);
 *     experiment_free(&e);
 *
 * ---------------------------------------------------------------------------
 * The file. Sections and keys, with their defaults ("-" = no default; see
 * docs/experiments.md for the longer story). A value may continue on
 * indented lines (joined with one space). Comments: lines starting with ';'
 * or '#', and " ;" to the end of a line. Lists are comma-separated. Keys
 * marked [axis] take a list too, expanded as a grid axis (below). The text
 * must be UTF-8. Numbers used in float32 must be in range also after
 * rounding to float32, and 0 or at least 1e-30 in magnitude.
 *
 * [experiment]
 *   name          experiment          [A-Za-z0-9._-], names the output folder
 *   output        OUT/runs/NAME       folder for the run files and summary.tsv
 *                                     (OUT: $RANDLORA_OUT, else "out")
 *   description   (empty)             free text, copied into every run
 * [model]
 *   name          clip-tiny           a preset (clip-tiny, clip-vit-b-32,
 *                                     clip-vit-b-16, clip-vit-l-14, vit-tiny) or
 *                                     a Hugging Face model directory (a path
 *                                     with a '/'): CLIP, or DINOv2 (model_type
 *                                     dinov2 / dinov2_with_registers)
 *   pretrain_dir  OUT/models/NAME     where a preset is pretrained to / found
 *   pretrain_data shapes              dataset spec of the contrastive corpus
 *   pretrain_corpus 20000             items of the corpus used
 *   pretrain_steps 2000               contrastive steps (presets only)
 *   pretrain_batch 64
 *   pretrain_lr   1e-3
 *   pretrain_weight_decay 0.1
 *   pretrain_warmup 100
 *   pretrain_seed 0                   (also vit-tiny's random init)
 *   head          prompt              prompt (CLIP's class prompts) | linear (a
 *                                     trained linear head on the image
 *                                     backbone's features: DINOv2, or CLIP's
 *                                     image tower alone; experiments/train_head.c)
 *   features      cls                 with head = linear on DINOv2: cls |
 *                                     cls_mean (class token and mean patch token)
 * [data]
 *   dataset       fashion-mnist       list of dataset specs (datasets/dataset.h);
 *                                     more than one is a sweep axis
 *   eval          -                   list (one per dataset) of eval specs;
 *                                     absent: each dataset's :test split
 *   image_size    0                   0: the model's; else resize to this
 *   prompt        a photo of a {}.    the class prompt, exactly one "{}"
 *   templates     prompt              prompt | dataset (eval with the dataset's
 *                                     templates.txt ensemble when it has one)
 *   classnames    dataset             dataset (its own names) | auto (the
 *                                     metadata set named like the dataset,
 *                                     datasets/meta) | a set's name (dtd, ...)
 *   augment       none                none | flip | crop_flip (random resized
 *                                     crop, scale 0.5-1, and flip)
 *   shots         -                   list of k (samples per class), axis
 *   fractions     -                   list of fractions in (0, 1], axis; with
 *                                     neither shots nor fractions: 1
 *   sample_seed   run                 seed of the few-shot sampling; "run": the
 *                                     run's seed
 *   val           none                the validation split (struct exp_val):
 *                                     N (an integer: N items of every class
 *                                     held out of the training pool), a
 *                                     fraction in (0, 1) of every class of the
 *                                     pool ("0.1" or "10%"), or a dataset spec
 *                                     (one dataset only; not the train or the
 *                                     eval spec); held-out items are sampled
 *                                     with sample_seed before the shots or
 *                                     fractions, from which they are removed
 *   eval_limit    0                   evaluate on the first N items (0: all)
 *   lm_loss       response            a decoder on commonsense data: response
 *                                     (loss on the response tokens only) | all
 *                                     (the prompt too: finetune.py's
 *                                     train_on_inputs=True, which the paper's
 *                                     scripts keep)
 *   cutoff        256                 a decoder: training ids per item at most
 *   max_new_tokens 32                 a decoder: greedy tokens generated per
 *                                     test item
 * [method]           (every key but `methods` takes a .METHOD suffix)
 *   methods       lora                list of lora, vera, randlora, full, none
 *   rank          -                   list of ranks in [1, 1e6], axis; absent: the
 *                                     method's peft default (lora 8, vera 256,
 *                                     randlora 32)
 *   budget        -                   list of trainable-parameter budgets, axis:
 *                                     each picks the rank whose count is closest
 *                                     (adapter_match_budget; at most 1e6); not
 *                                     with `rank`
 *   alpha         0                   [axis] in [0, 1e6]; 0: the method's default
 *                                     (lora 8, randlora 20 r)
 *   dropout       0                   [axis] in [0, 1)
 *   rslora        false               [axis] LoRA: alpha / sqrt(r)
 *   vera_d_init   0.1                 [axis] VeRA's initial lambda_d, in [-1e6, 1e6]
 *   profile       peft                [axis] peft | paper | paper_2024 |
 *                                     peft_fork (RandLoRA's n, scaling,
 *                                     init)
 *   basis         dense               [axis] dense | sparse | very_sparse
 *   towers        vision, text        list of vision, text (both = the two)
 *   layers        *                   * | N | A-B (inclusive, 0-based)
 *   modules       q_proj, k_proj, v_proj, fc1, fc2
 *                                     list of q_proj, k_proj, v_proj, out_proj,
 *                                     fc1, fc2, or the groups attn, qkv, mlp, all
 *   init_seed     run                 adapter seed (bases, inits); "run": the run's
 * [train]            (every key takes a .METHOD suffix)
 *   steps         1000                [axis] optimizer steps; not with `epochs`
 *   epochs        -                   [axis] passes over the sampled training set
 *   min_epoch_steps 10                with epochs: at least this many steps per
 *                                     epoch (the paper's over-sampling)
 *   min_epoch_rule steps              steps | repeat: the authors' rule (repeat
 *                                     the set int(min / (n / batch)) + 1 times
 *                                     when it has fewer micro-batches)
 *   dataset_epochs -                  NAME:N, ...: epochs per dataset (by the
 *                                     run ids' dataset name, ignoring case);
 *                                     replaces steps / epochs for that dataset
 *   batch         32                  [axis] micro-batch
 *   accumulate    1                   [axis] micro-batches per optimizer step
 *   lr            1e-3                [axis] in [1e-30, 10]
 *   lr_head       1e-3                the linear head's peak lr (model.head =
 *                                     linear), on lr's schedule
 *   weight_decay  0.01                [axis] AdamW, decoupled, in [0, 10]
 *   beta1 0.9, beta2 0.999            in [0, 1) (also in float32)
 *   eps           1e-8                in [1e-30, 1]
 *   warmup        0                   [axis] linear warmup steps
 *   lr_min        0                   [axis] cosine floor; not with `lr_min_ratio`
 *   lr_min_ratio  -                   [axis] cosine floor as a fraction of lr
 *   clip          1.0                 [axis] max gradient norm, 0: no clipping
 *   loss          prompts             prompts (cross-entropy over every class
 *                                     prompt) | inbatch (one prompt per image
 *                                     of the batch, target the first of its
 *                                     class: the authors' CLIPVL)
 *   logit_scale   exp                 exp (CLIP's exp(logit_scale)) | raw (the
 *                                     parameter itself, as the authors' code)
 *   eval_every    0                   steps between evaluations (0: at the end)
 *   checkpoint_every 0                steps between checkpoints (0: none)
 *   recompute     false               keep only the layers' inputs and run each
 *                                     layer's forward again in the backward: the
 *                                     same results, much less activation memory,
 *                                     more arithmetic (models/clip.h)
 *   precision     fp32                fp32 | bf16: the frozen linears' forward
 *                                     and input gradient as bf16 GEMMs, fp32
 *                                     accumulation (models/clip.h)
 *   seed          run                 data order, augmentation, dropout
 *   init_adapter  -                   a peft-format adapter directory the run
 *                                     starts from (adapter_config.json +
 *                                     adapter_model.safetensors): its config
 *                                     must match the run's method, rank,
 *                                     scaling and layers (runner.h)
 * [sweep]
 *   seeds         1                   list of run seeds, axis
 *   jobs          1                   runs at once
 * [run]              (written into results files; pins one resolved run)
 *   id            -                   the run id
 *   rank          -                   the rank a budget matched
 *   trainable     -                   the trainable count
 *
 * Rules:
 *   - an unknown section or key, a key given twice in a file, a bad value, an
 *     empty list, a value listed twice (numbers: equal in float32), a list on
 *     a key that takes one value, a value starting with ';', text that is
 *     not UTF-8, an unknown method (also in a suffix), or a suffix on a key
 *     that takes none is RL_ERR_ARG with one line:
 *         FILE:LINE: section.key = 'value': what was expected
 *     ("-s:" instead of FILE:LINE for an override);
 *   - `key.METHOD` overrides `key` for that method; of the exclusive pairs
 *     (rank / budget, steps / epochs, lr_min / lr_min_ratio) the suffixed
 *     one wins over a plain one, two at the same level are an error; a
 *     suffix for a method not in `methods` is accepted and unused;
 *   - overrides ("section.key[.METHOD]=value") are checked like file lines,
 *     replace the file's value, and a later one replaces an earlier one.
 *
 * The grid, in this order (outermost first): datasets, methods (as listed),
 * ranks or budgets (as listed; full and none: once), shots then fractions,
 * the method's settings, seeds. A method's settings are the grid of its
 * [axis] keys with more than one item (key.METHOD's list replaces the plain
 * one), in the key table's order (the order above), the last fastest; a key
 * the method does not read (alpha: lora, randlora; dropout: lora, vera,
 * randlora; rslora: lora; vera_d_init: vera; profile, basis: randlora;
 * [train]: all but none; of steps/epochs and lr_min/lr_min_ratio the one in
 * effect) is no axis for it. Run ids:
 * [DATASET-]METHOD[-rR|-bB]-(sK|fF)[-TAGvalue...]-seedS, the dataset's name
 * when there are several datasets, one TAGvalue per axis of the method
 * (tags alpha drop rslora dinit, profile and basis by value, steps ep bs acc
 * lr wd warm lrmin lrminr clip; numbers in their shortest exact text):
 * "lora-r32-s4-seed1", "randlora-b50000-s16-seed2", "full-f0.5-seed1",
 * "dtd-vera-r256-s1-seed1", "lora-r8-s4-lr3e-3-wd0.1-seed1".
 *
 * Expansion refuses (RL_ERR_ARG, one line naming the key, value and limit)
 * every plan a run file could not read back: an id over EXP_MAX_ID
 * characters, derived values (experiment.output, model.pretrain_dir,
 * data.eval) that are not valid values, a matched rank over EXP_MAX_RANK,
 * counts over EXP_MAX_PARAMS, targets that select no layer, and anything
 * run_plan_check_roundtrip finds (docs/experiments.md).
 */
#ifndef RANDLORA_EXPERIMENTS_CONFIG_H
#define RANDLORA_EXPERIMENTS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "methods/adapter.h"

/* towers (bit t) and modules (bit i = enum block_linear i: q_proj, k_proj,
 * v_proj, out_proj, fc1, fc2) */
#define EXP_TOWER_VISION 1u
#define EXP_TOWER_TEXT   2u
#define EXP_N_MODULES    7   /* enum block_linear: the six, then in_proj */

/* the most runs a grid may have (and settings a method's axes may give) */
#define EXP_MAX_RUNS     1000000
/* the largest rank (method.rank, run.rank, a budget-matched rank) */
#define EXP_MAX_RANK     1000000
/* the most trainable, and shared frozen, parameters of one run (16 GiB of
 * float32 each) */
#define EXP_MAX_PARAMS   (UINT64_C(1) << 32)
/* the longest run id (run.id, a name) */
#define EXP_MAX_ID       64

struct exp_targets {
    unsigned towers;            /* EXP_TOWER_* bits                          */
    size_t   layer_lo, layer_hi; /* inclusive; 0, SIZE_MAX: every layer      */
    unsigned modules;           /* bit i: module i                           */
};

enum exp_templates { EXP_TEMPLATES_PROMPT = 0, EXP_TEMPLATES_DATASET };

/* data.val: the validation split */
enum exp_val_kind { EXP_VAL_NONE = 0, EXP_VAL_PER_CLASS, EXP_VAL_FRACTION, EXP_VAL_SPEC };
struct exp_val {
    enum exp_val_kind kind;
    size_t per_class;           /* EXP_VAL_PER_CLASS: items of every class   */
    double fraction;            /* EXP_VAL_FRACTION: in (0, 1)                */
    char  *spec;                /* EXP_VAL_SPEC: a dataset spec (owned)       */
};
enum exp_augment   { EXP_AUGMENT_NONE = 0, EXP_AUGMENT_FLIP, EXP_AUGMENT_CROP_FLIP };

/* train.loss: cross-entropy over every class prompt, or the authors'
 * in-batch contrastive loss (one prompt per image of the batch) */
enum exp_loss { EXP_LOSS_PROMPTS = 0, EXP_LOSS_INBATCH };

/* [train], resolved for one method */
struct exp_train {
    size_t   steps;             /* > 0, or 0 when epochs is used             */
    size_t   epochs;            /* > 0, or 0 when steps is used              */
    size_t   min_epoch_steps;
    bool     epoch_repeat;      /* min_epoch_rule = repeat (the authors')    */
    enum exp_loss loss;
    bool     logit_scale_raw;   /* logits scaled by logit_scale, not its exp */
    size_t   batch, accumulate;
    double   lr, weight_decay, beta1, beta2, eps;
    double   lr_head;           /* the linear head's peak lr (model.head)    */
    size_t   warmup;
    double   lr_min;            /* absolute (lr_min_ratio resolved)          */
    double   clip;              /* 0: no clipping                            */
    size_t   eval_every, checkpoint_every;
    bool     recompute;         /* clip_*_run_init_recompute                 */
    unsigned precision;         /* enum clip_precision (0 fp32, 1 bf16)      */
    bool     seed_set;          /* false: the run's seed                     */
    uint64_t seed;
};

/* model.head: CLIP's prompt classifier, or a trained linear head on the
 * image backbone's features (experiments/train_head.c) */
enum exp_head {
    EXP_HEAD_PROMPT = 0,
    EXP_HEAD_LINEAR,
};

/* data.lm_loss: where a decoder's loss counts (experiments/train_lm.c) */
enum exp_lm_loss { EXP_LM_LOSS_RESPONSE = 0, EXP_LM_LOSS_ALL };

/* a decoder's data settings ([data] lm_loss, cutoff, max_new_tokens) */
struct exp_lm {
    enum exp_lm_loss loss;
    size_t cutoff, max_new_tokens;
};

struct exp_model {
    char    *name;              /* preset name or directory                  */
    bool     preset;
    char    *pretrain_dir, *pretrain_data;
    size_t   pretrain_corpus, pretrain_steps, pretrain_batch, pretrain_warmup;
    double   pretrain_lr, pretrain_weight_decay;
    uint64_t pretrain_seed;
    enum exp_head head;         /* model.head: the classifier                */
    unsigned features;          /* model.features: enum dinov2_pool          */
};

/* One point of a method's hyperparameter axes (a value of each key that
 * takes a list), resolved. */
struct exp_setting {
    struct adapter_cfg adapter; /* r = 0 and seed = 0 until a plan sets them */
    const char *profile;        /* "peft" or "paper"                         */
    struct exp_train train;
    char    *tag;               /* the run-id part naming the axes' values,
                                   "-lr0.003-wd0.1"; "" without axes (owned) */
};

/* one entry of method.methods with every per-method key resolved */
struct exp_method {
    const struct adapter_ops *ops;  /* ops->name is the method's name        */
    bool     by_budget;         /* sizes are budgets (else ranks)            */
    size_t  *sizes;             /* ranks or budgets; NULL for full and none  */
    size_t   n_sizes;
    struct exp_setting *settings;   /* the grid of the method's axes, first
                                   axis outermost; at least one          */
    size_t   n_settings;
    struct adapter_cfg adapter; /* = settings[0] (the first of every list)   */
    const char *profile;
    struct exp_targets targets;
    bool     init_seed_set;     /* false: the run's seed                     */
    uint64_t init_seed;
    struct exp_train train;     /* = settings[0].train                       */
    /* train.dataset_epochs: a dataset whose name (exp_dataset_name) matches
     * names[i], ignoring case, trains epochs[i] epochs (owned; n 0: none) */
    char   **epoch_names;
    size_t  *epoch_values;
    size_t   n_epoch_table;
};

/* the sweep: a parsed, validated experiment file */
struct experiment {
    char    *source;            /* file name, or the `where` given           */
    char    *name, *output, *description;
    struct exp_model model;
    char   **datasets, **evals; /* n_datasets each (evals resolved)          */
    size_t   n_datasets;
    size_t   image_size;        /* 0: the model's                            */
    char    *prompt;
    char    *init_adapter;      /* train.init_adapter, or NULL               */
    enum exp_templates templates;
    char    *classnames;        /* data.classnames: "dataset", "auto" or a set */
    enum exp_augment augment;
    size_t  *shots;   size_t n_shots;
    double  *fractions; size_t n_fractions;   /* [1.0] when neither given    */
    bool     sample_seed_set;
    uint64_t sample_seed;
    size_t   eval_limit;
    struct exp_val val;
    struct exp_lm lm;
    struct exp_method *methods; size_t n_methods;
    uint64_t *seeds;  size_t n_seeds;
    size_t   jobs;
    char    *run_id;            /* [run] pins, or NULL / 0                   */
    size_t   run_rank, run_trainable;
};

/* one fully resolved run; owns its strings */
struct run_plan {
    char    *id;                /* unique in its sweep, used for file names  */
    size_t   index;             /* position in the grid                      */
    char    *experiment, *output, *description;
    struct exp_model model;
    char    *dataset, *eval, *prompt;
    char    *init_adapter;      /* train.init_adapter: the adapter directory
                                   the run starts from, or NULL              */
    size_t   image_size, eval_limit;
    enum exp_templates templates;
    char    *classnames;        /* data.classnames (datasets/meta.h)         */
    enum exp_augment augment;
    size_t   shots;             /* k per class, or 0 when fraction is used   */
    double   fraction;          /* (0, 1] when shots == 0                    */
    uint64_t seed, sample_seed;
    struct exp_val val;         /* the validation split (spec owned)          */
    struct exp_lm lm;           /* a decoder's data settings                  */
    const char *method;         /* registry name (static)                    */
    struct adapter_cfg adapter; /* r resolved (budget matched), seed = init seed */
    const char *profile;
    size_t   budget;            /* the budget that chose r, or 0             */
    size_t   n_trainable;       /* over the shapes, or 0 when not known      */
    struct exp_targets targets;
    struct exp_train train;     /* seed resolved                             */
};

/* The adapted layers' shapes for a plan (its model and targets), for budget
 * matching and counts. Set *shapes (owned by ctx, valid until the next call)
 * and *n; return RL_OK, or an rl_status with rl_error_set's message. */
typedef int (*exp_shapes_fn)(void *ctx, const struct run_plan *plan,
                             const struct adapter_shape **shapes, size_t *n);

/* The root of every default output path: $RANDLORA_OUT when set and not
 * empty, else "out" (relative to the working directory). Runs go under
 * ROOT/runs/NAME, pretrained presets under ROOT/models/NAME. */
const char *experiment_output_root(void);

/* Read and validate an experiment file, then apply the overrides
 * ("section.key[.METHOD]=value"). RL_ERR_IO when the file cannot be read,
 * RL_ERR_ARG for anything in it (see above). On failure e is left freed. */
int  experiment_load(struct experiment *e, const char *path,
                     const char *const *overrides, size_t n_overrides);
/* The same from text; `where` names it in messages (e.g. "quickstart.ini"). */
int  experiment_parse(struct experiment *e, const char *text, const char *where,
                      const char *const *overrides, size_t n_overrides);
void experiment_free(struct experiment *e);   /* safe on a zeroed struct */

/* runs in the grid */
size_t experiment_n_runs(const struct experiment *e);

/* The grid as plans, in the order above. `shapes` may be NULL when no method
 * uses a budget (n_trainable is then 0); otherwise every plan is checked
 * against its shapes (a rank a layer refuses, targets that select no layer:
 * RL_ERR_ARG) and counted. RL_ERR_ARG when two runs would get the same id or
 * a plan would not read back from its run file (above). */
int  experiment_expand(const struct experiment *e, exp_shapes_fn shapes, void *ctx,
                       struct run_plan **plans, size_t *n_plans);
void run_plan_free(struct run_plan *p);
void run_plans_free(struct run_plan *plans, size_t n);

/* The plan as an experiment file of one run (malloc'd text, caller frees):
 * every key explicit, [run] pinning id, matched rank and count. Parsing it
 * and expanding (shapes not needed) gives the same plan. */
char *run_plan_to_ini(const struct run_plan *p);

/* Whether the plan survives being stored: run_plan_to_ini(p) parsed back
 * (experiment_parse, as export, analyze and plot read a run file's /config)
 * and expanded gives one plan equal to p in every field (run_plan_diff), and
 * rendering that gives the same text. RL_OK, or RL_ERR_ARG with one line
 * ("its stored configuration would not read back: ..."). experiment_expand
 * runs it on every plan; a fuzzer may call it on any plan experiment_expand
 * returned. */
int  run_plan_check_roundtrip(const struct run_plan *p);

/* NULL when a and b are the same run in every field but `index`, else the
 * key of the first field that differs ("train.lr", "data.eval", ...). */
const char *run_plan_diff(const struct run_plan *a, const struct run_plan *b);

/* data.val as the experiment file writes it ("8", "0.1", a spec; "none"). */
void exp_val_text(const struct exp_val *v, char *buf, size_t size);

/* The targets in clip_targets_parse syntax ("vision:*:q_proj,v_proj;text:..."). */
int  exp_targets_spec(const struct exp_targets *t, char *buf, size_t size);

/* Optimizer steps of a plan given the size of its sampled training set:
 * train.steps, or with min_epoch_rule = steps
 *     epochs * max(min_epoch_steps, ceil(n / (batch * accumulate))),
 * with min_epoch_rule = repeat (the authors' finetune.py): the set counted
 * R = floor(min_epoch_steps * batch / n) + 1 times when it gives fewer than
 * min_epoch_steps micro-batches (else R = 1), and
 *     ceil(n * R * epochs / (batch * accumulate)). */
size_t run_plan_total_steps(const struct run_plan *p, size_t n_train_items);

/* the plan's data is in the commonsense format (data.dataset
 * commonsense:DIR): a decoder run (experiments/train_lm.c) */
bool run_plan_is_lm(const struct run_plan *p);
/* The name train.dataset_epochs matches a dataset spec by: the run ids'
 * dataset part ("dtd" for folder:/data/dtd, "DescribableTextures" for
 * zhou:DIR/split_zhou_DescribableTextures.json), into buf. */
void exp_dataset_name(const char *spec, char *buf, size_t cap);

#endif /* RANDLORA_EXPERIMENTS_CONFIG_H */
