/*
 * cmd_analyze.c: `randlora analyze RUN.h5 ... [--reference FT.h5] [--tol REL]
 * [--topk K] [--cka-batch N]`: what each trained adapter did to its layer,
 * and with a reference run how alike the two models' activations are,
 * written into the run file and printed as tables.
 *
 * For every run: the adapters are rebuilt from the file (run_adapters.h),
 * and for every adapted layer dW = adapter_delta_weight goes through
 * analysis_layer (results/analysis.h). Written, replacing what an earlier
 * analyze wrote (so running twice gives the same file contents):
 *
 *   /analysis                      attrs rel_tol (float64), reference (string,
 *                                  "" without --reference), topk (int64)
 *   /analysis/<site>               attrs d_out, d_in (int64)
 *   /analysis/<site>/singular_values  float32[min(d_out, d_in)], descending
 *   /analysis/<site>/rank          int64: numerical rank (numpy's float32 rule)
 *   /analysis/<site>/rank_rel      int64: #{s_i > REL * s_1}
 *   /analysis/<site>/{effective_rank, stable_rank, nuclear_norm,
 *                     frobenius_norm}  float64
 *
 * With --reference FT.h5 (a full fine-tuning run, or any run with the same
 * sites), per layer present in both with the same shape, similarities of the
 * two weight UPDATES (not of activations):
 *   /analysis/<site>/ref_cosine       <dW, dW_ref>_F / (|dW|_F |dW_ref|_F)
 *   /analysis/<site>/ref_overlap_out  ||U_k^T U_ref,k||_F^2 / k: how much of
 *                                     the top-k left (output-space) singular
 *                                     subspace they share, in [0, 1]
 *   /analysis/<site>/ref_overlap_in   the same for the right (input-space)
 *                                     singular vectors
 *   /analysis/<site>/ref_k            int64: k = min(K, rank, rank_ref)
 * (NaN, k = 0, when the layer is missing from the reference, a shape
 * differs, or a dW is zero). Without --reference, ref_* entries an earlier
 * analyze wrote are overwritten with NaN and k = 0, so the file always says
 * what the last analyze computed.
 *
 * Activation CKA (with --reference, unless --cka-batch 0): how alike the
 * two models' layer outputs are on a fixed batch; results/analyze_cka.h
 * says what is compared and what is written under /analysis/cka.
 *
 * Exit status: 0 all runs analysed; 2 a bad argument or a bad or unfinished
 * run file (the other runs are still analysed); 1 other failures.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/status.h"
#include "core/threads.h"
#include "results/analyze_cka.h"
#include "cli/cli.h"
#include "cli/commands.h"
#include "results/analysis.h"
#include "results/run_adapters.h"
#include "results/store.h"

#define DEFAULT_TOPK 8
#define DEFAULT_CKA_BATCH 64
#define MAX_CKA_BATCH     100000

/* LAPACK (OpenBLAS), as in results/analysis.c */
void dgesdd_(const char *jobz, const int *m, const int *n, double *a, const int *lda, double *s,
             double *u, const int *ldu, double *vt, const int *ldvt, double *work,
             const int *lwork, int *iwork, int *info, size_t jobz_len);

static void analyze_usage(FILE *out)
{
    fprintf(out,
            "usage: randlora analyze RUN.h5 [RUN.h5 ...] [--reference FT.h5] [--tol REL]\n"
            "                        [--topk K] [--cka-batch N]\n"
            "\n"
            "For every adapted layer of each finished run: singular values of dW, numerical\n"
            "rank, relative rank, effective rank, stable rank, nuclear and Frobenius norms,\n"
            "written into the run file under /analysis (replacing an earlier analysis) and\n"
            "printed as a table.\n"
            "\n"
            "  --reference FT.h5  a full fine-tuning run of the same model and eval data: per\n"
            "                     adapted layer, cosine similarity of the two updates dW and\n"
            "                     the overlap of their top-K singular subspaces; per encoder\n"
            "                     layer of each tower, linear CKA of the layer's output\n"
            "                     activations (every token) with the run's and with the\n"
            "                     reference's adapters on a fixed evaluation batch, written as\n"
            "                     /analysis/cka/{vision,text}_layer_<l> (needs the model\n"
            "                     directory and the dataset; a different model or eval spec\n"
            "                     is an error)\n"
            "  --cka-batch N      the batch: the first N items of the eval spec (default %d;\n"
            "                     0: no activation CKA, update similarity only)\n"
            "  --tol REL          threshold of the relative rank: s_i > REL * s_1\n"
            "                     (default %g)\n"
            "  --topk K           subspace size of the overlaps (default %d)\n",
            DEFAULT_CKA_BATCH, ANALYSIS_REL_TOL, DEFAULT_TOPK);
}

/* one usage error line (cli.h), exit status 2 */
#define bad(...) cli_bad("analyze", true, __VA_ARGS__)

/* ------------------------------------------------------- update similarity */

/* Top-k singular vectors of the row-major d_out x d_in matrix dw: left[i]
 * (k x d_out, row i = u_i) and right[i] (k x d_in, row i = v_i). */
static int top_vectors(const float *dw, size_t d_out, size_t d_in, size_t k, double **left, double **right)
{
    /* column-major M = dW^T: m = d_in rows, n = d_out columns. M = U' S VT',
     * so dW = VT'^T S U'^T: dW's left vectors are the rows of VT', its right
     * vectors the columns of U'. */
    const int m = (int)d_in, n = (int)d_out, lda = m;
    const size_t kmin = d_in < d_out ? d_in : d_out;
    const int ldu = m, ldvt = (int)kmin;
    double *a, *s, *u, *vt, *work, wq = 0;
    int *iwork, info = 0, lwork = -1;

    *left = *right = NULL;
    if (d_out > (size_t)INT32_MAX / (d_in ? d_in : 1))
        return rl_error_set(RL_ERR_ARG, "analyze: %zux%zu too large for LAPACK", d_out, d_in);
    a = xmalloc_array(d_out * d_in, sizeof(double));
    for (size_t i = 0; i < d_out * d_in; i++)
        a[i] = dw[i];
    s = xmalloc_array(kmin, sizeof(double));
    u = xmalloc_array((size_t)m * kmin, sizeof(double));
    vt = xmalloc_array(kmin * (size_t)n, sizeof(double));
    iwork = xmalloc_array(8 * kmin, sizeof(int));
    dgesdd_("S", &m, &n, a, &lda, s, u, &ldu, vt, &ldvt, &wq, &lwork, iwork, &info, 1);
    if (info == 0) {
        lwork = (int)wq + 1;
        work = xmalloc_array((size_t)lwork, sizeof(double));
        dgesdd_("S", &m, &n, a, &lda, s, u, &ldu, vt, &ldvt, work, &lwork, iwork, &info, 1);
        free(work);
    }
    free(a);
    free(s);
    free(iwork);
    if (info != 0) {
        free(u);
        free(vt);
        return rl_error_set(RL_ERR, "analyze: dgesdd failed (info %d) for %zu x %zu", info, d_out, d_in);
    }
    double *L = xmalloc_array(k * d_out, sizeof(double)), *R = xmalloc_array(k * d_in, sizeof(double));
    for (size_t i = 0; i < k; i++) {
        for (size_t j = 0; j < d_out; j++)
            L[i * d_out + j] = vt[i + j * kmin];
        for (size_t j = 0; j < d_in; j++)
            R[i * d_in + j] = u[j + i * (size_t)m];
    }
    free(u);
    free(vt);
    *left = L;
    *right = R;
    return RL_OK;
}

/* ||X^T Y||_F^2 / k for row bases X, Y (k x d) */
static double overlap(const double *x, const double *y, size_t k, size_t d)
{
    double sum = 0;

    for (size_t i = 0; i < k; i++)
        for (size_t j = 0; j < k; j++) {
            double dot = 0;
            for (size_t t = 0; t < d; t++)
                dot += x[i * d + t] * y[j * d + t];
            sum += dot * dot;
        }
    return sum / (double)k;
}

struct similarity {
    double cosine, overlap_out, overlap_in;
    size_t k;
};

static int similarity(struct similarity *out, const float *a, size_t rank_a, const float *b, size_t rank_b,
                      size_t d_out, size_t d_in, size_t topk)
{
    double dot = 0, na = 0, nb = 0;
    size_t n = d_out * d_in, k = topk;
    double *la = NULL, *ra = NULL, *lb = NULL, *rb = NULL;
    int rc;

    *out = (struct similarity){ NAN, NAN, NAN, 0 };
    for (size_t i = 0; i < n; i++) {
        dot += (double)a[i] * b[i];
        na += (double)a[i] * a[i];
        nb += (double)b[i] * b[i];
    }
    if (na > 0 && nb > 0)
        out->cosine = dot / (sqrt(na) * sqrt(nb));
    if (rank_a < k)
        k = rank_a;
    if (rank_b < k)
        k = rank_b;
    if (k == 0)
        return RL_OK;
    if ((rc = top_vectors(a, d_out, d_in, k, &la, &ra)) || (rc = top_vectors(b, d_out, d_in, k, &lb, &rb))) {
        free(la);
        free(ra);
        return rc;
    }
    out->overlap_out = overlap(la, lb, k, d_out);
    out->overlap_in = overlap(ra, rb, k, d_in);
    out->k = k;
    free(la);
    free(ra);
    free(lb);
    free(rb);
    return RL_OK;
}

/* ---------------------------------------------------------------- one run */

struct ref_layer {
    const char *name;
    size_t d_out, d_in, rank;
    float *dw;
};

struct reference {
    const char *path;
    struct ref_layer *layers;
    size_t n;
};

static void reference_free(struct reference *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->layers[i].dw);
    free(r->layers);
    r->layers = NULL;
    r->n = 0;
}

/* dW and numerical rank of every layer of the reference run */
static int load_reference(struct reference *ref, struct run_adapters *ra, const char *path)
{
    struct store *s = NULL;
    int rc;

    ref->path = path;
    if ((rc = store_open(&s, path)))
        return rc;
    rc = run_adapters_load(ra, s);
    store_close(s);
    if (rc)
        return rc;
    ref->layers = xcalloc(ra->n_sites ? ra->n_sites : 1, sizeof(*ref->layers));
    for (size_t i = 0; i < ra->n_sites; i++) {
        struct run_site *site = &ra->sites[i];
        struct ref_layer *l = &ref->layers[i];
        struct layer_analysis la;

        l->name = site->name;
        l->d_out = site->d_out;
        l->d_in = site->d_in;
        l->dw = xmalloc_array(site->d_out * site->d_in, sizeof(float));
        ref->n = i + 1;
        adapter_delta_weight(&site->adapter, l->dw);
        if ((rc = analysis_layer(&la, l->dw, l->d_out, l->d_in, ANALYSIS_REL_TOL))) {
            char msg[512];
            snprintf(msg, sizeof msg, "%s", rl_error_msg());
            return rl_error_set(rc == RL_ERR_ARG ? RL_ERR_FORMAT : rc, "%s: /adapter/%s: %s", path, site->name,
                                msg);
        }
        l->rank = la.rank;
        analysis_layer_free(&la);
    }
    return RL_OK;
}

static const struct ref_layer *ref_find(const struct reference *ref, const char *name)
{
    for (size_t i = 0; ref && i < ref->n; i++)
        if (!strcmp(ref->layers[i].name, name))
            return &ref->layers[i];
    return NULL;
}

static int write_site(struct store *s, const char *site, const struct layer_analysis *la,
                      const struct similarity *sim, bool write_sim)
{
    char p[1400], g[1300];
    int rc;
    size_t dims[1] = { la->n_s };
    float *sv = xmalloc_array(la->n_s, sizeof(float));

    for (size_t i = 0; i < la->n_s; i++)
        sv[i] = (float)la->s[i];
    snprintf(g, sizeof g, "/analysis/%s", site);
#define W(stmt) do { if ((rc = (stmt))) goto done; } while (0)
#define P(name) (snprintf(p, sizeof p, "%s/%s", g, name), p)
    W(store_write_tensor(s, P("singular_values"), sv, 1, dims));
    W(store_write_scalar_i64(s, P("rank"), (int64_t)la->rank));
    W(store_write_scalar_i64(s, P("rank_rel"), (int64_t)la->rank_rel));
    W(store_write_scalar(s, P("effective_rank"), la->effective_rank));
    W(store_write_scalar(s, P("stable_rank"), la->stable_rank));
    W(store_write_scalar(s, P("nuclear_norm"), la->nuclear_norm));
    W(store_write_scalar(s, P("frobenius_norm"), la->frobenius_norm));
    W(store_attr_set_int64(s, g, "d_out", (int64_t)la->d_out));
    W(store_attr_set_int64(s, g, "d_in", (int64_t)la->d_in));
    if (write_sim || store_has(s, P("ref_cosine"))) {
        W(store_write_scalar(s, P("ref_cosine"), sim->cosine));
        W(store_write_scalar(s, P("ref_overlap_out"), sim->overlap_out));
        W(store_write_scalar(s, P("ref_overlap_in"), sim->overlap_in));
        W(store_write_scalar_i64(s, P("ref_k"), (int64_t)sim->k));
    }
#undef P
#undef W
done:
    free(sv);
    return rc;
}

static void fmt_num(char *buf, size_t size, double v)
{
    if (isfinite(v))
        snprintf(buf, size, "%.3f", v);
    else
        snprintf(buf, size, "-");
}

static void print_cka(const struct cka_ctx *c, const struct cka_result *res, const struct cka_acts *a)
{
    size_t L = res->Lv > res->Lt ? res->Lv : res->Lt;
    char v[16], t[16];

    printf("  activation CKA vs %s (layer outputs; vision: %zu images x %zu tokens = %zu rows", c->ref_path,
           c->n_images, a->nv / (c->n_images ? c->n_images : 1), a->nv);
    if (a->nt)
        printf("; text: %zu prompts, %zu tokens", c->n_prompts, a->nt);
    else
        printf("; text: not compared (other prompts)");
    printf(")\n  %-7s %8s %8s\n", "layer", "vision", "text");
    for (size_t l = 0; l < L; l++) {
        if (l < res->Lv)
            fmt_num(v, sizeof v, res->v[l]);
        else
            snprintf(v, sizeof v, " ");
        if (l < res->Lt)
            fmt_num(t, sizeof t, res->t[l]);
        else
            snprintf(t, sizeof t, " ");
        printf("  %-7zu %8s %8s\n", l, v, t);
    }
}

/* Whether the run at path is of method `none` (the frozen model: no update
 * to analyze). Read-only; errors as run_plan_read's. */
static int is_frozen_run(const char *path, bool *frozen)
{
    struct store *s = NULL;
    struct run_plan *plan = NULL;
    int rc;

    *frozen = false;
    if ((rc = store_open(&s, path)))
        return rc;
    if ((rc = run_plan_read(s, &plan)) == RL_OK) {
        *frozen = !strcmp(plan->method, "none");
        run_plans_free(plan, 1);
    }
    store_close(s);
    return rc;
}

static int analyze_run(const char *path, const struct reference *ref, struct cka_ctx *cka, double rel_tol,
                       size_t topk)
{
    struct store *s = NULL;
    struct run_adapters ra;
    struct cka_acts acts;
    struct cka_result cres;
    bool have_cka = false;
    int rc;

    memset(&ra, 0, sizeof ra);
    memset(&acts, 0, sizeof acts);
    memset(&cres, 0, sizeof cres);
    {
        bool frozen;

        if ((rc = is_frozen_run(path, &frozen)))
            return rc;
        if (frozen) {
            printf("%s: none (the frozen model): no update to analyze\n", path);
            return RL_OK;
        }
    }
    if ((rc = store_open_rw(&s, path)))
        return rc;
    if ((rc = run_adapters_load(&ra, s)))
        goto done;
    if (cka) {
        /* everything that can refuse the run comes before anything is written */
        bool same_prompts = false;
        if ((rc = cka_check(cka, path, ra.plan, &same_prompts)))
            goto done;
        if (!same_prompts)
            fprintf(stderr, "randlora analyze: note: %s: its eval prompts differ from the reference's: the text "
                    "tower is not compared\n", path);
        if ((rc = cka_acts_compute(&acts, cka, &ra, same_prompts))) {
            char msg[512];
            snprintf(msg, sizeof msg, "%s", rl_error_msg());
            rc = rl_error_set(rc, "%s: activations: %s", path, msg);
            goto done;
        }
        if ((rc = cka_compare(&cres, &acts, &cka->ref, cka->m.cfg.text.layers, path)))
            goto done;
        have_cka = true;
    }
    if (ra.shared_loaded && ra.shared_max_diff > 0)
        fprintf(stderr,
                "randlora analyze: warning: %s: /adapter/shared differs from what the config's seed regenerates "
                "(max |diff| %.3g); the stored tensors are used\n",
                path, ra.shared_max_diff);

    printf("%s: %s", path, ra.method);
    if (ra.m.ops && (ra.m.ops->flags & ADAPTER_F_RANK))
        printf(" r=%zu", ra.plan->adapter.r);
    printf(", %zu adapted layer%s%s%s\n", ra.n_sites, ra.n_sites == 1 ? "" : "s", ref ? ", reference " : "",
           ref ? ref->path : "");
    if (ra.n_sites == 0)
        goto attrs;
    printf("  %-50s %11s %6s %9s %9s %9s", "layer", "shape", "rank", "rank_rel", "eff_rank", "stable");
    if (ref)
        printf(" %7s %7s %7s", "cosine", "ovl_out", "ovl_in");
    printf("\n");
    for (size_t i = 0; i < ra.n_sites; i++) {
        struct run_site *site = &ra.sites[i];
        struct layer_analysis la;
        struct similarity sim = { NAN, NAN, NAN, 0 };
        float *dw = xmalloc_array(site->d_out * site->d_in, sizeof(float));
        char shape[32], c1[16], c2[16], c3[16];

        adapter_delta_weight(&site->adapter, dw);
        rc = analysis_layer(&la, dw, site->d_out, site->d_in, rel_tol);
        if (rc) {
            char msg[512];
            snprintf(msg, sizeof msg, "%s", rl_error_msg());
            free(dw);
            rc = rl_error_set(rc == RL_ERR_ARG ? RL_ERR_FORMAT : rc, "%s: /adapter/%s: %s", path, site->name, msg);
            goto done;
        }
        const struct ref_layer *rl = ref_find(ref, site->name);
        if (rl && rl->d_out == site->d_out && rl->d_in == site->d_in)
            rc = similarity(&sim, dw, la.rank, rl->dw, rl->rank, site->d_out, site->d_in, topk);
        else if (ref)
            fprintf(stderr, "randlora analyze: note: %s: layer %s %s in the reference %s\n", path, site->name,
                    rl ? "has another shape" : "is not", ref->path);
        if (rc == RL_OK)
            rc = write_site(s, site->name, &la, &sim, ref != NULL);
        free(dw);
        if (rc) {
            analysis_layer_free(&la);
            goto done;
        }
        snprintf(shape, sizeof shape, "%zux%zu", site->d_out, site->d_in);
        printf("  %-50s %11s %6zu %9zu %9.2f %9.2f", site->name, shape, la.rank, la.rank_rel, la.effective_rank,
               la.stable_rank);
        if (ref) {
            fmt_num(c1, sizeof c1, sim.cosine);
            fmt_num(c2, sizeof c2, sim.overlap_out);
            fmt_num(c3, sizeof c3, sim.overlap_in);
            printf(" %7s %7s %7s", c1, c2, c3);
        }
        printf("\n");
        analysis_layer_free(&la);
    }
attrs:
    if ((rc = cka_write(s, cka, have_cka ? &cres : NULL, &acts)))
        goto done;
    if (have_cka)
        print_cka(cka, &cres, &acts);
    if (ra.n_sites && ((rc = store_attr_set_double(s, "/analysis", "rel_tol", rel_tol)) ||
                       (rc = store_attr_set_string(s, "/analysis", "reference", ref ? ref->path : "")) ||
                       (rc = store_attr_set_int64(s, "/analysis", "topk", (int64_t)topk))))
        goto done;
    /* everything went into a working copy; now it replaces the file in one
     * rename (results/store.h, "Commit"): interrupted before, the file is
     * as it was */
    rc = store_commit(s);
done:
    cka_result_free(&cres);
    cka_acts_free(&acts);
    run_adapters_free(&ra);
    if (rc == RL_OK)
        rc = store_close(s);
    else
        store_close(s);        /* its failure would hide the first one's message */
    return rc;
}

int cmd_analyze(int argc, char **argv)
{
    const char *refpath = NULL;
    double rel_tol = ANALYSIS_REL_TOL;
    size_t topk = DEFAULT_TOPK, cka_batch = DEFAULT_CKA_BATCH;
    char **runs = xcalloc((size_t)argc + 1, sizeof(*runs));
    size_t n_runs = 0;
    int status = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            analyze_usage(stdout);
            free(runs);
            return 0;
        } else if (!strcmp(a, "--reference") || !strcmp(a, "--tol") || !strcmp(a, "--topk") ||
                   !strcmp(a, "--cka-batch")) {
            if (i + 1 >= argc) {
                free(runs);
                return bad("%s needs a value", a);
            }
            const char *v = argv[++i];
            char *end;
            errno = 0;
            if (!strcmp(a, "--reference")) {
                refpath = v;
            } else if (!strcmp(a, "--tol")) {
                rel_tol = strtod(v, &end);
                if (errno || end == v || *end || !(rel_tol >= 0 && rel_tol < 1)) {
                    free(runs);
                    return bad("--tol '%s': expected a number in [0, 1)", v);
                }
            } else if (!strcmp(a, "--cka-batch")) {
                long long k = strtoll(v, &end, 10);
                if (errno || end == v || *end || k < 0 || k > MAX_CKA_BATCH) {
                    free(runs);
                    return bad("--cka-batch '%s': expected an integer in 0..%d", v, MAX_CKA_BATCH);
                }
                cka_batch = (size_t)k;
            } else {
                long long k = strtoll(v, &end, 10);
                if (errno || end == v || *end || k < 1 || k > 4096) {
                    free(runs);
                    return bad("--topk '%s': expected an integer in 1..4096", v);
                }
                topk = (size_t)k;
            }
        } else if (a[0] == '-' && a[1]) {
            free(runs);
            return bad("unknown option '%s'", a);
        } else {
            runs[n_runs++] = argv[i];
        }
    }
    if (n_runs == 0) {
        free(runs);
        return bad("no run files given");
    }

    struct reference ref = { 0 };
    struct run_adapters ref_ra;
    struct cka_ctx cka;
    bool with_cka = refpath && cka_batch > 0;
    memset(&ref_ra, 0, sizeof ref_ra);
    memset(&cka, 0, sizeof cka);
    cka.batch = cka_batch;
    if (refpath) {
        int rc = load_reference(&ref, &ref_ra, refpath);
        if (rc == RL_OK && with_cka) {
            threads_init(0);
            if ((rc = cka_setup(&cka, ref_ra.plan, refpath)) == RL_OK &&
                (rc = cka_acts_compute(&cka.ref, &cka, &ref_ra, true))) {
                char msg[512];
                snprintf(msg, sizeof msg, "%s", rl_error_msg());
                rc = rl_error_set(rc, "%s: activations: %s", refpath, msg);
            }
        }
        if (rc) {
            fprintf(stderr, "randlora analyze: reference: %s\n", rl_error_msg());
            cka_ctx_free(&cka);
            reference_free(&ref);
            run_adapters_free(&ref_ra);
            free(runs);
            return rl_exit_code(rc);
        }
    }
    for (size_t i = 0; i < n_runs; i++) {
        int rc = analyze_run(runs[i], refpath ? &ref : NULL, with_cka ? &cka : NULL, rel_tol, topk);
        if (rc) {
            int code = rl_exit_code(rc);
            fprintf(stderr, "randlora analyze: %s\n", rl_error_msg());
            if (code == 1 || status == 0)
                status = code;
        }
    }
    cka_ctx_free(&cka);
    reference_free(&ref);
    run_adapters_free(&ref_ra);
    free(runs);
    return status;
}
