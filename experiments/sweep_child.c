/*
 * sweep_child.c: a sweep's run in a child process and the line its end
 * makes (sweep_child.h).
 */
#include "experiments/sweep_child.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "core/alloc.h"
#include "core/dist.h"
#include "core/interrupt.h"
#include "core/status.h"
#include "core/threads.h"
#include "experiments/run_lock.h"
#include "experiments/runner.h"

char *sweep_plan_path(const struct run_plan *p)
{
    size_t need = strlen(p->output) + strlen(p->id) + 5;
    char *path = xmalloc(need);

    snprintf(path, need, "%s/%s.h5", p->output, p->id);
    return path;
}

int sweep_threads(size_t jobs)
{
    const char *env = getenv("RANDLORA_THREADS");
    long n = 0;

    if (env && *env) {
        char *end;

        n = strtol(env, &end, 10);
        if (*end != '\0' || n <= 0 || n > 4096)
            n = 0;
    }
    if (n == 0)
        n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1)
        n = 1;
    return n / (long)jobs > 1 ? (int)(n / (long)jobs) : 1;
}

static _Noreturn void child_main(const struct run_plan *p, const char *path,
                                 const struct sweep_child_args *a, int fd)
{
    struct runner_options ro;
    struct runner_result res;
    struct sweep_child_report rep;
    const char *msg = "";
    int rc, status;
    size_t len;

    /* one writer per run file: a second sweep (or an overlapping shard, or
     * a `randlora train` of the same run) fails this run instead of writing
     * the file twice */
    struct run_lock lk;

    memset(&res, 0, sizeof(res));
    if ((rc = run_lock_acquire(&lk, path)) == RL_OK) {
        threads_init(a->threads);
        runner_options_init(&ro);
        ro.resume = a->resume;
        ro.verbosity = a->verbosity;
        ro.log = a->log;
        ro.resume_command = a->resume_command;
        rc = runner_run(p, path, &ro, &res);
        run_lock_release(&lk);
    }
    memset(&rep, 0, sizeof(rep));
    rep.ok = rc == RL_OK;
    rep.already_complete = res.already_complete;
    rep.accuracy = res.accuracy;
    rep.seconds = res.seconds;
    rep.n_trainable = res.n_trainable;
    rep.steps = res.steps;
    if (rc != RL_OK)
        msg = rl_error_msg();
    len = strlen(msg);
    if (len > SWEEP_MSG_MAX - 1)
        len = SWEEP_MSG_MAX - 1;
    /* small writes into an empty pipe: they complete (or the parent is gone) */
    if (write(fd, &rep, sizeof(rep)) == (ssize_t)sizeof(rep) && len)
        (void)!write(fd, msg, len);
    close(fd);
    status = interrupt_exit_code(rc);
    fflush(NULL);
    _exit(rc != RL_OK && status == 0 ? 1 : status);
}

pid_t sweep_child_start(const struct run_plan *p, const char *path,
                        const struct sweep_child_args *a, const int *close_fds, size_t n_close,
                        volatile pid_t *forward_slot, int *fd, char *why, size_t why_size)
{
    const pid_t parent = getpid();
    int fds[2] = { -1, -1 };
    pid_t pid;

    fflush(NULL);
    /* a signal between fork and the child's reset would be passed on to
     * its siblings by the child: held until then */
    interrupt_block(1);
    if (pipe(fds) != 0 || (pid = fork()) < 0) {
        const int e = errno;

        interrupt_block(0);
        if (fds[0] >= 0) {
            close(fds[0]);
            close(fds[1]);
        }
        snprintf(why, why_size, "cannot start a process: %s", strerror(e));
        return -1;
    }
    if (pid == 0) {
        interrupt_forward(NULL, 0);
#ifdef __linux__
        /* the parent killed (a sweep's rank taken down by mpirun, SIGKILL):
         * the run stops at its next step, resumable, instead of running on
         * unowned and holding its lock */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            raise(SIGTERM);
#else
        (void)parent;
#endif
        interrupt_block(0);
        dist_detach();
        close(fds[0]);
        for (size_t i = 0; i < n_close; i++)
            close(close_fds[i]);
        child_main(p, path, a, fds[1]);
    }
    *forward_slot = pid;
    interrupt_block(0);
    close(fds[1]);
    *fd = fds[0];
    return pid;
}

void sweep_child_collect(int fd, int wstatus, double seconds, struct sweep_outcome *oc)
{
    char buf[sizeof(oc->rep) + SWEEP_MSG_MAX];
    size_t got = 0;

    for (;;) {
        ssize_t k = read(fd, buf + got, sizeof(buf) - 1 - got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        got += (size_t)k;
        if (got == sizeof(buf) - 1)
            break;
    }
    close(fd);
    memset(oc, 0, sizeof(*oc));
    oc->wstatus = wstatus;
    oc->seconds = seconds;
    oc->have_report = got >= sizeof(oc->rep);
    if (oc->have_report) {
        memcpy(&oc->rep, buf, sizeof(oc->rep));
        memcpy(oc->msg, buf + sizeof(oc->rep), got - sizeof(oc->rep));
        oc->msg[got - sizeof(oc->rep)] = '\0';
    }
}

static void describe_status(int wstatus, char *buf, size_t n)
{
    if (WIFEXITED(wstatus))
        snprintf(buf, n, "exit status %d", WEXITSTATUS(wstatus));
    else if (WIFSIGNALED(wstatus))
        snprintf(buf, n, "killed by signal %d (%s)", WTERMSIG(wstatus),
                 strsignal(WTERMSIG(wstatus)));
    else
        snprintf(buf, n, "wait status 0x%x", wstatus);
}

void sweep_tally_init(struct sweep_tally *t, size_t n_todo)
{
    memset(t, 0, sizeof(*t));
    t->n_todo = n_todo;
    t->fails = xcalloc(n_todo ? n_todo : 1, sizeof(*t->fails));
}

void sweep_tally_free(struct sweep_tally *t)
{
    for (size_t f = 0; f < t->n_fails; f++)
        free(t->fails[f].msg);
    free(t->fails);
    t->fails = NULL;
    t->n_fails = 0;
}

static void add_failure(struct sweep_tally *t, size_t k, const char *msg)
{
    RL_ASSERT(t->n_fails < t->n_todo);
    t->fails[t->n_fails].plan = k;
    t->fails[t->n_fails++].msg = xstrdup(msg);
}

void sweep_tally_not_started(struct sweep_tally *t, FILE *out, const struct run_plan *plans,
                             size_t k, const char *why)
{
    const int width = snprintf(NULL, 0, "%zu", t->n_todo);

    fprintf(out, "[%*zu/%zu] %s FAILED: %s\n", width, ++t->done, t->n_todo, plans[k].id, why);
    fflush(out);
    add_failure(t, k, why);
}

void sweep_tally_end(struct sweep_tally *t, FILE *out, const struct run_plan *plans, size_t k,
                     const char *where, bool interrupted, struct sweep_outcome *oc)
{
    const int width = snprintf(NULL, 0, "%zu", t->n_todo), ws = oc->wstatus;
    const struct run_plan *p = &plans[k];
    const size_t done = ++t->done;
    char *msg = oc->msg;

    if (WIFEXITED(ws) && WEXITSTATUS(ws) == 0 && oc->have_report && oc->rep.ok) {
        fprintf(out, "[%*zu/%zu] %-32s accuracy %.4f  %8.1f s%s%s\n", width, done, t->n_todo,
                p->id, oc->rep.accuracy, oc->seconds,
                oc->rep.already_complete ? "  (was complete)" : "", where);
        t->ok++;
    } else if (interrupted && WIFEXITED(ws) &&
               WEXITSTATUS(ws) == interrupt_exit_code(RL_ERR_INTERRUPTED)) {
        /* stopped by the sweep's own interruption: not a failure */
        fprintf(out, "[%*zu/%zu] %-32s interrupted after %.1f s%s: %s\n", width, done,
                t->n_todo, p->id, oc->seconds, where, msg);
        if (!t->signal)
            t->signal = WEXITSTATUS(ws) - 128;
    } else {
        char how[128];

        describe_status(ws, how, sizeof(how));
        msg[SWEEP_MSG_MAX - 1] = '\0';
        if (!msg[0])
            snprintf(msg, SWEEP_MSG_MAX, "%s", how);
        else if (!(WIFEXITED(ws) && WEXITSTATUS(ws) != 0))
            snprintf(msg + strlen(msg), SWEEP_MSG_MAX - strlen(msg), " (%s)", how);
        fprintf(out, "[%*zu/%zu] %-32s FAILED after %.1f s%s: %s\n", width, done, t->n_todo,
                p->id, oc->seconds, where, msg);
        add_failure(t, k, msg);
    }
    fflush(out);
}
