/*
 * check_adapter_io_layout.c: the layouts of the shared tensors an import
 * accepts (methods/adapter_io_shared.c), on files the real peft wrote
 * (tests/ref/make_peft_layout_fixture.py, peft 0.21.2):
 *   - randlora_peft: the bases at the model level and copied under every
 *     targeted module, as peft's save_pretrained writes them: imported, the
 *     adapters compute what peft's own forward computed (expected.safetensors);
 *   - randlora_per_module: the copies alone (the model-level pair removed):
 *     the same;
 *   - randlora_disagree: one copy changed in one element: refused, naming
 *     both keys and the element;
 * and the message for each kind of key an import cannot place (a tensor the
 * method does not have under a module given, a module not given, a shared
 * tensor of another method, a key outside peft's layout), which used to be
 * "belongs to no module given" for all of them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/status.h"
#include "formats/safetensors.h"
#include "methods/adapter.h"
#include "methods/adapter_io.h"
#include "adapter_io_harness.h"
#include "suites.h"
#include "test_util.h"

#define LAYOUT_HINT "python3 tests/ref/make_peft_layout_fixture.py"

/* the three fixture layers built from the directory's config */
static int import_dir(const char *dir, struct io_model *md, struct adapter_io_info *info)
{
    struct adapter_io_files files = { .dir = dir };
    int rc = adapter_io_read_config(&files, info);

    ck_assert_msg(rc == RL_OK, "%s (regenerate with %s)", rl_error_msg(), LAYOUT_HINT);
    ck_assert_str_eq(info->cfg.method, "randlora");
    ck_assert_int_eq(adapter_method_init(&md->m, &info->cfg, 48, 48, N_ROWS), RL_OK);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(adapter_init(&md->a[i], &md->m, aio_fixture_dims[i][0], aio_fixture_dims[i][1], NULL, NULL), RL_OK);
        adapter_set_training(&md->a[i], false);
        md->mods[i].path = io_layer_paths[i];
        md->mods[i].adapter = &md->a[i];
    }
    return adapter_io_import(&files, &md->m, md->mods, 3);
}

START_TEST(test_peft_layouts_import)
{
    static const char *const dirs[] = { "randlora_peft", "randlora_per_module" };
    char dir[256];
    struct io_model md;
    struct adapter_io_info info;
    int rc;

    snprintf(dir, sizeof dir, "%s/%s", fixture_path("adapter_io"), dirs[_i]);
    memset(&md, 0, sizeof md);
    rc = import_dir(dir, &md, &info);
    ck_assert_msg(rc == RL_OK, "%s: %s", dirs[_i], rl_error_msg());
    /* peft computed in float64 from randlora_alpha 640 (scaling 160):
     * float32 here, 1e-4 relative */
    aio_check_expected(dir, &md, 1e-4);
    io_model_free(&md);
    adapter_io_info_free(&info);
}
END_TEST

START_TEST(test_copies_must_agree)
{
    char dir[256];
    struct io_model md;
    struct adapter_io_info info;

    snprintf(dir, sizeof dir, "%s/randlora_disagree", fixture_path("adapter_io"));
    memset(&md, 0, sizeof md);
    ck_assert_int_eq(import_dir(dir, &md, &info), RL_ERR_FORMAT);
    ck_assert_msg(strstr(rl_error_msg(), "base_model.model.text_model.encoder.layers.0.mlp.fc1.randlora_B' differs "
                                          "from 'base_model.randlora_B' at element 5") != NULL,
                  "%s", rl_error_msg());
    ck_assert_ptr_null(strstr(rl_error_msg(), "belongs to no module"));
    io_model_free(&md);
    adapter_io_info_free(&info);
}
END_TEST

/* the exported LoRA adapter's weights file again, with one more tensor */
static void add_key(const char *weights, const char *key)
{
    struct st_file *f;
    struct st_writer *w = st_writer_new();
    float **data;
    float extra[16] = { 0.5f };
    size_t n;

    ck_assert_int_eq(st_open(&f, weights), RL_OK);
    n = st_count(f);
    data = xcalloc(n, sizeof(*data));
    for (size_t i = 0; i < n; i++) {
        const struct st_info *t = st_info_at(f, i);

        data[i] = xmalloc_array(t->numel, sizeof(float));
        ck_assert_int_eq(st_read_f32(f, t, data[i]), RL_OK);
        ck_assert_int_eq(st_writer_add(w, t->name, data[i], t->ndim, t->shape, ST_F32), RL_OK);
    }
    for (size_t i = 0; i < st_metadata_count(f); i++) {
        const char *k, *v;

        st_metadata_at(f, i, &k, &v);
        ck_assert_int_eq(st_writer_set_metadata(w, k, v), RL_OK);
    }
    ck_assert_int_eq(st_writer_add(w, key, extra, 1, (const int64_t[]){ 16 }, ST_F32), RL_OK);
    st_close(f);
    ck_assert_int_eq(st_writer_write(w, weights), RL_OK);
    st_writer_free(w);
    for (size_t i = 0; i < n; i++)
        free(data[i]);
    free(data);
}

START_TEST(test_unplaced_key_messages)
{
    static const struct {
        const char *key, *want;
    } cases[] = {
        { "base_model.model." Q_PROJ ".lora_C.weight",
          "a lora adapter has no tensor 'lora_C.weight' under module '" Q_PROJ "' (it has lora_A.weight, "
          "lora_B.weight)" },
        { "base_model.model." Q_PROJ ".randlora_A", "a lora adapter has no tensor 'randlora_A'" },
        { "base_model.model.text_model.encoder.layers.1.self_attn.q_proj.lora_A.weight",
          "names a module that is not among the 3 adapted here" },
        { "base_model.vera_A", "is not a shared tensor of a lora adapter (its shared tensors: none)" },
        { "lora_A.weight", "is not in peft's layout" },
    };
    struct adapter_cfg cfg;
    struct io_model src, dst;
    struct adapter_io_files files;
    char weights[300], cmd[400];

    aio_make_tmpdir();
    files = aio_dir_files();
    adapter_cfg_defaults(&cfg, "lora", 4);
    io_model_init(&src, &cfg);
    io_model_randomize(&src, 5);
    io_model_init(&dst, &cfg);
    snprintf(weights, sizeof weights, "%s", aio_tmp_path(ADAPTER_IO_WEIGHTS_NAME));
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        ck_assert_int_eq(adapter_io_export(&files, &src.m, src.mods, N_LAYERS), RL_OK);
        add_key(weights, cases[c].key);
        ck_assert_int_eq(adapter_io_import(&files, &dst.m, dst.mods, N_LAYERS), RL_ERR_FORMAT);
        ck_assert_msg(strstr(rl_error_msg(), cases[c].want) != NULL, "case %zu: %s", c, rl_error_msg());
        ck_assert_ptr_nonnull(strstr(rl_error_msg(), weights));
    }
    io_model_free(&src);
    io_model_free(&dst);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", aio_tmpdir);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

Suite *suite_adapter_io_layout(void)
{
    Suite *s = suite_create("adapter_io_layout");
    TCase *tc = tcase_create("adapter_io_layout");

    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_peft_layouts_import, 0, 2);
    tcase_add_test(tc, test_copies_must_agree);
    tcase_add_test(tc, test_unplaced_key_messages);
    suite_add_tcase(s, tc);
    return s;
}
