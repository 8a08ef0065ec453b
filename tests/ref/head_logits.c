/*
 * head_logits.c: a test-only tool for tests/ref/check_head_export_in_peft.py
 * (built by `make build/tests/ref/head_logits`, not by `make check`): the
 * logits this project computes for a DINOv2 backbone with a peft-format
 * adapter holding a linear head (modules_to_save ["classifier"]), read
 * through adapter_io_import exactly as train.init_adapter reads it.
 *
 *   head_logits MODEL_DIR ADAPTER_DIR MODULES POOL PIXELS.f32 N OUT.f32
 *
 * MODULES: the adapted linears ("q_proj,v_proj,out_proj,fc1,fc2", every
 * layer); POOL: cls or cls_mean; PIXELS.f32: N x 3 x S x S float32 (S the
 * model's image_size, normalised already); OUT.f32: N x M float32 logits.
 * Exit status 0, 2 on bad input, 1 otherwise; one line on stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/status.h"
#include "formats/safetensors.h"
#include "methods/adapter_io.h"
#include "models/clip.h"
#include "models/dinov2.h"
#include "models/head.h"

static int head_shape(const char *adapter_dir, size_t *out, size_t *in)
{
    char path[4096];
    struct st_file *f = NULL;
    const struct st_info *t;
    int rc;

    snprintf(path, sizeof path, "%s/" ADAPTER_IO_WEIGHTS_NAME, adapter_dir);
    if ((rc = st_open(&f, path)))
        return rc;
    t = st_find(f, "base_model.model.classifier.weight");
    if (!t || t->ndim != 2)
        rc = rl_error_set(RL_ERR_FORMAT, "%s: no 2-D base_model.model.classifier.weight", path);
    else {
        *out = (size_t)t->shape[0];
        *in = (size_t)t->shape[1];
    }
    st_close(f);
    return rc;
}

int main(int argc, char **argv)
{
    struct clip_model m;
    struct clip_adapters ca;
    struct adapter_io_info info;
    struct clip_target targets[4];
    struct dinov2_run r;
    struct linear_head h;
    enum dinov2_pool pool;
    struct adapter_io_files files;
    struct adapter_io_head ah;
    struct adapter_io_module *mods;
    char (*names)[CLIP_MAX_NAME], spec[256];
    size_t nt = 0, M = 0, FD = 0, N, S, npix;
    float *pixels, *feats;
    FILE *fp;
    int rc;

    if (argc != 8) {
        fprintf(stderr, "usage: head_logits MODEL_DIR ADAPTER_DIR MODULES POOL PIXELS.f32 N OUT.f32\n");
        return 2;
    }
    N = (size_t)strtoul(argv[6], NULL, 10);
    memset(&info, 0, sizeof info);
    memset(&ca, 0, sizeof ca);
    files = (struct adapter_io_files){ .dir = argv[2] };
    snprintf(spec, sizeof spec, "vision:%s", argv[3]);
    if ((rc = backbone_model_load(&m, argv[1])) || (rc = dinov2_pool_parse(argv[4], &pool)) ||
        (rc = adapter_io_read_config(&files, &info)) || (rc = head_shape(argv[2], &M, &FD)) ||
        (rc = clip_targets_parse(spec, targets, 4, &nt)) ||
        (rc = clip_adapters_init(&ca, &m, &info.cfg, targets, nt, N, 1))) {
        fprintf(stderr, "head_logits: %s\n", rl_error_msg());
        return rl_exit_code(rc);
    }
    linear_head_init(&h, FD, M, N, 0);
    ah = (struct adapter_io_head){ .path = "classifier", .weight = h.w, .bias = h.b, .out = M, .in = FD };
    files.head = &ah;
    mods = xcalloc(ca.n_sites, sizeof(*mods));
    names = xcalloc(ca.n_sites, sizeof(*names));
    for (size_t k = 0; k < ca.n_sites; k++) {
        mods[k].path = clip_site_name(&ca.sites[k], names[k], sizeof(names[k]));
        mods[k].adapter = &ca.adapters[k];
    }
    if ((rc = adapter_io_import(&files, &ca.method, mods, ca.n_sites)) || !ah.loaded ||
        FD != dinov2_feature_dim(&m, pool)) {
        fprintf(stderr, "head_logits: %s\n", rc ? rl_error_msg() : "no head, or features of another size");
        return rc ? rl_exit_code(rc) : 2;
    }
    clip_adapters_set_training(&ca, false);
    S = m.cfg.vision.image_size;
    npix = N * 3 * S * S;
    pixels = xmalloc_array(npix, sizeof(float));
    feats = xmalloc_array(N * FD, sizeof(float));
    fp = fopen(argv[5], "rb");
    if (!fp || fread(pixels, sizeof(float), npix, fp) != npix) {
        fprintf(stderr, "head_logits: %s: cannot read %zu floats\n", argv[5], npix);
        return 2;
    }
    fclose(fp);
    dinov2_run_init(&r, &m, N, false);
    if ((rc = dinov2_forward(&r, &m, &ca, pixels, N, pool, feats))) {
        fprintf(stderr, "head_logits: %s\n", rl_error_msg());
        return 1;
    }
    linear_head_logits(&h, feats, N);
    fp = fopen(argv[7], "wb");
    if (!fp || fwrite(h.logits, sizeof(float), N * M, fp) != N * M || fclose(fp) != 0) {
        fprintf(stderr, "head_logits: %s: cannot write\n", argv[7]);
        return 1;
    }
    printf("%zu x %zu logits, %zu adapted layers\n", N, M, ca.n_sites);
    dinov2_run_free(&r);
    linear_head_free(&h);
    clip_adapters_free(&ca);
    adapter_io_info_free(&info);
    clip_model_free(&m);
    free(mods);
    free(names);
    free(pixels);
    free(feats);
    return 0;
}
