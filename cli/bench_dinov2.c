/*
 * bench_dinov2.c: `randlora bench --model dinov2-vit-b-14` (or any DINOv2
 * preset): one training step of a DINOv2 backbone with a linear head, the
 * step experiments/train_head.c takes (run_head_step) composed from the
 * public functions, on random weights and random pixels:
 *
 *   per micro-batch: dinov2_forward (adapters on q, k, v, out, fc1, fc2 of
 *   every layer) -> cls_mean features (2C) -> linear head (--classes
 *   classes) -> cross-entropy -> the head's backward -> dinov2_backward
 *   (adapters' gradients; no input gradient); then one gradient norm over
 *   the adapters and the head clipped to 1.0, and AdamW on both (one lr
 *   here: the bench times the step, not a schedule). As run_head_step,
 *   clip_adapters_begin_step chooses each linear's path (factored or
 *   merged) and clip_adapters_end_backward closes it.
 *
 * "dinov2-vit-b-14" is bench-only: dinov2-base's shapes (patch 14, width
 * 768, 12 layers, 12 heads, MLP 3072, LayerScale) at 224 px (257 tokens),
 * the size Figure 1(a)'s fine-tuning uses; the other DINOv2 presets run at
 * their own image_size. Printed like the CLIP step (cmd_bench.c): median
 * step time, images/s, model FLOPs (analytic, below), GEMM share
 * (measured), the calibration GEMM, peak RSS; classes are the head's, there
 * are no text tokens.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "bench/gemm_count.h"
#include "core/gemm_bf16.h"
#include "cli/bench_impl.h"
#include "core/alloc.h"
#include "core/rng.h"
#include "core/status.h"
#include "core/threads.h"
#include "core/timer.h"
#include "methods/adapter.h"
#include "models/dinov2.h"
#include "models/head.h"
#include "models/optim.h"

#define BENCH_B14 "dinov2-vit-b-14"

bool bench_is_dinov2(const char *model)
{
    return !strcmp(model, BENCH_B14) || dinov2_is_preset(model);
}

static int bench_config(struct clip_config *c, const char *model)
{
    int rc;

    if (strcmp(model, BENCH_B14))
        return dinov2_config_preset(c, model);
    if ((rc = dinov2_config_preset(c, "dinov2-base")))
        return rc;
    c->vision.image_size = 224;
    return RL_OK;
}

/* Analytic FLOPs of a step's backbone and head (2 per multiply-add): the
 * patch embedding (forward only: no input gradient), the six linears on
 * every token forward and input gradient (dX; their frozen weights take no
 * gradient), attention's two batched products forward and their three
 * backward products (d scores, d v, d q and d k: 4), and the head forward,
 * dW and dX. The adapters' own work is left out (it depends on the path
 * each layer takes). Per micro-batch of B images, times A. */
static double step_flops(const struct clip_config *c, size_t B, size_t A, size_t K, size_t FD,
                         bool trains)
{
    const double C = (double)c->vision.hidden, F = (double)c->vision.intermediate;
    const double g = (double)(c->vision.image_size / c->vision.patch_size), P = g * g;
    const double T = 1.0 + (double)c->vision.register_tokens + P, L = (double)c->vision.layers;
    const double pk = (double)(c->vision.num_channels * c->vision.patch_size * c->vision.patch_size);
    const double lin = 2.0 * T * (4.0 * C * C + 2.0 * C * F);
    const double att = 2.0 * 2.0 * T * T * C;
    double f = 2.0 * P * pk * C + L * (lin + att) + 2.0 * (double)K * (double)FD;

    if (trains)
        f += L * (lin + 2.0 * att) + 2.0 * 2.0 * (double)K * (double)FD;
    return f * (double)B * (double)A;
}

/* one norm over a and b, both scaled to at most max_norm; the norm */
static double clip_both(float *a, size_t na, float *b, size_t nb, double max_norm)
{
    double ss = 0.0, norm;

    for (size_t i = 0; i < na; i++)
        ss += (double)a[i] * a[i];
    for (size_t i = 0; i < nb; i++)
        ss += (double)b[i] * b[i];
    norm = sqrt(ss);
    if (isfinite(norm) && norm > max_norm) {
        const float s = (float)(max_norm / (norm + 1e-6));

        for (size_t i = 0; i < na; i++)
            a[i] *= s;
        for (size_t i = 0; i < nb; i++)
            b[i] *= s;
    }
    return norm;
}

int bench_dinov2_run(const struct bench_opts *o, struct bench_result *res)
{
    const size_t B = o->batch, K = o->classes, A = o->accumulate, S = o->steps;
    const bool trains = strcmp(o->method, "none") != 0;
    struct clip_config cfg;
    struct clip_model m = { 0 };
    struct clip_adapters ca = { 0 };
    struct dinov2_run dr = { 0 };
    struct linear_head h = { 0 };
    struct adamw opt = { 0 }, ho = { 0 };
    struct adapter_cfg acfg;
    struct clip_target tg[4];
    size_t nt, FD, img_floats, merged = 0;
    float *pixels = NULL, *feats = NULL, *dfeats = NULL;
    int32_t *labels = NULL;
    double *times = NULL, gemm_s = 0.0, total_s = 0.0, loss = 0.0, bf16_s = 0.0, bf16_f = 0.0;
    struct rng r;
    struct rusage ru;
    int rc;

    memset(res, 0, sizeof(*res));
    threads_init(o->threads);
    if ((rc = bench_config(&cfg, o->model)) || (rc = dinov2_model_init(&m, &cfg)))
        return rc;
    dinov2_model_init_random(&m, o->seed);
    FD = dinov2_feature_dim(&m, DINOV2_POOL_CLS_MEAN);
    img_floats = cfg.vision.num_channels * cfg.vision.image_size * cfg.vision.image_size;
    rng_init(&r, o->seed + 1);
    pixels = xmalloc_array(A * B * img_floats, sizeof(float));
    rng_fill_normal(&r, pixels, A * B * img_floats, 0.0f, 1.0f);
    labels = xmalloc_array(A * B, sizeof(*labels));
    for (size_t i = 0; i < A * B; i++)
        labels[i] = (int32_t)rng_below(&r, (uint64_t)K);

    linear_head_init(&h, FD, K, B, o->seed + 2);
    if ((rc = adamw_init(&ho, &ADAMW_CFG_DEFAULT, h.n_params)))
        goto out;
    if (trains) {
        adapter_cfg_defaults(&acfg, o->method, o->rank);
        if ((rc = clip_targets_parse("vision:q_proj,k_proj,v_proj,out_proj,fc1,fc2", tg, 4, &nt)) ||
            (rc = clip_adapters_init(&ca, &m, &acfg, tg, nt, B, 1)) ||
            (rc = adamw_init(&opt, &ADAMW_CFG_DEFAULT, ca.n_params)))
            goto out;
        if ((rc = clip_adapters_set_precision(&ca, &m, o->precision)) != RL_OK)
            goto out;
        if (o->precision == CLIP_PRECISION_BF16)
            gemm_bf16_warn_if_slow();
    }
    dinov2_run_init(&dr, &m, B, trains);
    feats = xmalloc_array(B * FD, sizeof(float));
    dfeats = xmalloc_array(B * FD, sizeof(float));
    times = xmalloc_array(S, sizeof(double));

    /* step 0 warms up (page faults, thread pools) on one micro-batch */
    for (size_t step = 0; step <= S; step++) {
        const size_t Am = step == 0 ? 1 : A;
        const struct gemm_bf16_stats b0 = gemm_bf16_stats();
        double t0, dt, g0 = 0.0, loss_sum = 0.0;

        if (step == 1)
            gemm_count_start();
        if (step >= 1)
            g0 = gemm_count_seconds();
        t0 = timer_now();
        memset(h.grads, 0, h.n_params * sizeof(float));
        if (trains) {
            const struct clip_step_size sz = { .images = B, .vision_micro = Am };

            clip_adapters_zero_grad(&ca);
            clip_adapters_begin_step(&ca, &m, &sz);
            merged = ca.n_merged;
        }
        for (size_t micro = 0; micro < Am; micro++) {
            if ((rc = dinov2_forward(&dr, &m, trains ? &ca : NULL, pixels + micro * B * img_floats,
                                     B, DINOV2_POOL_CLS_MEAN, feats)))
                goto out;
            loss_sum += linear_head_loss(&h, feats, labels + micro * B, B);
            memset(dfeats, 0, B * FD * sizeof(float));
            linear_head_backward(&h, trains ? dfeats : NULL, Am == 1 ? 1.0f : (float)B);
            if (trains)
                dinov2_backward(&dr, &m, &ca, dfeats, NULL);
        }
        if (trains)
            clip_adapters_end_backward(&ca, &m);
        if (Am > 1) {
            const float inv = 1.0f / (float)(Am * B);

            for (size_t i = 0; trains && i < ca.n_params; i++)
                ca.grads[i] *= inv;
            for (size_t i = 0; i < h.n_params; i++)
                h.grads[i] *= inv;
        }
        if (!isfinite(clip_both(trains ? ca.grads : NULL, trains ? ca.n_params : 0, h.grads,
                                h.n_params, 1.0))) {
            rc = rl_error_set(RL_ERR, "non-finite gradient norm at bench step %zu", step);
            goto out;
        }
        if (trains)
            adamw_step(&opt, ca.params, ca.grads);
        adamw_step(&ho, h.params, h.grads);
        dt = timer_now() - t0;
        loss = loss_sum / (double)Am;
        if (step < BENCH_MAX_LOSSES)
            res->losses[res->n_losses++] = loss;
        if (step >= 1) {
            times[step - 1] = dt;
            total_s += dt;
            gemm_s += gemm_count_seconds() - g0;
            bf16_s += gemm_bf16_stats().seconds - b0.seconds;
            bf16_f += gemm_bf16_stats().flops - b0.flops;
        }
    }
    gemm_count_stop();

    bench_result_timing(res, o, times, total_s, gemm_s, (double)gemm_count_flops(), bf16_s, bf16_f);
    if (o->precision == CLIP_PRECISION_BF16)
        gemm_bf16_describe(res->bf16_backend, sizeof(res->bf16_backend));
    res->bf16_weights_mb = (double)ca.n_w_bf16 * sizeof(uint16_t) / (1024.0 * 1024.0);
    res->n_trainable = (trains ? ca.n_params : 0) + h.n_params;
    res->n_sites = trains ? ca.n_sites : 0;
    res->merged_sites = merged;
    res->model_flops = step_flops(&cfg, B, A, K, FD, trains);
    res->loss = loss;
out:
    gemm_count_stop();
    free(times);
    free(feats);
    free(dfeats);
    free(pixels);
    free(labels);
    if (dr.buf)
        dinov2_run_free(&dr);
    linear_head_free(&h);
    adamw_free(&opt);
    adamw_free(&ho);
    clip_adapters_free(&ca);
    clip_model_free(&m);
    if (rc == RL_OK) {
        res->peak_gemm_rate = bench_calibrate(false);
        if (o->precision == CLIP_PRECISION_BF16)
            res->peak_bf16_rate = bench_calibrate(true);
        if (getrusage(RUSAGE_SELF, &ru) == 0)
            res->peak_rss_kb = ru.ru_maxrss;
    }
    return rc;
}
