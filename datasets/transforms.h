/*
 * transforms.h: dataset images (uint8 HWC, 1 or 3 channels) to model inputs
 * (float CHW RGB, normalised), the way CLIP's preprocessing does it.
 *
 * Evaluation:  resize the shortest side to `size` with Pillow's antialiased
 *              bicubic (bit-exact port of Pillow's Resample.c 8-bit path),
 *              long side int(size * long / short); center crop size x size
 *              (torchvision or HF rounding); gray -> RGB by replication;
 *              /255; (x - mean) / std per channel; CHW.
 * Training augmentation (optional): torchvision RandomResizedCrop (area
 *              scale and aspect-ratio ranges, 10 tries then the central
 *              fallback) resized with the same bicubic, then a horizontal flip
 *              with probability flip_p, all drawn from a struct rng.
 *
 *     struct transform t;
 *     struct transform_work w = {0};
 *     float *x = xmalloc_array(3 * 224 * 224, sizeof(float));
 *     transform_init_clip(&t, 224);
 *     rc = transform_apply(&t, &img, NULL, x, &w);      // rng only when t.augment
 *     transform_work_free(&w);
 *
 * Differences from the Python pipelines, documented: palette and alpha images
 * do not occur here (the decoders give gray or RGB), so the OpenAI / HF order
 * of convert("RGB") does not matter; gray images are resized as one channel and
 * replicated afterwards, which gives the same pixels as converting first.
 */
#ifndef RANDLORA_DATASETS_TRANSFORMS_H
#define RANDLORA_DATASETS_TRANSFORMS_H

#include "core/rng.h"
#include "datasets/dataset.h"

enum crop_round {
    CROP_ROUND_TORCHVISION = 0,   /* top = round((H - size) / 2), half to even */
    CROP_ROUND_HF          = 1,   /* top = (H - size) // 2                     */
};

/* OpenAI CLIP normalisation constants */
extern const float CLIP_MEAN[3];
extern const float CLIP_STD[3];

struct transform {
    int             size;          /* output side, e.g. 224                   */
    int             resize;        /* evaluation: shortest side before the
                                      center crop (DINOv2: 256); 0: size     */
    enum crop_round crop_round;
    float           mean[3];
    float           std[3];
    int             augment;       /* 0: resize + center crop; 1: random resized crop + flip */
    float           scale_lo, scale_hi;   /* crop area fraction, (0.08, 1)   */
    float           ratio_lo, ratio_hi;   /* crop aspect ratio, (3/4, 4/3)   */
    float           flip_p;               /* horizontal flip probability, 0.5 */
};

/* scratch images reused between calls; start from {0} */
struct transform_work {
    struct ds_image a, b;
};

/* CLIP's evaluation transform at `size`, torchvision crop rounding, and the
 * CLIP-LoRA augmentation parameters (used only if augment is set). */
void transform_init_clip(struct transform *t, int size);

/* in -> out[3 * size * size] (float CHW). r is required when t->augment. */
int  transform_apply(const struct transform *t, const struct ds_image *in, struct rng *r,
                     float *out, struct transform_work *work);
void transform_work_free(struct transform_work *work);

/* Pillow Image.resize((out_w, out_h), Image.BICUBIC) of src into dst, bit-exact
 * for 8-bit L and RGB. */
int  image_resize_bicubic(const struct ds_image *src, int out_h, int out_w, struct ds_image *dst);

/* Size after resizing the shortest side to `size` (long side truncated). */
void image_shortest_side(int h, int w, int size, int *out_h, int *out_w);

/* Top/left offset of a center crop of `crop` out of `len` pixels. Negative
 * when crop > len (the crop then pads with zeros, as torchvision does). */
int  image_center_offset(int len, int crop, enum crop_round rule);

/* dst = the crop_h x crop_w window of src at (top, left); pixels outside src are 0. */
int  image_crop(const struct ds_image *src, int top, int left, int crop_h, int crop_w,
                struct ds_image *dst);

/* Mirror left-right in place. */
void image_flip_h(struct ds_image *img);

/* uint8 HWC (1 or 3 channels) -> float CHW with 3 channels: v / 255, then
 * (v - mean[c]) / std[c]; a gray image is replicated to the three channels. */
void image_to_float_chw(const struct ds_image *img, const float mean[3], const float std[3],
                        float *out);

#endif /* RANDLORA_DATASETS_TRANSFORMS_H */
