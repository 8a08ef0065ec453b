/*
 * config.c: experiment files (INI via libinih) -> struct experiment -> plans.
 *
 * Three stages:
 *   1. collect: libinih reads the text through our line reader (which counts
 *      lines and checks section names and line lengths); every key=value is
 *      looked up in the key table and stored, as text, in a slot per key and
 *      per method suffix (slot 0: the plain key). A value is checked by the
 *      parser of its type once it is complete (after its continuation lines).
 *      Overrides go through the same checks and replace slots.
 *   2. resolve: every key parsed again into typed fields, per method for the
 *      suffixable cfg_keys, plus the checks that involve two keys.
 *   3. expand: the grid into plans (budget matching through the caller's
 *      shapes), and a plan rendered back as INI text.
 * The key table is the single source of the cfg_keys, their types, ranges and
 * defaults; config.h and the README document it.
 *
 * This file holds the key table; the typed values (parsing and checking one
 * value) live in config_value.c, stages 1-2 in config_ini.c and
 * config_resolve.c, stage 3 in config_plan.c and the rendering in
 * config_render.c; config_impl.h declares what they share.
 */
#include "experiments/config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "experiments/config_impl.h"

/* ------------------------------------------------------------------------ */
/* the key table                                                             */

const char *const cfg_w_templates[] = { "prompt", "dataset", NULL };
const char *const cfg_w_augment[]   = { "none", "flip", "crop_flip", NULL };
const char *const cfg_w_profile[]   = { "peft", "paper", "paper_2024", "peft_fork", NULL };
const char *const cfg_w_precision[] = { "fp32", "bf16", NULL };   /* enum clip_precision */
const char *const cfg_w_basis[]     = { "dense", "sparse", "very_sparse", NULL };
const char *const cfg_w_head[]      = { "prompt", "linear", NULL };      /* enum exp_head */
const char *const cfg_w_features[]  = { "cls", "cls_mean", NULL };       /* enum dinov2_pool */
const char *const cfg_w_lm_loss[]   = { "response", "all", NULL };       /* enum exp_lm_loss */
const char *const cfg_w_epoch_rule[] = { "steps", "repeat", NULL };    /* exp_train.epoch_repeat */
const char *const cfg_w_loss[]       = { "prompts", "inbatch", NULL };  /* enum exp_loss */
const char *const cfg_w_logit_scale[] = { "exp", "raw", NULL };       /* exp_train.logit_scale_raw */
const char *const cfg_w_module[EXP_N_MODULES] = {
    "q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2", "in_proj",
};

const struct keydef cfg_keys[] = {
    { "experiment", "name",         K_NAME,   0, "experiment", 0, 0, NULL },
    { "experiment", "output",       K_PATH,   0, NULL, 0, 0, NULL },
    { "experiment", "description",  K_TEXT,   0, "", 0, 0, NULL },

    { "model", "name",                  K_MODEL,  0, "clip-tiny", 0, 0, NULL },
    { "model", "pretrain_dir",          K_PATH,   0, NULL, 0, 0, NULL },
    { "model", "pretrain_data",         K_SPEC,   0, "shapes", 0, 0, NULL },
    { "model", "pretrain_corpus",       K_UINT,   0, "20000", 1, BIG, NULL },
    { "model", "pretrain_steps",        K_UINT,   0, "2000", 0, BIG, NULL },
    { "model", "pretrain_batch",        K_UINT,   0, "64", 1, 1e6, NULL },
    { "model", "pretrain_lr",           K_DOUBLE, 0, "1e-3", FLOAT_TINY, 10, NULL },
    { "model", "pretrain_weight_decay", K_DOUBLE, 0, "0.1", 0, 10, NULL },
    { "model", "pretrain_warmup",       K_UINT,   0, "100", 0, BIG, NULL },
    { "model", "pretrain_seed",         K_SEED,   0, "0", 0, 0, NULL },
    { "model", "head",                  K_WORD,   0, "prompt", 0, 0, cfg_w_head },
    { "model", "features",              K_WORD,   0, "cls", 0, 0, cfg_w_features },

    { "data", "dataset",     K_SPECS,     0, "fashion-mnist", 0, 0, NULL },
    { "data", "eval",        K_SPECS,     0, NULL, 0, 0, NULL },
    { "data", "image_size",  K_UINT,      0, "0", 0, 4096, NULL },
    { "data", "prompt",      K_PROMPT,    0, "a photo of a {}.", 0, 0, NULL },
    { "data", "templates",   K_WORD,      0, "prompt", 0, 0, cfg_w_templates },
    { "data", "classnames",  K_NAME,      0, "dataset", 0, 0, NULL },
    { "data", "augment",     K_WORD,      0, "none", 0, 0, cfg_w_augment },
    { "data", "shots",       K_UINTS,     0, NULL, 1, 1e6, NULL },
    { "data", "fractions",   K_FRACTIONS, 0, NULL, 0, 1, NULL },
    { "data", "sample_seed", K_SEED,      F_RUN, "run", 0, 0, NULL },
    { "data", "eval_limit",  K_UINT,      0, "0", 0, UMAX, NULL },
    { "data", "val",         K_VAL,       0, "none", 1, 1e6, NULL },
    { "data", "lm_loss",     K_WORD,      0, "response", 0, 0, cfg_w_lm_loss },
    { "data", "cutoff",      K_UINT,      0, "256", 2, 1e6, NULL },
    { "data", "max_new_tokens", K_UINT,   0, "32", 1, 1e5, NULL },

    { "method", "methods",     K_METHODS, 0, "lora", 0, 0, NULL },
    { "method", "rank",        K_UINTS,   F_SUFFIX, NULL, 1, EXP_MAX_RANK, NULL },
    { "method", "budget",      K_UINTS,   F_SUFFIX, NULL, 1, UMAX, NULL },
    { "method", "alpha",       K_DOUBLE,  F_SUFFIX, "0", 0, 1e6, NULL },
    { "method", "dropout",     K_DOUBLE,  F_SUFFIX | F_HI_OPEN, "0", 0, 1, NULL },
    { "method", "rslora",      K_BOOL,    F_SUFFIX, "false", 0, 0, NULL },
    { "method", "vera_d_init", K_DOUBLE,  F_SUFFIX, "0.1", -1e6, 1e6, NULL },
    { "method", "profile",     K_WORD,    F_SUFFIX, "peft", 0, 0, cfg_w_profile },
    { "method", "basis",       K_WORD,    F_SUFFIX, "dense", 0, 0, cfg_w_basis },
    { "method", "nola_bases",  K_UINT,    F_SUFFIX, "0", 0, 1 << 24, NULL },
    { "method", "towers",      K_TOWERS,  F_SUFFIX, "vision, text", 0, 0, NULL },
    { "method", "layers",      K_LAYERS,  F_SUFFIX, "*", 0, 0, NULL },
    { "method", "modules",     K_MODULES, F_SUFFIX, "q_proj, k_proj, v_proj, fc1, fc2", 0, 0, NULL },
    { "method", "init_seed",   K_SEED,    F_SUFFIX | F_RUN, "run", 0, 0, NULL },

    { "train", "steps",            K_UINT,   F_SUFFIX, "1000", 1, BIG, NULL },
    { "train", "epochs",           K_UINT,   F_SUFFIX, NULL, 1, 1e6, NULL },
    { "train", "min_epoch_steps",  K_UINT,   F_SUFFIX, "10", 1, BIG, NULL },
    { "train", "min_epoch_rule",   K_WORD,   F_SUFFIX, "steps", 0, 0, cfg_w_epoch_rule },
    { "train", "dataset_epochs",   K_EPOCH_TABLE, F_SUFFIX, NULL, 1, 1e6, NULL },
    { "train", "batch",            K_UINT,   F_SUFFIX, "32", 1, 1e6, NULL },
    { "train", "accumulate",       K_UINT,   F_SUFFIX, "1", 1, 1e6, NULL },
    { "train", "lr",               K_DOUBLE, F_SUFFIX, "1e-3", FLOAT_TINY, 10, NULL },
    { "train", "lr_head",          K_DOUBLE, F_SUFFIX, "1e-3", FLOAT_TINY, 10, NULL },
    { "train", "weight_decay",     K_DOUBLE, F_SUFFIX, "0.01", 0, 10, NULL },
    { "train", "beta1",            K_DOUBLE, F_SUFFIX | F_HI_OPEN, "0.9", 0, 1, NULL },
    { "train", "beta2",            K_DOUBLE, F_SUFFIX | F_HI_OPEN, "0.999", 0, 1, NULL },
    { "train", "eps",              K_DOUBLE, F_SUFFIX, "1e-8", FLOAT_TINY, 1, NULL },
    { "train", "warmup",           K_UINT,   F_SUFFIX, "0", 0, BIG, NULL },
    { "train", "lr_min",           K_DOUBLE, F_SUFFIX, "0", 0, 10, NULL },
    { "train", "lr_min_ratio",     K_DOUBLE, F_SUFFIX, NULL, 0, 1, NULL },
    { "train", "clip",             K_DOUBLE, F_SUFFIX, "1.0", 0, 1e9, NULL },
    { "train", "loss",             K_WORD,   F_SUFFIX, "prompts", 0, 0, cfg_w_loss },
    { "train", "logit_scale",      K_WORD,   F_SUFFIX, "exp", 0, 0, cfg_w_logit_scale },
    { "train", "eval_every",       K_UINT,   F_SUFFIX, "0", 0, BIG, NULL },
    { "train", "checkpoint_every", K_UINT,   F_SUFFIX, "0", 0, BIG, NULL },
    { "train", "recompute",        K_BOOL,   F_SUFFIX, "false", 0, 0, NULL },
    { "train", "precision",        K_WORD,   F_SUFFIX, "fp32", 0, 0, cfg_w_precision },
    { "train", "seed",             K_SEED,   F_SUFFIX | F_RUN, "run", 0, 0, NULL },
    { "train", "init_adapter",     K_PATH,   0, NULL, 0, 0, NULL },

    { "sweep", "seeds", K_SEEDS, 0, "1", 0, 0, NULL },
    { "sweep", "jobs",  K_UINT,  0, "1", 1, 1024, NULL },

    { "run", "id",        K_NAME, 0, NULL, 0, 0, NULL },
    { "run", "rank",      K_UINT, 0, NULL, 1, EXP_MAX_RANK, NULL },
    { "run", "trainable", K_UINT, 0, NULL, 0, UMAX, NULL },
};

const size_t cfg_n_keys = sizeof(cfg_keys) / sizeof(cfg_keys[0]);

/* The keys that take a comma list expanded as a grid axis (the run id names
 * the value after the tag; "" = the value alone). The axes expand in the key
 * table's order above, the first one outermost. */
static const struct {
    const char *section, *key, *tag;
} axes[] = {
    { "method", "alpha", "alpha" },       { "method", "dropout", "drop" },
    { "method", "rslora", "rslora" },     { "method", "vera_d_init", "dinit" },
    { "method", "profile", "" },          { "method", "basis", "" },
    { "train", "steps", "steps" },        { "train", "epochs", "ep" },
    { "train", "batch", "bs" },           { "train", "accumulate", "acc" },
    { "train", "lr", "lr" },              { "train", "weight_decay", "wd" },
    { "train", "warmup", "warm" },        { "train", "lr_min", "lrmin" },
    { "train", "lr_min_ratio", "lrminr" }, { "train", "clip", "clip" },
};

const char *cfg_axis_tag(const struct keydef *kd)
{
    for (size_t i = 0; i < sizeof(axes) / sizeof(axes[0]); i++)
        if (!strcmp(axes[i].section, kd->section) && !strcmp(axes[i].key, kd->key))
            return axes[i].tag;
    return NULL;
}

const char *const cfg_sections[] = {
    "experiment", "model", "data", "method", "train", "sweep", "run", NULL,
};

/* indices of the keys the code refers to, found by name once */
int cfg_key_index(const char *section, const char *key)
{
    for (size_t i = 0; i < N_KEYS; i++)
        if (!strcmp(cfg_keys[i].section, section) && !strcmp(cfg_keys[i].key, key))
            return (int)i;
    return -1;
}

bool cfg_section_known(const char *s)
{
    for (size_t i = 0; cfg_sections[i]; i++)
        if (!strcmp(cfg_sections[i], s))
            return true;
    return false;
}

/* "a, b, c" into buf */
const char *cfg_join_words(const char *const *w, char *buf, size_t cap)
{
    size_t off = 0;

    buf[0] = '\0';
    for (size_t i = 0; w[i] && off < cap; i++) {
        int n = snprintf(buf + off, cap - off, "%s%s", i ? ", " : "", w[i]);

        if (n < 0)
            break;
        off += (size_t)n;
    }
    return buf;
}

const char *cfg_section_keys(const char *section, char *buf, size_t cap)
{
    size_t off = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < N_KEYS && off < cap; i++) {
        int n;

        if (strcmp(cfg_keys[i].section, section))
            continue;
        n = snprintf(buf + off, cap - off, "%s%s", off ? ", " : "", cfg_keys[i].key);
        if (n < 0)
            break;
        off += (size_t)n;
    }
    return buf;
}

const char *cfg_method_names(char *buf, size_t cap)
{
    const struct adapter_ops *const *r = adapter_registry();
    size_t off = 0;

    buf[0] = '\0';
    for (size_t i = 0; r[i] && off < cap; i++) {
        int n = snprintf(buf + off, cap - off, "%s%s", i ? ", " : "", r[i]->name);

        if (n < 0)
            break;
        off += (size_t)n;
    }
    return buf;
}

int cfg_method_index(const char *name)
{
    const struct adapter_ops *const *r = adapter_registry();

    for (size_t i = 0; r[i]; i++)
        if (!strcmp(r[i]->name, name))
            return (int)i;
    return -1;
}

const char *experiment_output_root(void)
{
    const char *root = getenv("RANDLORA_OUT");

    return root && *root ? root : "out";
}
