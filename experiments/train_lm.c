/*
 * train_lm.c: a run whose model is a Llama-family decoder (lm_model.h) and
 * whose data is in the commonsense format (data.dataset commonsense:DIR):
 * the runner's third kind of run, beside CLIP's prompt classifier and the
 * linear head (train_head.c). runner.c keeps the loop, the results file,
 * the schedule, checkpoints and resume; this file owns the model, the
 * tokenizer, the items, the step and the evaluation by generation.
 *
 * Data: DIR/train.json (the training items; data.fractions samples them,
 * data.val holds N items or a fraction out of them, disjoint, both drawn
 * with data.sample_seed), and for the test set every DIR/<task>/test.json
 * of the eight tasks of the paper and the procedural ones that is there
 * (data.eval_limit: the first N items of each). Each training item is
 * tokenized once (cs_tokenize_train: the prompt template, data.cutoff ids,
 * the model's first eos appended; data.lm_loss response: the loss on the
 * response tokens only, all: on every token as finetune.py's
 * train_on_inputs=True). Micro-batches: train.batch items of epoch e's
 * permutation (the run seed's stream e), right-padded to a multiple of 8.
 * The order is a function of the step, so a resumed run draws the same
 * batches. Each micro-batch's mean token loss, divided by train.accumulate
 * (Hugging Face Trainer's accumulation); AdamW on the adapters' block.
 *
 * Evaluation: greedy generation with the KV cache from each item's
 * evaluation prompt (cs_eval_prompt), data.max_new_tokens at most,
 * stopping at an eos of the config; the prompt and the generation decoded
 * (special tokens skipped) and the answer extracted as
 * commonsense_evaluate.py does for the task (validation items: the kind
 * their answer names). Accuracy: the test set's is the mean of the tasks'
 * accuracies (the paper's average), the validation split's the fraction of
 * its items answered right. Loss: the mean token loss of the items with
 * their answers (teacher forcing, the run's loss span). The test set's
 * per-task counts and generations go into the results file (/lm).
 * The paper's evaluation used beam search (num_beams 4); this is greedy.
 *
 * One process (data-parallel runs keep the prompt classifier).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/alloc.h"
#include "core/dist.h"
#include "core/rng.h"
#include "core/status.h"
#include "datasets/commonsense.h"
#include "datasets/commonsense_synth.h"
#include "experiments/lm_model.h"
#include "experiments/runner_impl.h"
#include "models/bpe_tokenizer.h"
#include "models/llama.h"

#define LM_PAD_MULTIPLE 8
#define LM_MAX_TASKS    (CS_N_TASKS + CS_SYNTH_N_TASKS)

/* the items of one evaluation set, tokenized */
struct lm_set {
    const char *name;            /* the task (static), or "val"               */
    struct cs_set items;         /* owned (val: a copy of the val items)      */
    enum cs_answer_kind *kind;   /* (n) each item's extraction                */
    struct cs_example *ex;       /* (n) with their answers, for the loss      */
    int32_t **prompt;            /* (n) the evaluation prompts' ids           */
    size_t *prompt_len;
    /* the last evaluation */
    size_t correct;
    char **gen;                  /* (n) the generated text                    */
};

struct run_lm {
    struct llama_model m;
    struct llama_adapters la;
    bool has_la;
    struct llama_run run;
    struct bpe_tokenizer *tok;
    int32_t eos;
    struct cs_set train;         /* every item of train.json                  */
    struct cs_example *ex;       /* (train.n) tokenized                       */
    size_t *perm;                /* (n_train) an epoch's order                */
    long perm_epoch;
    struct lm_set val;
    struct lm_set tasks[LM_MAX_TASKS];
    size_t n_tasks;
    int32_t *targets;            /* (B * T) next-token targets               */
    float *ckpt;
};

static void lm_set_free(struct lm_set *e)
{
    for (size_t i = 0; i < e->items.n; i++) {
        if (e->prompt)
            free(e->prompt[i]);
        if (e->gen)
            free(e->gen[i]);
    }
    if (e->ex)
        cs_examples_free(e->ex, e->items.n);
    free(e->prompt);
    free(e->prompt_len);
    free(e->gen);
    free(e->kind);
    cs_free(&e->items);
    memset(e, 0, sizeof(*e));
}

void run_lm_free(struct run_state *s)
{
    struct run_lm *L = s->lm;

    if (!L)
        return;
    llama_run_free(&L->run);
    if (L->has_la)
        llama_adapters_free(&L->la);
    llama_model_free(&L->m);
    bpe_tokenizer_free(L->tok);
    if (L->ex)
        cs_examples_free(L->ex, L->train.n);
    cs_free(&L->train);
    lm_set_free(&L->val);
    for (size_t t = 0; t < L->n_tasks; t++)
        lm_set_free(&L->tasks[t]);
    free(L->perm);
    free(L->targets);
    free(L->ckpt);
    free(L);
    s->lm = NULL;
}

/* "commonsense:DIR[:train|:test]" -> DIR (allocated) */
static char *spec_dir(const char *spec)
{
    const char *d = spec + strlen("commonsense:");
    size_t n = strlen(d);

    if (n > 6 && !strcmp(d + n - 6, ":train"))
        n -= 6;
    else if (n > 5 && !strcmp(d + n - 5, ":test"))
        n -= 5;
    char *out = xmalloc(n + 1);
    memcpy(out, d, n);
    out[n] = 0;
    return out;
}

static bool file_exists(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* the extraction kind an answer names (validation items of train.json) */
static int answer_kind(const char *answer, enum cs_answer_kind *k)
{
    static const struct { const char *prefix; enum cs_answer_kind kind; } map[] = {
        { "true", CS_KIND_TRUE_FALSE }, { "false", CS_KIND_TRUE_FALSE },
        { "solution", CS_KIND_SOLUTION }, { "answer", CS_KIND_ANSWER },
        { "ending", CS_KIND_ENDING }, { "option", CS_KIND_OPTION },
    };

    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (!strncmp(answer, map[i].prefix, strlen(map[i].prefix))) {
            *k = map[i].kind;
            return RL_OK;
        }
    return RL_ERR_FORMAT;
}

/* tokenized prompts and examples of an evaluation set */
static int lm_set_prepare(struct run_lm *L, struct lm_set *e, const struct run_plan *p)
{
    const size_t n = e->items.n, room = L->m.cfg.max_position;
    int rc;

    if ((rc = cs_tokenize_set(L->tok, &e->items, L->eos, p->lm.cutoff,
                              p->lm.loss == EXP_LM_LOSS_ALL, &e->ex)) != RL_OK)
        return rl_error_prefix(rc, "%s", e->name);
    e->prompt = xcalloc(n ? n : 1, sizeof(*e->prompt));
    e->prompt_len = xcalloc(n ? n : 1, sizeof(*e->prompt_len));
    e->gen = xcalloc(n ? n : 1, sizeof(*e->gen));
    for (size_t i = 0; i < n; i++) {
        char *text = cs_eval_prompt(&e->items.items[i]);

        rc = bpe_encode(L->tok, text, strlen(text), true, &e->prompt[i], &e->prompt_len[i]);
        free(text);
        if (rc != RL_OK)
            return rl_error_prefix(rc, "%s: item %zu", e->name, i);
        if (e->prompt_len[i] == 0 || e->prompt_len[i] + p->lm.max_new_tokens > room)
            return rl_error_set(RL_ERR_ARG, "%s: item %zu: a prompt of %zu tokens and "
                                "data.max_new_tokens = %zu do not fit the model's %zu positions",
                                e->name, i, e->prompt_len[i], p->lm.max_new_tokens, room);
    }
    return RL_OK;
}

/* the test tasks of DIR present on disk, in the paper's order then the
 * procedural ones */
static int load_tasks(struct run_lm *L, const struct run_plan *p)
{
    char *dir = spec_dir(p->eval);
    int rc = RL_OK;

    for (size_t i = 0; i < LM_MAX_TASKS && rc == RL_OK; i++) {
        const char *name = i < CS_N_TASKS ? CS_TASKS[i] : CS_SYNTH_TASKS[i - CS_N_TASKS];
        size_t n = strlen(dir) + strlen(name) + 16;
        char *path = xmalloc(n);
        struct lm_set *e = &L->tasks[L->n_tasks];
        enum cs_answer_kind kind;

        snprintf(path, n, "%s/%s/test.json", dir, name);
        if (file_exists(path)) {
            e->name = name;
            rc = cs_task_kind(name, &kind);
            if (rc == RL_OK)
                rc = cs_load(&e->items, path);
            if (rc == RL_OK && p->eval_limit && p->eval_limit < e->items.n) {
                for (size_t k = p->eval_limit; k < e->items.n; k++) {
                    struct cs_item *it = &e->items.items[k];

                    free(it->instruction);
                    free(it->input);
                    free(it->output);
                    free(it->answer);
                }
                e->items.n = p->eval_limit;
            }
            if (rc == RL_OK) {
                e->kind = xmalloc_array(e->items.n ? e->items.n : 1, sizeof(*e->kind));
                for (size_t k = 0; k < e->items.n; k++)
                    e->kind[k] = kind;
                L->n_tasks++;
                rc = lm_set_prepare(L, e, p);
            }
        }
        free(path);
    }
    if (rc == RL_OK && L->n_tasks == 0)
        rc = rl_error_set(RL_ERR_ARG, "%s: no DIR/<task>/test.json under %s (tasks: the paper's "
                          "eight, e.g. boolq, and %s)", p->eval, dir, cs_synth_task_names());
    free(dir);
    return rc;
}

/* the training sample and the validation items (struct run_state) */
static int split_items(struct run_state *s, struct run_lm *L, const struct run_plan *p)
{
    const size_t N = L->train.n;
    size_t *order, n_val = 0, n_train;
    struct rng r;
    int rc = lm_split_counts(p, N, &n_val, &n_train);

    if (rc != RL_OK)
        return rc;
    order = xmalloc_array(N ? N : 1, sizeof(size_t));
    for (size_t i = 0; i < N; i++)
        order[i] = i;
    rng_init(&r, p->sample_seed ^ 0xC0553E45Eull);
    for (size_t i = N; i > 1; i--) {
        size_t j = (size_t)rng_below(&r, i), t = order[i - 1];

        order[i - 1] = order[j];
        order[j] = t;
    }
    s->val_idx = xmalloc_array(n_val ? n_val : 1, sizeof(size_t));
    s->train_idx = xmalloc_array(n_train, sizeof(size_t));
    memcpy(s->val_idx, order, n_val * sizeof(size_t));
    memcpy(s->train_idx, order + n_val, n_train * sizeof(size_t));
    s->n_val = n_val;
    s->n_train = n_train;
    s->has_val = n_val > 0;
    free(order);
    if (s->has_val) {
        /* the validation items, copied with their kinds */
        struct lm_set *e = &L->val;

        e->name = "val";
        e->items.items = xcalloc(n_val, sizeof(struct cs_item));
        e->items.n = n_val;
        e->kind = xmalloc_array(n_val, sizeof(*e->kind));
        for (size_t i = 0; i < n_val; i++) {
            const struct cs_item *src = &L->train.items[s->val_idx[i]];
            struct cs_item *d = &e->items.items[i];

            d->instruction = xstrdup(src->instruction);
            d->input = xstrdup(src->input);
            d->output = xstrdup(src->output);
            d->answer = xstrdup(src->answer);
            if (answer_kind(src->answer, &e->kind[i]) != RL_OK)
                return rl_error_set(RL_ERR_FORMAT, "%s: item %zu: answer '%.40s' names no "
                                    "extraction (true/false, solutionN, answerN, endingN, "
                                    "optionN)", p->dataset, s->val_idx[i], src->answer);
        }
        return lm_set_prepare(L, e, p);
    }
    return RL_OK;
}

static int open_model(struct run_lm *L, const struct run_plan *p)
{
    const char *dir = runner_model_dir(&p->model);
    char path[4096];
    int rc;

    snprintf(path, sizeof(path), "%s/model.safetensors", dir);
    if (p->model.preset && !file_exists(path))
        return rl_error_set(RL_ERR_ARG, "model %s is not pretrained yet: %s has no "
                            "model.safetensors (run `randlora pretrain -c FILE` with this "
                            "experiment file first)", p->model.name, dir);
    if ((rc = llama_model_load(&L->m, dir)) != RL_OK)
        return rc;
    if (L->m.cfg.n_eos == 0)
        return rl_error_set(RL_ERR_FORMAT, "%s/config.json: no eos_token_id (needed to end "
                            "the training items and the generations)", dir);
    L->eos = (int32_t)L->m.cfg.eos_token_id[0];
    snprintf(path, sizeof(path), "%s/tokenizer.json", dir);
    return bpe_tokenizer_load(&L->tok, path);
}

int run_lm_init(struct run_state *s)
{
    const struct run_plan *p = s->plan;
    struct run_lm *L = xcalloc(1, sizeof(*L));
    size_t maxT;
    char *dir;
    int rc;

    s->lm = L;
    if (dist_size() > 1)
        return rl_error_set(RL_ERR_ARG, "%s: a decoder run is one process (MPI ranks: %d)",
                            p->id, dist_size());
    if (!lm_model_is_decoder(&p->model))
        return rl_error_set(RL_ERR_ARG, "%s: data.dataset %s is commonsense data, but model %s "
                            "is no Llama-family decoder (a llama preset, or a directory of a "
                            "LlamaForCausalLM / Qwen2ForCausalLM)", p->id, p->dataset,
                            p->model.name);
    /* bf16 is the CLIP / DINOv2 linears' (models/clip.h); the decoder's
     * step is fp32 only: refused rather than run as fp32 unannounced */
    if (p->train.precision != 0)
        return rl_error_set(RL_ERR_ARG, "%s: train.precision = bf16 is not available for a "
                            "decoder (%s trains in fp32): use train.precision = fp32", p->id,
                            p->model.name);
    if ((rc = open_model(L, p)) != RL_OK)
        return rc;
    dir = spec_dir(p->dataset);
    {
        size_t n = strlen(dir) + 16;
        char *path = xmalloc(n);

        snprintf(path, n, "%s/train.json", dir);
        rc = cs_load(&L->train, path);
        free(path);
    }
    free(dir);
    if (rc != RL_OK || (rc = split_items(s, L, p)) != RL_OK || (rc = load_tasks(L, p)) != RL_OK)
        return rc;
    if ((rc = cs_tokenize_set(L->tok, &L->train, L->eos, p->lm.cutoff,
                              p->lm.loss == EXP_LM_LOSS_ALL, &L->ex)) != RL_OK)
        return rl_error_prefix(rc, "%s", p->dataset);
    {
        /* items whose loss span the cutoff removed teach nothing */
        size_t empty = 0;

        for (size_t i = 0; i < s->n_train; i++) {
            const struct cs_example *x = &L->ex[s->train_idx[i]];
            bool any = false;

            for (size_t k = 1; k < x->n && !any; k++)
                any = x->target[k] != 0;
            empty += !any;
        }
        if (empty == s->n_train)
            return rl_error_set(RL_ERR_ARG, "%s: data.cutoff = %zu cuts every training item "
                                "before its loss span: raise it", p->id, p->lm.cutoff);
        s->lm_empty_items = empty;
    }
    if (s->trains) {
        struct llama_target t;
        struct adamw_cfg ac = { .lr = p->train.lr, .beta1 = p->train.beta1,
                                .beta2 = p->train.beta2, .eps = p->train.eps,
                                .weight_decay = p->train.weight_decay };

        lm_plan_target(&p->targets, &t);
        maxT = (p->lm.cutoff + LM_PAD_MULTIPLE - 1) / LM_PAD_MULTIPLE * LM_PAD_MULTIPLE;
        if ((rc = llama_adapters_init(&L->la, &L->m, &p->adapter, &t, 1, s->B * maxT)) != RL_OK)
            return rl_error_prefix(rc, "%s", p->id);
        L->has_la = true;
        if ((rc = adamw_init(&s->opt, &ac, L->la.n_params)) != RL_OK)
            return rc;
    }
    maxT = (p->lm.cutoff + LM_PAD_MULTIPLE - 1) / LM_PAD_MULTIPLE * LM_PAD_MULTIPLE;
    if (maxT > L->m.cfg.max_position)
        maxT = L->m.cfg.max_position;
    if (s->trains && p->train.recompute)
        llama_run_init_recompute(&L->run, &L->m, s->B, maxT);
    else
        llama_run_init(&L->run, &L->m, s->B, maxT, s->trains);
    L->targets = xmalloc_array(s->B * maxT, sizeof(int32_t));
    L->perm = xmalloc_array(s->n_train, sizeof(size_t));
    L->perm_epoch = -1;
    s->total_steps = s->trains ? run_plan_total_steps(p, s->n_train) : 0;
    if (s->total_steps == SIZE_MAX)
        return rl_error_set(RL_ERR_ARG, "%s: the number of steps overflows", p->id);
    s->sched = (struct lr_cosine){ .lr_max = p->train.lr, .lr_min = p->train.lr_min,
                                   .warmup = p->train.warmup, .total = s->total_steps };
    if (s->sched.warmup > s->sched.total)
        s->sched.warmup = s->sched.total;
    s->dropout_seed = p->adapter.seed ^ 0xD50F0A7ull;
    rng_init(&s->rng, p->seed);
    return run_share_init(s);
}

/* ------------------------------------------------------------------------ */
/* the step                                                                  */

/* the items of micro-batch mb (0-based over the run) into idx; their count */
static size_t micro_items(struct run_state *s, uint64_t mb, size_t *idx)
{
    struct run_lm *L = s->lm;
    const size_t n = s->n_train, per_epoch = (n + s->B - 1) / s->B;
    const long epoch = (long)(mb / per_epoch);
    const size_t j = (size_t)(mb % per_epoch), lo = j * s->B;
    const size_t cnt = n - lo < s->B ? n - lo : s->B;

    if (L->perm_epoch != epoch) {
        struct rng root, r;

        rng_init(&root, s->plan->train.seed);
        rng_split(&r, &root, (uint64_t)epoch);
        for (size_t i = 0; i < n; i++)
            L->perm[i] = s->train_idx[i];
        for (size_t i = n; i > 1; i--) {
            size_t k = (size_t)rng_below(&r, i), t = L->perm[i - 1];

            L->perm[i - 1] = L->perm[k];
            L->perm[k] = t;
        }
        L->perm_epoch = epoch;
    }
    memcpy(idx, L->perm + lo, cnt * sizeof(size_t));
    return cnt;
}

/* the batch's next-token targets: row t predicts ids[t+1] where it counts */
static void batch_targets(const struct cs_batch *b, int32_t *tgt)
{
    for (size_t i = 0; i < b->n; i++)
        for (size_t t = 0; t < b->T; t++) {
            const size_t at = i * b->T + t;

            tgt[at] = t + 1 < b->len[i] && b->target[at + 1] ? b->ids[at + 1] : -1;
        }
}

static void seed_dropout(struct run_state *s, uint64_t mb)
{
    struct run_lm *L = s->lm;
    struct rng root, r;

    if (!(s->plan->adapter.dropout > 0.0f))
        return;
    rng_init(&root, s->dropout_seed);
    rng_split(&r, &root, mb);
    for (size_t k = 0; k < L->la.n_sites; k++)
        rng_split(&L->la.adapters[k].rng, &r, (uint64_t)k);
}

int run_lm_step(struct run_state *s, size_t step, double *loss, double *gnorm, double *lr,
                char *why, size_t why_size)
{
    struct run_lm *L = s->lm;
    size_t *idx = xmalloc_array(s->B, sizeof(size_t));
    const float inv = 1.0f / (float)s->accumulate;
    double sum = 0.0;
    int rc = RL_OK;

    llama_adapters_zero_grad(&L->la);
    for (size_t micro = 0; micro < s->accumulate && rc == RL_OK; micro++) {
        const uint64_t mb = (uint64_t)(step - 1) * s->accumulate + micro;
        const size_t n = micro_items(s, mb, idx);
        struct cs_batch b;
        double l;

        if ((rc = cs_batch_pad(L->ex, idx, n, 0, LM_PAD_MULTIPLE, &b)) != RL_OK)
            break;
        batch_targets(&b, L->targets);
        seed_dropout(s, mb);
        rc = llama_forward(&L->run, &L->m, &L->la, b.ids, b.n, b.T);
        if (rc == RL_OK) {
            l = llama_lm_loss(&L->run, &L->m, L->targets, true, NULL);
            if (s->hooks && s->hooks->on_loss)
                s->hooks->on_loss(s->hooks->ctx, step, micro, &l);
            if (!isfinite(l)) {
                snprintf(why, why_size, "non-finite loss (%g) at step %zu, micro-batch %zu", l,
                         step, micro);
                *loss = l;
                rc = rl_error_set(RL_ERR, "%s", why);
            } else {
                if (s->accumulate > 1)
                    for (size_t i = 0; i < b.n * b.T * L->m.cfg.hidden; i++)
                        L->run.dxf[i] *= inv;
                llama_backward(&L->run, &L->m, &L->la, NULL);
                sum += l;
                s->images_seen += n;
            }
        }
        cs_batch_free(&b);
    }
    free(idx);
    if (rc != RL_OK) {
        *gnorm = *lr = NAN;
        return rc;
    }
    *loss = sum / (double)s->accumulate;
    if (s->hooks && s->hooks->on_grads)
        s->hooks->on_grads(s->hooks->ctx, step, L->la.grads, L->la.n_params);
    *gnorm = s->plan->train.clip > 0 ? clip_grad_norm(L->la.grads, L->la.n_params,
                                                      s->plan->train.clip)
                                     : grad_norm(L->la.grads, L->la.n_params);
    *lr = lr_cosine_at(&s->sched, step - 1);
    if (!isfinite(*gnorm)) {
        snprintf(why, why_size, "non-finite gradient norm (%g) at step %zu", *gnorm, step);
        return rl_error_set(RL_ERR, "%s", why);
    }
    s->opt.cfg.lr = *lr;
    adamw_step(&s->opt, L->la.params, L->la.grads);
    return RL_OK;
}

/* ------------------------------------------------------------------------ */
/* evaluation                                                                */

/* the teacher-forced mean token loss over the set (*loss), and greedy
 * generation of every item (e->gen, e->correct) */
static int eval_set(struct run_state *s, struct lm_set *e, double *loss)
{
    struct run_lm *L = s->lm;
    const struct llama_adapters *la = L->has_la ? &L->la : NULL;
    const size_t B = s->B, n = e->items.n, max_new = s->plan->lm.max_new_tokens;
    size_t *idx = xmalloc_array(B, sizeof(size_t)), *n_out = xmalloc_array(B, sizeof(size_t));
    int32_t *out = xmalloc_array(B * max_new, sizeof(int32_t));
    double sum = 0.0;
    size_t batches = 0;
    int rc = RL_OK;

    e->correct = 0;
    for (size_t b0 = 0; b0 < n && rc == RL_OK; b0 += B) {
        const size_t nb = n - b0 < B ? n - b0 : B;
        struct cs_batch b;

        for (size_t i = 0; i < nb; i++)
            idx[i] = b0 + i;
        if ((rc = cs_batch_pad(e->ex, idx, nb, 0, LM_PAD_MULTIPLE, &b)) != RL_OK)
            break;
        batch_targets(&b, L->targets);
        rc = llama_forward(&L->run, &L->m, la, b.ids, b.n, b.T);
        if (rc == RL_OK) {
            sum += llama_lm_loss(&L->run, &L->m, L->targets, false, NULL);
            batches++;
            rc = llama_generate_greedy_batch(&L->m, la, (const int32_t *const *)e->prompt + b0,
                                             e->prompt_len + b0, nb, max_new, out, n_out);
        }
        cs_batch_free(&b);
        for (size_t i = 0; i < nb && rc == RL_OK; i++) {
            const size_t k = b0 + i, np = e->prompt_len[k];
            int32_t *all = xmalloc_array(np + n_out[i] + 1, sizeof(int32_t));
            char *text = NULL;

            memcpy(all, e->prompt[k], np * sizeof(int32_t));
            memcpy(all + np, out + i * max_new, n_out[i] * sizeof(int32_t));
            free(e->gen[k]);
            e->gen[k] = NULL;
            rc = bpe_decode(L->tok, all + np, n_out[i], true, &e->gen[k], NULL);
            if (rc == RL_OK)
                rc = bpe_decode(L->tok, all, np + n_out[i], true, &text, NULL);
            if (rc == RL_OK)
                e->correct += cs_is_correct(e->kind[k], text, e->items.items[k].answer);
            free(text);
            free(all);
        }
    }
    free(idx);
    free(n_out);
    free(out);
    *loss = batches ? sum / (double)batches : NAN;
    return rc;
}

int run_lm_eval(struct run_state *s, bool val, double *accuracy, double *loss)
{
    struct run_lm *L = s->lm;
    int rc = RL_OK;

    if (L->has_la)
        llama_adapters_set_training(&L->la, false);
    if (val) {
        rc = eval_set(s, &L->val, loss);
        *accuracy = (double)L->val.correct / (double)L->val.items.n;
    } else {
        struct cs_score sc[LM_MAX_TASKS];
        double lsum = 0.0;

        for (size_t t = 0; t < L->n_tasks && rc == RL_OK; t++) {
            double l;

            rc = eval_set(s, &L->tasks[t], &l);
            lsum += l;
            sc[t] = (struct cs_score){ L->tasks[t].name, L->tasks[t].correct,
                                       L->tasks[t].items.n };
        }
        *accuracy = cs_mean_accuracy(sc, L->n_tasks);
        *loss = lsum / (double)L->n_tasks;
    }
    if (L->has_la)
        llama_adapters_set_training(&L->la, true);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* the results file                                                          */

size_t run_lm_n_trainable(const struct run_state *s)
{
    return s->lm->has_la ? s->lm->la.n_params : 0;
}

float *run_lm_params(struct run_state *s)
{
    return s->lm->has_la ? s->lm->la.params : NULL;
}

size_t run_lm_activation_floats(const struct run_state *s)
{
    return s->lm->run.n_floats;
}

size_t run_lm_shared(struct run_state *s, struct adapter_tensor *t, size_t max)
{
    return s->lm->has_la ? adapter_method_tensors(&s->lm->la.method, t, max) : 0;
}

size_t run_lm_n_sites(const struct run_state *s)
{
    return s->lm->has_la ? s->lm->la.n_sites : 0;
}

struct adapter *run_lm_site(struct run_state *s, size_t k, char *name, size_t size)
{
    llama_site_name(&s->lm->la.sites[k], name, size);
    return &s->lm->la.adapters[k];
}

int run_lm_write_results(struct store *st, struct run_state *s)
{
    struct run_lm *L = s->lm;
    char path[256];
    int rc = RL_OK;

    for (size_t t = 0; t < L->n_tasks && rc == RL_OK; t++) {
        const struct lm_set *e = &L->tasks[t];
        const size_t n = e->items.n;

        snprintf(path, sizeof(path), "/lm/%s/accuracy", e->name);
        rc = store_write_scalar(st, path, n ? (double)e->correct / (double)n : NAN);
        snprintf(path, sizeof(path), "/lm/%s/correct", e->name);
        if (rc == RL_OK)
            rc = store_write_scalar_i64(st, path, (int64_t)e->correct);
        snprintf(path, sizeof(path), "/lm/%s/total", e->name);
        if (rc == RL_OK)
            rc = store_write_scalar_i64(st, path, (int64_t)n);
        snprintf(path, sizeof(path), "/lm/%s/generations", e->name);
        for (size_t i = 0; i < n; i++)
            if (!e->gen[i])
                e->gen[i] = xstrdup("");
        if (rc == RL_OK)
            rc = store_write_strings(st, path, (const char *const *)e->gen, n);
    }
    if (rc == RL_OK)
        rc = store_attr_set_string(st, "/lm", "decoding", "greedy");
    if (rc == RL_OK)
        rc = store_attr_set_int64(st, "/lm", "max_new_tokens",
                                  (int64_t)s->plan->lm.max_new_tokens);
    return rc;
}
