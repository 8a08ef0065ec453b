/*
 * clip_layout.c: the two ways a model directory stores a CLIP model, the
 * Hugging Face layout (config.json + model.safetensors, the tensor table's
 * own names) and open_clip's (open_clip_config.json +
 * open_clip_model.safetensors), mapped onto the same block: detecting a
 * directory's layout, the stored-tensor list of each, loading, checking,
 * re-reading a range (the adapters' rebase) and saving in either.
 *
 * open_clip's names and math followed (mlfoundations/open_clip,
 * src/open_clip/model.py CLIP.encode_image / encode_text and
 * transformer.py VisionTransformer, TextTransformer, ResidualAttentionBlock):
 * the residual blocks are nn.MultiheadAttention with one packed
 * in_proj_weight (3C, C) = [W_q; W_k; W_v] and in_proj_bias (3C), out_proj,
 * ln_1 / ln_2 before attention and MLP, mlp.c_fc / mlp.c_proj; the vision
 * tower is conv1 (no bias), [class_embedding; patches] + positional_embedding,
 * ln_pre, the blocks, ln_post on the class token, then x @ proj; the text
 * tower is token_embedding + positional_embedding, the causal blocks,
 * ln_final, the argmax-id token, then x @ text_projection. x @ P with P
 * (C, D) is HF's x W^T with W = P^T: proj and text_projection are stored
 * transposed against HF's visual_projection.weight and
 * text_projection.weight; everything else matches element for element.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/alloc.h"
#include "core/read_file.h"
#include "core/status.h"
#include "formats/safetensors.h"
#include "models/clip.h"

#define OPENCLIP_CONFIG_MAX_BYTES ((size_t)16 << 20)

int clip_layout_parse(const char *name, enum clip_layout *out)
{
    if (!strcmp(name, "hf"))
        *out = CLIP_LAYOUT_HF;
    else if (!strcmp(name, "open_clip"))
        *out = CLIP_LAYOUT_OPENCLIP;
    else
        return rl_error_set(RL_ERR_ARG, "layout '%s': expected hf or open_clip", name);
    return RL_OK;
}

const char *clip_layout_name(enum clip_layout l)
{
    return l == CLIP_LAYOUT_OPENCLIP ? "open_clip" : "hf";
}

const char *clip_layout_config_file(enum clip_layout l)
{
    return l == CLIP_LAYOUT_OPENCLIP ? "open_clip_config.json" : "config.json";
}

const char *clip_layout_weights_file(enum clip_layout l)
{
    return l == CLIP_LAYOUT_OPENCLIP ? "open_clip_model.safetensors" : "model.safetensors";
}

char *clip_dir_file(const char *dir, enum clip_layout l, bool weights)
{
    const char *file = weights ? clip_layout_weights_file(l) : clip_layout_config_file(l);
    size_t n = strlen(dir) + strlen(file) + 2;
    char *p = xmalloc(n);

    snprintf(p, n, "%s/%s", dir, file);
    return p;
}

static bool is_file(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int clip_dir_layout(const char *dir, enum clip_layout *out)
{
    char *hf = clip_dir_file(dir, CLIP_LAYOUT_HF, false);
    char *oc = clip_dir_file(dir, CLIP_LAYOUT_OPENCLIP, false);
    int rc = RL_OK;

    if (is_file(hf))
        *out = CLIP_LAYOUT_HF;
    else if (is_file(oc))
        *out = CLIP_LAYOUT_OPENCLIP;
    else
        rc = rl_error_set(RL_ERR_IO, "%s: no model config: neither config.json (Hugging Face "
                          "layout) nor open_clip_config.json (open_clip layout) is there", dir);
    free(hf);
    free(oc);
    return rc;
}

int clip_config_load_dir(struct clip_config *c, const char *dir, enum clip_layout *layout)
{
    enum clip_layout l;
    char *path, *json = NULL;
    size_t len = 0;
    int rc;

    if ((rc = clip_dir_layout(dir, &l)))
        return rc;
    if (layout)
        *layout = l;
    path = clip_dir_file(dir, l, false);
    if (l == CLIP_LAYOUT_HF) {
        rc = clip_config_load(c, path);
    } else if (!(rc = rl_read_file(path, OPENCLIP_CONFIG_MAX_BYTES, &json, &len))) {
        rc = clip_openclip_config_parse(c, json, len, path);
        free(json);
    }
    free(path);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* the stored tensors                                                        */

/* appends entries to out (when given) and counts them */
struct stored_list {
    struct clip_stored *out;
    size_t n;
};

static void put(struct stored_list *L, const char *name, const struct clip_tensor *t,
                size_t numel, int ndim, int64_t s0, int64_t s1, bool transposed)
{
    if (L->out) {
        struct clip_stored *s = &L->out[L->n];

        memset(s, 0, sizeof(*s));
        RL_ASSERT(strlen(name) < CLIP_MAX_NAME);
        snprintf(s->name, sizeof(s->name), "%s", name);
        s->offset = t->offset;
        s->numel = numel;
        s->ndim = ndim;
        s->transposed = transposed;
        if (ndim == -1) {               /* as the table has it */
            s->ndim = t->ndim;
            memcpy(s->shape, t->shape, sizeof(s->shape));
        } else {
            s->shape[0] = s0;
            s->shape[1] = s1;
        }
    }
    L->n++;
}

/* the table entry called name (it exists: the table is built from the config) */
static const struct clip_tensor *tab(const struct clip_model *m, const char *name)
{
    const struct clip_tensor *t = clip_model_find(m, name);

    RL_ASSERT(t != NULL);
    return t;
}

/* an entry stored as the table has it, under another name */
static void same(struct stored_list *L, const struct clip_model *m, const char *oc,
                 const char *hf)
{
    const struct clip_tensor *t = tab(m, hf);

    put(L, oc, t, t->numel, -1, 0, 0, false);
}

/* one encoder layer of a tower in open_clip's names */
static void openclip_layer(struct stored_list *L, const struct clip_model *m, const char *oc,
                           const char *hf, size_t l, size_t C)
{
    static const char *const pairs[][2] = {
        { "ln_1.weight", "layer_norm1.weight" }, { "ln_1.bias", "layer_norm1.bias" },
        { "attn.out_proj.weight", "self_attn.out_proj.weight" },
        { "attn.out_proj.bias", "self_attn.out_proj.bias" },
        { "ln_2.weight", "layer_norm2.weight" }, { "ln_2.bias", "layer_norm2.bias" },
        { "mlp.c_fc.weight", "mlp.fc1.weight" }, { "mlp.c_fc.bias", "mlp.fc1.bias" },
        { "mlp.c_proj.weight", "mlp.fc2.weight" }, { "mlp.c_proj.bias", "mlp.fc2.bias" },
    };
    char a[CLIP_MAX_NAME], b[CLIP_MAX_NAME];

    /* q, k, v adjacent in the block (block.h): one (3C, C) and one (3C) */
    snprintf(a, sizeof a, "%sresblocks.%zu.attn.in_proj_weight", oc, l);
    snprintf(b, sizeof b, "%s.encoder.layers.%zu.self_attn.q_proj.weight", hf, l);
    put(L, a, tab(m, b), 3 * C * C, 2, (int64_t)(3 * C), (int64_t)C, false);
    snprintf(a, sizeof a, "%sresblocks.%zu.attn.in_proj_bias", oc, l);
    snprintf(b, sizeof b, "%s.encoder.layers.%zu.self_attn.q_proj.bias", hf, l);
    put(L, a, tab(m, b), 3 * C, 1, (int64_t)(3 * C), 0, false);
    for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
        snprintf(a, sizeof a, "%sresblocks.%zu.%s", oc, l, pairs[i][0]);
        snprintf(b, sizeof b, "%s.encoder.layers.%zu.%s", hf, l, pairs[i][1]);
        same(L, m, a, b);
    }
}

/* a (D, C) table matrix stored as its (C, D) transpose */
static void transposed(struct stored_list *L, const struct clip_model *m, const char *oc,
                       const char *hf)
{
    const struct clip_tensor *t = tab(m, hf);

    put(L, oc, t, t->numel, 2, t->shape[1], t->shape[0], true);
}

size_t clip_stored_tensors(const struct clip_model *m, enum clip_layout l,
                           struct clip_stored *out)
{
    struct stored_list L = { out, 0 };
    const size_t Cv = m->cfg.vision.hidden, Ct = m->cfg.text.hidden;

    if (l == CLIP_LAYOUT_HF) {
        for (size_t i = 0; i < m->n_tensors; i++)
            put(&L, m->tensors[i].name, &m->tensors[i], m->tensors[i].numel, -1, 0, 0, false);
        return L.n;
    }
    same(&L, m, "visual.conv1.weight", "vision_model.embeddings.patch_embedding.weight");
    same(&L, m, "visual.class_embedding", "vision_model.embeddings.class_embedding");
    same(&L, m, "visual.positional_embedding",
         "vision_model.embeddings.position_embedding.weight");
    same(&L, m, "visual.ln_pre.weight", "vision_model.pre_layrnorm.weight");
    same(&L, m, "visual.ln_pre.bias", "vision_model.pre_layrnorm.bias");
    for (size_t i = 0; i < m->cfg.vision.layers; i++)
        openclip_layer(&L, m, "visual.transformer.", "vision_model", i, Cv);
    same(&L, m, "visual.ln_post.weight", "vision_model.post_layernorm.weight");
    same(&L, m, "visual.ln_post.bias", "vision_model.post_layernorm.bias");
    transposed(&L, m, "visual.proj", "visual_projection.weight");
    same(&L, m, "token_embedding.weight", "text_model.embeddings.token_embedding.weight");
    same(&L, m, "positional_embedding", "text_model.embeddings.position_embedding.weight");
    for (size_t i = 0; i < m->cfg.text.layers; i++)
        openclip_layer(&L, m, "transformer.", "text_model", i, Ct);
    same(&L, m, "ln_final.weight", "text_model.final_layer_norm.weight");
    same(&L, m, "ln_final.bias", "text_model.final_layer_norm.bias");
    transposed(&L, m, "text_projection", "text_projection.weight");
    same(&L, m, "logit_scale", "logit_scale");
    return L.n;
}

/* the stored list of layout l, malloc'd */
static struct clip_stored *stored_list(const struct clip_model *m, enum clip_layout l,
                                       size_t *n)
{
    struct clip_stored *s;

    *n = clip_stored_tensors(m, l, NULL);
    s = xcalloc(*n, sizeof(*s));
    RL_ASSERT(clip_stored_tensors(m, l, s) == *n);
    return s;
}

/* ------------------------------------------------------------------------ */
/* reading                                                                   */

static char *shape_str(char *buf, size_t size, int ndim, const int64_t *shape)
{
    size_t k = (size_t)snprintf(buf, size, "[");

    for (int d = 0; d < ndim && k < size; d++)
        k += (size_t)snprintf(buf + k, size - k, "%s%lld", d ? ", " : "", (long long)shape[d]);
    if (k < size)
        snprintf(buf + k, size - k, "]");
    return buf;
}

int clip_model_check_file(const struct clip_model *m, enum clip_layout l,
                          const struct st_file *f, const char *path, size_t *present)
{
    size_t n;
    struct clip_stored *st = stored_list(m, l, &n);
    char want[96], got[96];
    int rc = RL_OK;

    *present = 0;
    for (size_t i = 0; i < n && rc == RL_OK; i++) {
        const struct clip_stored *t = &st[i];
        const struct st_info *si = st_find(f, t->name);
        bool ok = si && si->ndim == t->ndim;

        for (int d = 0; ok && d < t->ndim; d++)
            ok = si->shape[d] == t->shape[d];
        if (si && t->ndim == 0 && si->ndim == 1 && si->shape[0] == 1)
            ok = true;
        if (!si)
            rc = rl_error_set(RL_ERR_FORMAT, "%s: tensor '%s' is missing (the %s layout's "
                              "config needs %zu tensors)", path, t->name, clip_layout_name(l), n);
        else if (!ok)
            rc = rl_error_set(RL_ERR_FORMAT, "%s: tensor '%s' has shape %s, the config says %s",
                              path, t->name, shape_str(got, sizeof got, si->ndim, si->shape),
                              shape_str(want, sizeof want, t->ndim, t->shape));
        else if (si->dtype != ST_F32 && si->dtype != ST_F16 && si->dtype != ST_BF16)
            rc = rl_error_set(RL_ERR_FORMAT, "%s: tensor '%s' is %s, which the loader cannot "
                              "convert (F32, F16, BF16 are the weight dtypes)", path, t->name,
                              st_dtype_name(si->dtype));
        else
            (*present)++;
    }
    free(st);
    return rc;
}

/* one stored tensor into the block (a transposed one through a copy) */
static int load_stored(struct clip_model *m, const struct st_file *f, const struct clip_stored *t)
{
    float *dst = m->params + t->offset;
    const struct st_info *si;
    int64_t one = 1;
    int rc;

    /* released under bf16 (clip_model_linears_to_bf16): nothing to write to */
    RL_ASSERT(!clip_model_range_released(m, t->offset, t->numel));

    if (t->ndim == 0 && (si = st_find(f, t->name)) && si->ndim == 1 && si->shape[0] == 1)
        return st_load_f32(f, t->name, 1, &one, dst);
    if (!t->transposed)
        return st_load_f32(f, t->name, t->ndim, t->shape, dst);
    {
        const size_t r = (size_t)t->shape[0], c = (size_t)t->shape[1];
        float *tmp = xmalloc_array(t->numel, sizeof(float));

        if ((rc = st_load_f32(f, t->name, 2, t->shape, tmp)) == RL_OK)
            for (size_t i = 0; i < r; i++)
                for (size_t j = 0; j < c; j++)
                    dst[j * r + i] = tmp[i * c + j];
        free(tmp);
        return rc;
    }
}

int clip_model_load_weights_as(struct clip_model *m, const char *path, enum clip_layout l)
{
    struct st_file *f;
    size_t n;
    struct clip_stored *st;
    int rc = st_open(&f, path);

    if (rc)
        return rc;
    st = stored_list(m, l, &n);
    for (size_t i = 0; i < n && rc == RL_OK; i++)
        rc = load_stored(m, f, &st[i]);
    free(st);
    st_close(f);
    return rc;
}

int clip_model_reload_range(struct clip_model *m, const char *path, size_t offset, size_t n)
{
    struct st_file *f = NULL;
    size_t ns;
    struct clip_stored *st = stored_list(m, m->layout, &ns);
    int rc = RL_OK;

    for (size_t i = 0; i < ns && rc == RL_OK; i++) {
        const struct clip_stored *t = &st[i];

        if (t->offset >= offset + n || t->offset + t->numel <= offset)
            continue;
        if (!f && (rc = st_open(&f, path)))
            break;
        rc = load_stored(m, f, t);
    }
    st_close(f);
    free(st);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* writing                                                                   */

int clip_model_save_as(const struct clip_model *m, const char *dir, int dtype,
                       enum clip_layout l)
{
    struct st_writer *w;
    struct clip_stored *st;
    float **copies;
    char *cpath, *wpath, *json;
    size_t n;
    int rc = RL_OK;

    if (l == CLIP_LAYOUT_HF)
        return clip_model_save(m, dir, dtype);
    RL_ASSERT(m->n_released == 0);      /* no fp32 linears to save (bf16 run) */
    if (dtype != ST_F32 && dtype != ST_F16 && dtype != ST_BF16)
        return rl_error_set(RL_ERR_ARG, "%s: weights can be saved as F32, F16 or BF16", dir);
    if (!(json = clip_openclip_config_to_json(&m->cfg)))
        return rl_error_prefix(RL_ERR_ARG, "%s", dir);
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        free(json);
        return rl_error_set(RL_ERR_IO, "%s: cannot create: %s", dir, strerror(errno));
    }
    st = stored_list(m, l, &n);
    copies = xcalloc(n, sizeof(*copies));
    w = st_writer_new();
    for (size_t i = 0; i < n && rc == RL_OK; i++) {
        const struct clip_stored *t = &st[i];
        const float *src = m->params + t->offset;

        if (t->transposed) {            /* the writer borrows: a copy per tensor */
            const size_t r = (size_t)t->shape[0], c = (size_t)t->shape[1];

            copies[i] = xmalloc_array(t->numel, sizeof(float));
            for (size_t a = 0; a < r; a++)
                for (size_t b = 0; b < c; b++)
                    copies[i][a * c + b] = src[b * r + a];
            src = copies[i];
        }
        rc = st_writer_add(w, t->name, src, t->ndim, t->shape, (enum st_dtype)dtype);
    }
    cpath = clip_dir_file(dir, l, false);
    wpath = clip_dir_file(dir, l, true);
    if (!rc)
        rc = st_writer_set_metadata(w, "format", "pt");
    if (!rc)
        rc = st_writer_write(w, wpath);
    if (!rc)
        rc = rl_write_text_atomic(cpath, json);
    st_writer_free(w);
    for (size_t i = 0; i < n; i++)
        free(copies[i]);
    free(copies);
    free(st);
    free(cpath);
    free(wpath);
    free(json);
    return rc;
}
