/*
 * bench_main.c: `make bench`: how close the kernels come to the machine's
 * GEMM rate, as ratios measured side by side in one run.
 *
 * Absolute times on shared machines are noisy; each figure here is set
 * against raw cblas_sgemm of the same FLOPs measured in the same run, so the
 * ratios carry across machines. Shapes are one clip-vit-b-32 vision layer at
 * batch 32 (T = 50 tokens, C = 768, 12 heads, F = 3072).
 *
 *   gemm          raw cblas_sgemm, (B*T x C) @ (C x C)^T: the peak
 *   linear        linear_forward + linear_backward (frozen weight and trained)
 *   attention     attention fwd+bwd, fast path vs the naive reference
 *   block         one encoder layer forward+backward, frozen and trained:
 *                 time, GFLOP/s and share of time that GEMM FLOPs explain
 *   bf16 gemm     oneDNN's bf16 matmul (core/gemm_bf16.h) on the step's
 *                 linear shapes, forward (C = A W^T) and input gradient
 *                 (C = A W), against cblas_sgemm of the same shape in the
 *                 same run; with A converted from fp32 (what the step does)
 *                 and with A already bf16
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/gemm_bf16.h"
#include "core/rng.h"
#include "core/status.h"
#include "core/threads.h"
#include "core/timer.h"
#include "models/block.h"
#include "models/nn.h"

/* seconds per call of fn(ctx): the best of `reps` timings of `iters` calls */
static double bench_time(void (*fn)(void *), void *ctx, int iters, int reps)
{
    double best = 1e30;

    fn(ctx);                                 /* warm caches and thread pools */
    for (int r = 0; r < reps; r++) {
        double t0 = timer_now();
        for (int i = 0; i < iters; i++)
            fn(ctx);
        double t = (timer_now() - t0) / iters;
        if (t < best)
            best = t;
    }
    return best;
}

static float *bench_randn(struct rng *r, size_t n)
{
    float *x = xmalloc_array(n, sizeof(*x));

    rng_fill_normal(r, x, n, 0.0f, 0.02f);
    return x;
}

struct linear_case {
    size_t N, C, OC;
    float *x, *w, *b, *y, *dy, *dx, *dw, *db;
    int train;                                 /* weight gradient too */
};

static void run_gemm(void *ctx)
{
    struct linear_case *c = ctx;

    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)c->N, (int)c->OC, (int)c->C,
                1.0f, c->x, (int)c->C, c->w, (int)c->C, 0.0f, c->y, (int)c->OC);
}

static void run_linear(void *ctx)
{
    struct linear_case *c = ctx;

    linear_forward(c->y, c->x, c->w, c->b, c->N, c->C, c->OC);
    linear_backward(c->dx, c->train ? c->dw : NULL, c->train ? c->db : NULL,
                    c->dy, c->x, c->w, c->N, c->C, c->OC);
}

/* one product of the step's linears: C[M,N] = A[M,K] op(W), W stored
 * [N,K] (forward, W[out,in]) or [K,N] (input gradient, W[out,in] read as
 * [K=out, N=in]); W in fp32 for sgemm and bf16 for oneDNN */
struct bf16_case {
    size_t M, N, K;
    enum gemm_bf16_b_layout lay;
    float *a, *w, *c;
    bf16 *a_h, *w_h;
};

static void run_sgemm_case(void *ctx)
{
    struct bf16_case *c = ctx;
    int nk = c->lay == GEMM_BF16_B_NK;

    cblas_sgemm(CblasRowMajor, CblasNoTrans, nk ? CblasTrans : CblasNoTrans, (int)c->M,
                (int)c->N, (int)c->K, 1.0f, c->a, (int)c->K, c->w, nk ? (int)c->K : (int)c->N,
                0.0f, c->c, (int)c->N);
}

static void run_bf16_f32a(void *ctx)
{
    struct bf16_case *c = ctx;

    RL_ASSERT(gemm_bf16_f32a(c->c, c->a, c->w_h, c->M, c->N, c->K, c->lay, 0.0f) == RL_OK);
}

static void run_bf16(void *ctx)
{
    struct bf16_case *c = ctx;

    RL_ASSERT(gemm_bf16(c->c, c->a_h, c->w_h, c->M, c->N, c->K, c->lay, 0.0f) == RL_OK);
}

/* bf16 vs fp32 on the step's shapes (M = B*T rows; 768 <-> 3072) */
static void bench_bf16_gemms(struct rng *r, size_t M, size_t C, size_t F)
{
    const struct { size_t N, K; enum gemm_bf16_b_layout lay; const char *what; } shapes[] = {
        { C, C, GEMM_BF16_B_NK, "fwd q/k/v/out" },
        { F, C, GEMM_BF16_B_NK, "fwd fc1" },
        { C, F, GEMM_BF16_B_NK, "fwd fc2" },
        { C, F, GEMM_BF16_B_KN, "dinp fc1" },
        { F, C, GEMM_BF16_B_KN, "dinp fc2" },
    };
    char buf[160];

    printf("bf16: %s\n", gemm_bf16_describe(buf, sizeof(buf)));
    if (gemm_bf16_check() != RL_OK) {
        printf("bf16 gemm: skipped: %s\n", rl_error_msg());
        return;
    }
    printf("bf16 gemm, MxNxK: sgemm, bf16 (A converted from fp32 in the call), A already bf16,\n"
           "  GFLOP/s; then bf16's speed-up over sgemm, same shape, same run\n");
    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
        struct bf16_case c = { .M = M, .N = shapes[i].N, .K = shapes[i].K, .lay = shapes[i].lay };
        double flops = 2.0 * c.M * c.N * c.K, t32, t16, t16b;
        char name[64];

        c.a = bench_randn(r, c.M * c.K);
        c.w = bench_randn(r, c.N * c.K);
        c.c = xcalloc(c.M * c.N, sizeof(float));
        c.a_h = xmalloc_array(c.M * c.K, sizeof(bf16));
        c.w_h = xmalloc_array(c.N * c.K, sizeof(bf16));
        bf16_from_f32_array(c.a_h, c.a, c.M * c.K);
        bf16_from_f32_array(c.w_h, c.w, c.N * c.K);
        /* interleaved: each rate measured right after the others */
        t32 = bench_time(run_sgemm_case, &c, 5, 3);
        t16 = bench_time(run_bf16_f32a, &c, 5, 3);
        t16b = bench_time(run_bf16, &c, 5, 3);
        snprintf(name, sizeof(name), "  %-13s %zux%zux%zu", shapes[i].what, c.M, c.N, c.K);
        printf("%-30s %6.1f %6.1f %6.1f GFLOP/s  %5.2fx (A bf16 %5.2fx)\n",
               name, flops / t32 * 1e-9, flops / t16 * 1e-9, flops / t16b * 1e-9, t32 / t16,
               t32 / t16b);
        free(c.a); free(c.w); free(c.c); free(c.a_h); free(c.w_h);
    }
}

struct attention_case {
    size_t B, T, C, NH;
    float *q, *k, *v, *out, *att, *dout, *dq, *dk, *dv, *scratch;
};

static void run_attention(void *ctx)
{
    struct attention_case *a = ctx;

    attention_forward(a->out, a->att, a->q, a->k, a->v, a->B, a->T, a->C, a->NH, false);
    attention_backward(a->dq, a->dk, a->dv, a->scratch, a->dout, a->att, a->q, a->k, a->v,
                       a->B, a->T, a->C, a->NH, false);
}

static void run_attention_naive(void *ctx)
{
    struct attention_case *a = ctx;

    attention_forward_naive(a->out, a->att, a->q, a->k, a->v, a->B, a->T, a->C, a->NH, false);
    attention_backward_naive(a->dq, a->dk, a->dv, a->dout, a->att, a->q, a->k, a->v,
                             a->B, a->T, a->C, a->NH, false);
}

struct block_case {
    size_t B, T;
    struct block_config cfg;
    struct block_params p;
    struct block_grads g;       /* all NULL when frozen */
    struct block_acts acts;
    struct block_grad_acts gacts;
    float *x, *y, *dy, *dx;
};

static void run_block(void *ctx)
{
    struct block_case *c = ctx;

    block_forward(c->y, &c->acts, c->x, &c->p, &c->cfg, c->B, c->T);
    block_backward(c->dx, &c->g, &c->gacts, c->dy, &c->acts, c->x, &c->p, &c->cfg, c->B, c->T);
}

int main(int argc, char **argv)
{
    const size_t B = 32, T = 50, C = 768, NH = 12, F = 3072, N = B * T;
    struct rng r;
    char tbuf[128];
    struct linear_case lc = { .N = N, .C = C, .OC = C };
    struct attention_case ac = { .B = B, .T = T, .C = C, .NH = NH };
    struct block_case bc = { .B = B, .T = T };
    size_t sizes[BLOCK_NUM_PARAMS];
    float *pbuf, *gbuf, *abuf, *gabuf;
    double t_gemm, peak, t, flops;

    (void)argc;
    threads_exec_wait_policy(argv);
    threads_init(0);
    rng_init(&r, 1);
    printf("randlora bench: clip-vit-b-32 layer shapes, batch %zu (T=%zu C=%zu NH=%zu F=%zu); %s\n",
           B, T, C, NH, F, threads_describe(tbuf, sizeof(tbuf)));

    /* the peak: one GEMM of the linear's forward shape */
    lc.x = bench_randn(&r, N * C);
    lc.w = bench_randn(&r, C * C);
    lc.b = bench_randn(&r, C);
    lc.y = xcalloc(N * C, sizeof(float));
    lc.dy = bench_randn(&r, N * C);
    lc.dx = xcalloc(N * C, sizeof(float));
    lc.dw = xcalloc(C * C, sizeof(float));
    lc.db = xcalloc(C, sizeof(float));
    t_gemm = bench_time(run_gemm, &lc, 10, 5);
    peak = 2.0 * N * C * C / t_gemm;
    printf("%-34s %9.3f ms  %7.1f GFLOP/s  (the reference rate)\n", "gemm 1600x768x768",
           1e3 * t_gemm, peak * 1e-9);

    /* linear: forward + dinp (frozen), + dW (trained) */
    for (int train = 0; train <= 1; train++) {
        lc.train = train;
        t = bench_time(run_linear, &lc, 5, 5);
        flops = 2.0 * N * C * C * (2 + train);
        printf("%-34s %9.3f ms  %7.1f GFLOP/s  %5.2fx of gemm rate\n",
               train ? "linear fwd+bwd (trained)" : "linear fwd+bwd (frozen)",
               1e3 * t, flops / t * 1e-9, flops / t / peak);
    }

    /* attention: fast vs naive */
    ac.q = bench_randn(&r, N * C);
    ac.k = bench_randn(&r, N * C);
    ac.v = bench_randn(&r, N * C);
    ac.dout = bench_randn(&r, N * C);
    ac.out = xcalloc(N * C, sizeof(float));
    ac.dq = xcalloc(N * C, sizeof(float));
    ac.dk = xcalloc(N * C, sizeof(float));
    ac.dv = xcalloc(N * C, sizeof(float));
    ac.att = xcalloc(B * NH * T * T, sizeof(float));
    ac.scratch = xcalloc(B * NH * T * T, sizeof(float));
    {
        double t_fast = bench_time(run_attention, &ac, 5, 3);
        double t_naive = bench_time(run_attention_naive, &ac, 1, 2);
        /* 2 GEMMs forward, 4 backward, each 2*B*NH*T*T*hs = 2*B*T*T*C */
        flops = 6 * 2.0 * B * T * T * C;
        printf("%-34s %9.3f ms  %7.1f GFLOP/s  %5.2fx of gemm rate; naive %.1fx slower\n",
               "attention fwd+bwd", 1e3 * t_fast, flops / t_fast * 1e-9, flops / t_fast / peak,
               t_naive / t_fast);
    }

    /* one encoder layer, frozen (adapter-style) and fully trained */
    bc.cfg = (struct block_config){ .C = C, .NH = NH, .F = F, .act = BLOCK_ACT_QUICK_GELU,
                                    .causal = false, .eps = 1e-5f };
    pbuf = bench_randn(&r, block_param_sizes(sizes, C, F));
    gbuf = xcalloc(block_param_sizes(sizes, C, F), sizeof(float));
    abuf = xcalloc(block_acts_size(B, T, C, NH, F) + block_acts_scratch_size(B, T, C, F),
                   sizeof(float));
    gabuf = xcalloc(block_grad_acts_size(B, T, C, NH, F), sizeof(float));
    block_params_point(&bc.p, pbuf, C, F);
    block_acts_point(&bc.acts, abuf, abuf + block_acts_size(B, T, C, NH, F), B, T, C, NH, F);
    block_grad_acts_point(&bc.gacts, gabuf, B, T, C, NH, F);
    bc.x = bench_randn(&r, N * C);
    bc.dy = bench_randn(&r, N * C);
    bc.y = xcalloc(N * C, sizeof(float));
    bc.dx = xcalloc(N * C, sizeof(float));
    for (int train = 0; train <= 1; train++) {
        /* linear FLOPs: 4 C*C projections + 2 C*F MLP, forward 1x, dinp 1x, dW 1x if trained */
        double lin = 2.0 * N * (4.0 * C * C + 2.0 * C * F);
        double att = 6 * 2.0 * B * T * T * C;
        memset(&bc.g, 0, sizeof(bc.g));
        if (train)
            block_grads_point(&bc.g, gbuf, C, F);
        t = bench_time(run_block, &bc, 2, 3);
        flops = lin * (2 + train) + att;
        printf("%-34s %9.3f ms  %7.1f GFLOP/s  GEMM share %3.0f%% (GEMM FLOPs at the gemm rate / time)\n",
               train ? "block fwd+bwd (trained)" : "block fwd+bwd (frozen)",
               1e3 * t, flops / t * 1e-9, 100.0 * (flops / peak) / t);
    }
    bench_bf16_gemms(&r, N, C, F);
    free(pbuf); free(gbuf); free(abuf); free(gabuf);
    free(bc.x); free(bc.dy); free(bc.y); free(bc.dx);
    free(ac.q); free(ac.k); free(ac.v); free(ac.dout); free(ac.out);
    free(ac.dq); free(ac.dk); free(ac.dv); free(ac.att); free(ac.scratch);
    free(lc.x); free(lc.w); free(lc.b); free(lc.y); free(lc.dy); free(lc.dx); free(lc.dw); free(lc.db);
    return 0;
}
