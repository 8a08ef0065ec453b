/*
 * adapter_io_config.c: adapter_config.json (and the rl_* metadata of the
 * weights file) into a struct adapter_io_info: peft_type names, the JSON
 * read as hostile input (size limit, duplicate keys, trailing text), the
 * fields each peft config class has, the values this program cannot honour
 * rejected; adapter_io_read_config and the parse that import shares.
 */
#include "methods/adapter_io.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/alloc.h"
#include "core/read_file.h"
#include "core/status.h"
#include "methods/adapter_io_impl.h"
#include "formats/safetensors.h"

#define MAX_CONFIG_BYTES ((size_t)16 << 20)

/* ------------------------------------------------------------------------ */
/* peft_type and rl_* value names                                            */

static const struct {
    const char *method, *peft_type;
} peft_types[] = {
    { "lora", "LORA" }, { "vera", "VERA" }, { "randlora", "RANDLORA" }, { "full", "FULL" },
    { "nola", "NOLA" },
};
#define N_PEFT_TYPES (sizeof(peft_types) / sizeof(peft_types[0]))

const char *adapter_io_peft_type(const char *method)
{
    for (size_t i = 0; method && i < N_PEFT_TYPES; i++)
        if (!strcmp(peft_types[i].method, method))
            return peft_types[i].peft_type;
    return NULL;
}

static int name_index(const char *const *names, size_t n, const char *s)
{
    for (size_t i = 0; s && i < n; i++)
        if (!strcmp(names[i], s))
            return (int)i;
    return -1;
}

/* ------------------------------------------------------------------------ */
/* reading the config                                                        */

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
                                      adapter_io_shown(sb, sizeof sb, a->string));

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
    return RL_OK;
}

/* modules_to_save: null, [], or one module name (a linear head, as
 * peft's ["classifier"]) -> info->head */
static int modules_to_save(const cJSON *o, const char *path, struct adapter_io_info *info)
{
    const cJSON *v = jget(o, "modules_to_save"), *e;

    if (!v || (cJSON_IsArray(v) && cJSON_GetArraySize(v) == 0))
        return RL_OK;
    e = cJSON_IsArray(v) && cJSON_GetArraySize(v) == 1 ? cJSON_GetArrayItem(v, 0) : NULL;
    if (!cJSON_IsString(e) || !e->valuestring[0] || strchr(e->valuestring, '.') ||
        strlen(e->valuestring) > 64)
        return rl_error_set(RL_ERR_FORMAT, "%s: key 'modules_to_save' must be null or one module "
                            "name (a linear head such as [\"classifier\"]; other extra trainable "
                            "modules are not supported)", path);
    info->head = xstrdup(e->valuestring);
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
                            st_path(f), key, adapter_io_shown(sb, sizeof sb, s));
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
                                "integer: '%s'", st_path(f), adapter_io_shown(sb, sizeof sb, s));
    }
    if (strcmp(cfg->method, "randlora"))
        return RL_OK;
    if ((s = st_metadata_get(f, "rl_alpha")) != NULL) {
        char *end;
        float a = strtof(s, &end);

        if (end == s || *end || !isfinite(a))
            return rl_error_set(RL_ERR_FORMAT, "%s: metadata 'rl_alpha' is not a number: '%s'",
                                st_path(f), adapter_io_shown(sb, sizeof sb, s));
        cfg->alpha = a;
    }
    v = cfg->n_rule;
    if ((rc = meta_enum(f, "rl_n_rule", adapter_io_n_rule_names, 2, &v)))
        return rc;
    cfg->n_rule = (enum adapter_n_rule)v;
    v = cfg->scaling;
    if ((rc = meta_enum(f, "rl_scaling", adapter_io_scaling_names, 4, &v)))
        return rc;
    cfg->scaling = (enum adapter_scaling)v;
    v = cfg->lambda_init;
    if ((rc = meta_enum(f, "rl_lambda_init", adapter_io_lambda_names, 2, &v)))
        return rc;
    cfg->lambda_init = (enum adapter_lambda_init)v;
    v = cfg->gamma_init;
    if ((rc = meta_enum(f, "rl_gamma_init", adapter_io_gamma_names, 2, &v)))
        return rc;
    cfg->gamma_init = (enum adapter_gamma_init)v;
    return RL_OK;
}

/* config JSON (+ the weights file's metadata, f may be NULL) -> info */
int adapter_io_parse_config(const cJSON *o, const char *path, const struct st_file *f,
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
                            "RANDLORA, FULL or NOLA", path,
                            adapter_io_shown(sb, sizeof sb, v->valuestring));
    if ((rc = unsupported(o, path)) || (rc = modules_to_save(o, path, info)))
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
    } else if (!strcmp(ops->name, "nola")) {
        uint64_t k = 0;

        cfg->alpha = 1.0f;                                 /* the authors' lora_alpha */
        if (!jget(o, "nola_num_basis"))
            return rl_error_set(RL_ERR_FORMAT, "%s: key 'nola_num_basis' is missing", path);
        if ((rc = juint(o, path, "nola_num_basis", &k)) ||
            (rc = jfloat(o, path, "nola_alpha", &cfg->alpha)) ||
            (rc = jfloat(o, path, "nola_dropout", &cfg->dropout)) ||
            (rc = jbool(o, path, "sparse", &sparse)) ||
            (rc = jbool(o, path, "very_sparse", &very_sparse)))
            return rc;
        if (k == 0 || k > ((uint64_t)1 << 24))
            return rl_error_set(RL_ERR_FORMAT, "%s: key 'nola_num_basis' is %" PRIu64 ", "
                                "expected 1 .. 2^24", path, k);
        cfg->nola_bases = (size_t)k;
        cfg->basis = very_sparse ? ADAPTER_BASIS_VERY_SPARSE
                   : sparse ? ADAPTER_BASIS_SPARSE : ADAPTER_BASIS_DENSE;
    }
    if (!(cfg->dropout >= 0.0f && cfg->dropout < 1.0f))
        return rl_error_set(RL_ERR_FORMAT, "%s: the dropout %g is outside [0, 1)", path,
                            (double)cfg->dropout);
    if (!strcmp(ops->name, "lora") && !(cfg->alpha > 0.0f))
        return rl_error_set(RL_ERR_FORMAT, "%s: key 'lora_alpha' must be positive", path);
    if (!strcmp(ops->name, "nola") && !(cfg->alpha > 0.0f))
        return rl_error_set(RL_ERR_FORMAT, "%s: key 'nola_alpha' must be positive", path);
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
    free(info->head);
    memset(info, 0, sizeof(*info));
}

/* config file -> parsed object */
int adapter_io_load_config(const char *path, cJSON **root)
{
    char *text;
    size_t len = 0;
    int rc = rl_read_file(path, MAX_CONFIG_BYTES, &text, &len);

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
    if ((rc = adapter_io_resolve_paths(files, &weights, &config)))
        return rc;
    rc = adapter_io_load_config(config, &root);
    if (!rc && access(weights, F_OK) == 0)
        rc = st_open(&f, weights);
    if (!rc)
        rc = adapter_io_parse_config(root, config, f, info);
    st_close(f);
    cJSON_Delete(root);
    free(weights);
    free(config);
    return rc;
}
