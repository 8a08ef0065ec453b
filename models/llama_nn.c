/*
 * llama_nn.c: RMSNorm, rotary position embeddings and SwiGLU, forward and
 * backward (llama_nn.h). Elementwise or per-row loops under OpenMP; no GEMM.
 */
#include "models/llama_nn.h"

#include <math.h>

#include "core/parallel.h"
#include "core/status.h"
#include "models/exp_vec.h"

/* ------------------------------------------------------------------------ */
/* RMSNorm                                                                   */

void rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w,
                     size_t N, size_t C, float eps)
{
    RL_ASSERT(C > 0);
    PARALLEL_FOR(N * C)
    for (size_t n = 0; n < N; n++) {
        const float *x = inp + n * C;
        float *y = out + n * C;
        double ss = 0.0;
        float r;

        for (size_t c = 0; c < C; c++)
            ss += (double)x[c] * (double)x[c];
        /* HF: rsqrt(mean(x^2) + eps) on float32 values */
        r = (float)(1.0 / sqrt((double)((float)(ss / (double)C) + eps)));
        rstd[n] = r;
        for (size_t c = 0; c < C; c++)
            y[c] = w[c] * (x[c] * r);
    }
}

/*
 * y_j = w_j x_j r,  r = (sum_i x_i^2 / C + eps)^(-1/2),  dr/dx_j = -r^3 x_j / C:
 *   dx_j = r w_j dy_j - x_j (r^3 / C) sum_i w_i dy_i x_i
 *   dw_j = sum_n dy_j x_j r
 */
void rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp,
                      const float *w, const float *rstd, size_t N, size_t C)
{
    if (dinp) {
        PARALLEL_FOR(N * C)
        for (size_t n = 0; n < N; n++) {
            const float *x = inp + n * C, *dy = dout + n * C;
            float *dx = dinp + n * C;
            const float r = rstd[n];
            double dot = 0.0;
            float k;

            for (size_t c = 0; c < C; c++)
                dot += (double)w[c] * (double)dy[c] * (double)x[c];
            k = (float)(dot * (double)r * (double)r * (double)r / (double)C);
            for (size_t c = 0; c < C; c++)
                dx[c] += r * w[c] * dy[c] - x[c] * k;
        }
    }
    if (dw) {
        /* column sums: each thread owns a block of columns, rows in order */
        PARALLEL_FOR(N * C)
        for (size_t c = 0; c < C; c++) {
            double s = 0.0;

            for (size_t n = 0; n < N; n++)
                s += (double)dout[n * C + c] * (double)inp[n * C + c] * (double)rstd[n];
            dw[c] += (float)s;
        }
    }
}

/* ------------------------------------------------------------------------ */
/* rotary embeddings                                                         */

void rope_table(float *cos_t, float *sin_t, const float *inv_freq, size_t pos0, size_t T,
                size_t hs)
{
    const size_t half = hs / 2;

    for (size_t t = 0; t < T; t++)
        for (size_t i = 0; i < half; i++) {
            const float ang = (float)(pos0 + t) * inv_freq[i];

            cos_t[t * half + i] = (float)cos((double)ang);
            sin_t[t * half + i] = (float)sin((double)ang);
        }
}

/* rotate every head of every row by +angle (sign 1) or -angle (sign -1) */
static void rope_apply(float *x, const float *cos_t, const float *sin_t, size_t B, size_t T,
                       size_t H, size_t hs, float sign)
{
    const size_t half = hs / 2, row = H * hs;

    RL_ASSERT(hs % 2 == 0 && hs > 0);
    PARALLEL_FOR(B * T * row)
    for (size_t bt = 0; bt < B * T; bt++) {
        const float *c = cos_t + (bt % T) * half, *s = sin_t + (bt % T) * half;

        for (size_t h = 0; h < H; h++) {
            float *x1 = x + bt * row + h * hs, *x2 = x1 + half;

            for (size_t i = 0; i < half; i++) {
                const float a = x1[i], b = x2[i], si = sign * s[i];

                x1[i] = a * c[i] - b * si;
                x2[i] = b * c[i] + a * si;
            }
        }
    }
}

void rope_forward(float *x, const float *cos_t, const float *sin_t, size_t B, size_t T,
                  size_t H, size_t hs)
{
    rope_apply(x, cos_t, sin_t, B, T, H, hs, 1.0f);
}

/* out = R x with R orthogonal (a rotation per pair (i, i + hs/2)), so
 * dx = R^T dout: the rotation by -angle */
void rope_backward(float *dx, const float *cos_t, const float *sin_t, size_t B, size_t T,
                   size_t H, size_t hs)
{
    rope_apply(dx, cos_t, sin_t, B, T, H, hs, -1.0f);
}

/* ------------------------------------------------------------------------ */
/* SwiGLU                                                                    */

void swiglu_forward(float *out, const float *gate, const float *up, size_t n)
{
    PARALLEL_FOR_SIMD(n)
    for (size_t i = 0; i < n; i++) {
        const float g = gate[i];

        out[i] = g / (1.0f + exp_vec(-g)) * up[i];
    }
}

/* silu(g) = g s, s = sigmoid(g); silu'(g) = s (1 + g (1 - s)) */
void swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate,
                     const float *up, size_t n)
{
    PARALLEL_FOR_SIMD(n)
    for (size_t i = 0; i < n; i++) {
        const float g = gate[i], s = 1.0f / (1.0f + exp_vec(-g));

        if (dgate)
            dgate[i] += dout[i] * up[i] * s * (1.0f + g * (1.0f - s));
        if (dup)
            dup[i] += dout[i] * g * s;
    }
}
