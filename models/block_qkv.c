/*
 * block_qkv.c: the attention's q, k and v projections of a layer, each
 * linear with its own adapter (block_linear.c), or the three as ONE packed
 * (3C, C) linear with one adapter, as open_clip's nn.MultiheadAttention
 * in_proj_weight is (block.h, BLOCK_LIN_IN_PROJ). The packed weight is the
 * layer's adjacent q/k/v weights (block_params_point lays them out so), so
 * a merge is in place and the frozen products stay three (C, C) GEMMs; the
 * branch of a factored packed adapter goes through the (N, 3C) scratch
 * `qkv` (block_acts.qkv, sized by block_acts_scratch_size), so a step
 * allocates nothing.
 */
#include <string.h>

#include "methods/adapter.h"
#include "models/block_impl.h"
#include "models/nn.h"

/* the packed adapter, or NULL */
static struct adapter *packed(const struct block_adapters *ad)
{
    return ad ? ad->lin[BLOCK_LIN_IN_PROJ] : NULL;
}

/* x's row of q's row i (block_impl.h) */
static size_t q_row(const size_t *idx, size_t T, size_t i)
{
    if (T == 0)
        return i;
    return i * T + (idx ? idx[i] : 0);
}

void adapted_qkv_forward(float *q, float *k, float *v, const float *xq, const float *x,
                         const size_t *idx, size_t T, size_t Nq, size_t N,
                         const struct block_params *p, const struct block_adapters *ad,
                         size_t C, float *qkv)
{
    struct adapter *a = packed(ad);
    const size_t C3 = block_mul(3, C);

    adapted_linear_forward(q, xq, p->q_w, p->q_b, ad, BLOCK_LIN_Q, Nq, C, C);
    adapted_linear_forward(k, x, p->k_w, p->k_b, ad, BLOCK_LIN_K, N, C, C);
    adapted_linear_forward(v, x, p->v_w, p->v_b, ad, BLOCK_LIN_V, N, C, C);
    if (!a || ad->merged[BLOCK_LIN_IN_PROJ])
        return;
    RL_ASSERT(!ad->lin[BLOCK_LIN_Q] && !ad->lin[BLOCK_LIN_K] && !ad->lin[BLOCK_LIN_V]);
    memset(qkv, 0, block_mul(N, C3) * sizeof(float));
    adapter_forward(a, x, qkv, N);
    for (size_t n = 0; n < N; n++) {
        const float *r = qkv + n * C3;

        for (size_t c = 0; c < C; c++) {
            k[n * C + c] += r[C + c];
            v[n * C + c] += r[2 * C + c];
        }
    }
    for (size_t i = 0; i < Nq; i++) {
        const float *r = qkv + q_row(idx, T, i) * C3;

        for (size_t c = 0; c < C; c++)
            q[i * C + c] += r[c];
    }
}

/* qkv (N, 3C) = [dq at q's rows (0 elsewhere) | dk | dv] */
static void gather_dqkv(float *qkv, const float *dq, const float *dk, const float *dv,
                        const size_t *idx, size_t T, size_t Nq, size_t N, size_t C)
{
    const size_t C3 = 3 * C;

    if (T != 0)
        memset(qkv, 0, block_mul(N, C3) * sizeof(float));
    for (size_t n = 0; n < N; n++) {
        memcpy(qkv + n * C3 + C, dk + n * C, C * sizeof(float));
        memcpy(qkv + n * C3 + 2 * C, dv + n * C, C * sizeof(float));
    }
    for (size_t i = 0; i < Nq; i++)
        memcpy(qkv + q_row(idx, T, i) * C3, dq + i * C, C * sizeof(float));
}

void adapted_qkv_backward(float *dxq, float *dx, struct block_grads *g, const float *dq,
                          const float *dk, const float *dv, const float *xq, const float *x,
                          const size_t *idx, size_t T, size_t Nq, size_t N,
                          const struct block_params *p, const struct block_adapters *ad,
                          size_t C, float *qkv)
{
    struct adapter *a = packed(ad);
    float *dw[3] = { g->q_w, g->k_w, g->v_w };
    const size_t CC = block_mul(C, C);
    const bool want_dw = dw[0] || dw[1] || dw[2];
    float *sink = NULL;             /* the packed weight gradient (3C, C)   */
    bool project = false, rows = false;

    if (!a || !ad->merged[BLOCK_LIN_IN_PROJ]) {
        /* frozen (or individually adapted) q, k, v; then the packed branch */
        adapted_linear_backward(dxq, g->q_w, g->q_b, dq, xq, p->q_w, ad, BLOCK_LIN_Q, Nq, C, C);
        adapted_linear_backward(dx, g->k_w, g->k_b, dk, x, p->k_w, ad, BLOCK_LIN_K, N, C, C);
        adapted_linear_backward(dx, g->v_w, g->v_b, dv, x, p->v_w, ad, BLOCK_LIN_V, N, C, C);
        if (a) {
            gather_dqkv(qkv, dq, dk, dv, idx, T, Nq, N, C);
            adapter_backward(a, x, qkv, dx, N);
        }
        return;
    }

    /* merged: W' = W + dW is in the three weights; the weight gradient, if
     * formed, goes where adapted_linear_backward would send a single one */
    if (a->grads || want_dw) {
        if (ad->rows[BLOCK_LIN_IN_PROJ] && !want_dw)
            rows = true;
        else if (a->grads && !want_dw && (a->ops->flags & ADAPTER_F_GRAD_IS_GW))
            sink = a->grads;
        else if (ad->gw_sum[BLOCK_LIN_IN_PROJ] && !want_dw)
            sink = ad->gw_sum[BLOCK_LIN_IN_PROJ];
        else {
            RL_ASSERT(ad->gw != NULL);
            sink = ad->gw;
            memset(sink, 0, block_mul(3, CC) * sizeof(float));
            project = a->grads != NULL;
        }
    }
    RL_ASSERT(p->q_w != NULL);      /* never merged under bf16 (clip_adapters.c) */
    linear_backward(dxq, sink, g->q_b, dq, xq, p->q_w, Nq, C, C);
    linear_backward(dx, sink ? sink + CC : NULL, g->k_b, dk, x, p->k_w, N, C, C);
    linear_backward(dx, sink ? sink + 2 * CC : NULL, g->v_b, dv, x, p->v_w, N, C, C);
    if (rows) {
        gather_dqkv(qkv, dq, dk, dv, idx, T, Nq, N, C);
        adapter_project_rows(a, x, qkv, N);
    }
    if (project)
        adapter_project_grad(a, sink);
    if (sink && sink == ad->gw && want_dw)
        for (int j = 0; j < 3; j++)
            if (dw[j])
                for (size_t e = 0; e < CC; e++)
                    dw[j][e] += sink[j * CC + e];
}
