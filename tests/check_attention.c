/*
 * check_attention.c: (being written)
 */
#include "suites.h"

Suite *suite_attention(void)
{
    return suite_create("attention");
}
