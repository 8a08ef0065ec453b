/*
 * clip_harness.h: helpers the CLIP suites share (check_clip.c,
 * check_clip_paths.c): a forward + backward harness for both towers and the
 * contrastive head, a small random model, its token ids, and writing a
 * model's weights to a safetensors file. Failures abort the test (Check).
 */
#ifndef RANDLORA_TESTS_CLIP_HARNESS_H
#define RANDLORA_TESTS_CLIP_HARNESS_H

#include <stddef.h>
#include <stdint.h>

#include "golden.h"
#include "models/clip.h"

/* images = texts = B, ids (B,T); borrows m, ca (may be NULL), pixels, ids */
struct pipe {
    struct clip_model *m;
    struct clip_adapters *ca;       /* may be NULL */
    struct clip_vision_run vr;
    struct clip_text_run tr;
    struct clip_head h;
    size_t B, T;                    /* images = texts = B; ids (B,T)        */
    const float *pixels;
    const int32_t *ids;
    float *img, *txt, *dimg, *dtxt;
};

void  pipe_init(struct pipe *p, struct clip_model *m, struct clip_adapters *ca, size_t B,
                size_t T, const float *pixels, const int32_t *ids);
void  pipe_free(struct pipe *p);
/* the contrastive loss of the current weights */
float pipe_forward(struct pipe *p);
/* forward, then backward of the contrastive loss into ca, g, dpixels (each
 * may be NULL) */
float pipe_backward(struct pipe *p, struct clip_grads *g, float *dpixels);
/* pipe_forward for gradcheck */
double pipe_loss(void *ctx);

/* A clip-tiny step case (check_clip_bf16.c, check_bf16_acts.c): clip-tiny
 * with random weights (seed 7), `method` (rank r) on all six linears of
 * both towers, its parameters moved by N(0, noise) (LoRA's B non-zero, so
 * every adapter gradient is), STEP_B images, STEP_B prompts of STEP_T
 * tokens (bos, bytes, eos at 5..8), factored path everywhere; owns all but
 * nothing borrowed */
enum { STEP_B = 4, STEP_T = 9 };

struct step_case {
    struct clip_model m;
    struct clip_adapters ca;
    struct pipe p;
    float *pixels;
    int32_t ids[STEP_B * STEP_T];
};

void step_case_init_method(struct step_case *s, const char *method, size_t r_, float noise);
void step_case_free(struct step_case *s);

/* a small random model: image 8, patch 4 (5 tokens), widths 16/12 */
void tiny_config(struct clip_config *c);
void tiny_model(struct clip_model *m, uint64_t seed);
/* 3 rows of ids (3,7) with EOT at 2, 6, 4 */
void tiny_ids(int32_t ids[3 * 7]);

/* dir/model.safetensors from m's tensors, skipping `skip` and giving
 * `reshape` a transposed shape (either may be NULL) */
void write_weights(const struct clip_model *m, const char *dir, const char *skip,
                   const char *reshape);

/* the fixture model directory tests/fixtures/clip_tiny (a complete HF-style
 * directory with golden.bin; fixture_path's rules), in a static buffer */
const char *clip_fixture_dir(void);
/* m loaded from it (asserted) */
void clip_load_fixture(struct clip_model *m);

/* the fixture's golden.bin (written by CLIP_GOLDEN_HINT), opened (asserted) */
#define CLIP_GOLDEN_HINT "/usr/bin/python3 tests/ref/make_clip_golden.py"
void clip_open_golden(struct golden *g);
/* a golden tensor by name with its element count checked */
const float *clip_golden_get(const struct golden *g, const char *name, size_t n);
/* m loaded from the model directory dir (asserted) */
void clip_load_dir(struct clip_model *m, const char *dir);

#endif /* RANDLORA_TESTS_CLIP_HARNESS_H */
