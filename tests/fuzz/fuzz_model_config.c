/*
 * fuzz_model_config.c: libFuzzer harness for a model's config.json
 * (models/clip_config.c: clip_config_parse, clip_config_validate) and the
 * JSON it is written back as.
 *
 * The input is the file's text. A config that parses must validate, print
 * back as JSON (clip_config_to_json) that parses to the same config, and,
 * when it is small (at most 2^22 parameters by a rough count), build a
 * model (clip_model_init) that is then freed. Any status of the first parse
 * is fine; a crash, sanitizer report, leak, hang or a failed round trip is a
 * bug. Seeds (tests/fuzz/corpus/model_config/): clip_tiny's config.json and
 * the presets' JSON.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "models/clip.h"
#include "tests/fuzz/fuzz_clip_size.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct clip_config c, back;
    char *json;

    memset(&c, 0, sizeof c);            /* padding compares equal below */
    memset(&back, 0, sizeof back);
    if (clip_config_parse(&c, (const char *)data, size, "fuzz.json") != RL_OK)
        return 0;
    if (clip_config_validate(&c, "fuzz.json") != RL_OK)
        abort();                        /* parse promises a valid config */
    json = clip_config_to_json(&c);
    if (!json || clip_config_parse(&back, json, strlen(json), "back.json") != RL_OK)
        abort();
    free(json);
    if (memcmp(&back.text, &c.text, sizeof c.text) != 0 ||
        memcmp(&back.vision, &c.vision, sizeof c.vision) != 0 ||
        back.projection_dim != c.projection_dim || back.logit_scale_init != c.logit_scale_init)
        abort();
    if (fuzz_rough_params(&c) < ((size_t)1 << 22)) {
        struct clip_model m;

        if (clip_model_init(&m, &c) == RL_OK)
            clip_model_free(&m);
    }
    return 0;
}

#include "tests/fuzz/fuzz_replay.h"
