/*
 * check_safetensors.c: (being written)
 */
#include "suites.h"

Suite *suite_safetensors(void)
{
    return suite_create("safetensors");
}
