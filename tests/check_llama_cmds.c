/*
 * check_llama_cmds.c: `randlora score` (cli/cmd_score.c) on the decoder
 * fixtures, run in-process:
 *
 *   - the golden test: every line's per-token log-probabilities and their
 *     sum equal the PyTorch reference (tests/ref/llama_golden.py) to 1e-5
 *     relative, for the Llama (GQA, untied, F32), Llama BF16 and Qwen2
 *     (biases, tied, sharded) checkpoints; /ids padded with -1 and the
 *     log-probabilities with NaN past each line; the batch size changes
 *     nothing;
 *   - a preset (llama-tiny) scores, the same for the same seed;
 *   - hostile input, each one line on stderr and exit status 2: the ids
 *     file (not a number, an empty line, an id outside the vocabulary, a
 *     line too long), config.json keys, missing and mis-shaped tensors,
 *     the index file (not JSON, a tensor it does not map, a path outside
 *     the directory, a shard that is not there), --text on a preset;
 *   - --text through the directory's tokenizer.json (Llama 3's and Qwen2's
 *     fixtures) equals --ids on bpe_encode's ids; an empty text, ids past
 *     the model's vocabulary refused;
 *     no temporary output is left behind;
 *   - `randlora info` on decoder directories (the summary, the headers
 *     checked, a mis-shaped tensor named);
 *   - `randlora bench` on a decoder preset (its JSON line, a refusal).
 */
#include <hdf5.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/commands.h"
#include "core/status.h"
#include "formats/safetensors.h"
#include "golden.h"
#include "models/bpe_tokenizer.h"
#include "models/llama.h"
#include "suites.h"
#include "test_cmd.h"
#include "test_util.h"

#define GOLDEN_HINT "/usr/bin/python3 tests/ref/llama_golden.py"

static char dir[256];

static void setup(void)
{
    ck_assert_ptr_nonnull(test_tmpdir_make(dir, sizeof(dir), "llama_cmds"));
}

static void teardown(void)
{
    test_tmpdir_remove(dir);
}

/* the absolute path of fixture llama/<name> */
static const char *fixture_abs(const char *name)
{
    static char buf[4][PATH_MAX];
    static int k;
    char rel[256];

    snprintf(rel, sizeof(rel), "llama/%s", name);
    k = (k + 1) % 4;
    ck_assert_ptr_nonnull(realpath(fixture_path(rel), buf[k]));
    return buf[k];
}

/* a whole dataset read as memtype into a new buffer; dims out */
static void *h5_read_all(const char *path, const char *name, hid_t memtype, size_t elem,
                         size_t *rows, size_t *cols)
{
    hsize_t dims[2] = { 0, 1 };
    hid_t f, d, s;
    int rank;
    void *buf;

    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert_msg(f >= 0, "%s: cannot open", path);
    d = H5Dopen2(f, name, H5P_DEFAULT);
    ck_assert_msg(d >= 0, "%s: no dataset %s", path, name);
    s = H5Dget_space(d);
    rank = H5Sget_simple_extent_ndims(s);
    ck_assert(rank == 1 || rank == 2);
    H5Sget_simple_extent_dims(s, dims, NULL);
    *rows = dims[0];
    *cols = rank == 2 ? dims[1] : 0;
    buf = malloc((dims[0] * (rank == 2 ? dims[1] : 1) + 1) * elem);
    ck_assert(H5Dread(d, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0);
    H5Sclose(s);
    H5Dclose(d);
    H5Fclose(f);
    return buf;
}

static struct test_captured score(const char *model, const char *ids, const char *out,
                                  const char *batch)
{
    return test_run_cmd(dir, cmd_score, "score", "--model", model, "--ids", ids, "-o", out,
                        "--batch", batch, NULL);
}

/* /token_logprob, /logprob and /ids of out against the golden of tag */
static void check_against_golden(const char *out, const char *tag)
{
    struct golden g;
    char name[128];
    size_t N, T, W, n1, c1, n2, c2;
    float *tok;
    double *sum;
    int32_t *ids;

    ck_assert_msg(golden_open(&g, fixture_path("llama/golden.bin"), GOLDEN_HINT) == RL_OK,
                  "%s", rl_error_msg());
    snprintf(name, sizeof(name), "%s.ids", tag);
    const struct golden_tensor *gi = golden_find(&g, name);
    snprintf(name, sizeof(name), "%s.token_logprob", tag);
    const struct golden_tensor *gt = golden_find(&g, name);
    ck_assert(gi && gt);
    N = gi->dims[0];
    T = gi->dims[1];
    tok = h5_read_all(out, "/token_logprob", H5T_NATIVE_FLOAT, 4, &n1, &W);
    sum = h5_read_all(out, "/logprob", H5T_NATIVE_DOUBLE, 8, &n2, &c2);
    ids = h5_read_all(out, "/ids", H5T_NATIVE_INT32, 4, &n2, &c1);
    ck_assert_uint_eq(n1, N);
    ck_assert_uint_eq(W, T - 1);
    ck_assert_uint_eq(c1, T);
    for (size_t i = 0; i < N; i++) {
        double want_sum = 0.0;
        size_t len = 0;

        for (size_t t = 0; t < T; t++) {
            ck_assert_int_eq(ids[i * T + t], (int)gi->data[i * T + t]);
            len += gi->data[i * T + t] >= 0;
        }
        for (size_t t = 0; t + 1 < T; t++) {
            const float got = tok[i * W + t], want = gt->data[i * W + t];

            if (t + 1 < len) {
                ck_assert_msg(fabsf(got - want) <= 1e-5f * fabsf(want) + 1e-6f,
                              "%s line %zu token %zu: %.9g, torch %.9g", tag, i, t, got, want);
                want_sum += want;
            } else {
                ck_assert_msg(isnan(got), "%s line %zu token %zu: %g past the line", tag, i,
                              t, got);
            }
        }
        ck_assert_msg(fabs(sum[i] - want_sum) <= 1e-5 * fabs(want_sum) + 1e-6,
                      "%s line %zu: sum %.9g, torch %.9g", tag, i, sum[i], want_sum);
    }
    free(tok);
    free(sum);
    free(ids);
    golden_close(&g);
}

/* _i: 0 llama, 1 llama_bf16, 2 qwen2; batches of 8 and of 2 */
START_TEST(test_score_golden)
{
    static const char *const tags[] = { "llama", "llama_bf16", "qwen2" };
    struct test_captured c;
    char out[PATH_MAX];

    for (int b = 0; b < 2; b++) {
        snprintf(out, sizeof(out), "%s/%s_%d.h5", dir, tags[_i], b);
        c = score(fixture_abs(tags[_i]), fixture_abs("ids.txt"), out, b ? "2" : "8");
        ck_assert_msg(c.status == 0, "score: %s", c.err);
        ck_assert(strstr(c.out, "wrote ") != NULL);
        test_captured_free(&c);
        check_against_golden(out, tags[_i]);
    }
}
END_TEST

START_TEST(test_score_preset)
{
    struct test_captured c;
    char *a, *b;
    size_t na, nb;

    test_write_text(test_path(dir, "ids.txt"), "256 72 101 108 108 111 257\n256 10\n");
    c = test_run_cmd(dir, cmd_score, "score", "--model", "llama-tiny", "--ids",
                     test_path(dir, "ids.txt"), "-o", test_path(dir, "a.h5"), "--seed", "3",
                     NULL);
    ck_assert_msg(c.status == 0, "%s", c.err);
    test_captured_free(&c);
    c = test_run_cmd(dir, cmd_score, "score", "--model", "llama-tiny", "--ids",
                     test_path(dir, "ids.txt"), "-o", test_path(dir, "b.h5"), "--seed", "3",
                     NULL);
    ck_assert_msg(c.status == 0, "%s", c.err);
    test_captured_free(&c);
    {
        size_t r, w;
        float *x = h5_read_all(test_path(dir, "a.h5"), "/token_logprob", H5T_NATIVE_FLOAT, 4,
                               &r, &w);
        float *y = h5_read_all(test_path(dir, "b.h5"), "/token_logprob", H5T_NATIVE_FLOAT, 4,
                               &r, &w);

        ck_assert_uint_eq(r, 2);
        ck_assert_uint_eq(w, 6);
        ck_assert_int_eq(memcmp(x, y, r * w * sizeof(float)), 0);
        /* a random model: log-probabilities near log(1/258) */
        ck_assert(x[0] < -4.0f && x[0] > -7.0f);
        free(x);
        free(y);
    }
    a = test_slurp(test_path(dir, "a.h5"), &na);
    b = test_slurp(test_path(dir, "b.h5"), &nb);
    ck_assert_uint_eq(na, nb);
    free(a);
    free(b);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* hostile input                                                             */

static void expect_refusal(const char *model_arg, const char *ids_arg, const char *want,
                           const char *what)
{
    char model[PATH_MAX], ids[PATH_MAX], out[PATH_MAX];
    struct test_captured c;

    /* test_path's buffers rotate: copy before making more paths */
    snprintf(model, sizeof(model), "%s", model_arg);
    snprintf(ids, sizeof(ids), "%s", ids_arg);
    snprintf(out, sizeof(out), "%s", test_path(dir, "x.h5"));
    c = score(model, ids, out, "4");

    test_assert_one_line_error(&c, "randlora score: ", want, what);
    test_captured_free(&c);
    ck_assert_int_eq(access(test_path(dir, "x.h5"), F_OK), -1);
}

START_TEST(test_score_bad_ids)
{
    static const struct { const char *text, *want; } cases[] = {
        { "1 2 x\n", "line 1: expected whitespace-separated token ids" },
        { "1 2\n\n3\n", "line 2 is empty" },
        { "1 2 61\n", "id 61 is outside the model's vocabulary (0..60)" },
        { "-1\n", "line 1: expected" },
        { "", "no lines to score" },
        { "99999999999999999\n", "line 1" },
    };
    char text[512];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        test_write_text(test_path(dir, "bad.txt"), cases[i].text);
        expect_refusal(fixture_abs("llama"), test_path(dir, "bad.txt"), cases[i].want,
                       cases[i].text);
    }
    /* 65 ids: past max_position_embeddings 64 */
    text[0] = 0;
    for (int i = 0; i < 65; i++)
        strcat(text, "1 ");
    strcat(text, "\n");
    test_write_text(test_path(dir, "long.txt"), text);
    expect_refusal(fixture_abs("llama"), test_path(dir, "long.txt"), "more than 64 ids",
                   "a long line");
}
END_TEST

/* a model directory NAME in dir: config.json from the llama fixture with
 * `from` replaced by `to` (NULL: unchanged), and the fixture's weights */
static const char *model_with_config(const char *name, const char *from, const char *to)
{
    const char *md = test_path(dir, "%s", name);
    char *cfg = test_slurp(fixture_path("llama/llama/config.json"), NULL), *hit, *out;
    char mdcopy[PATH_MAX];

    snprintf(mdcopy, sizeof(mdcopy), "%s", md);
    ck_assert_int_eq(mkdir(mdcopy, 0777), 0);
    if (from) {
        hit = strstr(cfg, from);
        ck_assert_msg(hit != NULL, "'%s' not in the fixture config", from);
        out = malloc(strlen(cfg) + strlen(to) + 1);
        memcpy(out, cfg, (size_t)(hit - cfg));
        strcpy(out + (hit - cfg), to);
        strcat(out, hit + strlen(from));
        free(cfg);
        cfg = out;
    }
    test_write_text(test_path(mdcopy, "config.json"), cfg);
    free(cfg);
    ck_assert_int_eq(symlink(test_path(fixture_abs("llama"), "model.safetensors"),
                             test_path(mdcopy, "model.safetensors")), 0);
    return test_path(dir, "%s", name);
}

START_TEST(test_score_bad_config)
{
    static const struct { const char *from, *to, *want; } cases[] = {
        { "\"hidden_size\": 32,", "", "key 'hidden_size' is missing" },
        { "\"num_key_value_heads\": 2", "\"num_key_value_heads\": 3",
          "num_key_value_heads = 3 does not divide num_attention_heads 4" },
        { "\"hidden_act\": \"silu\"", "\"hidden_act\": \"gelu\"", "only \"silu\"" },
        { "\"rope_type\": \"llama3\"", "\"rope_type\": \"yarn\"", "yarn is not supported" },
        { "\"LlamaForCausalLM\"", "\"MistralForCausalLM\"", "expected LlamaForCausalLM or" },
        { "\"head_dim\": 12", "\"head_dim\": 7", "head_dim = 7" },
        { "\"vocab_size\": 61", "\"vocab_size\": -61", "key 'vocab_size'" },
        { "\"rms_norm_eps\": 1e-05", "\"rms_norm_eps\": \"small\"", "key 'rms_norm_eps'" },
        { "\"tie_word_embeddings\": false", "\"tie_word_embeddings\": 0",
          "key 'tie_word_embeddings': expected true or false" },
        { "{", "[", "not valid JSON" },
        /* the config agrees with itself but not with the weights */
        { "\"intermediate_size\": 40", "\"intermediate_size\": 41", "expected [41, 32]" },
        { "\"attention_bias\": false", "\"attention_bias\": true",
          "'model.layers.0.self_attn.q_proj.bias'" },
    };
    char name[32];

    test_write_text(test_path(dir, "ids.txt"), "1 2 3\n");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(name, sizeof(name), "m%zu", i);
        expect_refusal(model_with_config(name, cases[i].from, cases[i].to),
                       test_path(dir, "ids.txt"), cases[i].want, cases[i].want);
    }
    expect_refusal(test_path(dir, "nowhere"), test_path(dir, "ids.txt"), NULL, "no model");
}
END_TEST

/* the qwen2 fixture's shards with another index file */
static const char *model_with_index(const char *name, const char *index, bool shard2)
{
    char md[PATH_MAX];
    const char *q = fixture_abs("qwen2");

    snprintf(md, sizeof(md), "%s/%s", dir, name);
    ck_assert_int_eq(mkdir(md, 0777), 0);
    ck_assert_int_eq(symlink(test_path(q, "config.json"), test_path(md, "config.json")), 0);
    ck_assert_int_eq(symlink(test_path(q, "model-00001-of-00002.safetensors"),
                             test_path(md, "model-00001-of-00002.safetensors")), 0);
    if (shard2)
        ck_assert_int_eq(symlink(test_path(q, "model-00002-of-00002.safetensors"),
                                 test_path(md, "model-00002-of-00002.safetensors")), 0);
    test_write_text(test_path(md, "model.safetensors.index.json"), index);
    return test_path(dir, "%s", name);
}

START_TEST(test_score_bad_index)
{
    char *good = test_slurp(fixture_path("llama/qwen2/model.safetensors.index.json"), NULL);
    char *dropped = strdup(good), *p;

    test_write_text(test_path(dir, "ids.txt"), "1 2 3\n");
    /* the real index, without its second shard file */
    expect_refusal(model_with_index("noshard", good, false), test_path(dir, "ids.txt"),
                   "names shard 'model-00002-of-00002.safetensors', which is not in",
                   "a missing shard");
    expect_refusal(model_with_index("notjson", "{\"weight_map\": ", true),
                   test_path(dir, "ids.txt"), "expected a JSON object", "not JSON");
    expect_refusal(model_with_index("nomap", "{\"metadata\": {}}", true),
                   test_path(dir, "ids.txt"), "'weight_map' missing", "no weight_map");
    expect_refusal(model_with_index("escape", "{\"weight_map\": {\"model.norm.weight\": "
                                    "\"../x.safetensors\"}}", true),
                   test_path(dir, "ids.txt"), "expected a file name ending in .safetensors",
                   "a path outside the directory");
    /* one tensor's line dropped: the table's tensor is not mapped */
    p = strstr(dropped, "\"model.norm.weight\"");
    ck_assert_ptr_nonnull(p);
    memcpy(p, "\"model.norm.weigh_\"", strlen("\"model.norm.weigh_\""));
    expect_refusal(model_with_index("unmapped", dropped, true), test_path(dir, "ids.txt"),
                   "tensor 'model.norm.weight' is not in weight_map", "an unmapped tensor");
    /* the good index scores */
    {
        char model[PATH_MAX], ids[PATH_MAX], out[PATH_MAX];
        struct test_captured c;

        snprintf(model, sizeof(model), "%s", model_with_index("ok", good, true));
        snprintf(ids, sizeof(ids), "%s", test_path(dir, "ids.txt"));
        snprintf(out, sizeof(out), "%s", test_path(dir, "ok.h5"));
        c = score(model, ids, out, "4");

        ck_assert_msg(c.status == 0, "%s", c.err);
        test_captured_free(&c);
    }
    free(good);
    free(dropped);
}
END_TEST

/* a random decoder of vocabulary V saved as NAME in dir, with the bpe
 * fixture tokenizer `tok` as its tokenizer.json; returns the directory */
static const char *model_with_tokenizer(const char *name, size_t V, const char *tok)
{
    static char md[PATH_MAX];
    char src[PATH_MAX];
    struct llama_config c;
    struct llama_model m;

    ck_assert_int_eq(llama_config_preset(&c, "llama-tiny"), RL_OK);
    c.vocab_size = V;
    c.layers = 1;
    ck_assert_int_eq(llama_model_init(&m, &c), RL_OK);
    llama_model_init_random(&m, 6);
    snprintf(md, sizeof(md), "%s/%s", dir, name);
    ck_assert_msg(llama_model_save(&m, md, ST_F32, 1) == RL_OK, "%s", rl_error_msg());
    llama_model_free(&m);
    snprintf(src, sizeof(src), "bpe/%s", tok);
    ck_assert_ptr_nonnull(realpath(fixture_path(src), src));
    ck_assert_int_eq(symlink(src, test_path(md, "tokenizer.json")), 0);
    return md;
}

/* --text: each line through tokenizer.json (special tokens as the
 * tokenizer adds them) gives exactly what --ids gives on the ids
 * bpe_encode makes of it; _i: 0 Llama 3's tokenizer (<|begin_of_text|>
 * first, so an empty line is one token), 1 Qwen2's (none: an empty line
 * is refused) */
START_TEST(test_score_text)
{
    static const char *const toks[] = { "llama3.json", "qwen2.json" };
    static const char *const lines[] = { "Hello world", "The answer is true.", "a", "" };
    char model[PATH_MAX], text[PATH_MAX], ids[PATH_MAX], o1[PATH_MAX], o2[PATH_MAX];
    struct bpe_tokenizer *tok;
    struct test_captured c;
    FILE *f;
    size_t n_lines = _i == 0 ? 4 : 3;

    ck_assert_int_eq(bpe_tokenizer_load(&tok, fixture_path(_i ? "bpe/qwen2.json"
                                                              : "bpe/llama3.json")), RL_OK);
    snprintf(model, sizeof(model), "%s",
             model_with_tokenizer("tm", (size_t)bpe_vocab_size(tok), toks[_i]));
    snprintf(text, sizeof(text), "%s", test_path(dir, "text.txt"));
    snprintf(ids, sizeof(ids), "%s", test_path(dir, "ids.txt"));
    snprintf(o1, sizeof(o1), "%s", test_path(dir, "text.h5"));
    snprintf(o2, sizeof(o2), "%s", test_path(dir, "ids.h5"));
    f = fopen(text, "w");
    for (size_t i = 0; i < n_lines; i++)
        fprintf(f, "%s%s\n", lines[i], i == 1 ? "\r" : "");    /* a CRLF line too */
    fclose(f);
    f = fopen(ids, "w");
    for (size_t i = 0; i < n_lines; i++) {
        int32_t *v;
        size_t n;

        ck_assert_int_eq(bpe_encode(tok, lines[i], strlen(lines[i]), true, &v, &n), RL_OK);
        ck_assert_uint_gt(n, 0);
        for (size_t k = 0; k < n; k++)
            fprintf(f, "%s%d", k ? " " : "", (int)v[k]);
        fprintf(f, "\n");
        free(v);
    }
    fclose(f);
    c = test_run_cmd(dir, cmd_score, "score", "--model", model, "--text", text, "-o", o1, NULL);
    ck_assert_msg(c.status == 0, "%s", c.err);
    test_captured_free(&c);
    c = test_run_cmd(dir, cmd_score, "score", "--model", model, "--ids", ids, "-o", o2, NULL);
    ck_assert_msg(c.status == 0, "%s", c.err);
    test_captured_free(&c);
    {
        size_t r1, c1, r2, c2;
        int32_t *a = h5_read_all(o1, "/ids", H5T_NATIVE_INT32, 4, &r1, &c1);
        int32_t *b = h5_read_all(o2, "/ids", H5T_NATIVE_INT32, 4, &r2, &c2);
        float *x = h5_read_all(o1, "/token_logprob", H5T_NATIVE_FLOAT, 4, &r1, &c1);
        float *y = h5_read_all(o2, "/token_logprob", H5T_NATIVE_FLOAT, 4, &r2, &c2);

        ck_assert_uint_eq(r1, n_lines);
        ck_assert_int_eq(memcmp(a, b, r1 * (c1 + 1) * sizeof(int32_t)), 0);
        ck_assert_int_eq(memcmp(x, y, r1 * c1 * sizeof(float)), 0);
        free(a); free(b); free(x); free(y);
    }
    if (_i == 1) {
        test_write_text(text, "fine\n\nnext\n");
        c = test_run_cmd(dir, cmd_score, "score", "--model", model, "--text", text, "-o", o1,
                         NULL);
        test_assert_one_line_error(&c, "randlora score: ", "line 2 is empty", "an empty text");
        test_captured_free(&c);
    }
    bpe_tokenizer_free(tok);
}
END_TEST

/* the tokenizer's ids must fit the model's vocabulary */
START_TEST(test_score_text_vocab)
{
    char model[PATH_MAX], text[PATH_MAX];
    struct test_captured c;

    snprintf(model, sizeof(model), "%s", model_with_tokenizer("small", 100, "llama3.json"));
    snprintf(text, sizeof(text), "%s", test_path(dir, "t.txt"));
    test_write_text(text, "Hello world\n");
    c = test_run_cmd(dir, cmd_score, "score", "--model", model, "--text", text, "-o",
                     test_path(dir, "t.h5"), NULL);
    test_assert_one_line_error(&c, "randlora score: ", "outside the model's vocabulary (0..99)",
                               "tokenizer ids past the model");
    test_captured_free(&c);
}
END_TEST

START_TEST(test_score_usage)
{
    struct test_captured c;

    test_write_text(test_path(dir, "t.txt"), "hello\n");
    c = test_run_cmd(dir, cmd_score, "score", "--model", "llama-tiny", "--text",
                     test_path(dir, "t.txt"), "-o", test_path(dir, "t.h5"), NULL);
    test_assert_one_line_error(&c, "randlora score: ", "has no tokenizer.json", "--text, preset");
    test_captured_free(&c);
    c = test_run_cmd(dir, cmd_score, "score", "--model", "llama-tiny", "-o",
                     test_path(dir, "t.h5"), NULL);
    test_assert_one_line_error(&c, "randlora score: ", "exactly one of --ids", "no input");
    test_captured_free(&c);
    c = test_run_cmd(dir, cmd_score, "score", "--model", "no-such-preset-or-dir", "--ids",
                     test_path(dir, "t.txt"), "-o", test_path(dir, "t.h5"), NULL);
    ck_assert_int_ne(c.status, 0);
    test_captured_free(&c);
    c = test_run_cmd(dir, cmd_score, "score", "--help", NULL);
    ck_assert_int_eq(c.status, 0);
    ck_assert(strstr(c.out, "--ids FILE") != NULL && strstr(c.out, "llama-tiny") != NULL);
    test_captured_free(&c);
}
END_TEST

/* randlora info on decoder directories: the summary, every tensor checked
 * in the headers (one file and shards), a mismatch refused naming it */
START_TEST(test_info_decoder_dirs)
{
    struct test_captured c;
    char model[PATH_MAX];

    c = test_run_cmd(dir, cmd_info, "info", fixture_abs("qwen2"), NULL);
    ck_assert_msg(c.status == 0, "%s", c.err);
    ck_assert(strstr(c.out, "Qwen2ForCausalLM, 9,528 parameters") != NULL);
    ck_assert(strstr(c.out, "all 26 tensors of the config present with their shapes in 2 files"));
    test_captured_free(&c);
    c = test_run_cmd(dir, cmd_info, "info", fixture_abs("llama_bf16"), NULL);
    ck_assert_msg(c.status == 0, "%s", c.err);
    ck_assert(strstr(c.out, "4 heads over 2 key/value heads of 12") != NULL);
    ck_assert(strstr(c.out, "(llama3 scaling)") != NULL);
    test_captured_free(&c);
    snprintf(model, sizeof(model), "%s",
             model_with_config("wide", "\"intermediate_size\": 40", "\"intermediate_size\": 41"));
    c = test_run_cmd(dir, cmd_info, "info", model, NULL);
    test_assert_one_line_error(&c, "randlora info: ", "'model.layers.0.mlp.gate_proj.weight' has "
                               "shape [40, 32], expected [41, 32]", "info, a mis-shaped tensor");
    test_captured_free(&c);
}
END_TEST

/* randlora bench on a decoder preset: one JSON line with the step's
 * figures, in-process (the decoder bench does not fork) */
START_TEST(test_bench_decoder)
{
    struct test_captured c = test_run_cmd(dir, cmd_bench, "bench", "--model", "llama-tiny",
                                          "--seq", "8", "--batch", "2", "--steps", "1",
                                          "--threads", "1", "--json", NULL);

    ck_assert_msg(c.status == 0, "%s", c.err);
    ck_assert(strstr(c.out, "\"model\":\"llama-tiny\"") != NULL);
    ck_assert(strstr(c.out, "\"method\":\"lora\",\"rank\":16,\"batch\":2,\"seq\":8") != NULL);
    ck_assert(strstr(c.out, "\"n_sites\":20") != NULL);
    ck_assert(strstr(c.out, "\"tokens_per_s\":") != NULL);
    test_captured_free(&c);
    c = test_run_cmd(dir, cmd_bench, "bench", "--model", "llama-tiny", "--seq", "600", NULL);
    test_assert_one_line_error(&c, "randlora bench: ", "--seq 600 exceeds llama-tiny's 512",
                               "a sequence too long");
    test_captured_free(&c);
}
END_TEST

Suite *suite_llama_cmds(void)
{
    Suite *s = suite_create("llama_cmds");
    TCase *tc = tcase_create("score");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_score_golden, 0, 3);
    tcase_add_test(tc, test_score_preset);
    tcase_add_test(tc, test_score_bad_ids);
    tcase_add_test(tc, test_score_bad_config);
    tcase_add_test(tc, test_score_bad_index);
    tcase_add_test(tc, test_score_usage);
    tcase_add_loop_test(tc, test_score_text, 0, 2);
    tcase_add_test(tc, test_score_text_vocab);
    tcase_add_test(tc, test_info_decoder_dirs);
    tcase_add_test(tc, test_bench_decoder);
    suite_add_tcase(s, tc);
    return s;
}
