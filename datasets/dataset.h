/*
 * dataset.h: every data source behind one vtable, opened from a spec string.
 *
 * Specs (one string, used by every command; an optional ":train" or ":test"
 * suffix picks the split, train when absent):
 *
 *     fashion-mnist[:DIR]   Fashion-MNIST IDX files (default DIR
 *                           /usr/share/datasets/fashion-mnist, Debian's
 *                           dataset-fashion-mnist), class names built in
 *     idx:DIR               MNIST-format IDX files, plain or gzip
 *                           (train-images-idx3-ubyte[.gz], ...)
 *     cifar10:DIR           CIFAR-10 binary (data_batch_1..5.bin, test_batch.bin,
 *                           batches.meta.txt)
 *     cifar100:DIR          CIFAR-100 binary, fine labels (train.bin, test.bin,
 *                           fine_label_names.txt)
 *     cifar100-coarse:DIR   the same files, the 20 coarse labels
 *     folder:DIR            class-per-folder PNG/JPEG: DIR/train/CLASS/IMAGE,
 *                           DIR/test/CLASS/IMAGE (DIR/val/... for ":val"),
 *                           optional DIR/classnames.txt and DIR/templates.txt
 *     zhou:FILE.json        a published split file (CoOp's split_zhou_NAME.json:
 *                           "train", "val", "test" lists of [path, label,
 *                           classname]), images relative to its folder or to
 *                           one sub-folder of it; ":val" opens "val"
 *     (an optional ":val" suffix picks the validation split of the readers
 *      that have one)
 *     shapes                procedural RGB scenes with captions; label = kind of
 *                           the first shape named in the caption
 *     shapes-count          the same scenes; label = number of shapes - 1
 *
 *     struct dataset ds;
 *     int rc = dataset_open(&ds, "fashion-mnist:test");
 *     if (rc != RL_OK) { fprintf(stderr, "randlora: %s\n", rl_error_msg()); return rl_exit_code(rc); }
 *     struct ds_image img = {0};
 *     int label;
 *     for (size_t i = 0; i < ds.n; i++) {
 *         rc = dataset_load(&ds, i, &img, &label);   // img.data: uint8, HWC
 *         ...
 *     }
 *     ds_image_free(&img);
 *     dataset_close(&ds);
 *
 * Images come out as uint8, interleaved HWC (row-major rows, channels of a
 * pixel adjacent), 1 channel (gray) or 3 (RGB). Readers with a fixed geometry
 * set ds.channels/height/width; readers whose images vary (folder) set
 * height = width = 0 and every loaded image carries its own size.
 *
 * Thread safety: after dataset_open returns, dataset_load, dataset_label and
 * dataset_caption may be called concurrently from several threads, each with
 * its own struct ds_image.
 *
 * Every failure returns an rl_status and leaves one line in rl_error_msg()
 * naming the file and the problem; bad input never crashes.
 */
#ifndef RANDLORA_DATASETS_DATASET_H
#define RANDLORA_DATASETS_DATASET_H

#include <stddef.h>
#include <stdint.h>

enum ds_split {
    DS_TRAIN = 0,
    DS_TEST  = 1,
    DS_VAL   = 2,    /* ":val": only readers with has_val (folder, zhou) */
};

/* A decoded image: uint8 HWC. `data` is owned and reused by dataset_load
 * (grown as needed); release with ds_image_free. Start from {0}. */
struct ds_image {
    uint8_t *data;
    int      channels;   /* 1 (gray) or 3 (RGB) */
    int      height;
    int      width;
    size_t   cap;        /* bytes allocated at data */
};

struct dataset;

/* One reader. Each reader file defines one `const struct dataset_ops` with
 * designated initialisers and keeps everything else static. */
struct dataset_ops {
    const char *name;    /* spec prefix: "idx", "cifar10", ...              */
    const char *usage;   /* one line for the list of specs: "idx:DIR  ..."  */
    int         arg;     /* 0: takes no ":ARG"; 1: optional; 2: required   */
    int         has_val; /* 1: opens DS_VAL (a ":val" spec) too             */
    /* Fill ds (n, n_classes, class_names, geometry, impl). `arg` is the text
     * after "name:" with the split suffix removed, or NULL. On failure the
     * reader frees what it allocated; dataset_open clears ds. */
    int  (*open)(struct dataset *ds, const char *arg, enum ds_split split);
    /* Item i < ds->n into img (grown as needed) and *label. */
    int  (*load)(const struct dataset *ds, size_t i, struct ds_image *img, int *label);
    /* Label of item i without decoding its image. */
    int  (*label)(const struct dataset *ds, size_t i);
    /* Optional (NULL: no captions): caption of item i into buf (NUL-terminated,
     * truncated to cap). Returns RL_OK or an error. */
    int  (*caption)(const struct dataset *ds, size_t i, char *buf, size_t cap);
    /* Free impl (class names and templates are freed by dataset_close). */
    void (*close)(struct dataset *ds);
};

struct dataset {
    const struct dataset_ops *ops;
    void          *impl;          /* the reader's state                       */
    char          *spec;          /* the spec it was opened from (owned)      */
    enum ds_split  split;
    size_t         n;             /* number of items                          */
    int            n_classes;
    char         **class_names;   /* n_classes owned strings                  */
    char         **templates;     /* prompt templates with "{}" (owned), or NULL */
    int            n_templates;
    int            channels;      /* 1 or 3                                   */
    int            height;        /* 0 when images vary in size               */
    int            width;         /* 0 when images vary in size               */
};

/* Open a dataset from a spec (see above). An unknown spec gives RL_ERR_ARG
 * with the list of known ones. */
int  dataset_open(struct dataset *ds, const char *spec);
void dataset_close(struct dataset *ds);

/* Item i: image (uint8 HWC) and label in [0, n_classes). */
int  dataset_load(const struct dataset *ds, size_t i, struct ds_image *img, int *label);
/* Label of item i, or -1 if i is out of range. */
int  dataset_label(const struct dataset *ds, size_t i);
/* All labels: a new array of ds->n ints (caller frees). */
int *dataset_labels(const struct dataset *ds);
/* Caption of item i; RL_ERR_NA when the dataset has none. */
int  dataset_caption(const struct dataset *ds, size_t i, char *buf, size_t cap);

/* The known specs, one per line (for usage messages). */
const char *dataset_specs_help(void);

/* --- helpers for the readers ------------------------------------------- */

/* Make img hold channels x height x width bytes (grows data). RL_ERR_FORMAT
 * when the size overflows or exceeds DS_MAX_PIXELS; RL_ERR_NOMEM if no memory. */
#define DS_MAX_PIXELS ((size_t)1 << 28)
int  ds_image_reserve(struct ds_image *img, int channels, int height, int width);
void ds_image_free(struct ds_image *img);

/* Read a small text file into an array of its non-empty lines (trailing
 * whitespace and CR removed). RL_OK with *lines set; RL_ERR_NA if the file does
 * not exist; RL_ERR_IO / RL_ERR_FORMAT otherwise. */
int  ds_read_lines(const char *path, char ***lines, int *n_lines, int max_lines);
void ds_free_lines(char **lines, int n);

/* Class names "0", "1", ... */
char **ds_numbered_names(int n);

/* Readers of image files named by path (folder.c, zhou.c): ds->impl is a
 * struct ds_files (owned, freed by ds_files_close), images decoded when
 * loaded, as RGB. */
struct ds_files {
    char **paths;   /* n full paths */
    int   *labels;  /* n            */
    size_t n;
};
int  ds_files_load(const struct dataset *ds, size_t i, struct ds_image *img, int *label);
int  ds_files_label(const struct dataset *ds, size_t i);
void ds_files_close(struct dataset *ds);

/* Fuzzing entry points: parse one file and drop the result. */
int idx_read_file(const char *path, unsigned ndims);   /* ndims 1 (labels) or 3 (images) */

/* The readers, for the registry in dataset.c. */
extern const struct dataset_ops dataset_idx_ops;
extern const struct dataset_ops dataset_fashion_mnist_ops;
extern const struct dataset_ops dataset_cifar10_ops;
extern const struct dataset_ops dataset_cifar100_ops;
extern const struct dataset_ops dataset_cifar100_coarse_ops;
extern const struct dataset_ops dataset_folder_ops;
extern const struct dataset_ops dataset_zhou_ops;

/* Fuzzing and tests: parse a split file's text (zhou.c) for `split`, the
 * image root not looked for; RL_OK or RL_ERR_FORMAT naming `where`. */
int zhou_parse_text(const char *text, size_t len, const char *where, enum ds_split split,
                    size_t *n_items, int *n_classes);
extern const struct dataset_ops dataset_shapes_ops;
extern const struct dataset_ops dataset_shapes_count_ops;

#endif /* RANDLORA_DATASETS_DATASET_H */
