/*
 * fuzz_zhou.c: libFuzzer entry point for the published split files
 * (datasets/zhou.c, zhou:FILE.json): the input is the file's text.
 *
 * Each split ("train", "val", "test") is parsed from the bytes as they are
 * (zhou_parse_text), then the input is written to a private temporary
 * directory and opened through dataset_open like a user's spec (its images
 * do not exist, so an open stops at the image root; one that opens must
 * have labels in range and every class named). Any status is fine; a
 * crash, sanitizer report, leak or hang is a bug.
 *
 * Built and run by `make fuzz` (build/fuzz/fuzz_zhou, seeds in
 * tests/fuzz/corpus/zhou/); `make check` replays the seeds through the same
 * code built with $(CC) and tests/fuzz/fuzz_replay.h.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "datasets/dataset.h"
#include "tests/fuzz/fuzz_files.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const splits[3] = { "", ":val", ":test" };
    static const enum ds_split kinds[3] = { DS_TRAIN, DS_VAL, DS_TEST };
    static char dir[64];
    char path[128], spec[160];

    for (int k = 0; k < 3; k++) {
        size_t n = 0;
        int c = 0;

        if (zhou_parse_text((const char *)data, size, "fuzz", kinds[k], &n, &c) == 0 &&
            (n == 0 || c <= 0))
            abort();   /* a parsed split has items and classes */
    }
    if (!dir[0]) {
        snprintf(dir, sizeof(dir), "/tmp/fuzz_zhou_%ld", (long)getpid());
        mkdir(dir, 0700);
    }
    snprintf(path, sizeof(path), "%s/split_zhou_F.json", dir);
    if (fuzz_write_file(path, data, size))
        return 0;
    for (int k = 0; k < 3; k++) {
        struct dataset ds;

        snprintf(spec, sizeof(spec), "zhou:%s%s", path, splits[k]);
        if (dataset_open(&ds, spec) == 0) {
            for (size_t i = 0; i < ds.n; i++)
                if (dataset_label(&ds, i) < 0 || dataset_label(&ds, i) >= ds.n_classes)
                    abort();
            for (int c = 0; c < ds.n_classes; c++)
                if (!ds.class_names[c])
                    abort();
            dataset_close(&ds);
        }
    }
    unlink(path);
    return 0;
}

#include "tests/fuzz/fuzz_replay.h"
