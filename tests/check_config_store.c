#include "suites.h"
Suite *suite_config_store(void) { return suite_create("config_store"); }
