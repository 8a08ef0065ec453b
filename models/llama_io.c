/*
 * llama_io.c: the tensor table of a Llama-family model (HF names, one float
 * block), gradients of the same layout, and model directories: loading from
 * model.safetensors or the shards of model.safetensors.index.json, and
 * saving (one file or shards with an index).
 */
#include "models/llama.h"

#include <errno.h>
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

#define INDEX_MAX_BYTES  ((size_t)64 << 20)
#define INDEX_NAME       "model.safetensors.index.json"
#define WEIGHTS_NAME     "model.safetensors"

const char *const llama_layer_tensor_names[LT_COUNT] = {
    "input_layernorm.weight",
    "self_attn.q_proj.weight", "self_attn.q_proj.bias",
    "self_attn.k_proj.weight", "self_attn.k_proj.bias",
    "self_attn.v_proj.weight", "self_attn.v_proj.bias",
    "self_attn.o_proj.weight", "self_attn.o_proj.bias",
    "post_attention_layernorm.weight",
    "mlp.gate_proj.weight", "mlp.gate_proj.bias",
    "mlp.up_proj.weight", "mlp.up_proj.bias",
    "mlp.down_proj.weight", "mlp.down_proj.bias",
};

const char *const llama_linear_names[LLAMA_NUM_LINEARS] = {
    "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj",
};
const char *const llama_linear_paths[LLAMA_NUM_LINEARS] = {
    "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
    "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj",
};

enum llama_layer_tensor llama_linear_weight(enum llama_linear i)
{
    static const enum llama_layer_tensor w[LLAMA_NUM_LINEARS] = {
        LT_Q_W, LT_K_W, LT_V_W, LT_O_W, LT_GATE_W, LT_UP_W, LT_DOWN_W,
    };

    return w[i];
}

void llama_linear_shape(const struct llama_config *c, enum llama_linear i, size_t *d_out,
                        size_t *d_in)
{
    const size_t C = c->hidden, F = c->intermediate;
    const size_t qd = c->heads * c->head_dim, kvd = c->kv_heads * c->head_dim;
    const size_t out[LLAMA_NUM_LINEARS] = { qd, kvd, kvd, C, F, F, C };
    const size_t in[LLAMA_NUM_LINEARS] = { C, C, C, qd, C, C, F };

    *d_out = out[i];
    *d_in = in[i];
}

/* (rows, cols) of layer tensor t; rows 0 when the config has no such tensor */
static void layer_tensor_shape(const struct llama_config *c, enum llama_layer_tensor t,
                               size_t *rows, size_t *cols)
{
    static const enum llama_linear lin_of[LT_COUNT] = {
        0, LLAMA_LIN_Q, LLAMA_LIN_Q, LLAMA_LIN_K, LLAMA_LIN_K, LLAMA_LIN_V, LLAMA_LIN_V,
        LLAMA_LIN_O, LLAMA_LIN_O, 0, LLAMA_LIN_GATE, LLAMA_LIN_GATE, LLAMA_LIN_UP,
        LLAMA_LIN_UP, LLAMA_LIN_DOWN, LLAMA_LIN_DOWN,
    };
    size_t d_out, d_in;
    bool has = true;

    if (t == LT_LN1 || t == LT_LN2) {
        *rows = c->hidden;
        *cols = 0;
        return;
    }
    llama_linear_shape(c, lin_of[t], &d_out, &d_in);
    switch (t) {
    case LT_Q_B: case LT_K_B: case LT_V_B: has = c->qkv_bias; break;
    case LT_O_B: has = c->o_bias; break;
    case LT_GATE_B: case LT_UP_B: case LT_DOWN_B: has = c->mlp_bias; break;
    default: break;
    }
    *rows = has ? d_out : 0;
    /* weights are (d_out, d_in); biases (d_out) */
    *cols = (t == LT_Q_W || t == LT_K_W || t == LT_V_W || t == LT_O_W || t == LT_GATE_W ||
             t == LT_UP_W || t == LT_DOWN_W) ? d_in : 0;
}

/* ------------------------------------------------------------------------ */
/* the table                                                                 */

static size_t table_add(struct llama_model *m, size_t *off, const char *name, size_t rows,
                        size_t cols)
{
    struct llama_tensor *t = &m->tensors[m->n_tensors++];
    size_t at = *off;

    RL_ASSERT(strlen(name) < LLAMA_MAX_NAME);
    snprintf(t->name, sizeof(t->name), "%s", name);
    t->ndim = cols ? 2 : 1;
    t->shape[0] = (int64_t)rows;
    t->shape[1] = (int64_t)cols;
    RL_ASSERT(size_mul_ok(rows, cols ? cols : 1, &t->numel));
    t->offset = at;
    RL_ASSERT(size_add_ok(*off, t->numel, off));
    return at;
}

/* every layer's tensor offsets (LT_COUNT per layer, SIZE_MAX when absent)
 * are kept in lt_off to point layer views at either block */
static void point_layers(struct llama_layer_w *layers, float *base, const size_t *lt_off,
                         size_t L)
{
    for (size_t l = 0; l < L; l++)
        for (size_t t = 0; t < LT_COUNT; t++) {
            const size_t o = lt_off[l * LT_COUNT + t];

            layers[l].t[t] = o == SIZE_MAX ? NULL : base + o;
        }
}

/* offsets of every layer tensor, recomputed from the table */
static size_t *layer_offsets(const struct llama_model *m)
{
    const size_t L = m->cfg.layers;
    size_t *off = xmalloc_array(L * LT_COUNT, sizeof(size_t));
    char name[LLAMA_MAX_NAME];

    for (size_t l = 0; l < L; l++)
        for (size_t t = 0; t < LT_COUNT; t++) {
            const struct llama_tensor *x;

            snprintf(name, sizeof(name), "model.layers.%zu.%s", l, llama_layer_tensor_names[t]);
            x = llama_model_find(m, name);
            off[l * LT_COUNT + t] = x ? x->offset : SIZE_MAX;
        }
    return off;
}

/* the tensor table of a validated config, without the block: m->tensors,
 * n_tensors, n_params; the offsets of the embedding, norm and head views */
static void table_build(struct llama_model *m, const struct llama_config *cfg, size_t *emb,
                        size_t *norm, size_t *head)
{
    const size_t L = cfg->layers, C = cfg->hidden, V = cfg->vocab_size;
    size_t off = 0;
    char name[LLAMA_MAX_NAME];

    memset(m, 0, sizeof(*m));
    m->cfg = *cfg;
    m->tensors = xcalloc(3 + L * LT_COUNT, sizeof(*m->tensors));
    *emb = table_add(m, &off, "model.embed_tokens.weight", V, C);
    for (size_t l = 0; l < L; l++)
        for (size_t t = 0; t < LT_COUNT; t++) {
            size_t rows, cols;

            layer_tensor_shape(cfg, (enum llama_layer_tensor)t, &rows, &cols);
            if (!rows)
                continue;
            snprintf(name, sizeof(name), "model.layers.%zu.%s", l, llama_layer_tensor_names[t]);
            table_add(m, &off, name, rows, cols);
        }
    *norm = table_add(m, &off, "model.norm.weight", C, 0);
    *head = cfg->tie_word_embeddings ? *emb : table_add(m, &off, "lm_head.weight", V, C);
    m->n_params = off;
    RL_ASSERT(off == llama_config_n_params(cfg));
}

int llama_model_init(struct llama_model *m, const struct llama_config *cfg)
{
    size_t emb, norm, head, *lt_off;
    int rc;

    memset(m, 0, sizeof(*m));
    if ((rc = llama_config_validate(cfg, "llama config")))
        return rc;
    table_build(m, cfg, &emb, &norm, &head);
    m->params = xcalloc_aligned(m->n_params, sizeof(float));
    m->embed = m->params + emb;
    m->norm = m->params + norm;
    m->lm_head = m->params + head;
    m->layer = xcalloc(cfg->layers, sizeof(*m->layer));
    lt_off = layer_offsets(m);
    point_layers(m->layer, m->params, lt_off, cfg->layers);
    free(lt_off);
    m->inv_freq = xmalloc_array(cfg->head_dim / 2, sizeof(float));
    llama_rope_inv_freq(cfg, m->inv_freq);
    return RL_OK;
}

void llama_model_free(struct llama_model *m)
{
    free(m->params);
    free(m->tensors);
    free(m->layer);
    free(m->inv_freq);
    memset(m, 0, sizeof(*m));
}

const struct llama_tensor *llama_model_find(const struct llama_model *m, const char *name)
{
    for (size_t i = 0; i < m->n_tensors; i++)
        if (!strcmp(m->tensors[i].name, name))
            return &m->tensors[i];
    return NULL;
}

void llama_grads_init(struct llama_grads *g, const struct llama_model *m)
{
    size_t *lt_off = layer_offsets(m);

    memset(g, 0, sizeof(*g));
    g->buf = xcalloc_aligned(m->n_params, sizeof(float));
    g->embed = g->buf + (m->embed - m->params);
    g->norm = g->buf + (m->norm - m->params);
    g->lm_head = g->buf + (m->lm_head - m->params);
    g->layer = xcalloc(m->cfg.layers, sizeof(*g->layer));
    point_layers(g->layer, g->buf, lt_off, m->cfg.layers);
    free(lt_off);
}

void llama_grads_free(struct llama_grads *g)
{
    free(g->buf);
    free(g->layer);
    memset(g, 0, sizeof(*g));
}

void llama_grads_zero(struct llama_grads *g, const struct llama_model *m)
{
    memset(g->buf, 0, m->n_params * sizeof(float));
}

/* ------------------------------------------------------------------------ */
/* the shard index                                                           */

struct llama_index {
    size_t n;
    char **names, **files;      /* sorted by name                           */
};

void llama_index_free(struct llama_index *ix)
{
    if (!ix)
        return;
    for (size_t i = 0; i < ix->n; i++) {
        free(ix->names[i]);
        free(ix->files[i]);
    }
    free(ix->names);
    free(ix->files);
    free(ix);
}

/* a shard name: a plain file name in the model directory */
static bool shard_name_ok(const char *f)
{
    const size_t n = strlen(f), ext = strlen(".safetensors");

    return n > ext && n < 256 && !strchr(f, '/') && !strchr(f, '\\') && f[0] != '.' &&
           !strcmp(f + n - ext, ".safetensors");
}

struct pair {
    char *name, *file;
};

static int pair_cmp(const void *a, const void *b)
{
    return strcmp(((const struct pair *)a)->name, ((const struct pair *)b)->name);
}

int llama_index_parse(struct llama_index **out, const char *json, size_t len, const char *where)
{
    cJSON *root = cJSON_ParseWithLength(json, len);
    const cJSON *wm, *e;
    struct llama_index *ix;
    struct pair *p;
    size_t n = 0;
    int rc = RL_OK;

    *out = NULL;
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return rl_error_set(RL_ERR_FORMAT, "%s: expected a JSON object", where);
    }
    wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!wm || !cJSON_IsObject(wm)) {
        cJSON_Delete(root);
        return rl_error_set(RL_ERR_FORMAT, "%s: 'weight_map' missing or not an object", where);
    }
    p = xcalloc((size_t)cJSON_GetArraySize(wm) + 1, sizeof(*p));
    cJSON_ArrayForEach(e, wm) {
        if (!cJSON_IsString(e) || !shard_name_ok(e->valuestring)) {
            rc = rl_error_set(RL_ERR_FORMAT, "%s: weight_map['%.80s']: expected a file name "
                              "ending in .safetensors in the model directory", where,
                              e->string ? e->string : "");
            break;
        }
        if (!e->string || !e->string[0] || strlen(e->string) >= LLAMA_MAX_NAME * 4) {
            rc = rl_error_set(RL_ERR_FORMAT, "%s: weight_map has an empty or overlong "
                              "tensor name", where);
            break;
        }
        p[n].name = xstrdup(e->string);
        p[n].file = xstrdup(e->valuestring);
        n++;
    }
    cJSON_Delete(root);
    if (!rc && n == 0)
        rc = rl_error_set(RL_ERR_FORMAT, "%s: weight_map is empty", where);
    if (!rc) {
        qsort(p, n, sizeof(*p), pair_cmp);
        for (size_t i = 1; i < n && !rc; i++)
            if (!strcmp(p[i - 1].name, p[i].name))
                rc = rl_error_set(RL_ERR_FORMAT, "%s: weight_map names tensor '%.80s' twice",
                                  where, p[i].name);
    }
    ix = xcalloc(1, sizeof(*ix));
    ix->names = xcalloc(n + 1, sizeof(char *));
    ix->files = xcalloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        ix->names[i] = p[i].name;
        ix->files[i] = p[i].file;
    }
    ix->n = n;
    free(p);
    if (rc) {
        llama_index_free(ix);
        return rc;
    }
    *out = ix;
    return RL_OK;
}

size_t llama_index_count(const struct llama_index *ix)
{
    return ix->n;
}

const char *llama_index_file(const struct llama_index *ix, const char *tensor)
{
    size_t lo = 0, hi = ix->n;

    while (lo < hi) {
        const size_t mid = lo + (hi - lo) / 2;
        const int c = strcmp(ix->names[mid], tensor);

        if (c == 0)
            return ix->files[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* loading                                                                   */

/* "[a, b, ...]" of a shape, into buf */
static const char *shape_str(char *buf, size_t cap, int ndim, const int64_t *shape)
{
    size_t n = (size_t)snprintf(buf, cap, "[");

    for (int d = 0; d < ndim && n < cap; d++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%lld", d ? ", " : "", (long long)shape[d]);
    if (n < cap)
        snprintf(buf + n, cap - n, "]");
    return buf;
}

/* t is in f with its shape, in a dtype the loader converts (the checks of
 * st_load_f32 without reading the values) */
static int check_tensor(const struct st_file *f, const struct llama_tensor *t)
{
    const struct st_info *si = st_find(f, t->name);
    char got[128], want[64];
    bool ok = si && si->ndim == t->ndim;

    for (int d = 0; ok && d < t->ndim; d++)
        ok = si->shape[d] == t->shape[d];
    if (!si)
        return rl_error_set(RL_ERR_FORMAT, "%s: tensor '%s' not found", st_path(f), t->name);
    if (!ok)
        return rl_error_set(RL_ERR_FORMAT, "%s: tensor '%s' has shape %s, expected %s",
                            st_path(f), t->name, shape_str(got, sizeof got, si->ndim, si->shape),
                            shape_str(want, sizeof want, t->ndim, t->shape));
    if (si->dtype != ST_F32 && si->dtype != ST_F16 && si->dtype != ST_BF16)
        return rl_error_set(RL_ERR_FORMAT, "%s: tensor '%s' is %s (expected F32, F16 or BF16)",
                            st_path(f), t->name, st_dtype_name(si->dtype));
    return RL_OK;
}

/* every table tensor whose file is `file` (NULL: all) from the open f:
 * read into the block, or (read false) only checked */
static int load_from(struct llama_model *m, const struct st_file *f,
                     const struct llama_index *ix, const char *file, bool read)
{
    for (size_t i = 0; i < m->n_tensors; i++) {
        const struct llama_tensor *t = &m->tensors[i];
        int rc;

        if (file && strcmp(llama_index_file(ix, t->name), file))
            continue;
        rc = read ? st_load_f32(f, t->name, t->ndim, t->shape, m->params + t->offset)
                  : check_tensor(f, t);
        if (rc)
            return rc;
    }
    return RL_OK;
}

static int load_sharded(struct llama_model *m, const char *dir, const char *index_path,
                        bool read, size_t *n_files)
{
    struct llama_index *ix = NULL;
    char *json = NULL;
    size_t len = 0;
    bool *done = xcalloc(m->n_tensors, sizeof(bool));
    int rc = rl_read_file(index_path, INDEX_MAX_BYTES, &json, &len);

    if (!rc)
        rc = llama_index_parse(&ix, json, len, index_path);
    free(json);
    for (size_t i = 0; !rc && i < m->n_tensors; i++)
        if (!llama_index_file(ix, m->tensors[i].name))
            rc = rl_error_set(RL_ERR_FORMAT, "%s: tensor '%s' is not in weight_map", index_path,
                              m->tensors[i].name);
    /* each shard once, in the order the table first needs it */
    for (size_t i = 0; !rc && i < m->n_tensors; i++) {
        const char *file = llama_index_file(ix, m->tensors[i].name);
        struct st_file *f;
        char *path;

        if (done[i])
            continue;
        path = rl_path_join(dir, file);
        rc = access(path, F_OK) == 0
                 ? st_open(&f, path)
                 : rl_error_set(RL_ERR_FORMAT, "%s: weight_map names shard '%s', which is not "
                                "in %s", index_path, file, dir);
        free(path);
        if (rc)
            break;
        rc = load_from(m, f, ix, file, read);
        st_close(f);
        ++*n_files;
        for (size_t j = i; j < m->n_tensors; j++)
            if (!strcmp(llama_index_file(ix, m->tensors[j].name), file))
                done[j] = true;
    }
    llama_index_free(ix);
    free(done);
    return rc;
}

/* the weights of the laid-out m from dir: one file or the index's shards */
static int load_dir(struct llama_model *m, const char *dir, bool read, size_t *n_files)
{
    char *ipath = rl_path_join(dir, INDEX_NAME), *wpath = rl_path_join(dir, WEIGHTS_NAME);
    int rc;

    *n_files = 0;
    if (access(ipath, F_OK) == 0) {
        rc = load_sharded(m, dir, ipath, read, n_files);
    } else if (access(wpath, F_OK) == 0) {
        struct st_file *f;

        if (!(rc = st_open(&f, wpath))) {
            rc = load_from(m, f, NULL, NULL, read);
            st_close(f);
            *n_files = 1;
        }
    } else {
        rc = rl_error_set(RL_ERR_FORMAT, "%s: neither %s nor %s", dir, WEIGHTS_NAME,
                          INDEX_NAME);
    }
    free(ipath);
    free(wpath);
    return rc;
}

int llama_model_load(struct llama_model *m, const char *dir)
{
    struct llama_config cfg;
    char *cpath = rl_path_join(dir, "config.json");
    size_t n_files;
    int rc;

    memset(m, 0, sizeof(*m));
    rc = llama_config_load(&cfg, cpath);
    if (!rc)
        rc = llama_model_init(m, &cfg);
    if (!rc && (rc = load_dir(m, dir, true, &n_files)))
        llama_model_free(m);
    free(cpath);
    return rc;
}

int llama_model_check_dir(const struct llama_config *cfg, const char *dir, size_t *n_tensors,
                          size_t *n_files)
{
    struct llama_model m;
    size_t emb, norm, head;
    int rc;

    if ((rc = llama_config_validate(cfg, dir)))
        return rc;
    table_build(&m, cfg, &emb, &norm, &head);
    rc = load_dir(&m, dir, false, n_files);
    *n_tensors = m.n_tensors;
    free(m.tensors);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* saving                                                                    */

/* tensors [lo, hi) of the table into path */
static int save_range(const struct llama_model *m, size_t lo, size_t hi, const char *path,
                      int dtype)
{
    struct st_writer *w = st_writer_new();
    int rc = RL_OK;

    for (size_t i = lo; i < hi && !rc; i++) {
        const struct llama_tensor *t = &m->tensors[i];

        rc = st_writer_add(w, t->name, m->params + t->offset, t->ndim, t->shape,
                           (enum st_dtype)dtype);
    }
    if (!rc)
        rc = st_writer_set_metadata(w, "format", "pt");
    if (!rc)
        rc = st_writer_write(w, path);
    st_writer_free(w);
    return rc;
}

int llama_model_save(const struct llama_model *m, const char *dir, int dtype, size_t shards)
{
    char *cpath, *json;
    int rc = RL_OK;

    if (dtype != ST_F32 && dtype != ST_F16 && dtype != ST_BF16)
        return rl_error_set(RL_ERR_ARG, "%s: weights can be saved as F32, F16 or BF16", dir);
    if (shards == 0 || shards > m->n_tensors || shards > 99999)
        return rl_error_set(RL_ERR_ARG, "%s: %zu shards for %zu tensors", dir, shards,
                            m->n_tensors);
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return rl_error_set(RL_ERR_IO, "%s: cannot create: %s", dir, strerror(errno));
    if (shards == 1) {
        char *wpath = rl_path_join(dir, WEIGHTS_NAME);

        rc = save_range(m, 0, m->n_tensors, wpath, dtype);
        free(wpath);
    } else {
        cJSON *root = cJSON_CreateObject(), *meta = cJSON_CreateObject();
        cJSON *wm = cJSON_CreateObject();
        size_t bytes = 0;

        RL_ASSERT(root && meta && wm);
        for (size_t s = 0; s < shards && !rc; s++) {
            const size_t lo = s * m->n_tensors / shards, hi = (s + 1) * m->n_tensors / shards;
            char file[64], *path;

            snprintf(file, sizeof(file), "model-%05zu-of-%05zu.safetensors", s + 1, shards);
            path = rl_path_join(dir, file);
            rc = save_range(m, lo, hi, path, dtype);
            free(path);
            for (size_t i = lo; i < hi; i++) {
                cJSON_AddStringToObject(wm, m->tensors[i].name, file);
                bytes += m->tensors[i].numel * st_dtype_size((enum st_dtype)dtype);
            }
        }
        cJSON_AddNumberToObject(meta, "total_size", (double)bytes);
        cJSON_AddItemToObject(root, "metadata", meta);
        cJSON_AddItemToObject(root, "weight_map", wm);
        json = cJSON_Print(root);
        RL_ASSERT(json != NULL);
        cJSON_Delete(root);
        if (!rc) {
            char *ipath = rl_path_join(dir, INDEX_NAME);

            rc = rl_write_text_atomic(ipath, json);
            free(ipath);
        }
        cJSON_free(json);
    }
    if (rc)
        return rc;
    json = llama_config_to_json(&m->cfg);
    cpath = rl_path_join(dir, "config.json");
    rc = rl_write_text_atomic(cpath, json);
    cJSON_free(json);
    free(cpath);
    return rc;
}
