/*
 * adapter_io_export.c: adapter_io_export: the adapters' and the method's
 * tensors into adapter_model.safetensors (with the rl_* metadata), and
 * adapter_config.json written as peft's save_pretrained does (sorted keys,
 * the fields of the method's config class), each file through a temporary
 * name and rename().
 */
#include "methods/adapter_io.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/alloc.h"
#include "core/status.h"
#include "methods/adapter_io_impl.h"
#include "formats/safetensors.h"

/* shortest decimal that reads back as the same float (JSON has no inf/nan;
 * callers only pass finite values) */
static void fmt_float(char *buf, size_t cap, float v)
{
    for (int p = 1; p <= 9; p++) {
        snprintf(buf, cap, "%.*g", p, (double)v);
        if (strtof(buf, NULL) == v)
            return;
    }
}

static int cmp_item_key(const void *a, const void *b)
{
    return strcmp((*(cJSON *const *)a)->string, (*(cJSON *const *)b)->string);
}

/* reorder an object's members by key (peft writes sort_keys=True) */
static void sort_object(cJSON *o)
{
    size_t n = (size_t)cJSON_GetArraySize(o), i = 0;
    cJSON **items, *c;

    if (n < 2)
        return;
    items = xmalloc_array(n, sizeof(*items));
    while ((c = o->child) != NULL)
        items[i++] = cJSON_DetachItemViaPointer(o, c);
    qsort(items, n, sizeof(*items), cmp_item_key);
    for (i = 0; i < n; i++)
        cJSON_AddItemToArray(o, items[i]);    /* keeps item->string */
    free(items);
}

static int cmp_str_ptr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void add_raw_float(cJSON *o, const char *key, float v)
{
    char b[32];

    fmt_float(b, sizeof b, v);
    cJSON_AddRawToObject(o, key, b);
}

static void add_raw_u64(cJSON *o, const char *key, uint64_t v)
{
    char b[32];

    snprintf(b, sizeof b, "%" PRIu64, v);
    cJSON_AddRawToObject(o, key, b);
}


static char *config_json(const struct adapter_method *m, const struct adapter_io_module *mods,
                         size_t n, const char *base_model, const struct adapter_io_head *head)
{
    const struct adapter_cfg *cfg = &m->cfg;
    const char *name = m->ops->name;
    cJSON *o = cJSON_CreateObject(), *tm = cJSON_CreateArray();
    const char **paths = xmalloc_array(n, sizeof(*paths));
    char *text;

    for (size_t i = 0; i < n; i++)
        paths[i] = mods[i].path;
    qsort(paths, n, sizeof(*paths), cmp_str_ptr);
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(tm, cJSON_CreateString(paths[i]));
    free(paths);

    /* PeftConfig */
    cJSON_AddStringToObject(o, "peft_type", adapter_io_peft_type(name));
    if (base_model)
        cJSON_AddStringToObject(o, "base_model_name_or_path", base_model);
    else
        cJSON_AddNullToObject(o, "base_model_name_or_path");
    cJSON_AddNullToObject(o, "revision");
    cJSON_AddNullToObject(o, "task_type");
    cJSON_AddBoolToObject(o, "inference_mode", true);
    cJSON_AddNullToObject(o, "auto_mapping");
    cJSON_AddItemToObject(o, "target_modules", tm);
    /* the fields every tuner config here has */
    cJSON_AddStringToObject(o, "bias", "none");
    cJSON_AddBoolToObject(o, "fan_in_fan_out", false);
    if (head) {
        cJSON *ms = cJSON_AddArrayToObject(o, "modules_to_save");

        cJSON_AddItemToArray(ms, cJSON_CreateString(head->path));
    } else {
        cJSON_AddNullToObject(o, "modules_to_save");
    }
    cJSON_AddNullToObject(o, "layers_to_transform");
    cJSON_AddNullToObject(o, "layers_pattern");

    if (!strcmp(name, "lora")) {
        cJSON_AddNumberToObject(o, "r", (double)cfg->r);
        add_raw_float(o, "lora_alpha", cfg->alpha > 0.0f ? cfg->alpha
                      : cfg->lora_rule == ADAPTER_LORA_PAPER ? 1.0f : 8.0f);
        add_raw_float(o, "lora_dropout", cfg->dropout);
        cJSON_AddBoolToObject(o, "use_rslora", cfg->rslora);
        cJSON_AddBoolToObject(o, "use_dora", false);
        cJSON_AddBoolToObject(o, "init_lora_weights", true);
        cJSON_AddObjectToObject(o, "rank_pattern");
        cJSON_AddObjectToObject(o, "alpha_pattern");
    } else if (!strcmp(name, "vera")) {
        cJSON_AddNumberToObject(o, "r", (double)cfg->r);
        add_raw_u64(o, "projection_prng_key", cfg->seed);
        cJSON_AddBoolToObject(o, "save_projection", true);
        add_raw_float(o, "vera_dropout", cfg->dropout);
        add_raw_float(o, "d_initial", cfg->vera_d_init);
        cJSON_AddBoolToObject(o, "init_weights", true);
    } else if (!strcmp(name, "randlora")) {
        cJSON_AddNumberToObject(o, "r", (double)cfg->r);
        add_raw_float(o, "randlora_alpha", adapter_io_randlora_peft_alpha(cfg));
        add_raw_float(o, "randlora_dropout", cfg->dropout);
        add_raw_u64(o, "projection_prng_key", cfg->seed);
        cJSON_AddBoolToObject(o, "save_projection", true);
        cJSON_AddBoolToObject(o, "sparse", cfg->basis == ADAPTER_BASIS_SPARSE);
        cJSON_AddBoolToObject(o, "very_sparse", cfg->basis == ADAPTER_BASIS_VERY_SPARSE);
        cJSON_AddBoolToObject(o, "init_weights", true);
    } else if (!strcmp(name, "nola")) {
        /* this project's (peft has no NoLA): coefficients + the bases */
        cJSON_AddNumberToObject(o, "r", (double)cfg->r);
        cJSON_AddNumberToObject(o, "nola_num_basis", (double)cfg->nola_bases);
        add_raw_float(o, "nola_alpha", cfg->alpha > 0.0f ? cfg->alpha : 1.0f);
        add_raw_float(o, "nola_dropout", cfg->dropout);
        add_raw_u64(o, "projection_prng_key", cfg->seed);
        cJSON_AddBoolToObject(o, "save_projection", true);
        cJSON_AddBoolToObject(o, "sparse", cfg->basis == ADAPTER_BASIS_SPARSE);
        cJSON_AddBoolToObject(o, "very_sparse", cfg->basis == ADAPTER_BASIS_VERY_SPARSE);
    }
    sort_object(o);
    text = cJSON_Print(o);
    cJSON_Delete(o);
    RL_ASSERT(text != NULL);
    return text;
}

/* write text to path through path.tmp.<pid> and rename */
static int write_text_atomic(const char *path, const char *text)
{
    size_t len = strlen(text), tl = strlen(path) + 32;
    char *tmp = xmalloc(tl);
    FILE *fp;
    bool ok;
    int e, rc = RL_OK;

    snprintf(tmp, tl, "%s.tmp.%ld", path, (long)getpid());
    fp = fopen(tmp, "wb");
    if (!fp) {
        rc = rl_error_set(RL_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
        free(tmp);
        return rc;
    }
    ok = fwrite(text, 1, len, fp) == len && fputc('\n', fp) != EOF && fflush(fp) == 0 &&
         fsync(fileno(fp)) == 0;
    e = errno;
    if (fclose(fp) != 0 && ok) {
        ok = false;
        e = errno;
    }
    if (!ok)
        rc = rl_error_set(RL_ERR_IO, "%s: write failed: %s", tmp, strerror(e));
    else if (rename(tmp, path) != 0)
        rc = rl_error_set(RL_ERR_IO, "%s: cannot rename to %s: %s", tmp, path, strerror(errno));
    if (rc)
        unlink(tmp);
    free(tmp);
    return rc;
}

static int add_metadata(struct st_writer *w, const struct adapter_cfg *cfg, const char *name)
{
    char b[32];
    int rc = st_writer_set_metadata(w, "format", "pt");

    snprintf(b, sizeof b, "%" PRIu64, cfg->seed);
    if (!rc)
        rc = st_writer_set_metadata(w, "rl_seed", b);
    if (!rc && !strcmp(name, "randlora")) {
        fmt_float(b, sizeof b, cfg->alpha);
        rc = st_writer_set_metadata(w, "rl_alpha", b);
        if (!rc)
            rc = st_writer_set_metadata(w, "rl_n_rule", adapter_io_n_rule_names[cfg->n_rule]);
        if (!rc)
            rc = st_writer_set_metadata(w, "rl_scaling", adapter_io_scaling_names[cfg->scaling]);
        if (!rc)
            rc = st_writer_set_metadata(w, "rl_lambda_init",
                                        adapter_io_lambda_names[cfg->lambda_init]);
        if (!rc)
            rc = st_writer_set_metadata(w, "rl_gamma_init",
                                        adapter_io_gamma_names[cfg->gamma_init]);
    }
    return rc;
}

/* the head as peft saves a modules_to_save module (adapter_io.h) */
static int add_head(struct st_writer *w, const struct adapter_io_head *h)
{
    const int64_t ws[2] = { (int64_t)h->out, (int64_t)h->in }, bs[1] = { (int64_t)h->out };
    char *kw, *kb;
    int rc;

    if (!h->path || !h->path[0] || strchr(h->path, '.') || !h->weight || !h->bias || !h->out ||
        !h->in)
        return rl_error_set(RL_ERR_ARG, "adapter files: the head needs a module name without dots, "
                            "its weight, bias and sizes");
    kw = adapter_io_cat3(LAYER_PREFIX, h->path, ".weight");
    kb = adapter_io_cat3(LAYER_PREFIX, h->path, ".bias");
    rc = st_writer_add(w, kw, h->weight, 2, ws, ST_F32);
    if (!rc)
        rc = st_writer_add(w, kb, h->bias, 1, bs, ST_F32);
    free(kw);
    free(kb);
    return rc;
}

int adapter_io_export(const struct adapter_io_files *files, struct adapter_method *m,
                      const struct adapter_io_module *mods, size_t n)
{
    struct adapter_tensor t[MAX_VIEWS];
    char *weights = NULL, *config = NULL, *text = NULL;
    struct st_writer *w = NULL;
    size_t ns;
    int rc;

    if ((rc = adapter_io_check_modules(m, mods, n)) != RL_OK)
        return rc;
    if (!adapter_io_peft_type(m->ops->name))
        return RL_OK;                              /* none: nothing to save */
    if (n == 0)
        return rl_error_set(RL_ERR_ARG, "adapter files: no modules to export");
    if ((rc = adapter_io_resolve_paths(files, &weights, &config)) != RL_OK)
        return rc;
    if (files->dir && mkdir(files->dir, 0777) != 0 && errno != EEXIST) {
        rc = rl_error_set(RL_ERR_IO, "%s: cannot create the directory: %s", files->dir,
                          strerror(errno));
        goto out;
    }
    w = st_writer_new();
    for (size_t i = 0; i < n && !rc; i++) {
        char *prefix = adapter_io_cat3(LAYER_PREFIX, mods[i].path, ".");

        rc = adapter_export_tensors(mods[i].adapter, w, prefix);
        free(prefix);
    }
    if (!rc && files->head)
        rc = add_head(w, files->head);
    ns = adapter_method_tensors(m, t, MAX_VIEWS);
    RL_ASSERT(ns <= MAX_VIEWS);
    for (size_t i = 0; i < ns && !rc; i++) {
        int64_t shape[3] = { (int64_t)t[i].shape[0], (int64_t)t[i].shape[1],
                             (int64_t)t[i].shape[2] };
        char *key = adapter_io_cat3(SHARED_PREFIX, t[i].name, NULL);

        rc = st_writer_add(w, key, t[i].data, t[i].ndim, shape, ST_F32);
        free(key);
    }
    if (!rc)
        rc = add_metadata(w, &m->cfg, m->ops->name);
    if (!rc)
        rc = st_writer_write(w, weights);
    if (!rc) {
        text = config_json(m, mods, n, files->base_model, files->head);
        rc = write_text_atomic(config, text);
    }
out:
    st_writer_free(w);
    free(text);
    free(weights);
    free(config);
    return rc;
}
