/*
 * dataset.c: the registry of readers, the spec parser, and helpers shared by
 * the readers (image buffers, text files of names).
 */
#include "datasets/dataset.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/status.h"

static const struct dataset_ops *const registry[] = {
    &dataset_fashion_mnist_ops,
    &dataset_idx_ops,
    &dataset_cifar10_ops,
    &dataset_cifar100_ops,
    &dataset_cifar100_coarse_ops,
    &dataset_folder_ops,
    &dataset_zhou_ops,
    &dataset_shapes_ops,
    &dataset_shapes_count_ops,
};

#define N_READERS (sizeof(registry) / sizeof(registry[0]))

const char *dataset_specs_help(void)
{
    static char help[2048];

    if (!help[0]) {
        size_t off = 0;

        for (size_t i = 0; i < N_READERS && off < sizeof(help); i++) {
            int w = snprintf(help + off, sizeof(help) - off, "  %s\n", registry[i]->usage);

            if (w < 0)
                break;
            off += (size_t)w;
        }
        if (off < sizeof(help))
            snprintf(help + off, sizeof(help) - off, "  (append :train or :test for a split; "
                     ":val for folder and zhou)\n");
    }
    return help;
}

static void names_list(char *buf, size_t cap)
{
    size_t off = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < N_READERS && off < cap; i++) {
        int w = snprintf(buf + off, cap - off, "%s%s%s", i ? ", " : "", registry[i]->name,
                         registry[i]->arg == 2 ? ":DIR" : registry[i]->arg == 1 ? "[:DIR]" : "");

        if (w < 0)
            break;
        off += (size_t)w;
    }
}

static int has_suffix(const char *s, size_t len, const char *suf)
{
    size_t n = strlen(suf);

    return len >= n && memcmp(s + len - n, suf, n) == 0;
}

int dataset_open(struct dataset *ds, const char *spec)
{
    char known[512];
    const struct dataset_ops *ops = NULL;
    enum ds_split split = DS_TRAIN;
    size_t len, name_len;
    const char *colon;
    char *arg = NULL;
    int rc;

    memset(ds, 0, sizeof(*ds));
    names_list(known, sizeof(known));
    if (!spec || !*spec)
        return rl_error_set(RL_ERR_ARG, "empty dataset spec; known: %s (optional :train or :test)",
                            known);
    len = strlen(spec);
    if (has_suffix(spec, len, ":train")) {
        len -= strlen(":train");
    } else if (has_suffix(spec, len, ":test")) {
        len -= strlen(":test");
        split = DS_TEST;
    } else if (has_suffix(spec, len, ":val")) {
        len -= strlen(":val");
        split = DS_VAL;
    }
    colon = memchr(spec, ':', len);
    name_len = colon ? (size_t)(colon - spec) : len;
    for (size_t i = 0; i < N_READERS; i++) {
        if (strlen(registry[i]->name) == name_len && memcmp(registry[i]->name, spec, name_len) == 0) {
            ops = registry[i];
            break;
        }
    }
    if (!ops)
        return rl_error_set(RL_ERR_ARG, "dataset spec '%s': unknown reader '%.*s'; known: %s "
                            "(optional :train or :test)", spec, (int)name_len, spec, known);
    if (split == DS_VAL && !ops->has_val)
        return rl_error_set(RL_ERR_ARG, "dataset spec '%s': '%s' has no :val split (only :train "
                            "and :test; folder and zhou have :val)", spec, ops->name);
    if (colon) {
        size_t alen = len - name_len - 1;

        if (ops->arg == 0)
            return rl_error_set(RL_ERR_ARG, "dataset spec '%s': '%s' takes no argument "
                                "(only :train or :test)", spec, ops->name);
        if (alen == 0)
            return rl_error_set(RL_ERR_ARG, "dataset spec '%s': empty directory after '%s:'",
                                spec, ops->name);
        arg = xmalloc(alen + 1);
        memcpy(arg, colon + 1, alen);
        arg[alen] = '\0';
    } else if (ops->arg == 2) {
        return rl_error_set(RL_ERR_ARG, "dataset spec '%s': '%s' needs a directory, as in %s",
                            spec, ops->name, ops->usage);
    }
    ds->ops = ops;
    ds->split = split;
    rc = ops->open(ds, arg, split);
    free(arg);
    if (rc != RL_OK) {
        ds_free_lines(ds->class_names, ds->n_classes);
        ds_free_lines(ds->templates, ds->n_templates);
        memset(ds, 0, sizeof(*ds));
        return rc;
    }
    ds->spec = xstrdup(spec);
    RL_ASSERT(ds->n_classes > 0 && ds->class_names);
    RL_ASSERT(ds->channels == 1 || ds->channels == 3);
    return RL_OK;
}

void dataset_close(struct dataset *ds)
{
    if (!ds || !ds->ops)
        return;
    if (ds->ops->close)
        ds->ops->close(ds);
    ds_free_lines(ds->class_names, ds->n_classes);
    ds_free_lines(ds->templates, ds->n_templates);
    free(ds->spec);
    memset(ds, 0, sizeof(*ds));
}

int dataset_load(const struct dataset *ds, size_t i, struct ds_image *img, int *label)
{
    if (i >= ds->n)
        return rl_error_set(RL_ERR_ARG, "%s: item %zu out of range (%zu items)", ds->spec, i, ds->n);
    return ds->ops->load(ds, i, img, label);
}

int dataset_label(const struct dataset *ds, size_t i)
{
    if (i >= ds->n)
        return -1;
    return ds->ops->label(ds, i);
}

int *dataset_labels(const struct dataset *ds)
{
    int *labels = xmalloc_array(ds->n ? ds->n : 1, sizeof(*labels));

    for (size_t i = 0; i < ds->n; i++)
        labels[i] = ds->ops->label(ds, i);
    return labels;
}

int dataset_caption(const struct dataset *ds, size_t i, char *buf, size_t cap)
{
    if (!ds->ops->caption)
        return rl_error_set(RL_ERR_NA, "%s: this dataset has no captions", ds->spec);
    if (i >= ds->n)
        return rl_error_set(RL_ERR_ARG, "%s: item %zu out of range (%zu items)", ds->spec, i, ds->n);
    return ds->ops->caption(ds, i, buf, cap);
}

/* --- helpers ------------------------------------------------------------- */

int ds_image_reserve(struct ds_image *img, int channels, int height, int width)
{
    size_t px, bytes;

    if (channels <= 0 || height <= 0 || width <= 0 ||
        !size_mul_ok((size_t)height, (size_t)width, &px) || px > DS_MAX_PIXELS ||
        !size_mul_ok(px, (size_t)channels, &bytes))
        return rl_error_set(RL_ERR_FORMAT, "image of %d x %d x %d is empty or too large",
                            height, width, channels);
    if (bytes > img->cap) {
        uint8_t *p = realloc(img->data, bytes);

        if (!p)
            return rl_error_set(RL_ERR_NOMEM, "out of memory for a %d x %d image", height, width);
        img->data = p;
        img->cap = bytes;
    }
    img->channels = channels;
    img->height = height;
    img->width = width;
    return RL_OK;
}

void ds_image_free(struct ds_image *img)
{
    if (!img)
        return;
    free(img->data);
    memset(img, 0, sizeof(*img));
}

int ds_read_lines(const char *path, char ***lines_out, int *n_out, int max_lines)
{
    FILE *f = fopen(path, "rb");
    char buf[1024];
    char **lines = NULL;
    int n = 0, cap = 0;

    *lines_out = NULL;
    *n_out = 0;
    if (!f) {
        if (errno == ENOENT)
            return RL_ERR_NA;
        return rl_error_set(RL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    }
    while (fgets(buf, sizeof(buf), f)) {
        size_t len = strlen(buf);

        if (len == sizeof(buf) - 1 && buf[len - 1] != '\n') {
            ds_free_lines(lines, n);
            fclose(f);
            return rl_error_set(RL_ERR_FORMAT, "%s: line %d longer than %zu characters", path,
                                n + 1, sizeof(buf) - 2);
        }
        while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' ' ||
                           buf[len - 1] == '\t'))
            buf[--len] = '\0';
        if (len == 0)
            continue;
        if (n >= max_lines) {
            ds_free_lines(lines, n);
            fclose(f);
            return rl_error_set(RL_ERR_FORMAT, "%s: more than %d lines", path, max_lines);
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            lines = xrealloc_array(lines, (size_t)cap, sizeof(*lines));
        }
        lines[n++] = xstrdup(buf);
    }
    if (ferror(f)) {
        ds_free_lines(lines, n);
        fclose(f);
        return rl_error_set(RL_ERR_IO, "%s: read error", path);
    }
    fclose(f);
    *lines_out = lines;
    *n_out = n;
    return RL_OK;
}

void ds_free_lines(char **lines, int n)
{
    if (!lines)
        return;
    for (int i = 0; i < n; i++)
        free(lines[i]);
    free(lines);
}

char **ds_numbered_names(int n)
{
    char **names = xmalloc_array((size_t)n, sizeof(*names));
    char buf[16];

    for (int i = 0; i < n; i++) {
        snprintf(buf, sizeof(buf), "%d", i);
        names[i] = xstrdup(buf);
    }
    return names;
}
