/*
 * check_adapters.c: (being written)
 */
#include "suites.h"

Suite *suite_adapters(void)
{
    return suite_create("adapters");
}
