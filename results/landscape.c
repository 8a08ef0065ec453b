/*
 * landscape.c: the loss around three solutions and between them
 * (landscape.h): the runs read and checked, their task vectors, the
 * training subset, and the loss at any mixture of the task vectors.
 */
#include "results/landscape.h"

#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/progress.h"
#include "core/rng.h"
#include "core/status.h"
#include "core/timer.h"
#include "datasets/dataset.h"
#include "datasets/loader.h"
#include "experiments/runner.h"
#include "models/tokenizer.h"
#include "results/run_adapters.h"
#include "results/store.h"

#define CACHE_MAX_BYTES ((size_t)1 << 30)   /* transformed subset kept in memory */

/* one layer adapted by at least one run */
struct ls_layer {
    char name[CLIP_MAX_NAME];
    float *w;                      /* the model's weight (d_out, d_in), borrowed */
    size_t n;                      /* d_out * d_in                               */
    float *w0;                     /* the frozen weight                          */
    float *tau[LANDSCAPE_RUNS];    /* dW of each run; NULL: not adapted by it    */
};

struct landscape {
    const char *path[LANDSCAPE_RUNS];
    struct run_adapters ra[LANDSCAPE_RUNS];
    char label[LANDSCAPE_RUNS][64];
    char model_id[PATH_MAX];
    struct clip_model m;
    bool have_model;
    struct ls_layer *layers;
    size_t n_layers;
    double tau_norm[LANDSCAPE_RUNS];
    /* the data */
    struct dataset ds;
    bool have_ds;
    struct loader *loader;
    size_t n_items, batch, M, ctx, max_T;
    int64_t *items;
    int32_t *ids;                  /* (M, ctx) the training prompts              */
    float *txt, *img;              /* (M, D), (batch, D)                         */
    struct clip_vision_run vr;
    struct clip_text_run tr;
    struct clip_head head;
    bool have_runs;
    float scale;
};

void landscape_opts_init(struct landscape_opts *o)
{
    memset(o, 0, sizeof(*o));
    landscape_grid_make(&o->grid, -1.0, 1.5, -0.5, 2.0, 0.1);
    o->data_ratio = 0.01;
    o->batch = 64;
    o->path_points = 21;
}

static size_t axis_points(double lo, double hi, double step)
{
    double span = (hi - lo) / step;

    if (!(span > 1e-9))
        return 0;
    if (span > (double)LANDSCAPE_MAX_AXIS + 1.0)
        return LANDSCAPE_MAX_AXIS + 1;
    return (size_t)ceil(span - 1e-9);
}

int landscape_grid_make(struct landscape_grid *g, double x0, double x1, double y0, double y1, double step)
{
    memset(g, 0, sizeof(*g));
    if (!isfinite(x0) || !isfinite(x1) || !isfinite(y0) || !isfinite(y1) || !isfinite(step))
        return rl_error_set(RL_ERR_ARG, "grid: bounds and step must be finite numbers");
    if (!(step > 0))
        return rl_error_set(RL_ERR_ARG, "grid: step %g: expected a positive step", step);
    *g = (struct landscape_grid){ x0, x1, y0, y1, step, axis_points(x0, x1, step), axis_points(y0, y1, step) };
    if (g->nx == 0 || g->ny == 0)
        return rl_error_set(RL_ERR_ARG, "grid: [%g, %g) x [%g, %g) by %g is empty: expected X0 < X1 and Y0 < Y1",
                            x0, x1, y0, y1, step);
    if (g->nx > LANDSCAPE_MAX_AXIS || g->ny > LANDSCAPE_MAX_AXIS)
        return rl_error_set(RL_ERR_ARG, "grid: [%g, %g) x [%g, %g) by %g has more than %d points per axis",
                            x0, x1, y0, y1, step, LANDSCAPE_MAX_AXIS);
    return RL_OK;
}

int landscape_grid_parse(struct landscape_grid *g, const char *text)
{
    double v[5];
    const char *p = text;

    for (int i = 0; i < 5; i++) {
        char *end;

        v[i] = strtod(p, &end);
        if (end == p || (i < 4 ? *end != ':' : *end != '\0'))
            return rl_error_set(RL_ERR_ARG, "--grid '%s': expected X0:X1:Y0:Y1:STEP (numbers, e.g. "
                                "-1:1.5:-0.5:2:0.1)", text);
        p = end + 1;
    }
    if (landscape_grid_make(g, v[0], v[1], v[2], v[3], v[4]))
        return rl_error_set(RL_ERR_ARG, "--grid '%s': %s", text, rl_error_msg());
    return RL_OK;
}

double landscape_grid_x(const struct landscape_grid *g, size_t i)
{
    return g->x0 + (double)i * g->step;
}

double landscape_grid_y(const struct landscape_grid *g, size_t j)
{
    return g->y0 + (double)j * g->step;
}

void landscape_coeffs(double x, double y, double coef[LANDSCAPE_RUNS])
{
    coef[0] = 1.0 - 0.5 * y - x;
    coef[1] = y;
    coef[2] = x - 0.5 * y;
}

void landscape_corner(size_t k, double *x, double *y)
{
    static const double cx[LANDSCAPE_RUNS] = { 0.0, 0.5, 1.0 }, cy[LANDSCAPE_RUNS] = { 0.0, 1.0, 0.0 };

    *x = cx[k];
    *y = cy[k];
}

void landscape_pair(size_t p, size_t *i, size_t *j)
{
    static const size_t a[LANDSCAPE_PAIRS] = { 0, 0, 1 }, b[LANDSCAPE_PAIRS] = { 1, 2, 2 };

    *i = a[p];
    *j = b[p];
}

/* ------------------------------------------------------------------ runs */

static void model_identity(const struct exp_model *em, char *buf, size_t size)
{
    const char *dir = runner_model_dir(em);
    char real[PATH_MAX];

    snprintf(buf, size, "%s", dir && realpath(dir, real) ? real : dir ? dir : em->name);
}

static size_t plan_image_size(const struct run_plan *p, const struct clip_model *m)
{
    return p->image_size ? p->image_size : m->cfg.vision.image_size;
}

static const char *str_or_empty(const char *s)
{
    return s ? s : "";
}

/* run k's plan against run 0's: what the loss needs must agree */
static int check_same(const struct landscape *L, size_t k)
{
    const struct run_plan *p = L->ra[k].plan, *q = L->ra[0].plan;
    char id[PATH_MAX];

    model_identity(&p->model, id, sizeof id);
    if (strcmp(id, L->model_id))
        return rl_error_set(RL_ERR_ARG, "%s: model '%s' (%s), but %s uses '%s' (%s): the three runs must be "
                            "fine-tuned from one model", L->path[k], p->model.name, id, L->path[0],
                            q->model.name, L->model_id);
    if (strcmp(p->dataset, q->dataset))
        return rl_error_set(RL_ERR_ARG, "%s: data.dataset = '%s', but %s has '%s': the three runs must be "
                            "trained on one training set", L->path[k], p->dataset, L->path[0], q->dataset);
    if (strcmp(str_or_empty(p->prompt), str_or_empty(q->prompt)))
        return rl_error_set(RL_ERR_ARG, "%s: data.prompt = '%s', but %s has '%s': the training loss needs "
                            "one prompt", L->path[k], str_or_empty(p->prompt), L->path[0],
                            str_or_empty(q->prompt));
    if (plan_image_size(p, &L->m) != plan_image_size(q, &L->m))
        return rl_error_set(RL_ERR_ARG, "%s: data.image_size = %zu, but %s has %zu", L->path[k],
                            plan_image_size(p, &L->m), L->path[0], plan_image_size(q, &L->m));
    return RL_OK;
}

static int read_run(struct landscape *L, size_t k)
{
    struct store *s = NULL;
    struct run_plan *plan = NULL;
    int rc;

    if ((rc = store_open(&s, L->path[k])))
        return rc;
    /* `none` has no /adapter: say why it cannot be a corner */
    if ((rc = run_plan_read(s, &plan)) == RL_OK && !strcmp(plan->method, "none"))
        rc = rl_error_set(RL_ERR_ARG, "%s: method none (the frozen model) has no task vector; it is the "
                          "point a = b = c = 0 of every landscape: give three fine-tuned runs", L->path[k]);
    if (plan)
        run_plans_free(plan, 1);
    if (rc == RL_OK)
        rc = run_adapters_load(&L->ra[k], s);
    store_close(s);
    if (rc == RL_OK && L->ra[k].n_sites == 0)
        rc = rl_error_set(RL_ERR_ARG, "%s: method %s adapted no layer: no task vector", L->path[k],
                          L->ra[k].method);
    if (rc == RL_OK) {
        if (L->ra[k].plan->adapter.r && strcmp(L->ra[k].method, "full"))
            snprintf(L->label[k], sizeof L->label[k], "%s r=%zu", L->ra[k].method, L->ra[k].plan->adapter.r);
        else
            snprintf(L->label[k], sizeof L->label[k], "%s", L->ra[k].method);
    }
    return rc;
}

static struct ls_layer *find_layer(struct landscape *L, const char *name)
{
    for (size_t i = 0; i < L->n_layers; i++)
        if (!strcmp(L->layers[i].name, name))
            return &L->layers[i];
    return NULL;
}

/* the union of the runs' layers, each run's dW on its own */
static int build_task_vectors(struct landscape *L)
{
    size_t cap = 0;

    for (size_t k = 0; k < LANDSCAPE_RUNS; k++)
        cap += L->ra[k].n_sites;
    L->layers = xcalloc(cap, sizeof(*L->layers));
    for (size_t k = 0; k < LANDSCAPE_RUNS; k++) {
        double norm2 = 0.0;

        for (size_t s = 0; s < L->ra[k].n_sites; s++) {
            struct run_site *site = &L->ra[k].sites[s];
            struct ls_layer *ly = find_layer(L, site->name);

            if (!ly) {
                char wname[CLIP_MAX_NAME + 8];
                const struct clip_tensor *t;

                snprintf(wname, sizeof wname, "%s.weight", site->name);
                t = clip_model_find(&L->m, wname);
                if (!t || t->ndim != 2 || (size_t)t->shape[0] != site->d_out || (size_t)t->shape[1] != site->d_in)
                    return rl_error_set(RL_ERR_ARG, "%s: /adapter/%s (%zux%zu) is not a linear layer of the "
                                        "model %s: the run was made for another model", L->path[k],
                                        site->name, site->d_out, site->d_in, L->model_id);
                ly = &L->layers[L->n_layers++];
                snprintf(ly->name, sizeof ly->name, "%s", site->name);
                ly->w = clip_model_tensor(&L->m, wname);
                ly->n = site->d_out * site->d_in;
                ly->w0 = xmalloc_array(ly->n, sizeof(float));
                memcpy(ly->w0, ly->w, ly->n * sizeof(float));
            }
            ly->tau[k] = xmalloc_array(ly->n, sizeof(float));
            adapter_delta_weight(&site->adapter, ly->tau[k]);
            for (size_t i = 0; i < ly->n; i++) {
                if (!isfinite(ly->tau[k][i]))
                    return rl_error_set(RL_ERR_FORMAT, "%s: /adapter/%s: the update has a non-finite value",
                                        L->path[k], site->name);
                norm2 += (double)ly->tau[k][i] * ly->tau[k][i];
            }
        }
        L->tau_norm[k] = sqrt(norm2);
    }
    return RL_OK;
}

/* ------------------------------------------------------------------ data */

/* n of the N items without replacement from seed, ascending */
static int64_t *draw_subset(size_t N, size_t n, uint64_t seed)
{
    size_t *perm = xmalloc_array(N, sizeof(size_t));
    int64_t *out = xmalloc_array(n, sizeof(int64_t));
    struct rng r;

    rng_init(&r, seed);
    for (size_t i = 0; i < N; i++)
        perm[i] = i;
    for (size_t i = 0; i < n; i++) {
        size_t j = i + (size_t)rng_below(&r, (uint64_t)(N - i)), t = perm[i];

        perm[i] = perm[j];
        perm[j] = t;
    }
    /* ascending: the chosen items marked, then read in order */
    {
        unsigned char *mark = xcalloc(N, 1);
        size_t w = 0;

        for (size_t i = 0; i < n; i++)
            mark[perm[i]] = 1;
        for (size_t i = 0; i < N; i++)
            if (mark[i])
                out[w++] = (int64_t)i;
        free(mark);
    }
    free(perm);
    return out;
}

static int open_data(struct landscape *L, const struct landscape_opts *o)
{
    const struct run_plan *p = L->ra[0].plan;
    const size_t S = plan_image_size(p, &L->m);
    struct loader_config lc;
    struct tokenizer *tok = NULL;
    size_t *idx;
    int rc;

    if (S != L->m.cfg.vision.image_size)
        return rl_error_set(RL_ERR_ARG, "%s: data.image_size = %zu, but the model takes %zux%zu images",
                            L->path[0], S, L->m.cfg.vision.image_size, L->m.cfg.vision.image_size);
    if ((rc = dataset_open(&L->ds, p->dataset)))
        return rc;
    L->have_ds = true;
    if (L->ds.n == 0 || L->ds.n_classes < 1)
        return rl_error_set(RL_ERR_ARG, "%s: the training set %s is empty", L->path[0], p->dataset);
    L->n_items = (size_t)floor(o->data_ratio * (double)L->ds.n + 0.5);
    if (L->n_items < 1)
        L->n_items = 1;
    if (L->n_items > L->ds.n)
        L->n_items = L->ds.n;
    L->items = draw_subset(L->ds.n, L->n_items, o->seed);
    L->batch = o->batch < L->n_items ? o->batch : L->n_items;
    idx = xmalloc_array(L->n_items, sizeof(size_t));
    for (size_t i = 0; i < L->n_items; i++)
        idx[i] = (size_t)L->items[i];
    loader_config_init(&lc, (int)L->batch, (int)S);
    lc.cache = L->n_items <= CACHE_MAX_BYTES / (3 * S * S * sizeof(float));
    rc = loader_open(&L->loader, &L->ds, idx, L->n_items, &lc);
    free(idx);
    if (rc)
        return rc;

    /* one prompt per class, as training uses */
    if ((rc = runner_load_tokenizer(&tok, runner_model_dir(&p->model), &L->m.cfg)))
        return rc;
    L->M = (size_t)L->ds.n_classes;
    L->ctx = L->m.cfg.text.context;
    L->ids = xmalloc_array(L->M * L->ctx, sizeof(int32_t));
    for (size_t c = 0; c < L->M && rc == RL_OK; c++) {
        char text[2048];
        int eot = 0;

        runner_fill_prompt(text, sizeof text, p->prompt ? p->prompt : "{}", L->ds.class_names[c]);
        if ((rc = tok_encode(tok, text, L->ids + c * L->ctx, &eot)) == RL_OK && (size_t)eot + 1 > L->max_T)
            L->max_T = (size_t)eot + 1;
    }
    tok_free(tok);
    return rc;
}

int landscape_open(struct landscape **out, const char *const paths[LANDSCAPE_RUNS], const struct landscape_opts *o)
{
    struct landscape *L = xcalloc(1, sizeof(*L));
    int rc = RL_OK;

    *out = NULL;
    if (!(o->data_ratio > 0.0 && o->data_ratio <= 1.0)) {
        free(L);
        return rl_error_set(RL_ERR_ARG, "data ratio %g: expected a fraction in (0, 1]", o->data_ratio);
    }
    for (size_t k = 0; k < LANDSCAPE_RUNS && rc == RL_OK; k++) {
        L->path[k] = paths[k];
        rc = read_run(L, k);
    }
    L->have_runs = true;
    if (rc)
        goto fail;
    model_identity(&L->ra[0].plan->model, L->model_id, sizeof L->model_id);
    if ((rc = runner_load_model(&L->m, &L->ra[0].plan->model)))
        goto fail;
    L->have_model = true;
    for (size_t k = 1; k < LANDSCAPE_RUNS && rc == RL_OK; k++)
        rc = check_same(L, k);
    if (rc || (rc = build_task_vectors(L)) || (rc = open_data(L, o)))
        goto fail;
    L->scale = clip_logit_scale(&L->m);
    clip_vision_run_init(&L->vr, &L->m, L->batch, false);
    clip_text_run_init(&L->tr, &L->m, L->M, L->max_T, false);
    clip_head_init(&L->head, L->batch, L->M, L->m.cfg.projection_dim);
    L->txt = xcalloc(L->M * L->m.cfg.projection_dim, sizeof(float));
    L->img = xcalloc(L->batch * L->m.cfg.projection_dim, sizeof(float));
    *out = L;
    return RL_OK;
fail:
    landscape_close(L);
    return rc;
}

void landscape_close(struct landscape *L)
{
    if (!L)
        return;
    for (size_t i = 0; i < L->n_layers; i++) {
        free(L->layers[i].w0);
        for (size_t k = 0; k < LANDSCAPE_RUNS; k++)
            free(L->layers[i].tau[k]);
    }
    free(L->layers);
    for (size_t k = 0; k < LANDSCAPE_RUNS; k++)
        run_adapters_free(&L->ra[k]);
    if (L->txt) {
        clip_vision_run_free(&L->vr);
        clip_text_run_free(&L->tr);
        clip_head_free(&L->head);
    }
    free(L->txt);
    free(L->img);
    free(L->ids);
    free(L->items);
    if (L->loader)
        loader_close(L->loader);
    if (L->have_ds)
        dataset_close(&L->ds);
    if (L->have_model)
        clip_model_free(&L->m);
    free(L);
}

void landscape_describe(const struct landscape *L, struct landscape_info *info)
{
    memset(info, 0, sizeof(*info));
    for (size_t k = 0; k < LANDSCAPE_RUNS; k++) {
        info->run[k] = L->path[k];
        snprintf(info->label[k], sizeof info->label[k], "%s", L->label[k]);
        info->tau_norm[k] = L->tau_norm[k];
    }
    info->model = L->model_id;
    info->dataset = L->ra[0].plan->dataset;
    info->prompt = str_or_empty(L->ra[0].plan->prompt);
    info->n_items = L->n_items;
    info->items = L->items;
    info->n_layers = L->n_layers;
}

/* ------------------------------------------------------------------ loss */

/* the mean cross-entropy over the subset with the model's current weights
 * and adapters ca (NULL: none) */
static int subset_loss(struct landscape *L, struct clip_adapters *ca, double *loss)
{
    double sum = 0.0;
    size_t rows = 0;
    int rc;

    if ((rc = clip_text_forward(&L->tr, &L->m, ca, L->ids, L->M, L->ctx, L->txt)) ||
        (rc = loader_epoch(L->loader, 0)))
        return rc;
    for (;;) {
        struct loader_batch b;

        if ((rc = loader_next(L->loader, &b)) || b.n == 0)
            break;
        if ((rc = clip_vision_forward(&L->vr, &L->m, ca, b.x, (size_t)b.n, L->img)))
            break;
        clip_head_logits(&L->head, L->img, L->txt, (size_t)b.n, L->M, L->scale);
        sum += (double)clip_head_crossentropy(&L->head, b.labels) * (double)b.n;
        rows += (size_t)b.n;
    }
    if (rc == RL_OK && rows != L->n_items)
        rc = rl_error_set(RL_ERR, "landscape: %zu items evaluated, expected %zu", rows, L->n_items);
    *loss = rc == RL_OK ? sum / (double)rows : NAN;
    return rc;
}

int landscape_loss(struct landscape *L, const double coef[LANDSCAPE_RUNS], double *loss)
{
    int rc;

    for (size_t l = 0; l < L->n_layers; l++) {
        const struct ls_layer *ly = &L->layers[l];

        for (size_t i = 0; i < ly->n; i++) {
            double w = ly->w0[i];

            for (size_t k = 0; k < LANDSCAPE_RUNS; k++)
                if (ly->tau[k])
                    w += coef[k] * (double)ly->tau[k][i];
            ly->w[i] = (float)w;
        }
    }
    rc = subset_loss(L, NULL, loss);
    for (size_t l = 0; l < L->n_layers; l++)
        memcpy(L->layers[l].w, L->layers[l].w0, L->layers[l].n * sizeof(float));
    return rc;
}

int landscape_run_loss(struct landscape *L, size_t k, double *loss)
{
    struct clip_adapters ca;
    int rc;

    RL_ASSERT(k < LANDSCAPE_RUNS);
    rc = run_adapters_attach(&L->ra[k], &L->m, &ca, L->batch, L->M);
    if (rc == RL_OK)
        rc = subset_loss(L, ca.n_sites ? &ca : NULL, loss);
    clip_adapters_free(&ca);
    return rc;
}

/* ------------------------------------------------------------- the whole */

void landscape_result_free(struct landscape_result *r)
{
    free(r->x);
    free(r->y);
    free(r->loss);
    free(r->t);
    free(r->path_loss);
    memset(r, 0, sizeof(*r));
}

/* largest rise of a path's loss over the straight line between its ends */
static double barrier_height(const double *t, const double *loss, size_t n)
{
    double h = 0.0;

    for (size_t i = 0; i < n; i++) {
        double line = (1.0 - t[i]) * loss[0] + t[i] * loss[n - 1];

        if (loss[i] - line > h)
            h = loss[i] - line;
    }
    return h;
}

int landscape_compute(struct landscape *L, const struct landscape_opts *o, struct landscape_result *r)
{
    const struct landscape_grid *g = &o->grid;
    const size_t n_grid = g->nx * g->ny, np = o->path_points;
    const size_t total = n_grid + 2 * LANDSCAPE_RUNS + 1 + LANDSCAPE_PAIRS * (np > 2 ? np - 2 : 0);
    const double t0 = timer_now();
    struct progress prog;
    size_t done = 0;
    double zero[LANDSCAPE_RUNS] = { 0, 0, 0 };
    int rc = RL_OK;

    memset(r, 0, sizeof(*r));
    if (np == 1 || np > LANDSCAPE_MAX_PATH)
        return rl_error_set(RL_ERR_ARG, "barrier points %zu: expected 0 (none) or 2 to %d", np,
                            LANDSCAPE_MAX_PATH);
    r->grid = *g;
    r->x = xmalloc_array(g->nx, sizeof(double));
    r->y = xmalloc_array(g->ny, sizeof(double));
    r->loss = xmalloc_array(n_grid, sizeof(double));
    for (size_t i = 0; i < g->nx; i++)
        r->x[i] = landscape_grid_x(g, i);
    for (size_t j = 0; j < g->ny; j++)
        r->y[j] = landscape_grid_y(g, j);
    if (o->progress)
        progress_init(&prog, "landscape", total, o->progress);
#define TICK()                                                                                          \
    do {                                                                                                \
        done++;                                                                                         \
        if (o->progress)                                                                                \
            progress_update(&prog, done, -1, -1, (double)(done * L->n_items) / (timer_now() - t0 + 1e-9)); \
    } while (0)

    /* the solutions first: each through its adapters and as a corner */
    for (size_t k = 0; k < LANDSCAPE_RUNS && rc == RL_OK; k++) {
        double e[LANDSCAPE_RUNS] = { 0, 0, 0 };

        e[k] = 1.0;
        if ((rc = landscape_run_loss(L, k, &r->run_loss[k])) == RL_OK)
            TICK();
        if (rc == RL_OK && (rc = landscape_loss(L, e, &r->corner_loss[k])) == RL_OK)
            TICK();
    }
    if (rc == RL_OK && (rc = landscape_loss(L, zero, &r->zero_loss)) == RL_OK)
        TICK();
    for (size_t i = 0; i < g->nx && rc == RL_OK; i++)
        for (size_t j = 0; j < g->ny && rc == RL_OK; j++) {
            double coef[LANDSCAPE_RUNS];

            landscape_coeffs(r->x[i], r->y[j], coef);
            if ((rc = landscape_loss(L, coef, &r->loss[i * g->ny + j])) == RL_OK)
                TICK();
        }
    if (np >= 2 && rc == RL_OK) {
        r->n_path = np;
        r->t = xmalloc_array(np, sizeof(double));
        r->path_loss = xmalloc_array(LANDSCAPE_PAIRS * np, sizeof(double));
        for (size_t q = 0; q < np; q++)
            r->t[q] = (double)q / (double)(np - 1);
        for (size_t p = 0; p < LANDSCAPE_PAIRS && rc == RL_OK; p++) {
            size_t a, b;
            double *row = r->path_loss + p * np;

            landscape_pair(p, &a, &b);
            row[0] = r->corner_loss[a];                 /* the ends: computed already */
            row[np - 1] = r->corner_loss[b];
            for (size_t q = 1; q + 1 < np && rc == RL_OK; q++) {
                double coef[LANDSCAPE_RUNS] = { 0, 0, 0 };

                coef[a] = 1.0 - r->t[q];
                coef[b] = r->t[q];
                if ((rc = landscape_loss(L, coef, &row[q])) == RL_OK)
                    TICK();
            }
            r->barrier[p] = barrier_height(r->t, row, np);
        }
    }
#undef TICK
    if (o->progress)
        progress_finish(&prog);
    r->seconds = timer_now() - t0;
    if (rc)
        landscape_result_free(r);
    return rc;
}
