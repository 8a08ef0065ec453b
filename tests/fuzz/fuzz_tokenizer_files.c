/*
 * fuzz_tokenizer_files.c: libFuzzer harness for the tokenizer's file
 * readers (models/tokenizer_load.c): vocab.json + merges.txt
 * (tok_load_bpe) and tokenizer.json (tok_load_json). fuzz_tokenizer.c fuzzes
 * the text through a fixed vocabulary; this one fuzzes the vocabulary.
 *
 * Input layout:
 *     byte 0        bit 0: 0 vocab.json + merges.txt, 1 tokenizer.json
 *     bytes 1-2     n, little-endian (bit 0 = 0 only): the length of
 *                   vocab.json; the rest is merges.txt
 *     the rest      tokenizer.json (bit 0 = 1)
 * The files go to a private temporary directory and are loaded. A tokenizer
 * that loads must encode a fixed set of texts into framed rows of ids inside
 * its vocabulary (with truncation; RL_OK only) and decode them again. Any
 * load status is fine; a crash, sanitizer report, leak or hang is a bug.
 * Seeds (tests/fuzz/corpus/tokenizer_files/): the fixture tokenizer's files
 * (tests/fixtures/tokenizer) in both layouts, and clip_tiny's.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/status.h"
#include "models/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "tests/fuzz/fuzz_files.h"

static void exercise(struct tokenizer *t)
{
    static const char *const texts[] = { "a photo of a cat.", "", "  Hello, WORLD!! 123 don't",
                                         "\xc3\xa9t\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac", "<|endoftext|>",
                                         "a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a "
                                         "a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a "
                                         "a a a a a a a a a a a a a a a a" };
    int32_t row[TOK_CLIP_CONTEXT];
    int eot;

    if (tok_set_frame(t, TOK_CLIP_CONTEXT, 0, true) != RL_OK)
        return;
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        char *back = NULL;
        size_t len;

        if (tok_encode(t, texts[i], row, &eot) != RL_OK)
            abort();
        if (eot < 1 || eot >= TOK_CLIP_CONTEXT || row[0] != tok_sot(t) || row[eot] != tok_eot(t))
            abort();
        for (int k = 0; k < TOK_CLIP_CONTEXT; k++)
            if (row[k] < 0 || row[k] >= tok_vocab_size(t))
                abort();
        if (tok_decode(t, row + 1, (size_t)eot - 1, &back, &len) != RL_OK)
            abort();
        free(back);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char dir[64], vocab[128], merges[128], json[128];
    struct tokenizer *t = NULL;
    int rc;

    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/fuzz_tokfiles_%ld", (long)getpid());
        if (mkdir(dir, 0700) != 0)
            abort();
        snprintf(vocab, sizeof vocab, "%s/vocab.json", dir);
        snprintf(merges, sizeof merges, "%s/merges.txt", dir);
        snprintf(json, sizeof json, "%s/tokenizer.json", dir);
    }
    if (size < 1)
        return 0;
    if (data[0] & 1) {
        if (fuzz_write_file(json, data + 1, size - 1) != 0)
            abort();
        rc = tok_load_json(&t, json);
    } else {
        size_t n = size >= 3 ? ((size_t)data[1] | (size_t)data[2] << 8) : 0;

        data += size >= 3 ? 3 : size;
        size -= size >= 3 ? 3 : size;
        if (n > size)
            n = size;
        if (fuzz_write_file(vocab, data, n) != 0 || fuzz_write_file(merges, data + n, size - n) != 0)
            abort();
        rc = tok_load_bpe(&t, vocab, merges);
    }
    if (rc == RL_OK) {
        exercise(t);
        tok_free(t);
    }
    return 0;
}

#include "tests/fuzz/fuzz_replay.h"
