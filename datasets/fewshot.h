/*
 * fewshot.h: seeded, class-balanced subsets of a training set.
 *
 * Both samplers take the labels of every item (dataset_labels), pick items per
 * class with a stream of their own (rng_split of rng_init(seed) by the class
 * index, so the picks of one class do not depend on the other classes), and
 * return the chosen indices SORTED ASCENDING in a new array, which the run file
 * stores so a run can be repeated exactly:
 *
 *     int *labels = dataset_labels(&ds);
 *     size_t *idx, n;
 *     rc = fewshot_kshot(labels, ds.n, ds.n_classes, (const char *const *)ds.class_names,
 *                        16, seed, &idx, &n);      // n == 16 * n_classes
 *     ...
 *     free(idx); free(labels);
 *
 * Within a class, the picks are the first k of a Fisher-Yates shuffle of that
 * class's indices (in ascending order) driven by rng_below, so the k-shot set
 * of a seed is a prefix-consistent sample: the 4-shot picks of a class contain
 * its 2-shot and 1-shot picks for the same seed.
 */
#ifndef RANDLORA_DATASETS_FEWSHOT_H
#define RANDLORA_DATASETS_FEWSHOT_H

#include <stddef.h>
#include <stdint.h>

/* k items of every class (k >= 1). RL_ERR_ARG when a class has fewer than k
 * items (the message names the class, with its name when class_names is not
 * NULL) or a label is outside [0, n_classes). */
int fewshot_kshot(const int *labels, size_t n, int n_classes, const char *const *class_names,
                  int k, uint64_t seed, size_t **idx_out, size_t *n_out);

/* A fraction 0 < frac <= 1 of every class: round(frac * n_c) items of a class
 * with n_c items (half away from zero), at least 1 when n_c > 0, so 0.5 of a
 * class of 7 takes 4 and 1.0 takes everything. */
int fewshot_fraction(const int *labels, size_t n, int n_classes, double frac, uint64_t seed,
                     size_t **idx_out, size_t *n_out);

/* A training sample with a validation split held out of the same pool:
 * shots > 0 (k-shot) or else fraction; val_per_class > 0 (that many items of
 * every class), or else val_fraction in (0, 1) (round(val_fraction * n_c),
 * at least 1 and at most n_c - 1 of a class of n_c >= 2 items, none of a
 * class of 1), or neither (no split). */
struct fewshot_request {
    size_t   shots;
    double   fraction;
    size_t   val_per_class;
    double   val_fraction;
    uint64_t seed;
};

/* The validation items are drawn first, from every item, with a stream of
 * their own (rng_init(seed ^ FEWSHOT_VAL_SALT), split by class as above);
 * the training sample is then drawn with `seed` from the items left, exactly
 * as fewshot_kshot / fewshot_fraction draw from a dataset of those items.
 * Without a split this is fewshot_kshot / fewshot_fraction on every item
 * (*val NULL, *n_val 0). Both outputs are sorted ascending, disjoint, and
 * owned by the caller. RL_ERR_ARG when a class has fewer items than
 * val_per_class, or too few left for the shots (the message says the split
 * was held out first). */
#define FEWSHOT_VAL_SALT 0x7A11DA7E5EEDull
int fewshot_split(const int *labels, size_t n, int n_classes, const char *const *class_names,
                  const struct fewshot_request *rq, size_t **train, size_t *n_train,
                  size_t **val, size_t *n_val);

#endif /* RANDLORA_DATASETS_FEWSHOT_H */
