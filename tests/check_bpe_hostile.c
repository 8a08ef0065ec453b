/*
 * check_bpe_hostile.c: byte-level BPE (models/bpe_tokenizer*.c) on bad
 * input: tokenizer.json files that are malformed or ask for what is not
 * supported (each refused with RL_ERR_FORMAT and a message naming the key),
 * a regex that backtracks without end, long texts and words, bad ids.
 * The mutated files start from tests/fixtures/bpe/gpt2.json and llama3.json.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "core/alloc.h"
#include "core/read_file.h"
#include "core/status.h"
#include "models/bpe_tokenizer.h"
#include "suites.h"
#include "test_util.h"

static char tmp[256];

static void setup(void)
{
    ck_assert_ptr_nonnull(test_tmpdir_make(tmp, sizeof tmp, "bpe"));
}

static void teardown(void)
{
    test_tmpdir_remove(tmp);
}

static cJSON *fixture_json(const char *name)
{
    char *text, path[64];
    size_t len;
    cJSON *j;

    snprintf(path, sizeof path, "bpe/%s.json", name);
    ck_assert_int_eq(rl_read_file(fixture_path(path), 1u << 24, &text, &len), RL_OK);
    j = cJSON_ParseWithLength(text, len);
    free(text);
    ck_assert_ptr_nonnull(j);
    return j;
}

/* load j (consumed) from a file; returns the status, *t set on RL_OK */
static int load_json(cJSON *j, struct bpe_tokenizer **t)
{
    char *s = cJSON_PrintUnformatted(j);
    const char *path = test_path(tmp, "tokenizer.json");
    int rc;

    test_write_text(path, s);
    free(s);
    cJSON_Delete(j);
    rc = bpe_tokenizer_load(t, path);
    ck_assert(rc == RL_OK || *t == NULL);
    return rc;
}

static void expect_refused(cJSON *j, const char *needle)
{
    struct bpe_tokenizer *t = NULL;
    int rc = load_json(j, &t);

    if (rc == RL_OK)
        bpe_tokenizer_free(t);
    ck_assert_msg(rc == RL_ERR_FORMAT, "loaded (rc %d), expected a refusal naming '%s'", rc, needle);
    ck_assert_msg(strstr(rl_error_msg(), needle) != NULL, "message '%s' lacks '%s'",
                  rl_error_msg(), needle);
    ck_assert_msg(strstr(rl_error_msg(), "tokenizer.json") != NULL, "message '%s' lacks the file",
                  rl_error_msg());
}

static cJSON *obj(cJSON *j, const char *key)
{
    return cJSON_GetObjectItem(j, key);
}

static void set(cJSON *o, const char *key, cJSON *v)
{
    if (cJSON_GetObjectItem(o, key))
        cJSON_ReplaceItemInObject(o, key, v);
    else
        cJSON_AddItemToObject(o, key, v);
}

START_TEST(test_refused_files)
{
    cJSON *j;

    expect_refused(cJSON_CreateArray(), "not a JSON object");
    j = fixture_json("gpt2");
    cJSON_DeleteItemFromObject(j, "model");
    expect_refused(j, "no \"model\"");
    j = fixture_json("gpt2");
    set(obj(j, "model"), "type", cJSON_CreateString("WordPiece"));
    expect_refused(j, "model.type");
    j = fixture_json("gpt2");
    set(obj(j, "model"), "byte_fallback", cJSON_CreateTrue());
    expect_refused(j, "model.byte_fallback");
    j = fixture_json("gpt2");
    set(obj(j, "model"), "end_of_word_suffix", cJSON_CreateString("</w>"));
    expect_refused(j, "model.end_of_word_suffix");
    j = fixture_json("gpt2");
    set(obj(j, "model"), "dropout", cJSON_CreateNumber(0.1));
    expect_refused(j, "model.dropout");
    j = fixture_json("gpt2");
    {   /* byte 0x00's symbol under another name (the vocabulary keeps its size) */
        cJSON *v = obj(obj(j, "model"), "vocab");
        double id = obj(v, "\xc4\x80")->valuedouble;
        cJSON_DeleteItemFromObject(v, "\xc4\x80");
        cJSON_AddNumberToObject(v, "\xc4\x80\xc4\x80\xc4\x80", id);
    }
    expect_refused(j, "byte 0x00");
    j = fixture_json("gpt2");
    cJSON_ReplaceItemInArray(obj(obj(j, "model"), "merges"), 0, cJSON_CreateString("t  h"));
    expect_refused(j, "model.merges[0]");
    j = fixture_json("gpt2");
    cJSON_ReplaceItemInArray(obj(obj(j, "model"), "merges"), 3, cJSON_CreateString("zzz q"));
    expect_refused(j, "model.merges[3]");
    j = fixture_json("gpt2");
    cJSON_ReplaceItemInArray(obj(obj(j, "model"), "merges"), 2, cJSON_CreateNumber(7));
    expect_refused(j, "model.merges[2]");
    j = fixture_json("gpt2");
    set(obj(obj(j, "model"), "vocab"), "huge", cJSON_CreateNumber(3e9));
    expect_refused(j, "huge");
    j = fixture_json("gpt2");
    set(j, "normalizer", cJSON_Parse("{\"type\": \"Lowercase\"}"));
    expect_refused(j, "normalizer \"Lowercase\"");
    j = fixture_json("gpt2");
    cJSON_DeleteItemFromObject(j, "pre_tokenizer");
    expect_refused(j, "no pre_tokenizer");
    j = fixture_json("gpt2");
    set(j, "pre_tokenizer", cJSON_Parse("{\"type\": \"Metaspace\"}"));
    expect_refused(j, "Metaspace");
    j = fixture_json("gpt2");
    set(j, "pre_tokenizer", cJSON_Parse("{\"type\": \"Split\", \"pattern\": {\"Regex\": \"a\"},"
                                        " \"behavior\": \"Isolated\"}"));
    expect_refused(j, "no ByteLevel");
    j = fixture_json("llama3");
    set(cJSON_GetArrayItem(obj(obj(j, "pre_tokenizer"), "pretokenizers"), 0), "behavior",
        cJSON_CreateString("Contiguous"));
    expect_refused(j, "pre_tokenizer.pretokenizers[0].behavior");
    j = fixture_json("llama3");
    set(cJSON_GetArrayItem(obj(obj(j, "pre_tokenizer"), "pretokenizers"), 0), "invert",
        cJSON_CreateTrue());
    expect_refused(j, "invert");
    j = fixture_json("llama3");
    set(cJSON_GetArrayItem(obj(obj(j, "pre_tokenizer"), "pretokenizers"), 0), "pattern",
        cJSON_Parse("{\"Regex\": \"(unclosed\"}"));
    expect_refused(j, "does not compile");
    j = fixture_json("llama3");
    set(cJSON_GetArrayItem(obj(obj(j, "pre_tokenizer"), "pretokenizers"), 0), "pattern",
        cJSON_Parse("{\"Regex\": \"[^\\\\S]\"}"));
    expect_refused(j, "inside a character class");
    j = fixture_json("llama3");
    cJSON_AddItemToArray(obj(obj(j, "pre_tokenizer"), "pretokenizers"),
                         cJSON_Parse("{\"type\": \"Split\", \"pattern\": {\"String\": \"x\"},"
                                     " \"behavior\": \"Isolated\"}"));
    expect_refused(j, "must come last");
    j = fixture_json("gpt2");
    set(j, "post_processor", cJSON_Parse("{\"type\": \"BertProcessing\"}"));
    expect_refused(j, "BertProcessing");
    j = fixture_json("llama3");
    cJSON_DeleteItemFromArray(obj(cJSON_GetArrayItem(obj(obj(j, "post_processor"), "processors"), 1),
                                  "single"), 1);
    expect_refused(j, "no $A");
    j = fixture_json("gpt2");
    set(j, "decoder", cJSON_Parse("{\"type\": \"WordPiece\"}"));
    expect_refused(j, "decoder \"WordPiece\"");
    j = fixture_json("gpt2");
    set(cJSON_GetArrayItem(obj(j, "added_tokens"), 1), "id", cJSON_CreateNumber(5));
    expect_refused(j, "added_tokens[1]");
    j = fixture_json("gpt2");
    set(cJSON_GetArrayItem(obj(j, "added_tokens"), 1), "content", cJSON_CreateString(""));
    expect_refused(j, "added_tokens[1].content");
    j = fixture_json("gpt2");
    set(cJSON_GetArrayItem(obj(j, "added_tokens"), 1), "lstrip", cJSON_CreateString("yes"));
    expect_refused(j, "added_tokens[1].lstrip");
}
END_TEST

START_TEST(test_unreadable)
{
    struct bpe_tokenizer *t = NULL;

    ck_assert_int_eq(bpe_tokenizer_load(&t, test_path(tmp, "missing.json")), RL_ERR_IO);
    ck_assert_ptr_null(t);
    test_write_text(test_path(tmp, "bad.json"), "{\"model\": {\"vocab\": {\"a\": 1,}}");
    ck_assert_int_eq(bpe_tokenizer_load(&t, test_path(tmp, "bad.json")), RL_ERR_FORMAT);
    ck_assert_msg(strstr(rl_error_msg(), "bad.json:1:") != NULL, "%s", rl_error_msg());
}
END_TEST

/* a pattern that backtracks exponentially: the match limit stops it */
START_TEST(test_regex_gives_up)
{
    cJSON *j = fixture_json("llama3");
    struct bpe_tokenizer *t = NULL;
    const char *text = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab";
    int32_t *ids;
    size_t n;
    clock_t c0 = clock();

    set(cJSON_GetArrayItem(obj(obj(j, "pre_tokenizer"), "pretokenizers"), 0), "pattern",
        cJSON_Parse("{\"Regex\": \"(a|aa)+$\"}"));
    ck_assert_int_eq(load_json(j, &t), RL_OK);
    ck_assert_int_eq(bpe_encode(t, text, strlen(text), false, &ids, &n), RL_ERR_ARG);
    ck_assert_msg(strstr(rl_error_msg(), "gave up") != NULL, "%s", rl_error_msg());
    ck_assert_ptr_null(ids);
    ck_assert(clock() - c0 < 20 * CLOCKS_PER_SEC);
    bpe_tokenizer_free(t);
}
END_TEST

/* 4 MiB in one word and 4 MiB of short words: linear-ish time, ids valid */
START_TEST(test_long_text)
{
    struct bpe_tokenizer *t = NULL;
    size_t big = (size_t)4 << 20, n;
    char *s = xmalloc(big);
    int32_t *ids;
    clock_t c0 = clock();

    ck_assert_int_eq(bpe_tokenizer_load(&t, fixture_path("bpe/qwen2.json")), RL_OK);
    memset(s, 'a', big);
    ck_assert_int_eq(bpe_encode(t, s, big, false, &ids, &n), RL_OK);
    ck_assert_int_gt(n, 0);
    free(ids);
    for (size_t i = 0; i < big; i++)
        s[i] = "the cat, 12 \n"[i % 13];
    ck_assert_int_eq(bpe_encode(t, s, big, true, &ids, &n), RL_OK);
    for (size_t i = 0; i < n; i++)
        ck_assert(ids[i] >= 0 && ids[i] < bpe_vocab_size(t));
    free(ids);
    ck_assert_msg(clock() - c0 < 30 * CLOCKS_PER_SEC, "%.1f s", (double)(clock() - c0) / CLOCKS_PER_SEC);
    ck_assert_int_eq(bpe_encode(t, s, BPE_MAX_TEXT_BYTES + 1, false, &ids, &n), RL_ERR_ARG);
    ck_assert_msg(strstr(rl_error_msg(), "limit") != NULL, "%s", rl_error_msg());
    free(s);
    bpe_tokenizer_free(t);
}
END_TEST

START_TEST(test_decode_ids)
{
    struct bpe_tokenizer *t = NULL;
    int32_t ids[3] = { 40, 1 << 23, 69 }, neg = -3;
    char *text;
    size_t len;

    ck_assert_int_eq(bpe_tokenizer_load(&t, fixture_path("bpe/gpt2.json")), RL_OK);
    /* an id with no token is dropped, as tokenizers does */
    ck_assert_int_eq(bpe_decode(t, ids, 3, false, &text, &len), RL_OK);
    ck_assert_uint_eq(len, 2);
    free(text);
    ck_assert_int_eq(bpe_decode(t, &neg, 1, false, &text, &len), RL_ERR_ARG);
    ck_assert_msg(strstr(rl_error_msg(), "-3") != NULL, "%s", rl_error_msg());
    bpe_tokenizer_free(t);
}
END_TEST

Suite *suite_bpe_hostile(void)
{
    Suite *s = suite_create("bpe_hostile");
    TCase *tc = tcase_create("hostile");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_refused_files);
    tcase_add_test(tc, test_unreadable);
    tcase_add_test(tc, test_regex_gives_up);
    tcase_add_test(tc, test_long_text);
    tcase_add_test(tc, test_decode_ids);
    suite_add_tcase(s, tc);
    return s;
}
