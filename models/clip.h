/*
 * clip.h: a CLIP model computing exactly what Hugging Face CLIPModel
 * computes (shared/reference/clip.md sections 2-3), forward and backward,
 * with adapters (methods/adapter.h) on any chosen linears of either tower.
 *
 *   vision: pixels (B,CH,H,W) -> patch conv (im2col + GEMM, no bias) ->
 *           [class token; patches] + position -> pre_layrnorm -> L pre-LN
 *           blocks -> class token -> post_layernorm -> visual_projection
 *   text:   ids (n,ctx) -> token + position embedding -> L causal pre-LN
 *           blocks -> the first end-of-text position -> final_layer_norm ->
 *           text_projection
 *   heads:  image_embeds / text_embeds (projected, before L2 norm) ->
 *           exp(logit_scale) * cosine -> contrastive loss (pretraining) or
 *           cross-entropy over class prompts (fine-tuning)
 *
 * Files: clip.c (forward, backward, heads), clip_io.c (config.json,
 * safetensors load and save, the tensor table), clip_layout.c (the two
 * directory layouts, HF's and open_clip's, on the one block),
 * clip_openclip_config.c (open_clip_config.json), clip_adapters.c (targets
 * and the trainable block), presets.c (preset shapes, random init).
 *
 * Memory (llm.c's malloc_and_point; style-anchors.md 1.3, 7.5):
 *   - every frozen weight lives in ONE float block, m->params, laid out by
 *     the tensor table (HF key names, in table order; each encoder layer's
 *     16 tensors contiguous in block.h order), viewed by m->w; under
 *     train.precision = bf16 the linears' fp32 pages are given back and
 *     they live in m->w_bf16 (clip_model_linears_to_bf16);
 *   - frozen weights have no gradient memory. clip_grads is optional (all
 *     weights trainable, e.g. to pretrain clip-tiny): the same layout again;
 *   - activations: one allocation per tower (struct clip_vision_run /
 *     clip_text_run), sized for (max batch, tokens) at init; the step loop
 *     allocates nothing. A run made for inference keeps one layer's
 *     activations and cannot run the backward;
 *   - adapters: struct clip_adapters owns the method, one struct adapter per
 *     adapted linear, and the trainable block (all adapter parameters in ONE
 *     float array, their gradients in another), so the optimizer steps one
 *     flat block.
 *
 * A fine-tuning step (sketch):
 *
 *     struct clip_model m;            clip_model_load(&m, "clip-vit-base-patch32");
 *     struct clip_target t[4];        size_t nt;
 *     clip_targets_parse("vision:*:q_proj,v_proj;text:*:q_proj,v_proj", t, 4, &nt);
 *     struct clip_adapters ca;        clip_adapters_init(&ca, &m, &acfg, t, nt, B, M);
 *     struct clip_vision_run vr;      clip_vision_run_init(&vr, &m, B, true);
 *     struct clip_text_run tr;        clip_text_run_init(&tr, &m, M, 0, true);
 *     struct clip_head h;             clip_head_init(&h, B, M, m.cfg.projection_dim);
 *     ...
 *     clip_adapters_zero_grad(&ca);
 *     clip_text_forward(&tr, &m, &ca, prompt_ids, M, ctx, txt);      // class prompts
 *     clip_vision_forward(&vr, &m, &ca, pixels, B, img);
 *     clip_head_logits(&h, img, txt, B, M, 100.0f);
 *     loss = clip_head_crossentropy(&h, labels);
 *     clip_head_backward(&h, dimg, dtxt, NULL, 1.0f);
 *     clip_vision_backward(&vr, &m, &ca, NULL, dimg, NULL);
 *     clip_text_backward(&tr, &m, &ca, NULL, dtxt);
 *     adamw_step(&opt, ca.params, ca.grads);
 *
 * Conventions are nn.h's: weights (out, in) row-major; backward ACCUMULATES
 * into every gradient it is given (adapter grads, clip_grads, dpixels).
 */
#ifndef RANDLORA_MODELS_CLIP_H
#define RANDLORA_MODELS_CLIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "methods/adapter.h"
#include "models/block.h"

/* ------------------------------------------------------------------------ */
/* configuration (HF CLIPConfig; defaults are HF's, i.e. ViT-B/32)           */

struct clip_vision_config {
    size_t image_size;          /* 224                                       */
    size_t patch_size;          /* 32                                        */
    size_t num_channels;        /* 3                                         */
    size_t hidden;              /* hidden_size C, 768                        */
    size_t layers;              /* num_hidden_layers, 12                     */
    size_t heads;               /* num_attention_heads, 12                   */
    size_t intermediate;        /* intermediate_size F, 3072                 */
    enum block_act act;         /* hidden_act: quick_gelu | gelu             */
    float layer_norm_eps;       /* 1e-5                                      */
    /* DINOv2 layout only (models/dinov2.h; 0 / false for CLIP): */
    size_t register_tokens;     /* num_register_tokens, after the class token */
    size_t input_size;          /* the size it runs at (0: image_size, whose
                                   grid the position embeddings have)        */
    bool qkv_bias;              /* query/key/value have biases               */
    float layerscale_value;     /* LayerScale's initial value                */
};

struct clip_text_config {
    size_t vocab_size;          /* 49408                                     */
    size_t context;             /* max_position_embeddings, 77               */
    size_t hidden;              /* 512                                       */
    size_t layers;              /* 12                                        */
    size_t heads;               /* 8                                         */
    size_t intermediate;        /* 2048                                      */
    enum block_act act;
    float layer_norm_eps;
    int64_t bos_token_id;       /* 49406                                     */
    int64_t eos_token_id;       /* 49407; 2 in old hub configs: see below    */
    int64_t pad_token_id;       /* 1                                         */
};

/* whose weights a struct clip_model holds: CLIP's two towers, or a DINOv2
 * image backbone (models/dinov2.h: the vision tower only, HF Dinov2Model
 * names, LayerScale, no projection; text.layers = 0) */
enum clip_arch {
    CLIP_ARCH_CLIP = 0,
    CLIP_ARCH_DINOV2,
};

struct clip_config {
    enum clip_arch arch;      /* CLIP_ARCH_CLIP unless models/dinov2.h set it */
    struct clip_text_config text;
    struct clip_vision_config vision;
    size_t projection_dim;      /* D, 512                                    */
    float logit_scale_init;     /* logit_scale_init_value, ln(1/0.07)        */
};

/* HF's class defaults (the ViT-B/32 shapes, eos 49407) */
void clip_config_defaults(struct clip_config *c);

/* Check sizes and ranges; RL_ERR_FORMAT naming `where` and the key
 * ("config.json: vision_config.patch_size = 5 does not divide image_size 16"). */
int clip_config_validate(const struct clip_config *c, const char *where);

/* Parse a Hugging Face CLIPConfig config.json: text_config, vision_config
 * (a legacy text_config_dict / vision_config_dict overrides them, as HF
 * does), projection_dim, logit_scale_init_value; a missing key keeps HF's
 * default, unknown keys are ignored, a bad value is RL_ERR_FORMAT naming it.
 * `where` names the source in messages. */
int clip_config_parse(struct clip_config *c, const char *json, size_t len, const char *where);
int clip_config_load(struct clip_config *c, const char *path);
/* The config as CLIPConfig JSON (malloc'd, caller frees); write atomically. */
char *clip_config_to_json(const struct clip_config *c);
int clip_config_save(const struct clip_config *c, const char *path);

/* Presets: "clip-tiny", "clip-vit-b-32", "clip-vit-b-16", "clip-vit-l-14".
 * RL_ERR_ARG listing the names for anything else. */
int clip_config_preset(struct clip_config *c, const char *name);
/* NULL-terminated list of preset names */
const char *const *clip_preset_names(void);

/* floats of every weight of a model with this config (no allocation;
 * SIZE_MAX on overflow); 151,277,313 for ViT-B/32 */
size_t clip_config_n_params(const struct clip_config *c);

/* tokens of the vision tower: (image/patch)^2 patches + the class token
 * (+ DINOv2's register tokens; at input_size when set) */
size_t clip_vision_tokens(const struct clip_vision_config *v);

/* ------------------------------------------------------------------------ */
/* weights                                                                   */

#define CLIP_MAX_NAME 96

/* one entry of the tensor table: HF key, shape, where it lives in the block */
struct clip_tensor {
    char name[CLIP_MAX_NAME];
    int ndim;                   /* 0 for logit_scale                         */
    int64_t shape[4];
    size_t numel;
    size_t offset;              /* in floats, into the block                 */
};

/* named views into one block (params or grads); shapes in comments are
 * (vision C = Cv, text C = Ct, T = vision tokens, D = projection) */
struct clip_weights {
    /* vision_model. */
    float *v_patch;             /* (Cv, CH, ps, ps) embeddings.patch_embedding.weight  */
    float *v_class;             /* (Cv)             embeddings.class_embedding         */
    float *v_pos;               /* (T, Cv)          embeddings.position_embedding      */
    float *v_pre_w, *v_pre_b;   /* (Cv)             pre_layrnorm                       */
    float *v_layers;            /* Lv layers of block_param_sizes(Cv, Fv) floats       */
    float *v_post_w, *v_post_b; /* (Cv)             post_layernorm                     */
    /* text_model. */
    float *t_tok;               /* (V, Ct)          embeddings.token_embedding         */
    float *t_pos;               /* (ctx, Ct)        embeddings.position_embedding      */
    float *t_layers;            /* Lt layers of block_param_sizes(Ct, Ft) floats       */
    float *t_final_w, *t_final_b; /* (Ct)           final_layer_norm                   */
    /* heads */
    float *v_proj;              /* (D, Cv)          visual_projection.weight           */
    float *t_proj;              /* (D, Ct)          text_projection.weight             */
    float *logit_scale;         /* ()               logit_scale                        */
    /* DINOv2 layout (models/dinov2.h); NULL for CLIP. v_patch, v_class,
     * v_pos, v_layers and v_post_* (the final layernorm) are DINOv2's too */
    float *v_patch_b;           /* (Cv)             patch_embeddings.projection.bias   */
    float *v_mask;              /* (Cv)             embeddings.mask_token (unused)     */
    float *v_registers;         /* (R, Cv)          embeddings.register_tokens, or NULL */
};

/* how a model directory stores it (models/clip_layout.c, docs/models.md) */
enum clip_layout {
    CLIP_LAYOUT_HF = 0,         /* config.json + model.safetensors, HF names  */
    CLIP_LAYOUT_OPENCLIP,       /* open_clip_config.json + open_clip_model.
                                   safetensors, open_clip's names: q/k/v
                                   packed as attn.in_proj_weight, visual.proj
                                   and text_projection transposed            */
};

struct clip_model {
    struct clip_config cfg;
    enum clip_layout layout;    /* the layout it was loaded from (HF for a
                                   preset); clip_adapters_rebase reads it    */
    size_t n_params;            /* floats in the block                       */
    float *params;              /* the frozen block, owned                   */
    struct clip_weights w;      /* views into params                         */
    size_t n_tensors;
    struct clip_tensor *tensors;/* the table, in block order                 */
    struct block_params *vlayer;/* (Lv) views of each vision layer           */
    struct block_params *tlayer;/* (Lt)                                      */
    struct block_config vblock, tblock;
    size_t view_offset[16];     /* internal: offsets of the clip_weights views */
    /* train.precision = bf16 (clip_model_linears_to_bf16): */
    uint16_t *w_bf16;           /* every linear weight of both towers (not
                                   in_proj: q, k, v's serve it) rounded to
                                   bf16, one block, owned; NULL under fp32   */
    size_t n_w_bf16;            /* its elements                               */
    size_t *released;           /* (n_released, 2) the block ranges (offset,
                                   floats) of the fp32 linear weights given
                                   back: their block_params views are NULL,
                                   and every reader of them asserts; owned    */
    size_t n_released;
};

/* Lay out the block for cfg (validated first) and allocate it zeroed. */
int  clip_model_init(struct clip_model *m, const struct clip_config *cfg);
void clip_model_free(struct clip_model *m);      /* safe on a zeroed struct */

/* The table entry called name, or NULL */
const struct clip_tensor *clip_model_find(const struct clip_model *m, const char *name);
float *clip_model_tensor(const struct clip_model *m, const char *name);

/* Random init as HF's CLIPPreTrainedModel._init_weights (factor 1): token
 * and position embeddings N(0, 0.02), patch conv N(0, 0.02), class token
 * N(0, Cv^-1/2), q/k/v N(0, C^-1/2 (2L)^-1/2), out_proj N(0, C^-1/2),
 * fc1 N(0, (2C)^-1/2), fc2 N(0, C^-1/2 (2L)^-1/2), projections N(0, C^-1/2),
 * biases 0, layer norms (1, 0), logit_scale = logit_scale_init. */
void clip_model_init_random(struct clip_model *m, uint64_t seed);

/* clip_model_init for a preset, randomly initialised */
int  clip_model_preset(struct clip_model *m, const char *name, uint64_t seed);

/* ---- layouts (clip_layout.c) ---- */

/* "hf" | "open_clip" -> layout; RL_ERR_ARG otherwise */
int clip_layout_parse(const char *name, enum clip_layout *out);
const char *clip_layout_name(enum clip_layout l);
/* the layout's config and weight file names ("config.json",
 * "model.safetensors"; "open_clip_config.json", "open_clip_model.safetensors") */
const char *clip_layout_config_file(enum clip_layout l);
const char *clip_layout_weights_file(enum clip_layout l);
/* The layout DIR holds: HF when DIR/config.json exists, else open_clip when
 * DIR/open_clip_config.json does; RL_ERR_IO naming both files otherwise. */
int clip_dir_layout(const char *dir, enum clip_layout *out);
/* DIR/<the layout's config or weights file>, malloc'd */
char *clip_dir_file(const char *dir, enum clip_layout l, bool weights);
/* the config of DIR in whichever layout it holds (*layout may be NULL) */
int clip_config_load_dir(struct clip_config *c, const char *dir, enum clip_layout *layout);

/* One tensor as a layout stores it: its name and shape in the file, and the
 * block range it fills (numel floats at offset; `transposed`: the file's
 * (shape[0], shape[1]) is the block's (shape[1], shape[0]) transposed). */
struct clip_stored {
    char name[CLIP_MAX_NAME];
    int ndim;
    int64_t shape[4];
    size_t numel;
    size_t offset;
    bool transposed;
};
/* The tensors layout l stores for model m, into out (NULL: count only);
 * returns their number. HF: the table itself. open_clip: per layer
 * ln_1, attn.in_proj_weight (3C, C) and in_proj_bias (3C) over the
 * adjacent q/k/v, attn.out_proj, ln_2, mlp.c_fc, mlp.c_proj; visual.conv1,
 * class_embedding, positional_embedding, ln_pre, ln_post, proj (Cv, D) =
 * visual_projection^T; token_embedding, positional_embedding, ln_final,
 * text_projection (Ct, D) = text_projection.weight^T; logit_scale. */
size_t clip_stored_tensors(const struct clip_model *m, enum clip_layout l,
                           struct clip_stored *out);
/* Check an opened weights file against layout l: every stored tensor
 * present with its shape and a loadable dtype (logit_scale () or (1));
 * RL_ERR_FORMAT naming `path` and the tensor. *present: tensors found. */
int clip_model_check_file(const struct clip_model *m, enum clip_layout l,
                          const struct st_file *f, const char *path, size_t *present);
/* Load every stored tensor of layout l from path into m's block. */
int clip_model_load_weights_as(struct clip_model *m, const char *path, enum clip_layout l);
/* Re-read from path (a file of m->layout) the stored tensors that cover the
 * block range [offset, offset + n) (an in_proj_weight covers q, k and v of
 * its layer, which a rebase restores too: nothing is merged then). */
int clip_model_reload_range(struct clip_model *m, const char *path, size_t offset, size_t n);
/* clip_model_save in layout l: HF as clip_model_save; open_clip writes
 * open_clip_config.json (model_cfg in open_clip's keys, preprocess_cfg
 * with CLIP's mean and std) and open_clip_model.safetensors. RL_ERR_ARG
 * for a model open_clip cannot express (towers with different
 * activations, layer_norm_eps other than 1e-5, MLP width not width *
 * mlp_ratio exactly, width not a multiple of the vision heads). */
int clip_model_save_as(const struct clip_model *m, const char *dir, int dtype,
                       enum clip_layout l);

/* open_clip's config (clip_openclip_config.c): the hub's open_clip_config.json,
 * {"model_cfg": {"embed_dim", "quick_gelu", "vision_cfg": {...},
 * "text_cfg": {...}}, "preprocess_cfg": {...}}, or a bare model_cfg. Keys
 * that change the architecture away from CLIP's (timm or HF towers, layer
 * scale, attentional pooling, custom_text, ...) are refused, RL_ERR_FORMAT
 * naming `where` and the key; unknown keys are ignored. Token ids: eos is
 * vocab_size - 1 (open_clip pools at the argmax id), bos vocab_size - 2,
 * pad 0. */
int clip_openclip_config_parse(struct clip_config *c, const char *json, size_t len,
                               const char *where);
/* the config as open_clip_config.json (malloc'd, caller frees), or NULL
 * with RL_ERR_ARG set when open_clip cannot express it (above) */
char *clip_openclip_config_to_json(const struct clip_config *c);

/* Load a model directory of either layout (clip_dir_layout; m->layout says
 * which): DIR/config.json + DIR/model.safetensors, or open_clip_config.json
 * + open_clip_model.safetensors (F32, F16 or BF16, converted to float).
 * Every stored tensor must be present with its shape (RL_ERR_FORMAT naming
 * it otherwise); other keys (the legacy position_ids buffers) are ignored.
 * logit_scale may be () or (1). */
int  clip_model_load(struct clip_model *m, const char *dir);
/* Load the weights of an already laid-out model from an HF-layout
 * safetensors file (clip_model_load_weights_as for either layout). */
int  clip_model_load_weights(struct clip_model *m, const char *path);
/* Write DIR/config.json and DIR/model.safetensors (dtype ST_F32, ST_F16 or
 * ST_BF16); DIR is created when missing. */
int  clip_model_save(const struct clip_model *m, const char *dir, int dtype);

/* Gradients for every weight (everything trainable): one block, same layout. */
struct clip_grads {
    float *buf;                 /* m->n_params floats, owned                 */
    struct clip_weights w;
    struct block_grads *vlayer, *tlayer;
};
void clip_grads_init(struct clip_grads *g, const struct clip_model *m);
void clip_grads_free(struct clip_grads *g);
void clip_grads_zero(struct clip_grads *g, const struct clip_model *m);

/* ------------------------------------------------------------------------ */
/* adapters: targets and the trainable block (clip_adapters.c)               */

enum clip_tower {
    CLIP_TOWER_VISION = 0,
    CLIP_TOWER_TEXT   = 1,
    CLIP_NUM_TOWERS
};

/* One target: the linears `modules` (bit i = enum block_linear i) of
 * layers lo..hi (inclusive) of the towers in `towers` (bit t = tower t).
 * lo = 0, hi = SIZE_MAX: every layer. */
struct clip_target {
    unsigned towers;
    size_t lo, hi;
    unsigned modules;
};

/* Parse a target list. Items are separated by ';' (or whitespace); each is
 *     [TOWER:[LAYERS:]]MODULES
 * TOWER: vision | text | both (default both); LAYERS: * | N | A-B (default
 * all); MODULES: comma list of q_proj, k_proj, v_proj, out_proj, fc1, fc2,
 * attn (q,k,v,out), qkv, mlp (fc1,fc2), all. E.g.
 *     "q_proj,v_proj"                       both towers, every layer
 *     "vision:8-11:q_proj,v_proj;text:mlp"
 * RL_ERR_ARG naming the item and listing what exists for an unknown word. */
int clip_targets_parse(const char *spec, struct clip_target *out, size_t max, size_t *n_out);

/* one adapted linear */
struct clip_site {
    enum clip_arch arch;      /* the model's: names the site (clip_site_name) */
    enum clip_tower tower;
    size_t layer;
    enum block_linear lin;
    size_t offset;              /* of its parameters in the trainable block  */
};

/* which path the adapted linears take (block.h struct block_adapters) */
enum clip_path_mode {
    CLIP_PATH_AUTO = 0,         /* per layer, adapter_choose_path for the rows */
    CLIP_PATH_FACTORED,         /* always factored                            */
    CLIP_PATH_MERGED,           /* merged wherever allowed (not with active
                                   dropout, which only the factored path has) */
};

/* how a merged site's parameter gradients are formed (models/block.h) */
enum clip_proj_mode {
    CLIP_PROJ_AUTO = 0,         /* the cheaper, adapter_merged_step_flops     */
    CLIP_PROJ_WEIGHT,           /* always from the weight gradient dy^T x     */
    CLIP_PROJ_ROWS,             /* from x and dy wherever the method can      */
};

/* "auto" | "factored" | "merged" -> mode; RL_ERR_ARG otherwise */
int clip_path_mode_parse(const char *name, enum clip_path_mode *out);

struct clip_adapters {
    struct adapter_method method;
    size_t n_sites;
    struct adapter *adapters;   /* (n_sites), in site order                  */
    struct clip_site *sites;    /* vision before text, by layer, by linear   */
    struct block_adapters *vision, *text;   /* per layer; NULL = no adapter  */
    size_t n_params;
    float *params;              /* the trainable block, n_params floats      */
    float *grads;               /* its gradients, same layout                */
    size_t max_images, max_texts;
    /* the per-layer path choice (clip_adapters_begin_step); path_mode is
     * set at init from RANDLORA_ADAPTER_PATH (auto | factored | merged;
     * unset: auto) and may be changed between steps */
    enum clip_path_mode path_mode;
    enum clip_proj_mode proj_mode;      /* auto at init; tests force one     */
    bool *merged;               /* (n_sites) the weight holds W + dW now      */
    bool *drifted;              /* (n_sites) merged since the last rebase     */
    size_t n_merged;            /* sites merged now                           */
    size_t round_trips;         /* most merge/unmerge pairs any weight has had
                                   since init or the last rebase              */
    float *gw;                  /* merged weight-gradient scratch, allocated at
                                   the first merge for the largest layer      */
    float *merged_params;       /* (n_params) the parameters each merged
                                   site's weight holds dW of (the params at
                                   its merge or last re-merge); only for
                                   methods that stay merged across steps      */
    float **gw_sum;             /* (n_sites) a merged site's weight-gradient
                                   sum over a step's micro-batches (d_out x
                                   d_in), allocated at the site's first step
                                   of more than one micro-batch; else NULL    */
    uint16_t *w_bf16;           /* the model's bf16 linear weights (m->w_bf16,
                                   viewed, not owned: clip_adapters_set_
                                   precision), or NULL under fp32              */
    size_t n_w_bf16;            /* its elements                               */
    uint16_t *w_bf16_lo;        /* the merged sites' second terms bf16(dW)
                                   (n_w_bf16, at the copies' offsets; only a
                                   merged site's pages are touched), owned,
                                   allocated at the first merge under bf16,
                                   or NULL                                    */
};

/* Attach cfg's method to every linear matched by the targets, for forwards
 * of at most max_images images and max_texts texts (of context length). The
 * method is sized by the adapted layers; parameters are laid out site after
 * site and initialised by the method. RL_ERR_ARG (listing the towers,
 * layer ranges and modules that exist) when a target matches nothing or
 * names a layer outside its tower, or when the method refuses a layer. */
int  clip_adapters_init(struct clip_adapters *ca, const struct clip_model *m,
                        const struct adapter_cfg *cfg, const struct clip_target *targets,
                        size_t n_targets, size_t max_images, size_t max_texts);
void clip_adapters_free(struct clip_adapters *ca);   /* safe on a zeroed struct */
void clip_adapters_zero_grad(struct clip_adapters *ca);
void clip_adapters_set_training(struct clip_adapters *ca, bool training);
/* "vision_model.encoder.layers.3.self_attn.q_proj" for site i, in buf
 * ("encoder.layer.3.attention.attention.query" in the DINOv2 layout) */
const char *clip_site_name(const struct clip_site *s, char *buf, size_t size);
/* the weight (d_out, d_in) site s adapts, in m's block: in_proj's is the
 * layer's adjacent q/k/v weights, one (3C, C) matrix */
float *clip_site_weight(struct clip_model *m, const struct clip_site *s);
/* the adapter at (tower, layer, lin), or NULL */
struct adapter *clip_adapters_find(const struct clip_adapters *ca, enum clip_tower tower,
                                   size_t layer, enum block_linear lin);

/* The two paths (methods/adapter.h, DESIGN.md "Speed"), per adapted linear.
 *
 * clip_adapters_begin_step chooses each site's path for a step of size sz
 * (struct clip_step_size: each site priced on the rows it sees,
 * clip_site_rows) -- adapter_choose_path under CLIP_PATH_AUTO, factored whenever dropout is
 * active -- and brings the merged sites' weights to W + dW(current
 * parameters) IN PLACE (no copy of any weight): a site merged afresh gets
 * W <- W + dW; a site still merged from the previous step gets
 * W <- W + dW(new) - dW(old) (adapter_remerge; one GEMM for RandLoRA where
 * an unmerge and a merge take two); a site that now takes the factored
 * path is unmerged. Only methods with such a cheaper re-merge
 * (adapter_ops.add_delta_change: RandLoRA) stay merged across steps; they
 * keep the parameters each weight holds dW of in ca->merged_params
 * (n_params floats).
 *
 * The towers run merged sites as one GEMM. With one backward pass a step
 * their backward projects each weight gradient onto the adapter's
 * parameters as soon as it is formed (one shared scratch of the largest
 * d_out x d_in). With more (gradient accumulation) each merged site sums its
 * weight gradient over the step's micro-batches in its own d_out x d_in
 * buffer (zeroed here; allocated at the first such step and kept: the
 * memory of a weight per merged site), and end_backward projects each sum
 * once, so the projection costs once per optimizer step, not once per
 * micro-batch. Methods whose gradient is the weight gradient itself
 * (ADAPTER_F_GRAD_IS_GW: full) accumulate into it directly, with no sum.
 * Either way ca->grads receives the same sum (the projection is linear), up
 * to round-off. A backward that also asks for the weights' own gradient
 * projects at once. Where the method has project_rows and that is cheaper
 * over the step (adapter_merged_step_flops), a merged site forms no weight
 * gradient at all: its parameter gradients come from its input and output
 * gradient rows, each micro-batch (ca->proj_mode forces either route).
 *
 * A training step is: begin_step, the micro-batches' forward and backward,
 * clip_adapters_end_backward (the sums projected; sites of methods without
 * a cheaper re-merge unmerged, while the parameters are still those they
 * were merged with), the optimizer step; the next begin_step re-merges.
 * clip_adapters_end_step does end_backward and unmerges every site left
 * merged (W <- W - dW(the parameters it was merged with), so it may run
 * after an optimizer step); it must run before the weights are saved,
 * rebased or read as the frozen model, and before anything runs the model
 * without the adapters. After end_step the weights are the pristine ones up
 * to round-off: each merge, re-merge or unmerge rounds a weight once, by at
 * most 1 ulp of |W| + |dW| plus the GEMM's own rounding of dW (or of
 * dW(new) - dW(old)), so after k of them |W - W_pristine| <= k
 * ulp(max |W| + |dW|) + the dW roundings (measured: typically ~sqrt(k)
 * ulp). round_trips counts those events (a merge and its unmerge as one).
 * clip_adapters_rebase restores the weights of the sites merged since the
 * last rebase bit for bit from the model's safetensors file (one tensor
 * mapped at a time, so no weight-sized copy); the runner unmerges and
 * rebases at checkpoints, every CLIP_REBASE_EVERY steps and at the end, so
 * a resumed run sees exactly the weights of the uninterrupted one. All of
 * this is free for factored-only steps (nothing merged: nothing done).
 * Under bf16 (clip_adapters_set_precision) no weight changes at all: a
 * merge forms the site's second term bf16(dW), an unmerge drops it, and
 * nothing drifts. m must be the model the adapters were made for. */
struct clip_step_size {
    size_t images;              /* images per micro-batch; 0: vision not run  */
    size_t texts;               /* prompts per text forward; 0: text not run  */
    size_t text_tokens;         /* tokens each prompt runs: the cut, the
                                   longest end-of-text + 1 (clip_text_run.T)  */
    size_t vision_micro;        /* backward passes per step of each tower;    */
    size_t text_micro;          /* 0: evaluation                              */
};

/* rows site s's linear sees in one pass of a step of size sz: one per
 * sequence for q_proj, out_proj, fc1 and fc2 of a tower's last layer, which
 * runs at its pooled rows only (clip_vision_run.pool_last, the default);
 * every token's elsewhere */
size_t clip_site_rows(const struct clip_model *m, const struct clip_site *s,
                      const struct clip_step_size *sz);

void clip_adapters_begin_step(struct clip_adapters *ca, struct clip_model *m,
                              const struct clip_step_size *sz);
void clip_adapters_end_backward(struct clip_adapters *ca, struct clip_model *m);
void clip_adapters_end_step(struct clip_adapters *ca, struct clip_model *m);
/* re-read the drifted sites' weights from a safetensors file (the model's
 * own, as it was loaded); RL_ERR_ARG while sites are merged */
int  clip_adapters_rebase(struct clip_adapters *ca, struct clip_model *m, const char *path);

/* Numeric precision of the frozen linears' products (train.precision). */
enum clip_precision {
    CLIP_PRECISION_FP32 = 0,    /* everything fp32 (the default)              */
    CLIP_PRECISION_BF16,        /* frozen linears' forward and input gradient
                                   as bf16 GEMMs, fp32 accumulation            */
};
/* "fp32" | "bf16" -> precision; RL_ERR_ARG otherwise */
int  clip_precision_parse(const char *name, enum clip_precision *out);
const char *clip_precision_name(enum clip_precision p);
/* Under CLIP_PRECISION_BF16: the model's linear weights in bf16
 * (clip_model_linears_to_bf16, made once per model: the fp32 ones are given
 * back), and each layer's block_adapters.w_bf16 pointed at them; ca->w_bf16
 * and n_w_bf16 view m's block (ca does not own it). The products of every
 * linear run on that copy, on either path: while a site is merged its
 * second term w_bf16_lo (models/block.h) is bf16(dW), so the product is
 * x bf16(W) + x bf16(dW), and an update dW far below half a bf16 step of W
 * is kept; the copy itself never changes (an unmerge drops the second
 * term: exact, and nothing drifts, so a rebase has nothing to restore).
 * Packed in_proj sites stay factored (their merged backward would need the
 * fp32 weights). Call after the weights are loaded and before the first
 * step. RL_ERR_NA (the CPU has no fast bf16 GEMM, gemm_bf16_check's
 * message) leaves everything fp32. FP32: nothing. */
int  clip_adapters_set_precision(struct clip_adapters *ca, struct clip_model *m,
                                 enum clip_precision p);
/* Round every linear weight of both towers but in_proj (q, k and v serve
 * it) to bf16 into m->w_bf16, once (a second call does nothing), and,
 * unless keep_fp32, give the fp32 ones back (mem_release_pages: the
 * resident set drops by about 4 bytes per weight; each released view in
 * m->vlayer / m->tlayer set to NULL, so the fp32 products assert instead
 * of reading them, as do clip_model_tensor, the savers and
 * clip_model_reload_range on them). Every method here leaves W frozen
 * (full fine-tuning trains a delta dW beside it, methods/full.c), so no
 * training step needs the fp32 weights again; keep_fp32 is for tests that
 * compare against them. RL_ERR_NA as clip_adapters_set_precision. */
int  clip_model_linears_to_bf16(struct clip_model *m, bool keep_fp32);
/* the release alone, after clip_model_linears_to_bf16(m, true); a second
 * call does nothing */
void clip_model_release_fp32_linears(struct clip_model *m);
/* bytes of fp32 linear weights (every linear of both towers) m still holds:
 * all of them after a load, 0 once clip_model_linears_to_bf16 released them */
size_t clip_model_fp32_linear_bytes(const struct clip_model *m);
/* [offset, offset + n) of m's block holds a released fp32 weight */
bool clip_model_range_released(const struct clip_model *m, size_t offset, size_t n);

/* the runner's rebase period in steps (experiments/train_step.c) */
#define CLIP_REBASE_EVERY 100

/* ------------------------------------------------------------------------ */
/* the towers: forward and backward                                          */

/* vision activations, one allocation */
struct clip_vision_run {
    size_t max_B, B;            /* capacity, batch of the last forward        */
    size_t T, P, K;             /* tokens, patches, CH*ps*ps                  */
    bool train;                 /* per-layer activations kept (backward ok)   */
    bool recompute;             /* train keeping layer inputs only (below)    */
    struct rng *rngs;           /* (Lv, 6) adapters' streams, recompute only  */
    size_t n_floats;            /* of buf: activations and workspaces         */
    float *buf;
    size_t layer_stride;        /* floats of one layer's saved activations    */
    float *layer_acts;          /* (Lv or 1) x layer_stride                   */
    struct block_acts *acts;    /* (Lv or 1)                                  */
    bool pool_last;             /* default true: the last layer at the class
                                 * tokens only (block_pooled_forward); false
                                 * runs it on every token, for readers of
                                 * res's last slot                            */
    struct block_pooled_acts last; /* the last layer's when pool_last         */
    float *patches;             /* (B,P,K)     im2col                         */
    float *patch_out;           /* (B,P,C)                                    */
    float *emb;                 /* (B,T,C)     class + patches + position     */
    float *pre_mean, *pre_rstd; /* (B,T)                                      */
    float *res;                 /* (Lv+1 or 2, B,T,C) residual stream; the
                                 * last layer's output is there only when
                                 * pool_last is false                         */
    float *pooled;              /* (B,C)       class token of the last layer  */
    float *post;                /* (B,C)       post_layernorm(pooled)         */
    float *post_mean, *post_rstd; /* (B)                                      */
    /* backward workspace (train only) */
    struct block_grad_acts gacts;
    struct block_pooled_grad_acts glast;
    float *acts_scratch;        /* shared by the layers (block_acts_point)    */
    float *gacts_buf;
    float *dres[2];             /* (B,T,C)                                    */
    float *dpost, *dpooled;     /* (B,C)                                      */
    float *dpatch_out;          /* (B,P,C)                                    */
    float *dpatches;            /* (B,P,K)                                    */
};

/* text activations, one allocation */
struct clip_text_run {
    size_t max_B, B;            /* capacity, rows of the last forward         */
    size_t ctx;                 /* max_position_embeddings                    */
    size_t max_T;               /* tokens this run holds (<= ctx)             */
    size_t T;                   /* tokens run: the cut (longest EOT + 1)      */
    bool train;
    bool recompute;             /* as the vision run's                        */
    struct rng *rngs;
    size_t n_floats;            /* of buf                                     */
    bool cut;                   /* default true; false runs all row tokens    */
    bool pool_last;             /* default true: the last layer at the
                                 * end-of-text tokens only (as vision's)      */
    float *buf;
    size_t layer_stride;
    float *layer_acts;
    struct block_acts *acts;
    struct block_pooled_acts last;
    int32_t *ids;               /* (B,T)       the ids actually run           */
    size_t *eot;                /* (B)         pooled position of each row    */
    float *res;                 /* (Lt+1 or 2, B,T,C), as vision's            */
    float *pooled;              /* (B,C)                                      */
    float *fin;                 /* (B,C)       final_layer_norm(pooled)       */
    float *fin_mean, *fin_rstd; /* (B)                                        */
    struct block_grad_acts gacts;
    struct block_pooled_grad_acts glast;
    float *acts_scratch;        /* shared by the layers (block_acts_point)    */
    float *gacts_buf;
    float *dres[2];
    float *dfin, *dpooled;      /* (B,C)                                      */
};

/* Allocate for batches of up to max_B. train = false keeps one layer's
 * activations (forward only: encode, eval). A text run holds max_T tokens
 * per row (0: the model's context); since the tower runs only up to the
 * longest end-of-text, a run for known prompts ("a photo of a {}.", ~10
 * tokens) can be sized for them: activations scale with max_T. */
void clip_vision_run_init(struct clip_vision_run *r, const struct clip_model *m, size_t max_B,
                          bool train);
void clip_vision_run_free(struct clip_vision_run *r);
void clip_text_run_init(struct clip_text_run *r, const struct clip_model *m, size_t max_B,
                        size_t max_T, bool train);
void clip_text_run_free(struct clip_text_run *r);

/* Training runs that recompute instead of storing: of the layers'
 * activations they keep only the residual stream (every layer's input) and
 * the last layer's; the backward runs each lower layer's forward again,
 * from its kept input and with its adapters' random streams restored, just
 * before that layer's backward. The same kernels on the same inputs give
 * the same bits, so every gradient equals the storing run's exactly; the
 * cost is one more forward of all but the last layer (about a third more
 * arithmetic for full fine-tuning, half more for frozen-weight methods),
 * the saving L - 2 layers' activations (clip-vit-b-32 at batch 32: about
 * 460 MiB). Freed with clip_*_run_free. */
void clip_vision_run_init_recompute(struct clip_vision_run *r, const struct clip_model *m,
                                    size_t max_B);
void clip_text_run_init_recompute(struct clip_text_run *r, const struct clip_model *m,
                                  size_t max_B, size_t max_T);

/* image_embeds (B,D) = the vision tower on pixels (B,CH,H,W), normalised
 * already (datasets/transforms). ca may be NULL (no adapters).
 * RL_ERR_ARG when B exceeds the run's (or the adapters') capacity. */
int clip_vision_forward(struct clip_vision_run *r, const struct clip_model *m,
                        struct clip_adapters *ca, const float *pixels, size_t B,
                        float *image_embeds);

/* Backward of the last forward given d image_embeds (B,D): accumulates into
 * the adapters' gradients (ca), every weight's gradient (g, may be NULL) and
 * dpixels (B,CH,H,W, may be NULL). Layers below the lowest one with
 * something to train are skipped. ca must be the forward's. */
void clip_vision_backward(struct clip_vision_run *r, const struct clip_model *m,
                          struct clip_adapters *ca, struct clip_grads *g,
                          const float *d_image_embeds, float *dpixels);

/* End-of-text position of a row of T ids: the first id == eos_token_id, or,
 * for an old hub config whose eos_token_id is 2, HF's legacy rule (the first
 * position of the largest id). SIZE_MAX when a row has no end-of-text. */
size_t clip_text_eot(const struct clip_text_config *tc, const int32_t *ids, size_t T);

/* text_embeds (n,D) = the text tower on ids (n,T) (T <= context; the
 * tokenizer's padded rows). The tower runs on the first Tc = max EOT + 1
 * positions only (r->cut; the same maths, equal to sgemm rounding).
 * RL_ERR_ARG for an id outside the vocabulary, a row without end-of-text,
 * T > context, Tc > r->max_T or n too large. */
int clip_text_forward(struct clip_text_run *r, const struct clip_model *m,
                      struct clip_adapters *ca, const int32_t *ids, size_t n, size_t T,
                      float *text_embeds);
void clip_text_backward(struct clip_text_run *r, const struct clip_model *m,
                        struct clip_adapters *ca, struct clip_grads *g,
                        const float *d_text_embeds);

/* ------------------------------------------------------------------------ */
/* heads                                                                     */

enum clip_loss_kind {
    CLIP_LOSS_NONE = 0,
    CLIP_LOSS_CONTRASTIVE,      /* symmetric, N == M, pairs on the diagonal  */
    CLIP_LOSS_CROSSENTROPY,     /* rows = images, columns = classes          */
};

/* scaled-cosine logits and their losses, one allocation */
struct clip_head {
    size_t max_N, max_M, D;
    size_t N, M;
    float scale;
    enum clip_loss_kind loss;
    float *buf;
    float *a, *a_norm;          /* (N,D), (N)  normalised image embeddings   */
    float *b, *b_norm;          /* (M,D), (M)  normalised text embeddings    */
    float *logits;              /* (N,M)       logits_per_image              */
    float *probs, *probs_t;     /* (N,M), (M,N) softmaxes of the last loss   */
    float *dlogits;             /* (N,M)                                     */
    float *da, *db;             /* (N,D), (M,D)                              */
    const int32_t *targets;     /* of the last cross-entropy (borrowed)      */
};

void clip_head_init(struct clip_head *h, size_t max_N, size_t max_M, size_t D);
void clip_head_free(struct clip_head *h);
/* the model's exp(logit_scale) */
float clip_logit_scale(const struct clip_model *m);
/* h->logits (N,M) = scale * l2norm(img) l2norm(txt)^T */
void  clip_head_logits(struct clip_head *h, const float *img, const float *txt,
                       size_t N, size_t M, float scale);
/* (CE(logits) + CE(logits^T)) / 2 on the last logits (N == M) */
float clip_head_contrastive(struct clip_head *h);
/* mean CE of the last logits against targets (N) in [0, M); targets are
 * borrowed until the backward */
float clip_head_crossentropy(struct clip_head *h, const int32_t *targets);
/* Backward of the last loss scaled by dloss: dimg (N,D) +=, dtxt (M,D) +=
 * (either may be NULL), dlogit_scale (scalar, may be NULL) += d/d logit_scale
 * (the log of scale). */
void  clip_head_backward(struct clip_head *h, float *dimg, float *dtxt, float *dlogit_scale,
                         float dloss);
/* Zero-shot class weights (CLIP's prompt ensembling): out (M,D) = the L2
 * normalised mean of the L2 normalised txt rows (M*K, D), K templates per
 * class, class-major. */
void  clip_class_features(float *out, const float *txt, size_t M, size_t K, size_t D);

#endif /* RANDLORA_MODELS_CLIP_H */
