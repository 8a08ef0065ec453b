/*
 * check_landscape.c: `randlora landscape` (results/landscape.h) and its
 * figures (results/plot_landscape.h), on three real runs (LoRA, RandLoRA,
 * full fine-tuning, a few steps each) of a tiny random CLIP:
 *   - the loss at each solution's corner of the grid (x, y) = (0, 0),
 *     (0.5, 1), (1, 0), where (a, b, c) is a unit vector, equals that run's
 *     own loss on the same training items, computed here independently
 *     (the run's adapters attached to the frozen model, factored, and the
 *     training loss over the items the file lists); the three differ from
 *     each other and from the frozen model's, so a mix-up of a, b, c fails;
 *   - the grid: the paper's default is 25 x 25 on [-1, 1.5) x [-0.5, 2);
 *     a given grid has the shape and coordinates asked for; the barrier
 *     paths start and end at the corners and their middle is the mixture
 *     (1/2, 1/2);
 *   - the file the command writes reads back (plot_landscape_read) with
 *     those values, and `plot` draws both figures from it;
 *   - refusals, exit 2 with one line naming the cause: runs of another
 *     model, a run of `none`, a missing file, two runs, a bad --grid,
 *     --data-ratio or --path-points; a file that is not a landscape, has
 *     a /loss of the wrong shape or is in HDF5's oldest format (no
 *     checksums) is refused by the reader.
 */
#include <hdf5.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "core/status.h"
#include "datasets/dataset.h"
#include "datasets/loader.h"
#include "experiments/runner.h"
#include "models/tokenizer.h"
#include "results/landscape.h"
#include "results/plot_landscape.h"
#include "results/run_adapters.h"
#include "results/store.h"
#include "runner_harness.h"
#include "suites.h"
#include "test_cmd.h"
#include "test_util.h"

#define DATA_RATIO "0.0002"                 /* 20 of shapes-count's 100000 */

static struct tmp T, T2;                    /* the model; another model   */
static char run_path[4][256];               /* lora, randlora, full, none */
static char other_model_run[256];

static void train(const struct tmp *t, const char *method, const char *path)
{
    const char *ov[] = { "method.methods=x", "train.steps=4", "train.lr=3e-2", "train.eval_every=0",
                         "train.checkpoint_every=0", "data.eval_limit=8" };
    char m[64];
    struct experiment e;
    struct run_plan *plans = NULL;

    snprintf(m, sizeof m, "method.methods=%s", method);
    ov[0] = m;
    make_plan(&plans, &e, t, ov, sizeof ov / sizeof ov[0]);
    ck_assert_msg(run_quiet(&plans[0], path, NULL, false, NULL) == RL_OK, "%s: %s", method, rl_error_msg());
    run_plans_free(plans, 1);
    experiment_free(&e);
}

static void setup(void)
{
    static const char *const methods[4] = { "lora", "randlora", "full", "none" };

    tmp_setup(&T, true);
    tmp_setup(&T2, true);
    for (int k = 0; k < 4; k++) {
        snprintf(run_path[k], sizeof run_path[k], "%s/%s.h5", T.dir, methods[k]);
        train(&T, methods[k], run_path[k]);
    }
    snprintf(other_model_run, sizeof other_model_run, "%s/lora.h5", T2.dir);
    train(&T2, "lora", other_model_run);
}

static void teardown(void)
{
    tmp_cleanup(&T);
    tmp_cleanup(&T2);
}

/* The run's own training loss over the items, computed here: its adapters
 * on the frozen model (run_adapters_attach), one prompt per class, the CLIP
 * eval transform, mean cross-entropy. */
static double own_loss(const char *run, const int64_t *items, size_t n)
{
    struct store *s;
    struct run_adapters ra;
    struct clip_model m;
    struct clip_adapters ca;
    struct dataset ds;
    struct loader *L;
    struct loader_config lc;
    struct loader_batch b;
    struct tokenizer *tok;
    struct clip_vision_run vr;
    struct clip_text_run tr;
    struct clip_head h;
    size_t *idx = calloc(n, sizeof(size_t)), M, D, ctx, maxT = 0;
    float *img, *txt;
    int32_t *ids;
    double loss;

    ck_assert_int_eq(store_open(&s, run), RL_OK);
    ck_assert_msg(run_adapters_load(&ra, s) == RL_OK, "%s", rl_error_msg());
    store_close(s);
    ck_assert_int_eq(runner_load_model(&m, &ra.plan->model), RL_OK);
    ck_assert_int_eq(dataset_open(&ds, ra.plan->dataset), RL_OK);
    M = (size_t)ds.n_classes;
    D = m.cfg.projection_dim;
    ctx = m.cfg.text.context;
    ck_assert_msg(run_adapters_attach(&ra, &m, &ca, n, M) == RL_OK, "%s", rl_error_msg());
    ck_assert_int_eq(runner_load_tokenizer(&tok, runner_model_dir(&ra.plan->model), &m.cfg), RL_OK);
    ids = calloc(M * ctx, sizeof(int32_t));
    for (size_t c = 0; c < M; c++) {
        char text[256];
        int eot = 0;
        runner_fill_prompt(text, sizeof text, ra.plan->prompt, ds.class_names[c]);
        ck_assert_int_eq(tok_encode(tok, text, ids + c * ctx, &eot), RL_OK);
        if ((size_t)eot + 1 > maxT)
            maxT = (size_t)eot + 1;
    }
    for (size_t i = 0; i < n; i++)
        idx[i] = (size_t)items[i];
    loader_config_init(&lc, (int)n, (int)m.cfg.vision.image_size);
    ck_assert_int_eq(loader_open(&L, &ds, idx, n, &lc), RL_OK);
    ck_assert_int_eq(loader_next(L, &b), RL_OK);
    ck_assert_int_eq(b.n, (int)n);
    img = calloc(n * D, sizeof(float));
    txt = calloc(M * D, sizeof(float));
    clip_vision_run_init(&vr, &m, n, false);
    clip_text_run_init(&tr, &m, M, maxT, false);
    clip_head_init(&h, n, M, D);
    ck_assert_int_eq(clip_text_forward(&tr, &m, &ca, ids, M, ctx, txt), RL_OK);
    ck_assert_int_eq(clip_vision_forward(&vr, &m, &ca, b.x, n, img), RL_OK);
    clip_head_logits(&h, img, txt, n, M, clip_logit_scale(&m));
    loss = clip_head_crossentropy(&h, b.labels);
    clip_head_free(&h);
    clip_text_run_free(&tr);
    clip_vision_run_free(&vr);
    free(img);
    free(txt);
    free(ids);
    free(idx);
    loader_close(L);
    tok_free(tok);
    clip_adapters_free(&ca);
    dataset_close(&ds);
    clip_model_free(&m);
    run_adapters_free(&ra);
    return loss;
}

START_TEST(test_default_grid)
{
    struct landscape_opts o;
    struct landscape_grid g;
    double coef[3], x, y;

    landscape_opts_init(&o);
    ck_assert_uint_eq(o.grid.nx, 25);
    ck_assert_uint_eq(o.grid.ny, 25);
    ck_assert_double_eq_tol(landscape_grid_x(&o.grid, 0), -1.0, 1e-12);
    ck_assert_double_eq_tol(landscape_grid_x(&o.grid, 24), 1.4, 1e-12);
    ck_assert_double_eq_tol(landscape_grid_y(&o.grid, 0), -0.5, 1e-12);
    ck_assert_double_eq_tol(landscape_grid_y(&o.grid, 24), 1.9, 1e-12);
    ck_assert_double_eq(o.data_ratio, 0.01);
    /* each solution's corner is its unit vector */
    for (size_t k = 0; k < 3; k++) {
        landscape_corner(k, &x, &y);
        landscape_coeffs(x, y, coef);
        for (size_t j = 0; j < 3; j++)
            ck_assert_double_eq(coef[j], (j == k ? 1.0 : 0.0));
    }
    ck_assert_int_eq(landscape_grid_parse(&g, "0:1.01:0:2:0.5"), RL_OK);
    ck_assert_uint_eq(g.nx, 3);
    ck_assert_uint_eq(g.ny, 4);
    ck_assert_int_eq(landscape_grid_parse(&g, "0:1:0"), RL_ERR_ARG);
    ck_assert_int_eq(landscape_grid_parse(&g, "1:0:0:1:0.1"), RL_ERR_ARG);
    ck_assert_int_eq(landscape_grid_parse(&g, "0:1:0:1:0"), RL_ERR_ARG);
    ck_assert_int_eq(landscape_grid_parse(&g, "0:1000:0:1:0.1"), RL_ERR_ARG);
}
END_TEST

static void corners_are_the_runs(void)
{
    const char *paths[3] = { run_path[0], run_path[1], run_path[2] };
    char out[300], figs[300];
    struct test_captured c;
    struct plot_landscape p;
    double own[3];

    snprintf(out, sizeof out, "%s/landscape.h5", T.dir);
    snprintf(figs, sizeof figs, "%s/figs", T.dir);
    c = test_run_cmd(T.dir, cmd_landscape, "landscape", paths[0], paths[1], paths[2], "--grid",
                     "0:1.01:0:1.01:0.5", "--data-ratio", DATA_RATIO, "--path-points", "5", "-o", out, NULL);
    ck_assert_msg(c.status == 0, "landscape: %s", c.err);
    ck_assert_ptr_nonnull(strstr(c.out, "wrote"));
    test_captured_free(&c);

    ck_assert_msg(plot_landscape_read(out, &p) == RL_OK, "%s", rl_error_msg());
    ck_assert_uint_eq(p.nx, 3);
    ck_assert_uint_eq(p.ny, 3);
    ck_assert_uint_eq(p.n_items, 20);
    for (size_t i = 0; i < 3; i++) {
        ck_assert_double_eq_tol(p.x[i], 0.5 * (double)i, 1e-12);
        ck_assert_double_eq_tol(p.y[i], 0.5 * (double)i, 1e-12);
    }

    /* the items the file lists, and each run's own loss on them */
    {
        hid_t f = H5Fopen(out, H5F_ACC_RDONLY, H5P_DEFAULT);
        hid_t d = H5Dopen2(f, "data_index", H5P_DEFAULT);
        int64_t items[20];

        ck_assert_int_ge(d, 0);
        ck_assert_int_ge(H5Dread(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, items), 0);
        H5Dclose(d);
        H5Fclose(f);
        for (size_t i = 1; i < 20; i++)
            ck_assert_int_lt(items[i - 1], items[i]);
        for (size_t k = 0; k < 3; k++)
            own[k] = own_loss(paths[k], items, 20);
    }
    for (size_t k = 0; k < 3; k++) {
        size_t i = (size_t)(p.corner_x[k] / 0.5 + 0.5), j = (size_t)(p.corner_y[k] / 0.5 + 0.5);

        ck_assert_msg(fabs(p.corner_loss[k] - own[k]) < 1e-4 * (1.0 + own[k]),
                      "run %zu: merged %.7f, own %.7f", k, p.corner_loss[k], own[k]);
        /* the grid point at the corner is the same computation */
        ck_assert_double_eq(p.loss[i * p.ny + j], p.corner_loss[k]);
        /* runs differ from each other and from the frozen model */
        ck_assert_msg(fabs(own[k] - p.zero_loss) > 1e-3, "run %zu: loss %.6f, frozen %.6f", k, own[k], p.zero_loss);
        ck_assert_msg(fabs(own[k] - own[(k + 1) % 3]) > 1e-4, "runs %zu and %zu: %.6f %.6f", k, (k + 1) % 3, own[k],
                      own[(k + 1) % 3]);
    }
    /* the barrier paths: ends at the corners, the middle the mixture */
    ck_assert_uint_eq(p.n_path, 5);
    for (size_t q = 0; q < 3; q++) {
        size_t a, b;

        landscape_pair(q, &a, &b);
        ck_assert_double_eq(p.path_loss[q * 5], p.corner_loss[a]);
        ck_assert_double_eq(p.path_loss[q * 5 + 4], p.corner_loss[b]);
        ck_assert_double_eq_tol(p.t[2], 0.5, 1e-15);
    }
    {
        struct landscape *L;
        struct landscape_opts o;
        double half[3] = { 0.5, 0.5, 0.0 }, v;

        landscape_opts_init(&o);
        o.data_ratio = atof(DATA_RATIO);
        ck_assert_msg(landscape_open(&L, paths, &o) == RL_OK, "%s", rl_error_msg());
        ck_assert_int_eq(landscape_loss(L, half, &v), RL_OK);
        ck_assert_double_eq(v, p.path_loss[2]);
        /* the model's weights are put back: the corner again, bit for bit */
        ck_assert_int_eq(landscape_loss(L, (double[3]){ 1, 0, 0 }, &v), RL_OK);
        ck_assert_double_eq(v, p.corner_loss[0]);
        landscape_close(L);
    }
    plot_landscape_free(&p);

    /* plot draws both figures */
    c = test_run_cmd(T.dir, cmd_plot, "plot", out, "-o", figs, NULL);
    ck_assert_msg(c.status == 0, "plot: %s", c.err);
    test_captured_free(&c);
    {
        char f1[400], f2[400];

        snprintf(f1, sizeof f1, "%s/landscape.tsv", figs);
        snprintf(f2, sizeof f2, "%s/landscape_barrier.tsv", figs);
        ck_assert_int_eq(access(f1, R_OK), 0);
        ck_assert_int_eq(access(f2, R_OK), 0);
        snprintf(f1, sizeof f1, "%s/landscape.gp", figs);
        char *gp = test_slurp(f1, NULL);
        ck_assert_ptr_nonnull(strstr(gp, "with pm3d"));
        ck_assert_ptr_nonnull(strstr(gp, "set contour base"));
        free(gp);
    }
}


static void refused(const char *what, const char *want, ...)
{
    va_list ap;
    const char *argv[16];
    int n = 0;
    struct test_captured c;

    va_start(ap, want);
    while (n < 15 && (argv[n] = va_arg(ap, const char *)) != NULL)
        n++;
    va_end(ap);
    argv[n] = NULL;
    c = test_run_cmd(T.dir, cmd_landscape, "landscape", n > 0 ? argv[0] : NULL, n > 1 ? argv[1] : NULL,
                     n > 2 ? argv[2] : NULL, n > 3 ? argv[3] : NULL, n > 4 ? argv[4] : NULL,
                     n > 5 ? argv[5] : NULL, n > 6 ? argv[6] : NULL, n > 7 ? argv[7] : NULL,
                     n > 8 ? argv[8] : NULL, NULL);
    test_assert_one_line_error(&c, "randlora landscape: ", want, what);
    test_captured_free(&c);
}

static void refusals(void)
{
    char out[300], missing[300];

    snprintf(out, sizeof out, "%s/bad.h5", T.dir);
    snprintf(missing, sizeof missing, "%s/missing.h5", T.dir);
    refused("another model", "fine-tuned from one model", run_path[0], run_path[1], other_model_run, "--data-ratio",
            DATA_RATIO, "-o", out, NULL);
    refused("none", "method none", run_path[0], run_path[3], run_path[2], "-o", out, NULL);
    refused("missing", "missing.h5", run_path[0], missing, run_path[2], "-o", out, NULL);
    refused("two runs", "three run files", run_path[0], run_path[1], "-o", out, NULL);
    refused("no -o", "-o OUT.h5", run_path[0], run_path[1], run_path[2], NULL);
    refused("bad grid", "--grid", run_path[0], run_path[1], run_path[2], "--grid", "0:1:2", "-o", out, NULL);
    refused("empty grid", "empty", run_path[0], run_path[1], run_path[2], "--grid", "1:0:0:1:0.1", "-o", out, NULL);
    refused("ratio", "--data-ratio", run_path[0], run_path[1], run_path[2], "--data-ratio", "0", "-o", out, NULL);
    refused("ratio", "--data-ratio", run_path[0], run_path[1], run_path[2], "--data-ratio", "1.5", "-o", out, NULL);
    refused("path points", "--path-points", run_path[0], run_path[1], run_path[2], "--path-points", "1", "-o", out,
            NULL);
    ck_assert_int_eq(access(out, F_OK), -1);           /* nothing written */
}


/* a landscape-kind file with one object changed */
static void write_fake(const char *path, size_t nx_loss, bool latest)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS), f, st = H5Tcopy(H5T_C_S1), sp = H5Screate(H5S_SCALAR), a;
    const char *kind = "landscape";
    double v[4] = { 0, 1, 2, 3 };
    hsize_t d1[1] = { 3 }, d2[2] = { nx_loss, 3 };

    H5Pset_libver_bounds(fapl, latest ? H5F_LIBVER_LATEST : H5F_LIBVER_EARLIEST, H5F_LIBVER_LATEST);
    f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    H5Tset_size(st, strlen(kind) + 1);
    a = H5Acreate2(f, "kind", st, sp, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, st, kind);
    H5Aclose(a);
    const char *const sattr[] = { "run_a", "run_b", "run_c", "label_a", "label_b", "label_c", "dataset" };
    for (size_t i = 0; i < sizeof sattr / sizeof *sattr; i++) {
        a = H5Acreate2(f, sattr[i], st, sp, H5P_DEFAULT, H5P_DEFAULT);
        H5Awrite(a, st, kind);
        H5Aclose(a);
    }
    const char *const dattr[] = { "zero_loss", "data_ratio", "n_items" };
    for (size_t i = 0; i < 3; i++) {
        a = H5Acreate2(f, dattr[i], H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
        H5Awrite(a, H5T_NATIVE_DOUBLE, &v[1]);
        H5Aclose(a);
    }
    const char *const vec[] = { "x", "y", "corner_x", "corner_y", "corner_loss" };
    for (size_t i = 0; i < 5; i++) {
        hid_t s1 = H5Screate_simple(1, d1, NULL), d = H5Dcreate2(f, vec[i], H5T_IEEE_F64LE, s1, H5P_DEFAULT,
                                                                   H5P_DEFAULT, H5P_DEFAULT);
        H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
        H5Dclose(d);
        H5Sclose(s1);
    }
    double *loss = calloc(nx_loss * 3, sizeof(double));
    hid_t s2 = H5Screate_simple(2, d2, NULL), d = H5Dcreate2(f, "loss", H5T_IEEE_F64LE, s2, H5P_DEFAULT,
                                                              H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, loss);
    free(loss);
    H5Dclose(d);
    H5Sclose(s2);
    H5Sclose(sp);
    H5Tclose(st);
    H5Fclose(f);
}

static void reader_refuses(void)
{
    struct plot_landscape p;
    char path[300];

    snprintf(path, sizeof path, "%s/fake.h5", T.dir);
    write_fake(path, 3, true);
    ck_assert(plot_landscape_is(path));
    ck_assert_msg(plot_landscape_read(path, &p) == RL_OK, "%s", rl_error_msg());  /* the fake is whole */
    plot_landscape_free(&p);
    write_fake(path, 2, true);
    ck_assert_int_eq(plot_landscape_read(path, &p), RL_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(rl_error_msg(), "/loss: 2x3, expected 3x3"));
    /* the same file in HDF5's oldest format (object headers without
     * checksums) is not read */
    write_fake(path, 3, false);
    ck_assert(!plot_landscape_is(path));
    ck_assert_int_eq(plot_landscape_read(path, &p), RL_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(rl_error_msg(), "superblock"));
    /* a run file is not a landscape */
    ck_assert(!plot_landscape_is(run_path[0]));
    ck_assert_int_eq(plot_landscape_read(run_path[0], &p), RL_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(rl_error_msg(), "expected 'landscape'"));
}


/* one test on one set of runs: the fixture trains in the test's own
 * process (OpenMP's threads do not survive a fork) */
START_TEST(test_landscape_runs)
{
    setup();
    corners_are_the_runs();
    refusals();
    reader_refuses();
    teardown();
}
END_TEST

Suite *suite_landscape(void)
{
    Suite *s = suite_create("landscape");
    TCase *tc = tcase_create("landscape");

    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_default_grid);
    tcase_add_test(tc, test_landscape_runs);
    suite_add_tcase(s, tc);
    return s;
}
