/*
 * adapter.c: the method registry, configuration profiles, the life cycle of
 * methods and adapters, dispatch wrappers (with the branch dropout, which is
 * the same for every method), closed-form counting and budget matching.
 *
 * Nothing here knows a method's insides; each method file ends with its
 * `const struct adapter_ops`.
 */
#include "methods/adapter.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/status.h"
#include "methods/adapter_impl.h"
#include "formats/safetensors.h"

/* ------------------------------------------------------------------------ */
/* registry                                                                  */

static const struct adapter_ops *const adapter_list[] = {
    &lora_ops, &vera_ops, &randlora_ops, &nola_ops, &full_ops, &none_ops, NULL,
};

const struct adapter_ops *const *adapter_registry(void)
{
    return adapter_list;
}

size_t adapter_registry_size(void)
{
    return sizeof(adapter_list) / sizeof(adapter_list[0]) - 1;
}

const struct adapter_ops *adapter_ops_find(const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; adapter_list[i]; i++)
        if (!strcmp(adapter_list[i]->name, name))
            return adapter_list[i];
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* configuration                                                             */

void adapter_cfg_defaults(struct adapter_cfg *cfg, const char *method, size_t r)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->method = method;
    cfg->r = r;
    cfg->alpha = 0.0f;              /* method default */
    cfg->dropout = 0.0f;
    cfg->rslora = false;
    cfg->vera_d_init = 0.1f;
    cfg->basis = ADAPTER_BASIS_DENSE;
    cfg->seed = 0;
    adapter_cfg_profile(cfg, "peft");
}

int adapter_cfg_profile(struct adapter_cfg *cfg, const char *profile)
{
    if (profile && (!strcmp(profile, "peft") || !strcmp(profile, "peft_fork"))) {
        /* peft_fork: the RandLoRA authors' peft fork (their commonsense
         * scripts): peft's rules with alpha / (r sqrt(n)) */
        cfg->n_rule = ADAPTER_N_CEIL;
        cfg->scaling = !strcmp(profile, "peft") ? ADAPTER_SCALE_ALPHA_R
                                                : ADAPTER_SCALE_ALPHA_R_SQRT_N;
        cfg->lambda_init = ADAPTER_LAMBDA_ZERO;
        cfg->gamma_init = ADAPTER_GAMMA_INV_MAX_N_D;
        cfg->lora_rule = ADAPTER_LORA_PEFT;
        cfg->nola_bases = 256;          /* peft has no NoLA: this harness's default */
        return RL_OK;
    }
    if (profile && (!strcmp(profile, "paper") || !strcmp(profile, "paper_2024"))) {
        cfg->n_rule = ADAPTER_N_FLOOR_PLUS_ONE;
        cfg->scaling = !strcmp(profile, "paper") ? ADAPTER_SCALE_ONE_OVER_R
                                                 : ADAPTER_SCALE_TEN_OVER_R;
        cfg->lambda_init = ADAPTER_LAMBDA_INV_MAX_N_R;
        cfg->gamma_init = ADAPTER_GAMMA_ZERO;
        cfg->lora_rule = ADAPTER_LORA_PAPER;
        cfg->nola_bases = 1024;         /* the authors' finetune.py (num_basis) */
        return RL_OK;
    }
    return rl_error_set(RL_ERR_ARG, "unknown adapter profile '%s' (expected peft, peft_fork, paper or "
                        "paper_2024)", profile ? profile : "(null)");
}

float adapter_alpha(const struct adapter_cfg *cfg)
{
    if (!cfg->method)
        return 0.0f;
    if (!strcmp(cfg->method, "lora"))
        return lora_scaling(cfg) * (cfg->rslora ? sqrtf((float)cfg->r) : (float)cfg->r);
    if (!strcmp(cfg->method, "randlora"))
        return cfg->alpha > 0.0f ? cfg->alpha : 20.0f * (float)cfg->r;
    if (!strcmp(cfg->method, "nola"))
        return nola_scaling(cfg) * (float)cfg->r;
    return 0.0f;
}

int adapter_basis_parse(const char *name, enum adapter_basis *out)
{
    static const char *const names[] = { "dense", "sparse", "very_sparse" };

    for (int i = 0; i < 3; i++)
        if (name && !strcmp(name, names[i])) {
            *out = (enum adapter_basis)i;
            return RL_OK;
        }
    return rl_error_set(RL_ERR_ARG, "unknown basis '%s' (expected dense, sparse or very_sparse)",
                        name ? name : "(null)");
}

/* ------------------------------------------------------------------------ */
/* validation and counting                                                   */

static int check_cfg(const struct adapter_ops *ops, const struct adapter_cfg *cfg)
{
    if ((ops->flags & ADAPTER_F_RANK) && cfg->r == 0)
        return rl_error_set(RL_ERR_ARG, "%s: rank must be at least 1", ops->name);
    if ((ops->flags & ADAPTER_F_RANK) && cfg->r > ((size_t)1 << 30))
        return rl_error_set(RL_ERR_ARG, "%s: rank %zu is absurdly large", ops->name, cfg->r);
    if (!(cfg->dropout >= 0.0f && cfg->dropout < 1.0f))
        return rl_error_set(RL_ERR_ARG, "%s: dropout %g is outside [0, 1)", ops->name,
                            (double)cfg->dropout);
    if (!isfinite(cfg->alpha) || !isfinite(cfg->vera_d_init))
        return rl_error_set(RL_ERR_ARG, "%s: alpha and d_initial must be finite", ops->name);
    if ((unsigned)cfg->basis > ADAPTER_BASIS_VERY_SPARSE ||
        (unsigned)cfg->n_rule > ADAPTER_N_FLOOR_PLUS_ONE ||
        (unsigned)cfg->scaling > ADAPTER_SCALE_TEN_OVER_R ||
        (unsigned)cfg->lora_rule > ADAPTER_LORA_PAPER ||
        (unsigned)cfg->lambda_init > ADAPTER_LAMBDA_INV_MAX_N_R ||
        (unsigned)cfg->gamma_init > ADAPTER_GAMMA_ZERO)
        return rl_error_set(RL_ERR_ARG, "%s: a RandLoRA setting is out of range", ops->name);
    if ((ops->flags & ADAPTER_F_BUDGET_BASES) &&
        (cfg->nola_bases == 0 || cfg->nola_bases > ((size_t)1 << 24)))
        return rl_error_set(RL_ERR_ARG, "%s: number of bases %zu is outside 1 .. 2^24",
                            ops->name, cfg->nola_bases);
    return RL_OK;
}

int adapter_check(const struct adapter_ops *ops, const struct adapter_cfg *cfg,
                  size_t d_out, size_t d_in)
{
    int rc = check_cfg(ops, cfg);
    size_t n;

    if (rc)
        return rc;
    if (d_out == 0 || d_in == 0)
        return rl_error_set(RL_ERR_ARG, "%s: layer %zux%zu has a zero dimension", ops->name,
                            d_out, d_in);
    if (!size_mul_ok(d_out, d_in, &n) || n > ((size_t)1 << 40))
        return rl_error_set(RL_ERR_ARG, "%s: layer %zux%zu is too large", ops->name, d_out, d_in);
    if ((ops->flags & ADAPTER_F_RANK_LE_DIMS) && cfg->r > (d_out < d_in ? d_out : d_in))
        return rl_error_set(RL_ERR_ARG, "%s: rank %zu exceeds min(%zu, %zu) of layer %zux%zu",
                            ops->name, cfg->r, d_out, d_in, d_out, d_in);
    return RL_OK;
}

size_t adapter_count_layer(const struct adapter_ops *ops, const struct adapter_cfg *cfg,
                           size_t d_out, size_t d_in)
{
    return ops->n_trainable(cfg, d_out, d_in);
}

size_t adapter_count(const struct adapter_ops *ops, const struct adapter_cfg *cfg,
                     const struct adapter_shape *shapes, size_t n_shapes)
{
    size_t total = 0;

    for (size_t i = 0; i < n_shapes; i++)
        total += ops->n_trainable(cfg, shapes[i].d_out, shapes[i].d_in);
    return total;
}

size_t adapter_count_shared(const struct adapter_ops *ops, const struct adapter_cfg *cfg,
                            const struct adapter_shape *shapes, size_t n_shapes)
{
    size_t max_out = 0, max_in = 0;

    if (!ops->n_shared || n_shapes == 0)
        return 0;
    for (size_t i = 0; i < n_shapes; i++) {
        if (shapes[i].d_out > max_out)
            max_out = shapes[i].d_out;
        if (shapes[i].d_in > max_in)
            max_in = shapes[i].d_in;
    }
    return ops->n_shared(cfg, max_out, max_in);
}

size_t adapter_n_trainable(const struct adapter_method *m, size_t d_out, size_t d_in)
{
    return m->ops->n_trainable(&m->cfg, d_out, d_in);
}

/* |a - b| */
static size_t absdiff(size_t a, size_t b)
{
    return a > b ? a - b : b - a;
}

/* the value of *knob in [1, hi] whose count is closest to the budget (ties:
 * the smaller), for a count non-decreasing in it: the first value with
 * count >= budget by bisection, then the closer of it and its predecessor */
static void match_monotone(const struct adapter_ops *ops, struct adapter_cfg *c, size_t *knob,
                           size_t hi, const struct adapter_shape *shapes, size_t n_shapes,
                           size_t budget, size_t *best, size_t *best_n)
{
    size_t lo = 1;

    *knob = hi;
    if (adapter_count(ops, c, shapes, n_shapes) < budget) {
        lo = hi;
    } else {
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;

            *knob = mid;
            if (adapter_count(ops, c, shapes, n_shapes) >= budget)
                hi = mid;
            else
                lo = mid + 1;
        }
    }
    *best = lo;
    *knob = lo;
    *best_n = adapter_count(ops, c, shapes, n_shapes);
    if (lo > 1) {
        size_t n_prev;

        *knob = lo - 1;
        n_prev = adapter_count(ops, c, shapes, n_shapes);
        if (absdiff(n_prev, budget) <= absdiff(*best_n, budget)) {
            *best = lo - 1;
            *best_n = n_prev;
        }
    }
    *knob = *best;
}

int adapter_match_budget_cfg(const struct adapter_ops *ops, const struct adapter_cfg *cfg,
                             const struct adapter_shape *shapes, size_t n_shapes,
                             size_t budget, struct adapter_cfg *out, size_t *count_out)
{
    struct adapter_cfg c = *cfg;
    size_t r_hi = (size_t)1 << 30, best_r = 0, best_n = 0;

    if (!(ops->flags & ADAPTER_F_RANK))
        return rl_error_set(RL_ERR_ARG, "%s has no rank to match a budget with", ops->name);
    if (n_shapes == 0)
        return rl_error_set(RL_ERR_ARG, "budget matching needs at least one layer shape");
    if (ops->flags & ADAPTER_F_BUDGET_BASES) {
        /* NoLA: the rank stays, the number of bases k moves */
        size_t k;

        if (c.r == 0)
            c.r = 1;                    /* the paper's NoLA rank */
        c.nola_bases = 1;
        for (size_t i = 0; i < n_shapes; i++) {
            int rc = adapter_check(ops, &c, shapes[i].d_out, shapes[i].d_in);

            if (rc)
                return rc;
        }
        match_monotone(ops, &c, &c.nola_bases, (size_t)1 << 24, shapes, n_shapes, budget, &k,
                       count_out);
        *out = c;
        return RL_OK;
    }
    /* the largest rank every layer accepts */
    for (size_t i = 0; i < n_shapes; i++) {
        size_t d = shapes[i].d_out < shapes[i].d_in ? shapes[i].d_out : shapes[i].d_in;

        if ((ops->flags & ADAPTER_F_RANK_LE_DIMS) && d < r_hi)
            r_hi = d;
    }
    c.r = 1;
    for (size_t i = 0; i < n_shapes; i++) {
        int rc = adapter_check(ops, &c, shapes[i].d_out, shapes[i].d_in);

        if (rc)
            return rc;
    }
    if (ops->flags & ADAPTER_F_COUNT_MONOTONE) {
        match_monotone(ops, &c, &c.r, r_hi, shapes, n_shapes, budget, &best_r, &best_n);
    } else {
        /* not monotone (RandLoRA: fewer bases as r grows): scan every rank */
        if (r_hi > ((size_t)1 << 20))
            return rl_error_set(RL_ERR_ARG, "%s: rank range too large to scan", ops->name);
        for (size_t r = 1; r <= r_hi; r++) {
            size_t n;

            c.r = r;
            n = adapter_count(ops, &c, shapes, n_shapes);
            if (best_r == 0 || absdiff(n, budget) < absdiff(best_n, budget)) {
                best_r = r;
                best_n = n;
            }
        }
    }
    c.r = best_r;
    *out = c;
    *count_out = best_n;
    return RL_OK;
}

int adapter_match_budget(const struct adapter_ops *ops, const struct adapter_cfg *cfg,
                         const struct adapter_shape *shapes, size_t n_shapes, size_t budget,
                         size_t *r_out, size_t *count_out)
{
    struct adapter_cfg c;
    int rc = adapter_match_budget_cfg(ops, cfg, shapes, n_shapes, budget, &c, count_out);

    if (rc == RL_OK)
        *r_out = c.r;
    return rc;
}

/* ------------------------------------------------------------------------ */
/* life cycle                                                                */

void adapter_normalize_std(float *x, size_t n)
{
    double mean = 0.0, ss = 0.0, sd;

    if (n < 2)
        return;
    for (size_t i = 0; i < n; i++)
        mean += x[i];
    mean /= (double)n;
    for (size_t i = 0; i < n; i++)
        ss += ((double)x[i] - mean) * ((double)x[i] - mean);
    sd = sqrt(ss / (double)(n - 1));
    if (sd == 0.0)
        return;
    for (size_t i = 0; i < n; i++)
        x[i] = (float)((double)x[i] / sd);
}

int adapter_method_init(struct adapter_method *m, const struct adapter_cfg *cfg,
                        size_t max_out, size_t max_in, size_t max_rows)
{
    const struct adapter_ops *ops = adapter_ops_find(cfg->method);
    int rc;

    memset(m, 0, sizeof(*m));
    if (!ops)
        return rl_error_set(RL_ERR_ARG, "unknown adapter method '%s' (expected lora, vera, "
                            "randlora, full or none)", cfg->method ? cfg->method : "(null)");
    rc = check_cfg(ops, cfg);
    if (rc)
        return rc;
    if (max_out == 0 || max_in == 0 || max_rows == 0)
        return rl_error_set(RL_ERR_ARG, "%s: zero maximum size (out %zu, in %zu, rows %zu)",
                            ops->name, max_out, max_in, max_rows);
    m->ops = ops;
    m->cfg = *cfg;
    m->cfg.method = ops->name;
    m->max_out = max_out;
    m->max_in = max_in;
    m->max_rows = max_rows;
    rng_init(&m->rng, cfg->seed);
    if ((ops->flags & ADAPTER_F_DROPOUT) && cfg->dropout > 0.0f)
        m->drop_scratch = xmalloc_array(max_rows * max_in, sizeof(float));
    if (ops->method_init) {
        rc = ops->method_init(m);
        if (rc) {
            adapter_method_free(m);
            return rc;
        }
    }
    return RL_OK;
}

void adapter_method_free(struct adapter_method *m)
{
    if (m->ops && m->ops->method_free)
        m->ops->method_free(m);
    free(m->drop_scratch);
    memset(m, 0, sizeof(*m));
}

int adapter_init(struct adapter *a, struct adapter_method *m, size_t d_out, size_t d_in,
                 float *params, float *grads)
{
    return adapter_init_layer(a, m, d_out, d_in, params, grads, ADAPTER_LAYER_LINEAR);
}

int adapter_init_layer(struct adapter *a, struct adapter_method *m, size_t d_out, size_t d_in,
                       float *params, float *grads, unsigned layer)
{
    int rc;

    memset(a, 0, sizeof(*a));
    a->layer = layer;
    RL_ASSERT(m->ops != NULL);
    rc = adapter_check(m->ops, &m->cfg, d_out, d_in);
    if (rc)
        return rc;
    if (d_out > m->max_out || d_in > m->max_in)
        return rl_error_set(RL_ERR_ARG, "%s: layer %zux%zu is larger than the method's "
                            "maximum %zux%zu", m->ops->name, d_out, d_in, m->max_out, m->max_in);
    a->ops = m->ops;
    a->method = m;
    a->d_out = d_out;
    a->d_in = d_in;
    a->index = m->n_layers;
    a->n_params = m->ops->n_trainable(&m->cfg, d_out, d_in);
    a->training = true;
    /* stream 0 of the root is the method's shared state; layer i gets i + 1 */
    rng_split(&a->rng, &m->rng, (uint64_t)a->index + 1);
    if (params) {
        a->params = params;
        a->grads = grads;
    } else {
        a->owns_params = true;
        a->params = xcalloc(a->n_params ? a->n_params : 1, sizeof(float));
        a->grads = xcalloc(a->n_params ? a->n_params : 1, sizeof(float));
    }
    if ((m->ops->flags & ADAPTER_F_DROPOUT) && m->cfg.dropout > 0.0f) {
        a->drop_x = xmalloc_array(m->max_rows * d_in, sizeof(float));
        a->drop_mask = xmalloc_array(m->max_rows * d_in, sizeof(uint8_t));
    }
    if (m->ops->init) {
        rc = m->ops->init(a);
        if (rc) {
            adapter_free(a);
            return rc;
        }
    }
    m->n_layers++;
    return RL_OK;
}

void adapter_free(struct adapter *a)
{
    if (a->ops && a->ops->free)
        a->ops->free(a);
    if (a->owns_params) {
        free(a->params);
        free(a->grads);
    }
    free(a->drop_x);
    free(a->drop_mask);
    memset(a, 0, sizeof(*a));
}

void adapter_set_training(struct adapter *a, bool training)
{
    a->training = training;
}

/* ------------------------------------------------------------------------ */
/* dispatch                                                                  */

static bool dropout_active(const struct adapter *a)
{
    return a->training && a->drop_x != NULL;
}

bool adapter_dropout_active(const struct adapter *a)
{
    return dropout_active(a);
}

void adapter_forward(struct adapter *a, const float *x, float *y, size_t N)
{
    RL_ASSERT(N <= a->method->max_rows);
    if (dropout_active(a)) {
        /* inverted dropout on the branch input only: x~ = x * m / (1 - p) */
        float p = a->method->cfg.dropout, keep = 1.0f / (1.0f - p);
        size_t n = N * a->d_in;

        for (size_t i = 0; i < n; i++) {
            a->drop_mask[i] = rng_uniform(&a->rng) >= p;
            a->drop_x[i] = a->drop_mask[i] ? x[i] * keep : 0.0f;
        }
        a->drop_rows = N;
        x = a->drop_x;
    }
    a->ops->forward(a, x, y, N);
}

void adapter_backward(struct adapter *a, const float *x, const float *dy, float *dx, size_t N)
{
    RL_ASSERT(N <= a->method->max_rows);
    if (dropout_active(a)) {
        /* dx += (dx~) * m / (1 - p), dx~ = dy dW computed into scratch */
        float keep = 1.0f / (1.0f - a->method->cfg.dropout);
        float *s = dx ? a->method->drop_scratch : NULL;
        size_t n = N * a->d_in;

        RL_ASSERT(a->drop_rows == N);
        if (s)
            memset(s, 0, n * sizeof(*s));
        a->ops->backward(a, a->drop_x, dy, s, N);
        if (dx)
            for (size_t i = 0; i < n; i++)
                if (a->drop_mask[i])
                    dx[i] += s[i] * keep;
        return;
    }
    a->ops->backward(a, x, dy, dx, N);
}

void adapter_delta_weight(struct adapter *a, float *dw)
{
    memset(dw, 0, a->d_out * a->d_in * sizeof(*dw));
    a->ops->add_delta(a, dw, 1.0f);
}

void adapter_merge(struct adapter *a, float *w)
{
    a->ops->add_delta(a, w, 1.0f);
}

void adapter_unmerge(struct adapter *a, float *w)
{
    a->ops->add_delta(a, w, -1.0f);
}

/* add_delta with the parameters `old` in place of a->params (the methods
 * read their parameters through a->params only) */
void adapter_unmerge_old(struct adapter *a, float *w, const float *old)
{
    float *cur = a->params;

    a->params = (float *)old;   /* read only: add_delta does not write params */
    a->ops->add_delta(a, w, -1.0f);
    a->params = cur;
}

void adapter_remerge(struct adapter *a, float *w, const float *old)
{
    if (a->ops->add_delta_change) {
        a->ops->add_delta_change(a, w, old);
        return;
    }
    adapter_unmerge_old(a, w, old);
    a->ops->add_delta(a, w, 1.0f);
}

void adapter_project_grad(struct adapter *a, const float *gw)
{
    if (a->grads)
        a->ops->project_grad(a, gw);
}

void adapter_project_rows(struct adapter *a, const float *x, const float *dy, size_t N)
{
    RL_ASSERT(a->ops->project_rows != NULL);
    if (a->grads)
        a->ops->project_rows(a, x, dy, N);
}

void adapter_path_flops(const struct adapter *a, size_t N, double *factored, double *merged)
{
    a->ops->flops(a, N, factored, merged);
}

double adapter_merged_step_flops(const struct adapter *a, size_t N, size_t micro, bool *rows)
{
    const double k = micro ? (double)micro : 1.0;
    double factored, me, me0, merge = 0.0, rn = 0.0, unmerge, gw, rw;
    bool use_rows;

    /* ops->flops: merged = one add_delta + the weight gradient of N rows +
     * one projection, so at 0 rows the add_delta and the projection */
    a->ops->flops(a, N, &factored, &me);
    a->ops->flops(a, 0, &factored, &me0);
    if (a->ops->rows_flops)
        a->ops->rows_flops(a, N, &merge, &rn);
    /* the unmerge each step, unless the weight stays merged and re-merges */
    unmerge = a->ops->add_delta_change ? 0.0 : merge;
    gw = me0 + unmerge + k * (me - me0);
    rw = merge + unmerge + k * rn;
    use_rows = a->ops->project_rows && rw < gw;
    if (rows)
        *rows = use_rows;
    return use_rows ? rw : gw;
}

enum adapter_path adapter_choose_path(const struct adapter *a, size_t N, size_t micro)
{
    const double k = micro ? (double)micro : 1.0;
    double f, unused, merged;

    if (dropout_active(a))
        return ADAPTER_PATH_FACTORED;
    a->ops->flops(a, N, &f, &unused);
    f *= k;
    merged = adapter_merged_step_flops(a, N, micro, NULL);
    if (a->method->bf16_products && (a->ops->flags & ADAPTER_F_BF16_BRANCH)) {
        /* bf16 (adapter.h): the factored branch runs bf16 products; the
         * merged site runs its frozen product twice (the second bf16 term
         * of W + dW) in the forward and the input gradient */
        const double rate = gemm_bf16_rate_over_fp32();

        f /= rate;
        merged += k * 4.0 * (double)N * (double)a->d_out * (double)a->d_in / rate;
    }
    return merged < f ? ADAPTER_PATH_MERGED : ADAPTER_PATH_FACTORED;
}

size_t adapter_tensors(struct adapter *a, bool grad, struct adapter_tensor *t, size_t max)
{
    float *base = grad ? a->grads : a->params;

    RL_ASSERT(base != NULL || a->n_params == 0);
    return a->ops->tensors ? a->ops->tensors(a, base, t, max) : 0;
}

size_t adapter_method_tensors(struct adapter_method *m, struct adapter_tensor *t, size_t max)
{
    return m->ops->method_tensors ? m->ops->method_tensors(m, t, max) : 0;
}

/* ------------------------------------------------------------------------ */
/* tensors to and from safetensors files                                     */

#define MAX_VIEWS 8

/* prefix + name in a fresh string */
static char *join_key(const char *prefix, const char *name)
{
    size_t lp = strlen(prefix), ln = strlen(name);
    char *k = xmalloc(lp + ln + 1);

    memcpy(k, prefix, lp);
    memcpy(k + lp, name, ln + 1);
    return k;
}

int adapter_export_views(struct adapter *a, struct st_writer *w, const char *prefix)
{
    struct adapter_tensor t[MAX_VIEWS];
    size_t n = a->ops->tensors ? a->ops->tensors(a, a->params, t, MAX_VIEWS) : 0;

    RL_ASSERT(n <= MAX_VIEWS);
    for (size_t i = 0; i < n; i++) {
        int64_t shape[3] = { (int64_t)t[i].shape[0], (int64_t)t[i].shape[1],
                             (int64_t)t[i].shape[2] };
        char *key = join_key(prefix, t[i].name);
        int rc = st_writer_add(w, key, t[i].data, t[i].ndim, shape, ST_F32);

        free(key);
        if (rc)
            return rc;
    }
    return RL_OK;
}

int adapter_import_views(struct adapter *a, const struct st_file *f, const char *prefix,
                         float *dst)
{
    struct adapter_tensor t[MAX_VIEWS];
    size_t n = a->ops->tensors ? a->ops->tensors(a, dst, t, MAX_VIEWS) : 0;

    RL_ASSERT(n <= MAX_VIEWS);
    for (size_t i = 0; i < n; i++) {
        int64_t shape[3] = { (int64_t)t[i].shape[0], (int64_t)t[i].shape[1],
                             (int64_t)t[i].shape[2] };
        char *key = join_key(prefix, t[i].name);
        int rc = st_load_f32(f, key, t[i].ndim, shape, t[i].data);

        free(key);
        if (rc)
            return rc;
    }
    return RL_OK;
}

int adapter_export_tensors(struct adapter *a, struct st_writer *w, const char *prefix)
{
    if (!a->ops->export_tensors)
        return rl_error_set(RL_ERR_NA, "%s: this method cannot export its tensors", a->ops->name);
    return a->ops->export_tensors(a, w, prefix);
}

int adapter_import_tensors(struct adapter *a, const struct st_file *f, const char *prefix,
                           float *dst)
{
    if (!a->ops->import_tensors)
        return rl_error_set(RL_ERR_NA, "%s: this method cannot import its tensors", a->ops->name);
    return a->ops->import_tensors(a, f, prefix, dst ? dst : a->params);
}
