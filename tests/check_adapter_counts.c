/*
 * check_adapter_counts.c: what each registered method costs and can express:
 *
 *   count           n_trainable == a closed form written here independently
 *   peft            peft's published benchmark counts, budget matching and
 *                   `randlora params`
 *   rank            rank(dW) for random parameters: LoRA, VeRA min(r, d);
 *                   RandLoRA min(d_in, d_out) (dense, sparse, very sparse);
 *                   full min(d_in, d_out); none 0 (one-sided Jacobi SVD)
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
#include "run_files.h"
#include "suites.h"
#include "test_cmd.h"
#include "test_util.h"

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
    const struct adapter_ops *ops = adapter_test_ops(_i);
    static const size_t ranks[] = { 1, 3, 5, 12 };

    for (size_t v = 0; v < N_VARIANTS; v++)
        for (size_t s = 0; s < N_SHAPES; s++)
            for (size_t k = 0; k < sizeof(ranks) / sizeof(ranks[0]); k++) {
                struct adapter_cfg cfg;
                struct adapter_method m;
                struct adapter a;
                struct adapter_tensor t[4];
                size_t d_out = adapter_test_shapes[s].d_out, d_in = adapter_test_shapes[s].d_in, want, sum = 0, nt;

                adapter_test_cfg(&cfg, ops, &adapter_test_variants[v], ranks[k]);
                want = expected_count(ops->name, &cfg, d_out, d_in);
                ck_assert_uint_eq(adapter_count_layer(ops, &cfg, d_out, d_in), want);
                adapter_test_setup(&m, &a, &cfg, d_out, d_in);
                ck_assert_uint_eq(a.n_params, want);
                ck_assert_uint_eq(adapter_n_trainable(&m, d_out, d_in), want);
                nt = adapter_tensors(&a, false, t, 4);
                for (size_t i = 0; i < nt; i++) {
                    ck_assert_ptr_eq(t[i].data, a.params + sum);   /* contiguous, in order */
                    sum += t[i].n;
                }
                ck_assert_uint_eq(sum, want);
                adapter_test_teardown(&m, &a);
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
    const char *argv[16];
    char dir[256], *text, *err;
    int rc;

    ck_assert_int_le(n, 14);
    ck_assert_ptr_nonnull(test_tmpdir_make(dir, sizeof(dir), "params"));
    argv[0] = "params";
    for (int i = 0; i < n; i++)
        argv[i + 1] = args[i];
    argv[n + 1] = NULL;
    rc = run_files_cmd_captured(cmd_params, n + 1, argv, test_path(dir, "out"),
                                test_path(dir, "err"));
    text = test_slurp(test_path(dir, "out"), NULL);
    err = test_slurp(test_path(dir, "err"), NULL);
    snprintf(out, cap, "%s", text);
    *err_lines = 0;
    for (const char *p = err; *p; p++)
        *err_lines += *p == '\n';
    free(text);
    free(err);
    test_tmpdir_remove(dir);
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
    const struct adapter_ops *ops = adapter_test_ops(_i);
    struct rng g;

    rng_init(&g, 5);
    for (size_t v = 0; v < N_VARIANTS; v++)
        for (size_t s = 0; s < N_SHAPES; s++) {
            struct adapter_cfg cfg;
            struct adapter_method m;
            struct adapter a;
            size_t d_out = adapter_test_shapes[s].d_out, d_in = adapter_test_shapes[s].d_in, rank, want;
            float *dw = test_zeros(d_out * d_in);

            adapter_test_cfg(&cfg, ops, &adapter_test_variants[v], RANK);
            adapter_test_setup(&m, &a, &cfg, d_out, d_in);
            adapter_test_randomize(&a, &g, 1.0f);             /* random nonzero Lambda, Gamma, ... */
            adapter_delta_weight(&a, dw);
            rank = numerical_rank(dw, d_out, d_in, RANK_RTOL);
            want = expected_rank(&m, ops->name, RANK, d_out, d_in);
            ck_assert_msg(rank == want, "%s %s %zux%zu: rank %zu, expected %zu", ops->name,
                          adapter_test_variants[v].label, d_out, d_in, rank, want);
            if (adapter_test_variants[v].basis == ADAPTER_BASIS_DENSE || strcmp(ops->name, "randlora"))
                ck_assert_uint_eq(ops->max_rank(&cfg, d_out, d_in), want);
            free(dw);
            adapter_test_teardown(&m, &a);
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
        adapter_test_setup(&m, &a, &cfg, c[i].d_out, c[i].d_in);
        ck_assert_uint_eq(randlora_live_columns(&m, d), d);
        adapter_test_randomize(&a, &g, 1.0f);
        adapter_delta_weight(&a, dw);
        rank = numerical_rank(dw, c[i].d_out, c[i].d_in, RANK_RTOL);
        ck_assert_msg(rank == d, "randlora %zux%zu r %zu: rank %zu of %zu", c[i].d_out,
                      c[i].d_in, c[i].r, rank, d);
        free(dw);
        adapter_test_teardown(&m, &a);
    }
}
END_TEST

Suite *suite_adapter_counts(void)
{
    Suite *s = suite_create("adapter_counts");
    TCase *tc = tcase_create("counts");
    int n = (int)adapter_registry_size();

    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, test_adapter_param_count, 0, n);
    tcase_add_test(tc, test_rank_validator);
    tcase_add_loop_test(tc, test_adapter_rank, 0, n);
    tcase_add_test(tc, test_randlora_full_rank);
    tcase_add_test(tc, test_peft_benchmark_counts);
    tcase_add_test(tc, test_cmd_params);
    suite_add_tcase(s, tc);
    return s;
}
