/*
 * fuzz_clip_size.h: for the config harnesses (fuzz_model_config.c,
 * fuzz_openclip_config.c): a rough parameter count of a parsed config, so
 * that only small models are built. Include it once, in the harness.
 */
#ifndef RANDLORA_TESTS_FUZZ_CLIP_SIZE_H
#define RANDLORA_TESTS_FUZZ_CLIP_SIZE_H

#include <stddef.h>

#include "models/clip.h"

/* a rough parameter count, saturating at 2^22: the model is built only below */
static size_t fuzz_rough_params(const struct clip_config *c)
{
    const size_t lim = (size_t)1 << 22;
    size_t tv = c->text.hidden, vv = c->vision.hidden, total;

    if (tv > lim || vv > lim || c->text.vocab_size > lim || c->text.context > lim ||
        c->text.intermediate > lim || c->vision.intermediate > lim || c->text.layers > 64 ||
        c->vision.layers > 64 || c->projection_dim > lim || c->vision.image_size > 4096 ||
        c->vision.patch_size > 4096 || c->vision.num_channels > 16)
        return lim;
    total = tv * (c->text.vocab_size + c->text.context + c->projection_dim) +
            c->text.layers * tv * (4 * tv + 2 * c->text.intermediate) +
            vv * (c->vision.patch_size * c->vision.patch_size * c->vision.num_channels + c->projection_dim) +
            c->vision.layers * vv * (4 * vv + 2 * c->vision.intermediate);
    return total < lim ? total : lim;
}

#endif /* RANDLORA_TESTS_FUZZ_CLIP_SIZE_H */
