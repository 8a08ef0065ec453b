/*
 * check_tokenizer.c: the CLIP BPE tokenizer against the reference
 * (tests/fixtures/tokenizer/, made by tests/ref/make_tokenizer_fixture.py
 * from a port of OpenAI's SimpleTokenizer: 40 strings, ids and framed rows),
 * the three file forms (vocab.json + merges.txt, tokenizer.json with "a b"
 * and ["a", "b"] merges), the golden rows of clip.md 5.7 that need no merges
 * (with the 512 byte tokens and the specials at 49406/49407; the full table
 * needs the real 49,408-token vocabulary and runs only when
 * RANDLORA_CLIP_TOKENIZER names a directory holding it), framing, hostile
 * files and text, and the byte-level tokenizer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/rng.h"
#include "core/status.h"
#include "models/tokenizer.h"
#include "suites.h"
#include "test_util.h"

/* ---------------------------------------------------------------- helpers */

static char *fixture_copy(const char *name)
{
    return xstrdup(fixture_path(name));
}

static struct tokenizer *load_fixture(void)
{
    char *v = fixture_copy("tokenizer/vocab.json"), *m = fixture_copy("tokenizer/merges.txt");
    struct tokenizer *t = NULL;
    int rc = tok_load_bpe(&t, v, m);

    if (rc != RL_OK)
        fprintf(stderr, "load: %s\n", rl_error_msg());
    ck_assert_int_eq(rc, RL_OK);
    free(v);
    free(m);
    return t;
}

struct tcase_line {
    char *text;
    size_t len;
    int32_t *ids, *framed;
    size_t nids, nframed;
};

static int32_t *parse_ids(char *s, size_t *n)
{
    int32_t *v = xmalloc_array(strlen(s) / 2 + 1, sizeof(*v));
    char *tok, *save = NULL;

    *n = 0;
    for (tok = strtok_r(s, " ", &save); tok; tok = strtok_r(NULL, " ", &save))
        v[(*n)++] = (int32_t)strtol(tok, NULL, 10);
    return v;
}

/* expected.txt: hex TAB ids TAB framed ids */
static struct tcase_line *read_expected(size_t *count)
{
    FILE *fp = fopen(fixture_path("tokenizer/expected.txt"), "r");
    struct tcase_line *c = NULL;
    size_t n = 0, cap = 0;
    char *line = NULL;
    size_t lcap = 0;

    ck_assert_msg(fp != NULL, "cannot open %s", fixture_path("tokenizer/expected.txt"));
    while (getline(&line, &lcap, fp) > 0) {
        char *hex, *ids, *framed, *save = NULL;
        size_t hl;
        if (line[0] == '#')
            continue;
        line[strcspn(line, "\n")] = '\0';
        hex = strtok_r(line, "\t", &save);
        ids = strtok_r(NULL, "\t", &save);
        framed = strtok_r(NULL, "\t", &save);
        if (framed == NULL) {          /* empty ids field: two tabs in a row */
            framed = ids;
            ids = (char *)"";
        }
        ck_assert_ptr_nonnull(hex);
        ck_assert_ptr_nonnull(framed);
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            c = xrealloc_array(c, cap, sizeof(*c));
        }
        hl = strcmp(hex, "-") == 0 ? 0 : strlen(hex);
        c[n].len = hl / 2;
        c[n].text = xmalloc(hl / 2 + 1);
        for (size_t i = 0; i < hl / 2; i++) {
            unsigned b;
            ck_assert_int_eq(sscanf(hex + 2 * i, "%2x", &b), 1);
            c[n].text[i] = (char)b;
        }
        c[n].text[hl / 2] = '\0';
        {
            char *cp = xstrdup(ids);
            c[n].ids = parse_ids(cp, &c[n].nids);
            free(cp);
        }
        c[n].framed = parse_ids(framed, &c[n].nframed);
        n++;
    }
    free(line);
    fclose(fp);
    *count = n;
    return c;
}

static void free_expected(struct tcase_line *c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(c[i].text);
        free(c[i].ids);
        free(c[i].framed);
    }
    free(c);
}

static void print_ids(const char *what, const int32_t *v, size_t n)
{
    fprintf(stderr, "  %s:", what);
    for (size_t i = 0; i < n; i++)
        fprintf(stderr, " %d", (int)v[i]);
    fprintf(stderr, "\n");
}

/* every fixture case through t; returns the number of mismatches */
static int check_all_cases(const struct tokenizer *t, const char *label)
{
    size_t n;
    struct tcase_line *c = read_expected(&n);
    int bad = 0;

    ck_assert_uint_ge(n, 30);
    for (size_t i = 0; i < n; i++) {
        int32_t *ids, row[TOK_CLIP_CONTEXT];
        size_t nids;
        int eot, want_eot = 0;

        ck_assert_int_eq(tok_tokenize(t, c[i].text, c[i].len, &ids, &nids), RL_OK);
        if (nids != c[i].nids || (nids && memcmp(ids, c[i].ids, nids * sizeof(*ids)) != 0)) {
            fprintf(stderr, "%s: case %zu ('%s'): ids differ\n", label, i, c[i].text);
            print_ids("got ", ids, nids);
            print_ids("want", c[i].ids, c[i].nids);
            bad++;
        }
        free(ids);
        ck_assert_uint_eq(c[i].nframed, TOK_CLIP_CONTEXT);
        ck_assert_int_eq(tok_encode_n(t, c[i].text, c[i].len, row, &eot), RL_OK);
        while (c[i].framed[want_eot] != tok_eot(t))
            want_eot++;
        if (memcmp(row, c[i].framed, sizeof(row)) != 0 || eot != want_eot) {
            fprintf(stderr, "%s: case %zu: framed row differs (eot %d, want %d)\n", label, i,
                    eot, want_eot);
            print_ids("got ", row, TOK_CLIP_CONTEXT);
            print_ids("want", c[i].framed, TOK_CLIP_CONTEXT);
            bad++;
        }
    }
    free_expected(c, n);
    return bad;
}

static char tmpdir[256];

static void tmp_setup(void)
{
    const char *base = getenv("TMPDIR");

    snprintf(tmpdir, sizeof(tmpdir), "%s/rl_tok_XXXXXX", base && *base ? base : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static const char *tmp_names[] = { "vocab.json", "merges.txt", "tokenizer.json" };

static void tmp_teardown(void)
{
    char p[512];

    for (size_t i = 0; i < sizeof(tmp_names) / sizeof(tmp_names[0]); i++) {
        snprintf(p, sizeof(p), "%s/%s", tmpdir, tmp_names[i]);
        unlink(p);
    }
    rmdir(tmpdir);
}

static const char *tmp_write(const char *name, const char *text)
{
    static char p[3][512];
    static int k;
    FILE *fp;
    char *path = p[k++ % 3];

    snprintf(path, 512, "%s/%s", tmpdir, name);
    fp = fopen(path, "wb");
    ck_assert_ptr_nonnull(fp);
    fputs(text, fp);
    fclose(fp);
    return path;
}

/* the fixture's vocab.json text with an extra suffix spliced before the final brace */
static char *read_text(const char *path)
{
    FILE *fp = fopen(path, "rb");
    long n;
    char *s;

    ck_assert_ptr_nonnull(fp);
    fseek(fp, 0, SEEK_END);
    n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    s = xmalloc((size_t)n + 1);
    ck_assert_uint_eq(fread(s, 1, (size_t)n, fp), (size_t)n);
    s[n] = '\0';
    fclose(fp);
    return s;
}

/* load tmp vocab.json (given text) + merges.txt (given text); returns the status */
static int load_tmp(const char *vocab, const char *merges)
{
    struct tokenizer *t = NULL;
    const char *v = tmp_write("vocab.json", vocab);
    char vp[512];
    int rc;

    snprintf(vp, sizeof(vp), "%s", v);
    rc = tok_load_bpe(&t, vp, tmp_write("merges.txt", merges));
    ck_assert(rc == RL_OK || t == NULL);
    tok_free(t);
    return rc;
}

static int load_tmp_json(const char *json)
{
    struct tokenizer *t = NULL;
    int rc = tok_load_json(&t, tmp_write("tokenizer.json", json));

    ck_assert(rc == RL_OK || t == NULL);
    tok_free(t);
    return rc;
}

#define ASSERT_ERR(expr, code, needle)                                                    \
    do {                                                                                  \
        int rc_ = (expr);                                                                 \
        ck_assert_msg(rc_ == (code), "%s: got %d, want %d (%s)", #expr, rc_, (code),      \
                      rl_error_msg());                                                    \
        ck_assert_msg(strstr(rl_error_msg(), (needle)) != NULL,                           \
                      "message '%s' lacks '%s'", rl_error_msg(), (needle));               \
    } while (0)

/* ---------------------------------------------------------------- reference ids */

START_TEST(test_fixture_vocab_merges)
{
    struct tokenizer *t = load_fixture();

    ck_assert_int_eq(tok_kind(t), TOK_BPE);
    ck_assert_int_eq(tok_sot(t), 725);
    ck_assert_int_eq(tok_eot(t), 726);
    ck_assert_int_eq(tok_vocab_size(t), 727);
    ck_assert_int_eq(tok_context(t), 77);
    ck_assert_int_eq(check_all_cases(t, "vocab.json+merges.txt"), 0);
    tok_free(t);
}
END_TEST

START_TEST(test_fixture_tokenizer_json)
{
    const char *names[] = { "tokenizer/tokenizer.json", "tokenizer/tokenizer_pairs.json" };

    for (int i = 0; i < 2; i++) {
        struct tokenizer *t = NULL;
        int rc = tok_load_json(&t, fixture_path(names[i]));
        ck_assert_msg(rc == RL_OK, "%s", rl_error_msg());
        ck_assert_int_eq(tok_vocab_size(t), 727);
        ck_assert_int_eq(check_all_cases(t, names[i]), 0);
        tok_free(t);
    }
}
END_TEST

START_TEST(test_load_dir)
{
    struct tokenizer *t = NULL;
    char *dir = fixture_copy("tokenizer");
    int32_t row[77];

    ck_assert_int_eq(tok_load_dir(&t, dir), RL_OK);
    ck_assert_int_eq(tok_encode(t, "a photo of a cat.", row, NULL), RL_OK);
    ck_assert_int_eq(row[1], 320);
    tok_free(t);
    free(dir);
    tmp_setup();
    ASSERT_ERR(tok_load_dir(&t, tmpdir), RL_ERR_IO, "no vocab.json");
    ck_assert_ptr_null(t);
    /* only tokenizer.json: that one is used */
    {
        char *j = read_text(fixture_path("tokenizer/tokenizer.json"));
        tmp_write("tokenizer.json", j);
        free(j);
    }
    ck_assert_int_eq(tok_load_dir(&t, tmpdir), RL_OK);
    tok_free(t);
    tmp_teardown();
}
END_TEST

/* clip.md 5.7 rows whose ids need no merges: the base vocabulary gives them exactly */
START_TEST(test_golden_base)
{
    struct tokenizer *t = NULL;
    char *v = fixture_copy("tokenizer/base_vocab.json"), *m = fixture_copy("tokenizer/base_merges.txt");
    int32_t row[77];
    int eot;
    static const int32_t empty[] = { 49406, 49407 };
    static const int32_t digits[] = { 49406, 272, 273, 274, 275, 49407 };
    static const int32_t usa[] = { 49406, 340, 269, 338, 269, 320, 269, 49407 };
    char *words;

    ck_assert_int_eq(tok_load_bpe(&t, v, m), RL_OK);
    ck_assert_int_eq(tok_vocab_size(t), 49408);
    ck_assert_int_eq(tok_encode(t, "", row, &eot), RL_OK);
    ck_assert_mem_eq(row, empty, sizeof(empty));
    ck_assert_int_eq(eot, 1);
    for (int i = 2; i < 77; i++)
        ck_assert_int_eq(row[i], 0);
    ck_assert_int_eq(tok_encode(t, "1234", row, &eot), RL_OK);
    ck_assert_mem_eq(row, digits, sizeof(digits));
    ck_assert_int_eq(eot, 5);
    ck_assert_int_eq(tok_encode(t, "U.S.A.", row, &eot), RL_OK);
    ck_assert_mem_eq(row, usa, sizeof(usa));
    /* the merge-free positions of other rows */
    ck_assert_int_eq(tok_encode(t, "Hello, World!", row, NULL), RL_OK);
    ck_assert_int_eq(row[6], 267);                 /* "," after h e l l o</w> */
    ck_assert_int_eq(tok_encode(t, "&amp; <|endoftext|>", row, &eot), RL_OK);
    ck_assert_int_eq(row[1], 261);                 /* "&" */
    ck_assert_int_eq(row[5], 282);                 /* ";" after a m p</w>: HF-fast form */
    ck_assert_int_eq(row[6], 49407);               /* literal <|endoftext|> */
    ck_assert_int_eq(row[7], 49407);
    ck_assert_int_eq(eot, 6);
    /* 100 x "word", truncated: 77 ids, the end token forced last */
    words = xmalloc(100 * 5);
    for (int i = 0; i < 100; i++)
        memcpy(words + 5 * i, i < 99 ? "word " : "word\0", 5);
    ck_assert_int_eq(tok_encode(t, words, row, &eot), RL_OK);
    ck_assert_int_eq(row[0], 49406);
    ck_assert_int_eq(row[76], 49407);
    ck_assert_int_eq(eot, 76);
    ck_assert_int_eq(row[75], row[71]);            /* w o r d</w> repeating */
    free(words);
    tok_free(t);
    free(v);
    free(m);
}
END_TEST

/* the whole 5.7 table, with the real vocabulary when a user points at it */
START_TEST(test_golden_real)
{
    const char *dir = getenv("RANDLORA_CLIP_TOKENIZER");
    static const struct { const char *text; int32_t ids[12]; int n; } g[] = {
        { "", { 49406, 49407 }, 2 },
        { "a photo of a cat.", { 49406, 320, 1125, 539, 320, 2368, 269, 49407 }, 8 },
        { "a photo of a dog.", { 49406, 320, 1125, 539, 320, 1929, 269, 49407 }, 8 },
        { "a photo of a Abyssinian.", { 49406, 320, 1125, 539, 320, 16342, 690, 36638, 269, 49407 }, 10 },
        { "Hello, World!", { 49406, 3306, 267, 1002, 256, 49407 }, 6 },
        { "it's a dog's life", { 49406, 585, 568, 320, 1929, 568, 970, 49407 }, 8 },
        { "don't", { 49406, 847, 713, 49407 }, 4 },
        { "  multiple   spaces\tand\nnewlines ", { 49406, 6470, 9006, 537, 1218, 3418, 49407 }, 7 },
        { "1234", { 49406, 272, 273, 274, 275, 49407 }, 6 },
        { "U.S.A.", { 49406, 340, 269, 338, 269, 320, 269, 49407 }, 8 },
        { "caf\xc3\xa9 na\xc3\xafve", { 49406, 15304, 1097, 35689, 563, 49407 }, 6 },
        { "a centered satellite photo of permanent crop land.",
          { 49406, 320, 24584, 10316, 1125, 539, 11144, 9955, 973, 269, 49407 }, 11 },
        { "a photo of a kite (bird of prey).",
          { 49406, 320, 1125, 539, 320, 19867, 263, 3329, 539, 17131, 1818, 49407 }, 12 },
        { "itap of a goldfish.", { 49406, 529, 2728, 539, 320, 40293, 269, 49407 }, 8 },
        { "a goldfish in a video game.", { 49406, 320, 40293, 530, 320, 1455, 1063, 269, 49407 }, 9 },
        { "An image of Abyssinian", { 49406, 550, 2867, 539, 16342, 690, 36638, 49407 }, 8 },
        /* no html.unescape: the Hugging Face fast row */
        { "&amp; <|endoftext|>", { 49406, 261, 6259, 282, 49407, 49407 }, 6 },
    };
    struct tokenizer *t = NULL;
    int32_t row[77];
    char *words;

    if (!dir || !*dir) {
        fprintf(stderr, "tokenizer: golden table of clip.md 5.7 skipped "
                "(set RANDLORA_CLIP_TOKENIZER to a directory with the real vocab)\n");
        return;
    }
    ck_assert_msg(tok_load_dir(&t, dir) == RL_OK, "%s", rl_error_msg());
    for (size_t i = 0; i < sizeof(g) / sizeof(g[0]); i++) {
        ck_assert_int_eq(tok_encode(t, g[i].text, row, NULL), RL_OK);
        if (memcmp(row, g[i].ids, (size_t)g[i].n * sizeof(int32_t)) != 0) {
            print_ids("got ", row, (size_t)g[i].n);
            print_ids("want", g[i].ids, (size_t)g[i].n);
            ck_abort_msg("golden row '%s' differs", g[i].text);
        }
    }
    words = xmalloc(100 * 5);
    for (int i = 0; i < 100; i++)
        memcpy(words + 5 * i, i < 99 ? "word " : "word\0", 5);
    ck_assert_int_eq(tok_encode(t, words, row, NULL), RL_OK);
    ck_assert_int_eq(row[74], 2653);
    ck_assert_int_eq(row[75], 2653);
    ck_assert_int_eq(row[76], 49407);
    free(words);
    tok_free(t);
}
END_TEST

/* ---------------------------------------------------------------- framing */

START_TEST(test_framing)
{
    struct tokenizer *t = load_fixture();
    int32_t row[77], small[8];
    int32_t ids2[2 * 77];
    int eot, eots[2];
    const char *texts[] = { "a photo of a cat.", "hello world" };
    const char *longer = "a photo of a cat. a photo of a dog.";

    /* HF padding with the end token */
    ck_assert_int_eq(tok_set_frame(t, 77, tok_eot(t), true), RL_OK);
    ck_assert_int_eq(tok_encode(t, "a photo of a cat.", row, &eot), RL_OK);
    ck_assert_int_eq(eot, 7);
    for (int i = 7; i < 77; i++)
        ck_assert_int_eq(row[i], tok_eot(t));
    /* a literal end token in the text: the first one counts */
    ck_assert_int_eq(tok_encode(t, "cat <|endoftext|> dog", row, &eot), RL_OK);
    ck_assert_int_eq(eot, 2);
    /* small context, truncation keeps the end token last */
    ck_assert_int_eq(tok_set_frame(t, 8, 0, true), RL_OK);
    ck_assert_int_eq(tok_encode(t, longer, small, &eot), RL_OK);
    ck_assert_int_eq(small[0], tok_sot(t));
    ck_assert_int_eq(small[7], tok_eot(t));
    ck_assert_int_eq(eot, 7);
    ck_assert_int_eq(small[1], 320);
    /* exactly fitting: 6 tokens + 2 */
    ck_assert_int_eq(tok_encode(t, "a photo of a cat.", small, &eot), RL_OK);
    ck_assert_int_eq(eot, 7);
    /* truncation off: an error, the row still written */
    ck_assert_int_eq(tok_set_frame(t, 8, 0, false), RL_OK);
    ASSERT_ERR(tok_encode(t, longer, small, &eot), RL_ERR_ARG, "does not fit the context of 8");
    ck_assert_int_eq(small[7], tok_eot(t));
    ck_assert_int_eq(tok_encode(t, "a photo of a cat.", small, NULL), RL_OK);
    /* bad settings */
    ck_assert_int_eq(tok_set_frame(t, 1, 0, true), RL_ERR_ARG);
    ck_assert_int_eq(tok_set_frame(t, 77, -1, true), RL_ERR_ARG);
    ck_assert_int_eq(tok_context(t), 8);
    /* batch */
    ck_assert_int_eq(tok_set_frame(t, 77, 0, true), RL_OK);
    ck_assert_int_eq(tok_encode_batch(t, texts, 2, ids2, eots), RL_OK);
    ck_assert_int_eq(tok_encode(t, texts[1], row, &eot), RL_OK);
    ck_assert_mem_eq(ids2 + 77, row, sizeof(row));
    ck_assert_int_eq(eots[1], eot);
    ck_assert_int_eq(eots[0], 7);
    ck_assert_int_eq(tok_set_frame(t, 4, 0, false), RL_OK);
    ASSERT_ERR(tok_encode_batch(t, texts, 2, ids2, NULL), RL_ERR_ARG, "text 0:");
    tok_free(t);
}
END_TEST

START_TEST(test_decode)
{
    struct tokenizer *t = load_fixture();
    int32_t *ids;
    size_t n, len;
    char *s;
    int32_t bad = 100000;

    const char *text = "A photo of a CAF\xc3\x89, caf\xc3\xa9!";

    ck_assert_int_eq(tok_tokenize(t, text, strlen(text), &ids, &n), RL_OK);
    ck_assert_int_eq(tok_decode(t, ids, n, &s, &len), RL_OK);
    ck_assert_str_eq(s, "a photo of a caf\xc3\xa9 , caf\xc3\xa9 ! ");
    ck_assert_uint_eq(len, strlen(s));
    free(s);
    free(ids);
    ck_assert_int_eq(tok_decode(t, (const int32_t[]){ 725, 726 }, 2, &s, NULL), RL_OK);
    ck_assert_str_eq(s, "<|startoftext|><|endoftext|>");
    free(s);
    ASSERT_ERR(tok_decode(t, &bad, 1, &s, NULL), RL_ERR_ARG, "100000");
    tok_free(t);
}
END_TEST

/* ---------------------------------------------------------------- hostile text */

START_TEST(test_hostile_text)
{
    struct tokenizer *t = load_fixture();
    struct rng r;
    int32_t row[77], *ids;
    size_t n;
    char *buf, *back;
    size_t blen;
    const size_t big = 200000;
    clock_t t0;

    /* every single byte and random byte strings: replaced, never rejected */
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        ck_assert_int_eq(tok_encode_n(t, &c, 1, row, NULL), RL_OK);
        ck_assert_int_eq(row[0], tok_sot(t));
    }
    rng_init(&r, 1234);
    buf = xmalloc(big + 1);
    for (int k = 0; k < 200; k++) {
        size_t len = rng_u64(&r) % 64;
        for (size_t i = 0; i < len; i++)
            buf[i] = (char)(rng_u64(&r) & 0xFF);
        ck_assert_int_eq(tok_encode_n(t, buf, len, row, NULL), RL_OK);
    }
    /* one huge word and one huge symbol run stay fast (BPE is n log n here) */
    t0 = clock();
    for (size_t i = 0; i < big; i++)
        buf[i] = "photo"[i % 5];
    ck_assert_int_eq(tok_tokenize(t, buf, big, &ids, &n), RL_OK);
    ck_assert_uint_lt(n, big);
    ck_assert_int_eq(tok_decode(t, ids, n, &back, &blen), RL_OK);
    ck_assert_uint_eq(blen, big + 1);              /* the word and the space of its </w> */
    ck_assert_mem_eq(back, buf, big);
    free(back);
    free(ids);
    memset(buf, '!', big);
    ck_assert_int_eq(tok_tokenize(t, buf, big, &ids, &n), RL_OK);
    ck_assert_uint_eq(n, big);
    free(ids);
    ck_assert_msg((double)(clock() - t0) / CLOCKS_PER_SEC < 2.0, "long words too slow");
    free(buf);
    tok_free(t);
}
END_TEST

/* ---------------------------------------------------------------- hostile files */

START_TEST(test_hostile_files)
{
    struct tokenizer *t = (struct tokenizer *)1;
    char *vocab = read_text(fixture_path("tokenizer/vocab.json"));
    char *merges = read_text(fixture_path("tokenizer/merges.txt"));
    char *tj = read_text(fixture_path("tokenizer/tokenizer.json"));
    char *s;
    size_t vl = strlen(vocab);

    tmp_setup();
    /* missing files */
    ASSERT_ERR(tok_load_bpe(&t, "/nonexistent/vocab.json", fixture_path("tokenizer/merges.txt")),
               RL_ERR_IO, "/nonexistent/vocab.json: cannot open");
    ck_assert_ptr_null(t);
    ASSERT_ERR(tok_load_bpe(&t, fixture_path("tokenizer/vocab.json"), "/nonexistent/merges.txt"),
               RL_ERR_IO, "/nonexistent/merges.txt");
    ASSERT_ERR(tok_load_json(&t, "/nonexistent/tokenizer.json"), RL_ERR_IO, "cannot open");
    ASSERT_ERR(tok_load_bpe(&t, tmpdir, fixture_path("tokenizer/merges.txt")), RL_ERR_IO,
               "not a regular file");
    /* the unchanged texts load */
    ck_assert_int_eq(load_tmp(vocab, merges), RL_OK);
    /* malformed JSON: the line is named */
    ASSERT_ERR(load_tmp("{\n\"a\": 1,\n\"b\" 2}", merges), RL_ERR_FORMAT, "vocab.json:3:");
    ASSERT_ERR(load_tmp("", merges), RL_ERR_FORMAT, "malformed JSON");
    ASSERT_ERR(load_tmp("{\"a\": 1} trailing", merges), RL_ERR_FORMAT, "malformed JSON");
    /* vocab not an object, ids not integers */
    ASSERT_ERR(load_tmp("[1, 2, 3]", merges), RL_ERR_FORMAT, "not a JSON object");
    ASSERT_ERR(load_tmp("{}", merges), RL_ERR_FORMAT, "empty");
    ASSERT_ERR(load_tmp("{\"a\": \"1\"}", merges), RL_ERR_FORMAT, "token 'a' has an id");
    ASSERT_ERR(load_tmp("{\"a\": 1.5}", merges), RL_ERR_FORMAT, "token 'a'");
    ASSERT_ERR(load_tmp("{\"a\": -1}", merges), RL_ERR_FORMAT, "token 'a'");
    ASSERT_ERR(load_tmp("{\"a\": 1e12}", merges), RL_ERR_FORMAT, "token 'a'");
    ASSERT_ERR(load_tmp("{\"a\": 2147483647}", merges), RL_ERR_FORMAT, "token 'a'");
    /* a vocabulary without the byte symbols or the specials */
    ASSERT_ERR(load_tmp("{\"a\": 1}", "#version: 0.2\n"), RL_ERR_FORMAT, "byte 0x00");
    s = xstrdup(vocab);
    {
        char *p = strstr(s, "\"<|endoftext|>\"");
        ck_assert_ptr_nonnull(p);
        memcpy(p + 3, "END", 3);
    }
    ASSERT_ERR(load_tmp(s, merges), RL_ERR_FORMAT, "no entry for <|endoftext|>");
    free(s);
    /* merges: header, fields, tokens not in the vocabulary, named by line */
    ASSERT_ERR(load_tmp(vocab, "o r\nw or\n"), RL_ERR_FORMAT, "merges.txt:1: missing the '#version");
    ASSERT_ERR(load_tmp(vocab, ""), RL_ERR_FORMAT, "empty file");
    ASSERT_ERR(load_tmp(vocab, "#version: 0.2\no r\nzz q\n"), RL_ERR_FORMAT,
               "merges.txt:3: merge token 'zz' is not in");
    ASSERT_ERR(load_tmp(vocab, "#version: 0.2\no r\nq qq\n"), RL_ERR_FORMAT,
               "merges.txt:3: merge token 'qq'");
    ASSERT_ERR(load_tmp(vocab, "#version: 0.2\nq q\n"), RL_ERR_FORMAT,
               "merges.txt:2: merged token 'qq' is not in");
    ASSERT_ERR(load_tmp(vocab, "#version: 0.2\no r x\n"), RL_ERR_FORMAT,
               "merges.txt:2: expected two tokens");
    ASSERT_ERR(load_tmp(vocab, "#version: 0.2\no\n"), RL_ERR_FORMAT, "merges.txt:2: expected two");
    ASSERT_ERR(load_tmp(vocab, "#version: 0.2\no r\n\nw or\n"), RL_ERR_FORMAT,
               "merges.txt:3: empty line");
    /* accepted: CRLF, trailing empty lines, no final newline, a header only */
    ck_assert_int_eq(load_tmp(vocab, "#version: 0.2\r\no r\r\nw or\r\n\r\n\n"), RL_OK);
    ck_assert_int_eq(load_tmp(vocab, "#version: 0.2\no r"), RL_OK);
    ck_assert_int_eq(load_tmp(vocab, "#version: 0.2"), RL_OK);
    /* a huge id is accepted without a huge allocation */
    s = xmalloc(vl + 64);
    memcpy(s, vocab, vl);
    strcpy(s + vl - 1, ", \"zzzzzz\": 2147483646}");
    {
        struct tokenizer *big = NULL;
        ck_assert_int_eq(tok_load_bpe(&big, tmp_write("vocab.json", s),
                                      fixture_path("tokenizer/merges.txt")), RL_OK);
        ck_assert_int_eq(tok_vocab_size(big), INT32_MAX);
        tok_free(big);
    }
    free(s);

    /* tokenizer.json */
    ck_assert_int_eq(load_tmp_json(tj), RL_OK);
    ASSERT_ERR(load_tmp_json("{\"model\": 3}"), RL_ERR_FORMAT, "no \"model\" object");
    ASSERT_ERR(load_tmp_json("{\"x\": {}}"), RL_ERR_FORMAT, "no \"model\" object");
    ASSERT_ERR(load_tmp_json("{\"model\": {\"type\": \"WordPiece\"}}"), RL_ERR_FORMAT,
               "model.type");
    ASSERT_ERR(load_tmp_json("{\"model\": {\"end_of_word_suffix\": \"##\"}}"), RL_ERR_FORMAT,
               "end_of_word_suffix");
    ASSERT_ERR(load_tmp_json("{\"model\": {\"vocab\": [1]}}"), RL_ERR_FORMAT,
               "model.vocab is not a JSON object");
    ASSERT_ERR(load_tmp_json("{\"model\": {\"vocab\": {\"a\": 0}, \"merges\": {}}}"),
               RL_ERR_FORMAT, "model.merges is not an array");
    ASSERT_ERR(load_tmp_json("{\"model\": {\"vocab\": {\"a\": 0}, \"merges\": [3]}}"),
               RL_ERR_FORMAT, "model.merges[0]: expected");
    ASSERT_ERR(load_tmp_json("{\"model\": {\"vocab\": {\"a\": 0}, \"merges\": [[\"a\"]]}}"),
               RL_ERR_FORMAT, "model.merges[0]: expected");
    ASSERT_ERR(load_tmp_json("{\"model\": {\"vocab\": {\"a\": 0}, \"merges\": [\"a b\"]}}"),
               RL_ERR_FORMAT, "tokenizer.json: model.merges[0]: merge token 'b' is not in model.vocab");
    ASSERT_ERR(load_tmp_json("{\"model\": {\"vocab\": {\"a\": 0}, \"merges\": [[\"a\", \"a\"]]}}"),
               RL_ERR_FORMAT, "merged token 'aa'");
    ASSERT_ERR(load_tmp_json("{\"model\": {\"vocab\": {\"a\": 0}, \"merges\": []}"),
               RL_ERR_FORMAT, "malformed JSON");
    /* specials only in added_tokens */
    s = xstrdup(tj);
    {
        char *p = strstr(s, "\"<|endoftext|>\": 726");
        ck_assert_ptr_nonnull(p);
        memcpy(p + 3, "END", 3);        /* the model.vocab entry renamed; added_tokens still has it */
    }
    {
        struct tokenizer *t2 = NULL;
        int32_t row[77];
        ck_assert_int_eq(tok_load_json(&t2, tmp_write("tokenizer.json", s)), RL_OK);
        ck_assert_int_eq(tok_eot(t2), 726);
        ck_assert_int_eq(tok_encode(t2, "cat", row, NULL), RL_OK);
        ck_assert_int_eq(row[2], 726);
        tok_free(t2);
    }
    free(s);
    tmp_teardown();
    free(vocab);
    free(merges);
    free(tj);
}
END_TEST

/* ---------------------------------------------------------------- byte level */

START_TEST(test_bytes)
{
    struct tokenizer *t = tok_new_bytes(0, 256, 257), *t3;
    const char text[] = "h\xc3\xa9llo\0\xff World";
    const size_t len = sizeof(text) - 1;
    int32_t row[77], *ids;
    size_t n, dl;
    int eot;
    char *back;

    ck_assert_int_eq(tok_kind(t), TOK_BYTES);
    ck_assert_int_eq(tok_vocab_size(t), 258);
    ck_assert_int_eq(tok_encode_n(t, text, len, row, &eot), RL_OK);
    ck_assert_int_eq(row[0], 256);
    ck_assert_int_eq(row[1], 'h');
    ck_assert_int_eq(row[2], 0xc3);
    ck_assert_int_eq(row[7], 0);
    ck_assert_int_eq(row[8], 0xff);
    ck_assert_int_eq(row[10], 'W');                /* no lower-casing */
    ck_assert_int_eq(eot, (int)len + 1);
    ck_assert_int_eq(row[len + 1], 257);
    ck_assert_int_eq(row[len + 2], 0);
    /* round trip */
    ck_assert_int_eq(tok_decode(t, row + 1, len, &back, &dl), RL_OK);
    ck_assert_uint_eq(dl, len);
    ck_assert_mem_eq(back, text, len);
    free(back);
    ck_assert_int_eq(tok_tokenize(t, "", 0, &ids, &n), RL_OK);
    ck_assert_uint_eq(n, 0);
    free(ids);
    ASSERT_ERR(tok_decode(t, (const int32_t[]){ 300 }, 1, &back, NULL), RL_ERR_ARG, "300");
    /* an offset, HF-style padding, truncation */
    t3 = tok_new_bytes(3, 0, 1);
    ck_assert_int_eq(tok_vocab_size(t3), 259);
    ck_assert_int_eq(tok_set_frame(t3, 4, 1, true), RL_OK);
    ck_assert_int_eq(tok_encode(t3, "ab", row, &eot), RL_OK);
    ck_assert_int_eq(row[0], 0);
    ck_assert_int_eq(row[1], 'a' + 3);
    ck_assert_int_eq(row[2], 'b' + 3);
    ck_assert_int_eq(row[3], 1);
    ck_assert_int_eq(tok_encode(t3, "abc", row, &eot), RL_OK);
    ck_assert_int_eq(row[3], 1);
    ck_assert_int_eq(eot, 3);
    ck_assert_int_eq(tok_encode(t3, "a", row, &eot), RL_OK);
    ck_assert_int_eq(row[3], 1);                   /* pad = end token */
    ck_assert_int_eq(eot, 2);
    tok_free(t3);
    tok_free(t);
}
END_TEST

Suite *suite_tokenizer(void)
{
    Suite *s = suite_create("tokenizer");
    TCase *tc = tcase_create("reference");

    tcase_add_test(tc, test_fixture_vocab_merges);
    tcase_add_test(tc, test_fixture_tokenizer_json);
    tcase_add_test(tc, test_load_dir);
    tcase_add_test(tc, test_golden_base);
    tcase_add_test(tc, test_golden_real);
    suite_add_tcase(s, tc);
    tc = tcase_create("api");
    tcase_add_test(tc, test_framing);
    tcase_add_test(tc, test_decode);
    tcase_add_test(tc, test_bytes);
    suite_add_tcase(s, tc);
    tc = tcase_create("hostile");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_hostile_text);
    tcase_add_test(tc, test_hostile_files);
    suite_add_tcase(s, tc);
    return s;
}
