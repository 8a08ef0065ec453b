/*
 * fuzz_idx.c: libFuzzer entry point for the IDX reader (datasets/idx.c).
 *
 * The first input byte picks labels (odd: 1 dimension) or
 * images (even: 3 dimensions); the rest is written to a temporary file (the
 * reader goes through zlib's gzopen, so plain and gzip inputs are both
 * exercised) and parsed. Any status is fine; a crash, sanitizer report, leak
 * or hang is a bug.
 *
 * Built and run by `make fuzz` (build/fuzz/fuzz_idx, seeds in
 * tests/fuzz/corpus/idx/); `make check` replays the seeds through the same
 * code built with $(CC) and tests/fuzz/fuzz_replay.h. One harness alone:
 *     make build/fuzz/fuzz_idx
 *     build/fuzz/fuzz_idx -max_total_time=60 build/fuzz/corpus/idx tests/fuzz/corpus/idx
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
