/*
 * check_encode.c: `randlora encode`, run IN-PROCESS through cmd_harness.h
 * (cmd_encode with an argv, its stdout and stderr captured):
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
 *
 * info, merge, malformed safetensors and usage errors are in
 * check_model_cmds.c.
 */
#include <hdf5.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/status.h"
#include "datasets/transforms.h"
#include "cli/commands.h"
#include "methods/adapter.h"
#include "models/clip.h"
#include "formats/safetensors.h"
#include "models/tokenizer.h"
#include "clip_harness.h"
#include "cmd_harness.h"
#include "suites.h"
#include "test_util.h"

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

/* ------------------------------------------------------------------------ */
/* encode --text                                                             */

START_TEST(test_text_golden)
{
    struct golden g;
    char *text = xcalloc(4096, 1);
    size_t n = 0, rows, cols;

    clip_open_golden(&g);
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
    test_write_file(tp("captions.txt"), text, n);

    struct test_captured c = test_run_cmd(cmd_tmpdir, cmd_encode, "encode", "--model", cmd_fixdir, "--text",
                                tp("captions.txt"), "-o", tp("text.h5"), "--batch", "2", NULL);
    ck_assert_msg(c.status == 0, "exit %d: %s", c.status, c.err);
    ck_assert_ptr_nonnull(strstr(c.out, "/text_embeds float32 [3, 16]"));
    test_captured_free(&c);
    assert_no_temp_files();

    float *emb = h5_read(tp("text.h5"), "/text_embeds", 0, &rows, &cols);
    ck_assert_uint_eq(rows, GB);
    ck_assert_uint_eq(cols, GD);
    ck_assert_int_eq(tensor_compare("text_embeds", emb, clip_golden_get(&g, "base.text_embeds", GB * GD),
                                    GB * GD, 1e-5, 0), 0);
    int32_t *ids = h5_read(tp("text.h5"), "/input_ids", 1, &rows, &cols);
    ck_assert_uint_eq(rows, GB);
    ck_assert_uint_eq(cols, GCTX);
    const float *gids = clip_golden_get(&g, "ids", GB * GCTX), *eot = clip_golden_get(&g, "text.eot", GB);
    for (size_t r = 0; r < GB; r++)
        for (size_t k = 0; k < GCTX; k++) {
            int32_t want = k <= (size_t)eot[r] ? (int32_t)gids[r * GCTX + k] : 0;

            ck_assert_msg(ids[r * GCTX + k] == want, "input_ids[%zu][%zu] = %d, expected %d",
                          r, k, ids[r * GCTX + k], want);
        }
    free(emb);
    free(ids);

    /* --limit 2 and a file without a final newline, with CRLF */
    test_write_text(tp("crlf.txt"), "a photo of a cat.\r\nA DOG!\r\nlast");
    c = test_run_cmd(cmd_tmpdir, cmd_encode, "encode", "--model", cmd_fixdir, "--text", tp("crlf.txt"), "-o",
                tp("crlf.h5"), "--limit", "2", NULL);
    ck_assert_msg(c.status == 0, "exit %d: %s", c.status, c.err);
    test_captured_free(&c);
    emb = h5_read(tp("crlf.h5"), "/text_embeds", 0, &rows, &cols);
    ck_assert_uint_eq(rows, 2);
    /* row 1 "A DOG!" = golden row 1 */
    ck_assert_int_eq(tensor_compare("text_embeds[1]", emb + GD,
                                    clip_golden_get(&g, "base.text_embeds", GB * GD) + GD, GD, 1e-5, 0), 0);
    free(emb);

    /* an empty file */
    test_write_text(tp("empty.txt"), "");
    c = test_run_cmd(cmd_tmpdir, cmd_encode, "encode", "--model", cmd_fixdir, "--text", tp("empty.txt"), "-o",
                tp("empty.h5"), NULL);
    test_assert_one_line_error(&c, "randlora encode: ", "no captions", "empty caption file");
    test_captured_free(&c);
    ck_assert_int_ne(access(tp("empty.h5"), F_OK), 0);
    assert_no_temp_files();

    /* a model directory without tokenizer files */
    const char *nt = tp("notok");
    ck_assert_int_eq(mkdir(nt, 0777), 0);
    ck_assert_int_eq(symlink(cmd_fixture_file("config.json"), tp("notok/config.json")), 0);
    ck_assert_int_eq(symlink(cmd_fixture_file("model.safetensors"), tp("notok/model.safetensors")), 0);
    c = test_run_cmd(cmd_tmpdir, cmd_encode, "encode", "--model", nt, "--text", tp("captions.txt"), "-o",
                tp("x.h5"), NULL);
    test_assert_one_line_error(&c, "randlora encode: ", "notok", "no tokenizer");
    test_captured_free(&c);

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
    test_write_text(tp("tiny/tokenizer_bytes.json"),
               "{\"type\": \"bytes\", \"offset\": 0, \"sot\": 256, \"eot\": 257}\n");
    test_write_text(tp("tiny_caps.txt"), "a red circle\n\ntwo blue squares and a triangle\n");
    struct test_captured c = test_run_cmd(cmd_tmpdir, cmd_encode, "encode", "--model", d, "--text", tp("tiny_caps.txt"),
                                "-o", tp("tiny.h5"), NULL);
    ck_assert_msg(c.status == 0, "exit %d: %s", c.status, c.err);
    test_captured_free(&c);

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

    clip_load_dir(&m, cmd_fixdir);
    transform_init_clip(&t, GIMG);
    float *want = reference_images(&m, spec, 7, &t, lab);

    struct test_captured c = test_run_cmd(cmd_tmpdir, cmd_encode, "encode", "--model", cmd_fixdir, "--images", spec, "-o",
                                tp("img.h5"), "--batch", "3", NULL);
    ck_assert_msg(c.status == 0, "exit %d: %s", c.status, c.err);
    ck_assert_ptr_nonnull(strstr(c.out, "/image_embeds float32 [7, 16]"));
    test_captured_free(&c);
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
    c = test_run_cmd(cmd_tmpdir, cmd_encode, "encode", "--model", cmd_fixdir, "--images", spec, "-o", tp("lim.h5"),
                "--limit", "4", NULL);
    ck_assert_msg(c.status == 0, "exit %d: %s", c.status, c.err);
    test_captured_free(&c);
    emb = h5_read(tp("lim.h5"), "/image_embeds", 0, &rows, &cols);
    ck_assert_uint_eq(rows, 4);
    ck_assert_int_eq(tensor_compare("image_embeds[:4]", emb, want, 4 * GD, 1e-5, 0), 0);
    free(emb);
    free(want);

    /* a corrupt image: one line naming it, no output */
    test_write_file(tp("img/train/cat/9.png"), "\x89PNG\r\n\x1a\nbroken", 14);
    c = test_run_cmd(cmd_tmpdir, cmd_encode, "encode", "--model", cmd_fixdir, "--images", spec, "-o", tp("bad.h5"),
                NULL);
    ck_assert_int_eq(c.status, 2);
    ck_assert_msg(strstr(c.err, "9.png") != NULL, "stderr: %s", c.err);
    ck_assert_msg(strstr(c.err, "randlora encode: ") != NULL, "stderr: %s", c.err);
    test_captured_free(&c);
    ck_assert_int_ne(access(tp("bad.h5"), F_OK), 0);
    assert_no_temp_files();

    /* an unknown dataset spec */
    c = test_run_cmd(cmd_tmpdir, cmd_encode, "encode", "--model", cmd_fixdir, "--images", "nosuch:x", "-o",
                tp("bad.h5"), NULL);
    ck_assert_int_eq(c.status, 2);
    test_captured_free(&c);

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

    clip_open_golden(&g);
    clip_load_dir(&m, cmd_fixdir);
    clip_vision_run_init(&vr, &m, GB, false);
    ck_assert_int_eq(clip_vision_forward(&vr, &m, NULL, clip_golden_get(&g, "pixels", GB * 3 * GIMG * GIMG),
                                         GB, emb), RL_OK);
    ck_assert_int_eq(tensor_compare("image_embeds", emb, clip_golden_get(&g, "base.image_embeds", GB * GD),
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
    const char *dir = cmd_model_dir("pp", 0);
    char pp[1200];

    snprintf(pp, sizeof pp, "%s/preprocessor_config.json", dir);
    test_write_text(pp, "{\"crop_size\": {\"height\": 16, \"width\": 16}, \"do_center_crop\": true,"
                   " \"do_normalize\": true, \"do_resize\": true, \"image_mean\": [0.5, 0.4, 0.3],"
                   " \"image_std\": [0.25, 0.3, 0.35], \"resample\": 3,"
                   " \"rescale_factor\": 0.00392156862745098,"
                   " \"size\": {\"shortest_edge\": 16}, \"feature_extractor_type\": \"x\"}");
    clip_load_dir(&m, cmd_fixdir);
    transform_init_clip(&t, GIMG);
    t.crop_round = CROP_ROUND_HF;
    t.mean[0] = 0.5f, t.mean[1] = 0.4f, t.mean[2] = 0.3f;
    t.std[0] = 0.25f, t.std[1] = 0.3f, t.std[2] = 0.35f;
    float *want = reference_images(&m, spec, 7, &t, lab);

    struct test_captured c = test_run_cmd(cmd_tmpdir, cmd_encode, "encode", "--model", dir, "--images", spec, "-o",
                                tp("pp.h5"), NULL);
    ck_assert_msg(c.status == 0, "exit %d: %s", c.status, c.err);
    ck_assert_ptr_nonnull(strstr(c.out, "preprocessor_config.json"));
    test_captured_free(&c);
    float *emb = h5_read(tp("pp.h5"), "/image_embeds", 0, &rows, &cols);
    ck_assert_int_eq(tensor_compare("image_embeds (preprocessor)", emb, want, 7 * GD, 1e-5, 0), 0);
    free(emb);
    free(want);

    /* the old flat form (size: 16, crop_size: 16) */
    test_write_text(pp, "{\"crop_size\": 16, \"size\": 16, \"image_mean\": [0.5, 0.4, 0.3],"
                   " \"image_std\": [0.25, 0.3, 0.35]}");
    c = test_run_cmd(cmd_tmpdir, cmd_encode, "encode", "--model", dir, "--images", spec, "-o", tp("pp2.h5"), NULL);
    ck_assert_msg(c.status == 0, "exit %d: %s", c.status, c.err);
    test_captured_free(&c);

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
        test_write_text(pp, bad[i][0]);
        c = test_run_cmd(cmd_tmpdir, cmd_encode, "encode", "--model", dir, "--images", spec, "-o", tp("ppx.h5"),
                    NULL);
        test_assert_one_line_error(&c, "randlora encode: ", bad[i][1], bad[i][0]);
        test_captured_free(&c);
        ck_assert_int_ne(access(tp("ppx.h5"), F_OK), 0);
    }
    clip_model_free(&m);
}
END_TEST

/* ------------------------------------------------------------------------ */

Suite *suite_encode(void)
{
    Suite *s = suite_create("encode");
    TCase *tc = tcase_create("encode");

    tcase_add_checked_fixture(tc, cmd_tmp_setup, cmd_tmp_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_text_golden);
    tcase_add_test(tc, test_text_bytes);
    tcase_add_test(tc, test_images_folder);
    tcase_add_test(tc, test_images_golden_pixels);
    tcase_add_test(tc, test_preprocessor);
    suite_add_tcase(s, tc);
    return s;
}
