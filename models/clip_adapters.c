/*
 * clip_adapters.c: choosing which linears of a CLIP model get an adapter
 * (targets by tower, layer range and HF module name), and the trainable
 * block: every adapter's parameters in one float array, gradients in
 * another, so the optimizer steps one flat block.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/bf16.h"
#include "core/status.h"
#include "models/clip.h"
#include "models/dinov2.h"
#include "models/target_spec.h"
#include "formats/safetensors.h"

static const char *const tower_names[CLIP_NUM_TOWERS] = { "vision", "text" };
static const char *const tower_prefix[CLIP_NUM_TOWERS] = { "vision_model", "text_model" };

/* "all" is the six HF linears; in_proj (q, k, v packed) is chosen by name */
#define ALL_MODULES   ((1u << BLOCK_LIN_IN_PROJ) - 1u)
#define ANY_MODULE    ((1u << BLOCK_NUM_LINEARS) - 1u)
#define QKV_MODULES   ((1u << BLOCK_LIN_Q) | (1u << BLOCK_LIN_K) | (1u << BLOCK_LIN_V))
#define IN_PROJ_MODULE (1u << BLOCK_LIN_IN_PROJ)
#define MODULE_LIST "q_proj, k_proj, v_proj, out_proj, fc1, fc2, in_proj (or attn, qkv, mlp, all)"

/* ------------------------------------------------------------------------ */
/* parsing                                                                   */

/* one module word into a mask; 0 if unknown */
static unsigned module_mask(const char *w, size_t n)
{
    static const struct { const char *name; unsigned mask; } words[] = {
        { "attn", 0xFu }, { "qkv", 0x7u }, { "mlp", 0x30u }, { "all", ALL_MODULES },
        { "*", ALL_MODULES },
    };

    for (int i = 0; i < BLOCK_NUM_LINEARS; i++)
        if (strlen(block_linear_names[i]) == n && memcmp(block_linear_names[i], w, n) == 0)
            return 1u << i;
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
        if (strlen(words[i].name) == n && memcmp(words[i].name, w, n) == 0)
            return words[i].mask;
    return 0;
}

/* a decimal size in s[0..n); false if not one */
static bool parse_size(const char *s, size_t n, size_t *out)
{
    size_t v = 0;

    if (n == 0 || n > 9)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return false;
        v = v * 10 + (size_t)(s[i] - '0');
    }
    *out = v;
    return true;
}

/* one item "[TOWER:[LAYERS:]]MODULES" of length n */
static int parse_item(const char *item, size_t n, struct clip_target *t)
{
    const char *part[3];
    size_t len[3], np = 0, start = 0;

    for (size_t i = 0; i <= n; i++)
        if (i == n || item[i] == ':') {
            if (np == 3)
                return rl_error_set(RL_ERR_ARG, "adapter target '%.*s': expected "
                                    "[TOWER:[LAYERS:]]MODULES", (int)n, item);
            part[np] = item + start;
            len[np++] = i - start;
            start = i + 1;
        }
    t->towers = (1u << CLIP_NUM_TOWERS) - 1u;
    t->lo = 0;
    t->hi = SIZE_MAX;
    t->modules = 0;
    if (np >= 2) {
        const char *w = part[0];
        size_t wl = len[0];

        if (wl == 6 && memcmp(w, "vision", 6) == 0)
            t->towers = 1u << CLIP_TOWER_VISION;
        else if (wl == 4 && memcmp(w, "text", 4) == 0)
            t->towers = 1u << CLIP_TOWER_TEXT;
        else if (!((wl == 4 && memcmp(w, "both", 4) == 0) || (wl == 1 && w[0] == '*')))
            return rl_error_set(RL_ERR_ARG, "adapter target '%.*s': unknown tower '%.*s' "
                                "(expected vision, text or both)", (int)n, item, (int)wl, w);
    }
    if (np == 3) {
        const char *w = part[1], *dash = memchr(part[1], '-', len[1]);
        size_t wl = len[1];

        if (!((wl == 1 && w[0] == '*') || (wl == 3 && memcmp(w, "all", 3) == 0))) {
            bool ok = dash ? parse_size(w, (size_t)(dash - w), &t->lo) &&
                             parse_size(dash + 1, wl - (size_t)(dash - w) - 1, &t->hi)
                           : parse_size(w, wl, &t->lo);
            if (!dash)
                t->hi = t->lo;
            if (!ok || t->lo > t->hi)
                return rl_error_set(RL_ERR_ARG, "adapter target '%.*s': bad layer range '%.*s' "
                                    "(expected *, N or A-B)", (int)n, item, (int)wl, w);
        }
    }
    {
        const char *w = part[np - 1];
        size_t wl = len[np - 1], s = 0;

        for (size_t i = 0; i <= wl; i++)
            if (i == wl || w[i] == ',') {
                unsigned mk = module_mask(w + s, i - s);

                if (!mk)
                    return rl_error_set(RL_ERR_ARG, "adapter target '%.*s': unknown module "
                                        "'%.*s' (modules: " MODULE_LIST ")", (int)n, item,
                                        (int)(i - s), w + s);
                t->modules |= mk;
                s = i + 1;
            }
    }
    return RL_OK;
}

int clip_targets_parse(const char *spec, struct clip_target *out, size_t max, size_t *n_out)
{
    size_t n = 0, pos = 0, at, item_len;

    while (target_spec_next(spec, &pos, &at, &item_len)) {
        int rc;

        if (n == max)
            return rl_error_set(RL_ERR_ARG, "adapter targets '%s': more than %zu items", spec,
                                max);
        if ((rc = parse_item(spec + at, item_len, &out[n])))
            return rc;
        n++;
    }
    if (n == 0)
        return rl_error_set(RL_ERR_ARG, "adapter targets '%s': empty (modules: " MODULE_LIST ")",
                            spec);
    *n_out = n;
    return RL_OK;
}

/* ------------------------------------------------------------------------ */
/* the sites                                                                 */

/* "vision (layers 0-11), text (layers 0-11); modules: ..." */
static const char *what_exists(const struct clip_model *m, char *buf, size_t size)
{
    if (m->cfg.text.layers == 0) {      /* an image backbone (DINOv2) */
        snprintf(buf, size, "towers: vision (layers 0-%zu); modules: " MODULE_LIST,
                 m->cfg.vision.layers - 1);
        return buf;
    }
    snprintf(buf, size, "towers: vision (layers 0-%zu), text (layers 0-%zu); modules: "
             MODULE_LIST, m->cfg.vision.layers - 1, m->cfg.text.layers - 1);
    return buf;
}

static size_t tower_layers(const struct clip_model *m, enum clip_tower t)
{
    return t == CLIP_TOWER_VISION ? m->cfg.vision.layers : m->cfg.text.layers;
}

/* (d_out, d_in) of a linear */
static void lin_shape(const struct clip_model *m, enum clip_tower t, enum block_linear lin,
                      size_t *d_out, size_t *d_in)
{
    size_t C = t == CLIP_TOWER_VISION ? m->cfg.vision.hidden : m->cfg.text.hidden;
    size_t F = t == CLIP_TOWER_VISION ? m->cfg.vision.intermediate : m->cfg.text.intermediate;

    block_linear_shape(lin, C, F, d_out, d_in);
}

const char *clip_site_name(const struct clip_site *s, char *buf, size_t size)
{
    if (s->arch == CLIP_ARCH_DINOV2) {
        snprintf(buf, size, "encoder.layer.%zu.%s", s->layer, dinov2_linear_paths[s->lin]);
        return buf;
    }
    snprintf(buf, size, "%s.encoder.layers.%zu.%s", tower_prefix[s->tower], s->layer,
             block_linear_paths[s->lin]);
    return buf;
}

/* Mark the selected linears in sel[tower][layer] (bit masks); check every
 * target matches something inside its towers. */
static int select_sites(const struct clip_model *m, const struct clip_target *targets,
                        size_t n_targets, unsigned *sel[CLIP_NUM_TOWERS])
{
    char exists[256];

    for (size_t k = 0; k < n_targets; k++) {
        const struct clip_target *t = &targets[k];
        size_t matched = 0;

        if (t->modules == 0 || (t->modules & ~ANY_MODULE) || t->towers == 0 ||
            (t->towers & ~((1u << CLIP_NUM_TOWERS) - 1u)) || t->lo > t->hi)
            return rl_error_set(RL_ERR_ARG, "adapter target %zu is empty or malformed (%s)", k,
                                what_exists(m, exists, sizeof(exists)));
        for (int tw = 0; tw < CLIP_NUM_TOWERS; tw++) {
            size_t L = tower_layers(m, (enum clip_tower)tw);

            if (!(t->towers & (1u << tw)))
                continue;
            if (t->hi != SIZE_MAX && t->hi >= L)
                return rl_error_set(RL_ERR_ARG, "adapter target %zu: layers %zu-%zu, but the %s "
                                    "tower has layers 0-%zu (%s)", k, t->lo, t->hi,
                                    tower_names[tw], L - 1, what_exists(m, exists, sizeof(exists)));
            for (size_t l = t->lo; l < L && l <= t->hi; l++) {
                sel[tw][l] |= t->modules;
                matched++;
            }
        }
        if (matched == 0)
            return rl_error_set(RL_ERR_ARG, "adapter target %zu matches no linear layer (%s)", k,
                                what_exists(m, exists, sizeof(exists)));
    }
    /* in_proj is q, k and v: one adapter over the three, or theirs; a
     * DINOv2 checkpoint has no packed projection to name it by */
    for (int tw = 0; tw < CLIP_NUM_TOWERS; tw++)
        for (size_t l = 0; l < tower_layers(m, (enum clip_tower)tw); l++) {
            if ((sel[tw][l] & IN_PROJ_MODULE) && m->cfg.arch == CLIP_ARCH_DINOV2)
                return rl_error_set(RL_ERR_ARG, "adapter targets: in_proj (open_clip's packed "
                                    "q, k and v) is CLIP's; a DINOv2 model has separate query, "
                                    "key and value linears: use q_proj, k_proj, v_proj");
            if ((sel[tw][l] & IN_PROJ_MODULE) && (sel[tw][l] & QKV_MODULES))
                return rl_error_set(RL_ERR_ARG, "adapter targets: %s layer %zu gets both in_proj "
                                    "(q, k and v packed as one linear) and q_proj, k_proj or "
                                    "v_proj; choose one of the two", tower_names[tw], l);
        }
    return RL_OK;
}

int clip_adapters_init(struct clip_adapters *ca, const struct clip_model *m,
                       const struct adapter_cfg *cfg, const struct clip_target *targets,
                       size_t n_targets, size_t max_images, size_t max_texts)
{
    const size_t Lv = m->cfg.vision.layers, Lt = m->cfg.text.layers;
    unsigned *sel[CLIP_NUM_TOWERS];
    size_t n = 0, max_out = 0, max_in = 0, rows, trows;
    int rc;

    memset(ca, 0, sizeof(*ca));
    if (n_targets == 0)
        return rl_error_set(RL_ERR_ARG, "no adapter targets given");
    if (max_images == 0 && max_texts == 0)
        return rl_error_set(RL_ERR_ARG, "adapters need a batch size for at least one tower");
    sel[CLIP_TOWER_VISION] = xcalloc(Lv, sizeof(unsigned));
    sel[CLIP_TOWER_TEXT] = xcalloc(Lt, sizeof(unsigned));
    rc = select_sites(m, targets, n_targets, sel);
    if (rc)
        goto out;

    /* the sites, vision before text, by layer, by linear */
    for (int tw = 0; tw < CLIP_NUM_TOWERS; tw++)
        for (size_t l = 0; l < tower_layers(m, (enum clip_tower)tw); l++)
            for (int i = 0; i < BLOCK_NUM_LINEARS; i++)
                n += (sel[tw][l] >> i) & 1u;
    ca->sites = xcalloc(n, sizeof(*ca->sites));
    ca->adapters = xcalloc(n, sizeof(*ca->adapters));
    ca->vision = xcalloc(Lv, sizeof(*ca->vision));
    ca->text = xcalloc(Lt, sizeof(*ca->text));
    ca->max_images = max_images;
    ca->max_texts = max_texts;
    {
        const char *env = getenv("RANDLORA_ADAPTER_PATH");

        if (env && *env && clip_path_mode_parse(env, &ca->path_mode) != RL_OK) {
            rc = rl_error_set(RL_ERR_ARG, "RANDLORA_ADAPTER_PATH='%s': expected auto, "
                              "factored or merged", env);
            goto out;
        }
    }
    for (int tw = 0; tw < CLIP_NUM_TOWERS; tw++)
        for (size_t l = 0; l < tower_layers(m, (enum clip_tower)tw); l++)
            for (int i = 0; i < BLOCK_NUM_LINEARS; i++) {
                struct clip_site *s;
                size_t d_out, d_in;

                if (!((sel[tw][l] >> i) & 1u))
                    continue;
                s = &ca->sites[ca->n_sites++];
                s->arch = m->cfg.arch;
                s->tower = (enum clip_tower)tw;
                s->layer = l;
                s->lin = (enum block_linear)i;
                lin_shape(m, s->tower, s->lin, &d_out, &d_in);
                if (d_out > max_out)
                    max_out = d_out;
                if (d_in > max_in)
                    max_in = d_in;
            }

    /* the method: sized for the largest adapted layer and the most rows */
    rows = max_images * clip_vision_tokens(&m->cfg.vision);
    trows = max_texts * m->cfg.text.context;
    rc = adapter_method_init(&ca->method, cfg, max_out, max_in, rows > trows ? rows : trows);
    if (rc)
        goto out;

    /* the trainable block */
    for (size_t k = 0; k < ca->n_sites; k++) {
        struct clip_site *s = &ca->sites[k];
        size_t d_out, d_in;

        lin_shape(m, s->tower, s->lin, &d_out, &d_in);
        s->offset = ca->n_params;
        RL_ASSERT(size_add_ok(ca->n_params, adapter_n_trainable(&ca->method, d_out, d_in),
                              &ca->n_params));
    }
    ca->params = xcalloc_aligned(ca->n_params ? ca->n_params : 1, sizeof(float));
    ca->grads = xcalloc_aligned(ca->n_params ? ca->n_params : 1, sizeof(float));
    for (size_t k = 0; k < ca->n_sites; k++) {
        struct clip_site *s = &ca->sites[k];
        size_t d_out, d_in;
        char name[128];

        lin_shape(m, s->tower, s->lin, &d_out, &d_in);
        rc = adapter_init_layer(&ca->adapters[k], &ca->method, d_out, d_in,
                                ca->params + s->offset, ca->grads + s->offset,
                                s->lin == BLOCK_LIN_IN_PROJ ? ADAPTER_LAYER_PACKED_QKV
                                                            : ADAPTER_LAYER_LINEAR);
        if (rc) {
            rc = rl_error_prefix(rc, "%s", clip_site_name(s, name, sizeof(name)));
            goto out;
        }
        (s->tower == CLIP_TOWER_VISION ? ca->vision : ca->text)[s->layer].lin[s->lin] =
            &ca->adapters[k];
    }

out:
    free(sel[CLIP_TOWER_VISION]);
    free(sel[CLIP_TOWER_TEXT]);
    if (rc)
        clip_adapters_free(ca);
    return rc;
}

void clip_adapters_free(struct clip_adapters *ca)
{
    if (ca->adapters)
        for (size_t k = 0; k < ca->n_sites; k++)
            adapter_free(&ca->adapters[k]);
    adapter_method_free(&ca->method);
    free(ca->adapters);
    free(ca->sites);
    free(ca->vision);
    free(ca->text);
    free(ca->params);
    free(ca->grads);
    free(ca->merged);
    free(ca->drifted);
    free(ca->gw);
    free(ca->merged_params);
    if (ca->gw_sum)
        for (size_t k = 0; k < ca->n_sites; k++)
            free(ca->gw_sum[k]);
    free(ca->gw_sum);
    free(ca->w_bf16_lo);               /* w_bf16 is the model's */
    memset(ca, 0, sizeof(*ca));
}

void clip_adapters_zero_grad(struct clip_adapters *ca)
{
    if (ca->grads)
        memset(ca->grads, 0, ca->n_params * sizeof(float));
}

void clip_adapters_set_training(struct clip_adapters *ca, bool training)
{
    for (size_t k = 0; k < ca->n_sites; k++)
        adapter_set_training(&ca->adapters[k], training);
}

struct adapter *clip_adapters_find(const struct clip_adapters *ca, enum clip_tower tower,
                                   size_t layer, enum block_linear lin)
{
    for (size_t k = 0; k < ca->n_sites; k++) {
        const struct clip_site *s = &ca->sites[k];

        if (s->tower == tower && s->layer == layer && s->lin == lin)
            return &ca->adapters[k];
    }
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* the two paths: choosing, merging in place, rebasing                       */

int clip_path_mode_parse(const char *name, enum clip_path_mode *out)
{
    static const char *const names[] = { "auto", "factored", "merged" };

    for (int i = 0; i < 3; i++)
        if (strcmp(name, names[i]) == 0) {
            *out = (enum clip_path_mode)i;
            return RL_OK;
        }
    return rl_error_set(RL_ERR_ARG, "adapter path '%s': expected auto, factored or merged", name);
}

/* the frozen weight (d_out, d_in) of a site, writable: m->params is the
 * model's own block, viewed const by the layers; a weight given back under
 * bf16 (clip_model_linears_to_bf16: its view is NULL) asserts */
float *clip_site_weight(struct clip_model *m, const struct clip_site *s)
{
    const struct block_params *p = &(s->tower == CLIP_TOWER_VISION ? m->vlayer : m->tlayer)[s->layer];
    const float *w = block_linear_weight(p, s->lin);
    float *base = m->params;

    RL_ASSERT(w >= base && w < base + m->n_params);
    return base + (w - base);
}

static struct block_adapters *site_layer(struct clip_adapters *ca, const struct clip_site *s)
{
    return &(s->tower == CLIP_TOWER_VISION ? ca->vision : ca->text)[s->layer];
}

/* sites stay merged across optimizer steps only where re-merging is
 * cheaper than an unmerge and a merge (adapter_remerge); they need the
 * parameters their weight was merged with, n_params floats for all sites */
static bool keeps_merged(const struct clip_adapters *ca)
{
    return ca->method.ops && ca->method.ops->add_delta_change;
}

/* allocate the per-site state once */
static void path_state(struct clip_adapters *ca)
{
    if (!ca->merged) {
        const size_t n = ca->n_sites ? ca->n_sites : 1;

        ca->merged = xcalloc(n, sizeof(*ca->merged));
        ca->drifted = xcalloc(n, sizeof(*ca->drifted));
        ca->gw_sum = xcalloc(n, sizeof(*ca->gw_sum));
        if (keeps_merged(ca))
            ca->merged_params = xcalloc_aligned(ca->n_params ? ca->n_params : 1,
                                                sizeof(float));
    }
}

/* site k's weight-gradient sum for a step of several micro-batches, zeroed */
static float *site_gw_sum(struct clip_adapters *ca, size_t k)
{
    const size_t n = ca->adapters[k].d_out * ca->adapters[k].d_in;

    if (!ca->gw_sum[k])
        ca->gw_sum[k] = xcalloc_aligned(n, sizeof(float));
    memset(ca->gw_sum[k], 0, n * sizeof(float));
    return ca->gw_sum[k];
}

/* d_out * d_in of the largest adapted weight: the merged backward's scratch */
static size_t largest_weight(const struct clip_adapters *ca)
{
    size_t most = 1;

    for (size_t k = 0; k < ca->n_sites; k++)
        if (ca->adapters[k].d_out * ca->adapters[k].d_in > most)
            most = ca->adapters[k].d_out * ca->adapters[k].d_in;
    return most;
}

/* the parameters site k's weight is merged with (its slice of merged_params) */
static float *site_merged_params(struct clip_adapters *ca, size_t k)
{
    return ca->merged_params + (ca->adapters[k].params - ca->params);
}

/* train.precision = bf16 (clip_adapters_set_precision): the sites' products
 * run on the model's bf16 copies, and no merge touches the fp32 weights
 * (they are given back) */
static bool runs_bf16(const struct clip_adapters *ca)
{
    return ca->w_bf16 != NULL;
}

/* the path site k should take for a step of `micro` micro-batches of
 * `rows` rows */
static bool site_wants_merge(const struct clip_adapters *ca, size_t k, size_t rows,
                             size_t micro)
{
    const struct adapter *a = &ca->adapters[k];

    if (rows == 0 || ca->path_mode == CLIP_PATH_FACTORED)
        return false;
    /* a merged packed site's backward is fp32 on the weights (block_qkv.c),
     * which bf16 gives back: it stays factored */
    if (runs_bf16(ca) && ca->sites[k].lin == BLOCK_LIN_IN_PROJ)
        return false;
    /* choose_path says factored whenever dropout is active */
    return ca->path_mode == CLIP_PATH_MERGED ? !adapter_dropout_active(a)
                                             : adapter_choose_path(a, rows, micro) ==
                                                   ADAPTER_PATH_MERGED;
}

/* site k merged under bf16: its second term w_bf16_lo = bf16(dW) of the
 * current parameters, at its copy's offset (formed in fp32 in the shared
 * scratch ca->gw, rounded once). The products then run on bf16(W) and
 * bf16(dW): the copy never changes, and a dW far below half a bf16 step of
 * W (early in training, most of it) is kept to bf16's relative precision
 * of dW itself, where one bf16 weight bf16(W + dW) would round it away. */
static void site_merge_bf16(struct clip_adapters *ca, size_t k)
{
    const struct clip_site *s = &ca->sites[k];
    struct block_adapters *l = site_layer(ca, s);
    struct adapter *a = &ca->adapters[k];
    const uint16_t *copy = l->w_bf16[s->lin];
    const size_t n = a->d_out * a->d_in;
    const size_t at = (size_t)(copy - ca->w_bf16);

    RL_ASSERT(copy != NULL && ca->gw != NULL);
    if (!ca->w_bf16_lo)
        ca->w_bf16_lo = xmalloc_array(ca->n_w_bf16, sizeof(uint16_t));
    memset(ca->gw, 0, n * sizeof(float));
    adapter_merge(a, ca->gw);
    bf16_from_f32_array(ca->w_bf16_lo + at, ca->gw, n);
    l->w_bf16_lo[s->lin] = ca->w_bf16_lo + at;
}

/* site k's weight back to W: unmerged with the parameters it was merged
 * with (without a snapshot those are the current ones: such sites are
 * unmerged by end_backward, before the parameters change); under bf16 its
 * second term is dropped (the copy is bf16(W) throughout: exact) */
static void site_unmerge(struct clip_adapters *ca, struct clip_model *m, size_t k)
{
    const struct clip_site *s = &ca->sites[k];

    if (runs_bf16(ca))
        site_layer(ca, s)->w_bf16_lo[s->lin] = NULL;
    else if (ca->merged_params)
        adapter_unmerge_old(&ca->adapters[k], clip_site_weight(m, s), site_merged_params(ca, k));
    else
        adapter_unmerge(&ca->adapters[k], clip_site_weight(m, s));
    ca->merged[k] = false;
    site_layer(ca, s)->merged[s->lin] = false;
    ca->n_merged--;
}

size_t clip_site_rows(const struct clip_model *m, const struct clip_site *s,
                      const struct clip_step_size *sz)
{
    const bool vision = s->tower == CLIP_TOWER_VISION;
    const size_t seqs = vision ? sz->images : sz->texts;
    const size_t tokens = vision ? clip_vision_tokens(&m->cfg.vision) : sz->text_tokens;
    const size_t L = vision ? m->cfg.vision.layers : m->cfg.text.layers;
    size_t rows;

    if (s->layer + 1 == L && s->lin != BLOCK_LIN_K && s->lin != BLOCK_LIN_V &&
        s->lin != BLOCK_LIN_IN_PROJ)
        return seqs;
    RL_ASSERT(size_mul_ok(seqs, tokens, &rows));
    return rows;
}

void clip_adapters_begin_step(struct clip_adapters *ca, struct clip_model *m,
                              const struct clip_step_size *sz)
{
    bool changed = false;

    path_state(ca);
    /* a step left without end_backward: its sums are dropped (the caller
     * zeroes the gradients for this step), its sites made consistent */
    for (size_t k = 0; k < ca->n_sites; k++)
        site_layer(ca, &ca->sites[k])->gw_sum[ca->sites[k].lin] = NULL;
    clip_adapters_end_backward(ca, m);
    for (size_t k = 0; k < ca->n_sites; k++) {
        const struct clip_site *s = &ca->sites[k];
        struct adapter *a = &ca->adapters[k];
        const size_t np = a->n_params;
        const size_t rows_k = clip_site_rows(m, s, sz);
        const size_t micro = s->tower == CLIP_TOWER_VISION ? sz->vision_micro : sz->text_micro;
        bool merge = site_wants_merge(ca, k, rows_k, micro);

        if (ca->merged[k] && !merge) {
            site_unmerge(ca, m, k);         /* a pair ends */
            changed = true;
        } else if (ca->merged[k]) {
            /* kept from the last step: W + dW(old) -> W + dW(params) */
            float *old = site_merged_params(ca, k);

            if (memcmp(old, a->params, np * sizeof(float)) != 0) {
                if (runs_bf16(ca))
                    site_merge_bf16(ca, k);
                else
                    adapter_remerge(a, clip_site_weight(m, s), old);
                memcpy(old, a->params, np * sizeof(float));
                changed = true;
            }
        } else if (merge) {
            if (!ca->gw)
                ca->gw = xcalloc_aligned(largest_weight(ca), sizeof(float));
            /* a pair begins: counted at its end */
            if (runs_bf16(ca))
                site_merge_bf16(ca, k);
            else
                adapter_merge(a, clip_site_weight(m, s));
            if (ca->merged_params)
                memcpy(site_merged_params(ca, k), a->params, np * sizeof(float));
            ca->merged[k] = true;
            site_layer(ca, s)->merged[s->lin] = true;
            site_layer(ca, s)->gw = ca->gw;
            ca->drifted[k] = !runs_bf16(ca);    /* bf16: the weights never change */
            ca->n_merged++;
        }
        site_layer(ca, s)->rows[s->lin] = false;
        if (ca->merged[k] && a->grads) {
            bool rows = false;

            adapter_merged_step_flops(a, rows_k, micro, &rows);
            if (ca->proj_mode != CLIP_PROJ_AUTO)
                rows = ca->proj_mode == CLIP_PROJ_ROWS && a->ops->project_rows;
            site_layer(ca, s)->rows[s->lin] = rows;
            if (!rows && micro > 1 && !(a->ops->flags & ADAPTER_F_GRAD_IS_GW))
                site_layer(ca, s)->gw_sum[s->lin] = site_gw_sum(ca, k);
        }
    }
    if (changed)
        ca->round_trips++;
}

void clip_adapters_end_backward(struct clip_adapters *ca, struct clip_model *m)
{
    bool unmerged = false;

    if (!ca->merged || ca->n_merged == 0)
        return;
    for (size_t k = 0; k < ca->n_sites; k++) {
        const struct clip_site *s = &ca->sites[k];
        struct block_adapters *l = site_layer(ca, s);

        if (l->gw_sum[s->lin]) {
            adapter_project_grad(&ca->adapters[k], l->gw_sum[s->lin]);
            l->gw_sum[s->lin] = NULL;
        }
        if (ca->merged[k] && !ca->merged_params) {
            site_unmerge(ca, m, k);
            unmerged = true;
        }
    }
    if (unmerged)
        ca->round_trips++;
}

void clip_adapters_end_step(struct clip_adapters *ca, struct clip_model *m)
{
    if (!ca->merged || ca->n_merged == 0)
        return;
    clip_adapters_end_backward(ca, m);
    if (ca->n_merged == 0)
        return;
    for (size_t k = 0; k < ca->n_sites; k++)
        if (ca->merged[k])
            site_unmerge(ca, m, k);
    RL_ASSERT(ca->n_merged == 0);
    ca->round_trips++;
}

int clip_adapters_rebase(struct clip_adapters *ca, struct clip_model *m, const char *path)
{
    int rc = RL_OK;

    if (ca->n_merged)
        return rl_error_set(RL_ERR_ARG, "rebase with %zu adapted weights merged", ca->n_merged);
    if (!ca->drifted)
        return RL_OK;
    /* one open per weight: the mapping holds one weight's pages at a time;
     * the model's layout says which stored tensors hold it (a packed site's
     * three HF tensors, or open_clip's one in_proj_weight) */
    for (size_t k = 0; k < ca->n_sites && rc == RL_OK; k++) {
        const float *w;

        if (!ca->drifted[k])
            continue;
        w = clip_site_weight(m, &ca->sites[k]);
        rc = clip_model_reload_range(m, path, (size_t)(w - m->params),
                                     ca->adapters[k].d_out * ca->adapters[k].d_in);
        if (rc == RL_OK)
            ca->drifted[k] = false;
    }
    if (rc == RL_OK)
        ca->round_trips = 0;
    return rc;
}
