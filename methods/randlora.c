/*
 * randlora.c: RandLoRA (Albert et al. 2025) as peft's randlora/{layer,model}.py,
 * with the paper's vision-code variants as settings (methods.md 3.2-3.8).
 *
 * Shared frozen bases, one set per model (L_out, L_in the largest layer dims,
 * min_dim = min(L_out, L_in), max_dim = max(...), n_g = n_rule(min_dim, r)):
 *   randlora_A (r, 1, min_dim)       stored (r, min_dim)
 *   randlora_B (max_dim, n_g, r)     stored row-major as that
 * dense: uniform draws, each tensor divided by its (unbiased) std; sparse:
 * ternary {-1, 0, +1} with P(+-1) = 1/(2s) each (s = 3, or sqrt(min_dim) for
 * very sparse), then divided by its std. Drawn A first, then B.
 *
 * A layer (d_out, d_in), d = min, D = max, n = n_rule(d, r), trains
 *   randlora_lambda  Lambda (r, n)      params[0 .. r n)
 *   randlora_gamma   Gamma  (n, d)      params[r n .. r n + n d)
 * and uses the slices (peft's get_scaled_bases)
 *   P (D, n r):  P[i, b r + k]     = randlora_B[i, b, k]    (row stride n_g r)
 *   Q (n r, d):  Q[k n + b, j]     = Lambda[k,b] A[k,j] Gamma[b,j]
 * (columns of P are basis-major, rows of Q rank-major: peft's pairing, 3.3).
 *   case 1, d_in <= d_out:  dW = s P Q          h = x Q^T, y += s h P^T
 *   case 2, d_out <  d_in:  dW = s (P Q)^T      h = x P,   y += s h Q
 *
 * Memory (the C analogue of peft's UniqueBaseGrad, 3.4-3.5): Q and dQ, each
 * r n d ~ d^2 floats, are never kept per layer. They are rebuilt from A,
 * Lambda, Gamma in the method's shared scratch (sized once for the largest
 * layer) whenever a forward, backward, merge or projection needs them.
 * Per layer only case 2 keeps h = x P (N, n r) from the forward.
 */
#include <math.h>
#include <stdlib.h>

#include "core/alloc.h"
#include "methods/adapter.h"
#include "methods/adapter_impl.h"

struct randlora_shared {
    size_t min_dim, max_dim, n_g;
    float *A;      /* (r, min_dim)            randlora_A             */
    float *B;      /* (max_dim, n_g, r)       randlora_B             */
    float *Q;      /* (n_g r, min_dim)        scratch: Q             */
    float *dQ;     /* (n_g r, min_dim)        scratch: dL/dQ         */
    float *hs;     /* (max_rows, n_g r)       scratch: case-1 h, dh  */
};

struct randlora_priv {
    size_t n;      /* bases of this layer                 */
    float  s;      /* scaling                             */
    float *h;      /* (max_rows, n r), case 2 only: x P   */
};

static size_t n_rule(const struct adapter_cfg *cfg, size_t d)
{
    size_t r = cfg->r;

    if (cfg->n_rule == ADAPTER_N_FLOOR_PLUS_ONE) {
        size_t n = d / r + 1;       /* vision code: min(1000, floor(d/r) + 1) */

        return n < 1000 ? n : 1000;
    }
    return (d + r - 1) / r;         /* peft: ceil(d/r), "Full rank" */
}

size_t randlora_n_bases(const struct adapter_cfg *cfg, size_t d_out, size_t d_in)
{
    return n_rule(cfg, d_out < d_in ? d_out : d_in);
}

float randlora_scaling(const struct adapter_cfg *cfg, size_t n)
{
    float r = (float)cfg->r, alpha = cfg->alpha > 0.0f ? cfg->alpha : 20.0f * r;

    switch (cfg->scaling) {
    case ADAPTER_SCALE_ALPHA_R_SQRT_N:
        return alpha / (r * sqrtf((float)n));
    case ADAPTER_SCALE_ONE_OVER_R:
        return 1.0f / r;
    case ADAPTER_SCALE_TEN_OVER_R:
        return 10.0f / r;
    case ADAPTER_SCALE_ALPHA_R:
    default:
        return alpha / r;
    }
}

/* n (r + d) per layer (methods.md 3.7) */
static size_t randlora_n_trainable(const struct adapter_cfg *cfg, size_t d_out, size_t d_in)
{
    size_t d = d_out < d_in ? d_out : d_in;

    return n_rule(cfg, d) * (cfg->r + d);
}

static size_t randlora_n_shared(const struct adapter_cfg *cfg, size_t max_out, size_t max_in)
{
    size_t lo = max_out < max_in ? max_out : max_in, hi = max_out < max_in ? max_in : max_out;

    return cfg->r * lo + hi * n_rule(cfg, lo) * cfg->r;
}

static size_t randlora_max_rank(const struct adapter_cfg *cfg, size_t d_out, size_t d_in)
{
    size_t d = d_out < d_in ? d_out : d_in, nr = n_rule(cfg, d) * cfg->r;

    return nr < d ? nr : d;
}

static int randlora_method_init(struct adapter_method *m)
{
    struct randlora_shared *sh = xcalloc(1, sizeof(*sh));
    size_t r = m->cfg.r, nA, nB, nQ;
    struct rng g;

    m->priv = sh;
    sh->min_dim = m->max_out < m->max_in ? m->max_out : m->max_in;
    sh->max_dim = m->max_out < m->max_in ? m->max_in : m->max_out;
    sh->n_g = n_rule(&m->cfg, sh->min_dim);
    nA = r * sh->min_dim;
    nB = sh->max_dim * sh->n_g * r;
    nQ = sh->n_g * r * sh->min_dim;
    sh->A = xmalloc_array(nA, sizeof(float));
    sh->B = xmalloc_array(nB, sizeof(float));
    sh->Q = xmalloc_array(nQ, sizeof(float));
    sh->dQ = xmalloc_array(nQ, sizeof(float));
    sh->hs = xmalloc_array(m->max_rows * sh->n_g * r, sizeof(float));

    /* stream 0 of the root: the shared bases, A first, then B (as peft) */
    rng_split(&g, &m->rng, 0);
    if (m->cfg.basis == ADAPTER_BASIS_DENSE) {
        /* kaiming-uniform; the bound cancels in the division by the std */
        rng_fill_uniform(&g, sh->A, nA, -1.0f, 1.0f);
        /* peft draws B as n_g pieces (max_dim, 1, r) concatenated on dim 1 */
        for (size_t b = 0; b < sh->n_g; b++)
            for (size_t i = 0; i < sh->max_dim; i++)
                for (size_t k = 0; k < r; k++)
                    sh->B[(i * sh->n_g + b) * r + k] = rng_uniform_range(&g, -1.0f, 1.0f);
    } else {
        float s = m->cfg.basis == ADAPTER_BASIS_SPARSE ? 3.0f : sqrtf((float)sh->min_dim);

        for (size_t i = 0; i < nA; i++)
            sh->A[i] = adapter_ternary(rng_uniform(&g), s);
        for (size_t i = 0; i < nB; i++)
            sh->B[i] = adapter_ternary(rng_uniform(&g), s);
    }
    adapter_normalize_std(sh->A, nA);
    adapter_normalize_std(sh->B, nB);
    return RL_OK;
}

static void randlora_method_free(struct adapter_method *m)
{
    struct randlora_shared *sh = m->priv;

    if (sh) {
        free(sh->A);
        free(sh->B);
        free(sh->Q);
        free(sh->dQ);
        free(sh->hs);
        free(sh);
    }
    m->priv = NULL;
}

static size_t randlora_method_tensors(struct adapter_method *m, struct adapter_tensor *t,
                                      size_t max)
{
    struct randlora_shared *sh = m->priv;

    if (max >= 1)
        tensor_view(&t[0], "randlora_A", sh->A, 3, m->cfg.r, 1, sh->min_dim);
    if (max >= 2)
        tensor_view(&t[1], "randlora_B", sh->B, 3, sh->max_dim, sh->n_g, m->cfg.r);
    return 2;
}

static int randlora_init(struct adapter *a)
{
    const struct adapter_cfg *cfg = &a->method->cfg;
    struct randlora_priv *p = xcalloc(1, sizeof(*p));
    size_t r = cfg->r, d = a->d_out < a->d_in ? a->d_out : a->d_in, n;
    float lam, gam;

    a->priv = p;
    n = p->n = n_rule(cfg, d);
    p->s = randlora_scaling(cfg, n);
    if (a->d_out < a->d_in)
        p->h = xmalloc_array(a->method->max_rows * n * r, sizeof(float));
    lam = cfg->lambda_init == ADAPTER_LAMBDA_INV_MAX_N_R ? 1.0f / (float)(n > r ? n : r) : 0.0f;
    gam = cfg->gamma_init == ADAPTER_GAMMA_ZERO ? 0.0f : 1.0f / (float)(n > d ? n : d);
    for (size_t i = 0; i < r * n; i++)
        a->params[i] = lam;
    for (size_t i = 0; i < n * d; i++)
        a->params[r * n + i] = gam;
    return RL_OK;
}

static void randlora_free(struct adapter *a)
{
    struct randlora_priv *p = a->priv;

    if (p) {
        free(p->h);
        free(p);
    }
    a->priv = NULL;
}

static size_t randlora_tensors(struct adapter *a, float *base, struct adapter_tensor *t,
                               size_t max)
{
    struct randlora_priv *p = a->priv;
    size_t r = a->method->cfg.r, d = a->d_out < a->d_in ? a->d_out : a->d_in;

    if (max >= 1)
        tensor_view(&t[0], "randlora_lambda", base, 2, r, p->n, 0);
    if (max >= 2)
        tensor_view(&t[1], "randlora_gamma", base + r * p->n, 2, p->n, d, 0);
    return 2;
}

/* the per-call geometry of a layer */
struct geo {
    size_t r, n, nr, d, D, ldA, ldP;
    bool case1;                 /* d_in <= d_out */
    const float *A, *P, *lam, *gam;
};

static struct geo geometry(const struct adapter *a)
{
    const struct randlora_shared *sh = a->method->priv;
    const struct randlora_priv *p = a->priv;
    struct geo g;

    g.r = a->method->cfg.r;
    g.n = p->n;
    g.nr = g.n * g.r;
    g.case1 = a->d_in <= a->d_out;
    g.d = g.case1 ? a->d_in : a->d_out;
    g.D = g.case1 ? a->d_out : a->d_in;
    g.ldA = sh->min_dim;
    g.ldP = sh->n_g * g.r;
    g.A = sh->A;                /* A[k, j] = A[k * ldA + j], j < d          */
    g.P = sh->B;                /* P[i, c] = B[i * ldP + c], c < n r, i < D */
    g.lam = a->params;
    g.gam = a->params + g.r * g.n;
    return g;
}

/* Q (n r, d): Q[k n + b, j] = Lambda[k,b] A[k,j] Gamma[b,j]  (n r d multiplies) */
static void build_q(const struct geo *g, float *Q)
{
    for (size_t k = 0; k < g->r; k++)
        for (size_t b = 0; b < g->n; b++) {
            float l = g->lam[k * g->n + b];
            const float *ak = g->A + k * g->ldA, *gb = g->gam + b * g->d;
            float *q = Q + (k * g->n + b) * g->d;

            for (size_t j = 0; j < g->d; j++)
                q[j] = l * ak[j] * gb[j];
        }
}

/* From dQ (n r, d) = dL/dQ to the diagonals (peft's UniqueBaseGrad einsums):
 *   dLambda[k,b] += sum_j dQ[k n + b, j] A[k,j] Gamma[b,j]
 *   dGamma[b,j]  += sum_k dQ[k n + b, j] A[k,j] Lambda[k,b]                  */
static void contract_dq(const struct geo *g, const float *dQ, float *dlam, float *dgam)
{
    for (size_t k = 0; k < g->r; k++)
        for (size_t b = 0; b < g->n; b++) {
            float l = g->lam[k * g->n + b];
            const float *ak = g->A + k * g->ldA, *gb = g->gam + b * g->d;
            const float *dq = dQ + (k * g->n + b) * g->d;
            float *dgb = dgam + b * g->d;
            double acc = 0.0;

            for (size_t j = 0; j < g->d; j++) {
                float t = dq[j] * ak[j];

                acc += (double)t * gb[j];
                dgb[j] += t * l;
            }
            dlam[k * g->n + b] += (float)acc;
        }
}

/* x (N, d_in), y (N, d_out).
 * case 1: h = x Q^T (N, n r) in scratch; y += s h P^T
 * case 2: h = x P   (N, n r) kept;       y += s h Q                          */
static void randlora_forward(struct adapter *a, const float *x, float *y, size_t N)
{
    struct randlora_shared *sh = a->method->priv;
    struct randlora_priv *p = a->priv;
    struct geo g = geometry(a);

    build_q(&g, sh->Q);
    if (g.case1) {
        mm_branch(a, NT, TR, N, g.nr, g.d, 1.0f, x, a->d_in, sh->Q, g.d, 0.0f, sh->hs, g.nr);
        mm_branch(a, NT, TR, N, g.D, g.nr, p->s, sh->hs, g.nr, g.P, g.ldP, 1.0f, y, a->d_out);
    } else {
        mm_branch(a, NT, NT, N, g.nr, g.D, 1.0f, x, a->d_in, g.P, g.ldP, 0.0f, p->h, g.nr);
        mm_branch(a, NT, NT, N, g.d, g.nr, p->s, p->h, g.nr, sh->Q, g.d, 1.0f, y, a->d_out);
    }
}

/* G = dy (N, d_out) (methods.md 3.5).
 * case 1 (y = s (x Q^T) P^T):  dh = s G P (N, n r);  dQ = dh^T x (n r, d);
 *                              dx += dh Q
 * case 2 (y = s (x P) Q):      dQ = s h^T G (n r, d);  dh = s G Q^T;
 *                              dx += dh P^T
 * then the dQ contraction into dLambda, dGamma. Q is rebuilt, not kept.     */
static void randlora_backward(struct adapter *a, const float *x, const float *dy, float *dx,
                              size_t N)
{
    struct randlora_shared *sh = a->method->priv;
    struct randlora_priv *p = a->priv;
    struct geo g = geometry(a);

    if (!a->grads && !dx)
        return;
    if (g.case1) {
        mm_branch(a, NT, NT, N, g.nr, g.D, p->s, dy, a->d_out, g.P, g.ldP, 0.0f, sh->hs, g.nr);
        if (a->grads) {
            mm_branch(a, TR, NT, g.nr, g.d, N, 1.0f, sh->hs, g.nr, x, a->d_in, 0.0f, sh->dQ, g.d);
            contract_dq(&g, sh->dQ, a->grads, a->grads + g.r * g.n);
        }
        if (dx) {
            build_q(&g, sh->Q);
            mm_branch(a, NT, NT, N, g.d, g.nr, 1.0f, sh->hs, g.nr, sh->Q, g.d, 1.0f, dx, a->d_in);
        }
    } else {
        if (a->grads) {
            mm_branch(a, TR, NT, g.nr, g.d, N, p->s, p->h, g.nr, dy, a->d_out, 0.0f, sh->dQ, g.d);
            contract_dq(&g, sh->dQ, a->grads, a->grads + g.r * g.n);
        }
        if (dx) {
            build_q(&g, sh->Q);
            mm_branch(a, NT, TR, N, g.nr, g.d, p->s, dy, a->d_out, sh->Q, g.d, 0.0f, sh->hs, g.nr);
            mm_branch(a, NT, TR, N, g.D, g.nr, 1.0f, sh->hs, g.nr, g.P, g.ldP, 1.0f, dx, a->d_in);
        }
    }
}

/* w (d_out, d_in) += scale * dW;  case 1: dW = s P Q,  case 2: dW = s Q^T P^T */
static void randlora_add_delta(struct adapter *a, float *w, float scale)
{
    struct randlora_shared *sh = a->method->priv;
    struct randlora_priv *p = a->priv;
    struct geo g = geometry(a);

    build_q(&g, sh->Q);
    if (g.case1)
        mm(NT, NT, g.D, g.d, g.nr, scale * p->s, g.P, g.ldP, sh->Q, g.d, 1.0f, w, a->d_in);
    else
        mm(TR, TR, g.d, g.D, g.nr, scale * p->s, sh->Q, g.d, g.P, g.ldP, 1.0f, w, a->d_in);
}

/* w += dW(params) - dW(old) = s P (Q - Q_old) (case 1; case 2 transposed):
 * one weight-sized GEMM where an unmerge and a merge take two */
static void randlora_add_delta_change(struct adapter *a, float *w, const float *old)
{
    struct randlora_shared *sh = a->method->priv;
    struct randlora_priv *p = a->priv;
    struct geo g = geometry(a), go = g;
    const size_t nq = g.nr * g.d;

    go.lam = old;
    go.gam = old + g.r * g.n;
    build_q(&g, sh->Q);
    build_q(&go, sh->dQ);
    for (size_t i = 0; i < nq; i++)
        sh->Q[i] -= sh->dQ[i];
    if (g.case1)
        mm(NT, NT, g.D, g.d, g.nr, p->s, g.P, g.ldP, sh->Q, g.d, 1.0f, w, a->d_in);
    else
        mm(TR, TR, g.d, g.D, g.nr, p->s, sh->Q, g.d, g.P, g.ldP, 1.0f, w, a->d_in);
}

/* gW = dL/d(dW) (d_out, d_in).
 * case 1: dW = s P Q        => dQ = s P^T gW     (n r, d)
 * case 2: dW[j,i] = s sum_c Q[c,j] P[i,c] => dQ = s P^T gW^T  (n r, d)
 * then the same contraction as the backward.                                 */
static void randlora_project_grad(struct adapter *a, const float *gw)
{
    struct randlora_shared *sh = a->method->priv;
    struct randlora_priv *p = a->priv;
    struct geo g = geometry(a);

    if (g.case1)
        mm(TR, NT, g.nr, g.d, g.D, p->s, g.P, g.ldP, gw, a->d_in, 0.0f, sh->dQ, g.d);
    else
        mm(TR, TR, g.nr, g.d, g.D, p->s, g.P, g.ldP, gw, a->d_in, 0.0f, sh->dQ, g.d);
    contract_dq(&g, sh->dQ, a->grads, a->grads + g.r * g.n);
}

/* the merged path's parameter gradients straight from x and G = dy: the
 * factored backward without dx (the merged weight gives that); case 2
 * first needs the forward's h = x P (N, n r), which the merged forward
 * did not form */
static void randlora_project_rows(struct adapter *a, const float *x, const float *dy, size_t N)
{
    struct randlora_priv *p = a->priv;
    struct geo g = geometry(a);

    if (!g.case1)
        mm_branch(a, NT, NT, N, g.nr, g.D, 1.0f, x, a->d_in, g.P, g.ldP, 0.0f, p->h, g.nr);
    randlora_backward(a, x, dy, NULL, N);
}

/* add_delta 2 D d nr (plus the Q build); project_rows 2 N nr (D + d) plus
 * the contraction */
static void randlora_rows_flops(const struct adapter *a, size_t N, double *merge, double *rows)
{
    struct geo g = geometry(a);
    double nr = (double)g.nr, d = (double)g.d, D = (double)g.D;

    *merge = 2.0 * D * d * nr + nr * d;
    *rows = 2.0 * (double)N * nr * (D + d) + 4.0 * nr * d;
}

/* factored: forward 2N nr (d + D), backward 2N nr (D + 2d), plus Q builds
 * and the contraction (~5 nr d);
 * merged: dW 2 D d nr, gW 2 N D d, projection 2 D d nr, contraction */
static void randlora_flops(const struct adapter *a, size_t N, double *factored, double *merged)
{
    struct geo g = geometry(a);
    double nr = (double)g.nr, d = (double)g.d, D = (double)g.D, n = (double)N;

    *factored = 2.0 * n * nr * (2.0 * D + 3.0 * d) + 5.0 * nr * d;
    *merged = 2.0 * D * d * (n + 2.0 * nr) + 5.0 * nr * d + 2.0 * D * d;
}

const struct adapter_ops randlora_ops = {
    .name           = "randlora",
    .summary        = "RandLoRA: dW = s sum_i B_i Lambda_i A Gamma_i, shared random bases",
    .api_version    = ADAPTER_API_VERSION,
    .flags          = ADAPTER_F_RANK | ADAPTER_F_DROPOUT | ADAPTER_F_RANK_LE_DIMS |
                      ADAPTER_F_BF16_BRANCH,
    .default_rank   = 32,
    .n_trainable    = randlora_n_trainable,
    .n_shared       = randlora_n_shared,
    .max_rank       = randlora_max_rank,
    .method_init    = randlora_method_init,
    .method_free    = randlora_method_free,
    .method_tensors = randlora_method_tensors,
    .init           = randlora_init,
    .free           = randlora_free,
    .tensors        = randlora_tensors,
    .forward        = randlora_forward,
    .backward       = randlora_backward,
    .add_delta      = randlora_add_delta,
    .project_grad   = randlora_project_grad,
    .add_delta_change = randlora_add_delta_change,
    .project_rows   = randlora_project_rows,
    .rows_flops     = randlora_rows_flops,
    .flops          = randlora_flops,
    .export_tensors = adapter_export_views,
    .import_tensors = adapter_import_views,
};
