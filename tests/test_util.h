/*
 * test_util.h: helpers shared by the Check suites: tensor comparison,
 * central finite differences, random fills, golden-file reading.
 *
 * Both validators print what they found (name, index, both values, max diff)
 * and return the number of failing elements, so a test asserts
 *     ck_assert_int_eq(tensor_compare("dw", got, want, n, 1e-5, 1e-4), 0);
 * and the validators themselves are tested on deliberately wrong inputs.
 */
#ifndef RANDLORA_TESTS_TEST_UTIL_H
#define RANDLORA_TESTS_TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "core/rng.h"

/* Elements with |got - want| > atol + rtol * |want| (or non-finite) count as
 * failures. Prints the first few and the largest difference. */
size_t tensor_compare(const char *name, const float *got, const float *want, size_t n,
                      double atol, double rtol);

/* The scalar loss a gradient check differentiates, computed from the
 * current contents of whatever the checker perturbs. Must be deterministic. */
typedef double (*gradcheck_loss_fn)(void *ctx);

/* Central differences: for up to max_probe indices of p (all of them if
 * n <= max_probe, else an even spread), compare
 *     g_num = (L(p + eps) - L(p - eps)) / (2 eps)
 * with the analytic grad[i], failing where |g_num - g| > atol + rtol * |g_num|.
 * p is restored. Returns the number of failures. */
size_t gradcheck(const char *name, float *p, const float *grad, size_t n,
                 gradcheck_loss_fn loss, void *ctx,
                 float eps, double atol, double rtol, size_t max_probe);

/* sum(out * r) in double: the projection that gives every output element
 * its own upstream gradient r (so dout = r). */
double dot_double(const float *out, const float *r, size_t n);

/* ||a - b|| / ||b|| (2-norms over n values), in double */
double test_rel_l2(const float *a, const float *b, size_t n);

/* max over i < n of |a[i] - b[i]|, in double */
double test_max_abs_diff(const float *a, const float *b, size_t n);

/* max over i < n of |x[i]|, in double */
double test_max_abs(const float *x, size_t n);

/* gamma_n = n 2^-24 / (1 - n 2^-24): the bound on the relative error of a
 * sum of n + 1 terms in fp32, in any order (the bf16 GEMM bounds) */
double test_gamma_fp32(size_t n);

/* true when bf16 GEMMs run here (gemm_bf16_check); else prints
 * "SUITE: TEST skipped: why" and returns false */
int test_bf16_available(const char *suite, const char *test);

/* freshly allocated (caller frees) arrays */
float *test_randn(struct rng *r, size_t n, float std);
float *test_zeros(size_t n);
float *test_copy(const float *x, size_t n);

/* A fresh directory $TMPDIR/rl_<tag>_XXXXXX (TMPDIR unset: /tmp) written
 * into dir (cap bytes); returns dir, or NULL (errno set) on failure. */
char *test_tmpdir_make(char *dir, size_t cap, const char *tag);
/* Remove dir and everything below it; an empty string is a no-op. */
void test_tmpdir_remove(const char *dir);
/* dir/<printf-formatted rest> in one of 8 rotating static buffers, so a
 * call can take a few of these paths at once. */
const char *test_path(const char *dir, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A file (created or truncated) holding buf[0..n); fails the test on an
 * error. (test_cmd.h's test_slurp reads one.) */
void test_write_file(const char *path, const void *buf, size_t n);
/* the same with a NUL-terminated text */
void test_write_text(const char *path, const char *text);

/* Path of a committed fixture: RANDLORA_FIXTURES or "tests/fixtures", joined
 * with name, in a static buffer. */
const char *fixture_path(const char *name);

#endif /* RANDLORA_TESTS_TEST_UTIL_H */
