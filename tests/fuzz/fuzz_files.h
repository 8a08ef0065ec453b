/*
 * fuzz_files.h: for harnesses whose reader takes a path: write the fuzz
 * input (or a part of it) to a file. Include it once, in the harness.
 */
#ifndef RANDLORA_TESTS_FUZZ_FILES_H
#define RANDLORA_TESTS_FUZZ_FILES_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* path := p[0..n); 0, or -1 when the file cannot be written */
static int fuzz_write_file(const char *path, const uint8_t *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    int ok;

    if (!f)
        return -1;
    ok = n == 0 || fwrite(p, 1, n, f) == n;
    return fclose(f) == 0 && ok ? 0 : -1;
}

#endif /* RANDLORA_TESTS_FUZZ_FILES_H */
