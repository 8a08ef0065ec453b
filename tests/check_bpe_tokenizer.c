/*
 * check_bpe_tokenizer.c: byte-level BPE from tokenizer.json against
 * Hugging Face `tokenizers` (tests/fixtures/bpe/, made by
 * tests/ref/bpe_golden.py): GPT-2 (ByteLevel regex, "a b" merges, with and
 * without add_prefix_space), Llama 3 (Split regex, ignore_merges, BOS
 * template), Qwen2 (NFC, Split regex) and a Split String + Removed
 * configuration, ~50 texts each: the ids with and
 * without special tokens, decode with and without skip_special, and the
 * round trip. check_bpe_hostile.c has the refusals and hostile text.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/alloc.h"
#include "core/read_file.h"
#include "core/status.h"
#include "core/utf8.h"
#include "models/bpe_tokenizer.h"
#include "suites.h"
#include "test_util.h"

static const char *const KINDS[] = { "gpt2", "gpt2_prefix", "llama3", "qwen2", "splits" };

static struct bpe_tokenizer *load_kind(const char *kind)
{
    char name[64];
    struct bpe_tokenizer *t = NULL;
    int rc;

    snprintf(name, sizeof name, "bpe/%s.json", kind);
    rc = bpe_tokenizer_load(&t, fixture_path(name));
    if (rc != RL_OK)
        fprintf(stderr, "load %s: %s\n", kind, rl_error_msg());
    ck_assert_int_eq(rc, RL_OK);
    return t;
}

static cJSON *load_expected(void)
{
    char *text;
    size_t len;
    cJSON *root;

    ck_assert_int_eq(rl_read_file(fixture_path("bpe/expected.json"), 1u << 24, &text, &len), RL_OK);
    root = cJSON_ParseWithLength(text, len);
    free(text);
    ck_assert_ptr_nonnull(root);
    return root;
}

static char *unhex(const char *h, size_t *n)
{
    size_t m = strlen(h) / 2;
    char *out = xmalloc(m + 1);

    for (size_t i = 0; i < m; i++) {
        unsigned v;
        ck_assert_int_eq(sscanf(h + 2 * i, "%2x", &v), 1);
        out[i] = (char)v;
    }
    out[m] = '\0';
    *n = m;
    return out;
}

/* 0 when ids[0..n) equal the JSON array want; prints the first difference */
static int ids_differ(const char *what, size_t ci, const int32_t *ids, size_t n, const cJSON *want)
{
    size_t m = (size_t)cJSON_GetArraySize(want);

    for (size_t i = 0; i < n || i < m; i++) {
        int w = i < m ? cJSON_GetArrayItem(want, (int)i)->valueint : -2;
        int g = i < n ? ids[i] : -2;
        if (w != g) {
            fprintf(stderr, "%s case %zu: id %zu is %d, tokenizers gives %d (%zu vs %zu ids)\n",
                    what, ci, i, g, w, n, m);
            return 1;
        }
    }
    return 0;
}

static int decoded_differs(const char *what, size_t ci, const struct bpe_tokenizer *t,
                           const int32_t *ids, size_t n, bool skip, const char *want_hex)
{
    size_t wn, gn;
    char *want = unhex(want_hex, &wn), *got;
    int bad;

    ck_assert_int_eq(bpe_decode(t, ids, n, skip, &got, &gn), RL_OK);
    bad = gn != wn || memcmp(got, want, wn) != 0;
    if (bad)
        fprintf(stderr, "%s case %zu: decode(skip=%d) gives '%s', tokenizers '%s'\n", what, ci,
                (int)skip, got, want);
    free(want);
    free(got);
    return bad;
}

/* every case of one tokenizer; returns the number of mismatches */
static int check_kind(int k)
{
    cJSON *root = load_expected();
    const cJSON *cases = cJSON_GetObjectItem(root, KINDS[k]), *c;
    struct bpe_tokenizer *t = load_kind(KINDS[k]);
    size_t ci = 0;
    int bad = 0;

    ck_assert_int_gt(cJSON_GetArraySize(cases), 40);
    cJSON_ArrayForEach(c, cases) {
        size_t len, n;
        char *text = unhex(cJSON_GetObjectItem(c, "text")->valuestring, &len);
        int32_t *ids;

        ck_assert_int_eq(bpe_encode(t, text, len, true, &ids, &n), RL_OK);
        bad += ids_differ(KINDS[k], ci, ids, n, cJSON_GetObjectItem(c, "ids"));
        bad += decoded_differs(KINDS[k], ci, t, ids, n, false,
                               cJSON_GetObjectItem(c, "decoded")->valuestring);
        bad += decoded_differs(KINDS[k], ci, t, ids, n, true,
                               cJSON_GetObjectItem(c, "decoded_skip")->valuestring);
        free(ids);
        ck_assert_int_eq(bpe_encode(t, text, len, false, &ids, &n), RL_OK);
        bad += ids_differ(KINDS[k], ci, ids, n, cJSON_GetObjectItem(c, "ids_plain"));
        free(ids);
        free(text);
        ci++;
    }
    bpe_tokenizer_free(t);
    cJSON_Delete(root);
    return bad;
}

START_TEST(test_golden_ids)
{
    ck_assert_int_eq(check_kind(_i), 0);
}
END_TEST

/* decode(encode(text)) == text where nothing normalises or adds: GPT-2 and
 * Llama 3 (after its BOS) on the valid UTF-8 texts of the set */
START_TEST(test_round_trip)
{
    static const int kinds[] = { 0, 2 };
    cJSON *root = load_expected();
    struct bpe_tokenizer *t = load_kind(KINDS[kinds[_i]]);
    const cJSON *c;
    size_t trips = 0;

    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, KINDS[kinds[_i]])) {
        size_t len, n, bl;
        char *text = unhex(cJSON_GetObjectItem(c, "text")->valuestring, &len), *back;
        int32_t *ids;

        ck_assert_int_eq(bpe_encode(t, text, len, true, &ids, &n), RL_OK);
        ck_assert_int_eq(bpe_decode(t, ids, n, false, &back, &bl), RL_OK);
        if (kinds[_i] == 2) {                /* BOS first, then the text */
            ck_assert_int_ge(n, 1);
            ck_assert_int_eq(ids[0], bpe_bos_id(t));
            ck_assert(bl >= 17 && memcmp(back, "<|begin_of_text|>", 17) == 0);
            memmove(back, back + 17, bl - 17 + 1);
            bl -= 17;
        }
        /* not: the non-UTF-8 inputs (replaced) and lstrip/rstrip tokens (they eat spaces) */
        if (utf8_valid((const unsigned char *)text, len) && !strstr(text, "<tail>") &&
            !strstr(text, "<both>")) {
            if (bl != len || memcmp(back, text, len) != 0)
                ck_abort_msg("%s: '%s' decodes to '%s'", KINDS[kinds[_i]], text, back);
            trips++;
        }
        free(back);
        free(ids);
        free(text);
    }
    ck_assert_int_gt(trips, 40);
    bpe_tokenizer_free(t);
    cJSON_Delete(root);
}
END_TEST

START_TEST(test_accessors)
{
    struct bpe_tokenizer *l = load_kind("llama3"), *q = load_kind("qwen2");

    ck_assert_int_eq(bpe_token_id(l, "<|begin_of_text|>"), 0);
    ck_assert_int_eq(bpe_bos_id(l), 0);
    ck_assert_int_eq(bpe_bos_id(q), -1);
    ck_assert(bpe_is_special(l, 0));
    ck_assert(!bpe_is_special(l, bpe_token_id(l, "[MARK]")));
    ck_assert_int_eq(bpe_token_id(q, "no such token"), -1);
    ck_assert_int_eq(bpe_vocab_size(q), bpe_token_id(q, "<both>") + 1);
    bpe_tokenizer_free(l);
    bpe_tokenizer_free(q);
}
END_TEST

Suite *suite_bpe_tokenizer(void)
{
    Suite *s = suite_create("bpe_tokenizer");
    TCase *tc = tcase_create("golden");

    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_golden_ids, 0, 5);
    tcase_add_loop_test(tc, test_round_trip, 0, 2);
    tcase_add_test(tc, test_accessors);
    suite_add_tcase(s, tc);
    return s;
}
