/*
 * check_nn_embed.c: the input and pooling kernels of models/nn.c: token +
 * position embedding, the patch embedding (against a direct convolution
 * written here), the class token, row pooling. The kinds of test are
 * check_nn.c's (gradcheck, naive, null, known); the tolerances and helpers
 * are in nn_checks.h.
 */
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "models/nn.h"
#include "nn_checks.h"
#include "suites.h"
#include "test_util.h"

/* ======================================================================== */
/* token + position embedding                                                */
/* ======================================================================== */

enum { EMB_B = 2, EMB_T = 4, EMB_C = 7, EMB_V = 5, EMB_TMAX = 6 };
/* token 3 appears three times, token 4 never (its gradient must stay 0) */
static const int32_t emb_ids[EMB_B * EMB_T] = { 3, 0, 3, 1, 2, 3, 0, 1 };

struct emb_ctx {
    float *out, *wte, *wpe;
    const float *r;
};

static double emb_loss(void *p)
{
    struct emb_ctx *x = p;

    embedding_forward(x->out, emb_ids, x->wte, x->wpe, EMB_B, EMB_T, EMB_C);
    return dot_double(x->out, x->r, EMB_B * EMB_T * EMB_C);
}

START_TEST(test_embedding)
{
    const size_t nte = EMB_V * EMB_C, npe = EMB_TMAX * EMB_C, nout = EMB_B * EMB_T * EMB_C;
    struct rng rg;
    struct emb_ctx x;
    float *dwte = test_zeros(nte), *dwpe = test_zeros(npe), *g = test_zeros(npe);

    rng_init(&rg, 501);
    x.wte = test_randn(&rg, nte, 1.0f);
    x.wpe = test_randn(&rg, npe, 1.0f);  /* more positions than T */
    x.r = test_randn(&rg, nout, 1.0f);
    x.out = test_zeros(nout);

    /* known: the right rows are picked */
    embedding_forward(x.out, emb_ids, x.wte, x.wpe, EMB_B, EMB_T, EMB_C);
    for (size_t b = 0; b < EMB_B; b++)
        for (size_t t = 0; t < EMB_T; t++)
            for (size_t c = 0; c < EMB_C; c++)
                ck_assert_float_eq(x.out[(b * EMB_T + t) * EMB_C + c],
                                   x.wte[(size_t)emb_ids[b * EMB_T + t] * EMB_C + c]
                                   + x.wpe[t * EMB_C + c]);

    embedding_backward(dwte, dwpe, x.r, emb_ids, EMB_B, EMB_T, EMB_C);
    ASSERT_GRAD("wte", x.wte, dwte, nte, emb_loss, &x, GC_EPS_LIN);
    ASSERT_GRAD("wpe", x.wpe, dwpe, npe, emb_loss, &x, GC_EPS_LIN);
    ck_assert_uint_eq(count_not_value(dwte + 4 * EMB_C, 0.0f, EMB_C), 0);
    ck_assert_uint_eq(count_not_value(dwpe + EMB_T * EMB_C, 0.0f, (EMB_TMAX - EMB_T) * EMB_C), 0);

    /* NULL dwte: dwpe alone is the same; accumulation */
    embedding_backward(NULL, g, x.r, emb_ids, EMB_B, EMB_T, EMB_C);
    ASSERT_SAME("wpe only", g, dwpe, npe);
    embedding_backward(NULL, g, x.r, emb_ids, EMB_B, EMB_T, EMB_C);
    ck_assert_uint_eq(count_not_double(g, dwpe, npe), 0);
    free(g);
    g = test_copy(dwte, nte);
    embedding_backward(g, NULL, x.r, emb_ids, EMB_B, EMB_T, EMB_C);
    ck_assert_uint_eq(count_not_double_tol(g, dwte, nte), 0);
    embedding_backward(NULL, NULL, x.r, emb_ids, EMB_B, EMB_T, EMB_C);

    free(x.wte); free(x.wpe); free((float *)x.r); free(x.out);
    free(dwte); free(dwpe); free(g);
}
END_TEST

/* ======================================================================== */
/* patch embedding                                                           */
/* ======================================================================== */

struct pe_shape {
    size_t B, CH, H, W, ps, C;
};

static size_t pe_P(const struct pe_shape *s)
{
    return (s->H / s->ps) * (s->W / s->ps);
}

static size_t pe_K(const struct pe_shape *s)
{
    return s->CH * s->ps * s->ps;
}

/* A direct strided convolution, no im2col: out (B,P,C), in double. */
static void conv_forward_direct(float *out, const float *pixels, const float *w,
                                const struct pe_shape *s)
{
    size_t GH = s->H / s->ps, GW = s->W / s->ps, ps = s->ps;

    for (size_t b = 0; b < s->B; b++)
        for (size_t gy = 0; gy < GH; gy++)
            for (size_t gx = 0; gx < GW; gx++)
                for (size_t o = 0; o < s->C; o++) {
                    double acc = 0.0;

                    for (size_t c = 0; c < s->CH; c++)
                        for (size_t kh = 0; kh < ps; kh++)
                            for (size_t kw = 0; kw < ps; kw++)
                                acc += (double)w[((o * s->CH + c) * ps + kh) * ps + kw]
                                       * pixels[((b * s->CH + c) * s->H + gy * ps + kh) * s->W
                                                + gx * ps + kw];
                    out[((b * GH + gy) * GW + gx) * s->C + o] = (float)acc;
                }
}

/* Its backward, accumulating, either gradient optional. */
static void conv_backward_direct(float *dpixels, float *dw, const float *dout,
                                 const float *pixels, const float *w, const struct pe_shape *s)
{
    size_t GH = s->H / s->ps, GW = s->W / s->ps, ps = s->ps;

    for (size_t b = 0; b < s->B; b++)
        for (size_t gy = 0; gy < GH; gy++)
            for (size_t gx = 0; gx < GW; gx++)
                for (size_t o = 0; o < s->C; o++) {
                    float d = dout[((b * GH + gy) * GW + gx) * s->C + o];

                    for (size_t c = 0; c < s->CH; c++)
                        for (size_t kh = 0; kh < ps; kh++)
                            for (size_t kw = 0; kw < ps; kw++) {
                                size_t wi = ((o * s->CH + c) * ps + kh) * ps + kw;
                                size_t pi = ((b * s->CH + c) * s->H + gy * ps + kh) * s->W
                                            + gx * ps + kw;

                                if (dpixels)
                                    dpixels[pi] += d * w[wi];
                                if (dw)
                                    dw[wi] += d * pixels[pi];
                            }
                }
}

struct pe_ctx {
    struct pe_shape s;
    float *out, *patches, *pixels, *w;
    const float *r;
};

static double pe_loss(void *p)
{
    struct pe_ctx *x = p;
    const struct pe_shape *s = &x->s;

    patch_embed_forward(x->out, x->patches, x->pixels, x->w, s->B, s->CH, s->H, s->W, s->ps, s->C);
    return dot_double(x->out, x->r, s->B * pe_P(s) * s->C);
}

START_TEST(test_patch_embed_gradcheck)
{
    struct pe_ctx x = { .s = { .B = 2, .CH = 3, .H = 8, .W = 8, .ps = 4, .C = 6 } };
    const struct pe_shape *s = &x.s;
    size_t P = pe_P(s), K = pe_K(s), npix = s->B * s->CH * s->H * s->W;
    struct rng rg;
    float *dpix = test_zeros(npix), *dw = test_zeros(s->C * K);
    float *scratch = test_zeros(s->B * P * K);

    rng_init(&rg, 601);
    x.pixels = test_randn(&rg, npix, 1.0f);
    x.w = test_randn(&rg, s->C * K, 0.3f);
    x.r = test_randn(&rg, s->B * P * s->C, 1.0f);
    x.out = test_zeros(s->B * P * s->C);
    x.patches = test_zeros(s->B * P * K);

    patch_embed_forward(x.out, x.patches, x.pixels, x.w, s->B, s->CH, s->H, s->W, s->ps, s->C);
    patch_embed_backward(dpix, dw, scratch, x.r, x.patches, x.w,
                         s->B, s->CH, s->H, s->W, s->ps, s->C);
    ASSERT_GRAD("pixels", x.pixels, dpix, npix, pe_loss, &x, GC_EPS_LIN);
    ASSERT_GRAD("patch w", x.w, dw, s->C * K, pe_loss, &x, GC_EPS_LIN);

    free(x.pixels); free(x.w); free((float *)x.r); free(x.out); free(x.patches);
    free(dpix); free(dw); free(scratch);
}
END_TEST

/* im2col + GEMM against the direct convolution, forward and backward, on a
 * divisible shape and on one whose last rows and columns fall outside the
 * patch grid (they must get no gradient) */
START_TEST(test_patch_embed_vs_direct_conv)
{
    const struct pe_shape shapes[2] = {
        { .B = 2, .CH = 3, .H = 8, .W = 8, .ps = 4, .C = 6 },
        { .B = 3, .CH = 2, .H = 11, .W = 10, .ps = 3, .C = 5 },
    };

    for (int k = 0; k < 2; k++) {
        const struct pe_shape *s = &shapes[k];
        size_t P = pe_P(s), K = pe_K(s), npix = s->B * s->CH * s->H * s->W;
        size_t nout = s->B * P * s->C, nw = s->C * K;
        struct rng rg;
        float *pixels, *w, *dout, *out, *out_ref, *patches, *scratch;
        float *dpix, *dpix_ref, *dw, *dw_ref;

        rng_init(&rg, 602 + (uint64_t)k);
        pixels = test_randn(&rg, npix, 1.0f);
        w = test_randn(&rg, nw, 0.3f);
        dout = test_randn(&rg, nout, 1.0f);
        out = test_zeros(nout);
        out_ref = test_zeros(nout);
        patches = test_zeros(s->B * P * K);
        scratch = test_zeros(s->B * P * K);
        /* nonzero starting gradients: the backward must add to them */
        dpix = test_randn(&rg, npix, 1.0f);
        dpix_ref = test_copy(dpix, npix);
        dw = test_randn(&rg, nw, 1.0f);
        dw_ref = test_copy(dw, nw);

        patch_embed_forward(out, patches, pixels, w, s->B, s->CH, s->H, s->W, s->ps, s->C);
        conv_forward_direct(out_ref, pixels, w, s);
        ASSERT_CLOSE("patch out", out, out_ref, nout);

        patch_embed_backward(dpix, dw, scratch, dout, patches, w,
                             s->B, s->CH, s->H, s->W, s->ps, s->C);
        conv_backward_direct(dpix_ref, dw_ref, dout, pixels, w, s);
        ASSERT_CLOSE("patch dpixels", dpix, dpix_ref, npix);
        ASSERT_CLOSE("patch dw", dw, dw_ref, nw);

        free(pixels); free(w); free(dout); free(out); free(out_ref); free(patches);
        free(scratch); free(dpix); free(dpix_ref); free(dw); free(dw_ref);
    }
}
END_TEST

/* the im2col layout: patch p of image b, element (c, kh, kw) */
START_TEST(test_patch_embed_known_layout)
{
    enum { B = 2, CH = 3, H = 8, W = 8, PS = 4, GW = W / PS, P = (H / PS) * GW, K = CH * PS * PS,
           C = 2 };
    float pixels[B * CH * H * W], patches[B * P * K], out[B * P * C], w[C * K];

    for (size_t i = 0; i < B * CH * H * W; i++)
        pixels[i] = (float)i;                 /* each pixel holds its own index */
    memset(w, 0, sizeof(w));
    w[0] = 1.0f;                              /* out[.,0] = pixel (c=0, kh=0, kw=0) */
    w[K + (1 * PS + 2) * PS + 3] = 1.0f;      /* out[.,1] = pixel (c=1, kh=2, kw=3) */
    patch_embed_forward(out, patches, pixels, w, B, CH, H, W, PS, C);
    for (size_t b = 0; b < B; b++)
        for (size_t p = 0; p < P; p++) {
            size_t gy = p / GW, gx = p % GW;

            for (size_t c = 0; c < CH; c++)
                for (size_t kh = 0; kh < PS; kh++)
                    for (size_t kw = 0; kw < PS; kw++)
                        ck_assert_float_eq(patches[(b * P + p) * K + (c * PS + kh) * PS + kw],
                                           (float)(((b * CH + c) * H + gy * PS + kh) * W
                                                   + gx * PS + kw));
            ck_assert_float_eq(out[(b * P + p) * C + 0],
                               (float)(((b * CH + 0) * H + gy * PS) * W + gx * PS));
            ck_assert_float_eq(out[(b * P + p) * C + 1],
                               (float)(((b * CH + 1) * H + gy * PS + 2) * W + gx * PS + 3));
        }
}
END_TEST

START_TEST(test_patch_embed_null_and_accumulate)
{
    const struct pe_shape sh = { .B = 2, .CH = 3, .H = 8, .W = 8, .ps = 4, .C = 6 };
    const struct pe_shape *s = &sh;
    size_t P = pe_P(s), K = pe_K(s), npix = s->B * s->CH * s->H * s->W, nw = s->C * K;
    struct rng rg;
    float *pixels, *w, *dout, *out, *patches, *scratch, *dpix, *dw, *g;

    rng_init(&rg, 603);
    pixels = test_randn(&rg, npix, 1.0f);
    w = test_randn(&rg, nw, 0.3f);
    dout = test_randn(&rg, s->B * P * s->C, 1.0f);
    out = test_zeros(s->B * P * s->C);
    patches = test_zeros(s->B * P * K);
    scratch = test_zeros(s->B * P * K);
    dpix = test_zeros(npix);
    dw = test_zeros(nw);
    patch_embed_forward(out, patches, pixels, w, s->B, s->CH, s->H, s->W, s->ps, s->C);
    patch_embed_backward(dpix, dw, scratch, dout, patches, w, s->B, s->CH, s->H, s->W, s->ps, s->C);

    /* frozen pixels (the usual case): no scratch needed, dw the same */
    g = test_zeros(nw);
    patch_embed_backward(NULL, g, NULL, dout, patches, w, s->B, s->CH, s->H, s->W, s->ps, s->C);
    ASSERT_SAME("patch dw only", g, dw, nw);
    patch_embed_backward(NULL, g, NULL, dout, patches, w, s->B, s->CH, s->H, s->W, s->ps, s->C);
    ck_assert_uint_eq(count_not_double(g, dw, nw), 0);
    free(g);

    /* frozen weight: dpixels the same */
    g = test_zeros(npix);
    patch_embed_backward(g, NULL, scratch, dout, patches, w, s->B, s->CH, s->H, s->W, s->ps, s->C);
    ASSERT_SAME("patch dpixels only", g, dpix, npix);
    patch_embed_backward(g, NULL, scratch, dout, patches, w, s->B, s->CH, s->H, s->W, s->ps, s->C);
    ck_assert_uint_eq(count_not_double(g, dpix, npix), 0);
    free(g);

    patch_embed_backward(NULL, NULL, NULL, dout, patches, w, s->B, s->CH, s->H, s->W, s->ps, s->C);

    free(pixels); free(w); free(dout); free(out); free(patches); free(scratch);
    free(dpix); free(dw);
}
END_TEST

/* ======================================================================== */
/* class token + position                                                    */
/* ======================================================================== */

enum { CE_B = 2, CE_P = 4, CE_C = 7 };

struct ce_ctx {
    float *out, *patch_out, *cls, *pos;
    const float *r;
};

static double ce_loss(void *p)
{
    struct ce_ctx *x = p;

    class_embed_forward(x->out, x->patch_out, x->cls, x->pos, CE_B, CE_P, CE_C);
    return dot_double(x->out, x->r, CE_B * (CE_P + 1) * CE_C);
}

START_TEST(test_class_embed)
{
    const size_t T = CE_P + 1, npo = CE_B * CE_P * CE_C, npos = T * CE_C, nout = CE_B * T * CE_C;
    struct rng rg;
    struct ce_ctx x;
    float *dpo = test_zeros(npo), *dcls = test_zeros(CE_C), *dpos = test_zeros(npos);
    float *g[3], *full[3] = { dpo, dcls, dpos };
    const size_t n[3] = { npo, CE_C, npos };

    rng_init(&rg, 701);
    x.patch_out = test_randn(&rg, npo, 1.0f);
    x.cls = test_randn(&rg, CE_C, 1.0f);
    x.pos = test_randn(&rg, npos, 1.0f);
    x.r = test_randn(&rg, nout, 1.0f);
    x.out = test_zeros(nout);

    /* known: row 0 is cls + pos[0], row 1+p is patch p + pos[1+p] */
    class_embed_forward(x.out, x.patch_out, x.cls, x.pos, CE_B, CE_P, CE_C);
    for (size_t b = 0; b < CE_B; b++)
        for (size_t c = 0; c < CE_C; c++) {
            ck_assert_float_eq(x.out[b * T * CE_C + c], x.cls[c] + x.pos[c]);
            for (size_t p = 0; p < CE_P; p++)
                ck_assert_float_eq(x.out[(b * T + 1 + p) * CE_C + c],
                                   x.patch_out[(b * CE_P + p) * CE_C + c]
                                   + x.pos[(1 + p) * CE_C + c]);
        }

    class_embed_backward(dpo, dcls, dpos, x.r, CE_B, CE_P, CE_C);
    ASSERT_GRAD("patch_out", x.patch_out, dpo, npo, ce_loss, &x, GC_EPS_LIN);
    ASSERT_GRAD("cls", x.cls, dcls, CE_C, ce_loss, &x, GC_EPS_LIN);
    ASSERT_GRAD("pos", x.pos, dpos, npos, ce_loss, &x, GC_EPS_LIN);

    /* NULL patterns and accumulation */
    for (int i = 0; i < 3; i++)
        g[i] = test_zeros(n[i]);
    for (unsigned mask = 0; mask < 8; mask++) {
        float *p[3];

        for (int i = 0; i < 3; i++) {
            fill_value(g[i], 0.0f, n[i]);
            p[i] = mask & (1u << i) ? g[i] : NULL;
        }
        class_embed_backward(p[0], p[1], p[2], x.r, CE_B, CE_P, CE_C);
        for (int i = 0; i < 3; i++)
            if (p[i])
                ASSERT_SAME("class grad", g[i], full[i], n[i]);
            else
                ck_assert_uint_eq(count_not_value(g[i], 0.0f, n[i]), 0);
    }
    class_embed_backward(g[0], g[1], g[2], x.r, CE_B, CE_P, CE_C);
    for (int i = 0; i < 3; i++)
        ck_assert_uint_eq(count_not_double(g[i], full[i], n[i]), 0);

    for (int i = 0; i < 3; i++) {
        free(g[i]); free(full[i]);
    }
    free(x.patch_out); free(x.cls); free(x.pos); free((float *)x.r); free(x.out);
}
END_TEST

/* ======================================================================== */
/* row pooling                                                               */
/* ======================================================================== */

enum { PL_B = 3, PL_T = 5, PL_C = 7 };

struct pool_ctx {
    float *out, *inp;
    const size_t *idx;
    const float *r;
};

static double pool_loss(void *p)
{
    struct pool_ctx *x = p;

    pool_rows_forward(x->out, x->inp, x->idx, PL_B, PL_T, PL_C);
    return dot_double(x->out, x->r, PL_B * PL_C);
}

START_TEST(test_pool_rows)
{
    static const size_t idx[PL_B] = { 4, 0, 2 };
    const size_t nin = PL_B * PL_T * PL_C, nout = PL_B * PL_C;
    struct rng rg;
    struct pool_ctx x;
    float *dinp = test_zeros(nin), *again;

    rng_init(&rg, 801);
    x.inp = test_randn(&rg, nin, 1.0f);
    x.r = test_randn(&rg, nout, 1.0f);
    x.out = test_zeros(nout);

    for (int use_idx = 0; use_idx < 2; use_idx++) {
        x.idx = use_idx ? idx : NULL;

        /* known: row idx[b] of image b (row 0 without idx) */
        pool_rows_forward(x.out, x.inp, x.idx, PL_B, PL_T, PL_C);
        for (size_t b = 0; b < PL_B; b++) {
            size_t t = use_idx ? idx[b] : 0;

            ASSERT_SAME("pooled row", x.out + b * PL_C, x.inp + (b * PL_T + t) * PL_C, PL_C);
        }

        fill_value(dinp, 0.0f, nin);
        pool_rows_backward(dinp, x.r, x.idx, PL_B, PL_T, PL_C);
        ASSERT_GRAD("pool inp", x.inp, dinp, nin, pool_loss, &x, GC_EPS_LIN);
        /* only the pooled rows get gradient */
        for (size_t b = 0; b < PL_B; b++)
            for (size_t t = 0; t < PL_T; t++)
                if (t != (use_idx ? idx[b] : 0))
                    ck_assert_uint_eq(count_not_value(dinp + (b * PL_T + t) * PL_C, 0.0f, PL_C), 0);

        again = test_copy(dinp, nin);
        pool_rows_backward(again, x.r, x.idx, PL_B, PL_T, PL_C);
        ck_assert_uint_eq(count_not_double(again, dinp, nin), 0);
        free(again);
        pool_rows_backward(NULL, x.r, x.idx, PL_B, PL_T, PL_C);
    }

    free(x.inp); free((float *)x.r); free(x.out); free(dinp);
}
END_TEST

Suite *suite_nn_embed(void)
{
    Suite *s = suite_create("nn_embed");
    TCase *grad = tcase_create("gradcheck");
    TCase *naive = tcase_create("naive");
    TCase *null = tcase_create("null");
    TCase *known = tcase_create("known");

    tcase_add_test(grad, test_embedding);
    tcase_add_test(grad, test_patch_embed_gradcheck);
    tcase_add_test(grad, test_class_embed);
    tcase_add_test(grad, test_pool_rows);
    suite_add_tcase(s, grad);

    tcase_add_test(naive, test_patch_embed_vs_direct_conv);
    suite_add_tcase(s, naive);

    tcase_add_test(null, test_patch_embed_null_and_accumulate);
    suite_add_tcase(s, null);

    tcase_add_test(known, test_patch_embed_known_layout);
    suite_add_tcase(s, known);
    return s;
}
