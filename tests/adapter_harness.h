/*
 * adapter_harness.h: what the adapter suites share (check_adapters.c,
 * check_adapter_counts.c, check_adapter_methods.c): the configuration
 * variants and layer shapes every registered method is run with, a method
 * and one adapter built from them, and naive dense products to compare
 * against. Failures abort the test (Check).
 */
#ifndef RANDLORA_TESTS_ADAPTER_HARNESS_H
#define RANDLORA_TESTS_ADAPTER_HARNESS_H

#include <stdbool.h>
#include <stddef.h>

#include "core/rng.h"
#include "methods/adapter.h"

#define N_ROWS 5                /* rows of the inputs the suites feed       */
#define RANK 3                  /* the rank of the conformance runs         */

/* configurations and shapes every method is run with */
struct variant {
    const char *label;
    const char *profile;
    enum adapter_basis basis;
    enum adapter_scaling scaling;   /* applied after the profile */
    bool  set_scaling;
    bool  rslora;
    float alpha;
    float dropout;
};

#define N_VARIANTS 5
extern const struct variant adapter_test_variants[N_VARIANTS];

/* d_in < d_out (RandLoRA case 1), d_out < d_in (case 2), square */
#define N_SHAPES 4
extern const struct adapter_shape adapter_test_shapes[N_SHAPES];

/* the registry's i-th method (asserted present) */
const struct adapter_ops *adapter_test_ops(int i);

/* cfg: ops's defaults at rank r with variant v applied, seed 1234 */
void adapter_test_cfg(struct adapter_cfg *cfg, const struct adapter_ops *ops,
                      const struct variant *v, size_t r);

/* m sized a little larger than the layer (so every slice is exercised),
 * for N_ROWS rows, and a (d_out, d_in) adapter a of it */
void adapter_test_setup(struct adapter_method *m, struct adapter *a,
                        const struct adapter_cfg *cfg, size_t d_out, size_t d_in);
void adapter_test_teardown(struct adapter_method *m, struct adapter *a);

/* a's trainable parameters ~ N(0, std^2) */
void adapter_test_randomize(struct adapter *a, struct rng *g, float std);

/* y (N, d_out) = x (N, d_in) W^T; dx (N, d_in) = g (N, d_out) W;
 * gw (d_out, d_in) = g^T x; double accumulation */
void naive_xwt(float *y, const float *x, const float *w, size_t N, size_t d_in, size_t d_out);
void naive_gw(float *dx, const float *g, const float *w, size_t N, size_t d_in, size_t d_out);
void naive_gtx(float *gw, const float *g, const float *x, size_t N, size_t d_in, size_t d_out);

#endif /* RANDLORA_TESTS_ADAPTER_HARNESS_H */
