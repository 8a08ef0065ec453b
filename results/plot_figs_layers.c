/*
 * plot_figs_layers.c: the per-layer figures from `randlora analyze`
 * (plot_figs.h), each from one representative run per method: among the
 * drawn settings' analysed runs, the one with the most shots (or largest
 * fraction), then the largest budget or rank, then the smallest seed.
 *   spectrum        s_i / s_1 of dW for one layer (--layer, default the
 *                   first adapted layer), with the numerical-rank threshold
 *                   max(d_out, d_in) * eps(float32) as a reference line:
 *                   values below it are round-off, not data;
 *   rank            numerical rank of dW per layer (boxes);
 *   effective_rank  effective rank (Roy & Vetterli) of dW per layer;
 *   cka             activation CKA to the reference run per encoder layer
 *                   (analyze --reference), y from 0 to 1;
 *   ref_cosine      cosine of dW with the reference's dW per layer, with 0
 *                   (orthogonal updates) as a reference line;
 *   ref_overlap     top-k singular subspace overlap with the reference's dW
 *                   per layer, output space solid and input space dashed,
 *                   y from 0 to 1.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "results/analysis.h"
#include "results/plot_figs_impl.h"
#include "results/run_adapters.h"

static const struct plot_layer *layer_find(const struct plot_run *r, const char *site)
{
    for (size_t i = 0; i < r->n_layers; i++)
        if (!strcmp(r->layers[i].site, site))
            return &r->layers[i];
    return NULL;
}

static bool better(const struct plot_run *a, const struct plot_run *b)
{
    if (a->key.shots != b->key.shots)
        return a->key.shots > b->key.shots;
    if (a->key.fraction != b->key.fraction)
        return a->key.fraction > b->key.fraction;
    size_t sa = a->key.budget ? a->key.budget : a->key.rank, sb = b->key.budget ? b->key.budget : b->key.rank;
    if (sa != sb)
        return sa > sb;
    if (a->key.seed != b->key.seed)
        return a->key.seed < b->key.seed;
    return strcmp(a->path, b->path) < 0;
}

/* one analysed run per method, in order of first appearance */
static size_t representatives(const struct plot_ctx *c, const struct plot_run **rep)
{
    size_t k = 0;

    for (size_t s = 0; s < c->set->n_settings; s++) {
        const struct plot_setting *st = &c->set->settings[s];
        if (!plot_drawn(c, st))
            continue;
        for (size_t i = 0; i < st->n; i++) {
            const struct plot_run *r = &c->set->runs[st->runs[i]];
            size_t m;
            if (!r->n_layers && !r->n_cka_vision)
                continue;
            for (m = 0; m < k && strcmp(rep[m]->key.method, r->key.method); m++)
                ;
            if (m == k)
                rep[k++] = r;
            else if (better(r, rep[m]))
                rep[m] = r;
        }
    }
    return k;
}

static void rep_name(const struct plot_run *r, char *buf, size_t size)
{
    if (r->has_rank)
        snprintf(buf, size, "%s r%zu", r->key.method, r->key.rank);
    else
        snprintf(buf, size, "%s", r->key.method);
}

static void fig_spectrum(struct plot_ctx *c, const struct plot_run **rep, size_t n_rep)
{
    struct plot_sb b = { 0 };
    const char *site = c->layer;
    const struct plot_layer *shape = NULL;
    char nb[96];

    if (!site)
        for (size_t i = 0; i < n_rep; i++)
            if (rep[i]->n_layers && (!site || run_site_cmp(rep[i]->layers[0].site, site) < 0))
                site = rep[i]->layers[0].site;
    for (size_t i = 0; site && i < n_rep; i++) {
        const struct plot_layer *l = layer_find(rep[i], site);
        if (!l || l->n_sv == 0 || !(l->sv[0] > 0))
            continue;
        if (!shape && l->d_out && l->d_in)
            shape = l;
        rep_name(rep[i], nb, sizeof nb);
        for (size_t t = 0; t < l->n_sv; t++)
            plot_sb_add(&b, nb, NULL, (double)(t + 1), l->sv[t] / l->sv[0], 0, 0, 1);
    }
    if (n_rep == 0)
        printf("note: spectrum: no run has an /analysis; run `randlora analyze RUN.h5 ...` first; skipped\n");
    else if (b.n == 0)
        printf("note: spectrum: no analysed run has layer %s; skipped\n", site ? site : "(none)");
    else {
        char title[1200];
        struct plot_refline ref = { "numerical-rank threshold", 0 };
        if (shape)
            ref.y = analysis_rank_tol(1.0, shape->d_out, shape->d_in);
        snprintf(title, sizeof title, "singular values of dW: %s", site);
        /* the series are normalised here, so the figure draws them as given */
        struct plot_figure fig = { .kind = PLOT_SPECTRUM, .title = title, .ylabel = "s_i / s_1",
                                   .reflines = &ref, .n_reflines = shape ? 1 : 0 };
        plot_sb_draw(c, &b, &fig, "spectrum");
    }
    plot_sb_free(&b);
}

static int str_site_cmp(const void *a, const void *b)
{
    return run_site_cmp(*(const char *const *)a, *(const char *const *)b);
}

/* per-layer figures: the union of the sites in site order as x tics */
struct sites {
    const char **site;
    size_t n;
    double *at;
    char (*label)[48];
    const char **lab;
};

static void sites_build(struct sites *s, const struct plot_run **rep, size_t n_rep)
{
    size_t total = 0;

    memset(s, 0, sizeof(*s));
    for (size_t i = 0; i < n_rep; i++)
        total += rep[i]->n_layers;
    s->site = xcalloc(total ? total : 1, sizeof(*s->site));
    for (size_t i = 0; i < n_rep; i++)
        for (size_t j = 0; j < rep[i]->n_layers; j++) {
            size_t t;
            for (t = 0; t < s->n && strcmp(s->site[t], rep[i]->layers[j].site); t++)
                ;
            if (t == s->n)
                s->site[s->n++] = rep[i]->layers[j].site;
        }
    qsort(s->site, s->n, sizeof(*s->site), str_site_cmp);
    s->at = xmalloc_array(s->n ? s->n : 1, sizeof(double));
    s->label = xcalloc(s->n ? s->n : 1, sizeof(*s->label));
    s->lab = xcalloc(s->n ? s->n : 1, sizeof(*s->lab));
    for (size_t t = 0; t < s->n; t++) {
        s->at[t] = (double)t;
        s->lab[t] = run_site_short(s->site[t], s->label[t], sizeof s->label[t]);
    }
}

static void sites_free(struct sites *s)
{
    free(s->site);
    free(s->at);
    free(s->label);
    free(s->lab);
}

/* the value a per-layer figure draws */
enum measure { M_RANK, M_EFFECTIVE, M_COSINE, M_OVERLAP_OUT, M_OVERLAP_IN };

static double measure(const struct plot_layer *l, enum measure m)
{
    switch (m) {
    case M_RANK:        return (double)l->rank;
    case M_EFFECTIVE:   return l->effective_rank;
    case M_COSINE:      return l->ref_cosine;
    case M_OVERLAP_OUT: return l->ref_overlap_out;
    case M_OVERLAP_IN:  return l->ref_overlap_in;
    }
    return NAN;
}

/* add each representative's finite values of m per site; the count */
static size_t add_measure(struct plot_sb *b, const struct sites *s, const struct plot_run **rep, size_t n_rep,
                          enum measure m, const char *style)
{
    size_t added = 0;
    char nb[96];

    for (size_t i = 0; i < n_rep; i++) {
        if (m >= M_COSINE && rep[i]->is_reference)
            continue;                   /* itself: 1 everywhere, not a result */
        rep_name(rep[i], nb, sizeof nb);
        for (size_t t = 0; t < s->n; t++) {
            const struct plot_layer *l = layer_find(rep[i], s->site[t]);
            double v = l ? measure(l, m) : NAN;
            if (isfinite(v)) {
                plot_sb_add(b, nb, style, (double)t, v, 0, 0, 1);
                added++;
            }
        }
    }
    return added;
}

/* what, and on a second line the reference (when the runs name one) */
static const char *ref_title(char *buf, size_t cap, const char *what, const struct plot_run **rep, size_t n_rep)
{
    const char *ref = NULL;

    for (size_t i = 0; i < n_rep && !ref; i++)
        if (rep[i]->reference && rep[i]->reference[0])
            ref = rep[i]->reference;
    if (ref)
        snprintf(buf, cap, "%s\nreference: %s", what, ref);
    else
        snprintf(buf, cap, "%s", what);
    return buf;
}

static void fig_per_site(struct plot_ctx *c, const struct sites *s, const struct plot_run **rep, size_t n_rep,
                         enum measure m)
{
    struct plot_sb b = { 0 };
    struct plot_refline zero = { "orthogonal updates", 0.0 };
    struct plot_figure fig = { .kind = PLOT_LAYER, .n_xtics = s->n, .xtic_at = s->at, .xtic_labels = s->lab,
                               .width = s->n > 24 ? (int)(s->n * 32 + 200) : 0 };
    const char *name;
    char title[600];

    switch (m) {
    case M_RANK:
        fig.kind = PLOT_RANK;
        fig.title = "numerical rank of dW per layer";
        name = "rank";
        add_measure(&b, s, rep, n_rep, m, NULL);
        break;
    case M_EFFECTIVE:
        fig.title = "effective rank of dW per layer (Roy & Vetterli)";
        fig.ylabel = "effective rank";
        fig.yzero = 1;
        name = "effective_rank";
        add_measure(&b, s, rep, n_rep, m, NULL);
        break;
    case M_COSINE:
        fig.title = ref_title(title, sizeof title, "cosine of dW with the reference's dW per layer", rep, n_rep);
        fig.ylabel = "cos(dW, dW_ref)";
        fig.reflines = &zero;
        fig.n_reflines = 1;
        name = "ref_cosine";
        add_measure(&b, s, rep, n_rep, m, NULL);
        break;
    default:
        fig.title = ref_title(title, sizeof title, "top-k singular subspace overlap with the reference's dW per layer",
                              rep, n_rep);
        fig.ylabel = "overlap ||U_k^T U_ref,k||_F^2 / k";
        fig.ymin = 0;
        fig.ymax = 1.05;
        name = "ref_overlap";
        add_measure(&b, s, rep, n_rep, M_OVERLAP_OUT, "output space");
        add_measure(&b, s, rep, n_rep, M_OVERLAP_IN, "input space");
        break;
    }
    if (b.n)
        plot_sb_draw(c, &b, &fig, name);
    else if (m >= M_COSINE)
        printf("note: %s: no analysed run has a reference (randlora analyze --reference FT.h5); skipped\n", name);
    else
        printf("note: %s: no run has an /analysis; run `randlora analyze RUN.h5 ...` first; skipped\n", name);
    plot_sb_free(&b);
}

static void fig_cka(struct plot_ctx *c, const struct plot_run **rep, size_t n_rep)
{
    struct plot_sb b = { 0 };
    size_t nv = 0, nt = 0;
    char nb[96];

    for (size_t i = 0; i < n_rep; i++) {
        nv = rep[i]->n_cka_vision > nv ? rep[i]->n_cka_vision : nv;
        nt = rep[i]->n_cka_text > nt ? rep[i]->n_cka_text : nt;
    }
    for (size_t i = 0; i < n_rep; i++) {
        if (rep[i]->is_reference)
            continue;
        rep_name(rep[i], nb, sizeof nb);
        for (size_t l = 0; l < rep[i]->n_cka_vision; l++)
            if (isfinite(rep[i]->cka_vision[l]))
                plot_sb_add(&b, nb, "vision", (double)l, rep[i]->cka_vision[l], 0, 0, 1);
        for (size_t l = 0; l < rep[i]->n_cka_text; l++)
            if (isfinite(rep[i]->cka_text[l]))
                plot_sb_add(&b, nb, "text", (double)(nv + l), rep[i]->cka_text[l], 0, 0, 1);
    }
    if (b.n == 0) {
        printf("note: cka: no analysed run has activation CKA (randlora analyze --reference FT.h5); skipped\n");
    } else {
        double *at = xmalloc_array(nv + nt, sizeof(double));
        char (*label)[40] = xcalloc(nv + nt, sizeof(*label));
        const char **lab = xcalloc(nv + nt, sizeof(*lab));
        for (size_t l = 0; l < nv + nt; l++) {
            at[l] = (double)l;
            snprintf(label[l], sizeof label[l], "%s%zu", l < nv ? "vision " : "text ", l < nv ? l : l - nv);
            lab[l] = label[l];
        }
        char title[600];
        struct plot_figure fig = { .kind = PLOT_LAYER,
                                   .title = ref_title(title, sizeof title,
                                                      "activation CKA to the reference per encoder layer", rep, n_rep),
                                   .xlabel = "encoder layer (output)", .ylabel = "linear CKA",
                                   .n_xtics = nv + nt, .xtic_at = at, .xtic_labels = lab, .ymin = 0,
                                   .ymax = 1.05 };
        plot_sb_draw(c, &b, &fig, "cka");
        free(at);
        free(label);
        free(lab);
    }
    plot_sb_free(&b);
}

void plot_figs_layers(struct plot_ctx *c)
{
    const struct plot_run **rep = xcalloc(c->set->n_runs ? c->set->n_runs : 1, sizeof(*rep));
    size_t n_rep = representatives(c, rep);
    struct sites s;

    sites_build(&s, rep, n_rep);
    fig_spectrum(c, rep, n_rep);
    fig_per_site(c, &s, rep, n_rep, M_RANK);
    fig_per_site(c, &s, rep, n_rep, M_EFFECTIVE);
    fig_cka(c, rep, n_rep);
    fig_per_site(c, &s, rep, n_rep, M_COSINE);
    fig_per_site(c, &s, rep, n_rep, M_OVERLAP_OUT);
    sites_free(&s);
    free(rep);
}
