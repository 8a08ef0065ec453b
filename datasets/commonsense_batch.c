/*
 * commonsense_batch.c: training examples of a whole commonsense set
 * (tokenized in parallel) and padded batches of them (commonsense.h).
 */
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/parallel.h"
#include "core/status.h"
#include "datasets/commonsense.h"

void cs_examples_free(struct cs_example *ex, size_t n)
{
    if (!ex)
        return;
    for (size_t i = 0; i < n; i++)
        cs_example_free(&ex[i]);
    free(ex);
}

int cs_tokenize_set(const struct bpe_tokenizer *t, const struct cs_set *set, int32_t eos_id,
                    size_t cutoff, bool train_on_inputs, struct cs_example **out)
{
    struct cs_example *ex = xcalloc(set->n + 1, sizeof(*ex));
    int *rc = xcalloc(set->n + 1, sizeof(*rc));
    size_t bad = set->n;

    PARALLEL_FOR(set->n * 4096)
    for (size_t i = 0; i < set->n; i++)
        rc[i] = cs_tokenize_train(t, &set->items[i], eos_id, cutoff, train_on_inputs, &ex[i]);
    for (size_t i = 0; i < set->n && bad == set->n; i++)
        if (rc[i] != RL_OK)
            bad = i;
    free(rc);
    if (bad < set->n) {
        /* again on this thread, for the message (the first run's is another thread's) */
        struct cs_example again = { 0 };
        int st = cs_tokenize_train(t, &set->items[bad], eos_id, cutoff, train_on_inputs, &again);
        cs_example_free(&again);
        cs_examples_free(ex, set->n);
        *out = NULL;
        return rl_error_prefix(st, "item %zu", bad);
    }
    *out = ex;
    return RL_OK;
}

void cs_batch_free(struct cs_batch *b)
{
    free(b->ids);
    free(b->target);
    free(b->len);
    memset(b, 0, sizeof(*b));
}

int cs_batch_pad(const struct cs_example *ex, const size_t *idx, size_t n, int32_t pad_id,
                 size_t multiple, struct cs_batch *b)
{
    size_t T = 0, cells;

    memset(b, 0, sizeof(*b));
    if (n == 0 || multiple == 0)
        return rl_error_set(RL_ERR_ARG, "a batch of %zu examples padded to a multiple of %zu: "
                            "both must be at least 1", n, multiple);
    for (size_t k = 0; k < n; k++)
        if (ex[idx[k]].n > T)
            T = ex[idx[k]].n;
    T = (T + multiple - 1) / multiple * multiple;
    if (T == 0)
        T = multiple;
    if (!size_mul_ok(n, T, &cells))
        return rl_error_set(RL_ERR_ARG, "a batch of %zu x %zu ids overflows", n, T);
    b->ids = xmalloc_array(cells, sizeof(*b->ids));
    b->target = xcalloc(cells, 1);
    b->len = xmalloc_array(n, sizeof(*b->len));
    b->n = n;
    b->T = T;
    for (size_t k = 0; k < n; k++) {
        const struct cs_example *e = &ex[idx[k]];
        int32_t *row = b->ids + k * T;
        memcpy(row, e->ids, e->n * sizeof(*row));
        for (size_t i = e->n; i < T; i++)
            row[i] = pad_id;
        memcpy(b->target + k * T, e->target, e->n);
        b->len[k] = e->n;
    }
    return RL_OK;
}
