/*
 * report_read.c: report records from run files and directories, and the
 * runs of a grid compared with the files (report.h, report_grid below).
 */
#include "results/report.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/alloc.h"
#include "core/status.h"
#include "experiments/config.h"
#include "results/store.h"

int report_run_read(struct store *s, const char *path, struct report_run *r)
{
    struct store_final f;
    char *stopped = NULL;
    int completed = 0, rc;

    memset(r, 0, sizeof(*r));
    if ((rc = run_key_from_store(s, &r->key)) != RL_OK)
        return rc;
    if ((rc = store_read_final(s, &f, &completed)) != RL_OK) {
        run_key_free(&r->key);
        return rc;
    }
    r->path = xstrdup(path);
    r->present = true;
    r->completed = completed != 0;
    r->stopped = store_attr_get_string(s, "/", "stopped", &stopped) == RL_OK;
    free(stopped);
    r->has_val = f.has_val;
    r->val_accuracy = f.has_val ? f.val_accuracy : NAN;
    r->val_loss = f.has_val ? f.val_loss : NAN;
    r->test_accuracy = completed ? f.accuracy : NAN;
    r->test_loss = completed ? f.loss : NAN;
    rl_error_clear();
    return RL_OK;
}

static int load_file(struct report_set *set, const char *path, FILE *err)
{
    struct store *s = NULL;
    struct report_run r;
    int rc;

    if ((rc = store_open(&s, path)) == RL_OK)
        rc = report_run_read(s, path, &r);
    store_close(s);
    if (rc != RL_OK) {
        fprintf(err, "randlora report: %s: left out: %s\n", path, rl_error_msg());
        return rc;
    }
    report_set_add(set, &r);
    return RL_OK;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int report_list_run_files(const char *dir, char ***names, size_t *n)
{
    DIR *d;
    struct dirent *de;
    size_t cap = 0;

    *names = NULL;
    *n = 0;
    if (!(d = opendir(dir)))
        return rl_error_set(RL_ERR_IO, "%s: cannot open directory: %s", dir, strerror(errno));
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);

        if (len < 4 || de->d_name[0] == '.' || strcmp(de->d_name + len - 3, ".h5"))
            continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 32;
            *names = xrealloc_array(*names, cap, sizeof(**names));
        }
        (*names)[(*n)++] = xstrdup(de->d_name);
    }
    closedir(d);
    if (*n)
        qsort(*names, *n, sizeof(**names), name_cmp);
    return RL_OK;
}

int report_set_load(struct report_set *set, const char *dir, FILE *err)
{
    struct stat st;
    char **names;
    size_t n;

    if (!err)
        err = stderr;
    if (stat(dir, &st) != 0)
        return rl_error_set(RL_ERR_ARG, "%s: %s", dir, strerror(errno));
    if (S_ISREG(st.st_mode)) {
        if (load_file(set, dir, err) != RL_OK)
            return rl_error_set(RL_ERR_ARG, "%s: not a readable run file", dir);
        return RL_OK;
    }
    if (report_list_run_files(dir, &names, &n) != RL_OK)
        return RL_ERR_ARG;                        /* its message stands */
    for (size_t i = 0; i < n; i++) {
        size_t need = strlen(dir) + strlen(names[i]) + 2;
        char *path = xmalloc(need);

        snprintf(path, need, "%s/%s", dir, names[i]);
        (void)load_file(set, path, err);          /* named on err when left out */
        free(path);
        free(names[i]);
    }
    free(names);
    rl_error_clear();
    return RL_OK;
}

int report_grid_check(struct report_set *set, const struct run_plan *plans, size_t n_plans,
                      const char *prog, FILE *err, size_t *n_differ)
{
    size_t n_files = set->n, differ = 0;
    bool *matched = xcalloc(n_files ? n_files : 1, sizeof(*matched));
    struct run_key *grid = xcalloc(n_plans ? n_plans : 1, sizeof(*grid));
    int rc = RL_OK;

    if (!err)
        err = stderr;
    for (size_t p = 0; p < n_plans && rc == RL_OK; p++) {
        char *ini = run_plan_to_ini(&plans[p]);

        rc = run_key_from_config_text(ini, plans[p].id, &grid[p]);
        free(ini);
    }
    /* runs of the grid, matched by configuration and seed */
    for (size_t p = 0; p < n_plans && rc == RL_OK; p++) {
        bool found = false;

        for (size_t i = 0; i < n_files; i++) {
            const struct run_key *k = &set->runs[i].key;

            if (!strcmp(k->config, grid[p].config) && k->seed == grid[p].seed)
                matched[i] = found = true;
        }
        if (!found) {        /* no file: a missing seed, or a setting not run */
            struct report_run missing;

            memset(&missing, 0, sizeof(missing));
            missing.key = grid[p];
            memset(&grid[p], 0, sizeof(grid[p]));
            missing.val_accuracy = missing.val_loss = NAN;
            missing.test_accuracy = missing.test_loss = NAN;
            report_set_add(set, &missing);
        }
    }
    /* files that are no run of the grid: named, with what differs from the
     * grid's run of the same id when there is one */
    for (size_t i = 0; i < n_files && rc == RL_OK; i++) {
        const struct report_run *r = &set->runs[i];
        size_t p;

        if (matched[i])
            continue;
        differ++;
        for (p = 0; p < n_plans && strcmp(plans[p].id, r->key.id); p++)
            ;
        if (p < n_plans) {
            struct run_key want;
            char *ini = run_plan_to_ini(&plans[p]), *diff = NULL;

            if (run_key_from_config_text(ini, plans[p].id, &want) == RL_OK)
                diff = run_key_diff(&r->key, &want);
            run_key_free(&want);
            free(ini);
            fprintf(err, "%s: warning: %s: its stored plan differs from the grid's run %s "
                    "(file vs grid: %s): reported as a setting of its own\n", prog, r->path,
                    plans[p].id, diff ? diff : "in rendering only");
            free(diff);
        } else {
            fprintf(err, "%s: warning: %s: not a run of the grid (run id %s): reported as a "
                    "setting of its own\n", prog, r->path, r->key.id);
        }
    }
    for (size_t p = 0; p < n_plans; p++)
        run_key_free(&grid[p]);
    free(grid);
    free(matched);
    if (n_differ)
        *n_differ = differ;
    return rc;
}

int report_set_print(FILE *out, FILE *err, const char *prog, struct report_set *set,
                     const struct run_plan *plans, size_t n_plans,
                     const struct report_options *o, enum report_format fmt, bool all)
{
    struct report rep;
    struct report_options opt = *o;
    uint64_t *seeds = NULL;
    int rc = RL_OK;

    if (plans) {
        /* the grid's seeds, in grid order, unless the caller gave some */
        if (!o->seeds) {
            seeds = xcalloc(n_plans ? n_plans : 1, sizeof(*seeds));
            opt.n_seeds = 0;
            for (size_t p = 0; p < n_plans; p++) {
                size_t k;

                for (k = 0; k < opt.n_seeds && seeds[k] != plans[p].seed; k++)
                    ;
                if (k == opt.n_seeds)
                    seeds[opt.n_seeds++] = plans[p].seed;
            }
            opt.seeds = seeds;
        }
        rc = report_grid_check(set, plans, n_plans, prog, err, NULL);
    }
    if (rc == RL_OK && out && (rc = report_build(&rep, set, &opt)) == RL_OK) {
        report_print(out, &rep, fmt, all);
        report_free(&rep);
    }
    free(seeds);
    return rc;
}

int report_from_dirs(FILE *out, FILE *err, const char *prog, const char *const *dirs,
                     size_t n_dirs, const struct run_plan *plans, size_t n_plans,
                     const struct report_options *o, enum report_format fmt, bool all)
{
    struct report_set set = { 0 };
    int rc = RL_OK;

    for (size_t d = 0; d < n_dirs && rc == RL_OK; d++)
        rc = report_set_load(&set, dirs[d], err);
    if (rc == RL_OK && set.n == 0)
        rc = rl_error_set(RL_ERR_ARG, "no readable run file (*.h5) in %s%s", dirs[0],
                          n_dirs > 1 ? " and the other paths given" : "");
    if (rc == RL_OK)
        rc = report_set_print(out, err, prog, &set, plans, n_plans, o, fmt, all);
    report_set_free(&set);
    return rc;
}
