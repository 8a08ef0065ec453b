/*
 * clip_precision.c: train.precision = bf16 for the frozen linears: the
 * model's linear weights rounded to bf16 once and the fp32 ones given back
 * (clip_model_linears_to_bf16), and each layer's block_adapters pointed at
 * the copies (clip_adapters_set_precision; the products in
 * models/block_linear.c, the merged sites' second terms in
 * models/clip_adapters.c). models/clip.h states the contract.
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

/* the view of linear i (not in_proj) in a layer's parameters, writable */
static const float **linear_view(struct block_params *p, enum block_linear i)
{
    const float **v[BLOCK_LIN_IN_PROJ] = { &p->q_w, &p->k_w, &p->v_w, &p->o_w, &p->fc1_w,
                                           &p->fc2_w };

    RL_ASSERT(i < BLOCK_LIN_IN_PROJ);
    return v[i];
}

/* what each_linear does at each linear */
enum linear_visit {
    VISIT_COUNT,                /* count the elements                         */
    VISIT_HELD,                 /* count the elements of views still set      */
    VISIT_CONVERT,              /* fp32 -> m->w_bf16                          */
    VISIT_RELEASE,              /* give the fp32 pages back, view -> NULL     */
    VISIT_POINT,                /* point ca's layer at its copy               */
};

/* visit every linear of both towers but in_proj (in_proj has no weight of
 * its own: q, k and v's are its rows), in the order of m->w_bf16 (tower,
 * layer, linear); returns the elements visited (VISIT_HELD: of the views
 * still set). ca: VISIT_POINT's adapters, else NULL */
static size_t each_linear(struct clip_model *m, enum linear_visit what, struct clip_adapters *ca)
{
    size_t total = 0, held = 0;

    for (int tw = 0; tw < CLIP_NUM_TOWERS; tw++) {
        const struct block_config *bc = tw == CLIP_TOWER_VISION ? &m->vblock : &m->tblock;
        size_t L = tw == CLIP_TOWER_VISION ? m->cfg.vision.layers : m->cfg.text.layers;
        struct block_params *lp = tw == CLIP_TOWER_VISION ? m->vlayer : m->tlayer;
        struct block_adapters *la = !ca ? NULL : tw == CLIP_TOWER_VISION ? ca->vision : ca->text;

        for (size_t l = 0; l < L; l++)
            for (int i = 0; i < BLOCK_LIN_IN_PROJ; i++) {
                const float **view = linear_view(&lp[l], (enum block_linear)i);
                size_t d_out, d_in, n;

                block_linear_shape((enum block_linear)i, bc->C, bc->F, &d_out, &d_in);
                n = d_out * d_in;
                if (what == VISIT_CONVERT) {
                    RL_ASSERT(*view != NULL);
                    bf16_from_f32_array(m->w_bf16 + total, *view, n);
                } else if (what == VISIT_RELEASE && *view) {
                    size_t *r = m->released + 2 * m->n_released++;

                    r[0] = (size_t)(*view - m->params);
                    r[1] = n;
                    mem_release_pages(m->params + r[0], n * sizeof(float));
                    *view = NULL;
                } else if (what == VISIT_POINT) {
                    la[l].w_bf16[i] = m->w_bf16 + total;
                }
                if (*view)
                    held += n;
                RL_ASSERT(size_add_ok(total, n, &total));
            }
    }
    return what == VISIT_HELD ? held : total;
}

int clip_model_linears_to_bf16(struct clip_model *m, bool keep_fp32)
{
    int rc;

    if (m->w_bf16)
        return RL_OK;
    if ((rc = gemm_bf16_check()) != RL_OK)
        return rc;
    RL_ASSERT(m->n_released == 0);
    m->n_w_bf16 = each_linear(m, VISIT_COUNT, NULL);
    m->w_bf16 = xmalloc_array(m->n_w_bf16 ? m->n_w_bf16 : 1, sizeof(uint16_t));
    each_linear(m, VISIT_CONVERT, NULL);
    if (!keep_fp32)
        clip_model_release_fp32_linears(m);
    return RL_OK;
}

void clip_model_release_fp32_linears(struct clip_model *m)
{
    const size_t sites = BLOCK_LIN_IN_PROJ * (m->cfg.vision.layers + m->cfg.text.layers);

    RL_ASSERT(m->w_bf16 != NULL);       /* the copies first */
    if (m->released)
        return;
    m->released = xmalloc_array(2 * (sites ? sites : 1), sizeof(size_t));
    each_linear(m, VISIT_RELEASE, NULL);
}

size_t clip_model_fp32_linear_bytes(const struct clip_model *m)
{
    /* VISIT_HELD reads the views only */
    return each_linear((struct clip_model *)m, VISIT_HELD, NULL) * sizeof(float);
}

bool clip_model_range_released(const struct clip_model *m, size_t offset, size_t n)
{
    for (size_t k = 0; k < m->n_released; k++) {
        const size_t *r = m->released + 2 * k;

        if (offset < r[0] + r[1] && r[0] < offset + n)
            return true;
    }
    return false;
}

int clip_adapters_set_precision(struct clip_adapters *ca, struct clip_model *m,
                                enum clip_precision p)
{
    size_t n;
    int rc;

    if (p == CLIP_PRECISION_FP32)
        return RL_OK;
    RL_ASSERT(ca->w_bf16 == NULL);
    if ((rc = clip_model_linears_to_bf16(m, false)) != RL_OK)
        return rc;
    ca->w_bf16 = m->w_bf16;
    ca->n_w_bf16 = m->n_w_bf16;
    n = each_linear(m, VISIT_POINT, ca);
    RL_ASSERT(n == m->n_w_bf16);
    ca->method.bf16_products = true;      /* the adapters' branches too */
    return RL_OK;
}
