/*
 * sweep.c: the grid of an experiment run plan by plan in child processes
 * (sweep.h); summary.tsv and the closing table are in sweep_summary.c.
 */
#include "experiments/pretrain_vit.h"
#include "models/dinov2.h"
#include "experiments/sweep.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/dist.h"
#include "core/interrupt.h"
#include "core/status.h"
#include "core/timer.h"
#include "experiments/plan_list.h"
#include "experiments/runner.h"
#include "experiments/sweep_child.h"
#include "experiments/sweep_ranks.h"
#include "methods/adapter.h"
#include "results/store.h"

void sweep_options_init(struct sweep_options *o)
{
    memset(o, 0, sizeof(*o));
    o->verbosity = 1;
}

/* a decimal number without sign or spaces; *end after it */
static bool parse_count(const char *s, unsigned long long *v, const char **end)
{
    char *e;

    if (*s < '0' || *s > '9')
        return false;
    errno = 0;
    *v = strtoull(s, &e, 10);
    *end = e;
    return errno == 0;
}

int sweep_parse_shard(const char *spec, size_t *shard, size_t *n_shards)
{
    unsigned long long i, n;
    const char *p;

    if (!spec || !parse_count(spec, &i, &p) || *p != '/' || !parse_count(p + 1, &n, &p) ||
        *p != '\0' || n == 0 || n > 1000000 || i >= n)
        return rl_error_set(RL_ERR_ARG, "--shard '%s': expected I/N with 0 <= I < N (e.g. 0/4)",
                            spec ? spec : "");
    *shard = (size_t)i;
    *n_shards = (size_t)n;
    return RL_OK;
}

/* ------------------------------------------------------------------------ */
/* what is on disk for a plan                                                */

enum file_state { FILE_NEW, FILE_COMPLETE, FILE_PARTIAL };

/* The state of a plan's run file; a file that is not a run file of this plan
 * is RL_ERR_ARG (resume) with a message naming it. *acc: the final accuracy
 * of a complete file. */
static int file_state(const struct run_plan *p, const char *path, enum file_state *state,
                      double *acc)
{
    struct store *s = NULL;
    struct store_final f;
    char *text = NULL, *ini = NULL;
    int completed = 0, rc;

    *state = FILE_NEW;
    *acc = NAN;
    if (access(path, F_OK) != 0)
        return RL_OK;
    if ((rc = store_open(&s, path)) != RL_OK)
        return rl_error_prefix(RL_ERR_ARG, "%s exists but is not a readable run file (remove "
                               "it)", path);
    if ((rc = store_read_config(s, &text)) != RL_OK) {
        rc = rl_error_prefix(RL_ERR_ARG, "%s: no run configuration (remove it)", path);
        goto out;
    }
    ini = run_plan_to_ini(p);
    if (strcmp(text, ini) != 0) {
        rc = rl_error_set(RL_ERR_ARG, "%s holds a run with another configuration than %s "
                          "(the experiment file changed?); remove it or use another "
                          "[experiment] output", path, p->id);
        goto out;
    }
    if ((rc = store_read_final(s, &f, &completed)) != RL_OK)
        goto out;
    if (completed) {
        *state = FILE_COMPLETE;
        *acc = f.accuracy;
    } else {
        *state = FILE_PARTIAL;
    }
out:
    free(text);
    free(ini);
    store_close(s);
    return rc;
}

static bool model_ready(const struct exp_model *m)
{
    const char *dir = runner_model_dir(m);
    char path[4096];
    struct stat st;

    if (!m->preset)
        return true;                      /* a model directory: the runner checks it */
    if (dinov2_is_preset(m->name))
        return pretrain_vit_is_cached(m); /* vit-tiny: pretrained with these settings */
    snprintf(path, sizeof(path), "%s/config.json", dir);
    if (stat(path, &st) != 0)
        return false;
    snprintf(path, sizeof(path), "%s/model.safetensors", dir);
    return stat(path, &st) == 0;
}

/* ------------------------------------------------------------------------ */
/* child processes                                                           */

struct slot {
    pid_t  pid;
    int    fd;
    size_t plan;
    double t0;
};

/* Run plans[todo[0..n_todo)] with at most `jobs` children. */
static void run_children(const struct run_plan *plans, char *const *paths, const size_t *todo,
                         size_t n_todo, size_t jobs, const struct sweep_options *o, FILE *out,
                         FILE *err, struct sweep_tally *t)
{
    struct slot *slots = xcalloc(jobs, sizeof(*slots));
    int *open_fds = xcalloc(jobs, sizeof(*open_fds));
    /* the running children, for the SIGINT / SIGTERM handler to pass on */
    volatile pid_t *pids = xcalloc(jobs, sizeof(*pids));
    size_t next = 0, running = 0;
    const struct sweep_child_args args = {
        .resume = o->resume, .resume_command = o->resume_command,
        .threads = sweep_threads(jobs), .verbosity = jobs == 1 ? o->verbosity : 0, .log = err,
    };

    for (size_t j = 0; j < jobs; j++)
        slots[j].pid = -1;
    interrupt_forward(pids, jobs);
    while ((next < n_todo && !interrupt_pending()) || running > 0) {
        while (running < jobs && next < n_todo && !interrupt_pending()) {
            size_t k = todo[next++], j = 0, n_open = 0;
            char why[256];
            pid_t pid;
            int fd;

            while (slots[j].pid != -1)
                j++;
            for (size_t i = 0; i < jobs; i++)
                if (slots[i].pid != -1)
                    open_fds[n_open++] = slots[i].fd;
            pid = sweep_child_start(&plans[k], paths[k], &args, open_fds, n_open, &pids[j], &fd,
                                    why, sizeof(why));
            if (pid < 0) {
                sweep_tally_not_started(t, out, plans, k, why);
                continue;
            }
            slots[j] = (struct slot){ pid, fd, k, timer_now() };
            running++;
            if (jobs > 1 && o->verbosity > 0)
                fprintf(out, "start %s (%d thread%s)\n", plans[k].id, args.threads,
                        args.threads == 1 ? "" : "s");
            fflush(out);
        }

        struct sweep_outcome oc;
        int wstatus;
        pid_t pid = waitpid(-1, &wstatus, 0);
        size_t j;

        if (pid < 0) {
            if (errno == EINTR)
                continue;
            break;                        /* ECHILD: none left (should not happen) */
        }
        for (j = 0; j < jobs && slots[j].pid != pid; j++)
            ;
        if (j == jobs)
            continue;                     /* not one of ours */
        sweep_child_collect(slots[j].fd, wstatus, timer_now() - slots[j].t0, &oc);
        slots[j].pid = -1;
        pids[j] = 0;
        running--;
        sweep_tally_end(t, out, plans, slots[j].plan, "", interrupt_pending() != 0, &oc);
    }
    interrupt_forward(NULL, 0);
    free((void *)pids);
    free(open_fds);
    free(slots);
}

/* ------------------------------------------------------------------------ */
/* the sweep                                                                 */

static const char *state_name(enum file_state s, bool resume)
{
    switch (s) {
    case FILE_COMPLETE: return resume ? "complete, skipped" : "complete (file exists)";
    case FILE_PARTIAL:  return resume ? "continue" : "unfinished (file exists)";
    default:            return "to run";
    }
}

int sweep_run(const struct experiment *e, const struct run_plan *plans, size_t n,
              const struct sweep_options *o, struct sweep_counts *c)
{
    struct sweep_counts local;
    FILE *out = o->out ? o->out : stdout, *err = o->err ? o->err : stderr;
    const size_t n_shards = o->n_shards > 1 ? o->n_shards : 1;
    size_t *sel = xcalloc(n ? n : 1, sizeof(*sel)), n_sel = 0;
    size_t *todo = xcalloc(n ? n : 1, sizeof(*todo)), n_todo = 0;
    char **paths = xcalloc(n ? n : 1, sizeof(*paths));
    enum file_state *state = xcalloc(n ? n : 1, sizeof(*state));
    struct sweep_tally t;
    const bool ranks = dist_size() > 1;    /* under mpirun: runs handed to ranks */
    size_t n_bad = 0, n_exist = 0, jobs;
    const char *first_exist = NULL;
    char first_bad[1024] = "";
    const char *output = e->output;
    int rc = RL_OK;
    double t0 = timer_now();

    sweep_tally_init(&t, 0);
    if (!c)
        c = &local;
    memset(c, 0, sizeof(*c));
    c->grid = n;
    for (size_t i = 0; i < n; i++)
        if (plans[i].index % n_shards == o->shard % n_shards)
            sel[n_sel++] = i;
    c->selected = n_sel;

    /* what exists already */
    for (size_t s = 0; s < n_sel; s++) {
        size_t i = sel[s];
        double acc;

        paths[i] = sweep_plan_path(&plans[i]);
        if (file_state(&plans[i], paths[i], &state[i], &acc) != RL_OK) {
            if (!n_bad++)
                snprintf(first_bad, sizeof(first_bad), "%s", rl_error_msg());
            state[i] = FILE_NEW;
            continue;
        }
        if (state[i] != FILE_NEW && !n_exist++)
            first_exist = paths[i];
    }

    /* the grid */
    fprintf(out, "sweep %s: %zu run%s", e->name, n, n == 1 ? "" : "s");
    if (n_shards > 1)
        fprintf(out, ", shard %zu/%zu: %zu of them", o->shard, n_shards, n_sel);
    fprintf(out, " -> %s\n", output);
    {
        size_t w = plan_list_id_width(plans, n);

        plan_list_header(out, w, true);
        for (size_t s = 0; s < n_sel; s++)
            plan_list_line(out, &plans[sel[s]], w, o->n_train ? o->n_train[sel[s]] : SIZE_MAX,
                           state_name(state[sel[s]], o->resume));
    }
    fflush(out);
    if (o->dry_run)
        goto done;

    /* refusals: nothing is run */
    if (n_bad) {
        rc = rl_error_set(RL_ERR_ARG, "%s%s", first_bad,
                          n_bad > 1 ? " (and more files like it; see the list above)" : "");
        goto done;
    }
    if (n_exist && !o->resume) {
        rc = rl_error_set(RL_ERR_ARG, "%s exists%s; a sweep does not overwrite run files: pass "
                          "--resume to skip finished runs and continue unfinished ones, or "
                          "remove them", first_exist,
                          n_exist > 1 ? " (and other run files of this grid)" : "");
        goto done;
    }
    for (size_t s = 0; s < n_sel; s++)
        if (!model_ready(&plans[sel[s]].model)) {
            const struct exp_model *m = &plans[sel[s]].model;
            rc = rl_error_set(RL_ERR_ARG, "model %s is not pretrained yet: %s has no "
                              "config.json + model.safetensors%s (run `randlora pretrain -c %s` "
                              "first)", m->name, runner_model_dir(m),
                              dinov2_is_preset(m->name) ? " + pretrain.json of these settings"
                                                        : "",
                              o->config_path ? o->config_path : "FILE");
            goto done;
        }
    if ((rc = runner_mkdir_p(output)) != RL_OK)
        goto done;

    for (size_t s = 0; s < n_sel; s++) {
        if (state[sel[s]] == FILE_COMPLETE)
            c->skipped++;
        else
            todo[n_todo++] = sel[s];
    }
    if (c->skipped)
        fprintf(out, "%zu of %zu run%s complete already (skipped)\n", c->skipped, n_sel,
                n_sel == 1 ? "" : "s");
    jobs = o->jobs ? o->jobs : (e->jobs ? e->jobs : 1);
    if (ranks)
        jobs = 1;                           /* per rank (sweep_ranks.h) */
    if (jobs > n_todo)
        jobs = n_todo ? n_todo : 1;
    sweep_tally_free(&t);
    sweep_tally_init(&t, n_todo);
    if (n_todo) {
        if (ranks)
            fprintf(out, "running %zu run%s on %d MPI ranks, one run per rank at a time\n",
                    n_todo, n_todo == 1 ? "" : "s", dist_size());
        else
            fprintf(out, "running %zu run%s, %zu at a time\n", n_todo, n_todo == 1 ? "" : "s",
                    jobs);
        fflush(out);
        interrupt_install();
        if (ranks)
            sweep_ranks_run(plans, paths, todo, n_todo, o, out, err, &t);
        else
            run_children(plans, paths, todo, n_todo, jobs, o, out, err, &t);
        interrupt_restore();
    }
    c->run = n_todo;
    c->failed = t.n_fails;

    /* a shard sees only part of the grid: the report waits for --summary */
    rc = sweep_write_summary(output, plans, n, n_shards > 1 ? NULL : out, err, &c->rows);
    if (n_shards > 1)
        fprintf(out, "shard %zu/%zu done; the report of the whole grid: randlora sweep -c %s "
                "--summary (after the last shard)\n", o->shard, n_shards,
                o->config_path ? o->config_path : "FILE");
    if (rc != RL_OK)
        fprintf(err, "randlora sweep: %s\n", rl_error_msg());
    fprintf(out, "%zu run%s in %.1f s (%zu skipped, %zu failed); summary: %s/%s\n", n_todo,
            n_todo == 1 ? "" : "s", timer_now() - t0, c->skipped, t.n_fails, output,
            SWEEP_SUMMARY_FILE);
    if (t.n_fails) {
        size_t len = 0;
        char ids[512] = "";

        fprintf(err, "randlora sweep: %zu of %zu runs failed:\n", t.n_fails, n_todo);
        for (size_t f = 0; f < t.n_fails; f++) {
            fprintf(err, "  %s: %s\n", plans[t.fails[f].plan].id, t.fails[f].msg);
            if (len < sizeof(ids))
                len += (size_t)snprintf(ids + len, sizeof(ids) - len, "%s%s", f ? ", " : "",
                                        plans[t.fails[f].plan].id);
        }
        rc = rl_error_set(RL_ERR, "%zu of %zu runs failed (%s); rerun with --resume to retry "
                          "them", t.n_fails, n_todo, ids);
    }
    if (n_todo && (interrupt_pending() || t.signal)) {
        const int sig = interrupt_pending() ? interrupt_pending() : t.signal;

        rc = rl_error_set(RL_ERR_INTERRUPTED, "interrupted (%s) with %zu of %zu runs unfinished; "
                          "resume with %s", sig == SIGTERM ? "SIGTERM" : "SIGINT",
                          n_todo - t.ok, n_todo,
                          o->resume_command ? o->resume_command : "--resume");
    }
done:
    sweep_tally_free(&t);
    for (size_t i = 0; i < n; i++)
        free(paths[i]);
    free(state);
    free(paths);
    free(todo);
    free(sel);
    return rc;
}
