/*
 * meta.c: the shipped class names and templates (meta.h).
 */
#include "datasets/meta.h"

#include <ctype.h>
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/status.h"

#define META_MAX_LINES 100000

static int is_dir(const char *p)
{
    struct stat st;

    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

const char *ds_meta_dir(void)
{
    static char dir[PATH_MAX];
    const char *env = getenv("RANDLORA_META");
    char exe[PATH_MAX];
    ssize_t n;

    if (env && *env)
        return env;
    n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0) {
        char *slash;

        exe[n] = '\0';
        slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            snprintf(dir, sizeof(dir), "%.*s/datasets/meta", PATH_MAX - 32, exe);
            if (is_dir(dir))
                return dir;
        }
    }
    return "datasets/meta";
}

/* the non-comment lines of DIR/file (RL_ERR_NA: no such file) */
static int read_meta(const char *file, char ***lines, int *n)
{
    char path[PATH_MAX + 64];
    int rc, k = 0;

    snprintf(path, sizeof(path), "%s/%s", ds_meta_dir(), file);
    rc = ds_read_lines(path, lines, n, META_MAX_LINES);
    if (rc != RL_OK)
        return rc;
    for (int i = 0; i < *n; i++) {
        if ((*lines)[i][0] == '#')
            free((*lines)[i]);
        else
            (*lines)[k++] = (*lines)[i];
    }
    *n = k;
    return RL_OK;
}

int ds_meta_lookup(const char *name, char *set, size_t cap)
{
    char **lines = NULL;
    int n = 0, rc = read_meta("names.tsv", &lines, &n), found = 0;

    if (rc == RL_ERR_NA)
        return rl_error_set(RL_ERR_IO, "%s/names.tsv: no such file (the dataset metadata; set "
                            "RANDLORA_META to the repository's datasets/meta)", ds_meta_dir());
    if (rc != RL_OK)
        return rc;
    for (int i = 0; i < n && !found; i++) {
        char *tok, *save = NULL;
        int first = 1;

        for (tok = strtok_r(lines[i], "\t ", &save); tok && !found;
             tok = strtok_r(NULL, "\t ", &save)) {
            if (first)
                snprintf(set, cap, "%s", tok);
            first = 0;
            found = !strcasecmp(tok, name);
        }
    }
    ds_free_lines(lines, n);
    return found ? RL_OK : RL_ERR_NA;
}

/* lowercase, '_' and '-' as ' ' */
static void norm(const char *s, char *out, size_t cap)
{
    size_t i = 0;

    for (; *s && i + 1 < cap; s++)
        out[i++] = *s == '_' || *s == '-' ? ' ' : (char)tolower((unsigned char)*s);
    out[i] = '\0';
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* whether b holds a's names (normalised) in another order */
static int permuted(char *const *a, char *const *b, int n)
{
    char **x = xcalloc((size_t)n, sizeof(*x)), **y = xcalloc((size_t)n, sizeof(*y));
    int same_order = 1, same_set = 1;

    for (int i = 0; i < n; i++) {
        char t[1024];

        norm(a[i], t, sizeof(t));
        x[i] = xstrdup(t);
        norm(b[i], t, sizeof(t));
        y[i] = xstrdup(t);
        same_order &= !strcmp(x[i], y[i]);
    }
    qsort(x, (size_t)n, sizeof(*x), cmp_str);
    qsort(y, (size_t)n, sizeof(*y), cmp_str);
    for (int i = 0; i < n; i++)
        same_set &= !strcmp(x[i], y[i]);
    ds_free_lines(x, n);
    ds_free_lines(y, n);
    return same_set && !same_order;
}

int ds_meta_apply(struct dataset *ds, const char *set)
{
    char file[256], **names = NULL, **tmpl = NULL;
    int n_names = 0, n_tmpl = 0, rc;

    snprintf(file, sizeof(file), "%s.classes", set);
    rc = read_meta(file, &names, &n_names);
    if (rc != RL_OK && rc != RL_ERR_NA)
        return rc;
    if (rc == RL_OK && n_names != ds->n_classes) {
        ds_free_lines(names, n_names);
        return rl_error_set(RL_ERR_ARG, "%s: data.classnames = %s: the set names %d classes, the "
                            "dataset has %d", ds->spec, set, n_names, ds->n_classes);
    }
    if (rc == RL_OK && permuted(ds->class_names, names, n_names)) {
        ds_free_lines(names, n_names);
        return rl_error_set(RL_ERR_ARG, "%s: data.classnames = %s: the dataset's classes are the "
                            "set's in another order, so its labels would be named wrongly (give "
                            "names by folder in classnames.txt, or data.classnames = dataset)",
                            ds->spec, set);
    }
    snprintf(file, sizeof(file), "%s.templates", set);
    rc = read_meta(file, &tmpl, &n_tmpl);
    if (rc != RL_OK && rc != RL_ERR_NA) {
        ds_free_lines(names, n_names);
        return rc;
    }
    for (int t = 0; t < n_tmpl; t++) {
        const char *a = strstr(tmpl[t], "{}");

        if (!a || strstr(a + 2, "{}")) {
            rc = rl_error_set(RL_ERR_FORMAT, "%s/%s: template '%s' has not exactly one {}",
                              ds_meta_dir(), file, tmpl[t]);
            ds_free_lines(names, n_names);
            ds_free_lines(tmpl, n_tmpl);
            return rc;
        }
    }
    if (names) {
        ds_free_lines(ds->class_names, ds->n_classes);
        ds->class_names = names;
    }
    if (n_tmpl) {
        ds_free_lines(ds->templates, ds->n_templates);
        ds->templates = tmpl;
        ds->n_templates = n_tmpl;
    }
    return RL_OK;
}

/* "a, b, c": the sets (names.tsv's first column) */
static void list_sets(char *buf, size_t cap)
{
    char **lines = NULL;
    int n = 0;
    size_t off = 0;

    buf[0] = '\0';
    if (read_meta("names.tsv", &lines, &n) != RL_OK)
        return;
    for (int i = 0; i < n && off < cap; i++) {
        size_t w = strcspn(lines[i], "\t ");
        int k = snprintf(buf + off, cap - off, "%s%.*s", i ? ", " : "", (int)w, lines[i]);

        if (k < 0)
            break;
        off += (size_t)k;
    }
    ds_free_lines(lines, n);
}

int ds_meta_select(struct dataset *ds, const char *choice, const char *dataset_name)
{
    char set[128], known[2048];
    int rc;

    if (!strcmp(choice, "dataset"))
        return RL_OK;
    rc = ds_meta_lookup(strcmp(choice, "auto") ? choice : dataset_name, set, sizeof(set));
    if (rc == RL_ERR_NA && !strcmp(choice, "auto"))
        return RL_OK;
    if (rc == RL_ERR_NA) {
        list_sets(known, sizeof(known));
        return rl_error_set(RL_ERR_ARG, "data.classnames = %s: no such metadata set in %s "
                            "(known: %s; or dataset, auto)", choice, ds_meta_dir(), known);
    }
    if (rc != RL_OK)
        return rc;
    return ds_meta_apply(ds, set);
}
