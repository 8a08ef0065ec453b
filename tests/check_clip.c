/*
 * check_clip.c: the CLIP model (models/clip*.c, models/presets.c).
 *
 *   golden   the fixture model tests/fixtures/clip_tiny, a complete HF-style
 *            directory (config.json, model.safetensors with legacy
 *            position_ids, vocab.json + merges.txt) and golden.bin, written
 *            by tests/ref/make_clip_golden.py (plain torch, float64 maths on
 *            float32 values, from the HF CLIPModel maths and peft's adapter
 *            formulas): embeddings, logits, contrastive and cross-entropy
 *            losses, gradients w.r.t. weights (through clip_grads and
 *            through the `full` adapter) and pixels; with LoRA, VeRA and
 *            RandLoRA (peft and paper profiles, dense bases, and sparse
 *            bases) attached to linears of both towers, the shared frozen
 *            tensors and non-zero trainable values loaded from the golden
 *            through the named views: embeddings, logits, loss and every
 *            adapter gradient. |got - want| <= 1e-5 + 1e-4 |want|; a failure
 *            prints the failing elements and the max difference;
 *            CLIP_VERBOSE=1 prints the measured max differences of every
 *            comparison. The golden's text ids are the fixture tokenizer's
 *            output for the script's captions; the checks can fail (one
 *            perturbed gradient element is reported).
 *   tokenizer the fixture's BPE tokenizer gives the golden's ids.
 * Gradient checks, the text cut, loading and targets are in
 * check_clip_model.c, the factored and merged paths in check_clip_paths.c;
 * the harness they use is clip_harness.c.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "clip_harness.h"
#include "core/alloc.h"
#include "core/rng.h"
#include "core/status.h"
#include "golden.h"
#include "methods/adapter.h"
#include "models/clip.h"
#include "models/tokenizer.h"
#include "suites.h"
#include "test_util.h"

#define ATOL 1e-5
#define RTOL 1e-4

/* the golden model's shapes (make_clip_golden.py) */
#define GB   3          /* images and texts                               */
#define GD   16         /* projection                                     */
#define GCTX 12
#define GIMG 16

/* the largest |got - want| / (ATOL + RTOL |want|): 1 is the tolerance */
static double max_tol_used(const float *got, const float *want, size_t n)
{
    double m = 0.0;

    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)want[i]) / (ATOL + RTOL * fabs((double)want[i]));
        if (d > m)
            m = d;
    }
    return m;
}

/* tensor_compare within |got - want| <= ATOL + RTOL |want|; it prints the
 * failing elements and the largest difference on failure. CLIP_VERBOSE=1
 * prints every comparison's max |diff| and the share of the tolerance used. */
static size_t compare(const char *name, const float *got, const float *want, size_t n)
{
    if (getenv("CLIP_VERBOSE"))
        fprintf(stderr, "  %-62s max |diff| %.3g (%.3f of tol)\n", name,
                test_max_abs_diff(got, want, n), max_tol_used(got, want, n));
    return tensor_compare(name, got, want, n, ATOL, RTOL);
}

/* golden inputs: pixels (3,3,16,16), ids (3,12) */
static void golden_inputs(const struct golden *g, float **pixels, int32_t **ids)
{
    const float *f = clip_golden_get(g, "ids", GB * GCTX);

    *pixels = test_copy(clip_golden_get(g, "pixels", GB * 3 * GIMG * GIMG), GB * 3 * GIMG * GIMG);
    *ids = xmalloc_array(GB * GCTX, sizeof(int32_t));
    for (size_t i = 0; i < GB * GCTX; i++)
        (*ids)[i] = (int32_t)f[i];
}

/* ------------------------------------------------------------------------ */
/* (a) golden                                                                */

/* The token embedding's gradient: the golden holds only the rows of the ids
 * that occur (base.grad.token_rows; every other row is exactly 0 in torch,
 * and must be exactly 0 here), to keep the fixture small. */
static size_t compare_token_grad(const struct golden *g, const struct clip_model *m,
                                 const char *name, const float *got)
{
    const size_t V = m->cfg.text.vocab_size, C = m->cfg.text.hidden;
    const struct golden_tensor *rows = golden_find(g, "base.grad.token_rows");
    float *want;
    size_t fails;

    ck_assert_ptr_nonnull(rows);
    want = test_zeros(V * C);
    {
        const float *gr = clip_golden_get(g, name, rows->n * C);

        for (size_t i = 0; i < rows->n; i++) {
            size_t id = (size_t)rows->data[i];

            ck_assert_uint_lt(id, V);
            memcpy(want + id * C, gr + i * C, C * sizeof(float));
        }
    }
    /* rows of ids that do not occur: exactly zero */
    fails = 0;
    for (size_t id = 0; id < V; id++) {
        bool used = false;

        for (size_t i = 0; i < rows->n; i++)
            used |= (size_t)rows->data[i] == id;
        for (size_t j = 0; !used && j < C; j++)
            if (got[id * C + j] != 0.0f) {
                fprintf(stderr, "%s: row %zu (an id that does not occur) has %g at %zu\n", name,
                        id, (double)got[id * C + j], j);
                fails++;
                break;
            }
    }
    fails += compare(name, got, want, V * C);
    free(want);
    return fails;
}

static const char *const grad_names[] = {
    "vision_model.embeddings.patch_embedding.weight",
    "vision_model.embeddings.class_embedding",
    "vision_model.embeddings.position_embedding.weight",
    "vision_model.pre_layrnorm.weight",
    "vision_model.encoder.layers.0.mlp.fc2.weight",
    "vision_model.encoder.layers.1.self_attn.q_proj.weight",
    "vision_model.encoder.layers.1.self_attn.k_proj.bias",
    "vision_model.encoder.layers.1.layer_norm2.weight",
    "vision_model.post_layernorm.bias",
    "visual_projection.weight",
    "text_model.embeddings.token_embedding.weight",
    "text_model.embeddings.position_embedding.weight",
    "text_model.encoder.layers.0.mlp.fc1.weight",
    "text_model.encoder.layers.0.layer_norm1.bias",
    "text_model.encoder.layers.1.self_attn.out_proj.weight",
    "text_model.encoder.layers.1.self_attn.v_proj.weight",
    "text_model.final_layer_norm.weight",
    "text_projection.weight",
    "logit_scale",
};

START_TEST(test_golden_forward)
{
    struct golden g;
    struct clip_model m;
    struct pipe p;
    float *pixels, loss;
    int32_t *ids;
    size_t fails = 0;

    clip_open_golden(&g);
    clip_load_fixture(&m);
    ck_assert_uint_eq(m.cfg.vision.hidden, 32);
    ck_assert_uint_eq(m.cfg.text.hidden, 24);
    ck_assert_int_eq(m.cfg.text.act, BLOCK_ACT_GELU);
    ck_assert_int_eq(m.cfg.vision.act, BLOCK_ACT_QUICK_GELU);
    /* CLIP's layout: the specials are the vocabulary's last two ids */
    ck_assert_int_eq(m.cfg.text.eos_token_id, (int64_t)m.cfg.text.vocab_size - 1);
    ck_assert_int_eq(m.cfg.text.bos_token_id, (int64_t)m.cfg.text.vocab_size - 2);
    golden_inputs(&g, &pixels, &ids);
    pipe_init(&p, &m, NULL, GB, GCTX, pixels, ids);
    loss = pipe_forward(&p);
    ck_assert_uint_eq(p.tr.T, 10);               /* cut at the longest EOT (9) + 1 */
    fails += compare("image_embeds", p.img, clip_golden_get(&g, "base.image_embeds", GB * GD), GB * GD);
    fails += compare("text_embeds", p.txt, clip_golden_get(&g, "base.text_embeds", GB * GD), GB * GD);
    fails += compare("logits", p.h.logits, clip_golden_get(&g, "base.logits", GB * GB), GB * GB);
    fails += compare("loss", &loss, clip_golden_get(&g, "base.loss", 1), 1);
    ck_assert_uint_eq(fails, 0);
    pipe_free(&p);
    free(pixels);
    free(ids);
    clip_model_free(&m);
    golden_close(&g);
}
END_TEST

/* every weight trainable (clip_grads) and the pixels */
START_TEST(test_golden_weight_grads)
{
    struct golden g;
    struct clip_model m;
    struct clip_grads cg;
    struct pipe p;
    float *pixels, *dpix;
    int32_t *ids;
    size_t fails = 0;
    char name[160];

    clip_open_golden(&g);
    clip_load_fixture(&m);
    golden_inputs(&g, &pixels, &ids);
    clip_grads_init(&cg, &m);
    dpix = test_zeros(GB * 3 * GIMG * GIMG);
    pipe_init(&p, &m, NULL, GB, GCTX, pixels, ids);
    pipe_backward(&p, &cg, dpix);
    for (size_t i = 0; i < sizeof(grad_names) / sizeof(grad_names[0]); i++) {
        const struct clip_tensor *t = clip_model_find(&m, grad_names[i]);

        ck_assert_msg(t != NULL, "%s", grad_names[i]);
        snprintf(name, sizeof(name), "base.grad.%s", grad_names[i]);
        if (t->offset == (size_t)(m.w.t_tok - m.params))
            fails += compare_token_grad(&g, &m, name, cg.buf + t->offset);
        else
            fails += compare(name, cg.buf + t->offset, clip_golden_get(&g, name, t->numel), t->numel);
    }
    fails += compare("base.grad.pixels", dpix,
                     clip_golden_get(&g, "base.grad.pixels", GB * 3 * GIMG * GIMG), GB * 3 * GIMG * GIMG);
    ck_assert_uint_eq(fails, 0);
    pipe_free(&p);
    clip_grads_free(&cg);
    free(dpix);
    free(pixels);
    free(ids);
    clip_model_free(&m);
    golden_close(&g);
}
END_TEST

/* the `full` adapter on five weights: its grads are the weight grads */
START_TEST(test_golden_full_adapter)
{
    static const struct { enum clip_tower t; size_t l; enum block_linear lin; const char *w; }
    sites[] = {
        { CLIP_TOWER_VISION, 0, BLOCK_LIN_FC2, "vision_model.encoder.layers.0.mlp.fc2.weight" },
        { CLIP_TOWER_VISION, 1, BLOCK_LIN_Q,
          "vision_model.encoder.layers.1.self_attn.q_proj.weight" },
        { CLIP_TOWER_TEXT, 0, BLOCK_LIN_FC1, "text_model.encoder.layers.0.mlp.fc1.weight" },
        { CLIP_TOWER_TEXT, 1, BLOCK_LIN_OUT,
          "text_model.encoder.layers.1.self_attn.out_proj.weight" },
        { CLIP_TOWER_TEXT, 1, BLOCK_LIN_V, "text_model.encoder.layers.1.self_attn.v_proj.weight" },
    };
    struct golden g;
    struct clip_model m;
    struct clip_adapters ca;
    struct clip_target t[4];
    struct adapter_cfg acfg;
    struct pipe p;
    float *pixels, loss;
    int32_t *ids;
    size_t nt, fails = 0;
    char name[160];
    int rc;

    clip_open_golden(&g);
    clip_load_fixture(&m);
    golden_inputs(&g, &pixels, &ids);
    rc = clip_targets_parse("vision:0:fc2 vision:1:q_proj;text:0:fc1;text:1:out_proj,v_proj", t,
                            4, &nt);
    ck_assert_msg(rc == RL_OK, "%s", rl_error_msg());
    adapter_cfg_defaults(&acfg, "full", 0);
    rc = clip_adapters_init(&ca, &m, &acfg, t, nt, GB, GB);
    ck_assert_msg(rc == RL_OK, "%s", rl_error_msg());
    ck_assert_uint_eq(ca.n_sites, 5);
    pipe_init(&p, &m, &ca, GB, GCTX, pixels, ids);
    clip_adapters_zero_grad(&ca);
    loss = pipe_backward(&p, NULL, NULL);
    fails += compare("loss (full, dW = 0)", &loss, clip_golden_get(&g, "base.loss", 1), 1);
    for (size_t i = 0; i < sizeof(sites) / sizeof(sites[0]); i++) {
        struct adapter *a = clip_adapters_find(&ca, sites[i].t, sites[i].l, sites[i].lin);

        ck_assert_ptr_nonnull(a);
        snprintf(name, sizeof(name), "base.grad.%s", sites[i].w);
        fails += compare(name, a->grads, clip_golden_get(&g, name, a->n_params), a->n_params);
    }
    ck_assert_uint_eq(fails, 0);
    pipe_free(&p);
    clip_adapters_free(&ca);
    free(pixels);
    free(ids);
    clip_model_free(&m);
    golden_close(&g);
}
END_TEST

START_TEST(test_golden_crossentropy_head)
{
    struct golden g;
    struct clip_model m;
    struct clip_head h;
    const float *img, *txt, *tf;
    float dimg[GB * GD] = { 0 }, dtxt[GB * GD] = { 0 }, loss;
    int32_t targets[GB];
    size_t fails = 0;

    clip_open_golden(&g);
    clip_load_fixture(&m);
    img = clip_golden_get(&g, "base.image_embeds", GB * GD);
    txt = clip_golden_get(&g, "base.text_embeds", GB * GD);
    tf = clip_golden_get(&g, "ce.targets", GB);
    for (int i = 0; i < GB; i++)
        targets[i] = (int32_t)tf[i];
    clip_head_init(&h, GB, GB, GD);
    clip_head_logits(&h, img, txt, GB, GB, clip_logit_scale(&m));
    loss = clip_head_crossentropy(&h, targets);
    clip_head_backward(&h, dimg, dtxt, NULL, 1.0f);
    fails += compare("ce.loss", &loss, clip_golden_get(&g, "ce.loss", 1), 1);
    fails += compare("ce.grad.image_embeds", dimg, clip_golden_get(&g, "ce.grad.image_embeds", GB * GD),
                     GB * GD);
    fails += compare("ce.grad.text_embeds", dtxt, clip_golden_get(&g, "ce.grad.text_embeds", GB * GD),
                     GB * GD);
    ck_assert_uint_eq(fails, 0);
    clip_head_free(&h);
    clip_model_free(&m);
    golden_close(&g);
}
END_TEST

/* The fixture is a complete HF-style model directory: its vocab.json +
 * merges.txt load with tok_load_dir, the vocabulary is the config's
 * vocab_size with bos / eos the config's, and the golden's text inputs are
 * the tokenizer's ids for the script's captions (row 1 padded with the end
 * token as Hugging Face pads, the others with 0); one more caption longer
 * than the context is truncated with the end token in the last slot. */
static char *golden_caption(const struct golden *g, const char *name)
{
    const struct golden_tensor *t = golden_find(g, name);
    char *s;

    ck_assert_msg(t != NULL, "golden tensor '%s' missing (%s)", name, CLIP_GOLDEN_HINT);
    s = xmalloc_array(t->n + 1, 1);
    for (size_t i = 0; i < t->n; i++) {
        ck_assert(t->data[i] >= 1.0f && t->data[i] <= 255.0f);
        s[i] = (char)(unsigned char)t->data[i];
    }
    s[t->n] = '\0';
    return s;
}

START_TEST(test_fixture_tokenizer)
{
    static const char *const files[] = { "config.json", "model.safetensors", "vocab.json",
                                         "merges.txt" };
    struct golden g;
    struct clip_model m;
    struct tokenizer *tok;
    struct stat st;
    const float *gids, *pads, *eots, *tids;
    int32_t row[GCTX];
    char path[1200], name[64], *cap;
    int eot, rc;

    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", clip_fixture_dir(), files[i]);
        ck_assert_msg(stat(path, &st) == 0, "%s: %s", path, strerror(errno));
    }
    clip_open_golden(&g);
    clip_load_fixture(&m);
    rc = tok_load_dir(&tok, clip_fixture_dir());
    ck_assert_msg(rc == RL_OK, "%s", rl_error_msg());
    ck_assert_int_eq(tok_kind(tok), TOK_BPE);
    ck_assert_int_eq(tok_vocab_size(tok), (int32_t)m.cfg.text.vocab_size);
    ck_assert_int_eq(tok_sot(tok), m.cfg.text.bos_token_id);
    ck_assert_int_eq(tok_eot(tok), m.cfg.text.eos_token_id);
    ck_assert_uint_eq(m.cfg.text.context, GCTX);

    gids = clip_golden_get(&g, "ids", GB * GCTX);
    pads = clip_golden_get(&g, "text.pad", GB);
    eots = clip_golden_get(&g, "text.eot", GB);
    for (size_t b = 0; b < GB; b++) {
        snprintf(name, sizeof(name), "text.caption.%zu", b);
        cap = golden_caption(&g, name);
        ck_assert_int_eq(tok_set_frame(tok, GCTX, (int32_t)pads[b], true), RL_OK);
        rc = tok_encode(tok, cap, row, &eot);
        ck_assert_msg(rc == RL_OK, "%s", rl_error_msg());
        for (size_t j = 0; j < GCTX; j++)
            ck_assert_msg(row[j] == (int32_t)gids[b * GCTX + j], "caption %zu '%s': id %zu is "
                          "%d, the golden's %d", b, cap, j, row[j], (int)gids[b * GCTX + j]);
        ck_assert_int_eq(eot, (int)eots[b]);
        ck_assert_uint_eq(clip_text_eot(&m.cfg.text, row, GCTX), (size_t)eots[b]);
        free(cap);
    }
    ck_assert_int_eq((int)pads[1], (int)m.cfg.text.eos_token_id);   /* HF's padding */
    ck_assert_int_eq((int)pads[0], 0);

    /* a caption longer than the context: truncated, end token last */
    cap = golden_caption(&g, "tok.caption");
    tids = clip_golden_get(&g, "tok.ids", GCTX);
    ck_assert_int_eq(tok_set_frame(tok, GCTX, 0, true), RL_OK);
    ck_assert_int_eq(tok_encode(tok, cap, row, &eot), RL_OK);
    for (size_t j = 0; j < GCTX; j++)
        ck_assert_int_eq(row[j], (int32_t)tids[j]);
    ck_assert_int_eq(eot, GCTX - 1);
    ck_assert_int_eq(tok_set_frame(tok, GCTX, 0, false), RL_OK);
    ck_assert_int_eq(tok_encode(tok, cap, row, &eot), RL_ERR_ARG);
    free(cap);

    tok_free(tok);
    clip_model_free(&m);
    golden_close(&g);
}
END_TEST

/* The adapter cases of the golden (make_clip_golden.py ADAPTER_CASES): the
 * method configured as the script's case and attached to the script's
 * sites; the shared frozen tensors (<case>.shared.<name>) and every
 * trainable tensor (<case>.<site>.<name>) are loaded through the named
 * views, shape-checked, so C computes with exactly the script's values;
 * then image and text embeddings, logits, the contrastive loss and the
 * gradient of every trainable tensor (<case>.grad.<site>.<name>) are
 * compared. */
#define VR_TARGETS "vision:0:k_proj,fc1;vision:1:v_proj,fc2;text:0:q_proj,fc2;text:1:out_proj,fc1"

struct adapter_case {
    const char *name;           /* golden prefix                            */
    const char *method;
    size_t r;
    float alpha;                /* 0: the method's default (RandLoRA 20 r)  */
    const char *profile;        /* RandLoRA "peft" | "paper"; else NULL     */
    enum adapter_basis basis;   /* RandLoRA (the values are loaded anyway)  */
    const char *targets;
    size_t n_sites;
};

static const struct adapter_case golden_cases[] = {
    { "lora", "lora", 2, 4.0f, NULL, ADAPTER_BASIS_DENSE,
      "vision:0:q_proj;vision:1:fc2;text:0:v_proj;text:1:fc1,out_proj", 5 },
    { "vera", "vera", 4, 0.0f, NULL, ADAPTER_BASIS_DENSE, VR_TARGETS, 8 },
    { "randlora_peft", "randlora", 6, 0.0f, "peft", ADAPTER_BASIS_DENSE, VR_TARGETS, 8 },
    { "randlora_paper", "randlora", 6, 0.0f, "paper", ADAPTER_BASIS_DENSE, VR_TARGETS, 8 },
    { "randlora_sparse", "randlora", 4, 3.0f, "peft", ADAPTER_BASIS_SPARSE,
      "vision:1:k_proj;text:0:fc1,fc2;text:1:q_proj", 4 },
};

/* one case set up and run (forward + backward of the contrastive loss) */
struct case_run {
    const struct adapter_case *c;
    struct golden g;
    struct clip_model m;
    struct clip_adapters ca;
    struct pipe p;
    float *pixels;
    int32_t *ids;
    float loss;
};

/* golden tensors whose name starts with prefix */
static size_t golden_count_prefix(const struct golden *g, const char *prefix)
{
    size_t n = 0;

    for (size_t i = 0; i < g->count; i++)
        n += strncmp(g->t[i].name, prefix, strlen(prefix)) == 0;
    return n;
}

/* the golden tensor `name` into a view, its shape checked */
static void load_view(const struct golden *g, const char *name, const struct adapter_tensor *at)
{
    size_t dims[3];
    const float *src;

    for (int i = 0; i < at->ndim; i++)
        dims[i] = at->shape[i];
    src = golden_get(g, name, (size_t)at->ndim, dims);
    ck_assert_msg(src != NULL, "%s (%s)", rl_error_msg(), CLIP_GOLDEN_HINT);
    memcpy(at->data, src, at->n * sizeof(float));
}

static void case_run(struct case_run *cr, const struct adapter_case *c)
{
    struct clip_target t[8];
    struct adapter_cfg acfg;
    struct adapter_tensor at[4];
    const float *meta;
    size_t nt, ns, loaded = 0, n_views = 0;
    char name[256], site[128], prefix[64];
    int rc;

    memset(cr, 0, sizeof(*cr));
    cr->c = c;
    clip_open_golden(&cr->g);
    clip_load_fixture(&cr->m);
    golden_inputs(&cr->g, &cr->pixels, &cr->ids);
    rc = clip_targets_parse(c->targets, t, 8, &nt);
    ck_assert_msg(rc == RL_OK, "%s", rl_error_msg());
    adapter_cfg_defaults(&acfg, c->method, c->r);
    acfg.alpha = c->alpha;
    if (c->profile)
        ck_assert_int_eq(adapter_cfg_profile(&acfg, c->profile), RL_OK);
    acfg.basis = c->basis;

    /* the script's settings: r, alpha, and the scaling they give */
    snprintf(name, sizeof(name), "%s.meta", c->name);
    meta = clip_golden_get(&cr->g, name, 3);
    ck_assert_msg((size_t)meta[0] == c->r && meta[1] == c->alpha, "%s: r %g alpha %g in the "
                  "golden, %zu %g here", c->name, (double)meta[0], (double)meta[1], c->r,
                  (double)c->alpha);

    rc = clip_adapters_init(&cr->ca, &cr->m, &acfg, t, nt, GB, GB);
    ck_assert_msg(rc == RL_OK, "%s", rl_error_msg());
    ck_assert_uint_eq(cr->ca.n_sites, c->n_sites);
    if (strcmp(c->method, "randlora") == 0)
        ck_assert_float_eq_tol(randlora_scaling(&acfg, 1), meta[2], 1e-6f * meta[2]);
    else if (strcmp(c->method, "lora") == 0)
        ck_assert_float_eq_tol(lora_scaling(&acfg), meta[2], 1e-6f * meta[2]);

    /* the shared frozen tensors: every one the golden has, and only those */
    ns = adapter_method_tensors(&cr->ca.method, at, 4);
    snprintf(prefix, sizeof(prefix), "%s.shared.", c->name);
    ck_assert_uint_eq(ns, golden_count_prefix(&cr->g, prefix));
    for (size_t i = 0; i < ns; i++) {
        snprintf(name, sizeof(name), "%s%s", prefix, at[i].name);
        load_view(&cr->g, name, &at[i]);
    }
    /* the trainable tensors: they cover the whole trainable block */
    for (size_t k = 0; k < cr->ca.n_sites; k++) {
        size_t n = adapter_tensors(&cr->ca.adapters[k], false, at, 4);

        clip_site_name(&cr->ca.sites[k], site, sizeof(site));
        for (size_t i = 0; i < n; i++) {
            snprintf(name, sizeof(name), "%s.%s.%s", c->name, site, at[i].name);
            load_view(&cr->g, name, &at[i]);
            loaded += at[i].n;
            n_views++;
        }
    }
    ck_assert_uint_eq(loaded, cr->ca.n_params);
    snprintf(prefix, sizeof(prefix), "%s.grad.", c->name);
    ck_assert_uint_eq(n_views, golden_count_prefix(&cr->g, prefix));

    pipe_init(&cr->p, &cr->m, &cr->ca, GB, GCTX, cr->pixels, cr->ids);
    clip_adapters_zero_grad(&cr->ca);
    cr->loss = pipe_backward(&cr->p, NULL, NULL);
}

/* failing elements over every output and gradient of the case */
static size_t case_compare(struct case_run *cr)
{
    const char *cn = cr->c->name;
    size_t fails = 0;
    char name[256], site[128];

    snprintf(name, sizeof(name), "%s.image_embeds", cn);
    fails += compare(name, cr->p.img, clip_golden_get(&cr->g, name, GB * GD), GB * GD);
    snprintf(name, sizeof(name), "%s.text_embeds", cn);
    fails += compare(name, cr->p.txt, clip_golden_get(&cr->g, name, GB * GD), GB * GD);
    snprintf(name, sizeof(name), "%s.logits", cn);
    fails += compare(name, cr->p.h.logits, clip_golden_get(&cr->g, name, GB * GB), GB * GB);
    snprintf(name, sizeof(name), "%s.loss", cn);
    fails += compare(name, &cr->loss, clip_golden_get(&cr->g, name, 1), 1);
    for (size_t k = 0; k < cr->ca.n_sites; k++) {
        struct adapter_tensor at[4];
        size_t n = adapter_tensors(&cr->ca.adapters[k], true, at, 4);

        clip_site_name(&cr->ca.sites[k], site, sizeof(site));
        for (size_t i = 0; i < n; i++) {
            snprintf(name, sizeof(name), "%s.grad.%s.%s", cn, site, at[i].name);
            fails += compare(name, at[i].data, clip_golden_get(&cr->g, name, at[i].n), at[i].n);
        }
    }
    return fails;
}

static void case_free(struct case_run *cr)
{
    pipe_free(&cr->p);
    clip_adapters_free(&cr->ca);
    free(cr->pixels);
    free(cr->ids);
    clip_model_free(&cr->m);
    golden_close(&cr->g);
}

static void check_golden_case(const char *name)
{
    struct case_run cr;
    size_t i = 0;

    while (strcmp(golden_cases[i].name, name) != 0)
        i++;
    case_run(&cr, &golden_cases[i]);
    ck_assert_uint_eq(case_compare(&cr), 0);
    case_free(&cr);
}

/* LoRA (r 2, alpha 4) with non-zero A and B on five linears of both towers */
START_TEST(test_golden_lora)
{
    check_golden_case("lora");
}
END_TEST

/* VeRA (r 4) on eight linears of both towers (square, fc1, fc2): vera_A and
 * vera_B (4, 64) / (64, 4) sliced per layer, non-zero lambda_b, lambda_d */
START_TEST(test_golden_vera)
{
    check_golden_case("vera");
}
END_TEST

/* RandLoRA, peft profile (ceil(d/r) bases, s = alpha / r with peft's
 * default alpha 20 r), dense bases, r 6 on the eight linears */
START_TEST(test_golden_randlora_peft)
{
    check_golden_case("randlora_peft");
}
END_TEST

/* RandLoRA, paper profile (min(1000, floor(d/r) + 1) bases, s = 1/r) */
START_TEST(test_golden_randlora_paper)
{
    check_golden_case("randlora_paper");
}
END_TEST

/* RandLoRA with sparse (ternary / std) bases, peft profile, r 4, alpha 3,
 * on four other linears (largest 48 x 48) */
START_TEST(test_golden_randlora_sparse)
{
    check_golden_case("randlora_sparse");
}
END_TEST

/* The new golden checks can fail: one expected gradient element off, one
 * computed gradient element off, and a changed shared basis value, are each
 * reported by tensor_compare. */
START_TEST(test_golden_check_can_fail)
{
    const char *gname = "randlora_paper.grad.text_model.encoder.layers.0.mlp.fc2.randlora_gamma";
    struct case_run cr;
    struct adapter *a;
    struct adapter_tensor at[4], sh[4];
    const float *want;
    float *want_copy;
    size_t idx = 7;

    case_run(&cr, &golden_cases[3]);
    ck_assert_str_eq(cr.c->name, "randlora_paper");
    ck_assert_uint_eq(case_compare(&cr), 0);
    a = clip_adapters_find(&cr.ca, CLIP_TOWER_TEXT, 0, BLOCK_LIN_FC2);
    ck_assert_ptr_nonnull(a);
    ck_assert_uint_eq(adapter_tensors(a, true, at, 4), 2);
    ck_assert_str_eq(at[1].name, "randlora_gamma");
    want = clip_golden_get(&cr.g, gname, at[1].n);
    ck_assert_uint_eq(tensor_compare(gname, at[1].data, want, at[1].n, ATOL, RTOL), 0);

    /* one expected element off by 1e-3 (well above 1e-5 + 1e-4 |want|) */
    want_copy = test_copy(want, at[1].n);
    want_copy[idx] += 1e-3f + 2e-4f * fabsf(want_copy[idx]);
    ck_assert_uint_eq(tensor_compare("gamma grad (expected perturbed)", at[1].data, want_copy,
                                     at[1].n, ATOL, RTOL), 1);
    /* one computed element off by 1% + 1e-4 */
    at[1].data[idx] = at[1].data[idx] * 1.01f + 1e-4f;
    ck_assert_uint_eq(tensor_compare("gamma grad (computed perturbed)", at[1].data, want,
                                     at[1].n, ATOL, RTOL), 1);

    /* the loaded shared values are what the model computes with: one element
     * of randlora_B that every layer uses, changed, moves the embeddings */
    ck_assert_uint_eq(adapter_method_tensors(&cr.ca.method, sh, 4), 2);
    ck_assert_str_eq(sh[1].name, "randlora_B");
    sh[1].data[0] += 0.5f;
    pipe_forward(&cr.p);
    ck_assert_uint_gt(tensor_compare("image_embeds (randlora_B[0] changed)", cr.p.img,
                                     clip_golden_get(&cr.g, "randlora_paper.image_embeds", GB * GD),
                                     GB * GD, ATOL, RTOL), 0);
    free(want_copy);
    case_free(&cr);
}
END_TEST

Suite *suite_clip(void)
{
    Suite *s = suite_create("clip");
    TCase *tc = tcase_create("clip");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_golden_forward);
    tcase_add_test(tc, test_golden_weight_grads);
    tcase_add_test(tc, test_golden_full_adapter);
    tcase_add_test(tc, test_golden_crossentropy_head);
    tcase_add_test(tc, test_golden_lora);
    tcase_add_test(tc, test_golden_vera);
    tcase_add_test(tc, test_golden_randlora_peft);
    tcase_add_test(tc, test_golden_randlora_paper);
    tcase_add_test(tc, test_golden_randlora_sparse);
    tcase_add_test(tc, test_golden_check_can_fail);
    tcase_add_test(tc, test_fixture_tokenizer);
    suite_add_tcase(s, tc);
    return s;
}
