/*
 * check_datasets.c: dataset readers on fixture files the tests write into a
 * temporary directory (plain and corrupted variants of IDX and CIFAR), the
 * procedural shapes corpus, the real Fashion-MNIST when installed, and
 * few-shot and fraction sampling. Images, class folders and the transforms
 * are in check_images.c; dataset_files.h holds what both use.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>


#include "core/alloc.h"
#include "core/status.h"
#include "datasets/dataset.h"
#include "datasets/fewshot.h"
#include "dataset_files.h"
#include "suites.h"
#include "test_cmd.h"
#include "test_util.h"

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
    ds_write_bytes(path, buf, n, gz);
    n = idx_labels(buf, 12, 3);
    snprintf(path, sizeof(path), "%s/train-labels-idx1-ubyte%s", dir, ext);
    ds_write_bytes(path, buf, n, gz);
    n = idx_images(buf, 5, 4, 5);
    snprintf(path, sizeof(path), "%s/t10k-images-idx3-ubyte%s", dir, ext);
    ds_write_bytes(path, buf, n, gz);
    n = idx_labels(buf, 5, 3);
    snprintf(path, sizeof(path), "%s/t10k-labels-idx1-ubyte%s", dir, ext);
    ds_write_bytes(path, buf, n, gz);
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
    ds_mkdir(tp("plain"));
    ds_mkdir(tp("gz"));
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

    ds_mkdir(tp("d"));
    write_idx_set(tp("d"), 0);
    test_write_text(tp("d/classnames.txt"), "zero\r\none\n\ntwo\n");
    snprintf(spec, sizeof(spec), "idx:%s:train", tp("d"));
    ck_assert_int_eq(dataset_open(&ds, spec), RL_OK);
    ck_assert_int_eq(ds.n_classes, 3);
    ck_assert_str_eq(ds.class_names[0], "zero");
    ck_assert_str_eq(ds.class_names[1], "one");
    ck_assert_str_eq(ds.class_names[2], "two");
    dataset_close(&ds);

    /* a label >= the number of class names */
    n = idx_labels(buf, 12, 4);
    ds_write_bytes(tp("d/train-labels-idx1-ubyte"), buf, n, 0);
    ck_fails_with(dataset_open(&ds, spec), RL_ERR_FORMAT, "train-labels-idx1-ubyte: label 3");
    ck_assert_ptr_null(ds.ops);

    /* fashion-mnist:DIR checks against its 10 built-in classes */
    remove(tp("d/classnames.txt"));
    n = idx_labels(buf, 12, 11);
    ds_write_bytes(tp("d/train-labels-idx1-ubyte"), buf, n, 0);
    snprintf(spec, sizeof(spec), "fashion-mnist:%s", tp("d"));
    ck_fails_with(dataset_open(&ds, spec), RL_ERR_FORMAT, "label 10 of item 10 is out of range");
    n = idx_labels(buf, 12, 10);
    ds_write_bytes(tp("d/train-labels-idx1-ubyte"), buf, n, 0);
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

    ds_tmp_teardown();
    ds_tmp_setup();
    write_idx_set(ds_tmpdir, gz);
    ds_write_bytes(tp("%s", name), bad, n, 0);
    snprintf(spec, sizeof(spec), "idx:%s", ds_tmpdir);
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
    ds_tmp_teardown();
    ds_tmp_setup();
    ds_write_bytes(tp("x.gz"), good, n, 1);
    gzb = (uint8_t *)test_slurp(tp("x.gz"), &gzn);
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
    ds_tmp_teardown();
    ds_tmp_setup();
    ds_write_bytes(tp("x.gz"), bad, n, 1);
    gzb = (uint8_t *)test_slurp(tp("x.gz"), &gzn);
    idx_bad("train-images-idx3-ubyte.gz", gzb, gzn, 1, RL_ERR_FORMAT, "truncated");
    free(gzb);
    bad[4] = 0;
    bad[7] = 11;
    ds_tmp_teardown();
    ds_tmp_setup();
    ds_write_bytes(tp("x.gz"), bad, n, 1);
    gzb = (uint8_t *)test_slurp(tp("x.gz"), &gzn);
    idx_bad("train-images-idx3-ubyte.gz", gzb, gzn, 1, RL_ERR_FORMAT, "data continues");
    free(gzb);
}
END_TEST

START_TEST(test_idx_missing)
{
    struct dataset ds;
    char spec[1100];

    snprintf(spec, sizeof(spec), "idx:%s/nowhere", ds_tmpdir);
    ck_fails_with(dataset_open(&ds, spec), RL_ERR_IO, "nowhere");
    snprintf(spec, sizeof(spec), "idx:%s", ds_tmpdir);
    ck_fails_with(dataset_open(&ds, spec), RL_ERR_IO, "no train images file");
    /* EMNIST-style prefixed names are found by scanning */
    {
        uint8_t buf[4096];
        size_t n = idx_images(buf, 3, 2, 2);

        ds_write_bytes(tp("emnist-x-test-images-idx3-ubyte.gz"), buf, n, 1);
        n = idx_labels(buf, 3, 2);
        ds_write_bytes(tp("emnist-x-test-labels-idx1-ubyte"), buf, n, 0);
    }
    snprintf(spec, sizeof(spec), "idx:%s:test", ds_tmpdir);
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
    ds_write_bytes(path, buf, (size_t)n * rec, 0);
    free(buf);
}

START_TEST(test_cifar10)
{
    struct dataset ds;
    struct ds_image img = {0};
    char spec[1100];
    int label;

    ds_mkdir(tp("cifar-10-batches-bin"));
    for (int b = 1; b <= 3; b++)
        write_cifar(tp("cifar-10-batches-bin/data_batch_%d.bin", b), 4, 0, 10);
    write_cifar(tp("cifar-10-batches-bin/test_batch.bin"), 3, 0, 10);
    test_write_text(tp("cifar-10-batches-bin/batches.meta.txt"),
               "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n");
    snprintf(spec, sizeof(spec), "cifar10:%s", ds_tmpdir);   /* finds the subfolder */
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

    snprintf(spec, sizeof(spec), "cifar10:%s/cifar-10-batches-bin:test", ds_tmpdir);
    ck_assert_int_eq(dataset_open(&ds, spec), RL_OK);
    ck_assert_uint_eq(ds.n, 3);
    dataset_close(&ds);

    /* bad: label out of range, size not a whole number of records, wrong name count */
    write_cifar(tp("cifar-10-batches-bin/test_batch.bin"), 12, 0, 11);
    ck_fails_with(dataset_open(&ds, spec), RL_ERR_FORMAT, "test_batch.bin: label 10 of record 10");
    ds_write_bytes(tp("cifar-10-batches-bin/test_batch.bin"), "abc", 3, 0);
    ck_fails_with(dataset_open(&ds, spec), RL_ERR_FORMAT, "test_batch.bin: 3 bytes");
    ds_write_bytes(tp("cifar-10-batches-bin/test_batch.bin"), "", 0, 0);
    ck_fails_with(dataset_open(&ds, spec), RL_ERR_FORMAT, "test_batch.bin: 0 bytes");
    write_cifar(tp("cifar-10-batches-bin/test_batch.bin"), 3, 0, 10);
    test_write_text(tp("cifar-10-batches-bin/batches.meta.txt"), "airplane\nautomobile\n");
    ck_fails_with(dataset_open(&ds, spec), RL_ERR_FORMAT, "batches.meta.txt: 2 class names");
    remove(tp("cifar-10-batches-bin/batches.meta.txt"));
    ck_assert_int_eq(dataset_open(&ds, spec), RL_OK);
    ck_assert_str_eq(ds.class_names[3], "3");
    dataset_close(&ds);
    snprintf(spec, sizeof(spec), "cifar10:%s/nothing", ds_tmpdir);
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
    test_write_text(tp("fine_label_names.txt"), names);
    snprintf(spec, sizeof(spec), "cifar100:%s", ds_tmpdir);
    ck_assert_int_eq(dataset_open(&ds, spec), RL_OK);
    ck_assert_uint_eq(ds.n, 205);
    ck_assert_int_eq(ds.n_classes, 100);
    ck_assert_str_eq(ds.class_names[42], "fine42");
    ck_assert_int_eq(dataset_load(&ds, 142, &img, &label), RL_OK);
    ck_assert_int_eq(label, 42);
    ck_assert_int_eq(img.data[2], (uint8_t)(142 + 100));
    dataset_close(&ds);
    snprintf(spec, sizeof(spec), "cifar100-coarse:%s:test", ds_tmpdir);
    ck_assert_int_eq(dataset_open(&ds, spec), RL_OK);
    ck_assert_int_eq(ds.n_classes, 20);
    ck_assert_int_eq(dataset_label(&ds, 6), 6);
    dataset_close(&ds);
    /* a fine label over 99 */
    write_cifar(tp("test.bin"), 101, 1, 101);
    snprintf(spec, sizeof(spec), "cifar100:%s:test", ds_tmpdir);
    ck_fails_with(dataset_open(&ds, spec), RL_ERR_FORMAT, "test.bin: label 100 of record 100");
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

Suite *suite_datasets(void)
{
    Suite *s = suite_create("datasets");
    TCase *tc = tcase_create("idx");

    tcase_add_checked_fixture(tc, ds_tmp_setup, ds_tmp_teardown);
    tcase_add_test(tc, test_idx_plain_and_gzip);
    tcase_add_test(tc, test_idx_classnames_and_range);
    tcase_add_test(tc, test_idx_corrupt);
    tcase_add_test(tc, test_idx_missing);
    tcase_add_test(tc, test_spec_errors);
    suite_add_tcase(s, tc);

    tc = tcase_create("cifar");
    tcase_add_checked_fixture(tc, ds_tmp_setup, ds_tmp_teardown);
    tcase_add_test(tc, test_cifar10);
    tcase_add_test(tc, test_cifar100);
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
    return s;
}
