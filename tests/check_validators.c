/*
 * check_validators.c: the test oracles themselves must be able to fail.
 *
 * tensor_compare and gradcheck are given deliberately wrong answers (a
 * perturbed tensor, a gradient off by a small factor, a NaN) and must
 * report them; and given right answers they must pass.
 */
#include <math.h>

#include "core/rng.h"
#include "suites.h"
#include "test_util.h"

START_TEST(test_compare_catches_error)
{
    float want[4] = { 1.0f, -2.0f, 3.0f, 1e-6f };
    float got[4]  = { 1.0f, -2.0f, 3.0f, 1e-6f };

    ck_assert_uint_eq(tensor_compare("same", got, want, 4, 1e-6, 1e-5), 0);
    got[2] = 3.001f;                       /* relative error 3e-4 */
    ck_assert_uint_eq(tensor_compare("off", got, want, 4, 1e-6, 1e-5), 1);
    got[2] = NAN;
    ck_assert_uint_eq(tensor_compare("nan", got, want, 4, 1e-6, 1e-5), 1);
    got[2] = 3.0f;
    got[3] = 2e-6f;                        /* tiny value, absolute error 1e-6 */
    ck_assert_uint_eq(tensor_compare("tiny", got, want, 4, 1e-7, 1e-5), 1);
}
END_TEST

/* L = sum_i c_i * x_i^3, dL/dx_i = 3 c_i x_i^2 */
struct cubic { float *x; const float *c; size_t n; };

static double cubic_loss(void *ctx)
{
    struct cubic *q = ctx;
    double s = 0;

    for (size_t i = 0; i < q->n; i++)
        s += (double)q->c[i] * (double)q->x[i] * q->x[i] * q->x[i];
    return s;
}

START_TEST(test_gradcheck_catches_wrong_gradient)
{
    enum { N = 16 };
    float x[N], c[N], g[N];
    struct cubic q = { x, c, N };
    struct rng r;

    rng_init(&r, 5);
    rng_fill_normal(&r, x, N, 0, 1);
    rng_fill_normal(&r, c, N, 0, 1);
    for (int i = 0; i < N; i++)
        g[i] = 3.0f * c[i] * x[i] * x[i];
    ck_assert_uint_eq(gradcheck("x", x, g, N, cubic_loss, &q, 1e-2f, 1e-3, 1e-2, N), 0);

    g[7] *= 1.05f;                         /* 5% wrong in one element */
    ck_assert_uint_eq(gradcheck("x", x, g, N, cubic_loss, &q, 1e-2f, 1e-3, 1e-2, N), 1);
    g[7] /= 1.05f;
    g[3] = -g[3] + 0.5f;                   /* wrong sign */
    ck_assert_uint_ge(gradcheck("x", x, g, N, cubic_loss, &q, 1e-2f, 1e-3, 1e-2, N), 1);
}
END_TEST

Suite *suite_validators(void)
{
    Suite *s = suite_create("validators");
    TCase *tc = tcase_create("validators");

    tcase_add_test(tc, test_compare_catches_error);
    tcase_add_test(tc, test_gradcheck_catches_wrong_gradient);
    suite_add_tcase(s, tc);
    return s;
}
