/*
 * adapter_io.h: save and load whole adapters in Hugging Face peft's format,
 * so an adapter trained here loads in peft (PeftModel.from_pretrained on the
 * same base model) and one trained in peft loads here.
 *
 * A directory holds two files (peft's names):
 *
 *   adapter_model.safetensors   F32 tensors, keys as peft's
 *                               get_peft_model_state_dict writes them (the
 *                               adapter name removed), plus __metadata__
 *                               {"format": "pt", "rl_*": ...}:
 *       LoRA      base_model.model.<path>.lora_A.weight    (r, d_in)
 *                 base_model.model.<path>.lora_B.weight    (d_out, r)
 *       VeRA      base_model.model.<path>.vera_lambda_b    (d_out)
 *                 base_model.model.<path>.vera_lambda_d    (r)
 *                 base_model.vera_A                        (r, max_in)
 *                 base_model.vera_B                        (max_out, r)
 *       RandLoRA  base_model.model.<path>.randlora_lambda  (r, n)
 *                 base_model.model.<path>.randlora_gamma   (n, min(d_out, d_in))
 *                 base_model.randlora_A                    (r, 1, min_dim)
 *                 base_model.randlora_B                    (max_dim, n_g, r)
 *       full      base_model.model.<path>.weight_delta     (d_out, d_in)
 *                 (this project's; peft has no full fine-tuning adapter)
 *       none      nothing: export and import do nothing and touch no file
 *     The shared tensors are always saved (peft's save_projection=True): a
 *     C program cannot reproduce torch's random stream, so a reload must not
 *     depend on regenerating them.
 *
 *   adapter_config.json         peft's config class fields that apply:
 *       head      base_model.model.classifier.weight        (M, FD)
 *                 base_model.model.classifier.bias          (M)
 *                 (files->head: a model.head = linear run's classifier, as
 *                 peft saves modules_to_save ["classifier"])
 *       all       peft_type ("LORA", "VERA", "RANDLORA"; "FULL" for full,
 *                 which peft does not know), base_model_name_or_path,
 *                 revision, task_type, inference_mode (true, as peft's
 *                 save_pretrained), target_modules (the module paths given,
 *                 sorted), bias "none", fan_in_fan_out false,
 *                 modules_to_save (null; ["classifier"] with a head),
 *                 layers_to_transform, layers_pattern (null)
 *       LORA      r, lora_alpha, lora_dropout, use_rslora, use_dora false,
 *                 init_lora_weights true, rank_pattern {}, alpha_pattern {}
 *       VERA      r, projection_prng_key, save_projection true, vera_dropout,
 *                 d_initial, init_weights true
 *       RANDLORA  r, randlora_alpha, randlora_dropout, projection_prng_key,
 *                 save_projection true, sparse, very_sparse, init_weights true
 *     randlora_alpha is written so that peft's alpha / r is our scaling: the
 *     paper profile's 1/r is written as randlora_alpha 1. What peft's config
 *     cannot say (RandLoRA's n rule, scaling rule, Lambda/Gamma init, the
 *     exact 64-bit seed) goes into the safetensors metadata as rl_n_rule,
 *     rl_scaling, rl_alpha, rl_lambda_init, rl_gamma_init, rl_seed; peft
 *     ignores those. A paper-profile RandLoRA file (n = floor(d/r) + 1) and
 *     the fork's alpha/(r sqrt(n)) scaling do not load in peft, whose rules
 *     are ceil(d/r) and alpha/r.
 *
 * Export:
 *
 *     struct adapter_io_module mods[] = {
 *         { "text_model.encoder.layers.0.self_attn.q_proj", &a_q0 },
 *         { "text_model.encoder.layers.0.self_attn.v_proj", &a_v0 },
 *     };
 *     struct adapter_io_files files = { .dir = "runs/x/adapter",
 *                                       .base_model = "openai/clip-vit-base-patch32" };
 *     rc = adapter_io_export(&files, &method, mods, 2);
 *
 * Import into adapters built the same way (same cfg, same layer shapes,
 * the method sized by the same maxima): adapter_io_import validates the
 * config against method->cfg (peft_type, r, and what changes the forward:
 * LoRA's scaling and rsLoRA, RandLoRA's n rule, scaling and basis kind),
 * then reads every tensor, shape-checked, and commits all or nothing. To
 * build them from a file (an adapter trained in peft), read its config
 * first with adapter_io_read_config.
 *
 * Errors: RL_ERR_FORMAT with one line naming the file and the key (a wrong
 * peft_type, a missing or mis-shaped tensor, a key matching no module, a
 * non-finite value, malformed JSON); RL_ERR_IO for a file that cannot be
 * read or written; RL_ERR_ARG for bad arguments (a module of another
 * method, an empty or repeated path).
 */
#ifndef RANDLORA_METHODS_ADAPTER_IO_H
#define RANDLORA_METHODS_ADAPTER_IO_H

#include <stdbool.h>
#include <stddef.h>

#include "methods/adapter.h"

#define ADAPTER_IO_WEIGHTS_NAME "adapter_model.safetensors"
#define ADAPTER_IO_CONFIG_NAME  "adapter_config.json"

/* one adapted linear layer: its module path in the Hugging Face model
 * ("text_model.encoder.layers.0.self_attn.q_proj") and its adapter */
struct adapter_io_module {
    const char     *path;
    struct adapter *adapter;
};

/* a linear classification head saved beside the adapters, as peft saves
 * a module listed in modules_to_save (models/head.h): the keys
 * base_model.model.<path>.weight (out, in) and .bias (out), the
 * ".modules_to_save.default" of peft's wrapper removed as
 * get_peft_model_state_dict removes it; adapter_config.json's
 * modules_to_save is [<path>]. */
struct adapter_io_head {
    const char *path;         /* "classifier" (Dinov2ForImageClassification's) */
    float *weight, *bias;     /* (out, in), (out): export reads, import writes */
    size_t out, in;
    bool loaded;              /* import: set when the file held the head       */
};

/* where the two files are */
struct adapter_io_files {
    const char *dir;          /* holds both (export creates it, one level); or NULL */
    const char *weights;      /* NULL: <dir>/adapter_model.safetensors      */
    const char *config;       /* NULL: <dir>/adapter_config.json            */
    const char *base_model;   /* export: base_model_name_or_path, or NULL   */
    struct adapter_io_head *head; /* a head to save / load too, or NULL:
                                     import of a file holding one then fails */
};

/* Write both files for the adapters mods[0..n) of method m (each file
 * through a temporary name and rename). n may be 0 only for `none`. */
int adapter_io_export(const struct adapter_io_files *files, struct adapter_method *m,
                      const struct adapter_io_module *mods, size_t n);

/* Read both files into the adapters' params and the method's shared
 * tensors. Every key of the file must belong to a module given or be a
 * shared tensor; every tensor expected must be there with its shape. On any
 * error nothing has been changed. */
int adapter_io_import(const struct adapter_io_files *files, struct adapter_method *m,
                      const struct adapter_io_module *mods, size_t n);

/* What a saved adapter says about itself. */
struct adapter_io_info {
    struct adapter_cfg cfg;   /* method (a registry name), r, alpha, dropout,
                                 rslora, d_initial, basis, seed; RandLoRA's
                                 rules from the rl_* metadata, else peft's */
    char   *base_model;       /* base_model_name_or_path, or NULL */
    char  **targets;          /* target_modules (a regex string: one entry) */
    size_t  n_targets;
    char   *head;             /* modules_to_save's one entry, or NULL      */
};

/* Read adapter_config.json (and the weights file's metadata when it exists)
 * into info->cfg, ready for adapter_method_init. RL_ERR_FORMAT naming the
 * file and key for anything malformed or unknown (peft_type not LORA, VERA,
 * RANDLORA or FULL). Free with adapter_io_info_free (also after failure). */
int  adapter_io_read_config(const struct adapter_io_files *files, struct adapter_io_info *info);
void adapter_io_info_free(struct adapter_io_info *info);

/* "LORA", "VERA", "RANDLORA", "FULL" for a registry name; NULL for none */
const char *adapter_io_peft_type(const char *method);

#endif /* RANDLORA_METHODS_ADAPTER_IO_H */
