/*
 * lm_run_adapters.c: a decoder run's trained adapters from its results
 * file, attached to the model (lm_model.h), for `randlora score --run`.
 *
 * The run's plan (/config) rebuilds the adapters exactly as the runner
 * built them (the same method, rank, targets and seed, so the same shared
 * tensors); then every trainable tensor is read from /adapter/<site>/<name>
 * and the shared ones from /adapter/shared/<name> over the regenerated
 * ones, each shape-checked. The adapters are left in evaluation mode (no
 * dropout).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "experiments/lm_model.h"
#include "results/run_adapters.h"
#include "results/store.h"

/* the stored tensor at path into t (same element count) */
static int load_into(struct store *st, const char *file, const char *path,
                     const struct adapter_tensor *t)
{
    float *data = NULL;
    size_t nd, dims[STORE_MAX_DIMS], n = 1;
    int rc = store_read_tensor(st, path, &data, &nd, dims);

    if (rc != RL_OK)
        return rl_error_set(RL_ERR_FORMAT, "%s: %s: missing or not a float32 tensor", file,
                            path);
    for (size_t i = 0; i < nd; i++)
        n *= dims[i];
    if (n != t->n)
        rc = rl_error_set(RL_ERR_FORMAT, "%s: %s: %zu values, the run's method has %zu", file,
                          path, n, t->n);
    else
        memcpy(t->data, data, n * sizeof(float));
    free(data);
    return rc;
}

int lm_run_adapters_load(const char *path, const struct llama_model *m,
                         struct llama_adapters *la, size_t max_rows)
{
    struct store *st = NULL;
    struct run_plan *plan = NULL;
    struct llama_target t;
    struct adapter_tensor ts[16];
    char site[160], name[512];
    int rc;

    memset(la, 0, sizeof(*la));
    if ((rc = store_open(&st, path)) != RL_OK)
        return rc;
    if ((rc = run_plan_read(st, &plan)) != RL_OK)
        goto out;
    if (!run_plan_is_lm(plan) || !strcmp(plan->method, "none")) {
        rc = rl_error_set(RL_ERR_ARG, "%s: not a decoder run with adapters (data %s, method %s)",
                          path, plan->dataset, plan->method);
        goto out;
    }
    lm_plan_target(&plan->targets, &t);
    if ((rc = llama_adapters_init(la, m, &plan->adapter, &t, 1, max_rows)) != RL_OK) {
        rc = rl_error_prefix(RL_ERR_ARG, "%s: its adapters do not fit the model", path);
        goto out;
    }
    for (size_t k = 0; k < la->n_sites && rc == RL_OK; k++) {
        size_t nt = adapter_tensors(&la->adapters[k], false, ts, 16);

        llama_site_name(&la->sites[k], site, sizeof(site));
        for (size_t i = 0; i < nt && rc == RL_OK; i++) {
            snprintf(name, sizeof(name), "/adapter/%s/%s", site, ts[i].name);
            rc = load_into(st, path, name, &ts[i]);
        }
    }
    size_t ns = adapter_method_tensors(&la->method, ts, 16);
    for (size_t i = 0; i < ns && rc == RL_OK; i++) {
        snprintf(name, sizeof(name), "/adapter/shared/%s", ts[i].name);
        rc = load_into(st, path, name, &ts[i]);
    }
    if (rc == RL_OK)
        llama_adapters_set_training(la, false);
    else
        llama_adapters_free(la);
out:
    if (plan)
        run_plans_free(plan, 1);
    store_close(st);
    return rc;
}
