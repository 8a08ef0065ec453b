/* cmd_demo.c: being written */
#include <stdio.h>
#include "experiments/commands.h"
int cmd_demo(int argc, char **argv)
{
    (void)argc; (void)argv;
    fprintf(stderr, "randlora demo: not yet available\n");
    return 1;
}
