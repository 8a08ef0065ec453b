/*
 * cmd_bench.c: `randlora bench`: the speed and memory of one full
 * fine-tuning step (issue 7), on random weights.
 *
 *     randlora bench --model clip-vit-b-32 --method randlora --rank 6 --batch 32 --steps 3
 *
 * The step is the one experiments/train_step.c (run_step) does, composed
 * here from clip.h's public functions because run_step needs a run_state
 * with loaders: once a step the text tower's forward on K class prompts
 * (random ids, BOS + words + EOT at the positions short prompts have, cut at
 * the longest EOT by clip_text_forward); per micro-batch the vision tower
 * on B random images, exp(logit_scale) * cosine logits, cross-entropy and
 * the vision tower's backward; once a step the text tower's backward on the
 * summed feature gradients, all into the adapters' block; then (accumulate > 1: the gradient
 * divided by the step's rows) clip_grad_norm(1.0) and adamw_step. As in
 * run_step, clip_adapters_begin_step chooses each adapted linear's path
 * (factored or merged in place; RANDLORA_ADAPTER_PATH forces one) and
 * brings the merged weights to the step's parameters (re-merging those the
 * last step left merged) before the first micro-batch, and
 * clip_adapters_end_backward projects the merged sites' summed weight
 * gradients (and unmerges the sites of methods without a cheaper re-merge)
 * before the optimizer step; the runner's periodic unmerge and
 * rebase from the model file (every 100 steps) is left out: the weights
 * here are random, not a file. Adapters
 * sit on q, k, v, out, fc1 and fc2 of every layer of both towers. Method
 * `none` trains nothing: its step is the forward and the loss only.
 *
 * What is printed (text, or one JSON line with --json):
 *   - median wall time of an optimizer step over --steps steps after one
 *     warm-up step, and images/s = batch * accumulate / that time;
 *   - model FLOPs of a step, counted analytically (model_flops below): the
 *     GEMMs of both towers' forward and input gradient (dX), attention's
 *     batched products, the patch embedding, the projections and the head,
 *     plus each adapter's own work (the cheaper of its factored and merged
 *     paths over the step, adapter_merged_step_flops: what the method
 *     needs, whatever path the layer takes); their rate = model FLOPs /
 *     median step time;
 *   - the share of step time spent inside cblas_sgemm, MEASURED by the
 *     interposer in bench/gemm_count.c (linked into the randlora executable
 *     and the tests, not into librandlora.a): it only forwards until the
 *     bench enables it, then times each call made from the benchmarking
 *     thread and counts the FLOPs of every call (2 M N K). Measuring rather than dividing analytic FLOPs by a
 *     calibration rate matters because the small per-head attention GEMMs
 *     and the skinny adapter GEMMs run far below the peak rate: an estimate
 *     at the peak rate would understate their time;
 *   - a calibration GEMM in the same process (raw sgemm, 1024 x 3072 x 768,
 *     the shape of an MLP linear) gives the machine's GEMM rate, so model
 *     FLOP/s is also shown as a share of it;
 *   - peak RSS: by default the step runs in a fresh child process (fork)
 *     and the peak is that child's ru_maxrss (wait4), so configurations run
 *     one after another do not pollute each other. --in-process runs in
 *     this process (tests) and reports this process's own ru_maxrss.
 */
#define _GNU_SOURCE
#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/gemm_count.h"
#include "core/alloc.h"
#include "core/gemm_bf16.h"
#include "core/rng.h"
#include "core/status.h"
#include "core/threads.h"
#include "core/timer.h"
#include "cli/bench_decoder.h"
#include "cli/cli.h"
#include "cli/commands.h"
#include "cli/bench_impl.h"
#include "methods/adapter.h"
#include "models/clip.h"
#include "models/llama.h"
#include "models/optim.h"

/* ------------------------------------------------------------------------ */
/* options and results                                                       */

static size_t default_rank(const char *method)
{
    if (!strcmp(method, "lora"))
        return 32;
    if (!strcmp(method, "vera"))
        return 256;
    if (!strcmp(method, "randlora"))
        return 6;
    return 1;
}

/* ------------------------------------------------------------------------ */
/* analytic FLOPs                                                            */

/* forward + input gradient of the L pre-LN blocks of a tower on B rows of T
 * tokens (width C, MLP F), as computed: the six linears twice (forward,
 * dX) on every token, except in the last layer, which runs at one row per
 * sequence (block_pooled_forward) but for k and v; attention's q k^T and
 * att v forward (T x T per head, one query row in the last layer) and four
 * products back; with recompute the layers below the last run their
 * forward twice */
static double tower_flops(size_t B, size_t T, size_t C, size_t F, size_t L, bool backward,
                          bool recompute)
{
    const double b = (double)B, n = b * (double)T, c = (double)C, f = (double)F;
    const double below = L > 0 ? (double)(L - 1) : 0.0, last = L > 0 ? 1.0 : 0.0;
    const double lin_below = below * 2.0 * n * (4.0 * c * c + 2.0 * c * f);
    const double att_below = below * 2.0 * n * (double)T * c;       /* one product */
    const double lin = lin_below + last * (2.0 * n * 2.0 * c * c
                                           + 2.0 * b * (2.0 * c * c + 2.0 * c * f));
    const double att = att_below + last * 2.0 * n * c;

    if (!backward)
        return lin + 2.0 * att;
    return 2.0 * lin + 6.0 * att + (recompute ? lin_below + 2.0 * att_below : 0.0);
}

/* the adapters' own work in an optimizer step of A micro-batches: per site
 * the cheaper path, priced as clip_adapters_begin_step prices it (A times
 * the factored work against adapter_merged_step_flops: the merge once a
 * step, the weight gradient or the rows route per micro-batch) */
static double adapters_flops(const struct clip_model *m, const struct clip_adapters *ca,
                             const struct clip_step_size *sz, size_t A)
{
    double sum = 0.0;

    if (!ca)
        return 0.0;
    for (size_t i = 0; i < ca->n_sites; i++) {
        double fa, me;
        size_t N = clip_site_rows(m, &ca->sites[i], sz);

        adapter_path_flops(&ca->adapters[i], N, &fa, &me);
        fa *= (double)A;
        me = adapter_merged_step_flops(&ca->adapters[i], N, A, NULL);
        sum += fa < me ? fa : me;
    }
    return sum;
}

/* an optimizer step of A micro-batches of B images and K prompts of Tt
 * tokens, the text tower once per step (as bench_run runs it) */
static double model_flops(const struct clip_model *m, const struct clip_adapters *ca, size_t B,
                          size_t K, size_t Tt, size_t A, bool backward, bool recompute)
{
    const struct clip_vision_config *v = &m->cfg.vision;
    const struct clip_text_config *t = &m->cfg.text;
    const double D = (double)m->cfg.projection_dim;
    const size_t Tv = clip_vision_tokens(v), P = Tv - 1;
    const double Kp = (double)(v->num_channels * v->patch_size * v->patch_size);
    const double bw = backward ? 2.0 : 1.0;
    double f = 0.0;

    f += 2.0 * (double)B * (double)P * Kp * (double)v->hidden;          /* patch conv */
    f += tower_flops(B, Tv, v->hidden, v->intermediate, v->layers, backward, recompute);
    f += bw * 2.0 * (double)B * (double)v->hidden * D;                  /* visual_projection */
    f += (backward ? 3.0 : 1.0) * 2.0 * (double)B * (double)K * D;      /* logits */
    f *= (double)A;
    f += tower_flops(K, Tt, t->hidden, t->intermediate, t->layers, backward, recompute);
    f += bw * 2.0 * (double)K * (double)t->hidden * D;                  /* text_projection */
    if (backward) {
        const struct clip_step_size sz = { .images = B, .texts = K, .text_tokens = Tt };

        f += adapters_flops(m, ca, &sz, A);
    }
    return f;
}

/* ------------------------------------------------------------------------ */
/* the step                                                                  */

/* what both steps fill alike: the options echoed, the median and minimum
 * of the S step times (sorted here), images/s, the GEMM share and rate
 * (gemm_s seconds and gemm_f FLOPs counted over the timed steps), and the
 * bf16 products' (bf16_s, bf16_f) */
void bench_result_timing(struct bench_result *res, const struct bench_opts *o, double *times,
                         double total_s, double gemm_s, double gemm_f, double bf16_s,
                         double bf16_f)
{
    const size_t S = o->steps;

    snprintf(res->model, sizeof(res->model), "%s", o->model);
    snprintf(res->method, sizeof(res->method), "%s", o->method);
    res->rank = strcmp(o->method, "none") && strcmp(o->method, "full") ? o->rank : 0;
    res->batch = o->batch;
    res->accumulate = o->accumulate;
    res->classes = o->classes;
    res->steps = S;
    res->threads = threads_current().n_blas;
    snprintf(res->precision, sizeof(res->precision), "%s", clip_precision_name(o->precision));
    qsort(times, S, sizeof(double), bench_cmp_double);
    res->step_median_s = S % 2 ? times[S / 2] : 0.5 * (times[S / 2 - 1] + times[S / 2]);
    res->step_min_s = times[0];
    res->images_per_s = (double)(o->accumulate * o->batch) / res->step_median_s;
    res->gemm_flops = gemm_f / (double)S;
    res->gemm_share = gemm_s / total_s;
    res->gemm_rate = gemm_s > 0 ? gemm_f / gemm_s : 0.0;
    res->bf16_gemm_flops = bf16_f / (double)S;
    res->bf16_gemm_share = bf16_s / total_s;
    res->bf16_gemm_rate = bf16_s > 0 ? bf16_f / bf16_s : 0.0;
}

int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* K prompts of ctx ids: BOS, random word ids, EOT, padding. EOT positions
 * are those of short prompts ("a photo of a {class}."): 7..9 with CLIP's
 * BPE vocabulary, 16..23 with a byte-level one (vocab <= 512, clip-tiny),
 * row i at lo + i % span so the longest (the cut) is the same every run and
 * in bench/torch_baseline.py. Returns the cut (longest EOT + 1). */
static size_t make_prompts(int32_t *ids, size_t K, const struct clip_text_config *tc,
                           struct rng *r)
{
    const bool bytes = tc->vocab_size <= 512;
    const size_t lo = bytes ? 16 : 7, span = bytes ? 8 : 3, ctx = tc->context;
    int64_t lim = tc->bos_token_id < tc->eos_token_id ? tc->bos_token_id : tc->eos_token_id;
    size_t cut = 0;

    if (lim <= 0 || lim > (int64_t)tc->vocab_size)
        lim = (int64_t)tc->vocab_size;
    for (size_t i = 0; i < K; i++) {
        int32_t *row = ids + i * ctx;
        size_t eot = lo + i % span;

        if (eot > ctx - 1)
            eot = ctx - 1;
        row[0] = (int32_t)tc->bos_token_id;
        for (size_t j = 1; j < eot; j++)
            row[j] = (int32_t)rng_below(r, (uint64_t)lim);
        for (size_t j = eot; j < ctx; j++)
            row[j] = (int32_t)(j == eot ? tc->eos_token_id : tc->pad_token_id);
        if (eot + 1 > cut)
            cut = eot + 1;
    }
    return cut;
}

/* the calibration products: C[M,N] = A[M,K] B[N,K]^T, M, N, K below, on
 * random inputs; fp32 (cblas_sgemm) or bf16 (oneDNN, A and B already bf16) */
enum { CAL_M = 1024, CAL_N = 3072, CAL_K = 768 };

struct calib {
    bool bf16;
    float *a, *b, *c;
    bf16 *a16, *b16;
};

static void calib_run(const struct calib *k)
{
    if (k->bf16)
        RL_ASSERT(gemm_bf16(k->c, k->a16, k->b16, CAL_M, CAL_N, CAL_K, GEMM_BF16_B_NK,
                            0.0f) == RL_OK);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, CAL_M, CAL_N, CAL_K, 1.0f, k->a,
                    CAL_K, k->b, CAL_K, 0.0f, k->c, CAL_N);
}

/* the best rate of the calibration product over a few runs after one
 * untimed: sgemm's (the rate the step's model FLOPs are compared with) or,
 * bf16, oneDNN's (the rate the step's bf16 products are held to) */
double bench_calibrate(bool use_bf16)
{
    struct calib k = { .bf16 = use_bf16 };
    struct rng r;
    double best = 1e30, t0;
    int reps = 0;

    k.a = xmalloc_array((size_t)CAL_M * CAL_K, sizeof(float));
    k.b = xmalloc_array((size_t)CAL_N * CAL_K, sizeof(float));
    k.c = xmalloc_array((size_t)CAL_M * CAL_N, sizeof(float));
    rng_init(&r, 7);
    rng_fill_normal(&r, k.a, (size_t)CAL_M * CAL_K, 0.0f, 1.0f);
    rng_fill_normal(&r, k.b, (size_t)CAL_N * CAL_K, 0.0f, 1.0f);
    if (use_bf16) {
        k.a16 = xmalloc_array((size_t)CAL_M * CAL_K, sizeof(bf16));
        k.b16 = xmalloc_array((size_t)CAL_N * CAL_K, sizeof(bf16));
        bf16_from_f32_array(k.a16, k.a, (size_t)CAL_M * CAL_K);
        bf16_from_f32_array(k.b16, k.b, (size_t)CAL_N * CAL_K);
    }
    calib_run(&k);
    t0 = timer_now();
    while (reps < 3 || (reps < 50 && timer_now() - t0 < 0.5)) {
        double t1 = timer_now(), dt;

        calib_run(&k);
        dt = timer_now() - t1;
        if (dt < best)
            best = dt;
        reps++;
    }
    free(k.a);
    free(k.b);
    free(k.c);
    free(k.a16);
    free(k.b16);
    return 2.0 * CAL_M * CAL_N * (double)CAL_K / best;
}

static int load_config(struct clip_config *cfg, const char *model)
{
    for (const char *const *p = clip_preset_names(); *p; p++)
        if (!strcmp(*p, model))
            return clip_config_preset(cfg, model);
    if (strchr(model, '/') || strstr(model, ".json"))
        return clip_config_load(cfg, model);
    return clip_config_preset(cfg, model);          /* RL_ERR_ARG listing the presets */
}

static int bench_run(const struct bench_opts *o, struct bench_result *res)
{
    const size_t B = o->batch, K = o->classes, A = o->accumulate, S = o->steps;
    struct clip_config cfg;
    struct clip_model m = { 0 };
    struct clip_adapters ca = { 0 };
    struct clip_vision_run vr = { 0 };
    struct clip_text_run tr = { 0 };
    struct clip_head h = { 0 };
    struct adamw opt = { 0 };
    struct adapter_cfg acfg;
    struct clip_target tg[4];
    size_t nt, D, ctx, cut, img_floats, merged = 0;
    bool trains = strcmp(o->method, "none") != 0;
    float *pixels = NULL, *img = NULL, *txt = NULL, *dimg = NULL, *dtxt = NULL;
    int32_t *ids = NULL, *labels = NULL;
    double *times = NULL, gemm_s = 0.0, gemm_f = 0.0, total_s = 0.0, loss = 0.0, scale;
    double bf16_s = 0.0, bf16_f = 0.0;
    struct rng r;
    struct rusage ru;
    int rc;

    if (bench_is_dinov2(o->model))
        return bench_dinov2_run(o, res);
    memset(res, 0, sizeof(*res));
    threads_init(o->threads);
    if ((rc = load_config(&cfg, o->model)) != RL_OK)
        return rc;
    if ((rc = clip_model_init(&m, &cfg)) != RL_OK)
        return rc;
    clip_model_init_random(&m, o->seed);
    D = cfg.projection_dim;
    ctx = cfg.text.context;

    rng_init(&r, o->seed + 1);
    ids = xmalloc_array(K * ctx, sizeof(*ids));
    cut = make_prompts(ids, K, &cfg.text, &r);
    img_floats = cfg.vision.num_channels * cfg.vision.image_size * cfg.vision.image_size;
    pixels = xmalloc_array(A * B * img_floats, sizeof(float));
    rng_fill_normal(&r, pixels, A * B * img_floats, 0.0f, 1.0f);
    labels = xmalloc_array(A * B, sizeof(*labels));
    for (size_t i = 0; i < A * B; i++)
        labels[i] = (int32_t)rng_below(&r, (uint64_t)K);

    if (trains) {
        adapter_cfg_defaults(&acfg, o->method, o->rank);
        if ((rc = clip_targets_parse("q_proj,k_proj,v_proj,out_proj,fc1,fc2", tg, 4, &nt)) ||
            (rc = clip_adapters_init(&ca, &m, &acfg, tg, nt, B, K)) ||
            (rc = adamw_init(&opt, &ADAMW_CFG_DEFAULT, ca.n_params)))
            goto out;
        if ((rc = clip_adapters_set_precision(&ca, &m, o->precision)) != RL_OK) {
            char why[512];

            snprintf(why, sizeof(why), "%s", rl_error_msg());
            rc = rl_error_set(RL_ERR_ARG, "--precision %s: %s",
                              clip_precision_name(o->precision), why);
            goto out;
        }
        if (o->precision == CLIP_PRECISION_BF16)
            gemm_bf16_warn_if_slow();
    }
    /* under bf16, q, k, v, atty and fch kept in bf16 (clip.h) */
    const enum block_acts_store st = trains && o->precision == CLIP_PRECISION_BF16
                                     ? BLOCK_ACTS_BF16 : BLOCK_ACTS_FP32;
    clip_vision_run_init_as(&vr, &m, B, trains, trains && o->recompute, st);
    clip_text_run_init_as(&tr, &m, K, cut, trains, trains && o->recompute, st);
    clip_head_init(&h, B, K, D);
    img = xmalloc_array(B * D, sizeof(float));
    dimg = xmalloc_array(B * D, sizeof(float));
    txt = xmalloc_array(K * D, sizeof(float));
    dtxt = xmalloc_array(K * D, sizeof(float));
    times = xmalloc_array(S, sizeof(double));
    scale = clip_logit_scale(&m);

    /* step 0 warms up (page faults, thread pools) on one micro-batch */
    for (size_t step = 0; step <= S; step++) {
        const size_t Am = step == 0 ? 1 : A;
        double t0, dt, g0 = 0.0;
        struct gemm_bf16_stats b0 = gemm_bf16_stats();
        double loss_sum = 0.0;

        if (step == 1)
            gemm_count_start();
        if (step >= 1)
            g0 = gemm_count_seconds();
        t0 = timer_now();
        if (trains) {
            clip_adapters_zero_grad(&ca);
            /* each site's path for this step (train_step.c's begin_paths):
             * merged sites are merged in place once per optimizer step; with
             * A micro-batches their weight gradients are summed and projected
             * once (the warm-up step, of one micro-batch, allocates the sums) */
            const struct clip_step_size sz = {
                .images = B, .texts = K, .text_tokens = cut, .vision_micro = A, .text_micro = 1,
            };

            clip_adapters_begin_step(&ca, &m, &sz);
            merged = ca.n_merged;
        }
        /* the text tower once a step (train_step.c: no dropout here), its
         * features' gradients summed over the micro-batches */
        if ((rc = clip_text_forward(&tr, &m, trains ? &ca : NULL, ids, K, ctx, txt)))
            goto out;
        memset(dtxt, 0, K * D * sizeof(float));
        for (size_t micro = 0; micro < Am; micro++) {
            const float *x = pixels + micro * B * img_floats;
            const int32_t *y = labels + micro * B;
            double l;

            if ((rc = clip_vision_forward(&vr, &m, trains ? &ca : NULL, x, B, img)))
                goto out;
            clip_head_logits(&h, img, txt, B, K, (float)scale);
            l = clip_head_crossentropy(&h, y);
            loss_sum += l;
            if (!trains)
                continue;
            memset(dimg, 0, B * D * sizeof(float));
            clip_head_backward(&h, dimg, dtxt, NULL, Am == 1 ? 1.0f : (float)B);
            clip_vision_backward(&vr, &m, &ca, NULL, dimg, NULL);
        }
        if (trains)
            clip_text_backward(&tr, &m, &ca, NULL, dtxt);
        if (trains) {
            clip_adapters_end_backward(&ca, &m);   /* RandLoRA stays merged */
            if (Am > 1) {
                const float inv = 1.0f / (float)(Am * B);

                for (size_t i = 0; i < ca.n_params; i++)
                    ca.grads[i] *= inv;
            }
            if (!isfinite(clip_grad_norm(ca.grads, ca.n_params, 1.0))) {
                rc = rl_error_set(RL_ERR, "non-finite gradient norm at bench step %zu", step);
                goto out;
            }
            adamw_step(&opt, ca.params, ca.grads);
        }
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
    gemm_f = (double)gemm_count_flops();

    bench_result_timing(res, o, times, total_s, gemm_s, gemm_f, bf16_s, bf16_f);
    res->text_tokens = cut;
    res->recompute = trains && o->recompute;
    if (o->precision == CLIP_PRECISION_BF16)
        gemm_bf16_describe(res->bf16_backend, sizeof(res->bf16_backend));
    res->bf16_weights_mb = (double)ca.n_w_bf16 * sizeof(uint16_t) / (1024.0 * 1024.0);
    res->n_trainable = trains ? ca.n_params : 0;
    res->n_sites = trains ? ca.n_sites : 0;
    res->merged_sites = merged;
    res->model_flops = model_flops(&m, trains ? &ca : NULL, B, K, cut, A, trains,
                                   trains && o->recompute);
    res->loss = loss;
    rc = RL_OK;
out:
    gemm_count_stop();
    free(times);
    free(img);
    free(dimg);
    free(txt);
    free(dtxt);
    free(pixels);
    free(labels);
    free(ids);
    clip_head_free(&h);
    clip_text_run_free(&tr);
    clip_vision_run_free(&vr);
    adamw_free(&opt);
    clip_adapters_free(&ca);
    clip_model_free(&m);
    if (rc == RL_OK) {
        /* after everything is freed, so its buffers do not raise the peak */
        res->peak_gemm_rate = bench_calibrate(false);
        if (o->precision == CLIP_PRECISION_BF16)
            res->peak_bf16_rate = bench_calibrate(true);
        if (getrusage(RUSAGE_SELF, &ru) == 0)
            res->peak_rss_kb = ru.ru_maxrss;
    }
    return rc;
}

/* ------------------------------------------------------------------------ */
/* the command                                                               */

static void bench_usage(FILE *out)
{
    fprintf(out,
            "usage: randlora bench --model PRESET|CONFIG.json --method M [--rank R] [--batch B]\n"
            "                      [--accumulate A] [--classes K] [--steps S] [--threads T]\n"
            "                      [--seed N] [--recompute] [--precision fp32|bf16] [--json]\n"
            "                      [--in-process]\n"
            "\n"
            "Time full fine-tuning steps on random weights: the text tower on K class\n"
            "prompts, the vision tower on B images, cross-entropy, backward through both\n"
            "towers, gradient clipping and AdamW, with adapters on q, k, v, out, fc1 and fc2\n"
            "of every layer of both towers. Prints the median step time, images/s, model\n"
            "FLOPs (analytic) and their rate, the share of time in GEMMs (measured), the\n"
            "calibration GEMM rate and the peak RSS of a fresh child process.\n"
            "\n"
            "  --model P       a preset (clip-tiny, clip-vit-b-32, ...) or a config.json;\n"
            "                  dinov2-vit-b-14 (or a DINOv2 preset): the image backbone with a\n"
            "                  linear head of K classes on [cls, mean patch], no text tower\n"
            "  --method M      lora, vera, randlora, nola, full or none (forward only)\n"
            "  --rank R        default: lora 32, vera 256, randlora 6, nola 1\n"
            "  --batch B       images per micro-batch (default 32)\n"
            "  --accumulate A  micro-batches per optimizer step (default 1)\n"
            "  --classes K     class prompts (default 10)\n"
            "  --steps S       timed steps after a warm-up step of one micro-batch (default 3)\n"
            "  --threads T     OpenBLAS and OpenMP threads (default: RANDLORA_THREADS or all)\n"
            "  --recompute     keep only the layers' inputs; recompute each layer's\n"
            "                  forward in the backward (less memory, more arithmetic)\n"
            "  --precision P   fp32 (default) or bf16: the frozen linears' forward and input\n"
            "                  gradient as bf16 GEMMs with fp32 accumulation (oneDNN; needs\n"
            "                  AVX512-BF16 or AMX), q, k, v, the attention and fc1 outputs\n"
            "                  kept for the backward in bf16, everything else fp32\n"
            "  --json          one JSON line instead of text\n"
            "  --in-process    run here, not in a child (peak RSS is then this process's)\n"
            "\n"
            "With a decoder preset (--model llama-tiny or qwen2-0.5b): a training step of\n"
            "the Llama-family model on random tokens (--method default lora, --rank 16,\n"
            "on q, k, v, up and down of every layer), tokens/s and peak RSS, in-process:\n"
            "  --seq T         tokens per sequence (default 256; --batch default 1)\n"
            "  --generate N    time greedy generation instead: the prefill of --batch\n"
            "                  prompts of --seq tokens, then N decoding steps\n");
}

/* one usage error line (cli.h), exit status 2 */
#define bad(...) cli_bad("bench", true, __VA_ARGS__)

static void print_result(const struct bench_result *r, bool json)
{
    const double rss_mb = (double)r->peak_rss_kb / 1024.0;
    const double gflops = r->model_flops / r->step_median_s / 1e9;

    if (json) {
        printf("{\"impl\":\"c\",\"model\":\"%s\",\"method\":\"%s\",\"rank\":%zu,\"batch\":%zu,"
               "\"accumulate\":%zu,\"classes\":%zu,\"text_tokens\":%zu,\"steps\":%zu,"
               "\"threads\":%d,\"recompute\":%s,\"precision\":\"%s\",\"bf16_backend\":\"%s\","
               "\"bf16_weights_mb\":%.1f,\"n_trainable\":%zu,\"n_sites\":%zu,\"merged_sites\":%zu,"
               "\"step_s\":%.6f,\"step_min_s\":%.6f,"
               "\"images_per_s\":%.4f,\"model_gflop\":%.4f,\"gflops\":%.3f,"
               "\"gemm_gflop_counted\":%.4f,\"gemm_share\":%.4f,\"gemm_gflops\":%.3f,"
               "\"peak_gflops\":%.3f,\"bf16_gemm_gflop\":%.4f,\"bf16_gemm_share\":%.4f,"
               "\"bf16_gemm_gflops\":%.3f,\"peak_bf16_gflops\":%.3f,"
               "\"peak_rss_mb\":%.1f,\"loss\":%.6g,\"losses\":[",
               r->model, r->method, r->rank, r->batch, r->accumulate, r->classes,
               r->text_tokens, r->steps, r->threads, r->recompute ? "true" : "false",
               r->precision, r->bf16_backend, r->bf16_weights_mb,
               r->n_trainable, r->n_sites,
               r->merged_sites, r->step_median_s,
               r->step_min_s, r->images_per_s, r->model_flops / 1e9, gflops,
               r->gemm_flops / 1e9, r->gemm_share, r->gemm_rate / 1e9, r->peak_gemm_rate / 1e9,
               r->bf16_gemm_flops / 1e9, r->bf16_gemm_share, r->bf16_gemm_rate / 1e9,
               r->peak_bf16_rate / 1e9, rss_mb, r->loss);
        for (size_t i = 0; i < r->n_losses; i++)
            printf("%s%.6g", i ? "," : "", r->losses[i]);
        printf("]}\n");
    } else {
        printf("model %s, method %s", r->model, r->method);
        if (r->rank)
            printf(" r=%zu", r->rank);
        if (r->text_tokens)
            printf(", batch %zu x %zu, %zu class prompts of %zu tokens, %d threads%s\n",
                   r->accumulate, r->batch, r->classes, r->text_tokens, r->threads,
                   r->recompute ? ", layers recomputed in the backward" : "");
        else                            /* a DINOv2 step (bench_dinov2.c) */
            printf(", batch %zu x %zu, a linear head of %zu classes on [cls, mean patch], "
                   "%d threads\n", r->accumulate, r->batch, r->classes, r->threads);
        if (r->bf16_backend[0])
            printf("  precision            bf16 frozen linears (%.1f MiB of bf16 copies; %s)\n",
                   r->bf16_weights_mb, r->bf16_backend);
        printf("  trainable            %zu in %zu adapted linears (%zu on the merged path)\n",
               r->n_trainable, r->n_sites, r->merged_sites);
        printf("  step (median of %zu)  %.3f s (min %.3f s)\n", r->steps, r->step_median_s,
               r->step_min_s);
        printf("  images/s             %.2f\n", r->images_per_s);
        printf("  model FLOPs / step   %.2f GFLOP (analytic), %.1f GFLOP/s = %.0f%% of the "
               "calibration GEMM (%.1f GFLOP/s)\n",
               r->model_flops / 1e9, gflops, 100.0 * gflops * 1e9 / r->peak_gemm_rate,
               r->peak_gemm_rate / 1e9);
        printf("  GEMMs                %.1f%% of step time (measured), %.2f GFLOP counted at "
               "%.1f GFLOP/s\n",
               100.0 * r->gemm_share, r->gemm_flops / 1e9, r->gemm_rate / 1e9);
        if (r->bf16_backend[0])
            printf("  bf16 GEMMs           %.1f%% of step time (measured), %.2f GFLOP at %.1f "
                   "GFLOP/s = %.0f%% of oneDNN's calibration (%.1f GFLOP/s, bf16 1024x3072x768)\n",
                   100.0 * r->bf16_gemm_share, r->bf16_gemm_flops / 1e9,
                   r->bf16_gemm_rate / 1e9,
                   r->peak_bf16_rate > 0 ? 100.0 * r->bf16_gemm_rate / r->peak_bf16_rate : 0.0,
                   r->peak_bf16_rate / 1e9);
        printf("  peak RSS             %.1f MiB\n", rss_mb);
        printf("  loss (last step)     %.4f\n", r->loss);
        printf("  loss per step        ");
        for (size_t i = 0; i < r->n_losses; i++)
            printf("%s%.4f", i ? " " : "", r->losses[i]);
        printf(" (the first: the warm-up step of one micro-batch)\n");
    }
    fflush(stdout);
}

/* run in a fresh child; its ru_maxrss is the configuration's peak */
static int bench_fork(const struct bench_opts *o, struct bench_result *res)
{
    int fd[2], status;
    pid_t pid;
    struct rusage ru;
    ssize_t got = 0;

    fflush(stdout);
    fflush(stderr);
    if (pipe(fd) != 0)
        return rl_error_set(RL_ERR_IO, "pipe: %s", strerror(errno));
    pid = fork();
    if (pid < 0)
        return rl_error_set(RL_ERR_IO, "fork: %s", strerror(errno));
    if (pid == 0) {
        struct bench_result cr;
        int rc;

        close(fd[0]);
        rc = bench_run(o, &cr);
        if (rc != RL_OK) {
            fprintf(stderr, "randlora bench: %s\n", rl_error_msg());
            _exit(rl_exit_code(rc));
        }
        if (write(fd[1], &cr, sizeof(cr)) != (ssize_t)sizeof(cr))
            _exit(1);
        _exit(0);
    }
    close(fd[1]);
    while ((size_t)got < sizeof(*res)) {
        ssize_t n = read(fd[0], (char *)res + got, sizeof(*res) - (size_t)got);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += n;
    }
    close(fd[0]);
    while (wait4(pid, &status, 0, &ru) < 0)
        if (errno != EINTR)
            return rl_error_set(RL_ERR_IO, "wait4: %s", strerror(errno));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || (size_t)got != sizeof(*res)) {
        int code = WIFEXITED(status) ? WEXITSTATUS(status) : 1;

        rl_error_set(code == 2 ? RL_ERR_ARG : RL_ERR, "the benchmark child %s %d",
                     WIFEXITED(status) ? "exited with status" : "was killed by signal",
                     WIFEXITED(status) ? code : WTERMSIG(status));
        return code == 2 ? RL_ERR_ARG : RL_ERR;
    }
    res->peak_rss_kb = ru.ru_maxrss;
    return RL_OK;
}

int cmd_bench(int argc, char **argv)
{
    struct bench_opts o = {
        .model = NULL, .method = NULL, .rank = 0, .batch = 32, .accumulate = 1,
        .classes = 10, .steps = 3, .threads = 0, .json = false, .in_process = false,
        .seed = 1, .seq = 256,
    };
    struct bench_result res;
    size_t v;
    int rc;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;

        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            bench_usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--json")) {
            o.json = true;
            continue;
        }
        if (!strcmp(a, "--in-process")) {
            o.in_process = true;
            continue;
        }
        if (!strcmp(a, "--recompute")) {
            o.recompute = true;
            continue;
        }
        if (!val)
            return bad("option '%s' needs a value", a);
        i++;
        if (!strcmp(a, "--model"))
            o.model = val;
        else if (!strcmp(a, "--method"))
            o.method = val;
        else if (!strcmp(a, "--precision")) {
            if (clip_precision_parse(val, &o.precision) != RL_OK)
                return bad("--precision wants fp32 or bf16, not '%s'", val);
        }
        else if (!strcmp(a, "--rank") || !strcmp(a, "--batch") || !strcmp(a, "--accumulate") ||
                 !strcmp(a, "--classes") || !strcmp(a, "--steps") || !strcmp(a, "--threads") ||
                 !strcmp(a, "--seed") || !strcmp(a, "--seq") || !strcmp(a, "--generate")) {
            if (cli_parse_count(val, 1000000000, &v))
                return bad("%s wants a positive whole number, not '%s'", a, val);
            if (!strcmp(a, "--rank"))
                o.rank = v;
            else if (!strcmp(a, "--batch")) {
                o.batch = v;
                o.batch_set = true;
            } else if (!strcmp(a, "--seq"))
                o.seq = v;
            else if (!strcmp(a, "--generate"))
                o.generate = v;
            else if (!strcmp(a, "--accumulate"))
                o.accumulate = v;
            else if (!strcmp(a, "--classes"))
                o.classes = v;
            else if (!strcmp(a, "--steps"))
                o.steps = v;
            else if (!strcmp(a, "--threads"))
                o.threads = v > 1024 ? 1024 : (int)v;
            else
                o.seed = v;
        } else
            return bad("unknown option '%s'", a);
    }
    if (!o.model)
        return bad("--model is required");
    if (llama_is_preset(o.model)) {         /* a decoder (cli/bench_decoder.c) */
        struct bench_decoder_opts d = {
            .model = o.model, .method = o.method, .rank = o.rank, .batch = o.batch_set ?
            o.batch : 1, .seq = o.seq, .steps = o.steps, .threads = o.threads,
            .seed = o.seed, .json = o.json, .recompute = o.recompute,
            .generate = o.generate,
        };

        if (o.method && !adapter_ops_find(o.method))
            return bad("unknown method '%s' (lora, vera, randlora, nola, full)", o.method);
        if ((rc = bench_decoder(&d)) != RL_OK) {
            fprintf(stderr, "randlora bench: %s\n", rl_error_msg());
            return rl_exit_code(rc);
        }
        return 0;
    }
    if (o.generate)
        return bad("--generate applies to a decoder preset (llama-tiny, qwen2-0.5b), not %s",
                   o.model);
    if (!o.method)
        return bad("--method is required");
    if (!adapter_ops_find(o.method))
        return bad("unknown method '%s' (lora, vera, randlora, nola, full, none)", o.method);
    if (o.classes < 2)
        return bad("--classes must be at least 2");
    if (!o.rank)
        o.rank = default_rank(o.method);
    if (bench_is_dinov2(o.model) && o.recompute)
        return bad("--recompute is not available for the DINOv2 step (%s)", o.model);
    if (o.precision == CLIP_PRECISION_BF16 && !strcmp(o.method, "none"))
        return bad("--precision bf16 applies to the frozen linears of a training method, "
                   "not none");

    rc = o.in_process ? bench_run(&o, &res) : bench_fork(&o, &res);
    if (rc != RL_OK) {
        if (o.in_process || !strstr(rl_error_msg(), "benchmark child"))
            fprintf(stderr, "randlora bench: %s\n", rl_error_msg());
        return rl_exit_code(rc);
    }
    print_result(&res, o.json);
    return 0;
}
