/*
 * adapter_impl.h: helpers shared by the method files in methods/ only
 * (a row-major gemm_f32 wrapper taking size_t, tensor-view filling, the
 * normalisation of random bases, the tensor export/import every method
 * uses). Not for use outside methods/.
 */
#ifndef RANDLORA_METHODS_ADAPTER_IMPL_H
#define RANDLORA_METHODS_ADAPTER_IMPL_H

#include <limits.h>
#include <stddef.h>

#include "core/gemm_bf16.h"
#include "core/gemm_f32.h"
#include "core/status.h"
#include "methods/adapter.h"

/* C (M, N) = alpha * op(A) op(B) + beta * C, all row-major; op(A) is (M, K),
 * op(B) is (K, N); lda, ldb, ldc are the row strides of A, B, C as stored. */
static inline void mm(int ta, int tb, size_t M, size_t N, size_t K, float alpha,
                      const float *A, size_t lda, const float *B, size_t ldb,
                      float beta, float *C, size_t ldc)
{
    if (M == 0 || N == 0)
        return;
    RL_ASSERT(M <= INT_MAX && N <= INT_MAX && K <= INT_MAX);
    RL_ASSERT(lda <= INT_MAX && ldb <= INT_MAX && ldc <= INT_MAX);
    if (K == 0) {              /* BLAS would be fine, but make beta explicit */
        for (size_t i = 0; i < M; i++)
            for (size_t j = 0; j < N; j++)
                C[i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
        return;
    }
    gemm_f32(ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)M, (int)N,
             (int)K, alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
}

#define NT 0   /* no transpose */
#define TR 1   /* transpose    */

/* mm for a product of the adapter's branch (its forward, backward and
 * project_rows, not a merge's add_delta nor project_grad): in bf16 when the
 * method's products are (train.precision = bf16, a->method->bf16_products:
 * operands rounded to bf16, fp32 accumulation, core/gemm_bf16.h
 * gemm_bf16_mm), else mm. beta other than 0 or 1, K = 0 and a full shape
 * cache (RL_ERR_NA) take mm; anything else failing is a broken invariant. */
static inline void mm_branch(const struct adapter *a, int ta, int tb, size_t M, size_t N,
                             size_t K, float alpha, const float *A, size_t lda, const float *B,
                             size_t ldb, float beta, float *C, size_t ldc)
{
    if (a->method->bf16_products && (a->ops->flags & ADAPTER_F_BF16_BRANCH) && M && N && K &&
        alpha != 0.0f &&
        (beta == 0.0f || beta == 1.0f)) {
        int rc = gemm_bf16_mm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);

        if (rc == RL_OK)
            return;
        RL_ASSERT(rc == RL_ERR_NA);
    }
    mm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

static inline void tensor_view(struct adapter_tensor *t, const char *name, float *data,
                               int ndim, size_t d0, size_t d1, size_t d2)
{
    t->name = name;
    t->data = data;
    t->ndim = ndim;
    t->shape[0] = d0;
    t->shape[1] = ndim > 1 ? d1 : 0;
    t->shape[2] = ndim > 2 ? d2 : 0;
    t->n = d0 * (ndim > 1 ? d1 : 1) * (ndim > 2 ? d2 : 1);
}

/* ternary map of a U[0,1) draw for sparse random bases, s the sparsity:
 * -1 or +1 with probability 1/(2s) each, else 0 (peft's
 * _init_randlora_A_randlora_B_sparse, the vision code's gen_mats_sparse) */
static inline float adapter_ternary(float u, float s)
{
    float t = 1.0f / (2.0f * s);

    return u < t ? -1.0f : u > 1.0f - t ? 1.0f : 0.0f;
}

/* x[0..n) /= its unbiased standard deviation (torch's Tensor.std()),
 * computed in double; left alone when that is 0 or n < 2. */
void adapter_normalize_std(float *x, size_t n);

/* The export_tensors / import_tensors every method here uses: the layer's
 * `tensors` views, each under prefix + its peft name, as F32 in its shape. */
int adapter_export_views(struct adapter *a, struct st_writer *w, const char *prefix);
int adapter_import_views(struct adapter *a, const struct st_file *f, const char *prefix,
                         float *dst);

#endif /* RANDLORA_METHODS_ADAPTER_IMPL_H */
