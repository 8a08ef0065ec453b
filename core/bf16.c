/*
 * bf16.c: the array conversions of bf16.h (the scalar ones are inline there).
 */
#include "core/bf16.h"
#include "core/parallel.h"

void bf16_from_f32_array(bf16 *dst, const float *src, size_t n)
{
    PARALLEL_FOR_SIMD(n)
    for (size_t i = 0; i < n; i++)
        dst[i] = bf16_from_f32(src[i]);
}

void bf16_to_f32_array(float *dst, const bf16 *src, size_t n)
{
    PARALLEL_FOR_SIMD(n)
    for (size_t i = 0; i < n; i++)
        dst[i] = bf16_to_f32(src[i]);
}

void bf16_split_array(bf16 *hi, bf16 *lo, const float *src, size_t n)
{
    PARALLEL_FOR_SIMD(n)
    for (size_t i = 0; i < n; i++) {
        const bf16 h = bf16_from_f32(src[i]);

        hi[i] = h;
        lo[i] = bf16_from_f32(src[i] - bf16_to_f32(h));
    }
}
