/*
 * train_step.c: the optimizer step and the evaluation of a fine-tuning run
 * (prompt classification: class prompts through the text tower, images
 * through the vision tower, cross-entropy on exp(logit_scale) * cosine).
 * Everything here works in buffers runner.c sized before the first step;
 * nothing is allocated per step.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/status.h"
#include "experiments/runner_impl.h"

int run_seek(struct run_state *s, size_t step)
{
    const size_t bpe = loader_batches_per_epoch(s->train_L);
    const size_t mb = (step - 1) * s->accumulate;
    struct loader_batch b;
    int rc;

    RL_ASSERT(step >= 1 && bpe > 0);
    rc = loader_epoch(s->train_L, (long)(mb / bpe));
    for (size_t i = 0; rc == RL_OK && i < mb % bpe; i++)
        rc = loader_next(s->train_L, &b);
    return rc;
}

/* dropout masks of micro-batch `mb` of the run: each layer's stream is
 * re-derived, so a resumed run draws what the uninterrupted one drew */
static void seed_dropout(struct run_state *s, uint64_t mb)
{
    struct rng root, r;

    if (!(s->plan->adapter.dropout > 0.0f))
        return;
    rng_init(&root, s->dropout_seed);
    rng_split(&r, &root, mb);
    for (size_t k = 0; k < s->ca.n_sites; k++)
        rng_split(&s->ca.adapters[k].rng, &r, (uint64_t)k);
}

/* the text tower's output is the same for every micro-batch of a step
 * (the same prompts, the same parameters) unless dropout draws new masks;
 * then it runs once a step: one forward before the first micro-batch, the
 * micro-batches' gradients w.r.t. its features summed, one backward after
 * the last (the backward is linear in the gradient it is given) */
static bool text_once_per_step(const struct run_state *s)
{
    return s->text_adapted && !(s->plan->adapter.dropout > 0.0f);
}

/* the class prompts' text features into s->txt: once for the run when the
 * text tower is frozen, once a step when it is adapted without dropout
 * (text_once_per_step: accumulate invalidates them at the step's start),
 * every micro-batch with dropout (its activations feed each backward) */
static int train_text_forward(struct run_state *s)
{
    int rc;

    if (s->txt_valid && (!s->text_adapted || text_once_per_step(s)))
        return RL_OK;
    rc = clip_text_forward(&s->tr, &s->m, &s->ca, s->train_ids, s->M, s->ctx, s->txt);
    if (rc == RL_OK)
        s->txt_valid = true;
    return rc;
}

/* tokens one text forward runs: the cut at the longest end-of-text among
 * the n prompts of ids */
static size_t text_tokens(const struct run_state *s, const int32_t *ids, size_t n)
{
    size_t Tc = 0;

    for (size_t b = 0; b < n; b++) {
        size_t e = clip_text_eot(&s->m.cfg.text, ids + b * s->ctx, s->ctx);

        if (e != SIZE_MAX && e + 1 > Tc)
            Tc = e + 1;
    }
    return s->tr.cut ? Tc : s->ctx;
}

/* the per-layer paths for this step's tower sizes, merged in place
 * (models/clip.h), for `micro` backward micro-batches (0: evaluation);
 * clip_adapters_end_step undoes it */
static void begin_paths(struct run_state *s, const int32_t *ids, size_t n_text, size_t n_rows,
                        size_t micro)
{
    const struct clip_step_size sz = {
        .images = s->vision_adapted ? s->B : 0,
        .texts = s->text_adapted ? n_rows : 0,
        .text_tokens = s->text_adapted ? text_tokens(s, ids, n_text) : 0,
        .vision_micro = micro,
        .text_micro = micro && text_once_per_step(s) ? 1 : micro,
    };

    clip_adapters_begin_step(&s->ca, &s->m, &sz);
}

int run_rebase(struct run_state *s)
{
    if (!s->trains)
        return RL_OK;
    clip_adapters_end_step(&s->ca, &s->m);      /* steps leave sites merged */
    if (!s->weights_path)
        return RL_OK;
    return clip_adapters_rebase(&s->ca, &s->m, s->weights_path);
}

/* the micro-batches of one step: gradients accumulated (not yet averaged)
 * into s->ca.grads, with the merged sites merged for the whole step */
static int accumulate(struct run_state *s, size_t step, double *loss_sum, size_t *rows_out,
                      double *loss, double *gnorm, double *lr, char *why, size_t why_size)
{
    const size_t D = s->D;
    const bool text_once = text_once_per_step(s);
    size_t rows = 0;
    int rc;

    if (text_once) {
        s->txt_valid = false;                   /* the parameters changed */
        memset(s->dtxt, 0, s->M * D * sizeof(float));
    }
    for (size_t micro = 0; micro < s->accumulate; micro++) {
        struct loader_batch b;
        double l;
        float dloss;

        rc = loader_next(s->train_L, &b);
        if (rc != RL_OK)
            return rc;
        RL_ASSERT(b.n > 0 && (size_t)b.n <= s->B);
        seed_dropout(s, (uint64_t)(step - 1) * s->accumulate + micro);
        if ((rc = train_text_forward(s)) != RL_OK)
            return rc;
        rc = clip_vision_forward(&s->vr, &s->m, &s->ca, b.x, (size_t)b.n, s->img);
        if (rc != RL_OK)
            return rc;
        clip_head_logits(&s->head, s->img, s->txt, (size_t)b.n, s->M, s->scale);
        l = clip_head_crossentropy(&s->head, b.labels);
        if (s->hooks && s->hooks->on_loss)
            s->hooks->on_loss(s->hooks->ctx, step, micro, &l);
        if (!isfinite(l)) {
            snprintf(why, why_size, "non-finite loss (%g) at step %zu, micro-batch %zu", l, step,
                     micro);
            *loss = l;
            *gnorm = NAN;
            *lr = NAN;
            return rl_error_set(RL_ERR, "%s", why);
        }
        *loss_sum += l * (double)b.n;
        rows += (size_t)b.n;
        *rows_out = rows;

        /* accumulate = 1: the mean loss's gradient as it is; otherwise the
         * rows-weighted sum, divided by the step's rows below */
        dloss = s->accumulate == 1 ? 1.0f : (float)b.n;
        memset(s->dimg, 0, (size_t)b.n * D * sizeof(float));
        if (s->text_adapted && !text_once)
            memset(s->dtxt, 0, s->M * D * sizeof(float));
        clip_head_backward(&s->head, s->dimg, s->text_adapted ? s->dtxt : NULL, NULL, dloss);
        if (s->vision_adapted)
            clip_vision_backward(&s->vr, &s->m, &s->ca, NULL, s->dimg, NULL);
        if (s->text_adapted && !text_once)
            clip_text_backward(&s->tr, &s->m, &s->ca, NULL, s->dtxt);
        s->images_seen += (size_t)b.n;
    }
    if (text_once)
        clip_text_backward(&s->tr, &s->m, &s->ca, NULL, s->dtxt);
    return RL_OK;
}

int run_step(struct run_state *s, size_t step, double *loss, double *gnorm, double *lr,
             char *why, size_t why_size)
{
    double loss_sum = 0.0;
    size_t rows = 0;
    int rc;

    clip_adapters_zero_grad(&s->ca);
    /* the merged sites brought to this step's parameters before the first
     * micro-batch (merged, or re-merged from the last step's); their summed
     * weight gradients projected once after the last. Where re-merging is
     * cheaper (RandLoRA) they stay merged across the optimizer step, and
     * run_rebase and run_eval unmerge (models/clip.h). */
    begin_paths(s, s->train_ids, s->M, s->M, s->accumulate);
    rc = accumulate(s, step, &loss_sum, &rows, loss, gnorm, lr, why, why_size);
    clip_adapters_end_backward(&s->ca, &s->m);
    if (rc != RL_OK) {
        clip_adapters_end_step(&s->ca, &s->m);
        return rc;
    }
    if (s->accumulate > 1) {
        const float inv = 1.0f / (float)rows;

        for (size_t i = 0; i < s->ca.n_params; i++)
            s->ca.grads[i] *= inv;
    }
    *loss = loss_sum / (double)rows;
    if (s->hooks && s->hooks->on_grads)
        s->hooks->on_grads(s->hooks->ctx, step, s->ca.grads, s->ca.n_params);
    *gnorm = s->plan->train.clip > 0 ? clip_grad_norm(s->ca.grads, s->ca.n_params, s->plan->train.clip)
                                     : grad_norm(s->ca.grads, s->ca.n_params);
    *lr = lr_cosine_at(&s->sched, step - 1);
    if (!isfinite(*gnorm)) {
        snprintf(why, why_size, "non-finite gradient norm (%g) at step %zu", *gnorm, step);
        return rl_error_set(RL_ERR, "%s", why);
    }
    s->opt.cfg.lr = *lr;
    adamw_step(&s->opt, s->ca.params, s->ca.grads);
    return RL_OK;
}

int run_eval(struct run_state *s, struct loader *L, const char *what, double *accuracy,
             double *loss)
{
    const size_t D = s->D, MK = s->M * s->K;
    struct clip_adapters *ca = s->trains ? &s->ca : NULL;
    size_t correct = 0, rows = 0;
    double loss_sum = 0.0;
    int rc = RL_OK;

    if (s->trains) {
        clip_adapters_set_training(&s->ca, false);
        /* no dropout now: the merged path is open to every layer */
        begin_paths(s, s->eval_ids, MK, MK < s->M ? MK : s->M, 0);
    }
    if (s->text_adapted || !s->class_feat_valid) {
        for (size_t c0 = 0; c0 < MK && rc == RL_OK; c0 += s->M) {
            size_t n = MK - c0 < s->M ? MK - c0 : s->M;

            rc = clip_text_forward(&s->tr, &s->m, ca, s->eval_ids + c0 * s->ctx, n, s->ctx,
                                   s->eval_txt + c0 * D);
        }
        if (rc != RL_OK)
            goto out;
        clip_class_features(s->class_feat, s->eval_txt, s->M, s->K, D);
        s->class_feat_valid = true;
    }
    if ((rc = loader_epoch(L, 0)) != RL_OK)
        goto out;
    for (;;) {
        struct loader_batch b;

        if ((rc = loader_next(L, &b)) != RL_OK || b.n == 0)
            break;
        rc = clip_vision_forward(&s->vr, &s->m, ca, b.x, (size_t)b.n, s->img);
        if (rc != RL_OK)
            break;
        clip_head_logits(&s->head, s->img, s->class_feat, (size_t)b.n, s->M, s->scale);
        loss_sum += (double)clip_head_crossentropy(&s->head, b.labels) * (double)b.n;
        for (int i = 0; i < b.n; i++) {
            const float *row = s->head.logits + (size_t)i * s->M;
            size_t best = 0;

            for (size_t c = 1; c < s->M; c++)
                if (row[c] > row[best])
                    best = c;
            correct += best == (size_t)b.labels[i];
        }
        rows += (size_t)b.n;
    }
out:
    if (s->trains) {
        clip_adapters_end_step(&s->ca, &s->m);
        clip_adapters_set_training(&s->ca, true);
    }
    if (rc != RL_OK)
        return rc;
    if (rows == 0)
        return rl_error_set(RL_ERR_ARG, "%s: the evaluation set is empty", what);
    *accuracy = (double)correct / (double)rows;
    *loss = loss_sum / (double)rows;
    return RL_OK;
}
