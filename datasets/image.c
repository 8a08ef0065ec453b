/*
 * image.c: PNG (libpng) and JPEG (libjpeg-turbo) decoding from memory, with
 * setjmp-based error handling (see image.h).
 */
#include "datasets/image.h"

#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

#include "core/alloc.h"
#include "core/status.h"

#define IMAGE_MAX_FILE ((size_t)1 << 30)
#define IMAGE_MAX_SIDE 65535u

/* an image file's width x height against IMAGE_MAX_PIXELS, before any
 * pixel is allocated or decoded */
static int check_pixels(const char *name, const char *format, size_t w, size_t h)
{
    if (w * h <= IMAGE_MAX_PIXELS)           /* sides <= 65535: no overflow */
        return RL_OK;
    return rl_error_set(RL_ERR_FORMAT, "%s: %s: %zu x %zu = %zu pixels, more than the limit of "
                        "%zu pixels for an image file (downscale it)", name, format, w, h, w * h,
                        (size_t)IMAGE_MAX_PIXELS);
}

/* --- PNG --------------------------------------------------------------------- */

struct png_ctx {
    const uint8_t *data;
    size_t         n, off;
    char           msg[256];
};

static void png_read_cb(png_structp png, png_bytep out, size_t len)
{
    struct png_ctx *c = png_get_io_ptr(png);

    if (len > c->n - c->off)
        png_error(png, "file is truncated");
    memcpy(out, c->data + c->off, len);
    c->off += len;
}

static void png_error_cb(png_structp png, png_const_charp msg)
{
    struct png_ctx *c = png_get_error_ptr(png);

    snprintf(c->msg, sizeof(c->msg), "%s", msg);
    png_longjmp(png, 1);
}

static void png_warning_cb(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

static int decode_png(const uint8_t *data, size_t n, const char *name, struct ds_image *img)
{
    struct png_ctx ctx = { .data = data, .n = n, .off = 0, .msg = "" };
    png_structp png;
    png_infop info = NULL;
    png_bytep *volatile rows = NULL;
    png_uint_32 w, h;
    int bit_depth, color_type, channels, rc;

    png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &ctx, png_error_cb, png_warning_cb);
    if (!png)
        return rl_error_set(RL_ERR_NOMEM, "%s: PNG: out of memory", name);
    info = png_create_info_struct(png);
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return rl_error_set(RL_ERR_NOMEM, "%s: PNG: out of memory", name);
    }
    if (setjmp(png_jmpbuf(png))) {
        free(rows);
        png_destroy_read_struct(&png, &info, NULL);
        return rl_error_set(RL_ERR_FORMAT, "%s: PNG: %s", name, ctx.msg[0] ? ctx.msg : "corrupt");
    }
    png_set_user_limits(png, IMAGE_MAX_SIDE, IMAGE_MAX_SIDE);
    png_set_chunk_malloc_max(png, (png_alloc_size_t)64 << 20);
    png_set_read_fn(png, &ctx, png_read_cb);
    png_read_info(png, info);
    png_get_IHDR(png, info, &w, &h, &bit_depth, &color_type, NULL, NULL, NULL);
    if ((rc = check_pixels(name, "PNG", w, h)) != RL_OK) {
        png_destroy_read_struct(&png, &info, NULL);
        return rc;
    }
    if (color_type == PNG_COLOR_TYPE_PALETTE)
        png_set_palette_to_rgb(png);
    if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8)
        png_set_expand_gray_1_2_4_to_8(png);
    if (bit_depth == 16)
        png_set_strip_16(png);
    if (color_type & PNG_COLOR_MASK_ALPHA)
        png_set_strip_alpha(png);
    (void)png_set_interlace_handling(png);
    png_read_update_info(png, info);
    channels = png_get_channels(png, info);
    if (channels != 1 && channels != 3)
        png_error(png, "unsupported channel layout");
    if (png_get_rowbytes(png, info) != (size_t)w * (size_t)channels)
        png_error(png, "unexpected row size");
    if ((rc = ds_image_reserve(img, channels, (int)h, (int)w)) != RL_OK) {
        png_destroy_read_struct(&png, &info, NULL);
        return rl_error_prefix(rc, "%s: PNG", name);
    }
    rows = malloc(h * sizeof(*rows));
    if (!rows)
        png_error(png, "out of memory");
    for (png_uint_32 y = 0; y < h; y++)
        rows[y] = img->data + (size_t)y * (size_t)w * (size_t)channels;
    png_read_image(png, rows);
    png_read_end(png, NULL);
    free(rows);
    png_destroy_read_struct(&png, &info, NULL);
    return RL_OK;
}

/* --- JPEG -------------------------------------------------------------------- */

struct jpeg_err {
    struct jpeg_error_mgr pub;
    jmp_buf               jb;
    char                  msg[JMSG_LENGTH_MAX];
};

static void jpeg_error_exit_cb(j_common_ptr cinfo)
{
    struct jpeg_err *e = (struct jpeg_err *)cinfo->err;

    (*cinfo->err->format_message)(cinfo, e->msg);
    longjmp(e->jb, 1);
}

/* Warnings: a premature end of the data is an error (a truncated file);
 * other "corrupt data" warnings are tolerated, as in Pillow. */
static void jpeg_emit_cb(j_common_ptr cinfo, int level)
{
    struct jpeg_err *e = (struct jpeg_err *)cinfo->err;

    if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) {
        (*cinfo->err->format_message)(cinfo, e->msg);
        longjmp(e->jb, 1);
    }
}

static int decode_jpeg(const uint8_t *data, size_t n, const char *name, struct ds_image *img)
{
    struct jpeg_decompress_struct cinfo;
    struct jpeg_err err;
    int channels, rc;

    memset(&cinfo, 0, sizeof(cinfo));
    cinfo.err = jpeg_std_error(&err.pub);
    err.pub.error_exit = jpeg_error_exit_cb;
    err.pub.emit_message = jpeg_emit_cb;
    err.msg[0] = '\0';
    if (setjmp(err.jb)) {
        jpeg_destroy_decompress(&cinfo);
        return rl_error_set(RL_ERR_FORMAT, "%s: JPEG: %s", name, err.msg[0] ? err.msg : "corrupt");
    }
    jpeg_create_decompress(&cinfo);
    cinfo.mem->max_memory_to_use = 1L << 30;
    jpeg_mem_src(&cinfo, data, (unsigned long)n);
    jpeg_read_header(&cinfo, TRUE);
    switch (cinfo.jpeg_color_space) {
    case JCS_GRAYSCALE:
        cinfo.out_color_space = JCS_GRAYSCALE;
        channels = 1;
        break;
    case JCS_CMYK:
    case JCS_YCCK:
        jpeg_destroy_decompress(&cinfo);
        return rl_error_set(RL_ERR_FORMAT, "%s: JPEG: CMYK images are not supported", name);
    default:
        cinfo.out_color_space = JCS_RGB;
        channels = 3;
        break;
    }
    if (cinfo.image_width <= IMAGE_MAX_SIDE && cinfo.image_height <= IMAGE_MAX_SIDE &&
        (rc = check_pixels(name, "JPEG", cinfo.image_width, cinfo.image_height)) != RL_OK) {
        jpeg_destroy_decompress(&cinfo);
        return rc;
    }
    if (cinfo.image_width > IMAGE_MAX_SIDE || cinfo.image_height > IMAGE_MAX_SIDE ||
        (rc = ds_image_reserve(img, channels, (int)cinfo.image_height,
                               (int)cinfo.image_width)) != RL_OK) {
        unsigned w = cinfo.image_width, h = cinfo.image_height;

        jpeg_destroy_decompress(&cinfo);
        return rl_error_set(RL_ERR_FORMAT, "%s: JPEG: %u x %u pixels is too large", name, w, h);
    }
    jpeg_start_decompress(&cinfo);
    if (cinfo.output_components != channels || (int)cinfo.output_width != img->width ||
        (int)cinfo.output_height != img->height) {
        jpeg_destroy_decompress(&cinfo);
        return rl_error_set(RL_ERR_FORMAT, "%s: JPEG: unexpected output layout", name);
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = img->data + (size_t)cinfo.output_scanline * (size_t)img->width *
                                       (size_t)channels;

        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    return RL_OK;
}

/* --- entry points -------------------------------------------------------------- */

int image_decode(const uint8_t *data, size_t n, const char *name, struct ds_image *img)
{
    static const uint8_t png_sig[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };

    if (n >= 8 && memcmp(data, png_sig, 8) == 0)
        return decode_png(data, n, name, img);
    if (n >= 3 && data[0] == 0xff && data[1] == 0xd8 && data[2] == 0xff)
        return decode_jpeg(data, n, name, img);
    return rl_error_set(RL_ERR_FORMAT, "%s: not a PNG or JPEG file", name);
}

int image_read_file(const char *path, struct ds_image *img)
{
    FILE *f = fopen(path, "rb");
    struct stat st;
    uint8_t *buf;
    size_t n;
    int rc;

    if (!f)
        return rl_error_set(RL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return rl_error_set(RL_ERR_IO, "%s: not a regular file", path);
    }
    if ((size_t)st.st_size > IMAGE_MAX_FILE) {
        fclose(f);
        return rl_error_set(RL_ERR_FORMAT, "%s: %lld bytes, more than an image file may have",
                            path, (long long)st.st_size);
    }
    n = (size_t)st.st_size;
    buf = malloc(n ? n : 1);
    if (!buf) {
        fclose(f);
        return rl_error_set(RL_ERR_NOMEM, "%s: out of memory for %zu bytes", path, n);
    }
    if (fread(buf, 1, n, f) != n) {
        free(buf);
        fclose(f);
        return rl_error_set(RL_ERR_IO, "%s: short read", path);
    }
    fclose(f);
    rc = image_decode(buf, n, path, img);
    free(buf);
    return rc;
}

int image_gray_to_rgb(struct ds_image *img)
{
    size_t px;
    int rc;

    if (img->channels == 3)
        return RL_OK;
    RL_ASSERT(img->channels == 1);
    px = (size_t)img->height * (size_t)img->width;
    if ((rc = ds_image_reserve(img, 3, img->height, img->width)) != RL_OK)
        return rc;
    for (size_t i = px; i-- > 0;) {
        uint8_t v = img->data[i];

        img->data[3 * i] = img->data[3 * i + 1] = img->data[3 * i + 2] = v;
    }
    return RL_OK;
}
