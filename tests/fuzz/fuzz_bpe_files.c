/*
 * fuzz_bpe_files.c: libFuzzer harness for the tokenizer.json reader of
 * byte-level BPE (models/bpe_tokenizer_load.c). The input is written to a
 * private temporary file and loaded; a tokenizer that loads must encode a
 * fixed set of texts (RL_OK, or RL_ERR_ARG when its own regex gives up)
 * into ids below bpe_vocab_size and decode them. Any load status is fine;
 * a crash, sanitizer report, leak or hang is a bug.
 * Seeds (tests/fuzz/corpus/bpe_files/): the four fixture tokenizers of
 * tests/fixtures/bpe/ and small variants.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/status.h"
#include "models/bpe_tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "tests/fuzz/fuzz_files.h"

static void exercise(const struct bpe_tokenizer *t)
{
    static const char *const texts[] = { "Hello, WORLD!! 123 don't", "", "  \n\n\t x ",
                                         "\xc3\xa9t\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xff",
                                         "<|endoftext|>a<|im_start|>", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab" };

    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        int32_t *ids;
        size_t n, len;
        char *back;
        int rc = bpe_encode(t, texts[i], strlen(texts[i]), true, &ids, &n);

        if (rc == RL_ERR_ARG)
            continue;
        if (rc != RL_OK)
            abort();
        for (size_t k = 0; k < n; k++)
            if (ids[k] < 0 || ids[k] >= bpe_vocab_size(t))
                abort();
        if (bpe_decode(t, ids, n, i & 1, &back, &len) != RL_OK)
            abort();
        free(back);
        free(ids);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char dir[64], path[128];
    struct bpe_tokenizer *t = NULL;

    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/fuzz_bpefiles_%ld", (long)getpid());
        if (mkdir(dir, 0700) != 0)
            abort();
        snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    }
    if (fuzz_write_file(path, data, size) != 0)
        abort();
    if (bpe_tokenizer_load(&t, path) == RL_OK) {
        exercise(t);
        bpe_tokenizer_free(t);
    }
    return 0;
}

#include "tests/fuzz/fuzz_replay.h"
