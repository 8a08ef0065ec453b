/*
 * check_loss.c: heads and losses (models/loss.c): L2 normalisation,
 * scaled-cosine logits, cross-entropy, symmetric CLIP loss.
 *
 *   - central finite differences for every input of every kernel, and for
 *     the whole head chained (embeddings -> l2norm -> logits -> CLIP loss);
 *   - known values (unit norms, log M for uniform logits, ~0 loss for a
 *     perfectly separated diagonal, CLIP loss = mean of the two CEs,
 *     finite losses at huge logit scales);
 *   - NULL gradients skipped, backward accumulating;
 *   - out-of-range targets abort (RL_ASSERT).
 */
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "core/rng.h"
#include "models/nn.h"
#include "suites.h"
#include "test_proc.h"
#include "test_util.h"

/*
 * Finite-difference tolerances. Losses that are dot_double of float outputs
 * (l2norm, logits) carry ~1e-7 relative rounding: eps 1e-3, atol 1e-3,
 * rtol 1e-2. Losses returned as float (crossentropy, clip: ~1e-7 relative
 * on a value ~2, i.e. ~2e-7 absolute) need a larger step to keep the
 * difference quotient's noise (~2e-7 / 2 eps) small: eps 1e-2, where the
 * O(eps^2) truncation error on logits of scale 2 is ~1e-5; atol 1e-3,
 * rtol 1e-2. Analytic gradients here are O(0.1 .. 1).
 */
#define GC_EPS        1e-3f
#define GC_EPS_SCALAR 1e-2f
#define GC_ATOL       1e-3
#define GC_RTOL       1e-2

static void scale_inplace(float *x, size_t n, float s)
{
    for (size_t i = 0; i < n; i++)
        x[i] *= s;
}

/* ------------------------------------------------------------------------ */
/* l2norm                                                                    */

struct l2_ctx {
    size_t N, D;
    float *inp, *out, *norm, *R;
};

static double l2_loss(void *p)
{
    struct l2_ctx *c = p;

    l2norm_forward(c->out, c->norm, c->inp, c->N, c->D);
    return dot_double(c->out, c->R, c->N * c->D);
}

START_TEST(test_l2norm_gradcheck)
{
    struct rng r;
    struct l2_ctx c = { .N = 4, .D = 6 };
    size_t n = c.N * c.D;
    float *dinp;

    rng_init(&r, 1);
    c.inp = test_randn(&r, n, 1.0f);
    c.R = test_randn(&r, n, 1.0f);
    c.out = test_zeros(n);
    c.norm = test_zeros(c.N);
    dinp = test_zeros(n);
    l2norm_forward(c.out, c.norm, c.inp, c.N, c.D);
    l2norm_backward(dinp, c.R, c.out, c.norm, c.N, c.D);
    ck_assert_int_eq(gradcheck("inp", c.inp, dinp, n, l2_loss, &c,
                               GC_EPS, GC_ATOL, GC_RTOL, n), 0);
    free(c.inp); free(c.R); free(c.out); free(c.norm); free(dinp);
}
END_TEST

/* unit norms; norm holds ||x||; the direction is kept; a zero row gives
 * zeros (not NaN); a second backward doubles; NULL dinp is a no-op. */
START_TEST(test_l2norm_values)
{
    struct rng r;
    const size_t N = 5, D = 33;
    float *x, *y, *norm, *dy, *dx, *dx1;

    rng_init(&r, 2);
    x = test_randn(&r, N * D, 3.0f);
    memset(x + 4 * D, 0, D * sizeof(float));   /* row 4: zero */
    y = test_zeros(N * D);
    norm = test_zeros(N);
    l2norm_forward(y, norm, x, N, D);
    for (size_t n = 0; n < 4; n++) {
        double ss = 0.0, xx = 0.0;
        for (size_t d = 0; d < D; d++) {
            ss += (double)y[n * D + d] * y[n * D + d];
            xx += (double)x[n * D + d] * x[n * D + d];
        }
        ck_assert_double_eq_tol(ss, 1.0, 1e-6);
        ck_assert_double_eq_tol(norm[n], sqrt(xx), 1e-6 * sqrt(xx));
        for (size_t d = 0; d < D; d++)
            ck_assert_float_eq_tol(y[n * D + d] * norm[n], x[n * D + d], 1e-5f);
    }
    for (size_t d = 0; d < D; d++)
        ck_assert(y[4 * D + d] == 0.0f);

    dy = test_randn(&r, N * D, 1.0f);
    dx = test_zeros(N * D);
    l2norm_backward(dx, dy, y, norm, N, D);
    for (size_t i = 0; i < N * D; i++)
        ck_assert(isfinite(dx[i]));
    /* the gradient is orthogonal to y (the norm is invariant along y) */
    for (size_t n = 0; n < 4; n++) {
        double dot = 0.0;
        for (size_t d = 0; d < D; d++)
            dot += (double)dx[n * D + d] * y[n * D + d];
        ck_assert_double_eq_tol(dot, 0.0, 1e-6);
    }
    dx1 = test_copy(dx, N * D);
    l2norm_backward(dx, dy, y, norm, N, D);
    l2norm_backward(NULL, dy, y, norm, N, D);
    scale_inplace(dx1, N * D, 2.0f);
    ck_assert_int_eq(tensor_compare("dx-twice", dx, dx1, N * D, 0.0, 1e-6), 0);
    free(x); free(y); free(norm); free(dy); free(dx); free(dx1);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* cosine logits                                                             */

struct cos_ctx {
    size_t N, M, D;
    float *a, *b, *logits, *R;
    float scale;
};

static double cos_loss(void *p)
{
    struct cos_ctx *c = p;

    cosine_logits_forward(c->logits, c->a, c->b, c->scale, c->N, c->M, c->D);
    return dot_double(c->logits, c->R, c->N * c->M);
}

static void cos_init(struct cos_ctx *c, uint64_t seed)
{
    struct rng r;
    float *norm, *raw;

    rng_init(&r, seed);
    c->N = 3; c->M = 4; c->D = 5; c->scale = 7.3f;
    c->a = test_zeros(c->N * c->D);
    c->b = test_zeros(c->M * c->D);
    c->R = test_randn(&r, c->N * c->M, 1.0f);
    c->logits = test_zeros(c->N * c->M);
    /* normalise like the real head (the kernel itself does not need it) */
    norm = test_zeros(c->N > c->M ? c->N : c->M);
    raw = test_randn(&r, c->N * c->D, 1.0f);
    l2norm_forward(c->a, norm, raw, c->N, c->D);
    free(raw);
    raw = test_randn(&r, c->M * c->D, 1.0f);
    l2norm_forward(c->b, norm, raw, c->M, c->D);
    free(raw);
    free(norm);
}

static void cos_free(struct cos_ctx *c)
{
    free(c->a); free(c->b); free(c->R); free(c->logits);
}

START_TEST(test_cosine_gradcheck)
{
    struct cos_ctx c;
    float *da, *db, dscale = 0.0f;

    cos_init(&c, 3);
    da = test_zeros(c.N * c.D);
    db = test_zeros(c.M * c.D);
    cosine_logits_forward(c.logits, c.a, c.b, c.scale, c.N, c.M, c.D);
    cosine_logits_backward(da, db, &dscale, c.R, c.a, c.b, c.scale, c.N, c.M, c.D);
    ck_assert_int_eq(gradcheck("a", c.a, da, c.N * c.D, cos_loss, &c,
                               GC_EPS, GC_ATOL, GC_RTOL, c.N * c.D), 0);
    ck_assert_int_eq(gradcheck("b", c.b, db, c.M * c.D, cos_loss, &c,
                               GC_EPS, GC_ATOL, GC_RTOL, c.M * c.D), 0);
    ck_assert_int_eq(gradcheck("scale", &c.scale, &dscale, 1, cos_loss, &c,
                               GC_EPS, GC_ATOL, GC_RTOL, 1), 0);
    ck_assert(fabsf(dscale) > 1e-2f);
    free(da); free(db);
    cos_free(&c);
}
END_TEST

/* logits are scale * cosines (in [-scale, scale]); dscale = sum(dlogits *
 * logits) / scale; NULLs skip; a second backward doubles. */
START_TEST(test_cosine_values_null_accumulate)
{
    struct cos_ctx c;
    float *da, *db, *da1, *db1, *g, dscale = 0.0f, dscale1, ds = 0.0f;
    double want = 0.0;

    cos_init(&c, 4);
    cosine_logits_forward(c.logits, c.a, c.b, c.scale, c.N, c.M, c.D);
    for (size_t n = 0; n < c.N; n++)
        for (size_t m = 0; m < c.M; m++) {
            double ab = 0.0;
            for (size_t d = 0; d < c.D; d++)
                ab += (double)c.a[n * c.D + d] * c.b[m * c.D + d];
            ck_assert_double_eq_tol(c.logits[n * c.M + m], c.scale * ab, 1e-5);
            ck_assert(fabsf(c.logits[n * c.M + m]) <= c.scale * (1.0f + 1e-6f));
            want += (double)c.R[n * c.M + m] * c.logits[n * c.M + m] / c.scale;
        }

    da = test_zeros(c.N * c.D);
    db = test_zeros(c.M * c.D);
    cosine_logits_backward(da, db, &dscale, c.R, c.a, c.b, c.scale, c.N, c.M, c.D);
    ck_assert_double_eq_tol(dscale, want, 1e-5);
    da1 = test_copy(da, c.N * c.D);
    db1 = test_copy(db, c.M * c.D);
    dscale1 = dscale;

    /* each alone */
    g = test_zeros(c.N * c.D);
    cosine_logits_backward(g, NULL, NULL, c.R, c.a, c.b, c.scale, c.N, c.M, c.D);
    ck_assert_int_eq(tensor_compare("da-alone", g, da1, c.N * c.D, 0.0, 1e-6), 0);
    free(g);
    g = test_zeros(c.M * c.D);
    cosine_logits_backward(NULL, g, NULL, c.R, c.a, c.b, c.scale, c.N, c.M, c.D);
    ck_assert_int_eq(tensor_compare("db-alone", g, db1, c.M * c.D, 0.0, 1e-6), 0);
    free(g);
    cosine_logits_backward(NULL, NULL, &ds, c.R, c.a, c.b, c.scale, c.N, c.M, c.D);
    ck_assert_float_eq_tol(ds, dscale1, 1e-6f);
    cosine_logits_backward(NULL, NULL, NULL, c.R, c.a, c.b, c.scale, c.N, c.M, c.D);

    /* twice */
    cosine_logits_backward(da, db, &dscale, c.R, c.a, c.b, c.scale, c.N, c.M, c.D);
    scale_inplace(da1, c.N * c.D, 2.0f);
    scale_inplace(db1, c.M * c.D, 2.0f);
    ck_assert_int_eq(tensor_compare("da-twice", da, da1, c.N * c.D, 0.0, 1e-6), 0);
    ck_assert_int_eq(tensor_compare("db-twice", db, db1, c.M * c.D, 0.0, 1e-6), 0);
    ck_assert_float_eq_tol(dscale, 2.0f * dscale1, 1e-6f * fabsf(dscale1));
    free(da); free(db); free(da1); free(db1);
    cos_free(&c);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* cross-entropy                                                             */

struct ce_ctx {
    size_t N, M;
    float *logits, *probs;
    int32_t *targets;
    float dloss;
};

static double ce_loss(void *p)
{
    struct ce_ctx *c = p;

    return (double)c->dloss * crossentropy_forward(c->probs, c->logits, c->targets, c->N, c->M);
}

START_TEST(test_crossentropy_gradcheck)
{
    struct rng r;
    struct ce_ctx c = { .N = 4, .M = 6, .dloss = 1.7f };
    int32_t targets[4] = { 0, 5, 2, 2 };
    size_t n = c.N * c.M;
    float *dlogits;

    rng_init(&r, 5);
    c.logits = test_randn(&r, n, 2.0f);
    c.probs = test_zeros(n);
    c.targets = targets;
    dlogits = test_zeros(n);
    crossentropy_forward(c.probs, c.logits, c.targets, c.N, c.M);
    crossentropy_backward(dlogits, c.probs, c.targets, c.dloss, c.N, c.M);
    ck_assert_int_eq(gradcheck("logits", c.logits, dlogits, n, ce_loss, &c,
                               GC_EPS_SCALAR, GC_ATOL, GC_RTOL, n), 0);
    free(c.logits); free(c.probs); free(dlogits);
}
END_TEST

/* uniform logits: loss log M, probs 1/M; a confident correct row: ~0;
 * each row of probs sums to 1; the loss matches a double-precision
 * log-softmax; huge logits stay finite; backward accumulates, NULL skips,
 * each row of the gradient sums to 0. */
START_TEST(test_crossentropy_values)
{
    struct rng r;
    const size_t N = 3, M = 10;
    int32_t t[3] = { 7, 0, 9 };
    float logits[30], probs[30], dl[30], dl1[30];
    float loss;
    double want = 0.0;

    for (size_t i = 0; i < N * M; i++)
        logits[i] = 3.25f;
    loss = crossentropy_forward(probs, logits, t, N, M);
    ck_assert_float_eq_tol(loss, logf((float)M), 1e-6f);
    for (size_t i = 0; i < N * M; i++)
        ck_assert_float_eq_tol(probs[i], 0.1f, 1e-7f);

    /* row 0 strongly right; rows 1, 2 random */
    rng_init(&r, 6);
    rng_fill_normal(&r, logits, N * M, 0.0f, 3.0f);
    for (size_t j = 0; j < M; j++)
        logits[j] = j == 7 ? 60.0f : 0.0f;
    loss = crossentropy_forward(probs, logits, t, N, M);
    for (size_t n = 0; n < N; n++) {
        double mx = -INFINITY, s = 0.0, ps = 0.0;
        for (size_t j = 0; j < M; j++)
            mx = fmax(mx, logits[n * M + j]);
        for (size_t j = 0; j < M; j++) {
            s += exp((double)logits[n * M + j] - mx);
            ps += probs[n * M + j];
        }
        want += mx + log(s) - logits[n * M + t[n]];
        ck_assert_double_eq_tol(ps, 1.0, 1e-6);
    }
    ck_assert_double_eq_tol(loss, want / N, 1e-6 * want / N);
    ck_assert(probs[7] > 1.0f - 1e-6f);

    /* huge logits: probabilities underflow, the loss does not become inf */
    for (size_t j = 0; j < M; j++)
        logits[j] = j == 3 ? 1e4f : 0.0f;   /* target 7: loss 1e4 */
    loss = crossentropy_forward(probs, logits, t, 1, M);
    ck_assert_float_eq_tol(loss, 1e4f, 1e-2f);

    /* backward */
    loss = crossentropy_forward(probs, logits, t, N, M);
    memset(dl, 0, sizeof(dl));
    crossentropy_backward(dl, probs, t, 0.5f, N, M);
    for (size_t n = 0; n < N; n++) {
        double s = 0.0;
        for (size_t j = 0; j < M; j++)
            s += dl[n * M + j];
        ck_assert_double_eq_tol(s, 0.0, 1e-7);
        ck_assert(dl[n * M + t[n]] < 0.0f);
    }
    memcpy(dl1, dl, sizeof(dl));
    crossentropy_backward(dl, probs, t, 0.5f, N, M);
    crossentropy_backward(NULL, probs, t, 0.5f, N, M);
    scale_inplace(dl1, N * M, 2.0f);
    ck_assert_int_eq(tensor_compare("dlogits-twice", dl, dl1, N * M, 0.0, 1e-6), 0);
}
END_TEST

static void crossentropy_bad_target(void *bad)
{
    float logits[6] = { 0 }, probs[6];
    int32_t t[2] = { 1, *(const int32_t *)bad };   /* M = 3 */

    crossentropy_forward(probs, logits, t, 2, 3);
}

/* in a child of its own (test_proc.h: works under CK_FORK=no) */
START_TEST(test_crossentropy_bad_target_aborts)
{
    int32_t bad = _i == 0 ? 3 : -1;
    int st = test_in_child(crossentropy_bad_target, &bad);

    ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT, "target %d: wait status %d, "
                  "expected SIGABRT", (int)bad, st);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* CLIP loss                                                                 */

struct clip_ctx {
    size_t N;
    float *logits, *pi, *pt;
    float dloss;
};

static double clip_loss_fn(void *p)
{
    struct clip_ctx *c = p;

    return (double)c->dloss * clip_loss_forward(c->pi, c->pt, c->logits, c->N);
}

START_TEST(test_clip_gradcheck)
{
    struct rng r;
    struct clip_ctx c = { .N = 5, .dloss = 1.3f };
    size_t n = c.N * c.N;
    float *dlogits;

    rng_init(&r, 7);
    c.logits = test_randn(&r, n, 2.0f);
    c.pi = test_zeros(n);
    c.pt = test_zeros(n);
    dlogits = test_zeros(n);
    clip_loss_forward(c.pi, c.pt, c.logits, c.N);
    clip_loss_backward(dlogits, c.pi, c.pt, c.dloss, c.N);
    ck_assert_int_eq(gradcheck("logits", c.logits, dlogits, n, clip_loss_fn, &c,
                               GC_EPS_SCALAR, GC_ATOL, GC_RTOL, n), 0);
    free(c.logits); free(c.pi); free(c.pt); free(dlogits);
}
END_TEST

/* the CLIP loss is the mean of crossentropy_forward on the logits and on
 * their transpose, with the same saved softmaxes; it is not symmetric in
 * general, so the transpose matters; backward accumulates, NULL skips. */
START_TEST(test_clip_equals_two_ce)
{
    struct rng r;
    const size_t N = 6;
    float L[36], LT[36], pi[36], pt[36], p1[36], p2[36], dl[36], dl1[36], dce[36];
    int32_t ar[6];
    float loss, ce_img, ce_txt;

    rng_init(&r, 8);
    rng_fill_normal(&r, L, N * N, 0.0f, 4.0f);
    for (size_t i = 0; i < N; i++) {
        ar[i] = (int32_t)i;
        for (size_t j = 0; j < N; j++)
            LT[j * N + i] = L[i * N + j];
    }
    loss = clip_loss_forward(pi, pt, L, N);
    ce_img = crossentropy_forward(p1, L, ar, N, N);
    ce_txt = crossentropy_forward(p2, LT, ar, N, N);
    ck_assert(fabsf(ce_img - ce_txt) > 1e-3f);   /* the two halves differ */
    ck_assert_float_eq_tol(loss, 0.5f * (ce_img + ce_txt), 1e-6f * loss);
    ck_assert_int_eq(tensor_compare("probs_img", pi, p1, N * N, 0.0, 0.0), 0);
    ck_assert_int_eq(tensor_compare("probs_txt", pt, p2, N * N, 0.0, 0.0), 0);

    /* gradient = half the CE gradient of L plus half (transposed) of L^T's */
    memset(dl, 0, sizeof(dl));
    clip_loss_backward(dl, pi, pt, 1.0f, N);
    memset(dce, 0, sizeof(dce));
    crossentropy_backward(dce, p1, ar, 0.5f, N, N);
    memset(dl1, 0, sizeof(dl1));
    crossentropy_backward(dl1, p2, ar, 0.5f, N, N);
    for (size_t i = 0; i < N; i++)
        for (size_t j = 0; j < N; j++)
            dce[i * N + j] += dl1[j * N + i];
    ck_assert_int_eq(tensor_compare("dlogits", dl, dce, N * N, 1e-7, 1e-6), 0);

    memcpy(dl1, dl, sizeof(dl));
    clip_loss_backward(dl, pi, pt, 1.0f, N);
    clip_loss_backward(NULL, pi, pt, 1.0f, N);
    scale_inplace(dl1, N * N, 2.0f);
    ck_assert_int_eq(tensor_compare("dlogits-twice", dl, dl1, N * N, 0.0, 1e-6), 0);
}
END_TEST

/* perfectly separated embeddings at scale 100: logits 100 I, loss ~0 and
 * its gradient ~0; the same at scale 1e4 with the diagonal wrong stays
 * finite (logsumexp, not -log(prob)). */
START_TEST(test_clip_separated)
{
    const size_t N = 8;
    float L[64], pi[64], pt[64], dl[64];
    float loss;

    for (size_t i = 0; i < N; i++)
        for (size_t j = 0; j < N; j++)
            L[i * N + j] = i == j ? 100.0f : 0.0f;
    loss = clip_loss_forward(pi, pt, L, N);
    ck_assert(loss >= 0.0f && loss < 1e-30f);
    memset(dl, 0, sizeof(dl));
    clip_loss_backward(dl, pi, pt, 1.0f, N);
    for (size_t i = 0; i < N * N; i++)
        ck_assert(fabsf(dl[i]) < 1e-30f);

    /* every image matches text i+1: loss = 1e4 per row and column */
    for (size_t i = 0; i < N; i++)
        for (size_t j = 0; j < N; j++)
            L[i * N + j] = j == (i + 1) % N ? 1e4f : 0.0f;
    loss = clip_loss_forward(pi, pt, L, N);
    ck_assert(isfinite(loss));
    ck_assert_float_eq_tol(loss, 1e4f, 1e-2f);

    /* ties: an all-equal matrix gives log N */
    for (size_t i = 0; i < N * N; i++)
        L[i] = -2.5f;
    loss = clip_loss_forward(pi, pt, L, N);
    ck_assert_float_eq_tol(loss, logf((float)N), 1e-6f);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* the whole head chained: raw embeddings -> l2norm -> cosine logits ->
 * CLIP loss; gradients of both embeddings and of the scale */

struct head_ctx {
    size_t N, D;
    float *x_img, *x_txt, *img, *txt, *ni, *nt, *logits, *pi, *pt;
    float scale;
};

static double head_forward(struct head_ctx *h)
{
    l2norm_forward(h->img, h->ni, h->x_img, h->N, h->D);
    l2norm_forward(h->txt, h->nt, h->x_txt, h->N, h->D);
    cosine_logits_forward(h->logits, h->img, h->txt, h->scale, h->N, h->N, h->D);
    return clip_loss_forward(h->pi, h->pt, h->logits, h->N);
}

static double head_loss(void *p)
{
    return head_forward(p);
}

START_TEST(test_head_chain_gradcheck)
{
    struct rng r;
    struct head_ctx h = { .N = 4, .D = 7, .scale = 10.0f };
    size_t n = h.N * h.D;
    float *dimg, *dtxt, *dxi, *dxt, *dlogits, dscale = 0.0f;

    rng_init(&r, 9);
    h.x_img = test_randn(&r, n, 1.0f);
    h.x_txt = test_randn(&r, n, 1.0f);
    h.img = test_zeros(n);
    h.txt = test_zeros(n);
    h.ni = test_zeros(h.N);
    h.nt = test_zeros(h.N);
    h.logits = test_zeros(h.N * h.N);
    h.pi = test_zeros(h.N * h.N);
    h.pt = test_zeros(h.N * h.N);
    dimg = test_zeros(n);
    dtxt = test_zeros(n);
    dxi = test_zeros(n);
    dxt = test_zeros(n);
    dlogits = test_zeros(h.N * h.N);

    head_forward(&h);
    clip_loss_backward(dlogits, h.pi, h.pt, 1.0f, h.N);
    cosine_logits_backward(dimg, dtxt, &dscale, dlogits, h.img, h.txt, h.scale, h.N, h.N, h.D);
    l2norm_backward(dxi, dimg, h.img, h.ni, h.N, h.D);
    l2norm_backward(dxt, dtxt, h.txt, h.nt, h.N, h.D);

    ck_assert_int_eq(gradcheck("x_img", h.x_img, dxi, n, head_loss, &h,
                               GC_EPS_SCALAR, GC_ATOL, GC_RTOL, n), 0);
    ck_assert_int_eq(gradcheck("x_txt", h.x_txt, dxt, n, head_loss, &h,
                               GC_EPS_SCALAR, GC_ATOL, GC_RTOL, n), 0);
    ck_assert_int_eq(gradcheck("scale", &h.scale, &dscale, 1, head_loss, &h,
                               GC_EPS_SCALAR, GC_ATOL, GC_RTOL, 1), 0);
    /* not trivially zero */
    ck_assert(dot_double(dxi, dxi, n) > 1e-4 && dot_double(dxt, dxt, n) > 1e-4);
    free(h.x_img); free(h.x_txt); free(h.img); free(h.txt); free(h.ni); free(h.nt);
    free(h.logits); free(h.pi); free(h.pt);
    free(dimg); free(dtxt); free(dxi); free(dxt); free(dlogits);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* sizes large enough for the OpenMP loops to run multithreaded, against
 * double-precision references: CLIP loss and its softmaxes (N = 130),
 * cosine logits' dscale (N*M*D = 130*130*16). */
START_TEST(test_large_against_double)
{
    struct rng r;
    const size_t N = 130, D = 16;
    float *L, *pi, *pt, *a, *b, *dl, *dl_want, dscale = 0.0f;
    double loss_want = 0.0, ds_want = 0.0;
    float loss;

    rng_init(&r, 10);
    L = test_randn(&r, N * N, 3.0f);
    a = test_randn(&r, N * D, 1.0f);
    b = test_randn(&r, N * D, 1.0f);
    pi = test_zeros(N * N);
    pt = test_zeros(N * N);
    dl = test_zeros(N * N);
    dl_want = test_zeros(N * N);
    loss = clip_loss_forward(pi, pt, L, N);
    clip_loss_backward(dl, pi, pt, 1.0f, N);
    for (int dir = 0; dir < 2; dir++)
        for (size_t i = 0; i < N; i++) {
            /* dir 0: row i of L; dir 1: column i */
            double mx = -INFINITY, s = 0.0;
            for (size_t j = 0; j < N; j++)
                mx = fmax(mx, dir ? L[j * N + i] : L[i * N + j]);
            for (size_t j = 0; j < N; j++)
                s += exp((double)(dir ? L[j * N + i] : L[i * N + j]) - mx);
            loss_want += (mx + log(s) - L[i * N + i]) / (2.0 * N);
            for (size_t j = 0; j < N; j++) {
                size_t at = dir ? j * N + i : i * N + j;
                double p = exp((double)L[at] - mx) / s;
                dl_want[at] += (float)((p - (i == j)) / (2.0 * N));
            }
        }
    ck_assert_double_eq_tol(loss, loss_want, 1e-6 * loss_want);
    ck_assert_int_eq(tensor_compare("dlogits", dl, dl_want, N * N, 1e-8, 1e-4), 0);

    cosine_logits_backward(NULL, NULL, &dscale, L, a, b, 3.0f, N, N, D);
    for (size_t n = 0; n < N; n++)
        for (size_t m = 0; m < N; m++) {
            double ab = 0.0;
            for (size_t d = 0; d < D; d++)
                ab += (double)a[n * D + d] * b[m * D + d];
            ds_want += (double)L[n * N + m] * ab;
        }
    ck_assert_double_eq_tol(dscale, ds_want, 1e-5 * fabs(ds_want) + 1e-4);
    free(L); free(a); free(b); free(pi); free(pt); free(dl); free(dl_want);
}
END_TEST

Suite *suite_loss(void)
{
    Suite *s = suite_create("loss");
    TCase *tc = tcase_create("loss");

    tcase_add_test(tc, test_l2norm_gradcheck);
    tcase_add_test(tc, test_l2norm_values);
    tcase_add_test(tc, test_cosine_gradcheck);
    tcase_add_test(tc, test_cosine_values_null_accumulate);
    tcase_add_test(tc, test_crossentropy_gradcheck);
    tcase_add_test(tc, test_crossentropy_values);
    tcase_add_loop_test(tc, test_crossentropy_bad_target_aborts, 0, 2);
    tcase_add_test(tc, test_clip_gradcheck);
    tcase_add_test(tc, test_clip_equals_two_ce);
    tcase_add_test(tc, test_clip_separated);
    tcase_add_test(tc, test_head_chain_gradcheck);
    tcase_add_test(tc, test_large_against_double);
    suite_add_tcase(s, tc);
    return s;
}
