/*
 * check_tokenize_cmd.c: `randlora tokenize` (cli/cmd_tokenize.c) in-process:
 * lines of text to lines of ids (the ids bpe_encode gives, which suite
 * bpe_tokenizer compares with tokenizers) and back to the same lines,
 * --no-special and --keep-special, and the refusals (one line, exit 2).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "core/status.h"
#include "models/bpe_tokenizer.h"
#include "suites.h"
#include "test_cmd.h"
#include "test_util.h"

static char tmp[256];
static char tok[4096];

static void setup(void)
{
    ck_assert_ptr_nonnull(test_tmpdir_make(tmp, sizeof tmp, "tokcmd"));
    snprintf(tok, sizeof tok, "%s", fixture_path("bpe/llama3.json"));
}

static void teardown(void)
{
    test_tmpdir_remove(tmp);
}

static const char TEXT[] = "Hello, world\n  two  spaces\n\n<|eot_id|>caf\xc3\xa9 12345\n";

START_TEST(test_round_trip)
{
    const char *in = test_path(tmp, "in.txt"), *ids = test_path(tmp, "ids.txt");
    struct test_captured c;
    struct bpe_tokenizer *t;
    int32_t *want;
    size_t n;
    char line[256] = "";

    test_write_text(in, TEXT);
    c = test_run_cmd(tmp, cmd_tokenize, "tokenize", "--tokenizer", tok, "--text", in, NULL);
    ck_assert_int_eq(c.status, 0);
    /* line 1 is what the library gives, BOS first */
    ck_assert_int_eq(bpe_tokenizer_load(&t, tok), RL_OK);
    ck_assert_int_eq(bpe_encode(t, "Hello, world", 12, true, &want, &n), RL_OK);
    for (size_t i = 0; i < n; i++)
        snprintf(line + strlen(line), sizeof line - strlen(line), i ? " %d" : "%d", (int)want[i]);
    ck_assert_int_eq(strncmp(c.out, line, strlen(line)), 0);
    ck_assert_int_eq(c.out[strlen(line)], '\n');
    ck_assert_int_eq(want[0], bpe_bos_id(t));
    free(want);
    bpe_tokenizer_free(t);
    test_write_text(ids, c.out);
    test_captured_free(&c);
    /* decoded, special tokens skipped: the input lines back, <|eot_id|> gone */
    c = test_run_cmd(tmp, cmd_tokenize, "tokenize", "--tokenizer", tok, "--ids", ids, NULL);
    ck_assert_int_eq(c.status, 0);
    ck_assert_str_eq(c.out, "Hello, world\n  two  spaces\n\ncaf\xc3\xa9 12345\n");
    test_captured_free(&c);
    c = test_run_cmd(tmp, cmd_tokenize, "tokenize", "--tokenizer", tok, "--ids", ids,
                     "--keep-special", NULL);
    ck_assert_int_eq(c.status, 0);
    ck_assert_str_eq(c.out, "<|begin_of_text|>Hello, world\n<|begin_of_text|>  two  spaces\n"
                     "<|begin_of_text|>\n<|begin_of_text|><|eot_id|>caf\xc3\xa9 12345\n");
    test_captured_free(&c);
    c = test_run_cmd(tmp, cmd_tokenize, "tokenize", "--tokenizer", tok, "--text", in,
                     "--no-special", NULL);
    ck_assert_int_eq(c.status, 0);
    ck_assert(strncmp(c.out, line + 2, strlen(line) - 2) == 0);   /* "0 " dropped */
    ck_assert(strstr(c.out, "\n\n") != NULL);                      /* the empty line: no ids */
    test_captured_free(&c);
}
END_TEST

START_TEST(test_refusals)
{
    const char *bad = test_path(tmp, "bad.txt"), *big = test_path(tmp, "big.txt");
    struct test_captured c;

    test_write_text(bad, "0 41\n12 x7\n");
    c = test_run_cmd(tmp, cmd_tokenize, "tokenize", "--tokenizer", tok, "--ids", bad, NULL);
    test_assert_one_line_error(&c, "randlora tokenize: ", "bad.txt:2: 'x7' is not an id", "a word");
    test_captured_free(&c);
    test_write_text(big, "5 99999\n");
    c = test_run_cmd(tmp, cmd_tokenize, "tokenize", "--tokenizer", tok, "--ids", big, NULL);
    test_assert_one_line_error(&c, "randlora tokenize: ", "'99999' is not an id in [0, 706)",
                               "an id past the vocabulary");
    test_captured_free(&c);
    c = test_run_cmd(tmp, cmd_tokenize, "tokenize", "--tokenizer", bad, "--ids", big, NULL);
    test_assert_one_line_error(&c, "randlora tokenize: ", "malformed JSON", "not a tokenizer");
    test_captured_free(&c);
    c = test_run_cmd(tmp, cmd_tokenize, "tokenize", "--tokenizer", tok, "--text",
                     test_path(tmp, "missing.txt"), NULL);
    test_assert_one_line_error(&c, "randlora tokenize: ", "missing.txt", "a missing input");
    test_captured_free(&c);
    c = test_run_cmd(tmp, cmd_tokenize, "tokenize", "--tokenizer", tok, "--text", bad, "--ids",
                     bad, NULL);
    test_assert_one_line_error(&c, "randlora tokenize: ", "one of --text and --ids", "both");
    test_captured_free(&c);
    c = test_run_cmd(tmp, cmd_tokenize, "tokenize", "--frobnicate", NULL);
    test_assert_one_line_error(&c, "randlora tokenize: ", "--frobnicate", "an unknown flag");
    test_captured_free(&c);
}
END_TEST

Suite *suite_tokenize_cmd(void)
{
    Suite *s = suite_create("tokenize_cmd");
    TCase *tc = tcase_create("tokenize");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_round_trip);
    tcase_add_test(tc, test_refusals);
    suite_add_tcase(s, tc);
    return s;
}
