/*
 * fewshot.c: k-shot and fraction sampling (see fewshot.h).
 */
#include "datasets/fewshot.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/rng.h"
#include "core/status.h"

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;

    return (x > y) - (x < y);
}

/* Group the indices by class: order[start[c] .. start[c+1]) are the items of
 * class c in ascending order. */
static int group(const int *labels, size_t n, int n_classes, size_t **order_out,
                 size_t **start_out)
{
    size_t *start, *fill, *order;

    if (n_classes <= 0)
        return rl_error_set(RL_ERR_ARG, "few-shot sampling: %d classes", n_classes);
    for (size_t i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= n_classes)
            return rl_error_set(RL_ERR_ARG, "few-shot sampling: label %d of item %zu outside "
                                "[0, %d)", labels[i], i, n_classes);
    start = xcalloc((size_t)n_classes + 1, sizeof(*start));
    fill = xcalloc((size_t)n_classes, sizeof(*fill));
    order = xmalloc_array(n ? n : 1, sizeof(*order));
    for (size_t i = 0; i < n; i++)
        start[labels[i] + 1]++;
    for (int c = 0; c < n_classes; c++)
        start[c + 1] += start[c];
    for (size_t i = 0; i < n; i++) {
        int c = labels[i];

        order[start[c] + fill[c]++] = i;
    }
    free(fill);
    *order_out = order;
    *start_out = start;
    return RL_OK;
}

/* Take m of the class items at items[0..n_c) by a partial Fisher-Yates shuffle
 * (in place), appending them to out. */
static void pick(size_t *items, size_t n_c, size_t m, const struct rng *root, int c, size_t *out)
{
    struct rng r;

    rng_split(&r, root, (uint64_t)c);
    for (size_t j = 0; j < m; j++) {
        size_t t = j + (size_t)rng_below(&r, n_c - j);
        size_t tmp = items[j];

        items[j] = items[t];
        items[t] = tmp;
        out[j] = items[j];
    }
}

int fewshot_kshot(const int *labels, size_t n, int n_classes, const char *const *class_names,
                  int k, uint64_t seed, size_t **idx_out, size_t *n_out)
{
    size_t *order, *start, *out, total;
    struct rng root;
    int rc;

    *idx_out = NULL;
    *n_out = 0;
    if (k < 1)
        return rl_error_set(RL_ERR_ARG, "few-shot sampling: %d shots, need at least 1", k);
    if ((rc = group(labels, n, n_classes, &order, &start)) != RL_OK)
        return rc;
    for (int c = 0; c < n_classes; c++) {
        size_t n_c = start[c + 1] - start[c];

        if (n_c < (size_t)k) {
            if (class_names)
                rc = rl_error_set(RL_ERR_ARG, "few-shot sampling: class %d ('%s') has %zu item%s, "
                                  "fewer than %d shots", c, class_names[c], n_c,
                                  n_c == 1 ? "" : "s", k);
            else
                rc = rl_error_set(RL_ERR_ARG, "few-shot sampling: class %d has %zu item%s, fewer "
                                  "than %d shots", c, n_c, n_c == 1 ? "" : "s", k);
            free(order);
            free(start);
            return rc;
        }
    }
    total = (size_t)k * (size_t)n_classes;
    out = xmalloc_array(total, sizeof(*out));
    rng_init(&root, seed);
    for (int c = 0; c < n_classes; c++)
        pick(order + start[c], start[c + 1] - start[c], (size_t)k, &root, c,
             out + (size_t)c * (size_t)k);
    qsort(out, total, sizeof(*out), cmp_size);
    free(order);
    free(start);
    *idx_out = out;
    *n_out = total;
    return RL_OK;
}

int fewshot_fraction(const int *labels, size_t n, int n_classes, double frac, uint64_t seed,
                     size_t **idx_out, size_t *n_out)
{
    size_t *order, *start, *out, total = 0;
    struct rng root;
    int rc;

    *idx_out = NULL;
    *n_out = 0;
    if (!(frac > 0.0 && frac <= 1.0))
        return rl_error_set(RL_ERR_ARG, "fraction sampling: fraction %g outside (0, 1]", frac);
    if ((rc = group(labels, n, n_classes, &order, &start)) != RL_OK)
        return rc;
    out = xmalloc_array(n ? n : 1, sizeof(*out));
    rng_init(&root, seed);
    for (int c = 0; c < n_classes; c++) {
        size_t n_c = start[c + 1] - start[c];
        size_t m = (size_t)floor(frac * (double)n_c + 0.5);

        if (m == 0 && n_c > 0)
            m = 1;
        if (m > n_c)
            m = n_c;
        pick(order + start[c], n_c, m, &root, c, out + total);
        total += m;
    }
    qsort(out, total, sizeof(*out), cmp_size);
    free(order);
    free(start);
    *idx_out = out;
    *n_out = total;
    return RL_OK;
}
