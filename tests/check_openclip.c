/*
 * check_openclip.c: open_clip checkpoints (models/clip_layout.c,
 * models/clip_openclip_config.c) against open_clip itself.
 *
 * Fixtures (tests/ref/make_openclip_fixture.py): tests/fixtures/openclip_tiny,
 * a tiny random CLIP built and saved by open_clip (open_clip_config.json +
 * open_clip_model.safetensors) with open_clip's own encode_image /
 * encode_text / logits in golden.bin; tests/fixtures/openclip_tiny_hf, the
 * same weights converted to Hugging Face names and saved by transformers'
 * CLIPModel after the script checked CLIPModel gives open_clip's outputs.
 *
 *   - the open_clip directory loads (its layout detected) and computes
 *     open_clip's features and logits;
 *   - the converted HF directory loads into the identical block: the same
 *     bits, the same features and logits bit for bit;
 *   - saving in either layout writes the other fixture's tensors exactly;
 *   - the config reader: defaults, quick_gelu, refusals by name;
 *   - hostile directories: one line, the file and the tensor named;
 *   - the commands: info, encode, merge (either layout out) on the open_clip
 *     directory.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clip_harness.h"
#include "cli/commands.h"
#include "cmd_harness.h"
#include "core/rng.h"
#include "core/status.h"
#include "formats/safetensors.h"
#include "golden.h"
#include "methods/adapter.h"
#include "methods/adapter_io.h"
#include "models/clip.h"
#include "suites.h"
#include "test_cmd.h"
#include "test_util.h"

#define OC_HINT "python3 tests/ref/make_openclip_fixture.py"

static const char *oc_dir(void)
{
    static char buf[1024];

    snprintf(buf, sizeof(buf), "%s", fixture_path("openclip_tiny"));
    return buf;
}

static const char *oc_hf_dir(void)
{
    static char buf[1024];

    snprintf(buf, sizeof(buf), "%s", fixture_path("openclip_tiny_hf"));
    return buf;
}

/* image and text features of the golden's pixels and ids, and the logits */
struct feats {
    float img[3 * 16], txt[3 * 16], logits[9];
};

static void run_feats(struct clip_model *m, const struct golden *g, struct feats *f)
{
    struct clip_vision_run vr;
    struct clip_text_run tr;
    struct clip_head h;
    const float *px = golden_get(g, "pixels", 4, (size_t[]){ 3, 3, 16, 16 });
    const float *idf = golden_get(g, "ids", 2, (size_t[]){ 3, 12 });
    int32_t ids[3 * 12];

    ck_assert_ptr_nonnull(px);
    ck_assert_ptr_nonnull(idf);
    for (int i = 0; i < 36; i++)
        ids[i] = (int32_t)idf[i];
    clip_vision_run_init(&vr, m, 3, false);
    clip_text_run_init(&tr, m, 3, 0, false);
    clip_head_init(&h, 3, 3, 16);
    ck_assert_int_eq(clip_vision_forward(&vr, m, NULL, px, 3, f->img), RL_OK);
    ck_assert_int_eq(clip_text_forward(&tr, m, NULL, ids, 3, 12, f->txt), RL_OK);
    clip_head_logits(&h, f->img, f->txt, 3, 3, clip_logit_scale(m));
    memcpy(f->logits, h.logits, sizeof(f->logits));
    clip_head_free(&h);
    clip_text_run_free(&tr);
    clip_vision_run_free(&vr);
}

static void open_oc_golden(struct golden *g)
{
    char path[1200];

    snprintf(path, sizeof(path), "%s/golden.bin", oc_dir());
    ck_assert_msg(golden_open(g, path, OC_HINT) == RL_OK, "%s", rl_error_msg());
}

/* ------------------------------------------------------------------------ */
/* against open_clip                                                         */

START_TEST(test_openclip_matches_open_clip)
{
    struct clip_model m;
    struct golden g;
    struct feats f;

    clip_load_dir(&m, oc_dir());
    ck_assert_int_eq(m.layout, CLIP_LAYOUT_OPENCLIP);
    ck_assert_int_eq(m.cfg.vision.act, BLOCK_ACT_QUICK_GELU);
    ck_assert_int_eq(m.cfg.text.act, BLOCK_ACT_QUICK_GELU);
    ck_assert_uint_eq(m.cfg.vision.heads, 2);
    ck_assert_uint_eq(m.cfg.vision.intermediate, 64);
    ck_assert_uint_eq(m.cfg.text.intermediate, 48);
    ck_assert_int_eq(m.cfg.text.eos_token_id, 554);
    open_oc_golden(&g);
    run_feats(&m, &g, &f);
    ck_assert_uint_eq(tensor_compare("image_features", f.img,
                                     golden_get(&g, "image_features", 2, (size_t[]){ 3, 16 }),
                                     48, 1e-5, 1e-4), 0);
    ck_assert_uint_eq(tensor_compare("text_features", f.txt,
                                     golden_get(&g, "text_features", 2, (size_t[]){ 3, 16 }),
                                     48, 1e-5, 1e-4), 0);
    ck_assert_uint_eq(tensor_compare("logits", f.logits,
                                     golden_get(&g, "logits", 2, (size_t[]){ 3, 3 }), 9, 1e-5,
                                     1e-4), 0);
    golden_close(&g);
    clip_model_free(&m);
}
END_TEST

START_TEST(test_openclip_hf_identical)
{
    struct clip_model a, b;
    struct golden g;
    struct feats fa, fb;

    clip_load_dir(&a, oc_dir());
    clip_load_dir(&b, oc_hf_dir());
    ck_assert_int_eq(b.layout, CLIP_LAYOUT_HF);
    ck_assert_uint_eq(a.n_params, b.n_params);
    ck_assert(memcmp(&a.cfg.vision, &b.cfg.vision, sizeof(a.cfg.vision)) == 0);
    ck_assert(a.cfg.text.hidden == b.cfg.text.hidden && a.cfg.text.act == b.cfg.text.act &&
              a.cfg.text.eos_token_id == b.cfg.text.eos_token_id &&
              a.cfg.text.intermediate == b.cfg.text.intermediate);
    /* one block, the same bits: the in_proj rows are q, k, v; proj^T */
    ck_assert_int_eq(memcmp(a.params, b.params, a.n_params * sizeof(float)), 0);
    open_oc_golden(&g);
    run_feats(&a, &g, &fa);
    run_feats(&b, &g, &fb);
    ck_assert_int_eq(memcmp(&fa, &fb, sizeof(fa)), 0);
    golden_close(&g);
    clip_model_free(&a);
    clip_model_free(&b);
}
END_TEST

/* every tensor of file `want` is in file `got` with the same values */
static void same_tensors(const char *got, const char *want)
{
    struct st_file *fg, *fw;

    ck_assert_int_eq(st_open(&fg, got), RL_OK);
    ck_assert_int_eq(st_open(&fw, want), RL_OK);
    ck_assert_uint_eq(st_count(fg), st_count(fw));
    for (size_t i = 0; i < st_count(fw); i++) {
        const struct st_info *w = st_info_at(fw, i), *gi = st_find(fg, w->name);
        float *a, *b;

        ck_assert_msg(gi != NULL, "%s: no tensor '%s'", got, w->name);
        ck_assert_int_eq(gi->ndim, w->ndim);
        for (int d = 0; d < w->ndim; d++)
            ck_assert_int_eq(gi->shape[d], w->shape[d]);
        a = test_zeros(w->numel);
        b = test_zeros(w->numel);
        ck_assert_int_eq(st_read_f32(fg, gi, a), RL_OK);
        ck_assert_int_eq(st_read_f32(fw, w, b), RL_OK);
        ck_assert_msg(memcmp(a, b, w->numel * sizeof(float)) == 0, "%s differs", w->name);
        free(a);
        free(b);
    }
    st_close(fg);
    st_close(fw);
}

START_TEST(test_openclip_save_either_layout)
{
    struct clip_model a, b, c;
    char dir[1024], path[1300], want[1300];

    ck_assert_ptr_nonnull(test_tmpdir_make(dir, sizeof(dir), "openclip"));
    clip_load_dir(&a, oc_hf_dir());
    /* HF in, open_clip out: open_clip's own file, tensor for tensor */
    ck_assert_int_eq(clip_model_save_as(&a, dir, ST_F32, CLIP_LAYOUT_OPENCLIP), RL_OK);
    snprintf(path, sizeof(path), "%s/open_clip_model.safetensors", dir);
    snprintf(want, sizeof(want), "%s/open_clip_model.safetensors", oc_dir());
    same_tensors(path, want);
    clip_load_dir(&b, dir);
    ck_assert_int_eq(b.layout, CLIP_LAYOUT_OPENCLIP);
    ck_assert_int_eq(memcmp(a.params, b.params, a.n_params * sizeof(float)), 0);
    /* open_clip in, HF out: the converted fixture's tensors */
    ck_assert_int_eq(clip_model_save_as(&b, dir, ST_F32, CLIP_LAYOUT_HF), RL_OK);
    snprintf(path, sizeof(path), "%s/model.safetensors", dir);
    snprintf(want, sizeof(want), "%s/model.safetensors", oc_hf_dir());
    same_tensors(path, want);
    clip_load_dir(&c, dir);                 /* config.json wins when both are there */
    ck_assert_int_eq(c.layout, CLIP_LAYOUT_HF);
    ck_assert_int_eq(memcmp(a.params, c.params, a.n_params * sizeof(float)), 0);
    /* a model open_clip cannot express is refused, nothing written */
    c.cfg.text.act = BLOCK_ACT_GELU;
    ck_assert_int_eq(clip_model_save_as(&c, path, ST_F32, CLIP_LAYOUT_OPENCLIP), RL_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(rl_error_msg(), "one activation for both towers"));
    clip_model_free(&a);
    clip_model_free(&b);
    clip_model_free(&c);
    test_tmpdir_remove(dir);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* the config reader                                                         */

static int parse(struct clip_config *c, const char *json)
{
    return clip_openclip_config_parse(c, json, strlen(json), "oc.json");
}

START_TEST(test_openclip_config)
{
    static const struct { const char *json, *want; } bad[] = {
        { "{", "not valid JSON" },
        { "[1]", "model_cfg" },
        { "{\"model_cfg\": {\"vision_cfg\": {}}}", "needs vision_cfg and text_cfg" },
        { "{\"model_cfg\": {\"vision_cfg\": {\"timm_model_name\": \"vit\"}, \"text_cfg\": {}}}",
          "vision_cfg.timm_model_name is set" },
        { "{\"model_cfg\": {\"vision_cfg\": {\"layers\": [3, 4, 6, 3]}, \"text_cfg\": {}}}",
          "ResNet" },
        { "{\"model_cfg\": {\"vision_cfg\": {\"width\": 100}, \"text_cfg\": {}}}",
          "head_width = 64 does not divide width 100" },
        { "{\"model_cfg\": {\"quick_gelu\": 1, \"vision_cfg\": {}, \"text_cfg\": {}}}",
          "quick_gelu: expected true or false" },
        { "{\"model_cfg\": {\"vision_cfg\": {\"pool_type\": \"avg\"}, \"text_cfg\": {}}}",
          "pool_type = avg" },
        { "{\"model_cfg\": {\"custom_text\": true, \"vision_cfg\": {}, \"text_cfg\": {}}}",
          "custom_text is set" },
        { "{\"model_cfg\": {\"vision_cfg\": {\"image_size\": [16, 8]}, \"text_cfg\": {}}}",
          "square images" },
        { "{\"model_cfg\": {\"vision_cfg\": {}, \"text_cfg\": {\"hf_model_name\": \"x\"}}}",
          "text_cfg.hf_model_name is set" },
        { "{\"model_cfg\": {\"vision_cfg\": {\"ls_init_value\": 0.1}, \"text_cfg\": {}}}",
          "ls_init_value is set" },
        { "{\"model_cfg\": {\"vision_cfg\": {\"patch_size\": 0}, \"text_cfg\": {}}}",
          "patch_size: expected an integer" },
        { "{\"model_cfg\": {\"vision_cfg\": {\"mlp_ratio\": -1}, \"text_cfg\": {}}}",
          "mlp_ratio: expected a number" },
        { "{\"model_cfg\": {\"vision_cfg\": {}, \"text_cfg\": {\"proj_bias\": true}}}",
          "proj_bias is set" },
    };
    struct clip_config c;

    /* open_clip's defaults: ViT-B/16 vision, CLIP's text tower, nn.GELU */
    ck_assert_int_eq(parse(&c, "{\"model_cfg\": {\"embed_dim\": 512, \"vision_cfg\": {}, "
                               "\"text_cfg\": {}}}"), RL_OK);
    ck_assert_uint_eq(c.vision.hidden, 768);
    ck_assert_uint_eq(c.vision.heads, 12);
    ck_assert_uint_eq(c.vision.patch_size, 16);
    ck_assert_uint_eq(c.vision.intermediate, 3072);
    ck_assert_uint_eq(c.text.hidden, 512);
    ck_assert_uint_eq(c.text.intermediate, 2048);
    ck_assert_int_eq(c.text.eos_token_id, 49407);
    ck_assert_int_eq(c.vision.act, BLOCK_ACT_GELU);
    ck_assert_uint_eq(clip_config_n_params(&c), 149620737);   /* open_clip ViT-B-16 */
    /* a bare model_cfg (open_clip's model_configs), quick_gelu */
    ck_assert_int_eq(parse(&c, "{\"embed_dim\": 512, \"quick_gelu\": true, \"vision_cfg\": "
                               "{\"patch_size\": 32, \"image_size\": [224, 224]}, "
                               "\"text_cfg\": {}}"), RL_OK);
    ck_assert_int_eq(c.text.act, BLOCK_ACT_QUICK_GELU);
    ck_assert_uint_eq(clip_config_n_params(&c), 151277313);   /* ViT-B/32, as HF's */
    /* no quick_gelu key, a -quickgelu model name */
    ck_assert_int_eq(parse(&c, "{\"model_name\": \"ViT-B-32-quickgelu\", \"model_cfg\": "
                               "{\"vision_cfg\": {}, \"text_cfg\": {}}}"), RL_OK);
    ck_assert_int_eq(c.vision.act, BLOCK_ACT_QUICK_GELU);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_msg(parse(&c, bad[i].json) == RL_ERR_FORMAT, "accepted: %s", bad[i].json);
        ck_assert_msg(strstr(rl_error_msg(), bad[i].want) && strstr(rl_error_msg(), "oc.json"),
                      "%s: message '%s' lacks '%s'", bad[i].json, rl_error_msg(), bad[i].want);
    }
}
END_TEST

/* ------------------------------------------------------------------------ */
/* hostile directories and the commands                                      */

static void copy_to(const char *src_dir, const char *dst_dir, const char *file)
{
    char a[1300], b[1300];
    size_t n;
    char *text;
    FILE *f;

    snprintf(a, sizeof(a), "%s/%s", src_dir, file);
    snprintf(b, sizeof(b), "%s/%s", dst_dir, file);
    text = test_slurp(a, &n);
    f = fopen(b, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(text, 1, n, f), n);
    fclose(f);
    free(text);
}

/* dir/open_clip_model.safetensors from m's open_clip tensors, without `skip` */
static void write_oc_weights(const struct clip_model *m, const char *dir, const char *skip)
{
    size_t n = clip_stored_tensors(m, CLIP_LAYOUT_OPENCLIP, NULL);
    struct clip_stored *st = calloc(n, sizeof(*st));
    struct st_writer *w = st_writer_new();
    char path[1300];

    clip_stored_tensors(m, CLIP_LAYOUT_OPENCLIP, st);
    for (size_t i = 0; i < n; i++)
        if (!skip || strcmp(st[i].name, skip))
            ck_assert_int_eq(st_writer_add(w, st[i].name, m->params + st[i].offset, st[i].ndim,
                                           st[i].shape, ST_F32), RL_OK);
    snprintf(path, sizeof(path), "%s/open_clip_model.safetensors", dir);
    ck_assert_int_eq(st_writer_write(w, path), RL_OK);
    st_writer_free(w);
    free(st);
}

START_TEST(test_openclip_hostile)
{
    struct clip_model m, bad;
    struct test_captured c;
    char dir[1024], path[1300];
    FILE *f;

    clip_load_dir(&m, oc_dir());
    ck_assert_ptr_nonnull(test_tmpdir_make(dir, sizeof(dir), "ochostile"));
    /* neither config */
    ck_assert_int_eq(clip_model_load(&bad, dir), RL_ERR_IO);
    ck_assert_ptr_nonnull(strstr(rl_error_msg(), "open_clip_config.json"));
    /* a missing in_proj_weight, named */
    copy_to(oc_dir(), dir, "open_clip_config.json");
    write_oc_weights(&m, dir, "visual.transformer.resblocks.1.attn.in_proj_weight");
    ck_assert_int_eq(clip_model_load(&bad, dir), RL_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(rl_error_msg(),
                                 "'visual.transformer.resblocks.1.attn.in_proj_weight'"));
    c = test_run_cmd(dir, cmd_info, "info", dir, NULL);
    test_assert_one_line_error(&c, "randlora info: ", "in_proj_weight' is missing",
                               "open_clip file without an in_proj_weight");
    test_captured_free(&c);
    /* a config that is not open_clip's CLIP */
    snprintf(path, sizeof(path), "%s/open_clip_config.json", dir);
    f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs("{\"model_cfg\": {\"vision_cfg\": {\"timm_model_name\": \"vit_base\"}, "
          "\"text_cfg\": {}}}", f);
    fclose(f);
    c = test_run_cmd(dir, cmd_info, "info", dir, NULL);
    test_assert_one_line_error(&c, "randlora info: ", "timm_model_name", "a timm tower");
    test_captured_free(&c);
    test_tmpdir_remove(dir);
    clip_model_free(&m);
}
END_TEST

START_TEST(test_openclip_commands)
{
    struct clip_model m, merged, want;
    struct clip_adapters ca;
    struct clip_target t[1];
    struct adapter_cfg acfg;
    struct adapter_io_module mods[16];
    char names[16][CLIP_MAX_NAME];
    char dir[1024], adir[1300], out1[1300], out2[1300], txt[1400];
    struct test_captured c;
    struct rng rg;
    size_t nt;
    FILE *f;

    ck_assert_ptr_nonnull(test_tmpdir_make(dir, sizeof(dir), "occmd"));
    c = test_run_cmd(dir, cmd_info, "info", oc_dir(), NULL);
    ck_assert_msg(c.status == 0, "info: %s", c.err);
    ck_assert_ptr_nonnull(strstr(c.out, "layout       open_clip"));
    ck_assert_ptr_nonnull(strstr(c.out, "all 62 tensors"));
    test_captured_free(&c);

    /* encode on the open_clip directory: its tokenizer files, its layout */
    snprintf(txt, sizeof(txt), "%s/captions.txt", dir);
    f = fopen(txt, "w");
    ck_assert_ptr_nonnull(f);
    fputs("a photo\nanother one\n", f);
    fclose(f);
    snprintf(out1, sizeof(out1), "%s/text.h5", dir);
    c = test_run_cmd(dir, cmd_encode, "encode", "--model", oc_dir(), "--text", txt, "-o", out1,
                     NULL);
    ck_assert_msg(c.status == 0, "encode: %s", c.err);
    test_captured_free(&c);

    /* an adapter on the packed in_proj and fc1, exported, then merged */
    clip_load_dir(&m, oc_dir());
    ck_assert_int_eq(clip_targets_parse("in_proj,fc1", t, 1, &nt), RL_OK);
    adapter_cfg_defaults(&acfg, "lora", 2);
    ck_assert_int_eq(clip_adapters_init(&ca, &m, &acfg, t, nt, 1, 1), RL_OK);
    ck_assert_uint_eq(ca.n_sites, 8);
    rng_init(&rg, 4);
    for (size_t i = 0; i < ca.n_params; i++)
        ca.params[i] = 0.1f * rng_normal(&rg);
    for (size_t k = 0; k < ca.n_sites; k++) {
        mods[k].path = clip_site_name(&ca.sites[k], names[k], sizeof(names[k]));
        mods[k].adapter = &ca.adapters[k];
    }
    snprintf(adir, sizeof(adir), "%s/adapter", dir);
    {
        struct adapter_io_files files = { .dir = adir };

        struct st_file *sf;
        const struct st_info *si;
        char wpath[1400];

        ck_assert_int_eq(adapter_io_export(&files, &ca.method, mods, ca.n_sites), RL_OK);
        /* a packed site's pair: (r, d) and (3d, r), the shapes peft gives
         * the in_proj pair of an nn.MultiheadAttention it adapts */
        snprintf(wpath, sizeof(wpath), "%s/adapter_model.safetensors", adir);
        ck_assert_int_eq(st_open(&sf, wpath), RL_OK);
        si = st_find(sf, "base_model.model.vision_model.encoder.layers.0.self_attn.in_proj."
                         "lora_B.weight");
        ck_assert_ptr_nonnull(si);
        ck_assert(si->ndim == 2 && si->shape[0] == 96 && si->shape[1] == 2);
        si = st_find(sf, "base_model.model.text_model.encoder.layers.1.self_attn.in_proj."
                         "lora_A.weight");
        ck_assert_ptr_nonnull(si);
        ck_assert(si->ndim == 2 && si->shape[0] == 2 && si->shape[1] == 24);
        st_close(sf);
    }
    /* the expected merge, in memory */
    clip_load_dir(&want, oc_dir());
    for (size_t k = 0; k < ca.n_sites; k++)
        adapter_merge(&ca.adapters[k], clip_site_weight(&want, &ca.sites[k]));
    snprintf(out1, sizeof(out1), "%s/merged_oc", dir);
    snprintf(out2, sizeof(out2), "%s/merged_hf", dir);
    c = test_run_cmd(dir, cmd_merge, "merge", "--model", oc_dir(), "--adapter", adir, "-o", out1,
                     NULL);
    ck_assert_msg(c.status == 0, "merge: %s", c.err);
    ck_assert_ptr_nonnull(strstr(c.out, "open_clip_model.safetensors"));
    test_captured_free(&c);
    clip_load_dir(&merged, out1);
    ck_assert_int_eq(merged.layout, CLIP_LAYOUT_OPENCLIP);
    ck_assert_int_eq(memcmp(merged.params, want.params, want.n_params * sizeof(float)), 0);
    clip_model_free(&merged);
    c = test_run_cmd(dir, cmd_merge, "merge", "--model", oc_dir(), "--adapter", adir, "-o", out2,
                     "--layout", "hf", NULL);
    ck_assert_msg(c.status == 0, "merge --layout hf: %s", c.err);
    test_captured_free(&c);
    clip_load_dir(&merged, out2);
    ck_assert_int_eq(merged.layout, CLIP_LAYOUT_HF);
    ck_assert_int_eq(memcmp(merged.params, want.params, want.n_params * sizeof(float)), 0);
    snprintf(txt, sizeof(txt), "%s/vocab.json", out2);
    ck_assert_int_eq(access(txt, R_OK), 0);
    clip_model_free(&merged);
    c = test_run_cmd(dir, cmd_merge, "merge", "--model", oc_dir(), "--adapter", adir, "-o", out2,
                     "--layout", "timm", NULL);
    test_assert_one_line_error(&c, "randlora merge: ", "--layout 'timm'", "a bad layout");
    test_captured_free(&c);

    clip_model_free(&want);
    clip_adapters_free(&ca);
    clip_model_free(&m);
    test_tmpdir_remove(dir);
}
END_TEST

/* train on a model dir (merged path: the runner re-bases from the model's
 * own weights file at each checkpoint), then info's train and final lines */
static char *train_summary(const char *dir, const char *model, const char *tag)
{
    char ini[1400], out[1400], h5[1500], text[2048];
    struct test_captured c;
    char *a, *b, *res;
    FILE *f;

    snprintf(ini, sizeof(ini), "%s/%s.ini", dir, tag);
    snprintf(out, sizeof(out), "%s/%s", dir, tag);
    snprintf(text, sizeof(text),
             "[experiment]\nname = t\noutput = %s\n[model]\nname = %s\n"
             "[data]\ndataset = shapes-count\neval = shapes-count:test\nprompt = {}\n"
             "shots = 4\neval_limit = 24\n[method]\nmethods = randlora\nrank = 4\n"
             "modules = in_proj, fc1\n[train]\nsteps = 4\nbatch = 12\nlr = 1e-2\n"
             "eval_every = 2\ncheckpoint_every = 2\n[sweep]\nseeds = 1\n", out, model);
    f = fopen(ini, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    c = test_run_cmd(dir, cmd_train, "train", "-c", ini, "-q", NULL);
    ck_assert_msg(c.status == 0, "train on %s: %s", model, c.err);
    test_captured_free(&c);
    snprintf(h5, sizeof(h5), "%s/randlora-r4-s4-seed1.h5", out);
    c = test_run_cmd(dir, cmd_info, "info", h5, NULL);
    ck_assert_msg(c.status == 0, "info: %s", c.err);
    a = strstr(c.out, "\ntrain ");
    b = strstr(c.out, ", peak RSS");
    ck_assert(a && b && b > a);
    res = strndup(a, (size_t)(b - a));
    test_captured_free(&c);
    return res;
}

START_TEST(test_openclip_train)
{
    char dir[1024];
    char *oc, *hf;

    ck_assert_ptr_nonnull(test_tmpdir_make(dir, sizeof(dir), "octrain"));
    setenv("RANDLORA_ADAPTER_PATH", "merged", 1);
    oc = train_summary(dir, oc_dir(), "oc");
    hf = train_summary(dir, oc_hf_dir(), "hf");
    unsetenv("RANDLORA_ADAPTER_PATH");
    /* the same block, the same run: losses and accuracy to the last digit */
    ck_assert_msg(!strcmp(oc, hf), "open_clip:\n%s\nHF:\n%s", oc, hf);
    ck_assert_ptr_nonnull(strstr(oc, "final"));
    free(oc);
    free(hf);
    test_tmpdir_remove(dir);
}
END_TEST

Suite *suite_openclip(void)
{
    Suite *s = suite_create("openclip");
    TCase *tc = tcase_create("openclip");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_openclip_matches_open_clip);
    tcase_add_test(tc, test_openclip_hf_identical);
    tcase_add_test(tc, test_openclip_save_either_layout);
    tcase_add_test(tc, test_openclip_config);
    tcase_add_test(tc, test_openclip_hostile);
    tcase_add_test(tc, test_openclip_commands);
    tcase_add_test(tc, test_openclip_train);
    suite_add_tcase(s, tc);
    return s;
}
