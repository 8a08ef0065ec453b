/*
 * full.c: full fine-tuning of a targeted weight (the ceiling), and `none`,
 * the frozen model (the zero-shot baseline).
 *
 * full trains the whole update  dW (d_out, d_in), "weight_delta", init 0,
 * so the layer computes x (W + dW)^T and W itself stays frozen and shared
 * with the other methods. The function class and the gradients equal
 * training W directly; only decoupled weight decay differs: applied to
 * these parameters it pulls W + dW towards the pretrained W, not towards 0
 * as torch's AdamW on W would (the optimizer can add the W term).
 * Dropout does not apply (there is no branch).
 * Saved (methods/adapter_io.h) as "base_model.model.<path>.weight_delta"
 * (d_out, d_in) with peft_type "FULL": this project's names, since peft has
 * no full fine-tuning adapter; W + weight_delta is the fine-tuned weight.
 *
 * none has no parameters: forward adds nothing, backward adds nothing, and
 * it saves nothing (adapter_io writes no file for it).
 */
#include <string.h>

#include "core/alloc.h"
#include "core/parallel.h"
#include "methods/adapter.h"
#include "methods/adapter_impl.h"

/* ---- full --------------------------------------------------------------- */

static size_t full_n_trainable(const struct adapter_cfg *cfg, size_t d_out, size_t d_in)
{
    (void)cfg;
    return d_out * d_in;
}

static size_t full_max_rank(const struct adapter_cfg *cfg, size_t d_out, size_t d_in)
{
    (void)cfg;
    return d_out < d_in ? d_out : d_in;
}

static int full_init(struct adapter *a)
{
    memset(a->params, 0, a->n_params * sizeof(float));
    return RL_OK;
}

static size_t full_tensors(struct adapter *a, float *base, struct adapter_tensor *t, size_t max)
{
    if (max >= 1)
        tensor_view(&t[0], "weight_delta", base, 2, a->d_out, a->d_in, 0);
    return 1;
}

/* y (N, d_out) += x (N, d_in) dW^T */
static void full_forward(struct adapter *a, const float *x, float *y, size_t N)
{
    mm(NT, TR, N, a->d_out, a->d_in, 1.0f, x, a->d_in, a->params, a->d_in, 1.0f, y, a->d_out);
}

/* ddW (d_out, d_in) += G^T x;  dx (N, d_in) += G dW */
static void full_backward(struct adapter *a, const float *x, const float *dy, float *dx, size_t N)
{
    if (a->grads)
        mm(TR, NT, a->d_out, a->d_in, N, 1.0f, dy, a->d_out, x, a->d_in, 1.0f, a->grads, a->d_in);
    if (dx)
        mm(NT, NT, N, a->d_in, a->d_out, 1.0f, dy, a->d_out, a->params, a->d_in, 1.0f, dx, a->d_in);
}

/* w (d_out, d_in) += scale * dW: a weight-sized pass, threaded */
static void full_add_delta(struct adapter *a, float *w, float scale)
{
    const float *dw = a->params;
    const size_t n = a->n_params;

    PARALLEL_FOR_SIMD(n)
    for (size_t i = 0; i < n; i++)
        w[i] += scale * dw[i];
}

static void full_project_grad(struct adapter *a, const float *gw)
{
    float *g = a->grads;
    const size_t n = a->n_params;

    PARALLEL_FOR_SIMD(n)
    for (size_t i = 0; i < n; i++)
        g[i] += gw[i];
}

/* factored: forward 2N do di, backward 4N do di; merged: gW 2N do di plus
 * the add (the dx GEMM with W + dW is the base layer's own) */
static void full_flops(const struct adapter *a, size_t N, double *factored, double *merged)
{
    double w = (double)a->d_out * (double)a->d_in;

    *factored = 6.0 * (double)N * w;
    *merged = 2.0 * (double)N * w + 2.0 * w;
}

const struct adapter_ops full_ops = {
    .name           = "full",
    .summary        = "full fine-tuning of the targeted weights (trains dW, d_out x d_in)",
    .api_version    = ADAPTER_API_VERSION,
    .flags          = ADAPTER_F_GRAD_IS_GW,
    .n_trainable    = full_n_trainable,
    .max_rank       = full_max_rank,
    .init           = full_init,
    .tensors        = full_tensors,
    .forward        = full_forward,
    .backward       = full_backward,
    .add_delta      = full_add_delta,
    .project_grad   = full_project_grad,
    .flops          = full_flops,
    .export_tensors = adapter_export_views,
    .import_tensors = adapter_import_views,
};

/* ---- none --------------------------------------------------------------- */

static size_t none_n_trainable(const struct adapter_cfg *cfg, size_t d_out, size_t d_in)
{
    (void)cfg;
    (void)d_out;
    (void)d_in;
    return 0;
}

static size_t none_max_rank(const struct adapter_cfg *cfg, size_t d_out, size_t d_in)
{
    return none_n_trainable(cfg, d_out, d_in);
}

static void none_forward(struct adapter *a, const float *x, float *y, size_t N)
{
    (void)a;
    (void)x;
    (void)y;
    (void)N;
}

static void none_backward(struct adapter *a, const float *x, const float *dy, float *dx, size_t N)
{
    (void)a;
    (void)x;
    (void)dy;
    (void)dx;
    (void)N;
}

static void none_add_delta(struct adapter *a, float *w, float scale)
{
    (void)a;
    (void)w;
    (void)scale;
}

static void none_project_grad(struct adapter *a, const float *gw)
{
    (void)a;
    (void)gw;
}

static void none_flops(const struct adapter *a, size_t N, double *factored, double *merged)
{
    (void)a;
    (void)N;
    *factored = 0.0;
    *merged = 0.0;
}

const struct adapter_ops none_ops = {
    .name           = "none",
    .summary        = "no adaptation: the frozen model (zero-shot baseline)",
    .api_version    = ADAPTER_API_VERSION,
    .flags          = 0,
    .n_trainable    = none_n_trainable,
    .max_rank       = none_max_rank,
    .forward        = none_forward,
    .backward       = none_backward,
    .add_delta      = none_add_delta,
    .project_grad   = none_project_grad,
    .flops          = none_flops,
    .export_tensors = adapter_export_views,
    .import_tensors = adapter_import_views,
};
