/*
 * runner_init.c: a run that starts from an existing adapter
 * (train.init_adapter = DIR, runner.h): a peft-format directory, from
 * `randlora export` or peft's save_pretrained, read into the run's adapters
 * before the first step.
 *
 * The adapter's configuration is checked against the run's: the method
 * (peft_type), the rank, and everything adapter_io_import checks (LoRA's
 * scaling and rsLoRA, RandLoRA's and NoLA's rules and scaling); its tensors
 * must name exactly the layers the run adapts (method.towers, layers,
 * modules), with their shapes. Anything else is refused with one line
 * naming the directory and the difference (RL_ERR_ARG or RL_ERR_FORMAT, exit
 * status 2) before the results file is written. The shared frozen tensors
 * (VeRA's, RandLoRA's bases) are the adapter's, not the ones the run's seed
 * would generate. AdamW's moments and the learning-rate schedule start
 * afresh. A resumed run imports again, then its checkpoint's parameters
 * replace the trainable ones (the shared tensors stay the adapter's).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/status.h"
#include "experiments/runner_impl.h"
#include "methods/adapter_io.h"

int run_init_adapter(struct run_state *s)
{
    const struct run_plan *p = s->plan;
    const char *dir = p->init_adapter;
    struct adapter_io_files files = { .dir = dir };
    struct adapter_io_info info;
    struct adapter_io_module *mods;
    char (*names)[CLIP_MAX_NAME];
    int rc;

    if (!dir)
        return RL_OK;
    if (!s->trains)
        return rl_error_set(RL_ERR_ARG, "%s: train.init_adapter = %s: method %s has no adapter to start from",
                            p->id, dir, p->method);
    memset(&info, 0, sizeof info);
    if ((rc = adapter_io_read_config(&files, &info))) {
        adapter_io_info_free(&info);
        return rl_error_prefix(rc, "%s: train.init_adapter = %s", p->id, dir);
    }
    if (strcmp(info.cfg.method, p->method))
        rc = rl_error_set(RL_ERR_ARG, "%s: train.init_adapter = %s is a %s adapter, but the run's method is %s",
                          p->id, dir, info.cfg.method, p->method);
    else if ((s->ca.method.ops->flags & ADAPTER_F_RANK) && info.cfg.r != p->adapter.r)
        rc = rl_error_set(RL_ERR_ARG, "%s: train.init_adapter = %s has rank %zu, but the run's is %zu (method.rank, "
                          "or the rank its budget matched)", p->id, dir, info.cfg.r, p->adapter.r);
    adapter_io_info_free(&info);
    if (rc)
        return rc;
    mods = xcalloc(s->ca.n_sites ? s->ca.n_sites : 1, sizeof(*mods));
    names = xcalloc(s->ca.n_sites ? s->ca.n_sites : 1, sizeof(*names));
    for (size_t k = 0; k < s->ca.n_sites; k++) {
        mods[k].path = clip_site_name(&s->ca.sites[k], names[k], sizeof(names[k]));
        mods[k].adapter = &s->ca.adapters[k];
    }
    rc = adapter_io_import(&files, &s->ca.method, mods, s->ca.n_sites);
    if (rc)
        rc = rl_error_prefix(rc, "%s: train.init_adapter = %s (the run adapts %zu layers)", p->id, dir,
                             s->ca.n_sites);
    free(mods);
    free(names);
    return rc;
}
