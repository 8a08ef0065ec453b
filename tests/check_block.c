/*
 * check_block.c: (being written)
 */
#include "suites.h"

Suite *suite_block(void)
{
    return suite_create("block");
}
