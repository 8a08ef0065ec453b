/*
 * run_group.h: what a run file's stored plan says about where the run
 * belongs in a comparison: its group (the cell of the paper's table), its
 * setting (every other hyperparameter), and its seed. `report` selects a
 * setting per group over seeds; `plot` averages runs over seeds only when
 * their whole configuration but the seed (`config`) is equal.
 *
 * How a key is computed: the /config text (INI) is parsed back with the
 * experiment parser (experiments/config.h) into its one run plan, and the
 * plan is rendered again with run_plan_to_ini, so files written by older
 * renderers compare equal to new ones whenever their plans are equal. Every
 * "section.key = value" of that rendering then goes to exactly one place:
 *
 *   group    data.dataset, model.name, method.methods, method.budget or
 *            method.rank (the rank only when the run is not sized by a
 *            budget; full and none have neither), data.shots or
 *            data.fractions: the cell of the table. (The model name is part
 *            of the group so that runs of two models are never compared as
 *            two settings of one.)
 *   seed     sweep.seeds (the run's seed) and the seeds derived from it or
 *            pinned beside it: train.seed, method.init_seed,
 *            data.sample_seed. These are never part of a setting.
 *   ignored  bookkeeping that does not change what is trained:
 *            experiment.* (name, output, description), sweep.jobs, run.*
 *            (id; the matched rank and trainable count, which the group
 *            and the setting determine), train.checkpoint_every and
 *            train.recompute (same results, other memory and time).
 *   setting  everything else, in rendering order: lr, weight_decay, steps or
 *            epochs, batch, accumulate, warmup, alpha, dropout, profile,
 *            basis, towers, layers, modules, the pretraining keys of
 *            [model], eval, prompt, ... A key the renderer gains later (a
 *            new hyperparameter or axis) lands here without a change to
 *            this file.
 *            For the zero-shot baseline `none`, which trains nothing, the
 *            [train] and [method] keys are ignored: its runs at any lr are
 *            one setting.
 *
 * Canonical strings: `group`, `setting` and `config` are the kept items as
 * "section.key=value" lines joined with '\n' (no trailing newline), so two
 * runs share a group / setting / configuration exactly when the strings are
 * equal (strcmp). `config` is the group's lines followed by the setting's:
 * the whole configuration except the seed.
 *
 *     struct store *s;  struct run_key k;
 *     if (store_open(&s, path) == RL_OK && run_key_from_store(s, &k) == RL_OK) {
 *         printf("%s seed %llu: %s\n", k.method, (unsigned long long)k.seed, k.brief);
 *         const char *lr = run_key_get(&k, "train.lr");   // "0.001"
 *         run_key_free(&k);
 *     }
 *     store_close(s);
 *
 * Ownership: a run_key owns every string and array in it; run_key_free
 * frees them (safe on a zeroed key and twice). Nothing here keeps state.
 */
#ifndef RANDLORA_RESULTS_RUN_GROUP_H
#define RANDLORA_RESULTS_RUN_GROUP_H

#include <stddef.h>
#include <stdint.h>

struct store;
struct run_plan;

/* one "section.key = value" of a rendered plan */
struct run_key_item {
    char *key;      /* "train.lr" */
    char *value;    /* "0.001" (continuation lines joined by one space) */
};

struct run_key {
    char    *id;            /* the run id ([run] id)                            */
    char    *dataset;       /* data.dataset                                     */
    char    *model;         /* model.name                                       */
    char    *method;        /* method.methods: lora, vera, randlora, full, none */
    size_t   rank;          /* the adapter's rank (matched one under a budget); */
                            /* 0 for methods without a rank                      */
    size_t   budget;        /* the trainable budget that chose the rank, or 0   */
    size_t   shots;         /* k per class, or 0 when a fraction is used        */
    double   fraction;      /* (0, 1] when shots == 0, else 0                   */
    size_t   n_trainable;   /* trainable parameters; 0 when not known           */
    uint64_t seed;          /* the run's seed (sweep.seeds)                     */

    char    *group;         /* canonical group lines (above)                    */
    char    *setting;       /* canonical setting lines                          */
    char    *config;        /* group + '\n' + setting                           */
    char    *brief;         /* the usual hyperparameters in short form:         */
                            /* "lr=1e-3 wd=0.01 steps=100 batch=32"             */
    struct run_key_item *items;  /* the setting's items, in order              */
    size_t   n_items;
};

/* The key of the run whose stored plan (the /config text) is `ini`; `where`
 * names it in messages (a file name). RL_ERR_FORMAT with one line when the
 * text is not the plan of exactly one run. On failure k is zeroed. */
int  run_key_from_config_text(const char *ini, const char *where, struct run_key *k);

/* The one run plan of stored plan text `ini` (parsed and expanded without
 * shapes, as `randlora train` reads a run file back): *plan is an array of
 * one, free with run_plans_free(*plan, 1); NULL on failure (RL_ERR_FORMAT
 * with one line naming `where`). */
int  run_plan_from_config_text(const char *ini, const char *where, struct run_plan **plan);

/* The key of a plan (always succeeds). */
void run_key_from_plan(const struct run_plan *plan, struct run_key *k);

/* The same from an open run file's /config; rank and n_trainable are then
 * the ones stored in /method (what was trained). */
int  run_key_from_store(struct store *s, struct run_key *k);

void run_key_free(struct run_key *k);

/* The value of setting key `key` ("train.lr"), or NULL when the setting has
 * no such item (e.g. train.epochs of a run sized in steps). Owned by k. */
const char *run_key_get(const struct run_key *k, const char *key);

/* The short name of a setting key as compact forms print it: "lr",
 * "wd" (train.weight_decay), "acc" (train.accumulate), "steps", "alpha", ...
 * (the key without its section for all others but a few pretraining keys,
 * which keep "model."). Static storage or a pointer into `key`. */
const char *run_key_short_name(const char *key);

/* A compact human form of `setting` (a canonical setting string) naming
 * only the keys whose value differs among settings[0..n) (a key missing
 * from one of them counts as differing): "lr=3e-3 wd=0.1". Numbers are
 * printed with %g. Keys are in rendering order. train.lr_min is left out
 * when train.lr differs (the stored lr_min is the floor lr_min_ratio derives
 * from lr). Allocated (caller frees);
 * "" when nothing differs. `setting` need not be among `settings`. */
char *run_key_setting_compact(const char *setting, const char *const *settings, size_t n);

/* What differs between two runs, for messages naming a run file whose
 * stored plan is not the grid's: their configurations (group and setting
 * keys, short names, values as run_key_setting_compact prints them) and
 * seeds, "lr=0.001 vs 0.003; shots=4 vs 8; seed 1 vs 2" (a's value first;
 * "-" for a key one of them lacks). Allocated (caller frees); NULL when
 * configuration and seed are equal. */
char *run_key_diff(const struct run_key *a, const struct run_key *b);

#endif /* RANDLORA_RESULTS_RUN_GROUP_H */
