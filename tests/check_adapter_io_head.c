/*
 * check_adapter_io_head.c: a linear head (model.head = linear) saved with
 * the adapters as peft saves modules_to_save ["classifier"]
 * (methods/adapter_io.h, struct adapter_io_head):
 *
 *   roundtrip      LoRA and RandLoRA adapters + a head: export -> import
 *                  gives the head and the adapters bit for bit; the keys
 *                  base_model.model.classifier.weight (M, FD) and .bias (M)
 *                  and modules_to_save ["classifier"] are written, read back
 *                  by adapter_io_read_config as info.head
 *   no_head_file   a file without a head imports into a run with one: the
 *                  head is left as it was and loaded stays false
 *   refusals       a file with a head into adapters without one, a head of
 *                  another shape (cls features, FD = D, against cls_mean's
 *                  2D), and modules_to_save with two entries or a dotted
 *                  path: RL_ERR_FORMAT naming the file, nothing changed
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/alloc.h"
#include "core/read_file.h"
#include "core/rng.h"
#include "core/status.h"
#include "formats/safetensors.h"
#include "methods/adapter.h"
#include "methods/adapter_io.h"
#include "adapter_io_harness.h"
#include "suites.h"

#define M_CLASSES 5
#define FD_FEATS  24

struct head_buf {
    float w[M_CLASSES * FD_FEATS], b[M_CLASSES];
    struct adapter_io_head h;
};

static void head_fill(struct head_buf *hb, uint64_t seed, size_t in)
{
    struct rng g;

    rng_init(&g, seed);
    for (size_t i = 0; i < M_CLASSES * FD_FEATS; i++)
        hb->w[i] = rng_normal(&g);
    for (size_t i = 0; i < M_CLASSES; i++)
        hb->b[i] = rng_normal(&g);
    hb->h = (struct adapter_io_head){ .path = "classifier", .weight = hb->w, .bias = hb->b,
                                      .out = M_CLASSES, .in = in };
}

static void model_cfg(struct adapter_cfg *cfg, const char *method, uint64_t seed)
{
    adapter_cfg_defaults(cfg, method, 3);
    cfg->seed = seed;
}

/* the adapters' trainable params of a and b are bit-identical? */
static bool same_params(const struct io_model *a, const struct io_model *b)
{
    for (size_t i = 0; i < N_LAYERS; i++)
        if (a->a[i].n_params != b->a[i].n_params ||
            memcmp(a->a[i].params, b->a[i].params, a->a[i].n_params * sizeof(float)))
            return false;
    return true;
}

static const char *const head_methods[] = { "lora", "randlora" };

START_TEST(test_roundtrip)
{
    struct adapter_cfg cfg, cfg2;
    struct io_model src, dst;
    struct head_buf hs, hd;
    struct adapter_io_files files;
    struct adapter_io_info info;
    struct st_file *f = NULL;
    const struct st_info *t;
    char *text = NULL;
    size_t len = 0;
    cJSON *root, *ms;
    int rc;

    aio_make_tmpdir();
    files = aio_dir_files();
    model_cfg(&cfg, head_methods[_i], 21);
    model_cfg(&cfg2, head_methods[_i], 22);
    io_model_init(&src, &cfg);
    io_model_init(&dst, &cfg2);
    io_model_randomize(&src, 1);
    io_model_randomize(&dst, 2);
    head_fill(&hs, 3, FD_FEATS);
    head_fill(&hd, 4, FD_FEATS);

    files.head = &hs.h;
    ck_assert_msg(adapter_io_export(&files, &src.m, src.mods, N_LAYERS) == RL_OK, "%s", rl_error_msg());

    /* peft's keys and shapes, and the config field */
    ck_assert_int_eq(st_open(&f, aio_tmp_path(ADAPTER_IO_WEIGHTS_NAME)), RL_OK);
    t = st_find(f, "base_model.model.classifier.weight");
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->ndim, 2);
    ck_assert_int_eq(t->shape[0], M_CLASSES);
    ck_assert_int_eq(t->shape[1], FD_FEATS);
    t = st_find(f, "base_model.model.classifier.bias");
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->ndim, 1);
    ck_assert_int_eq(t->shape[0], M_CLASSES);
    st_close(f);
    ck_assert_int_eq(rl_read_file(aio_tmp_path(ADAPTER_IO_CONFIG_NAME), 1 << 20, &text, &len), RL_OK);
    root = cJSON_Parse(text);
    ms = cJSON_GetObjectItemCaseSensitive(root, "modules_to_save");
    ck_assert(cJSON_IsArray(ms) && cJSON_GetArraySize(ms) == 1);
    ck_assert_str_eq(cJSON_GetArrayItem(ms, 0)->valuestring, "classifier");
    cJSON_Delete(root);
    free(text);
    ck_assert_int_eq(adapter_io_read_config(&files, &info), RL_OK);
    ck_assert_ptr_nonnull(info.head);
    ck_assert_str_eq(info.head, "classifier");
    adapter_io_info_free(&info);

    /* back, bit for bit */
    files.head = &hd.h;
    ck_assert(memcmp(hd.w, hs.w, sizeof hs.w) != 0);
    rc = adapter_io_import(&files, &dst.m, dst.mods, N_LAYERS);
    ck_assert_msg(rc == RL_OK, "%s", rl_error_msg());
    ck_assert(hd.h.loaded);
    ck_assert(memcmp(hd.w, hs.w, sizeof hs.w) == 0);
    ck_assert(memcmp(hd.b, hs.b, sizeof hs.b) == 0);
    ck_assert(same_params(&src, &dst));

    io_model_free(&src);
    io_model_free(&dst);
    aio_remove_tmpdir();
}
END_TEST

START_TEST(test_no_head_file)
{
    struct adapter_cfg cfg;
    struct io_model src, dst;
    struct head_buf hd, keep;
    struct adapter_io_files files;

    aio_make_tmpdir();
    files = aio_dir_files();
    model_cfg(&cfg, "lora", 5);
    io_model_init(&src, &cfg);
    io_model_init(&dst, &cfg);
    io_model_randomize(&src, 6);
    io_model_randomize(&dst, 7);
    ck_assert_int_eq(adapter_io_export(&files, &src.m, src.mods, N_LAYERS), RL_OK);
    head_fill(&hd, 8, FD_FEATS);
    head_fill(&keep, 8, FD_FEATS);
    hd.h.loaded = true;
    files.head = &hd.h;
    ck_assert_msg(adapter_io_import(&files, &dst.m, dst.mods, N_LAYERS) == RL_OK, "%s", rl_error_msg());
    ck_assert(!hd.h.loaded);
    ck_assert(memcmp(hd.w, keep.w, sizeof hd.w) == 0);
    ck_assert(memcmp(hd.b, keep.b, sizeof hd.b) == 0);
    ck_assert(same_params(&src, &dst));
    io_model_free(&src);
    io_model_free(&dst);
    aio_remove_tmpdir();
}
END_TEST

/* rewrite adapter_config.json's modules_to_save with the JSON value v */
static void set_modules_to_save(const char *v)
{
    const char *path = aio_tmp_path(ADAPTER_IO_CONFIG_NAME);
    char *text = NULL;
    size_t len = 0;
    cJSON *root;
    FILE *fp;

    ck_assert_int_eq(rl_read_file(path, 1 << 20, &text, &len), RL_OK);
    root = cJSON_Parse(text);
    free(text);
    cJSON_ReplaceItemInObjectCaseSensitive(root, "modules_to_save", cJSON_Parse(v));
    text = cJSON_Print(root);
    fp = fopen(path, "w");
    ck_assert_ptr_nonnull(fp);
    fputs(text, fp);
    fclose(fp);
    free(text);
    cJSON_Delete(root);
}

START_TEST(test_refusals)
{
    struct adapter_cfg cfg;
    struct io_model src, dst, keep;
    struct head_buf hs, hd, hkeep;
    struct adapter_io_files files;
    int rc;

    aio_make_tmpdir();
    files = aio_dir_files();
    model_cfg(&cfg, "lora", 9);
    io_model_init(&src, &cfg);
    io_model_init(&dst, &cfg);
    io_model_init(&keep, &cfg);
    io_model_randomize(&src, 10);
    io_model_randomize(&dst, 11);
    io_model_randomize(&keep, 11);
    head_fill(&hs, 12, FD_FEATS);
    files.head = &hs.h;
    ck_assert_int_eq(adapter_io_export(&files, &src.m, src.mods, N_LAYERS), RL_OK);

    /* no head to load it into */
    files.head = NULL;
    rc = adapter_io_import(&files, &dst.m, dst.mods, N_LAYERS);
    ck_assert_int_eq(rc, RL_ERR_FORMAT);
    ck_assert_msg(strstr(rl_error_msg(), "linear head 'classifier'") &&
                  strstr(rl_error_msg(), ADAPTER_IO_WEIGHTS_NAME), "%s", rl_error_msg());
    ck_assert(same_params(&dst, &keep));

    /* a cls head (FD = 12) against the file's cls_mean one (24) */
    head_fill(&hd, 13, FD_FEATS / 2);
    head_fill(&hkeep, 13, FD_FEATS / 2);
    files.head = &hd.h;
    rc = adapter_io_import(&files, &dst.m, dst.mods, N_LAYERS);
    ck_assert_int_eq(rc, RL_ERR_FORMAT);
    ck_assert_msg(strstr(rl_error_msg(), "classifier.weight"), "%s", rl_error_msg());
    ck_assert(!hd.h.loaded);
    ck_assert(memcmp(hd.w, hkeep.w, sizeof hd.w) == 0);
    ck_assert(same_params(&dst, &keep));

    /* modules_to_save peft could write but this program cannot honour */
    set_modules_to_save("[\"classifier\", \"pooler\"]");
    files.head = &hs.h;
    rc = adapter_io_import(&files, &dst.m, dst.mods, N_LAYERS);
    ck_assert_int_eq(rc, RL_ERR_FORMAT);
    ck_assert_msg(strstr(rl_error_msg(), "modules_to_save"), "%s", rl_error_msg());
    set_modules_to_save("[\"model.classifier\"]");
    rc = adapter_io_import(&files, &dst.m, dst.mods, N_LAYERS);
    ck_assert_int_eq(rc, RL_ERR_FORMAT);
    ck_assert(same_params(&dst, &keep));

    io_model_free(&src);
    io_model_free(&dst);
    io_model_free(&keep);
    aio_remove_tmpdir();
}
END_TEST

Suite *suite_adapter_io_head(void)
{
    Suite *s = suite_create("adapter_io_head");
    TCase *tc = tcase_create("adapter_io_head");

    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_roundtrip, 0, 2);
    tcase_add_test(tc, test_no_head_file);
    tcase_add_test(tc, test_refusals);
    suite_add_tcase(s, tc);
    return s;
}
