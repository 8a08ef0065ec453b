/*
 * dinov2.c: the DINOv2 backbone's forward and backward (models/dinov2.h):
 * embeddings with the position table interpolated to the input size, the
 * block.h layers (LayerScale through block_params.ls1/ls2), the final
 * layernorm and the class / class+mean-patch features.
 */
#include "models/dinov2.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/status.h"
#include "models/nn.h"

/* ------------------------------------------------------------------------ */
/* position embeddings at another grid: torch's upsample_bicubic2d           */

/* Keys' cubic convolution with A = -0.75 (PyTorch's non-antialiased
 * bicubic): weights of the 4 taps at input_index - 1 .. + 2 for offset t */
static void cubic_coeffs(float c[4], float t)
{
    const float A = -0.75f;
    float x1 = t, x2 = 1.0f - t;

    c[0] = ((A * (x1 + 1.0f) - 5.0f * A) * (x1 + 1.0f) + 8.0f * A) * (x1 + 1.0f) - 4.0f * A;
    c[1] = ((A + 2.0f) * x1 - (A + 3.0f)) * x1 * x1 + 1.0f;
    c[2] = ((A + 2.0f) * x2 - (A + 3.0f)) * x2 * x2 + 1.0f;
    c[3] = ((A * (x2 + 1.0f) - 5.0f * A) * (x2 + 1.0f) + 8.0f * A) * (x2 + 1.0f) - 4.0f * A;
}

/* output index o of a resize from n_in to n_out: the 4 clamped taps and
 * their weights (area_pixel_compute_source_index with cubic = true, then
 * guard_index_and_lambda, in float as torch computes them for float input) */
static void cubic_taps(size_t o, size_t n_in, size_t n_out, size_t idx[4], float w[4])
{
    const float scale = (float)n_in / (float)n_out;
    const float real = scale * ((float)o + 0.5f) - 0.5f;
    long in = (long)floorf(real);
    float t;

    if (in > (long)n_in - 1)
        in = (long)n_in - 1;
    t = real - (float)in;
    t = t < 0.0f ? 0.0f : t > 1.0f ? 1.0f : t;
    cubic_coeffs(w, t);
    for (long k = 0; k < 4; k++) {
        long j = in - 1 + k;

        idx[k] = (size_t)(j < 0 ? 0 : j > (long)n_in - 1 ? (long)n_in - 1 : j);
    }
}

/* the antialiased variant (F.interpolate(..., antialias=True), PIL's
 * filter): Keys' kernel with A = -0.5 stretched by the scale when
 * shrinking, the taps inside the support, weights normalised to sum 1 */
#define AA_MAX_TAPS 64

static float aa_filter(float x)
{
    const float a = -0.5f;

    x = fabsf(x);
    if (x < 1.0f)
        return ((a + 2.0f) * x - (a + 3.0f)) * x * x + 1.0f;
    if (x < 2.0f)
        return ((a * x - 5.0f * a) * x + 8.0f * a) * x - 4.0f * a;
    return 0.0f;
}

/* taps of output o: first input index, count, weights */
static size_t aa_taps(size_t o, size_t n_in, size_t n_out, size_t *first, float w[AA_MAX_TAPS])
{
    const float scale = (float)n_in / (float)n_out;
    const float support = scale >= 1.0f ? 2.0f * scale : 2.0f;
    const float invscale = scale >= 1.0f ? 1.0f / scale : 1.0f;
    const float center = scale * ((float)o + 0.5f);
    long lo = (long)(center - support + 0.5f), hi = (long)(center + support + 0.5f);
    float total = 0.0f;
    size_t k;

    if (lo < 0)
        lo = 0;
    if (hi > (long)n_in)
        hi = (long)n_in;
    k = hi > lo ? (size_t)(hi - lo) : 0;
    RL_ASSERT(k <= AA_MAX_TAPS);
    for (size_t j = 0; j < k; j++) {
        w[j] = aa_filter(((float)j + (float)lo - center + 0.5f) * invscale);
        total += w[j];
    }
    if (total != 0.0f)
        for (size_t j = 0; j < k; j++)
            w[j] /= total;
    *first = (size_t)lo;
    return k;
}

void dinov2_interpolate_pos_aa(float *out, const float *src, size_t n, size_t oh, size_t ow,
                               size_t C)
{
    for (size_t y = 0; y < oh; y++) {
        size_t y0, x0, ky, kx;
        float wy[AA_MAX_TAPS], wx[AA_MAX_TAPS];

        ky = aa_taps(y, n, oh, &y0, wy);
        for (size_t x = 0; x < ow; x++) {
            float *o = out + (y * ow + x) * C;

            kx = aa_taps(x, n, ow, &x0, wx);
            for (size_t c = 0; c < C; c++) {
                float acc = 0.0f;

                for (size_t i = 0; i < ky; i++) {
                    const float *row = src + (y0 + i) * n * C + c;
                    float h = 0.0f;

                    for (size_t j = 0; j < kx; j++)
                        h += wx[j] * row[(x0 + j) * C];
                    acc += wy[i] * h;
                }
                o[c] = acc;
            }
        }
    }
}

void dinov2_interpolate_pos(float *out, const float *src, size_t n, size_t oh, size_t ow,
                            size_t C)
{
    for (size_t y = 0; y < oh; y++) {
        size_t iy[4], ix[4];
        float wy[4], wx[4];

        cubic_taps(y, n, oh, iy, wy);
        for (size_t x = 0; x < ow; x++) {
            float *o = out + (y * ow + x) * C;

            cubic_taps(x, n, ow, ix, wx);
            for (size_t c = 0; c < C; c++) {
                float acc = 0.0f;

                for (int i = 0; i < 4; i++) {
                    const float *row = src + iy[i] * n * C + c;
                    float h = wx[0] * row[ix[0] * C] + wx[1] * row[ix[1] * C] +
                              wx[2] * row[ix[2] * C] + wx[3] * row[ix[3] * C];

                    acc += wy[i] * h;
                }
                o[c] = acc;
            }
        }
    }
}

/* ------------------------------------------------------------------------ */
/* features                                                                  */

int dinov2_pool_parse(const char *name, enum dinov2_pool *out)
{
    if (!strcmp(name, "cls"))
        *out = DINOV2_POOL_CLS;
    else if (!strcmp(name, "cls_mean"))
        *out = DINOV2_POOL_CLS_MEAN;
    else
        return rl_error_set(RL_ERR_ARG, "features '%s': expected cls or cls_mean", name);
    return RL_OK;
}

size_t dinov2_feature_dim(const struct clip_model *m, enum dinov2_pool pool)
{
    return (pool == DINOV2_POOL_CLS_MEAN ? 2 : 1) * m->cfg.vision.hidden;
}

/* ------------------------------------------------------------------------ */
/* the run                                                                   */

void dinov2_run_init(struct dinov2_run *r, const struct clip_model *m, size_t max_B, bool train)
{
    const struct clip_vision_config *v = &m->cfg.vision;
    const size_t S = v->input_size ? v->input_size : v->image_size, ps = v->patch_size;
    const size_t C = v->hidden, NH = v->heads, F = v->intermediate, L = v->layers;
    const size_t g = S / ps, n0 = v->image_size / ps;
    const size_t P = g * g, R = v->register_tokens, T = 1 + R + P, B = max_B;
    const size_t K = v->num_channels * ps * ps, NT = B * T;
    const size_t n_acts = train ? L : 1, n_res = train ? L + 1 : 2;
    const size_t per_layer = block_acts_size(B, T, C, NH, F);
    const size_t scratch = block_acts_scratch_size(B, T, C, F);
    size_t n = 0;

    RL_ASSERT(m->cfg.arch == CLIP_ARCH_DINOV2 && S % ps == 0 && max_B > 0);
    memset(r, 0, sizeof(*r));
    r->max_B = max_B;
    r->S = S;
    r->P = P;
    r->R = R;
    r->T = T;
    r->K = K;
    r->train = train;
    /* pos, acts, scratch, patches, patch_out, res, fin, mean, rstd */
    n = (1 + P) * C + n_acts * per_layer + scratch + B * P * K + B * P * C +
        n_res * NT * C + NT * C + 2 * NT;
    if (train)
        n += block_grad_acts_size(B, T, C, NH, F) + 3 * NT * C + B * P * C + B * P * K;
    r->n_floats = n;
    r->buf = xcalloc_aligned(n, sizeof(float));

    float *p = r->buf, *acts_scratch;
    r->pos = p;                         p += (1 + P) * C;
    r->acts = xcalloc(n_acts, sizeof(*r->acts));
    float *layer_acts = p;              p += n_acts * per_layer;
    acts_scratch = p;                   p += scratch;
    for (size_t l = 0; l < n_acts; l++)
        block_acts_point(&r->acts[l], layer_acts + l * per_layer, acts_scratch, B, T, C, NH, F);
    r->patches = p;                     p += B * P * K;
    r->patch_out = p;                   p += B * P * C;
    r->res = p;                         p += n_res * NT * C;
    r->fin = p;                         p += NT * C;
    r->fin_mean = p;                    p += NT;
    r->fin_rstd = p;                    p += NT;
    if (train) {
        block_grad_acts_point(&r->gacts, p, B, T, C, NH, F);
        p += block_grad_acts_size(B, T, C, NH, F);
        r->dres[0] = p;                 p += NT * C;
        r->dres[1] = p;                 p += NT * C;
        r->dfin = p;                    p += NT * C;
        r->dpatch_out = p;              p += B * P * C;
        r->dpatches = p;                p += B * P * K;
    }
    RL_ASSERT((size_t)(p - r->buf) == n);

    /* the position table at this size: class row, then the patch grid */
    memcpy(r->pos, m->w.v_pos, C * sizeof(float));
    if (g == n0)
        memcpy(r->pos + C, m->w.v_pos + C, P * C * sizeof(float));
    else if (R)     /* Dinov2WithRegistersEmbeddings: antialias=True */
        dinov2_interpolate_pos_aa(r->pos + C, m->w.v_pos + C, n0, g, g, C);
    else
        dinov2_interpolate_pos(r->pos + C, m->w.v_pos + C, n0, g, g, C);
}

void dinov2_run_free(struct dinov2_run *r)
{
    free(r->buf);
    free(r->acts);
    memset(r, 0, sizeof(*r));
}

static const struct block_adapters *layer_adapters(const struct clip_adapters *ca, size_t l)
{
    return ca && ca->vision ? &ca->vision[l] : NULL;
}

int dinov2_forward(struct dinov2_run *r, const struct clip_model *m, struct clip_adapters *ca,
                   const float *pixels, size_t B, enum dinov2_pool pool, float *feats)
{
    const struct clip_vision_config *v = &m->cfg.vision;
    const size_t C = v->hidden, L = v->layers, T = r->T, P = r->P, R = r->R, NT = B * T;
    const size_t FD = dinov2_feature_dim(m, pool);

    if (B == 0 || B > r->max_B || (ca && B > ca->max_images))
        return rl_error_set(RL_ERR_ARG, "dinov2 forward: batch %zu outside 1..%zu", B,
                            ca && ca->max_images < r->max_B ? ca->max_images : r->max_B);
    r->B = B;
    r->pool = pool;
    /* at the native grid the model's own table (current: pretraining
     * updates it between steps); at another size the one resized at init */
    const float *pos = r->S == v->image_size ? m->w.v_pos : r->pos;

    /* patches (B,P,C) = conv(pixels) + bias */
    patch_embed_forward(r->patch_out, r->patches, pixels, m->w.v_patch, B, v->num_channels,
                        r->S, r->S, v->patch_size, C);
    /* tokens: [cls + pos0, registers, patches + pos[1..]] */
    for (size_t b = 0; b < B; b++) {
        float *x = r->res + b * T * C;

        for (size_t c = 0; c < C; c++)
            x[c] = m->w.v_class[c] + pos[c];
        if (R)
            memcpy(x + C, m->w.v_registers, R * C * sizeof(float));
        for (size_t p = 0; p < P; p++) {
            const float *po = r->patch_out + (b * P + p) * C, *pe = pos + (1 + p) * C;
            float *o = x + (1 + R + p) * C;

            for (size_t c = 0; c < C; c++)
                o[c] = (po[c] + m->w.v_patch_b[c]) + pe[c];
        }
    }
    /* the layers: res slot l+1 = layer l (slot); inference ping-pongs 2 */
    for (size_t l = 0; l < L; l++) {
        const float *in = r->res + (r->train ? l : l % 2) * NT * C;
        float *out = r->res + (r->train ? l + 1 : (l + 1) % 2) * NT * C;

        block_forward_adapted(out, &r->acts[r->train ? l : 0], in, &m->vlayer[l],
                              layer_adapters(ca, l), &m->vblock, B, T);
    }
    const float *last = r->res + (r->train ? L : L % 2) * NT * C;
    layernorm_forward(r->fin, r->fin_mean, r->fin_rstd, last, m->w.v_post_w, m->w.v_post_b, NT,
                      C, v->layer_norm_eps);
    for (size_t b = 0; b < B; b++) {
        const float *f = r->fin + b * T * C;
        float *o = feats + b * FD;

        memcpy(o, f, C * sizeof(float));
        if (pool == DINOV2_POOL_CLS_MEAN) {
            /* torch's mean over dim 1: a float sum, then / P */
            for (size_t c = 0; c < C; c++) {
                double s = 0.0;

                for (size_t p = 0; p < P; p++)
                    s += (double)f[(1 + R + p) * C + c];
                o[C + c] = (float)(s / (double)P);
            }
        }
    }
    return RL_OK;
}

/* the lowest layer holding an adapter, L when none */
static size_t lowest_adapted(const struct clip_adapters *ca, size_t L)
{
    for (size_t l = 0; ca && ca->vision && l < L; l++)
        for (int i = 0; i < BLOCK_NUM_LINEARS; i++)
            if (ca->vision[l].lin[i])
                return l;
    return L;
}

/* The shared backward: adapters' gradients (ca), every weight's (g), dpixels;
 * g != NULL walks every layer down to the embeddings. */
static void backward(struct dinov2_run *r, const struct clip_model *m, struct clip_adapters *ca,
                     struct dinov2_grads *g, const float *dfeats, float *dpixels)
{
    const struct clip_vision_config *v = &m->cfg.vision;
    const size_t B = r->B, C = v->hidden, L = v->layers, T = r->T, P = r->P, R = r->R;
    const size_t NT = B * T, FD = dinov2_feature_dim(m, r->pool);
    const size_t stop = dpixels || g ? 0 : lowest_adapted(ca, L);
    struct block_grads frozen;
    float *dout, *din;

    RL_ASSERT(r->train && B > 0);
    if (stop == L)
        return;                         /* nothing to train, no input gradient */
    memset(&frozen, 0, sizeof(frozen));
    /* features -> the layernorm's output rows */
    memset(r->dfin, 0, NT * C * sizeof(float));
    for (size_t b = 0; b < B; b++) {
        const float *d = dfeats + b * FD;
        float *f = r->dfin + b * T * C;

        for (size_t c = 0; c < C; c++)
            f[c] = d[c];
        if (r->pool == DINOV2_POOL_CLS_MEAN)
            for (size_t p = 0; p < P; p++)
                for (size_t c = 0; c < C; c++)
                    f[(1 + R + p) * C + c] = d[C + c] / (float)P;
    }
    dout = r->dres[0];
    memset(dout, 0, NT * C * sizeof(float));
    layernorm_backward(dout, g ? g->w.v_post_w : NULL, g ? g->w.v_post_b : NULL, r->dfin,
                       r->res + L * NT * C, m->w.v_post_w, r->fin_mean, r->fin_rstd, NT, C);
    for (size_t l = L; l-- > stop;) {
        const bool want_dx = l > stop || dpixels || g;

        din = want_dx ? r->dres[(L - l) % 2] : NULL;
        if (din)
            memset(din, 0, NT * C * sizeof(float));
        block_backward_adapted(din, g ? &g->vlayer[l] : &frozen, &r->gacts, dout, &r->acts[l],
                               r->res + l * NT * C, &m->vlayer[l], layer_adapters(ca, l),
                               &m->vblock, B, T);
        dout = din;
    }
    if (!dpixels && !g)
        return;
    /* dout = d tokens: [cls + pos0, registers, patches + bias + pos[1..]] */
    for (size_t b = 0; b < B; b++) {
        const float *dx = dout + b * T * C;

        memcpy(r->dpatch_out + b * P * C, dx + (1 + R) * C, P * C * sizeof(float));
        if (!g)
            continue;
        for (size_t c = 0; c < C; c++) {
            g->w.v_class[c] += dx[c];
            g->w.v_pos[c] += dx[c];
        }
        for (size_t i = 0; i < R * C; i++)
            g->w.v_registers[i] += dx[C + i];
        for (size_t p = 0; p < P; p++) {
            const float *d = dx + (1 + R + p) * C;
            float *dpos = g->w.v_pos + (1 + p) * C;

            for (size_t c = 0; c < C; c++) {
                g->w.v_patch_b[c] += d[c];
                dpos[c] += d[c];
            }
        }
    }
    patch_embed_backward(dpixels, g ? g->w.v_patch : NULL, r->dpatches, r->dpatch_out,
                         r->patches, m->w.v_patch, B, v->num_channels, r->S, r->S,
                         v->patch_size, C);
}

void dinov2_backward(struct dinov2_run *r, const struct clip_model *m, struct clip_adapters *ca,
                     const float *dfeats, float *dpixels)
{
    backward(r, m, ca, NULL, dfeats, dpixels);
}

/* ------------------------------------------------------------------------ */
/* every weight's gradient (pretraining)                                     */

void dinov2_grads_init(struct dinov2_grads *g, const struct clip_model *m)
{
    const struct clip_vision_config *v = &m->cfg.vision;
    const struct clip_weights *w = &m->w;
    float *const base = m->params;
    size_t sizes[BLOCK_NUM_PARAMS];
    const size_t stride = block_param_sizes(sizes, v->hidden, v->intermediate) + 2 * v->hidden;

    RL_ASSERT(m->cfg.arch == CLIP_ARCH_DINOV2);
    memset(g, 0, sizeof(*g));
    g->n = m->n_params;
    g->buf = xcalloc_aligned(g->n, sizeof(float));
#define AT(field) (w->field ? g->buf + (w->field - base) : NULL)
    g->w.v_patch = AT(v_patch);
    g->w.v_patch_b = AT(v_patch_b);
    g->w.v_class = AT(v_class);
    g->w.v_pos = AT(v_pos);
    g->w.v_mask = AT(v_mask);
    g->w.v_registers = AT(v_registers);
    g->w.v_layers = AT(v_layers);
    g->w.v_post_w = AT(v_post_w);
    g->w.v_post_b = AT(v_post_b);
#undef AT
    g->vlayer = xcalloc(v->layers ? v->layers : 1, sizeof(*g->vlayer));
    for (size_t l = 0; l < v->layers; l++)
        block_grads_point(&g->vlayer[l], g->w.v_layers + l * stride, v->hidden,
                          v->intermediate);
}

void dinov2_grads_free(struct dinov2_grads *g)
{
    free(g->buf);
    free(g->vlayer);
    memset(g, 0, sizeof(*g));
}

int dinov2_backward_full(struct dinov2_run *r, const struct clip_model *m, struct dinov2_grads *g,
                         const float *dfeats)
{
    if (r->S != m->cfg.vision.image_size)
        return rl_error_set(RL_ERR_ARG, "dinov2: every weight's gradient is computed at the "
                            "native input size %zu only (the run is at %zu: interpolated "
                            "position embeddings)", m->cfg.vision.image_size, r->S);
    backward(r, m, NULL, g, dfeats, NULL);
    return RL_OK;
}
