/*
 * tmp_guard.c: remove a command's temporary output on a fatal signal
 * (tmp_guard.h). The handler does only async-signal-safe things: unlink,
 * sigaction, raise.
 */
#include "cli/tmp_guard.h"

#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

static const int guarded_signals[] = { SIGINT, SIGTERM, SIGHUP, SIGABRT, SIGSEGV, SIGBUS, SIGFPE };
#define N_GUARDED (sizeof(guarded_signals) / sizeof(guarded_signals[0]))

static char guard_path[TMP_GUARD_PATH_MAX];
static volatile sig_atomic_t guard_armed;
static struct sigaction guard_previous[N_GUARDED];
static bool guard_installed[N_GUARDED];

static void guard_handler(int sig)
{
    if (guard_armed) {
        guard_armed = 0;
        unlink(guard_path);
    }
    for (size_t i = 0; i < N_GUARDED; i++)
        if (guarded_signals[i] == sig && guard_installed[i])
            sigaction(sig, &guard_previous[i], NULL);
    raise(sig);
}

void tmp_guard_set(const char *path)
{
    struct sigaction sa;

    tmp_guard_clear();
    if (strlen(path) >= sizeof(guard_path))
        return;
    memcpy(guard_path, path, strlen(path) + 1);
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = guard_handler;
    sigemptyset(&sa.sa_mask);
    /* a signal the process ignores (nohup, a background job's SIGINT)
     * stays ignored: the command goes on and needs its file */
    for (size_t i = 0; i < N_GUARDED; i++) {
        guard_installed[i] = sigaction(guarded_signals[i], NULL, &guard_previous[i]) == 0 &&
                             guard_previous[i].sa_handler != SIG_IGN &&
                             sigaction(guarded_signals[i], &sa, NULL) == 0;
    }
    guard_armed = 1;
}

void tmp_guard_clear(void)
{
    if (!guard_armed)
        return;
    guard_armed = 0;
    for (size_t i = 0; i < N_GUARDED; i++)
        if (guard_installed[i])
            sigaction(guarded_signals[i], &guard_previous[i], NULL);
}
