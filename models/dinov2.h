/*
 * dinov2.h: DINOv2 image backbones, computing what Hugging Face
 * Dinov2Model (and Dinov2WithRegistersModel) computes, forward and
 * hand-written backward, with the adapters of models/clip.h on the six
 * linears of every layer.
 *
 *   pixels (B,CH,S,S) -> patch conv with bias (im2col + GEMM) ->
 *   [class token + pos[0]; register tokens; patches + pos[1..]] -> L pre-LN
 *   blocks with LayerScale (block.h: h = x + ls1 * attn, y = h + ls2 * mlp),
 *   GELU MLP -> layernorm (every token) -> features:
 *     DINOV2_POOL_CLS       the class token (C)           = HF pooler_output
 *     DINOV2_POOL_CLS_MEAN  [class token, mean of the patch tokens] (2C):
 *                           what Dinov2ForImageClassification's classifier
 *                           and DINOv2's linear evaluation read
 *
 * The position embeddings cover image_size / patch_size squared patches
 * (facebook/dinov2-*: 518 / 14 = 37); at another input size S they are
 * resized to (S/ps)^2 by bicubic interpolation exactly as HF's
 * Dinov2Embeddings.interpolate_pos_encoding does in transformers 5.x
 * (F.interpolate(size=(S/ps, S/ps), mode="bicubic", align_corners=False),
 * no antialiasing), or, for a model with register tokens, as
 * Dinov2WithRegistersEmbeddings does (the same with antialias=True); at the
 * native grid the table is used as it is. A "dinov2_with_registers" config
 * must have num_register_tokens >= 1 (the two go together here).
 *
 * A DINOv2 model is a struct clip_model with cfg.arch = CLIP_ARCH_DINOV2:
 * the same one-block weights (HF key names, dinov2_io.c), each layer's 16
 * block.h tensors followed by its two LayerScale vectors (block_params.ls1,
 * ls2), no text tower (text.layers = 0); so clip_adapters (targets "vision:"
 * q_proj = attention.attention.query, k_proj = .key, v_proj = .value,
 * out_proj = attention.output.dense, fc1 = mlp.fc1, fc2 = mlp.fc2), their
 * merged path, bf16 frozen weights, rebase and adapter files all apply.
 * Not supported, refused with a message: use_swiglu_ffn (the giant
 * models), masked-token inputs (bool_masked_pos). Fine-tuning trains
 * through adapters (`full` included); every weight's own gradient
 * (dinov2_grads, below) is for pretraining vit-tiny, at the native size.
 *
 * Memory as clip.h: activations in one allocation per run (struct
 * dinov2_run), sized at init; nothing allocated per step.
 */
#ifndef RANDLORA_MODELS_DINOV2_H
#define RANDLORA_MODELS_DINOV2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "models/clip.h"

/* HF module paths of the linears relative to the layer, enum block_linear
 * order ("attention.attention.query", ..., "mlp.fc2") */
extern const char *const dinov2_linear_paths[BLOCK_NUM_LINEARS];

/* ------------------------------------------------------------------------ */
/* configuration and weights (dinov2_io.c)                                   */

/* HF Dinov2Config's defaults (ViT-B/14 shapes, image 224, layerscale 1) */
void dinov2_config_defaults(struct clip_config *c);

/* Parse a Dinov2Config / Dinov2WithRegistersConfig config.json: model_type
 * ("dinov2" or "dinov2_with_registers"), hidden_size, num_hidden_layers,
 * num_attention_heads, mlp_ratio, hidden_act (gelu | quick_gelu),
 * layer_norm_eps, image_size, patch_size, num_channels, qkv_bias,
 * layerscale_value, use_swiglu_ffn (true is refused), num_register_tokens.
 * Missing keys take HF's defaults; RL_ERR_FORMAT naming `where` and the key
 * for a bad value. */
int   dinov2_config_parse(struct clip_config *c, const char *json, size_t len, const char *where);
int   dinov2_config_load(struct clip_config *c, const char *path);
/* as Dinov2Config JSON (malloc'd) */
char *dinov2_config_to_json(const struct clip_config *c);

/* "vit-tiny": this project's small DINOv2-layout model (32 px, patch 4,
 * width 128, 4 layers, 4 heads, MLP 512, 1 register token, layerscale 1);
 * "dinov2-small", "dinov2-base", "dinov2-large": facebook/dinov2-* shapes.
 * RL_ERR_ARG listing them for another name. */
int   dinov2_config_preset(struct clip_config *c, const char *name);
bool  dinov2_is_preset(const char *name);
const char *const *dinov2_preset_names(void);

/* floats of every weight */
size_t dinov2_config_n_params(const struct clip_config *c);

/* Lay out the block for cfg (validated; its layout must be DINOv2) and
 * allocate it zeroed. Free with clip_model_free. */
int   dinov2_model_init(struct clip_model *m, const struct clip_config *cfg);
/* HF Dinov2PreTrainedModel._init_weights (initializer_range 0.02): linears
 * and the patch conv truncated-normal std 0.02 (|x| <= 2 std), biases 0,
 * position embeddings and class token truncated-normal 0.02, register and
 * mask tokens 0, layer norms (1, 0), LayerScale layerscale_value. */
void  dinov2_model_init_random(struct clip_model *m, uint64_t seed);
int   dinov2_model_preset(struct clip_model *m, const char *name, uint64_t seed);
/* DIR/config.json + DIR/model.safetensors (F32, F16, BF16); every tensor
 * of the table present with its shape (RL_ERR_FORMAT naming it). */
int   dinov2_model_load(struct clip_model *m, const char *dir);
int   dinov2_model_save(const struct clip_model *m, const char *dir, int dtype);

/* A model directory of either kind: config.json's model_type "dinov2" or
 * "dinov2_with_registers" is DINOv2, anything else CLIP; a directory in
 * open_clip's layout (no config.json, open_clip_config.json) is CLIP
 * (clip_dir_layout). backbone_config_load reads one config.json;
 * backbone_config_load_dir a directory (*layout, when given, the layout). */
int   backbone_config_load(struct clip_config *c, const char *config_path);
int   backbone_config_load_dir(struct clip_config *c, const char *dir, enum clip_layout *layout);
int   backbone_model_load(struct clip_model *m, const char *dir);

/* Run at input_size S (a multiple of the patch size; 0: image_size): sets
 * cfg.vision.input_size, so clip_vision_tokens and the adapters' row
 * counts follow. Call before clip_adapters_init. RL_ERR_ARG when S is not a
 * multiple of patch_size. */
int   dinov2_set_input_size(struct clip_model *m, size_t S);

/* HF's interpolate_pos_encoding on one table: out ((oh*ow), C) = bicubic
 * resize (A = -0.75, align_corners False, borders clamped) of the patch
 * position grid src ((n*n), C) to oh x ow. */
void  dinov2_interpolate_pos(float *out, const float *src, size_t n, size_t oh, size_t ow,
                             size_t C);
/* the same with antialias=True, as Dinov2WithRegistersEmbeddings resizes
 * (PIL's bicubic: A = -0.5, the kernel stretched when shrinking, weights
 * normalised): used for models with register tokens */
void  dinov2_interpolate_pos_aa(float *out, const float *src, size_t n, size_t oh, size_t ow,
                                size_t C);

/* ------------------------------------------------------------------------ */
/* forward and backward (dinov2.c)                                           */

enum dinov2_pool {
    DINOV2_POOL_CLS = 0,
    DINOV2_POOL_CLS_MEAN,
};

/* "cls" | "cls_mean"; RL_ERR_ARG otherwise */
int    dinov2_pool_parse(const char *name, enum dinov2_pool *out);
/* feature width of a pool: C or 2C */
size_t dinov2_feature_dim(const struct clip_model *m, enum dinov2_pool pool);

struct dinov2_run {
    size_t max_B, B;            /* capacity, batch of the last forward        */
    size_t S, T, P, R, K;       /* input size, tokens, patches, registers,
                                   CH*ps*ps                                   */
    enum dinov2_pool pool;      /* of the last forward                        */
    bool train;                 /* every layer's activations kept             */
    size_t n_floats;            /* of buf                                     */
    float *buf;
    float *pos;                 /* (1+P, C) the position table at S (read at
                                   another size than the native one)          */
    struct block_acts *acts;    /* (L or 1)                                   */
    float *patches;             /* (B,P,K)                                    */
    float *patch_out;           /* (B,P,C)                                    */
    float *res;                 /* (L+1 or 2, B,T,C) residual stream          */
    float *fin;                 /* (B,T,C) layernorm(last)                    */
    float *fin_mean, *fin_rstd; /* (B,T)                                      */
    /* train only */
    struct block_grad_acts gacts;
    float *dres[2];             /* (B,T,C)                                    */
    float *dfin;                /* (B,T,C)                                    */
    float *dpatch_out;          /* (B,P,C)                                    */
    float *dpatches;            /* (B,P,K)                                    */
};

/* Allocate for batches of up to max_B images at the model's input size
 * (dinov2_set_input_size). m must be DINOv2-layout. */
void dinov2_run_init(struct dinov2_run *r, const struct clip_model *m, size_t max_B, bool train);
void dinov2_run_free(struct dinov2_run *r);

/* feats (B, dinov2_feature_dim) from pixels (B,CH,S,S), normalised already.
 * ca may be NULL. RL_ERR_ARG when B exceeds the capacity. */
int  dinov2_forward(struct dinov2_run *r, const struct clip_model *m, struct clip_adapters *ca,
                    const float *pixels, size_t B, enum dinov2_pool pool, float *feats);
/* Backward of the last forward given d feats: adapters' gradients (ca) and
 * dpixels (may be NULL) accumulate. Layers below the lowest adapted one
 * are skipped when dpixels is NULL. The run must have been made to train. */
void dinov2_backward(struct dinov2_run *r, const struct clip_model *m, struct clip_adapters *ca,
                     const float *dfeats, float *dpixels);

/* ------------------------------------------------------------------------ */
/* every weight's gradient (pretraining, experiments/pretrain_vit.h)         */

/* A gradient block laid out as the model's params (n_params floats, so
 * adamw_step(params, buf) updates every weight), with views. LayerScale
 * (ls1, ls2) and the mask token get no gradient (block.h has none for
 * LayerScale; the mask token is unused): they stay zero. */
struct dinov2_grads {
    size_t n;                   /* floats of buf (= m->n_params)            */
    float *buf;                 /* owned                                     */
    struct clip_weights w;      /* v_patch, v_patch_b, v_class, v_pos,
                                   v_registers, v_layers, v_post_*           */
    struct block_grads *vlayer; /* (L)                                       */
};

void dinov2_grads_init(struct dinov2_grads *g, const struct clip_model *m);
void dinov2_grads_free(struct dinov2_grads *g);
/* Backward of the last forward (no adapters) into every weight's gradient
 * (g accumulates; zero g->buf first). At the native input size only
 * (RL_ERR_ARG otherwise): the position table is then used as it is. */
int  dinov2_backward_full(struct dinov2_run *r, const struct clip_model *m,
                          struct dinov2_grads *g, const float *dfeats);

#endif /* RANDLORA_MODELS_DINOV2_H */
