/*
 * check_adapters.c: the adapter conformance suite, run over the registry, so
 * a new method passes the same tests (style-anchors.md 7.11):
 *
 *   gradcheck       central differences of every trainable tensor and of the
 *                   input, in both orientations and a square layer, for every
 *                   configuration variant (profiles, bases, rsLoRA, dropout);
 *                   also the NULL-grads and NULL-dx branches
 *   identity        dW = 0 and the branch adds exactly nothing at init
 *   merge           merged forward == unmerged; unmerge restores W
 *   paths           factored path == merged path (output, dx, param grads)
 *   count           n_trainable == a closed form written here independently
 *   rank            rank(dW) for random parameters: LoRA, VeRA min(r, d);
 *                   RandLoRA min(d_in, d_out) (dense, sparse, very sparse);
 *                   full min(d_in, d_out); none 0 (one-sided Jacobi SVD)
 *   failed_init     bad rank / size / name: RL_ERR_ARG, and free is safe
 *                   (leaks show under `make SAN=1`)
 * plus peft's benchmark counts and budget matching, the shared bases
 * (statistics, seed reproducibility), the path choice, dropout, and a
 * golden file from tests/ref/make_adapter_golden.py (PyTorch, peft's
 * formulas) covering every method, both profiles and both orientations.
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
#include "golden.h"
#include "suites.h"
#include "test_util.h"

#define N_ROWS 5
#define RANK 3
#define GOLDEN_FILE "adapter_golden.bin"
#define GOLDEN_HINT "/usr/bin/python3 tests/ref/make_adapter_golden.py"

/* ------------------------------------------------------------------------ */
/* configurations and shapes every method is run with                        */

struct variant {
    const char *label;
    const char *profile;
    enum adapter_basis basis;
    enum adapter_scaling scaling;   /* applied after the profile */
    bool  set_scaling;
    bool  rslora;
    float alpha;
    float dropout;
};

static const struct variant variants[] = {
    { "peft dense",            "peft",  ADAPTER_BASIS_DENSE,       0, false, false, 0.0f, 0.0f },
    { "peft sparse rslora",    "peft",  ADAPTER_BASIS_SPARSE,      0, false, true,  6.0f, 0.0f },
    { "paper very_sparse",     "paper", ADAPTER_BASIS_VERY_SPARSE, 0, false, false, 0.0f, 0.0f },
    { "fork scaling",          "peft",  ADAPTER_BASIS_DENSE, ADAPTER_SCALE_ALPHA_R_SQRT_N, true,
      false, 6.0f, 0.0f },
    { "peft dense dropout",    "peft",  ADAPTER_BASIS_DENSE,       0, false, false, 2.0f, 0.25f },
};
#define N_VARIANTS (sizeof(variants) / sizeof(variants[0]))

/* d_in < d_out (RandLoRA case 1), d_out < d_in (case 2), square */
static const struct adapter_shape shapes[] = { { 20, 12 }, { 12, 20 }, { 16, 16 } };
#define N_SHAPES (sizeof(shapes) / sizeof(shapes[0]))

static const struct adapter_ops *registry_at(int i)
{
    const struct adapter_ops *ops = adapter_registry()[i];

    ck_assert_ptr_nonnull(ops);
    return ops;
}

static void make_cfg(struct adapter_cfg *cfg, const struct adapter_ops *ops,
                     const struct variant *v, size_t r)
{
    adapter_cfg_defaults(cfg, ops->name, r);
    ck_assert_int_eq(adapter_cfg_profile(cfg, v->profile), RL_OK);
    cfg->basis = v->basis;
    if (v->set_scaling)
        cfg->scaling = v->scaling;
    cfg->rslora = v->rslora;
    cfg->alpha = v->alpha;
    cfg->dropout = v->dropout;
    cfg->seed = 1234;
}

/* a method a little larger than the layer, so every slice is exercised */
static void setup(struct adapter_method *m, struct adapter *a, const struct adapter_cfg *cfg,
                  size_t d_out, size_t d_in)
{
    int rc = adapter_method_init(m, cfg, d_out + 3, d_in + 2, N_ROWS);

    ck_assert_msg(rc == RL_OK, "method_init %s: %s", cfg->method, rl_error_msg());
    rc = adapter_init(a, m, d_out, d_in, NULL, NULL);
    ck_assert_msg(rc == RL_OK, "init %s %zux%zu: %s", cfg->method, d_out, d_in, rl_error_msg());
}

static void teardown(struct adapter_method *m, struct adapter *a)
{
    adapter_free(a);
    adapter_method_free(m);
}

static void randomize_params(struct adapter *a, struct rng *g, float std)
{
    rng_fill_normal(g, a->params, a->n_params, 0.0f, std);
}

/* y (N, d_out) = x (N, d_in) W^T, double accumulation */
static void naive_xwt(float *y, const float *x, const float *w, size_t N, size_t d_in,
                      size_t d_out)
{
    for (size_t n = 0; n < N; n++)
        for (size_t o = 0; o < d_out; o++) {
            double acc = 0.0;

            for (size_t i = 0; i < d_in; i++)
                acc += (double)x[n * d_in + i] * w[o * d_in + i];
            y[n * d_out + o] = (float)acc;
        }
}

/* dx (N, d_in) = g (N, d_out) W */
static void naive_gw(float *dx, const float *g, const float *w, size_t N, size_t d_in,
                     size_t d_out)
{
    for (size_t n = 0; n < N; n++)
        for (size_t i = 0; i < d_in; i++) {
            double acc = 0.0;

            for (size_t o = 0; o < d_out; o++)
                acc += (double)g[n * d_out + o] * w[o * d_in + i];
            dx[n * d_in + i] = (float)acc;
        }
}

/* gw (d_out, d_in) = g^T x */
static void naive_gtx(float *gw, const float *g, const float *x, size_t N, size_t d_in,
                      size_t d_out)
{
    for (size_t o = 0; o < d_out; o++)
        for (size_t i = 0; i < d_in; i++) {
            double acc = 0.0;

            for (size_t n = 0; n < N; n++)
                acc += (double)g[n * d_out + o] * x[n * d_in + i];
            gw[o * d_in + i] = (float)acc;
        }
}

static double max_abs(const float *x, size_t n)
{
    double m = 0.0;

    for (size_t i = 0; i < n; i++)
        if (fabs(x[i]) > m)
            m = fabs(x[i]);
    return m;
}

/* ------------------------------------------------------------------------ */
/* gradcheck                                                                 */

struct gc_ctx {
    struct adapter *a;
    const float *x;             /* perturbed in place through xbuf */
    const float *R;             /* fixed upstream gradient         */
    float *y;
    struct rng rng0;            /* dropout stream at the analytic forward */
};

/* L = sum(branch(x) * R), the dropout mask replayed from the same stream */
static double gc_loss(void *p)
{
    struct gc_ctx *c = p;
    size_t n = N_ROWS * c->a->d_out;

    memset(c->y, 0, n * sizeof(float));
    c->a->rng = c->rng0;
    adapter_forward(c->a, c->x, c->y, N_ROWS);
    return dot_double(c->y, c->R, n);
}

START_TEST(test_adapter_gradcheck)
{
    const struct adapter_ops *ops = registry_at(_i);
    struct rng g;

    rng_init(&g, 42 + (uint64_t)_i);
    for (size_t v = 0; v < N_VARIANTS; v++)
        for (size_t s = 0; s < N_SHAPES; s++) {
            struct adapter_cfg cfg;
            struct adapter_method m;
            struct adapter a;
            struct adapter_tensor tp[4], tg[4];
            size_t d_out = shapes[s].d_out, d_in = shapes[s].d_in, nt, fails = 0;
            float *x, *R, *y, *dx, *dx2, *gsave;
            struct gc_ctx c;

            make_cfg(&cfg, ops, &variants[v], RANK);
            setup(&m, &a, &cfg, d_out, d_in);
            randomize_params(&a, &g, 0.5f);
            x = test_randn(&g, N_ROWS * d_in, 1.0f);
            R = test_randn(&g, N_ROWS * d_out, 1.0f);
            y = test_zeros(N_ROWS * d_out);
            dx = test_zeros(N_ROWS * d_in);
            dx2 = test_zeros(N_ROWS * d_in);
            c = (struct gc_ctx){ .a = &a, .x = x, .R = R, .y = y, .rng0 = a.rng };

            /* analytic: grads and dx for dy = R */
            memset(a.grads, 0, (a.n_params ? a.n_params : 1) * sizeof(float));
            gc_loss(&c);
            adapter_backward(&a, x, R, dx, N_ROWS);

            nt = adapter_tensors(&a, false, tp, 4);
            ck_assert_uint_eq(adapter_tensors(&a, true, tg, 4), nt);
            for (size_t t = 0; t < nt; t++) {
                char name[96];

                snprintf(name, sizeof(name), "%s[%s %zux%zu].%s", ops->name,
                         variants[v].label, d_out, d_in, tp[t].name);
                fails += gradcheck(name, tp[t].data, tg[t].data, tp[t].n, gc_loss, &c,
                                   0.1f, 2e-3, 2e-3, 64);
            }
            {
                char name[96];

                snprintf(name, sizeof(name), "%s[%s %zux%zu].x", ops->name,
                         variants[v].label, d_out, d_in);
                fails += gradcheck(name, x, dx, N_ROWS * d_in, gc_loss, &c, 0.1f, 2e-3, 2e-3, 64);
            }
            ck_assert_msg(fails == 0, "%s %s %zux%zu: %zu gradient probes differ", ops->name,
                          variants[v].label, d_out, d_in, fails);

            /* grads == NULL: dx alone, the same */
            gsave = a.grads;
            a.grads = NULL;
            gc_loss(&c);
            adapter_backward(&a, x, R, dx2, N_ROWS);
            a.grads = gsave;
            ck_assert_int_eq(tensor_compare("dx (grads NULL)", dx2, dx, N_ROWS * d_in, 1e-6, 1e-5),
                             0);
            /* dx == NULL: grads alone, the same */
            if (a.n_params) {
                float *want = test_copy(a.grads, a.n_params);

                memset(a.grads, 0, a.n_params * sizeof(float));
                gc_loss(&c);
                adapter_backward(&a, x, R, NULL, N_ROWS);
                ck_assert_int_eq(tensor_compare("grads (dx NULL)", a.grads, want, a.n_params,
                                                1e-6, 1e-5), 0);
                free(want);
            }
            free(x);
            free(R);
            free(y);
            free(dx);
            free(dx2);
            teardown(&m, &a);
        }
}
END_TEST

/* ------------------------------------------------------------------------ */
/* identity at init                                                          */

START_TEST(test_adapter_identity_at_init)
{
    const struct adapter_ops *ops = registry_at(_i);
    struct rng g;

    if (ops->flags & ADAPTER_F_INIT_NONZERO)
        return;                         /* NoLA starts at dW != 0: check_nola.c */
    rng_init(&g, 7);
    for (size_t v = 0; v < N_VARIANTS; v++)
        for (size_t s = 0; s < N_SHAPES; s++) {
            struct adapter_cfg cfg;
            struct adapter_method m;
            struct adapter a;
            size_t d_out = shapes[s].d_out, d_in = shapes[s].d_in;
            float *x, *y, *y0, *dw, *dx;

            make_cfg(&cfg, ops, &variants[v], RANK);
            setup(&m, &a, &cfg, d_out, d_in);
            x = test_randn(&g, N_ROWS * d_in, 1.0f);
            y = test_randn(&g, N_ROWS * d_out, 1.0f);
            y0 = test_copy(y, N_ROWS * d_out);
            dw = test_randn(&g, d_out * d_in, 1.0f);
            dx = test_zeros(N_ROWS * d_in);

            adapter_forward(&a, x, y, N_ROWS);          /* training mode, as in step 0 */
            ck_assert_int_eq(tensor_compare("y at init", y, y0, N_ROWS * d_out, 0.0, 0.0), 0);
            adapter_backward(&a, x, y0, dx, N_ROWS);
            ck_assert_double_eq(max_abs(dx, N_ROWS * d_in), 0.0);
            adapter_delta_weight(&a, dw);
            ck_assert_double_eq(max_abs(dw, d_out * d_in), 0.0);
            free(x);
            free(y);
            free(y0);
            free(dw);
            free(dx);
            teardown(&m, &a);
        }
}
END_TEST

/* ------------------------------------------------------------------------ */
/* merge == unmerged, factored path == merged path                           */

START_TEST(test_adapter_merge_and_paths)
{
    const struct adapter_ops *ops = registry_at(_i);
    struct rng g;

    rng_init(&g, 99);
    for (size_t v = 0; v < N_VARIANTS; v++)
        for (size_t s = 0; s < N_SHAPES; s++) {
            struct adapter_cfg cfg;
            struct adapter_method m;
            struct adapter a;
            size_t d_out = shapes[s].d_out, d_in = shapes[s].d_in, nw = d_out * d_in;
            size_t ny = N_ROWS * d_out, nx = N_ROWS * d_in, np;
            float *W, *Wm, *x, *G, *y1, *y2, *dx1, *dx2, *gw, *grads_f, *dw;
            double tol;

            make_cfg(&cfg, ops, &variants[v], RANK);
            setup(&m, &a, &cfg, d_out, d_in);
            adapter_set_training(&a, false);            /* merged == unmerged in eval */
            randomize_params(&a, &g, 0.5f);
            np = a.n_params;
            W = test_randn(&g, nw, 0.3f);
            x = test_randn(&g, nx, 1.0f);
            G = test_randn(&g, ny, 1.0f);
            y1 = test_zeros(ny);
            y2 = test_zeros(ny);
            dx1 = test_zeros(nx);
            dx2 = test_zeros(nx);
            gw = test_zeros(nw);
            dw = test_zeros(nw);

            /* factored: y = x W^T + branch; dx = G W + branch'; grads */
            naive_xwt(y1, x, W, N_ROWS, d_in, d_out);
            adapter_forward(&a, x, y1, N_ROWS);
            naive_gw(dx1, G, W, N_ROWS, d_in, d_out);
            if (np)
                memset(a.grads, 0, np * sizeof(float));
            adapter_backward(&a, x, G, dx1, N_ROWS);
            grads_f = np ? test_copy(a.grads, np) : NULL;

            /* merged: W' = W + dW; y = x W'^T; dx = G W'; gW = G^T x projected */
            Wm = test_copy(W, nw);
            adapter_merge(&a, Wm);
            naive_xwt(y2, x, Wm, N_ROWS, d_in, d_out);
            tol = 1e-5 * (1.0 + max_abs(y1, ny));
            ck_assert_int_eq(tensor_compare("y merged vs unmerged", y2, y1, ny, tol, 1e-5), 0);
            naive_gw(dx2, G, Wm, N_ROWS, d_in, d_out);
            tol = 1e-5 * (1.0 + max_abs(dx1, nx));
            ck_assert_int_eq(tensor_compare("dx merged vs factored", dx2, dx1, nx, tol, 1e-5), 0);
            naive_gtx(gw, G, x, N_ROWS, d_in, d_out);
            if (np) {
                memset(a.grads, 0, np * sizeof(float));
                adapter_project_grad(&a, gw);
                tol = 1e-5 * (1.0 + max_abs(grads_f, np));
                ck_assert_int_eq(tensor_compare("grads merged vs factored", a.grads, grads_f, np,
                                                tol, 1e-5), 0);
                /* the same gradients from the rows, no weight gradient */
                if (ops->project_rows) {
                    memset(a.grads, 0, np * sizeof(float));
                    adapter_project_rows(&a, x, G, N_ROWS);
                    ck_assert_int_eq(tensor_compare("grads from rows vs factored", a.grads,
                                                    grads_f, np, tol, 1e-5), 0);
                    ck_assert_ptr_nonnull(ops->rows_flops);
                }
                /* the flag's promise, which lets the merged backward skip
                 * project_grad: the parameter gradient is gW itself */
                if (ops->flags & ADAPTER_F_GRAD_IS_GW) {
                    ck_assert_uint_eq(np, nw);
                    ck_assert_int_eq(memcmp(a.grads, gw, nw * sizeof(float)), 0);
                }
            }
            /* delta_weight == W' - W; unmerge gives W back */
            adapter_delta_weight(&a, dw);
            for (size_t i = 0; i < nw; i++)
                Wm[i] -= W[i];
            tol = 1e-6 * (1.0 + max_abs(dw, nw));
            ck_assert_int_eq(tensor_compare("delta_weight", Wm, dw, nw, tol, 1e-5), 0);
            for (size_t i = 0; i < nw; i++)
                Wm[i] = W[i];
            adapter_merge(&a, Wm);
            adapter_unmerge(&a, Wm);
            ck_assert_int_eq(tensor_compare("unmerge", Wm, W, nw, tol, 0.0), 0);

            free(W);
            free(Wm);
            free(x);
            free(G);
            free(y1);
            free(y2);
            free(dx1);
            free(dx2);
            free(gw);
            free(dw);
            free(grads_f);
            teardown(&m, &a);
        }
}
END_TEST

/* ------------------------------------------------------------------------ */
/* parameter count == closed form                                            */

/* written from methods.md 1, 2, 3.7, independently of the method files */
static size_t expected_count(const char *name, const struct adapter_cfg *cfg, size_t d_out,
                             size_t d_in)
{
    size_t r = cfg->r, d = d_out < d_in ? d_out : d_in;

    if (!strcmp(name, "lora"))
        return r * (d_in + d_out);
    if (!strcmp(name, "vera"))
        return r + d_out;
    if (!strcmp(name, "nola"))
        return 2 * cfg->nola_bases;
    if (!strcmp(name, "randlora")) {
        size_t n;

        if (cfg->n_rule == ADAPTER_N_FLOOR_PLUS_ONE)
            n = d / r + 1 < 1000 ? d / r + 1 : 1000;
        else
            n = d % r == 0 ? d / r : d / r + 1;
        return n * (r + d);
    }
    if (!strcmp(name, "full"))
        return d_out * d_in;
    if (!strcmp(name, "none"))
        return 0;
    ck_abort_msg("no closed form in the test for method '%s': add one", name);
    return 0;
}

START_TEST(test_adapter_param_count)
{
    const struct adapter_ops *ops = registry_at(_i);
    static const size_t ranks[] = { 1, 3, 5, 12 };

    for (size_t v = 0; v < N_VARIANTS; v++)
        for (size_t s = 0; s < N_SHAPES; s++)
            for (size_t k = 0; k < sizeof(ranks) / sizeof(ranks[0]); k++) {
                struct adapter_cfg cfg;
                struct adapter_method m;
                struct adapter a;
                struct adapter_tensor t[4];
                size_t d_out = shapes[s].d_out, d_in = shapes[s].d_in, want, sum = 0, nt;

                make_cfg(&cfg, ops, &variants[v], ranks[k]);
                want = expected_count(ops->name, &cfg, d_out, d_in);
                ck_assert_uint_eq(adapter_count_layer(ops, &cfg, d_out, d_in), want);
                setup(&m, &a, &cfg, d_out, d_in);
                ck_assert_uint_eq(a.n_params, want);
                ck_assert_uint_eq(adapter_n_trainable(&m, d_out, d_in), want);
                nt = adapter_tensors(&a, false, t, 4);
                for (size_t i = 0; i < nt; i++) {
                    ck_assert_ptr_eq(t[i].data, a.params + sum);   /* contiguous, in order */
                    sum += t[i].n;
                }
                ck_assert_uint_eq(sum, want);
                teardown(&m, &a);
            }
}
END_TEST

/* peft's MetaMathQA benchmark: Llama-3.2-3B, q_proj 3072x3072 and v_proj
 * 1024x3072, 28 layers (methods.md 1, 2, 3.7) */
START_TEST(test_peft_benchmark_counts)
{
    struct adapter_shape llama[56];
    struct adapter_cfg cfg;
    size_t r, count;

    for (size_t l = 0; l < 28; l++) {
        llama[2 * l] = (struct adapter_shape){ 3072, 3072 };
        llama[2 * l + 1] = (struct adapter_shape){ 1024, 3072 };
    }
    adapter_cfg_defaults(&cfg, "lora", 32);
    ck_assert_uint_eq(adapter_count(&lora_ops, &cfg, llama, 56), 9175040);
    adapter_cfg_defaults(&cfg, "vera", 256);
    ck_assert_uint_eq(adapter_count(&vera_ops, &cfg, llama, 56), 129024);
    adapter_cfg_defaults(&cfg, "randlora", 32);
    ck_assert_uint_eq(adapter_count(&randlora_ops, &cfg, llama, 56), 9289728);
    /* the paper's n rule: n = floor(d/r) + 1 -> 28 (97*3104 + 33*1056) */
    adapter_cfg_profile(&cfg, "paper");
    ck_assert_uint_eq(adapter_count(&randlora_ops, &cfg, llama, 56), 28u * (97 * 3104 + 33 * 1056));
    /* shared frozen: VeRA r (max_in + max_out); RandLoRA r min + max ceil(min/r) r */
    adapter_cfg_defaults(&cfg, "vera", 256);
    ck_assert_uint_eq(adapter_count_shared(&vera_ops, &cfg, llama, 56), 256u * (3072 + 3072));
    adapter_cfg_defaults(&cfg, "randlora", 32);
    ck_assert_uint_eq(adapter_count_shared(&randlora_ops, &cfg, llama, 56),
                      32u * 3072 + 3072u * 96 * 32);

    /* budget matching recovers the ranks */
    adapter_cfg_defaults(&cfg, "lora", 8);
    ck_assert_int_eq(adapter_match_budget(&lora_ops, &cfg, llama, 56, 9175040, &r, &count), RL_OK);
    ck_assert_uint_eq(r, 32);
    ck_assert_uint_eq(count, 9175040);
    ck_assert_int_eq(adapter_match_budget(&lora_ops, &cfg, llama, 56, 9175040 + 100000, &r, &count),
                     RL_OK);
    ck_assert_uint_eq(r, 32);                            /* r=33 is 286720 further away */
    adapter_cfg_defaults(&cfg, "vera", 8);
    ck_assert_int_eq(adapter_match_budget(&vera_ops, &cfg, llama, 56, 129024, &r, &count), RL_OK);
    ck_assert_uint_eq(r, 256);
    ck_assert_uint_eq(count, 129024);
    adapter_cfg_defaults(&cfg, "randlora", 8);
    ck_assert_int_eq(adapter_match_budget(&randlora_ops, &cfg, llama, 56, 9289728, &r, &count),
                     RL_OK);
    ck_assert_uint_eq(r, 32);
    ck_assert_uint_eq(count, 9289728);
    /* a budget below every count picks the smallest: LoRA r = 1 */
    ck_assert_int_eq(adapter_match_budget(&lora_ops, &cfg, llama, 56, 1, &r, &count), RL_OK);
    ck_assert_uint_eq(r, 1);
    ck_assert_uint_eq(count, 28u * (6144 + 4096));
    /* no rank to match for full */
    ck_assert_int_eq(adapter_match_budget(&full_ops, &cfg, llama, 56, 1000, &r, &count),
                     RL_ERR_ARG);
}
END_TEST

/* `randlora params` prints peft's three benchmark counts exactly and refuses
 * bad usage with exit status 2 (stdout captured into a temporary file) */
static int run_params(char *out, size_t cap, size_t *err_lines, const char *const *args, int n)
{
    char *argv[16], err[1024];
    FILE *tmp = tmpfile(), *etmp = tmpfile();
    int saved, esaved, rc;
    size_t len;

    ck_assert_ptr_nonnull(tmp);
    ck_assert_ptr_nonnull(etmp);
    ck_assert_int_le(n, 15);
    argv[0] = "params";
    for (int i = 0; i < n; i++)
        argv[i + 1] = (char *)args[i];
    fflush(stdout);
    fflush(stderr);
    saved = dup(fileno(stdout));
    esaved = dup(fileno(stderr));
    dup2(fileno(tmp), fileno(stdout));
    dup2(fileno(etmp), fileno(stderr));
    rc = cmd_params(n + 1, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(saved, fileno(stdout));
    dup2(esaved, fileno(stderr));
    close(saved);
    close(esaved);
    rewind(tmp);
    len = fread(out, 1, cap - 1, tmp);
    out[len] = '\0';
    rewind(etmp);
    len = fread(err, 1, sizeof(err) - 1, etmp);
    err[len] = '\0';
    *err_lines = 0;
    for (size_t i = 0; i < len; i++)
        *err_lines += err[i] == '\n';
    fclose(tmp);
    fclose(etmp);
    return rc;
}

START_TEST(test_cmd_params)
{
    static const struct { const char *method, *rank, *want; } c[] = {
        { "lora", "32", "9175040\n" },
        { "vera", "256", "129024\n" },
        { "randlora", "32", "9289728\n" },
    };
    char out[4096];
    size_t el;

    for (size_t i = 0; i < 3; i++) {
        const char *args[] = { "--method", c[i].method, "--rank", c[i].rank, "--shape",
                               "3072x3072", "--shape", "1024x3072", "--repeat", "28", "--count" };

        ck_assert_int_eq(run_params(out, sizeof(out), &el, args, 11), 0);
        ck_assert_str_eq(out, c[i].want);
    }
    {
        const char *args[] = { "--method", "lora", "--budget", "9175040", "--shape", "3072x3072",
                               "--shape", "1024x3072", "--repeat", "28", "--count" };

        ck_assert_int_eq(run_params(out, sizeof(out), &el, args, 11), 0);
        ck_assert_str_eq(out, "32 9175040\n");
    }
    {
        const char *a1[] = { "--method", "lora", "--shape", "8x8" };            /* no rank */
        const char *a2[] = { "--method", "lora", "--rank", "9", "--shape", "8x8" };
        const char *a3[] = { "--method", "lora", "--rank", "2", "--shape", "8*8" };
        const char *a4[] = { "--method", "qlora", "--rank", "2", "--shape", "8x8" };

        ck_assert_int_eq(run_params(out, sizeof(out), &el, a1, 4), 2);
        ck_assert_uint_eq(el, 1);                                   /* one line */
        ck_assert_int_eq(run_params(out, sizeof(out), &el, a2, 6), 2);
        ck_assert_uint_eq(el, 1);                                   /* one line */
        ck_assert_int_eq(run_params(out, sizeof(out), &el, a3, 6), 2);
        ck_assert_uint_eq(el, 1);                                   /* one line */
        ck_assert_int_eq(run_params(out, sizeof(out), &el, a4, 6), 2);
        ck_assert_uint_eq(el, 1);                                   /* one line */
        ck_assert_str_eq(out, "");                                          /* nothing on stdout */
    }
}
END_TEST

/* ------------------------------------------------------------------------ */
/* rank properties                                                           */

/* singular values below this fraction of the largest count as zero: float32
 * round-off in a rank-r product sits near 3e-8 of it, while the smallest
 * singular value of a random full-rank dW here is above 1e-5 */
#define RANK_RTOL 1e-6

/* numerical rank of a (m, n) float matrix: one-sided Jacobi SVD in double,
 * singular values above rtol * the largest */
static size_t numerical_rank(const float *a, size_t m, size_t n, double rtol)
{
    double *u = xmalloc_array(m * n, sizeof(double)), smax = 0.0;
    size_t rank = 0;

    for (size_t i = 0; i < m * n; i++)
        u[i] = a[i];
    for (int sweep = 0; sweep < 60; sweep++) {
        double off = 0.0;

        for (size_t p = 0; p + 1 < n; p++)
            for (size_t q = p + 1; q < n; q++) {
                double al = 0.0, be = 0.0, ga = 0.0, zeta, t, c, sn;

                for (size_t i = 0; i < m; i++) {
                    al += u[i * n + p] * u[i * n + p];
                    be += u[i * n + q] * u[i * n + q];
                    ga += u[i * n + p] * u[i * n + q];
                }
                if (ga == 0.0 || fabs(ga) <= 1e-15 * sqrt(al * be))
                    continue;
                off = fmax(off, fabs(ga) / sqrt(al * be));
                zeta = (be - al) / (2.0 * ga);
                t = (zeta >= 0 ? 1.0 : -1.0) / (fabs(zeta) + sqrt(1.0 + zeta * zeta));
                c = 1.0 / sqrt(1.0 + t * t);
                sn = c * t;
                for (size_t i = 0; i < m; i++) {
                    double up = u[i * n + p], uq = u[i * n + q];

                    u[i * n + p] = c * up - sn * uq;
                    u[i * n + q] = sn * up + c * uq;
                }
            }
        if (off < 1e-13)
            break;
    }
    for (size_t j = 0; j < n; j++) {
        double s = 0.0;

        for (size_t i = 0; i < m; i++)
            s += u[i * n + j] * u[i * n + j];
        u[j] = sqrt(s);     /* column norms = singular values; reuse row 0 */
        smax = fmax(smax, u[j]);
    }
    for (size_t j = 0; j < n; j++)
        if (u[j] > rtol * smax)
            rank++;
    free(u);
    return rank;
}

/* RandLoRA's dW has a zero column (case 1) or row (case 2) j wherever the
 * shared A[:, j] is all zero, which sparse bases make likely at small r:
 * P(A[:, j] = 0) = (1 - 1/s)^r, e.g. (2/3)^3 = 0.30. The rank it can reach
 * is the number of live columns among the first d. */
static size_t randlora_live_columns(struct adapter_method *m, size_t d)
{
    struct adapter_tensor t[2];
    size_t live = 0;

    ck_assert_uint_eq(adapter_method_tensors(m, t, 2), 2);
    ck_assert_str_eq(t[0].name, "randlora_A");
    for (size_t j = 0; j < d; j++) {
        bool nz = false;

        for (size_t k = 0; k < t[0].shape[0]; k++)
            nz = nz || t[0].data[k * t[0].shape[2] + j] != 0.0f;
        live += nz;
    }
    return live;
}

/* the rank dW reaches for generic parameters (independent of max_rank) */
static size_t expected_rank(struct adapter_method *m, const char *name, size_t r, size_t d_out,
                            size_t d_in)
{
    size_t d = d_out < d_in ? d_out : d_in;

    if (!strcmp(name, "lora") || !strcmp(name, "vera") || !strcmp(name, "nola"))
        return r < d ? r : d;
    if (!strcmp(name, "randlora"))
        return randlora_live_columns(m, d);     /* n r >= d under both n rules */
    if (!strcmp(name, "full"))
        return d;
    if (!strcmp(name, "none"))
        return 0;
    ck_abort_msg("no expected rank in the test for method '%s': add one", name);
    return 0;
}

START_TEST(test_rank_validator)
{
    /* the validator itself: a known rank-2 matrix and a full-rank one */
    float a[4 * 5], b[4 * 5];
    struct rng g;

    rng_init(&g, 3);
    for (size_t i = 0; i < 4; i++)
        for (size_t j = 0; j < 5; j++) {
            a[i * 5 + j] = (float)(i + 1) * (float)j + (float)(j == 2) * (float)(i * i);
            b[i * 5 + j] = rng_normal(&g);
        }
    ck_assert_uint_eq(numerical_rank(a, 4, 5, RANK_RTOL), 2);
    ck_assert_uint_eq(numerical_rank(b, 4, 5, RANK_RTOL), 4);
}
END_TEST

START_TEST(test_adapter_rank)
{
    const struct adapter_ops *ops = registry_at(_i);
    struct rng g;

    rng_init(&g, 5);
    for (size_t v = 0; v < N_VARIANTS; v++)
        for (size_t s = 0; s < N_SHAPES; s++) {
            struct adapter_cfg cfg;
            struct adapter_method m;
            struct adapter a;
            size_t d_out = shapes[s].d_out, d_in = shapes[s].d_in, rank, want;
            float *dw = test_zeros(d_out * d_in);

            make_cfg(&cfg, ops, &variants[v], RANK);
            setup(&m, &a, &cfg, d_out, d_in);
            randomize_params(&a, &g, 1.0f);             /* random nonzero Lambda, Gamma, ... */
            adapter_delta_weight(&a, dw);
            rank = numerical_rank(dw, d_out, d_in, RANK_RTOL);
            want = expected_rank(&m, ops->name, RANK, d_out, d_in);
            ck_assert_msg(rank == want, "%s %s %zux%zu: rank %zu, expected %zu", ops->name,
                          variants[v].label, d_out, d_in, rank, want);
            if (variants[v].basis == ADAPTER_BASIS_DENSE || strcmp(ops->name, "randlora"))
                ck_assert_uint_eq(ops->max_rank(&cfg, d_out, d_in), want);
            free(dw);
            teardown(&m, &a);
        }
}
END_TEST

/* RandLoRA reaches full rank min(d_in, d_out) with random nonzero Lambda and
 * Gamma, dense and sparse, in both orientations, once r is large enough for
 * every column of the sparse A to be live ((2/3)^16 * 24 ~ 4% otherwise; the
 * seed is fixed). */
START_TEST(test_randlora_full_rank)
{
    static const struct { size_t d_out, d_in, r; enum adapter_basis basis; const char *prof; } c[] = {
        { 40, 24, 16, ADAPTER_BASIS_SPARSE, "peft" },
        { 24, 40, 16, ADAPTER_BASIS_SPARSE, "paper" },
        { 24, 40, 5, ADAPTER_BASIS_DENSE, "peft" },    /* n = 5, nr = 25 >= 24 */
        { 28, 20, 7, ADAPTER_BASIS_DENSE, "paper" },   /* n = 3, nr = 21 */
        { 30, 30, 1, ADAPTER_BASIS_DENSE, "peft" },    /* 30 rank-1 bases */
    };
    struct rng g;

    rng_init(&g, 17);
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        struct adapter_cfg cfg;
        struct adapter_method m;
        struct adapter a;
        size_t d = c[i].d_out < c[i].d_in ? c[i].d_out : c[i].d_in, rank;
        float *dw = test_zeros(c[i].d_out * c[i].d_in);

        adapter_cfg_defaults(&cfg, "randlora", c[i].r);
        adapter_cfg_profile(&cfg, c[i].prof);
        cfg.basis = c[i].basis;
        cfg.seed = 3;
        setup(&m, &a, &cfg, c[i].d_out, c[i].d_in);
        ck_assert_uint_eq(randlora_live_columns(&m, d), d);
        randomize_params(&a, &g, 1.0f);
        adapter_delta_weight(&a, dw);
        rank = numerical_rank(dw, c[i].d_out, c[i].d_in, RANK_RTOL);
        ck_assert_msg(rank == d, "randlora %zux%zu r %zu: rank %zu of %zu", c[i].d_out,
                      c[i].d_in, c[i].r, rank, d);
        free(dw);
        teardown(&m, &a);
    }
}
END_TEST

/* ------------------------------------------------------------------------ */
/* failed init: RL_ERR_ARG, a freed object, nothing leaked (ASan)            */

START_TEST(test_adapter_free_after_failed_init)
{
    const struct adapter_ops *ops = registry_at(_i);
    bool ranked = ops->flags & ADAPTER_F_RANK;
    bool rank_le = !strcmp(ops->name, "lora") || !strcmp(ops->name, "randlora");
    struct adapter_cfg cfg;
    struct adapter_method m;
    struct adapter a;
    int rc;

    /* rank 0 */
    adapter_cfg_defaults(&cfg, ops->name, 0);
    rc = adapter_method_init(&m, &cfg, 8, 8, 4);
    ck_assert_int_eq(rc, ranked ? RL_ERR_ARG : RL_OK);
    if (ranked)
        ck_assert_ptr_null(m.priv);
    adapter_method_free(&m);
    adapter_method_free(&m);                            /* twice is fine: zeroed */

    /* dropout out of range */
    adapter_cfg_defaults(&cfg, ops->name, 2);
    cfg.dropout = 1.0f;
    ck_assert_int_eq(adapter_method_init(&m, &cfg, 8, 8, 4), RL_ERR_ARG);
    adapter_method_free(&m);

    /* rank above the layer: LoRA and RandLoRA refuse, the others accept */
    adapter_cfg_defaults(&cfg, ops->name, 9);
    ck_assert_int_eq(adapter_method_init(&m, &cfg, 16, 16, 4), RL_OK);
    rc = adapter_init(&a, &m, 8, 12, NULL, NULL);
    ck_assert_int_eq(rc, rank_le ? RL_ERR_ARG : RL_OK);
    if (rc)
        ck_assert_msg(strstr(rl_error_msg(), "rank 9") != NULL, "%s", rl_error_msg());
    adapter_free(&a);
    adapter_free(&a);
    /* a layer larger than the method's maximum */
    rc = adapter_init(&a, &m, 17, 4, NULL, NULL);
    ck_assert_int_eq(rc, RL_ERR_ARG);
    ck_assert_ptr_null(a.params);
    adapter_free(&a);
    /* zero-size layer */
    ck_assert_int_eq(adapter_init(&a, &m, 0, 4, NULL, NULL), RL_ERR_ARG);
    adapter_free(&a);
    /* and a good one after the failures */
    ck_assert_int_eq(adapter_init(&a, &m, 12, 16, NULL, NULL), RL_OK);
    adapter_free(&a);
    adapter_method_free(&m);

    /* zero maxima */
    adapter_cfg_defaults(&cfg, ops->name, 2);
    ck_assert_int_eq(adapter_method_init(&m, &cfg, 8, 8, 0), RL_ERR_ARG);
    adapter_method_free(&m);
}
END_TEST

START_TEST(test_registry_and_config)
{
    const struct adapter_ops *const *reg = adapter_registry();
    struct adapter_cfg cfg;
    struct adapter_method m;
    enum adapter_basis b;
    size_t n = 0;

    for (; reg[n]; n++) {
        ck_assert_ptr_eq(adapter_ops_find(reg[n]->name), reg[n]);
        ck_assert_int_eq(reg[n]->api_version, ADAPTER_API_VERSION);
        ck_assert_ptr_nonnull(reg[n]->n_trainable);
        ck_assert_ptr_nonnull(reg[n]->forward);
        ck_assert_ptr_nonnull(reg[n]->backward);
        ck_assert_ptr_nonnull(reg[n]->add_delta);
        ck_assert_ptr_nonnull(reg[n]->project_grad);
        ck_assert_ptr_nonnull(reg[n]->flops);
    }
    ck_assert_uint_eq(n, adapter_registry_size());
    ck_assert_uint_eq(n, 6);
    ck_assert_ptr_null(adapter_ops_find("dora"));
    ck_assert_ptr_null(adapter_ops_find(NULL));

    adapter_cfg_defaults(&cfg, "dora", 4);
    ck_assert_int_eq(adapter_method_init(&m, &cfg, 8, 8, 4), RL_ERR_ARG);
    ck_assert_msg(strstr(rl_error_msg(), "dora") != NULL, "%s", rl_error_msg());
    adapter_method_free(&m);

    ck_assert_int_eq(adapter_cfg_profile(&cfg, "paperr"), RL_ERR_ARG);
    ck_assert_int_eq(adapter_basis_parse("very_sparse", &b), RL_OK);
    ck_assert_int_eq(b, ADAPTER_BASIS_VERY_SPARSE);
    ck_assert_int_eq(adapter_basis_parse("dense ", &b), RL_ERR_ARG);

    /* scalings: LoRA alpha 8 (peft default) / r, rsLoRA alpha / sqrt r;
     * RandLoRA peft 20 r / r = 20, fork alpha / (r sqrt n), paper 1/r */
    adapter_cfg_defaults(&cfg, "lora", 4);
    ck_assert_float_eq(lora_scaling(&cfg), 2.0f);
    cfg.rslora = true;
    ck_assert_float_eq(lora_scaling(&cfg), 4.0f);
    adapter_cfg_defaults(&cfg, "randlora", 32);
    ck_assert_float_eq(randlora_scaling(&cfg, 96), 20.0f);
    cfg.alpha = 64.0f;
    cfg.scaling = ADAPTER_SCALE_ALPHA_R_SQRT_N;
    ck_assert_float_eq_tol(randlora_scaling(&cfg, 16), 0.5f, 1e-7f);
    adapter_cfg_profile(&cfg, "paper");
    ck_assert_float_eq(randlora_scaling(&cfg, 16), 1.0f / 32.0f);
    /* n rules */
    ck_assert_uint_eq(randlora_n_bases(&cfg, 1024, 3072), 33);      /* floor + 1 */
    ck_assert_uint_eq(randlora_n_bases(&cfg, 1000, 1001), 32);
    cfg.r = 1;
    ck_assert_uint_eq(randlora_n_bases(&cfg, 4096, 4096), 1000);    /* the vision cap */
    adapter_cfg_profile(&cfg, "peft");
    cfg.r = 32;
    ck_assert_uint_eq(randlora_n_bases(&cfg, 1024, 3072), 32);      /* ceil */
    ck_assert_uint_eq(randlora_n_bases(&cfg, 1000, 1001), 32);
    ck_assert_uint_eq(randlora_n_bases(&cfg, 1025, 1025), 33);
}
END_TEST

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
    ma = max_abs(t[0].data, t[0].n);
    mb = max_abs(t[1].data, t[1].n);
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
    ck_assert_double_le(max_abs(t[0].data, t[0].n), 1.0 / sqrt(25.0));
    ck_assert_double_gt(max_abs(t[0].data, t[0].n), 0.9 / sqrt(25.0));
    ck_assert_double_eq(max_abs(t[1].data, t[1].n), 0.0);
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
    randomize_params(&a, &g, 1.0f);
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
        tol = 1e-5 * (1.0 + max_abs(want, N * d_out));
        fails += tensor_compare("y", y, want, N * d_out, tol, 1e-5);
        want = gget(cs, "dx", N * d_in);
        tol = 1e-5 * (1.0 + max_abs(want, N * d_in));
        fails += tensor_compare("dx", dx, want, N * d_in, tol, 1e-5);
        want = gget(cs, "delta", d_out * d_in);
        tol = 1e-5 * (1.0 + max_abs(want, d_out * d_in));
        fails += tensor_compare("delta", dw, want, d_out * d_in, tol, 1e-5);
        for (size_t t = 0; t < nt; t++) {
            char what[96];

            snprintf(what, sizeof(what), "grad.%s", tg[t].name);
            want = gget(cs, what, tg[t].n);
            tol = 1e-5 * (1.0 + max_abs(want, tg[t].n));
            fails += tensor_compare(what, tg[t].data, want, tg[t].n, tol, 1e-5);
        }
    }
    ck_assert_msg(fails == 0, "%s: %zu values differ from the PyTorch golden", cs, fails);
    free(y);
    free(dx);
    free(dw);
    teardown(&m, &a);
}
END_TEST

Suite *suite_adapters(void)
{
    Suite *s = suite_create("adapters");
    TCase *tc = tcase_create("conformance");
    TCase *tm = tcase_create("methods");
    TCase *tgold = tcase_create("golden");
    int n = (int)adapter_registry_size();

    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_registry_and_config);
    tcase_add_loop_test(tc, test_adapter_gradcheck, 0, n);
    tcase_add_loop_test(tc, test_adapter_identity_at_init, 0, n);
    tcase_add_loop_test(tc, test_adapter_merge_and_paths, 0, n);
    tcase_add_loop_test(tc, test_adapter_param_count, 0, n);
    tcase_add_test(tc, test_rank_validator);
    tcase_add_loop_test(tc, test_adapter_rank, 0, n);
    tcase_add_test(tc, test_randlora_full_rank);
    tcase_add_loop_test(tc, test_adapter_free_after_failed_init, 0, n);
    suite_add_tcase(s, tc);

    tcase_add_test(tm, test_peft_benchmark_counts);
    tcase_add_test(tm, test_cmd_params);
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
