/*
 * optim.c: AdamW, SGD, the cosine schedule and gradient clipping over one
 * flat trainable block (see optim.h).
 *
 * The float expressions mirror PyTorch 1.13's ATen CPU kernels operation by
 * operation (mul_, add_(alpha), addcmul_, sqrt, div, add_, addcdiv_), with the
 * scalars computed in double and rounded to float once, so a replay of the
 * same gradients agrees with torch to a few float ulps.
 */
#include "models/optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/parallel.h"
#include "core/status.h"
#include "models/nn.h"


/* NaN fails every comparison, so !(x >= lo) also rejects NaN */
static int check_range(const char *what, const char *name, double x, double lo, double hi,
                       int hi_open)
{
    if (!(x >= lo) || (hi_open ? !(x < hi) : !(x <= hi)))
        return rl_error_set(RL_ERR_ARG, "%s: %s = %g, expected in [%g, %g%s", what, name, x,
                            lo, hi, hi_open ? ")" : "]");
    return RL_OK;
}

/* ------------------------------------------------------------------------ */
/* AdamW                                                                      */

int adamw_init(struct adamw *opt, const struct adamw_cfg *cfg, size_t n)
{
    int rc;

    memset(opt, 0, sizeof(*opt));
    if ((rc = check_range("adamw", "lr", cfg->lr, 0.0, INFINITY, 1)) != RL_OK ||
        (rc = check_range("adamw", "beta1", cfg->beta1, 0.0, 1.0, 1)) != RL_OK ||
        (rc = check_range("adamw", "beta2", cfg->beta2, 0.0, 1.0, 1)) != RL_OK ||
        (rc = check_range("adamw", "eps", cfg->eps, 0.0, INFINITY, 1)) != RL_OK ||
        (rc = check_range("adamw", "weight_decay", cfg->weight_decay, 0.0, INFINITY, 1)) != RL_OK)
        return rc;
    opt->cfg = *cfg;
    opt->n = n;
    opt->t = 0;
    opt->m = xcalloc(n, sizeof(*opt->m));
    opt->v = xcalloc(n, sizeof(*opt->v));
    return RL_OK;
}

void adamw_step(struct adamw *opt, float *p, const float *g)
{
    const struct adamw_cfg *c = &opt->cfg;
    const size_t n = opt->n;
    float *m = opt->m, *v = opt->v;
    double t, bc1, bc2;
    float decay, b1, omb1, b2, omb2, bc2_sqrt, eps, neg_step;

    opt->t++;
    t = (double)opt->t;
    bc1 = 1.0 - pow(c->beta1, t);
    bc2 = 1.0 - pow(c->beta2, t);
    decay = (float)(1.0 - c->lr * c->weight_decay);
    b1 = (float)c->beta1;
    omb1 = (float)(1.0 - c->beta1);
    b2 = (float)c->beta2;
    omb2 = (float)(1.0 - c->beta2);
    bc2_sqrt = (float)sqrt(bc2);
    eps = (float)c->eps;
    neg_step = (float)(-(c->lr / bc1));

    PARALLEL_FOR(n)
    for (size_t i = 0; i < n; i++) {
        float gi = g[i], mi, vi, denom;

        p[i] = p[i] * decay;
        mi = m[i] * b1;
        mi = mi + omb1 * gi;
        vi = v[i] * b2;
        vi = vi + omb2 * gi * gi;
        denom = sqrtf(vi) / bc2_sqrt + eps;
        p[i] = p[i] + neg_step * mi / denom;
        m[i] = mi;
        v[i] = vi;
    }
}

void adamw_free(struct adamw *opt)
{
    free(opt->m);
    free(opt->v);
    memset(opt, 0, sizeof(*opt));
}

/* ------------------------------------------------------------------------ */
/* SGD                                                                        */

int sgd_init(struct sgd *opt, const struct sgd_cfg *cfg, size_t n)
{
    int rc;

    memset(opt, 0, sizeof(*opt));
    if ((rc = check_range("sgd", "lr", cfg->lr, 0.0, INFINITY, 1)) != RL_OK ||
        (rc = check_range("sgd", "momentum", cfg->momentum, 0.0, 1.0, 1)) != RL_OK ||
        (rc = check_range("sgd", "weight_decay", cfg->weight_decay, 0.0, INFINITY, 1)) != RL_OK)
        return rc;
    opt->cfg = *cfg;
    opt->n = n;
    opt->t = 0;
    opt->buf = cfg->momentum > 0.0 ? xcalloc(n, sizeof(*opt->buf)) : NULL;
    return RL_OK;
}

void sgd_step(struct sgd *opt, float *p, const float *g)
{
    const struct sgd_cfg *c = &opt->cfg;
    const size_t n = opt->n;
    const float wd = (float)c->weight_decay, mom = (float)c->momentum;
    const float neg_lr = (float)(-c->lr);
    const int first = opt->t == 0;
    float *buf = opt->buf;

    opt->t++;
    PARALLEL_FOR(n)
    for (size_t i = 0; i < n; i++) {
        float d = g[i];

        if (wd != 0.0f)
            d = d + wd * p[i];
        if (buf) {
            /* torch clones d into the buffer on the first step */
            buf[i] = first ? d : buf[i] * mom + d;
            d = buf[i];
        }
        p[i] = p[i] + neg_lr * d;
    }
}

void sgd_free(struct sgd *opt)
{
    free(opt->buf);
    memset(opt, 0, sizeof(*opt));
}

/* ------------------------------------------------------------------------ */
/* schedule                                                                   */

double lr_cosine_at(const struct lr_cosine *s, size_t step)
{
    size_t span;
    double q;

    if (step < s->warmup)
        return s->lr_max * (double)step / (double)s->warmup;
    if (step >= s->total)
        return s->lr_min;
    span = s->total - s->warmup;          /* > 0 here: warmup <= step < total */
    q = (double)(step - s->warmup) / (double)(span > 1 ? span : 1);
    return s->lr_min + (s->lr_max - s->lr_min) * 0.5 * (1.0 + cos(M_PI * q));
}

/* ------------------------------------------------------------------------ */
/* clipping                                                                   */

/* The sum of squares in a fixed order that does not depend on the thread
 * count: n is cut into at most NORM_CHUNKS chunks of a size fixed by n
 * alone; each chunk is summed by nn_sum_sq_dev (fixed lanes, vectorized),
 * the chunks in parallel, then the chunk sums in order. The same bits for
 * any number of threads. */
#define NORM_CHUNKS 4096
#define NORM_MIN_CHUNK ((size_t)1 << 16)

double grad_norm(const float *g, size_t n)
{
    double part[NORM_CHUNKS], s = 0.0;
    size_t chunk = (n + NORM_CHUNKS - 1) / NORM_CHUNKS, n_chunks;

    if (chunk < NORM_MIN_CHUNK)
        chunk = NORM_MIN_CHUNK;
    n_chunks = (n + chunk - 1) / chunk;
    PARALLEL_FOR(n)
    for (size_t k = 0; k < n_chunks; k++) {
        size_t lo = k * chunk, len = n - lo < chunk ? n - lo : chunk;

        part[k] = nn_sum_sq_dev(g + lo, len, 0.0);
    }
    for (size_t k = 0; k < n_chunks; k++)
        s += part[k];
    return sqrt(s);
}

double clip_grad_norm(float *g, size_t n, double max_norm)
{
    double norm = grad_norm(g, n), scale;
    float fs;

    if (!isfinite(norm))
        return norm;
    scale = max_norm / (norm + 1e-6);
    if (scale < 1.0) {
        fs = (float)scale;
        PARALLEL_FOR(n)
        for (size_t i = 0; i < n; i++)
            g[i] *= fs;
    }
    return norm;
}
