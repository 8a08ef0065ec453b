/*
 * check_llama_model.c: the Llama-family decoder as a whole (models/llama.h).
 *
 *   - PyTorch golden values (tests/ref/llama_golden.py) for the three
 *     fixture checkpoints (Llama layout with GQA, head_dim != C/NH, llama3
 *     rope scaling, untied head, F32; the same model stored as BF16; Qwen2
 *     layout with q/k/v biases, a tied head, sharded with an index): every
 *     token's log-probability, the loss, and the gradient of every weight;
 *   - finite differences through the whole decoder, of adapter parameters
 *     (LoRA on all seven linears) and of weights; the merged path's
 *     gradients against the factored path's;
 *   - a run that recomputes layers in the backward against one that stores
 *     them: the same loss and gradients bit for bit, with dropout;
 *   - greedy generation with a KV cache against the forward of the whole
 *     sequence without one (the same tokens, logits within 1e-5);
 *   - save and load round trips (one file, shards, BF16), config JSON round
 *     trips, the presets' shapes and counts, the target list.
 * Hostile inputs (config keys, shapes, tensors, index files):
 * check_llama_cmds.c, which runs them through the score command.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/rng.h"
#include "core/status.h"
#include "formats/safetensors.h"
#include "golden.h"
#include "models/llama.h"
#include "suites.h"
#include "test_util.h"

#define GOLDEN_HINT "/usr/bin/python3 tests/ref/llama_golden.py"

static void load_fixture(struct llama_model *m, const char *name)
{
    char dir[256];
    int rc;

    snprintf(dir, sizeof(dir), "%s", fixture_path(name));
    rc = llama_model_load(m, dir);
    ck_assert_msg(rc == RL_OK, "%s: %s", dir, rl_error_msg());
}

/* the golden batch of a fixture: ids padded with 0 to run, next-token
 * targets (-1 past a line) */
struct batch {
    size_t N, T;
    int32_t *ids, *tgt;
};

static void batch_from_golden(struct batch *b, const struct golden *g, const char *tag)
{
    char name[128];
    const struct golden_tensor *t;

    snprintf(name, sizeof(name), "%s.ids", tag);
    t = golden_find(g, name);
    ck_assert_msg(t && t->ndim == 2, "%s missing", name);
    b->N = t->dims[0];
    b->T = t->dims[1];
    b->ids = malloc(b->N * b->T * sizeof(int32_t));
    b->tgt = malloc(b->N * b->T * sizeof(int32_t));
    for (size_t i = 0; i < b->N; i++)
        for (size_t j = 0; j < b->T; j++) {
            const float v = t->data[i * b->T + j];
            const float nx = j + 1 < b->T ? t->data[i * b->T + j + 1] : -1.0f;

            b->ids[i * b->T + j] = v < 0 ? 0 : (int32_t)v;
            b->tgt[i * b->T + j] = (int32_t)nx;
        }
}

static void batch_free(struct batch *b)
{
    free(b->ids);
    free(b->tgt);
}

/* _i: 0 llama (F32), 1 llama_bf16, 2 qwen2 (sharded, biases, tied) */
START_TEST(test_golden_logprobs_loss_grads)
{
    static const char *const tags[] = { "llama", "llama_bf16", "qwen2" };
    const char *tag = tags[_i];
    char dir[64], name[256];
    struct golden g;
    struct llama_model m;
    struct llama_run r;
    struct llama_grads gr;
    struct batch b;
    float *lp;
    double loss;

    ck_assert_msg(golden_open(&g, fixture_path("llama/golden.bin"), GOLDEN_HINT) == RL_OK,
                  "%s", rl_error_msg());
    snprintf(dir, sizeof(dir), "llama/%s", tag);
    load_fixture(&m, dir);
    batch_from_golden(&b, &g, tag);
    llama_run_init(&r, &m, b.N, b.T, true);
    ck_assert_int_eq(llama_forward(&r, &m, NULL, b.ids, b.N, b.T), RL_OK);

    /* log-probabilities: entry (i, t) of the golden [N, T-1] */
    lp = calloc(b.N * b.T, sizeof(float));
    llama_token_logprobs(&r, &m, b.tgt, lp);
    snprintf(name, sizeof(name), "%s.token_logprob", tag);
    const float *want = golden_get(&g, name, 2, (size_t[]){ b.N, b.T - 1 });
    ck_assert_msg(want != NULL, "%s", rl_error_msg());
    for (size_t i = 0; i < b.N; i++)
        ck_assert_uint_eq(tensor_compare(name, lp + i * b.T, want + i * (b.T - 1), b.T - 1,
                                         1e-6, 1e-5), 0);

    /* the loss and every weight's gradient */
    llama_grads_init(&gr, &m);
    loss = llama_lm_loss(&r, &m, b.tgt, true, &gr);
    llama_backward(&r, &m, NULL, &gr);
    snprintf(name, sizeof(name), "%s.loss", tag);
    ck_assert_double_eq_tol(loss, golden_get(&g, name, 0, NULL)[0], 1e-5 * fabs(loss));
    for (size_t k = 0; k < m.n_tensors; k++) {
        const struct llama_tensor *t = &m.tensors[k];
        const struct golden_tensor *gt;

        snprintf(name, sizeof(name), "%s.grad.%s", tag, t->name);
        gt = golden_find(&g, name);
        ck_assert_msg(gt && gt->n == t->numel, "%s missing or misshaped", name);
        ck_assert_uint_eq(tensor_compare(name, gr.buf + t->offset, gt->data, t->numel, 1e-5,
                                         1e-3), 0);
    }
    llama_grads_free(&gr);
    llama_run_free(&r);
    llama_model_free(&m);
    batch_free(&b);
    free(lp);
    golden_close(&g);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* finite differences through the decoder                                    */

/* a small model with every feature: GQA, head_dim != C/NH, biases on q, k,
 * v, o and the MLP, untied head */
static void small_model(struct llama_model *m, bool qwen)
{
    struct llama_config c;

    llama_config_defaults(&c, qwen ? LLAMA_ARCH_QWEN2 : LLAMA_ARCH_LLAMA);
    c.hidden = 12;
    c.intermediate = 20;
    c.layers = 2;
    c.heads = 4;
    c.kv_heads = 2;
    c.head_dim = 4;
    c.vocab_size = 11;
    c.max_position = 16;
    c.rms_norm_eps = 1e-5f;
    c.rope_theta = 100.0;
    c.qkv_bias = true;
    c.o_bias = !qwen;
    c.mlp_bias = !qwen;
    c.tie_word_embeddings = qwen;
    c.initializer_range = 0.4f;
    ck_assert_int_eq(llama_model_init(m, &c), RL_OK);
    llama_model_init_random(m, 5);
    /* biases and norms away from their init values, so they matter */
    for (size_t k = 0; k < m->n_tensors; k++)
        if (m->tensors[k].ndim == 1) {
            struct rng r;

            rng_init(&r, 900 + k);
            for (size_t i = 0; i < m->tensors[k].numel; i++)
                m->params[m->tensors[k].offset + i] += 0.3f * rng_normal(&r);
        }
}

struct fd_ctx {
    struct llama_model *m;
    struct llama_adapters *la;
    struct llama_run *r;
    const int32_t *ids, *tgt;
    size_t B, T;
};

static double fd_loss(void *p)
{
    struct fd_ctx *c = p;

    ck_assert_int_eq(llama_forward(c->r, c->m, c->la, c->ids, c->B, c->T), RL_OK);
    return llama_lm_loss(c->r, c->m, c->tgt, false, NULL);
}

static const int32_t fd_ids[2 * 6] = { 1, 5, 9, 2, 7, 3, 10, 0, 4, 4, 8, 6 };
static const int32_t fd_tgt[2 * 6] = { 5, 9, 2, 7, 3, -1, 0, 4, 4, 8, 6, 1 };

/* _i: 0 Llama layout, 1 Qwen2 layout: every weight's gradient */
START_TEST(test_fd_weights)
{
    struct llama_model m;
    struct llama_run r;
    struct llama_grads g;
    struct fd_ctx c = { .m = &m, .ids = fd_ids, .tgt = fd_tgt, .B = 2, .T = 6 };

    small_model(&m, _i == 1);
    llama_run_init(&r, &m, 2, 6, true);
    c.r = &r;
    llama_grads_init(&g, &m);
    fd_loss(&c);
    llama_lm_loss(&r, &m, fd_tgt, true, &g);
    llama_backward(&r, &m, NULL, &g);
    /* nonlinear in every weight: eps 1e-3 (truncation O(eps^2)); the loss sums
     * float log-probabilities in double, noise ~1e-7 / eps */
    ck_assert_uint_eq(gradcheck("weights", m.params, g.buf, m.n_params, fd_loss, &c, 1e-3f,
                                1e-3, 2e-2, 600), 0);
    ck_assert(dot_double(g.buf, g.buf, m.n_params) > 1e-4);
    llama_grads_free(&g);
    llama_run_free(&r);
    llama_model_free(&m);
}
END_TEST

static void random_adapter_params(struct llama_adapters *la, uint64_t seed)
{
    struct rng r;

    rng_init(&r, seed);
    for (size_t i = 0; i < la->n_params; i++)
        la->params[i] = 0.2f * rng_normal(&r);
}

static void adapters_on(struct llama_adapters *la, const struct llama_model *m,
                        const char *method, const char *targets, size_t r)
{
    struct adapter_cfg cfg;
    struct llama_target t[8];
    size_t nt;

    adapter_cfg_defaults(&cfg, method, r);
    ck_assert_int_eq(llama_targets_parse(targets, t, 8, &nt), RL_OK);
    ck_assert_msg(llama_adapters_init(la, m, &cfg, t, nt, 64) == RL_OK, "%s", rl_error_msg());
}

/* LoRA on all seven linears of both layers: every adapter gradient */
START_TEST(test_fd_adapters)
{
    struct llama_model m;
    struct llama_run r;
    struct llama_adapters la;
    struct fd_ctx c = { .m = &m, .la = &la, .ids = fd_ids, .tgt = fd_tgt, .B = 2, .T = 6 };

    small_model(&m, false);
    adapters_on(&la, &m, "lora", "all", 2);
    ck_assert_uint_eq(la.n_sites, 14);
    random_adapter_params(&la, 3);
    llama_run_init(&r, &m, 2, 6, true);
    c.r = &r;
    llama_adapters_zero_grad(&la);
    fd_loss(&c);
    llama_lm_loss(&r, &m, fd_tgt, true, NULL);
    llama_backward(&r, &m, &la, NULL);
    ck_assert_uint_eq(gradcheck("adapters", la.params, la.grads, la.n_params, fd_loss, &c, 1e-3f,
                                1e-3, 2e-2, 800), 0);
    ck_assert(dot_double(la.grads, la.grads, la.n_params) > 1e-4);
    llama_adapters_free(&la);
    llama_run_free(&r);
    llama_model_free(&m);
}
END_TEST

/* the merged path (W + dW in place, gradients projected) gives the
 * factored path's loss and adapter gradients; unmerging restores W.
 * _i: 0 LoRA, 1 RandLoRA, 2 VeRA; the paper's targets (q, k, v, up, down) */
START_TEST(test_merged_equals_factored)
{
    static const char *const methods[] = { "lora", "randlora", "vera" };
    struct llama_model m;
    struct llama_run r;
    struct llama_adapters la;
    float *w0, *gf;
    double lf, lm;

    small_model(&m, true);
    adapters_on(&la, &m, methods[_i], "q_proj,k_proj,v_proj,up_proj,down_proj", 2);
    random_adapter_params(&la, 4);
    llama_run_init(&r, &m, 2, 6, true);
    w0 = test_copy(m.params, m.n_params);

    llama_adapters_zero_grad(&la);
    ck_assert_int_eq(llama_forward(&r, &m, &la, fd_ids, 2, 6), RL_OK);
    lf = llama_lm_loss(&r, &m, fd_tgt, true, NULL);
    llama_backward(&r, &m, &la, NULL);
    gf = test_copy(la.grads, la.n_params);

    llama_adapters_merge(&la, &m);
    ck_assert(test_max_abs_diff(m.params, w0, m.n_params) > 1e-4);
    llama_adapters_zero_grad(&la);
    ck_assert_int_eq(llama_forward(&r, &m, &la, fd_ids, 2, 6), RL_OK);
    lm = llama_lm_loss(&r, &m, fd_tgt, true, NULL);
    llama_backward(&r, &m, &la, NULL);
    ck_assert_double_eq_tol(lf, lm, 1e-5);
    ck_assert_uint_eq(tensor_compare("merged grads", la.grads, gf, la.n_params, 1e-5, 1e-3), 0);
    llama_adapters_unmerge(&la, &m);
    ck_assert_uint_eq(tensor_compare("unmerged", m.params, w0, m.n_params, 1e-6, 1e-5), 0);
    free(w0);
    free(gf);
    llama_adapters_free(&la);
    llama_run_free(&r);
    llama_model_free(&m);
}
END_TEST

/* a run that recomputes each layer's forward in the backward gives the
 * storing run's loss and gradients bit for bit: LoRA with branch dropout
 * on every linear (the masks must repeat) over two steps, and every weight
 * trained (_i 1) */
START_TEST(test_recompute_equals_storing)
{
    struct llama_model m;
    struct llama_adapters la[2];
    struct llama_run r[2];
    struct llama_grads g[2];
    struct adapter_cfg cfg;
    struct llama_target t[1];
    size_t nt;
    double loss[2];

    small_model(&m, false);
    adapter_cfg_defaults(&cfg, "lora", 2);
    cfg.dropout = 0.25f;
    ck_assert_int_eq(llama_targets_parse("all", t, 1, &nt), RL_OK);
    for (int k = 0; k < 2; k++) {
        ck_assert_int_eq(llama_adapters_init(&la[k], &m, &cfg, t, nt, 64), RL_OK);
        random_adapter_params(&la[k], 8);
        if (k)
            llama_run_init_recompute(&r[k], &m, 2, 6);
        else
            llama_run_init(&r[k], &m, 2, 6, true);
        llama_grads_init(&g[k], &m);
    }
    ck_assert_uint_lt(r[1].n_floats, r[0].n_floats);
    for (int step = 0; step < 2; step++) {
        for (int k = 0; k < 2; k++) {
            llama_adapters_zero_grad(&la[k]);
            llama_grads_zero(&g[k], &m);
            ck_assert_int_eq(llama_forward(&r[k], &m, &la[k], fd_ids, 2, 6), RL_OK);
            loss[k] = llama_lm_loss(&r[k], &m, fd_tgt, true, _i ? &g[k] : NULL);
            llama_backward(&r[k], &m, &la[k], _i ? &g[k] : NULL);
        }
        ck_assert(loss[0] == loss[1]);
        ck_assert_int_eq(memcmp(la[0].grads, la[1].grads, la[0].n_params * sizeof(float)), 0);
        ck_assert_int_eq(memcmp(g[0].buf, g[1].buf, m.n_params * sizeof(float)), 0);
        ck_assert(dot_double(la[0].grads, la[0].grads, la[0].n_params) > 1e-6);
    }
    for (int k = 0; k < 2; k++) {
        llama_grads_free(&g[k]);
        llama_run_free(&r[k]);
        llama_adapters_free(&la[k]);
    }
    llama_model_free(&m);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* generation                                                                */

/* greedy generation with the cache equals argmax of the whole sequence's
 * forward at every step, with adapters and without */
START_TEST(test_generate_matches_forward)
{
    const int32_t prompt[5] = { 256, 72, 105, 33, 10 };
    const size_t n_new = 12;
    struct llama_model m;
    struct llama_adapters la;
    struct llama_run r;
    struct llama_cache kc;
    int32_t out[12], seq[5 + 12];
    float *logits;
    long made;

    ck_assert_int_eq(llama_model_preset(&m, "llama-tiny", 1), RL_OK);
    m.cfg.n_eos = 0;                    /* run all 12 steps */
    if (_i) {
        adapters_on(&la, &m, "lora", "attn;0-1:mlp", 4);
        random_adapter_params(&la, 9);
    }
    made = llama_generate_greedy(&m, _i ? &la : NULL, prompt, 5, n_new, out);
    ck_assert_int_eq(made, (long)n_new);
    memcpy(seq, prompt, sizeof(prompt));
    memcpy(seq + 5, out, sizeof(out));
    llama_run_init(&r, &m, 1, 5 + n_new, false);
    logits = malloc(m.cfg.vocab_size * sizeof(float));
    llama_cache_init(&kc, &m, 1, 5 + n_new, 5);
    ck_assert_int_eq(llama_cache_step(&kc, &m, _i ? &la : NULL, prompt, NULL, 5), RL_OK);
    for (size_t k = 0; k < n_new; k++) {
        const size_t T = 5 + k;
        size_t best = 0;

        ck_assert_int_eq(llama_forward(&r, &m, _i ? &la : NULL, seq, 1, T), RL_OK);
        llama_logits(&r, &m, T - 1, 1, logits);
        for (size_t v = 1; v < m.cfg.vocab_size; v++)
            if (logits[v] > logits[best])
                best = v;
        ck_assert_int_eq((int)best, out[k]);
        ck_assert_uint_eq(tensor_compare("cached logits", kc.logits, logits, m.cfg.vocab_size,
                                         1e-5, 1e-4), 0);
        if (k + 1 < n_new)
            ck_assert_int_eq(llama_cache_step(&kc, &m, _i ? &la : NULL, &out[k], NULL, 1), RL_OK);
    }
    /* the cache refuses to run past its capacity */
    ck_assert_int_eq(llama_cache_step(&kc, &m, NULL, out, NULL, 2), RL_ERR_ARG);
    llama_cache_free(&kc);
    free(logits);
    llama_run_free(&r);
    if (_i)
        llama_adapters_free(&la);
    llama_model_free(&m);
}
END_TEST

/* several prompts of different lengths at once: each sequence's tokens
 * equal its own greedy generation; a sequence that meets an eos stops
 * while the others go on; the cache refuses interleaved rows */
START_TEST(test_generate_batch_matches_single)
{
    static const int32_t p0[] = { 256, 72, 105 }, p1[] = { 256, 1, 2, 3, 4, 5, 6 },
                         p2[] = { 256 }, p3[] = { 256, 200, 100, 50, 25 };
    const int32_t *const prompts[4] = { p0, p1, p2, p3 };
    const size_t lens[4] = { 3, 7, 1, 5 }, max_new = 10;
    struct llama_model m;
    struct llama_adapters la;
    int32_t out[4 * 10], one[10];
    size_t n_out[4];

    ck_assert_int_eq(llama_model_preset(&m, "llama-tiny", 4), RL_OK);
    adapters_on(&la, &m, "lora", "q_proj,v_proj,down_proj", 2);
    random_adapter_params(&la, 5);
    m.cfg.n_eos = 0;
    for (int pass = 0; pass < 2; pass++) {
        ck_assert_int_eq(llama_generate_greedy_batch(&m, &la, prompts, lens, 4, max_new, out,
                                                     n_out), RL_OK);
        for (size_t i = 0; i < 4; i++) {
            long k = llama_generate_greedy(&m, &la, prompts[i], lens[i], max_new, one);

            ck_assert_int_eq(k, (long)n_out[i]);
            for (long t = 0; t < k; t++)
                ck_assert_int_eq(out[i * max_new + (size_t)t], one[t]);
        }
        /* second pass: sequence 1's third token as an eos ends it there */
        if (pass == 0)
            ck_assert_uint_eq(n_out[1], max_new);
        m.cfg.n_eos = 1;
        m.cfg.eos_token_id[0] = out[1 * max_new + 2];
    }
    ck_assert_uint_eq(n_out[1], 3);
    {
        struct llama_cache kc;
        const int32_t ids[3] = { 1, 2, 3 };
        const size_t seq[3] = { 0, 1, 0 };

        llama_cache_init(&kc, &m, 2, 8, 4);
        ck_assert_int_eq(llama_cache_step(&kc, &m, NULL, ids, seq, 3), RL_ERR_ARG);
        ck_assert(strstr(rl_error_msg(), "not consecutive") != NULL);
        llama_cache_free(&kc);
    }
    llama_adapters_free(&la);
    llama_model_free(&m);
}
END_TEST

/* an eos id stops generation after it is emitted */
START_TEST(test_generate_stops_at_eos)
{
    const int32_t prompt[3] = { 256, 1, 2 };
    struct llama_model m;
    int32_t out[8], first;

    ck_assert_int_eq(llama_model_preset(&m, "llama-tiny", 2), RL_OK);
    m.cfg.n_eos = 0;
    ck_assert_int_eq(llama_generate_greedy(&m, NULL, prompt, 3, 8, out), 8);
    first = out[0];
    m.cfg.n_eos = 1;
    m.cfg.eos_token_id[0] = first;
    ck_assert_int_eq(llama_generate_greedy(&m, NULL, prompt, 3, 8, out), 1);
    ck_assert_int_eq(out[0], first);
    llama_model_free(&m);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* files, configs, presets                                                   */

START_TEST(test_save_load_round_trip)
{
    char dir[256];
    struct llama_model a, b;
    const size_t shards = _i == 1 ? 3 : 1;
    const int dtype = _i == 2 ? ST_BF16 : _i == 3 ? ST_F16 : ST_F32;

    ck_assert_ptr_nonnull(test_tmpdir_make(dir, sizeof(dir), "llama_save"));
    small_model(&a, _i == 1);
    ck_assert_msg(llama_model_save(&a, test_path(dir, "m"), dtype, shards) == RL_OK, "%s",
                  rl_error_msg());
    ck_assert_msg(llama_model_load(&b, test_path(dir, "m")) == RL_OK, "%s", rl_error_msg());
    ck_assert_uint_eq(b.n_params, a.n_params);
    ck_assert_uint_eq(b.n_tensors, a.n_tensors);
    ck_assert_int_eq(memcmp(&a.cfg, &b.cfg, sizeof(a.cfg)), 0);
    if (dtype == ST_F32) {
        ck_assert_int_eq(memcmp(a.params, b.params, a.n_params * sizeof(float)), 0);
    } else {
        for (size_t i = 0; i < a.n_params; i++)
            ck_assert_float_eq(b.params[i], dtype == ST_BF16
                                                ? st_bf16_to_f32(st_f32_to_bf16(a.params[i]))
                                                : st_f16_to_f32(st_f32_to_f16(a.params[i])));
    }
    if (shards > 1)
        ck_assert_int_eq(access(test_path(dir, "m/model-00003-of-00003.safetensors"), 0), 0);
    llama_model_free(&a);
    llama_model_free(&b);
    test_tmpdir_remove(dir);
}
END_TEST

/* each fixture's config.json parses, prints back and parses to the same */
START_TEST(test_config_json_round_trip)
{
    static const char *const dirs[] = { "llama/llama/config.json", "llama/qwen2/config.json" };
    struct llama_config a, b;
    char *json;

    ck_assert_msg(llama_config_load(&a, fixture_path(dirs[_i])) == RL_OK, "%s", rl_error_msg());
    json = llama_config_to_json(&a);
    ck_assert_msg(llama_config_parse(&b, json, strlen(json), "back") == RL_OK, "%s",
                  rl_error_msg());
    ck_assert_int_eq(memcmp(&a, &b, sizeof(a)), 0);
    free(json);
    if (_i == 0) {
        ck_assert_int_eq(a.rope_type, LLAMA_ROPE_LLAMA3);
        ck_assert_uint_eq(a.head_dim, 12);
        ck_assert_uint_eq(a.kv_heads, 2);
        ck_assert_uint_eq(a.n_eos, 2);
        ck_assert(!a.tie_word_embeddings && !a.qkv_bias);
    } else {
        ck_assert(a.tie_word_embeddings && a.qkv_bias && !a.o_bias);
        ck_assert_uint_eq(a.head_dim, 6);
    }
}
END_TEST

START_TEST(test_presets)
{
    struct llama_config c;
    struct llama_model m;

    ck_assert_int_eq(llama_config_preset(&c, "qwen2-0.5b"), RL_OK);
    ck_assert_uint_eq(llama_config_n_params(&c), 494032768u);   /* Qwen2-0.5B's count */
    ck_assert_int_eq(llama_config_preset(&c, "llama-tiny"), RL_OK);
    ck_assert_int_eq(llama_model_preset(&m, "llama-tiny", 0), RL_OK);
    ck_assert_uint_eq(m.n_params, llama_config_n_params(&c));
    ck_assert_uint_eq(m.n_params, 771456u);
    /* HF's init: linears N(0, 0.02), norms 1 */
    ck_assert_float_eq(m.norm[0], 1.0f);
    ck_assert_double_lt(fabs(sqrt(dot_double(m.embed, m.embed, 258 * 128) / (258 * 128)) - 0.02),
                        0.001);
    ck_assert_ptr_eq(m.lm_head, m.embed);
    llama_model_free(&m);
    ck_assert_int_eq(llama_config_preset(&c, "clip-tiny"), RL_ERR_ARG);
    ck_assert(strstr(rl_error_msg(), "llama-tiny") != NULL);
    ck_assert(llama_is_preset("llama-tiny") && !llama_is_preset("clip-tiny"));
}
END_TEST

START_TEST(test_targets)
{
    struct llama_target t[4];
    size_t n;

    ck_assert_int_eq(llama_targets_parse("q_proj,k_proj,v_proj,up_proj,down_proj", t, 4, &n),
                     RL_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_uint_eq(t[0].modules, 0x67u);
    ck_assert_int_eq(llama_targets_parse("1-2:attn; 0:mlp", t, 4, &n), RL_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_uint_eq(t[0].lo, 1);
    ck_assert_uint_eq(t[0].hi, 2);
    ck_assert_uint_eq(t[0].modules, 0x0fu);
    ck_assert_uint_eq(t[1].modules, 0x70u);
    ck_assert_int_eq(llama_targets_parse("fc1", t, 4, &n), RL_ERR_ARG);
    ck_assert(strstr(rl_error_msg(), "gate_proj") != NULL);
    ck_assert_int_eq(llama_targets_parse("3-1:q_proj", t, 4, &n), RL_ERR_ARG);
    ck_assert_int_eq(llama_targets_parse("", t, 4, &n), RL_ERR_ARG);
    {
        struct llama_model m;
        struct llama_adapters la;
        struct adapter_cfg cfg;

        small_model(&m, false);
        adapter_cfg_defaults(&cfg, "lora", 2);
        ck_assert_int_eq(llama_targets_parse("5:q_proj", t, 4, &n), RL_OK);
        ck_assert_int_eq(llama_adapters_init(&la, &m, &cfg, t, n, 8), RL_ERR_ARG);
        ck_assert(strstr(rl_error_msg(), "layers 0-1") != NULL);
        llama_model_free(&m);
    }
}
END_TEST

Suite *suite_llama_model(void)
{
    Suite *s = suite_create("llama_model");
    TCase *tc = tcase_create("model");

    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_golden_logprobs_loss_grads, 0, 3);
    tcase_add_loop_test(tc, test_fd_weights, 0, 2);
    tcase_add_test(tc, test_fd_adapters);
    tcase_add_loop_test(tc, test_merged_equals_factored, 0, 3);
    tcase_add_loop_test(tc, test_recompute_equals_storing, 0, 2);
    tcase_add_loop_test(tc, test_generate_matches_forward, 0, 2);
    tcase_add_test(tc, test_generate_stops_at_eos);
    tcase_add_test(tc, test_generate_batch_matches_single);
    tcase_add_loop_test(tc, test_save_load_round_trip, 0, 4);
    tcase_add_loop_test(tc, test_config_json_round_trip, 0, 2);
    tcase_add_test(tc, test_presets);
    tcase_add_test(tc, test_targets);
    suite_add_tcase(s, tc);
    return s;
}
