/*
 * test_h5.h: reading a dataset of an HDF5 file the commands wrote, for the
 * suites that check `randlora score` output (tests/test_h5.c).
 */
#ifndef RANDLORA_TESTS_TEST_H5_H
#define RANDLORA_TESTS_TEST_H5_H

#include <stddef.h>

/* every value of the float dataset `name` of `path` (any shape), *n of
 * them; fails the test when it cannot be read. Caller frees. */
float *test_h5_read_floats(const char *path, const char *name, size_t *n);

#endif /* RANDLORA_TESTS_TEST_H5_H */
