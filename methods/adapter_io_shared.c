/*
 * adapter_io_shared.c: the shared frozen tensors of a peft-format import
 * in either of the layouts peft has saved (adapter_io_impl.h), and the
 * message for a key the import cannot place.
 *
 * peft's RandLoRA layers hold references to the model's shared bases, and
 * get_peft_model_state_dict keeps every key with the "randlora_" prefix, so
 * PeftModel.save_pretrained wrote the bases once at the model level
 * (base_model.randlora_A / _B) and once more under every targeted module
 * (base_model.model.<module>.randlora_A / _B, aliases cloned for
 * safetensors): peft issue #3709, fixed by pull request #3714 (the model
 * level only; files with the copies still load). peft 0.21.2 still writes
 * the copies (tests/ref/make_peft_layout_fixture.py). VeRA never did: its
 * per-layer prefix is "vera_lambda_". The copies are accepted for any
 * method with shared tensors and must agree bit for bit.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/status.h"
#include "methods/adapter_io_impl.h"

void adapter_io_keys_push(struct adapter_io_keys *k, char *owned)
{
    if (k->n == k->cap) {
        k->cap = k->cap ? 2 * k->cap : 64;
        k->v = xrealloc_array(k->v, k->cap, sizeof(*k->v));
    }
    k->v[k->n++] = owned;
}

void adapter_io_keys_free(struct adapter_io_keys *k)
{
    for (size_t i = 0; i < k->n; i++)
        free(k->v[i]);
    free(k->v);
    memset(k, 0, sizeof(*k));
}

int adapter_io_read_shared(const struct st_file *f, const char *weights, const struct adapter_tensor *t,
                           const struct adapter_io_module *mods, size_t n, float *buf,
                           struct adapter_io_keys *keys)
{
    const int64_t shape[3] = { (int64_t)t->shape[0], (int64_t)t->shape[1], (int64_t)t->shape[2] };
    char *main_key = adapter_io_cat3(SHARED_PREFIX, t->name, NULL);
    const char *ref = NULL;                     /* the key buf holds */
    float *copy = NULL;
    int rc = RL_OK;

    if (st_find(f, main_key)) {
        rc = st_load_f32(f, main_key, t->ndim, shape, buf);
        ref = main_key;
    }
    for (size_t i = 0; i < n && rc == RL_OK; i++) {
        char *key = adapter_io_cat3(LAYER_PREFIX, mods[i].path, ".");
        char *full = adapter_io_cat3(key, t->name, NULL);

        free(key);
        if (!st_find(f, full)) {
            free(full);
            continue;
        }
        adapter_io_keys_push(keys, full);
        if (!ref) {                             /* the copies alone: the first is read */
            rc = st_load_f32(f, full, t->ndim, shape, buf);
            ref = full;
            continue;
        }
        if (!copy)
            copy = xmalloc_array(t->n ? t->n : 1, sizeof(float));
        if ((rc = st_load_f32(f, full, t->ndim, shape, copy)))
            break;
        for (size_t j = 0; j < t->n; j++)
            if (memcmp(&copy[j], &buf[j], sizeof(float))) {
                char s1[SHOWN], s2[SHOWN];

                rc = rl_error_set(RL_ERR_FORMAT, "%s: tensor '%s' differs from '%s' at element %zu (%g, %g): "
                                  "the copies of the shared %s that peft's older layout keeps under every module "
                                  "must be equal", weights, adapter_io_shown(s1, sizeof s1, full),
                                  adapter_io_shown(s2, sizeof s2, ref), j, (double)copy[j], (double)buf[j], t->name);
                break;
            }
    }
    if (rc == RL_OK && !ref)                    /* neither: the reader's "missing" */
        rc = st_load_f32(f, main_key, t->ndim, shape, buf);
    if (ref == main_key || !ref)
        adapter_io_keys_push(keys, main_key);   /* accounted for (or reported missing) */
    else
        free(main_key);
    free(copy);
    return rc;
}

/* "a, b, c" of the tensor names of adapter a (or of m's shared tensors) */
static void list_names(char *buf, size_t cap, const struct adapter_tensor *t, size_t nt)
{
    size_t used = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < nt && used + 1 < cap; i++) {
        int w = snprintf(buf + used, cap - used, "%s%s", i ? ", " : "", t[i].name);

        used += w > 0 ? (size_t)w : 0;
    }
    if (nt == 0)
        snprintf(buf, cap, "none");
}

int adapter_io_unknown_key(const char *weights, const char *key, const struct adapter_method *m,
                           const struct adapter_io_module *mods, size_t n)
{
    const size_t lp = strlen(LAYER_PREFIX), sp = strlen(SHARED_PREFIX);
    struct adapter_tensor t[MAX_VIEWS];
    char shown[SHOWN], names[256];

    adapter_io_shown(shown, sizeof shown, key);
    if (!strncmp(key, LAYER_PREFIX, lp)) {
        const char *rest = key + lp;

        for (size_t i = 0; i < n; i++) {
            size_t pl = strlen(mods[i].path);

            if (strncmp(rest, mods[i].path, pl) || rest[pl] != '.')
                continue;
            list_names(names, sizeof names, t, adapter_tensors(mods[i].adapter, false, t, MAX_VIEWS));
            return rl_error_set(RL_ERR_FORMAT, "%s: tensor '%s': a %s adapter has no tensor '%s' under module '%s' "
                                "(it has %s)", weights, shown, m->ops->name, rest + pl + 1, mods[i].path, names);
        }
        return rl_error_set(RL_ERR_FORMAT, "%s: tensor '%s' names a module that is not among the %zu adapted here "
                            "(the first: %s): the adapter was made for other layers", weights, shown, n,
                            n ? mods[0].path : "none");
    }
    if (!strncmp(key, SHARED_PREFIX, sp)) {
        list_names(names, sizeof names, t, adapter_method_tensors((struct adapter_method *)m, t, MAX_VIEWS));
        return rl_error_set(RL_ERR_FORMAT, "%s: tensor '%s' is not a shared tensor of a %s adapter (its shared "
                            "tensors: %s)", weights, shown, m->ops->name, names);
    }
    return rl_error_set(RL_ERR_FORMAT, "%s: tensor '%s' is not in peft's layout (keys are " LAYER_PREFIX
                        "<module>.<tensor> or " SHARED_PREFIX "<shared tensor>)", weights, shown);
}
