/*
 * run_adapters.c: rebuild a run's adapters from its results file. See
 * run_adapters.h for the layout read and the rules.
 */
#include "results/run_adapters.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/status.h"

#define MAX_VIEWS 8
#define MAX_SITES 100000

/* Re-raise the current message as RL_ERR_FORMAT with a prefix naming the
 * object (the message buffer is copied first: rl_error_set writes into it). */
static int as_format(const char *file, const char *obj, int rc)
{
    char msg[512];

    if (rc == RL_OK)
        return RL_OK;
    snprintf(msg, sizeof msg, "%s", rl_error_msg());
    if (rc == RL_ERR_NOMEM)
        return rl_error_set(rc, "%s: %s: %s", file, obj, msg);
    return rl_error_set(RL_ERR_FORMAT, "%s: %s: %s", file, obj, msg);
}

/* The store's message as it is, with RL_ERR_FORMAT for anything but a
 * failed allocation (store errors on a run file are input errors). */
static int keep_format(int rc)
{
    char msg[512];

    if (rc == RL_OK || rc == RL_ERR_NOMEM || rc == RL_ERR_FORMAT)
        return rc;
    snprintf(msg, sizeof msg, "%s", rl_error_msg());
    return rl_error_set(RL_ERR_FORMAT, "%s", msg);
}

/* ------------------------------------------------------------ site order */

static int tower_rank(const char *s)
{
    if (!strncmp(s, "vision_model.", 13))
        return 0;
    if (!strncmp(s, "text_model.", 11))
        return 1;
    return 2;
}

int run_site_cmp(const char *a, const char *b)
{
    int ta = tower_rank(a), tb = tower_rank(b);

    if (ta != tb)
        return ta < tb ? -1 : 1;
    while (*a && *b) {
        if (isdigit((unsigned char)*a) && isdigit((unsigned char)*b)) {
            const char *ea = a, *eb = b;
            while (*a == '0' && isdigit((unsigned char)a[1]))
                a++;
            while (*b == '0' && isdigit((unsigned char)b[1]))
                b++;
            ea = a;
            eb = b;
            while (isdigit((unsigned char)*ea))
                ea++;
            while (isdigit((unsigned char)*eb))
                eb++;
            if (ea - a != eb - b)
                return ea - a < eb - b ? -1 : 1;
            int c = strncmp(a, b, (size_t)(ea - a));
            if (c)
                return c < 0 ? -1 : 1;
            a = ea;
            b = eb;
            continue;
        }
        if (*a != *b)
            return (unsigned char)*a < (unsigned char)*b ? -1 : 1;
        a++;
        b++;
    }
    return *a ? 1 : *b ? -1 : 0;
}

static int name_cmp(const void *x, const void *y)
{
    return run_site_cmp(*(char *const *)x, *(char *const *)y);
}

const char *run_site_short(const char *name, char *buf, size_t size)
{
    static const char *const towers[][2] = { { "vision_model.encoder.layers.", "v" },
                                             { "text_model.encoder.layers.", "t" } };

    for (size_t t = 0; t < 2; t++) {
        size_t n = strlen(towers[t][0]);
        if (!strncmp(name, towers[t][0], n) && isdigit((unsigned char)name[n])) {
            char *end;
            unsigned long layer = strtoul(name + n, &end, 10);
            const char *last = strrchr(name, '.');
            snprintf(buf, size, "%s%lu.%s", towers[t][1], layer, last && last > end ? last + 1 : end);
            return buf;
        }
    }
    /* last two components */
    const char *p = name + strlen(name), *start = name;
    int dots = 0;
    while (p > name) {
        p--;
        if (*p == '.' && ++dots == 2) {
            start = p + 1;
            break;
        }
    }
    snprintf(buf, size, "%s", start);
    return buf;
}

/* ------------------------------------------------------------------ plan */

int run_plan_read(struct store *s, struct run_plan **plan)
{
    const char *file = store_path(s);
    struct experiment e;
    struct run_plan *plans = NULL;
    size_t n = 0;
    char *text = NULL;
    char where[600];
    int rc;

    *plan = NULL;
    memset(&e, 0, sizeof e);
    if ((rc = store_read_config(s, &text)))
        return as_format(file, "/config", rc);
    snprintf(where, sizeof where, "%s:/config", file);
    rc = experiment_parse(&e, text, where, NULL, 0);
    free(text);
    if (rc)
        return as_format(file, "/config", rc);
    rc = experiment_expand(&e, NULL, NULL, &plans, &n);
    experiment_free(&e);
    if (rc)
        return as_format(file, "/config", rc);
    if (n != 1) {
        run_plans_free(plans, n);
        return rl_error_set(RL_ERR_FORMAT, "%s: /config: describes %zu runs, expected exactly one", file, n);
    }
    *plan = plans;
    return RL_OK;
}

/* ------------------------------------------------------------- tensors */

/* shapes equal once dimensions of size 1 are dropped */
static bool same_shape(const size_t *a, size_t na, const size_t *b, size_t nb)
{
    size_t i = 0, j = 0;

    for (;;) {
        while (i < na && a[i] == 1)
            i++;
        while (j < nb && b[j] == 1)
            j++;
        if (i == na || j == nb)
            return i == na && j == nb;
        if (a[i++] != b[j++])
            return false;
    }
}

static void shape_text(char *buf, size_t size, const size_t *d, size_t nd)
{
    size_t off = 0;

    buf[0] = 0;
    for (size_t i = 0; i < nd && off < size; i++)
        off += (size_t)snprintf(buf + off, size - off, "%s%zu", i ? "x" : "", d[i]);
}

/* Read `path` into the view t (checked shape, finite values). diff: when
 * non-NULL, the largest |stored - current| is folded into it before the
 * copy. */
static int load_view(struct store *s, const char *path, struct adapter_tensor *t, double *diff)
{
    const char *file = store_path(s);
    float *data = NULL;
    size_t nd = 0, dims[STORE_MAX_DIMS];
    size_t want[3];
    char got_s[96], want_s[96];
    int rc;

    if (!store_has(s, path))
        return rl_error_set(RL_ERR_FORMAT, "%s: %s: missing (the method's tensor %s)", file, path, t->name);
    if ((rc = store_read_tensor(s, path, &data, &nd, dims)))
        return keep_format(rc);
    for (int i = 0; i < t->ndim; i++)
        want[i] = t->shape[i];
    if (!same_shape(dims, nd, want, (size_t)t->ndim)) {
        shape_text(got_s, sizeof got_s, dims, nd);
        shape_text(want_s, sizeof want_s, want, (size_t)t->ndim);
        free(data);
        return rl_error_set(RL_ERR_FORMAT, "%s: %s: shape %s, expected %s", file, path, got_s, want_s);
    }
    for (size_t i = 0; i < t->n; i++) {
        if (!isfinite(data[i])) {
            free(data);
            return rl_error_set(RL_ERR_FORMAT, "%s: %s: non-finite value at element %zu", file, path, i);
        }
        if (diff) {
            double d = fabs((double)data[i] - (double)t->data[i]);
            if (d > *diff)
                *diff = d;
        }
    }
    if (t->n)
        memcpy(t->data, data, t->n * sizeof(float));
    free(data);
    return RL_OK;
}

static int get_dim(struct store *s, const char *obj, const char *attr, size_t *out)
{
    int64_t v;
    int rc = store_attr_get_int64(s, obj, attr, &v);

    if (rc)
        return keep_format(rc);
    if (v < 1 || v > (int64_t)RUN_ADAPTERS_MAX_DIM)
        return rl_error_set(RL_ERR_FORMAT, "%s: %s: attribute %s = %lld, expected 1..%u", store_path(s), obj,
                            attr, (long long)v, RUN_ADAPTERS_MAX_DIM);
    *out = (size_t)v;
    return RL_OK;
}

/* ----------------------------------------------------------------- load */

void run_adapters_free(struct run_adapters *ra)
{
    if (!ra)
        return;
    for (size_t i = 0; i < ra->n_sites; i++) {
        adapter_free(&ra->sites[i].adapter);
        free(ra->sites[i].name);
    }
    free(ra->sites);
    if (ra->has_method)
        adapter_method_free(&ra->m);
    if (ra->plan)
        run_plans_free(ra->plan, 1);
    memset(ra, 0, sizeof(*ra));
}

struct run_site *run_adapters_find(const struct run_adapters *ra, const char *name)
{
    for (size_t i = 0; i < ra->n_sites; i++)
        if (!strcmp(ra->sites[i].name, name))
            return &ra->sites[i];
    return NULL;
}

static int check_adapter_attrs(struct run_adapters *ra, struct store *s)
{
    const char *file = store_path(s);
    char *method = NULL;
    int64_t r = 0;
    int rc;

    if ((rc = store_attr_get_string(s, "/adapter", "method", &method)))
        return keep_format(rc);
    if (strcmp(method, ra->method)) {
        rc = rl_error_set(RL_ERR_FORMAT, "%s: /adapter: attribute method = '%s', but /config says '%s'", file,
                          method, ra->method);
        free(method);
        return rc;
    }
    free(method);
    if ((rc = store_attr_get_int64(s, "/adapter", "r", &r)))
        return keep_format(rc);
    if ((ra->m.ops ? ra->m.ops : adapter_ops_find(ra->method))->flags & ADAPTER_F_RANK) {
        if (r < 0 || (uint64_t)r != (uint64_t)ra->plan->adapter.r)
            return rl_error_set(RL_ERR_FORMAT, "%s: /adapter: attribute r = %lld, but /config gives rank %zu", file,
                                (long long)r, ra->plan->adapter.r);
    }
    return RL_OK;
}

int run_adapters_load(struct run_adapters *ra, struct store *s)
{
    const char *file = store_path(s);
    char **names = NULL;
    size_t n_names = 0, max_out = 0, max_in = 0;
    bool has_shared = false;
    char obj[1400];
    int rc;

    memset(ra, 0, sizeof(*ra));
    if ((rc = run_plan_read(s, &ra->plan)))
        return rc;
    ra->method = ra->plan->method;
    const struct adapter_ops *ops = adapter_ops_find(ra->method);
    if (!ops) {
        rc = rl_error_set(RL_ERR_FORMAT, "%s: /config: unknown method '%s'", file, ra->method);
        goto fail;
    }

    rc = store_list(s, "/adapter", &names, &n_names);
    if (rc == RL_ERR_NA) {
        rc = rl_error_set(RL_ERR_FORMAT, "%s: /adapter: missing (the run has not finished, or failed)", file);
        goto fail;
    }
    if (rc) {
        rc = as_format(file, "/adapter", rc);
        goto fail;
    }
    if ((rc = check_adapter_attrs(ra, s)))
        goto fail;
    if (n_names > MAX_SITES) {
        rc = rl_error_set(RL_ERR_FORMAT, "%s: /adapter: %zu members, at most %d", file, n_names, MAX_SITES);
        goto fail;
    }

    /* sites: every member but "shared", each a group with d_out and d_in */
    qsort(names, n_names, sizeof(*names), name_cmp);
    ra->sites = xcalloc(n_names ? n_names : 1, sizeof(*ra->sites));
    for (size_t i = 0; i < n_names; i++) {
        struct run_site *site;
        char **sub = NULL;
        size_t n_sub = 0, elems;

        if (!strcmp(names[i], RUN_ADAPTERS_SHARED)) {
            has_shared = true;
            continue;
        }
        if (!strcmp(names[i], RUN_ADAPTERS_HEAD))
            continue;
        snprintf(obj, sizeof obj, "/adapter/%s", names[i]);
        if ((rc = store_list(s, obj, &sub, &n_sub))) {
            rc = keep_format(rc);
            goto fail;
        }
        store_free_names(sub, n_sub);
        site = &ra->sites[ra->n_sites];
        if ((rc = get_dim(s, obj, "d_out", &site->d_out)) || (rc = get_dim(s, obj, "d_in", &site->d_in)))
            goto fail;
        if (!size_mul_ok(site->d_out, site->d_in, &elems) || elems > RUN_ADAPTERS_MAX_ELEMS) {
            rc = rl_error_set(RL_ERR_FORMAT, "%s: %s: %zux%zu is larger than %zu elements", file, obj, site->d_out,
                              site->d_in, RUN_ADAPTERS_MAX_ELEMS);
            goto fail;
        }
        site->name = names[i];
        names[i] = NULL;
        ra->n_sites++;
        if (site->d_out > max_out)
            max_out = site->d_out;
        if (site->d_in > max_in)
            max_in = site->d_in;
    }
    store_free_names(names, n_names);
    names = NULL;
    n_names = 0;
    if (ra->n_sites == 0)
        return RL_OK;                         /* `none`, or nothing adapted */

    if ((rc = adapter_method_init(&ra->m, &ra->plan->adapter, max_out, max_in, 1))) {
        rc = as_format(file, "/config", rc);
        goto fail;
    }
    ra->has_method = true;

    /* every site: init (validates the layer against the method), then load */
    for (size_t i = 0; i < ra->n_sites; i++) {
        struct run_site *site = &ra->sites[i];
        struct adapter_tensor views[MAX_VIEWS];
        size_t nv;

        snprintf(obj, sizeof obj, "/adapter/%s", site->name);
        if ((rc = adapter_init(&site->adapter, &ra->m, site->d_out, site->d_in, NULL, NULL))) {
            rc = as_format(file, obj, rc);
            /* the remaining adapters were never initialised: drop them */
            for (size_t j = i + 1; j < ra->n_sites; j++)
                free(ra->sites[j].name);
            free(site->name);
            ra->n_sites = i;
            goto fail;
        }
        nv = adapter_tensors(&site->adapter, false, views, MAX_VIEWS);
        RL_ASSERT(nv <= MAX_VIEWS);
        for (size_t v = 0; v < nv; v++) {
            snprintf(obj, sizeof obj, "/adapter/%s/%s", site->name, views[v].name);
            if ((rc = load_view(s, obj, &views[v], NULL))) {
                for (size_t j = i + 1; j < ra->n_sites; j++)
                    free(ra->sites[j].name);
                ra->n_sites = i + 1;
                goto fail;
            }
        }
    }

    /* the shared frozen tensors */
    struct adapter_tensor shared[MAX_VIEWS];
    size_t ns = adapter_method_tensors(&ra->m, shared, MAX_VIEWS);
    RL_ASSERT(ns <= MAX_VIEWS);
    if (ns && has_shared) {
        for (size_t v = 0; v < ns; v++) {
            snprintf(obj, sizeof obj, "/adapter/%s/%s", RUN_ADAPTERS_SHARED, shared[v].name);
            if ((rc = load_view(s, obj, &shared[v], &ra->shared_max_diff)))
                goto fail;
        }
        ra->shared_loaded = true;
    }
    return RL_OK;

fail:
    store_free_names(names, n_names);
    run_adapters_free(ra);
    return rc;
}

/* ---------------------------------------------------------- attach */

int run_adapters_attach(const struct run_adapters *ra, const struct clip_model *m,
                        struct clip_adapters *ca, size_t max_images, size_t max_texts)
{
    const struct run_plan *p = ra->plan;
    struct clip_target t;
    struct adapter_tensor have[MAX_VIEWS], want[MAX_VIEWS];
    char name[512];
    int rc;

    memset(ca, 0, sizeof(*ca));
    if (ra->n_sites == 0)
        return RL_OK;
    t = (struct clip_target){ p->targets.towers, p->targets.layer_lo, p->targets.layer_hi,
                              p->targets.modules };
    if (p->model.head == EXP_HEAD_LINEAR)       /* only the image tower was adapted */
        t.towers &= 1u << CLIP_TOWER_VISION;
    if ((rc = clip_adapters_init(ca, m, &p->adapter, &t, 1, max_images, max_texts))) {
        snprintf(name, sizeof name, "%s", rl_error_msg());
        return rl_error_set(RL_ERR_FORMAT, "%s: the run's targets on this model: %s", p->id, name);
    }
    if (ca->n_sites != ra->n_sites)
        return rl_error_set(RL_ERR_FORMAT,
                            "%s: the run's targets give %zu adapted layers on this model, but the file "
                            "has %zu (a run of another model?)", p->id, ca->n_sites, ra->n_sites);
    for (size_t i = 0; i < ca->n_sites; i++) {
        struct adapter *a = &ca->adapters[i];
        const struct run_site *rs;

        clip_site_name(&ca->sites[i], name, sizeof name);
        rs = run_adapters_find(ra, name);
        if (!rs)
            return rl_error_set(RL_ERR_FORMAT, "%s: layer %s of the model has no /adapter group in the run "
                                "file (a run of another model?)", p->id, name);
        if (rs->d_out != a->d_out || rs->d_in != a->d_in || rs->adapter.n_params != a->n_params)
            return rl_error_set(RL_ERR_FORMAT, "%s: /adapter/%s is %zux%zu (%zu parameters), the model's "
                                "layer %zux%zu (%zu)", p->id, name, rs->d_out, rs->d_in,
                                rs->adapter.n_params, a->d_out, a->d_in, a->n_params);
        if (a->n_params)
            memcpy(a->params, rs->adapter.params, a->n_params * sizeof(float));
    }
    /* the shared tensors the run used (ra's are the file's, or regenerated) */
    size_t nh = adapter_method_tensors((struct adapter_method *)&ra->m, have, MAX_VIEWS);
    size_t nw = adapter_method_tensors(&ca->method, want, MAX_VIEWS);
    if (nh != nw)
        return rl_error_set(RL_ERR_FORMAT, "%s: %zu shared tensors in the run, %zu on this model", p->id, nh, nw);
    for (size_t v = 0; v < nw; v++) {
        if (have[v].n != want[v].n || strcmp(have[v].name, want[v].name))
            return rl_error_set(RL_ERR_FORMAT, "%s: shared tensor %s has %zu elements, %s on this model %zu",
                                p->id, have[v].name, have[v].n, want[v].name, want[v].n);
        if (want[v].n)
            memcpy(want[v].data, have[v].data, want[v].n * sizeof(float));
    }
    clip_adapters_set_training(ca, false);
    return RL_OK;
}
