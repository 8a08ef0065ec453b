/*
 * cmd_sweep.c: `randlora sweep -c FILE [-s section.key=value ...] [--jobs N]
 * [--shard I/N] [--resume] [--dry-run] [--summary] [-q]`: every run of an
 * experiment file's grid into <output>/<id>.h5, then <output>/summary.tsv
 * and the report table (experiments/sweep.h, results/report.h).
 * Exit status 0 (every selected run complete), 2 for bad usage or bad input
 * (one line; nothing run), 1 when runs failed (the others still ran), 130 /
 * 143 after SIGINT / SIGTERM (the running runs record their step and stop).
 * Under mpirun rank 0 runs the sweep and hands the runs out; the other
 * ranks serve (experiments/sweep_ranks.h) and exit with rank 0's status.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/dist.h"
#include "core/interrupt.h"
#include "core/status.h"
#include "cli/cli.h"
#include "cli/commands.h"
#include "experiments/config.h"
#include "experiments/plan_list.h"
#include "experiments/runner.h"
#include "experiments/sweep.h"
#include "experiments/sweep_ranks.h"

#define MAX_OVERRIDES 256

static void sweep_usage(FILE *out)
{
    fprintf(out,
            "usage: randlora sweep -c FILE [-s section.key=value ...] [--jobs N] [--shard I/N]\n"
            "                      [--resume] [--dry-run] [--summary] [-q]\n"
            "\n"
            "Every run of an experiment file's grid (datasets x methods x budgets or ranks\n"
            "x shots x hyperparameter settings x seeds), each into <output>/<run id>.h5,\n"
            "then <output>/summary.tsv (one row per run file) and the report table\n"
            "(randlora report: test accuracy at each method's setting chosen on\n"
            "validation, over seeds).\n"
            "\n"
            "  -c FILE      the experiment file (INI)\n"
            "  -s S.K=V     override a key (repeatable), e.g. -s train.steps=50\n"
            "  --jobs N     N runs at once, each in its own process with cores/N threads\n"
            "               (default: [sweep] jobs)\n"
            "  --shard I/N  only the runs whose grid index is I modulo N (0 <= I < N): N\n"
            "               machines or array tasks share one grid and one output directory\n"
            "  --resume     skip runs whose file is complete, continue unfinished ones from\n"
            "               their last checkpoint; without it a sweep refuses to touch an\n"
            "               existing run file\n"
            "  --dry-run    print the runs (id, method, rank, lr, steps, effective batch,\n"
            "               trainable count, state) after opening every dataset; run nothing\n"
            "  --summary    only rewrite summary.tsv from the run files, name the files that\n"
            "               are not runs of the grid, and print the report table\n"
            "  -q           no per-step progress from the runs\n"
            "\n"
            "Under mpirun -np K, rank 0 hands whole runs to the K ranks, one run per\n"
            "rank at a time (each run one process; --jobs is refused there).\n"
            "\n"
            "Examples (a Slurm array of 8 tasks; 8 ranks in one allocation):\n"
            "  #SBATCH --array=0-7\n"
            "  randlora sweep -c exp.ini --resume --shard $SLURM_ARRAY_TASK_ID/8\n"
            "  mpirun -np 8 randlora sweep -c exp.ini --resume\n");
}

/* one usage error line (cli.h), exit status 2 */
#define bad(...) cli_bad("sweep", false, __VA_ARGS__)

/* Under mpirun, once the ranks agreed (dist_first) that some rank could not
 * load or expand the experiment (this one when rc is not RL_OK): every rank
 * stops. A rank that failed says why (ranks other than 0 name themselves);
 * all exit with rank 0's status, 1 when only other ranks failed.
 * Collective. */
static int ranks_disagree(int rc, char *resume_cmd)
{
    int status = rc != RL_OK ? interrupt_exit_code(rc) : 1;

    if (rc != RL_OK) {
        if (dist_rank() > 0)
            fprintf(stderr, "randlora sweep: MPI rank %d: %s\n", dist_rank(), rl_error_msg());
        else
            fprintf(stderr, "randlora sweep: %s\n", rl_error_msg());
    }
    dist_broadcast(&status, sizeof(status));
    free(resume_cmd);
    return status;
}

int cmd_sweep(int argc, char **argv)
{
    const char *file = NULL;
    const char *ov[MAX_OVERRIDES];
    size_t n_ov = 0, n_plans = 0;
    bool summary_only = false;
    struct sweep_options o;
    struct experiment e;
    struct run_plan *plans = NULL;
    struct runner_shapes shapes = { 0 };
    char *resume_cmd;
    size_t *n_train = NULL;
    int rc, status;

    sweep_options_init(&o);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];

        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            sweep_usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--resume")) {
            o.resume = true;
            continue;
        }
        if (!strcmp(a, "--dry-run")) {
            o.dry_run = true;
            continue;
        }
        if (!strcmp(a, "--summary")) {
            summary_only = true;
            continue;
        }
        if (!strcmp(a, "-q")) {
            o.verbosity = 0;
            continue;
        }
        if (strcmp(a, "-c") && strcmp(a, "-s") && strcmp(a, "--jobs") && strcmp(a, "-j") &&
            strcmp(a, "--shard"))
            return bad("unknown option '%s' (see randlora sweep --help)", a);
        if (i + 1 >= argc)
            return bad("%s needs a value (see randlora sweep --help)", a);
        const char *v = argv[++i];
        if (!strcmp(a, "-c")) {
            file = v;
        } else if (!strcmp(a, "--jobs") || !strcmp(a, "-j")) {
            char *end;
            unsigned long n;

            errno = 0;
            n = strtoul(v, &end, 10);
            if (v[0] < '0' || v[0] > '9' || *end || errno || n < 1 || n > 1024)
                return bad("%s '%s': expected a whole number from 1 to 1024", a, v);
            o.jobs = n;
        } else if (!strcmp(a, "--shard")) {
            if (sweep_parse_shard(v, &o.shard, &o.n_shards) != RL_OK)
                return bad("%s", rl_error_msg());
        } else {
            if (n_ov == MAX_OVERRIDES)
                return bad("at most %d -s overrides", MAX_OVERRIDES);
            ov[n_ov++] = v;
        }
    }
    if (!file)
        return bad("-c FILE is required (see randlora sweep --help)");
    if (summary_only && (o.dry_run || o.n_shards))
        return bad("--summary goes with neither --dry-run nor --shard");
    if (dist_size() > 1 && o.jobs > 1)           /* every rank sees it: one says so */
        return dist_rank() > 0 ? 2 : bad("--jobs %zu: under mpirun each of the %d ranks runs one run at a time (start "
                   "more ranks instead)", o.jobs, dist_size());
    o.config_path = file;
    resume_cmd = cli_resume_command("sweep", argc, argv);
    o.resume_command = resume_cmd;

    if ((rc = experiment_load(&e, file, ov, n_ov)) != RL_OK) {
        if (dist_size() > 1) {
            dist_first(true);           /* as the ranks that loaded it do below */
            return ranks_disagree(rc, resume_cmd);
        }
        fprintf(stderr, "randlora sweep: %s\n", rl_error_msg());
        free(resume_cmd);
        return rl_exit_code(rc);
    }
    rc = experiment_expand(&e, runner_plan_shapes, &shapes, &plans, &n_plans);
    runner_shapes_free(&shapes);
    if (dist_size() > 1 && dist_first(rc != RL_OK) >= 0) {
        status = ranks_disagree(rc, resume_cmd);
        run_plans_free(plans, n_plans);
        experiment_free(&e);
        return status;
    }
    if (dist_rank() > 0) {
        /* rank 0 lists, refuses, summarises and hands out the runs */
        status = sweep_ranks_serve(plans, n_plans, &o);
        run_plans_free(plans, n_plans);
        experiment_free(&e);
        free(resume_cmd);
        return status;
    }
    if (rc == RL_OK && o.dry_run) {
        n_train = xcalloc(n_plans ? n_plans : 1, sizeof(*n_train));
        rc = plan_list_check_data(plans, n_plans, n_train);
        o.n_train = n_train;
    }
    if (rc == RL_OK) {
        if (summary_only)
            rc = sweep_write_summary(e.output, plans, n_plans, stdout, stderr, NULL);
        else
            rc = sweep_run(&e, plans, n_plans, &o, NULL);
    }
    if (rc != RL_OK)
        fprintf(stderr, "randlora sweep: %s\n", rl_error_msg());
    status = interrupt_exit_code(rc);
    if (dist_size() > 1)
        sweep_ranks_release(status);
    free(n_train);
    run_plans_free(plans, n_plans);
    experiment_free(&e);
    free(resume_cmd);
    return status;
}
