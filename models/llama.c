/*
 * llama.c: the decoder's run buffers, its forward (embedding, layers, final
 * norm), the head (logits in row chunks, log-probabilities, the
 * language-model loss and its gradient) and the backward (llama.h).
 */
#include "models/llama.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/parallel.h"
#include "core/rng.h"
#include "core/status.h"
#include "models/exp_vec.h"
#include "models/llama_nn.h"
#include "models/nn.h"

static size_t mul(size_t a, size_t b)
{
    size_t r;

    RL_ASSERT(size_mul_ok(a, b, &r));
    return r;
}

/* ------------------------------------------------------------------------ */
/* the run                                                                   */

/* floats of each part of the buffer for (max_B, max_T) */
struct run_layout {
    size_t rope, res, acts, tmp, xf, rstd, logits, gacts, dres, dxf;
};

static size_t run_layout(struct run_layout *s, const struct llama_config *c, size_t B,
                         size_t T, bool train, size_t n_acts)
{
    const size_t N = mul(B, T), NC = mul(N, c->hidden), L = c->layers;
    size_t total = 0;

    s->rope = mul(T, c->head_dim / 2);
    s->res = mul(train ? L + 1 : 2, NC);
    s->acts = mul(n_acts, llama_layer_acts_size(c, B, T));
    s->tmp = NC;
    s->xf = NC;
    s->rstd = N;
    s->logits = mul(LLAMA_HEAD_ROWS, c->vocab_size);
    s->gacts = train ? llama_layer_grad_acts_size(c, B, T) : 0;
    s->dres = train ? mul(2, NC) : 0;
    s->dxf = train ? NC : 0;
    const size_t parts[] = { 2 * s->rope, s->res, s->acts, s->tmp, s->xf, s->rstd, s->logits,
                             s->gacts, s->dres, s->dxf };
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
        RL_ASSERT(size_add_ok(total, parts[i], &total));
    return total;
}

/* layers whose activations the run keeps at once */
static size_t acts_count(const struct llama_run *r, const struct llama_config *c)
{
    return r->train && !r->recompute ? c->layers : 1;
}

/* point every view for a batch of (B, T) inside the buffer laid out for
 * (max_B, max_T): the views shrink with the batch, the offsets stay */
static void run_point(struct llama_run *r, const struct llama_config *c, size_t B, size_t T)
{
    struct run_layout s;
    const size_t NC = B * T * c->hidden;
    const size_t n_acts = acts_count(r, c);
    const size_t stride = llama_layer_acts_size(c, r->max_B, r->max_T);
    float *p = r->buf;

    run_layout(&s, c, r->max_B, r->max_T, r->train, n_acts);
    r->cos_t = p;                       p += s.rope;
    r->sin_t = p;                       p += s.rope;
    r->res = p;                         p += s.res;
    for (size_t l = 0; l < n_acts; l++)
        llama_layer_acts_point(&r->acts[l], p + l * stride, c, B, T);
    p += s.acts;
    r->tmp = p;                         p += s.tmp;
    r->xf = p;                          p += s.xf;
    r->rstd_f = p;                      p += s.rstd;
    r->logits = p;                      p += s.logits;
    if (r->train) {
        llama_layer_grad_acts_point(&r->gacts, p, c, B, T);
        p += s.gacts;
        r->dres[0] = p;
        r->dres[1] = p + NC;
        p += s.dres;
        r->dxf = p;
    }
    r->B = B;
    r->T = T;
}

static void run_init(struct llama_run *r, const struct llama_model *m, size_t max_B,
                     size_t max_T, bool train, bool recompute)
{
    struct run_layout s;

    RL_ASSERT(max_B > 0 && max_T > 0);
    memset(r, 0, sizeof(*r));
    r->max_B = max_B;
    r->max_T = max_T;
    r->train = train;
    r->recompute = recompute;
    r->n_floats = run_layout(&s, &m->cfg, max_B, max_T, train, acts_count(r, &m->cfg));
    r->buf = xcalloc_aligned(r->n_floats, sizeof(float));
    r->ids = xcalloc(mul(max_B, max_T), sizeof(int32_t));
    r->acts = xcalloc(acts_count(r, &m->cfg), sizeof(*r->acts));
    if (recompute)
        r->rngs = xcalloc(mul(m->cfg.layers, LLAMA_NUM_LINEARS), sizeof(*r->rngs));
    run_point(r, &m->cfg, max_B, max_T);
}

void llama_run_init(struct llama_run *r, const struct llama_model *m, size_t max_B,
                    size_t max_T, bool train)
{
    run_init(r, m, max_B, max_T, train, false);
}

void llama_run_init_recompute(struct llama_run *r, const struct llama_model *m, size_t max_B,
                              size_t max_T)
{
    run_init(r, m, max_B, max_T, true, true);
}

void llama_run_free(struct llama_run *r)
{
    free(r->buf);
    free(r->ids);
    free(r->acts);
    free(r->rngs);
    memset(r, 0, sizeof(*r));
}

/* the residual stream's slot l (input of layer l; slot L the last output) */
static float *res_slot(const struct llama_run *r, const struct llama_config *c, size_t l)
{
    const size_t NC = r->B * r->T * c->hidden;

    return r->res + (r->train ? l : l % 2) * NC;
}

/* ------------------------------------------------------------------------ */
/* forward                                                                   */

/* save (or, save false, restore) the random streams of a layer's adapters,
 * so a recomputed forward draws the same dropout masks */
static void rngs_copy(struct rng *saved, const struct llama_layer_adapters *ad, bool save)
{
    for (size_t i = 0; ad && i < LLAMA_NUM_LINEARS; i++) {
        struct adapter *a = ad->lin[i].a;

        if (!a)
            continue;
        if (save)
            saved[i] = a->rng;
        else
            a->rng = saved[i];
    }
}

int llama_forward(struct llama_run *r, const struct llama_model *m,
                  const struct llama_adapters *la, const int32_t *ids, size_t B, size_t T)
{
    const struct llama_config *c = &m->cfg;
    const size_t C = c->hidden, N = B * T, L = c->layers;

    if (B == 0 || T == 0 || B > r->max_B || T > r->max_T)
        return rl_error_set(RL_ERR_ARG, "llama: a batch of %zu x %zu tokens does not fit the "
                            "run's %zu x %zu", B, T, r->max_B, r->max_T);
    if (T > c->max_position)
        return rl_error_set(RL_ERR_ARG, "llama: %zu tokens exceed max_position_embeddings %zu",
                            T, c->max_position);
    for (size_t n = 0; n < N; n++)
        if (ids[n] < 0 || (size_t)ids[n] >= c->vocab_size)
            return rl_error_set(RL_ERR_ARG, "llama: token id %ld at row %zu position %zu is "
                                "outside the vocabulary (0..%zu)", (long)ids[n], n / T, n % T,
                                c->vocab_size - 1);
    run_point(r, c, B, T);
    memcpy(r->ids, ids, N * sizeof(int32_t));
    rope_table(r->cos_t, r->sin_t, m->inv_freq, 0, T, c->head_dim);
    {
        float *x0 = res_slot(r, c, 0);

        PARALLEL_FOR(N * C)
        for (size_t n = 0; n < N; n++)
            memcpy(x0 + n * C, m->embed + (size_t)ids[n] * C, C * sizeof(float));
    }
    for (size_t l = 0; l < L; l++) {
        const struct llama_layer_adapters *ad = la ? &la->layer[l] : NULL;

        if (r->recompute)
            rngs_copy(r->rngs + l * LLAMA_NUM_LINEARS, ad, true);
        llama_layer_forward(res_slot(r, c, l + 1), &r->acts[acts_count(r, c) > 1 ? l : 0],
                            r->tmp, res_slot(r, c, l), &m->layer[l], ad, c, r->cos_t, r->sin_t,
                            B, T);
    }
    rmsnorm_forward(r->xf, r->rstd_f, res_slot(r, c, L), m->norm, N, C, c->rms_norm_eps);
    return RL_OK;
}

void llama_logits(const struct llama_run *r, const struct llama_model *m, size_t row0,
                  size_t n, float *logits)
{
    const size_t C = m->cfg.hidden;

    RL_ASSERT(n <= LLAMA_HEAD_ROWS && row0 + n <= r->B * r->T);
    linear_forward(logits, r->xf + row0 * C, m->lm_head, NULL, n, C, m->cfg.vocab_size);
}

/* a row of V logits: its max and sum exp(x - max) (in double); the log
 * sum exp is max + log(sum) */
static void row_stats(const float *x, size_t V, float *mx_out, double *sum_out)
{
    float mx = x[0];
    double s = 0.0;

    for (size_t j = 1; j < V; j++)
        if (x[j] > mx)
            mx = x[j];
    for (size_t j = 0; j < V; j++)
        s += (double)exp_vec(x[j] - mx);
    *mx_out = mx;
    *sum_out = s;
}

static double row_lse(const float *x, size_t V)
{
    float mx;
    double s;

    row_stats(x, V, &mx, &s);
    return (double)mx + log(s);
}

void llama_token_logprobs(struct llama_run *r, const struct llama_model *m,
                          const int32_t *targets, float *logprob)
{
    const size_t N = r->B * r->T, V = m->cfg.vocab_size;

    for (size_t r0 = 0; r0 < N; r0 += LLAMA_HEAD_ROWS) {
        const size_t n = N - r0 < LLAMA_HEAD_ROWS ? N - r0 : LLAMA_HEAD_ROWS;

        llama_logits(r, m, r0, n, r->logits);
        PARALLEL_FOR(n * V)
        for (size_t i = 0; i < n; i++) {
            const int32_t t = targets[r0 + i];
            const float *x = r->logits + i * V;

            RL_ASSERT(t < 0 || (size_t)t < V);
            logprob[r0 + i] = t < 0 ? 0.0f : (float)((double)x[t] - row_lse(x, V));
        }
    }
}

double llama_lm_loss(struct llama_run *r, const struct llama_model *m, const int32_t *targets,
                     bool backward, struct llama_grads *g)
{
    const size_t N = r->B * r->T, V = m->cfg.vocab_size, C = m->cfg.hidden;
    size_t count = 0;
    double loss = 0.0;

    RL_ASSERT(!backward || r->train);
    for (size_t i = 0; i < N; i++)
        count += targets[i] >= 0;
    if (backward)
        memset(r->dxf, 0, N * C * sizeof(float));
    if (count == 0)
        return 0.0;
    for (size_t r0 = 0; r0 < N; r0 += LLAMA_HEAD_ROWS) {
        const size_t n = N - r0 < LLAMA_HEAD_ROWS ? N - r0 : LLAMA_HEAD_ROWS;
        const float inv = 1.0f / (float)count;
        double part[LLAMA_HEAD_ROWS];

        llama_logits(r, m, r0, n, r->logits);
        PARALLEL_FOR(n * V)
        for (size_t i = 0; i < n; i++) {
            const int32_t t = targets[r0 + i];
            float *x = r->logits + i * V;
            float mx;
            double sum;

            part[i] = 0.0;
            if (t < 0) {
                memset(x, 0, V * sizeof(float));
                continue;
            }
            RL_ASSERT((size_t)t < V);
            row_stats(x, V, &mx, &sum);
            part[i] = (double)mx + log(sum) - (double)x[t];
            if (!backward)
                continue;
            /* d loss / d logits = (softmax - onehot) / count */
            const float scale = (float)(1.0 / sum) * inv;
            for (size_t j = 0; j < V; j++)
                x[j] = exp_vec(x[j] - mx) * scale;
            x[t] -= inv;
        }
        /* in row order: the same sum on any thread count (core/parallel.h) */
        loss += parallel_sum_rows(part, n);
        if (backward)
            linear_backward(r->dxf + r0 * C, g ? g->lm_head : NULL, NULL, r->logits,
                            r->xf + r0 * C, m->lm_head, n, C, V);
    }
    return loss / (double)count;
}

/* ------------------------------------------------------------------------ */
/* backward                                                                  */

/* the lowest layer with a gradient to compute: 0 when every weight is
 * trained, else the lowest adapted layer whose adapter has gradients;
 * SIZE_MAX when nothing is trained */
static size_t lowest_trained(const struct llama_model *m, const struct llama_adapters *la,
                             const struct llama_grads *g)
{
    size_t lo = SIZE_MAX;

    if (g)
        return 0;
    for (size_t s = 0; la && s < la->n_sites; s++)
        if (la->adapters[s].grads && la->sites[s].layer < lo)
            lo = la->sites[s].layer;
    (void)m;
    return lo;
}

void llama_backward(struct llama_run *r, const struct llama_model *m,
                    const struct llama_adapters *la, struct llama_grads *g)
{
    const struct llama_config *c = &m->cfg;
    const size_t C = c->hidden, N = r->B * r->T, L = c->layers;
    const size_t lo = lowest_trained(m, la, g);
    float *dcur = r->dres[0], *dnext = r->dres[1];

    RL_ASSERT(r->train);
    if (lo == SIZE_MAX)
        return;
    memset(dcur, 0, N * C * sizeof(float));
    rmsnorm_backward(dcur, g ? g->norm : NULL, r->dxf, res_slot(r, c, L), m->norm, r->rstd_f,
                     N, C);
    for (size_t l = L; l-- > lo;) {
        const bool need_dinp = l > lo || g;
        const struct llama_layer_adapters *ad = la ? &la->layer[l] : NULL;
        struct llama_layer_acts *acts = &r->acts[acts_count(r, c) > 1 ? l : 0];
        float *swap;

        if (r->recompute && l + 1 < L) {
            /* the layer's forward again (its output into dnext, a scratch
             * here), with its adapters' streams as they were */
            rngs_copy(r->rngs + l * LLAMA_NUM_LINEARS, ad, false);
            llama_layer_forward(dnext, acts, r->tmp, res_slot(r, c, l), &m->layer[l], ad, c,
                                r->cos_t, r->sin_t, r->B, r->T);
        }
        if (need_dinp)
            memset(dnext, 0, N * C * sizeof(float));
        llama_layer_backward(need_dinp ? dnext : NULL, g ? &g->layer[l] : NULL, &r->gacts,
                             dcur, acts, res_slot(r, c, l), &m->layer[l], ad, c, r->cos_t,
                             r->sin_t, r->B, r->T);
        swap = dcur;
        dcur = dnext;
        dnext = swap;
    }
    if (g)      /* the embedding: a scatter-add, rows in order */
        for (size_t n = 0; n < N; n++) {
            float *row = g->embed + (size_t)r->ids[n] * C;

            for (size_t k = 0; k < C; k++)
                row[k] += dcur[n * C + k];
        }
}
