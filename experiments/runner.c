/*
 * runner.c: one fine-tuning run (runner.h): the model, tokenizer, data and
 * adapters of a plan, resume, the step loop, interruption (SIGINT, SIGTERM).
 * The step and the evaluation are in train_step.c; the results file and its
 * commit in runner_results.c; the model, tokenizer and shape helpers other
 * commands share in runner_model.c.
 */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/dist.h"
#include "core/gemm_bf16.h"
#include "core/interrupt.h"
#include "core/progress.h"
#include "core/status.h"
#include "core/timer.h"
#include "datasets/fewshot.h"
#include "datasets/meta.h"
#include "experiments/runner_impl.h"
#include "results/store.h"

#define EVAL_CACHE_MAX_BYTES   ((size_t)256 << 20)

void runner_options_init(struct runner_options *o)
{
    memset(o, 0, sizeof(*o));
    o->verbosity = 1;
}

/* ------------------------------------------------------------------------ */
/* set-up                                                                    */

void runner_fill_prompt(char *buf, size_t size, const char *tmpl, const char *name)
{
    const char *at = strstr(tmpl, "{}");

    if (!at)
        snprintf(buf, size, "%s", tmpl);
    else
        snprintf(buf, size, "%.*s%s%s", (int)(at - tmpl), tmpl, name, at + 2);
}

/* the prompts (M x K, class-major) into ids; the longest end-of-text + 1 */
static int encode_prompts(const struct tokenizer *tok, char *const *names, size_t M,
                          char *const *templates, size_t K, int32_t *ids, size_t ctx,
                          size_t *max_T)
{
    char buf[2048];

    for (size_t c = 0; c < M; c++)
        for (size_t k = 0; k < K; k++) {
            int eot = 0;
            int rc;

            runner_fill_prompt(buf, sizeof(buf), templates[k], names[c]);
            rc = tok_encode(tok, buf, ids + (c * K + k) * ctx, &eot);
            if (rc != RL_OK)
                return rc;
            if ((size_t)eot + 1 > *max_T)
                *max_T = (size_t)eot + 1;
        }
    return RL_OK;
}

/* tf: the evaluation transform to start from (NULL: CLIP's at size) */
static int open_loader(struct loader **L, const struct dataset *ds, const size_t *idx, size_t n,
                       size_t B, size_t size, const struct run_plan *p, bool train,
                       const struct transform *tf)
{
    struct loader_config cfg;
    size_t bytes;

    loader_config_init(&cfg, (int)B, (int)size);
    if (tf)
        cfg.transform = *tf;
    if (train) {
        cfg.shuffle = 1;
        cfg.repeat = 1;
        cfg.seed = p->train.seed;
        if (p->augment != EXP_AUGMENT_NONE) {
            cfg.transform.augment = 1;
            if (p->augment == EXP_AUGMENT_CROP_FLIP) {
                cfg.transform.scale_lo = 0.5f;
                cfg.transform.scale_hi = 1.0f;
            } else {
                cfg.transform.scale_lo = cfg.transform.scale_hi = 1.0f;
                cfg.transform.ratio_lo = cfg.transform.ratio_hi = 1.0f;
            }
        }
    } else if (size_mul_ok(n, 3 * size * size * sizeof(float), &bytes) &&
               bytes <= EVAL_CACHE_MAX_BYTES) {
        cfg.cache = 1;
    }
    return loader_open(L, ds, idx, n, &cfg);
}

static void state_free(struct run_state *s)
{
    loader_close(s->train_L);
    loader_close(s->eval_L);
    loader_close(s->val_L);
    dataset_close(&s->train_ds);
    dataset_close(&s->eval_ds);
    dataset_close(&s->val_ds);
    adamw_free(&s->opt);
    clip_head_free(&s->head);
    if (s->vr.buf)
        clip_vision_run_free(&s->vr);
    if (s->tr.buf)
        clip_text_run_free(&s->tr);
    clip_adapters_free(&s->ca);
    clip_model_free(&s->m);
    run_head_free(s);
    run_lm_free(s);
    free(s->train_ids);
    free(s->eval_ids);
    free(s->txt);
    free(s->dtxt);
    free(s->eval_txt);
    free(s->class_feat);
    free(s->img);
    free(s->dimg);
    free(s->ib_ids);
    free(s->ib_txt);
    free(s->ib_dtxt);
    free(s->ib_targets);
    free(s->train_idx);
    free(s->val_idx);
    free(s->weights_path);
    free(s->micro_loss);
    free(s->micro_loss_all);
    free(s->outcomes);
}

/* The training sample and the validation split (runner.h): held out of the
 * pool (fewshot_split), or the first eval_limit items of the val spec. */
static int sample_data(struct run_state *s, const struct run_plan *p, const int *labels)
{
    struct fewshot_request rq = { .shots = p->shots, .fraction = p->fraction,
                                  .seed = p->sample_seed };
    int rc;

    if (p->val.kind == EXP_VAL_PER_CLASS)
        rq.val_per_class = p->val.per_class;
    else if (p->val.kind == EXP_VAL_FRACTION)
        rq.val_fraction = p->val.fraction;
    if ((rc = fewshot_split(labels, s->train_ds.n, s->train_ds.n_classes,
                            (const char *const *)s->train_ds.class_names, &rq, &s->train_idx,
                            &s->n_train, &s->val_idx, &s->n_val)) != RL_OK)
        return rc;
    if (p->val.kind == EXP_VAL_SPEC) {
        if ((rc = dataset_open(&s->val_ds, p->val.spec)) != RL_OK)
            return rc;
        if (s->val_ds.n_classes != s->train_ds.n_classes)
            return rl_error_set(RL_ERR_ARG, "%s: %d classes, but the validation set %s (data.val) "
                                "has %d", p->dataset, s->train_ds.n_classes, p->val.spec,
                                s->val_ds.n_classes);
        s->n_val = p->eval_limit && p->eval_limit < s->val_ds.n ? p->eval_limit : s->val_ds.n;
        s->val_idx = xmalloc_array(s->n_val ? s->n_val : 1, sizeof(*s->val_idx));
        for (size_t i = 0; i < s->n_val; i++)
            s->val_idx[i] = i;
    }
    s->has_val = p->val.kind != EXP_VAL_NONE;
    if (s->has_val && s->n_val == 0)
        return rl_error_set(RL_ERR_ARG, "%s: data.val holds out no items (classes of one item "
                            "each?)", p->id);
    return RL_OK;
}

/* data.classnames: the shipped metadata's names and templates
 * (datasets/meta.h) for the training and the test set */
static int apply_classnames(struct run_state *s, const struct run_plan *p)
{
    char name[128];
    int rc;

    if (!p->classnames)
        return RL_OK;
    exp_dataset_name(p->dataset, name, sizeof(name));
    if ((rc = ds_meta_select(&s->train_ds, p->classnames, name)) != RL_OK)
        return rc;
    return ds_meta_select(&s->eval_ds, p->classnames, name);
}

/* the most text rows one forward runs: the class prompts, or with the
 * in-batch loss a micro-batch's prompts when there are more of those */
static size_t text_rows(const struct run_state *s, const struct run_plan *p)
{
    return p->train.loss == EXP_LOSS_INBATCH && s->B > s->M ? s->B : s->M;
}

/* everything a run needs before its first step */
static int state_init(struct run_state *s, const struct run_plan *p)
{
    struct tokenizer *tok = NULL;
    size_t size, max_T = 0, n_eval;
    int *labels = NULL;
    char *const *templates;
    char *one_template[1];
    struct transform tf;
    bool custom_tf = false;
    const bool head = p->model.head == EXP_HEAD_LINEAR;
    int rc;

    s->plan = p;
    s->trains = strcmp(p->method, "none") != 0;
    s->B = p->train.batch;
    s->accumulate = p->train.accumulate;
    if (s->B == 0 || s->accumulate == 0)
        return rl_error_set(RL_ERR_ARG, "%s: train.batch and train.accumulate must be > 0", p->id);

    if (run_plan_is_lm(p))
        return run_lm_init(s);                 /* a decoder (train_lm.c) */
    if ((rc = runner_load_model(&s->m, &p->model)) != RL_OK)
        return rc;
    {
        /* where merged weights are re-based from (clip_adapters_rebase):
         * the weights file of the layout the model was loaded from */
        s->weights_path = clip_dir_file(runner_model_dir(&p->model), s->m.layout, true);
    }
    if (head) {
        /* an image backbone with a linear head (train_head.c) */
        if ((rc = run_head_prepare(s, &size, &tf, &custom_tf)) != RL_OK)
            return rc;
    } else {
        if (s->m.cfg.arch == CLIP_ARCH_DINOV2)
            return rl_error_set(RL_ERR_ARG, "%s: model %s is a DINOv2 image backbone, which has "
                                "no text tower for class prompts: set model.head = linear",
                                p->id, p->model.name);
        size = s->m.cfg.vision.image_size;
        if (p->image_size && p->image_size != size)
            return rl_error_set(RL_ERR_ARG, "%s: data.image_size = %zu, but model %s takes "
                                "%zux%zu images (set 0: the model's)", p->id, p->image_size,
                                p->model.name, size, size);
        s->D = s->m.cfg.projection_dim;
        s->ctx = s->m.cfg.text.context;
        /* train.logit_scale = raw: the parameter itself, as the authors'
         * CLIPVL.forward multiplies by it (docs/comparison.md) */
        s->scale = p->train.logit_scale_raw ? s->m.w.logit_scale[0] : clip_logit_scale(&s->m);
        if ((rc = runner_load_tokenizer(&tok, runner_model_dir(&p->model), &s->m.cfg)) != RL_OK)
            return rc;
    }

    /* data */
    if ((rc = dataset_open(&s->train_ds, p->dataset)) != RL_OK)
        goto out;
    if ((rc = dataset_open(&s->eval_ds, p->eval)) != RL_OK)
        goto out;
    if (s->train_ds.n_classes != s->eval_ds.n_classes) {
        rc = rl_error_set(RL_ERR_ARG, "%s: %d classes, but the eval set %s has %d", p->dataset,
                          s->train_ds.n_classes, p->eval, s->eval_ds.n_classes);
        goto out;
    }
    if ((rc = apply_classnames(s, p)) != RL_OK)
        goto out;
    s->M = (size_t)s->train_ds.n_classes;
    labels = dataset_labels(&s->train_ds);
    if ((rc = sample_data(s, p, labels)) != RL_OK)
        goto out;
    const struct transform *tfp = custom_tf ? &tf : NULL;
    if ((rc = open_loader(&s->train_L, &s->train_ds, s->train_idx, s->n_train, s->B, size, p,
                          true, tfp)) != RL_OK)
        goto out;
    if (s->has_val &&
        (rc = open_loader(&s->val_L, p->val.kind == EXP_VAL_SPEC ? &s->val_ds : &s->train_ds,
                          s->val_idx, s->n_val, s->B, size, p, false, tfp)) != RL_OK)
        goto out;
    n_eval = p->eval_limit && p->eval_limit < s->eval_ds.n ? p->eval_limit : s->eval_ds.n;
    if ((rc = open_loader(&s->eval_L, &s->eval_ds, NULL, n_eval, s->B, size, p, false, tfp)))
        goto out;

    if (head)
        goto adapters;
    /* prompts: one per class for training; the eval ensemble */
    one_template[0] = p->prompt;
    templates = one_template;
    s->K = 1;
    if (p->templates == EXP_TEMPLATES_DATASET && s->eval_ds.n_templates > 0) {
        templates = s->eval_ds.templates;
        s->K = (size_t)s->eval_ds.n_templates;
    }
    s->train_ids = xmalloc_array(s->M * s->ctx, sizeof(int32_t));
    s->eval_ids = xmalloc_array(s->M * s->K * s->ctx, sizeof(int32_t));
    if ((rc = encode_prompts(tok, s->train_ds.class_names, s->M, one_template, 1, s->train_ids,
                             s->ctx, &max_T)) != RL_OK)
        goto out;
    if ((rc = encode_prompts(tok, s->train_ds.class_names, s->M, templates, s->K, s->eval_ids,
                             s->ctx, &max_T)) != RL_OK)
        goto out;

adapters:
    if (s->trains) {
        /* with a head only the image tower runs: its linears are the targets */
        struct clip_target t = { head ? 1u << CLIP_TOWER_VISION : p->targets.towers,
                                 p->targets.layer_lo, p->targets.layer_hi, p->targets.modules };
        struct adamw_cfg ac = { .lr = p->train.lr, .beta1 = p->train.beta1,
                                .beta2 = p->train.beta2, .eps = p->train.eps,
                                .weight_decay = p->train.weight_decay };

        if ((rc = clip_adapters_init(&s->ca, &s->m, &p->adapter, &t, 1, s->B,
                                     text_rows(s, p))) != RL_OK)
            goto out;
        if ((rc = clip_adapters_set_precision(&s->ca, &s->m,
                                              (enum clip_precision)p->train.precision)) != RL_OK) {
            char why[512];

            snprintf(why, sizeof(why), "%s", rl_error_msg());
            rc = rl_error_set(RL_ERR_ARG, "%s: train.precision = bf16: %s", p->id, why);
            goto out;
        }
        if ((enum clip_precision)p->train.precision == CLIP_PRECISION_BF16)
            gemm_bf16_warn_if_slow();
        for (size_t k = 0; k < s->ca.n_sites; k++) {
            if (s->ca.sites[k].tower == CLIP_TOWER_VISION)
                s->vision_adapted = true;
            else
                s->text_adapted = true;
        }
        if (!head && (rc = adamw_init(&s->opt, &ac, s->ca.n_params)) != RL_OK)
            goto out;
    }
    /* a head run imports after its head exists (run_head_init, below) */
    if (!head && (rc = run_init_adapter(s)) != RL_OK)
        goto out;
    s->total_steps = s->trains || head ? run_plan_total_steps(p, s->n_train) : 0;
    if (s->total_steps == SIZE_MAX) {
        rc = rl_error_set(RL_ERR_ARG, "%s: the number of steps overflows", p->id);
        goto out;
    }
    s->sched = (struct lr_cosine){ .lr_max = p->train.lr, .lr_min = p->train.lr_min,
                                   .warmup = p->train.warmup, .total = s->total_steps };
    if (s->sched.warmup > s->sched.total)
        s->sched.warmup = s->sched.total;
    s->dropout_seed = p->adapter.seed ^ 0xD50F0A7ull;
    rng_init(&s->rng, p->seed);

    /* activations and head buffers: all before the first step */
    if (head) {
        if ((rc = run_head_init(s)) == RL_OK)
            rc = run_init_adapter(s);
        if (rc == RL_OK)
            rc = run_share_init(s);
        goto out;
    }
    if (p->train.recompute && s->vision_adapted)
        clip_vision_run_init_recompute(&s->vr, &s->m, s->B);
    else
        clip_vision_run_init(&s->vr, &s->m, s->B, s->vision_adapted);
    if (p->train.recompute && s->text_adapted)
        clip_text_run_init_recompute(&s->tr, &s->m, text_rows(s, p), max_T);
    else
        clip_text_run_init(&s->tr, &s->m, text_rows(s, p), max_T, s->text_adapted);
    clip_head_init(&s->head, s->B, text_rows(s, p), s->D);
    if (p->train.loss == EXP_LOSS_INBATCH) {
        s->ib_ids = xcalloc(s->B * s->ctx, sizeof(int32_t));
        s->ib_txt = xcalloc(s->B * s->D, sizeof(float));
        s->ib_dtxt = xcalloc(s->B * s->D, sizeof(float));
        s->ib_targets = xcalloc(s->B, sizeof(int32_t));
    }
    s->txt = xcalloc(s->M * s->D, sizeof(float));
    s->dtxt = xcalloc(s->M * s->D, sizeof(float));
    s->eval_txt = xcalloc(s->M * s->K * s->D, sizeof(float));
    s->class_feat = xcalloc(s->M * s->D, sizeof(float));
    s->img = xcalloc(s->B * s->D, sizeof(float));
    s->dimg = xcalloc(s->B * s->D, sizeof(float));
    rc = run_share_init(s);
out:
    free(labels);
    tok_free(tok);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* the run                                                                   */

/* The results file of rank 0 (the only writer): resumed (its checkpoint
 * into s, *start its step, *pr what the last writer left; a completed run:
 * res->already_complete) or created. */
static int open_results(struct run_state *s, const struct run_plan *plan, const char *out_path,
                        const char *ini, const struct runner_options *opt,
                        struct runner_result *res, struct store **st, struct run_prior *pr,
                        size_t *start)
{
    int rc = RL_OK;

    if (opt->resume && access(out_path, F_OK) == 0) {
        struct store_checkpoint_info ci;

        if ((rc = runner_read_prior(out_path, ini, plan->id, pr)) != RL_OK)
            return rc;
        if (pr->completed) {
            res->already_complete = true;
            res->accuracy = pr->fin.accuracy;
            res->loss = pr->fin.loss;
            res->val_accuracy = pr->fin.val_accuracy;
            res->val_loss = pr->fin.val_loss;
            res->images_per_s = pr->fin.images_per_s;
            res->peak_rss_bytes = pr->fin.peak_rss_bytes;
            res->steps = s->total_steps;
            return rc;
        }
        if ((rc = store_resume(st, out_path)) != RL_OK)
            return rc;
        const bool any = run_n_trainable(s) > 0;

        rc = store_read_checkpoint(*st, &ci, run_ckpt_params(s), any ? s->opt.m : NULL,
                                   any ? s->opt.v : NULL, &s->rng);
        if (rc == RL_OK)
            run_ckpt_scatter(s);
        if (rc == RL_ERR_NA) {
            rl_error_clear();
            rc = RL_OK;
            pr->last_eval_step = -1;
            pr->last_wall = 0;
        } else if (rc != RL_OK) {
            return rc;
        } else {
            *start = (size_t)ci.step;
            s->opt.t = (uint64_t)*start;
        }
        if (*start > s->total_steps)
            return rl_error_set(RL_ERR_FORMAT, "%s: checkpoint at step %zu, but the run has %zu "
                                "steps", out_path, *start, s->total_steps);
        res->resumed_from = *start;
        if (opt->verbosity > 0 && *start)
            fprintf(opt->log ? opt->log : stderr, "%s: resuming at step %zu of %zu\n", plan->id,
                    *start, s->total_steps);
        return RL_OK;
    }
    return runner_create_store(st, s, out_path, ini, opt->flush_every);
}

/* every rank's rc agreed: RL_OK when all succeeded; else this rank's own
 * failure, or RL_ERR naming the first rank that failed */
static int ranks_agree(int rc)
{
    const int first = dist_first(rc != RL_OK);

    if (first < 0 || rc != RL_OK)
        return rc;
    return rl_error_set(RL_ERR, "MPI rank %d of %d failed (its message is above)", first,
                        dist_size());
}

/* what rank 0 read from the file (a resumed run's checkpoint, the prior
 * writer's last eval, a completed run's result) onto the other ranks */
static void share_resume(struct run_state *s, struct runner_result *res, struct run_prior *pr,
                         size_t *start)
{
    if (dist_size() == 1)
        return;
    dist_broadcast(res, sizeof(*res));
    dist_broadcast(pr, sizeof(*pr));
    dist_broadcast(start, sizeof(*start));
    dist_broadcast(&s->rng, sizeof(s->rng));
    if (s->trains && *start > 0) {
        dist_broadcast(s->ca.params, s->ca.n_params * sizeof(float));
        dist_broadcast(s->opt.m, s->ca.n_params * sizeof(float));
        dist_broadcast(s->opt.v, s->ca.n_params * sizeof(float));
        s->opt.t = (uint64_t)*start;
    }
}

int runner_run(const struct run_plan *plan, const char *out_path,
               const struct runner_options *opt, struct runner_result *res)
{
    struct runner_options defaults, quiet_opt;
    struct runner_result local;
    struct run_state s;
    struct store *st = NULL;
    struct run_prior pr = { .last_eval_step = -1 };
    struct progress prog;
    FILE *log;
    char *ini = NULL;
    char why[256] = "";
    const double t0 = timer_now();
    double t_train = 0.0, acc = NAN, eval_loss = NAN;
    size_t start = 0, step;
    const bool writer = dist_rank() == 0;  /* the results file's only writer */
    bool agreed = false;                   /* a failure every rank shares    */
    int rc;

    if (!opt) {
        runner_options_init(&defaults);
        opt = &defaults;
    }
    if (!writer) {
        /* one progress line for a data-parallel run: rank 0's */
        quiet_opt = *opt;
        quiet_opt.verbosity = 0;
        opt = &quiet_opt;
    }
    if (!res)
        res = &local;
    memset(res, 0, sizeof(*res));
    res->accuracy = res->loss = res->val_accuracy = res->val_loss = NAN;
    log = opt->log ? opt->log : stderr;
    memset(&s, 0, sizeof(s));
    s.hooks = opt->hooks;

    rc = state_init(&s, plan);
    if ((rc = ranks_agree(rc)) != RL_OK) {
        agreed = true;
        goto out;
    }
    res->n_trainable = run_n_trainable(&s);
    res->n_train_items = s.n_train;
    res->n_val_items = s.n_val;
    {
        struct adapter_tensor t[16];
        size_t nt = runner_shared_count(&s, t, 16);

        for (size_t i = 0; i < nt; i++)
            res->n_frozen_shared += t[i].n;
    }
    ini = run_plan_to_ini(plan);

    /* the file: rank 0 resumes or creates it and is its only writer; the
     * others take what it read (share_resume) */
    if (writer)
        rc = open_results(&s, plan, out_path, ini, opt, res, &st, &pr, &start);
    if ((rc = ranks_agree(rc)) != RL_OK) {
        agreed = true;
        goto out;
    }
    share_resume(&s, res, &pr, &start);
    if (res->already_complete)
        goto out;

    res->activation_bytes = (s.rh ? run_head_activation_floats(&s)
                             : s.lm ? run_lm_activation_floats(&s)
                                    : s.vr.n_floats + s.tr.n_floats) * sizeof(float);
    if (opt->verbosity > 0)
        fprintf(log, "%s: %s, %zu trainable, %zu train items (%zu classes), %zu steps of %zu x %zu"
                ", activations %.1f MiB%s%s\n",
                plan->id, plan->method, res->n_trainable, s.n_train, s.M, s.total_steps, s.B,
                s.accumulate, (double)res->activation_bytes / 1048576.0,
                plan->train.recompute ? " (layers recomputed in the backward)" : "",
                s.ca.w_bf16 ? ", frozen linears in bf16" : "");
    if (s.lm_empty_items && opt->verbosity > 0)
        fprintf(log, "%s: %zu of %zu training items keep no loss tokens after data.cutoff = "
                "%zu\n", plan->id, s.lm_empty_items, s.n_train, plan->lm.cutoff);
    /* the set of the /eval rows: the validation split when there is one */
    const char *split_name = s.has_val ? "the validation split (data.val)" : plan->eval;
    const char *split_word = s.has_val ? "val" : "eval";

    progress_init(&prog, plan->id, s.total_steps, log);
    if (s.total_steps > start && (rc = run_seek(&s, start + 1)) != RL_OK)
        goto out;

    for (step = start + 1; step <= s.total_steps; step++) {
        double loss, gnorm, lr, ta = timer_now();
        struct store_train_row row;

        why[0] = '\0';
        rc = run_step(&s, step, &loss, &gnorm, &lr, why, sizeof(why));
        t_train += timer_now() - ta;
        if (rc != RL_OK && !why[0]) {
            agreed = true;                         /* run_step agreed on it */
            goto out;                              /* loader / model error */
        }
        row = (struct store_train_row){ (int64_t)step, loss, lr, gnorm,
                                        pr.last_wall + timer_now() - t0 };
        int rc2 = writer ? store_append_train(st, &row) : RL_OK;
        if (why[0]) {
            /* non-finite: record where and stop */
            if (opt->verbosity > 0)
                fprintf(log, "%s%s: stopped: %s\n", prog.is_tty ? "\n" : "", plan->id, why);
            if (rc2 == RL_OK && writer)
                rc2 = runner_commit_stopped(st, why, step);
            agreed = true;                     /* every rank saw the same value */
            res->stopped = true;
            res->steps = step - 1;
            rc = rc2 != RL_OK ? rc2 : rl_error_set(RL_ERR, "%s: stopped: %s", plan->id, why);
            goto out;
        }
        if ((rc = rc2) != RL_OK)
            goto out;
        if (plan->train.eval_every && step % plan->train.eval_every == 0) {
            if ((rc = run_eval_split(&s, s.has_val, split_name, &acc, &eval_loss)) != RL_OK)
                goto out;
            if (writer && (rc = store_append_eval(st, (int64_t)step, acc, eval_loss)) != RL_OK)
                goto out;
            pr.last_eval_step = (int64_t)step;
            pr.last_acc = acc;
            pr.last_loss = eval_loss;
            if (opt->verbosity > 0)
                fprintf(log, "%s%s: step %zu %s accuracy %.4f loss %.4f\n",
                        prog.is_tty ? "\r\033[K" : "", plan->id, step, split_word, acc, eval_loss);
        }
        /* merged weights back to their file's bits at every checkpoint (a
         * resumed run starts from them) and every CLIP_REBASE_EVERY steps */
        if (((plan->train.checkpoint_every && step % plan->train.checkpoint_every == 0) ||
             step % CLIP_REBASE_EVERY == 0) && (rc = run_rebase(&s)) != RL_OK)
            goto out;
        if (writer && plan->train.checkpoint_every && step % plan->train.checkpoint_every == 0 &&
            (rc = store_write_checkpoint(st, (int64_t)step, run_ckpt_params(&s), s.opt.m,
                                         s.opt.v, &s.rng)) != RL_OK)
            goto out;
        if (opt->verbosity > 0)
            progress_update(&prog, step, loss, lr,
                            t_train > 0 ? (double)s.images_seen / t_train : -1.0);
        if (s.hooks && s.hooks->on_step)
            s.hooks->on_step(s.hooks->ctx, step);
        /* the ranks stop together: at the first step after any of them
         * was interrupted */
        if (dist_first(interrupt_pending() != 0) >= 0) {
            agreed = true;
            /* the step's records are whole; the file resumes from its
             * last checkpoint (results/store.h), bit for bit */
            if (opt->verbosity > 0 && prog.is_tty)
                fputc('\n', log);
            res->steps = step;
            rc = rl_error_set(RL_ERR_INTERRUPTED, "%s: interrupted at step %zu (%s); resume with %s",
                              plan->id, step, interrupt_pending() == SIGTERM ? "SIGTERM" : "SIGINT",
                              opt->resume_command ? opt->resume_command : "--resume");
            goto out;
        }
    }
    if (opt->verbosity > 0 && s.total_steps > start)
        progress_finish(&prog);

    /* the final evaluation of the /eval rows' set (reused when the last step
     * had one), then, with a validation split, the test set: only now */
    if (pr.last_eval_step == (int64_t)s.total_steps) {
        acc = pr.last_acc;
        eval_loss = pr.last_loss;
    } else {
        if ((rc = run_eval_split(&s, s.has_val, split_name, &acc, &eval_loss)) != RL_OK)
            goto out;
        if (writer &&
            (rc = store_append_eval(st, (int64_t)s.total_steps, acc, eval_loss)) != RL_OK)
            goto out;
        if (opt->verbosity > 0)
            fprintf(log, "%s: step %zu %s accuracy %.4f loss %.4f\n", plan->id,
                    s.total_steps, split_word, acc, eval_loss);
    }
    if (s.has_val) {
        res->val_accuracy = acc;
        res->val_loss = eval_loss;
        if ((rc = run_eval_split(&s, false, plan->eval, &acc, &eval_loss)) != RL_OK)
            goto out;
        if (opt->verbosity > 0)
            fprintf(log, "%s: step %zu test accuracy %.4f loss %.4f\n", plan->id,
                    s.total_steps, acc, eval_loss);
    }
    if ((rc = run_rebase(&s)) != RL_OK)        /* the model as it was loaded */
        goto out;
    res->accuracy = acc;
    res->loss = eval_loss;
    res->steps = s.total_steps;
    res->images_per_s = t_train > 0 ? (double)s.images_seen / t_train : 0.0;
    res->peak_rss_bytes = runner_peak_rss_bytes();
    if (writer)
        rc = runner_commit_final(st, &s, &(struct store_final){ .accuracy = acc, .loss = eval_loss,
                                                            .peak_rss_bytes = res->peak_rss_bytes,
                                                            .images_per_s = res->images_per_s,
                                                            .val_accuracy = res->val_accuracy,
                                                            .val_loss = res->val_loss,
                                                            .has_val = s.has_val });

out:
    {
        /* a failing close (the last flush of a full disk) is the run's
         * failure, unless it already failed: then its message stays */
        char first[1024];
        snprintf(first, sizeof first, "%s", rc != RL_OK ? rl_error_msg() : "");
        int rc_close = store_close(st);
        if (rc_close != RL_OK && (rc == RL_OK || rc == RL_ERR_INTERRUPTED))
            rc = rc_close;
        else if (rc != RL_OK)
            rl_error_set(rc, "%s", first);
    }
    res->seconds = timer_now() - t0;
    free(ini);
    state_free(&s);
    if (rc != RL_OK && !agreed && dist_size() > 1) {
        /* a failure only this rank saw (rank 0's file, a loader): the
         * others would wait for it at the next step; the file is closed
         * and resumes from its last checkpoint */
        fprintf(stderr, "randlora: MPI rank %d of %d: %s\n", dist_rank(), dist_size(),
                rl_error_msg());
        dist_abort(1);
    }
    return rc;
}
