/*
 * dist_harness.c: mpirun in tests (dist_harness.h).
 */
#include "dist_harness.h"

#include <check.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/dist.h"
#include "core/status.h"
#include "results/store.h"
#include "test_proc.h"

const char *dist_bin(void)
{
    const char *b = getenv("RANDLORA_BIN");

    return b && *b ? b : "./randlora";
}

bool mpi_available(const char *who)
{
    if (!dist_built_with_mpi()) {
        fprintf(stderr, "%s: SKIPPED: built without MPI (MPI=0, or no libopenmpi-dev)\n", who);
        return false;
    }
    if (system("command -v mpirun >/dev/null 2>&1") != 0) {
        fprintf(stderr, "%s: SKIPPED: no mpirun on PATH (scripts/deps.sh installs "
                "openmpi-bin)\n", who);
        return false;
    }
    return true;
}

pid_t rank_pid(pid_t mpirun, int rank)
{
    char want[64], path[300], word[32];
    struct dirent *d;
    pid_t found = -1;
    DIR *tasks;

    snprintf(want, sizeof(want), "OMPI_COMM_WORLD_RANK=%d", rank);
    snprintf(path, sizeof(path), "/proc/%d/task", (int)mpirun);
    if (!(tasks = opendir(path)))
        return -1;
    while (found < 0 && (d = readdir(tasks))) {
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/task/%s/children", (int)mpirun, d->d_name);
        if (d->d_name[0] == '.' || !(f = fopen(path, "r")))
            continue;
        while (found < 0 && fscanf(f, "%31s", word) == 1) {
            const pid_t child = (pid_t)atol(word);
            char var[4096];
            FILE *e;
            int c;
            size_t n = 0;

            /* NUL-separated NAME=VALUE; /proc files report no size */
            snprintf(path, sizeof(path), "/proc/%d/environ", (int)child);
            if (!(e = fopen(path, "r")))
                continue;
            while ((c = fgetc(e)) != EOF) {
                if (c != '\0' && n + 1 < sizeof(var)) {
                    var[n++] = (char)c;
                    continue;
                }
                var[n] = '\0';
                if (!strcmp(var, want))
                    found = child;
                n = 0;
            }
            fclose(e);
        }
        fclose(f);
    }
    closedir(tasks);
    return found;
}

bool kill_rank(pid_t mpirun, int rank, const char *who, const char *test)
{
    const pid_t victim = rank_pid(mpirun, rank);
    int st;

    if (victim < 0) {
        kill(mpirun, SIGKILL);
        waitpid(mpirun, &st, 0);
        fprintf(stderr, "%s: SKIPPED %s: rank %d's pid not found under /proc\n", who, test, rank);
        return false;
    }
    ck_assert_int_eq(kill(victim, SIGKILL), 0);
    ck_assert_int_eq(waitpid(mpirun, &st, 0), mpirun);
    ck_assert_msg(!(WIFEXITED(st) && WEXITSTATUS(st) == 0), "mpirun exited 0 after rank %d was "
                  "killed", rank);
    return true;
}

bool has_checkpoint(const char *path, size_t min_step)
{
    struct store_checkpoint_info ck;
    struct store *s;
    bool yes;

    if (access(path, F_OK) != 0 || store_open(&s, path) != RL_OK)
        return false;
    yes = store_read_checkpoint(s, &ck, NULL, NULL, NULL, NULL) == RL_OK &&
          ck.step >= (int64_t)min_step;
    store_close(s);
    return yes;
}

pid_t start_shell(const char *cmd)
{
    pid_t pid = test_fork();

    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    return pid;
}
