/*
 * block_impl.h: what block.c and block_pooled.c share, not for callers of
 * block.h: size arithmetic, the MLP activation and the adapted linear
 * (block_linear.c).
 */
#ifndef RANDLORA_MODELS_BLOCK_IMPL_H
#define RANDLORA_MODELS_BLOCK_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "core/alloc.h"
#include "core/status.h"
#include "models/block.h"

/* a * b and the sum of n sizes, aborting on overflow: sizes here come from
 * the model config */
static inline size_t block_mul(size_t a, size_t b)
{
    size_t r;

    RL_ASSERT(size_mul_ok(a, b, &r));
    return r;
}

static inline size_t block_sum(const size_t *s, size_t n)
{
    size_t total = 0;

    for (size_t i = 0; i < n; i++)
        RL_ASSERT(size_add_ok(total, s[i], &total));
    return total;
}

/* point *views[i] at the next sizes[i] floats of buf, i = 0 .. n-1 */
static inline void block_point_views(float **const *views, const size_t *sizes, size_t n,
                                     float *buf)
{
    for (size_t i = 0; i < n; i++) {
        *views[i] = buf;
        buf += sizes[i];
    }
}

/* the MLP activation cfg->act: out (n) = act(inp), and its backward
 * dinp (n) += dout * act'(inp) */
void block_act_forward(float *out, const float *inp, size_t n, enum block_act act);
void block_act_backward(float *dinp, const float *dout, const float *inp, size_t n,
                        enum block_act act);

/* out (N, OC) = inp (N, C) W^T + b, plus linear i's adapter branch on inp
 * when it is on the factored path (merged: w already holds W + dW) */
void adapted_linear_forward(float *out, const float *inp, const float *w, const float *b,
                            const struct block_adapters *ad, enum block_linear i,
                            size_t N, size_t C, size_t OC);

/* the same, with inp's bf16 rounding inp16 at hand (or NULL): a bf16
 * product reads it instead of rounding inp again (the same bits) */
void adapted_linear_forward_a16(float *out, const float *inp, const uint16_t *inp16,
                                const float *w, const float *b,
                                const struct block_adapters *ad, enum block_linear i,
                                size_t N, size_t C, size_t OC);

/* the backward of adapted_linear_forward: dinp (N, C) += dout (N, OC) W and
 * the weight, bias and adapter gradients, on the path linear i is on
 * (block.h, struct block_adapters); dinp, dw, db may be NULL */
void adapted_linear_backward(float *dinp, float *dw, float *db, const float *dout,
                             const float *inp, const float *w,
                             const struct block_adapters *ad, enum block_linear i,
                             size_t N, size_t C, size_t OC);

/* The attention's three input projections: q (Nq, C) from xq, k and v
 * (N, C) from x (N, C), each adapted_linear_forward, plus the branch of a
 * packed in_proj adapter (ad->lin[BLOCK_LIN_IN_PROJ], one (3C, C) linear)
 * when it is on the factored path: computed on all N rows of x into qkv
 * (N, 3C, scratch), its k and v thirds added to k and v, its q third at
 * q's rows. q's row i is x's row i (T == 0: xq is x, Nq == N) or, for the
 * pooled last layer, row i T + idx[i] (idx NULL: i T). A merged packed
 * adapter's weight is the adjacent q/k/v weights, W + dW in place. */
void adapted_qkv_forward(float *q, float *k, float *v, const float *xq, const float *x,
                         const size_t *idx, size_t T, size_t Nq, size_t N,
                         const struct block_params *p, const struct block_adapters *ad,
                         size_t C, float *qkv);

/* its backward: dxq (Nq, C) += dq W_q, dx (N, C) += dk W_k + dv W_v (either
 * may be NULL; they are the same buffer when xq is x), g's q/k/v weight and
 * bias gradients, and the adapters' gradients on the path each is on;
 * dq/dk/dv gathered into qkv (N, 3C) for a packed adapter */
void adapted_qkv_backward(float *dxq, float *dx, struct block_grads *g, const float *dq,
                          const float *dk, const float *dv, const float *xq, const float *x,
                          const size_t *idx, size_t T, size_t Nq, size_t N,
                          const struct block_params *p, const struct block_adapters *ad,
                          size_t C, float *qkv);

#endif /* RANDLORA_MODELS_BLOCK_IMPL_H */
