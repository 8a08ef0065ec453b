/*
 * adapter_io.c: adapters to and from peft's adapter_model.safetensors +
 * adapter_config.json (the format is described in adapter_io.h).
 *
 * Keys are the ones peft's get_peft_model_state_dict produces for a
 * PeftModel around the base model: "base_model.model." + module path + "."
 * + tensor name for a layer's tensors (the adapter name, ".default", removed),
 * "base_model." + name for the shared projections (BufferDicts on the tuner
 * model, saved when save_projection=True).
 *
 * Import stages every tensor in scratch buffers and copies them into the
 * adapters only when all of them have been read, shape-checked and found
 * finite, so a bad file changes nothing.
 */
#include "methods/adapter_io.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/alloc.h"
#include "core/status.h"
#include "models/safetensors.h"

#define LAYER_PREFIX   "base_model.model."
#define SHARED_PREFIX  "base_model."
#define MAX_VIEWS      8
#define MAX_CONFIG_BYTES ((size_t)16 << 20)

/* ------------------------------------------------------------------------ */
/* names                                                                     */

static const struct {
    const char *method, *peft_type;
} peft_types[] = {
    { "lora", "LORA" }, { "vera", "VERA" }, { "randlora", "RANDLORA" }, { "full", "FULL" },
};
#define N_PEFT_TYPES (sizeof(peft_types) / sizeof(peft_types[0]))

const char *adapter_io_peft_type(const char *method)
{
    for (size_t i = 0; method && i < N_PEFT_TYPES; i++)
        if (!strcmp(peft_types[i].method, method))
            return peft_types[i].peft_type;
    return NULL;
}

static const char *const n_rule_names[] = { "ceil", "floor_plus_one" };
static const char *const scaling_names[] = { "alpha_r", "alpha_r_sqrt_n", "one_over_r" };
static const char *const lambda_names[] = { "zero", "inv_max_n_r" };
static const char *const gamma_names[] = { "inv_max_n_d", "zero" };
static const char *const basis_names[] = { "dense", "sparse", "very_sparse" };

static int name_index(const char *const *names, size_t n, const char *s)
{
    for (size_t i = 0; s && i < n; i++)
        if (!strcmp(names[i], s))
            return (int)i;
    return -1;
}

/* s as shown in a one-line message: control characters and quotes as '?',
 * cut to cap - 1 bytes with "..." */
static const char *shown(char *buf, size_t cap, const char *s)
{
    size_t n = 0, i = 0;

    for (; s[i] && n + 1 < cap; i++) {
        unsigned char c = (unsigned char)s[i];

        buf[n++] = (c < 0x20 || c == 0x7f || c == '\'') ? '?' : (char)c;
    }
    if (s[i] && n >= 3)
        memcpy(buf + n - 3, "...", 3);
    buf[n] = '\0';
    return buf;
}
#define SHOWN 160

/* a fresh string: the concatenation of a, b, c (c may be NULL) */
static char *cat3(const char *a, const char *b, const char *c)
{
    size_t la = strlen(a), lb = strlen(b), lc = c ? strlen(c) : 0;
    char *s = xmalloc(la + lb + lc + 1);

    memcpy(s, a, la);
    memcpy(s + la, b, lb);
    if (c)
        memcpy(s + la + lb, c, lc);
    s[la + lb + lc] = '\0';
    return s;
}

/* files->weights / files->config, or <dir>/<name>; NULL when neither */
static char *file_path(const struct adapter_io_files *files, const char *given, const char *name)
{
    if (given)
        return xstrdup(given);
    if (!files->dir)
        return NULL;
    return cat3(files->dir, "/", name);
}

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

/* ------------------------------------------------------------------------ */
/* argument checks                                                           */

static int check_modules(struct adapter_method *m, const struct adapter_io_module *mods,
                         size_t n)
{
    if (!m->ops)
        return rl_error_set(RL_ERR_ARG, "adapter files: the method is not initialised");
    if (n > 0 && !mods)
        return rl_error_set(RL_ERR_ARG, "adapter files: no module list");
    for (size_t i = 0; i < n; i++) {
        if (!mods[i].path || !mods[i].path[0])
            return rl_error_set(RL_ERR_ARG, "adapter files: module %zu has an empty path", i);
        if (!mods[i].adapter || mods[i].adapter->method != m)
            return rl_error_set(RL_ERR_ARG, "adapter files: module '%s' has no adapter of "
                                "this %s method", mods[i].path, m->ops->name);
        for (size_t j = 0; j < i; j++)
            if (!strcmp(mods[i].path, mods[j].path))
                return rl_error_set(RL_ERR_ARG, "adapter files: module '%s' is listed twice",
                                    mods[i].path);
    }
    return RL_OK;
}

static int resolve_paths(const struct adapter_io_files *files, char **weights, char **config)
{
    *weights = *config = NULL;
    if (!files)
        return rl_error_set(RL_ERR_ARG, "adapter files: no paths given");
    *weights = file_path(files, files->weights, ADAPTER_IO_WEIGHTS_NAME);
    *config = file_path(files, files->config, ADAPTER_IO_CONFIG_NAME);
    if (!*weights || !*config) {
        free(*weights);
        free(*config);
        *weights = *config = NULL;
        return rl_error_set(RL_ERR_ARG, "adapter files: give a directory or both file paths");
    }
    return RL_OK;
}

/* ------------------------------------------------------------------------ */
/* export                                                                    */

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

/* the alpha for which peft's alpha / r is our RandLoRA scaling */
static float randlora_peft_alpha(const struct adapter_cfg *cfg)
{
    float r = (float)cfg->r;

    if (cfg->scaling == ADAPTER_SCALE_ONE_OVER_R)
        return 1.0f;
    return cfg->alpha > 0.0f ? cfg->alpha : 20.0f * r;
}

static char *config_json(const struct adapter_method *m, const struct adapter_io_module *mods,
                         size_t n, const char *base_model)
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
    cJSON_AddNullToObject(o, "modules_to_save");
    cJSON_AddNullToObject(o, "layers_to_transform");
    cJSON_AddNullToObject(o, "layers_pattern");

    if (!strcmp(name, "lora")) {
        cJSON_AddNumberToObject(o, "r", (double)cfg->r);
        add_raw_float(o, "lora_alpha", cfg->alpha > 0.0f ? cfg->alpha : 8.0f);
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
        add_raw_float(o, "randlora_alpha", randlora_peft_alpha(cfg));
        add_raw_float(o, "randlora_dropout", cfg->dropout);
        add_raw_u64(o, "projection_prng_key", cfg->seed);
        cJSON_AddBoolToObject(o, "save_projection", true);
        cJSON_AddBoolToObject(o, "sparse", cfg->basis == ADAPTER_BASIS_SPARSE);
        cJSON_AddBoolToObject(o, "very_sparse", cfg->basis == ADAPTER_BASIS_VERY_SPARSE);
        cJSON_AddBoolToObject(o, "init_weights", true);
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
            rc = st_writer_set_metadata(w, "rl_n_rule", n_rule_names[cfg->n_rule]);
        if (!rc)
            rc = st_writer_set_metadata(w, "rl_scaling", scaling_names[cfg->scaling]);
        if (!rc)
            rc = st_writer_set_metadata(w, "rl_lambda_init", lambda_names[cfg->lambda_init]);
        if (!rc)
            rc = st_writer_set_metadata(w, "rl_gamma_init", gamma_names[cfg->gamma_init]);
    }
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

    if ((rc = check_modules(m, mods, n)) != RL_OK)
        return rc;
    if (!adapter_io_peft_type(m->ops->name))
        return RL_OK;                              /* none: nothing to save */
    if (n == 0)
        return rl_error_set(RL_ERR_ARG, "adapter files: no modules to export");
    if ((rc = resolve_paths(files, &weights, &config)) != RL_OK)
        return rc;
    if (files->dir && mkdir(files->dir, 0777) != 0 && errno != EEXIST) {
        rc = rl_error_set(RL_ERR_IO, "%s: cannot create the directory: %s", files->dir,
                          strerror(errno));
        goto out;
    }
    w = st_writer_new();
    for (size_t i = 0; i < n && !rc; i++) {
        char *prefix = cat3(LAYER_PREFIX, mods[i].path, ".");

        rc = adapter_export_tensors(mods[i].adapter, w, prefix);
        free(prefix);
    }
    ns = adapter_method_tensors(m, t, MAX_VIEWS);
    RL_ASSERT(ns <= MAX_VIEWS);
    for (size_t i = 0; i < ns && !rc; i++) {
        int64_t shape[3] = { (int64_t)t[i].shape[0], (int64_t)t[i].shape[1],
                             (int64_t)t[i].shape[2] };
        char *key = cat3(SHARED_PREFIX, t[i].name, NULL);

        rc = st_writer_add(w, key, t[i].data, t[i].ndim, shape, ST_F32);
        free(key);
    }
    if (!rc)
        rc = add_metadata(w, &m->cfg, m->ops->name);
    if (!rc)
        rc = st_writer_write(w, weights);
    if (!rc) {
        text = config_json(m, mods, n, files->base_model);
        rc = write_text_atomic(config, text);
    }
out:
    st_writer_free(w);
    free(text);
    free(weights);
    free(config);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* reading the config                                                        */

static int read_text(const char *path, char **out, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    char *buf = NULL;
    size_t n = 0, cap = 0;

    *out = NULL;
    if (!fp)
        return rl_error_set(RL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    for (;;) {
        size_t got;

        if (n == cap) {
            if (cap >= MAX_CONFIG_BYTES) {
                fclose(fp);
                free(buf);
                return rl_error_set(RL_ERR_FORMAT, "%s: larger than %zu bytes", path,
                                    MAX_CONFIG_BYTES);
            }
            cap = cap ? cap * 2 : 4096;
            buf = xrealloc_array(buf, cap + 1, 1);
        }
        got = fread(buf + n, 1, cap - n, fp);
        n += got;
        if (got == 0)
            break;
    }
    if (ferror(fp)) {
        fclose(fp);
        free(buf);
        return rl_error_set(RL_ERR_IO, "%s: read failed", path);
    }
    fclose(fp);
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return RL_OK;
}

static int parse_json(const char *path, const char *text, size_t len, cJSON **out)
{
    const char *end = NULL;
    cJSON *root;

    *out = NULL;
    if (memchr(text, '\0', len))
        return rl_error_set(RL_ERR_FORMAT, "%s: not valid JSON (a NUL byte at offset %zu)", path,
                            (size_t)((const char *)memchr(text, '\0', len) - text));
    root = cJSON_ParseWithLengthOpts(text, len, &end, false);
    if (!root)
        return rl_error_set(RL_ERR_FORMAT, "%s: not valid JSON (error at byte %zu)", path,
                            end && end >= text ? (size_t)(end - text) : (size_t)0);
    for (; end && end < text + len; end++)
        if (!strchr(" \t\r\n", *end)) {
            cJSON_Delete(root);
            return rl_error_set(RL_ERR_FORMAT, "%s: not valid JSON (text after the value at "
                                "byte %zu)", path, (size_t)(end - text));
        }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return rl_error_set(RL_ERR_FORMAT, "%s: not a JSON object", path);
    }
    for (const cJSON *a = root->child; a; a = a->next)
        for (const cJSON *b = a->next; b; b = b->next)
            if (!strcmp(a->string, b->string)) {
                char sb[SHOWN];
                int rc = rl_error_set(RL_ERR_FORMAT, "%s: key '%s' appears twice", path,
                                      shown(sb, sizeof sb, a->string));

                cJSON_Delete(root);
                return rc;
            }
    *out = root;
    return RL_OK;
}

static const cJSON *jget(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

    return v && !cJSON_IsNull(v) ? v : NULL;
}

/* optional number key -> float (finite), keeping *out when absent */
static int jfloat(const cJSON *o, const char *path, const char *key, float *out)
{
    const cJSON *v = jget(o, key);

    if (!v)
        return RL_OK;
    if (!cJSON_IsNumber(v) || !isfinite((float)v->valuedouble))
        return rl_error_set(RL_ERR_FORMAT, "%s: key '%s' must be a finite number", path, key);
    *out = (float)v->valuedouble;
    return RL_OK;
}

static int jbool(const cJSON *o, const char *path, const char *key, bool *out)
{
    const cJSON *v = jget(o, key);

    if (!v)
        return RL_OK;
    if (!cJSON_IsBool(v))
        return rl_error_set(RL_ERR_FORMAT, "%s: key '%s' must be true or false", path, key);
    *out = cJSON_IsTrue(v);
    return RL_OK;
}

/* optional non-negative integer below 2^64 (a double holds those above
 * 2^53 only approximately: the exact seed travels in the rl_seed metadata) */
static int juint(const cJSON *o, const char *path, const char *key, uint64_t *out)
{
    const cJSON *v = jget(o, key);
    double d;

    if (!v)
        return RL_OK;
    d = cJSON_IsNumber(v) ? v->valuedouble : -1.0;
    if (!(d >= 0.0 && d < 0x1p64) || d != floor(d))
        return rl_error_set(RL_ERR_FORMAT, "%s: key '%s' must be a non-negative integer", path,
                            key);
    *out = (uint64_t)d;
    return RL_OK;
}

/* the fields whose other values this program cannot honour */
static int unsupported(const cJSON *o, const char *path)
{
    const cJSON *v;
    bool b = false;
    int rc;

    if ((v = jget(o, "bias")) && !(cJSON_IsString(v) && !strcmp(v->valuestring, "none")))
        return rl_error_set(RL_ERR_FORMAT, "%s: key 'bias' must be \"none\" (adapted biases are "
                            "not supported)", path);
    if ((rc = jbool(o, path, "fan_in_fan_out", &b)) || b)
        return rc ? rc : rl_error_set(RL_ERR_FORMAT, "%s: key 'fan_in_fan_out' must be false",
                                      path);
    if ((rc = jbool(o, path, "use_dora", &b)) || b)
        return rc ? rc : rl_error_set(RL_ERR_FORMAT, "%s: key 'use_dora' must be false (DoRA is "
                                      "not supported)", path);
    if ((v = jget(o, "modules_to_save")) && !(cJSON_IsArray(v) && cJSON_GetArraySize(v) == 0))
        return rl_error_set(RL_ERR_FORMAT, "%s: key 'modules_to_save' must be null (extra "
                            "trainable modules are not supported)", path);
    return RL_OK;
}

static int meta_enum(const struct st_file *f, const char *key, const char *const *names,
                     size_t n, unsigned *out)
{
    const char *s = st_metadata_get(f, key);
    char sb[SHOWN];
    int i;

    if (!s)
        return RL_OK;
    i = name_index(names, n, s);
    if (i < 0)
        return rl_error_set(RL_ERR_FORMAT, "%s: metadata '%s' has the unknown value '%s'",
                            st_path(f), key, shown(sb, sizeof sb, s));
    *out = (unsigned)i;
    return RL_OK;
}

/* rl_* metadata of the weights file over what the config said */
static int read_metadata(const struct st_file *f, struct adapter_cfg *cfg)
{
    char sb[SHOWN];
    const char *s;
    unsigned v;
    int rc;

    if ((s = st_metadata_get(f, "rl_seed")) != NULL) {
        char *end;

        errno = 0;
        cfg->seed = strtoull(s, &end, 10);
        if (errno || end == s || *end || *s == '-')
            return rl_error_set(RL_ERR_FORMAT, "%s: metadata 'rl_seed' is not an unsigned "
                                "integer: '%s'", st_path(f), shown(sb, sizeof sb, s));
    }
    if (strcmp(cfg->method, "randlora"))
        return RL_OK;
    if ((s = st_metadata_get(f, "rl_alpha")) != NULL) {
        char *end;
        float a = strtof(s, &end);

        if (end == s || *end || !isfinite(a))
            return rl_error_set(RL_ERR_FORMAT, "%s: metadata 'rl_alpha' is not a number: '%s'",
                                st_path(f), shown(sb, sizeof sb, s));
        cfg->alpha = a;
    }
    v = cfg->n_rule;
    if ((rc = meta_enum(f, "rl_n_rule", n_rule_names, 2, &v)))
        return rc;
    cfg->n_rule = (enum adapter_n_rule)v;
    v = cfg->scaling;
    if ((rc = meta_enum(f, "rl_scaling", scaling_names, 3, &v)))
        return rc;
    cfg->scaling = (enum adapter_scaling)v;
    v = cfg->lambda_init;
    if ((rc = meta_enum(f, "rl_lambda_init", lambda_names, 2, &v)))
        return rc;
    cfg->lambda_init = (enum adapter_lambda_init)v;
    v = cfg->gamma_init;
    if ((rc = meta_enum(f, "rl_gamma_init", gamma_names, 2, &v)))
        return rc;
    cfg->gamma_init = (enum adapter_gamma_init)v;
    return RL_OK;
}

/* config JSON (+ the weights file's metadata, f may be NULL) -> info */
static int parse_config(const cJSON *o, const char *path, const struct st_file *f,
                        struct adapter_io_info *info)
{
    struct adapter_cfg *cfg = &info->cfg;
    const struct adapter_ops *ops = NULL;
    char sb[SHOWN];
    const cJSON *v;
    uint64_t r = 0;
    bool sparse = false, very_sparse = false;
    int rc;

    v = cJSON_GetObjectItemCaseSensitive(o, "peft_type");
    if (!v)
        return rl_error_set(RL_ERR_FORMAT, "%s: key 'peft_type' is missing", path);
    if (!cJSON_IsString(v))
        return rl_error_set(RL_ERR_FORMAT, "%s: key 'peft_type' must be a string", path);
    for (size_t i = 0; i < N_PEFT_TYPES; i++)
        if (!strcmp(v->valuestring, peft_types[i].peft_type))
            ops = adapter_ops_find(peft_types[i].method);
    if (!ops)
        return rl_error_set(RL_ERR_FORMAT, "%s: key 'peft_type' is '%s', expected LORA, VERA, "
                            "RANDLORA or FULL", path, shown(sb, sizeof sb, v->valuestring));
    if ((rc = unsupported(o, path)))
        return rc;
    if (ops->flags & ADAPTER_F_RANK) {
        if (!jget(o, "r"))
            return rl_error_set(RL_ERR_FORMAT, "%s: key 'r' is missing", path);
        if ((rc = juint(o, path, "r", &r)))
            return rc;
        if (r == 0 || r > ((uint64_t)1 << 30))
            return rl_error_set(RL_ERR_FORMAT, "%s: key 'r' is %" PRIu64 ", expected 1 .. 2^30",
                                path, r);
    }
    adapter_cfg_defaults(cfg, ops->name, (size_t)r);
    cfg->method = ops->name;
    if ((rc = juint(o, path, "projection_prng_key", &cfg->seed)))
        return rc;
    if (!strcmp(ops->name, "lora")) {
        cfg->alpha = 8.0f;                                 /* peft's LoraConfig default */
        if ((rc = jfloat(o, path, "lora_alpha", &cfg->alpha)) ||
            (rc = jfloat(o, path, "lora_dropout", &cfg->dropout)) ||
            (rc = jbool(o, path, "use_rslora", &cfg->rslora)))
            return rc;
    } else if (!strcmp(ops->name, "vera")) {
        if ((rc = jfloat(o, path, "vera_dropout", &cfg->dropout)) ||
            (rc = jfloat(o, path, "d_initial", &cfg->vera_d_init)))
            return rc;
    } else if (!strcmp(ops->name, "randlora")) {
        cfg->alpha = 640.0f;                               /* peft's RandLoraConfig default */
        if ((rc = jfloat(o, path, "randlora_alpha", &cfg->alpha)) ||
            (rc = jfloat(o, path, "randlora_dropout", &cfg->dropout)) ||
            (rc = jbool(o, path, "sparse", &sparse)) ||
            (rc = jbool(o, path, "very_sparse", &very_sparse)))
            return rc;
        /* peft's _pre_injection_hook: very_sparse wins over sparse */
        cfg->basis = very_sparse ? ADAPTER_BASIS_VERY_SPARSE
                   : sparse ? ADAPTER_BASIS_SPARSE : ADAPTER_BASIS_DENSE;
    }
    if (!(cfg->dropout >= 0.0f && cfg->dropout < 1.0f))
        return rl_error_set(RL_ERR_FORMAT, "%s: the dropout %g is outside [0, 1)", path,
                            (double)cfg->dropout);
    if (!strcmp(ops->name, "lora") && !(cfg->alpha > 0.0f))
        return rl_error_set(RL_ERR_FORMAT, "%s: key 'lora_alpha' must be positive", path);
    if (!strcmp(ops->name, "randlora") && !(cfg->alpha > 0.0f))
        return rl_error_set(RL_ERR_FORMAT, "%s: key 'randlora_alpha' must be positive", path);
    if (f && (rc = read_metadata(f, cfg)))
        return rc;

    if ((v = jget(o, "base_model_name_or_path")) != NULL) {
        if (!cJSON_IsString(v))
            return rl_error_set(RL_ERR_FORMAT, "%s: key 'base_model_name_or_path' must be a "
                                "string", path);
        info->base_model = xstrdup(v->valuestring);
    }
    if ((v = jget(o, "target_modules")) != NULL) {
        if (cJSON_IsString(v)) {
            info->targets = xmalloc(sizeof(*info->targets));
            info->targets[0] = xstrdup(v->valuestring);
            info->n_targets = 1;
        } else if (cJSON_IsArray(v)) {
            size_t n = (size_t)cJSON_GetArraySize(v), i = 0;
            const cJSON *e;

            info->targets = xcalloc(n ? n : 1, sizeof(*info->targets));
            cJSON_ArrayForEach(e, v) {
                if (!cJSON_IsString(e))
                    return rl_error_set(RL_ERR_FORMAT, "%s: key 'target_modules' entry %zu is not "
                                        "a string", path, i);
                info->targets[i++] = xstrdup(e->valuestring);
                info->n_targets = i;
            }
        } else {
            return rl_error_set(RL_ERR_FORMAT, "%s: key 'target_modules' must be a list of "
                                "strings or a string", path);
        }
    }
    return RL_OK;
}

void adapter_io_info_free(struct adapter_io_info *info)
{
    for (size_t i = 0; i < info->n_targets; i++)
        free(info->targets[i]);
    free(info->targets);
    free(info->base_model);
    memset(info, 0, sizeof(*info));
}

/* config file -> parsed object */
static int load_config(const char *path, cJSON **root)
{
    char *text;
    size_t len = 0;
    int rc = read_text(path, &text, &len);

    if (rc)
        return rc;
    rc = parse_json(path, text, len, root);
    free(text);
    return rc;
}

int adapter_io_read_config(const struct adapter_io_files *files, struct adapter_io_info *info)
{
    char *weights, *config;
    struct st_file *f = NULL;
    cJSON *root = NULL;
    int rc;

    memset(info, 0, sizeof(*info));
    if ((rc = resolve_paths(files, &weights, &config)))
        return rc;
    rc = load_config(config, &root);
    if (!rc && access(weights, F_OK) == 0)
        rc = st_open(&f, weights);
    if (!rc)
        rc = parse_config(root, config, f, info);
    st_close(f);
    cJSON_Delete(root);
    free(weights);
    free(config);
    return rc;
}

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
    if (!strcmp(name, "randlora")) {
        if (fc->n_rule != mc->n_rule)
            return rl_error_set(RL_ERR_FORMAT, "%s: the number-of-bases rule is %s, but the "
                                "adapters' is %s", path, n_rule_names[fc->n_rule],
                                n_rule_names[mc->n_rule]);
        if (fc->basis != mc->basis)
            return rl_error_set(RL_ERR_FORMAT, "%s: keys 'sparse'/'very_sparse' say %s bases, but "
                                "the adapters' are %s", path, basis_names[fc->basis],
                                basis_names[mc->basis]);
        for (size_t i = 0; i < n; i++) {
            const struct adapter *a = mods[i].adapter;
            size_t nb = randlora_n_bases(mc, a->d_out, a->d_in);
            float sf = randlora_scaling(fc, nb), sm = randlora_scaling(mc, nb);

            if (!close_rel(sf, sm))
                return rl_error_set(RL_ERR_FORMAT, "%s: key 'randlora_alpha' %g gives module '%s' "
                                    "the scaling %g, but the adapters' is %g", path,
                                    (double)randlora_peft_alpha(fc), mods[i].path, (double)sf,
                                    (double)sm);
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
    char *weights = NULL, *config = NULL, **keys = NULL;
    struct staged *st = NULL;
    size_t n_st = 0, n_keys = 0, cap_keys = 0;
    struct st_file *f = NULL;
    cJSON *root = NULL;
    int rc;

    memset(&info, 0, sizeof(info));
    if ((rc = check_modules(m, mods, n)) != RL_OK)
        return rc;
    if (!adapter_io_peft_type(m->ops->name))
        return RL_OK;                              /* none: nothing to load */
    if (n == 0)
        return rl_error_set(RL_ERR_ARG, "adapter files: no modules to import");
    if ((rc = resolve_paths(files, &weights, &config)) != RL_OK)
        return rc;
    if ((rc = load_config(config, &root)) || (rc = st_open(&f, weights)) ||
        (rc = parse_config(root, config, f, &info)) ||
        (rc = check_against(&info.cfg, m, mods, n, config)))
        goto out;

    st = xcalloc(n + MAX_VIEWS, sizeof(*st));
    /* each layer: read into a buffer laid out as its params */
    for (size_t i = 0; i < n && !rc; i++) {
        struct adapter *a = mods[i].adapter;
        char *prefix = cat3(LAYER_PREFIX, mods[i].path, ".");
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

            if (n_keys == cap_keys) {
                cap_keys = cap_keys ? 2 * cap_keys : 64;
                keys = xrealloc_array(keys, cap_keys, sizeof(*keys));
            }
            keys[n_keys] = cat3(prefix, t[k].name, NULL);
            rc = check_finite(weights, keys[n_keys], x, t[k].n);
            n_keys++;
        }
        n_st++;
        free(prefix);
    }
    /* the shared tensors */
    if (!rc) {
        size_t ns = adapter_method_tensors(m, t, MAX_VIEWS);

        RL_ASSERT(ns <= MAX_VIEWS);
        for (size_t k = 0; k < ns && !rc; k++) {
            int64_t shape[3] = { (int64_t)t[k].shape[0], (int64_t)t[k].shape[1],
                                 (int64_t)t[k].shape[2] };

            if (n_keys == cap_keys) {
                cap_keys = cap_keys ? 2 * cap_keys : 64;
                keys = xrealloc_array(keys, cap_keys, sizeof(*keys));
            }
            keys[n_keys] = cat3(SHARED_PREFIX, t[k].name, NULL);
            st[n_st].dst = t[k].data;
            st[n_st].n = t[k].n;
            st[n_st].buf = xmalloc_array(t[k].n ? t[k].n : 1, sizeof(float));
            rc = st_load_f32(f, keys[n_keys], t[k].ndim, shape, st[n_st].buf);
            if (!rc)
                rc = check_finite(weights, keys[n_keys], st[n_st].buf, t[k].n);
            n_keys++;
            n_st++;
        }
    }
    /* every key of the file was expected (expected keys are distinct and
     * were all found, so a larger count means extra keys) */
    if (!rc && st_count(f) != n_keys) {
        for (size_t i = 0; i < st_count(f) && !rc; i++) {
            const char *k = st_info_at(f, i)->name;
            bool known = false;

            for (size_t j = 0; j < n_keys && !known; j++)
                known = !strcmp(k, keys[j]);
            if (!known) {
                char sb[SHOWN];

                rc = rl_error_set(RL_ERR_FORMAT, "%s: tensor '%s' belongs to no module given "
                                  "(%zu modules, %s)", weights, shown(sb, sizeof sb, k), n,
                                  m->ops->name);
            }
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
    for (size_t i = 0; i < n_keys; i++)
        free(keys[i]);
    free(keys);
    adapter_io_info_free(&info);
    st_close(f);
    cJSON_Delete(root);
    free(weights);
    free(config);
    return rc;
}
