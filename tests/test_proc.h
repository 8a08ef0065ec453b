/*
 * test_proc.h: child processes in tests, under CK_FORK=no too.
 *
 * With CK_FORK=no (README: for gdb and valgrind) every test runs in the one
 * test process, after earlier tests have started OpenMP's thread pool. A
 * plain fork() then gives a child whose first parallel region waits forever
 * for threads that were not copied; test_fork's child runs single-threaded
 * (threads_init(1)), which needs no pool. A test that expects a signal or
 * an exit status runs its body through test_in_child instead of Check's
 * tcase_add_test_raise_signal / tcase_add_exit_test, which need Check's own
 * fork and report errors under CK_FORK=no.
 *
 *     pid_t pid = test_fork();
 *     if (pid == 0) { ...; _exit(0); }
 *
 *     int st = test_in_child(overflowing_alloc, NULL);
 *     ck_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
 *
 * A child reports through its exit status, not with ck_assert: under
 * CK_FORK=no a failing assertion in the child would return into Check's
 * loop there and run the remaining tests twice.
 */
#ifndef RANDLORA_TESTS_TEST_PROC_H
#define RANDLORA_TESTS_TEST_PROC_H

#include <sys/types.h>

/* fork() after flushing stdio; the child runs on one thread, with the
 * default actions for SIGTERM and SIGINT. -1 on failure. */
pid_t test_fork(void);

/* fn(arg) in a child (test_fork) that then exits 0; the child's wait
 * status (see waitpid), or -1 when no child could be made. */
int test_in_child(void (*fn)(void *), void *arg);

#endif /* RANDLORA_TESTS_TEST_PROC_H */
