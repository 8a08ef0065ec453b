/*
 * adapter_io_impl.h: INTERNAL to the adapter file code in methods/
 * (adapter_io.c, adapter_io_export.c, adapter_io_config.c,
 * adapter_io_import.c): what they share beyond adapter_io.h. Not for use
 * anywhere else.
 *
 * Keys are the ones peft's get_peft_model_state_dict produces for a
 * PeftModel around the base model: "base_model.model." + module path + "."
 * + tensor name for a layer's tensors (the adapter name, ".default", removed),
 * "base_model." + name for the shared projections (BufferDicts on the tuner
 * model, saved when save_projection=True).
 */
#ifndef RANDLORA_METHODS_ADAPTER_IO_IMPL_H
#define RANDLORA_METHODS_ADAPTER_IO_IMPL_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "methods/adapter.h"
#include "methods/adapter_io.h"
#include "formats/safetensors.h"

#define LAYER_PREFIX   "base_model.model."
#define SHARED_PREFIX  "base_model."
#define MAX_VIEWS      8
#define SHOWN          160        /* buffer size for adapter_io_shown */

/* the values of the rl_n_rule, rl_scaling, rl_lambda_init, rl_gamma_init
 * metadata, indexed by the adapter_cfg enums; the basis kinds by name */
extern const char *const adapter_io_n_rule_names[2];
extern const char *const adapter_io_scaling_names[4];
extern const char *const adapter_io_lambda_names[2];
extern const char *const adapter_io_gamma_names[2];
extern const char *const adapter_io_basis_names[3];

/* s as shown in a one-line message: control characters and quotes as '?',
 * cut to cap - 1 bytes with "..." */
const char *adapter_io_shown(char *buf, size_t cap, const char *s);

/* a fresh string: the concatenation of a, b, c (c may be NULL) */
char *adapter_io_cat3(const char *a, const char *b, const char *c);

/* RL_ERR_ARG unless m is initialised and mods[0..n) are distinct, non-empty
 * paths with adapters of m */
int adapter_io_check_modules(struct adapter_method *m, const struct adapter_io_module *mods,
                             size_t n);

/* the two file paths (allocated) from files; RL_ERR_ARG when they cannot be */
int adapter_io_resolve_paths(const struct adapter_io_files *files, char **weights,
                             char **config);

/* the alpha for which peft's alpha / r is our RandLoRA scaling */
float adapter_io_randlora_peft_alpha(const struct adapter_cfg *cfg);

/* adapter_io_config.c: the config file -> a parsed JSON object (caller
 * deletes); config JSON (+ the weights file's metadata, f may be NULL)
 * -> info */
int adapter_io_load_config(const char *path, cJSON **root);
int adapter_io_parse_config(const cJSON *o, const char *path, const struct st_file *f,
                            struct adapter_io_info *info);

/* the keys an import has accounted for (owned strings) */
struct adapter_io_keys {
    char **v;
    size_t n, cap;
};
void adapter_io_keys_push(struct adapter_io_keys *k, char *owned);
void adapter_io_keys_free(struct adapter_io_keys *k);

/* adapter_io_shared.c: the method's shared tensor t (its name, ndim, shape)
 * read from the weights file into buf (t->n floats): SHARED_PREFIX <name>,
 * and the copies peft's older layout stores under every targeted module,
 * LAYER_PREFIX <path>.<name> for the modules given, which must equal it bit
 * for bit (after conversion to float32); a file with the copies only reads
 * the first module's and compares the rest. Every key read is pushed to
 * keys. RL_ERR_FORMAT naming the file and the keys that differ. */
int adapter_io_read_shared(const struct st_file *f, const char *weights, const struct adapter_tensor *t,
                           const struct adapter_io_module *mods, size_t n, float *buf,
                           struct adapter_io_keys *keys);

/* The one-line RL_ERR_FORMAT for a key of the weights file that no module
 * given and no shared tensor of m accounts for: a tensor the module's
 * method does not have (naming the ones it has), a module not among those
 * given, a shared tensor of another method, or a key outside peft's
 * layout. */
int adapter_io_unknown_key(const char *weights, const char *key, const struct adapter_method *m,
                           const struct adapter_io_module *mods, size_t n);

#endif /* RANDLORA_METHODS_ADAPTER_IO_IMPL_H */
