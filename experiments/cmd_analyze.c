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
 * Activation CKA (with --reference, unless --cka-batch 0): the model of the
 * reference's plan (runner_load_model) and a FIXED batch: the first N items
 * of its eval spec (N = --cka-batch, default 64, at most the set's size),
 * through the CLIP eval transform at the model's image size, and its eval
 * prompts (the class names in plan->prompt, or in the dataset's templates
 * when the run ensembles them). Each run must name the same model directory
 * (compared after realpath) and the same eval spec and image size as the
 * reference (RL_ERR_ARG, exit 2, before anything is written to it); other
 * prompts only skip the text tower (NaN, with a note). Both towers are run
 * with the run's adapters and with the reference's (run_adapters_attach:
 * the plan's targets on the model, the file's parameters; eval mode), and
 * for every encoder layer l the output activations -- the residual stream
 * after layer l, one row per token -- are compared with
 * analysis_linear_cka:
 *   vision: every token of every image (class token and patches), so
 *           n = N * T rows of width C (64 x 65 = 4160 rows of 128 for
 *           clip-tiny): linear CKA is biased upwards when n is not much
 *           larger than the width, which class-token rows alone (n = N)
 *           would be;
 *   text:   every token of each prompt up to and including its end-of-text
 *           (what the causal tower's pooled row can see); n is small (10
 *           prompts of ~23 tokens for Fashion-MNIST), so read it with that
 *           bias in mind.
 * Written:
 *   /analysis/cka                  attrs reference (string), eval (string),
 *                                  n_images, vision_rows, n_prompts,
 *                                  text_rows (int64), activations (string)
 *   /analysis/cka/vision_layer_<l> float64, l = 0 .. Lv-1
 *   /analysis/cka/text_layer_<l>   float64, l = 0 .. Lt-1 (NaN: not compared)
 * Without CKA an earlier /analysis/cka is overwritten with NaN (reference "",
 * n_images 0). The reference's own activations are computed once; a run
 * against itself gives exactly 1 (the same computation twice).
 *
 * Exit status: 0 all runs analysed; 2 a bad argument or a bad or unfinished
 * run file (the other runs are still analysed); 1 other failures.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/status.h"
#include "core/threads.h"
#include "datasets/dataset.h"
#include "datasets/loader.h"
#include "experiments/commands.h"
#include "experiments/runner.h"
#include "models/clip.h"
#include "models/tokenizer.h"
#include "results/analysis.h"
#include "results/run_adapters.h"
#include "results/store.h"

#define DEFAULT_TOPK 8
#define DEFAULT_CKA_BATCH 64
#define MAX_CKA_BATCH     100000
#define CKA_CHUNK         16       /* images per vision forward */

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

static int bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int bad(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "randlora analyze: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see randlora analyze --help)\n");
    return 2;
}

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

/* ------------------------------------------------------- activation CKA */


/* Every layer's output activations of one run on the fixed batch: vision
 * v[l] (nv x Cv: every token of every image, image-major) and text t[l]
 * (nt x Ct: every prompt's tokens up to and including its end-of-text). */
struct tower_acts {
    size_t Lv, Lt, nv, Cv, nt, Ct;
    float **v, **t;
};

static void tower_acts_free(struct tower_acts *a)
{
    for (size_t l = 0; a->v && l < a->Lv; l++)
        free(a->v[l]);
    for (size_t l = 0; a->t && l < a->Lt; l++)
        free(a->t[l]);
    free(a->v);
    free(a->t);
    memset(a, 0, sizeof(*a));
}

/* what the runs are compared on: the reference's model and eval data */
struct cka_ctx {
    size_t batch;               /* --cka-batch; 0: no activation CKA        */
    const struct run_plan *ref_plan;
    const char *ref_path;
    char model_id[4096];        /* realpath of the model directory          */
    struct clip_model m;
    bool have_model;
    size_t n_images, S;         /* images of the batch, their side          */
    float *pixels;              /* (n_images, 3, S, S)                      */
    size_t n_prompts, ctx, max_T;
    int32_t *ids;               /* (n_prompts, ctx) the eval prompts        */
    struct tower_acts ref;      /* the reference's activations              */
};

static void cka_ctx_free(struct cka_ctx *c)
{
    if (c->have_model)
        clip_model_free(&c->m);
    free(c->pixels);
    free(c->ids);
    tower_acts_free(&c->ref);
}

static void model_identity(const struct exp_model *em, char *buf, size_t size)
{
    const char *dir = runner_model_dir(em);
    char real[PATH_MAX];

    if (dir && realpath(dir, real))
        snprintf(buf, size, "%s", real);
    else
        snprintf(buf, size, "%s", dir ? dir : em->name);
}

/* template with the first "{}" replaced by name (the runner's rule) */
static void fill_prompt(char *buf, size_t size, const char *tmpl, const char *name)
{
    const char *at = strstr(tmpl, "{}");

    if (!at)
        snprintf(buf, size, "%s", tmpl);
    else
        snprintf(buf, size, "%.*s%s%s", (int)(at - tmpl), tmpl, name, at + 2);
}

/* The model, the first N eval images (CLIP eval transform at the model's
 * size) and the eval prompts of the reference's plan. */
static int cka_setup(struct cka_ctx *c, const struct run_plan *p, const char *ref_path)
{
    struct dataset ds;
    struct loader *L = NULL;
    struct loader_config lc;
    struct loader_batch b;
    struct tokenizer *tok = NULL;
    char one[1][1024];
    char *one_t[1] = { one[0] };
    char *const *templates = one_t;
    size_t K = 1;
    int rc;

    memset(&ds, 0, sizeof ds);
    c->ref_plan = p;
    c->ref_path = ref_path;
    model_identity(&p->model, c->model_id, sizeof c->model_id);
    if ((rc = runner_load_model(&c->m, &p->model)))
        return rc;
    c->have_model = true;
    c->S = c->m.cfg.vision.image_size;
    if (p->image_size && p->image_size != c->S)
        return rl_error_set(RL_ERR_ARG, "%s: data.image_size = %zu, but the model takes %zux%zu images", ref_path,
                            p->image_size, c->S, c->S);
    if ((rc = dataset_open(&ds, p->eval)))
        return rc;
    c->n_images = c->batch < ds.n ? c->batch : ds.n;
    if (c->n_images < 1) {
        rc = rl_error_set(RL_ERR_ARG, "%s: the evaluation set %s is empty", ref_path, p->eval);
        goto out;
    }
    loader_config_init(&lc, (int)c->n_images, (int)c->S);
    lc.readahead = 0;
    if ((rc = loader_open(&L, &ds, NULL, c->n_images, &lc)) || (rc = loader_next(L, &b)))
        goto out;
    if ((size_t)b.n != c->n_images) {
        rc = rl_error_set(RL_ERR, "%s: %d images loaded, expected %zu", p->eval, b.n, c->n_images);
        goto out;
    }
    c->pixels = xmalloc_array(c->n_images * 3 * c->S * c->S, sizeof(float));
    memcpy(c->pixels, b.x, c->n_images * 3 * c->S * c->S * sizeof(float));

    /* the eval prompts: the dataset's templates when the run ensembles them */
    snprintf(one[0], sizeof one[0], "%s", p->prompt ? p->prompt : "{}");
    if (p->templates == EXP_TEMPLATES_DATASET && ds.n_templates > 0) {
        templates = ds.templates;
        K = (size_t)ds.n_templates;
    }
    if ((rc = runner_load_tokenizer(&tok, runner_model_dir(&p->model), &c->m.cfg)))
        goto out;
    c->ctx = c->m.cfg.text.context;
    c->n_prompts = (size_t)ds.n_classes * K;
    c->ids = xmalloc_array(c->n_prompts * c->ctx, sizeof(int32_t));
    for (size_t k = 0; k < (size_t)ds.n_classes; k++)
        for (size_t j = 0; j < K; j++) {
            char text[2048];
            int eot = 0;
            fill_prompt(text, sizeof text, templates[j], ds.class_names[k]);
            if ((rc = tok_encode(tok, text, c->ids + (k * K + j) * c->ctx, &eot)))
                goto out;
            if ((size_t)eot + 1 > c->max_T)
                c->max_T = (size_t)eot + 1;
        }
out:
    tok_free(tok);
    if (L)
        loader_close(L);
    dataset_close(&ds);
    return rc;
}

/* Does a run's plan see the same model and eval data as the reference?
 * RL_ERR_ARG naming the difference. *same_prompts: the text tower sees the
 * same prompts. */
static int cka_check(const struct cka_ctx *c, const char *path, const struct run_plan *p, bool *same_prompts)
{
    const struct run_plan *r = c->ref_plan;
    char id[4096];

    model_identity(&p->model, id, sizeof id);
    if (strcmp(id, c->model_id))
        return rl_error_set(RL_ERR_ARG,
                            "%s: model '%s' (%s), but the reference %s uses '%s' (%s): activation CKA needs "
                            "both runs on one model (--cka-batch 0 compares the updates only)",
                            path, p->model.name, id, c->ref_path, r->model.name, c->model_id);
    if (strcmp(p->eval, r->eval) || (p->image_size ? p->image_size : c->S) != (r->image_size ? r->image_size : c->S))
        return rl_error_set(RL_ERR_ARG,
                            "%s: eval data '%s', but the reference %s uses '%s': activation CKA needs the same "
                            "evaluation batch (--cka-batch 0 compares the updates only)",
                            path, p->eval, c->ref_path, r->eval);
    *same_prompts = p->templates == r->templates && !strcmp(p->prompt ? p->prompt : "", r->prompt ? r->prompt : "");
    return RL_OK;
}

/* The output of every encoder layer of both towers for the run `ra` on the
 * context's batch. Reads the towers' residual stream, which clip.h documents
 * as (L+1, B, T, C) in a run made for training (slot l+1 = the output of
 * layer l; the last one only with pool_last false), and checks that reading
 * against the pooled rows. */
static int tower_acts_compute(struct tower_acts *out, struct cka_ctx *c, const struct run_adapters *ra,
                              bool text)
{
    const struct clip_model *m = &c->m;
    const size_t chunk = c->n_images < CKA_CHUNK ? c->n_images : CKA_CHUNK;
    struct clip_adapters ca;
    struct clip_vision_run vr;
    struct clip_text_run tr;
    float *emb = NULL;
    int rc;

    memset(out, 0, sizeof(*out));
    memset(&vr, 0, sizeof vr);
    memset(&tr, 0, sizeof tr);
    if ((rc = run_adapters_attach(ra, m, &ca, chunk, c->n_prompts))) {
        clip_adapters_free(&ca);
        return rc;
    }
    struct clip_adapters *cap = ca.n_sites ? &ca : NULL;

    /* vision */
    const size_t Lv = m->cfg.vision.layers, Cv = m->cfg.vision.hidden, D = m->cfg.projection_dim;
    const size_t img = 3 * c->S * c->S;
    clip_vision_run_init(&vr, m, chunk, true);
    vr.pool_last = false;                   /* every token of the last layer too */
    const size_t T = vr.T;
    out->Lv = Lv;
    out->Cv = Cv;
    out->nv = c->n_images * T;
    out->v = xcalloc(Lv, sizeof(*out->v));
    for (size_t l = 0; l < Lv; l++)
        out->v[l] = xmalloc_array(out->nv * Cv, sizeof(float));
    emb = xmalloc_array(chunk * (D > Cv ? D : Cv), sizeof(float));
    for (size_t s = 0; s < c->n_images; s += chunk) {
        size_t B = c->n_images - s < chunk ? c->n_images - s : chunk, BTC = B * T * Cv;
        if ((rc = clip_vision_forward(&vr, m, cap, c->pixels + s * img, B, emb)))
            goto done;
        for (size_t i = 0; i < B; i++)
            if (memcmp(vr.pooled + i * Cv, vr.res + Lv * BTC + i * T * Cv, Cv * sizeof(float))) {
                rc = rl_error_set(RL_ERR, "analyze: the vision run's residual stream is not laid out as "
                                  "models/clip.h documents ((L+1, B, T, C)); activation CKA cannot read it");
                goto done;
            }
        for (size_t l = 0; l < Lv; l++)
            memcpy(out->v[l] + s * T * Cv, vr.res + (l + 1) * BTC, BTC * sizeof(float));
    }

    /* text: the eval prompts, each up to and including its end-of-text */
    if (text) {
        const size_t Lt = m->cfg.text.layers, Ct = m->cfg.text.hidden, n = c->n_prompts;
        float *temb = xmalloc_array(n * (D > Ct ? D : Ct), sizeof(float));
        clip_text_run_init(&tr, m, n, c->max_T, true);
        tr.pool_last = false;
        rc = clip_text_forward(&tr, m, cap, c->ids, n, c->ctx, temb);
        free(temb);
        if (rc)
            goto done;
        const size_t Tc = tr.T, BTC = n * Tc * Ct;
        out->Lt = Lt;
        out->Ct = Ct;
        for (size_t i = 0; i < n; i++) {
            if (tr.eot[i] >= Tc ||
                memcmp(tr.pooled + i * Ct, tr.res + Lt * BTC + (i * Tc + tr.eot[i]) * Ct, Ct * sizeof(float))) {
                rc = rl_error_set(RL_ERR, "analyze: the text run's residual stream is not laid out as "
                                  "models/clip.h documents ((L+1, B, T, C)); activation CKA cannot read it");
                goto done;
            }
            out->nt += tr.eot[i] + 1;
        }
        out->t = xcalloc(Lt, sizeof(*out->t));
        for (size_t l = 0; l < Lt; l++) {
            float *dst = out->t[l] = xmalloc_array(out->nt * Ct, sizeof(float));
            for (size_t i = 0; i < n; i++) {
                size_t rows = tr.eot[i] + 1;
                memcpy(dst, tr.res + (l + 1) * BTC + i * Tc * Ct, rows * Ct * sizeof(float));
                dst += rows * Ct;
            }
        }
    }
done:
    free(emb);
    clip_vision_run_free(&vr);
    if (text)
        clip_text_run_free(&tr);
    clip_adapters_free(&ca);
    if (rc)
        tower_acts_free(out);
    return rc;
}

/* per layer CKA of a run's activations against the reference's (NaN where
 * not computed) */
struct cka_result {
    size_t Lv, Lt;
    double *v, *t;
    bool text;
};

static void cka_result_free(struct cka_result *res)
{
    free(res->v);
    free(res->t);
    memset(res, 0, sizeof(*res));
}

static int cka_compare(struct cka_result *res, const struct tower_acts *a, const struct tower_acts *r,
                       size_t Lt, const char *path)
{
    int rc = RL_OK;

    res->Lv = r->Lv;
    res->Lt = Lt;
    res->v = xmalloc_array(res->Lv ? res->Lv : 1, sizeof(double));
    res->t = xmalloc_array(Lt ? Lt : 1, sizeof(double));
    for (size_t l = 0; l < Lt; l++)
        res->t[l] = NAN;
    for (size_t pass = 0; pass < 2; pass++) {
        size_t L = pass ? (a->Lt && r->Lt ? Lt : 0) : res->Lv;
        for (size_t l = 0; l < L; l++) {
            double *dst = pass ? &res->t[l] : &res->v[l];
            const float *x = pass ? a->t[l] : a->v[l], *y = pass ? r->t[l] : r->v[l];
            size_t n = pass ? a->nt : a->nv, p = pass ? a->Ct : a->Cv;
            *dst = NAN;
            if ((rc = analysis_linear_cka(dst, x, y, n, p, p))) {
                if (rc != RL_ERR_ARG)
                    return rc;
                fprintf(stderr, "randlora analyze: note: %s: %s layer %zu: no CKA: %s\n", path,
                        pass ? "text" : "vision", l, rl_error_msg());
                *dst = NAN;
                rc = RL_OK;
            }
        }
    }
    return rc;
}

/* /analysis/cka: the per-layer values and what they were computed on; an
 * earlier group without CKA now (res NULL) gets NaN everywhere */
static int write_cka(struct store *s, const struct cka_ctx *c, const struct cka_result *res,
                     const struct tower_acts *a)
{
    char p[256];
    int rc = RL_OK;

    if (!res) {
        char **names = NULL;
        size_t n = 0;
        if (!store_has(s, "/analysis/cka"))
            return RL_OK;
        if ((rc = store_list(s, "/analysis/cka", &names, &n)))
            return rc;
        for (size_t i = 0; i < n && !rc; i++) {
            snprintf(p, sizeof p, "/analysis/cka/%s", names[i]);
            rc = store_write_scalar(s, p, NAN);
        }
        store_free_names(names, n);
        if (!rc)
            rc = store_attr_set_string(s, "/analysis/cka", "reference", "");
        if (!rc)
            rc = store_attr_set_int64(s, "/analysis/cka", "n_images", 0);
        return rc;
    }
    for (size_t l = 0; l < res->Lv && !rc; l++) {
        snprintf(p, sizeof p, "/analysis/cka/vision_layer_%zu", l);
        rc = store_write_scalar(s, p, res->v[l]);
    }
    for (size_t l = 0; l < res->Lt && !rc; l++) {
        snprintf(p, sizeof p, "/analysis/cka/text_layer_%zu", l);
        rc = store_write_scalar(s, p, res->t[l]);
    }
    if (rc)
        return rc;
    const char *g = "/analysis/cka";
    if ((rc = store_attr_set_string(s, g, "reference", c->ref_path)) ||
        (rc = store_attr_set_string(s, g, "eval", c->ref_plan->eval)) ||
        (rc = store_attr_set_int64(s, g, "n_images", (int64_t)c->n_images)) ||
        (rc = store_attr_set_int64(s, g, "vision_rows", (int64_t)a->nv)) ||
        (rc = store_attr_set_int64(s, g, "n_prompts", (int64_t)(res->t && a->nt ? c->n_prompts : 0))) ||
        (rc = store_attr_set_int64(s, g, "text_rows", (int64_t)a->nt)) ||
        (rc = store_attr_set_string(s, g, "activations",
                                    "output of each encoder layer (residual stream); vision: every token of "
                                    "the first n_images eval images; text: every token of each eval prompt up "
                                    "to and including its end-of-text")))
        return rc;
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

static void print_cka(const struct cka_ctx *c, const struct cka_result *res, const struct tower_acts *a)
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

static int analyze_run(const char *path, const struct reference *ref, struct cka_ctx *cka, double rel_tol,
                       size_t topk)
{
    struct store *s = NULL;
    struct run_adapters ra;
    struct tower_acts acts;
    struct cka_result cres;
    bool have_cka = false;
    int rc;

    memset(&ra, 0, sizeof ra);
    memset(&acts, 0, sizeof acts);
    memset(&cres, 0, sizeof cres);
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
        if ((rc = tower_acts_compute(&acts, cka, &ra, same_prompts))) {
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
    if ((rc = write_cka(s, cka, have_cka ? &cres : NULL, &acts)))
        goto done;
    if (have_cka)
        print_cka(cka, &cres, &acts);
    if (ra.n_sites && ((rc = store_attr_set_double(s, "/analysis", "rel_tol", rel_tol)) ||
                       (rc = store_attr_set_string(s, "/analysis", "reference", ref ? ref->path : "")) ||
                       (rc = store_attr_set_int64(s, "/analysis", "topk", (int64_t)topk))))
        goto done;
done:
    cka_result_free(&cres);
    tower_acts_free(&acts);
    run_adapters_free(&ra);
    store_close(s);
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
                (rc = tower_acts_compute(&cka.ref, &cka, &ref_ra, true))) {
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
