/*
 * fuzz_cifar.c: libFuzzer entry point for the CIFAR-10/100 binary reader
 * (datasets/cifar.c), driven through dataset_open like a user's spec.
 *
 * Input layout:
 *     byte 0        bits 0-1: reader (0 cifar10, 1 cifar100, 2 cifar100-coarse,
 *                   3 cifar10 with the data split over data_batch_1 and _2);
 *                   bit 2: the test split; bit 3: write a names file
 *     byte 1        length of the names file text that follows (bit 3 only)
 *     the rest      the data file(s)
 * The files go to a private temporary directory, the spec is opened, every
 * item is loaded, and everything is closed again. Any status is fine; a
 * crash, sanitizer report, leak or hang is a bug. Records are 3073 bytes
 * (CIFAR-10) or 3074 (CIFAR-100), so use -max_len of a few records.
 *
 * Built and run by `make fuzz` (build/fuzz/fuzz_cifar, seeds in
 * tests/fuzz/corpus/cifar/); `make check` replays the seeds through the same
 * code built with $(CC) and tests/fuzz/fuzz_replay.h. One harness alone:
 *     make build/fuzz/fuzz_cifar
 *     build/fuzz/fuzz_cifar -max_total_time=60 build/fuzz/corpus/cifar tests/fuzz/corpus/cifar
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

static const char *const all_files[] = { "data_batch_1.bin", "data_batch_2.bin", "test_batch.bin",
                                         "train.bin", "test.bin", "batches.meta.txt",
                                         "fine_label_names.txt", "coarse_label_names.txt" };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const readers[4] = { "cifar10", "cifar100", "cifar100-coarse", "cifar10" };
    static const char *const names[4] = { "batches.meta.txt", "fine_label_names.txt",
                                          "coarse_label_names.txt", "batches.meta.txt" };
    static char dir[64];
    char path[256], spec[256];
    int kind, test, with_names;
    struct dataset ds;

    if (size < 1)
        return 0;
    if (!dir[0]) {
        snprintf(dir, sizeof(dir), "/tmp/fuzz_cifar_%ld", (long)getpid());
        mkdir(dir, 0700);
    }
    kind = data[0] & 3;
    test = (data[0] >> 2) & 1;
    with_names = (data[0] >> 3) & 1;
    data++;
    size--;
    if (with_names) {
        size_t n = size ? data[0] : 0;

        if (size)
            data++, size--;
        if (n > size)
            n = size;
        snprintf(path, sizeof(path), "%s/%s", dir, names[kind]);
        (void)fuzz_write_file(path, data, n);
        data += n;
        size -= n;
    }
    if (kind == 3 && !test) {
        size_t half = size / 2;

        snprintf(path, sizeof(path), "%s/data_batch_1.bin", dir);
        (void)fuzz_write_file(path, data, half);
        snprintf(path, sizeof(path), "%s/data_batch_2.bin", dir);
        (void)fuzz_write_file(path, data + half, size - half);
    } else {
        snprintf(path, sizeof(path), "%s/%s", dir,
                 kind == 0 || kind == 3 ? (test ? "test_batch.bin" : "data_batch_1.bin")
                                        : (test ? "test.bin" : "train.bin"));
        (void)fuzz_write_file(path, data, size);
    }
    snprintf(spec, sizeof(spec), "%s:%s%s", readers[kind], dir, test ? ":test" : "");
    if (dataset_open(&ds, spec) == 0) {
        struct ds_image img = {0};
        int label;

        for (size_t i = 0; i < ds.n; i++) {
            if (dataset_load(&ds, i, &img, &label) != 0 || label < 0 || label >= ds.n_classes ||
                dataset_label(&ds, i) != label)
                abort();   /* a reader that opened must load every item */
        }
        for (int c = 0; c < ds.n_classes; c++)
            if (!ds.class_names[c])
                abort();
        ds_image_free(&img);
        dataset_close(&ds);
    }
    for (size_t i = 0; i < sizeof(all_files) / sizeof(all_files[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, all_files[i]);
        unlink(path);
    }
    return 0;
}

#include "tests/fuzz/fuzz_replay.h"
