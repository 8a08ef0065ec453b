/*
 * check_encode.c: the model commands `randlora encode`, `randlora info` (on
 * safetensors files and model directories) and `randlora merge`, run
 * IN-PROCESS: each test calls cmd_encode / cmd_info / cmd_merge with an
 * argv, its stdout and stderr redirected to files (so `make check` needs
 * no ./randlora binary, and ASan/LSan see the commands' code).
 *
 *   text_golden      encode --text on tests/fixtures/clip_tiny: /text_embeds
 *                    equal PyTorch's base.text_embeds (golden.bin) within
 *                    1e-5, /input_ids the golden ids up to the end token, pad 0
 *   text_bytes       a clip-tiny preset directory with tokenizer_bytes.json (as
 *                    `randlora pretrain` writes): /text_embeds and /input_ids
 *                    equal the byte tokenizer + text tower run directly
 *   images_folder    encode --images folder:DIR (PNGs of varied size, gray and
 *                    RGB) equals the vision tower run directly on the same
 *                    transformed pixels; labels; --limit; the golden pixels
 *                    through the tower equal PyTorch's base.image_embeds
 *   preprocessor     DIR/preprocessor_config.json's mean/std/sizes are used
 *                    (Hugging Face crop rounding); a crop that is not the
 *                    model's image_size, and bad values, exit 2 with one line
 *   info             info on the fixture safetensors prints its tensor count,
 *                    dtypes and metadata; on the model directory the config
 *                    summary and the weights check
 *   merge            LoRA, VeRA and RandLoRA with random non-zero parameters
 *                    on both towers, exported by methods/adapter_io, merged:
 *                    the merged model's embeddings equal the adapted model's
 *                    within 1e-5; tokenizer files copied; a key naming no
 *                    layer, and -o DIR, exit 2
 *   hostile          malformed safetensors (truncated, header too large,
 *                    header past the end, offsets out of bounds, overlapping,
 *                    a gap, unknown dtype, unconvertible dtype, shape/size
 *                    mismatch, not JSON, a mis-shaped model tensor) given to
 *                    info and to encode --model: exit 2, one line on stderr
 *   usage            bad arguments: exit 2, one line
 */
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <limits.h>
#include <math.h>
#include <png.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/rng.h"
#include "core/status.h"
#include "datasets/dataset.h"
#include "datasets/transforms.h"
#include "cli/commands.h"
#include "methods/adapter.h"
#include "methods/adapter_io.h"
#include "models/clip.h"
#include "formats/safetensors.h"
#include "models/tokenizer.h"
#include "golden.h"
#include "suites.h"
#include "test_cmd.h"
#include "test_util.h"

#define GOLDEN_HINT "/usr/bin/python3 tests/ref/make_clip_golden.py"
#define GB   3        /* golden rows                      */
#define GCTX 12       /* fixture text context             */
#define GIMG 16       /* fixture image size               */
#define GD   16       /* fixture projection               */

/* ------------------------------------------------------------------------ */
/* temporary directory and paths                                             */

static char tmpdir[256];
static char fixdir[PATH_MAX];     /* absolute path of tests/fixtures/clip_tiny */

static void tmp_setup(void)
{
    ck_assert_ptr_nonnull(test_tmpdir_make(tmpdir, sizeof(tmpdir), "encode"));
    ck_assert_msg(realpath(fixture_path("clip_tiny"), fixdir) != NULL, "fixture: %s",
                  strerror(errno));
}

static void tmp_teardown(void)
{
    test_tmpdir_remove(tmpdir);
}

/* a path inside tmpdir */
#define tp(...) test_path(tmpdir, __VA_ARGS__)

static const char *fix(const char *name)
{
    static char bufs[4][PATH_MAX + 64];
    static int next;
    char *b = bufs[next++ % 4];

    snprintf(b, PATH_MAX + 64, "%s/%s", fixdir, name);
    return b;
}

static void write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");

    ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
    ck_assert_uint_eq(fwrite(data, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

static void write_text(const char *path, const char *text)
{
    write_bytes(path, text, strlen(text));
}

/* a model directory in tmp: config.json and (unless no_weights) the
 * fixture's model.safetensors, vocab.json, merges.txt as symlinks */
static const char *make_model_dir(const char *name, int no_weights)
{
    static const char *const files[] = { "config.json", "model.safetensors", "vocab.json",
                                         "merges.txt" };
    const char *dir = tp("%s", name);
    static char keep[4][1024];
    static int next;
    char *d = keep[next++ % 4];

    snprintf(d, 1024, "%s", dir);
    ck_assert_int_eq(mkdir(d, 0777), 0);
    for (size_t i = 0; i < 4; i++) {
        char link[1200];

        if (no_weights && i == 1)
            continue;
        snprintf(link, sizeof link, "%s/%s", d, files[i]);
        ck_assert_int_eq(symlink(fix(files[i]), link), 0);
    }
    return d;
}

/* ------------------------------------------------------------------------ */
/* running a command in-process with stdout and stderr captured (test_cmd.h) */

#define captured test_captured
#define captured_free test_captured_free
#define run_cmd(...) test_run_cmd(tmpdir, __VA_ARGS__)
#define assert_one_line_error test_assert_one_line_error
#define slurp test_slurp

/* ------------------------------------------------------------------------ */
/* reading the output file                                                   */

/* a whole dataset as float or int32, with its dims */
static void *h5_read(const char *path, const char *name, int is_int, size_t *rows, size_t *cols)
{
    hid_t f, d, s;
    hsize_t dims[2] = { 0, 0 };
    int rank;
    void *buf;

    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert_msg(f >= 0, "%s: cannot open", path);
    d = H5Dopen2(f, name, H5P_DEFAULT);
    ck_assert_msg(d >= 0, "%s: no dataset %s", path, name);
    s = H5Dget_space(d);
    rank = H5Sget_simple_extent_ndims(s);
    ck_assert(rank == 1 || rank == 2);
    H5Sget_simple_extent_dims(s, dims, NULL);
    *rows = dims[0];
    *cols = rank == 2 ? dims[1] : 0;
    buf = xmalloc_array(dims[0] * (rank == 2 ? dims[1] : 1) + 1, 4);
    ck_assert(H5Dread(d, is_int ? H5T_NATIVE_INT32 : H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL,
                      H5P_DEFAULT, buf) >= 0);
    if (!is_int) {
        hid_t t = H5Dget_type(d);

        ck_assert(H5Tget_class(t) == H5T_FLOAT && H5Tget_size(t) == 4);
        H5Tclose(t);
    }
    H5Sclose(s);
    H5Dclose(d);
    H5Fclose(f);
    return buf;
}

/* no OUT.tmp.* left in the directory */
static void assert_no_temp_files(void)
{
    char cmd[1200];

    snprintf(cmd, sizeof cmd, "ls %s | grep -q '\\.tmp\\.'", tmpdir);
    ck_assert_msg(system(cmd) != 0, "a temporary file was left in %s", tmpdir);
}

static void open_golden(struct golden *g)
{
    int rc = golden_open(g, fix("golden.bin"), GOLDEN_HINT);

    ck_assert_msg(rc == RL_OK, "%s", rl_error_msg());
}

static const float *gget(const struct golden *g, const char *name, size_t n)
{
    const struct golden_tensor *t = golden_find(g, name);

    ck_assert_msg(t != NULL, "golden tensor '%s' missing (%s)", name, GOLDEN_HINT);
    ck_assert_msg(t->n == n, "golden tensor '%s' has %zu elements, expected %zu", name, t->n, n);
    return t->data;
}

static void load_model(struct clip_model *m, const char *dir)
{
    int rc = clip_model_load(m, dir);

    ck_assert_msg(rc == RL_OK, "%s", rl_error_msg());
}

/* ------------------------------------------------------------------------ */
/* encode --text                                                             */

START_TEST(test_text_golden)
{
    struct golden g;
    char *text = xcalloc(4096, 1);
    size_t n = 0, rows, cols;

    open_golden(&g);
    /* the golden captions, one per line (bytes stored as floats) */
    for (int i = 0; i < GB; i++) {
        char name[32];
        const struct golden_tensor *t;

        snprintf(name, sizeof name, "text.caption.%d", i);
        t = golden_find(&g, name);
        ck_assert_ptr_nonnull(t);
        for (size_t k = 0; k < t->n; k++) {
            ck_assert(t->data[k] != '\n' && t->data[k] != '\r');
            text[n++] = (char)(unsigned char)t->data[k];
        }
        text[n++] = '\n';
    }
    write_bytes(tp("captions.txt"), text, n);

    struct captured c = run_cmd(cmd_encode, "encode", "--model", fixdir, "--text",
                                tp("captions.txt"), "-o", tp("text.h5"), "--batch", "2", NULL);
    ck_assert_msg(c.status == 0, "exit %d: %s", c.status, c.err);
    ck_assert_ptr_nonnull(strstr(c.out, "/text_embeds float32 [3, 16]"));
    captured_free(&c);
    assert_no_temp_files();

    float *emb = h5_read(tp("text.h5"), "/text_embeds", 0, &rows, &cols);
    ck_assert_uint_eq(rows, GB);
    ck_assert_uint_eq(cols, GD);
    ck_assert_int_eq(tensor_compare("text_embeds", emb, gget(&g, "base.text_embeds", GB * GD),
                                    GB * GD, 1e-5, 0), 0);
    int32_t *ids = h5_read(tp("text.h5"), "/input_ids", 1, &rows, &cols);
    ck_assert_uint_eq(rows, GB);
    ck_assert_uint_eq(cols, GCTX);
    const float *gids = gget(&g, "ids", GB * GCTX), *eot = gget(&g, "text.eot", GB);
    for (size_t r = 0; r < GB; r++)
        for (size_t k = 0; k < GCTX; k++) {
            int32_t want = k <= (size_t)eot[r] ? (int32_t)gids[r * GCTX + k] : 0;

            ck_assert_msg(ids[r * GCTX + k] == want, "input_ids[%zu][%zu] = %d, expected %d",
                          r, k, ids[r * GCTX + k], want);
        }
    free(emb);
    free(ids);

    /* --limit 2 and a file without a final newline, with CRLF */
    write_text(tp("crlf.txt"), "a photo of a cat.\r\nA DOG!\r\nlast");
    c = run_cmd(cmd_encode, "encode", "--model", fixdir, "--text", tp("crlf.txt"), "-o",
                tp("crlf.h5"), "--limit", "2", NULL);
    ck_assert_msg(c.status == 0, "exit %d: %s", c.status, c.err);
    captured_free(&c);
    emb = h5_read(tp("crlf.h5"), "/text_embeds", 0, &rows, &cols);
    ck_assert_uint_eq(rows, 2);
    /* row 1 "A DOG!" = golden row 1 */
    ck_assert_int_eq(tensor_compare("text_embeds[1]", emb + GD,
                                    gget(&g, "base.text_embeds", GB * GD) + GD, GD, 1e-5, 0), 0);
    free(emb);

    /* an empty file */
    write_text(tp("empty.txt"), "");
    c = run_cmd(cmd_encode, "encode", "--model", fixdir, "--text", tp("empty.txt"), "-o",
                tp("empty.h5"), NULL);
    assert_one_line_error(&c, "randlora encode: ", "no captions", "empty caption file");
    captured_free(&c);
    ck_assert_int_ne(access(tp("empty.h5"), F_OK), 0);
    assert_no_temp_files();

    /* a model directory without tokenizer files */
    const char *nt = tp("notok");
    ck_assert_int_eq(mkdir(nt, 0777), 0);
    ck_assert_int_eq(symlink(fix("config.json"), tp("notok/config.json")), 0);
    ck_assert_int_eq(symlink(fix("model.safetensors"), tp("notok/model.safetensors")), 0);
    c = run_cmd(cmd_encode, "encode", "--model", nt, "--text", tp("captions.txt"), "-o",
                tp("x.h5"), NULL);
    assert_one_line_error(&c, "randlora encode: ", "notok", "no tokenizer");
    captured_free(&c);

    golden_close(&g);
    free(text);
}
END_TEST

/* a clip-tiny preset directory with the byte-level tokenizer `randlora
 * pretrain` writes: encode --text equals the text tower on tok_new_bytes ids */
START_TEST(test_text_bytes)
{
    static const char *const caps[] = { "a red circle", "", "two blue squares and a triangle" };
    struct clip_model m;
    struct clip_text_run tr;
    struct tokenizer *tok;
    size_t rows, cols, ctx;
    const char *dir = tp("tiny");
    char d[1100];

    snprintf(d, sizeof d, "%s", dir);
    ck_assert_int_eq(clip_model_preset(&m, "clip-tiny", 3), RL_OK);
    ck_assert_int_eq(clip_model_save(&m, d, ST_F32), RL_OK);
    write_text(tp("tiny/tokenizer_bytes.json"),
               "{\"type\": \"bytes\", \"offset\": 0, \"sot\": 256, \"eot\": 257}\n");
    write_text(tp("tiny_caps.txt"), "a red circle\n\ntwo blue squares and a triangle\n");
    struct captured c = run_cmd(cmd_encode, "encode", "--model", d, "--text", tp("tiny_caps.txt"),
                                "-o", tp("tiny.h5"), NULL);
    ck_assert_msg(c.status == 0, "exit %d: %s", c.status, c.err);
    captured_free(&c);

    ctx = m.cfg.text.context;
    const size_t D = m.cfg.projection_dim;
    int32_t *ids = xmalloc_array(3 * ctx, sizeof(int32_t));
    float *want = xmalloc_array(3 * D, sizeof(float));
    tok = tok_new_bytes(0, 256, 257);
    ck_assert_int_eq(tok_set_frame(tok, (int)ctx, (int32_t)m.cfg.text.pad_token_id, true), RL_OK);
    ck_assert_int_eq(tok_encode_batch(tok, caps, 3, ids, NULL), RL_OK);
    clip_text_run_init(&tr, &m, 3, 0, false);
    ck_assert_int_eq(clip_text_forward(&tr, &m, NULL, ids, 3, ctx, want), RL_OK);
    float *emb = h5_read(tp("tiny.h5"), "/text_embeds", 0, &rows, &cols);
    ck_assert_uint_eq(rows, 3);
    ck_assert_uint_eq(cols, D);
    ck_assert_int_eq(tensor_compare("text_embeds (bytes)", emb, want, 3 * D, 1e-5, 0), 0);
    int32_t *got_ids = h5_read(tp("tiny.h5"), "/input_ids", 1, &rows, &cols);
    ck_assert_uint_eq(cols, ctx);
    ck_assert_int_eq(memcmp(got_ids, ids, 3 * ctx * sizeof(int32_t)), 0);
    free(got_ids);
    free(emb);
    clip_text_run_free(&tr);
    tok_free(tok);
    free(want);
    free(ids);
    clip_model_free(&m);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* encode --images                                                           */

/* 8-bit PNG, gray (1) or RGB (3) */
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
                row[x * channels + c] =
                    (uint8_t)((x * 37 + y * 11 + c * 70 + seed * 53 + (x * y) % 7 * 19) & 255);
        png_write_row(png, row);
    }
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    fclose(f);
    free(row);
}

/* tmp/img/train/{bird,cat}/N.png, 7 images of varied size, 2 gray;
 * returns the spec */
static const char *write_folder(void)
{
    static const int hw[7][3] = { { 20, 31, 3 }, { 16, 16, 3 }, { 40, 23, 1 }, { 17, 17, 3 },
                                  { 9, 30, 3 }, { 33, 33, 1 }, { 64, 48, 3 } };
    static char spec[1100];

    ck_assert_int_eq(mkdir(tp("img"), 0777), 0);
    ck_assert_int_eq(mkdir(tp("img/train"), 0777), 0);
    ck_assert_int_eq(mkdir(tp("img/train/bird"), 0777), 0);
    ck_assert_int_eq(mkdir(tp("img/train/cat"), 0777), 0);
    for (int i = 0; i < 7; i++)
        write_png(tp("img/train/%s/%d.png", i < 3 ? "bird" : "cat", i), hw[i][0], hw[i][1],
                  hw[i][2], i);
    snprintf(spec, sizeof spec, "folder:%s", tp("img"));
    return spec;
}

/* the reference: every item of spec (the first n) through transform t and the
 * vision tower in one batch; labels into lab */
static float *reference_images(const struct clip_model *m, const char *spec, size_t n,
                               const struct transform *t, int *lab)
{
    struct dataset ds;
    struct ds_image img = { 0 };
    struct transform_work w = { 0 };
    struct clip_vision_run vr;
    const size_t px = 3 * GIMG * GIMG;
    float *x = xmalloc_array(n * px, sizeof(float)), *emb = xmalloc_array(n * GD, sizeof(float));
    int rc = dataset_open(&ds, spec);

    ck_assert_msg(rc == RL_OK, "%s", rl_error_msg());
    ck_assert_uint_ge(ds.n, n);
    for (size_t i = 0; i < n; i++) {
        ck_assert_int_eq(dataset_load(&ds, i, &img, &lab[i]), RL_OK);
        ck_assert_int_eq(transform_apply(t, &img, NULL, x + i * px, &w), RL_OK);
    }
    clip_vision_run_init(&vr, m, n, false);
    ck_assert_int_eq(clip_vision_forward(&vr, m, NULL, x, n, emb), RL_OK);
    clip_vision_run_free(&vr);
    transform_work_free(&w);
    ds_image_free(&img);
    dataset_close(&ds);
    free(x);
    return emb;
}

START_TEST(test_images_folder)
{
    struct clip_model m;
    struct transform t;
    int lab[7];
    size_t rows, cols;
    const char *spec = write_folder();

    load_model(&m, fixdir);
    transform_init_clip(&t, GIMG);
    float *want = reference_images(&m, spec, 7, &t, lab);

    struct captured c = run_cmd(cmd_encode, "encode", "--model", fixdir, "--images", spec, "-o",
                                tp("img.h5"), "--batch", "3", NULL);
    ck_assert_msg(c.status == 0, "exit %d: %s", c.status, c.err);
    ck_assert_ptr_nonnull(strstr(c.out, "/image_embeds float32 [7, 16]"));
    captured_free(&c);
    assert_no_temp_files();
    float *emb = h5_read(tp("img.h5"), "/image_embeds", 0, &rows, &cols);
    int32_t *labels = h5_read(tp("img.h5"), "/labels", 1, &rows, &cols);
    ck_assert_uint_eq(rows, 7);
    ck_assert_uint_eq(cols, 0);
    ck_assert_int_eq(tensor_compare("image_embeds", emb, want, 7 * GD, 1e-5, 0), 0);
    for (int i = 0; i < 7; i++)
        ck_assert_int_eq(labels[i], lab[i]);
    ck_assert_int_eq(labels[0], 0);
    ck_assert_int_eq(labels[6], 1);
    free(emb);
    free(labels);

    /* --limit 4: the first four */
    c = run_cmd(cmd_encode, "encode", "--model", fixdir, "--images", spec, "-o", tp("lim.h5"),
                "--limit", "4", NULL);
    ck_assert_msg(c.status == 0, "exit %d: %s", c.status, c.err);
    captured_free(&c);
    emb = h5_read(tp("lim.h5"), "/image_embeds", 0, &rows, &cols);
    ck_assert_uint_eq(rows, 4);
    ck_assert_int_eq(tensor_compare("image_embeds[:4]", emb, want, 4 * GD, 1e-5, 0), 0);
    free(emb);
    free(want);

    /* a corrupt image: one line naming it, no output */
    write_bytes(tp("img/train/cat/9.png"), "\x89PNG\r\n\x1a\nbroken", 14);
    c = run_cmd(cmd_encode, "encode", "--model", fixdir, "--images", spec, "-o", tp("bad.h5"),
                NULL);
    ck_assert_int_eq(c.status, 2);
    ck_assert_msg(strstr(c.err, "9.png") != NULL, "stderr: %s", c.err);
    ck_assert_msg(strstr(c.err, "randlora encode: ") != NULL, "stderr: %s", c.err);
    captured_free(&c);
    ck_assert_int_ne(access(tp("bad.h5"), F_OK), 0);
    assert_no_temp_files();

    /* an unknown dataset spec */
    c = run_cmd(cmd_encode, "encode", "--model", fixdir, "--images", "nosuch:x", "-o",
                tp("bad.h5"), NULL);
    ck_assert_int_eq(c.status, 2);
    captured_free(&c);

    clip_model_free(&m);
}
END_TEST

/* the golden pixels through the tower directly: PyTorch's base.image_embeds */
START_TEST(test_images_golden_pixels)
{
    struct golden g;
    struct clip_model m;
    struct clip_vision_run vr;
    float emb[GB * GD];

    open_golden(&g);
    load_model(&m, fixdir);
    clip_vision_run_init(&vr, &m, GB, false);
    ck_assert_int_eq(clip_vision_forward(&vr, &m, NULL, gget(&g, "pixels", GB * 3 * GIMG * GIMG),
                                         GB, emb), RL_OK);
    ck_assert_int_eq(tensor_compare("image_embeds", emb, gget(&g, "base.image_embeds", GB * GD),
                                    GB * GD, 1e-5, 0), 0);
    clip_vision_run_free(&vr);
    clip_model_free(&m);
    golden_close(&g);
}
END_TEST

START_TEST(test_preprocessor)
{
    struct clip_model m;
    struct transform t;
    int lab[7];
    size_t rows, cols;
    const char *spec = write_folder();
    const char *dir = make_model_dir("pp", 0);
    char pp[1200];

    snprintf(pp, sizeof pp, "%s/preprocessor_config.json", dir);
    write_text(pp, "{\"crop_size\": {\"height\": 16, \"width\": 16}, \"do_center_crop\": true,"
                   " \"do_normalize\": true, \"do_resize\": true, \"image_mean\": [0.5, 0.4, 0.3],"
                   " \"image_std\": [0.25, 0.3, 0.35], \"resample\": 3,"
                   " \"rescale_factor\": 0.00392156862745098,"
                   " \"size\": {\"shortest_edge\": 16}, \"feature_extractor_type\": \"x\"}");
    load_model(&m, fixdir);
    transform_init_clip(&t, GIMG);
    t.crop_round = CROP_ROUND_HF;
    t.mean[0] = 0.5f, t.mean[1] = 0.4f, t.mean[2] = 0.3f;
    t.std[0] = 0.25f, t.std[1] = 0.3f, t.std[2] = 0.35f;
    float *want = reference_images(&m, spec, 7, &t, lab);

    struct captured c = run_cmd(cmd_encode, "encode", "--model", dir, "--images", spec, "-o",
                                tp("pp.h5"), NULL);
    ck_assert_msg(c.status == 0, "exit %d: %s", c.status, c.err);
    ck_assert_ptr_nonnull(strstr(c.out, "preprocessor_config.json"));
    captured_free(&c);
    float *emb = h5_read(tp("pp.h5"), "/image_embeds", 0, &rows, &cols);
    ck_assert_int_eq(tensor_compare("image_embeds (preprocessor)", emb, want, 7 * GD, 1e-5, 0), 0);
    free(emb);
    free(want);

    /* the old flat form (size: 16, crop_size: 16) */
    write_text(pp, "{\"crop_size\": 16, \"size\": 16, \"image_mean\": [0.5, 0.4, 0.3],"
                   " \"image_std\": [0.25, 0.3, 0.35]}");
    c = run_cmd(cmd_encode, "encode", "--model", dir, "--images", spec, "-o", tp("pp2.h5"), NULL);
    ck_assert_msg(c.status == 0, "exit %d: %s", c.status, c.err);
    captured_free(&c);

    /* refused: a crop that is not the model's image size, bad values */
    static const char *const bad[][2] = {
        { "{\"crop_size\": 224, \"size\": 224}", "image_size 16" },
        { "{\"size\": {\"shortest_edge\": 20}}", "image_size 16" },
        { "{\"image_std\": [0.2, 0, 0.3]}", "image_std" },
        { "{\"image_mean\": [0.2, 0.3]}", "image_mean" },
        { "{\"image_mean\": \"x\"}", "image_mean" },
        { "{\"resample\": 2}", "resample" },
        { "{\"do_center_crop\": false}", "do_center_crop" },
        { "{\"crop_size\": {\"height\": 16, \"width\": 8}}", "crop_size" },
        { "{\"crop_size\": 16.5}", "crop_size" },
        { "[1, 2]", "preprocessor_config.json" },
        { "{\"size\": ", "preprocessor_config.json" },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        write_text(pp, bad[i][0]);
        c = run_cmd(cmd_encode, "encode", "--model", dir, "--images", spec, "-o", tp("ppx.h5"),
                    NULL);
        assert_one_line_error(&c, "randlora encode: ", bad[i][1], bad[i][0]);
        captured_free(&c);
        ck_assert_int_ne(access(tp("ppx.h5"), F_OK), 0);
    }
    clip_model_free(&m);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* info                                                                      */

START_TEST(test_info)
{
    struct st_file *f;
    char want[64];

    ck_assert_int_eq(st_open(&f, fix("model.safetensors")), RL_OK);
    snprintf(want, sizeof want, "tensors      %zu\n", st_count(f));
    st_close(f);

    struct captured c = run_cmd(cmd_info, "info", fix("model.safetensors"), NULL);
    ck_assert_msg(c.status == 0, "exit %d: %s", c.status, c.err);
    ck_assert_msg(strstr(c.out, want) != NULL, "no '%s' in:\n%s", want, c.out);
    ck_assert_ptr_nonnull(strstr(c.out, "tensors      80\n"));
    ck_assert_ptr_nonnull(strstr(c.out, "kind         safetensors\n"));
    ck_assert_ptr_nonnull(strstr(c.out, "(F32 43,625, I64 29)"));
    ck_assert_ptr_nonnull(strstr(c.out, "format = pt"));
    ck_assert_ptr_nonnull(strstr(c.out, "visual_projection.weight"));
    ck_assert_ptr_nonnull(strstr(c.out, "[32, 3, 4, 4]"));
    ck_assert_ptr_nonnull(strstr(c.out, "text_model.embeddings.position_ids"));
    ck_assert_str_eq(c.err, "");
    captured_free(&c);

    /* the model directory */
    c = run_cmd(cmd_info, "info", fixdir, NULL);
    ck_assert_msg(c.status == 0, "exit %d: %s", c.status, c.err);
    ck_assert_ptr_nonnull(strstr(c.out, "projection 16"));
    ck_assert_ptr_nonnull(strstr(c.out, "all 78 tensors of the config present"));
    ck_assert_ptr_nonnull(strstr(c.out, "2 other keys ignored"));
    ck_assert_ptr_nonnull(strstr(c.out, "vocab.json yes"));
    ck_assert_ptr_nonnull(strstr(c.out, "tensors      80\n"));
    captured_free(&c);

    /* a file of another kind, a missing file, bad usage */
    write_text(tp("notes.txt"), "hello\n");
    c = run_cmd(cmd_info, "info", tp("notes.txt"), NULL);
    assert_one_line_error(&c, "randlora info: ", "notes.txt", "text file");
    captured_free(&c);
    c = run_cmd(cmd_info, "info", tp("missing.safetensors"), NULL);
    assert_one_line_error(&c, "randlora info: ", "missing.safetensors", "missing file");
    captured_free(&c);
    c = run_cmd(cmd_info, "info", tmpdir, NULL);
    assert_one_line_error(&c, "randlora info: ", "config.json", "empty directory");
    captured_free(&c);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* merge                                                                     */

struct merge_case {
    const char *method;
    size_t r;
    float alpha, std;
    const char *targets;
};

static void merge_one(const struct merge_case *mc, const char *tag)
{
    struct golden g;
    struct clip_model m, merged;
    struct clip_adapters ca;
    struct clip_target tg[8];
    struct adapter_cfg cfg;
    struct adapter_io_module mods[64];
    char names[64][CLIP_MAX_NAME];
    size_t nt;
    struct rng r;
    float img_a[GB * GD], txt_a[GB * GD], img_m[GB * GD], txt_m[GB * GD];
    int32_t ids[GB * GCTX];
    const char *adir = tp("adapter_%s", tag), *odir = tp("merged_%s", tag);
    char adir_s[1100], odir_s[1100];
    int rc;

    snprintf(adir_s, sizeof adir_s, "%s", adir);
    snprintf(odir_s, sizeof odir_s, "%s", odir);
    open_golden(&g);
    load_model(&m, fixdir);
    ck_assert_int_eq(clip_targets_parse(mc->targets, tg, 8, &nt), RL_OK);
    adapter_cfg_defaults(&cfg, mc->method, mc->r);
    if (mc->alpha > 0)
        cfg.alpha = mc->alpha;
    cfg.seed = 7;
    rc = clip_adapters_init(&ca, &m, &cfg, tg, nt, GB, GB);
    ck_assert_msg(rc == RL_OK, "%s", rl_error_msg());
    ck_assert_uint_le(ca.n_sites, 64);
    rng_init(&r, 1234);
    for (size_t i = 0; i < ca.n_params; i++)
        ca.params[i] = mc->std * rng_normal(&r);
    clip_adapters_set_training(&ca, false);
    for (size_t k = 0; k < ca.n_sites; k++) {
        mods[k].path = clip_site_name(&ca.sites[k], names[k], sizeof(names[k]));
        mods[k].adapter = &ca.adapters[k];
    }
    struct adapter_io_files files = { .dir = adir_s, .base_model = "clip_tiny" };
    rc = adapter_io_export(&files, &ca.method, mods, ca.n_sites);
    ck_assert_msg(rc == RL_OK, "%s", rl_error_msg());

    /* the adapted model's embeddings (factored path) */
    const float *px = gget(&g, "pixels", GB * 3 * GIMG * GIMG), *gids = gget(&g, "ids", GB * GCTX);
    for (size_t i = 0; i < GB * GCTX; i++)
        ids[i] = (int32_t)gids[i];
    struct clip_vision_run vr;
    struct clip_text_run tr;
    clip_vision_run_init(&vr, &m, GB, false);
    clip_text_run_init(&tr, &m, GB, 0, false);
    ck_assert_int_eq(clip_vision_forward(&vr, &m, &ca, px, GB, img_a), RL_OK);
    ck_assert_int_eq(clip_text_forward(&tr, &m, &ca, ids, GB, GCTX, txt_a), RL_OK);
    clip_vision_run_free(&vr);
    clip_text_run_free(&tr);
    /* the adapter changes both towers' outputs */
    ck_assert_msg(test_max_abs_diff(img_a, gget(&g, "base.image_embeds", GB * GD), GB * GD) > 0.05,
                  "%s: the adapter does not change the image embeddings", tag);
    ck_assert_msg(test_max_abs_diff(txt_a, gget(&g, "base.text_embeds", GB * GD), GB * GD) > 0.05,
                  "%s: the adapter does not change the text embeddings", tag);

    struct captured c = run_cmd(cmd_merge, "merge", "--model", fixdir, "--adapter", adir_s, "-o",
                                odir_s, NULL);
    ck_assert_msg(c.status == 0, "%s: exit %d: %s", tag, c.status, c.err);
    ck_assert_msg(strstr(c.out, "2 tokenizer/preprocessor files copied") != NULL, "%s", c.out);
    captured_free(&c);

    load_model(&merged, odir_s);
    clip_vision_run_init(&vr, &merged, GB, false);
    clip_text_run_init(&tr, &merged, GB, 0, false);
    ck_assert_int_eq(clip_vision_forward(&vr, &merged, NULL, px, GB, img_m), RL_OK);
    ck_assert_int_eq(clip_text_forward(&tr, &merged, NULL, ids, GB, GCTX, txt_m), RL_OK);
    clip_vision_run_free(&vr);
    clip_text_run_free(&tr);
    ck_assert_int_eq(tensor_compare("merged image_embeds", img_m, img_a, GB * GD, 1e-5, 0), 0);
    ck_assert_int_eq(tensor_compare("merged text_embeds", txt_m, txt_a, GB * GD, 1e-5, 0), 0);
    if (getenv("RANDLORA_TEST_VERBOSE"))
        printf("merge %s: max |merged - adapted| image %.3g text %.3g\n", tag,
               test_max_abs_diff(img_m, img_a, GB * GD), test_max_abs_diff(txt_m, txt_a, GB * GD));

    /* only the adapted weights changed */
    size_t changed = 0;
    for (size_t i = 0; i < m.n_tensors; i++) {
        const struct clip_tensor *t = &m.tensors[i];
        int diff = memcmp(m.params + t->offset, merged.params + t->offset,
                          t->numel * sizeof(float)) != 0;
        int adapted = 0;

        for (size_t k = 0; k < ca.n_sites; k++) {
            size_t nl = strlen(names[k]);

            adapted |= !strncmp(t->name, names[k], nl) && !strcmp(t->name + nl, ".weight");
        }
        ck_assert_msg(diff == adapted, "%s: tensor %s changed %d, adapted %d", tag, t->name, diff,
                      adapted);
        changed += (size_t)diff;
    }
    ck_assert_uint_eq(changed, ca.n_sites);

    /* the tokenizer files are copies */
    char p1[1200];
    snprintf(p1, sizeof p1, "%s/vocab.json", odir_s);
    char *a = slurp(p1, NULL), *b = slurp(fix("vocab.json"), NULL);
    ck_assert_str_eq(a, b);
    free(a);
    free(b);

    clip_model_free(&merged);
    clip_adapters_free(&ca);
    clip_model_free(&m);
    golden_close(&g);
}

START_TEST(test_merge)
{
    static const struct merge_case cases[] = {
        { "lora", 2, 4.0f, 0.3f, "vision:0:q_proj;vision:1:fc2,v_proj;text:0:v_proj,fc1;"
                                 "text:1:out_proj,fc2" },
        { "vera", 4, 0.0f, 0.8f, "vision:k_proj,fc1;text:0:q_proj,fc2;text:1:out_proj" },
        { "randlora", 4, 3.0f, 0.25f, "vision:1:k_proj,fc2;text:mlp" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        merge_one(&cases[i], cases[i].method);

    /* -o the model directory itself */
    struct captured c = run_cmd(cmd_merge, "merge", "--model", fixdir, "--adapter",
                                tp("adapter_lora"), "-o", fixdir, NULL);
    assert_one_line_error(&c, "randlora merge: ", "model directory", "-o DIR");
    captured_free(&c);

    /* an adapter key naming a layer the model does not have */
    char dst[1200];
    float zeros[64] = { 0 };
    struct st_writer *w = st_writer_new();
    ck_assert_int_eq(mkdir(tp("adapter_bad"), 0777), 0);
    snprintf(dst, sizeof dst, "%s", tp("adapter_bad/adapter_config.json"));
    char *cfgtext = slurp(tp("adapter_lora/adapter_config.json"), NULL);
    write_text(dst, cfgtext);
    free(cfgtext);
    ck_assert_int_eq(st_writer_add(w, "base_model.model.vision_model.encoder.layers.7.self_attn."
                                      "q_proj.lora_A.weight", zeros, 2,
                                   (const int64_t[]){ 2, 32 }, ST_F32), RL_OK);
    ck_assert_int_eq(st_writer_write(w, tp("adapter_bad/adapter_model.safetensors")), RL_OK);
    st_writer_free(w);
    c = run_cmd(cmd_merge, "merge", "--model", fixdir, "--adapter", tp("adapter_bad"), "-o",
                tp("merged_bad"), NULL);
    assert_one_line_error(&c, "randlora merge: ", "layers.7.self_attn", "bad layer");
    captured_free(&c);
    ck_assert_int_ne(access(tp("merged_bad"), F_OK), 0);

    /* a missing adapter directory */
    c = run_cmd(cmd_merge, "merge", "--model", fixdir, "--adapter", tp("nosuch"), "-o",
                tp("merged_x"), NULL);
    assert_one_line_error(&c, "randlora merge: ", "nosuch", "missing adapter");
    captured_free(&c);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* hostile safetensors                                                       */

/* u64 header length, header (padded with spaces to 8 bytes unless raw_len
 * is given), then data_len bytes */
static void write_st(const char *path, const char *header, uint64_t claimed, size_t data_len)
{
    size_t hl = strlen(header), pad = (8 - hl % 8) % 8;
    uint64_t n = claimed ? claimed : (uint64_t)(hl + pad);
    size_t total = 8 + hl + pad + data_len;
    unsigned char *buf = xcalloc(total, 1);

    memcpy(buf, &n, 8);
    memcpy(buf + 8, header, hl);
    memset(buf + 8 + hl, ' ', pad);
    for (size_t i = 0; i < data_len; i++)
        buf[8 + hl + pad + i] = (unsigned char)(i * 7);
    write_bytes(path, buf, total);
    free(buf);
}

/* the fixture model's header with one tensor's entry replaced, as a whole
 * file: dtype/shape for `name` as given (nbytes of data for it) */
static void write_model_variant(const char *path, const char *name, const char *dtype,
                                const char *shape, size_t nbytes)
{
    struct clip_model m;
    size_t cap = 1 << 16, n = 0, off = 0;
    char *h = xmalloc(cap);

    load_model(&m, fixdir);
    n += (size_t)snprintf(h + n, cap - n, "{");
    for (size_t i = 0; i < m.n_tensors; i++) {
        const struct clip_tensor *t = &m.tensors[i];
        size_t nb = t->numel * 4;
        char shp[128];
        size_t k = (size_t)snprintf(shp, sizeof shp, "[");

        for (int d = 0; d < t->ndim; d++)
            k += (size_t)snprintf(shp + k, sizeof shp - k, "%s%lld", d ? "," : "",
                                  (long long)t->shape[d]);
        snprintf(shp + k, sizeof shp - k, "]");
        if (!strcmp(t->name, name))
            nb = nbytes;
        n += (size_t)snprintf(h + n, cap - n,
                              "%s\"%s\":{\"dtype\":\"%s\",\"shape\":%s,\"data_offsets\":[%zu,%zu]}",
                              i ? "," : "", t->name, strcmp(t->name, name) ? "F32" : dtype,
                              strcmp(t->name, name) ? shp : shape, off, off + nb);
        ck_assert_uint_lt(n, cap);
        off += nb;
    }
    snprintf(h + n, cap - n, "}");
    write_st(path, h, 0, off);
    free(h);
    clip_model_free(&m);
}

START_TEST(test_hostile)
{
    struct hostile {
        const char *name;
        const char *header;       /* NULL: built below        */
        uint64_t claimed;         /* 0: the header's length    */
        size_t data;
        const char *want;         /* in the message            */
        int info_ok;              /* info FILE accepts it      */
    };
    static const struct hostile cases[] = {
        { "truncated", NULL, 0, 0, NULL, 0 },
        { "header_too_large", "{}", 200000000u, 0, "header", 0 },
        { "header_past_end", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
          4096, 4, NULL, 0 },
        { "offsets_out_of_bounds",
          "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 0, 4, NULL, 0 },
        { "offsets_overlap",
          "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
          "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 0, 12, NULL, 0 },
        { "offsets_gap",
          "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
          "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 0, 12, NULL, 0 },
        { "offsets_reversed",
          "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}}", 0, 8, NULL, 0 },
        { "dtype_unknown", "{\"a\":{\"dtype\":\"F33\",\"shape\":[2],\"data_offsets\":[0,8]}}",
          0, 8, "F33", 0 },
        { "dtype_not_string", "{\"a\":{\"dtype\":5,\"shape\":[2],\"data_offsets\":[0,8]}}",
          0, 8, "dtype", 0 },
        { "shape_size_mismatch",
          "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 0, 8, NULL, 0 },
        { "shape_negative",
          "{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 0, 8, NULL, 0 },
        { "shape_overflow",
          "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],"
          "\"data_offsets\":[0,8]}}", 0, 8, NULL, 0 },
        { "not_json", "abcdefgh", 0, 0, NULL, 0 },
        { "not_object", "[1,2,3]", 0, 0, NULL, 0 },
        { "duplicate", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
          "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 0, 8, NULL, 0 },
        { "short", NULL, 0, 0, NULL, 0 },
        /* whole-model variants: valid files a model cannot load */
        { "model_misshaped", NULL, 0, 0, "visual_projection.weight", 1 },
        { "model_f8", NULL, 0, 0, "logit_scale", 1 },
    };
    const char *caps = tp("caps.txt");

    write_text(caps, "a photo of a cat.\n");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct hostile *h = &cases[i];
        const char *dir = make_model_dir(h->name, 1);
        char file[1200];
        struct captured c;

        snprintf(file, sizeof file, "%s/model.safetensors", dir);
        if (!strcmp(h->name, "truncated")) {
            size_t len;
            char *all = slurp(fix("model.safetensors"), &len);

            write_bytes(file, all, len / 2);
            free(all);
        } else if (!strcmp(h->name, "short")) {
            write_bytes(file, "\x10\0\0", 3);
        } else if (!strcmp(h->name, "model_misshaped")) {
            write_model_variant(file, "visual_projection.weight", "F32", "[16,31]", 16 * 31 * 4);
        } else if (!strcmp(h->name, "model_f8")) {
            write_model_variant(file, "logit_scale", "F8_E4M3", "[]", 1);
        } else {
            write_st(file, h->header, h->claimed, h->data);
        }

        c = run_cmd(cmd_info, "info", file, NULL);
        if (h->info_ok) {
            ck_assert_msg(c.status == 0, "%s: info exit %d: %s", h->name, c.status, c.err);
            captured_free(&c);
            /* the directory view checks the weights against the config */
            c = run_cmd(cmd_info, "info", dir, NULL);
        }
        assert_one_line_error(&c, "randlora info: ", h->want ? h->want : "model.safetensors",
                              h->name);
        ck_assert_ptr_nonnull(strstr(c.err, "model.safetensors"));
        captured_free(&c);

        c = run_cmd(cmd_encode, "encode", "--model", dir, "--text", caps, "-o", tp("h.h5"), NULL);
        assert_one_line_error(&c, "randlora encode: ", h->want ? h->want : "model.safetensors",
                              h->name);
        captured_free(&c);
        c = run_cmd(cmd_encode, "encode", "--model", dir, "--images", "shapes", "-o", tp("h.h5"),
                    "--limit", "2", NULL);
        assert_one_line_error(&c, "randlora encode: ", h->want ? h->want : "model.safetensors",
                              h->name);
        captured_free(&c);
        ck_assert_int_ne(access(tp("h.h5"), F_OK), 0);
    }
    assert_no_temp_files();
}
END_TEST

/* ------------------------------------------------------------------------ */
/* usage                                                                     */

START_TEST(test_usage)
{
    static const char *const cases[][10] = {
        { "encode", NULL },
        { "encode", "--model", NULL },
        { "encode", "--model", "x", "-o", "y.h5", NULL },
        { "encode", "--model", "x", "--text", "a", "--images", "b", "-o", "y.h5" },
        { "encode", "--model", "x", "--text", "a", NULL },
        { "encode", "--model", "x", "--text", "a", "-o", "y", "--batch" },
        { "encode", "--bogus", "1", NULL },
        { "merge", "--model", "x", NULL },
        { "merge", "--model", "x", "--adapter", "y", "-o", "z", "--dtype" },
        { "merge", "--wat", "x", NULL },
        { "info", NULL },
        { "info", "a", "b", NULL },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *const *a = cases[i];
        int (*fn)(int, char **) = !strcmp(a[0], "encode") ? cmd_encode
                                  : !strcmp(a[0], "merge") ? cmd_merge : cmd_info;
        char prefix[32];
        struct captured c;

        c = run_cmd(fn, a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], NULL);
        snprintf(prefix, sizeof prefix, "randlora %s: ", a[0]);
        assert_one_line_error(&c, prefix, NULL, a[0]);
        captured_free(&c);
    }
    struct captured c = run_cmd(cmd_encode, "encode", "--model", "x", "--text", "a", "-o", "y",
                                "--batch", "0", NULL);
    assert_one_line_error(&c, "randlora encode: ", "--batch", "batch 0");
    captured_free(&c);
    c = run_cmd(cmd_merge, "merge", "--model", "x", "--adapter", "y", "-o", "z", "--dtype", "I64",
                NULL);
    assert_one_line_error(&c, "randlora merge: ", "--dtype", "dtype I64");
    captured_free(&c);
    c = run_cmd(cmd_encode, "encode", "--help", NULL);
    ck_assert_int_eq(c.status, 0);
    ck_assert_ptr_nonnull(strstr(c.out, "usage: randlora encode"));
    captured_free(&c);
    c = run_cmd(cmd_merge, "merge", "--help", NULL);
    ck_assert_int_eq(c.status, 0);
    ck_assert_ptr_nonnull(strstr(c.out, "usage: randlora merge"));
    captured_free(&c);
}
END_TEST

Suite *suite_encode(void)
{
    Suite *s = suite_create("encode");
    TCase *tc = tcase_create("encode");

    tcase_add_checked_fixture(tc, tmp_setup, tmp_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_text_golden);
    tcase_add_test(tc, test_text_bytes);
    tcase_add_test(tc, test_images_folder);
    tcase_add_test(tc, test_images_golden_pixels);
    tcase_add_test(tc, test_preprocessor);
    tcase_add_test(tc, test_info);
    tcase_add_test(tc, test_merge);
    tcase_add_test(tc, test_hostile);
    tcase_add_test(tc, test_usage);
    suite_add_tcase(s, tc);
    return s;
}
