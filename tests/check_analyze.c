/*
 * check_analyze.c: `randlora analyze`, `plot` and `export` on synthetic run
 * files written with the store API in the runner's layout (run_adapters.h):
 * a fake trained adapter (random nonzero parameters) per run.
 *
 *   - analyze writes /analysis: LoRA r = 4 has rank <= 4 (exactly 4 for
 *     random factors), dense RandLoRA has rank min(d_out, d_in); norms match
 *     dW; a second analyze gives the same values; --reference gives cosine
 *     and subspace overlaps of 1 against itself and values in range against
 *     another run, and they are reset to NaN without --reference;
 *   - export writes a peft directory that adapter_io_import reads back equal
 *     (parameters and shared tensors bit for bit) for LoRA, VeRA, RandLoRA;
 *   - plot on a sweep (3 methods x 3 budgets x 3 shots x 2 seeds, plus a run
 *     interrupted while training) writes the accuracy, loss, spectrum and
 *     rank figures (PNG and SVG too when gnuplot is present); without
 *     /analysis the per-layer figures are skipped with a note (the grouping,
 *     selection, reference lines and every other figure: check_plot.c);
 *   - hostile run files (missing groups, attributes, tensors; wrong shapes,
 *     ranks, methods; non-finite values; a bad config; not HDF5) give exit 2
 *     with a message naming the object.
 *
 * The activation CKA of analyze --reference is in check_analyze_cka.c; the
 * synthetic runs and helpers both use are in analyze_harness.h.
 *
 * RANDLORA_TEST_FIGURES=DIR keeps the sweep (runs and figures) in DIR.
 */
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/status.h"
#include "cli/commands.h"
#include "experiments/config.h"
#include "methods/adapter.h"
#include "methods/adapter_io.h"
#include "results/run_adapters.h"
#include "results/store.h"
#include "analyze_harness.h"
#include "suites.h"
#include "test_cmd.h"
#include "test_util.h"

/* ------------------------------------------------------------------ tests */

START_TEST(test_loader)
{
    an_make_tmpdir();
    const char *path = an_tmp_path("lora.h5");
    struct synth_run sr = { 0 };
    struct store *s;
    struct run_adapters ra;

    synth_write_simple(path, "lora", 4, &sr);
    ck_assert_int_eq(store_open(&s, path), RL_OK);
    ck_assert_msg(run_adapters_load(&ra, s) == RL_OK, "%s", rl_error_msg());
    ck_assert_str_eq(ra.method, "lora");
    ck_assert_uint_eq(ra.n_sites, N_SITES);
    ck_assert(ra.has_method);
    /* site order: vision by layer (mlp before self_attn by name), then text */
    ck_assert_str_eq(ra.sites[0].name, "vision_model.encoder.layers.0.mlp.fc1");
    ck_assert_str_eq(ra.sites[4].name, "text_model.encoder.layers.0.self_attn.q_proj");
    for (size_t i = 0; i < ra.n_sites; i++) {
        size_t k = synth_site_index(ra.sites[i].name);
        ck_assert_uint_eq(ra.sites[i].d_out, synth_sites[k].d_out);
        ck_assert_uint_eq(ra.sites[i].adapter.n_params, sr.n_params[k]);
        ck_assert(!memcmp(ra.sites[i].adapter.params, sr.params[k], sr.n_params[k] * sizeof(float)));
    }
    run_adapters_free(&ra);
    store_close(s);
    synth_run_free(&sr);

    /* natural order and short labels */
    ck_assert_int_lt(run_site_cmp("vision_model.encoder.layers.2.x", "vision_model.encoder.layers.10.x"), 0);
    ck_assert_int_lt(run_site_cmp("vision_model.encoder.layers.11.x", "text_model.encoder.layers.0.x"), 0);
    ck_assert_int_eq(run_site_cmp("a.b", "a.b"), 0);
    char b[64];
    ck_assert_str_eq(run_site_short("vision_model.encoder.layers.11.mlp.fc1", b, sizeof b), "v11.fc1");
    ck_assert_str_eq(run_site_short("text_model.encoder.layers.3.self_attn.q_proj", b, sizeof b), "t3.q_proj");
    ck_assert_str_eq(run_site_short("encoder.block.0.dense", b, sizeof b), "0.dense");

    /* VeRA without /adapter/shared: regenerated from the seed, equal */
    path = an_tmp_path("vera.h5");
    struct run_plan *p = synth_plan("vera", 8, 4, 1);
    synth_write_run(path, p, &(struct synth_opts){ .no_shared = true }, NULL);
    run_plans_free(p, 1);
    ck_assert_int_eq(store_open(&s, path), RL_OK);
    ck_assert_msg(run_adapters_load(&ra, s) == RL_OK, "%s", rl_error_msg());
    ck_assert(!ra.shared_loaded);
    run_adapters_free(&ra);
    store_close(s);
    /* with it: loaded, and equal to what the seed regenerates */
    path = an_tmp_path("vera2.h5");
    synth_write_simple(path, "vera", 8, NULL);
    ck_assert_int_eq(store_open(&s, path), RL_OK);
    ck_assert_msg(run_adapters_load(&ra, s) == RL_OK, "%s", rl_error_msg());
    ck_assert(ra.shared_loaded);
    ck_assert(ra.shared_max_diff == 0.0);
    run_adapters_free(&ra);
    store_close(s);
    test_tmpdir_remove(an_tmpdir);
}
END_TEST

START_TEST(test_analyze)
{
    an_make_tmpdir();
    const char *lora = an_tmp_path("lora.h5"), *rl = an_tmp_path("randlora.h5"), *full = an_tmp_path("full.h5");
    const char *out = an_tmp_path("out.txt");
    struct store *s;

    synth_write_simple(lora, "lora", 4, NULL);
    synth_write_simple(rl, "randlora", 4, NULL);
    synth_write_simple(full, "full", 0, NULL);
    int rc = an_analyze(out, lora, rl, NULL, NULL);
    char *txt = test_slurp(out, NULL);
    ck_assert_msg(rc == 0, "%s", txt);
    ck_assert_msg(strstr(txt, "lora r=4, 5 adapted layers") && strstr(txt, "randlora r=4, 5 adapted layers") &&
                      strstr(txt, "vision_model.encoder.layers.0.mlp.fc1") && strstr(txt, "64x32"),
                  "%s", txt);
    free(txt);

    {
        /* the frozen model (`none`) has no /adapter: noted, not an error */
        const char *none = an_tmp_path("none.h5");
        struct run_plan *p = synth_plan("none", 0, 4, 1);
        struct synth_opts o = { .no_adapter = true };

        synth_write_run(none, p, &o, NULL);
        run_plans_free(p, 1);
        rc = an_analyze(out, none, lora, NULL, NULL);
        txt = test_slurp(out, NULL);
        ck_assert_msg(rc == 0 && strstr(txt, "none (the frozen model): no update to analyze") &&
                          strstr(txt, "lora r=4, 5 adapted layers"), "%s", txt);
        free(txt);
        ck_assert_int_eq(store_open(&s, none), RL_OK);
        ck_assert(!store_has(s, "/analysis"));
        store_close(s);
    }

    double first_eff[N_SITES];
    for (int pass = 0; pass < 2; pass++) {
        /* LoRA: rank <= 4 (= 4, random factors); norms agree with dW */
        struct run_adapters ra;
        ck_assert_int_eq(store_open(&s, lora), RL_OK);
        ck_assert_int_eq(run_adapters_load(&ra, s), RL_OK);
        for (size_t i = 0; i < ra.n_sites; i++) {
            const char *site = ra.sites[i].name;
            size_t d_out = ra.sites[i].d_out, d_in = ra.sites[i].d_in;
            float *dw = xmalloc_array(d_out * d_in, sizeof(float));
            double fro = 0;
            adapter_delta_weight(&ra.sites[i].adapter, dw);
            for (size_t k = 0; k < d_out * d_in; k++)
                fro += (double)dw[k] * dw[k];
            free(dw);
            ck_assert_int_eq(an_read_i64(s, site, "rank"), 4);
            ck_assert_int_le(an_read_i64(s, site, "rank_rel"), 4);
            double eff = an_read_f64(s, site, "effective_rank"), st = an_read_f64(s, site, "stable_rank");
            ck_assert(eff > 1.0 && eff <= 4.0 + 1e-9);
            ck_assert(st >= 1.0 - 1e-9 && st <= 4.0 + 1e-9);
            ck_assert_double_eq_tol(an_read_f64(s, site, "frobenius_norm"), sqrt(fro), 1e-5 * sqrt(fro));
            ck_assert(an_read_f64(s, site, "nuclear_norm") >= sqrt(fro) * (1 - 1e-6));
            float *sv;
            size_t nd, dims[STORE_MAX_DIMS];
            char p[512];
            snprintf(p, sizeof p, "/analysis/%s/singular_values", site);
            ck_assert_int_eq(store_read_tensor(s, p, &sv, &nd, dims), RL_OK);
            ck_assert_uint_eq(nd, 1);
            ck_assert_uint_eq(dims[0], d_out < d_in ? d_out : d_in);
            for (size_t k = 1; k < dims[0]; k++)
                ck_assert(sv[k] <= sv[k - 1]);
            free(sv);
            if (pass == 0)
                first_eff[i] = eff;
            else
                ck_assert(first_eff[i] == eff);          /* idempotent */
        }
        double tol;
        ck_assert_int_eq(store_attr_get_double(s, "/analysis", "rel_tol", &tol), RL_OK);
        ck_assert_double_eq_tol(tol, pass ? 0.01 : 1e-3, 1e-15);
        run_adapters_free(&ra);
        store_close(s);

        /* RandLoRA (dense bases): full rank min(d_out, d_in), far above r.
         * A square RandLoRA dW is a product of two square random factors
         * ([B_1..B_n] and the rows of Lambda A Gamma), so s_min / s_1 is
         * small (1e-5 typical at 32x32, r = 4) with a heavy tail: on float32
         * dW the numerical rank of a square layer can fall one short (15 of
         * 200 random draws at 32x32, r = 4; 2 of the 54 square layers of
         * test_plot's sweep). Rectangular layers are well conditioned
         * (s_min / s_1 > 3e-3 in 200 draws at 64x32) and must be full. */
        ck_assert_int_eq(store_open(&s, rl), RL_OK);
        for (size_t i = 0; i < N_SITES; i++) {
            size_t dmin = synth_sites[i].d_out < synth_sites[i].d_in ? synth_sites[i].d_out : synth_sites[i].d_in;
            int64_t rk = an_read_i64(s, synth_sites[i].name, "rank");
            if (synth_sites[i].d_out != synth_sites[i].d_in)
                ck_assert_int_eq(rk, (int64_t)dmin);
            else
                ck_assert_msg(rk >= (int64_t)dmin - 1 && rk <= (int64_t)dmin, "%s: rank %lld", synth_sites[i].name,
                              (long long)rk);
        }
        store_close(s);
        if (pass == 0) {
            rc = an_analyze(out, lora, rl, "--tol", "0.01");
            ck_assert_int_eq(rc, 0);
        }
    }

    /* --reference: a run against itself: cosine 1, overlaps 1 */
    rc = an_analyze6(out, full, "--reference", full, "--cka-batch", "0", NULL);
    txt = test_slurp(out, NULL);
    ck_assert_msg(rc == 0 && strstr(txt, "cosine"), "%s", txt);
    free(txt);
    ck_assert_int_eq(store_open(&s, full), RL_OK);
    for (size_t i = 0; i < N_SITES; i++) {
        ck_assert_double_eq_tol(an_read_f64(s, synth_sites[i].name, "ref_cosine"), 1.0, 1e-6);
        ck_assert_double_eq_tol(an_read_f64(s, synth_sites[i].name, "ref_overlap_out"), 1.0, 1e-6);
        ck_assert_double_eq_tol(an_read_f64(s, synth_sites[i].name, "ref_overlap_in"), 1.0, 1e-6);
        ck_assert_int_eq(an_read_i64(s, synth_sites[i].name, "ref_k"), 8);
        size_t dmin = synth_sites[i].d_out < synth_sites[i].d_in ? synth_sites[i].d_out : synth_sites[i].d_in;
        ck_assert_int_eq(an_read_i64(s, synth_sites[i].name, "rank"), (int64_t)dmin);
    }
    store_close(s);

    /* LoRA against the full run: in range, k = min(8, 4) */
    rc = an_analyze6(out, lora, "--reference", full, "--cka-batch", "0", NULL);
    ck_assert_int_eq(rc, 0);
    ck_assert_int_eq(store_open(&s, lora), RL_OK);
    for (size_t i = 0; i < N_SITES; i++) {
        double c = an_read_f64(s, synth_sites[i].name, "ref_cosine"), o = an_read_f64(s, synth_sites[i].name, "ref_overlap_out");
        double oi = an_read_f64(s, synth_sites[i].name, "ref_overlap_in");
        ck_assert(c >= -1 && c <= 1 && o >= 0 && o <= 1 + 1e-9 && oi >= 0 && oi <= 1 + 1e-9);
        ck_assert(o < 0.99);                       /* unrelated random updates */
        ck_assert_int_eq(an_read_i64(s, synth_sites[i].name, "ref_k"), 4);
    }
    char *ref = NULL;
    ck_assert_int_eq(store_attr_get_string(s, "/analysis", "reference", &ref), RL_OK);
    ck_assert_str_eq(ref, full);
    free(ref);
    store_close(s);

    /* again without --reference: the similarities are reset */
    ck_assert_int_eq(an_analyze(out, lora, NULL, NULL, NULL), 0);
    ck_assert_int_eq(store_open(&s, lora), RL_OK);
    ck_assert(isnan(an_read_f64(s, synth_sites[0].name, "ref_cosine")));
    ck_assert_int_eq(an_read_i64(s, synth_sites[0].name, "ref_k"), 0);
    store_close(s);

    /* usage errors */
    ck_assert_int_eq(an_analyze(out, NULL, NULL, NULL, NULL), 2);
    ck_assert_int_eq(an_analyze(out, lora, "--tol", "2", NULL), 2);
    ck_assert_int_eq(an_analyze(out, lora, "--bogus", NULL, NULL), 2);
    ck_assert_int_eq(an_analyze(out, lora, "--reference", an_tmp_path("absent.h5"), NULL), 2);
    test_tmpdir_remove(an_tmpdir);
}
END_TEST

START_TEST(test_export)
{
    static const struct {
        const char *method;
        int rank;
    } cases[] = { { "lora", 4 }, { "vera", 16 }, { "randlora", 4 }, { "full", 0 } };

    an_make_tmpdir();
    char out[128];
    snprintf(out, sizeof out, "%s", an_tmp_path("out.txt"));
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char run[64], dir[64];
        snprintf(run, sizeof run, "%s.h5", cases[c].method);
        snprintf(dir, sizeof dir, "%s_peft", cases[c].method);
        const char *path = an_tmp_path(run), *odir = an_tmp_path(dir);
        synth_write_simple(path, cases[c].method, cases[c].rank, NULL);
        char *argv[] = { "export", (char *)path, "-o", (char *)odir, NULL };
        int rc = an_run_cmd(cmd_export, argv, out);
        char *txt = test_slurp(out, NULL);
        ck_assert_msg(rc == 0, "%s: %s", cases[c].method, txt);
        free(txt);
        char f[600];
        snprintf(f, sizeof f, "%s/" ADAPTER_IO_WEIGHTS_NAME, odir);
        ck_assert_int_gt(an_file_size(f), 0);
        snprintf(f, sizeof f, "%s/" ADAPTER_IO_CONFIG_NAME, odir);
        ck_assert_int_gt(an_file_size(f), 0);

        /* import into adapters rebuilt from the run file, zeroed first */
        struct store *s;
        struct run_adapters want, got;
        ck_assert_int_eq(store_open(&s, path), RL_OK);
        ck_assert_int_eq(run_adapters_load(&want, s), RL_OK);
        ck_assert_int_eq(run_adapters_load(&got, s), RL_OK);
        store_close(s);
        struct adapter_io_module *mods = xcalloc(got.n_sites, sizeof(*mods));
        for (size_t i = 0; i < got.n_sites; i++) {
            memset(got.sites[i].adapter.params, 0, got.sites[i].adapter.n_params * sizeof(float));
            mods[i] = (struct adapter_io_module){ got.sites[i].name, &got.sites[i].adapter };
        }
        struct adapter_tensor tg[8], tw[8];
        size_t ng = adapter_method_tensors(&got.m, tg, 8), nw = adapter_method_tensors(&want.m, tw, 8);
        ck_assert_uint_eq(ng, nw);
        for (size_t k = 0; k < ng; k++)
            memset(tg[k].data, 0, tg[k].n * sizeof(float));
        struct adapter_io_files files = { .dir = odir };
        ck_assert_msg(adapter_io_import(&files, &got.m, mods, got.n_sites) == RL_OK, "%s", rl_error_msg());
        for (size_t i = 0; i < got.n_sites; i++)
            ck_assert(!memcmp(got.sites[i].adapter.params, want.sites[i].adapter.params,
                              want.sites[i].adapter.n_params * sizeof(float)));
        for (size_t k = 0; k < ng; k++)
            ck_assert(!memcmp(tg[k].data, tw[k].data, tw[k].n * sizeof(float)));
        /* and the config says what the run was */
        struct adapter_io_info info;
        ck_assert_int_eq(adapter_io_read_config(&files, &info), RL_OK);
        ck_assert_str_eq(info.cfg.method, cases[c].method);
        if (cases[c].rank)
            ck_assert_uint_eq(info.cfg.r, (size_t)cases[c].rank);
        /* the preset's model directory as an absolute path (it does not
         * exist here: the recorded path made absolute), never the preset
         * name alone (check_init_adapter tests the other cases) */
        ck_assert_msg(info.base_model[0] == '/' && strstr(info.base_model, "/models/clip-tiny"), "%s",
                      info.base_model);
        adapter_io_info_free(&info);
        free(mods);
        run_adapters_free(&want);
        run_adapters_free(&got);
    }
    char *argv1[] = { "export", (char *)an_tmp_path("lora.h5"), NULL };
    ck_assert_int_eq(an_run_cmd(cmd_export, argv1, out), 2);
    char *argv2[] = { "export", (char *)an_tmp_path("absent.h5"), "-o", (char *)an_tmp_path("x"), NULL };
    ck_assert_int_eq(an_run_cmd(cmd_export, argv2, out), 2);
    test_tmpdir_remove(an_tmpdir);
}
END_TEST

static const char *const figures[] = { "loss", "acc_params", "acc_shots", "spectrum", "rank" };

static void check_figure(const char *dir, const char *stem, bool rendered)
{
    char p[1024];
    static const char *const ext[] = { "tsv", "gp", "png", "svg" };

    for (size_t e = 0; e < (rendered ? 4u : 2u); e++) {
        snprintf(p, sizeof p, "%s/%s.%s", dir, stem, ext[e]);
        ck_assert_msg(an_file_size(p) > 0, "%s missing or empty", p);
    }
    if (rendered) {
        unsigned char sig[8] = { 0 };
        snprintf(p, sizeof p, "%s/%s.png", dir, stem);
        FILE *fp = fopen(p, "rb");
        ck_assert_ptr_nonnull(fp);
        ck_assert_uint_eq(fread(sig, 1, 8, fp), 8);
        fclose(fp);
        ck_assert(!memcmp(sig, "\x89PNG\r\n\x1a\n", 8));
    }
}

START_TEST(test_plot)
{
    const char *keep = getenv("RANDLORA_TEST_FIGURES");
    char sweep[600], figs[700], out[700];

    an_make_tmpdir();
    if (keep && *keep) {
        snprintf(sweep, sizeof sweep, "%s", keep);
        test_tmpdir_remove(sweep);
        ck_assert_int_eq(mkdir(sweep, 0777), 0);
    } else {
        snprintf(sweep, sizeof sweep, "%s/sweep", an_tmpdir);
        ck_assert_int_eq(mkdir(sweep, 0777), 0);
    }
    snprintf(out, sizeof out, "%s/out.txt", an_tmpdir);

    size_t n;
    struct run_plan *plans = synth_plans("[experiment]\nname = synth\n"
                                      "[method]\nmethods = lora, vera, randlora\nbudget = 500, 1500, 4000\n"
                                      "[data]\nshots = 1, 4, 16\n[sweep]\nseeds = 1, 2\n[train]\nsteps = 60\n",
                                      &n);
    ck_assert_uint_eq(n, 54);
    char **paths = xcalloc(n + 2, sizeof(*paths));
    for (size_t i = 0; i < n; i++) {
        paths[i] = xmalloc(700);
        snprintf(paths[i], 700, "%s/%s.h5", sweep, plans[i].id);
        synth_write_run(paths[i], &plans[i], NULL, NULL);
    }
    /* a run killed while training: read as far as it got */
    char live[700];
    snprintf(live, sizeof live, "%s/live-lora.h5", sweep);
    synth_write_run(live, &plans[0], &(struct synth_opts){ .live = true }, NULL);
    run_plans_free(plans, n);

    /* before analyze: three figures, notes for spectrum and rank */
    snprintf(figs, sizeof figs, "%s/figures", sweep);
    char *argv1[] = { "plot", sweep, NULL };
    int rc = an_run_cmd(cmd_plot, argv1, out);
    char *txt = test_slurp(out, NULL);
    ck_assert_msg(rc == 0, "%s", txt);
    ck_assert_msg(strstr(txt, "55 runs") && strstr(txt, "randlora analyze"), "%s", txt);
    free(txt);

    /* analyze everything, then all five figures */
    char **argv2 = xcalloc(n + 2, sizeof(*argv2));
    argv2[0] = "analyze";
    for (size_t i = 0; i < n; i++)
        argv2[i + 1] = paths[i];
    rc = an_run_cmd(cmd_analyze, argv2, out);
    txt = test_slurp(out, NULL);
    ck_assert_msg(rc == 0, "%s", txt);
    free(txt);
    free(argv2);
    rc = an_run_cmd(cmd_plot, argv1, out);
    txt = test_slurp(out, NULL);
    ck_assert_msg(rc == 0, "%s", txt);
    bool rendered = an_have_gnuplot();
    for (size_t f = 0; f < sizeof figures / sizeof figures[0]; f++)
        check_figure(figs, figures[f], rendered);
    check_figure(figs, "acc_params_s4", rendered);      /* the other data settings */
    check_figure(figs, "acc_shots_b1500", rendered);    /* the other budgets */
    free(txt);

    /* the spectrum holds one series per method; the rank figure every layer */
    char p[800];
    snprintf(p, sizeof p, "%s/spectrum.tsv", figs);
    txt = test_slurp(p, NULL);
    ck_assert_msg(strstr(txt, "lora r11") && strstr(txt, "vera r") && strstr(txt, "randlora r1"), "%s", txt);
    free(txt);
    snprintf(p, sizeof p, "%s/rank.gp", figs);
    txt = test_slurp(p, NULL);
    ck_assert_msg(strstr(txt, "v0.fc1") && strstr(txt, "t0.q_proj"), "%s", txt);
    free(txt);

    /* one file and a chosen layer, elsewhere; a missing layer is a note */
    snprintf(figs, sizeof figs, "%s/one", an_tmpdir);
    char *argv3[] = { "plot", paths[0], "-o", figs, "--layer", "text_model.encoder.layers.0.self_attn.q_proj", NULL };
    rc = an_run_cmd(cmd_plot, argv3, out);
    txt = test_slurp(out, NULL);
    ck_assert_msg(rc == 0 && strstr(txt, "1 run, 1 setting ->"), "%s", txt);
    free(txt);
    check_figure(figs, "spectrum", rendered);
    argv3[5] = "vision_model.nowhere";
    rc = an_run_cmd(cmd_plot, argv3, out);
    txt = test_slurp(out, NULL);
    ck_assert_msg(rc == 0 && strstr(txt, "no analysed run has layer vision_model.nowhere"), "%s", txt);
    free(txt);

    /* a file that is not a run: named, skipped, exit 2, the rest drawn */
    snprintf(p, sizeof p, "%s/zz-broken.h5", sweep);
    FILE *fp = fopen(p, "wb");
    fputs("not hdf5", fp);
    fclose(fp);
    rc = an_run_cmd(cmd_plot, argv1, out);
    txt = test_slurp(out, NULL);
    ck_assert_msg(rc == 2 && strstr(txt, "zz-broken.h5") && strstr(txt, "55 runs"), "%s", txt);
    free(txt);
    unlink(p);
    char *argv4[] = { "plot", NULL };
    ck_assert_int_eq(an_run_cmd(cmd_plot, argv4, out), 2);

    for (size_t i = 0; i < n; i++)
        free(paths[i]);
    free(paths);
    if (!(keep && *keep))
        test_tmpdir_remove(sweep);
    test_tmpdir_remove(an_tmpdir);
}
END_TEST

/* ------------------------------------------------------------ hostile */

static void h5_del_attr(const char *path, const char *obj, const char *name)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    ck_assert_int_ge(f, 0);
    ck_assert_int_ge(H5Adelete_by_name(f, obj, name, H5P_DEFAULT), 0);
    H5Fclose(f);
}

static void h5_del_link(const char *path, const char *obj)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    ck_assert_int_ge(f, 0);
    ck_assert_int_ge(H5Ldelete(f, obj, H5P_DEFAULT), 0);
    H5Fclose(f);
}

/* analyze and export both exit 2 naming `needle` */
static void expect_bad(const char *path, const char *needle)
{
    const char *out = an_tmp_path("err.txt");
    char *argv[] = { "analyze", (char *)path, NULL };
    int rc = an_run_cmd(cmd_analyze, argv, out);
    char *txt = test_slurp(out, NULL);
    ck_assert_msg(rc == 2 && strstr(txt, needle) && strstr(txt, "randlora analyze: "), "rc %d, want '%s': %s", rc,
                  needle, txt);
    free(txt);
    char *argv2[] = { "export", (char *)path, "-o", (char *)an_tmp_path("exp"), NULL };
    rc = an_run_cmd(cmd_export, argv2, out);
    txt = test_slurp(out, NULL);
    ck_assert_msg(rc == 2 && strstr(txt, needle), "export rc %d, want '%s': %s", rc, needle, txt);
    free(txt);
}

static struct store *rw(const char *path)
{
    struct store *s;
    ck_assert_int_eq(store_open_rw(&s, path), RL_OK);
    return s;
}

static void rw_commit(struct store *s)
{
    ck_assert_msg(store_commit(s) == RL_OK, "%s", rl_error_msg());
    store_close(s);
}

START_TEST(test_hostile)
{
    an_make_tmpdir();
    const char *path = an_tmp_path("h.h5");
    const char *q0 = "/adapter/vision_model.encoder.layers.0.self_attn.q_proj";
    struct run_plan *lora = synth_plan("lora", 4, 4, 1), *rl = synth_plan("randlora", 4, 4, 1);
    struct store *s;
    char p[600];

    /* a run that never wrote its adapter */
    synth_write_run(path, lora, &(struct synth_opts){ .no_adapter = true }, NULL);
    expect_bad(path, "/adapter: missing");
    /* a run still training (interrupted writer) */
    synth_write_run(path, lora, &(struct synth_opts){ .live = true }, NULL);
    expect_bad(path, "h.h5");

    /* attributes */
    synth_write_run(path, lora, NULL, NULL);
    h5_del_attr(path, q0, "d_out");
    expect_bad(path, "layers.0.self_attn.q_proj: no attribute d_out");
    synth_write_run(path, lora, NULL, NULL);
    h5_del_attr(path, "/adapter", "method");
    expect_bad(path, "/adapter: no attribute method");
    synth_write_run(path, lora, NULL, NULL);
    s = rw(path);
    ck_assert_int_eq(store_attr_set_string(s, "/adapter", "method", "vera"), RL_OK);
    rw_commit(s);
    expect_bad(path, "attribute method = 'vera'");
    synth_write_run(path, lora, NULL, NULL);
    s = rw(path);
    ck_assert_int_eq(store_attr_set_int64(s, "/adapter", "r", 8), RL_OK);
    rw_commit(s);
    expect_bad(path, "/adapter: attribute r = 8");
    synth_write_run(path, lora, NULL, NULL);
    s = rw(path);
    ck_assert_int_eq(store_attr_set_int64(s, q0, "d_in", (int64_t)1 << 40), RL_OK);
    rw_commit(s);
    expect_bad(path, "attribute d_in = 1099511627776");
    synth_write_run(path, lora, NULL, NULL);
    s = rw(path);
    ck_assert_int_eq(store_attr_set_string(s, q0, "d_out", "32"), RL_OK);
    rw_commit(s);
    expect_bad(path, "q_proj: attribute d_out: expected integer");

    /* tensors: missing, wrong shape (the attrs say 40x32), non-finite, a
     * layer the rank does not fit (2x3 with r = 4) */
    synth_write_run(path, lora, NULL, NULL);
    snprintf(p, sizeof p, "%s/lora_B.weight", q0);
    h5_del_link(path, p);
    expect_bad(path, "q_proj/lora_B.weight: missing");
    synth_write_run(path, lora, NULL, NULL);
    s = rw(path);
    ck_assert_int_eq(store_attr_set_int64(s, q0, "d_out", 40), RL_OK);
    rw_commit(s);
    expect_bad(path, "q_proj/lora_B.weight: shape 32x4, expected 40x4");
    synth_write_run(path, lora, NULL, NULL);
    s = rw(path);
    snprintf(p, sizeof p, "%s/lora_A.weight", q0);
    float bad[4 * 32] = { 0 };
    bad[77] = NAN;
    ck_assert_int_eq(store_write_tensor(s, p, bad, 2, (size_t[]){ 4, 32 }), RL_OK);
    rw_commit(s);
    expect_bad(path, "q_proj/lora_A.weight: non-finite value at element 77");
    synth_write_run(path, lora, NULL, NULL);
    s = rw(path);
    ck_assert_int_eq(store_attr_set_int64(s, q0, "d_out", 2), RL_OK);
    ck_assert_int_eq(store_attr_set_int64(s, q0, "d_in", 3), RL_OK);
    rw_commit(s);
    expect_bad(path, q0);
    /* a site that is a dataset, not a group */
    synth_write_run(path, lora, NULL, NULL);
    s = rw(path);
    ck_assert_int_eq(store_write_tensor(s, "/adapter/stray", bad, 1, (size_t[]){ 3 }), RL_OK);
    rw_commit(s);
    expect_bad(path, "/adapter/stray: not a group");

    /* shared tensors of the wrong shape */
    synth_write_run(path, rl, NULL, NULL);
    s = rw(path);
    ck_assert_int_eq(store_write_tensor(s, "/adapter/shared/randlora_A", bad, 2, (size_t[]){ 4, 30 }), RL_OK);
    rw_commit(s);
    expect_bad(path, "/adapter/shared/randlora_A: shape 4x30, expected 4x1x32");

    /* the config */
    synth_write_run(path, lora, &(struct synth_opts){ .config_text = "[method]\nmethods = nosuch\n" }, NULL);
    expect_bad(path, "/config");
    synth_write_run(path, lora, &(struct synth_opts){ .config_text = "[method]\nmethods = lora, vera\n" }, NULL);
    expect_bad(path, "/config: describes 2 runs");

    /* not HDF5 at all; a missing file */
    FILE *fp = fopen(path, "wb");
    fputs("garbage", fp);
    fclose(fp);
    expect_bad(path, "h.h5");
    expect_bad(an_tmp_path("absent.h5"), "absent.h5");

    run_plans_free(lora, 1);
    run_plans_free(rl, 1);
    test_tmpdir_remove(an_tmpdir);
}
END_TEST

Suite *suite_analyze(void)
{
    Suite *s = suite_create("analyze");
    TCase *tc = tcase_create("runs");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_loader);
    tcase_add_test(tc, test_analyze);
    tcase_add_test(tc, test_export);
    tcase_add_test(tc, test_plot);
    tcase_add_test(tc, test_hostile);
    suite_add_tcase(s, tc);
    return s;
}
