/*
 * dataset_files.c: the dataset suites' temporary directory and file writers
 * (dataset_files.h).
 */
#include "dataset_files.h"

#include <png.h>
#include <setjmp.h>
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

void ds_write_png(const char *path, int h, int w, int seed)
{
    FILE *f = fopen(path, "wb");
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    png_byte row[3 * 64];

    ck_assert_msg(f && png && info && w <= 64, "%s", path);
    ck_assert_int_eq(setjmp(png_jmpbuf(png)), 0);
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < h; y++) {
        for (int x = 0; x < 3 * w; x++)
            row[x] = (png_byte)(seed * 31 + y * 7 + x * 3);
        png_write_row(png, row);
    }
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    ck_assert_int_eq(fclose(f), 0);
}
