/*
 * train_head.c: the runner's second classifier (model.head = linear): an
 * image backbone -- a DINOv2 model (models/dinov2.h) or CLIP's vision tower
 * alone (its image_embeds) -- with adapters on its linears (or none: method
 * none is linear probing), and a trained linear head on its features,
 * cross-entropy on the head's logits.
 *
 * The head is trained with the adapters by one AdamW over both (the
 * authors' two parameter groups: src/finetune.py of PaulAlbert31/RandLoRA
 * at 0796c62 steps the classifier at lr 1e-3 and the encoder at args.lr,
 * the same weight decay and schedule): the head's lr is train.lr_head times
 * the schedule's factor lr(step) / train.lr. Gradient clipping takes the
 * norm over both. The checkpoint block is [adapter parameters, head
 * parameters] (run_ckpt_params), and so are AdamW's m and v.
 *
 * One process only (data-parallel runs keep the prompt classifier).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/alloc.h"
#include "core/dist.h"
#include "core/read_file.h"
#include "core/status.h"
#include "experiments/runner_impl.h"
#include "models/dinov2.h"
#include "models/head.h"

#define PREPROC_MAX_BYTES ((size_t)1 << 20)

/* ImageNet's statistics (DINOv2's BitImageProcessor) */
static const float IMAGENET_MEAN[3] = { 0.485f, 0.456f, 0.406f };
static const float IMAGENET_STD[3] = { 0.229f, 0.224f, 0.225f };

struct run_head {
    bool dinov2;                 /* else CLIP's vision tower                    */
    enum dinov2_pool pool;
    size_t FD;                   /* feature width                               */
    struct linear_head head;
    struct dinov2_run dr;
    float *feats, *dfeats;       /* (B, FD)                                     */
    float *ckpt;                 /* (n_total) the gathered checkpoint params    */
    size_t n_total;              /* adapters' + head's                          */
};

static size_t adapter_params(const struct run_state *s)
{
    return s->trains ? s->ca.n_params : 0;
}

/* ------------------------------------------------------------------------ */
/* preprocessing: DIR/preprocessor_config.json (BitImageProcessor)           */

static int pp_size(const char *path, const cJSON *o, const char *key, const char *sub,
                   size_t *out)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);

    if (!it || cJSON_IsNull(it))
        return RL_OK;
    if (cJSON_IsObject(it)) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(it, sub);

        if (!v && !strcmp(sub, "shortest_edge"))
            v = cJSON_GetObjectItemCaseSensitive(it, "height");
        it = v;
    }
    if (!cJSON_IsNumber(it) || !(it->valuedouble >= 1 && it->valuedouble <= 4096) ||
        it->valuedouble != floor(it->valuedouble))
        return rl_error_set(RL_ERR_FORMAT, "%s: %s: expected an integer in 1..4096 or "
                            "{\"%s\": N}", path, key, sub);
    *out = (size_t)it->valuedouble;
    return RL_OK;
}

static int pp_triple(const char *path, const cJSON *o, const char *key, bool positive,
                     float out[3])
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);

    if (!it || cJSON_IsNull(it))
        return RL_OK;
    if (!cJSON_IsArray(it) || cJSON_GetArraySize(it) != 3)
        return rl_error_set(RL_ERR_FORMAT, "%s: %s: expected 3 numbers", path, key);
    for (int c = 0; c < 3; c++) {
        const cJSON *v = cJSON_GetArrayItem(it, c);

        if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || fabs(v->valuedouble) > 1e6 ||
            (positive && !(v->valuedouble > 0)))
            return rl_error_set(RL_ERR_FORMAT, "%s: %s[%d]: expected a finite%s number", path,
                                key, c, positive ? " positive" : "");
        out[c] = (float)v->valuedouble;
    }
    return RL_OK;
}

static int pp_true(const char *path, const cJSON *o, const char *key)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);

    if (it && !cJSON_IsBool(it))
        return rl_error_set(RL_ERR_FORMAT, "%s: %s: expected true or false", path, key);
    if (it && !cJSON_IsTrue(it))
        return rl_error_set(RL_ERR_FORMAT, "%s: %s = false is not supported (images are "
                            "always resized, center-cropped and normalised)", path, key);
    return RL_OK;
}

/* DINOv2's evaluation transform: shortest side to `resize` (bicubic), center
 * crop `crop`, ImageNet mean/std; from the model directory's
 * preprocessor_config.json when there is one (size.shortest_edge 256,
 * crop_size 224 for facebook/dinov2-*), else resize = crop = the model's
 * image_size. data.image_size, when set, is the crop (and without a file
 * the resize). */
int head_preprocessing(const char *dir, size_t image_size, size_t data_size, struct transform *t,
                       bool *from_file)
{
    char path[4096];
    size_t resize = data_size ? data_size : image_size, crop = resize;
    char *text = NULL;
    size_t len;
    cJSON *o = NULL;
    int rc = RL_OK;

    memcpy(t->mean, IMAGENET_MEAN, sizeof(t->mean));
    memcpy(t->std, IMAGENET_STD, sizeof(t->std));
    t->crop_round = CROP_ROUND_HF;
    *from_file = false;
    snprintf(path, sizeof(path), "%s/preprocessor_config.json", dir);
    if (access(path, F_OK) == 0) {
        *from_file = true;
        if ((rc = rl_read_file(path, PREPROC_MAX_BYTES, &text, &len)))
            return rc;
        o = cJSON_ParseWithLength(text, len);
        if (!o || !cJSON_IsObject(o)) {
            rc = rl_error_set(RL_ERR_FORMAT, "%s: %s", path, o ? "not a JSON object"
                                                               : "malformed JSON");
            goto out;
        }
        const cJSON *rs = cJSON_GetObjectItemCaseSensitive(o, "resample");
        const cJSON *rf = cJSON_GetObjectItemCaseSensitive(o, "rescale_factor");
        if ((rc = pp_triple(path, o, "image_mean", false, t->mean)) ||
            (rc = pp_triple(path, o, "image_std", true, t->std)) ||
            (rc = pp_true(path, o, "do_resize")) || (rc = pp_true(path, o, "do_center_crop")) ||
            (rc = pp_true(path, o, "do_normalize")) ||
            (rc = pp_size(path, o, "size", "shortest_edge", &resize)) ||
            (rc = pp_size(path, o, "crop_size", "height", &crop)))
            goto out;
        if (rs && !(cJSON_IsNumber(rs) && rs->valuedouble == 3)) {
            rc = rl_error_set(RL_ERR_FORMAT, "%s: resample must be 3 (bicubic, the only resize "
                              "implemented)", path);
            goto out;
        }
        if (rf && !(cJSON_IsNumber(rf) && fabs(rf->valuedouble * 255.0 - 1.0) < 1e-6)) {
            rc = rl_error_set(RL_ERR_FORMAT, "%s: rescale_factor must be 1/255", path);
            goto out;
        }
        if (data_size && data_size != crop) {
            rc = rl_error_set(RL_ERR_ARG, "data.image_size = %zu, but %s crops to %zu (set 0 "
                              "or %zu)", data_size, path, crop, crop);
            goto out;
        }
        if (resize < crop) {
            rc = rl_error_set(RL_ERR_FORMAT, "%s: size %zu is below crop_size %zu", path, resize,
                              crop);
            goto out;
        }
    }
    t->size = (int)crop;
    t->resize = (int)resize;
out:
    cJSON_Delete(o);
    free(text);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* set-up                                                                    */

int run_head_prepare(struct run_state *s, size_t *size, struct transform *tf, bool *custom)
{
    const struct run_plan *p = s->plan;
    struct run_head *h = xcalloc(1, sizeof(*h));
    bool from_file;
    int rc;

    s->rh = h;
    *custom = false;
    h->dinov2 = s->m.cfg.arch == CLIP_ARCH_DINOV2;
    h->pool = (enum dinov2_pool)p->model.features;
    if (dist_size() > 1)
        return rl_error_set(RL_ERR_ARG, "%s: model.head = linear runs in one process (not "
                            "under MPI)", p->id);
    if (p->train.loss != EXP_LOSS_PROMPTS || p->train.logit_scale_raw)
        return rl_error_set(RL_ERR_ARG, "%s: train.loss = inbatch and train.logit_scale = raw "
                            "are the prompt classifier's; model.head = linear trains the head "
                            "with cross-entropy on its own logits", p->id);
    if (!h->dinov2) {
        /* CLIP's image tower: its own size and transform (the prompt path's) */
        if (h->pool != DINOV2_POOL_CLS)
            return rl_error_set(RL_ERR_ARG, "%s: model.features = cls_mean needs a DINOv2 model; "
                                "CLIP's image tower gives its image embedding (features = cls)",
                                p->id);
        *size = s->m.cfg.vision.image_size;
        if (p->image_size && p->image_size != *size)
            return rl_error_set(RL_ERR_ARG, "%s: data.image_size = %zu, but model %s takes "
                                "%zux%zu images (set 0: the model's)", p->id, p->image_size,
                                p->model.name, *size, *size);
        h->FD = s->m.cfg.projection_dim;
        return RL_OK;
    }
    if (p->train.recompute)
        return rl_error_set(RL_ERR_ARG, "%s: train.recompute is not implemented for DINOv2 "
                            "models (every layer's activations are kept)", p->id);
    transform_init_clip(tf, (int)s->m.cfg.vision.image_size);
    if ((rc = head_preprocessing(runner_model_dir(&p->model), s->m.cfg.vision.image_size,
                                 p->image_size, tf, &from_file)) != RL_OK)
        return rc;
    if ((rc = dinov2_set_input_size(&s->m, (size_t)tf->size)) != RL_OK)
        return rl_error_prefix(rc, "%s: data.image_size", p->id);
    *size = (size_t)tf->size;
    *custom = true;
    h->FD = dinov2_feature_dim(&s->m, h->pool);
    return RL_OK;
}

int run_head_init(struct run_state *s)
{
    struct run_head *h = s->rh;
    const struct run_plan *p = s->plan;
    const size_t na = adapter_params(s);
    struct adamw_cfg ac = { .lr = p->train.lr, .beta1 = p->train.beta1,
                            .beta2 = p->train.beta2, .eps = p->train.eps,
                            .weight_decay = p->train.weight_decay };
    int rc;

    /* the head's init from the run's adapter seed, its own stream */
    linear_head_init(&h->head, h->FD, s->M, s->B, p->adapter.seed ^ 0x4EADull);
    h->n_total = na + h->head.n_params;
    h->ckpt = xcalloc(h->n_total, sizeof(float));
    h->feats = xcalloc(s->B * h->FD, sizeof(float));
    h->dfeats = xcalloc(s->B * h->FD, sizeof(float));
    if ((rc = adamw_init(&s->opt, &ac, h->n_total)) != RL_OK)
        return rc;
    if (h->dinov2)
        dinov2_run_init(&h->dr, &s->m, s->B, s->vision_adapted);
    else if (p->train.recompute && s->vision_adapted)
        clip_vision_run_init_recompute(&s->vr, &s->m, s->B);
    else
        clip_vision_run_init(&s->vr, &s->m, s->B, s->vision_adapted);
    return RL_OK;
}

void run_head_free(struct run_state *s)
{
    struct run_head *h = s->rh;

    if (!h)
        return;
    linear_head_free(&h->head);
    if (h->dr.buf)
        dinov2_run_free(&h->dr);
    free(h->feats);
    free(h->dfeats);
    free(h->ckpt);
    free(h);
    s->rh = NULL;
}

size_t run_head_activation_floats(const struct run_state *s)
{
    return s->rh->dinov2 ? s->rh->dr.n_floats : s->vr.n_floats;
}

/* ------------------------------------------------------------------------ */
/* the trainable block: adapters, then the head                              */

size_t run_n_trainable(const struct run_state *s)
{
    if (s->lm)
        return run_lm_n_trainable(s);
    return s->rh ? s->rh->n_total : adapter_params(s);
}

float *run_ckpt_params(struct run_state *s)
{
    struct run_head *h = s->rh;

    if (s->lm)
        return run_lm_params(s);
    if (!h)
        return s->trains ? s->ca.params : NULL;
    if (adapter_params(s))
        memcpy(h->ckpt, s->ca.params, adapter_params(s) * sizeof(float));
    memcpy(h->ckpt + adapter_params(s), h->head.params, h->head.n_params * sizeof(float));
    return h->ckpt;
}

void run_ckpt_scatter(struct run_state *s)
{
    struct run_head *h = s->rh;

    if (!h)
        return;
    if (adapter_params(s))
        memcpy(s->ca.params, h->ckpt, adapter_params(s) * sizeof(float));
    memcpy(h->head.params, h->ckpt + adapter_params(s), h->head.n_params * sizeof(float));
}

const struct linear_head *run_head_of(const struct run_state *s)
{
    return s->rh ? &s->rh->head : NULL;
}

struct linear_head *run_head_params(struct run_state *s)
{
    return s->rh ? &s->rh->head : NULL;
}

/* ------------------------------------------------------------------------ */
/* the step                                                                  */

static int backbone_forward(struct run_state *s, const float *x, size_t n, bool adapted)
{
    struct run_head *h = s->rh;
    struct clip_adapters *ca = adapted ? &s->ca : NULL;

    if (h->dinov2)
        return dinov2_forward(&h->dr, &s->m, ca, x, n, h->pool, h->feats);
    return clip_vision_forward(&s->vr, &s->m, ca, x, n, h->feats);
}

static void begin_paths(struct run_state *s, size_t micro)
{
    const struct clip_step_size sz = { .images = s->B, .vision_micro = micro };

    clip_adapters_begin_step(&s->ca, &s->m, &sz);
}

/* sqrt(|a|^2 + |b|^2), and both clipped to max (clip_grad_norm's rule) */
static double clip_two(float *a, size_t na, float *b, size_t nb, double max)
{
    const double x = na ? grad_norm(a, na) : 0.0, y = grad_norm(b, nb);
    const double norm = sqrt(x * x + y * y);

    if (max > 0 && isfinite(norm) && max / (norm + 1e-6) < 1.0) {
        const float fs = (float)(max / (norm + 1e-6));

        for (size_t i = 0; i < na; i++)
            a[i] *= fs;
        for (size_t i = 0; i < nb; i++)
            b[i] *= fs;
    }
    return norm;
}

int run_head_step(struct run_state *s, size_t step, double *loss, double *gnorm, double *lr,
                  char *why, size_t why_size)
{
    struct run_head *h = s->rh;
    struct linear_head *hd = &h->head;
    const size_t na = adapter_params(s), FD = h->FD;
    double loss_sum = 0.0;
    size_t rows = 0;
    int rc = RL_OK;

    memset(hd->grads, 0, hd->n_params * sizeof(float));
    if (s->trains) {
        clip_adapters_zero_grad(&s->ca);
        begin_paths(s, s->accumulate);
    }
    for (size_t micro = 0; micro < s->accumulate && rc == RL_OK; micro++) {
        struct loader_batch b;
        double l;

        if ((rc = loader_next(s->train_L, &b)) != RL_OK)
            break;
        RL_ASSERT(b.n > 0 && (size_t)b.n <= s->B);
        rows += (size_t)b.n;
        s->images_seen += (size_t)b.n;
        run_seed_dropout(s, (uint64_t)(step - 1) * s->accumulate + micro);
        if ((rc = backbone_forward(s, b.x, (size_t)b.n, s->vision_adapted)) != RL_OK)
            break;
        l = linear_head_loss(hd, h->feats, b.labels, (size_t)b.n);
        if (s->hooks && s->hooks->on_loss)
            s->hooks->on_loss(s->hooks->ctx, step, micro, &l);
        if (!isfinite(l)) {
            snprintf(why, why_size, "non-finite loss (%g) at step %zu, micro-batch %zu", l, step,
                     micro);
            *loss = l;
            rc = rl_error_set(RL_ERR, "%s", why);
            break;
        }
        loss_sum += l * (double)b.n;
        memset(h->dfeats, 0, (size_t)b.n * FD * sizeof(float));
        linear_head_backward(hd, s->vision_adapted ? h->dfeats : NULL,
                             s->accumulate == 1 ? 1.0f : (float)b.n);
        if (!s->vision_adapted)
            continue;
        if (h->dinov2)
            dinov2_backward(&h->dr, &s->m, &s->ca, h->dfeats, NULL);
        else
            clip_vision_backward(&s->vr, &s->m, &s->ca, NULL, h->dfeats, NULL);
    }
    if (s->trains)
        clip_adapters_end_backward(&s->ca, &s->m);
    if (rc != RL_OK) {
        *gnorm = *lr = NAN;
        if (s->trains)
            clip_adapters_end_step(&s->ca, &s->m);
        return rc;
    }
    if (s->accumulate > 1) {
        const float inv = 1.0f / (float)rows;

        for (size_t i = 0; i < na; i++)
            s->ca.grads[i] *= inv;
        for (size_t i = 0; i < hd->n_params; i++)
            hd->grads[i] *= inv;
    }
    *loss = loss_sum / (double)rows;
    if (s->hooks && s->hooks->on_grads && na)
        s->hooks->on_grads(s->hooks->ctx, step, s->ca.grads, na);
    *gnorm = clip_two(na ? s->ca.grads : NULL, na, hd->grads, hd->n_params, s->plan->train.clip);
    *lr = lr_cosine_at(&s->sched, step - 1);
    if (!isfinite(*gnorm)) {
        snprintf(why, why_size, "non-finite gradient norm (%g) at step %zu", *gnorm, step);
        return rl_error_set(RL_ERR, "%s", why);
    }
    /* two parameter groups over one m, v and step count */
    struct adamw group = s->opt;
    const uint64_t t = s->opt.t;

    if (na) {
        group.n = na;
        group.cfg.lr = *lr;
        adamw_step(&group, s->ca.params, s->ca.grads);
    }
    group = s->opt;
    group.t = t;
    group.n = hd->n_params;
    group.m = s->opt.m + na;
    group.v = s->opt.v + na;
    group.cfg.lr = s->plan->train.lr_head * (*lr / s->plan->train.lr);
    adamw_step(&group, hd->params, hd->grads);
    s->opt.t = group.t;
    return RL_OK;
}

/* ------------------------------------------------------------------------ */
/* evaluation                                                                */

int run_head_eval(struct run_state *s, struct loader *L, const char *what, double *accuracy,
                  double *loss)
{
    struct run_head *h = s->rh;
    size_t correct = 0, rows = 0;
    double loss_sum = 0.0;
    int rc;

    if (s->trains) {
        clip_adapters_set_training(&s->ca, false);
        begin_paths(s, 0);
    }
    rc = loader_epoch(L, 0);
    while (rc == RL_OK) {
        struct loader_batch b;

        if ((rc = loader_next(L, &b)) != RL_OK || b.n == 0)
            break;
        if ((rc = backbone_forward(s, b.x, (size_t)b.n, s->trains)) != RL_OK)
            break;
        loss_sum += (double)linear_head_loss(&h->head, h->feats, b.labels, (size_t)b.n) *
                    (double)b.n;
        correct += linear_head_correct(&h->head, b.labels, (size_t)b.n);
        rows += (size_t)b.n;
    }
    if (s->trains) {
        clip_adapters_end_step(&s->ca, &s->m);
        clip_adapters_set_training(&s->ca, true);
    }
    if (rc != RL_OK)
        return rc;
    if (rows == 0)
        return rl_error_set(RL_ERR_ARG, "%s: the evaluation set is empty", what);
    *accuracy = (double)correct / (double)rows;
    *loss = loss_sum / (double)rows;
    return RL_OK;
}
