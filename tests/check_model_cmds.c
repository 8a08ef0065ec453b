/*
 * check_model_cmds.c: `randlora info` (on safetensors files and model
 * directories) and `randlora merge`, run IN-PROCESS through cmd_harness.h,
 * and the hostile safetensors files and bad arguments of info, encode and
 * merge:
 *
 *   info             info on the fixture safetensors prints its tensor count,
 *                    dtypes and metadata; on the model directory the config
 *                    summary and the weights check
 *   merge            LoRA, VeRA and RandLoRA with random non-zero parameters
 *                    on both towers, exported by methods/adapter_io, merged:
 *                    the merged model's embeddings equal the adapted model's
 *                    within 1e-5; tokenizer files copied; a key naming no
 *                    layer, and -o DIR, exit 2
 *   hostile          malformed safetensors (truncated, header too large,
 *                    header past the end, offsets out of bounds, overlapping,
 *                    a gap, unknown dtype, unconvertible dtype, shape/size
 *                    mismatch, not JSON, a mis-shaped model tensor) given to
 *                    info and to encode --model: exit 2, one line on stderr
 *   usage            bad arguments: exit 2, one line
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/status.h"
#include "cli/commands.h"
#include "methods/adapter.h"
#include "methods/adapter_io.h"
#include "models/clip.h"
#include "formats/safetensors.h"
#include "clip_harness.h"
#include "cmd_harness.h"
#include "suites.h"
#include "test_cmd.h"
#include "test_util.h"

/* info                                                                      */

START_TEST(test_info)
{
    struct st_file *f;
    char want[64];

    ck_assert_int_eq(st_open(&f, cmd_fixture_file("model.safetensors")), RL_OK);
    snprintf(want, sizeof want, "tensors      %zu\n", st_count(f));
    st_close(f);

    struct test_captured c = test_run_cmd(cmd_tmpdir, cmd_info, "info", cmd_fixture_file("model.safetensors"), NULL);
    ck_assert_msg(c.status == 0, "exit %d: %s", c.status, c.err);
    ck_assert_msg(strstr(c.out, want) != NULL, "no '%s' in:\n%s", want, c.out);
    ck_assert_ptr_nonnull(strstr(c.out, "tensors      80\n"));
    ck_assert_ptr_nonnull(strstr(c.out, "kind         safetensors\n"));
    ck_assert_ptr_nonnull(strstr(c.out, "(F32 43,625, I64 29)"));
    ck_assert_ptr_nonnull(strstr(c.out, "format = pt"));
    ck_assert_ptr_nonnull(strstr(c.out, "visual_projection.weight"));
    ck_assert_ptr_nonnull(strstr(c.out, "[32, 3, 4, 4]"));
    ck_assert_ptr_nonnull(strstr(c.out, "text_model.embeddings.position_ids"));
    ck_assert_str_eq(c.err, "");
    test_captured_free(&c);

    /* the model directory */
    c = test_run_cmd(cmd_tmpdir, cmd_info, "info", cmd_fixdir, NULL);
    ck_assert_msg(c.status == 0, "exit %d: %s", c.status, c.err);
    ck_assert_ptr_nonnull(strstr(c.out, "projection 16"));
    ck_assert_ptr_nonnull(strstr(c.out, "all 78 tensors of the config present"));
    ck_assert_ptr_nonnull(strstr(c.out, "2 other keys ignored"));
    ck_assert_ptr_nonnull(strstr(c.out, "vocab.json yes"));
    ck_assert_ptr_nonnull(strstr(c.out, "tensors      80\n"));
    test_captured_free(&c);

    /* a file of another kind, a missing file, bad usage */
    test_write_text(tp("notes.txt"), "hello\n");
    c = test_run_cmd(cmd_tmpdir, cmd_info, "info", tp("notes.txt"), NULL);
    test_assert_one_line_error(&c, "randlora info: ", "notes.txt", "text file");
    test_captured_free(&c);
    c = test_run_cmd(cmd_tmpdir, cmd_info, "info", tp("missing.safetensors"), NULL);
    test_assert_one_line_error(&c, "randlora info: ", "missing.safetensors", "missing file");
    test_captured_free(&c);
    c = test_run_cmd(cmd_tmpdir, cmd_info, "info", cmd_tmpdir, NULL);
    test_assert_one_line_error(&c, "randlora info: ", "config.json", "empty directory");
    test_captured_free(&c);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* merge                                                                     */

struct merge_case {
    const char *method;
    size_t r;
    float alpha, std;
    const char *targets;
};

static void merge_one(const struct merge_case *mc, const char *tag)
{
    struct golden g;
    struct clip_model m, merged;
    struct clip_adapters ca;
    struct clip_target tg[8];
    struct adapter_cfg cfg;
    struct adapter_io_module mods[64];
    char names[64][CLIP_MAX_NAME];
    size_t nt;
    struct rng r;
    float img_a[GB * GD], txt_a[GB * GD], img_m[GB * GD], txt_m[GB * GD];
    int32_t ids[GB * GCTX];
    const char *adir = tp("adapter_%s", tag), *odir = tp("merged_%s", tag);
    char adir_s[1100], odir_s[1100];
    int rc;

    snprintf(adir_s, sizeof adir_s, "%s", adir);
    snprintf(odir_s, sizeof odir_s, "%s", odir);
    clip_open_golden(&g);
    clip_load_dir(&m, cmd_fixdir);
    ck_assert_int_eq(clip_targets_parse(mc->targets, tg, 8, &nt), RL_OK);
    adapter_cfg_defaults(&cfg, mc->method, mc->r);
    if (mc->alpha > 0)
        cfg.alpha = mc->alpha;
    cfg.seed = 7;
    rc = clip_adapters_init(&ca, &m, &cfg, tg, nt, GB, GB);
    ck_assert_msg(rc == RL_OK, "%s", rl_error_msg());
    ck_assert_uint_le(ca.n_sites, 64);
    rng_init(&r, 1234);
    for (size_t i = 0; i < ca.n_params; i++)
        ca.params[i] = mc->std * rng_normal(&r);
    clip_adapters_set_training(&ca, false);
    for (size_t k = 0; k < ca.n_sites; k++) {
        mods[k].path = clip_site_name(&ca.sites[k], names[k], sizeof(names[k]));
        mods[k].adapter = &ca.adapters[k];
    }
    struct adapter_io_files files = { .dir = adir_s, .base_model = "clip_tiny" };
    rc = adapter_io_export(&files, &ca.method, mods, ca.n_sites);
    ck_assert_msg(rc == RL_OK, "%s", rl_error_msg());

    /* the adapted model's embeddings (factored path) */
    const float *px = clip_golden_get(&g, "pixels", GB * 3 * GIMG * GIMG), *gids = clip_golden_get(&g, "ids", GB * GCTX);
    for (size_t i = 0; i < GB * GCTX; i++)
        ids[i] = (int32_t)gids[i];
    struct clip_vision_run vr;
    struct clip_text_run tr;
    clip_vision_run_init(&vr, &m, GB, false);
    clip_text_run_init(&tr, &m, GB, 0, false);
    ck_assert_int_eq(clip_vision_forward(&vr, &m, &ca, px, GB, img_a), RL_OK);
    ck_assert_int_eq(clip_text_forward(&tr, &m, &ca, ids, GB, GCTX, txt_a), RL_OK);
    clip_vision_run_free(&vr);
    clip_text_run_free(&tr);
    /* the adapter changes both towers' outputs */
    ck_assert_msg(test_max_abs_diff(img_a, clip_golden_get(&g, "base.image_embeds", GB * GD), GB * GD) > 0.05,
                  "%s: the adapter does not change the image embeddings", tag);
    ck_assert_msg(test_max_abs_diff(txt_a, clip_golden_get(&g, "base.text_embeds", GB * GD), GB * GD) > 0.05,
                  "%s: the adapter does not change the text embeddings", tag);

    struct test_captured c = test_run_cmd(cmd_tmpdir, cmd_merge, "merge", "--model", cmd_fixdir, "--adapter", adir_s, "-o",
                                odir_s, NULL);
    ck_assert_msg(c.status == 0, "%s: exit %d: %s", tag, c.status, c.err);
    ck_assert_msg(strstr(c.out, "2 tokenizer/preprocessor files copied") != NULL, "%s", c.out);
    test_captured_free(&c);

    clip_load_dir(&merged, odir_s);
    clip_vision_run_init(&vr, &merged, GB, false);
    clip_text_run_init(&tr, &merged, GB, 0, false);
    ck_assert_int_eq(clip_vision_forward(&vr, &merged, NULL, px, GB, img_m), RL_OK);
    ck_assert_int_eq(clip_text_forward(&tr, &merged, NULL, ids, GB, GCTX, txt_m), RL_OK);
    clip_vision_run_free(&vr);
    clip_text_run_free(&tr);
    ck_assert_int_eq(tensor_compare("merged image_embeds", img_m, img_a, GB * GD, 1e-5, 0), 0);
    ck_assert_int_eq(tensor_compare("merged text_embeds", txt_m, txt_a, GB * GD, 1e-5, 0), 0);
    if (getenv("RANDLORA_TEST_VERBOSE"))
        printf("merge %s: max |merged - adapted| image %.3g text %.3g\n", tag,
               test_max_abs_diff(img_m, img_a, GB * GD), test_max_abs_diff(txt_m, txt_a, GB * GD));

    /* only the adapted weights changed */
    size_t changed = 0;
    for (size_t i = 0; i < m.n_tensors; i++) {
        const struct clip_tensor *t = &m.tensors[i];
        int diff = memcmp(m.params + t->offset, merged.params + t->offset,
                          t->numel * sizeof(float)) != 0;
        int adapted = 0;

        for (size_t k = 0; k < ca.n_sites; k++) {
            size_t nl = strlen(names[k]);

            adapted |= !strncmp(t->name, names[k], nl) && !strcmp(t->name + nl, ".weight");
        }
        ck_assert_msg(diff == adapted, "%s: tensor %s changed %d, adapted %d", tag, t->name, diff,
                      adapted);
        changed += (size_t)diff;
    }
    ck_assert_uint_eq(changed, ca.n_sites);

    /* the tokenizer files are copies */
    char p1[1200];
    snprintf(p1, sizeof p1, "%s/vocab.json", odir_s);
    char *a = test_slurp(p1, NULL), *b = test_slurp(cmd_fixture_file("vocab.json"), NULL);
    ck_assert_str_eq(a, b);
    free(a);
    free(b);

    clip_model_free(&merged);
    clip_adapters_free(&ca);
    clip_model_free(&m);
    golden_close(&g);
}

START_TEST(test_merge)
{
    static const struct merge_case cases[] = {
        { "lora", 2, 4.0f, 0.3f, "vision:0:q_proj;vision:1:fc2,v_proj;text:0:v_proj,fc1;"
                                 "text:1:out_proj,fc2" },
        { "vera", 4, 0.0f, 0.8f, "vision:k_proj,fc1;text:0:q_proj,fc2;text:1:out_proj" },
        { "randlora", 4, 3.0f, 0.25f, "vision:1:k_proj,fc2;text:mlp" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        merge_one(&cases[i], cases[i].method);

    /* -o the model directory itself */
    struct test_captured c = test_run_cmd(cmd_tmpdir, cmd_merge, "merge", "--model", cmd_fixdir, "--adapter",
                                tp("adapter_lora"), "-o", cmd_fixdir, NULL);
    test_assert_one_line_error(&c, "randlora merge: ", "model directory", "-o DIR");
    test_captured_free(&c);

    /* an adapter key naming a layer the model does not have */
    char dst[1200];
    float zeros[64] = { 0 };
    struct st_writer *w = st_writer_new();
    ck_assert_int_eq(mkdir(tp("adapter_bad"), 0777), 0);
    snprintf(dst, sizeof dst, "%s", tp("adapter_bad/adapter_config.json"));
    char *cfgtext = test_slurp(tp("adapter_lora/adapter_config.json"), NULL);
    test_write_text(dst, cfgtext);
    free(cfgtext);
    ck_assert_int_eq(st_writer_add(w, "base_model.model.vision_model.encoder.layers.7.self_attn."
                                      "q_proj.lora_A.weight", zeros, 2,
                                   (const int64_t[]){ 2, 32 }, ST_F32), RL_OK);
    ck_assert_int_eq(st_writer_write(w, tp("adapter_bad/adapter_model.safetensors")), RL_OK);
    st_writer_free(w);
    c = test_run_cmd(cmd_tmpdir, cmd_merge, "merge", "--model", cmd_fixdir, "--adapter", tp("adapter_bad"), "-o",
                tp("merged_bad"), NULL);
    test_assert_one_line_error(&c, "randlora merge: ", "layers.7.self_attn", "bad layer");
    test_captured_free(&c);
    ck_assert_int_ne(access(tp("merged_bad"), F_OK), 0);

    /* a missing adapter directory */
    c = test_run_cmd(cmd_tmpdir, cmd_merge, "merge", "--model", cmd_fixdir, "--adapter", tp("nosuch"), "-o",
                tp("merged_x"), NULL);
    test_assert_one_line_error(&c, "randlora merge: ", "nosuch", "missing adapter");
    test_captured_free(&c);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* hostile safetensors                                                       */

/* u64 header length, header (padded with spaces to 8 bytes unless raw_len
 * is given), then data_len bytes */
static void write_st(const char *path, const char *header, uint64_t claimed, size_t data_len)
{
    size_t hl = strlen(header), pad = (8 - hl % 8) % 8;
    uint64_t n = claimed ? claimed : (uint64_t)(hl + pad);
    size_t total = 8 + hl + pad + data_len;
    unsigned char *buf = xcalloc(total, 1);

    memcpy(buf, &n, 8);
    memcpy(buf + 8, header, hl);
    memset(buf + 8 + hl, ' ', pad);
    for (size_t i = 0; i < data_len; i++)
        buf[8 + hl + pad + i] = (unsigned char)(i * 7);
    test_write_file(path, buf, total);
    free(buf);
}

/* the fixture model's header with one tensor's entry replaced, as a whole
 * file: dtype/shape for `name` as given (nbytes of data for it) */
static void write_model_variant(const char *path, const char *name, const char *dtype,
                                const char *shape, size_t nbytes)
{
    struct clip_model m;
    size_t cap = 1 << 16, n = 0, off = 0;
    char *h = xmalloc(cap);

    clip_load_dir(&m, cmd_fixdir);
    n += (size_t)snprintf(h + n, cap - n, "{");
    for (size_t i = 0; i < m.n_tensors; i++) {
        const struct clip_tensor *t = &m.tensors[i];
        size_t nb = t->numel * 4;
        char shp[128];
        size_t k = (size_t)snprintf(shp, sizeof shp, "[");

        for (int d = 0; d < t->ndim; d++)
            k += (size_t)snprintf(shp + k, sizeof shp - k, "%s%lld", d ? "," : "",
                                  (long long)t->shape[d]);
        snprintf(shp + k, sizeof shp - k, "]");
        if (!strcmp(t->name, name))
            nb = nbytes;
        n += (size_t)snprintf(h + n, cap - n,
                              "%s\"%s\":{\"dtype\":\"%s\",\"shape\":%s,\"data_offsets\":[%zu,%zu]}",
                              i ? "," : "", t->name, strcmp(t->name, name) ? "F32" : dtype,
                              strcmp(t->name, name) ? shp : shape, off, off + nb);
        ck_assert_uint_lt(n, cap);
        off += nb;
    }
    snprintf(h + n, cap - n, "}");
    write_st(path, h, 0, off);
    free(h);
    clip_model_free(&m);
}

START_TEST(test_hostile)
{
    struct hostile {
        const char *name;
        const char *header;       /* NULL: built below        */
        uint64_t claimed;         /* 0: the header's length    */
        size_t data;
        const char *want;         /* in the message            */
        int info_ok;              /* info FILE accepts it      */
    };
    static const struct hostile cases[] = {
        { "truncated", NULL, 0, 0, NULL, 0 },
        { "header_too_large", "{}", 200000000u, 0, "header", 0 },
        { "header_past_end", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
          4096, 4, NULL, 0 },
        { "offsets_out_of_bounds",
          "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 0, 4, NULL, 0 },
        { "offsets_overlap",
          "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
          "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 0, 12, NULL, 0 },
        { "offsets_gap",
          "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
          "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 0, 12, NULL, 0 },
        { "offsets_reversed",
          "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}}", 0, 8, NULL, 0 },
        { "dtype_unknown", "{\"a\":{\"dtype\":\"F33\",\"shape\":[2],\"data_offsets\":[0,8]}}",
          0, 8, "F33", 0 },
        { "dtype_not_string", "{\"a\":{\"dtype\":5,\"shape\":[2],\"data_offsets\":[0,8]}}",
          0, 8, "dtype", 0 },
        { "shape_size_mismatch",
          "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 0, 8, NULL, 0 },
        { "shape_negative",
          "{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 0, 8, NULL, 0 },
        { "shape_overflow",
          "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],"
          "\"data_offsets\":[0,8]}}", 0, 8, NULL, 0 },
        { "not_json", "abcdefgh", 0, 0, NULL, 0 },
        { "not_object", "[1,2,3]", 0, 0, NULL, 0 },
        { "duplicate", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
          "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 0, 8, NULL, 0 },
        { "short", NULL, 0, 0, NULL, 0 },
        /* whole-model variants: valid files a model cannot load */
        { "model_misshaped", NULL, 0, 0, "visual_projection.weight", 1 },
        { "model_f8", NULL, 0, 0, "logit_scale", 1 },
    };
    const char *caps = tp("caps.txt");

    test_write_text(caps, "a photo of a cat.\n");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct hostile *h = &cases[i];
        const char *dir = cmd_model_dir(h->name, 1);
        char file[1200];
        struct test_captured c;

        snprintf(file, sizeof file, "%s/model.safetensors", dir);
        if (!strcmp(h->name, "truncated")) {
            size_t len;
            char *all = test_slurp(cmd_fixture_file("model.safetensors"), &len);

            test_write_file(file, all, len / 2);
            free(all);
        } else if (!strcmp(h->name, "short")) {
            test_write_file(file, "\x10\0\0", 3);
        } else if (!strcmp(h->name, "model_misshaped")) {
            write_model_variant(file, "visual_projection.weight", "F32", "[16,31]", 16 * 31 * 4);
        } else if (!strcmp(h->name, "model_f8")) {
            write_model_variant(file, "logit_scale", "F8_E4M3", "[]", 1);
        } else {
            write_st(file, h->header, h->claimed, h->data);
        }

        c = test_run_cmd(cmd_tmpdir, cmd_info, "info", file, NULL);
        if (h->info_ok) {
            ck_assert_msg(c.status == 0, "%s: info exit %d: %s", h->name, c.status, c.err);
            test_captured_free(&c);
            /* the directory view checks the weights against the config */
            c = test_run_cmd(cmd_tmpdir, cmd_info, "info", dir, NULL);
        }
        test_assert_one_line_error(&c, "randlora info: ", h->want ? h->want : "model.safetensors",
                              h->name);
        ck_assert_ptr_nonnull(strstr(c.err, "model.safetensors"));
        test_captured_free(&c);

        c = test_run_cmd(cmd_tmpdir, cmd_encode, "encode", "--model", dir, "--text", caps, "-o", tp("h.h5"), NULL);
        test_assert_one_line_error(&c, "randlora encode: ", h->want ? h->want : "model.safetensors",
                              h->name);
        test_captured_free(&c);
        c = test_run_cmd(cmd_tmpdir, cmd_encode, "encode", "--model", dir, "--images", "shapes", "-o", tp("h.h5"),
                    "--limit", "2", NULL);
        test_assert_one_line_error(&c, "randlora encode: ", h->want ? h->want : "model.safetensors",
                              h->name);
        test_captured_free(&c);
        ck_assert_int_ne(access(tp("h.h5"), F_OK), 0);
    }
    assert_no_temp_files();
}
END_TEST

/* ------------------------------------------------------------------------ */
/* usage                                                                     */

START_TEST(test_usage)
{
    static const char *const cases[][10] = {
        { "encode", NULL },
        { "encode", "--model", NULL },
        { "encode", "--model", "x", "-o", "y.h5", NULL },
        { "encode", "--model", "x", "--text", "a", "--images", "b", "-o", "y.h5" },
        { "encode", "--model", "x", "--text", "a", NULL },
        { "encode", "--model", "x", "--text", "a", "-o", "y", "--batch" },
        { "encode", "--bogus", "1", NULL },
        { "merge", "--model", "x", NULL },
        { "merge", "--model", "x", "--adapter", "y", "-o", "z", "--dtype" },
        { "merge", "--wat", "x", NULL },
        { "info", NULL },
        { "info", "a", "b", NULL },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *const *a = cases[i];
        int (*fn)(int, char **) = !strcmp(a[0], "encode") ? cmd_encode
                                  : !strcmp(a[0], "merge") ? cmd_merge : cmd_info;
        char prefix[32];
        struct test_captured c;

        c = test_run_cmd(cmd_tmpdir, fn, a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], NULL);
        snprintf(prefix, sizeof prefix, "randlora %s: ", a[0]);
        test_assert_one_line_error(&c, prefix, NULL, a[0]);
        test_captured_free(&c);
    }
    struct test_captured c = test_run_cmd(cmd_tmpdir, cmd_encode, "encode", "--model", "x", "--text", "a", "-o", "y",
                                "--batch", "0", NULL);
    test_assert_one_line_error(&c, "randlora encode: ", "--batch", "batch 0");
    test_captured_free(&c);
    c = test_run_cmd(cmd_tmpdir, cmd_merge, "merge", "--model", "x", "--adapter", "y", "-o", "z", "--dtype", "I64",
                NULL);
    test_assert_one_line_error(&c, "randlora merge: ", "--dtype", "dtype I64");
    test_captured_free(&c);
    c = test_run_cmd(cmd_tmpdir, cmd_encode, "encode", "--help", NULL);
    ck_assert_int_eq(c.status, 0);
    ck_assert_ptr_nonnull(strstr(c.out, "usage: randlora encode"));
    test_captured_free(&c);
    c = test_run_cmd(cmd_tmpdir, cmd_merge, "merge", "--help", NULL);
    ck_assert_int_eq(c.status, 0);
    ck_assert_ptr_nonnull(strstr(c.out, "usage: randlora merge"));
    test_captured_free(&c);
}
END_TEST

Suite *suite_model_cmds(void)
{
    Suite *s = suite_create("model_cmds");
    TCase *tc = tcase_create("model_cmds");

    tcase_add_checked_fixture(tc, cmd_tmp_setup, cmd_tmp_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_info);
    tcase_add_test(tc, test_merge);
    tcase_add_test(tc, test_hostile);
    tcase_add_test(tc, test_usage);
    suite_add_tcase(s, tc);
    return s;
}
