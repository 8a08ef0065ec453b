/*
 * llama_presets.c: built-in decoder shapes and HF-style random
 * initialisation (llama.h).
 *
 *   llama-tiny   this project's small Llama-layout model, for tests, the
 *                score command and (next) an offline language quickstart:
 *                byte-level vocabulary of 258 ids (0..255 the UTF-8 bytes,
 *                256 bos, 257 eos), width 128, 4 layers, 4 query heads
 *                sharing 2 key/value heads (GQA) of head_dim 32, SwiGLU
 *                MLP 352, RMSNorm eps 1e-6, rope_theta 10000, 512
 *                positions, tied head: 771,456 parameters
 *   qwen2-0.5b   Qwen/Qwen2-0.5B's shapes (24 layers, width 896, 14 heads,
 *                2 key/value heads, MLP 4864, vocab 151936, q/k/v biases,
 *                tied head, rope_theta 1e6): 494,032,768 parameters; its
 *                real weights come from a model directory
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "core/rng.h"
#include "core/status.h"
#include "models/llama.h"

static const char *const preset_names[] = { "llama-tiny", "qwen2-0.5b", NULL };

const char *const *llama_preset_names(void)
{
    return preset_names;
}

bool llama_is_preset(const char *name)
{
    for (size_t i = 0; preset_names[i]; i++)
        if (!strcmp(preset_names[i], name))
            return true;
    return false;
}

int llama_config_preset(struct llama_config *c, const char *name)
{
    if (!strcmp(name, "llama-tiny")) {
        llama_config_defaults(c, LLAMA_ARCH_LLAMA);
        c->hidden = 128;
        c->intermediate = 352;
        c->layers = 4;
        c->heads = 4;
        c->kv_heads = 2;
        c->head_dim = 32;
        c->vocab_size = 258;
        c->max_position = 512;
        c->tie_word_embeddings = true;
        c->bos_token_id = 256;
        c->n_eos = 1;
        c->eos_token_id[0] = 257;
        return RL_OK;
    }
    if (!strcmp(name, "qwen2-0.5b")) {
        llama_config_defaults(c, LLAMA_ARCH_QWEN2);
        c->hidden = 896;
        c->intermediate = 4864;
        c->layers = 24;
        c->heads = 14;
        c->kv_heads = 2;
        c->head_dim = 64;
        c->vocab_size = 151936;
        c->max_position = 131072;
        c->rope_theta = 1000000.0;
        c->tie_word_embeddings = true;
        c->bos_token_id = 151643;
        c->n_eos = 1;
        c->eos_token_id[0] = 151643;
        snprintf(c->torch_dtype, sizeof(c->torch_dtype), "bfloat16");
        return RL_OK;
    }
    return rl_error_set(RL_ERR_ARG, "unknown decoder preset '%s' (expected llama-tiny or "
                        "qwen2-0.5b)", name);
}

static void fill_const(float *x, size_t n, float v)
{
    for (size_t i = 0; i < n; i++)
        x[i] = v;
}

void llama_model_init_random(struct llama_model *m, uint64_t seed)
{
    const float std = m->cfg.initializer_range;
    struct rng root, r;

    rng_init(&root, seed);
    /* one stream per tensor, so a tensor's values do not depend on the
     * sizes of the others */
    for (size_t i = 0; i < m->n_tensors; i++) {
        const struct llama_tensor *t = &m->tensors[i];
        float *x = m->params + t->offset;

        rng_split(&r, &root, i);
        if (t->ndim == 2)               /* linears and the embedding */
            rng_fill_normal(&r, x, t->numel, 0.0f, std);
        else if (strstr(t->name, "norm"))
            fill_const(x, t->numel, 1.0f);
        else                            /* biases */
            fill_const(x, t->numel, 0.0f);
    }
}

int llama_model_preset(struct llama_model *m, const char *name, uint64_t seed)
{
    struct llama_config c;
    int rc;

    memset(m, 0, sizeof(*m));
    if ((rc = llama_config_preset(&c, name)) || (rc = llama_model_init(m, &c)))
        return rc;
    llama_model_init_random(m, seed);
    return RL_OK;
}

int llama_model_open(struct llama_model *m, const char *name_or_dir, uint64_t seed)
{
    struct stat st;

    memset(m, 0, sizeof(*m));
    if (llama_is_preset(name_or_dir))
        return llama_model_preset(m, name_or_dir, seed);
    if (stat(name_or_dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return rl_error_set(RL_ERR_ARG, "'%s' is neither a decoder preset (llama-tiny, "
                            "qwen2-0.5b) nor a model directory", name_or_dir);
    return llama_model_load(m, name_or_dir);
}
