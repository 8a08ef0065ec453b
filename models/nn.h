/*
 * nn.h: the layer kernels of a CLIP-style pre-LN transformer, forward and
 * backward, written by hand on OpenBLAS.
 *
 * Conventions (llm.c style; see DESIGN.md "Numerics and tests"):
 *   - outputs first, then inputs, then parameters, then sizes;
 *   - forward overwrites its outputs; backward ACCUMULATES (+=) into every
 *     gradient it is given, so the caller zeroes gradients once per step;
 *   - a NULL gradient pointer means "frozen / not needed": that gradient is
 *     not computed at all (a frozen weight costs no GEMM and no memory);
 *   - weights are PyTorch-layout, (out, in) row-major; activations are
 *     row-major with the feature dimension last;
 *   - dimension letters: B batch, T tokens, C channels (width), OC output
 *     channels, N rows (= B*T where the kernel does not care), NH heads,
 *     hs = C/NH head size, P patches, D embedding width, M classes/columns;
 *   - every size and offset is size_t; kernels never allocate.
 *
 * Files: nn.c (linear, layernorm, activations, residual, embeddings, patch
 * embedding, pooling), attention.c (multi-head self-attention), loss.c (L2
 * normalisation, scaled-cosine logits, cross-entropy, contrastive loss).
 * The *_naive variants are the plain-loop references the BLAS paths are
 * tested against; they are not used in training.
 */
#ifndef RANDLORA_MODELS_NN_H
#define RANDLORA_MODELS_NN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------------------ */
/* linear: out (N,OC) = inp (N,C) @ w^T + b; w (OC,C), b (OC) or NULL         */

void linear_forward(float *out, const float *inp, const float *w, const float *b,
                    size_t N, size_t C, size_t OC);
/* dinp (N,C) += dout @ w; dw (OC,C) += dout^T @ inp; db (OC) += colsum(dout) */
void linear_backward(float *dinp, float *dw, float *db,
                     const float *dout, const float *inp, const float *w,
                     size_t N, size_t C, size_t OC);
void linear_forward_naive(float *out, const float *inp, const float *w, const float *b,
                          size_t N, size_t C, size_t OC);
void linear_backward_naive(float *dinp, float *dw, float *db,
                           const float *dout, const float *inp, const float *w,
                           size_t N, size_t C, size_t OC);

/* ------------------------------------------------------------------------ */
/* fixed-order sums in double: sum x[i], and sum (x[i] - m)^2, over i < n,
 * in 8 interleaved partial sums added in order -- the same bits every run,
 * and vectorized (layer norm, the gradient norm) */

double nn_sum(const float *x, size_t n);
double nn_sum_sq_dev(const float *x, size_t n, double m);

/* ------------------------------------------------------------------------ */
/* layer norm over the last dim: out (N,C) = (inp - mean) * rstd * w + b,
 * biased variance, rstd = 1/sqrt(var + eps) (CLIP: eps = 1e-5).
 * mean, rstd (N) are saved for the backward. */

void layernorm_forward(float *out, float *mean, float *rstd,
                       const float *inp, const float *w, const float *b,
                       size_t N, size_t C, float eps);
void layernorm_backward(float *dinp, float *dw, float *db,
                        const float *dout, const float *inp, const float *w,
                        const float *mean, const float *rstd, size_t N, size_t C);

/* ------------------------------------------------------------------------ */
/* activations, elementwise over n values                                    */

/* quick_gelu(x) = x * sigmoid(1.702 x)  (OpenAI CLIP) */
void quick_gelu_forward(float *out, const float *inp, size_t n);
void quick_gelu_backward(float *dinp, const float *dout, const float *inp, size_t n);
/* gelu(x) = 0.5 x (1 + erf(x / sqrt 2))  (exact, PyTorch's default) */
void gelu_forward(float *out, const float *inp, size_t n);
void gelu_backward(float *dinp, const float *dout, const float *inp, size_t n);

/* residual: out = a + b; backward da += dout, db += dout */
void residual_forward(float *out, const float *a, const float *b, size_t n);
void residual_backward(float *da, float *db, const float *dout, size_t n);

/* ------------------------------------------------------------------------ */
/* multi-head self-attention on separate q, k, v (B,T,C), NH heads of
 * hs = C/NH; scores scaled by 1/sqrt(hs); causal: key j > query i masked.
 * att (B,NH,T,T) keeps the softmax probabilities for the backward
 * (masked entries are exactly 0). out (B,T,C) is the heads concatenated.
 * scratch (B,NH,T,T) is backward workspace. */

void attention_forward(float *out, float *att,
                       const float *q, const float *k, const float *v,
                       size_t B, size_t T, size_t C, size_t NH, bool causal);
void attention_backward(float *dq, float *dk, float *dv, float *scratch,
                        const float *dout, const float *att,
                        const float *q, const float *k, const float *v,
                        size_t B, size_t T, size_t C, size_t NH, bool causal);
/* The same attention for one query per sequence: q (B,C) is the query at
 * position idx[b] of sequence b (0 when idx is NULL), against all of k, v
 * (B,T,C) (keys 0..idx[b] when causal); out (B,C) equals row idx[b] of
 * attention_forward's output. att (B,NH,T), scratch (B,NH,T). */
void attention_pooled_forward(float *out, float *att, const float *q, const float *k,
                              const float *v, const size_t *idx, size_t B, size_t T, size_t C,
                              size_t NH, bool causal);
void attention_pooled_backward(float *dq, float *dk, float *dv, float *scratch,
                               const float *dout, const float *att, const float *q,
                               const float *k, const float *v, const size_t *idx,
                               size_t B, size_t T, size_t C, size_t NH, bool causal);
void attention_forward_naive(float *out, float *att,
                             const float *q, const float *k, const float *v,
                             size_t B, size_t T, size_t C, size_t NH, bool causal);
void attention_backward_naive(float *dq, float *dk, float *dv,
                              const float *dout, const float *att,
                              const float *q, const float *k, const float *v,
                              size_t B, size_t T, size_t C, size_t NH, bool causal);

/* ------------------------------------------------------------------------ */
/* embeddings                                                                */

/* token + position: out (B,T,C) = wte[ids[b,t]] + wpe[t]; wte (V,C), wpe (>=T,C).
 * ids are trusted here (the tokenizer checks them against V). */
void embedding_forward(float *out, const int32_t *ids, const float *wte, const float *wpe,
                       size_t B, size_t T, size_t C);
void embedding_backward(float *dwte, float *dwpe, const float *dout, const int32_t *ids,
                        size_t B, size_t T, size_t C);

/* patch embedding: a convolution with stride = kernel = ps and no bias,
 * done as im2col + GEMM. pixels (B,CH,H,W); patches (B,P,CH*ps*ps) is the
 * im2col buffer, each patch flattened in (c, kh, kw) order, P = (H/ps)*(W/ps)
 * in row-major grid order; w (C, CH*ps*ps) is PyTorch's (C,CH,ps,ps);
 * out (B,P,C). */
void patch_embed_forward(float *out, float *patches, const float *pixels, const float *w,
                         size_t B, size_t CH, size_t H, size_t W, size_t ps, size_t C);
/* dpixels (B,CH,H,W) += col2im(dout @ w); dw += dout^T @ patches */
void patch_embed_backward(float *dpixels, float *dw, float *dpatches_scratch,
                          const float *dout, const float *patches, const float *w,
                          size_t B, size_t CH, size_t H, size_t W, size_t ps, size_t C);

/* class token + position: out (B,P+1,C): row 0 = cls + pos[0],
 * row 1+p = patch_out[b,p] + pos[1+p]; cls (C), pos (P+1,C). */
void class_embed_forward(float *out, const float *patch_out, const float *cls, const float *pos,
                         size_t B, size_t P, size_t C);
void class_embed_backward(float *dpatch_out, float *dcls, float *dpos, const float *dout,
                          size_t B, size_t P, size_t C);

/* pooling: out (B,C) = inp[b, idx[b], :] for inp (B,T,C); idx NULL means 0
 * (the class token). EOT pooling passes the end-of-text positions. */
void pool_rows_forward(float *out, const float *inp, const size_t *idx,
                       size_t B, size_t T, size_t C);
void pool_rows_backward(float *dinp, const float *dout, const size_t *idx,
                        size_t B, size_t T, size_t C);

/* ------------------------------------------------------------------------ */
/* heads and losses (loss.c)                                                 */

/* L2 normalisation of rows: out (N,D) = inp / ||inp||; norm (N) saved. */
void l2norm_forward(float *out, float *norm, const float *inp, size_t N, size_t D);
void l2norm_backward(float *dinp, const float *dout, const float *out, const float *norm,
                     size_t N, size_t D);

/* scaled-cosine logits: logits (N,M) = scale * a (N,D) @ b (M,D)^T, a and b
 * already L2-normalised. dscale (scalar) += sum(dlogits * logits) / scale. */
void cosine_logits_forward(float *logits, const float *a, const float *b, float scale,
                           size_t N, size_t M, size_t D);
void cosine_logits_backward(float *da, float *db, float *dscale,
                            const float *dlogits, const float *a, const float *b, float scale,
                            size_t N, size_t M, size_t D);

/* softmax cross-entropy, mean over rows: returns the mean loss; probs (N,M)
 * keeps the softmax for the backward; targets in [0, M). */
float crossentropy_forward(float *probs, const float *logits, const int32_t *targets,
                           size_t N, size_t M);
/* dlogits (N,M) += dloss * (probs - onehot(targets)) / N */
void crossentropy_backward(float *dlogits, const float *probs, const int32_t *targets,
                           float dloss, size_t N, size_t M);

/* symmetric contrastive (CLIP) loss on square logits (N,N), image rows x
 * text columns, matching pairs on the diagonal:
 *   loss = (CE(logits, arange) + CE(logits^T, arange)) / 2.
 * probs_img, probs_txt (N,N) are saved softmaxes (rows of logits, rows of
 * logits^T). Returns the loss. */
float clip_loss_forward(float *probs_img, float *probs_txt, const float *logits, size_t N);
void clip_loss_backward(float *dlogits, const float *probs_img, const float *probs_txt,
                        float dloss, size_t N);

#endif /* RANDLORA_MODELS_NN_H */
