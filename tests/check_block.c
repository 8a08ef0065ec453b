/*
 * check_block.c: the encoder layer (models/block.c) and the contrastive head
 * against PyTorch, against finite differences, frozen vs trainable, and the
 * golden-file reader against corrupt files.
 *
 * Golden values: tests/fixtures/block_golden.bin, written by
 * tests/ref/make_block_golden.py (torch float32; see that file for cases).
 * Tolerances: |got - want| <= 1e-5 + 1e-4 |want| for every forward value and
 * gradient (the float32 torch reference itself is within ~3e-6 of float64).
 * BLOCK_VERBOSE=1 prints the measured max differences.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/rng.h"
#include "core/status.h"
#include "golden.h"
#include "models/block.h"
#include "models/nn.h"
#include "suites.h"
#include "test_util.h"

#define GOLDEN_FILE "block_golden.bin"
#define GOLDEN_HINT "/usr/bin/python3 tests/ref/make_block_golden.py"

#define ATOL 1e-5
#define RTOL 1e-4

/* compare and, with BLOCK_VERBOSE set, report the max difference */
static size_t compare(const char *name, const float *got, const float *want, size_t n)
{
    if (getenv("BLOCK_VERBOSE"))
        fprintf(stderr, "  %-36s max |diff| %.3g\n", name, test_max_abs_diff(got, want, n));
    return tensor_compare(name, got, want, n, ATOL, RTOL);
}

static void open_golden(struct golden *g)
{
    int rc = golden_open(g, fixture_path(GOLDEN_FILE), GOLDEN_HINT);

    ck_assert_msg(rc == RL_OK, "%s", rl_error_msg());
}

static const float *get(const struct golden *g, const char *name, size_t ndim, const size_t *dims)
{
    const float *p = golden_get(g, name, ndim, dims);

    ck_assert_msg(p != NULL, "%s", rl_error_msg());
    return p;
}

/* ------------------------------------------------------------------------ */
/* a block problem: parameters in one flat buffer, input, upstream gradient  */

struct bcase {
    struct block_config cfg;
    size_t B, T;
    size_t sizes[BLOCK_NUM_PARAMS], off[BLOCK_NUM_PARAMS], nparams;
    float *pbuf;               /* nparams, struct order                  */
    struct block_params p;
    float *x, *R;              /* (B,T,C)                                */
    float *abuf, *gabuf;       /* activations, backward workspace        */
    struct block_acts acts;
    struct block_grad_acts gacts;
    float *y;                  /* (B,T,C) forward output                 */
};

/* the shape of parameter i as PyTorch has it */
static size_t param_shape(size_t i, size_t C, size_t F, size_t dims[2])
{
    switch (i) {
    case 2: case 3: case 4: case 8:                   /* q/k/v/out_proj.weight */
        dims[0] = C; dims[1] = C; return 2;
    case 12: dims[0] = F; dims[1] = C; return 2;     /* mlp.fc1.weight */
    case 13: dims[0] = F; return 1;                  /* mlp.fc1.bias   */
    case 14: dims[0] = C; dims[1] = F; return 2;     /* mlp.fc2.weight */
    default: dims[0] = C; return 1;
    }
}

static void bcase_init(struct bcase *bc, size_t B, size_t T, size_t C, size_t NH, size_t F,
                       bool causal, enum block_act act)
{
    const size_t n = B * T * C;

    memset(bc, 0, sizeof(*bc));
    bc->cfg = (struct block_config){ .C = C, .NH = NH, .F = F, .act = act,
                                     .causal = causal, .eps = 1e-5f };
    bc->B = B;
    bc->T = T;
    bc->nparams = block_param_sizes(bc->sizes, C, F);
    for (size_t i = 1; i < BLOCK_NUM_PARAMS; i++)
        bc->off[i] = bc->off[i - 1] + bc->sizes[i - 1];
    ck_assert_uint_eq(bc->off[BLOCK_NUM_PARAMS - 1] + bc->sizes[BLOCK_NUM_PARAMS - 1],
                      bc->nparams);
    bc->pbuf = test_zeros(bc->nparams);
    block_params_point(&bc->p, bc->pbuf, C, F);
    bc->x = test_zeros(n);
    bc->R = test_zeros(n);
    bc->y = test_zeros(n);
    bc->abuf = test_zeros(block_acts_size(B, T, C, NH, F) + block_acts_scratch_size(B, T, C, F));
    bc->gabuf = test_zeros(block_grad_acts_size(B, T, C, NH, F));
    block_acts_point(&bc->acts, bc->abuf, bc->abuf + block_acts_size(B, T, C, NH, F), B, T, C,
                     NH, F);
    block_grad_acts_point(&bc->gacts, bc->gabuf, B, T, C, NH, F);
}

static void bcase_free(struct bcase *bc)
{
    free(bc->pbuf);
    free(bc->x);
    free(bc->R);
    free(bc->y);
    free(bc->abuf);
    free(bc->gabuf);
}

static void bcase_forward(struct bcase *bc)
{
    block_forward(bc->y, &bc->acts, bc->x, &bc->p, &bc->cfg, bc->B, bc->T);
}

/* loss = sum(y * R) in double */
static double bcase_loss(void *ctx)
{
    struct bcase *bc = ctx;

    bcase_forward(bc);
    return dot_double(bc->y, bc->R, bc->B * bc->T * bc->cfg.C);
}

/* forward, then backward of sum(y * R): dx and g accumulate */
static void bcase_backward(struct bcase *bc, float *dx, struct block_grads *g)
{
    bcase_forward(bc);
    block_backward(dx, g, &bc->gacts, bc->R, &bc->acts, bc->x, &bc->p, &bc->cfg, bc->B, bc->T);
}

/* ------------------------------------------------------------------------ */
/* (1) golden comparison                                                     */

static void load_golden_case(struct bcase *bc, const struct golden *g, const char *tag,
                             bool causal, enum block_act act)
{
    const size_t B = 2, T = 5, C = 16, NH = 2, F = 64;
    const size_t xdims[3] = { B, T, C }, cdims[1] = { 7 };
    const float want_cfg[7] = { B, T, C, NH, F, causal ? 1.0f : 0.0f, (float)act };
    char name[128];
    const float *cfg;

    snprintf(name, sizeof(name), "%s.config", tag);
    cfg = get(g, name, 1, cdims);
    for (int i = 0; i < 7; i++)
        ck_assert_msg(cfg[i] == want_cfg[i], "%s[%d] = %g, the test expects %g",
                      name, i, (double)cfg[i], (double)want_cfg[i]);

    bcase_init(bc, B, T, C, NH, F, causal, act);
    for (size_t i = 0; i < BLOCK_NUM_PARAMS; i++) {
        size_t dims[2], nd = param_shape(i, C, F, dims);

        snprintf(name, sizeof(name), "%s.%s", tag, block_param_names[i]);
        memcpy(bc->pbuf + bc->off[i], get(g, name, nd, dims), bc->sizes[i] * sizeof(float));
    }
    snprintf(name, sizeof(name), "%s.x", tag);
    memcpy(bc->x, get(g, name, 3, xdims), B * T * C * sizeof(float));
    snprintf(name, sizeof(name), "%s.R", tag);
    memcpy(bc->R, get(g, name, 3, xdims), B * T * C * sizeof(float));
}

static void check_golden_block(const char *tag, bool causal, enum block_act act)
{
    struct golden g;
    struct bcase bc;
    struct block_grads grads;
    const size_t xdims[3] = { 2, 5, 16 };
    size_t n, fails = 0;
    char name[128];
    float *gbuf, *dx;
    double loss;

    open_golden(&g);
    load_golden_case(&bc, &g, tag, causal, act);
    n = bc.B * bc.T * bc.cfg.C;
    gbuf = test_zeros(bc.nparams);
    dx = test_zeros(n);
    block_grads_point(&grads, gbuf, bc.cfg.C, bc.cfg.F);

    if (getenv("BLOCK_VERBOSE"))
        fprintf(stderr, "%s:\n", tag);
    bcase_backward(&bc, dx, &grads);      /* runs the forward first */
    loss = dot_double(bc.y, bc.R, n);

    snprintf(name, sizeof(name), "%s.y", tag);
    fails += compare(name, bc.y, get(&g, name, 3, xdims), n);
    snprintf(name, sizeof(name), "%s.loss", tag);
    {
        float l = (float)loss;
        fails += compare(name, &l, get(&g, name, 0, NULL), 1);
    }
    for (size_t i = 0; i < BLOCK_NUM_PARAMS; i++) {
        size_t dims[2], nd = param_shape(i, bc.cfg.C, bc.cfg.F, dims);

        snprintf(name, sizeof(name), "%s.grad.%s", tag, block_param_names[i]);
        fails += compare(name, gbuf + bc.off[i], get(&g, name, nd, dims), bc.sizes[i]);
    }
    snprintf(name, sizeof(name), "%s.grad.x", tag);
    fails += compare(name, dx, get(&g, name, 3, xdims), n);
    ck_assert_uint_eq(fails, 0);

    free(gbuf);
    free(dx);
    bcase_free(&bc);
    golden_close(&g);
}

START_TEST(test_golden_block_quick_gelu)
{
    check_golden_block("case1", false, BLOCK_ACT_QUICK_GELU);
}
END_TEST

START_TEST(test_golden_block_causal_gelu)
{
    check_golden_block("case2", true, BLOCK_ACT_GELU);
}
END_TEST

/* the contrastive head: L2-normalise, logits = exp(logit_scale) img txt^T,
 * loss = (CE(logits) + CE(logits^T)) / 2, all backwards composed by hand */
START_TEST(test_golden_clip_head)
{
    enum { N = 4, D = 8 };
    const size_t edims[2] = { N, D }, ldims[2] = { N, N };
    struct golden g;
    float img_n[N * D], txt_n[N * D], norm_i[N], norm_t[N];
    float logits[N * N], probs_img[N * N], probs_txt[N * N], dlogits[N * N];
    float dimg_n[N * D] = { 0 }, dtxt_n[N * D] = { 0 }, dimg[N * D] = { 0 }, dtxt[N * D] = { 0 };
    float dscale = 0.0f, scale, loss, dlogit_scale;
    const float *img, *txt, *logit_scale;
    size_t fails = 0;

    open_golden(&g);
    img = get(&g, "clip.image_embeds", 2, edims);
    txt = get(&g, "clip.text_embeds", 2, edims);
    logit_scale = get(&g, "clip.logit_scale", 0, NULL);
    ck_assert_float_eq_tol(*logit_scale, logf(1.0f / 0.07f), 1e-6f);

    /* forward */
    scale = expf(*logit_scale);
    l2norm_forward(img_n, norm_i, img, N, D);
    l2norm_forward(txt_n, norm_t, txt, N, D);
    cosine_logits_forward(logits, img_n, txt_n, scale, N, N, D);
    loss = clip_loss_forward(probs_img, probs_txt, logits, N);

    /* backward, the forward reversed */
    memset(dlogits, 0, sizeof(dlogits));
    clip_loss_backward(dlogits, probs_img, probs_txt, 1.0f, N);
    cosine_logits_backward(dimg_n, dtxt_n, &dscale, dlogits, img_n, txt_n, scale, N, N, D);
    l2norm_backward(dimg, dimg_n, img_n, norm_i, N, D);
    l2norm_backward(dtxt, dtxt_n, txt_n, norm_t, N, D);
    dlogit_scale = dscale * scale;        /* d exp(s) / ds = exp(s) */

    if (getenv("BLOCK_VERBOSE"))
        fprintf(stderr, "clip:\n");
    fails += compare("clip.logits", logits, get(&g, "clip.logits", 2, ldims), N * N);
    fails += compare("clip.loss", &loss, get(&g, "clip.loss", 0, NULL), 1);
    fails += compare("clip.grad.image_embeds", dimg, get(&g, "clip.grad.image_embeds", 2, edims),
                     N * D);
    fails += compare("clip.grad.text_embeds", dtxt, get(&g, "clip.grad.text_embeds", 2, edims),
                     N * D);
    fails += compare("clip.grad.logit_scale", &dlogit_scale,
                     get(&g, "clip.grad.logit_scale", 0, NULL), 1);
    ck_assert_uint_eq(fails, 0);
    golden_close(&g);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* (2) central finite differences through the whole block                    */

static void random_case(struct bcase *bc, uint64_t seed, bool causal, enum block_act act)
{
    const size_t B = 2, T = 3, C = 8, NH = 2, F = 16;
    struct rng r;

    bcase_init(bc, B, T, C, NH, F, causal, act);
    rng_init(&r, seed);
    for (size_t i = 0; i < BLOCK_NUM_PARAMS; i++) {
        float *p = bc->pbuf + bc->off[i];
        bool ln_w = i == 0 || i == 10, weight = i % 2 == 0 && !ln_w;
        /* weights ~ 1/sqrt(fan_in); layer norm weights near 1; small biases */
        float std = weight ? 1.0f / sqrtf((float)(i == 14 ? F : C)) : 0.1f;

        rng_fill_normal(&r, p, bc->sizes[i], ln_w ? 1.0f : 0.0f, std);
    }
    rng_fill_normal(&r, bc->x, B * T * C, 0.0f, 1.0f);
    rng_fill_normal(&r, bc->R, B * T * C, 0.0f, 1.0f);
}

static void check_gradcheck(bool causal, enum block_act act)
{
    struct bcase bc;
    struct block_grads grads;
    float *gbuf, *dx;
    size_t n, fails = 0;
    /* a few parameter tensors, one from every kernel kind */
    const size_t probe[] = { 0, 1, 2, 5, 7, 8, 11, 12, 15 };

    random_case(&bc, causal ? 11 : 7, causal, act);
    n = bc.B * bc.T * bc.cfg.C;
    gbuf = test_zeros(bc.nparams);
    dx = test_zeros(n);
    block_grads_point(&grads, gbuf, bc.cfg.C, bc.cfg.F);
    bcase_backward(&bc, dx, &grads);

    /* eps 1e-2 balances float rounding (~1e-6 / eps) against curvature */
    fails += gradcheck("x", bc.x, dx, n, bcase_loss, &bc, 1e-2f, 1e-3, 1e-2, 48);
    for (size_t k = 0; k < sizeof(probe) / sizeof(probe[0]); k++) {
        size_t i = probe[k];

        fails += gradcheck(block_param_names[i], bc.pbuf + bc.off[i], gbuf + bc.off[i],
                           bc.sizes[i], bcase_loss, &bc, 1e-2f, 1e-3, 1e-2, 24);
    }
    ck_assert_uint_eq(fails, 0);
    free(gbuf);
    free(dx);
    bcase_free(&bc);
}

START_TEST(test_gradcheck_block)
{
    check_gradcheck(false, BLOCK_ACT_QUICK_GELU);
}
END_TEST

START_TEST(test_gradcheck_block_causal)
{
    check_gradcheck(true, BLOCK_ACT_GELU);
}
END_TEST

/* the causal mask: perturbing the last token leaves earlier outputs alone */
START_TEST(test_causal_mask_blocks_future)
{
    struct bcase bc;
    float *y0;
    size_t C, T;

    random_case(&bc, 3, true, BLOCK_ACT_GELU);
    C = bc.cfg.C;
    T = bc.T;
    bcase_forward(&bc);
    y0 = test_copy(bc.y, bc.B * T * C);
    for (size_t c = 0; c < C; c++)
        bc.x[(T - 1) * C + c] += 0.5f;    /* batch 0, last token */
    bcase_forward(&bc);
    ck_assert_uint_eq(tensor_compare("y[:T-1]", bc.y, y0, (T - 1) * C, 0.0, 0.0), 0);
    ck_assert(fabsf(bc.y[(T - 1) * C] - y0[(T - 1) * C]) > 1e-4f);
    free(y0);
    bcase_free(&bc);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* (3) frozen weights: same dx, no weight work, accumulation                 */

START_TEST(test_frozen_same_dx)
{
    struct bcase bc;
    struct block_grads full, frozen = { 0 }, partial = { 0 }, noinp;
    float *gbuf, *gbuf2, *gbuf3, *dx_full, *dx_frozen;
    size_t n;

    random_case(&bc, 5, false, BLOCK_ACT_QUICK_GELU);
    n = bc.B * bc.T * bc.cfg.C;
    gbuf = test_zeros(bc.nparams);
    gbuf2 = test_zeros(bc.nparams);
    gbuf3 = test_zeros(bc.nparams);
    dx_full = test_zeros(n);
    dx_frozen = test_zeros(n);
    block_grads_point(&full, gbuf, bc.cfg.C, bc.cfg.F);
    bcase_backward(&bc, dx_full, &full);

    /* all weights frozen: dx is unchanged */
    bcase_backward(&bc, dx_frozen, &frozen);
    ck_assert_uint_eq(tensor_compare("dx frozen", dx_frozen, dx_full, n, 1e-6, 0.0), 0);

    /* dx accumulates: a second backward doubles it */
    bcase_backward(&bc, dx_frozen, &frozen);
    for (size_t i = 0; i < n; i++)
        dx_full[i] *= 2.0f;
    ck_assert_uint_eq(tensor_compare("dx twice", dx_frozen, dx_full, n, 1e-6, 1e-6), 0);

    /* partly frozen (LoRA-like: q, v and fc1 weights train), no dx wanted:
     * the trained gradients equal the full run's, the rest stay untouched */
    block_grads_point(&noinp, gbuf2, bc.cfg.C, bc.cfg.F);
    partial.q_w = noinp.q_w;
    partial.v_w = noinp.v_w;
    partial.fc1_w = noinp.fc1_w;
    bcase_backward(&bc, NULL, &partial);
    ck_assert_uint_eq(tensor_compare("dq_w", partial.q_w, full.q_w, bc.sizes[2], 1e-6, 1e-6), 0);
    ck_assert_uint_eq(tensor_compare("dv_w", partial.v_w, full.v_w, bc.sizes[4], 1e-6, 1e-6), 0);
    ck_assert_uint_eq(tensor_compare("dfc1_w", partial.fc1_w, full.fc1_w, bc.sizes[12], 1e-6, 1e-6),
                      0);
    for (size_t i = 0; i < bc.nparams; i++)
        if (i < bc.off[2] || (i >= bc.off[3] && i < bc.off[4]) ||   /* q_w, v_w, fc1_w */
            (i >= bc.off[5] && i < bc.off[12]) || i >= bc.off[13])
            ck_assert(gbuf2[i] == 0.0f);

    /* every parameter trained but no dx wanted: the same parameter grads */
    block_grads_point(&noinp, gbuf3, bc.cfg.C, bc.cfg.F);
    bcase_backward(&bc, NULL, &noinp);
    ck_assert_uint_eq(tensor_compare("dparams (dinp NULL)", gbuf3, gbuf, bc.nparams, 1e-6, 1e-6), 0);

    free(gbuf);
    free(gbuf2);
    free(gbuf3);
    free(dx_full);
    free(dx_frozen);
    bcase_free(&bc);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* (4) the golden reader against hostile files                               */

static unsigned char *slurp(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    unsigned char *b;
    long end;

    ck_assert_msg(f != NULL, "cannot open %s", path);
    ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
    end = ftell(f);
    ck_assert(end > 0);
    rewind(f);
    b = xmalloc((size_t)end);
    ck_assert_uint_eq(fread(b, 1, (size_t)end, f), (size_t)end);
    fclose(f);
    *size = (size_t)end;
    return b;
}

static void spit(const char *path, const unsigned char *b, size_t n)
{
    FILE *f = fopen(path, "wb");

    ck_assert_msg(f != NULL, "cannot write %s", path);
    ck_assert_uint_eq(fwrite(b, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

static void put_u32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

/* write b[0..n) to path, expect golden_open to fail with want and a message
 * naming the file and containing what */
static void expect_reject(const char *path, const unsigned char *b, size_t n, int want,
                          const char *what)
{
    struct golden g;
    int rc;

    spit(path, b, n);
    rl_error_clear();
    rc = golden_open(&g, path, GOLDEN_HINT);
    ck_assert_msg(rc == want, "%s (%zu bytes): rc %d, want %d; %s", what, n, rc, want,
                  rl_error_msg());
    ck_assert_msg(strstr(rl_error_msg(), path) != NULL, "message does not name the file: %s",
                  rl_error_msg());
    ck_assert(g.count == 0 && g.t == NULL && g.data == NULL);
    golden_close(&g);
    unlink(path);
}

START_TEST(test_golden_rejects_corrupt)
{
    char dir[] = "/tmp/randlora_golden_XXXXXX", path[256];
    unsigned char *orig, *b;
    size_t size, name_len, first_dims;
    struct golden g;

    ck_assert(mkdtemp(dir) != NULL);
    snprintf(path, sizeof(path), "%s/bad.bin", dir);
    orig = slurp(fixture_path(GOLDEN_FILE), &size);
    b = xmalloc(size + 8);

    /* the good copy reads */
    spit(path, orig, size);
    ck_assert_msg(golden_open(&g, path, GOLDEN_HINT) == RL_OK, "%s", rl_error_msg());
    ck_assert_uint_eq(g.count, 84);
    golden_close(&g);

    /* truncated at many places: inside the header, a name, the dims, data */
    {
        const size_t cuts[] = { 0, 2, 4, 7, 8, 11, 12, 14, 16, 20, 30, 40, 100,
                                size / 2, size - 5, size - 1 };

        for (size_t k = 0; k < sizeof(cuts) / sizeof(cuts[0]); k++)
            expect_reject(path, orig, cuts[k], RL_ERR_FORMAT, "truncated");
    }

    /* wrong magic */
    memcpy(b, orig, size);
    b[0] = 'X';
    expect_reject(path, b, size, RL_ERR_FORMAT, "wrong magic");
    ck_assert_msg(strstr(rl_error_msg(), "magic") != NULL, "%s", rl_error_msg());

    /* wrong version: the message tells how to regenerate */
    memcpy(b, orig, size);
    put_u32(b + 4, GOLDEN_VERSION + 1);
    expect_reject(path, b, size, RL_ERR_FORMAT, "wrong version");
    ck_assert_msg(strstr(rl_error_msg(), "HINT: regenerate with " GOLDEN_HINT) != NULL, "%s",
                  rl_error_msg());

    /* tensor count far beyond the file, and one too many */
    memcpy(b, orig, size);
    put_u32(b + 8, 0xffffffffu);
    expect_reject(path, b, size, RL_ERR_FORMAT, "huge count");
    ck_assert_msg(strstr(rl_error_msg(), "cannot fit") != NULL, "%s", rl_error_msg());
    put_u32(b + 8, 85);
    expect_reject(path, b, size, RL_ERR_FORMAT, "count + 1");
    put_u32(b + 8, 83);                       /* one too few: trailing bytes */
    expect_reject(path, b, size, RL_ERR_FORMAT, "count - 1");

    /* first tensor: name length, then ndim, then the first dim */
    name_len = (size_t)orig[12] | (size_t)orig[13] << 8;
    first_dims = 12 + 4 + name_len + 4;
    memcpy(b, orig, size);
    put_u32(b + 12, 0x7fffffffu);
    expect_reject(path, b, size, RL_ERR_FORMAT, "huge name length");
    put_u32(b + 12, 0);
    expect_reject(path, b, size, RL_ERR_FORMAT, "empty name");

    memcpy(b, orig, size);
    put_u32(b + first_dims - 4, 0xffffffffu);
    expect_reject(path, b, size, RL_ERR_FORMAT, "huge ndim");

    memcpy(b, orig, size);
    put_u32(b + first_dims, 0xffffffffu);
    expect_reject(path, b, size, RL_ERR_FORMAT, "huge dim");
    ck_assert_msg(strstr(rl_error_msg(), "bytes left") != NULL, "%s", rl_error_msg());
    put_u32(b + first_dims, 8);               /* 7 -> 8: data runs one float long */
    expect_reject(path, b, size, RL_ERR_FORMAT, "dim + 1");

    /* dims whose product overflows size_t: ndim 8, every dim 2^32 - 1 */
    memcpy(b, orig, first_dims - 4);
    put_u32(b + 8, 1);
    put_u32(b + first_dims - 4, 8);
    for (size_t i = 0; i < 8; i++)
        put_u32(b + first_dims + 4 * i, 0xffffffffu);
    expect_reject(path, b, first_dims + 32 + 64, RL_ERR_FORMAT, "dims overflow");
    ck_assert_msg(strstr(rl_error_msg(), "overflows") != NULL, "%s", rl_error_msg());

    /* trailing garbage */
    memcpy(b, orig, size);
    memset(b + size, 0, 8);
    expect_reject(path, b, size + 8, RL_ERR_FORMAT, "trailing bytes");

    /* a missing file is an I/O error */
    rl_error_clear();
    ck_assert_int_eq(golden_open(&g, path, NULL), RL_ERR_IO);
    ck_assert(strstr(rl_error_msg(), path) != NULL);

    free(b);
    free(orig);
    ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

/* lookups: by name, with the expected shape */
START_TEST(test_golden_lookup)
{
    struct golden g;
    const size_t good[3] = { 2, 5, 16 }, bad[3] = { 2, 5, 8 };

    open_golden(&g);
    ck_assert_ptr_nonnull(golden_get(&g, "case1.x", 3, good));
    ck_assert_ptr_null(golden_get(&g, "case1.x", 3, bad));
    ck_assert_msg(strstr(rl_error_msg(), "(2,5,16)") && strstr(rl_error_msg(), "(2,5,8)"),
                  "%s", rl_error_msg());
    ck_assert_ptr_null(golden_get(&g, "case1.x", 2, good));
    ck_assert_ptr_null(golden_get(&g, "case9.x", 3, good));
    ck_assert_msg(strstr(rl_error_msg(), "no tensor named 'case9.x'"), "%s", rl_error_msg());
    ck_assert_ptr_nonnull(golden_get(&g, "clip.loss", 0, NULL));
    golden_close(&g);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* (5) the golden check can fail                                             */

START_TEST(test_golden_check_can_fail)
{
    struct golden g;
    struct bcase bc;
    struct block_grads grads;
    const size_t dims[2] = { 64, 16 };
    float *gbuf, *dx, *want_copy;
    const float *want;
    size_t n, nfc1 = 64 * 16, idx = 123;

    open_golden(&g);
    load_golden_case(&bc, &g, "case1", false, BLOCK_ACT_QUICK_GELU);
    n = bc.B * bc.T * bc.cfg.C;
    gbuf = test_zeros(bc.nparams);
    dx = test_zeros(n);
    block_grads_point(&grads, gbuf, bc.cfg.C, bc.cfg.F);
    bcase_backward(&bc, dx, &grads);
    want = get(&g, "case1.grad.mlp.fc1.weight", 2, dims);

    ck_assert_uint_eq(tensor_compare("dfc1_w", grads.fc1_w, want, nfc1, ATOL, RTOL), 0);
    /* one element off by 1e-3 (well above 1e-5 + 1e-4 |want|) */
    want_copy = test_copy(want, nfc1);
    want_copy[idx] += 1e-3f + 2e-4f * fabsf(want_copy[idx]);
    ck_assert_uint_eq(tensor_compare("dfc1_w (perturbed)", grads.fc1_w, want_copy, nfc1,
                                     ATOL, RTOL), 1);
    /* and on the computed side: a wrong gradient element is caught */
    grads.fc1_w[idx] *= 1.01f;
    grads.fc1_w[idx] += 1e-4f;
    ck_assert_uint_eq(tensor_compare("dfc1_w (wrong)", grads.fc1_w, want, nfc1, ATOL, RTOL), 1);

    free(want_copy);
    free(gbuf);
    free(dx);
    bcase_free(&bc);
    golden_close(&g);
}
END_TEST

Suite *suite_block(void)
{
    Suite *s = suite_create("block");
    TCase *tc = tcase_create("block");

    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_golden_block_quick_gelu);
    tcase_add_test(tc, test_golden_block_causal_gelu);
    tcase_add_test(tc, test_golden_clip_head);
    tcase_add_test(tc, test_gradcheck_block);
    tcase_add_test(tc, test_gradcheck_block_causal);
    tcase_add_test(tc, test_causal_mask_blocks_future);
    tcase_add_test(tc, test_frozen_same_dx);
    tcase_add_test(tc, test_golden_rejects_corrupt);
    tcase_add_test(tc, test_golden_lookup);
    tcase_add_test(tc, test_golden_check_can_fail);
    suite_add_tcase(s, tc);
    return s;
}
