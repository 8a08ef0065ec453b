/*
 * fuzz_idx.c: libFuzzer entry point for the IDX reader (datasets/idx.c).
 *
 * Not built by make. The first input byte picks labels (odd: 1 dimension) or
 * images (even: 3 dimensions); the rest is written to a temporary file (the
 * reader goes through zlib's gzopen, so plain and gzip inputs are both
 * exercised) and parsed. Any status is fine; a crash, sanitizer report, leak
 * or hang is a bug.
 *
 * Build and run (clang with libFuzzer, from the repository root):
 *     clang -std=c11 -D_DEFAULT_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -I. \
 *         tests/fuzz/fuzz_idx.c datasets/[a-z]*.c core/status.c core/alloc.c core/rng.c core/timer.c \
 *         $(pkg-config --cflags --libs zlib libpng libjpeg) -lm -o build/fuzz_idx
 *     mkdir -p build/fuzz_corpus && build/fuzz_idx -max_len=4096 build/fuzz_corpus
 * Seed the corpus with small IDX files, e.g. the first bytes of
 * /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz.
 *
 * Without libFuzzer (gcc), -DFUZZ_MAIN builds a driver that runs each file
 * named on the command line once:
 *     gcc -std=c11 -D_DEFAULT_SOURCE -DFUZZ_MAIN -g -fsanitize=address,undefined -I. \
 *         tests/fuzz/fuzz_idx.c build/san/librandlora.a \
 *         $(pkg-config --libs zlib libpng libjpeg) -lm -o build/fuzz_idx_main
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "datasets/dataset.h"
#include "tests/fuzz/fuzz_files.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char path[64];

    if (size < 1)
        return 0;
    if (!path[0])
        snprintf(path, sizeof(path), "/tmp/fuzz_idx_%ld", (long)getpid());
    if (fuzz_write_file(path, data + 1, size - 1) != 0)
        return 0;
    (void)idx_read_file(path, (data[0] & 1) ? 1 : 3);
    unlink(path);
    return 0;
}

#include "tests/fuzz/fuzz_replay.h"
