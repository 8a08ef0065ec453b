/*
 * block_linear.c: the MLP activation, and one linear of a layer with its
 * adapter on the factored or the merged path (block.h, struct
 * block_adapters); shared by the whole layer (block.c) and the layer
 * computed at its pooled rows only (block_pooled.c).
 */
#include "models/block_impl.h"

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

/* the adapter of linear i, or NULL */
static struct adapter *lin_adapter(const struct block_adapters *ad, enum block_linear i)
{
    return ad ? ad->lin[i] : NULL;
}

/* linear i is on the merged path: its weight holds W + dW */
static bool lin_merged(const struct block_adapters *ad, enum block_linear i)
{
    return ad && ad->lin[i] && ad->merged[i];
}

/* q, k or v while the packed in_proj adapter over the three is merged:
 * their weights hold W + dW, which their copies (of W) do not */
static bool in_proj_merged(const struct block_adapters *ad, enum block_linear i)
{
    return i <= BLOCK_LIN_V && lin_merged(ad, BLOCK_LIN_IN_PROJ);
}

/* linear i's bf16 weight when its products run in bf16, or NULL: bf16(W)
 * on either path; while its own adapter is merged the second term
 * lin_bf16_lo = bf16(dW) is added (models/clip_adapters.c); q, k and v
 * under a merged in_proj run fp32 (never under bf16: such a site stays
 * factored there) */
static const bf16 *lin_bf16(const struct block_adapters *ad, enum block_linear i)
{
    return ad && ad->w_bf16[i] && !in_proj_merged(ad, i) ? ad->w_bf16[i] : NULL;
}

static const bf16 *lin_bf16_lo(const struct block_adapters *ad, enum block_linear i)
{
    return ad && lin_merged(ad, i) ? ad->w_bf16_lo[i] : NULL;
}

/* linear_forward with W in bf16: out (N,OC) = b + bf16(inp) (N,C) W^T,
 * summed in fp32, W = w + lo when lo is given (a second product). The
 * precision was checked when the copy was made (clip_adapters_set_precision),
 * so a failure here is a broken invariant. */
static void linear_forward_bf16(float *out, const float *inp, const bf16 *w, const bf16 *lo,
                                const float *b, size_t N, size_t C, size_t OC)
{
    if (b) {
        PARALLEL_FOR(N * OC)
        for (size_t n = 0; n < N; n++)
            memcpy(out + n * OC, b, OC * sizeof(float));
    }
    RL_ASSERT(gemm_bf16_f32a(out, inp, w, N, OC, C, GEMM_BF16_B_NK, b ? 1.0f : 0.0f) == RL_OK);
    if (lo)
        RL_ASSERT(gemm_bf16_f32a(out, inp, lo, N, OC, C, GEMM_BF16_B_NK, 1.0f) == RL_OK);
}

/* out (N, d_out) = inp W^T + b, then += the adapter's branch on inp (factored
 * path; merged: W already holds W + dW) */
void adapted_linear_forward(float *out, const float *inp, const float *w, const float *b,
                            const struct block_adapters *ad, enum block_linear i,
                            size_t N, size_t C, size_t OC)
{
    const bf16 *w16 = lin_bf16(ad, i);

    if (w16 && N && C && OC) {
        linear_forward_bf16(out, inp, w16, lin_bf16_lo(ad, i), b, N, C, OC);
    } else {
        RL_ASSERT(w || !N || !C || !OC);    /* NULL: released under bf16 (clip.h) */
        linear_forward(out, inp, w, b, N, C, OC);
    }
    if (lin_adapter(ad, i) && !lin_merged(ad, i))
        adapter_forward(ad->lin[i], inp, out, N);
}

/* linear_backward, with the input gradient a bf16 product on w16 (+ lo)
 * when given (dinp (N,C) += bf16(dout) (N,OC) W (OC,C)); the weight and
 * bias gradients stay fp32 products on the fp32 inputs */
static void frozen_linear_backward(float *dinp, float *dw, float *db, const float *dout,
                                   const float *inp, const float *w, const bf16 *w16,
                                   const bf16 *lo, size_t N, size_t C, size_t OC)
{
    if (w16 && dinp && N && C && OC) {
        RL_ASSERT(gemm_bf16_f32a(dinp, dout, w16, N, C, OC, GEMM_BF16_B_KN, 1.0f) == RL_OK);
        if (lo)
            RL_ASSERT(gemm_bf16_f32a(dinp, dout, lo, N, C, OC, GEMM_BF16_B_KN, 1.0f) == RL_OK);
        dinp = NULL;
    }
    RL_ASSERT(w || !dinp || !N || !C || !OC);   /* NULL: released under bf16 */
    linear_backward(dinp, dw, db, dout, inp, w, N, C, OC);
}

/* factored: linear_backward (dw only when asked), then the adapter's
 * backward. merged: gw = dout^T inp in the shared scratch (with dinp and db
 * from the same linear_backward, w = W + dW; dinp in bf16 on the copy of
 * W + dW when the precision is bf16), projected onto the adapter's
 * parameters, and added to dw when the weight itself is trained too; or,
 * with a step-long sum set, added to the sum for one projection later;
 * or, when the parameters are dW itself (full), added to them at once; or
 * not formed at all, the parameter gradients taken from inp and dout. */
void adapted_linear_backward(float *dinp, float *dw, float *db, const float *dout,
                             const float *inp, const float *w,
                             const struct block_adapters *ad, enum block_linear i,
                             size_t N, size_t C, size_t OC)
{
    struct adapter *a = lin_adapter(ad, i);
    /* a weight trained itself (dw) changes every step: no bf16 copy of it */
    const bf16 *w16 = dw ? NULL : lin_bf16(ad, i), *lo = lin_bf16_lo(ad, i);

    if (a && lin_merged(ad, i)) {
        const size_t n = block_mul(OC, C);
        float *gw = ad->gw;

        if (!a->grads && !dw) {
            frozen_linear_backward(dinp, NULL, db, dout, inp, w, w16, lo, N, C, OC);
            return;
        }
        if (ad->rows[i] && !dw) {               /* no weight gradient at all */
            frozen_linear_backward(dinp, NULL, db, dout, inp, w, w16, lo, N, C, OC);
            adapter_project_rows(a, inp, dout, N);
            return;
        }
        if (a->grads && !dw && (a->ops->flags & ADAPTER_F_GRAD_IS_GW)) {
            frozen_linear_backward(dinp, a->grads, db, dout, inp, w, w16, lo, N, C, OC);
            return;
        }
        if (ad->gw_sum[i] && !dw) {             /* projected once per step */
            frozen_linear_backward(dinp, ad->gw_sum[i], db, dout, inp, w, w16, lo, N, C, OC);
            return;
        }
        RL_ASSERT(gw != NULL);
        memset(gw, 0, n * sizeof(float));
        frozen_linear_backward(dinp, gw, db, dout, inp, w, w16, lo, N, C, OC);
        adapter_project_grad(a, gw);
        if (dw)
            for (size_t k = 0; k < n; k++)
                dw[k] += gw[k];
        return;
    }
    frozen_linear_backward(dinp, dw, db, dout, inp, w, w16, lo, N, C, OC);
    if (a)
        adapter_backward(a, inp, dout, dinp, N);
}
