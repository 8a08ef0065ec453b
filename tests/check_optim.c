/*
 * check_optim.c: AdamW, SGD, the cosine schedule and gradient clipping.
 *
 * The golden: tests/fixtures/optim_golden.txt (written by
 * tests/ref/make_optim_golden.py with PyTorch 1.13) holds 37 parameters, 10
 * raw gradients, and for AdamW and for SGD the lr LambdaLR gave each step, the
 * norm clip_grad_norm_(max 1.0) returned and the parameters after each step.
 * The replay here clips the same gradients, takes the lr from lr_cosine_at and
 * steps; every step must match:
 *     parameters:  |got - want| <= 1e-7 + 1e-6 |want|   (all 10 steps;
 *                  observed: at most 1 float ulp, 6e-8)
 *     clip norm:   relative 1e-6 (torch sums in float, we sum in double)
 *     lr:          relative 1e-12 (both are double closed forms)
 * An AdamW without bias correction, replayed the same way, must fail it.
 *
 * Closed-form checks: schedule values at 0, inside warmup, at the end of
 * warmup, mid-cosine, last step and past the end; clipping leaves a small
 * gradient bit-identical and brings a large one to max_norm; weight decay with
 * zero gradients decays as (1 - lr wd)^t; NaN / inf gradients give a
 * non-finite norm and are left alone; bad hyper-parameters are refused.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/rng.h"
#include "core/status.h"
#include "core/threads.h"
#include "models/optim.h"
#include "suites.h"
#include "test_util.h"

#define GOLDEN_FILE  "optim_golden.txt"
#define GOLDEN_MAGIC "randlora-optim-golden"
#define GOLDEN_MAX_N 4096
#define GOLDEN_MAX_STEPS 64

#define PARAM_ATOL 1e-7
#define PARAM_RTOL 1e-6
#define NORM_RTOL  1e-6
#define LR_RTOL    1e-12

/* one optimizer's trajectory in the golden file */
struct optim_golden_run {
    double lr[GOLDEN_MAX_STEPS];     /* lr used at step k                 */
    double norm[GOLDEN_MAX_STEPS];   /* clip_grad_norm_ result at step k  */
    float *after;                    /* (steps, n) parameters after step k */
};

struct optim_golden {
    size_t n, steps;
    double adamw_lr, beta1, beta2, eps, adamw_wd;
    double sgd_lr, momentum, sgd_wd;
    double max_norm, min_ratio;
    size_t warmup, total;
    float *params0;                  /* (n)                               */
    float *grads;                    /* (steps, n) raw, before clipping   */
    struct optim_golden_run adamw, sgd;
};

/* next whitespace-separated token, skipping '#' comment lines; 0 at EOF */
static int next_token(FILE *f, char *tok, size_t len)
{
    int c;

    for (;;) {
        do
            c = fgetc(f);
        while (c == ' ' || c == '\t' || c == '\n' || c == '\r');
        if (c == EOF)
            return 0;
        if (c != '#')
            break;
        while (c != '\n' && c != EOF)
            c = fgetc(f);
    }
    size_t i = 0;
    while (c != EOF && c != ' ' && c != '\t' && c != '\n' && c != '\r') {
        if (i + 1 < len)
            tok[i++] = (char)c;
        c = fgetc(f);
    }
    tok[i] = '\0';
    return 1;
}

static int read_double(FILE *f, double *x)
{
    char tok[64], *end;

    if (!next_token(f, tok, sizeof(tok)))
        return 0;
    *x = strtod(tok, &end);
    return *end == '\0' && end != tok;
}

static int read_size(FILE *f, size_t *x, size_t max)
{
    double d;

    if (!read_double(f, &d) || !(d >= 0) || d > (double)max || d != floor(d))
        return 0;
    *x = (size_t)d;
    return 1;
}

static int read_floats(FILE *f, float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        double d;

        if (!read_double(f, &d))
            return 0;
        x[i] = (float)d;   /* 9 significant digits: the exact float */
    }
    return 1;
}

static void optim_golden_free(struct optim_golden *gd)
{
    free(gd->params0);
    free(gd->grads);
    free(gd->adamw.after);
    free(gd->sgd.after);
    memset(gd, 0, sizeof(*gd));
}

/* Loads the fixture; on a malformed file fails the test with the token. */
static void optim_golden_load(struct optim_golden *gd)
{
    const char *path = fixture_path(GOLDEN_FILE);
    FILE *f = fopen(path, "r");
    char tok[64];
    int version = 0, have_n = 0, have_steps = 0, done = 0;
    size_t grads_seen = 0, adamw_seen = 0, sgd_seen = 0;

    memset(gd, 0, sizeof(*gd));
    ck_assert_msg(f != NULL, "cannot open %s (run from the repository root or set "
                  "RANDLORA_FIXTURES)", path);
    ck_assert_msg(next_token(f, tok, sizeof(tok)) && strcmp(tok, GOLDEN_MAGIC) == 0,
                  "%s: not an optim golden file", path);
    {
        double v;
        ck_assert(read_double(f, &v));
        version = (int)v;
    }
    ck_assert_msg(version == 1, "%s: version %d, expected 1", path, version);

    while (!done && next_token(f, tok, sizeof(tok))) {
        int ok = 1;
        double *scalar = NULL;
        size_t k;

        if (strcmp(tok, "n") == 0) {
            ok = read_size(f, &gd->n, GOLDEN_MAX_N) && gd->n > 0;
            have_n = ok;
            if (ok) {
                gd->params0 = test_zeros(gd->n);
            }
        } else if (strcmp(tok, "steps") == 0) {
            ok = have_n && read_size(f, &gd->steps, GOLDEN_MAX_STEPS) && gd->steps > 0;
            have_steps = ok;
            if (ok) {
                gd->grads = test_zeros(gd->steps * gd->n);
                gd->adamw.after = test_zeros(gd->steps * gd->n);
                gd->sgd.after = test_zeros(gd->steps * gd->n);
            }
        } else if (strcmp(tok, "warmup") == 0) {
            ok = read_size(f, &gd->warmup, 1u << 30);
        } else if (strcmp(tok, "total") == 0) {
            ok = read_size(f, &gd->total, 1u << 30);
        } else if (strcmp(tok, "params0") == 0) {
            ok = have_n && read_floats(f, gd->params0, gd->n);
        } else if (strcmp(tok, "grad") == 0) {
            ok = have_steps && read_size(f, &k, gd->steps - 1) && k == grads_seen &&
                 read_floats(f, gd->grads + k * gd->n, gd->n);
            grads_seen++;
        } else if (strcmp(tok, "adamw") == 0 || strcmp(tok, "sgd") == 0) {
            int is_adamw = tok[0] == 'a';
            struct optim_golden_run *run = is_adamw ? &gd->adamw : &gd->sgd;
            size_t *seen = is_adamw ? &adamw_seen : &sgd_seen;

            ok = have_steps && read_size(f, &k, gd->steps - 1) && k == *seen &&
                 read_double(f, &run->lr[k]) && read_double(f, &run->norm[k]) &&
                 read_floats(f, run->after + k * gd->n, gd->n);
            (*seen)++;
        } else if (strcmp(tok, "end") == 0) {
            done = 1;
        } else if (strcmp(tok, "adamw_lr") == 0) {
            scalar = &gd->adamw_lr;
        } else if (strcmp(tok, "beta1") == 0) {
            scalar = &gd->beta1;
        } else if (strcmp(tok, "beta2") == 0) {
            scalar = &gd->beta2;
        } else if (strcmp(tok, "eps") == 0) {
            scalar = &gd->eps;
        } else if (strcmp(tok, "adamw_wd") == 0) {
            scalar = &gd->adamw_wd;
        } else if (strcmp(tok, "sgd_lr") == 0) {
            scalar = &gd->sgd_lr;
        } else if (strcmp(tok, "momentum") == 0) {
            scalar = &gd->momentum;
        } else if (strcmp(tok, "sgd_wd") == 0) {
            scalar = &gd->sgd_wd;
        } else if (strcmp(tok, "max_norm") == 0) {
            scalar = &gd->max_norm;
        } else if (strcmp(tok, "min_ratio") == 0) {
            scalar = &gd->min_ratio;
        } else {
            ok = 0;
        }
        if (scalar)
            ok = read_double(f, scalar);
        if (!ok) {
            fclose(f);
            ck_abort_msg("%s: bad or out-of-order entry at '%s'", path, tok);
        }
    }
    fclose(f);
    ck_assert_msg(done, "%s: no 'end' line (truncated?)", path);
    ck_assert_msg(have_steps && grads_seen == gd->steps && adamw_seen == gd->steps &&
                  sgd_seen == gd->steps, "%s: incomplete", path);
}

/* ------------------------------------------------------------------------ */
/* replay: clip, schedule, step; compare every step                           */

/* one optimizer step with learning rate lr; opt is the optimizer struct */
typedef void (*replay_step_fn)(void *opt, float *p, const float *g, double lr);

static void adamw_step_lr(void *opt, float *p, const float *g, double lr)
{
    struct adamw *o = opt;

    o->cfg.lr = lr;
    adamw_step(o, p, g);
}

static void sgd_step_lr(void *opt, float *p, const float *g, double lr)
{
    struct sgd *o = opt;

    o->cfg.lr = lr;
    sgd_step(o, p, g);
}

/* The deliberately wrong AdamW: everything as adamw_step except the bias
 * corrections (as if 1 - beta^t were 1). The golden must reject it. */
static void adamw_step_no_bias_correction(void *opt, float *p, const float *g, double lr)
{
    struct adamw *o = opt;
    const float decay = (float)(1.0 - lr * o->cfg.weight_decay);
    const float b1 = (float)o->cfg.beta1, omb1 = (float)(1.0 - o->cfg.beta1);
    const float b2 = (float)o->cfg.beta2, omb2 = (float)(1.0 - o->cfg.beta2);
    const float eps = (float)o->cfg.eps, neg_lr = (float)-lr;

    o->t++;
    for (size_t i = 0; i < o->n; i++) {
        o->m[i] = o->m[i] * b1 + omb1 * g[i];
        o->v[i] = o->v[i] * b2 + omb2 * g[i] * g[i];
        p[i] = p[i] * decay + neg_lr * o->m[i] / (sqrtf(o->v[i]) + eps);
    }
}

/* Replays the golden gradients through clip + schedule + step; returns the
 * number of failing comparisons (parameters, norms, lrs) over all steps, or
 * up to the first failing step when stop_at_fail. */
static size_t replay(const struct optim_golden *gd, const struct optim_golden_run *run,
                     double lr_max, void *opt, replay_step_fn step, int stop_at_fail)
{
    const struct lr_cosine sched = {
        .lr_max = lr_max, .lr_min = lr_max * gd->min_ratio,
        .warmup = gd->warmup, .total = gd->total,
    };
    float *p = test_copy(gd->params0, gd->n);
    float *g = test_zeros(gd->n);
    size_t fails = 0;

    for (size_t k = 0; k < gd->steps; k++) {
        char name[48];
        double lr = lr_cosine_at(&sched, k), norm;

        memcpy(g, gd->grads + k * gd->n, gd->n * sizeof(*g));
        norm = clip_grad_norm(g, gd->n, gd->max_norm);
        if (fabs(norm - run->norm[k]) > NORM_RTOL * run->norm[k]) {
            fprintf(stderr, "step %zu: clip norm %.9g, torch %.9g\n", k, norm, run->norm[k]);
            fails++;
        }
        if (fabs(lr - run->lr[k]) > LR_RTOL * run->lr[k]) {
            fprintf(stderr, "step %zu: lr %.17g, torch %.17g\n", k, lr, run->lr[k]);
            fails++;
        }
        step(opt, p, g, lr);
        snprintf(name, sizeof(name), "p after step %zu", k);
        fails += tensor_compare(name, p, run->after + k * gd->n, gd->n, PARAM_ATOL, PARAM_RTOL);
        if (fails && stop_at_fail)
            break;
    }
    free(p);
    free(g);
    return fails;
}

static struct adamw_cfg golden_adamw_cfg(const struct optim_golden *gd)
{
    return (struct adamw_cfg){ .lr = gd->adamw_lr, .beta1 = gd->beta1, .beta2 = gd->beta2,
                               .eps = gd->eps, .weight_decay = gd->adamw_wd };
}

START_TEST(test_adamw_golden)
{
    struct optim_golden gd;
    struct adamw opt;
    struct adamw_cfg cfg;

    optim_golden_load(&gd);
    cfg = golden_adamw_cfg(&gd);
    ck_assert_int_eq(adamw_init(&opt, &cfg, gd.n), RL_OK);
    ck_assert_uint_eq(replay(&gd, &gd.adamw, gd.adamw_lr, &opt, adamw_step_lr, 0), 0);
    ck_assert_uint_eq(opt.t, gd.steps);
    adamw_free(&opt);
    optim_golden_free(&gd);
}
END_TEST

START_TEST(test_sgd_golden)
{
    struct optim_golden gd;
    struct sgd opt;
    struct sgd_cfg cfg;

    optim_golden_load(&gd);
    cfg = (struct sgd_cfg){ .lr = gd.sgd_lr, .momentum = gd.momentum,
                            .weight_decay = gd.sgd_wd };
    ck_assert_int_eq(sgd_init(&opt, &cfg, gd.n), RL_OK);
    ck_assert_ptr_nonnull(opt.buf);
    ck_assert_uint_eq(replay(&gd, &gd.sgd, gd.sgd_lr, &opt, sgd_step_lr, 0), 0);
    sgd_free(&opt);
    optim_golden_free(&gd);
}
END_TEST

/* the check can fail: AdamW without bias correction is caught */
START_TEST(test_adamw_golden_rejects_wrong_variant)
{
    struct optim_golden gd;
    struct adamw opt;
    struct adamw_cfg cfg;
    size_t fails;

    optim_golden_load(&gd);
    cfg = golden_adamw_cfg(&gd);
    ck_assert_int_eq(adamw_init(&opt, &cfg, gd.n), RL_OK);
    fprintf(stderr, "(the mismatches below are expected: AdamW without bias correction)\n");
    fails = replay(&gd, &gd.adamw, gd.adamw_lr, &opt, adamw_step_no_bias_correction, 1);
    ck_assert_uint_gt(fails, 0);
    /* and the first step with lr > 0 is already wrong, every element of it */
    ck_assert_uint_eq(opt.t, 2);
    ck_assert_uint_eq(fails, gd.n);
    adamw_free(&opt);
    optim_golden_free(&gd);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* schedule                                                                   */

static double cosine_closed_form(double lr_max, double lr_min, double q)
{
    return lr_min + (lr_max - lr_min) * 0.5 * (1.0 + cos(M_PI * q));
}

START_TEST(test_schedule_points)
{
    const double lr_max = 1e-3, lr_min = 1e-5;
    const struct lr_cosine s = { .lr_max = lr_max, .lr_min = lr_min, .warmup = 10, .total = 110 };
    const struct lr_cosine s0 = { .lr_max = lr_max, .lr_min = lr_min, .warmup = 0, .total = 100 };
    const struct lr_cosine hf = { .lr_max = 2e-4, .lr_min = 0.0, .warmup = 5, .total = 50 };

    /* warmup: lr_max * step / warmup, 0 at step 0 */
    ck_assert(lr_cosine_at(&s, 0) == 0.0);
    ck_assert_double_eq_tol(lr_cosine_at(&s, 1), 1e-4, 1e-18);
    ck_assert_double_eq_tol(lr_cosine_at(&s, 5), 5e-4, 1e-18);
    /* end of warmup: the peak, exactly */
    ck_assert(lr_cosine_at(&s, 10) == lr_max);
    /* middle of the cosine: halfway between peak and floor */
    ck_assert_double_eq_tol(lr_cosine_at(&s, 60), 0.5 * (lr_max + lr_min), 1e-18);
    ck_assert_double_eq_tol(lr_cosine_at(&s, 35), cosine_closed_form(lr_max, lr_min, 0.25),
                            1e-18);
    /* last step: just above the floor; at and past the end: the floor */
    ck_assert_double_eq_tol(lr_cosine_at(&s, 109), cosine_closed_form(lr_max, lr_min, 0.99),
                            1e-18);
    ck_assert(lr_cosine_at(&s, 109) > lr_min);
    ck_assert(lr_cosine_at(&s, 110) == lr_min);
    ck_assert(lr_cosine_at(&s, 1000000) == lr_min);
    for (size_t k = 10; k < 110; k++)
        ck_assert(lr_cosine_at(&s, k + 1) <= lr_cosine_at(&s, k));

    /* no warmup: the first step uses the peak */
    ck_assert(lr_cosine_at(&s0, 0) == lr_max);
    ck_assert_double_eq_tol(lr_cosine_at(&s0, 50), 0.5 * (lr_max + lr_min), 1e-18);

    /* lr_min = 0 is transformers' get_cosine_schedule_with_warmup */
    for (size_t k = 0; k < 50; k++) {
        double want = k < 5 ? (double)k / 5.0
                            : 0.5 * (1.0 + cos(M_PI * (double)(k - 5) / 45.0));
        ck_assert_double_eq_tol(lr_cosine_at(&hf, k), 2e-4 * want, 1e-18);
    }
}
END_TEST

/* ------------------------------------------------------------------------ */
/* clipping                                                                   */

START_TEST(test_clip_small_untouched)
{
    enum { N = 100 };
    struct rng r;
    float *g, *g0;
    double norm, want = 0.0;

    rng_init(&r, 11);
    g = test_randn(&r, N, 0.01f);          /* norm about 0.1 */
    g0 = test_copy(g, N);
    for (size_t i = 0; i < N; i++)
        want += (double)g[i] * g[i];
    want = sqrt(want);
    ck_assert(want < 0.5);
    /* the same sum in another order (grad_norm's lanes): equal to double
     * round-off */
    ck_assert_double_eq_tol(grad_norm(g, N), want, 1e-15 * want);
    norm = clip_grad_norm(g, N, 1.0);
    ck_assert(norm == grad_norm(g0, N));
    ck_assert_mem_eq(g, g0, N * sizeof(*g));   /* bit-identical */
    free(g);
    free(g0);
}
END_TEST

/* grad_norm on a long vector (several chunks and a ragged tail): within
 * double round-off of a long-double reference, and the same bits with one
 * thread and with two (its order depends on n alone) */
START_TEST(test_grad_norm_long)
{
    const size_t n = ((size_t)1 << 20) * 3 + 12345;
    struct rng r;
    float *g;
    long double want = 0.0L;
    double one, two;

    rng_init(&r, 13);
    g = test_randn(&r, n, 0.5f);
    for (size_t i = 0; i < n; i++)
        want += (long double)g[i] * (long double)g[i];
    want = sqrtl(want);
    struct thread_policy before = threads_current();
    threads_init(1);
    one = grad_norm(g, n);
    threads_init(2);
    two = grad_norm(g, n);
    threads_init(before.n_omp);                   /* the next tests run as before */
    ck_assert_double_eq_tol(one, (double)want, 1e-13 * (double)want);
    ck_assert(memcmp(&one, &two, sizeof(one)) == 0);
    free(g);
}
END_TEST

START_TEST(test_clip_large_to_max_norm)
{
    enum { N = 1000 };
    struct rng r;
    float *g, *g0;
    double norm, after, scale;

    rng_init(&r, 12);
    g = test_randn(&r, N, 3.0f);           /* norm about 95 */
    g0 = test_copy(g, N);
    norm = clip_grad_norm(g, N, 1.0);
    ck_assert(norm > 50.0);
    ck_assert(norm == grad_norm(g0, N));   /* the norm before clipping */
    /* each element scaled by the one float factor max_norm / (norm + 1e-6) */
    scale = 1.0 / (norm + 1e-6);
    for (size_t i = 0; i < N; i++)
        ck_assert(g[i] == g0[i] * (float)scale);
    /* the clipped norm is max_norm (to float rounding; the 1e-6 guard moves
     * it by 1e-6 / norm, about 1e-8, relative) */
    after = grad_norm(g, N);
    ck_assert_double_eq_tol(after, 1.0, 1e-6);
    /* another max_norm */
    memcpy(g, g0, N * sizeof(*g));
    clip_grad_norm(g, N, 0.25);
    ck_assert_double_eq_tol(grad_norm(g, N), 0.25, 0.25e-6);
    free(g);
    free(g0);
}
END_TEST

START_TEST(test_nonfinite_gradient)
{
    float g[5] = { 0.5f, -1.0f, 2.0f, 0.25f, 3.0f }, g0[5];
    double norm;

    g[2] = NAN;
    memcpy(g0, g, sizeof(g));
    ck_assert(isnan(grad_norm(g, 5)));
    norm = clip_grad_norm(g, 5, 1.0);
    ck_assert(!isfinite(norm));
    ck_assert_mem_eq(g, g0, sizeof(g));      /* left for the caller to stop on */

    g[2] = INFINITY;
    memcpy(g0, g, sizeof(g));
    norm = clip_grad_norm(g, 5, 1.0);
    ck_assert(isinf(norm));
    ck_assert_mem_eq(g, g0, sizeof(g));

    g[2] = -INFINITY;
    ck_assert(!isfinite(clip_grad_norm(g, 5, 1.0)));

    /* a huge but finite float does not overflow the double sum */
    g[2] = 3e38f;
    ck_assert(isfinite(grad_norm(g, 5)));
}
END_TEST

/* ------------------------------------------------------------------------ */
/* weight decay, state, arguments                                             */

START_TEST(test_weight_decay_zero_grad)
{
    enum { N = 64, T = 25 };
    struct rng r;
    float *p, *p0, *g = test_zeros(N);
    struct adamw opt;
    struct adamw_cfg cfg = ADAMW_CFG_DEFAULT;
    struct sgd sopt;
    const struct sgd_cfg scfg = { .lr = 0.2, .momentum = 0.0, .weight_decay = 0.3 };
    float *want = test_zeros(N);

    rng_init(&r, 13);
    p0 = test_randn(&r, N, 1.0f);
    p = test_copy(p0, N);

    /* AdamW: m = v = 0, so the update term is 0 / eps = 0: p = p0 (1 - lr wd)^t */
    cfg.lr = 0.1;
    cfg.weight_decay = 0.5;
    ck_assert_int_eq(adamw_init(&opt, &cfg, N), RL_OK);
    for (int t = 0; t < T; t++)
        adamw_step(&opt, p, g);
    for (size_t i = 0; i < N; i++)
        want[i] = (float)(p0[i] * pow(1.0 - 0.1 * 0.5, T));
    ck_assert_uint_eq(tensor_compare("adamw decay", p, want, N, 0.0, 1e-5), 0);
    adamw_free(&opt);

    /* SGD without momentum: d = wd p, p -= lr wd p: the same geometric decay */
    memcpy(p, p0, N * sizeof(*p));
    ck_assert_int_eq(sgd_init(&sopt, &scfg, N), RL_OK);
    ck_assert_ptr_null(sopt.buf);
    for (int t = 0; t < T; t++)
        sgd_step(&sopt, p, g);
    for (size_t i = 0; i < N; i++)
        want[i] = (float)(p0[i] * pow(1.0 - 0.2 * 0.3, T));
    ck_assert_uint_eq(tensor_compare("sgd decay", p, want, N, 0.0, 1e-5), 0);
    sgd_free(&sopt);

    free(p);
    free(p0);
    free(g);
    free(want);
}
END_TEST

/* the OpenMP path (n above the threshold) gives, element for element, what
 * the serial path gives on a prefix */
START_TEST(test_large_block_matches_small)
{
    enum { N = 70000, SMALL = 37 };
    struct rng r;
    float *p_big, *p_small, *g;
    struct adamw big, small;
    struct adamw_cfg cfg = ADAMW_CFG_DEFAULT;
    struct sgd sbig, ssmall;
    const struct sgd_cfg scfg = { .lr = 0.05, .momentum = 0.9, .weight_decay = 1e-3 };

    rng_init(&r, 14);
    p_big = test_randn(&r, N, 1.0f);
    g = test_randn(&r, N, 0.1f);
    p_small = test_copy(p_big, SMALL);
    ck_assert_int_eq(adamw_init(&big, &cfg, N), RL_OK);
    ck_assert_int_eq(adamw_init(&small, &cfg, SMALL), RL_OK);
    for (int t = 0; t < 3; t++) {
        clip_grad_norm(g, N, 1.0);
        adamw_step(&big, p_big, g);
        adamw_step(&small, p_small, g);
    }
    ck_assert_mem_eq(p_big, p_small, SMALL * sizeof(float));
    adamw_free(&big);
    adamw_free(&small);

    memcpy(p_small, p_big, SMALL * sizeof(float));
    ck_assert_int_eq(sgd_init(&sbig, &scfg, N), RL_OK);
    ck_assert_int_eq(sgd_init(&ssmall, &scfg, SMALL), RL_OK);
    for (int t = 0; t < 3; t++) {
        sgd_step(&sbig, p_big, g);
        sgd_step(&ssmall, p_small, g);
    }
    ck_assert_mem_eq(p_big, p_small, SMALL * sizeof(float));
    sgd_free(&sbig);
    sgd_free(&ssmall);
    free(p_big);
    free(p_small);
    free(g);
}
END_TEST

START_TEST(test_bad_config_refused)
{
    struct adamw opt;
    struct sgd sopt;
    struct adamw_cfg cfg = ADAMW_CFG_DEFAULT;
    struct sgd_cfg scfg = { .lr = 0.1, .momentum = 0.9, .weight_decay = 0.0 };

    cfg.beta1 = 1.0;
    ck_assert_int_eq(adamw_init(&opt, &cfg, 8), RL_ERR_ARG);
    ck_assert_ptr_null(opt.m);
    ck_assert_ptr_nonnull(strstr(rl_error_msg(), "beta1"));
    cfg = ADAMW_CFG_DEFAULT;
    cfg.lr = NAN;
    ck_assert_int_eq(adamw_init(&opt, &cfg, 8), RL_ERR_ARG);
    cfg = ADAMW_CFG_DEFAULT;
    cfg.weight_decay = -0.1;
    ck_assert_int_eq(adamw_init(&opt, &cfg, 8), RL_ERR_ARG);
    adamw_free(&opt);                      /* safe on a refused (zeroed) struct */

    scfg.momentum = -0.5;
    ck_assert_int_eq(sgd_init(&sopt, &scfg, 8), RL_ERR_ARG);
    ck_assert_ptr_null(sopt.buf);
    sgd_free(&sopt);
    rl_error_clear();

    /* an empty block is legal and does nothing */
    cfg = ADAMW_CFG_DEFAULT;
    ck_assert_int_eq(adamw_init(&opt, &cfg, 0), RL_OK);
    adamw_step(&opt, NULL, NULL);
    ck_assert(grad_norm(NULL, 0) == 0.0);
    ck_assert(clip_grad_norm(NULL, 0, 1.0) == 0.0);
    adamw_free(&opt);
    adamw_free(&opt);                      /* twice is fine */
}
END_TEST

Suite *suite_optim(void)
{
    Suite *s = suite_create("optim");
    TCase *tc = tcase_create("optim");

    tcase_add_test(tc, test_adamw_golden);
    tcase_add_test(tc, test_sgd_golden);
    tcase_add_test(tc, test_adamw_golden_rejects_wrong_variant);
    tcase_add_test(tc, test_schedule_points);
    tcase_add_test(tc, test_clip_small_untouched);
    tcase_add_test(tc, test_clip_large_to_max_norm);
    tcase_add_test(tc, test_grad_norm_long);
    tcase_add_test(tc, test_nonfinite_gradient);
    tcase_add_test(tc, test_weight_decay_zero_grad);
    tcase_add_test(tc, test_large_block_matches_small);
    tcase_add_test(tc, test_bad_config_refused);
    suite_add_tcase(s, tc);
    return s;
}
