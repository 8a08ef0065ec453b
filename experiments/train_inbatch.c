/*
 * train_inbatch.c: the text side of the in-batch contrastive loss
 * (train.loss = inbatch), the RandLoRA authors' CLIPVL.forward
 * (PaulAlbert31/RandLoRA, vision_language/src/modeling.py lines 84-107):
 * one prompt per image of the micro-batch, the prompt of its class; the
 * logits are image x batch-prompt similarities (n x n) and the target of
 * image i is the first prompt of the batch with i's class. train_step.c
 * runs the vision tower, the head and the backward; evaluation is unchanged
 * (every class prompt, run_eval).
 */
#include <string.h>

#include "core/status.h"
#include "experiments/runner_impl.h"

void inbatch_targets(const int32_t *labels, size_t n, int32_t *targets)
{
    /* their y = one_hot(y); y = y @ y.T; argmax(y @ y.T): row i of the
     * square of the same-class matrix is n_c on i's class and 0 elsewhere,
     * and argmax takes the first maximum */
    for (size_t i = 0; i < n; i++) {
        size_t j = 0;

        while (labels[j] != labels[i])
            j++;
        targets[i] = (int32_t)j;
    }
}

/* s->ib_txt (n, D): one prompt per image, the class prompt of its label */
static int text_forward(struct run_state *s, const int32_t *labels, size_t n)
{
    const size_t D = s->D, ctx = s->ctx;

    if (!s->text_adapted) {
        /* frozen text: the class prompts' features, computed once, copied */
        if (!s->txt_valid) {
            int rc = clip_text_forward(&s->tr, &s->m, &s->ca, s->train_ids, s->M, ctx, s->txt);

            if (rc != RL_OK)
                return rc;
            s->txt_valid = true;
        }
        for (size_t j = 0; j < n; j++)
            memcpy(s->ib_txt + j * D, s->txt + (size_t)labels[j] * D, D * sizeof(float));
        return RL_OK;
    }
    /* adapted text: the n prompts through the tower (a class twice in the
     * batch runs twice, as theirs does: with dropout each draws its mask) */
    for (size_t j = 0; j < n; j++)
        memcpy(s->ib_ids + j * ctx, s->train_ids + (size_t)labels[j] * ctx,
               ctx * sizeof(int32_t));
    return clip_text_forward(&s->tr, &s->m, &s->ca, s->ib_ids, n, ctx, s->ib_txt);
}

int inbatch_forward(struct run_state *s, const float *x, const int32_t *labels, size_t n,
                    double *loss)
{
    int rc;

    RL_ASSERT(n > 0 && n <= s->B);
    inbatch_targets(labels, n, s->ib_targets);
    if ((rc = text_forward(s, labels, n)) != RL_OK)
        return rc;
    if ((rc = clip_vision_forward(&s->vr, &s->m, &s->ca, x, n, s->img)) != RL_OK)
        return rc;
    clip_head_logits(&s->head, s->img, s->ib_txt, n, n, s->scale);
    *loss = clip_head_crossentropy(&s->head, s->ib_targets);
    return RL_OK;
}

void inbatch_backward(struct run_state *s, size_t n, float dloss)
{
    const size_t D = s->D;

    memset(s->dimg, 0, n * D * sizeof(float));
    if (s->text_adapted)
        memset(s->ib_dtxt, 0, n * D * sizeof(float));
    clip_head_backward(&s->head, s->dimg, s->text_adapted ? s->ib_dtxt : NULL, NULL, dloss);
    if (s->vision_adapted)
        clip_vision_backward(&s->vr, &s->m, &s->ca, NULL, s->dimg, NULL);
    if (s->text_adapted)
        clip_text_backward(&s->tr, &s->m, &s->ca, NULL, s->ib_dtxt);
}
