/*
 * check_loss.c: (being written)
 */
#include "suites.h"

Suite *suite_loss(void)
{
    return suite_create("loss");
}
