/*
 * landscape.h: the training loss around three fine-tuned solutions, as the
 * RandLoRA paper draws it (vision_language/loss_barrier.py in the authors'
 * repository, PaulAlbert31/RandLoRA; docs/analysis.md "Loss landscape").
 *
 * Three finished runs of one model: their task vectors are
 *     tau_k = (the run's merged weights) - (the frozen model's) = dW_k
 * on every layer run k adapted (zero elsewhere; every method here, full
 * fine-tuning included, changes the adapted linears' weights only, so the
 * task vectors live on those layers and nothing else is held: one copy of
 * the frozen weights of the adapted layers and three dW per layer). The
 * loss surface is
 *     L(x, y) = loss(theta_0 + a tau_1 + b tau_2 + c tau_3),
 *     a = 1 - 0.5 y - x,   b = y,   c = x - 0.5 y          (loss_barrier.py get_abc)
 * so (x, y) = (0, 0) is run 1, (0.5, 1) run 2, (1, 0) run 3, and a + b + c
 * = 1 - y. The grid is x0 + i step for i while < x1 (numpy's arange), the
 * same for y; the paper's is x in [-1, 1.5), y in [-0.5, 2), step 0.1
 * (25 x 25 points).
 *
 * The loss is the runs' training loss (cross-entropy of exp(logit_scale) *
 * cosine against one prompt per class, data.prompt with each class name, as
 * experiments/train_step.c trains) on a subset of the training set: a
 * fraction (default 1%, at least one item) of the runs' train spec, drawn
 * without replacement from `seed` and sorted, through the CLIP evaluation
 * transform (no augmentation; the paper evaluates with val_preprocess). The
 * subset is the whole train split's, as the paper's (--data-ratio on
 * get_dataset), so it may include items a run held out for validation.
 *
 * The barrier: the loss along the straight line between two solutions,
 * theta_0 + (1 - t) tau_i + t tau_j, t = 0, 1/(n-1), ..., 1, for the pairs
 * (1,2), (1,3), (2,3); its height is max_t [L(t) - ((1 - t) L(0) + t L(1))]
 * (the largest rise over the straight line between the ends; 0 when the
 * path is never above it).
 *
 * The three runs must agree on what the loss needs: the model (directory,
 * after realpath), the train spec, the prompt and the image size
 * (RL_ERR_ARG naming the run and the difference). A run of method `none`
 * has no task vector and is refused (the frozen model is a = b = c = 0).
 *
 *     struct landscape *L;
 *     struct landscape_opts o;
 *     landscape_opts_init(&o);
 *     if ((rc = landscape_open(&L, paths, &o))) ... rl_error_msg() ...
 *     double coef[3] = { 1, 0, 0 }, loss;
 *     rc = landscape_loss(L, coef, &loss);          // run 1's solution
 *     rc = landscape_run_loss(L, 0, &loss);         // the same through its adapters
 *     landscape_close(L);
 */
#ifndef RANDLORA_RESULTS_LANDSCAPE_H
#define RANDLORA_RESULTS_LANDSCAPE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define LANDSCAPE_RUNS      3
#define LANDSCAPE_PAIRS     3
#define LANDSCAPE_MAX_AXIS  1000     /* points per grid axis */
#define LANDSCAPE_MAX_PATH  1001     /* points along a barrier path */

struct landscape_grid {
    double x0, x1, y0, y1, step;     /* [x0, x1) x [y0, y1), step > 0 */
    size_t nx, ny;
};

struct landscape_opts {
    struct landscape_grid grid;
    double data_ratio;               /* (0, 1]; default 0.01                */
    uint64_t seed;                   /* the subset's draw; default 0        */
    size_t batch;                    /* images per forward; default 64      */
    size_t path_points;              /* barrier points per pair, ends
                                        included; 0: none; default 21       */
    FILE *progress;                  /* the progress line; NULL: none       */
};

/* the paper's grid and defaults */
void landscape_opts_init(struct landscape_opts *o);

/* A grid from its bounds: nx = #{i : x0 + i step < x1} (with a tolerance
 * of 1e-9 step, so [-1, 1.5) by 0.1 has 25 points). RL_ERR_ARG for a
 * non-finite bound, step <= 0, an empty axis or more than
 * LANDSCAPE_MAX_AXIS points. */
int  landscape_grid_make(struct landscape_grid *g, double x0, double x1, double y0, double y1,
                         double step);
/* "X0:X1:Y0:Y1:STEP" (the --grid flag) into g; RL_ERR_ARG naming the text */
int  landscape_grid_parse(struct landscape_grid *g, const char *text);
double landscape_grid_x(const struct landscape_grid *g, size_t i);
double landscape_grid_y(const struct landscape_grid *g, size_t j);

/* (a, b, c) of a grid point (x, y) (above) */
void landscape_coeffs(double x, double y, double coef[LANDSCAPE_RUNS]);
/* (x, y) of run k's solution: (0, 0), (0.5, 1), (1, 0) */
void landscape_corner(size_t k, double *x, double *y);

struct landscape;

/* Read the three run files, check them against each other, build the task
 * vectors, load the model and the training subset. */
int  landscape_open(struct landscape **out, const char *const paths[LANDSCAPE_RUNS],
                    const struct landscape_opts *o);
void landscape_close(struct landscape *L);       /* safe on NULL */

/* mean loss over the subset of theta_0 + sum_k coef[k] tau_k (the model's
 * weights are restored after) */
int  landscape_loss(struct landscape *L, const double coef[LANDSCAPE_RUNS], double *loss);
/* mean loss over the subset of run k through its own adapters (factored,
 * on the frozen model, eval mode): what the run computes; the corner
 * landscape_loss with coef = e_k equals it up to float rounding */
int  landscape_run_loss(struct landscape *L, size_t k, double *loss);

/* what the command writes (docs/results.md "Landscape files") */
struct landscape_info {
    const char *run[LANDSCAPE_RUNS];       /* the paths given            */
    char label[LANDSCAPE_RUNS][64];        /* "randlora r=32", "full"    */
    const char *model, *dataset, *prompt;  /* model directory (realpath),
                                              train spec, prompt         */
    size_t n_items;
    const int64_t *items;                  /* the subset, ascending      */
    double tau_norm[LANDSCAPE_RUNS];       /* ||tau_k||_F over all layers */
    size_t n_layers;                       /* adapted by any run         */
};
void landscape_describe(const struct landscape *L, struct landscape_info *info);

/* the whole computation: grid, corners, the three runs' own losses, the
 * barrier paths; arrays malloc'd, landscape_result_free */
struct landscape_result {
    struct landscape_grid grid;
    double *x, *y;                         /* nx, ny                     */
    double *loss;                          /* (nx, ny): loss[i * ny + j] at
                                              (x_i, y_j), as the paper's
                                              losses[i, j]               */
    double corner_loss[LANDSCAPE_RUNS];    /* coef = e_k exactly          */
    double run_loss[LANDSCAPE_RUNS];       /* landscape_run_loss          */
    double zero_loss;                      /* theta_0 (a = b = c = 0)     */
    size_t n_path;                         /* points per pair (0: none)   */
    double *t;                             /* n_path                      */
    double *path_loss;                     /* (3, n_path), pairs (1,2), (1,3), (2,3) */
    double barrier[LANDSCAPE_PAIRS];       /* heights (above)             */
    double seconds;
};
int  landscape_compute(struct landscape *L, const struct landscape_opts *o,
                       struct landscape_result *r);
void landscape_result_free(struct landscape_result *r);

/* the runs (0-based) of pair p: (0,1), (0,2), (1,2) */
void landscape_pair(size_t p, size_t *i, size_t *j);

#endif /* RANDLORA_RESULTS_LANDSCAPE_H */
