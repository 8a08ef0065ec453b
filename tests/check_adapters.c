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
 *   failed_init     bad rank / size / name: RL_ERR_ARG, and free is safe
 *                   (leaks show under `make SAN=1`)
 *   registry        the registry and the configuration helpers
 * Counts and ranks are in check_adapter_counts.c, the shared bases, the path
 * choice, dropout and the PyTorch golden file in check_adapter_methods.c;
 * adapter_harness.h holds the variants and shapes all three run with.
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
    const struct adapter_ops *ops = adapter_test_ops(_i);
    struct rng g;

    rng_init(&g, 42 + (uint64_t)_i);
    for (size_t v = 0; v < N_VARIANTS; v++)
        for (size_t s = 0; s < N_SHAPES; s++) {
            struct adapter_cfg cfg;
            struct adapter_method m;
            struct adapter a;
            struct adapter_tensor tp[4], tg[4];
            size_t d_out = adapter_test_shapes[s].d_out, d_in = adapter_test_shapes[s].d_in, nt, fails = 0;
            float *x, *R, *y, *dx, *dx2, *gsave;
            struct gc_ctx c;

            adapter_test_cfg(&cfg, ops, &adapter_test_variants[v], RANK);
            adapter_test_setup(&m, &a, &cfg, d_out, d_in);
            adapter_test_randomize(&a, &g, 0.5f);
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
                         adapter_test_variants[v].label, d_out, d_in, tp[t].name);
                fails += gradcheck(name, tp[t].data, tg[t].data, tp[t].n, gc_loss, &c,
                                   0.1f, 2e-3, 2e-3, 64);
            }
            {
                char name[96];

                snprintf(name, sizeof(name), "%s[%s %zux%zu].x", ops->name,
                         adapter_test_variants[v].label, d_out, d_in);
                fails += gradcheck(name, x, dx, N_ROWS * d_in, gc_loss, &c, 0.1f, 2e-3, 2e-3, 64);
            }
            ck_assert_msg(fails == 0, "%s %s %zux%zu: %zu gradient probes differ", ops->name,
                          adapter_test_variants[v].label, d_out, d_in, fails);

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
            adapter_test_teardown(&m, &a);
        }
}
END_TEST

/* ------------------------------------------------------------------------ */
/* identity at init                                                          */

START_TEST(test_adapter_identity_at_init)
{
    const struct adapter_ops *ops = adapter_test_ops(_i);
    struct rng g;

    if (ops->flags & ADAPTER_F_INIT_NONZERO)
        return;                         /* NoLA starts at dW != 0: check_nola.c */
    rng_init(&g, 7);
    for (size_t v = 0; v < N_VARIANTS; v++)
        for (size_t s = 0; s < N_SHAPES; s++) {
            struct adapter_cfg cfg;
            struct adapter_method m;
            struct adapter a;
            size_t d_out = adapter_test_shapes[s].d_out, d_in = adapter_test_shapes[s].d_in;
            float *x, *y, *y0, *dw, *dx;

            adapter_test_cfg(&cfg, ops, &adapter_test_variants[v], RANK);
            adapter_test_setup(&m, &a, &cfg, d_out, d_in);
            x = test_randn(&g, N_ROWS * d_in, 1.0f);
            y = test_randn(&g, N_ROWS * d_out, 1.0f);
            y0 = test_copy(y, N_ROWS * d_out);
            dw = test_randn(&g, d_out * d_in, 1.0f);
            dx = test_zeros(N_ROWS * d_in);

            adapter_forward(&a, x, y, N_ROWS);          /* training mode, as in step 0 */
            ck_assert_int_eq(tensor_compare("y at init", y, y0, N_ROWS * d_out, 0.0, 0.0), 0);
            adapter_backward(&a, x, y0, dx, N_ROWS);
            ck_assert_double_eq(test_max_abs(dx, N_ROWS * d_in), 0.0);
            adapter_delta_weight(&a, dw);
            ck_assert_double_eq(test_max_abs(dw, d_out * d_in), 0.0);
            free(x);
            free(y);
            free(y0);
            free(dw);
            free(dx);
            adapter_test_teardown(&m, &a);
        }
}
END_TEST

/* ------------------------------------------------------------------------ */
/* merge == unmerged, factored path == merged path                           */

START_TEST(test_adapter_merge_and_paths)
{
    const struct adapter_ops *ops = adapter_test_ops(_i);
    struct rng g;

    rng_init(&g, 99);
    for (size_t v = 0; v < N_VARIANTS; v++)
        for (size_t s = 0; s < N_SHAPES; s++) {
            struct adapter_cfg cfg;
            struct adapter_method m;
            struct adapter a;
            size_t d_out = adapter_test_shapes[s].d_out, d_in = adapter_test_shapes[s].d_in, nw = d_out * d_in;
            size_t ny = N_ROWS * d_out, nx = N_ROWS * d_in, np;
            float *W, *Wm, *x, *G, *y1, *y2, *dx1, *dx2, *gw, *grads_f, *dw;
            double tol;

            adapter_test_cfg(&cfg, ops, &adapter_test_variants[v], RANK);
            adapter_test_setup(&m, &a, &cfg, d_out, d_in);
            adapter_set_training(&a, false);            /* merged == unmerged in eval */
            adapter_test_randomize(&a, &g, 0.5f);
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
            tol = 1e-5 * (1.0 + test_max_abs(y1, ny));
            ck_assert_int_eq(tensor_compare("y merged vs unmerged", y2, y1, ny, tol, 1e-5), 0);
            naive_gw(dx2, G, Wm, N_ROWS, d_in, d_out);
            tol = 1e-5 * (1.0 + test_max_abs(dx1, nx));
            ck_assert_int_eq(tensor_compare("dx merged vs factored", dx2, dx1, nx, tol, 1e-5), 0);
            naive_gtx(gw, G, x, N_ROWS, d_in, d_out);
            if (np) {
                memset(a.grads, 0, np * sizeof(float));
                adapter_project_grad(&a, gw);
                tol = 1e-5 * (1.0 + test_max_abs(grads_f, np));
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
            tol = 1e-6 * (1.0 + test_max_abs(dw, nw));
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
            adapter_test_teardown(&m, &a);
        }
}
END_TEST

/* ------------------------------------------------------------------------ */
/* failed init: RL_ERR_ARG, a freed object, nothing leaked (ASan)            */

START_TEST(test_adapter_free_after_failed_init)
{
    const struct adapter_ops *ops = adapter_test_ops(_i);
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

Suite *suite_adapters(void)
{
    Suite *s = suite_create("adapters");
    TCase *tc = tcase_create("conformance");
    int n = (int)adapter_registry_size();

    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_registry_and_config);
    tcase_add_loop_test(tc, test_adapter_gradcheck, 0, n);
    tcase_add_loop_test(tc, test_adapter_identity_at_init, 0, n);
    tcase_add_loop_test(tc, test_adapter_merge_and_paths, 0, n);
    tcase_add_loop_test(tc, test_adapter_free_after_failed_init, 0, n);
    suite_add_tcase(s, tc);
    return s;
}
