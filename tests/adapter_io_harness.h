/*
 * adapter_io_harness.h: what the peft-format suites share (check_adapter_io.c,
 * check_adapter_io_hostile.c): a temporary directory to export into, and a
 * small model of three adapted layers of one method. Failures abort the
 * test (Check).
 */
#ifndef RANDLORA_TESTS_ADAPTER_IO_HARNESS_H
#define RANDLORA_TESTS_ADAPTER_IO_HARNESS_H

#include <stddef.h>
#include <stdint.h>

#include "methods/adapter.h"
#include "methods/adapter_io.h"

#define N_ROWS 4
#define Q_PROJ "text_model.encoder.layers.0.self_attn.q_proj"
#define FC1    "text_model.encoder.layers.0.mlp.fc1"
#define FC2    "text_model.encoder.layers.0.mlp.fc2"

/* a fresh directory /tmp/rl_aio_XXXXXX; aio_tmp_path gives a file in it
 * (one of two rotating static buffers); aio_remove_tmpdir removes the files
 * the suites write there and the directory */
extern char aio_tmpdir[64];
void aio_make_tmpdir(void);
const char *aio_tmp_path(const char *name);
void aio_remove_tmpdir(void);
/* the adapter files in aio_tmpdir under their standard names */
struct adapter_io_files aio_dir_files(void);

/* a small model: three adapted layers of one method, named like CLIP's
 * linears: square, d_in < d_out (RandLoRA case 1), d_out < d_in (case 2) */
#define N_LAYERS 3
extern const char *const io_layer_paths[N_LAYERS];
extern const size_t io_layer_dims[N_LAYERS][2];

struct io_model {
    struct adapter_method m;
    struct adapter a[N_LAYERS];
    struct adapter_io_module mods[N_LAYERS];
};

/* the method for N_ROWS rows and its three adapters (eval mode) */
void io_model_init(struct io_model *md, const struct adapter_cfg *cfg);
void io_model_free(struct io_model *md);
/* every trainable parameter ~ N(0, 0.3^2) from seed */
void io_model_randomize(struct io_model *md, uint64_t seed);

/* The peft fixtures' three layers (q_proj 16x16, fc1 48x16, fc2 16x48):
 * each adapter's branch on the 3 rows "x.<path>" of dir/expected.safetensors
 * equals "y.<path>" within 1e-5 absolute and rtol relative; the expected
 * values are not all tiny. */
extern const size_t aio_fixture_dims[N_LAYERS][2];
void aio_check_expected(const char *dir, struct io_model *md, double rtol);

#endif /* RANDLORA_TESTS_ADAPTER_IO_HARNESS_H */
