/*
 * store.h: the results file of one run (HDF5, schema_version 1).
 *
 * One file per run. Layout (little-endian file types; strings are
 * variable-length UTF-8; "attr" = HDF5 attribute, everything else a dataset):
 *
 *   /                 attr schema_version (int64 = 1), harness_version,
 *                     git_commit, created_utc ("2025-01-31T12:00:00Z"), host,
 *                     threads, blas, precision ("fp32" | "bf16"), bf16_gemm
 *                     (oneDNN's version, ISA and matmul kernel for a bf16
 *                     run, "" for fp32) (strings; files written before
 *                     precision was recorded lack the last two)
 *   /config           scalar string: the resolved run configuration (INI text)
 *   /method           attr method, profile (strings), rank (int64), alpha
 *                     (float64), n_trainable, n_frozen_shared (int64)
 *   /data             attr spec (string), shots (int64, 0 when a fraction is
 *                     used), fraction (float64, 0 when shots are used),
 *                     sampling_seed (uint64); val (string: the data.val
 *                     value, "" when the run has no validation split),
 *                     val_spec (string: the dataset /data/val_index indexes,
 *                     the train spec when held out of the pool; "" when none)
 *   /data/train_index int64[n]: the sampled training indices
 *   /data/val_index   int64[n]: the validation items (empty when none)
 *   /train/step       int64[rows]   } 1-D, chunked (1024), unlimited,
 *   /train/{loss,lr,grad_norm,wall_s} float64[rows]  } appended live (SWMR);
 *   /eval/step        int64[rows]   } fill values: step -1, floats NaN
 *   /eval/{accuracy,loss} float64[rows]; /eval attr split (string): "val"
 *                     when the rows evaluate the validation split, "test"
 *                     when they evaluate the test (eval) set
 *   /checkpoint/current     int64 scalar: slot (0 or 1) of the last complete
 *                           checkpoint, -1 when none was written
 *   /checkpoint/step        int64[2]          } one entry per slot
 *   /checkpoint/train_rows  int64[2]          } rows of /train and /eval
 *   /checkpoint/eval_rows   int64[2]          } valid at that checkpoint
 *   /checkpoint/rng         uint64[2][6]      } xoshiro s[0..3], the Box-Muller
 *                                               spare (double bits), has_spare
 *   /checkpoint/{params,adam_m,adam_v} float32[2][n_trainable]
 *   /final/{accuracy,loss,images_per_s} float64 scalars (NaN until written),
 *   /final/peak_rss_bytes int64, /final/completed int64 (0, 1 once written)
 *   /final/{val_accuracy,val_loss} float64 scalars: the final evaluation on
 *                     the validation split (NaN when the run has none);
 *                     /final/{accuracy,loss} are always the test set's
 *
 * Files written before the validation split lack /data/val_index, the /data
 * attributes val and val_spec, /eval's split and /final/val_*: they still
 * open, read and resume; the readers report them as no split (an empty
 * index, split "test", NaN and has_val false).
 *   /adapter/<layer>/<tensor>   float32 tensors       } written after training
 *   /analysis/<layer>/<name>    tensors and scalars   } (phase 2, below)
 *
 * Life cycle of the writer (SWMR: single writer, many readers):
 *
 *   1. store_create: creates "<path>.tmp" with H5F_LIBVER_LATEST and EVERY
 *      object of phase 1 (all of the above except /adapter and /analysis
 *      contents), writes the metadata, calls H5Fstart_swmr_write and renames
 *      the file to path: path never holds a half-made layout. From here on
 *      no group, dataset or attribute can be created (SWMR forbids it); only
 *      the pre-created datasets are extended or overwritten.
 *   2. store_append_train / store_append_eval / store_write_checkpoint while
 *      training. Readers (store_open, `randlora info`, plots) can open the
 *      file meanwhile and see the rows flushed so far.
 *   3. store_finish: closes the SWMR writer (the file is now an unfinished
 *      run, closed cleanly), copies it to "<path>.tmp", the working copy, and
 *      opens that read-write without SWMR. Everything after goes into the
 *      working copy: /adapter and attributes (store_write_tensor,
 *      store_attr_set_*), then store_write_final (/final and, last,
 *      /final/completed = 1).
 *   4. store_commit: closes the working copy (checked), fsyncs it, renames it
 *      over path and fsyncs the directory. store_close without store_commit
 *      removes the working copy and leaves path as it was.
 *
 * Commit (what a process killed at any instant leaves): before the rename,
 * path is the unfinished run (phases 1-2: the SWMR file; after
 * store_finish: the same, closed cleanly), which store_resume continues from
 * its last checkpoint; after it, path is the complete file, adapter and
 * final records included. /final/completed = 1 is never in a file without
 * the rest. A leftover "<path>.tmp" is garbage (store_resume removes it).
 * store_open_rw (adding /analysis to a finished file) works the same way:
 * it opens a working copy and store_commit replaces the file with it. The
 * copy costs a read and a write of the file (copy_file_range: in the
 * kernel, or a reflink where the file system has them) and the file's size
 * in free space for a moment; a checkpoint holds 6 * n_trainable floats.
 *
 * Failures: every write (an HDF5 create, write, extend or flush, a close,
 * the copy, fsync and rename) that fails returns RL_ERR_WRITE with one line
 * naming the file and the cause ("run.h5: /train/loss: cannot append row 12
 * (HDF5: No space left on device)"); the caller stops and store_close's
 * the store, which reports a failing close too. The file is then what a kill
 * at that moment leaves (above): resumable once the disk has room. HDF5's
 * own exit-time close is switched off (H5dont_atexit), so a file whose
 * close failed is not closed again at exit. For tests, store_set_fault_hook
 * is called before each write and can fail it or end the process there.
 *
 * Flushing: store_append_train flushes the
 * five /train datasets every `flush_every` appends (default 1: every row);
 * store_append_eval and store_write_checkpoint flush every
 * dataset. A flush is H5Dflush on each dataset (a few write(2) calls, no
 * fsync): measured about 22 us per appended row with flush_every = 1 against
 * 8 us at 10 and 6 us at 100, negligible against a training step of
 * milliseconds or more; raise flush_every only for very fast steps, knowing
 * that up to flush_every - 1 rows after the last flush can be lost. If the writer dies in phases 1-2 the
 * file holds every flushed row and the last complete checkpoint; it opens with
 * store_open (SWMR read) and continues with store_resume. (HDF5 1.10 marks
 * such a file "open for write": h5dump refuses it until `h5clear -s FILE`;
 * store_open and `randlora info` read it as is.)
 *
 * Checkpoints are double-buffered: store_write_checkpoint fills the slot that
 * is not current, flushes, then flips /checkpoint/current and flushes again,
 * so a writer killed half-way through a checkpoint leaves the previous one
 * intact. The price is twice the checkpoint storage (3 * 2 * n_trainable
 * floats). During training only the death of the process is covered, not
 * of the machine (no fsync per step); the commit is fsynced.
 *
 * Resume: store_resume reopens a file whose writer is gone, truncates /train
 * and /eval back to the rows recorded with the current checkpoint
 * (H5Dset_extent), and restarts SWMR writing; the caller then reads the state
 * with store_read_checkpoint and continues appending. Never resume a file
 * whose writer is still running.
 *
 * Readers treat the file as hostile: a missing object, a wrong type class,
 * rank or size, or a schema_version other than 1 gives RL_ERR_FORMAT with one
 * line naming the file and the object. HDF5's own error printing is switched
 * off (H5Eset_auto) by every entry point here; its innermost message is
 * appended to ours where it helps.
 *
 * Ownership: the store owns its handles and copies what it needs from the
 * arguments (strings, index arrays); data pointers are only read during the
 * call. Functions named *_read_* with `**` outputs allocate with malloc and
 * the caller frees (free(), or store_free_names for name lists); others fill
 * caller-owned buffers of the size stated. Not thread-safe (nor is the
 * serial HDF5 library): use every store from one thread.
 *
 * Usage:
 *
 *     struct store_run_info info = { .harness_version = "0.1", .git_commit = commit,
 *         .threads = "blas=2 omp=2", .blas = "openblas pthreads", .config_text = ini,
 *         .method = "randlora", .rank = 6, .alpha = 1.0, .profile = "vision+text",
 *         .n_trainable = n, .n_frozen_shared = nf, .data_spec = "fashion-mnist",
 *         .shots = 4, .sampling_seed = 1, .train_index = idx, .n_train_index = n_idx };
 *     struct store *st;
 *     int rc = store_create(&st, "run.h5", &info);
 *     if (rc != RL_OK) { fprintf(stderr, "randlora: %s\n", rl_error_msg()); return rc; }
 *     for (step = 1; step <= steps; step++) {
 *         ...
 *         struct store_train_row row = { step, loss, lr, gnorm, wall };
 *         rc = store_append_train(st, &row);
 *         if (step % eval_every == 0) rc = store_append_eval(st, step, acc, eval_loss);
 *         if (step % ckpt_every == 0) rc = store_write_checkpoint(st, step, p, m, v, &rng);
 *     }
 *     rc = store_finish(st);
 *     size_t dims[2] = { r, d };
 *     rc = store_write_tensor(st, "/adapter/vision.0.q/lora_A", a, 2, dims);
 *     rc = store_write_final(st, &(struct store_final){ acc, loss, rss, ips });
 *     rc = store_commit(st);                  // now run.h5 is complete
 *     store_close(st);
 *
 *     // a reader
 *     struct store *rd;  int64_t *steps;  double *loss;  size_t n;
 *     if (store_open(&rd, "run.h5") == RL_OK &&
 *         store_read_curve(rd, "train", "loss", &steps, &loss, &n) == RL_OK) { ...; free(steps); free(loss); }
 *     store_close(rd);
 */
#ifndef RANDLORA_RESULTS_STORE_H
#define RANDLORA_RESULTS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/rng.h"

#define STORE_SCHEMA_VERSION 1
#define STORE_MAX_DIMS       8     /* rank limit of store_*_tensor */

struct store;                      /* opaque */

/* What store_create writes before training. NULL strings are stored as "". */
struct store_run_info {
    const char    *harness_version;
    const char    *git_commit;
    const char    *threads;          /* thread policy, e.g. threads_describe() */
    const char    *blas;             /* BLAS library and mode                  */
    const char    *precision;        /* train.precision: "fp32" or "bf16"      */
    const char    *bf16_gemm;        /* bf16 runs: the oneDNN line of
                                        gemm_bf16_describe (its ISA and matmul
                                        kernel); fp32 runs: ""                 */
    const char    *config_text;      /* the resolved INI text                  */

    const char    *method;           /* lora | vera | randlora | full | ...    */
    int64_t        rank;
    double         alpha;
    const char    *profile;          /* settings / target profile string       */
    size_t         n_trainable;      /* also the size of the checkpoint block  */
    size_t         n_frozen_shared;

    const char    *data_spec;
    int64_t        shots;            /* 0 when `fraction` is used              */
    double         fraction;         /* 0 when `shots` is used                 */
    uint64_t       sampling_seed;
    const int64_t *train_index;      /* n_train_index sampled indices          */
    size_t         n_train_index;
    const char    *val;              /* data.val as written; NULL/"": no split */
    const char    *val_spec;         /* the dataset val_index indexes          */
    const int64_t *val_index;        /* n_val_index validation items           */
    size_t         n_val_index;

    size_t         flush_every;      /* flush /train every K appends; 0 = 1    */
};

struct store_train_row {
    int64_t step;
    double  loss, lr, grad_norm, wall_s;
};

/* accuracy, loss: the test (eval) set. val_*: the validation split, written
 * only when has_val (a zero-initialised struct writes none: NaN stays); a
 * reader gets NaN and has_val false when the file has none. */
struct store_final {
    double  accuracy, loss;
    int64_t peak_rss_bytes;
    double  images_per_s;
    double  val_accuracy, val_loss;
    bool    has_val;
};

/* What a checkpoint records besides the three float blocks and the RNG. */
struct store_checkpoint_info {
    int64_t step;
    size_t  train_rows, eval_rows;   /* rows of /train and /eval it covers */
};

/* ---------------------------------------------------------------- writer */

/* Create (truncating) `path` with the whole phase-1 layout, write `info`,
 * start SWMR writing. *out is NULL on failure. RL_ERR_IO when the file cannot
 * be created, RL_ERR_ARG for a bad `info`. */
int store_create(struct store **out, const char *path, const struct store_run_info *info);

/* Append one row to /train (all five datasets). */
int store_append_train(struct store *s, const struct store_train_row *row);

/* Append one row to /eval and flush everything. */
int store_append_eval(struct store *s, int64_t step, double accuracy, double loss);

/* Write a checkpoint into the free slot, then make it current (see above).
 * params, m, v: n_trainable floats each (NULL allowed when n_trainable is 0).
 * The rows covered are the rows appended so far. */
int store_write_checkpoint(struct store *s, int64_t step, const float *params,
                           const float *m, const float *v, const struct rng *rng);

/* Write /final (val_* only when f->has_val) and set /final/completed = 1,
 * into the working copy: after store_finish, before store_commit
 * (RL_ERR_ARG otherwise). Call it after everything else the complete file
 * must hold. */
int store_write_final(struct store *s, const struct store_final *f);

/* Flush every dataset now (also done by the calls above as documented). */
int store_flush(struct store *s);

/* Leave SWMR mode (phase 3): close the SWMR writer, copy the file to its
 * working copy and open that read-write without SWMR. Readers that have the
 * file open keep reading it undisturbed (the commit renames a new file over
 * it; they see the complete one when they reopen). */
int store_finish(struct store *s);

/* Make the working copy (store_finish, store_open_rw) the file: close it,
 * fsync, rename over the file, fsync the directory (phase 4, "Commit"
 * above). Whatever the outcome the store's file is closed after it: only
 * store_close remains. RL_ERR_WRITE naming the file and the cause; the file
 * is then as it was before store_finish / store_open_rw. */
int store_commit(struct store *s);

/* Reopen the file of an interrupted writer (SWMR, phases 1-2) read-write,
 * truncate /train and /eval to the current checkpoint's rows (to 0 rows when
 * there is no checkpoint), and restart SWMR writing (flush_every 1). What
 * `h5clear -s -i 0` would do is done first: the dead writer's "open for
 * write" flags are cleared and the end of allocation grown to the file's
 * size. RL_ERR_ARG when the run was already completed (/final/completed = 1). */
int store_resume(struct store **out, const char *path);

/* Close the file and free the store; NULL is a no-op. An uncommitted working
 * copy is removed (the file keeps what it had). RL_ERR_WRITE when a writer's
 * close fails (what it had not flushed is lost; the file is what a kill would
 * have left), RL_OK otherwise. */
int store_close(struct store *s);

/* Tests: fn(ctx, n) is called before the n-th write of the process (n from
 * 1; store_i_fault in store_impl.h lists what counts as a write) and returns
 * 0 to let it happen or an errno value to make it fail with that cause; it
 * may also end the process (_exit) to leave the file as a kill at that
 * instant would. NULL removes the hook; setting it resets n. */
typedef int (*store_fault_fn)(void *ctx, unsigned long n);
void store_set_fault_hook(store_fault_fn fn, void *ctx);

/* ---------------------------------------------------------------- readers */

/* Open read-only, with SWMR read (so a file being written, or left by a
 * writer that died, opens too), falling back to an ordinary read-only open.
 * Checks schema_version and the phase-1 layout's types and ranks. RL_ERR_IO
 * when the file cannot be opened, RL_ERR_FORMAT when it is not HDF5 or not a
 * results file of this schema. */
int store_open(struct store **out, const char *path);

/* Open a working copy of a finished run read-write, for adding /analysis;
 * store_commit makes it the file, store_close alone drops it (the file is
 * never changed in place). The file must have been closed cleanly. */
int store_open_rw(struct store **out, const char *path);

/* The file's path (owned by the store). */
const char *store_path(const struct store *s);

/* n_trainable from /method (the size of each checkpoint block). */
size_t store_n_trainable(const struct store *s);

/* Rows of /train and /eval now (readers refresh first, so a live file's
 * latest flushed counts are returned). Either pointer may be NULL. */
int store_rows(struct store *s, size_t *train_rows, size_t *eval_rows);

/* One curve: /<group>/step and /<group>/<name> ("train", "loss"), both
 * allocated (caller frees; NULL with *n = 0 when empty); steps may be NULL if
 * not wanted. On a live file rows whose step still holds the fill value (-1)
 * at the end are dropped, and n is the shorter of the two datasets. */
int store_read_curve(struct store *s, const char *group, const char *name,
                     int64_t **steps, double **values, size_t *n);

/* The current checkpoint: RL_ERR_NA (with a message) when none was written.
 * params, m, v: caller-owned, store_n_trainable(s) floats each, or NULL to
 * skip; rng may be NULL. */
int store_read_checkpoint(struct store *s, struct store_checkpoint_info *info,
                          float *params, float *m, float *v, struct rng *rng);

/* /final; *completed is 0 (fields NaN / 0) until store_write_final ran. */
int store_read_final(struct store *s, struct store_final *f, int *completed);

/* /config text (allocated, caller frees). */
int store_read_config(struct store *s, char **text);

/* /data/train_index (allocated, caller frees; NULL when empty). */
int store_read_train_index(struct store *s, int64_t **index, size_t *n);

/* /data/val_index (allocated, caller frees; NULL with *n = 0 when empty or,
 * in a file older than the validation split, absent). */
int store_read_val_index(struct store *s, int64_t **index, size_t *n);

/* The split /eval's rows evaluate: "val" or "test" ("test" for a file older
 * than the attribute). Points to a static string. */
int store_read_eval_split(struct store *s, const char **split);

/* Does the object (group or dataset) `path` exist? */
bool store_has(struct store *s, const char *path);

/* Names of the members of group `path` (e.g. "/adapter"), sorted by name;
 * allocated, free with store_free_names. RL_ERR_FORMAT when `path` is not a
 * group; a missing group gives RL_ERR_NA and an empty list. */
int store_list(struct store *s, const char *path, char ***names, size_t *n);
void store_free_names(char **names, size_t n);

/* ------------------------------------------------- tensors and attributes */

/* Write a float32 tensor at `path` (e.g. "/adapter/vision.0.q/lora_A"),
 * creating missing groups and replacing an existing object of that name.
 * 1 <= ndim <= STORE_MAX_DIMS; stored chunked + shuffle + deflate(4) from
 * 16 KiB up. Only into a working copy (after store_finish or store_open_rw),
 * not while the writer is in SWMR mode (RL_ERR_ARG). */
int store_write_tensor(struct store *s, const char *path, const float *data,
                       size_t ndim, const size_t *dims);

/* Read a float32 tensor: *data allocated (caller frees), ndim and
 * dims[STORE_MAX_DIMS] filled. RL_ERR_FORMAT unless the dataset is float32 of
 * rank 1..STORE_MAX_DIMS. */
int store_read_tensor(struct store *s, const char *path, float **data,
                      size_t *ndim, size_t dims[STORE_MAX_DIMS]);

/* Scalar datasets (float64 / int64), created like tensors. */
int store_write_scalar(struct store *s, const char *path, double value);
int store_write_scalar_i64(struct store *s, const char *path, int64_t value);
int store_read_scalar(struct store *s, const char *path, double *value);
int store_read_scalar_i64(struct store *s, const char *path, int64_t *value);
/* A 1-D dataset of n UTF-8 strings (HDF5 variable-length strings), created
 * like tensors (a decoder run's generations, experiments/train_lm.c). */
int store_write_strings(struct store *s, const char *path, const char *const *v, size_t n);

/* Attributes of object `obj` ("/", "/method", ...). Setting replaces an
 * existing attribute and is refused in SWMR mode. get_string allocates. */
int store_attr_set_string(struct store *s, const char *obj, const char *name, const char *value);
int store_attr_set_int64(struct store *s, const char *obj, const char *name, int64_t value);
int store_attr_set_double(struct store *s, const char *obj, const char *name, double value);
int store_attr_get_string(struct store *s, const char *obj, const char *name, char **value);
int store_attr_get_int64(struct store *s, const char *obj, const char *name, int64_t *value);
int store_attr_get_uint64(struct store *s, const char *obj, const char *name, uint64_t *value);
int store_attr_get_double(struct store *s, const char *obj, const char *name, double *value);

#endif /* RANDLORA_RESULTS_STORE_H */
