/*
 * clip_precision.c: train.precision = bf16 for the frozen linears: their
 * weights rounded to bf16 once, and each layer's block_adapters pointed at
 * the copies (models/clip.h, clip_adapters_set_precision; the products in
 * models/block_linear.c).
 */
#include <string.h>

#include "core/alloc.h"
#include "core/gemm_bf16.h"
#include "core/status.h"
#include "models/clip.h"

int clip_precision_parse(const char *name, enum clip_precision *out)
{
    if (!strcmp(name, "fp32"))
        *out = CLIP_PRECISION_FP32;
    else if (!strcmp(name, "bf16"))
        *out = CLIP_PRECISION_BF16;
    else
        return rl_error_set(RL_ERR_ARG, "precision '%s': expected fp32 or bf16", name);
    return RL_OK;
}

const char *clip_precision_name(enum clip_precision p)
{
    return p == CLIP_PRECISION_BF16 ? "bf16" : "fp32";
}

/* linear i of a layer: its weight and element count (d_out * d_in) */
static const float *layer_weight(const struct block_params *p, enum block_linear i,
                                 size_t C, size_t F, size_t *n)
{
    size_t d_out, d_in;

    block_linear_shape(i, C, F, &d_out, &d_in);
    *n = d_out * d_in;
    return block_linear_weight(p, i);
}

/* visit every linear of both towers but in_proj (each weight W is frozen:
 * full fine-tuning trains a delta dW beside it, methods/full.c; in_proj has
 * no copy of its own: q, k and v's are its rows): count (out == NULL) or
 * convert into out and point the layer at it; returns the elements visited */
static size_t each_linear(struct clip_adapters *ca, const struct clip_model *m,
                                 bf16 *out)
{
    size_t total = 0;

    for (int tw = 0; tw < CLIP_NUM_TOWERS; tw++) {
        const struct block_config *bc = tw == CLIP_TOWER_VISION ? &m->vblock : &m->tblock;
        size_t L = tw == CLIP_TOWER_VISION ? m->cfg.vision.layers : m->cfg.text.layers;
        const struct block_params *lp = tw == CLIP_TOWER_VISION ? m->vlayer : m->tlayer;
        struct block_adapters *la = tw == CLIP_TOWER_VISION ? ca->vision : ca->text;

        for (size_t l = 0; l < L; l++)
            for (int i = 0; i < BLOCK_NUM_LINEARS; i++) {
                size_t n;
                const float *w;

                if (i == BLOCK_LIN_IN_PROJ)
                    continue;
                w = layer_weight(&lp[l], (enum block_linear)i, bc->C, bc->F, &n);
                if (out) {
                    bf16_from_f32_array(out + total, w, n);
                    la[l].w_bf16[i] = out + total;
                }
                RL_ASSERT(size_add_ok(total, n, &total));
            }
    }
    return total;
}

int clip_adapters_set_precision(struct clip_adapters *ca, const struct clip_model *m,
                                enum clip_precision p)
{
    size_t n;
    int rc;

    if (p == CLIP_PRECISION_FP32)
        return RL_OK;
    if ((rc = gemm_bf16_check()) != RL_OK)
        return rc;
    RL_ASSERT(ca->w_bf16 == NULL);
    n = each_linear(ca, m, NULL);
    ca->w_bf16 = xmalloc_array(n ? n : 1, sizeof(bf16));
    ca->n_w_bf16 = n;
    each_linear(ca, m, ca->w_bf16);
    ca->method.bf16_products = true;      /* the adapters' branches too */
    return RL_OK;
}
