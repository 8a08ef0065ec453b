/*
 * cmd_params.c: `randlora params`: trainable-parameter counts in closed form
 * for a method and a list of layer shapes, and budget matching (the rank
 * whose count is closest to a budget). Nothing is allocated or initialised;
 * the numbers come from methods/adapter.h's counting functions.
 *
 *     randlora params --method lora --rank 32 --shape 3072x3072 --shape 1024x3072 --repeat 28
 *     randlora params --method randlora --budget 9000000 --shape 768x768 --repeat 12
 *     randlora params --method randlora --rank 6 --profile paper --model clip-vit-b-32 \
 *                     --modules in_proj,fc1,fc2
 *
 * With --model the shapes are the adapted linears of a model (a preset or a
 * model directory of either layout), one row per tower and module, each
 * repeated over the tower's layers: what an experiment with those
 * method.modules and method.towers trains.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/status.h"
#include "cli/cli.h"
#include "cli/commands.h"
#include "methods/adapter.h"
#include "models/clip.h"

#define MAX_SHAPES 256

static void params_usage(FILE *out)
{
    fprintf(out,
            "usage: randlora params --method M (--rank R | --budget P) --shape OUTxIN\n"
            "                       [--shape OUTxIN ...] [--repeat L] [--profile P]\n"
            "                       [--bases K] [--count]\n"
            "       randlora params --method M (--rank R | --budget P) --model NAME\n"
            "                       [--modules LIST] [--towers LIST] [--profile P] ...\n"
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
            "  --model NAME    instead of --shape: the adapted linears of a model (a preset\n"
            "                  such as clip-vit-b-32, or a model directory), every layer\n"
            "  --modules LIST  with --model: q_proj, k_proj, v_proj, out_proj, fc1, fc2,\n"
            "                  in_proj (q, k, v packed as one 3d x d linear, open_clip's),\n"
            "                  attn, qkv, mlp, all (default q_proj,k_proj,v_proj,fc1,fc2)\n"
            "  --towers LIST   with --model: vision, text or both (default both)\n"
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

/* the model's config: a preset name, or a model directory of either layout */
static int model_config(const char *name, struct clip_config *c)
{
    for (const char *const *p = clip_preset_names(); *p; p++)
        if (!strcmp(*p, name))
            return clip_config_preset(c, name);
    return clip_config_load_dir(c, name, NULL);
}

/* One row per tower and module of the model's adapted linears (the same
 * module words as method.modules), each repeated over the tower's layers. */
static int model_shapes(const char *model, const char *modules, const char *towers,
                        struct adapter_shape *shapes, size_t *reps, const char **labels,
                        size_t *n)
{
    static const char *const tower_words[2] = { "vision", "text" };
    struct clip_config c;
    struct clip_target t;
    size_t nt;
    unsigned tw_mask;
    char spec[512];
    int rc;

    if (!strcmp(towers, "both") || !strcmp(towers, "vision,text") ||
        !strcmp(towers, "text,vision"))
        tw_mask = 3u;
    else if (!strcmp(towers, "vision"))
        tw_mask = 1u;
    else if (!strcmp(towers, "text"))
        tw_mask = 2u;
    else
        return rl_error_set(RL_ERR_ARG, "--towers '%s': expected vision, text or both", towers);
    if (strlen(modules) + 1 > sizeof(spec) || strpbrk(modules, ":; \t"))
        return rl_error_set(RL_ERR_ARG, "--modules '%s': expected a comma list of modules "
                            "(q_proj, k_proj, v_proj, out_proj, fc1, fc2, in_proj, attn, qkv, "
                            "mlp, all)", modules);
    snprintf(spec, sizeof(spec), "%s", modules);
    if ((rc = clip_targets_parse(spec, &t, 1, &nt)) != RL_OK)
        return rl_error_prefix(rc, "--modules");
    if ((t.modules & (1u << BLOCK_LIN_IN_PROJ)) && (t.modules & 0x7u))
        return rl_error_set(RL_ERR_ARG, "--modules '%s': in_proj is q, k and v as one linear; "
                            "list it or q_proj, k_proj, v_proj, not both", modules);
    if ((rc = model_config(model, &c)) != RL_OK)
        return rc;
    *n = 0;
    for (int tw = 0; tw < 2; tw++) {
        const size_t C = tw ? c.text.hidden : c.vision.hidden;
        const size_t F = tw ? c.text.intermediate : c.vision.intermediate;

        if (!(tw_mask & (1u << tw)))
            continue;
        for (int i = 0; i < BLOCK_NUM_LINEARS; i++) {
            static char label[2][BLOCK_NUM_LINEARS][32];

            if (!((t.modules >> i) & 1u))
                continue;
            block_linear_shape((enum block_linear)i, C, F, &shapes[*n].d_out,
                               &shapes[*n].d_in);
            reps[*n] = tw ? c.text.layers : c.vision.layers;
            snprintf(label[tw][i], sizeof(label[tw][i]), "%s %s", tower_words[tw],
                     block_linear_names[i]);
            labels[(*n)++] = label[tw][i];
        }
    }
    return RL_OK;
}

int cmd_params(int argc, char **argv)
{
    const char *method = NULL, *profile = "peft", *rank_s = NULL, *budget_s = NULL;
    const char *repeat_s = NULL, *bases_s = NULL, *model = NULL, *modules = NULL;
    const char *towers = NULL;
    struct adapter_shape shapes[MAX_SHAPES], *all;
    size_t reps[MAX_SHAPES];
    const char *labels[MAX_SHAPES] = { NULL };
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
            strcmp(o, "--bases") && strcmp(o, "--model") && strcmp(o, "--modules") &&
            strcmp(o, "--towers"))
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
        else if (!strcmp(o, "--model"))
            model = argv[++i];
        else if (!strcmp(o, "--modules"))
            modules = argv[++i];
        else if (!strcmp(o, "--towers"))
            towers = argv[++i];
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
    if (model && (n_shapes || repeat_s))
        return bad("give --model or --shape (with --repeat), not both");
    if (!model && (modules || towers))
        return bad("--modules and --towers need --model");
    if (!model && n_shapes == 0)
        return bad("at least one --shape OUTxIN (or --model NAME) is required");
    if (repeat_s && cli_parse_count(repeat_s, SIZE_MAX, &repeat))
        return bad("--repeat '%s': expected a positive integer", repeat_s);
    for (size_t i = 0; i < n_shapes; i++)
        reps[i] = repeat;
    if (model && (rc = model_shapes(model, modules ? modules : "q_proj,k_proj,v_proj,fc1,fc2",
                                    towers ? towers : "both", shapes, reps, labels,
                                    &n_shapes)) != RL_OK) {
        fprintf(stderr, "randlora params: %s\n", rl_error_msg());
        return rl_exit_code(rc);
    }
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

    /* the full list: each shape its number of times */
    n_all = 0;
    for (size_t i = 0; i < n_shapes; i++)
        if (!size_add_ok(n_all, reps[i], &n_all) || n_all > ((size_t)1 << 24))
            return bad("--repeat %s: too many layers", repeat_s ? repeat_s : "");
    all = xmalloc_array(n_all, sizeof(*all));
    for (size_t i = 0, k = 0; i < n_shapes; i++)
        for (size_t l = 0; l < reps[i]; l++)
            all[k++] = shapes[i];

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
    if (model)
        printf("model      %s\n", model);
    printf("%-14s %8s %14s %8s %16s%s\n", "shape", "bases", "per layer", "layers", "trainable",
           model ? "  linear" : "");
    for (size_t i = 0; i < n_shapes; i++) {
        char sh[48], nb[24] = "-";
        size_t per = adapter_count_layer(ops, &cfg, shapes[i].d_out, shapes[i].d_in);

        snprintf(sh, sizeof(sh), "%zux%zu", shapes[i].d_out, shapes[i].d_in);
        if (!strcmp(ops->name, "randlora"))
            snprintf(nb, sizeof(nb), "%zu", randlora_n_bases(&cfg, shapes[i].d_out, shapes[i].d_in));
        else if (ops->flags & ADAPTER_F_BUDGET_BASES)
            snprintf(nb, sizeof(nb), "%zu", cfg.nola_bases);
        printf("%-14s %8s %14zu %8zu %16zu%s%s\n", sh, nb, per, reps[i], per * reps[i],
               labels[i] ? "  " : "", labels[i] ? labels[i] : "");
    }
    printf("trainable  %zu\n", total);
    printf("shared     %zu frozen (stored with the adapter)\n", shared);
    return 0;
}
