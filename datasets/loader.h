/*
 * loader.h: batches of model inputs from a dataset, for training and
 * evaluation.
 *
 * Given an open dataset, a list of item indices (a few-shot sample, or every
 * item), a batch size and a transform (transforms.h: resize the shortest side
 * + center crop to t.size, gray -> RGB, mean/std; or, with t.augment, random
 * resized crop + flip), the loader yields batches of
 *     x       float (n, 3, size, size), CHW per image
 *     labels  int32 (n)
 *     index   the dataset item of each row (size_t, n)
 * in the order of the list, or shuffled per epoch.
 *
 *     struct loader_config cfg;
 *     struct loader *L;
 *     loader_config_init(&cfg, 32, 224);          // CLIP eval transform, seed 0
 *     cfg.shuffle = 1; cfg.transform.augment = 1; cfg.seed = seed;
 *     rc = loader_open(&L, &ds, idx, n_idx, &cfg);   // idx NULL: the first n_idx (0: all)
 *     for (long epoch = 0; epoch < n_epochs; epoch++) {
 *         struct loader_batch b;
 *         loader_epoch(L, epoch);
 *         while ((rc = loader_next(L, &b)) == RL_OK && b.n > 0)
 *             step(b.x, b.labels, b.n);
 *         if (rc != RL_OK) { ... rl_error_msg() names the file ... }
 *     }
 *     loader_close(L);
 *
 * Determinism. Everything random comes from cfg.seed: the order of epoch e is
 * a Fisher-Yates shuffle driven by a stream split from the seed by e, and the
 * augmentation in epoch e of the item at position p of the list by a stream
 * split from (seed, e, p). A batch therefore depends only on (seed, epoch,
 * batch number), never on timing, read-ahead, or what was read before: the
 * same seed gives the same batches bit for bit with read-ahead on or off, and
 * a run resumed at epoch e sees what it would have seen.
 *
 * Read-ahead. In-memory readers (IDX, CIFAR, shapes: fixed image size) are
 * decoded synchronously in loader_next. Streaming readers (folder: images of
 * varying size decoded from files) get a background thread that fills a ring
 * of `readahead` + 1 preallocated batch buffers, so while the caller works on
 * one batch the next one or two are being decoded. An error in that thread
 * (a file that does not decode) stops it and is returned by loader_next for
 * the batch that needed the file, as an rl_status with rl_error_msg() naming
 * the file; the error repeats on later calls until loader_epoch restarts.
 *
 * Memory. Every buffer (the ring, the order, the optional cache) is allocated
 * by loader_open; producing a batch allocates nothing in the loader (the
 * readers and the resize keep their own scratch, see transforms.c).
 *
 * Cache. cfg.cache keeps the transformed float tensor of every listed item
 * after its first use (n_idx * 3 * size * size floats, allocated at open),
 * for small evaluation sets read every epoch. It is refused with augmentation
 * (the tensors would change every epoch).
 *
 * Threads: one loader is used from one thread at a time.
 */
#ifndef RANDLORA_DATASETS_LOADER_H
#define RANDLORA_DATASETS_LOADER_H

#include <stddef.h>
#include <stdint.h>

#include "datasets/dataset.h"
#include "datasets/transforms.h"

#define LOADER_READAHEAD_AUTO (-1)
#define LOADER_READAHEAD_MAX  8

struct loader_config {
    int              batch_size;  /* > 0                                           */
    struct transform transform;   /* output side, rounding, mean/std, augmentation */
    uint64_t         seed;        /* order and augmentation                        */
    int              shuffle;     /* 1: a new order every epoch; 0: list order     */
    int              drop_last;   /* 1: drop the last partial batch of an epoch    */
    int              repeat;      /* 1: loader_next runs on into the next epoch
                                     (never returns n == 0); the read-ahead then
                                     crosses epoch boundaries too                  */
    int              readahead;   /* LOADER_READAHEAD_AUTO: 2 batches for streaming
                                     readers (ds->height == 0), 0 otherwise;
                                     0: decode in loader_next; 1..8: batches ahead  */
    int              cache;       /* 1: keep transformed tensors (no augmentation) */
};

/* One batch; the pointers stay valid until the next loader_next, loader_epoch
 * or loader_close on the same loader. */
struct loader_batch {
    const float   *x;        /* n x 3 x size x size                     */
    const int32_t *labels;   /* n                                       */
    const size_t  *index;    /* n dataset item numbers                  */
    int            n;        /* rows; 0 marks the end of the epoch      */
    long           epoch;
    size_t         batch;    /* number of the batch within its epoch    */
};

struct loader_stats {
    unsigned long batches;   /* batches returned                                 */
    unsigned long waits;     /* loader_next calls that found their batch unready */
    double        wait_s;    /* seconds spent waiting for the read-ahead thread  */
};

struct loader;

/* Defaults: the CLIP evaluation transform at image_size (transform_init_clip),
 * seed 0, no shuffle, keep the last partial batch, no repeat, automatic
 * read-ahead, no cache. */
void loader_config_init(struct loader_config *cfg, int batch_size, int image_size);

/* Open a loader over ds (which must stay open until loader_close) for the
 * items idx[0..n_idx) (copied), or with idx NULL for the first n_idx items
 * of ds (n_idx 0: every item; more than ds has: RL_ERR_ARG). Starts
 * at epoch 0. RL_ERR_ARG for a bad configuration, an index out of range or an
 * empty list, RL_ERR_NOMEM when the buffers cannot be had. */
int  loader_open(struct loader **out, const struct dataset *ds, const size_t *idx, size_t n_idx,
                 const struct loader_config *cfg);

/* Go to the first batch of `epoch` (>= 0). Called at the end of epoch e (or
 * right after loader_open for epoch 0) with e + 1, it keeps the batches
 * already read ahead for that epoch; otherwise it discards them and restarts
 * there (also mid-epoch, and after an error). */
int  loader_epoch(struct loader *L, long epoch);

/* The next batch. RL_OK with b->n > 0, or RL_OK with b->n == 0 at the end of
 * the epoch (never with cfg.repeat); otherwise the reader's error. */
int  loader_next(struct loader *L, struct loader_batch *b);

/* Batches in one epoch; items in the list. */
size_t loader_batches_per_epoch(const struct loader *L);
size_t loader_size(const struct loader *L);
/* 1 when a read-ahead thread runs. */
int  loader_threaded(const struct loader *L);
void loader_get_stats(const struct loader *L, struct loader_stats *s);

/* Stop and join the read-ahead thread (also mid-epoch) and free everything. */
void loader_close(struct loader *L);

#endif /* RANDLORA_DATASETS_LOADER_H */
