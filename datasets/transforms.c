/*
 * transforms.c: Pillow-exact bicubic resize, crops, flips, normalisation and
 * the CLIP transform (see transforms.h).
 *
 * The resize is a port of Pillow's src/libImaging/Resample.c (8 bits per
 * channel): separable cubic convolution (a = -0.5, support 2) with the support
 * widened by the downscale factor (antialiasing), weights normalised in double
 * and rounded to 22-bit fixed point (half away from zero), accumulators
 * starting at 1 << 21, results clipped to 0..255; horizontal pass first over
 * only the rows the vertical pass reads, stored as uint8, then vertical; a
 * pass is skipped when its dimension is unchanged.
 */
#include "datasets/transforms.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/status.h"

#define PRECISION_BITS (32 - 8 - 2)

const float CLIP_MEAN[3] = { 0.48145466f, 0.4578275f, 0.40821073f };
const float CLIP_STD[3]  = { 0.26862954f, 0.26130258f, 0.27577711f };

void transform_init_clip(struct transform *t, int size)
{
    memset(t, 0, sizeof(*t));
    t->size = size;
    t->crop_round = CROP_ROUND_TORCHVISION;
    memcpy(t->mean, CLIP_MEAN, sizeof(t->mean));
    memcpy(t->std, CLIP_STD, sizeof(t->std));
    t->augment = 0;
    t->scale_lo = 0.08f;
    t->scale_hi = 1.0f;
    t->ratio_lo = 3.0f / 4.0f;
    t->ratio_hi = 4.0f / 3.0f;
    t->flip_p = 0.5f;
}

/* --- Pillow resample ---------------------------------------------------- */

static double bicubic_filter(double x)
{
    const double a = -0.5;

    if (x < 0.0)
        x = -x;
    if (x < 1.0)
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0)
        return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

/* Pillow's precompute_coeffs for box [0, in_size) and bicubic, followed by
 * normalize_coeffs_8bpc. bounds[2*xx] = first source index, bounds[2*xx+1] =
 * count; kk[xx * ksize + j] the fixed-point weights. Returns ksize. */
static int precompute_coeffs(int in_size, int out_size, int **bounds_out, int32_t **kk_out)
{
    const double filter_support = 2.0;
    float in0 = 0.0f, in1 = (float)in_size;
    double scale, filterscale, support, center, ww, ss;
    int ksize, *bounds;
    double *pre;
    int32_t *kk;

    filterscale = scale = (double)(in1 - in0) / out_size;
    if (filterscale < 1.0)
        filterscale = 1.0;
    support = filter_support * filterscale;
    ksize = (int)ceil(support) * 2 + 1;
    pre = xmalloc_array((size_t)out_size * (size_t)ksize, sizeof(*pre));
    bounds = xmalloc_array((size_t)out_size * 2, sizeof(*bounds));
    for (int xx = 0; xx < out_size; xx++) {
        double *k = &pre[(size_t)xx * (size_t)ksize];
        int xmin, xmax, x;

        center = in0 + (xx + 0.5) * scale;
        ww = 0.0;
        ss = 1.0 / filterscale;
        xmin = (int)(center - support + 0.5);
        if (xmin < 0)
            xmin = 0;
        xmax = (int)(center + support + 0.5);
        if (xmax > in_size)
            xmax = in_size;
        xmax -= xmin;
        for (x = 0; x < xmax; x++) {
            double w = bicubic_filter((x + xmin - center + 0.5) * ss);

            k[x] = w;
            ww += w;
        }
        for (x = 0; x < xmax; x++)
            if (ww != 0.0)
                k[x] /= ww;
        for (; x < ksize; x++)
            k[x] = 0;
        bounds[xx * 2 + 0] = xmin;
        bounds[xx * 2 + 1] = xmax;
    }
    kk = xmalloc_array((size_t)out_size * (size_t)ksize, sizeof(*kk));
    for (size_t i = 0; i < (size_t)out_size * (size_t)ksize; i++) {
        if (pre[i] < 0)
            kk[i] = (int32_t)(-0.5 + pre[i] * (1 << PRECISION_BITS));
        else
            kk[i] = (int32_t)(0.5 + pre[i] * (1 << PRECISION_BITS));
    }
    free(pre);
    *bounds_out = bounds;
    *kk_out = kk;
    return ksize;
}

static inline uint8_t clip8(int64_t in)
{
    int64_t v = in >> PRECISION_BITS;

    return v < 0 ? 0 : v > 255 ? 255 : (uint8_t)v;
}

/* rows [y0, y0 + dst->height) of src, resampled horizontally into dst */
static void resample_horizontal(struct ds_image *dst, const struct ds_image *src, int y0,
                                int ksize, const int *bounds, const int32_t *kk)
{
    const int c = src->channels;

    for (int yy = 0; yy < dst->height; yy++) {
        const uint8_t *row = src->data + (size_t)(yy + y0) * (size_t)src->width * (size_t)c;
        uint8_t *out = dst->data + (size_t)yy * (size_t)dst->width * (size_t)c;

        for (int xx = 0; xx < dst->width; xx++) {
            int xmin = bounds[xx * 2], xmax = bounds[xx * 2 + 1];
            const int32_t *k = &kk[(size_t)xx * (size_t)ksize];

            for (int ch = 0; ch < c; ch++) {
                int64_t ss = 1 << (PRECISION_BITS - 1);

                for (int x = 0; x < xmax; x++)
                    ss += (int64_t)row[(size_t)(x + xmin) * (size_t)c + (size_t)ch] * k[x];
                out[(size_t)xx * (size_t)c + (size_t)ch] = clip8(ss);
            }
        }
    }
}

static void resample_vertical(struct ds_image *dst, const struct ds_image *src, int ksize,
                              const int *bounds, const int32_t *kk)
{
    const int c = src->channels;
    const size_t stride = (size_t)src->width * (size_t)c;

    for (int yy = 0; yy < dst->height; yy++) {
        int ymin = bounds[yy * 2], ymax = bounds[yy * 2 + 1];
        const int32_t *k = &kk[(size_t)yy * (size_t)ksize];
        uint8_t *out = dst->data + (size_t)yy * stride;

        for (size_t i = 0; i < stride; i++) {
            int64_t ss = 1 << (PRECISION_BITS - 1);

            for (int y = 0; y < ymax; y++)
                ss += (int64_t)src->data[(size_t)(y + ymin) * stride + i] * k[y];
            out[i] = clip8(ss);
        }
    }
}

int image_resize_bicubic(const struct ds_image *src, int out_h, int out_w, struct ds_image *dst)
{
    int need_h, need_v, ksize_h, ksize_v, *bounds_h, *bounds_v, ybox_first, ybox_last, rc;
    int32_t *kk_h, *kk_v;
    struct ds_image tmp = {0};
    const struct ds_image *cur = src;

    RL_ASSERT(src != dst && src->data);
    if (out_h <= 0 || out_w <= 0)
        return rl_error_set(RL_ERR_ARG, "resize to %d x %d: sizes must be positive", out_h, out_w);
    if ((rc = ds_image_reserve(dst, src->channels, out_h, out_w)) != RL_OK)
        return rc;
    need_h = out_w != src->width;
    need_v = out_h != src->height;
    if (!need_h && !need_v) {
        memcpy(dst->data, src->data, (size_t)out_h * (size_t)out_w * (size_t)src->channels);
        return RL_OK;
    }
    ksize_h = precompute_coeffs(src->width, out_w, &bounds_h, &kk_h);
    ksize_v = precompute_coeffs(src->height, out_h, &bounds_v, &kk_v);
    ybox_first = bounds_v[0];
    ybox_last = bounds_v[out_h * 2 - 2] + bounds_v[out_h * 2 - 1];
    if (need_h) {
        struct ds_image *hdst = need_v ? &tmp : dst;

        for (int i = 0; i < out_h; i++)
            bounds_v[i * 2] -= ybox_first;
        if (need_v && (rc = ds_image_reserve(&tmp, src->channels, ybox_last - ybox_first,
                                             out_w)) != RL_OK)
            goto out;
        hdst->height = need_v ? ybox_last - ybox_first : out_h;
        hdst->width = out_w;
        resample_horizontal(hdst, src, need_v ? ybox_first : 0, ksize_h, bounds_h, kk_h);
        cur = hdst;
    }
    if (need_v) {
        dst->height = out_h;
        dst->width = out_w;
        resample_vertical(dst, cur, ksize_v, bounds_v, kk_v);
    }
    rc = RL_OK;
out:
    free(bounds_h);
    free(kk_h);
    free(bounds_v);
    free(kk_v);
    ds_image_free(&tmp);
    return rc;
}

/* --- geometry ------------------------------------------------------------ */

void image_shortest_side(int h, int w, int size, int *out_h, int *out_w)
{
    int short_side = h < w ? h : w, long_side = h < w ? w : h;
    int new_long = (int)((double)size * (double)long_side / (double)short_side);

    if (w <= h) {
        *out_w = size;
        *out_h = new_long;
    } else {
        *out_h = size;
        *out_w = new_long;
    }
}

int image_center_offset(int len, int crop, enum crop_round rule)
{
    int d = len - crop;

    if (d < 0)   /* torchvision pads (crop - len) // 2 before, the rest after */
        return -((-d) / 2);
    if (rule == CROP_ROUND_HF)
        return d / 2;
    return (int)nearbyint((double)d / 2.0);   /* Python round: half to even */
}

int image_crop(const struct ds_image *src, int top, int left, int crop_h, int crop_w,
               struct ds_image *dst)
{
    const int c = src->channels;
    int rc;

    RL_ASSERT(src != dst);
    if ((rc = ds_image_reserve(dst, c, crop_h, crop_w)) != RL_OK)
        return rc;
    for (int y = 0; y < crop_h; y++) {
        int sy = top + y;
        uint8_t *out = dst->data + (size_t)y * (size_t)crop_w * (size_t)c;

        if (sy < 0 || sy >= src->height) {
            memset(out, 0, (size_t)crop_w * (size_t)c);
            continue;
        }
        for (int x = 0; x < crop_w; x++) {
            int sx = left + x;

            if (sx < 0 || sx >= src->width)
                memset(out + (size_t)x * (size_t)c, 0, (size_t)c);
            else
                memcpy(out + (size_t)x * (size_t)c,
                       src->data + ((size_t)sy * (size_t)src->width + (size_t)sx) * (size_t)c,
                       (size_t)c);
        }
    }
    return RL_OK;
}

void image_flip_h(struct ds_image *img)
{
    const int c = img->channels;

    for (int y = 0; y < img->height; y++) {
        uint8_t *row = img->data + (size_t)y * (size_t)img->width * (size_t)c;

        for (int a = 0, b = img->width - 1; a < b; a++, b--)
            for (int ch = 0; ch < c; ch++) {
                uint8_t t = row[(size_t)a * (size_t)c + (size_t)ch];

                row[(size_t)a * (size_t)c + (size_t)ch] = row[(size_t)b * (size_t)c + (size_t)ch];
                row[(size_t)b * (size_t)c + (size_t)ch] = t;
            }
    }
}

void image_to_float_chw(const struct ds_image *img, const float mean[3], const float std[3],
                        float *out)
{
    const size_t hw = (size_t)img->height * (size_t)img->width;
    const int c = img->channels;

    for (int ch = 0; ch < 3; ch++) {
        const int sc = c == 1 ? 0 : ch;
        float *o = out + (size_t)ch * hw;

        for (size_t i = 0; i < hw; i++) {
            float v = (float)img->data[i * (size_t)c + (size_t)sc] / 255.0f;

            o[i] = (v - mean[ch]) / std[ch];
        }
    }
}

/* --- the transform ---------------------------------------------------------- */

/* torchvision RandomResizedCrop.get_params */
static void random_resized_crop_params(const struct transform *t, int height, int width,
                                       struct rng *r, int *top, int *left, int *h, int *w)
{
    double area = (double)height * (double)width;
    double log_lo = log((double)t->ratio_lo), log_hi = log((double)t->ratio_hi);
    double in_ratio;

    for (int attempt = 0; attempt < 10; attempt++) {
        double target = area * rng_uniform_range(r, t->scale_lo, t->scale_hi);
        double aspect = exp(log_lo + (log_hi - log_lo) * rng_uniform(r));
        int cw = (int)nearbyint(sqrt(target * aspect));
        int ch = (int)nearbyint(sqrt(target / aspect));

        if (cw > 0 && cw <= width && ch > 0 && ch <= height) {
            *top = (int)rng_below(r, (uint64_t)(height - ch + 1));
            *left = (int)rng_below(r, (uint64_t)(width - cw + 1));
            *h = ch;
            *w = cw;
            return;
        }
    }
    in_ratio = (double)width / (double)height;
    if (in_ratio < t->ratio_lo) {
        *w = width;
        *h = (int)nearbyint(*w / (double)t->ratio_lo);
    } else if (in_ratio > t->ratio_hi) {
        *h = height;
        *w = (int)nearbyint(*h * (double)t->ratio_hi);
    } else {
        *w = width;
        *h = height;
    }
    *top = (height - *h) / 2;
    *left = (width - *w) / 2;
}

int transform_apply(const struct transform *t, const struct ds_image *in, struct rng *r,
                    float *out, struct transform_work *work)
{
    int rc;

    if (t->size <= 0)
        return rl_error_set(RL_ERR_ARG, "transform: output size %d", t->size);
    if (in->channels != 1 && in->channels != 3)
        return rl_error_set(RL_ERR_ARG, "transform: %d channels, expected 1 or 3", in->channels);
    if (t->augment) {
        int top, left, h, w;

        RL_ASSERT(r != NULL);
        random_resized_crop_params(t, in->height, in->width, r, &top, &left, &h, &w);
        if ((rc = image_crop(in, top, left, h, w, &work->a)) != RL_OK ||
            (rc = image_resize_bicubic(&work->a, t->size, t->size, &work->b)) != RL_OK)
            return rc;
        if (rng_uniform(r) < t->flip_p)
            image_flip_h(&work->b);
    } else {
        int rh, rw;

        image_shortest_side(in->height, in->width, t->resize > 0 ? t->resize : t->size, &rh,
                            &rw);
        if ((rc = image_resize_bicubic(in, rh, rw, &work->a)) != RL_OK ||
            (rc = image_crop(&work->a, image_center_offset(rh, t->size, t->crop_round),
                             image_center_offset(rw, t->size, t->crop_round), t->size, t->size,
                             &work->b)) != RL_OK)
            return rc;
    }
    image_to_float_chw(&work->b, t->mean, t->std, out);
    return RL_OK;
}

void transform_work_free(struct transform_work *work)
{
    ds_image_free(&work->a);
    ds_image_free(&work->b);
}
