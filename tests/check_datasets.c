/*
 * check_datasets.c: dataset readers on fixture files the tests write into a
 * temporary directory (plain and corrupted variants of every format), the
 * real Fashion-MNIST when installed, few-shot sampling, and the transforms
 * (bicubic resize against reference pixels from Pillow).
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <jpeglib.h>
#include <png.h>

#include "core/alloc.h"
#include "core/status.h"
#include "datasets/dataset.h"
#include "datasets/fewshot.h"
#include "datasets/image.h"
#include "datasets/transforms.h"
#include "suites.h"
#include "test_util.h"

/* --- temp directory ------------------------------------------------------- */

static char tmpdir[256];

static void tmp_setup(void)
{
    ck_assert_ptr_nonnull(test_tmpdir_make(tmpdir, sizeof(tmpdir), "ds"));
}

static void tmp_teardown(void)
{
    test_tmpdir_remove(tmpdir);
    tmpdir[0] = '\0';
}

/* a path inside tmpdir */
#define tp(...) test_path(tmpdir, __VA_ARGS__)

static void mkdir_p(const char *path)
{
    ck_assert_msg(mkdir(path, 0755) == 0, "mkdir %s", path);
}

static void write_bytes(const char *path, const void *data, size_t n, int gz)
{
    if (gz) {
        gzFile f = gzopen(path, "wb");

        ck_assert_ptr_nonnull(f);
        if (n)
            ck_assert_int_eq(gzwrite(f, data, (unsigned)n), (int)n);
        ck_assert_int_eq(gzclose(f), Z_OK);
    } else {
        FILE *f = fopen(path, "wb");

        ck_assert_ptr_nonnull(f);
        ck_assert_uint_eq(fwrite(data, 1, n, f), n);
        ck_assert_int_eq(fclose(f), 0);
    }
}

static uint8_t *read_all(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf;
    long len;

    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    len = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = xmalloc((size_t)len + 1);
    ck_assert_uint_eq(fread(buf, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return buf;
}

static void write_text(const char *path, const char *text)
{
    write_bytes(path, text, strlen(text), 0);
}

/* the call failed with `status` and a message that holds `needle` */
#define ck_fails_with(call, status, needle)                                               \
    do {                                                                                 \
        int rc_ = (call);                                                                \
        ck_assert_msg(rc_ == (status), "%s gave %d (%s), expected %d", #call, rc_,       \
                      rl_error_msg(), (status));                                         \
        ck_assert_msg(strstr(rl_error_msg(), (needle)) != NULL,                          \
                      "message '%s' does not name '%s'", rl_error_msg(), (needle));      \
    } while (0)

/* --- IDX fixtures ------------------------------------------------------------ */

/* n images of h x w (pixel = i*7 + y*3 + x) and labels i % n_classes */
static size_t idx_images(uint8_t *buf, uint32_t n, uint32_t h, uint32_t w)
{
    uint8_t *p = buf;

    *p++ = 0; *p++ = 0; *p++ = 8; *p++ = 3;
    for (int d = 0; d < 3; d++) {
        uint32_t v = d == 0 ? n : d == 1 ? h : w;

        *p++ = (uint8_t)(v >> 24); *p++ = (uint8_t)(v >> 16);
        *p++ = (uint8_t)(v >> 8); *p++ = (uint8_t)v;
    }
    for (uint32_t i = 0; i < n; i++)
        for (uint32_t y = 0; y < h; y++)
            for (uint32_t x = 0; x < w; x++)
                *p++ = (uint8_t)(i * 7 + y * 3 + x);
    return (size_t)(p - buf);
}

static size_t idx_labels(uint8_t *buf, uint32_t n, int n_classes)
{
    uint8_t *p = buf;

    *p++ = 0; *p++ = 0; *p++ = 8; *p++ = 1;
    *p++ = (uint8_t)(n >> 24); *p++ = (uint8_t)(n >> 16);
    *p++ = (uint8_t)(n >> 8); *p++ = (uint8_t)n;
    for (uint32_t i = 0; i < n; i++)
        *p++ = (uint8_t)(i % (uint32_t)n_classes);
    return (size_t)(p - buf);
}

/* DIR/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]: 12 train, 5 test items */
static void write_idx_set(const char *dir, int gz)
{
    uint8_t buf[4096];
    char path[1200];
    size_t n;
    const char *ext = gz ? ".gz" : "";

    n = idx_images(buf, 12, 4, 5);
    snprintf(path, sizeof(path), "%s/train-images-idx3-ubyte%s", dir, ext);
    write_bytes(path, buf, n, gz);
    n = idx_labels(buf, 12, 3);
    snprintf(path, sizeof(path), "%s/train-labels-idx1-ubyte%s", dir, ext);
    write_bytes(path, buf, n, gz);
    n = idx_images(buf, 5, 4, 5);
    snprintf(path, sizeof(path), "%s/t10k-images-idx3-ubyte%s", dir, ext);
    write_bytes(path, buf, n, gz);
    n = idx_labels(buf, 5, 3);
    snprintf(path, sizeof(path), "%s/t10k-labels-idx1-ubyte%s", dir, ext);
    write_bytes(path, buf, n, gz);
}

static void check_idx_set(const char *dir)
{
    struct dataset ds;
    struct ds_image img = {0};
    char spec[1100];
    int label;

    snprintf(spec, sizeof(spec), "idx:%s", dir);
    ck_assert_int_eq(dataset_open(&ds, spec), RL_OK);
    ck_assert_uint_eq(ds.n, 12);
    ck_assert_int_eq(ds.n_classes, 3);
    ck_assert_str_eq(ds.class_names[2], "2");
    ck_assert_int_eq(ds.channels, 1);
    ck_assert_int_eq(ds.height, 4);
    ck_assert_int_eq(ds.width, 5);
    ck_assert_int_eq(dataset_load(&ds, 7, &img, &label), RL_OK);
    ck_assert_int_eq(label, 1);
    ck_assert_int_eq(img.height, 4);
    ck_assert_int_eq(img.width, 5);
    ck_assert_int_eq(img.data[2 * 5 + 3], (uint8_t)(7 * 7 + 2 * 3 + 3));
    ck_assert_int_eq(dataset_label(&ds, 11), 2);
    ck_assert_int_eq(dataset_label(&ds, 12), -1);
    ck_fails_with(dataset_load(&ds, 12, &img, &label), RL_ERR_ARG, "out of range");
    ck_fails_with(dataset_caption(&ds, 0, spec, sizeof(spec)), RL_ERR_NA, "no captions");
    dataset_close(&ds);

    snprintf(spec, sizeof(spec), "idx:%s:test", dir);
    ck_assert_int_eq(dataset_open(&ds, spec), RL_OK);
    ck_assert_uint_eq(ds.n, 5);
    ck_assert_int_eq(ds.split, DS_TEST);
    ck_assert_int_eq(dataset_load(&ds, 4, &img, &label), RL_OK);
    ck_assert_int_eq(label, 1);
    ck_assert_int_eq(img.data[0], 28);
    dataset_close(&ds);
    ds_image_free(&img);
}

START_TEST(test_idx_plain_and_gzip)
{
    mkdir_p(tp("plain"));
    mkdir_p(tp("gz"));
    write_idx_set(tp("plain"), 0);
    write_idx_set(tp("gz"), 1);
    check_idx_set(tp("plain"));
    check_idx_set(tp("gz"));
}
END_TEST

START_TEST(test_idx_classnames_and_range)
{
    struct dataset ds;
    char spec[1100];
    uint8_t buf[256];
    size_t n;

    mkdir_p(tp("d"));
    write_idx_set(tp("d"), 0);
    write_text(tp("d/classnames.txt"), "zero\r\none\n\ntwo\n");
    snprintf(spec, sizeof(spec), "idx:%s:train", tp("d"));
    ck_assert_int_eq(dataset_open(&ds, spec), RL_OK);
    ck_assert_int_eq(ds.n_classes, 3);
    ck_assert_str_eq(ds.class_names[0], "zero");
    ck_assert_str_eq(ds.class_names[1], "one");
    ck_assert_str_eq(ds.class_names[2], "two");
    dataset_close(&ds);

    /* a label >= the number of class names */
    n = idx_labels(buf, 12, 4);
    write_bytes(tp("d/train-labels-idx1-ubyte"), buf, n, 0);
    ck_fails_with(dataset_open(&ds, spec), RL_ERR_FORMAT, "train-labels-idx1-ubyte: label 3");
    ck_assert_ptr_null(ds.ops);

    /* fashion-mnist:DIR checks against its 10 built-in classes */
    remove(tp("d/classnames.txt"));
    n = idx_labels(buf, 12, 11);
    write_bytes(tp("d/train-labels-idx1-ubyte"), buf, n, 0);
    snprintf(spec, sizeof(spec), "fashion-mnist:%s", tp("d"));
    ck_fails_with(dataset_open(&ds, spec), RL_ERR_FORMAT, "label 10 of item 10 is out of range");
    n = idx_labels(buf, 12, 10);
    write_bytes(tp("d/train-labels-idx1-ubyte"), buf, n, 0);
    ck_assert_int_eq(dataset_open(&ds, spec), RL_OK);
    ck_assert_str_eq(ds.class_names[9], "Ankle boot");
    dataset_close(&ds);
}
END_TEST

/* write DIR with a good set, then replace one file by `bad` */
static void idx_bad(const char *name, const void *bad, size_t n, int gz, int want,
                    const char *needle)
{
    struct dataset ds;
    char spec[1100];

    tmp_teardown();
    tmp_setup();
    write_idx_set(tmpdir, gz);
    write_bytes(tp("%s", name), bad, n, 0);
    snprintf(spec, sizeof(spec), "idx:%s", tmpdir);
    ck_fails_with(dataset_open(&ds, spec), want, name);
    ck_assert_msg(strstr(rl_error_msg(), needle), "'%s' lacks '%s'", rl_error_msg(), needle);
    ck_assert_ptr_null(ds.ops);
}

START_TEST(test_idx_corrupt)
{
    uint8_t good[4096], bad[4096], *gzb;
    size_t n, gzn;

    n = idx_images(good, 12, 4, 5);
    memcpy(bad, good, n);
    bad[2] = 9;   /* signed byte type */
    idx_bad("train-images-idx3-ubyte", bad, n, 0, RL_ERR_FORMAT, "element type 0x09");
    memcpy(bad, good, n);
    bad[0] = 0x1f;
    idx_bad("train-images-idx3-ubyte", bad, n, 0, RL_ERR_FORMAT, "bad magic");
    memcpy(bad, good, n);
    bad[3] = 2;
    idx_bad("train-images-idx3-ubyte", bad, n, 0, RL_ERR_FORMAT, "2 dimensions, expected 3");
    /* file shorter / longer than the header says */
    idx_bad("train-images-idx3-ubyte", good, n - 1, 0, RL_ERR_FORMAT, "need");
    memcpy(bad, good, n);
    bad[n] = 1;
    idx_bad("train-images-idx3-ubyte", bad, n + 1, 0, RL_ERR_FORMAT, "need");
    idx_bad("train-images-idx3-ubyte", good, 10, 0, RL_ERR_FORMAT, "truncated header");
    idx_bad("train-images-idx3-ubyte", good, 2, 0, RL_ERR_FORMAT, "truncated");
    idx_bad("train-images-idx3-ubyte", good, 0, 0, RL_ERR_FORMAT, "truncated");
    /* a huge count in the header, tiny file: no giant allocation */
    memcpy(bad, good, n);
    bad[4] = 0x7f;
    idx_bad("train-images-idx3-ubyte", bad, n, 0, RL_ERR_FORMAT, "need");
    memcpy(bad, good, n);
    bad[11] = 0;   /* height 0 */
    idx_bad("train-images-idx3-ubyte", bad, n, 0, RL_ERR_FORMAT, "dimension 1 is 0");
    /* count mismatch between images and labels */
    n = idx_labels(bad, 11, 3);
    idx_bad("train-labels-idx1-ubyte", bad, n, 0, RL_ERR_FORMAT, "11 labels");

    /* gzip: truncated stream, corrupted byte, lying header, trailing data */
    n = idx_images(good, 12, 4, 5);
    tmp_teardown();
    tmp_setup();
    write_bytes(tp("x.gz"), good, n, 1);
    gzb = read_all(tp("x.gz"), &gzn);
    idx_bad("train-images-idx3-ubyte.gz", gzb, gzn / 2, 1, RL_ERR_FORMAT, "");
    idx_bad("train-images-idx3-ubyte.gz", gzb, gzn - 4, 1, RL_ERR_FORMAT, "");
    gzb[gzn - 6] ^= 0x55;   /* CRC */
    idx_bad("train-images-idx3-ubyte.gz", gzb, gzn, 1, RL_ERR_FORMAT, "corrupt gzip");
    gzb[gzn - 6] ^= 0x55;
    gzb[gzn / 2] ^= 0xff;
    idx_bad("train-images-idx3-ubyte.gz", gzb, gzn, 1, RL_ERR_FORMAT, "");
    free(gzb);
    memcpy(bad, good, n);
    bad[4] = 0x7f;
    tmp_teardown();
    tmp_setup();
    write_bytes(tp("x.gz"), bad, n, 1);
    gzb = read_all(tp("x.gz"), &gzn);
    idx_bad("train-images-idx3-ubyte.gz", gzb, gzn, 1, RL_ERR_FORMAT, "truncated");
    free(gzb);
    bad[4] = 0;
    bad[7] = 11;
    tmp_teardown();
    tmp_setup();
    write_bytes(tp("x.gz"), bad, n, 1);
    gzb = read_all(tp("x.gz"), &gzn);
    idx_bad("train-images-idx3-ubyte.gz", gzb, gzn, 1, RL_ERR_FORMAT, "data continues");
    free(gzb);
}
END_TEST

START_TEST(test_idx_missing)
{
    struct dataset ds;
    char spec[1100];

    snprintf(spec, sizeof(spec), "idx:%s/nowhere", tmpdir);
    ck_fails_with(dataset_open(&ds, spec), RL_ERR_IO, "nowhere");
    snprintf(spec, sizeof(spec), "idx:%s", tmpdir);
    ck_fails_with(dataset_open(&ds, spec), RL_ERR_IO, "no train images file");
    /* EMNIST-style prefixed names are found by scanning */
    {
        uint8_t buf[4096];
        size_t n = idx_images(buf, 3, 2, 2);

        write_bytes(tp("emnist-x-test-images-idx3-ubyte.gz"), buf, n, 1);
        n = idx_labels(buf, 3, 2);
        write_bytes(tp("emnist-x-test-labels-idx1-ubyte"), buf, n, 0);
    }
    snprintf(spec, sizeof(spec), "idx:%s:test", tmpdir);
    ck_assert_int_eq(dataset_open(&ds, spec), RL_OK);
    ck_assert_uint_eq(ds.n, 3);
    ck_assert_int_eq(ds.n_classes, 2);
    dataset_close(&ds);
}
END_TEST

START_TEST(test_spec_errors)
{
    struct dataset ds;

    ck_fails_with(dataset_open(&ds, "imagenet:/data"), RL_ERR_ARG, "unknown reader 'imagenet'");
    ck_assert(strstr(rl_error_msg(), "fashion-mnist") && strstr(rl_error_msg(), "idx:DIR"));
    ck_fails_with(dataset_open(&ds, ""), RL_ERR_ARG, "known:");
    ck_fails_with(dataset_open(&ds, "idx"), RL_ERR_ARG, "needs a directory");
    ck_fails_with(dataset_open(&ds, "idx:"), RL_ERR_ARG, "empty directory");
    ck_fails_with(dataset_open(&ds, "idx::test"), RL_ERR_ARG, "empty directory");
    ck_assert(strstr(dataset_specs_help(), "idx:DIR") != NULL);
}
END_TEST

/* --- CIFAR ----------------------------------------------------------------------- */

/* n records; record r has label(s) r % classes and pixel (c, p) = r + c * 50 + p */
static void write_cifar(const char *path, int n, int hundred, int n_classes)
{
    size_t rec = hundred ? 3074 : 3073;
    uint8_t *buf = xcalloc((size_t)n, rec);

    for (int r = 0; r < n; r++) {
        uint8_t *p = buf + (size_t)r * rec;

        if (hundred) {
            *p++ = (uint8_t)(r % 20);
            *p++ = (uint8_t)(r % n_classes);
        } else {
            *p++ = (uint8_t)(r % n_classes);
        }
        for (int c = 0; c < 3; c++)
            for (int q = 0; q < 1024; q++)
                *p++ = (uint8_t)(r + c * 50 + q);
    }
    write_bytes(path, buf, (size_t)n * rec, 0);
    free(buf);
}

START_TEST(test_cifar10)
{
    struct dataset ds;
    struct ds_image img = {0};
    char spec[1100];
    int label;

    mkdir_p(tp("cifar-10-batches-bin"));
    for (int b = 1; b <= 3; b++)
        write_cifar(tp("cifar-10-batches-bin/data_batch_%d.bin", b), 4, 0, 10);
    write_cifar(tp("cifar-10-batches-bin/test_batch.bin"), 3, 0, 10);
    write_text(tp("cifar-10-batches-bin/batches.meta.txt"),
               "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n");
    snprintf(spec, sizeof(spec), "cifar10:%s", tmpdir);   /* finds the subfolder */
    ck_assert_int_eq(dataset_open(&ds, spec), RL_OK);
    ck_assert_uint_eq(ds.n, 12);
    ck_assert_int_eq(ds.n_classes, 10);
    ck_assert_str_eq(ds.class_names[9], "truck");
    ck_assert_int_eq(ds.channels, 3);
    ck_assert_int_eq(dataset_load(&ds, 6, &img, &label), RL_OK);   /* batch 2, record 2 */
    ck_assert_int_eq(label, 2);
    ck_assert_int_eq(img.height, 32);
    /* HWC: pixel q = 5 of channel c = 1 */
    ck_assert_int_eq(img.data[5 * 3 + 1], (uint8_t)(2 + 50 + 5));
    dataset_close(&ds);

    snprintf(spec, sizeof(spec), "cifar10:%s/cifar-10-batches-bin:test", tmpdir);
    ck_assert_int_eq(dataset_open(&ds, spec), RL_OK);
    ck_assert_uint_eq(ds.n, 3);
    dataset_close(&ds);

    /* bad: label out of range, size not a whole number of records, wrong name count */
    write_cifar(tp("cifar-10-batches-bin/test_batch.bin"), 12, 0, 11);
    ck_fails_with(dataset_open(&ds, spec), RL_ERR_FORMAT, "test_batch.bin: label 10 of record 10");
    write_bytes(tp("cifar-10-batches-bin/test_batch.bin"), "abc", 3, 0);
    ck_fails_with(dataset_open(&ds, spec), RL_ERR_FORMAT, "test_batch.bin: 3 bytes");
    write_bytes(tp("cifar-10-batches-bin/test_batch.bin"), "", 0, 0);
    ck_fails_with(dataset_open(&ds, spec), RL_ERR_FORMAT, "test_batch.bin: 0 bytes");
    write_cifar(tp("cifar-10-batches-bin/test_batch.bin"), 3, 0, 10);
    write_text(tp("cifar-10-batches-bin/batches.meta.txt"), "airplane\nautomobile\n");
    ck_fails_with(dataset_open(&ds, spec), RL_ERR_FORMAT, "batches.meta.txt: 2 class names");
    remove(tp("cifar-10-batches-bin/batches.meta.txt"));
    ck_assert_int_eq(dataset_open(&ds, spec), RL_OK);
    ck_assert_str_eq(ds.class_names[3], "3");
    dataset_close(&ds);
    snprintf(spec, sizeof(spec), "cifar10:%s/nothing", tmpdir);
    ck_fails_with(dataset_open(&ds, spec), RL_ERR_IO, "nothing");
    ds_image_free(&img);
}
END_TEST

START_TEST(test_cifar100)
{
    struct dataset ds;
    struct ds_image img = {0};
    char spec[1100];
    int label;
    char names[2000] = "";

    write_cifar(tp("train.bin"), 205, 1, 100);
    write_cifar(tp("test.bin"), 7, 1, 100);
    for (int c = 0; c < 100; c++)
        snprintf(names + strlen(names), sizeof(names) - strlen(names), "fine%d\n", c);
    write_text(tp("fine_label_names.txt"), names);
    snprintf(spec, sizeof(spec), "cifar100:%s", tmpdir);
    ck_assert_int_eq(dataset_open(&ds, spec), RL_OK);
    ck_assert_uint_eq(ds.n, 205);
    ck_assert_int_eq(ds.n_classes, 100);
    ck_assert_str_eq(ds.class_names[42], "fine42");
    ck_assert_int_eq(dataset_load(&ds, 142, &img, &label), RL_OK);
    ck_assert_int_eq(label, 42);
    ck_assert_int_eq(img.data[2], (uint8_t)(142 + 100));
    dataset_close(&ds);
    snprintf(spec, sizeof(spec), "cifar100-coarse:%s:test", tmpdir);
    ck_assert_int_eq(dataset_open(&ds, spec), RL_OK);
    ck_assert_int_eq(ds.n_classes, 20);
    ck_assert_int_eq(dataset_label(&ds, 6), 6);
    dataset_close(&ds);
    /* a fine label over 99 */
    write_cifar(tp("test.bin"), 101, 1, 101);
    snprintf(spec, sizeof(spec), "cifar100:%s:test", tmpdir);
    ck_fails_with(dataset_open(&ds, spec), RL_ERR_FORMAT, "test.bin: label 100 of record 100");
    ds_image_free(&img);
}
END_TEST

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
    uint8_t *data = read_all(good_path, &n);
    const char *bad = tp("%s", bad_name);

    for (size_t cut = 0; cut < n; cut += (cut < 64 ? 1 : 7)) {
        write_bytes(bad, data, cut, 0);
        ck_fails_with(image_read_file(bad, &img), RL_ERR_FORMAT, bad_name);
    }
    /* garbage after a valid signature */
    for (size_t i = 8; i < n; i++)
        data[i] = (uint8_t)(i * 37 + 11);
    write_bytes(bad, data, n, 0);
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
    write_text(tp("text.jpg"), "hello");
    ck_fails_with(image_read_file(tp("text.jpg"), &img), RL_ERR_FORMAT, "not a PNG or JPEG");
    ck_fails_with(image_read_file(tp("none.png"), &img), RL_ERR_IO, "none.png");
    /* a PNG whose header claims 60000 x 60000 */
    {
        size_t n;
        uint8_t *d = read_all(tp("ok.png"), &n);
        uLong crc;

        d[16] = 0; d[17] = 0; d[18] = 0xea; d[19] = 0x60;
        d[20] = 0; d[21] = 0; d[22] = 0xea; d[23] = 0x60;
        crc = crc32(0, d + 12, 17);
        d[29] = (uint8_t)(crc >> 24); d[30] = (uint8_t)(crc >> 16);
        d[31] = (uint8_t)(crc >> 8); d[32] = (uint8_t)crc;
        write_bytes(tp("huge.png"), d, n, 0);
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

    mkdir_p(tp("train"));
    mkdir_p(tp("test"));
    mkdir_p(tp("train/sea_lion"));
    mkdir_p(tp("train/cat"));
    mkdir_p(tp("train/dog"));
    mkdir_p(tp("test/dog"));
    write_png(tp("train/cat/b.png"), 5, 6, 3, 1);
    write_jpeg(tp("train/cat/a.JPG"), 8, 8, 3, 2);
    write_text(tp("train/cat/notes.txt"), "ignored");
    write_png(tp("train/dog/x.png"), 4, 4, 1, 3);
    write_png(tp("train/sea_lion/y.png"), 3, 9, 4, 4);
    write_png(tp("test/dog/z.png"), 2, 2, 3, 5);
    snprintf(spec, sizeof(spec), "folder:%s", tmpdir);
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

    write_text(tp("classnames.txt"), "dog\tgood dog\nsea_lion\tsea lion (otariid)\n");
    write_text(tp("templates.txt"), "a photo of a {}.\na blurry photo of a {}.\n");
    snprintf(spec, sizeof(spec), "folder:%s:test", tmpdir);
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
    write_text(tp("classnames.txt"), "one\ntwo\n");
    ck_fails_with(dataset_open(&ds, spec), RL_ERR_FORMAT, "classnames.txt: 2 names for 3");
    write_text(tp("classnames.txt"), "kitty\ndoggo\nlion\n");
    write_text(tp("templates.txt"), "a photo of a thing.\n");
    ck_fails_with(dataset_open(&ds, spec), RL_ERR_FORMAT, "templates.txt: line 1 has no {}");
    remove(tp("templates.txt"));
    ck_assert_int_eq(dataset_open(&ds, spec), RL_OK);
    ck_assert_str_eq(ds.class_names[1], "doggo");
    dataset_close(&ds);
    mkdir_p(tp("test/cat"));
    ck_fails_with(dataset_open(&ds, spec), RL_ERR_FORMAT, "test/cat: empty class folder");
    rmdir(tp("test/cat"));
    mkdir_p(tp("test/bird"));
    ck_fails_with(dataset_open(&ds, spec), RL_ERR_FORMAT, "test/bird: class folder not in");
    rmdir(tp("test/bird"));
    write_bytes(tp("test/dog/z.png"), "\x89PNG\r\n\x1a\n\0\0", 10, 0);
    ck_assert_int_eq(dataset_open(&ds, spec), RL_OK);
    ck_fails_with(dataset_load(&ds, 0, &img, &label), RL_ERR_FORMAT, "test/dog/z.png: PNG:");
    dataset_close(&ds);
    snprintf(spec, sizeof(spec), "folder:%s/train", tmpdir);
    ck_fails_with(dataset_open(&ds, spec), RL_ERR_IO, "no train/ folder");
    ds_image_free(&img);
}
END_TEST

/* --- shapes ------------------------------------------------------------------------ */

START_TEST(test_shapes)
{
    struct dataset ds, dc, dt;
    struct ds_image a = {0}, b = {0};
    char cap1[256], cap2[256];
    int la, lb, kinds[4] = {0};

    ck_assert_int_eq(dataset_open(&ds, "shapes"), RL_OK);
    ck_assert_int_eq(dataset_open(&dc, "shapes-count:train"), RL_OK);
    ck_assert_int_eq(dataset_open(&dt, "shapes:test"), RL_OK);
    ck_assert_int_eq(ds.n_classes, 4);
    ck_assert_str_eq(ds.class_names[1], "square");
    ck_assert_int_eq(dc.n_classes, 3);
    ck_assert_uint_gt(ds.n, dt.n);
    ck_assert_int_eq(ds.height, 64);
    /* item i is the same whatever was loaded before, and in every dataset handle */
    ck_assert_int_eq(dataset_load(&ds, 12345, &a, &la), RL_OK);
    ck_assert_int_eq(dataset_caption(&ds, 12345, cap1, sizeof(cap1)), RL_OK);
    ck_assert_int_eq(dataset_load(&ds, 7, &b, &lb), RL_OK);
    ck_assert_int_eq(dataset_load(&dc, 12345, &b, &lb), RL_OK);
    ck_assert_mem_eq(a.data, b.data, 64 * 64 * 3);
    ck_assert_int_eq(dataset_caption(&dc, 12345, cap2, sizeof(cap2)), RL_OK);
    ck_assert_str_eq(cap1, cap2);
    ck_assert_int_eq(la, dataset_label(&ds, 12345));
    ck_assert_str_eq(ds.class_names[la], ds.class_names[dataset_label(&ds, 12345)]);
    /* the test split is another stream */
    ck_assert_int_eq(dataset_load(&dt, 12345 % dt.n, &b, &lb), RL_OK);
    ck_assert(memcmp(a.data, b.data, 64 * 64 * 3) != 0);
    for (size_t i = 0; i < 200; i++) {
        char cap[256];
        int n_shapes = 0, lab = dataset_label(&ds, i), cnt = dataset_label(&dc, i);
        const char *first_kind;

        ck_assert_int_eq(dataset_caption(&ds, i, cap, sizeof(cap)), RL_OK);
        ck_assert(strncmp(cap, "a small ", 8) == 0 || strncmp(cap, "a large ", 8) == 0);
        for (const char *p = cap; *p; p++)
            n_shapes += (p == cap || p[-1] == ' ') && (!strncmp(p, "small ", 6) ||
                                                        !strncmp(p, "large ", 6));
        ck_assert_int_eq(cnt, n_shapes - 1);
        first_kind = ds.class_names[lab];
        {
            /* the first shape's kind is the first kind word in the caption */
            const char *best = NULL;

            for (int k = 0; k < 4; k++) {
                const char *q = strstr(cap, ds.class_names[k]);

                if (q && (!best || q < best))
                    best = q;
            }
            ck_assert_ptr_nonnull(best);
            ck_assert(strncmp(best, first_kind, strlen(first_kind)) == 0);
        }
        kinds[lab]++;
        if (i == 0)
            printf("datasets: shapes item 0: \"%s\"\n", cap);
    }
    for (int k = 0; k < 4; k++)
        ck_assert_int_gt(kinds[k], 20);
    /* truncated caption buffers stay terminated */
    ck_assert_int_eq(dataset_caption(&ds, 3, cap1, 10), RL_OK);
    ck_assert_uint_eq(strlen(cap1), 9);
    dataset_close(&dt);
    ck_fails_with(dataset_open(&dt, "shapes:/some/dir"), RL_ERR_ARG, "takes no argument");
    dataset_close(&ds);
    dataset_close(&dc);
    ds_image_free(&a);
    ds_image_free(&b);
}
END_TEST

/* --- Fashion-MNIST, the real files -------------------------------------------- */

#define FASHION_DIR "/usr/share/datasets/fashion-mnist"

START_TEST(test_fashion_mnist_real)
{
    struct dataset ds;
    struct ds_image img = {0};
    struct stat st;
    long sum = 0;
    int label;

    if (stat(FASHION_DIR, &st) != 0) {
        printf("datasets: %s absent (package dataset-fashion-mnist); real-data test skipped\n",
               FASHION_DIR);
        return;
    }
    ck_assert_int_eq(dataset_open(&ds, "fashion-mnist:test"), RL_OK);
    ck_assert_uint_eq(ds.n, 10000);
    ck_assert_int_eq(ds.n_classes, 10);
    ck_assert_int_eq(ds.height, 28);
    ck_assert_int_eq(ds.width, 28);
    ck_assert_str_eq(ds.class_names[0], "T-shirt/top");
    ck_assert_int_eq(dataset_load(&ds, 0, &img, &label), RL_OK);
    ck_assert_int_eq(label, 9);
    for (int i = 0; i < 28 * 28; i++)
        sum += img.data[i];
    ck_assert_int_eq(sum, 33456);
    ck_assert_int_eq(dataset_label(&ds, 1), 2);
    dataset_close(&ds);

    ck_assert_int_eq(dataset_open(&ds, "fashion-mnist"), RL_OK);
    ck_assert_uint_eq(ds.n, 60000);
    ck_assert_int_eq(ds.split, DS_TRAIN);
    ck_assert_int_eq(dataset_load(&ds, 0, &img, &label), RL_OK);
    ck_assert_int_eq(label, 9);
    sum = 0;
    for (int i = 0; i < 28 * 28; i++)
        sum += img.data[i];
    ck_assert_int_eq(sum, 76247);
    {
        int *labels = dataset_labels(&ds);
        int count[10] = {0};

        for (size_t i = 0; i < ds.n; i++)
            count[labels[i]]++;
        for (int c = 0; c < 10; c++)
            ck_assert_int_eq(count[c], 6000);
        free(labels);
    }
    dataset_close(&ds);
    ds_image_free(&img);
}
END_TEST

/* --- few-shot sampling ---------------------------------------------------------- */

static int *toy_labels(size_t n, int n_classes)
{
    int *l = xmalloc_array(n, sizeof(*l));

    for (size_t i = 0; i < n; i++)   /* unbalanced: the last class gets half as many */
        l[i] = (int)((i % (size_t)(2 * n_classes - 1)) % (size_t)n_classes);
    return l;
}

START_TEST(test_kshot_counts_and_seed)
{
    const size_t n = 1000;
    const int nc = 7;
    int *labels = toy_labels(n, nc);
    static const int shots[] = { 1, 2, 4, 8, 16 };

    for (size_t s = 0; s < sizeof(shots) / sizeof(shots[0]); s++) {
        int k = shots[s];
        size_t *a, *b, *c, na, nb, ncc;
        int count[7] = {0}, same = 1;

        ck_assert_int_eq(fewshot_kshot(labels, n, nc, NULL, k, 42, &a, &na), RL_OK);
        ck_assert_uint_eq(na, (size_t)k * nc);
        for (size_t i = 0; i < na; i++) {
            count[labels[a[i]]]++;
            ck_assert(a[i] < n);
            if (i)
                ck_assert(a[i] > a[i - 1]);   /* sorted, no repeats */
        }
        for (int cl = 0; cl < nc; cl++)
            ck_assert_int_eq(count[cl], k);
        ck_assert_int_eq(fewshot_kshot(labels, n, nc, NULL, k, 42, &b, &nb), RL_OK);
        ck_assert_uint_eq(nb, na);
        ck_assert_mem_eq(a, b, na * sizeof(*a));
        ck_assert_int_eq(fewshot_kshot(labels, n, nc, NULL, k, 43, &c, &ncc), RL_OK);
        for (size_t i = 0; i < na; i++)
            same &= a[i] == c[i];
        ck_assert_msg(!same, "seeds 42 and 43 gave the same %d-shot set", k);
        free(a); free(b); free(c);
    }
    free(labels);
}
END_TEST

START_TEST(test_kshot_errors)
{
    int labels[] = { 0, 1, 1, 2, 2, 2 };
    const char *names[] = { "cat", "dog", "bird" };
    size_t *idx, n;

    ck_fails_with(fewshot_kshot(labels, 6, 3, names, 2, 1, &idx, &n), RL_ERR_ARG,
                  "class 0 ('cat') has 1 item, fewer than 2 shots");
    ck_assert_ptr_null(idx);
    ck_fails_with(fewshot_kshot(labels, 6, 4, NULL, 1, 1, &idx, &n), RL_ERR_ARG,
                  "class 3 has 0 items");
    ck_fails_with(fewshot_kshot(labels, 6, 2, NULL, 1, 1, &idx, &n), RL_ERR_ARG,
                  "label 2 of item 3");
    ck_fails_with(fewshot_kshot(labels, 6, 3, NULL, 0, 1, &idx, &n), RL_ERR_ARG, "0 shots");
    ck_fails_with(fewshot_fraction(labels, 6, 3, 0.0, 1, &idx, &n), RL_ERR_ARG, "fraction 0");
    ck_fails_with(fewshot_fraction(labels, 6, 3, 1.5, 1, &idx, &n), RL_ERR_ARG, "fraction 1.5");
    ck_assert_int_eq(fewshot_kshot(labels, 6, 3, names, 1, 1, &idx, &n), RL_OK);
    ck_assert_uint_eq(n, 3);
    ck_assert_uint_eq(idx[0], 0);
    free(idx);
}
END_TEST

START_TEST(test_fraction_counts)
{
    const size_t n = 1000;
    const int nc = 7;
    int *labels = toy_labels(n, nc);
    int per_class[7] = {0};
    size_t *a, *b, na, nb;

    for (size_t i = 0; i < n; i++)
        per_class[labels[i]]++;
    ck_assert_int_eq(fewshot_fraction(labels, n, nc, 0.5, 7, &a, &na), RL_OK);
    {
        int count[7] = {0};
        size_t want = 0;

        for (size_t i = 0; i < na; i++) {
            count[labels[a[i]]]++;
            if (i)
                ck_assert(a[i] > a[i - 1]);
        }
        for (int c = 0; c < nc; c++) {
            int w = (per_class[c] + 1) / 2;   /* round half up */

            if (per_class[c] > 0 && w == 0)
                w = 1;
            ck_assert_int_eq(count[c], w);
            want += (size_t)w;
        }
        ck_assert_uint_eq(na, want);
    }
    ck_assert_int_eq(fewshot_fraction(labels, n, nc, 0.5, 7, &b, &nb), RL_OK);
    ck_assert_uint_eq(na, nb);
    ck_assert_mem_eq(a, b, na * sizeof(*a));
    free(a); free(b);
    ck_assert_int_eq(fewshot_fraction(labels, n, nc, 1.0, 7, &a, &na), RL_OK);
    ck_assert_uint_eq(na, n);
    for (size_t i = 0; i < n; i++)
        ck_assert_uint_eq(a[i], i);
    free(a);
    ck_assert_int_eq(fewshot_fraction(labels, n, nc, 0.001, 7, &a, &na), RL_OK);
    ck_assert_uint_eq(na, 7);   /* at least one of every class */
    free(a);
    free(labels);
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

Suite *suite_datasets(void)
{
    Suite *s = suite_create("datasets");
    TCase *tc = tcase_create("idx");

    tcase_add_checked_fixture(tc, tmp_setup, tmp_teardown);
    tcase_add_test(tc, test_idx_plain_and_gzip);
    tcase_add_test(tc, test_idx_classnames_and_range);
    tcase_add_test(tc, test_idx_corrupt);
    tcase_add_test(tc, test_idx_missing);
    tcase_add_test(tc, test_spec_errors);
    suite_add_tcase(s, tc);

    tc = tcase_create("cifar");
    tcase_add_checked_fixture(tc, tmp_setup, tmp_teardown);
    tcase_add_test(tc, test_cifar10);
    tcase_add_test(tc, test_cifar100);
    suite_add_tcase(s, tc);

    tc = tcase_create("images");
    tcase_add_checked_fixture(tc, tmp_setup, tmp_teardown);
    tcase_add_test(tc, test_png_decode);
    tcase_add_test(tc, test_jpeg_decode);
    tcase_add_test(tc, test_image_corrupt);
    tcase_add_test(tc, test_folder);
    suite_add_tcase(s, tc);

    tc = tcase_create("shapes");
    tcase_add_test(tc, test_shapes);
    suite_add_tcase(s, tc);

    tc = tcase_create("fashion_mnist");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_fashion_mnist_real);
    suite_add_tcase(s, tc);

    tc = tcase_create("fewshot");
    tcase_add_test(tc, test_kshot_counts_and_seed);
    tcase_add_test(tc, test_kshot_errors);
    tcase_add_test(tc, test_fraction_counts);
    suite_add_tcase(s, tc);

    tc = tcase_create("transforms");
    tcase_add_test(tc, test_resize_matches_pillow);
    tcase_add_test(tc, test_crop_rounding_and_float);
    tcase_add_test(tc, test_augment_seeded);
    suite_add_tcase(s, tc);
    return s;
}
