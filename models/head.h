/*
 * head.h: a linear classification head on a backbone's features, trained
 * with softmax cross-entropy (peft's modules_to_save "classifier": its
 * tensors are classifier.weight (M, FD) and classifier.bias (M)).
 *
 *     struct linear_head h;
 *     linear_head_init(&h, FD, M, max_N, seed);  // nn.Linear's init
 *     loss = linear_head_loss(&h, feats, labels, N);
 *     linear_head_backward(&h, dfeats, dloss);   // grads +=, dfeats +=
 *
 * One allocation: the parameters (weight then bias: `params`, n_params
 * floats), their gradients, and the logits / probabilities of max_N rows.
 * Backward accumulates (nn.h conventions).
 */
#ifndef RANDLORA_MODELS_HEAD_H
#define RANDLORA_MODELS_HEAD_H

#include <stddef.h>
#include <stdint.h>

struct linear_head {
    size_t in, out;             /* FD features -> M classes                  */
    size_t max_N, N;            /* rows: capacity, of the last loss          */
    size_t n_params;            /* out * in + out                            */
    float *params, *grads;      /* (n_params) weight (out,in), then bias     */
    float *w, *b, *dw, *db;     /* views                                     */
    float *logits, *probs;      /* (max_N, out)                              */
    float *dlogits;             /* (max_N, out)                              */
    const float *feats;         /* of the last loss (borrowed)               */
    const int32_t *targets;     /* of the last loss (borrowed)               */
};

/* PyTorch nn.Linear's init: weight and bias U(-1/sqrt(in), 1/sqrt(in)),
 * from seed. */
void  linear_head_init(struct linear_head *h, size_t in, size_t out, size_t max_N,
                       uint64_t seed);
void  linear_head_free(struct linear_head *h);
/* logits (N, out) of feats (N, in) */
void  linear_head_logits(struct linear_head *h, const float *feats, size_t N);
/* the mean cross-entropy of targets (N, in [0, out)) on those logits;
 * feats and targets are borrowed until the backward */
float linear_head_loss(struct linear_head *h, const float *feats, const int32_t *targets,
                       size_t N);
/* backward of the last loss scaled by dloss: grads +=, dfeats (N, in) +=
 * (may be NULL) */
void  linear_head_backward(struct linear_head *h, float *dfeats, float dloss);
/* rows of the last logits whose argmax (first of ties) is the target */
size_t linear_head_correct(const struct linear_head *h, const int32_t *targets, size_t N);

#endif /* RANDLORA_MODELS_HEAD_H */
