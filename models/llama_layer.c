/*
 * llama_layer.c: one Llama / Qwen2 decoder layer, forward and backward, from
 * the llama_nn.h kernels and adapted linears (adapted_linear.h):
 *
 *     n1 = rmsnorm(x)                     input_layernorm
 *     q, k, v = q/k/v_proj(n1)            (biases where the config has them)
 *     q, k = rope(q), rope(k)
 *     h = x + o_proj(gqa(q, k, v))
 *     n2 = rmsnorm(h)                     post_attention_layernorm
 *     y = h + down_proj(silu(gate_proj(n2)) * up_proj(n2))
 *
 * Everything the backward needs is kept per layer (struct llama_layer_acts);
 * the backward workspace (struct llama_layer_grad_acts) is shared by the
 * layers of a model.
 */
#include "models/llama.h"

#include <string.h>

#include "core/status.h"
#include "models/block_impl.h"
#include "models/llama_nn.h"
#include "models/nn.h"

/* overflow-checked product (sizes come from a validated config) */
static size_t mul(size_t a, size_t b)
{
    return block_mul(a, b);
}

/* floats of each view of struct llama_layer_acts, in struct order */
static size_t acts_sizes(size_t s[13], const struct llama_config *c, size_t B, size_t T)
{
    const size_t N = mul(B, T), C = c->hidden, F = c->intermediate;
    const size_t qd = c->heads * c->head_dim, kvd = c->kv_heads * c->head_dim;
    const size_t sz[13] = {
        N, mul(N, C), mul(N, qd), mul(N, kvd), mul(N, kvd), mul(mul(B, c->heads), mul(T, T)),
        mul(N, qd), mul(N, C), N, mul(N, C), mul(N, F), mul(N, F), mul(N, F),
    };

    memcpy(s, sz, sizeof(sz));
    return block_sum(s, 13);
}

size_t llama_layer_acts_size(const struct llama_config *c, size_t B, size_t T)
{
    size_t s[13];

    return acts_sizes(s, c, B, T);
}

void llama_layer_acts_point(struct llama_layer_acts *a, float *buf,
                            const struct llama_config *c, size_t B, size_t T)
{
    float **views[13] = { &a->rstd1, &a->n1, &a->q, &a->k, &a->v, &a->att, &a->atty, &a->h,
                          &a->rstd2, &a->n2, &a->gate, &a->up, &a->act };
    size_t s[13];

    acts_sizes(s, c, B, T);
    block_point_views(views, s, 13, buf);
}

/* floats of each view of struct llama_layer_grad_acts, in struct order */
static size_t grad_sizes(size_t s[11], const struct llama_config *c, size_t B, size_t T)
{
    const size_t N = mul(B, T), C = c->hidden, F = c->intermediate;
    const size_t qd = c->heads * c->head_dim, kvd = c->kv_heads * c->head_dim;
    const size_t sz[11] = {
        mul(N, C), mul(N, C), mul(N, C), mul(N, F), mul(N, F), mul(N, F), mul(N, qd),
        mul(N, qd), mul(N, kvd), mul(N, kvd), mul(mul(B, c->heads), mul(T, T)),
    };

    memcpy(s, sz, sizeof(sz));
    return block_sum(s, 11);
}

size_t llama_layer_grad_acts_size(const struct llama_config *c, size_t B, size_t T)
{
    size_t s[11];

    return grad_sizes(s, c, B, T);
}

void llama_layer_grad_acts_point(struct llama_layer_grad_acts *g, float *buf,
                                 const struct llama_config *c, size_t B, size_t T)
{
    float **views[11] = { &g->dh, &g->dn2, &g->dn1, &g->dgate, &g->dup, &g->dact, &g->datty,
                          &g->dq, &g->dk, &g->dv, &g->att_scratch };
    size_t s[11];

    grad_sizes(s, c, B, T);
    block_point_views(views, s, 11, buf);
}

/* linear i's adapter view, or NULL (the plain linear) */
static const struct adapted_lin *lin(const struct llama_layer_adapters *ad, enum llama_linear i)
{
    return ad ? &ad->lin[i] : NULL;
}

static struct gqa_dims dims_of(const struct llama_config *c, size_t B, size_t T)
{
    return (struct gqa_dims){ .B = B, .Tq = T, .NH = c->heads, .KVH = c->kv_heads,
                              .hs = c->head_dim, .pos0 = 0, .kv_T = T };
}

void llama_layer_forward(float *out, struct llama_layer_acts *a, float *tmp, const float *inp,
                         const struct llama_layer_w *p, const struct llama_layer_adapters *ad,
                         const struct llama_config *c, const float *cos_t, const float *sin_t,
                         size_t B, size_t T)
{
    const size_t N = B * T, C = c->hidden, F = c->intermediate, hs = c->head_dim;
    const size_t qd = c->heads * hs, kvd = c->kv_heads * hs;
    const struct gqa_dims d = dims_of(c, B, T);
    float *const *w = p->t;

    rmsnorm_forward(a->n1, a->rstd1, inp, w[LT_LN1], N, C, c->rms_norm_eps);
    adapted_lin_forward(a->q, a->n1, w[LT_Q_W], w[LT_Q_B], lin(ad, LLAMA_LIN_Q), N, C, qd);
    adapted_lin_forward(a->k, a->n1, w[LT_K_W], w[LT_K_B], lin(ad, LLAMA_LIN_K), N, C, kvd);
    adapted_lin_forward(a->v, a->n1, w[LT_V_W], w[LT_V_B], lin(ad, LLAMA_LIN_V), N, C, kvd);
    rope_forward(a->q, cos_t, sin_t, B, T, c->heads, hs);
    rope_forward(a->k, cos_t, sin_t, B, T, c->kv_heads, hs);
    gqa_attention_forward(a->atty, a->att, a->q, a->k, a->v, &d);
    adapted_lin_forward(tmp, a->atty, w[LT_O_W], w[LT_O_B], lin(ad, LLAMA_LIN_O), N, qd, C);
    residual_forward(a->h, inp, tmp, N * C);
    rmsnorm_forward(a->n2, a->rstd2, a->h, w[LT_LN2], N, C, c->rms_norm_eps);
    adapted_lin_forward(a->gate, a->n2, w[LT_GATE_W], w[LT_GATE_B], lin(ad, LLAMA_LIN_GATE),
                        N, C, F);
    adapted_lin_forward(a->up, a->n2, w[LT_UP_W], w[LT_UP_B], lin(ad, LLAMA_LIN_UP), N, C, F);
    swiglu_forward(a->act, a->gate, a->up, N * F);
    adapted_lin_forward(tmp, a->act, w[LT_DOWN_W], w[LT_DOWN_B], lin(ad, LLAMA_LIN_DOWN),
                        N, F, C);
    residual_forward(out, a->h, tmp, N * C);
}

void llama_layer_backward(float *dinp, const struct llama_layer_w *g,
                          struct llama_layer_grad_acts *ga, const float *dout,
                          const struct llama_layer_acts *a, const float *inp,
                          const struct llama_layer_w *p, const struct llama_layer_adapters *ad,
                          const struct llama_config *c, const float *cos_t,
                          const float *sin_t, size_t B, size_t T)
{
    const size_t N = B * T, C = c->hidden, F = c->intermediate, hs = c->head_dim;
    const size_t qd = c->heads * hs, kvd = c->kv_heads * hs;
    const struct gqa_dims d = dims_of(c, B, T);
    float *const *w = p->t;
    float *gz[LT_COUNT] = { 0 };

    if (g)
        memcpy(gz, g->t, sizeof(gz));

    /* MLP: y = h + down(act), act = swiglu(gate(n2), up(n2)) */
    memcpy(ga->dh, dout, N * C * sizeof(float));
    memset(ga->dact, 0, N * F * sizeof(float));
    adapted_lin_backward(ga->dact, gz[LT_DOWN_W], gz[LT_DOWN_B], dout, a->act, w[LT_DOWN_W],
                         lin(ad, LLAMA_LIN_DOWN), N, F, C);
    memset(ga->dgate, 0, N * F * sizeof(float));
    memset(ga->dup, 0, N * F * sizeof(float));
    swiglu_backward(ga->dgate, ga->dup, ga->dact, a->gate, a->up, N * F);
    memset(ga->dn2, 0, N * C * sizeof(float));
    adapted_lin_backward(ga->dn2, gz[LT_GATE_W], gz[LT_GATE_B], ga->dgate, a->n2, w[LT_GATE_W],
                         lin(ad, LLAMA_LIN_GATE), N, C, F);
    adapted_lin_backward(ga->dn2, gz[LT_UP_W], gz[LT_UP_B], ga->dup, a->n2, w[LT_UP_W],
                         lin(ad, LLAMA_LIN_UP), N, C, F);
    rmsnorm_backward(ga->dh, gz[LT_LN2], ga->dn2, a->h, w[LT_LN2], a->rstd2, N, C);

    /* attention: h = x + o(gqa(rope(q(n1)), rope(k(n1)), v(n1))) */
    memset(ga->datty, 0, N * qd * sizeof(float));
    adapted_lin_backward(ga->datty, gz[LT_O_W], gz[LT_O_B], ga->dh, a->atty, w[LT_O_W],
                         lin(ad, LLAMA_LIN_O), N, qd, C);
    memset(ga->dq, 0, N * qd * sizeof(float));
    memset(ga->dk, 0, N * kvd * sizeof(float));
    memset(ga->dv, 0, N * kvd * sizeof(float));
    gqa_attention_backward(ga->dq, ga->dk, ga->dv, ga->att_scratch, ga->datty, a->att, a->q,
                           a->k, a->v, &d);
    rope_backward(ga->dq, cos_t, sin_t, B, T, c->heads, hs);
    rope_backward(ga->dk, cos_t, sin_t, B, T, c->kv_heads, hs);
    memset(ga->dn1, 0, N * C * sizeof(float));
    adapted_lin_backward(ga->dn1, gz[LT_Q_W], gz[LT_Q_B], ga->dq, a->n1, w[LT_Q_W],
                         lin(ad, LLAMA_LIN_Q), N, C, qd);
    adapted_lin_backward(ga->dn1, gz[LT_K_W], gz[LT_K_B], ga->dk, a->n1, w[LT_K_W],
                         lin(ad, LLAMA_LIN_K), N, C, kvd);
    adapted_lin_backward(ga->dn1, gz[LT_V_W], gz[LT_V_B], ga->dv, a->n1, w[LT_V_W],
                         lin(ad, LLAMA_LIN_V), N, C, kvd);
    if (dinp)
        residual_backward(dinp, NULL, ga->dh, N * C);
    rmsnorm_backward(dinp, gz[LT_LN1], ga->dn1, inp, w[LT_LN1], a->rstd1, N, C);
}
