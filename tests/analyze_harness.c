/*
 * analyze_harness.c: the analyze suites' temporary directory, command
 * runner and synthetic run files (analyze_harness.h).
 */
#include "analyze_harness.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <check.h>

#include "cli/commands.h"
#include "core/alloc.h"
#include "core/rng.h"
#include "core/status.h"
#include "methods/adapter.h"
#include "results/run_adapters.h"
#include "test_util.h"

const struct synth_site synth_sites[N_SITES] = {
    { "vision_model.encoder.layers.0.self_attn.q_proj", 32, 32 },
    { "vision_model.encoder.layers.0.mlp.fc1", 64, 32 },
    { "vision_model.encoder.layers.1.self_attn.q_proj", 32, 32 },
    { "vision_model.encoder.layers.1.mlp.fc1", 64, 32 },
    { "text_model.encoder.layers.0.self_attn.q_proj", 24, 24 },
};

char an_tmpdir[64];

void an_make_tmpdir(void)
{
    snprintf(an_tmpdir, sizeof an_tmpdir, "/tmp/rl_analyze_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(an_tmpdir));
}

const char *an_tmp_path(const char *name)
{
    static char buf[64][512];
    static int k;

    k = (k + 1) % 64;
    snprintf(buf[k], sizeof buf[k], "%s/%s", an_tmpdir, name);
    return buf[k];
}

/* run a command with stdout and stderr into `out`; its exit status */
int an_run_cmd(int (*fn)(int, char **), char **argv, const char *out)
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

long an_file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

bool an_have_gnuplot(void)
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

static struct adapter_shape site_shapes[N_SITES];

static int synth_shapes(void *ctx, const struct run_plan *plan, const struct adapter_shape **shapes, size_t *n)
{
    (void)ctx;
    (void)plan;
    for (size_t i = 0; i < N_SITES; i++)
        site_shapes[i] = (struct adapter_shape){ synth_sites[i].d_out, synth_sites[i].d_in };
    *shapes = site_shapes;
    *n = N_SITES;
    return RL_OK;
}

/* the plans of an experiment text (caller frees with run_plans_free) */
struct run_plan *synth_plans(const char *ini, size_t *n)
{
    struct experiment e;
    struct run_plan *plans = NULL;

    ck_assert_msg(experiment_parse(&e, ini, "synthetic.ini", NULL, 0) == RL_OK, "%s", rl_error_msg());
    ck_assert_msg(experiment_expand(&e, synth_shapes, NULL, &plans, n) == RL_OK, "%s", rl_error_msg());
    experiment_free(&e);
    return plans;
}

struct run_plan *synth_plan(const char *method, int rank, int shots, int seed)
{
    char ini[512], rank_line[32] = "";
    size_t n;

    if (rank)
        snprintf(rank_line, sizeof rank_line, "rank = %d\n", rank);
    snprintf(ini, sizeof ini,
             "[experiment]\nname = synth\n[method]\nmethods = %s\n%s[data]\nshots = %d\n"
             "[sweep]\nseeds = %d\n[train]\nsteps = 60\n",
             method, rank_line, shots, seed);
    struct run_plan *plans = synth_plans(ini, &n);
    ck_assert_uint_eq(n, 1);
    return plans;
}

void synth_run_free(struct synth_run *r)
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
void synth_write_run(const char *path, const struct run_plan *plan, const struct synth_opts *o,
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
        max_out = synth_sites[i].d_out > max_out ? synth_sites[i].d_out : max_out;
        max_in = synth_sites[i].d_in > max_in ? synth_sites[i].d_in : max_in;
    }
    ck_assert_msg(adapter_method_init(&m, &plan->adapter, max_out, max_in, 1) == RL_OK, "%s", rl_error_msg());
    rng_init(&rng, 1000 + plan->seed * 7919 + plan->index);
    for (size_t i = 0; i < N_SITES; i++) {
        ck_assert_int_eq(adapter_init(&ad[i], &m, synth_sites[i].d_out, synth_sites[i].d_in, NULL, NULL), RL_OK);
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
                    snprintf(p, sizeof p, "/adapter/%s/%s", synth_sites[i].name, t[k].name);
                    ck_assert_int_eq(store_write_tensor(s, p, t[k].data, (size_t)t[k].ndim, t[k].shape), RL_OK);
                }
                snprintf(p, sizeof p, "/adapter/%s", synth_sites[i].name);
                ck_assert_int_eq(store_attr_set_int64(s, p, "d_out", (int64_t)synth_sites[i].d_out), RL_OK);
                ck_assert_int_eq(store_attr_set_int64(s, p, "d_in", (int64_t)synth_sites[i].d_in), RL_OK);
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

void synth_write_simple(const char *path, const char *method, int rank, struct synth_run *out)
{
    struct run_plan *p = synth_plan(method, rank, 4, 1);
    synth_write_run(path, p, NULL, out);
    run_plans_free(p, 1);
}

size_t synth_site_index(const char *name)
{
    for (size_t i = 0; i < N_SITES; i++)
        if (!strcmp(synth_sites[i].name, name))
            return i;
    ck_abort_msg("unknown site %s", name);
    return 0;
}

int64_t an_read_i64(struct store *s, const char *site, const char *what)
{
    char p[512];
    int64_t v = -1;

    snprintf(p, sizeof p, "/analysis/%s/%s", site, what);
    ck_assert_msg(store_read_scalar_i64(s, p, &v) == RL_OK, "%s", rl_error_msg());
    return v;
}

double an_read_f64(struct store *s, const char *site, const char *what)
{
    char p[512];
    double v = -1;

    snprintf(p, sizeof p, "/analysis/%s/%s", site, what);
    ck_assert_msg(store_read_scalar(s, p, &v) == RL_OK, "%s", rl_error_msg());
    return v;
}

int an_analyze6(const char *out, const char *a, const char *b, const char *c, const char *d,
                const char *e, const char *f)
{
    char *argv[8] = { "analyze", (char *)a, (char *)b, (char *)c, (char *)d, (char *)e, (char *)f, NULL };
    return an_run_cmd(cmd_analyze, argv, out);
}

int an_analyze(const char *out, const char *a, const char *b, const char *c, const char *d)
{
    return an_analyze6(out, a, b, c, d, NULL, NULL);
}
