/*
 * analyze_harness.h: what the analyze suites share (check_analyze.c,
 * check_analyze_cka.c): a temporary directory, a command run with its
 * output in a file, and synthetic run files written with the store API in
 * the runner's layout (run_adapters.h): a fake trained adapter (random
 * nonzero parameters) per run on five small sites. Failures abort the test.
 */
#ifndef RANDLORA_TESTS_ANALYZE_HARNESS_H
#define RANDLORA_TESTS_ANALYZE_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "experiments/config.h"
#include "results/store.h"

/* a fresh directory /tmp/rl_analyze_XXXXXX, and a file in it (one of 64
 * rotating static buffers); remove it with test_tmpdir_remove */
extern char an_tmpdir[64];
void an_make_tmpdir(void);
const char *an_tmp_path(const char *name);

/* fn(argv) (NULL-terminated) with stdout and stderr into the file out; its
 * exit status */
int an_run_cmd(int (*fn)(int, char **), char **argv, const char *out);
/* `randlora analyze` with up to six arguments (NULL ends them), into out */
int an_analyze6(const char *out, const char *a, const char *b, const char *c, const char *d,
                const char *e, const char *f);
int an_analyze(const char *out, const char *a, const char *b, const char *c, const char *d);

/* the size of a file, -1 when it is missing */
long an_file_size(const char *path);
/* whether plot will find gnuplot ($RANDLORA_GNUPLOT or PATH) */
bool an_have_gnuplot(void);

/* the adapted layers of every synthetic run */
#define N_SITES 5
struct synth_site {
    const char *name;
    size_t d_out, d_in;
};
extern const struct synth_site synth_sites[N_SITES];

/* the plans of an experiment text over the synthetic sites (caller frees
 * with run_plans_free); the one plan of method at rank (0: its default),
 * shots and seed */
struct run_plan *synth_plans(const char *ini, size_t *n);
struct run_plan *synth_plan(const char *method, int rank, int shots, int seed);

struct synth_opts {
    const char *config_text;     /* instead of the plan's INI                */
    bool no_adapter;             /* stop after training (no /adapter)        */
    bool no_shared;              /* no /adapter/shared                       */
    bool live;                   /* a writer killed during training          */
};

/* what a synthetic run holds, for comparisons */
struct synth_run {
    float *params[N_SITES];      /* per synth_sites[] entry                  */
    size_t n_params[N_SITES];
};
void synth_run_free(struct synth_run *r);

/* Write a finished run of `plan` (a fake trained adapter: random params);
 * o may be NULL; out (optional) receives copies of the parameters. */
void synth_write_run(const char *path, const struct run_plan *plan, const struct synth_opts *o,
                     struct synth_run *out);
/* a 4-shot seed-1 run of method at rank */
void synth_write_simple(const char *path, const char *method, int rank, struct synth_run *out);
/* the index of a site in synth_sites (asserted) */
size_t synth_site_index(const char *name);

/* /analysis/<site>/<what> of an open run file */
int64_t an_read_i64(struct store *s, const char *site, const char *what);
double an_read_f64(struct store *s, const char *site, const char *what);

#endif /* RANDLORA_TESTS_ANALYZE_HARNESS_H */
