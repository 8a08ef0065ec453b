/*
 * fuzz_image.c: libFuzzer entry point for the PNG and JPEG decoders
 * (datasets/image.c) and the transform that follows them in the loader.
 *
 * Byte 0 picks the path, the rest is the image file:
 *     bit 0   0: decode from memory (image_decode); 1: write a temporary
 *             file and read it (image_read_file), as the folder reader does
 *     bit 1   after a successful decode, make the image RGB and run the CLIP
 *             transform to (bits 2-5) + 1 pixels a side (bit 6: with
 *             augmentation), for images of at most 2^20 pixels
 * Any status is fine; a crash, sanitizer report, leak or hang is a bug. A
 * decoded image must have the size and channel count the decoder reports.
 *
 * Built and run by `make fuzz` (build/fuzz/fuzz_image, seeds in
 * tests/fuzz/corpus/image/); `make check` replays the seeds through the same
 * code built with $(CC) and tests/fuzz/fuzz_replay.h. One harness alone:
 *     make build/fuzz/fuzz_image
 *     build/fuzz/fuzz_image -max_total_time=60 build/fuzz/corpus/image tests/fuzz/corpus/image
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/rng.h"
#include "datasets/dataset.h"
#include "datasets/image.h"
#include "datasets/transforms.h"
#include "tests/fuzz/fuzz_files.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char path[64];
    struct ds_image img = {0};
    uint8_t mode;
    int rc;

    if (size < 1)
        return 0;
    mode = data[0];
    data++;
    size--;
    if (mode & 1) {
        if (!path[0])
            snprintf(path, sizeof(path), "/tmp/fuzz_image_%ld.img", (long)getpid());
        if (fuzz_write_file(path, data, size) != 0)
            return 0;
        rc = image_read_file(path, &img);
        unlink(path);
    } else {
        rc = image_decode(data, size, "fuzz", &img);
    }
    if (rc == 0) {
        size_t px = (size_t)img.height * (size_t)img.width;

        if ((img.channels != 1 && img.channels != 3) || img.height <= 0 || img.width <= 0 ||
            px * (size_t)img.channels > img.cap)
            abort();
        if ((mode & 2) && px <= ((size_t)1 << 20)) {
            struct transform t;
            struct transform_work w = {0};
            struct rng r;
            float *out;

            transform_init_clip(&t, 1 + ((mode >> 2) & 15));
            t.augment = (mode >> 6) & 1;
            rng_init(&r, mode);
            out = malloc(3 * (size_t)t.size * (size_t)t.size * sizeof(float));
            if (out) {
                if (transform_apply(&t, &img, &r, out, &w) == 0 && image_gray_to_rgb(&img) != 0)
                    abort();
                free(out);
            }
            transform_work_free(&w);
        }
    }
    ds_image_free(&img);
    return 0;
}

#include "tests/fuzz/fuzz_replay.h"
