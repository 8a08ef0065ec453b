/*
 * test_h5.c: test_h5.h.
 */
#include <check.h>
#include <hdf5.h>
#include <stdlib.h>

#include "test_h5.h"

float *test_h5_read_floats(const char *path, const char *name, size_t *n)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT), d, sp;
    hsize_t dims[8];
    int nd;
    float *v;

    ck_assert_msg(f >= 0, "%s: cannot open", path);
    d = H5Dopen2(f, name, H5P_DEFAULT);
    ck_assert_msg(d >= 0, "%s: no dataset %s", path, name);
    sp = H5Dget_space(d);
    nd = H5Sget_simple_extent_ndims(sp);
    ck_assert(nd >= 0 && nd <= 8);
    H5Sget_simple_extent_dims(sp, dims, NULL);
    *n = 1;
    for (int i = 0; i < nd; i++)
        *n *= (size_t)dims[i];
    v = malloc((*n ? *n : 1) * sizeof(float));
    ck_assert_int_ge(H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v), 0);
    H5Sclose(sp);
    H5Dclose(d);
    H5Fclose(f);
    return v;
}
