/*
 * safetensors.h: read and write the safetensors tensor format
 * (huggingface/safetensors; facts in shared/reference/clip.md section 1).
 *
 * File layout: u64 little-endian N, N bytes of UTF-8 JSON (the header), then
 * the data section. Each header entry is
 *     "name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}
 * with offsets relative to the data section, plus an optional
 * "__metadata__": {"key": "value", ...} string map.
 *
 * Reading validates the file the way the reference reader does
 * (Metadata::validate in safetensors/src/tensor.rs) and treats the input as
 * hostile: N <= 100,000,000 and 8 + N <= size; the header is UTF-8 JSON, an
 * object, with no duplicate names; every dtype is one the reference knows;
 * shapes are arrays of non-negative integers; prod(shape) * dtype size is
 * computed with overflow checks and equals end - begin; sorted by offset,
 * the tensors start at 0, are contiguous with no gap or overlap, and the
 * last one ends exactly at the end of the file. Any failure returns
 * RL_ERR_FORMAT (RL_ERR_IO when the file cannot be opened or read) with one
 * line from rl_error_set naming the file and the problem.
 *
 * Every dtype of the reference is accepted in the header (so a Hugging Face
 * CLIP checkpoint with its I64 `position_ids` opens), but st_read_f32
 * converts only F32, F16, BF16, F64 and the integer/BOOL types; the F8 and
 * complex types give RL_ERR_FORMAT naming the tensor. The sub-byte types
 * (F4, F6_*) and unknown dtype strings are rejected when the file is opened.
 *
 * Ownership:
 *   - st_open maps the file (read-only mmap) and owns the mapping; st_close
 *     unmaps it. Do not truncate a file while it is open.
 *   - st_open_memory BORROWS the caller's buffer: it must stay valid and
 *     unchanged until st_close. Nothing is copied.
 *   - struct st_info pointers (st_info_at, st_find) and metadata strings
 *     belong to the st_file and die with st_close.
 *   - st_read_f32 writes into a caller buffer of info->numel floats.
 *   - The writer copies names, shapes and metadata strings, but BORROWS the
 *     float data pointers: they must stay valid until st_writer_write* has
 *     returned (or st_writer_free).
 *
 * Reading, with the model-loader helper that checks the shape:
 *
 *     struct st_file *f;
 *     int rc = st_open(&f, "model.safetensors");
 *     if (rc != RL_OK) return rc;                        // message already set
 *     float *w = xmalloc_array(512 * 768, sizeof(float));
 *     rc = st_load_f32(f, "visual_projection.weight", 2, (const int64_t[]){512, 768}, w);
 *     // on a missing tensor or a wrong shape: RL_ERR_FORMAT, e.g.
 *     // "model.safetensors: tensor 'visual_projection.weight' has shape [512, 1024], expected [512, 768]"
 *     st_close(f);
 *
 * Listing a file:
 *
 *     for (size_t i = 0; i < st_count(f); i++) {
 *         const struct st_info *t = st_info_at(f, i);     // sorted by name
 *         printf("%s %s ndim=%d numel=%zu\n", t->name, st_dtype_name(t->dtype), t->ndim, t->numel);
 *     }
 *
 * Writing (names sorted; data laid out as the reference writer does):
 *
 *     struct st_writer *w = st_writer_new();
 *     st_writer_add(w, "lora_A.weight", a, 2, (const int64_t[]){r, d_in}, ST_F32);
 *     st_writer_add(w, "lora_B.weight", b, 2, (const int64_t[]){d_out, r}, ST_BF16);
 *     st_writer_set_metadata(w, "format", "pt");
 *     rc = st_writer_write(w, "adapter.safetensors");   // temp file + rename
 *     st_writer_free(w);
 *
 * Byte order: the host must be little-endian (checked at compile time).
 */
#ifndef RANDLORA_MODELS_SAFETENSORS_H
#define RANDLORA_MODELS_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

/* The reference's dtype enum, in its order (increasing alignment). */
enum st_dtype {
    ST_BOOL, ST_U8, ST_I8, ST_F8_E5M2, ST_F8_E4M3, ST_I16, ST_U16, ST_F16, ST_BF16,
    ST_I32, ST_U32, ST_F32, ST_F64, ST_I64, ST_U64,
    ST_F8_E8M0, ST_F8_E4M3FNUZ, ST_F8_E5M2FNUZ, ST_C64,
    ST_DTYPE_COUNT
};

#define ST_MAX_DIMS          16
#define ST_MAX_HEADER_SIZE   100000000u   /* the reference's MAX_HEADER_SIZE */

struct st_info {
    const char   *name;
    enum st_dtype dtype;
    int           ndim;                /* 0 for a scalar */
    int64_t       shape[ST_MAX_DIMS];
    size_t        numel;               /* product of shape (1 for a scalar) */
    size_t        nbytes;              /* numel * st_dtype_size(dtype)      */
    size_t        offset;              /* begin, relative to the data section */
};

struct st_file;

/* Open and validate a file (mmap). On failure *out is NULL. */
int st_open(struct st_file **out, const char *path);

/* Validate a file image in memory, borrowed until st_close. `name` is used
 * in messages (NULL: "<memory>"); it is copied. */
int st_open_memory(struct st_file **out, const void *data, size_t size, const char *name);

void st_close(struct st_file *f);                      /* NULL is fine */

const char *st_path(const struct st_file *f);           /* as given to open */
size_t st_count(const struct st_file *f);
const struct st_info *st_info_at(const struct st_file *f, size_t i);  /* by name */
const struct st_info *st_find(const struct st_file *f, const char *name); /* or NULL */

/* __metadata__: number of pairs, pair i (sorted by key), lookup (or NULL). */
size_t st_metadata_count(const struct st_file *f);
void st_metadata_at(const struct st_file *f, size_t i, const char **key, const char **value);
const char *st_metadata_get(const struct st_file *f, const char *key);

/* The tensor's raw little-endian bytes (info->nbytes of them; may be unaligned). */
const void *st_data(const struct st_file *f, const struct st_info *t);

/* Convert the tensor to float32 into out[0 .. t->numel). */
int st_read_f32(const struct st_file *f, const struct st_info *t, float *out);

/* Find `name`, check its shape equals shape[0..ndim) and read it as float32:
 * the loader of weights (models, adapters). RL_ERR_FORMAT naming the tensor
 * and the file when it is missing, when its shape differs (both shapes in
 * the message), when its dtype cannot be converted, and when a value is NaN
 * or infinite ("tensor 'NAME' has a non-finite value (nan) at element I";
 * I is the first such flat index; out is then partly written). */
int st_load_f32(const struct st_file *f, const char *name, int ndim, const int64_t *shape,
                float *out);

/* Dtype names as in the header ("F32", ...), sizes in bytes; -1 / 0 if unknown. */
const char *st_dtype_name(enum st_dtype dt);
size_t st_dtype_size(enum st_dtype dt);
int st_dtype_from_name(const char *s);

/* Scalar conversions (IEEE binary16 with subnormals/Inf/NaN; bfloat16),
 * float -> half rounding to nearest, ties to even; NaN stays NaN. */
float    st_f16_to_f32(uint16_t h);
uint16_t st_f32_to_f16(float f);
float    st_bf16_to_f32(uint16_t h);
uint16_t st_f32_to_bf16(float f);

/* Writer. */
struct st_writer;

struct st_writer *st_writer_new(void);               /* aborts on OOM */
void st_writer_free(struct st_writer *w);            /* NULL is fine */

/* Add a float32 tensor stored as `dtype` (ST_F32, ST_F16 or ST_BF16).
 * `data` (numel floats) is borrowed; name and shape are copied. RL_ERR_ARG
 * for a duplicate or empty name, "__metadata__", a name that is not UTF-8,
 * a bad shape or dtype. */
int st_writer_add(struct st_writer *w, const char *name, const float *data,
                  int ndim, const int64_t *shape, enum st_dtype dtype);

/* Set (or replace) a __metadata__ pair; both strings copied. */
int st_writer_set_metadata(struct st_writer *w, const char *key, const char *value);

/* Write to `path` through a temporary file in the same directory and
 * rename(), so a reader never sees a half-written file. RL_ERR_IO naming
 * the path on failure. */
int st_writer_write(const struct st_writer *w, const char *path);

/* Serialize to a malloc'd buffer (*buf, *size); the caller frees *buf. */
int st_writer_write_memory(const struct st_writer *w, void **buf, size_t *size);

#endif /* RANDLORA_MODELS_SAFETENSORS_H */
