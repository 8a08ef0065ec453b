/*
 * llama_generate.c: the decoder with a KV cache for one or more sequences
 * (keys and values of every position seen so far, per layer), and greedy
 * generation on it (llama.h).
 *
 * A step runs n rows through every layer with the same kernels as
 * llama_layer_forward: RMSNorm and every linear on all n rows at once; each
 * row rotated at its own sequence's position; the new keys and values
 * appended to their sequence's cache; then attention per run of a
 * sequence's consecutive rows, those queries against the cache up to their
 * positions (gqa_dims.pos0). A prompt is one run of many rows; a decoding
 * step of a batch is one row per sequence, so the weights are read once
 * per step for every sequence. The result equals the forward of each whole
 * sequence at every row up to round-off (tested: the same greedy tokens,
 * logits within 1e-5, against llama_forward without a cache).
 */
#include "models/llama.h"

#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/status.h"
#include "models/llama_nn.h"
#include "models/nn.h"

void llama_cache_init(struct llama_cache *kc, const struct llama_model *m, size_t n_seq,
                      size_t cap, size_t max_rows)
{
    const struct llama_config *c = &m->cfg;
    const size_t C = c->hidden, kvd = c->kv_heads * c->head_dim, L = c->layers;
    size_t kv = 0, total = 0;
    float *p;

    RL_ASSERT(n_seq > 0 && cap > 0 && max_rows > 0);
    memset(kc, 0, sizeof(*kc));
    RL_ASSERT(size_mul_ok(L * n_seq, cap * kvd, &kv));
    const size_t acts = llama_layer_acts_size(c, 1, max_rows);
    const size_t parts[] = { 2 * kv, 3 * max_rows * C, acts, c->heads * max_rows * cap,
                             max_rows * c->head_dim, max_rows * c->vocab_size };
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
        RL_ASSERT(size_add_ok(total, parts[i], &total));
    kc->n_seq = n_seq;
    kc->cap = cap;
    kc->max_rows = max_rows;
    kc->pos = xcalloc(n_seq, sizeof(size_t));
    kc->logit_seq = xcalloc(max_rows, sizeof(size_t));
    kc->buf = p = xcalloc_aligned(total, sizeof(float));
    kc->k = p;                  p += kv;
    kc->v = p;                  p += kv;
    kc->x = p;                  p += max_rows * C;
    kc->y = p;                  p += max_rows * C;
    kc->tmp = p;                p += max_rows * C;
    llama_layer_acts_point(&kc->acts, p, c, 1, max_rows);
    p += acts;
    kc->att = p;                p += c->heads * max_rows * cap;
    kc->cos_t = p;              p += max_rows * (c->head_dim / 2);
    kc->sin_t = p;              p += max_rows * (c->head_dim / 2);
    kc->logits = p;
}

void llama_cache_free(struct llama_cache *kc)
{
    free(kc->pos);
    free(kc->logit_seq);
    free(kc->buf);
    memset(kc, 0, sizeof(*kc));
}

/* the sequence of row r of a step */
static size_t seq_of(const size_t *seq, size_t r)
{
    return seq ? seq[r] : 0;
}

/* layer l's keys (or values) of sequence s */
static float *cache_at(const struct llama_cache *kc, const struct llama_config *c, float *base,
                       size_t l, size_t s)
{
    const size_t kvd = c->kv_heads * c->head_dim;

    return base + (l * kc->n_seq + s) * kc->cap * kvd;
}

/* layer l on the n rows of kc->x, output in kc->y; row r of sequence
 * seq[r] at position kc->pos[seq[r]] + (its index in its run) */
static void cached_layer(struct llama_cache *kc, const struct llama_model *m,
                         const struct llama_layer_adapters *ad, size_t l, const size_t *seq,
                         size_t n)
{
    const struct llama_config *c = &m->cfg;
    const size_t C = c->hidden, F = c->intermediate, hs = c->head_dim;
    const size_t qd = c->heads * hs, kvd = c->kv_heads * hs;
    float *const *w = m->layer[l].t;
    struct llama_layer_acts *a = &kc->acts;
    const struct adapted_lin *lin = ad ? ad->lin : NULL;

#define LIN(i) (lin ? &lin[i] : NULL)
    rmsnorm_forward(a->n1, a->rstd1, kc->x, w[LT_LN1], n, C, c->rms_norm_eps);
    adapted_lin_forward(a->q, a->n1, w[LT_Q_W], w[LT_Q_B], LIN(LLAMA_LIN_Q), n, C, qd);
    adapted_lin_forward(a->k, a->n1, w[LT_K_W], w[LT_K_B], LIN(LLAMA_LIN_K), n, C, kvd);
    adapted_lin_forward(a->v, a->n1, w[LT_V_W], w[LT_V_B], LIN(LLAMA_LIN_V), n, C, kvd);
    /* the tables hold each row's own position: one "sequence" of n rows */
    rope_forward(a->q, kc->cos_t, kc->sin_t, 1, n, c->heads, hs);
    rope_forward(a->k, kc->cos_t, kc->sin_t, 1, n, c->kv_heads, hs);
    for (size_t r0 = 0; r0 < n;) {
        const size_t s = seq_of(seq, r0), p0 = kc->pos[s];
        size_t r1 = r0 + 1;
        float *kl = cache_at(kc, c, kc->k, l, s), *vl = cache_at(kc, c, kc->v, l, s);

        while (r1 < n && seq_of(seq, r1) == s)
            r1++;
        const struct gqa_dims d = { .B = 1, .Tq = r1 - r0, .NH = c->heads,
                                    .KVH = c->kv_heads, .hs = hs, .pos0 = p0,
                                    .kv_T = kc->cap };
        memcpy(kl + p0 * kvd, a->k + r0 * kvd, (r1 - r0) * kvd * sizeof(float));
        memcpy(vl + p0 * kvd, a->v + r0 * kvd, (r1 - r0) * kvd * sizeof(float));
        gqa_attention_forward(a->atty + r0 * qd, kc->att, a->q + r0 * qd, kl, vl, &d);
        r0 = r1;
    }
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

/* check the step's rows: sequences in range, each sequence's rows one
 * consecutive run fitting its cache and the model's positions */
static int check_step(const struct llama_cache *kc, const struct llama_config *c,
                      const int32_t *ids, const size_t *seq, size_t n)
{
    if (n == 0 || n > kc->max_rows)
        return rl_error_set(RL_ERR_ARG, "llama cache: a step of %zu rows (at most %zu)", n,
                            kc->max_rows);
    for (size_t r0 = 0; r0 < n;) {
        const size_t s = seq_of(seq, r0);
        size_t r1 = r0 + 1;

        if (s >= kc->n_seq)
            return rl_error_set(RL_ERR_ARG, "llama cache: sequence %zu of %zu", s, kc->n_seq);
        while (r1 < n && seq_of(seq, r1) == s)
            r1++;
        for (size_t r = r1; r < n; r++)
            if (seq_of(seq, r) == s)
                return rl_error_set(RL_ERR_ARG, "llama cache: the rows of sequence %zu are "
                                    "not consecutive", s);
        if (kc->pos[s] + (r1 - r0) > kc->cap || kc->pos[s] + (r1 - r0) > c->max_position)
            return rl_error_set(RL_ERR_ARG, "llama cache: sequence %zu: %zu tokens at position "
                                "%zu exceed its %zu positions", s, r1 - r0, kc->pos[s],
                                kc->cap < c->max_position ? kc->cap : c->max_position);
        r0 = r1;
    }
    for (size_t r = 0; r < n; r++)
        if (ids[r] < 0 || (size_t)ids[r] >= c->vocab_size)
            return rl_error_set(RL_ERR_ARG, "llama: token id %ld is outside the vocabulary "
                                "(0..%zu)", (long)ids[r], c->vocab_size - 1);
    return RL_OK;
}

int llama_cache_step(struct llama_cache *kc, const struct llama_model *m,
                     const struct llama_adapters *la, const int32_t *ids, const size_t *seq,
                     size_t n)
{
    const struct llama_config *c = &m->cfg;
    const size_t C = c->hidden, half = c->head_dim / 2;
    size_t k = 0;
    int rc;

    if ((rc = check_step(kc, c, ids, seq, n)))
        return rc;
    for (size_t r = 0, run = 0; r < n; r++) {
        const size_t s = seq_of(seq, r);

        run = r > 0 && seq_of(seq, r - 1) == s ? run + 1 : 0;
        memcpy(kc->x + r * C, m->embed + (size_t)ids[r] * C, C * sizeof(float));
        rope_table(kc->cos_t + r * half, kc->sin_t + r * half, m->inv_freq, kc->pos[s] + run,
                   1, c->head_dim);
    }
    for (size_t l = 0; l < c->layers; l++) {
        float *swap;

        cached_layer(kc, m, la ? &la->layer[l] : NULL, l, seq, n);
        swap = kc->x;
        kc->x = kc->y;
        kc->y = swap;
    }
    /* each run's last row: positions advance, final norm and the head */
    for (size_t r = 0; r < n; r++) {
        const size_t s = seq_of(seq, r);

        kc->pos[s]++;
        if (r + 1 < n && seq_of(seq, r + 1) == s)
            continue;
        memcpy(kc->tmp + k * C, kc->x + r * C, C * sizeof(float));
        kc->logit_seq[k++] = s;
    }
    rmsnorm_forward(kc->y, kc->acts.rstd1, kc->tmp, m->norm, k, C, c->rms_norm_eps);
    linear_forward(kc->logits, kc->y, m->lm_head, NULL, k, C, c->vocab_size);
    kc->n_logits = k;
    return RL_OK;
}

int32_t llama_argmax(const float *x, size_t n)
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

#define PREFILL_ROWS 256        /* prompt rows per step                      */

int llama_generate_greedy_batch(const struct llama_model *m, const struct llama_adapters *la,
                                const int32_t *const *prompts, const size_t *lens, size_t n,
                                size_t max_new, int32_t *out, size_t *n_out)
{
    const size_t V = m->cfg.vocab_size;
    struct llama_cache kc;
    size_t cap = 0, max_rows = n, active = 0, *seq;
    int32_t *next, *tok;
    bool *done;
    int rc = RL_OK;

    if (n == 0)
        return RL_OK;
    for (size_t i = 0; i < n; i++) {
        if (lens[i] == 0)
            return rl_error_set(RL_ERR_ARG, "llama generate: prompt %zu is empty", i);
        cap = lens[i] + max_new > cap ? lens[i] + max_new : cap;
        max_rows = lens[i] > max_rows ? lens[i] : max_rows;
        n_out[i] = 0;
    }
    max_rows = max_rows < PREFILL_ROWS ? max_rows : (n > PREFILL_ROWS ? n : PREFILL_ROWS);
    llama_cache_init(&kc, m, n, cap, max_rows);
    seq = xcalloc(max_rows, sizeof(size_t));
    next = xcalloc(n, sizeof(int32_t));
    tok = xcalloc(n, sizeof(int32_t));
    done = xcalloc(n, sizeof(bool));
    /* prefill each prompt on its own; its last logits give its first token */
    for (size_t i = 0; i < n && !rc; i++)
        for (size_t d = 0; d < lens[i] && !rc;) {
            const size_t k = lens[i] - d < max_rows ? lens[i] - d : max_rows;

            for (size_t r = 0; r < k; r++)
                seq[r] = i;
            rc = llama_cache_step(&kc, m, la, prompts[i] + d, seq, k);
            d += k;
            if (!rc && d == lens[i])
                next[i] = llama_argmax(kc.logits, V);
        }
    /* then one row per unfinished sequence per step */
    while (!rc && max_new > 0) {
        active = 0;
        for (size_t i = 0; i < n; i++) {
            if (done[i])
                continue;
            out[i * max_new + n_out[i]++] = next[i];
            if (is_eos(&m->cfg, next[i]) || n_out[i] == max_new) {
                done[i] = true;
                continue;
            }
            seq[active] = i;
            tok[active++] = next[i];
        }
        if (active == 0)
            break;
        if ((rc = llama_cache_step(&kc, m, la, tok, seq, active)))
            break;
        for (size_t k = 0; k < kc.n_logits; k++)
            next[kc.logit_seq[k]] = llama_argmax(kc.logits + k * V, V);
    }
    free(seq);
    free(next);
    free(tok);
    free(done);
    llama_cache_free(&kc);
    return rc;
}

long llama_generate_greedy(const struct llama_model *m, const struct llama_adapters *la,
                           const int32_t *prompt, size_t n_prompt, size_t max_new,
                           int32_t *out)
{
    size_t made = 0;
    int rc = llama_generate_greedy_batch(m, la, &prompt, &n_prompt, 1, max_new, out, &made);

    return rc ? (long)rc : (long)made;
}
