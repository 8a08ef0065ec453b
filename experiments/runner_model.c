/*
 * runner_model.c: the runner's helpers shared with other commands (runner.h):
 * a plan's model directory and model, its tokenizer, the adapted layers'
 * shapes from a config (budget matching), and mkdir -p.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/alloc.h"
#include "core/status.h"
#include "experiments/runner.h"
#include "formats/safetensors.h"
#include "experiments/lm_model.h"
#include "experiments/pretrain_vit.h"
#include "models/dinov2.h"

#define BYTES_TOKENIZER_FILE   "tokenizer_bytes.json"

/* ------------------------------------------------------------------------ */
/* model, tokenizer, shapes                                                  */

const char *runner_model_dir(const struct exp_model *model)
{
    return model->preset ? model->pretrain_dir : model->name;
}

static bool file_exists(const char *dir, const char *name)
{
    char path[4096];
    struct stat st;

    if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
        return false;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int runner_load_model(struct clip_model *m, const struct exp_model *model)
{
    const char *dir = runner_model_dir(model);

    memset(m, 0, sizeof(*m));
    /* a DINOv2-layout preset (vit-tiny): pretrained with these very settings
     * (experiments/pretrain_vit.h), not merely present */
    if (model->preset && dinov2_is_preset(model->name) && !pretrain_vit_is_cached(model))
        return rl_error_set(RL_ERR_ARG, "model %s is not pretrained with this file's [model] "
                            "settings: %s has no matching pretrain.json (run `randlora pretrain "
                            "-c FILE` with this experiment file first)", model->name, dir);
    if (model->preset && (!file_exists(dir, "config.json") ||
                          !file_exists(dir, "model.safetensors")))
        return rl_error_set(RL_ERR_ARG, "model %s is not pretrained yet: %s has no config.json "
                            "+ model.safetensors (run `randlora pretrain -c FILE` with this "
                            "experiment file first)", model->name, dir);
    return backbone_model_load(m, dir);
}

/* {"type": "bytes", "offset": 0, "sot": 256, "eot": 257} */
static int load_bytes_spec(const char *dir, int32_t *offset, int32_t *sot, int32_t *eot)
{
    char path[4096];
    FILE *fp;
    char buf[4096];
    size_t n;
    cJSON *j, *it;
    int rc = RL_OK;

    snprintf(path, sizeof(path), "%s/%s", dir, BYTES_TOKENIZER_FILE);
    if (!(fp = fopen(path, "rb")))
        return rl_error_set(RL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    n = fread(buf, 1, sizeof(buf) - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    if (!(j = cJSON_Parse(buf)))
        return rl_error_set(RL_ERR_FORMAT, "%s: not JSON", path);
    it = cJSON_GetObjectItemCaseSensitive(j, "type");
    if (!cJSON_IsString(it) || strcmp(it->valuestring, "bytes"))
        rc = rl_error_set(RL_ERR_FORMAT, "%s: \"type\" must be \"bytes\"", path);
    const char *keys[3] = { "offset", "sot", "eot" };
    int32_t *dst[3] = { offset, sot, eot };
    for (int k = 0; k < 3 && rc == RL_OK; k++) {
        it = cJSON_GetObjectItemCaseSensitive(j, keys[k]);
        if (!cJSON_IsNumber(it) || it->valuedouble < 0 || it->valuedouble > 1e6 ||
            it->valuedouble != (double)(int32_t)it->valuedouble)
            rc = rl_error_set(RL_ERR_FORMAT, "%s: \"%s\" must be a whole number in [0, 1e6]",
                              path, keys[k]);
        else
            *dst[k] = (int32_t)it->valuedouble;
    }
    cJSON_Delete(j);
    if (rc == RL_OK && ((*sot >= *offset && *sot <= *offset + 255) ||
                        (*eot >= *offset && *eot <= *offset + 255)))
        rc = rl_error_set(RL_ERR_FORMAT, "%s: sot/eot inside the byte range [offset, offset+255]",
                          path);
    return rc;
}

int runner_load_tokenizer(struct tokenizer **out, const char *dir, const struct clip_config *cfg)
{
    const struct clip_text_config *tc = &cfg->text;
    int32_t offset = 0, sot = 256, eot = 257;
    int rc;

    *out = NULL;
    if ((file_exists(dir, "vocab.json") && file_exists(dir, "merges.txt")) ||
        file_exists(dir, "tokenizer.json")) {
        if ((rc = tok_load_dir(out, dir)) != RL_OK)
            return rc;
    } else {
        if (file_exists(dir, BYTES_TOKENIZER_FILE)) {
            if ((rc = load_bytes_spec(dir, &offset, &sot, &eot)) != RL_OK)
                return rc;
        } else if (!(tc->vocab_size == 258 && tc->bos_token_id == 256 &&
                     tc->eos_token_id == 257)) {
            return rl_error_set(RL_ERR_IO, "%s: no tokenizer (vocab.json + merges.txt, "
                                "tokenizer.json or " BYTES_TOKENIZER_FILE ")", dir);
        }
        if ((size_t)offset + 256 > tc->vocab_size || (size_t)sot >= tc->vocab_size ||
            (size_t)eot >= tc->vocab_size || eot != tc->eos_token_id)
            return rl_error_set(RL_ERR_FORMAT, "%s: byte tokenizer (offset %d, sot %d, eot %d) "
                                "does not fit the model (vocab %zu, eos %lld)", dir, (int)offset,
                                (int)sot, (int)eot, tc->vocab_size, (long long)tc->eos_token_id);
        *out = tok_new_bytes(offset, sot, eot);
    }
    rc = tok_set_frame(*out, (int)tc->context,
                       tc->pad_token_id >= 0 ? (int32_t)tc->pad_token_id : 0, true);
    if (rc != RL_OK) {
        tok_free(*out);
        *out = NULL;
    }
    return rc;
}

size_t runner_target_shapes(const struct clip_config *cfg, const struct exp_targets *t,
                            struct adapter_shape *out, size_t max)
{
    size_t n = 0;

    for (int tw = 0; tw < 2; tw++) {
        size_t L = tw == 0 ? cfg->vision.layers : cfg->text.layers;
        size_t C = tw == 0 ? cfg->vision.hidden : cfg->text.hidden;
        size_t F = tw == 0 ? cfg->vision.intermediate : cfg->text.intermediate;

        if (!(t->towers & (1u << tw)))
            continue;
        for (size_t l = t->layer_lo; l < L && l <= t->layer_hi; l++)
            for (int i = 0; i < BLOCK_NUM_LINEARS; i++) {
                if (!((t->modules >> i) & 1u))
                    continue;
                if (out && n < max)
                    block_linear_shape((enum block_linear)i, C, F, &out[n].d_out,
                                       &out[n].d_in);
                n++;
            }
    }
    return n;
}

static int plan_config(const struct exp_model *model, struct clip_config *cfg)
{
    if (model->preset && dinov2_is_preset(model->name))
        return dinov2_config_preset(cfg, model->name);
    if (model->preset)
        return clip_config_preset(cfg, model->name);
    return backbone_config_load_dir(cfg, model->name, NULL);   /* any kind, either layout */
}

int runner_plan_shapes(void *ctx, const struct run_plan *plan, const struct adapter_shape **shapes,
                       size_t *n)
{
    struct runner_shapes *s = ctx;
    struct clip_config cfg;
    int rc = lm_model_is_decoder(&plan->model) ? RL_OK : plan_config(&plan->model, &cfg);
    size_t k;

    struct exp_targets t = plan->targets;

    if (lm_model_is_decoder(&plan->model)) {
        /* a decoder (experiments/lm_model.h) */
        struct llama_config lc;

        rc = lm_plan_config(&plan->model, &lc);
        k = rc == RL_OK ? lm_target_shapes(&lc, &t, NULL, 0) : 0;
        if (rc == RL_OK && k > s->cap) {
            free(s->shapes);
            s->shapes = xmalloc_array(k, sizeof(*s->shapes));
            s->cap = k;
        }
        if (rc == RL_OK)
            s->n = lm_target_shapes(&lc, &t, s->shapes, s->cap);
        *shapes = s->shapes;
        *n = rc == RL_OK ? s->n : 0;
        return rc;
    }
    if (rc != RL_OK)
        return rc;
    if (plan->model.head == EXP_HEAD_LINEAR)
        t.towers &= 1u << CLIP_TOWER_VISION;   /* only the image tower runs */
    k = runner_target_shapes(&cfg, &t, NULL, 0);
    if (k > s->cap) {
        free(s->shapes);
        s->shapes = xmalloc_array(k, sizeof(*s->shapes));
        s->cap = k;
    }
    s->n = runner_target_shapes(&cfg, &t, s->shapes, s->cap);
    *shapes = s->shapes;
    *n = s->n;
    return RL_OK;
}

void runner_shapes_free(struct runner_shapes *s)
{
    free(s->shapes);
    memset(s, 0, sizeof(*s));
}

int runner_mkdir_p(const char *dir)
{
    char path[4096];
    size_t n = strlen(dir);

    if (n == 0 || n >= sizeof(path))
        return rl_error_set(RL_ERR_ARG, "bad directory name '%s'", dir);
    memcpy(path, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (path[i] != '/' && path[i] != '\0')
            continue;
        char c = path[i];

        path[i] = '\0';
        if (mkdir(path, 0777) != 0 && errno != EEXIST)
            return rl_error_set(RL_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
        path[i] = c;
    }
    return RL_OK;
}
