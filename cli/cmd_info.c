/*
 * cmd_info.c: `randlora info FILE`: what a file holds.
 *
 * The file's kind is sniffed from its bytes (sniff()), then one printer per
 * kind runs: HDF5 results files (info_results), safetensors files
 * (info_safetensors: every tensor's name, dtype and shape, the count, the
 * total number of elements by dtype, __metadata__) and model directories of
 * either layout, Hugging Face's or open_clip's (info_model_dir: the config
 * summary, whether each tensor the config needs is in the weights file with
 * its shape, the tokenizer and preprocessor files, then the safetensors
 * listing). Another
 * format is one more enum value, one more test in sniff() and one more case
 * in cmd_info.
 * Exit status: 0 printed, 2 missing, unreadable or malformed file or bad
 * usage, 1 other failures.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/status.h"
#include "cli/commands.h"
#include "models/clip.h"
#include "models/dinov2.h"
#include "models/llama.h"
#include "formats/safetensors.h"
#include "results/store.h"

enum file_kind { KIND_UNKNOWN, KIND_HDF5, KIND_SAFETENSORS, KIND_MODEL_DIR };

static bool has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);

    return n >= k && !strcmp(s + n - k, suffix);
}

/* A directory is a model directory. The HDF5 signature sits at offset 0 or,
 * after a user block, at 512, 1024, 2048, ... bytes. safetensors has no
 * signature: a name ending in .safetensors, or a header that starts with
 * '{' after its 8-byte length, says so (a malformed one then gets the
 * safetensors reader's error, not "unknown kind"). */
static int sniff(const char *path, enum file_kind *kind)
{
    static const unsigned char hdf5_sig[8] = { 0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n' };
    unsigned char buf[9];
    struct stat sb;
    FILE *fp;

    *kind = KIND_UNKNOWN;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        *kind = KIND_MODEL_DIR;
        return RL_OK;
    }
    fp = fopen(path, "rb");
    if (!fp)
        return rl_error_set(RL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (has_suffix(path, ".safetensors") ||
        (fread(buf, 1, 9, fp) == 9 && buf[8] == '{' && memcmp(buf, hdf5_sig, 8) != 0)) {
        fclose(fp);
        *kind = KIND_SAFETENSORS;
        return RL_OK;
    }
    for (long off = 0; off <= (1L << 30); off = off ? 2 * off : 512) {
        if (fseek(fp, off, SEEK_SET) != 0 || fread(buf, 1, 8, fp) != 8)
            break;
        if (!memcmp(buf, hdf5_sig, 8)) {
            *kind = KIND_HDF5;
            break;
        }
    }
    fclose(fp);
    return RL_OK;
}

static void print_attr_str(struct store *s, const char *obj, const char *name, const char *label)
{
    char *v = NULL;

    if (store_attr_get_string(s, obj, name, &v) == RL_OK)
        printf("%-12s %s\n", label, v);
    free(v);
}

/* the validation split line: "val  2 per class of SPEC, 20 items held out" */
static int info_val(struct store *s)
{
    int64_t *idx = NULL;
    size_t n = 0;
    char *val = NULL, *spec = NULL;
    int rc;

    if ((rc = store_read_val_index(s, &idx, &n)))
        return rc;
    free(idx);
    if (n == 0) {
        printf("%-12s none (evaluations during training are on the test set)\n", "val");
        return RL_OK;
    }
    if ((rc = store_attr_get_string(s, "/data", "val", &val)) == RL_OK &&
        (rc = store_attr_get_string(s, "/data", "val_spec", &spec)) == RL_OK) {
        if (!strcmp(val, spec))
            printf("%-12s %s, %zu items\n", "val", spec, n);
        else if (val[strspn(val, "0123456789")] == '\0')
            printf("%-12s %s per class of %s, %zu items held out\n", "val", val, spec, n);
        else
            printf("%-12s fraction %s of every class of %s, %zu items held out\n", "val", val, spec, n);
    }
    free(val);
    free(spec);
    return rc;
}

static int info_results(const char *path)
{
    struct store *s = NULL;
    int rc = store_open(&s, path);
    char *str = NULL, *method = NULL, *profile = NULL;
    int64_t i64, rank = 0, ntr = 0, nfs = 0, shots = 0;
    double alpha = 0, fraction = 0;
    uint64_t seed = 0;
    size_t trows = 0, erows = 0;

    if (rc != RL_OK)
        return rc;
    printf("%-12s %s\n", "file", path);
    if (store_attr_get_int64(s, "/", "schema_version", &i64) == RL_OK)
        printf("%-12s randlora results, schema %lld\n", "kind", (long long)i64);
    print_attr_str(s, "/", "harness_version", "harness");
    print_attr_str(s, "/", "git_commit", "git commit");
    print_attr_str(s, "/", "created_utc", "created");
    print_attr_str(s, "/", "host", "host");
    print_attr_str(s, "/", "threads", "threads");
    print_attr_str(s, "/", "blas", "blas");
    print_attr_str(s, "/", "precision", "precision");
    if (store_attr_get_string(s, "/", "bf16_gemm", &str) == RL_OK && *str)
        printf("%-12s %s\n", "bf16 gemm", str);
    free(str);
    str = NULL;

    if ((rc = store_attr_get_string(s, "/method", "method", &method)) ||
        (rc = store_attr_get_string(s, "/method", "profile", &profile)) ||
        (rc = store_attr_get_int64(s, "/method", "rank", &rank)) ||
        (rc = store_attr_get_double(s, "/method", "alpha", &alpha)) ||
        (rc = store_attr_get_int64(s, "/method", "n_trainable", &ntr)) ||
        (rc = store_attr_get_int64(s, "/method", "n_frozen_shared", &nfs)))
        goto done;
    printf("%-12s %s, rank %lld, alpha %g%s%s\n", "method", method, (long long)rank, alpha,
           *profile ? ", " : "", profile);
    printf("%-12s %lld trainable, %lld frozen shared\n", "parameters", (long long)ntr, (long long)nfs);

    if ((rc = store_attr_get_string(s, "/data", "spec", &str)) ||
        (rc = store_attr_get_int64(s, "/data", "shots", &shots)) ||
        (rc = store_attr_get_double(s, "/data", "fraction", &fraction)) ||
        (rc = store_attr_get_uint64(s, "/data", "sampling_seed", &seed)))
        goto done;
    int64_t *idx = NULL;
    size_t nidx = 0;
    if ((rc = store_read_train_index(s, &idx, &nidx)))
        goto done;
    free(idx);
    if (shots > 0)
        printf("%-12s %s, %lld shots, seed %llu, %zu training examples\n", "data", str, (long long)shots,
               (unsigned long long)seed, nidx);
    else
        printf("%-12s %s, fraction %g, seed %llu, %zu training examples\n", "data", str, fraction,
               (unsigned long long)seed, nidx);
    if ((rc = info_val(s)))
        goto done;

    if ((rc = store_rows(s, &trows, &erows)))
        goto done;
    int64_t *steps = NULL;
    double *vals = NULL;
    size_t n = 0;
    if ((rc = store_read_curve(s, "train", "loss", &steps, &vals, &n)))
        goto done;
    if (n)
        printf("%-12s %zu rows, steps %lld..%lld, last loss %.6g\n", "train", n, (long long)steps[0],
               (long long)steps[n - 1], vals[n - 1]);
    else
        printf("%-12s no rows\n", "train");
    free(steps);
    free(vals);
    const char *split = "test";
    if ((rc = store_read_eval_split(s, &split)) ||
        (rc = store_read_curve(s, "eval", "accuracy", &steps, &vals, &n)))
        goto done;
    if (n)
        printf("%-12s %zu rows on the %s set, last at step %lld: accuracy %.4f\n", "eval", n, split,
               (long long)steps[n - 1], vals[n - 1]);
    else
        printf("%-12s no rows (%s set)\n", "eval", split);
    free(steps);
    free(vals);

    struct store_checkpoint_info ci;
    rc = store_read_checkpoint(s, &ci, NULL, NULL, NULL, NULL);
    if (rc == RL_OK)
        printf("%-12s step %lld (covers %zu train, %zu eval rows)\n", "checkpoint", (long long)ci.step,
               ci.train_rows, ci.eval_rows);
    else if (rc == RL_ERR_NA)
        printf("%-12s none\n", "checkpoint");
    else
        goto done;

    struct store_final f;
    int completed = 0;
    if ((rc = store_read_final(s, &f, &completed)))
        goto done;
    /* a run stopped by a non-finite loss or gradient records why and where
     * (experiments/runner.c: root attributes stopped, stopped_step) */
    char *stopped = NULL;
    int64_t stopped_step = -1;
    bool was_stopped = store_attr_get_string(s, "/", "stopped", &stopped) == RL_OK;
    if (completed)
        printf("%-12s accuracy %.4f, loss %.6g, peak RSS %.1f MiB, %.1f images/s\n", "final", f.accuracy, f.loss,
               (double)f.peak_rss_bytes / (1024.0 * 1024.0), f.images_per_s);
    else if (was_stopped)
        printf("%-12s not written (the run stopped)\n", "final");
    else
        printf("%-12s not written (the run is live, was interrupted, or failed)\n", "final");
    if (completed && f.has_val)
        printf("%-12s val accuracy %.4f, val loss %.6g (the accuracy above is the test set's)\n",
               "final val", f.val_accuracy, f.val_loss);
    if (was_stopped) {
        if (store_attr_get_int64(s, "/", "stopped_step", &stopped_step) == RL_OK)
            printf("%-12s at step %lld: %s\n", "stopped", (long long)stopped_step, stopped);
        else
            printf("%-12s %s\n", "stopped", stopped);
    }
    free(stopped);

    char **names = NULL;
    size_t nn = 0;
    if ((rc = store_list(s, "/", &names, &nn)))
        goto done;
    printf("%-12s", "groups");
    for (size_t i = 0; i < nn; i++) {
        char p[512], **sub = NULL;
        size_t ns = 0;
        snprintf(p, sizeof p, "/%s", names[i]);
        if (!strcmp(names[i], "adapter") || !strcmp(names[i], "analysis")) {
            /* per-layer groups, and beside them /adapter/shared (the
             * method's frozen tensors) and /analysis/cka (activation CKA) */
            const char *extra = names[i][1] == 'd' ? "shared" : "cka";
            size_t n_layers = 0;
            bool has_extra = false;

            if (store_list(s, p, &sub, &ns) == RL_OK) {
                for (size_t k = 0; k < ns; k++) {
                    if (!strcmp(sub[k], extra))
                        has_extra = true;
                    else
                        n_layers++;
                }
                printf(" %s (%zu layer%s%s%s)", p, n_layers, n_layers == 1 ? "" : "s",
                       has_extra ? ", " : "", has_extra ? extra : "");
            } else {
                printf(" %s", p);
            }
            store_free_names(sub, ns);
        } else {
            printf(" %s", p);
        }
    }
    printf("\n");
    store_free_names(names, nn);
    rc = RL_OK;
done:
    free(str);
    free(method);
    free(profile);
    store_close(s);
    return rc;
}

/* "[768, 3, 32, 32]" */
static const char *shape_str(char *buf, size_t cap, int ndim, const int64_t *shape)
{
    size_t n = (size_t)snprintf(buf, cap, "[");

    for (int d = 0; d < ndim && n < cap; d++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%" PRId64, d ? ", " : "", shape[d]);
    if (n < cap)
        snprintf(buf + n, cap - n, "]");
    return buf;
}

/* 151277313 -> "151,277,313" */
static const char *grouped(char *buf, size_t cap, size_t v)
{
    char digits[32];
    size_t nd = (size_t)snprintf(digits, sizeof digits, "%zu", v), o = 0;

    for (size_t i = 0; i < nd && o + 2 < cap; i++) {
        if (i && (nd - i) % 3 == 0)
            buf[o++] = ',';
        buf[o++] = digits[i];
    }
    buf[o] = '\0';
    return buf;
}

static int info_safetensors(const char *path)
{
    struct st_file *f = NULL;
    size_t by_dtype[ST_DTYPE_COUNT] = { 0 }, total = 0, bytes = 0, width = 4;
    char g[32], sh[160];
    int rc = st_open(&f, path);

    if (rc != RL_OK)
        return rc;
    for (size_t i = 0; i < st_count(f); i++) {
        const struct st_info *t = st_info_at(f, i);

        by_dtype[t->dtype] += t->numel;
        total += t->numel;
        bytes += t->nbytes;
        if (strlen(t->name) > width)
            width = strlen(t->name);
    }
    if (width > 120)
        width = 120;
    printf("%-12s %s\n", "file", path);
    printf("%-12s safetensors\n", "kind");
    printf("%-12s %zu\n", "tensors", st_count(f));
    printf("%-12s %s", "parameters", grouped(g, sizeof g, total));
    for (int d = 0, first = 1; d < ST_DTYPE_COUNT; d++)
        if (by_dtype[d]) {
            printf("%s%s %s", first ? " (" : ", ", st_dtype_name((enum st_dtype)d),
                   grouped(g, sizeof g, by_dtype[d]));
            first = 0;
        }
    printf("%s\n", total ? ")" : "");
    printf("%-12s %s bytes\n", "data", grouped(g, sizeof g, bytes));
    if (st_metadata_count(f) == 0)
        printf("%-12s none\n", "metadata");
    for (size_t i = 0; i < st_metadata_count(f); i++) {
        const char *k, *v;

        st_metadata_at(f, i, &k, &v);
        printf("%-12s %s = %s\n", i ? "" : "metadata", k, v);
    }
    printf("\n  %-*s %-8s %s\n", (int)width, "NAME", "DTYPE", "SHAPE");
    for (size_t i = 0; i < st_count(f); i++) {
        const struct st_info *t = st_info_at(f, i);

        printf("  %-*s %-8s %s\n", (int)width, t->name, st_dtype_name(t->dtype),
               shape_str(sh, sizeof sh, t->ndim, t->shape));
    }
    st_close(f);
    return RL_OK;
}

static const char *act_str(enum block_act a)
{
    return a == BLOCK_ACT_QUICK_GELU ? "quick_gelu" : "gelu";
}

/* the config summary (either layout); the weights file checked against the stored tensors
 * (without reading the weights), the tokenizer and preprocessor files; then
 * the safetensors listing */
static int info_model_dir(const char *dir)
{
    static const char *const extra[] = { "vocab.json", "merges.txt", "tokenizer.json",
                                         "preprocessor_config.json" };
    size_t nd = strlen(dir) + 48;
    enum clip_layout layout = CLIP_LAYOUT_HF;
    char *wpath = xmalloc(nd), g[32];
    struct clip_config c;
    struct clip_model m;
    struct st_file *f = NULL;
    size_t present = 0;
    int rc;

    memset(&m, 0, sizeof(m));
    if ((rc = backbone_config_load_dir(&c, dir, &layout)) ||
        (rc = c.arch == CLIP_ARCH_DINOV2 ? dinov2_model_init(&m, &c) : clip_model_init(&m, &c)))
        goto out;
    snprintf(wpath, nd, "%s/%s", dir, clip_layout_weights_file(layout));
    if ((rc = st_open(&f, wpath)))
        goto out;
    printf("%-12s %s\n", "model", dir);
    printf("%-12s %s (%s + %s)\n", "layout", layout == CLIP_LAYOUT_OPENCLIP ? "open_clip" :
           "Hugging Face", clip_layout_config_file(layout), clip_layout_weights_file(layout));
    if (c.arch == CLIP_ARCH_DINOV2)
        printf("%-12s DINOv2, %zu register tokens, layerscale, %s parameters\n", "config",
               c.vision.register_tokens, grouped(g, sizeof g, dinov2_config_n_params(&c)));
    else
        printf("%-12s CLIP, projection %zu, %s parameters\n", "config", c.projection_dim,
               grouped(g, sizeof g, clip_config_n_params(&c)));
    printf("%-12s image %zu, patch %zu (%zu tokens), width %zu, %zu layers, %zu heads, "
           "MLP %zu, %s\n", "vision", c.vision.image_size, c.vision.patch_size,
           clip_vision_tokens(&c.vision), c.vision.hidden, c.vision.layers, c.vision.heads,
           c.vision.intermediate, act_str(c.vision.act));
    if (c.arch != CLIP_ARCH_DINOV2)
        printf("%-12s vocab %zu, context %zu, width %zu, %zu layers, %zu heads, MLP %zu, %s, "
               "eos %lld\n", "text", c.text.vocab_size, c.text.context, c.text.hidden,
               c.text.layers, c.text.heads, c.text.intermediate, act_str(c.text.act),
               (long long)c.text.eos_token_id);
    /* every stored tensor present with its shape (logit_scale: () or (1)) */
    if ((rc = clip_model_check_file(&m, layout, f, wpath, &present)))
        goto out;
    printf("%-12s all %zu tensors of the config present with their shapes; %zu other key%s "
           "ignored\n", "weights", present, st_count(f) - present,
           st_count(f) - present == 1 ? "" : "s");
    printf("%-12s", "files");
    for (size_t i = 0; i < sizeof(extra) / sizeof(extra[0]); i++) {
        char *p = xmalloc(strlen(dir) + strlen(extra[i]) + 2);

        sprintf(p, "%s/%s", dir, extra[i]);
        printf(" %s %s%s", extra[i], access(p, R_OK) == 0 ? "yes" : "no",
               i + 1 < sizeof(extra) / sizeof(extra[0]) ? "," : "\n");
        free(p);
    }
    printf("\n");
    st_close(f);
    f = NULL;
    rc = info_safetensors(wpath);
out:
    st_close(f);
    clip_model_free(&m);
    free(wpath);
    return rc;
}

/* a Llama-family directory: the config summary and every tensor of it
 * checked in the safetensors headers (nothing read or allocated) */
static int info_llama_dir(const char *dir)
{
    char *cpath = xmalloc(strlen(dir) + 16), g[32];
    struct llama_config c;
    size_t n_tensors = 0, n_files = 0;
    int rc;

    sprintf(cpath, "%s/config.json", dir);
    if ((rc = llama_config_load(&c, cpath)) ||
        (rc = llama_model_check_dir(&c, dir, &n_tensors, &n_files))) {
        free(cpath);
        return rc;
    }
    free(cpath);
    printf("%-12s %s\n", "model", dir);
    printf("%-12s %s, %s parameters, %s, %s head\n", "config",
           c.arch == LLAMA_ARCH_QWEN2 ? "Qwen2ForCausalLM" : "LlamaForCausalLM",
           grouped(g, sizeof g, llama_config_n_params(&c)), c.torch_dtype,
           c.tie_word_embeddings ? "tied" : "separate");
    printf("%-12s vocab %zu, width %zu, %zu layers, %zu heads over %zu key/value heads of "
           "%zu, MLP %zu, %zu positions, rope_theta %g%s\n", "decoder", c.vocab_size, c.hidden,
           c.layers, c.heads, c.kv_heads, c.head_dim, c.intermediate, c.max_position,
           c.rope_theta, c.rope_type == LLAMA_ROPE_LLAMA3 ? " (llama3 scaling)"
                         : c.rope_type == LLAMA_ROPE_LINEAR ? " (linear scaling)" : "");
    printf("%-12s all %zu tensors of the config present with their shapes in %zu file%s\n",
           "weights", n_tensors, n_files, n_files == 1 ? "" : "s");
    return RL_OK;
}

int cmd_info(int argc, char **argv)
{
    enum file_kind kind;
    int rc;

    if (argc == 2 && !strcmp(argv[1], "--help")) {
        printf("usage: randlora info FILE|MODEL_DIR\n"
               "Summarise a results file (HDF5): method, counts, steps trained, last loss,\n"
               "final accuracy, checkpoint, why and where a run stopped (a non-finite\n"
               "loss or gradient), groups present.\n"
               "List a safetensors file: every tensor's name, dtype and shape, the count,\n"
               "the total number of parameters and __metadata__.\n"
               "A model directory (config.json + model.safetensors, or open_clip's\n"
               "open_clip_config.json + open_clip_model.safetensors): the config summary,\n"
               "a check of the weights against it, then the safetensors listing; a\n"
               "Llama-family directory (LlamaForCausalLM, Qwen2ForCausalLM; one file or\n"
               "shards with model.safetensors.index.json): the config summary and every\n"
               "tensor checked in the file headers.\n");
        return 0;
    }
    if (argc != 2 || argv[1][0] == '-') {
        fprintf(stderr, "randlora info: expected one FILE (see randlora info --help)\n");
        return 2;
    }
    const char *path = argv[1];
    if ((rc = sniff(path, &kind)) != RL_OK) {
        fprintf(stderr, "randlora info: %s\n", rl_error_msg());
        return rl_exit_code(rc);
    }
    switch (kind) {
    case KIND_HDF5:
        rc = info_results(path);
        break;
    case KIND_SAFETENSORS:
        rc = info_safetensors(path);
        break;
    case KIND_MODEL_DIR: {
        char *cpath = xmalloc(strlen(path) + 16);

        sprintf(cpath, "%s/config.json", path);
        rc = llama_config_file_is_decoder(cpath) ? info_llama_dir(path) : info_model_dir(path);
        free(cpath);
        break;
    }
    default:
        rc = rl_error_set(RL_ERR_FORMAT, "%s: not an HDF5 file nor a safetensors file (info reads "
                          "HDF5 results files, safetensors files and model directories)", path);
        break;
    }
    if (rc != RL_OK) {
        fprintf(stderr, "randlora info: %s\n", rl_error_msg());
        return rl_exit_code(rc);
    }
    return 0;
}
