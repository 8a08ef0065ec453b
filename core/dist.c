/*
 * dist.c: the processes of a data-parallel run over MPI (dist.h), or the
 * single-process fallback. This file is the only one that includes mpi.h.
 */
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/dist.h"
#include "core/status.h"
#include "core/timer.h"

#ifdef RANDLORA_MPI
#include <limits.h>
#include <mpi.h>

/* floats one gather moves per rank: rank 0 holds size * PIECE of them */
#define PIECE ((size_t)1 << 20)

/* the tag of dist_send / dist_recv (collectives never match it) */
#define TAG_WORK 17

static int rank, size = 1;
static bool started;

/* rank 0's gather buffer of dist_sum_floats: grown, never shrunk, freed by
 * dist_finalize */
static float *gather_buf;
static size_t gather_cap;
static struct dist_sum_stats sum_stats;

/* the environment variables the launchers set: Open MPI's mpirun, PMI and
 * PMIx (MPICH's hydra, Slurm's srun --mpi=pmi2/pmix) */
static bool launched(void)
{
    static const char *const vars[] = { "OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK",
                                        "PMI_SIZE" };

    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
        if (getenv(vars[i]))
            return true;
    return false;
}

void dist_init(int *argc, char ***argv)
{
    int provided;

    if (started || !launched())
        return;
    /* MPI is called from the main thread only; OpenMP runs the kernels */
    MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    started = true;
}

void dist_finalize(void)
{
    free(gather_buf);
    gather_buf = NULL;
    gather_cap = 0;
    if (started)
        MPI_Finalize();
    started = false;
    rank = 0;
    size = 1;
}

void dist_detach(void)
{
    free(gather_buf);                 /* this process's copy of it */
    gather_buf = NULL;
    gather_cap = 0;
    memset(&sum_stats, 0, sizeof(sum_stats));
    started = false;
    rank = 0;
    size = 1;
}

int dist_rank(void)
{
    return rank;
}

int dist_size(void)
{
    return size;
}

bool dist_built_with_mpi(void)
{
    return true;
}

struct dist_sum_stats dist_sum_stats(void)
{
    return sum_stats;
}

void dist_sum_floats(float *x, size_t n)
{
    const size_t need = (size_t)size * (n < PIECE ? n : PIECE);
    float *all = NULL;
    double t0, t1;

    if (size == 1 || n == 0)
        return;
    t0 = timer_now();
    MPI_Barrier(MPI_COMM_WORLD);
    t1 = timer_now();
    if (rank == 0) {
        if (gather_cap < need) {
            free(gather_buf);
            gather_buf = xmalloc_array(need, sizeof(float));
            gather_cap = need;
        }
        all = gather_buf;
    }
    for (size_t at = 0; at < n; at += PIECE) {
        const size_t len = n - at < PIECE ? n - at : PIECE;

        MPI_Gather(x + at, (int)len, MPI_FLOAT, all, (int)len, MPI_FLOAT, 0, MPI_COMM_WORLD);
        if (rank == 0)
            for (size_t i = 0; i < len; i++) {
                float acc = all[i];

                for (int r = 1; r < size; r++)
                    acc += all[(size_t)r * len + i];
                x[at + i] = acc;
            }
    }
    dist_broadcast(x, n * sizeof(float));
    sum_stats.calls++;
    sum_stats.floats += n;
    sum_stats.wait_seconds += t1 - t0;
    sum_stats.exchange_seconds += timer_now() - t1;
}

void dist_allgather(const void *mine, void *all, size_t bytes)
{
    if (size == 1) {
        memcpy(all, mine, bytes);
        return;
    }
    RL_ASSERT(bytes <= INT_MAX);
    MPI_Allgather(mine, (int)bytes, MPI_BYTE, all, (int)bytes, MPI_BYTE, MPI_COMM_WORLD);
}

void dist_broadcast(void *buf, size_t bytes)
{
    if (size == 1)
        return;
    for (size_t at = 0; at < bytes; at += INT_MAX) {
        const size_t len = bytes - at < INT_MAX ? bytes - at : INT_MAX;

        MPI_Bcast((char *)buf + at, (int)len, MPI_BYTE, 0, MPI_COMM_WORLD);
    }
}

int dist_first(bool flag)
{
    int mine = flag, *all;
    int first = -1;

    if (size == 1)
        return flag ? 0 : -1;
    all = xmalloc_array((size_t)size, sizeof(int));
    MPI_Allgather(&mine, 1, MPI_INT, all, 1, MPI_INT, MPI_COMM_WORLD);
    for (int r = size - 1; r >= 0; r--)
        if (all[r])
            first = r;
    free(all);
    return first;
}

void dist_send(int to, const void *buf, size_t bytes)
{
    RL_ASSERT(size > 1 && to >= 0 && to < size && to != rank && bytes <= INT_MAX);
    MPI_Send(buf, (int)bytes, MPI_BYTE, to, TAG_WORK, MPI_COMM_WORLD);
}

void dist_recv(int from, void *buf, size_t bytes)
{
    RL_ASSERT(size > 1 && from >= 0 && from < size && from != rank && bytes <= INT_MAX);
    MPI_Recv(buf, (int)bytes, MPI_BYTE, from, TAG_WORK, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
}

int dist_poll(void)
{
    MPI_Status st;
    int waiting = 0;

    RL_ASSERT(size > 1);
    MPI_Iprobe(MPI_ANY_SOURCE, TAG_WORK, MPI_COMM_WORLD, &waiting, &st);
    return waiting ? st.MPI_SOURCE : -1;
}

void dist_abort(int status)
{
    if (started)
        MPI_Abort(MPI_COMM_WORLD, status);
    exit(status);
}

#else /* one process */

void dist_init(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
}

void dist_finalize(void)
{
}

void dist_detach(void)
{
}

int dist_rank(void)
{
    return 0;
}

int dist_size(void)
{
    return 1;
}

bool dist_built_with_mpi(void)
{
    return false;
}

void dist_sum_floats(float *x, size_t n)
{
    (void)x;
    (void)n;
}

struct dist_sum_stats dist_sum_stats(void)
{
    return (struct dist_sum_stats){ 0 };
}

void dist_allgather(const void *mine, void *all, size_t bytes)
{
    memcpy(all, mine, bytes);
}

void dist_broadcast(void *buf, size_t bytes)
{
    (void)buf;
    (void)bytes;
}

int dist_first(bool flag)
{
    return flag ? 0 : -1;
}

void dist_send(int to, const void *buf, size_t bytes)
{
    (void)to;
    (void)buf;
    (void)bytes;
    RL_ASSERT(!"dist_send in one process");
}

void dist_recv(int from, void *buf, size_t bytes)
{
    (void)from;
    (void)buf;
    (void)bytes;
    RL_ASSERT(!"dist_recv in one process");
}

int dist_poll(void)
{
    RL_ASSERT(!"dist_poll in one process");
    return -1;
}

void dist_abort(int status)
{
    exit(status);
}

#endif
