/*
 * check_commonsense.c: the commonsense format (datasets/commonsense.c):
 * reading item arrays (and refusing bad ones with the item and key named),
 * the prompt templates byte for byte, training tokenization with the loss
 * mask and cutoff (through the Llama 3 fixture tokenizer), a whole set
 * tokenized in parallel and padded batches, the answer extraction and
 * response splitting, and the accuracy average.
 *
 * The expected prompts and extractions were produced by running the
 * functions themselves (generate_prompt of PaulAlbert31/RandLoRA's
 * commonsense_reasoning/finetune.py and commonsense_evaluate.py, and its
 * extract_answer; commit 4ac565e) on these inputs.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/status.h"
#include "datasets/commonsense.h"
#include "datasets/commonsense_synth.h"
#include "models/bpe_tokenizer.h"
#include "suites.h"
#include "test_util.h"

static char tmp[256];

static void setup(void)
{
    ck_assert_ptr_nonnull(test_tmpdir_make(tmp, sizeof tmp, "cs"));
}

static void teardown(void)
{
    test_tmpdir_remove(tmp);
}

static int load_text(const char *json, struct cs_set *set)
{
    const char *path = test_path(tmp, "items.json");

    test_write_text(path, json);
    return cs_load(set, path);
}

START_TEST(test_load)
{
    struct cs_set s;

    ck_assert_int_eq(load_text("[{\"instruction\": \"Q?\", \"input\": \"\", \"output\": \"the correct "
                               "answer is true\", \"answer\": \"true\", \"extra\": 3},"
                               " {\"instruction\": \"Q2\", \"input\": null, \"output\": \"o\","
                               " \"answer\": \"answer2\"}, {\"instruction\": \"Q3\", \"output\": \"\","
                               " \"answer\": \"\", \"input\": \"ctx \\u00e9\"}]", &s), RL_OK);
    ck_assert_uint_eq(s.n, 3);
    ck_assert_str_eq(s.items[0].answer, "true");
    ck_assert_str_eq(s.items[1].input, "");
    ck_assert_str_eq(s.items[2].input, "ctx \xc3\xa9");
    cs_free(&s);
    ck_assert_ptr_null(s.items);
}
END_TEST

static void expect_refused(const char *json, const char *needle)
{
    struct cs_set s = { 0 };
    int rc = load_text(json, &s);

    ck_assert_msg(rc == RL_ERR_FORMAT, "rc %d for %s", rc, json);
    ck_assert_msg(strstr(rl_error_msg(), needle) && strstr(rl_error_msg(), "items.json"),
                  "message '%s' lacks '%s'", rl_error_msg(), needle);
    ck_assert_ptr_null(s.items);
}

START_TEST(test_refused)
{
    struct cs_set s;

    expect_refused("{\"instruction\": \"x\"}", "not a JSON array");
    expect_refused("[", "malformed JSON");
    expect_refused("[]", "no items");
    expect_refused("[3]", "item 0 is not an object");
    expect_refused("[{\"instruction\": \"a\", \"output\": \"b\", \"answer\": \"c\"},"
                   " {\"instruction\": \"a\", \"output\": \"b\"}]", "item 1: \"answer\" is missing");
    expect_refused("[{\"instruction\": 5, \"output\": \"b\", \"answer\": \"c\"}]",
                   "item 0: \"instruction\" is not a string");
    expect_refused("[{\"instruction\": \"a\", \"input\": [], \"output\": \"b\", \"answer\": \"c\"}]",
                   "\"input\"");
    ck_assert_int_eq(cs_load(&s, test_path(tmp, "none.json")), RL_ERR_IO);
    ck_assert_int_eq(cs_load_task(&s, tmp, "squad"), RL_ERR_ARG);
    ck_assert_msg(strstr(rl_error_msg(), "boolq") != NULL, "%s", rl_error_msg());
}
END_TEST

#define IND "                "

START_TEST(test_prompts)
{
    struct cs_item plain = { "Q1? x", "", "the correct answer is true", "true" };
    struct cs_item with = { "Q2", "some input", "out", "x" };
    char *p;

    p = cs_train_prompt(&plain, true);
    ck_assert_str_eq(p, "Below is an instruction that describes a task. Write a response that "
                     "appropriately completes the request.  \n\n" IND "### Instruction:\n" IND
                     "Q1? x\n" IND "\n" IND "### Response:\n" IND "the correct answer is true");
    free(p);
    p = cs_train_prompt(&plain, false);
    ck_assert_str_eq(p, "Below is an instruction that describes a task. Write a response that "
                     "appropriately completes the request.  \n\n" IND "### Instruction:\n" IND
                     "Q1? x\n" IND "\n" IND "### Response:\n" IND);
    free(p);
    p = cs_train_prompt(&with, true);
    ck_assert_str_eq(p, "Below is an instruction that describes a task, paired with an input that "
                     "provides further context. Write a response that appropriately completes the "
                     "request. \n\n" IND "### Instruction:\n" IND "Q2\n" IND "\n" IND
                     "### Input:\n" IND "some input\n" IND "\n" IND "### Response:\n" IND "out");
    free(p);
    p = cs_eval_prompt(&plain);
    ck_assert_str_eq(p, "Below is an instruction that describes a task. Write a response that "
                     "appropriately completes the request. \n\n" IND "### Instruction:\n" IND
                     "Q1? x\n\n" IND "### Response:\n" IND);
    free(p);
    p = cs_eval_prompt(&with);                 /* evaluate() never passes the input */
    ck_assert(strstr(p, "### Input") == NULL);
    free(p);
}
END_TEST

static struct bpe_tokenizer *llama3(void)
{
    struct bpe_tokenizer *t = NULL;

    ck_assert_int_eq(bpe_tokenizer_load(&t, fixture_path("bpe/llama3.json")), RL_OK);
    return t;
}

START_TEST(test_tokenize)
{
    struct bpe_tokenizer *t = llama3();
    struct cs_item it = { "Please answer true or false: is a cat bigger than an ant?", "",
                          "the correct answer is true", "true" };
    int32_t eos = bpe_token_id(t, "<|end_of_text|>"), *full, *user;
    size_t nf, nu;
    char *pf = cs_train_prompt(&it, true), *pu = cs_train_prompt(&it, false);
    struct cs_example ex = { 0 };

    ck_assert_int_eq(bpe_encode(t, pf, strlen(pf), true, &full, &nf), RL_OK);
    ck_assert_int_eq(bpe_encode(t, pu, strlen(pu), true, &user, &nu), RL_OK);
    ck_assert_int_gt(nf, nu);
    /* response-only loss: BOS + text + EOS, targets from the user prompt's length on */
    ck_assert_int_eq(cs_tokenize_train(t, &it, eos, 1000, false, &ex), RL_OK);
    ck_assert_uint_eq(ex.n, nf + 1);
    ck_assert_int_eq(memcmp(ex.ids, full, nf * sizeof(*full)), 0);
    ck_assert_int_eq(ex.ids[0], bpe_bos_id(t));
    ck_assert_int_eq(ex.ids[nf], eos);
    for (size_t i = 0; i < ex.n; i++)
        ck_assert_int_eq(ex.target[i], i >= nu);
    cs_example_free(&ex);
    /* train_on_inputs: every id but the first */
    ck_assert_int_eq(cs_tokenize_train(t, &it, eos, 1000, true, &ex), RL_OK);
    for (size_t i = 0; i < ex.n; i++)
        ck_assert_int_eq(ex.target[i], i > 0);
    cs_example_free(&ex);
    /* cutoff: the first 20 ids, no EOS (no room), BOS kept */
    ck_assert_int_eq(cs_tokenize_train(t, &it, eos, 20, false, &ex), RL_OK);
    ck_assert_uint_eq(ex.n, 20);
    ck_assert_int_eq(memcmp(ex.ids, full, 20 * sizeof(*full)), 0);
    for (size_t i = 0; i < ex.n; i++)
        ck_assert_int_eq(ex.target[i], 0);     /* all of it is prompt */
    cs_example_free(&ex);
    /* no EOS asked for */
    ck_assert_int_eq(cs_tokenize_train(t, &it, -1, 1000, false, &ex), RL_OK);
    ck_assert_uint_eq(ex.n, nf);
    cs_example_free(&ex);
    ck_assert_int_eq(cs_tokenize_train(t, &it, eos, 1, false, &ex), RL_ERR_ARG);
    ck_assert_ptr_null(ex.ids);
    free(full);
    free(user);
    free(pf);
    free(pu);
    bpe_tokenizer_free(t);
}
END_TEST

START_TEST(test_set_and_batch)
{
    struct bpe_tokenizer *t = llama3();
    struct cs_set set;
    struct cs_example *ex, one = { 0 };
    struct cs_batch b;
    size_t idx[3] = { 4, 0, 2 }, T = 0;
    int32_t eos = bpe_token_id(t, "<|end_of_text|>");

    cs_synth_train(&set, 3, 40);
    ck_assert_int_eq(cs_tokenize_set(t, &set, eos, 64, false, &ex), RL_OK);
    for (size_t i = 0; i < set.n; i++) {            /* the same as one at a time */
        ck_assert_int_eq(cs_tokenize_train(t, &set.items[i], eos, 64, false, &one), RL_OK);
        ck_assert_uint_eq(one.n, ex[i].n);
        ck_assert_int_eq(memcmp(one.ids, ex[i].ids, one.n * sizeof(*one.ids)), 0);
        ck_assert_int_eq(memcmp(one.target, ex[i].target, one.n), 0);
        cs_example_free(&one);
    }
    ck_assert_int_eq(cs_batch_pad(ex, idx, 3, -7, 8, &b), RL_OK);
    for (size_t k = 0; k < 3; k++)
        T = ex[idx[k]].n > T ? ex[idx[k]].n : T;
    ck_assert_uint_eq(b.T, (T + 7) / 8 * 8);
    for (size_t k = 0; k < 3; k++) {
        const struct cs_example *e = &ex[idx[k]];
        ck_assert_uint_eq(b.len[k], e->n);
        for (size_t i = 0; i < b.T; i++) {
            ck_assert_int_eq(b.ids[k * b.T + i], i < e->n ? e->ids[i] : -7);
            ck_assert_int_eq(b.target[k * b.T + i], i < e->n ? e->target[i] : 0);
        }
    }
    cs_batch_free(&b);
    ck_assert_int_eq(cs_batch_pad(ex, idx, 0, 0, 8, &b), RL_ERR_ARG);
    cs_examples_free(ex, set.n);
    /* a failure names the (first) failing item */
    ck_assert_int_eq(cs_tokenize_set(t, &set, eos, 1, false, &ex), RL_ERR_ARG);
    ck_assert_ptr_null(ex);
    ck_assert_msg(strstr(rl_error_msg(), "item 0: cutoff length 1") != NULL, "%s", rl_error_msg());
    cs_free(&set);
    bpe_tokenizer_free(t);
}
END_TEST

START_TEST(test_extract)
{
    static const struct { const char *task, *response, *want; } cases[] = {
        { "boolq", "the correct answer is true", "true" },
        { "boolq", "falsetrue", "false" },
        { "boolq", "True", "" },
        { "boolq", "  \n", "" },
        { "boolq", "untrue false", "true" },
        { "piqa", "solution2 or solution1", "solution2" },
        { "piqa", "solution3", "" },
        { "social_i_qa", "answer12", "answer1" },
        { "ARC-Easy", "the answer5, answer1", "answer5" },
        { "openbookqa", "Answer1", "" },
        { "hellaswag", "ending4ending1", "ending4" },
        { "hellaswag", "ending5", "" },
        { "winogrande", "option2", "option2" },
        { "winogrande", "the correct answer is option1.", "option1" },
        { "synth_qa", "answer3", "answer3" },
    };
    enum cs_answer_kind kind;
    char *r;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ck_assert_int_eq(cs_task_kind(cases[i].task, &kind), RL_OK);
        ck_assert_msg(strcmp(cs_extract_answer(kind, cases[i].response), cases[i].want) == 0,
                      "%s '%s'", cases[i].task, cases[i].response);
    }
    r = cs_response("x ### Response:\n   the correct answer is true\xe3\x80\x80\n");
    ck_assert_str_eq(r, "the correct answer is true");
    free(r);
    r = cs_response("### Response: a ### Response:  b\xc2\xa0");
    ck_assert_str_eq(r, "b");
    free(r);
    r = cs_response("\xc2\x85x\x1f");
    ck_assert_str_eq(r, "x");
    free(r);
    ck_assert(cs_is_correct(CS_KIND_OPTION, "prompt ### Response:\n option2 ", "option2"));
    ck_assert(!cs_is_correct(CS_KIND_OPTION, "prompt ### Response:\n option2 ", "option1"));
}
END_TEST

START_TEST(test_accuracy)
{
    struct cs_score s[3] = { { "boolq", 3, 4 }, { "piqa", 0, 0 }, { "hellaswag", 1, 4 } };

    ck_assert(fabs(cs_accuracy(&s[0]) - 0.75) < 1e-12);
    ck_assert(isnan(cs_accuracy(&s[1])));
    ck_assert(fabs(cs_mean_accuracy(s, 3) - 0.5) < 1e-12);   /* mean of tasks, not pooled 4/8 */
    ck_assert(isnan(cs_mean_accuracy(s + 1, 1)));
}
END_TEST

Suite *suite_commonsense(void)
{
    Suite *s = suite_create("commonsense");
    TCase *tc = tcase_create("format");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_load);
    tcase_add_test(tc, test_refused);
    tcase_add_test(tc, test_prompts);
    tcase_add_test(tc, test_tokenize);
    tcase_add_test(tc, test_set_and_batch);
    tcase_add_test(tc, test_extract);
    tcase_add_test(tc, test_accuracy);
    suite_add_tcase(s, tc);
    return s;
}
