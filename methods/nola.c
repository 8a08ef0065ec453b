/*
 * nola.c: NoLA (Koohpayegani et al., ICLR 2024) as the RandLoRA authors'
 * vision code runs it (PaulAlbert31/RandLoRA vision_language/src/rand_lora.py,
 * param_type 'nola'; methods.md "NoLA"):
 *
 *   dW = s B A,  A = sum_i alpha_i A_i (r, d_in),  B = sum_i beta_i B_i (d_out, r)
 *   s  = alpha / r, alpha defaulting to the authors' lora_alpha 1
 *
 * Frozen random bases, one set per model, sliced per layer like RandLoRA's
 * (generate_basis: shared=False, one tensor for every layer):
 *   nola_A (k, r, max_in)    A_i[j, c] = nola_A[i, j, c], c < d_in
 *   nola_B (k, max_out, r)   B_i[o, j] = nola_B[i, o, j], o < d_out
 * dense: uniform draws (kaiming-uniform; the bound cancels), each tensor
 * divided by its unbiased std (gen_mats); sparse: ternary, then the same
 * (gen_mats_sparse). Drawn nola_A first, then nola_B, from stream 0.
 *
 * A layer trains one tensor, the authors' w_loramat:
 *   nola_coef (2, k): row 0 alpha (input side), row 1 beta (output side),
 *   both initialised to 1/k (register_param), so dW != 0 at init:
 *   dW0 = s mean_i(B_i) mean_i(A_i) (ADAPTER_F_INIT_NONZERO).
 * The number of bases k is cfg.nola_bases (finetune.py: 1024), at rank 1 in
 * the paper; 2 k floats per layer, whatever the layer's shape.
 *
 * Each forward, merge and projection first mixes the bases into A and B
 * (2 k r (d_in + d_out) FLOPs, summed in double over the bases in order),
 * then it is LoRA with those factors; the coefficient gradients contract dL/dA and
 * dL/dB with the bases:
 *   dalpha_i = <A_i, dL/dA>,  dbeta_i = <B_i, dL/dB>.
 * Per layer: the mixed A, B of the last forward and h = x A^T, dh (N, r).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/parallel.h"
#include "methods/adapter.h"
#include "methods/adapter_impl.h"

struct nola_shared {
    size_t k;
    float *A;      /* (k, r, max_in)    nola_A                     */
    float *B;      /* (k, max_out, r)   nola_B                     */
    float *Am;     /* (r, max_in)       scratch: mixed A (merge)   */
    float *Bm;     /* (max_out, r)      scratch: mixed B (merge)   */
    float *dA;     /* (r, max_in)       scratch: dL/dA             */
    float *dB;     /* (max_out, r)      scratch: dL/dB             */
};

struct nola_priv {
    float  s;
    float *Am;     /* (r, d_in)    A of the last forward */
    float *Bm;     /* (d_out, r)   B of the last forward */
    float *h;      /* (max_rows, r) x A^T                */
    float *dh;     /* (max_rows, r) backward scratch     */
};

float nola_scaling(const struct adapter_cfg *cfg)
{
    return (cfg->alpha > 0.0f ? cfg->alpha : 1.0f) / (float)cfg->r;
}

/* 2 k per layer: the two rows of coefficients */
static size_t nola_n_trainable(const struct adapter_cfg *cfg, size_t d_out, size_t d_in)
{
    (void)d_out;
    (void)d_in;
    return 2 * cfg->nola_bases;
}

static size_t nola_n_shared(const struct adapter_cfg *cfg, size_t max_out, size_t max_in)
{
    return cfg->nola_bases * cfg->r * (max_in + max_out);
}

static size_t nola_max_rank(const struct adapter_cfg *cfg, size_t d_out, size_t d_in)
{
    size_t d = d_out < d_in ? d_out : d_in;

    return cfg->r < d ? cfg->r : d;
}

static void fill_basis(struct rng *g, float *x, size_t n, const struct adapter_method *m)
{
    if (m->cfg.basis == ADAPTER_BASIS_DENSE) {
        rng_fill_uniform(g, x, n, -1.0f, 1.0f);
    } else {
        size_t lo = m->max_out < m->max_in ? m->max_out : m->max_in;
        float s = m->cfg.basis == ADAPTER_BASIS_SPARSE ? 3.0f : sqrtf((float)lo);

        for (size_t i = 0; i < n; i++)
            x[i] = adapter_ternary(rng_uniform(g), s);
    }
    adapter_normalize_std(x, n);
}

static int nola_method_init(struct adapter_method *m)
{
    struct nola_shared *sh = xcalloc(1, sizeof(*sh));
    size_t r = m->cfg.r, k = m->cfg.nola_bases, nA, nB;
    struct rng g;

    m->priv = sh;
    sh->k = k;
    if (!size_mul_ok(k * r, m->max_in + m->max_out, &nA) || nA > ((size_t)1 << 34))
        return rl_error_set(RL_ERR_ARG, "nola: %zu bases of rank %zu for %zux%zu layers are "
                            "too many", k, r, m->max_out, m->max_in);
    nA = k * r * m->max_in;
    nB = k * m->max_out * r;
    sh->A = xmalloc_array(nA, sizeof(float));
    sh->B = xmalloc_array(nB, sizeof(float));
    sh->Am = xmalloc_array(r * m->max_in, sizeof(float));
    sh->dA = xmalloc_array(r * m->max_in, sizeof(float));
    sh->Bm = xmalloc_array(m->max_out * r, sizeof(float));
    sh->dB = xmalloc_array(m->max_out * r, sizeof(float));
    rng_split(&g, &m->rng, 0);
    fill_basis(&g, sh->A, nA, m);
    fill_basis(&g, sh->B, nB, m);
    return RL_OK;
}

static void nola_method_free(struct adapter_method *m)
{
    struct nola_shared *sh = m->priv;

    if (sh) {
        free(sh->A);
        free(sh->B);
        free(sh->Am);
        free(sh->Bm);
        free(sh->dA);
        free(sh->dB);
        free(sh);
    }
    m->priv = NULL;
}

static size_t nola_method_tensors(struct adapter_method *m, struct adapter_tensor *t, size_t max)
{
    struct nola_shared *sh = m->priv;
    size_t r = m->cfg.r;

    if (max >= 1)
        tensor_view(&t[0], "nola_A", sh->A, 3, sh->k, r, m->max_in);
    if (max >= 2)
        tensor_view(&t[1], "nola_B", sh->B, 3, sh->k, m->max_out, r);
    return 2;
}

static int nola_init(struct adapter *a)
{
    const struct adapter_cfg *cfg = &a->method->cfg;
    struct nola_priv *p = xcalloc(1, sizeof(*p));
    size_t r = cfg->r, k = cfg->nola_bases;

    a->priv = p;
    p->s = nola_scaling(cfg);
    p->Am = xmalloc_array(r * a->d_in, sizeof(float));
    p->Bm = xmalloc_array(a->d_out * r, sizeof(float));
    p->h = xmalloc_array(a->method->max_rows * r, sizeof(float));
    p->dh = xmalloc_array(a->method->max_rows * r, sizeof(float));
    for (size_t i = 0; i < 2 * k; i++)
        a->params[i] = 1.0f / (float)k;
    return RL_OK;
}

static void nola_free(struct adapter *a)
{
    struct nola_priv *p = a->priv;

    if (p) {
        free(p->Am);
        free(p->Bm);
        free(p->h);
        free(p->dh);
        free(p);
    }
    a->priv = NULL;
}

static size_t nola_tensors(struct adapter *a, float *base, struct adapter_tensor *t, size_t max)
{
    if (max >= 1)
        tensor_view(&t[0], "nola_coef", base, 2, 2, a->method->cfg.nola_bases, 0);
    return 1;
}

#define NOLA_COLS 1024 /* columns of a combination per parallel iteration */
#define NOLA_LANES 8   /* running sums of a dot product (one AVX-512 vector) */

/* y (n) = sum_i c_i M[i, 0..n) over the k rows of M (stride ld), summed in
 * double in the order i = 0..k-1 for every element, column blocks split
 * between threads. (OpenBLAS's threaded gemv split this sum between its
 * threads, so cblas_sgemv's last bits depended on the thread count:
 * core/parallel.h.) */
static void combine_rows(float *y, const float *M, size_t ld, const float *c, size_t k,
                         size_t n)
{
    PARALLEL_FOR(k * n)
    for (size_t j0 = 0; j0 < n; j0 += NOLA_COLS) {
        const size_t nj = n - j0 < NOLA_COLS ? n - j0 : NOLA_COLS;
        double acc[NOLA_COLS];

        for (size_t j = 0; j < nj; j++)
            acc[j] = 0.0;
        for (size_t i = 0; i < k; i++) {
            const double ci = c[i];
            const float *row = M + i * ld + j0;

            for (size_t j = 0; j < nj; j++)
                acc[j] += ci * (double)row[j];
        }
        for (size_t j = 0; j < nj; j++)
            y[j0 + j] = (float)acc[j];
    }
}

/* A (r, d_in) = sum_i alpha_i A_i and B (d_out, r) = sum_i beta_i B_i from
 * the coefficients coef (2, k), the bases seen as (k, r max_in) and
 * (k, max_out r) matrices: row j of A at a time (its first d_in columns),
 * B's first d_out rows at once */
static void mix(const struct adapter *a, const float *coef, float *Am, float *Bm)
{
    const struct nola_shared *sh = a->method->priv;
    size_t r = a->method->cfg.r, k = sh->k, di = a->d_in, dout = a->d_out;
    size_t lda = r * a->method->max_in, ldb = a->method->max_out * r;

    for (size_t j = 0; j < r; j++)
        combine_rows(Am + j * di, sh->A + j * a->method->max_in, lda, coef, k, di);
    combine_rows(Bm, sh->B, ldb, coef + k, k, dout * r);
}

/* y[i] += <M[i, 0..n), v> for the k rows of M (stride ld): each dot product
 * in NOLA_LANES running sums in double added in a fixed order, rows split
 * between threads (cblas_sgemv's last bits depended on the thread count) */
static void dot_rows(float *y, const float *M, size_t ld, const float *v, size_t k, size_t n)
{
    PARALLEL_FOR(k * n)
    for (size_t i = 0; i < k; i++) {
        const float *row = M + i * ld;
        double lane[NOLA_LANES] = { 0 }, s = 0.0;
        size_t j = 0;

        for (; j + NOLA_LANES <= n; j += NOLA_LANES)
            for (size_t l = 0; l < NOLA_LANES; l++)
                lane[l] += (double)row[j + l] * (double)v[j + l];
        for (; j < n; j++)
            s += (double)row[j] * (double)v[j];
        for (size_t l = 0; l < NOLA_LANES; l++)
            s += lane[l];
        y[i] = (float)((double)y[i] + s);
    }
}

/* grads (2, k) += the bases contracted with dA (r, d_in) and dB (d_out, r):
 * dalpha_i = <A_i, dA>, dbeta_i = <B_i, dB> */
static void contract(const struct adapter *a, const float *dA, const float *dB, float *grads)
{
    const struct nola_shared *sh = a->method->priv;
    size_t r = a->method->cfg.r, k = sh->k, di = a->d_in, dout = a->d_out;
    size_t lda = r * a->method->max_in, ldb = a->method->max_out * r;

    for (size_t j = 0; j < r; j++)
        dot_rows(grads, sh->A + j * a->method->max_in, lda, dA + j * di, k, di);
    dot_rows(grads + k, sh->B, ldb, dB, k, dout * r);
}

/* x (N, d_in), y (N, d_out): A, B mixed; h = x A^T (N, r); y += s h B^T */
static void nola_forward(struct adapter *a, const float *x, float *y, size_t N)
{
    struct nola_priv *p = a->priv;
    size_t r = a->method->cfg.r, di = a->d_in, dout = a->d_out;

    mix(a, a->params, p->Am, p->Bm);
    mm_branch(a, NT, TR, N, r, di, 1.0f, x, di, p->Am, di, 0.0f, p->h, r);
    mm_branch(a, NT, TR, N, dout, r, p->s, p->h, r, p->Bm, r, 1.0f, y, dout);
}

/* LoRA's backward with the mixed factors of the forward (G = dy):
 *   dB = s G^T h,  dh = s G B,  dA = dh^T x,  dx += dh A;
 * then the contraction into dalpha, dbeta */
static void nola_backward(struct adapter *a, const float *x, const float *dy, float *dx, size_t N)
{
    struct nola_shared *sh = a->method->priv;
    struct nola_priv *p = a->priv;
    size_t r = a->method->cfg.r, di = a->d_in, dout = a->d_out;

    if (!a->grads && !dx)
        return;
    mm_branch(a, NT, NT, N, r, dout, p->s, dy, dout, p->Bm, r, 0.0f, p->dh, r);
    if (a->grads) {
        mm_branch(a, TR, NT, dout, r, N, p->s, dy, dout, p->h, r, 0.0f, sh->dB, r);
        mm_branch(a, TR, NT, r, di, N, 1.0f, p->dh, r, x, di, 0.0f, sh->dA, di);
        contract(a, sh->dA, sh->dB, a->grads);
    }
    if (dx)
        mm_branch(a, NT, NT, N, di, r, 1.0f, p->dh, r, p->Am, di, 1.0f, dx, di);
}

/* w (d_out, d_in) += scale * s B A (mixed in the shared scratch, so the
 * layer's forward state is kept) */
static void nola_add_delta(struct adapter *a, float *w, float scale)
{
    struct nola_shared *sh = a->method->priv;
    struct nola_priv *p = a->priv;
    size_t r = a->method->cfg.r, di = a->d_in, dout = a->d_out;

    mix(a, a->params, sh->Am, sh->Bm);
    mm(NT, NT, dout, di, r, scale * p->s, sh->Bm, r, sh->Am, di, 1.0f, w, di);
}

/* dW = s B A  =>  dB = s gW A^T (d_out, r),  dA = s B^T gW (r, d_in) */
static void nola_project_grad(struct adapter *a, const float *gw)
{
    struct nola_shared *sh = a->method->priv;
    struct nola_priv *p = a->priv;
    size_t r = a->method->cfg.r, di = a->d_in, dout = a->d_out;

    mix(a, a->params, sh->Am, sh->Bm);
    mm(NT, TR, dout, r, di, p->s, gw, di, sh->Am, di, 0.0f, sh->dB, r);
    mm(TR, NT, r, di, dout, p->s, sh->Bm, r, gw, di, 0.0f, sh->dA, di);
    contract(a, sh->dA, sh->dB, a->grads);
}

/* mixing 2 k r (di + do) once per call (and the contraction as much);
 * factored: mixing + 6 N r (di + do) + contraction;
 * merged: 2 mixings, dW 2 do di r, gW 2 N do di, projection 4 do di r,
 * contraction */
static void nola_flops(const struct adapter *a, size_t N, double *factored, double *merged)
{
    double r = (double)a->method->cfg.r, di = (double)a->d_in, dout = (double)a->d_out;
    double k = (double)a->method->cfg.nola_bases, mixing = 2.0 * k * r * (di + dout);

    *factored = 2.0 * mixing + 6.0 * (double)N * r * (di + dout);
    *merged = 3.0 * mixing + 2.0 * dout * di * ((double)N + 3.0 * r);
}

const struct adapter_ops nola_ops = {
    .name           = "nola",
    .summary        = "NoLA: dW = s B A, A = sum alpha_i A_i, B = sum beta_i B_i, "
                      "frozen random bases, coefficients (2, k) trained",
    .api_version    = ADAPTER_API_VERSION,
    .flags          = ADAPTER_F_RANK | ADAPTER_F_DROPOUT | ADAPTER_F_INIT_NONZERO |
                      ADAPTER_F_BUDGET_BASES | ADAPTER_F_BF16_BRANCH,
    .default_rank   = 1,
    .n_trainable    = nola_n_trainable,
    .n_shared       = nola_n_shared,
    .max_rank       = nola_max_rank,
    .method_init    = nola_method_init,
    .method_free    = nola_method_free,
    .method_tensors = nola_method_tensors,
    .init           = nola_init,
    .free           = nola_free,
    .tensors        = nola_tensors,
    .forward        = nola_forward,
    .backward       = nola_backward,
    .add_delta      = nola_add_delta,
    .project_grad   = nola_project_grad,
    .flops          = nola_flops,
    .export_tensors = adapter_export_views,
    .import_tensors = adapter_import_views,
};
