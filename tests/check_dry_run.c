#include "suites.h"
Suite *suite_dry_run(void) { return suite_create("dry_run"); }
