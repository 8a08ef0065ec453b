/*
 * block.h: one pre-LN transformer encoder layer (Hugging Face
 * CLIPEncoderLayer), forward and backward, built from the nn.h kernels:
 *
 *     h = x + out_proj(MHA(layer_norm1(x)))
 *     y = h + fc2(act(fc1(layer_norm2(h))))          act = quick_gelu | gelu
 *
 * MHA has separate q/k/v projections with biases, NH heads of hs = C/NH,
 * scores scaled by 1/sqrt(hs), optionally causal (text tower).
 *
 * Memory (llm.c's malloc_and_point pattern; nothing is allocated here):
 *   - parameters: a struct of const views, pointed anywhere; block_params_point
 *     lays the 16 tensors out in one flat buffer in the order of
 *     block_param_names (HF names relative to the layer);
 *   - parameter gradients: the same shape; a NULL pointer means frozen and
 *     costs no work (linear_backward skips the dW GEMM);
 *   - forward activations saved for the backward: ONE buffer of
 *     block_acts_size(B,T,C,NH,F) floats, viewed by block_acts_point;
 *   - backward workspace (activation gradients): ONE buffer of
 *     block_grad_acts_size(B,T,C,NH,F) floats, viewed by
 *     block_grad_acts_point. It holds nothing between calls, so a stack of
 *     layers shares one.
 *
 *     struct block_config cfg = { .C = 768, .NH = 12, .F = 3072,
 *                                 .act = BLOCK_ACT_QUICK_GELU, .causal = false,
 *                                 .eps = 1e-5f };
 *     float *abuf = xmalloc_array(block_acts_size(B, T, C, NH, F), sizeof(float));
 *     struct block_acts acts;
 *     block_acts_point(&acts, abuf, B, T, C, NH, F);
 *     block_forward(y, &acts, x, &params, &cfg, B, T);
 *     ...
 *     block_backward(dx, &grads, &gacts, dy, &acts, x, &params, &cfg, B, T);
 *
 * Backward ACCUMULATES (+=) into dx and every non-NULL parameter gradient;
 * the caller zeroes them once per step (nn.h conventions).
 */
#ifndef RANDLORA_MODELS_BLOCK_H
#define RANDLORA_MODELS_BLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum block_act {
    BLOCK_ACT_QUICK_GELU = 0,   /* x * sigmoid(1.702 x): OpenAI CLIP        */
    BLOCK_ACT_GELU       = 1,   /* exact erf gelu                            */
};

struct block_config {
    size_t C;                   /* width                                     */
    size_t NH;                  /* heads; C % NH == 0                        */
    size_t F;                   /* MLP hidden width (4C in CLIP)             */
    enum block_act act;
    bool causal;                /* mask key j > query i (text tower)         */
    float eps;                  /* layer norm epsilon (CLIP: 1e-5)           */
};

/* ------------------------------------------------------------------------ */
/* parameters, PyTorch layout (out, in); biases may be NULL (no bias)        */

#define BLOCK_NUM_PARAMS 16

struct block_params {
    const float *ln1_w, *ln1_b;     /* (C), (C)    layer_norm1              */
    const float *q_w, *k_w, *v_w;   /* (C,C) each  self_attn.{q,k,v}_proj:
                                       contiguous, one (3C,C) matrix as
                                       open_clip's in_proj_weight          */
    const float *q_b, *k_b, *v_b;   /* (C) each, contiguous (in_proj_bias)  */
    const float *o_w, *o_b;         /* (C,C), (C)  self_attn.out_proj       */
    const float *ln2_w, *ln2_b;     /* (C), (C)    layer_norm2              */
    const float *fc1_w, *fc1_b;     /* (F,C), (F)  mlp.fc1                  */
    const float *fc2_w, *fc2_b;     /* (C,F), (C)  mlp.fc2                  */
    /* LayerScale (DINOv2, models/dinov2.h): h = x + ls1 * attproj and
     * y = h + ls2 * fcproj, per channel; NULL (CLIP, and what
     * block_params_point sets): no scaling. Not among the 16 flat tensors,
     * always frozen (no gradient); block_pooled_* do not take them. */
    const float *ls1, *ls2;         /* (C), (C)    layer_scale{1,2}.lambda1 */
};

/* same shapes; NULL = frozen (not computed) */
struct block_grads {
    float *ln1_w, *ln1_b;
    float *q_w, *k_w, *v_w;
    float *q_b, *k_b, *v_b;
    float *o_w, *o_b;
    float *ln2_w, *ln2_b;
    float *fc1_w, *fc1_b;
    float *fc2_w, *fc2_b;
};

/* HF names relative to the layer ("layer_norm1.weight", ...,
 * "mlp.fc2.bias"), in struct order, which is also the flat-buffer order:
 * the q, k and v weights are adjacent (then their biases), so the three
 * form one (3C, C) matrix, open_clip's packed in_proj_weight, that a
 * packed adapter (BLOCK_LIN_IN_PROJ) merges into in place. */
extern const char *const block_param_names[BLOCK_NUM_PARAMS];

/* sizes[i] = floats of tensor i (struct order); returns the total */
size_t block_param_sizes(size_t sizes[BLOCK_NUM_PARAMS], size_t C, size_t F);
/* point every member into buf, block_param_sizes(.., C, F) floats */
void block_params_point(struct block_params *p, const float *buf, size_t C, size_t F);
void block_grads_point(struct block_grads *g, float *buf, size_t C, size_t F);

/* ------------------------------------------------------------------------ */
/* forward activations: the saved ones, views into one buffer per layer, and
 * the cheap ones, in a scratch shared by every layer of a tower            */

/* What the backward needs is kept per layer: the layer-norm statistics, q,
 * k, v, the attention probabilities, atty, h and fch. The rest is either
 * consumed at once in the forward (attproj, fcproj: their residual sums are
 * what matters) or recomputed by the backward from what is kept -- ln1 from
 * the layer input, ln2 from h (layernorm_forward on the same rows with the
 * same statistics: the same bits) and fch_act from fch -- into the shared
 * scratch. That keeps 9C + 2F + NH T floats per row down to 5C + F + NH T
 * (clip-vit-b-32: 45% fewer saved activation bytes) for two layer norms
 * and an activation per layer of backward. */
struct block_acts {
    /* kept per layer */
    float *ln1_mean;    /* (B,T)                                             */
    float *ln1_rstd;    /* (B,T)                                             */
    float *q, *k, *v;   /* (B,T,C) each                                      */
    float *att;         /* (B,NH,T,T)  softmax probabilities                 */
    float *atty;        /* (B,T,C)     heads concatenated, before out_proj   */
    float *h;           /* (B,T,C)     x + attproj                           */
    float *ln2_mean;    /* (B,T)                                             */
    float *ln2_rstd;    /* (B,T)                                             */
    float *fch;         /* (B,T,F)     fc1(ln2)                              */
    /* the shared scratch: valid only right after they are written */
    float *ln1;         /* (B,T,C)     layer_norm1(x)                        */
    float *attproj;     /* (B,T,C)     out_proj(atty)       (= ln1's floats) */
    float *ln2;         /* (B,T,C)     layer_norm2(h)       (= ln1's floats) */
    float *fcproj;      /* (B,T,C)     fc2(fch_act)         (= ln1's floats) */
    float *fch_act;     /* (B,T,F)     act(fch)                              */
    float *stat_mean;   /* (B,T)       statistics the recompute rewrites     */
    float *stat_rstd;   /* (B,T)                                             */
    float *qkv;         /* (B,T,3C)    a packed in_proj adapter's branch, then
                                       its output gradient (= fch_act's floats) */
};

/* floats of one layer's kept activations (buf of block_acts_point) and of
 * the scratch its tower's layers share */
size_t block_acts_size(size_t B, size_t T, size_t C, size_t NH, size_t F);
size_t block_acts_scratch_size(size_t B, size_t T, size_t C, size_t F);
void block_acts_point(struct block_acts *a, float *buf, float *scratch,
                      size_t B, size_t T, size_t C, size_t NH, size_t F);

/* backward workspace: gradients w.r.t. the activations above */
struct block_grad_acts {
    float *dh;          /* (B,T,C)                                           */
    float *dln2;        /* (B,T,C)                                           */
    float *dfch;        /* (B,T,F)                                           */
    float *dfch_act;    /* (B,T,F)                                           */
    float *datty;       /* (B,T,C)                                           */
    float *dq, *dk, *dv;/* (B,T,C) each                                      */
    float *att_scratch; /* (B,NH,T,T)  attention_backward workspace          */
    float *dln1;        /* (B,T,C)                                           */
};

size_t block_grad_acts_size(size_t B, size_t T, size_t C, size_t NH, size_t F);
void block_grad_acts_point(struct block_grad_acts *g, float *buf,
                           size_t B, size_t T, size_t C, size_t NH, size_t F);

/* ------------------------------------------------------------------------ */
/* forward / backward                                                        */

/* out (B,T,C) = layer(inp (B,T,C)); acts receives what the backward needs.
 * out must not alias inp or acts. */
void block_forward(float *out, struct block_acts *acts, const float *inp,
                   const struct block_params *p, const struct block_config *cfg,
                   size_t B, size_t T);

/* dinp (B,T,C) += d out / d inp applied to dout; every non-NULL member of
 * g += its parameter gradient. dinp may be NULL (no input gradient needed).
 * acts and inp are those of the matching forward; ga is overwritten.
 * dinp must not alias dout. */
void block_backward(float *dinp, struct block_grads *g, struct block_grad_acts *ga,
                    const float *dout, const struct block_acts *acts, const float *inp,
                    const struct block_params *p, const struct block_config *cfg,
                    size_t B, size_t T);

/* ------------------------------------------------------------------------ */
/* adapters on the six linears (methods/adapter.h)                           */

/* the linears of a layer, in HF order; also the index into block_adapters */
enum block_linear {
    BLOCK_LIN_Q = 0,            /* self_attn.q_proj   (C -> C)               */
    BLOCK_LIN_K,                /* self_attn.k_proj   (C -> C)               */
    BLOCK_LIN_V,                /* self_attn.v_proj   (C -> C)               */
    BLOCK_LIN_OUT,              /* self_attn.out_proj (C -> C)               */
    BLOCK_LIN_FC1,              /* mlp.fc1            (C -> F)               */
    BLOCK_LIN_FC2,              /* mlp.fc2            (F -> C)               */
    BLOCK_LIN_IN_PROJ,          /* q, k and v as ONE (3C, C) linear, open_clip's
                                   packed attn.in_proj ("self_attn.in_proj"):
                                   its adapter is one adapter of d_out = 3C over
                                   the adjacent q/k/v weights; a layer adapts
                                   either it or q/k/v_proj, never both          */
    BLOCK_NUM_LINEARS
};

/* HF module names relative to the layer ("q_proj", ..., "fc2") and the
 * module paths ("self_attn.q_proj", ..., "mlp.fc2"), in enum order */
extern const char *const block_linear_names[BLOCK_NUM_LINEARS];
extern const char *const block_linear_paths[BLOCK_NUM_LINEARS];

/* (d_out, d_in) of linear i in a layer of width C and MLP width F: fc1
 * (F, C), fc2 (C, F), in_proj (3C, C), the others (C, C) */
void block_linear_shape(enum block_linear i, size_t C, size_t F, size_t *d_out, size_t *d_in);

/* the layer's weight of linear i, (d_out, d_in) row-major; in_proj's is
 * q_w, the first of the three adjacent q/k/v weights */
const float *block_linear_weight(const struct block_params *p, enum block_linear i);

struct adapter;

/* One adapter per linear or NULL (not adapted). The adapted linear computes
 *     y = x W^T + b + adapter(x)
 * on one of two paths (methods/adapter.h, DESIGN.md "Speed"):
 *   - factored (merged[i] false): the frozen linear_forward, then
 *     adapter_forward on the same input; in the backward, linear_backward
 *     (weight gradient only when g asks for it), then adapter_backward, which
 *     accumulates the adapter's parameter gradients and adds its share of dx;
 *   - merged (merged[i] true): the caller has merged the adapter into the
 *     weight IN PLACE (p's weight is W' = W + dW, adapter_merge), so the
 *     forward is the plain linear_forward. The backward forms the weight
 *     gradient gw = dy^T x in `gw` (scratch of at least d_out*d_in floats,
 *     shared by every layer: it is projected at once), projects it onto the
 *     adapter's parameters (adapter_project_grad) and adds it to g's weight
 *     gradient when g asks for one; dx = dy W' already includes dW.
 *     When g asks for no weight gradient, three cheaper variants:
 *       - gw_sum[i] set: dy^T x is added to gw_sum[i] (the linear's own
 *         d_out x d_in sum over an optimizer step's micro-batches), and the
 *         caller projects the sum once (the projection is linear);
 *       - rows[i] set: no weight gradient is formed at all; the adapter
 *         takes its parameter gradients from x and dy
 *         (adapter_project_rows), cheaper when its rank is small against
 *         the weight (LoRA, VeRA, RandLoRA's MLP layers);
 *       - a method whose parameters are dW itself (ADAPTER_F_GRAD_IS_GW:
 *         full) gets dy^T x added to its gradient directly.
 * Who merges, unmerges and chooses: models/clip.h (clip_adapters_begin_step). */
struct block_adapters {
    struct adapter *lin[BLOCK_NUM_LINEARS];
    bool merged[BLOCK_NUM_LINEARS];
    float *gw;                  /* needed when any merged[i]                  */
    float *gw_sum[BLOCK_NUM_LINEARS];   /* NULL: project at once (above)      */
    bool rows[BLOCK_NUM_LINEARS];       /* project_rows instead of gw (above) */
    /* linear i's frozen weight rounded to bf16 (train.precision = bf16:
     * clip_adapters_set_precision; the model's copy, its fp32 weight given
     * back), or NULL (fp32). When set, the linear's forward and its input
     * gradient are bf16 GEMMs with fp32 accumulation (core/gemm_bf16.h),
     * on either path. Every weight gradient stays an fp32 product. */
    const uint16_t *w_bf16[BLOCK_NUM_LINEARS];
    /* while linear i is merged under bf16: the second term bf16(dW), so
     * that its products run on bf16(W) + bf16(dW): an update dW far below
     * bf16's rounding of W is kept (one bf16 weight would lose it); NULL
     * otherwise */
    const uint16_t *w_bf16_lo[BLOCK_NUM_LINEARS];
};

/* block_forward / block_backward with adapters; ad == NULL is the plain
 * layer. The adapters keep what their backward needs, so the backward of a
 * layer must follow that layer's own forward (each adapter is used by one
 * layer). */
void block_forward_adapted(float *out, struct block_acts *acts, const float *inp,
                           const struct block_params *p, const struct block_adapters *ad,
                           const struct block_config *cfg, size_t B, size_t T);
void block_backward_adapted(float *dinp, struct block_grads *g, struct block_grad_acts *ga,
                            const float *dout, const struct block_acts *acts, const float *inp,
                            const struct block_params *p, const struct block_adapters *ad,
                            const struct block_config *cfg, size_t B, size_t T);

/* ------------------------------------------------------------------------ */
/* the last layer of a tower at its pooled rows only (block_pooled.c)        */

/* A tower reads one row of its last layer per sequence (the class token,
 * the end-of-text token), and every other row of that layer's output is
 * discarded. Only k and v need every row (they are what the pooled query
 * attends to), so the last layer runs layer_norm1, k and v on all B*T rows
 * and q, attention, out_proj and the MLP on the B pooled rows: for a tower
 * of L layers, about (5/6) / L of its linear work (clip-tiny: a fifth). The
 * result equals block_forward_adapted's rows idx[b] up to round-off. */
struct block_pooled_acts {
    /* kept for the backward */
    float *ln1_mean;    /* (B,T)                                             */
    float *ln1_rstd;    /* (B,T)                                             */
    float *k, *v;       /* (B,T,C)                                           */
    float *ln1_pool;    /* (B,C)       layer_norm1 at the pooled rows (q's input) */
    float *q;           /* (B,C)                                             */
    float *att;         /* (B,NH,T)    softmax probabilities                 */
    float *atty;        /* (B,C)                                             */
    float *h;           /* (B,C)       x + attproj at the pooled rows        */
    float *ln2_mean;    /* (B)                                               */
    float *ln2_rstd;    /* (B)                                               */
    float *fch;         /* (B,F)                                             */
    /* the scratch (block_acts_scratch_size), as in struct block_acts */
    float *ln1;         /* (B,T,C)     layer_norm1(x)                        */
    float *attproj;     /* (B,C)       (= ln1's floats)                      */
    float *ln2;         /* (B,C)       (= ln1's floats)                      */
    float *fcproj;      /* (B,C)       (= ln1's floats)                      */
    float *fch_act;     /* (B,F)                                             */
    float *stat_mean;   /* (B,T)                                             */
    float *stat_rstd;   /* (B,T)                                             */
    float *qkv;         /* (B,T,3C)    as struct block_acts's                */
};

struct block_pooled_grad_acts {
    float *dh;          /* (B,C)                                             */
    float *dln2;        /* (B,C)                                             */
    float *dfch;        /* (B,F)                                             */
    float *dfch_act;    /* (B,F)                                             */
    float *datty;       /* (B,C)                                             */
    float *dq;          /* (B,C)                                             */
    float *dk, *dv;     /* (B,T,C)                                           */
    float *att_scratch; /* (B,NH,T)                                          */
    float *dln1_pool;   /* (B,C)                                             */
    float *dln1;        /* (B,T,C)                                           */
};

/* floats of the kept activations and of the backward workspace; the
 * scratch is block_acts_scratch_size's */
size_t block_pooled_acts_size(size_t B, size_t T, size_t C, size_t NH, size_t F);
size_t block_pooled_grad_acts_size(size_t B, size_t T, size_t C, size_t NH, size_t F);
void block_pooled_acts_point(struct block_pooled_acts *a, float *buf, float *scratch,
                             size_t B, size_t T, size_t C, size_t NH, size_t F);
void block_pooled_grad_acts_point(struct block_pooled_grad_acts *g, float *buf,
                                  size_t B, size_t T, size_t C, size_t NH, size_t F);

/* out (B,C) = rows idx[b] (row 0 when idx is NULL) of the layer's output on
 * inp (B,T,C). Under the causal mask a row sees positions up to its own. */
void block_pooled_forward(float *out, struct block_pooled_acts *acts, const float *inp,
                          const size_t *idx, const struct block_params *p,
                          const struct block_adapters *ad, const struct block_config *cfg,
                          size_t B, size_t T);

/* dinp (B,T,C) += the input gradient of dout (B,C) at the pooled rows;
 * parameter and adapter gradients as block_backward_adapted. dinp may be
 * NULL; ga is overwritten. */
void block_pooled_backward(float *dinp, struct block_grads *g,
                           struct block_pooled_grad_acts *ga, const float *dout,
                           const struct block_pooled_acts *acts, const float *inp,
                           const size_t *idx, const struct block_params *p,
                           const struct block_adapters *ad, const struct block_config *cfg,
                           size_t B, size_t T);

#endif /* RANDLORA_MODELS_BLOCK_H */
