/*
 * cmd_merge.c: `randlora merge`: a peft-format adapter merged into a model,
 * saved as a full model directory.
 *
 *     randlora merge --model DIR --adapter ADAPTER_DIR -o OUT_DIR [--dtype F32|F16|BF16]
 *                    [--layout hf|open_clip] [--force]
 *     randlora merge --model DECODER_DIR --run RUN.h5 -o OUT_DIR [--dtype ...] [--force]
 *
 * With --run, a Llama-family decoder run's adapters are merged into its
 * model (cli/merge_decoder.c); what follows is the CLIP path.
 *
 * 1. the model: DIR in either layout (clip_model_load: config.json +
 *    model.safetensors, or open_clip_config.json + open_clip_model.safetensors);
 * 2. the adapter: ADAPTER_DIR/adapter_config.json (method, rank, scaling:
 *    adapter_io_read_config) and ADAPTER_DIR/adapter_model.safetensors. The
 *    adapted layers are the modules its keys name,
 *        base_model.model.<module>.<tensor>   e.g.
 *        base_model.model.vision_model.encoder.layers.3.self_attn.q_proj.lora_A.weight
 *    where <module> is a linear of the model by its Hugging Face name
 *    ({vision,text}_model.encoder.layers.L.{self_attn.{q,k,v,out}_proj,
 *    self_attn.in_proj (q, k, v packed), mlp.fc1, mlp.fc2}); a key naming
 *    anything else is an error listing what
 *    exists. (target_modules in the config is not needed: the weights say
 *    which modules were adapted, whatever pattern produced them.) Adapters
 *    are built on exactly those layers with the file's configuration, so
 *    the method is sized as it was when saved, and adapter_io_import reads
 *    every tensor, shape-checked, all or nothing;
 * 3. W += dW for every adapted linear (adapter_merge, peft's merge);
 * 4. the config and weights in DIR's layout or --layout's (clip_model_save_as;
 *    F32 unless --dtype says otherwise), then the tokenizer and preprocessing
 *    files DIR has
 *    (vocab.json, merges.txt, tokenizer.json, tokenizer_config.json,
 *    special_tokens_map.json, preprocessor_config.json, and the byte-level
 *    tokenizer_bytes.json of a pretrained clip-tiny) copied. Each file is
 *    written to a temporary name and renamed. OUT_DIR must not be DIR, and
 *    must be missing or empty unless --force (cli_output_dir_ok).
 *
 * The merged model computes what the adapted model computes (the test
 * compares both towers' embeddings within 1e-5).
 *
 * Exit status: 0 written; 2 bad usage, bad input or a non-empty OUT_DIR
 * without --force (one line on stderr); 1 other failures.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/status.h"
#include "core/threads.h"
#include "cli/cli.h"
#include "cli/commands.h"
#include "cli/merge_decoder.h"
#include "cli/merge_files.h"
#include "methods/adapter.h"
#include "methods/adapter_io.h"
#include "models/clip.h"
#include "models/llama.h"
#include "formats/safetensors.h"

#define MERGE_LAYER_PREFIX "base_model.model."

static void merge_usage(FILE *out)
{
    fprintf(out,
            "usage: randlora merge --model DIR --adapter ADAPTER_DIR -o OUT_DIR\n"
            "                      [--dtype F32|F16|BF16] [--layout hf|open_clip] [--force]\n"
            "       randlora merge --model DECODER_DIR --run RUN.h5 -o OUT_DIR\n"
            "                      [--dtype F32|F16|BF16] [--force]\n"
            "\n"
            "Merge a peft-format adapter (adapter_config.json + adapter_model.safetensors;\n"
            "LoRA, VeRA, RandLoRA, NoLA or this harness's FULL) into the model's weights,\n"
            "W += dW for every linear the adapter names, and write a full model\n"
            "directory (config and weights in either layout) with DIR's tokenizer and\n"
            "preprocessor files. DIR may hold either layout.\n"
            "\n"
            "  --model DIR          the base model directory the adapter was trained on\n"
            "  --adapter DIR        the adapter directory (randlora export, peft's\n"
            "                       save_pretrained)\n"
            "  --run RUN.h5         instead of --adapter, for a Llama-family decoder: the\n"
            "                       trained adapters of a decoder run (its results file);\n"
            "                       written as config.json + model.safetensors\n"
            "  -o OUT_DIR           the merged model (created; must not be DIR; one that\n"
            "                       holds anything is refused without --force)\n"
            "  --dtype T            F32 (default), F16 or BF16 for the weights\n"
            "  --layout L           hf (config.json + model.safetensors) or open_clip\n"
            "                       (open_clip_config.json + open_clip_model.safetensors);\n"
            "                       default: the layout DIR holds\n"
            "  --force              write into a non-empty OUT_DIR, replacing the files\n"
            "                       merge writes (others are left as they are)\n");
}

static int bad_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int bad_usage(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "randlora merge: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see randlora merge --help)\n");
    return 2;
}

/* every linear of the model, in clip_site order: the names and sites */
struct linear_table {
    size_t n;
    struct clip_site *sites;
    char (*names)[CLIP_MAX_NAME];
};

static void linear_table_init(struct linear_table *t, const struct clip_model *m)
{
    size_t L[CLIP_NUM_TOWERS] = { m->cfg.vision.layers, m->cfg.text.layers };

    t->n = (L[0] + L[1]) * BLOCK_NUM_LINEARS;
    t->sites = xcalloc(t->n, sizeof(*t->sites));
    t->names = xcalloc(t->n, sizeof(*t->names));
    for (size_t k = 0, tw = 0; tw < CLIP_NUM_TOWERS; tw++)
        for (size_t l = 0; l < L[tw]; l++)
            for (int i = 0; i < BLOCK_NUM_LINEARS; i++, k++) {
                t->sites[k].tower = (enum clip_tower)tw;
                t->sites[k].layer = l;
                t->sites[k].lin = (enum block_linear)i;
                clip_site_name(&t->sites[k], t->names[k], sizeof(t->names[k]));
            }
}

static void linear_table_free(struct linear_table *t)
{
    free(t->sites);
    free(t->names);
}

/* The modules the adapter's weight keys name: targets (one per adapted
 * (tower, layer), exact module masks), *n_targets. */
static int adapted_targets(const char *weights, const struct clip_model *m,
                           const struct linear_table *lt, const char *head,
                           struct clip_target **targets, size_t *n_targets)
{
    const size_t plen = strlen(MERGE_LAYER_PREFIX);
    unsigned *mask = xcalloc(lt->n / BLOCK_NUM_LINEARS, sizeof(unsigned));
    struct st_file *f = NULL;
    size_t nt = 0;
    int rc;

    *targets = NULL;
    *n_targets = 0;
    if ((rc = st_open(&f, weights)))
        goto out;
    for (size_t i = 0; i < st_count(f); i++) {
        const char *key = st_info_at(f, i)->name, *rest;
        bool found = false;

        if (strncmp(key, MERGE_LAYER_PREFIX, plen) != 0)
            continue;                   /* shared tensors: adapter_io_import checks them */
        rest = key + plen;
        if (head && !strncmp(rest, head, strlen(head)) &&
            (!strcmp(rest + strlen(head), ".weight") || !strcmp(rest + strlen(head), ".bias")))
            continue;                   /* the head: read by merge_head */
        for (size_t k = 0; k < lt->n && !found; k++) {
            size_t nl = strlen(lt->names[k]);

            if (!strncmp(rest, lt->names[k], nl) && rest[nl] == '.') {
                mask[k / BLOCK_NUM_LINEARS] |= 1u << lt->sites[k].lin;
                found = true;
            }
        }
        if (!found) {
            rc = rl_error_set(RL_ERR_FORMAT, "%s: tensor '%.200s' names no linear layer of the "
                              "model (modules are " MERGE_LAYER_PREFIX "{vision,text}_model."
                              "encoder.layers.L.{self_attn.{q,k,v,out,in}_proj,mlp.fc1,mlp.fc2}; "
                              "vision layers 0-%zu, text layers 0-%zu)", weights, key,
                              m->cfg.vision.layers - 1, m->cfg.text.layers - 1);
            goto out;
        }
    }
    for (size_t j = 0; j < lt->n / BLOCK_NUM_LINEARS; j++)
        nt += mask[j] != 0;
    if (nt == 0) {
        rc = rl_error_set(RL_ERR_FORMAT, "%s: no tensor names an adapted layer (keys "
                          MERGE_LAYER_PREFIX "<module>.<tensor>)", weights);
        goto out;
    }
    *targets = xcalloc(nt, sizeof(**targets));
    for (size_t j = 0; j < lt->n / BLOCK_NUM_LINEARS; j++) {
        const struct clip_site *s = &lt->sites[j * BLOCK_NUM_LINEARS];

        if (!mask[j])
            continue;
        (*targets)[*n_targets].towers = 1u << s->tower;
        (*targets)[*n_targets].lo = s->layer;
        (*targets)[*n_targets].hi = s->layer;
        (*targets)[*n_targets].modules = mask[j];
        (*n_targets)++;
    }
out:
    st_close(f);
    free(mask);
    return rc;
}

/* the head's shape (its weight's, 2-D) when the weights file holds it
 * (modules_to_save); head->out stays 0 without one. adapter_io_import
 * then checks both tensors against it. */
static int head_shape(const char *weights, const char *name, struct adapter_io_head *head)
{
    char key[128];
    struct st_file *f = NULL;
    const struct st_info *t;
    int rc;

    snprintf(key, sizeof key, MERGE_LAYER_PREFIX "%s.weight", name);
    if ((rc = st_open(&f, weights)))
        return rc;
    t = st_find(f, key);
    if (t && (t->ndim != 2 || t->shape[0] < 1 || t->shape[1] < 1 || t->numel > ((size_t)1 << 28) ||
              t->shape[0] > (1 << 20) || t->shape[1] > (1 << 20)))
        rc = rl_error_set(RL_ERR_FORMAT, "%s: tensor '%s' must be 2-D (classes, features), each "
                          "1 .. 2^20", weights, key);
    else if (t)
        *head = (struct adapter_io_head){ .path = name, .out = (size_t)t->shape[0],
                                          .in = (size_t)t->shape[1] };
    st_close(f);
    return rc;
}

/* DIR and OUT the same directory? (OUT may not exist yet) */
static bool same_dir(const char *a, const char *b)
{
    char ra[PATH_MAX], rb[PATH_MAX];

    return realpath(a, ra) && realpath(b, rb) && !strcmp(ra, rb);
}

static int merge_run(const char *model_dir, const char *adapter_dir, const char *out_dir,
                     int dtype, bool layout_set, enum clip_layout layout)
{
    struct adapter_io_files files = { .dir = adapter_dir };
    struct adapter_io_info info;
    struct clip_model m;
    struct clip_adapters ca;
    struct linear_table lt = { 0 };
    struct clip_target *targets = NULL;
    struct adapter_io_module *mods = NULL;
    char (*names)[CLIP_MAX_NAME] = NULL;
    char *weights = merge_path_join(adapter_dir, ADAPTER_IO_WEIGHTS_NAME);
    size_t nt = 0, copied = 0;
    struct adapter_io_head head = { 0 };
    float *hbuf = NULL;
    int rc;

    memset(&info, 0, sizeof(info));
    memset(&ca, 0, sizeof(ca));
    if ((rc = clip_model_load(&m, model_dir))) {
        free(weights);
        return rc;
    }
    linear_table_init(&lt, &m);
    if ((rc = adapter_io_read_config(&files, &info)) ||
        (rc = adapted_targets(weights, &m, &lt, info.head, &targets, &nt)))
        goto out;
    if ((rc = clip_adapters_init(&ca, &m, &info.cfg, targets, nt, 1, 1))) {
        rc = rl_error_prefix(rc, "%s", adapter_dir);
        goto out;
    }
    mods = xcalloc(ca.n_sites, sizeof(*mods));
    names = xcalloc(ca.n_sites, sizeof(*names));
    for (size_t k = 0; k < ca.n_sites; k++) {
        mods[k].path = clip_site_name(&ca.sites[k], names[k], sizeof(names[k]));
        mods[k].adapter = &ca.adapters[k];
    }
    if (info.head && (rc = head_shape(weights, info.head, &head)))
        goto out;
    if (head.out) {
        head.weight = hbuf = xmalloc_array(head.out * (head.in + 1), sizeof(float));
        head.bias = hbuf + head.out * head.in;
        files.head = &head;
    }
    if ((rc = adapter_io_import(&files, &ca.method, mods, ca.n_sites)))
        goto out;
    for (size_t k = 0; k < ca.n_sites; k++)
        adapter_merge(&ca.adapters[k], clip_site_weight(&m, &ca.sites[k]));
    if (!layout_set)
        layout = m.layout;
    if ((rc = clip_model_save_as(&m, out_dir, dtype, layout)) ||
        (rc = merge_copy_model_files(model_dir, out_dir, &copied)))
        goto out;
    {
        size_t n_text = 0;

        for (size_t k = 0; k < ca.n_sites; k++)
            n_text += ca.sites[k].tower == CLIP_TOWER_TEXT;
        printf("merged %s (%s, r %zu, %zu layers: %zu vision, %zu text) into %s: %s, "
               "%s (%s), %zu tokenizer/preprocessor file%s copied\n",
               adapter_dir, info.cfg.method, info.cfg.r, ca.n_sites, ca.n_sites - n_text, n_text,
               out_dir, clip_layout_config_file(layout), clip_layout_weights_file(layout),
               st_dtype_name((enum st_dtype)dtype), copied, copied == 1 ? "" : "s");
        if (head.loaded)
            printf("  the adapter's linear head '%s' (%zu classes x %zu features) is not part of the "
                   "backbone checkpoint: it stays in %s\n", head.path, head.out, head.in, adapter_dir);
    }
out:
    free(hbuf);
    free(names);
    free(mods);
    clip_adapters_free(&ca);
    free(targets);
    linear_table_free(&lt);
    adapter_io_info_free(&info);
    clip_model_free(&m);
    free(weights);
    return rc;
}

int cmd_merge(int argc, char **argv)
{
    const char *model = NULL, *adapter = NULL, *run = NULL, *out = NULL;
    int dtype = ST_F32, rc;
    bool force = false, layout_set = false;
    enum clip_layout layout = CLIP_LAYOUT_HF;

    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];

        if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
            merge_usage(stdout);
            return 0;
        }
        if (!strcmp(o, "--force")) {
            force = true;
            continue;
        }
        if (i + 1 >= argc)
            return bad_usage("option '%s' needs a value", o);
        const char *v = argv[++i];
        if (!strcmp(o, "--model"))
            model = v;
        else if (!strcmp(o, "--adapter"))
            adapter = v;
        else if (!strcmp(o, "--run"))
            run = v;
        else if (!strcmp(o, "-o") || !strcmp(o, "--output"))
            out = v;
        else if (!strcmp(o, "--dtype")) {
            dtype = st_dtype_from_name(v);
            if (dtype != ST_F32 && dtype != ST_F16 && dtype != ST_BF16)
                return bad_usage("--dtype '%s': expected F32, F16 or BF16", v);
        } else if (!strcmp(o, "--layout")) {
            if (clip_layout_parse(v, &layout) != RL_OK)
                return bad_usage("--layout '%s': expected hf or open_clip", v);
            layout_set = true;
        } else
            return bad_usage("unknown option '%s'", o);
    }
    if (adapter && run)
        return bad_usage("--adapter and --run exclude each other (--run: a decoder run)");
    if (!model || !(adapter || run) || !out || !*out)
        return bad_usage("--model DIR, --adapter DIR (or --run RUN.h5) and -o OUT_DIR are "
                         "required");
    if (run && layout_set)
        return bad_usage("--layout applies to CLIP models; a decoder is written as config.json "
                         "+ model.safetensors");
    if (adapter) {
        char *cfg = merge_path_join(model, "config.json");
        const bool decoder = llama_config_file_is_decoder(cfg);

        free(cfg);
        if (decoder)
            return bad_usage("%s is a decoder: merge a decoder run's adapters with --run "
                             "RUN.h5, not --adapter", model);
    }
    if (same_dir(model, out))
        return bad_usage("-o %s is the model directory; write the merged model elsewhere", out);
    if (cli_output_dir_ok("merge", out, force))
        return 2;

    threads_init(0);
    rc = run ? merge_decoder_run(model, run, out, dtype)
             : merge_run(model, adapter, out, dtype, layout_set, layout);
    if (rc != RL_OK) {
        fprintf(stderr, "randlora merge: %s\n", rl_error_msg());
        return rl_exit_code(rc);
    }
    return 0;
}
