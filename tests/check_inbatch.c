/*
 * check_inbatch.c: train.loss = inbatch, the RandLoRA authors' in-batch
 * contrastive loss (experiments/train_inbatch.c), and train.logit_scale.
 *
 *   targets    the first index of each row's class, by hand
 *   by_hand    the loss of a batch with repeated classes recomputed here in
 *              double from the towers' features (one prompt per image, the
 *              target the first prompt of its class), text adapted or frozen
 *   gradcheck  central differences on the adapters of both towers (and of
 *              the vision tower alone, text frozen) through the code the
 *              training step runs
 *   run        a tiny run with the in-batch loss and the raw scale trains,
 *              stores both keys and evaluates as before
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clip_harness.h"
#include "core/rng.h"
#include "core/status.h"
#include "experiments/runner_impl.h"
#include "results/store.h"
#include "runner_harness.h"
#include "suites.h"
#include "test_util.h"

START_TEST(test_targets)
{
    const int32_t labels[7] = { 3, 1, 3, 2, 1, 1, 0 };
    const int32_t want[7] = { 0, 1, 0, 3, 1, 1, 6 };
    int32_t got[7];

    inbatch_targets(labels, 7, got);
    for (size_t i = 0; i < 7; i++)
        ck_assert_int_eq(got[i], want[i]);
}
END_TEST

#define NB 5        /* images of the batch */
#define NC 3        /* classes (tiny_ids' three prompts) */

/* a run state on the tiny model as runner.c sets one up for the in-batch
 * loss: B = 5 images, M = 3 class prompts, LoRA r 2 on `targets` */
struct ib {
    struct run_state s;
    struct run_plan plan;
    float *pixels;
    int32_t labels[NB];
};

static void ib_init(struct ib *t, const char *targets, float scale)
{
    struct run_state *s = &t->s;
    struct clip_target tg[4];
    struct adapter_cfg acfg;
    struct rng rg;
    size_t nt;
    static const int32_t labels[NB] = { 2, 0, 2, 1, 0 };

    memset(t, 0, sizeof(*t));
    t->plan.train.loss = EXP_LOSS_INBATCH;
    s->plan = &t->plan;
    s->trains = true;
    tiny_model(&s->m, 11);
    ck_assert_int_eq(clip_targets_parse(targets, tg, 4, &nt), RL_OK);
    adapter_cfg_defaults(&acfg, "lora", 2);
    ck_assert_int_eq(clip_adapters_init(&s->ca, &s->m, &acfg, tg, nt, NB, NB), RL_OK);
    for (size_t k = 0; k < s->ca.n_sites; k++) {
        if (s->ca.sites[k].tower == CLIP_TOWER_VISION)
            s->vision_adapted = true;
        else
            s->text_adapted = true;
    }
    /* away from the zero init, so every parameter has a gradient */
    rng_init(&rg, 5);
    for (size_t i = 0; i < s->ca.n_params; i++)
        s->ca.params[i] += 0.3f * rng_normal(&rg);
    s->B = NB;
    s->M = NC;
    s->D = s->m.cfg.projection_dim;
    s->ctx = 7;
    s->scale = scale;
    s->train_ids = malloc(NC * 7 * sizeof(int32_t));
    tiny_ids(s->train_ids);
    clip_vision_run_init(&s->vr, &s->m, NB, true);
    clip_text_run_init(&s->tr, &s->m, NB, 7, true);
    clip_head_init(&s->head, NB, NB, s->D);
    s->txt = test_zeros(NC * s->D);
    s->img = test_zeros(NB * s->D);
    s->dimg = test_zeros(NB * s->D);
    s->ib_ids = calloc(NB * 7, sizeof(int32_t));
    s->ib_txt = test_zeros(NB * s->D);
    s->ib_dtxt = test_zeros(NB * s->D);
    s->ib_targets = calloc(NB, sizeof(int32_t));
    t->pixels = test_randn(&rg, NB * 3 * 8 * 8, 1.0f);
    memcpy(t->labels, labels, sizeof(labels));
}

static void ib_free(struct ib *t)
{
    struct run_state *s = &t->s;

    free(s->train_ids);
    free(s->txt);
    free(s->img);
    free(s->dimg);
    free(s->ib_ids);
    free(s->ib_txt);
    free(s->ib_dtxt);
    free(s->ib_targets);
    free(t->pixels);
    clip_head_free(&s->head);
    clip_text_run_free(&s->tr);
    clip_vision_run_free(&s->vr);
    clip_adapters_free(&s->ca);
    clip_model_free(&s->m);
}

static double ib_loss(void *ctx)
{
    struct ib *t = ctx;
    double l = NAN;

    ck_assert_int_eq(inbatch_forward(&t->s, t->pixels, t->labels, NB, &l), RL_OK);
    return l;
}

/* the in-batch loss from the towers' own outputs, in double: image i
 * against the prompt of every image j's class, the target the first j of
 * i's class */
static double loss_by_hand(struct ib *t)
{
    struct run_state *s = &t->s;
    const size_t D = s->D;
    float *img = test_zeros(NB * D), *cls = test_zeros(NC * D);
    double total = 0.0;

    ck_assert_int_eq(clip_vision_forward(&s->vr, &s->m, &s->ca, t->pixels, NB, img), RL_OK);
    ck_assert_int_eq(clip_text_forward(&s->tr, &s->m, &s->ca, s->train_ids, NC, 7, cls), RL_OK);
    for (size_t i = 0; i < NB; i++) {
        double logit[NB], mx = -INFINITY, z = 0.0, ni = 0.0;
        size_t target = 0;

        while (t->labels[target] != t->labels[i])
            target++;
        for (size_t d = 0; d < D; d++)
            ni += (double)img[i * D + d] * img[i * D + d];
        for (size_t j = 0; j < NB; j++) {
            const float *c = cls + (size_t)t->labels[j] * D;
            double dot = 0.0, nc = 0.0;

            for (size_t d = 0; d < D; d++) {
                dot += (double)img[i * D + d] * c[d];
                nc += (double)c[d] * c[d];
            }
            logit[j] = (double)s->scale * dot / sqrt(ni * nc);
            mx = fmax(mx, logit[j]);
        }
        for (size_t j = 0; j < NB; j++)
            z += exp(logit[j] - mx);
        total += mx + log(z) - logit[target];
    }
    free(img);
    free(cls);
    return total / NB;
}

START_TEST(test_by_hand)
{
    static const char *const targets[] = { "vision:*:q_proj,fc1;text:*:v_proj,fc2",
                                           "vision:*:q_proj,fc1" };

    for (size_t k = 0; k < 2; k++) {
        struct ib t;
        double got, want;

        ib_init(&t, targets[k], 4.6f);
        got = ib_loss(&t);
        want = loss_by_hand(&t);
        ck_assert_msg(fabs(got - want) <= 1e-5 * fabs(want), "%s: in-batch %.9g, by hand %.9g",
                      targets[k], got, want);
        ck_assert_int_eq(t.s.ib_targets[2], 0);
        ck_assert_int_eq(t.s.ib_targets[4], 1);
        ck_assert_int_eq(t.s.ib_targets[3], 3);
        ib_free(&t);
    }
}
END_TEST

static void check_gradcheck(const char *targets)
{
    struct ib t;
    float *grad;
    double l = 0.0;

    ib_init(&t, targets, 4.6f);
    clip_adapters_zero_grad(&t.s.ca);
    ck_assert_int_eq(inbatch_forward(&t.s, t.pixels, t.labels, NB, &l), RL_OK);
    inbatch_backward(&t.s, NB, 1.0f);
    grad = test_copy(t.s.ca.grads, t.s.ca.n_params);
    ck_assert(test_max_abs(grad, t.s.ca.n_params) > 0);
    ck_assert_uint_eq(gradcheck(targets, t.s.ca.params, grad, t.s.ca.n_params, ib_loss, &t,
                                1e-2f, 2e-3, 2e-2, 160), 0);
    free(grad);
    ib_free(&t);
}

START_TEST(test_gradcheck_both)
{
    check_gradcheck("vision:*:q_proj,fc1;text:*:v_proj,fc2");
}
END_TEST

START_TEST(test_gradcheck_vision)
{
    check_gradcheck("vision:1:q_proj,fc2");
}
END_TEST

START_TEST(test_run)
{
    const char *ov[RUN_SHORT_N + 3];
    struct tmp t;
    struct experiment e;
    struct run_plan *plans;
    struct runner_result res;
    char path[256], *ini;

    for (size_t i = 0; i < RUN_SHORT_N; i++)
        ov[i] = run_short[i];
    ov[RUN_SHORT_N] = "train.loss=inbatch";
    ov[RUN_SHORT_N + 1] = "train.logit_scale=raw";
    ov[RUN_SHORT_N + 2] = "method.towers=vision, text";
    tmp_setup(&t, true);
    make_plan(&plans, &e, &t, ov, RUN_SHORT_N + 3);
    ck_assert_int_eq(plans[0].train.loss, EXP_LOSS_INBATCH);
    ini = run_plan_to_ini(&plans[0]);
    ck_assert_ptr_nonnull(strstr(ini, "\nloss = inbatch\n"));
    ck_assert_ptr_nonnull(strstr(ini, "\nlogit_scale = raw\n"));
    free(ini);
    snprintf(path, sizeof(path), "%s/ib.h5", t.dir);
    ck_assert_msg(run_quiet(&plans[0], path, NULL, false, &res) == RL_OK, "%s", rl_error_msg());
    ck_assert_uint_eq(res.steps, RUN_SHORT_STEPS);
    ck_assert(isfinite(res.loss) && res.accuracy >= 0 && res.accuracy <= 1);
    run_plans_free(plans, 1);
    experiment_free(&e);
    tmp_cleanup(&t);
}
END_TEST

Suite *suite_inbatch(void)
{
    Suite *s = suite_create("inbatch");
    TCase *tc = tcase_create("inbatch");

    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_targets);
    tcase_add_test(tc, test_by_hand);
    tcase_add_test(tc, test_gradcheck_both);
    tcase_add_test(tc, test_gradcheck_vision);
    tcase_add_test(tc, test_run);
    suite_add_tcase(s, tc);
    return s;
}
