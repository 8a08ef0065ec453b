/*
 * bf16.h: bfloat16 storage and its conversions to and from fp32.
 *
 * A bf16 value is the upper 16 bits of an IEEE fp32 (sign, 8 exponent bits,
 * 7 stored significand bits: 8 bits of precision), so fp32 -> bf16 is a
 * rounding of the significand and bf16 -> fp32 is exact. Rounding is to
 * nearest, ties to even, so the relative error of one conversion is at most
 * u = 2^-8 (half a unit in the last of 8 significant bits); values beyond
 * the largest bf16 round to +-Inf as IEEE rounding does; Inf stays Inf;
 * NaN stays NaN (made quiet, sign kept), never rounded into Inf. Subnormals
 * are kept (rounded like any other value), not flushed.
 *
 *     uint16_t *wb = xmalloc_array(n, sizeof(*wb));
 *     bf16_from_f32_array(wb, w, n);            // once, e.g. frozen weights
 *     float back = bf16_to_f32(wb[0]);          // exact
 */
#ifndef RANDLORA_CORE_BF16_H
#define RANDLORA_CORE_BF16_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef uint16_t bf16;

/* the relative rounding error bound of one fp32 -> bf16 conversion */
#define BF16_UNIT_ROUNDOFF (1.0 / 256.0)

static inline uint32_t bf16_f32_bits(float x)
{
    uint32_t u;

    memcpy(&u, &x, sizeof(u));
    return u;
}

/* fp32 -> bf16, round to nearest even; NaN kept (quiet). Branch-free, so
 * loops over it vectorize. */
static inline bf16 bf16_from_f32(float x)
{
    uint32_t u = bf16_f32_bits(x);
    uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
    uint32_t quiet_nan = (u >> 16) | 0x0040u;
    int is_nan = (u & 0x7fffffffu) > 0x7f800000u;

    return (bf16)(is_nan ? quiet_nan : rounded);
}

/* bf16 -> fp32, exact */
static inline float bf16_to_f32(bf16 h)
{
    uint32_t u = (uint32_t)h << 16;
    float x;

    memcpy(&x, &u, sizeof(x));
    return x;
}

/* dst[i] = bf16_from_f32(src[i]) for i < n (OpenMP-parallel and vectorized
 * when n is large). dst and src must not overlap. */
void bf16_from_f32_array(bf16 *dst, const float *src, size_t n);

/* dst[i] = bf16_to_f32(src[i]) for i < n; exact. */
void bf16_to_f32_array(float *dst, const bf16 *src, size_t n);

/* The two-term split: hi[i] = bf16_from_f32(src[i]), lo[i] =
 * bf16_from_f32(src[i] - hi[i]) (the difference is exact in fp32), so that
 * hi + lo carries src to about 16 bits: |hi + lo - src| <= 2^-8 |src - hi|
 * <= 2^-16 |src| for normal values (one bf16's rounding: 2^-8 |src|). */
void bf16_split_array(bf16 *hi, bf16 *lo, const float *src, size_t n);

#endif /* RANDLORA_CORE_BF16_H */
