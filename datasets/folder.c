/*
 * folder.c: class-per-folder PNG/JPEG datasets.
 *
 * Layout:
 *     DIR/train/<class>/<image>.{png,jpg,jpeg}     (case-insensitive extensions)
 *     DIR/test/<class>/<image>...
 *     DIR/val/<class>/<image>...   optional, the ":val" split
 *     DIR/classnames.txt    optional: one name per class in the sorted order
 *                           of the class folders, or "folder<TAB>name" lines
 *     DIR/templates.txt     optional: prompt templates, one per line, each with {}
 *
 * The classes are the sub-folders of DIR/train (sorted by name, bytewise), so
 * a label means the same class in both splits; a folder in DIR/test that is
 * not in DIR/train is an error, and a split without DIR/train uses its own
 * folders. Without classnames.txt a class is named after its folder with
 * underscores turned into spaces. Images of a class are taken in sorted
 * file-name order; files with other extensions are ignored; a class folder
 * without images is an error.
 *
 * Images are decoded when loaded (image.c), always as RGB (gray files are
 * replicated), with their own size: ds->height and ds->width are 0. A file
 * of more than IMAGE_MAX_PIXELS (2^26) pixels is refused from its header
 * (image.h): the transforms resize every image to the model's size anyway.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "core/alloc.h"
#include "core/status.h"
#include "datasets/dataset.h"
#include "datasets/image.h"

#define FOLDER_MAX_CLASSES 100000

struct strvec {
    char **v;
    size_t n, cap;
};

static void sv_push(struct strvec *s, const char *str)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 16;
        s->v = xrealloc_array(s->v, s->cap, sizeof(*s->v));
    }
    s->v[s->n++] = xstrdup(str);
}

static void sv_free(struct strvec *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
    memset(s, 0, sizeof(*s));
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int is_dir(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int is_image_name(const char *name)
{
    const char *dot = strrchr(name, '.');

    return dot && (!strcasecmp(dot, ".png") || !strcasecmp(dot, ".jpg") ||
                   !strcasecmp(dot, ".jpeg"));
}

/* sorted entries of dir: folders (want_dirs) or image files */
static int list_dir(const char *dir, int want_dirs, struct strvec *out)
{
    char path[8192];
    DIR *d = opendir(dir);
    struct dirent *e;

    if (!d)
        return rl_error_set(RL_ERR_IO, "%s: cannot open directory: %s", dir, strerror(errno));
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (want_dirs ? is_dir(path) : (is_image_name(e->d_name) && !is_dir(path)))
            sv_push(out, e->d_name);
    }
    closedir(d);
    if (out->n)
        qsort(out->v, out->n, sizeof(*out->v), cmp_str);
    return RL_OK;
}

/* class display names: classnames.txt or the folder names */
static int class_names(const char *dir, const struct strvec *classes, char ***names_out)
{
    char path[4200];
    char **lines = NULL, **names;
    int n_lines = 0, rc, tabbed = 1;

    snprintf(path, sizeof(path), "%s/classnames.txt", dir);
    rc = ds_read_lines(path, &lines, &n_lines, FOLDER_MAX_CLASSES);
    if (rc != RL_OK && rc != RL_ERR_NA)
        return rc;
    names = xmalloc_array(classes->n, sizeof(*names));
    for (size_t c = 0; c < classes->n; c++) {
        names[c] = xstrdup(classes->v[c]);
        for (char *p = names[c]; *p; p++)
            if (*p == '_')
                *p = ' ';
    }
    if (rc == RL_OK) {
        for (int i = 0; i < n_lines; i++)
            tabbed &= strchr(lines[i], '\t') != NULL;
        if (tabbed) {
            for (int i = 0; i < n_lines; i++) {
                char *tab = strchr(lines[i], '\t');
                size_t c;

                *tab = '\0';
                for (c = 0; c < classes->n; c++)
                    if (!strcmp(classes->v[c], lines[i]))
                        break;
                if (c == classes->n) {
                    rc = rl_error_set(RL_ERR_FORMAT, "%s: line %d names folder '%s', which is not "
                                      "a class folder", path, i + 1, lines[i]);
                    goto fail;
                }
                free(names[c]);
                names[c] = xstrdup(tab + 1);
            }
        } else if ((size_t)n_lines != classes->n) {
            rc = rl_error_set(RL_ERR_FORMAT, "%s: %d names for %zu class folders (one per "
                              "folder in sorted order, or folder<TAB>name lines)", path, n_lines,
                              classes->n);
            goto fail;
        } else {
            for (size_t c = 0; c < classes->n; c++) {
                free(names[c]);
                names[c] = xstrdup(lines[c]);
            }
        }
        ds_free_lines(lines, n_lines);
    }
    *names_out = names;
    return RL_OK;
fail:
    ds_free_lines(lines, n_lines);
    ds_free_lines(names, (int)classes->n);
    return rc;
}

static int folder_open(struct dataset *ds, const char *dir, enum ds_split split)
{
    const char *split_name = split == DS_TRAIN ? "train" : split == DS_VAL ? "val" : "test";
    char split_dir[4200], train_dir[4200], path[8400];
    struct strvec classes = {0}, here = {0}, files = {0}, paths = {0};
    struct ds_files *impl;
    int *labels = NULL;
    size_t n_labels = 0, cap_labels = 0;
    char **names = NULL, **templates = NULL;
    int n_templates = 0, rc;

    if (!is_dir(dir))
        return rl_error_set(RL_ERR_IO, "%s: cannot open directory", dir);
    snprintf(split_dir, sizeof(split_dir), "%s/%s", dir, split_name);
    snprintf(train_dir, sizeof(train_dir), "%s/train", dir);
    if (!is_dir(split_dir))
        return rl_error_set(RL_ERR_IO, "%s: no %s/ folder (the layout is DIR/train/CLASS/IMAGE "
                            "and DIR/test/CLASS/IMAGE)", dir, split_name);
    if ((rc = list_dir(is_dir(train_dir) ? train_dir : split_dir, 1, &classes)) != RL_OK)
        goto fail;
    if (classes.n == 0) {
        rc = rl_error_set(RL_ERR_FORMAT, "%s: no class folders", is_dir(train_dir) ? train_dir
                                                                                   : split_dir);
        goto fail;
    }
    if (classes.n > FOLDER_MAX_CLASSES) {
        rc = rl_error_set(RL_ERR_FORMAT, "%s: %zu class folders, at most %d", split_dir,
                          classes.n, FOLDER_MAX_CLASSES);
        goto fail;
    }
    if ((rc = list_dir(split_dir, 1, &here)) != RL_OK)
        goto fail;
    for (size_t i = 0; i < here.n; i++) {
        char **hit = bsearch(&here.v[i], classes.v, classes.n, sizeof(*classes.v), cmp_str);
        int label;

        if (!hit) {
            rc = rl_error_set(RL_ERR_FORMAT, "%s/%s: class folder not in %s", split_dir, here.v[i],
                              train_dir);
            goto fail;
        }
        label = (int)(hit - classes.v);
        snprintf(path, sizeof(path), "%s/%s", split_dir, here.v[i]);
        if ((rc = list_dir(path, 0, &files)) != RL_OK)
            goto fail;
        if (files.n == 0) {
            rc = rl_error_set(RL_ERR_FORMAT, "%s: empty class folder (no .png, .jpg or .jpeg "
                              "files)", path);
            goto fail;
        }
        for (size_t f = 0; f < files.n; f++) {
            char full[8700];

            snprintf(full, sizeof(full), "%s/%s", path, files.v[f]);
            sv_push(&paths, full);
            if (n_labels == cap_labels) {
                cap_labels = cap_labels ? cap_labels * 2 : 256;
                labels = xrealloc_array(labels, cap_labels, sizeof(*labels));
            }
            labels[n_labels++] = label;
        }
        sv_free(&files);
    }
    if (paths.n == 0) {
        rc = rl_error_set(RL_ERR_FORMAT, "%s: no class folders with images", split_dir);
        goto fail;
    }
    if ((rc = class_names(dir, &classes, &names)) != RL_OK)
        goto fail;
    snprintf(path, sizeof(path), "%s/templates.txt", dir);
    rc = ds_read_lines(path, &templates, &n_templates, 10000);
    if (rc == RL_ERR_NA) {
        templates = NULL;
        n_templates = 0;
    } else if (rc != RL_OK) {
        ds_free_lines(names, (int)classes.n);
        goto fail;
    } else {
        for (int t = 0; t < n_templates; t++) {
            if (!strstr(templates[t], "{}")) {
                rc = rl_error_set(RL_ERR_FORMAT, "%s: line %d has no {} for the class name: %s",
                                  path, t + 1, templates[t]);
                ds_free_lines(templates, n_templates);
                ds_free_lines(names, (int)classes.n);
                goto fail;
            }
        }
    }
    impl = xmalloc(sizeof(*impl));
    impl->paths = paths.v;
    impl->labels = labels;
    impl->n = paths.n;
    ds->impl = impl;
    ds->n = paths.n;
    ds->n_classes = (int)classes.n;
    ds->class_names = names;
    ds->templates = templates;
    ds->n_templates = n_templates;
    ds->channels = 3;
    ds->height = 0;
    ds->width = 0;
    sv_free(&classes);
    sv_free(&here);
    return RL_OK;
fail:
    sv_free(&classes);
    sv_free(&here);
    sv_free(&files);
    sv_free(&paths);
    free(labels);
    return rc;
}

const struct dataset_ops dataset_folder_ops = {
    .name  = "folder",
    .usage = "folder:DIR            class-per-folder PNG/JPEG: DIR/train/CLASS/IMAGE, "
             "DIR/test/CLASS/IMAGE, optional classnames.txt, templates.txt",
    .arg   = 2,
    .has_val = 1,
    .open  = folder_open,
    .load  = ds_files_load,
    .label = ds_files_label,
    .close = ds_files_close,
};
