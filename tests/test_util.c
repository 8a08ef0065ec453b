/*
 * test_util.c: tensor comparison, finite differences, fills for the suites.
 */
#define _GNU_SOURCE   /* nftw's FTW_PHYS */
#include "test_util.h"

#include <check.h>
#include <ftw.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/gemm_bf16.h"
#include "core/status.h"

size_t tensor_compare(const char *name, const float *got, const float *want, size_t n,
                      double atol, double rtol)
{
    size_t fails = 0, worst = 0;
    double maxdiff = 0.0;

    for (size_t i = 0; i < n; i++) {
        double g = got[i], w = want[i], d = fabs(g - w);
        int bad = !isfinite(g) || !isfinite(w) || d > atol + rtol * fabs(w);

        if (isfinite(d) && d > maxdiff) {
            maxdiff = d;
            worst = i;
        }
        if (bad) {
            if (fails < 5)
                fprintf(stderr, "  %s[%zu]: got %.8g want %.8g (diff %.3g)\n", name, i, g, w, d);
            fails++;
        }
    }
    if (fails)
        fprintf(stderr, "%s: %zu of %zu elements differ (max diff %.3g at %zu; atol %g rtol %g)\n",
                name, fails, n, maxdiff, worst, atol, rtol);
    return fails;
}

size_t gradcheck(const char *name, float *p, const float *grad, size_t n,
                 gradcheck_loss_fn loss, void *ctx,
                 float eps, double atol, double rtol, size_t max_probe)
{
    size_t fails = 0, probes = n < max_probe ? n : max_probe;
    double maxdiff = 0.0;

    for (size_t k = 0; k < probes; k++) {
        /* an even spread over the tensor when not every element is probed */
        size_t i = probes == n ? k : (size_t)(((double)k + 0.5) * (double)n / (double)probes);
        float saved = p[i];
        double lp, lm, num, d;

        p[i] = saved + eps;
        lp = loss(ctx);
        p[i] = saved - eps;
        lm = loss(ctx);
        p[i] = saved;
        /* divide by the step actually taken in float */
        num = (lp - lm) / ((double)(saved + eps) - (double)(saved - eps));
        d = fabs(num - (double)grad[i]);
        if (d > maxdiff)
            maxdiff = d;
        if (!isfinite(grad[i]) || !isfinite(num) || d > atol + rtol * fabs(num)) {
            if (fails < 5)
                fprintf(stderr, "  d%s[%zu]: analytic %.8g numeric %.8g (diff %.3g)\n",
                        name, i, (double)grad[i], num, d);
            fails++;
        }
    }
    if (fails)
        fprintf(stderr, "gradcheck d%s: %zu of %zu probes differ (max diff %.3g; atol %g rtol %g)\n",
                name, fails, probes, maxdiff, atol, rtol);
    return fails;
}

double dot_double(const float *out, const float *r, size_t n)
{
    double s = 0.0;

    for (size_t i = 0; i < n; i++)
        s += (double)out[i] * (double)r[i];
    return s;
}

float *test_randn(struct rng *r, size_t n, float std)
{
    float *x = xmalloc_array(n, sizeof(*x));

    rng_fill_normal(r, x, n, 0.0f, std);
    return x;
}

double test_max_abs(const float *x, size_t n)
{
    double m = 0.0;

    for (size_t i = 0; i < n; i++)
        if (fabs(x[i]) > m)
            m = fabs(x[i]);
    return m;
}

double test_rel_l2(const float *a, const float *b, size_t n)
{
    double d = 0.0, r = 0.0;

    for (size_t i = 0; i < n; i++) {
        d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        r += (double)b[i] * b[i];
    }
    return sqrt(d / r);
}

double test_max_abs_diff(const float *a, const float *b, size_t n)
{
    double m = 0.0;

    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);

        if (d > m)
            m = d;
    }
    return m;
}

float *test_zeros(size_t n)
{
    return xcalloc(n, sizeof(float));
}

float *test_copy(const float *x, size_t n)
{
    float *y = xmalloc_array(n, sizeof(*y));

    memcpy(y, x, n * sizeof(*y));
    return y;
}

char *test_tmpdir_make(char *dir, size_t cap, const char *tag)
{
    const char *base = getenv("TMPDIR");

    snprintf(dir, cap, "%s/rl_%s_XXXXXX", base && *base ? base : "/tmp", tag);
    return mkdtemp(dir);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void test_tmpdir_remove(const char *dir)
{
    if (dir[0])
        nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

const char *test_path(const char *dir, const char *fmt, ...)
{
    static char bufs[8][1024];
    static int next;
    char *b = bufs[next++ % 8];
    int off = snprintf(b, sizeof(bufs[0]), "%s/", dir);
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(b + off, sizeof(bufs[0]) - (size_t)off, fmt, ap);
    va_end(ap);
    return b;
}

const char *fixture_path(const char *name)
{
    static char path[4096];
    const char *dir = getenv("RANDLORA_FIXTURES");

    snprintf(path, sizeof(path), "%s/%s", dir && *dir ? dir : "tests/fixtures", name);
    return path;
}

void test_write_file(const char *path, const void *buf, size_t n)
{
    FILE *fp = fopen(path, "wb");

    ck_assert_msg(fp != NULL, "%s: cannot create", path);
    ck_assert_uint_eq(fwrite(buf, 1, n, fp), n);
    ck_assert_int_eq(fclose(fp), 0);
}

void test_write_text(const char *path, const char *text)
{
    test_write_file(path, text, strlen(text));
}

double test_gamma_fp32(size_t n)
{
    double nu = (double)n * ldexp(1.0, -24);

    return nu / (1.0 - nu);
}

int test_bf16_available(const char *suite, const char *test)
{
    if (gemm_bf16_check() == RL_OK)
        return 1;
    printf("%s: %s skipped: %s\n", suite, test, rl_error_msg());
    return 0;
}
