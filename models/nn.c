/*
 * nn.c: the layer kernels of the transformer other than attention and the
 * losses: linear, layer norm, activations, residual, embeddings, patch
 * embedding, class token, row pooling. Forward and backward, llm.c style.
 *
 * Conventions (see nn.h): outputs first; forward overwrites; backward
 * ACCUMULATES (+=) into every gradient it is given; a NULL gradient pointer
 * means that gradient is not computed at all; sizes are size_t; no kernel
 * allocates. GEMMs go to OpenBLAS (gemm_f32, beta = 1 to accumulate) and
 * are never called from inside an OpenMP region; OpenMP only parallelises
 * row and elementwise loops whose iterations write disjoint memory.
 *
 * Where a gradient element collects several contributions (a bias over rows,
 * a position row over the batch) they are summed first and added once, so
 * calling a backward twice gives exactly twice one call. The one exception
 * is the token-embedding scatter, where a repeated token adds once per
 * occurrence.
 */
#include "models/nn.h"

#include <assert.h>
#include <limits.h>
#include <math.h>
#include <string.h>

#include "core/gemm_f32.h"
#include "core/parallel.h"
#include "models/exp_vec.h"


/* CBLAS takes int dimensions: a size that does not fit is a caller bug. */
static inline int blas_int(size_t n)
{
    assert(n <= (size_t)INT_MAX);
    return (int)n;
}

/* ======================================================================== */
/* linear                                                                    */
/* ======================================================================== */

/*
 * out (N,OC) = inp (N,C) @ w^T (C,OC) + b (OC)
 * w (OC,C) row-major (PyTorch layout); b may be NULL.
 */
void linear_forward(float *out, const float *inp, const float *w, const float *b,
                    size_t N, size_t C, size_t OC)
{
    float beta = 0.0f;

    if (N == 0 || OC == 0)
        return;
    if (b) {
        /* start every row at the bias, then let the GEMM add inp @ w^T */
        PARALLEL_FOR(N * OC)
        for (size_t n = 0; n < N; n++)
            memcpy(out + n * OC, b, OC * sizeof(*out));
        beta = 1.0f;
    } else if (C == 0) {
        memset(out, 0, N * OC * sizeof(*out));
    }
    if (C == 0)
        return;
    /* out (N,OC) = inp (N,C) . w^T (C,OC) */
    gemm_f32(CblasNoTrans, CblasTrans,
             blas_int(N), blas_int(OC), blas_int(C),
             1.0f, inp, blas_int(C), w, blas_int(C),
             beta, out, blas_int(OC));
}

/*
 * dinp (N,C) += dout (N,OC) @ w (OC,C)
 * dw (OC,C)  += dout^T (OC,N) @ inp (N,C)
 * db (OC)    += sum over rows of dout
 */
void linear_backward(float *dinp, float *dw, float *db,
                     const float *dout, const float *inp, const float *w,
                     size_t N, size_t C, size_t OC)
{
    /* in the forward pass out[n,o] = b[o] + sum_c inp[n,c] w[o,c], so
     * d out[n,o] / d inp[n,c] = w[o,c]   -> dinp[n,c] += sum_o dout[n,o] w[o,c]
     * d out[n,o] / d w[o,c]   = inp[n,c] -> dw[o,c]   += sum_n dout[n,o] inp[n,c]
     * d out[n,o] / d b[o]     = 1        -> db[o]     += sum_n dout[n,o]
     * each of the three is computed only when its pointer is given. */
    if (N == 0 || OC == 0)
        return;
    if (dinp && C > 0)
        gemm_f32(CblasNoTrans, CblasNoTrans,
                 blas_int(N), blas_int(C), blas_int(OC),
                 1.0f, dout, blas_int(OC), w, blas_int(C),
                 1.0f, dinp, blas_int(C));
    if (dw && C > 0)
        gemm_f32(CblasTrans, CblasNoTrans,
                 blas_int(OC), blas_int(C), blas_int(N),
                 1.0f, dout, blas_int(OC), inp, blas_int(C),
                 1.0f, dw, blas_int(C));
    if (db) {
        /* each thread owns a set of output channels: no write is shared */
        PARALLEL_FOR(N * OC)
        for (size_t o = 0; o < OC; o++) {
            float s = 0.0f;

            for (size_t n = 0; n < N; n++)
                s += dout[n * OC + o];
            db[o] += s;
        }
    }
}

/* Plain loops, the reference the BLAS path is tested against. */
void linear_forward_naive(float *out, const float *inp, const float *w, const float *b,
                          size_t N, size_t C, size_t OC)
{
    /* out (N,OC), inp (N,C), w (OC,C), b (OC) or NULL */
    for (size_t n = 0; n < N; n++) {
        for (size_t o = 0; o < OC; o++) {
            float s = b ? b[o] : 0.0f;

            for (size_t c = 0; c < C; c++)
                s += inp[n * C + c] * w[o * C + c];
            out[n * OC + o] = s;
        }
    }
}

void linear_backward_naive(float *dinp, float *dw, float *db,
                           const float *dout, const float *inp, const float *w,
                           size_t N, size_t C, size_t OC)
{
    /* the same derivation as linear_backward, one element at a time; each
     * gradient element is summed in full, then added once */
    if (dinp)
        for (size_t n = 0; n < N; n++)
            for (size_t c = 0; c < C; c++) {
                float s = 0.0f;

                for (size_t o = 0; o < OC; o++)
                    s += dout[n * OC + o] * w[o * C + c];
                dinp[n * C + c] += s;
            }
    if (dw)
        for (size_t o = 0; o < OC; o++)
            for (size_t c = 0; c < C; c++) {
                float s = 0.0f;

                for (size_t n = 0; n < N; n++)
                    s += dout[n * OC + o] * inp[n * C + c];
                dw[o * C + c] += s;
            }
    if (db)
        for (size_t o = 0; o < OC; o++) {
            float s = 0.0f;

            for (size_t n = 0; n < N; n++)
                s += dout[n * OC + o];
            db[o] += s;
        }
}

/* ======================================================================== */
/* layer norm                                                                */
/* ======================================================================== */

/*
 * out (N,C) = (inp - mean) * rstd * w + b, over the last dim of inp (N,C);
 * w, b (C); mean, rstd (N) saved for the backward. Biased variance,
 * rstd = 1 / sqrt(var + eps). The row statistics are accumulated in double
 * (two passes: mean, then the centred second moment).
 */
/* the sums of nn.h "fixed-order sums": NN_SUM_LANES independent partial
 * sums in double (a fixed order, so the same bits every run; the lanes make
 * the loop vectorizable without reassociating anything), then the lanes in
 * order */
#define NN_SUM_LANES 8

double nn_sum(const float *x, size_t n)
{
    double lane[NN_SUM_LANES] = { 0 }, s = 0.0;
    size_t i = 0;

    for (; i + NN_SUM_LANES <= n; i += NN_SUM_LANES)
        for (size_t l = 0; l < NN_SUM_LANES; l++)
            lane[l] += (double)x[i + l];
    for (; i < n; i++)
        lane[i % NN_SUM_LANES] += (double)x[i];
    for (size_t l = 0; l < NN_SUM_LANES; l++)
        s += lane[l];
    return s;
}

double nn_sum_sq_dev(const float *x, size_t n, double m)
{
    double lane[NN_SUM_LANES] = { 0 }, s = 0.0;
    size_t i = 0;

    for (; i + NN_SUM_LANES <= n; i += NN_SUM_LANES)
        for (size_t l = 0; l < NN_SUM_LANES; l++) {
            double d = (double)x[i + l] - m;

            lane[l] += d * d;
        }
    for (; i < n; i++) {
        double d = (double)x[i] - m;

        lane[i % NN_SUM_LANES] += d * d;
    }
    for (size_t l = 0; l < NN_SUM_LANES; l++)
        s += lane[l];
    return s;
}

void layernorm_forward(float *out, float *mean, float *rstd,
                       const float *inp, const float *w, const float *b,
                       size_t N, size_t C, float eps)
{
    PARALLEL_FOR(N * C)
    for (size_t n = 0; n < N; n++) {
        const float *x = inp + n * C;
        float *y = out + n * C;
        double m, v;
        float mf, s;

        m = C ? nn_sum(x, C) / (double)C : 0.0;
        v = C ? nn_sum_sq_dev(x, C, m) / (double)C : 0.0;
        mf = (float)m;
        s = (float)(1.0 / sqrt(v + (double)eps));
        for (size_t c = 0; c < C; c++)
            y[c] = (x[c] - mf) * s * w[c] + b[c];
        mean[n] = mf;
        rstd[n] = s;
    }
}

/*
 * dinp (N,C) += ..., dw (C) += ..., db (C) += ...
 * from dout (N,C), inp (N,C), w (C) and the saved mean, rstd (N).
 */
void layernorm_backward(float *dinp, float *dw, float *db,
                        const float *dout, const float *inp, const float *w,
                        const float *mean, const float *rstd, size_t N, size_t C)
{
    /* in the forward pass, per row: norm[c] = (x[c] - mean) * rstd and
     * out[c] = norm[c] * w[c] + b[c]. So
     *   db[c] += dout[c]                  (summed over rows)
     *   dw[c] += dout[c] * norm[c]        (summed over rows)
     *   dnorm[c] = dout[c] * w[c]
     * and since mean and rstd both depend on every x of the row,
     *   d norm[c] / d x[i] = rstd * (delta_ci - 1/C - norm[c] norm[i] / C),
     * which gives, with dnorm_mean = mean_c dnorm[c] and
     * dnorm_norm_mean = mean_c dnorm[c] norm[c],
     *   dx[i] = rstd * (dnorm[i] - dnorm_mean - norm[i] * dnorm_norm_mean). */
    if (dinp) {
        /* rows are independent: each thread writes its own rows of dinp */
        PARALLEL_FOR(N * C)
        for (size_t n = 0; n < N; n++) {
            const float *x = inp + n * C, *dy = dout + n * C;
            float *dx = dinp + n * C;
            float m = mean[n], s = rstd[n];
            double dnorm_mean = 0.0, dnorm_norm_mean = 0.0;

            for (size_t c = 0; c < C; c++) {
                float norm = (x[c] - m) * s, dnorm = dy[c] * w[c];

                dnorm_mean += dnorm;
                dnorm_norm_mean += (double)dnorm * norm;
            }
            if (C) {
                dnorm_mean /= (double)C;
                dnorm_norm_mean /= (double)C;
            }
            for (size_t c = 0; c < C; c++) {
                float norm = (x[c] - m) * s, dnorm = dy[c] * w[c];

                dx[c] += s * (dnorm - (float)dnorm_mean - norm * (float)dnorm_norm_mean);
            }
        }
    }
    if (dw || db) {
        /* the parameter gradients sum over rows: threads own columns */
        PARALLEL_FOR(N * C)
        for (size_t c = 0; c < C; c++) {
            float sw = 0.0f, sb = 0.0f;

            for (size_t n = 0; n < N; n++) {
                float dy = dout[n * C + c];

                sw += dy * (inp[n * C + c] - mean[n]) * rstd[n];
                sb += dy;
            }
            if (dw)
                dw[c] += sw;
            if (db)
                db[c] += sb;
        }
    }
}

/* ======================================================================== */
/* activations                                                               */
/* ======================================================================== */

#define QUICK_GELU_K 1.702f

/* out (n) = inp * sigmoid(1.702 inp) */
void quick_gelu_forward(float *out, const float *inp, size_t n)
{
    PARALLEL_FOR_SIMD(n)
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];

        out[i] = x / (1.0f + exp_vec(-QUICK_GELU_K * x));
    }
}

/* dinp (n) += dout * quick_gelu'(inp) */
void quick_gelu_backward(float *dinp, const float *dout, const float *inp, size_t n)
{
    /* in the forward pass out = x s with s = sigmoid(k x), and
     * ds/dx = k s (1 - s), so d out / dx = s + x k s (1 - s).
     * (for very negative x, exp overflows to inf and s = 0 exactly,
     * giving a gradient of 0, the right limit) */
    PARALLEL_FOR_SIMD(n)
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        float s = 1.0f / (1.0f + exp_vec(-QUICK_GELU_K * x));

        dinp[i] += dout[i] * (s + x * QUICK_GELU_K * s * (1.0f - s));
    }
}

#define SQRT1_2      0.70710678118654752440f /* 1 / sqrt(2)    */
#define INV_SQRT_2PI 0.39894228040143267794f /* 1 / sqrt(2 pi) */

/* out (n) = 0.5 inp (1 + erf(inp / sqrt 2)), exact (not the tanh approximation) */
void gelu_forward(float *out, const float *inp, size_t n)
{
    PARALLEL_FOR(n)
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];

        out[i] = 0.5f * x * (1.0f + erff(x * SQRT1_2));
    }
}

/* dinp (n) += dout * gelu'(inp) */
void gelu_backward(float *dinp, const float *dout, const float *inp, size_t n)
{
    /* in the forward pass out = x Phi(x), Phi the standard normal CDF
     * = 0.5 (1 + erf(x / sqrt 2)); so d out / dx = Phi(x) + x phi(x) with
     * phi(x) = exp(-x^2 / 2) / sqrt(2 pi) the normal density. */
    PARALLEL_FOR(n)
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        float cdf = 0.5f * (1.0f + erff(x * SQRT1_2));
        float pdf = expf(-0.5f * x * x) * INV_SQRT_2PI;

        dinp[i] += dout[i] * (cdf + x * pdf);
    }
}

/* ======================================================================== */
/* residual                                                                  */
/* ======================================================================== */

/* out (n) = a (n) + b (n) */
void residual_forward(float *out, const float *a, const float *b, size_t n)
{
    PARALLEL_FOR(n)
    for (size_t i = 0; i < n; i++)
        out[i] = a[i] + b[i];
}

/* da (n) += dout, db (n) += dout */
void residual_backward(float *da, float *db, const float *dout, size_t n)
{
    /* in the forward pass out = a + b, so the gradient flows unchanged to
     * both branches */
    if (da) {
        PARALLEL_FOR(n)
        for (size_t i = 0; i < n; i++)
            da[i] += dout[i];
    }
    if (db) {
        PARALLEL_FOR(n)
        for (size_t i = 0; i < n; i++)
            db[i] += dout[i];
    }
}

/* ======================================================================== */
/* token + position embedding                                                */
/* ======================================================================== */

/* out (B,T,C) = wte (V,C)[ids (B,T)] + wpe (>=T,C)[t] */
void embedding_forward(float *out, const int32_t *ids, const float *wte, const float *wpe,
                       size_t B, size_t T, size_t C)
{
    PARALLEL_FOR(B * T * C)
    for (size_t bt = 0; bt < B * T; bt++) {
        size_t t = bt % T;
        const float *te = wte + (size_t)ids[bt] * C, *pe = wpe + t * C;
        float *y = out + bt * C;

        for (size_t c = 0; c < C; c++)
            y[c] = te[c] + pe[c];
    }
}

/* dwte (V,C) += scatter of dout by ids; dwpe (>=T,C) += dout summed over B */
void embedding_backward(float *dwte, float *dwpe, const float *dout, const int32_t *ids,
                        size_t B, size_t T, size_t C)
{
    /* in the forward pass out[b,t] = wte[ids[b,t]] + wpe[t], so each output
     * row sends its gradient to the token row it read (a token may appear
     * many times, so this scatter runs serially) and to position row t. */
    if (dwte) {
        for (size_t bt = 0; bt < B * T; bt++) {
            float *g = dwte + (size_t)ids[bt] * C;
            const float *dy = dout + bt * C;

            for (size_t c = 0; c < C; c++)
                g[c] += dy[c];
        }
    }
    if (dwpe) {
        /* position rows are distinct per t: threads own positions */
        PARALLEL_FOR(B * T * C)
        for (size_t t = 0; t < T; t++) {
            for (size_t c = 0; c < C; c++) {
                float s = 0.0f;

                for (size_t b = 0; b < B; b++)
                    s += dout[(b * T + t) * C + c];
                dwpe[t * C + c] += s;
            }
        }
    }
}

/* ======================================================================== */
/* patch embedding (convolution, stride = kernel = ps, no bias)              */
/* ======================================================================== */

/*
 * pixels (B,CH,H,W) -> patches (B,P,K), K = CH*ps*ps in (c,kh,kw) order,
 * P = GH*GW with GH = H/ps, GW = W/ps (rows/columns that do not fill a whole
 * patch are dropped, as in PyTorch's strided convolution), grid row-major;
 * then out (B*P,C) = patches (B*P,K) @ w^T (K,C), w (C,K).
 */
void patch_embed_forward(float *out, float *patches, const float *pixels, const float *w,
                         size_t B, size_t CH, size_t H, size_t W, size_t ps, size_t C)
{
    size_t GH, GW, P, K;

    assert(ps > 0);
    GH = H / ps;
    GW = W / ps;
    P = GH * GW;
    K = CH * ps * ps;
    if (B * P == 0 || C == 0)
        return;

    /* im2col: one patch per (b, p); each thread writes its own patch rows */
    PARALLEL_FOR(B * P * K)
    for (size_t bp = 0; bp < B * P; bp++) {
        size_t b = bp / P, p = bp % P, gy = p / GW, gx = p % GW;
        float *dst = patches + bp * K;

        for (size_t c = 0; c < CH; c++) {
            for (size_t kh = 0; kh < ps; kh++) {
                const float *src = pixels + ((b * CH + c) * H + gy * ps + kh) * W + gx * ps;

                memcpy(dst + (c * ps + kh) * ps, src, ps * sizeof(*dst));
            }
        }
    }
    /* out (B*P,C) = patches (B*P,K) . w^T (K,C) */
    if (K == 0) {
        memset(out, 0, B * P * C * sizeof(*out));
        return;
    }
    gemm_f32(CblasNoTrans, CblasTrans,
             blas_int(B * P), blas_int(C), blas_int(K),
             1.0f, patches, blas_int(K), w, blas_int(K),
             0.0f, out, blas_int(C));
}

/*
 * dpixels (B,CH,H,W) += col2im(dout (B*P,C) @ w (C,K)), through
 * dpatches_scratch (B*P,K) (overwritten; may be NULL when dpixels is);
 * dw (C,K) += dout^T (C,B*P) @ patches (B*P,K).
 */
void patch_embed_backward(float *dpixels, float *dw, float *dpatches_scratch,
                          const float *dout, const float *patches, const float *w,
                          size_t B, size_t CH, size_t H, size_t W, size_t ps, size_t C)
{
    size_t GH, GW, P, K;

    assert(ps > 0);
    GH = H / ps;
    GW = W / ps;
    P = GH * GW;
    K = CH * ps * ps;
    if (B * P == 0 || C == 0 || K == 0)
        return;

    /* in the forward pass out = patches @ w^T, a linear layer without bias
     * on the im2col rows, so (see linear_backward)
     *   dpatches = dout @ w   and   dw += dout^T @ patches;
     * and patches was a gather of pixels in which every pixel inside the
     * grid appears exactly once (stride = kernel), so dpixels is the
     * matching scatter (col2im) of dpatches, with no overlaps to sum. */
    if (dw)
        gemm_f32(CblasTrans, CblasNoTrans,
                 blas_int(C), blas_int(K), blas_int(B * P),
                 1.0f, dout, blas_int(C), patches, blas_int(K),
                 1.0f, dw, blas_int(K));
    if (dpixels) {
        assert(dpatches_scratch != NULL);
        gemm_f32(CblasNoTrans, CblasNoTrans,
                 blas_int(B * P), blas_int(K), blas_int(C),
                 1.0f, dout, blas_int(C), w, blas_int(K),
                 0.0f, dpatches_scratch, blas_int(K));
        /* col2im: each patch owns a disjoint block of pixels */
        PARALLEL_FOR(B * P * K)
        for (size_t bp = 0; bp < B * P; bp++) {
            size_t b = bp / P, p = bp % P, gy = p / GW, gx = p % GW;
            const float *src = dpatches_scratch + bp * K;

            for (size_t c = 0; c < CH; c++) {
                for (size_t kh = 0; kh < ps; kh++) {
                    float *dst = dpixels + ((b * CH + c) * H + gy * ps + kh) * W + gx * ps;
                    const float *row = src + (c * ps + kh) * ps;

                    for (size_t kw = 0; kw < ps; kw++)
                        dst[kw] += row[kw];
                }
            }
        }
    }
}

/* ======================================================================== */
/* class token + position embedding                                          */
/* ======================================================================== */

/*
 * out (B,P+1,C): out[b,0] = cls (C) + pos[0];
 *                out[b,1+p] = patch_out (B,P,C)[b,p] + pos (P+1,C)[1+p]
 */
void class_embed_forward(float *out, const float *patch_out, const float *cls, const float *pos,
                         size_t B, size_t P, size_t C)
{
    size_t T = P + 1;

    PARALLEL_FOR(B * T * C)
    for (size_t bt = 0; bt < B * T; bt++) {
        size_t b = bt / T, t = bt % T;
        const float *src = t == 0 ? cls : patch_out + (b * P + t - 1) * C;
        const float *pe = pos + t * C;
        float *y = out + bt * C;

        for (size_t c = 0; c < C; c++)
            y[c] = src[c] + pe[c];
    }
}

/* dpatch_out (B,P,C) += dout rows 1..P; dcls (C) += sum_b dout[b,0];
 * dpos (P+1,C) += sum_b dout[b] */
void class_embed_backward(float *dpatch_out, float *dcls, float *dpos, const float *dout,
                          size_t B, size_t P, size_t C)
{
    /* in the forward pass every output row is a sum of two rows, so each
     * receives the row's gradient: the class token from row 0 of every
     * image, the patch rows from rows 1..P, the positions from row t of
     * every image. */
    size_t T = P + 1;

    if (dpatch_out) {
        PARALLEL_FOR(B * P * C)
        for (size_t bp = 0; bp < B * P; bp++) {
            size_t b = bp / P, p = bp % P;
            const float *dy = dout + (b * T + 1 + p) * C;
            float *g = dpatch_out + bp * C;

            for (size_t c = 0; c < C; c++)
                g[c] += dy[c];
        }
    }
    if (dcls) {
        for (size_t c = 0; c < C; c++) {
            float s = 0.0f;

            for (size_t b = 0; b < B; b++)
                s += dout[b * T * C + c];
            dcls[c] += s;
        }
    }
    if (dpos) {
        /* threads own position rows */
        PARALLEL_FOR(B * T * C)
        for (size_t t = 0; t < T; t++) {
            for (size_t c = 0; c < C; c++) {
                float s = 0.0f;

                for (size_t b = 0; b < B; b++)
                    s += dout[(b * T + t) * C + c];
                dpos[t * C + c] += s;
            }
        }
    }
}

/* ======================================================================== */
/* row pooling                                                               */
/* ======================================================================== */

/* out (B,C) = inp (B,T,C)[b, idx[b]]; idx (B) or NULL for row 0 */
void pool_rows_forward(float *out, const float *inp, const size_t *idx,
                       size_t B, size_t T, size_t C)
{
    for (size_t b = 0; b < B; b++) {
        size_t t = idx ? idx[b] : 0;

        assert(t < T);
        memcpy(out + b * C, inp + (b * T + t) * C, C * sizeof(*out));
    }
}

/* dinp (B,T,C) [b, idx[b]] += dout (B,C) */
void pool_rows_backward(float *dinp, const float *dout, const size_t *idx,
                        size_t B, size_t T, size_t C)
{
    /* in the forward pass out[b] was a copy of one row of inp[b]; only that
     * row receives gradient, the others get nothing */
    if (!dinp)
        return;
    for (size_t b = 0; b < B; b++) {
        size_t t = idx ? idx[b] : 0;
        float *g = dinp + (b * T + t) * C;
        const float *dy = dout + b * C;

        assert(t < T);
        for (size_t c = 0; c < C; c++)
            g[c] += dy[c];
    }
}
