/*
 * check_core.c: status codes, checked allocation helpers, RNG, progress line.
 */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "core/alloc.h"
#include "core/progress.h"
#include "core/rng.h"
#include "core/status.h"
#include "core/threads.h"
#include "suites.h"
#include "test_proc.h"

START_TEST(test_status_messages)
{
    int rc = rl_error_set(RL_ERR_FORMAT, "%s: bad magic %u", "x.idx", 7u);

    ck_assert_int_eq(rc, RL_ERR_FORMAT);
    ck_assert_str_eq(rl_error_msg(), "x.idx: bad magic 7");
    ck_assert_int_eq(rl_exit_code(RL_ERR_FORMAT), 2);
    ck_assert_int_eq(rl_exit_code(RL_ERR_ARG), 2);
    ck_assert_int_eq(rl_exit_code(RL_ERR_NOMEM), 1);
    ck_assert_int_eq(rl_exit_code(RL_OK), 0);
    ck_assert_str_eq(rl_strerror(RL_ERR_IO), "input/output error");
    rl_error_clear();
    ck_assert_str_eq(rl_error_msg(), "no error recorded");
}
END_TEST

/* rl_error_prefix: the callee's message after the caller's context, never
 * formatted into itself (issue 13 finding 6) */
START_TEST(test_error_prefix)
{
    char want[RL_ERROR_MAX], big[3 * RL_ERROR_MAX];
    size_t n;

    rl_error_set(RL_ERR_ARG, "lora: rank 4096 exceeds min(128, 128) of layer 128x128");
    ck_assert_int_eq(rl_error_prefix(RL_ERR_ARG, "%s: %s with rank %d", "X.ini", "lora", 4096),
                     RL_ERR_ARG);
    ck_assert_str_eq(rl_error_msg(), "X.ini: lora with rank 4096: lora: rank 4096 exceeds "
                     "min(128, 128) of layer 128x128");
    /* twice: both prefixes, once each */
    rl_error_prefix(RL_ERR_ARG, "sweep");
    ck_assert_str_eq(rl_error_msg(), "sweep: X.ini: lora with rank 4096: lora: rank 4096 "
                     "exceeds min(128, 128) of layer 128x128");
    /* the prefix's own arguments may be the current message */
    rl_error_set(RL_ERR_IO, "abc");
    rl_error_prefix(RL_ERR_IO, "%s/%s", rl_error_msg(), rl_error_msg());
    ck_assert_str_eq(rl_error_msg(), "abc/abc: abc");
    /* nothing recorded: the prefix alone */
    rl_error_clear();
    ck_assert_int_eq(rl_error_prefix(RL_ERR_FORMAT, "f.json: %d", 7), RL_ERR_FORMAT);
    ck_assert_str_eq(rl_error_msg(), "f.json: 7");

    /* a long message is cut at its end, the prefix kept */
    memset(big, 'm', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    rl_error_set(RL_ERR, "%s", big);
    rl_error_prefix(RL_ERR, "%s", "ctx");
    n = strlen(rl_error_msg());
    ck_assert_uint_eq(n, RL_ERROR_MAX - 1);
    ck_assert(!strncmp(rl_error_msg(), "ctx: mmm", 8));
    ck_assert_int_eq(rl_error_msg()[n - 1], 'm');
    /* a prefix longer than the buffer: cut, still terminated, ": " last */
    rl_error_set(RL_ERR, "tail");
    memset(big, 'p', sizeof(big) - 1);
    rl_error_prefix(RL_ERR, "%s", big);
    n = strlen(rl_error_msg());
    ck_assert_uint_eq(n, RL_ERROR_MAX - 1);
    memset(want, 'p', RL_ERROR_MAX - 3);
    memcpy(want + RL_ERROR_MAX - 3, ": ", 3);
    ck_assert_str_eq(rl_error_msg(), want);
    /* a prefix and a message that just fit */
    memset(big, 'q', RL_ERROR_MAX - 1 - 2 - 4);
    big[RL_ERROR_MAX - 1 - 2 - 4] = '\0';
    rl_error_set(RL_ERR, "tail");
    rl_error_prefix(RL_ERR, "%s", big);
    ck_assert_uint_eq(strlen(rl_error_msg()), RL_ERROR_MAX - 1);
    ck_assert_str_eq(rl_error_msg() + RL_ERROR_MAX - 1 - 6, ": tail");
    rl_error_clear();
}
END_TEST

START_TEST(test_size_overflow)
{
    size_t out;

    ck_assert(size_mul_ok(1u << 20, 1u << 10, &out));
    ck_assert_uint_eq(out, (size_t)1 << 30);
    ck_assert(!size_mul_ok(SIZE_MAX / 2 + 1, 2, &out));
    ck_assert(!size_add_ok(SIZE_MAX, 1, &out));
    ck_assert(size_add_ok(SIZE_MAX - 1, 1, &out));
}
END_TEST

static void overflowing_alloc(void *unused)
{
    (void)unused;
    free(xmalloc_array(SIZE_MAX / 4, 8));
}

/* an overflowing request must abort, not return a short block (in a child
 * of its own: test_proc.h) */
START_TEST(test_xmalloc_array_overflow_aborts)
{
    int st = test_in_child(overflowing_alloc, NULL);

    ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT, "wait status %d, expected SIGABRT",
                  st);
}
END_TEST

START_TEST(test_xcalloc_aligned)
{
    float *x = xcalloc_aligned(13, sizeof(float));

    ck_assert_uint_eq((uintptr_t)x % 64, 0);
    for (int i = 0; i < 13; i++)
        ck_assert(x[i] == 0.0f);
    free(x);
}
END_TEST

/* the generator is a fixed algorithm: these values must never change */
START_TEST(test_rng_fixed_stream)
{
    struct rng r, r2;
    uint64_t first[3];

    rng_init(&r, 42);
    for (int i = 0; i < 3; i++)
        first[i] = rng_u64(&r);
    rng_init(&r2, 42);
    for (int i = 0; i < 3; i++)
        ck_assert_uint_eq(rng_u64(&r2), first[i]);
    rng_init(&r2, 43);
    ck_assert_uint_ne(rng_u64(&r2), first[0]);
    /* SplitMix64(42) seeding + xoshiro256**, computed by an independent
     * Python transcription of the published algorithms */
    ck_assert_uint_eq(first[0], 0x15780b2e0c2ec716ull);
    ck_assert_uint_eq(first[1], 0x6104d9866d113a7eull);
    ck_assert_uint_eq(first[2], 0xae17533239e499a1ull);
}
END_TEST

START_TEST(test_rng_uniform_moments)
{
    struct rng r;
    double s = 0, s2 = 0;
    const int n = 200000;

    rng_init(&r, 1);
    for (int i = 0; i < n; i++) {
        float u = rng_uniform(&r);
        ck_assert(u >= 0.0f && u < 1.0f);
        s += u;
        s2 += (double)u * u;
    }
    /* mean 1/2 and variance 1/12, within ~5 standard errors */
    ck_assert_double_eq_tol(s / n, 0.5, 5 * sqrt(1.0 / 12 / n));
    ck_assert_double_eq_tol(s2 / n - (s / n) * (s / n), 1.0 / 12, 2e-3);
}
END_TEST

START_TEST(test_rng_normal_moments)
{
    struct rng r;
    double s = 0, s2 = 0, s4 = 0;
    const int n = 200000;

    rng_init(&r, 2);
    for (int i = 0; i < n; i++) {
        double z = rng_normal(&r);
        s += z;
        s2 += z * z;
        s4 += z * z * z * z;
    }
    ck_assert_double_eq_tol(s / n, 0.0, 5 / sqrt(n));
    ck_assert_double_eq_tol(s2 / n, 1.0, 5 * sqrt(2.0 / n));
    ck_assert_double_eq_tol(s4 / n, 3.0, 0.1);   /* kurtosis of a normal */
}
END_TEST

START_TEST(test_rng_below_unbiased)
{
    struct rng r;
    int counts[7] = { 0 };
    const int n = 70000;

    rng_init(&r, 3);
    for (int i = 0; i < n; i++) {
        uint64_t k = rng_below(&r, 7);
        ck_assert_uint_lt(k, 7);
        counts[k]++;
    }
    for (int k = 0; k < 7; k++)
        ck_assert_int_lt(abs(counts[k] - n / 7), 5 * 100);   /* sd ~ 93 */
}
END_TEST

START_TEST(test_rng_split_independent)
{
    struct rng root, a, a2, b;
    uint64_t root_before;

    rng_init(&root, 9);
    root_before = root.s[0];
    rng_split(&a, &root, 1);
    rng_split(&a2, &root, 1);
    rng_split(&b, &root, 2);
    ck_assert_uint_eq(root.s[0], root_before);          /* parent untouched */
    ck_assert_uint_eq(rng_u64(&a), rng_u64(&a2));       /* same stream, same numbers */
    ck_assert_uint_ne(rng_u64(&a), rng_u64(&b));        /* other stream differs */
}
END_TEST

START_TEST(test_progress_format)
{
    struct progress p;
    const char *line;

    progress_init(&p, "train", 100, stderr);
    line = progress_format(&p, 25, 1.5, 1e-3, 64.0, p.t_start + 10.0);
    ck_assert_str_eq(line, "train step 25/100 loss 1.5000 lr 0.001 64.0 img/s ETA 0:30");
    line = progress_format(&p, 3, -1, -1, -1, p.t_start + 1.0);
    ck_assert_str_eq(line, "train step 3/100 ETA 0:32");
}
END_TEST

START_TEST(test_threads_policy)
{
    char buf[128];
    struct thread_policy before = threads_current(), p = threads_init(1);

    ck_assert_int_eq(p.n_blas, 1);
#ifdef _OPENMP
    /* check_main re-executed itself with the wait policies (threads_exec_wait_policy) */
    ck_assert_ptr_nonnull(getenv("OMP_WAIT_POLICY"));
#endif
    ck_assert_ptr_nonnull(getenv("OPENBLAS_THREAD_TIMEOUT"));
    ck_assert_ptr_nonnull(strstr(threads_describe(buf, sizeof(buf)), "blas=1"));
    threads_init(before.n_omp);                   /* the next tests run as before */
}
END_TEST

Suite *suite_core(void)
{
    Suite *s = suite_create("core");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, test_status_messages);
    tcase_add_test(tc, test_error_prefix);
    tcase_add_test(tc, test_size_overflow);
    tcase_add_test(tc, test_xmalloc_array_overflow_aborts);
    tcase_add_test(tc, test_xcalloc_aligned);
    tcase_add_test(tc, test_rng_fixed_stream);
    tcase_add_test(tc, test_rng_uniform_moments);
    tcase_add_test(tc, test_rng_normal_moments);
    tcase_add_test(tc, test_rng_below_unbiased);
    tcase_add_test(tc, test_rng_split_independent);
    tcase_add_test(tc, test_progress_format);
    tcase_add_test(tc, test_threads_policy);
    suite_add_tcase(s, tc);
    return s;
}
