/*
 * llama.h: a Llama-family decoder (Hugging Face LlamaForCausalLM and
 * Qwen2ForCausalLM), forward and hand-written backward, with adapters
 * (methods/adapter.h) on any of the seven linears of every layer.
 *
 *   ids (B,T) -> embed_tokens -> L decoder layers -> norm -> lm_head -> logits
 *   layer:  h = x + o_proj(GQA(rope(q_proj(n1)), rope(k_proj(n1)), v_proj(n1)))
 *           y = h + down_proj(silu(gate_proj(n2)) * up_proj(n2))
 *           n1 = input_layernorm(x), n2 = post_attention_layernorm(h) (RMSNorm)
 *
 * Kernels: llama_nn.h. Files: llama_config.c (config.json), llama_io.c (the
 * tensor table, loading one or sharded safetensors, saving), llama_layer.c
 * (one decoder layer), llama.c (the model's forward and backward, the head
 * and its log-probabilities), llama_adapters.c (adapter sites and the
 * trainable block), llama_generate.c (greedy generation with a KV cache),
 * llama_presets.c (llama-tiny, HF-style random init).
 *
 * Memory follows clip.h: every frozen weight in ONE float block laid out by
 * the tensor table (HF names, table order), viewed per layer; optional
 * gradients for every weight in a second block of the same layout; the
 * activations of a batch in one allocation per struct llama_run, sized at
 * init; the adapters' parameters in one trainable block.
 *
 * Conventions are nn.h's: weights (out, in) row-major; backward ACCUMULATES
 * into every gradient it is given.
 */
#ifndef RANDLORA_MODELS_LLAMA_H
#define RANDLORA_MODELS_LLAMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "methods/adapter.h"
#include "models/adapted_linear.h"

/* ------------------------------------------------------------------------ */
/* configuration (config.json)                                              */

enum llama_arch {
    LLAMA_ARCH_LLAMA = 0,       /* LlamaForCausalLM, model_type "llama"     */
    LLAMA_ARCH_QWEN2,           /* Qwen2ForCausalLM, model_type "qwen2"     */
};

enum llama_rope_type {
    LLAMA_ROPE_DEFAULT = 0,     /* inv_freq = theta^(-2i/hs)                */
    LLAMA_ROPE_LINEAR,          /* inv_freq / factor                        */
    LLAMA_ROPE_LLAMA3,          /* Llama 3.1's frequency-dependent scaling  */
};

#define LLAMA_MAX_EOS 8

struct llama_config {
    enum llama_arch arch;
    size_t hidden;              /* hidden_size C                            */
    size_t intermediate;        /* intermediate_size F                      */
    size_t layers;              /* num_hidden_layers L                      */
    size_t heads;               /* num_attention_heads NH                   */
    size_t kv_heads;            /* num_key_value_heads KVH (default NH)     */
    size_t head_dim;            /* head_dim (default C / NH)                */
    size_t vocab_size;          /* V                                        */
    size_t max_position;        /* max_position_embeddings                  */
    float rms_norm_eps;         /* 1e-6                                     */
    double rope_theta;          /* 10000                                    */
    enum llama_rope_type rope_type;
    double rope_factor;         /* linear, llama3                           */
    double rope_low_freq_factor, rope_high_freq_factor;  /* llama3          */
    size_t rope_original_max_position;                   /* llama3          */
    bool qkv_bias;              /* q/k/v_proj biases (Qwen2; attention_bias) */
    bool o_bias;                /* o_proj bias (Llama attention_bias)       */
    bool mlp_bias;              /* gate/up/down biases (Llama mlp_bias)     */
    bool tie_word_embeddings;   /* lm_head is embed_tokens                  */
    float initializer_range;    /* 0.02 (random init only)                  */
    int64_t bos_token_id;       /* -1: none                                 */
    size_t n_eos;
    int64_t eos_token_id[LLAMA_MAX_EOS];
    char torch_dtype[16];       /* as given ("float32", "bfloat16", ...)    */
};

/* HF LlamaConfig's defaults for `arch`, with the small shapes left zero */
void llama_config_defaults(struct llama_config *c, enum llama_arch arch);
/* RL_ERR_FORMAT naming `where` and the key for a bad size or combination */
int llama_config_validate(const struct llama_config *c, const char *where);
/* Parse config.json: architectures / model_type pick the layout (a
 * LlamaForCausalLM or Qwen2ForCausalLM; anything else is refused), every
 * size key is required, the rest take HF's defaults. hidden_act must be
 * "silu"; rope_scaling null, "default", "linear" or "llama3" (others are
 * refused by name); Qwen2's use_sliding_window must be false. */
int llama_config_parse(struct llama_config *c, const char *json, size_t len, const char *where);
int llama_config_load(struct llama_config *c, const char *path);
char *llama_config_to_json(const struct llama_config *c);     /* malloc'd */
/* config.json at path names a causal language model (architectures
 * "...ForCausalLM", or model_type llama / qwen2): the decoder's, not CLIP's,
 * reader applies (randlora info). No error is set. */
bool llama_config_file_is_decoder(const char *path);
/* floats of every weight; SIZE_MAX on overflow */
size_t llama_config_n_params(const struct llama_config *c);
/* inv_freq (head_dim/2) after rope_scaling, as HF's rope init computes it */
void llama_rope_inv_freq(const struct llama_config *c, float *inv_freq);

/* "llama-tiny" and friends (llama_presets.c); RL_ERR_ARG listing them */
int llama_config_preset(struct llama_config *c, const char *name);
const char *const *llama_preset_names(void);   /* NULL-terminated */
bool llama_is_preset(const char *name);

/* ------------------------------------------------------------------------ */
/* weights                                                                   */

/* the tensors of one layer, in table order (absent biases have size 0) */
enum llama_layer_tensor {
    LT_LN1 = 0,                 /* input_layernorm.weight           (C)     */
    LT_Q_W, LT_Q_B,             /* self_attn.q_proj   (NH*hs, C), (NH*hs)   */
    LT_K_W, LT_K_B,             /* self_attn.k_proj   (KVH*hs, C)           */
    LT_V_W, LT_V_B,             /* self_attn.v_proj   (KVH*hs, C)           */
    LT_O_W, LT_O_B,             /* self_attn.o_proj   (C, NH*hs), (C)       */
    LT_LN2,                     /* post_attention_layernorm.weight  (C)     */
    LT_GATE_W, LT_GATE_B,       /* mlp.gate_proj      (F, C)                */
    LT_UP_W, LT_UP_B,           /* mlp.up_proj        (F, C)                */
    LT_DOWN_W, LT_DOWN_B,       /* mlp.down_proj      (C, F)                */
    LT_COUNT
};

/* HF names relative to "model.layers.N." */
extern const char *const llama_layer_tensor_names[LT_COUNT];

/* views of one layer's tensors (NULL: absent) in a params or grads block */
struct llama_layer_w {
    float *t[LT_COUNT];
};

/* the seven linears of a layer; also the index of its adapter */
enum llama_linear {
    LLAMA_LIN_Q = 0, LLAMA_LIN_K, LLAMA_LIN_V, LLAMA_LIN_O,
    LLAMA_LIN_GATE, LLAMA_LIN_UP, LLAMA_LIN_DOWN,
    LLAMA_NUM_LINEARS
};
/* "q_proj", ... "down_proj" and "self_attn.q_proj", ... "mlp.down_proj" */
extern const char *const llama_linear_names[LLAMA_NUM_LINEARS];
extern const char *const llama_linear_paths[LLAMA_NUM_LINEARS];
/* the weight tensor of linear i, and its (d_out, d_in) */
enum llama_layer_tensor llama_linear_weight(enum llama_linear i);
void llama_linear_shape(const struct llama_config *c, enum llama_linear i, size_t *d_out,
                        size_t *d_in);

#define LLAMA_MAX_NAME 96

struct llama_tensor {
    char name[LLAMA_MAX_NAME];
    int ndim;                   /* 1 or 2                                   */
    int64_t shape[2];
    size_t numel;
    size_t offset;              /* floats into the block                    */
};

struct llama_model {
    struct llama_config cfg;
    size_t n_params;
    float *params;              /* the block, owned                         */
    size_t n_tensors;
    struct llama_tensor *tensors;/* model.embed_tokens.weight, layers, norm,
                                   lm_head.weight (absent when tied)         */
    float *embed;               /* (V,C)                                    */
    float *norm;                /* (C)   model.norm.weight                  */
    float *lm_head;             /* (V,C) == embed when tied                 */
    struct llama_layer_w *layer;/* (L)                                      */
    float *inv_freq;            /* (head_dim/2) rotary frequencies          */
};

/* lay out and allocate (zeroed) for a validated config */
int  llama_model_init(struct llama_model *m, const struct llama_config *cfg);
void llama_model_free(struct llama_model *m);          /* safe when zeroed  */
const struct llama_tensor *llama_model_find(const struct llama_model *m, const char *name);

/* DIR/config.json + DIR/model.safetensors, or the shards that
 * DIR/model.safetensors.index.json's weight_map names (every shard under
 * DIR, every tensor of the table mapped, each shard opened once). F32, F16
 * and BF16 are converted to float32; extra keys (rotary_emb.inv_freq) are
 * ignored; a tied model's lm_head.weight, if stored, is ignored too. Any
 * missing or mis-shaped tensor, a bad index file or config key is
 * RL_ERR_FORMAT with one line naming it. */
int  llama_model_load(struct llama_model *m, const char *dir);
/* The same checks as llama_model_load on cfg's table without reading or
 * allocating the weights (headers only): every tensor present with its
 * shape in a dtype that converts. *n_tensors: the table's; *n_files: the
 * safetensors files read. */
int  llama_model_check_dir(const struct llama_config *cfg, const char *dir, size_t *n_tensors,
                           size_t *n_files);
/* the index file's weight_map: tensor name -> shard file (for tests and
 * the fuzz harness): RL_ERR_FORMAT unless it is an object of "name":
 * "file" pairs, files plain names ending in .safetensors */
struct llama_index;
int  llama_index_parse(struct llama_index **out, const char *json, size_t len,
                       const char *where);
size_t llama_index_count(const struct llama_index *ix);
const char *llama_index_file(const struct llama_index *ix, const char *tensor);
void llama_index_free(struct llama_index *ix);
/* Write DIR/config.json and DIR/model.safetensors (dtype ST_F32, ST_F16
 * or ST_BF16); with shards > 1 the tensors go round-robin in table order
 * into model-0000i-of-0000n.safetensors with an index file. */
int  llama_model_save(const struct llama_model *m, const char *dir, int dtype, size_t shards);

/* random init as HF's LlamaPreTrainedModel._init_weights: every linear and
 * the embedding N(0, initializer_range), biases 0, RMSNorm weights 1 */
void llama_model_init_random(struct llama_model *m, uint64_t seed);
/* llama_model_init for a preset, randomly initialised */
int  llama_model_preset(struct llama_model *m, const char *name, uint64_t seed);
/* a preset name or a model directory */
int  llama_model_open(struct llama_model *m, const char *name_or_dir, uint64_t seed);

/* gradients for every weight: one block of the same layout */
struct llama_grads {
    float *buf;
    float *embed, *norm, *lm_head;      /* lm_head == embed when tied        */
    struct llama_layer_w *layer;
};
void llama_grads_init(struct llama_grads *g, const struct llama_model *m);
void llama_grads_free(struct llama_grads *g);
void llama_grads_zero(struct llama_grads *g, const struct llama_model *m);

/* ------------------------------------------------------------------------ */
/* one decoder layer (llama_layer.c)                                         */

/* what a layer's backward needs, kept per layer (views into one buffer) */
struct llama_layer_acts {
    float *rstd1;               /* (N)                                      */
    float *n1;                  /* (N,C)      input_layernorm(x)            */
    float *q;                   /* (N,NH*hs)  after rope                    */
    float *k, *v;               /* (N,KVH*hs) k after rope                  */
    float *att;                 /* (B,NH,T,T)                               */
    float *atty;                /* (N,NH*hs)  heads concatenated            */
    float *h;                   /* (N,C)      x + o_proj(atty)              */
    float *rstd2;               /* (N)                                      */
    float *n2;                  /* (N,C)      post_attention_layernorm(h)   */
    float *gate, *up;           /* (N,F)                                    */
    float *act;                 /* (N,F)      silu(gate) * up               */
};
struct llama_layer_grad_acts {
    float *dh, *dn2, *dn1;      /* (N,C)                                    */
    float *dgate, *dup, *dact;  /* (N,F)                                    */
    float *datty, *dq;          /* (N,NH*hs)                                */
    float *dk, *dv;             /* (N,KVH*hs)                               */
    float *att_scratch;         /* (B,NH,T,T)                               */
};
size_t llama_layer_acts_size(const struct llama_config *c, size_t B, size_t T);
void   llama_layer_acts_point(struct llama_layer_acts *a, float *buf,
                              const struct llama_config *c, size_t B, size_t T);
size_t llama_layer_grad_acts_size(const struct llama_config *c, size_t B, size_t T);
void   llama_layer_grad_acts_point(struct llama_layer_grad_acts *g, float *buf,
                                   const struct llama_config *c, size_t B, size_t T);

/* a layer's adapters: one struct adapted_lin per linear (zeroed: plain) */
struct llama_layer_adapters {
    struct adapted_lin lin[LLAMA_NUM_LINEARS];
};

/* out (B,T,C) = layer(inp (B,T,C)); tmp (B,T,C) scratch; cos, sin (T,hs/2)
 * the rotary tables of positions 0..T-1. ad may be NULL. */
void llama_layer_forward(float *out, struct llama_layer_acts *a, float *tmp, const float *inp,
                         const struct llama_layer_w *p, const struct llama_layer_adapters *ad,
                         const struct llama_config *c, const float *cos_t, const float *sin_t,
                         size_t B, size_t T);
/* dinp (may be NULL) += ...; every non-NULL tensor of g +=; ga overwritten */
void llama_layer_backward(float *dinp, const struct llama_layer_w *g,
                          struct llama_layer_grad_acts *ga, const float *dout,
                          const struct llama_layer_acts *a, const float *inp,
                          const struct llama_layer_w *p, const struct llama_layer_adapters *ad,
                          const struct llama_config *c, const float *cos_t,
                          const float *sin_t, size_t B, size_t T);

/* ------------------------------------------------------------------------ */
/* adapters (llama_adapters.c)                                               */

struct llama_site {
    size_t layer;
    enum llama_linear lin;
    size_t offset;              /* of its parameters in the trainable block */
};

struct llama_adapters {
    struct adapter_method method;
    size_t n_sites;
    struct adapter *adapters;   /* (n_sites)                                */
    struct llama_site *sites;   /* by layer, by linear                      */
    struct llama_layer_adapters *layer;   /* (L)                            */
    size_t n_params;
    float *params, *grads;      /* the trainable block and its gradients    */
    float *gw;                  /* merged-path scratch (largest layer)      */
};

/* Parse a target list: modules (bit i = enum llama_linear i) of layers
 * lo..hi. Items separated by ';': [LAYERS:]MODULES, LAYERS * | N | A-B,
 * MODULES a comma list of q_proj, k_proj, v_proj, o_proj, gate_proj,
 * up_proj, down_proj, attn (q,k,v,o), mlp (gate,up,down), all; e.g.
 * "q_proj,k_proj,v_proj,up_proj,down_proj" (the paper's). */
struct llama_target {
    size_t lo, hi;
    unsigned modules;
};
int  llama_targets_parse(const char *spec, struct llama_target *out, size_t max, size_t *n);
/* attach cfg's method to every targeted linear, for forwards of at most
 * max_rows rows (B*T); RL_ERR_ARG when a target matches nothing or the
 * method refuses a layer */
int  llama_adapters_init(struct llama_adapters *la, const struct llama_model *m,
                         const struct adapter_cfg *cfg, const struct llama_target *t,
                         size_t n_targets, size_t max_rows);
void llama_adapters_free(struct llama_adapters *la);
void llama_adapters_zero_grad(struct llama_adapters *la);
void llama_adapters_set_training(struct llama_adapters *la, bool training);
/* "model.layers.3.self_attn.q_proj" */
const char *llama_site_name(const struct llama_site *s, char *buf, size_t size);
/* Merge every site into its weight (W <- W + dW, the merged path) or take
 * it out again; m must be the model the adapters were made for. */
void llama_adapters_merge(struct llama_adapters *la, struct llama_model *m);
void llama_adapters_unmerge(struct llama_adapters *la, struct llama_model *m);

/* ------------------------------------------------------------------------ */
/* the model: forward, head, backward (llama.c)                              */

#define LLAMA_HEAD_ROWS 64      /* logits rows computed at once             */

struct llama_run {
    size_t max_B, max_T, B, T;
    bool train;                 /* the backward can run                     */
    bool recompute;             /* train keeping only the layers' inputs    */
    struct rng *rngs;           /* (L, 7) adapters' streams, recompute only */
    size_t n_floats;
    float *buf;
    float *cos_t, *sin_t;       /* (max_T, hs/2)                            */
    int32_t *ids;               /* (B,T) the ids of the last forward        */
    float *res;                 /* (L+1 or 2, B,T,C) the residual stream    */
    struct llama_layer_acts *acts;  /* (L or 1)                             */
    float *tmp;                 /* (B,T,C) scratch                          */
    float *xf, *rstd_f;         /* (B,T,C), (B,T) the final norm            */
    float *logits;              /* (LLAMA_HEAD_ROWS, V)                     */
    /* backward (train only) */
    struct llama_layer_grad_acts gacts;
    float *dres[2];             /* (B,T,C)                                  */
    float *dxf;                 /* (B,T,C)                                  */
};

void llama_run_init(struct llama_run *r, const struct llama_model *m, size_t max_B,
                    size_t max_T, bool train);
/* A training run that keeps of the layers' activations only their inputs
 * (the residual stream, C floats per token per layer) and one layer's
 * worth: the backward runs each layer's forward again, from its kept input
 * and with its adapters' random streams restored (the same dropout masks),
 * just before that layer's backward. The same kernels on the same inputs
 * give the same bits, so every gradient equals the storing run's exactly,
 * for one more forward of all but the top layer. (Qwen2-0.5B at 16 x 256
 * tokens: about 9 GB of kept activations become about 0.7 GB.) */
void llama_run_init_recompute(struct llama_run *r, const struct llama_model *m, size_t max_B,
                              size_t max_T);
void llama_run_free(struct llama_run *r);

/* the decoder on ids (B,T) up to r->xf (the final norm's output).
 * RL_ERR_ARG for an id outside [0, V), B or T beyond the run's capacity
 * or T beyond max_position_embeddings. */
int  llama_forward(struct llama_run *r, const struct llama_model *m,
                   const struct llama_adapters *la, const int32_t *ids, size_t B, size_t T);
/* logits (n, V) of rows row0 .. row0+n of r->xf (n <= LLAMA_HEAD_ROWS) */
void llama_logits(const struct llama_run *r, const struct llama_model *m, size_t row0,
                  size_t n, float *logits);
/* For every row i of the last forward (B*T of them) with targets[i] >= 0:
 * logprob[i] = log softmax(logits_i)[targets[i]] (others 0). The mean
 * negative of them is the language-model loss. */
void llama_token_logprobs(struct llama_run *r, const struct llama_model *m,
                          const int32_t *targets, float *logprob);
/* The mean cross-entropy over rows with targets >= 0 (HF's labels with
 * -100 ignored, shifted by the caller), and, when backward, r->dxf = its
 * gradient (and g->lm_head += when g is given). Returns the loss; 0 and no
 * gradient when no row counts. */
double llama_lm_loss(struct llama_run *r, const struct llama_model *m, const int32_t *targets,
                     bool backward, struct llama_grads *g);
/* the backward from r->dxf through the final norm and every layer, into
 * the adapters' gradients (la) and every weight's (g, may be NULL); layers
 * below the lowest with something to train are skipped */
void llama_backward(struct llama_run *r, const struct llama_model *m,
                    const struct llama_adapters *la, struct llama_grads *g);

/* ------------------------------------------------------------------------ */
/* greedy generation with a KV cache (llama_generate.c)                     */

/* The keys and values of every position seen so far, per layer and per
 * sequence, for n_seq sequences of up to cap positions. A step runs rows
 * of one or more sequences: the rows of a sequence are consecutive in the
 * step and continue it at its next position (a prompt: one sequence's
 * tokens; a decoding step: one row per sequence). The linears run on all
 * the step's rows at once (one read of each weight for the whole batch),
 * attention per sequence against its own cache. */
struct llama_cache {
    size_t n_seq, cap;          /* sequences, positions each                 */
    size_t max_rows;            /* rows a step may run                       */
    size_t *pos;                /* (n_seq) positions filled                  */
    size_t n_logits;            /* rows of logits of the last step           */
    size_t *logit_seq;          /* (max_rows) their sequences                */
    float *buf;
    float *k, *v;               /* (L, n_seq, cap, KVH*hs)                   */
    float *x, *y, *tmp;         /* (max_rows, C)                             */
    struct llama_layer_acts acts;   /* for max_rows rows                     */
    float *att;                 /* (NH, max_rows, cap)                       */
    float *cos_t, *sin_t;       /* (max_rows, hs/2): each row's position     */
    float *logits;              /* (max_rows, V): after each sequence's last
                                   row of the last step, in step order       */
};
void llama_cache_init(struct llama_cache *kc, const struct llama_model *m, size_t n_seq,
                      size_t cap, size_t max_rows);
void llama_cache_free(struct llama_cache *kc);
/* run ids (n) of sequences seq (n; NULL: all sequence 0), appending their
 * keys and values; kc->logits row k = the logits after the last row of the
 * k-th sequence run in the step (kc->n_logits, kc->logit_seq). RL_ERR_ARG
 * past a sequence's cap, max_position_embeddings or max_rows, for an id
 * outside the vocabulary, or when a sequence's rows are not consecutive. */
int  llama_cache_step(struct llama_cache *kc, const struct llama_model *m,
                      const struct llama_adapters *la, const int32_t *ids, const size_t *seq,
                      size_t n);
/* the first index of the largest of x[0..n) (torch.argmax's tie rule) */
int32_t llama_argmax(const float *x, size_t n);
/* Greedy decoding of one sequence: the prompt (n_prompt ids) then up to
 * max_new argmax tokens (the first largest logit, as torch.argmax),
 * stopping after an eos id of the config. Writes the new ids to out and
 * returns how many (or a negative status). */
long llama_generate_greedy(const struct llama_model *m, const struct llama_adapters *la,
                           const int32_t *prompt, size_t n_prompt, size_t max_new,
                           int32_t *out);
/* The same for n sequences at once: prompts[i] (lens[i] ids) each prefilled
 * on its own, then every unfinished sequence's next token in one step of
 * up to n rows. out (n, max_new) row-major; n_out[i] the tokens of
 * sequence i. Each sequence's tokens equal llama_generate_greedy's on its
 * prompt (up to round-off in the logits: the rows share the GEMMs). */
int  llama_generate_greedy_batch(const struct llama_model *m, const struct llama_adapters *la,
                                 const int32_t *const *prompts, const size_t *lens, size_t n,
                                 size_t max_new, int32_t *out, size_t *n_out);

#endif /* RANDLORA_MODELS_LLAMA_H */
