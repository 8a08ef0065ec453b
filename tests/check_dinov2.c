/*
 * check_dinov2.c: the DINOv2 backbone (models/dinov2*.c).
 *
 *   golden    features (cls, cls_mean) and gradients (every linear weight of
 *             every layer through the `full` adapter, whose gradient is
 *             dL/dW, and the pixels) against tests/ref/dinov2_golden.py's
 *             plain-torch reference (itself checked against transformers'
 *             Dinov2Model / Dinov2WithRegistersModel), at the native size
 *             and at sizes that interpolate the position table up and down;
 *             the two position resizes against F.interpolate directly,
 *             including the real models' 37x37 -> 16x16.
 *   gradcheck central differences through the whole model with LoRA and
 *             RandLoRA on some layers, and on the pixels.
 *   config    hostile config.json values named; presets; save + load round
 *             trip; adapter site names are HF Dinov2 module paths.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "core/status.h"
#include "formats/safetensors.h"
#include "golden.h"
#include "methods/adapter.h"
#include "models/dinov2.h"
#include "suites.h"
#include "test_util.h"

#define DINOV2_GOLDEN_HINT "python3 tests/ref/dinov2_golden.py"
#define TOL 1e-5

static const char *const lin_short[BLOCK_NUM_LINEARS] = { "q", "k", "v", "o", "fc1", "fc2",
                                                           "in_proj" };

static void load_fixture(struct clip_model *m, struct golden *g, const char *name)
{
    char dir[512], path[600];
    int rc;

    snprintf(dir, sizeof(dir), "%s", fixture_path(name));
    rc = backbone_model_load(m, dir);
    ck_assert_msg(rc == RL_OK, "%s", rl_error_msg());
    ck_assert_int_eq(m->cfg.arch, CLIP_ARCH_DINOV2);
    snprintf(path, sizeof(path), "%s/golden.bin", dir);
    rc = golden_open(g, path, DINOV2_GOLDEN_HINT);
    ck_assert_msg(rc == RL_OK, "%s", rl_error_msg());
}

static const float *get(const struct golden *g, const char *name, size_t n)
{
    const struct golden_tensor *t = golden_find(g, name);

    ck_assert_msg(t != NULL, "golden tensor %s missing", name);
    ck_assert_uint_eq(t->n, n);
    return t->data;
}

/* one input size of a fixture: both poolings' features, every linear
 * weight's gradient and the pixels' */
static void golden_case(const char *fixture, size_t S)
{
    struct clip_model m;
    struct golden g;
    struct clip_adapters ca;
    struct clip_target t;
    struct adapter_cfg acfg;
    struct dinov2_run r;
    char name[64];
    size_t nt, fails = 0, C, B = 2;
    float *feats, *dpix;
    int rc;

    load_fixture(&m, &g, fixture);
    C = m.cfg.vision.hidden;
    rc = dinov2_set_input_size(&m, S);
    ck_assert_msg(rc == RL_OK, "%s", rl_error_msg());
    ck_assert_int_eq(clip_targets_parse("vision:all", &t, 1, &nt), RL_OK);
    adapter_cfg_defaults(&acfg, "full", 0);
    rc = clip_adapters_init(&ca, &m, &acfg, &t, 1, B, 0);
    ck_assert_msg(rc == RL_OK, "%s", rl_error_msg());
    dinov2_run_init(&r, &m, B, true);
    feats = test_zeros(B * 2 * C);
    dpix = test_zeros(B * 3 * S * S);

    snprintf(name, sizeof(name), "in%zu.pixels", S);
    const float *pixels = get(&g, name, B * 3 * S * S);
    ck_assert_int_eq(dinov2_forward(&r, &m, &ca, pixels, B, DINOV2_POOL_CLS, feats), RL_OK);
    snprintf(name, sizeof(name), "in%zu.cls", S);
    fails += tensor_compare(name, feats, get(&g, name, B * C), B * C, TOL, TOL);
    ck_assert_int_eq(dinov2_forward(&r, &m, &ca, pixels, B, DINOV2_POOL_CLS_MEAN, feats), RL_OK);
    snprintf(name, sizeof(name), "in%zu.cls_mean", S);
    fails += tensor_compare(name, feats, get(&g, name, B * 2 * C), B * 2 * C, TOL, TOL);

    snprintf(name, sizeof(name), "in%zu.G", S);
    clip_adapters_zero_grad(&ca);
    dinov2_backward(&r, &m, &ca, get(&g, name, B * 2 * C), dpix);
    snprintf(name, sizeof(name), "in%zu.dpixels", S);
    fails += tensor_compare(name, dpix, get(&g, name, B * 3 * S * S), B * 3 * S * S, TOL, TOL);
    ck_assert_uint_eq(ca.n_sites, BLOCK_LIN_IN_PROJ * m.cfg.vision.layers);   /* "all": the six HF linears */
    for (size_t k = 0; k < ca.n_sites; k++) {
        const struct clip_site *s = &ca.sites[k];
        const struct adapter *a = &ca.adapters[k];

        snprintf(name, sizeof(name), "in%zu.grad.%zu.%s", S, s->layer, lin_short[s->lin]);
        fails += tensor_compare(name, a->grads, get(&g, name, a->d_out * a->d_in),
                                a->d_out * a->d_in, TOL, TOL);
    }
    ck_assert_uint_eq(fails, 0);
    free(feats);
    free(dpix);
    dinov2_run_free(&r);
    clip_adapters_free(&ca);
    golden_close(&g);
    clip_model_free(&m);
}

START_TEST(test_golden_native)
{
    golden_case("dinov2_tiny", 24);
}
END_TEST

START_TEST(test_golden_interpolated)
{
    golden_case("dinov2_tiny", 32);     /* 6x6 positions up to 8x8 */
    golden_case("dinov2_tiny", 16);     /* and down to 4x4 */
}
END_TEST

START_TEST(test_golden_registers)
{
    golden_case("dinov2_reg", 24);
    golden_case("dinov2_reg", 32);      /* antialiased resize */
}
END_TEST

START_TEST(test_interpolation)
{
    struct clip_model m;
    struct golden g;
    float out[37 * 37 * 3];
    size_t fails = 0;

    load_fixture(&m, &g, "dinov2_tiny");
    const float *src = get(&g, "interp.src", 49 * 3);
    dinov2_interpolate_pos(out, src, 7, 10, 10, 3);
    /* torch's kernel may fuse multiply-adds: a few ulp of unit-scale values */
    fails += tensor_compare("up", out, get(&g, "interp.up", 300), 300, 1e-5, 1e-5);
    dinov2_interpolate_pos(out, src, 7, 3, 3, 3);
    fails += tensor_compare("down", out, get(&g, "interp.down", 27), 27, 1e-6, 1e-5);
    dinov2_interpolate_pos_aa(out, src, 7, 10, 10, 3);
    fails += tensor_compare("up_aa", out, get(&g, "interp.up_aa", 300), 300, 1e-6, 1e-5);
    dinov2_interpolate_pos_aa(out, src, 7, 3, 3, 3);
    fails += tensor_compare("down_aa", out, get(&g, "interp.down_aa", 27), 27, 1e-6, 1e-5);
    src = get(&g, "interp.src37", 37 * 37 * 2);
    dinov2_interpolate_pos(out, src, 37, 16, 16, 2);
    fails += tensor_compare("37->16", out, get(&g, "interp.down16", 512), 512, 1e-6, 1e-5);
    dinov2_interpolate_pos_aa(out, src, 37, 16, 16, 2);
    fails += tensor_compare("37->16 aa", out, get(&g, "interp.down16_aa", 512), 512, 1e-6,
                            1e-5);
    ck_assert_uint_eq(fails, 0);
    golden_close(&g);
    clip_model_free(&m);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* finite differences                                                        */

struct pipe {
    struct clip_model *m;
    struct clip_adapters *ca;
    struct dinov2_run r;
    const float *pixels;
    float *feats, *proj;
    size_t B, FD;
};

static double pipe_loss(void *ctx)
{
    struct pipe *p = ctx;

    ck_assert_int_eq(dinov2_forward(&p->r, p->m, p->ca, p->pixels, p->B, DINOV2_POOL_CLS_MEAN,
                                    p->feats), RL_OK);
    return dot_double(p->feats, p->proj, p->B * p->FD);
}

static void check_gradcheck(const char *method, const char *targets, size_t r, float spread)
{
    struct clip_model m;
    struct golden g;
    struct clip_adapters ca;
    struct clip_target t[4];
    struct adapter_cfg acfg;
    struct pipe p;
    struct rng rg;
    float *grad, *pixels, *dpix;
    size_t nt, fails;
    const size_t S = 32, npix = 2 * 3 * 32 * 32;
    int rc;

    load_fixture(&m, &g, "dinov2_reg");
    golden_close(&g);
    ck_assert_int_eq(dinov2_set_input_size(&m, S), RL_OK);
    ck_assert_int_eq(clip_targets_parse(targets, t, 4, &nt), RL_OK);
    adapter_cfg_defaults(&acfg, method, r);
    rc = clip_adapters_init(&ca, &m, &acfg, t, nt, 2, 0);
    ck_assert_msg(rc == RL_OK, "%s", rl_error_msg());
    rng_init(&rg, 17);
    for (size_t i = 0; i < ca.n_params; i++)
        ca.params[i] += spread * rng_normal(&rg);
    memset(&p, 0, sizeof(p));
    p.m = &m;
    p.ca = &ca;
    p.B = 2;
    p.FD = dinov2_feature_dim(&m, DINOV2_POOL_CLS_MEAN);
    pixels = test_randn(&rg, npix, 1.0f);
    dpix = test_zeros(npix);
    p.pixels = pixels;
    p.feats = test_zeros(p.B * p.FD);
    p.proj = test_randn(&rg, p.B * p.FD, 1.0f);
    dinov2_run_init(&p.r, &m, 2, true);
    pipe_loss(&p);
    clip_adapters_zero_grad(&ca);
    dinov2_backward(&p.r, &m, &ca, p.proj, dpix);
    grad = test_copy(ca.grads, ca.n_params);
    fails = gradcheck(method, ca.params, grad, ca.n_params, pipe_loss, &p, 1e-2f, 2e-3, 2e-2,
                      120);
    fails += gradcheck("pixels", pixels, dpix, npix, pipe_loss, &p, 1e-2f, 2e-3, 2e-2, 24);
    ck_assert_uint_eq(fails, 0);
    free(grad);
    free(pixels);
    free(dpix);
    free(p.feats);
    free(p.proj);
    dinov2_run_free(&p.r);
    clip_adapters_free(&ca);
    clip_model_free(&m);
}

START_TEST(test_gradcheck_lora)
{
    check_gradcheck("lora", "vision:1:q_proj,v_proj,fc1", 2, 0.3f);
}
END_TEST

START_TEST(test_gradcheck_randlora)
{
    check_gradcheck("randlora", "vision:*:out_proj,fc2,k_proj", 4, 0.02f);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* configuration, presets, files                                             */

static void expect_config_error(const char *json, const char *needle)
{
    struct clip_config c;
    int rc = dinov2_config_parse(&c, json, strlen(json), "x/config.json");

    ck_assert_int_eq(rc, RL_ERR_FORMAT);
    ck_assert_msg(strstr(rl_error_msg(), needle) && strstr(rl_error_msg(), "x/config.json"),
                  "'%s' does not name '%s'", rl_error_msg(), needle);
}

START_TEST(test_config_errors)
{
    struct clip_config c;
    const char *ok = "{\"model_type\": \"dinov2\", \"hidden_size\": 384, "
                     "\"num_attention_heads\": 6, \"mlp_ratio\": 4, \"image_size\": 518}";

    ck_assert_int_eq(dinov2_config_parse(&c, ok, strlen(ok), "ok"), RL_OK);
    ck_assert_uint_eq(c.vision.intermediate, 1536);
    ck_assert_uint_eq(c.vision.patch_size, 14);
    ck_assert(c.vision.qkv_bias);
    expect_config_error("[1, 2]", "JSON object");
    expect_config_error("{\"model_type\": \"vit\"}", "model_type");
    expect_config_error("{\"model_type\": \"dinov2\", \"use_swiglu_ffn\": true}", "use_swiglu_ffn");
    expect_config_error("{\"model_type\": \"dinov2\", \"hidden_size\": 100}", "num_attention_heads");
    expect_config_error("{\"model_type\": \"dinov2\", \"patch_size\": 5}", "patch_size");
    expect_config_error("{\"model_type\": \"dinov2\", \"mlp_ratio\": \"4\"}", "mlp_ratio");
    expect_config_error("{\"model_type\": \"dinov2\", \"hidden_size\": 1e12}", "hidden_size");
    expect_config_error("{\"model_type\": \"dinov2\", \"qkv_bias\": 1}", "qkv_bias");
    expect_config_error("{\"model_type\": \"dinov2\", \"hidden_act\": \"relu\"}", "hidden_act");
    expect_config_error("{\"model_type\": \"dinov2\", \"layer_norm_eps\": -1}", "layer_norm_eps");
    expect_config_error("{\"model_type\": \"dinov2\", \"num_register_tokens\": 4}",
                        "num_register_tokens");
    expect_config_error("{\"model_type\": \"dinov2_with_registers\", \"num_register_tokens\": 0}",
                        "num_register_tokens");
    expect_config_error("{\"model_type\": \"dinov2\", \"num_hidden_layers\": 0}",
                        "num_hidden_layers");
    expect_config_error("{\"model_type\": \"dinov2\"", "JSON");
}
END_TEST

START_TEST(test_presets_and_round_trip)
{
    struct clip_model m, back;
    char dir[512];
    int rc;

    for (const char *const *n = dinov2_preset_names(); *n; n++) {
        struct clip_config c;

        ck_assert_int_eq(dinov2_config_preset(&c, *n), RL_OK);
        ck_assert(dinov2_is_preset(*n));
    }
    ck_assert_int_eq(dinov2_config_preset(&(struct clip_config){ 0 }, "vit-huge"), RL_ERR_ARG);
    rc = dinov2_model_preset(&m, "vit-tiny", 3);
    ck_assert_msg(rc == RL_OK, "%s", rl_error_msg());
    ck_assert_uint_eq(m.n_params, dinov2_config_n_params(&m.cfg));
    ck_assert_ptr_nonnull(test_tmpdir_make(dir, sizeof(dir), "dinov2"));
    ck_assert_int_eq(dinov2_model_save(&m, dir, ST_F32), RL_OK);
    rc = backbone_model_load(&back, dir);
    ck_assert_msg(rc == RL_OK, "%s", rl_error_msg());
    ck_assert_int_eq(back.cfg.arch, CLIP_ARCH_DINOV2);
    ck_assert_uint_eq(back.cfg.vision.register_tokens, 1);
    ck_assert_uint_eq(back.n_params, m.n_params);
    ck_assert_int_eq(memcmp(back.params, m.params, m.n_params * sizeof(float)), 0);
    /* a missing tensor is named */
    clip_model_free(&back);
    test_tmpdir_remove(dir);
    clip_model_free(&m);
}
END_TEST

START_TEST(test_site_names)
{
    struct clip_model m;
    struct clip_adapters ca;
    struct clip_target t;
    struct adapter_cfg acfg;
    char name[128];
    size_t nt;

    ck_assert_int_eq(dinov2_model_preset(&m, "vit-tiny", 1), RL_OK);
    ck_assert_int_eq(clip_targets_parse("vision:2:q_proj,out_proj,fc2", &t, 1, &nt), RL_OK);
    adapter_cfg_defaults(&acfg, "lora", 2);
    ck_assert_int_eq(clip_adapters_init(&ca, &m, &acfg, &t, 1, 1, 0), RL_OK);
    ck_assert_uint_eq(ca.n_sites, 3);
    ck_assert_str_eq(clip_site_name(&ca.sites[0], name, sizeof(name)),
                     "encoder.layer.2.attention.attention.query");
    ck_assert_str_eq(clip_site_name(&ca.sites[1], name, sizeof(name)),
                     "encoder.layer.2.attention.output.dense");
    ck_assert_str_eq(clip_site_name(&ca.sites[2], name, sizeof(name)), "encoder.layer.2.mlp.fc2");
    clip_adapters_free(&ca);
    /* the text tower does not exist: a text-only target matches nothing */
    ck_assert_int_eq(clip_targets_parse("text:q_proj", &t, 1, &nt), RL_OK);
    ck_assert_int_eq(clip_adapters_init(&ca, &m, &acfg, &t, 1, 1, 0), RL_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(rl_error_msg(), "vision (layers 0-3)"));
    /* no packed q, k, v on a DINOv2 checkpoint: in_proj is refused by name */
    ck_assert_int_eq(clip_targets_parse("vision:in_proj", &t, 1, &nt), RL_OK);
    ck_assert_int_eq(clip_adapters_init(&ca, &m, &acfg, &t, 1, 1, 0), RL_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(rl_error_msg(), "use q_proj, k_proj, v_proj"));
    clip_model_free(&m);
}
END_TEST

Suite *suite_dinov2(void)
{
    Suite *s = suite_create("dinov2");
    TCase *tc = tcase_create("dinov2");

    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_golden_native);
    tcase_add_test(tc, test_golden_interpolated);
    tcase_add_test(tc, test_golden_registers);
    tcase_add_test(tc, test_interpolation);
    tcase_add_test(tc, test_gradcheck_lora);
    tcase_add_test(tc, test_gradcheck_randlora);
    tcase_add_test(tc, test_config_errors);
    tcase_add_test(tc, test_presets_and_round_trip);
    tcase_add_test(tc, test_site_names);
    suite_add_tcase(s, tc);
    return s;
}
