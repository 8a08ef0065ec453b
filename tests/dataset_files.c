/*
 * dataset_files.c: the dataset suites' temporary directory and file writers
 * (dataset_files.h).
 */
#include "dataset_files.h"

#include <stdio.h>
#include <sys/stat.h>
#include <zlib.h>

#include <check.h>

char ds_tmpdir[256];

void ds_tmp_setup(void)
{
    ck_assert_ptr_nonnull(test_tmpdir_make(ds_tmpdir, sizeof(ds_tmpdir), "ds"));
}

void ds_tmp_teardown(void)
{
    test_tmpdir_remove(ds_tmpdir);
    ds_tmpdir[0] = '\0';
}
void ds_mkdir(const char *path)
{
    ck_assert_msg(mkdir(path, 0755) == 0, "mkdir %s", path);
}

void ds_write_bytes(const char *path, const void *data, size_t n, int gz)
{
    if (gz) {
        gzFile f = gzopen(path, "wb");

        ck_assert_ptr_nonnull(f);
        if (n)
            ck_assert_int_eq(gzwrite(f, data, (unsigned)n), (int)n);
        ck_assert_int_eq(gzclose(f), Z_OK);
    } else {
        test_write_file(path, data, n);
    }
}
