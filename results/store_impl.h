/*
 * store_impl.h: INTERNAL to results/store*.c, not part of the public API
 * (that is store.h). The layout constants, struct store and the helpers the
 * parts of the store share:
 *   store.c         HDF5 errors, store basics, opening files, objects and checks
 *   store_write.c   writing helpers, store_create, SWMR writing, store_finish
 *   store_read.c    opening, validation and the readers
 *   store_tensor.c  phase 3: tensors, scalars and attributes
 *   store_resume.c  store_resume
 *   store_commit.c  the working copy and its commit (store_finish,
 *                   store_open_rw, store_commit), the fault hook
 *   store_heap.c    the check of the global heaps before variable-length reads
 */
#ifndef RESULTS_STORE_IMPL_H
#define RESULTS_STORE_IMPL_H

#include <hdf5.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "results/store.h"

enum store_mode { MODE_READ, MODE_SWMR, MODE_RW };

#define N_TRAIN 5
#define N_EVAL  3
#define N_CKPT  8
#define RNG_WORDS 6
#define CURVE_CHUNK 1024
/* largest dataset a reader will allocate for, in elements (hostile sizes) */
#define READ_MAX_ELEMS ((hsize_t)1 << 32)
/* largest string (config, attribute) a reader accepts, in bytes */
#define READ_MAX_STRING ((size_t)64 << 20)
/* metadata read attempts of a SWMR reader (see store_i_file_open_lock) */
#define SWMR_READ_ATTEMPTS 24

extern const char *const store_i_train_names[N_TRAIN];
extern const char *const store_i_eval_names[N_EVAL];
enum { CK_CURRENT, CK_STEP, CK_TRAIN_ROWS, CK_EVAL_ROWS, CK_RNG, CK_PARAMS, CK_M, CK_V };
extern const char *const store_i_ckpt_names[N_CKPT];

struct store {
    char           *path;
    hid_t           file;
    enum store_mode mode;
    bool            swmr_read;        /* opened with H5F_ACC_SWMR_READ            */
    bool            heaps_checked;    /* store_i_check_heaps passed               */
    hid_t           train[N_TRAIN];   /* open while mode == MODE_SWMR, else -1    */
    hid_t           eval[N_EVAL];
    hid_t           ckpt[N_CKPT];
    size_t          train_rows, eval_rows;
    size_t          n_trainable;
    size_t          flush_every, since_flush;
    int64_t         current;          /* writer: current checkpoint slot or -1    */
    char           *work_path;        /* the working copy written instead of path
                                         until store_commit renames it; NULL when
                                         the store writes path itself            */
};

#define ANY_DIM ((hsize_t)-1)

/* store.c */
void store_i_h5_quiet(void);
void store_i_h5_keep(void);
void store_i_keep_errno(int err);
__attribute__((format(printf, 2, 3)))
int store_i_h5_error(int status, const char *fmt, ...);
struct store *store_new(const char *path);
void store_i_close_handles(struct store *s);
int store_i_close(struct store *s, bool report);
hid_t store_i_file_open_lock(const char *path, unsigned flags, bool create, bool clear_flags, bool lock,
                     char why[192]);
hid_t store_i_file_open(const char *path, unsigned flags, bool create, bool clear_flags, char why[192]);
int store_i_obj_exists(hid_t file, const char *path);
H5I_type_t store_i_obj_kind(hid_t file, const char *path);
int store_i_ds_open(struct store *s, const char *path, H5T_class_t cls, size_t elsize,
            int rank, const hsize_t *want, hsize_t *dims, hid_t *out);
int store_i_attr_open(struct store *s, const char *obj, const char *name, H5T_class_t cls, hid_t *out,
              hid_t *type_out);
int store_i_read_string(struct store *s, hid_t id, hid_t t, bool is_attr, const char *what, char **out);

/* store_write.c */
int store_i_attr_write_str(struct store *s, const char *obj, const char *name, const char *value);
int store_i_attr_write_i64(struct store *s, const char *obj, const char *name, int64_t v);
int store_i_attr_write_f64(struct store *s, const char *obj, const char *name, double v);
int store_i_start_swmr(struct store *s);

/* store_heap.c */
/* Before HDF5 reads variable-length data of the open file: every global heap
 * collection in it whole (once per store). RL_ERR_FORMAT naming the file
 * and the byte offset of a corrupt collection. */
int store_i_check_heaps(struct store *s);

/* store_commit.c */
/* Before each write to a file (HDF5 create, write, extend, flush, close; the
 * commit's copy, fsync and rename): 0 to go on, 1 when the test hook
 * (store_set_fault_hook) makes this write fail, its cause kept for
 * store_i_h5_error. Use: if (store_i_fault() || H5Dwrite(...) < 0) fail. */
int store_i_fault(void);
/* "<path>.tmp": where the working copy of path is written (allocated) */
char *store_i_work_name(const char *path);
/* remove an uncommitted working copy (the file at path is untouched) */
void store_i_discard_work(struct store *s);
/* Copy s->path to the working copy and open that read-write (MODE_RW),
 * clearing a dead writer's "open for write" flags when clear_flags; a copy
 * HDF5 will not open gives open_status (RL_ERR_WRITE for the writer's own
 * file, RL_ERR_IO for a file given to store_open_rw). */
int store_i_open_work(struct store *s, int open_status, bool clear_flags);

/* store_read.c */
int store_i_read_i64_at(struct store *s, const char *path, int64_t *v);
int store_i_read_f64_at(struct store *s, const char *path, double *v);
int store_i_validate(struct store *s);
int store_i_check_is_hdf5(const char *path);
int store_i_group_rows(struct store *s, const char *group, const char *const *names, int count, size_t *rows);

#endif
