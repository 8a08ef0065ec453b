/*
 * check_docs.c: the reference in docs/ against the code (suite "docs").
 *
 *   - every flag a command's --help mentions has a row in the flag table of
 *     that command's section of docs/cli.md (a "## randlora NAME" heading,
 *     up to the next "## "; a row "| `FLAG ARG` | meaning |"); the commands
 *     are the ones `randlora --help` lists, so a new command without a
 *     section fails too;
 *   - every key row of docs/experiments.md (a table row whose first cell is
 *     `key`, under a "### [section]" heading) names a key of the key table
 *     (experiments/config.c), and every key of the table has exactly one
 *     such row.
 *
 * The executable is $RANDLORA_BIN (make check sets it to the build's
 * randlora; default build/randlora); the docs are read from the working
 * directory (the repository root, as for the fixtures). The checkers take
 * text, so the suite also shows that each of them fails on a doc with a
 * flag or a key left out.
 */
#include <check.h>
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "experiments/config_impl.h"   /* the key table, cfg_keys */
#include "suites.h"
#include "test_cmd.h"
#include "test_util.h"

#define CLI_MD         "docs/cli.md"
#define EXPERIMENTS_MD "docs/experiments.md"
#define MAX_FLAG       48
#define MAX_NAME       64
/* the deliberately incomplete docs of the can-fail tests, named so in their messages */
#define BAD_DOC_NAME   "(expected) deliberately incomplete doc"

/* ------------------------------------------------------------------------ */
/* the executable's help texts                                               */

static const char *randlora_bin(void)
{
    const char *bin = getenv("RANDLORA_BIN");

    return bin && *bin ? bin : "build/randlora";
}

/* stdout + stderr of `randlora ARGS`, NUL-terminated (caller frees) */
static char *run_randlora(const char *args)
{
    char cmd[512];
    size_t cap = 1 << 12, n = 0;
    char *out = xmalloc(cap);
    FILE *p;
    int status;

    snprintf(cmd, sizeof(cmd), "'%s' %s 2>&1", randlora_bin(), args);
    p = popen(cmd, "r");
    ck_assert_msg(p != NULL, "cannot run %s", cmd);
    for (;;) {
        size_t got;

        if (cap - n < 1024) {
            cap *= 2;
            out = xrealloc_array(out, cap, 1);
        }
        got = fread(out + n, 1, cap - n - 1, p);
        if (got == 0)
            break;
        n += got;
    }
    out[n] = '\0';
    status = pclose(p);
    ck_assert_msg(status == 0, "`%s` exited with status %d (build it: make randlora):\n%s",
                  cmd, status, out);
    return out;
}

/* The command names `randlora --help` lists: the lines after "commands:",
 * two spaces then the name, up to the first blank line. Returns the count. */
static size_t help_commands(const char *help, char names[][MAX_NAME], size_t cap)
{
    const char *p = strstr(help, "\ncommands:\n");
    size_t n = 0;

    ck_assert_msg(p != NULL, "randlora --help lists no commands:\n%s", help);
    p = strchr(p + 1, '\n') + 1;
    while (*p == ' ' && n < cap) {
        size_t len = 0;

        while (*p == ' ')
            p++;
        while (p[len] && !isspace((unsigned char)p[len]) && len < MAX_NAME - 1)
            len++;
        memcpy(names[n], p, len);
        names[n++][len] = '\0';
        p = strchr(p, '\n');
        if (!p)
            break;
        p++;
    }
    return n;
}

/* ------------------------------------------------------------------------ */
/* flags                                                                     */

static bool flag_char(char c)
{
    return isalnum((unsigned char)c) || c == '-' || c == '_';
}

/* The flags of one line: -x or --word-word, starting a word (after the
 * start, a blank, '[', '(', '|' or ','), a letter after the dashes; added
 * to flags[0..*n) when new. */
static void line_flags(const char *line, size_t ll, char flags[][MAX_FLAG], size_t *n,
                       size_t cap)
{
    for (size_t i = 0; i < ll && *n < cap; i++) {
        const char *p = line + i;
        size_t len;
        bool seen = false;

        if (*p != '-' || (i > 0 && !strchr(" \t[(|,", p[-1])))
            continue;
        len = p[1] == '-' ? 2 : 1;
        if (!isalpha((unsigned char)p[len]))
            continue;
        while (flag_char(p[len]) && len < MAX_FLAG - 1)
            len++;
        for (size_t j = 0; j < *n && !seen; j++)
            seen = strlen(flags[j]) == len && !strncmp(flags[j], p, len);
        if (!seen) {
            memcpy(flags[*n], p, len);
            flags[(*n)++][len] = '\0';
        }
        i += len - 1;
    }
}

/* The flags a command's help offers: those of its usage block (from the
 * line starting "usage:" to the first blank line) and of its option lines
 * (lines whose first non-blank character is '-'); other lines (examples,
 * prose) are not read. Each flag once; returns the count. */
static size_t help_flags(const char *help, char flags[][MAX_FLAG], size_t cap)
{
    size_t n = 0;
    bool in_usage = false;

    for (const char *p = help; *p; ) {
        const char *eol = strchr(p, '\n'), *q = p;
        size_t ll = eol ? (size_t)(eol - p) : strlen(p);

        while (q < p + ll && (*q == ' ' || *q == '\t'))
            q++;
        if (!strncmp(p, "usage:", 6))
            in_usage = true;
        else if (q == p + ll)
            in_usage = false;
        if (in_usage || *q == '-')
            line_flags(p, ll, flags, &n, cap);
        p += ll + (eol != NULL);
    }
    return n;
}

/* The body of the section under the line `heading` (exactly), up to the
 * next line starting with "## " or the end; NULL when there is none. */
static const char *md_section(const char *md, const char *heading, size_t *len)
{
    size_t hl = strlen(heading);
    const char *end;

    for (const char *p = md; p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, heading, hl) || (p[hl] != '\n' && p[hl] != '\0'))
            continue;
        p += hl;
        end = strstr(p, "\n## ");
        *len = end ? (size_t)(end - p) : strlen(p);
        return p;
    }
    return NULL;
}

/* A row of a flag table in text[0..len) whose first cell starts with the
 * flag: a line "| `FLAG`", "| `FLAG ARG`" or "| `FLAG=...". */
static bool has_flag_row(const char *text, size_t len, const char *flag)
{
    size_t fl = strlen(flag);

    for (size_t i = 0; i + 3 + fl < len; i++) {
        const char *row = text + i;

        if ((i == 0 || text[i - 1] == '\n') && !strncmp(row, "| `", 3)
            && !strncmp(row + 3, flag, fl) && strchr(" `=", row[3 + fl]))
            return true;
    }
    return false;
}

/* The flags of command `cmd`'s help without a row in the flag table of its
 * "## randlora CMD" section of the cli doc, each named on stderr; a missing
 * section counts as one. Returns the count. */
static size_t undocumented_flags(const char *cmd, const char *help, const char *cli_md,
                                 const char *where)
{
    char heading[MAX_NAME + 16], flags[64][MAX_FLAG];
    size_t n_flags = help_flags(help, flags, 64), len, missing = 0;
    const char *body;

    snprintf(heading, sizeof(heading), "## randlora %s", cmd);
    body = md_section(cli_md, heading, &len);
    if (!body) {
        fprintf(stderr, "%s: no section '%s'\n", where, heading);
        return 1;
    }
    for (size_t i = 0; i < n_flags; i++)
        if (!has_flag_row(body, len, flags[i])) {
            fprintf(stderr, "%s: '%s' has no row for %s (a line \"| `%s ...` | meaning |\"), "
                    "which `randlora %s --help` mentions\n", where, heading, flags[i],
                    flags[i], cmd);
            missing++;
        }
    return missing;
}

/* ------------------------------------------------------------------------ */
/* keys                                                                      */

struct doc_key {
    char section[MAX_NAME], key[MAX_NAME];
    size_t line;
};

/* The key rows of an experiments doc: under a "### [section]" heading
 * (another heading of level 2 or 3 ends it), every table row whose first
 * cell is `key`. Returns the count (caller frees *out). */
static size_t doc_keys(const char *md, struct doc_key **out)
{
    size_t n = 0, cap = 16, line = 0;
    struct doc_key *keys = xmalloc_array(cap, sizeof(*keys));
    char section[MAX_NAME] = "";

    for (const char *p = md; *p; ) {
        const char *eol = strchr(p, '\n');
        size_t ll = eol ? (size_t)(eol - p) : strlen(p);

        line++;
        if (!strncmp(p, "## ", 3) || !strncmp(p, "### ", 4)) {
            const char *b = strchr(p, '['), *e = b ? memchr(b, ']', ll - (size_t)(b - p)) : NULL;

            section[0] = '\0';
            if (!strncmp(p, "### [", 5) && e && (size_t)(e - b - 1) < MAX_NAME) {
                memcpy(section, b + 1, (size_t)(e - b - 1));
                section[e - b - 1] = '\0';
            }
        } else if (section[0] && !strncmp(p, "| `", 3)) {
            const char *k = p + 3, *e = memchr(k, '`', ll - 3);

            if (e && (size_t)(e - k) < MAX_NAME) {
                if (n == cap) {
                    cap *= 2;
                    keys = xrealloc_array(keys, cap, sizeof(*keys));
                }
                memcpy(keys[n].key, k, (size_t)(e - k));
                keys[n].key[e - k] = '\0';
                strcpy(keys[n].section, section);
                keys[n++].line = line;
            }
        }
        p += ll + (eol != NULL);
    }
    *out = keys;
    return n;
}

/* key rows of the doc that the key table does not know, each named */
static size_t unknown_keys(const char *md, const char *where)
{
    struct doc_key *keys;
    size_t n = doc_keys(md, &keys), bad = 0;

    for (size_t i = 0; i < n; i++)
        if (cfg_key_index(keys[i].section, keys[i].key) < 0) {
            fprintf(stderr, "%s:%zu: [%s] %s is not a key of experiments/config.c's key "
                    "table\n", where, keys[i].line, keys[i].section, keys[i].key);
            bad++;
        }
    free(keys);
    return bad;
}

/* key rows that repeat an earlier row of the same section, each named */
static size_t repeated_keys(const char *md, const char *where)
{
    struct doc_key *keys;
    size_t n = doc_keys(md, &keys), bad = 0;

    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < i; j++)
            if (!strcmp(keys[i].section, keys[j].section) && !strcmp(keys[i].key, keys[j].key)) {
                fprintf(stderr, "%s:%zu: [%s] %s has a row already (line %zu)\n", where,
                        keys[i].line, keys[i].section, keys[i].key, keys[j].line);
                bad++;
                break;
            }
    free(keys);
    return bad;
}

/* keys of the key table without a row in the doc, each named */
static size_t missing_keys(const char *md, const char *where)
{
    struct doc_key *keys;
    size_t n = doc_keys(md, &keys), bad = 0;

    for (size_t k = 0; k < cfg_n_keys; k++) {
        bool found = false;

        for (size_t i = 0; i < n && !found; i++)
            found = !strcmp(keys[i].section, cfg_keys[k].section)
                    && !strcmp(keys[i].key, cfg_keys[k].key);
        if (!found) {
            fprintf(stderr, "%s: key %s.%s of the key table has no row under '### [%s]'\n",
                    where, cfg_keys[k].section, cfg_keys[k].key, cfg_keys[k].section);
            bad++;
        }
    }
    free(keys);
    return bad;
}

/* ------------------------------------------------------------------------ */
/* tests                                                                     */

START_TEST(test_every_flag_documented)
{
    char *help = run_randlora("--help"), *cli_md = test_slurp(CLI_MD, NULL);
    char names[64][MAX_NAME];
    size_t n = help_commands(help, names, 64), missing = 0;

    ck_assert_uint_ge(n, 10);
    for (size_t i = 0; i < n; i++) {
        char args[MAX_NAME + 16];
        char *cmd_help;

        snprintf(args, sizeof(args), "%.*s --help", MAX_NAME - 1, names[i]);
        cmd_help = run_randlora(args);
        missing += undocumented_flags(names[i], cmd_help, cli_md, CLI_MD);
        free(cmd_help);
    }
    ck_assert_msg(missing == 0, "%zu flags or commands missing from %s (listed above)", missing,
                  CLI_MD);
    free(cli_md);
    free(help);
}
END_TEST

START_TEST(test_every_key_documented)
{
    char *md = test_slurp(EXPERIMENTS_MD, NULL);
    struct doc_key *keys;

    ck_assert_uint_ge(doc_keys(md, &keys), cfg_n_keys);
    free(keys);
    ck_assert_uint_eq(unknown_keys(md, EXPERIMENTS_MD), 0);
    ck_assert_uint_eq(missing_keys(md, EXPERIMENTS_MD), 0);
    ck_assert_uint_eq(repeated_keys(md, EXPERIMENTS_MD), 0);
    free(md);
}
END_TEST

/* the flag checker fails on a doc that leaves a flag out, or documents it
 * under another command, or lacks the command's section */
START_TEST(test_flag_check_can_fail)
{
    const char *help = "usage: randlora x [--foo-bar N] [-q]\n\n  -q  quiet\n  -s S.K=V  "
                       "-> not a flag, non-flag words\nExample: not read: --array=1\n"
                       "  prog --not-read-either\n";
    const char *bad = BAD_DOC_NAME;
    char flags[8][MAX_FLAG];

    ck_assert_uint_eq(help_flags(help, flags, 8), 3);
    ck_assert_str_eq(flags[0], "--foo-bar");
    ck_assert_str_eq(flags[1], "-q");
    ck_assert_str_eq(flags[2], "-s");
    ck_assert_uint_eq(undocumented_flags("x", help, "## randlora x\n| `--foo-bar N` | a |\n"
                                         "| `-q` | b |\n| `-s S.K=V` | c |\n", bad), 0);
    ck_assert_uint_eq(undocumented_flags("x", help, "## randlora x\n| `--foo-bar=N` | a |\n"
                                         "| `-q` | b |\n| `-s` | c |\n## randlora y\n", bad), 0);
    /* --foo is not --foo-bar; -q only in another section; -s only in text */
    ck_assert_uint_eq(undocumented_flags("x", help, "## randlora x\n| `--foo N` | a |\n"
                                         "`-s` in text, [-q] in usage\n"
                                         "## randlora y\n| `-q` | b |\n", bad), 3);
    ck_assert_uint_eq(undocumented_flags("x", help, "## randlora xy\n| `--foo-bar` | a |\n", bad),
                      1);
}
END_TEST

/* the key checker fails on an unknown key row, a key without a row and a
 * key with two rows in its section */
START_TEST(test_key_check_can_fail)
{
    char *md = test_slurp(EXPERIMENTS_MD, NULL);
    char *row = strstr(md, "\n| `eps` |"), *eol;
    const char *bad = "## Keys\n### [train]\n| `lr` | 1e-3 |\n| `learning_rate` | 1e-3 |\n"
                      "### [data]\n| `lr` | x |\n## Other\n| `lr` | not a key row |\n";

    ck_assert_uint_eq(unknown_keys(bad, BAD_DOC_NAME), 2);
    ck_assert_uint_eq(repeated_keys(bad, BAD_DOC_NAME), 0);
    ck_assert_uint_eq(repeated_keys("### [train]\n| `lr` | a |\n| `lr` | b |\n### [data]\n"
                                    "| `lr` | c |\n", BAD_DOC_NAME), 1);
    /* the real doc with the row of train.eps cut out */
    ck_assert_ptr_nonnull(row);
    eol = strchr(row + 1, '\n');
    ck_assert_ptr_nonnull(eol);
    memmove(row, eol, strlen(eol) + 1);
    ck_assert_uint_eq(missing_keys(md, BAD_DOC_NAME), 1);
    ck_assert_uint_eq(unknown_keys(md, BAD_DOC_NAME), 0);
    free(md);
}
END_TEST

Suite *suite_docs(void)
{
    Suite *s = suite_create("docs");
    TCase *tc = tcase_create("docs");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_every_flag_documented);
    tcase_add_test(tc, test_every_key_documented);
    tcase_add_test(tc, test_flag_check_can_fail);
    tcase_add_test(tc, test_key_check_can_fail);
    suite_add_tcase(s, tc);
    return s;
}
