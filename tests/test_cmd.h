/*
 * test_cmd.h: running a command (cli/commands.h) IN-PROCESS with its stdout
 * and stderr captured, and what is asserted of a refusal. Used by the
 * suites that test commands without the ./randlora binary (so ASan and
 * LSan see the commands' code).
 *
 *     struct test_captured c = test_run_cmd(dir, cmd_info, "info", path, NULL);
 *     test_assert_one_line_error(&c, "randlora info: ", "larger than", "a big file");
 *     test_captured_free(&c);
 */
#ifndef RANDLORA_TESTS_TEST_CMD_H
#define RANDLORA_TESTS_TEST_CMD_H

#include <stddef.h>

struct test_captured {
    int status;               /* the command's return value (its exit status) */
    char *out, *err;          /* what it printed, NUL-terminated            */
};

void test_captured_free(struct test_captured *c);

/* fn(argc, argv) with the NULL-terminated arguments (argv[0] is the
 * command's name, at most 31 in all); stdout and stderr go to files in
 * dir for the call, read back into the result. */
struct test_captured test_run_cmd(const char *dir, int (*fn)(int, char **), ...);

/* Exit 2 and exactly one line on stderr that starts with prefix and
 * contains want (when not NULL); what names the case in failures. With
 * RANDLORA_TEST_VERBOSE set, the line is printed. */
void test_assert_one_line_error(const struct test_captured *c, const char *prefix,
                                const char *want, const char *what);

/* The whole of a file, NUL-terminated (caller frees); *len (may be NULL)
 * its size. Fails the test when it cannot be read. */
char *test_slurp(const char *path, size_t *len);

#endif /* RANDLORA_TESTS_TEST_CMD_H */
