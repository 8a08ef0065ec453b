/*
 * llama_config.c: a Llama-family config.json (HF LlamaConfig / Qwen2Config)
 * read as hostile input, validated, and written back; the parameter count
 * and the rotary frequencies (HF's rope init functions).
 */
#include "models/llama.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/alloc.h"
#include "core/read_file.h"
#include "core/status.h"

#define CONFIG_MAX_BYTES ((size_t)16 << 20)
#define DIM_MAX          ((size_t)1 << 20)
#define VOCAB_MAX        ((size_t)1 << 24)
#define LAYERS_MAX       ((size_t)1024)
#define POS_MAX          ((size_t)1 << 24)

void llama_config_defaults(struct llama_config *c, enum llama_arch arch)
{
    memset(c, 0, sizeof(*c));
    c->arch = arch;
    c->max_position = arch == LLAMA_ARCH_QWEN2 ? 32768 : 2048;
    c->rms_norm_eps = 1e-6f;
    c->rope_theta = 10000.0;
    c->rope_type = LLAMA_ROPE_DEFAULT;
    c->rope_factor = 1.0;
    c->qkv_bias = arch == LLAMA_ARCH_QWEN2;
    c->initializer_range = 0.02f;
    c->bos_token_id = -1;
    snprintf(c->torch_dtype, sizeof(c->torch_dtype), "float32");
}

/* ---- reading ------------------------------------------------------------ */

static const cJSON *item(const cJSON *o, const char *key)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);

    return it && !cJSON_IsNull(it) ? it : NULL;
}

/* it is an integer-valued number in [lo, hi]: *out set */
static bool int_value(const cJSON *it, double lo, double hi, int64_t *out)
{
    const double d = cJSON_IsNumber(it) ? it->valuedouble : NAN;

    if (!(d >= lo && d <= hi) || d != floor(d))
        return false;
    *out = (int64_t)d;
    return true;
}

/* an integer-valued number in [lo, hi] when present (required: missing is
 * an error) */
static int get_int(const char *where, const cJSON *o, const char *key, double lo, double hi,
                   bool required, int64_t *out)
{
    const cJSON *it = item(o, key);

    if (!it) {
        if (required)
            return rl_error_set(RL_ERR_FORMAT, "%s: key '%s' is missing (expected an integer)",
                                where, key);
        return RL_OK;
    }
    if (!int_value(it, lo, hi, out))
        return rl_error_set(RL_ERR_FORMAT, "%s: key '%s': expected an integer in %.0f..%.0f",
                            where, key, lo, hi);
    return RL_OK;
}

static int get_size(const char *where, const cJSON *o, const char *key, size_t max,
                    bool required, size_t *out)
{
    int64_t v = (int64_t)*out;
    int rc = get_int(where, o, key, 1, (double)max, required, &v);

    if (rc == RL_OK)
        *out = (size_t)v;
    return rc;
}

static int get_double(const char *where, const cJSON *o, const char *key, double *out)
{
    const cJSON *it = item(o, key);

    if (!it)
        return RL_OK;
    if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble) || !(it->valuedouble > 0) ||
        it->valuedouble > 1e30)
        return rl_error_set(RL_ERR_FORMAT, "%s: key '%s': expected a positive number", where,
                            key);
    *out = it->valuedouble;
    return RL_OK;
}

static int get_bool(const char *where, const cJSON *o, const char *key, bool *out)
{
    const cJSON *it = item(o, key);

    if (!it)
        return RL_OK;
    if (!cJSON_IsBool(it))
        return rl_error_set(RL_ERR_FORMAT, "%s: key '%s': expected true or false", where, key);
    *out = cJSON_IsTrue(it);
    return RL_OK;
}

/* the layout from architectures[0] (or model_type when it is absent) */
static int parse_arch(const char *where, const cJSON *root, enum llama_arch *arch)
{
    const cJSON *archs = item(root, "architectures"), *mt = item(root, "model_type");
    const char *name = NULL;

    if (archs) {
        const cJSON *a0 = cJSON_IsArray(archs) ? cJSON_GetArrayItem(archs, 0) : NULL;

        if (!a0 || !cJSON_IsString(a0))
            return rl_error_set(RL_ERR_FORMAT, "%s: key 'architectures': expected a list of "
                                "class names", where);
        name = a0->valuestring;
        if (!strcmp(name, "LlamaForCausalLM") || !strcmp(name, "LlamaModel"))
            *arch = LLAMA_ARCH_LLAMA;
        else if (!strcmp(name, "Qwen2ForCausalLM") || !strcmp(name, "Qwen2Model"))
            *arch = LLAMA_ARCH_QWEN2;
        else
            return rl_error_set(RL_ERR_FORMAT, "%s: architectures = %.64s: expected "
                                "LlamaForCausalLM or Qwen2ForCausalLM", where, name);
        return RL_OK;
    }
    if (mt && cJSON_IsString(mt) && !strcmp(mt->valuestring, "llama"))
        *arch = LLAMA_ARCH_LLAMA;
    else if (mt && cJSON_IsString(mt) && !strcmp(mt->valuestring, "qwen2"))
        *arch = LLAMA_ARCH_QWEN2;
    else
        return rl_error_set(RL_ERR_FORMAT, "%s: neither 'architectures' nor a model_type of "
                            "\"llama\" or \"qwen2\": not a Llama-family config", where);
    return RL_OK;
}

/* rope_scaling: null, or {"rope_type" (or legacy "type"): default | linear
 * | llama3, "factor", and llama3's low/high_freq_factor and
 * original_max_position_embeddings} */
static int parse_rope_scaling(const char *where, const cJSON *root, struct llama_config *c)
{
    const cJSON *rs = item(root, "rope_scaling"), *ty;
    const char *name;
    int64_t omp = 0;
    int rc;

    if (!rs)
        return RL_OK;
    if (!cJSON_IsObject(rs))
        return rl_error_set(RL_ERR_FORMAT, "%s: key 'rope_scaling': expected null or an "
                            "object", where);
    ty = item(rs, "rope_type");
    if (!ty)
        ty = item(rs, "type");
    if (!ty || !cJSON_IsString(ty))
        return rl_error_set(RL_ERR_FORMAT, "%s: rope_scaling: 'rope_type' missing or not a "
                            "string", where);
    name = ty->valuestring;
    if (!strcmp(name, "default")) {
        c->rope_type = LLAMA_ROPE_DEFAULT;
        return RL_OK;
    }
    if (strcmp(name, "linear") && strcmp(name, "llama3"))
        return rl_error_set(RL_ERR_FORMAT, "%s: rope_scaling.rope_type = %.32s is not "
                            "supported (default, linear, llama3)", where, name);
    c->rope_type = !strcmp(name, "linear") ? LLAMA_ROPE_LINEAR : LLAMA_ROPE_LLAMA3;
    if (!item(rs, "factor"))
        return rl_error_set(RL_ERR_FORMAT, "%s: rope_scaling.factor is missing", where);
    if ((rc = get_double(where, rs, "factor", &c->rope_factor)))
        return rc;
    if (c->rope_type == LLAMA_ROPE_LINEAR)
        return RL_OK;
    if (!item(rs, "low_freq_factor") || !item(rs, "high_freq_factor"))
        return rl_error_set(RL_ERR_FORMAT, "%s: rope_scaling: llama3 needs low_freq_factor "
                            "and high_freq_factor", where);
    if ((rc = get_double(where, rs, "low_freq_factor", &c->rope_low_freq_factor)) ||
        (rc = get_double(where, rs, "high_freq_factor", &c->rope_high_freq_factor)) ||
        (rc = get_int(where, rs, "original_max_position_embeddings", 1, (double)POS_MAX,
                      true, &omp)))
        return rc;
    c->rope_original_max_position = (size_t)omp;
    if (!(c->rope_high_freq_factor > c->rope_low_freq_factor))
        return rl_error_set(RL_ERR_FORMAT, "%s: rope_scaling: high_freq_factor must exceed "
                            "low_freq_factor", where);
    return RL_OK;
}

/* eos_token_id: an integer, a list of them, or null */
static int parse_eos(const char *where, const cJSON *root, struct llama_config *c)
{
    const cJSON *e = item(root, "eos_token_id");
    int rc;

    c->n_eos = 0;
    if (!e)
        return RL_OK;
    if (cJSON_IsArray(e)) {
        const cJSON *x;

        if (cJSON_GetArraySize(e) > LLAMA_MAX_EOS)
            return rl_error_set(RL_ERR_FORMAT, "%s: key 'eos_token_id': at most %d ids", where,
                                LLAMA_MAX_EOS);
        cJSON_ArrayForEach(x, e) {
            if (!int_value(x, 0, 2147483647.0, &c->eos_token_id[c->n_eos]))
                return rl_error_set(RL_ERR_FORMAT, "%s: key 'eos_token_id': expected integers "
                                    "in 0..2147483647", where);
            c->n_eos++;
        }
        return RL_OK;
    }
    if ((rc = get_int(where, root, "eos_token_id", 0, 2147483647.0, true, &c->eos_token_id[0])))
        return rc;
    c->n_eos = 1;
    return RL_OK;
}

int llama_config_parse(struct llama_config *c, const char *json, size_t len, const char *where)
{
    cJSON *root = cJSON_ParseWithLength(json, len);
    enum llama_arch arch = LLAMA_ARCH_LLAMA;
    const cJSON *it;
    double eps = 1e-6, init = 0.02;
    bool attention_bias = false, sliding = false;
    int64_t kvh = 0, hd = 0;
    int rc;

    memset(c, 0, sizeof(*c));
    if (!root)
        return rl_error_set(RL_ERR_FORMAT, "%s: not valid JSON", where);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return rl_error_set(RL_ERR_FORMAT, "%s: expected a JSON object", where);
    }
    if ((rc = parse_arch(where, root, &arch)))
        goto out;
    llama_config_defaults(c, arch);
    if ((rc = get_size(where, root, "hidden_size", DIM_MAX, true, &c->hidden)) ||
        (rc = get_size(where, root, "intermediate_size", DIM_MAX, true, &c->intermediate)) ||
        (rc = get_size(where, root, "num_hidden_layers", LAYERS_MAX, true, &c->layers)) ||
        (rc = get_size(where, root, "num_attention_heads", DIM_MAX, true, &c->heads)) ||
        (rc = get_size(where, root, "vocab_size", VOCAB_MAX, true, &c->vocab_size)) ||
        (rc = get_int(where, root, "num_key_value_heads", 1, (double)DIM_MAX, false, &kvh)) ||
        (rc = get_int(where, root, "head_dim", 1, (double)DIM_MAX, false, &hd)) ||
        (rc = get_size(where, root, "max_position_embeddings", POS_MAX, false,
                       &c->max_position)) ||
        (rc = get_double(where, root, "rms_norm_eps", &eps)) ||
        (rc = get_double(where, root, "rope_theta", &c->rope_theta)) ||
        (rc = get_double(where, root, "initializer_range", &init)) ||
        (rc = parse_rope_scaling(where, root, c)) ||
        (rc = get_bool(where, root, "attention_bias", &attention_bias)) ||
        (rc = get_bool(where, root, "mlp_bias", &c->mlp_bias)) ||
        (rc = get_bool(where, root, "tie_word_embeddings", &c->tie_word_embeddings)) ||
        (rc = get_bool(where, root, "use_sliding_window", &sliding)) ||
        (rc = get_int(where, root, "bos_token_id", 0, 2147483647.0, false, &c->bos_token_id)) ||
        (rc = parse_eos(where, root, c)))
        goto out;
    c->rms_norm_eps = (float)eps;
    c->initializer_range = (float)init;
    c->kv_heads = kvh ? (size_t)kvh : c->heads;
    c->head_dim = hd ? (size_t)hd : c->hidden / c->heads;
    if (arch == LLAMA_ARCH_LLAMA) {
        c->qkv_bias = attention_bias;
        c->o_bias = attention_bias;
    } else if (c->mlp_bias) {
        rc = rl_error_set(RL_ERR_FORMAT, "%s: mlp_bias is not part of a Qwen2 config", where);
        goto out;
    }
    if ((it = item(root, "hidden_act")) &&
        !(cJSON_IsString(it) && !strcmp(it->valuestring, "silu"))) {
        rc = rl_error_set(RL_ERR_FORMAT, "%s: key 'hidden_act': only \"silu\" (SwiGLU) is "
                          "supported", where);
        goto out;
    }
    if (sliding) {
        rc = rl_error_set(RL_ERR_FORMAT, "%s: use_sliding_window = true is not supported "
                          "(full causal attention only)", where);
        goto out;
    }
    if ((it = item(root, "attention_dropout")) &&
        !(cJSON_IsNumber(it) && it->valuedouble == 0.0)) {
        rc = rl_error_set(RL_ERR_FORMAT, "%s: key 'attention_dropout': only 0 is supported",
                          where);
        goto out;
    }
    if ((it = item(root, "torch_dtype")) || (it = item(root, "dtype"))) {
        if (!cJSON_IsString(it) || strlen(it->valuestring) >= sizeof(c->torch_dtype)) {
            rc = rl_error_set(RL_ERR_FORMAT, "%s: key 'torch_dtype': expected a dtype name",
                              where);
            goto out;
        }
        snprintf(c->torch_dtype, sizeof(c->torch_dtype), "%s", it->valuestring);
    }
    rc = llama_config_validate(c, where);
out:
    cJSON_Delete(root);
    return rc;
}

int llama_config_load(struct llama_config *c, const char *path)
{
    char *json = NULL;
    size_t len = 0;
    int rc = rl_read_file(path, CONFIG_MAX_BYTES, &json, &len);

    if (rc)
        return rc;
    rc = llama_config_parse(c, json, len, path);
    free(json);
    return rc;
}

bool llama_config_file_is_decoder(const char *path)
{
    char *json = NULL;
    size_t len = 0;
    cJSON *root;
    bool yes = false;

    if (rl_read_file(path, CONFIG_MAX_BYTES, &json, &len) != RL_OK)
        return false;
    root = cJSON_ParseWithLength(json, len);
    if (root && cJSON_IsObject(root)) {
        const cJSON *archs = item(root, "architectures"), *mt = item(root, "model_type");
        const cJSON *a0 = archs && cJSON_IsArray(archs) ? cJSON_GetArrayItem(archs, 0) : NULL;

        yes = (a0 && cJSON_IsString(a0) && (strstr(a0->valuestring, "ForCausalLM") ||
                                            strstr(a0->valuestring, "LlamaModel") ||
                                            strstr(a0->valuestring, "Qwen2Model"))) ||
              (mt && cJSON_IsString(mt) && (!strcmp(mt->valuestring, "llama") ||
                                            !strcmp(mt->valuestring, "qwen2")));
    }
    cJSON_Delete(root);
    free(json);
    return yes;
}

int llama_config_validate(const struct llama_config *c, const char *where)
{
    if (!c->hidden || c->hidden > DIM_MAX || !c->intermediate || c->intermediate > DIM_MAX ||
        !c->layers || c->layers > LAYERS_MAX || !c->heads || c->heads > DIM_MAX ||
        !c->vocab_size || c->vocab_size > VOCAB_MAX || !c->max_position ||
        c->max_position > POS_MAX)
        return rl_error_set(RL_ERR_FORMAT, "%s: a size (hidden_size, intermediate_size, "
                            "num_hidden_layers, num_attention_heads, vocab_size, "
                            "max_position_embeddings) is 0 or too large", where);
    if (!c->kv_heads || c->heads % c->kv_heads)
        return rl_error_set(RL_ERR_FORMAT, "%s: num_key_value_heads = %zu does not divide "
                            "num_attention_heads %zu", where, c->kv_heads, c->heads);
    if (!c->head_dim || c->head_dim % 2 || c->head_dim > DIM_MAX ||
        c->head_dim * c->heads > DIM_MAX)
        return rl_error_set(RL_ERR_FORMAT, "%s: head_dim = %zu: expected an even size with "
                            "head_dim * num_attention_heads <= %zu", where, c->head_dim,
                            DIM_MAX);
    if (!(c->rms_norm_eps > 0.0f) || !isfinite(c->rms_norm_eps))
        return rl_error_set(RL_ERR_FORMAT, "%s: rms_norm_eps must be a positive number", where);
    if (!(c->rope_theta > 1.0) || !isfinite(c->rope_theta))
        return rl_error_set(RL_ERR_FORMAT, "%s: rope_theta = %g: expected a number > 1", where,
                            c->rope_theta);
    if (c->rope_type != LLAMA_ROPE_DEFAULT && !(c->rope_factor > 0 && isfinite(c->rope_factor)))
        return rl_error_set(RL_ERR_FORMAT, "%s: rope_scaling.factor must be positive", where);
    if (c->rope_type == LLAMA_ROPE_LLAMA3 &&
        !(c->rope_low_freq_factor > 0 && c->rope_high_freq_factor > c->rope_low_freq_factor &&
          c->rope_original_max_position > 0))
        return rl_error_set(RL_ERR_FORMAT, "%s: rope_scaling (llama3): bad frequency factors",
                            where);
    if (c->n_eos > LLAMA_MAX_EOS)
        return rl_error_set(RL_ERR_FORMAT, "%s: too many eos ids", where);
    if (!(c->initializer_range > 0.0f) || !isfinite(c->initializer_range))
        return rl_error_set(RL_ERR_FORMAT, "%s: initializer_range must be positive", where);
    if (llama_config_n_params(c) == SIZE_MAX)
        return rl_error_set(RL_ERR_FORMAT, "%s: the model's size overflows", where);
    return RL_OK;
}

/* ---- sizes -------------------------------------------------------------- */

static size_t sat_muladd(size_t a, size_t b, size_t c)
{
    size_t r;

    if (!size_mul_ok(a, b, &r) || !size_add_ok(r, c, &r))
        return SIZE_MAX;
    return r;
}

size_t llama_config_n_params(const struct llama_config *c)
{
    const size_t C = c->hidden, F = c->intermediate;
    const size_t qd = sat_muladd(c->heads, c->head_dim, 0);
    const size_t kvd = sat_muladd(c->kv_heads, c->head_dim, 0);
    size_t layer = 2 * C, n;

    layer = sat_muladd(C, qd, layer);                       /* q */
    layer = sat_muladd(C, kvd, layer);                      /* k */
    layer = sat_muladd(C, kvd, layer);                      /* v */
    layer = sat_muladd(qd, C, layer);                       /* o */
    layer = sat_muladd(3 * C, F, layer);                    /* gate, up, down */
    if (c->qkv_bias)
        layer = sat_muladd(1, qd + 2 * kvd, layer);
    if (c->o_bias)
        layer = sat_muladd(1, C, layer);
    if (c->mlp_bias)
        layer = sat_muladd(2, F, sat_muladd(1, C, layer));
    n = sat_muladd(c->layers, layer, C);                    /* + final norm */
    n = sat_muladd(c->vocab_size, C, n);                    /* embed_tokens */
    if (!c->tie_word_embeddings)
        n = sat_muladd(c->vocab_size, C, n);                /* lm_head */
    return n;
}

/* HF modeling_rope_utils: the default frequencies in float32, then the
 * scaling of rope_type */
void llama_rope_inv_freq(const struct llama_config *c, float *inv_freq)
{
    const size_t dim = c->head_dim, half = dim / 2;
    const float base = (float)c->rope_theta;

    for (size_t i = 0; i < half; i++) {
        const float e = (float)(2 * i) / (float)dim;

        inv_freq[i] = 1.0f / (float)pow((double)base, (double)e);
    }
    if (c->rope_type == LLAMA_ROPE_LINEAR) {
        for (size_t i = 0; i < half; i++)
            inv_freq[i] = (float)((double)inv_freq[i] / c->rope_factor);
    } else if (c->rope_type == LLAMA_ROPE_LLAMA3) {
        const double factor = c->rope_factor, lo = c->rope_low_freq_factor;
        const double hi = c->rope_high_freq_factor;
        const double old = (double)c->rope_original_max_position;
        const double lo_wavelen = old / lo, hi_wavelen = old / hi;

        for (size_t i = 0; i < half; i++) {
            const double f = (double)inv_freq[i], wavelen = 2.0 * M_PI / f;
            double g = wavelen > lo_wavelen ? f / factor : f;

            if (!(wavelen < hi_wavelen) && !(wavelen > lo_wavelen)) {
                const double smooth = (old / wavelen - lo) / (hi - lo);

                g = (1.0 - smooth) * g / factor + smooth * g;
            }
            inv_freq[i] = (float)g;
        }
    }
}

/* ---- writing ------------------------------------------------------------ */

/* the shortest decimal that reads back as the same float */
static double short_double(float f)
{
    char buf[32];

    for (int prec = 6; prec <= 9; prec++) {
        snprintf(buf, sizeof(buf), "%.*g", prec, (double)f);
        if ((float)strtod(buf, NULL) == f)
            break;
    }
    return strtod(buf, NULL);
}

static void add_num(cJSON *o, const char *key, double v)
{
    RL_ASSERT(cJSON_AddNumberToObject(o, key, v) != NULL);
}

char *llama_config_to_json(const struct llama_config *c)
{
    const bool qwen = c->arch == LLAMA_ARCH_QWEN2;
    cJSON *root = cJSON_CreateObject(), *arch = cJSON_CreateArray();
    char *s;

    RL_ASSERT(root && arch);
    cJSON_AddItemToArray(arch, cJSON_CreateString(qwen ? "Qwen2ForCausalLM"
                                                       : "LlamaForCausalLM"));
    cJSON_AddItemToObject(root, "architectures", arch);
    cJSON_AddStringToObject(root, "model_type", qwen ? "qwen2" : "llama");
    add_num(root, "hidden_size", (double)c->hidden);
    add_num(root, "intermediate_size", (double)c->intermediate);
    add_num(root, "num_hidden_layers", (double)c->layers);
    add_num(root, "num_attention_heads", (double)c->heads);
    add_num(root, "num_key_value_heads", (double)c->kv_heads);
    add_num(root, "head_dim", (double)c->head_dim);
    add_num(root, "vocab_size", (double)c->vocab_size);
    add_num(root, "max_position_embeddings", (double)c->max_position);
    add_num(root, "rms_norm_eps", short_double(c->rms_norm_eps));
    add_num(root, "rope_theta", c->rope_theta);
    add_num(root, "initializer_range", short_double(c->initializer_range));
    cJSON_AddStringToObject(root, "hidden_act", "silu");
    if (c->rope_type == LLAMA_ROPE_DEFAULT) {
        cJSON_AddNullToObject(root, "rope_scaling");
    } else {
        cJSON *rs = cJSON_CreateObject();

        RL_ASSERT(rs != NULL);
        cJSON_AddStringToObject(rs, "rope_type",
                                c->rope_type == LLAMA_ROPE_LINEAR ? "linear" : "llama3");
        add_num(rs, "factor", c->rope_factor);
        if (c->rope_type == LLAMA_ROPE_LLAMA3) {
            add_num(rs, "low_freq_factor", c->rope_low_freq_factor);
            add_num(rs, "high_freq_factor", c->rope_high_freq_factor);
            add_num(rs, "original_max_position_embeddings",
                    (double)c->rope_original_max_position);
        }
        cJSON_AddItemToObject(root, "rope_scaling", rs);
    }
    if (!qwen) {
        /* a Llama config has one switch for the four attention biases */
        RL_ASSERT(c->qkv_bias == c->o_bias);
        cJSON_AddBoolToObject(root, "attention_bias", c->qkv_bias);
        cJSON_AddBoolToObject(root, "mlp_bias", c->mlp_bias);
    } else {
        cJSON_AddBoolToObject(root, "use_sliding_window", 0);
    }
    cJSON_AddBoolToObject(root, "tie_word_embeddings", c->tie_word_embeddings);
    if (c->bos_token_id >= 0)
        add_num(root, "bos_token_id", (double)c->bos_token_id);
    if (c->n_eos == 1) {
        add_num(root, "eos_token_id", (double)c->eos_token_id[0]);
    } else if (c->n_eos > 1) {
        cJSON *e = cJSON_CreateArray();

        RL_ASSERT(e != NULL);
        for (size_t i = 0; i < c->n_eos; i++)
            cJSON_AddItemToArray(e, cJSON_CreateNumber((double)c->eos_token_id[i]));
        cJSON_AddItemToObject(root, "eos_token_id", e);
    }
    cJSON_AddStringToObject(root, "torch_dtype", c->torch_dtype);
    s = cJSON_Print(root);
    RL_ASSERT(s != NULL);
    cJSON_Delete(root);
    return s;
}
