/*
 * check_commonsense_cmd.c: `randlora commonsense` (cli/cmd_commonsense.c)
 * in-process: --synth writes what cs_load_task reads back, --check
 * describes a directory of test sets and a training file, --corpus writes
 * the corpus of the library, and the refusals (one line, exit 2).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "core/status.h"
#include "datasets/commonsense_synth.h"
#include "suites.h"
#include "test_cmd.h"
#include "test_util.h"

static char tmp[256];

static void setup(void)
{
    ck_assert_ptr_nonnull(test_tmpdir_make(tmp, sizeof tmp, "cscmd"));
}

static void teardown(void)
{
    test_tmpdir_remove(tmp);
}

START_TEST(test_synth_check)
{
    char dir[512], corpus[512];
    struct test_captured c;
    struct cs_set s;
    size_t len, want_len;
    char *text, *want;

    /* its missing parent ("out") is made too */
    snprintf(dir, sizeof dir, "%s", test_path(tmp, "out/data"));
    c = test_run_cmd(tmp, cmd_commonsense, "commonsense", "--synth", dir, "--seed", "3",
                     "--n-train", "20", "--n-test", "6", NULL);
    ck_assert_int_eq(c.status, 0);
    test_captured_free(&c);
    ck_assert_int_eq(cs_load_task(&s, dir, "synth_qa"), RL_OK);
    ck_assert_uint_eq(s.n, 6);
    cs_free(&s);
    c = test_run_cmd(tmp, cmd_commonsense, "commonsense", "--check", dir, NULL);
    ck_assert_int_eq(c.status, 0);
    ck_assert_ptr_nonnull(strstr(c.out, "synth_boolq: 6 items; answers:"));
    ck_assert_ptr_nonnull(strstr(c.out, "synth_winogrande: 6 items"));
    test_captured_free(&c);
    c = test_run_cmd(tmp, cmd_commonsense, "commonsense", "--check", test_path(tmp, "out/data/train.json"), NULL);
    ck_assert_int_eq(c.status, 0);
    ck_assert_ptr_nonnull(strstr(c.out, "20 items"));
    ck_assert_ptr_nonnull(strstr(c.out, "### Response:\n                the correct answer is"));
    test_captured_free(&c);
    snprintf(corpus, sizeof corpus, "%s", test_path(tmp, "corpus.txt"));
    c = test_run_cmd(tmp, cmd_commonsense, "commonsense", "--corpus", corpus, "--bytes", "3000",
                     "--seed", "9", NULL);
    ck_assert_int_eq(c.status, 0);
    test_captured_free(&c);
    text = test_slurp(corpus, &len);
    want = cs_synth_corpus(9, 3000, &want_len);
    ck_assert_uint_eq(len, want_len);
    ck_assert_int_eq(memcmp(text, want, len), 0);
    free(text);
    free(want);
}
END_TEST

START_TEST(test_refusals)
{
    struct test_captured c;

    test_write_text(test_path(tmp, "bad.json"), "[{\"instruction\": \"x\"}]");
    c = test_run_cmd(tmp, cmd_commonsense, "commonsense", "--check", test_path(tmp, "bad.json"), NULL);
    test_assert_one_line_error(&c, "randlora commonsense: ", "item 0: \"output\" is missing",
                               "an item without output");
    test_captured_free(&c);
    c = test_run_cmd(tmp, cmd_commonsense, "commonsense", "--check", tmp, NULL);
    test_assert_one_line_error(&c, "randlora commonsense: ", "no test set", "an empty directory");
    test_captured_free(&c);
    /* a directory under a file cannot be made (missing parents are) */
    c = test_run_cmd(tmp, cmd_commonsense, "commonsense", "--synth", test_path(tmp, "bad.json/b/c"),
                     NULL);
    test_assert_one_line_error(&c, "randlora commonsense: ", "bad.json", "a parent that is a file");
    test_captured_free(&c);
    c = test_run_cmd(tmp, cmd_commonsense, "commonsense", "--synth", tmp, "--n-test", "0", NULL);
    test_assert_one_line_error(&c, "randlora commonsense: ", "--n-test", "a zero count");
    test_captured_free(&c);
    c = test_run_cmd(tmp, cmd_commonsense, "commonsense", NULL);
    test_assert_one_line_error(&c, "randlora commonsense: ", "needs one of", "no mode");
    test_captured_free(&c);
}
END_TEST

Suite *suite_commonsense_cmd(void)
{
    Suite *s = suite_create("commonsense_cmd");
    TCase *tc = tcase_create("commonsense");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_synth_check);
    tcase_add_test(tc, test_refusals);
    suite_add_tcase(s, tc);
    return s;
}
