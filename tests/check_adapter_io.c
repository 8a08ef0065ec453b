/*
 * check_adapter_io.c: adapters to and from peft's adapter_model.safetensors
 * + adapter_config.json (methods/adapter_io.h):
 *
 *   roundtrip       export -> import for every registry method and its
 *                   settings: bit-identical params and shared tensors,
 *                   identical forward outputs, the config read back
 *   keys            peft's key strings and shapes for LoRA, VeRA, RandLoRA
 *                   and full on text_model.encoder.layers.0.self_attn.q_proj,
 *                   and adapter_config.json's fields
 *   peft_fixture    adapters written in peft's layout by
 *                   tests/ref/make_adapter_io_fixture.py load here and give
 *                   the forward output computed with peft's formulas
 * Hostile files and bad arguments are in check_adapter_io_hostile.c;
 * adapter_io_harness.h holds the small model and the directory both use.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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

#define FIXTURE_HINT "/usr/bin/python3 tests/ref/make_adapter_io_fixture.py"

/* y (N_ROWS, d_out) = adapter branch of layer i on x */
static float *model_forward(struct io_model *md, int i, const float *x)
{
    float *y = test_zeros(N_ROWS * md->a[i].d_out);

    adapter_forward(&md->a[i], x, y, N_ROWS);
    return y;
}

/* ------------------------------------------------------------------------ */
/* round trip over the registry                                              */

struct rt_case {
    const char *method;
    const char *profile;
    enum adapter_basis basis;
    bool  set_scaling;
    enum adapter_scaling scaling;
    bool  rslora;
    float alpha, dropout, d_init;
    uint64_t seed;
};

static const struct rt_case rt_cases[] = {
    { "lora",     "peft",  ADAPTER_BASIS_DENSE, false, 0, false, 0.0f,  0.0f,  0.1f, 1 },
    { "lora",     "peft",  ADAPTER_BASIS_DENSE, false, 0, true,  6.0f,  0.25f, 0.1f, 2 },
    { "vera",     "peft",  ADAPTER_BASIS_DENSE, false, 0, false, 0.0f,  0.1f,  0.05f, 77 },
    { "randlora", "peft",  ADAPTER_BASIS_DENSE, false, 0, false, 0.0f,  0.0f,  0.1f, 3 },
    { "randlora", "peft",  ADAPTER_BASIS_SPARSE, false, 0, false, 5.5f, 0.0f,  0.1f, 4 },
    { "randlora", "paper", ADAPTER_BASIS_VERY_SPARSE, false, 0, false, 0.0f, 0.0f, 0.1f,
      0xFEDCBA9876543210ull },
    { "randlora", "peft",  ADAPTER_BASIS_DENSE, true, ADAPTER_SCALE_ALPHA_R_SQRT_N, false, 6.0f,
      0.0f, 0.1f, 5 },
    { "nola",     "peft",  ADAPTER_BASIS_SPARSE, false, 0, false, 2.0f,  0.0f,  0.1f, 8 },
    { "full",     "peft",  ADAPTER_BASIS_DENSE, false, 0, false, 0.0f,  0.0f,  0.1f, 6 },
    { "none",     "peft",  ADAPTER_BASIS_DENSE, false, 0, false, 0.0f,  0.0f,  0.1f, 7 },
};
#define N_RT (sizeof(rt_cases) / sizeof(rt_cases[0]))

static void rt_cfg(struct adapter_cfg *cfg, const struct rt_case *c, uint64_t seed)
{
    adapter_cfg_defaults(cfg, c->method, 3);
    ck_assert_int_eq(adapter_cfg_profile(cfg, c->profile), RL_OK);
    cfg->basis = c->basis;
    if (c->set_scaling)
        cfg->scaling = c->scaling;
    cfg->rslora = c->rslora;
    cfg->alpha = c->alpha;
    cfg->dropout = c->dropout;
    cfg->vera_d_init = c->d_init;
    cfg->seed = seed;
}

START_TEST(test_registry_covered)
{
    for (const struct adapter_ops *const *o = adapter_registry(); *o; o++) {
        bool found = false;

        for (size_t i = 0; i < N_RT; i++)
            found |= !strcmp(rt_cases[i].method, (*o)->name);
        ck_assert_msg(found, "no round-trip case for %s", (*o)->name);
        ck_assert_ptr_nonnull((*o)->export_tensors);
        ck_assert_ptr_nonnull((*o)->import_tensors);
    }
}
END_TEST

START_TEST(test_roundtrip)
{
    const struct rt_case *c = &rt_cases[_i];
    struct adapter_cfg cfg, cfg2;
    struct io_model src, dst;
    struct adapter_tensor ts[8], td[8];
    struct adapter_io_files files;
    struct adapter_io_info info;
    struct rng g;
    struct stat sb;
    size_t ns, nd;
    int rc;

    aio_make_tmpdir();
    files = aio_dir_files();
    rt_cfg(&cfg, c, c->seed);
    /* the destination has other random shared tensors (another seed) and
     * other parameters: everything must come from the files */
    rt_cfg(&cfg2, c, c->seed + 1000);
    io_model_init(&src, &cfg);
    io_model_init(&dst, &cfg2);
    io_model_randomize(&src, 11);
    io_model_randomize(&dst, 12);

    rc = adapter_io_export(&files, &src.m, src.mods, N_LAYERS);
    ck_assert_msg(rc == RL_OK, "export %s: %s", c->method, rl_error_msg());
    if (!strcmp(c->method, "none")) {
        /* exports nothing, imports nothing */
        ck_assert_int_ne(stat(aio_tmp_path(ADAPTER_IO_WEIGHTS_NAME), &sb), 0);
        ck_assert_int_ne(stat(aio_tmp_path(ADAPTER_IO_CONFIG_NAME), &sb), 0);
        ck_assert_int_eq(adapter_io_import(&files, &dst.m, dst.mods, N_LAYERS), RL_OK);
        ck_assert_ptr_eq(adapter_io_peft_type("none"), NULL);
        goto done;
    }
    rc = adapter_io_import(&files, &dst.m, dst.mods, N_LAYERS);
    ck_assert_msg(rc == RL_OK, "import %s: %s", c->method, rl_error_msg());

    /* params and shared tensors bit for bit */
    for (int i = 0; i < N_LAYERS; i++) {
        ck_assert_uint_eq(src.a[i].n_params, dst.a[i].n_params);
        ck_assert_msg(!memcmp(src.a[i].params, dst.a[i].params,
                              src.a[i].n_params * sizeof(float)),
                      "%s layer %d: params differ", c->method, i);
    }
    ns = adapter_method_tensors(&src.m, ts, 8);
    nd = adapter_method_tensors(&dst.m, td, 8);
    ck_assert_uint_eq(ns, nd);
    for (size_t k = 0; k < ns; k++) {
        ck_assert_str_eq(ts[k].name, td[k].name);
        ck_assert_uint_eq(ts[k].n, td[k].n);
        ck_assert_msg(!memcmp(ts[k].data, td[k].data, ts[k].n * sizeof(float)),
                      "%s: shared %s differs", c->method, ts[k].name);
    }
    /* forward outputs identical */
    rng_init(&g, 99);
    for (int i = 0; i < N_LAYERS; i++) {
        float *x = test_randn(&g, N_ROWS * src.a[i].d_in, 1.0f);
        float *y1 = model_forward(&src, i, x), *y2 = model_forward(&dst, i, x);

        ck_assert_msg(!memcmp(y1, y2, N_ROWS * src.a[i].d_out * sizeof(float)),
                      "%s layer %d: forward differs", c->method, i);
        if (strcmp(c->method, "none"))
            ck_assert_double_gt(test_max_abs(y1, N_ROWS * src.a[i].d_out), 0.0);
        free(x);
        free(y1);
        free(y2);
    }

    /* the configuration reads back */
    rc = adapter_io_read_config(&files, &info);
    ck_assert_msg(rc == RL_OK, "read_config: %s", rl_error_msg());
    ck_assert_str_eq(info.cfg.method, c->method);
    ck_assert_uint_eq(info.n_targets, N_LAYERS);
    ck_assert_ptr_null(info.base_model);
    if (strcmp(c->method, "full")) {
        ck_assert_uint_eq(info.cfg.r, cfg.r);
        ck_assert_msg(info.cfg.seed == cfg.seed, "seed %llu != %llu",
                      (unsigned long long)info.cfg.seed, (unsigned long long)cfg.seed);
        ck_assert(info.cfg.dropout == cfg.dropout);
    }
    if (!strcmp(c->method, "lora")) {
        ck_assert(lora_scaling(&info.cfg) == lora_scaling(&cfg));
        ck_assert(info.cfg.rslora == cfg.rslora);
    }
    if (!strcmp(c->method, "vera"))
        ck_assert(info.cfg.vera_d_init == cfg.vera_d_init);
    if (!strcmp(c->method, "randlora")) {
        ck_assert_int_eq(info.cfg.basis, cfg.basis);
        ck_assert_int_eq(info.cfg.n_rule, cfg.n_rule);
        ck_assert_int_eq(info.cfg.scaling, cfg.scaling);
        ck_assert_int_eq(info.cfg.lambda_init, cfg.lambda_init);
        ck_assert_int_eq(info.cfg.gamma_init, cfg.gamma_init);
        for (int i = 0; i < N_LAYERS; i++) {
            size_t n = randlora_n_bases(&cfg, src.a[i].d_out, src.a[i].d_in);

            ck_assert(randlora_scaling(&info.cfg, n) == randlora_scaling(&cfg, n));
        }
    }
    adapter_io_info_free(&info);
done:
    io_model_free(&src);
    io_model_free(&dst);
    aio_remove_tmpdir();
}
END_TEST

/* ------------------------------------------------------------------------ */
/* peft's key names and shapes                                               */

static void expect_tensor(const struct st_file *f, const char *key, int ndim, int64_t d0,
                          int64_t d1, int64_t d2)
{
    const struct st_info *t = st_find(f, key);
    int64_t d[3] = { d0, d1, d2 };

    ck_assert_msg(t != NULL, "missing key '%s'", key);
    ck_assert_int_eq(t->dtype, ST_F32);
    ck_assert_msg(t->ndim == ndim, "%s: ndim %d, expected %d", key, t->ndim, ndim);
    for (int i = 0; i < ndim; i++)
        ck_assert_msg(t->shape[i] == d[i], "%s: dim %d is %lld, expected %lld", key, i,
                      (long long)t->shape[i], (long long)d[i]);
}

/* one adapter of `method` (rank 4) on q_proj (d_out x d_in): its files */
static void export_one(const char *method, size_t d_out, size_t d_in, struct st_file **f,
                       cJSON **config)
{
    struct adapter_cfg cfg;
    struct adapter_method m;
    struct adapter a;
    struct adapter_io_module mod = { Q_PROJ, &a };
    struct adapter_io_files files = { .dir = aio_tmpdir, .base_model = "openai/clip-vit-base-patch32" };
    char *text;
    int rc;

    adapter_cfg_defaults(&cfg, method, 4);
    cfg.seed = 42;
    ck_assert_int_eq(adapter_method_init(&m, &cfg, d_out, d_in, 2), RL_OK);
    ck_assert_int_eq(adapter_init(&a, &m, d_out, d_in, NULL, NULL), RL_OK);
    rc = adapter_io_export(&files, &m, &mod, 1);
    ck_assert_msg(rc == RL_OK, "%s", rl_error_msg());
    adapter_free(&a);
    adapter_method_free(&m);
    ck_assert_int_eq(st_open(f, aio_tmp_path(ADAPTER_IO_WEIGHTS_NAME)), RL_OK);
    ck_assert_str_eq(st_metadata_get(*f, "format"), "pt");
    text = test_slurp(aio_tmp_path(ADAPTER_IO_CONFIG_NAME), NULL);
    *config = cJSON_Parse(text);
    free(text);
    ck_assert_ptr_nonnull(*config);
}

static void expect_json_str(const cJSON *o, const char *key, const char *want)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

    ck_assert_msg(cJSON_IsString(v), "config: '%s' is not a string", key);
    ck_assert_str_eq(v->valuestring, want);
}

static void expect_json_num(const cJSON *o, const char *key, double want)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

    ck_assert_msg(cJSON_IsNumber(v), "config: '%s' is not a number", key);
    ck_assert_msg(v->valuedouble == want, "config: %s = %g, expected %g", key, v->valuedouble,
                  want);
}

static void expect_json_bool(const cJSON *o, const char *key, bool want)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

    ck_assert_msg(cJSON_IsBool(v), "config: '%s' is not a bool", key);
    ck_assert_msg(cJSON_IsTrue(v) == want, "config: %s is %d", key, (int)cJSON_IsTrue(v));
}

static void expect_common(const cJSON *o, const char *peft_type)
{
    const cJSON *tm = cJSON_GetObjectItemCaseSensitive(o, "target_modules");

    expect_json_str(o, "peft_type", peft_type);
    expect_json_str(o, "base_model_name_or_path", "openai/clip-vit-base-patch32");
    expect_json_str(o, "bias", "none");
    expect_json_bool(o, "inference_mode", true);
    expect_json_bool(o, "fan_in_fan_out", false);
    ck_assert(cJSON_IsArray(tm) && cJSON_GetArraySize(tm) == 1);
    ck_assert_str_eq(cJSON_GetArrayItem(tm, 0)->valuestring, Q_PROJ);
    /* keys sorted as peft's json.dumps(sort_keys=True) */
    for (const cJSON *c = o->child; c && c->next; c = c->next)
        ck_assert_msg(strcmp(c->string, c->next->string) < 0, "config keys not sorted: %s, %s",
                      c->string, c->next->string);
}

START_TEST(test_peft_key_names)
{
    struct st_file *f;
    cJSON *o;

    aio_make_tmpdir();

    /* LoRA on a 24 x 16 q_proj-like layer (shapes distinguish d_out, d_in) */
    export_one("lora", 24, 16, &f, &o);
    ck_assert_uint_eq(st_count(f), 2);
    expect_tensor(f, "base_model.model.text_model.encoder.layers.0.self_attn.q_proj.lora_A.weight",
                  2, 4, 16, 0);
    expect_tensor(f, "base_model.model.text_model.encoder.layers.0.self_attn.q_proj.lora_B.weight",
                  2, 24, 4, 0);
    expect_common(o, "LORA");
    expect_json_num(o, "r", 4);
    expect_json_num(o, "lora_alpha", 8);
    expect_json_num(o, "lora_dropout", 0);
    expect_json_bool(o, "use_rslora", false);
    expect_json_bool(o, "use_dora", false);
    cJSON_Delete(o);
    st_close(f);

    /* VeRA */
    export_one("vera", 24, 16, &f, &o);
    ck_assert_uint_eq(st_count(f), 4);
    expect_tensor(f, "base_model.model.text_model.encoder.layers.0.self_attn.q_proj.vera_lambda_b",
                  1, 24, 0, 0);
    expect_tensor(f, "base_model.model.text_model.encoder.layers.0.self_attn.q_proj.vera_lambda_d",
                  1, 4, 0, 0);
    expect_tensor(f, "base_model.vera_A", 2, 4, 16, 0);
    expect_tensor(f, "base_model.vera_B", 2, 24, 4, 0);
    expect_common(o, "VERA");
    expect_json_num(o, "r", 4);
    expect_json_num(o, "projection_prng_key", 42);
    expect_json_bool(o, "save_projection", true);
    expect_json_num(o, "d_initial", 0.1);
    expect_json_num(o, "vera_dropout", 0);
    cJSON_Delete(o);
    st_close(f);

    /* RandLoRA: d = 16, D = 24, n = ceil(16/4) = 4 */
    export_one("randlora", 24, 16, &f, &o);
    ck_assert_uint_eq(st_count(f), 4);
    expect_tensor(f,
                  "base_model.model.text_model.encoder.layers.0.self_attn.q_proj.randlora_lambda",
                  2, 4, 4, 0);
    expect_tensor(f,
                  "base_model.model.text_model.encoder.layers.0.self_attn.q_proj.randlora_gamma",
                  2, 4, 16, 0);
    expect_tensor(f, "base_model.randlora_A", 3, 4, 1, 16);
    expect_tensor(f, "base_model.randlora_B", 3, 24, 4, 4);
    expect_common(o, "RANDLORA");
    expect_json_num(o, "r", 4);
    expect_json_num(o, "randlora_alpha", 80);          /* 20 r: s = 20 */
    expect_json_num(o, "projection_prng_key", 42);
    expect_json_bool(o, "save_projection", true);
    expect_json_bool(o, "sparse", false);
    expect_json_bool(o, "very_sparse", false);
    ck_assert_str_eq(st_metadata_get(f, "rl_n_rule"), "ceil");
    ck_assert_str_eq(st_metadata_get(f, "rl_scaling"), "alpha_r");
    ck_assert_str_eq(st_metadata_get(f, "rl_seed"), "42");
    cJSON_Delete(o);
    st_close(f);

    /* full: this project's name for the weight delta */
    export_one("full", 24, 16, &f, &o);
    ck_assert_uint_eq(st_count(f), 1);
    expect_tensor(f, "base_model.model.text_model.encoder.layers.0.self_attn.q_proj.weight_delta",
                  2, 24, 16, 0);
    expect_common(o, "FULL");
    cJSON_Delete(o);
    st_close(f);

    ck_assert_str_eq(adapter_io_peft_type("lora"), "LORA");
    ck_assert_str_eq(adapter_io_peft_type("vera"), "VERA");
    ck_assert_str_eq(adapter_io_peft_type("randlora"), "RANDLORA");
    ck_assert_str_eq(adapter_io_peft_type("full"), "FULL");
    aio_remove_tmpdir();
}
END_TEST

/* the paper profile's 1/r is peft's randlora_alpha 1 */
START_TEST(test_randlora_paper_alpha)
{
    struct adapter_cfg cfg;
    struct io_model md;
    struct adapter_io_files files;
    cJSON *o;
    char *text;

    aio_make_tmpdir();
    files = aio_dir_files();
    adapter_cfg_defaults(&cfg, "randlora", 4);
    ck_assert_int_eq(adapter_cfg_profile(&cfg, "paper"), RL_OK);
    io_model_init(&md, &cfg);
    ck_assert_int_eq(adapter_io_export(&files, &md.m, md.mods, N_LAYERS), RL_OK);
    text = test_slurp(aio_tmp_path(ADAPTER_IO_CONFIG_NAME), NULL);
    o = cJSON_Parse(text);
    ck_assert_ptr_nonnull(o);
    expect_json_num(o, "randlora_alpha", 1);
    cJSON_Delete(o);
    free(text);
    io_model_free(&md);
    aio_remove_tmpdir();
}
END_TEST

/* ------------------------------------------------------------------------ */
/* an adapter written in peft's layout                                       */

START_TEST(test_peft_fixture)
{
    static const char *const methods[] = { "lora", "vera", "randlora" };
    const char *method = methods[_i];
    char dir[256];
    struct adapter_io_files files;
    struct adapter_io_info info;
    struct io_model md;
    int rc;

    snprintf(dir, sizeof dir, "%s/%s", fixture_path("adapter_io"), method);
    files = (struct adapter_io_files){ .dir = dir };
    rc = adapter_io_read_config(&files, &info);
    ck_assert_msg(rc == RL_OK, "%s (regenerate with %s)", rl_error_msg(), FIXTURE_HINT);
    ck_assert_str_eq(info.cfg.method, method);
    ck_assert_uint_eq(info.cfg.r, 4);
    ck_assert_str_eq(info.base_model, "openai/clip-vit-base-patch32");
    ck_assert_uint_eq(info.n_targets, 3);
    ck_assert_str_eq(info.targets[0], FC1);

    /* the fixture's layers: q_proj 16x16, fc1 48x16, fc2 16x48 */
    rc = adapter_method_init(&md.m, &info.cfg, 48, 48, N_ROWS);
    ck_assert_msg(rc == RL_OK, "%s", rl_error_msg());
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(adapter_init(&md.a[i], &md.m, aio_fixture_dims[i][0], aio_fixture_dims[i][1], NULL,
                                      NULL), RL_OK);
        adapter_set_training(&md.a[i], false);
        md.mods[i].path = io_layer_paths[i];
        md.mods[i].adapter = &md.a[i];
    }
    rc = adapter_io_import(&files, &md.m, md.mods, 3);
    ck_assert_msg(rc == RL_OK, "import %s: %s", method, rl_error_msg());

    aio_check_expected(dir, &md, 1e-5);
    io_model_free(&md);
    adapter_io_info_free(&info);
}
END_TEST

Suite *suite_adapter_io(void)
{
    Suite *s = suite_create("adapter_io");
    TCase *tc = tcase_create("adapter_io");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_registry_covered);
    tcase_add_loop_test(tc, test_roundtrip, 0, (int)N_RT);
    tcase_add_test(tc, test_peft_key_names);
    tcase_add_test(tc, test_randlora_paper_alpha);
    tcase_add_loop_test(tc, test_peft_fixture, 0, 3);
    suite_add_tcase(s, tc);
    return s;
}
