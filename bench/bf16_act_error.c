/*
 * bf16_act_error.c: how much each activation saved for the backward adds to
 * the gradients' error when it is stored in bf16 (issue 15). For each
 * method, one forward + backward of the contrastive loss on a random batch
 * (both towers, adapters on every linear, factored path): the reference in
 * fp32; the same step with train.precision = bf16 (the error the bf16
 * products already introduce); then the bf16 step with one saved tensor
 * rounded to bf16 after its layer's forward (block_acts_emulate_bf16 in
 * models/block.c), which is exactly what storing it in bf16 gives the
 * backward. Prints ||g - g_ref|| / ||g_ref|| per row ("added": against the
 * bf16 step with every activation fp32), and last the bf16 step with the
 * tensors that are stored in bf16 (clip_vision_run_store_bf16).
 *
 *     build/bench/bf16_act_error MODEL B [METHOD,METHOD...|all [NOISE_SCALE]]
 */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/rng.h"
#include "core/status.h"
#include "methods/adapter.h"
#include "models/block.h"
#include "models/clip.h"

struct run {
    struct clip_model m;
    struct clip_adapters ca;
    struct clip_vision_run vr;
    struct clip_text_run tr;
    struct clip_head h;
    size_t B, T;
    float *pixels, *img, *txt, *dimg, *dtxt;
    int32_t *ids;
};

static void die(const char *what)
{
    fprintf(stderr, "bf16_act_error: %s: %s\n", what, rl_error_msg());
    exit(1);
}

static void run_init(struct run *r, const char *model, const char *method, size_t rank,
                     float noise, size_t B)
{
    struct clip_target t[1];
    struct adapter_cfg acfg;
    struct rng g;
    size_t nt, D;

    memset(r, 0, sizeof(*r));
    if (clip_model_preset(&r->m, model, 7) != RL_OK)
        die("preset");
    if (clip_targets_parse("all", t, 1, &nt) != RL_OK)
        die("targets");
    adapter_cfg_defaults(&acfg, method, rank);
    if (clip_adapters_init(&r->ca, &r->m, &acfg, t, nt, B, B) != RL_OK)
        die("adapters");
    r->ca.path_mode = CLIP_PATH_FACTORED;
    rng_init(&g, 15);
    /* move the adapters off their initial zeros by N(0, noise) so every
     * gradient is live (full's dW stays 0: its gradient is live already) */
    if (strcmp(method, "full"))
        for (size_t i = 0; i < r->ca.n_params; i++)
            r->ca.params[i] += noise * rng_normal(&g);
    r->B = B;
    r->T = r->m.cfg.text.context < 16 ? r->m.cfg.text.context : 16;
    {
        const struct clip_vision_config *v = &r->m.cfg.vision;
        const size_t np = B * v->num_channels * v->image_size * v->image_size;

        r->pixels = xmalloc_array(np, sizeof(float));
        for (size_t i = 0; i < np; i++)
            r->pixels[i] = rng_normal(&g);
    }
    r->ids = xmalloc_array(B * r->T, sizeof(int32_t));
    for (size_t b = 0; b < B; b++) {
        const size_t eos = r->T - 1 - b % 3;
        const int64_t vmax = r->m.cfg.text.vocab_size - 2 < 256 ? r->m.cfg.text.vocab_size - 2
                                                                : 256;

        for (size_t k = 0; k < r->T; k++)
            r->ids[b * r->T + k] = k == 0 ? (int32_t)r->m.cfg.text.bos_token_id
                                 : k < eos ? (int32_t)rng_below(&g, (uint64_t)vmax)
                                 : (int32_t)r->m.cfg.text.eos_token_id;
    }
    D = r->m.cfg.projection_dim;
    clip_vision_run_init(&r->vr, &r->m, B, true);
    clip_text_run_init(&r->tr, &r->m, B, 0, true);
    clip_head_init(&r->h, B, B, D);
    r->img = xcalloc(B * D, sizeof(float));
    r->txt = xcalloc(B * D, sizeof(float));
    r->dimg = xcalloc(B * D, sizeof(float));
    r->dtxt = xcalloc(B * D, sizeof(float));
}

static void run_free(struct run *r)
{
    clip_vision_run_free(&r->vr);
    clip_text_run_free(&r->tr);
    clip_head_free(&r->h);
    free(r->img); free(r->txt); free(r->dimg); free(r->dtxt);
    free(r->pixels); free(r->ids);
    clip_adapters_free(&r->ca);
    clip_model_free(&r->m);
}

/* one step; the adapter gradients into g */
static float run_step(struct run *r, float *g)
{
    const struct clip_step_size sz = {
        .images = r->B, .texts = r->B, .text_tokens = r->T, .vision_micro = 1, .text_micro = 1,
    };
    const size_t n = r->B * r->m.cfg.projection_dim;
    float loss;

    clip_adapters_zero_grad(&r->ca);
    clip_adapters_begin_step(&r->ca, &r->m, &sz);
    if (clip_vision_forward(&r->vr, &r->m, &r->ca, r->pixels, r->B, r->img) != RL_OK)
        die("vision forward");
    if (clip_text_forward(&r->tr, &r->m, &r->ca, r->ids, r->B, r->T, r->txt) != RL_OK)
        die("text forward");
    clip_head_logits(&r->h, r->img, r->txt, r->B, r->B, clip_logit_scale(&r->m));
    loss = clip_head_contrastive(&r->h);
    memset(r->dimg, 0, n * sizeof(float));
    memset(r->dtxt, 0, n * sizeof(float));
    clip_head_backward(&r->h, r->dimg, r->dtxt, NULL, 1.0f);
    clip_vision_backward(&r->vr, &r->m, &r->ca, NULL, r->dimg, NULL);
    clip_text_backward(&r->tr, &r->m, &r->ca, NULL, r->dtxt);
    clip_adapters_end_step(&r->ca, &r->m);
    memcpy(g, r->ca.grads, r->ca.n_params * sizeof(float));
    return loss;
}

static double rel_l2(const float *a, const float *b, size_t n)
{
    double d = 0.0, s = 0.0;

    for (size_t i = 0; i < n; i++) {
        d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        s += (double)b[i] * b[i];
    }
    return sqrt(d / s);
}

/* name is an item of the comma list `list` */
static bool method_listed(const char *list, const char *name)
{
    const size_t n = strlen(name);

    for (const char *p = list; p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
        if (!strncmp(p, name, n) && (p[n] == ',' || p[n] == '\0'))
            return true;
    return false;
}

int main(int argc, char **argv)
{
    /* RandLoRA's branch is scaled by alpha / r = 20: its noise 20x smaller
     * keeps the adapted model as close to the frozen one as the others' */
    static const struct { const char *name; size_t r; float noise; } methods[] = {
        { "lora", 32, 0.05f }, { "vera", 256, 0.05f }, { "randlora", 6, 0.0025f },
        { "nola", 8, 0.05f }, { "full", 0, 0.0f },
    };
    static const struct { const char *name; unsigned mask; } tensors[] = {
        { "ln stats", BLOCK_EMU_LN_STATS }, { "q,k,v", BLOCK_EMU_QKV },
        { "att probs", BLOCK_EMU_ATT }, { "atty", BLOCK_EMU_ATTY }, { "h", BLOCK_EMU_H },
        { "fch (gelu in)", BLOCK_EMU_FCH }, { "layer input", BLOCK_EMU_INPUT },
        { "atty+fch", BLOCK_EMU_ATTY | BLOCK_EMU_FCH },
        { "atty+fch+q,k,v", BLOCK_EMU_ATTY | BLOCK_EMU_FCH | BLOCK_EMU_QKV },
        { "all but stats", BLOCK_EMU_QKV | BLOCK_EMU_ATT | BLOCK_EMU_ATTY | BLOCK_EMU_H |
                           BLOCK_EMU_FCH | BLOCK_EMU_INPUT },
    };
    const char *model = argc > 1 ? argv[1] : "clip-tiny";
    const size_t B = argc > 2 ? (size_t)atoi(argv[2]) : 8;
    const char *only = argc > 3 && strcmp(argv[3], "all") ? argv[3] : NULL;
    /* the adapters' noise times this (a large branch makes the step chaotic:
     * NoLA on clip-vit-b-32 at the default) */
    const float noise_scale = argc > 4 ? (float)atof(argv[4]) : 1.0f;

    printf("%s, batch %zu: gradient rel. L2 error against the fp32 step\n", model, B);
    printf("%-9s %-16s %10s %10s\n", "method", "saved in bf16", "vs fp32", "added");
    for (size_t mi = 0; mi < sizeof(methods) / sizeof(methods[0]); mi++) {
        struct run r;
        float *g32, *g16, *gx, loss;

        if (only && !method_listed(only, methods[mi].name))
            continue;
        run_init(&r, model, methods[mi].name, methods[mi].r, noise_scale * methods[mi].noise, B);
        g32 = xmalloc_array(r.ca.n_params, sizeof(float));
        g16 = xmalloc_array(r.ca.n_params, sizeof(float));
        gx = xmalloc_array(r.ca.n_params, sizeof(float));
        block_acts_emulate_bf16 = 0;
        loss = run_step(&r, g32);
        if (clip_adapters_set_precision(&r.ca, &r.m, CLIP_PRECISION_BF16) != RL_OK)
            die("precision");
        run_step(&r, g16);
        printf("%-9s %-16s %10.2e %10s  (loss %.4f)\n", methods[mi].name, "(none: products)",
               rel_l2(g16, g32, r.ca.n_params), "-", (double)loss);
        for (size_t ti = 0; ti < sizeof(tensors) / sizeof(tensors[0]); ti++) {
            block_acts_emulate_bf16 = tensors[ti].mask;
            run_step(&r, gx);
            block_acts_emulate_bf16 = 0;
            printf("%-9s %-16s %10.2e %10.2e\n", methods[mi].name, tensors[ti].name,
                   rel_l2(gx, g32, r.ca.n_params), rel_l2(gx, g16, r.ca.n_params));
            fflush(stdout);
        }
        /* what is implemented: q, k, v, atty and fch stored in bf16
         * (clip_*_run_store_bf16); the same bits as their row above */
        clip_vision_run_store_bf16(&r.vr, &r.m);
        clip_text_run_store_bf16(&r.tr, &r.m);
        run_step(&r, gx);
        printf("%-9s %-16s %10.2e %10.2e\n", methods[mi].name, "stored:q,k,v,atty,fch",
               rel_l2(gx, g32, r.ca.n_params), rel_l2(gx, g16, r.ca.n_params));
        free(g32); free(g16); free(gx);
        run_free(&r);
    }
    return 0;
}
