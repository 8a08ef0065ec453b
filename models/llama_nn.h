/*
 * llama_nn.h: the kernels a Llama-family decoder adds to nn.h, forward and
 * hand-written backward, with plain-loop references where a GEMM is used.
 * nn.h's conventions hold: outputs first, forward overwrites, backward
 * ACCUMULATES (+=), a NULL gradient is not computed, kernels never allocate,
 * weights (out, in) row-major, sizes size_t.
 *
 * Letters: N rows (B*T), C width, F MLP width, NH query heads, KVH key/value
 * heads (NH % KVH == 0: grouped-query attention, query head h reads key/value
 * head h / (NH / KVH)), hs head size (head_dim; NH*hs need not equal C).
 *
 * Files: llama_nn.c (RMSNorm, rotary embeddings, SwiGLU), llama_attention.c
 * (grouped-query causal attention).
 */
#ifndef RANDLORA_MODELS_LLAMA_NN_H
#define RANDLORA_MODELS_LLAMA_NN_H

#include <stddef.h>

/* ------------------------------------------------------------------------ */
/* RMSNorm (HF LlamaRMSNorm / Qwen2RMSNorm, float32 throughout):
 *     rstd = 1 / sqrt(mean(x^2) + eps),  out = w * (x * rstd)
 * out, inp (N,C), w (C); rstd (N) saved for the backward. */
void rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w,
                     size_t N, size_t C, float eps);
/* dinp (N,C) += ..., dw (C) += sum_n dout * x * rstd; either may be NULL */
void rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp,
                      const float *w, const float *rstd, size_t N, size_t C);

/* ------------------------------------------------------------------------ */
/* rotary position embeddings, Hugging Face's rotate_half convention: each
 * head's hs values are two halves x1 = x[0:hs/2], x2 = x[hs/2:hs], and
 *     out1 = x1 cos - x2 sin,   out2 = x2 cos + x1 sin
 * with angle(t, i) = pos(t) * inv_freq[i], i < hs/2 (the same angle for
 * element i and i + hs/2). */

/* cos, sin (T, hs/2) for positions pos0 .. pos0+T-1: the angle is the
 * float product (float)pos * inv_freq[i], as HF forms it, its cosine and
 * sine rounded to float */
void rope_table(float *cos_t, float *sin_t, const float *inv_freq, size_t pos0, size_t T,
                size_t hs);
/* in place on x (B,T,H*hs): row t of every sequence rotated by row t of
 * the tables; hs even */
void rope_forward(float *x, const float *cos_t, const float *sin_t, size_t B, size_t T,
                  size_t H, size_t hs);
/* the backward of rope_forward applied in place to a gradient: the
 * rotation's transpose (the rotation by -angle) */
void rope_backward(float *dx, const float *cos_t, const float *sin_t, size_t B, size_t T,
                   size_t H, size_t hs);

/* ------------------------------------------------------------------------ */
/* SwiGLU: out (n) = silu(gate) * up, silu(g) = g / (1 + exp(-g)).
 * backward: dgate += dout * up * silu'(gate), dup += dout * silu(gate) */
void swiglu_forward(float *out, const float *gate, const float *up, size_t n);
void swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate,
                     const float *up, size_t n);

/* ------------------------------------------------------------------------ */
/* grouped-query causal attention (llama_attention.c)
 *
 * q (B,Tq,NH*hs) are the queries at positions pos0 .. pos0+Tq-1; k, v
 * (B,kv_T,KVH*hs) hold the keys and values of positions 0 .. kv_T-1 of each
 * sequence (a KV cache has kv_T >= pos0 + Tq; training has pos0 = 0 and
 * kv_T = Tq). Query i attends to keys 0 .. pos0+i, scores scaled by
 * 1/sqrt(hs). att (B,NH,Tq,Tk), Tk = pos0 + Tq, keeps the softmax
 * probabilities (masked entries exactly 0); out (B,Tq,NH*hs). */
struct gqa_dims {
    size_t B, Tq;               /* sequences, queries per sequence           */
    size_t NH, KVH, hs;         /* query heads, key/value heads, head size   */
    size_t pos0;                /* position of the first query               */
    size_t kv_T;                /* rows per sequence of k and v (>= pos0+Tq) */
};

/* the keys every query row may see: pos0 + Tq */
size_t gqa_keys(const struct gqa_dims *d);

void gqa_attention_forward(float *out, float *att, const float *q, const float *k,
                           const float *v, const struct gqa_dims *d);
/* pos0 = 0 and kv_T = Tq only. dq (B,T,NH*hs), dk, dv (B,T,KVH*hs) +=;
 * scratch (B,NH,T,T) workspace. */
void gqa_attention_backward(float *dq, float *dk, float *dv, float *scratch,
                            const float *dout, const float *att, const float *q,
                            const float *k, const float *v, const struct gqa_dims *d);
void gqa_attention_forward_naive(float *out, float *att, const float *q, const float *k,
                                 const float *v, const struct gqa_dims *d);
void gqa_attention_backward_naive(float *dq, float *dk, float *dv, const float *dout,
                                  const float *att, const float *q, const float *k,
                                  const float *v, const struct gqa_dims *d);

#endif /* RANDLORA_MODELS_LLAMA_NN_H */
