/*
 * presets.c: the preset CLIP shapes and HF-style random initialisation.
 *
 * clip-vit-b-32, clip-vit-b-16 and clip-vit-l-14 are the OpenAI shapes
 * (HF openai/clip-vit-{base-patch32,base-patch16,large-patch14} configs;
 * their real weights come from the user's model directory).
 *
 * clip-tiny is this project's own small model, sized to be pretrained
 * contrastively on the procedural `shapes` corpus on a 2-core CPU in
 * minutes:
 *   vision: 32x32 RGB, patch 4 -> 64 patches + class = 65 tokens,
 *           width 128, 4 layers, 4 heads (hs 32), MLP 512, quick_gelu
 *   text:   byte-level vocabulary of 258 ids: 0..255 the UTF-8 bytes,
 *           256 <|startoftext|> (bos), 257 <|endoftext|> (eos, also pad),
 *           context 32, width 128, 4 layers, 4 heads, MLP 512, quick_gelu
 *   projection 128; logit_scale_init ln(1/0.07)
 * 1,671,425 parameters (6.7 MB as F32); one image-caption pair costs about
 * 0.5 GFLOP for forward + backward.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/rng.h"
#include "core/status.h"
#include "models/clip.h"

static const char *const preset_names[] = {
    "clip-tiny", "clip-vit-b-32", "clip-vit-b-16", "clip-vit-l-14", NULL,
};

const char *const *clip_preset_names(void)
{
    return preset_names;
}

int clip_config_preset(struct clip_config *c, const char *name)
{
    clip_config_defaults(c);                       /* ViT-B/32 */
    if (strcmp(name, "clip-vit-b-32") == 0)
        return RL_OK;
    if (strcmp(name, "clip-vit-b-16") == 0) {
        c->vision.patch_size = 16;
        return RL_OK;
    }
    if (strcmp(name, "clip-vit-l-14") == 0) {
        c->vision.patch_size = 14;
        c->vision.hidden = 1024;
        c->vision.layers = 24;
        c->vision.heads = 16;
        c->vision.intermediate = 4096;
        c->text.hidden = 768;
        c->text.heads = 12;
        c->text.intermediate = 3072;
        c->projection_dim = 768;
        return RL_OK;
    }
    if (strcmp(name, "clip-tiny") == 0) {
        c->vision = (struct clip_vision_config){
            .image_size = 32, .patch_size = 4, .num_channels = 3, .hidden = 128, .layers = 4,
            .heads = 4, .intermediate = 512, .act = BLOCK_ACT_QUICK_GELU,
            .layer_norm_eps = 1e-5f,
        };
        c->text = (struct clip_text_config){
            .vocab_size = 258, .context = 32, .hidden = 128, .layers = 4, .heads = 4,
            .intermediate = 512, .act = BLOCK_ACT_QUICK_GELU, .layer_norm_eps = 1e-5f,
            .bos_token_id = 256, .eos_token_id = 257, .pad_token_id = 257,
        };
        c->projection_dim = 128;
        return RL_OK;
    }
    return rl_error_set(RL_ERR_ARG, "unknown model preset '%s' (expected clip-tiny, "
                        "clip-vit-b-32, clip-vit-b-16 or clip-vit-l-14)", name);
}

/* ------------------------------------------------------------------------ */
/* random init (HF CLIPPreTrainedModel._init_weights, initializer_factor 1)  */

static void fill_const(float *x, size_t n, float v)
{
    for (size_t i = 0; i < n; i++)
        x[i] = v;
}

static void init_layer(struct rng *r, const struct clip_model *m, const struct block_params *cp,
                       size_t C, size_t F, size_t L)
{
    /* the views are const for the forward; the block is ours to write */
    struct block_grads p;
    const float in_std = (float)(pow((double)C, -0.5) * pow(2.0 * (double)L, -0.5));
    const float out_std = (float)pow((double)C, -0.5);
    const float fc_std = (float)pow(2.0 * (double)C, -0.5);

    (void)m;
    block_grads_point(&p, (float *)cp->ln1_w, C, F);
    fill_const(p.ln1_w, C, 1.0f);
    fill_const(p.ln1_b, C, 0.0f);
    rng_fill_normal(r, p.q_w, C * C, 0.0f, in_std);
    fill_const(p.q_b, C, 0.0f);
    rng_fill_normal(r, p.k_w, C * C, 0.0f, in_std);
    fill_const(p.k_b, C, 0.0f);
    rng_fill_normal(r, p.v_w, C * C, 0.0f, in_std);
    fill_const(p.v_b, C, 0.0f);
    rng_fill_normal(r, p.o_w, C * C, 0.0f, out_std);
    fill_const(p.o_b, C, 0.0f);
    fill_const(p.ln2_w, C, 1.0f);
    fill_const(p.ln2_b, C, 0.0f);
    rng_fill_normal(r, p.fc1_w, F * C, 0.0f, fc_std);
    fill_const(p.fc1_b, F, 0.0f);
    rng_fill_normal(r, p.fc2_w, C * F, 0.0f, in_std);
    fill_const(p.fc2_b, C, 0.0f);
}

void clip_model_init_random(struct clip_model *m, uint64_t seed)
{
    const struct clip_config *c = &m->cfg;
    const size_t Cv = c->vision.hidden, Ct = c->text.hidden, D = c->projection_dim;
    const size_t ps = c->vision.patch_size, CH = c->vision.num_channels;
    const size_t T = clip_vision_tokens(&c->vision);
    const struct clip_weights *w = &m->w;
    struct rng root, r;

    rng_init(&root, seed);
    /* one stream per part, so a part's values do not depend on the others' sizes */
    rng_split(&r, &root, 1);
    rng_fill_normal(&r, w->v_class, Cv, 0.0f, (float)pow((double)Cv, -0.5));
    rng_fill_normal(&r, w->v_patch, Cv * CH * ps * ps, 0.0f, 0.02f);
    rng_fill_normal(&r, w->v_pos, T * Cv, 0.0f, 0.02f);
    fill_const(w->v_pre_w, Cv, 1.0f);
    fill_const(w->v_pre_b, Cv, 0.0f);
    fill_const(w->v_post_w, Cv, 1.0f);
    fill_const(w->v_post_b, Cv, 0.0f);
    for (size_t l = 0; l < c->vision.layers; l++) {
        rng_split(&r, &root, 100 + l);
        init_layer(&r, m, &m->vlayer[l], Cv, c->vision.intermediate, c->vision.layers);
    }
    rng_split(&r, &root, 2);
    rng_fill_normal(&r, w->t_tok, c->text.vocab_size * Ct, 0.0f, 0.02f);
    rng_fill_normal(&r, w->t_pos, c->text.context * Ct, 0.0f, 0.02f);
    fill_const(w->t_final_w, Ct, 1.0f);
    fill_const(w->t_final_b, Ct, 0.0f);
    for (size_t l = 0; l < c->text.layers; l++) {
        rng_split(&r, &root, 10000 + l);
        init_layer(&r, m, &m->tlayer[l], Ct, c->text.intermediate, c->text.layers);
    }
    rng_split(&r, &root, 3);
    rng_fill_normal(&r, w->v_proj, D * Cv, 0.0f, (float)pow((double)Cv, -0.5));
    rng_fill_normal(&r, w->t_proj, D * Ct, 0.0f, (float)pow((double)Ct, -0.5));
    w->logit_scale[0] = c->logit_scale_init;
}

int clip_model_preset(struct clip_model *m, const char *name, uint64_t seed)
{
    struct clip_config c;
    int rc;

    memset(m, 0, sizeof(*m));
    if ((rc = clip_config_preset(&c, name)))
        return rc;
    if ((rc = clip_model_init(m, &c)))
        return rc;
    clip_model_init_random(m, seed);
    return RL_OK;
}
