/*
 * check_loader.c: the batch loader (datasets/loader.c): shapes, labels and
 * normalised values (one pixel by hand), every item once per epoch, seeds,
 * read-ahead on == off bit for bit, errors through the read-ahead thread,
 * the cache, closing mid-epoch. Fixtures (CIFAR and IDX files, folders of
 * PNGs) are written by the tests into a temporary directory.
 */
#define _XOPEN_SOURCE 700
#include <check.h>
#include <png.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/status.h"
#include "datasets/dataset.h"
#include "datasets/loader.h"
#include "suites.h"
#include "test_util.h"

static char tmpdir[256];

static void tmp_setup(void)
{
    ck_assert_ptr_nonnull(test_tmpdir_make(tmpdir, sizeof(tmpdir), "loader"));
}

static void tmp_teardown(void)
{
    test_tmpdir_remove(tmpdir);
}

/* a path inside tmpdir */
#define tp(...) test_path(tmpdir, __VA_ARGS__)

static void write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");

    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, n, f), n);
    fclose(f);
}

/* --- fixtures --------------------------------------------------------------- */

/* CIFAR-10 value of item i, channel c, row y, column x */
static uint8_t cifar_px(int i, int c, int y, int x)
{
    return (uint8_t)((i * 7 + c * 50 + y * 3 + x) & 255);
}

/* DIR/data_batch_1.bin with n records, label i % 10 */
static void write_cifar10(const char *dir, int n)
{
    uint8_t *buf = xmalloc((size_t)n * 3073);
    char path[1200];

    for (int i = 0; i < n; i++) {
        uint8_t *r = buf + (size_t)i * 3073;

        r[0] = (uint8_t)(i % 10);
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < 32; y++)
                for (int x = 0; x < 32; x++)
                    r[1 + c * 1024 + y * 32 + x] = cifar_px(i, c, y, x);
    }
    snprintf(path, sizeof(path), "%s/data_batch_1.bin", dir);
    write_bytes(path, buf, (size_t)n * 3073);
    free(buf);
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* DIR/train-{images-idx3,labels-idx1}-ubyte: n gray images of 8 x 8, label i % 3 */
static void write_idx(const char *dir, int n)
{
    uint8_t buf[16 + 64 * 16];
    char path[1200];

    ck_assert_int_le(n, 16);
    memset(buf, 0, 4);
    buf[2] = 8;
    buf[3] = 3;
    put_be32(buf + 4, (uint32_t)n);
    put_be32(buf + 8, 8);
    put_be32(buf + 12, 8);
    for (int i = 0; i < n; i++)
        for (int p = 0; p < 64; p++)
            buf[16 + i * 64 + p] = (uint8_t)(i * 11 + p * 3);
    snprintf(path, sizeof(path), "%s/train-images-idx3-ubyte", dir);
    write_bytes(path, buf, 16 + (size_t)n * 64);
    buf[3] = 1;
    put_be32(buf + 4, (uint32_t)n);
    for (int i = 0; i < n; i++)
        buf[8 + i] = (uint8_t)(i % 3);
    snprintf(path, sizeof(path), "%s/train-labels-idx1-ubyte", dir);
    write_bytes(path, buf, 8 + (size_t)n);
}

/* 8-bit PNG, gray (channels 1) or RGB (3) */
static void write_png(const char *path, int h, int w, int channels, int seed)
{
    FILE *f = fopen(path, "wb");
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    uint8_t *row = xmalloc((size_t)w * (size_t)channels);

    ck_assert_ptr_nonnull(f);
    ck_assert(png && info);
    ck_assert_int_eq(setjmp(png_jmpbuf(png)), 0);
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8,
                 channels == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++)
            for (int c = 0; c < channels; c++)
                row[x * channels + c] = (uint8_t)(x * 9 + y * 5 + c * 70 + seed * 13);
        png_write_row(png, row);
    }
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    fclose(f);
    free(row);
}

#define FOLDER_CLASSES 3
#define FOLDER_PER     5

/* tmpdir/img/train/{ant,bee,cat}/img0..4.png: 15 images of varying size,
 * some gray; returns the spec */
static const char *write_folder(void)
{
    static const char *const cls[FOLDER_CLASSES] = { "ant", "bee", "cat" };
    static char spec[1100];

    mkdir(tp("img"), 0755);
    mkdir(tp("img/train"), 0755);
    for (int c = 0; c < FOLDER_CLASSES; c++) {
        mkdir(tp("img/train/%s", cls[c]), 0755);
        for (int i = 0; i < FOLDER_PER; i++) {
            int k = c * FOLDER_PER + i;

            write_png(tp("img/train/%s/img%d.png", cls[c], i), 12 + (k * 5) % 17,
                      10 + (k * 7) % 23, k % 4 == 3 ? 1 : 3, k);
        }
    }
    snprintf(spec, sizeof(spec), "folder:%s", tp("img"));
    return spec;
}

/* --- helpers ----------------------------------------------------------------------- */

/* a whole epoch (or `max` batches) into flat arrays; returns the number of batches */
struct run {
    float  *x;
    int32_t labels[4096];
    size_t  index[4096];
    int     sizes[256];
    long    epochs[256];
    size_t  n_items;
    int     n_batches;
};

static void run_free(struct run *r)
{
    free(r->x);
    memset(r, 0, sizeof(*r));
}

static void collect(struct loader *L, int max, size_t per_item, struct run *r)
{
    struct loader_batch b;

    memset(r, 0, sizeof(*r));
    r->x = xmalloc_array(4096 * per_item, sizeof(float));
    for (int k = 0; k < max; k++) {
        int rc = loader_next(L, &b);

        ck_assert_msg(rc == RL_OK, "loader_next: %s", rl_error_msg());
        if (b.n == 0)
            break;
        ck_assert_int_lt(r->n_batches, 256);
        ck_assert_uint_le(r->n_items + (size_t)b.n, 4096);
        memcpy(r->x + r->n_items * per_item, b.x, (size_t)b.n * per_item * sizeof(float));
        memcpy(r->labels + r->n_items, b.labels, (size_t)b.n * sizeof(int32_t));
        memcpy(r->index + r->n_items, b.index, (size_t)b.n * sizeof(size_t));
        r->sizes[r->n_batches] = b.n;
        r->epochs[r->n_batches] = b.epoch;
        r->n_batches++;
        r->n_items += (size_t)b.n;
    }
}

static int runs_equal(const struct run *a, const struct run *b, size_t per_item)
{
    return a->n_items == b->n_items && a->n_batches == b->n_batches &&
           !memcmp(a->sizes, b->sizes, sizeof(a->sizes)) &&
           !memcmp(a->labels, b->labels, a->n_items * sizeof(int32_t)) &&
           !memcmp(a->index, b->index, a->n_items * sizeof(size_t)) &&
           !memcmp(a->x, b->x, a->n_items * per_item * sizeof(float));
}

static void open_ok(struct dataset *ds, const char *spec)
{
    int rc = dataset_open(ds, spec);

    ck_assert_msg(rc == RL_OK, "dataset_open(%s): %s", spec, rl_error_msg());
}

static struct loader *loader_ok(const struct dataset *ds, const size_t *idx, size_t n,
                                const struct loader_config *cfg)
{
    struct loader *L = NULL;
    int rc = loader_open(&L, ds, idx, n, cfg);

    ck_assert_msg(rc == RL_OK, "loader_open: %s", rl_error_msg());
    return L;
}

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

    nanosleep(&ts, NULL);
}

/* --- tests --------------------------------------------------------------------------- */

START_TEST(test_cifar_batches)
{
    struct dataset ds;
    struct loader_config cfg;
    struct loader *L;
    struct loader_batch b;
    const size_t per = 3 * 32 * 32;
    char spec[1100];

    write_cifar10(tmpdir, 10);
    snprintf(spec, sizeof(spec), "cifar10:%s", tmpdir);
    open_ok(&ds, spec);
    loader_config_init(&cfg, 4, 32);
    L = loader_ok(&ds, NULL, 0, &cfg);
    ck_assert_int_eq(loader_threaded(L), 0);   /* in-memory reader: synchronous */
    ck_assert_uint_eq(loader_batches_per_epoch(L), 3);
    ck_assert_uint_eq(loader_size(L), 10);
    for (int k = 0; k < 3; k++) {
        ck_assert_int_eq(loader_next(L, &b), RL_OK);
        ck_assert_int_eq(b.n, k < 2 ? 4 : 2);
        ck_assert_int_eq(b.epoch, 0);
        ck_assert_uint_eq(b.batch, (size_t)k);
        for (int j = 0; j < b.n; j++) {
            ck_assert_uint_eq(b.index[j], (size_t)(4 * k + j));
            ck_assert_int_eq(b.labels[j], (4 * k + j) % 10);
        }
        if (k == 0) {
            /* item 1, blue, row 5, column 7: 7 + 100 + 15 + 7 = 129;
             * (129 / 255 - 0.40821073) / 0.27577711 = 0.3541687 */
            ck_assert_float_eq_tol(b.x[1 * per + 2 * 1024 + 5 * 32 + 7], 0.3541687f, 1e-6f);
            /* every value of item 1 against the formula */
            for (int c = 0; c < 3; c++)
                for (int p = 0; p < 1024; p++) {
                    double v = cifar_px(1, c, p / 32, p % 32) / 255.0;
                    double want = (v - CLIP_MEAN[c]) / CLIP_STD[c];

                    ck_assert_double_eq_tol(b.x[per + (size_t)c * 1024 + (size_t)p], want, 1e-5);
                }
        }
    }
    ck_assert_int_eq(loader_next(L, &b), RL_OK);
    ck_assert_int_eq(b.n, 0);   /* end of the epoch, and it stays there */
    ck_assert_int_eq(loader_next(L, &b), RL_OK);
    ck_assert_int_eq(b.n, 0);
    loader_close(L);

    /* an index list, in its order */
    {
        const size_t idx[3] = { 7, 2, 9 };

        L = loader_ok(&ds, idx, 3, &cfg);
        ck_assert_int_eq(loader_next(L, &b), RL_OK);
        ck_assert_int_eq(b.n, 3);
        for (int j = 0; j < 3; j++) {
            ck_assert_uint_eq(b.index[j], idx[j]);
            ck_assert_int_eq(b.labels[j], (int)idx[j]);
        }
        /* item 9, red, row 0, column 0 = 63 */
        ck_assert_double_eq_tol(b.x[2 * per], (63 / 255.0 - CLIP_MEAN[0]) / CLIP_STD[0], 1e-5);
        loader_close(L);
    }
    dataset_close(&ds);
}
END_TEST

START_TEST(test_gray_resized)
{
    struct dataset ds;
    struct loader_config cfg;
    struct loader *L;
    struct loader_batch b;
    const size_t hw = 20 * 20;
    char spec[1100];

    write_idx(tmpdir, 6);
    snprintf(spec, sizeof(spec), "idx:%s", tmpdir);
    open_ok(&ds, spec);
    ck_assert_int_eq(ds.channels, 1);
    loader_config_init(&cfg, 6, 20);   /* 8 x 8 gray -> 20 x 20 RGB */
    L = loader_ok(&ds, NULL, 0, &cfg);
    ck_assert_int_eq(loader_next(L, &b), RL_OK);
    ck_assert_int_eq(b.n, 6);
    for (int j = 0; j < 6; j++) {
        const float *x = b.x + (size_t)j * 3 * hw;
        double lo = 1e9, hi = -1e9;

        ck_assert_int_eq(b.labels[j], j % 3);
        for (size_t p = 0; p < hw; p++) {
            /* the three channels come from one gray value */
            double g0 = x[p] * CLIP_STD[0] + CLIP_MEAN[0];
            double g1 = x[hw + p] * CLIP_STD[1] + CLIP_MEAN[1];
            double g2 = x[2 * hw + p] * CLIP_STD[2] + CLIP_MEAN[2];

            ck_assert_double_eq_tol(g0, g1, 1e-5);
            ck_assert_double_eq_tol(g0, g2, 1e-5);
            ck_assert(g0 > -1e-5 && g0 < 1 + 1e-5);
            lo = g0 < lo ? g0 : lo;
            hi = g0 > hi ? g0 : hi;
        }
        ck_assert(hi - lo > 0.1);   /* an image, not a constant */
    }
    loader_close(L);
    dataset_close(&ds);
}
END_TEST

START_TEST(test_epoch_coverage)
{
    struct dataset ds;
    struct loader_config cfg;
    struct loader *L;
    size_t idx[37];
    const size_t per = 3 * 8 * 8;
    struct run r0, r1, rep;

    open_ok(&ds, "shapes");
    for (size_t i = 0; i < 37; i++)
        idx[i] = 3 * i + 1;
    loader_config_init(&cfg, 8, 8);
    cfg.shuffle = 1;
    cfg.seed = 5;
    L = loader_ok(&ds, idx, 37, &cfg);
    ck_assert_uint_eq(loader_batches_per_epoch(L), 5);
    for (long e = 0; e < 3; e++) {
        struct run r;
        int seen[37] = { 0 };

        ck_assert_int_eq(loader_epoch(L, e), RL_OK);
        collect(L, 100, per, &r);
        ck_assert_int_eq(r.n_batches, 5);
        ck_assert_uint_eq(r.n_items, 37);
        for (int k = 0; k < 5; k++) {
            ck_assert_int_eq(r.sizes[k], k < 4 ? 8 : 5);
            ck_assert_int_eq(r.epochs[k], e);
        }
        for (size_t j = 0; j < 37; j++) {
            ck_assert_uint_eq(r.index[j] % 3, 1);
            ck_assert_uint_lt(r.index[j] / 3, 37);
            seen[r.index[j] / 3]++;
            ck_assert_int_eq(r.labels[j], dataset_label(&ds, r.index[j]));
        }
        for (int i = 0; i < 37; i++)
            ck_assert_int_eq(seen[i], 1);
        if (e == 0)
            r0 = r;
        else if (e == 1)
            r1 = r;
        else
            run_free(&r);
    }
    /* shuffled: the orders of two epochs differ */
    ck_assert(memcmp(r0.index, r1.index, sizeof(size_t) * 37) != 0);
    loader_close(L);

    /* repeat: one stream across epochs, the same batches */
    cfg.repeat = 1;
    L = loader_ok(&ds, idx, 37, &cfg);
    collect(L, 10, per, &rep);
    ck_assert_int_eq(rep.n_batches, 10);
    ck_assert_int_eq(rep.epochs[4], 0);
    ck_assert_int_eq(rep.epochs[5], 1);
    ck_assert_mem_eq(rep.index, r0.index, 37 * sizeof(size_t));
    ck_assert_mem_eq(rep.index + 37, r1.index, 37 * sizeof(size_t));
    ck_assert_mem_eq(rep.x + 37 * per, r1.x, 37 * per * sizeof(float));
    loader_close(L);
    run_free(&rep);

    /* drop_last: four full batches of distinct items */
    cfg.repeat = 0;
    cfg.drop_last = 1;
    L = loader_ok(&ds, idx, 37, &cfg);
    ck_assert_uint_eq(loader_batches_per_epoch(L), 4);
    collect(L, 100, per, &rep);
    ck_assert_int_eq(rep.n_batches, 4);
    ck_assert_uint_eq(rep.n_items, 32);
    ck_assert_mem_eq(rep.index, r0.index, 32 * sizeof(size_t));
    loader_close(L);
    run_free(&rep);

    /* no shuffle: list order every epoch */
    cfg.drop_last = 0;
    cfg.shuffle = 0;
    L = loader_ok(&ds, idx, 37, &cfg);
    ck_assert_int_eq(loader_epoch(L, 3), RL_OK);
    collect(L, 100, per, &rep);
    ck_assert_mem_eq(rep.index, idx, sizeof(idx));
    loader_close(L);
    run_free(&rep);
    run_free(&r0);
    run_free(&r1);
    dataset_close(&ds);
}
END_TEST

START_TEST(test_seeds)
{
    struct dataset ds;
    struct loader_config cfg;
    struct loader *a, *b, *c;
    const size_t per = 3 * 16 * 16;
    struct run ra, rb, rc;

    open_ok(&ds, "shapes");
    loader_config_init(&cfg, 6, 16);
    cfg.shuffle = 1;
    cfg.transform.augment = 1;
    cfg.seed = 42;
    {
        size_t idx[20];

        for (size_t i = 0; i < 20; i++)
            idx[i] = i * 5;
        a = loader_ok(&ds, idx, 20, &cfg);
        b = loader_ok(&ds, idx, 20, &cfg);
        cfg.seed = 43;
        c = loader_ok(&ds, idx, 20, &cfg);
    }
    for (long e = 0; e < 2; e++) {
        loader_epoch(a, e);
        loader_epoch(c, e);
        collect(a, 100, per, &ra);
        collect(c, 100, per, &rc);
        /* b: epoch 1 first (a resumed run), then epoch 0 */
        loader_epoch(b, 1 - e);
        collect(b, 100, per, &rb);
        run_free(&rb);
        loader_epoch(b, e);
        collect(b, 100, per, &rb);
        ck_assert_msg(runs_equal(&ra, &rb, per), "same seed, epoch %ld: batches differ", e);
        ck_assert(memcmp(ra.index, rc.index, 20 * sizeof(size_t)) != 0);
        ck_assert(memcmp(ra.x, rc.x, 20 * per * sizeof(float)) != 0);
        run_free(&ra);
        run_free(&rb);
        run_free(&rc);
    }
    loader_close(a);
    loader_close(b);
    loader_close(c);
    dataset_close(&ds);
}
END_TEST

START_TEST(test_readahead_bit_exact)
{
    struct dataset ds;
    struct loader_config cfg;
    const size_t per = 3 * 16 * 16;
    struct run ref[2], got;
    struct loader *L;

    open_ok(&ds, write_folder());
    ck_assert_uint_eq(ds.n, FOLDER_CLASSES * FOLDER_PER);
    loader_config_init(&cfg, 4, 16);
    cfg.shuffle = 1;
    cfg.transform.augment = 1;
    cfg.seed = 7;
    cfg.readahead = 0;
    L = loader_ok(&ds, NULL, 0, &cfg);
    ck_assert_int_eq(loader_threaded(L), 0);
    for (int e = 0; e < 2; e++) {
        loader_epoch(L, e);
        collect(L, 100, per, &ref[e]);
        ck_assert_uint_eq(ref[e].n_items, ds.n);
    }
    loader_close(L);
    for (int ra = LOADER_READAHEAD_AUTO; ra <= 3; ra++) {
        if (ra == 0)
            continue;
        cfg.readahead = ra;
        L = loader_ok(&ds, NULL, 0, &cfg);
        ck_assert_int_eq(loader_threaded(L), 1);   /* auto: folder streams */
        for (int e = 0; e < 2; e++) {
            loader_epoch(L, e);
            collect(L, 100, per, &got);
            ck_assert_msg(runs_equal(&ref[e], &got, per), "read-ahead %d, epoch %d differs", ra, e);
            run_free(&got);
        }
        /* restart mid-epoch: the same first batches again */
        loader_epoch(L, 1);
        collect(L, 2, per, &got);
        run_free(&got);
        loader_epoch(L, 0);
        collect(L, 100, per, &got);
        ck_assert(runs_equal(&ref[0], &got, per));
        run_free(&got);
        loader_close(L);
        /* repeat crosses the epoch boundary with the same batches */
        cfg.repeat = 1;
        L = loader_ok(&ds, NULL, 0, &cfg);
        collect(L, 8, per, &got);
        ck_assert_int_eq(got.n_batches, 8);
        ck_assert_int_eq(got.epochs[3], 0);
        ck_assert_int_eq(got.epochs[4], 1);
        ck_assert_mem_eq(got.index, ref[0].index, ds.n * sizeof(size_t));
        ck_assert_mem_eq(got.x + ds.n * per, ref[1].x, ds.n * per * sizeof(float));
        run_free(&got);
        loader_close(L);
        cfg.repeat = 0;
    }
    run_free(&ref[0]);
    run_free(&ref[1]);
    dataset_close(&ds);
}
END_TEST

/* bee/img2.png is item 7 (ant 0-4, bee 5-9): batch 1 with batches of 4 */
START_TEST(test_corrupt_through_thread)
{
    static const char junk[] = "\x89PNG\r\n\x1a\n this is not a png at all";
    struct dataset ds;
    struct loader_config cfg;
    struct loader_batch b;
    const char *spec = write_folder();

    write_bytes(tp("img/train/bee/img2.png"), junk, sizeof(junk) - 1);
    open_ok(&ds, spec);
    loader_config_init(&cfg, 4, 16);
    for (int ra = 0; ra <= 2; ra++) {
        struct loader *L;
        int rc;

        cfg.readahead = ra;
        L = loader_ok(&ds, NULL, 0, &cfg);
        ck_assert_int_eq(loader_threaded(L), ra > 0);
        ck_assert_int_eq(loader_next(L, &b), RL_OK);
        ck_assert_int_eq(b.n, 4);
        for (int k = 0; k < 2; k++) {   /* the error stays until a restart */
            rc = loader_next(L, &b);
            ck_assert_int_eq(rc, RL_ERR_FORMAT);
            ck_assert_int_eq(b.n, 0);
            ck_assert_msg(strstr(rl_error_msg(), "bee/img2.png") != NULL,
                          "message '%s' does not name the file", rl_error_msg());
            ck_assert_msg(strstr(rl_error_msg(), "PNG") != NULL, "message '%s'", rl_error_msg());
        }
        ck_assert_int_eq(loader_epoch(L, 0), RL_OK);
        ck_assert_int_eq(loader_next(L, &b), RL_OK);
        ck_assert_int_eq(b.n, 4);
        ck_assert_uint_eq(b.index[3], 3);
        loader_close(L);
    }
    /* a list without the bad item reads through */
    {
        const size_t idx[4] = { 0, 6, 8, 14 };
        struct loader *L;

        cfg.readahead = 2;
        L = loader_ok(&ds, idx, 4, &cfg);
        ck_assert_int_eq(loader_next(L, &b), RL_OK);
        ck_assert_int_eq(b.n, 4);
        ck_assert_int_eq(b.labels[3], 2);
        loader_close(L);
    }
    dataset_close(&ds);
}
END_TEST

START_TEST(test_cache)
{
    struct dataset ds;
    struct loader_config cfg;
    const size_t per = 3 * 16 * 16;
    struct run first, again, plain;
    struct loader *L;
    const char *spec = write_folder();

    open_ok(&ds, spec);
    loader_config_init(&cfg, 4, 16);
    cfg.shuffle = 1;
    L = loader_ok(&ds, NULL, 0, &cfg);
    collect(L, 100, per, &plain);
    loader_close(L);
    cfg.cache = 1;
    L = loader_ok(&ds, NULL, 0, &cfg);
    collect(L, 100, per, &first);
    ck_assert(runs_equal(&plain, &first, per));
    /* the files are gone: epoch 1 comes from the cache (in its own order) */
    for (int c = 0; c < FOLDER_CLASSES; c++)
        for (int i = 0; i < FOLDER_PER; i++)
            ck_assert_int_eq(remove(tp("img/train/%s/img%d.png", c == 0 ? "ant" : c == 1 ? "bee"
                                       : "cat", i)), 0);
    loader_epoch(L, 1);
    collect(L, 100, per, &again);
    ck_assert_uint_eq(again.n_items, ds.n);
    for (size_t j = 0; j < ds.n; j++) {
        size_t k;

        for (k = 0; k < ds.n && first.index[k] != again.index[j]; k++)
            ;
        ck_assert_uint_lt(k, ds.n);
        ck_assert_int_eq(first.labels[k], again.labels[j]);
        ck_assert_mem_eq(first.x + k * per, again.x + j * per, per * sizeof(float));
    }
    loader_close(L);
    run_free(&plain);
    run_free(&first);
    run_free(&again);
    dataset_close(&ds);
}
END_TEST

START_TEST(test_close_mid_epoch)
{
    struct dataset ds;
    struct loader_config cfg;
    struct loader_batch b;
    const char *spec = write_folder();

    open_ok(&ds, spec);
    loader_config_init(&cfg, 2, 24);
    cfg.transform.augment = 1;
    cfg.shuffle = 1;
    cfg.repeat = 1;
    for (int k = 0; k < 30; k++) {
        struct loader *L;

        cfg.readahead = 1 + k % 3;
        cfg.seed = (uint64_t)k;
        L = loader_ok(&ds, NULL, 0, &cfg);
        for (int j = 0; j < k % 4; j++)
            ck_assert_int_eq(loader_next(L, &b), RL_OK);
        if (k % 5 == 1)
            ck_assert_int_eq(loader_epoch(L, 3), RL_OK);   /* restart while it works */
        loader_close(L);                                 /* close while it works */
    }
    dataset_close(&ds);
}
END_TEST

/* a slow consumer with a fast producer never waits after the first batch */
START_TEST(test_readahead_keeps_ahead)
{
    struct dataset ds;
    struct loader_config cfg;
    struct loader_batch b;
    struct loader_stats st;
    struct loader *L;
    const char *spec = write_folder();

    open_ok(&ds, spec);
    loader_config_init(&cfg, 2, 8);
    cfg.repeat = 1;
    L = loader_ok(&ds, NULL, 0, &cfg);
    for (int k = 0; k < 8; k++) {
        ck_assert_int_eq(loader_next(L, &b), RL_OK);
        ck_assert_int_eq(b.n, k % 8 == 7 ? 1 : 2);
        sleep_ms(25);   /* the "training step" */
    }
    loader_get_stats(L, &st);
    ck_assert_uint_eq(st.batches, 8);
    /* the first batch may wait; the later ones were decoded during the steps
     * (one more is tolerated for a loaded machine) */
    ck_assert_msg(st.waits <= 2, "%lu waits in 8 batches", st.waits);
    loader_close(L);

    /* an epoch loop without repeat: the next epoch's first batches are read
     * ahead while the last ones of this epoch are used */
    cfg.repeat = 0;
    cfg.batch_size = 4;
    cfg.shuffle = 1;
    L = loader_ok(&ds, NULL, 0, &cfg);
    for (long e = 0; e < 3; e++) {
        int n = 0;

        ck_assert_int_eq(loader_epoch(L, e), RL_OK);
        while (loader_next(L, &b) == RL_OK && b.n > 0) {
            ck_assert_int_eq(b.epoch, e);
            n += b.n;
            sleep_ms(15);
        }
        ck_assert_int_eq(b.n, 0);
        ck_assert_int_eq(b.epoch, e);
        ck_assert_int_eq(n, FOLDER_CLASSES * FOLDER_PER);
    }
    loader_get_stats(L, &st);
    ck_assert_uint_eq(st.batches, 12);
    ck_assert_msg(st.waits <= 2, "%lu waits in 12 batches over 3 epochs", st.waits);
    loader_close(L);
    dataset_close(&ds);
}
END_TEST

START_TEST(test_bad_config)
{
    struct dataset ds;
    struct loader_config cfg;
    struct loader *L = (struct loader *)&cfg;
    const size_t bad[2] = { 3, 100000 };

    open_ok(&ds, "shapes:test");
    loader_config_init(&cfg, 0, 8);
    ck_assert_int_eq(loader_open(&L, &ds, NULL, 0, &cfg), RL_ERR_ARG);
    ck_assert_ptr_null(L);
    loader_config_init(&cfg, 4, 0);
    ck_assert_int_eq(loader_open(&L, &ds, NULL, 0, &cfg), RL_ERR_ARG);
    loader_config_init(&cfg, 4, 8);
    ck_assert_int_eq(loader_open(&L, &ds, bad, 2, &cfg), RL_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(rl_error_msg(), "100000"));
    ck_assert_int_eq(loader_open(&L, &ds, bad, 0, &cfg), RL_ERR_ARG);
    cfg.drop_last = 1;
    ck_assert_int_eq(loader_open(&L, &ds, bad, 1, &cfg), RL_ERR_ARG);
    cfg.drop_last = 0;
    cfg.readahead = LOADER_READAHEAD_MAX + 1;
    ck_assert_int_eq(loader_open(&L, &ds, NULL, 0, &cfg), RL_ERR_ARG);
    cfg.readahead = LOADER_READAHEAD_AUTO;
    cfg.cache = 1;
    cfg.transform.augment = 1;
    ck_assert_int_eq(loader_open(&L, &ds, NULL, 0, &cfg), RL_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(rl_error_msg(), "augmentation"));
    cfg.cache = 0;
    cfg.transform.std[1] = 0.0f;
    ck_assert_int_eq(loader_open(&L, &ds, NULL, 0, &cfg), RL_ERR_ARG);
    loader_config_init(&cfg, 4, 8);
    L = loader_ok(&ds, NULL, 0, &cfg);
    ck_assert_uint_eq(loader_size(L), ds.n);
    ck_assert_int_eq(loader_epoch(L, -1), RL_ERR_ARG);
    loader_close(L);
    /* idx NULL with a count: the first n items, and no more than there are */
    {
        struct loader_batch b;

        cfg.shuffle = 0;
        L = loader_ok(&ds, NULL, 6, &cfg);
        ck_assert_uint_eq(loader_size(L), 6);
        ck_assert_int_eq(loader_next(L, &b), RL_OK);
        for (int i = 0; i < b.n; i++)
            ck_assert_uint_eq(b.index[i], (size_t)i);
        loader_close(L);
    }
    ck_assert_int_eq(loader_open(&L, &ds, NULL, ds.n + 1, &cfg), RL_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(rl_error_msg(), "first"));
    loader_close(NULL);
    dataset_close(&ds);
}
END_TEST

Suite *suite_loader(void)
{
    Suite *s = suite_create("loader");
    TCase *tc = tcase_create("loader");

    tcase_add_checked_fixture(tc, tmp_setup, tmp_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_cifar_batches);
    tcase_add_test(tc, test_gray_resized);
    tcase_add_test(tc, test_epoch_coverage);
    tcase_add_test(tc, test_seeds);
    tcase_add_test(tc, test_readahead_bit_exact);
    tcase_add_test(tc, test_corrupt_through_thread);
    tcase_add_test(tc, test_cache);
    tcase_add_test(tc, test_close_mid_epoch);
    tcase_add_test(tc, test_readahead_keeps_ahead);
    tcase_add_test(tc, test_bad_config);
    suite_add_tcase(s, tc);
    return s;
}
