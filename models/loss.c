/*
 * loss.c: the CLIP heads and losses: L2 normalisation of embeddings,
 * scaled-cosine logits, softmax cross-entropy and the symmetric contrastive
 * (CLIP) loss. Forward and backward (see nn.h for the conventions).
 *
 *   img = x / ||x||,  logits = scale * img @ txt^T,
 *   CLIP loss = (CE(logits, arange) + CE(logits^T, arange)) / 2
 *
 * Softmaxes subtract the row max and exponentiate in float; normalisers and
 * losses are accumulated in double, and the loss of a row is computed as
 * logsumexp - logit[target] (never as -log(prob), which is inf once a
 * probability underflows at large logit scales).
 */
#include "models/nn.h"

#include <limits.h>
#include <math.h>

#include "core/gemm_f32.h"
#include "core/parallel.h"
#include "core/status.h"


/* rows whose norm is below this are divided by it instead (as PyTorch's
 * F.normalize does), so a zero row gives zeros, not NaN; any embedding of a
 * real model is far above it, where the result is exactly x / ||x||. */
#define L2NORM_EPS 1e-12f

/* ------------------------------------------------------------------------ */
/* L2 normalisation                                                          */

/* out (N,D), norm (N); inp (N,D) */
void l2norm_forward(float *out, float *norm, const float *inp, size_t N, size_t D)
{
    PARALLEL_FOR(N * D)
    for (size_t n = 0; n < N; n++) {
        const float *x = inp + n * D;
        float *y = out + n * D;
        double ss = 0.0;
        float r;

        for (size_t d = 0; d < D; d++)
            ss += (double)x[d] * (double)x[d];
        r = (float)sqrt(ss);
        if (!(r >= L2NORM_EPS))
            r = L2NORM_EPS;
        norm[n] = r;
        for (size_t d = 0; d < D; d++)
            y[d] = x[d] / r;
    }
}

/* dinp (N,D) += ...; dout, out (N,D); norm (N) */
void l2norm_backward(float *dinp, const float *dout, const float *out, const float *norm,
                     size_t N, size_t D)
{
    /*
     * y = x / r, r = ||x||, dr/dx = x / r = y:
     *   dx_d = dy_d / r - sum_e dy_e x_e / r^2 * y_d
     *        = (dy_d - y_d * (dy . y)) / r
     * i.e. the upstream gradient projected off y, scaled by 1/r. For a
     * clamped row (r = eps constant) y = x / eps and dx = dy / eps.
     */
    if (!dinp)
        return;
    PARALLEL_FOR(N * D)
    for (size_t n = 0; n < N; n++) {
        const float *dy = dout + n * D;
        const float *y = out + n * D;
        float *dx = dinp + n * D;
        const float r = norm[n];
        double dot = 0.0;
        float fdot;

        if (r > L2NORM_EPS)
            for (size_t d = 0; d < D; d++)
                dot += (double)dy[d] * (double)y[d];
        fdot = (float)dot;
        for (size_t d = 0; d < D; d++)
            dx[d] += (dy[d] - y[d] * fdot) / r;
    }
}

/* ------------------------------------------------------------------------ */
/* scaled-cosine logits                                                      */

/* logits (N,M) = scale * a (N,D) @ b (M,D)^T */
void cosine_logits_forward(float *logits, const float *a, const float *b, float scale,
                           size_t N, size_t M, size_t D)
{
    RL_ASSERT(N <= INT_MAX && M <= INT_MAX && D <= INT_MAX);
    if (N == 0 || M == 0)
        return;
    gemm_f32(CblasNoTrans, CblasTrans, (int)N, (int)M, (int)D,
             scale, a, (int)D, b, (int)D, 0.0f, logits, (int)M);
}

/* da (N,D) +=, db (M,D) +=, dscale (1) +=; dlogits (N,M); a (N,D); b (M,D) */
void cosine_logits_backward(float *da, float *db, float *dscale,
                            const float *dlogits, const float *a, const float *b, float scale,
                            size_t N, size_t M, size_t D)
{
    /*
     * logits[n,m] = scale * sum_d a[n,d] b[m,d]:
     *   da = scale * dlogits @ b          (N,M)(M,D)
     *   db = scale * dlogits^T @ a        (M,N)(N,D)
     *   dscale = sum_nm dlogits[n,m] * (a_n . b_m)  (= sum(dlogits * logits) / scale,
     *            computed without the division so scale = 0 is fine)
     */
    RL_ASSERT(N <= INT_MAX && M <= INT_MAX && D <= INT_MAX);
    if (N == 0 || M == 0)
        return;
    if (da && D > 0)
        gemm_f32(CblasNoTrans, CblasNoTrans, (int)N, (int)D, (int)M,
                 scale, dlogits, (int)M, b, (int)D, 1.0f, da, (int)D);
    if (db && D > 0)
        gemm_f32(CblasTrans, CblasNoTrans, (int)M, (int)D, (int)N,
                 scale, dlogits, (int)M, a, (int)D, 1.0f, db, (int)D);
    if (dscale) {
        double s = 0.0;

        for (size_t n0 = 0; n0 < N; n0 += PARALLEL_SUM_BLOCK) {
            const size_t nb = N - n0 < PARALLEL_SUM_BLOCK ? N - n0 : PARALLEL_SUM_BLOCK;
            double part[PARALLEL_SUM_BLOCK];

            PARALLEL_FOR(nb * M * D)
            for (size_t i = 0; i < nb; i++) {
                const size_t n = n0 + i;
                const float *an = a + n * D;
                double row = 0.0;

                for (size_t m = 0; m < M; m++) {
                    const float *bm = b + m * D;
                    double ab = 0.0;
                    for (size_t d = 0; d < D; d++)
                        ab += (double)an[d] * (double)bm[d];
                    row += (double)dlogits[n * M + m] * ab;
                }
                part[i] = row;
            }
            s += parallel_sum_rows(part, nb);
        }
        *dscale += (float)s;
    }
}

/* ------------------------------------------------------------------------ */
/* softmax cross-entropy                                                     */

/* probs[j] = softmax(x)[j] for M values of x read with the given stride
 * (1: a row; N: a column of an (.,N) matrix); probs is contiguous.
 * Returns logsumexp(x) in double. */
static double softmax_strided(float *probs, const float *x, size_t stride, size_t M)
{
    float maxv = x[0];
    double sum = 0.0;
    float inv;

    for (size_t j = 1; j < M; j++)
        if (x[j * stride] > maxv)
            maxv = x[j * stride];
    for (size_t j = 0; j < M; j++) {
        float e = expf(x[j * stride] - maxv);
        probs[j] = e;
        sum += (double)e;
    }
    /* sum >= 1: the max term is exp(0) */
    inv = (float)(1.0 / sum);
    for (size_t j = 0; j < M; j++)
        probs[j] *= inv;
    return (double)maxv + log(sum);
}

/* probs (N,M); logits (N,M); targets (N) in [0,M). Returns the mean loss. */
float crossentropy_forward(float *probs, const float *logits, const int32_t *targets,
                           size_t N, size_t M)
{
    double total = 0.0;

    RL_ASSERT(N > 0 && M > 0);
    for (size_t n = 0; n < N; n++)
        RL_ASSERT(targets[n] >= 0 && (size_t)targets[n] < M);

    /* loss_n = -log softmax(x_n)[t] = logsumexp(x_n) - x_n[t] */
    for (size_t n0 = 0; n0 < N; n0 += PARALLEL_SUM_BLOCK) {
        const size_t nb = N - n0 < PARALLEL_SUM_BLOCK ? N - n0 : PARALLEL_SUM_BLOCK;
        double part[PARALLEL_SUM_BLOCK];

        PARALLEL_FOR(nb * M)
        for (size_t i = 0; i < nb; i++) {
            const size_t n = n0 + i;
            const float *x = logits + n * M;
            double lse = softmax_strided(probs + n * M, x, 1, M);
            part[i] = lse - (double)x[targets[n]];
        }
        total += parallel_sum_rows(part, nb);
    }
    return (float)(total / (double)N);
}

/* dlogits (N,M) += ...; probs (N,M); targets (N) */
void crossentropy_backward(float *dlogits, const float *probs, const int32_t *targets,
                           float dloss, size_t N, size_t M)
{
    /*
     * loss = (1/N) sum_n [logsumexp(x_n) - x_n[t_n]]
     * d logsumexp(x) / dx_j = softmax(x)_j, so
     *   dx_n[j] = dloss / N * (probs[n,j] - [j == t_n])
     */
    if (!dlogits || N == 0)
        return;
    for (size_t n = 0; n < N; n++)
        RL_ASSERT(targets[n] >= 0 && (size_t)targets[n] < M);
    const float g = dloss / (float)N;

    PARALLEL_FOR(N * M)
    for (size_t n = 0; n < N; n++) {
        const float *p = probs + n * M;
        float *dx = dlogits + n * M;
        const size_t t = (size_t)targets[n];
        for (size_t j = 0; j < M; j++)
            dx[j] += g * (p[j] - (j == t ? 1.0f : 0.0f));
    }
}

/* ------------------------------------------------------------------------ */
/* symmetric contrastive (CLIP) loss                                         */

/* probs_img (N,N) = row softmax of logits, probs_txt (N,N) = row softmax of
 * logits^T (so probs_txt[i,j] belongs to logits[j,i]); logits (N,N). */
float clip_loss_forward(float *probs_img, float *probs_txt, const float *logits, size_t N)
{
    double total_img = 0.0, total_txt = 0.0;

    RL_ASSERT(N > 0);
    for (size_t i0 = 0; i0 < N; i0 += PARALLEL_SUM_BLOCK) {
        const size_t nb = N - i0 < PARALLEL_SUM_BLOCK ? N - i0 : PARALLEL_SUM_BLOCK;
        double part_img[PARALLEL_SUM_BLOCK], part_txt[PARALLEL_SUM_BLOCK];

        PARALLEL_FOR(2 * nb * N)
        for (size_t k = 0; k < nb; k++) {
            const size_t i = i0 + k;
            /* image i against all texts: row i; target i */
            double lse = softmax_strided(probs_img + i * N, logits + i * N, 1, N);
            part_img[k] = lse - (double)logits[i * N + i];
            /* text i against all images: column i of logits; target i */
            lse = softmax_strided(probs_txt + i * N, logits + i, N, N);
            part_txt[k] = lse - (double)logits[i * N + i];
        }
        total_img += parallel_sum_rows(part_img, nb);
        total_txt += parallel_sum_rows(part_txt, nb);
    }
    return (float)(0.5 * (total_img + total_txt) / (double)N);
}

/* dlogits (N,N) += ...; probs_img, probs_txt (N,N) from the forward */
void clip_loss_backward(float *dlogits, const float *probs_img, const float *probs_txt,
                        float dloss, size_t N)
{
    /*
     * loss = (CE(L, arange) + CE(L^T, arange)) / 2; each CE as in
     * crossentropy_backward with dloss/2:
     *   image term: dL[i,j] += dloss/(2N) * (probs_img[i,j] - [i == j])
     *   text term:  dL^T[j,i] = dL[i,j] += dloss/(2N) * (probs_txt[j,i] - [i == j])
     */
    if (!dlogits || N == 0)
        return;
    const float g = 0.5f * dloss / (float)N;

    PARALLEL_FOR(N * N)
    for (size_t i = 0; i < N; i++) {
        float *dx = dlogits + i * N;
        const float *pi = probs_img + i * N;
        for (size_t j = 0; j < N; j++) {
            float eye = i == j ? 1.0f : 0.0f;
            dx[j] += g * ((pi[j] - eye) + (probs_txt[j * N + i] - eye));
        }
    }
}
