/*
 * analyze_cka.h: activation CKA for `randlora analyze --reference`: how
 * alike two fine-tuned models' layer outputs are on one fixed batch
 * (cli/cmd_analyze.c runs it; results/analysis.h computes CKA).
 *
 * Activation CKA (with --reference, unless --cka-batch 0): the model of the
 * reference's plan (runner_load_model) and a FIXED batch: the first N items
 * of its eval spec (N = --cka-batch, default 64, at most the set's size),
 * through the CLIP eval transform at the model's image size, and its eval
 * prompts (the class names in plan->prompt, or in the dataset's templates
 * when the run ensembles them). Each run must name the same model directory
 * (compared after realpath) and the same eval spec and image size as the
 * reference (RL_ERR_ARG, exit 2, before anything is written to it); other
 * prompts only skip the text tower (NaN, with a note). Both towers are run
 * with the run's adapters and with the reference's (run_adapters_attach:
 * the plan's targets on the model, the file's parameters; eval mode), and
 * for every encoder layer l the output activations -- the residual stream
 * after layer l, one row per token -- are compared with
 * analysis_linear_cka:
 *   vision: every token of every image (class token and patches), so
 *           n = N * T rows of width C (64 x 65 = 4160 rows of 128 for
 *           clip-tiny): linear CKA is biased upwards when n is not much
 *           larger than the width, which class-token rows alone (n = N)
 *           would be;
 *   text:   every token of each prompt up to and including its end-of-text
 *           (what the causal tower's pooled row can see); n is small (10
 *           prompts of ~23 tokens for Fashion-MNIST), so read it with that
 *           bias in mind.
 * Written:
 *   /analysis/cka                  attrs reference (string), eval (string),
 *                                  n_images, vision_rows, n_prompts,
 *                                  text_rows (int64), activations (string)
 *   /analysis/cka/vision_layer_<l> float64, l = 0 .. Lv-1
 *   /analysis/cka/text_layer_<l>   float64, l = 0 .. Lt-1 (NaN: not compared)
 * Without CKA an earlier /analysis/cka is overwritten with NaN (reference "",
 * n_images 0). The reference's own activations are computed once; a run
 * against itself gives exactly 1 (the same computation twice).
 */
#ifndef RANDLORA_EXPERIMENTS_ANALYZE_CKA_H
#define RANDLORA_EXPERIMENTS_ANALYZE_CKA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "experiments/config.h"
#include "models/clip.h"
#include "results/run_adapters.h"
#include "results/store.h"

/* Every layer's output activations of one run on the fixed batch: vision
 * v[l] (nv x Cv: every token of every image, image-major) and text t[l]
 * (nt x Ct: every prompt's tokens up to and including its end-of-text). */
struct cka_acts {
    size_t Lv, Lt, nv, Cv, nt, Ct;
    float **v, **t;             /* (Lv) of (nv, Cv), (Lt) of (nt, Ct)       */
};

/* what the runs are compared on: the reference's model and eval data */
struct cka_ctx {
    size_t batch;               /* --cka-batch; 0: no activation CKA        */
    const struct run_plan *ref_plan;
    const char *ref_path;
    char model_id[4096];        /* realpath of the model directory          */
    struct clip_model m;
    bool have_model;
    size_t n_images, S;         /* images of the batch, their side          */
    float *pixels;              /* (n_images, 3, S, S)                      */
    size_t n_prompts, ctx, max_T;
    int32_t *ids;               /* (n_prompts, ctx) the eval prompts        */
    struct cka_acts ref;        /* the reference's activations              */
};

/* per layer CKA of a run's activations against the reference's (NaN where
 * not computed) */
struct cka_result {
    size_t Lv, Lt;
    double *v, *t;              /* (Lv), (Lt)                               */
};

/* The reference's model, the first c->batch eval images (CLIP eval
 * transform at the model's size) and its eval prompts, into c (c->batch
 * set by the caller). RL_ERR_ARG when the plan's image size is not the
 * model's or the eval set is empty; the loaders' errors otherwise. */
int  cka_setup(struct cka_ctx *c, const struct run_plan *p, const char *ref_path);
void cka_ctx_free(struct cka_ctx *c);

/* Does the run at path (plan p) see the same model and eval data as the
 * reference? RL_ERR_ARG naming the difference; *same_prompts: the text
 * tower sees the same prompts (else it is not compared). */
int  cka_check(const struct cka_ctx *c, const char *path, const struct run_plan *p,
               bool *same_prompts);

/* Every encoder layer's output for the run's adapters (ra) on c's batch,
 * the text tower too when `text`. */
int  cka_acts_compute(struct cka_acts *out, struct cka_ctx *c, const struct run_adapters *ra,
                      bool text);
void cka_acts_free(struct cka_acts *a);

/* per layer CKA of a against the reference r (Lt text layers compared when
 * both have text); a layer CKA cannot be computed for is NaN, with a note */
int  cka_compare(struct cka_result *res, const struct cka_acts *a, const struct cka_acts *r,
                 size_t Lt, const char *path);
void cka_result_free(struct cka_result *res);

/* /analysis/cka from res and a; res NULL: an earlier group is overwritten
 * with NaN (reference "", n_images 0) */
int  cka_write(struct store *s, const struct cka_ctx *c, const struct cka_result *res,
               const struct cka_acts *a);

#endif /* RANDLORA_EXPERIMENTS_ANALYZE_CKA_H */
