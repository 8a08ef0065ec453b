/*
 * cmd_threads.c: `randlora threads`: print the thread policy in force.
 */
#include <stdio.h>
#include <string.h>

#include "core/threads.h"
#include "cli/commands.h"

int cmd_threads(int argc, char **argv)
{
    char buf[128];

    if (argc > 1) {
        if (!strcmp(argv[1], "--help")) {
            printf("usage: randlora threads\n"
                   "Print the OpenBLAS and OpenMP thread counts (set RANDLORA_THREADS to change them).\n");
            return 0;
        }
        fprintf(stderr, "randlora threads: unexpected argument '%s'\n", argv[1]);
        return 2;
    }
    threads_init(0);
    printf("%s\n", threads_describe(buf, sizeof(buf)));
    return 0;
}
