/*
 * check_adapter_io_hostile.c: peft-format adapter files that must be
 * refused (methods/adapter_io.h):
 *
 *   hostile         wrong peft_type, missing / mis-shaped / extra / non-finite
 *                   tensors, malformed JSON (every prefix), bad field types,
 *                   mismatched rank or scaling: RL_ERR_FORMAT naming the file
 *                   and the key, and nothing changed
 *   arguments       bad arguments to export and import
 * adapter_io_harness.h holds the small model and the directory.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/alloc.h"
#include "core/status.h"
#include "formats/safetensors.h"
#include "methods/adapter.h"
#include "methods/adapter_io.h"
#include "adapter_io_harness.h"
#include "suites.h"
#include "test_cmd.h"
#include "test_util.h"

/* ------------------------------------------------------------------------ */
/* hostile inputs                                                            */

static struct io_model hm;             /* a LoRA model exported to aio_tmpdir */
static float *snapshot;
static size_t snapshot_n;
static char *good_config;           /* the exported adapter_config.json */

static void hostile_setup(void)
{
    struct adapter_cfg cfg;
    struct adapter_io_files files;

    aio_make_tmpdir();
    files = aio_dir_files();
    adapter_cfg_defaults(&cfg, "lora", 3);
    io_model_init(&hm, &cfg);
    io_model_randomize(&hm, 5);
    ck_assert_int_eq(adapter_io_export(&files, &hm.m, hm.mods, N_LAYERS), RL_OK);
    good_config = test_slurp(aio_tmp_path(ADAPTER_IO_CONFIG_NAME), NULL);
    io_model_randomize(&hm, 6);          /* the in-memory state differs from the files */
    snapshot_n = 0;
    for (int i = 0; i < N_LAYERS; i++)
        snapshot_n += hm.a[i].n_params;
    snapshot = xmalloc_array(snapshot_n, sizeof(float));
    for (int i = 0, off = 0; i < N_LAYERS; off += (int)hm.a[i].n_params, i++)
        memcpy(snapshot + off, hm.a[i].params, hm.a[i].n_params * sizeof(float));
}

static void hostile_teardown(void)
{
    free(snapshot);
    free(good_config);
    io_model_free(&hm);
    aio_remove_tmpdir();
}

static void expect_unchanged(void)
{
    for (int i = 0, off = 0; i < N_LAYERS; off += (int)hm.a[i].n_params, i++)
        ck_assert_msg(!memcmp(snapshot + off, hm.a[i].params, hm.a[i].n_params * sizeof(float)),
                      "a failed import changed layer %d", i);
}

/* import must fail with `status` and a message holding both needles */
static void expect_fail(int status, const char *needle1, const char *needle2)
{
    struct adapter_io_files files = aio_dir_files();
    int rc = adapter_io_import(&files, &hm.m, hm.mods, N_LAYERS);
    const char *msg = rl_error_msg();

    ck_assert_msg(rc == status, "import gave %d (%s), expected %d", rc, msg, status);
    ck_assert_msg(!needle1 || strstr(msg, needle1), "message '%s' lacks '%s'", msg, needle1);
    ck_assert_msg(!needle2 || strstr(msg, needle2), "message '%s' lacks '%s'", msg, needle2);
    ck_assert_msg(strchr(msg, '\n') == NULL, "message is not one line: '%s'", msg);
    expect_unchanged();
}

/* replace the config with `text` */
static void put_config(const char *text)
{
    test_write_file(aio_tmp_path(ADAPTER_IO_CONFIG_NAME), text, strlen(text));
}

/* the exported config with key set to raw JSON value (NULL: removed) */
static void put_config_with(const char *key, const char *raw)
{
    char *out;
    cJSON *o = cJSON_Parse(good_config);

    ck_assert_ptr_nonnull(o);
    cJSON_DeleteItemFromObjectCaseSensitive(o, key);
    if (raw)
        cJSON_AddRawToObject(o, key, raw);
    out = cJSON_PrintUnformatted(o);
    put_config(out);
    free(out);
    cJSON_Delete(o);
}

/* rewrite the weights with the exported tensors, one of them replaced */
static void put_weights(const char *drop_key, const char *add_key, const float *add_data,
                        int add_ndim, const int64_t *add_shape)
{
    struct st_file *f;
    struct st_writer *w = st_writer_new();
    float **bufs;
    size_t n;
    void *img;
    size_t img_size;

    ck_assert_int_eq(st_open(&f, aio_tmp_path(ADAPTER_IO_WEIGHTS_NAME)), RL_OK);
    n = st_count(f);
    bufs = xcalloc(n, sizeof(*bufs));
    for (size_t i = 0; i < n; i++) {
        const struct st_info *t = st_info_at(f, i);

        if (drop_key && !strcmp(t->name, drop_key))
            continue;
        bufs[i] = xmalloc_array(t->numel, sizeof(float));
        ck_assert_int_eq(st_read_f32(f, t, bufs[i]), RL_OK);
        ck_assert_int_eq(st_writer_add(w, t->name, bufs[i], t->ndim, t->shape, ST_F32), RL_OK);
    }
    if (add_key)
        ck_assert_int_eq(st_writer_add(w, add_key, add_data, add_ndim, add_shape, ST_F32), RL_OK);
    ck_assert_int_eq(st_writer_write_memory(w, &img, &img_size), RL_OK);
    st_writer_free(w);
    st_close(f);
    for (size_t i = 0; i < n; i++)
        free(bufs[i]);
    free(bufs);
    test_write_file(aio_tmp_path(ADAPTER_IO_WEIGHTS_NAME), img, img_size);
    free(img);
}

#define KEY_A0 "base_model.model." Q_PROJ ".lora_A.weight"
#define KEY_B2 "base_model.model." FC2 ".lora_B.weight"

START_TEST(test_hostile_config)
{
    const char *good = good_config;
    const char *cpath = aio_tmp_path(ADAPTER_IO_CONFIG_NAME);

    /* sanity: the untouched files load */
    {
        struct adapter_io_files files = aio_dir_files();

        ck_assert_int_eq(adapter_io_import(&files, &hm.m, hm.mods, N_LAYERS), RL_OK);
        for (int i = 0, off = 0; i < N_LAYERS; off += (int)hm.a[i].n_params, i++)
            memcpy(hm.a[i].params, snapshot + off, hm.a[i].n_params * sizeof(float));
    }

    put_config_with("peft_type", "\"VERA\"");
    expect_fail(RL_ERR_FORMAT, cpath, "peft_type");
    put_config_with("peft_type", "\"IA3\"");
    expect_fail(RL_ERR_FORMAT, cpath, "peft_type");
    put_config_with("peft_type", "3");
    expect_fail(RL_ERR_FORMAT, cpath, "peft_type");
    put_config_with("peft_type", NULL);
    expect_fail(RL_ERR_FORMAT, cpath, "peft_type");
    put_config(good);

    put_config_with("r", "4");
    expect_fail(RL_ERR_FORMAT, cpath, "'r'");
    put_config_with("r", "-1");
    expect_fail(RL_ERR_FORMAT, cpath, "'r'");
    put_config_with("r", "2.5");
    expect_fail(RL_ERR_FORMAT, cpath, "'r'");
    put_config_with("r", "\"3\"");
    expect_fail(RL_ERR_FORMAT, cpath, "'r'");
    put_config_with("r", "0");
    expect_fail(RL_ERR_FORMAT, cpath, "'r'");
    put_config_with("r", "1e300");
    expect_fail(RL_ERR_FORMAT, cpath, "'r'");
    put_config_with("r", NULL);
    expect_fail(RL_ERR_FORMAT, cpath, "'r'");
    put_config(good);

    put_config_with("lora_alpha", "16");
    expect_fail(RL_ERR_FORMAT, cpath, "lora_alpha");
    put_config_with("lora_alpha", "\"8\"");
    expect_fail(RL_ERR_FORMAT, cpath, "lora_alpha");
    put_config_with("lora_alpha", "-8");
    expect_fail(RL_ERR_FORMAT, cpath, "lora_alpha");
    put_config_with("use_rslora", "true");
    expect_fail(RL_ERR_FORMAT, cpath, "use_rslora");
    put_config_with("use_rslora", "1");
    expect_fail(RL_ERR_FORMAT, cpath, "use_rslora");
    put_config_with("lora_dropout", "1.5");
    expect_fail(RL_ERR_FORMAT, cpath, "dropout");
    put_config_with("bias", "\"all\"");
    expect_fail(RL_ERR_FORMAT, cpath, "bias");
    put_config_with("use_dora", "true");
    expect_fail(RL_ERR_FORMAT, cpath, "use_dora");
    put_config_with("fan_in_fan_out", "true");
    expect_fail(RL_ERR_FORMAT, cpath, "fan_in_fan_out");
    put_config_with("modules_to_save", "[\"classifier\", \"pooler\"]");   /* one head only */
    expect_fail(RL_ERR_FORMAT, cpath, "modules_to_save");
    put_config_with("target_modules", "[1, 2]");
    expect_fail(RL_ERR_FORMAT, cpath, "target_modules");
    put_config_with("base_model_name_or_path", "{}");
    expect_fail(RL_ERR_FORMAT, cpath, "base_model_name_or_path");

    /* malformed JSON */
    put_config("[1, 2]");
    expect_fail(RL_ERR_FORMAT, cpath, "object");
    put_config("{\"peft_type\": \"LORA\", \"r\": 3, \"r\": 3}");
    expect_fail(RL_ERR_FORMAT, cpath, "'r'");
    put_config("{\"peft_type\": \"LORA\", \"r\": 3} trailing");
    expect_fail(RL_ERR_FORMAT, cpath, "JSON");
    put_config("");
    expect_fail(RL_ERR_FORMAT, cpath, "JSON");
    test_write_file(cpath, "{\"peft_type\":\0\"LORA\"}", 21);
    expect_fail(RL_ERR_FORMAT, cpath, "JSON");
    /* every proper prefix of the real config is invalid */
    for (size_t len = 0; len + 1 < strlen(good); len++) {
        test_write_file(cpath, good, len);
        expect_fail(RL_ERR_FORMAT, cpath, NULL);
    }

    /* no config at all */
    unlink(cpath);
    expect_fail(RL_ERR_IO, cpath, NULL);
    put_config(good);
}
END_TEST

START_TEST(test_hostile_weights)
{
    const char *wpath = aio_tmp_path(ADAPTER_IO_WEIGHTS_NAME);
    char *good = test_slurp(wpath, NULL);     /* binary, but read whole */
    struct stat sb;
    float bad[3 * 17];

    ck_assert_int_eq(stat(wpath, &sb), 0);

    /* a missing tensor */
    put_weights(KEY_B2, NULL, NULL, 0, NULL);
    expect_fail(RL_ERR_FORMAT, wpath, KEY_B2);

    /* a mis-shaped tensor: both shapes in the message */
    test_write_file(wpath, good, (size_t)sb.st_size);
    for (size_t i = 0; i < 3 * 17; i++)
        bad[i] = 0.5f;
    put_weights(KEY_A0, KEY_A0, bad, 2, (const int64_t[]){ 3, 17 });
    expect_fail(RL_ERR_FORMAT, wpath, KEY_A0);
    expect_fail(RL_ERR_FORMAT, "[3, 17]", "[3, 16]");
    test_write_file(wpath, good, (size_t)sb.st_size);
    put_weights(KEY_A0, KEY_A0, bad, 1, (const int64_t[]){ 48 });
    expect_fail(RL_ERR_FORMAT, wpath, KEY_A0);

    /* a non-finite value */
    test_write_file(wpath, good, (size_t)sb.st_size);
    bad[7] = NAN;
    put_weights(KEY_A0, KEY_A0, bad, 2, (const int64_t[]){ 3, 16 });
    expect_fail(RL_ERR_FORMAT, wpath, KEY_A0);

    /* a key that belongs to no module given (and a shared key LoRA lacks) */
    test_write_file(wpath, good, (size_t)sb.st_size);
    put_weights(NULL, "base_model.model.text_model.encoder.layers.1.self_attn.q_proj.lora_A.weight",
                bad, 2, (const int64_t[]){ 3, 16 });
    expect_fail(RL_ERR_FORMAT, wpath, "layers.1.self_attn.q_proj.lora_A.weight");
    test_write_file(wpath, good, (size_t)sb.st_size);
    put_weights(NULL, "base_model.vera_A", bad, 2, (const int64_t[]){ 3, 16 });
    expect_fail(RL_ERR_FORMAT, wpath, "base_model.vera_A");

    /* truncated weights: the reader's own error, nothing changed */
    test_write_file(wpath, good, (size_t)sb.st_size - 5);
    expect_fail(RL_ERR_FORMAT, wpath, NULL);
    unlink(wpath);
    expect_fail(RL_ERR_IO, wpath, NULL);

    test_write_file(wpath, good, (size_t)sb.st_size);
    free(good);
}
END_TEST

/* a RandLoRA adapter checked against a method with other rules */
START_TEST(test_hostile_mismatch)
{
    struct adapter_cfg cfg, other;
    struct io_model src, dst;
    struct adapter_io_files files;
    int rc;

    aio_make_tmpdir();
    files = aio_dir_files();
    adapter_cfg_defaults(&cfg, "randlora", 4);
    io_model_init(&src, &cfg);
    ck_assert_int_eq(adapter_io_export(&files, &src.m, src.mods, N_LAYERS), RL_OK);

    other = cfg;                                   /* rank */
    other.r = 5;
    io_model_init(&dst, &other);
    rc = adapter_io_import(&files, &dst.m, dst.mods, N_LAYERS);
    ck_assert_int_eq(rc, RL_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(rl_error_msg(), "'r'"));
    io_model_free(&dst);

    other = cfg;                                   /* n rule (paper profile) */
    ck_assert_int_eq(adapter_cfg_profile(&other, "paper"), RL_OK);
    io_model_init(&dst, &other);
    rc = adapter_io_import(&files, &dst.m, dst.mods, N_LAYERS);
    ck_assert_int_eq(rc, RL_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(rl_error_msg(), "bases rule"));
    io_model_free(&dst);

    other = cfg;                                   /* scaling */
    other.alpha = 3.0f;
    io_model_init(&dst, &other);
    rc = adapter_io_import(&files, &dst.m, dst.mods, N_LAYERS);
    ck_assert_int_eq(rc, RL_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(rl_error_msg(), "randlora_alpha"));
    io_model_free(&dst);

    other = cfg;                                   /* basis kind */
    other.basis = ADAPTER_BASIS_SPARSE;
    io_model_init(&dst, &other);
    rc = adapter_io_import(&files, &dst.m, dst.mods, N_LAYERS);
    ck_assert_int_eq(rc, RL_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(rl_error_msg(), "sparse"));
    io_model_free(&dst);

    /* another method altogether */
    adapter_cfg_defaults(&other, "vera", 4);
    io_model_init(&dst, &other);
    rc = adapter_io_import(&files, &dst.m, dst.mods, N_LAYERS);
    ck_assert_int_eq(rc, RL_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(rl_error_msg(), "peft_type"));
    ck_assert_ptr_nonnull(strstr(rl_error_msg(), ADAPTER_IO_CONFIG_NAME));
    io_model_free(&dst);

    /* a method sized differently: the shared tensor's shape is named */
    {
        struct adapter_method m2;
        struct adapter a2[N_LAYERS];
        struct adapter_io_module mods2[N_LAYERS];

        ck_assert_int_eq(adapter_method_init(&m2, &cfg, 48, 40, N_ROWS), RL_OK);
        for (int i = 0; i < N_LAYERS; i++) {
            ck_assert_int_eq(adapter_init(&a2[i], &m2, io_layer_dims[i][0], io_layer_dims[i][1],
                                          NULL, NULL), RL_OK);
            mods2[i].path = io_layer_paths[i];
            mods2[i].adapter = &a2[i];
        }
        rc = adapter_io_import(&files, &m2, mods2, N_LAYERS);
        ck_assert_int_eq(rc, RL_ERR_FORMAT);
        ck_assert_ptr_nonnull(strstr(rl_error_msg(), "base_model.randlora_B"));
        for (int i = 0; i < N_LAYERS; i++)
            adapter_free(&a2[i]);
        adapter_method_free(&m2);
    }
    io_model_free(&src);
    aio_remove_tmpdir();
}
END_TEST

/* bad arguments: RL_ERR_ARG, nothing written */
START_TEST(test_bad_arguments)
{
    struct adapter_cfg cfg;
    struct io_model md, other;
    struct adapter_io_module mods[2];
    struct adapter_io_files files, nofiles = { 0 };
    struct stat sb;

    aio_make_tmpdir();
    files = aio_dir_files();
    adapter_cfg_defaults(&cfg, "lora", 2);
    io_model_init(&md, &cfg);
    io_model_init(&other, &cfg);

    ck_assert_int_eq(adapter_io_export(&files, &md.m, md.mods, 0), RL_ERR_ARG);
    ck_assert_int_eq(adapter_io_export(&nofiles, &md.m, md.mods, 1), RL_ERR_ARG);
    ck_assert_int_eq(adapter_io_export(NULL, &md.m, md.mods, 1), RL_ERR_ARG);
    mods[0] = md.mods[0];
    mods[1] = md.mods[1];
    mods[1].path = md.mods[0].path;                /* repeated path */
    ck_assert_int_eq(adapter_io_export(&files, &md.m, mods, 2), RL_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(rl_error_msg(), Q_PROJ));
    mods[1].path = "";
    ck_assert_int_eq(adapter_io_export(&files, &md.m, mods, 2), RL_ERR_ARG);
    mods[1] = other.mods[1];                       /* another method's adapter */
    ck_assert_int_eq(adapter_io_export(&files, &md.m, mods, 2), RL_ERR_ARG);
    ck_assert_int_eq(adapter_io_import(&files, &md.m, mods, 2), RL_ERR_ARG);
    ck_assert_int_ne(stat(aio_tmp_path(ADAPTER_IO_WEIGHTS_NAME), &sb), 0);

    /* explicit file names, no directory */
    {
        char w[256], c[256];
        struct adapter_io_files named;

        snprintf(w, sizeof w, "%s", aio_tmp_path("w.safetensors"));
        snprintf(c, sizeof c, "%s", aio_tmp_path("c.json"));
        named = (struct adapter_io_files){ .weights = w, .config = c };
        ck_assert_int_eq(adapter_io_export(&named, &md.m, md.mods, N_LAYERS), RL_OK);
        ck_assert_int_eq(adapter_io_import(&named, &other.m, other.mods, N_LAYERS), RL_OK);
        for (int i = 0; i < N_LAYERS; i++)
            ck_assert(!memcmp(md.a[i].params, other.a[i].params,
                              md.a[i].n_params * sizeof(float)));
    }
    /* a directory that cannot be created */
    {
        struct adapter_io_files deep = { .dir = "/nonexistent-rl/a/b" };

        ck_assert_int_eq(adapter_io_export(&deep, &md.m, md.mods, N_LAYERS), RL_ERR_IO);
        ck_assert_ptr_nonnull(strstr(rl_error_msg(), "/nonexistent-rl/a/b"));
    }
    /* the per-layer wrappers directly */
    {
        struct st_writer *w = st_writer_new();
        void *img;
        size_t size;
        struct st_file *f;

        ck_assert_int_eq(adapter_export_tensors(&md.a[0], w, "p."), RL_OK);
        ck_assert_int_eq(st_writer_write_memory(w, &img, &size), RL_OK);
        ck_assert_int_eq(st_open_memory(&f, img, size, "mem"), RL_OK);
        ck_assert_ptr_nonnull(st_find(f, "p.lora_A.weight"));
        ck_assert_ptr_nonnull(st_find(f, "p.lora_B.weight"));
        ck_assert_int_eq(adapter_import_tensors(&other.a[0], f, "p.", NULL), RL_OK);
        ck_assert(!memcmp(md.a[0].params, other.a[0].params, md.a[0].n_params * sizeof(float)));
        ck_assert_int_eq(adapter_import_tensors(&other.a[0], f, "q.", NULL), RL_ERR_FORMAT);
        ck_assert_ptr_nonnull(strstr(rl_error_msg(), "q.lora_A.weight"));
        st_close(f);
        free(img);
        st_writer_free(w);
    }
    io_model_free(&md);
    io_model_free(&other);
    aio_remove_tmpdir();
}
END_TEST

Suite *suite_adapter_io_hostile(void)
{
    Suite *s = suite_create("adapter_io_hostile");
    TCase *tc = tcase_create("mismatch");
    TCase *th = tcase_create("hostile");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_hostile_mismatch);
    tcase_add_test(tc, test_bad_arguments);
    suite_add_tcase(s, tc);

    tcase_set_timeout(th, 60);
    tcase_add_checked_fixture(th, hostile_setup, hostile_teardown);
    tcase_add_test(th, test_hostile_config);
    tcase_add_test(th, test_hostile_weights);
    suite_add_tcase(s, th);
    return s;
}
