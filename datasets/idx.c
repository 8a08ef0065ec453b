/*
 * idx.c: MNIST-format IDX files, plain or gzip (read through zlib's gzread,
 * which passes plain files through unchanged).
 *
 * Layout of one file (big-endian): 0x00 0x00 TYPE NDIMS, NDIMS uint32 sizes,
 * then the data in C order. Only TYPE 0x08 (unsigned byte) is read; images
 * are N x H x W (NDIMS 3), labels N (NDIMS 1).
 *
 * Files looked for in DIR, for the train / test split:
 *     train-images-idx3-ubyte[.gz]  train-labels-idx1-ubyte[.gz]
 *     t10k-images-idx3-ubyte[.gz]   t10k-labels-idx1-ubyte[.gz]
 * (also "train-images.idx3-ubyte" spellings and "test-" for "t10k-"), else the
 * single file in DIR whose name holds the split ("train", "t10k" or "test"),
 * "images" or "labels", and "idx3" or "idx1" (EMNIST-style prefixes).
 * Class names: DIR/classnames.txt when present (its line count is the class
 * count), the built-in Fashion-MNIST names for the fashion-mnist spec, else
 * "0".."max label".
 *
 * Every header and size is checked before anything large is allocated: a
 * plain file's size must equal header + N*H*W exactly; a gzip stream is read
 * in growing chunks, so a lying header cannot make us allocate more than the
 * data that is really there (plus one chunk). Trailing data is an error, and
 * the gzip CRC is verified by reading to the end of the stream.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "core/alloc.h"
#include "core/status.h"
#include "datasets/dataset.h"

#define IDX_MAX_SIDE   65536u
#define IDX_MAX_BYTES  ((size_t)1 << 36)   /* 64 GiB: far above any IDX set */
#define IDX_CHUNK      ((size_t)1 << 24)

static const char *const fashion_names[10] = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
};

struct idx_impl {
    uint8_t *images;   /* n x h x w */
    uint8_t *labels;   /* n */
};

/* Read one IDX file: ndims must be want_ndims; dims[] gets the sizes and
 * *data (malloc'd) the payload of prod(dims) bytes. Exported for the fuzzer
 * through idx_read_file below. */
static int idx_read(const char *path, unsigned want_ndims, uint32_t dims[3], uint8_t **data_out)
{
    unsigned char hdr[4 + 4 * 3];
    size_t total = 1, got = 0, cap, hdr_len;
    uint8_t *data = NULL;
    gzFile gz;
    int r, rc = RL_OK;

    *data_out = NULL;
    errno = 0;
    gz = gzopen(path, "rb");
    if (!gz)
        return rl_error_set(RL_ERR_IO, "%s: cannot open: %s", path,
                            errno ? strerror(errno) : "out of memory");
    gzbuffer(gz, 1u << 17);
    r = gzread(gz, hdr, 4);
    if (r < 0) {
        int zerr;
        rc = rl_error_set(RL_ERR_FORMAT, "%s: corrupt gzip data: %s", path, gzerror(gz, &zerr));
        goto out;
    }
    if (r < 4) {
        rc = rl_error_set(RL_ERR_FORMAT, "%s: truncated: %d of 4 header bytes", path, r);
        goto out;
    }
    if (hdr[0] != 0 || hdr[1] != 0) {
        rc = rl_error_set(RL_ERR_FORMAT, "%s: bad magic %02x %02x %02x %02x: not an IDX file",
                          path, hdr[0], hdr[1], hdr[2], hdr[3]);
        goto out;
    }
    if (hdr[2] != 0x08) {
        rc = rl_error_set(RL_ERR_FORMAT, "%s: IDX element type 0x%02x, only 0x08 (unsigned byte) "
                          "is supported", path, hdr[2]);
        goto out;
    }
    if (hdr[3] != want_ndims) {
        rc = rl_error_set(RL_ERR_FORMAT, "%s: %u dimensions, expected %u (%s)", path, hdr[3],
                          want_ndims, want_ndims == 3 ? "images N x H x W" : "labels N");
        goto out;
    }
    hdr_len = 4 + 4 * (size_t)want_ndims;
    r = gzread(gz, hdr + 4, (unsigned)(hdr_len - 4));
    if (r < 0 || (size_t)r < hdr_len - 4) {
        int zerr;
        rc = rl_error_set(RL_ERR_FORMAT, "%s: truncated header%s%s", path, r < 0 ? ": " : "",
                          r < 0 ? gzerror(gz, &zerr) : "");
        goto out;
    }
    for (unsigned d = 0; d < want_ndims; d++) {
        const unsigned char *p = hdr + 4 + 4 * d;

        dims[d] = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
        if (dims[d] == 0) {
            rc = rl_error_set(RL_ERR_FORMAT, "%s: dimension %u is 0", path, d);
            goto out;
        }
        if (d > 0 && dims[d] > IDX_MAX_SIDE) {
            rc = rl_error_set(RL_ERR_FORMAT, "%s: dimension %u is %u, at most %u", path, d,
                              dims[d], IDX_MAX_SIDE);
            goto out;
        }
        if (!size_mul_ok(total, dims[d], &total) || total > IDX_MAX_BYTES) {
            rc = rl_error_set(RL_ERR_FORMAT, "%s: dimensions give more than %zu bytes", path,
                              IDX_MAX_BYTES);
            goto out;
        }
    }
    if (gzdirect(gz)) {
        /* plain file: its size must match the header exactly */
        struct stat st;
        size_t want = total + hdr_len;

        if (stat(path, &st) == 0 && S_ISREG(st.st_mode) && (size_t)st.st_size != want) {
            rc = rl_error_set(RL_ERR_FORMAT, "%s: file has %lld bytes, the header's %u item%s "
                              "need %zu", path, (long long)st.st_size, dims[0],
                              dims[0] == 1 ? "" : "s", want);
            goto out;
        }
    }
    cap = total < IDX_CHUNK ? total : IDX_CHUNK;
    data = malloc(cap);
    if (!data) {
        rc = rl_error_set(RL_ERR_NOMEM, "%s: out of memory for %zu bytes", path, cap);
        goto out;
    }
    while (got < total) {
        size_t want = total - got;

        if (got == cap) {
            size_t ncap = cap * 2 < total ? cap * 2 : total;
            uint8_t *p = realloc(data, ncap);

            if (!p) {
                rc = rl_error_set(RL_ERR_NOMEM, "%s: out of memory for %zu bytes", path, ncap);
                goto out;
            }
            data = p;
            cap = ncap;
        }
        if (want > cap - got)
            want = cap - got;
        if (want > (1u << 30))
            want = 1u << 30;
        r = gzread(gz, data + got, (unsigned)want);
        if (r < 0) {
            int zerr;
            rc = rl_error_set(RL_ERR_FORMAT, "%s: corrupt gzip data after %zu bytes: %s", path,
                              got + hdr_len, gzerror(gz, &zerr));
            goto out;
        }
        if (r == 0) {
            rc = rl_error_set(RL_ERR_FORMAT, "%s: truncated: %zu of %zu data bytes for %u "
                              "item%s", path, got, total, dims[0], dims[0] == 1 ? "" : "s");
            goto out;
        }
        got += (size_t)r;
    }
    {
        unsigned char extra[64];

        r = gzread(gz, extra, sizeof(extra));
        if (r < 0) {
            int zerr;
            rc = rl_error_set(RL_ERR_FORMAT, "%s: corrupt gzip data at the end: %s", path,
                              gzerror(gz, &zerr));
            goto out;
        }
        if (r == 0) {
            /* an incomplete gzip stream reads as a short read, with Z_BUF_ERROR */
            int zerr;
            const char *msg = gzerror(gz, &zerr);

            if (zerr != Z_OK) {
                rc = rl_error_set(RL_ERR_FORMAT, "%s: truncated or corrupt gzip stream: %s", path,
                                  msg);
                goto out;
            }
        }
        if (r > 0) {
            rc = rl_error_set(RL_ERR_FORMAT, "%s: data continues after the %zu bytes the header's "
                              "%u item%s need", path, total + hdr_len, dims[0],
                              dims[0] == 1 ? "" : "s");
            goto out;
        }
    }
out:
    gzclose(gz);
    if (rc != RL_OK) {
        free(data);
        return rc;
    }
    *data_out = data;
    return RL_OK;
}

int idx_read_file(const char *path, unsigned ndims)
{
    uint32_t dims[3];
    uint8_t *data;
    int rc = idx_read(path, ndims, dims, &data);

    if (rc == RL_OK)
        free(data);
    return rc;
}

static int file_exists(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Find the images (kind "images", "idx3") or labels ("labels", "idx1") file
 * of a split in dir; path gets the full path. */
static int find_file(const char *dir, enum ds_split split, const char *kind, const char *idxn,
                     char *path, size_t cap)
{
    static const char *const train_pre[] = { "train" };
    static const char *const test_pre[] = { "t10k", "test" };
    const char *const *pre = split == DS_TRAIN ? train_pre : test_pre;
    int n_pre = split == DS_TRAIN ? 1 : 2;
    char found[2][256];
    int n_found = 0;
    DIR *d;
    struct dirent *e;

    for (int p = 0; p < n_pre; p++) {
        for (int sep = 0; sep < 2; sep++) {
            for (int gz = 0; gz < 2; gz++) {
                snprintf(path, cap, "%s/%s-%s%s%s-ubyte%s", dir, pre[p], kind, sep ? "." : "-",
                         idxn, gz ? ".gz" : "");
                if (file_exists(path))
                    return RL_OK;
            }
        }
    }
    d = opendir(dir);
    if (!d)
        return rl_error_set(RL_ERR_IO, "%s: cannot open directory: %s", dir, strerror(errno));
    while ((e = readdir(d)) != NULL) {
        const char *name = e->d_name;
        int split_ok = 0;

        for (int p = 0; p < n_pre; p++)
            split_ok |= strstr(name, pre[p]) != NULL;
        if (!split_ok || !strstr(name, kind) || !strstr(name, idxn) || strlen(name) >= 256)
            continue;
        if (n_found < 2)
            snprintf(found[n_found], sizeof(found[0]), "%s", name);
        n_found++;
    }
    closedir(d);
    if (n_found == 2) {
        /* "x" and "x.gz": take the plain one */
        size_t l0 = strlen(found[0]), l1 = strlen(found[1]);

        if (l1 == l0 + 3 && strncmp(found[0], found[1], l0) == 0 && !strcmp(found[1] + l0, ".gz"))
            n_found = 1;
        else if (l0 == l1 + 3 && strncmp(found[0], found[1], l1) == 0 &&
                 !strcmp(found[0] + l1, ".gz")) {
            memcpy(found[0], found[1], sizeof(found[0]));
            n_found = 1;
        }
    }
    if (n_found == 1) {
        snprintf(path, cap, "%s/%s", dir, found[0]);
        return RL_OK;
    }
    if (n_found > 1)
        return rl_error_set(RL_ERR_FORMAT, "%s: several %s %s files (%s, %s%s); keep one per "
                            "directory", dir, split == DS_TRAIN ? "train" : "test", kind,
                            found[0], found[1], n_found > 2 ? ", ..." : "");
    return rl_error_set(RL_ERR_IO, "%s: no %s %s file (looked for %s-%s-%s-ubyte[.gz])", dir,
                        split == DS_TRAIN ? "train" : "test", kind, pre[0], kind, idxn);
}

static int idx_open_common(struct dataset *ds, const char *dir, enum ds_split split, int fashion)
{
    char img_path[4096], lab_path[4096], names_path[4096];
    uint32_t idims[3], ldims[3];
    uint8_t *images = NULL, *labels = NULL;
    struct idx_impl *impl;
    char **names = NULL;
    int n_names = 0, max_label = 0, rc;
    struct stat st;

    if (stat(dir, &st) != 0)
        return rl_error_set(RL_ERR_IO, "%s: cannot open directory: %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return rl_error_set(RL_ERR_ARG, "%s: not a directory (the IDX reader wants the directory "
                            "holding train-images-idx3-ubyte[.gz] etc.)", dir);
    if ((rc = find_file(dir, split, "images", "idx3", img_path, sizeof(img_path))) != RL_OK ||
        (rc = find_file(dir, split, "labels", "idx1", lab_path, sizeof(lab_path))) != RL_OK)
        return rc;
    snprintf(names_path, sizeof(names_path), "%s/classnames.txt", dir);
    rc = ds_read_lines(names_path, &names, &n_names, 100000);
    if (rc == RL_ERR_NA) {
        names = NULL;
        n_names = 0;
    } else if (rc != RL_OK) {
        return rc;
    } else if (n_names == 0) {
        return rl_error_set(RL_ERR_FORMAT, "%s: no class names", names_path);
    }
    if ((rc = idx_read(img_path, 3, idims, &images)) != RL_OK ||
        (rc = idx_read(lab_path, 1, ldims, &labels)) != RL_OK)
        goto fail;
    if (idims[0] != ldims[0]) {
        rc = rl_error_set(RL_ERR_FORMAT, "%s: %u labels, but %s has %u images", lab_path,
                          ldims[0], img_path, idims[0]);
        goto fail;
    }
    if (!names && fashion) {
        n_names = 10;
        names = xmalloc_array(10, sizeof(*names));
        for (int c = 0; c < 10; c++)
            names[c] = xstrdup(fashion_names[c]);
    }
    for (uint32_t i = 0; i < ldims[0]; i++) {
        if (names && labels[i] >= n_names) {
            rc = rl_error_set(RL_ERR_FORMAT, "%s: label %u of item %u is out of range (%d "
                              "classes)", lab_path, labels[i], i, n_names);
            goto fail;
        }
        if (labels[i] > max_label)
            max_label = labels[i];
    }
    if (!names) {
        n_names = max_label + 1;
        names = ds_numbered_names(n_names);
    }
    impl = xmalloc(sizeof(*impl));
    impl->images = images;
    impl->labels = labels;
    ds->impl = impl;
    ds->n = idims[0];
    ds->n_classes = n_names;
    ds->class_names = names;
    ds->channels = 1;
    ds->height = (int)idims[1];
    ds->width = (int)idims[2];
    return RL_OK;
fail:
    free(images);
    free(labels);
    ds_free_lines(names, n_names);
    return rc;
}

static int idx_open(struct dataset *ds, const char *arg, enum ds_split split)
{
    return idx_open_common(ds, arg, split, 0);
}

static int fashion_open(struct dataset *ds, const char *arg, enum ds_split split)
{
    const char *dir = arg ? arg : "/usr/share/datasets/fashion-mnist";
    int rc = idx_open_common(ds, dir, split, 1);

    if (rc != RL_OK && !arg && rc == RL_ERR_IO) {
        char msg[1024];

        snprintf(msg, sizeof(msg), "%s", rl_error_msg());
        return rl_error_set(rc, "%s (install the Debian package dataset-fashion-mnist, or give "
                            "fashion-mnist:DIR)", msg);
    }
    return rc;
}

static int idx_load(const struct dataset *ds, size_t i, struct ds_image *img, int *label)
{
    const struct idx_impl *impl = ds->impl;
    size_t px = (size_t)ds->height * (size_t)ds->width;
    int rc = ds_image_reserve(img, 1, ds->height, ds->width);

    if (rc != RL_OK)
        return rc;
    memcpy(img->data, impl->images + i * px, px);
    *label = impl->labels[i];
    return RL_OK;
}

static int idx_label(const struct dataset *ds, size_t i)
{
    const struct idx_impl *impl = ds->impl;

    return impl->labels[i];
}

static void idx_close(struct dataset *ds)
{
    struct idx_impl *impl = ds->impl;

    if (!impl)
        return;
    free(impl->images);
    free(impl->labels);
    free(impl);
    ds->impl = NULL;
}

const struct dataset_ops dataset_idx_ops = {
    .name  = "idx",
    .usage = "idx:DIR               MNIST-format IDX files, plain or gzip "
             "(train-images-idx3-ubyte[.gz], t10k-...)",
    .arg   = 2,
    .open  = idx_open,
    .load  = idx_load,
    .label = idx_label,
    .close = idx_close,
};

const struct dataset_ops dataset_fashion_mnist_ops = {
    .name  = "fashion-mnist",
    .usage = "fashion-mnist[:DIR]   Fashion-MNIST (default /usr/share/datasets/fashion-mnist, "
             "package dataset-fashion-mnist)",
    .arg   = 1,
    .open  = fashion_open,
    .load  = idx_load,
    .label = idx_label,
    .close = idx_close,
};
