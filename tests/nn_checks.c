/*
 * nn_checks.c: the element counters the kernel suites share (nn_checks.h).
 */
#include "nn_checks.h"

#include <math.h>

size_t count_not_double(const float *got, const float *want, size_t n)
{
    size_t bad = 0;

    for (size_t i = 0; i < n; i++)
        bad += got[i] != 2.0f * want[i];
    return bad;
}

size_t count_not_double_tol(const float *got, const float *want, size_t n)
{
    size_t bad = 0;

    for (size_t i = 0; i < n; i++)
        bad += fabsf(got[i] - 2.0f * want[i]) > 1e-6f * fabsf(want[i]) + 1e-7f;
    return bad;
}

size_t count_not_value(const float *x, float v, size_t n)
{
    size_t bad = 0;

    for (size_t i = 0; i < n; i++)
        bad += x[i] != v;
    return bad;
}

void fill_value(float *x, float v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = v;
}
