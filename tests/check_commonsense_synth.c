/*
 * check_commonsense_synth.c: the procedural commonsense task and corpus
 * (datasets/commonsense_synth.c): determinism from the seed, every item's
 * answer recovered from its output by the task's extraction, the answers
 * recomputed independently from the question text (sums, days, counting,
 * number comparisons), the files written and read back, and the corpus.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "datasets/commonsense.h"
#include "datasets/commonsense_synth.h"
#include "suites.h"
#include "test_util.h"

static bool same_set(const struct cs_set *a, const struct cs_set *b)
{
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->items[i].instruction, b->items[i].instruction) != 0 ||
            strcmp(a->items[i].answer, b->items[i].answer) != 0 ||
            strcmp(a->items[i].output, b->items[i].output) != 0)
            return false;
    return true;
}

START_TEST(test_deterministic)
{
    struct cs_set a, b, c;
    size_t la, lb;
    char *ca, *cb;

    cs_synth_train(&a, 7, 50);
    cs_synth_train(&b, 7, 50);
    cs_synth_train(&c, 8, 50);
    ck_assert(same_set(&a, &b));
    ck_assert(!same_set(&a, &c));
    cs_free(&b);
    cs_free(&c);
    ck_assert_int_eq(cs_synth_test(&b, "synth_boolq", 7, 50), RL_OK);
    ck_assert(!same_set(&a, &b));
    ck_assert_int_eq(cs_synth_test(&c, "boolq", 7, 5), RL_ERR_ARG);
    cs_free(&a);
    cs_free(&b);
    ca = cs_synth_corpus(3, 5000, &la);
    cb = cs_synth_corpus(3, 5000, &lb);
    ck_assert_uint_eq(la, lb);
    ck_assert_int_eq(memcmp(ca, cb, la), 0);
    ck_assert_uint_ge(la, 5000);
    ck_assert_uint_lt(la, 5200);
    ck_assert_int_eq(ca[la - 1], '\n');
    ck_assert_uint_eq(strlen(ca), la);
    ck_assert(strstr(ca, "plus") && strstr(ca, "After") && strstr(ca, "color"));
    free(ca);
    free(cb);
}
END_TEST

/* the number after "AnswerK: " / "EndingK: " / "SolutionK: add " for K */
static int choice_value(const char *ins, const char *label, int k)
{
    char key[32];
    const char *p;

    snprintf(key, sizeof key, "%s%d: ", label, k);
    p = strstr(ins, key);
    ck_assert_ptr_nonnull(p);
    p += strlen(key);
    if (strncmp(p, "add ", 4) == 0)
        p += 4;
    return atoi(p);
}

static void check_semantics(const struct cs_item *it)
{
    const char *q = it->instruction;
    int a, b, c;

    if (sscanf(q, "Please answer the following question with true or false, question: is %d "
               "greater than %d?", &a, &b) == 2)
        ck_assert_str_eq(it->answer, a > b ? "true" : "false");
    if (sscanf(q, "Please choose the correct answer to the question: What is %d plus %d?", &a, &b) == 2)
        ck_assert_int_eq(choice_value(q, "Answer", it->answer[6] - '0'), a + b);
    if (sscanf(q, "Please choose the correct solution to the question: to get %d from %d", &a, &b) == 2)
        ck_assert_int_eq(choice_value(q, "Solution", it->answer[8] - '0'), a - b);
    if (sscanf(q, "Please choose the correct ending to complete the given sentence: counting on "
               "by %d: %d, %*d, %d, then", &a, &b, &c) == 3)
        ck_assert_int_eq(choice_value(q, "Ending", it->answer[6] - '0'), c + a);
    if (strstr(q, "What day comes after Sunday?")) {
        char key[32];
        snprintf(key, sizeof key, "Answer%c: Monday", it->answer[6]);
        ck_assert_ptr_nonnull(strstr(q, key));
    }
    if (strstr(q, "The ant is smaller than the whale, so the _ is heavier."))
        ck_assert_str_eq(it->answer, "option2");
}

START_TEST(test_items_valid)
{
    struct cs_set s;
    size_t seen[CS_SYNTH_N_TASKS] = { 0 };

    cs_synth_train(&s, 11, 3000);
    for (size_t i = 0; i < s.n; i++) {
        const struct cs_item *it = &s.items[i];
        enum cs_answer_kind kind;
        char decoded[4096];

        ck_assert_int_eq(cs_synth_task_kind(CS_SYNTH_TASKS[i % CS_SYNTH_N_TASKS], &kind), RL_OK);
        /* what a model that learned the format outputs is read back as the answer */
        snprintf(decoded, sizeof decoded, "prompt ### Response:\n %s", it->output);
        ck_assert_msg(cs_is_correct(kind, decoded, it->answer), "item %zu: '%s' / '%s'", i,
                      it->output, it->answer);
        ck_assert_str_eq(it->input, "");
        ck_assert_ptr_nonnull(strstr(it->instruction, "Answer format: "));
        check_semantics(it);
        seen[i % CS_SYNTH_N_TASKS]++;
    }
    for (int k = 0; k < CS_SYNTH_N_TASKS; k++)
        ck_assert_uint_eq(seen[k], 600);
    cs_free(&s);
}
END_TEST

START_TEST(test_write_read)
{
    char dir[256];
    struct cs_set a, b;

    ck_assert_ptr_nonnull(test_tmpdir_make(dir, sizeof dir, "synth"));
    ck_assert_int_eq(cs_synth_write(test_path(dir, "data"), 5, 40, 12), RL_OK);
    ck_assert_int_eq(cs_load(&a, test_path(dir, "data/train.json")), RL_OK);
    cs_synth_train(&b, 5, 40);
    ck_assert(same_set(&a, &b));
    cs_free(&a);
    cs_free(&b);
    for (int k = 0; k < CS_SYNTH_N_TASKS; k++) {
        ck_assert_int_eq(cs_load_task(&a, test_path(dir, "data"), CS_SYNTH_TASKS[k]), RL_OK);
        ck_assert_int_eq(cs_synth_test(&b, CS_SYNTH_TASKS[k], 5, 12), RL_OK);
        ck_assert(same_set(&a, &b));
        cs_free(&a);
        cs_free(&b);
    }
    ck_assert_int_eq(cs_synth_write(test_path(dir, "no/such/dir"), 5, 4, 4), RL_ERR_IO);
    test_tmpdir_remove(dir);
}
END_TEST

Suite *suite_commonsense_synth(void)
{
    Suite *s = suite_create("commonsense_synth");
    TCase *tc = tcase_create("synth");

    tcase_add_test(tc, test_deterministic);
    tcase_add_test(tc, test_items_valid);
    tcase_add_test(tc, test_write_read);
    suite_add_tcase(s, tc);
    return s;
}
