/*
 * rng.h: a seedable, splittable random number generator.
 *
 * Algorithm (fixed, so a seed gives the same numbers on every machine):
 * xoshiro256** (Blackman & Vigna) for the stream, seeded through SplitMix64.
 * Floats take the top 24 bits of one draw; normals use the Box-Muller
 * transform in double precision, both values of a pair used in turn.
 *
 * rng_split derives an independent child stream from a parent and a stream
 * id without advancing the parent, so "the bases of layer 7" or "the shuffling
 * of epoch 3" can be reproduced on their own:
 *
 *     struct rng root, r;
 *     rng_init(&root, seed);
 *     rng_split(&r, &root, 7);
 *     float u = rng_uniform(&r);       // [0, 1)
 *     float z = rng_normal(&r);        // N(0, 1)
 */
#ifndef RANDLORA_CORE_RNG_H
#define RANDLORA_CORE_RNG_H

#include <stddef.h>
#include <stdint.h>

struct rng {
    uint64_t s[4];
    double   spare;       /* second Box-Muller value            */
    int      has_spare;   /* 1 when `spare` holds an unused one */
};

void     rng_init(struct rng *r, uint64_t seed);
void     rng_split(struct rng *child, const struct rng *parent, uint64_t stream);
uint64_t rng_u64(struct rng *r);
/* uniform integer in [0, n), n > 0, without modulo bias */
uint64_t rng_below(struct rng *r, uint64_t n);
/* uniform float in [0, 1) with 24 random bits */
float    rng_uniform(struct rng *r);
/* uniform float in [lo, hi) */
float    rng_uniform_range(struct rng *r, float lo, float hi);
/* standard normal */
float    rng_normal(struct rng *r);
/* fill x[0..n) with N(mean, std^2) / U[lo, hi) */
void     rng_fill_normal(struct rng *r, float *x, size_t n, float mean, float std);
void     rng_fill_uniform(struct rng *r, float *x, size_t n, float lo, float hi);

#endif /* RANDLORA_CORE_RNG_H */
