/*
 * adapted_linear.c: one frozen linear with its adapter on the factored or
 * the merged path (adapted_linear.h), in fp32: the Llama decoder's linears.
 * (The CLIP encoder's block_linear.c runs the same rules on struct
 * block_adapters, with its bf16 copies and the packed in_proj adapter.)
 */
#include "models/adapted_linear.h"

#include <string.h>

#include "core/alloc.h"
#include "core/status.h"
#include "methods/adapter.h"
#include "models/nn.h"

void adapted_lin_forward(float *out, const float *inp, const float *w, const float *b,
                         const struct adapted_lin *l, size_t N, size_t C, size_t OC)
{
    linear_forward(out, inp, w, b, N, C, OC);
    if (l && l->a && !l->merged)
        adapter_forward(l->a, inp, out, N);
}

/* factored: linear_backward (dw only when asked), then the adapter's
 * backward. merged: gw = dout^T inp in the shared scratch (with dinp and db
 * from the same linear_backward, w = W + dW), projected onto the adapter's
 * parameters, and added to dw when the weight itself is trained too; or,
 * with a step-long sum set, added to the sum for one projection later;
 * or, when the parameters are dW itself (full), added to them at once; or
 * not formed at all, the parameter gradients taken from inp and dout. */
void adapted_lin_backward(float *dinp, float *dw, float *db, const float *dout,
                          const float *inp, const float *w, const struct adapted_lin *l,
                          size_t N, size_t C, size_t OC)
{
    struct adapter *a = l ? l->a : NULL;

    if (a && l->merged) {
        size_t n;

        RL_ASSERT(size_mul_ok(OC, C, &n));
        float *gw = l->gw;

        if (!a->grads && !dw) {
            linear_backward(dinp, NULL, db, dout, inp, w, N, C, OC);
            return;
        }
        if (l->rows && !dw) {                   /* no weight gradient at all */
            linear_backward(dinp, NULL, db, dout, inp, w, N, C, OC);
            adapter_project_rows(a, inp, dout, N);
            return;
        }
        if (a->grads && !dw && (a->ops->flags & ADAPTER_F_GRAD_IS_GW)) {
            linear_backward(dinp, a->grads, db, dout, inp, w, N, C, OC);
            return;
        }
        if (l->gw_sum && !dw) {                 /* projected once per step */
            linear_backward(dinp, l->gw_sum, db, dout, inp, w, N, C, OC);
            return;
        }
        RL_ASSERT(gw != NULL);
        memset(gw, 0, n * sizeof(float));
        linear_backward(dinp, gw, db, dout, inp, w, N, C, OC);
        adapter_project_grad(a, gw);
        if (dw)
            for (size_t k = 0; k < n; k++)
                dw[k] += gw[k];
        return;
    }
    linear_backward(dinp, dw, db, dout, inp, w, N, C, OC);
    if (a)
        adapter_backward(a, inp, dout, dinp, N);
}

