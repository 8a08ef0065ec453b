/*
 * llama_generate.c: the decoder with a KV cache (keys and values of every
 * position seen so far, per layer), and greedy generation on it (llama.h).
 *
 * A step runs n new tokens at positions pos .. pos+n-1 through every layer:
 * the same kernels as llama_layer_forward, except that the new rows' keys
 * and values are appended to the cache and the queries attend to all of
 * the cache's rows up to their own position (gqa_dims.pos0 = pos). A prompt
 * runs as one step (or several, max_new rows at a time), then each new
 * token as a step of one row. The result equals the forward of the whole
 * sequence at every row up to round-off (tested: the same greedy tokens and
 * logits within 1e-5 against llama_forward without a cache).
 */
#include "models/llama.h"

#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/status.h"
#include "models/llama_nn.h"
#include "models/nn.h"

void llama_cache_init(struct llama_cache *kc, const struct llama_model *m, size_t cap,
                      size_t max_new)
{
    const struct llama_config *c = &m->cfg;
    const size_t C = c->hidden, kvd = c->kv_heads * c->head_dim, L = c->layers;
    const size_t kv = L * cap * kvd, acts = llama_layer_acts_size(c, 1, max_new);
    const size_t att = c->heads * max_new * cap, rope = max_new * (c->head_dim / 2);
    size_t total = 0;
    float *p;

    RL_ASSERT(cap > 0 && max_new > 0 && max_new <= cap);
    memset(kc, 0, sizeof(*kc));
    const size_t parts[] = { 2 * kv, 3 * max_new * C, acts, att, 2 * rope, c->vocab_size };
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
        RL_ASSERT(size_add_ok(total, parts[i], &total));
    kc->cap = cap;
    kc->max_new = max_new;
    kc->buf = p = xcalloc_aligned(total, sizeof(float));
    kc->k = p;                  p += kv;
    kc->v = p;                  p += kv;
    kc->x = p;                  p += max_new * C;
    kc->y = p;                  p += max_new * C;
    kc->tmp = p;                p += max_new * C;
    llama_layer_acts_point(&kc->acts, p, c, 1, max_new);
    p += acts;
    kc->att = p;                p += att;
    kc->cos_t = p;              p += rope;
    kc->sin_t = p;              p += rope;
    kc->logits = p;
}

void llama_cache_free(struct llama_cache *kc)
{
    free(kc->buf);
    memset(kc, 0, sizeof(*kc));
}

/* layer l on the n rows of kc->x (positions kc->pos ..), output in kc->y */
static void cached_layer(struct llama_cache *kc, const struct llama_model *m,
                         const struct llama_layer_adapters *ad, size_t l, size_t n)
{
    const struct llama_config *c = &m->cfg;
    const size_t C = c->hidden, F = c->intermediate, hs = c->head_dim;
    const size_t qd = c->heads * hs, kvd = c->kv_heads * hs;
    const struct gqa_dims d = { .B = 1, .Tq = n, .NH = c->heads, .KVH = c->kv_heads,
                                .hs = hs, .pos0 = kc->pos, .kv_T = kc->cap };
    float *const *w = m->layer[l].t;
    float *kl = kc->k + l * kc->cap * kvd, *vl = kc->v + l * kc->cap * kvd;
    struct llama_layer_acts *a = &kc->acts;
    const struct adapted_lin *lin = ad ? ad->lin : NULL;

#define LIN(i) (lin ? &lin[i] : NULL)
    rmsnorm_forward(a->n1, a->rstd1, kc->x, w[LT_LN1], n, C, c->rms_norm_eps);
    adapted_lin_forward(a->q, a->n1, w[LT_Q_W], w[LT_Q_B], LIN(LLAMA_LIN_Q), n, C, qd);
    adapted_lin_forward(a->k, a->n1, w[LT_K_W], w[LT_K_B], LIN(LLAMA_LIN_K), n, C, kvd);
    adapted_lin_forward(a->v, a->n1, w[LT_V_W], w[LT_V_B], LIN(LLAMA_LIN_V), n, C, kvd);
    rope_forward(a->q, kc->cos_t, kc->sin_t, 1, n, c->heads, hs);
    rope_forward(a->k, kc->cos_t, kc->sin_t, 1, n, c->kv_heads, hs);
    memcpy(kl + kc->pos * kvd, a->k, n * kvd * sizeof(float));
    memcpy(vl + kc->pos * kvd, a->v, n * kvd * sizeof(float));
    gqa_attention_forward(a->atty, kc->att, a->q, kl, vl, &d);
    adapted_lin_forward(kc->tmp, a->atty, w[LT_O_W], w[LT_O_B], LIN(LLAMA_LIN_O), n, qd, C);
    residual_forward(a->h, kc->x, kc->tmp, n * C);
    rmsnorm_forward(a->n2, a->rstd2, a->h, w[LT_LN2], n, C, c->rms_norm_eps);
    adapted_lin_forward(a->gate, a->n2, w[LT_GATE_W], w[LT_GATE_B], LIN(LLAMA_LIN_GATE),
                        n, C, F);
    adapted_lin_forward(a->up, a->n2, w[LT_UP_W], w[LT_UP_B], LIN(LLAMA_LIN_UP), n, C, F);
    swiglu_forward(a->act, a->gate, a->up, n * F);
    adapted_lin_forward(kc->tmp, a->act, w[LT_DOWN_W], w[LT_DOWN_B], LIN(LLAMA_LIN_DOWN),
                        n, F, C);
    residual_forward(kc->y, a->h, kc->tmp, n * C);
#undef LIN
}

int llama_cache_step(struct llama_cache *kc, const struct llama_model *m,
                     const struct llama_adapters *la, const int32_t *ids, size_t n)
{
    const struct llama_config *c = &m->cfg;
    const size_t C = c->hidden;
    float rstd, *last;

    if (n == 0 || n > kc->max_new || kc->pos + n > kc->cap)
        return rl_error_set(RL_ERR_ARG, "llama cache: %zu tokens at position %zu exceed its "
                            "%zu positions (%zu per step)", n, kc->pos, kc->cap, kc->max_new);
    if (kc->pos + n > c->max_position)
        return rl_error_set(RL_ERR_ARG, "llama cache: position %zu beyond "
                            "max_position_embeddings %zu", kc->pos + n, c->max_position);
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || (size_t)ids[i] >= c->vocab_size)
            return rl_error_set(RL_ERR_ARG, "llama: token id %ld is outside the vocabulary "
                                "(0..%zu)", (long)ids[i], c->vocab_size - 1);
        memcpy(kc->x + i * C, m->embed + (size_t)ids[i] * C, C * sizeof(float));
    }
    rope_table(kc->cos_t, kc->sin_t, m->inv_freq, kc->pos, n, c->head_dim);
    for (size_t l = 0; l < c->layers; l++) {
        float *swap;

        cached_layer(kc, m, la ? &la->layer[l] : NULL, l, n);
        swap = kc->x;
        kc->x = kc->y;
        kc->y = swap;
    }
    kc->pos += n;
    /* the last row: final norm (into tmp) and the head */
    last = kc->x + (n - 1) * C;
    rmsnorm_forward(kc->tmp, &rstd, last, m->norm, 1, C, c->rms_norm_eps);
    linear_forward(kc->logits, kc->tmp, m->lm_head, NULL, 1, C, c->vocab_size);
    return RL_OK;
}

/* the first index of the largest logit (torch.argmax's tie rule) */
static int32_t argmax(const float *x, size_t n)
{
    size_t best = 0;

    for (size_t i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return (int32_t)best;
}

static bool is_eos(const struct llama_config *c, int32_t id)
{
    for (size_t i = 0; i < c->n_eos; i++)
        if (c->eos_token_id[i] == id)
            return true;
    return false;
}

long llama_generate_greedy(const struct llama_model *m, const struct llama_adapters *la,
                           const int32_t *prompt, size_t n_prompt, size_t max_new,
                           int32_t *out)
{
    struct llama_cache kc;
    const size_t chunk = n_prompt < 256 ? (n_prompt ? n_prompt : 1) : 256;
    size_t done = 0, made = 0;
    int rc = RL_OK;

    if (n_prompt == 0)
        return rl_error_set(RL_ERR_ARG, "llama generate: an empty prompt");
    llama_cache_init(&kc, m, n_prompt + max_new, chunk);
    while (!rc && done < n_prompt) {
        const size_t n = n_prompt - done < chunk ? n_prompt - done : chunk;

        rc = llama_cache_step(&kc, m, la, prompt + done, n);
        done += n;
    }
    while (!rc && made < max_new) {
        const int32_t tok = argmax(kc.logits, m->cfg.vocab_size);

        out[made++] = tok;
        if (is_eos(&m->cfg, tok) || made == max_new)
            break;
        rc = llama_cache_step(&kc, m, la, &tok, 1);
    }
    llama_cache_free(&kc);
    return rc ? (long)rc : (long)made;
}
