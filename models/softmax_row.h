/*
 * softmax_row.h: the attention softmax of one row of scores, shared by the
 * encoder's attention (attention.c) and the decoder's (llama_attention.c).
 */
#ifndef RANDLORA_MODELS_SOFTMAX_ROW_H
#define RANDLORA_MODELS_SOFTMAX_ROW_H

#include <stddef.h>

#include "models/exp_vec.h"

/* In-place stable softmax of one row of scores (T), keys 0..n-1 valid
 * (n = i+1 under the causal mask, else T); entries n..T-1 become exactly 0.
 * exp in float after subtracting the row max (so every exponent is <= 0 and
 * the largest term is exactly 1); the normaliser is summed in double. */
static inline void softmax_row(float *row, size_t n, size_t T)
{
    float maxv = row[0];
    double sum = 0.0;
    float inv;

    for (size_t j = 1; j < n; j++)
        if (row[j] > maxv)
            maxv = row[j];
    for (size_t j = 0; j < n; j++)          /* vectorized (exp_vec.h) */
        row[j] = exp_vec(row[j] - maxv);
    for (size_t j = 0; j < n; j++)
        sum += (double)row[j];
    /* sum >= 1 (the max term), so the division is safe */
    inv = (float)(1.0 / sum);
    for (size_t j = 0; j < n; j++)
        row[j] *= inv;
    for (size_t j = n; j < T; j++)
        row[j] = 0.0f;
}

#endif /* RANDLORA_MODELS_SOFTMAX_ROW_H */
