/*
 * fuzz_llama_config.c: libFuzzer harness for a Llama-family model's
 * config.json (models/llama_config.c: llama_config_parse) and its shard
 * index, model.safetensors.index.json (models/llama_io.c:
 * llama_index_parse).
 *
 * Every input is given to both parsers. A config that parses must
 * validate, print back as JSON (llama_config_to_json) that parses to the
 * same config, and, when small (at most 2^20 parameters), build a model
 * (llama_model_init) that is then freed. An index that parses must map
 * each of its names back to a plain .safetensors file name. Any status is
 * fine; a crash, sanitizer report, leak, hang or failed round trip is a
 * bug. Seeds (tests/fuzz/corpus/llama_config/): the fixtures' config.json
 * and index, the presets' JSON, and a few hostile variants.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "models/llama.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_config(const uint8_t *data, size_t size)
{
    struct llama_config c, back;
    char *json;

    if (llama_config_parse(&c, (const char *)data, size, "fuzz.json") != RL_OK)
        return;
    if (llama_config_validate(&c, "fuzz.json") != RL_OK)
        abort();
    json = llama_config_to_json(&c);
    if (!json || llama_config_parse(&back, json, strlen(json), "back.json") != RL_OK)
        abort();
    free(json);
    if (memcmp(&back, &c, sizeof(c)) != 0)
        abort();
    if (llama_config_n_params(&c) <= ((size_t)1 << 20)) {
        struct llama_model m;

        if (llama_model_init(&m, &c) != RL_OK || m.n_params != llama_config_n_params(&c))
            abort();
        llama_model_free(&m);
    }
}

static void fuzz_index(const uint8_t *data, size_t size)
{
    struct llama_index *ix;

    if (llama_index_parse(&ix, (const char *)data, size, "fuzz.index.json") != RL_OK)
        return;
    if (llama_index_count(ix) == 0)
        abort();
    llama_index_free(ix);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_config(data, size);
    fuzz_index(data, size);
    return 0;
}

#include "tests/fuzz/fuzz_replay.h"
