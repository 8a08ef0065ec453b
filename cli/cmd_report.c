/*
 * cmd_report.c: `randlora report DIR... [-c FILE [-s S.K=V ...]]
 * [--metric val_accuracy|val_loss] [--format text|md|tsv|latex] [--all]`:
 * the comparison table of run files, each method's setting chosen on
 * validation data and reported on test data over seeds (results/report.h,
 * docs/comparison.md).
 *
 * Exit status: 0 printed, 2 bad usage, a directory that cannot be read, no
 * run file, or a bad experiment file; 1 other failures.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "cli/cli.h"
#include "cli/commands.h"
#include "experiments/config.h"
#include "experiments/runner.h"
#include "results/report.h"

#define MAX_ARGS 256

static void report_usage(FILE *out)
{
    fprintf(out,
            "usage: randlora report DIR... [-c FILE [-s section.key=value ...]]\n"
            "                       [--metric val_accuracy|val_loss]\n"
            "                       [--format text|md|tsv|latex] [--all]\n"
            "\n"
            "The comparison table of the run files in each DIR (or the run files given):\n"
            "for each dataset, method, budget or rank and shots or fraction, the\n"
            "hyperparameter setting with the best mean validation metric over seeds, and\n"
            "at that setting the test accuracy as mean +- standard deviation over seeds,\n"
            "n, and a 95%% t interval for n >= 3. Marks: * seeds missing or runs\n"
            "unfinished, ! settings without validation data left out, = a tie decided by\n"
            "the tie rule (docs/comparison.md).\n"
            "\n"
            "  -c FILE      the experiment file of the grid: files whose stored plan is not\n"
            "               a run of it are named, runs of it without a file count as\n"
            "               missing seeds, and the expected seeds are its seeds\n"
            "  -s S.K=V     override a key of FILE (as given to sweep)\n"
            "  --metric M   val_accuracy (default, highest wins) or val_loss (lowest wins)\n"
            "  --format F   text (default), md (Markdown), tsv (one row per cell), latex\n"
            "  --all        also every setting of every cell, with its validation and\n"
            "               test means (tsv: one row per setting; not with latex)\n");
}

/* one usage error line (cli.h), exit status 2 */
#define bad(...) cli_bad("report", true, __VA_ARGS__)

int cmd_report(int argc, char **argv)
{
    const char *dirs[MAX_ARGS], *ov[MAX_ARGS], *file = NULL;
    size_t n_dirs = 0, n_ov = 0, n_plans = 0;
    struct report_options o = { REPORT_VAL_ACCURACY, NULL, 0 };
    enum report_format fmt = REPORT_TEXT;
    bool all = false, have_exp = false;
    struct experiment e;
    struct run_plan *plans = NULL;
    int rc = RL_OK;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];

        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            report_usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--all")) {
            all = true;
            continue;
        }
        if (a[0] != '-' || !a[1]) {
            if (n_dirs == MAX_ARGS)
                return bad("at most %d directories", MAX_ARGS);
            dirs[n_dirs++] = a;
            continue;
        }
        if (strcmp(a, "--metric") && strcmp(a, "--format") && strcmp(a, "-c") && strcmp(a, "-s"))
            return bad("unknown option '%s'", a);
        if (i + 1 >= argc)
            return bad("%s needs a value", a);
        const char *v = argv[++i];
        if (!strcmp(a, "--metric")) {
            if (!strcmp(v, "val_accuracy"))
                o.metric = REPORT_VAL_ACCURACY;
            else if (!strcmp(v, "val_loss"))
                o.metric = REPORT_VAL_LOSS;
            else
                return bad("--metric '%s': expected val_accuracy or val_loss", v);
        } else if (!strcmp(a, "--format")) {
            static const char *const names[] = { "text", "md", "tsv", "latex" };
            size_t k;

            for (k = 0; k < 4 && strcmp(v, names[k]); k++)
                ;
            if (k == 4)
                return bad("--format '%s': expected text, md, tsv or latex", v);
            fmt = (enum report_format)k;
        } else if (!strcmp(a, "-c")) {
            file = v;
        } else {
            if (n_ov == MAX_ARGS)
                return bad("at most %d -s overrides", MAX_ARGS);
            ov[n_ov++] = v;
        }
    }
    if (!n_dirs)
        return bad("no directory given");
    if (n_ov && !file)
        return bad("-s needs -c FILE");
    if (all && fmt == REPORT_LATEX)
        return bad("--all goes with --format text, md or tsv (latex prints the chosen cells)");

    if (file) {
        struct runner_shapes shapes = { 0 };

        if ((rc = experiment_load(&e, file, ov, n_ov)) != RL_OK)
            goto done;
        have_exp = true;
        rc = experiment_expand(&e, runner_plan_shapes, &shapes, &plans, &n_plans);
        runner_shapes_free(&shapes);
        if (rc != RL_OK)
            goto done;
    }
    rc = report_from_dirs(stdout, stderr, "randlora report", dirs, n_dirs, plans, n_plans, &o,
                          fmt, all);
done:
    if (rc != RL_OK)
        fprintf(stderr, "randlora report: %s\n", rl_error_msg());
    run_plans_free(plans, n_plans);
    if (have_exp)
        experiment_free(&e);
    return rl_exit_code(rc);
}
