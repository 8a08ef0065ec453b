/*
 * dist.c: the processes of a data-parallel run over MPI (dist.h), or the
 * single-process fallback. This file is the only one that includes mpi.h.
 */
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/dist.h"
#include "core/status.h"

#ifdef RANDLORA_MPI
#include <limits.h>
#include <mpi.h>

/* floats one gather moves per rank: rank 0 holds size * PIECE of them */
#define PIECE ((size_t)1 << 20)

static int rank, size = 1;
static bool started;

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
    if (started)
        MPI_Finalize();
    started = false;
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

void dist_sum_floats(float *x, size_t n)
{
    float *all;

    if (size == 1 || n == 0)
        return;
    all = rank == 0 ? xmalloc_array((size_t)size * (n < PIECE ? n : PIECE), sizeof(float)) : NULL;
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
    free(all);
    dist_broadcast(x, n * sizeof(float));
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

void dist_abort(int status)
{
    exit(status);
}

#endif
