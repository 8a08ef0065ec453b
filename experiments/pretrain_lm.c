/*
 * pretrain_lm.c: next-token pretraining of a decoder preset on the
 * procedural corpus (pretrain_lm.h).
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/progress.h"
#include "core/read_file.h"
#include "core/rng.h"
#include "core/status.h"
#include "core/timer.h"
#include "datasets/commonsense_synth.h"
#include "experiments/lm_model.h"
#include "experiments/pretrain_lm.h"
#include "experiments/runner.h"
#include "formats/safetensors.h"
#include "models/llama.h"
#include "models/optim.h"

#define SETTINGS_FILE   "pretrain.json"
#define LINE_BYTES      48
#define HELDOUT_WINDOWS 64

/* the settings that make a directory this pretraining's (pretrain.json) */
static char *settings_json(const struct exp_model *m)
{
    cJSON *o = cJSON_CreateObject();
    char *s;

    cJSON_AddStringToObject(o, "model", m->name);
    cJSON_AddStringToObject(o, "corpus", "commonsense_synth");
    cJSON_AddNumberToObject(o, "corpus_lines", (double)m->pretrain_corpus);
    cJSON_AddNumberToObject(o, "steps", (double)m->pretrain_steps);
    cJSON_AddNumberToObject(o, "batch", (double)m->pretrain_batch);
    cJSON_AddNumberToObject(o, "seq", PRETRAIN_LM_SEQ);
    cJSON_AddNumberToObject(o, "lr", m->pretrain_lr);
    cJSON_AddNumberToObject(o, "weight_decay", m->pretrain_weight_decay);
    cJSON_AddNumberToObject(o, "warmup", (double)m->pretrain_warmup);
    cJSON_AddNumberToObject(o, "seed", (double)m->pretrain_seed);
    s = cJSON_Print(o);
    cJSON_Delete(o);
    return s;
}

static bool cached(const char *dir, const char *want)
{
    char path[4096], *have = NULL;
    size_t n = 0;
    bool same;

    snprintf(path, sizeof(path), "%s/%s", dir, SETTINGS_FILE);
    if (rl_read_file(path, 1 << 20, &have, &n) != RL_OK) {
        rl_error_clear();
        return false;
    }
    same = n == strlen(want) && !memcmp(have, want, n);
    free(have);
    return same;
}

/* B windows of T+1 bytes from corpus[lo, hi) as ids (B,T) and targets */
static void draw_batch(struct rng *r, const char *corpus, size_t lo, size_t hi, size_t B,
                       size_t T, int32_t *ids, int32_t *tgt)
{
    for (size_t b = 0; b < B; b++) {
        const size_t at = lo + (size_t)rng_below(r, hi - lo - T);

        for (size_t t = 0; t < T; t++) {
            ids[b * T + t] = (unsigned char)corpus[at + t];
            tgt[b * T + t] = (unsigned char)corpus[at + t + 1];
        }
    }
}

static int write_dir(const struct llama_model *m, const char *dir, const char *settings)
{
    char path[4096];
    FILE *fp;
    int rc;

    if ((rc = runner_mkdir_p(dir)) != RL_OK || (rc = llama_model_save(m, dir, ST_F32, 1)))
        return rc;
    snprintf(path, sizeof(path), "%s/tokenizer.json", dir);
    if ((rc = lm_write_byte_tokenizer(path, (int)m->cfg.bos_token_id,
                                      (int)m->cfg.eos_token_id[0])) != RL_OK)
        return rc;
    snprintf(path, sizeof(path), "%s/%s", dir, SETTINGS_FILE);
    if (!(fp = fopen(path, "wb")))
        return rl_error_set(RL_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    if (fputs(settings, fp) < 0 || fclose(fp) != 0)
        return rl_error_set(RL_ERR_WRITE, "%s: cannot write", path);
    return RL_OK;
}

int pretrain_lm_run(const struct exp_model *em, int verbosity, FILE *log,
                    struct pretrain_lm_result *res)
{
    const size_t B = em->pretrain_batch, T = PRETRAIN_LM_SEQ, S = em->pretrain_steps;
    char *settings = settings_json(em), *corpus = NULL;
    struct llama_model m;
    struct llama_grads g;
    struct llama_run r;
    struct adamw opt = { 0 };
    struct progress prog;
    struct rng rng;
    int32_t *ids = NULL, *tgt = NULL;
    size_t len = 0, split;
    double t0 = timer_now(), tail = 0.0;
    size_t n_tail = 0;
    int rc;

    memset(res, 0, sizeof(*res));
    log = log ? log : stderr;
    if (strcmp(em->name, "llama-tiny")) {
        free(settings);
        return rl_error_set(RL_ERR_ARG, "model %s: only llama-tiny is pretrained here (its "
                            "byte vocabulary reads the procedural corpus); a real decoder's "
                            "weights come from its model directory", em->name);
    }
    if (cached(em->pretrain_dir, settings)) {
        free(settings);
        res->skipped = true;
        return RL_OK;
    }
    if ((rc = llama_model_preset(&m, em->name, em->pretrain_seed)) != RL_OK) {
        free(settings);
        return rc;
    }
    corpus = cs_synth_corpus(em->pretrain_seed, em->pretrain_corpus * LINE_BYTES, &len);
    split = len - len / 20;
    if (split < 2 * (T + 1) || len - split < 2 * (T + 1)) {
        rc = rl_error_set(RL_ERR_ARG, "model.pretrain_corpus = %zu: a corpus of %zu bytes is "
                          "too small for windows of %zu", em->pretrain_corpus, len, T);
        goto out;
    }
    llama_grads_init(&g, &m);
    llama_run_init(&r, &m, B, T, true);
    ids = xmalloc_array(B * T, sizeof(int32_t));
    tgt = xmalloc_array(B * T, sizeof(int32_t));
    if ((rc = adamw_init(&opt, &(struct adamw_cfg){ .lr = em->pretrain_lr, .beta1 = 0.9,
                                                    .beta2 = 0.999, .eps = 1e-8,
                                                    .weight_decay = em->pretrain_weight_decay },
                         m.n_params)) != RL_OK)
        goto free_run;
    struct lr_cosine sched = { .lr_max = em->pretrain_lr, .lr_min = em->pretrain_lr / 100,
                               .warmup = em->pretrain_warmup < S ? em->pretrain_warmup : S,
                               .total = S };
    rng_init(&rng, em->pretrain_seed ^ 0x9E7A1Bull);
    if (verbosity > 0)
        progress_init(&prog, em->name, S, log);
    for (size_t step = 1; step <= S && rc == RL_OK; step++) {
        double loss;

        draw_batch(&rng, corpus, 0, split, B, T, ids, tgt);
        llama_grads_zero(&g, &m);
        if ((rc = llama_forward(&r, &m, NULL, ids, B, T)) != RL_OK)
            break;
        loss = llama_lm_loss(&r, &m, tgt, true, &g);
        llama_backward(&r, &m, NULL, &g);
        if (!isfinite(loss) || !isfinite(clip_grad_norm(g.buf, m.n_params, 1.0))) {
            rc = rl_error_set(RL_ERR, "%s: non-finite loss or gradient at step %zu", em->name,
                              step);
            break;
        }
        opt.cfg.lr = lr_cosine_at(&sched, step - 1);
        adamw_step(&opt, m.params, g.buf);
        if (step > S - S / 10 || S < 10) {
            tail += loss;
            n_tail++;
        }
        if (verbosity > 0)
            progress_update(&prog, step, loss, opt.cfg.lr, -1.0);
    }
    if (verbosity > 0 && rc == RL_OK)
        progress_finish(&prog);
    if (rc == RL_OK) {
        /* held-out windows: the mean token loss */
        double sum = 0.0;
        struct rng hr;

        rng_init(&hr, em->pretrain_seed ^ 0x4E1D0Full);
        for (size_t k = 0; k < HELDOUT_WINDOWS / B + 1 && rc == RL_OK; k++) {
            draw_batch(&hr, corpus, split, len, B, T, ids, tgt);
            if ((rc = llama_forward(&r, &m, NULL, ids, B, T)) == RL_OK)
                sum += llama_lm_loss(&r, &m, tgt, false, NULL);
        }
        res->heldout_loss = sum / (double)(HELDOUT_WINDOWS / B + 1);
        res->final_loss = n_tail ? tail / (double)n_tail : NAN;
        res->steps = S;
        res->seconds = timer_now() - t0;
    }
    if (rc == RL_OK)
        rc = write_dir(&m, em->pretrain_dir, settings);
    adamw_free(&opt);
free_run:
    llama_run_free(&r);
    llama_grads_free(&g);
out:
    free(ids);
    free(tgt);
    free(corpus);
    free(settings);
    llama_model_free(&m);
    return rc;
}
