/*
 * cmd_plot.c: `randlora plot DIR|RUN.h5 ... [-o OUTDIR] [--layer SITE]
 * [--settings selected|all]`: the result figures of a set of runs
 * (results/plot_figs.h draws them, results/plot.h writes each as STEM.tsv,
 * STEM.gp, STEM.png, STEM.svg; docs/analysis.md describes every figure).
 *
 * Runs: every *.h5 directly in each DIR given, and each RUN.h5 given. Each is
 * opened read-only (SWMR read, so a run still training is read as far as it
 * has flushed), read (results/plot_runs.h), and closed again. Runs are
 * grouped by their whole configuration but the seed (results/run_group.h):
 * only seeds of one setting are averaged. By default each group's selected
 * setting is drawn (best mean validation accuracy over seeds, the rule of
 * `randlora report`); --settings all draws every setting.
 *
 * Figures go to OUTDIR (default DIR/figures for the first DIR given, else
 * figures/ next to the first run file). A figure with no data is skipped
 * with a one-line note (the per-layer figures need `randlora analyze`,
 * the similarity figures `analyze --reference`).
 *
 * Exit status: 0 all figures with data written; 2 bad usage, or a run file
 * that could not be read (it is skipped, the figures are drawn from the
 * others, and its message printed); 1 other failures (gnuplot failing). A
 * missing gnuplot is a note, not an error: the .tsv and .gp are written.
 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/alloc.h"
#include "core/status.h"
#include "cli/cli.h"
#include "cli/commands.h"
#include "results/plot_figs.h"
#include "results/plot_landscape.h"
#include "results/plot_runs.h"

/* ------------------------------------------------------------------ usage */

static void plot_usage(FILE *out)
{
    fprintf(out,
            "usage: randlora plot DIR|RUN.h5 [DIR|RUN.h5 ...] [-o OUTDIR] [--layer SITE]\n"
            "                     [--settings selected|all]\n"
            "\n"
            "Draw the figures of a set of runs (every *.h5 in each DIR), each as PNG and SVG\n"
            "with its gnuplot script (.gp) and data (.tsv): accuracy against trainable\n"
            "parameters, shots, learning rate, peak memory and training time; training,\n"
            "validation accuracy and loss curves (mean +- std over seeds); and per layer,\n"
            "after `randlora analyze`, the spectrum, rank and effective rank of dW, and with\n"
            "`analyze --reference` the CKA, cosine and subspace overlap to the reference.\n"
            "Seeds of one setting (the whole configuration but the seed) are averaged,\n"
            "different settings never. Runs still training are read as far as they have got.\n"
            "A landscape file (randlora landscape) is drawn as its contour map and barriers.\n"
            "\n"
            "  -o OUTDIR      where the figures go (default DIR/figures)\n"
            "  --layer SITE   the layer of the spectrum figure, e.g.\n"
            "                 vision_model.encoder.layers.0.self_attn.q_proj (default: the\n"
            "                 first adapted layer)\n"
            "  --settings S   selected (default): per group (dataset, method, budget or rank,\n"
            "                 shots) the setting with the best mean validation accuracy over\n"
            "                 seeds; all: every setting, named by what differs\n");
}

/* one usage error line (cli.h), exit status 2 */
#define bad(...) cli_bad("plot", true, __VA_ARGS__)

/* ------------------------------------------------------------------- runs */

static int name_sort(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* every *.h5 directly in dir, sorted */
static int list_dir(const char *dir, char ***out, size_t *n)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    size_t cap = 0;

    *out = NULL;
    *n = 0;
    if (!d)
        return rl_error_set(RL_ERR_IO, "%s: cannot open directory: %s", dir, strerror(errno));
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < 4 || strcmp(e->d_name + len - 3, ".h5") || e->d_name[0] == '.')
            continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            *out = xrealloc_array(*out, cap, sizeof(**out));
        }
        size_t need = strlen(dir) + len + 2;
        (*out)[*n] = xmalloc(need);
        snprintf((*out)[*n], need, "%s/%s", dir, e->d_name);
        (*n)++;
    }
    closedir(d);
    if (*n)
        qsort(*out, *n, sizeof(**out), name_sort);
    return RL_OK;
}

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int mkdir_p(const char *path)
{
    char buf[4096];
    size_t n = strlen(path);

    if (n == 0 || n >= sizeof buf)
        return rl_error_set(RL_ERR_ARG, "output directory '%s': bad path", path);
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] == '/' || buf[i] == 0) {
            char c = buf[i];
            buf[i] = 0;
            if (mkdir(buf, 0777) != 0 && errno != EEXIST)
                return rl_error_set(RL_ERR_IO, "%s: cannot create directory: %s", buf, strerror(errno));
            buf[i] = c;
        }
    }
    if (!is_dir(path))
        return rl_error_set(RL_ERR_IO, "%s: not a directory", path);
    return RL_OK;
}

/* one line per group with several settings: what is drawn */
static void print_selection(const struct plot_set *set, bool all)
{
    for (size_t i = 0; i < set->n_settings; i++) {
        const struct plot_setting *st = &set->settings[i];
        if (st->group_settings < 2 || !st->selected)
            continue;
        char where[96];
        int len = 0;
        if (st->key->budget)
            len = snprintf(where, sizeof where, " budget %zu", st->key->budget);
        else if (st->key->rank)
            len = snprintf(where, sizeof where, " r%zu", st->key->rank);
        if (st->key->shots)
            snprintf(where + len, sizeof where - (size_t)len, ", %zu shots", st->key->shots);
        else
            snprintf(where + len, sizeof where - (size_t)len, ", fraction %g", st->key->fraction);
        printf("%s%s: %zu settings; selected %s (mean val accuracy %.4f over %zu seed%s)%s\n", st->key->method,
               where, st->group_settings, st->label, st->val_mean, st->n_done, st->n_done == 1 ? "" : "s",
               all ? ", every setting drawn" : "");
    }
    for (size_t i = 0; i < set->n_settings; i++) {
        const struct plot_setting *st = &set->settings[i];
        for (size_t k = 1; k < st->n && st->n_dup_seeds; k++) {
            const struct plot_run *a = &set->runs[st->runs[k - 1]], *b = &set->runs[st->runs[k]];
            if (a->key.seed == b->key.seed)
                printf("note: %s and %s: one setting, the same seed %llu: both averaged\n", a->path, b->path,
                       (unsigned long long)a->key.seed);
        }
    }
    for (size_t i = 0; i < set->n_settings; i++) {
        const struct plot_setting *st = &set->settings[i];
        if (st->group_unselected) {
            printf("note: %s: %zu settings and no validation accuracy to select by: every setting drawn\n",
                   st->key->method, st->group_settings);
            break;
        }
    }
}

/* the figures of each landscape file (results/plot_landscape.h) */
static void draw_landscapes(struct plot_ctx *c, const struct plot_landscape *ls, size_t n, const char *outdir)
{
    for (size_t i = 0; i < n; i++) {
        int rc;

        printf("%s: landscape of %s, %s, %s -> %s\n", ls[i].path, ls[i].label[0], ls[i].label[1], ls[i].label[2],
               outdir);
        rc = plot_landscape_draw(&ls[i], outdir, &c->n_written);
        if (rc == RL_ERR_NA && !c->gnuplot_missing) {
            printf("note: %s\n", rl_error_msg());
            c->gnuplot_missing = true;
        } else if (rc != RL_OK && rc != RL_ERR_NA) {
            fprintf(stderr, "randlora plot: %s\n", rl_error_msg());
            if (c->status == 0 || rl_exit_code(rc) == 1)
                c->status = rl_exit_code(rc);
        }
    }
}

static void add_path(char ***paths, size_t *n, size_t *cap, char *p)
{
    if (*n == *cap) {
        *cap = *cap ? 2 * *cap : 64;
        *paths = xrealloc_array(*paths, *cap, sizeof(**paths));
    }
    (*paths)[(*n)++] = p;
}

int cmd_plot(int argc, char **argv)
{
    const char *outdir = NULL, *layer = NULL, *first_dir = NULL, *first_file = NULL;
    char **paths = NULL;
    size_t n_paths = 0, cap = 0;
    struct plot_set set = { 0 };
    struct plot_ctx c = { 0 };
    struct plot_landscape *landscapes = NULL;
    size_t n_landscapes = 0;
    char defdir[4096];
    int rc;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            plot_usage(stdout);
            goto out;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output") || !strcmp(a, "--layer") ||
                   !strcmp(a, "--settings")) {
            if (i + 1 >= argc) {
                c.status = bad("%s needs a value", a);
                goto out;
            }
            const char *v = argv[++i];
            if (!strcmp(a, "--layer")) {
                layer = v;
            } else if (!strcmp(a, "--settings")) {
                if (strcmp(v, "selected") && strcmp(v, "all")) {
                    c.status = bad("--settings '%s': expected selected or all", v);
                    goto out;
                }
                c.all_settings = !strcmp(v, "all");
            } else {
                outdir = v;
            }
        } else if (a[0] == '-' && a[1]) {
            c.status = bad("unknown option '%s'", a);
            goto out;
        } else if (is_dir(a)) {
            char **list = NULL;
            size_t nl = 0;
            if ((rc = list_dir(a, &list, &nl))) {
                c.status = bad("%s", rl_error_msg());
                goto out;
            }
            if (!first_dir && !first_file)
                first_dir = a;
            if (nl == 0)
                printf("note: %s: no *.h5 run files\n", a);
            for (size_t j = 0; j < nl; j++)
                add_path(&paths, &n_paths, &cap, list[j]);
            free(list);
        } else {
            if (!first_dir && !first_file)
                first_file = a;
            add_path(&paths, &n_paths, &cap, xstrdup(a));
        }
    }
    if (!first_dir && !first_file) {
        c.status = bad("no run files or directories given");
        goto out;
    }
    if (!outdir) {
        if (first_dir) {
            snprintf(defdir, sizeof defdir, "%s/figures", first_dir);
        } else {
            const char *slash = strrchr(first_file, '/');
            if (slash)
                snprintf(defdir, sizeof defdir, "%.*s/figures", (int)(slash - first_file), first_file);
            else
                snprintf(defdir, sizeof defdir, "figures");
        }
        outdir = defdir;
    }

    set.runs = xcalloc(n_paths ? n_paths : 1, sizeof(*set.runs));
    landscapes = xcalloc(n_paths ? n_paths : 1, sizeof(*landscapes));
    for (size_t i = 0; i < n_paths; i++) {
        if (plot_landscape_is(paths[i])) {
            if ((rc = plot_landscape_read(paths[i], &landscapes[n_landscapes]))) {
                fprintf(stderr, "randlora plot: skipped: %s\n", rl_error_msg());
                c.status = 2;
                continue;
            }
            n_landscapes++;
            continue;
        }
        if ((rc = plot_run_read(paths[i], &set.runs[set.n_runs]))) {
            fprintf(stderr, "randlora plot: skipped: %s\n", rl_error_msg());
            if (rl_exit_code(rc) == 1 || c.status == 0)
                c.status = rl_exit_code(rc);
            continue;
        }
        set.n_runs++;
    }
    if (set.n_runs == 0 && n_landscapes == 0) {
        fprintf(stderr, "randlora plot: no readable run files\n");
        if (c.status == 0)
            c.status = 2;
        goto out;
    }
    if ((rc = mkdir_p(outdir))) {
        fprintf(stderr, "randlora plot: %s\n", rl_error_msg());
        c.status = rl_exit_code(rc);
        goto out;
    }
    draw_landscapes(&c, landscapes, n_landscapes, outdir);
    if (set.n_runs == 0)
        goto out;
    plot_set_group(&set);
    c.outdir = outdir;
    c.set = &set;
    c.layer = layer;
    printf("%zu run%s, %zu setting%s -> %s\n", set.n_runs, set.n_runs == 1 ? "" : "s", set.n_settings,
           set.n_settings == 1 ? "" : "s", outdir);
    print_selection(&set, c.all_settings);
    plot_figs_acc(&c);
    plot_figs_curves(&c);
    plot_figs_layers(&c);

out:
    for (size_t i = 0; i < n_landscapes; i++)
        plot_landscape_free(&landscapes[i]);
    free(landscapes);
    plot_set_free(&set);
    for (size_t i = 0; i < n_paths; i++)
        free(paths[i]);
    free(paths);
    return c.status;
}
