/*
 * adapted_linear.h: one frozen linear y = x W^T + b with its adapter
 * (methods/adapter.h) on the factored or the merged path, in fp32,
 * independent of which model it sits in: the Llama decoder layer
 * (llama_layer.c) describes each of its linears by one struct adapted_lin.
 * The CLIP encoder's block_linear.c applies the same rules to struct
 * block_adapters (plus its bf16 copies and packed in_proj); the two could
 * share this code once those settle.
 *
 * The two paths and the variants of the merged backward are those of
 * block.h's struct block_adapters, documented there.
 */
#ifndef RANDLORA_MODELS_ADAPTED_LINEAR_H
#define RANDLORA_MODELS_ADAPTED_LINEAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct adapter;

struct adapted_lin {
    struct adapter *a;          /* NULL: the plain linear                     */
    bool merged;                /* a is merged: w holds W + dW (a != NULL)    */
    float *gw;                  /* merged weight-gradient scratch (d_out*d_in)*/
    float *gw_sum;              /* NULL, or the step-long weight-gradient sum */
    bool rows;                  /* merged: project_rows instead of gw         */
};

/* out (N, OC) = inp (N, C) W^T + b, plus the adapter's branch on inp when
 * it is on the factored path (merged: w already holds W + dW). l may be
 * NULL (the plain linear). */
void adapted_lin_forward(float *out, const float *inp, const float *w, const float *b,
                         const struct adapted_lin *l, size_t N, size_t C, size_t OC);

/* its backward: dinp (N, C) += dout (N, OC) W, and the weight, bias and
 * adapter gradients on the path l is on; dinp, dw, db may be NULL. */
void adapted_lin_backward(float *dinp, float *dw, float *db, const float *dout,
                          const float *inp, const float *w, const struct adapted_lin *l,
                          size_t N, size_t C, size_t OC);

#endif /* RANDLORA_MODELS_ADAPTED_LINEAR_H */
