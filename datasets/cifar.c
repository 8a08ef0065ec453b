/*
 * cifar.c: CIFAR-10 and CIFAR-100 binary versions.
 *
 * CIFAR-10 (DIR or DIR/cifar-10-batches-bin): data_batch_1.bin, data_batch_2.bin, ...
 * (read in order up to the first missing one) for train, test_batch.bin for
 * test; records of 1 label byte + 3072 image bytes (32 x 32, the R plane, then
 * G, then B); class names from batches.meta.txt.
 * CIFAR-100 (DIR or DIR/cifar-100-binary): train.bin, test.bin; records of a
 * coarse label byte, a fine label byte, 3072 image bytes; names from
 * fine_label_names.txt / coarse_label_names.txt. The spec cifar100 uses the
 * fine labels (100 classes), cifar100-coarse the coarse ones (20).
 * A missing names file gives the names "0", "1", ...; a names file with the
 * wrong number of lines is an error.
 *
 * File sizes must be a whole, non-zero number of records; labels are checked
 * against the class count. Everything is held in memory (CIFAR-10 train is
 * 150 MB) and images are converted to HWC when loaded.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/alloc.h"
#include "core/status.h"
#include "datasets/dataset.h"

#define CIFAR_PIXELS   (32 * 32)
#define CIFAR_IMAGE    (3 * CIFAR_PIXELS)
#define CIFAR_MAX_FILES 64
#define CIFAR_MAX_BYTES ((size_t)1 << 33)

struct cifar_impl {
    uint8_t *images;   /* n x 3072, CHW as in the file */
    uint8_t *labels;   /* n */
};

enum cifar_kind { CIFAR10, CIFAR100_FINE, CIFAR100_COARSE };

static int is_file(const char *path, struct stat *st)
{
    return stat(path, st) == 0 && S_ISREG(st->st_mode);
}

static int cifar_open_kind(struct dataset *ds, const char *arg, enum ds_split split,
                           enum cifar_kind kind)
{
    const int n_classes = kind == CIFAR10 ? 10 : kind == CIFAR100_FINE ? 100 : 20;
    const size_t rec = kind == CIFAR10 ? 1 + CIFAR_IMAGE : 2 + CIFAR_IMAGE;
    const size_t label_off = kind == CIFAR100_FINE ? 1 : 0;
    const char *sub = kind == CIFAR10 ? "cifar-10-batches-bin" : "cifar-100-binary";
    const char *first = kind == CIFAR10 ? (split == DS_TRAIN ? "data_batch_1.bin" : "test_batch.bin")
                                        : (split == DS_TRAIN ? "train.bin" : "test.bin");
    const char *names_file = kind == CIFAR10 ? "batches.meta.txt"
                           : kind == CIFAR100_FINE ? "fine_label_names.txt"
                                                   : "coarse_label_names.txt";
    char dir[4096], path[4200], files[CIFAR_MAX_FILES][4200];
    size_t sizes[CIFAR_MAX_FILES], total = 0, n_items, at = 0;
    uint8_t *images = NULL, *labels = NULL, *buf = NULL;
    char **names = NULL;
    int n_files = 0, n_names = 0, rc;
    struct stat st;

    if (stat(arg, &st) != 0)
        return rl_error_set(RL_ERR_IO, "%s: cannot open directory: %s", arg, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return rl_error_set(RL_ERR_ARG, "%s: not a directory", arg);
    snprintf(dir, sizeof(dir), "%s", arg);
    snprintf(path, sizeof(path), "%s/%s", dir, first);
    if (!is_file(path, &st)) {
        char alt[4200];

        snprintf(alt, sizeof(alt), "%s/%s/%s", arg, sub, first);
        if (!is_file(alt, &st))
            return rl_error_set(RL_ERR_IO, "%s: no %s (nor %s/%s); is this the %s binary "
                                "version?", arg, first, sub, first,
                                kind == CIFAR10 ? "CIFAR-10" : "CIFAR-100");
        snprintf(dir, sizeof(dir), "%s/%s", arg, sub);
    }
    /* the files of the split, and their sizes */
    for (int b = 1; n_files < CIFAR_MAX_FILES; b++) {
        if (kind == CIFAR10 && split == DS_TRAIN)
            snprintf(files[n_files], sizeof(files[0]), "%s/data_batch_%d.bin", dir, b);
        else if (b == 1)
            snprintf(files[n_files], sizeof(files[0]), "%s/%s", dir, first);
        else
            break;
        if (!is_file(files[n_files], &st))
            break;
        if (st.st_size <= 0 || (size_t)st.st_size % rec != 0)
            return rl_error_set(RL_ERR_FORMAT, "%s: %lld bytes, not a whole number of %zu-byte "
                                "records", files[n_files], (long long)st.st_size, rec);
        sizes[n_files] = (size_t)st.st_size;
        if (!size_add_ok(total, sizes[n_files], &total) || total > CIFAR_MAX_BYTES)
            return rl_error_set(RL_ERR_FORMAT, "%s: more than %zu bytes of CIFAR data", dir,
                                CIFAR_MAX_BYTES);
        n_files++;
    }
    if (n_files == 0)
        return rl_error_set(RL_ERR_IO, "%s/%s: cannot open", dir, first);
    /* class names */
    snprintf(path, sizeof(path), "%s/%s", dir, names_file);
    rc = ds_read_lines(path, &names, &n_names, 1000);
    if (rc == RL_ERR_NA) {
        names = ds_numbered_names(n_classes);
        n_names = n_classes;
    } else if (rc != RL_OK) {
        return rc;
    } else if (n_names != n_classes) {
        ds_free_lines(names, n_names);
        return rl_error_set(RL_ERR_FORMAT, "%s: %d class names, expected %d", path, n_names,
                            n_classes);
    }
    n_items = total / rec;
    images = malloc(n_items * CIFAR_IMAGE);
    labels = malloc(n_items);
    buf = malloc(rec * 1024);
    if (!images || !labels || !buf) {
        rc = rl_error_set(RL_ERR_NOMEM, "%s: out of memory for %zu images", dir, n_items);
        goto fail;
    }
    for (int f = 0; f < n_files; f++) {
        FILE *fp = fopen(files[f], "rb");
        size_t left = sizes[f] / rec, file_item = 0;

        if (!fp) {
            rc = rl_error_set(RL_ERR_IO, "%s: cannot open: %s", files[f], strerror(errno));
            goto fail;
        }
        while (left > 0) {
            size_t chunk = left < 1024 ? left : 1024;

            if (fread(buf, rec, chunk, fp) != chunk) {
                rc = rl_error_set(RL_ERR_IO, "%s: short read", files[f]);
                fclose(fp);
                goto fail;
            }
            for (size_t r = 0; r < chunk; r++, file_item++, at++) {
                const uint8_t *p = buf + r * rec;
                uint8_t lab = p[label_off];

                if (lab >= n_classes) {
                    rc = rl_error_set(RL_ERR_FORMAT, "%s: label %u of record %zu is out of range "
                                      "(%d classes)", files[f], lab, file_item, n_classes);
                    fclose(fp);
                    goto fail;
                }
                labels[at] = lab;
                memcpy(images + at * CIFAR_IMAGE, p + rec - CIFAR_IMAGE, CIFAR_IMAGE);
            }
            left -= chunk;
        }
        fclose(fp);
    }
    free(buf);
    {
        struct cifar_impl *impl = xmalloc(sizeof(*impl));

        impl->images = images;
        impl->labels = labels;
        ds->impl = impl;
    }
    ds->n = n_items;
    ds->n_classes = n_classes;
    ds->class_names = names;
    ds->channels = 3;
    ds->height = 32;
    ds->width = 32;
    return RL_OK;
fail:
    free(images);
    free(labels);
    free(buf);
    ds_free_lines(names, n_names);
    return rc;
}

static int cifar10_open(struct dataset *ds, const char *arg, enum ds_split split)
{
    return cifar_open_kind(ds, arg, split, CIFAR10);
}

static int cifar100_open(struct dataset *ds, const char *arg, enum ds_split split)
{
    return cifar_open_kind(ds, arg, split, CIFAR100_FINE);
}

static int cifar100_coarse_open(struct dataset *ds, const char *arg, enum ds_split split)
{
    return cifar_open_kind(ds, arg, split, CIFAR100_COARSE);
}

static int cifar_load(const struct dataset *ds, size_t i, struct ds_image *img, int *label)
{
    const struct cifar_impl *impl = ds->impl;
    const uint8_t *src = impl->images + i * CIFAR_IMAGE;
    int rc = ds_image_reserve(img, 3, 32, 32);

    if (rc != RL_OK)
        return rc;
    for (int p = 0; p < CIFAR_PIXELS; p++)
        for (int c = 0; c < 3; c++)
            img->data[p * 3 + c] = src[c * CIFAR_PIXELS + p];
    *label = impl->labels[i];
    return RL_OK;
}

static int cifar_label(const struct dataset *ds, size_t i)
{
    const struct cifar_impl *impl = ds->impl;

    return impl->labels[i];
}

static void cifar_close(struct dataset *ds)
{
    struct cifar_impl *impl = ds->impl;

    if (!impl)
        return;
    free(impl->images);
    free(impl->labels);
    free(impl);
    ds->impl = NULL;
}

const struct dataset_ops dataset_cifar10_ops = {
    .name  = "cifar10",
    .usage = "cifar10:DIR           CIFAR-10 binary (data_batch_N.bin, test_batch.bin, "
             "batches.meta.txt)",
    .arg   = 2,
    .open  = cifar10_open,
    .load  = cifar_load,
    .label = cifar_label,
    .close = cifar_close,
};

const struct dataset_ops dataset_cifar100_ops = {
    .name  = "cifar100",
    .usage = "cifar100:DIR          CIFAR-100 binary, fine labels (train.bin, test.bin, "
             "fine_label_names.txt)",
    .arg   = 2,
    .open  = cifar100_open,
    .load  = cifar_load,
    .label = cifar_label,
    .close = cifar_close,
};

const struct dataset_ops dataset_cifar100_coarse_ops = {
    .name  = "cifar100-coarse",
    .usage = "cifar100-coarse:DIR   CIFAR-100 binary, the 20 coarse labels "
             "(coarse_label_names.txt)",
    .arg   = 2,
    .open  = cifar100_coarse_open,
    .load  = cifar_load,
    .label = cifar_label,
    .close = cifar_close,
};
