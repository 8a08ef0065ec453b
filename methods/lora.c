/*
 * lora.c: LoRA (Hu et al. 2021) as peft's lora/layer.py computes it.
 *
 *   dW = s B A,  A (r, d_in) "lora_A.weight",  B (d_out, r) "lora_B.weight",
 *   s = alpha / r  (rsLoRA: alpha / sqrt(r)), alpha defaults to peft's 8.
 *   Init: A ~ U(-1/sqrt(d_in), 1/sqrt(d_in)) (kaiming_uniform, a = sqrt 5),
 *   B = 0, so dW = 0 at step 0.
 * The paper rule (cfg.lora_rule, profile "paper"): the RandLoRA authors'
 * vision-code LoRA (rand_lora.py register_param, param_type 'lora', on an
 * nn.Linear): alpha defaults to their lora_alpha 1 (s = 1/r); the factor on
 * the input side is zero and the output side's, a (1, r, d_out) tensor there,
 * is kaiming-uniform with fan_in r d_out: here A = 0 and
 * B ~ U(-1/sqrt(r d_out), 1/sqrt(r d_out)). dW = 0 at step 0 too. On a
 * packed q/k/v layer (ADAPTER_LAYER_PACKED_QKV, their MultiheadAttention:
 * B (1, 3d, r) zero, A (1, r, d) kaiming with fan_in r d) it is the other
 * way round: A ~ U(-1/sqrt(r d_in), 1/sqrt(r d_in)), B = 0.
 *
 * params: [A (r*d_in) | B (d_out*r)].
 * Per layer it keeps h = x~ A^T (N, r) from the forward for dB, and a dh
 * (N, r) buffer; both sized for max_rows at init.
 */
#include <math.h>
#include <stdlib.h>

#include "core/alloc.h"
#include "methods/adapter.h"
#include "methods/adapter_impl.h"

struct lora_priv {
    float  s;
    float *h;    /* (max_rows, r) saved by the forward */
    float *dh;   /* (max_rows, r) backward scratch     */
};

float lora_scaling(const struct adapter_cfg *cfg)
{
    float alpha = cfg->alpha > 0.0f ? cfg->alpha
                : cfg->lora_rule == ADAPTER_LORA_PAPER ? 1.0f : 8.0f;

    return cfg->rslora ? alpha / sqrtf((float)cfg->r) : alpha / (float)cfg->r;
}

static size_t lora_n_trainable(const struct adapter_cfg *cfg, size_t d_out, size_t d_in)
{
    return cfg->r * (d_in + d_out);
}

static size_t lora_max_rank(const struct adapter_cfg *cfg, size_t d_out, size_t d_in)
{
    size_t d = d_out < d_in ? d_out : d_in;

    return cfg->r < d ? cfg->r : d;
}

static int lora_init(struct adapter *a)
{
    const struct adapter_cfg *cfg = &a->method->cfg;
    struct lora_priv *p = xcalloc(1, sizeof(*p));
    size_t r = cfg->r;
    float bound = 1.0f / sqrtf((float)a->d_in);

    a->priv = p;
    p->s = lora_scaling(cfg);
    p->h = xmalloc_array(a->method->max_rows * r, sizeof(float));
    p->dh = xmalloc_array(a->method->max_rows * r, sizeof(float));
    if (cfg->lora_rule == ADAPTER_LORA_PAPER && (a->layer & ADAPTER_LAYER_PACKED_QKV)) {
        /* the vision code's MultiheadAttention: output side 0, input side
         * kaiming (fan_in r d_in) */
        bound = 1.0f / sqrtf((float)(r * a->d_in));
        rng_fill_uniform(&a->rng, a->params, r * a->d_in, -bound, bound);
        for (size_t i = 0; i < a->d_out * r; i++)
            a->params[r * a->d_in + i] = 0.0f;
        return RL_OK;
    }
    if (cfg->lora_rule == ADAPTER_LORA_PAPER) {
        /* the vision code's nn.Linear: input side 0, output side kaiming
         * (fan_in r d_out) */
        bound = 1.0f / sqrtf((float)(r * a->d_out));
        for (size_t i = 0; i < r * a->d_in; i++)
            a->params[i] = 0.0f;
        rng_fill_uniform(&a->rng, a->params + r * a->d_in, a->d_out * r, -bound, bound);
        return RL_OK;
    }
    /* kaiming_uniform_(A, a=sqrt(5)): gain sqrt(2/6), bound gain*sqrt(3/fan_in) */
    rng_fill_uniform(&a->rng, a->params, r * a->d_in, -bound, bound);
    for (size_t i = 0; i < a->d_out * r; i++)
        a->params[r * a->d_in + i] = 0.0f;
    return RL_OK;
}

static void lora_free(struct adapter *a)
{
    struct lora_priv *p = a->priv;

    if (p) {
        free(p->h);
        free(p->dh);
        free(p);
    }
    a->priv = NULL;
}

static size_t lora_tensors(struct adapter *a, float *base, struct adapter_tensor *t, size_t max)
{
    size_t r = a->method->cfg.r;

    if (max >= 1)
        tensor_view(&t[0], "lora_A.weight", base, 2, r, a->d_in, 0);
    if (max >= 2)
        tensor_view(&t[1], "lora_B.weight", base + r * a->d_in, 2, a->d_out, r, 0);
    return 2;
}

/* x (N, d_in), y (N, d_out):  h = x A^T (N, r);  y += s h B^T */
static void lora_forward(struct adapter *a, const float *x, float *y, size_t N)
{
    struct lora_priv *p = a->priv;
    size_t r = a->method->cfg.r, di = a->d_in, dout = a->d_out;
    const float *A = a->params, *B = a->params + r * di;

    mm_branch(a, NT, TR, N, r, di, 1.0f, x, di, A, di, 0.0f, p->h, r);
    mm_branch(a, NT, TR, N, dout, r, p->s, p->h, r, B, r, 1.0f, y, dout);
}

/* With G = dy (N, d_out) and y = s (x A^T) B^T:
 *   dB (d_out, r) += s G^T h
 *   dh (N, r)      = s G B
 *   dA (r, d_in)  += dh^T x
 *   dx (N, d_in)  += dh A                                                   */
static void lora_backward(struct adapter *a, const float *x, const float *dy, float *dx, size_t N)
{
    struct lora_priv *p = a->priv;
    size_t r = a->method->cfg.r, di = a->d_in, dout = a->d_out;
    const float *A = a->params, *B = a->params + r * di;

    if (!a->grads && !dx)
        return;
    if (a->grads)
        mm_branch(a, TR, NT, dout, r, N, p->s, dy, dout, p->h, r, 1.0f, a->grads + r * di, r);
    mm_branch(a, NT, NT, N, r, dout, p->s, dy, dout, B, r, 0.0f, p->dh, r);
    if (a->grads)
        mm_branch(a, TR, NT, r, di, N, 1.0f, p->dh, r, x, di, 1.0f, a->grads, di);
    if (dx)
        mm_branch(a, NT, NT, N, di, r, 1.0f, p->dh, r, A, di, 1.0f, dx, di);
}

/* w (d_out, d_in) += scale * s B A */
static void lora_add_delta(struct adapter *a, float *w, float scale)
{
    struct lora_priv *p = a->priv;
    size_t r = a->method->cfg.r, di = a->d_in, dout = a->d_out;
    const float *A = a->params, *B = a->params + r * di;

    mm(NT, NT, dout, di, r, scale * p->s, B, r, A, di, 1.0f, w, di);
}

/* dW = s B A  =>  dB += s gW A^T (d_out, r),  dA += s B^T gW (r, d_in) */
static void lora_project_grad(struct adapter *a, const float *gw)
{
    struct lora_priv *p = a->priv;
    size_t r = a->method->cfg.r, di = a->d_in, dout = a->d_out;
    const float *A = a->params, *B = a->params + r * di;

    mm(NT, TR, dout, r, di, p->s, gw, di, A, di, 1.0f, a->grads + r * di, r);
    mm(TR, NT, r, di, dout, p->s, B, r, gw, di, 1.0f, a->grads, di);
}

/* the merged path's parameter gradients straight from x and G = dy: the
 * forward's h = x A^T (N, r), then the factored backward without dx (the
 * merged weight gives that) */
static void lora_project_rows(struct adapter *a, const float *x, const float *dy, size_t N)
{
    struct lora_priv *p = a->priv;
    size_t r = a->method->cfg.r, di = a->d_in;

    mm_branch(a, NT, TR, N, r, di, 1.0f, x, di, a->params, di, 0.0f, p->h, r);
    lora_backward(a, x, dy, NULL, N);
}

/* add_delta 2 do di r; project_rows 4 N r (di + do) */
static void lora_rows_flops(const struct adapter *a, size_t N, double *merge, double *rows)
{
    double r = (double)a->method->cfg.r, di = (double)a->d_in, dout = (double)a->d_out;

    *merge = 2.0 * dout * di * r;
    *rows = 4.0 * (double)N * r * (di + dout);
}

/* factored: 2Nr(di+do) forward, 4Nr(di+do) backward;
 * merged: dW 2 do di r, gW 2 N do di, projection 4 do di r */
static void lora_flops(const struct adapter *a, size_t N, double *factored, double *merged)
{
    double r = (double)a->method->cfg.r, di = (double)a->d_in, dout = (double)a->d_out;
    double n = (double)N;

    *factored = 6.0 * n * r * (di + dout);
    *merged = 2.0 * dout * di * (n + 3.0 * r) + 2.0 * dout * di;
}

const struct adapter_ops lora_ops = {
    .name           = "lora",
    .summary        = "LoRA: dW = s B A, A (r, d_in), B (d_out, r)",
    .api_version    = ADAPTER_API_VERSION,
    .flags          = ADAPTER_F_RANK | ADAPTER_F_DROPOUT | ADAPTER_F_RANK_LE_DIMS |
                      ADAPTER_F_COUNT_MONOTONE | ADAPTER_F_BF16_BRANCH,
    .default_rank   = 8,
    .n_trainable    = lora_n_trainable,
    .max_rank       = lora_max_rank,
    .init           = lora_init,
    .free           = lora_free,
    .tensors        = lora_tensors,
    .forward        = lora_forward,
    .backward       = lora_backward,
    .add_delta      = lora_add_delta,
    .project_grad   = lora_project_grad,
    .project_rows   = lora_project_rows,
    .rows_flops     = lora_rows_flops,
    .flops          = lora_flops,
    .export_tensors = adapter_export_views,
    .import_tensors = adapter_import_views,
};
