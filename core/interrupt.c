/*
 * interrupt.c: SIGINT and SIGTERM recorded for a clean stop (interrupt.h).
 */
#include "core/interrupt.h"

#include <pthread.h>
#include <signal.h>
#include <string.h>

#include "core/status.h"

static volatile sig_atomic_t received;
static const volatile pid_t *volatile forward_pids;
static volatile size_t forward_n;
static struct sigaction old_int, old_term;
static int installed;

static void on_signal(int sig)
{
    if (!received) {
        received = sig;
        const volatile pid_t *p = forward_pids;
        for (size_t i = 0; p && i < forward_n; i++)
            if (p[i] > 0)
                kill(p[i], sig);
    }
}

void interrupt_install(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGINT);
    sigaddset(&sa.sa_mask, SIGTERM);
    received = 0;
    if (!installed) {
        sigaction(SIGINT, &sa, &old_int);
        sigaction(SIGTERM, &sa, &old_term);
        installed = 1;
    }
}

void interrupt_restore(void)
{
    if (installed) {
        sigaction(SIGINT, &old_int, NULL);
        sigaction(SIGTERM, &old_term, NULL);
        installed = 0;
    }
}

int interrupt_pending(void)
{
    return received;
}

void interrupt_clear(void)
{
    received = 0;
}

void interrupt_forward(const volatile pid_t *pids, size_t n)
{
    forward_n = 0;
    forward_pids = pids;
    forward_n = pids ? n : 0;
}

void interrupt_block(int block)
{
    sigset_t set;

    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(block ? SIG_BLOCK : SIG_UNBLOCK, &set, NULL);
}

int interrupt_exit_code(int status)
{
    if (status == RL_ERR_INTERRUPTED)
        return 128 + (received ? received : SIGINT);
    return rl_exit_code(status);
}
