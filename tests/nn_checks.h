/*
 * nn_checks.h: what the kernel suites of models/nn.c share (check_nn.c,
 * check_nn_embed.c): the tolerances, the assertion macros over
 * gradcheck / tensor_compare, and element counters for the "backward
 * accumulates" and "NULL gradient untouched" checks.
 *
 * Tolerances. Finite differences: atol 1e-3, rtol 1e-2 everywhere; step
 * 1e-2 for the kernels that are linear in the probed tensor (the central
 * difference is then exact up to float rounding of the outputs) and 1e-3
 * for the nonlinear ones (layer norm, the GELUs), where the truncation
 * error is O(eps^2) and the rounding error about 1e-7 / eps. BLAS against
 * naive loops: atol 1e-5, rtol 1e-4 (summation order only).
 */
#ifndef RANDLORA_TESTS_NN_CHECKS_H
#define RANDLORA_TESTS_NN_CHECKS_H

#include <stddef.h>

#include "test_util.h"

#define GC_ATOL     1e-3
#define GC_RTOL     1e-2
#define GC_EPS_LIN  1e-2f   /* kernels linear in the probed tensor */
#define GC_EPS_NL   1e-3f   /* nonlinear kernels                   */
#define GC_PROBES   100000  /* probe every element                 */

#define CMP_ATOL    1e-5
#define CMP_RTOL    1e-4

#define ASSERT_GRAD(name, p, g, n, fn, ctx, eps) \
    ck_assert_uint_eq(gradcheck(name, p, g, n, fn, ctx, eps, GC_ATOL, GC_RTOL, GC_PROBES), 0)
#define ASSERT_CLOSE(name, got, want, n) \
    ck_assert_uint_eq(tensor_compare(name, got, want, n, CMP_ATOL, CMP_RTOL), 0)
#define ASSERT_SAME(name, got, want, n) \
    ck_assert_uint_eq(tensor_compare(name, got, want, n, 0.0, 0.0), 0)

/* got == 2 * want exactly, element by element: the count of others */
size_t count_not_double(const float *got, const float *want, size_t n);
/* got == 2 * want up to float rounding: for a scatter-add (a token seen
 * several times adds once per occurrence, so the sums associate differently) */
size_t count_not_double_tol(const float *got, const float *want, size_t n);
/* elements not equal to v */
size_t count_not_value(const float *x, float v, size_t n);
void fill_value(float *x, float v, size_t n);

#endif /* RANDLORA_TESTS_NN_CHECKS_H */
