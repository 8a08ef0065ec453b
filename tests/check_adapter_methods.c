/*
 * check_adapter_methods.c: the methods' own behaviour: the shared bases
 * (statistics, seed reproducibility), VeRA's shared tensors and LoRA's
 * init, the factored/merged path choice, dropout, and a golden file from
 * tests/ref/make_adapter_golden.py (PyTorch, peft's formulas) covering every
 * method, both profiles and both orientations.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/rng.h"
#include "core/status.h"
#include "cli/commands.h"
#include "methods/adapter.h"
#include "adapter_harness.h"
#include "golden.h"
#include "suites.h"
#include "test_util.h"

#define GOLDEN_FILE "adapter_golden.bin"
#define GOLDEN_HINT "/usr/bin/python3 tests/ref/make_adapter_golden.py"
/* ------------------------------------------------------------------------ */
/* shared bases                                                              */

static void tensor_stats(const struct adapter_tensor *t, double *mean, double *sd,
                         double *zero_frac, double *nz_spread)
{
    double s = 0.0, ss = 0.0, lo = INFINITY, hi = 0.0;
    size_t z = 0;

    for (size_t i = 0; i < t->n; i++) {
        s += t->data[i];
        if (t->data[i] == 0.0f) {
            z++;
        } else {
            lo = fmin(lo, fabs(t->data[i]));
            hi = fmax(hi, fabs(t->data[i]));
        }
    }
    *mean = s / (double)t->n;
    for (size_t i = 0; i < t->n; i++)
        ss += (t->data[i] - *mean) * (t->data[i] - *mean);
    *sd = sqrt(ss / (double)(t->n - 1));
    *zero_frac = (double)z / (double)t->n;
    *nz_spread = hi - lo;
}

START_TEST(test_randlora_bases)
{
    static const enum adapter_basis kinds[] = {
        ADAPTER_BASIS_DENSE, ADAPTER_BASIS_SPARSE, ADAPTER_BASIS_VERY_SPARSE
    };
    const size_t max_out = 64, max_in = 49, r = 4;

    for (size_t k = 0; k < 3; k++) {
        struct adapter_cfg cfg;
        struct adapter_method m, m2, m3;
        struct adapter_tensor t[2], t2[2], t3[2];
        double want_zero = kinds[k] == ADAPTER_BASIS_DENSE ? 0.0
                         : kinds[k] == ADAPTER_BASIS_SPARSE ? 2.0 / 3.0 : 1.0 - 1.0 / 7.0;

        adapter_cfg_defaults(&cfg, "randlora", r);
        cfg.basis = kinds[k];
        cfg.seed = 11;
        ck_assert_int_eq(adapter_method_init(&m, &cfg, max_out, max_in, 2), RL_OK);
        ck_assert_uint_eq(adapter_method_tensors(&m, t, 2), 2);
        /* peft's shapes: randlora_A (r, 1, min_dim), randlora_B (max_dim, ceil(min/r), r) */
        ck_assert_str_eq(t[0].name, "randlora_A");
        ck_assert_uint_eq(t[0].shape[0], r);
        ck_assert_uint_eq(t[0].shape[1], 1);
        ck_assert_uint_eq(t[0].shape[2], 49);
        ck_assert_str_eq(t[1].name, "randlora_B");
        ck_assert_uint_eq(t[1].shape[0], 64);
        ck_assert_uint_eq(t[1].shape[1], 13);
        ck_assert_uint_eq(t[1].shape[2], r);
        ck_assert_uint_eq(t[0].n + t[1].n, adapter_count_shared(&randlora_ops, &cfg,
                          (struct adapter_shape[]){ { max_out, max_in } }, 1));
        for (int i = 0; i < 2; i++) {
            double mean, sd, zf, spread;

            tensor_stats(&t[i], &mean, &sd, &zf, &spread);
            ck_assert_double_eq_tol(sd, 1.0, 1e-5);     /* divided by its own std */
            ck_assert_double_lt(fabs(mean), 0.2);
            if (i == 1)                                 /* B is large enough for the stats */
                ck_assert_double_eq_tol(zf, want_zero, 0.03);
            if (kinds[k] != ADAPTER_BASIS_DENSE)
                ck_assert_double_lt(spread, 1e-6);      /* ternary: one magnitude */
        }
        /* the seed regenerates the bases exactly; another seed does not */
        ck_assert_int_eq(adapter_method_init(&m2, &cfg, max_out, max_in, 2), RL_OK);
        adapter_method_tensors(&m2, t2, 2);
        cfg.seed = 12;
        ck_assert_int_eq(adapter_method_init(&m3, &cfg, max_out, max_in, 2), RL_OK);
        adapter_method_tensors(&m3, t3, 2);
        for (int i = 0; i < 2; i++) {
            ck_assert_int_eq(memcmp(t[i].data, t2[i].data, t[i].n * sizeof(float)), 0);
            ck_assert_int_ne(memcmp(t[i].data, t3[i].data, t[i].n * sizeof(float)), 0);
        }
        adapter_method_free(&m);
        adapter_method_free(&m2);
        adapter_method_free(&m3);
    }
}
END_TEST

START_TEST(test_vera_shared_and_lora_init)
{
    struct adapter_cfg cfg;
    struct adapter_method m, m2;
    struct adapter a, a2;
    struct adapter_tensor t[2];
    double bound_a = sqrt(6.0 / 40.0), bound_b = sqrt(6.0 / 8.0), ma, mb;

    /* VeRA: vera_A (r, max_in) ~ U(+-sqrt(6/max_in)), vera_B (max_out, r) ~ U(+-sqrt(6/r)) */
    adapter_cfg_defaults(&cfg, "vera", 8);
    ck_assert_int_eq(adapter_method_init(&m, &cfg, 30, 40, 2), RL_OK);
    ck_assert_uint_eq(adapter_method_tensors(&m, t, 2), 2);
    ck_assert_str_eq(t[0].name, "vera_A");
    ck_assert_uint_eq(t[0].shape[0], 8);
    ck_assert_uint_eq(t[0].shape[1], 40);
    ck_assert_str_eq(t[1].name, "vera_B");
    ck_assert_uint_eq(t[1].shape[0], 30);
    ck_assert_uint_eq(t[1].shape[1], 8);
    ma = test_max_abs(t[0].data, t[0].n);
    mb = test_max_abs(t[1].data, t[1].n);
    ck_assert_double_le(ma, bound_a);
    ck_assert_double_gt(ma, 0.9 * bound_a);
    ck_assert_double_le(mb, bound_b);
    ck_assert_double_gt(mb, 0.9 * bound_b);
    adapter_method_free(&m);

    /* LoRA: A ~ U(+-1/sqrt(d_in)), B = 0; the same seed gives the same A */
    adapter_cfg_defaults(&cfg, "lora", 4);
    cfg.seed = 77;
    ck_assert_int_eq(adapter_method_init(&m, &cfg, 30, 40, 2), RL_OK);
    ck_assert_int_eq(adapter_method_init(&m2, &cfg, 30, 40, 2), RL_OK);
    ck_assert_int_eq(adapter_init(&a, &m, 30, 25, NULL, NULL), RL_OK);
    ck_assert_int_eq(adapter_init(&a2, &m2, 30, 25, NULL, NULL), RL_OK);
    ck_assert_int_eq(memcmp(a.params, a2.params, a.n_params * sizeof(float)), 0);
    adapter_tensors(&a, false, t, 2);
    ck_assert_double_le(test_max_abs(t[0].data, t[0].n), 1.0 / sqrt(25.0));
    ck_assert_double_gt(test_max_abs(t[0].data, t[0].n), 0.9 / sqrt(25.0));
    ck_assert_double_eq(test_max_abs(t[1].data, t[1].n), 0.0);
    adapter_free(&a);
    adapter_free(&a2);
    adapter_method_free(&m);
    adapter_method_free(&m2);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* path choice, dropout                                                      */

START_TEST(test_path_choice)
{
    struct adapter_cfg cfg;
    struct adapter_method m;
    struct adapter a;
    double f, mg;

    /* RandLoRA 256x256, r 8 (n 32): factored ~ 2N nr (2D + 3d) = 655360 N,
     * merged ~ 2 D d (N + 2 nr) = 131072 (N + 512): merged from N ~ 128 */
    adapter_cfg_defaults(&cfg, "randlora", 8);
    ck_assert_int_eq(adapter_method_init(&m, &cfg, 256, 256, 1024), RL_OK);
    ck_assert_int_eq(adapter_init(&a, &m, 256, 256, NULL, NULL), RL_OK);
    ck_assert_int_eq(adapter_choose_path(&a, 16, 1), ADAPTER_PATH_FACTORED);
    ck_assert_int_eq(adapter_choose_path(&a, 1024, 1), ADAPTER_PATH_MERGED);
    adapter_path_flops(&a, 1024, &f, &mg);
    ck_assert_double_gt(f, 3.0 * mg);
    /* per optimizer step: 64 rows alone stay factored (~42.3 M against
     * merging's ~50.7 M), but over 4 micro-batches the one merge per step
     * pays (~169 M factored against ~101 M merged) */
    ck_assert_int_eq(adapter_choose_path(&a, 64, 1), ADAPTER_PATH_FACTORED);
    ck_assert_int_eq(adapter_choose_path(&a, 64, 4), ADAPTER_PATH_MERGED);
    adapter_free(&a);
    adapter_method_free(&m);

    /* LoRA r 8 on 256x256: factored 6 N r (di + do) = 24576 N; merged with
     * the gradients from the rows: merge + unmerge 2 x 2 do di r = 2097152
     * plus 4 N r (di + do) = 16384 N, so merged from N = 256 on; forming
     * the weight gradient (2 do di N) would never pay */
    adapter_cfg_defaults(&cfg, "lora", 8);
    ck_assert_int_eq(adapter_method_init(&m, &cfg, 256, 256, 1024), RL_OK);
    ck_assert_int_eq(adapter_init(&a, &m, 256, 256, NULL, NULL), RL_OK);
    ck_assert_int_eq(adapter_choose_path(&a, 16, 1), ADAPTER_PATH_FACTORED);
    ck_assert_int_eq(adapter_choose_path(&a, 255, 1), ADAPTER_PATH_FACTORED);
    ck_assert_int_eq(adapter_choose_path(&a, 257, 1), ADAPTER_PATH_MERGED);
    {
        bool rows = false;
        double mf = adapter_merged_step_flops(&a, 1024, 1, &rows);

        ck_assert(rows);
        ck_assert_double_eq_tol(mf, 2097152.0 + 16384.0 * 1024, 1.0);
        /* 4 micro-batches: the rows route each time, still cheaper */
        ck_assert_double_eq_tol(adapter_merged_step_flops(&a, 1024, 4, &rows),
                                2097152.0 + 4 * 16384.0 * 1024, 1.0);
        ck_assert(rows);
    }
    adapter_free(&a);
    adapter_method_free(&m);

    /* full fine-tuning: merged always; with dropout on RandLoRA: factored */
    adapter_cfg_defaults(&cfg, "full", 0);
    ck_assert_int_eq(adapter_method_init(&m, &cfg, 64, 64, 8), RL_OK);
    ck_assert_int_eq(adapter_init(&a, &m, 64, 64, NULL, NULL), RL_OK);
    ck_assert_int_eq(adapter_choose_path(&a, 1, 1), ADAPTER_PATH_MERGED);
    adapter_free(&a);
    adapter_method_free(&m);
    adapter_cfg_defaults(&cfg, "randlora", 8);
    cfg.dropout = 0.1f;
    ck_assert_int_eq(adapter_method_init(&m, &cfg, 256, 256, 1024), RL_OK);
    ck_assert_int_eq(adapter_init(&a, &m, 256, 256, NULL, NULL), RL_OK);
    ck_assert_int_eq(adapter_choose_path(&a, 1024, 1), ADAPTER_PATH_FACTORED);
    adapter_set_training(&a, false);
    ck_assert_int_eq(adapter_choose_path(&a, 1024, 1), ADAPTER_PATH_MERGED);
    adapter_free(&a);
    adapter_method_free(&m);
}
END_TEST

/* dropout masks the branch input only, is inverted (scaled by 1/(1-p)), and
 * is off in eval */
START_TEST(test_dropout)
{
    struct adapter_cfg cfg;
    struct adapter_method m;
    struct adapter a;
    struct rng g;
    const size_t d = 6, N = 4;
    float x[4 * 6], y_eval[4 * 6] = { 0 }, y_train[4 * 6] = { 0 }, y_ref[4 * 6] = { 0 };
    float xt[4 * 6];
    size_t kept = 0;

    rng_init(&g, 1);
    adapter_cfg_defaults(&cfg, "full", 0);
    cfg.dropout = 0.5f;                     /* ignored: full has no branch */
    ck_assert_int_eq(adapter_method_init(&m, &cfg, d, d, N), RL_OK);
    ck_assert_int_eq(adapter_init(&a, &m, d, d, NULL, NULL), RL_OK);
    ck_assert_ptr_null(a.drop_x);
    adapter_free(&a);
    adapter_method_free(&m);

    adapter_cfg_defaults(&cfg, "lora", 2);
    cfg.dropout = 0.5f;
    ck_assert_int_eq(adapter_method_init(&m, &cfg, d, d, N), RL_OK);
    ck_assert_int_eq(adapter_init(&a, &m, d, d, NULL, NULL), RL_OK);
    adapter_test_randomize(&a, &g, 1.0f);
    rng_fill_normal(&g, x, N * d, 0.0f, 1.0f);
    adapter_set_training(&a, false);
    adapter_forward(&a, x, y_eval, N);
    adapter_set_training(&a, true);
    adapter_forward(&a, x, y_train, N);
    /* the same branch on x~ = x * mask * 2 in eval */
    for (size_t i = 0; i < N * d; i++) {
        kept += a.drop_mask[i];
        xt[i] = a.drop_mask[i] ? 2.0f * x[i] : 0.0f;
    }
    ck_assert_uint_gt(kept, 0);
    ck_assert_uint_lt(kept, N * d);
    adapter_set_training(&a, false);
    adapter_forward(&a, xt, y_ref, N);
    ck_assert_int_eq(tensor_compare("dropout branch", y_train, y_ref, N * d, 1e-6, 1e-5), 0);
    {
        double diff = 0.0;                  /* training differs from eval */

        for (size_t i = 0; i < N * d; i++)
            diff = fmax(diff, fabs(y_train[i] - y_eval[i]));
        ck_assert_double_gt(diff, 1e-3);
    }
    adapter_free(&a);
    adapter_method_free(&m);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* golden: PyTorch implementation of peft's formulas                         */

struct golden_case {
    const char *name, *method, *profile;
    enum adapter_scaling scaling;
};

/* must match CASES in tests/ref/make_adapter_golden.py */
static const struct golden_case golden_cases[] = {
    { "lora_c1",           "lora",     "peft",  ADAPTER_SCALE_ALPHA_R },
    { "lora_c2_rs",        "lora",     "peft",  ADAPTER_SCALE_ALPHA_R },
    { "vera_c1",           "vera",     "peft",  ADAPTER_SCALE_ALPHA_R },
    { "vera_c2",           "vera",     "peft",  ADAPTER_SCALE_ALPHA_R },
    { "randlora_peft_c1",  "randlora", "peft",  ADAPTER_SCALE_ALPHA_R },
    { "randlora_peft_c2",  "randlora", "peft",  ADAPTER_SCALE_ALPHA_R },
    { "randlora_peft_sq",  "randlora", "peft",  ADAPTER_SCALE_ALPHA_R },
    { "randlora_peft_r4",  "randlora", "peft",  ADAPTER_SCALE_ALPHA_R },
    { "randlora_paper_c1", "randlora", "paper", ADAPTER_SCALE_ONE_OVER_R },
    { "randlora_paper_c2", "randlora", "paper", ADAPTER_SCALE_ONE_OVER_R },
    { "randlora_fork_c2",  "randlora", "peft",  ADAPTER_SCALE_ALPHA_R_SQRT_N },
    { "full_c2",           "full",     "peft",  ADAPTER_SCALE_ALPHA_R },
    { "none_c1",           "none",     "peft",  ADAPTER_SCALE_ALPHA_R },
};
#define N_GOLDEN (sizeof(golden_cases) / sizeof(golden_cases[0]))

static struct golden gold;

static void golden_setup(void)
{
    int rc = golden_open(&gold, fixture_path(GOLDEN_FILE), GOLDEN_HINT);

    if (rc != RL_OK)
        fprintf(stderr, "adapters: %s\n", rl_error_msg());
}

static void golden_teardown(void)
{
    golden_close(&gold);
}

static const struct golden_tensor *gfind(const char *cs, const char *what)
{
    char name[128];

    snprintf(name, sizeof(name), "%s.%s", cs, what);
    return golden_find(&gold, name);
}

static const float *gget(const char *cs, const char *what, size_t n)
{
    const struct golden_tensor *t = gfind(cs, what);

    ck_assert_msg(t != NULL, "%s.%s missing from %s", cs, what, GOLDEN_FILE);
    ck_assert_msg(t->n == n, "%s.%s has %zu values, expected %zu", cs, what, t->n, n);
    return t->data;
}

static void copy_into(struct adapter_tensor *t, const char *cs, const char *kind)
{
    char what[96];
    const struct golden_tensor *g;

    snprintf(what, sizeof(what), "%s.%s", kind, t->name);
    g = gfind(cs, what);
    ck_assert_msg(g != NULL, "%s.%s missing", cs, what);
    ck_assert_msg(g->n == t->n, "%s.%s: %zu values, the adapter has %zu", cs, what, g->n, t->n);
    for (int k = 0; k < t->ndim; k++)
        ck_assert_msg(g->ndim == (size_t)t->ndim && g->dims[k] == t->shape[k],
                      "%s.%s: shape differs from peft's at dim %d", cs, what, k);
    memcpy(t->data, g->data, t->n * sizeof(float));
}

START_TEST(test_golden)
{
    const struct golden_case *gc = &golden_cases[_i];
    const char *cs = gc->name;
    const float *meta;
    struct adapter_cfg cfg;
    struct adapter_method m;
    struct adapter a;
    struct adapter_tensor tp[4], tg[4], ts[4];
    size_t d_out, d_in, N, nt, ns, fails = 0;
    float *y, *dx, *dw;
    double tol;

    ck_assert_msg(gold.count > 0, "%s not loaded: %s", GOLDEN_FILE, rl_error_msg());
    meta = gget(cs, "meta", 8);
    d_out = (size_t)meta[0];
    d_in = (size_t)meta[1];
    N = (size_t)meta[4];
    adapter_cfg_defaults(&cfg, gc->method, (size_t)meta[5]);
    ck_assert_int_eq(adapter_cfg_profile(&cfg, gc->profile), RL_OK);
    cfg.scaling = gc->scaling;
    cfg.alpha = meta[6];
    cfg.rslora = meta[7] != 0.0f;
    ck_assert_int_eq(adapter_method_init(&m, &cfg, (size_t)meta[2], (size_t)meta[3], N), RL_OK);
    ck_assert_msg(adapter_init(&a, &m, d_out, d_in, NULL, NULL) == RL_OK, "%s", rl_error_msg());
    adapter_set_training(&a, false);

    /* deterministic inits as peft / the vision code give them */
    nt = adapter_tensors(&a, false, tp, 4);
    ck_assert_uint_eq(adapter_tensors(&a, true, tg, 4), nt);
    for (size_t t = 0; t < nt; t++) {
        char what[96];
        const struct golden_tensor *g;

        snprintf(what, sizeof(what), "init.%s", tp[t].name);
        g = gfind(cs, what);
        if (g) {
            ck_assert_uint_eq(g->n, tp[t].n);
            fails += tensor_compare(what, tp[t].data, g->data, g->n, 1e-7, 1e-6);
        }
    }
    /* load the shared frozen tensors and the trainable values */
    ns = adapter_method_tensors(&m, ts, 4);
    for (size_t t = 0; t < ns; t++)
        copy_into(&ts[t], cs, "shared");
    for (size_t t = 0; t < nt; t++)
        copy_into(&tp[t], cs, "param");
    if (a.n_params)
        memset(a.grads, 0, a.n_params * sizeof(float));

    /* y = x W^T + branch, dx = dy W + branch', grads */
    {
        const float *W = gget(cs, "W", d_out * d_in), *x = gget(cs, "x", N * d_in);
        const float *dy = gget(cs, "dy", N * d_out), *want;

        y = test_zeros(N * d_out);
        dx = test_zeros(N * d_in);
        dw = test_zeros(d_out * d_in);
        naive_xwt(y, x, W, N, d_in, d_out);
        adapter_forward(&a, x, y, N);
        naive_gw(dx, dy, W, N, d_in, d_out);
        adapter_backward(&a, x, dy, dx, N);
        adapter_delta_weight(&a, dw);

        want = gget(cs, "y", N * d_out);
        tol = 1e-5 * (1.0 + test_max_abs(want, N * d_out));
        fails += tensor_compare("y", y, want, N * d_out, tol, 1e-5);
        want = gget(cs, "dx", N * d_in);
        tol = 1e-5 * (1.0 + test_max_abs(want, N * d_in));
        fails += tensor_compare("dx", dx, want, N * d_in, tol, 1e-5);
        want = gget(cs, "delta", d_out * d_in);
        tol = 1e-5 * (1.0 + test_max_abs(want, d_out * d_in));
        fails += tensor_compare("delta", dw, want, d_out * d_in, tol, 1e-5);
        for (size_t t = 0; t < nt; t++) {
            char what[96];

            snprintf(what, sizeof(what), "grad.%s", tg[t].name);
            want = gget(cs, what, tg[t].n);
            tol = 1e-5 * (1.0 + test_max_abs(want, tg[t].n));
            fails += tensor_compare(what, tg[t].data, want, tg[t].n, tol, 1e-5);
        }
    }
    ck_assert_msg(fails == 0, "%s: %zu values differ from the PyTorch golden", cs, fails);
    free(y);
    free(dx);
    free(dw);
    adapter_test_teardown(&m, &a);
}
END_TEST

Suite *suite_adapter_methods(void)
{
    Suite *s = suite_create("adapter_methods");
    TCase *tm = tcase_create("methods");
    TCase *tgold = tcase_create("golden");

    tcase_add_test(tm, test_randlora_bases);
    tcase_add_test(tm, test_vera_shared_and_lora_init);
    tcase_add_test(tm, test_path_choice);
    tcase_add_test(tm, test_dropout);
    suite_add_tcase(s, tm);

    tcase_add_unchecked_fixture(tgold, golden_setup, golden_teardown);
    tcase_add_loop_test(tgold, test_golden, 0, (int)N_GOLDEN);
    suite_add_tcase(s, tgold);
    return s;
}
