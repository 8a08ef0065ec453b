/*
 * llama_adapters.c: adapters (methods/adapter.h) on a Llama decoder's
 * linears: the target list, the sites, the trainable block, and merging
 * every site into its weight for the merged path (llama.h).
 */
#include "models/llama.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/status.h"
#include "models/target_spec.h"

#define ALL_MODULES ((1u << LLAMA_NUM_LINEARS) - 1u)
#define ATTN_MODULES 0x0fu              /* q, k, v, o        */
#define MLP_MODULES  0x70u              /* gate, up, down    */
#define MODULE_LIST "q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj, attn, " \
                    "mlp, all"

static unsigned module_mask(const char *w, size_t n)
{
    for (int i = 0; i < LLAMA_NUM_LINEARS; i++)
        if (strlen(llama_linear_names[i]) == n && !memcmp(w, llama_linear_names[i], n))
            return 1u << i;
    if (n == 4 && !memcmp(w, "attn", 4))
        return ATTN_MODULES;
    if (n == 3 && !memcmp(w, "mlp", 3))
        return MLP_MODULES;
    if (n == 3 && !memcmp(w, "all", 3))
        return ALL_MODULES;
    return 0;
}

/* w[0..n) a decimal number below 2^31 */
static bool parse_size(const char *w, size_t n, size_t *out)
{
    size_t v = 0;

    if (n == 0 || n > 9)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)w[i]))
            return false;
        v = v * 10 + (size_t)(w[i] - '0');
    }
    *out = v;
    return true;
}

/* one item "[LAYERS:]MODULES" of length n */
static int parse_item(const char *item, size_t n, struct llama_target *t)
{
    const char *colon = memchr(item, ':', n), *mods = item;
    size_t mlen = n;

    t->lo = 0;
    t->hi = SIZE_MAX;
    t->modules = 0;
    if (colon) {
        const char *w = item, *dash = memchr(item, '-', (size_t)(colon - item));
        const size_t wl = (size_t)(colon - item);

        if (!(wl == 1 && w[0] == '*')) {
            bool ok = dash ? parse_size(w, (size_t)(dash - w), &t->lo) &&
                             parse_size(dash + 1, wl - (size_t)(dash - w) - 1, &t->hi)
                           : parse_size(w, wl, &t->lo);

            if (!dash)
                t->hi = t->lo;
            if (!ok || t->lo > t->hi)
                return rl_error_set(RL_ERR_ARG, "adapter target '%.*s': bad layer range "
                                    "'%.*s' (expected *, N or A-B)", (int)n, item, (int)wl, w);
        }
        mods = colon + 1;
        mlen = n - wl - 1;
    }
    for (size_t i = 0, s = 0; i <= mlen; i++)
        if (i == mlen || mods[i] == ',') {
            const unsigned mk = module_mask(mods + s, i - s);

            if (!mk)
                return rl_error_set(RL_ERR_ARG, "adapter target '%.*s': unknown module '%.*s' "
                                    "(modules: " MODULE_LIST ")", (int)n, item, (int)(i - s),
                                    mods + s);
            t->modules |= mk;
            s = i + 1;
        }
    return RL_OK;
}

int llama_targets_parse(const char *spec, struct llama_target *out, size_t max, size_t *n_out)
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
        return rl_error_set(RL_ERR_ARG, "adapter targets '%s': empty (modules: " MODULE_LIST
                            ")", spec);
    *n_out = n;
    return RL_OK;
}

const char *llama_site_name(const struct llama_site *s, char *buf, size_t size)
{
    snprintf(buf, size, "model.layers.%zu.%s", s->layer, llama_linear_paths[s->lin]);
    return buf;
}

/* sel[l]: bit i set when linear i of layer l is targeted; every target
 * must lie inside the model */
static int select_sites(const struct llama_model *m, const struct llama_target *targets,
                        size_t n_targets, unsigned *sel)
{
    const size_t L = m->cfg.layers;

    for (size_t k = 0; k < n_targets; k++) {
        const struct llama_target *t = &targets[k];

        if (t->modules == 0 || (t->modules & ~ALL_MODULES) || t->lo > t->hi)
            return rl_error_set(RL_ERR_ARG, "adapter target %zu is empty or malformed "
                                "(modules: " MODULE_LIST ")", k);
        if (t->lo >= L || (t->hi != SIZE_MAX && t->hi >= L))
            return rl_error_set(RL_ERR_ARG, "adapter target %zu: layers %zu-%zu, but the model "
                                "has layers 0-%zu", k, t->lo, t->hi, L - 1);
        for (size_t l = t->lo; l < L && l <= t->hi; l++)
            sel[l] |= t->modules;
    }
    return RL_OK;
}

int llama_adapters_init(struct llama_adapters *la, const struct llama_model *m,
                        const struct adapter_cfg *cfg, const struct llama_target *targets,
                        size_t n_targets, size_t max_rows)
{
    const size_t L = m->cfg.layers;
    unsigned *sel = xcalloc(L, sizeof(unsigned));
    size_t max_out = 0, max_in = 0, k = 0;
    int rc;

    memset(la, 0, sizeof(*la));
    la->layer = xcalloc(L, sizeof(*la->layer));
    if ((rc = select_sites(m, targets, n_targets, sel)))
        goto out;
    for (size_t l = 0; l < L; l++)
        for (int i = 0; i < LLAMA_NUM_LINEARS; i++)
            la->n_sites += (sel[l] >> i) & 1u;
    la->sites = xcalloc(la->n_sites, sizeof(*la->sites));
    la->adapters = xcalloc(la->n_sites, sizeof(*la->adapters));
    for (size_t l = 0; l < L; l++)
        for (int i = 0; i < LLAMA_NUM_LINEARS; i++) {
            size_t d_out, d_in;

            if (!((sel[l] >> i) & 1u))
                continue;
            la->sites[k++] = (struct llama_site){ .layer = l, .lin = (enum llama_linear)i };
            llama_linear_shape(&m->cfg, (enum llama_linear)i, &d_out, &d_in);
            max_out = d_out > max_out ? d_out : max_out;
            max_in = d_in > max_in ? d_in : max_in;
        }
    if ((rc = adapter_method_init(&la->method, cfg, max_out, max_in, max_rows)))
        goto out;
    for (k = 0; k < la->n_sites; k++) {
        size_t d_out, d_in;

        llama_linear_shape(&m->cfg, la->sites[k].lin, &d_out, &d_in);
        la->sites[k].offset = la->n_params;
        RL_ASSERT(size_add_ok(la->n_params, adapter_n_trainable(&la->method, d_out, d_in),
                              &la->n_params));
    }
    la->params = xcalloc_aligned(la->n_params ? la->n_params : 1, sizeof(float));
    la->grads = xcalloc_aligned(la->n_params ? la->n_params : 1, sizeof(float));
    for (k = 0; k < la->n_sites; k++) {
        struct llama_site *s = &la->sites[k];
        size_t d_out, d_in;
        char name[128];

        llama_linear_shape(&m->cfg, s->lin, &d_out, &d_in);
        rc = adapter_init(&la->adapters[k], &la->method, d_out, d_in, la->params + s->offset,
                          la->grads + s->offset);
        if (rc) {
            rc = rl_error_prefix(rc, "%s", llama_site_name(s, name, sizeof(name)));
            goto out;
        }
        la->layer[s->layer].lin[s->lin].a = &la->adapters[k];
    }
out:
    free(sel);
    if (rc)
        llama_adapters_free(la);
    return rc;
}

void llama_adapters_free(struct llama_adapters *la)
{
    if (la->adapters)
        for (size_t k = 0; k < la->n_sites; k++)
            adapter_free(&la->adapters[k]);
    adapter_method_free(&la->method);
    free(la->adapters);
    free(la->sites);
    free(la->layer);
    free(la->params);
    free(la->grads);
    free(la->gw);
    memset(la, 0, sizeof(*la));
}

void llama_adapters_zero_grad(struct llama_adapters *la)
{
    if (la->grads)
        memset(la->grads, 0, la->n_params * sizeof(float));
}

void llama_adapters_set_training(struct llama_adapters *la, bool training)
{
    for (size_t k = 0; k < la->n_sites; k++)
        adapter_set_training(&la->adapters[k], training);
}

/* site k's weight in the model */
static float *site_weight(const struct llama_adapters *la, struct llama_model *m, size_t k)
{
    const struct llama_site *s = &la->sites[k];

    return m->layer[s->layer].t[llama_linear_weight(s->lin)];
}

void llama_adapters_merge(struct llama_adapters *la, struct llama_model *m)
{
    size_t most = 0;

    for (size_t k = 0; k < la->n_sites; k++) {
        const struct adapter *a = &la->adapters[k];

        if (a->d_out * a->d_in > most)
            most = a->d_out * a->d_in;
    }
    if (!la->gw && most)
        la->gw = xcalloc_aligned(most, sizeof(float));
    for (size_t k = 0; k < la->n_sites; k++) {
        struct adapted_lin *l = &la->layer[la->sites[k].layer].lin[la->sites[k].lin];

        if (l->merged)
            continue;
        adapter_merge(&la->adapters[k], site_weight(la, m, k));
        l->merged = true;
        l->gw = la->gw;
    }
}

void llama_adapters_unmerge(struct llama_adapters *la, struct llama_model *m)
{
    for (size_t k = 0; k < la->n_sites; k++) {
        struct adapted_lin *l = &la->layer[la->sites[k].layer].lin[la->sites[k].lin];

        if (!l->merged)
            continue;
        adapter_unmerge(&la->adapters[k], site_weight(la, m, k));
        l->merged = false;
    }
}
