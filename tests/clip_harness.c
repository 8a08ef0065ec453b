/*
 * clip_harness.c: what the CLIP suites share (clip_harness.h).
 */
#include "clip_harness.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "core/status.h"
#include "methods/adapter.h"
#include "formats/safetensors.h"
#include "test_util.h"

void pipe_init(struct pipe *p, struct clip_model *m, struct clip_adapters *ca, size_t B,
               size_t T, const float *pixels, const int32_t *ids)
{
    const size_t D = m->cfg.projection_dim;

    memset(p, 0, sizeof(*p));
    p->m = m;
    p->ca = ca;
    p->B = B;
    p->T = T;
    p->pixels = pixels;
    p->ids = ids;
    clip_vision_run_init(&p->vr, m, B, true);
    clip_text_run_init(&p->tr, m, B, 0, true);
    clip_head_init(&p->h, B, B, D);
    p->img = test_zeros(B * D);
    p->txt = test_zeros(B * D);
    p->dimg = test_zeros(B * D);
    p->dtxt = test_zeros(B * D);
}

void pipe_free(struct pipe *p)
{
    clip_vision_run_free(&p->vr);
    clip_text_run_free(&p->tr);
    clip_head_free(&p->h);
    free(p->img);
    free(p->txt);
    free(p->dimg);
    free(p->dtxt);
}

float pipe_forward(struct pipe *p)
{
    int rc = clip_vision_forward(&p->vr, p->m, p->ca, p->pixels, p->B, p->img);

    ck_assert_msg(rc == RL_OK, "%s", rl_error_msg());
    rc = clip_text_forward(&p->tr, p->m, p->ca, p->ids, p->B, p->T, p->txt);
    ck_assert_msg(rc == RL_OK, "%s", rl_error_msg());
    clip_head_logits(&p->h, p->img, p->txt, p->B, p->B, clip_logit_scale(p->m));
    return clip_head_contrastive(&p->h);
}

/* forward, then backward of the contrastive loss into ca, g, dpixels */
float pipe_backward(struct pipe *p, struct clip_grads *g, float *dpixels)
{
    float loss = pipe_forward(p);
    const size_t n = p->B * p->m->cfg.projection_dim;

    memset(p->dimg, 0, n * sizeof(float));
    memset(p->dtxt, 0, n * sizeof(float));
    clip_head_backward(&p->h, p->dimg, p->dtxt, g ? g->w.logit_scale : NULL, 1.0f);
    clip_vision_backward(&p->vr, p->m, p->ca, g, p->dimg, dpixels);
    clip_text_backward(&p->tr, p->m, p->ca, g, p->dtxt);
    return loss;
}

double pipe_loss(void *ctx)
{
    return (double)pipe_forward(ctx);
}

/* clip-tiny with random weights, `method` (rank r) on all six linears of
 * both towers, its parameters moved by N(0, noise) (LoRA's B non-zero, so
 * every adapter gradient is), 4 images, 4 prompts of 9 tokens (bos, bytes,
 * eos at 5..8), factored path everywhere */
void step_case_init_method(struct step_case *s, const char *method, size_t r_, float noise)
{
    struct clip_target t[1];
    struct adapter_cfg acfg;
    struct rng r;
    size_t nt;

    memset(s, 0, sizeof(*s));
    ck_assert_int_eq(clip_model_preset(&s->m, "clip-tiny", 7), RL_OK);
    ck_assert_int_eq(clip_targets_parse("all", t, 1, &nt), RL_OK);
    adapter_cfg_defaults(&acfg, method, r_);
    ck_assert_int_eq(clip_adapters_init(&s->ca, &s->m, &acfg, t, nt, STEP_B, STEP_B), RL_OK);
    s->ca.path_mode = CLIP_PATH_FACTORED;
    rng_init(&r, 15);
    for (size_t i = 0; i < s->ca.n_params; i++)
        s->ca.params[i] += noise * rng_normal(&r);
    s->pixels = test_randn(&r, STEP_B * 3 * 32 * 32, 1.0f);
    for (size_t b = 0; b < STEP_B; b++) {
        size_t eos = 5 + b;

        for (size_t k = 0; k < STEP_T; k++)
            s->ids[b * STEP_T + k] = k == 0 ? 256 : k < eos ? (int32_t)rng_below(&r, 256) : 257;
    }
    pipe_init(&s->p, &s->m, &s->ca, STEP_B, STEP_T, s->pixels, s->ids);
}

void step_case_free(struct step_case *s)
{
    pipe_free(&s->p);
    free(s->pixels);
    clip_adapters_free(&s->ca);
    clip_model_free(&s->m);
}

/* a small random model: image 8, patch 4 (5 tokens), widths 16/12 */
void tiny_config(struct clip_config *c)
{
    clip_config_defaults(c);
    c->vision = (struct clip_vision_config){ .image_size = 8, .patch_size = 4,
                                             .num_channels = 3, .hidden = 16, .layers = 2,
                                             .heads = 2, .intermediate = 32,
                                             .act = BLOCK_ACT_QUICK_GELU,
                                             .layer_norm_eps = 1e-5f };
    c->text = (struct clip_text_config){ .vocab_size = 20, .context = 7, .hidden = 12,
                                         .layers = 2, .heads = 2, .intermediate = 24,
                                         .act = BLOCK_ACT_GELU, .layer_norm_eps = 1e-5f,
                                         .bos_token_id = 18, .eos_token_id = 19,
                                         .pad_token_id = 0 };
    c->projection_dim = 8;
}

void tiny_model(struct clip_model *m, uint64_t seed)
{
    struct clip_config c;
    struct rng r;
    int rc;

    tiny_config(&c);
    rc = clip_model_init(m, &c);
    ck_assert_msg(rc == RL_OK, "%s", rl_error_msg());
    clip_model_init_random(m, seed);
    /* larger than HF's init so that every path carries signal; drawn in
     * the order of the HF tensors (q, its bias, k, ...), whatever order
     * the block keeps them in, so the tests see the same model as ever */
    rng_init(&r, seed + 1);
    for (size_t i = 0; i < m->n_tensors;) {
        static const size_t hf_order[BLOCK_NUM_PARAMS] = { 0, 1, 2, 5, 3, 6, 4, 7, 8, 9, 10,
                                                           11, 12, 13, 14, 15 };
        const bool layer = strstr(m->tensors[i].name, ".layer_norm1.weight") != NULL;
        const size_t n = layer ? BLOCK_NUM_PARAMS : 1;

        for (size_t k = 0; k < n; k++) {
            const struct clip_tensor *t = &m->tensors[i + (layer ? hf_order[k] : 0)];

            for (size_t e = 0; e < t->numel; e++)
                m->params[t->offset + e] += 0.1f * rng_normal(&r);
        }
        i += n;
    }
    m->w.logit_scale[0] = 1.0f;
}

/* 3 rows of ids (3,7) with EOT at 2, 6, 4 */
void tiny_ids(int32_t ids[3 * 7])
{
    static const int32_t v[3 * 7] = {
        18, 5, 19, 0, 0, 0, 0,
        18, 1, 2, 3, 4, 5, 19,
        18, 7, 7, 9, 19, 19, 19,
    };

    memcpy(ids, v, sizeof(v));
}

/* write dir/model.safetensors from m's tensors, skipping `skip` and giving
 * `reshape` a wrong shape */
void write_weights(const struct clip_model *m, const char *dir, const char *skip,
                   const char *reshape)
{
    struct st_writer *w = st_writer_new();
    char path[1200];

    for (size_t i = 0; i < m->n_tensors; i++) {
        const struct clip_tensor *t = &m->tensors[i];
        int64_t shape[4];
        int ndim = t->ndim;

        if (skip && strcmp(t->name, skip) == 0)
            continue;
        memcpy(shape, t->shape, sizeof(shape));
        if (reshape && strcmp(t->name, reshape) == 0) {
            /* same element count, transposed */
            int64_t s0 = shape[0];
            shape[0] = shape[1];
            shape[1] = s0;
        }
        ck_assert_int_eq(st_writer_add(w, t->name, m->params + t->offset, ndim, shape, ST_F32),
                         RL_OK);
    }
    snprintf(path, sizeof(path), "%s/model.safetensors", dir);
    ck_assert_int_eq(st_writer_write(w, path), RL_OK);
    st_writer_free(w);
}

const char *clip_fixture_dir(void)
{
    static char buf[1024];

    snprintf(buf, sizeof(buf), "%s", fixture_path("clip_tiny"));
    return buf;
}

void clip_load_dir(struct clip_model *m, const char *dir)
{
    int rc = clip_model_load(m, dir);

    ck_assert_msg(rc == RL_OK, "%s: %s", dir, rl_error_msg());
}

void clip_load_fixture(struct clip_model *m)
{
    clip_load_dir(m, clip_fixture_dir());
}

void clip_open_golden(struct golden *g)
{
    char path[1100];
    int rc;

    snprintf(path, sizeof(path), "%s/golden.bin", clip_fixture_dir());
    rc = golden_open(g, path, CLIP_GOLDEN_HINT);
    ck_assert_msg(rc == RL_OK, "%s", rl_error_msg());
}

const float *clip_golden_get(const struct golden *g, const char *name, size_t n)
{
    const struct golden_tensor *t = golden_find(g, name);

    ck_assert_msg(t != NULL, "golden tensor '%s' missing (%s)", name, CLIP_GOLDEN_HINT);
    ck_assert_msg(t->n == n, "golden tensor '%s' has %zu elements, expected %zu", name, t->n, n);
    return t->data;
}
