/*
 * cmd_params.c: `randlora params`: trainable-parameter counts in closed form
 * for a method and a list of layer shapes, and budget matching (the rank
 * whose count is closest to a budget). Nothing is allocated or initialised;
 * the numbers come from methods/adapter.h's counting functions.
 *
 *     randlora params --method lora --rank 32 --shape 3072x3072 --shape 1024x3072 --repeat 28
 *     randlora params --method randlora --budget 9000000 --shape 768x768 --repeat 12
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/status.h"
#include "cli/cli.h"
#include "cli/commands.h"
#include "methods/adapter.h"

#define MAX_SHAPES 256

static void params_usage(FILE *out)
{
    fprintf(out,
            "usage: randlora params --method M (--rank R | --budget P) --shape OUTxIN\n"
            "                       [--shape OUTxIN ...] [--repeat L] [--profile P]\n"
            "                       [--bases K] [--count]\n"
            "\n"
            "Trainable-parameter counts in closed form, per layer shape and in total, and\n"
            "the shared frozen tensors (VeRA's A/B, RandLoRA's and NoLA's bases).\n"
            "\n"
            "  --method M      lora, vera, randlora, nola, full or none\n"
            "  --rank R        the rank (ignored by full and none)\n"
            "  --budget P      instead of --rank: the rank whose count is closest to P\n"
            "                  (NoLA: the number of bases K, at rank 1)\n"
            "  --shape OUTxIN  an adapted linear layer, weight OUT x IN (repeatable)\n"
            "  --repeat L      the shapes repeat L times (e.g. transformer layers; default 1)\n"
            "  --profile P     peft (default), peft_fork, paper or paper_2024: RandLoRA's\n"
            "                  n = ceil(d/r) or floor(d/r) + 1; NoLA's K 256 or 1024\n"
            "  --bases K       NoLA: random bases per side (default: the profile's)\n"
            "  --count         print only the trainable count (with --budget: RANK COUNT,\n"
            "                  NoLA: K COUNT)\n"
            "\n"
            "Example (peft's Llama-3.2-3B benchmark, prints 9175040):\n"
            "  randlora params --method lora --rank 32 --shape 3072x3072 --shape 1024x3072 \\\n"
            "                  --repeat 28 --count\n");
}

/* one usage error line (cli.h), exit status 2 */
#define bad(...) cli_bad("params", true, __VA_ARGS__)

/* "OUTxIN" */
static int parse_shape(const char *s, struct adapter_shape *sh)
{
    const char *x = strchr(s, 'x');
    char buf[64];
    size_t len;

    if (!x || x == s)
        return -1;
    len = (size_t)(x - s);
    if (len >= sizeof(buf))
        return -1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    if (cli_parse_count(buf, SIZE_MAX, &sh->d_out) || cli_parse_count(x + 1, SIZE_MAX, &sh->d_in))
        return -1;
    return 0;
}

int cmd_params(int argc, char **argv)
{
    const char *method = NULL, *profile = "peft", *rank_s = NULL, *budget_s = NULL;
    const char *repeat_s = NULL, *bases_s = NULL;
    struct adapter_shape shapes[MAX_SHAPES], *all;
    size_t n_shapes = 0, rank = 0, budget = 0, repeat = 1, n_all, total, shared, bases = 0;
    bool count_only = false;
    const struct adapter_ops *ops;
    struct adapter_cfg cfg;
    int rc;

    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];

        if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
            params_usage(stdout);
            return 0;
        }
        if (!strcmp(o, "--count")) {
            count_only = true;
            continue;
        }
        if (strcmp(o, "--method") && strcmp(o, "--rank") && strcmp(o, "--budget") &&
            strcmp(o, "--shape") && strcmp(o, "--repeat") && strcmp(o, "--profile") &&
            strcmp(o, "--bases"))
            return bad("unknown option '%s'", o);
        if (i + 1 >= argc)
            return bad("%s needs a value", o);
        if (!strcmp(o, "--method"))
            method = argv[++i];
        else if (!strcmp(o, "--rank"))
            rank_s = argv[++i];
        else if (!strcmp(o, "--budget"))
            budget_s = argv[++i];
        else if (!strcmp(o, "--repeat"))
            repeat_s = argv[++i];
        else if (!strcmp(o, "--profile"))
            profile = argv[++i];
        else if (!strcmp(o, "--bases"))
            bases_s = argv[++i];
        else {
            if (n_shapes == MAX_SHAPES)
                return bad("at most 256 --shape options");
            if (parse_shape(argv[++i], &shapes[n_shapes]))
                return bad("--shape '%s': expected OUTxIN with positive integers, e.g. "
                           "768x3072", argv[i]);
            n_shapes++;
        }
    }
    if (!method)
        return bad("--method is required (lora, vera, randlora, nola, full or none)");
    ops = adapter_ops_find(method);
    if (!ops)
        return bad("unknown method '%s' (expected lora, vera, randlora, nola, full or none)",
                   method);
    if (n_shapes == 0)
        return bad("at least one --shape OUTxIN is required");
    if (repeat_s && cli_parse_count(repeat_s, SIZE_MAX, &repeat))
        return bad("--repeat '%s': expected a positive integer", repeat_s);
    if (rank_s && budget_s)
        return bad("give --rank or --budget, not both");
    if (rank_s && cli_parse_count(rank_s, SIZE_MAX, &rank))
        return bad("--rank '%s': expected a positive integer", rank_s);
    if (bases_s && !(ops->flags & ADAPTER_F_BUDGET_BASES))
        return bad("--bases is NoLA's; method %s has no bases to set", ops->name);
    if (bases_s && (cli_parse_count(bases_s, (size_t)1 << 24, &bases) || bases == 0))
        return bad("--bases '%s': expected an integer in 1 .. 16777216", bases_s);
    if (budget_s && cli_parse_count(budget_s, SIZE_MAX, &budget))
        return bad("--budget '%s': expected a positive integer", budget_s);
    if (budget_s && !(ops->flags & ADAPTER_F_RANK))
        return bad("method %s has no rank to match a budget with", ops->name);
    if ((ops->flags & ADAPTER_F_RANK) && !rank_s && !budget_s)
        return bad("method %s needs --rank R or --budget P", ops->name);

    adapter_cfg_defaults(&cfg, ops->name, rank);
    if (adapter_cfg_profile(&cfg, profile) != RL_OK)
        return bad("--profile '%s': expected peft, peft_fork, paper or paper_2024", profile);
    if (bases)
        cfg.nola_bases = bases;

    /* the full list: the shapes, repeat times */
    if (!size_mul_ok(n_shapes, repeat, &n_all) || n_all > ((size_t)1 << 24))
        return bad("--repeat %s: too many layers", repeat_s);
    all = xmalloc_array(n_all, sizeof(*all));
    for (size_t l = 0; l < repeat; l++)
        memcpy(all + l * n_shapes, shapes, n_shapes * sizeof(*shapes));

    if (budget_s) {
        rc = adapter_match_budget_cfg(ops, &cfg, all, n_all, budget, &cfg, &total);
        if (rc) {
            free(all);
            fprintf(stderr, "randlora params: %s\n", rl_error_msg());
            return rl_exit_code(rc);
        }
        rank = cfg.r;
    }
    for (size_t i = 0; i < n_shapes; i++) {
        rc = adapter_check(ops, &cfg, shapes[i].d_out, shapes[i].d_in);
        if (rc) {
            free(all);
            fprintf(stderr, "randlora params: %s\n", rl_error_msg());
            return rl_exit_code(rc);
        }
    }
    total = adapter_count(ops, &cfg, all, n_all);
    shared = adapter_count_shared(ops, &cfg, all, n_all);
    free(all);

    if (count_only) {
        if (budget_s)
            printf("%zu %zu\n", (ops->flags & ADAPTER_F_BUDGET_BASES) ? cfg.nola_bases : rank,
                   total);
        else
            printf("%zu\n", total);
        return 0;
    }
    printf("method     %s", ops->name);
    if (!strcmp(ops->name, "randlora") || !strcmp(ops->name, "nola"))
        printf(" (profile %s)", profile);
    printf("\n");
    if (ops->flags & ADAPTER_F_RANK)
        printf("rank       %zu\n", rank);
    if (budget_s)
        printf("budget     %zu (closest count: %zu, %+.2f%%)\n", budget, total,
               100.0 * ((double)total - (double)budget) / (double)budget);
    printf("%-14s %8s %14s %8s %16s\n", "shape", "bases", "per layer", "layers", "trainable");
    for (size_t i = 0; i < n_shapes; i++) {
        char sh[48], nb[24] = "-";
        size_t per = adapter_count_layer(ops, &cfg, shapes[i].d_out, shapes[i].d_in);

        snprintf(sh, sizeof(sh), "%zux%zu", shapes[i].d_out, shapes[i].d_in);
        if (!strcmp(ops->name, "randlora"))
            snprintf(nb, sizeof(nb), "%zu", randlora_n_bases(&cfg, shapes[i].d_out, shapes[i].d_in));
        else if (ops->flags & ADAPTER_F_BUDGET_BASES)
            snprintf(nb, sizeof(nb), "%zu", cfg.nola_bases);
        printf("%-14s %8s %14zu %8zu %16zu\n", sh, nb, per, repeat, per * repeat);
    }
    printf("trainable  %zu\n", total);
    printf("shared     %zu frozen (stored with the adapter)\n", shared);
    return 0;
}
