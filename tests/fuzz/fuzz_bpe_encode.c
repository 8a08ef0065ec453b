/*
 * fuzz_bpe_encode.c: libFuzzer harness for byte-level BPE encoding
 * (models/bpe_tokenizer_encode.c) on arbitrary text through the five
 * fixture tokenizers (tests/fixtures/bpe/, or RANDLORA_FIXTURES): GPT-2,
 * GPT-2 with add_prefix_space, Llama 3, Qwen2 (NFC, added tokens) and the
 * String/Removed splits.
 *
 * Input: byte 0 picks the tokenizer (bits 0-2, modulo 5) and add_special
 * (bit 3); the
 * rest is the text, an exact-size heap copy. Encoding must return RL_OK
 * with every id below bpe_vocab_size, decoding RL_OK; the GPT-2 one must
 * give back the text exactly when it is UTF-8 without the lstrip/rstrip
 * tokens "<tail>" and "<both>" (they take the spaces next to them).
 * Seeds: tests/fuzz/corpus/bpe_encode/.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "core/utf8.h"
#include "models/bpe_tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct bpe_tokenizer *toks[5];

static void setup(void)
{
    static const char *const names[5] = { "gpt2", "gpt2_prefix", "llama3", "qwen2", "splits" };
    const char *dir = getenv("RANDLORA_FIXTURES");

    for (int k = 0; k < 5; k++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/bpe/%s.json", dir && *dir ? dir : "tests/fixtures", names[k]);
        if (bpe_tokenizer_load(&toks[k], path) != RL_OK) {
            fprintf(stderr, "fuzz_bpe_encode: %s\n", rl_error_msg());
            abort();
        }
    }
}

static bool has(const char *s, size_t n, const char *needle)
{
    size_t m = strlen(needle);

    for (size_t i = 0; i + m <= n; i++)
        if (memcmp(s + i, needle, m) == 0)
            return true;
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const struct bpe_tokenizer *t;
    bool add_special;
    char *copy, *back;
    int32_t *ids;
    size_t n, len;

    if (size < 1)
        return 0;
    if (!toks[0])
        setup();
    t = toks[(data[0] & 7) % 5];
    add_special = data[0] & 8;
    data++;
    size--;
    copy = malloc(size ? size : 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    if (bpe_encode(t, copy, size, add_special, &ids, &n) != RL_OK)
        abort();
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= bpe_vocab_size(t))
            abort();
    if (bpe_decode(t, ids, n, false, &back, &len) != RL_OK)
        abort();
    if (t == toks[0] && utf8_valid((const unsigned char *)copy, size) && !has(copy, size, "<tail>") &&
        !has(copy, size, "<both>") && (len != size || memcmp(back, copy, size) != 0))
        abort();
    free(back);
    free(ids);
    free(copy);
    return 0;
}

#include "tests/fuzz/fuzz_replay.h"
