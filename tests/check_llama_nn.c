/*
 * check_llama_nn.c: the decoder kernels (models/llama_nn.h): RMSNorm,
 * rotary embeddings, SwiGLU and grouped-query attention.
 *
 *   - central finite differences of every input and parameter gradient
 *     (GQA on the BLAS path and the naive path, 1, 2 and 4 query heads per
 *     key/value head);
 *   - naive loops against the BLAS path (GQA, odd shapes, accumulation);
 *   - PyTorch golden values (tests/ref/llama_golden.py: plain torch from
 *     HF's definitions) for every kernel's output and gradients;
 *   - known facts: RoPE at position 0 is the identity and keeps norms, its
 *     backward inverts it; a query at pos0 > 0 against a KV buffer equals
 *     the same row of the whole sequence's attention.
 */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "core/status.h"
#include "golden.h"
#include "models/llama_nn.h"
#include "suites.h"
#include "test_util.h"

#define GOLDEN_FILE "llama/golden.bin"
#define GOLDEN_HINT "/usr/bin/python3 tests/ref/llama_golden.py"

/* FD tolerances (check_attention.c's reasoning): eps 1e-3 on values of
 * scale 1, loss sum(out * R) in double */
#define EPS  1e-3f
#define ATOL 2e-3
#define RTOL 1e-2

static void golden_load(struct golden *g)
{
    int rc = golden_open(g, fixture_path(GOLDEN_FILE), GOLDEN_HINT);

    ck_assert_msg(rc == RL_OK, "%s", rl_error_msg());
}

/* the golden tensor name with n elements (shape checked by count) */
static const float *gget(const struct golden *g, const char *name, size_t n)
{
    const struct golden_tensor *t = golden_find(g, name);

    ck_assert_msg(t != NULL, "golden tensor %s missing", name);
    ck_assert_msg(t->n == n, "golden %s has %zu values, expected %zu", name, t->n, n);
    return t->data;
}

/* ------------------------------------------------------------------------ */
/* RMSNorm                                                                   */

struct rms_case {
    size_t N, C;
    float *x, *w, *R, *out, *rstd;
};

static double rms_loss(void *ctx)
{
    struct rms_case *c = ctx;

    rmsnorm_forward(c->out, c->rstd, c->x, c->w, c->N, c->C, 1e-6f);
    return dot_double(c->out, c->R, c->N * c->C);
}

START_TEST(test_rmsnorm_gradcheck)
{
    struct rms_case c = { .N = 4, .C = 9 };
    struct rng r;
    float *dx, *dw;

    rng_init(&r, 11);
    c.x = test_randn(&r, c.N * c.C, 1.0f);
    c.w = test_randn(&r, c.C, 1.0f);
    c.R = test_randn(&r, c.N * c.C, 1.0f);
    c.out = test_zeros(c.N * c.C);
    c.rstd = test_zeros(c.N);
    dx = test_zeros(c.N * c.C);
    dw = test_zeros(c.C);
    rms_loss(&c);
    rmsnorm_backward(dx, dw, c.R, c.x, c.w, c.rstd, c.N, c.C);
    ck_assert_uint_eq(gradcheck("dx", c.x, dx, c.N * c.C, rms_loss, &c, EPS, ATOL, RTOL, 1000), 0);
    ck_assert_uint_eq(gradcheck("dw", c.w, dw, c.C, rms_loss, &c, EPS, ATOL, RTOL, 1000), 0);
    ck_assert(dot_double(dx, dx, c.N * c.C) > 1e-3);
    /* NULL gradients are skipped; accumulation adds */
    rmsnorm_backward(NULL, dw, c.R, c.x, c.w, c.rstd, c.N, c.C);
    rmsnorm_backward(dx, NULL, c.R, c.x, c.w, c.rstd, c.N, c.C);
    {
        float *dx1 = test_zeros(c.N * c.C);

        rmsnorm_backward(dx1, NULL, c.R, c.x, c.w, c.rstd, c.N, c.C);
        for (size_t i = 0; i < c.N * c.C; i++)
            ck_assert_float_eq_tol(dx[i], 2.0f * dx1[i], 1e-5f);
        free(dx1);
    }
    free(c.x); free(c.w); free(c.R); free(c.out); free(c.rstd); free(dx); free(dw);
}
END_TEST

START_TEST(test_rmsnorm_golden)
{
    struct golden g;
    const size_t N = 5, C = 16;
    float out[80], rstd[5], dx[80] = { 0 }, dw[16] = { 0 };

    golden_load(&g);
    const float *x = gget(&g, "rmsnorm.x", N * C), *w = gget(&g, "rmsnorm.w", C);
    const float *R = gget(&g, "rmsnorm.R", N * C);
    rmsnorm_forward(out, rstd, x, w, N, C, 1e-6f);
    rmsnorm_backward(dx, dw, R, x, w, rstd, N, C);
    ck_assert_uint_eq(tensor_compare("out", out, gget(&g, "rmsnorm.out", N * C), N * C, 1e-6, 1e-5), 0);
    ck_assert_uint_eq(tensor_compare("dx", dx, gget(&g, "rmsnorm.dx", N * C), N * C, 1e-5, 1e-4), 0);
    ck_assert_uint_eq(tensor_compare("dw", dw, gget(&g, "rmsnorm.dw", C), C, 1e-5, 1e-4), 0);
    golden_close(&g);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* rotary embeddings                                                         */

/* the default frequencies theta^(-2i/hs) */
static void inv_freq_default(float *f, size_t hs, double theta)
{
    for (size_t i = 0; i < hs / 2; i++)
        f[i] = 1.0f / (float)pow(theta, (double)(2 * i) / (double)hs);
}

struct rope_case {
    size_t B, T, H, hs;
    float *x, *y, *R, *cos_t, *sin_t;
};

static double rope_loss(void *ctx)
{
    struct rope_case *c = ctx;
    const size_t n = c->B * c->T * c->H * c->hs;

    memcpy(c->y, c->x, n * sizeof(float));
    rope_forward(c->y, c->cos_t, c->sin_t, c->B, c->T, c->H, c->hs);
    return dot_double(c->y, c->R, n);
}

START_TEST(test_rope_gradcheck_and_inverse)
{
    struct rope_case c = { .B = 2, .T = 6, .H = 3, .hs = 8 };
    const size_t n = 2 * 6 * 3 * 8;
    float inv[4], *dx = test_zeros(n), *z;
    struct rng r;

    rng_init(&r, 12);
    inv_freq_default(inv, c.hs, 10000.0);
    c.x = test_randn(&r, n, 1.0f);
    c.R = test_randn(&r, n, 1.0f);
    c.y = test_zeros(n);
    c.cos_t = test_zeros(c.T * 4);
    c.sin_t = test_zeros(c.T * 4);
    rope_table(c.cos_t, c.sin_t, inv, 0, c.T, c.hs);
    /* dL/dx = R^T R_out: the backward applied to R */
    memcpy(dx, c.R, n * sizeof(float));
    rope_backward(dx, c.cos_t, c.sin_t, c.B, c.T, c.H, c.hs);
    ck_assert_uint_eq(gradcheck("dx", c.x, dx, n, rope_loss, &c, 1e-2f, ATOL, RTOL, 1000), 0);
    /* position 0 is the identity; every position keeps each pair's norm;
     * the backward undoes the forward */
    rope_loss(&c);
    for (size_t b = 0; b < c.B; b++)
        for (size_t k = 0; k < c.H * c.hs; k++)
            ck_assert_float_eq(c.y[b * c.T * c.H * c.hs + k], c.x[b * c.T * c.H * c.hs + k]);
    ck_assert_double_eq_tol(dot_double(c.y, c.y, n), dot_double(c.x, c.x, n), 1e-3);
    z = test_copy(c.y, n);
    rope_backward(z, c.cos_t, c.sin_t, c.B, c.T, c.H, c.hs);
    ck_assert_uint_eq(tensor_compare("inverse", z, c.x, n, 1e-5, 1e-5), 0);
    free(z); free(dx); free(c.x); free(c.y); free(c.R); free(c.cos_t); free(c.sin_t);
}
END_TEST

START_TEST(test_rope_golden)
{
    struct golden g;
    const size_t B = 2, T = 5, H = 3, hs = 8, n = B * T * H * hs;
    float inv[4], cos_t[20], sin_t[20], *y, *dx;

    golden_load(&g);
    inv_freq_default(inv, hs, 10000.0);
    rope_table(cos_t, sin_t, inv, 0, T, hs);
    y = test_copy(gget(&g, "rope.x", n), n);
    dx = test_copy(gget(&g, "rope.R", n), n);
    rope_forward(y, cos_t, sin_t, B, T, H, hs);
    rope_backward(dx, cos_t, sin_t, B, T, H, hs);
    ck_assert_uint_eq(tensor_compare("out", y, gget(&g, "rope.out", n), n, 1e-6, 1e-5), 0);
    ck_assert_uint_eq(tensor_compare("dx", dx, gget(&g, "rope.dx", n), n, 1e-6, 1e-5), 0);
    free(y);
    free(dx);
    golden_close(&g);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* SwiGLU                                                                    */

struct swiglu_case {
    size_t n;
    float *gate, *up, *out, *R;
};

static double swiglu_loss(void *ctx)
{
    struct swiglu_case *c = ctx;

    swiglu_forward(c->out, c->gate, c->up, c->n);
    return dot_double(c->out, c->R, c->n);
}

START_TEST(test_swiglu_gradcheck)
{
    struct swiglu_case c = { .n = 40 };
    struct rng r;
    float *dg, *du;

    rng_init(&r, 13);
    c.gate = test_randn(&r, c.n, 3.0f);
    c.up = test_randn(&r, c.n, 1.0f);
    c.R = test_randn(&r, c.n, 1.0f);
    c.out = test_zeros(c.n);
    dg = test_zeros(c.n);
    du = test_zeros(c.n);
    swiglu_loss(&c);
    swiglu_backward(dg, du, c.R, c.gate, c.up, c.n);
    ck_assert_uint_eq(gradcheck("dgate", c.gate, dg, c.n, swiglu_loss, &c, EPS, ATOL, RTOL, 100), 0);
    ck_assert_uint_eq(gradcheck("dup", c.up, du, c.n, swiglu_loss, &c, EPS, ATOL, RTOL, 100), 0);
    free(c.gate); free(c.up); free(c.R); free(c.out); free(dg); free(du);
}
END_TEST

START_TEST(test_swiglu_golden)
{
    struct golden g;
    const size_t n = 77;
    float out[77], dg[77] = { 0 }, du[77] = { 0 };

    golden_load(&g);
    const float *gate = gget(&g, "swiglu.gate", n), *up = gget(&g, "swiglu.up", n);
    swiglu_forward(out, gate, up, n);
    swiglu_backward(dg, du, gget(&g, "swiglu.R", n), gate, up, n);
    ck_assert_uint_eq(tensor_compare("out", out, gget(&g, "swiglu.out", n), n, 1e-6, 1e-5), 0);
    ck_assert_uint_eq(tensor_compare("dgate", dg, gget(&g, "swiglu.dgate", n), n, 1e-6, 1e-5), 0);
    ck_assert_uint_eq(tensor_compare("dup", du, gget(&g, "swiglu.dup", n), n, 1e-6, 1e-5), 0);
    golden_close(&g);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* grouped-query attention                                                   */

struct gqa_case {
    struct gqa_dims d;
    bool naive;
    float *q, *k, *v, *out, *att, *R, *dq, *dk, *dv, *scratch;
    size_t nq, nkv, natt;
};

static void gc_init(struct gqa_case *c, size_t B, size_t T, size_t NH, size_t KVH, size_t hs,
                    uint64_t seed)
{
    struct rng r;

    memset(c, 0, sizeof(*c));
    c->d = (struct gqa_dims){ .B = B, .Tq = T, .NH = NH, .KVH = KVH, .hs = hs, .pos0 = 0,
                              .kv_T = T };
    c->nq = B * T * NH * hs;
    c->nkv = B * T * KVH * hs;
    c->natt = B * NH * T * T;
    rng_init(&r, seed);
    c->q = test_randn(&r, c->nq, 1.0f);
    c->k = test_randn(&r, c->nkv, 1.0f);
    c->v = test_randn(&r, c->nkv, 1.0f);
    c->R = test_randn(&r, c->nq, 1.0f);
    c->out = test_zeros(c->nq);
    c->att = test_zeros(c->natt);
    c->dq = test_zeros(c->nq);
    c->dk = test_zeros(c->nkv);
    c->dv = test_zeros(c->nkv);
    c->scratch = test_zeros(c->natt);
}

static void gc_free(struct gqa_case *c)
{
    free(c->q); free(c->k); free(c->v); free(c->R); free(c->out); free(c->att);
    free(c->dq); free(c->dk); free(c->dv); free(c->scratch);
}

static void gc_forward(struct gqa_case *c)
{
    if (c->naive)
        gqa_attention_forward_naive(c->out, c->att, c->q, c->k, c->v, &c->d);
    else
        gqa_attention_forward(c->out, c->att, c->q, c->k, c->v, &c->d);
}

static void gc_backward(struct gqa_case *c)
{
    if (c->naive)
        gqa_attention_backward_naive(c->dq, c->dk, c->dv, c->R, c->att, c->q, c->k, c->v, &c->d);
    else
        gqa_attention_backward(c->dq, c->dk, c->dv, c->scratch, c->R, c->att, c->q, c->k,
                               c->v, &c->d);
}

static double gc_loss(void *ctx)
{
    struct gqa_case *c = ctx;

    gc_forward(c);
    return dot_double(c->out, c->R, c->nq);
}

/* _i: group sizes 1, 2, 4 (NH 4 over KVH 4, 2, 1), BLAS then naive */
START_TEST(test_gqa_gradcheck)
{
    const size_t KVH = (size_t[]){ 4, 2, 1 }[_i % 3];
    struct gqa_case c;

    gc_init(&c, 2, 5, 4, KVH, 6, 100 + (uint64_t)_i);
    c.naive = _i >= 3;
    gc_forward(&c);
    gc_backward(&c);
    ck_assert_uint_eq(gradcheck("q", c.q, c.dq, c.nq, gc_loss, &c, EPS, ATOL, RTOL, c.nq), 0);
    ck_assert_uint_eq(gradcheck("k", c.k, c.dk, c.nkv, gc_loss, &c, EPS, ATOL, RTOL, c.nkv), 0);
    ck_assert_uint_eq(gradcheck("v", c.v, c.dv, c.nkv, gc_loss, &c, EPS, ATOL, RTOL, c.nkv), 0);
    ck_assert(dot_double(c.dk, c.dk, c.nkv) > 1e-3);
    gc_free(&c);
}
END_TEST

/* naive vs BLAS on an odd shape (T 17, hs 10, 6 heads over 2) and one large
 * enough to thread the softmax loops (T 64); gradients start random, so
 * accumulation is compared too */
START_TEST(test_gqa_naive_vs_fast)
{
    const size_t T = _i ? 64 : 17, hs = _i ? 16 : 10;
    struct gqa_case f, s;
    struct rng r;
    float *g0;

    gc_init(&f, 2, T, 6, 2, hs, 55);
    gc_init(&s, 2, T, 6, 2, hs, 55);
    s.naive = true;
    gc_forward(&f);
    gc_forward(&s);
    ck_assert_uint_eq(tensor_compare("att", f.att, s.att, f.natt, 1e-6, 1e-4), 0);
    ck_assert_uint_eq(tensor_compare("out", f.out, s.out, f.nq, 1e-5, 1e-4), 0);
    rng_init(&r, 56);
    g0 = test_randn(&r, f.nq + 2 * f.nkv, 0.5f);
    memcpy(f.dq, g0, f.nq * sizeof(float));
    memcpy(s.dq, g0, f.nq * sizeof(float));
    memcpy(f.dk, g0 + f.nq, f.nkv * sizeof(float));
    memcpy(s.dk, g0 + f.nq, f.nkv * sizeof(float));
    memcpy(f.dv, g0 + f.nq + f.nkv, f.nkv * sizeof(float));
    memcpy(s.dv, g0 + f.nq + f.nkv, f.nkv * sizeof(float));
    gc_backward(&f);
    gc_backward(&s);
    ck_assert_uint_eq(tensor_compare("dq", f.dq, s.dq, f.nq, 1e-5, 1e-4), 0);
    ck_assert_uint_eq(tensor_compare("dk", f.dk, s.dk, f.nkv, 1e-5, 1e-4), 0);
    ck_assert_uint_eq(tensor_compare("dv", f.dv, s.dv, f.nkv, 1e-5, 1e-4), 0);
    ck_assert(test_max_abs_diff(f.dk, g0 + f.nq, f.nkv) > 1e-2);
    free(g0);
    gc_free(&f);
    gc_free(&s);
}
END_TEST

START_TEST(test_gqa_golden)
{
    struct golden g;
    struct gqa_case c;

    gc_init(&c, 2, 5, 4, 2, 6, 1);
    golden_load(&g);
    memcpy(c.q, gget(&g, "gqa.q", c.nq), c.nq * sizeof(float));
    memcpy(c.k, gget(&g, "gqa.k", c.nkv), c.nkv * sizeof(float));
    memcpy(c.v, gget(&g, "gqa.v", c.nkv), c.nkv * sizeof(float));
    memcpy(c.R, gget(&g, "gqa.R", c.nq), c.nq * sizeof(float));
    for (int naive = 0; naive < 2; naive++) {
        c.naive = naive;
        memset(c.dq, 0, c.nq * sizeof(float));
        memset(c.dk, 0, c.nkv * sizeof(float));
        memset(c.dv, 0, c.nkv * sizeof(float));
        gc_forward(&c);
        gc_backward(&c);
        ck_assert_uint_eq(tensor_compare("out", c.out, gget(&g, "gqa.out", c.nq), c.nq, 1e-5, 1e-4), 0);
        ck_assert_uint_eq(tensor_compare("dq", c.dq, gget(&g, "gqa.dq", c.nq), c.nq, 1e-5, 1e-4), 0);
        ck_assert_uint_eq(tensor_compare("dk", c.dk, gget(&g, "gqa.dk", c.nkv), c.nkv, 1e-5, 1e-4), 0);
        ck_assert_uint_eq(tensor_compare("dv", c.dv, gget(&g, "gqa.dv", c.nkv), c.nkv, 1e-5, 1e-4), 0);
    }
    golden_close(&g);
    gc_free(&c);
}
END_TEST

/* queries 3..6 of a sequence against a KV buffer of 9 rows (pos0 3): the
 * rows of the whole sequence's output, and probabilities 0 past each
 * query's position */
START_TEST(test_gqa_offset_queries)
{
    const size_t T = 7, NH = 4, KVH = 2, hs = 6, qd = NH * hs, kvd = KVH * hs, cap = 9;
    const size_t p0 = 3, Tq = T - p0;
    struct gqa_case f;
    struct gqa_dims d = { .B = 1, .Tq = Tq, .NH = NH, .KVH = KVH, .hs = hs, .pos0 = p0,
                          .kv_T = cap };
    float *kbuf = test_zeros(cap * kvd), *vbuf = test_zeros(cap * kvd);
    float *out = test_zeros(Tq * qd), *att = test_zeros(NH * Tq * T);

    gc_init(&f, 1, T, NH, KVH, hs, 7);
    gc_forward(&f);
    memcpy(kbuf, f.k, T * kvd * sizeof(float));
    memcpy(vbuf, f.v, T * kvd * sizeof(float));
    for (size_t i = T * kvd; i < cap * kvd; i++)
        kbuf[i] = vbuf[i] = 1e30f;              /* never read */
    gqa_attention_forward(out, att, f.q + p0 * qd, kbuf, vbuf, &d);
    ck_assert_uint_eq(tensor_compare("rows", out, f.out + p0 * qd, Tq * qd, 1e-6, 1e-5), 0);
    for (size_t h = 0; h < NH; h++)
        for (size_t i = 0; i < Tq; i++)
            for (size_t j = p0 + i + 1; j < T; j++)
                ck_assert_float_eq(att[(h * Tq + i) * T + j], 0.0f);
    gqa_attention_forward_naive(out, att, f.q + p0 * qd, kbuf, vbuf, &d);
    ck_assert_uint_eq(tensor_compare("naive rows", out, f.out + p0 * qd, Tq * qd, 1e-6, 1e-5), 0);
    free(kbuf); free(vbuf); free(out); free(att);
    gc_free(&f);
}
END_TEST

Suite *suite_llama_nn(void)
{
    Suite *s = suite_create("llama_nn");
    TCase *tc = tcase_create("kernels");

    tcase_add_test(tc, test_rmsnorm_gradcheck);
    tcase_add_test(tc, test_rmsnorm_golden);
    tcase_add_test(tc, test_rope_gradcheck_and_inverse);
    tcase_add_test(tc, test_rope_golden);
    tcase_add_test(tc, test_swiglu_gradcheck);
    tcase_add_test(tc, test_swiglu_golden);
    tcase_add_loop_test(tc, test_gqa_gradcheck, 0, 6);
    tcase_add_loop_test(tc, test_gqa_naive_vs_fast, 0, 2);
    tcase_add_test(tc, test_gqa_golden);
    tcase_add_test(tc, test_gqa_offset_queries);
    suite_add_tcase(s, tc);
    return s;
}
