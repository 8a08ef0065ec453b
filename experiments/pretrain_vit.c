/*
 * pretrain_vit.c: supervised pretraining of a DINOv2-layout preset
 * (vit-tiny) on a labelled procedural dataset, with a temporary linear
 * head; the directory it writes (pretrain_vit.h).
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/progress.h"
#include "core/read_file.h"
#include "core/status.h"
#include "core/timer.h"
#include "datasets/loader.h"
#include "experiments/pretrain.h"
#include "experiments/pretrain_vit.h"
#include "experiments/runner_impl.h"
#include "formats/safetensors.h"
#include "models/dinov2.h"
#include "models/head.h"
#include "models/optim.h"

#define SETTINGS_FILE     "pretrain.json"
#define DEFAULT_EVAL      2000
#define HEAD_SEED_MIX     0x5EADull
#define POOL              DINOV2_POOL_CLS_MEAN

/* ------------------------------------------------------------------------ */
/* the directory                                                             */

/* the settings a directory is cached for, one string (pretrain_steps = 0: the
 * seed and config only, the other keys do not matter to a random init) */
static char *settings_string(const struct exp_model *em, const struct clip_config *cfg)
{
    char *json = dinov2_config_to_json(cfg);
    size_t n = strlen(json) + 1024;
    char *s = xmalloc(n);

    if (em->pretrain_steps == 0) {
        /* untrained: only the seed and the shapes make the weights */
        snprintf(s, n, "model=%s random_init seed=%llu config=%s", em->name,
                 (unsigned long long)em->pretrain_seed, json);
        free(json);
        return s;
    }
    snprintf(s, n, "model=%s task=classification features=cls_mean data=%s corpus=%zu "
             "steps=%zu batch=%zu lr=%.17g wd=%.17g warmup=%zu seed=%llu config=%s", em->name,
             em->pretrain_data, em->pretrain_corpus, em->pretrain_steps, em->pretrain_batch,
             em->pretrain_lr, em->pretrain_weight_decay, em->pretrain_warmup,
             (unsigned long long)em->pretrain_seed, json);
    free(json);
    return s;
}

static bool cached(const struct exp_model *em, const struct clip_config *cfg)
{
    static const char *const files[] = { "config.json", "model.safetensors", NULL };
    char *want = settings_string(em, cfg);
    bool ok = pretrain_dir_is_cached(em->pretrain_dir, files, want);

    free(want);
    return ok;
}

bool pretrain_vit_is_cached(const struct exp_model *em)
{
    struct clip_config cfg;

    if (!em->preset || dinov2_config_preset(&cfg, em->name) != RL_OK) {
        rl_error_clear();
        return false;
    }
    return cached(em, &cfg);
}

static int write_settings(const struct exp_model *em, const struct clip_config *cfg,
                          const struct pretrain_vit_result *r)
{
    char *settings = settings_string(em, cfg), *text, *path;
    cJSON *j = pretrain_json_new(em, settings, r->steps, r->seconds);
    int rc;

    cJSON_AddStringToObject(j, "task", "classification");
    if (r->steps) {
        cJSON_AddNumberToObject(j, "classes", (double)r->classes);
        cJSON_AddNumberToObject(j, "final_loss", r->final_loss);
        cJSON_AddNumberToObject(j, "heldout_items", (double)r->heldout_items);
        cJSON_AddNumberToObject(j, "init_heldout_loss", r->init_heldout_loss);
        cJSON_AddNumberToObject(j, "init_heldout_accuracy", r->init_heldout_acc);
        cJSON_AddNumberToObject(j, "heldout_loss", r->heldout_loss);
        cJSON_AddNumberToObject(j, "heldout_accuracy", r->heldout_acc);
    }
    text = cJSON_Print(j);
    path = rl_path_join(em->pretrain_dir, SETTINGS_FILE);
    rc = rl_write_text_atomic(path, text);
    free(path);
    free(text);
    cJSON_Delete(j);
    free(settings);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* held-out                                                                  */

/* the head's mean cross-entropy and accuracy on the first `limit` items of
 * spec, preprocessed by lc's transform */
static int heldout(const struct clip_model *m, struct linear_head *h, const char *spec,
                   size_t limit, const struct transform *tf, double *loss, double *acc,
                   size_t *items)
{
    struct dataset ds = { 0 };
    struct loader *L = NULL;
    struct loader_config lc;
    struct dinov2_run r = { 0 };
    float *feats = NULL;
    double sum = 0.0;
    size_t correct = 0, rows = 0;
    int rc;

    if ((rc = dataset_open(&ds, spec)) != RL_OK)
        return rc;
    if (limit > ds.n)
        limit = ds.n;
    const size_t EB = h->max_N;        /* the head's rows */

    loader_config_init(&lc, (int)EB, tf->size);
    lc.transform = *tf;
    if ((rc = loader_open(&L, &ds, NULL, limit, &lc)) != RL_OK)
        goto out;
    dinov2_run_init(&r, m, EB, false);
    feats = xmalloc_array(EB * h->in, sizeof(float));
    for (;;) {
        struct loader_batch b;

        if ((rc = loader_next(L, &b)) != RL_OK || b.n == 0)
            break;
        if ((rc = dinov2_forward(&r, m, NULL, b.x, (size_t)b.n, POOL, feats)) != RL_OK)
            break;
        sum += (double)linear_head_loss(h, feats, b.labels, (size_t)b.n) * b.n;
        correct += linear_head_correct(h, b.labels, (size_t)b.n);
        rows += (size_t)b.n;
    }
    if (rc == RL_OK && rows == 0)
        rc = rl_error_set(RL_ERR_ARG, "%s: no held-out items", spec);
    if (rc == RL_OK) {
        *loss = sum / (double)rows;
        *acc = (double)correct / (double)rows;
        *items = rows;
    }
out:
    free(feats);
    if (r.buf)
        dinov2_run_free(&r);
    loader_close(L);
    dataset_close(&ds);
    return rc;
}

/* "shapes" -> "shapes:test" (a split given is replaced) */
static void test_spec(const char *spec, char *buf, size_t size)
{
    const char *colon = strrchr(spec, ':');
    size_t n = strlen(spec);

    if (colon && (!strcmp(colon, ":train") || !strcmp(colon, ":test")))
        n = (size_t)(colon - spec);
    snprintf(buf, size, "%.*s:test", (int)n, spec);
}

/* ------------------------------------------------------------------------ */
/* training                                                                  */

/* the LayerScale vectors (no gradient) back to their values in keep */
static void layer_scale_restore(struct clip_model *m, const float *keep)
{
    const size_t C = m->cfg.vision.hidden;

    for (size_t l = 0; l < m->cfg.vision.layers; l++)
        memcpy(m->params + (m->vlayer[l].ls1 - m->params), keep + 2 * l * C,
               2 * C * sizeof(float));
}

/* one step: forward, loss, backward into g and the head, clipping; the loss */
static int train_step(struct dinov2_run *r, struct clip_model *m, struct dinov2_grads *g,
                      struct linear_head *h, const struct loader_batch *b, float *feats,
                      float *dfeats, double *loss)
{
    const size_t n = (size_t)b->n;
    double norm, scale;
    int rc;

    if ((rc = dinov2_forward(r, m, NULL, b->x, n, POOL, feats)) != RL_OK)
        return rc;
    *loss = linear_head_loss(h, feats, b->labels, n);
    memset(g->buf, 0, g->n * sizeof(float));
    memset(h->grads, 0, h->n_params * sizeof(float));
    memset(dfeats, 0, n * h->in * sizeof(float));
    linear_head_backward(h, dfeats, 1.0f);
    if ((rc = dinov2_backward_full(r, m, g, dfeats)) != RL_OK)
        return rc;
    /* clip_grad_norm_ over backbone and head together */
    norm = hypot(grad_norm(g->buf, g->n), grad_norm(h->grads, h->n_params));
    if (!isfinite(*loss) || !isfinite(norm))
        return rl_error_set(RL_ERR, "pretrain: non-finite loss (%g) or gradient norm", *loss);
    scale = 1.0 / (norm + 1e-6);
    if (scale < 1.0) {
        for (size_t i = 0; i < g->n; i++)
            g->buf[i] *= (float)scale;
        for (size_t i = 0; i < h->n_params; i++)
            h->grads[i] *= (float)scale;
    }
    return RL_OK;
}

int pretrain_vit_run(const struct exp_model *em, const struct pretrain_vit_options *opt,
                     struct pretrain_vit_result *res)
{
    static const struct pretrain_vit_options defaults = { .verbosity = 1 };
    struct pretrain_vit_result local;
    struct clip_config cfg;
    struct clip_model m = { 0 };
    struct dinov2_grads g = { 0 };
    struct dinov2_run r = { 0 };
    struct linear_head h = { 0 };
    struct adamw ad = { 0 }, ad_head = { 0 };
    struct dataset ds = { 0 };
    struct loader *L = NULL;
    struct loader_config lc;
    struct progress prog;
    char spec[512];
    float *feats = NULL, *dfeats = NULL, *ls_keep = NULL;
    double *losses = NULL;
    const double t0 = timer_now();
    size_t B, S, n_corpus, images = 0, eval_items, FD;
    bool from_file;
    FILE *log;
    int rc;

    if (!opt)
        opt = &defaults;
    if (!res)
        res = &local;
    memset(res, 0, sizeof(*res));
    log = opt->log ? opt->log : stderr;
    eval_items = opt->eval_items ? opt->eval_items : DEFAULT_EVAL;
    if (!em->preset || !dinov2_is_preset(em->name))
        return rl_error_set(RL_ERR_ARG, "model %s: only a DINOv2-layout preset (vit-tiny) is "
                            "pretrained here; a model directory comes with its weights",
                            em->name);
    if (opt->cfg)
        cfg = *opt->cfg;
    else if ((rc = dinov2_config_preset(&cfg, em->name)) != RL_OK)
        return rc;
    if (cached(em, &cfg)) {
        if (opt->verbosity > 0)
            fprintf(log, "randlora pretrain: %s already holds %s pretrained with these "
                    "settings; skipping\n", em->pretrain_dir, em->name);
        res->skipped = true;
        return RL_OK;
    }
    B = em->pretrain_batch;
    S = em->pretrain_steps;
    if ((rc = dinov2_model_init(&m, &cfg)) != RL_OK)
        return rc;
    dinov2_model_init_random(&m, em->pretrain_seed);
    if (S == 0)
        goto save;                      /* the random init, untrained */

    if ((rc = dataset_open(&ds, em->pretrain_data)) != RL_OK)
        goto out;
    res->classes = (size_t)ds.n_classes;
    if (ds.n_classes < 2) {
        rc = rl_error_set(RL_ERR_ARG, "model.pretrain_data = %s: %d class; a DINOv2 preset is "
                          "pretrained on a labelled dataset (shapes, shapes-count)",
                          em->pretrain_data, ds.n_classes);
        goto out;
    }
    n_corpus = em->pretrain_corpus < ds.n ? em->pretrain_corpus : ds.n;
    if (B < 2 || n_corpus < B) {
        rc = rl_error_set(RL_ERR_ARG, "model.pretrain_batch = %zu: must be >= 2 and at most "
                          "model.pretrain_corpus (%zu items)", B, n_corpus);
        goto out;
    }
    loader_config_init(&lc, (int)B, (int)cfg.vision.image_size);
    if ((rc = head_preprocessing(em->pretrain_dir, cfg.vision.image_size, 0, &lc.transform,
                                 &from_file)) != RL_OK)
        goto out;
    lc.shuffle = 1;
    lc.repeat = 1;
    lc.drop_last = 1;
    lc.seed = em->pretrain_seed;
    if ((rc = loader_open(&L, &ds, NULL, n_corpus, &lc)) != RL_OK)
        goto out;
    FD = dinov2_feature_dim(&m, POOL);
    linear_head_init(&h, FD, (size_t)ds.n_classes, B, em->pretrain_seed ^ HEAD_SEED_MIX);
    {
        struct adamw_cfg ac = ADAMW_CFG_DEFAULT;

        ac.lr = em->pretrain_lr;
        ac.weight_decay = em->pretrain_weight_decay;
        if ((rc = adamw_init(&ad, &ac, m.n_params)) != RL_OK ||
            (rc = adamw_init(&ad_head, &ac, h.n_params)) != RL_OK)
            goto out;
    }
    struct lr_cosine sched = { .lr_max = em->pretrain_lr, .lr_min = em->pretrain_lr / 100,
                               .warmup = em->pretrain_warmup < S ? em->pretrain_warmup : S,
                               .total = S };

    /* every buffer before the first step */
    dinov2_grads_init(&g, &m);
    dinov2_run_init(&r, &m, B, true);
    feats = xmalloc_array(B * FD, sizeof(float));
    dfeats = xmalloc_array(B * FD, sizeof(float));
    losses = xcalloc(S, sizeof(double));
    ls_keep = xmalloc_array(2 * cfg.vision.layers * cfg.vision.hidden, sizeof(float));
    for (size_t l = 0; l < cfg.vision.layers; l++)
        memcpy(ls_keep + 2 * l * cfg.vision.hidden, m.vlayer[l].ls1,
               2 * cfg.vision.hidden * sizeof(float));
    test_spec(em->pretrain_data, spec, sizeof(spec));
    if ((rc = heldout(&m, &h, spec, eval_items, &lc.transform, &res->init_heldout_loss,
                      &res->init_heldout_acc, &res->heldout_items)) != RL_OK)
        goto out;

    if (opt->verbosity > 0) {
        fprintf(log, "randlora pretrain: %s (%zu parameters) classifying %s (%d classes), %zu "
                "items, %zu steps of %zu -> %s\n", em->name, m.n_params, em->pretrain_data,
                ds.n_classes, n_corpus, S, B, em->pretrain_dir);
        progress_init(&prog, "pretrain", S, log);
    }
    for (size_t step = 0; step < S; step++) {
        struct loader_batch b;
        double loss, lr;

        if ((rc = loader_next(L, &b)) != RL_OK)
            goto out;
        if ((rc = train_step(&r, &m, &g, &h, &b, feats, dfeats, &loss)) != RL_OK) {
            rl_error_prefix(rc, "step %zu", step + 1);
            goto out;
        }
        lr = lr_cosine_at(&sched, step);
        ad.cfg.lr = ad_head.cfg.lr = lr;
        adamw_step(&ad, m.params, g.buf);
        adamw_step(&ad_head, h.params, h.grads);
        layer_scale_restore(&m, ls_keep);
        losses[step] = loss;
        images += (size_t)b.n;
        if (opt->verbosity > 0)
            progress_update(&prog, step + 1, loss, lr, (double)images / (timer_now() - t0));
    }
    if (opt->verbosity > 0)
        progress_finish(&prog);
    {
        const size_t tail = S / 10 ? S / 10 : 1;
        double sum = 0.0;

        for (size_t i = S - tail; i < S; i++)
            sum += losses[i];
        res->final_loss = sum / (double)tail;
    }
    if ((rc = heldout(&m, &h, spec, eval_items, &lc.transform, &res->heldout_loss,
                      &res->heldout_acc, &res->heldout_items)) != RL_OK)
        goto out;
save:
    res->steps = S;
    res->seconds = timer_now() - t0;
    if ((rc = runner_mkdir_p(em->pretrain_dir)) != RL_OK ||
        (rc = dinov2_model_save(&m, em->pretrain_dir, ST_F32)) != RL_OK)
        goto out;
    rc = write_settings(em, &cfg, res);
    if (rc == RL_OK && opt->verbosity > 0 && S > 0)
        fprintf(log, "randlora pretrain: %zu steps in %.1f s, final loss %.4f; held-out %s "
                "(%zu items): loss %.4f (at init %.4f), accuracy %.3f (at init %.3f, chance "
                "%.3f)\n", S, res->seconds, res->final_loss, spec, res->heldout_items,
                res->heldout_loss, res->init_heldout_loss, res->heldout_acc,
                res->init_heldout_acc, 1.0 / (double)res->classes);
out:
    free(feats);
    free(dfeats);
    free(losses);
    free(ls_keep);
    adamw_free(&ad);
    adamw_free(&ad_head);
    if (h.params)
        linear_head_free(&h);
    if (r.buf)
        dinov2_run_free(&r);
    if (g.buf)
        dinov2_grads_free(&g);
    loader_close(L);
    dataset_close(&ds);
    clip_model_free(&m);
    return rc;
}
