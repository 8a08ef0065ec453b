/*
 * lm_model.c: a plan's decoder (lm_model.h): config, targets, shapes and
 * the byte-level tokenizer.json of llama-tiny.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "experiments/lm_model.h"
#include "experiments/runner.h"

bool lm_model_is_decoder(const struct exp_model *m)
{
    char path[4096];

    if (m->preset)
        return llama_is_preset(m->name);
    if ((size_t)snprintf(path, sizeof(path), "%s/config.json", m->name) >= sizeof(path))
        return false;
    return llama_config_file_is_decoder(path);
}

int lm_plan_config(const struct exp_model *m, struct llama_config *cfg)
{
    char path[4096];

    if (m->preset)
        return llama_config_preset(cfg, m->name);
    snprintf(path, sizeof(path), "%s/config.json", m->name);
    return llama_config_load(cfg, path);
}

/* enum block_linear bit i (q_proj, k_proj, v_proj, out_proj, fc1, fc2) ->
 * the decoder's linear */
static const enum llama_linear module_linear[EXP_N_MODULES] = {
    LLAMA_LIN_Q, LLAMA_LIN_K, LLAMA_LIN_V, LLAMA_LIN_O, LLAMA_LIN_UP, LLAMA_LIN_DOWN,
};

void lm_plan_target(const struct exp_targets *t, struct llama_target *out)
{
    out->lo = t->layer_lo;
    out->hi = t->layer_hi;
    out->modules = 0;
    for (int i = 0; i < EXP_N_MODULES; i++)
        if ((t->modules >> i) & 1u)
            out->modules |= 1u << module_linear[i];
}

size_t lm_target_shapes(const struct llama_config *c, const struct exp_targets *t,
                        struct adapter_shape *out, size_t max)
{
    struct llama_target lt;
    size_t n = 0;

    lm_plan_target(t, &lt);
    for (size_t l = lt.lo; l < c->layers && l <= lt.hi; l++)
        for (int i = 0; i < LLAMA_NUM_LINEARS; i++) {
            if (!((lt.modules >> i) & 1u))
                continue;
            if (out && n < max)
                llama_linear_shape(c, (enum llama_linear)i, &out[n].d_out, &out[n].d_in);
            n++;
        }
    return n;
}

/* GPT-2's bytes_to_unicode: the code point byte b is written as */
static unsigned byte_symbol(unsigned b)
{
    unsigned extra = 0;

    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174)
        return b;
    for (unsigned x = 0; x < b; x++)
        if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || x >= 174))
            extra++;
    return 256 + extra;
}

static cJSON *added_token(int id, const char *content)
{
    cJSON *o = cJSON_CreateObject();

    cJSON_AddNumberToObject(o, "id", id);
    cJSON_AddStringToObject(o, "content", content);
    cJSON_AddBoolToObject(o, "single_word", false);
    cJSON_AddBoolToObject(o, "lstrip", false);
    cJSON_AddBoolToObject(o, "rstrip", false);
    cJSON_AddBoolToObject(o, "normalized", false);
    cJSON_AddBoolToObject(o, "special", true);
    return o;
}

static cJSON *byte_level(void)
{
    cJSON *o = cJSON_CreateObject();

    cJSON_AddStringToObject(o, "type", "ByteLevel");
    cJSON_AddBoolToObject(o, "add_prefix_space", false);
    cJSON_AddBoolToObject(o, "trim_offsets", true);
    cJSON_AddBoolToObject(o, "use_regex", true);
    return o;
}

int lm_write_byte_tokenizer(const char *path, int bos, int eos)
{
    cJSON *root = cJSON_CreateObject(), *added = cJSON_CreateArray();
    cJSON *model = cJSON_CreateObject(), *vocab = cJSON_CreateObject();
    char *text;
    FILE *fp;
    int rc = RL_OK;

    cJSON_AddStringToObject(root, "version", "1.0");
    cJSON_AddNullToObject(root, "truncation");
    cJSON_AddNullToObject(root, "padding");
    cJSON_AddItemToArray(added, added_token(bos, "<s>"));
    cJSON_AddItemToArray(added, added_token(eos, "</s>"));
    cJSON_AddItemToObject(root, "added_tokens", added);
    cJSON_AddNullToObject(root, "normalizer");
    cJSON_AddItemToObject(root, "pre_tokenizer", byte_level());
    cJSON_AddNullToObject(root, "post_processor");
    cJSON_AddItemToObject(root, "decoder", byte_level());
    cJSON_AddStringToObject(model, "type", "BPE");
    for (unsigned b = 0; b < 256; b++) {
        unsigned cp = byte_symbol(b);
        char sym[4];

        /* code points below 0x800: one or two UTF-8 bytes */
        if (cp < 0x80) {
            sym[0] = (char)cp;
            sym[1] = 0;
        } else {
            sym[0] = (char)(0xC0 | (cp >> 6));
            sym[1] = (char)(0x80 | (cp & 0x3F));
            sym[2] = 0;
        }
        cJSON_AddNumberToObject(vocab, sym, (double)b);
    }
    cJSON_AddItemToObject(model, "vocab", vocab);
    cJSON_AddItemToObject(model, "merges", cJSON_CreateArray());
    cJSON_AddItemToObject(root, "model", model);
    text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text)
        return rl_error_set(RL_ERR, "%s: cannot render the tokenizer", path);
    if (!(fp = fopen(path, "wb")))
        rc = rl_error_set(RL_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    else if (fputs(text, fp) < 0 || fclose(fp) != 0)
        rc = rl_error_set(RL_ERR_WRITE, "%s: cannot write", path);
    free(text);
    return rc;
}
