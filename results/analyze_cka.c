/*
 * analyze_cka.c: activation CKA between a run and a reference run
 * (analyze_cka.h): the fixed batch, both towers' layer outputs under each
 * run's adapters, the per-layer comparison and its /analysis/cka group.
 */
#include "results/analyze_cka.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/status.h"
#include "datasets/dataset.h"
#include "datasets/loader.h"
#include "experiments/runner.h"
#include "models/tokenizer.h"
#include "results/analysis.h"

#define CKA_CHUNK 16                /* images per vision forward */

void cka_acts_free(struct cka_acts *a)
{
    for (size_t l = 0; a->v && l < a->Lv; l++)
        free(a->v[l]);
    for (size_t l = 0; a->t && l < a->Lt; l++)
        free(a->t[l]);
    free(a->v);
    free(a->t);
    memset(a, 0, sizeof(*a));
}

void cka_ctx_free(struct cka_ctx *c)
{
    if (c->have_model)
        clip_model_free(&c->m);
    free(c->pixels);
    free(c->ids);
    cka_acts_free(&c->ref);
}

static void model_identity(const struct exp_model *em, char *buf, size_t size)
{
    const char *dir = runner_model_dir(em);
    char real[PATH_MAX];

    if (dir && realpath(dir, real))
        snprintf(buf, size, "%s", real);
    else
        snprintf(buf, size, "%s", dir ? dir : em->name);
}

/* The model, the first N eval images (CLIP eval transform at the model's
 * size) and the eval prompts of the reference's plan. */
int cka_setup(struct cka_ctx *c, const struct run_plan *p, const char *ref_path)
{
    struct dataset ds;
    struct loader *L = NULL;
    struct loader_config lc;
    struct loader_batch b;
    struct tokenizer *tok = NULL;
    char one[1][1024];
    char *one_t[1] = { one[0] };
    char *const *templates = one_t;
    size_t K = 1;
    int rc;

    memset(&ds, 0, sizeof ds);
    c->ref_plan = p;
    c->ref_path = ref_path;
    model_identity(&p->model, c->model_id, sizeof c->model_id);
    if ((rc = runner_load_model(&c->m, &p->model)))
        return rc;
    c->have_model = true;
    c->S = c->m.cfg.vision.image_size;
    if (p->image_size && p->image_size != c->S)
        return rl_error_set(RL_ERR_ARG, "%s: data.image_size = %zu, but the model takes %zux%zu images", ref_path,
                            p->image_size, c->S, c->S);
    if ((rc = dataset_open(&ds, p->eval)))
        return rc;
    c->n_images = c->batch < ds.n ? c->batch : ds.n;
    if (c->n_images < 1) {
        rc = rl_error_set(RL_ERR_ARG, "%s: the evaluation set %s is empty", ref_path, p->eval);
        goto out;
    }
    loader_config_init(&lc, (int)c->n_images, (int)c->S);
    lc.readahead = 0;
    if ((rc = loader_open(&L, &ds, NULL, c->n_images, &lc)) || (rc = loader_next(L, &b)))
        goto out;
    if ((size_t)b.n != c->n_images) {
        rc = rl_error_set(RL_ERR, "%s: %d images loaded, expected %zu", p->eval, b.n, c->n_images);
        goto out;
    }
    c->pixels = xmalloc_array(c->n_images * 3 * c->S * c->S, sizeof(float));
    memcpy(c->pixels, b.x, c->n_images * 3 * c->S * c->S * sizeof(float));

    /* the eval prompts: the dataset's templates when the run ensembles them */
    snprintf(one[0], sizeof one[0], "%s", p->prompt ? p->prompt : "{}");
    if (p->templates == EXP_TEMPLATES_DATASET && ds.n_templates > 0) {
        templates = ds.templates;
        K = (size_t)ds.n_templates;
    }
    if ((rc = runner_load_tokenizer(&tok, runner_model_dir(&p->model), &c->m.cfg)))
        goto out;
    c->ctx = c->m.cfg.text.context;
    c->n_prompts = (size_t)ds.n_classes * K;
    c->ids = xmalloc_array(c->n_prompts * c->ctx, sizeof(int32_t));
    for (size_t k = 0; k < (size_t)ds.n_classes; k++)
        for (size_t j = 0; j < K; j++) {
            char text[2048];
            int eot = 0;
            runner_fill_prompt(text, sizeof text, templates[j], ds.class_names[k]);
            if ((rc = tok_encode(tok, text, c->ids + (k * K + j) * c->ctx, &eot)))
                goto out;
            if ((size_t)eot + 1 > c->max_T)
                c->max_T = (size_t)eot + 1;
        }
out:
    tok_free(tok);
    if (L)
        loader_close(L);
    dataset_close(&ds);
    return rc;
}

/* Does a run's plan see the same model and eval data as the reference?
 * RL_ERR_ARG naming the difference. *same_prompts: the text tower sees the
 * same prompts. */
int cka_check(const struct cka_ctx *c, const char *path, const struct run_plan *p, bool *same_prompts)
{
    const struct run_plan *r = c->ref_plan;
    char id[4096];

    model_identity(&p->model, id, sizeof id);
    if (strcmp(id, c->model_id))
        return rl_error_set(RL_ERR_ARG,
                            "%s: model '%s' (%s), but the reference %s uses '%s' (%s): activation CKA needs "
                            "both runs on one model (--cka-batch 0 compares the updates only)",
                            path, p->model.name, id, c->ref_path, r->model.name, c->model_id);
    if (strcmp(p->eval, r->eval) || (p->image_size ? p->image_size : c->S) != (r->image_size ? r->image_size : c->S))
        return rl_error_set(RL_ERR_ARG,
                            "%s: eval data '%s', but the reference %s uses '%s': activation CKA needs the same "
                            "evaluation batch (--cka-batch 0 compares the updates only)",
                            path, p->eval, c->ref_path, r->eval);
    *same_prompts = p->templates == r->templates && !strcmp(p->prompt ? p->prompt : "", r->prompt ? r->prompt : "");
    return RL_OK;
}

/* The output of every encoder layer of both towers for the run `ra` on the
 * context's batch. Reads the towers' residual stream, which clip.h documents
 * as (L+1, B, T, C) in a run made for training (slot l+1 = the output of
 * layer l; the last one only with pool_last false), and checks that reading
 * against the pooled rows. */
int cka_acts_compute(struct cka_acts *out, struct cka_ctx *c, const struct run_adapters *ra,
                              bool text)
{
    const struct clip_model *m = &c->m;
    const size_t chunk = c->n_images < CKA_CHUNK ? c->n_images : CKA_CHUNK;
    struct clip_adapters ca;
    struct clip_vision_run vr;
    struct clip_text_run tr;
    float *emb = NULL;
    int rc;

    memset(out, 0, sizeof(*out));
    memset(&vr, 0, sizeof vr);
    memset(&tr, 0, sizeof tr);
    if ((rc = run_adapters_attach(ra, m, &ca, chunk, c->n_prompts))) {
        clip_adapters_free(&ca);
        return rc;
    }
    struct clip_adapters *cap = ca.n_sites ? &ca : NULL;

    /* vision */
    const size_t Lv = m->cfg.vision.layers, Cv = m->cfg.vision.hidden, D = m->cfg.projection_dim;
    const size_t img = 3 * c->S * c->S;
    clip_vision_run_init(&vr, m, chunk, true);
    vr.pool_last = false;                   /* every token of the last layer too */
    const size_t T = vr.T;
    out->Lv = Lv;
    out->Cv = Cv;
    out->nv = c->n_images * T;
    out->v = xcalloc(Lv, sizeof(*out->v));
    for (size_t l = 0; l < Lv; l++)
        out->v[l] = xmalloc_array(out->nv * Cv, sizeof(float));
    emb = xmalloc_array(chunk * (D > Cv ? D : Cv), sizeof(float));
    for (size_t s = 0; s < c->n_images; s += chunk) {
        size_t B = c->n_images - s < chunk ? c->n_images - s : chunk, BTC = B * T * Cv;
        if ((rc = clip_vision_forward(&vr, m, cap, c->pixels + s * img, B, emb)))
            goto done;
        for (size_t i = 0; i < B; i++)
            if (memcmp(vr.pooled + i * Cv, vr.res + Lv * BTC + i * T * Cv, Cv * sizeof(float))) {
                rc = rl_error_set(RL_ERR, "analyze: the vision run's residual stream is not laid out as "
                                  "models/clip.h documents ((L+1, B, T, C)); activation CKA cannot read it");
                goto done;
            }
        for (size_t l = 0; l < Lv; l++)
            memcpy(out->v[l] + s * T * Cv, vr.res + (l + 1) * BTC, BTC * sizeof(float));
    }

    /* text: the eval prompts, each up to and including its end-of-text */
    if (text) {
        const size_t Lt = m->cfg.text.layers, Ct = m->cfg.text.hidden, n = c->n_prompts;
        float *temb = xmalloc_array(n * (D > Ct ? D : Ct), sizeof(float));
        clip_text_run_init(&tr, m, n, c->max_T, true);
        tr.pool_last = false;
        rc = clip_text_forward(&tr, m, cap, c->ids, n, c->ctx, temb);
        free(temb);
        if (rc)
            goto done;
        const size_t Tc = tr.T, BTC = n * Tc * Ct;
        out->Lt = Lt;
        out->Ct = Ct;
        for (size_t i = 0; i < n; i++) {
            if (tr.eot[i] >= Tc ||
                memcmp(tr.pooled + i * Ct, tr.res + Lt * BTC + (i * Tc + tr.eot[i]) * Ct, Ct * sizeof(float))) {
                rc = rl_error_set(RL_ERR, "analyze: the text run's residual stream is not laid out as "
                                  "models/clip.h documents ((L+1, B, T, C)); activation CKA cannot read it");
                goto done;
            }
            out->nt += tr.eot[i] + 1;
        }
        out->t = xcalloc(Lt, sizeof(*out->t));
        for (size_t l = 0; l < Lt; l++) {
            float *dst = out->t[l] = xmalloc_array(out->nt * Ct, sizeof(float));
            for (size_t i = 0; i < n; i++) {
                size_t rows = tr.eot[i] + 1;
                memcpy(dst, tr.res + (l + 1) * BTC + i * Tc * Ct, rows * Ct * sizeof(float));
                dst += rows * Ct;
            }
        }
    }
done:
    free(emb);
    clip_vision_run_free(&vr);
    if (text)
        clip_text_run_free(&tr);
    clip_adapters_free(&ca);
    if (rc)
        cka_acts_free(out);
    return rc;
}

void cka_result_free(struct cka_result *res)
{
    free(res->v);
    free(res->t);
    memset(res, 0, sizeof(*res));
}

int cka_compare(struct cka_result *res, const struct cka_acts *a, const struct cka_acts *r,
                       size_t Lt, const char *path)
{
    int rc = RL_OK;

    res->Lv = r->Lv;
    res->Lt = Lt;
    res->v = xmalloc_array(res->Lv ? res->Lv : 1, sizeof(double));
    res->t = xmalloc_array(Lt ? Lt : 1, sizeof(double));
    for (size_t l = 0; l < Lt; l++)
        res->t[l] = NAN;
    for (size_t pass = 0; pass < 2; pass++) {
        size_t L = pass ? (a->Lt && r->Lt ? Lt : 0) : res->Lv;
        for (size_t l = 0; l < L; l++) {
            double *dst = pass ? &res->t[l] : &res->v[l];
            const float *x = pass ? a->t[l] : a->v[l], *y = pass ? r->t[l] : r->v[l];
            size_t n = pass ? a->nt : a->nv, p = pass ? a->Ct : a->Cv;
            *dst = NAN;
            if ((rc = analysis_linear_cka(dst, x, y, n, p, p))) {
                if (rc != RL_ERR_ARG)
                    return rc;
                fprintf(stderr, "randlora analyze: note: %s: %s layer %zu: no CKA: %s\n", path,
                        pass ? "text" : "vision", l, rl_error_msg());
                *dst = NAN;
                rc = RL_OK;
            }
        }
    }
    return rc;
}

/* /analysis/cka: the per-layer values and what they were computed on; an
 * earlier group without CKA now (res NULL) gets NaN everywhere */
int cka_write(struct store *s, const struct cka_ctx *c, const struct cka_result *res,
                     const struct cka_acts *a)
{
    char p[256];
    int rc = RL_OK;

    if (!res) {
        char **names = NULL;
        size_t n = 0;
        if (!store_has(s, "/analysis/cka"))
            return RL_OK;
        if ((rc = store_list(s, "/analysis/cka", &names, &n)))
            return rc;
        for (size_t i = 0; i < n && !rc; i++) {
            snprintf(p, sizeof p, "/analysis/cka/%s", names[i]);
            rc = store_write_scalar(s, p, NAN);
        }
        store_free_names(names, n);
        if (!rc)
            rc = store_attr_set_string(s, "/analysis/cka", "reference", "");
        if (!rc)
            rc = store_attr_set_int64(s, "/analysis/cka", "n_images", 0);
        return rc;
    }
    for (size_t l = 0; l < res->Lv && !rc; l++) {
        snprintf(p, sizeof p, "/analysis/cka/vision_layer_%zu", l);
        rc = store_write_scalar(s, p, res->v[l]);
    }
    for (size_t l = 0; l < res->Lt && !rc; l++) {
        snprintf(p, sizeof p, "/analysis/cka/text_layer_%zu", l);
        rc = store_write_scalar(s, p, res->t[l]);
    }
    if (rc)
        return rc;
    const char *g = "/analysis/cka";
    if ((rc = store_attr_set_string(s, g, "reference", c->ref_path)) ||
        (rc = store_attr_set_string(s, g, "eval", c->ref_plan->eval)) ||
        (rc = store_attr_set_int64(s, g, "n_images", (int64_t)c->n_images)) ||
        (rc = store_attr_set_int64(s, g, "vision_rows", (int64_t)a->nv)) ||
        (rc = store_attr_set_int64(s, g, "n_prompts", (int64_t)(res->t && a->nt ? c->n_prompts : 0))) ||
        (rc = store_attr_set_int64(s, g, "text_rows", (int64_t)a->nt)) ||
        (rc = store_attr_set_string(s, g, "activations",
                                    "output of each encoder layer (residual stream); vision: every token of "
                                    "the first n_images eval images; text: every token of each eval prompt up "
                                    "to and including its end-of-text")))
        return rc;
    return RL_OK;
}
