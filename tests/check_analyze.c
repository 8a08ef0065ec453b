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
 * RANDLORA_TEST_FIGURES=DIR keeps the sweep (runs and figures) in DIR.
 */
#include <dirent.h>
#include <fcntl.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/rng.h"
#include "core/status.h"
#include "cli/commands.h"
#include "experiments/config.h"
#include "methods/adapter.h"
#include "methods/adapter_io.h"
#include "models/clip.h"
#include "formats/safetensors.h"
#include "results/run_adapters.h"
#include "results/store.h"
#include "suites.h"
#include "test_cmd.h"
#include "test_util.h"

/* ---------------------------------------------------------------- helpers */

static char tmpdir[64];

static void rm_rf(const char *path)
{
    struct stat st;

    if (lstat(path, &st) != 0)
        return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *e;
        char p[1024];
        while (d && (e = readdir(d)) != NULL) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            snprintf(p, sizeof p, "%s/%s", path, e->d_name);
            rm_rf(p);
        }
        if (d)
            closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

static void make_tmpdir(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/rl_analyze_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static const char *tmp_path(const char *name)
{
    static char buf[64][512];
    static int k;

    k = (k + 1) % 64;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
    return buf[k];
}

/* run a command with stdout and stderr into `out`; its exit status */
static int run_cmd(int (*fn)(int, char **), char **argv, const char *out)
{
    int argc = 0, fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int so = dup(1), se = dup(2);

    while (argv[argc])
        argc++;
    ck_assert_int_ge(fd, 0);
    fflush(stdout);
    fflush(stderr);
    dup2(fd, 1);
    dup2(fd, 2);
    int rc = fn(argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(so, 1);
    dup2(se, 2);
    close(so);
    close(se);
    close(fd);
    return rc;
}


static long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static bool have_gnuplot(void)
{
    const char *env = getenv("RANDLORA_GNUPLOT");
    const char *path = getenv("PATH");
    char buf[1024];

    if (env && strchr(env, '/'))
        return access(env, X_OK) == 0;
    if (!path)
        return false;
    const char *name = env && *env ? env : "gnuplot";
    for (const char *p = path; *p;) {
        const char *e = strchr(p, ':');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        snprintf(buf, sizeof buf, "%.*s/%s", (int)len, p, name);
        if (len && access(buf, X_OK) == 0)
            return true;
        p += len + (e ? 1 : 0);
    }
    return false;
}

/* ------------------------------------------------------ synthetic runs */

/* the adapted layers of every synthetic run */
#define N_SITES 5
static const struct {
    const char *name;
    size_t d_out, d_in;
} sites[N_SITES] = {
    { "vision_model.encoder.layers.0.self_attn.q_proj", 32, 32 },
    { "vision_model.encoder.layers.0.mlp.fc1", 64, 32 },
    { "vision_model.encoder.layers.1.self_attn.q_proj", 32, 32 },
    { "vision_model.encoder.layers.1.mlp.fc1", 64, 32 },
    { "text_model.encoder.layers.0.self_attn.q_proj", 24, 24 },
};

static struct adapter_shape site_shapes[N_SITES];

static int synth_shapes(void *ctx, const struct run_plan *plan, const struct adapter_shape **shapes, size_t *n)
{
    (void)ctx;
    (void)plan;
    for (size_t i = 0; i < N_SITES; i++)
        site_shapes[i] = (struct adapter_shape){ sites[i].d_out, sites[i].d_in };
    *shapes = site_shapes;
    *n = N_SITES;
    return RL_OK;
}

/* the plans of an experiment text (caller frees with run_plans_free) */
static struct run_plan *plans_of(const char *ini, size_t *n)
{
    struct experiment e;
    struct run_plan *plans = NULL;

    ck_assert_msg(experiment_parse(&e, ini, "synthetic.ini", NULL, 0) == RL_OK, "%s", rl_error_msg());
    ck_assert_msg(experiment_expand(&e, synth_shapes, NULL, &plans, n) == RL_OK, "%s", rl_error_msg());
    experiment_free(&e);
    return plans;
}

static struct run_plan *one_plan(const char *method, int rank, int shots, int seed)
{
    char ini[512], rank_line[32] = "";
    size_t n;

    if (rank)
        snprintf(rank_line, sizeof rank_line, "rank = %d\n", rank);
    snprintf(ini, sizeof ini,
             "[experiment]\nname = synth\n[method]\nmethods = %s\n%s[data]\nshots = %d\n"
             "[sweep]\nseeds = %d\n[train]\nsteps = 60\n",
             method, rank_line, shots, seed);
    struct run_plan *plans = plans_of(ini, &n);
    ck_assert_uint_eq(n, 1);
    return plans;
}

struct synth_opts {
    const char *config_text;     /* instead of the plan's INI                */
    bool no_adapter;             /* stop after training (no /adapter)        */
    bool no_shared;              /* no /adapter/shared                       */
    bool live;                   /* a writer killed during training          */
};

/* what a synthetic run holds, for comparisons */
struct synth_run {
    float *params[N_SITES];      /* per sites[] entry                        */
    size_t n_params[N_SITES];
};

static void synth_run_free(struct synth_run *r)
{
    for (size_t i = 0; i < N_SITES; i++)
        free(r->params[i]);
}

static double method_quality(const char *m)
{
    return !strcmp(m, "randlora") ? 1.15 : !strcmp(m, "vera") ? 0.8 : !strcmp(m, "full") ? 1.3 : 1.0;
}

/* Write a finished run of `plan` (a fake trained adapter: random params).
 * out (optional) receives copies of the parameters. */
static void write_run(const char *path, const struct run_plan *plan, const struct synth_opts *o,
                      struct synth_run *out)
{
    struct synth_opts none = { 0 };
    struct adapter_method m;
    struct adapter ad[N_SITES];
    struct rng rng;
    size_t max_out = 0, max_in = 0, ntr = 0, nsh = 0;

    if (!o)
        o = &none;
    for (size_t i = 0; i < N_SITES; i++) {
        max_out = sites[i].d_out > max_out ? sites[i].d_out : max_out;
        max_in = sites[i].d_in > max_in ? sites[i].d_in : max_in;
    }
    ck_assert_msg(adapter_method_init(&m, &plan->adapter, max_out, max_in, 1) == RL_OK, "%s", rl_error_msg());
    rng_init(&rng, 1000 + plan->seed * 7919 + plan->index);
    for (size_t i = 0; i < N_SITES; i++) {
        ck_assert_int_eq(adapter_init(&ad[i], &m, sites[i].d_out, sites[i].d_in, NULL, NULL), RL_OK);
        /* nonzero and bounded away from zero: |p| in [0.1, 0.3], random sign
         * (a RandLoRA Gamma column near zero in every basis would make dW
         * numerically rank-deficient, which is not what is tested here) */
        for (size_t k = 0; k < ad[i].n_params; k++) {
            float v = 0.1f + 0.2f * rng_uniform(&rng);
            ad[i].params[k] = rng_uniform(&rng) < 0.5f ? -v : v;
        }
        ntr += ad[i].n_params;
        if (out) {
            out->params[i] = xmalloc_array(ad[i].n_params, sizeof(float));
            memcpy(out->params[i], ad[i].params, ad[i].n_params * sizeof(float));
            out->n_params[i] = ad[i].n_params;
        }
    }
    struct adapter_tensor sh[8];
    size_t n_sh = adapter_method_tensors(&m, sh, 8);
    for (size_t i = 0; i < n_sh; i++)
        nsh += sh[i].n;

    /* the results of the fake training */
    double q = method_quality(plan->method);
    double acc = 0.40 + 0.10 * q * log10((double)ntr / 100.0) + 0.05 * log2((double)(plan->shots ? plan->shots : 1)) +
                 0.01 * rng_normal(&rng);
    acc = acc > 0.98 ? 0.98 : acc < 0.05 ? 0.05 : acc;
    double linf = 0.15 + 0.9 * (1.0 - acc);

    char *ini = o->config_text ? NULL : run_plan_to_ini(plan);
    int64_t idx[4] = { 3, 1, 4, 1 };
    struct store_run_info info = {
        .harness_version = "test", .git_commit = "0", .threads = "1", .blas = "openblas",
        .config_text = o->config_text ? o->config_text : ini, .method = plan->method,
        .rank = (int64_t)plan->adapter.r, .alpha = plan->adapter.alpha, .profile = plan->profile,
        .n_trainable = ntr, .n_frozen_shared = nsh, .data_spec = plan->dataset,
        .shots = (int64_t)plan->shots, .fraction = plan->shots ? 0 : plan->fraction,
        .sampling_seed = plan->sample_seed, .train_index = idx, .n_train_index = 4,
    };
    pid_t pid = 0;
    if (o->live) {
        fflush(stdout);
        fflush(stderr);
        pid = fork();
        ck_assert_int_ge(pid, 0);
    }
    if (pid == 0) {
        struct store *s;
        ck_assert_msg(store_create(&s, path, &info) == RL_OK, "%s", rl_error_msg());
        size_t steps = o->live ? 25 : 60;
        for (size_t t = 1; t <= steps; t++) {
            double loss = linf + (2.3 - linf) * exp(-(double)t / 12.0) + 0.03 * rng_normal(&rng);
            struct store_train_row row = { (int64_t)t, loss, 1e-3, 1.0, 0.01 * (double)t };
            ck_assert_int_eq(store_append_train(s, &row), RL_OK);
            if (t % 20 == 0)
                ck_assert_int_eq(store_append_eval(s, (int64_t)t, acc * (1 - exp(-(double)t / 15.0)), loss),
                                 RL_OK);
        }
        if (o->live)
            _exit(0);                           /* killed: nothing closed */
        ck_assert_int_eq(store_finish(s), RL_OK);
        if (!o->no_adapter) {
            char p[512];
            for (size_t i = 0; i < N_SITES; i++) {
                struct adapter_tensor t[8];
                size_t nt = adapter_tensors(&ad[i], false, t, 8);
                for (size_t k = 0; k < nt; k++) {
                    snprintf(p, sizeof p, "/adapter/%s/%s", sites[i].name, t[k].name);
                    ck_assert_int_eq(store_write_tensor(s, p, t[k].data, (size_t)t[k].ndim, t[k].shape), RL_OK);
                }
                snprintf(p, sizeof p, "/adapter/%s", sites[i].name);
                ck_assert_int_eq(store_attr_set_int64(s, p, "d_out", (int64_t)sites[i].d_out), RL_OK);
                ck_assert_int_eq(store_attr_set_int64(s, p, "d_in", (int64_t)sites[i].d_in), RL_OK);
            }
            for (size_t k = 0; k < n_sh && !o->no_shared; k++) {
                snprintf(p, sizeof p, "/adapter/shared/%s", sh[k].name);
                ck_assert_int_eq(store_write_tensor(s, p, sh[k].data, (size_t)sh[k].ndim, sh[k].shape), RL_OK);
            }
            ck_assert_int_eq(store_attr_set_string(s, "/adapter", "method", plan->method), RL_OK);
            ck_assert_int_eq(store_attr_set_int64(s, "/adapter", "r", (int64_t)plan->adapter.r), RL_OK);
        }
        ck_assert_int_eq(store_write_final(s, &(struct store_final){ .accuracy = acc, .loss = linf,
                                                       .peak_rss_bytes = 1 << 20, .images_per_s = 100.0 }), RL_OK);
        ck_assert_int_eq(store_commit(s), RL_OK);
        store_close(s);
    } else {
        int st = 0;
        ck_assert_int_eq(waitpid(pid, &st, 0), pid);
        ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    free(ini);
    for (size_t i = 0; i < N_SITES; i++)
        adapter_free(&ad[i]);
    adapter_method_free(&m);
}

static void write_simple(const char *path, const char *method, int rank, struct synth_run *out)
{
    struct run_plan *p = one_plan(method, rank, 4, 1);
    write_run(path, p, NULL, out);
    run_plans_free(p, 1);
}

static size_t site_index(const char *name)
{
    for (size_t i = 0; i < N_SITES; i++)
        if (!strcmp(sites[i].name, name))
            return i;
    ck_abort_msg("unknown site %s", name);
    return 0;
}

static int64_t read_i64(struct store *s, const char *site, const char *what)
{
    char p[512];
    int64_t v = -1;

    snprintf(p, sizeof p, "/analysis/%s/%s", site, what);
    ck_assert_msg(store_read_scalar_i64(s, p, &v) == RL_OK, "%s", rl_error_msg());
    return v;
}

static double read_f64(struct store *s, const char *site, const char *what)
{
    char p[512];
    double v = -1;

    snprintf(p, sizeof p, "/analysis/%s/%s", site, what);
    ck_assert_msg(store_read_scalar(s, p, &v) == RL_OK, "%s", rl_error_msg());
    return v;
}

static int analyze6(const char *out, const char *a, const char *b, const char *c, const char *d,
                    const char *e, const char *f)
{
    char *argv[8] = { "analyze", (char *)a, (char *)b, (char *)c, (char *)d, (char *)e, (char *)f, NULL };
    return run_cmd(cmd_analyze, argv, out);
}

static int analyze(const char *out, const char *a, const char *b, const char *c, const char *d)
{
    return analyze6(out, a, b, c, d, NULL, NULL);
}

/* ------------------------------------------------------------------ tests */

START_TEST(test_loader)
{
    make_tmpdir();
    const char *path = tmp_path("lora.h5");
    struct synth_run sr = { 0 };
    struct store *s;
    struct run_adapters ra;

    write_simple(path, "lora", 4, &sr);
    ck_assert_int_eq(store_open(&s, path), RL_OK);
    ck_assert_msg(run_adapters_load(&ra, s) == RL_OK, "%s", rl_error_msg());
    ck_assert_str_eq(ra.method, "lora");
    ck_assert_uint_eq(ra.n_sites, N_SITES);
    ck_assert(ra.has_method);
    /* site order: vision by layer (mlp before self_attn by name), then text */
    ck_assert_str_eq(ra.sites[0].name, "vision_model.encoder.layers.0.mlp.fc1");
    ck_assert_str_eq(ra.sites[4].name, "text_model.encoder.layers.0.self_attn.q_proj");
    for (size_t i = 0; i < ra.n_sites; i++) {
        size_t k = site_index(ra.sites[i].name);
        ck_assert_uint_eq(ra.sites[i].d_out, sites[k].d_out);
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
    path = tmp_path("vera.h5");
    struct run_plan *p = one_plan("vera", 8, 4, 1);
    write_run(path, p, &(struct synth_opts){ .no_shared = true }, NULL);
    run_plans_free(p, 1);
    ck_assert_int_eq(store_open(&s, path), RL_OK);
    ck_assert_msg(run_adapters_load(&ra, s) == RL_OK, "%s", rl_error_msg());
    ck_assert(!ra.shared_loaded);
    run_adapters_free(&ra);
    store_close(s);
    /* with it: loaded, and equal to what the seed regenerates */
    path = tmp_path("vera2.h5");
    write_simple(path, "vera", 8, NULL);
    ck_assert_int_eq(store_open(&s, path), RL_OK);
    ck_assert_msg(run_adapters_load(&ra, s) == RL_OK, "%s", rl_error_msg());
    ck_assert(ra.shared_loaded);
    ck_assert(ra.shared_max_diff == 0.0);
    run_adapters_free(&ra);
    store_close(s);
    rm_rf(tmpdir);
}
END_TEST

START_TEST(test_analyze)
{
    make_tmpdir();
    const char *lora = tmp_path("lora.h5"), *rl = tmp_path("randlora.h5"), *full = tmp_path("full.h5");
    const char *out = tmp_path("out.txt");
    struct store *s;

    write_simple(lora, "lora", 4, NULL);
    write_simple(rl, "randlora", 4, NULL);
    write_simple(full, "full", 0, NULL);
    int rc = analyze(out, lora, rl, NULL, NULL);
    char *txt = test_slurp(out, NULL);
    ck_assert_msg(rc == 0, "%s", txt);
    ck_assert_msg(strstr(txt, "lora r=4, 5 adapted layers") && strstr(txt, "randlora r=4, 5 adapted layers") &&
                      strstr(txt, "vision_model.encoder.layers.0.mlp.fc1") && strstr(txt, "64x32"),
                  "%s", txt);
    free(txt);

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
            ck_assert_int_eq(read_i64(s, site, "rank"), 4);
            ck_assert_int_le(read_i64(s, site, "rank_rel"), 4);
            double eff = read_f64(s, site, "effective_rank"), st = read_f64(s, site, "stable_rank");
            ck_assert(eff > 1.0 && eff <= 4.0 + 1e-9);
            ck_assert(st >= 1.0 - 1e-9 && st <= 4.0 + 1e-9);
            ck_assert_double_eq_tol(read_f64(s, site, "frobenius_norm"), sqrt(fro), 1e-5 * sqrt(fro));
            ck_assert(read_f64(s, site, "nuclear_norm") >= sqrt(fro) * (1 - 1e-6));
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
            size_t dmin = sites[i].d_out < sites[i].d_in ? sites[i].d_out : sites[i].d_in;
            int64_t rk = read_i64(s, sites[i].name, "rank");
            if (sites[i].d_out != sites[i].d_in)
                ck_assert_int_eq(rk, (int64_t)dmin);
            else
                ck_assert_msg(rk >= (int64_t)dmin - 1 && rk <= (int64_t)dmin, "%s: rank %lld", sites[i].name,
                              (long long)rk);
        }
        store_close(s);
        if (pass == 0) {
            rc = analyze(out, lora, rl, "--tol", "0.01");
            ck_assert_int_eq(rc, 0);
        }
    }

    /* --reference: a run against itself: cosine 1, overlaps 1 */
    rc = analyze6(out, full, "--reference", full, "--cka-batch", "0", NULL);
    txt = test_slurp(out, NULL);
    ck_assert_msg(rc == 0 && strstr(txt, "cosine"), "%s", txt);
    free(txt);
    ck_assert_int_eq(store_open(&s, full), RL_OK);
    for (size_t i = 0; i < N_SITES; i++) {
        ck_assert_double_eq_tol(read_f64(s, sites[i].name, "ref_cosine"), 1.0, 1e-6);
        ck_assert_double_eq_tol(read_f64(s, sites[i].name, "ref_overlap_out"), 1.0, 1e-6);
        ck_assert_double_eq_tol(read_f64(s, sites[i].name, "ref_overlap_in"), 1.0, 1e-6);
        ck_assert_int_eq(read_i64(s, sites[i].name, "ref_k"), 8);
        size_t dmin = sites[i].d_out < sites[i].d_in ? sites[i].d_out : sites[i].d_in;
        ck_assert_int_eq(read_i64(s, sites[i].name, "rank"), (int64_t)dmin);
    }
    store_close(s);

    /* LoRA against the full run: in range, k = min(8, 4) */
    rc = analyze6(out, lora, "--reference", full, "--cka-batch", "0", NULL);
    ck_assert_int_eq(rc, 0);
    ck_assert_int_eq(store_open(&s, lora), RL_OK);
    for (size_t i = 0; i < N_SITES; i++) {
        double c = read_f64(s, sites[i].name, "ref_cosine"), o = read_f64(s, sites[i].name, "ref_overlap_out");
        double oi = read_f64(s, sites[i].name, "ref_overlap_in");
        ck_assert(c >= -1 && c <= 1 && o >= 0 && o <= 1 + 1e-9 && oi >= 0 && oi <= 1 + 1e-9);
        ck_assert(o < 0.99);                       /* unrelated random updates */
        ck_assert_int_eq(read_i64(s, sites[i].name, "ref_k"), 4);
    }
    char *ref = NULL;
    ck_assert_int_eq(store_attr_get_string(s, "/analysis", "reference", &ref), RL_OK);
    ck_assert_str_eq(ref, full);
    free(ref);
    store_close(s);

    /* again without --reference: the similarities are reset */
    ck_assert_int_eq(analyze(out, lora, NULL, NULL, NULL), 0);
    ck_assert_int_eq(store_open(&s, lora), RL_OK);
    ck_assert(isnan(read_f64(s, sites[0].name, "ref_cosine")));
    ck_assert_int_eq(read_i64(s, sites[0].name, "ref_k"), 0);
    store_close(s);

    /* usage errors */
    ck_assert_int_eq(analyze(out, NULL, NULL, NULL, NULL), 2);
    ck_assert_int_eq(analyze(out, lora, "--tol", "2", NULL), 2);
    ck_assert_int_eq(analyze(out, lora, "--bogus", NULL, NULL), 2);
    ck_assert_int_eq(analyze(out, lora, "--reference", tmp_path("absent.h5"), NULL), 2);
    rm_rf(tmpdir);
}
END_TEST

START_TEST(test_export)
{
    static const struct {
        const char *method;
        int rank;
    } cases[] = { { "lora", 4 }, { "vera", 16 }, { "randlora", 4 }, { "full", 0 } };

    make_tmpdir();
    char out[128];
    snprintf(out, sizeof out, "%s", tmp_path("out.txt"));
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char run[64], dir[64];
        snprintf(run, sizeof run, "%s.h5", cases[c].method);
        snprintf(dir, sizeof dir, "%s_peft", cases[c].method);
        const char *path = tmp_path(run), *odir = tmp_path(dir);
        write_simple(path, cases[c].method, cases[c].rank, NULL);
        char *argv[] = { "export", (char *)path, "-o", (char *)odir, NULL };
        int rc = run_cmd(cmd_export, argv, out);
        char *txt = test_slurp(out, NULL);
        ck_assert_msg(rc == 0, "%s: %s", cases[c].method, txt);
        free(txt);
        char f[600];
        snprintf(f, sizeof f, "%s/" ADAPTER_IO_WEIGHTS_NAME, odir);
        ck_assert_int_gt(file_size(f), 0);
        snprintf(f, sizeof f, "%s/" ADAPTER_IO_CONFIG_NAME, odir);
        ck_assert_int_gt(file_size(f), 0);

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
        ck_assert_str_eq(info.base_model, "clip-tiny");
        adapter_io_info_free(&info);
        free(mods);
        run_adapters_free(&want);
        run_adapters_free(&got);
    }
    char *argv1[] = { "export", (char *)tmp_path("lora.h5"), NULL };
    ck_assert_int_eq(run_cmd(cmd_export, argv1, out), 2);
    char *argv2[] = { "export", (char *)tmp_path("absent.h5"), "-o", (char *)tmp_path("x"), NULL };
    ck_assert_int_eq(run_cmd(cmd_export, argv2, out), 2);
    rm_rf(tmpdir);
}
END_TEST

static const char *const figures[] = { "loss", "acc_params", "acc_shots", "spectrum", "rank" };

static void check_figure(const char *dir, const char *stem, bool rendered)
{
    char p[1024];
    static const char *const ext[] = { "tsv", "gp", "png", "svg" };

    for (size_t e = 0; e < (rendered ? 4u : 2u); e++) {
        snprintf(p, sizeof p, "%s/%s.%s", dir, stem, ext[e]);
        ck_assert_msg(file_size(p) > 0, "%s missing or empty", p);
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

    make_tmpdir();
    if (keep && *keep) {
        snprintf(sweep, sizeof sweep, "%s", keep);
        rm_rf(sweep);
        ck_assert_int_eq(mkdir(sweep, 0777), 0);
    } else {
        snprintf(sweep, sizeof sweep, "%s/sweep", tmpdir);
        ck_assert_int_eq(mkdir(sweep, 0777), 0);
    }
    snprintf(out, sizeof out, "%s/out.txt", tmpdir);

    size_t n;
    struct run_plan *plans = plans_of("[experiment]\nname = synth\n"
                                      "[method]\nmethods = lora, vera, randlora\nbudget = 500, 1500, 4000\n"
                                      "[data]\nshots = 1, 4, 16\n[sweep]\nseeds = 1, 2\n[train]\nsteps = 60\n",
                                      &n);
    ck_assert_uint_eq(n, 54);
    char **paths = xcalloc(n + 2, sizeof(*paths));
    for (size_t i = 0; i < n; i++) {
        paths[i] = xmalloc(700);
        snprintf(paths[i], 700, "%s/%s.h5", sweep, plans[i].id);
        write_run(paths[i], &plans[i], NULL, NULL);
    }
    /* a run killed while training: read as far as it got */
    char live[700];
    snprintf(live, sizeof live, "%s/live-lora.h5", sweep);
    write_run(live, &plans[0], &(struct synth_opts){ .live = true }, NULL);
    run_plans_free(plans, n);

    /* before analyze: three figures, notes for spectrum and rank */
    snprintf(figs, sizeof figs, "%s/figures", sweep);
    char *argv1[] = { "plot", sweep, NULL };
    int rc = run_cmd(cmd_plot, argv1, out);
    char *txt = test_slurp(out, NULL);
    ck_assert_msg(rc == 0, "%s", txt);
    ck_assert_msg(strstr(txt, "55 runs") && strstr(txt, "randlora analyze"), "%s", txt);
    free(txt);

    /* analyze everything, then all five figures */
    char **argv2 = xcalloc(n + 2, sizeof(*argv2));
    argv2[0] = "analyze";
    for (size_t i = 0; i < n; i++)
        argv2[i + 1] = paths[i];
    rc = run_cmd(cmd_analyze, argv2, out);
    txt = test_slurp(out, NULL);
    ck_assert_msg(rc == 0, "%s", txt);
    free(txt);
    free(argv2);
    rc = run_cmd(cmd_plot, argv1, out);
    txt = test_slurp(out, NULL);
    ck_assert_msg(rc == 0, "%s", txt);
    bool rendered = have_gnuplot();
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
    snprintf(figs, sizeof figs, "%s/one", tmpdir);
    char *argv3[] = { "plot", paths[0], "-o", figs, "--layer", "text_model.encoder.layers.0.self_attn.q_proj", NULL };
    rc = run_cmd(cmd_plot, argv3, out);
    txt = test_slurp(out, NULL);
    ck_assert_msg(rc == 0 && strstr(txt, "1 run, 1 setting ->"), "%s", txt);
    free(txt);
    check_figure(figs, "spectrum", rendered);
    argv3[5] = "vision_model.nowhere";
    rc = run_cmd(cmd_plot, argv3, out);
    txt = test_slurp(out, NULL);
    ck_assert_msg(rc == 0 && strstr(txt, "no analysed run has layer vision_model.nowhere"), "%s", txt);
    free(txt);

    /* a file that is not a run: named, skipped, exit 2, the rest drawn */
    snprintf(p, sizeof p, "%s/zz-broken.h5", sweep);
    FILE *fp = fopen(p, "wb");
    fputs("not hdf5", fp);
    fclose(fp);
    rc = run_cmd(cmd_plot, argv1, out);
    txt = test_slurp(out, NULL);
    ck_assert_msg(rc == 2 && strstr(txt, "zz-broken.h5") && strstr(txt, "55 runs"), "%s", txt);
    free(txt);
    unlink(p);
    char *argv4[] = { "plot", NULL };
    ck_assert_int_eq(run_cmd(cmd_plot, argv4, out), 2);

    for (size_t i = 0; i < n; i++)
        free(paths[i]);
    free(paths);
    if (!(keep && *keep))
        rm_rf(sweep);
    rm_rf(tmpdir);
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
    const char *out = tmp_path("err.txt");
    char *argv[] = { "analyze", (char *)path, NULL };
    int rc = run_cmd(cmd_analyze, argv, out);
    char *txt = test_slurp(out, NULL);
    ck_assert_msg(rc == 2 && strstr(txt, needle) && strstr(txt, "randlora analyze: "), "rc %d, want '%s': %s", rc,
                  needle, txt);
    free(txt);
    char *argv2[] = { "export", (char *)path, "-o", (char *)tmp_path("exp"), NULL };
    rc = run_cmd(cmd_export, argv2, out);
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
    make_tmpdir();
    const char *path = tmp_path("h.h5");
    const char *q0 = "/adapter/vision_model.encoder.layers.0.self_attn.q_proj";
    struct run_plan *lora = one_plan("lora", 4, 4, 1), *rl = one_plan("randlora", 4, 4, 1);
    struct store *s;
    char p[600];

    /* a run that never wrote its adapter */
    write_run(path, lora, &(struct synth_opts){ .no_adapter = true }, NULL);
    expect_bad(path, "/adapter: missing");
    /* a run still training (interrupted writer) */
    write_run(path, lora, &(struct synth_opts){ .live = true }, NULL);
    expect_bad(path, "h.h5");

    /* attributes */
    write_run(path, lora, NULL, NULL);
    h5_del_attr(path, q0, "d_out");
    expect_bad(path, "layers.0.self_attn.q_proj: no attribute d_out");
    write_run(path, lora, NULL, NULL);
    h5_del_attr(path, "/adapter", "method");
    expect_bad(path, "/adapter: no attribute method");
    write_run(path, lora, NULL, NULL);
    s = rw(path);
    ck_assert_int_eq(store_attr_set_string(s, "/adapter", "method", "vera"), RL_OK);
    rw_commit(s);
    expect_bad(path, "attribute method = 'vera'");
    write_run(path, lora, NULL, NULL);
    s = rw(path);
    ck_assert_int_eq(store_attr_set_int64(s, "/adapter", "r", 8), RL_OK);
    rw_commit(s);
    expect_bad(path, "/adapter: attribute r = 8");
    write_run(path, lora, NULL, NULL);
    s = rw(path);
    ck_assert_int_eq(store_attr_set_int64(s, q0, "d_in", (int64_t)1 << 40), RL_OK);
    rw_commit(s);
    expect_bad(path, "attribute d_in = 1099511627776");
    write_run(path, lora, NULL, NULL);
    s = rw(path);
    ck_assert_int_eq(store_attr_set_string(s, q0, "d_out", "32"), RL_OK);
    rw_commit(s);
    expect_bad(path, "q_proj: attribute d_out: expected integer");

    /* tensors: missing, wrong shape (the attrs say 40x32), non-finite, a
     * layer the rank does not fit (2x3 with r = 4) */
    write_run(path, lora, NULL, NULL);
    snprintf(p, sizeof p, "%s/lora_B.weight", q0);
    h5_del_link(path, p);
    expect_bad(path, "q_proj/lora_B.weight: missing");
    write_run(path, lora, NULL, NULL);
    s = rw(path);
    ck_assert_int_eq(store_attr_set_int64(s, q0, "d_out", 40), RL_OK);
    rw_commit(s);
    expect_bad(path, "q_proj/lora_B.weight: shape 32x4, expected 40x4");
    write_run(path, lora, NULL, NULL);
    s = rw(path);
    snprintf(p, sizeof p, "%s/lora_A.weight", q0);
    float bad[4 * 32] = { 0 };
    bad[77] = NAN;
    ck_assert_int_eq(store_write_tensor(s, p, bad, 2, (size_t[]){ 4, 32 }), RL_OK);
    rw_commit(s);
    expect_bad(path, "q_proj/lora_A.weight: non-finite value at element 77");
    write_run(path, lora, NULL, NULL);
    s = rw(path);
    ck_assert_int_eq(store_attr_set_int64(s, q0, "d_out", 2), RL_OK);
    ck_assert_int_eq(store_attr_set_int64(s, q0, "d_in", 3), RL_OK);
    rw_commit(s);
    expect_bad(path, q0);
    /* a site that is a dataset, not a group */
    write_run(path, lora, NULL, NULL);
    s = rw(path);
    ck_assert_int_eq(store_write_tensor(s, "/adapter/stray", bad, 1, (size_t[]){ 3 }), RL_OK);
    rw_commit(s);
    expect_bad(path, "/adapter/stray: not a group");

    /* shared tensors of the wrong shape */
    write_run(path, rl, NULL, NULL);
    s = rw(path);
    ck_assert_int_eq(store_write_tensor(s, "/adapter/shared/randlora_A", bad, 2, (size_t[]){ 4, 30 }), RL_OK);
    rw_commit(s);
    expect_bad(path, "/adapter/shared/randlora_A: shape 4x30, expected 4x1x32");

    /* the config */
    write_run(path, lora, &(struct synth_opts){ .config_text = "[method]\nmethods = nosuch\n" }, NULL);
    expect_bad(path, "/config");
    write_run(path, lora, &(struct synth_opts){ .config_text = "[method]\nmethods = lora, vera\n" }, NULL);
    expect_bad(path, "/config: describes 2 runs");

    /* not HDF5 at all; a missing file */
    FILE *fp = fopen(path, "wb");
    fputs("garbage", fp);
    fclose(fp);
    expect_bad(path, "h.h5");
    expect_bad(tmp_path("absent.h5"), "absent.h5");

    run_plans_free(lora, 1);
    run_plans_free(rl, 1);
    rm_rf(tmpdir);
}
END_TEST

/* ------------------------------------------------- activation CKA (model) */

/* a CLIP with clip-tiny's byte vocabulary, 16x16 images (17 tokens), width
 * 32, 2 layers per tower (tests/check_runner.c's) */
static void cka_model(const char *dir, uint64_t seed)
{
    struct clip_config c;
    struct clip_model m;

    ck_assert_int_eq(clip_config_preset(&c, "clip-tiny"), RL_OK);
    c.vision.image_size = 16;
    c.vision.patch_size = 4;
    c.vision.hidden = 32;
    c.vision.layers = 2;
    c.vision.heads = 2;
    c.vision.intermediate = 64;
    c.text.hidden = 32;
    c.text.layers = 2;
    c.text.heads = 2;
    c.text.intermediate = 64;
    c.projection_dim = 32;
    ck_assert_int_eq(clip_model_init(&m, &c), RL_OK);
    clip_model_init_random(&m, seed);
    ck_assert_int_eq(clip_model_save(&m, dir, ST_F32), RL_OK);
    clip_model_free(&m);
}

static struct run_plan *cka_plan(const char *model, const char *method, const char *eval)
{
    char ini[1024];
    size_t n;
    struct experiment e;
    struct run_plan *plans = NULL;

    snprintf(ini, sizeof ini,
             "[experiment]\nname = cka\n[model]\nname = %s\n"
             "[data]\ndataset = shapes-count\neval = %s\nprompt = a {}\nshots = 4\n"
             "[method]\nmethods = %s\n%stowers = vision, text\nmodules = q_proj, v_proj, fc1\n"
             "[train]\nsteps = 6\n[sweep]\nseeds = 1\n",
             model, eval, method, strcmp(method, "full") ? "rank = 4\n" : "");
    ck_assert_msg(experiment_parse(&e, ini, "cka.ini", NULL, 0) == RL_OK, "%s", rl_error_msg());
    ck_assert_msg(experiment_expand(&e, NULL, NULL, &plans, &n) == RL_OK, "%s", rl_error_msg());
    experiment_free(&e);
    ck_assert_uint_eq(n, 1);
    return plans;
}

/* A finished run of `plan` on its model with random adapter parameters:
 * vision sites drawn from vseed, text sites from tseed, each |p| <= scale. */
static void write_model_run(const char *path, const struct run_plan *plan, uint64_t vseed, uint64_t tseed,
                            float scale)
{
    struct clip_model m;
    struct clip_adapters ca;
    struct clip_target t = { plan->targets.towers, plan->targets.layer_lo, plan->targets.layer_hi,
                             plan->targets.modules };
    struct rng rv, rt;
    char *ini = run_plan_to_ini(plan);
    int64_t idx[1] = { 0 };
    struct store *s;
    char p[512], name[256];

    ck_assert_msg(clip_model_load(&m, plan->model.name) == RL_OK, "%s", rl_error_msg());
    ck_assert_msg(clip_adapters_init(&ca, &m, &plan->adapter, &t, 1, 1, 1) == RL_OK, "%s", rl_error_msg());
    rng_init(&rv, vseed);
    rng_init(&rt, tseed);
    for (size_t i = 0; i < ca.n_sites; i++) {
        struct rng *r = ca.sites[i].tower == CLIP_TOWER_VISION ? &rv : &rt;
        for (size_t k = 0; k < ca.adapters[i].n_params; k++)
            ca.adapters[i].params[k] = scale * (2.0f * rng_uniform(r) - 1.0f);
    }
    struct store_run_info info = {
        .harness_version = "test", .git_commit = "0", .threads = "1", .blas = "openblas", .config_text = ini,
        .method = plan->method, .rank = (int64_t)plan->adapter.r, .alpha = plan->adapter.alpha,
        .profile = plan->profile, .n_trainable = ca.n_params, .data_spec = plan->dataset,
        .shots = (int64_t)plan->shots, .sampling_seed = plan->sample_seed, .train_index = idx,
        .n_train_index = 1,
    };
    ck_assert_msg(store_create(&s, path, &info) == RL_OK, "%s", rl_error_msg());
    ck_assert_int_eq(store_append_train(s, &(struct store_train_row){ 1, 1.0, 1e-3, 1.0, 0.1 }), RL_OK);
    ck_assert_int_eq(store_finish(s), RL_OK);
    for (size_t i = 0; i < ca.n_sites; i++) {
        struct adapter_tensor tv[8];
        size_t nt = adapter_tensors(&ca.adapters[i], false, tv, 8);
        clip_site_name(&ca.sites[i], name, sizeof name);
        for (size_t k = 0; k < nt; k++) {
            snprintf(p, sizeof p, "/adapter/%s/%s", name, tv[k].name);
            ck_assert_int_eq(store_write_tensor(s, p, tv[k].data, (size_t)tv[k].ndim, tv[k].shape), RL_OK);
        }
        snprintf(p, sizeof p, "/adapter/%s", name);
        ck_assert_int_eq(store_attr_set_int64(s, p, "d_out", (int64_t)ca.adapters[i].d_out), RL_OK);
        ck_assert_int_eq(store_attr_set_int64(s, p, "d_in", (int64_t)ca.adapters[i].d_in), RL_OK);
    }
    ck_assert_int_eq(store_attr_set_string(s, "/adapter", "method", plan->method), RL_OK);
    ck_assert_int_eq(store_attr_set_int64(s, "/adapter", "r", (int64_t)plan->adapter.r), RL_OK);
    ck_assert_int_eq(store_write_final(s, &(struct store_final){ .accuracy = 0.5, .loss = 1.0,
                                                       .peak_rss_bytes = 1 << 20, .images_per_s = 100.0 }), RL_OK);
    ck_assert_int_eq(store_commit(s), RL_OK);
    store_close(s);
    clip_adapters_free(&ca);
    clip_model_free(&m);
    free(ini);
}

static double read_cka(const char *path, const char *tower, size_t layer)
{
    struct store *s;
    char p[128];
    double v = -1;

    ck_assert_int_eq(store_open(&s, path), RL_OK);
    snprintf(p, sizeof p, "/analysis/cka/%s_layer_%zu", tower, layer);
    ck_assert_msg(store_read_scalar(s, p, &v) == RL_OK, "%s", rl_error_msg());
    store_close(s);
    return v;
}

START_TEST(test_cka)
{
    make_tmpdir();
    char model[256], model2[256];
    const char *lora = tmp_path("lora.h5"), *lora_t = tmp_path("lora_text.h5"), *full = tmp_path("full.h5");
    const char *other = tmp_path("other_model.h5"), *oeval = tmp_path("other_eval.h5");
    const char *out = tmp_path("out.txt");
    struct store *s;
    char *txt;
    int rc;

    snprintf(model, sizeof model, "%s/model", tmpdir);
    snprintf(model2, sizeof model2, "%s/model2", tmpdir);
    cka_model(model, 7);
    cka_model(model2, 8);
    struct run_plan *pl = cka_plan(model, "lora", "shapes-count:test");
    struct run_plan *pf = cka_plan(model, "full", "shapes-count:test");
    struct run_plan *po = cka_plan(model2, "lora", "shapes-count:test");
    struct run_plan *pe = cka_plan(model, "lora", "shapes:test");
    write_model_run(lora, pl, 11, 12, 0.3f);
    write_model_run(lora_t, pl, 11, 99, 0.3f);     /* only the text adapters differ */
    write_model_run(full, pf, 21, 22, 0.1f);
    write_model_run(other, po, 11, 12, 0.3f);
    write_model_run(oeval, pe, 11, 12, 0.3f);

    /* a run against itself: 1 at every layer of both towers */
    rc = analyze(out, lora, "--reference", lora, NULL);
    txt = test_slurp(out, NULL);
    ck_assert_msg(rc == 0 && strstr(txt, "activation CKA") && strstr(txt, "64 images x 17 tokens = 1088 rows"),
                  "%s", txt);
    free(txt);
    for (size_t l = 0; l < 2; l++) {
        ck_assert_double_eq_tol(read_cka(lora, "vision", l), 1.0, 1e-6);
        ck_assert_double_eq_tol(read_cka(lora, "text", l), 1.0, 1e-6);
    }
    int64_t n_images = 0, rows = 0;
    ck_assert_int_eq(store_open(&s, lora), RL_OK);
    ck_assert_int_eq(store_attr_get_int64(s, "/analysis/cka", "n_images", &n_images), RL_OK);
    ck_assert_int_eq(store_attr_get_int64(s, "/analysis/cka", "vision_rows", &rows), RL_OK);
    ck_assert_int_eq(n_images, 64);
    ck_assert_int_eq(rows, 64 * 17);
    ck_assert_int_eq(store_attr_get_int64(s, "/analysis/cka", "text_rows", &rows), RL_OK);
    ck_assert_int_gt(rows, 4);
    store_close(s);

    /* against the full run: in [0, 1] and below 1 everywhere (both towers
     * adapted differently); --cka-batch sets the images */
    rc = analyze6(out, lora, lora_t, "--reference", full, "--cka-batch", "24");
    txt = test_slurp(out, NULL);
    ck_assert_msg(rc == 0 && strstr(txt, "24 images x 17 tokens"), "%s", txt);
    free(txt);
    for (size_t l = 0; l < 2; l++)
        for (int t = 0; t < 2; t++) {
            double c = read_cka(lora, t ? "text" : "vision", l);
            ck_assert_msg(c >= 0 && c < 1 - 1e-6, "%s layer %zu: %.9f", t ? "text" : "vision", l, c);
        }

    /* against a run that differs only in its text adapters: the vision tower
     * is identical (CKA 1), the text tower is not */
    ck_assert_int_eq(analyze(out, lora_t, "--reference", lora, NULL), 0);
    for (size_t l = 0; l < 2; l++) {
        ck_assert_double_eq_tol(read_cka(lora_t, "vision", l), 1.0, 1e-6);
        double c = read_cka(lora_t, "text", l);
        ck_assert_msg(c >= 0 && c < 1 - 1e-6, "text layer %zu: %.9f", l, c);
    }

    /* another model, other eval data: exit 2, named, nothing written */
    rc = analyze(out, other, "--reference", lora, NULL);
    txt = test_slurp(out, NULL);
    ck_assert_msg(rc == 2 && strstr(txt, other) && strstr(txt, "one model"), "%s", txt);
    free(txt);
    rc = analyze(out, oeval, "--reference", lora, NULL);
    txt = test_slurp(out, NULL);
    ck_assert_msg(rc == 2 && strstr(txt, "eval data 'shapes:test'") && strstr(txt, "shapes-count:test"), "%s", txt);
    free(txt);
    ck_assert_int_eq(store_open(&s, other), RL_OK);
    ck_assert(!store_has(s, "/analysis"));
    store_close(s);
    ck_assert_int_eq(store_open(&s, oeval), RL_OK);
    ck_assert(!store_has(s, "/analysis"));
    store_close(s);
    /* the others of the same command are still analysed */
    rc = analyze(out, oeval, lora_t, "--reference", lora);
    ck_assert_int_eq(rc, 2);
    ck_assert_double_eq_tol(read_cka(lora_t, "vision", 0), 1.0, 1e-6);

    /* without --reference (or with --cka-batch 0): the CKA values are reset */
    ck_assert_int_eq(analyze(out, lora, NULL, NULL, NULL), 0);
    ck_assert(isnan(read_cka(lora, "vision", 0)) && isnan(read_cka(lora, "text", 1)));
    ck_assert_int_eq(analyze6(out, lora_t, "--reference", lora, "--cka-batch", "0", NULL), 0);
    ck_assert(isnan(read_cka(lora_t, "vision", 1)));
    ck_assert_int_eq(analyze6(out, lora, "--reference", lora, "--cka-batch", "-1", NULL), 2);

    run_plans_free(pl, 1);
    run_plans_free(pf, 1);
    run_plans_free(po, 1);
    run_plans_free(pe, 1);
    rm_rf(tmpdir);
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
    tcase_add_test(tc, test_cka);
    suite_add_tcase(s, tc);
    return s;
}
