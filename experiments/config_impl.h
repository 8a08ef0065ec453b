/*
 * config_impl.h: INTERNAL to experiments/config*.c, not part of the public
 * API (that is config.h). The key table's types, the typed values and the
 * helpers the parts share:
 *   config.c         the key table and the typed values
 *   config_ini.c     stage 1 (collect: INI via libinih, overrides)
 *   config_resolve.c stage 2 (resolve: typed fields, per-method keys,
 *                    the settings of each method's axes)
 *   config_plan.c    stage 3 (expand: plans, run ids)
 *   config_check.c   what a run file must read back, checked at expansion
 *   config_render.c  a plan rendered back as INI
 */
#ifndef EXPERIMENTS_CONFIG_IMPL_H
#define EXPERIMENTS_CONFIG_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "experiments/config.h"

#define MAX_FILE_BYTES  (1u << 20)
#define WRAP_COL        100
#define FLOAT_TINY      1e-30        /* smallest non-zero magnitude of a float key */
#define BIG             1e9          /* the upper bound of most counts       */
#define UMAX            18446744073709551615.0  /* 2^64 - 1, as a double     */

/* ------------------------------------------------------------------------ */
/* the key table                                                             */

enum ktype {
    K_NAME,         /* [A-Za-z0-9._-]+                                   */
    K_TEXT,         /* anything, may be empty                            */
    K_PATH,         /* non-empty                                         */
    K_MODEL,        /* a preset or a path with '/'                       */
    K_SPEC,         /* one dataset spec                                  */
    K_SPECS,        /* list of dataset specs                             */
    K_PROMPT,       /* exactly one "{}"                                  */
    K_WORD,         /* one of kd->words                                  */
    K_UINT,         /* integer in [ulo, uhi]                             */
    K_UINTS,        /* list of those, no repeats                         */
    K_DOUBLE,       /* finite number in the range                        */
    K_FRACTIONS,    /* list of numbers in (0, 1], no repeats             */
    K_BOOL,
    K_SEED,         /* a 64-bit integer, or "run" with F_RUN             */
    K_SEEDS,        /* list of 64-bit integers, no repeats               */
    K_METHODS,      /* list of registry names, no repeats                */
    K_TOWERS,
    K_LAYERS,
    K_MODULES,
    K_VAL,          /* data.val: none, N per class, fraction, or a spec  */
    K_EPOCH_TABLE,  /* list of NAME:EPOCHS (ls, lu), names unique ignoring case */
};

enum {
    F_SUFFIX  = 1u << 0,    /* takes a .METHOD suffix             */
    F_LO_OPEN = 1u << 1,    /* K_DOUBLE: > dlo rather than >=     */
    F_HI_OPEN = 1u << 2,    /* K_DOUBLE: < dhi rather than <=     */
    F_RUN     = 1u << 3,    /* K_SEED: "run" allowed              */
};

struct keydef {
    const char *section, *key;
    enum ktype type;
    unsigned flags;
    const char *def;        /* default as text; NULL: none (derived) */
    double lo, hi;          /* ranges of K_UINT(S) and K_DOUBLE      */
    const char *const *words;
};

extern const char *const cfg_w_templates[];
extern const char *const cfg_w_augment[];
extern const char *const cfg_w_profile[];
extern const char *const cfg_w_precision[];
extern const char *const cfg_w_head[];
extern const char *const cfg_w_features[];
extern const char *const cfg_w_lm_loss[];
/* the dataset reader name of the commonsense format (train_lm.c) */
#define CFG_COMMONSENSE "commonsense"
extern const char *const cfg_w_basis[];
extern const char *const cfg_w_epoch_rule[];
extern const char *const cfg_w_loss[];
extern const char *const cfg_w_logit_scale[];
extern const char *const cfg_w_module[EXP_N_MODULES];
extern const char *const cfg_sections[];
extern const struct keydef cfg_keys[];
extern const size_t cfg_n_keys;
#define N_KEYS cfg_n_keys

/* ------------------------------------------------------------------------ */
/* typed values                                                              */

struct value {
    size_t   u;
    double   d;
    uint64_t u64;
    bool     b, run;
    int      word;
    size_t  *lu;     size_t n;     /* K_UINTS, K_METHODS (registry indices) */
    double  *ld;                   /* K_FRACTIONS                           */
    uint64_t *l64;                 /* K_SEEDS                               */
    char   **ls;                   /* K_SPECS; K_EPOCH_TABLE names (lu: epochs) */
    unsigned mask;                 /* K_TOWERS, K_MODULES                   */
    size_t   lo, hi;               /* K_LAYERS                              */
    /* K_VAL: word = enum exp_val_kind, u = per class, d = fraction, ls[0]
     * (n = 1) = the spec */
};

/* config.c */
int cfg_key_index(const char *section, const char *key);
bool cfg_section_known(const char *s);
const char *cfg_join_words(const char *const *w, char *buf, size_t cap);
const char *cfg_section_keys(const char *section, char *buf, size_t cap);
const char *cfg_method_names(char *buf, size_t cap);
int cfg_method_index(const char *name);
void cfg_value_free(struct value *v);
bool cfg_is_preset(const char *s);
size_t cfg_strip_split(const char *s);
int cfg_parse_value(const struct keydef *kd, const char *v, struct value *out, char *w,
                size_t wn);
/* Split a comma list into trimmed items: *items point into *buf (caller
 * frees both); -1 with the reason in w for an empty list or item. */
int cfg_split_list(const char *s, char **buf, char ***items, size_t *n, char *w, size_t wn);
/* The run-id tag of a key that takes a list expanded as a grid axis ("lr",
 * "wd", ...; "" for a value named by itself), NULL for any other key. */
const char *cfg_axis_tag(const struct keydef *kd);

/* config_plan.c */
/* the shortest text that strtod reads back as v ("%.*g") */
void cfg_fmt_double(char *buf, size_t cap, double v);
/* the same, or its exponent form when that is shorter, with the exponent
 * written plainly: 0.003 -> "3e-3", 1e-05 -> "1e-5", 0.01 -> "0.01" (run ids) */
void cfg_fmt_id_number(char *buf, size_t cap, double v);

/* config_ini.c / config_resolve.c: the collected file */
struct entry {
    char *value;            /* NULL: not set                      */
    const char *src;        /* file name or "-s"                  */
    int   line;             /* 0 for an override                  */
};

struct parser {
    struct entry *ent;      /* N_KEYS x n_slots                   */
    size_t n_slots;         /* 1 + registry size                  */
    const char *where;
    /* reader */
    const char *p;
    int line;
    bool indented;
    /* the entry whose value is still growing, for continuations */
    struct entry *pending;
    size_t pending_key, pending_slot;
    /* first error */
    int err_line;           /* 0: none; -1: not tied to a line     */
    int err_rc;
    /* stage 2: per key, the item of an axis list that the setting being
     * resolved takes (NULL: the key's own text); N_KEYS entries or NULL */
    const char **pick;
};

struct entry *cfg_slot(struct parser *ps, size_t k, size_t s);
const char *cfg_slot_suffix(const struct parser *ps, size_t s);   /* NULL for slot 0 */
/* "FILE:LINE" or "-s" or "FILE" */
const char *cfg_loc(const struct parser *ps, const struct entry *en, char *buf, size_t cap);
/* record the first error (rl_error_set) */
void cfg_fail_at(struct parser *ps, int line, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int  cfg_collect(struct parser *ps, const char *text, const char *where,
                 const char *const *ov, size_t n_ov);
void cfg_parser_free(struct parser *ps);
/* stage 2; -1 with the error recorded in ps */
int  cfg_resolve(struct parser *ps, struct experiment *e);

/* experiment_expand; check_store false skips cfg_check_plan (which expands
 * the rendered plan again itself) */
int cfg_expand(const struct experiment *e, exp_shapes_fn shapes, void *ctx,
               struct run_plan **plans, size_t *n_plans, bool check_store);

/* config_check.c: what a run file must read back, checked at expansion.
 * RL_ERR_ARG with one line starting with source. */
int cfg_check_run_id(const char *source, const char *id);
int cfg_check_plan(const char *source, const struct run_plan *p);

#endif
