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
 *   hostile         wrong peft_type, missing / mis-shaped / extra / non-finite
 *                   tensors, malformed JSON (every prefix), bad field types,
 *                   mismatched rank or scaling: RL_ERR_FORMAT naming the file
 *                   and the key, and nothing changed
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/alloc.h"
#include "core/rng.h"
#include "core/status.h"
#include "methods/adapter.h"
#include "methods/adapter_io.h"
#include "formats/safetensors.h"
#include "suites.h"
#include "test_cmd.h"
#include "test_util.h"

#define N_ROWS 4
#define Q_PROJ "text_model.encoder.layers.0.self_attn.q_proj"
#define FC1    "text_model.encoder.layers.0.mlp.fc1"
#define FC2    "text_model.encoder.layers.0.mlp.fc2"
#define FIXTURE_HINT "/usr/bin/python3 tests/ref/make_adapter_io_fixture.py"

/* ------------------------------------------------------------------------ */
/* temporary directories                                                     */

static char tmpdir[64];

static void make_tmpdir(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/rl_aio_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static const char *tmp_path(const char *name)
{
    static char buf[2][256];
    static int k;

    k ^= 1;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
    return buf[k];
}

static void remove_tmpdir(void)
{
    static const char *const names[] = { ADAPTER_IO_WEIGHTS_NAME, ADAPTER_IO_CONFIG_NAME,
                                         "w.safetensors", "c.json" };

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        unlink(tmp_path(names[i]));
    ck_assert_int_eq(rmdir(tmpdir), 0);
}

static void write_file(const char *path, const char *text, size_t len)
{
    FILE *f = fopen(path, "wb");

    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(text, 1, len, f), len);
    ck_assert_int_eq(fclose(f), 0);
}

/* ------------------------------------------------------------------------ */
/* a small model: three adapted layers of one method                         */

#define N_LAYERS 3
static const char *const layer_paths[N_LAYERS] = { Q_PROJ, FC1, FC2 };
/* square, d_in < d_out (RandLoRA case 1), d_out < d_in (case 2) */
static const size_t layer_dims[N_LAYERS][2] = { { 16, 16 }, { 40, 16 }, { 16, 40 } };

struct model {
    struct adapter_method m;
    struct adapter a[N_LAYERS];
    struct adapter_io_module mods[N_LAYERS];
};

static void model_init(struct model *md, const struct adapter_cfg *cfg)
{
    int rc = adapter_method_init(&md->m, cfg, 40, 40, N_ROWS);

    ck_assert_msg(rc == RL_OK, "method_init %s: %s", cfg->method, rl_error_msg());
    for (int i = 0; i < N_LAYERS; i++) {
        rc = adapter_init(&md->a[i], &md->m, layer_dims[i][0], layer_dims[i][1], NULL, NULL);
        ck_assert_msg(rc == RL_OK, "init: %s", rl_error_msg());
        adapter_set_training(&md->a[i], false);
        md->mods[i].path = layer_paths[i];
        md->mods[i].adapter = &md->a[i];
    }
}

static void model_free(struct model *md)
{
    for (int i = 0; i < N_LAYERS; i++)
        adapter_free(&md->a[i]);
    adapter_method_free(&md->m);
}

static void model_randomize(struct model *md, uint64_t seed)
{
    struct rng g;

    rng_init(&g, seed);
    for (int i = 0; i < N_LAYERS; i++)
        rng_fill_normal(&g, md->a[i].params, md->a[i].n_params, 0.0f, 0.3f);
}

/* y (N_ROWS, d_out) = adapter branch of layer i on x */
static float *model_forward(struct model *md, int i, const float *x)
{
    float *y = test_zeros(N_ROWS * md->a[i].d_out);

    adapter_forward(&md->a[i], x, y, N_ROWS);
    return y;
}

static double max_abs_f(const float *x, size_t n)
{
    double m = 0.0;

    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs((double)x[i]));
    return m;
}

static struct adapter_io_files dir_files(void)
{
    return (struct adapter_io_files){ .dir = tmpdir };
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
    struct model src, dst;
    struct adapter_tensor ts[8], td[8];
    struct adapter_io_files files;
    struct adapter_io_info info;
    struct rng g;
    struct stat sb;
    size_t ns, nd;
    int rc;

    make_tmpdir();
    files = dir_files();
    rt_cfg(&cfg, c, c->seed);
    /* the destination has other random shared tensors (another seed) and
     * other parameters: everything must come from the files */
    rt_cfg(&cfg2, c, c->seed + 1000);
    model_init(&src, &cfg);
    model_init(&dst, &cfg2);
    model_randomize(&src, 11);
    model_randomize(&dst, 12);

    rc = adapter_io_export(&files, &src.m, src.mods, N_LAYERS);
    ck_assert_msg(rc == RL_OK, "export %s: %s", c->method, rl_error_msg());
    if (!strcmp(c->method, "none")) {
        /* exports nothing, imports nothing */
        ck_assert_int_ne(stat(tmp_path(ADAPTER_IO_WEIGHTS_NAME), &sb), 0);
        ck_assert_int_ne(stat(tmp_path(ADAPTER_IO_CONFIG_NAME), &sb), 0);
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
            ck_assert_double_gt(max_abs_f(y1, N_ROWS * src.a[i].d_out), 0.0);
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
    model_free(&src);
    model_free(&dst);
    remove_tmpdir();
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
    struct adapter_io_files files = { .dir = tmpdir, .base_model = "openai/clip-vit-base-patch32" };
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
    ck_assert_int_eq(st_open(f, tmp_path(ADAPTER_IO_WEIGHTS_NAME)), RL_OK);
    ck_assert_str_eq(st_metadata_get(*f, "format"), "pt");
    text = test_slurp(tmp_path(ADAPTER_IO_CONFIG_NAME), NULL);
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

    make_tmpdir();

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
    remove_tmpdir();
}
END_TEST

/* the paper profile's 1/r is peft's randlora_alpha 1 */
START_TEST(test_randlora_paper_alpha)
{
    struct adapter_cfg cfg;
    struct model md;
    struct adapter_io_files files;
    cJSON *o;
    char *text;

    make_tmpdir();
    files = dir_files();
    adapter_cfg_defaults(&cfg, "randlora", 4);
    ck_assert_int_eq(adapter_cfg_profile(&cfg, "paper"), RL_OK);
    model_init(&md, &cfg);
    ck_assert_int_eq(adapter_io_export(&files, &md.m, md.mods, N_LAYERS), RL_OK);
    text = test_slurp(tmp_path(ADAPTER_IO_CONFIG_NAME), NULL);
    o = cJSON_Parse(text);
    ck_assert_ptr_nonnull(o);
    expect_json_num(o, "randlora_alpha", 1);
    cJSON_Delete(o);
    free(text);
    model_free(&md);
    remove_tmpdir();
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
    struct model md;
    struct st_file *ex;
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
    static const size_t dims[3][2] = { { 16, 16 }, { 48, 16 }, { 16, 48 } };
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(adapter_init(&md.a[i], &md.m, dims[i][0], dims[i][1], NULL, NULL),
                         RL_OK);
        adapter_set_training(&md.a[i], false);
        md.mods[i].path = layer_paths[i];
        md.mods[i].adapter = &md.a[i];
    }
    rc = adapter_io_import(&files, &md.m, md.mods, 3);
    ck_assert_msg(rc == RL_OK, "import %s: %s", method, rl_error_msg());

    char exp_path[300];
    snprintf(exp_path, sizeof exp_path, "%s/expected.safetensors", dir);
    ck_assert_int_eq(st_open(&ex, exp_path), RL_OK);
    for (int i = 0; i < 3; i++) {
        size_t di = dims[i][1], dout = dims[i][0];
        float *x = xmalloc_array(N_ROWS * di, sizeof(float));
        float *want = xmalloc_array(N_ROWS * dout, sizeof(float)), *y;
        char kx[128], ky[128];

        /* the fixture has 3 rows; N_ROWS >= 3 */
        snprintf(kx, sizeof kx, "x.%s", layer_paths[i]);
        snprintf(ky, sizeof ky, "y.%s", layer_paths[i]);
        ck_assert_int_eq(st_load_f32(ex, kx, 2, (const int64_t[]){ 3, (int64_t)di }, x), RL_OK);
        ck_assert_int_eq(st_load_f32(ex, ky, 2, (const int64_t[]){ 3, (int64_t)dout }, want),
                         RL_OK);
        memset(x + 3 * di, 0, (N_ROWS - 3) * di * sizeof(float));
        y = model_forward(&md, i, x);
        ck_assert_uint_eq(tensor_compare(ky, y, want, 3 * dout, 1e-5, 1e-5), 0);
        ck_assert_double_gt(max_abs_f(want, 3 * dout), 1e-3);
        free(x);
        free(want);
        free(y);
    }
    st_close(ex);
    model_free(&md);
    adapter_io_info_free(&info);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* hostile inputs                                                            */

static struct model hm;             /* a LoRA model exported to tmpdir */
static float *snapshot;
static size_t snapshot_n;
static char *good_config;           /* the exported adapter_config.json */

static void hostile_setup(void)
{
    struct adapter_cfg cfg;
    struct adapter_io_files files;

    make_tmpdir();
    files = dir_files();
    adapter_cfg_defaults(&cfg, "lora", 3);
    model_init(&hm, &cfg);
    model_randomize(&hm, 5);
    ck_assert_int_eq(adapter_io_export(&files, &hm.m, hm.mods, N_LAYERS), RL_OK);
    good_config = test_slurp(tmp_path(ADAPTER_IO_CONFIG_NAME), NULL);
    model_randomize(&hm, 6);          /* the in-memory state differs from the files */
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
    model_free(&hm);
    remove_tmpdir();
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
    struct adapter_io_files files = dir_files();
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
    write_file(tmp_path(ADAPTER_IO_CONFIG_NAME), text, strlen(text));
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

    ck_assert_int_eq(st_open(&f, tmp_path(ADAPTER_IO_WEIGHTS_NAME)), RL_OK);
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
    write_file(tmp_path(ADAPTER_IO_WEIGHTS_NAME), img, img_size);
    free(img);
}

#define KEY_A0 "base_model.model." Q_PROJ ".lora_A.weight"
#define KEY_B2 "base_model.model." FC2 ".lora_B.weight"

START_TEST(test_hostile_config)
{
    const char *good = good_config;
    const char *cpath = tmp_path(ADAPTER_IO_CONFIG_NAME);

    /* sanity: the untouched files load */
    {
        struct adapter_io_files files = dir_files();

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
    put_config_with("modules_to_save", "[\"classifier\"]");
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
    write_file(cpath, "{\"peft_type\":\0\"LORA\"}", 21);
    expect_fail(RL_ERR_FORMAT, cpath, "JSON");
    /* every proper prefix of the real config is invalid */
    for (size_t len = 0; len + 1 < strlen(good); len++) {
        write_file(cpath, good, len);
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
    const char *wpath = tmp_path(ADAPTER_IO_WEIGHTS_NAME);
    char *good = test_slurp(wpath, NULL);     /* binary, but read whole */
    struct stat sb;
    float bad[3 * 17];

    ck_assert_int_eq(stat(wpath, &sb), 0);

    /* a missing tensor */
    put_weights(KEY_B2, NULL, NULL, 0, NULL);
    expect_fail(RL_ERR_FORMAT, wpath, KEY_B2);

    /* a mis-shaped tensor: both shapes in the message */
    write_file(wpath, good, (size_t)sb.st_size);
    for (size_t i = 0; i < 3 * 17; i++)
        bad[i] = 0.5f;
    put_weights(KEY_A0, KEY_A0, bad, 2, (const int64_t[]){ 3, 17 });
    expect_fail(RL_ERR_FORMAT, wpath, KEY_A0);
    expect_fail(RL_ERR_FORMAT, "[3, 17]", "[3, 16]");
    write_file(wpath, good, (size_t)sb.st_size);
    put_weights(KEY_A0, KEY_A0, bad, 1, (const int64_t[]){ 48 });
    expect_fail(RL_ERR_FORMAT, wpath, KEY_A0);

    /* a non-finite value */
    write_file(wpath, good, (size_t)sb.st_size);
    bad[7] = NAN;
    put_weights(KEY_A0, KEY_A0, bad, 2, (const int64_t[]){ 3, 16 });
    expect_fail(RL_ERR_FORMAT, wpath, KEY_A0);

    /* a key that belongs to no module given (and a shared key LoRA lacks) */
    write_file(wpath, good, (size_t)sb.st_size);
    put_weights(NULL, "base_model.model.text_model.encoder.layers.1.self_attn.q_proj.lora_A.weight",
                bad, 2, (const int64_t[]){ 3, 16 });
    expect_fail(RL_ERR_FORMAT, wpath, "layers.1.self_attn.q_proj.lora_A.weight");
    write_file(wpath, good, (size_t)sb.st_size);
    put_weights(NULL, "base_model.vera_A", bad, 2, (const int64_t[]){ 3, 16 });
    expect_fail(RL_ERR_FORMAT, wpath, "base_model.vera_A");

    /* truncated weights: the reader's own error, nothing changed */
    write_file(wpath, good, (size_t)sb.st_size - 5);
    expect_fail(RL_ERR_FORMAT, wpath, NULL);
    unlink(wpath);
    expect_fail(RL_ERR_IO, wpath, NULL);

    write_file(wpath, good, (size_t)sb.st_size);
    free(good);
}
END_TEST

/* a RandLoRA adapter checked against a method with other rules */
START_TEST(test_hostile_mismatch)
{
    struct adapter_cfg cfg, other;
    struct model src, dst;
    struct adapter_io_files files;
    int rc;

    make_tmpdir();
    files = dir_files();
    adapter_cfg_defaults(&cfg, "randlora", 4);
    model_init(&src, &cfg);
    ck_assert_int_eq(adapter_io_export(&files, &src.m, src.mods, N_LAYERS), RL_OK);

    other = cfg;                                   /* rank */
    other.r = 5;
    model_init(&dst, &other);
    rc = adapter_io_import(&files, &dst.m, dst.mods, N_LAYERS);
    ck_assert_int_eq(rc, RL_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(rl_error_msg(), "'r'"));
    model_free(&dst);

    other = cfg;                                   /* n rule (paper profile) */
    ck_assert_int_eq(adapter_cfg_profile(&other, "paper"), RL_OK);
    model_init(&dst, &other);
    rc = adapter_io_import(&files, &dst.m, dst.mods, N_LAYERS);
    ck_assert_int_eq(rc, RL_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(rl_error_msg(), "bases rule"));
    model_free(&dst);

    other = cfg;                                   /* scaling */
    other.alpha = 3.0f;
    model_init(&dst, &other);
    rc = adapter_io_import(&files, &dst.m, dst.mods, N_LAYERS);
    ck_assert_int_eq(rc, RL_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(rl_error_msg(), "randlora_alpha"));
    model_free(&dst);

    other = cfg;                                   /* basis kind */
    other.basis = ADAPTER_BASIS_SPARSE;
    model_init(&dst, &other);
    rc = adapter_io_import(&files, &dst.m, dst.mods, N_LAYERS);
    ck_assert_int_eq(rc, RL_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(rl_error_msg(), "sparse"));
    model_free(&dst);

    /* another method altogether */
    adapter_cfg_defaults(&other, "vera", 4);
    model_init(&dst, &other);
    rc = adapter_io_import(&files, &dst.m, dst.mods, N_LAYERS);
    ck_assert_int_eq(rc, RL_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(rl_error_msg(), "peft_type"));
    ck_assert_ptr_nonnull(strstr(rl_error_msg(), ADAPTER_IO_CONFIG_NAME));
    model_free(&dst);

    /* a method sized differently: the shared tensor's shape is named */
    {
        struct adapter_method m2;
        struct adapter a2[N_LAYERS];
        struct adapter_io_module mods2[N_LAYERS];

        ck_assert_int_eq(adapter_method_init(&m2, &cfg, 48, 40, N_ROWS), RL_OK);
        for (int i = 0; i < N_LAYERS; i++) {
            ck_assert_int_eq(adapter_init(&a2[i], &m2, layer_dims[i][0], layer_dims[i][1],
                                          NULL, NULL), RL_OK);
            mods2[i].path = layer_paths[i];
            mods2[i].adapter = &a2[i];
        }
        rc = adapter_io_import(&files, &m2, mods2, N_LAYERS);
        ck_assert_int_eq(rc, RL_ERR_FORMAT);
        ck_assert_ptr_nonnull(strstr(rl_error_msg(), "base_model.randlora_B"));
        for (int i = 0; i < N_LAYERS; i++)
            adapter_free(&a2[i]);
        adapter_method_free(&m2);
    }
    model_free(&src);
    remove_tmpdir();
}
END_TEST

/* bad arguments: RL_ERR_ARG, nothing written */
START_TEST(test_bad_arguments)
{
    struct adapter_cfg cfg;
    struct model md, other;
    struct adapter_io_module mods[2];
    struct adapter_io_files files, nofiles = { 0 };
    struct stat sb;

    make_tmpdir();
    files = dir_files();
    adapter_cfg_defaults(&cfg, "lora", 2);
    model_init(&md, &cfg);
    model_init(&other, &cfg);

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
    ck_assert_int_ne(stat(tmp_path(ADAPTER_IO_WEIGHTS_NAME), &sb), 0);

    /* explicit file names, no directory */
    {
        char w[256], c[256];
        struct adapter_io_files named;

        snprintf(w, sizeof w, "%s", tmp_path("w.safetensors"));
        snprintf(c, sizeof c, "%s", tmp_path("c.json"));
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
    model_free(&md);
    model_free(&other);
    remove_tmpdir();
}
END_TEST

Suite *suite_adapter_io(void)
{
    Suite *s = suite_create("adapter_io");
    TCase *tc = tcase_create("adapter_io");
    TCase *th = tcase_create("hostile");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_registry_covered);
    tcase_add_loop_test(tc, test_roundtrip, 0, (int)N_RT);
    tcase_add_test(tc, test_peft_key_names);
    tcase_add_test(tc, test_randlora_paper_alpha);
    tcase_add_loop_test(tc, test_peft_fixture, 0, 3);
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
