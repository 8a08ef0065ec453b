/*
 * bench_decoder.c: `randlora bench` on a decoder preset (llama-tiny,
 * qwen2-0.5b): the median time of a full training step of a Llama-family
 * model on random weights and random tokens, as tokens/s, with the peak RSS
 * of this process.
 *
 * A step: zero the adapters' gradients, the forward of B sequences of T
 * tokens, the next-token loss and its gradient (the head in 64-row chunks),
 * the backward through every layer into the adapters, gradient clipping at
 * 1.0 and AdamW. Adapters of --method (default lora, rank 16) on the
 * paper's targets q_proj, k_proj, v_proj, up_proj, down_proj of every
 * layer, on the factored path; --recompute keeps only the layers' inputs
 * (llama_run_init_recompute). One warm-up step, then --steps timed ones:
 * the median wall time and the median CPU time of this process (every
 * thread; on a shared machine the steadier of the two for comparisons).
 *
 * --generate N times greedy generation instead (models/llama_generate.c,
 * as the commonsense evaluation runs it: llama_generate_greedy_batch's
 * steps): the same adapters in evaluation mode, B random prompts of T
 * tokens prefilled one after the other through the KV cache (256 rows per
 * step at most), then N decoding steps of B rows (one per sequence, each
 * the argmax of its last logits; no sequence stops at an eos). Prints the
 * prefill rate (prompt tokens/s) and the decoding rate (generated tokens/s
 * and the time of one step of B rows).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "cli/bench_decoder.h"
#include "cli/cli.h"
#include "core/alloc.h"
#include "core/rng.h"
#include "core/status.h"
#include "core/threads.h"
#include "core/timer.h"
#include "models/llama.h"
#include "models/optim.h"

#define PAPER_TARGETS "q_proj,k_proj,v_proj,up_proj,down_proj"

/* CPU seconds of this process so far, every thread (getrusage) */
static double cpu_now(void)
{
    struct rusage ru;

    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0.0;
    return (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec +
           (double)ru.ru_stime.tv_sec + 1e-6 * (double)ru.ru_stime.tv_usec;
}

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* the rows of one generation step: llama_generate_greedy_batch's rule */
static size_t generation_rows(size_t B, size_t T)
{
    const size_t prefill = 256;

    return T < prefill ? (T > B ? T : B) : (B > prefill ? B : prefill);
}

/* --generate: time the prefill of B prompts of T tokens and o->generate
 * decoding steps of B rows; print the rates */
static int time_generation(const struct bench_decoder_opts *o, const struct llama_model *m,
                           const struct llama_adapters *la, const char *method, size_t rank,
                           int n_threads)
{
    const size_t B = o->batch, T = o->seq, G = o->generate, V = m->cfg.vocab_size;
    const size_t rows = generation_rows(B, T);
    struct llama_cache kc;
    struct rng rg;
    int32_t *ids = xmalloc_array(B * T, sizeof(int32_t)), *next = xcalloc(B, sizeof(int32_t));
    size_t *seq = xmalloc_array(rows > B ? rows : B, sizeof(size_t));
    double t_prefill, t_decode;
    int rc = RL_OK;

    if (T + G > m->cfg.max_position) {
        free(ids);
        free(next);
        free(seq);
        return rl_error_set(RL_ERR_ARG, "--seq %zu + --generate %zu exceed %s's %zu positions",
                            T, G, o->model, m->cfg.max_position);
    }
    llama_cache_init(&kc, m, B, T + G, rows);
    rng_init(&rg, o->seed + 1);
    for (size_t i = 0; i < B * T; i++)
        ids[i] = (int32_t)rng_below(&rg, m->cfg.vocab_size);
    double t0 = timer_now();
    for (size_t i = 0; i < B && !rc; i++)
        for (size_t d = 0; d < T && !rc;) {
            const size_t k = T - d < rows ? T - d : rows;

            for (size_t r = 0; r < k; r++)
                seq[r] = i;
            rc = llama_cache_step(&kc, m, la, ids + i * T + d, seq, k);
            d += k;
            if (!rc && d == T)
                next[i] = llama_argmax(kc.logits, V);
        }
    t_prefill = timer_now() - t0;
    t0 = timer_now();
    for (size_t g = 0; g < G && !rc; g++) {
        for (size_t i = 0; i < B; i++)
            seq[i] = i;
        if ((rc = llama_cache_step(&kc, m, la, next, seq, B)))
            break;
        for (size_t k = 0; k < kc.n_logits; k++)
            next[kc.logit_seq[k]] = llama_argmax(kc.logits + k * V, V);
    }
    t_decode = timer_now() - t0;
    if (!rc) {
        struct rusage ru;
        const long rss = getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : 0;
        const double step = t_decode / (double)G;

        if (o->json)
            printf("{\"impl\":\"c\",\"kind\":\"generate\",\"model\":\"%s\",\"method\":\"%s\","
                   "\"rank\":%zu,\"batch\":%zu,\"seq\":%zu,\"generate\":%zu,\"threads\":%d,"
                   "\"prefill_s\":%.6f,\"prefill_tokens_per_s\":%.3f,\"decode_step_s\":%.6f,"
                   "\"decode_tokens_per_s\":%.3f,\"peak_rss_mb\":%.1f}\n",
                   o->model, method, rank, B, T, G, n_threads, t_prefill,
                   (double)(B * T) / t_prefill, step, (double)B / step, (double)rss / 1024.0);
        else
            printf("model %s, method %s r=%zu (evaluation mode), %zu prompts of %zu tokens, "
                   "%zu decoding steps, %d threads\n"
                   "  prefill              %.3f s, %.1f tokens/s\n"
                   "  decoding step        %.4f s for %zu rows, %.1f tokens/s\n"
                   "  peak RSS             %.1f MiB\n",
                   o->model, method, rank, B, T, G, n_threads, t_prefill,
                   (double)(B * T) / t_prefill, step, B, (double)B / step,
                   (double)rss / 1024.0);
    }
    llama_cache_free(&kc);
    free(ids);
    free(next);
    free(seq);
    return rc;
}

int bench_decoder(const struct bench_decoder_opts *o)
{
    const char *method = o->method ? o->method : "lora";
    const size_t B = o->batch, T = o->seq, N = B * T;
    struct llama_model m;
    struct llama_adapters la;
    struct llama_run r;
    struct llama_target tg[1];
    struct adapter_cfg acfg;
    struct adamw opt;
    struct adamw_cfg ocfg = ADAMW_CFG_DEFAULT;
    struct rusage ru;
    struct rng rg;
    int32_t *ids, *tgt;
    double *times, *cpu, loss = 0.0;
    size_t nt;
    int rc;

    const int n_threads = threads_init(o->threads).n_blas;

    if ((rc = llama_model_preset(&m, o->model, o->seed)))
        return rc;
    if (T > m.cfg.max_position) {
        rc = rl_error_set(RL_ERR_ARG, "--seq %zu exceeds %s's %zu positions", T, o->model,
                          m.cfg.max_position);
        llama_model_free(&m);
        return rc;
    }
    adapter_cfg_defaults(&acfg, method, o->rank ? o->rank : 16);
    if ((rc = llama_targets_parse(PAPER_TARGETS, tg, 1, &nt)) ||
        (rc = llama_adapters_init(&la, &m, &acfg, tg, nt,
                                  o->generate ? generation_rows(B, T) : N))) {
        llama_model_free(&m);
        return rc;
    }
    if (o->generate) {
        llama_adapters_set_training(&la, false);
        rc = time_generation(o, &m, &la, method, acfg.r, n_threads);
        llama_adapters_free(&la);
        llama_model_free(&m);
        return rc;
    }
    if ((rc = adamw_init(&opt, &ocfg, la.n_params ? la.n_params : 1))) {
        llama_adapters_free(&la);
        llama_model_free(&m);
        return rc;
    }
    if (o->recompute)
        llama_run_init_recompute(&r, &m, B, T);
    else
        llama_run_init(&r, &m, B, T, true);
    ids = xmalloc_array(N, sizeof(int32_t));
    tgt = xmalloc_array(N, sizeof(int32_t));
    rng_init(&rg, o->seed + 1);
    for (size_t i = 0; i < N; i++)
        ids[i] = (int32_t)rng_below(&rg, m.cfg.vocab_size);
    for (size_t i = 0; i < N; i++)
        tgt[i] = (i + 1) % T ? ids[i + 1] : -1;
    times = xcalloc(o->steps + 1, sizeof(double));
    cpu = xcalloc(o->steps + 1, sizeof(double));
    for (size_t s = 0; s <= o->steps && !rc; s++) {
        const double t0 = timer_now(), c0 = cpu_now();

        llama_adapters_zero_grad(&la);
        if ((rc = llama_forward(&r, &m, &la, ids, B, T)))
            break;
        loss = llama_lm_loss(&r, &m, tgt, true, NULL);
        llama_backward(&r, &m, &la, NULL);
        clip_grad_norm(la.grads, la.n_params, 1.0);
        adamw_step(&opt, la.params, la.grads);
        times[s] = timer_now() - t0;    /* times[0]: the warm-up */
        cpu[s] = cpu_now() - c0;
    }
    if (!rc) {
        const double med = (qsort(times + 1, o->steps, sizeof(double), cmp_double),
                            times[1 + o->steps / 2]);
        const double cpu_med = (qsort(cpu + 1, o->steps, sizeof(double), cmp_double),
                                cpu[1 + o->steps / 2]);
        long rss = getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : 0;

        if (o->json)
            printf("{\"impl\":\"c\",\"model\":\"%s\",\"method\":\"%s\",\"rank\":%zu,"
                   "\"batch\":%zu,\"seq\":%zu,\"steps\":%zu,\"threads\":%d,\"recompute\":%s,"
                   "\"n_trainable\":%zu,\"n_sites\":%zu,\"step_s\":%.6f,\"step_min_s\":%.6f,"
                   "\"step_cpu_s\":%.6f,\"tokens_per_s\":%.3f,\"peak_rss_mb\":%.1f,"
                   "\"loss\":%.6g}\n",
                   o->model, method, acfg.r, B, T, o->steps, n_threads,
                   o->recompute ? "true" : "false", la.n_params,
                   la.n_sites, med, times[1], cpu_med, (double)N / med, (double)rss / 1024.0,
                   loss);
        else
            printf("model %s (%zu parameters), method %s r=%zu on %s, batch %zu x %zu "
                   "tokens, %d threads%s\n"
                   "  trainable            %zu in %zu adapted linears (factored)\n"
                   "  step (median of %zu)  %.3f s (min %.3f s), %.3f CPU s\n"
                   "  tokens/s             %.1f\n"
                   "  peak RSS             %.1f MiB\n",
                   o->model, m.n_params, method, acfg.r, PAPER_TARGETS, B, T, n_threads,
                   o->recompute ? ", layers recomputed in the backward" : "",
                   la.n_params, la.n_sites, o->steps, med, times[1], cpu_med, (double)N / med,
                   (double)rss / 1024.0);
    }
    free(times);
    free(cpu);
    free(ids);
    free(tgt);
    llama_run_free(&r);
    adamw_free(&opt);
    llama_adapters_free(&la);
    llama_model_free(&m);
    return rc;
}
