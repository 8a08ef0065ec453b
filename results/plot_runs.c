/*
 * plot_runs.c: reading one run file for `randlora plot` (plot_runs.h).
 */
#include "results/plot_runs.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/status.h"
#include "methods/adapter.h"
#include "results/run_adapters.h"
#include "results/store.h"

static void curve_free(struct plot_curve *c)
{
    free(c->x);
    free(c->y);
    memset(c, 0, sizeof(*c));
}

void plot_run_free(struct plot_run *r)
{
    free(r->path);
    run_key_free(&r->key);
    curve_free(&r->train_loss);
    curve_free(&r->eval_acc);
    curve_free(&r->eval_loss);
    for (size_t i = 0; i < r->n_layers; i++) {
        free(r->layers[i].site);
        free(r->layers[i].sv);
    }
    free(r->layers);
    free(r->cka_vision);
    free(r->cka_text);
    free(r->reference);
    report_run_free(&r->rec);
    memset(r, 0, sizeof(*r));
}

/* /<group>/step and /<group>/<name> as doubles */
static int read_curve(struct store *s, const char *group, const char *name, struct plot_curve *c)
{
    int64_t *steps = NULL;
    int rc = store_read_curve(s, group, name, &steps, &c->y, &c->n);

    if (rc == RL_OK && c->n) {
        c->x = xmalloc_array(c->n, sizeof(double));
        for (size_t i = 0; i < c->n; i++)
            c->x[i] = (double)steps[i];
    }
    free(steps);
    return rc;
}

/* an optional float64 scalar: NaN when absent */
static int opt_scalar(struct store *s, const char *path, double *v)
{
    *v = NAN;
    return store_has(s, path) ? store_read_scalar(s, path, v) : RL_OK;
}

static int layer_cmp(const void *a, const void *b)
{
    return run_site_cmp(((const struct plot_layer *)a)->site, ((const struct plot_layer *)b)->site);
}

/* one /analysis/<site>; RL_ERR_NA when it is not a layer */
static int read_layer(struct store *s, const char *site, struct plot_layer *l)
{
    char p[1400];
    size_t nd = 0, dims[STORE_MAX_DIMS];
    int64_t rank = 0, d = 0;
    int rc;

    memset(l, 0, sizeof(*l));
    snprintf(p, sizeof p, "/analysis/%s/singular_values", site);
    if (!store_has(s, p))
        return RL_ERR_NA;                        /* not a layer (cka, ...) */
    if ((rc = store_read_tensor(s, p, &l->sv, &nd, dims)))
        return rc;
    if (nd != 1)
        return rl_error_set(RL_ERR_FORMAT, "%s: %s: rank %zu, expected 1", store_path(s), p, nd);
    l->n_sv = dims[0];
    snprintf(p, sizeof p, "/analysis/%s/rank", site);
    if ((rc = store_read_scalar_i64(s, p, &rank)))
        return rc;
    if (rank < 0)
        return rl_error_set(RL_ERR_FORMAT, "%s: %s: negative rank %lld", store_path(s), p, (long long)rank);
    l->rank = (size_t)rank;
    snprintf(p, sizeof p, "/analysis/%s", site);
    if (store_attr_get_int64(s, p, "d_out", &d) == RL_OK && d > 0)
        l->d_out = (size_t)d;
    if (store_attr_get_int64(s, p, "d_in", &d) == RL_OK && d > 0)
        l->d_in = (size_t)d;
    rl_error_clear();
    static const char *const names[] = { "effective_rank", "ref_cosine", "ref_overlap_out", "ref_overlap_in" };
    double *dst[] = { &l->effective_rank, &l->ref_cosine, &l->ref_overlap_out, &l->ref_overlap_in };
    for (size_t i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "/analysis/%s/%s", site, names[i]);
        if ((rc = opt_scalar(s, p, dst[i])))
            return rc;
    }
    l->site = xstrdup(site);
    return RL_OK;
}

/* /analysis/cka/<tower>_layer_<l>, l = 0, 1, ... while present */
static int read_cka(struct store *s, const char *tower, double **out, size_t *n)
{
    char p[128];
    size_t cap = 0;
    int rc;

    *out = NULL;
    *n = 0;
    for (;;) {
        snprintf(p, sizeof p, "/analysis/cka/%s_layer_%zu", tower, *n);
        if (!store_has(s, p))
            return RL_OK;
        if (*n == cap) {
            cap = cap ? 2 * cap : 8;
            *out = xrealloc_array(*out, cap, sizeof(double));
        }
        if ((rc = store_read_scalar(s, p, &(*out)[*n])))
            return rc;
        (*n)++;
    }
}

static int read_analysis(struct store *s, struct plot_run *r)
{
    char **names = NULL;
    size_t n = 0;
    int rc = store_list(s, "/analysis", &names, &n);

    if (rc == RL_ERR_NA) {
        rl_error_clear();
        return RL_OK;
    }
    if (rc)
        return rc;
    r->layers = xcalloc(n ? n : 1, sizeof(*r->layers));
    for (size_t i = 0; i < n && rc == RL_OK; i++) {
        struct plot_layer *l = &r->layers[r->n_layers];
        rc = read_layer(s, names[i], l);
        if (rc == RL_OK) {
            r->n_layers++;
        } else {
            free(l->sv);
            memset(l, 0, sizeof(*l));
            if (rc == RL_ERR_NA)
                rc = RL_OK;
        }
    }
    store_free_names(names, n);
    if (rc == RL_OK)
        qsort(r->layers, r->n_layers, sizeof(*r->layers), layer_cmp);
    if (rc == RL_OK && store_attr_get_string(s, "/analysis", "reference", &r->reference) == RL_OK &&
        r->reference[0]) {
        char *a = realpath(r->reference, NULL), *b = realpath(r->path, NULL);
        r->is_reference = a && b && !strcmp(a, b);
        free(a);
        free(b);
    }
    rl_error_clear();
    if (rc == RL_OK)
        rc = read_cka(s, "vision", &r->cka_vision, &r->n_cka_vision);
    if (rc == RL_OK)
        rc = read_cka(s, "text", &r->cka_text, &r->n_cka_text);
    return rc;
}

int plot_run_read(const char *path, struct plot_run *r)
{
    struct store *s = NULL;
    struct store_final f;
    struct plot_curve wall = { 0 };
    int64_t *index = NULL;
    size_t n_index = 0;
    int rc;

    memset(r, 0, sizeof(*r));
    r->path = xstrdup(path);
    r->accuracy = r->loss = r->val_accuracy = r->val_loss = r->peak_rss_mib = r->train_s = r->lr = NAN;
    r->eval_split = "test";
    if ((rc = store_open(&s, path)))
        goto done;
    if ((rc = run_key_from_store(s, &r->key)) || (rc = report_run_read(s, path, &r->rec)))
        goto done;
    const struct adapter_ops *ops = adapter_ops_find(r->key.method);
    r->has_rank = ops && (ops->flags & ADAPTER_F_RANK);
    const char *lr = run_key_get(&r->key, "train.lr");
    if (lr)
        r->lr = strtod(lr, NULL);
    if ((rc = store_read_final(s, &f, &r->completed)))
        goto done;
    if (r->completed) {
        r->accuracy = f.accuracy;
        r->loss = f.loss;
        r->val_accuracy = f.has_val ? f.val_accuracy : NAN;
        r->val_loss = f.has_val ? f.val_loss : NAN;
        r->peak_rss_mib = f.peak_rss_bytes > 0 ? (double)f.peak_rss_bytes / (1024.0 * 1024.0) : NAN;
    }
    /* classes: the k-shot training index holds k items of each */
    if ((rc = store_read_train_index(s, &index, &n_index)))
        goto done;
    if (r->key.shots > 0 && n_index > 0 && n_index % r->key.shots == 0)
        r->n_classes = n_index / r->key.shots;
    if ((rc = read_curve(s, "train", "loss", &r->train_loss)) || (rc = read_curve(s, "train", "wall_s", &wall)) ||
        (rc = read_curve(s, "eval", "accuracy", &r->eval_acc)) || (rc = read_curve(s, "eval", "loss", &r->eval_loss)) ||
        (rc = store_read_eval_split(s, &r->eval_split)))
        goto done;
    if (wall.n)
        r->train_s = wall.y[wall.n - 1];
    rc = read_analysis(s, r);
done:
    free(index);
    curve_free(&wall);
    store_close(s);
    if (rc) {
        char *msg = xstrdup(rl_error_msg());
        plot_run_free(r);
        rl_error_set(rc, "%s", msg);
        free(msg);
    }
    return rc;
}
