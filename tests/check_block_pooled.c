/*
 * check_block_pooled.c: the last layer at its pooled rows
 * (block_pooled_forward / block_pooled_backward, attention_pooled_*)
 * against the whole layer read at those rows, and against central finite
 * differences. With adapters, on both paths, the same comparison runs
 * through the whole model in check_clip_paths.c (test_paths_agree).
 */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "models/block.h"
#include "models/nn.h"
#include "suites.h"
#include "test_util.h"

/* one layer's problem: parameters, input, pooled rows, upstream gradient */
struct pcase {
    struct block_config cfg;
    size_t B, T, np;
    size_t sizes[BLOCK_NUM_PARAMS];
    float *pbuf;                /* np floats, block_param_names order      */
    struct block_params p;
    float *x;                   /* (B,T,C)                                  */
    size_t idx[4];              /* pooled row of each sequence              */
    const size_t *idxp;         /* idx, or NULL (row 0: the class token)    */
    float *R;                   /* (B,C) upstream gradient at the rows      */
    float *abuf, *gabuf, *scratch;
    struct block_pooled_acts acts;
    struct block_pooled_grad_acts gacts;
    float *out;                 /* (B,C)                                    */
};

/* B = 3 sequences of T tokens, C 8, 2 heads, F 16; rows idx (NULL: 0) */
static void pcase_init(struct pcase *pc, uint64_t seed, size_t T, bool causal,
                       enum block_act act, const size_t *idx)
{
    const size_t B = 3, C = 8, NH = 2, F = 16;
    struct rng r;
    float *p;

    memset(pc, 0, sizeof(*pc));
    pc->cfg = (struct block_config){ .C = C, .NH = NH, .F = F, .act = act, .causal = causal,
                                     .eps = 1e-5f };
    pc->B = B;
    pc->T = T;
    pc->np = block_param_sizes(pc->sizes, C, F);
    pc->pbuf = test_zeros(pc->np);
    block_params_point(&pc->p, pc->pbuf, C, F);
    rng_init(&r, seed);
    p = pc->pbuf;
    for (size_t i = 0; i < BLOCK_NUM_PARAMS; i++) {
        bool ln_w = i == 0 || i == 10;
        bool weight = !ln_w && strstr(block_param_names[i], ".weight") != NULL;
        float std = weight ? 1.0f / sqrtf((float)(i == 14 ? F : C)) : 0.1f;

        rng_fill_normal(&r, p, pc->sizes[i], ln_w ? 1.0f : 0.0f, std);
        p += pc->sizes[i];
    }
    pc->x = test_randn(&r, B * T * C, 1.0f);
    pc->R = test_randn(&r, B * C, 1.0f);
    if (idx) {
        memcpy(pc->idx, idx, B * sizeof(*idx));
        pc->idxp = pc->idx;
    }
    pc->abuf = test_zeros(block_pooled_acts_size(B, T, C, NH, F));
    pc->gabuf = test_zeros(block_pooled_grad_acts_size(B, T, C, NH, F));
    pc->scratch = test_zeros(block_acts_scratch_size(B, T, C, F));
    block_pooled_acts_point(&pc->acts, pc->abuf, pc->scratch, B, T, C, NH, F);
    block_pooled_grad_acts_point(&pc->gacts, pc->gabuf, B, T, C, NH, F);
    pc->out = test_zeros(B * C);
}

static void pcase_free(struct pcase *pc)
{
    free(pc->pbuf);
    free(pc->x);
    free(pc->R);
    free(pc->abuf);
    free(pc->gabuf);
    free(pc->scratch);
    free(pc->out);
}

static void pcase_forward(struct pcase *pc)
{
    block_pooled_forward(pc->out, &pc->acts, pc->x, pc->idxp, &pc->p, NULL, &pc->cfg, pc->B,
                         pc->T);
}

/* loss = sum(out * R) in double */
static double pcase_loss(void *ctx)
{
    struct pcase *pc = ctx;

    pcase_forward(pc);
    return dot_double(pc->out, pc->R, pc->B * pc->cfg.C);
}

static void pcase_backward(struct pcase *pc, float *dx, struct block_grads *g)
{
    pcase_forward(pc);
    block_pooled_backward(dx, g, &pc->gacts, pc->R, &pc->acts, pc->x, pc->idxp, &pc->p, NULL,
                          &pc->cfg, pc->B, pc->T);
}

/* the whole layer on the same problem: out at the pooled rows, and dx and
 * the parameter gradients of sum(out[rows] * R) */
static void whole_layer(struct pcase *pc, float *out, float *dx, float *gbuf)
{
    const size_t B = pc->B, T = pc->T, C = pc->cfg.C, NH = pc->cfg.NH, F = pc->cfg.F;
    float *abuf = test_zeros(block_acts_size(B, T, C, NH, F));
    float *scratch = test_zeros(block_acts_scratch_size(B, T, C, F));
    float *gabuf = test_zeros(block_grad_acts_size(B, T, C, NH, F));
    float *y = test_zeros(B * T * C), *dy = test_zeros(B * T * C);
    struct block_acts acts;
    struct block_grad_acts gacts;
    struct block_grads g;

    block_acts_point(&acts, abuf, scratch, B, T, C, NH, F);
    block_grad_acts_point(&gacts, gabuf, B, T, C, NH, F);
    block_grads_point(&g, gbuf, C, F);
    block_forward(y, &acts, pc->x, &pc->p, &pc->cfg, B, T);
    pool_rows_forward(out, y, pc->idxp, B, T, C);
    pool_rows_backward(dy, pc->R, pc->idxp, B, T, C);
    block_backward(dx, &g, &gacts, dy, &acts, pc->x, &pc->p, &pc->cfg, B, T);
    free(abuf);
    free(scratch);
    free(gabuf);
    free(y);
    free(dy);
}

/* the cases: the vision tower's class token (row 0, no mask), the text
 * tower's end-of-text rows under the causal mask (first, middle, last
 * position), rows of a one-token sequence */
struct pooled_variant {
    size_t T;
    bool causal;
    enum block_act act;
    bool has_idx;
    size_t idx[3];
};

static const struct pooled_variant variants[] = {
    { 5, false, BLOCK_ACT_QUICK_GELU, false, { 0, 0, 0 } },
    { 5, true, BLOCK_ACT_GELU, true, { 4, 0, 2 } },
    { 5, false, BLOCK_ACT_GELU, true, { 1, 3, 4 } },
    { 1, true, BLOCK_ACT_QUICK_GELU, true, { 0, 0, 0 } },
};

static void variant_init(struct pcase *pc, int i, uint64_t seed)
{
    const struct pooled_variant *v = &variants[i];

    pcase_init(pc, seed, v->T, v->causal, v->act, v->has_idx ? v->idx : NULL);
}

/* the pooled layer == the whole layer read at the rows: the output, the
 * input gradient and all 16 parameter gradients, to round-off */
START_TEST(test_pooled_equals_whole)
{
    struct pcase pc;
    struct block_grads g;
    float *gbuf, *gwhole, *dx, *dxwhole, *outwhole;
    size_t n, fails = 0;

    variant_init(&pc, _i, 31 + (uint64_t)_i);
    n = pc.B * pc.T * pc.cfg.C;
    gbuf = test_zeros(pc.np);
    gwhole = test_zeros(pc.np);
    dx = test_zeros(n);
    dxwhole = test_zeros(n);
    outwhole = test_zeros(pc.B * pc.cfg.C);
    block_grads_point(&g, gbuf, pc.cfg.C, pc.cfg.F);
    pcase_backward(&pc, dx, &g);
    whole_layer(&pc, outwhole, dxwhole, gwhole);

    fails += tensor_compare("out", pc.out, outwhole, pc.B * pc.cfg.C, 1e-5, 1e-5);
    fails += tensor_compare("dx", dx, dxwhole, n, 1e-5, 1e-5);
    {
        size_t off = 0;

        for (size_t i = 0; i < BLOCK_NUM_PARAMS; i++) {
            fails += tensor_compare(block_param_names[i], gbuf + off, gwhole + off,
                                    pc.sizes[i], 1e-5, 1e-5);
            off += pc.sizes[i];
        }
    }
    ck_assert_uint_eq(fails, 0);
    /* the rows are what is read: a different row gives a different output */
    if (pc.T > 1) {
        float *before = test_copy(pc.out, pc.B * pc.cfg.C);

        pc.idx[0] = pc.idxp ? (pc.idx[0] + 1) % pc.T : 0;
        pc.idxp = pc.idx;
        if (!variants[_i].has_idx)
            pc.idx[0] = 1, pc.idx[1] = pc.idx[2] = 0;
        pcase_forward(&pc);
        ck_assert(test_max_abs_diff(pc.out, before, pc.cfg.C) > 1e-3);
        ck_assert_uint_eq(tensor_compare("other rows", pc.out + pc.cfg.C, before + pc.cfg.C,
                                         (pc.B - 1) * pc.cfg.C, 0.0, 0.0), 0);
        free(before);
    }
    free(gbuf);
    free(gwhole);
    free(dx);
    free(dxwhole);
    free(outwhole);
    pcase_free(&pc);
}
END_TEST

/* central finite differences through the pooled layer: the input (every
 * row: k and v see them all) and a tensor of every kernel kind */
START_TEST(test_pooled_gradcheck)
{
    struct pcase pc;
    struct block_grads g;
    float *gbuf, *dx;
    size_t n, fails = 0, off[BLOCK_NUM_PARAMS] = { 0 };
    const size_t probe[] = { 0, 1, 2, 4, 7, 8, 11, 12, 15 };

    variant_init(&pc, _i, 47 + (uint64_t)_i);
    n = pc.B * pc.T * pc.cfg.C;
    for (size_t i = 1; i < BLOCK_NUM_PARAMS; i++)
        off[i] = off[i - 1] + pc.sizes[i - 1];
    gbuf = test_zeros(pc.np);
    dx = test_zeros(n);
    block_grads_point(&g, gbuf, pc.cfg.C, pc.cfg.F);
    pcase_backward(&pc, dx, &g);
    fails += gradcheck("x", pc.x, dx, n, pcase_loss, &pc, 1e-2f, 1e-3, 1e-2, 48);
    for (size_t k = 0; k < sizeof(probe) / sizeof(probe[0]); k++) {
        size_t i = probe[k];

        fails += gradcheck(block_param_names[i], pc.pbuf + off[i], gbuf + off[i], pc.sizes[i],
                           pcase_loss, &pc, 1e-2f, 1e-3, 1e-2, 24);
    }
    ck_assert_uint_eq(fails, 0);
    free(gbuf);
    free(dx);
    pcase_free(&pc);
}
END_TEST

/* frozen weights, no input gradient wanted: nothing is written; an input
 * gradient alone equals the one computed with every gradient; the input
 * gradient accumulates */
START_TEST(test_pooled_frozen_and_accumulate)
{
    static const struct block_grads frozen;
    struct pcase pc;
    struct block_grads g;
    float *gbuf, *dx, *dx2;
    size_t n;

    variant_init(&pc, 1, 5);
    n = pc.B * pc.T * pc.cfg.C;
    gbuf = test_zeros(pc.np);
    dx = test_zeros(n);
    dx2 = test_zeros(n);
    block_grads_point(&g, gbuf, pc.cfg.C, pc.cfg.F);
    pcase_backward(&pc, dx, &g);
    {
        struct block_grads none = frozen;

        pcase_backward(&pc, NULL, &none);         /* must not touch anything */
        pcase_backward(&pc, dx2, &none);
    }
    ck_assert_uint_eq(tensor_compare("dx frozen", dx2, dx, n, 1e-6, 0.0), 0);
    pcase_backward(&pc, dx2, &g);
    for (size_t i = 0; i < n; i++)
        dx[i] *= 2.0f;
    ck_assert_uint_eq(tensor_compare("dx twice", dx2, dx, n, 1e-6, 1e-6), 0);
    free(gbuf);
    free(dx);
    free(dx2);
    pcase_free(&pc);
}
END_TEST

Suite *suite_block_pooled(void)
{
    Suite *s = suite_create("block_pooled");
    TCase *tc = tcase_create("core");
    const int nv = (int)(sizeof(variants) / sizeof(variants[0]));

    tcase_add_loop_test(tc, test_pooled_equals_whole, 0, nv);
    tcase_add_loop_test(tc, test_pooled_gradcheck, 0, nv);
    tcase_add_test(tc, test_pooled_frozen_and_accumulate);
    suite_add_tcase(s, tc);
    return s;
}
