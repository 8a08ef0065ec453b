/*
 * config_render.c: a run plan rendered back as INI text (run_plan_to_ini,
 * exp_targets_spec).
 */
#include "experiments/config.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>

#include "core/alloc.h"
#include "core/status.h"
#include "datasets/dataset.h"
#include "experiments/config_impl.h"

/* ------------------------------------------------------------------------ */
/* rendering                                                                 */

struct sbuf {
    char *s;
    size_t len, cap;
};

static void sb_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    RL_ASSERT(n >= 0);
    if (b->len + (size_t)n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;

        while (b->len + (size_t)n + 1 > cap)
            cap *= 2;
        b->s = xrealloc_array(b->s, cap, 1);
        b->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* key = value, wrapped onto indented continuation lines at single spaces
 * (a continuation line may not hold '=': the first cut comes after the last
 * one; libinih reads lines of at most INI_MAX_LINE - 3 characters) */
static void sb_kv(struct sbuf *b, const char *key, const char *value)
{
    size_t col = strlen(key) + 3;
    const char *p = value, *last_eq = strrchr(value, '=');

    sb_printf(b, "%s =", key);
    if (!*p) {
        sb_printf(b, "\n");
        return;
    }
    sb_printf(b, " ");
    while (*p) {
        /* the longest piece that fits, ending before a single space */
        size_t len = strlen(p), cut = len;
        size_t min_cut = last_eq && last_eq >= p ? (size_t)(last_eq - p) + 1 : 1;

        /* a value with '=' stays on one line while that line can be read
         * (as run files written before wrapping it stored it) */
        if (col + len > WRAP_COL && (!last_eq || col + len > INI_MAX_LINE - 3)) {
            size_t best = 0;

            for (size_t i = min_cut; i + 1 < len; i++)
                if (p[i] == ' ' && p[i - 1] != ' ' && p[i + 1] != ' ' && p[i + 1] != ';' &&
                    p[i + 1] != '#' && (col + i <= WRAP_COL || !best))
                    best = i;
            if (best)
                cut = best;
        }
        sb_printf(b, "%.*s\n", (int)cut, p);
        p += cut;
        if (*p == ' ') {
            p++;
            sb_printf(b, "    ");
            col = 4;
        }
    }
}

static void sb_kv_fmt(struct sbuf *b, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void sb_kv_fmt(struct sbuf *b, const char *key, const char *fmt, ...)
{
    char v[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(v, sizeof(v), fmt, ap);
    va_end(ap);
    sb_kv(b, key, v);
}

static void sb_kv_d(struct sbuf *b, const char *key, double v)
{
    char f[40];

    cfg_fmt_double(f, sizeof(f), v);
    sb_kv(b, key, f);
}

/* shortest text that reads back as the same float */
static void sb_kv_f(struct sbuf *b, const char *key, float v)
{
    char f[40];

    for (int prec = 1; prec <= 9; prec++) {
        snprintf(f, sizeof(f), "%.*g", prec, (double)v);
        if ((float)strtod(f, NULL) == v)
            break;
    }
    sb_kv(b, key, f);
}

static void sb_kv_u(struct sbuf *b, const char *key, size_t v)
{
    sb_kv_fmt(b, key, "%zu", v);
}

static void sb_kv_u64(struct sbuf *b, const char *key, uint64_t v)
{
    sb_kv_fmt(b, key, "%llu", (unsigned long long)v);
}

static const char *towers_text(unsigned t)
{
    return t == (EXP_TOWER_VISION | EXP_TOWER_TEXT) ? "vision, text"
         : t == EXP_TOWER_VISION ? "vision" : "text";
}

static void layers_text(const struct exp_targets *t, char *buf, size_t cap)
{
    if (t->layer_lo == 0 && t->layer_hi == SIZE_MAX)
        snprintf(buf, cap, "*");
    else if (t->layer_lo == t->layer_hi)
        snprintf(buf, cap, "%zu", t->layer_lo);
    else
        snprintf(buf, cap, "%zu-%zu", t->layer_lo, t->layer_hi);
}

static void modules_text(unsigned mods, const char *sep, char *buf, size_t cap)
{
    size_t off = 0;

    buf[0] = '\0';
    for (int i = 0; i < EXP_N_MODULES && off < cap; i++) {
        int n;

        if (!(mods & (1u << i)))
            continue;
        n = snprintf(buf + off, cap - off, "%s%s", off ? sep : "", cfg_w_module[i]);
        if (n < 0)
            break;
        off += (size_t)n;
    }
}

int exp_targets_spec(const struct exp_targets *t, char *buf, size_t size)
{
    char layers[48], mods[128];
    const char *names[2] = { "vision", "text" };
    size_t off = 0;

    layers_text(t, layers, sizeof(layers));
    modules_text(t->modules, ",", mods, sizeof(mods));
    if (size)
        buf[0] = '\0';
    for (int i = 0; i < 2; i++) {
        int n;

        if (!(t->towers & (1u << i)))
            continue;
        n = snprintf(buf + off, size - off, "%s%s:%s:%s", off ? ";" : "", names[i], layers, mods);
        if (n < 0 || (size_t)n >= size - off)
            return rl_error_set(RL_ERR_ARG, "targets spec longer than %zu characters", size);
        off += (size_t)n;
    }
    return RL_OK;
}

void exp_val_text(const struct exp_val *v, char *buf, size_t size)
{
    switch (v->kind) {
    case EXP_VAL_PER_CLASS:
        snprintf(buf, size, "%zu", v->per_class);
        break;
    case EXP_VAL_FRACTION:
        cfg_fmt_double(buf, size, v->fraction);
        break;
    case EXP_VAL_SPEC:
        snprintf(buf, size, "%s", v->spec ? v->spec : "");
        break;
    default:
        snprintf(buf, size, "none");
    }
}

char *run_plan_to_ini(const struct run_plan *p)
{
    struct sbuf b = { 0 };
    char tmp[256];
    bool has_rank = p->adapter.r && adapter_ops_find(p->method) &&
                    (adapter_ops_find(p->method)->flags & ADAPTER_F_RANK);

    sb_printf(&b, "; run %s of experiment %s, every setting resolved\n", p->id, p->experiment);
    sb_printf(&b, "\n[experiment]\n");
    sb_kv(&b, "name", p->experiment);
    sb_kv(&b, "output", p->output);
    sb_kv(&b, "description", p->description);

    sb_printf(&b, "\n[model]\n");
    sb_kv(&b, "name", p->model.name);
    sb_kv(&b, "pretrain_dir", p->model.pretrain_dir);
    sb_kv(&b, "pretrain_data", p->model.pretrain_data);
    sb_kv_u(&b, "pretrain_corpus", p->model.pretrain_corpus);
    sb_kv_u(&b, "pretrain_steps", p->model.pretrain_steps);
    sb_kv_u(&b, "pretrain_batch", p->model.pretrain_batch);
    sb_kv_d(&b, "pretrain_lr", p->model.pretrain_lr);
    sb_kv_d(&b, "pretrain_weight_decay", p->model.pretrain_weight_decay);
    sb_kv_u(&b, "pretrain_warmup", p->model.pretrain_warmup);
    sb_kv_u64(&b, "pretrain_seed", p->model.pretrain_seed);
    /* written only with a head: files of prompt-classifier runs as before */
    if (p->model.head != EXP_HEAD_PROMPT)
        sb_kv(&b, "head", cfg_w_head[p->model.head]);
    if (p->model.head != EXP_HEAD_PROMPT || p->model.features)
        sb_kv(&b, "features", cfg_w_features[p->model.features]);

    sb_printf(&b, "\n[data]\n");
    sb_kv(&b, "dataset", p->dataset);
    sb_kv(&b, "eval", p->eval);
    sb_kv_u(&b, "image_size", p->image_size);
    sb_kv(&b, "prompt", p->prompt);
    sb_kv(&b, "templates", cfg_w_templates[p->templates]);
    /* written only when not the default: files written before it read back */
    if (p->classnames && strcmp(p->classnames, "dataset"))
        sb_kv(&b, "classnames", p->classnames);
    sb_kv(&b, "augment", cfg_w_augment[p->augment]);
    if (p->shots)
        sb_kv_u(&b, "shots", p->shots);
    else
        sb_kv_d(&b, "fractions", p->fraction);
    sb_kv_u64(&b, "sample_seed", p->sample_seed);
    sb_kv_u(&b, "eval_limit", p->eval_limit);
    /* written only when set: files of runs without a split stay as they were */
    if (p->val.kind == EXP_VAL_SPEC) {
        sb_kv(&b, "val", p->val.spec);
    } else if (p->val.kind != EXP_VAL_NONE) {
        exp_val_text(&p->val, tmp, sizeof(tmp));
        sb_kv(&b, "val", tmp);
    }
    /* a decoder's keys: written for commonsense data or when set, so files
     * of image runs stay as they were */
    if (run_plan_is_lm(p) || p->lm.loss != EXP_LM_LOSS_RESPONSE || p->lm.cutoff != 256 ||
        p->lm.max_new_tokens != 32) {
        sb_kv(&b, "lm_loss", cfg_w_lm_loss[p->lm.loss]);
        sb_kv_u(&b, "cutoff", p->lm.cutoff);
        sb_kv_u(&b, "max_new_tokens", p->lm.max_new_tokens);
    }

    sb_printf(&b, "\n[method]\n");
    sb_kv(&b, "methods", p->method);
    if (has_rank && p->budget)
        sb_kv_u(&b, "budget", p->budget);
    else if (has_rank)
        sb_kv_u(&b, "rank", p->adapter.r);
    sb_kv_f(&b, "alpha", p->adapter.alpha);
    sb_kv_f(&b, "dropout", p->adapter.dropout);
    sb_kv(&b, "rslora", p->adapter.rslora ? "true" : "false");
    sb_kv_f(&b, "vera_d_init", p->adapter.vera_d_init);
    sb_kv(&b, "profile", p->profile);
    sb_kv(&b, "basis", cfg_w_basis[p->adapter.basis]);
    if (!strcmp(p->method, "nola"))
        sb_kv_u(&b, "nola_bases", p->adapter.nola_bases);
    sb_kv(&b, "towers", towers_text(p->targets.towers));
    layers_text(&p->targets, tmp, sizeof(tmp));
    sb_kv(&b, "layers", tmp);
    modules_text(p->targets.modules, ", ", tmp, sizeof(tmp));
    sb_kv(&b, "modules", tmp);
    sb_kv_u64(&b, "init_seed", p->adapter.seed);

    sb_printf(&b, "\n[train]\n");
    if (p->train.steps)
        sb_kv_u(&b, "steps", p->train.steps);
    else
        sb_kv_u(&b, "epochs", p->train.epochs);
    sb_kv_u(&b, "min_epoch_steps", p->train.min_epoch_steps);
    /* the keys below are written only when not their default, so files of
     * runs written before they existed read back as they were */
    if (p->train.epoch_repeat)
        sb_kv(&b, "min_epoch_rule", cfg_w_epoch_rule[1]);
    sb_kv_u(&b, "batch", p->train.batch);
    sb_kv_u(&b, "accumulate", p->train.accumulate);
    sb_kv_d(&b, "lr", p->train.lr);
    /* with a head, or when set: prompt-classifier files as before */
    if (p->model.head != EXP_HEAD_PROMPT || p->train.lr_head != 1e-3)
        sb_kv_d(&b, "lr_head", p->train.lr_head);
    sb_kv_d(&b, "weight_decay", p->train.weight_decay);
    sb_kv_d(&b, "beta1", p->train.beta1);
    sb_kv_d(&b, "beta2", p->train.beta2);
    sb_kv_d(&b, "eps", p->train.eps);
    sb_kv_u(&b, "warmup", p->train.warmup);
    sb_kv_d(&b, "lr_min", p->train.lr_min);
    sb_kv_d(&b, "clip", p->train.clip);
    if (p->train.loss != EXP_LOSS_PROMPTS)
        sb_kv(&b, "loss", cfg_w_loss[p->train.loss]);
    if (p->train.logit_scale_raw)
        sb_kv(&b, "logit_scale", cfg_w_logit_scale[1]);
    sb_kv_u(&b, "eval_every", p->train.eval_every);
    sb_kv_u(&b, "checkpoint_every", p->train.checkpoint_every);
    /* written only when set: it changes memory and time, never the results,
     * and files of runs that store their activations stay as they were */
    if (p->train.recompute)
        sb_kv(&b, "recompute", "true");
    /* written only when not fp32 (bf16 changes the results): fp32 files as before */
    if (p->train.precision)
        sb_kv(&b, "precision", cfg_w_precision[p->train.precision]);
    sb_kv_u64(&b, "seed", p->train.seed);
    /* written only when set: files of runs started afresh stay as they were */
    if (p->init_adapter)
        sb_kv(&b, "init_adapter", p->init_adapter);

    sb_printf(&b, "\n[sweep]\n");
    sb_kv_u64(&b, "seeds", p->seed);
    sb_kv_u(&b, "jobs", 1);

    sb_printf(&b, "\n[run]\n");
    sb_kv(&b, "id", p->id);
    if (has_rank && p->budget)
        sb_kv_u(&b, "rank", p->adapter.r);
    if (p->n_trainable)
        sb_kv_u(&b, "trainable", p->n_trainable);
    return b.s;
}
