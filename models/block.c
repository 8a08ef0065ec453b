/*
 * block.c: the pre-LN encoder layer (HF CLIPEncoderLayer) as a flat
 * sequence of nn.h kernel calls; the backward is the forward reversed.
 */
#include "models/block.h"

#include <string.h>

#include "core/bf16.h"
#include "models/block_impl.h"
#include "models/nn.h"

unsigned block_acts_emulate_bf16 = 0;

static void round_bf16_in_place(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = bf16_to_f32(bf16_from_f32(x[i]));
}

/* block_acts_emulate_bf16 (block.h): the kept tensors it names rounded to
 * bf16 in place, after the forward has used them; the layer input too
 * (the caller's buffer: only the backward reads it again) */
static void emulate_bf16_storage(struct block_acts *a, const float *inp, size_t B, size_t T,
                                 const struct block_config *cfg)
{
    const unsigned m = block_acts_emulate_bf16;
    const size_t N = block_mul(B, T), NC = block_mul(N, cfg->C), NF = block_mul(N, cfg->F);

    if (m & BLOCK_EMU_LN_STATS) {
        round_bf16_in_place(a->ln1_mean, N);
        round_bf16_in_place(a->ln1_rstd, N);
        round_bf16_in_place(a->ln2_mean, N);
        round_bf16_in_place(a->ln2_rstd, N);
    }
    if (m & BLOCK_EMU_QKV) {
        round_bf16_in_place(a->q, NC);
        round_bf16_in_place(a->k, NC);
        round_bf16_in_place(a->v, NC);
    }
    if (m & BLOCK_EMU_ATT)
        round_bf16_in_place(a->att, block_mul(block_mul(B, cfg->NH), block_mul(T, T)));
    if ((m & BLOCK_EMU_ATTY) && a->atty)
        round_bf16_in_place(a->atty, NC);
    if (m & BLOCK_EMU_H)
        round_bf16_in_place(a->h, NC);
    if ((m & BLOCK_EMU_FCH) && a->fch)
        round_bf16_in_place(a->fch, NF);
    if (m & BLOCK_EMU_INPUT)
        round_bf16_in_place((float *)inp, NC);
}

const char *const block_param_names[BLOCK_NUM_PARAMS] = {
    "layer_norm1.weight",         "layer_norm1.bias",
    "self_attn.q_proj.weight",    "self_attn.k_proj.weight",
    "self_attn.v_proj.weight",    "self_attn.q_proj.bias",
    "self_attn.k_proj.bias",      "self_attn.v_proj.bias",
    "self_attn.out_proj.weight",  "self_attn.out_proj.bias",
    "layer_norm2.weight",         "layer_norm2.bias",
    "mlp.fc1.weight",             "mlp.fc1.bias",
    "mlp.fc2.weight",             "mlp.fc2.bias",
};

const char *const block_linear_names[BLOCK_NUM_LINEARS] = {
    "q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2", "in_proj",
};

const char *const block_linear_paths[BLOCK_NUM_LINEARS] = {
    "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj",
    "mlp.fc1", "mlp.fc2", "self_attn.in_proj",
};

void block_linear_shape(enum block_linear i, size_t C, size_t F, size_t *d_out, size_t *d_in)
{
    *d_out = i == BLOCK_LIN_FC1 ? F : i == BLOCK_LIN_IN_PROJ ? block_mul(3, C) : C;
    *d_in = i == BLOCK_LIN_FC2 ? F : C;
}

const float *block_linear_weight(const struct block_params *p, enum block_linear i)
{
    const float *w[BLOCK_NUM_LINEARS] = { p->q_w, p->k_w, p->v_w, p->o_w, p->fc1_w, p->fc2_w,
                                          p->q_w };

    return w[i];
}

/* ------------------------------------------------------------------------ */
/* parameters                                                                */

size_t block_param_sizes(size_t sizes[BLOCK_NUM_PARAMS], size_t C, size_t F)
{
    const size_t CC = block_mul(C, C), FC = block_mul(F, C);
    const size_t s[BLOCK_NUM_PARAMS] = {
        C, C,           /* layer_norm1 */
        CC, CC, CC,     /* q, k, v_proj weights: one (3C, C) matrix */
        C, C, C,        /* q, k, v_proj biases: one (3C)             */
        CC, C,          /* out_proj    */
        C, C,           /* layer_norm2 */
        FC, F,          /* fc1         */
        FC, C,          /* fc2         */
    };

    memcpy(sizes, s, sizeof(s));
    return block_sum(s, BLOCK_NUM_PARAMS);
}

void block_params_point(struct block_params *p, const float *buf, size_t C, size_t F)
{
    size_t s[BLOCK_NUM_PARAMS];
    const float **ptrs[BLOCK_NUM_PARAMS] = {
        &p->ln1_w, &p->ln1_b, &p->q_w, &p->k_w, &p->v_w, &p->q_b, &p->k_b, &p->v_b,
        &p->o_w, &p->o_b, &p->ln2_w, &p->ln2_b, &p->fc1_w, &p->fc1_b, &p->fc2_w, &p->fc2_b,
    };

    block_param_sizes(s, C, F);
    for (size_t i = 0; i < BLOCK_NUM_PARAMS; i++) {
        *ptrs[i] = buf;
        buf += s[i];
    }
    p->ls1 = p->ls2 = NULL;
}

void block_grads_point(struct block_grads *g, float *buf, size_t C, size_t F)
{
    size_t s[BLOCK_NUM_PARAMS];
    float **ptrs[BLOCK_NUM_PARAMS] = {
        &g->ln1_w, &g->ln1_b, &g->q_w, &g->k_w, &g->v_w, &g->q_b, &g->k_b, &g->v_b,
        &g->o_w, &g->o_b, &g->ln2_w, &g->ln2_b, &g->fc1_w, &g->fc1_b, &g->fc2_w, &g->fc2_b,
    };

    block_param_sizes(s, C, F);
    block_point_views(ptrs, s, BLOCK_NUM_PARAMS, buf);
}

/* ------------------------------------------------------------------------ */
/* activations and their gradients: one buffer each                          */

#define BLOCK_NUM_ACTS 11

/* floats that n bf16 values take, rounded to 64 bytes */
static size_t bf16_floats(size_t n)
{
    size_t r;

    RL_ASSERT(size_add_ok(n, 31, &r));
    return r / 32 * 16;
}

/* sizes in floats of the kept activations, in struct block_acts order;
 * under BLOCK_ACTS_BF16 the slots of q, k, v, atty and fch hold their bf16
 * copies */
static void acts_sizes(size_t s[BLOCK_NUM_ACTS],
                       size_t B, size_t T, size_t C, size_t NH, size_t F,
                       enum block_acts_store st)
{
    const size_t N = block_mul(B, T), NC = block_mul(N, C), NF = block_mul(N, F);
    const size_t NHTT = block_mul(block_mul(B, NH), block_mul(T, T));
    const bool h = st == BLOCK_ACTS_BF16;
    const size_t v[BLOCK_NUM_ACTS] = {
        N, N,               /* ln1_mean, ln1_rstd      */
        h ? bf16_floats(NC) : NC,   /* q (q16)         */
        h ? bf16_floats(NC) : NC,   /* k (k16)         */
        h ? bf16_floats(NC) : NC,   /* v (v16)         */
        NHTT,               /* att                     */
        h ? bf16_floats(NC) : NC,   /* atty (atty16)   */
        NC,                 /* h                       */
        N, N,               /* ln2_mean, ln2_rstd      */
        h ? bf16_floats(NF) : NF,   /* fch (fch16)     */
    };

    memcpy(s, v, sizeof(v));
}

size_t block_acts_size_as(size_t B, size_t T, size_t C, size_t NH, size_t F,
                          enum block_acts_store st)
{
    size_t s[BLOCK_NUM_ACTS];

    acts_sizes(s, B, T, C, NH, F, st);
    return block_sum(s, BLOCK_NUM_ACTS);
}

size_t block_acts_size(size_t B, size_t T, size_t C, size_t NH, size_t F)
{
    return block_acts_size_as(B, T, C, NH, F, BLOCK_ACTS_FP32);
}

/* the scratch: one (B,T,C) for ln1 / attproj / ln2 / fcproj in turn, one
 * (B,T,max(F,3C)) for fch_act or a packed adapter's qkv (and under bf16
 * storage the fp32 atty or fch), two (B,T) for recomputed statistics, and
 * under bf16 storage three (B,T,C) for the fp32 q, k, v */
size_t block_acts_scratch_size_as(size_t B, size_t T, size_t C, size_t F,
                                  enum block_acts_store st)
{
    const size_t N = block_mul(B, T), C3 = block_mul(3, C);
    const size_t s[5] = { block_mul(N, C), block_mul(N, F > C3 ? F : C3), N, N,
                          st == BLOCK_ACTS_BF16 ? block_mul(N, C3) : 0 };

    return block_sum(s, 5);
}

size_t block_acts_scratch_size(size_t B, size_t T, size_t C, size_t F)
{
    return block_acts_scratch_size_as(B, T, C, F, BLOCK_ACTS_FP32);
}

void block_acts_point_as(struct block_acts *a, float *buf, float *scratch,
                         size_t B, size_t T, size_t C, size_t NH, size_t F,
                         enum block_acts_store st)
{
    const size_t N = block_mul(B, T);
    size_t s[BLOCK_NUM_ACTS];
    float **ptrs[BLOCK_NUM_ACTS] = {
        &a->ln1_mean, &a->ln1_rstd, &a->q, &a->k, &a->v, &a->att,
        &a->atty, &a->h, &a->ln2_mean, &a->ln2_rstd, &a->fch,
    };

    acts_sizes(s, B, T, C, NH, F, st);
    block_point_views(ptrs, s, BLOCK_NUM_ACTS, buf);
    a->q16 = a->k16 = a->v16 = a->atty16 = a->fch16 = NULL;
    a->ln1 = a->attproj = a->ln2 = a->fcproj = scratch;
    a->fch_act = a->qkv = scratch + block_mul(N, C);
    a->stat_mean = a->fch_act + block_mul(N, F > 3 * C ? F : block_mul(3, C));
    a->stat_rstd = a->stat_mean + N;
    if (st == BLOCK_ACTS_BF16) {
        a->q16 = (uint16_t *)a->q;
        a->k16 = (uint16_t *)a->k;
        a->v16 = (uint16_t *)a->v;
        a->atty16 = (uint16_t *)a->atty;
        a->fch16 = (uint16_t *)a->fch;
        a->q = a->stat_rstd + N;
        a->k = a->q + block_mul(N, C);
        a->v = a->k + block_mul(N, C);
        a->atty = a->fch = NULL;
    }
}

void block_acts_point(struct block_acts *a, float *buf, float *scratch,
                      size_t B, size_t T, size_t C, size_t NH, size_t F)
{
    block_acts_point_as(a, buf, scratch, B, T, C, NH, F, BLOCK_ACTS_FP32);
}

#define BLOCK_NUM_GRAD_ACTS 10

static void grad_acts_sizes(size_t s[BLOCK_NUM_GRAD_ACTS],
                            size_t B, size_t T, size_t C, size_t NH, size_t F)
{
    const size_t N = block_mul(B, T), NC = block_mul(N, C), NF = block_mul(N, F);
    const size_t NHTT = block_mul(block_mul(B, NH), block_mul(T, T));
    const size_t v[BLOCK_NUM_GRAD_ACTS] = {
        NC, NC,             /* dh, dln2            */
        NF, NF,             /* dfch, dfch_act      */
        NC,                 /* datty               */
        NC, NC, NC,         /* dq, dk, dv          */
        NHTT,               /* att_scratch         */
        NC,                 /* dln1                */
    };

    memcpy(s, v, sizeof(v));
}

size_t block_grad_acts_size(size_t B, size_t T, size_t C, size_t NH, size_t F)
{
    size_t s[BLOCK_NUM_GRAD_ACTS];

    grad_acts_sizes(s, B, T, C, NH, F);
    return block_sum(s, BLOCK_NUM_GRAD_ACTS);
}

void block_grad_acts_point(struct block_grad_acts *g, float *buf,
                           size_t B, size_t T, size_t C, size_t NH, size_t F)
{
    size_t s[BLOCK_NUM_GRAD_ACTS];
    float **ptrs[BLOCK_NUM_GRAD_ACTS] = {
        &g->dh, &g->dln2, &g->dfch, &g->dfch_act, &g->datty,
        &g->dq, &g->dk, &g->dv, &g->att_scratch, &g->dln1,
    };

    grad_acts_sizes(s, B, T, C, NH, F);
    block_point_views(ptrs, s, BLOCK_NUM_GRAD_ACTS, buf);
}

/* ------------------------------------------------------------------------ */
/* forward                                                                   */

/* LayerScale: out (N,C) = inp * ls per channel (out may be inp); also its
 * input gradient, ls being frozen */
static void layer_scale(float *out, const float *inp, const float *ls, size_t N, size_t C)
{
    for (size_t n = 0; n < N; n++)
        for (size_t c = 0; c < C; c++)
            out[n * C + c] = inp[n * C + c] * ls[c];
}

void block_forward(float *out, struct block_acts *a, const float *inp,
                   const struct block_params *p, const struct block_config *cfg,
                   size_t B, size_t T)
{
    block_forward_adapted(out, a, inp, p, NULL, cfg, B, T);
}

void block_backward(float *dinp, struct block_grads *g, struct block_grad_acts *ga,
                    const float *dout, const struct block_acts *a, const float *inp,
                    const struct block_params *p, const struct block_config *cfg,
                    size_t B, size_t T)
{
    block_backward_adapted(dinp, g, ga, dout, a, inp, p, NULL, cfg, B, T);
}

void block_forward_adapted(float *out, struct block_acts *a, const float *inp,
                           const struct block_params *p, const struct block_adapters *ad,
                           const struct block_config *cfg, size_t B, size_t T)
{
    const size_t C = cfg->C, NH = cfg->NH, F = cfg->F;
    const size_t N = block_mul(B, T);

    RL_ASSERT(NH > 0 && C % NH == 0);

    /* attention half: h = x + out_proj(MHA(ln1(x))) */
    layernorm_forward(a->ln1, a->ln1_mean, a->ln1_rstd, inp, p->ln1_w, p->ln1_b, N, C, cfg->eps);
    adapted_qkv_forward(a->q, a->k, a->v, a->ln1, a->ln1, NULL, 0, N, N, p, ad, C, a->qkv);
    /* atty kept in bf16: its fp32 values in the scratch (qkv is done) while
     * out_proj reads them, its bf16 product reading the kept copy */
    float *atty = a->atty16 ? a->fch_act : a->atty;
    attention_forward(atty, a->att, a->q, a->k, a->v, B, T, C, NH, cfg->causal);
    if (a->q16) {                   /* q, k, v kept in bf16 from here */
        bf16_from_f32_array(a->q16, a->q, block_mul(N, C));
        bf16_from_f32_array(a->k16, a->k, block_mul(N, C));
        bf16_from_f32_array(a->v16, a->v, block_mul(N, C));
    }
    if (a->atty16)
        bf16_from_f32_array(a->atty16, atty, block_mul(N, C));
    adapted_linear_forward_a16(a->attproj, atty, a->atty16, p->o_w, p->o_b, ad, BLOCK_LIN_OUT,
                               N, C, C);
    if (p->ls1)
        layer_scale(a->attproj, a->attproj, p->ls1, N, C);
    residual_forward(a->h, inp, a->attproj, block_mul(N, C));

    /* MLP half: out = h + fc2(act(fc1(ln2(h)))) */
    layernorm_forward(a->ln2, a->ln2_mean, a->ln2_rstd, a->h, p->ln2_w, p->ln2_b, N, C, cfg->eps);
    /* fch kept in bf16: fc1's fp32 output in the scratch, the activation
     * applied there in place (elementwise: the same bits) */
    float *fch = a->fch16 ? a->fch_act : a->fch;
    adapted_linear_forward(fch, a->ln2, p->fc1_w, p->fc1_b, ad, BLOCK_LIN_FC1, N, C, F);
    if (a->fch16)
        bf16_from_f32_array(a->fch16, fch, block_mul(N, F));
    block_act_forward(a->fch_act, fch, block_mul(N, F), cfg->act);
    adapted_linear_forward(a->fcproj, a->fch_act, p->fc2_w, p->fc2_b,
                           ad, BLOCK_LIN_FC2, N, F, C);
    if (p->ls2)
        layer_scale(a->fcproj, a->fcproj, p->ls2, N, C);
    residual_forward(out, a->h, a->fcproj, block_mul(N, C));
    if (block_acts_emulate_bf16)
        emulate_bf16_storage(a, inp, B, T, cfg);
}

/* ------------------------------------------------------------------------ */
/* backward: the forward reversed                                            */

void block_backward_adapted(float *dinp, struct block_grads *g, struct block_grad_acts *ga,
                            const float *dout, const struct block_acts *a, const float *inp,
                            const struct block_params *p, const struct block_adapters *ad,
                            const struct block_config *cfg, size_t B, size_t T)
{
    const size_t C = cfg->C, NH = cfg->NH, F = cfg->F;
    const size_t N = block_mul(B, T), NC = block_mul(N, C), NF = block_mul(N, F);
    /* layer_norm1's input gradient is wanted for dinp or its own params */
    const bool need_dln1 = dinp || g->ln1_w || g->ln1_b;

    RL_ASSERT(NH > 0 && C % NH == 0);

    /* the kernels accumulate: start every workspace gradient at zero,
     * except dh, which starts as dout (below) */
    memset(ga->dln2, 0, NC * sizeof(float));
    memset(ga->dfch, 0, NF * sizeof(float));
    memset(ga->dfch_act, 0, NF * sizeof(float));
    memset(ga->datty, 0, NC * sizeof(float));
    memset(ga->dq, 0, NC * sizeof(float));
    memset(ga->dk, 0, NC * sizeof(float));
    memset(ga->dv, 0, NC * sizeof(float));
    memset(ga->dln1, 0, NC * sizeof(float));

    /* out = h + fcproj: dh = dout, and dfcproj is dout itself */
    memcpy(ga->dh, dout, NC * sizeof(float));
    /* fch_act = act(fch) and ln2 = layer_norm2(h) again (block.h): the
     * same kernels on the same inputs give the forward's bits */
    const float *fch = a->fch;
    if (a->fch16) {                 /* act(bf16(fch)), as the backward sees fch */
        bf16_to_f32_array(a->fch_act, a->fch16, NF);
        fch = a->fch_act;
    }
    block_act_forward(a->fch_act, fch, NF, cfg->act);
    layernorm_forward(a->ln2, a->stat_mean, a->stat_rstd, a->h, p->ln2_w, p->ln2_b, N, C,
                      cfg->eps);
    /* fcproj = fch_act @ fc2_w^T + fc2_b (times ls2: dfcproj = dout * ls2,
     * in dk's workspace until the attention backward needs it) */
    const float *dfcproj = dout;
    if (p->ls2) {
        layer_scale(ga->dk, dout, p->ls2, N, C);
        dfcproj = ga->dk;
    }
    adapted_linear_backward(ga->dfch_act, g->fc2_w, g->fc2_b, dfcproj, a->fch_act, p->fc2_w,
                            ad, BLOCK_LIN_FC2, N, F, C);
    /* fch_act = act(fch); fch from its bf16 copy into fch_act's floats,
     * which fc2's backward is done with */
    if (a->fch16)
        bf16_to_f32_array(a->fch_act, a->fch16, NF);
    block_act_backward(ga->dfch, ga->dfch_act, fch, NF, cfg->act);
    /* fch = ln2 @ fc1_w^T + fc1_b */
    adapted_linear_backward(ga->dln2, g->fc1_w, g->fc1_b, ga->dfch, a->ln2, p->fc1_w,
                            ad, BLOCK_LIN_FC1, N, C, F);
    /* ln2 = layer_norm2(h): dh += ... */
    layernorm_backward(ga->dh, g->ln2_w, g->ln2_b, ga->dln2, a->h, p->ln2_w,
                       a->ln2_mean, a->ln2_rstd, N, C);

    /* h = x + attproj: dinp += dh, and dattproj is dh itself */
    if (dinp)
        for (size_t i = 0; i < NC; i++)
            dinp[i] += ga->dh[i];
    /* attproj = atty @ o_w^T + o_b (times ls1, as ls2 above) */
    const float *dattproj = ga->dh;
    if (p->ls1) {
        layer_scale(ga->dk, ga->dh, p->ls1, N, C);
        dattproj = ga->dk;
    }
    const float *atty = a->atty;
    if (a->atty16) {                /* into fch_act's floats, free again */
        bf16_to_f32_array(a->fch_act, a->atty16, NC);
        atty = a->fch_act;
    }
    adapted_linear_backward(ga->datty, g->o_w, g->o_b, dattproj, atty, p->o_w,
                            ad, BLOCK_LIN_OUT, N, C, C);
    if (p->ls1 || p->ls2)
        memset(ga->dk, 0, NC * sizeof(float));
    /* atty = MHA(q, k, v); q, k, v from their bf16 copies */
    if (a->q16) {
        bf16_to_f32_array(a->q, a->q16, NC);
        bf16_to_f32_array(a->k, a->k16, NC);
        bf16_to_f32_array(a->v, a->v16, NC);
    }
    attention_backward(ga->dq, ga->dk, ga->dv, ga->att_scratch, ga->datty, a->att,
                       a->q, a->k, a->v, B, T, C, NH, cfg->causal);
    /* q, k, v = ln1 @ W^T + b: the three input gradients add up in dln1
     * (ln1 recomputed from the layer input into the scratch ln2 held) */
    float *dln1 = need_dln1 ? ga->dln1 : NULL;
    layernorm_forward(a->ln1, a->stat_mean, a->stat_rstd, inp, p->ln1_w, p->ln1_b, N, C,
                      cfg->eps);
    adapted_qkv_backward(dln1, dln1, g, ga->dq, ga->dk, ga->dv, a->ln1, a->ln1, NULL, 0, N, N,
                         p, ad, C, a->qkv);
    /* ln1 = layer_norm1(x): dinp += ... */
    if (need_dln1)
        layernorm_backward(dinp, g->ln1_w, g->ln1_b, ga->dln1, inp, p->ln1_w,
                           a->ln1_mean, a->ln1_rstd, N, C);
}
