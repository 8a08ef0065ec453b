/*
 * cmd_train.c: `randlora train -c FILE [-s section.key=value ...] [-o RUN.h5]
 * [--run ID] [--resume | --force] [--dry-run]`: one fine-tuning run of an
 * experiment file (experiments/runner.h). The file may expand to several
 * runs: `train` runs the only one, or the one --run names; --dry-run lists
 * them (experiments/plan_list.h) after opening their data, and runs
 * nothing. An existing RUN.h5 is never replaced silently: --resume
 * continues it, --force replaces it, neither is a refusal. Prints one result
 * line (val: with a validation split):
 *     lora-b25000-s4-seed1: accuracy 0.6120 (val 0.6000), 32768 trainable, 100 steps, 41.2 s -> FILE
 * Exit status 0, 2 for bad usage or bad input (one line), 1 otherwise (a
 * results file that cannot be written included), 130 / 143 after SIGINT /
 * SIGTERM: the step in progress is finished and recorded, then
 *     randlora train: ID: interrupted at step 7 (SIGINT); resume with randlora train -c x.ini --resume
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/dist.h"
#include "core/interrupt.h"
#include "core/status.h"
#include "core/threads.h"
#include "core/timer.h"
#include "cli/cli.h"
#include "cli/commands.h"
#include "experiments/config.h"
#include "experiments/plan_list.h"
#include "experiments/run_lock.h"
#include "experiments/runner.h"

#define MAX_OVERRIDES 256

static void train_usage(FILE *out)
{
    fprintf(out,
            "usage: randlora train -c FILE [-s section.key=value ...] [-o RUN.h5] [--run ID]\n"
            "                      [--resume | --force] [--dry-run] [-q]\n"
            "\n"
            "One fine-tuning run of an experiment file: class prompts through the text\n"
            "tower, images through the vision tower, cross-entropy on scaled cosine logits,\n"
            "AdamW with a cosine schedule; curves, checkpoints, final metrics and the\n"
            "adapter go into one HDF5 results file.\n"
            "\n"
            "  -c FILE      the experiment file (INI)\n"
            "  -s S.K=V     override a key (repeatable), e.g. -s train.steps=50\n"
            "  -o RUN.h5    results file (default: <experiment output>/<run id>.h5)\n"
            "  --run ID     which run, when the file expands to several\n"
            "  --resume     continue RUN.h5 from its last checkpoint\n"
            "  --force      replace an existing RUN.h5 (without --resume or --force an\n"
            "               existing RUN.h5 is refused)\n"
            "  --dry-run    print the run (or, without --run, every run of the file): id,\n"
            "               method, rank, lr, steps, effective batch, trainable count,\n"
            "               after opening its datasets; train nothing, create nothing\n"
            "  -q           no progress line\n");
}

/* one usage error line (cli.h), exit status 2 */
#define bad(...) cli_bad("train", false, __VA_ARGS__)

static int fail(int rc)
{
    fprintf(stderr, "randlora train: %s\n", rl_error_msg());
    return interrupt_exit_code(rc);
}

/* --dry-run: the plans' data opened and counted, one line each */
static int dry_run_list(const char *file, const struct run_plan *plans, size_t n)
{
    size_t *n_train = xcalloc(n ? n : 1, sizeof(*n_train)), w;
    int rc = plan_list_check_data(plans, n, n_train);

    if (rc != RL_OK) {
        free(n_train);
        return fail(rc);
    }
    printf("train %s: %zu run%s (dry run: nothing trained)\n", file, n, n == 1 ? "" : "s");
    w = plan_list_id_width(plans, n);
    plan_list_header(stdout, w, false);
    for (size_t i = 0; i < n; i++)
        plan_list_line(stdout, &plans[i], w, n_train[i], NULL);
    free(n_train);
    return 0;
}

/* The results file out (the plan's default: its folder made first) its
 * lock taken into *lk; an existing one refused without --resume or
 * --force. 0, or the exit status (the message printed). */
static int claim_output(const struct run_plan *plan, const char *out, bool is_default,
                        bool resume, bool force, struct run_lock *lk)
{
    int rc;

    if (is_default && (rc = runner_mkdir_p(plan->output)) != RL_OK)
        return fail(rc);
    if ((rc = run_lock_acquire(lk, out)) != RL_OK)
        return fail(rc);
    if (!resume && !force && access(out, F_OK) == 0) {
        run_lock_release(lk);
        return bad("%s exists; continue it with --resume, or replace it with --force", out);
    }
    return 0;
}

/* the one result line */
static void print_result(const struct run_plan *plan, const struct runner_result *res,
                         const char *out)
{
    if (res->already_complete)
        printf("%s: already complete: accuracy %.4f, %zu trainable -> %s\n", plan->id,
               res->accuracy, res->n_trainable, out);
    else if (res->n_val_items)
        printf("%s: accuracy %.4f (val %.4f), %zu trainable, %zu steps, %.1f s -> %s\n",
               plan->id, res->accuracy, res->val_accuracy, res->n_trainable, res->steps,
               res->seconds, out);
    else
        printf("%s: accuracy %.4f, %zu trainable, %zu steps, %.1f s -> %s\n", plan->id,
               res->accuracy, res->n_trainable, res->steps, res->seconds, out);
}

/* Rank 0, on several ranks: what the gradient sums cost this session
 * (core/dist.h dist_sum_stats), against its wall time in the runner:
 *     MPI: 2 ranks, 6 gradient sums of 589824 floats (2359.3 KB): exchange 0.92 s
 *     (4.1%), waiting for other ranks 0.00 s (0.0%) of 22.18 s */
static void print_dist_cost(double seconds)
{
    const struct dist_sum_stats st = dist_sum_stats();
    const size_t per = st.calls ? st.floats / st.calls : 0;

    if (dist_size() < 2 || !st.calls || seconds <= 0)
        return;
    printf("MPI: %d ranks, %zu gradient sums of %zu floats (%.1f KB): exchange %.2f s (%.1f%%), "
           "waiting for other ranks %.2f s (%.1f%%) of %.2f s\n", dist_size(), st.calls, per,
           (double)per * sizeof(float) / 1e3, st.exchange_seconds,
           100 * st.exchange_seconds / seconds, st.wait_seconds, 100 * st.wait_seconds / seconds,
           seconds);
}

int cmd_train(int argc, char **argv)
{
    const char *file = NULL, *out = NULL, *run_id = NULL;
    const char *ov[MAX_OVERRIDES];
    size_t n_ov = 0, n_plans = 0;
    bool resume = false, quiet = false, force = false, dry_run = false, is_default;
    struct experiment e;
    struct run_plan *plans = NULL, *plan = NULL;
    struct runner_shapes shapes = { 0 };
    struct runner_options o;
    struct runner_result res;
    struct run_lock lk;
    char path[4096], *resume_cmd = NULL;
    double t0;
    int rc, status;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];

        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            train_usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--resume")) {
            resume = true;
            continue;
        }
        if (!strcmp(a, "-q")) {
            quiet = true;
            continue;
        }
        if (!strcmp(a, "--force")) {
            force = true;
            continue;
        }
        if (!strcmp(a, "--dry-run")) {
            dry_run = true;
            continue;
        }
        if (strcmp(a, "-c") && strcmp(a, "-s") && strcmp(a, "-o") && strcmp(a, "--run"))
            return bad("unknown option '%s' (see randlora train --help)", a);
        if (i + 1 >= argc)
            return bad("%s needs a value", a);
        if (!strcmp(a, "-c"))
            file = argv[++i];
        else if (!strcmp(a, "-o"))
            out = argv[++i];
        else if (!strcmp(a, "--run"))
            run_id = argv[++i];
        else {
            if (n_ov == MAX_OVERRIDES)
                return bad("at most %d -s overrides", MAX_OVERRIDES);
            ov[n_ov++] = argv[++i];
        }
    }
    if (!file)
        return bad("-c FILE is required (see randlora train --help)");
    if (resume && force)
        return bad("--resume continues RUN.h5 and --force replaces it: give one");

    threads_init(0);
    if ((rc = experiment_load(&e, file, ov, n_ov)) != RL_OK)
        return fail(rc);
    rc = experiment_expand(&e, runner_plan_shapes, &shapes, &plans, &n_plans);
    runner_shapes_free(&shapes);
    if (rc != RL_OK) {
        experiment_free(&e);
        return fail(rc);
    }
    for (size_t i = 0; i < n_plans; i++)
        if (run_id ? !strcmp(plans[i].id, run_id) : n_plans == 1)
            plan = &plans[i];
    if (dry_run && (plan || !run_id)) {
        status = dry_run_list(file, plan ? plan : plans, plan ? 1 : n_plans);
        goto done;
    }
    if (!plan) {
        size_t len = 0, cap = 1;
        char *ids;

        for (size_t i = 0; i < n_plans; i++)
            cap += strlen(plans[i].id) + 2;
        ids = xmalloc(cap);
        ids[0] = '\0';
        for (size_t i = 0; i < n_plans; i++)
            len += (size_t)snprintf(ids + len, cap - len, "%s%s", i ? ", " : "", plans[i].id);
        if (run_id)
            status = bad("%s: no run '%s' (runs: %s)", file, run_id, ids);
        else
            status = bad("%s expands to %zu runs; pick one with --run ID (runs: %s)", file,
                         n_plans, ids);
        free(ids);
        goto done;
    }
    is_default = !out;
    if (is_default) {
        snprintf(path, sizeof(path), "%s/%s.h5", plan->output, plan->id);
        out = path;
    }
    runner_options_init(&o);
    o.resume = resume;
    o.verbosity = quiet ? 0 : 1;
    resume_cmd = cli_resume_command("train", argc, argv);
    o.resume_command = resume_cmd;
    /* the results file's folder, lock and refusal: rank 0's alone (the
     * only writer; docs/cluster.md); the other ranks exit with its status */
    status = dist_rank() == 0 ? claim_output(plan, out, is_default, resume, force, &lk) : 0;
    dist_broadcast(&status, sizeof(status));
    if (status != 0)
        goto done;
    interrupt_install();
    t0 = timer_now();
    rc = runner_run(plan, out, &o, &res);
    t0 = timer_now() - t0;
    interrupt_restore();
    if (dist_rank() == 0)
        run_lock_release(&lk);
    if (rc != RL_OK) {
        status = fail(rc);
        goto done;
    }
    if (dist_rank() == 0) {                        /* one result line */
        print_result(plan, &res, out);
        print_dist_cost(t0);
    }
    status = 0;
done:
    free(resume_cmd);
    run_plans_free(plans, n_plans);
    experiment_free(&e);
    return status;
}
