/*
 * commonsense_synth.c: the procedural commonsense task and the pretraining
 * corpus (commonsense_synth.h). One small world (animals by size, days,
 * things and their colours, numbers), told as sentences by the corpus and
 * asked about by the five task types.
 */
#include "datasets/commonsense_synth.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/alloc.h"
#include "core/rng.h"
#include "core/status.h"

const char *const CS_SYNTH_TASKS[CS_SYNTH_N_TASKS] = {
    "synth_boolq", "synth_piqa", "synth_qa", "synth_hellaswag", "synth_winogrande",
};

static const enum cs_answer_kind SYNTH_KINDS[CS_SYNTH_N_TASKS] = {
    CS_KIND_TRUE_FALSE, CS_KIND_SOLUTION, CS_KIND_ANSWER, CS_KIND_ENDING, CS_KIND_OPTION,
};

/* smallest to largest */
static const char *const ANIMALS[] = { "ant", "bee", "mouse", "frog", "cat", "dog", "sheep",
                                       "horse", "bear", "elephant", "whale" };
static const char *const DAYS[] = { "Monday", "Tuesday", "Wednesday", "Thursday", "Friday",
                                    "Saturday", "Sunday" };
static const char *const THINGS[][2] = {
    { "the sky", "blue" }, { "grass", "green" }, { "snow", "white" }, { "coal", "black" },
    { "a banana", "yellow" }, { "blood", "red" }, { "an orange", "orange" }, { "milk", "white" },
    { "a lemon", "yellow" }, { "a leaf", "green" }, { "the sea", "blue" }, { "a tomato", "red" },
};
static const char *const COLORS[] = { "blue", "green", "white", "black", "yellow", "red",
                                      "orange", "purple" };

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* ------------------------------------------------------------------ text building */

struct text { char *p; size_t n, cap; };

static void addf(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void addf(struct text *t, const char *fmt, ...)
{
    va_list ap;
    int k;

    va_start(ap, fmt);
    k = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    RL_ASSERT(k >= 0);
    if (t->n + (size_t)k + 1 > t->cap) {
        t->cap = t->cap ? t->cap : 256;
        while (t->n + (size_t)k + 1 > t->cap)
            t->cap *= 2;
        t->p = xrealloc_array(t->p, t->cap, 1);
    }
    va_start(ap, fmt);
    vsnprintf(t->p + t->n, (size_t)k + 1, fmt, ap);
    va_end(ap);
    t->n += (size_t)k;
}

static char *take(struct text *t)
{
    char *s = t->p ? t->p : xstrdup("");

    t->p = NULL;
    t->n = t->cap = 0;
    return s;
}

/* "a" or "an" before an animal's name */
static const char *art(int animal)
{
    return strchr("aeiou", ANIMALS[animal][0]) ? "an" : "a";
}

static int pick(struct rng *r, int n)
{
    return (int)rng_below(r, (uint64_t)n);
}

/* two different indices below n */
static void pick2(struct rng *r, int n, int *a, int *b)
{
    *a = pick(r, n);
    *b = (*a + 1 + pick(r, n - 1)) % n;
}

/* k distinct wrong values around the right one, placed with it at a random
 * slot: values[0..k] hold the choices, the return is the right slot */
static int choices(struct rng *r, int right, int k, int lo, int hi, int *values)
{
    int slot = pick(r, k + 1), n = 0;

    values[slot] = right;
    while (n < k + 1) {
        int v = lo + pick(r, hi - lo + 1), dup = v == right;
        if (n == slot) {
            n++;
            continue;
        }
        for (int j = 0; j < n; j++)
            dup |= values[j] == v;
        if (!dup)
            values[n++] = v;
    }
    return slot;
}

/* ------------------------------------------------------------------ the five task types */

static void item_set(struct cs_item *it, struct text *ins, const char *answer)
{
    struct text out = { 0 };

    addf(&out, "the correct answer is %s", answer);
    it->instruction = take(ins);
    it->input = xstrdup("");
    it->output = take(&out);
    it->answer = xstrdup(answer);
}

static void gen_boolq(struct rng *r, struct cs_item *it)
{
    struct text t = { 0 };
    int a, b, truth;

    addf(&t, "Please answer the following question with true or false, question: ");
    switch (pick(r, 3)) {
    case 0:
        pick2(r, (int)N_OF(ANIMALS), &a, &b);
        addf(&t, "is %s %s bigger than %s %s?", art(a), ANIMALS[a], art(b), ANIMALS[b]);
        truth = a > b;
        break;
    case 1:
        pick2(r, 100, &a, &b);
        addf(&t, "is %d greater than %d?", a, b);
        truth = a > b;
        break;
    default:
        a = pick(r, (int)N_OF(THINGS));
        b = pick(r, 2) ? pick(r, (int)N_OF(COLORS)) : -1;
        addf(&t, "is %s %s?", THINGS[a][0], b < 0 ? THINGS[a][1] : COLORS[b]);
        truth = b < 0 || strcmp(COLORS[b], THINGS[a][1]) == 0;
        break;
    }
    addf(&t, "\n\nAnswer format: true/false");
    item_set(it, &t, truth ? "true" : "false");
}

static void gen_piqa(struct rng *r, struct cs_item *it)
{
    struct text t = { 0 };
    int a = pick(r, 50), b = 1 + pick(r, 40), wrong[2], right;

    right = choices(r, b, 1, 1, 49, wrong);
    addf(&t, "Please choose the correct solution to the question: to get %d from %d, you can"
         "\n\nSolution1: add %d\n\nSolution2: add %d\n\nAnswer format: solution1/solution2",
         a + b, a, wrong[0], wrong[1]);
    item_set(it, &t, right ? "solution2" : "solution1");
}

static void gen_qa(struct rng *r, struct cs_item *it)
{
    struct text t = { 0 };
    int v[5], right, k;
    char ans[24];

    addf(&t, "Please choose the correct answer to the question: ");
    switch (pick(r, 3)) {
    case 0: {
        int d = pick(r, (int)N_OF(DAYS));
        k = 4;
        right = choices(r, (d + 1) % 7, k - 1, 0, 6, v);
        addf(&t, "What day comes after %s?", DAYS[d]);
        for (int i = 0; i < k; i++)
            addf(&t, "\n\nAnswer%d: %s", i + 1, DAYS[v[i]]);
        break;
    }
    case 1: {
        int th = pick(r, (int)N_OF(THINGS)), c = 0;
        while (strcmp(COLORS[c], THINGS[th][1]) != 0)
            c++;
        k = 4;
        right = choices(r, c, k - 1, 0, (int)N_OF(COLORS) - 1, v);
        addf(&t, "What color is %s?", THINGS[th][0]);
        for (int i = 0; i < k; i++)
            addf(&t, "\n\nAnswer%d: %s", i + 1, COLORS[v[i]]);
        break;
    }
    default: {
        int a = pick(r, 50), b = pick(r, 50);
        k = 5;
        right = choices(r, a + b, k - 1, a + b > 10 ? a + b - 10 : 0, a + b + 10, v);
        addf(&t, "What is %d plus %d?", a, b);
        for (int i = 0; i < k; i++)
            addf(&t, "\n\nAnswer%d: %d", i + 1, v[i]);
        break;
    }
    }
    addf(&t, "\n\nAnswer format: answer1");
    for (int i = 2; i <= k; i++)
        addf(&t, "/answer%d", i);
    snprintf(ans, sizeof ans, "answer%d", right + 1);
    item_set(it, &t, ans);
}

static void gen_hellaswag(struct rng *r, struct cs_item *it)
{
    struct text t = { 0 };
    int step = 1 + pick(r, 9), x = pick(r, 60), v[4], right;
    int next = x + 3 * step;
    char ans[24];

    right = choices(r, next, 3, next > 12 ? next - 12 : 0, next + 12, v);
    addf(&t, "Please choose the correct ending to complete the given sentence: counting on by %d: "
         "%d, %d, %d, then", step, x, x + step, x + 2 * step);
    for (int i = 0; i < 4; i++)
        addf(&t, "\n\nEnding%d: %d", i + 1, v[i]);
    addf(&t, "\n\nAnswer format: ending1/ending2/ending3/ending4");
    snprintf(ans, sizeof ans, "ending%d", right + 1);
    item_set(it, &t, ans);
}

static void gen_winogrande(struct rng *r, struct cs_item *it)
{
    struct text t = { 0 };
    int a, b, heavier = pick(r, 2), right;

    pick2(r, (int)N_OF(ANIMALS), &a, &b);
    /* the blank is the bigger animal when asking "heavier", the smaller for "lighter" */
    right = (a > b) == heavier ? 0 : 1;
    addf(&t, "Please choose the correct answer to fill in the blank to complete the given "
         "sentence: The %s is %s than the %s, so the _ is %s.\n\nOption1: %s\n\nOption2: %s"
         "\n\nAnswer format: option1/option2", ANIMALS[a], a > b ? "bigger" : "smaller",
         ANIMALS[b], heavier ? "heavier" : "lighter", ANIMALS[a], ANIMALS[b]);
    item_set(it, &t, right ? "option2" : "option1");
}

static void (*const GENERATORS[CS_SYNTH_N_TASKS])(struct rng *, struct cs_item *) = {
    gen_boolq, gen_piqa, gen_qa, gen_hellaswag, gen_winogrande,
};

/* ------------------------------------------------------------------ sets */

int cs_synth_task_kind(const char *name, enum cs_answer_kind *kind)
{
    for (int k = 0; k < CS_SYNTH_N_TASKS; k++)
        if (strcmp(name, CS_SYNTH_TASKS[k]) == 0) {
            *kind = SYNTH_KINDS[k];
            return RL_OK;
        }
    return rl_error_set(RL_ERR_ARG, "procedural task '%s' is unknown (known: %s)", name,
                        cs_synth_task_names());
}

const char *cs_synth_task_names(void)
{
    return "synth_boolq, synth_piqa, synth_qa, synth_hellaswag, synth_winogrande";
}

void cs_synth_train(struct cs_set *set, uint64_t seed, size_t n)
{
    struct rng root, r;

    rng_init(&root, seed);
    rng_split(&r, &root, 0);
    set->items = xcalloc(n + 1, sizeof(*set->items));
    set->n = n;
    for (size_t i = 0; i < n; i++)
        GENERATORS[i % CS_SYNTH_N_TASKS](&r, &set->items[i]);
}

int cs_synth_test(struct cs_set *set, const char *task, uint64_t seed, size_t n)
{
    struct rng root, r;
    int k = 0;

    set->items = NULL;
    set->n = 0;
    while (k < CS_SYNTH_N_TASKS && strcmp(task, CS_SYNTH_TASKS[k]) != 0)
        k++;
    if (k == CS_SYNTH_N_TASKS)
        return rl_error_set(RL_ERR_ARG, "procedural task '%s' is unknown (known: %s)", task,
                            cs_synth_task_names());
    rng_init(&root, seed);
    rng_split(&r, &root, 1000 + (uint64_t)k);
    set->items = xcalloc(n + 1, sizeof(*set->items));
    set->n = n;
    for (size_t i = 0; i < n; i++)
        GENERATORS[k](&r, &set->items[i]);
    return RL_OK;
}

static int make_dir(const char *path)
{
    if (mkdir(path, 0777) == 0 || errno == EEXIST)
        return RL_OK;
    return rl_error_set(RL_ERR_IO, "%s: cannot create the directory: %s", path, strerror(errno));
}

int cs_synth_write(const char *dir, uint64_t seed, size_t n_train, size_t n_test)
{
    size_t cap = strlen(dir) + 64;
    char *path = xmalloc(cap);
    struct cs_set set;
    int rc = make_dir(dir);

    if (rc == RL_OK) {
        snprintf(path, cap, "%s/train.json", dir);
        cs_synth_train(&set, seed, n_train);
        rc = cs_write(&set, path);
        cs_free(&set);
    }
    for (int k = 0; k < CS_SYNTH_N_TASKS && rc == RL_OK; k++) {
        snprintf(path, cap, "%s/%s", dir, CS_SYNTH_TASKS[k]);
        if ((rc = make_dir(path)) != RL_OK)
            break;
        snprintf(path, cap, "%s/%s/test.json", dir, CS_SYNTH_TASKS[k]);
        cs_synth_test(&set, CS_SYNTH_TASKS[k], seed, n_test);
        rc = cs_write(&set, path);
        cs_free(&set);
    }
    free(path);
    return rc;
}

/* ------------------------------------------------------------------ corpus */

static void fact(struct rng *r, struct text *t)
{
    int a, b;

    switch (pick(r, 7)) {
    case 0:
        pick2(r, (int)N_OF(ANIMALS), &a, &b);
        addf(t, "%s %s is %s than %s %s, so the %s is %s.\n", art(a)[1] ? "An" : "A",
             ANIMALS[a], a > b ? "bigger" : "smaller", art(b), ANIMALS[b], ANIMALS[a],
             a > b ? "heavier" : "lighter");
        break;
    case 1:
        pick2(r, 100, &a, &b);
        addf(t, "%d is %s than %d.\n", a, a > b ? "greater" : "less", b);
        break;
    case 2:
        a = pick(r, 50);
        b = pick(r, 50);
        addf(t, "%d plus %d is %d.\n", a, b, a + b);
        break;
    case 3:
        a = pick(r, 7);
        addf(t, "After %s comes %s.\n", DAYS[a], DAYS[(a + 1) % 7]);
        break;
    case 4:
        a = pick(r, (int)N_OF(THINGS));
        addf(t, "The color of %s is %s.\n", THINGS[a][0], THINGS[a][1]);
        break;
    case 5:
        a = 1 + pick(r, 9);
        b = pick(r, 60);
        addf(t, "Counting on by %d: %d, %d, %d, %d.\n", a, b, b + a, b + 2 * a, b + 3 * a);
        break;
    default:
        pick2(r, (int)N_OF(ANIMALS), &a, &b);
        addf(t, "Is %s %s bigger than %s %s? %s.\n", art(a), ANIMALS[a], art(b), ANIMALS[b],
             a > b ? "Yes" : "No");
        break;
    }
}

char *cs_synth_corpus(uint64_t seed, size_t n_bytes, size_t *len)
{
    struct rng root, r;
    struct text t = { 0 };

    rng_init(&root, seed);
    rng_split(&r, &root, 2000);
    do
        fact(&r, &t);
    while (t.n < n_bytes);
    *len = t.n;
    return take(&t);
}
