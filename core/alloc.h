/*
 * alloc.h: checked allocation.
 *
 * The model, adapter and optimizer code allocates through these: a size that
 * overflows or memory that cannot be had is not a recoverable condition for
 * them, so they abort with the request and the caller's file:line, which is
 * what a user needs to see. Readers of untrusted files check their sizes
 * before allocating (size_mul_ok) and return RL_ERR_FORMAT instead.
 *
 *     float *w = xmalloc_array(n_out * n_in, sizeof(*w));  // abort on overflow / OOM
 *     ...
 *     free(w);
 */
#ifndef RANDLORA_CORE_ALLOC_H
#define RANDLORA_CORE_ALLOC_H

#include <stdbool.h>
#include <stddef.h>

/* a * b without overflow: true and *out set, or false. */
static inline bool size_mul_ok(size_t a, size_t b, size_t *out)
{
    return !__builtin_mul_overflow(a, b, out);
}

/* a + b without overflow: true and *out set, or false. */
static inline bool size_add_ok(size_t a, size_t b, size_t *out)
{
    return !__builtin_add_overflow(a, b, out);
}

void *xmalloc_at(size_t size, const char *file, int line);
void *xcalloc_at(size_t n, size_t size, const char *file, int line);
void *xmalloc_array_at(size_t n, size_t size, const char *file, int line);
void *xrealloc_array_at(void *p, size_t n, size_t size, const char *file, int line);
char *xstrdup_at(const char *s, const char *file, int line);

/* 64-byte aligned, zeroed block of n * size bytes; release with free(). */
void *xcalloc_aligned_at(size_t n, size_t size, const char *file, int line);

/* Memory a caller no longer needs inside a live block (models/clip_precision.c:
 * the fp32 linear weights under train.precision = bf16): the whole pages in
 * [p, p + bytes) are given back to the system (madvise MADV_DONTNEED: the
 * resident set drops; the block stays allocated and a later touch would read
 * zeros), and under AddressSanitizer the whole range is poisoned, so a read
 * of it is reported. Returns the bytes given back (the range's edges share
 * pages with their neighbours and stay). mem_unpoison undoes the poisoning;
 * call it on the block before it is freed. */
size_t mem_release_pages(void *p, size_t bytes);
void mem_unpoison(void *p, size_t bytes);

#define xmalloc(size)              xmalloc_at((size), __FILE__, __LINE__)
#define xcalloc(n, size)           xcalloc_at((n), (size), __FILE__, __LINE__)
#define xmalloc_array(n, size)     xmalloc_array_at((n), (size), __FILE__, __LINE__)
#define xrealloc_array(p, n, size) xrealloc_array_at((p), (n), (size), __FILE__, __LINE__)
#define xstrdup(s)                 xstrdup_at((s), __FILE__, __LINE__)
#define xcalloc_aligned(n, size)   xcalloc_aligned_at((n), (size), __FILE__, __LINE__)

#endif /* RANDLORA_CORE_ALLOC_H */
