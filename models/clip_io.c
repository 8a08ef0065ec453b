/*
 * clip_io.c: the CLIP configuration (HF CLIPConfig config.json, read and
 * written with cJSON), the tensor table that lays every frozen weight out
 * in one block under its HF key, and loading / saving a model directory
 * (config.json + model.safetensors).
 */
#include "models/clip.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/alloc.h"
#include "core/read_file.h"
#include "core/status.h"
#include "formats/safetensors.h"
#include "models/dinov2.h"

#define CONFIG_MAX_BYTES ((size_t)16 << 20)   /* a config.json is a few KB  */
#define DIM_MAX          ((size_t)1 << 20)    /* any one size in a config   */
#define LAYERS_MAX       ((size_t)1024)

/* ------------------------------------------------------------------------ */
/* configuration                                                             */

void clip_config_defaults(struct clip_config *c)
{
    memset(c, 0, sizeof(*c));
    c->vision = (struct clip_vision_config){
        .image_size = 224, .patch_size = 32, .num_channels = 3, .hidden = 768,
        .layers = 12, .heads = 12, .intermediate = 3072, .act = BLOCK_ACT_QUICK_GELU,
        .layer_norm_eps = 1e-5f,
    };
    c->text = (struct clip_text_config){
        .vocab_size = 49408, .context = 77, .hidden = 512, .layers = 12, .heads = 8,
        .intermediate = 2048, .act = BLOCK_ACT_QUICK_GELU, .layer_norm_eps = 1e-5f,
        .bos_token_id = 49406, .eos_token_id = 49407, .pad_token_id = 1,
    };
    c->projection_dim = 512;
    c->logit_scale_init = 2.6592f;
}

size_t clip_vision_tokens(const struct clip_vision_config *v)
{
    size_t g = (v->input_size ? v->input_size : v->image_size) / v->patch_size;

    return g * g + 1 + v->register_tokens;
}

/* a * b + c over size_t, saturating at SIZE_MAX */
static size_t sat_muladd(size_t a, size_t b, size_t c)
{
    size_t r;

    if (!size_mul_ok(a, b, &r) || !size_add_ok(r, c, &r))
        return SIZE_MAX;
    return r;
}

size_t clip_config_n_params(const struct clip_config *c)
{
    const struct clip_vision_config *v = &c->vision;
    const struct clip_text_config *t = &c->text;
    size_t sizes[BLOCK_NUM_PARAMS], n = 1;       /* logit_scale */
    size_t T = clip_vision_tokens(v);

    n = sat_muladd(v->layers, block_param_sizes(sizes, v->hidden, v->intermediate), n);
    n = sat_muladd(t->layers, block_param_sizes(sizes, t->hidden, t->intermediate), n);
    n = sat_muladd(v->hidden, sat_muladd(v->num_channels, v->patch_size * v->patch_size, 0), n);
    n = sat_muladd(v->hidden, T + 1 + 4 + c->projection_dim, n);   /* pos, class, 2 LNs, proj */
    n = sat_muladd(t->hidden, t->vocab_size + t->context + 2 + c->projection_dim, n);
    return n;
}

/* a positive size at most `max`, or an error naming section.key */
static int check_dim(size_t v, size_t max, const char *where, const char *sec, const char *key)
{
    if (v == 0 || v > max)
        return rl_error_set(RL_ERR_FORMAT, "%s: %s.%s = %zu: expected an integer in 1..%zu",
                            where, sec, key, v, max);
    return RL_OK;
}

int clip_config_validate(const struct clip_config *c, const char *where)
{
    const struct clip_vision_config *v = &c->vision;
    const struct clip_text_config *t = &c->text;
    int rc;

#define DIM(sec, s, field, key, max) \
    if ((rc = check_dim((s)->field, (max), where, sec, key))) return rc
    DIM("vision_config", v, image_size, "image_size", DIM_MAX);
    DIM("vision_config", v, patch_size, "patch_size", DIM_MAX);
    DIM("vision_config", v, num_channels, "num_channels", 64);
    DIM("vision_config", v, hidden, "hidden_size", DIM_MAX);
    DIM("vision_config", v, layers, "num_hidden_layers", LAYERS_MAX);
    DIM("vision_config", v, heads, "num_attention_heads", DIM_MAX);
    DIM("vision_config", v, intermediate, "intermediate_size", DIM_MAX);
    DIM("text_config", t, vocab_size, "vocab_size", (size_t)1 << 24);
    DIM("text_config", t, context, "max_position_embeddings", DIM_MAX);
    DIM("text_config", t, hidden, "hidden_size", DIM_MAX);
    DIM("text_config", t, layers, "num_hidden_layers", LAYERS_MAX);
    DIM("text_config", t, heads, "num_attention_heads", DIM_MAX);
    DIM("text_config", t, intermediate, "intermediate_size", DIM_MAX);
#undef DIM
    if (c->projection_dim == 0 || c->projection_dim > DIM_MAX)
        return rl_error_set(RL_ERR_FORMAT, "%s: projection_dim = %zu: expected an integer in "
                            "1..%zu", where, c->projection_dim, DIM_MAX);
    if (v->image_size % v->patch_size)
        return rl_error_set(RL_ERR_FORMAT, "%s: vision_config.patch_size = %zu does not divide "
                            "image_size %zu", where, v->patch_size, v->image_size);
    if (v->hidden % v->heads)
        return rl_error_set(RL_ERR_FORMAT, "%s: vision_config.num_attention_heads = %zu does not "
                            "divide hidden_size %zu", where, v->heads, v->hidden);
    if (t->hidden % t->heads)
        return rl_error_set(RL_ERR_FORMAT, "%s: text_config.num_attention_heads = %zu does not "
                            "divide hidden_size %zu", where, t->heads, t->hidden);
    if (t->eos_token_id < 0 || (uint64_t)t->eos_token_id >= t->vocab_size)
        return rl_error_set(RL_ERR_FORMAT, "%s: text_config.eos_token_id = %lld outside the "
                            "vocabulary (0..%zu)", where, (long long)t->eos_token_id,
                            t->vocab_size - 1);
    if (!(v->layer_norm_eps > 0.0f) || !isfinite(v->layer_norm_eps))
        return rl_error_set(RL_ERR_FORMAT, "%s: vision_config.layer_norm_eps = %g: expected a "
                            "positive number", where, (double)v->layer_norm_eps);
    if (!(t->layer_norm_eps > 0.0f) || !isfinite(t->layer_norm_eps))
        return rl_error_set(RL_ERR_FORMAT, "%s: text_config.layer_norm_eps = %g: expected a "
                            "positive number", where, (double)t->layer_norm_eps);
    if (!isfinite(c->logit_scale_init))
        return rl_error_set(RL_ERR_FORMAT, "%s: logit_scale_init_value is not finite", where);
    return RL_OK;
}

/* ---- reading ------------------------------------------------------------ */

struct jctx {
    const char *where;
    const char *sec;            /* "vision_config", "text_config" or ""      */
};

static const char *dot(const struct jctx *j)
{
    return j->sec[0] ? "." : "";
}

/* an integer-valued number in [lo, hi] into *out, when the key is present
 * (null counts as absent) */
static int get_int(const struct jctx *j, const cJSON *o, const char *key, double lo, double hi,
                   int64_t *out)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    double d;

    if (!it || cJSON_IsNull(it))
        return RL_OK;
    if (!cJSON_IsNumber(it))
        return rl_error_set(RL_ERR_FORMAT, "%s: %s%s%s: expected an integer", j->where, j->sec,
                            dot(j), key);
    d = it->valuedouble;
    if (!(d >= lo && d <= hi) || d != floor(d))
        return rl_error_set(RL_ERR_FORMAT, "%s: %s%s%s = %g: expected an integer in %.0f..%.0f",
                            j->where, j->sec, dot(j), key, d, lo, hi);
    *out = (int64_t)d;
    return RL_OK;
}

static int get_size(const struct jctx *j, const cJSON *o, const char *key, size_t *out)
{
    int64_t v = (int64_t)*out;
    int rc = get_int(j, o, key, 1, (double)((size_t)1 << 30), &v);

    if (rc == RL_OK)
        *out = (size_t)v;
    return rc;
}

static int get_float(const struct jctx *j, const cJSON *o, const char *key, float *out)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);

    if (!it || cJSON_IsNull(it))
        return RL_OK;
    if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble) || fabs(it->valuedouble) > 1e30)
        return rl_error_set(RL_ERR_FORMAT, "%s: %s%s%s: expected a finite number", j->where,
                            j->sec, dot(j), key);
    *out = (float)it->valuedouble;
    return RL_OK;
}

static int get_act(const struct jctx *j, const cJSON *o, enum block_act *out)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, "hidden_act");

    if (!it || cJSON_IsNull(it))
        return RL_OK;
    if (cJSON_IsString(it) && strcmp(it->valuestring, "quick_gelu") == 0)
        *out = BLOCK_ACT_QUICK_GELU;
    else if (cJSON_IsString(it) && strcmp(it->valuestring, "gelu") == 0)
        *out = BLOCK_ACT_GELU;
    else
        return rl_error_set(RL_ERR_FORMAT, "%s: %s%shidden_act = %s: expected \"quick_gelu\" "
                            "or \"gelu\"", j->where, j->sec, dot(j),
                            cJSON_IsString(it) ? it->valuestring : "(not a string)");
    return RL_OK;
}

static int parse_vision(struct clip_vision_config *v, const cJSON *o, const char *where)
{
    struct jctx j = { where, "vision_config" };
    int rc;

    if (!cJSON_IsObject(o))
        return rl_error_set(RL_ERR_FORMAT, "%s: vision_config: expected an object", where);
    if ((rc = get_size(&j, o, "image_size", &v->image_size)) ||
        (rc = get_size(&j, o, "patch_size", &v->patch_size)) ||
        (rc = get_size(&j, o, "num_channels", &v->num_channels)) ||
        (rc = get_size(&j, o, "hidden_size", &v->hidden)) ||
        (rc = get_size(&j, o, "num_hidden_layers", &v->layers)) ||
        (rc = get_size(&j, o, "num_attention_heads", &v->heads)) ||
        (rc = get_size(&j, o, "intermediate_size", &v->intermediate)) ||
        (rc = get_act(&j, o, &v->act)) ||
        (rc = get_float(&j, o, "layer_norm_eps", &v->layer_norm_eps)))
        return rc;
    return RL_OK;
}

static int parse_text(struct clip_text_config *t, const cJSON *o, const char *where)
{
    struct jctx j = { where, "text_config" };
    int rc;

    if (!cJSON_IsObject(o))
        return rl_error_set(RL_ERR_FORMAT, "%s: text_config: expected an object", where);
    if ((rc = get_size(&j, o, "vocab_size", &t->vocab_size)) ||
        (rc = get_size(&j, o, "max_position_embeddings", &t->context)) ||
        (rc = get_size(&j, o, "hidden_size", &t->hidden)) ||
        (rc = get_size(&j, o, "num_hidden_layers", &t->layers)) ||
        (rc = get_size(&j, o, "num_attention_heads", &t->heads)) ||
        (rc = get_size(&j, o, "intermediate_size", &t->intermediate)) ||
        (rc = get_act(&j, o, &t->act)) ||
        (rc = get_float(&j, o, "layer_norm_eps", &t->layer_norm_eps)) ||
        (rc = get_int(&j, o, "bos_token_id", -1, 2147483647.0, &t->bos_token_id)) ||
        (rc = get_int(&j, o, "eos_token_id", -1, 2147483647.0, &t->eos_token_id)) ||
        (rc = get_int(&j, o, "pad_token_id", -1, 2147483647.0, &t->pad_token_id)))
        return rc;
    return RL_OK;
}

int clip_config_parse(struct clip_config *c, const char *json, size_t len, const char *where)
{
    struct jctx j = { where, "" };
    cJSON *root = cJSON_ParseWithLength(json, len);
    const cJSON *it;
    int64_t pd;
    int rc = RL_OK;

    clip_config_defaults(c);
    if (!root)
        return rl_error_set(RL_ERR_FORMAT, "%s: not valid JSON", where);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return rl_error_set(RL_ERR_FORMAT, "%s: expected a JSON object", where);
    }
    /* HF: text_config, then a legacy text_config_dict overriding it */
    if ((it = cJSON_GetObjectItemCaseSensitive(root, "text_config")) && !cJSON_IsNull(it))
        rc = parse_text(&c->text, it, where);
    if (!rc && (it = cJSON_GetObjectItemCaseSensitive(root, "text_config_dict")) &&
        !cJSON_IsNull(it))
        rc = parse_text(&c->text, it, where);
    if (!rc && (it = cJSON_GetObjectItemCaseSensitive(root, "vision_config")) &&
        !cJSON_IsNull(it))
        rc = parse_vision(&c->vision, it, where);
    if (!rc && (it = cJSON_GetObjectItemCaseSensitive(root, "vision_config_dict")) &&
        !cJSON_IsNull(it))
        rc = parse_vision(&c->vision, it, where);
    pd = (int64_t)c->projection_dim;
    if (!rc && !(rc = get_int(&j, root, "projection_dim", 1, (double)DIM_MAX, &pd)))
        c->projection_dim = (size_t)pd;
    if (!rc)
        rc = get_float(&j, root, "logit_scale_init_value", &c->logit_scale_init);
    cJSON_Delete(root);
    if (rc)
        return rc;
    return clip_config_validate(c, where);
}

int clip_config_load(struct clip_config *c, const char *path)
{
    char *json = NULL;
    size_t len = 0;
    int rc = rl_read_file(path, CONFIG_MAX_BYTES, &json, &len);

    if (rc)
        return rc;
    rc = clip_config_parse(c, json, len, path);
    free(json);
    return rc;
}

/* ---- writing ------------------------------------------------------------ */

/* the shortest decimal that reads back as the same float, as a double
 * (so 1e-5f is written 1e-05, not 9.99999974737875e-06) */
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

static const char *act_name(enum block_act a)
{
    return a == BLOCK_ACT_GELU ? "gelu" : "quick_gelu";
}

static void add_num(cJSON *o, const char *key, double v)
{
    cJSON_AddItemToObject(o, key, cJSON_CreateNumber(v));
}

char *clip_config_to_json(const struct clip_config *c)
{
    if (c->arch == CLIP_ARCH_DINOV2)
        return dinov2_config_to_json(c);

    cJSON *root = cJSON_CreateObject(), *t = cJSON_CreateObject(), *v = cJSON_CreateObject();
    cJSON *arch = cJSON_CreateArray();
    char *s;

    RL_ASSERT(root && t && v && arch);
    cJSON_AddItemToArray(arch, cJSON_CreateString("CLIPModel"));
    cJSON_AddItemToObject(root, "architectures", arch);
    cJSON_AddStringToObject(root, "model_type", "clip");
    add_num(root, "projection_dim", (double)c->projection_dim);
    add_num(root, "logit_scale_init_value", short_double(c->logit_scale_init));
    cJSON_AddStringToObject(root, "torch_dtype", "float32");

    add_num(t, "vocab_size", (double)c->text.vocab_size);
    add_num(t, "max_position_embeddings", (double)c->text.context);
    add_num(t, "hidden_size", (double)c->text.hidden);
    add_num(t, "intermediate_size", (double)c->text.intermediate);
    add_num(t, "num_hidden_layers", (double)c->text.layers);
    add_num(t, "num_attention_heads", (double)c->text.heads);
    cJSON_AddStringToObject(t, "hidden_act", act_name(c->text.act));
    add_num(t, "layer_norm_eps", short_double(c->text.layer_norm_eps));
    add_num(t, "bos_token_id", (double)c->text.bos_token_id);
    add_num(t, "eos_token_id", (double)c->text.eos_token_id);
    add_num(t, "pad_token_id", (double)c->text.pad_token_id);
    add_num(t, "projection_dim", (double)c->projection_dim);
    cJSON_AddStringToObject(t, "model_type", "clip_text_model");
    cJSON_AddItemToObject(root, "text_config", t);

    add_num(v, "image_size", (double)c->vision.image_size);
    add_num(v, "patch_size", (double)c->vision.patch_size);
    add_num(v, "num_channels", (double)c->vision.num_channels);
    add_num(v, "hidden_size", (double)c->vision.hidden);
    add_num(v, "intermediate_size", (double)c->vision.intermediate);
    add_num(v, "num_hidden_layers", (double)c->vision.layers);
    add_num(v, "num_attention_heads", (double)c->vision.heads);
    cJSON_AddStringToObject(v, "hidden_act", act_name(c->vision.act));
    add_num(v, "layer_norm_eps", short_double(c->vision.layer_norm_eps));
    add_num(v, "projection_dim", (double)c->projection_dim);
    cJSON_AddStringToObject(v, "model_type", "clip_vision_model");
    cJSON_AddItemToObject(root, "vision_config", v);

    s = cJSON_Print(root);
    RL_ASSERT(s != NULL);
    cJSON_Delete(root);
    return s;
}

int clip_config_save(const struct clip_config *c, const char *path)
{
    char *s = clip_config_to_json(c);
    int rc = rl_write_text_atomic(path, s);

    cJSON_free(s);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* the tensor table and the block                                            */

#define CLIP_NUM_VIEWS 16

/* the members of struct clip_weights, in table order */
static void weights_slots(struct clip_weights *w, float **slots[CLIP_NUM_VIEWS])
{
    float **s[CLIP_NUM_VIEWS] = {
        &w->v_patch, &w->v_class, &w->v_pos, &w->v_pre_w, &w->v_pre_b, &w->v_layers,
        &w->v_post_w, &w->v_post_b, &w->t_tok, &w->t_pos, &w->t_layers, &w->t_final_w,
        &w->t_final_b, &w->v_proj, &w->t_proj, &w->logit_scale,
    };

    memcpy(slots, s, sizeof(s));
}

static void weights_point(struct clip_weights *w, float *base, const size_t *off)
{
    float **slots[CLIP_NUM_VIEWS];

    weights_slots(w, slots);
    for (int i = 0; i < CLIP_NUM_VIEWS; i++)
        *slots[i] = base + off[i];
}

static size_t mul_or_die(size_t a, size_t b)
{
    size_t r;

    RL_ASSERT(size_mul_ok(a, b, &r));
    return r;
}

/* append a table entry at the running offset; returns its offset */
static size_t table_add(struct clip_model *m, size_t *off, const char *name, int ndim,
                        int64_t s0, int64_t s1, int64_t s2, int64_t s3)
{
    struct clip_tensor *t = &m->tensors[m->n_tensors++];
    const int64_t s[4] = { s0, s1, s2, s3 };
    size_t numel = 1, at = *off;

    RL_ASSERT(strlen(name) < CLIP_MAX_NAME);
    snprintf(t->name, sizeof(t->name), "%s", name);
    t->ndim = ndim;
    for (int i = 0; i < 4; i++) {
        t->shape[i] = i < ndim ? s[i] : 0;
        if (i < ndim)
            numel = mul_or_die(numel, (size_t)s[i]);
    }
    t->numel = numel;
    t->offset = at;
    RL_ASSERT(size_add_ok(*off, numel, off));
    return at;
}

/* the 16 tensors of one encoder layer, in block.h order */
static void table_add_layer(struct clip_model *m, size_t *off, const char *tower, size_t l,
                            size_t C, size_t F)
{
    static const int is_matrix[BLOCK_NUM_PARAMS] = { 0, 0, 1, 1, 1, 0, 0, 0, 1, 0, 0, 0,
                                                     1, 0, 1, 0 };
    char name[CLIP_MAX_NAME];

    for (size_t i = 0; i < BLOCK_NUM_PARAMS; i++) {
        int64_t d0 = (int64_t)C, d1 = (int64_t)C;

        if (i == 12 || i == 13)         /* mlp.fc1: (F, C), (F) */
            d0 = (int64_t)F;
        if (i == 14)                    /* mlp.fc2: (C, F)      */
            d1 = (int64_t)F;
        snprintf(name, sizeof(name), "%s.encoder.layers.%zu.%s", tower, l, block_param_names[i]);
        table_add(m, off, name, is_matrix[i] ? 2 : 1, d0, d1, 0, 0);
    }
}

int clip_model_init(struct clip_model *m, const struct clip_config *cfg)
{
    const struct clip_vision_config *v = &cfg->vision;
    const struct clip_text_config *t = &cfg->text;
    size_t off = 0, *vo = m->view_offset, n_tab;
    int rc;

    memset(m, 0, sizeof(*m));
    if ((rc = clip_config_validate(cfg, "clip config")))
        return rc;
    m->cfg = *cfg;
    n_tab = 14 + BLOCK_NUM_PARAMS * (v->layers + t->layers);
    m->tensors = xcalloc(n_tab, sizeof(*m->tensors));

    const int64_t Cv = (int64_t)v->hidden, Ct = (int64_t)t->hidden;
    const int64_t D = (int64_t)cfg->projection_dim, ps = (int64_t)v->patch_size;
    const int64_t T = (int64_t)clip_vision_tokens(v);

    vo[0] = table_add(m, &off, "vision_model.embeddings.patch_embedding.weight", 4, Cv,
                      (int64_t)v->num_channels, ps, ps);
    vo[1] = table_add(m, &off, "vision_model.embeddings.class_embedding", 1, Cv, 0, 0, 0);
    vo[2] = table_add(m, &off, "vision_model.embeddings.position_embedding.weight", 2, T, Cv,
                      0, 0);
    vo[3] = table_add(m, &off, "vision_model.pre_layrnorm.weight", 1, Cv, 0, 0, 0);
    vo[4] = table_add(m, &off, "vision_model.pre_layrnorm.bias", 1, Cv, 0, 0, 0);
    vo[5] = off;
    for (size_t l = 0; l < v->layers; l++)
        table_add_layer(m, &off, "vision_model", l, v->hidden, v->intermediate);
    vo[6] = table_add(m, &off, "vision_model.post_layernorm.weight", 1, Cv, 0, 0, 0);
    vo[7] = table_add(m, &off, "vision_model.post_layernorm.bias", 1, Cv, 0, 0, 0);
    vo[8] = table_add(m, &off, "text_model.embeddings.token_embedding.weight", 2,
                      (int64_t)t->vocab_size, Ct, 0, 0);
    vo[9] = table_add(m, &off, "text_model.embeddings.position_embedding.weight", 2,
                      (int64_t)t->context, Ct, 0, 0);
    vo[10] = off;
    for (size_t l = 0; l < t->layers; l++)
        table_add_layer(m, &off, "text_model", l, t->hidden, t->intermediate);
    vo[11] = table_add(m, &off, "text_model.final_layer_norm.weight", 1, Ct, 0, 0, 0);
    vo[12] = table_add(m, &off, "text_model.final_layer_norm.bias", 1, Ct, 0, 0, 0);
    vo[13] = table_add(m, &off, "visual_projection.weight", 2, D, Cv, 0, 0);
    vo[14] = table_add(m, &off, "text_projection.weight", 2, D, Ct, 0, 0);
    vo[15] = table_add(m, &off, "logit_scale", 0, 0, 0, 0, 0);
    RL_ASSERT(m->n_tensors == n_tab);

    m->n_params = off;
    m->params = xcalloc_aligned(off, sizeof(float));
    weights_point(&m->w, m->params, vo);

    const size_t vl = block_param_sizes((size_t[BLOCK_NUM_PARAMS]){ 0 }, v->hidden,
                                        v->intermediate);
    const size_t tl = block_param_sizes((size_t[BLOCK_NUM_PARAMS]){ 0 }, t->hidden,
                                        t->intermediate);
    m->vlayer = xcalloc(v->layers, sizeof(*m->vlayer));
    m->tlayer = xcalloc(t->layers, sizeof(*m->tlayer));
    for (size_t l = 0; l < v->layers; l++)
        block_params_point(&m->vlayer[l], m->w.v_layers + l * vl, v->hidden, v->intermediate);
    for (size_t l = 0; l < t->layers; l++)
        block_params_point(&m->tlayer[l], m->w.t_layers + l * tl, t->hidden, t->intermediate);
    m->vblock = (struct block_config){ .C = v->hidden, .NH = v->heads, .F = v->intermediate,
                                       .act = v->act, .causal = false,
                                       .eps = v->layer_norm_eps };
    m->tblock = (struct block_config){ .C = t->hidden, .NH = t->heads, .F = t->intermediate,
                                       .act = t->act, .causal = true,
                                       .eps = t->layer_norm_eps };
    return RL_OK;
}

void clip_model_free(struct clip_model *m)
{
    /* released fp32 linears (clip_model_linears_to_bf16): poisoned under
     * AddressSanitizer until the block is freed */
    for (size_t k = 0; k < m->n_released; k++)
        mem_unpoison(m->params + m->released[2 * k], m->released[2 * k + 1] * sizeof(float));
    free(m->released);
    free(m->w_bf16);
    free(m->params);
    free(m->tensors);
    free(m->vlayer);
    free(m->tlayer);
    memset(m, 0, sizeof(*m));
}

const struct clip_tensor *clip_model_find(const struct clip_model *m, const char *name)
{
    for (size_t i = 0; i < m->n_tensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0)
            return &m->tensors[i];
    return NULL;
}

float *clip_model_tensor(const struct clip_model *m, const char *name)
{
    const struct clip_tensor *t = clip_model_find(m, name);

    /* a weight given back under bf16 (clip_model_linears_to_bf16) has no
     * fp32 values to return */
    RL_ASSERT(!t || !clip_model_range_released(m, t->offset, t->numel));
    return t ? m->params + t->offset : NULL;
}

void clip_grads_init(struct clip_grads *g, const struct clip_model *m)
{
    const struct clip_config *c = &m->cfg;
    const size_t vl = block_param_sizes((size_t[BLOCK_NUM_PARAMS]){ 0 }, c->vision.hidden,
                                        c->vision.intermediate);
    const size_t tl = block_param_sizes((size_t[BLOCK_NUM_PARAMS]){ 0 }, c->text.hidden,
                                        c->text.intermediate);

    memset(g, 0, sizeof(*g));
    g->buf = xcalloc_aligned(m->n_params, sizeof(float));
    weights_point(&g->w, g->buf, m->view_offset);
    g->vlayer = xcalloc(c->vision.layers, sizeof(*g->vlayer));
    g->tlayer = xcalloc(c->text.layers, sizeof(*g->tlayer));
    for (size_t l = 0; l < c->vision.layers; l++)
        block_grads_point(&g->vlayer[l], g->w.v_layers + l * vl, c->vision.hidden,
                          c->vision.intermediate);
    for (size_t l = 0; l < c->text.layers; l++)
        block_grads_point(&g->tlayer[l], g->w.t_layers + l * tl, c->text.hidden,
                          c->text.intermediate);
}

void clip_grads_free(struct clip_grads *g)
{
    free(g->buf);
    free(g->vlayer);
    free(g->tlayer);
    memset(g, 0, sizeof(*g));
}

void clip_grads_zero(struct clip_grads *g, const struct clip_model *m)
{
    memset(g->buf, 0, m->n_params * sizeof(float));
}

/* ------------------------------------------------------------------------ */
/* model directories                                                         */

/* dir + "/" + file, malloc'd */
static char *join(const char *dir, const char *file)
{
    size_t n = strlen(dir) + strlen(file) + 2;
    char *p = xmalloc(n);

    snprintf(p, n, "%s/%s", dir, file);
    return p;
}

int clip_model_load_weights(struct clip_model *m, const char *path)
{
    return clip_model_load_weights_as(m, path, CLIP_LAYOUT_HF);
}

int clip_model_load(struct clip_model *m, const char *dir)
{
    struct clip_config cfg;
    enum clip_layout layout = CLIP_LAYOUT_HF;
    char *wpath;
    int rc;

    memset(m, 0, sizeof(*m));
    if ((rc = clip_config_load_dir(&cfg, dir, &layout)))
        return rc;
    if ((rc = clip_model_init(m, &cfg)))
        return rc;
    m->layout = layout;
    wpath = clip_dir_file(dir, layout, true);
    rc = clip_model_load_weights_as(m, wpath, layout);
    if (rc)
        clip_model_free(m);
    free(wpath);
    return rc;
}

int clip_model_save(const struct clip_model *m, const char *dir, int dtype)
{
    struct st_writer *w;
    char *cpath, *wpath;
    int rc = RL_OK;

    if (dtype != ST_F32 && dtype != ST_F16 && dtype != ST_BF16)
        return rl_error_set(RL_ERR_ARG, "%s: weights can be saved as F32, F16 or BF16", dir);
    RL_ASSERT(m->n_released == 0);      /* no fp32 linears to save (bf16 run) */
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return rl_error_set(RL_ERR_IO, "%s: cannot create: %s", dir, strerror(errno));
    cpath = join(dir, "config.json");
    wpath = join(dir, "model.safetensors");
    w = st_writer_new();
    for (size_t i = 0; i < m->n_tensors && rc == RL_OK; i++) {
        const struct clip_tensor *t = &m->tensors[i];

        rc = st_writer_add(w, t->name, m->params + t->offset, t->ndim, t->shape,
                           (enum st_dtype)dtype);
    }
    if (!rc)
        rc = st_writer_set_metadata(w, "format", "pt");
    if (!rc)
        rc = st_writer_write(w, wpath);
    if (!rc)
        rc = clip_config_save(&m->cfg, cpath);
    st_writer_free(w);
    free(cpath);
    free(wpath);
    return rc;
}
