/*
 * fuzz_image.c: libFuzzer entry point for the PNG and JPEG decoders
 * (datasets/image.c) and the transform that follows them in the loader.
 *
 * Not built by make. Byte 0 picks the path, the rest is the image file:
 *     bit 0   0: decode from memory (image_decode); 1: write a temporary
 *             file and read it (image_read_file), as the folder reader does
 *     bit 1   after a successful decode, make the image RGB and run the CLIP
 *             transform to (bits 2-5) + 1 pixels a side (bit 6: with
 *             augmentation), for images of at most 2^20 pixels
 * Any status is fine; a crash, sanitizer report, leak or hang is a bug. A
 * decoded image must have the size and channel count the decoder reports.
 *
 * Build and run (clang with libFuzzer, from the repository root):
 *     clang -std=c11 -D_DEFAULT_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -I. \
 *         tests/fuzz/fuzz_image.c datasets/[a-z]*.c core/status.c core/alloc.c core/rng.c \
 *         core/timer.c $(pkg-config --cflags --libs zlib libpng libjpeg) -lm -lpthread \
 *         -o build/fuzz_image
 *     mkdir -p build/fuzz_image_corpus && build/fuzz_image -max_len=8192 build/fuzz_image_corpus
 * Seed the corpus with small PNG and JPEG files (gray, RGB, palette, alpha,
 * 16-bit, interlaced, progressive), each behind one byte, e.g. 0x02.
 *
 * Without libFuzzer (gcc), -DFUZZ_MAIN builds a driver that runs each file
 * named on the command line once:
 *     gcc -std=c11 -D_DEFAULT_SOURCE -DFUZZ_MAIN -g -fsanitize=address,undefined -I. \
 *         tests/fuzz/fuzz_image.c build/san/librandlora.a \
 *         $(pkg-config --libs zlib libpng libjpeg) -lm -o build/fuzz_image_main
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
