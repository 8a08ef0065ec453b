/*
 * random_model.c: `build/bench/random_model PRESET DIR [SEED]` writes a
 * randomly initialised preset (clip_model_preset) as a model directory,
 * config.json + model.safetensors (F32), plus tokenizer_bytes.json, a
 * byte-level tokenizer that fits its vocabulary (sot and eot the config's
 * bos and eos ids), so `randlora train` runs on it without real weights or
 * a BPE vocabulary: bench/dist_scaling.sh times training steps on the
 * shapes of clip-vit-b-32 with it (docs/BENCHMARKS.md). Exit status 2 for
 * bad arguments, 1 when the directory cannot be written.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "formats/safetensors.h"
#include "models/clip.h"

int main(int argc, char **argv)
{
    struct clip_model m;
    char path[4096];
    unsigned long long seed = 1;
    FILE *fp;
    int rc;

    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: random_model PRESET DIR [SEED]\n");
        return 2;
    }
    if (argc == 4) {
        char *end;

        errno = 0;
        seed = strtoull(argv[3], &end, 10);
        if (errno || *end || argv[3][0] < '0' || argv[3][0] > '9') {
            fprintf(stderr, "random_model: seed '%s': expected a whole number\n", argv[3]);
            return 2;
        }
    }
    if ((rc = clip_model_preset(&m, argv[1], (uint64_t)seed)) != RL_OK) {
        fprintf(stderr, "random_model: %s\n", rl_error_msg());
        return 2;
    }
    rc = clip_model_save(&m, argv[2], ST_F32);
    if (rc == RL_OK) {
        snprintf(path, sizeof(path), "%s/tokenizer_bytes.json", argv[2]);
        if ((fp = fopen(path, "w"))) {
            fprintf(fp, "{\"type\": \"bytes\", \"offset\": 0, \"sot\": %lld, \"eot\": %lld}\n",
                    (long long)m.cfg.text.bos_token_id, (long long)m.cfg.text.eos_token_id);
            rc = fclose(fp) == 0 ? RL_OK : rl_error_set(RL_ERR_IO, "%s: cannot write", path);
        } else {
            rc = rl_error_set(RL_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
        }
    }
    clip_model_free(&m);
    if (rc != RL_OK) {
        fprintf(stderr, "random_model: %s\n", rl_error_msg());
        return 1;
    }
    return 0;
}
