/*
 * cmd_plot.c: `randlora plot DIR|RUN.h5 ... [-o OUTDIR] [--layer SITE]`: the
 * result figures of a set of runs, drawn with results/plot.h (each figure as
 * STEM.tsv, STEM.gp, STEM.png, STEM.svg).
 *
 * Runs: every *.h5 directly in each DIR given, and each RUN.h5 given. Each is
 * opened read-only (SWMR read, so a run still training is read as far as it
 * has flushed), read, and closed again. What is read: /method (method, rank,
 * n_trainable), /data (shots, fraction), /config (budget, seed, run id),
 * /final (accuracy, when completed), /train loss, and /analysis when present.
 *
 * Figures (in OUTDIR; default DIR/figures for the first DIR given, else
 * figures/ next to the first run file):
 *   loss        training loss against step, every run, one colour per method
 *   acc_params  final accuracy against trainable parameters (log x), one
 *               series per method, seeds averaged with error bars; one figure
 *               per data setting: acc_params for the largest shot count (or
 *               fraction), acc_params_s<K> / acc_params_f<F> for the others
 *   acc_shots   final accuracy against shots per class (log2 x), one series
 *               per method; with budgets, one figure per budget (acc_shots for
 *               the largest, acc_shots_b<B> for the others; methods without a
 *               rank, full and none, appear in each); ranks without budgets:
 *               one figure, the rank added to the name where a method has
 *               several
 *   spectrum    normalised singular values s_i / s_1 of dW for one layer
 *               (--layer, default the first adapted layer in site order), one
 *               run per method: the one with the most shots, then the largest
 *               budget or rank, then the smallest seed
 *   rank        numerical rank of dW per layer, the same run per method
 * A figure with no data is skipped with a one-line note (spectrum and rank
 * need `randlora analyze` first).
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
#include "experiments/config.h"
#include "results/plot.h"
#include "results/run_adapters.h"
#include "results/store.h"

/* ------------------------------------------------------------------ usage */

static void plot_usage(FILE *out)
{
    fprintf(out,
            "usage: randlora plot DIR|RUN.h5 [DIR|RUN.h5 ...] [-o OUTDIR] [--layer SITE]\n"
            "\n"
            "Draw the figures of a set of runs (every *.h5 in each DIR), each as PNG and SVG\n"
            "with its gnuplot script (.gp) and data (.tsv): loss (training loss per method),\n"
            "acc_params (accuracy against trainable parameters), acc_shots (accuracy against\n"
            "shots), spectrum (singular values of dW of one layer per method) and rank (rank\n"
            "of dW per layer per method; spectrum and rank need `randlora analyze` first).\n"
            "Runs still training are read as far as they have got.\n"
            "\n"
            "  -o OUTDIR     where the figures go (default DIR/figures)\n"
            "  --layer SITE  the layer of the spectrum figure, e.g.\n"
            "                vision_model.encoder.layers.0.self_attn.q_proj (default: the\n"
            "                first adapted layer)\n");
}

/* one usage error line (cli.h), exit status 2 */
#define bad(...) cli_bad("plot", true, __VA_ARGS__)

/* ------------------------------------------------------------------- runs */

struct run_layer {
    char *site;
    size_t rank;
    float *sv;
    size_t n_sv;
};

struct run_rec {
    char *path, *method, *id;
    int64_t rank, n_trainable, shots;
    double fraction;
    size_t budget;
    uint64_t seed;
    bool has_rank;               /* the method takes a rank                    */
    double accuracy;             /* NaN until /final is written                */
    double *steps, *loss;
    size_t n_loss;
    struct run_layer *layers;    /* from /analysis, in site order              */
    size_t n_layers;
};

static void run_rec_free(struct run_rec *r)
{
    free(r->path);
    free(r->method);
    free(r->id);
    free(r->steps);
    free(r->loss);
    for (size_t i = 0; i < r->n_layers; i++) {
        free(r->layers[i].site);
        free(r->layers[i].sv);
    }
    free(r->layers);
    memset(r, 0, sizeof(*r));
}

static int layer_cmp(const void *a, const void *b)
{
    return run_site_cmp(((const struct run_layer *)a)->site, ((const struct run_layer *)b)->site);
}

static int read_analysis(struct store *s, struct run_rec *r)
{
    char **names = NULL;
    size_t n = 0;
    char p[1400];
    int rc = store_list(s, "/analysis", &names, &n);

    if (rc == RL_ERR_NA)
        return RL_OK;
    if (rc)
        return rc;
    r->layers = xcalloc(n ? n : 1, sizeof(*r->layers));
    for (size_t i = 0; i < n; i++) {
        struct run_layer *l = &r->layers[r->n_layers];
        size_t nd = 0, dims[STORE_MAX_DIMS];
        int64_t rank = 0;

        snprintf(p, sizeof p, "/analysis/%s/singular_values", names[i]);
        if (!store_has(s, p))
            continue;                     /* not a layer (e.g. a future entry) */
        if ((rc = store_read_tensor(s, p, &l->sv, &nd, dims)))
            break;
        if (nd != 1) {
            free(l->sv);
            l->sv = NULL;
            rc = rl_error_set(RL_ERR_FORMAT, "%s: %s: rank %zu, expected 1", store_path(s), p, nd);
            break;
        }
        l->n_sv = dims[0];
        snprintf(p, sizeof p, "/analysis/%s/rank", names[i]);
        if ((rc = store_read_scalar_i64(s, p, &rank))) {
            free(l->sv);
            l->sv = NULL;
            break;
        }
        if (rank < 0) {
            free(l->sv);
            l->sv = NULL;
            rc = rl_error_set(RL_ERR_FORMAT, "%s: %s: negative rank %lld", store_path(s), p, (long long)rank);
            break;
        }
        l->rank = (size_t)rank;
        l->site = names[i];
        names[i] = NULL;
        r->n_layers++;
    }
    store_free_names(names, n);
    if (rc == RL_OK)
        qsort(r->layers, r->n_layers, sizeof(*r->layers), layer_cmp);
    return rc;
}

static int read_run(const char *path, struct run_rec *r)
{
    struct store *s = NULL;
    struct run_plan *plan = NULL;
    struct store_final f;
    int64_t *steps = NULL;
    int completed = 0, rc;

    memset(r, 0, sizeof(*r));
    r->path = xstrdup(path);
    r->accuracy = NAN;
    if ((rc = store_open(&s, path)))
        return rc;
    if ((rc = store_attr_get_string(s, "/method", "method", &r->method)) ||
        (rc = store_attr_get_int64(s, "/method", "rank", &r->rank)) ||
        (rc = store_attr_get_int64(s, "/method", "n_trainable", &r->n_trainable)) ||
        (rc = store_attr_get_int64(s, "/data", "shots", &r->shots)) ||
        (rc = store_attr_get_double(s, "/data", "fraction", &r->fraction)) || (rc = run_plan_read(s, &plan)))
        goto done;
    r->id = xstrdup(plan->id);
    r->budget = plan->budget;
    r->seed = plan->seed;
    const struct adapter_ops *ops = adapter_ops_find(r->method);
    r->has_rank = ops && (ops->flags & ADAPTER_F_RANK);
    if ((rc = store_read_final(s, &f, &completed)))
        goto done;
    if (completed)
        r->accuracy = f.accuracy;
    if ((rc = store_read_curve(s, "train", "loss", &steps, &r->loss, &r->n_loss)))
        goto done;
    if (r->n_loss) {
        r->steps = xmalloc_array(r->n_loss, sizeof(double));
        for (size_t i = 0; i < r->n_loss; i++)
            r->steps[i] = (double)steps[i];
    }
    rc = read_analysis(s, r);
done:
    free(steps);
    if (plan)
        run_plans_free(plan, 1);
    store_close(s);
    return rc;
}

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

/* --------------------------------------------------------------- figures */

struct ctx {
    const char *outdir;
    bool gnuplot_missing;        /* noted once                                */
    int status;                  /* worst exit code so far                    */
    size_t n_written;
};

static void draw(struct ctx *c, struct plot_figure *fig, const char *name)
{
    char stem[4096];
    int rc;

    snprintf(stem, sizeof stem, "%s/%s", c->outdir, name);
    fig->stem = stem;
    rc = plot_write(fig);
    if (rc == RL_OK) {
        printf("wrote %s.{png,svg,gp,tsv}\n", stem);
        c->n_written++;
    } else if (rc == RL_ERR_NA) {
        if (!c->gnuplot_missing)
            printf("note: %s\n", rl_error_msg());
        c->gnuplot_missing = true;
        printf("wrote %s.{gp,tsv} (not rendered)\n", stem);
        c->n_written++;
    } else {
        fprintf(stderr, "randlora plot: %s: %s\n", name, rl_error_msg());
        c->status = rl_exit_code(rc) == 1 || c->status == 0 ? rl_exit_code(rc) : c->status;
    }
}

/* distinct method names in run order of first appearance */
static size_t methods_of(const struct run_rec *runs, size_t n, const char **out)
{
    size_t k = 0;

    for (size_t i = 0; i < n; i++) {
        size_t j;
        for (j = 0; j < k; j++)
            if (!strcmp(out[j], runs[i].method))
                break;
        if (j == k)
            out[k++] = runs[i].method;
    }
    return k;
}

static void fig_loss(struct ctx *c, const struct run_rec *runs, size_t n)
{
    struct plot_series *ser = xcalloc(n ? n : 1, sizeof(*ser));
    size_t k = 0;
    char title[128];

    for (size_t i = 0; i < n; i++) {
        if (!runs[i].n_loss)
            continue;
        ser[k++] = (struct plot_series){ .name = runs[i].method, .n = runs[i].n_loss, .x = runs[i].steps,
                                         .y = runs[i].loss };
    }
    if (k == 0) {
        printf("note: loss: no run has training rows yet; skipped\n");
    } else {
        snprintf(title, sizeof title, "training loss (%zu run%s)", k, k == 1 ? "" : "s");
        struct plot_figure fig = { .kind = PLOT_LOSS, .title = title, .series = ser, .n_series = k, .logy = 1 };
        draw(c, &fig, "loss");
    }
    free(ser);
}

/* a data setting: shots > 0, or the fraction */
struct setting {
    int64_t shots;
    double fraction;
};

static bool same_setting(const struct run_rec *r, struct setting s)
{
    return r->shots > 0 ? r->shots == s.shots : (s.shots == 0 && r->fraction == s.fraction);
}

/* ordering: largest shots first, then fractions largest first */
static int setting_cmp(const void *a, const void *b)
{
    const struct setting *x = a, *y = b;

    if ((x->shots > 0) != (y->shots > 0))
        return x->shots > 0 ? -1 : 1;
    if (x->shots != y->shots)
        return x->shots > y->shots ? -1 : 1;
    return x->fraction > y->fraction ? -1 : x->fraction < y->fraction ? 1 : 0;
}

/* one series per method over the runs where keep(run) holds, x from xf */
static size_t build_method_series(const struct run_rec *runs, size_t n, const char **methods, size_t n_methods,
                                  bool (*keep)(const struct run_rec *, const void *), const void *arg,
                                  double (*xf)(const struct run_rec *), struct plot_series *ser, double **bufs)
{
    size_t k = 0;

    for (size_t m = 0; m < n_methods; m++) {
        double *x = xmalloc_array(2 * (n ? n : 1), sizeof(double)), *y = x + (n ? n : 1);
        size_t np = 0;
        for (size_t i = 0; i < n; i++) {
            if (strcmp(runs[i].method, methods[m]) || !isfinite(runs[i].accuracy) || !keep(&runs[i], arg))
                continue;
            x[np] = xf(&runs[i]);
            y[np] = runs[i].accuracy;
            np++;
        }
        if (np == 0) {
            free(x);
            continue;
        }
        bufs[k] = x;
        ser[k++] = (struct plot_series){ .name = methods[m], .n = np, .x = x, .y = y };
    }
    return k;
}

static bool keep_setting(const struct run_rec *r, const void *arg)
{
    return same_setting(r, *(const struct setting *)arg) && r->n_trainable > 0;
}

static double x_params(const struct run_rec *r)
{
    return (double)r->n_trainable;
}

static void fig_acc_params(struct ctx *c, const struct run_rec *runs, size_t n, const char **methods,
                           size_t n_methods)
{
    struct setting *set = xcalloc(n ? n : 1, sizeof(*set));
    size_t ns = 0, drawn = 0;
    struct plot_series *ser = xcalloc(n_methods ? n_methods : 1, sizeof(*ser));
    double **bufs = xcalloc(n_methods ? n_methods : 1, sizeof(*bufs));

    for (size_t i = 0; i < n; i++) {
        if (!isfinite(runs[i].accuracy))
            continue;
        struct setting s = { runs[i].shots > 0 ? runs[i].shots : 0, runs[i].shots > 0 ? 0 : runs[i].fraction };
        size_t j;
        for (j = 0; j < ns; j++)
            if (same_setting(&runs[i], set[j]))
                break;
        if (j == ns)
            set[ns++] = s;
    }
    qsort(set, ns, sizeof(*set), setting_cmp);
    for (size_t j = 0; j < ns; j++) {
        size_t k = build_method_series(runs, n, methods, n_methods, keep_setting, &set[j], x_params, ser, bufs);
        char title[160], name[64];
        if (k == 0)
            continue;
        if (set[j].shots > 0)
            snprintf(title, sizeof title, "accuracy vs trainable parameters, %lld shot%s", (long long)set[j].shots,
                     set[j].shots == 1 ? "" : "s");
        else
            snprintf(title, sizeof title, "accuracy vs trainable parameters, fraction %g", set[j].fraction);
        if (drawn == 0)
            snprintf(name, sizeof name, "acc_params");
        else if (set[j].shots > 0)
            snprintf(name, sizeof name, "acc_params_s%lld", (long long)set[j].shots);
        else
            snprintf(name, sizeof name, "acc_params_f%g", set[j].fraction);
        struct plot_figure fig = { .kind = PLOT_ACC_PARAMS, .title = title, .series = ser, .n_series = k,
                                   .ylabel = "final accuracy" };
        draw(c, &fig, name);
        drawn++;
        for (size_t t = 0; t < k; t++)
            free(bufs[t]);
    }
    if (drawn == 0)
        printf("note: acc_params: no finished run with a final accuracy and a trainable count; skipped\n");
    free(set);
    free(ser);
    free(bufs);
}

/* acc_shots: runs of budget `b` (0: rank-sized or unsized runs), plus the
 * rank-free methods (full, none) in every figure */
struct shots_group {
    size_t budget;
    const struct run_rec *runs;
    size_t n;
};

static bool keep_shots(const struct run_rec *r, const void *arg)
{
    const struct shots_group *g = arg;
    return r->shots > 0 && (!r->has_rank || r->budget == g->budget);
}

static double x_shots(const struct run_rec *r)
{
    return (double)r->shots;
}

static int size_desc(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x > y ? -1 : x < y ? 1 : 0;
}

static void fig_acc_shots(struct ctx *c, const struct run_rec *runs, size_t n)
{
    size_t *budgets = xcalloc(n ? n + 1 : 1, sizeof(*budgets));
    size_t nb = 0, drawn = 0;
    bool rank_runs = false;

    for (size_t i = 0; i < n; i++) {
        if (runs[i].shots <= 0 || !isfinite(runs[i].accuracy) || !runs[i].has_rank)
            continue;
        if (runs[i].budget == 0) {
            rank_runs = true;
            continue;
        }
        size_t j;
        for (j = 0; j < nb; j++)
            if (budgets[j] == runs[i].budget)
                break;
        if (j == nb)
            budgets[nb++] = runs[i].budget;
    }
    qsort(budgets, nb, sizeof(*budgets), size_desc);
    if (rank_runs || nb == 0)
        budgets[nb++] = 0;                    /* the rank-sized (or rank-free) group */

    /* series keys: method, plus " rR" when the method has several ranks in a
     * group (rank-sized runs) */
    for (size_t b = 0; b < nb; b++) {
        struct shots_group g = { budgets[b], runs, n };
        struct plot_series *ser = xcalloc(n ? n : 1, sizeof(*ser));
        double **bufs = xcalloc(n ? n : 1, sizeof(*bufs));
        char **names = xcalloc(n ? n : 1, sizeof(*names));
        size_t k = 0;

        /* distinct (method, rank) keys among kept runs, in run order */
        for (size_t i = 0; i < n; i++) {
            const struct run_rec *r = &runs[i];
            if (!isfinite(r->accuracy) || !keep_shots(r, &g))
                continue;
            bool several = false;
            for (size_t j = 0; j < n; j++)
                if (budgets[b] == 0 && r->has_rank && keep_shots(&runs[j], &g) && isfinite(runs[j].accuracy) &&
                    !strcmp(runs[j].method, r->method) && runs[j].rank != r->rank)
                    several = true;
            char key[96];
            if (several)
                snprintf(key, sizeof key, "%s r%lld", r->method, (long long)r->rank);
            else
                snprintf(key, sizeof key, "%s", r->method);
            size_t s;
            for (s = 0; s < k; s++)
                if (!strcmp(names[s], key))
                    break;
            if (s == k) {
                names[k] = xstrdup(key);
                bufs[k] = xmalloc_array(2 * n, sizeof(double));
                ser[k] = (struct plot_series){ .name = names[k], .n = 0, .x = bufs[k], .y = bufs[k] + n };
                k++;
            }
            bufs[s][ser[s].n] = x_shots(r);
            bufs[s][n + ser[s].n] = r->accuracy;
            ser[s].n++;
        }
        if (k > 0) {
            char title[160], name[64];
            if (budgets[b] > 0)
                snprintf(title, sizeof title, "accuracy vs shots, budget %zu trainable parameters", budgets[b]);
            else
                snprintf(title, sizeof title, "accuracy vs shots per class");
            if (drawn == 0)
                snprintf(name, sizeof name, "acc_shots");
            else if (budgets[b] > 0)
                snprintf(name, sizeof name, "acc_shots_b%zu", budgets[b]);
            else
                snprintf(name, sizeof name, "acc_shots_rank");
            struct plot_figure fig = { .kind = PLOT_ACC_SHOTS, .title = title, .series = ser, .n_series = k,
                                       .ylabel = "final accuracy" };
            draw(c, &fig, name);
            drawn++;
        }
        for (size_t s = 0; s < k; s++) {
            free(bufs[s]);
            free(names[s]);
        }
        free(ser);
        free(bufs);
        free(names);
    }
    if (drawn == 0)
        printf("note: acc_shots: no finished run with shots per class and a final accuracy; skipped\n");
    free(budgets);
}

static const struct run_layer *run_layer_find(const struct run_rec *r, const char *site)
{
    for (size_t i = 0; i < r->n_layers; i++)
        if (!strcmp(r->layers[i].site, site))
            return &r->layers[i];
    return NULL;
}

/* the representative analysed run of each method (see the header) */
static bool better(const struct run_rec *a, const struct run_rec *b)
{
    if (a->shots != b->shots)
        return a->shots > b->shots;
    if (a->fraction != b->fraction)
        return a->fraction > b->fraction;
    size_t sa = a->budget ? a->budget : (size_t)a->rank, sb = b->budget ? b->budget : (size_t)b->rank;
    if (sa != sb)
        return sa > sb;
    if (a->seed != b->seed)
        return a->seed < b->seed;
    return strcmp(a->path, b->path) < 0;
}

static size_t representatives(const struct run_rec *runs, size_t n, const char **methods, size_t n_methods,
                              const struct run_rec **rep)
{
    size_t k = 0;

    for (size_t m = 0; m < n_methods; m++) {
        const struct run_rec *best = NULL;
        for (size_t i = 0; i < n; i++)
            if (runs[i].n_layers && !strcmp(runs[i].method, methods[m]) && (!best || better(&runs[i], best)))
                best = &runs[i];
        if (best)
            rep[k++] = best;
    }
    return k;
}

static void rep_name(const struct run_rec *r, char *buf, size_t size)
{
    if (r->has_rank)
        snprintf(buf, size, "%s r%lld", r->method, (long long)r->rank);
    else
        snprintf(buf, size, "%s", r->method);
}

static void fig_spectrum(struct ctx *c, const struct run_rec **rep, size_t n_rep, const char *layer)
{
    struct plot_series *ser = xcalloc(n_rep ? n_rep : 1, sizeof(*ser));
    double **ys = xcalloc(n_rep ? n_rep : 1, sizeof(*ys));
    char (*names)[96] = xcalloc(n_rep ? n_rep : 1, sizeof(*names));
    const char *site = layer;
    size_t k = 0;

    if (!site) {
        /* the first layer in site order over the representatives */
        for (size_t i = 0; i < n_rep; i++)
            if (rep[i]->n_layers && (!site || run_site_cmp(rep[i]->layers[0].site, site) < 0))
                site = rep[i]->layers[0].site;
    }
    for (size_t i = 0; site && i < n_rep; i++) {
        const struct run_layer *l = run_layer_find(rep[i], site);
        if (!l || l->n_sv == 0)
            continue;
        ys[k] = xmalloc_array(l->n_sv, sizeof(double));
        for (size_t t = 0; t < l->n_sv; t++)
            ys[k][t] = l->sv[t];
        rep_name(rep[i], names[k], sizeof names[k]);
        ser[k] = (struct plot_series){ .name = names[k], .n = l->n_sv, .y = ys[k] };
        k++;
    }
    if (n_rep == 0)
        printf("note: spectrum: no run has an /analysis; run `randlora analyze RUN.h5 ...` first; skipped\n");
    else if (k == 0)
        printf("note: spectrum: no analysed run has layer %s; skipped\n", site ? site : "(none)");
    else {
        char title[1200];
        snprintf(title, sizeof title, "singular values of dW: %s", site);
        struct plot_figure fig = { .kind = PLOT_SPECTRUM, .title = title, .series = ser, .n_series = k,
                                   .normalise = 1 };
        draw(c, &fig, "spectrum");
    }
    for (size_t i = 0; i < k; i++)
        free(ys[i]);
    free(ys);
    free(names);
    free(ser);
}

static int str_site_cmp(const void *a, const void *b)
{
    return run_site_cmp(*(const char *const *)a, *(const char *const *)b);
}

static void fig_rank(struct ctx *c, const struct run_rec **rep, size_t n_rep)
{
    size_t total = 0, n_sites = 0;
    const char **sites;

    for (size_t i = 0; i < n_rep; i++)
        total += rep[i]->n_layers;
    if (total == 0) {
        printf("note: rank: no run has an /analysis; run `randlora analyze RUN.h5 ...` first; skipped\n");
        return;
    }
    /* the union of the sites, in site order */
    sites = xcalloc(total, sizeof(*sites));
    for (size_t i = 0; i < n_rep; i++)
        for (size_t j = 0; j < rep[i]->n_layers; j++) {
            size_t t;
            for (t = 0; t < n_sites; t++)
                if (!strcmp(sites[t], rep[i]->layers[j].site))
                    break;
            if (t == n_sites)
                sites[n_sites++] = rep[i]->layers[j].site;
        }
    qsort(sites, n_sites, sizeof(*sites), str_site_cmp);

    struct plot_series *ser = xcalloc(n_rep, sizeof(*ser));
    double **bufs = xcalloc(n_rep, sizeof(*bufs));
    char (*names)[96] = xcalloc(n_rep, sizeof(*names));
    double *at = xmalloc_array(n_sites, sizeof(double));
    char (*labels)[48] = xcalloc(n_sites, sizeof(*labels));
    const char **lab = xcalloc(n_sites, sizeof(*lab));
    size_t k = 0;

    for (size_t t = 0; t < n_sites; t++) {
        at[t] = (double)t;
        lab[t] = run_site_short(sites[t], labels[t], sizeof labels[t]);
    }
    for (size_t i = 0; i < n_rep; i++) {
        double *x = xmalloc_array(2 * n_sites, sizeof(double)), *y = x + n_sites;
        size_t np = 0;
        for (size_t t = 0; t < n_sites; t++) {
            const struct run_layer *l = run_layer_find(rep[i], sites[t]);
            if (!l)
                continue;
            x[np] = (double)t;
            y[np] = (double)l->rank;
            np++;
        }
        bufs[k] = x;
        rep_name(rep[i], names[k], sizeof names[k]);
        ser[k] = (struct plot_series){ .name = names[k], .n = np, .x = x, .y = y };
        k++;
    }
    struct plot_figure fig = { .kind = PLOT_RANK, .title = "numerical rank of dW per layer", .series = ser,
                               .n_series = k, .n_xtics = n_sites, .xtic_at = at, .xtic_labels = lab,
                               .width = n_sites > 24 ? (int)(n_sites * 32 + 200) : 0 };
    draw(c, &fig, "rank");
    for (size_t i = 0; i < k; i++)
        free(bufs[i]);
    free(bufs);
    free(names);
    free(ser);
    free(at);
    free(labels);
    free(lab);
    free(sites);
}

/* ------------------------------------------------------------------ main */

int cmd_plot(int argc, char **argv)
{
    const char *outdir = NULL, *layer = NULL, *first_dir = NULL, *first_file = NULL;
    char **paths = NULL;
    size_t n_paths = 0, cap = 0;
    struct run_rec *runs = NULL;
    size_t n_runs = 0;
    struct ctx c = { 0 };
    char defdir[4096];
    int rc;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            plot_usage(stdout);
            goto out;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output") || !strcmp(a, "--layer")) {
            if (i + 1 >= argc) {
                c.status = bad("%s needs a value", a);
                goto out;
            }
            if (!strcmp(a, "--layer"))
                layer = argv[++i];
            else
                outdir = argv[++i];
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
            for (size_t j = 0; j < nl; j++) {
                if (n_paths == cap) {
                    cap = cap ? 2 * cap : 64;
                    paths = xrealloc_array(paths, cap, sizeof(*paths));
                }
                paths[n_paths++] = list[j];
            }
            free(list);
        } else {
            if (!first_dir && !first_file)
                first_file = a;
            if (n_paths == cap) {
                cap = cap ? 2 * cap : 64;
                paths = xrealloc_array(paths, cap, sizeof(*paths));
            }
            paths[n_paths++] = xstrdup(a);
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

    runs = xcalloc(n_paths ? n_paths : 1, sizeof(*runs));
    for (size_t i = 0; i < n_paths; i++) {
        if ((rc = read_run(paths[i], &runs[n_runs]))) {
            fprintf(stderr, "randlora plot: skipped: %s\n", rl_error_msg());
            run_rec_free(&runs[n_runs]);
            if (rl_exit_code(rc) == 1 || c.status == 0)
                c.status = rl_exit_code(rc);
            continue;
        }
        n_runs++;
    }
    if (n_runs == 0) {
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
    c.outdir = outdir;
    printf("%zu run%s -> %s\n", n_runs, n_runs == 1 ? "" : "s", outdir);

    const char **methods = xcalloc(n_runs, sizeof(*methods));
    size_t n_methods = methods_of(runs, n_runs, methods);
    const struct run_rec **rep = xcalloc(n_methods, sizeof(*rep));
    size_t n_rep = representatives(runs, n_runs, methods, n_methods, rep);

    fig_loss(&c, runs, n_runs);
    fig_acc_params(&c, runs, n_runs, methods, n_methods);
    fig_acc_shots(&c, runs, n_runs);
    fig_spectrum(&c, rep, n_rep, layer);
    fig_rank(&c, rep, n_rep);
    free(rep);
    free(methods);

out:
    for (size_t i = 0; i < n_runs; i++)
        run_rec_free(&runs[i]);
    free(runs);
    for (size_t i = 0; i < n_paths; i++)
        free(paths[i]);
    free(paths);
    return c.status;
}
