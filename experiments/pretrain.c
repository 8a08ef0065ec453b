/*
 * pretrain.c: contrastive pretraining of a byte-level CLIP preset
 * (clip-tiny) from scratch, the model directory it writes, and the held-out
 * checks (pretrain.h).
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/alloc.h"
#include "core/progress.h"
#include "core/status.h"
#include "core/timer.h"
#include "datasets/loader.h"
#include "experiments/pretrain.h"
#include "experiments/runner.h"
#include "models/optim.h"
#include "formats/safetensors.h"

#define CAPTION_MAX 256
#define SETTINGS_FILE "pretrain.json"

/* ------------------------------------------------------------------------ */
/* the directory                                                             */

static char *read_text(const char *path)
{
    FILE *fp = fopen(path, "rb");
    long n;
    char *s;

    if (!fp)
        return NULL;
    if (fseek(fp, 0, SEEK_END) != 0 || (n = ftell(fp)) < 0 || n > (1L << 24) ||
        fseek(fp, 0, SEEK_SET) != 0) {
        fclose(fp);
        return NULL;
    }
    s = xmalloc((size_t)n + 1);
    if (fread(s, 1, (size_t)n, fp) != (size_t)n) {
        fclose(fp);
        free(s);
        return NULL;
    }
    fclose(fp);
    s[n] = '\0';
    return s;
}

static int write_text(const char *path, const char *text)
{
    char tmp[4200];
    FILE *fp;

    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    if (!(fp = fopen(tmp, "wb")))
        return rl_error_set(RL_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    if (fputs(text, fp) == EOF || fclose(fp) != 0 || rename(tmp, path) != 0)
        return rl_error_set(RL_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    return RL_OK;
}

/* the settings a directory is cached for, as one string */
static char *settings_string(const struct exp_model *model, const struct clip_config *cfg)
{
    char *json = clip_config_to_json(cfg);
    size_t n = strlen(json) + 1024;
    char *s = xmalloc(n);

    snprintf(s, n, "model=%s data=%s corpus=%zu steps=%zu batch=%zu lr=%.17g wd=%.17g "
             "warmup=%zu seed=%llu config=%s", model->name, model->pretrain_data,
             model->pretrain_corpus, model->pretrain_steps, model->pretrain_batch,
             model->pretrain_lr, model->pretrain_weight_decay, model->pretrain_warmup,
             (unsigned long long)model->pretrain_seed, json);
    free(json);
    return s;
}

static bool cached(const struct exp_model *model, const struct clip_config *cfg)
{
    static const char *const files[] = { "model.safetensors", "config.json",
                                         "tokenizer_bytes.json", NULL };
    char *want = settings_string(model, cfg);
    bool ok = pretrain_dir_is_cached(model->pretrain_dir, files, want);

    free(want);
    return ok;
}

bool pretrain_dir_is_cached(const char *dir, const char *const *files, const char *want)
{
    char path[4096];
    struct stat st;

    for (size_t i = 0; files[i]; i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
        if (stat(path, &st) != 0)
            return false;
    }
    return pretrain_settings_match(dir, want);
}

bool pretrain_settings_match(const char *dir, const char *want)
{
    char path[4096], *text;
    cJSON *j;
    bool ok = false;

    snprintf(path, sizeof(path), "%s/" SETTINGS_FILE, dir);
    if (!(text = read_text(path)))
        return false;
    if ((j = cJSON_Parse(text))) {
        const cJSON *it = cJSON_GetObjectItemCaseSensitive(j, "settings");

        ok = cJSON_IsString(it) && !strcmp(it->valuestring, want);
        cJSON_Delete(j);
    }
    free(text);
    return ok;
}

cJSON *pretrain_json_new(const struct exp_model *model, const char *settings, size_t steps,
                         double seconds)
{
    cJSON *j = cJSON_CreateObject();

    cJSON_AddStringToObject(j, "settings", settings);
    cJSON_AddStringToObject(j, "model", model->name);
    cJSON_AddStringToObject(j, "data", model->pretrain_data);
    cJSON_AddNumberToObject(j, "corpus", (double)model->pretrain_corpus);
    cJSON_AddNumberToObject(j, "steps", (double)steps);
    cJSON_AddNumberToObject(j, "batch", (double)model->pretrain_batch);
    cJSON_AddNumberToObject(j, "lr", model->pretrain_lr);
    cJSON_AddNumberToObject(j, "weight_decay", model->pretrain_weight_decay);
    cJSON_AddNumberToObject(j, "warmup", (double)model->pretrain_warmup);
    cJSON_AddNumberToObject(j, "seed", (double)model->pretrain_seed);
    cJSON_AddNumberToObject(j, "seconds", seconds);
    return j;
}

bool pretrain_is_cached(const struct exp_model *model)
{
    struct clip_config cfg;

    if (!model->preset || clip_config_preset(&cfg, model->name) != RL_OK) {
        rl_error_clear();
        return false;
    }
    return cached(model, &cfg);
}

static int write_dir_files(const struct exp_model *model, const struct clip_config *cfg,
                           const struct pretrain_result *r)
{
    char path[4096], *settings = settings_string(model, cfg), *text;
    cJSON *j = pretrain_json_new(model, settings, r->steps, r->seconds);
    int rc;

    snprintf(path, sizeof(path), "%s/tokenizer_bytes.json", model->pretrain_dir);
    rc = write_text(path, "{\"type\": \"bytes\", \"offset\": 0, \"sot\": 256, \"eot\": 257}\n");
    cJSON_AddNumberToObject(j, "final_loss", r->final_loss);
    cJSON_AddNumberToObject(j, "heldout_loss", r->heldout_loss);
    cJSON_AddNumberToObject(j, "retrieval_accuracy", r->retrieval_acc);
    cJSON_AddNumberToObject(j, "retrieval_group", (double)r->retrieval_group);
    text = cJSON_Print(j);
    snprintf(path, sizeof(path), "%s/" SETTINGS_FILE, model->pretrain_dir);
    if (rc == RL_OK)
        rc = write_text(path, text);
    free(text);
    cJSON_Delete(j);
    free(settings);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* held-out checks                                                           */

/* "shapes" -> "shapes:test" (a given split is kept) */
static void test_spec(const char *spec, char *buf, size_t size)
{
    size_t n = strlen(spec);

    if ((n > 6 && !strcmp(spec + n - 6, ":train")) || (n > 5 && !strcmp(spec + n - 5, ":test")))
        snprintf(buf, size, "%s", spec);
    else
        snprintf(buf, size, "%s:test", spec);
}

int pretrain_retrieval(const struct clip_model *m, const struct tokenizer *tok, const char *spec,
                       size_t limit, size_t group, double *loss, double *acc)
{
    const size_t D = m->cfg.projection_dim, ctx = m->cfg.text.context;
    struct dataset ds = { 0 };
    struct loader *L = NULL;
    struct loader_config lc;
    struct clip_vision_run vr = { 0 };
    struct clip_text_run tr = { 0 };
    struct clip_head h = { 0 };
    int32_t *ids = NULL;
    char *caps = NULL;
    float *img = NULL, *txt = NULL;
    size_t correct = 0, rows = 0, batches = 0;
    double loss_sum = 0.0;
    int rc;

    if ((rc = dataset_open(&ds, spec)) != RL_OK)
        return rc;
    if (limit > ds.n)
        limit = ds.n;
    if (group < 2 || limit < group) {
        rc = rl_error_set(RL_ERR_ARG, "%s: %zu items for retrieval groups of %zu", spec, limit,
                          group);
        goto out;
    }
    loader_config_init(&lc, (int)group, (int)m->cfg.vision.image_size);
    lc.drop_last = 1;
    rc = loader_open(&L, &ds, NULL, limit, &lc);
    if (rc != RL_OK)
        goto out;
    clip_vision_run_init(&vr, m, group, false);
    clip_text_run_init(&tr, m, group, 0, false);
    clip_head_init(&h, group, group, D);
    ids = xmalloc_array(group * ctx, sizeof(*ids));
    caps = xmalloc(group * CAPTION_MAX);
    img = xmalloc_array(group * D, sizeof(float));
    txt = xmalloc_array(group * D, sizeof(float));
    for (;;) {
        struct loader_batch b;

        if ((rc = loader_next(L, &b)) != RL_OK || b.n == 0)
            break;
        for (int i = 0; i < b.n && rc == RL_OK; i++) {
            rc = dataset_caption(&ds, b.index[i], caps + (size_t)i * CAPTION_MAX, CAPTION_MAX);
            if (rc == RL_OK)
                rc = tok_encode(tok, caps + (size_t)i * CAPTION_MAX, ids + (size_t)i * ctx, NULL);
        }
        if (rc == RL_OK)
            rc = clip_text_forward(&tr, m, NULL, ids, (size_t)b.n, ctx, txt);
        if (rc == RL_OK)
            rc = clip_vision_forward(&vr, m, NULL, b.x, (size_t)b.n, img);
        if (rc != RL_OK)
            break;
        clip_head_logits(&h, img, txt, (size_t)b.n, (size_t)b.n, clip_logit_scale(m));
        loss_sum += clip_head_contrastive(&h);
        batches++;
        for (int i = 0; i < b.n; i++) {
            const float *row = h.logits + (size_t)i * (size_t)b.n;
            int best = 0;

            for (int j = 1; j < b.n; j++)
                if (row[j] > row[best])
                    best = j;
            correct += best == i || !strcmp(caps + (size_t)best * CAPTION_MAX,
                                            caps + (size_t)i * CAPTION_MAX);
        }
        rows += (size_t)b.n;
    }
    if (rc == RL_OK) {
        *loss = loss_sum / (double)batches;
        *acc = (double)correct / (double)rows;
    }
out:
    free(ids);
    free(caps);
    free(img);
    free(txt);
    clip_head_free(&h);
    if (vr.buf)
        clip_vision_run_free(&vr);
    if (tr.buf)
        clip_text_run_free(&tr);
    loader_close(L);
    dataset_close(&ds);
    return rc;
}

int pretrain_zeroshot(const struct clip_model *m, const struct tokenizer *tok, const char *spec,
                      const char *const *templates, size_t K, size_t limit, double *acc)
{
    const size_t D = m->cfg.projection_dim, ctx = m->cfg.text.context, B = 128;
    struct dataset ds = { 0 };
    struct loader *L = NULL;
    struct loader_config lc;
    struct clip_vision_run vr = { 0 };
    struct clip_text_run tr = { 0 };
    struct clip_head h = { 0 };
    int32_t *ids = NULL;
    float *img = NULL, *txt = NULL, *cls = NULL;
    size_t correct = 0, rows = 0, M;
    int rc;

    if ((rc = dataset_open(&ds, spec)) != RL_OK)
        return rc;
    M = (size_t)ds.n_classes;
    if (limit == 0 || limit > ds.n)
        limit = ds.n;
    ids = xmalloc_array(M * K * ctx, sizeof(*ids));
    for (size_t c = 0; c < M && rc == RL_OK; c++)
        for (size_t k = 0; k < K && rc == RL_OK; k++) {
            char buf[512];
            const char *at = strstr(templates[k], "{}");

            if (at)
                snprintf(buf, sizeof(buf), "%.*s%s%s", (int)(at - templates[k]), templates[k],
                         ds.class_names[c], at + 2);
            else
                snprintf(buf, sizeof(buf), "%s", templates[k]);
            rc = tok_encode(tok, buf, ids + (c * K + k) * ctx, NULL);
        }
    if (rc != RL_OK)
        goto out;
    loader_config_init(&lc, (int)B, (int)m->cfg.vision.image_size);
    rc = loader_open(&L, &ds, NULL, limit, &lc);
    if (rc != RL_OK)
        goto out;
    clip_vision_run_init(&vr, m, B, false);
    clip_text_run_init(&tr, m, M * K, 0, false);
    clip_head_init(&h, B, M, D);
    img = xmalloc_array(B * D, sizeof(float));
    txt = xmalloc_array(M * K * D, sizeof(float));
    cls = xmalloc_array(M * D, sizeof(float));
    if ((rc = clip_text_forward(&tr, m, NULL, ids, M * K, ctx, txt)) != RL_OK)
        goto out;
    clip_class_features(cls, txt, M, K, D);
    for (;;) {
        struct loader_batch b;

        if ((rc = loader_next(L, &b)) != RL_OK || b.n == 0)
            break;
        if ((rc = clip_vision_forward(&vr, m, NULL, b.x, (size_t)b.n, img)) != RL_OK)
            break;
        clip_head_logits(&h, img, cls, (size_t)b.n, M, 1.0f);
        for (int i = 0; i < b.n; i++) {
            const float *row = h.logits + (size_t)i * M;
            size_t best = 0;

            for (size_t c = 1; c < M; c++)
                if (row[c] > row[best])
                    best = c;
            correct += best == (size_t)b.labels[i];
        }
        rows += (size_t)b.n;
    }
    if (rc == RL_OK)
        *acc = rows ? (double)correct / (double)rows : 0.0;
out:
    free(ids);
    free(img);
    free(txt);
    free(cls);
    clip_head_free(&h);
    if (vr.buf)
        clip_vision_run_free(&vr);
    if (tr.buf)
        clip_text_run_free(&tr);
    loader_close(L);
    dataset_close(&ds);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* training                                                                  */

int pretrain_run(const struct exp_model *model, const struct pretrain_options *opt,
                 struct pretrain_result *res)
{
    static const struct pretrain_options defaults = { .verbosity = 1 };
    struct pretrain_result local;
    struct clip_config cfg;
    struct clip_model m = { 0 };
    struct clip_grads g = { 0 };
    struct clip_vision_run vr = { 0 };
    struct clip_text_run tr = { 0 };
    struct clip_head h = { 0 };
    struct adamw ad = { 0 };
    struct dataset ds = { 0 };
    struct loader *L = NULL;
    struct loader_config lc;
    struct tokenizer *tok = NULL;
    struct progress prog;
    int32_t *ids = NULL;
    char caption[CAPTION_MAX], spec[512];
    float *img = NULL, *txt = NULL, *dimg = NULL, *dtxt = NULL;
    double *losses = NULL;
    const double t0 = timer_now();
    const float max_ls = logf(100.0f);
    size_t B, D, ctx, n_corpus, steps, images = 0;
    FILE *log;
    int rc;

    if (!opt)
        opt = &defaults;
    if (!res)
        res = &local;
    memset(res, 0, sizeof(*res));
    log = opt->log ? opt->log : stderr;
    if (!model->preset) {
        if (opt->verbosity > 0)
            fprintf(log, "randlora pretrain: model %s is a model directory; nothing to "
                    "pretrain\n", model->name);
        res->skipped = true;
        return RL_OK;
    }
    if (opt->cfg)
        cfg = *opt->cfg;
    else if ((rc = clip_config_preset(&cfg, model->name)) != RL_OK)
        return rc;
    if (cfg.text.vocab_size != 258 || cfg.text.bos_token_id != 256 || cfg.text.eos_token_id != 257)
        return rl_error_set(RL_ERR_ARG, "model %s: only byte-level presets (vocab 258, bos 256, "
                            "eos 257: clip-tiny) can be pretrained here; give real weights as a "
                            "model directory", model->name);
    if (cached(model, &cfg)) {
        if (opt->verbosity > 0)
            fprintf(log, "randlora pretrain: %s already holds %s pretrained with these "
                    "settings; skipping\n", model->pretrain_dir, model->name);
        res->skipped = true;
        return RL_OK;
    }

    B = model->pretrain_batch;
    steps = model->pretrain_steps;
    if (B < 2 || steps == 0)
        return rl_error_set(RL_ERR_ARG, "model.pretrain_batch must be >= 2 and "
                            "model.pretrain_steps > 0");
    if ((rc = clip_model_init(&m, &cfg)) != RL_OK)
        return rc;
    clip_model_init_random(&m, model->pretrain_seed);
    D = cfg.projection_dim;
    ctx = cfg.text.context;
    tok = tok_new_bytes(0, 256, 257);
    if ((rc = tok_set_frame(tok, (int)ctx, (int32_t)cfg.text.pad_token_id, true)) != RL_OK)
        goto out;
    if ((rc = dataset_open(&ds, model->pretrain_data)) != RL_OK)
        goto out;
    if (!ds.ops->caption) {
        rc = rl_error_set(RL_ERR_ARG, "model.pretrain_data = %s: the dataset has no captions "
                          "(use shapes)", model->pretrain_data);
        goto out;
    }
    n_corpus = model->pretrain_corpus < ds.n ? model->pretrain_corpus : ds.n;
    if (n_corpus < B) {
        rc = rl_error_set(RL_ERR_ARG, "model.pretrain_corpus = %zu items, fewer than one batch "
                          "of %zu", n_corpus, B);
        goto out;
    }
    loader_config_init(&lc, (int)B, (int)cfg.vision.image_size);
    lc.shuffle = 1;
    lc.repeat = 1;
    lc.drop_last = 1;
    lc.seed = model->pretrain_seed;
    rc = loader_open(&L, &ds, NULL, n_corpus, &lc);
    if (rc != RL_OK)
        goto out;
    {
        struct adamw_cfg ac = ADAMW_CFG_DEFAULT;

        ac.lr = model->pretrain_lr;
        ac.weight_decay = model->pretrain_weight_decay;
        ac.beta2 = 0.98;                  /* CLIP's */
        ac.eps = 1e-6;
        if ((rc = adamw_init(&ad, &ac, m.n_params)) != RL_OK)
            goto out;
    }
    struct lr_cosine sched = { .lr_max = model->pretrain_lr, .lr_min = model->pretrain_lr / 100,
                               .warmup = model->pretrain_warmup < steps ? model->pretrain_warmup
                                                                        : steps,
                               .total = steps };

    /* every buffer before the first step */
    clip_grads_init(&g, &m);
    clip_vision_run_init(&vr, &m, B, true);
    clip_text_run_init(&tr, &m, B, 0, true);
    clip_head_init(&h, B, B, D);
    ids = xmalloc_array(B * ctx, sizeof(*ids));
    img = xmalloc_array(B * D, sizeof(float));
    txt = xmalloc_array(B * D, sizeof(float));
    dimg = xmalloc_array(B * D, sizeof(float));
    dtxt = xmalloc_array(B * D, sizeof(float));
    losses = xcalloc(steps, sizeof(double));

    if (opt->verbosity > 0)
        fprintf(log, "randlora pretrain: %s (%zu parameters) on %s, %zu items, %zu steps of %zu "
                "pairs -> %s\n", model->name, m.n_params, model->pretrain_data, n_corpus, steps,
                B, model->pretrain_dir);
    progress_init(&prog, "pretrain", steps, log);
    for (size_t step = 0; step < steps; step++) {
        struct loader_batch b;
        float dls = 0.0f;
        double loss, norm, lr;

        if ((rc = loader_next(L, &b)) != RL_OK)
            goto out;
        for (int i = 0; i < b.n && rc == RL_OK; i++) {
            rc = dataset_caption(&ds, b.index[i], caption, sizeof(caption));
            if (rc == RL_OK)
                rc = tok_encode(tok, caption, ids + (size_t)i * ctx, NULL);
        }
        if (rc == RL_OK)
            rc = clip_text_forward(&tr, &m, NULL, ids, (size_t)b.n, ctx, txt);
        if (rc == RL_OK)
            rc = clip_vision_forward(&vr, &m, NULL, b.x, (size_t)b.n, img);
        if (rc != RL_OK)
            goto out;
        clip_head_logits(&h, img, txt, (size_t)b.n, (size_t)b.n, clip_logit_scale(&m));
        loss = clip_head_contrastive(&h);
        if (!isfinite(loss)) {
            rc = rl_error_set(RL_ERR, "pretrain: non-finite loss (%g) at step %zu", loss, step + 1);
            goto out;
        }
        clip_grads_zero(&g, &m);
        memset(dimg, 0, (size_t)b.n * D * sizeof(float));
        memset(dtxt, 0, (size_t)b.n * D * sizeof(float));
        clip_head_backward(&h, dimg, dtxt, &dls, 1.0f);
        clip_vision_backward(&vr, &m, NULL, &g, dimg, NULL);
        clip_text_backward(&tr, &m, NULL, &g, dtxt);
        g.w.logit_scale[0] += dls;
        norm = clip_grad_norm(g.buf, m.n_params, 1.0);
        if (!isfinite(norm)) {
            rc = rl_error_set(RL_ERR, "pretrain: non-finite gradient norm at step %zu", step + 1);
            goto out;
        }
        lr = lr_cosine_at(&sched, step);
        ad.cfg.lr = lr;
        adamw_step(&ad, m.params, g.buf);
        if (m.w.logit_scale[0] > max_ls)
            m.w.logit_scale[0] = max_ls;
        losses[step] = loss;
        images += (size_t)b.n;
        if (opt->verbosity > 0)
            progress_update(&prog, step + 1, loss, lr, (double)images / (timer_now() - t0));
    }
    if (opt->verbosity > 0)
        progress_finish(&prog);
    res->steps = steps;
    res->seconds = timer_now() - t0;
    {
        size_t tail = steps / 10 ? steps / 10 : 1;
        double sum = 0;

        for (size_t i = steps - tail; i < steps; i++)
            sum += losses[i];
        res->final_loss = sum / (double)tail;
    }

    /* held-out retrieval, then the directory (pretrain.json last) */
    test_spec(model->pretrain_data, spec, sizeof(spec));
    res->retrieval_group = B;
    rc = pretrain_retrieval(&m, tok, spec, opt->eval_items ? opt->eval_items : 1024, B,
                            &res->heldout_loss, &res->retrieval_acc);
    if (rc != RL_OK)
        goto out;
    if ((rc = runner_mkdir_p(model->pretrain_dir)) != RL_OK)
        goto out;
    if ((rc = clip_model_save(&m, model->pretrain_dir, ST_F32)) != RL_OK)
        goto out;
    rc = write_dir_files(model, &cfg, res);
    if (rc == RL_OK && opt->verbosity > 0)
        fprintf(log, "randlora pretrain: %zu steps in %.1f s, final loss %.4f; held-out %s: "
                "loss %.4f, image->text top-1 %.3f among %zu (chance %.3f); logit scale %.1f\n",
                steps, res->seconds, res->final_loss, spec, res->heldout_loss,
                res->retrieval_acc, B, 1.0 / (double)B, clip_logit_scale(&m));
out:
    free(ids);
    free(img);
    free(txt);
    free(dimg);
    free(dtxt);
    free(losses);
    adamw_free(&ad);
    clip_head_free(&h);
    if (vr.buf)
        clip_vision_run_free(&vr);
    if (tr.buf)
        clip_text_run_free(&tr);
    if (g.buf)
        clip_grads_free(&g);
    loader_close(L);
    dataset_close(&ds);
    tok_free(tok);
    clip_model_free(&m);
    return rc;
}
