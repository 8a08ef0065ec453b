/*
 * adapter_io_import.c: adapter_io_import (the format is described in
 * adapter_io.h): the file's configuration is checked against the method's
 * (what changes the forward), then the tensors are read.
 *
 * Import stages every tensor in scratch buffers and copies them into the
 * adapters only when all of them have been read, shape-checked and found
 * finite, so a bad file changes nothing.
 */
#include "methods/adapter_io.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/alloc.h"
#include "core/status.h"
#include "methods/adapter_io_impl.h"
#include "formats/safetensors.h"

/* ------------------------------------------------------------------------ */
/* import                                                                    */

static bool close_rel(float a, float b)
{
    return fabsf(a - b) <= 1e-6f * fmaxf(fabsf(a), fabsf(b));
}

/* does the file's configuration compute what the method's does? */
static int check_against(const struct adapter_cfg *fc, const struct adapter_method *m,
                         const struct adapter_io_module *mods, size_t n, const char *path)
{
    const struct adapter_cfg *mc = &m->cfg;
    const char *name = m->ops->name;

    if (strcmp(fc->method, name))
        return rl_error_set(RL_ERR_FORMAT, "%s: key 'peft_type' is '%s', but the adapters are %s "
                            "('%s')", path, adapter_io_peft_type(fc->method), name,
                            adapter_io_peft_type(name));
    if ((m->ops->flags & ADAPTER_F_RANK) && fc->r != mc->r)
        return rl_error_set(RL_ERR_FORMAT, "%s: key 'r' is %zu, but the adapters have rank %zu",
                            path, fc->r, mc->r);
    if (!strcmp(name, "lora")) {
        if (fc->rslora != mc->rslora)
            return rl_error_set(RL_ERR_FORMAT, "%s: key 'use_rslora' is %s, but the adapters' is "
                                "%s", path, fc->rslora ? "true" : "false",
                                mc->rslora ? "true" : "false");
        if (!close_rel(lora_scaling(fc), lora_scaling(mc)))
            return rl_error_set(RL_ERR_FORMAT, "%s: key 'lora_alpha' %g gives the scaling %g, but "
                                "the adapters' is %g", path, (double)fc->alpha,
                                (double)lora_scaling(fc), (double)lora_scaling(mc));
    }
    if (!strcmp(name, "nola")) {
        if (fc->nola_bases != mc->nola_bases)
            return rl_error_set(RL_ERR_FORMAT, "%s: key 'nola_num_basis' is %zu, but the "
                                "adapters have %zu bases", path, fc->nola_bases,
                                mc->nola_bases);
        if (fc->basis != mc->basis)
            return rl_error_set(RL_ERR_FORMAT, "%s: keys 'sparse'/'very_sparse' say %s bases, but "
                                "the adapters' are %s", path, adapter_io_basis_names[fc->basis],
                                adapter_io_basis_names[mc->basis]);
        if (!close_rel(nola_scaling(fc), nola_scaling(mc)))
            return rl_error_set(RL_ERR_FORMAT, "%s: key 'nola_alpha' %g gives the scaling %g, but "
                                "the adapters' is %g", path, (double)fc->alpha,
                                (double)nola_scaling(fc), (double)nola_scaling(mc));
    }
    if (!strcmp(name, "randlora")) {
        if (fc->n_rule != mc->n_rule)
            return rl_error_set(RL_ERR_FORMAT, "%s: the number-of-bases rule is %s, but the "
                                "adapters' is %s", path, adapter_io_n_rule_names[fc->n_rule],
                                adapter_io_n_rule_names[mc->n_rule]);
        if (fc->basis != mc->basis)
            return rl_error_set(RL_ERR_FORMAT, "%s: keys 'sparse'/'very_sparse' say %s bases, but "
                                "the adapters' are %s", path, adapter_io_basis_names[fc->basis],
                                adapter_io_basis_names[mc->basis]);
        for (size_t i = 0; i < n; i++) {
            const struct adapter *a = mods[i].adapter;
            size_t nb = randlora_n_bases(mc, a->d_out, a->d_in);
            float sf = randlora_scaling(fc, nb), sm = randlora_scaling(mc, nb);

            if (!close_rel(sf, sm))
                return rl_error_set(RL_ERR_FORMAT, "%s: key 'randlora_alpha' %g gives module '%s' "
                                    "the scaling %g, but the adapters' is %g", path,
                                    (double)adapter_io_randlora_peft_alpha(fc), mods[i].path,
                                    (double)sf, (double)sm);
        }
    }
    return RL_OK;
}

/* the first non-finite value of a staged tensor -> error naming the key */
static int check_finite(const char *file, const char *key, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return rl_error_set(RL_ERR_FORMAT, "%s: tensor '%s' has a non-finite value at %zu",
                                file, key, i);
    return RL_OK;
}

struct staged {
    float  *dst;       /* where it goes           */
    float  *buf;       /* what was read           */
    size_t  n;
};

int adapter_io_import(const struct adapter_io_files *files, struct adapter_method *m,
                      const struct adapter_io_module *mods, size_t n)
{
    struct adapter_tensor t[MAX_VIEWS];
    struct adapter_io_info info;
    char *weights = NULL, *config = NULL;
    struct adapter_io_keys keys = { 0 };
    struct staged *st = NULL;
    size_t n_st = 0;
    struct st_file *f = NULL;
    cJSON *root = NULL;
    int rc;

    memset(&info, 0, sizeof(info));
    if ((rc = adapter_io_check_modules(m, mods, n)) != RL_OK)
        return rc;
    if (!adapter_io_peft_type(m->ops->name))
        return RL_OK;                              /* none: nothing to load */
    if (n == 0)
        return rl_error_set(RL_ERR_ARG, "adapter files: no modules to import");
    if ((rc = adapter_io_resolve_paths(files, &weights, &config)) != RL_OK)
        return rc;
    if ((rc = adapter_io_load_config(config, &root)) || (rc = st_open(&f, weights)) ||
        (rc = adapter_io_parse_config(root, config, f, &info)) ||
        (rc = check_against(&info.cfg, m, mods, n, config)))
        goto out;

    st = xcalloc(n + MAX_VIEWS, sizeof(*st));
    /* each layer: read into a buffer laid out as its params */
    for (size_t i = 0; i < n && !rc; i++) {
        struct adapter *a = mods[i].adapter;
        char *prefix = adapter_io_cat3(LAYER_PREFIX, mods[i].path, ".");
        size_t nv;

        st[n_st].dst = a->params;
        st[n_st].n = a->n_params;
        st[n_st].buf = xcalloc(a->n_params ? a->n_params : 1, sizeof(float));
        rc = adapter_import_tensors(a, f, prefix, st[n_st].buf);
        nv = rc ? 0 : adapter_tensors(a, false, t, MAX_VIEWS);
        RL_ASSERT(nv <= MAX_VIEWS);
        /* views of the staged buffer: the same offsets as in params */
        for (size_t k = 0; k < nv && !rc; k++) {
            const float *x = st[n_st].buf + (t[k].data - a->params);

            adapter_io_keys_push(&keys, adapter_io_cat3(prefix, t[k].name, NULL));
            rc = check_finite(weights, keys.v[keys.n - 1], x, t[k].n);
        }
        n_st++;
        free(prefix);
    }
    /* the shared tensors: at the model level, and/or copied under every
     * module (peft's older layout; adapter_io_shared.c) */
    if (!rc) {
        size_t ns = adapter_method_tensors(m, t, MAX_VIEWS);

        RL_ASSERT(ns <= MAX_VIEWS);
        for (size_t k = 0; k < ns && !rc; k++) {
            st[n_st].dst = t[k].data;
            st[n_st].n = t[k].n;
            st[n_st].buf = xmalloc_array(t[k].n ? t[k].n : 1, sizeof(float));
            rc = adapter_io_read_shared(f, weights, &t[k], mods, n, st[n_st].buf, &keys);
            if (!rc)
                rc = check_finite(weights, keys.v[keys.n - 1], st[n_st].buf, t[k].n);
            n_st++;
        }
    }
    /* every key of the file was expected (expected keys are distinct and
     * were all found, so a larger count means extra keys) */
    if (!rc && st_count(f) != keys.n) {
        for (size_t i = 0; i < st_count(f) && !rc; i++) {
            const char *k = st_info_at(f, i)->name;
            bool known = false;

            for (size_t j = 0; j < keys.n && !known; j++)
                known = !strcmp(k, keys.v[j]);
            if (!known)
                rc = adapter_io_unknown_key(weights, k, m, mods, n);
        }
        RL_ASSERT(rc != RL_OK);
    }
    if (!rc)
        for (size_t i = 0; i < n_st; i++)
            memcpy(st[i].dst, st[i].buf, st[i].n * sizeof(float));
out:
    for (size_t i = 0; i < n_st; i++)
        free(st[i].buf);
    free(st);
    adapter_io_keys_free(&keys);
    adapter_io_info_free(&info);
    st_close(f);
    cJSON_Delete(root);
    free(weights);
    free(config);
    return rc;
}
