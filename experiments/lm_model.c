/*
 * lm_model.c: a plan's decoder (lm_model.h): config, targets, shapes and
 * the byte-level tokenizer.json of llama-tiny.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>

#include "core/status.h"
#include "datasets/commonsense.h"
#include "datasets/commonsense_synth.h"
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

/* enum block_linear bit i (q_proj, k_proj, v_proj, out_proj, fc1, fc2,
 * in_proj) -> the decoder's linears (in_proj, open_clip's packed q, k, v:
 * the three) */
static const unsigned module_linears[EXP_N_MODULES] = {
    1u << LLAMA_LIN_Q, 1u << LLAMA_LIN_K, 1u << LLAMA_LIN_V, 1u << LLAMA_LIN_O,
    1u << LLAMA_LIN_UP, 1u << LLAMA_LIN_DOWN,
    (1u << LLAMA_LIN_Q) | (1u << LLAMA_LIN_K) | (1u << LLAMA_LIN_V),
};

void lm_plan_target(const struct exp_targets *t, struct llama_target *out)
{
    out->lo = t->layer_lo;
    out->hi = t->layer_hi;
    out->modules = 0;
    for (int i = 0; i < EXP_N_MODULES; i++)
        if ((t->modules >> i) & 1u)
            out->modules |= module_linears[i];
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

int lm_split_counts(const struct run_plan *p, size_t N, size_t *n_val, size_t *n_train)
{
    *n_val = 0;
    if (p->shots)
        return rl_error_set(RL_ERR_ARG, "%s: data.shots counts items per class, which "
                            "commonsense data has not: use data.fractions", p->id);
    if (p->val.kind == EXP_VAL_SPEC)
        return rl_error_set(RL_ERR_ARG, "%s: data.val as a dataset spec is not read for "
                            "commonsense data: give N items or a fraction", p->id);
    if (p->val.kind == EXP_VAL_PER_CLASS)
        *n_val = p->val.per_class;
    else if (p->val.kind == EXP_VAL_FRACTION)
        *n_val = (size_t)llround(p->val.fraction * (double)N);
    if (p->val.kind != EXP_VAL_NONE && (*n_val == 0 || *n_val >= N))
        return rl_error_set(RL_ERR_ARG, "%s: data.val holds out %zu of %zu training items "
                            "(at least 1, and fewer than all)", p->id, *n_val, N);
    *n_train = (size_t)llround(p->fraction * (double)(N - *n_val));
    if (*n_train == 0)
        *n_train = 1;
    return RL_OK;
}

/* "commonsense:DIR[:train|:test]": DIR and its length */
static size_t spec_dir_len(const char *spec, const char **dir)
{
    size_t n;

    *dir = spec + strlen("commonsense:");
    n = strlen(*dir);
    if (n > 6 && !strcmp(*dir + n - 6, ":train"))
        n -= 6;
    else if (n > 5 && !strcmp(*dir + n - 5, ":test"))
        n -= 5;
    return n;
}

int lm_check_data(const struct run_plan *p, size_t *n_train)
{
    struct cs_set set;
    char path[4096];
    const char *dir;
    size_t n = spec_dir_len(p->dataset, &dir), n_val, tasks = 0;
    int rc;

    snprintf(path, sizeof(path), "%.*s/train.json", (int)n, dir);
    if ((rc = cs_load(&set, path)) != RL_OK)
        return rl_error_prefix(rc, "run %s: data.dataset", p->id);
    rc = lm_split_counts(p, set.n, &n_val, n_train);
    cs_free(&set);
    if (rc != RL_OK)
        return rc;
    n = spec_dir_len(p->eval, &dir);
    for (size_t i = 0; i < CS_N_TASKS + CS_SYNTH_N_TASKS; i++) {
        struct stat st;

        snprintf(path, sizeof(path), "%.*s/%s/test.json", (int)n, dir,
                 i < CS_N_TASKS ? CS_TASKS[i] : CS_SYNTH_TASKS[i - CS_N_TASKS]);
        tasks += stat(path, &st) == 0 && S_ISREG(st.st_mode);
    }
    if (tasks == 0)
        return rl_error_set(RL_ERR_ARG, "run %s: data.eval = '%s': no DIR/<task>/test.json "
                            "there", p->id, p->eval);
    return RL_OK;
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
