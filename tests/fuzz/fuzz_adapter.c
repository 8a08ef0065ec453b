/*
 * fuzz_adapter.c: libFuzzer harness for importing a peft adapter
 * (methods/adapter_io.c: adapter_config.json and adapter_model.safetensors)
 * through `randlora merge` onto the committed tiny model
 * (tests/fixtures/clip_tiny, or $RANDLORA_FIXTURES/clip_tiny).
 *
 * Input layout:
 *     bytes 0-1     n, little-endian: the length of the JSON that follows
 *     n bytes       adapter_config.json
 *     the rest      adapter_model.safetensors
 * Both go to a private temporary directory; `randlora merge --model
 * clip_tiny --adapter DIR -o DIR/out` runs on them and a merged model, when
 * one is written, is removed again. The exit status must be 0 (merged) or
 * 2 (bad input, one line on stderr); a crash, sanitizer report, leak, hang
 * or exit status 1 is a bug. Seeds (tests/fuzz/corpus/adapter/): adapters
 * exported from tiny LoRA, VeRA and RandLoRA runs on clip_tiny.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/commands.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "tests/fuzz/fuzz_files.h"

/* everything merge may write into its output directory */
static const char *const out_files[] = { "config.json", "model.safetensors", "vocab.json",
                                         "merges.txt", "tokenizer.json", "tokenizer_config.json",
                                         "special_tokens_map.json", "preprocessor_config.json",
                                         "tokenizer_bytes.json" };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char dir[64], model[4096], cfg[128], weights[128], out[128];
    char *argv[8] = { "merge", "--model", model, "--adapter", dir, "-o", out, NULL };
    size_t n;
    int rc;

    if (!dir[0]) {
        const char *fx = getenv("RANDLORA_FIXTURES");

        snprintf(dir, sizeof dir, "/tmp/fuzz_adapter_%ld", (long)getpid());
        if (mkdir(dir, 0700) != 0)
            abort();
        snprintf(model, sizeof model, "%s/clip_tiny", fx && *fx ? fx : "tests/fixtures");
        snprintf(cfg, sizeof cfg, "%s/adapter_config.json", dir);
        snprintf(weights, sizeof weights, "%s/adapter_model.safetensors", dir);
        snprintf(out, sizeof out, "%s/out", dir);
        if (!freopen("/dev/null", "w", stdout))
            abort();
    }
    if (size < 2)
        return 0;
    n = (size_t)data[0] | (size_t)data[1] << 8;
    data += 2;
    size -= 2;
    if (n > size)
        n = size;
    if (fuzz_write_file(cfg, data, n) != 0 || fuzz_write_file(weights, data + n, size - n) != 0)
        abort();
    rc = cmd_merge(7, argv);
    if (rc != 0 && rc != 2)
        abort();
    for (size_t i = 0; i < sizeof out_files / sizeof out_files[0]; i++) {
        char p[256];

        snprintf(p, sizeof p, "%s/%s", out, out_files[i]);
        unlink(p);
    }
    rmdir(out);
    return 0;
}

#include "tests/fuzz/fuzz_replay.h"
