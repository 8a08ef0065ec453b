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

#endif /* RANDLORA_DATASETS_FEWSHOT_H */
