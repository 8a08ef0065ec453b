/*
 * cmd_landscape.c: `randlora landscape RUN_A.h5 RUN_B.h5 RUN_C.h5 -o OUT.h5`:
 * the training loss on the plane of three runs' task vectors and along the
 * straight paths between them (results/landscape.h), written as a plain
 * HDF5 file (docs/results.md "Landscape files") that `randlora plot` draws.
 *
 * Exit status: 0 written; 2 bad usage or bad input (a run file that is not
 * a finished run, runs that do not share model, data and prompt; one line
 * naming the file); 1 other failures (nothing is left at OUT.h5 then: the
 * file is written to OUT.h5.tmp.PID and renamed when whole).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "cli/h5out.h"
#include "core/status.h"
#include "core/threads.h"
#include "results/landscape.h"

#define LANDSCAPE_SCHEMA 1

static void landscape_usage(FILE *out)
{
    fprintf(out,
            "usage: randlora landscape RUN_A.h5 RUN_B.h5 RUN_C.h5 -o OUT.h5 [--grid X0:X1:Y0:Y1:STEP]\n"
            "                          [--data-ratio R] [--seed S] [--batch N] [--path-points N]\n"
            "\n"
            "The training loss around three fine-tuned runs of one model (the RandLoRA\n"
            "paper's loss landscape): with task vectors tau_k = merged weights - frozen\n"
            "weights, the loss of theta_0 + a tau_A + b tau_B + c tau_C, a = 1 - y/2 - x,\n"
            "b = y, c = x - y/2, over a grid of (x, y) (A at (0,0), B at (0.5,1), C at\n"
            "(1,0)), and along the straight path between each two runs (the barrier), on a\n"
            "reproducible fraction of the training set. `randlora plot OUT.h5` draws it.\n"
            "\n"
            "  -o OUT.h5            the output file (replaced when whole)\n"
            "  --grid G             X0:X1:Y0:Y1:STEP, x in [X0, X1), y in [Y0, Y1)\n"
            "                       (default -1:1.5:-0.5:2:0.1, the paper's 25 x 25)\n"
            "  --data-ratio R       the fraction of the training set (default 0.01)\n"
            "  --seed S             the subset's draw (default 0)\n"
            "  --batch N            images per forward (default 64)\n"
            "  --path-points N      points along each barrier path, ends included\n"
            "                       (default 21; 0: no barrier)\n");
}

/* one usage error line (cli.h), exit status 2 */
#define bad(...) cli_bad("landscape", true, __VA_ARGS__)

static int parse_double(const char *s, double *out)
{
    char *end;

    errno = 0;
    *out = strtod(s, &end);
    return end != s && *end == '\0' && errno == 0 && isfinite(*out) ? 0 : -1;
}

static int write_result(const char *out, const struct landscape_info *in, const struct landscape_opts *o,
                        const struct landscape_result *r)
{
    static const char *const run_attr[LANDSCAPE_RUNS] = { "run_a", "run_b", "run_c" };
    static const char *const label_attr[LANDSCAPE_RUNS] = { "label_a", "label_b", "label_c" };
    struct h5out h = { .file = -1, .latest = true };
    double cx[LANDSCAPE_RUNS], cy[LANDSCAPE_RUNS];
    int rc;

    for (size_t k = 0; k < LANDSCAPE_RUNS; k++)
        landscape_corner(k, &cx[k], &cy[k]);
    if ((rc = h5out_create(&h, out)) || (rc = h5out_attr_fixed_string(&h, "kind", "landscape")) ||
        (rc = h5out_attr_int64(&h, "schema_version", LANDSCAPE_SCHEMA)) ||
        (rc = h5out_attr_fixed_string(&h, "harness", "randlora landscape")) ||
        (rc = h5out_attr_fixed_string(&h, "model", in->model)) ||
        (rc = h5out_attr_fixed_string(&h, "dataset", in->dataset)) ||
        (rc = h5out_attr_fixed_string(&h, "prompt", in->prompt)) ||
        (rc = h5out_attr_double(&h, "data_ratio", o->data_ratio)) ||
        (rc = h5out_attr_int64(&h, "data_seed", (int64_t)o->seed)) ||
        (rc = h5out_attr_int64(&h, "n_items", (int64_t)in->n_items)) ||
        (rc = h5out_attr_int64(&h, "n_layers", (int64_t)in->n_layers)) ||
        (rc = h5out_attr_double(&h, "grid_step", r->grid.step)) ||
        (rc = h5out_attr_double(&h, "zero_loss", r->zero_loss)) ||
        (rc = h5out_attr_double(&h, "seconds", r->seconds)))
        goto fail;
    for (size_t k = 0; k < LANDSCAPE_RUNS && !rc; k++)
        if ((rc = h5out_attr_fixed_string(&h, run_attr[k], in->run[k])) == RL_OK)
            rc = h5out_attr_fixed_string(&h, label_attr[k], in->label[k]);
    if (rc || (rc = h5out_write(&h, "x", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, r->grid.nx, 0, r->x)) ||
        (rc = h5out_write(&h, "y", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, r->grid.ny, 0, r->y)) ||
        (rc = h5out_write(&h, "loss", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, r->grid.nx, r->grid.ny, r->loss)) ||
        (rc = h5out_write(&h, "corner_x", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, LANDSCAPE_RUNS, 0, cx)) ||
        (rc = h5out_write(&h, "corner_y", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, LANDSCAPE_RUNS, 0, cy)) ||
        (rc = h5out_write(&h, "corner_loss", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, LANDSCAPE_RUNS, 0,
                          r->corner_loss)) ||
        (rc = h5out_write(&h, "run_loss", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, LANDSCAPE_RUNS, 0, r->run_loss)) ||
        (rc = h5out_write(&h, "tau_norm", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, LANDSCAPE_RUNS, 0, in->tau_norm)) ||
        (rc = h5out_write(&h, "data_index", H5T_STD_I64LE, H5T_NATIVE_INT64, in->n_items, 0, in->items)))
        goto fail;
    if (r->n_path &&
        ((rc = h5out_write(&h, "path_t", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, r->n_path, 0, r->t)) ||
         (rc = h5out_write(&h, "path_loss", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, LANDSCAPE_PAIRS, r->n_path,
                           r->path_loss)) ||
         (rc = h5out_write(&h, "barrier", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, LANDSCAPE_PAIRS, 0, r->barrier))))
        goto fail;
    return h5out_commit(&h);
fail:
    h5out_abort(&h);
    return rc;
}

static void print_result(const char *out, const struct landscape_info *in, const struct landscape_result *r)
{
    static const char names[LANDSCAPE_RUNS] = { 'A', 'B', 'C' };
    size_t best = 0;

    printf("landscape of %zu training items of %s, %zu adapted layers, %zux%zu grid + %zu path points, %.1f s\n",
           in->n_items, in->dataset, in->n_layers, r->grid.nx, r->grid.ny, r->n_path, r->seconds);
    printf("  run                                              label             ||tau||   own loss  merged loss\n");
    for (size_t k = 0; k < LANDSCAPE_RUNS; k++)
        printf("  %c %-48.48s %-16.16s %8.4g %10.5f %12.5f\n", names[k], in->run[k], in->label[k], in->tau_norm[k],
               r->run_loss[k], r->corner_loss[k]);
    printf("  frozen model (a = b = c = 0): %.5f\n", r->zero_loss);
    for (size_t i = 1; i < r->grid.nx * r->grid.ny; i++)
        if (r->loss[i] < r->loss[best])
            best = i;
    printf("  grid minimum %.5f at (x, y) = (%.3g, %.3g)\n", r->loss[best], r->x[best / r->grid.ny],
           r->y[best % r->grid.ny]);
    for (size_t p = 0; p < LANDSCAPE_PAIRS && r->n_path; p++) {
        size_t a, b;

        landscape_pair(p, &a, &b);
        printf("  barrier %c-%c: %.5f (largest rise over the straight line between the ends)\n", names[a],
               names[b], r->barrier[p]);
    }
    printf("wrote %s\n", out);
}

int cmd_landscape(int argc, char **argv)
{
    const char *runs[LANDSCAPE_RUNS] = { NULL, NULL, NULL }, *out = NULL;
    struct landscape_opts o;
    struct landscape *L = NULL;
    struct landscape_result r;
    struct landscape_info info;
    size_t n_runs = 0;
    int rc;

    landscape_opts_init(&o);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;

        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            landscape_usage(stdout);
            return 0;
        }
        if (a[0] != '-' || !a[1]) {
            if (n_runs == LANDSCAPE_RUNS)
                return bad("three run files, not more ('%s')", a);
            runs[n_runs++] = a;
            continue;
        }
        if (strcmp(a, "-o") && strcmp(a, "--output") && strcmp(a, "--grid") && strcmp(a, "--data-ratio") &&
            strcmp(a, "--seed") && strcmp(a, "--batch") && strcmp(a, "--path-points"))
            return bad("unknown option '%s'", a);
        if (i + 1 >= argc)
            return bad("%s needs a value", a);
        v = argv[++i];
        if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            out = v;
        } else if (!strcmp(a, "--grid")) {
            if (landscape_grid_parse(&o.grid, v))
                return bad("%s", rl_error_msg());
        } else if (!strcmp(a, "--data-ratio")) {
            if (parse_double(v, &o.data_ratio) || !(o.data_ratio > 0.0 && o.data_ratio <= 1.0))
                return bad("--data-ratio '%s': expected a fraction in (0, 1], e.g. 0.01", v);
        } else if (!strcmp(a, "--seed")) {
            char *end;

            errno = 0;
            o.seed = strtoull(v, &end, 10);
            if (end == v || *end || errno || v[0] == '-')
                return bad("--seed '%s': expected a whole number >= 0", v);
        } else if (!strcmp(a, "--batch")) {
            if (cli_parse_count(v, 1u << 16, &o.batch))
                return bad("--batch '%s': expected a whole number in 1..65536", v);
        } else if (strcmp(v, "0") == 0) {
            o.path_points = 0;
        } else if (cli_parse_count(v, LANDSCAPE_MAX_PATH, &o.path_points) || o.path_points < 2) {
            return bad("--path-points '%s': expected 0 (no barrier) or 2..%d", v, LANDSCAPE_MAX_PATH);
        }
    }
    if (n_runs != LANDSCAPE_RUNS)
        return bad("three run files are needed (%zu given)", n_runs);
    if (!out || !*out)
        return bad("no output file given (-o OUT.h5)");

    threads_init(0);
    o.progress = stderr;
    if ((rc = landscape_open(&L, runs, &o)) || (rc = landscape_compute(L, &o, &r)))
        goto done;
    landscape_describe(L, &info);
    rc = write_result(out, &info, &o, &r);
    if (rc == RL_OK)
        print_result(out, &info, &r);
    landscape_result_free(&r);
done:
    if (rc)
        fprintf(stderr, "randlora landscape: %s\n", rl_error_msg());
    landscape_close(L);
    return rl_exit_code(rc);
}
