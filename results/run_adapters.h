/*
 * run_adapters.h: the trained adapters of a run, rebuilt from its results
 * file, so `randlora analyze` and `randlora export` can compute dW and write
 * peft files without the model or the data.
 *
 * What is read (the layout the runner writes after training, store.h):
 *
 *   /config                      the resolved run (INI); parsed with
 *                                experiment_parse + experiment_expand into
 *                                exactly one run_plan, whose adapter_cfg
 *                                (method, r, alpha, rules, seed) builds the
 *                                method
 *   /adapter                     attrs method (string), r (int64): checked
 *                                against the plan (r only for methods that
 *                                take a rank)
 *   /adapter/<site>              one group per adapted linear, <site> the
 *                                Hugging Face module path
 *                                ("vision_model.encoder.layers.0.self_attn.q_proj"),
 *                                attrs d_out, d_in (int64)
 *   /adapter/<site>/<name>       float32, one per trainable tensor of the
 *                                method in peft's name and shape
 *                                (adapter_tensors: "lora_A.weight",
 *                                "randlora_lambda", "weight_delta", ...)
 *   /adapter/shared/<name>       the method's shared frozen tensors
 *                                (vera_A, vera_B, randlora_A, randlora_B)
 *
 * The method is sized by the largest d_out and d_in over the sites (as
 * clip_adapters_init sizes it) for forwards of one row; every site gets an
 * adapter_init'ed adapter owning its parameters, which are then overwritten
 * with the stored values. Shapes must equal the method's views; dimensions of
 * size 1 are ignored in the comparison (randlora_A (r, 1, d) stored as (r, d)
 * is the same row-major data).
 *
 * Shared tensors: the config's seed regenerates them at adapter_method_init;
 * when /adapter/shared is present the stored tensors are LOADED over the
 * regenerated ones (they are what the run trained with; regeneration depends
 * on the harness version's RNG and on sizing the method exactly like the
 * runner), and the largest |stored - regenerated| is reported in
 * shared_max_diff (0 when they agree, as they should; the commands warn
 * otherwise). Without /adapter/shared the regenerated tensors are used and
 * shared_loaded is false. A method without shared tensors ignores the group.
 *
 * Sites are ordered vision_model.* first, then text_model.*, then anything
 * else, each by a natural comparison (layers.2 before layers.10), which is
 * the order clip_adapters_init uses for the towers and layers.
 *
 * Hostile files: a missing /config, /adapter, attribute or tensor, a config
 * that does not parse to one run, a method or rank that disagrees, sizes out
 * of range (each dimension 1..2^20, d_out * d_in <= 2^28), a layer the
 * method refuses, a tensor of the wrong shape or with a non-finite value:
 * RL_ERR_FORMAT with one line naming the file and the object.
 *
 *     struct store *st;
 *     struct run_adapters ra;
 *     if ((rc = store_open(&st, path)) || (rc = run_adapters_load(&ra, st)))
 *         ... rl_error_msg() ...
 *     float *dw = malloc(...);
 *     for (size_t i = 0; i < ra.n_sites; i++)
 *         adapter_delta_weight(&ra.sites[i].adapter, dw);   // d_out x d_in
 *     run_adapters_free(&ra);
 */
#ifndef RANDLORA_RESULTS_RUN_ADAPTERS_H
#define RANDLORA_RESULTS_RUN_ADAPTERS_H

#include <stdbool.h>
#include <stddef.h>

#include "experiments/config.h"
#include "methods/adapter.h"
#include "models/clip.h"
#include "results/store.h"

#define RUN_ADAPTERS_MAX_DIM   (1u << 20)
#define RUN_ADAPTERS_MAX_ELEMS ((size_t)1 << 28)
#define RUN_ADAPTERS_SHARED    "shared"      /* /adapter/shared */
#define RUN_ADAPTERS_HEAD      "classifier"  /* /adapter/classifier: a linear head
                                                (model.head), not an adapted site */

/* one adapted linear layer */
struct run_site {
    char *name;                 /* the module path (group name under /adapter) */
    size_t d_out, d_in;
    struct adapter adapter;     /* owns its params; stored values loaded       */
};

struct run_adapters {
    struct run_plan *plan;      /* the run's plan from /config (one)          */
    const char *method;         /* registry name (static)                     */
    bool has_method;            /* method initialised (false with no sites)   */
    struct adapter_method m;
    struct run_site *sites;     /* n_sites, in the order above                */
    size_t n_sites;
    bool shared_loaded;         /* /adapter/shared read over the regenerated  */
    double shared_max_diff;     /* max |stored - regenerated| (0: identical)  */
};

/* Read the plan and the adapters of the run open in `s` (store_open or
 * store_open_rw). On failure ra holds nothing to free (run_adapters_free is
 * still safe). */
int  run_adapters_load(struct run_adapters *ra, struct store *s);
void run_adapters_free(struct run_adapters *ra);   /* safe on a zeroed struct */

/* The run's adapters attached to a model, for forwards (activation CKA in
 * `randlora analyze`): clip_adapters_init on m with the plan's targets and
 * adapter_cfg, exactly as the runner builds them, for up to max_images
 * images and max_texts texts; then every site's trainable parameters are
 * copied from ra (the site of the same name) and the method's shared tensors
 * from ra's (the ones the run trained with), and the adapters are put in
 * eval mode (no dropout). The sites the targets give on m must be exactly
 * ra's, with the same shapes (RL_ERR_FORMAT naming the first difference:
 * the run was made for another model). A run without sites (`none`) gives
 * a zeroed ca with n_sites == 0: pass NULL to the towers then.
 * Free with clip_adapters_free (also after an error). */
int  run_adapters_attach(const struct run_adapters *ra, const struct clip_model *m,
                         struct clip_adapters *ca, size_t max_images, size_t max_texts);

/* The run's plan only (from /config): *plan allocated, run_plans_free(plan, 1). */
int  run_plan_read(struct store *s, struct run_plan **plan);

/* The site named `name`, or NULL. */
struct run_site *run_adapters_find(const struct run_adapters *ra, const char *name);

/* Natural order of site names described above (strcmp-like). */
int  run_site_cmp(const char *a, const char *b);

/* A short label for plots: "v0.q_proj", "t11.fc1"; else the name's last two
 * components. Writes into buf and returns it. */
const char *run_site_short(const char *name, char *buf, size_t size);

#endif /* RANDLORA_RESULTS_RUN_ADAPTERS_H */
