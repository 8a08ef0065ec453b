/*
 * check_clip_model.c: the CLIP model (models/clip*.c, models/presets.c)
 * beyond the golden file (check_clip.c):
 *
 *   gradcheck central differences through a whole tiny model for LoRA and
 *            RandLoRA parameters in both towers (some layers not adapted,
 *            so the backward skips them), and on entries of the weights.
 *   text cut the text tower on the first max(EOT)+1 positions gives the
 *            uncut run's embeddings (to sgemm rounding: OpenBLAS rounds a row
 *            differently for different row counts, so not bit for bit); ids
 *            checked; the EOT rules; the vision tower's two runs agree.
 *   loading  missing / mis-shaped tensors named, legacy keys ignored, F16
 *            and BF16 weights, save + load round trip, config.json errors,
 *            presets.
 *   targets  parsing and selection errors that list what exists; zero-shot
 *            class features.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clip_harness.h"
#include "core/rng.h"
#include "core/status.h"
#include "methods/adapter.h"
#include "models/clip.h"
#include "formats/safetensors.h"
#include "suites.h"
#include "test_util.h"
/* ------------------------------------------------------------------------ */
/* (b) finite differences through a whole tiny model                         */

static void check_gradcheck(const char *method, const char *targets, size_t r)
{
    struct clip_model m;
    struct clip_adapters ca;
    struct clip_target t[8];
    struct adapter_cfg acfg;
    struct pipe p;
    struct rng rg;
    float *pixels, *grad;
    int32_t ids[3 * 7];
    size_t nt, fails;
    int rc;

    tiny_model(&m, 11);
    rc = clip_targets_parse(targets, t, 8, &nt);
    ck_assert_msg(rc == RL_OK, "%s", rl_error_msg());
    adapter_cfg_defaults(&acfg, method, r);
    rc = clip_adapters_init(&ca, &m, &acfg, t, nt, 3, 3);
    ck_assert_msg(rc == RL_OK, "%s", rl_error_msg());
    /* away from the zero init, so every parameter has a gradient */
    rng_init(&rg, 5);
    for (size_t i = 0; i < ca.n_params; i++)
        ca.params[i] += 0.3f * rng_normal(&rg);
    pixels = test_randn(&rg, 3 * 3 * 8 * 8, 1.0f);
    tiny_ids(ids);
    pipe_init(&p, &m, &ca, 3, 7, pixels, ids);
    clip_adapters_zero_grad(&ca);
    pipe_backward(&p, NULL, NULL);
    grad = test_copy(ca.grads, ca.n_params);
    fails = gradcheck(method, ca.params, grad, ca.n_params, pipe_loss, &p, 1e-2f, 2e-3, 2e-2,
                      160);
    ck_assert_uint_eq(fails, 0);
    free(grad);
    pipe_free(&p);
    free(pixels);
    clip_adapters_free(&ca);
    clip_model_free(&m);
}

START_TEST(test_gradcheck_lora)
{
    check_gradcheck("lora", "vision:1:q_proj,fc1;text:*:v_proj,fc2", 2);
}
END_TEST

START_TEST(test_gradcheck_randlora)
{
    check_gradcheck("randlora", "vision:*:out_proj,fc2;text:1:q_proj,k_proj", 4);
}
END_TEST

/* every weight: finite differences on a few entries of several tensors */
START_TEST(test_gradcheck_weights)
{
    static const char *const names[] = {
        "vision_model.embeddings.patch_embedding.weight",
        "vision_model.embeddings.class_embedding",
        "vision_model.encoder.layers.0.layer_norm1.weight",
        "vision_model.encoder.layers.1.mlp.fc1.bias",
        "text_model.embeddings.token_embedding.weight",
        "text_model.encoder.layers.0.self_attn.k_proj.weight",
        "text_model.final_layer_norm.bias",
        "text_projection.weight",
        "logit_scale",
    };
    struct clip_model m;
    struct clip_grads cg;
    struct pipe p;
    struct rng rg;
    float *pixels, *dpix;
    int32_t ids[3 * 7];
    size_t fails = 0;

    tiny_model(&m, 3);
    clip_grads_init(&cg, &m);
    rng_init(&rg, 9);
    pixels = test_randn(&rg, 3 * 3 * 8 * 8, 1.0f);
    dpix = test_zeros(3 * 3 * 8 * 8);
    tiny_ids(ids);
    pipe_init(&p, &m, NULL, 3, 7, pixels, ids);
    pipe_backward(&p, &cg, dpix);
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        const struct clip_tensor *t = clip_model_find(&m, names[i]);

        ck_assert_ptr_nonnull(t);
        fails += gradcheck(names[i], m.params + t->offset, cg.buf + t->offset, t->numel,
                           pipe_loss, &p, 1e-2f, 2e-3, 2e-2, 12);
    }
    fails += gradcheck("pixels", pixels, dpix, 3 * 3 * 8 * 8, pipe_loss, &p, 1e-2f, 2e-3, 2e-2,
                       24);
    ck_assert_uint_eq(fails, 0);
    pipe_free(&p);
    free(pixels);
    free(dpix);
    clip_grads_free(&cg);
    clip_model_free(&m);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* (c) the text cut                                                          */

START_TEST(test_text_cut_identical)
{
    struct clip_model m;
    struct clip_adapters ca;
    struct clip_target t[2];
    struct adapter_cfg acfg;
    struct clip_text_run cut, full, infer;
    struct rng rg;
    const size_t n = 5, ctx = 32;
    const size_t eot[5] = { 3, 9, 1, 12, 6 };
    int32_t ids[5 * 32];
    float *e_cut, *e_full, *e_inf, *g_cut;
    size_t D, nt;
    int rc;

    rc = clip_model_preset(&m, "clip-tiny", 7);
    ck_assert_msg(rc == RL_OK, "%s", rl_error_msg());
    D = m.cfg.projection_dim;
    rc = clip_targets_parse("text:*:q_proj,v_proj,fc1", t, 2, &nt);
    ck_assert_msg(rc == RL_OK, "%s", rl_error_msg());
    adapter_cfg_defaults(&acfg, "lora", 4);
    rc = clip_adapters_init(&ca, &m, &acfg, t, nt, 1, n);
    ck_assert_msg(rc == RL_OK, "%s", rl_error_msg());
    rng_init(&rg, 1);
    for (size_t i = 0; i < ca.n_params; i++)
        ca.params[i] += 0.05f * rng_normal(&rg);
    for (size_t b = 0; b < n; b++)
        for (size_t i = 0; i < ctx; i++)
            ids[b * ctx + i] = i == 0 ? 256 : i < eot[b] ? (int32_t)rng_below(&rg, 256)
                             : i == eot[b] ? 257 : (b % 2 ? 257 : 0);
    e_cut = test_zeros(n * D);
    e_full = test_zeros(n * D);
    e_inf = test_zeros(n * D);
    clip_text_run_init(&cut, &m, n, 0, true);
    clip_text_run_init(&full, &m, n, 0, true);
    clip_text_run_init(&infer, &m, n, 0, false);
    full.cut = false;
    ck_assert_int_eq(clip_text_forward(&cut, &m, &ca, ids, n, ctx, e_cut), RL_OK);
    ck_assert_int_eq(clip_text_forward(&full, &m, &ca, ids, n, ctx, e_full), RL_OK);
    ck_assert_int_eq(clip_text_forward(&infer, &m, &ca, ids, n, ctx, e_inf), RL_OK);
    ck_assert_uint_eq(cut.T, 13);
    ck_assert_uint_eq(full.T, ctx);
    /* The maths are identical, but not bit for bit: OpenBLAS's sgemm
     * rounds a row differently depending on the matrix's row count M (its
     * tail kernels), so (n*13, C) and (n*32, C) products differ in the last
     * bits (a few 1e-7 relative here). A wrong cut or pooling position would
     * differ by O(0.1). */
    if (getenv("CLIP_VERBOSE"))
        fprintf(stderr, "  text cut: max |cut - uncut| %.3g\n",
                test_max_abs_diff(e_cut, e_full, n * D));
    ck_assert_uint_eq(tensor_compare("text_embeds, cut vs uncut", e_cut, e_full, n * D,
                                     1e-5, 1e-5), 0);
    ck_assert_msg(memcmp(e_cut, e_inf, n * D * sizeof(float)) == 0,
                  "training and inference runs differ");
    /* a run sized for the prompts at hand: the same products, bit for bit */
    {
        struct clip_text_run small;

        clip_text_run_init(&small, &m, n, 13, false);
        ck_assert_int_eq(clip_text_forward(&small, &m, &ca, ids, n, ctx, e_inf), RL_OK);
        ck_assert_msg(memcmp(e_cut, e_inf, n * D * sizeof(float)) == 0,
                      "a run sized for 13 tokens differs");
        clip_text_run_free(&small);
        clip_text_run_init(&small, &m, n, 12, false);
        ck_assert_int_eq(clip_text_forward(&small, &m, &ca, ids, n, ctx, e_inf), RL_ERR_ARG);
        ck_assert_ptr_nonnull(strstr(rl_error_msg(), "holds 12"));
        clip_text_run_free(&small);
    }

    /* the adapter gradients agree too (the extra rows add zeros) */
    clip_adapters_zero_grad(&ca);
    ck_assert_int_eq(clip_text_forward(&cut, &m, &ca, ids, n, ctx, e_cut), RL_OK);
    clip_text_backward(&cut, &m, &ca, NULL, e_cut);          /* d = embeds: any vector */
    g_cut = test_copy(ca.grads, ca.n_params);
    clip_adapters_zero_grad(&ca);
    ck_assert_int_eq(clip_text_forward(&full, &m, &ca, ids, n, ctx, e_full), RL_OK);
    clip_text_backward(&full, &m, &ca, NULL, e_full);
    {
        /* summed over many rows, so compared against the gradient's scale */
        double gmax = 0.0;

        for (size_t i = 0; i < ca.n_params; i++)
            gmax = fmax(gmax, fabs((double)ca.grads[i]));
        if (getenv("CLIP_VERBOSE"))
            fprintf(stderr, "  text cut: adapter grads max |cut - uncut| %.3g, max |grad| %.3g\n",
                    test_max_abs_diff(g_cut, ca.grads, ca.n_params), gmax);
        ck_assert_uint_eq(tensor_compare("adapter grads, cut vs uncut", g_cut, ca.grads,
                                         ca.n_params, 1e-5 * gmax, 1e-4), 0);
    }

    free(g_cut);
    free(e_cut);
    free(e_full);
    free(e_inf);
    clip_text_run_free(&cut);
    clip_text_run_free(&full);
    clip_text_run_free(&infer);
    clip_adapters_free(&ca);
    clip_model_free(&m);
}
END_TEST

START_TEST(test_text_ids_checked)
{
    struct clip_model m;
    struct clip_text_run r;
    int32_t ids[3 * 7];
    float e[3 * 8];

    tiny_model(&m, 1);
    clip_text_run_init(&r, &m, 3, 0, false);
    tiny_ids(ids);
    ids[5] = 20;                                      /* vocab is 20 */
    ck_assert_int_eq(clip_text_forward(&r, &m, NULL, ids, 3, 7, e), RL_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(rl_error_msg(), "id 20"));
    tiny_ids(ids);
    ids[7 + 6] = 3;                                   /* row 1 loses its EOT */
    ck_assert_int_eq(clip_text_forward(&r, &m, NULL, ids, 3, 7, e), RL_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(rl_error_msg(), "row 1"));
    tiny_ids(ids);
    ck_assert_int_eq(clip_text_forward(&r, &m, NULL, ids, 4, 7, e), RL_ERR_ARG);
    ck_assert_int_eq(clip_text_forward(&r, &m, NULL, ids, 1, 8, e), RL_ERR_ARG);
    ck_assert_int_eq(clip_text_forward(&r, &m, NULL, ids, 3, 7, e), RL_OK);
    clip_text_run_free(&r);
    clip_model_free(&m);
}
END_TEST

/* old hub configs say eos_token_id 2: HF then pools at the largest id */
START_TEST(test_eot_rules)
{
    struct clip_text_config tc = { .vocab_size = 49408, .eos_token_id = 49407 };
    const int32_t a[6] = { 49406, 320, 49407, 49407, 49407, 49407 };
    const int32_t b[6] = { 49406, 320, 1125, 49407, 0, 0 };
    const int32_t c[4] = { 5, 6, 7, 8 };

    ck_assert_uint_eq(clip_text_eot(&tc, a, 6), 2);
    ck_assert_uint_eq(clip_text_eot(&tc, b, 6), 3);
    ck_assert_uint_eq(clip_text_eot(&tc, c, 4), SIZE_MAX);
    tc.eos_token_id = 2;
    ck_assert_uint_eq(clip_text_eot(&tc, a, 6), 2);
    ck_assert_uint_eq(clip_text_eot(&tc, b, 6), 3);
    ck_assert_uint_eq(clip_text_eot(&tc, c, 4), 3);
}
END_TEST

/* the vision tower: inference run == training run, bit for bit; and the
 * backward with adapters only above layer 0 equals a full backward */
START_TEST(test_vision_runs_agree)
{
    struct clip_model m;
    struct clip_vision_run tr, ir;
    struct rng rg;
    float *pixels, e1[4 * 8], e2[4 * 8];

    tiny_model(&m, 2);
    rng_init(&rg, 4);
    pixels = test_randn(&rg, 4 * 3 * 8 * 8, 1.0f);
    clip_vision_run_init(&tr, &m, 4, true);
    clip_vision_run_init(&ir, &m, 6, false);
    ck_assert_int_eq(clip_vision_forward(&tr, &m, NULL, pixels, 4, e1), RL_OK);
    ck_assert_int_eq(clip_vision_forward(&ir, &m, NULL, pixels, 4, e2), RL_OK);
    ck_assert_int_eq(memcmp(e1, e2, sizeof(e1)), 0);
    ck_assert_int_eq(clip_vision_forward(&tr, &m, NULL, pixels, 5, e1), RL_ERR_ARG);
    clip_vision_run_free(&tr);
    clip_vision_run_free(&ir);
    free(pixels);
    clip_model_free(&m);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* (d) loading and saving                                                    */

START_TEST(test_load_errors_name_the_tensor)
{
    struct clip_model m, m2;
    struct st_file *f;
    char dir[1024], path[1200];
    const char *victim = "text_model.encoder.layers.1.mlp.fc1.weight";
    int rc;

    clip_load_fixture(&m);
    /* the fixture carries the legacy position_ids buffers, ignored */
    snprintf(path, sizeof(path), "%s/model.safetensors", clip_fixture_dir());
    ck_assert_int_eq(st_open(&f, path), RL_OK);
    ck_assert_ptr_nonnull(st_find(f, "text_model.embeddings.position_ids"));
    ck_assert_ptr_nonnull(st_find(f, "vision_model.embeddings.position_ids"));
    st_close(f);

    ck_assert_ptr_nonnull(test_tmpdir_make(dir, sizeof(dir), "clip"));
    ck_assert_int_eq(clip_model_save(&m, dir, ST_F32), RL_OK);
    write_weights(&m, dir, victim, NULL);
    rc = clip_model_load(&m2, dir);
    ck_assert_int_eq(rc, RL_ERR_FORMAT);
    ck_assert_msg(strstr(rl_error_msg(), victim) != NULL, "message: %s", rl_error_msg());
    ck_assert_ptr_null(m2.params);

    write_weights(&m, dir, NULL, victim);
    rc = clip_model_load(&m2, dir);
    ck_assert_int_eq(rc, RL_ERR_FORMAT);
    ck_assert_msg(strstr(rl_error_msg(), victim) != NULL && strstr(rl_error_msg(), "shape"),
                  "message: %s", rl_error_msg());

    /* a config.json that does not match the weights */
    write_weights(&m, dir, NULL, NULL);
    snprintf(path, sizeof(path), "%s/config.json", dir);
    {
        struct clip_config c = m.cfg;

        c.projection_dim = 20;
        ck_assert_int_eq(clip_config_save(&c, path), RL_OK);
    }
    rc = clip_model_load(&m2, dir);
    ck_assert_int_eq(rc, RL_ERR_FORMAT);
    ck_assert_msg(strstr(rl_error_msg(), "visual_projection.weight") != NULL, "message: %s",
                  rl_error_msg());
    test_tmpdir_remove(dir);
    clip_model_free(&m);
}
END_TEST

START_TEST(test_save_load_round_trip)
{
    static const int dtypes[3] = { ST_F32, ST_F16, ST_BF16 };
    struct clip_model m, m2;
    char dir[1024];

    clip_load_fixture(&m);
    for (int k = 0; k < 3; k++) {
        size_t bad = 0;

        ck_assert_ptr_nonnull(test_tmpdir_make(dir, sizeof(dir), "clip"));
        ck_assert_int_eq(clip_model_save(&m, dir, dtypes[k]), RL_OK);
        ck_assert_msg(clip_model_load(&m2, dir) == RL_OK, "%s", rl_error_msg());
        ck_assert_uint_eq(m2.n_params, m.n_params);
        ck_assert_int_eq(memcmp(&m2.cfg, &m.cfg, sizeof(m.cfg)), 0);
        for (size_t i = 0; i < m.n_params; i++) {
            float want = m.params[i];

            if (dtypes[k] == ST_F16)
                want = st_f16_to_f32(st_f32_to_f16(want));
            else if (dtypes[k] == ST_BF16)
                want = st_bf16_to_f32(st_f32_to_bf16(want));
            bad += m2.params[i] != want;
        }
        ck_assert_msg(bad == 0, "%s: %zu weights differ after the round trip",
                      st_dtype_name((enum st_dtype)dtypes[k]), bad);
        clip_model_free(&m2);
        test_tmpdir_remove(dir);
    }
    clip_model_free(&m);
}
END_TEST

/* config.json: defaults for missing keys, errors naming the key */
START_TEST(test_config_parse)
{
    static const struct { const char *json; const char *key; } bad[] = {
        { "{\"vision_config\": {\"patch_size\": 5, \"image_size\": 16}}", "patch_size" },
        { "{\"vision_config\": {\"hidden_size\": 0}}", "vision_config.hidden_size" },
        { "{\"text_config\": {\"hidden_act\": \"relu\"}}", "text_config.hidden_act" },
        { "{\"text_config\": {\"num_attention_heads\": 7}}", "text_config.num_attention_heads" },
        { "{\"text_config\": {\"vocab_size\": 1.5}}", "text_config.vocab_size" },
        { "{\"text_config\": {\"eos_token_id\": 70000}}", "eos_token_id" },
        { "{\"text_config\": {\"layer_norm_eps\": \"x\"}}", "text_config.layer_norm_eps" },
        { "{\"projection_dim\": -3}", "projection_dim" },
        { "{\"vision_config\": [1, 2]}", "vision_config" },
        { "[1]", "object" },
        { "{\"text_config\": ", "JSON" },
    };
    struct clip_config c, d;
    char *json;

    /* empty: HF's defaults (ViT-B/32) */
    ck_assert_int_eq(clip_config_parse(&c, "{}", 2, "t.json"), RL_OK);
    clip_config_defaults(&d);
    ck_assert_int_eq(memcmp(&c, &d, sizeof(c)), 0);
    ck_assert_uint_eq(clip_config_n_params(&c), 151277313);

    /* a legacy *_config_dict overrides, as in HF */
    {
        const char *j = "{\"text_config\": {\"hidden_size\": 64, \"num_attention_heads\": 4},"
                        " \"text_config_dict\": {\"hidden_size\": 128},"
                        " \"vision_config\": {\"hidden_act\": \"gelu\", \"patch_size\": 16},"
                        " \"projection_dim\": 256, \"logit_scale_init_value\": 2.0}";

        ck_assert_int_eq(clip_config_parse(&c, j, strlen(j), "t.json"), RL_OK);
        ck_assert_uint_eq(c.text.hidden, 128);
        ck_assert_uint_eq(c.text.heads, 4);
        ck_assert_int_eq(c.vision.act, BLOCK_ACT_GELU);
        ck_assert_uint_eq(c.vision.patch_size, 16);
        ck_assert_uint_eq(c.projection_dim, 256);
        ck_assert(c.logit_scale_init == 2.0f);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = clip_config_parse(&c, bad[i].json, strlen(bad[i].json), "t.json");

        ck_assert_msg(rc == RL_ERR_FORMAT, "'%s' accepted", bad[i].json);
        ck_assert_msg(strstr(rl_error_msg(), bad[i].key) && strstr(rl_error_msg(), "t.json"),
                      "'%s': message '%s' does not name '%s'", bad[i].json, rl_error_msg(),
                      bad[i].key);
    }

    /* written and read back: the same config, for every preset */
    for (const char *const *p = clip_preset_names(); *p; p++) {
        ck_assert_int_eq(clip_config_preset(&d, *p), RL_OK);
        json = clip_config_to_json(&d);
        ck_assert_int_eq(clip_config_parse(&c, json, strlen(json), *p), RL_OK);
        ck_assert_msg(memcmp(&c, &d, sizeof(c)) == 0, "%s: config changed on a round trip", *p);
        free(json);
    }
    ck_assert_int_eq(clip_config_preset(&d, "clip-vit-h-14"), RL_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(rl_error_msg(), "clip-tiny"));
}
END_TEST

START_TEST(test_presets)
{
    struct clip_config c;
    struct clip_model m;

    ck_assert_int_eq(clip_config_preset(&c, "clip-vit-b-32"), RL_OK);
    ck_assert_uint_eq(clip_config_n_params(&c), 151277313);      /* clip.md 2.2 */
    ck_assert_uint_eq(clip_vision_tokens(&c.vision), 50);
    ck_assert_int_eq(clip_config_preset(&c, "clip-vit-b-16"), RL_OK);
    ck_assert_uint_eq(clip_vision_tokens(&c.vision), 197);
    ck_assert_int_eq(clip_config_preset(&c, "clip-vit-l-14"), RL_OK);
    ck_assert_uint_eq(clip_vision_tokens(&c.vision), 257);
    ck_assert_uint_eq(clip_config_n_params(&c), 427616513);      /* HF clip-vit-large-patch14 */

    ck_assert_int_eq(clip_model_preset(&m, "clip-tiny", 1), RL_OK);
    ck_assert_uint_eq(m.n_params, clip_config_n_params(&m.cfg));
    ck_assert_uint_eq(m.n_tensors, 14 + 16 * 8);
    /* the table covers the block exactly, in order */
    for (size_t i = 0, off = 0; i < m.n_tensors; i++) {
        ck_assert_uint_eq(m.tensors[i].offset, off);
        off += m.tensors[i].numel;
        if (i + 1 == m.n_tensors)
            ck_assert_uint_eq(off, m.n_params);
    }
    ck_assert_ptr_eq(clip_model_tensor(&m, "vision_model.encoder.layers.2.mlp.fc1.weight"),
                     m.vlayer[2].fc1_w);
    ck_assert_ptr_eq(clip_model_tensor(&m, "text_model.encoder.layers.3.self_attn.k_proj.bias"),
                     m.tlayer[3].k_b);
    ck_assert(m.w.logit_scale[0] == m.cfg.logit_scale_init);
    ck_assert(m.vlayer[0].ln1_w[0] == 1.0f && m.vlayer[0].q_b[0] == 0.0f);
    clip_model_free(&m);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* (e) targets                                                               */

START_TEST(test_targets)
{
    static const struct { const char *spec; const char *needle; } bad[] = {
        { "q_prj", "q_proj, k_proj" },
        { "audio:q_proj", "vision, text or both" },
        { "vision:3-1:fc1", "layer range" },
        { "vision:x:fc1", "layer range" },
        { "vision:1:2:fc1", "MODULES" },
        { "", "modules" },
        { "vision:fc1,", "unknown module ''" },
    };
    struct clip_model m;
    struct clip_target t[8];
    struct clip_adapters ca;
    struct adapter_cfg acfg;
    size_t nt;
    char name[128];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_msg(clip_targets_parse(bad[i].spec, t, 8, &nt) == RL_ERR_ARG, "'%s' accepted",
                      bad[i].spec);
        ck_assert_msg(strstr(rl_error_msg(), bad[i].needle), "'%s': '%s' lacks '%s'",
                      bad[i].spec, rl_error_msg(), bad[i].needle);
    }
    tiny_model(&m, 1);
    adapter_cfg_defaults(&acfg, "lora", 2);

    /* layers outside a tower, listing what exists */
    ck_assert_int_eq(clip_targets_parse("text:1-4:fc1", t, 8, &nt), RL_OK);
    ck_assert_int_eq(clip_adapters_init(&ca, &m, &acfg, t, nt, 2, 2), RL_ERR_ARG);
    ck_assert_msg(strstr(rl_error_msg(), "text tower has layers 0-1") &&
                  strstr(rl_error_msg(), "vision (layers 0-1)") &&
                  strstr(rl_error_msg(), "out_proj"), "%s", rl_error_msg());
    ck_assert_ptr_null(ca.params);

    /* the default is both towers, every layer */
    ck_assert_int_eq(clip_targets_parse("q_proj,v_proj", t, 8, &nt), RL_OK);
    ck_assert_int_eq(clip_adapters_init(&ca, &m, &acfg, t, nt, 2, 2), RL_OK);
    ck_assert_uint_eq(ca.n_sites, 8);
    ck_assert_str_eq(clip_site_name(&ca.sites[0], name, sizeof(name)),
                     "vision_model.encoder.layers.0.self_attn.q_proj");
    ck_assert_str_eq(clip_site_name(&ca.sites[7], name, sizeof(name)),
                     "text_model.encoder.layers.1.self_attn.v_proj");
    ck_assert_uint_eq(ca.n_params, 4 * 2 * (16 + 16) + 4 * 2 * (12 + 12));
    ck_assert_ptr_eq(ca.text[1].lin[BLOCK_LIN_V], &ca.adapters[7]);
    ck_assert_ptr_null(ca.text[1].lin[BLOCK_LIN_K]);
    ck_assert_ptr_eq(ca.adapters[3].params, ca.params + ca.sites[3].offset);
    clip_adapters_free(&ca);

    /* overlapping targets adapt a linear once; mlp and attn groups */
    ck_assert_int_eq(clip_targets_parse("vision:mlp;vision:1:fc1;text:0:attn", t, 8, &nt), RL_OK);
    ck_assert_uint_eq(nt, 3);
    ck_assert_int_eq(clip_adapters_init(&ca, &m, &acfg, t, nt, 2, 2), RL_OK);
    ck_assert_uint_eq(ca.n_sites, 4 + 4);
    clip_adapters_free(&ca);

    /* a rank the method refuses names the layer */
    adapter_cfg_defaults(&acfg, "lora", 13);
    ck_assert_int_eq(clip_targets_parse("text:0:q_proj", t, 8, &nt), RL_OK);
    ck_assert_int_eq(clip_adapters_init(&ca, &m, &acfg, t, nt, 2, 2), RL_ERR_ARG);
    ck_assert_msg(strstr(rl_error_msg(), "text_model.encoder.layers.0.self_attn.q_proj"), "%s",
                  rl_error_msg());

    /* batches beyond what the adapters were sized for */
    adapter_cfg_defaults(&acfg, "lora", 2);
    ck_assert_int_eq(clip_targets_parse("vision:fc2", t, 8, &nt), RL_OK);
    ck_assert_int_eq(clip_adapters_init(&ca, &m, &acfg, t, nt, 2, 0), RL_OK);
    {
        struct clip_vision_run vr;
        struct rng rg;
        float *px, e[3 * 8];

        rng_init(&rg, 1);
        px = test_randn(&rg, 3 * 3 * 8 * 8, 1.0f);
        clip_vision_run_init(&vr, &m, 3, true);
        ck_assert_int_eq(clip_vision_forward(&vr, &m, &ca, px, 3, e), RL_ERR_ARG);
        ck_assert_int_eq(clip_vision_forward(&vr, &m, &ca, px, 2, e), RL_OK);
        clip_vision_run_free(&vr);
        free(px);
    }
    clip_adapters_free(&ca);
    clip_model_free(&m);
}
END_TEST

/* zero-shot class features: mean of normalised template embeddings, renormalised */
START_TEST(test_class_features)
{
    const float txt[2 * 2 * 3] = { 3, 0, 4,  0, 2, 0,      /* class 0 */
                                   1, 0, 0,  1, 0, 0 };    /* class 1 */
    float out[2 * 3];
    const double s = 1.0 / sqrt(0.36 + 1.0 + 0.64);

    clip_class_features(out, txt, 2, 2, 3);
    ck_assert_double_eq_tol(out[0], 0.6 * s, 1e-6);
    ck_assert_double_eq_tol(out[1], 1.0 * s, 1e-6);
    ck_assert_double_eq_tol(out[2], 0.8 * s, 1e-6);
    ck_assert_double_eq_tol(out[3], 1.0, 1e-6);
    ck_assert_double_eq_tol(out[4], 0.0, 1e-6);
}
END_TEST

Suite *suite_clip_model(void)
{
    Suite *s = suite_create("clip_model");
    TCase *tc = tcase_create("clip_model");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_gradcheck_lora);
    tcase_add_test(tc, test_gradcheck_randlora);
    tcase_add_test(tc, test_gradcheck_weights);
    tcase_add_test(tc, test_text_cut_identical);
    tcase_add_test(tc, test_text_ids_checked);
    tcase_add_test(tc, test_eot_rules);
    tcase_add_test(tc, test_vision_runs_agree);
    tcase_add_test(tc, test_load_errors_name_the_tensor);
    tcase_add_test(tc, test_save_load_round_trip);
    tcase_add_test(tc, test_config_parse);
    tcase_add_test(tc, test_presets);
    tcase_add_test(tc, test_targets);
    tcase_add_test(tc, test_class_features);
    suite_add_tcase(s, tc);
    return s;
}
