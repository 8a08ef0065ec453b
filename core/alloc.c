/*
 * alloc.c: checked allocation; aborts with the caller's file:line.
 */
#include "core/alloc.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define RL_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#include <sanitizer/asan_interface.h>
#define RL_ASAN 1
#endif
#endif

static _Noreturn void alloc_fail(size_t n, size_t size, const char *file, int line)
{
    fflush(stdout);
    fprintf(stderr, "randlora: %s:%d: cannot allocate %zu x %zu bytes\n", file, line, n, size);
    abort();
}

void *xmalloc_at(size_t size, const char *file, int line)
{
    void *p = malloc(size ? size : 1);

    if (!p)
        alloc_fail(1, size, file, line);
    return p;
}

void *xcalloc_at(size_t n, size_t size, const char *file, int line)
{
    size_t total;
    void *p;

    if (!size_mul_ok(n, size, &total))
        alloc_fail(n, size, file, line);
    p = calloc(total ? n : 1, total ? size : 1);
    if (!p)
        alloc_fail(n, size, file, line);
    return p;
}

void *xmalloc_array_at(size_t n, size_t size, const char *file, int line)
{
    size_t total;

    if (!size_mul_ok(n, size, &total))
        alloc_fail(n, size, file, line);
    return xmalloc_at(total, file, line);
}

void *xrealloc_array_at(void *p, size_t n, size_t size, const char *file, int line)
{
    size_t total;
    void *q;

    if (!size_mul_ok(n, size, &total))
        alloc_fail(n, size, file, line);
    q = realloc(p, total ? total : 1);
    if (!q)
        alloc_fail(n, size, file, line);
    return q;
}

char *xstrdup_at(const char *s, const char *file, int line)
{
    size_t len = strlen(s) + 1;
    char *p = xmalloc_at(len, file, line);

    memcpy(p, s, len);
    return p;
}

void *xcalloc_aligned_at(size_t n, size_t size, const char *file, int line)
{
    size_t total, rounded;
    void *p;

    if (!size_mul_ok(n, size, &total) || !size_add_ok(total, 63, &rounded))
        alloc_fail(n, size, file, line);
    rounded &= ~(size_t)63;
    p = aligned_alloc(64, rounded ? rounded : 64);
    if (!p)
        alloc_fail(n, size, file, line);
    memset(p, 0, rounded ? rounded : 64);
    return p;
}

size_t mem_release_pages(void *p, size_t bytes)
{
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    const uintptr_t lo = ((uintptr_t)p + page - 1) / page * page;
    const uintptr_t hi = ((uintptr_t)p + bytes) / page * page;
    size_t released = 0;

    if (hi > lo && madvise((void *)lo, hi - lo, MADV_DONTNEED) == 0)
        released = hi - lo;
#ifdef RL_ASAN
    ASAN_POISON_MEMORY_REGION(p, bytes);
#endif
    return released;
}

void mem_unpoison(void *p, size_t bytes)
{
#ifdef RL_ASAN
    ASAN_UNPOISON_MEMORY_REGION(p, bytes);
#else
    (void)p;
    (void)bytes;
#endif
}
