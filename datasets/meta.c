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

/* The first label whose own name (normalised) is the set's name of another
 * label, -1 when none: the dataset names its classes in another order than
 * the set, and applying the set by label would name them wrongly. *other
 * gets that other label. */
static int misplaced(char *const *own, char *const *set, int n, int *other)
{
    char **x = xcalloc((size_t)n, sizeof(*x)), **y = xcalloc((size_t)n, sizeof(*y));
    int found = -1;

    for (int i = 0; i < n; i++) {
        char t[1024];

        norm(own[i], t, sizeof(t));
        x[i] = xstrdup(t);
        norm(set[i], t, sizeof(t));
        y[i] = xstrdup(t);
    }
    for (int i = 0; i < n && found < 0; i++)
        for (int j = 0; j < n; j++)
            if (j != i && !strcmp(x[i], y[j]) && strcmp(x[i], y[i])) {
                found = i;
                *other = j;
                break;
            }
    ds_free_lines(x, n);
    ds_free_lines(y, n);
    return found;
}

/* whether the names are all decimal numbers but not 0 .. n-1 or 1 .. n in
 * order: class folders named by number sort as text (1, 10, 100, 101, 11,
 * ...), so label i is not class i + 1 */
static int numbers_out_of_order(char *const *names, int n)
{
    int from0 = 1, from1 = 1;

    for (int i = 0; i < n; i++) {
        char *end;
        long v;

        if (!isdigit((unsigned char)names[i][0]))
            return 0;
        v = strtol(names[i], &end, 10);
        if (*end)
            return 0;
        from0 &= v == i;
        from1 &= v == i + 1;
    }
    return !from0 && !from1;
}

int ds_meta_apply(struct dataset *ds, const char *set)
{
    char file[256], **names = NULL, **tmpl = NULL;
    int n_names = 0, n_tmpl = 0, rc, bad, other = 0;

    snprintf(file, sizeof(file), "%s.classes", set);
    rc = read_meta(file, &names, &n_names);
    if (rc != RL_OK && rc != RL_ERR_NA)
        return rc;
    if (rc == RL_OK && n_names != ds->n_classes) {
        ds_free_lines(names, n_names);
        return rl_error_set(RL_ERR_ARG, "%s: data.classnames = %s: the set names %d classes, the "
                            "dataset has %d", ds->spec, set, n_names, ds->n_classes);
    }
    if (rc == RL_OK && numbers_out_of_order(ds->class_names, n_names)) {
        ds_free_lines(names, n_names);
        return rl_error_set(RL_ERR_ARG, "%s: data.classnames = %s: the dataset's classes are "
                            "numbers out of order ('%s' is label 0, '%s' label 1: folders sort "
                            "as text), so the set's names would go to the wrong labels (give "
                            "names by folder in classnames.txt)", ds->spec, set,
                            ds->class_names[0], ds->class_names[1]);
    }
    if (rc == RL_OK && (bad = misplaced(ds->class_names, names, n_names, &other)) >= 0) {
        rc = rl_error_set(RL_ERR_ARG, "%s: data.classnames = %s: the dataset's classes are the "
                          "set's in another order ('%s' is label %d here, %d in the set), so "
                          "its labels would be named wrongly (give names by folder in "
                          "classnames.txt, or data.classnames = dataset)", ds->spec, set,
                          ds->class_names[bad], bad, other);
        ds_free_lines(names, n_names);
        return rc;
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
