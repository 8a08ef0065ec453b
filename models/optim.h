/*
 * optim.h: optimizers, the learning-rate schedule and gradient clipping for
 * one flat trainable block.
 *
 * All trainable parameters of a run are one contiguous float array p[n]; the
 * gradients are another, g[n], in the same order; the optimizer state (AdamW's
 * m and v, SGD's momentum buffer) is allocated once, n floats each, by the
 * init function and released by the free function. The step functions never
 * allocate. Every formula, and the order of its float operations, follows
 * PyTorch 1.13's single-tensor (foreach=False) code path, which is what
 * tests/check_optim.c compares against (tests/fixtures/optim_golden.txt,
 * written by tests/ref/make_optim_golden.py).
 *
 * Hyper-parameters are double, like the Python floats PyTorch holds in a
 * param group; the per-step scalars are derived in double and rounded to
 * float once, as PyTorch does, and the elementwise work is float.
 *
 * Usage (the training step of runner.c, sketched):
 *
 *     struct adamw opt;
 *     struct lr_cosine sched = { .lr_max = 1e-3, .lr_min = 1e-5,
 *                                .warmup = 0, .total = n_steps };
 *     struct adamw_cfg cfg = ADAMW_CFG_DEFAULT;
 *     cfg.weight_decay = 0.1;
 *     if (adamw_init(&opt, &cfg, n_trainable) != RL_OK)
 *         return ...;                                  // rl_error_msg() says why
 *     for (size_t step = 0; step < n_steps; step++) {
 *         memset(grad, 0, n_trainable * sizeof(*grad));
 *         ... forward, backward (accumulates into grad) ...
 *         double norm = clip_grad_norm(grad, n_trainable, 1.0);
 *         if (!isfinite(norm))
 *             ... stop the run, recording step and norm (see below) ...
 *         opt.cfg.lr = lr_cosine_at(&sched, step);     // lr for this step
 *         adamw_step(&opt, params, grad);
 *     }
 *     adamw_free(&opt);
 *
 * Non-finite gradients: grad_norm and clip_grad_norm return NaN or +inf when
 * any gradient is NaN or infinite. clip_grad_norm then leaves the gradients
 * as they are (PyTorch would multiply them all by NaN); the caller must not
 * step the optimizer with them but stop the run and record where, as
 * DESIGN.md "Reliability" asks. The optimizers do not check.
 *
 * Threads: the elementwise loops of the step functions and of the clipping
 * scale use OpenMP when n is large (each element is independent, so results
 * do not depend on the thread count). The norm is a serial double sum, so it
 * is bit-identical whatever the thread count.
 */
#ifndef RANDLORA_MODELS_OPTIM_H
#define RANDLORA_MODELS_OPTIM_H

#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------------------ */
/* AdamW, as torch.optim.AdamW (amsgrad off, maximize off). With t the step
 * count after incrementing (1 on the first step), per element:
 *     p  = p * (1 - lr * weight_decay)                 decoupled weight decay
 *     m  = beta1 m + (1 - beta1) g
 *     v  = beta2 v + (1 - beta2) g^2
 *     p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)       */

struct adamw_cfg {
    double lr;            /* learning rate; set it before each step from the schedule */
    double beta1, beta2;  /* moment decay rates, each in [0, 1)                       */
    double eps;           /* added to the bias-corrected sqrt(v), >= 0                */
    double weight_decay;  /* decoupled decay coefficient, >= 0                        */
};

/* PyTorch's AdamW defaults (note weight_decay 1e-2, not Adam's 0). */
#define ADAMW_CFG_DEFAULT \
    ((struct adamw_cfg){ .lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, \
                         .weight_decay = 1e-2 })

struct adamw {
    struct adamw_cfg cfg; /* hyper-parameters; cfg.lr may change between steps */
    size_t n;             /* elements in the trainable block                     */
    uint64_t t;           /* steps taken (0 before the first step)               */
    float *m;             /* first moment (n), owned; zero at init               */
    float *v;             /* second moment (n), owned; zero at init              */
};

/* Check cfg (RL_ERR_ARG with a message naming the bad value; nothing is
 * allocated then) and allocate zeroed state for n elements. RL_OK on success.
 * A checkpoint saves and restores t, m and v. */
int adamw_init(struct adamw *opt, const struct adamw_cfg *cfg, size_t n);

/* One step over p (n) with gradients g (n), using opt->cfg.lr. */
void adamw_step(struct adamw *opt, float *p, const float *g);

/* Release m and v; opt is zeroed. Safe on a zeroed or already freed struct. */
void adamw_free(struct adamw *opt);

/* ------------------------------------------------------------------------ */
/* SGD, as torch.optim.SGD with dampening 0 and nesterov off. Per element:
 *     d   = g + weight_decay * p                       (coupled, L2-style)
 *     buf = d on the first step, else momentum * buf + d   (momentum > 0 only)
 *     p  -= lr * (momentum > 0 ? buf : d)                                     */

struct sgd_cfg {
    double lr;            /* learning rate, >= 0              */
    double momentum;      /* in [0, 1); 0: no momentum buffer */
    double weight_decay;  /* >= 0                             */
};

struct sgd {
    struct sgd_cfg cfg;   /* hyper-parameters; cfg.lr may change between steps */
    size_t n;             /* elements in the trainable block                     */
    uint64_t t;           /* steps taken                                         */
    float *buf;           /* momentum buffer (n), owned; NULL when momentum == 0 */
};

/* Check cfg (RL_ERR_ARG on a bad value) and allocate the momentum buffer
 * when momentum > 0. RL_OK on success. */
int sgd_init(struct sgd *opt, const struct sgd_cfg *cfg, size_t n);

/* One step over p (n) with gradients g (n), using opt->cfg.lr. */
void sgd_step(struct sgd *opt, float *p, const float *g);

/* Release the buffer; opt is zeroed. Safe on a zeroed or already freed struct. */
void sgd_free(struct sgd *opt);

/* ------------------------------------------------------------------------ */
/* Cosine schedule with linear warmup and a floor, stepped per optimizer step
 * (the convention of transformers' get_cosine_schedule_with_warmup, plus a
 * floor lr_min; with lr_min = 0 it is that function exactly). For step s:
 *     s <  warmup:          lr_max * s / warmup        (0 at s = 0)
 *     warmup <= s < total:  lr_min + (lr_max - lr_min) * 0.5 * (1 + cos(pi * q)),
 *                           q = (s - warmup) / max(1, total - warmup)
 *     s >= total:           lr_min
 * So with warmup = 0 the first step uses lr_max, and the last step (s =
 * total - 1) is still slightly above lr_min. RandLoRA's vision runs use
 * warmup 0 and lr_min = lr_max / 100 (reference/methods.md 4.4). */

struct lr_cosine {
    double lr_max;        /* peak learning rate, reached at step = warmup */
    double lr_min;        /* floor the cosine decays to (0 <= lr_min)     */
    size_t warmup;        /* linear warmup steps (0: none)                */
    size_t total;         /* total optimizer steps of the run (>= warmup) */
};

double lr_cosine_at(const struct lr_cosine *s, size_t step);

/* ------------------------------------------------------------------------ */
/* Gradient norm and clipping, as torch.nn.utils.clip_grad_norm_ (L2 norm). */

/* sqrt(sum g^2) over n values, accumulated in double. Non-finite when any
 * value is NaN or infinite. */
double grad_norm(const float *g, size_t n);

/* norm = grad_norm(g, n); when finite and scale = max_norm / (norm + 1e-6)
 * is < 1, g *= scale. Returns the norm before clipping (NaN or inf when the
 * gradient is not finite, g untouched: the caller stops the run). */
double clip_grad_norm(float *g, size_t n, double max_norm);

#endif /* RANDLORA_MODELS_OPTIM_H */
