/*
 * check_clip_recompute.c: training runs that recompute each layer's forward
 * in the backward instead of keeping its activations
 * (clip_vision_run_init_recompute, clip_text_run_init_recompute) give the
 * storing runs' results bit for bit: losses, adapter gradients, every
 * weight's gradient and the input gradient, over several steps, with
 * branch dropout drawing its masks, on both paths, for every method.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "clip_harness.h"
#include "core/rng.h"
#include "core/status.h"
#include "methods/adapter.h"
#include "models/clip.h"
#include "suites.h"
#include "test_util.h"

struct recompute_case {
    const char *method;
    size_t r;
    float dropout;              /* > 0: the factored path, masks drawn      */
    enum clip_path_mode path;
    bool pool_last;
};

static const struct recompute_case cases[] = {
    { "lora", 2, 0.1f, CLIP_PATH_AUTO, true },
    { "lora", 2, 0.0f, CLIP_PATH_MERGED, true },
    { "vera", 4, 0.1f, CLIP_PATH_AUTO, true },
    { "randlora", 4, 0.0f, CLIP_PATH_MERGED, true },
    { "randlora", 4, 0.1f, CLIP_PATH_FACTORED, false },
    { "full", 0, 0.0f, CLIP_PATH_AUTO, true },
};

/* tiny_config with three layers per tower, so that two are recomputed */
static void deep_model(struct clip_model *m, uint64_t seed)
{
    struct clip_config c;
    struct rng r;

    tiny_config(&c);
    c.vision.layers = 3;
    c.text.layers = 3;
    ck_assert_int_eq(clip_model_init(m, &c), RL_OK);
    clip_model_init_random(m, seed);
    rng_init(&r, seed + 1);
    for (size_t i = 0; i < m->n_params; i++)
        m->params[i] += 0.1f * rng_normal(&r);
    m->w.logit_scale[0] = 1.0f;
}

/* one of the two identical set-ups */
struct side {
    struct clip_model m;
    struct clip_adapters ca;
    struct clip_grads g;
    struct pipe p;
    float *dpixels;
};

static void side_init(struct side *s, const struct recompute_case *c, bool recompute,
                      const float *pixels, const int32_t *ids)
{
    struct clip_target t[1];
    struct adapter_cfg acfg;
    size_t nt;

    deep_model(&s->m, 61);
    ck_assert_int_eq(clip_targets_parse("all", t, 1, &nt), RL_OK);
    adapter_cfg_defaults(&acfg, c->method, c->r);
    acfg.dropout = c->dropout;
    ck_assert_int_eq(clip_adapters_init(&s->ca, &s->m, &acfg, t, nt, 3, 3), RL_OK);
    s->ca.path_mode = c->path;
    clip_grads_init(&s->g, &s->m);
    pipe_init(&s->p, &s->m, &s->ca, 3, 7, pixels, ids);
    if (recompute) {
        clip_vision_run_free(&s->p.vr);
        clip_text_run_free(&s->p.tr);
        clip_vision_run_init_recompute(&s->p.vr, &s->m, 3);
        clip_text_run_init_recompute(&s->p.tr, &s->m, 3, 0);
    }
    s->p.vr.pool_last = s->p.tr.pool_last = c->pool_last;
    s->dpixels = test_zeros(3 * 3 * 8 * 8);
}

static void side_free(struct side *s)
{
    pipe_free(&s->p);
    clip_grads_free(&s->g);
    clip_adapters_free(&s->ca);
    clip_model_free(&s->m);
    free(s->dpixels);
}

/* one step: forward and backward, every weight's gradient when `all`,
 * else the adapters' alone (the backward stops at the lowest adapted layer) */
static float side_step(struct side *s, bool all)
{
    const struct clip_step_size sz = {
        .images = 3, .texts = 3, .text_tokens = 7, .vision_micro = 1, .text_micro = 1,
    };
    float loss;

    clip_adapters_zero_grad(&s->ca);
    clip_grads_zero(&s->g, &s->m);
    memset(s->dpixels, 0, 3 * 3 * 8 * 8 * sizeof(float));
    clip_adapters_begin_step(&s->ca, &s->m, &sz);
    loss = pipe_backward(&s->p, all ? &s->g : NULL, all ? s->dpixels : NULL);
    clip_adapters_end_step(&s->ca, &s->m);
    return loss;
}

START_TEST(test_recompute_same_bits)
{
    const struct recompute_case *c = &cases[_i];
    struct side keep, rec;
    struct rng rg;
    float *pixels;
    int32_t ids[3 * 7];

    rng_init(&rg, 67);
    pixels = test_randn(&rg, 3 * 3 * 8 * 8, 1.0f);
    tiny_ids(ids);
    side_init(&keep, c, false, pixels, ids);
    side_init(&rec, c, true, pixels, ids);
    ck_assert(rec.p.vr.recompute && rec.p.tr.recompute && !keep.p.vr.recompute);
    for (int step = 0; step < 4; step++) {
        const bool all = step % 2 == 1;
        float l1, l2;

        /* an optimizer step's change, the same on both sides */
        for (size_t i = 0; i < keep.ca.n_params; i++)
            keep.ca.params[i] += 0.05f * rng_normal(&rg);
        memcpy(rec.ca.params, keep.ca.params, keep.ca.n_params * sizeof(float));
        l1 = side_step(&keep, all);
        l2 = side_step(&rec, all);
        ck_assert_msg(memcmp(&l1, &l2, sizeof(float)) == 0, "%s step %d: loss %.9g vs %.9g",
                      c->method, step, l1, l2);
        ck_assert_msg(memcmp(keep.ca.grads, rec.ca.grads, keep.ca.n_params * sizeof(float)) == 0,
                      "%s step %d: adapter gradients differ", c->method, step);
        if (all) {
            ck_assert_msg(memcmp(keep.g.buf, rec.g.buf, keep.m.n_params * sizeof(float)) == 0,
                          "%s step %d: weight gradients differ", c->method, step);
            ck_assert_int_eq(memcmp(keep.dpixels, rec.dpixels, 3 * 3 * 8 * 8 * sizeof(float)),
                             0);
        }
        /* the weights come back the same too (merged sites) */
        ck_assert_int_eq(memcmp(keep.m.params, rec.m.params, keep.m.n_params * sizeof(float)),
                         0);
    }
    /* every adapter's stream ends where the storing run's does: later
     * steps draw the same masks */
    for (size_t k = 0; k < keep.ca.n_sites; k++)
        ck_assert_int_eq(memcmp(&keep.ca.adapters[k].rng, &rec.ca.adapters[k].rng,
                                sizeof(struct rng)), 0);
    side_free(&keep);
    side_free(&rec);
    free(pixels);
}
END_TEST

/* the recomputation is what makes it exact: a run whose restored streams
 * are disturbed draws other masks and its gradients differ (the test above
 * can fail) */
START_TEST(test_recompute_needs_streams)
{
    struct side keep, rec;
    struct rng rg;
    float *pixels;
    int32_t ids[3 * 7];

    rng_init(&rg, 71);
    pixels = test_randn(&rg, 3 * 3 * 8 * 8, 1.0f);
    tiny_ids(ids);
    side_init(&keep, &cases[0], false, pixels, ids);
    side_init(&rec, &cases[0], true, pixels, ids);
    for (size_t i = 0; i < keep.ca.n_params; i++)
        keep.ca.params[i] += 0.05f * rng_normal(&rg);
    memcpy(rec.ca.params, keep.ca.params, keep.ca.n_params * sizeof(float));
    side_step(&keep, false);
    /* forward as side_step does, then scramble the saved streams of the
     * vision tower's layer 0 before the backward */
    {
        const struct clip_step_size sz = {
            .images = 3, .texts = 3, .text_tokens = 7, .vision_micro = 1, .text_micro = 1,
        };
        const size_t D = rec.m.cfg.projection_dim;

        clip_adapters_zero_grad(&rec.ca);
        clip_adapters_begin_step(&rec.ca, &rec.m, &sz);
        pipe_forward(&rec.p);
        for (int i = 0; i < BLOCK_NUM_LINEARS; i++)
            rng_init(&rec.p.vr.rngs[i], 999 + (uint64_t)i);
        memset(rec.p.dimg, 0, 3 * D * sizeof(float));
        memset(rec.p.dtxt, 0, 3 * D * sizeof(float));
        clip_head_backward(&rec.p.h, rec.p.dimg, rec.p.dtxt, NULL, 1.0f);
        clip_vision_backward(&rec.p.vr, &rec.m, &rec.ca, NULL, rec.p.dimg, NULL);
        clip_text_backward(&rec.p.tr, &rec.m, &rec.ca, NULL, rec.p.dtxt);
        clip_adapters_end_step(&rec.ca, &rec.m);
    }
    ck_assert(memcmp(keep.ca.grads, rec.ca.grads, keep.ca.n_params * sizeof(float)) != 0);
    side_free(&keep);
    side_free(&rec);
    free(pixels);
}
END_TEST

Suite *suite_clip_recompute(void)
{
    Suite *s = suite_create("clip_recompute");
    TCase *tc = tcase_create("core");

    tcase_add_loop_test(tc, test_recompute_same_bits, 0, (int)(sizeof(cases) / sizeof(cases[0])));
    tcase_add_test(tc, test_recompute_needs_streams);
    suite_add_tcase(s, tc);
    return s;
}
