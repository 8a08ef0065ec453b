/*
 * adapter_io.c: what the adapter file code shares (the format is described
 * in adapter_io.h): the names of the rl_* metadata values, message and path
 * helpers, the argument checks of export and import, and peft's RandLoRA
 * alpha. Export is adapter_io_export.c, reading adapter_config.json
 * adapter_io_config.c, import adapter_io_import.c.
 */
#include "methods/adapter_io.h"

#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/status.h"
#include "methods/adapter_io_impl.h"

/* ------------------------------------------------------------------------ */
/* names                                                                     */

const char *const adapter_io_n_rule_names[] = { "ceil", "floor_plus_one" };
const char *const adapter_io_scaling_names[] = { "alpha_r", "alpha_r_sqrt_n", "one_over_r",
                                                 "ten_over_r" };
const char *const adapter_io_lambda_names[] = { "zero", "inv_max_n_r" };
const char *const adapter_io_gamma_names[] = { "inv_max_n_d", "zero" };
const char *const adapter_io_basis_names[] = { "dense", "sparse", "very_sparse" };

/* s as shown in a one-line message: control characters and quotes as '?',
 * cut to cap - 1 bytes with "..." */
const char *adapter_io_shown(char *buf, size_t cap, const char *s)
{
    size_t n = 0, i = 0;

    for (; s[i] && n + 1 < cap; i++) {
        unsigned char c = (unsigned char)s[i];

        buf[n++] = (c < 0x20 || c == 0x7f || c == '\'') ? '?' : (char)c;
    }
    if (s[i] && n >= 3)
        memcpy(buf + n - 3, "...", 3);
    buf[n] = '\0';
    return buf;
}

/* a fresh string: the concatenation of a, b, c (c may be NULL) */
char *adapter_io_cat3(const char *a, const char *b, const char *c)
{
    size_t la = strlen(a), lb = strlen(b), lc = c ? strlen(c) : 0;
    char *s = xmalloc(la + lb + lc + 1);

    memcpy(s, a, la);
    memcpy(s + la, b, lb);
    if (c)
        memcpy(s + la + lb, c, lc);
    s[la + lb + lc] = '\0';
    return s;
}

/* files->weights / files->config, or <dir>/<name>; NULL when neither */
static char *file_path(const struct adapter_io_files *files, const char *given, const char *name)
{
    if (given)
        return xstrdup(given);
    if (!files->dir)
        return NULL;
    return adapter_io_cat3(files->dir, "/", name);
}

/* ------------------------------------------------------------------------ */
/* argument checks                                                           */

int adapter_io_check_modules(struct adapter_method *m, const struct adapter_io_module *mods,
                             size_t n)
{
    if (!m->ops)
        return rl_error_set(RL_ERR_ARG, "adapter files: the method is not initialised");
    if (n > 0 && !mods)
        return rl_error_set(RL_ERR_ARG, "adapter files: no module list");
    for (size_t i = 0; i < n; i++) {
        if (!mods[i].path || !mods[i].path[0])
            return rl_error_set(RL_ERR_ARG, "adapter files: module %zu has an empty path", i);
        if (!mods[i].adapter || mods[i].adapter->method != m)
            return rl_error_set(RL_ERR_ARG, "adapter files: module '%s' has no adapter of "
                                "this %s method", mods[i].path, m->ops->name);
        for (size_t j = 0; j < i; j++)
            if (!strcmp(mods[i].path, mods[j].path))
                return rl_error_set(RL_ERR_ARG, "adapter files: module '%s' is listed twice",
                                    mods[i].path);
    }
    return RL_OK;
}

int adapter_io_resolve_paths(const struct adapter_io_files *files, char **weights,
                             char **config)
{
    *weights = *config = NULL;
    if (!files)
        return rl_error_set(RL_ERR_ARG, "adapter files: no paths given");
    *weights = file_path(files, files->weights, ADAPTER_IO_WEIGHTS_NAME);
    *config = file_path(files, files->config, ADAPTER_IO_CONFIG_NAME);
    if (!*weights || !*config) {
        free(*weights);
        free(*config);
        *weights = *config = NULL;
        return rl_error_set(RL_ERR_ARG, "adapter files: give a directory or both file paths");
    }
    return RL_OK;
}

/* the alpha for which peft's alpha / r is our RandLoRA scaling */
float adapter_io_randlora_peft_alpha(const struct adapter_cfg *cfg)
{
    float r = (float)cfg->r;

    if (cfg->scaling == ADAPTER_SCALE_ONE_OVER_R)
        return 1.0f;
    if (cfg->scaling == ADAPTER_SCALE_TEN_OVER_R)
        return 10.0f;
    return cfg->alpha > 0.0f ? cfg->alpha : 20.0f * r;
}
