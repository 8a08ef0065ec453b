/*
 * head.c: the linear classification head (models/head.h) on the nn.h
 * kernels: linear, softmax cross-entropy.
 */
#include "models/head.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/rng.h"
#include "core/status.h"
#include "models/nn.h"

void linear_head_init(struct linear_head *h, size_t in, size_t out, size_t max_N, uint64_t seed)
{
    const float bound = (float)(1.0 / sqrt((double)in));
    struct rng r;
    size_t n;

    RL_ASSERT(in > 0 && out > 0 && max_N > 0);
    memset(h, 0, sizeof(*h));
    h->in = in;
    h->out = out;
    h->max_N = max_N;
    h->n_params = out * in + out;
    n = 2 * h->n_params + 3 * max_N * out;
    h->params = xcalloc_aligned(n, sizeof(float));
    h->grads = h->params + h->n_params;
    h->w = h->params;
    h->b = h->params + out * in;
    h->dw = h->grads;
    h->db = h->grads + out * in;
    h->logits = h->grads + h->n_params;
    h->probs = h->logits + max_N * out;
    h->dlogits = h->probs + max_N * out;
    rng_init(&r, seed);
    rng_fill_uniform(&r, h->params, h->n_params, -bound, bound);
}

void linear_head_free(struct linear_head *h)
{
    free(h->params);
    memset(h, 0, sizeof(*h));
}

void linear_head_logits(struct linear_head *h, const float *feats, size_t N)
{
    RL_ASSERT(N > 0 && N <= h->max_N);
    h->N = N;
    linear_forward(h->logits, feats, h->w, h->b, N, h->in, h->out);
}

float linear_head_loss(struct linear_head *h, const float *feats, const int32_t *targets,
                       size_t N)
{
    linear_head_logits(h, feats, N);
    h->feats = feats;
    h->targets = targets;
    return crossentropy_forward(h->probs, h->logits, targets, N, h->out);
}

void linear_head_backward(struct linear_head *h, float *dfeats, float dloss)
{
    const size_t N = h->N;

    memset(h->dlogits, 0, N * h->out * sizeof(float));
    crossentropy_backward(h->dlogits, h->probs, h->targets, dloss, N, h->out);
    linear_backward(dfeats, h->dw, h->db, h->dlogits, h->feats, h->w, N, h->in, h->out);
}

size_t linear_head_correct(const struct linear_head *h, const int32_t *targets, size_t N)
{
    size_t correct = 0;

    for (size_t j = 0; j < N; j++) {
        const float *row = h->logits + j * h->out;
        size_t best = 0;

        for (size_t c = 1; c < h->out; c++)
            if (row[c] > row[best])
                best = c;
        correct += best == (size_t)targets[j];
    }
    return correct;
}
