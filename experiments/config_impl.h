/*
 * config_impl.h: INTERNAL to experiments/config*.c, not part of the public
 * API (that is config.h). The key table's types, the typed values and the
 * helpers the parts share:
 *   config.c         the key table and the typed values
 *   config_ini.c     stage 1 (collect: INI via libinih, overrides) and
 *                    stage 2 (resolve)
 *   config_plan.c    stage 3 (expand: plans, run ids)
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
extern const char *const cfg_w_basis[];
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
    char   **ls;                   /* K_SPECS                               */
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

/* config_plan.c */
void cfg_fmt_double(char *buf, size_t cap, double v);

#endif
