/*
 * zhou.c: published few-shot split files, the split_zhou_NAME.json files
 * of CoOp (Zhou et al.) that most CLIP few-shot work trains and tests on:
 *
 *     { "train": [["banded/banded_0002.jpg", 0, "banded"], ...],
 *       "val":   [...],
 *       "test":  [...] }
 *
 * Spec: zhou:FILE.json[:train|:val|:test]. Every item is [path, label,
 * classname]: a relative path (not empty, not absolute, at most
 * ZHOU_MAX_PATH bytes), a whole-number label in [0, ZHOU_MAX_CLASSES), and
 * the class's name. The classes are 0 .. the largest label of the three
 * lists; every one of them must appear with one name (the same name for a
 * label in every item; '_' shown as ' ', as CoOp's trainers show them).
 * Images are relative to the file's folder, or, when the first item of the
 * split is not there, to the first sub-folder of it (in sorted order) that
 * holds it (CoOp keeps DTD's under images/, Caltech101's under
 * 101_ObjectCategories/). Images are decoded when loaded, as folder.c does.
 * A malformed file gives one line naming the file, the list, the item and
 * what was expected (RL_ERR_FORMAT).
 */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/alloc.h"
#include "core/status.h"
#include "datasets/dataset.h"

#define ZHOU_MAX_BYTES   ((size_t)256 << 20)
#define ZHOU_MAX_CLASSES 100000
#define ZHOU_MAX_PATH    4096

static const char *const split_key[3] = { "train", "test", "val" };   /* enum ds_split */

/* what one pass over the file found */
struct parsed {
    const cJSON *items;          /* the split's list                        */
    size_t n;
    int n_classes;
    char **names;                /* n_classes, owned                        */
};

static void parsed_free(struct parsed *p)
{
    ds_free_lines(p->names, p->n_classes);
    memset(p, 0, sizeof(*p));
}

/* item i of list `key`: path, label, name; RL_ERR_FORMAT naming it */
static int read_item(const cJSON *it, const char *where, const char *key, size_t i,
                     const char **path, int *label, const char **name)
{
    const cJSON *p, *l, *c;
    double v;

    if (!cJSON_IsArray(it) || cJSON_GetArraySize(it) != 3)
        return rl_error_set(RL_ERR_FORMAT, "%s: \"%s\" item %zu: expected [path, label, "
                            "classname]", where, key, i + 1);
    p = cJSON_GetArrayItem(it, 0);
    l = cJSON_GetArrayItem(it, 1);
    c = cJSON_GetArrayItem(it, 2);
    if (!cJSON_IsString(p) || !*p->valuestring || p->valuestring[0] == '/' ||
        strlen(p->valuestring) > ZHOU_MAX_PATH)
        return rl_error_set(RL_ERR_FORMAT, "%s: \"%s\" item %zu: expected a relative image path "
                            "of 1 to %d bytes first", where, key, i + 1, ZHOU_MAX_PATH);
    v = cJSON_IsNumber(l) ? l->valuedouble : -1.0;
    if (!(v >= 0 && v < ZHOU_MAX_CLASSES && v == floor(v)))
        return rl_error_set(RL_ERR_FORMAT, "%s: \"%s\" item %zu ('%.200s'): expected a label, a "
                            "whole number in [0, %d), second", where, key, i + 1, p->valuestring,
                            ZHOU_MAX_CLASSES);
    if (!cJSON_IsString(c) || !*c->valuestring || strlen(c->valuestring) > 1000)
        return rl_error_set(RL_ERR_FORMAT, "%s: \"%s\" item %zu ('%.200s'): expected the class "
                            "name (1 to 1000 bytes) third", where, key, i + 1, p->valuestring);
    *path = p->valuestring;
    *label = (int)v;
    *name = c->valuestring;
    return RL_OK;
}

/* the classes of every list, and the requested list */
static int parse_root(const cJSON *root, const char *where, enum ds_split split,
                      struct parsed *out)
{
    const char **names = NULL;
    int n_classes = 0, rc = RL_OK;

    memset(out, 0, sizeof(*out));
    if (!cJSON_IsObject(root))
        return rl_error_set(RL_ERR_FORMAT, "%s: expected a JSON object with the lists \"train\", "
                            "\"val\" and \"test\"", where);
    out->items = cJSON_GetObjectItemCaseSensitive(root, split_key[split]);
    if (!cJSON_IsArray(out->items) || cJSON_GetArraySize(out->items) == 0)
        return rl_error_set(RL_ERR_FORMAT, "%s: no \"%s\" list of items (a split file has "
                            "\"train\", \"val\" and \"test\")", where, split_key[split]);
    names = xcalloc(ZHOU_MAX_CLASSES, sizeof(*names));
    for (int k = 0; k < 3 && rc == RL_OK; k++) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(root, split_key[k]), *it;
        size_t i = 0;

        if (!list)
            continue;
        if (!cJSON_IsArray(list)) {
            rc = rl_error_set(RL_ERR_FORMAT, "%s: \"%s\" is not a list", where, split_key[k]);
            break;
        }
        cJSON_ArrayForEach(it, list) {
            const char *path = NULL, *name = NULL;
            int label = 0;

            if ((rc = read_item(it, where, split_key[k], i, &path, &label, &name)) != RL_OK)
                break;
            if (names[label] && strcmp(names[label], name)) {
                rc = rl_error_set(RL_ERR_FORMAT, "%s: \"%s\" item %zu ('%.200s'): label %d is "
                                  "'%.200s' here and '%.200s' before", where, split_key[k], i + 1,
                                  path, label, name, names[label]);
                break;
            }
            names[label] = name;
            if (label + 1 > n_classes)
                n_classes = label + 1;
            i++;
        }
    }
    for (int c = 0; c < n_classes && rc == RL_OK; c++)
        if (!names[c])
            rc = rl_error_set(RL_ERR_FORMAT, "%s: label %d has no item (the labels must be 0 to "
                              "%d, each with a class name)", where, c, n_classes - 1);
    if (rc == RL_OK) {
        out->n = (size_t)cJSON_GetArraySize(out->items);
        out->n_classes = n_classes;
        out->names = xcalloc((size_t)n_classes, sizeof(*out->names));
        for (int c = 0; c < n_classes; c++) {
            out->names[c] = xstrdup(names[c]);
            for (char *q = out->names[c]; *q; q++)
                if (*q == '_')
                    *q = ' ';
        }
    }
    free(names);
    return rc;
}

int zhou_parse_text(const char *text, size_t len, const char *where, enum ds_split split,
                    size_t *n_items, int *n_classes)
{
    cJSON *root = cJSON_ParseWithLength(text, len);
    struct parsed p;
    int rc;

    if (!root)
        return rl_error_set(RL_ERR_FORMAT, "%s: not valid JSON", where);
    rc = parse_root(root, where, split, &p);
    if (rc == RL_OK) {
        *n_items = p.n;
        *n_classes = p.n_classes;
    }
    parsed_free(&p);
    cJSON_Delete(root);
    return rc;
}

static int exists(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* the folder the images are relative to: dir, or its first sub-folder
 * (sorted) holding `first`; RL_ERR_IO naming both when neither does */
static int image_root(const char *file, const char *dir, const char *first, char **root)
{
    char path[2 * ZHOU_MAX_PATH + 512];
    char **subs = NULL;
    size_t n = 0, cap = 0;
    DIR *d;
    struct dirent *e;
    int rc;

    snprintf(path, sizeof(path), "%s/%s", dir, first);
    if (exists(path)) {
        *root = xstrdup(dir);
        return RL_OK;
    }
    if ((d = opendir(dir)) != NULL) {
        while ((e = readdir(d)) != NULL) {
            struct stat st;

            if (e->d_name[0] == '.')
                continue;
            snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
            if (stat(path, &st) || !S_ISDIR(st.st_mode))
                continue;
            if (n == cap) {
                cap = cap ? 2 * cap : 16;
                subs = xrealloc_array(subs, cap, sizeof(*subs));
            }
            subs[n++] = xstrdup(e->d_name);
        }
        closedir(d);
    }
    if (n)
        qsort(subs, n, sizeof(*subs), cmp_str);
    rc = rl_error_set(RL_ERR_IO, "%s: its first image '%.300s' is neither in %s nor in a "
                      "sub-folder of it (the images go beside the split file, or in one "
                      "sub-folder of its folder, as CoOp's images/)", file, first, dir);
    for (size_t i = 0; i < n; i++) {
        snprintf(path, sizeof(path), "%s/%s/%s", dir, subs[i], first);
        if (rc != RL_OK && exists(path)) {
            snprintf(path, sizeof(path), "%s/%s", dir, subs[i]);
            *root = xstrdup(path);
            rc = RL_OK;
        }
        free(subs[i]);
    }
    free(subs);
    return rc;
}

/* the file's text (at most ZHOU_MAX_BYTES) */
static int read_text(const char *file, char **text, size_t *len)
{
    FILE *f = fopen(file, "rb");
    struct stat st;
    size_t n, cap;
    char *t;

    if (!f)
        return rl_error_set(RL_ERR_IO, "%s: cannot open: %s", file, strerror(errno));
    if (fstat(fileno(f), &st) || !S_ISREG(st.st_mode)) {
        fclose(f);
        return rl_error_set(RL_ERR_IO, "%s: not a regular file", file);
    }
    if ((unsigned long long)st.st_size > ZHOU_MAX_BYTES) {
        fclose(f);
        return rl_error_set(RL_ERR_FORMAT, "%s: larger than %zu MiB; not a split file", file,
                            ZHOU_MAX_BYTES >> 20);
    }
    cap = (size_t)st.st_size;
    t = xmalloc(cap + 1);
    n = fread(t, 1, cap + 1, f);            /* a file that grew is read as it was */
    if (ferror(f)) {
        fclose(f);
        free(t);
        return rl_error_set(RL_ERR_IO, "%s: read error", file);
    }
    fclose(f);
    if (n > cap)
        n = cap;
    t[n] = '\0';
    *text = t;
    *len = n;
    return RL_OK;
}

static int zhou_open(struct dataset *ds, const char *file, enum ds_split split)
{
    struct ds_files *impl;
    struct parsed p;
    cJSON *root;
    const cJSON *it;
    char *text = NULL, *dir, *root_dir = NULL, *slash;
    size_t len = 0, i = 0;
    int rc;

    if ((rc = read_text(file, &text, &len)) != RL_OK)
        return rc;
    root = cJSON_ParseWithLength(text, len);
    free(text);
    if (!root)
        return rl_error_set(RL_ERR_FORMAT, "%s: not valid JSON (a split file is a JSON object "
                            "of \"train\", \"val\" and \"test\" lists)", file);
    if ((rc = parse_root(root, file, split, &p)) != RL_OK) {
        cJSON_Delete(root);
        return rc;
    }
    dir = xstrdup(file);
    slash = strrchr(dir, '/');
    if (slash)
        *(slash == dir ? slash + 1 : slash) = '\0';
    else
        strcpy(dir, ".");
    rc = image_root(file, dir, cJSON_GetArrayItem(p.items, 0)->child->valuestring, &root_dir);
    free(dir);
    if (rc != RL_OK) {
        parsed_free(&p);
        cJSON_Delete(root);
        return rc;
    }
    impl = xcalloc(1, sizeof(*impl));
    impl->paths = xcalloc(p.n, sizeof(*impl->paths));
    impl->labels = xcalloc(p.n, sizeof(*impl->labels));
    cJSON_ArrayForEach(it, p.items) {
        const char *path = it->child->valuestring;
        size_t n = strlen(root_dir) + strlen(path) + 2;

        impl->paths[i] = xmalloc(n);
        snprintf(impl->paths[i], n, "%s/%s", root_dir, path);
        impl->labels[i] = (int)it->child->next->valuedouble;
        i++;
    }
    impl->n = p.n;
    free(root_dir);
    cJSON_Delete(root);
    ds->impl = impl;
    ds->n = p.n;
    ds->n_classes = p.n_classes;
    ds->class_names = p.names;          /* moved */
    ds->templates = NULL;
    ds->n_templates = 0;
    ds->channels = 3;
    ds->height = 0;
    ds->width = 0;
    return RL_OK;
}

const struct dataset_ops dataset_zhou_ops = {
    .name  = "zhou",
    .usage = "zhou:FILE.json        a published split file (split_zhou_NAME.json: train, val, "
             "test lists of [path, label, classname]); :val for its val list",
    .arg   = 2,
    .has_val = 1,
    .open  = zhou_open,
    .load  = ds_files_load,
    .label = ds_files_label,
    .close = ds_files_close,
};
