/*
 * utf8.h: strict UTF-8 validation (no overlong forms, no surrogates, no code
 * points past U+10FFFF), for text that ends up in files other programs read
 * as UTF-8: safetensors headers, experiment files (stored in every run file
 * as an HDF5 UTF-8 string).
 *
 *     size_t bad = utf8_invalid_at((const unsigned char *)s, n);
 *     if (bad < n) ... byte s[bad] starts the first invalid sequence ...
 */
#ifndef RANDLORA_CORE_UTF8_H
#define RANDLORA_CORE_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* Offset of the first byte that does not start a valid UTF-8 sequence of
 * s[0..n), or n when all of it is valid. */
size_t utf8_invalid_at(const unsigned char *s, size_t n);

/* utf8_invalid_at(s, n) == n */
bool utf8_valid(const unsigned char *s, size_t n);

#endif /* RANDLORA_CORE_UTF8_H */
