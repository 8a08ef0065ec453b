/*
 * check_images.c: PNG and JPEG decoding (images the tests write with libpng
 * and libjpeg, and corrupted copies of them), class-per-folder datasets,
 * and the transforms (bicubic resize against reference pixels from Pillow,
 * crop rounding, seeded augmentation). dataset_files.h holds the temporary
 * directory and file helpers.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include <jpeglib.h>
#include <png.h>

#include "core/alloc.h"
#include "core/status.h"
#include "datasets/dataset.h"
#include "datasets/image.h"
#include "datasets/transforms.h"
#include "dataset_files.h"
#include "suites.h"
#include "test_cmd.h"
#include "test_util.h"

/* --- images and folders ------------------------------------------------------------ */

/* pixel (y, x, c) of the test images */
static uint8_t px(int y, int x, int c, int seed)
{
    return (uint8_t)(x * 9 + y * 5 + c * 70 + seed * 13);
}

/* PNG of h x w with `channels` 1, 2 (gray+alpha), 3 or 4 (RGBA), 8-bit */
static void write_png(const char *path, int h, int w, int channels, int seed)
{
    static const int types[5] = { 0, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA,
                                  PNG_COLOR_TYPE_RGB, PNG_COLOR_TYPE_RGB_ALPHA };
    FILE *f = fopen(path, "wb");
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    uint8_t *row = xmalloc((size_t)w * (size_t)channels);

    ck_assert_ptr_nonnull(f);
    ck_assert(png && info);
    ck_assert_int_eq(setjmp(png_jmpbuf(png)), 0);
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, types[channels], PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++)
            for (int c = 0; c < channels; c++)
                row[x * channels + c] = px(y, x, c, seed);
        png_write_row(png, row);
    }
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    fclose(f);
    free(row);
}

/* smooth, below 256 for images up to 24 x 24: what JPEG keeps well */
static uint8_t px_smooth(int y, int x, int c, int seed)
{
    return (uint8_t)(x * 4 + y * 3 + c * 30 + seed);
}

static void write_jpeg(const char *path, int h, int w, int channels, int seed)
{
    struct jpeg_compress_struct cinfo;
    struct jpeg_error_mgr jerr;
    FILE *f = fopen(path, "wb");
    uint8_t *row = xmalloc((size_t)w * (size_t)channels);

    ck_assert_ptr_nonnull(f);
    cinfo.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&cinfo);
    jpeg_stdio_dest(&cinfo, f);
    cinfo.image_width = (JDIMENSION)w;
    cinfo.image_height = (JDIMENSION)h;
    cinfo.input_components = channels;
    cinfo.in_color_space = channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, 95, TRUE);
    jpeg_start_compress(&cinfo, TRUE);
    while (cinfo.next_scanline < cinfo.image_height) {
        int y = (int)cinfo.next_scanline;
        JSAMPROW r = row;

        for (int x = 0; x < w; x++)
            for (int c = 0; c < channels; c++)
                row[x * channels + c] = px_smooth(y, x, c, seed);
        jpeg_write_scanlines(&cinfo, &r, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    fclose(f);
    free(row);
}

START_TEST(test_png_decode)
{
    struct ds_image img = {0};

    for (int ch = 1; ch <= 4; ch++) {
        int want_c = ch <= 2 ? 1 : 3;

        write_png(tp("a%d.png", ch), 7, 11, ch, ch);
        ck_assert_int_eq(image_read_file(tp("a%d.png", ch), &img), RL_OK);
        ck_assert_int_eq(img.channels, want_c);
        ck_assert_int_eq(img.height, 7);
        ck_assert_int_eq(img.width, 11);
        for (int y = 0; y < 7; y++)
            for (int x = 0; x < 11; x++)
                for (int c = 0; c < want_c; c++)
                    ck_assert_int_eq(img.data[(y * 11 + x) * want_c + c], px(y, x, c, ch));
    }
    ck_assert_int_eq(image_gray_to_rgb(&img), RL_OK);   /* RGB: no-op */
    ck_assert_int_eq(image_read_file(tp("a1.png"), &img), RL_OK);
    ck_assert_int_eq(image_gray_to_rgb(&img), RL_OK);
    ck_assert_int_eq(img.channels, 3);
    ck_assert_int_eq(img.data[(3 * 11 + 4) * 3 + 2], px(3, 4, 0, 1));
    ds_image_free(&img);
}
END_TEST

START_TEST(test_jpeg_decode)
{
    struct ds_image img = {0};
    int maxd = 0;

    write_jpeg(tp("a.jpg"), 16, 24, 3, 2);
    ck_assert_int_eq(image_read_file(tp("a.jpg"), &img), RL_OK);
    ck_assert_int_eq(img.channels, 3);
    ck_assert_int_eq(img.height, 16);
    ck_assert_int_eq(img.width, 24);
    for (int y = 0; y < 16; y++)
        for (int x = 0; x < 24; x++)
            for (int c = 0; c < 3; c++) {
                int d = abs((int)img.data[(y * 24 + x) * 3 + c] - (int)px_smooth(y, x, c, 2));

                maxd = d > maxd ? d : maxd;
            }
    ck_assert_int_le(maxd, 6);   /* lossy, quality 95, chroma subsampled */
    write_jpeg(tp("g.jpg"), 9, 5, 1, 3);
    ck_assert_int_eq(image_read_file(tp("g.jpg"), &img), RL_OK);
    ck_assert_int_eq(img.channels, 1);
    ck_assert_int_eq(img.width, 5);
    ds_image_free(&img);
}
END_TEST

/* every prefix and some corruptions of a file: RL_ERR_FORMAT naming it, no crash */
static void corrupt_variants(const char *good_path, const char *bad_name)
{
    struct ds_image img = {0};
    size_t n;
    uint8_t *data = (uint8_t *)test_slurp(good_path, &n);
    const char *bad = tp("%s", bad_name);

    for (size_t cut = 0; cut < n; cut += (cut < 64 ? 1 : 7)) {
        ds_write_bytes(bad, data, cut, 0);
        ck_fails_with(image_read_file(bad, &img), RL_ERR_FORMAT, bad_name);
    }
    /* garbage after a valid signature */
    for (size_t i = 8; i < n; i++)
        data[i] = (uint8_t)(i * 37 + 11);
    ds_write_bytes(bad, data, n, 0);
    ck_fails_with(image_read_file(bad, &img), RL_ERR_FORMAT, bad_name);
    free(data);
    ds_image_free(&img);
}

START_TEST(test_image_corrupt)
{
    struct ds_image img = {0};

    write_png(tp("ok.png"), 13, 17, 3, 1);
    write_jpeg(tp("ok.jpg"), 13, 17, 3, 1);
    corrupt_variants(tp("ok.png"), "bad.png");
    corrupt_variants(tp("ok.jpg"), "bad.jpg");
    test_write_text(tp("text.jpg"), "hello");
    ck_fails_with(image_read_file(tp("text.jpg"), &img), RL_ERR_FORMAT, "not a PNG or JPEG");
    ck_fails_with(image_read_file(tp("none.png"), &img), RL_ERR_IO, "none.png");
    /* a PNG whose header claims 60000 x 60000 */
    {
        size_t n;
        uint8_t *d = (uint8_t *)test_slurp(tp("ok.png"), &n);
        uLong crc;

        d[16] = 0; d[17] = 0; d[18] = 0xea; d[19] = 0x60;
        d[20] = 0; d[21] = 0; d[22] = 0xea; d[23] = 0x60;
        crc = crc32(0, d + 12, 17);
        d[29] = (uint8_t)(crc >> 24); d[30] = (uint8_t)(crc >> 16);
        d[31] = (uint8_t)(crc >> 8); d[32] = (uint8_t)crc;
        ds_write_bytes(tp("huge.png"), d, n, 0);
        ck_fails_with(image_read_file(tp("huge.png"), &img), RL_ERR_FORMAT, "huge.png");
        free(d);
    }
    ds_image_free(&img);
}
END_TEST

START_TEST(test_folder)
{
    struct dataset ds;
    struct ds_image img = {0};
    char spec[1100];
    int label, *labels;

    ds_mkdir(tp("train"));
    ds_mkdir(tp("test"));
    ds_mkdir(tp("train/sea_lion"));
    ds_mkdir(tp("train/cat"));
    ds_mkdir(tp("train/dog"));
    ds_mkdir(tp("test/dog"));
    write_png(tp("train/cat/b.png"), 5, 6, 3, 1);
    write_jpeg(tp("train/cat/a.JPG"), 8, 8, 3, 2);
    test_write_text(tp("train/cat/notes.txt"), "ignored");
    write_png(tp("train/dog/x.png"), 4, 4, 1, 3);
    write_png(tp("train/sea_lion/y.png"), 3, 9, 4, 4);
    write_png(tp("test/dog/z.png"), 2, 2, 3, 5);
    snprintf(spec, sizeof(spec), "folder:%s", ds_tmpdir);
    ck_assert_int_eq(dataset_open(&ds, spec), RL_OK);
    ck_assert_uint_eq(ds.n, 4);
    ck_assert_int_eq(ds.n_classes, 3);
    ck_assert_str_eq(ds.class_names[0], "cat");
    ck_assert_str_eq(ds.class_names[2], "sea lion");
    ck_assert_int_eq(ds.n_templates, 0);
    ck_assert_int_eq(ds.channels, 3);
    ck_assert_int_eq(ds.height, 0);
    labels = dataset_labels(&ds);
    ck_assert_int_eq(labels[0], 0);
    ck_assert_int_eq(labels[1], 0);
    ck_assert_int_eq(labels[2], 1);
    ck_assert_int_eq(labels[3], 2);
    free(labels);
    ck_assert_int_eq(dataset_load(&ds, 0, &img, &label), RL_OK);   /* a.JPG sorts first */
    ck_assert_int_eq(img.height, 8);
    ck_assert_int_eq(dataset_load(&ds, 2, &img, &label), RL_OK);   /* gray PNG -> RGB */
    ck_assert_int_eq(label, 1);
    ck_assert_int_eq(img.channels, 3);
    ck_assert_int_eq(img.data[5 * 3 + 1], px(1, 1, 0, 3));
    dataset_close(&ds);

    test_write_text(tp("classnames.txt"), "dog\tgood dog\nsea_lion\tsea lion (otariid)\n");
    test_write_text(tp("templates.txt"), "a photo of a {}.\na blurry photo of a {}.\n");
    snprintf(spec, sizeof(spec), "folder:%s:test", ds_tmpdir);
    ck_assert_int_eq(dataset_open(&ds, spec), RL_OK);
    ck_assert_uint_eq(ds.n, 1);
    ck_assert_int_eq(ds.n_classes, 3);
    ck_assert_int_eq(dataset_label(&ds, 0), 1);
    ck_assert_str_eq(ds.class_names[0], "cat");
    ck_assert_str_eq(ds.class_names[1], "good dog");
    ck_assert_str_eq(ds.class_names[2], "sea lion (otariid)");
    ck_assert_int_eq(ds.n_templates, 2);
    ck_assert_str_eq(ds.templates[1], "a blurry photo of a {}.");
    dataset_close(&ds);

    /* errors: bad names count, template without {}, empty class, unknown test class,
     * a corrupt image at load time */
    test_write_text(tp("classnames.txt"), "one\ntwo\n");
    ck_fails_with(dataset_open(&ds, spec), RL_ERR_FORMAT, "classnames.txt: 2 names for 3");
    test_write_text(tp("classnames.txt"), "kitty\ndoggo\nlion\n");
    test_write_text(tp("templates.txt"), "a photo of a thing.\n");
    ck_fails_with(dataset_open(&ds, spec), RL_ERR_FORMAT, "templates.txt: line 1 has no {}");
    remove(tp("templates.txt"));
    ck_assert_int_eq(dataset_open(&ds, spec), RL_OK);
    ck_assert_str_eq(ds.class_names[1], "doggo");
    dataset_close(&ds);
    ds_mkdir(tp("test/cat"));
    ck_fails_with(dataset_open(&ds, spec), RL_ERR_FORMAT, "test/cat: empty class folder");
    rmdir(tp("test/cat"));
    ds_mkdir(tp("test/bird"));
    ck_fails_with(dataset_open(&ds, spec), RL_ERR_FORMAT, "test/bird: class folder not in");
    rmdir(tp("test/bird"));
    ds_write_bytes(tp("test/dog/z.png"), "\x89PNG\r\n\x1a\n\0\0", 10, 0);
    ck_assert_int_eq(dataset_open(&ds, spec), RL_OK);
    ck_fails_with(dataset_load(&ds, 0, &img, &label), RL_ERR_FORMAT, "test/dog/z.png: PNG:");
    dataset_close(&ds);
    snprintf(spec, sizeof(spec), "folder:%s/train", ds_tmpdir);
    ck_fails_with(dataset_open(&ds, spec), RL_ERR_IO, "no train/ folder");
    ds_image_free(&img);
}
END_TEST

/* --- transforms ------------------------------------------------------------------ */

/* the inputs of tests/ref/make_resize_fixture.py */
static void fixture_input(struct ds_image *img, int c, int h, int w, const char *pattern,
                          uint32_t seed)
{
    uint32_t state = seed;
    size_t n = (size_t)h * (size_t)w * (size_t)c;

    ck_assert_int_eq(ds_image_reserve(img, c, h, w), RL_OK);
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(pattern, "noise")) {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            img->data[i] = (uint8_t)(state >> 24);
        } else {
            size_t ch = i % (size_t)c, x = (i / (size_t)c) % (size_t)w, y = (i / (size_t)c) / (size_t)w;

            img->data[i] = (uint8_t)((x * 5 + y * 3 + ch * 40 + ((x * y + seed) >> 3)) & 255);
        }
    }
}

static int hexval(int ch)
{
    return ch <= '9' ? ch - '0' : (ch | 0x20) - 'a' + 10;
}

START_TEST(test_resize_matches_pillow)
{
    FILE *f = fopen(fixture_path("resize_pillow.txt"), "r");
    char *line = NULL;
    size_t cap = 0;
    int n_cases = 0;
    struct ds_image in = {0}, out = {0};
    struct transform_work work = {0};
    struct transform t;

    ck_assert_msg(f != NULL, "missing fixture %s", fixture_path("resize_pillow.txt"));
    while (getline(&line, &cap, f) > 0) {
        char kind[16], mode[8], pattern[16];
        int h, w, a, b, c, oh, ow, diff = 0, maxdiff = 0;
        unsigned seed;
        size_t nout;

        if (line[0] == '#')
            continue;
        ck_assert_int_eq(sscanf(line, "%15s %7s %d %d %d %d %15s %u", kind, mode, &h, &w, &a, &b,
                                pattern, &seed), 8);
        c = !strcmp(mode, "L") ? 1 : 3;
        fixture_input(&in, c, h, w, pattern, seed);
        if (!strcmp(kind, "resize")) {
            oh = a;
            ow = b;
            ck_assert_int_eq(image_resize_bicubic(&in, oh, ow, &out), RL_OK);
        } else {
            /* the CLIP evaluation transform, before the float conversion */
            float *x = xmalloc_array(3 * (size_t)a * (size_t)a, sizeof(float));
            const float zero[3] = { 0, 0, 0 }, one[3] = { 1, 1, 1 };

            oh = ow = a;
            transform_init_clip(&t, a);
            memcpy(t.mean, zero, sizeof(zero));
            memcpy(t.std, one, sizeof(one));
            ck_assert_int_eq(transform_apply(&t, &in, NULL, x, &work), RL_OK);
            ck_assert_int_eq(ds_image_reserve(&out, c, a, a), RL_OK);
            memcpy(out.data, work.b.data, (size_t)a * (size_t)a * (size_t)c);
            /* and the float output is that image / 255, replicated for gray */
            for (int ch = 0; ch < 3; ch++)
                for (int i = 0; i < a * a; i++)
                    ck_assert(x[(size_t)ch * (size_t)a * (size_t)a + (size_t)i] ==
                              (float)out.data[(size_t)i * (size_t)c + (size_t)(c == 1 ? 0 : ch)] /
                                  255.0f);
            free(x);
        }
        ck_assert_int_eq(out.height, oh);
        ck_assert_int_eq(out.width, ow);
        ck_assert_int_eq(getline(&line, &cap, f) > 0, 1);
        nout = (size_t)oh * (size_t)ow * (size_t)c;
        ck_assert_uint_ge(strlen(line), 2 * nout);
        for (size_t i = 0; i < nout; i++) {
            int want = hexval(line[2 * i]) * 16 + hexval(line[2 * i + 1]);
            int d = abs(want - out.data[i]);

            diff += d != 0;
            if (d > maxdiff)
                maxdiff = d;
        }
        ck_assert_msg(diff == 0, "%s %s %dx%d -> %dx%d (%s): %d of %zu bytes differ from Pillow, "
                      "max by %d", kind, mode, h, w, oh, ow, pattern, diff, nout, maxdiff);
        n_cases++;
    }
    ck_assert_int_ge(n_cases, 10);
    free(line);
    fclose(f);
    ds_image_free(&in);
    ds_image_free(&out);
    transform_work_free(&work);
}
END_TEST

START_TEST(test_crop_rounding_and_float)
{
    struct ds_image img = {0}, out = {0};
    struct transform t;
    struct transform_work work = {0};
    float *x;

    /* (H - size) / 2 = 16.5 -> 16 (half to even), 17.5 -> 18; HF floors */
    ck_assert_int_eq(image_center_offset(257, 224, CROP_ROUND_TORCHVISION), 16);
    ck_assert_int_eq(image_center_offset(259, 224, CROP_ROUND_TORCHVISION), 18);
    ck_assert_int_eq(image_center_offset(259, 224, CROP_ROUND_HF), 17);
    ck_assert_int_eq(image_center_offset(258, 224, CROP_ROUND_HF), 17);
    ck_assert_int_eq(image_center_offset(220, 224, CROP_ROUND_TORCHVISION), -2);
    {
        int h, w;

        image_shortest_side(480, 640, 224, &h, &w);
        ck_assert_int_eq(h, 224);
        ck_assert_int_eq(w, 298);   /* int(224 * 640 / 480) = int(298.67) */
        image_shortest_side(500, 333, 224, &h, &w);
        ck_assert_int_eq(w, 224);
        ck_assert_int_eq(h, 336);
    }
    /* crop with zero padding, flip */
    fixture_input(&img, 3, 4, 5, "smooth", 0);
    ck_assert_int_eq(image_crop(&img, -1, 3, 3, 3, &out), RL_OK);
    ck_assert_int_eq(out.data[0], 0);
    ck_assert_int_eq(out.data[3 * 3 + 0], img.data[3 * 3]);          /* (0, 3) */
    ck_assert_int_eq(out.data[3 * 3 + 2 * 3 + 1], 0);                 /* (0, 5) outside */
    image_flip_h(&img);
    ck_assert_int_eq(img.data[4 * 3 + 1], (uint8_t)(0 * 5 + 1 * 40)); /* old (0,0) ch 1 */

    /* gray 28x28 -> CLIP 224: the normalised values */
    fixture_input(&img, 1, 28, 28, "smooth", 1);
    transform_init_clip(&t, 224);
    x = xmalloc_array(3 * 224 * 224, sizeof(float));
    ck_assert_int_eq(transform_apply(&t, &img, NULL, x, &work), RL_OK);
    for (int ch = 0; ch < 3; ch++) {
        float v = (float)work.b.data[0] / 255.0f;

        ck_assert(x[(size_t)ch * 224 * 224] == (v - CLIP_MEAN[ch]) / CLIP_STD[ch]);
    }
    ck_assert_float_eq_tol(x[0], ((float)work.b.data[0] / 255.0f - 0.48145466f) / 0.26862954f,
                           1e-6f);
    free(x);
    ds_image_free(&img);
    ds_image_free(&out);
    transform_work_free(&work);
}
END_TEST

START_TEST(test_augment_seeded)
{
    struct ds_image img = {0};
    struct transform t;
    struct transform_work work = {0};
    struct rng r1, r2;
    float *a = xmalloc_array(3 * 32 * 32, sizeof(float));
    float *b = xmalloc_array(3 * 32 * 32, sizeof(float));

    fixture_input(&img, 3, 40, 60, "noise", 5);
    transform_init_clip(&t, 32);
    t.augment = 1;
    rng_init(&r1, 9);
    rng_init(&r2, 9);
    for (int rep = 0; rep < 20; rep++) {
        ck_assert_int_eq(transform_apply(&t, &img, &r1, a, &work), RL_OK);
        ck_assert_int_eq(transform_apply(&t, &img, &r2, b, &work), RL_OK);
        ck_assert_mem_eq(a, b, 3 * 32 * 32 * sizeof(float));
    }
    /* consecutive draws differ */
    ck_assert_int_eq(transform_apply(&t, &img, &r1, a, &work), RL_OK);
    ck_assert_int_eq(transform_apply(&t, &img, &r1, b, &work), RL_OK);
    ck_assert(memcmp(a, b, 3 * 32 * 32 * sizeof(float)) != 0);
    free(a);
    free(b);
    ds_image_free(&img);
    transform_work_free(&work);
}
END_TEST

Suite *suite_images(void)
{
    Suite *s = suite_create("images");
    TCase *tc = tcase_create("images");

    tcase_add_checked_fixture(tc, ds_tmp_setup, ds_tmp_teardown);
    tcase_add_test(tc, test_png_decode);
    tcase_add_test(tc, test_jpeg_decode);
    tcase_add_test(tc, test_image_corrupt);
    tcase_add_test(tc, test_folder);
    suite_add_tcase(s, tc);

    tc = tcase_create("transforms");
    tcase_add_test(tc, test_resize_matches_pillow);
    tcase_add_test(tc, test_crop_rounding_and_float);
    tcase_add_test(tc, test_augment_seeded);
    suite_add_tcase(s, tc);
    return s;
}
