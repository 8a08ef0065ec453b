/*
 * check_safetensors.c: the safetensors reader and writer: round trips in
 * F32/F16/BF16, half/bfloat16 conversions against known values and against
 * torch (tests/fixtures/st_torch*, made by tests/ref/make_safetensors_fixture.py),
 * the reference's serialization test vectors, the shape-checking loader, and
 * hostile files, each of which must give RL_ERR_FORMAT (RL_ERR_IO for a file
 * that cannot be opened) and never crash.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/rng.h"
#include "core/status.h"
#include "formats/safetensors.h"
#include "suites.h"
#include "test_util.h"

/* ---------------------------------------------------------------- helpers */

static uint32_t bits32(float f)
{
    uint32_t u;

    memcpy(&u, &f, 4);
    return u;
}

/* same float, NaN matching NaN */
static int same_float(float a, float b)
{
    return (isnan(a) && isnan(b)) || bits32(a) == bits32(b);
}

/* A file image: u64 LE length, the header as given (unpadded), data_len bytes of 0x5a. */
static uint8_t *image(const char *json, size_t data_len, size_t *size)
{
    size_t n = strlen(json);
    uint8_t *p = xmalloc(8 + n + data_len + 1);

    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)((uint64_t)n >> (8 * i));
    memcpy(p + 8, json, n);
    memset(p + 8 + n, 0x5a, data_len);
    *size = 8 + n + data_len;
    return p;
}

/* open an image from memory, return the status (closing on success) */
static int open_image(const char *json, size_t data_len)
{
    size_t size;
    uint8_t *p = image(json, data_len, &size);
    struct st_file *f = NULL;
    int rc = st_open_memory(&f, p, size, "hostile.safetensors");

    if (rc == RL_OK) {
        /* reading everything must be safe too */
        for (size_t i = 0; i < st_count(f); i++) {
            const struct st_info *t = st_info_at(f, i);
            float *buf = xmalloc_array(t->numel ? t->numel : 1, sizeof(float));
            (void)st_read_f32(f, t, buf);
            free(buf);
        }
        st_close(f);
    } else {
        ck_assert_ptr_null(f);
    }
    free(p);
    return rc;
}

static void write_file(const char *path, const void *data, size_t n)
{
    FILE *fp = fopen(path, "wb");

    ck_assert_ptr_nonnull(fp);
    ck_assert_uint_eq(fwrite(data, 1, n, fp), n);
    ck_assert_int_eq(fclose(fp), 0);
}

static char tmpdir[64];

static void make_tmpdir(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/rl_st_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static const char *tmp_path(const char *name)
{
    static char buf[128];

    snprintf(buf, sizeof buf, "%s/%s", tmpdir, name);
    return buf;
}

/* ------------------------------------------------------------ conversions */

START_TEST(test_f16_known_values)
{
    /* encode */
    ck_assert_uint_eq(st_f32_to_f16(1.0f), 0x3c00);
    ck_assert_uint_eq(st_f32_to_f16(-2.5f), 0xc100);
    ck_assert_uint_eq(st_f32_to_f16(65504.0f), 0x7bff);
    ck_assert_uint_eq(st_f32_to_f16(0x1p-24f), 0x0001);        /* smallest subnormal */
    ck_assert_uint_eq(st_f32_to_f16(0x1.ff8p-15f), 0x03ff);    /* largest subnormal */
    ck_assert_uint_eq(st_f32_to_f16(0x1p-14f), 0x0400);        /* smallest normal */
    ck_assert_uint_eq(st_f32_to_f16(INFINITY), 0x7c00);
    ck_assert_uint_eq(st_f32_to_f16(-INFINITY), 0xfc00);
    ck_assert_uint_eq(st_f32_to_f16(-0.0f), 0x8000);
    uint16_t hn = st_f32_to_f16(NAN);
    ck_assert((hn & 0x7c00) == 0x7c00 && (hn & 0x3ff) != 0);
    /* ties to even: 1 + 2^-11 is halfway between 1 and 1 + 2^-10 */
    ck_assert_uint_eq(st_f32_to_f16(1.0f + 0x1p-11f), 0x3c00);
    ck_assert_uint_eq(st_f32_to_f16(1.0f + 3 * 0x1p-11f), 0x3c02);
    ck_assert_uint_eq(st_f32_to_f16(1.0f + 0x1p-11f + 0x1p-20f), 0x3c01);
    ck_assert_uint_eq(st_f32_to_f16(65519.0f), 0x7bff);        /* below the midpoint */
    ck_assert_uint_eq(st_f32_to_f16(65520.0f), 0x7c00);        /* tie goes to Inf */
    ck_assert_uint_eq(st_f32_to_f16(0x1p-25f), 0x0000);        /* tie to even: 0 */
    ck_assert_uint_eq(st_f32_to_f16(3 * 0x1p-26f), 0x0001);
    ck_assert_uint_eq(st_f32_to_f16(3 * 0x1p-25f), 0x0002);    /* 1.5 ulp: tie to 2 */
    ck_assert_uint_eq(st_f32_to_f16(1e-10f), 0x0000);
    ck_assert_uint_eq(st_f32_to_f16(1e10f), 0x7c00);
    /* decode */
    ck_assert(st_f16_to_f32(0x3c00) == 1.0f);
    ck_assert(st_f16_to_f32(0xc100) == -2.5f);
    ck_assert(st_f16_to_f32(0x7bff) == 65504.0f);
    ck_assert(st_f16_to_f32(0x0001) == 0x1p-24f);
    ck_assert(st_f16_to_f32(0x03ff) == 0x1.ff8p-15f);
    ck_assert(st_f16_to_f32(0x8001) == -0x1p-24f);
    ck_assert_uint_eq(bits32(st_f16_to_f32(0x8000)), 0x80000000u);
    ck_assert(st_f16_to_f32(0x7c00) == INFINITY);
    ck_assert(st_f16_to_f32(0xfc00) == -INFINITY);
    ck_assert(isnan(st_f16_to_f32(0x7e00)));
    ck_assert(isnan(st_f16_to_f32(0x7c01)));
    /* every half value survives a round trip through float */
    for (uint32_t h = 0; h < 0x10000; h++) {
        float f = st_f16_to_f32((uint16_t)h);
        if (isnan(f))
            continue;
        ck_assert_uint_eq(st_f32_to_f16(f), h);
    }
}
END_TEST

START_TEST(test_bf16_known_values)
{
    ck_assert_uint_eq(st_f32_to_bf16(1.0f), 0x3f80);
    ck_assert_uint_eq(st_f32_to_bf16(-2.5f), 0xc020);
    ck_assert_uint_eq(st_f32_to_bf16(65504.0f), 0x4780);       /* rounds to 65536 */
    ck_assert_uint_eq(st_f32_to_bf16(INFINITY), 0x7f80);
    ck_assert_uint_eq(st_f32_to_bf16(-INFINITY), 0xff80);
    ck_assert(isnan(st_bf16_to_f32(st_f32_to_bf16(NAN))));
    ck_assert(isnan(st_bf16_to_f32(st_f32_to_bf16(-NAN))));
    ck_assert_uint_eq(st_f32_to_bf16(1.0f + 0x1p-8f), 0x3f80);  /* tie to even, down */
    ck_assert_uint_eq(st_f32_to_bf16(1.0f + 3 * 0x1p-8f), 0x3f82); /* tie to even, up */
    ck_assert_uint_eq(st_f32_to_bf16(1.0f + 0x1p-8f + 0x1p-20f), 0x3f81);
    ck_assert_uint_eq(st_f32_to_bf16(0x1.fffffep127f), 0x7f80);  /* FLT_MAX -> Inf */
    ck_assert_uint_eq(st_f32_to_bf16(0x1p-133f), 0x0001);       /* smallest subnormal */
    ck_assert(st_bf16_to_f32(0x0001) == 0x1p-133f);
    ck_assert(st_bf16_to_f32(0x3f80) == 1.0f);
    ck_assert(st_bf16_to_f32(0xc020) == -2.5f);
    ck_assert(st_bf16_to_f32(0x7f80) == INFINITY);
    for (uint32_t h = 0; h < 0x10000; h++) {
        float f = st_bf16_to_f32((uint16_t)h);
        if (isnan(f))
            continue;
        ck_assert_uint_eq(st_f32_to_bf16(f), h);
    }
}
END_TEST

/* -------------------------------------------------------------- round trip */

START_TEST(test_roundtrip)
{
    struct rng r;
    rng_init(&r, 7);
    float *a = test_randn(&r, 6 * 5, 3.0f);
    float *b = test_randn(&r, 2 * 3 * 4, 1000.0f);
    float *c = test_randn(&r, 7, 1.0f);
    float s = 4.6052f;
    b[0] = 1e-7f;        /* subnormal in half */
    b[1] = 70000.0f;     /* overflows half */
    b[2] = -INFINITY;
    b[3] = NAN;
    c[0] = 1e-40f;       /* subnormal in float, keeps BF16 bits */

    struct st_writer *w = st_writer_new();
    ck_assert_int_eq(st_writer_add(w, "z.f32", a, 2, (const int64_t[]){6, 5}, ST_F32), RL_OK);
    ck_assert_int_eq(st_writer_add(w, "a.f16", b, 3, (const int64_t[]){2, 3, 4}, ST_F16), RL_OK);
    ck_assert_int_eq(st_writer_add(w, "m.bf16", c, 1, (const int64_t[]){7}, ST_BF16), RL_OK);
    ck_assert_int_eq(st_writer_add(w, "scalar", &s, 0, NULL, ST_F32), RL_OK);
    ck_assert_int_eq(st_writer_add(w, "empty", NULL, 2, (const int64_t[]){0, 4}, ST_F16), RL_OK);
    ck_assert_int_eq(st_writer_set_metadata(w, "format", "pt"), RL_OK);
    ck_assert_int_eq(st_writer_set_metadata(w, "note", "q\"uote\\ and \n newline"), RL_OK);
    ck_assert_int_eq(st_writer_set_metadata(w, "format", "np"), RL_OK);   /* replaces */

    void *buf, *buf2;
    size_t size, size2;
    ck_assert_int_eq(st_writer_write_memory(w, &buf, &size), RL_OK);
    ck_assert_int_eq(st_writer_write_memory(w, &buf2, &size2), RL_OK);
    ck_assert_uint_eq(size, size2);
    ck_assert_int_eq(memcmp(buf, buf2, size), 0);                    /* deterministic */
    free(buf2);

    make_tmpdir();
    const char *path = tmp_path("rt.safetensors");
    ck_assert_int_eq(st_writer_write(w, path), RL_OK);
    st_writer_free(w);

    /* the file holds the same bytes as the memory image */
    FILE *fp = fopen(path, "rb");
    ck_assert_ptr_nonnull(fp);
    uint8_t *fb = xmalloc(size + 1);
    ck_assert_uint_eq(fread(fb, 1, size + 1, fp), size);
    fclose(fp);
    ck_assert_int_eq(memcmp(fb, buf, size), 0);
    free(fb);

    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | ((uint8_t *)buf)[i];
    ck_assert_uint_eq(hlen % 8, 0);

    struct st_file *f;
    ck_assert_int_eq(st_open(&f, path), RL_OK);
    ck_assert_str_eq(st_path(f), path);
    ck_assert_uint_eq(st_count(f), 5);
    ck_assert_str_eq(st_info_at(f, 0)->name, "a.f16");                /* sorted by name */
    ck_assert_str_eq(st_metadata_get(f, "format"), "np");
    ck_assert_str_eq(st_metadata_get(f, "note"), "q\"uote\\ and \n newline");
    ck_assert_ptr_null(st_metadata_get(f, "nope"));
    ck_assert_uint_eq(st_metadata_count(f), 2);

    float out[64];
    const struct st_info *t = st_find(f, "z.f32");
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->dtype, ST_F32);
    ck_assert_int_eq(t->ndim, 2);
    ck_assert_int_eq(t->shape[0], 6);
    ck_assert_int_eq(t->shape[1], 5);
    ck_assert_int_eq(st_read_f32(f, t, out), RL_OK);
    for (int i = 0; i < 30; i++)
        ck_assert_uint_eq(bits32(out[i]), bits32(a[i]));
    /* the reference writer's order: F32 (by name), then BF16, then F16 */
    ck_assert_uint_eq(st_find(f, "scalar")->offset, 0);
    ck_assert_uint_eq(t->offset, 4);
    ck_assert_uint_eq(st_find(f, "m.bf16")->offset, 4 + 120);
    ck_assert_uint_eq(st_find(f, "a.f16")->offset, 4 + 120 + 14);

    t = st_find(f, "a.f16");
    ck_assert_int_eq(t->dtype, ST_F16);
    ck_assert_uint_eq(t->numel, 24);
    ck_assert_uint_eq(t->nbytes, 48);
    ck_assert_int_eq(st_read_f32(f, t, out), RL_OK);
    for (int i = 0; i < 24; i++)
        ck_assert(same_float(out[i], st_f16_to_f32(st_f32_to_f16(b[i]))));
    ck_assert(out[1] == INFINITY && out[2] == -INFINITY && isnan(out[3]));
    ck_assert(out[0] > 0 && out[0] < 0x1p-14f);

    t = st_find(f, "m.bf16");
    ck_assert_int_eq(t->dtype, ST_BF16);
    ck_assert_int_eq(st_read_f32(f, t, out), RL_OK);
    for (int i = 0; i < 7; i++) {
        ck_assert(same_float(out[i], st_bf16_to_f32(st_f32_to_bf16(c[i]))));
        ck_assert(fabsf(out[i] - c[i]) <= fabsf(c[i]) * 0x1p-8f + 0x1p-134f);
    }

    ck_assert_int_eq(st_load_f32(f, "scalar", 0, NULL, out), RL_OK);
    ck_assert(out[0] == s);
    t = st_find(f, "empty");
    ck_assert_uint_eq(t->numel, 0);
    ck_assert_uint_eq(t->nbytes, 0);
    ck_assert_int_eq(st_load_f32(f, "empty", 2, (const int64_t[]){0, 4}, out), RL_OK);
    st_close(f);

    /* and the same through the memory reader */
    ck_assert_int_eq(st_open_memory(&f, buf, size, NULL), RL_OK);
    ck_assert_str_eq(st_path(f), "<memory>");
    ck_assert_uint_eq(st_count(f), 5);
    st_close(f);

    free(buf);
    unlink(path);
    rmdir(tmpdir);
    free(a);
    free(b);
    free(c);
}
END_TEST

/* The serialization vectors of the reference's tensor.rs tests. */
START_TEST(test_reference_vectors)
{
    void *buf;
    size_t size;
    struct st_writer *w = st_writer_new();

    ck_assert_int_eq(st_writer_write_memory(w, &buf, &size), RL_OK);
    ck_assert_uint_eq(size, 16);
    ck_assert_int_eq(memcmp(buf, "\x08\0\0\0\0\0\0\0{}      ", 16), 0);
    free(buf);

    float d[6] = {0, 1, 2, 3, 4, 5};
    ck_assert_int_eq(st_writer_add(w, "attn.0", d, 3, (const int64_t[]){1, 2, 3}, ST_F32),
                     RL_OK);
    ck_assert_int_eq(st_writer_write_memory(w, &buf, &size), RL_OK);
    const char *want = "{\"attn.0\":{\"dtype\":\"F32\",\"shape\":[1,2,3],"
                       "\"data_offsets\":[0,24]}}";
    ck_assert_uint_eq(strlen(want), 64);
    ck_assert_uint_eq(size, 8 + 64 + 24);
    ck_assert_uint_eq(((uint8_t *)buf)[0], 64);
    ck_assert_int_eq(memcmp((char *)buf + 8, want, 64), 0);
    ck_assert_int_eq(memcmp((char *)buf + 72, d, 24), 0);
    free(buf);
    st_writer_free(w);

    /* an empty header opens: no tensors */
    struct st_file *f;
    ck_assert_int_eq(st_open_memory(&f, "\x08\0\0\0\0\0\0\0{}      ", 16, "e"), RL_OK);
    ck_assert_uint_eq(st_count(f), 0);
    ck_assert_ptr_null(st_find(f, "x"));
    ck_assert_ptr_null(st_metadata_get(f, "format"));
    ck_assert_uint_eq(st_metadata_count(f), 0);
    st_close(f);
}
END_TEST

/* ------------------------------------------------------------- torch fixture */

START_TEST(test_torch_fixture)
{
    struct st_file *f;
    const char *path = fixture_path("st_torch.safetensors");
    ck_assert_msg(st_open(&f, path) == RL_OK, "%s", rl_error_msg());

    FILE *fp = fopen(fixture_path("st_torch_expected.txt"), "r");
    ck_assert_ptr_nonnull(fp);
    char tok[512], name[512], dt[32];
    int version = 0;
    ck_assert_int_eq(fscanf(fp, "%511s %d", tok, &version), 2);
    ck_assert_str_eq(tok, "randlora-safetensors-expected");
    ck_assert_int_eq(version, 1);

    size_t n_tensors = 0, n_round = 0, n_meta = 0;
    while (fscanf(fp, "%511s", tok) == 1 && strcmp(tok, "end") != 0) {
        if (strcmp(tok, "meta") == 0) {
            char val[512];
            ck_assert_int_eq(fscanf(fp, "%511s %511s", name, val), 2);
            ck_assert_ptr_nonnull(st_metadata_get(f, name));
            ck_assert_str_eq(st_metadata_get(f, name), val);
            n_meta++;
        } else if (strcmp(tok, "tensor") == 0) {
            int ndim;
            ck_assert_int_eq(fscanf(fp, "%511s %31s %d", name, dt, &ndim), 3);
            const struct st_info *t = st_find(f, name);
            ck_assert_msg(t != NULL, "tensor %s missing", name);
            ck_assert_str_eq(st_dtype_name(t->dtype), dt);
            ck_assert_int_eq(t->ndim, ndim);
            for (int i = 0; i < ndim; i++) {
                long long d;
                ck_assert_int_eq(fscanf(fp, "%lld", &d), 1);
                ck_assert_int_eq(t->shape[i], d);
            }
            size_t numel;
            ck_assert_int_eq(fscanf(fp, "%zu", &numel), 1);
            ck_assert_uint_eq(t->numel, numel);
            float *got = xmalloc_array(numel + 1, sizeof(float));
            /* the conversion itself: st_load_f32, the weights loader, refuses
             * the special values (NaN, Inf) this fixture holds */
            ck_assert_msg(st_read_f32(f, t, got) == RL_OK, "%s", rl_error_msg());
            for (size_t i = 0; i < numel; i++) {
                ck_assert_int_eq(fscanf(fp, "%511s", tok), 1);
                float want = strtof(tok, NULL);
                ck_assert_msg(same_float(got[i], want), "%s[%zu]: got %a want %a (%s)",
                              name, i, (double)got[i], (double)want, tok);
            }
            free(got);
            n_tensors++;
        } else if (strcmp(tok, "round") == 0) {
            unsigned h, bh;
            ck_assert_int_eq(fscanf(fp, "%511s %x %x", tok, &h, &bh), 3);
            float x = strtof(tok, NULL);
            ck_assert_msg(st_f32_to_f16(x) == h, "f16(%a): got %04x torch %04x", (double)x,
                          st_f32_to_f16(x), h);
            ck_assert_msg(st_f32_to_bf16(x) == bh, "bf16(%a): got %04x torch %04x", (double)x,
                          st_f32_to_bf16(x), bh);
            n_round++;
        } else {
            ck_abort_msg("unexpected token %s", tok);
        }
    }
    fclose(fp);
    ck_assert_uint_eq(n_tensors, st_count(f));
    ck_assert_uint_eq(n_meta, st_metadata_count(f));
    ck_assert_uint_ge(n_round, 20);
    st_close(f);
}
END_TEST

/* ------------------------------------------------------------- loader errors */

START_TEST(test_load_errors)
{
    float a[30] = {0}, out[30];
    void *buf;
    size_t size;
    struct st_writer *w = st_writer_new();

    ck_assert_int_eq(st_writer_add(w, "w", a, 2, (const int64_t[]){6, 5}, ST_F32), RL_OK);
    ck_assert_int_eq(st_writer_write_memory(w, &buf, &size), RL_OK);
    st_writer_free(w);

    struct st_file *f;
    ck_assert_int_eq(st_open_memory(&f, buf, size, "m.safetensors"), RL_OK);
    ck_assert_int_eq(st_load_f32(f, "w", 2, (const int64_t[]){6, 5}, out), RL_OK);

    ck_assert_int_eq(st_load_f32(f, "text_projection.weight", 2, (const int64_t[]){6, 5}, out),
                     RL_ERR_FORMAT);
    ck_assert_str_eq(rl_error_msg(), "m.safetensors: tensor 'text_projection.weight' not found");

    ck_assert_int_eq(st_load_f32(f, "w", 2, (const int64_t[]){5, 6}, out), RL_ERR_FORMAT);
    ck_assert_str_eq(rl_error_msg(), "m.safetensors: tensor 'w' has shape [6, 5], expected [5, 6]");
    ck_assert_int_eq(st_load_f32(f, "w", 1, (const int64_t[]){30}, out), RL_ERR_FORMAT);
    ck_assert_str_eq(rl_error_msg(), "m.safetensors: tensor 'w' has shape [6, 5], expected [30]");
    ck_assert_int_eq(st_load_f32(f, "w", 0, NULL, out), RL_ERR_FORMAT);
    ck_assert_str_eq(rl_error_msg(), "m.safetensors: tensor 'w' has shape [6, 5], expected []");
    st_close(f);
    free(buf);

    /* a dtype that opens but cannot be converted names the tensor */
    size_t isz;
    uint8_t *img = image("{\"q\":{\"dtype\":\"F8_E4M3\",\"shape\":[4],\"data_offsets\":[0,4]}}",
                         4, &isz);
    ck_assert_int_eq(st_open_memory(&f, img, isz, "f8.safetensors"), RL_OK);
    ck_assert_int_eq(st_load_f32(f, "q", 1, (const int64_t[]){4}, out), RL_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(rl_error_msg(), "'q'"));
    ck_assert_ptr_nonnull(strstr(rl_error_msg(), "F8_E4M3"));
    st_close(f);
    free(img);

    /* unaligned data (unpadded header) and integer tensors read fine */
    img = image("{\"p\":{\"dtype\":\"I64\",\"shape\":[1,2],\"data_offsets\":[0,16]},"
                "\"h\":{\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[16,18]}}", 18, &isz);
    uint8_t *d = img + isz - 18;
    int64_t iv[2] = {-3, 76};
    memcpy(d, iv, 16);
    d[16] = 0x00;
    d[17] = 0x3c;
    ck_assert_int_eq(st_open_memory(&f, img, isz, "u.safetensors"), RL_OK);
    ck_assert_int_eq(st_load_f32(f, "p", 2, (const int64_t[]){1, 2}, out), RL_OK);
    ck_assert(out[0] == -3.0f && out[1] == 76.0f);
    ck_assert_int_eq(st_load_f32(f, "h", 1, (const int64_t[]){1}, out), RL_OK);
    ck_assert(out[0] == 1.0f);
    st_close(f);
    free(img);
}
END_TEST

START_TEST(test_writer_errors)
{
    float x[4] = {0};
    struct st_writer *w = st_writer_new();

    ck_assert_int_eq(st_writer_add(w, "a", x, 1, (const int64_t[]){4}, ST_F32), RL_OK);
    ck_assert_int_eq(st_writer_add(w, "a", x, 1, (const int64_t[]){4}, ST_F32), RL_ERR_ARG);
    ck_assert_int_eq(st_writer_add(w, "__metadata__", x, 1, (const int64_t[]){4}, ST_F32),
                     RL_ERR_ARG);
    ck_assert_int_eq(st_writer_add(w, "", x, 1, (const int64_t[]){4}, ST_F32), RL_ERR_ARG);
    ck_assert_int_eq(st_writer_add(w, "bad\xff", x, 1, (const int64_t[]){4}, ST_F32),
                     RL_ERR_ARG);
    ck_assert_int_eq(st_writer_add(w, "b", x, 1, (const int64_t[]){4}, ST_I64), RL_ERR_ARG);
    ck_assert_int_eq(st_writer_add(w, "b", x, 1, (const int64_t[]){-4}, ST_F32), RL_ERR_ARG);
    ck_assert_int_eq(st_writer_add(w, "b", NULL, 1, (const int64_t[]){4}, ST_F32), RL_ERR_ARG);
    ck_assert_int_eq(st_writer_add(w, "b", x, 17, (const int64_t[17]){0}, ST_F32), RL_ERR_ARG);
    ck_assert_int_eq(st_writer_add(w, "b", x, 3,
                                   (const int64_t[]){1LL << 40, 1LL << 40, 1LL << 40}, ST_F32),
                     RL_ERR_ARG);
    ck_assert_int_eq(st_writer_write(w, "/nonexistent-dir/x.safetensors"), RL_ERR_IO);
    ck_assert_ptr_nonnull(strstr(rl_error_msg(), "/nonexistent-dir/x.safetensors"));
    st_writer_free(w);
    st_writer_free(NULL);
    st_close(NULL);
}
END_TEST

/* ---------------------------------------------------------------- hostile */

START_TEST(test_io_errors)
{
    struct st_file *f = (struct st_file *)1;

    ck_assert_int_eq(st_open(&f, "/nonexistent/model.safetensors"), RL_ERR_IO);
    ck_assert_ptr_null(f);
    ck_assert_ptr_nonnull(strstr(rl_error_msg(), "/nonexistent/model.safetensors"));
    ck_assert_int_eq(st_open(&f, "/tmp"), RL_ERR_IO);

    make_tmpdir();
    const char *path = tmp_path("empty.safetensors");
    write_file(path, "", 0);
    ck_assert_int_eq(st_open(&f, path), RL_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(rl_error_msg(), path));
    ck_assert_ptr_nonnull(strstr(rl_error_msg(), "too short"));

    /* header length larger than the file, through the file path */
    size_t size;
    uint8_t *p = image("{}", 0, &size);
    p[0] = 200;
    write_file(path, p, size);
    ck_assert_int_eq(st_open(&f, path), RL_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(rl_error_msg(), "past the end"));
    free(p);
    unlink(path);
    rmdir(tmpdir);

    ck_assert_int_eq(st_open_memory(&f, NULL, 0, "null"), RL_ERR_FORMAT);
    ck_assert_int_eq(st_open_memory(&f, "\x02\0\0\0\0\0\0", 7, "seven"), RL_ERR_FORMAT);
}
END_TEST

START_TEST(test_header_length_hostile)
{
    struct st_file *f;
    uint8_t b[16] = {0};

    memcpy(b + 8, "{}      ", 8);
    b[7] = 0x80;                                        /* 2^63 */
    ck_assert_int_eq(st_open_memory(&f, b, 16, "h"), RL_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(rl_error_msg(), "exceeds the limit"));
    memset(b, 0xff, 8);                                 /* 2^64 - 1 */
    ck_assert_int_eq(st_open_memory(&f, b, 16, "h"), RL_ERR_FORMAT);
    uint64_t big = ST_MAX_HEADER_SIZE + 1ull;
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(big >> (8 * i));
    ck_assert_int_eq(st_open_memory(&f, b, 16, "h"), RL_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(rl_error_msg(), "exceeds the limit"));
    memset(b, 0, 8);
    b[0] = 9;                                           /* one past the end */
    ck_assert_int_eq(st_open_memory(&f, b, 16, "h"), RL_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(rl_error_msg(), "past the end"));
    b[0] = 0;                                           /* empty header */
    ck_assert_int_eq(st_open_memory(&f, b, 16, "h"), RL_ERR_FORMAT);
}
END_TEST

static const struct hostile {
    const char *what, *json;
    size_t data;
    const char *msg;                 /* expected in the error message */
} hostile[] = {
    {"invalid JSON", "{\"a\":", 0, "not valid JSON"},
    {"invalid JSON 2", "{\"a\" 1}", 0, "not valid JSON"},
    {"non-object JSON", "[1,2]", 0, "start with '{'"},
    {"string JSON", "\"x\"", 0, "start with '{'"},
    {"trailing bytes", "{} x", 0, "trailing"},
    {"two objects", "{}{}", 0, "trailing"},
    {"NUL in header", "{}\0", 0, NULL},
    {"control byte", "{\"a\x01\":{}}", 0, "control byte"},
    {"invalid UTF-8", "{\"a\xc0\x80\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}",
     4, "UTF-8"},
    {"entry not an object", "{\"a\":[1]}", 0, "not a JSON object"},
    {"missing dtype", "{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "missing \"dtype\""},
    {"missing shape", "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, "missing \"shape\""},
    {"missing offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "missing \"data_offsets\""},
    {"dtype not a string", "{\"a\":{\"dtype\":3,\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
     "dtype is not a string"},
    {"unknown dtype", "{\"a\":{\"dtype\":\"Q7\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
     "dtype \"Q7\""},
    {"sub-byte dtype", "{\"a\":{\"dtype\":\"F4\",\"shape\":[2],\"data_offsets\":[0,1]}}", 1,
     "dtype \"F4\""},
    {"lower-case dtype", "{\"a\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
     "dtype"},
    {"negative dim", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1,2],\"data_offsets\":[0,4]}}", 4,
     "negative"},
    {"fractional dim", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4,
     "not an integer"},
    {"string dim", "{\"a\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}", 8,
     "non-number"},
    {"huge dim", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1e300],\"data_offsets\":[0,4]}}", 4,
     "too large"},
    {"shape not an array", "{\"a\":{\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]}}", 8,
     "not an array"},
    {"too many dims", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1],"
     "\"data_offsets\":[0,4]}}", 4, "dimensions"},
    {"numel overflow", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],"
     "\"data_offsets\":[0,4]}}", 4, "overflows"},
    {"bytes overflow", "{\"a\":{\"dtype\":\"F64\",\"shape\":[2147483648,2147483648],"
     "\"data_offsets\":[0,8]}}", 8, "overflows"},
    {"overflow before zero", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,"
     "4294967296,0],\"data_offsets\":[0,0]}}", 0, NULL},
    {"size/shape mismatch", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}",
     4, "needs 8"},
    {"F16 size mismatch", "{\"a\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,8]}}",
     8, "needs 4"},
    {"offsets out of bounds", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
     4, "out of bounds"},
    {"offsets far out", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],"
     "\"data_offsets\":[9007199254740991,9007199254740992]}}", 4, "out of bounds"},
    {"offsets beyond 2^53", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],"
     "\"data_offsets\":[18446744073709551615,0]}}", 4, "too large"},
    {"begin > end", "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,0]}}", 4,
     "begin > end"},
    {"negative offset", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 4,
     "negative"},
    {"offsets not a pair", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}",
     8, "two integers"},
    {"offsets object", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":{\"a\":0}}}",
     4, "two integers"},
    {"overlap", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
     "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, "overlap"},
    {"same offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
     "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "overlap"},
    {"gap", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
     "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 12, "gap"},
    {"not starting at 0", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8,
     "gap"},
    {"trailing data", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 8,
     "cover 4"},
    {"data with no tensors", "{}", 4, "cover 0"},
    {"duplicate names", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
     "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "appears twice"},
    {"duplicate field", "{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F16\",\"shape\":[1],"
     "\"data_offsets\":[0,4]}}", 4, "duplicate field"},
    {"metadata not an object", "{\"__metadata__\":[\"x\"]}", 0, "__metadata__"},
    {"metadata non-string", "{\"__metadata__\":{\"format\":1}}", 0, "not a string"},
    {"metadata twice", "{\"__metadata__\":{},\"__metadata__\":{}}", 0, "twice"},
    {"metadata key twice", "{\"__metadata__\":{\"k\":\"a\",\"k\":\"b\"}}", 0, "twice"},
};

START_TEST(test_hostile_headers)
{
    for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
        const struct hostile *h = &hostile[i];
        size_t size;
        uint8_t *p = image(h->json, h->data, &size);
        if (strcmp(h->what, "NUL in header") == 0) {     /* strlen stops at the NUL */
            free(p);
            p = image("{}  ", 0, &size);
            p[8 + 2] = '\0';
        }
        struct st_file *f = NULL;
        int rc = st_open_memory(&f, p, size, "hostile.safetensors");
        ck_assert_msg(rc == RL_ERR_FORMAT, "%s: status %d (%s)", h->what, rc, rl_error_msg());
        ck_assert_ptr_null(f);
        ck_assert_msg(strncmp(rl_error_msg(), "hostile.safetensors: ", 21) == 0,
                      "%s: message does not name the file: %s", h->what, rl_error_msg());
        ck_assert_msg(!strchr(rl_error_msg(), '\n'), "%s: multi-line message", h->what);
        if (h->msg)
            ck_assert_msg(strstr(rl_error_msg(), h->msg), "%s: message '%s' lacks '%s'",
                          h->what, rl_error_msg(), h->msg);
        free(p);
    }
}
END_TEST

START_TEST(test_valid_edge_headers)
{
    /* padding with spaces, whitespace, metadata null, zero-size tensors, unknown fields */
    ck_assert_int_eq(open_image("{ }     ", 0), RL_OK);
    ck_assert_int_eq(open_image("{\"__metadata__\":null}", 0), RL_OK);
    ck_assert_int_eq(open_image("{\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]},"
                                "\"f\":{\"dtype\":\"BF16\",\"shape\":[3,0],\"data_offsets\":[0,0]},"
                                "\"g\":{\"dtype\":\"F16\",\"shape\":[],\"data_offsets\":[0,2]}}\n",
                                2), RL_OK);
    ck_assert_int_eq(open_image("{\"a\":{\"data_offsets\":[0,4],\"shape\":[1],\"x\":[],"
                                "\"dtype\":\"F32\"}}", 4), RL_OK);
    ck_assert_int_eq(open_image("{\"c\":{\"dtype\":\"C64\",\"shape\":[1],\"data_offsets\":[0,8]}}",
                                8), RL_OK);
}
END_TEST

/* deep nesting must not exhaust the stack */
START_TEST(test_deep_nesting)
{
    size_t n = 100000;
    char *j = xmalloc(2 * n + 16);
    size_t k = 0;

    k += (size_t)sprintf(j, "{\"a\":");
    for (size_t i = 0; i < n; i++)
        j[k++] = '[';
    for (size_t i = 0; i < n; i++)
        j[k++] = ']';
    j[k++] = '}';
    j[k] = '\0';
    ck_assert_int_eq(open_image(j, 0), RL_ERR_FORMAT);
    free(j);
}
END_TEST

/* Random byte flips, truncations and extensions of a valid file: every
 * outcome is RL_OK or RL_ERR_FORMAT, and reading an accepted file is safe. */
START_TEST(test_mutations)
{
    float a[12], b[5];
    for (int i = 0; i < 12; i++)
        a[i] = (float)i - 3.5f;
    for (int i = 0; i < 5; i++)
        b[i] = (float)i * 0.25f;
    struct st_writer *w = st_writer_new();
    ck_assert_int_eq(st_writer_add(w, "w", a, 2, (const int64_t[]){3, 4}, ST_F32), RL_OK);
    ck_assert_int_eq(st_writer_add(w, "h", b, 1, (const int64_t[]){5}, ST_F16), RL_OK);
    ck_assert_int_eq(st_writer_add(w, "g", b, 1, (const int64_t[]){5}, ST_BF16), RL_OK);
    ck_assert_int_eq(st_writer_set_metadata(w, "format", "pt"), RL_OK);
    void *buf;
    size_t size;
    ck_assert_int_eq(st_writer_write_memory(w, &buf, &size), RL_OK);
    st_writer_free(w);

    struct rng r;
    rng_init(&r, 99);
    size_t accepted = 0;
    for (int iter = 0; iter < 3000; iter++) {
        size_t sz = size;
        uint8_t *m = xmalloc(size + 64);
        memcpy(m, buf, size);
        int kind = (int)(rng_u64(&r) % 4);
        if (kind == 0) {
            sz = rng_u64(&r) % (size + 1);                          /* truncate */
        } else if (kind == 1) {
            size_t extra = rng_u64(&r) % 64;                        /* extend */
            memset(m + size, (int)(rng_u64(&r) & 0xff), extra);
            sz = size + extra;
        } else {
            int flips = 1 + (int)(rng_u64(&r) % 4);                 /* flip bytes */
            for (int k = 0; k < flips; k++) {
                size_t at = rng_u64(&r) % (kind == 2 ? size : 8 + 64);
                m[at] = (uint8_t)rng_u64(&r);
            }
        }
        /* exact-size copy so ASan catches any read past the end */
        uint8_t *exact = xmalloc(sz ? sz : 1);
        memcpy(exact, m, sz);
        free(m);
        struct st_file *f;
        int rc = st_open_memory(&f, exact, sz, "mut");
        ck_assert_msg(rc == RL_OK || rc == RL_ERR_FORMAT, "iteration %d: status %d", iter, rc);
        if (rc == RL_OK) {
            accepted++;
            for (size_t i = 0; i < st_count(f); i++) {
                const struct st_info *t = st_info_at(f, i);
                float *o = xmalloc_array(t->numel ? t->numel : 1, sizeof(float));
                int rr = st_read_f32(f, t, o);
                ck_assert(rr == RL_OK || rr == RL_ERR_FORMAT);
                free(o);
            }
            st_close(f);
        }
        free(exact);
    }
    ck_assert_uint_gt(accepted, 0);       /* some flips land in the data and stay valid */
    free(buf);
}
END_TEST

Suite *suite_safetensors(void)
{
    Suite *s = suite_create("safetensors");
    TCase *tc = tcase_create("convert");

    tcase_add_test(tc, test_f16_known_values);
    tcase_add_test(tc, test_bf16_known_values);
    suite_add_tcase(s, tc);

    tc = tcase_create("readwrite");
    tcase_add_test(tc, test_roundtrip);
    tcase_add_test(tc, test_reference_vectors);
    tcase_add_test(tc, test_torch_fixture);
    tcase_add_test(tc, test_load_errors);
    tcase_add_test(tc, test_writer_errors);
    suite_add_tcase(s, tc);

    tc = tcase_create("hostile");
    tcase_add_test(tc, test_io_errors);
    tcase_add_test(tc, test_header_length_hostile);
    tcase_add_test(tc, test_hostile_headers);
    tcase_add_test(tc, test_valid_edge_headers);
    tcase_add_test(tc, test_deep_nesting);
    tcase_add_test(tc, test_mutations);
    suite_add_tcase(s, tc);
    return s;
}
