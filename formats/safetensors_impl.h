/*
 * safetensors_impl.h: INTERNAL to the safetensors files in models/
 * (safetensors.c, safetensors_read.c, safetensors_write.c): what they share
 * beyond safetensors.h. Not for use anywhere else.
 */
#ifndef RANDLORA_MODELS_SAFETENSORS_IMPL_H
#define RANDLORA_MODELS_SAFETENSORS_IMPL_H

#include <stdbool.h>
#include <stddef.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors*.c assume a little-endian host"
#endif

/* Strict UTF-8 (no overlongs, surrogates or code points past U+10FFFF):
 * header names and metadata read or written must pass it. */
bool st_utf8_valid(const unsigned char *s, size_t n);

#endif /* RANDLORA_MODELS_SAFETENSORS_IMPL_H */
