/*
 * cmd_threads.c: `randlora threads`: print the thread policy in force and
 * the bf16 GEMM backend (oneDNN's ISA and matmul kernel, or why bf16 is
 * refused on this CPU).
 */
#include <stdio.h>
#include <string.h>

#include "core/gemm_bf16.h"
#include "core/threads.h"
#include "cli/commands.h"

int cmd_threads(int argc, char **argv)
{
    char buf[160];

    if (argc > 1) {
        if (!strcmp(argv[1], "--help")) {
            printf("usage: randlora threads\n"
                   "Print the OpenBLAS and OpenMP thread counts (set RANDLORA_THREADS to change them)\n"
                   "and the bf16 GEMM backend: oneDNN's version, ISA and matmul kernel.\n");
            return 0;
        }
        fprintf(stderr, "randlora threads: unexpected argument '%s'\n", argv[1]);
        return 2;
    }
    threads_init(0);
    printf("%s\n", threads_describe(buf, sizeof(buf)));
    printf("bf16: %s\n", gemm_bf16_describe(buf, sizeof(buf)));
    return 0;
}
