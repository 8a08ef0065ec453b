/*
 * exp_vec.h: expf without a call, so that loops over it vectorize.
 *
 * libm's expf is a function call per element, which keeps GCC from
 * vectorizing the activation and softmax loops (without -ffast-math, which
 * this project never uses). exp_vec is Cephes' single-precision expf:
 * x = n ln2 + r with |r| <= ln2/2 (ln2 split in two for an exact product),
 * a degree-7 polynomial for e^r, then the exponent bits of 2^n. Branch-free
 * (selects only), so `for (i...) y[i] = exp_vec(x[i])` becomes AVX code.
 *
 * Accuracy (tests/check_nn.c, a sweep of [-90, 90]): within 2 ulp of
 * double-precision exp over [-86.6, 88.7228]. Outside it: +inf above that
 * (as expf), 0 below -86.6 where expf returns subnormals < 2.4e-38 (none
 * of the callers can tell: they add the result to 1 or scale by it), NaN
 * for NaN.
 */
#ifndef RANDLORA_MODELS_EXP_VEC_H
#define RANDLORA_MODELS_EXP_VEC_H

#include <math.h>
#include <stdint.h>
#include <string.h>

static inline float exp_vec(float x)
{
    const float hi = 0x1.62e42ep+6f;        /* 88.7228317: the largest x whose
                                               expf is finite */
    const float lo = -86.6f;                /* 2^n stays a normal float     */
    float xc, n, r, r2, p, scale, y;
    uint32_t bits;

    xc = x == x ? x : 0.0f;
    xc = xc < lo ? lo : xc;
    xc = xc > hi ? hi : xc;
    /* n = round(x / ln2), to nearest even by adding and removing 1.5 * 2^23
     * (exact for |x / ln2| < 2^22; floorf would not vectorize without
     * -fno-trapping-math) */
    n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    r = xc - n * 0.693359375f;                              /* ln2, high part */
    r = r - n * -2.12194440e-4f;                            /* ln2, low part  */
    r2 = r * r;
    p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r2 + r + 1.0f;
    /* 2^(n-1) * 2: n reaches 128 at the top of the range, whose 2^n would
     * not be a float; n >= -125 at the bottom keeps 2^(n-1) normal */
    bits = (uint32_t)((int32_t)n + 126) << 23;
    memcpy(&scale, &bits, sizeof(scale));
    y = p * scale * 2.0f;
    y = x < lo ? 0.0f : y;
    y = x > hi ? INFINITY : y;
    return x == x ? y : x;
}

#endif /* RANDLORA_MODELS_EXP_VEC_H */
