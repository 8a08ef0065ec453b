/*
 * check_nn.c: (being written)
 */
#include "suites.h"

Suite *suite_nn(void)
{
    return suite_create("nn");
}
