/*
 * sweep_ranks.c: a sweep's runs handed out by rank 0 to the MPI ranks
 * (sweep_ranks.h).
 */
#include "experiments/sweep_ranks.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/dist.h"
#include "core/interrupt.h"
#include "core/status.h"
#include "core/timer.h"

#ifndef W_EXITCODE
#define W_EXITCODE(ret, sig) ((ret) << 8 | (sig))
#endif

/* rank 0 -> rank r: run plans[plan], or (plan < 0) end with `status` */
struct order {
    int64_t plan;
    int32_t status;
};

/* rank r -> rank 0: how plans[plan] ended there; signal: rank r got SIGINT
 * or SIGTERM itself and takes no more runs */
struct result {
    int64_t plan;
    int32_t signal;
    struct sweep_outcome oc;
};

enum rank_state { RANK_IDLE, RANK_BUSY, RANK_DONE };

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

    nanosleep(&ts, NULL);                 /* EINTR: the caller looks again */
}

static void announce(FILE *out, const struct sweep_options *o, int rank, const char *id,
                     int threads)
{
    if (o->verbosity <= 0)
        return;
    fprintf(out, "rank %d: start %s (%d thread%s)\n", rank, id, threads, threads == 1 ? "" : "s");
    fflush(out);
}

void sweep_ranks_run(const struct run_plan *plans, char *const *paths, const size_t *todo,
                     size_t n_todo, const struct sweep_options *o, FILE *out, FILE *err,
                     struct sweep_tally *t)
{
    const int K = dist_size();
    enum rank_state *state = xcalloc((size_t)K, sizeof(*state));
    size_t *plan_of = xcalloc((size_t)K, sizeof(*plan_of)), next = 0, busy = 0;
    /* rank 0's own run, for the SIGINT / SIGTERM handler to pass on */
    volatile pid_t own[1] = { 0 };
    size_t own_plan = 0;
    double own_t0 = 0;
    int own_fd = -1;
    const struct sweep_child_args args = {
        .resume = o->resume, .resume_command = o->resume_command, .threads = sweep_threads(1),
        .verbosity = 0, .log = err,
    };

    RL_ASSERT(dist_rank() == 0 && K > 1);
    interrupt_forward(own, 1);
    for (;;) {
        bool progressed = false;
        int r;

        /* hand out: every free rank gets the next run, or is done */
        for (r = 1; r < K; r++) {
            if (state[r] != RANK_IDLE)
                continue;
            if (next < n_todo && !interrupt_pending()) {
                const struct order ord = { (int64_t)todo[next], 0 };

                dist_send(r, &ord, sizeof(ord));
                plan_of[r] = todo[next++];
                state[r] = RANK_BUSY;
                busy++;
                announce(out, o, r, plans[plan_of[r]].id, args.threads);
            } else {
                state[r] = RANK_DONE;             /* it waits for the release */
            }
        }
        if (own[0] == 0 && next < n_todo && !interrupt_pending()) {
            const size_t k = todo[next++];
            char why[256];
            pid_t pid = sweep_child_start(&plans[k], paths[k], &args, NULL, 0, &own[0], &own_fd,
                                          why, sizeof(why));

            if (pid < 0) {
                sweep_tally_not_started(t, out, plans, k, why);
                continue;
            }
            own_plan = k;
            own_t0 = timer_now();
            announce(out, o, 0, plans[k].id, args.threads);
        }
        if (own[0] == 0 && busy == 0 && (next >= n_todo || interrupt_pending()))
            break;

        /* collect: rank 0's own run, then any results that came in */
        if (own[0] > 0) {
            int wstatus = 0;
            pid_t got = waitpid(own[0], &wstatus, WNOHANG);

            if (got == own[0] || (got < 0 && errno != EINTR)) {
                struct sweep_outcome oc;

                if (got < 0)
                    wstatus = W_EXITCODE(1, 0);   /* lost (should not happen) */
                sweep_child_collect(own_fd, wstatus, timer_now() - own_t0, &oc);
                own[0] = 0;
                sweep_tally_end(t, out, plans, own_plan, "  rank 0", interrupt_pending() != 0,
                                &oc);
                progressed = true;
            }
        }
        while ((r = dist_poll()) > 0) {
            struct result res;
            char where[32];

            dist_recv(r, &res, sizeof(res));
            RL_ASSERT(state[r] == RANK_BUSY && res.plan == (int64_t)plan_of[r]);
            res.oc.msg[SWEEP_MSG_MAX - 1] = '\0';
            snprintf(where, sizeof(where), "  rank %d", r);
            sweep_tally_end(t, out, plans, plan_of[r], where,
                            interrupt_pending() != 0 || res.signal != 0, &res.oc);
            busy--;
            state[r] = res.signal ? RANK_DONE : RANK_IDLE;
            progressed = true;
        }
        if (!progressed)
            sleep_ms(10);
    }
    interrupt_forward(NULL, 0);
    free(plan_of);
    free(state);
}

void sweep_ranks_release(int status)
{
    const struct order ord = { -1, status };

    RL_ASSERT(dist_rank() == 0);
    for (int r = 1; r < dist_size(); r++)
        dist_send(r, &ord, sizeof(ord));
}

/* the next order from rank 0, waiting without spinning */
static void wait_order(struct order *ord)
{
    while (dist_poll() != 0)
        sleep_ms(20);
    dist_recv(0, ord, sizeof(*ord));
}

/* plans[k] in a child of this rank, waited for */
static void run_one(const struct run_plan *plans, size_t k, const struct sweep_options *o,
                    volatile pid_t *child, struct sweep_outcome *oc)
{
    const struct sweep_child_args args = {
        .resume = o->resume, .resume_command = o->resume_command, .threads = sweep_threads(1),
        .verbosity = 0, .log = o->err ? o->err : stderr,
    };
    char *path = sweep_plan_path(&plans[k]), why[256];
    const double t0 = timer_now();
    int fd, wstatus = 0;
    pid_t pid = sweep_child_start(&plans[k], path, &args, NULL, 0, &child[0], &fd, why,
                                  sizeof(why));

    free(path);
    if (pid < 0) {
        memset(oc, 0, sizeof(*oc));
        oc->wstatus = W_EXITCODE(1, 0);
        snprintf(oc->msg, sizeof(oc->msg), "%s", why);
        return;
    }
    while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR)
        ;
    child[0] = 0;
    sweep_child_collect(fd, wstatus, timer_now() - t0, oc);
}

int sweep_ranks_serve(const struct run_plan *plans, size_t n, const struct sweep_options *o)
{
    volatile pid_t child[1] = { 0 };
    struct order ord;
    struct result *res = xcalloc(1, sizeof(*res));

    RL_ASSERT(dist_rank() > 0);
    interrupt_install();
    interrupt_forward(child, 1);
    for (;;) {
        wait_order(&ord);
        if (ord.plan < 0)
            break;
        RL_ASSERT((size_t)ord.plan < n);
        memset(res, 0, sizeof(*res));
        res->plan = ord.plan;
        if (interrupt_pending()) {
            /* stopped here before it started: rank 0 counts it unfinished */
            res->oc.wstatus = W_EXITCODE(interrupt_exit_code(RL_ERR_INTERRUPTED), 0);
            snprintf(res->oc.msg, sizeof(res->oc.msg), "not started: MPI rank %d got a signal",
                     dist_rank());
        } else {
            run_one(plans, (size_t)ord.plan, o, child, &res->oc);
        }
        res->signal = interrupt_pending();
        dist_send(0, res, sizeof(*res));
    }
    interrupt_forward(NULL, 0);
    interrupt_restore();
    free(res);
    return ord.status;
}
