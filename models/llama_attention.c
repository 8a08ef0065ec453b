/*
 * llama_attention.c: grouped-query causal attention (llama_nn.h), forward
 * and backward on OpenBLAS, with plain-loop references.
 *
 * Layout: q (B,Tq,NH*hs), k and v (B,kv_T,KVH*hs) row-major; query head h
 * is the column block h*hs of q's rows and reads key/value head
 * g = h / (NH/KVH), the column block g*hs of k's and v's rows: strided
 * views, no copies (attention.c's scheme with two leading dimensions).
 *
 *   pre[i,j] = scale * q_i . k_j      scale = 1/sqrt(hs), j <= pos0 + i
 *   att[i,:] = softmax(pre[i,:])
 *   out[i,:] = sum_j att[i,j] v_j
 *
 * The forward runs the (b,h) pairs in parallel, each one thread from start
 * to end when its GEMMs are small (OpenBLAS then computes them on the
 * calling thread; above the threshold the heads run one after another and
 * OpenBLAS threads each product, as attention.c). The backward runs the
 * (b, key/value head) groups in parallel and the query heads of a group in
 * order, since they all add into the same dk and dv columns.
 */
#include "models/llama_nn.h"

#include <limits.h>
#include <math.h>
#include <stdbool.h>

#include "core/gemm_f32.h"
#include "core/parallel.h"
#include "core/status.h"
#include "models/softmax_row.h"

#define GQA_BLAS_SERIAL_MNK ((size_t)65536 * 4)

size_t gqa_keys(const struct gqa_dims *d)
{
    return d->pos0 + d->Tq;
}

static void gqa_check(const struct gqa_dims *d)
{
    RL_ASSERT(d->NH > 0 && d->KVH > 0 && d->NH % d->KVH == 0 && d->hs > 0);
    RL_ASSERT(d->Tq > 0 && gqa_keys(d) <= d->kv_T);
    RL_ASSERT(d->kv_T <= INT_MAX && d->NH * d->hs <= INT_MAX && gqa_keys(d) <= INT_MAX);
}

/* offsets of head h of sequence b in q (and out) and in k (and v) */
static size_t q_off(const struct gqa_dims *d, size_t b, size_t h)
{
    return b * d->Tq * d->NH * d->hs + h * d->hs;
}

static size_t kv_off(const struct gqa_dims *d, size_t b, size_t h)
{
    return b * d->kv_T * d->KVH * d->hs + (h / (d->NH / d->KVH)) * d->hs;
}

void gqa_attention_forward(float *out, float *att, const float *q, const float *k,
                           const float *v, const struct gqa_dims *d)
{
    gqa_check(d);
    const size_t hs = d->hs, Tq = d->Tq, Tk = gqa_keys(d), heads = d->B * d->NH;
    const int ldq = (int)(d->NH * hs), ldk = (int)(d->KVH * hs);
    const float scale = (float)(1.0 / sqrt((double)hs));
    const bool per_thread = Tq * Tk * hs <= GQA_BLAS_SERIAL_MNK;

    PARALLEL_FOR(per_thread ? heads * Tq * Tk * hs : 0)
    for (size_t bh = 0; bh < heads; bh++) {
        const size_t b = bh / d->NH, h = bh % d->NH;
        const size_t qo = q_off(d, b, h), ko = kv_off(d, b, h);
        float *ath = att + bh * Tq * Tk;

        /* pre (Tq,Tk) = scale q_h (Tq,hs) k_h (Tk,hs)^T */
        gemm_f32(CblasNoTrans, CblasTrans, (int)Tq, (int)Tk, (int)hs,
                 scale, q + qo, ldq, k + ko, ldk, 0.0f, ath, (int)Tk);
        for (size_t i = 0; i < Tq; i++)
            softmax_row(ath + i * Tk, d->pos0 + i + 1, Tk);
        /* out_h (Tq,hs) = att (Tq,Tk) v_h (Tk,hs) */
        gemm_f32(CblasNoTrans, CblasNoTrans, (int)Tq, (int)hs, (int)Tk,
                 1.0f, ath, (int)Tk, v + ko, ldk, 0.0f, out + qo, ldq);
    }
}

/*
 * Per query head (attention.c's derivation), with A = att, O = A V,
 * P = scale Q K^T:
 *   dV += A^T dO,  dA = dO V^T,  dP = A * (dA - rowsum(A * dA)),
 *   dQ += scale dP K,  dK += scale dP^T Q
 * dK and dV of a key/value head sum over the query heads of its group.
 */
void gqa_attention_backward(float *dq, float *dk, float *dv, float *scratch,
                            const float *dout, const float *att, const float *q,
                            const float *k, const float *v, const struct gqa_dims *d)
{
    gqa_check(d);
    RL_ASSERT(d->pos0 == 0 && d->kv_T == d->Tq);
    const size_t hs = d->hs, T = d->Tq, group = d->NH / d->KVH, groups = d->B * d->KVH;
    const int ldq = (int)(d->NH * hs), ldk = (int)(d->KVH * hs);
    const float scale = (float)(1.0 / sqrt((double)hs));
    const bool per_thread = T * T * hs <= GQA_BLAS_SERIAL_MNK;

    PARALLEL_FOR(per_thread ? groups * group * T * T * hs : 0)
    for (size_t bg = 0; bg < groups; bg++) {
        const size_t b = bg / d->KVH, g = bg % d->KVH;

        for (size_t h = g * group; h < (g + 1) * group; h++) {
            const size_t bh = b * d->NH + h, qo = q_off(d, b, h), ko = kv_off(d, b, h);
            const float *ath = att + bh * T * T;
            float *dph = scratch + bh * T * T;

            if (dv)
                gemm_f32(CblasTrans, CblasNoTrans, (int)T, (int)hs, (int)T,
                         1.0f, ath, (int)T, dout + qo, ldq, 1.0f, dv + ko, ldk);
            if (!dq && !dk)
                continue;
            gemm_f32(CblasNoTrans, CblasTrans, (int)T, (int)T, (int)hs,
                     1.0f, dout + qo, ldq, v + ko, ldk, 0.0f, dph, (int)T);
            for (size_t i = 0; i < T; i++) {
                const float *a = ath + i * T;
                float *dp = dph + i * T;
                double dot = 0.0;
                float fdot;

                for (size_t j = 0; j < T; j++)
                    dot += (double)a[j] * (double)dp[j];
                fdot = (float)dot;
                for (size_t j = 0; j < T; j++)
                    dp[j] = a[j] * (dp[j] - fdot);
            }
            if (dq)
                gemm_f32(CblasNoTrans, CblasNoTrans, (int)T, (int)hs, (int)T,
                         scale, dph, (int)T, k + ko, ldk, 1.0f, dq + qo, ldq);
            if (dk)
                gemm_f32(CblasTrans, CblasNoTrans, (int)T, (int)hs, (int)T,
                         scale, dph, (int)T, q + qo, ldq, 1.0f, dk + ko, ldk);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* plain-loop references: one query row at a time, sums in double          */

void gqa_attention_forward_naive(float *out, float *att, const float *q, const float *k,
                                 const float *v, const struct gqa_dims *d)
{
    gqa_check(d);
    const size_t hs = d->hs, Tq = d->Tq, Tk = gqa_keys(d);
    const size_t ldq = d->NH * hs, ldk = d->KVH * hs;
    const double scale = 1.0 / sqrt((double)hs);

    for (size_t b = 0; b < d->B; b++)
        for (size_t h = 0; h < d->NH; h++)
            for (size_t i = 0; i < Tq; i++) {
                const float *qi = q + q_off(d, b, h) + i * ldq;
                const float *kh = k + kv_off(d, b, h), *vh = v + kv_off(d, b, h);
                float *row = att + ((b * d->NH + h) * Tq + i) * Tk;
                float *oi = out + q_off(d, b, h) + i * ldq;
                const size_t n = d->pos0 + i + 1;

                for (size_t j = 0; j < n; j++) {
                    double s = 0.0;

                    for (size_t e = 0; e < hs; e++)
                        s += (double)qi[e] * (double)kh[j * ldk + e];
                    row[j] = (float)(s * scale);
                }
                softmax_row(row, n, Tk);
                for (size_t e = 0; e < hs; e++) {
                    double s = 0.0;

                    for (size_t j = 0; j < n; j++)
                        s += (double)row[j] * (double)vh[j * ldk + e];
                    oi[e] = (float)s;
                }
            }
}

void gqa_attention_backward_naive(float *dq, float *dk, float *dv, const float *dout,
                                  const float *att, const float *q, const float *k,
                                  const float *v, const struct gqa_dims *d)
{
    gqa_check(d);
    RL_ASSERT(d->pos0 == 0 && d->kv_T == d->Tq);
    const size_t hs = d->hs, T = d->Tq, ldq = d->NH * hs, ldk = d->KVH * hs;
    const double scale = 1.0 / sqrt((double)hs);

    for (size_t b = 0; b < d->B; b++)
        for (size_t h = 0; h < d->NH; h++)
            for (size_t i = 0; i < T; i++) {
                const float *row = att + ((b * d->NH + h) * T + i) * T;
                const size_t qi = q_off(d, b, h) + i * ldq, kh = kv_off(d, b, h);
                double rowdot = 0.0;

                for (size_t j = 0; j <= i; j++) {
                    double datt = 0.0;

                    for (size_t e = 0; e < hs; e++)
                        datt += (double)dout[qi + e] * (double)v[kh + j * ldk + e];
                    rowdot += (double)row[j] * datt;
                    if (dv)
                        for (size_t e = 0; e < hs; e++)
                            dv[kh + j * ldk + e] += row[j] * dout[qi + e];
                }
                for (size_t j = 0; j <= i && (dq || dk); j++) {
                    double datt = 0.0, dpre;

                    for (size_t e = 0; e < hs; e++)
                        datt += (double)dout[qi + e] * (double)v[kh + j * ldk + e];
                    dpre = (double)row[j] * (datt - rowdot) * scale;
                    for (size_t e = 0; e < hs; e++) {
                        if (dq)
                            dq[qi + e] += (float)(dpre * (double)k[kh + j * ldk + e]);
                        if (dk)
                            dk[kh + j * ldk + e] += (float)(dpre * (double)q[qi + e]);
                    }
                }
            }
}
