/*
 * clip_openclip_config.c: open_clip's model config, as the hub's
 * open_clip_config.json carries it ({"model_cfg": ..., "preprocess_cfg":
 * ...}, written by open_clip's push_to_hf_hub.save_config_for_hf) or as a
 * bare model_cfg (the JSON files of open_clip's model_configs directory), read into and written
 * from struct clip_config (models/clip.h).
 *
 * The keys and defaults are open_clip's dataclasses CLIPVisionCfg and
 * CLIPTextCfg (src/open_clip/model.py): vision layers 12, width 768,
 * head_width 64 (heads = width / head_width), mlp_ratio 4.0, patch_size 16,
 * image_size 224; text context_length 77, vocab_size 49408, width 512,
 * heads 8, layers 12, mlp_ratio 4.0 (MLP width = int(width * mlp_ratio));
 * model_cfg quick_gelu false (nn.GELU, exact) or true (QuickGELU), for
 * both towers; LayerNorm eps 1e-5 (torch's default). Settings that build
 * something other than CLIP's towers are refused by name.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/status.h"
#include "models/clip.h"

#define OC_DIM_MAX ((double)(1u << 20))

struct occtx {
    const char *where;
    const char *sec;                /* "model_cfg.vision_cfg", ...          */
};

static const cJSON *item(const cJSON *o, const char *key)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);

    return it && !cJSON_IsNull(it) ? it : NULL;
}

/* a positive integer <= max, when present */
static int oc_size(const struct occtx *j, const cJSON *o, const char *key, double max,
                   size_t *out)
{
    const cJSON *it = item(o, key);
    double d;

    if (!it)
        return RL_OK;
    d = cJSON_IsNumber(it) ? it->valuedouble : -1.0;
    if (!(d >= 1.0 && d <= max) || d != floor(d))
        return rl_error_set(RL_ERR_FORMAT, "%s: %s.%s: expected an integer in 1..%.0f",
                            j->where, j->sec, key, max);
    *out = (size_t)d;
    return RL_OK;
}

/* a finite positive number, when present */
static int oc_ratio(const struct occtx *j, const cJSON *o, const char *key, double *out)
{
    const cJSON *it = item(o, key);

    if (!it)
        return RL_OK;
    if (!cJSON_IsNumber(it) || !(it->valuedouble > 0.0 && it->valuedouble <= 1024.0))
        return rl_error_set(RL_ERR_FORMAT, "%s: %s.%s: expected a number in (0, 1024]",
                            j->where, j->sec, key);
    *out = it->valuedouble;
    return RL_OK;
}

/* image_size: an integer, or [h, w] with h == w */
static int oc_image_size(const struct occtx *j, const cJSON *o, size_t *out)
{
    const cJSON *it = item(o, "image_size");

    if (it && cJSON_IsArray(it)) {
        const cJSON *h = cJSON_GetArrayItem(it, 0), *w = cJSON_GetArrayItem(it, 1);

        if (cJSON_GetArraySize(it) != 2 || !cJSON_IsNumber(h) || !cJSON_IsNumber(w) ||
            h->valuedouble != w->valuedouble || !(h->valuedouble >= 1.0) ||
            h->valuedouble > OC_DIM_MAX || h->valuedouble != floor(h->valuedouble))
            return rl_error_set(RL_ERR_FORMAT, "%s: %s.image_size: expected an integer or "
                                "[N, N] (square images)", j->where, j->sec);
        *out = (size_t)h->valuedouble;
        return RL_OK;
    }
    return oc_size(j, o, "image_size", OC_DIM_MAX, out);
}

/* a setting that must be absent, null, false or 0 (nothing else is CLIP) */
static int oc_refuse_set(const struct occtx *j, const cJSON *o, const char *key,
                         const char *what)
{
    const cJSON *it = item(o, key);

    if (!it || cJSON_IsFalse(it) || (cJSON_IsNumber(it) && it->valuedouble == 0.0))
        return RL_OK;
    return rl_error_set(RL_ERR_FORMAT, "%s: %s.%s is set: %s is not supported (only CLIP's "
                        "plain transformer towers are)", j->where, j->sec, key, what);
}

/* a string setting that must be absent or `want` */
static int oc_require_str(const struct occtx *j, const cJSON *o, const char *key,
                          const char *want)
{
    const cJSON *it = item(o, key);

    if (!it || (cJSON_IsString(it) && !strcmp(it->valuestring, want)))
        return RL_OK;
    return rl_error_set(RL_ERR_FORMAT, "%s: %s.%s = %s: only \"%s\" (CLIP's) is supported",
                        j->where, j->sec, key, cJSON_IsString(it) ? it->valuestring : "(not a string)",
                        want);
}

/* the settings both towers refuse: other blocks, norms, activations */
static int oc_refuse_common(const struct occtx *j, const cJSON *o)
{
    static const char *const keys[] = {
        "ls_init_value", "act_kwargs", "norm_kwargs", "qk_norm", "scaled_cosine_attn",
        "scale_heads", "scale_attn_inner", "scale_attn", "scale_fc",
    };
    int rc;

    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        if ((rc = oc_refuse_set(j, o, keys[i], "this block variant")))
            return rc;
    return oc_require_str(j, o, "block_type", "default");
}

/* int(width * mlp_ratio), as open_clip sizes the MLP */
static int oc_mlp(const struct occtx *j, size_t width, double ratio, size_t *out)
{
    double f = floor((double)width * ratio);

    if (!(f >= 1.0 && f <= OC_DIM_MAX))
        return rl_error_set(RL_ERR_FORMAT, "%s: %s.mlp_ratio: width * mlp_ratio is not a "
                            "size in 1..%.0f", j->where, j->sec, OC_DIM_MAX);
    *out = (size_t)f;
    return RL_OK;
}

static int oc_vision(struct clip_vision_config *v, const cJSON *o, const char *where)
{
    struct occtx j = { where, "model_cfg.vision_cfg" };
    size_t head_width = 64;
    double ratio = 4.0;
    const cJSON *layers;
    int rc;

    if (!cJSON_IsObject(o))
        return rl_error_set(RL_ERR_FORMAT, "%s: model_cfg.vision_cfg: expected an object", where);
    v->layers = 12;
    v->hidden = 768;
    v->patch_size = 16;
    v->image_size = 224;
    if ((layers = item(o, "layers")) && !cJSON_IsNumber(layers))
        return rl_error_set(RL_ERR_FORMAT, "%s: model_cfg.vision_cfg.layers: expected an "
                            "integer (a list is a ResNet tower, which is not supported)", where);
    if ((rc = oc_refuse_set(&j, o, "timm_model_name", "a timm vision tower")) ||
        (rc = oc_refuse_set(&j, o, "attentional_pool", "attentional pooling")) ||
        (rc = oc_refuse_set(&j, o, "no_ln_pre", "a tower without ln_pre")) ||
        (rc = oc_require_str(&j, o, "pool_type", "tok")) ||
        (rc = oc_require_str(&j, o, "pos_embed_type", "learnable")) ||
        (rc = oc_refuse_common(&j, o)))
        return rc;
    if ((rc = oc_size(&j, o, "layers", 1024, &v->layers)) ||
        (rc = oc_size(&j, o, "width", OC_DIM_MAX, &v->hidden)) ||
        (rc = oc_size(&j, o, "head_width", OC_DIM_MAX, &head_width)) ||
        (rc = oc_ratio(&j, o, "mlp_ratio", &ratio)) ||
        (rc = oc_size(&j, o, "patch_size", OC_DIM_MAX, &v->patch_size)) ||
        (rc = oc_image_size(&j, o, &v->image_size)))
        return rc;
    if (v->hidden % head_width)
        return rl_error_set(RL_ERR_FORMAT, "%s: model_cfg.vision_cfg.head_width = %zu does not "
                            "divide width %zu", where, head_width, v->hidden);
    v->heads = v->hidden / head_width;
    v->num_channels = 3;
    return oc_mlp(&j, v->hidden, ratio, &v->intermediate);
}

static int oc_text(struct clip_text_config *t, const cJSON *o, const char *where)
{
    struct occtx j = { where, "model_cfg.text_cfg" };
    double ratio = 4.0;
    int rc;

    if (!cJSON_IsObject(o))
        return rl_error_set(RL_ERR_FORMAT, "%s: model_cfg.text_cfg: expected an object", where);
    t->context = 77;
    t->vocab_size = 49408;
    t->hidden = 512;
    t->heads = 8;
    t->layers = 12;
    if ((rc = oc_refuse_set(&j, o, "hf_model_name", "a Hugging Face text tower")) ||
        (rc = oc_refuse_set(&j, o, "embed_cls", "a class token in the text tower")) ||
        (rc = oc_refuse_set(&j, o, "no_causal_mask", "a text tower without causal mask")) ||
        (rc = oc_refuse_set(&j, o, "proj_bias", "a text projection with bias")) ||
        (rc = oc_require_str(&j, o, "pool_type", "argmax")) ||
        (rc = oc_require_str(&j, o, "proj_type", "linear")) ||
        (rc = oc_refuse_common(&j, o)))
        return rc;
    if ((rc = oc_size(&j, o, "context_length", OC_DIM_MAX, &t->context)) ||
        (rc = oc_size(&j, o, "vocab_size", (double)(1u << 24), &t->vocab_size)) ||
        (rc = oc_size(&j, o, "width", OC_DIM_MAX, &t->hidden)) ||
        (rc = oc_size(&j, o, "heads", OC_DIM_MAX, &t->heads)) ||
        (rc = oc_size(&j, o, "layers", 1024, &t->layers)) ||
        (rc = oc_ratio(&j, o, "mlp_ratio", &ratio)))
        return rc;
    /* open_clip pools at the argmax id: the end token is the vocabulary's
     * last id (CLIP's <|endoftext|> 49407), start the one before it */
    t->eos_token_id = (int64_t)t->vocab_size - 1;
    t->bos_token_id = (int64_t)t->vocab_size - 2;
    t->pad_token_id = 0;
    return oc_mlp(&j, t->hidden, ratio, &t->intermediate);
}

int clip_openclip_config_parse(struct clip_config *c, const char *json, size_t len,
                               const char *where)
{
    struct occtx j = { where, "model_cfg" };
    cJSON *root = cJSON_ParseWithLength(json, len);
    const cJSON *mc, *it;
    enum block_act act = BLOCK_ACT_GELU;
    int rc;

    clip_config_defaults(c);
    if (!root)
        return rl_error_set(RL_ERR_FORMAT, "%s: not valid JSON", where);
    mc = cJSON_IsObject(root) ? item(root, "model_cfg") : NULL;
    if (cJSON_IsObject(root) && !mc && item(root, "vision_cfg"))
        mc = root;                              /* a bare model_cfg */
    if (!mc || !cJSON_IsObject(mc)) {
        cJSON_Delete(root);
        return rl_error_set(RL_ERR_FORMAT, "%s: expected a JSON object with \"model_cfg\" (an "
                            "object with vision_cfg and text_cfg)", where);
    }
    /* quick_gelu: the key; without it, a model name that says so (open_clip's
     * "-quickgelu" model variants), else open_clip's default, nn.GELU */
    if (!item(mc, "quick_gelu")) {
        const cJSON *nm = item(root, "model_name") ? item(root, "model_name")
                                                   : item(mc, "model_name");

        if (nm && cJSON_IsString(nm) && strstr(nm->valuestring, "quickgelu"))
            act = BLOCK_ACT_QUICK_GELU;
    }
    if ((it = item(mc, "quick_gelu"))) {
        if (!cJSON_IsBool(it))
            rc = rl_error_set(RL_ERR_FORMAT, "%s: model_cfg.quick_gelu: expected true or false",
                              where);
        else
            rc = RL_OK;
        act = cJSON_IsTrue(it) ? BLOCK_ACT_QUICK_GELU : BLOCK_ACT_GELU;
        if (rc)
            goto out;
    }
    if ((rc = oc_refuse_set(&j, mc, "custom_text", "CustomTextCLIP (text.* names)")) ||
        (rc = oc_refuse_set(&j, mc, "init_logit_bias", "a logit bias (SigLIP)")) ||
        (rc = oc_size(&j, mc, "embed_dim", OC_DIM_MAX, &c->projection_dim)))
        goto out;
    if (!(it = item(mc, "vision_cfg")) || !item(mc, "text_cfg")) {
        rc = rl_error_set(RL_ERR_FORMAT, "%s: model_cfg needs vision_cfg and text_cfg", where);
        goto out;
    }
    if ((rc = oc_vision(&c->vision, it, where)) ||
        (rc = oc_text(&c->text, item(mc, "text_cfg"), where)))
        goto out;
    c->vision.act = c->text.act = act;
    c->vision.layer_norm_eps = c->text.layer_norm_eps = 1e-5f;
    rc = clip_config_validate(c, where);
out:
    cJSON_Delete(root);
    return rc;
}

/* ---- writing ------------------------------------------------------------ */

static void num(cJSON *o, const char *key, double v)
{
    cJSON_AddItemToObject(o, key, cJSON_CreateNumber(v));
}

/* width * mlp_ratio gives F back exactly (open_clip's int(width * ratio)) */
static bool ratio_exact(size_t C, size_t F, double *ratio)
{
    *ratio = (double)F / (double)C;
    return (size_t)floor((double)C * *ratio) == F;
}

char *clip_openclip_config_to_json(const struct clip_config *c)
{
    static const double mean[3] = { 0.48145466, 0.4578275, 0.40821073 };
    static const double std[3] = { 0.26862954, 0.26130258, 0.27577711 };
    double vr, tr;
    cJSON *root, *mc, *v, *t, *pp;
    char *s;

    if (c->vision.act != c->text.act) {
        rl_error_set(RL_ERR_ARG, "open_clip has one activation for both towers (quick_gelu), "
                     "this model has %s vision and %s text",
                     c->vision.act == BLOCK_ACT_GELU ? "gelu" : "quick_gelu",
                     c->text.act == BLOCK_ACT_GELU ? "gelu" : "quick_gelu");
        return NULL;
    }
    if (c->vision.layer_norm_eps != 1e-5f || c->text.layer_norm_eps != 1e-5f) {
        rl_error_set(RL_ERR_ARG, "open_clip's layer norms have eps 1e-5, this model has "
                     "%g (vision) and %g (text)", (double)c->vision.layer_norm_eps,
                     (double)c->text.layer_norm_eps);
        return NULL;
    }
    if (c->vision.num_channels != 3 || !ratio_exact(c->vision.hidden, c->vision.intermediate,
                                                    &vr) ||
        !ratio_exact(c->text.hidden, c->text.intermediate, &tr)) {
        rl_error_set(RL_ERR_ARG, "open_clip cannot express this model: it needs 3 image "
                     "channels and MLP widths of exactly width * mlp_ratio");
        return NULL;
    }
    root = cJSON_CreateObject();
    mc = cJSON_AddObjectToObject(root, "model_cfg");
    num(mc, "embed_dim", (double)c->projection_dim);
    cJSON_AddBoolToObject(mc, "quick_gelu", c->vision.act == BLOCK_ACT_QUICK_GELU);
    v = cJSON_AddObjectToObject(mc, "vision_cfg");
    num(v, "image_size", (double)c->vision.image_size);
    num(v, "layers", (double)c->vision.layers);
    num(v, "width", (double)c->vision.hidden);
    num(v, "head_width", (double)(c->vision.hidden / c->vision.heads));
    num(v, "mlp_ratio", vr);
    num(v, "patch_size", (double)c->vision.patch_size);
    t = cJSON_AddObjectToObject(mc, "text_cfg");
    num(t, "context_length", (double)c->text.context);
    num(t, "vocab_size", (double)c->text.vocab_size);
    num(t, "width", (double)c->text.hidden);
    num(t, "heads", (double)c->text.heads);
    num(t, "layers", (double)c->text.layers);
    num(t, "mlp_ratio", tr);
    pp = cJSON_AddObjectToObject(root, "preprocess_cfg");
    cJSON_AddItemToObject(pp, "mean", cJSON_CreateDoubleArray(mean, 3));
    cJSON_AddItemToObject(pp, "std", cJSON_CreateDoubleArray(std, 3));
    s = cJSON_Print(root);
    RL_ASSERT(s != NULL);
    cJSON_Delete(root);
    return s;
}
