/*
 * check_plot_writer.c: the figure writer (results/plot.c, plot_gp.c,
 * plot_render.c) on synthetic series: each kind's .tsv and .gp content, the
 * same bytes every time, seeds aggregated into mean +- sd, PNG and SVG
 * rendered by gnuplot, and the errors (no gnuplot, a gnuplot failure, bad
 * figures). What `randlora plot` draws from run files: check_plot.c.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/status.h"
#include "results/plot.h"
#include "suites.h"
#include "test_cmd.h"
#include "test_util.h"

static char tmpdir[512];

static void tmp_setup(void)
{
    ck_assert_ptr_nonnull(test_tmpdir_make(tmpdir, sizeof(tmpdir), "plot"));
}

static void tmp_teardown(void)
{
    test_tmpdir_remove(tmpdir);
    tmpdir[0] = '\0';
}

static char *tpath(const char *name)
{
    static char bufs[32][1024];   /* stems stay valid across a test's later calls */
    static int next;
    char *b = bufs[next++ % 32];

    snprintf(b, sizeof(bufs[0]), "%s/%s", tmpdir, name);
    return b;
}

#define slurp test_slurp     /* test_cmd.h */

static long file_size(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

#define ck_assert_has(text, needle) \
    ck_assert_msg(strstr((text), (needle)) != NULL, "missing \"%s\" in:\n%s", (needle), (text))

static const double steps[4] = {0, 10, 20, 30};
static const double loss_a[4] = {2.5, 1.25, 0.75, 0.5};
static const double loss_b[4] = {2.25, 1.5, NAN, 0.625};
static const double loss_c[4] = {2.5, 1.0, 0.5, 0.25};

static struct plot_figure loss_figure(struct plot_series *s, const char *stem)
{
    s[0] = (struct plot_series){.name = "lora", .n = 4, .x = steps, .y = loss_a};
    s[1] = (struct plot_series){.name = "vera_r256_seed_0", .n = 4, .x = steps, .y = loss_b};
    s[2] = (struct plot_series){.name = "lora", .n = 4, .x = steps, .y = loss_c};
    return (struct plot_figure){.kind = PLOT_LOSS, .stem = stem, .title = "oxford_pets, 4 shots",
                                .series = s, .n_series = 3, .logy = 1};
}

START_TEST(test_plot_files_content)
{
    struct plot_series s[3];
    struct plot_figure fig = loss_figure(s, tpath("loss"));
    char *tsv, *gp;

    ck_assert_int_eq(plot_write_files(&fig), RL_OK);
    tsv = slurp(tpath("loss.tsv"), NULL);
    gp = slurp(tpath("loss.gp"), NULL);

    /* data: header comments, blocks split by two blank lines, NaN left out */
    ck_assert_msg(strncmp(tsv, "# oxford_pets, 4 shots\n", 23) == 0, "%s", tsv);
    ck_assert_has(tsv, "# columns: step\tloss\n");
    ck_assert_has(tsv, "# index 0: lora\n0\t2.5\n10\t1.25\n20\t0.75\n30\t0.5\n\n\n# index 1: "
                       "vera_r256_seed_0\n0\t2.25\n10\t1.5\n30\t0.625\n\n\n# index 2: lora\n");
    ck_assert(strstr(tsv, "nan") == NULL && strstr(tsv, "NaN") == NULL);
    ck_assert(strstr(tsv, "\n\n\n\n") == NULL);

    /* script: both terminals, literal names, logscale, a key entry per name */
    ck_assert_has(gp, "set datafile separator \"\\t\"\n");
    ck_assert_has(gp, "set terminal pngcairo noenhanced");
    ck_assert_has(gp, "set output 'loss.png'\n");
    ck_assert_has(gp, "set terminal svg noenhanced");
    ck_assert_has(gp, "set output 'loss.svg'\n");
    ck_assert_has(gp, "unset output\n");
    ck_assert_has(gp, "set title 'oxford_pets, 4 shots' noenhanced\n");
    ck_assert_has(gp, "set logscale y\n");
    ck_assert_has(gp, "set linetype 1 linecolor rgb '#0072B2'");
    ck_assert_has(gp, "'loss.tsv' index 0 using 1:2 with lines linetype 1");
    ck_assert_has(gp, "title 'vera_r256_seed_0' noenhanced");
    ck_assert_has(gp, "'loss.tsv' index 2 using 1:2 with lines linetype 1 dashtype 1 "
                      "linewidth 1.5 notitle");
    ck_assert(strstr(gp, "set linetype 3 ") == NULL);   /* two names, two styles */
    ck_assert(strstr(gp, tmpdir) == NULL);              /* relocatable: bare file names */
    free(tsv);
    free(gp);
}
END_TEST

START_TEST(test_plot_deterministic)
{
    struct plot_series s[3];
    struct plot_figure fig = loss_figure(s, tpath("det"));
    char *t1, *g1, *t2, *g2;
    size_t lt1, lg1, lt2, lg2;

    ck_assert_int_eq(plot_write_files(&fig), RL_OK);
    t1 = slurp(tpath("det.tsv"), &lt1);
    g1 = slurp(tpath("det.gp"), &lg1);
    ck_assert_int_eq(plot_write_files(&fig), RL_OK);
    t2 = slurp(tpath("det.tsv"), &lt2);
    g2 = slurp(tpath("det.gp"), &lg2);
    ck_assert_uint_eq(lt1, lt2);
    ck_assert_uint_eq(lg1, lg2);
    ck_assert(memcmp(t1, t2, lt1) == 0);
    ck_assert(memcmp(g1, g2, lg1) == 0);
    ck_assert_int_eq(access(tpath("det.tsv.tmp"), F_OK), -1);
    free(t1);
    free(g1);
    free(t2);
    free(g2);
}
END_TEST

START_TEST(test_plot_shots_aggregates_seeds)
{
    /* two seeds at 1, 4 and 16 shots (out of order), one point at 2 */
    const double x[7] = {4, 1, 16, 4, 1, 16, 2};
    const double y[7] = {0.6, 0.5, 0.9, 0.8, 0.5, 0.9, 0.55};
    const double x2[2] = {1, 8}, y2[2] = {0.25, 0.5};
    struct plot_series s[2] = {{.name = "rand_lora", .n = 7, .x = x, .y = y}, {.name = "lora", .n = 2, .x = x2, .y = y2}};
    struct plot_figure fig = {.kind = PLOT_ACC_SHOTS, .stem = tpath("shots"), .series = s,
                              .n_series = 2};
    char *tsv, *gp;

    ck_assert_int_eq(plot_write_files(&fig), RL_OK);
    tsv = slurp(tpath("shots.tsv"), NULL);
    gp = slurp(tpath("shots.gp"), NULL);
    ck_assert_has(tsv, "# columns: shots\tmean_acc\tstd_acc\tn\n");
    ck_assert_has(tsv, "# index 0: rand_lora\n1\t0.5\t0\t2\n2\t0.55\t0\t1\n4\t0.7\t0.1414213562\t2\n"
                       "16\t0.9\t0\t2\n\n\n# index 1: lora\n1\t0.25\t0\t1\n8\t0.5\t0\t1\n");
    ck_assert_has(gp, "set logscale x 2\n");
    ck_assert_has(gp, "set xtics (1, 2, 4, 8, 16)\n");
    ck_assert_has(gp, "index 0 using 1:2:3 with yerrorlines linetype 1 title 'rand_lora' noenhanced");
    ck_assert_has(gp, "index 1 using 1:2 with linespoints linetype 2 title 'lora' noenhanced");
    free(tsv);
    free(gp);
}
END_TEST

START_TEST(test_plot_other_kinds_content)
{
    const double sv[5] = {4, 2, 1, 1e-9, 0};
    const double layer[3] = {0, 1, 2}, rk[3] = {8, 8, 7}, rk2[3] = {64, 64, 64};
    const double params[2] = {1e4, 1e5}, acc[2] = {0.5, 0.625}, err[2] = {0.01, 0.02};
    const double at[3] = {0, 1, 2};
    const char *labels[3] = {"v0.q_proj", "it's_v1", "v2"};
    struct plot_series sp = {.name = "lora_r8", .n = 5, .x = NULL, .y = sv};
    struct plot_series rs[2] = {{.name = "lora", .n = 3, .x = layer, .y = rk}, {.name = "randlora", .n = 3, .x = layer, .y = rk2}};
    struct plot_series ps = {.name = "vera", .n = 2, .x = params, .y = acc, .yerr = err};
    struct plot_figure f1 = {.kind = PLOT_SPECTRUM, .stem = tpath("spec"), .series = &sp,
                             .n_series = 1, .normalise = 1};
    struct plot_figure f2 = {.kind = PLOT_RANK, .stem = tpath("rank"), .series = rs,
                             .n_series = 2, .n_xtics = 3, .xtic_at = at, .xtic_labels = labels};
    struct plot_figure f3 = {.kind = PLOT_ACC_PARAMS, .stem = tpath("params"), .series = &ps,
                             .n_series = 1, .xlabel = "trainable_params"};
    char *t, *g;

    ck_assert_int_eq(plot_write_files(&f1), RL_OK);
    t = slurp(tpath("spec.tsv"), NULL);
    g = slurp(tpath("spec.gp"), NULL);
    ck_assert_has(t, "# index 0: lora_r8\n1\t1\n2\t0.5\n3\t0.25\n4\t2.5e-10\n5\t0\n");
    ck_assert_has(g, "set logscale y\n");
    ck_assert_has(g, "set ylabel 's_i / s_1' noenhanced\n");
    ck_assert_has(g, "with linespoints linetype 1 title 'lora_r8' noenhanced");
    free(t);
    free(g);

    ck_assert_int_eq(plot_write_files(&f2), RL_OK);
    t = slurp(tpath("rank.tsv"), NULL);
    g = slurp(tpath("rank.gp"), NULL);
    ck_assert_has(t, "# index 1: randlora\n0\t64\n1\t64\n2\t64\n");
    ck_assert_has(g, "set boxwidth 0.4 absolute\n");
    ck_assert_has(g, "using ($1-0.2):2 with boxes linetype 1");
    ck_assert_has(g, "using ($1+0.2):2 with boxes linetype 2");
    ck_assert_has(g, "('v0.q_proj' 0, 'it''s_v1' 1, 'v2' 2)");
    free(t);
    free(g);

    ck_assert_int_eq(plot_write_files(&f3), RL_OK);
    t = slurp(tpath("params.tsv"), NULL);
    g = slurp(tpath("params.gp"), NULL);
    ck_assert_has(t, "10000\t0.5\t0.01\t1\n100000\t0.625\t0.02\t1\n");
    ck_assert_has(g, "set logscale x 10\n");
    ck_assert_has(g, "set xlabel 'trainable_params' noenhanced\n");
    ck_assert_has(g, "using 1:2:3 with yerrorlines linetype 1 title 'vera' noenhanced");
    free(t);
    free(g);
}
END_TEST

/* all five kinds rendered to non-empty PNG and SVG, when gnuplot is here */
START_TEST(test_plot_render_all_kinds)
{
    const double x[5] = {1, 2, 4, 8, 16}, y[5] = {0.5, 0.6, 0.7, 0.75, 0.8};
    const double y2[5] = {0.45, 0.55, 0.72, 0.7, 0.85};
    const double sv[5] = {4, 2, 1, 0.5, 0.25};
    struct plot_series s2[2] = {{.name = "lora", .n = 5, .x = x, .y = y}, {.name = "full_ft", .n = 5, .x = x, .y = y2}};
    struct plot_series ls[3];
    struct plot_figure figs[5];
    const char *stems[5] = {"r_loss", "r_params", "r_shots", "r_spec", "r_rank"};
    static const unsigned char png_magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

    figs[0] = loss_figure(ls, tpath(stems[0]));
    for (int k = 1; k < 5; k++)
        figs[k] = (struct plot_figure){.kind = (enum plot_kind)k, .stem = tpath(stems[k]),
                                       .series = s2, .n_series = 2};
    figs[3].series = (struct plot_series[]){{.name = "lora", .n = 5, .x = NULL, .y = sv}};
    figs[3].n_series = 1;
    for (int k = 0; k < 5; k++) {
        char name[64], *png;
        int rc = plot_write(&figs[k]);

        if (rc == RL_ERR_NA) {
            printf("check_analysis: gnuplot not found, rendering not tested (%s)\n",
                   rl_error_msg());
            return;
        }
        ck_assert_msg(rc == RL_OK, "%s: %s", stems[k], rl_error_msg());
        snprintf(name, sizeof(name), "%s.png", stems[k]);
        ck_assert_int_gt(file_size(tpath(name)), 1000);
        png = slurp(tpath(name), NULL);
        ck_assert(memcmp(png, png_magic, 8) == 0);
        free(png);
        snprintf(name, sizeof(name), "%s.svg", stems[k]);
        ck_assert_int_gt(file_size(tpath(name)), 1000);
    }
    /* the underscore name is drawn literally into the SVG */
    {
        char *svg = slurp(tpath("r_shots.svg"), NULL);

        ck_assert_has(svg, "full_ft");
        free(svg);
    }
}
END_TEST

START_TEST(test_plot_without_gnuplot)
{
    struct plot_series s[3];
    struct plot_figure fig = loss_figure(s, tpath("nognu"));
    const char *old = getenv("RANDLORA_GNUPLOT");
    char *saved = old ? xstrdup(old) : NULL;
    int rc;

    setenv("RANDLORA_GNUPLOT", "/nonexistent/dir/gnuplot", 1);
    rc = plot_write(&fig);
    if (saved) {
        setenv("RANDLORA_GNUPLOT", saved, 1);
        free(saved);
    } else {
        unsetenv("RANDLORA_GNUPLOT");
    }
    ck_assert_int_eq(rc, RL_ERR_NA);
    ck_assert_msg(strstr(rl_error_msg(), "not rendered"), "%s", rl_error_msg());
    ck_assert_int_gt(file_size(tpath("nognu.tsv")), 0);
    ck_assert_int_gt(file_size(tpath("nognu.gp")), 0);
    ck_assert_int_eq(file_size(tpath("nognu.png")), -1);
}
END_TEST

START_TEST(test_plot_gnuplot_error)
{
    FILE *f = fopen(tpath("bad.gp"), "w");
    int rc;

    ck_assert_ptr_nonnull(f);
    fputs("set terminal pngcairo\nset output 'bad.png'\nplot 'no_such_file.tsv' using 1:2\n", f);
    fclose(f);
    rc = plot_render(tpath("bad.gp"));
    if (rc == RL_ERR_NA) {
        printf("check_analysis: gnuplot not found, failure path not tested\n");
        return;
    }
    ck_assert_int_eq(rc, RL_ERR);
    ck_assert_msg(strstr(rl_error_msg(), "gnuplot failed") &&
                  strstr(rl_error_msg(), "no_such_file"), "%s", rl_error_msg());
    ck_assert(strchr(rl_error_msg(), '\n') == NULL);
}
END_TEST

START_TEST(test_plot_errors)
{
    const double y[2] = {NAN, INFINITY};
    struct plot_series s = {.name = "a", .n = 2, .x = NULL, .y = y};
    struct plot_series ok = {.name = "a", .n = 1, .y = y + 0};
    const double fine[1] = {1.0};
    struct plot_figure fig = {.kind = PLOT_LOSS, .stem = NULL, .series = &s, .n_series = 1};

    ck_assert_int_eq(plot_write(&fig), RL_ERR_ARG);
    fig.stem = tpath("e");
    fig.n_series = 0;
    ck_assert_int_eq(plot_write(&fig), RL_ERR_ARG);
    fig.n_series = 1;
    ck_assert_int_eq(plot_write(&fig), RL_ERR_ARG);
    ck_assert_msg(strstr(rl_error_msg(), "no finite data"), "%s", rl_error_msg());
    ok.y = fine;
    fig.series = &ok;
    fig.stem = tpath("no/such/dir/e");
    ck_assert_int_eq(plot_write(&fig), RL_ERR_IO);
    ck_assert_msg(strstr(rl_error_msg(), "no/such/dir/e.tsv"), "%s", rl_error_msg());
    ck_assert_int_eq(plot_render(""), RL_ERR_ARG);
}
END_TEST

Suite *suite_plot_writer(void)
{
    Suite *s = suite_create("plot_writer");
    TCase *tc;

    tc = tcase_create("plot");
    tcase_add_checked_fixture(tc, tmp_setup, tmp_teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_plot_files_content);
    tcase_add_test(tc, test_plot_deterministic);
    tcase_add_test(tc, test_plot_shots_aggregates_seeds);
    tcase_add_test(tc, test_plot_other_kinds_content);
    tcase_add_test(tc, test_plot_render_all_kinds);
    tcase_add_test(tc, test_plot_without_gnuplot);
    tcase_add_test(tc, test_plot_gnuplot_error);
    tcase_add_test(tc, test_plot_errors);
    suite_add_tcase(s, tc);
    return s;
}
