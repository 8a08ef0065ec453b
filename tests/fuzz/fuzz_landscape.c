/*
 * fuzz_landscape.c: libFuzzer harness for the reader of landscape files
 * (results/plot_landscape.c, what `randlora plot` reads of a file that
 * `randlora landscape` wrote).
 *
 * The input is a whole HDF5 file: written to a private temporary file, then
 * plot_landscape_is and plot_landscape_read run on it; a file read whole
 * must hold the arrays its sizes say. Any status is fine; a crash,
 * sanitizer report or hang is a bug. Leaks are not checked input by input
 * (tests/fuzz/landscape.options, as for fuzz_store: libhdf5 keeps memory
 * between inputs); the replay in make check reports them at exit.
 * Seed (tests/fuzz/corpus/landscape/): a 5 x 5 landscape of three
 * quickstart runs with 5-point barrier paths.
 *
 *     build/fuzz/fuzz_landscape -max_total_time=60 build/fuzz/corpus/landscape tests/fuzz/corpus/landscape
 */
#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/status.h"
#include "results/plot_landscape.h"
#include "tests/fuzz/fuzz_files.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char path[64];
    struct plot_landscape p;
    volatile double sum = 0.0;

    if (!path[0]) {
        snprintf(path, sizeof path, "/tmp/fuzz_landscape_%ld.h5", (long)getpid());
        if (H5set_free_list_limits(0, 0, 0, 0, 0, 0) < 0)
            abort();
    }
    if (fuzz_write_file(path, data, size) != 0)
        abort();
    (void)plot_landscape_is(path);
    if (plot_landscape_read(path, &p) == RL_OK) {
        if (!p.x || !p.y || !p.loss || (p.n_path && (!p.t || !p.path_loss)))
            abort();
        for (size_t i = 0; i < p.nx * p.ny; i++)
            sum += p.loss[i];
        for (size_t i = 0; i < 3 * p.n_path; i++)
            sum += p.path_loss[i];
        plot_landscape_free(&p);
    }
    unlink(path);
    return 0;
}

#include "tests/fuzz/fuzz_replay.h"
