/*
 * check_nola.c: NoLA's own checks and the paper profiles' values, beside the
 * conformance suite (check_adapters.c runs NoLA through it from the registry):
 *
 *   count      2 k per layer, k the profile's (256 peft, 1024 paper) or set;
 *              shared k r (max_in + max_out); `randlora params`
 *   budget     budget matching picks k at rank 1 (closest, ties smaller)
 *   init       coefficients 1/k; dW0 = s mean(B_i) mean(A_i), not 0
 *   gradcheck  central differences of the coefficients at a small k
 *   files      export + import round trip (coefficients and bases), and a
 *              file of another k refused with a message naming the key
 *   golden     tests/fixtures/nola_golden.bin from tests/ref/nola_golden.py
 *              (PyTorch, the RandLoRA authors' expressions)
 *   plans      method.budget picks k, nola_bases and the profile set it, the
 *              default rank is 1, and a plan reads back from its own ini
 *   params     `randlora params` with --bases and --budget; --bases refused
 *              (exit status 2) for another method or 0
 *   profiles   paper: LoRA alpha 1 / A = 0 / B kaiming(r d_out), RandLoRA
 *              1/r; paper_2024: RandLoRA 10/r; peft unchanged
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "experiments/config.h"
#include "core/status.h"
#include "cli/commands.h"
#include "methods/adapter.h"
#include "methods/adapter_io.h"
#include "golden.h"
#include "suites.h"
#include "test_util.h"

#define ROWS 3

static void make(struct adapter_method *m, struct adapter *a, const struct adapter_cfg *cfg,
                 size_t max_out, size_t max_in, size_t d_out, size_t d_in)
{
    ck_assert_msg(adapter_method_init(m, cfg, max_out, max_in, ROWS) == RL_OK, "%s",
                  rl_error_msg());
    ck_assert_msg(adapter_init(a, m, d_out, d_in, NULL, NULL) == RL_OK, "%s", rl_error_msg());
}

START_TEST(test_nola_count)
{
    struct adapter_shape clip[3] = { { 2304, 768 }, { 3072, 768 }, { 768, 3072 } };
    struct adapter_cfg cfg;

    adapter_cfg_defaults(&cfg, "nola", 1);
    ck_assert_uint_eq(cfg.nola_bases, 256);
    ck_assert_uint_eq(adapter_count_layer(&nola_ops, &cfg, 20, 12), 512);
    ck_assert_int_eq(adapter_cfg_profile(&cfg, "paper"), RL_OK);
    ck_assert_uint_eq(cfg.nola_bases, 1024);
    /* the paper's ViT-B/32 placement: 3 adapted matrices x 12 blocks x 2 towers */
    ck_assert_uint_eq(24 * adapter_count(&nola_ops, &cfg, clip, 3), 24u * 3 * 2048);
    ck_assert_uint_eq(adapter_count_shared(&nola_ops, &cfg, clip, 3), 1024u * (3072 + 3072));
    cfg.r = 4;
    cfg.nola_bases = 7;
    ck_assert_uint_eq(adapter_count_layer(&nola_ops, &cfg, 3, 5), 14);   /* shape-free */
    ck_assert_uint_eq(adapter_count_shared(&nola_ops, &cfg, clip, 3), 7u * 4 * (3072 + 3072));
}
END_TEST

START_TEST(test_nola_budget)
{
    struct adapter_shape sh[2] = { { 64, 32 }, { 32, 64 } };
    struct adapter_cfg cfg, out;
    size_t count, r;

    adapter_cfg_defaults(&cfg, "nola", 0);          /* no rank: the paper's 1 */
    ck_assert_int_eq(adapter_match_budget_cfg(&nola_ops, &cfg, sh, 2, 1000, &out, &count),
                     RL_OK);
    ck_assert_uint_eq(out.nola_bases, 250);         /* 2 layers x 2 x 250 */
    ck_assert_uint_eq(out.r, 1);
    ck_assert_uint_eq(count, 1000);
    ck_assert_int_eq(adapter_match_budget_cfg(&nola_ops, &cfg, sh, 2, 1002, &out, &count),
                     RL_OK);
    ck_assert_uint_eq(out.nola_bases, 250);         /* 1000 and 1004: tie, the smaller */
    ck_assert_int_eq(adapter_match_budget_cfg(&nola_ops, &cfg, sh, 2, 1003, &out, &count),
                     RL_OK);
    ck_assert_uint_eq(out.nola_bases, 251);
    ck_assert_uint_eq(count, 1004);
    /* the rank stays where it is given; the rank-only entry point keeps it */
    cfg.r = 3;
    ck_assert_int_eq(adapter_match_budget(&nola_ops, &cfg, sh, 2, 1, &r, &count), RL_OK);
    ck_assert_uint_eq(r, 3);
    ck_assert_uint_eq(count, 4);                    /* k = 1 */
    /* LoRA through the same entry point still moves the rank */
    adapter_cfg_defaults(&cfg, "lora", 1);
    ck_assert_int_eq(adapter_match_budget_cfg(&lora_ops, &cfg, sh, 2, 96 * 5 * 2, &out, &count),
                     RL_OK);
    ck_assert_uint_eq(out.r, 5);
}
END_TEST

/* dW0 = s (mean_i B_i)(mean_i A_i), from the shared tensors directly */
START_TEST(test_nola_init)
{
    struct adapter_cfg cfg;
    struct adapter_method m;
    struct adapter a;
    struct adapter_tensor t[2];
    size_t d_out = 6, d_in = 4, mo = 9, mi = 5, k = 8, r = 2;
    float dw[24];
    double maxd = 0.0, maxw = 0.0;

    adapter_cfg_defaults(&cfg, "nola", r);
    cfg.nola_bases = k;
    cfg.alpha = 3.0f;
    cfg.seed = 11;
    make(&m, &a, &cfg, mo, mi, d_out, d_in);
    ck_assert_uint_eq(a.n_params, 2 * k);
    for (size_t i = 0; i < 2 * k; i++)
        ck_assert_float_eq(a.params[i], 1.0f / (float)k);
    ck_assert_float_eq_tol(nola_scaling(&cfg), 1.5f, 1e-7f);
    ck_assert_uint_eq(adapter_method_tensors(&m, t, 2), 2);
    ck_assert_str_eq(t[0].name, "nola_A");
    ck_assert_uint_eq(t[0].shape[0], k);
    ck_assert_uint_eq(t[0].shape[1], r);
    ck_assert_uint_eq(t[0].shape[2], mi);
    ck_assert_str_eq(t[1].name, "nola_B");
    ck_assert_uint_eq(t[1].shape[1], mo);
    adapter_delta_weight(&a, dw);
    for (size_t o = 0; o < d_out; o++)
        for (size_t c = 0; c < d_in; c++) {
            double want = 0.0;

            for (size_t j = 0; j < r; j++) {
                double bm = 0.0, am = 0.0;

                for (size_t i = 0; i < k; i++) {
                    bm += t[1].data[(i * mo + o) * r + j] / (double)k;
                    am += t[0].data[(i * r + j) * mi + c] / (double)k;
                }
                want += 1.5 * bm * am;
            }
            maxd = fmax(maxd, fabs(want - dw[o * d_in + c]));
            maxw = fmax(maxw, fabs(want));
        }
    ck_assert_double_gt(maxw, 1e-3);                /* not identity at init */
    ck_assert_double_lt(maxd, 1e-5 * (1.0 + maxw));
    /* the same seed gives the same bases; another seed others */
    {
        struct adapter_method m2;
        struct adapter_tensor t2[2];

        ck_assert_int_eq(adapter_method_init(&m2, &cfg, mo, mi, ROWS), RL_OK);
        adapter_method_tensors(&m2, t2, 2);
        ck_assert_int_eq(memcmp(t2[0].data, t[0].data, t[0].n * sizeof(float)), 0);
        adapter_method_free(&m2);
        cfg.seed = 12;
        ck_assert_int_eq(adapter_method_init(&m2, &cfg, mo, mi, ROWS), RL_OK);
        adapter_method_tensors(&m2, t2, 2);
        ck_assert_int_ne(memcmp(t2[1].data, t[1].data, t[1].n * sizeof(float)), 0);
        adapter_method_free(&m2);
    }
    adapter_free(&a);
    adapter_method_free(&m);
}
END_TEST

struct fd_ctx {
    struct adapter *a;
    const float *x, *R;
    float *y;
};

static double fd_loss(void *p)
{
    struct fd_ctx *c = p;
    size_t n = ROWS * c->a->d_out;

    memset(c->y, 0, n * sizeof(float));
    adapter_forward(c->a, c->x, c->y, ROWS);
    return dot_double(c->y, c->R, n);
}

/* finite differences of the coefficients at a small k, near the authors'
 * init (1/k plus noise), both orientations */
START_TEST(test_nola_gradcheck)
{
    static const size_t dims[2][2] = { { 7, 5 }, { 4, 9 } };
    struct rng g;

    rng_init(&g, 77);
    for (size_t s = 0; s < 2; s++) {
        struct adapter_cfg cfg;
        struct adapter_method m;
        struct adapter a;
        struct fd_ctx c;
        size_t d_out = dims[s][0], d_in = dims[s][1];
        float *x, *R, *y;

        adapter_cfg_defaults(&cfg, "nola", 2);
        cfg.nola_bases = 12;
        cfg.seed = 5;
        make(&m, &a, &cfg, d_out + 2, d_in + 1, d_out, d_in);
        for (size_t i = 0; i < a.n_params; i++)
            a.params[i] += 0.3f * rng_normal(&g);
        x = test_randn(&g, ROWS * d_in, 1.0f);
        R = test_randn(&g, ROWS * d_out, 1.0f);
        y = test_zeros(ROWS * d_out);
        c = (struct fd_ctx){ .a = &a, .x = x, .R = R, .y = y };
        memset(a.grads, 0, a.n_params * sizeof(float));
        fd_loss(&c);
        adapter_backward(&a, x, R, NULL, ROWS);
        ck_assert_uint_eq(gradcheck("nola_coef", a.params, a.grads, a.n_params, fd_loss, &c,
                                    0.05f, 1e-3, 1e-3, 64), 0);
        free(x);
        free(R);
        free(y);
        adapter_free(&a);
        adapter_method_free(&m);
    }
}
END_TEST

/* export, import into fresh adapters of the same config: equal coefficients
 * and bases; another k is refused naming the key */
START_TEST(test_nola_files)
{
    char dir[256];
    struct adapter_cfg cfg;
    struct adapter_method m, m2;
    struct adapter a, a2;
    struct adapter_tensor t[2], t2[2];
    struct adapter_io_module mod = { "layers.0.q_proj", &a }, mod2 = { "layers.0.q_proj", &a2 };
    struct adapter_io_files files;
    struct adapter_io_info info;
    struct rng g;

    ck_assert_ptr_nonnull(test_tmpdir_make(dir, sizeof(dir), "nola"));
    files = (struct adapter_io_files){ .dir = dir, .base_model = "tiny" };
    rng_init(&g, 3);
    adapter_cfg_defaults(&cfg, "nola", 1);
    cfg.nola_bases = 10;
    cfg.seed = 42;
    make(&m, &a, &cfg, 8, 6, 8, 6);
    rng_fill_normal(&g, a.params, a.n_params, 0.0f, 1.0f);
    ck_assert_msg(adapter_io_export(&files, &m, &mod, 1) == RL_OK, "%s", rl_error_msg());

    memset(&info, 0, sizeof(info));
    ck_assert_msg(adapter_io_read_config(&files, &info) == RL_OK, "%s", rl_error_msg());
    ck_assert_str_eq(info.cfg.method, "nola");
    ck_assert_uint_eq(info.cfg.nola_bases, 10);
    ck_assert_uint_eq(info.cfg.r, 1);
    ck_assert_uint_eq(info.cfg.seed, 42);
    adapter_io_info_free(&info);

    cfg.seed = 43;                                  /* other bases: the file's win */
    make(&m2, &a2, &cfg, 8, 6, 8, 6);
    ck_assert_msg(adapter_io_import(&files, &m2, &mod2, 1) == RL_OK, "%s", rl_error_msg());
    ck_assert_int_eq(memcmp(a2.params, a.params, a.n_params * sizeof(float)), 0);
    adapter_method_tensors(&m, t, 2);
    adapter_method_tensors(&m2, t2, 2);
    for (size_t i = 0; i < 2; i++)
        ck_assert_int_eq(memcmp(t2[i].data, t[i].data, t[i].n * sizeof(float)), 0);
    adapter_free(&a2);
    adapter_method_free(&m2);

    cfg.nola_bases = 11;
    make(&m2, &a2, &cfg, 8, 6, 8, 6);
    ck_assert_int_eq(adapter_io_import(&files, &m2, &mod2, 1), RL_ERR_FORMAT);
    ck_assert_msg(strstr(rl_error_msg(), "nola_num_basis") != NULL, "%s", rl_error_msg());
    adapter_free(&a2);
    adapter_method_free(&m2);
    adapter_free(&a);
    adapter_method_free(&m);
    test_tmpdir_remove(dir);
}
END_TEST

static void put(struct adapter_tensor *t, const struct golden *gd, const char *cs,
                const char *what)
{
    char name[96];
    const struct golden_tensor *gt;

    snprintf(name, sizeof(name), "%s.%s", cs, what);
    gt = golden_find(gd, name);
    ck_assert_msg(gt != NULL && gt->n == t->n, "%s missing or of another size", name);
    memcpy(t->data, gt->data, t->n * sizeof(float));
}

static const float *gget(const struct golden *gd, const char *cs, const char *what, size_t n)
{
    char name[96];
    const struct golden_tensor *gt;

    snprintf(name, sizeof(name), "%s.%s", cs, what);
    gt = golden_find(gd, name);
    ck_assert_msg(gt != NULL && gt->n == n, "%s missing or of another size", name);
    return gt->data;
}

START_TEST(test_nola_golden)
{
    static const char *const cases[] = { "nola_c1", "nola_c2" };
    struct golden gd;

    ck_assert_msg(golden_open(&gd, fixture_path("nola_golden.bin"),
                              "/usr/bin/python3 tests/ref/nola_golden.py") == RL_OK, "%s",
                  rl_error_msg());
    for (size_t c = 0; c < 2; c++) {
        const char *cs = cases[c];
        const float *meta = gget(&gd, cs, "meta", 8), *W, *x, *dy;
        size_t d_out = (size_t)meta[0], d_in = (size_t)meta[1], N = (size_t)meta[4], fails = 0;
        struct adapter_cfg cfg;
        struct adapter_method m;
        struct adapter a;
        struct adapter_tensor ts[2], tp[1];
        float *y, *dx, *dw;

        adapter_cfg_defaults(&cfg, "nola", (size_t)meta[5]);
        cfg.alpha = meta[6];
        cfg.nola_bases = (size_t)meta[7];
        ck_assert_int_eq(adapter_method_init(&m, &cfg, (size_t)meta[2], (size_t)meta[3], N),
                         RL_OK);
        ck_assert_int_eq(adapter_init(&a, &m, d_out, d_in, NULL, NULL), RL_OK);
        adapter_tensors(&a, false, tp, 1);
        fails += tensor_compare("init", a.params, gget(&gd, cs, "init.nola_coef", a.n_params),
                                a.n_params, 0.0, 0.0);
        adapter_method_tensors(&m, ts, 2);
        put(&ts[0], &gd, cs, "shared.nola_A");
        put(&ts[1], &gd, cs, "shared.nola_B");
        put(&tp[0], &gd, cs, "param.nola_coef");
        memset(a.grads, 0, a.n_params * sizeof(float));
        W = gget(&gd, cs, "W", d_out * d_in);
        x = gget(&gd, cs, "x", N * d_in);
        dy = gget(&gd, cs, "dy", N * d_out);
        y = test_zeros(N * d_out);
        dx = test_zeros(N * d_in);
        dw = test_zeros(d_out * d_in);
        for (size_t n = 0; n < N; n++)               /* y = x W^T, dx = dy W */
            for (size_t o = 0; o < d_out; o++)
                for (size_t i = 0; i < d_in; i++) {
                    y[n * d_out + o] += x[n * d_in + i] * W[o * d_in + i];
                    dx[n * d_in + i] += dy[n * d_out + o] * W[o * d_in + i];
                }
        adapter_forward(&a, x, y, N);
        adapter_backward(&a, x, dy, dx, N);
        adapter_delta_weight(&a, dw);
        fails += tensor_compare("y", y, gget(&gd, cs, "y", N * d_out), N * d_out, 1e-5, 1e-5);
        fails += tensor_compare("dx", dx, gget(&gd, cs, "dx", N * d_in), N * d_in, 1e-5, 1e-5);
        fails += tensor_compare("delta", dw, gget(&gd, cs, "delta", d_out * d_in),
                                d_out * d_in, 1e-5, 1e-5);
        fails += tensor_compare("grad", a.grads, gget(&gd, cs, "grad.nola_coef", a.n_params),
                                a.n_params, 1e-5, 1e-5);
        ck_assert_msg(fails == 0, "%s: %zu values differ from the PyTorch golden", cs, fails);
        free(y);
        free(dx);
        free(dw);
        adapter_free(&a);
        adapter_method_free(&m);
    }
    golden_close(&gd);
}
END_TEST

/* the profiles' values: LoRA's and RandLoRA's scalings, LoRA's paper init */
START_TEST(test_paper_profiles)
{
    struct adapter_cfg cfg;
    struct adapter_method m;
    struct adapter a;
    size_t r = 4, d_out = 10, d_in = 6;
    float bound = 1.0f / sqrtf((float)(r * d_out)), mx = 0.0f;

    adapter_cfg_defaults(&cfg, "lora", r);
    ck_assert_float_eq_tol(lora_scaling(&cfg), 2.0f, 1e-7f);          /* peft 8 / 4 */
    ck_assert_int_eq(adapter_cfg_profile(&cfg, "paper"), RL_OK);
    ck_assert_float_eq_tol(lora_scaling(&cfg), 0.25f, 1e-7f);         /* 1 / r */
    cfg.alpha = 2.0f;
    ck_assert_float_eq_tol(lora_scaling(&cfg), 0.5f, 1e-7f);          /* a given alpha wins */
    cfg.alpha = 0.0f;
    make(&m, &a, &cfg, d_out, d_in, d_out, d_in);
    for (size_t i = 0; i < r * d_in; i++)
        ck_assert_float_eq(a.params[i], 0.0f);                       /* A = 0 */
    for (size_t i = 0; i < d_out * r; i++) {
        float v = a.params[r * d_in + i];

        ck_assert(fabsf(v) <= bound);
        mx = fmaxf(mx, fabsf(v));
    }
    ck_assert_float_gt(mx, 0.5f * bound);                            /* B kaiming, not 0 */
    adapter_free(&a);
    adapter_method_free(&m);

    adapter_cfg_defaults(&cfg, "randlora", r);
    ck_assert_int_eq(adapter_cfg_profile(&cfg, "paper"), RL_OK);
    ck_assert_float_eq_tol(randlora_scaling(&cfg, 7), 0.25f, 1e-7f);  /* 1/r (4ac565e) */
    ck_assert_int_eq(adapter_cfg_profile(&cfg, "paper_2024"), RL_OK);
    ck_assert_float_eq_tol(randlora_scaling(&cfg, 7), 2.5f, 1e-7f);   /* 10/r (0878151) */
    ck_assert_uint_eq(randlora_n_bases(&cfg, 768, 3072), 768 / 4 + 1);
    ck_assert_int_eq(cfg.lora_rule, ADAPTER_LORA_PAPER);
    ck_assert_int_eq(adapter_cfg_profile(&cfg, "peft"), RL_OK);
    ck_assert_float_eq_tol(randlora_scaling(&cfg, 7), 20.0f, 1e-7f);  /* 20 r / r */
    ck_assert_int_eq(adapter_cfg_profile(&cfg, "paper2024"), RL_ERR_ARG);
}
END_TEST

/* two layers, 64x32 and 32x64, whatever the plan */
static int two_shapes(void *ctx, const struct run_plan *plan, const struct adapter_shape **sh,
                      size_t *n)
{
    static const struct adapter_shape shapes[2] = { { 64, 32 }, { 32, 64 } };

    (void)ctx;
    (void)plan;
    *sh = shapes;
    *n = 2;
    return RL_OK;
}

static void expand_one(const char *method_section, struct run_plan **p)
{
    char text[512];
    struct experiment e;
    size_t n;

    snprintf(text, sizeof(text), "[model]\nname = clip-tiny\n[method]\nmethods = nola\n%s",
             method_section);
    ck_assert_msg(experiment_parse(&e, text, "t.ini", NULL, 0) == RL_OK, "%s", rl_error_msg());
    ck_assert_msg(experiment_expand(&e, two_shapes, NULL, p, &n) == RL_OK, "%s",
                  rl_error_msg());
    ck_assert_uint_eq(n, 1);
    experiment_free(&e);
}

START_TEST(test_nola_plans)
{
    struct run_plan *p, *q;
    struct experiment e;
    char *ini;
    size_t n;

    expand_one("", &p);                              /* defaults: rank 1, k 256 */
    ck_assert_uint_eq(p[0].adapter.r, 1);
    ck_assert_uint_eq(p[0].adapter.nola_bases, 256);
    ck_assert_uint_eq(p[0].n_trainable, 2 * 2 * 256);
    run_plans_free(p, 1);
    expand_one("profile = paper\n", &p);
    ck_assert_uint_eq(p[0].adapter.nola_bases, 1024);
    ck_assert_float_eq(p[0].adapter.alpha, 0.0f);
    run_plans_free(p, 1);
    expand_one("profile = paper\nnola_bases.nola = 64\nrank = 2\n", &p);
    ck_assert_uint_eq(p[0].adapter.nola_bases, 64);
    ck_assert_uint_eq(p[0].adapter.r, 2);
    run_plans_free(p, 1);

    expand_one("budget = 1003\n", &p);              /* k = 251: 4 x 251 = 1004 */
    ck_assert_uint_eq(p[0].adapter.nola_bases, 251);
    ck_assert_uint_eq(p[0].adapter.r, 1);
    ck_assert_uint_eq(p[0].n_trainable, 1004);
    /* the stored plan reads back without shapes, k included */
    ini = run_plan_to_ini(&p[0]);
    ck_assert_msg(strstr(ini, "nola_bases = 251") != NULL, "%s", ini);
    ck_assert_msg(experiment_parse(&e, ini, "run.ini", NULL, 0) == RL_OK, "%s", rl_error_msg());
    ck_assert_int_eq(experiment_expand(&e, NULL, NULL, &q, &n), RL_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_uint_eq(q[0].adapter.nola_bases, 251);
    ck_assert_uint_eq(q[0].n_trainable, 1004);
    run_plans_free(q, n);
    experiment_free(&e);
    free(ini);
    run_plans_free(p, 1);
}
END_TEST

/* `randlora params`: NoLA counts, --bases only for NoLA (exit status 2 otherwise) */
START_TEST(test_nola_cmd_params)
{
    char *ok[] = { "params", "--method", "nola", "--rank", "1", "--bases", "8", "--shape",
                   "4x6", "--count" };
    char *budget[] = { "params", "--method", "nola", "--budget", "100", "--shape", "4x6",
                       "--count" };
    char *lora[] = { "params", "--method", "lora", "--rank", "1", "--bases", "8", "--shape",
                     "4x6" };
    char *zero[] = { "params", "--method", "nola", "--rank", "1", "--bases", "0", "--shape",
                     "4x6" };

    ck_assert_int_eq(cmd_params(10, ok), 0);
    ck_assert_int_eq(cmd_params(8, budget), 0);
    ck_assert_int_eq(cmd_params(9, lora), 2);
    ck_assert_int_eq(cmd_params(9, zero), 2);
}
END_TEST

Suite *suite_nola(void)
{
    Suite *s = suite_create("nola");
    TCase *tc = tcase_create("nola");

    tcase_add_test(tc, test_nola_count);
    tcase_add_test(tc, test_nola_budget);
    tcase_add_test(tc, test_nola_init);
    tcase_add_test(tc, test_nola_gradcheck);
    tcase_add_test(tc, test_nola_files);
    tcase_add_test(tc, test_nola_golden);
    tcase_add_test(tc, test_nola_plans);
    tcase_add_test(tc, test_nola_cmd_params);
    tcase_add_test(tc, test_paper_profiles);
    suite_add_tcase(s, tc);
    return s;
}
