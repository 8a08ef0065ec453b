/*
 * adapter_harness.c: the adapter suites' shared configurations and helpers
 * (adapter_harness.h).
 */
#include "adapter_harness.h"

#include <check.h>

#include "core/status.h"

const struct variant adapter_test_variants[N_VARIANTS] = {
    { "peft dense",            "peft",  ADAPTER_BASIS_DENSE,       0, false, false, 0.0f, 0.0f },
    { "peft sparse rslora",    "peft",  ADAPTER_BASIS_SPARSE,      0, false, true,  6.0f, 0.0f },
    { "paper very_sparse",     "paper", ADAPTER_BASIS_VERY_SPARSE, 0, false, false, 0.0f, 0.0f },
    { "fork scaling",          "peft",  ADAPTER_BASIS_DENSE, ADAPTER_SCALE_ALPHA_R_SQRT_N, true,
      false, 6.0f, 0.0f },
    { "peft dense dropout",    "peft",  ADAPTER_BASIS_DENSE,       0, false, false, 2.0f, 0.25f },
};

/* the last is a packed q/k/v in_proj, (3d, d) */
const struct adapter_shape adapter_test_shapes[N_SHAPES] = { { 20, 12 }, { 12, 20 }, { 16, 16 },
                                                            { 36, 12 } };

const struct adapter_ops *adapter_test_ops(int i)
{
    const struct adapter_ops *ops = adapter_registry()[i];

    ck_assert_ptr_nonnull(ops);
    return ops;
}

void adapter_test_cfg(struct adapter_cfg *cfg, const struct adapter_ops *ops,
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
void adapter_test_setup(struct adapter_method *m, struct adapter *a,
                        const struct adapter_cfg *cfg, size_t d_out, size_t d_in)
{
    int rc = adapter_method_init(m, cfg, d_out + 3, d_in + 2, N_ROWS);

    ck_assert_msg(rc == RL_OK, "method_init %s: %s", cfg->method, rl_error_msg());
    rc = adapter_init(a, m, d_out, d_in, NULL, NULL);
    ck_assert_msg(rc == RL_OK, "init %s %zux%zu: %s", cfg->method, d_out, d_in, rl_error_msg());
}

void adapter_test_teardown(struct adapter_method *m, struct adapter *a)
{
    adapter_free(a);
    adapter_method_free(m);
}

void adapter_test_randomize(struct adapter *a, struct rng *g, float std)
{
    rng_fill_normal(g, a->params, a->n_params, 0.0f, std);
}

/* y (N, d_out) = x (N, d_in) W^T, double accumulation */
void naive_xwt(float *y, const float *x, const float *w, size_t N, size_t d_in,
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
void naive_gw(float *dx, const float *g, const float *w, size_t N, size_t d_in,
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
void naive_gtx(float *gw, const float *g, const float *x, size_t N, size_t d_in,
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
