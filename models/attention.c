/*
 * attention.c: multi-head self-attention on separate q, k, v, forward and
 * backward, on OpenBLAS; plus plain-loop references.
 *
 * Layout: q, k, v, out (B,T,C) row-major; head h is the column block
 * h*hs .. (h+1)*hs of every row, so the (T,hs) matrix of head h of batch b is
 * a strided view with leading dimension C starting at b*T*C + h*hs; no
 * transposes or copies are needed. att and scratch are (B,NH,T,T).
 *
 *   pre[i,j] = scale * sum_d q[i,d] k[j,d]       scale = 1/sqrt(hs)
 *   att[i,:] = softmax(pre[i,:])                  over j <= i when causal
 *   out[i,:] = sum_j att[i,j] v[j,:]
 *
 * The fast path runs one GEMM per (b,h) for the scores and one for the
 * output (and, in the backward, up to four); the softmax loops between them
 * run under OpenMP. GEMMs are never issued from inside a parallel region
 * (threads.h: OpenBLAS owns the threads inside a GEMM).
 */
#include "models/nn.h"

#include <limits.h>
#include <math.h>

#include "core/gemm_f32.h"
#include "core/parallel.h"
#include "core/status.h"
#include "models/exp_vec.h"
#include "models/softmax_row.h"


static void attention_check(size_t T, size_t C, size_t NH)
{
    RL_ASSERT(NH > 0 && C % NH == 0);
    RL_ASSERT(T > 0 && C > 0);
    RL_ASSERT(T <= INT_MAX && C <= INT_MAX); /* cblas takes int sizes */
}

/* ------------------------------------------------------------------------ */
/* fast path                                                                 */

/* The heads are independent: each (b,h) is a chain of small GEMMs on a
 * T x T tile that stays in cache, done by one thread from start to end.
 * OpenBLAS runs a GEMM on the calling thread when M N K <= 65536 * 4
 * (interface/gemm.c: SMP_THRESHOLD_MIN * GEMM_MULTITHREAD_THRESHOLD), and
 * its threaded build locks its shared state, so below that size the heads
 * run in parallel, one OpenMP thread each, with no nesting of the two
 * pools (core/threads.h). Above it (T x T x hs beyond 262144: ViT-B/16's
 * 197 tokens) the heads run one after another and OpenBLAS threads each
 * product, as every other GEMM. Either way each head's arithmetic is the
 * same, so the result does not depend on the thread count. */
#define ATTN_BLAS_SERIAL_MNK ((size_t)65536 * 4)

/* out (B,T,C), att (B,NH,T,T); q, k, v (B,T,C) */
void attention_forward(float *out, float *att,
                       const float *q, const float *k, const float *v,
                       size_t B, size_t T, size_t C, size_t NH, bool causal)
{
    attention_check(T, C, NH);
    const size_t hs = C / NH;
    const float scale = (float)(1.0 / sqrt((double)hs));
    const size_t heads = B * NH;
    const bool per_thread = T * T * hs <= ATTN_BLAS_SERIAL_MNK;

    PARALLEL_FOR(per_thread ? heads * T * T * hs : 0)
    for (size_t bh = 0; bh < heads; bh++) {
        const size_t b = bh / NH, h = bh % NH, off = b * T * C + h * hs;
        float *ath = att + bh * T * T;

        /* pre (T,T) = scale * q_h (T,hs) @ k_h (T,hs)^T, into att */
        gemm_f32(CblasNoTrans, CblasTrans,
                 (int)T, (int)T, (int)hs, scale, q + off, (int)C, k + off, (int)C,
                 0.0f, ath, (int)T);
        /* softmax over each row */
        for (size_t i = 0; i < T; i++)
            softmax_row(ath + i * T, causal ? i + 1 : T, T);
        /* out_h (T,hs) = att (T,T) @ v_h (T,hs), into its column block */
        gemm_f32(CblasNoTrans, CblasNoTrans,
                 (int)T, (int)hs, (int)T, 1.0f, ath, (int)T, v + off, (int)C,
                 0.0f, out + off, (int)C);
    }
}

/* dq, dk, dv (B,T,C) += ...; scratch (B,NH,T,T) workspace; dout (B,T,C);
 * att (B,NH,T,T) from the forward; q, k, v (B,T,C) */
void attention_backward(float *dq, float *dk, float *dv, float *scratch,
                        const float *dout, const float *att,
                        const float *q, const float *k, const float *v,
                        size_t B, size_t T, size_t C, size_t NH, bool causal)
{
    attention_check(T, C, NH);
    const size_t hs = C / NH;
    const float scale = (float)(1.0 / sqrt((double)hs));
    const size_t heads = B * NH;
    const bool per_thread = T * T * hs <= ATTN_BLAS_SERIAL_MNK;

    /*
     * Forward, per (b,h), with A = att, P = pre-softmax scores:
     *   O = A V                 O (T,hs), A (T,T), V (T,hs)
     *   A[i,:] = softmax(P[i,:])
     *   P = scale * Q K^T
     * Backward:
     *   dV = A^T dO             (from O = A V)
     *   dA = dO V^T
     *   softmax Jacobian, row by row: dA/dP[i,j] over j' is
     *     A[i,j'] (delta_jj' - A[i,j]), so
     *     dP[i,j] = A[i,j] (dA[i,j] - sum_j' A[i,j'] dA[i,j'])
     *   masked entries have A = 0 and so dP = 0: the mask needs no extra care
     *   (they were never inputs of the softmax);
     *   dQ = scale * dP K,  dK = scale * dP^T Q   (from P = scale Q K^T)
     */
    (void)causal; /* carried by the exact zeros of att */

    PARALLEL_FOR(per_thread ? heads * T * T * hs : 0)
    for (size_t bh = 0; bh < heads; bh++) {
        const size_t b = bh / NH, h = bh % NH, off = b * T * C + h * hs;
        const float *ath = att + bh * T * T;
        float *dph = scratch + bh * T * T;

        /* dv_h (T,hs) += att^T (T,T) @ dout_h (T,hs) */
        if (dv)
            gemm_f32(CblasTrans, CblasNoTrans,
                     (int)T, (int)hs, (int)T, 1.0f, ath, (int)T, dout + off, (int)C,
                     1.0f, dv + off, (int)C);
        if (!dq && !dk)
            continue;
        /* datt (T,T) = dout_h (T,hs) @ v_h (T,hs)^T, into scratch */
        gemm_f32(CblasNoTrans, CblasTrans,
                 (int)T, (int)T, (int)hs, 1.0f, dout + off, (int)C, v + off, (int)C,
                 0.0f, dph, (int)T);
        /* dpre = att * (datt - rowsum(att * datt)), in place */
        for (size_t i = 0; i < T; i++) {
            const float *a = ath + i * T;
            float *d = dph + i * T;
            double dot = 0.0;
            float fdot;

            for (size_t j = 0; j < T; j++)
                dot += (double)a[j] * (double)d[j];
            fdot = (float)dot;
            for (size_t j = 0; j < T; j++)
                d[j] = a[j] * (d[j] - fdot);
        }
        /* dq_h (T,hs) += scale * dpre (T,T) @ k_h (T,hs) */
        if (dq)
            gemm_f32(CblasNoTrans, CblasNoTrans,
                     (int)T, (int)hs, (int)T, scale, dph, (int)T, k + off, (int)C,
                     1.0f, dq + off, (int)C);
        /* dk_h (T,hs) += scale * dpre^T (T,T) @ q_h (T,hs) */
        if (dk)
            gemm_f32(CblasTrans, CblasNoTrans,
                     (int)T, (int)hs, (int)T, scale, dph, (int)T, q + off, (int)C,
                     1.0f, dk + off, (int)C);
    }
}

/* ------------------------------------------------------------------------ */
/* one query per sequence: the last layer at its pooled rows                 */

/* The rows of attention_forward's output that a pooled read takes (one per
 * sequence) depend only on that row's query: the last layer of a tower
 * computes them alone (block_pooled_forward). Per (b,h) these are
 * matrix-vector products of T x hs, a few thousand FLOPs: plain loops, the
 * heads in parallel; no BLAS call is made inside the parallel loop. */

/* keys query b sees: up to and including its own position when causal */
static size_t pooled_keys(const size_t *idx, size_t b, size_t T, bool causal)
{
    const size_t i = idx ? idx[b] : 0;

    RL_ASSERT(i < T);
    return causal ? i + 1 : T;
}

/* out (B,C), att (B,NH,T); q (B,C) the query of each sequence, which sits at
 * position idx[b] (0 when idx is NULL); k, v (B,T,C) */
void attention_pooled_forward(float *out, float *att, const float *q, const float *k,
                              const float *v, const size_t *idx, size_t B, size_t T, size_t C,
                              size_t NH, bool causal)
{
    attention_check(T, C, NH);
    const size_t hs = C / NH;
    const float scale = (float)(1.0 / sqrt((double)hs));

    PARALLEL_FOR(B * NH * T * hs)
    for (size_t bh = 0; bh < B * NH; bh++) {
        const size_t b = bh / NH, h = bh % NH, n = pooled_keys(idx, b, T, causal);
        const float *qh = q + b * C + h * hs;
        const float *kh = k + b * T * C + h * hs, *vh = v + b * T * C + h * hs;
        float *a = att + bh * T, *o = out + b * C + h * hs;

        /* pre (n) = scale * k_h (n,hs) q_h (hs) */
        for (size_t j = 0; j < n; j++) {
            float s = 0.0f;

            for (size_t d = 0; d < hs; d++)
                s += qh[d] * kh[j * C + d];
            a[j] = scale * s;
        }
        softmax_row(a, n, T);
        /* out_h (hs) = v_h (n,hs)^T att (n) */
        for (size_t d = 0; d < hs; d++)
            o[d] = 0.0f;
        for (size_t j = 0; j < n; j++)
            for (size_t d = 0; d < hs; d++)
                o[d] += a[j] * vh[j * C + d];
    }
}

/* dq (B,C), dk, dv (B,T,C) += ...; scratch (B,NH,T); dout (B,C); att
 * (B,NH,T) from the forward; q (B,C), k, v (B,T,C). attention_backward's
 * derivation with one query row. */
void attention_pooled_backward(float *dq, float *dk, float *dv, float *scratch,
                               const float *dout, const float *att, const float *q,
                               const float *k, const float *v, const size_t *idx,
                               size_t B, size_t T, size_t C, size_t NH, bool causal)
{
    attention_check(T, C, NH);
    const size_t hs = C / NH;
    const float scale = (float)(1.0 / sqrt((double)hs));

    PARALLEL_FOR(B * NH * T * hs)
    for (size_t bh = 0; bh < B * NH; bh++) {
        const size_t b = bh / NH, h = bh % NH, n = pooled_keys(idx, b, T, causal);
        const size_t qo = b * C + h * hs, ko = b * T * C + h * hs;
        const float *a = att + bh * T, *dy = dout + qo;
        float *dp = scratch + bh * T;
        double dot = 0.0;
        float fdot;

        for (size_t j = 0; j < n; j++) {
            float s = 0.0f;

            /* datt[j] = dout_h . v_j;  dv_j += att[j] dout_h */
            for (size_t d = 0; d < hs; d++)
                s += dy[d] * v[ko + j * C + d];
            dp[j] = s;
            if (dv)
                for (size_t d = 0; d < hs; d++)
                    dv[ko + j * C + d] += a[j] * dy[d];
            dot += (double)a[j] * (double)s;
        }
        if (!dq && !dk)
            continue;
        /* dpre[j] = att[j] (datt[j] - sum_j' att[j'] datt[j']) */
        fdot = (float)dot;
        for (size_t j = 0; j < n; j++)
            dp[j] = scale * (a[j] * (dp[j] - fdot));
        /* dq_h += scale dpre (n) k_h (n,hs);  dk_j += scale dpre[j] q_h */
        for (size_t j = 0; j < n; j++) {
            if (dq)
                for (size_t d = 0; d < hs; d++)
                    dq[qo + d] += dp[j] * k[ko + j * C + d];
            if (dk)
                for (size_t d = 0; d < hs; d++)
                    dk[ko + j * C + d] += dp[j] * q[qo + d];
        }
    }
}

/* ------------------------------------------------------------------------ */
/* plain-loop references                                                     */

/* out (B,T,C), att (B,NH,T,T); q, k, v (B,T,C) */
void attention_forward_naive(float *out, float *att,
                             const float *q, const float *k, const float *v,
                             size_t B, size_t T, size_t C, size_t NH, bool causal)
{
    attention_check(T, C, NH);
    const size_t hs = C / NH;
    const double scale = 1.0 / sqrt((double)hs);

    for (size_t b = 0; b < B; b++)
        for (size_t h = 0; h < NH; h++)
            for (size_t i = 0; i < T; i++) {
                const float *qi = q + (b * T + i) * C + h * hs;
                float *row = att + ((b * NH + h) * T + i) * T;
                size_t n = causal ? i + 1 : T;
                float *oi = out + (b * T + i) * C + h * hs;

                for (size_t j = 0; j < n; j++) {
                    const float *kj = k + (b * T + j) * C + h * hs;
                    double s = 0.0;
                    for (size_t d = 0; d < hs; d++)
                        s += (double)qi[d] * (double)kj[d];
                    row[j] = (float)(s * scale);
                }
                softmax_row(row, n, T);
                for (size_t d = 0; d < hs; d++) {
                    double s = 0.0;
                    for (size_t j = 0; j < n; j++)
                        s += (double)row[j] * (double)v[(b * T + j) * C + h * hs + d];
                    oi[d] = (float)s;
                }
            }
}

/* dq, dk, dv (B,T,C) += ...; dout (B,T,C); att (B,NH,T,T); q, k, v (B,T,C).
 * No workspace: datt[i,j] = dout_i . v_j is recomputed where needed. */
void attention_backward_naive(float *dq, float *dk, float *dv,
                              const float *dout, const float *att,
                              const float *q, const float *k, const float *v,
                              size_t B, size_t T, size_t C, size_t NH, bool causal)
{
    attention_check(T, C, NH);
    const size_t hs = C / NH;
    const double scale = 1.0 / sqrt((double)hs);

    /* same derivation as attention_backward, one query row i at a time:
     *   dv_j += att[i,j] dout_i
     *   datt[i,j] = dout_i . v_j
     *   dpre[i,j] = att[i,j] (datt[i,j] - sum_j' att[i,j'] datt[i,j'])
     *   dq_i += scale * sum_j dpre[i,j] k_j;  dk_j += scale * dpre[i,j] q_i */
    for (size_t b = 0; b < B; b++)
        for (size_t h = 0; h < NH; h++)
            for (size_t i = 0; i < T; i++) {
                const float *row = att + ((b * NH + h) * T + i) * T;
                const size_t oi = (b * T + i) * C + h * hs;
                const size_t n = causal ? i + 1 : T;
                double rowdot = 0.0;

                for (size_t j = 0; j < n; j++) {
                    const size_t oj = (b * T + j) * C + h * hs;
                    double datt = 0.0;
                    for (size_t d = 0; d < hs; d++)
                        datt += (double)dout[oi + d] * (double)v[oj + d];
                    rowdot += (double)row[j] * datt;
                    if (dv)
                        for (size_t d = 0; d < hs; d++)
                            dv[oj + d] += row[j] * dout[oi + d];
                }
                if (!dq && !dk)
                    continue;
                for (size_t j = 0; j < n; j++) {
                    const size_t oj = (b * T + j) * C + h * hs;
                    double datt = 0.0, dpre;
                    for (size_t d = 0; d < hs; d++)
                        datt += (double)dout[oi + d] * (double)v[oj + d];
                    dpre = (double)row[j] * (datt - rowdot) * scale;
                    for (size_t d = 0; d < hs; d++) {
                        if (dq)
                            dq[oi + d] += (float)(dpre * (double)k[oj + d]);
                        if (dk)
                            dk[oj + d] += (float)(dpre * (double)q[oi + d]);
                    }
                }
            }
}
