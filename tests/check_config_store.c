/*
 * check_config_store.c: what a run file stores must read back
 * (experiments/config.h: experiment_expand's checks, run_plan_check_roundtrip).
 *
 *   corpus          the property "render(plan) parses back to plan" over a
 *                   deterministic corpus of 300 random valid experiments
 *                   (random keys, lists, suffixes, UTF-8 text, long values):
 *                   every plan experiment_expand accepts reads back equal in
 *                   every field, and a refusal is RL_ERR_ARG with one line
 *   refused_ids     run ids over EXP_MAX_ID, or starting with '.'
 *   refused_derived derived data.eval, model.pretrain_dir and
 *                   experiment.output that a run file could not read back
 *   refused_ranks   a budget-matched rank over run.rank's limit (VeRA at a
 *                   budget of 1e11), before anything is allocated
 *   refused_values  ';' starting a value; float32 ranges (eps, lr, dropout,
 *                   beta2, tiny magnitudes); layers selecting no layer
 *   utf8            non-UTF-8 bytes in a file or an override are refused;
 *                   UTF-8 text round-trips
 *   checker         run_plan_check_roundtrip and run_plan_diff on plans
 *                   altered by hand (what a fuzzer would hand them)
 */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "core/status.h"
#include "experiments/config.h"
#include "methods/adapter.h"
#include "suites.h"
#include "config_util.h"

/* ------------------------------------------------------------------------ */
/* a random valid experiment                                                 */

struct gen {
    struct rng rng;
    char *text;
    size_t len, cap;
};

static size_t below(struct gen *g, size_t n)
{
    return (size_t)rng_below(&g->rng, n);
}

static void put(struct gen *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct gen *g, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(g->text + g->len, g->cap - g->len, fmt, ap);
    va_end(ap);
    ck_assert(n >= 0 && g->len + (size_t)n < g->cap);
    g->len += (size_t)n;
}

static const char *pick(struct gen *g, const char *const *words, size_t n)
{
    return words[below(g, n)];
}

/* a free-text value: words of ASCII punctuation and UTF-8, single spaces,
 * wrapped onto indented continuation lines in the file */
static void put_text(struct gen *g, size_t n_words, bool braces)
{
    static const char *const words[] = {
        "a", "photo", "café", "naïve", "日本語", "x=y", "#tag", "a;b", "(c)", "100%",
        "\"q\"", "tab\there", "{x}", "--", "ü", "[sec]", "long_word_without_spaces_here",
    };
    size_t col = 0;
    bool brace_done = false;

    for (size_t i = 0; i < n_words; i++) {
        const char *w = pick(g, words, sizeof(words) / sizeof(words[0]));

        if (strchr(w, '=') && col)      /* a continuation line holds no '=' */
            w = "xy";
        if (!strcmp(w, "{x}") || (braces && !brace_done && i == n_words / 2)) {
            w = braces && !brace_done ? "{}" : "x";
            brace_done = true;
        }
        if (i && col > 60) {
            put(g, "\n    ");
            col = 0;
            if (*w == '#')              /* a line starting with '#' is a comment */
                w = "tag";
        } else if (i) {
            put(g, " ");
        }
        put(g, "%s", w);
        col += strlen(w) + 1;
    }
    if (braces && !brace_done)
        put(g, " {}");
}

/* a list of n distinct numbers from a table */
static void put_list(struct gen *g, const char *const *items, size_t n_items, size_t n)
{
    size_t start = below(g, n_items);

    for (size_t i = 0; i < n && i < n_items; i++)
        put(g, "%s%s", i ? ", " : "", items[(start + i) % n_items]);
}

static const char *const methods[] = { "lora", "vera", "randlora", "full", "none" };

/* an axis key: a single value or (sometimes) a list, plain or for a method */
static void put_axis(struct gen *g, const char *key, const char *const *items, size_t n_items,
                     size_t *budget)
{
    size_t n = 1;

    if (*budget > 1 && below(g, 3) == 0) {
        n = 2 + below(g, 2);
        if (n > *budget)
            n = 2;
        *budget /= n;
    }
    if (below(g, 4) == 0)
        put(g, "%s.%s = ", key, pick(g, methods, 5));
    else
        put(g, "%s = ", key);
    put_list(g, items, n_items, n);
    put(g, "\n");
}

static void gen_experiment(struct gen *g)
{
    static const char *const specs[] = {
        "fashion-mnist", "shapes", "shapes-count", "folder:/data/dtd", "cifar10:/d/c10:train",
        "idx:/d/mnist", "folder:/data/eurosat/", "cifar100:/d/c100",
    };
    static const char *const lrs[] = { "1e-3", "3e-4", "0.01", "1e-20", "10", "2.5e-5" };
    static const char *const wds[] = { "0", "0.01", "0.1", "1e-30", "10" };
    static const char *const alphas[] = { "0", "8", "16", "0.5", "1000000" };
    static const char *const drops[] = { "0", "0.1", "0.5", "0.99" };
    static const char *const counts[] = { "1", "2", "5", "17" };
    static const char *const bools[] = { "true", "false" };
    static const char *const profiles[] = { "peft", "paper" };
    static const char *const bases[] = { "dense", "sparse", "very_sparse" };
    static const char *const dinits[] = { "0.1", "-1", "1e-30", "1000000" };
    static const char *const clips[] = { "0", "1", "1e9" };
    size_t axes = 8;            /* the most settings the lists may give */

    g->len = 0;
    g->text[0] = '\0';
    put(g, "; random experiment\n[experiment]\nname = ");
    put(g, "%c", "abcXYZ019_-"[below(g, 11)]);
    for (size_t i = below(g, 20); i > 0; i--)
        put(g, "%c", "abcXYZ019._-"[below(g, 12)]);
    put(g, "\n");
    if (below(g, 2)) {
        put(g, "description = %s", below(g, 3) ? "" : "key=value ");
        put_text(g, 1 + below(g, 40), false);
        put(g, "\n");
    }
    if (below(g, 3) == 0)
        put(g, "output = /tmp/out dir/%zu\n", below(g, 1000));
    put(g, "[model]\n");
    if (below(g, 2))
        put(g, "name = /models/m%zu/clip\n", below(g, 100));
    if (below(g, 2))
        put(g, "pretrain_lr = %s\npretrain_seed = %llu\n", pick(g, lrs, 6),
            (unsigned long long)rng_u64(&g->rng));
    put(g, "[data]\n");
    {
        size_t n = 1 + (below(g, 3) == 0), first = below(g, 8);

        put(g, "dataset = %s", specs[first]);
        if (n > 1)
            put(g, ", %s", specs[(first + 1 + below(g, 7)) % 8]);
        put(g, "\n");
    }
    if (below(g, 2)) {
        put(g, "prompt = ");
        put_text(g, 1 + below(g, 12), true);
        put(g, "\n");
    }
    put(g, "templates = %s\naugment = %s\n", below(g, 2) ? "prompt" : "dataset",
        below(g, 2) ? "none" : "crop_flip");
    if (below(g, 2))
        put(g, "shots = %s\n", below(g, 2) ? "1, 16" : "4");
    if (below(g, 2))
        put(g, "fractions = %s\n", below(g, 2) ? "0.5" : "0.125, 1");
    if (below(g, 2))
        put(g, "sample_seed = %zu\n", below(g, 1000));
    put(g, "eval_limit = %zu\nimage_size = %zu\n", below(g, 5000), below(g, 300));
    {
        static const char *const vals[] = { "none", "8", "0.1", "25%", "folder:/data/val set" };
        const char *v = pick(g, vals, 5);

        /* a validation dataset pairs with one training set, not the eval one */
        if (strcmp(v, "folder:/data/val set") || !strchr(g->text, ','))
            put(g, "val = %s\n", v);
    }

    put(g, "[method]\nmethods = ");
    {
        size_t n = 1 + below(g, 3), first = below(g, 5);

        for (size_t i = 0; i < n; i++)
            put(g, "%s%s", i ? ", " : "", methods[(first + i) % 5]);
        put(g, "\n");
    }
    if (below(g, 3) == 0)
        put(g, "budget = %zu\n", 5000 + below(g, 60000));
    else if (below(g, 2))
        put(g, "rank = %zu\nrank.vera = %zu\n", 1 + below(g, 64), 1 + below(g, 1000));
    put_axis(g, "alpha", alphas, 5, &axes);
    put_axis(g, "dropout", drops, 4, &axes);
    put_axis(g, "rslora", bools, 2, &axes);
    put_axis(g, "vera_d_init", dinits, 4, &axes);
    put_axis(g, "profile", profiles, 2, &axes);
    put_axis(g, "basis", bases, 3, &axes);
    if (below(g, 2))
        put(g, "towers = %s\n", below(g, 2) ? "vision" : "text, vision");
    if (below(g, 2))
        put(g, "layers = %s\n", below(g, 2) ? "1-3" : "2");
    if (below(g, 2))
        put(g, "modules = %s\n", below(g, 2) ? "attn" : "mlp, q_proj");
    if (below(g, 2))
        put(g, "init_seed = %zu\n", below(g, 99));

    put(g, "[train]\n");
    if (below(g, 2)) {
        put_axis(g, "epochs", counts, 4, &axes);
    } else {
        static const char *const steps[] = { "20", "50", "1000" };

        put_axis(g, "steps", steps, 3, &axes);
        put(g, "warmup = %zu\n", below(g, 21));
    }
    put_axis(g, "batch", counts, 4, &axes);
    put_axis(g, "accumulate", counts, 4, &axes);
    put_axis(g, "lr", lrs, 6, &axes);
    put_axis(g, "weight_decay", wds, 5, &axes);
    if (below(g, 2))
        put(g, "lr_min_ratio = %s\n", below(g, 2) ? "0.01" : "0, 0.5");
    put_axis(g, "clip", clips, 3, &axes);
    put(g, "beta2 = %s\neps = %s\n", below(g, 2) ? "0.999" : "0.99999994",
        below(g, 2) ? "1e-8" : "1e-30");
    if (below(g, 2))
        put(g, "recompute = true\n");
    if (below(g, 2))
        put(g, "loss = inbatch\nlogit_scale = raw\nmin_epoch_rule = repeat\n");
    put(g, "[sweep]\nseeds = %s\n", below(g, 2) ? "1" : "1, 18446744073709551615");
}

START_TEST(test_store_corpus)
{
    struct gen g = { .cap = 1 << 16 };
    size_t accepted = 0, refused = 0, plans = 0;

    g.text = malloc(g.cap);
    ck_assert_ptr_nonnull(g.text);
    rng_init(&g.rng, 20261204);
    for (int iter = 0; iter < 300; iter++) {
        struct experiment e;
        struct run_plan *p = NULL;
        struct fake_model fm = { .calls = 0 };
        size_t n = 0;
        int rc;

        gen_experiment(&g);
        rc = parse(&e, g.text);
        ck_assert_msg(rc == RL_OK, "experiment %d: %s\n%s", iter, rl_error_msg(), g.text);
        rc = experiment_expand(&e, fake_shapes, &fm, &p, &n);
        if (rc != RL_OK) {
            /* a refusal is bad input, one line, never a crash */
            ck_assert_msg(rc == RL_ERR_ARG, "experiment %d: %d %s", iter, rc, rl_error_msg());
            ck_assert(strchr(rl_error_msg(), '\n') == NULL);
            ck_assert_ptr_null(p);
            refused++;
        } else {
            for (size_t i = 0; i < n; i++) {
                ck_assert_int_eq(run_plan_check_roundtrip(&p[i]), RL_OK);
                check_round_trip(&p[i]);
            }
            plans += n;
            accepted++;
        }
        run_plans_free(p, n);
        experiment_free(&e);
    }
    /* most of the corpus is accepted (refusals: ranks a layer refuses,
     * values a run file could not read back), and it is not trivial */
    ck_assert_msg(accepted >= 225, "accepted %zu, refused %zu", accepted, refused);
    ck_assert_uint_gt(plans, 2000);
    free(g.text);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* refusals                                                                  */

/* parse (must work) and expand with clip-tiny's fake shapes (must fail with
 * RL_ERR_ARG and exactly msg) */
static void expect_expand_error(const char *text, const char *const *ov, size_t n_ov,
                                const char *msg)
{
    struct experiment e;
    struct run_plan *p = NULL;
    struct fake_model fm = { .calls = 0 };
    size_t n = 0;
    int rc = experiment_parse(&e, text, "t.ini", ov, n_ov);

    ck_assert_msg(rc == RL_OK, "%s", rl_error_msg());
    ck_assert_int_eq(experiment_expand(&e, fake_shapes, &fm, &p, &n), RL_ERR_ARG);
    ck_assert_str_eq(rl_error_msg(), msg);
    ck_assert_ptr_null(p);
    ck_assert_uint_eq(n, 0);
    experiment_free(&e);
}

/* one 4096 x 4096 layer */
static int wide_shapes(void *ctx, const struct run_plan *plan,
                       const struct adapter_shape **shapes, size_t *n)
{
    static const struct adapter_shape wide = { 4096, 4096 };

    (void)ctx;
    (void)plan;
    *shapes = &wide;
    *n = 1;
    return RL_OK;
}

static void expect_expand_error_with(const char *text, exp_shapes_fn shapes, const char *msg)
{
    struct experiment e;
    struct run_plan *p = NULL;
    size_t n = 0;

    ck_assert_int_eq(parse(&e, text), RL_OK);
    ck_assert_int_eq(experiment_expand(&e, shapes, NULL, &p, &n), RL_ERR_ARG);
    ck_assert_str_eq(rl_error_msg(), msg);
    experiment_free(&e);
}

/* like expect_expand_error, the message starting with prefix */
static void expect_expand_error_prefix(const char *text, const char *prefix)
{
    struct experiment e;
    struct run_plan *p = NULL;
    size_t n = 0;

    ck_assert_int_eq(parse(&e, text), RL_OK);
    ck_assert_int_eq(experiment_expand(&e, NULL, NULL, &p, &n), RL_ERR_ARG);
    if (strncmp(rl_error_msg(), prefix, strlen(prefix)))
        ck_abort_msg("'%s' does not start with '%s'", rl_error_msg(), prefix);
    experiment_free(&e);
}

static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);

    ck_assert_ptr_nonnull(s);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

START_TEST(test_store_refused_ids)
{
    char text[512], msg[512];
    char *a = repeat('z', 60);
    struct experiment e;
    struct run_plan *p;
    size_t n;

    /* two datasets in long folders: "<folder>-lora-r8-f1-seed1" */
    snprintf(text, sizeof(text), "[data]\ndataset = folder:/d/%s, folder:/e/%sb\n", a, a);
    snprintf(msg, sizeof(msg), "t.ini: run id '%s-lora-r8-f1-seed1' is 77 characters, over the "
             "limit of 64 (run.id): shorten the dataset folder name or vary fewer keys", a);
    expect_expand_error(text, NULL, 0, msg);
    /* 64 is fine: 64 - strlen("-lora-r8-f1-seed1") = 47 */
    a[47] = '\0';
    snprintf(text, sizeof(text), "[data]\ndataset = folder:/d/%s, folder:/e/%.46s\n", a, a);
    ck_assert_int_eq(parse(&e, text), RL_OK);
    ck_assert_int_eq(experiment_expand(&e, NULL, NULL, &p, &n), RL_OK);
    ck_assert_uint_eq(strlen(p[0].id), 64);
    run_plans_free(p, n);
    experiment_free(&e);
    /* axes make ids long too */
    expect_expand_error("[data]\ndataset = folder:/d/abcdefghijklmnopqrstuvwxyz0123, shapes\n"
                        "[train]\nlr = 1e-3, 2e-3\nweight_decay = 0.01, 0.02\nbatch = 8, 16\n",
                        NULL, 0, "t.ini: run id 'abcdefghijklmnopqrstuvwxyz0123-lora-r8-f1-"
                        "bs8-lr1e-3-wd0.01-seed1' is 65 characters, over the limit of 64 "
                        "(run.id): shorten the dataset folder name or vary fewer keys");
    /* a folder whose name starts with '.' */
    expect_expand_error("[data]\ndataset = folder:/d/.x, shapes\n", NULL, 0,
                        "t.ini: run id '.x-lora-r8-f1-seed1' cannot be stored as run.id: "
                        "expected a name of letters, digits, '.', '_' and '-' (at most 64, not "
                        "starting with '.')");
    free(a);
}
END_TEST

START_TEST(test_store_refused_derived)
{
    char text[512], msg[1024];
    char *a = repeat('w', 150);

    /* data.eval = <spec>:test derived past the longest word a file holds */
    snprintf(text, sizeof(text), "[data]\ndataset = folder:/%s\n", a);
    snprintf(msg, sizeof(msg), "t.ini: run lora-r8-f1-seed1: data.eval = 'folder:/%.112s': has a "
             "word longer than 160 characters (the run file stores it and must read it back)",
             a);
    expect_expand_error(text, NULL, 0, msg);
    /* given explicitly shorter, the same dataset is fine */
    {
        struct experiment e;
        struct run_plan *p;
        size_t n;

        snprintf(text, sizeof(text), "[data]\ndataset = folder:/%s\neval = shapes:test\n", a);
        ck_assert_int_eq(parse(&e, text), RL_OK);
        ck_assert_int_eq(experiment_expand(&e, NULL, NULL, &p, &n), RL_OK);
        run_plans_free(p, n);
        experiment_free(&e);
    }
    /* model.pretrain_dir = out/models/<the directory's base name> */
    snprintf(text, sizeof(text), "[model]\nname = /m/%s\n", a);
    snprintf(msg, sizeof(msg), "t.ini: run lora-r8-f1-seed1: model.pretrain_dir = 'out/models/"
             "%.109s': has a word longer than 160 characters (the run file stores it and must "
             "read it back)", a);
    expect_expand_error(text, NULL, 0, msg);
    /* experiment.output = $RANDLORA_OUT/runs/NAME */
    {
        char *old = getenv("RANDLORA_OUT") ? strdup(getenv("RANDLORA_OUT")) : NULL;
        char root[200];

        snprintf(root, sizeof(root), "/%s", a);
        setenv("RANDLORA_OUT", root, 1);
        snprintf(msg, sizeof(msg), "t.ini: run lora-r8-f1-seed1: experiment.output = '/%.119s': "
                 "has a word longer than 160 characters (the run file stores it and must read "
                 "it back)", a);
        expect_expand_error("[model]\npretrain_dir = /p\n", NULL, 0, msg);
        /* paths (with spaces) are at most 1024 characters, so every file name
         * built on them fits PATH_MAX */
        {
            char *big = repeat('d', 1100);

            for (size_t i = 100; i < 1100; i += 100)
                big[i] = ' ';
            big[0] = '/';
            setenv("RANDLORA_OUT", big, 1);
            expect_expand_error_prefix("[model]\npretrain_dir = /p\n",
                                       "t.ini: run lora-r8-f1-seed1: experiment.output = '/ddd");
            ck_assert_ptr_nonnull(strstr(rl_error_msg(), "': expected a path of at most 1024 "
                                         "characters (the run file stores it"));
            free(big);
        }
        if (old)
            setenv("RANDLORA_OUT", old, 1);
        else
            unsetenv("RANDLORA_OUT");
        free(old);
    }
    free(a);
}
END_TEST

START_TEST(test_store_refused_ranks)
{
    struct experiment e;
    struct run_plan *p;
    struct fake_model fm = { .calls = 0 };
    size_t n;

    /* VeRA's count grows by one per layer and rank: 1e11 would need a rank
     * of ~2e9 (tens of TB of shared bases); refused by name, not aborted */
    expect_expand_error("[method]\nmethods = vera\nbudget = 100000000000\n", NULL, 0,
                        "t.ini: vera at method.budget = 100000000000: the matched rank "
                        "1073741824 is over the limit of 1000000 (run.rank); give a smaller "
                        "budget");
    /* 40 adapted layers: a rank of about 750000 is within the limit */
    ck_assert_int_eq(parse(&e, "[method]\nmethods = vera\nbudget = 30000000\n"), RL_OK);
    ck_assert_int_eq(experiment_expand(&e, fake_shapes, &fm, &p, &n), RL_OK);
    ck_assert_uint_le(p[0].adapter.r, EXP_MAX_RANK);
    check_round_trip(&p[0]);
    run_plans_free(p, n);
    experiment_free(&e);
    /* VeRA's shared bases (r x 4096 and 4096 x r) at r = 1e6 on 4096-wide
     * layers: over EXP_MAX_PARAMS, refused before a run allocates them */
    expect_expand_error_with("[method]\nmethods = vera\nrank = 1000000\n", wide_shapes,
                             "t.ini: vera with rank 1000000: 1004096 trainable and 8192000000 "
                             "shared frozen parameters, over the limit of 4294967296 each");
    /* explicit ranks keep their key's range */
    expect_error("[method]\nrank = 1000001\n", NULL, 0, "t.ini:2: method.rank = '1000001': item "
                 "'1000001': expected an integer in [1, 1000000]");
}
END_TEST

START_TEST(test_store_refused_values)
{
    {
        const char *ov[] = { "experiment.description=;not a comment" };

        expect_error("", ov, 1, "-s: experiment.description = ';not a comment': a value cannot "
                     "start with ';' (an INI file reads it back as a comment)");
    }
    {
        const char *ov[] = { "data.prompt=;{}" };

        expect_error("", ov, 1, "-s: data.prompt = ';{}': a value cannot start with ';' (an INI "
                     "file reads it back as a comment)");
    }
    /* eps: positive, at least 1e-30 (1e-300 is 0 in float32: NaN at step 2) */
    expect_error("[train]\neps = 0\n", NULL, 0, "t.ini:2: train.eps = '0': expected a number in "
                 "[1e-30, 1]");
    expect_error("[train]\neps = 1e-300\n", NULL, 0, "t.ini:2: train.eps = '1e-300': expected a "
                 "number in [1e-30, 1]");
    expect_error("[train]\neps = 1e-31\n", NULL, 0, "t.ini:2: train.eps = '1e-31': expected a "
                 "number in [1e-30, 1]");
    expect_error("[train]\neps = 2\n", NULL, 0, "t.ini:2: train.eps = '2': expected a number in "
                 "[1e-30, 1]");
    expect_error("[train]\nlr = 1e-40\n", NULL, 0, "t.ini:2: train.lr = '1e-40': expected a "
                 "number in [1e-30, 10]");
    expect_error("[model]\npretrain_lr = 0\n", NULL, 0, "t.ini:2: model.pretrain_lr = '0': "
                 "expected a number in [1e-30, 10]");
    /* a non-zero value that float32 would flush or round out of range */
    expect_error("[train]\nweight_decay = 1e-35\n", NULL, 0, "t.ini:2: train.weight_decay = "
                 "'1e-35': expected a number in [0, 10], and 0 or at least 1e-30 in magnitude "
                 "(float32 arithmetic)");
    expect_error("[method]\ndropout = 0.99999999\n", NULL, 0, "t.ini:2: method.dropout = "
                 "'0.99999999': expected a number in [0, 1) also in float32 (it rounds to 1 "
                 "there)");
    expect_error("[train]\nbeta2 = 0.9999999999\n", NULL, 0, "t.ini:2: train.beta2 = "
                 "'0.9999999999': expected a number in [0, 1) also in float32 (it rounds to 1 "
                 "there)");
    {
        struct experiment e;

        ck_assert_int_eq(parse(&e, "[train]\neps = 1e-30\nbeta2 = 0.99999994\n"
                                   "weight_decay = 0\n[method]\ndropout = 0.9999999\n"), RL_OK);
        ck_assert(e.methods[0].train.eps == 1e-30);
        experiment_free(&e);
    }
    /* a floor derived from lr_min_ratio that float32 cannot hold */
    expect_error("[train]\nlr = 2e-30\nlr_min_ratio = 0.25\n", NULL, 0, "t.ini:3: "
                 "train.lr_min_ratio = '0.25': the floor lr x lr_min_ratio = 5e-31 is below "
                 "1e-30 (float32 arithmetic); use 0 or a larger ratio");
    /* targets that select no layer of the 4-layer model */
    expect_expand_error("[method]\nlayers = 99\n", NULL, 0, "t.ini: lora: method.towers, "
                        "method.layers and method.modules (vision:99:q_proj,k_proj,v_proj,fc1,"
                        "fc2;text:99:q_proj,k_proj,v_proj,fc1,fc2) select no layer of model "
                        "clip-tiny");
    expect_expand_error("[method]\nmethods = none, full\nlayers.full = 4-9\n", NULL, 0,
                        "t.ini: full: method.towers, method.layers and method.modules "
                        "(vision:4-9:q_proj,k_proj,v_proj,fc1,fc2;text:4-9:q_proj,k_proj,v_proj,"
                        "fc1,fc2) select no layer of model clip-tiny");
    {
        struct experiment e;
        struct run_plan *p;
        struct fake_model fm = { .calls = 0 };
        size_t n;

        /* `none` trains nothing: its targets do not matter */
        ck_assert_int_eq(parse(&e, "[method]\nmethods = none\nlayers = 99\n"), RL_OK);
        ck_assert_int_eq(experiment_expand(&e, fake_shapes, &fm, &p, &n), RL_OK);
        run_plans_free(p, n);
        experiment_free(&e);
    }
}
END_TEST

START_TEST(test_store_utf8)
{
    struct experiment e;
    struct run_plan *p;
    size_t n;

    expect_error("[experiment]\ndescription = caf\xe9 au lait\n", NULL, 0, "t.ini:2: not valid "
                 "UTF-8 (byte 0xe9 at column 18); experiment files are UTF-8 text");
    expect_error("; comment \xff\n", NULL, 0, "t.ini:1: not valid UTF-8 (byte 0xff at column "
                 "11); experiment files are UTF-8 text");
    /* overlong '/', a surrogate, past U+10FFFF, a cut sequence */
    expect_error("[data]\nprompt = a\xc0\xaf{}\n", NULL, 0, "t.ini:2: not valid UTF-8 (byte "
                 "0xc0 at column 11); experiment files are UTF-8 text");
    expect_error("[data]\nprompt = \xed\xa0\x80{}\n", NULL, 0, "t.ini:2: not valid UTF-8 (byte "
                 "0xed at column 10); experiment files are UTF-8 text");
    expect_error("[data]\nprompt = \xf4\x90\x80\x80{}\n", NULL, 0, "t.ini:2: not valid UTF-8 "
                 "(byte 0xf4 at column 10); experiment files are UTF-8 text");
    expect_error("[data]\nprompt = {}\xe6\x97\n", NULL, 0, "t.ini:2: not valid UTF-8 (byte 0xe6 "
                 "at column 12); experiment files are UTF-8 text");
    {
        const char *ov[] = { "data.prompt=a photo of a {} \xe9t\xe9" };

        expect_error("", ov, 1, "-s: an override is not valid UTF-8 (byte 0xe9 at offset 28); "
                     "values are stored as UTF-8 text");
    }
    /* UTF-8 text is kept as it is and reads back */
    ck_assert_int_eq(parse(&e, "[data]\nprompt = une photo d'un {} \xc3\xa9t\xc3\xa9 "
                               "\xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x93\xb7\n"), RL_OK);
    ck_assert_int_eq(experiment_expand(&e, NULL, NULL, &p, &n), RL_OK);
    ck_assert_str_eq(p[0].prompt, "une photo d'un {} \xc3\xa9t\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac "
                     "\xf0\x9f\x93\xb7");
    check_round_trip(&p[0]);
    run_plans_free(p, n);
    experiment_free(&e);
}
END_TEST

START_TEST(test_store_checker)
{
    struct experiment e;
    struct run_plan *p, q;
    size_t n;
    char *long_word = repeat('v', 170);

    ck_assert_int_eq(parse(&e, "[train]\nlr = 1e-3, 2e-3\n[data]\nshots = 2\n"), RL_OK);
    ck_assert_int_eq(experiment_expand(&e, NULL, NULL, &p, &n), RL_OK);
    ck_assert_int_eq(run_plan_check_roundtrip(&p[0]), RL_OK);
    ck_assert_ptr_null(run_plan_diff(&p[0], &p[0]));
    ck_assert_str_eq(run_plan_diff(&p[0], &p[1]), "run.id");

    /* a description starting with ';' is read back as a comment: empty */
    q = p[0];
    q.description = ";x";
    ck_assert_int_eq(run_plan_check_roundtrip(&q), RL_ERR_ARG);
    ck_assert_str_eq(rl_error_msg(), "its stored configuration reads back with another "
                     "experiment.description");
    /* a word no file line can hold */
    q = p[0];
    q.eval = long_word;
    ck_assert_int_eq(run_plan_check_roundtrip(&q), RL_ERR_ARG);
    if (strncmp(rl_error_msg(), "its stored configuration would not read back: (stored "
                "/config):", 63))
        ck_abort_msg("%s", rl_error_msg());
    ck_assert_ptr_nonnull(strstr(rl_error_msg(), ": has a word longer than 160 characters"));
    /* a rank past run.rank's range */
    q = p[0];
    q.adapter.r = 2000000;
    ck_assert_int_eq(run_plan_check_roundtrip(&q), RL_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(rl_error_msg(), "method.rank = '2000000': item '2000000': "
                                 "expected an integer in [1, 1000000]"));
    /* an id the store refuses */
    q = p[0];
    q.id = "a/b";
    ck_assert_int_eq(run_plan_check_roundtrip(&q), RL_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(rl_error_msg(), "run.id = 'a/b': expected a name"));
    /* an eps float32 flushes to zero */
    q = p[0];
    q.train.eps = 1e-300;
    ck_assert_int_eq(run_plan_check_roundtrip(&q), RL_ERR_ARG);
    /* a value that is not what its text says: the field is named */
    q = p[0];
    q.train.lr = 0.1 + 0.2;
    ck_assert_int_eq(run_plan_check_roundtrip(&q), RL_OK);     /* shortest text reads back */
    q.adapter.alpha = 1.0f / 3.0f;
    ck_assert_int_eq(run_plan_check_roundtrip(&q), RL_OK);
    q = p[0];
    q.train.seed_set = false;                   /* a plan always has its seed resolved */
    ck_assert_int_eq(run_plan_check_roundtrip(&q), RL_ERR_ARG);
    ck_assert_str_eq(rl_error_msg(), "its stored configuration reads back with another "
                     "train.seed");
    run_plans_free(p, n);
    experiment_free(&e);
    free(long_word);

    /* a long value with '=' early: wrapped after its last '=' (a
     * continuation line cannot hold one), so it reads back */
    {
        char text[600];
        const char *ov[] = { text };

        snprintf(text, sizeof(text), "experiment.description=lr=1e-3 chosen by a=b %s",
                 "and then many more words that make this line far longer than any line "
                 "libinih reads in one piece, which is about two hundred characters, so that "
                 "it must be wrapped onto continuation lines when it is stored in a run file");
        ck_assert_int_eq(experiment_parse(&e, "", "t.ini", ov, 1), RL_OK);
        ck_assert_int_eq(experiment_expand(&e, NULL, NULL, &p, &n), RL_OK);
        check_round_trip(&p[0]);
        run_plans_free(p, n);
        experiment_free(&e);
    }
}
END_TEST

Suite *suite_config_store(void)
{
    Suite *s = suite_create("config_store");
    TCase *tc = tcase_create("config_store");

    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_store_corpus);
    tcase_add_test(tc, test_store_refused_ids);
    tcase_add_test(tc, test_store_refused_derived);
    tcase_add_test(tc, test_store_refused_ranks);
    tcase_add_test(tc, test_store_refused_values);
    tcase_add_test(tc, test_store_utf8);
    tcase_add_test(tc, test_store_checker);
    suite_add_tcase(s, tc);
    return s;
}
