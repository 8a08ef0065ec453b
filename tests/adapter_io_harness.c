/*
 * adapter_io_harness.c: the peft-format suites' temporary directory and
 * small model (adapter_io_harness.h).
 */
#include "adapter_io_harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <check.h>

#include "core/alloc.h"
#include "core/rng.h"
#include "core/status.h"
#include "formats/safetensors.h"
#include "test_util.h"

char aio_tmpdir[64];
const char *const io_layer_paths[N_LAYERS] = { Q_PROJ, FC1, FC2 };
const size_t io_layer_dims[N_LAYERS][2] = { { 16, 16 }, { 40, 16 }, { 16, 40 } };

void aio_make_tmpdir(void)
{
    snprintf(aio_tmpdir, sizeof aio_tmpdir, "/tmp/rl_aio_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(aio_tmpdir));
}

const char *aio_tmp_path(const char *name)
{
    static char buf[2][256];
    static int k;

    k ^= 1;
    snprintf(buf[k], sizeof buf[k], "%s/%s", aio_tmpdir, name);
    return buf[k];
}

void aio_remove_tmpdir(void)
{
    static const char *const names[] = { ADAPTER_IO_WEIGHTS_NAME, ADAPTER_IO_CONFIG_NAME,
                                         "w.safetensors", "c.json" };

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        unlink(aio_tmp_path(names[i]));
    ck_assert_int_eq(rmdir(aio_tmpdir), 0);
}
void io_model_init(struct io_model *md, const struct adapter_cfg *cfg)
{
    int rc = adapter_method_init(&md->m, cfg, 40, 40, N_ROWS);

    ck_assert_msg(rc == RL_OK, "method_init %s: %s", cfg->method, rl_error_msg());
    for (int i = 0; i < N_LAYERS; i++) {
        rc = adapter_init(&md->a[i], &md->m, io_layer_dims[i][0], io_layer_dims[i][1], NULL, NULL);
        ck_assert_msg(rc == RL_OK, "init: %s", rl_error_msg());
        adapter_set_training(&md->a[i], false);
        md->mods[i].path = io_layer_paths[i];
        md->mods[i].adapter = &md->a[i];
    }
}

void io_model_free(struct io_model *md)
{
    for (int i = 0; i < N_LAYERS; i++)
        adapter_free(&md->a[i]);
    adapter_method_free(&md->m);
}

void io_model_randomize(struct io_model *md, uint64_t seed)
{
    struct rng g;

    rng_init(&g, seed);
    for (int i = 0; i < N_LAYERS; i++)
        rng_fill_normal(&g, md->a[i].params, md->a[i].n_params, 0.0f, 0.3f);
}
struct adapter_io_files aio_dir_files(void)
{
    return (struct adapter_io_files){ .dir = aio_tmpdir };
}

const size_t aio_fixture_dims[N_LAYERS][2] = { { 16, 16 }, { 48, 16 }, { 16, 48 } };

void aio_check_expected(const char *dir, struct io_model *md, double rtol)
{
    char exp_path[400];
    struct st_file *ex;

    snprintf(exp_path, sizeof exp_path, "%s/expected.safetensors", dir);
    ck_assert_int_eq(st_open(&ex, exp_path), RL_OK);
    for (int i = 0; i < N_LAYERS; i++) {
        size_t di = aio_fixture_dims[i][1], dout = aio_fixture_dims[i][0];
        float *x = xcalloc(N_ROWS * di, sizeof(float)), *want = xcalloc(3 * dout, sizeof(float));
        float *y = xcalloc(N_ROWS * dout, sizeof(float));
        char kx[128], ky[128];

        /* the fixtures have 3 rows; N_ROWS >= 3, the rest zero */
        snprintf(kx, sizeof kx, "x.%s", io_layer_paths[i]);
        snprintf(ky, sizeof ky, "y.%s", io_layer_paths[i]);
        ck_assert_int_eq(st_load_f32(ex, kx, 2, (const int64_t[]){ 3, (int64_t)di }, x), RL_OK);
        ck_assert_int_eq(st_load_f32(ex, ky, 2, (const int64_t[]){ 3, (int64_t)dout }, want), RL_OK);
        adapter_forward(&md->a[i], x, y, N_ROWS);
        ck_assert_uint_eq(tensor_compare(ky, y, want, 3 * dout, 1e-5, rtol), 0);
        ck_assert_double_gt(test_max_abs(want, 3 * dout), 1e-3);
        free(x);
        free(want);
        free(y);
    }
    st_close(ex);
}
