/*
 * adapter.h: the adapter interface. LoRA, VeRA, RandLoRA, full fine-tuning
 * and `none` (the frozen model) behind one vtable, numerically identical to
 * Hugging Face peft's definitions (../shared/reference/methods.md).
 *
 * Three levels:
 *   struct adapter_ops     one const table per method (methods/<name>.c);
 *   struct adapter_method  one per model: the configuration, the shared
 *                          frozen state (VeRA's A/B, RandLoRA's bases),
 *                          generated from cfg.seed so a seed regenerates it,
 *                          and scratch shared by the layers;
 *   struct adapter         one per adapted linear layer: its slice of the
 *                          trainable block and of the gradient block, the
 *                          activations its backward needs, private data.
 * Nobody outside methods/ calls a->ops->x: use the adapter_* wrappers.
 *
 * Usage (one adapted linear y = x W^T, W (d_out, d_in) frozen):
 *
 *     struct adapter_cfg cfg;
 *     struct adapter_method m;
 *     struct adapter a;
 *     adapter_cfg_defaults(&cfg, "randlora", 32);      // peft profile
 *     adapter_cfg_profile(&cfg, "paper");              // or the paper's rules
 *     if ((rc = adapter_method_init(&m, &cfg, max_out, max_in, max_rows)))
 *         return rc;                                   // rl_error_msg() says why
 *     size_t np = adapter_n_trainable(&m, d_out, d_in);
 *     rc = adapter_init(&a, &m, d_out, d_in, params + off, grads + off);
 *     ...
 *     linear_forward(y, x, w, b, N, d_in, d_out);     // frozen base
 *     adapter_forward(&a, x, y, N);                    // y += x dW^T
 *     ...
 *     linear_backward(dx, NULL, NULL, dy, x, w, N, d_in, d_out);
 *     adapter_backward(&a, x, dy, dx, N);              // grads +=, dx += dy dW
 *     ...
 *     adapter_free(&a);
 *     adapter_method_free(&m);
 *
 * Rules shared by every method:
 *   - row-major, PyTorch layouts: W and dW are (d_out, d_in); x (N, d_in),
 *     y and dy (N, d_out);
 *   - forward ADDS the adapter's branch to y; backward ACCUMULATES (+=) into
 *     a->grads (when non-NULL) and into dx (when non-NULL);
 *   - backward must follow the forward of the same x and N on that adapter
 *     (the forward keeps what the backward needs, like llm.c activations);
 *   - no allocation in forward, backward, merge or project_grad: per-layer
 *     buffers are sized at adapter_init for max_rows rows, scratch shared by
 *     all layers of a method at adapter_method_init; so the layers of one
 *     method run one at a time (as a model's layers do).
 */
#ifndef RANDLORA_METHODS_ADAPTER_H
#define RANDLORA_METHODS_ADAPTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/rng.h"

#define ADAPTER_API_VERSION 1

/* ------------------------------------------------------------------------ */
/* configuration                                                             */

/* RandLoRA's frozen bases (methods.md 3.2, 3.6) */
enum adapter_basis {
    ADAPTER_BASIS_DENSE = 0,      /* kaiming-uniform, divided by its std          */
    ADAPTER_BASIS_SPARSE,         /* ternary, s = 3: P(+-1) = 1/6 each, then /std  */
    ADAPTER_BASIS_VERY_SPARSE,    /* ternary, s = sqrt(min_dim), then /std         */
};

/* RandLoRA's number of bases n for a layer with d = min(d_in, d_out) */
enum adapter_n_rule {
    ADAPTER_N_CEIL = 0,           /* ceil(d/r)                     (peft)          */
    ADAPTER_N_FLOOR_PLUS_ONE,     /* min(1000, floor(d/r) + 1)     (vision code)   */
};

/* RandLoRA's scaling s */
enum adapter_scaling {
    ADAPTER_SCALE_ALPHA_R = 0,    /* alpha / r                     (peft)          */
    ADAPTER_SCALE_ALPHA_R_SQRT_N, /* alpha / (r sqrt(n))           (authors' fork) */
    ADAPTER_SCALE_ONE_OVER_R,     /* 1 / r                         (vision code)   */
    ADAPTER_SCALE_TEN_OVER_R,     /* 10 / r    (vision code before c7a6515, 2025-02) */
};

/* RandLoRA's initial Lambda (r, n) */
enum adapter_lambda_init {
    ADAPTER_LAMBDA_ZERO = 0,      /* 0                             (peft)          */
    ADAPTER_LAMBDA_INV_MAX_N_R,   /* 1 / max(n, r)                 (vision code)   */
};

/* LoRA's alpha default and init (methods.md 1, "the paper's LoRA") */
enum adapter_lora_rule {
    ADAPTER_LORA_PEFT = 0,        /* alpha 8; A kaiming-uniform, B = 0  (peft)     */
    ADAPTER_LORA_PAPER,           /* alpha 1 (s = 1/r); A = 0, B ~ U(+-1/sqrt(r d_out))
                                     (vision code rand_lora.py, nn.Linear layers)  */
};

/* RandLoRA's initial Gamma (n, d) */
enum adapter_gamma_init {
    ADAPTER_GAMMA_INV_MAX_N_D = 0, /* 1 / max(n, d)                (peft)          */
    ADAPTER_GAMMA_ZERO,            /* 0                            (vision code)   */
};

struct adapter_cfg {
    const char *method;          /* "lora", "vera", "randlora", "nola", "full",
                                    "none"                                        */
    size_t   r;                  /* rank (ignored by full and none)               */
    float    alpha;              /* LoRA, RandLoRA and NoLA numerator; <= 0: the
                                    method's default (LoRA 8 as peft, 1 under the
                                    paper rule; RandLoRA 20 r; NoLA 1)            */
    float    dropout;            /* on the adapter branch's input, in [0, 1)       */
    bool     rslora;             /* LoRA: s = alpha / sqrt(r) instead of alpha / r */
    float    vera_d_init;        /* VeRA: initial lambda_d (peft d_initial 0.1)    */
    enum adapter_basis       basis;
    enum adapter_n_rule      n_rule;
    enum adapter_scaling     scaling;
    enum adapter_lambda_init lambda_init;
    enum adapter_gamma_init  gamma_init;
    enum adapter_lora_rule   lora_rule;
    size_t   nola_bases;         /* NoLA: random bases per side, k (set by the
                                    profile: peft 256, paper 1024 as the authors) */
    uint64_t seed;               /* peft's projection_prng_key: shared bases and
                                    per-layer random inits derive from it         */
};

/* peft's defaults for `method` at rank r (the `peft` profile): alpha default,
 * dropout 0, no rsLoRA, d_initial 0.1, dense bases, seed 0. */
void adapter_cfg_defaults(struct adapter_cfg *cfg, const char *method, size_t r);

/* Set RandLoRA's n rule, scaling and Lambda/Gamma init and LoRA's rule at once:
 *   "peft":  ceil(d/r), alpha/r (alpha default 20 r), Lambda 0, Gamma 1/max(n,d);
 *            LoRA as peft
 *   "paper": min(1000, floor(d/r)+1), 1/r, Lambda 1/max(n,r), Gamma 0; LoRA as
 *            the vision code (alpha 1, A = 0, B kaiming): the authors' current
 *            rand_lora.py (4ac565e, unchanged since c7a6515)
 *   "paper_2024": "paper" with RandLoRA at 10/r, as rand_lora.py had it from
 *            b16b979 (2024-11) to 0878151 (2025-01-06)
 * NoLA's k: 256 under "peft" (peft has no NoLA; this harness's default), the
 * authors' 1024 under the paper profiles; set cfg.nola_bases after the
 * profile to choose another. (methods.md 3.8, "NoLA"). The basis density is
 * left as it is.
 * RL_ERR_ARG for an unknown name. */
int adapter_cfg_profile(struct adapter_cfg *cfg, const char *profile);

/* "dense", "sparse", "very_sparse" -> basis; RL_ERR_ARG otherwise */
int adapter_basis_parse(const char *name, enum adapter_basis *out);

/* ------------------------------------------------------------------------ */
/* instances                                                                 */

struct adapter_ops;

/* one per model */
struct adapter_method {
    const struct adapter_ops *ops;
    struct adapter_cfg cfg;      /* cfg.method points at ops->name               */
    size_t   max_out, max_in;    /* largest d_out and d_in over adapted layers   */
    size_t   max_rows;           /* most rows a forward is given                 */
    size_t   n_layers;           /* adapters initialised from it so far          */
    struct rng rng;              /* root stream, seeded with cfg.seed            */
    float   *drop_scratch;       /* (max_rows, max_in) when dropout > 0          */
    void    *priv;               /* the method's shared frozen state and scratch */
    bool     bf16_products;      /* the branches' products in bf16 (set with
                                    train.precision = bf16; adapter_impl.h)     */
};

/* one per adapted linear layer */
struct adapter {
    const struct adapter_ops *ops;
    struct adapter_method *method;
    size_t   d_out, d_in;
    size_t   index;              /* order of initialisation in its method        */
    unsigned layer;              /* ADAPTER_LAYER_* (adapter_init_layer)         */
    float   *params;             /* n_params trainable floats (a slice)          */
    float   *grads;              /* n_params gradient floats, or NULL            */
    size_t   n_params;
    bool     owns_params;        /* params and grads allocated by adapter_init   */
    bool     training;           /* dropout active (default true, as PyTorch)    */
    struct rng rng;              /* this layer's stream: init, then dropout masks */
    float   *drop_x;             /* (max_rows, d_in) dropout(x), when dropout > 0 */
    uint8_t *drop_mask;          /* (max_rows, d_in) kept = 1                     */
    size_t   drop_rows;          /* rows of the last forward that used dropout   */
    void    *priv;
};

/* A named view of a trainable or shared tensor, in peft's name and shape:
 * `data` points at rows*cols... contiguous floats (n = product of shape). */
struct adapter_tensor {
    const char *name;            /* "lora_A.weight", "randlora_gamma", ...        */
    float   *data;
    size_t   n;
    int      ndim;
    size_t   shape[3];
};

struct st_writer;                /* formats/safetensors.h                          */
struct st_file;

/* the two ways a layer can compute an adapted linear (DESIGN.md "Speed") */
enum adapter_path {
    ADAPTER_PATH_FACTORED = 0,   /* base + adapter_forward / adapter_backward     */
    ADAPTER_PATH_MERGED,         /* W' = W + dW; weight grad -> adapter_project_grad */
};

/* ------------------------------------------------------------------------ */
/* the vtable: one const table per method, at the bottom of its file         */

enum {
    ADAPTER_F_RANK    = 1u << 0, /* takes cfg.r (>= 1)                            */
    ADAPTER_F_DROPOUT = 1u << 1, /* applies cfg.dropout to the branch input       */
    ADAPTER_F_RANK_LE_DIMS = 1u << 2, /* r must not exceed min(d_out, d_in)       */
    ADAPTER_F_COUNT_MONOTONE = 1u << 3, /* n_trainable non-decreasing in r         */
    ADAPTER_F_GRAD_IS_GW = 1u << 4,     /* grads (d_out, d_in) == dL/d(dW): the
                                           merged backward accumulates the weight
                                           gradient into a->grads directly, and
                                           project_grad is grads += gw           */
    ADAPTER_F_INIT_NONZERO = 1u << 5, /* dW != 0 at init, as its authors start it
                                           (NoLA); the identity-at-init test skips it */
    ADAPTER_F_BUDGET_BASES = 1u << 6, /* budget matching picks cfg.nola_bases (the
                                           count is linear in it) at the given rank */
    ADAPTER_F_BF16_BRANCH = 1u << 7,  /* the branch's products (forward, backward,
                                           project_rows) take mm_branch: bf16 when
                                           the method's bf16_products is set      */
};

struct adapter_ops {
    const char *name;
    const char *summary;
    int      api_version;
    unsigned flags;
    size_t   default_rank;       /* the rank an experiment uses when it gives none
                                    (peft's defaults; NoLA the paper's 1); 0: none */

    /* closed forms: trainable floats of one layer; shared frozen floats of a
     * method; the rank of dW for generic parameter values */
    size_t (*n_trainable)(const struct adapter_cfg *cfg, size_t d_out, size_t d_in);
    size_t (*n_shared)(const struct adapter_cfg *cfg, size_t max_out, size_t max_in);
    size_t (*max_rank)(const struct adapter_cfg *cfg, size_t d_out, size_t d_in);

    /* shared state: m->cfg, max_*, rng are set; allocate m->priv (may be NULL) */
    int  (*method_init)(struct adapter_method *m);
    void (*method_free)(struct adapter_method *m);
    /* shared frozen tensors by peft name (may be NULL: none) */
    size_t (*method_tensors)(struct adapter_method *m, struct adapter_tensor *t, size_t max);

    /* per layer: a's generic fields and a->params are set; initialise the
     * parameters (methods.md) and allocate a->priv. On failure the wrapper
     * calls free, which must accept what init left. */
    int  (*init)(struct adapter *a);
    void (*free)(struct adapter *a);
    /* the trainable tensors by peft name, in their order in a->params */
    size_t (*tensors)(struct adapter *a, float *base, struct adapter_tensor *t, size_t max);

    /* factored path. x (N, d_in) is the branch input (after dropout).
     * forward:  y (N, d_out) += x dW^T
     * backward: grads += dL/dparams (when a->grads), dx (N, d_in) += dy dW
     *           (when dx); dy (N, d_out). */
    void (*forward)(struct adapter *a, const float *x, float *y, size_t N);
    void (*backward)(struct adapter *a, const float *x, const float *dy, float *dx, size_t N);

    /* merged path. add_delta: w (d_out, d_in) += scale * dW.
     * project_grad: grads += dL/dparams given gw = dL/d(dW) (d_out, d_in). */
    void (*add_delta)(struct adapter *a, float *w, float scale);
    void (*project_grad)(struct adapter *a, const float *gw);
    /* optional: w (d_out, d_in) += dW(a->params) - dW(old), old laid out as
     * a->params, in fewer FLOPs than an unmerge plus a merge (NULL: those) */
    void (*add_delta_change)(struct adapter *a, float *w, const float *old);
    /* optional, merged path: grads += dL/dparams from the layer's input x
     * (N, d_in) and output gradient dy (N, d_out) directly, without forming
     * the weight gradient dy^T x (the input gradient comes from the merged
     * weight); cheaper than forming and projecting it when N r is small
     * against d_out d_in. rows_flops: the FLOPs of one add_delta (*merge)
     * and of project_rows on N rows (*rows). Both NULL: only projection. */
    void (*project_rows)(struct adapter *a, const float *x, const float *dy, size_t N);
    void (*rows_flops)(const struct adapter *a, size_t N, double *merge, double *rows);
    /* FLOPs of the adapter's extra work for a forward + backward of N rows on
     * each path (the frozen base's own forward and dx are common to both) */
    void (*flops)(const struct adapter *a, size_t N, double *factored, double *merged);

    /* adapter files (methods/adapter_io.h). export: add this layer's tensors
     * to w as F32 under `prefix` + peft name, in peft's shapes. import: read
     * the same keys from f, shape-checked (RL_ERR_FORMAT naming the file and
     * the key), into dst, a buffer of n_params floats laid out as a->params.
     * Every method here uses adapter_export_views / adapter_import_views
     * (adapter_impl.h), i.e. its `tensors` views as they are; a method whose
     * stored form differs from its trainable layout would convert here. */
    int  (*export_tensors)(struct adapter *a, struct st_writer *w, const char *prefix);
    int  (*import_tensors)(struct adapter *a, const struct st_file *f, const char *prefix,
                           float *dst);
};

/* ------------------------------------------------------------------------ */
/* registry                                                                  */

extern const struct adapter_ops lora_ops, vera_ops, randlora_ops, nola_ops, full_ops, none_ops;

/* the methods, NULL-terminated, in a fixed order */
const struct adapter_ops *const *adapter_registry(void);
size_t adapter_registry_size(void);
/* the method called `name`, or NULL */
const struct adapter_ops *adapter_ops_find(const char *name);

/* ------------------------------------------------------------------------ */
/* life cycle                                                                */

/* Validate cfg and build the shared state for layers of at most
 * (max_out, max_in) and forwards of at most max_rows rows. RL_ERR_ARG with a
 * message for an unknown method, r = 0, dropout outside [0,1), zero sizes.
 * On failure m is left freed (adapter_method_free is still safe). */
int  adapter_method_init(struct adapter_method *m, const struct adapter_cfg *cfg,
                         size_t max_out, size_t max_in, size_t max_rows);
void adapter_method_free(struct adapter_method *m);

/* Attach an adapter to a (d_out, d_in) layer. params: the layer's slice of
 * the trainable block (adapter_n_trainable floats), initialised here; grads:
 * the same slice of the gradient block, or NULL for no parameter gradients.
 * params == NULL: the adapter allocates (and frees) both itself.
 * RL_ERR_ARG for a layer larger than the method's maxima, or a rank the
 * method refuses (LoRA and RandLoRA: r > min(d_out, d_in)). On failure a is
 * left freed (adapter_free is still safe). */
int  adapter_init(struct adapter *a, struct adapter_method *m, size_t d_out, size_t d_in,
                  float *params, float *grads);

/* What an adapted layer is, where a method's authors initialise the kinds
 * differently: ADAPTER_LAYER_PACKED_QKV is q, k and v as one (3d, d)
 * linear (open_clip's nn.MultiheadAttention in_proj_weight); LoRA's paper
 * rule starts it as the authors' rand_lora.MultiheadAttention does (output
 * side 0, input side Kaiming over a (1, r, d_in) tensor), where their
 * nn.Linear has the zero on the input side. Counts, shapes and every other
 * method are the same for both kinds. */
enum {
    ADAPTER_LAYER_LINEAR     = 0,
    ADAPTER_LAYER_PACKED_QKV = 1u << 0,
};
/* adapter_init for a layer of that kind (adapter_init: ADAPTER_LAYER_LINEAR) */
int  adapter_init_layer(struct adapter *a, struct adapter_method *m, size_t d_out, size_t d_in,
                        float *params, float *grads, unsigned layer);
void adapter_free(struct adapter *a);
void adapter_set_training(struct adapter *a, bool training);

/* ------------------------------------------------------------------------ */
/* dispatch                                                                  */

/* y (N, d_out) += dropout(x) dW^T; x (N, d_in), N <= max_rows */
void adapter_forward(struct adapter *a, const float *x, float *y, size_t N);
/* grads += dL/dparams (if a->grads); dx (N, d_in) += mask * (dy dW) (if dx) */
void adapter_backward(struct adapter *a, const float *x, const float *dy, float *dx, size_t N);

/* dw (d_out, d_in) = dW */
void adapter_delta_weight(struct adapter *a, float *dw);
/* w (d_out, d_in) += dW / -= dW (peft merge / unmerge) */
void adapter_merge(struct adapter *a, float *w);
void adapter_unmerge(struct adapter *a, float *w);
/* w holds W + dW(old) (merged with the parameters `old`, n_params floats
 * laid out as a->params): bring it to W + dW(a->params) -- after an
 * optimizer step, without going through W. unmerge_old: w -= dW(old). */
void adapter_remerge(struct adapter *a, float *w, const float *old);
void adapter_unmerge_old(struct adapter *a, float *w, const float *old);
/* grads += dL/dparams, given gw = dL/d(dW) (d_out, d_in) */
void adapter_project_grad(struct adapter *a, const float *gw);

/* grads += dL/dparams from x (N, d_in) and dy (N, d_out) (ops->project_rows) */
void adapter_project_rows(struct adapter *a, const float *x, const float *dy, size_t N);

/* FLOP estimates of both paths for N rows; the merged path counts building
 * dW, the weight-gradient GEMM dy^T x and the projection. */
void adapter_path_flops(const struct adapter *a, size_t N, double *factored, double *merged);
/* The merged path over an optimizer step of `micro` micro-batches of N rows
 * (0 counts as 1): bringing dW into the weight (two add_delta passes, merge
 * and unmerge, or one re-merge where the method has add_delta_change),
 * then per micro-batch either the weight gradient, projected once per step,
 * or project_rows; *rows (may be NULL) says whether project_rows is the
 * cheaper route. Returns that route's FLOPs. */
double adapter_merged_step_flops(const struct adapter *a, size_t N, size_t micro, bool *rows);
/* The cheaper path over an optimizer step of `micro` micro-batches of N
 * rows (0 counts as 1): micro times the factored work against
 * adapter_merged_step_flops; factored whenever dropout is active (the
 * merged path cannot apply a mask to the branch alone). With the method's
 * bf16_products (train.precision = bf16) and a branch that takes them
 * (ADAPTER_F_BF16_BRANCH), priced at the rates: the factored work at bf16's
 * (gemm_bf16_rate_over_fp32 times fp32's), and the merged path pays, on top,
 * the second bf16 term of its weight in the forward and the input gradient
 * (4 N d_out d_in per micro-batch, at bf16's rate); the merge, the weight
 * gradient and its projection stay fp32 FLOPs. */
enum adapter_path adapter_choose_path(const struct adapter *a, size_t N, size_t micro);
/* dropout is applied to this layer's branch now (training, dropout > 0):
 * only the factored path can do that */
bool adapter_dropout_active(const struct adapter *a);

/* The trainable tensors (views into a->params), or with `grad`, the same
 * views into a->grads (which must be non-NULL). Returns how many; fills at
 * most max. */
size_t adapter_tensors(struct adapter *a, bool grad, struct adapter_tensor *t, size_t max);
/* the method's shared frozen tensors (to save, or to load peft's) */
size_t adapter_method_tensors(struct adapter_method *m, struct adapter_tensor *t, size_t max);

/* One layer's tensors to / from safetensors under `prefix` (e.g.
 * "base_model.model.text_model.encoder.layers.0.self_attn.q_proj."); see the
 * export_tensors / import_tensors slots. import with dst == NULL reads
 * straight into a->params (no staging: a failure may leave some tensors
 * loaded); adapter_io_import stages and commits all or nothing. RL_ERR_NA
 * for a method without the slots. Whole adapters with their config and the
 * shared tensors: methods/adapter_io.h. */
int  adapter_export_tensors(struct adapter *a, struct st_writer *w, const char *prefix);
int  adapter_import_tensors(struct adapter *a, const struct st_file *f, const char *prefix,
                            float *dst);

/* ------------------------------------------------------------------------ */
/* counting and budgets (closed forms; no allocation, no bases)              */

struct adapter_shape {
    size_t d_out, d_in;
};

/* Validate (cfg, layer): RL_ERR_ARG with a message naming the problem. */
int    adapter_check(const struct adapter_ops *ops, const struct adapter_cfg *cfg,
                     size_t d_out, size_t d_in);
size_t adapter_count_layer(const struct adapter_ops *ops, const struct adapter_cfg *cfg,
                           size_t d_out, size_t d_in);
/* trainable floats over a list of layer shapes (each counted once) */
size_t adapter_count(const struct adapter_ops *ops, const struct adapter_cfg *cfg,
                     const struct adapter_shape *shapes, size_t n_shapes);
/* shared frozen floats for a method sized by these shapes */
size_t adapter_count_shared(const struct adapter_ops *ops, const struct adapter_cfg *cfg,
                            const struct adapter_shape *shapes, size_t n_shapes);
/* trainable floats of an initialised adapter's method for one layer */
size_t adapter_n_trainable(const struct adapter_method *m, size_t d_out, size_t d_in);

/* The rank whose trainable count over `shapes` is closest to `budget` (ties:
 * the smaller rank), among ranks every shape accepts. cfg->r is ignored.
 * RL_ERR_ARG for a method without a rank or when no rank is valid. */
int adapter_match_budget(const struct adapter_ops *ops, const struct adapter_cfg *cfg,
                         const struct adapter_shape *shapes, size_t n_shapes, size_t budget,
                         size_t *r_out, size_t *count_out);
/* The same for every method with a size to tune: *out = *cfg with the rank
 * matched, or for ADAPTER_F_BUDGET_BASES (NoLA) the number of bases k closest
 * to the budget at cfg->r (ties: the smaller). out may alias cfg. */
int adapter_match_budget_cfg(const struct adapter_ops *ops, const struct adapter_cfg *cfg,
                             const struct adapter_shape *shapes, size_t n_shapes,
                             size_t budget, struct adapter_cfg *out, size_t *count_out);

/* RandLoRA's n for a layer and its scaling (exposed for counting and tests) */
size_t randlora_n_bases(const struct adapter_cfg *cfg, size_t d_out, size_t d_in);
float  randlora_scaling(const struct adapter_cfg *cfg, size_t n);
/* LoRA's s */
float  lora_scaling(const struct adapter_cfg *cfg);
/* the numerator of the method's scaling as it runs: cfg.alpha when > 0, else
 * its default (LoRA 8, or 1 under the paper rule; RandLoRA 20 r; NoLA 1);
 * 0 for methods without one (VeRA, full, none) */
float  adapter_alpha(const struct adapter_cfg *cfg);
/* NoLA's s = alpha / r (alpha default 1, the authors' lora_alpha) */
float  nola_scaling(const struct adapter_cfg *cfg);

#endif /* RANDLORA_METHODS_ADAPTER_H */
