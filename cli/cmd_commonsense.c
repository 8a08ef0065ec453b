/*
 * cmd_commonsense.c: `randlora commonsense`: the commonsense-reasoning data
 * (datasets/commonsense.h). --check reads a training file or a directory
 * of test sets and prints what it holds (items, answers, the first
 * training prompt); --synth writes the procedural task
 * (datasets/commonsense_synth.h), --corpus its pretraining text.
 *
 * Exit status: 0; 2 bad usage or bad input (a file that is not an item
 * array, a directory without any known test set, an output that cannot be
 * created); 1 a failed write.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "core/status.h"
#include "datasets/commonsense.h"
#include "datasets/commonsense_synth.h"
#include "experiments/runner.h"

static const char USAGE[] =
    "usage: randlora commonsense --check FILE|DIR\n"
    "       randlora commonsense --synth DIR [--seed N] [--n-train N] [--n-test N]\n"
    "       randlora commonsense --corpus FILE [--seed N] [--bytes N]\n"
    "The commonsense-reasoning format (docs/datasets.md, \"Commonsense reasoning\").\n"
    "  --check FILE|DIR  FILE: a training file (commonsense_15k.json); DIR: test sets\n"
    "                    DIR/<task>/test.json (boolq ... openbookqa, synth_*): items, answers\n"
    "  --synth DIR       write the procedural task: DIR/train.json, DIR/synth_*/test.json\n"
    "  --corpus FILE     write the procedural pretraining text\n"
    "  --seed N          seed of --synth and --corpus (default 1)\n"
    "  --n-train N       training items of --synth (default 2000)\n"
    "  --n-test N        items per test set of --synth (default 200)\n"
    "  --bytes N         size of --corpus (default 1048576)\n";

/* "N items, answers: true 12, false 9" (the first 8 distinct answers) */
static void describe(const char *name, const struct cs_set *s)
{
    const char *seen[8];
    size_t count[8] = { 0 }, k = 0, other = 0;

    for (size_t i = 0; i < s->n; i++) {
        size_t j = 0;
        while (j < k && strcmp(seen[j], s->items[i].answer) != 0)
            j++;
        if (j == k && k < 8)
            seen[k++] = s->items[i].answer;
        if (j < k)
            count[j]++;
        else
            other++;
    }
    printf("%s: %zu items; answers:", name, s->n);
    for (size_t j = 0; j < k; j++)
        printf(" %s %zu", seen[j][0] ? seen[j] : "\"\"", count[j]);
    if (other)
        printf(" (other %zu)", other);
    putchar('\n');
}

static int check_dir(const char *dir)
{
    int found = 0;

    for (int set = 0; set < 2; set++)
        for (int k = 0; k < (set ? CS_SYNTH_N_TASKS : CS_N_TASKS); k++) {
            const char *name = set ? CS_SYNTH_TASKS[k] : CS_TASKS[k];
            size_t n = strlen(dir) + strlen(name) + 16;
            char *path = malloc(n);
            struct stat sb;
            struct cs_set s;
            int rc;

            if (!path)
                return cli_bad("commonsense", false, "out of memory");
            snprintf(path, n, "%s/%s/test.json", dir, name);
            rc = stat(path, &sb) == 0 ? cs_load(&s, path) : RL_ERR_NA;
            free(path);
            if (rc == RL_ERR_NA)
                continue;
            if (rc != RL_OK)
                return cli_bad("commonsense", false, "%s", rl_error_msg());
            describe(name, &s);
            cs_free(&s);
            found++;
        }
    if (!found)
        return cli_bad("commonsense", false, "%s: no test set (expected DIR/<task>/test.json for "
                       "boolq, piqa, ..., openbookqa or synth_*)", dir);
    return 0;
}

static int check(const char *path)
{
    struct stat sb;
    struct cs_set s;
    char *prompt;

    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
        return check_dir(path);
    if (cs_load(&s, path) != RL_OK)
        return cli_bad("commonsense", false, "%s", rl_error_msg());
    describe(path, &s);
    prompt = cs_train_prompt(&s.items[0], true);
    printf("item 0 as a training prompt:\n%s\n", prompt);
    free(prompt);
    cs_free(&s);
    return 0;
}

static int write_corpus(const char *path, uint64_t seed, size_t bytes)
{
    size_t len;
    char *text = cs_synth_corpus(seed, bytes, &len);
    FILE *f = fopen(path, "wb");
    bool ok;

    if (!f) {
        free(text);
        return cli_bad("commonsense", false, "%s: cannot create", path);
    }
    ok = fwrite(text, 1, len, f) == len;
    ok = fclose(f) == 0 && ok;
    free(text);
    if (!ok) {
        fprintf(stderr, "randlora commonsense: %s: write failed\n", path);
        return 1;
    }
    printf("%s: %zu bytes\n", path, len);
    return 0;
}

int cmd_commonsense(int argc, char **argv)
{
    const char *check_path = NULL, *synth = NULL, *corpus = NULL;
    size_t seed = 1, n_train = 2000, n_test = 200, bytes = (size_t)1 << 20;
    int rc;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        size_t *num = !strcmp(a, "--seed") ? &seed : !strcmp(a, "--n-train") ? &n_train
                    : !strcmp(a, "--n-test") ? &n_test : !strcmp(a, "--bytes") ? &bytes : NULL;
        if (!strcmp(a, "--help")) {
            fputs(USAGE, stdout);
            return 0;
        }
        if (num) {
            if (!v || cli_parse_count(v, (size_t)1 << 30, num) != 0)
                return cli_bad("commonsense", true, "%s needs a whole number in 1..2^30", a);
            i++;
        } else if (v && !strcmp(a, "--check")) {
            check_path = argv[++i];
        } else if (v && !strcmp(a, "--synth")) {
            synth = argv[++i];
        } else if (v && !strcmp(a, "--corpus")) {
            corpus = argv[++i];
        } else {
            return cli_bad("commonsense", true, "unexpected argument '%s'", a);
        }
    }
    if (!!check_path + !!synth + !!corpus != 1)
        return cli_bad("commonsense", true, "needs one of --check, --synth and --corpus");
    if (check_path)
        return check(check_path);
    if (corpus)
        return write_corpus(corpus, seed, bytes);
    /* DIR and its missing parents (the quickstart's out/data/...) */
    if ((rc = runner_mkdir_p(synth)) != RL_OK ||
        (rc = cs_synth_write(synth, seed, n_train, n_test)) != RL_OK) {
        fprintf(stderr, "randlora commonsense: %s\n", rl_error_msg());
        return rc == RL_ERR_WRITE ? 1 : 2;
    }
    printf("%s: train.json (%zu items) and %d test sets of %zu items\n", synth, n_train,
           CS_SYNTH_N_TASKS, n_test);
    return 0;
}
