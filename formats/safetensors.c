/*
 * safetensors.c: what the safetensors reader and writer share (see
 * safetensors.h for the format): the dtype table (names and sizes), the
 * scalar half / bfloat16 <-> float32 conversions, and the strict UTF-8
 * check. The reader is safetensors_read.c, the writer safetensors_write.c.
 */
#include "formats/safetensors.h"

#include <stdbool.h>
#include <string.h>

#include "core/utf8.h"
#include "formats/safetensors_impl.h"

/* ------------------------------------------------------------------------ */
/* dtypes                                                                    */

static const struct {
    const char *name;
    size_t size;
} dtypes[ST_DTYPE_COUNT] = {
    [ST_BOOL] = {"BOOL", 1},         [ST_U8] = {"U8", 1},
    [ST_I8] = {"I8", 1},             [ST_F8_E5M2] = {"F8_E5M2", 1},
    [ST_F8_E4M3] = {"F8_E4M3", 1},   [ST_I16] = {"I16", 2},
    [ST_U16] = {"U16", 2},           [ST_F16] = {"F16", 2},
    [ST_BF16] = {"BF16", 2},         [ST_I32] = {"I32", 4},
    [ST_U32] = {"U32", 4},           [ST_F32] = {"F32", 4},
    [ST_F64] = {"F64", 8},           [ST_I64] = {"I64", 8},
    [ST_U64] = {"U64", 8},           [ST_F8_E8M0] = {"F8_E8M0", 1},
    [ST_F8_E4M3FNUZ] = {"F8_E4M3FNUZ", 1}, [ST_F8_E5M2FNUZ] = {"F8_E5M2FNUZ", 1},
    [ST_C64] = {"C64", 8},
};

const char *st_dtype_name(enum st_dtype dt)
{
    return (unsigned)dt < ST_DTYPE_COUNT ? dtypes[dt].name : "?";
}

size_t st_dtype_size(enum st_dtype dt)
{
    return (unsigned)dt < ST_DTYPE_COUNT ? dtypes[dt].size : 0;
}

int st_dtype_from_name(const char *s)
{
    for (int i = 0; i < ST_DTYPE_COUNT; i++)
        if (strcmp(s, dtypes[i].name) == 0)
            return i;
    return -1;
}

/* ------------------------------------------------------------------------ */
/* half and bfloat16                                                         */

static inline uint32_t f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

float st_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;

    if (exp == 0) {
        /* zero or subnormal: mant * 2^-24, exact in float */
        float v = (float)mant * 0x1p-24f;
        return u2f(f2u(v) | sign);
    }
    if (exp == 31)                                    /* Inf, NaN (payload kept) */
        return u2f(sign | 0x7f800000u | (mant << 13));
    return u2f(sign | ((exp + 112) << 23) | (mant << 13));
}

uint16_t st_f32_to_f16(float f)
{
    uint32_t x = f2u(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t a = x & 0x7fffffffu;

    if (a > 0x7f800000u)                              /* NaN: quiet, keep top payload */
        return (uint16_t)(sign | 0x7e00 | ((a >> 13) & 0x3ff));
    if (a >= 0x477ff000u)                             /* >= 65520: rounds to Inf */
        return (uint16_t)(sign | 0x7c00);
    if (a < 0x38800000u) {                            /* below 2^-14: subnormal or 0 */
        /* adding 0.5f aligns the half subnormal ulp (2^-24) with the float
         * ulp, so the FPU's round-to-nearest-even does the rounding */
        float v = u2f(a) + 0.5f;
        return (uint16_t)(sign | (uint16_t)(f2u(v) - 0x3f000000u));
    }
    uint32_t odd = (a >> 13) & 1;
    a += ((uint32_t)(15 - 127) << 23) + 0xfffu + odd;
    return (uint16_t)(sign | (uint16_t)(a >> 13));
}

float st_bf16_to_f32(uint16_t h)
{
    return u2f((uint32_t)h << 16);
}

uint16_t st_f32_to_bf16(float f)
{
    uint32_t x = f2u(f);

    if ((x & 0x7fffffffu) > 0x7f800000u)              /* NaN: quiet it */
        return (uint16_t)((x >> 16) | 0x0040);
    x += 0x7fffu + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

/* ------------------------------------------------------------------------ */
/* UTF-8                                                                     */

/* Strict UTF-8 (no overlongs, surrogates or code points past U+10FFFF). */
bool st_utf8_valid(const unsigned char *s, size_t n)
{
    return utf8_valid(s, n);
}
