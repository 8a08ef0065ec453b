/*
 * image.h: PNG and JPEG decoding (libpng, libjpeg-turbo) into uint8 HWC.
 *
 * Input is treated as hostile: both decoders run under setjmp-based error
 * handlers (libjpeg never calls exit()), a truncated or corrupt file gives
 * RL_ERR_FORMAT with "NAME: PNG: <libpng's message>" or "NAME: JPEG: <...>",
 * and images of more than IMAGE_MAX_PIXELS are refused from their header,
 * before any pixel is allocated or decoded:
 *   "NAME: PNG: W x H = N pixels, more than the limit of 67108864 pixels for
 *    an image file (downscale it)".
 *
 * Output: 1 channel for grayscale files, 3 (RGB) otherwise. 16-bit PNG keeps
 * the high byte, palettes are expanded, alpha is dropped (as Pillow's
 * convert("RGB") does), interlaced PNG is supported. CMYK JPEG is refused.
 * JPEG decoding uses libjpeg's defaults (islow DCT, fancy upsampling), which
 * is what Pillow does too. JPEG "corrupt data" warnings are tolerated as Pillow
 * tolerates them; a premature end of the data is an error.
 *
 *     struct ds_image img = {0};
 *     rc = image_read_file("cat.jpg", &img);
 */
#ifndef RANDLORA_DATASETS_IMAGE_H
#define RANDLORA_DATASETS_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "datasets/dataset.h"

/* The most pixels (width x height) a PNG or JPEG file may have: 2^26, e.g.
 * 8192 x 8192, 192 MiB as RGB, a few seconds to decode. Training and
 * evaluation images are resized to the model's 224 or so; a larger image
 * costs memory (one per loader worker) and time for nothing, and a small
 * hostile file can claim 2^28 pixels (DS_MAX_PIXELS). */
#define IMAGE_MAX_PIXELS ((size_t)1 << 26)

/* Decode a PNG or JPEG held in memory (the format is told by its magic
 * bytes); `name` is used in messages. */
int image_decode(const uint8_t *data, size_t n, const char *name, struct ds_image *img);

/* Read and decode a file (at most 1 GiB). */
int image_read_file(const char *path, struct ds_image *img);

/* Make a 1-channel image 3-channel by replication (in place; no-op for RGB). */
int image_gray_to_rgb(struct ds_image *img);

#endif /* RANDLORA_DATASETS_IMAGE_H */
