/*
 * train_step.c: the optimizer step and the evaluation of a fine-tuning run
 * (prompt classification: class prompts through the text tower, images
 * through the vision tower, cross-entropy on exp(logit_scale) * cosine).
 * Everything here works in buffers runner.c sized before the first step;
 * nothing is allocated per step.
 */
#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/dist.h"
#include "core/status.h"
#include "experiments/runner_impl.h"

int run_eval_split(struct run_state *s, bool val, const char *what, double *accuracy,
                   double *loss)
{
    if (s->lm)
        return run_lm_eval(s, val, accuracy, loss);
    return run_eval(s, val ? s->val_L : s->eval_L, what, accuracy, loss);
}

int run_seek(struct run_state *s, size_t step)
{
    if (s->lm)
        return RL_OK;                           /* its order is a function of the step */
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
void run_seed_dropout(struct run_state *s, uint64_t mb)
{
    struct rng root, r;

    if (!(s->plan->adapter.dropout > 0.0f))
        return;
    rng_init(&root, s->dropout_seed);
    rng_split(&r, &root, mb);
    for (size_t k = 0; k < s->ca.n_sites; k++)
        rng_split(&s->ca.adapters[k].rng, &r, (uint64_t)k);
}

/* train.loss = inbatch: one prompt per image, new every micro-batch */
static bool inbatch(const struct run_state *s)
{
    return s->plan->train.loss == EXP_LOSS_INBATCH;
}

/* the text tower's output is the same for every micro-batch of a step
 * (the same prompts, the same parameters) unless dropout draws new masks;
 * then it runs once a step: one forward before the first micro-batch, the
 * micro-batches' gradients w.r.t. its features summed, one backward after
 * the last (the backward is linear in the gradient it is given) */
static bool text_once_per_step(const struct run_state *s)
{
    return s->text_adapted && !(s->plan->adapter.dropout > 0.0f) && !inbatch(s);
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
    if (!s->trains || s->lm)                    /* a decoder's adapters stay factored */
        return RL_OK;
    clip_adapters_end_step(&s->ca, &s->m);      /* steps leave sites merged */
    if (!s->weights_path)
        return RL_OK;
    return clip_adapters_rebase(&s->ca, &s->m, s->weights_path);
}

/* the micro-batches [*lo, *hi) of each step this rank computes: contiguous
 * shares, rank r's from accumulate * r / K (docs/cluster.md); all of them
 * in one process */
static void my_share(const struct run_state *s, size_t *lo, size_t *hi)
{
    const size_t K = (size_t)dist_size(), r = (size_t)dist_rank();

    *lo = s->accumulate * r / K;
    *hi = s->accumulate * (r + 1) / K;
}

/* what one rank's share of a step came to (agree_step) */
struct share_outcome {
    int32_t rc;                  /* an error other than a non-finite loss        */
    uint64_t bad_micro;          /* first non-finite micro-batch; UINT64_MAX: none */
    double bad_loss;
};

int run_share_init(struct run_state *s)
{
    const size_t K = (size_t)dist_size();

    if (s->trains && s->accumulate < K)
        return rl_error_set(RL_ERR_ARG, "%s: train.accumulate = %zu, but %zu MPI ranks share "
                            "each step's micro-batches: make it at least %zu (docs/cluster.md)",
                            s->plan->id, s->accumulate, K, K);
    s->micro_loss = xcalloc(s->accumulate, sizeof(double));
    s->micro_loss_all = xcalloc(K * s->accumulate, sizeof(double));
    s->outcomes = xcalloc(K, sizeof(struct share_outcome));
    return RL_OK;
}

/* the micro-batches of one step this rank computes: gradients accumulated
 * (not yet averaged) into s->ca.grads, with the merged sites merged for the
 * whole step; each one's rows-weighted loss into s->micro_loss[micro] (0
 * for the other ranks' micro-batches). Every rank reads every micro-batch
 * (the loaders stay in step) and counts its rows into *rows_out. A
 * non-finite loss stops this rank's share: *bad_micro, *bad_loss. */
static int accumulate(struct run_state *s, size_t step, size_t lo, size_t hi, size_t *rows_out,
                      size_t *bad_micro, double *bad_loss)
{
    const size_t D = s->D;
    const bool text_once = text_once_per_step(s);
    size_t rows = 0;
    int rc;

    if (text_once) {
        s->txt_valid = false;                   /* the parameters changed */
        memset(s->dtxt, 0, s->M * D * sizeof(float));
    }
    memset(s->micro_loss, 0, s->accumulate * sizeof(double));
    for (size_t micro = 0; micro < s->accumulate; micro++) {
        struct loader_batch b;
        double l;
        float dloss;

        rc = loader_next(s->train_L, &b);
        if (rc != RL_OK)
            return rc;
        RL_ASSERT(b.n > 0 && (size_t)b.n <= s->B);
        rows += (size_t)b.n;
        *rows_out = rows;
        s->images_seen += (size_t)b.n;
        if (micro < lo || micro >= hi)
            continue;                           /* another rank's */
        run_seed_dropout(s, (uint64_t)(step - 1) * s->accumulate + micro);
        if (inbatch(s)) {
            rc = inbatch_forward(s, b.x, b.labels, (size_t)b.n, &l);
            if (rc != RL_OK)
                return rc;
        } else {
            if ((rc = train_text_forward(s)) != RL_OK)
                return rc;
            rc = clip_vision_forward(&s->vr, &s->m, &s->ca, b.x, (size_t)b.n, s->img);
            if (rc != RL_OK)
                return rc;
            clip_head_logits(&s->head, s->img, s->txt, (size_t)b.n, s->M, s->scale);
            l = clip_head_crossentropy(&s->head, b.labels);
        }
        if (s->hooks && s->hooks->on_loss)
            s->hooks->on_loss(s->hooks->ctx, step, micro, &l);
        if (!isfinite(l)) {
            *bad_micro = micro;
            *bad_loss = l;
            return RL_OK;
        }
        s->micro_loss[micro] = l * (double)b.n;

        /* accumulate = 1: the mean loss's gradient as it is; otherwise the
         * rows-weighted sum, divided by the step's rows below */
        dloss = s->accumulate == 1 ? 1.0f : (float)b.n;
        if (inbatch(s)) {
            inbatch_backward(s, (size_t)b.n, dloss);
            continue;
        }
        memset(s->dimg, 0, (size_t)b.n * D * sizeof(float));
        if (s->text_adapted && !text_once)
            memset(s->dtxt, 0, s->M * D * sizeof(float));
        clip_head_backward(&s->head, s->dimg, s->text_adapted ? s->dtxt : NULL, NULL, dloss);
        if (s->vision_adapted)
            clip_vision_backward(&s->vr, &s->m, &s->ca, NULL, s->dimg, NULL);
        if (s->text_adapted && !text_once)
            clip_text_backward(&s->tr, &s->m, &s->ca, NULL, s->dtxt);
    }
    if (text_once)
        clip_text_backward(&s->tr, &s->m, &s->ca, NULL, s->dtxt);
    return RL_OK;
}

/* The ranks' outcomes agreed, the same on every rank: RL_OK when every
 * share was computed, with *loss_sum the rows-weighted losses summed in
 * micro-batch order (as one process sums them); otherwise the first
 * non-finite loss in micro-batch order (why filled as one process fills
 * it), or RL_ERR naming the rank that failed (that rank keeps its own
 * message). */
static int agree_step(struct run_state *s, size_t step, int rc, size_t bad_micro,
                      double bad_loss, double *loss_sum, double *loss, char *why,
                      size_t why_size)
{
    const size_t K = (size_t)dist_size(), A = s->accumulate;
    struct share_outcome mine, *all = s->outcomes;
    size_t first = K;

    memset(&mine, 0, sizeof(mine));             /* no stray bytes on the wire */
    mine.rc = rc;
    mine.bad_micro = bad_micro == SIZE_MAX ? UINT64_MAX : bad_micro;
    mine.bad_loss = bad_loss;
    dist_allgather(&mine, all, sizeof(mine));
    for (size_t r = 0; r < K; r++)
        if (all[r].rc != RL_OK) {
            if (r == (size_t)dist_rank())
                return rc;
            return rl_error_set(RL_ERR, "step %zu: MPI rank %zu of %zu failed (its message is "
                                "above)", step, r, K);
        }
    for (size_t r = 0; r < K; r++)
        if (all[r].bad_micro != UINT64_MAX && first == K)
            first = r;                          /* shares are in micro-batch order */
    if (first < K) {
        snprintf(why, why_size, "non-finite loss (%g) at step %zu, micro-batch %zu",
                 all[first].bad_loss, step, (size_t)all[first].bad_micro);
        *loss = all[first].bad_loss;
        return rl_error_set(RL_ERR, "%s", why);
    }
    dist_allgather(s->micro_loss, s->micro_loss_all, A * sizeof(double));
    *loss_sum = 0.0;
    for (size_t micro = 0; micro < A; micro++) {
        double v = 0.0;                         /* one rank's value, zeros elsewhere */

        for (size_t r = 0; r < K; r++)
            v += s->micro_loss_all[r * A + micro];
        *loss_sum += v;
    }
    return RL_OK;
}

int run_step(struct run_state *s, size_t step, double *loss, double *gnorm, double *lr,
             char *why, size_t why_size)
{
    double loss_sum = 0.0, bad_loss = 0.0;
    size_t rows = 0, lo, hi, bad_micro = SIZE_MAX;
    int rc;

    if (s->rh)                                  /* model.head = linear */
        return run_head_step(s, step, loss, gnorm, lr, why, why_size);
    if (s->lm)                                  /* a decoder */
        return run_lm_step(s, step, loss, gnorm, lr, why, why_size);
    my_share(s, &lo, &hi);
    clip_adapters_zero_grad(&s->ca);
    /* the merged sites brought to this step's parameters before the first
     * micro-batch (merged, or re-merged from the last step's); their summed
     * weight gradients projected once after the last. Where re-merging is
     * cheaper (RandLoRA) they stay merged across the optimizer step, and
     * run_rebase and run_eval unmerge (models/clip.h). */
    begin_paths(s, s->train_ids, s->M, inbatch(s) ? s->B : s->M, hi - lo);
    rc = accumulate(s, step, lo, hi, &rows, &bad_micro, &bad_loss);
    clip_adapters_end_backward(&s->ca, &s->m);
    rc = agree_step(s, step, rc, bad_micro, bad_loss, &loss_sum, loss, why, why_size);
    if (rc != RL_OK) {
        *gnorm = NAN;
        *lr = NAN;
        clip_adapters_end_step(&s->ca, &s->m);
        return rc;
    }
    /* the ranks' gradients summed in rank order (core/dist.h); nothing in
     * one process */
    dist_sum_floats(s->ca.grads, s->ca.n_params);
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

/* one evaluation batch's counts: what the ranks exchange (run_eval) */
struct eval_counts {
    double loss_rows;            /* mean cross-entropy x rows                    */
    int64_t correct, rows;
};

/* the batches of loader L this rank evaluates (batch i goes to rank i mod
 * K; every rank reads them all), each one's counts into mine[i] */
static int eval_batches(struct run_state *s, struct loader *L, struct clip_adapters *ca,
                        struct eval_counts *mine, size_t nb)
{
    const size_t K = (size_t)dist_size(), r = (size_t)dist_rank();
    int rc;

    if ((rc = loader_epoch(L, 0)) != RL_OK)
        return rc;
    for (size_t i = 0;; i++) {
        struct loader_batch b;
        int64_t correct = 0;

        if ((rc = loader_next(L, &b)) != RL_OK || b.n == 0)
            return rc;
        RL_ASSERT(i < nb);
        if (i % K != r)
            continue;                           /* another rank's */
        rc = clip_vision_forward(&s->vr, &s->m, ca, b.x, (size_t)b.n, s->img);
        if (rc != RL_OK)
            return rc;
        clip_head_logits(&s->head, s->img, s->class_feat, (size_t)b.n, s->M, s->scale);
        mine[i].loss_rows = (double)clip_head_crossentropy(&s->head, b.labels) * (double)b.n;
        for (int j = 0; j < b.n; j++) {
            const float *row = s->head.logits + (size_t)j * s->M;
            size_t best = 0;

            for (size_t c = 1; c < s->M; c++)
                if (row[c] > row[best])
                    best = c;
            correct += best == (size_t)b.labels[j];
        }
        mine[i].correct = correct;
        mine[i].rows = b.n;
    }
}

int run_eval(struct run_state *s, struct loader *L, const char *what, double *accuracy,
             double *loss)
{
    if (s->rh)                                  /* model.head = linear */
        return run_head_eval(s, L, what, accuracy, loss);
    const size_t D = s->D, MK = s->M * s->K, K = (size_t)dist_size();
    const size_t nb = loader_batches_per_epoch(L);
    struct clip_adapters *ca = s->trains ? &s->ca : NULL;
    /* per evaluation, not per step: allocated here */
    struct eval_counts *mine = xcalloc(nb ? nb : 1, sizeof(*mine));
    struct eval_counts *all = K > 1 ? xcalloc(K * (nb ? nb : 1), sizeof(*all)) : mine;
    size_t correct = 0, rows = 0;
    double loss_sum = 0.0;
    int rc = RL_OK, first;

    if (s->trains) {
        clip_adapters_set_training(&s->ca, false);
        /* no dropout now: the merged path is open to every layer */
        begin_paths(s, s->eval_ids, MK, MK < s->M ? MK : s->M, 0);
    }
    /* the class features: on every rank (all of them score against them) */
    if (s->text_adapted || !s->class_feat_valid) {
        for (size_t c0 = 0; c0 < MK && rc == RL_OK; c0 += s->M) {
            size_t n = MK - c0 < s->M ? MK - c0 : s->M;

            rc = clip_text_forward(&s->tr, &s->m, ca, s->eval_ids + c0 * s->ctx, n, s->ctx,
                                   s->eval_txt + c0 * D);
        }
        if (rc == RL_OK) {
            clip_class_features(s->class_feat, s->eval_txt, s->M, s->K, D);
            s->class_feat_valid = true;
        }
    }
    if (rc == RL_OK)
        rc = eval_batches(s, L, ca, mine, nb);
    if (s->trains) {
        clip_adapters_end_step(&s->ca, &s->m);
        clip_adapters_set_training(&s->ca, true);
    }
    /* the ranks agree on failure, then sum the batches' counts in batch
     * order: the same sums, bit for bit, as one process */
    first = dist_first(rc != RL_OK);
    if (first >= 0 && rc == RL_OK)
        rc = rl_error_set(RL_ERR, "%s: MPI rank %d of %zu failed to evaluate (its message is "
                          "above)", what, first, K);
    if (rc == RL_OK) {
        if (K > 1)
            dist_allgather(mine, all, nb * sizeof(*mine));
        for (size_t i = 0; i < nb; i++) {
            const struct eval_counts *c = &all[(i % K) * nb + i];

            loss_sum += c->loss_rows;
            correct += (size_t)c->correct;
            rows += (size_t)c->rows;
        }
    }
    if (all != mine)
        free(all);
    free(mine);
    if (rc != RL_OK)
        return rc;
    if (rows == 0)
        return rl_error_set(RL_ERR_ARG, "%s: the evaluation set is empty", what);
    *accuracy = (double)correct / (double)rows;
    *loss = loss_sum / (double)rows;
    return RL_OK;
}
