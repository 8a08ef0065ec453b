/*
 * rng.c: xoshiro256** seeded by SplitMix64; uniform, normal, split.
 */
#include "core/rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

void rng_init(struct rng *r, uint64_t seed)
{
    uint64_t x = seed;

    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
    r->spare = 0.0;
    r->has_spare = 0;
}

void rng_split(struct rng *child, const struct rng *parent, uint64_t stream)
{
    /* mix every word of the parent's state with the stream id */
    uint64_t x = stream * 0xd1342543de82ef95ull + 0x2545f4914f6cdd1dull;

    for (int i = 0; i < 4; i++) {
        x ^= parent->s[i];
        (void)splitmix64(&x);
    }
    rng_init(child, x);
}

uint64_t rng_u64(struct rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;

    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint64_t rng_below(struct rng *r, uint64_t n)
{
    /* rejection: draw until the value falls below the largest multiple of n */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;

    do
        x = rng_u64(r);
    while (x >= limit);
    return x % n;
}

float rng_uniform(struct rng *r)
{
    return (float)(rng_u64(r) >> 40) * (1.0f / 16777216.0f);
}

float rng_uniform_range(struct rng *r, float lo, float hi)
{
    return lo + (hi - lo) * rng_uniform(r);
}

float rng_normal(struct rng *r)
{
    double u1, u2, rad;

    if (r->has_spare) {
        r->has_spare = 0;
        return (float)r->spare;
    }
    /* u1 in (0, 1] so log(u1) is finite */
    u1 = ((double)(rng_u64(r) >> 11) + 1.0) * (1.0 / 9007199254740992.0);
    u2 = (double)(rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
    rad = sqrt(-2.0 * log(u1));
    r->spare = rad * sin(2.0 * M_PI * u2);
    r->has_spare = 1;
    return (float)(rad * cos(2.0 * M_PI * u2));
}

void rng_fill_normal(struct rng *r, float *x, size_t n, float mean, float std)
{
    for (size_t i = 0; i < n; i++)
        x[i] = mean + std * rng_normal(r);
}

void rng_fill_uniform(struct rng *r, float *x, size_t n, float lo, float hi)
{
    for (size_t i = 0; i < n; i++)
        x[i] = rng_uniform_range(r, lo, hi);
}
