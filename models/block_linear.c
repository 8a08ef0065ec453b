/*
 * block_linear.c: the MLP activation, and one linear of a layer with its
 * adapter on the factored or the merged path (block.h, struct
 * block_adapters); shared by the whole layer (block.c) and the layer
 * computed at its pooled rows only (block_pooled.c).
 */
#include "models/block_impl.h"
#include "models/adapted_linear.h"

#include <string.h>

#include "core/gemm_bf16.h"
#include "core/parallel.h"
#include "methods/adapter.h"
#include "models/nn.h"

void block_act_forward(float *out, const float *inp, size_t n, enum block_act act)
{
    if (act == BLOCK_ACT_GELU)
        gelu_forward(out, inp, n);
    else
        quick_gelu_forward(out, inp, n);
}

void block_act_backward(float *dinp, const float *dout, const float *inp, size_t n,
                        enum block_act act)
{
    if (act == BLOCK_ACT_GELU)
        gelu_backward(dinp, dout, inp, n);
    else
        quick_gelu_backward(dinp, dout, inp, n);
}

/* linear i's own adapter is on the merged path: its weight holds W + dW */
static bool lin_merged(const struct block_adapters *ad, enum block_linear i)
{
    return ad && ad->lin[i] && ad->merged[i];
}

/* linear i's weight holds W + dW now: its own adapter is merged, or, for
 * q, k and v, the packed in_proj adapter over the three is */
static bool weight_merged(const struct block_adapters *ad, enum block_linear i)
{
    return lin_merged(ad, i) ||
           (i <= BLOCK_LIN_V && lin_merged(ad, BLOCK_LIN_IN_PROJ));
}

/* linear i of a layer's adapters as a struct adapted_lin (a zeroed one,
 * the plain linear, when ad is NULL) */
static struct adapted_lin lin_view(const struct block_adapters *ad, enum block_linear i)
{
    struct adapted_lin l = { 0 };

    if (ad) {
        l.a = ad->lin[i];
        l.merged = lin_merged(ad, i);
        l.weight_merged = weight_merged(ad, i);
        l.gw = ad->gw;
        l.gw_sum = ad->gw_sum[i];
        l.rows = ad->rows[i];
        l.w_bf16 = ad->w_bf16[i];
    }
    return l;
}

/* l's bf16 weight when its products run in bf16: set, and the weight
 * not merged (a merged weight holds W + dW, which the copy does not) */
static const bf16 *lin_bf16(const struct adapted_lin *l)
{
    return l && l->w_bf16 && !l->merged && !l->weight_merged ? l->w_bf16 : NULL;
}

/* linear_forward with W in bf16: out (N,OC) = b + bf16(inp) (N,C) W^T,
 * summed in fp32. The precision was checked when the copy was made
 * (clip_adapters_set_precision), so a failure here is a broken invariant. */
static void linear_forward_bf16(float *out, const float *inp, const bf16 *w, const float *b,
                                size_t N, size_t C, size_t OC)
{
    if (b) {
        PARALLEL_FOR(N * OC)
        for (size_t n = 0; n < N; n++)
            memcpy(out + n * OC, b, OC * sizeof(float));
    }
    RL_ASSERT(gemm_bf16_f32a(out, inp, w, N, OC, C, GEMM_BF16_B_NK, b ? 1.0f : 0.0f) == RL_OK);
}

void adapted_lin_forward(float *out, const float *inp, const float *w, const float *b,
                         const struct adapted_lin *l, size_t N, size_t C, size_t OC)
{
    const bf16 *w16 = lin_bf16(l);

    if (w16)
        linear_forward_bf16(out, inp, w16, b, N, C, OC);
    else
        linear_forward(out, inp, w, b, N, C, OC);
    if (l && l->a && !l->merged)
        adapter_forward(l->a, inp, out, N);
}

/* factored: linear_backward (dw only when asked), then the adapter's
 * backward. merged: gw = dout^T inp in the shared scratch (with dinp and db
 * from the same linear_backward, w = W + dW), projected onto the adapter's
 * parameters, and added to dw when the weight itself is trained too; or,
 * with a step-long sum set, added to the sum for one projection later;
 * or, when the parameters are dW itself (full), added to them at once; or
 * not formed at all, the parameter gradients taken from inp and dout. */
void adapted_lin_backward(float *dinp, float *dw, float *db, const float *dout,
                          const float *inp, const float *w, const struct adapted_lin *l,
                          size_t N, size_t C, size_t OC)
{
    struct adapter *a = l ? l->a : NULL;

    if (a && l->merged) {
        const size_t n = block_mul(OC, C);
        float *gw = l->gw;

        if (!a->grads && !dw) {
            linear_backward(dinp, NULL, db, dout, inp, w, N, C, OC);
            return;
        }
        if (l->rows && !dw) {                   /* no weight gradient at all */
            linear_backward(dinp, NULL, db, dout, inp, w, N, C, OC);
            adapter_project_rows(a, inp, dout, N);
            return;
        }
        if (a->grads && !dw && (a->ops->flags & ADAPTER_F_GRAD_IS_GW)) {
            linear_backward(dinp, a->grads, db, dout, inp, w, N, C, OC);
            return;
        }
        if (l->gw_sum && !dw) {                 /* projected once per step */
            linear_backward(dinp, l->gw_sum, db, dout, inp, w, N, C, OC);
            return;
        }
        RL_ASSERT(gw != NULL);
        memset(gw, 0, n * sizeof(float));
        linear_backward(dinp, gw, db, dout, inp, w, N, C, OC);
        adapter_project_grad(a, gw);
        if (dw)
            for (size_t k = 0; k < n; k++)
                dw[k] += gw[k];
        return;
    }
    if (lin_bf16(l) && !dw) {
        /* frozen weight in bf16: dinp (N,C) += bf16(dout) (N,OC) W (OC,C);
         * the bias gradient in fp32 */
        if (dinp)
            RL_ASSERT(gemm_bf16_f32a(dinp, dout, lin_bf16(l), N, C, OC, GEMM_BF16_B_KN,
                                     1.0f) == RL_OK);
        linear_backward(NULL, NULL, db, dout, inp, w, N, C, OC);
    } else {
        linear_backward(dinp, dw, db, dout, inp, w, N, C, OC);
    }
    if (a)
        adapter_backward(a, inp, dout, dinp, N);
}

void adapted_linear_forward(float *out, const float *inp, const float *w, const float *b,
                            const struct block_adapters *ad, enum block_linear i,
                            size_t N, size_t C, size_t OC)
{
    const struct adapted_lin l = lin_view(ad, i);

    adapted_lin_forward(out, inp, w, b, &l, N, C, OC);
}

void adapted_linear_backward(float *dinp, float *dw, float *db, const float *dout,
                             const float *inp, const float *w,
                             const struct block_adapters *ad, enum block_linear i,
                             size_t N, size_t C, size_t OC)
{
    const struct adapted_lin l = lin_view(ad, i);

    adapted_lin_backward(dinp, dw, db, dout, inp, w, &l, N, C, OC);
}
