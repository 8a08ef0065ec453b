/*
 * golden.h: reader for the named-tensor golden files written by
 * the tests/ref scripts (PyTorch reference values for the suites).
 *
 * Format (every integer uint32 little-endian):
 *     magic   "RLGT"
 *     version GOLDEN_VERSION
 *     count   number of tensors
 *     count x { name_len, name (no NUL), ndim, dims[ndim],
 *               float32 little-endian data, prod(dims) values (1 if ndim = 0) }
 *
 * The file is treated as hostile: magic and version are checked, every
 * length, dim and element count is checked against the bytes left with
 * overflow-checked arithmetic, names must be unique and non-empty, and no
 * bytes may trail. Failures return RL_ERR_IO / RL_ERR_FORMAT with one line
 * from rl_error_msg() naming the file and the problem.
 *
 *     struct golden g;
 *     if (golden_open(&g, fixture_path("block_golden.bin"), BLOCK_GOLDEN_HINT) != RL_OK)
 *         ... rl_error_msg() ...
 *     const float *x = golden_get(&g, "case1.x", 3, (size_t[]){ 2, 5, 16 });
 *     golden_close(&g);
 */
#ifndef RANDLORA_TESTS_GOLDEN_H
#define RANDLORA_TESTS_GOLDEN_H

#include <stddef.h>

#define GOLDEN_VERSION   1u
#define GOLDEN_MAX_DIMS  8
#define GOLDEN_MAX_NAME  255
/* a fixture is small; anything larger is refused before it is read */
#define GOLDEN_MAX_BYTES ((size_t)64 << 20)

struct golden_tensor {
    char *name;                    /* NUL-terminated                   */
    size_t ndim;
    size_t dims[GOLDEN_MAX_DIMS];
    size_t n;                      /* element count (1 for a scalar)   */
    float *data;                   /* n floats, aligned, host order    */
};

struct golden {
    char *path;
    size_t count;
    struct golden_tensor *t;       /* count entries                    */
    float *data;                   /* one buffer behind every t[i].data */
    char *names;                   /* one buffer behind every t[i].name */
};

/* Read and validate the whole file. hint (may be NULL) is the command that
 * regenerates it, added to the message on a version mismatch. On failure g
 * is left empty (golden_close is still safe). */
int golden_open(struct golden *g, const char *path, const char *hint);
void golden_close(struct golden *g);

/* the tensor called name, or NULL */
const struct golden_tensor *golden_find(const struct golden *g, const char *name);

/* data of the tensor called name with exactly the shape dims[ndim] (ndim 0:
 * a scalar); NULL with rl_error_set(RL_ERR_FORMAT, ...) when it is missing
 * or shaped otherwise. */
const float *golden_get(const struct golden *g, const char *name,
                        size_t ndim, const size_t *dims);

#endif /* RANDLORA_TESTS_GOLDEN_H */
