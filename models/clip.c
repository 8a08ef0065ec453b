/*
 * clip.c: the two CLIP towers forward and backward, and the heads, as flat
 * sequences of nn.h / block.h calls (clip.md 3.2-3.4). The backward is the
 * forward reversed; frozen weights get no gradient work unless a
 * clip_grads is given.
 */
#include "models/clip.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/status.h"
#include "models/nn.h"

/* a * b, aborting on overflow (sizes come from a validated config) */
static size_t mul(size_t a, size_t b)
{
    size_t r;

    RL_ASSERT(size_mul_ok(a, b, &r));
    return r;
}

/* hand out n floats from a running pointer into one allocation; each
 * region starts 16-float (64-byte) aligned */
static float *take(float **p, size_t n)
{
    float *r = *p;

    *p += (n + 15) & ~(size_t)15;
    return r;
}

static size_t rounded(size_t n)
{
    return (n + 15) & ~(size_t)15;
}

/* floats of one layer's kept activations and of the backward workspace:
 * enough for a whole layer and for the last one at its pooled rows */
static size_t layer_acts_size(size_t B, size_t T, size_t C, size_t NH, size_t F,
                              enum block_acts_store st)
{
    size_t a = block_acts_size_as(B, T, C, NH, F, st);
    size_t b = block_pooled_acts_size(B, T, C, NH, F);

    return a > b ? a : b;
}

static size_t layer_grad_acts_size(size_t B, size_t T, size_t C, size_t NH, size_t F)
{
    size_t a = block_grad_acts_size(B, T, C, NH, F);
    size_t b = block_pooled_grad_acts_size(B, T, C, NH, F);

    return a > b ? a : b;
}

/* Layers' kept activations: one slot per layer in a training run, one for
 * all in an evaluation run; with recomputation two, one the layers below the
 * last share (each refilled by its layer's forward again just before its
 * backward) and one for the last layer, whose backward comes first. */
static size_t acts_slots(bool train, bool recompute, size_t L)
{
    return !train ? 1 : recompute ? 2 : L;
}

static size_t acts_slot(bool train, bool recompute, size_t l, size_t L)
{
    if (!train)
        return 0;
    if (!recompute)
        return l;
    return l + 1 == L ? 1 : 0;
}

/* The adapters' random streams (branch dropout) as they were before layer
 * l's forward, so that its recomputation draws the same masks: saved before
 * the forward, restored before the recomputation (each adapter belongs to
 * one layer, so afterwards every stream is where the forward left it). */
static void adapter_rngs_save(struct rng *saved, const struct block_adapters *ad)
{
    for (int i = 0; ad && i < BLOCK_NUM_LINEARS; i++)
        if (ad->lin[i])
            saved[i] = ad->lin[i]->rng;
}

static void adapter_rngs_restore(const struct rng *saved, const struct block_adapters *ad)
{
    for (int i = 0; ad && i < BLOCK_NUM_LINEARS; i++)
        if (ad->lin[i])
            ad->lin[i]->rng = saved[i];
}

/* ------------------------------------------------------------------------ */
/* vision tower                                                              */

/* In the two layout functions below: point r->field at the next n floats
 * of base (when base is given) and count them, rounded to the alignment. */
#define TAKE(field, n) do {                   \
        size_t n_ = (n);                          \
        if (base)                                 \
            r->field = take(&p, n_);              \
        total += rounded(n_);                     \
    } while (0)

/* floats of the vision run, pointing its views when base != NULL */
static size_t vision_layout(struct clip_vision_run *r, const struct clip_model *m, float *base)
{
    const struct clip_vision_config *v = &m->cfg.vision;
    const size_t B = r->max_B, T = r->T, P = r->P, K = r->K, C = v->hidden, F = v->intermediate;
    const size_t NA = acts_slots(r->train, r->recompute, v->layers);
    const size_t NR = r->train ? v->layers + 1 : 2;
    const size_t BTC = mul(mul(B, T), C);
    float *p = base;
    size_t total = 0;

    r->layer_stride = rounded(layer_acts_size(B, T, C, v->heads, F, r->acts_store));
    if (base)
        r->layer_acts = take(&p, mul(NA, r->layer_stride));
    total += mul(NA, r->layer_stride);
    TAKE(acts_scratch, block_acts_scratch_size_as(B, T, C, F, r->acts_store));
    TAKE(patches, mul(mul(B, P), K));
    TAKE(patch_out, mul(mul(B, P), C));
    TAKE(emb, BTC);
    TAKE(pre_mean, mul(B, T));
    TAKE(pre_rstd, mul(B, T));
    TAKE(res, mul(NR, BTC));
    TAKE(pooled, mul(B, C));
    TAKE(post, mul(B, C));
    TAKE(post_mean, B);
    TAKE(post_rstd, B);
    if (r->train) {
        TAKE(gacts_buf, layer_grad_acts_size(B, T, C, v->heads, F));
        TAKE(dres[0], BTC);
        TAKE(dres[1], BTC);
        TAKE(dpost, mul(B, C));
        TAKE(dpooled, mul(B, C));
        TAKE(dpatch_out, mul(mul(B, P), C));
        TAKE(dpatches, mul(mul(B, P), K));
    }
    return total;
}

void clip_vision_run_init_as(struct clip_vision_run *r, const struct clip_model *m, size_t max_B,
                             bool train, bool recompute, enum block_acts_store st)
{
    const struct clip_vision_config *v = &m->cfg.vision;
    const size_t g = v->image_size / v->patch_size;

    memset(r, 0, sizeof(*r));
    RL_ASSERT(max_B > 0);
    r->max_B = max_B;
    r->train = train;
    r->recompute = recompute;
    r->acts_store = st;
    r->P = g * g;
    r->T = r->P + 1;
    r->K = mul(v->num_channels, mul(v->patch_size, v->patch_size));
    r->pool_last = true;
    r->n_floats = vision_layout(r, m, NULL);
    r->buf = xcalloc_aligned(r->n_floats, sizeof(float));
    vision_layout(r, m, r->buf);
    r->acts = xcalloc(train ? v->layers : 1, sizeof(*r->acts));
    if (recompute)
        r->rngs = xcalloc(mul(v->layers, BLOCK_NUM_LINEARS), sizeof(*r->rngs));
}

void clip_vision_run_init(struct clip_vision_run *r, const struct clip_model *m, size_t max_B,
                          bool train)
{
    clip_vision_run_init_as(r, m, max_B, train, false, BLOCK_ACTS_FP32);
}

void clip_vision_run_init_recompute(struct clip_vision_run *r, const struct clip_model *m,
                                    size_t max_B)
{
    clip_vision_run_init_as(r, m, max_B, true, true, BLOCK_ACTS_FP32);
}

void clip_vision_run_store_bf16(struct clip_vision_run *r, const struct clip_model *m)
{
    if (r->acts_store == BLOCK_ACTS_BF16)
        return;
    free(r->buf);
    r->acts_store = BLOCK_ACTS_BF16;
    r->n_floats = vision_layout(r, m, NULL);
    r->buf = xcalloc_aligned(r->n_floats, sizeof(float));
    vision_layout(r, m, r->buf);
}

void clip_vision_run_free(struct clip_vision_run *r)
{
    free(r->buf);
    free(r->acts);
    free(r->rngs);
    memset(r, 0, sizeof(*r));
}

/* residual stream slot l (0 = the block input of layer 0) */
static float *res_slot(float *res, bool train, size_t l, size_t BTC)
{
    return res + (train ? l : l % 2) * BTC;
}

/* the adapters of layer l of a tower, or NULL */
static const struct block_adapters *layer_adapters(const struct clip_adapters *ca,
                                                   enum clip_tower t, size_t l)
{
    if (!ca)
        return NULL;
    return t == CLIP_TOWER_VISION ? &ca->vision[l] : &ca->text[l];
}

static bool has_adapter(const struct block_adapters *ad)
{
    if (!ad)
        return false;
    for (int i = 0; i < BLOCK_NUM_LINEARS; i++)
        if (ad->lin[i])
            return true;
    return false;
}

/* does this tower have adapters, and at most how many rows may they see */
static int check_adapter_rows(const struct clip_adapters *ca, enum clip_tower t, size_t n,
                              size_t L)
{
    size_t cap;

    if (!ca)
        return RL_OK;
    cap = t == CLIP_TOWER_VISION ? ca->max_images : ca->max_texts;
    for (size_t l = 0; l < L; l++)
        if (has_adapter(layer_adapters(ca, t, l)) && n > cap)
            return rl_error_set(RL_ERR_ARG, "%zu %s in a batch, but the adapters were sized "
                                "for %zu", n, t == CLIP_TOWER_VISION ? "images" : "texts", cap);
    return RL_OK;
}

int clip_vision_forward(struct clip_vision_run *r, const struct clip_model *m,
                        struct clip_adapters *ca, const float *pixels, size_t B,
                        float *image_embeds)
{
    const struct clip_vision_config *v = &m->cfg.vision;
    const struct clip_weights *w = &m->w;
    const size_t T = r->T, P = r->P, C = v->hidden, F = v->intermediate, L = v->layers;
    const size_t BTC = mul(mul(B, T), C);
    int rc;

    if (m->cfg.arch != CLIP_ARCH_CLIP)
        return rl_error_set(RL_ERR_ARG, "a DINOv2 model has no CLIP vision tower to run "
                            "(models/dinov2.h: dinov2_forward)");
    if (B == 0 || B > r->max_B)
        return rl_error_set(RL_ERR_ARG, "vision batch of %zu images; this run holds 1..%zu",
                            B, r->max_B);
    if ((rc = check_adapter_rows(ca, CLIP_TOWER_VISION, B, L)))
        return rc;
    r->B = B;

    /* embeddings: patches (conv as GEMM), class token, position */
    patch_embed_forward(r->patch_out, r->patches, pixels, w->v_patch, B, v->num_channels,
                        v->image_size, v->image_size, v->patch_size, C);
    class_embed_forward(r->emb, r->patch_out, w->v_class, w->v_pos, B, P, C);
    layernorm_forward(res_slot(r->res, r->train, 0, BTC), r->pre_mean, r->pre_rstd, r->emb,
                      w->v_pre_w, w->v_pre_b, mul(B, T), C, v->layer_norm_eps);

    /* the encoder; its last layer on the class tokens only, or on all
     * (clip_config_validate: at least one layer) */
    RL_ASSERT(L > 0);
    for (size_t l = 0; l < L; l++) {
        float *acts = r->layer_acts + acts_slot(r->train, r->recompute, l, L) * r->layer_stride;
        const float *in = res_slot(r->res, r->train, l, BTC);
        const struct block_adapters *ad = layer_adapters(ca, CLIP_TOWER_VISION, l);

        if (r->recompute)
            adapter_rngs_save(r->rngs + l * BLOCK_NUM_LINEARS, ad);

        if (l + 1 == L && r->pool_last) {
            block_pooled_acts_point(&r->last, acts, r->acts_scratch, B, T, C, v->heads, F);
            block_pooled_forward(r->pooled, &r->last, in, NULL, &m->vlayer[l], ad, &m->vblock,
                                 B, T);
            break;
        }
        struct block_acts *a = &r->acts[r->train ? l : 0];

        block_acts_point_as(a, acts, r->acts_scratch, B, T, C, v->heads, F, r->acts_store);
        block_forward_adapted(res_slot(r->res, r->train, l + 1, BTC), a, in, &m->vlayer[l],
                              ad, &m->vblock, B, T);
    }

    /* class token -> post_layernorm -> visual_projection */
    if (!r->pool_last)
        pool_rows_forward(r->pooled, res_slot(r->res, r->train, L, BTC), NULL, B, T, C);
    layernorm_forward(r->post, r->post_mean, r->post_rstd, r->pooled, w->v_post_w, w->v_post_b,
                      B, C, v->layer_norm_eps);
    linear_forward(image_embeds, r->post, w->v_proj, NULL, B, C, m->cfg.projection_dim);
    return RL_OK;
}

static const struct block_grads frozen_grads;    /* all NULL: nothing trained */

/* the lowest layer whose backward is needed: 0 when the embeddings want
 * gradients, else the lowest adapted layer; L when nothing needs any */
static size_t lowest_layer(const struct clip_adapters *ca, enum clip_tower t, size_t L,
                           bool need_all)
{
    if (need_all)
        return 0;
    for (size_t l = 0; l < L; l++)
        if (has_adapter(layer_adapters(ca, t, l)))
            return l;
    return L;
}

/* d res (of layer `stop`'s input) from d res of the last layer: layers
 * L-1 .. stop backward; returns the buffer holding the gradient w.r.t. the
 * input of layer `stop` (NULL when stop's input gradient is not wanted).
 * With rngs (a run with recomputation), the layers below `recompute_below`
 * run their forward again into their (shared) activations first, from the
 * kept input and with the adapters' streams as they were: the same bits. */
static float *encoder_backward(float *dres[2], struct block_grad_acts *ga,
                               struct block_acts *acts, float *res, size_t BTC,
                               const struct block_params *lp, struct block_grads *lg,
                               const struct clip_adapters *ca, enum clip_tower t,
                               const struct block_config *cfg, size_t L, size_t stop,
                               bool want_input, const struct rng *rngs, size_t recompute_below,
                               size_t B, size_t T)
{
    int cur = 0;

    for (size_t l = L; l-- > stop;) {
        float *din = (l > stop || want_input) ? dres[1 - cur] : NULL;
        struct block_grads g = lg ? lg[l] : frozen_grads;

        if (rngs && l < recompute_below) {
            const struct block_adapters *ad = layer_adapters(ca, t, l);

            adapter_rngs_restore(rngs + l * BLOCK_NUM_LINEARS, ad);
            /* the output slot is layer l+1's input, whose backward is done */
            block_forward_adapted(res + (l + 1) * BTC, &acts[l], res + l * BTC, &lp[l], ad, cfg,
                                  B, T);
        }
        if (din)
            memset(din, 0, BTC * sizeof(float));
        block_backward_adapted(din, &g, ga, dres[cur], &acts[l], res + l * BTC, &lp[l],
                               layer_adapters(ca, t, l), cfg, B, T);
        cur = 1 - cur;
    }
    return want_input ? dres[cur] : NULL;
}

void clip_vision_backward(struct clip_vision_run *r, const struct clip_model *m,
                          struct clip_adapters *ca, struct clip_grads *g,
                          const float *d_image_embeds, float *dpixels)
{
    const struct clip_vision_config *v = &m->cfg.vision;
    const struct clip_weights *w = &m->w;
    const struct clip_weights *gw = g ? &g->w : NULL;
    const size_t B = r->B, T = r->T, P = r->P, C = v->hidden, L = v->layers;
    const size_t BTC = mul(mul(B, T), C), BT = mul(B, T);
    const bool need_all = g != NULL || dpixels != NULL;
    const size_t stop = lowest_layer(ca, CLIP_TOWER_VISION, L, need_all);
    size_t L_below = L;                 /* layers encoder_backward runs */
    float *d0;

    RL_ASSERT(r->train && B > 0);
    if (stop == L && !g)
        return;                                   /* nothing to train here */

    /* image_embeds = post @ v_proj^T; post = post_layernorm(pooled) */
    memset(r->dpost, 0, mul(B, C) * sizeof(float));
    memset(r->dpooled, 0, mul(B, C) * sizeof(float));
    linear_backward(r->dpost, gw ? gw->v_proj : NULL, NULL, d_image_embeds, r->post, w->v_proj,
                    B, C, m->cfg.projection_dim);
    layernorm_backward(r->dpooled, gw ? gw->v_post_w : NULL, gw ? gw->v_post_b : NULL, r->dpost,
                       r->pooled, w->v_post_w, r->post_mean, r->post_rstd, B, C);
    if (stop == L)
        return;
    if (r->pool_last) {
        /* the last layer from the class tokens; dres[0] = d its input */
        float *din = L - 1 > stop || need_all ? r->dres[0] : NULL;
        struct block_grads lg = g ? g->vlayer[L - 1] : frozen_grads;

        block_pooled_grad_acts_point(&r->glast, r->gacts_buf, B, T, C, v->heads,
                                     v->intermediate);
        if (din)
            memset(din, 0, BTC * sizeof(float));
        block_pooled_backward(din, &lg, &r->glast, r->dpooled, &r->last,
                              r->res + (L - 1) * BTC, NULL, &m->vlayer[L - 1],
                              layer_adapters(ca, CLIP_TOWER_VISION, L - 1), &m->vblock, B, T);
        L_below = L - 1;
    } else {
        /* pooled = res[L][:, 0] */
        memset(r->dres[0], 0, BTC * sizeof(float));
        pool_rows_backward(r->dres[0], r->dpooled, NULL, B, T, C);
    }

    block_grad_acts_point(&r->gacts, r->gacts_buf, B, T, C, v->heads, v->intermediate);
    for (size_t l = 0; l < L_below; l++)
        block_acts_point_as(&r->acts[l],
                            r->layer_acts + acts_slot(true, r->recompute, l, L) * r->layer_stride,
                            r->acts_scratch, B, T, C, v->heads, v->intermediate, r->acts_store);
    d0 = encoder_backward(r->dres, &r->gacts, r->acts, r->res, BTC, m->vlayer,
                          g ? g->vlayer : NULL, ca, CLIP_TOWER_VISION, &m->vblock, L_below,
                          stop, need_all, r->rngs, L - 1, B, T);
    if (!need_all)
        return;

    /* res[0] = pre_layrnorm(emb); emb = class/patches + position */
    float *demb = d0 == r->dres[0] ? r->dres[1] : r->dres[0];
    memset(demb, 0, BTC * sizeof(float));
    layernorm_backward(demb, gw ? gw->v_pre_w : NULL, gw ? gw->v_pre_b : NULL, d0, r->emb,
                       w->v_pre_w, r->pre_mean, r->pre_rstd, BT, C);
    memset(r->dpatch_out, 0, mul(mul(B, P), C) * sizeof(float));
    class_embed_backward(r->dpatch_out, gw ? gw->v_class : NULL, gw ? gw->v_pos : NULL, demb,
                         B, P, C);
    patch_embed_backward(dpixels, gw ? gw->v_patch : NULL, r->dpatches, r->dpatch_out,
                         r->patches, w->v_patch, B, v->num_channels, v->image_size,
                         v->image_size, v->patch_size, C);
}

/* ------------------------------------------------------------------------ */
/* text tower                                                                */

static size_t text_layout(struct clip_text_run *r, const struct clip_model *m, float *base)
{
    const struct clip_text_config *t = &m->cfg.text;
    const size_t B = r->max_B, T = r->max_T, C = t->hidden, F = t->intermediate;
    const size_t NA = acts_slots(r->train, r->recompute, t->layers);
    const size_t NR = r->train ? t->layers + 1 : 2;
    const size_t BTC = mul(mul(B, T), C);
    float *p = base;
    size_t total = 0;

    r->layer_stride = rounded(layer_acts_size(B, T, C, t->heads, F, r->acts_store));
    if (base)
        r->layer_acts = take(&p, mul(NA, r->layer_stride));
    total += mul(NA, r->layer_stride);
    TAKE(acts_scratch, block_acts_scratch_size_as(B, T, C, F, r->acts_store));
    TAKE(res, mul(NR, BTC));
    TAKE(pooled, mul(B, C));
    TAKE(fin, mul(B, C));
    TAKE(fin_mean, B);
    TAKE(fin_rstd, B);
    if (r->train) {
        TAKE(gacts_buf, layer_grad_acts_size(B, T, C, t->heads, F));
        TAKE(dres[0], BTC);
        TAKE(dres[1], BTC);
        TAKE(dfin, mul(B, C));
        TAKE(dpooled, mul(B, C));
    }
#undef TAKE
    return total;
}

void clip_text_run_init_as(struct clip_text_run *r, const struct clip_model *m, size_t max_B,
                           size_t max_T, bool train, bool recompute, enum block_acts_store st)
{
    memset(r, 0, sizeof(*r));
    RL_ASSERT(max_B > 0);
    r->max_B = max_B;
    r->ctx = m->cfg.text.context;
    r->max_T = max_T == 0 || max_T > r->ctx ? r->ctx : max_T;
    r->train = train;
    r->recompute = recompute;
    r->acts_store = st;
    r->cut = true;
    r->pool_last = true;
    r->n_floats = text_layout(r, m, NULL);
    r->buf = xcalloc_aligned(r->n_floats, sizeof(float));
    text_layout(r, m, r->buf);
    r->acts = xcalloc(train ? m->cfg.text.layers : 1, sizeof(*r->acts));
    r->ids = xcalloc(mul(max_B, r->max_T), sizeof(*r->ids));
    r->eot = xcalloc(max_B, sizeof(*r->eot));
    if (recompute)
        r->rngs = xcalloc(mul(m->cfg.text.layers, BLOCK_NUM_LINEARS), sizeof(*r->rngs));
}

void clip_text_run_init(struct clip_text_run *r, const struct clip_model *m, size_t max_B,
                        size_t max_T, bool train)
{
    clip_text_run_init_as(r, m, max_B, max_T, train, false, BLOCK_ACTS_FP32);
}

void clip_text_run_init_recompute(struct clip_text_run *r, const struct clip_model *m,
                                  size_t max_B, size_t max_T)
{
    clip_text_run_init_as(r, m, max_B, max_T, true, true, BLOCK_ACTS_FP32);
}

void clip_text_run_store_bf16(struct clip_text_run *r, const struct clip_model *m)
{
    if (r->acts_store == BLOCK_ACTS_BF16)
        return;
    free(r->buf);
    r->acts_store = BLOCK_ACTS_BF16;
    r->n_floats = text_layout(r, m, NULL);
    r->buf = xcalloc_aligned(r->n_floats, sizeof(float));
    text_layout(r, m, r->buf);
}

void clip_text_run_free(struct clip_text_run *r)
{
    free(r->buf);
    free(r->acts);
    free(r->rngs);
    free(r->ids);
    free(r->eot);
    memset(r, 0, sizeof(*r));
}

size_t clip_text_eot(const struct clip_text_config *tc, const int32_t *ids, size_t T)
{
    if (tc->eos_token_id == 2) {
        /* HF's legacy rule for old configs: the first position of the
         * largest id (the end-of-text token is the largest id in CLIP's
         * vocabulary) */
        size_t best = 0;

        if (T == 0)
            return SIZE_MAX;
        for (size_t t = 1; t < T; t++)
            if (ids[t] > ids[best])
                best = t;
        return best;
    }
    for (size_t t = 0; t < T; t++)
        if (ids[t] == tc->eos_token_id)
            return t;
    return SIZE_MAX;
}

int clip_text_forward(struct clip_text_run *r, const struct clip_model *m,
                      struct clip_adapters *ca, const int32_t *ids, size_t n, size_t T,
                      float *text_embeds)
{
    const struct clip_text_config *tc = &m->cfg.text;
    const struct clip_weights *w = &m->w;
    const size_t C = tc->hidden, F = tc->intermediate, L = tc->layers;
    size_t Tc = 0, BTC;
    int rc;

    if (m->cfg.arch != CLIP_ARCH_CLIP)
        return rl_error_set(RL_ERR_ARG, "a DINOv2 model has no text tower");
    if (n == 0 || n > r->max_B)
        return rl_error_set(RL_ERR_ARG, "text batch of %zu rows; this run holds 1..%zu", n,
                            r->max_B);
    if (T == 0 || T > r->ctx)
        return rl_error_set(RL_ERR_ARG, "text rows of %zu ids; the model's context is %zu", T,
                            r->ctx);
    if ((rc = check_adapter_rows(ca, CLIP_TOWER_TEXT, n, L)))
        return rc;
    for (size_t b = 0; b < n; b++) {
        const int32_t *row = ids + b * T;

        for (size_t t = 0; t < T; t++)
            if (row[t] < 0 || (size_t)row[t] >= tc->vocab_size)
                return rl_error_set(RL_ERR_ARG, "text row %zu position %zu: id %d outside the "
                                    "vocabulary (0..%zu)", b, t, (int)row[t],
                                    tc->vocab_size - 1);
        r->eot[b] = clip_text_eot(tc, row, T);
        if (r->eot[b] == SIZE_MAX)
            return rl_error_set(RL_ERR_ARG, "text row %zu has no end-of-text token (id %lld)",
                                b, (long long)tc->eos_token_id);
        if (r->eot[b] + 1 > Tc)
            Tc = r->eot[b] + 1;
    }
    /* positions after a row's end-of-text never reach its pooled vector
     * (causal attention, per-token everything else): run the first Tc */
    if (!r->cut)
        Tc = T;
    if (Tc > r->max_T)
        return rl_error_set(RL_ERR_ARG, "text runs to %zu tokens (longest end-of-text + 1); "
                            "this run holds %zu", Tc, r->max_T);
    r->B = n;
    r->T = Tc;
    for (size_t b = 0; b < n; b++)
        memcpy(r->ids + b * Tc, ids + b * T, Tc * sizeof(*ids));
    BTC = mul(mul(n, Tc), C);

    embedding_forward(res_slot(r->res, r->train, 0, BTC), r->ids, w->t_tok, w->t_pos, n, Tc, C);
    RL_ASSERT(L > 0);                       /* clip_config_validate */
    for (size_t l = 0; l < L; l++) {
        float *acts = r->layer_acts + acts_slot(r->train, r->recompute, l, L) * r->layer_stride;
        const float *in = res_slot(r->res, r->train, l, BTC);
        const struct block_adapters *ad = layer_adapters(ca, CLIP_TOWER_TEXT, l);

        if (r->recompute)
            adapter_rngs_save(r->rngs + l * BLOCK_NUM_LINEARS, ad);

        if (l + 1 == L && r->pool_last) {
            block_pooled_acts_point(&r->last, acts, r->acts_scratch, n, Tc, C, tc->heads, F);
            block_pooled_forward(r->pooled, &r->last, in, r->eot, &m->tlayer[l], ad, &m->tblock,
                                 n, Tc);
            break;
        }
        struct block_acts *a = &r->acts[r->train ? l : 0];

        block_acts_point_as(a, acts, r->acts_scratch, n, Tc, C, tc->heads, F, r->acts_store);
        block_forward_adapted(res_slot(r->res, r->train, l + 1, BTC), a, in, &m->tlayer[l], ad,
                              &m->tblock, n, Tc);
    }
    /* final_layer_norm is per token: pool first, then normalise the rows */
    if (!r->pool_last)
        pool_rows_forward(r->pooled, res_slot(r->res, r->train, L, BTC), r->eot, n, Tc, C);
    layernorm_forward(r->fin, r->fin_mean, r->fin_rstd, r->pooled, w->t_final_w, w->t_final_b,
                      n, C, tc->layer_norm_eps);
    linear_forward(text_embeds, r->fin, w->t_proj, NULL, n, C, m->cfg.projection_dim);
    return RL_OK;
}

void clip_text_backward(struct clip_text_run *r, const struct clip_model *m,
                        struct clip_adapters *ca, struct clip_grads *g,
                        const float *d_text_embeds)
{
    const struct clip_text_config *tc = &m->cfg.text;
    const struct clip_weights *w = &m->w;
    const struct clip_weights *gw = g ? &g->w : NULL;
    const size_t B = r->B, T = r->T, C = tc->hidden, L = tc->layers;
    const size_t BTC = mul(mul(B, T), C);
    const size_t stop = lowest_layer(ca, CLIP_TOWER_TEXT, L, g != NULL);
    size_t L_below = L;
    float *d0;

    RL_ASSERT(r->train && B > 0);
    if (stop == L && !g)
        return;

    memset(r->dfin, 0, mul(B, C) * sizeof(float));
    memset(r->dpooled, 0, mul(B, C) * sizeof(float));
    linear_backward(r->dfin, gw ? gw->t_proj : NULL, NULL, d_text_embeds, r->fin, w->t_proj,
                    B, C, m->cfg.projection_dim);
    layernorm_backward(r->dpooled, gw ? gw->t_final_w : NULL, gw ? gw->t_final_b : NULL,
                       r->dfin, r->pooled, w->t_final_w, r->fin_mean, r->fin_rstd, B, C);
    if (stop == L)
        return;
    if (r->pool_last) {
        /* the last layer from the end-of-text tokens, as the vision tower's */
        float *din = L - 1 > stop || g ? r->dres[0] : NULL;
        struct block_grads lg = g ? g->tlayer[L - 1] : frozen_grads;

        block_pooled_grad_acts_point(&r->glast, r->gacts_buf, B, T, C, tc->heads,
                                     tc->intermediate);
        if (din)
            memset(din, 0, BTC * sizeof(float));
        block_pooled_backward(din, &lg, &r->glast, r->dpooled, &r->last,
                              r->res + (L - 1) * BTC, r->eot, &m->tlayer[L - 1],
                              layer_adapters(ca, CLIP_TOWER_TEXT, L - 1), &m->tblock, B, T);
        L_below = L - 1;
    } else {
        memset(r->dres[0], 0, BTC * sizeof(float));
        pool_rows_backward(r->dres[0], r->dpooled, r->eot, B, T, C);
    }

    block_grad_acts_point(&r->gacts, r->gacts_buf, B, T, C, tc->heads, tc->intermediate);
    for (size_t l = 0; l < L_below; l++)
        block_acts_point_as(&r->acts[l],
                            r->layer_acts + acts_slot(true, r->recompute, l, L) * r->layer_stride,
                            r->acts_scratch, B, T, C, tc->heads, tc->intermediate,
                            r->acts_store);
    d0 = encoder_backward(r->dres, &r->gacts, r->acts, r->res, BTC, m->tlayer,
                          g ? g->tlayer : NULL, ca, CLIP_TOWER_TEXT, &m->tblock, L_below,
                          stop, g != NULL, r->rngs, L - 1, B, T);
    if (g)
        embedding_backward(gw->t_tok, gw->t_pos, d0, r->ids, B, T, C);
}

/* ------------------------------------------------------------------------ */
/* heads                                                                     */

void clip_head_init(struct clip_head *h, size_t max_N, size_t max_M, size_t D)
{
    size_t total = 0, NM = mul(max_N, max_M);
    float *p;

    memset(h, 0, sizeof(*h));
    RL_ASSERT(max_N > 0 && max_M > 0 && D > 0);
    h->max_N = max_N;
    h->max_M = max_M;
    h->D = D;
    total = 2 * rounded(mul(max_N, D)) + 2 * rounded(mul(max_M, D)) + rounded(max_N) +
            rounded(max_M) + 4 * rounded(NM);
    h->buf = xcalloc_aligned(total, sizeof(float));
    p = h->buf;
    h->a = take(&p, mul(max_N, D));
    h->da = take(&p, mul(max_N, D));
    h->b = take(&p, mul(max_M, D));
    h->db = take(&p, mul(max_M, D));
    h->a_norm = take(&p, max_N);
    h->b_norm = take(&p, max_M);
    h->logits = take(&p, NM);
    h->probs = take(&p, NM);
    h->probs_t = take(&p, NM);
    h->dlogits = take(&p, NM);
}

void clip_head_free(struct clip_head *h)
{
    free(h->buf);
    memset(h, 0, sizeof(*h));
}

float clip_logit_scale(const struct clip_model *m)
{
    return expf(m->w.logit_scale[0]);
}

void clip_head_logits(struct clip_head *h, const float *img, const float *txt, size_t N,
                      size_t M, float scale)
{
    RL_ASSERT(N > 0 && N <= h->max_N && M > 0 && M <= h->max_M);
    h->N = N;
    h->M = M;
    h->scale = scale;
    h->loss = CLIP_LOSS_NONE;
    l2norm_forward(h->a, h->a_norm, img, N, h->D);
    l2norm_forward(h->b, h->b_norm, txt, M, h->D);
    cosine_logits_forward(h->logits, h->a, h->b, scale, N, M, h->D);
}

float clip_head_contrastive(struct clip_head *h)
{
    RL_ASSERT(h->N == h->M && h->N > 0);
    h->loss = CLIP_LOSS_CONTRASTIVE;
    return clip_loss_forward(h->probs, h->probs_t, h->logits, h->N);
}

float clip_head_crossentropy(struct clip_head *h, const int32_t *targets)
{
    RL_ASSERT(h->N > 0);
    h->loss = CLIP_LOSS_CROSSENTROPY;
    h->targets = targets;
    return crossentropy_forward(h->probs, h->logits, targets, h->N, h->M);
}

void clip_head_backward(struct clip_head *h, float *dimg, float *dtxt, float *dlogit_scale,
                        float dloss)
{
    const size_t N = h->N, M = h->M, D = h->D;
    float dscale = 0.0f;

    RL_ASSERT(h->loss != CLIP_LOSS_NONE);
    memset(h->dlogits, 0, mul(N, M) * sizeof(float));
    if (h->loss == CLIP_LOSS_CONTRASTIVE)
        clip_loss_backward(h->dlogits, h->probs, h->probs_t, dloss, N);
    else
        crossentropy_backward(h->dlogits, h->probs, h->targets, dloss, N, M);
    memset(h->da, 0, mul(N, D) * sizeof(float));
    memset(h->db, 0, mul(M, D) * sizeof(float));
    cosine_logits_backward(h->da, h->db, &dscale, h->dlogits, h->a, h->b, h->scale, N, M, D);
    /* scale = exp(logit_scale): d logit_scale = d scale * scale */
    if (dlogit_scale)
        *dlogit_scale += dscale * h->scale;
    /* the l2norm backward accumulates into its input gradient */
    if (dimg)
        l2norm_backward(dimg, h->da, h->a, h->a_norm, N, D);
    if (dtxt)
        l2norm_backward(dtxt, h->db, h->b, h->b_norm, M, D);
}

void clip_class_features(float *out, const float *txt, size_t M, size_t K, size_t D)
{
    RL_ASSERT(K > 0);
    for (size_t c = 0; c < M; c++) {
        float *o = out + c * D;
        double ss = 0.0;

        for (size_t d = 0; d < D; d++)
            o[d] = 0.0f;
        for (size_t k = 0; k < K; k++) {
            const float *x = txt + (c * K + k) * D;
            double n2 = 0.0;
            float inv;

            for (size_t d = 0; d < D; d++)
                n2 += (double)x[d] * (double)x[d];
            inv = n2 > 0.0 ? (float)(1.0 / sqrt(n2)) : 0.0f;
            for (size_t d = 0; d < D; d++)
                o[d] += x[d] * inv / (float)K;
        }
        for (size_t d = 0; d < D; d++)
            ss += (double)o[d] * (double)o[d];
        if (ss > 0.0) {
            float inv = (float)(1.0 / sqrt(ss));

            for (size_t d = 0; d < D; d++)
                o[d] *= inv;
        }
    }
}
