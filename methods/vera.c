/*
 * vera.c: VeRA (Kopiczko et al. 2024) as peft's vera/{layer,model}.py.
 *
 * One frozen pair per model, shared by every layer:
 *   vera_A (r, max_in)  ~ U(+-sqrt(6/max_in))   (kaiming, fan_in = max_in)
 *   vera_B (max_out, r) ~ U(+-sqrt(6/r))        (fan_in = r), drawn after A,
 * a layer using the top-left slices A = vera_A[:, :d_in] (row stride max_in)
 * and B = vera_B[:d_out, :]. Trainable per layer:
 *   vera_lambda_b  b (d_out), init 0
 *   vera_lambda_d  d (r),     init d_initial (0.1)
 *   dW = diag(b) B diag(d) A, no scaling.
 *
 * params: [b (d_out) | d (r)].
 * Per layer the forward keeps h = x~ A^T (N, r). Shared scratch (the method's):
 * bB = b . B (max_out, r), dA = d . A (r, max_in), u, du (max_rows, r),
 * M (max_out, r).
 */
#include <math.h>
#include <stdlib.h>

#include "core/alloc.h"
#include "methods/adapter.h"
#include "methods/adapter_impl.h"

struct vera_shared {
    float *A;      /* (r, max_in)     vera_A */
    float *B;      /* (max_out, r)    vera_B */
    float *bB;     /* (max_out, r)    scratch */
    float *dA;     /* (r, max_in)     scratch */
    float *u;      /* (max_rows, r)   scratch */
    float *du;     /* (max_rows, r)   scratch */
    float *M;      /* (max_out, r)    scratch */
};

struct vera_priv {
    float *h;      /* (max_rows, r) saved by the forward */
};

static size_t vera_n_trainable(const struct adapter_cfg *cfg, size_t d_out, size_t d_in)
{
    (void)d_in;
    return cfg->r + d_out;
}

static size_t vera_n_shared(const struct adapter_cfg *cfg, size_t max_out, size_t max_in)
{
    return cfg->r * (max_in + max_out);
}

static size_t vera_max_rank(const struct adapter_cfg *cfg, size_t d_out, size_t d_in)
{
    size_t d = d_out < d_in ? d_out : d_in;

    return cfg->r < d ? cfg->r : d;
}

static int vera_method_init(struct adapter_method *m)
{
    struct vera_shared *s = xcalloc(1, sizeof(*s));
    size_t r = m->cfg.r;
    struct rng g;
    float ba = sqrtf(6.0f / (float)m->max_in), bb = sqrtf(6.0f / (float)r);

    m->priv = s;
    s->A = xmalloc_array(r * m->max_in, sizeof(float));
    s->B = xmalloc_array(m->max_out * r, sizeof(float));
    s->bB = xmalloc_array(m->max_out * r, sizeof(float));
    s->dA = xmalloc_array(r * m->max_in, sizeof(float));
    s->u = xmalloc_array(m->max_rows * r, sizeof(float));
    s->du = xmalloc_array(m->max_rows * r, sizeof(float));
    s->M = xmalloc_array(m->max_out * r, sizeof(float));
    /* stream 0 of the root: the shared projections, A first, then B (peft) */
    rng_split(&g, &m->rng, 0);
    rng_fill_uniform(&g, s->A, r * m->max_in, -ba, ba);
    rng_fill_uniform(&g, s->B, m->max_out * r, -bb, bb);
    return RL_OK;
}

static void vera_method_free(struct adapter_method *m)
{
    struct vera_shared *s = m->priv;

    if (s) {
        free(s->A);
        free(s->B);
        free(s->bB);
        free(s->dA);
        free(s->u);
        free(s->du);
        free(s->M);
        free(s);
    }
    m->priv = NULL;
}

static size_t vera_method_tensors(struct adapter_method *m, struct adapter_tensor *t, size_t max)
{
    struct vera_shared *s = m->priv;

    if (max >= 1)
        tensor_view(&t[0], "vera_A", s->A, 2, m->cfg.r, m->max_in, 0);
    if (max >= 2)
        tensor_view(&t[1], "vera_B", s->B, 2, m->max_out, m->cfg.r, 0);
    return 2;
}

static int vera_init(struct adapter *a)
{
    struct vera_priv *p = xcalloc(1, sizeof(*p));
    size_t r = a->method->cfg.r;

    a->priv = p;
    p->h = xmalloc_array(a->method->max_rows * r, sizeof(float));
    for (size_t j = 0; j < a->d_out; j++)
        a->params[j] = 0.0f;                          /* b = 0 */
    for (size_t k = 0; k < r; k++)
        a->params[a->d_out + k] = a->method->cfg.vera_d_init;   /* d = d_initial */
    return RL_OK;
}

static void vera_free(struct adapter *a)
{
    struct vera_priv *p = a->priv;

    if (p) {
        free(p->h);
        free(p);
    }
    a->priv = NULL;
}

static size_t vera_tensors(struct adapter *a, float *base, struct adapter_tensor *t, size_t max)
{
    if (max >= 1)
        tensor_view(&t[0], "vera_lambda_b", base, 1, a->d_out, 0, 0);
    if (max >= 2)
        tensor_view(&t[1], "vera_lambda_d", base + a->d_out, 1, a->method->cfg.r, 0, 0);
    return 2;
}

/* bB (d_out, r) = diag(b) B */
static void scale_rows_b(struct vera_shared *s, const float *b, size_t dout, size_t r)
{
    for (size_t j = 0; j < dout; j++)
        for (size_t k = 0; k < r; k++)
            s->bB[j * r + k] = b[j] * s->B[j * r + k];
}

/* x (N, d_in), y (N, d_out):
 *   h = x A^T (N, r), u = h . d, y += u (diag(b) B)^T
 * which is peft's lambda_b * linear(lambda_d * linear(x, A), B). */
static void vera_forward(struct adapter *a, const float *x, float *y, size_t N)
{
    struct vera_shared *s = a->method->priv;
    struct vera_priv *p = a->priv;
    size_t r = a->method->cfg.r, di = a->d_in, dout = a->d_out, ldA = a->method->max_in;
    const float *b = a->params, *d = a->params + dout;

    mm_branch(a, NT, TR, N, r, di, 1.0f, x, di, s->A, ldA, 0.0f, p->h, r);
    for (size_t i = 0; i < N; i++)
        for (size_t k = 0; k < r; k++)
            s->u[i * r + k] = p->h[i * r + k] * d[k];
    scale_rows_b(s, b, dout, r);
    mm_branch(a, NT, TR, N, dout, r, 1.0f, s->u, r, s->bB, r, 1.0f, y, dout);
}

/* y[n,j] = b_j sum_k B[j,k] u[n,k],  u = h . d,  h = x A^T.  With G = dy:
 *   db_j  += sum_n G[n,j] sum_k B[j,k] u[n,k] = sum_k B[j,k] M[j,k],  M = G^T u
 *   du     = G diag(b) B                      (N, r)
 *   dd_k  += sum_n du[n,k] h[n,k]
 *   dx    += (du . d) A                       (N, d_in)                       */
static void vera_backward(struct adapter *a, const float *x, const float *dy, float *dx, size_t N)
{
    struct vera_shared *s = a->method->priv;
    struct vera_priv *p = a->priv;
    size_t r = a->method->cfg.r, di = a->d_in, dout = a->d_out, ldA = a->method->max_in;
    const float *b = a->params, *d = a->params + dout;

    (void)x;
    if (!a->grads && !dx)
        return;
    if (a->grads) {
        float *db = a->grads;

        for (size_t i = 0; i < N; i++)
            for (size_t k = 0; k < r; k++)
                s->u[i * r + k] = p->h[i * r + k] * d[k];
        mm_branch(a, TR, NT, dout, r, N, 1.0f, dy, dout, s->u, r, 0.0f, s->M, r);
        for (size_t j = 0; j < dout; j++) {
            float acc = 0.0f;

            for (size_t k = 0; k < r; k++)
                acc += s->B[j * r + k] * s->M[j * r + k];
            db[j] += acc;
        }
    }
    scale_rows_b(s, b, dout, r);
    mm_branch(a, NT, NT, N, r, dout, 1.0f, dy, dout, s->bB, r, 0.0f, s->du, r);
    if (a->grads) {
        float *dd = a->grads + dout;

        for (size_t k = 0; k < r; k++) {
            double acc = 0.0;

            for (size_t i = 0; i < N; i++)
                acc += (double)s->du[i * r + k] * p->h[i * r + k];
            dd[k] += (float)acc;
        }
    }
    if (dx) {
        for (size_t i = 0; i < N; i++)
            for (size_t k = 0; k < r; k++)
                s->du[i * r + k] *= d[k];
        mm_branch(a, NT, NT, N, di, r, 1.0f, s->du, r, s->A, ldA, 1.0f, dx, di);
    }
}

/* w (d_out, d_in) += scale * (diag(b) B) (diag(d) A)  (peft's get_delta_weight) */
static void vera_add_delta(struct adapter *a, float *w, float scale)
{
    struct vera_shared *s = a->method->priv;
    size_t r = a->method->cfg.r, di = a->d_in, dout = a->d_out, ldA = a->method->max_in;
    const float *b = a->params, *d = a->params + dout;

    scale_rows_b(s, b, dout, r);
    for (size_t k = 0; k < r; k++)
        for (size_t i = 0; i < di; i++)
            s->dA[k * di + i] = d[k] * s->A[k * ldA + i];
    mm(NT, NT, dout, di, r, scale, s->bB, r, s->dA, di, 1.0f, w, di);
}

/* dW[j,i] = b_j sum_k B[j,k] d_k A[k,i].  With M = gW A^T (d_out, r) in
 * s->M:  db_j += sum_k B[j,k] d_k M[j,k],   dd_k += sum_j b_j B[j,k] M[j,k] */
static void vera_contract_m(struct adapter *a)
{
    struct vera_shared *s = a->method->priv;
    size_t r = a->method->cfg.r, dout = a->d_out;
    const float *b = a->params, *d = a->params + dout;
    float *db = a->grads, *dd = a->grads + dout;

    for (size_t j = 0; j < dout; j++) {
        float acc = 0.0f;

        for (size_t k = 0; k < r; k++)
            acc += s->B[j * r + k] * d[k] * s->M[j * r + k];
        db[j] += acc;
    }
    for (size_t k = 0; k < r; k++) {
        double acc = 0.0;

        for (size_t j = 0; j < dout; j++)
            acc += (double)b[j] * s->B[j * r + k] * s->M[j * r + k];
        dd[k] += (float)acc;
    }
}

static void vera_project_grad(struct adapter *a, const float *gw)
{
    struct vera_shared *s = a->method->priv;
    size_t r = a->method->cfg.r, di = a->d_in, dout = a->d_out, ldA = a->method->max_in;

    mm(NT, TR, dout, r, di, 1.0f, gw, di, s->A, ldA, 0.0f, s->M, r);
    vera_contract_m(a);
}

/* the same M without the weight gradient: gW A^T = G^T (x A^T) */
static void vera_project_rows(struct adapter *a, const float *x, const float *dy, size_t N)
{
    struct vera_shared *s = a->method->priv;
    struct vera_priv *p = a->priv;
    size_t r = a->method->cfg.r, di = a->d_in, dout = a->d_out, ldA = a->method->max_in;

    mm_branch(a, NT, TR, N, r, di, 1.0f, x, di, s->A, ldA, 0.0f, p->h, r);
    mm_branch(a, TR, NT, dout, r, N, 1.0f, dy, dout, p->h, r, 0.0f, s->M, r);
    vera_contract_m(a);
}

/* add_delta 2 do di r; project_rows 2 N r (di + do) */
static void vera_rows_flops(const struct adapter *a, size_t N, double *merge, double *rows)
{
    double r = (double)a->method->cfg.r, di = (double)a->d_in, dout = (double)a->d_out;

    *merge = 2.0 * dout * di * r;
    *rows = 2.0 * (double)N * r * (di + dout);
}

/* factored: forward 2Nr(di+do), backward 2Nr(2do+di);
 * merged: dW 2 do di r, gW 2 N do di, projection 2 do di r */
static void vera_flops(const struct adapter *a, size_t N, double *factored, double *merged)
{
    double r = (double)a->method->cfg.r, di = (double)a->d_in, dout = (double)a->d_out;
    double n = (double)N;

    *factored = 2.0 * n * r * (2.0 * di + 3.0 * dout);
    *merged = 2.0 * dout * di * (n + 2.0 * r) + 2.0 * dout * di;
}

const struct adapter_ops vera_ops = {
    .name           = "vera",
    .summary        = "VeRA: dW = diag(b) B diag(d) A, shared frozen A, B",
    .api_version    = ADAPTER_API_VERSION,
    .flags          = ADAPTER_F_RANK | ADAPTER_F_DROPOUT | ADAPTER_F_COUNT_MONOTONE |
                      ADAPTER_F_BF16_BRANCH,
    .default_rank   = 256,
    .n_trainable    = vera_n_trainable,
    .n_shared       = vera_n_shared,
    .max_rank       = vera_max_rank,
    .method_init    = vera_method_init,
    .method_free    = vera_method_free,
    .method_tensors = vera_method_tensors,
    .init           = vera_init,
    .free           = vera_free,
    .tensors        = vera_tensors,
    .forward        = vera_forward,
    .backward       = vera_backward,
    .add_delta      = vera_add_delta,
    .project_grad   = vera_project_grad,
    .project_rows   = vera_project_rows,
    .rows_flops     = vera_rows_flops,
    .flops          = vera_flops,
    .export_tensors = adapter_export_views,
    .import_tensors = adapter_import_views,
};
