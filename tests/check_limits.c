/*
 * check_limits.c: sizes a user controls are checked before anything is
 * allocated for them, with a message naming the limit (issue 13, findings
 * 5 and 7):
 *
 *   read_file_exact      core/read_file.h: a file of exactly the limit is
 *                        read, one byte more is "larger than N bytes"; a
 *                        config.json of exactly 16 MiB loads
 *   tokenizer_limit      tok_encode_n refuses a text over TOK_MAX_TEXT_BYTES
 *                        and frames one of exactly that size
 *   tokenizer_stream     the framed row of a text (BPE stopped at the words
 *                        the row needs) equals the first ids of the whole
 *                        text's tokens; overflow detection with truncation off
 *   tokenizer_memory     a 1 MiB caption frames within 40 MiB of address space
 *                        (the whole-text BPE arrays took ~110 MiB)
 *   encode_long_line     encode --text with a line over the limit: exit 2,
 *                        one line naming FILE:LINE and the limit, no output
 *                        and no temporary file; a line of exactly the limit
 *                        is encoded
 *   image_pixels         a PNG and a JPEG whose headers claim more than
 *                        IMAGE_MAX_PIXELS are refused naming the limit, before
 *                        their pixels are allocated; exactly the limit passes
 *                        the check
 */
#include <check.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <jpeglib.h>   /* after stdio.h: it uses FILE */

#include "cli/commands.h"
#include "core/alloc.h"
#include "core/read_file.h"
#include "core/status.h"
#include "datasets/image.h"
#include "models/clip.h"
#include "models/tokenizer.h"
#include "suites.h"
#include "test_cmd.h"
#include "test_proc.h"
#include "test_util.h"

static char tmpdir[256];
static char fixdir[PATH_MAX];     /* absolute path of tests/fixtures/clip_tiny */

static void tmp_setup(void)
{
    ck_assert_ptr_nonnull(test_tmpdir_make(tmpdir, sizeof(tmpdir), "limits"));
    ck_assert_msg(realpath(fixture_path("clip_tiny"), fixdir) != NULL, "fixture: %s",
                  strerror(errno));
}

static void tmp_teardown(void)
{
    test_tmpdir_remove(tmpdir);
}

#define tp(...) test_path(tmpdir, __VA_ARGS__)

static void write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");

    ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
    ck_assert_uint_eq(fwrite(data, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

/* n bytes of "ab cd ef ..." words (never a NUL, never a newline) */
static char *words_text(size_t n)
{
    static const char pat[] = "a photo of a cat. ";
    char *s = xmalloc(n + 1);

    for (size_t i = 0; i < n; i++)
        s[i] = pat[i % (sizeof(pat) - 1)];
    s[n] = '\0';
    return s;
}

static struct tokenizer *fixture_tokenizer(void)
{
    struct tokenizer *t;

    ck_assert_msg(tok_load_dir(&t, fixdir) == RL_OK, "%s", rl_error_msg());
    return t;
}

/* ------------------------------------------------------------------------ */

START_TEST(test_read_file_exact)
{
    static const size_t limits[] = { 0, 1, 4095, 4096, 4097, 8192, 10000 };
    const char *path = tp("f.bin");
    char *buf, want[64];
    size_t len;

    for (size_t k = 0; k < sizeof(limits) / sizeof(limits[0]); k++) {
        size_t max = limits[k];

        for (size_t size = max ? max - 1 : 0; size <= max + 1; size++) {
            char *data = xmalloc(size + 1);

            for (size_t i = 0; i < size; i++)
                data[i] = (char)('a' + i % 26);
            write_bytes(path, data, size);
            int rc = rl_read_file(path, max, &buf, &len);
            if (size <= max) {
                ck_assert_msg(rc == RL_OK, "%zu bytes, limit %zu: %s", size, max, rl_error_msg());
                ck_assert_uint_eq(len, size);
                ck_assert_int_eq(buf[size], '\0');
                ck_assert(size == 0 || memcmp(buf, data, size) == 0);
                free(buf);
            } else {
                ck_assert_int_eq(rc, RL_ERR_FORMAT);
                ck_assert_ptr_null(buf);
                snprintf(want, sizeof want, ": larger than %zu bytes", max);
                ck_assert_msg(strstr(rl_error_msg(), want) && strstr(rl_error_msg(), path),
                              "%s", rl_error_msg());
            }
            free(data);
        }
    }
    ck_assert_int_eq(rl_read_file(tp("missing"), 10, &buf, &len), RL_ERR_IO);
    ck_assert_int_eq(rl_read_file(tmpdir, 10, &buf, &len), RL_ERR_IO);   /* a directory */

    /* through a reader that had the off-by-one: config.json of exactly
     * 16 MiB (the fixture's JSON padded with spaces) loads, 16 MiB + 1 not */
    {
        const size_t lim = (size_t)16 << 20;
        char *json = test_slurp(test_path(fixdir, "config.json"), &len);
        char *big = xmalloc(lim + 2);
        struct clip_config c;

        ck_assert_uint_lt(len, lim);
        memcpy(big, json, len);
        memset(big + len, ' ', lim + 1 - len);
        write_bytes(tp("config.json"), big, lim);
        ck_assert_msg(clip_config_load(&c, tp("config.json")) == RL_OK, "%s", rl_error_msg());
        write_bytes(tp("config.json"), big, lim + 1);
        ck_assert_int_eq(clip_config_load(&c, tp("config.json")), RL_ERR_FORMAT);
        ck_assert_ptr_nonnull(strstr(rl_error_msg(), "larger than 16777216 bytes"));
        free(big);
        free(json);
    }
}
END_TEST

START_TEST(test_tokenizer_limit)
{
    struct tokenizer *t = fixture_tokenizer(), *b = tok_new_bytes(0, 256, 257);
    char *text = words_text(TOK_MAX_TEXT_BYTES + 1);
    int32_t row[TOK_CLIP_CONTEXT];
    char want[128];

    snprintf(want, sizeof want, "a text of %zu bytes is longer than the tokenizer's limit of "
             "%zu bytes", TOK_MAX_TEXT_BYTES + 1, TOK_MAX_TEXT_BYTES);
    ck_assert_int_eq(tok_encode_n(t, text, TOK_MAX_TEXT_BYTES + 1, row, NULL), RL_ERR_ARG);
    ck_assert_str_eq(rl_error_msg(), want);
    ck_assert_int_eq(tok_encode_n(b, text, TOK_MAX_TEXT_BYTES + 1, row, NULL), RL_ERR_ARG);
    ck_assert_msg(tok_encode_n(t, text, TOK_MAX_TEXT_BYTES, row, NULL) == RL_OK, "%s",
                  rl_error_msg());
    ck_assert_int_eq(row[0], tok_sot(t));
    ck_assert_int_eq(row[TOK_CLIP_CONTEXT - 1], tok_eot(t));
    ck_assert_int_eq(tok_encode_n(b, text, TOK_MAX_TEXT_BYTES, row, NULL), RL_OK);
    ck_assert_int_eq(row[1], 'a');
    free(text);
    tok_free(t);
    tok_free(b);
}
END_TEST

/* row == [sot] + first ctx-2 ids of all + [eot] + pad, as truncation frames */
static void assert_row_is_prefix(const struct tokenizer *t, const char *text, size_t len, int ctx)
{
    int32_t *all, row[TOK_CLIP_CONTEXT];
    size_t n, keep;

    ck_assert_int_eq(tok_tokenize(t, text, len, &all, &n), RL_OK);
    ck_assert_int_eq(tok_encode_n(t, text, len, row, NULL), RL_OK);
    keep = n < (size_t)ctx - 2 ? n : (size_t)ctx - 2;
    ck_assert_int_eq(row[0], tok_sot(t));
    for (size_t i = 0; i < keep; i++)
        ck_assert_msg(row[1 + i] == all[i], "'%.40s': id %zu: row %d, whole text %d", text, i,
                      (int)row[1 + i], (int)all[i]);
    ck_assert_int_eq(row[keep + 1], tok_eot(t));
    free(all);
}

START_TEST(test_tokenizer_stream)
{
    static const char *const texts[] = {
        "a photo of a cat.", "", "   ", "ΣΟΦΟΣ ΟΔΟΣ'' σ", "<|endoftext|> a <|startoftext|>b",
        "don't it's we'll they're I'm you've he'd",
        "photographs photographs photographs photographs photographs photographs "
        "photographs photographs photographs photographs photographs photographs",
        "x\xff\xfe y \xe2\x82 z \t\n\r   \xc2\xa0 end   ",
    };
    struct tokenizer *t = fixture_tokenizer();
    struct rng r;
    char buf[600];

    for (int ctx = 3; ctx <= TOK_CLIP_CONTEXT; ctx += 37) {
        ck_assert_int_eq(tok_set_frame(t, ctx, 0, true), RL_OK);
        for (size_t k = 0; k < sizeof(texts) / sizeof(texts[0]); k++)
            assert_row_is_prefix(t, texts[k], strlen(texts[k]), ctx);
        /* random words of a small alphabet, spaces and punctuation */
        rng_init(&r, (uint64_t)ctx);
        for (int k = 0; k < 200; k++) {
            size_t len = (size_t)rng_below(&r, sizeof(buf));
            for (size_t i = 0; i < len; i++)
                buf[i] = "abcdeoprst  .,'!Σ"[rng_below(&r, 17)];
            assert_row_is_prefix(t, buf, len, ctx);
        }
    }

    /* truncation off: exactly ctx - 2 ids fit, one more does not */
    {
        const int ctx = 12;
        int32_t *all, row[12];
        size_t n;
        char text[256] = "";

        for (int w = 0; w < 40; w++)
            strcat(text, "cat ");
        ck_assert_int_eq(tok_tokenize(t, text, strlen(text), &all, &n), RL_OK);
        free(all);
        ck_assert_uint_gt(n, ctx);
        ck_assert_int_eq(tok_set_frame(t, ctx, 0, false), RL_OK);
        /* every whole number of words: fits exactly when it has at most ctx - 2 ids */
        for (size_t len = 0; len <= strlen(text); len += 4) {
            ck_assert_int_eq(tok_tokenize(t, text, len, &all, &n), RL_OK);
            free(all);
            int rc = tok_encode_n(t, text, len, row, NULL);
            ck_assert_msg((rc == RL_OK) == (n <= (size_t)ctx - 2), "%zu ids: rc %d", n, rc);
            if (rc != RL_OK)
                ck_assert_ptr_nonnull(strstr(rl_error_msg(), "does not fit the context of 12"));
        }
    }
    tok_free(t);
}
END_TEST

/* child: frame a 1 MiB caption under a 40 MiB address-space allowance;
 * exit 0 when it frames, 3 when it fails (an abort is a signal) */
static void frame_under_rlimit(void *text)
{
    struct tokenizer *t = fixture_tokenizer();
    int32_t row[TOK_CLIP_CONTEXT];
    unsigned long pages = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    struct rlimit rl;

    if (!f || fscanf(f, "%lu", &pages) != 1)
        _exit(4);
    fclose(f);
    rl.rlim_cur = rl.rlim_max = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + (40u << 20);
    if (setrlimit(RLIMIT_AS, &rl) != 0)
        _exit(5);
    if (tok_encode_n(t, text, TOK_MAX_TEXT_BYTES, row, NULL) != RL_OK)
        _exit(3);
    _exit(0);
}

START_TEST(test_tokenizer_memory)
{
#if defined(__SANITIZE_ADDRESS__)
    printf("limits: tokenizer_memory skipped under AddressSanitizer (it reserves terabytes "
           "of address space, so RLIMIT_AS cannot measure)\n");
#else
    char *text = words_text(TOK_MAX_TEXT_BYTES);
    int st = test_in_child(frame_under_rlimit, text);

    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "framing a 1 MiB caption needed more "
                  "than 40 MiB (wait status %d)", st);
    free(text);
#endif
}
END_TEST

/* no OUT.tmp.* left in the directory */
static void assert_no_temp_files(void)
{
    char cmd[1200];

    snprintf(cmd, sizeof cmd, "ls -a %s | grep -q '\\.tmp\\.'", tmpdir);
    ck_assert_msg(system(cmd) != 0, "a temporary file was left in %s", tmpdir);
}

START_TEST(test_encode_long_line)
{
    const size_t L = TOK_MAX_TEXT_BYTES;
    char *text = words_text(2 * L + 64), want[256];
    struct test_captured c;

    /* line 2 is one byte over the limit */
    memcpy(text, "a cat\n", 6);
    text[6 + L + 1] = '\n';
    memcpy(text + 6 + L + 2, "a dog\n", 6);
    write_bytes(tp("captions.txt"), text, 6 + L + 2 + 6);
    c = test_run_cmd(tmpdir, cmd_encode, "encode", "--model", fixdir, "--text",
                     tp("captions.txt"), "-o", tp("out.h5"), NULL);
    snprintf(want, sizeof want, "captions.txt:2: a caption of %zu bytes is longer than the "
             "limit of %zu bytes per line", L + 1, L);
    test_assert_one_line_error(&c, "randlora encode: ", want, "line over the limit");
    ck_assert_int_ne(access(tp("out.h5"), F_OK), 0);
    assert_no_temp_files();
    test_captured_free(&c);

    /* a line of exactly the limit is encoded */
    text[6 + L] = '\n';
    memcpy(text + 6 + L + 1, "a dog\n", 6);
    write_bytes(tp("captions.txt"), text, 6 + L + 1 + 6);
    c = test_run_cmd(tmpdir, cmd_encode, "encode", "--model", fixdir, "--text",
                     tp("captions.txt"), "-o", tp("out.h5"), NULL);
    ck_assert_msg(c.status == 0, "exit %d: %s", c.status, c.err);
    ck_assert_ptr_nonnull(strstr(c.out, "(3 captions of"));
    ck_assert_int_eq(access(tp("out.h5"), F_OK), 0);
    assert_no_temp_files();
    test_captured_free(&c);
    free(text);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* images                                                                    */

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* a PNG whose header says w x h gray pixels, then one small IDAT: libpng
 * reads the header, the pixels would fail (too few) */
static size_t png_header_only(uint8_t *out, uint32_t w, uint32_t h)
{
    static const uint8_t sig[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };
    static const uint8_t idat[] = { 0x78, 0x9c, 0x63, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01 };
    size_t n = 0;

    memcpy(out, sig, 8);
    n = 8;
    /* IHDR: w, h, depth 8, gray, deflate, filter 0, no interlace */
    put_u32(out + n, 13);
    memcpy(out + n + 4, "IHDR", 4);
    put_u32(out + n + 8, w);
    put_u32(out + n + 12, h);
    memcpy(out + n + 16, (const uint8_t[]){ 8, 0, 0, 0, 0 }, 5);
    put_u32(out + n + 21, (uint32_t)crc32(0, out + n + 4, 17));
    n += 25;
    put_u32(out + n, sizeof(idat));
    memcpy(out + n + 4, "IDAT", 4);
    memcpy(out + n + 8, idat, sizeof(idat));
    put_u32(out + n + 8 + sizeof(idat), (uint32_t)crc32(0, out + n + 4, 4 + sizeof(idat)));
    n += 12 + sizeof(idat);
    put_u32(out + n, 0);
    memcpy(out + n + 4, "IEND", 4);
    put_u32(out + n + 8, (uint32_t)crc32(0, out + n + 4, 4));
    return n + 12;
}

/* a 16 x 16 gray JPEG in memory, its SOF0 size then set to h x w */
static unsigned char *jpeg_claiming(uint16_t h, uint16_t w, unsigned long *size)
{
    struct jpeg_compress_struct cinfo;
    struct jpeg_error_mgr jerr;
    unsigned char *buf = NULL, row[16] = { 0 };
    JSAMPROW rp = row;
    bool patched = false;

    cinfo.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&cinfo);
    jpeg_mem_dest(&cinfo, &buf, size);
    cinfo.image_width = 16;
    cinfo.image_height = 16;
    cinfo.input_components = 1;
    cinfo.in_color_space = JCS_GRAYSCALE;
    jpeg_set_defaults(&cinfo);
    jpeg_start_compress(&cinfo, TRUE);
    for (int y = 0; y < 16; y++)
        jpeg_write_scanlines(&cinfo, &rp, 1);
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    for (unsigned long i = 0; i + 9 < *size && !patched; i++)
        if (buf[i] == 0xFF && buf[i + 1] == 0xC0) {        /* SOF0: len, P, Y, X */
            buf[i + 5] = (unsigned char)(h >> 8);
            buf[i + 6] = (unsigned char)h;
            buf[i + 7] = (unsigned char)(w >> 8);
            buf[i + 8] = (unsigned char)w;
            patched = true;
        }
    ck_assert(patched);
    return buf;
}

START_TEST(test_image_pixels)
{
    uint8_t png[128];
    struct ds_image img = { 0 };
    char want[256];
    size_t n;
    unsigned char *jpg;
    unsigned long jn;

    ck_assert_uint_eq(IMAGE_MAX_PIXELS, (size_t)8192 * 8192);
    /* one row over: refused from the header, nothing allocated */
    n = png_header_only(png, 8192, 8193);
    ck_assert_int_eq(image_decode(png, n, "big.png", &img), RL_ERR_FORMAT);
    snprintf(want, sizeof want, "big.png: PNG: 8192 x 8193 = %zu pixels, more than the limit of "
             "%zu pixels for an image file (downscale it)", (size_t)8192 * 8193,
             (size_t)IMAGE_MAX_PIXELS);
    ck_assert_str_eq(rl_error_msg(), want);
    ck_assert_ptr_null(img.data);
    /* 65535 x 65535 (libpng's own side limit allows it): the same */
    n = png_header_only(png, 65535, 65535);
    ck_assert_int_eq(image_decode(png, n, "huge.png", &img), RL_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(rl_error_msg(), "more than the limit of 67108864 pixels"));
    ck_assert_ptr_null(img.data);
    /* exactly the limit passes the check (and fails later: no pixel data) */
    n = png_header_only(png, 8192, 8192);
    ck_assert_int_eq(image_decode(png, n, "edge.png", &img), RL_ERR_FORMAT);
    ck_assert_msg(strstr(rl_error_msg(), "limit") == NULL, "%s", rl_error_msg());
    ds_image_free(&img);

    /* JPEG: 9000 x 9000 claimed in SOF0 */
    jpg = jpeg_claiming(9000, 9000, &jn);
    ck_assert_int_eq(image_decode(jpg, jn, "big.jpg", &img), RL_ERR_FORMAT);
    ck_assert_str_eq(rl_error_msg(), "big.jpg: JPEG: 9000 x 9000 = 81000000 pixels, more than "
                     "the limit of 67108864 pixels for an image file (downscale it)");
    ck_assert_ptr_null(img.data);
    free(jpg);
    /* the unpatched size decodes */
    jpg = jpeg_claiming(16, 16, &jn);
    ck_assert_msg(image_decode(jpg, jn, "small.jpg", &img) == RL_OK, "%s", rl_error_msg());
    ck_assert_int_eq(img.width, 16);
    free(jpg);
    ds_image_free(&img);
}
END_TEST

Suite *suite_limits(void)
{
    Suite *s = suite_create("limits");
    TCase *tc = tcase_create("limits");

    tcase_add_checked_fixture(tc, tmp_setup, tmp_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_read_file_exact);
    tcase_add_test(tc, test_tokenizer_limit);
    tcase_add_test(tc, test_tokenizer_stream);
    tcase_add_test(tc, test_tokenizer_memory);
    tcase_add_test(tc, test_encode_long_line);
    tcase_add_test(tc, test_image_pixels);
    suite_add_tcase(s, tc);
    return s;
}
