/*
 * fuzz_openclip_config.c: libFuzzer harness for open_clip's
 * open_clip_config.json (models/clip_openclip_config.c:
 * clip_openclip_config_parse) and the JSON it is written back as.
 *
 * The input is the file's text. A config that parses must validate; when
 * open_clip can express it again (clip_openclip_config_to_json; NULL when
 * int(width * mlp_ratio) cannot give the MLP width back) the written JSON must parse back to the same shapes and
 * activations. A small config (at most 2^22 parameters by a rough count)
 * builds a model and lists its open_clip tensors (clip_stored_tensors),
 * which must tile the block. Any status of the first parse is fine; a
 * crash, sanitizer report, leak, hang or failed round trip is a bug. Seeds
 * (tests/fuzz/corpus/openclip_config/): the fixture's hub config, open_clip's
 * ViT-B-32 model config bare and wrapped, a timm tower (refused).
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

    memset(&c, 0, sizeof c);
    memset(&back, 0, sizeof back);
    if (clip_openclip_config_parse(&c, (const char *)data, size, "fuzz.json") != RL_OK)
        return 0;
    if (clip_config_validate(&c, "fuzz.json") != RL_OK)
        abort();
    json = clip_openclip_config_to_json(&c);
    if (json) {
        if (clip_openclip_config_parse(&back, json, strlen(json), "back.json") != RL_OK)
            abort();
        free(json);
        if (memcmp(&back.text, &c.text, sizeof c.text) != 0 ||
            memcmp(&back.vision, &c.vision, sizeof c.vision) != 0 ||
            back.projection_dim != c.projection_dim)
            abort();
    }
    if (fuzz_rough_params(&c) < ((size_t)1 << 22)) {
        struct clip_model m;

        if (clip_model_init(&m, &c) == RL_OK) {
            size_t n = clip_stored_tensors(&m, CLIP_LAYOUT_OPENCLIP, NULL), covered = 0;
            struct clip_stored *st = calloc(n, sizeof(*st));

            if (!st || clip_stored_tensors(&m, CLIP_LAYOUT_OPENCLIP, st) != n)
                abort();
            for (size_t i = 0; i < n; i++)
                covered += st[i].numel;
            if (covered != m.n_params)
                abort();
            free(st);
            clip_model_free(&m);
        }
    }
    return 0;
}

#include "tests/fuzz/fuzz_replay.h"
