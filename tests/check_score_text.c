/*
 * check_score_text.c: `randlora score --text FILE` through the model
 * directory's tokenizer.json:
 *   - the file equals `score --ids` on the ids the tokenizer gives for the
 *     same lines (the GPT-2 and Llama 3 fixtures, the latter with its
 *     <|begin_of_text|>), so the text path adds only the encoding;
 *   - refusals: a preset (no tokenizer.json), a directory without one, a
 *     tokenizer whose ids exceed the model's vocabulary, an empty line.
 */
#include <hdf5.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "core/status.h"
#include "formats/safetensors.h"
#include "models/bpe_tokenizer.h"
#include "models/llama.h"
#include "suites.h"
#include "test_cmd.h"
#include "test_util.h"

static char dir[256];

static void setup(void)
{
    ck_assert_ptr_nonnull(test_tmpdir_make(dir, sizeof(dir), "score_text"));
}

static void teardown(void)
{
    test_tmpdir_remove(dir);
}

/* model dir `name` under dir: llama-tiny's shapes with vocab V, random
 * weights, and tokenizer fixture bpe/<tok>.json as its tokenizer.json */
static const char *make_model(const char *name, size_t V, const char *tok)
{
    static char path[PATH_MAX];
    struct llama_config c;
    struct llama_model m;
    char *json;
    size_t n;

    snprintf(path, sizeof(path), "%s", test_path(dir, "%s", name));
    ck_assert_int_eq(llama_config_preset(&c, "llama-tiny"), RL_OK);
    c.vocab_size = V;
    c.hidden = 32;
    c.intermediate = 64;
    c.layers = 2;
    c.head_dim = 8;
    c.bos_token_id = -1;
    c.n_eos = 0;
    ck_assert_int_eq(llama_model_init(&m, &c), RL_OK);
    llama_model_init_random(&m, 5);
    ck_assert_int_eq(llama_model_save(&m, path, ST_F32, 1), RL_OK);
    llama_model_free(&m);
    if (tok) {
        char rel[64];

        snprintf(rel, sizeof(rel), "bpe/%s.json", tok);
        json = test_slurp(fixture_path(rel), &n);
        ck_assert_ptr_nonnull(json);
        test_write_file(test_path(path, "tokenizer.json"), json, n);
        free(json);
    }
    return path;
}

/* a whole 1- or 2-D dataset as memtype (elem bytes each); element count out */
static void *read_dataset(const char *file, const char *name, hid_t memtype, size_t elem,
                          size_t *count)
{
    hid_t f = H5Fopen(file, H5F_ACC_RDONLY, H5P_DEFAULT), d, s;
    hsize_t dims[2] = { 1, 1 };
    void *buf;

    ck_assert_int_ge(f, 0);
    d = H5Dopen2(f, name, H5P_DEFAULT);
    ck_assert_int_ge(d, 0);
    s = H5Dget_space(d);
    H5Sget_simple_extent_dims(s, dims, NULL);
    *count = (size_t)(dims[0] * (H5Sget_simple_extent_ndims(s) == 2 ? dims[1] : 1));
    buf = malloc(*count * elem + 1);
    ck_assert_int_ge(H5Dread(d, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf), 0);
    H5Sclose(s);
    H5Dclose(d);
    H5Fclose(f);
    return buf;
}

static void assert_same_dataset(const char *a, const char *b, const char *name, hid_t t,
                                size_t elem)
{
    size_t na, nb;
    void *x = read_dataset(a, name, t, elem, &na), *y = read_dataset(b, name, t, elem, &nb);

    ck_assert_uint_eq(na, nb);
    ck_assert_msg(memcmp(x, y, na * elem) == 0, "%s differs between --text and --ids", name);
    free(x);
    free(y);
}

static const char *const lines[] = { "Hello world", "the answer is true",
                                     "Below is an instruction.", " x" };

START_TEST(test_text_equals_ids)
{
    static const char *const toks[] = { "gpt2", "llama3" };
    const char *model = make_model(toks[_i], 720, toks[_i]);
    char mdir[PATH_MAX], text[1024] = "", ids[4096] = "", a[PATH_MAX], b[PATH_MAX];
    struct bpe_tokenizer *tok;
    struct test_captured c;

    snprintf(mdir, sizeof(mdir), "%s", model);
    ck_assert_int_eq(bpe_tokenizer_load(&tok, test_path(mdir, "tokenizer.json")), RL_OK);
    for (size_t i = 0; i < sizeof(lines) / sizeof(*lines); i++) {
        int32_t *v = NULL;
        size_t n = 0;

        strcat(text, lines[i]);
        strcat(text, "\n");
        ck_assert_int_eq(bpe_encode(tok, lines[i], strlen(lines[i]), true, &v, &n), RL_OK);
        ck_assert_uint_gt(n, 0);
        if (_i == 1)
            ck_assert_int_eq(v[0], bpe_bos_id(tok));
        for (size_t k = 0; k < n; k++)
            snprintf(ids + strlen(ids), sizeof(ids) - strlen(ids), "%d ", (int)v[k]);
        strcat(ids, "\n");
        free(v);
    }
    bpe_tokenizer_free(tok);
    test_write_text(test_path(dir, "t.txt"), text);
    test_write_text(test_path(dir, "i.txt"), ids);
    snprintf(a, sizeof(a), "%s", test_path(dir, "text.h5"));
    snprintf(b, sizeof(b), "%s", test_path(dir, "ids.h5"));
    c = test_run_cmd(dir, cmd_score, "score", "--model", mdir, "--text",
                     test_path(dir, "t.txt"), "-o", a, "--batch", "3", NULL);
    ck_assert_msg(c.status == 0, "%s", c.err);
    test_captured_free(&c);
    c = test_run_cmd(dir, cmd_score, "score", "--model", mdir, "--ids", test_path(dir, "i.txt"),
                     "-o", b, "--batch", "3", NULL);
    ck_assert_msg(c.status == 0, "%s", c.err);
    test_captured_free(&c);
    assert_same_dataset(a, b, "/ids", H5T_NATIVE_INT32, 4);
    assert_same_dataset(a, b, "/token_logprob", H5T_NATIVE_FLOAT, 4);
    assert_same_dataset(a, b, "/logprob", H5T_NATIVE_DOUBLE, 8);
    {
        size_t n;
        int32_t *got = read_dataset(a, "/ids", H5T_NATIVE_INT32, 4, &n);

        ck_assert_uint_eq(n % 4, 0);
        ck_assert_int_ne(got[0], -1);
        free(got);
    }
}
END_TEST

static void expect_text_refusal(const char *model, const char *text, const char *want)
{
    char m[PATH_MAX];
    struct test_captured c;

    snprintf(m, sizeof(m), "%s", model);
    test_write_text(test_path(dir, "r.txt"), text);
    c = test_run_cmd(dir, cmd_score, "score", "--model", m, "--text", test_path(dir, "r.txt"),
                     "-o", test_path(dir, "r.h5"), NULL);
    test_assert_one_line_error(&c, "randlora score: ", want, text);
    test_captured_free(&c);
    ck_assert_int_eq(access(test_path(dir, "r.h5"), F_OK), -1);
}

START_TEST(test_text_refusals)
{
    expect_text_refusal("llama-tiny", "hello\n", "has no tokenizer.json");
    expect_text_refusal(make_model("none", 720, NULL), "hello\n", "tokenizer.json");
    expect_text_refusal(make_model("small", 100, "gpt2"), "Hello world\n",
                        "outside the model's vocabulary");
    expect_text_refusal(make_model("ok", 720, "gpt2"), "Hello\n\nworld\n",
                        "line 2 encodes to no tokens");
}
END_TEST

Suite *suite_score_text(void)
{
    Suite *s = suite_create("score_text");
    TCase *tc = tcase_create("score_text");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_text_equals_ids, 0, 2);
    tcase_add_test(tc, test_text_refusals);
    suite_add_tcase(s, tc);
    return s;
}
