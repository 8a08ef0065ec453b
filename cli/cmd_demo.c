/*
 * cmd_demo.c: `randlora demo`: train a one-block transformer from scratch on
 * a small pointer-lookup task, with every piece of the training stack the
 * fine-tuning runs use: token + position embedding, a pre-LN encoder block,
 * final layer norm, class-token pooling, a linear head, cross-entropy,
 * AdamW with a cosine schedule and warmup, gradient clipping, and the
 * progress line.
 *
 * The task: a sequence of T tokens whose first token names a position
 * p in [1, T) and whose other tokens are values in [0, K); the label is the
 * value at position p. Chance is 1/K; the block can only solve it by
 * attending from the class token to position p, so a falling loss shows
 * attention, layer norm, the MLP and the optimizer working together.
 *
 * Memory: parameters, gradients, activations and activation gradients are
 * one allocation each, sized before the first step; the step loop
 * allocates nothing.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/progress.h"
#include "core/rng.h"
#include "core/status.h"
#include "core/threads.h"
#include "core/timer.h"
#include "cli/commands.h"
#include "models/block.h"
#include "models/nn.h"
#include "models/optim.h"

/* task and model sizes */
enum { DEMO_T = 8, DEMO_K = 4, DEMO_C = 32, DEMO_NH = 2, DEMO_F = 128, DEMO_B = 64 };
#define DEMO_V (DEMO_K + DEMO_T - 1)   /* value tokens, then one pointer token per position */

struct demo_params {
    float *wte;                  /* (V,C)  token embedding    */
    float *wpe;                  /* (T,C)  position embedding */
    float *block;                /* block_param_sizes floats  */
    float *lnf_w, *lnf_b;        /* (C)    final layer norm   */
    float *head_w, *head_b;      /* (K,C), (K)                */
};

/* Floats in the flat parameter buffer. */
static size_t demo_params_size(void)
{
    size_t sizes[BLOCK_NUM_PARAMS];

    return (size_t)DEMO_V * DEMO_C + (size_t)DEMO_T * DEMO_C + block_param_sizes(sizes, DEMO_C, DEMO_F)
           + 2 * DEMO_C + (size_t)DEMO_K * DEMO_C + DEMO_K;
}

/* Point the named tensors into one flat buffer of demo_params_size() floats. */
static void demo_params_point(struct demo_params *p, float *buf)
{
    size_t sizes[BLOCK_NUM_PARAMS];
    size_t n_block = block_param_sizes(sizes, DEMO_C, DEMO_F);
    float *at = buf;

    p->wte = at;    at += (size_t)DEMO_V * DEMO_C;
    p->wpe = at;    at += (size_t)DEMO_T * DEMO_C;
    p->block = at;  at += n_block;
    p->lnf_w = at;  at += DEMO_C;
    p->lnf_b = at;  at += DEMO_C;
    p->head_w = at; at += (size_t)DEMO_K * DEMO_C;
    p->head_b = at;
}

/* Random parameters as a GPT-2/CLIP style init: N(0, 0.02), layer norms 1/0. */
static void demo_params_init(struct demo_params *p, size_t n, struct rng *r)
{
    struct block_params bp;

    rng_fill_normal(r, p->wte, n, 0.0f, 0.02f);    /* everything, then fix the norms */
    block_params_point(&bp, p->block, DEMO_C, DEMO_F);
    for (size_t i = 0; i < DEMO_C; i++) {
        ((float *)bp.ln1_w)[i] = 1.0f;
        ((float *)bp.ln1_b)[i] = 0.0f;
        ((float *)bp.ln2_w)[i] = 1.0f;
        ((float *)bp.ln2_b)[i] = 0.0f;
        p->lnf_w[i] = 1.0f;
        p->lnf_b[i] = 0.0f;
    }
}

/* One batch of the pointer task: ids (B,T), labels (B). */
static void demo_batch(int32_t *ids, int32_t *labels, size_t B, struct rng *r)
{
    for (size_t b = 0; b < B; b++) {
        int32_t *row = ids + b * DEMO_T;
        size_t p = 1 + (size_t)rng_below(r, DEMO_T - 1);

        for (size_t t = 1; t < DEMO_T; t++)
            row[t] = (int32_t)rng_below(r, DEMO_K);
        row[0] = (int32_t)(DEMO_K + p - 1);
        labels[b] = row[p];
    }
}

struct demo_acts {
    float *emb;                  /* (B,T,C) */
    float *blk_out;              /* (B,T,C) */
    float *lnf, *lnf_mean, *lnf_rstd;   /* (B,T,C), (B,T), (B,T) */
    float *pooled;               /* (B,C)   */
    float *logits, *probs;       /* (B,K)   */
    struct block_acts blk;
};

struct demo {
    struct demo_params p, g;
    struct block_params bp;
    struct block_grads bg;
    struct demo_acts a, da;      /* da: gradients w.r.t. the same buffers */
    struct block_grad_acts bga;
    struct block_config cfg;
    size_t n_params;
    float *param_buf, *grad_buf, *act_buf, *dact_buf;
};

/* Floats for the head's activations (and the block's, with_block). */
static size_t demo_acts_size(int with_block)
{
    const size_t B = DEMO_B, T = DEMO_T, C = DEMO_C;

    return 3 * B * T * C + 2 * B * T + B * C + 2 * B * DEMO_K
           + (with_block ? block_acts_size(B, T, C, DEMO_NH, DEMO_F)
                               + block_acts_scratch_size(B, T, C, DEMO_F) : 0);
}

/* Point the views into buf, demo_acts_size(with_block) floats. */
static void demo_acts_point(struct demo_acts *a, float *buf, int with_block)
{
    const size_t B = DEMO_B, T = DEMO_T, C = DEMO_C;
    float *at = buf;

    a->emb = at;      at += B * T * C;
    a->blk_out = at;  at += B * T * C;
    a->lnf = at;      at += B * T * C;
    a->lnf_mean = at; at += B * T;
    a->lnf_rstd = at; at += B * T;
    a->pooled = at;   at += B * C;
    a->logits = at;   at += B * DEMO_K;
    a->probs = at;    at += B * DEMO_K;
    if (with_block)
        block_acts_point(&a->blk, at, at + block_acts_size(B, T, C, DEMO_NH, DEMO_F), B, T, C,
                         DEMO_NH, DEMO_F);
}

static void demo_init(struct demo *d, uint64_t seed)
{
    size_t n_dact = demo_acts_size(0) + block_grad_acts_size(DEMO_B, DEMO_T, DEMO_C, DEMO_NH, DEMO_F);
    struct rng r;

    d->cfg = (struct block_config){ .C = DEMO_C, .NH = DEMO_NH, .F = DEMO_F,
                                    .act = BLOCK_ACT_QUICK_GELU, .causal = false, .eps = 1e-5f };
    d->n_params = demo_params_size();
    d->param_buf = xcalloc(d->n_params, sizeof(float));
    d->grad_buf = xcalloc(d->n_params, sizeof(float));
    demo_params_point(&d->p, d->param_buf);
    demo_params_point(&d->g, d->grad_buf);
    block_params_point(&d->bp, d->p.block, DEMO_C, DEMO_F);
    block_grads_point(&d->bg, d->g.block, DEMO_C, DEMO_F);
    rng_init(&r, seed);
    demo_params_init(&d->p, d->n_params, &r);

    d->act_buf = xcalloc(demo_acts_size(1), sizeof(float));
    d->dact_buf = xcalloc(n_dact, sizeof(float));
    demo_acts_point(&d->a, d->act_buf, 1);
    demo_acts_point(&d->da, d->dact_buf, 0);
    block_grad_acts_point(&d->bga, d->dact_buf + demo_acts_size(0),
                          DEMO_B, DEMO_T, DEMO_C, DEMO_NH, DEMO_F);
}

static void demo_free(struct demo *d)
{
    free(d->param_buf);
    free(d->grad_buf);
    free(d->act_buf);
    free(d->dact_buf);
}

/* Forward to the mean loss; fills a->probs. */
static float demo_forward(struct demo *d, const int32_t *ids, const int32_t *labels)
{
    struct demo_acts *a = &d->a;
    const size_t B = DEMO_B, T = DEMO_T, C = DEMO_C;

    embedding_forward(a->emb, ids, d->p.wte, d->p.wpe, B, T, C);
    block_forward(a->blk_out, &a->blk, a->emb, &d->bp, &d->cfg, B, T);
    layernorm_forward(a->lnf, a->lnf_mean, a->lnf_rstd, a->blk_out, d->p.lnf_w, d->p.lnf_b, B * T, C, 1e-5f);
    pool_rows_forward(a->pooled, a->lnf, NULL, B, T, C);
    linear_forward(a->logits, a->pooled, d->p.head_w, d->p.head_b, B, C, DEMO_K);
    return crossentropy_forward(a->probs, a->logits, labels, B, DEMO_K);
}

/* Backward of demo_forward: the forward list reversed; grads accumulate. */
static void demo_backward(struct demo *d, const int32_t *ids, const int32_t *labels)
{
    struct demo_acts *a = &d->a, *da = &d->da;
    const size_t B = DEMO_B, T = DEMO_T, C = DEMO_C;

    memset(d->grad_buf, 0, d->n_params * sizeof(float));
    memset(d->dact_buf, 0, demo_acts_size(0) * sizeof(float));
    crossentropy_backward(da->logits, a->probs, labels, 1.0f, B, DEMO_K);
    linear_backward(da->pooled, d->g.head_w, d->g.head_b, da->logits, a->pooled, d->p.head_w, B, C, DEMO_K);
    pool_rows_backward(da->lnf, da->pooled, NULL, B, T, C);
    layernorm_backward(da->blk_out, d->g.lnf_w, d->g.lnf_b, da->lnf, a->blk_out, d->p.lnf_w,
                       a->lnf_mean, a->lnf_rstd, B * T, C);
    block_backward(da->emb, &d->bg, &d->bga, da->blk_out, &a->blk, a->emb, &d->bp, &d->cfg, B, T);
    embedding_backward(d->g.wte, d->g.wpe, da->emb, ids, B, T, C);
}

static float demo_accuracy(const float *probs, const int32_t *labels, size_t B)
{
    size_t correct = 0;

    for (size_t b = 0; b < B; b++) {
        const float *row = probs + b * DEMO_K;
        size_t best = 0;
        for (size_t k = 1; k < DEMO_K; k++)
            if (row[k] > row[best])
                best = k;
        correct += (int32_t)best == labels[b];
    }
    return (float)correct / (float)B;
}

static int demo_usage(FILE *out)
{
    fprintf(out,
            "usage: randlora demo [--steps N] [--seed S]\n"
            "Train a one-block transformer on a pointer-lookup task (chance accuracy %d%%)\n"
            "and print its loss curve and held-out accuracy. Defaults: 600 steps, seed 1.\n",
            100 / DEMO_K);
    return out == stdout ? 0 : 2;
}

int cmd_demo(int argc, char **argv)
{
    size_t steps = 600;
    uint64_t seed = 1;
    struct demo d;
    struct adamw opt;
    struct adamw_cfg ocfg = { .lr = 3e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.01 };
    struct lr_cosine sched;
    struct progress prog;
    struct rng data, eval;
    int32_t ids[DEMO_B * DEMO_T], labels[DEMO_B];
    double loss_avg = 0.0, acc = 0.0;
    char tbuf[128];
    double t0;

    for (int i = 1; i < argc; i++) {
        char *end;
        if (!strcmp(argv[i], "--help"))
            return demo_usage(stdout);
        if (i + 1 < argc && !strcmp(argv[i], "--steps")) {
            unsigned long long v = strtoull(argv[++i], &end, 10);
            if (*end || v == 0 || v > 1000000) {
                fprintf(stderr, "randlora demo: --steps '%s': want an integer in [1, 1000000]\n", argv[i]);
                return 2;
            }
            steps = (size_t)v;
        } else if (i + 1 < argc && !strcmp(argv[i], "--seed")) {
            seed = strtoull(argv[++i], &end, 10);
            if (*end) {
                fprintf(stderr, "randlora demo: --seed '%s': want a non-negative integer\n", argv[i]);
                return 2;
            }
        } else {
            fprintf(stderr, "randlora demo: unexpected argument '%s'\n", argv[i]);
            return demo_usage(stderr);
        }
    }

    threads_init(0);
    demo_init(&d, seed);
    if (adamw_init(&opt, &ocfg, d.n_params) != RL_OK) {
        demo_free(&d);
        return 1;
    }
    sched = (struct lr_cosine){ .lr_max = ocfg.lr, .lr_min = ocfg.lr / 10, .warmup = steps / 20, .total = steps };
    rng_init(&data, seed + 1);
    printf("demo: pointer lookup, T=%d tokens, %d classes (chance %.0f%%); model C=%d, %d heads, "
           "%zu parameters; batch %d; %s\n",
           DEMO_T, DEMO_K, 100.0 / DEMO_K, DEMO_C, DEMO_NH, d.n_params, DEMO_B,
           threads_describe(tbuf, sizeof(tbuf)));
    printf("%8s %10s %10s\n", "step", "loss", "lr");
    progress_init(&prog, "demo", steps, stderr);
    t0 = timer_now();
    for (size_t step = 0; step < steps; step++) {
        float loss;
        double norm;

        demo_batch(ids, labels, DEMO_B, &data);
        loss = demo_forward(&d, ids, labels);
        demo_backward(&d, ids, labels);
        norm = clip_grad_norm(d.grad_buf, d.n_params, 1.0);
        if (!isfinite(loss) || !isfinite(norm)) {
            fprintf(stderr, "randlora demo: non-finite loss or gradient at step %zu; stopping\n", step);
            adamw_free(&opt);
            demo_free(&d);
            return 1;
        }
        opt.cfg.lr = lr_cosine_at(&sched, step);
        adamw_step(&opt, d.param_buf, d.grad_buf);
        loss_avg = step ? 0.9 * loss_avg + 0.1 * loss : loss;
        if ((step + 1) % (steps / 10 ? steps / 10 : 1) == 0 || step == 0)
            printf("%8zu %10.4f %10.3g\n", step + 1, loss_avg, opt.cfg.lr);
        progress_update(&prog, step + 1, loss_avg, opt.cfg.lr,
                        (double)(step + 1) * DEMO_B / (timer_now() - t0));
    }
    progress_finish(&prog);

    /* held-out accuracy on fresh batches from another stream */
    rng_init(&eval, seed + 1000);
    for (int i = 0; i < 16; i++) {
        demo_batch(ids, labels, DEMO_B, &eval);
        demo_forward(&d, ids, labels);
        acc += demo_accuracy(d.a.probs, labels, DEMO_B) / 16.0;
    }
    printf("held-out accuracy: %.1f%% on %d sequences (chance %.0f%%)\n",
           100.0 * acc, 16 * DEMO_B, 100.0 / DEMO_K);
    adamw_free(&opt);
    demo_free(&d);
    return 0;
}
