/*
 * test_proc.c: child processes in tests (test_proc.h).
 */
#include "test_proc.h"

#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/threads.h"

pid_t test_fork(void)
{
    pid_t pid;

    fflush(NULL);
    pid = fork();
    if (pid == 0) {
        /* Check's SIGTERM and SIGINT handlers signal the whole process
         * group: a child that dies of one must not take the tests along */
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        threads_init(1);
    }
    return pid;
}

int test_in_child(void (*fn)(void *), void *arg)
{
    pid_t pid = test_fork();
    int status;

    if (pid < 0)
        return -1;
    if (pid == 0) {
        fn(arg);
        fflush(NULL);
        _exit(0);
    }
    if (waitpid(pid, &status, 0) != pid)
        return -1;
    return status;
}
