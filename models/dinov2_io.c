/*
 * dinov2_io.c: the DINOv2 configuration (HF Dinov2Config config.json), the
 * presets, the tensor table under HF Dinov2Model key names, random init,
 * loading, and the dispatch between the two model kinds (models/dinov2.h).
 */
#include "models/dinov2.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/alloc.h"
#include "core/read_file.h"
#include "core/rng.h"
#include "core/status.h"

#define CONFIG_MAX_BYTES ((size_t)16 << 20)
#define DIM_MAX          ((size_t)1 << 20)
#define LAYERS_MAX       ((size_t)1024)

const char *const dinov2_linear_paths[BLOCK_NUM_LINEARS] = {
    "attention.attention.query", "attention.attention.key", "attention.attention.value",
    "attention.output.dense", "mlp.fc1", "mlp.fc2",
};

/* HF names of the 16 block.h tensors of a layer, in block.h order */
static const char *const layer_names[BLOCK_NUM_PARAMS] = {
    "norm1.weight", "norm1.bias",
    "attention.attention.query.weight", "attention.attention.key.weight",
    "attention.attention.value.weight", "attention.attention.query.bias",
    "attention.attention.key.bias", "attention.attention.value.bias",
    "attention.output.dense.weight", "attention.output.dense.bias",
    "norm2.weight", "norm2.bias",
    "mlp.fc1.weight", "mlp.fc1.bias",
    "mlp.fc2.weight", "mlp.fc2.bias",
};

/* ------------------------------------------------------------------------ */
/* configuration                                                             */

void dinov2_config_defaults(struct clip_config *c)
{
    memset(c, 0, sizeof(*c));
    c->arch = CLIP_ARCH_DINOV2;
    c->vision = (struct clip_vision_config){
        .image_size = 224, .patch_size = 14, .num_channels = 3, .hidden = 768,
        .layers = 12, .heads = 12, .intermediate = 3072, .act = BLOCK_ACT_GELU,
        .layer_norm_eps = 1e-6f, .qkv_bias = true, .layerscale_value = 1.0f,
    };
    /* no text tower: clip_adapters sees zero text layers */
    c->text.context = 1;
    c->projection_dim = 0;
}

static int validate(const struct clip_config *c, const char *where)
{
    const struct clip_vision_config *v = &c->vision;
    const struct {
        const char *key;
        size_t v, max;
    } dims[] = {
        { "image_size", v->image_size, DIM_MAX },  { "patch_size", v->patch_size, DIM_MAX },
        { "num_channels", v->num_channels, 64 },   { "hidden_size", v->hidden, DIM_MAX },
        { "num_hidden_layers", v->layers, LAYERS_MAX },
        { "num_attention_heads", v->heads, DIM_MAX },
        { "mlp_ratio (hidden_size * mlp_ratio)", v->intermediate, DIM_MAX },
    };

    for (size_t i = 0; i < sizeof(dims) / sizeof(dims[0]); i++)
        if (dims[i].v == 0 || dims[i].v > dims[i].max)
            return rl_error_set(RL_ERR_FORMAT, "%s: %s = %zu: expected an integer in 1..%zu",
                                where, dims[i].key, dims[i].v, dims[i].max);
    if (v->register_tokens > 1024)
        return rl_error_set(RL_ERR_FORMAT, "%s: num_register_tokens = %zu: expected 0..1024",
                            where, v->register_tokens);
    if (v->image_size % v->patch_size)
        return rl_error_set(RL_ERR_FORMAT, "%s: patch_size = %zu does not divide image_size %zu",
                            where, v->patch_size, v->image_size);
    if (v->hidden % v->heads)
        return rl_error_set(RL_ERR_FORMAT, "%s: num_attention_heads = %zu does not divide "
                            "hidden_size %zu", where, v->heads, v->hidden);
    if (!(v->layer_norm_eps > 0.0f) || !isfinite(v->layer_norm_eps))
        return rl_error_set(RL_ERR_FORMAT, "%s: layer_norm_eps = %g: expected a positive number",
                            where, (double)v->layer_norm_eps);
    if (!isfinite(v->layerscale_value))
        return rl_error_set(RL_ERR_FORMAT, "%s: layerscale_value is not finite", where);
    return RL_OK;
}

/* a number at key (absent or null: *out unchanged); integral when `whole` */
static int get_number(const cJSON *o, const char *key, const char *where, double lo, double hi,
                      bool whole, double *out)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);

    if (!it || cJSON_IsNull(it))
        return RL_OK;
    if (!cJSON_IsNumber(it) || !(it->valuedouble >= lo && it->valuedouble <= hi) ||
        (whole && it->valuedouble != floor(it->valuedouble)))
        return rl_error_set(RL_ERR_FORMAT, "%s: %s: expected %s in %g..%g", where, key,
                            whole ? "an integer" : "a number", lo, hi);
    *out = it->valuedouble;
    return RL_OK;
}

static int get_dim(const cJSON *o, const char *key, const char *where, size_t *out)
{
    double d = (double)*out;
    int rc = get_number(o, key, where, 0, (double)DIM_MAX, true, &d);

    *out = (size_t)d;
    return rc;
}

static int get_bool(const cJSON *o, const char *key, const char *where, bool *out)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);

    if (!it || cJSON_IsNull(it))
        return RL_OK;
    if (!cJSON_IsBool(it))
        return rl_error_set(RL_ERR_FORMAT, "%s: %s: expected true or false", where, key);
    *out = cJSON_IsTrue(it);
    return RL_OK;
}

static int parse_root(struct clip_config *c, const cJSON *root, const char *where)
{
    struct clip_vision_config *v = &c->vision;
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    double ratio = 4.0, eps = v->layer_norm_eps, ls = v->layerscale_value;
    bool swiglu = false;
    int rc;

    if (!cJSON_IsString(it) || (strcmp(it->valuestring, "dinov2") &&
                                strcmp(it->valuestring, "dinov2_with_registers")))
        return rl_error_set(RL_ERR_FORMAT, "%s: model_type: expected \"dinov2\" or "
                            "\"dinov2_with_registers\"", where);
    if (!strcmp(it->valuestring, "dinov2_with_registers"))
        v->register_tokens = 4;         /* Dinov2WithRegistersConfig's default */
    if ((rc = get_dim(root, "hidden_size", where, &v->hidden)) ||
        (rc = get_dim(root, "num_hidden_layers", where, &v->layers)) ||
        (rc = get_dim(root, "num_attention_heads", where, &v->heads)) ||
        (rc = get_dim(root, "image_size", where, &v->image_size)) ||
        (rc = get_dim(root, "patch_size", where, &v->patch_size)) ||
        (rc = get_dim(root, "num_channels", where, &v->num_channels)) ||
        (rc = get_dim(root, "num_register_tokens", where, &v->register_tokens)) ||
        (rc = get_number(root, "mlp_ratio", where, 1e-3, 1e3, false, &ratio)) ||
        (rc = get_number(root, "layer_norm_eps", where, 1e-30, 1.0, false, &eps)) ||
        (rc = get_number(root, "layerscale_value", where, -1e6, 1e6, false, &ls)) ||
        (rc = get_bool(root, "qkv_bias", where, &v->qkv_bias)) ||
        (rc = get_bool(root, "use_swiglu_ffn", where, &swiglu)))
        return rc;
    if (!strcmp(cJSON_GetObjectItemCaseSensitive(root, "model_type")->valuestring,
                "dinov2_with_registers") != (v->register_tokens > 0))
        return rl_error_set(RL_ERR_FORMAT, "%s: num_register_tokens = %zu: model_type "
                            "\"dinov2_with_registers\" needs at least 1, \"dinov2\" takes none",
                            where, v->register_tokens);
    if (swiglu)
        return rl_error_set(RL_ERR_FORMAT, "%s: use_swiglu_ffn = true (the giant models' SwiGLU "
                            "MLP) is not supported; dinov2-small, -base and -large use GELU",
                            where);
    it = cJSON_GetObjectItemCaseSensitive(root, "hidden_act");
    if (it && !cJSON_IsNull(it)) {
        if (cJSON_IsString(it) && !strcmp(it->valuestring, "gelu"))
            v->act = BLOCK_ACT_GELU;
        else if (cJSON_IsString(it) && !strcmp(it->valuestring, "quick_gelu"))
            v->act = BLOCK_ACT_QUICK_GELU;
        else
            return rl_error_set(RL_ERR_FORMAT, "%s: hidden_act: expected \"gelu\" or "
                                "\"quick_gelu\"", where);
    }
    /* HF: int(hidden_size * mlp_ratio) */
    v->intermediate = (size_t)((double)v->hidden * ratio);
    v->layer_norm_eps = (float)eps;
    v->layerscale_value = (float)ls;
    return RL_OK;
}

int dinov2_config_parse(struct clip_config *c, const char *json, size_t len, const char *where)
{
    cJSON *root = cJSON_ParseWithLength(json, len);
    int rc;

    dinov2_config_defaults(c);
    if (!root)
        return rl_error_set(RL_ERR_FORMAT, "%s: not valid JSON", where);
    if (!cJSON_IsObject(root))
        rc = rl_error_set(RL_ERR_FORMAT, "%s: expected a JSON object", where);
    else
        rc = parse_root(c, root, where);
    cJSON_Delete(root);
    return rc ? rc : validate(c, where);
}

int dinov2_config_load(struct clip_config *c, const char *path)
{
    char *json = NULL;
    size_t len = 0;
    int rc = rl_read_file(path, CONFIG_MAX_BYTES, &json, &len);

    if (rc)
        return rc;
    rc = dinov2_config_parse(c, json, len, path);
    free(json);
    return rc;
}

char *dinov2_config_to_json(const struct clip_config *c)
{
    const struct clip_vision_config *v = &c->vision;
    cJSON *root = cJSON_CreateObject(), *arch = cJSON_CreateArray();
    char *s;

    cJSON_AddItemToArray(arch, cJSON_CreateString(v->register_tokens ? "Dinov2WithRegistersModel"
                                                                     : "Dinov2Model"));
    cJSON_AddItemToObject(root, "architectures", arch);
    cJSON_AddStringToObject(root, "model_type",
                            v->register_tokens ? "dinov2_with_registers" : "dinov2");
    cJSON_AddNumberToObject(root, "hidden_size", (double)v->hidden);
    cJSON_AddNumberToObject(root, "num_hidden_layers", (double)v->layers);
    cJSON_AddNumberToObject(root, "num_attention_heads", (double)v->heads);
    cJSON_AddNumberToObject(root, "mlp_ratio", (double)v->intermediate / (double)v->hidden);
    cJSON_AddStringToObject(root, "hidden_act", v->act == BLOCK_ACT_GELU ? "gelu" : "quick_gelu");
    cJSON_AddNumberToObject(root, "layer_norm_eps", (double)v->layer_norm_eps);
    cJSON_AddNumberToObject(root, "image_size", (double)v->image_size);
    cJSON_AddNumberToObject(root, "patch_size", (double)v->patch_size);
    cJSON_AddNumberToObject(root, "num_channels", (double)v->num_channels);
    cJSON_AddBoolToObject(root, "qkv_bias", v->qkv_bias);
    cJSON_AddNumberToObject(root, "layerscale_value", (double)v->layerscale_value);
    cJSON_AddBoolToObject(root, "use_swiglu_ffn", false);
    if (v->register_tokens)
        cJSON_AddNumberToObject(root, "num_register_tokens", (double)v->register_tokens);
    s = cJSON_Print(root);
    cJSON_Delete(root);
    return s;
}

/* ------------------------------------------------------------------------ */
/* presets                                                                   */

static const char *const preset_names[] = {
    "vit-tiny", "dinov2-small", "dinov2-base", "dinov2-large", NULL,
};

const char *const *dinov2_preset_names(void)
{
    return preset_names;
}

bool dinov2_is_preset(const char *name)
{
    for (size_t i = 0; preset_names[i]; i++)
        if (!strcmp(preset_names[i], name))
            return true;
    return false;
}

int dinov2_config_preset(struct clip_config *c, const char *name)
{
    struct clip_vision_config *v = &c->vision;

    dinov2_config_defaults(c);
    v->image_size = 518;
    if (!strcmp(name, "vit-tiny")) {
        v->image_size = 32;
        v->patch_size = 4;
        v->hidden = 128;
        v->layers = 4;
        v->heads = 4;
        v->intermediate = 512;
        v->register_tokens = 1;
    } else if (!strcmp(name, "dinov2-small")) {
        v->hidden = 384;
        v->heads = 6;
        v->intermediate = 1536;
    } else if (!strcmp(name, "dinov2-base")) {
        /* the defaults */
    } else if (!strcmp(name, "dinov2-large")) {
        v->hidden = 1024;
        v->layers = 24;
        v->heads = 16;
        v->intermediate = 4096;
    } else {
        return rl_error_set(RL_ERR_ARG, "unknown DINOv2 preset '%s' (expected vit-tiny, "
                            "dinov2-small, dinov2-base or dinov2-large)", name);
    }
    return RL_OK;
}

/* ------------------------------------------------------------------------ */
/* the tensor table                                                          */

static size_t grid_positions(const struct clip_vision_config *v)
{
    size_t g = v->image_size / v->patch_size;

    return g * g + 1;
}

/* floats of one layer: the 16 block tensors, then ls1, ls2 */
static size_t layer_floats(const struct clip_vision_config *v)
{
    size_t s[BLOCK_NUM_PARAMS];

    return block_param_sizes(s, v->hidden, v->intermediate) + 2 * v->hidden;
}

size_t dinov2_config_n_params(const struct clip_config *c)
{
    const struct clip_vision_config *v = &c->vision;
    const size_t C = v->hidden;

    return v->layers * layer_floats(v) +
           C * (v->num_channels * v->patch_size * v->patch_size + 1) +   /* patch conv */
           C * (grid_positions(v) + 2 + v->register_tokens + 2);         /* pos, cls, mask,
                                                                            registers, LN */
}

static size_t table_add(struct clip_model *m, size_t *off, const char *name, int ndim,
                        int64_t s0, int64_t s1, int64_t s2, int64_t s3)
{
    struct clip_tensor *t = &m->tensors[m->n_tensors++];
    const int64_t s[4] = { s0, s1, s2, s3 };
    size_t at = *off;

    RL_ASSERT(strlen(name) < CLIP_MAX_NAME);
    snprintf(t->name, sizeof(t->name), "%s", name);
    t->ndim = ndim;
    t->numel = 1;
    for (int i = 0; i < 4; i++) {
        t->shape[i] = i < ndim ? s[i] : 0;
        if (i < ndim)
            RL_ASSERT(size_mul_ok(t->numel, (size_t)s[i], &t->numel));
    }
    t->offset = at;
    RL_ASSERT(size_add_ok(*off, t->numel, off));
    return at;
}

static void table_add_layer(struct clip_model *m, size_t *off, size_t l, bool qkv_bias)
{
    /* block.h order: ln1, q/k/v weights, q/k/v biases, out, ln2, fc1, fc2 */
    static const int is_matrix[BLOCK_NUM_PARAMS] = { 0, 0, 1, 1, 1, 0, 0, 0, 1, 0, 0, 0,
                                                     1, 0, 1, 0 };
    const int64_t C = (int64_t)m->cfg.vision.hidden, F = (int64_t)m->cfg.vision.intermediate;
    char name[CLIP_MAX_NAME];

    for (size_t i = 0; i < BLOCK_NUM_PARAMS; i++) {
        int64_t d0 = i == 12 || i == 13 ? F : C, d1 = i == 14 ? F : C;

        if (!qkv_bias && i >= 5 && i <= 7) {
            *off += (size_t)C;          /* no bias: zeros, not in the file */
            continue;
        }
        snprintf(name, sizeof(name), "encoder.layer.%zu.%s", l, layer_names[i]);
        table_add(m, off, name, is_matrix[i] ? 2 : 1, d0, d1, 0, 0);
    }
    snprintf(name, sizeof(name), "encoder.layer.%zu.layer_scale1.lambda1", l);
    table_add(m, off, name, 1, C, 0, 0, 0);
    snprintf(name, sizeof(name), "encoder.layer.%zu.layer_scale2.lambda1", l);
    table_add(m, off, name, 1, C, 0, 0, 0);
}

int dinov2_model_init(struct clip_model *m, const struct clip_config *cfg)
{
    const struct clip_vision_config *v = &cfg->vision;
    const int64_t C = (int64_t)v->hidden, ps = (int64_t)v->patch_size;
    const int64_t R = (int64_t)v->register_tokens;
    size_t off = 0, o_cls, o_mask, o_pos, o_reg = 0, o_pw, o_pb, o_layers, o_ln;
    int rc;

    memset(m, 0, sizeof(*m));
    if (cfg->arch != CLIP_ARCH_DINOV2)
        return rl_error_set(RL_ERR_ARG, "dinov2_model_init: not a DINOv2 config");
    if ((rc = validate(cfg, "dinov2 config")))
        return rc;
    m->cfg = *cfg;
    m->tensors = xcalloc(8 + (BLOCK_NUM_PARAMS + 2) * v->layers, sizeof(*m->tensors));
    o_cls = table_add(m, &off, "embeddings.cls_token", 3, 1, 1, C, 0);
    o_mask = table_add(m, &off, "embeddings.mask_token", 2, 1, C, 0, 0);
    o_pos = table_add(m, &off, "embeddings.position_embeddings", 3, 1,
                      (int64_t)grid_positions(v), C, 0);
    if (R)
        o_reg = table_add(m, &off, "embeddings.register_tokens", 3, 1, R, C, 0);
    o_pw = table_add(m, &off, "embeddings.patch_embeddings.projection.weight", 4, C,
                     (int64_t)v->num_channels, ps, ps);
    o_pb = table_add(m, &off, "embeddings.patch_embeddings.projection.bias", 1, C, 0, 0, 0);
    o_layers = off;
    for (size_t l = 0; l < v->layers; l++)
        table_add_layer(m, &off, l, v->qkv_bias);
    o_ln = table_add(m, &off, "layernorm.weight", 1, C, 0, 0, 0);
    table_add(m, &off, "layernorm.bias", 1, C, 0, 0, 0);

    m->n_params = off;
    m->params = xcalloc_aligned(off, sizeof(float));
    m->w.v_class = m->params + o_cls;
    m->w.v_mask = m->params + o_mask;
    m->w.v_pos = m->params + o_pos;
    m->w.v_registers = R ? m->params + o_reg : NULL;
    m->w.v_patch = m->params + o_pw;
    m->w.v_patch_b = m->params + o_pb;
    m->w.v_layers = m->params + o_layers;
    m->w.v_post_w = m->params + o_ln;
    m->w.v_post_b = m->params + o_ln + v->hidden;
    m->vlayer = xcalloc(v->layers, sizeof(*m->vlayer));
    for (size_t l = 0; l < v->layers; l++) {
        const float *base = m->w.v_layers + l * layer_floats(v);
        struct block_params *p = &m->vlayer[l];

        block_params_point(p, base, v->hidden, v->intermediate);
        p->ls1 = base + layer_floats(v) - 2 * v->hidden;
        p->ls2 = p->ls1 + v->hidden;
    }
    m->vblock = (struct block_config){ .C = v->hidden, .NH = v->heads, .F = v->intermediate,
                                       .act = v->act, .causal = false,
                                       .eps = v->layer_norm_eps };
    return RL_OK;
}

/* ------------------------------------------------------------------------ */
/* random init                                                               */

/* N(0, std^2) truncated to [-2 std, 2 std] (nn.init.trunc_normal_'s default
 * bounds a = -2, b = 2 at std 0.02 are 100 std: the same as plain normal in
 * practice; HF passes std only, so bounds are +-2 absolute) */
static void fill_trunc_normal(struct rng *r, float *x, size_t n, float std)
{
    for (size_t i = 0; i < n; i++) {
        float z;

        do
            z = rng_normal(r) * std;
        while (z < -2.0f || z > 2.0f);
        x[i] = z;
    }
}

static void fill_const(float *x, size_t n, float v)
{
    for (size_t i = 0; i < n; i++)
        x[i] = v;
}

void dinov2_model_init_random(struct clip_model *m, uint64_t seed)
{
    const struct clip_vision_config *v = &m->cfg.vision;
    const size_t C = v->hidden, F = v->intermediate;
    struct rng root, r;

    memset(m->params, 0, m->n_params * sizeof(float));
    rng_init(&root, seed);
    rng_split(&r, &root, 1);
    fill_trunc_normal(&r, m->w.v_pos, grid_positions(v) * C, 0.02f);
    fill_trunc_normal(&r, m->w.v_class, C, 0.02f);
    fill_trunc_normal(&r, m->w.v_patch, C * v->num_channels * v->patch_size * v->patch_size,
                      0.02f);
    fill_const(m->w.v_post_w, C, 1.0f);
    for (size_t l = 0; l < v->layers; l++) {
        const struct block_params *p = &m->vlayer[l];
        float *base = m->params;
        /* the layer's writable views (m->vlayer views the block const) */
#define W(ptr) (base + ((ptr) - base))
        rng_split(&r, &root, 100 + l);
        fill_const(W(p->ln1_w), C, 1.0f);
        fill_const(W(p->ln2_w), C, 1.0f);
        fill_trunc_normal(&r, W(p->q_w), C * C, 0.02f);
        fill_trunc_normal(&r, W(p->k_w), C * C, 0.02f);
        fill_trunc_normal(&r, W(p->v_w), C * C, 0.02f);
        fill_trunc_normal(&r, W(p->o_w), C * C, 0.02f);
        fill_trunc_normal(&r, W(p->fc1_w), F * C, 0.02f);
        fill_trunc_normal(&r, W(p->fc2_w), C * F, 0.02f);
        fill_const(W(p->ls1), C, v->layerscale_value);
        fill_const(W(p->ls2), C, v->layerscale_value);
#undef W
    }
}

int dinov2_model_preset(struct clip_model *m, const char *name, uint64_t seed)
{
    struct clip_config c;
    int rc;

    memset(m, 0, sizeof(*m));
    if ((rc = dinov2_config_preset(&c, name)) || (rc = dinov2_model_init(m, &c)))
        return rc;
    dinov2_model_init_random(m, seed);
    return RL_OK;
}

/* ------------------------------------------------------------------------ */
/* directories                                                               */

static char *join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = xmalloc(n);

    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

int dinov2_model_load(struct clip_model *m, const char *dir)
{
    char *path = join(dir, "config.json");
    struct clip_config cfg;
    int rc = dinov2_config_load(&cfg, path);

    free(path);
    memset(m, 0, sizeof(*m));
    if (rc || (rc = dinov2_model_init(m, &cfg)))
        return rc;
    path = join(dir, "model.safetensors");
    if ((rc = clip_model_load_weights(m, path)))
        clip_model_free(m);
    free(path);
    return rc;
}

int dinov2_model_save(const struct clip_model *m, const char *dir, int dtype)
{
    return clip_model_save(m, dir, dtype);      /* clip_config_to_json dispatches */
}

/* model_type of a config.json, "" when absent (RL_OK), or an error */
static int model_type(const char *path, char *out, size_t size)
{
    char *json = NULL;
    size_t len = 0;
    cJSON *root;
    const cJSON *it;
    int rc = rl_read_file(path, CONFIG_MAX_BYTES, &json, &len);

    out[0] = '\0';
    if (rc)
        return rc;
    if ((root = cJSON_ParseWithLength(json, len))) {
        it = cJSON_GetObjectItemCaseSensitive(root, "model_type");
        if (cJSON_IsString(it))
            snprintf(out, size, "%s", it->valuestring);
        cJSON_Delete(root);
    }
    free(json);
    return RL_OK;               /* a parse error is the parser's to report */
}

static bool is_dinov2_type(const char *t)
{
    return !strcmp(t, "dinov2") || !strcmp(t, "dinov2_with_registers");
}

int backbone_config_load(struct clip_config *c, const char *config_path)
{
    char t[64];
    int rc = model_type(config_path, t, sizeof(t));

    if (rc)
        return rc;
    return is_dinov2_type(t) ? dinov2_config_load(c, config_path)
                             : clip_config_load(c, config_path);
}

int backbone_config_load_dir(struct clip_config *c, const char *dir, enum clip_layout *layout)
{
    enum clip_layout l;
    char *cpath;
    int rc;

    if ((rc = clip_dir_layout(dir, &l)))
        return rc;
    if (l != CLIP_LAYOUT_HF)                 /* open_clip: CLIP only */
        return clip_config_load_dir(c, dir, layout);
    if (layout)
        *layout = l;
    cpath = join(dir, "config.json");
    rc = backbone_config_load(c, cpath);
    free(cpath);
    return rc;
}

int backbone_model_load(struct clip_model *m, const char *dir)
{
    enum clip_layout l;
    char *cpath, t[64];
    int rc;

    memset(m, 0, sizeof(*m));
    if ((rc = clip_dir_layout(dir, &l)))
        return rc;
    if (l != CLIP_LAYOUT_HF)                 /* open_clip: CLIP only */
        return clip_model_load(m, dir);
    cpath = join(dir, "config.json");
    rc = model_type(cpath, t, sizeof(t));
    free(cpath);
    if (rc)
        return rc;
    return is_dinov2_type(t) ? dinov2_model_load(m, dir) : clip_model_load(m, dir);
}

int dinov2_set_input_size(struct clip_model *m, size_t S)
{
    struct clip_vision_config *v = &m->cfg.vision;

    if (S == 0)
        S = v->image_size;
    if (S % v->patch_size || S > DIM_MAX)
        return rl_error_set(RL_ERR_ARG, "image size %zu: a DINOv2 model with patch size %zu "
                            "takes sizes that are multiples of it", S, v->patch_size);
    v->input_size = S;
    return RL_OK;
}
