/*
 * block_pooled.c: a tower's last layer computed only where its output is
 * read, one row per sequence (block.h, "the last layer of a tower at its
 * pooled rows only"). block.c's forward and backward with the rows after
 * k and v narrowed to the pooled ones.
 */
#include "models/block.h"

#include <string.h>

#include "models/block_impl.h"
#include "models/nn.h"

/* ------------------------------------------------------------------------ */
/* activations and their gradients: one buffer each                          */

#define POOLED_NUM_ACTS 12

/* sizes of the kept activations, in struct block_pooled_acts order */
static void pooled_acts_sizes(size_t s[POOLED_NUM_ACTS],
                              size_t B, size_t T, size_t C, size_t NH, size_t F)
{
    const size_t N = block_mul(B, T), NC = block_mul(N, C), BC = block_mul(B, C);
    const size_t v[POOLED_NUM_ACTS] = {
        N, N,               /* ln1_mean, ln1_rstd      */
        NC, NC,             /* k, v                    */
        BC, BC,             /* ln1_pool, q             */
        block_mul(block_mul(B, NH), T), /* att          */
        BC, BC,             /* atty, h                 */
        B, B,               /* ln2_mean, ln2_rstd      */
        block_mul(B, F),    /* fch                     */
    };

    memcpy(s, v, sizeof(v));
}

size_t block_pooled_acts_size(size_t B, size_t T, size_t C, size_t NH, size_t F)
{
    size_t s[POOLED_NUM_ACTS];

    pooled_acts_sizes(s, B, T, C, NH, F);
    return block_sum(s, POOLED_NUM_ACTS);
}

void block_pooled_acts_point(struct block_pooled_acts *a, float *buf, float *scratch,
                             size_t B, size_t T, size_t C, size_t NH, size_t F)
{
    const size_t N = block_mul(B, T);
    size_t s[POOLED_NUM_ACTS];
    float **ptrs[POOLED_NUM_ACTS] = {
        &a->ln1_mean, &a->ln1_rstd, &a->k, &a->v, &a->ln1_pool, &a->q, &a->att,
        &a->atty, &a->h, &a->ln2_mean, &a->ln2_rstd, &a->fch,
    };

    pooled_acts_sizes(s, B, T, C, NH, F);
    block_point_views(ptrs, s, POOLED_NUM_ACTS, buf);
    /* block_acts_scratch_size's layout: (B,T,C), (B,T,max(F,3C)), (B,T), (B,T) */
    a->ln1 = a->attproj = a->ln2 = a->fcproj = scratch;
    a->fch_act = a->qkv = scratch + block_mul(N, C);
    a->stat_mean = a->fch_act + block_mul(N, F > 3 * C ? F : block_mul(3, C));
    a->stat_rstd = a->stat_mean + N;
}

#define POOLED_NUM_GRAD_ACTS 11

static void pooled_grad_acts_sizes(size_t s[POOLED_NUM_GRAD_ACTS],
                                   size_t B, size_t T, size_t C, size_t NH, size_t F)
{
    const size_t NC = block_mul(block_mul(B, T), C), BC = block_mul(B, C);
    const size_t BF = block_mul(B, F);
    const size_t v[POOLED_NUM_GRAD_ACTS] = {
        BC, BC,             /* dh, dln2            */
        BF, BF,             /* dfch, dfch_act      */
        BC, BC,             /* datty, dq           */
        NC, NC,             /* dk, dv              */
        block_mul(block_mul(B, NH), T), /* att_scratch */
        BC,                 /* dln1_pool           */
        NC,                 /* dln1                */
    };

    memcpy(s, v, sizeof(v));
}

size_t block_pooled_grad_acts_size(size_t B, size_t T, size_t C, size_t NH, size_t F)
{
    size_t s[POOLED_NUM_GRAD_ACTS];

    pooled_grad_acts_sizes(s, B, T, C, NH, F);
    return block_sum(s, POOLED_NUM_GRAD_ACTS);
}

void block_pooled_grad_acts_point(struct block_pooled_grad_acts *g, float *buf,
                                  size_t B, size_t T, size_t C, size_t NH, size_t F)
{
    size_t s[POOLED_NUM_GRAD_ACTS];
    float **ptrs[POOLED_NUM_GRAD_ACTS] = {
        &g->dh, &g->dln2, &g->dfch, &g->dfch_act, &g->datty, &g->dq,
        &g->dk, &g->dv, &g->att_scratch, &g->dln1_pool, &g->dln1,
    };

    pooled_grad_acts_sizes(s, B, T, C, NH, F);
    block_point_views(ptrs, s, POOLED_NUM_GRAD_ACTS, buf);
}

/* ------------------------------------------------------------------------ */
/* gathering and scattering the pooled rows                                  */

/* the pooled row of sequence b (0 when idx is NULL) */
static size_t pooled_row(const size_t *idx, size_t b, size_t T)
{
    const size_t t = idx ? idx[b] : 0;

    RL_ASSERT(t < T);
    return b * T + t;
}

/* out (B,C) = inp (B,T,C) at the pooled rows */
static void gather_rows(float *out, const float *inp, const size_t *idx,
                        size_t B, size_t T, size_t C)
{
    for (size_t b = 0; b < B; b++)
        memcpy(out + b * C, inp + pooled_row(idx, b, T) * C, C * sizeof(float));
}

/* d (B,T,C) at the pooled rows += dp (B,C) */
static void scatter_add_rows(float *d, const float *dp, const size_t *idx,
                             size_t B, size_t T, size_t C)
{
    for (size_t b = 0; b < B; b++) {
        float *row = d + pooled_row(idx, b, T) * C;

        for (size_t c = 0; c < C; c++)
            row[c] += dp[b * C + c];
    }
}

/* ------------------------------------------------------------------------ */
/* forward and backward                                                      */

void block_pooled_forward(float *out, struct block_pooled_acts *a, const float *inp,
                          const size_t *idx, const struct block_params *p,
                          const struct block_adapters *ad, const struct block_config *cfg,
                          size_t B, size_t T)
{
    const size_t C = cfg->C, NH = cfg->NH, F = cfg->F;
    const size_t N = block_mul(B, T), BC = block_mul(B, C);

    RL_ASSERT(NH > 0 && C % NH == 0);
    RL_ASSERT(!p->ls1 && !p->ls2);      /* LayerScale layers run whole (block.h) */

    /* every row: ln1, k, v (the keys and values the pooled queries see) */
    layernorm_forward(a->ln1, a->ln1_mean, a->ln1_rstd, inp, p->ln1_w, p->ln1_b, N, C, cfg->eps);
    gather_rows(a->ln1_pool, a->ln1, idx, B, T, C);
    /* q at the pooled rows only (a packed adapter's branch runs on all) */
    adapted_qkv_forward(a->q, a->k, a->v, a->ln1_pool, a->ln1, idx, T, B, N, p, ad, C, a->qkv);

    /* the pooled rows: h = x + out_proj(MHA(q)) */
    attention_pooled_forward(a->atty, a->att, a->q, a->k, a->v, idx, B, T, C, NH, cfg->causal);
    adapted_linear_forward(a->attproj, a->atty, p->o_w, p->o_b, ad, BLOCK_LIN_OUT, B, C, C);
    gather_rows(a->h, inp, idx, B, T, C);
    for (size_t i = 0; i < BC; i++)
        a->h[i] += a->attproj[i];

    /* out = h + fc2(act(fc1(ln2(h)))) */
    layernorm_forward(a->ln2, a->ln2_mean, a->ln2_rstd, a->h, p->ln2_w, p->ln2_b, B, C, cfg->eps);
    adapted_linear_forward(a->fch, a->ln2, p->fc1_w, p->fc1_b, ad, BLOCK_LIN_FC1, B, C, F);
    block_act_forward(a->fch_act, a->fch, block_mul(B, F), cfg->act);
    adapted_linear_forward(a->fcproj, a->fch_act, p->fc2_w, p->fc2_b, ad, BLOCK_LIN_FC2,
                           B, F, C);
    residual_forward(out, a->h, a->fcproj, BC);
}

void block_pooled_backward(float *dinp, struct block_grads *g,
                           struct block_pooled_grad_acts *ga, const float *dout,
                           const struct block_pooled_acts *a, const float *inp,
                           const size_t *idx, const struct block_params *p,
                           const struct block_adapters *ad, const struct block_config *cfg,
                           size_t B, size_t T)
{
    const size_t C = cfg->C, NH = cfg->NH, F = cfg->F;
    const size_t N = block_mul(B, T), NC = block_mul(N, C);
    const size_t BC = block_mul(B, C), BF = block_mul(B, F);
    const bool need_dln1 = dinp || g->ln1_w || g->ln1_b;

    RL_ASSERT(NH > 0 && C % NH == 0);

    memset(ga->dln2, 0, BC * sizeof(float));
    memset(ga->dfch, 0, BF * sizeof(float));
    memset(ga->dfch_act, 0, BF * sizeof(float));
    memset(ga->datty, 0, BC * sizeof(float));
    memset(ga->dq, 0, BC * sizeof(float));
    memset(ga->dk, 0, NC * sizeof(float));
    memset(ga->dv, 0, NC * sizeof(float));
    memset(ga->dln1_pool, 0, BC * sizeof(float));
    memset(ga->dln1, 0, NC * sizeof(float));

    /* the MLP half on the pooled rows, fch_act and ln2 recomputed (block.h) */
    memcpy(ga->dh, dout, BC * sizeof(float));
    block_act_forward(a->fch_act, a->fch, BF, cfg->act);
    layernorm_forward(a->ln2, a->stat_mean, a->stat_rstd, a->h, p->ln2_w, p->ln2_b, B, C,
                      cfg->eps);
    adapted_linear_backward(ga->dfch_act, g->fc2_w, g->fc2_b, dout, a->fch_act, p->fc2_w,
                            ad, BLOCK_LIN_FC2, B, F, C);
    block_act_backward(ga->dfch, ga->dfch_act, a->fch, BF, cfg->act);
    adapted_linear_backward(ga->dln2, g->fc1_w, g->fc1_b, ga->dfch, a->ln2, p->fc1_w,
                            ad, BLOCK_LIN_FC1, B, C, F);
    layernorm_backward(ga->dh, g->ln2_w, g->ln2_b, ga->dln2, a->h, p->ln2_w,
                       a->ln2_mean, a->ln2_rstd, B, C);

    /* h = x + attproj at the pooled rows */
    if (dinp)
        scatter_add_rows(dinp, ga->dh, idx, B, T, C);
    adapted_linear_backward(ga->datty, g->o_w, g->o_b, ga->dh, a->atty, p->o_w,
                            ad, BLOCK_LIN_OUT, B, C, C);
    attention_pooled_backward(ga->dq, ga->dk, ga->dv, ga->att_scratch, ga->datty, a->att,
                              a->q, a->k, a->v, idx, B, T, C, NH, cfg->causal);

    /* q from the pooled rows of ln1, k and v from all of them; ln1
     * recomputed into the scratch ln2 held */
    layernorm_forward(a->ln1, a->stat_mean, a->stat_rstd, inp, p->ln1_w, p->ln1_b, N, C,
                      cfg->eps);
    adapted_qkv_backward(need_dln1 ? ga->dln1_pool : NULL, need_dln1 ? ga->dln1 : NULL, g,
                         ga->dq, ga->dk, ga->dv, a->ln1_pool, a->ln1, idx, T, B, N, p, ad, C,
                         a->qkv);
    if (!need_dln1)
        return;
    scatter_add_rows(ga->dln1, ga->dln1_pool, idx, B, T, C);
    layernorm_backward(dinp, g->ln1_w, g->ln1_b, ga->dln1, inp, p->ln1_w,
                       a->ln1_mean, a->ln1_rstd, N, C);
}
