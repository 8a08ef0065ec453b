/*
 * check_val_split.c: the validation split without a model.
 *
 *   sampler   fewshot_split: the held-out items and the training sample are
 *             disjoint, class-balanced and sorted; the split depends on the
 *             seed (same seed same split, another seed another) and not on
 *             the shots; without a split it is fewshot_kshot /
 *             fewshot_fraction exactly; a fraction keeps one item of every
 *             class for training; too small classes are refused naming the
 *             split
 *   config    data.val's forms (none, N, 0.1, 10%, a spec), its refusals with
 *             their messages, the plan rendered back (val only when set)
 *   shipped   the experiment files under experiments/ hold items out
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "datasets/fewshot.h"
#include "experiments/config.h"
#include "suites.h"

#define NC 5
#define PER 20

/* class c holds items c, c + NC, c + 2 NC, ... (interleaved) */
static void make_labels(int *labels)
{
    for (size_t i = 0; i < NC * PER; i++)
        labels[i] = (int)(i % NC);
}

/* sorted, no repeats, disjoint, the counts per class as given */
static void check_split(const int *labels, const size_t *tr, size_t ntr, const size_t *va, size_t nva,
                        size_t tr_per_class, size_t va_per_class)
{
    size_t ctr[NC] = { 0 }, cva[NC] = { 0 };
    char seen[NC * PER] = { 0 };

    for (size_t i = 0; i < ntr; i++) {
        ck_assert(i == 0 || tr[i] > tr[i - 1]);
        ck_assert_uint_lt(tr[i], NC * PER);
        seen[tr[i]] = 1;
        ctr[labels[tr[i]]]++;
    }
    for (size_t i = 0; i < nva; i++) {
        ck_assert(i == 0 || va[i] > va[i - 1]);
        ck_assert_msg(!seen[va[i]], "item %zu is in training and validation", va[i]);
        cva[labels[va[i]]]++;
    }
    for (int c = 0; c < NC; c++) {
        ck_assert_uint_eq(ctr[c], tr_per_class);
        ck_assert_uint_eq(cva[c], va_per_class);
    }
}

START_TEST(test_split_disjoint_seeded)
{
    int labels[NC * PER];
    size_t *tr, *va, ntr, nva, *tr2, *va2, ntr2, nva2;
    struct fewshot_request rq = { .shots = 4, .val_per_class = 3, .seed = 11 };

    make_labels(labels);
    ck_assert_int_eq(fewshot_split(labels, NC * PER, NC, NULL, &rq, &tr, &ntr, &va, &nva), RL_OK);
    ck_assert_uint_eq(ntr, NC * 4);
    ck_assert_uint_eq(nva, NC * 3);
    check_split(labels, tr, ntr, va, nva, 4, 3);

    /* same seed: the same split and sample */
    ck_assert_int_eq(fewshot_split(labels, NC * PER, NC, NULL, &rq, &tr2, &ntr2, &va2, &nva2), RL_OK);
    ck_assert(ntr2 == ntr && nva2 == nva);
    ck_assert(!memcmp(tr, tr2, ntr * sizeof(*tr)) && !memcmp(va, va2, nva * sizeof(*va)));
    free(tr2);
    free(va2);

    /* another seed: another split */
    rq.seed = 12;
    ck_assert_int_eq(fewshot_split(labels, NC * PER, NC, NULL, &rq, &tr2, &ntr2, &va2, &nva2), RL_OK);
    ck_assert_uint_eq(nva2, nva);
    ck_assert(memcmp(va, va2, nva * sizeof(*va)) != 0);
    free(tr2);
    free(va2);

    /* the split does not depend on the shots: the same items held out at 1
     * shot and at 16 (the whole rest of each class) */
    rq.seed = 11;
    rq.shots = 1;
    ck_assert_int_eq(fewshot_split(labels, NC * PER, NC, NULL, &rq, &tr2, &ntr2, &va2, &nva2), RL_OK);
    ck_assert(nva2 == nva && !memcmp(va, va2, nva * sizeof(*va)));
    free(tr2);
    free(va2);
    rq.shots = PER - 3;
    ck_assert_int_eq(fewshot_split(labels, NC * PER, NC, NULL, &rq, &tr2, &ntr2, &va2, &nva2), RL_OK);
    ck_assert(nva2 == nva && !memcmp(va, va2, nva * sizeof(*va)));
    check_split(labels, tr2, ntr2, va2, nva2, PER - 3, 3);      /* the pool minus val, whole */
    free(tr2);
    free(va2);
    free(tr);
    free(va);
}
END_TEST

START_TEST(test_split_fraction_and_none)
{
    int labels[NC * PER];
    size_t *tr, *va, ntr, nva, *want, nwant;
    struct fewshot_request rq = { .fraction = 1.0, .val_fraction = 0.25, .seed = 3 };

    make_labels(labels);
    /* a quarter of every class held out, the whole rest trained on */
    ck_assert_int_eq(fewshot_split(labels, NC * PER, NC, NULL, &rq, &tr, &ntr, &va, &nva), RL_OK);
    check_split(labels, tr, ntr, va, nva, PER - 5, 5);
    ck_assert_uint_eq(ntr + nva, NC * PER);
    free(tr);
    free(va);

    /* a fraction near 1 still leaves one item of every class to train on */
    rq.val_fraction = 0.999;
    ck_assert_int_eq(fewshot_split(labels, NC * PER, NC, NULL, &rq, &tr, &ntr, &va, &nva), RL_OK);
    check_split(labels, tr, ntr, va, nva, 1, PER - 1);
    free(tr);
    free(va);

    /* no split: exactly the samplers of old */
    struct fewshot_request none = { .shots = 4, .seed = 9 };
    ck_assert_int_eq(fewshot_split(labels, NC * PER, NC, NULL, &none, &tr, &ntr, &va, &nva), RL_OK);
    ck_assert_ptr_null(va);
    ck_assert_uint_eq(nva, 0);
    ck_assert_int_eq(fewshot_kshot(labels, NC * PER, NC, NULL, 4, 9, &want, &nwant), RL_OK);
    ck_assert(ntr == nwant && !memcmp(tr, want, ntr * sizeof(*tr)));
    free(tr);
    free(want);
    none = (struct fewshot_request){ .fraction = 0.5, .seed = 9 };
    ck_assert_int_eq(fewshot_split(labels, NC * PER, NC, NULL, &none, &tr, &ntr, &va, &nva), RL_OK);
    ck_assert_int_eq(fewshot_fraction(labels, NC * PER, NC, 0.5, 9, &want, &nwant), RL_OK);
    ck_assert(ntr == nwant && !memcmp(tr, want, ntr * sizeof(*tr)));
    free(tr);
    free(want);
}
END_TEST

START_TEST(test_split_refusals)
{
    int labels[NC * PER];
    size_t *tr, *va, ntr, nva;
    const char *const names[NC] = { "a", "b", "c", "d", "e" };
    struct fewshot_request rq = { .shots = 1, .val_per_class = PER + 1, .seed = 1 };

    make_labels(labels);
    ck_assert_int_eq(fewshot_split(labels, NC * PER, NC, names, &rq, &tr, &ntr, &va, &nva), RL_ERR_ARG);
    ck_assert_str_eq(rl_error_msg(), "validation split: class 0 ('a') has 20 items, fewer than the 21 "
                     "held out (data.val)");
    ck_assert(tr == NULL && va == NULL && ntr == 0 && nva == 0);
    /* all 20 held out: nothing left for one shot */
    rq.val_per_class = PER;
    ck_assert_int_eq(fewshot_split(labels, NC * PER, NC, names, &rq, &tr, &ntr, &va, &nva), RL_ERR_ARG);
    ck_assert_str_eq(rl_error_msg(), "few-shot sampling: class 0 ('a') has 0 items, fewer than 1 shots, "
                     "after holding out 100 validation items (data.val)");
    ck_assert(tr == NULL && va == NULL);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* config                                                                    */

static const char base[] = "[model]\nname = clip-tiny\n[data]\ndataset = shapes-count\nshots = 2\n";

/* parse base + "val = v" (+ extra) and expand its one run */
static void parse_val(const char *v, const char *extra, struct experiment *e, struct run_plan **p)
{
    char text[512];
    size_t n = 0;

    snprintf(text, sizeof(text), "%s%s%s%s\n", base, extra ? extra : "", v ? "val = " : "", v ? v : "");
    ck_assert_msg(experiment_parse(e, text, "t.ini", NULL, 0) == RL_OK, "%s", rl_error_msg());
    ck_assert_int_eq(experiment_expand(e, NULL, NULL, p, &n), RL_OK);
    ck_assert_uint_eq(n, 1);
}

static void expect_val_error(const char *v, const char *extra, const char *msg)
{
    struct experiment e;
    char text[512];

    snprintf(text, sizeof(text), "%s%sval = %s\n", base, extra ? extra : "", v);
    ck_assert_int_eq(experiment_parse(&e, text, "t.ini", NULL, 0), RL_ERR_ARG);
    ck_assert_str_eq(rl_error_msg(), msg);
}

/* the plan's INI holds `line` (NULL: no val line at all), and parses back
 * to the same split */
static void check_render(const struct run_plan *p, const char *line)
{
    char *ini = run_plan_to_ini(p);
    struct experiment e2;
    struct run_plan *p2;
    size_t n = 0;

    if (line)
        ck_assert_msg(strstr(ini, line) != NULL, "%s lacks %s", ini, line);
    else
        ck_assert_msg(strstr(ini, "\nval =") == NULL, "%s", ini);
    ck_assert_int_eq(experiment_parse(&e2, ini, "rendered", NULL, 0), RL_OK);
    ck_assert_int_eq(experiment_expand(&e2, NULL, NULL, &p2, &n), RL_OK);
    ck_assert_int_eq(p2[0].val.kind, p->val.kind);
    ck_assert_uint_eq(p2[0].val.per_class, p->val.per_class);
    ck_assert(p2[0].val.fraction == p->val.fraction);
    ck_assert((p->val.spec == NULL) == (p2[0].val.spec == NULL));
    if (p->val.spec)
        ck_assert_str_eq(p2[0].val.spec, p->val.spec);
    run_plans_free(p2, 1);
    experiment_free(&e2);
    free(ini);
}

START_TEST(test_config_forms)
{
    struct experiment e;
    struct run_plan *p;

    parse_val(NULL, NULL, &e, &p);                  /* default: none */
    ck_assert_int_eq(p[0].val.kind, EXP_VAL_NONE);
    check_render(&p[0], NULL);
    run_plans_free(p, 1);
    experiment_free(&e);

    parse_val("none", NULL, &e, &p);
    ck_assert_int_eq(p[0].val.kind, EXP_VAL_NONE);
    run_plans_free(p, 1);
    experiment_free(&e);

    parse_val("8", NULL, &e, &p);
    ck_assert_int_eq(p[0].val.kind, EXP_VAL_PER_CLASS);
    ck_assert_uint_eq(p[0].val.per_class, 8);
    check_render(&p[0], "\nval = 8\n");
    run_plans_free(p, 1);
    experiment_free(&e);

    parse_val("0.1", NULL, &e, &p);
    ck_assert_int_eq(p[0].val.kind, EXP_VAL_FRACTION);
    ck_assert(p[0].val.fraction == 0.1);
    check_render(&p[0], "\nval = 0.1\n");
    run_plans_free(p, 1);
    experiment_free(&e);

    parse_val("10%", NULL, &e, &p);
    ck_assert_int_eq(p[0].val.kind, EXP_VAL_FRACTION);
    ck_assert(p[0].val.fraction == 0.1);
    check_render(&p[0], "\nval = 0.1\n");
    run_plans_free(p, 1);
    experiment_free(&e);

    parse_val("cifar10:/data/c10:test", "eval = cifar10:/data/c10b:test\n", &e, &p);
    ck_assert_int_eq(p[0].val.kind, EXP_VAL_SPEC);
    ck_assert_str_eq(p[0].val.spec, "cifar10:/data/c10:test");
    check_render(&p[0], "\nval = cifar10:/data/c10:test\n");
    run_plans_free(p, 1);
    experiment_free(&e);
}
END_TEST

START_TEST(test_config_refusals)
{
    const char *forms = "expected none, N (items of every class held out of the training pool), a "
                        "fraction such as 0.1 or 10%, or a dataset spec (such as cifar10:DIR:test)";
    char msg[512];

    expect_val_error("0", NULL, "t.ini:6: data.val = '0': expected an integer in [1, 1000000] (items "
                     "of every class held out)");
    expect_val_error("1.0", NULL, "t.ini:6: data.val = '1.0': expected a fraction in (0, 1) of every "
                     "class of the training pool");
    expect_val_error("100%", NULL, "t.ini:6: data.val = '100%': expected a percentage in (0%, 100%) "
                     "of every class of the training pool");
    snprintf(msg, sizeof(msg), "t.ini:6: data.val = 'some': %s", forms);
    expect_val_error("some", NULL, msg);
    expect_val_error("shapes-count:test", NULL, "t.ini:6: data.val = 'shapes-count:test': is the eval "
                     "(test) set: the test set must not choose anything");
    expect_val_error("shapes-count:train", NULL, "t.ini:6: data.val = 'shapes-count:train': is the "
                     "training set: hold items out of it with val = N or a fraction instead");
    /* a spec with two datasets (the second given by an override) */
    struct experiment e;
    const char *ov[] = { "data.dataset=shapes-count, shapes" };
    snprintf(msg, sizeof(msg), "%sval = shapes\n", base);
    ck_assert_int_eq(experiment_parse(&e, msg, "t.ini", ov, 1), RL_ERR_ARG);
    ck_assert_str_eq(rl_error_msg(), "t.ini:6: data.val = 'shapes': a validation dataset pairs with one "
                     "data.dataset, there are 2 (hold items out instead: val = N or a fraction)");
}
END_TEST

START_TEST(test_shipped_files_hold_out)
{
    static const char *const files[] = { "quickstart.ini", "budget_sweep.ini", "clip_b32_fewshot.ini",
                                         "clip_b32_full.ini" };

    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        struct experiment e;
        char path[256];
        const char *dir = getenv("RANDLORA_EXPERIMENTS");

        snprintf(path, sizeof(path), "%s/%s", dir && *dir ? dir : "experiments", files[i]);
        ck_assert_msg(experiment_load(&e, path, NULL, 0) == RL_OK, "%s", rl_error_msg());
        ck_assert_msg(e.val.kind != EXP_VAL_NONE, "%s has no data.val", files[i]);
        experiment_free(&e);
    }
}
END_TEST

Suite *suite_val_split(void)
{
    Suite *s = suite_create("val_split");
    TCase *tc = tcase_create("sampler");

    tcase_add_test(tc, test_split_disjoint_seeded);
    tcase_add_test(tc, test_split_fraction_and_none);
    tcase_add_test(tc, test_split_refusals);
    suite_add_tcase(s, tc);
    tc = tcase_create("config");
    tcase_add_test(tc, test_config_forms);
    tcase_add_test(tc, test_config_refusals);
    tcase_add_test(tc, test_shipped_files_hold_out);
    suite_add_tcase(s, tc);
    return s;
}
