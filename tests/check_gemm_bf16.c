/*
 * check_gemm_bf16.c: bf16 conversions (core/bf16.h) and the oneDNN bf16
 * GEMM (core/gemm_bf16.h).
 *
 * bf16 products are not bit-exact against fp32, so each element is checked
 * against a double-precision reference within the bound rounding predicts
 * for that element (derived in gemm_bound below and in core/gemm_bf16.h),
 * not a loose constant. On a CPU without AVX512-BF16 or AMX the GEMM tests
 * print why they skip and pass; the conversion, argument and refusal tests
 * run everywhere. The last tests check the frozen linear's bf16 path
 * (models/block_linear.c) the same way.
 */
#include <dnnl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/bf16.h"
#include "core/gemm_bf16.h"
#include "core/rng.h"
#include "core/status.h"
#include "models/block_impl.h"
#include "models/nn.h"
#include "suites.h"
#include "test_util.h"

static uint32_t f32_bits(float x)
{
    return bf16_f32_bits(x);
}

static float f32_from_bits(uint32_t u)
{
    float x;

    memcpy(&x, &u, sizeof(x));
    return x;
}

/* ---- conversions ---- */

/* exact cases: ties to even both ways, just off the tie, signs, zero,
 * Inf, overflow to Inf, NaN payloads that truncation would turn into Inf */
START_TEST(test_bf16_rounding_known)
{
    static const struct { uint32_t in; uint16_t out; } cases[] = {
        { 0x3f800000u, 0x3f80 },   /* 1.0: exact                                */
        { 0x3f808000u, 0x3f80 },   /* 1 + 2^-8: tie, 0x3f80 even: down          */
        { 0x3f818000u, 0x3f82 },   /* tie between 0x3f81 and 0x3f82: up to even */
        { 0x3f808001u, 0x3f81 },   /* just above the tie: up                    */
        { 0x3f807fffu, 0x3f80 },   /* just below the tie: down                  */
        { 0xbf818000u, 0xbf82 },   /* negative tie: to even, sign kept          */
        { 0x80000000u, 0x8000 },   /* -0                                        */
        { 0x00000001u, 0x0000 },   /* smallest subnormal rounds to 0            */
        { 0x00018000u, 0x0002 },   /* subnormal tie to even (kept, not flushed) */
        { 0x7f800000u, 0x7f80 },   /* +Inf                                      */
        { 0xff800000u, 0xff80 },   /* -Inf                                      */
        { 0x7f7fffffu, 0x7f80 },   /* FLT_MAX: beyond the largest bf16: +Inf    */
        { 0x7f7f7fffu, 0x7f7f },   /* largest value rounding to bf16's max      */
        { 0x7fc00000u, 0x7fc0 },   /* quiet NaN                                 */
        { 0x7f800001u, 0x7fc0 },   /* signalling NaN, payload only in low bits: */
                                   /* NaN (quiet), not Inf                      */
        { 0xffffffffu, 0xffff },   /* NaN with every payload bit: no carry out  */
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint16_t got = bf16_from_f32(f32_from_bits(cases[i].in));

        ck_assert_msg(got == cases[i].out, "0x%08x -> 0x%04x, want 0x%04x",
                      (unsigned)cases[i].in, (unsigned)got, (unsigned)cases[i].out);
    }
    ck_assert(isnan(bf16_to_f32(bf16_from_f32(NAN))));
    ck_assert(isinf(bf16_to_f32(bf16_from_f32(INFINITY))));
}
END_TEST

/* every bf16 pattern survives bf16 -> fp32 -> bf16 (NaNs stay NaN), and
 * the array versions agree with the scalar ones */
START_TEST(test_bf16_round_trip_all_patterns)
{
    const size_t n = 65536;
    bf16 *h = malloc(n * sizeof(*h)), *back = malloc(n * sizeof(*back));
    float *f = malloc(n * sizeof(*f));

    for (size_t i = 0; i < n; i++)
        h[i] = (bf16)i;
    bf16_to_f32_array(f, h, n);
    bf16_from_f32_array(back, f, n);
    for (size_t i = 0; i < n; i++) {
        ck_assert_uint_eq(f32_bits(f[i]), (uint32_t)i << 16);
        if (isnan(f[i]))
            ck_assert_msg(isnan(bf16_to_f32(back[i])), "NaN 0x%04zx lost", i);
        else
            ck_assert_msg(back[i] == h[i], "0x%04zx -> 0x%04x", i, (unsigned)back[i]);
    }
    free(h); free(back); free(f);
}
END_TEST

/* random fp32 values: relative error <= 2^-8, the nearer neighbour chosen,
 * the array conversion (vectorized, parallel) equal to the scalar one */
START_TEST(test_bf16_random_nearest)
{
    const size_t n = 100003;
    struct rng r;
    float *x;
    bf16 *h = malloc(n * sizeof(*h));

    rng_init(&r, 15);
    x = test_randn(&r, n, 3.0f);
    for (size_t i = 0; i < n; i += 7)
        x[i] *= 1e-30f;                        /* tiny magnitudes too */
    bf16_from_f32_array(h, x, n);
    for (size_t i = 0; i < n; i++) {
        double got = bf16_to_f32(h[i]);
        double down = bf16_to_f32((bf16)(f32_bits(x[i]) >> 16));        /* truncation */
        double up = bf16_to_f32((bf16)((f32_bits(x[i]) >> 16) + 1));     /* next away  */
        double err = fabs(got - x[i]);

        ck_assert_uint_eq(h[i], bf16_from_f32(x[i]));
        ck_assert_msg(err <= fmin(fabs(down - x[i]), fabs(up - x[i])),
                      "x=%.9g -> %.9g not the nearest", (double)x[i], got);
        if (fabs(x[i]) > 1e-37)                /* normal range: relative bound */
            ck_assert_msg(err <= BF16_UNIT_ROUNDOFF * fabs(x[i]), "x=%.9g err %.3g",
                          (double)x[i], err);
    }
    free(x); free(h);
}
END_TEST

/* the two-term split: hi is the rounding, lo the rounding of the rest;
 * hi + lo within 2^-16 |x| (u^2) where hi alone is within 2^-8; an
 * update below half a bf16 step of 1 (2^-12) survives in lo exactly */
START_TEST(test_bf16_split)
{
    const size_t n = 100003;
    const double u = BF16_UNIT_ROUNDOFF;
    struct rng r;
    float *x, one_up[1] = { 1.0f + 0x1p-12f };
    bf16 *hi = malloc(n * sizeof(*hi)), *lo = malloc(n * sizeof(*lo));

    rng_init(&r, 16);
    x = test_randn(&r, n, 3.0f);
    bf16_split_array(hi, lo, x, n);
    for (size_t i = 0; i < n; i++) {
        const double sum = (double)bf16_to_f32(hi[i]) + bf16_to_f32(lo[i]);

        ck_assert_uint_eq(hi[i], bf16_from_f32(x[i]));
        ck_assert_msg(fabs(sum - x[i]) <= u * u * fabs(x[i]), "x=%.9g: hi + lo = %.9g",
                      (double)x[i], sum);
    }
    bf16_split_array(hi, lo, one_up, 1);
    ck_assert(bf16_to_f32(hi[0]) == 1.0f && bf16_to_f32(lo[0]) == 0x1p-12f);
    free(x); free(hi); free(lo);
}
END_TEST

/* ---- GEMM ---- */

/* true when the bf16 GEMM runs here; else prints why the test skips */
static int gemm_available(const char *test)
{
    return test_bf16_available("check_gemm_bf16", test);
}

/* B's element (k, j) in either layout */
static float b_at(const float *B, enum gemm_bf16_b_layout lay, size_t N, size_t K,
                  size_t k, size_t j)
{
    return lay == GEMM_BF16_B_NK ? B[j * K + k] : B[k * N + j];
}

/*
 * Per-element check of C = beta*C0 + A op(B) against a double reference
 * computed from A, B as given (fp32 values). With inputs_bf16 false the GEMM
 * saw A and B rounded to bf16: a' = a(1+d1), b' = b(1+d2), |d| <= u = 2^-8,
 * so |sum a'b' - sum ab| <= (2u + u^2) S, S = sum_k |a_ik b_kj|. The products
 * a'b' are exact in fp32 (8 + 8 significant bits), and the fp32 sum of the
 * K products and beta*C0 is off by at most gamma_K (|beta C0| + (1+u)^2 S).
 * With inputs_bf16 true (A and B already exact bf16 values) only the second
 * term is left, with (1+u)^2 replaced by 1. Returns the number of elements
 * over their bound (the first few printed unless quiet); *worst receives the
 * largest error/bound ratio.
 */
static size_t gemm_check(const float *C, const float *C0, float beta, const float *A,
                         const float *B, enum gemm_bf16_b_layout lay, size_t M, size_t N,
                         size_t K, int inputs_bf16, int quiet, double *worst)
{
    const double u = BF16_UNIT_ROUNDOFF;
    const double round_in = inputs_bf16 ? 0.0 : 2 * u + u * u;
    const double grow = inputs_bf16 ? 1.0 : (1 + u) * (1 + u);
    size_t bad = 0;

    *worst = 0.0;
    for (size_t i = 0; i < M; i++)
        for (size_t j = 0; j < N; j++) {
            double ref = beta * (double)C0[i * N + j], S = 0.0, bound, err;

            for (size_t k = 0; k < K; k++) {
                double p = (double)A[i * K + k] * b_at(B, lay, N, K, k, j);

                ref += p;
                S += fabs(p);
            }
            bound = round_in * S + test_gamma_fp32(K) * (fabs(beta * C0[i * N + j]) + grow * S);
            err = fabs((double)C[i * N + j] - ref);
            if (!(err <= bound)) {
                if (bad++ < 3 && !quiet)
                    fprintf(stderr, "C[%zu,%zu] = %.9g, reference %.9g, error %.3g > bound %.3g\n",
                            i, j, (double)C[i * N + j], ref, err, bound);
            } else if (bound > 0 && err / bound > *worst) {
                *worst = err / bound;
            }
        }
    return bad;
}

static const struct { size_t M, N, K; } gemm_shapes[] = {
    { 1, 1, 1 }, { 7, 5, 3 }, { 33, 17, 65 }, { 64, 64, 64 }, { 100, 48, 129 },
    { 3, 257, 31 }, { 200, 96, 768 },
};

/*
 * Every shape, both B layouts, overwrite and accumulate, every element within
 * its bound. inputs_bf16 false: fp32 A and B, rounded on the way in
 * (gemm_bf16_f32a; B rounded once, as frozen weights are). inputs_bf16 true:
 * A and B already bf16 (gemm_bf16), the reference on the same values, so only
 * fp32 accumulation error is allowed: a bound about 2^16/K tighter, which a
 * product summed in bf16, or an input rounded again, fails.
 */
static void check_all_shapes(int inputs_bf16, uint64_t seed)
{
    struct rng r;

    rng_init(&r, seed);
    for (size_t s = 0; s < sizeof(gemm_shapes) / sizeof(gemm_shapes[0]); s++) {
        size_t M = gemm_shapes[s].M, N = gemm_shapes[s].N, K = gemm_shapes[s].K;
        float *A = test_randn(&r, M * K, 1.0f), *B = test_randn(&r, N * K, 0.5f);
        float *C0 = test_randn(&r, M * N, 2.0f), *C = malloc(M * N * sizeof(*C));
        bf16 *Ah = malloc(M * K * sizeof(*Ah)), *Bh = malloc(N * K * sizeof(*Bh));

        bf16_from_f32_array(Ah, A, M * K);
        bf16_from_f32_array(Bh, B, N * K);
        if (inputs_bf16) {                 /* the reference sees the GEMM's values */
            bf16_to_f32_array(A, Ah, M * K);
            bf16_to_f32_array(B, Bh, N * K);
        }
        for (int lay = GEMM_BF16_B_NK; lay <= GEMM_BF16_B_KN; lay++)
            for (int beta = 0; beta <= 1; beta++) {
                double worst;

                memcpy(C, C0, M * N * sizeof(*C));
                ck_assert_int_eq(inputs_bf16 ? gemm_bf16(C, Ah, Bh, M, N, K, lay, (float)beta)
                                             : gemm_bf16_f32a(C, A, Bh, M, N, K, lay, (float)beta),
                                 RL_OK);
                ck_assert_msg(gemm_check(C, C0, (float)beta, A, B, lay, M, N, K, inputs_bf16, 0,
                                         &worst) == 0,
                              "shape %zux%zux%zu layout %d beta %d", M, N, K, lay, beta);
            }
        free(A); free(B); free(C0); free(C); free(Ah); free(Bh);
    }
}

START_TEST(test_gemm_f32_inputs_within_bound)
{
    if (gemm_available("f32 inputs"))
        check_all_shapes(0, 1500);
}
END_TEST

START_TEST(test_gemm_bf16_inputs_fp32_accumulation)
{
    if (gemm_available("bf16 inputs"))
        check_all_shapes(1, 1501);
}
END_TEST

/* the checker can fail: B read in the other layout, or an overwrite checked
 * as an accumulate, is far outside the bound (so the tests above would see
 * a transposed operand or a lost beta) */
START_TEST(test_gemm_check_detects_wrong_results)
{
    const size_t M = 9, N = 6, K = 6;
    struct rng r;
    float *A, *B, *C0, *C = malloc(M * N * sizeof(*C));
    bf16 *Bh = malloc(N * K * sizeof(*Bh));
    double worst;

    if (!gemm_available("checker self-test")) {
        free(C); free(Bh);
        return;
    }
    rng_init(&r, 1502);
    A = test_randn(&r, M * K, 1.0f);
    B = test_randn(&r, N * K, 1.0f);
    C0 = test_randn(&r, M * N, 1.0f);
    bf16_from_f32_array(Bh, B, N * K);
    memcpy(C, C0, M * N * sizeof(*C));
    ck_assert_int_eq(gemm_bf16_f32a(C, A, Bh, M, N, K, GEMM_BF16_B_NK, 0.0f), RL_OK);
    ck_assert_uint_eq(gemm_check(C, C0, 0.0f, A, B, GEMM_BF16_B_NK, M, N, K, 0, 0, &worst), 0);
    ck_assert_uint_gt(gemm_check(C, C0, 0.0f, A, B, GEMM_BF16_B_KN, M, N, K, 0, 1, &worst), M * N / 2);
    ck_assert_uint_gt(gemm_check(C, C0, 1.0f, A, B, GEMM_BF16_B_NK, M, N, K, 0, 1, &worst), M * N / 2);
    free(A); free(B); free(C0); free(C); free(Bh);
}
END_TEST

/* one primitive per (shape, layout, beta), created once and reused; the
 * scratchpad is not regrown by a repeated shape */
START_TEST(test_gemm_primitive_cache)
{
    const size_t M = 13, N = 11, K = 19;
    float A[13 * 19], C[13 * 11];
    bf16 Bh[11 * 19];
    struct gemm_bf16_stats s0, s1, s2, s3;

    if (!gemm_available("primitive cache"))
        return;
    for (size_t i = 0; i < M * K; i++)
        A[i] = (float)(i % 5) - 2.0f;
    for (size_t i = 0; i < N * K; i++)
        Bh[i] = bf16_from_f32((float)(i % 3) - 1.0f);
    s0 = gemm_bf16_stats();
    ck_assert_int_eq(gemm_bf16_f32a(C, A, Bh, M, N, K, GEMM_BF16_B_NK, 0.0f), RL_OK);
    s1 = gemm_bf16_stats();
    ck_assert_uint_eq(s1.primitives_created, s0.primitives_created + 1);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(gemm_bf16_f32a(C, A, Bh, M, N, K, GEMM_BF16_B_NK, 0.0f), RL_OK);
    s2 = gemm_bf16_stats();
    ck_assert_uint_eq(s2.primitives_created, s1.primitives_created);   /* reused */
    ck_assert_uint_eq(s2.calls, s1.calls + 5);
    ck_assert_uint_eq(s2.scratchpad_bytes, s1.scratchpad_bytes);
    /* accumulate and the other layout are other primitives, each once */
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(gemm_bf16_f32a(C, A, Bh, M, N, K, GEMM_BF16_B_NK, 1.0f), RL_OK);
        ck_assert_int_eq(gemm_bf16_f32a(C, A, Bh, M, K, N, GEMM_BF16_B_KN, 0.0f), RL_OK);
    }
    s3 = gemm_bf16_stats();
    ck_assert_uint_eq(s3.primitives_created, s2.primitives_created + 2);
}
END_TEST

/* A frozen linear on the bf16 path (block_adapters.w_bf16 set, factored,
 * no adapter): the forward out = b + x W^T and the input gradient
 * dinp += dout W are the bf16 products, each element within the bound of
 * gemm_check (the bias and the previous dinp as C0, beta 1); the bias
 * gradient is fp32, the same bits as linear_backward's. (That a merged
 * linear ignores the copy: check_clip_bf16.c.) */
START_TEST(test_frozen_linear_bf16_path)
{
    const size_t N = 37, C = 48, OC = 80;
    struct block_adapters ad;
    struct rng r;
    float *x, *w, *b, *dout, *out, *bias_rows, *dinp0, *dinp, *db, *db_ref, *out_ref;
    bf16 *wh = malloc(OC * C * sizeof(*wh));
    double worst;

    if (!gemm_available("frozen linear")) {
        free(wh);
        return;
    }
    rng_init(&r, 1503);
    x = test_randn(&r, N * C, 1.0f);
    w = test_randn(&r, OC * C, 0.2f);
    b = test_randn(&r, OC, 1.0f);
    dout = test_randn(&r, N * OC, 1.0f);
    dinp0 = test_randn(&r, N * C, 1.0f);
    out = test_zeros(N * OC);
    out_ref = test_zeros(N * OC);
    bias_rows = test_zeros(N * OC);
    dinp = test_copy(dinp0, N * C);
    db = test_zeros(OC);
    db_ref = test_zeros(OC);
    for (size_t n = 0; n < N; n++)
        memcpy(bias_rows + n * OC, b, OC * sizeof(float));
    memset(&ad, 0, sizeof(ad));
    bf16_from_f32_array(wh, w, OC * C);
    ad.w_bf16[BLOCK_LIN_FC1] = wh;

    adapted_linear_forward(out, x, w, b, &ad, BLOCK_LIN_FC1, N, C, OC);
    ck_assert_uint_eq(gemm_check(out, bias_rows, 1.0f, x, w, GEMM_BF16_B_NK, N, OC, C, 0, 0,
                                 &worst), 0);
    /* dinp (N,C) += dout (N,OC) W (OC,C): B = W read as [K=OC, N=C] */
    adapted_linear_backward(dinp, NULL, db, dout, x, w, &ad, BLOCK_LIN_FC1, N, C, OC);
    ck_assert_uint_eq(gemm_check(dinp, dinp0, 1.0f, dout, w, GEMM_BF16_B_KN, N, C, OC, 0, 0,
                                 &worst), 0);
    linear_backward(NULL, NULL, db_ref, dout, x, w, N, C, OC);
    ck_assert_int_eq(memcmp(db, db_ref, OC * sizeof(float)), 0);
    /* not the fp32 result: the bf16 path ran */
    linear_forward(out_ref, x, w, b, N, C, OC);
    ck_assert(memcmp(out, out_ref, N * OC * sizeof(float)) != 0);

    free(x); free(w); free(b); free(dout); free(out); free(out_ref); free(bias_rows);
    free(dinp0); free(dinp); free(db); free(db_ref); free(wh);
}
END_TEST

/* bad arguments are refused with a message on any CPU, before oneDNN runs */
START_TEST(test_gemm_bad_arguments)
{
    float C[4] = { 0 }, A[4] = { 0 };
    bf16 B[4] = { 0 };

    ck_assert_int_eq(gemm_bf16_f32a(C, A, B, 2, 2, 2, GEMM_BF16_B_NK, 0.5f), RL_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(rl_error_msg(), "beta 0.5"));
    ck_assert_int_eq(gemm_bf16_f32a(C, A, B, 0, 2, 2, GEMM_BF16_B_NK, 0.0f), RL_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(rl_error_msg(), "M=0"));
    ck_assert_int_eq(gemm_bf16(C, (bf16 *)A, B, 2, 2, 2, (enum gemm_bf16_b_layout)7, 0.0f),
                     RL_ERR_ARG);
}
END_TEST

/* A CPU without bf16 instructions (simulated: oneDNN capped at AVX512 or
 * AVX2 in a child process) is refused with one clear line, by the check and
 * by the products; describe says so. */
static int refusal_child(dnnl_cpu_isa_t cap)
{
    float C[4], A[4] = { 0 };
    bf16 B[4] = { 0 };
    char buf[160];

    if (dnnl_set_max_cpu_isa(cap) != dnnl_success)
        return 77;                     /* oneDNN already initialised in this process */
    if (gemm_bf16_check() != RL_ERR_NA || !strstr(rl_error_msg(), "use precision fp32") ||
        !strstr(rl_error_msg(), "AVX512-BF16 or AMX"))
        return 1;
    if (gemm_bf16_f32a(C, A, B, 2, 2, 2, GEMM_BF16_B_NK, 0.0f) != RL_ERR_NA)
        return 2;
    if (!strstr(gemm_bf16_describe(buf, sizeof(buf)), "bf16=refused"))
        return 3;
    return 0;
}

START_TEST(test_gemm_refused_without_bf16_isa)
{
    const dnnl_cpu_isa_t caps[] = { dnnl_cpu_isa_avx512_core, dnnl_cpu_isa_avx2 };

    for (size_t i = 0; i < 2; i++) {
        int status;
        pid_t pid = fork();

        ck_assert_int_ge(pid, 0);
        if (pid == 0)
            _exit(refusal_child(caps[i]));
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert(WIFEXITED(status));
        if (WEXITSTATUS(status) == 77) {
            printf("check_gemm_bf16: refusal test skipped: oneDNN was initialised before fork\n");
            continue;
        }
        ck_assert_msg(WEXITSTATUS(status) == 0, "isa cap %d: child failed step %d",
                      (int)caps[i], WEXITSTATUS(status));
    }
}
END_TEST

Suite *suite_gemm_bf16(void)
{
    Suite *s = suite_create("gemm_bf16");
    TCase *conv = tcase_create("convert");
    TCase *gemm = tcase_create("gemm");

    tcase_add_test(conv, test_bf16_rounding_known);
    tcase_add_test(conv, test_bf16_round_trip_all_patterns);
    tcase_add_test(conv, test_bf16_random_nearest);
    tcase_add_test(conv, test_bf16_split);
    suite_add_tcase(s, conv);

    tcase_set_timeout(gemm, 60);
    tcase_add_test(gemm, test_gemm_f32_inputs_within_bound);
    tcase_add_test(gemm, test_gemm_bf16_inputs_fp32_accumulation);
    tcase_add_test(gemm, test_gemm_check_detects_wrong_results);
    tcase_add_test(gemm, test_gemm_primitive_cache);
    tcase_add_test(gemm, test_frozen_linear_bf16_path);
    tcase_add_test(gemm, test_gemm_bad_arguments);
    tcase_add_test(gemm, test_gemm_refused_without_bf16_isa);
    suite_add_tcase(s, gemm);
    return s;
}
