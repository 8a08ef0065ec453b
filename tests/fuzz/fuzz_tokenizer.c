/*
 * fuzz_tokenizer.c: libFuzzer harness for the CLIP BPE tokenizer (and the
 * byte-level one) on arbitrary input text.
 *
 * Built and run by `make fuzz` (build/fuzz/fuzz_tokenizer, seeds in
 * tests/fuzz/corpus/tokenizer/); `make check` replays the seeds through the same
 * code built with $(CC) and tests/fuzz/fuzz_replay.h. One harness alone:
 *     make build/fuzz/fuzz_tokenizer
 *     build/fuzz/fuzz_tokenizer -max_total_time=60 build/fuzz/corpus/tokenizer tests/fuzz/corpus/tokenizer
 *
 * The fixture vocabulary (tests/fixtures/tokenizer/, or RANDLORA_FIXTURES)
 * is loaded once. Each input is an exact-size heap copy (so ASan sees any
 * read past its end) encoded into a framed row with truncation on and off
 * (RL_OK and RL_ERR_ARG are the only acceptable results), tokenized
 * unframed, and decoded again; every id must lie in the vocabulary and the
 * row must hold the end token. The byte-level tokenizer must round-trip the
 * input exactly.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "models/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct tokenizer *bpe, *bytes;

static void setup(void)
{
    const char *dir = getenv("RANDLORA_FIXTURES");
    char path[4096];

    snprintf(path, sizeof(path), "%s/tokenizer", dir && *dir ? dir : "tests/fixtures");
    if (tok_load_dir(&bpe, path) != RL_OK) {
        fprintf(stderr, "fuzz_tokenizer: %s\n", rl_error_msg());
        abort();
    }
    bytes = tok_new_bytes(0, 256, 257);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *copy = malloc(size ? size : 1);
    int32_t row[TOK_CLIP_CONTEXT], *ids;
    size_t n, len;
    char *back;
    int eot, rc;

    if (!copy)
        return 0;
    if (!bpe)
        setup();
    memcpy(copy, data, size);

    for (int trunc = 0; trunc < 2; trunc++) {
        tok_set_frame(bpe, TOK_CLIP_CONTEXT, trunc ? 0 : tok_eot(bpe), trunc);
        rc = tok_encode_n(bpe, copy, size, row, &eot);
        if (rc != RL_OK && !(rc == RL_ERR_ARG && !trunc))
            abort();
        if (eot < 1 || eot >= TOK_CLIP_CONTEXT || row[eot] != tok_eot(bpe) || row[0] != tok_sot(bpe))
            abort();
        for (int i = 0; i < TOK_CLIP_CONTEXT; i++)
            if (row[i] < 0 || row[i] >= tok_vocab_size(bpe))
                abort();
    }
    if (tok_tokenize(bpe, copy, size, &ids, &n) != RL_OK)
        abort();
    if (tok_decode(bpe, ids, n, &back, &len) != RL_OK)
        abort();
    free(back);
    free(ids);

    if (tok_tokenize(bytes, copy, size, &ids, &n) != RL_OK || n != size)
        abort();
    if (tok_decode(bytes, ids, n, &back, &len) != RL_OK || len != size ||
        (size && memcmp(back, copy, size) != 0))
        abort();
    free(back);
    free(ids);
    free(copy);
    return 0;
}

#include "tests/fuzz/fuzz_replay.h"
