/*
 * bench_impl.h: INTERNAL to `randlora bench` (cli/cmd_bench.c, the CLIP
 * step; cli/bench_dinov2.c, the DINOv2 step with a linear head): the
 * options, the result sent from the child, and the helpers both use.
 */
#ifndef RANDLORA_CLI_BENCH_IMPL_H
#define RANDLORA_CLI_BENCH_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "models/clip.h"

struct bench_opts {
    const char *model;          /* preset name or a config.json path          */
    const char *method;
    size_t rank;                /* 0: the rank for the method         */
    size_t batch, accumulate, classes, steps;
    size_t seq;                 /* decoder presets: tokens per sequence       */
    size_t generate;            /* decoder presets: time generation, steps    */
    bool batch_set;             /* --batch given (a decoder's default is 1)   */
    int threads;
    bool json, in_process;
    bool recompute;             /* layers recomputed in the backward          */
    enum clip_precision precision;  /* of the frozen linears' products        */
    uint64_t seed;
};

/* per-step losses reported: the warm-up step and the first timed ones */
#define BENCH_MAX_LOSSES 64

/* sent from the child through a pipe: plain data only */
struct bench_result {
    char model[64];
    char method[16];
    size_t rank, batch, accumulate, classes, steps, text_tokens;
    int threads;
    bool recompute;
    char precision[8];          /* "fp32" or "bf16"                           */
    char bf16_backend[128];     /* gemm_bf16_describe, under bf16             */
    double bf16_weights_mb;     /* the frozen linears' bf16 copies            */
    size_t n_trainable;
    size_t n_sites, merged_sites; /* adapted linears; on the merged path      */
    double step_median_s, step_min_s, images_per_s;
    double model_flops;         /* analytic, per optimizer step               */
    double gemm_flops;          /* counted by the wrapper, per step (mean)    */
    double gemm_share;          /* time in GEMMs / step time, timed steps     */
    double gemm_rate;           /* counted GEMM FLOPs / time in GEMMs         */
    double peak_gemm_rate;      /* calibration GEMM                           */
    /* under bf16: oneDNN's products (core/gemm_bf16.h stats), timed steps */
    double bf16_gemm_flops;     /* per step (mean)                            */
    double bf16_gemm_share;     /* time in bf16 products / step time          */
    double bf16_gemm_rate;      /* their FLOPs / their time (A's conversion
                                   included)                                  */
    double peak_bf16_rate;      /* calibration: oneDNN bf16, same shape as
                                   the sgemm one, A and B already bf16       */
    double loss;                /* of the last step                           */
    double losses[BENCH_MAX_LOSSES];  /* each step's loss, the warm-up first  */
    size_t n_losses;
    long peak_rss_kb;
};

/* the options echoed, the S = o->steps step times (sorted) as median,
 * minimum and images/s, the GEMM share and rate from gemm_s seconds and
 * gemm_f FLOPs counted over the timed steps (total_s long), the bf16
 * products' from bf16_s and bf16_f */
void   bench_result_timing(struct bench_result *res, const struct bench_opts *o, double *times,
                           double total_s, double gemm_s, double gemm_f, double bf16_s,
                           double bf16_f);
/* qsort comparison of doubles */
int    bench_cmp_double(const void *a, const void *b);
/* the calibration product's best rate (FLOP/s), 1024 x 3072 x 768: sgemm,
 * or oneDNN bf16 (A and B already bf16) */
double bench_calibrate(bool use_bf16);

/* bench_dinov2.c: a DINOv2 model? (its presets, and the bench-only
 * "dinov2-vit-b-14": dinov2-base's shapes at 224 px) */
bool   bench_is_dinov2(const char *model);
/* one DINOv2 training step with a linear head, timed like bench_run */
int    bench_dinov2_run(const struct bench_opts *o, struct bench_result *res);

#endif /* RANDLORA_CLI_BENCH_IMPL_H */
