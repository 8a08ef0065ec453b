/*
 * fuzz_replay.h: a main() for building a libFuzzer harness without
 * libFuzzer (gcc): with -DFUZZ_MAIN the harness reads each file named on the
 * command line and passes its bytes to LLVMFuzzerTestOneInput, so a corpus
 * or a crash input can be replayed under ASan/UBSan. Include it once, after
 * the harness's LLVMFuzzerTestOneInput.
 */
#ifndef RANDLORA_TESTS_FUZZ_REPLAY_H
#define RANDLORA_TESTS_FUZZ_REPLAY_H

#ifdef FUZZ_MAIN
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        uint8_t *buf;
        long n;

        if (!f) {
            perror(argv[i]);
            return 1;
        }
        fseek(f, 0, SEEK_END);
        n = ftell(f);
        fseek(f, 0, SEEK_SET);
        buf = malloc(n > 0 ? (size_t)n : 1);
        if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
            fclose(f);
            free(buf);
            return 1;
        }
        fclose(f);
        LLVMFuzzerTestOneInput(buf, (size_t)n);
        free(buf);
    }
    return 0;
}
#endif /* FUZZ_MAIN */

#endif /* RANDLORA_TESTS_FUZZ_REPLAY_H */
