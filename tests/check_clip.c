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
 *   gradcheck central differences through a whole tiny model for LoRA and
 *            RandLoRA parameters in both towers (some layers not adapted,
 *            so the backward skips them).
 *   text cut the text tower on the first max(EOT)+1 positions gives the
 *            uncut run's embeddings (to sgemm rounding: OpenBLAS rounds a row
 *            differently for different row counts, so not bit for bit).
 *   loading  missing / mis-shaped tensors named, legacy keys ignored, F16
 *            and BF16 weights, save + load round trip, config.json errors.
 *   targets  parsing and selection errors that list what exists.
 * The factored and merged paths are in check_clip_paths.c; the harness both
 * use is clip_harness.c.
 */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clip_harness.h"
#include "core/alloc.h"
#include "core/rng.h"
#include "core/status.h"
#include "golden.h"
#include "methods/adapter.h"
#include "models/clip.h"
#include "formats/safetensors.h"
#include "models/tokenizer.h"
#include "suites.h"
#include "test_util.h"

#define FIXTURE_DIR "clip_tiny"
#define GOLDEN_HINT "/usr/bin/python3 tests/ref/make_clip_golden.py"
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

static const char *fixture_dir(void)
{
    static char buf[1024];

    snprintf(buf, sizeof(buf), "%s", fixture_path(FIXTURE_DIR));
    return buf;
}

static void open_golden(struct golden *g)
{
    char path[1100];
    int rc;

    snprintf(path, sizeof(path), "%s/golden.bin", fixture_dir());
    rc = golden_open(g, path, GOLDEN_HINT);
    ck_assert_msg(rc == RL_OK, "%s", rl_error_msg());
}

/* a golden tensor by name with its element count checked */
static const float *gget(const struct golden *g, const char *name, size_t n)
{
    const struct golden_tensor *t = golden_find(g, name);

    ck_assert_msg(t != NULL, "golden tensor '%s' missing (%s)", name, GOLDEN_HINT);
    ck_assert_msg(t->n == n, "golden tensor '%s' has %zu elements, expected %zu", name, t->n, n);
    return t->data;
}

static void load_fixture(struct clip_model *m)
{
    int rc = clip_model_load(m, fixture_dir());

    ck_assert_msg(rc == RL_OK, "%s", rl_error_msg());
}

/* golden inputs: pixels (3,3,16,16), ids (3,12) */
static void golden_inputs(const struct golden *g, float **pixels, int32_t **ids)
{
    const float *f = gget(g, "ids", GB * GCTX);

    *pixels = test_copy(gget(g, "pixels", GB * 3 * GIMG * GIMG), GB * 3 * GIMG * GIMG);
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
        const float *gr = gget(g, name, rows->n * C);

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

    open_golden(&g);
    load_fixture(&m);
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
    fails += compare("image_embeds", p.img, gget(&g, "base.image_embeds", GB * GD), GB * GD);
    fails += compare("text_embeds", p.txt, gget(&g, "base.text_embeds", GB * GD), GB * GD);
    fails += compare("logits", p.h.logits, gget(&g, "base.logits", GB * GB), GB * GB);
    fails += compare("loss", &loss, gget(&g, "base.loss", 1), 1);
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

    open_golden(&g);
    load_fixture(&m);
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
            fails += compare(name, cg.buf + t->offset, gget(&g, name, t->numel), t->numel);
    }
    fails += compare("base.grad.pixels", dpix,
                     gget(&g, "base.grad.pixels", GB * 3 * GIMG * GIMG), GB * 3 * GIMG * GIMG);
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

    open_golden(&g);
    load_fixture(&m);
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
    fails += compare("loss (full, dW = 0)", &loss, gget(&g, "base.loss", 1), 1);
    for (size_t i = 0; i < sizeof(sites) / sizeof(sites[0]); i++) {
        struct adapter *a = clip_adapters_find(&ca, sites[i].t, sites[i].l, sites[i].lin);

        ck_assert_ptr_nonnull(a);
        snprintf(name, sizeof(name), "base.grad.%s", sites[i].w);
        fails += compare(name, a->grads, gget(&g, name, a->n_params), a->n_params);
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

    open_golden(&g);
    load_fixture(&m);
    img = gget(&g, "base.image_embeds", GB * GD);
    txt = gget(&g, "base.text_embeds", GB * GD);
    tf = gget(&g, "ce.targets", GB);
    for (int i = 0; i < GB; i++)
        targets[i] = (int32_t)tf[i];
    clip_head_init(&h, GB, GB, GD);
    clip_head_logits(&h, img, txt, GB, GB, clip_logit_scale(&m));
    loss = clip_head_crossentropy(&h, targets);
    clip_head_backward(&h, dimg, dtxt, NULL, 1.0f);
    fails += compare("ce.loss", &loss, gget(&g, "ce.loss", 1), 1);
    fails += compare("ce.grad.image_embeds", dimg, gget(&g, "ce.grad.image_embeds", GB * GD),
                     GB * GD);
    fails += compare("ce.grad.text_embeds", dtxt, gget(&g, "ce.grad.text_embeds", GB * GD),
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

    ck_assert_msg(t != NULL, "golden tensor '%s' missing (%s)", name, GOLDEN_HINT);
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
        snprintf(path, sizeof(path), "%s/%s", fixture_dir(), files[i]);
        ck_assert_msg(stat(path, &st) == 0, "%s: %s", path, strerror(errno));
    }
    open_golden(&g);
    load_fixture(&m);
    rc = tok_load_dir(&tok, fixture_dir());
    ck_assert_msg(rc == RL_OK, "%s", rl_error_msg());
    ck_assert_int_eq(tok_kind(tok), TOK_BPE);
    ck_assert_int_eq(tok_vocab_size(tok), (int32_t)m.cfg.text.vocab_size);
    ck_assert_int_eq(tok_sot(tok), m.cfg.text.bos_token_id);
    ck_assert_int_eq(tok_eot(tok), m.cfg.text.eos_token_id);
    ck_assert_uint_eq(m.cfg.text.context, GCTX);

    gids = gget(&g, "ids", GB * GCTX);
    pads = gget(&g, "text.pad", GB);
    eots = gget(&g, "text.eot", GB);
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
    tids = gget(&g, "tok.ids", GCTX);
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
    ck_assert_msg(src != NULL, "%s (%s)", rl_error_msg(), GOLDEN_HINT);
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
    open_golden(&cr->g);
    load_fixture(&cr->m);
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
    meta = gget(&cr->g, name, 3);
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
    fails += compare(name, cr->p.img, gget(&cr->g, name, GB * GD), GB * GD);
    snprintf(name, sizeof(name), "%s.text_embeds", cn);
    fails += compare(name, cr->p.txt, gget(&cr->g, name, GB * GD), GB * GD);
    snprintf(name, sizeof(name), "%s.logits", cn);
    fails += compare(name, cr->p.h.logits, gget(&cr->g, name, GB * GB), GB * GB);
    snprintf(name, sizeof(name), "%s.loss", cn);
    fails += compare(name, &cr->loss, gget(&cr->g, name, 1), 1);
    for (size_t k = 0; k < cr->ca.n_sites; k++) {
        struct adapter_tensor at[4];
        size_t n = adapter_tensors(&cr->ca.adapters[k], true, at, 4);

        clip_site_name(&cr->ca.sites[k], site, sizeof(site));
        for (size_t i = 0; i < n; i++) {
            snprintf(name, sizeof(name), "%s.grad.%s.%s", cn, site, at[i].name);
            fails += compare(name, at[i].data, gget(&cr->g, name, at[i].n), at[i].n);
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
    want = gget(&cr.g, gname, at[1].n);
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
                                     gget(&cr.g, "randlora_paper.image_embeds", GB * GD),
                                     GB * GD, ATOL, RTOL), 0);
    free(want_copy);
    case_free(&cr);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* (b) finite differences through a whole tiny model                         */

static void check_gradcheck(const char *method, const char *targets, size_t r)
{
    struct clip_model m;
    struct clip_adapters ca;
    struct clip_target t[8];
    struct adapter_cfg acfg;
    struct pipe p;
    struct rng rg;
    float *pixels, *grad;
    int32_t ids[3 * 7];
    size_t nt, fails;
    int rc;

    tiny_model(&m, 11);
    rc = clip_targets_parse(targets, t, 8, &nt);
    ck_assert_msg(rc == RL_OK, "%s", rl_error_msg());
    adapter_cfg_defaults(&acfg, method, r);
    rc = clip_adapters_init(&ca, &m, &acfg, t, nt, 3, 3);
    ck_assert_msg(rc == RL_OK, "%s", rl_error_msg());
    /* away from the zero init, so every parameter has a gradient */
    rng_init(&rg, 5);
    for (size_t i = 0; i < ca.n_params; i++)
        ca.params[i] += 0.3f * rng_normal(&rg);
    pixels = test_randn(&rg, 3 * 3 * 8 * 8, 1.0f);
    tiny_ids(ids);
    pipe_init(&p, &m, &ca, 3, 7, pixels, ids);
    clip_adapters_zero_grad(&ca);
    pipe_backward(&p, NULL, NULL);
    grad = test_copy(ca.grads, ca.n_params);
    fails = gradcheck(method, ca.params, grad, ca.n_params, pipe_loss, &p, 1e-2f, 2e-3, 2e-2,
                      160);
    ck_assert_uint_eq(fails, 0);
    free(grad);
    pipe_free(&p);
    free(pixels);
    clip_adapters_free(&ca);
    clip_model_free(&m);
}

START_TEST(test_gradcheck_lora)
{
    check_gradcheck("lora", "vision:1:q_proj,fc1;text:*:v_proj,fc2", 2);
}
END_TEST

START_TEST(test_gradcheck_randlora)
{
    check_gradcheck("randlora", "vision:*:out_proj,fc2;text:1:q_proj,k_proj", 4);
}
END_TEST

/* every weight: finite differences on a few entries of several tensors */
START_TEST(test_gradcheck_weights)
{
    static const char *const names[] = {
        "vision_model.embeddings.patch_embedding.weight",
        "vision_model.embeddings.class_embedding",
        "vision_model.encoder.layers.0.layer_norm1.weight",
        "vision_model.encoder.layers.1.mlp.fc1.bias",
        "text_model.embeddings.token_embedding.weight",
        "text_model.encoder.layers.0.self_attn.k_proj.weight",
        "text_model.final_layer_norm.bias",
        "text_projection.weight",
        "logit_scale",
    };
    struct clip_model m;
    struct clip_grads cg;
    struct pipe p;
    struct rng rg;
    float *pixels, *dpix;
    int32_t ids[3 * 7];
    size_t fails = 0;

    tiny_model(&m, 3);
    clip_grads_init(&cg, &m);
    rng_init(&rg, 9);
    pixels = test_randn(&rg, 3 * 3 * 8 * 8, 1.0f);
    dpix = test_zeros(3 * 3 * 8 * 8);
    tiny_ids(ids);
    pipe_init(&p, &m, NULL, 3, 7, pixels, ids);
    pipe_backward(&p, &cg, dpix);
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        const struct clip_tensor *t = clip_model_find(&m, names[i]);

        ck_assert_ptr_nonnull(t);
        fails += gradcheck(names[i], m.params + t->offset, cg.buf + t->offset, t->numel,
                           pipe_loss, &p, 1e-2f, 2e-3, 2e-2, 12);
    }
    fails += gradcheck("pixels", pixels, dpix, 3 * 3 * 8 * 8, pipe_loss, &p, 1e-2f, 2e-3, 2e-2,
                       24);
    ck_assert_uint_eq(fails, 0);
    pipe_free(&p);
    free(pixels);
    free(dpix);
    clip_grads_free(&cg);
    clip_model_free(&m);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* (c) the text cut                                                          */

START_TEST(test_text_cut_identical)
{
    struct clip_model m;
    struct clip_adapters ca;
    struct clip_target t[2];
    struct adapter_cfg acfg;
    struct clip_text_run cut, full, infer;
    struct rng rg;
    const size_t n = 5, ctx = 32;
    const size_t eot[5] = { 3, 9, 1, 12, 6 };
    int32_t ids[5 * 32];
    float *e_cut, *e_full, *e_inf, *g_cut;
    size_t D, nt;
    int rc;

    rc = clip_model_preset(&m, "clip-tiny", 7);
    ck_assert_msg(rc == RL_OK, "%s", rl_error_msg());
    D = m.cfg.projection_dim;
    rc = clip_targets_parse("text:*:q_proj,v_proj,fc1", t, 2, &nt);
    ck_assert_msg(rc == RL_OK, "%s", rl_error_msg());
    adapter_cfg_defaults(&acfg, "lora", 4);
    rc = clip_adapters_init(&ca, &m, &acfg, t, nt, 1, n);
    ck_assert_msg(rc == RL_OK, "%s", rl_error_msg());
    rng_init(&rg, 1);
    for (size_t i = 0; i < ca.n_params; i++)
        ca.params[i] += 0.05f * rng_normal(&rg);
    for (size_t b = 0; b < n; b++)
        for (size_t i = 0; i < ctx; i++)
            ids[b * ctx + i] = i == 0 ? 256 : i < eot[b] ? (int32_t)rng_below(&rg, 256)
                             : i == eot[b] ? 257 : (b % 2 ? 257 : 0);
    e_cut = test_zeros(n * D);
    e_full = test_zeros(n * D);
    e_inf = test_zeros(n * D);
    clip_text_run_init(&cut, &m, n, 0, true);
    clip_text_run_init(&full, &m, n, 0, true);
    clip_text_run_init(&infer, &m, n, 0, false);
    full.cut = false;
    ck_assert_int_eq(clip_text_forward(&cut, &m, &ca, ids, n, ctx, e_cut), RL_OK);
    ck_assert_int_eq(clip_text_forward(&full, &m, &ca, ids, n, ctx, e_full), RL_OK);
    ck_assert_int_eq(clip_text_forward(&infer, &m, &ca, ids, n, ctx, e_inf), RL_OK);
    ck_assert_uint_eq(cut.T, 13);
    ck_assert_uint_eq(full.T, ctx);
    /* The maths are identical, but not bit for bit: OpenBLAS's sgemm
     * rounds a row differently depending on the matrix's row count M (its
     * tail kernels), so (n*13, C) and (n*32, C) products differ in the last
     * bits (a few 1e-7 relative here). A wrong cut or pooling position would
     * differ by O(0.1). */
    if (getenv("CLIP_VERBOSE"))
        fprintf(stderr, "  text cut: max |cut - uncut| %.3g\n",
                test_max_abs_diff(e_cut, e_full, n * D));
    ck_assert_uint_eq(tensor_compare("text_embeds, cut vs uncut", e_cut, e_full, n * D,
                                     1e-5, 1e-5), 0);
    ck_assert_msg(memcmp(e_cut, e_inf, n * D * sizeof(float)) == 0,
                  "training and inference runs differ");
    /* a run sized for the prompts at hand: the same products, bit for bit */
    {
        struct clip_text_run small;

        clip_text_run_init(&small, &m, n, 13, false);
        ck_assert_int_eq(clip_text_forward(&small, &m, &ca, ids, n, ctx, e_inf), RL_OK);
        ck_assert_msg(memcmp(e_cut, e_inf, n * D * sizeof(float)) == 0,
                      "a run sized for 13 tokens differs");
        clip_text_run_free(&small);
        clip_text_run_init(&small, &m, n, 12, false);
        ck_assert_int_eq(clip_text_forward(&small, &m, &ca, ids, n, ctx, e_inf), RL_ERR_ARG);
        ck_assert_ptr_nonnull(strstr(rl_error_msg(), "holds 12"));
        clip_text_run_free(&small);
    }

    /* the adapter gradients agree too (the extra rows add zeros) */
    clip_adapters_zero_grad(&ca);
    ck_assert_int_eq(clip_text_forward(&cut, &m, &ca, ids, n, ctx, e_cut), RL_OK);
    clip_text_backward(&cut, &m, &ca, NULL, e_cut);          /* d = embeds: any vector */
    g_cut = test_copy(ca.grads, ca.n_params);
    clip_adapters_zero_grad(&ca);
    ck_assert_int_eq(clip_text_forward(&full, &m, &ca, ids, n, ctx, e_full), RL_OK);
    clip_text_backward(&full, &m, &ca, NULL, e_full);
    {
        /* summed over many rows, so compared against the gradient's scale */
        double gmax = 0.0;

        for (size_t i = 0; i < ca.n_params; i++)
            gmax = fmax(gmax, fabs((double)ca.grads[i]));
        if (getenv("CLIP_VERBOSE"))
            fprintf(stderr, "  text cut: adapter grads max |cut - uncut| %.3g, max |grad| %.3g\n",
                    test_max_abs_diff(g_cut, ca.grads, ca.n_params), gmax);
        ck_assert_uint_eq(tensor_compare("adapter grads, cut vs uncut", g_cut, ca.grads,
                                         ca.n_params, 1e-5 * gmax, 1e-4), 0);
    }

    free(g_cut);
    free(e_cut);
    free(e_full);
    free(e_inf);
    clip_text_run_free(&cut);
    clip_text_run_free(&full);
    clip_text_run_free(&infer);
    clip_adapters_free(&ca);
    clip_model_free(&m);
}
END_TEST

START_TEST(test_text_ids_checked)
{
    struct clip_model m;
    struct clip_text_run r;
    int32_t ids[3 * 7];
    float e[3 * 8];

    tiny_model(&m, 1);
    clip_text_run_init(&r, &m, 3, 0, false);
    tiny_ids(ids);
    ids[5] = 20;                                      /* vocab is 20 */
    ck_assert_int_eq(clip_text_forward(&r, &m, NULL, ids, 3, 7, e), RL_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(rl_error_msg(), "id 20"));
    tiny_ids(ids);
    ids[7 + 6] = 3;                                   /* row 1 loses its EOT */
    ck_assert_int_eq(clip_text_forward(&r, &m, NULL, ids, 3, 7, e), RL_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(rl_error_msg(), "row 1"));
    tiny_ids(ids);
    ck_assert_int_eq(clip_text_forward(&r, &m, NULL, ids, 4, 7, e), RL_ERR_ARG);
    ck_assert_int_eq(clip_text_forward(&r, &m, NULL, ids, 1, 8, e), RL_ERR_ARG);
    ck_assert_int_eq(clip_text_forward(&r, &m, NULL, ids, 3, 7, e), RL_OK);
    clip_text_run_free(&r);
    clip_model_free(&m);
}
END_TEST

/* old hub configs say eos_token_id 2: HF then pools at the largest id */
START_TEST(test_eot_rules)
{
    struct clip_text_config tc = { .vocab_size = 49408, .eos_token_id = 49407 };
    const int32_t a[6] = { 49406, 320, 49407, 49407, 49407, 49407 };
    const int32_t b[6] = { 49406, 320, 1125, 49407, 0, 0 };
    const int32_t c[4] = { 5, 6, 7, 8 };

    ck_assert_uint_eq(clip_text_eot(&tc, a, 6), 2);
    ck_assert_uint_eq(clip_text_eot(&tc, b, 6), 3);
    ck_assert_uint_eq(clip_text_eot(&tc, c, 4), SIZE_MAX);
    tc.eos_token_id = 2;
    ck_assert_uint_eq(clip_text_eot(&tc, a, 6), 2);
    ck_assert_uint_eq(clip_text_eot(&tc, b, 6), 3);
    ck_assert_uint_eq(clip_text_eot(&tc, c, 4), 3);
}
END_TEST

/* the vision tower: inference run == training run, bit for bit; and the
 * backward with adapters only above layer 0 equals a full backward */
START_TEST(test_vision_runs_agree)
{
    struct clip_model m;
    struct clip_vision_run tr, ir;
    struct rng rg;
    float *pixels, e1[4 * 8], e2[4 * 8];

    tiny_model(&m, 2);
    rng_init(&rg, 4);
    pixels = test_randn(&rg, 4 * 3 * 8 * 8, 1.0f);
    clip_vision_run_init(&tr, &m, 4, true);
    clip_vision_run_init(&ir, &m, 6, false);
    ck_assert_int_eq(clip_vision_forward(&tr, &m, NULL, pixels, 4, e1), RL_OK);
    ck_assert_int_eq(clip_vision_forward(&ir, &m, NULL, pixels, 4, e2), RL_OK);
    ck_assert_int_eq(memcmp(e1, e2, sizeof(e1)), 0);
    ck_assert_int_eq(clip_vision_forward(&tr, &m, NULL, pixels, 5, e1), RL_ERR_ARG);
    clip_vision_run_free(&tr);
    clip_vision_run_free(&ir);
    free(pixels);
    clip_model_free(&m);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* (d) loading and saving                                                    */

START_TEST(test_load_errors_name_the_tensor)
{
    struct clip_model m, m2;
    struct st_file *f;
    char dir[1024], path[1200];
    const char *victim = "text_model.encoder.layers.1.mlp.fc1.weight";
    int rc;

    load_fixture(&m);
    /* the fixture carries the legacy position_ids buffers, ignored */
    snprintf(path, sizeof(path), "%s/model.safetensors", fixture_dir());
    ck_assert_int_eq(st_open(&f, path), RL_OK);
    ck_assert_ptr_nonnull(st_find(f, "text_model.embeddings.position_ids"));
    ck_assert_ptr_nonnull(st_find(f, "vision_model.embeddings.position_ids"));
    st_close(f);

    ck_assert_ptr_nonnull(test_tmpdir_make(dir, sizeof(dir), "clip"));
    ck_assert_int_eq(clip_model_save(&m, dir, ST_F32), RL_OK);
    write_weights(&m, dir, victim, NULL);
    rc = clip_model_load(&m2, dir);
    ck_assert_int_eq(rc, RL_ERR_FORMAT);
    ck_assert_msg(strstr(rl_error_msg(), victim) != NULL, "message: %s", rl_error_msg());
    ck_assert_ptr_null(m2.params);

    write_weights(&m, dir, NULL, victim);
    rc = clip_model_load(&m2, dir);
    ck_assert_int_eq(rc, RL_ERR_FORMAT);
    ck_assert_msg(strstr(rl_error_msg(), victim) != NULL && strstr(rl_error_msg(), "shape"),
                  "message: %s", rl_error_msg());

    /* a config.json that does not match the weights */
    write_weights(&m, dir, NULL, NULL);
    snprintf(path, sizeof(path), "%s/config.json", dir);
    {
        struct clip_config c = m.cfg;

        c.projection_dim = 20;
        ck_assert_int_eq(clip_config_save(&c, path), RL_OK);
    }
    rc = clip_model_load(&m2, dir);
    ck_assert_int_eq(rc, RL_ERR_FORMAT);
    ck_assert_msg(strstr(rl_error_msg(), "visual_projection.weight") != NULL, "message: %s",
                  rl_error_msg());
    test_tmpdir_remove(dir);
    clip_model_free(&m);
}
END_TEST

START_TEST(test_save_load_round_trip)
{
    static const int dtypes[3] = { ST_F32, ST_F16, ST_BF16 };
    struct clip_model m, m2;
    char dir[1024];

    load_fixture(&m);
    for (int k = 0; k < 3; k++) {
        size_t bad = 0;

        ck_assert_ptr_nonnull(test_tmpdir_make(dir, sizeof(dir), "clip"));
        ck_assert_int_eq(clip_model_save(&m, dir, dtypes[k]), RL_OK);
        ck_assert_msg(clip_model_load(&m2, dir) == RL_OK, "%s", rl_error_msg());
        ck_assert_uint_eq(m2.n_params, m.n_params);
        ck_assert_int_eq(memcmp(&m2.cfg, &m.cfg, sizeof(m.cfg)), 0);
        for (size_t i = 0; i < m.n_params; i++) {
            float want = m.params[i];

            if (dtypes[k] == ST_F16)
                want = st_f16_to_f32(st_f32_to_f16(want));
            else if (dtypes[k] == ST_BF16)
                want = st_bf16_to_f32(st_f32_to_bf16(want));
            bad += m2.params[i] != want;
        }
        ck_assert_msg(bad == 0, "%s: %zu weights differ after the round trip",
                      st_dtype_name((enum st_dtype)dtypes[k]), bad);
        clip_model_free(&m2);
        test_tmpdir_remove(dir);
    }
    clip_model_free(&m);
}
END_TEST

/* config.json: defaults for missing keys, errors naming the key */
START_TEST(test_config_parse)
{
    static const struct { const char *json; const char *key; } bad[] = {
        { "{\"vision_config\": {\"patch_size\": 5, \"image_size\": 16}}", "patch_size" },
        { "{\"vision_config\": {\"hidden_size\": 0}}", "vision_config.hidden_size" },
        { "{\"text_config\": {\"hidden_act\": \"relu\"}}", "text_config.hidden_act" },
        { "{\"text_config\": {\"num_attention_heads\": 7}}", "text_config.num_attention_heads" },
        { "{\"text_config\": {\"vocab_size\": 1.5}}", "text_config.vocab_size" },
        { "{\"text_config\": {\"eos_token_id\": 70000}}", "eos_token_id" },
        { "{\"text_config\": {\"layer_norm_eps\": \"x\"}}", "text_config.layer_norm_eps" },
        { "{\"projection_dim\": -3}", "projection_dim" },
        { "{\"vision_config\": [1, 2]}", "vision_config" },
        { "[1]", "object" },
        { "{\"text_config\": ", "JSON" },
    };
    struct clip_config c, d;
    char *json;

    /* empty: HF's defaults (ViT-B/32) */
    ck_assert_int_eq(clip_config_parse(&c, "{}", 2, "t.json"), RL_OK);
    clip_config_defaults(&d);
    ck_assert_int_eq(memcmp(&c, &d, sizeof(c)), 0);
    ck_assert_uint_eq(clip_config_n_params(&c), 151277313);

    /* a legacy *_config_dict overrides, as in HF */
    {
        const char *j = "{\"text_config\": {\"hidden_size\": 64, \"num_attention_heads\": 4},"
                        " \"text_config_dict\": {\"hidden_size\": 128},"
                        " \"vision_config\": {\"hidden_act\": \"gelu\", \"patch_size\": 16},"
                        " \"projection_dim\": 256, \"logit_scale_init_value\": 2.0}";

        ck_assert_int_eq(clip_config_parse(&c, j, strlen(j), "t.json"), RL_OK);
        ck_assert_uint_eq(c.text.hidden, 128);
        ck_assert_uint_eq(c.text.heads, 4);
        ck_assert_int_eq(c.vision.act, BLOCK_ACT_GELU);
        ck_assert_uint_eq(c.vision.patch_size, 16);
        ck_assert_uint_eq(c.projection_dim, 256);
        ck_assert(c.logit_scale_init == 2.0f);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = clip_config_parse(&c, bad[i].json, strlen(bad[i].json), "t.json");

        ck_assert_msg(rc == RL_ERR_FORMAT, "'%s' accepted", bad[i].json);
        ck_assert_msg(strstr(rl_error_msg(), bad[i].key) && strstr(rl_error_msg(), "t.json"),
                      "'%s': message '%s' does not name '%s'", bad[i].json, rl_error_msg(),
                      bad[i].key);
    }

    /* written and read back: the same config, for every preset */
    for (const char *const *p = clip_preset_names(); *p; p++) {
        ck_assert_int_eq(clip_config_preset(&d, *p), RL_OK);
        json = clip_config_to_json(&d);
        ck_assert_int_eq(clip_config_parse(&c, json, strlen(json), *p), RL_OK);
        ck_assert_msg(memcmp(&c, &d, sizeof(c)) == 0, "%s: config changed on a round trip", *p);
        free(json);
    }
    ck_assert_int_eq(clip_config_preset(&d, "clip-vit-h-14"), RL_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(rl_error_msg(), "clip-tiny"));
}
END_TEST

START_TEST(test_presets)
{
    struct clip_config c;
    struct clip_model m;

    ck_assert_int_eq(clip_config_preset(&c, "clip-vit-b-32"), RL_OK);
    ck_assert_uint_eq(clip_config_n_params(&c), 151277313);      /* clip.md 2.2 */
    ck_assert_uint_eq(clip_vision_tokens(&c.vision), 50);
    ck_assert_int_eq(clip_config_preset(&c, "clip-vit-b-16"), RL_OK);
    ck_assert_uint_eq(clip_vision_tokens(&c.vision), 197);
    ck_assert_int_eq(clip_config_preset(&c, "clip-vit-l-14"), RL_OK);
    ck_assert_uint_eq(clip_vision_tokens(&c.vision), 257);
    ck_assert_uint_eq(clip_config_n_params(&c), 427616513);      /* HF clip-vit-large-patch14 */

    ck_assert_int_eq(clip_model_preset(&m, "clip-tiny", 1), RL_OK);
    ck_assert_uint_eq(m.n_params, clip_config_n_params(&m.cfg));
    ck_assert_uint_eq(m.n_tensors, 14 + 16 * 8);
    /* the table covers the block exactly, in order */
    for (size_t i = 0, off = 0; i < m.n_tensors; i++) {
        ck_assert_uint_eq(m.tensors[i].offset, off);
        off += m.tensors[i].numel;
        if (i + 1 == m.n_tensors)
            ck_assert_uint_eq(off, m.n_params);
    }
    ck_assert_ptr_eq(clip_model_tensor(&m, "vision_model.encoder.layers.2.mlp.fc1.weight"),
                     m.vlayer[2].fc1_w);
    ck_assert_ptr_eq(clip_model_tensor(&m, "text_model.encoder.layers.3.self_attn.k_proj.bias"),
                     m.tlayer[3].k_b);
    ck_assert(m.w.logit_scale[0] == m.cfg.logit_scale_init);
    ck_assert(m.vlayer[0].ln1_w[0] == 1.0f && m.vlayer[0].q_b[0] == 0.0f);
    clip_model_free(&m);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* (e) targets                                                               */

START_TEST(test_targets)
{
    static const struct { const char *spec; const char *needle; } bad[] = {
        { "q_prj", "q_proj, k_proj" },
        { "audio:q_proj", "vision, text or both" },
        { "vision:3-1:fc1", "layer range" },
        { "vision:x:fc1", "layer range" },
        { "vision:1:2:fc1", "MODULES" },
        { "", "modules" },
        { "vision:fc1,", "unknown module ''" },
    };
    struct clip_model m;
    struct clip_target t[8];
    struct clip_adapters ca;
    struct adapter_cfg acfg;
    size_t nt;
    char name[128];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_msg(clip_targets_parse(bad[i].spec, t, 8, &nt) == RL_ERR_ARG, "'%s' accepted",
                      bad[i].spec);
        ck_assert_msg(strstr(rl_error_msg(), bad[i].needle), "'%s': '%s' lacks '%s'",
                      bad[i].spec, rl_error_msg(), bad[i].needle);
    }
    tiny_model(&m, 1);
    adapter_cfg_defaults(&acfg, "lora", 2);

    /* layers outside a tower, listing what exists */
    ck_assert_int_eq(clip_targets_parse("text:1-4:fc1", t, 8, &nt), RL_OK);
    ck_assert_int_eq(clip_adapters_init(&ca, &m, &acfg, t, nt, 2, 2), RL_ERR_ARG);
    ck_assert_msg(strstr(rl_error_msg(), "text tower has layers 0-1") &&
                  strstr(rl_error_msg(), "vision (layers 0-1)") &&
                  strstr(rl_error_msg(), "out_proj"), "%s", rl_error_msg());
    ck_assert_ptr_null(ca.params);

    /* the default is both towers, every layer */
    ck_assert_int_eq(clip_targets_parse("q_proj,v_proj", t, 8, &nt), RL_OK);
    ck_assert_int_eq(clip_adapters_init(&ca, &m, &acfg, t, nt, 2, 2), RL_OK);
    ck_assert_uint_eq(ca.n_sites, 8);
    ck_assert_str_eq(clip_site_name(&ca.sites[0], name, sizeof(name)),
                     "vision_model.encoder.layers.0.self_attn.q_proj");
    ck_assert_str_eq(clip_site_name(&ca.sites[7], name, sizeof(name)),
                     "text_model.encoder.layers.1.self_attn.v_proj");
    ck_assert_uint_eq(ca.n_params, 4 * 2 * (16 + 16) + 4 * 2 * (12 + 12));
    ck_assert_ptr_eq(ca.text[1].lin[BLOCK_LIN_V], &ca.adapters[7]);
    ck_assert_ptr_null(ca.text[1].lin[BLOCK_LIN_K]);
    ck_assert_ptr_eq(ca.adapters[3].params, ca.params + ca.sites[3].offset);
    clip_adapters_free(&ca);

    /* overlapping targets adapt a linear once; mlp and attn groups */
    ck_assert_int_eq(clip_targets_parse("vision:mlp;vision:1:fc1;text:0:attn", t, 8, &nt), RL_OK);
    ck_assert_uint_eq(nt, 3);
    ck_assert_int_eq(clip_adapters_init(&ca, &m, &acfg, t, nt, 2, 2), RL_OK);
    ck_assert_uint_eq(ca.n_sites, 4 + 4);
    clip_adapters_free(&ca);

    /* a rank the method refuses names the layer */
    adapter_cfg_defaults(&acfg, "lora", 13);
    ck_assert_int_eq(clip_targets_parse("text:0:q_proj", t, 8, &nt), RL_OK);
    ck_assert_int_eq(clip_adapters_init(&ca, &m, &acfg, t, nt, 2, 2), RL_ERR_ARG);
    ck_assert_msg(strstr(rl_error_msg(), "text_model.encoder.layers.0.self_attn.q_proj"), "%s",
                  rl_error_msg());

    /* batches beyond what the adapters were sized for */
    adapter_cfg_defaults(&acfg, "lora", 2);
    ck_assert_int_eq(clip_targets_parse("vision:fc2", t, 8, &nt), RL_OK);
    ck_assert_int_eq(clip_adapters_init(&ca, &m, &acfg, t, nt, 2, 0), RL_OK);
    {
        struct clip_vision_run vr;
        struct rng rg;
        float *px, e[3 * 8];

        rng_init(&rg, 1);
        px = test_randn(&rg, 3 * 3 * 8 * 8, 1.0f);
        clip_vision_run_init(&vr, &m, 3, true);
        ck_assert_int_eq(clip_vision_forward(&vr, &m, &ca, px, 3, e), RL_ERR_ARG);
        ck_assert_int_eq(clip_vision_forward(&vr, &m, &ca, px, 2, e), RL_OK);
        clip_vision_run_free(&vr);
        free(px);
    }
    clip_adapters_free(&ca);
    clip_model_free(&m);
}
END_TEST

/* zero-shot class features: mean of normalised template embeddings, renormalised */
START_TEST(test_class_features)
{
    const float txt[2 * 2 * 3] = { 3, 0, 4,  0, 2, 0,      /* class 0 */
                                   1, 0, 0,  1, 0, 0 };    /* class 1 */
    float out[2 * 3];
    const double s = 1.0 / sqrt(0.36 + 1.0 + 0.64);

    clip_class_features(out, txt, 2, 2, 3);
    ck_assert_double_eq_tol(out[0], 0.6 * s, 1e-6);
    ck_assert_double_eq_tol(out[1], 1.0 * s, 1e-6);
    ck_assert_double_eq_tol(out[2], 0.8 * s, 1e-6);
    ck_assert_double_eq_tol(out[3], 1.0, 1e-6);
    ck_assert_double_eq_tol(out[4], 0.0, 1e-6);
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
    tcase_add_test(tc, test_gradcheck_lora);
    tcase_add_test(tc, test_gradcheck_randlora);
    tcase_add_test(tc, test_gradcheck_weights);
    tcase_add_test(tc, test_text_cut_identical);
    tcase_add_test(tc, test_text_ids_checked);
    tcase_add_test(tc, test_eot_rules);
    tcase_add_test(tc, test_vision_runs_agree);
    tcase_add_test(tc, test_load_errors_name_the_tensor);
    tcase_add_test(tc, test_save_load_round_trip);
    tcase_add_test(tc, test_config_parse);
    tcase_add_test(tc, test_presets);
    tcase_add_test(tc, test_targets);
    tcase_add_test(tc, test_class_features);
    suite_add_tcase(s, tc);
    return s;
}
