/*
 * bench_decoder.h: `randlora bench --model llama-tiny|qwen2-0.5b`: the
 * training step of a Llama-family decoder preset, timed (bench_decoder.c).
 */
#ifndef RANDLORA_CLI_BENCH_DECODER_H
#define RANDLORA_CLI_BENCH_DECODER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bench_decoder_opts {
    const char *model;          /* a decoder preset                          */
    const char *method;         /* NULL: lora                                */
    size_t rank;                /* 0: 16                                     */
    size_t batch, seq, steps;
    int threads;                /* 0: the default policy                     */
    uint64_t seed;
    bool json;
    bool recompute;             /* llama_run_init_recompute              */
    size_t generate;            /* > 0: time greedy generation instead:
                                   prefill of `batch` prompts of `seq`
                                   tokens, then this many decoding steps */
};

/* time the steps (or the generation) and print the result line(s); a
 * status on failure */
int bench_decoder(const struct bench_decoder_opts *o);

#endif /* RANDLORA_CLI_BENCH_DECODER_H */
