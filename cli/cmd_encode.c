/*
 * cmd_encode.c: `randlora encode`: embeddings of images or captions from a
 * model directory, into a plain HDF5 file.
 *
 *     randlora encode --model DIR --images SPEC -o OUT.h5 [--batch N] [--limit N]
 *         /image_embeds  float32 [N, D]    visual_projection output, before L2 norm
 *         /labels        int32   [N]       the dataset's labels
 *     randlora encode --model DIR --text FILE -o OUT.h5 [--batch N] [--limit N]
 *         /text_embeds   float32 [N, D]    text_projection output, before L2 norm
 *         /input_ids     int32   [N, ctx]  the tokenizer's framed rows
 *     root attributes (strings): model, source (the spec or file), kind
 *     ("images" or "text"), harness ("randlora encode")
 *
 * Images go through datasets/loader.h with the CLIP evaluation transform
 * (Pillow bicubic resize of the shortest side, center crop, gray -> RGB,
 * (x/255 - mean) / std) at the model's vision image_size, with the constants
 * of DIR/preprocessor_config.json when there is one (image_mean, image_std,
 * size, crop_size, resample, do_normalize; Hugging Face's crop rounding
 * (H - size) // 2), else OpenAI CLIP's (CLIP_MEAN / CLIP_STD, torchvision's
 * rounding). Captions are one per line of FILE (a trailing "\r" dropped,
 * empty lines kept as empty captions, so row i is line i + 1; FILE at most
 * 1 GiB, a line at most TOK_MAX_TEXT_BYTES = 1 MiB, both checked before
 * the output is created), tokenized by
 * the model directory's tokenizer as a training run does
 * (runner_load_tokenizer: vocab.json + merges.txt or tokenizer.json; the
 * byte-level tokenizer of a pretrained clip-tiny) and framed as
 * clip.tokenize(truncate=True) does: context = the model's
 * max_position_embeddings, padded with the config's pad_token_id (the pad
 * never changes an embedding).
 *
 * This is not a run file (results/store.h): it is written here with the
 * HDF5 API directly (cli/h5out.h), fixed-size datasets filled batch by batch (memory stays
 * one batch), into OUT.h5.tmp.PID next to OUT and renamed when complete, so
 * OUT is either absent, the old file, or the whole new one. The temporary
 * file is removed on every failure, a fatal signal included
 * (cli/h5out.h, cli/tmp_guard.h).
 *
 * Exit status: 0 written; 2 bad usage or bad input (one line on stderr
 * naming the file, key or tensor); 1 other failures.
 */
#include <hdf5.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/alloc.h"
#include "core/progress.h"
#include "core/read_file.h"
#include "core/status.h"
#include "core/threads.h"
#include "core/timer.h"
#include "datasets/dataset.h"
#include "datasets/loader.h"
#include "datasets/transforms.h"
#include "cli/cli.h"
#include "cli/commands.h"
#include "cli/h5out.h"
#include "experiments/runner.h"
#include "models/clip.h"
#include "models/tokenizer.h"

#define ENCODE_DEFAULT_BATCH 64
#define ENCODE_MAX_BATCH     4096
#define PREPROC_MAX_BYTES    ((size_t)1 << 20)
#define TEXT_MAX_BYTES       ((size_t)1 << 30)

static void encode_usage(FILE *out)
{
    fprintf(out,
            "usage: randlora encode --model DIR (--images SPEC | --text FILE) -o OUT.h5\n"
            "                       [--batch N] [--limit N]\n"
            "\n"
            "Embeddings from a CLIP directory, Hugging Face's layout (config.json,\n"
            "model.safetensors) or open_clip's (open_clip_config.json,\n"
            "open_clip_model.safetensors), with vocab.json + merges.txt or tokenizer.json and\n"
            "an optional preprocessor_config.json; projected, before L2 normalisation.\n"
            "\n"
            "  --model DIR     the model directory\n"
            "  --images SPEC   a dataset spec (fashion-mnist:test, folder:DIR, ...) through\n"
            "                  the model's preprocessing and the vision tower: writes\n"
            "                  /image_embeds float32 [N, proj] and /labels int32 [N]\n"
            "  --text FILE     one caption per line through the tokenizer and the text\n"
            "                  tower: writes /text_embeds float32 [N, proj] and\n"
            "                  /input_ids int32 [N, context] (lines of at most 1 MiB)\n"
            "  -o OUT.h5       the output (written to a temporary file, then renamed)\n"
            "  --batch N       rows per forward (default %d)\n"
            "  --limit N       only the first N images or lines\n"
            "\n"
            "Preprocessing: DIR/preprocessor_config.json (image_mean, image_std, size,\n"
            "crop_size) when present, else OpenAI CLIP's mean/std; resize the shortest\n"
            "side (Pillow bicubic), center crop to the model's image_size, gray -> RGB.\n"
            "\n"
            "datasets:\n%s",
            ENCODE_DEFAULT_BATCH, dataset_specs_help());
}

/* one usage error line (cli.h), exit status 2 */
#define bad_usage(...) cli_bad("encode", true, __VA_ARGS__)

static char *path_join(const char *dir, const char *file)
{
    size_t n = strlen(dir) + strlen(file) + 2;
    char *p = xmalloc(n);

    snprintf(p, n, "%s/%s", dir, file);
    return p;
}

/* ------------------------------------------------------------------------ */
/* preprocessing constants                                                   */

struct preproc {
    bool  from_file;          /* preprocessor_config.json was read          */
    float mean[3], std[3];
    enum crop_round round;
};

/* a JSON number that is a whole positive size, or an object holding one
 * under one of keys (e.g. {"shortest_edge": 224}, {"height": h, "width": w}
 * with h == w) */
static int pp_size(const char *path, const cJSON *o, const char *key, size_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

    if (!v)
        return RL_ERR_NA;
    if (cJSON_IsObject(v)) {
        const cJSON *se = cJSON_GetObjectItemCaseSensitive(v, "shortest_edge");
        const cJSON *h = cJSON_GetObjectItemCaseSensitive(v, "height");
        const cJSON *w = cJSON_GetObjectItemCaseSensitive(v, "width");

        if (se && !h && !w)
            v = se;
        else if (!se && h && w && cJSON_IsNumber(h) && cJSON_IsNumber(w) &&
                 h->valuedouble == w->valuedouble)
            v = h;
        else
            return rl_error_set(RL_ERR_FORMAT, "%s: key '%s' must be a number, "
                                "{\"shortest_edge\": N} or {\"height\": N, \"width\": N} "
                                "(square)", path, key);
    }
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 1 && v->valuedouble <= 65536) ||
        v->valuedouble != (double)(size_t)v->valuedouble)
        return rl_error_set(RL_ERR_FORMAT, "%s: key '%s' must be a whole number in 1..65536",
                            path, key);
    *out = (size_t)v->valuedouble;
    return RL_OK;
}

/* image_mean / image_std: 3 numbers (or one for every channel) */
static int pp_triple(const char *path, const cJSON *o, const char *key, bool positive,
                     float out[3])
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    double d[3];

    if (!v)
        return RL_OK;
    if (cJSON_IsNumber(v)) {
        d[0] = d[1] = d[2] = v->valuedouble;
    } else if (cJSON_IsArray(v) && cJSON_GetArraySize(v) == 3) {
        for (int c = 0; c < 3; c++) {
            const cJSON *e = cJSON_GetArrayItem(v, c);

            if (!cJSON_IsNumber(e))
                return rl_error_set(RL_ERR_FORMAT, "%s: key '%s' entry %d is not a number",
                                    path, key, c);
            d[c] = e->valuedouble;
        }
    } else {
        return rl_error_set(RL_ERR_FORMAT, "%s: key '%s' must be a list of 3 numbers", path, key);
    }
    for (int c = 0; c < 3; c++) {
        if (!(d[c] > -1e6 && d[c] < 1e6) || (positive && !(d[c] > 0)))
            return rl_error_set(RL_ERR_FORMAT, "%s: key '%s' entry %d is %g, expected %s",
                                path, key, c, d[c], positive ? "a positive number" : "a finite number");
        out[c] = (float)d[c];
    }
    return RL_OK;
}

static int pp_bool(const char *path, const cJSON *o, const char *key, bool *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

    if (!v)
        return RL_OK;
    if (!cJSON_IsBool(v))
        return rl_error_set(RL_ERR_FORMAT, "%s: key '%s' must be true or false", path, key);
    *out = cJSON_IsTrue(v);
    return RL_OK;
}

/* DIR/preprocessor_config.json (CLIPImageProcessor / CLIPFeatureExtractor)
 * when present, else OpenAI's constants. The shortest side and the crop
 * must both be the model's image_size: the transform resizes to the crop. */
static int preproc_load(struct preproc *p, const char *dir, size_t image_size)
{
    char *path = path_join(dir, "preprocessor_config.json"), *text = NULL;
    size_t len, size = image_size, crop = image_size;
    bool normalize = true, resize = true, center_crop = true;
    cJSON *o = NULL;
    int rc;

    memcpy(p->mean, CLIP_MEAN, sizeof(p->mean));
    memcpy(p->std, CLIP_STD, sizeof(p->std));
    p->round = CROP_ROUND_TORCHVISION;
    p->from_file = false;
    if (access(path, F_OK) != 0) {
        free(path);
        return RL_OK;
    }
    p->from_file = true;
    p->round = CROP_ROUND_HF;
    if ((rc = rl_read_file(path, PREPROC_MAX_BYTES, &text, &len)))
        goto out;
    o = cJSON_ParseWithLength(text, len);
    if (!o || !cJSON_IsObject(o)) {
        rc = rl_error_set(RL_ERR_FORMAT, "%s: %s", path, o ? "not a JSON object" : "malformed JSON");
        goto out;
    }
    if ((rc = pp_triple(path, o, "image_mean", false, p->mean)) ||
        (rc = pp_triple(path, o, "image_std", true, p->std)) ||
        (rc = pp_bool(path, o, "do_normalize", &normalize)) ||
        (rc = pp_bool(path, o, "do_resize", &resize)) ||
        (rc = pp_bool(path, o, "do_center_crop", &center_crop)))
        goto out;
    if (!resize || !center_crop) {
        rc = rl_error_set(RL_ERR_FORMAT, "%s: do_resize and do_center_crop false are not "
                          "supported (encode always resizes and center-crops)", path);
        goto out;
    }
    if (!normalize) {
        for (int c = 0; c < 3; c++) {
            p->mean[c] = 0.0f;
            p->std[c] = 1.0f;
        }
    }
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(o, "resample");
    if (rs && !(cJSON_IsNumber(rs) && rs->valuedouble == 3)) {
        rc = rl_error_set(RL_ERR_FORMAT, "%s: key 'resample' must be 3 (bicubic, the only "
                          "resize implemented)", path);
        goto out;
    }
    const cJSON *rf = cJSON_GetObjectItemCaseSensitive(o, "rescale_factor");
    if (rf && !(cJSON_IsNumber(rf) && rf->valuedouble > 0.0039215 && rf->valuedouble < 0.0039216)) {
        rc = rl_error_set(RL_ERR_FORMAT, "%s: key 'rescale_factor' must be 1/255", path);
        goto out;
    }
    if ((rc = pp_size(path, o, "size", &size)) == RL_ERR_NA)
        rc = RL_OK;
    if (rc)
        goto out;
    if ((rc = pp_size(path, o, "crop_size", &crop)) == RL_ERR_NA)
        rc = RL_OK;
    if (rc)
        goto out;
    if (crop != image_size || size != image_size)
        rc = rl_error_set(RL_ERR_FORMAT, "%s: size %zu and crop_size %zu must both equal the "
                          "model's vision image_size %zu", path, size, crop, image_size);
out:
    cJSON_Delete(o);
    free(text);
    free(path);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* the two encoders                                                          */

struct encode_args {
    const char *model_dir, *images, *text, *out;
    size_t batch, limit;      /* limit 0: all                               */
};

/* on a terminal the progress line has no newline yet */
static void progress_break(const struct progress *p, bool started)
{
    if (started && p->is_tty && p->line[0])
        fputc('\n', p->out);
}

static int encode_images(const struct encode_args *a, const struct clip_model *m)
{
    const size_t D = m->cfg.projection_dim, S = m->cfg.vision.image_size;
    struct preproc pp;
    struct dataset ds;
    struct loader *L = NULL;
    struct loader_config lc;
    struct clip_vision_run vr;
    struct h5out o = { .file = -1 };
    struct progress prog;
    bool started = false;
    hid_t d_emb = -1, d_lab = -1;
    size_t n, done = 0, batch;
    float *emb = NULL;
    double t0 = timer_now();
    int rc;

    memset(&vr, 0, sizeof(vr));
    if (m->cfg.vision.num_channels != 3)
        return rl_error_set(RL_ERR_FORMAT, "%s: vision_config.num_channels is %zu; image "
                            "preprocessing produces RGB (3)", a->model_dir,
                            m->cfg.vision.num_channels);
    if ((rc = preproc_load(&pp, a->model_dir, S)))
        return rc;
    if ((rc = dataset_open(&ds, a->images)))
        return rc;
    n = ds.n;
    if (a->limit && a->limit < n)
        n = a->limit;
    if (n == 0) {
        rc = rl_error_set(RL_ERR_FORMAT, "%s: the dataset has no images", a->images);
        goto out;
    }
    batch = a->batch < n ? a->batch : n;
    loader_config_init(&lc, (int)batch, (int)S);
    lc.transform.crop_round = pp.round;
    memcpy(lc.transform.mean, pp.mean, sizeof(pp.mean));
    memcpy(lc.transform.std, pp.std, sizeof(pp.std));
    if ((rc = loader_open(&L, &ds, NULL, n, &lc)))
        goto out;
    clip_vision_run_init(&vr, m, batch, false);
    emb = xmalloc_array(batch * D, sizeof(float));
    if ((rc = h5out_create(&o, a->out)) ||
        (rc = h5out_attr_string(&o, "harness", "randlora encode")) ||
        (rc = h5out_attr_string(&o, "kind", "images")) ||
        (rc = h5out_attr_string(&o, "model", a->model_dir)) ||
        (rc = h5out_attr_string(&o, "source", a->images)) ||
        (rc = h5out_attr_string(&o, "preprocessing", pp.from_file ? "preprocessor_config.json"
                                                               : "openai clip defaults")) ||
        (rc = h5out_dataset(&o, "image_embeds", H5T_IEEE_F32LE, n, D, &d_emb)) ||
        (rc = h5out_dataset(&o, "labels", H5T_STD_I32LE, n, 0, &d_lab)))
        goto out;

    progress_init(&prog, "encode images", loader_batches_per_epoch(L), stderr);
    started = true;
    for (;;) {
        struct loader_batch b;

        if ((rc = loader_next(L, &b)) || b.n == 0)
            break;
        if ((rc = clip_vision_forward(&vr, m, NULL, b.x, (size_t)b.n, emb)) ||
            (rc = h5out_write_rows(&o, d_emb, H5T_NATIVE_FLOAT, done, (size_t)b.n, D, emb)) ||
            (rc = h5out_write_rows(&o, d_lab, H5T_NATIVE_INT32, done, (size_t)b.n, 0, b.labels)))
            break;
        done += (size_t)b.n;
        progress_update(&prog, b.batch + 1, -1, -1, (double)done / (timer_now() - t0 + 1e-9));
    }
    if (!rc && done != n)
        rc = rl_error_set(RL_ERR, "%s: %zu of %zu images encoded", a->images, done, n);
    if (rc)
        goto out;
    H5Dclose(d_emb);
    H5Dclose(d_lab);
    d_emb = d_lab = -1;
    progress_finish(&prog);
    started = false;
    if ((rc = h5out_commit(&o)))
        goto out;
    printf("wrote %s: /image_embeds float32 [%zu, %zu], /labels int32 [%zu] (%s, %s "
           "preprocessing, %.1f s)\n", a->out, n, D, n, a->images,
           pp.from_file ? "preprocessor_config.json" : "OpenAI CLIP", timer_now() - t0);
out:
    progress_break(&prog, started);
    if (d_emb >= 0)
        H5Dclose(d_emb);
    if (d_lab >= 0)
        H5Dclose(d_lab);
    h5out_abort(&o);
    free(emb);
    clip_vision_run_free(&vr);
    if (L)
        loader_close(L);
    dataset_close(&ds);
    return rc;
}

/* FILE -> lines (pointers into text, NUL-terminated in place) */
static void split_lines(char *text, size_t len, char ***lines, size_t **lens, size_t *n)
{
    size_t cap = 0, k = 0, start = 0;

    *lines = NULL;
    *lens = NULL;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && text[i] != '\n')
            continue;
        if (i == len && start == len)
            break;                       /* no line after the last newline */
        size_t e = i;
        if (e > start && text[e - 1] == '\r')
            e--;
        text[e] = '\0';
        if (k == cap) {
            cap = cap ? 2 * cap : 256;
            *lines = xrealloc_array(*lines, cap, sizeof(**lines));
            *lens = xrealloc_array(*lens, cap, sizeof(**lens));
        }
        (*lines)[k] = text + start;
        (*lens)[k] = e - start;
        k++;
        start = i + 1;
    }
    *n = k;
}

static int encode_text(const struct encode_args *a, const struct clip_model *m)
{
    const struct clip_text_config *tc = &m->cfg.text;
    const size_t D = m->cfg.projection_dim, ctx = tc->context;
    struct tokenizer *tok = NULL;
    struct clip_text_run tr;
    struct h5out o = { .file = -1 };
    struct progress prog;
    bool started = false;
    hid_t d_emb = -1, d_ids = -1;
    char *text = NULL, **lines = NULL;
    size_t len = 0, *lens = NULL, n = 0, batch, done = 0;
    int32_t *ids = NULL;
    float *emb = NULL;
    double t0 = timer_now();
    int rc;

    memset(&tr, 0, sizeof(tr));
    if ((rc = runner_load_tokenizer(&tok, a->model_dir, &m->cfg)))
        return rc;
    if ((size_t)tok_vocab_size(tok) > tc->vocab_size) {
        rc = rl_error_set(RL_ERR_FORMAT, "%s: the tokenizer's ids reach %d, but the model's "
                          "text_config.vocab_size is %zu", a->model_dir,
                          (int)tok_vocab_size(tok) - 1, tc->vocab_size);
        goto out;
    }
    if (tc->eos_token_id != 2 && tok_eot(tok) != tc->eos_token_id) {
        rc = rl_error_set(RL_ERR_FORMAT, "%s: the tokenizer's end-of-text id is %d, but "
                          "config.json says text_config.eos_token_id = %lld", a->model_dir,
                          (int)tok_eot(tok), (long long)tc->eos_token_id);
        goto out;
    }
    if ((rc = rl_read_file(a->text, TEXT_MAX_BYTES, &text, &len)))
        goto out;
    split_lines(text, len, &lines, &lens, &n);
    if (a->limit && a->limit < n)
        n = a->limit;
    if (n == 0) {
        rc = rl_error_set(RL_ERR_FORMAT, "%s: no captions (the file is empty)", a->text);
        goto out;
    }
    for (size_t i = 0; i < n; i++)   /* before the output exists */
        if (lens[i] > TOK_MAX_TEXT_BYTES) {
            rc = rl_error_set(RL_ERR_FORMAT, "%s:%zu: a caption of %zu bytes is longer than the "
                              "limit of %zu bytes per line", a->text, i + 1, lens[i],
                              (size_t)TOK_MAX_TEXT_BYTES);
            goto out;
        }
    batch = a->batch < n ? a->batch : n;
    clip_text_run_init(&tr, m, batch, 0, false);
    ids = xmalloc_array(batch * ctx, sizeof(int32_t));
    emb = xmalloc_array(batch * D, sizeof(float));
    if ((rc = h5out_create(&o, a->out)) ||
        (rc = h5out_attr_string(&o, "harness", "randlora encode")) ||
        (rc = h5out_attr_string(&o, "kind", "text")) ||
        (rc = h5out_attr_string(&o, "model", a->model_dir)) ||
        (rc = h5out_attr_string(&o, "source", a->text)) ||
        (rc = h5out_dataset(&o, "text_embeds", H5T_IEEE_F32LE, n, D, &d_emb)) ||
        (rc = h5out_dataset(&o, "input_ids", H5T_STD_I32LE, n, ctx, &d_ids)))
        goto out;

    progress_init(&prog, "encode text", (n + batch - 1) / batch, stderr);
    started = true;
    for (size_t b0 = 0; b0 < n; b0 += batch) {
        size_t nb = n - b0 < batch ? n - b0 : batch;

        for (size_t i = 0; i < nb && !rc; i++) {
            rc = tok_encode_n(tok, lines[b0 + i], lens[b0 + i], ids + i * ctx, NULL);
            if (rc)
                rc = rl_error_prefix(rc, "%s:%zu", a->text, b0 + i + 1);
        }
        if (!rc && (rc = clip_text_forward(&tr, m, NULL, ids, nb, ctx, emb)))
            rc = rl_error_prefix(rc, "%s: lines %zu-%zu", a->text, b0 + 1, b0 + nb);
        if (rc || (rc = h5out_write_rows(&o, d_emb, H5T_NATIVE_FLOAT, b0, nb, D, emb)) ||
            (rc = h5out_write_rows(&o, d_ids, H5T_NATIVE_INT32, b0, nb, ctx, ids)))
            goto out;
        done += nb;
        progress_update(&prog, b0 / batch + 1, -1, -1, -1);
    }
    H5Dclose(d_emb);
    H5Dclose(d_ids);
    d_emb = d_ids = -1;
    progress_finish(&prog);
    started = false;
    if ((rc = h5out_commit(&o)))
        goto out;
    printf("wrote %s: /text_embeds float32 [%zu, %zu], /input_ids int32 [%zu, %zu] (%zu "
           "captions of %s, %.1f s)\n", a->out, n, D, n, ctx, done, a->text, timer_now() - t0);
out:
    progress_break(&prog, started);
    if (d_emb >= 0)
        H5Dclose(d_emb);
    if (d_ids >= 0)
        H5Dclose(d_ids);
    h5out_abort(&o);
    free(emb);
    free(ids);
    clip_text_run_free(&tr);
    free(lines);
    free(lens);
    free(text);
    tok_free(tok);
    return rc;
}

int cmd_encode(int argc, char **argv)
{
    struct encode_args a = { .batch = ENCODE_DEFAULT_BATCH };
    struct clip_model m;
    int rc;

    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];

        if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
            encode_usage(stdout);
            return 0;
        }
        if (i + 1 >= argc)
            return bad_usage("option '%s' needs a value", o);
        const char *v = argv[++i];
        if (!strcmp(o, "--model"))
            a.model_dir = v;
        else if (!strcmp(o, "--images"))
            a.images = v;
        else if (!strcmp(o, "--text"))
            a.text = v;
        else if (!strcmp(o, "-o") || !strcmp(o, "--output"))
            a.out = v;
        else if (!strcmp(o, "--batch")) {
            if (cli_parse_count(v, ENCODE_MAX_BATCH, &a.batch))
                return bad_usage("--batch '%s': expected a whole number in 1..%d", v,
                                 ENCODE_MAX_BATCH);
        } else if (!strcmp(o, "--limit")) {
            if (cli_parse_count(v, SIZE_MAX / 2, &a.limit))
                return bad_usage("--limit '%s': expected a positive whole number", v);
        } else
            return bad_usage("unknown option '%s'", o);
    }
    if (!a.model_dir)
        return bad_usage("--model DIR is required");
    if (!a.images == !a.text)
        return bad_usage("give exactly one of --images SPEC and --text FILE");
    if (!a.out || !*a.out)
        return bad_usage("-o OUT.h5 is required");

    threads_init(0);
    if ((rc = clip_model_load(&m, a.model_dir)) == RL_OK) {
        rc = a.images ? encode_images(&a, &m) : encode_text(&a, &m);
        clip_model_free(&m);
    }
    if (rc != RL_OK) {
        fprintf(stderr, "randlora encode: %s\n", rl_error_msg());
        return rl_exit_code(rc);
    }
    return 0;
}
