/*
 * check_optim.c: (being written)
 */
#include "suites.h"

Suite *suite_optim(void)
{
    return suite_create("optim");
}
