/*
 * fewshot.c: k-shot and fraction sampling, and the validation split held out
 * before them (see fewshot.h).
 */
#include "datasets/fewshot.h"

#include <math.h>
#include <stdio.h>
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

/* the held-out validation items of every class (see fewshot_split) */
static int holdout(const int *labels, size_t n, int n_classes, const char *const *class_names,
                   const struct fewshot_request *rq, size_t **idx_out, size_t *n_out)
{
    size_t *order, *start, *out, total = 0;
    struct rng root;
    int rc;

    if ((rc = group(labels, n, n_classes, &order, &start)) != RL_OK)
        return rc;
    out = xmalloc_array(n ? n : 1, sizeof(*out));
    rng_init(&root, rq->seed ^ FEWSHOT_VAL_SALT);
    for (int c = 0; c < n_classes && rc == RL_OK; c++) {
        size_t n_c = start[c + 1] - start[c], m;

        if (rq->val_per_class) {
            m = rq->val_per_class;
            if (n_c < m) {
                rc = rl_error_set(RL_ERR_ARG, "validation split: class %d%s%s%s has %zu item%s, "
                                  "fewer than the %zu held out (data.val)", c,
                                  class_names ? " ('" : "", class_names ? class_names[c] : "",
                                  class_names ? "')" : "", n_c, n_c == 1 ? "" : "s", m);
                break;
            }
        } else {
            m = (size_t)floor(rq->val_fraction * (double)n_c + 0.5);
            if (m == 0 && n_c > 1)
                m = 1;
            if (n_c > 0 && m >= n_c)
                m = n_c - 1;
        }
        pick(order + start[c], n_c, m, &root, c, out + total);
        total += m;
    }
    free(order);
    free(start);
    if (rc != RL_OK) {
        free(out);
        return rc;
    }
    qsort(out, total, sizeof(*out), cmp_size);
    *idx_out = out;
    *n_out = total;
    return RL_OK;
}

static int sample(const int *labels, size_t n, int n_classes, const char *const *class_names,
                  const struct fewshot_request *rq, size_t **idx, size_t *n_idx)
{
    if (rq->shots)
        return fewshot_kshot(labels, n, n_classes, class_names, (int)rq->shots, rq->seed, idx,
                             n_idx);
    return fewshot_fraction(labels, n, n_classes, rq->fraction, rq->seed, idx, n_idx);
}

int fewshot_split(const int *labels, size_t n, int n_classes, const char *const *class_names,
                  const struct fewshot_request *rq, size_t **train, size_t *n_train,
                  size_t **val, size_t *n_val)
{
    size_t *held = NULL, n_held = 0, *pool, n_pool = 0, *sub = NULL, n_sub = 0;
    int *pool_labels;
    int rc;

    *train = *val = NULL;
    *n_train = *n_val = 0;
    if (rq->shots > (size_t)INT32_MAX)
        return rl_error_set(RL_ERR_ARG, "few-shot sampling: %zu shots", rq->shots);
    if (!rq->val_per_class && !(rq->val_fraction > 0.0))
        return sample(labels, n, n_classes, class_names, rq, train, n_train);
    if (!rq->val_per_class && !(rq->val_fraction < 1.0))
        return rl_error_set(RL_ERR_ARG, "validation split: fraction %g outside (0, 1)",
                            rq->val_fraction);
    if ((rc = holdout(labels, n, n_classes, class_names, rq, &held, &n_held)) != RL_OK)
        return rc;

    /* the pool: every item not held out, in ascending order */
    pool = xmalloc_array(n - n_held ? n - n_held : 1, sizeof(*pool));
    pool_labels = xmalloc_array(n - n_held ? n - n_held : 1, sizeof(*pool_labels));
    for (size_t i = 0, h = 0; i < n; i++) {
        if (h < n_held && held[h] == i) {
            h++;
            continue;
        }
        pool[n_pool] = i;
        pool_labels[n_pool++] = labels[i];
    }
    rc = sample(pool_labels, n_pool, n_classes, class_names, rq, &sub, &n_sub);
    if (rc != RL_OK) {
        char msg[512];

        snprintf(msg, sizeof msg, "%s", rl_error_msg());
        rc = rl_error_set(rc, "%s, after holding out %zu validation items (data.val)", msg, n_held);
    } else {
        for (size_t i = 0; i < n_sub; i++)      /* pool ascending: stays sorted */
            sub[i] = pool[sub[i]];
        *train = sub;
        *n_train = n_sub;
        *val = held;
        *n_val = n_held;
        held = NULL;
    }
    free(held);
    free(pool);
    free(pool_labels);
    return rc;
}
