/*
 * fuzz_safetensors.c: libFuzzer harness for the safetensors reader.
 *
 * Built and run by `make fuzz` (build/fuzz/fuzz_safetensors, seeds in
 * tests/fuzz/corpus/safetensors/); `make check` replays the seeds through the same
 * code built with $(CC) and tests/fuzz/fuzz_replay.h. One harness alone:
 *     make build/fuzz/fuzz_safetensors
 *     build/fuzz/fuzz_safetensors -max_total_time=60 build/fuzz/corpus/safetensors tests/fuzz/corpus/safetensors
 *
 * Each input is opened from memory as a whole file image (an exact-size heap
 * copy, so ASan sees any read past its end); an accepted file has every
 * tensor read as float32 and its metadata walked. The only acceptable
 * outcomes are RL_OK and RL_ERR_FORMAT.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "formats/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *copy = malloc(size ? size : 1);
    struct st_file *f;

    if (!copy)
        return 0;
    memcpy(copy, data, size);
    int rc = st_open_memory(&f, copy, size, "fuzz");
    if (rc != RL_OK && rc != RL_ERR_FORMAT)
        abort();
    if (rc == RL_OK) {
        for (size_t i = 0; i < st_count(f); i++) {
            const struct st_info *t = st_info_at(f, i);
            if (st_find(f, t->name) != t)
                abort();
            if (t->numel > (1u << 20))     /* accepted, so the bytes exist; cap the work */
                continue;
            float *out = malloc((t->numel ? t->numel : 1) * sizeof(float));
            if (!out)
                continue;
            rc = st_read_f32(f, t, out);
            if (rc != RL_OK && rc != RL_ERR_FORMAT)
                abort();
            free(out);
        }
        for (size_t i = 0; i < st_metadata_count(f); i++) {
            const char *k, *v;
            st_metadata_at(f, i, &k, &v);
            if (!k || !v || st_metadata_get(f, k) == NULL)
                abort();
        }
        st_close(f);
    }
    free(copy);
    return 0;
}

#include "tests/fuzz/fuzz_replay.h"
