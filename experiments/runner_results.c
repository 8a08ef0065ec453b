/*
 * runner_results.c: the results file of a run (results/store.h): creating
 * it with the run's metadata, what an earlier writer left (resume), and the
 * commit of a finished or stopped run: everything the complete file holds
 * goes into the store's working copy, /final/completed last, and
 * store_commit renames it over the file (store.h, "Commit"), so a run killed
 * at any instant leaves a file that resumes or a complete one.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "core/alloc.h"
#include "core/gemm_bf16.h"
#include "core/status.h"
#include "core/threads.h"
#include "experiments/runner_impl.h"
#include "models/head.h"
#include "results/run_adapters.h"
#include "results/store.h"

#define RUNNER_HARNESS_VERSION "randlora 0.1"

static void git_commit(char *buf, size_t size)
{
    FILE *p = popen("git rev-parse --short=12 HEAD 2>/dev/null", "r");

    snprintf(buf, size, "unknown");
    if (p) {
        if (fgets(buf, (int)size, p))
            buf[strcspn(buf, "\r\n")] = '\0';
        if (pclose(p) != 0 || !buf[0])
            snprintf(buf, size, "unknown");
    }
}

int64_t runner_peak_rss_bytes(void)
{
    struct rusage ru;

    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return -1;
    return (int64_t)ru.ru_maxrss * 1024;
}


size_t runner_shared_count(struct run_state *s, struct adapter_tensor *t, size_t max)
{
    if (s->lm)
        return run_lm_shared(s, t, max);
    return s->trains ? adapter_method_tensors(&s->ca.method, t, max) : 0;
}

/* the adapter method of a training run, either kind */
static const struct adapter_ops *runner_method_ops(const struct run_state *s)
{
    return s->lm ? adapter_ops_find(s->plan->method) : s->ca.method.ops;
}

int runner_create_store(struct store **st, struct run_state *s, const char *path,
                        const char *ini, size_t flush_every)
{
    const struct run_plan *p = s->plan;
    struct adapter_tensor t[16];
    size_t n_shared = 0, nt = runner_shared_count(s, t, 16);
    char threads[128], blas[64], commit[64], gemm[160] = "";
    int64_t *idx = xmalloc_array(s->n_train ? s->n_train : 1, sizeof(*idx));
    int64_t *vidx = xmalloc_array(s->n_val ? s->n_val : 1, sizeof(*vidx));
    char val[64] = "";
    struct thread_policy tp = threads_current();
    int rc;

    for (size_t i = 0; i < nt; i++)
        n_shared += t[i].n;
    for (size_t i = 0; i < s->n_train; i++)
        idx[i] = (int64_t)s->train_idx[i];
    for (size_t i = 0; i < s->n_val; i++)
        vidx[i] = (int64_t)s->val_idx[i];
    if (s->has_val && p->val.kind != EXP_VAL_SPEC)
        exp_val_text(&p->val, val, sizeof(val));
    threads_describe(threads, sizeof(threads));
    snprintf(blas, sizeof(blas), "openblas %s", tp.blas_mode ? tp.blas_mode : "");
    git_commit(commit, sizeof(commit));
    /* the precision in effect: bf16 copies made (a trained run with
     * train.precision = bf16), and then the kernel oneDNN runs them on */
    const bool runs_bf16 = s->trains && s->ca.w_bf16;
    if (runs_bf16)
        gemm_bf16_describe(gemm, sizeof(gemm));
    struct store_run_info info = {
        .harness_version = RUNNER_HARNESS_VERSION, .git_commit = commit, .threads = threads,
        .blas = blas, .precision = runs_bf16 ? "bf16" : "fp32", .bf16_gemm = gemm,
        .config_text = ini, .method = p->method,
        .rank = (int64_t)(s->trains && (runner_method_ops(s)->flags & ADAPTER_F_RANK)
                          ? p->adapter.r : 0),
        .alpha = adapter_alpha(&p->adapter), .profile = p->profile,
        .n_trainable = run_n_trainable(s), .n_frozen_shared = n_shared,
        .data_spec = p->dataset, .shots = (int64_t)p->shots,
        .fraction = p->shots ? 0.0 : p->fraction, .sampling_seed = p->sample_seed,
        .train_index = idx, .n_train_index = s->n_train, .flush_every = flush_every,
        .val = p->val.kind == EXP_VAL_SPEC ? p->val.spec : val,
        .val_spec = p->val.kind == EXP_VAL_SPEC ? p->val.spec : p->dataset,
        .val_index = vidx, .n_val_index = s->n_val,
    };
    rc = store_create(st, path, &info);
    free(idx);
    free(vidx);
    return rc;
}

/* /adapter (runner.h) and its attributes, into the working copy */
static int write_adapter(struct store *st, struct run_state *s)
{
    struct adapter_tensor t[16];
    char site[160], path[512];
    int rc = RL_OK;

    const struct linear_head *h = run_head_of(s);
    /* the sites: CLIP's or a decoder's (train_lm.c) */
    const size_t n_sites = s->lm ? run_lm_n_sites(s) : s->ca.n_sites;

    if (h) {
        /* peft's modules_to_save "classifier": classifier.weight, .bias */
        size_t ws[2] = { h->out, h->in }, bs[1] = { h->out };

        rc = store_write_tensor(st, "/adapter/" RUN_ADAPTERS_HEAD "/weight", h->w, 2, ws);
        if (rc == RL_OK)
            rc = store_write_tensor(st, "/adapter/" RUN_ADAPTERS_HEAD "/bias", h->b, 1, bs);
        if (rc == RL_OK && !s->trains)
            rc = store_attr_set_string(st, "/adapter", "method", s->plan->method);
        if (rc == RL_OK && !s->trains)
            rc = store_attr_set_int64(st, "/adapter", "r", 0);
    }
    if (!s->trains || rc != RL_OK)
        return rc;
    for (size_t k = 0; k < n_sites && rc == RL_OK; k++) {
        struct adapter *a = s->lm ? run_lm_site(s, k, site, sizeof(site)) : &s->ca.adapters[k];
        size_t nt = adapter_tensors(a, false, t, 16);

        if (!s->lm)
            clip_site_name(&s->ca.sites[k], site, sizeof(site));
        for (size_t i = 0; i < nt && rc == RL_OK; i++) {
            snprintf(path, sizeof(path), "/adapter/%s/%s", site, t[i].name);
            rc = store_write_tensor(st, path, t[i].data, (size_t)t[i].ndim, t[i].shape);
        }
        snprintf(path, sizeof(path), "/adapter/%s", site);
        if (rc == RL_OK && nt)
            rc = store_attr_set_int64(st, path, "d_out", (int64_t)a->d_out);
        if (rc == RL_OK && nt)
            rc = store_attr_set_int64(st, path, "d_in", (int64_t)a->d_in);
    }
    size_t ns = runner_shared_count(s, t, 16);
    for (size_t i = 0; i < ns && rc == RL_OK; i++) {
        snprintf(path, sizeof(path), "/adapter/shared/%s", t[i].name);
        rc = store_write_tensor(st, path, t[i].data, (size_t)t[i].ndim, t[i].shape);
    }
    if (rc == RL_OK)
        rc = store_attr_set_string(st, "/adapter", "method", s->plan->method);
    if (rc == RL_OK)
        rc = store_attr_set_int64(st, "/adapter", "r",
                                  (runner_method_ops(s)->flags & ADAPTER_F_RANK)
                                      ? (int64_t)s->plan->adapter.r : 0);
    return rc;
}

int runner_read_prior(const char *path, const char *ini, const char *id, struct run_prior *pr)
{
    struct store *rd = NULL;
    struct store_checkpoint_info ci = { 0 };
    char *text = NULL;
    int completed = 0;
    int64_t *steps = NULL;
    double *vals = NULL, *loss = NULL;
    size_t n = 0, rows_t = 0, rows_e = 0;
    int rc;

    memset(pr, 0, sizeof(*pr));
    pr->last_eval_step = -1;
    if ((rc = store_open(&rd, path)) != RL_OK)
        return rc;
    if ((rc = store_read_config(rd, &text)) != RL_OK)
        goto out;
    if (strcmp(text, ini) != 0) {
        rc = rl_error_set(RL_ERR_ARG, "%s: holds a run with another configuration than %s's; "
                          "remove it or run without --resume", path, id);
        goto out;
    }
    if ((rc = store_read_final(rd, &pr->fin, &completed)) != RL_OK)
        goto out;
    pr->completed = completed != 0;
    if (pr->completed)
        goto out;
    rc = store_read_checkpoint(rd, &ci, NULL, NULL, NULL, NULL);
    if (rc == RL_ERR_NA) {
        rc = RL_OK;                      /* no checkpoint: start over in this file */
        rl_error_clear();
        goto out;
    }
    if (rc != RL_OK)
        goto out;
    rows_t = ci.train_rows;
    rows_e = ci.eval_rows;
    if ((rc = store_read_curve(rd, "train", "wall_s", NULL, &vals, &n)) != RL_OK)
        goto out;
    if (rows_t && rows_t <= n)
        pr->last_wall = vals[rows_t - 1];
    free(vals);
    vals = NULL;
    if ((rc = store_read_curve(rd, "eval", "accuracy", &steps, &vals, &n)) != RL_OK)
        goto out;
    if ((rc = store_read_curve(rd, "eval", "loss", NULL, &loss, &n)) != RL_OK)
        goto out;
    if (rows_e && rows_e <= n) {
        pr->last_eval_step = steps[rows_e - 1];
        pr->last_acc = vals[rows_e - 1];
        pr->last_loss = loss[rows_e - 1];
    }
out:
    free(text);
    free(steps);
    free(vals);
    free(loss);
    store_close(rd);
    return rc;
}

int runner_commit_final(struct store *st, struct run_state *s, const struct store_final *f)
{
    int rc;

    if ((rc = store_finish(st)) || (rc = write_adapter(st, s)) ||
        (s->lm && (rc = run_lm_write_results(st, s))) ||
        (rc = store_attr_set_int64(st, "/", "runner_steps", (int64_t)s->total_steps)) ||
        (rc = store_write_final(st, f)))
        return rc;
    return store_commit(st);
}

int runner_commit_stopped(struct store *st, const char *why, size_t step)
{
    int rc;

    if ((rc = store_finish(st)) || (rc = store_attr_set_string(st, "/", "stopped", why)) ||
        (rc = store_attr_set_int64(st, "/", "stopped_step", (int64_t)step)))
        return rc;
    return store_commit(st);
}
