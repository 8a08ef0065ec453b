/*
 * check_datasets.c: (being written)
 */
#include "suites.h"

Suite *suite_datasets(void)
{
    return suite_create("datasets");
}
