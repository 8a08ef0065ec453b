/*
 * loader.c: batches from a dataset, synchronous or with a read-ahead thread
 * (see loader.h).
 *
 * Batches are numbered by a sequence s = 0, 1, ... since the last
 * loader_epoch(L, E): batch s is batch s % nb of epoch E + s / nb (nb batches
 * per epoch). Batch s lives in slot s % n_slots of the ring. The consumer
 * holds the slot of the batch it last returned until its next call, so the
 * producer may fill batch s while s < released + n_slots, where `released`
 * counts the batches the consumer has given back: with n_slots = readahead + 1
 * that keeps `readahead` batches ready ahead of the one in use. The sequence
 * runs across epochs; without cfg.repeat the consumer stops at end_seq (the
 * end of its epoch) and loader_epoch(next epoch) moves end_seq on, keeping
 * what was read ahead, while any other loader_epoch restarts the sequence.
 *
 * The producer (the thread, or loader_next itself when there is none) owns the
 * order, the decode and transform scratch and the cache; the consumer owns the
 * stats; everything else is under the mutex. A restart or close bumps `gen`,
 * which the producer checks between items, so it abandons a batch within one
 * image decode; loader_epoch waits for it to be idle before resetting the ring.
 */
#include "datasets/loader.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/rng.h"
#include "core/status.h"
#include "core/timer.h"

#define LOADER_MAX_SIZE  4096
#define LOADER_MAX_BATCH (1 << 20)
#define RC_ABANDONED     1        /* internal: the batch was cancelled */

struct slot {
    float   *x;
    int32_t *labels;
    size_t  *index;
    int      n;
    long     epoch;
    size_t   batch;
    int      status;
    char     err[1024];
};

struct loader {
    const struct dataset *ds;
    struct loader_config  cfg;
    size_t               *items;      /* the list, n_items                         */
    size_t                n_items;
    size_t                nb;         /* batches per epoch                         */
    size_t                per_item;   /* floats per image: 3 * size * size         */
    struct rng            shuffle_root, aug_root;

    /* producer-owned */
    size_t               *order;      /* positions in the list, for order_epoch    */
    long                  order_epoch;
    struct ds_image       img;
    struct transform_work work;
    float                *cache;      /* n_items * per_item, or NULL               */
    unsigned char        *cached;     /* n_items flags                             */

    struct slot          *slots;
    int                   n_slots;
    int                   threaded;

    /* shared, under mu (gen and stop are also read without it) */
    pthread_t             thread;
    pthread_mutex_t       mu;
    pthread_cond_t        cv_prod;    /* producer waits for work                   */
    pthread_cond_t        cv_cons;    /* consumer waits for a batch or for idle    */
    long                  base_epoch;
    unsigned long long    prod_seq;   /* batches produced (ready or failed)        */
    unsigned long long    cons_seq;   /* batches returned to the consumer          */
    unsigned long long    released;   /* batches whose slot the consumer gave back */
    unsigned long long    end_seq;    /* where the consumer's epoch ends (no repeat) */
    int                   failed;     /* the producer stopped on an error          */
    int                   busy;       /* the producer is filling a slot            */
    atomic_uint           gen;
    atomic_int            stop;

    /* consumer-owned */
    struct loader_stats   stats;
};

void loader_config_init(struct loader_config *cfg, int batch_size, int image_size)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->batch_size = batch_size;
    transform_init_clip(&cfg->transform, image_size);
    cfg->seed = 0;
    cfg->readahead = LOADER_READAHEAD_AUTO;
}

/* --- producing one batch ------------------------------------------------------ */

static void make_order(struct loader *L, long epoch)
{
    struct rng r;

    for (size_t i = 0; i < L->n_items; i++)
        L->order[i] = i;
    rng_split(&r, &L->shuffle_root, (uint64_t)epoch);
    for (size_t i = L->n_items; i > 1; i--) {
        size_t j = (size_t)rng_below(&r, (uint64_t)i);
        size_t t = L->order[i - 1];

        L->order[i - 1] = L->order[j];
        L->order[j] = t;
    }
    L->order_epoch = epoch;
}

static int cancelled(struct loader *L, unsigned gen)
{
    return atomic_load(&L->stop) || atomic_load(&L->gen) != gen;
}

/* Fill slot with batch `seq` counted from epoch `base`. RL_OK, RC_ABANDONED,
 * or an error with its message in slot->err. */
static int fill_batch(struct loader *L, unsigned long long seq, long base, unsigned gen,
                      struct slot *slot)
{
    const struct loader_config *cfg = &L->cfg;
    const size_t B = (size_t)cfg->batch_size;
    long epoch = base + (long)(seq / L->nb);
    size_t b = (size_t)(seq % L->nb), start = b * B;
    size_t n = L->n_items - start < B ? L->n_items - start : B;
    struct rng er;

    if (cfg->shuffle && L->order_epoch != epoch)
        make_order(L, epoch);
    if (cfg->transform.augment)
        rng_split(&er, &L->aug_root, (uint64_t)epoch);
    for (size_t j = 0; j < n; j++) {
        size_t pos = cfg->shuffle ? L->order[start + j] : start + j;
        size_t item = L->items[pos];
        float *out = slot->x + j * L->per_item;
        int label, rc;

        if (cancelled(L, gen))
            return RC_ABANDONED;
        if (L->cache && L->cached[pos]) {
            memcpy(out, L->cache + pos * L->per_item, L->per_item * sizeof(float));
            label = dataset_label(L->ds, item);
        } else {
            struct rng r;

            rc = dataset_load(L->ds, item, &L->img, &label);
            if (rc == RL_OK) {
                if (cfg->transform.augment)
                    rng_split(&r, &er, (uint64_t)pos);
                rc = transform_apply(&cfg->transform, &L->img, cfg->transform.augment ? &r : NULL,
                                     out, &L->work);
                if (rc != RL_OK) {   /* the transform's message does not name the item */
                    slot->status = rc;
                    snprintf(slot->err, sizeof(slot->err), "%s item %zu: %.900s", L->ds->spec,
                             item, rl_error_msg());
                    return rc;
                }
            }
            if (rc != RL_OK) {
                slot->status = rc;
                snprintf(slot->err, sizeof(slot->err), "%s", rl_error_msg());
                return rc;
            }
            if (L->cache) {
                memcpy(L->cache + pos * L->per_item, out, L->per_item * sizeof(float));
                L->cached[pos] = 1;
            }
        }
        slot->labels[j] = label;
        slot->index[j] = item;
    }
    slot->n = (int)n;
    slot->epoch = epoch;
    slot->batch = b;
    slot->status = RL_OK;
    slot->err[0] = '\0';
    return RL_OK;
}

/* --- the read-ahead thread ------------------------------------------------------ */

/* The producer runs on into the next epoch even without cfg.repeat, so that
 * the first batches of epoch e + 1 are ready when loader_epoch(e + 1) follows
 * the end of epoch e. */
static int can_produce(const struct loader *L)
{
    return !L->failed && L->prod_seq < L->released + (unsigned long long)L->n_slots;
}

static void *producer_main(void *arg)
{
    struct loader *L = arg;

    pthread_mutex_lock(&L->mu);
    for (;;) {
        unsigned long long seq;
        unsigned gen;
        long base;
        int rc;

        while (!atomic_load(&L->stop) && !can_produce(L))
            pthread_cond_wait(&L->cv_prod, &L->mu);
        if (atomic_load(&L->stop))
            break;
        seq = L->prod_seq;
        base = L->base_epoch;
        gen = atomic_load(&L->gen);
        L->busy = 1;
        pthread_mutex_unlock(&L->mu);

        rc = fill_batch(L, seq, base, gen, &L->slots[seq % (unsigned long long)L->n_slots]);

        pthread_mutex_lock(&L->mu);
        L->busy = 0;
        if (rc != RC_ABANDONED && !cancelled(L, gen)) {
            L->prod_seq = seq + 1;
            if (rc != RL_OK)
                L->failed = 1;
        }
        pthread_cond_broadcast(&L->cv_cons);
    }
    pthread_mutex_unlock(&L->mu);
    return NULL;
}

/* --- API --------------------------------------------------------------------------- */

static void *alloc_floats(size_t n)
{
    void *p = NULL;

    if (posix_memalign(&p, 64, (n ? n : 1) * sizeof(float)) != 0)
        return NULL;
    return p;
}

static void free_all(struct loader *L)
{
    if (L->slots)
        for (int i = 0; i < L->n_slots; i++) {
            free(L->slots[i].x);
            free(L->slots[i].labels);
            free(L->slots[i].index);
        }
    free(L->slots);
    free(L->items);
    free(L->order);
    free(L->cache);
    free(L->cached);
    ds_image_free(&L->img);
    transform_work_free(&L->work);
    free(L);
}

int loader_open(struct loader **out, const struct dataset *ds, const size_t *idx, size_t n_idx,
                const struct loader_config *cfg)
{
    const struct transform *t = &cfg->transform;
    struct loader *L;
    struct rng root;
    size_t px, batch_floats, cache_floats = 0;
    int readahead = cfg->readahead;

    *out = NULL;
    if (!ds || !ds->ops)
        return rl_error_set(RL_ERR_ARG, "loader: no dataset");
    if (cfg->batch_size <= 0 || cfg->batch_size > LOADER_MAX_BATCH)
        return rl_error_set(RL_ERR_ARG, "loader: batch size %d outside [1, %d]", cfg->batch_size,
                            LOADER_MAX_BATCH);
    if (t->size <= 0 || t->size > LOADER_MAX_SIZE)
        return rl_error_set(RL_ERR_ARG, "loader: image size %d outside [1, %d]", t->size,
                            LOADER_MAX_SIZE);
    for (int c = 0; c < 3; c++)
        if (!(t->std[c] > 0.0f))
            return rl_error_set(RL_ERR_ARG, "loader: std[%d] = %g, must be positive", c,
                                (double)t->std[c]);
    if (t->augment && !(t->scale_lo > 0.0f && t->scale_lo <= t->scale_hi && t->ratio_lo > 0.0f &&
                        t->ratio_lo <= t->ratio_hi && t->flip_p >= 0.0f && t->flip_p <= 1.0f))
        return rl_error_set(RL_ERR_ARG, "loader: augmentation scale (%g, %g), ratio (%g, %g), "
                            "flip %g out of range", (double)t->scale_lo, (double)t->scale_hi,
                            (double)t->ratio_lo, (double)t->ratio_hi, (double)t->flip_p);
    if (cfg->cache && t->augment)
        return rl_error_set(RL_ERR_ARG, "loader: a cache of transformed images cannot be used "
                            "with augmentation");
    if (readahead == LOADER_READAHEAD_AUTO)
        readahead = (ds->height == 0 || ds->width == 0) ? 2 : 0;
    if (readahead < 0 || readahead > LOADER_READAHEAD_MAX)
        return rl_error_set(RL_ERR_ARG, "loader: read-ahead %d outside [0, %d]", cfg->readahead,
                            LOADER_READAHEAD_MAX);
    if (!idx && n_idx > ds->n)
        return rl_error_set(RL_ERR_ARG, "%s: the first %zu items asked for, it has %zu",
                            ds->spec, n_idx, ds->n);
    if (!idx && n_idx == 0)
        n_idx = ds->n;
    if (n_idx == 0)
        return rl_error_set(RL_ERR_ARG, "%s: no items to load", ds->spec);
    if (idx)
        for (size_t i = 0; i < n_idx; i++)
            if (idx[i] >= ds->n)
                return rl_error_set(RL_ERR_ARG, "%s: item %zu (entry %zu of the list) out of "
                                    "range (%zu items)", ds->spec, idx[i], i, ds->n);
    px = 3 * (size_t)t->size * (size_t)t->size;
    batch_floats = px * (size_t)cfg->batch_size;
    if (cfg->cache && !size_mul_ok(px, n_idx, &cache_floats))
        return rl_error_set(RL_ERR_NOMEM, "%s: a cache of %zu images is too large", ds->spec,
                            n_idx);

    L = xcalloc(1, sizeof(*L));
    L->ds = ds;
    L->cfg = *cfg;
    L->cfg.readahead = readahead;
    L->n_items = n_idx;
    L->per_item = px;
    L->nb = cfg->drop_last ? n_idx / (size_t)cfg->batch_size
                           : (n_idx + (size_t)cfg->batch_size - 1) / (size_t)cfg->batch_size;
    if (L->nb == 0) {
        free(L);
        return rl_error_set(RL_ERR_ARG, "%s: %zu items, fewer than one batch of %d with "
                            "drop_last", ds->spec, n_idx, cfg->batch_size);
    }
    L->items = xmalloc_array(n_idx, sizeof(*L->items));
    for (size_t i = 0; i < n_idx; i++)
        L->items[i] = idx ? idx[i] : i;
    L->order = xmalloc_array(n_idx, sizeof(*L->order));
    L->order_epoch = -1;
    L->end_seq = L->nb;
    rng_init(&root, cfg->seed);
    rng_split(&L->shuffle_root, &root, 1);
    rng_split(&L->aug_root, &root, 2);
    L->threaded = readahead > 0;
    L->n_slots = L->threaded ? readahead + 1 : 1;
    L->slots = xcalloc((size_t)L->n_slots, sizeof(*L->slots));
    for (int i = 0; i < L->n_slots; i++) {
        L->slots[i].x = alloc_floats(batch_floats);
        L->slots[i].labels = malloc((size_t)cfg->batch_size * sizeof(int32_t));
        L->slots[i].index = malloc((size_t)cfg->batch_size * sizeof(size_t));
        if (!L->slots[i].x || !L->slots[i].labels || !L->slots[i].index) {
            free_all(L);
            return rl_error_set(RL_ERR_NOMEM, "%s: out of memory for batches of %d images of "
                                "%d x %d", ds->spec, cfg->batch_size, t->size, t->size);
        }
    }
    if (cfg->cache) {
        L->cache = alloc_floats(cache_floats);
        L->cached = calloc(n_idx, 1);
        if (!L->cache || !L->cached) {
            free_all(L);
            return rl_error_set(RL_ERR_NOMEM, "%s: out of memory for a cache of %zu images of "
                                "%d x %d (%.1f MiB)", ds->spec, n_idx, t->size, t->size,
                                (double)cache_floats * sizeof(float) / (1 << 20));
        }
    }
    atomic_init(&L->gen, 0);
    atomic_init(&L->stop, 0);
    if (L->threaded) {
        int e;

        pthread_mutex_init(&L->mu, NULL);
        pthread_cond_init(&L->cv_prod, NULL);
        pthread_cond_init(&L->cv_cons, NULL);
        if ((e = pthread_create(&L->thread, NULL, producer_main, L)) != 0) {
            pthread_cond_destroy(&L->cv_prod);
            pthread_cond_destroy(&L->cv_cons);
            pthread_mutex_destroy(&L->mu);
            free_all(L);
            return rl_error_set(RL_ERR, "%s: cannot start the read-ahead thread: %s", ds->spec,
                                strerror(e));
        }
    }
    *out = L;
    return RL_OK;
}

/* 1 when the consumer stands at the first batch of `epoch` of the running
 * sequence, so what was read ahead is exactly what that epoch needs */
static int at_start_of(const struct loader *L, long epoch)
{
    return L->cons_seq % L->nb == 0 && epoch == L->base_epoch + (long)(L->cons_seq / L->nb);
}

int loader_epoch(struct loader *L, long epoch)
{
    if (epoch < 0)
        return rl_error_set(RL_ERR_ARG, "loader: epoch %ld is negative", epoch);
    if (!L->threaded) {
        if (!at_start_of(L, epoch)) {
            L->base_epoch = epoch;
            L->prod_seq = L->cons_seq = L->released = 0;
        }
        L->end_seq = L->cons_seq + L->nb;
        return RL_OK;
    }
    pthread_mutex_lock(&L->mu);
    /* at the start of that epoch already: keep what was read ahead for it */
    if (L->failed || !at_start_of(L, epoch)) {
        atomic_fetch_add(&L->gen, 1);
        while (L->busy)
            pthread_cond_wait(&L->cv_cons, &L->mu);
        L->base_epoch = epoch;
        L->prod_seq = L->cons_seq = L->released = 0;
        L->failed = 0;
        pthread_cond_broadcast(&L->cv_prod);
    }
    L->end_seq = L->cons_seq + L->nb;
    pthread_mutex_unlock(&L->mu);
    return RL_OK;
}

static void batch_from_slot(const struct slot *s, struct loader_batch *b)
{
    b->x = s->x;
    b->labels = s->labels;
    b->index = s->index;
    b->n = s->n;
    b->epoch = s->epoch;
    b->batch = s->batch;
}

static void end_of_epoch(const struct loader *L, struct loader_batch *b)
{
    memset(b, 0, sizeof(*b));
    b->epoch = L->base_epoch + (long)(L->end_seq / L->nb) - 1;
    b->batch = L->nb;
}

int loader_next(struct loader *L, struct loader_batch *b)
{
    struct slot *s;
    int rc;

    if (!L->threaded) {
        if (!L->cfg.repeat && L->cons_seq >= L->end_seq) {
            end_of_epoch(L, b);
            return RL_OK;
        }
        s = &L->slots[0];
        rc = fill_batch(L, L->cons_seq, L->base_epoch, atomic_load(&L->gen), s);
        if (rc != RL_OK) {
            memset(b, 0, sizeof(*b));
            return rl_error_set(rc, "%s", s->err);
        }
        L->cons_seq++;
        L->stats.batches++;
        batch_from_slot(s, b);
        return RL_OK;
    }
    pthread_mutex_lock(&L->mu);
    L->released = L->cons_seq;
    pthread_cond_signal(&L->cv_prod);
    if (!L->cfg.repeat && L->cons_seq >= L->end_seq) {
        pthread_mutex_unlock(&L->mu);
        end_of_epoch(L, b);
        return RL_OK;
    }
    if (L->prod_seq <= L->cons_seq) {
        double t0 = timer_now();

        L->stats.waits++;
        while (L->prod_seq <= L->cons_seq)
            pthread_cond_wait(&L->cv_cons, &L->mu);
        L->stats.wait_s += timer_now() - t0;
    }
    s = &L->slots[L->cons_seq % (unsigned long long)L->n_slots];
    if (s->status != RL_OK) {
        char err[sizeof(s->err)];

        rc = s->status;
        memcpy(err, s->err, sizeof(err));
        pthread_mutex_unlock(&L->mu);
        memset(b, 0, sizeof(*b));
        return rl_error_set(rc, "%s", err);
    }
    L->cons_seq++;
    pthread_mutex_unlock(&L->mu);
    L->stats.batches++;
    batch_from_slot(s, b);
    return RL_OK;
}

size_t loader_batches_per_epoch(const struct loader *L)
{
    return L->nb;
}

size_t loader_size(const struct loader *L)
{
    return L->n_items;
}

int loader_threaded(const struct loader *L)
{
    return L->threaded;
}

void loader_get_stats(const struct loader *L, struct loader_stats *s)
{
    *s = L->stats;
}

void loader_close(struct loader *L)
{
    if (!L)
        return;
    if (L->threaded) {
        pthread_mutex_lock(&L->mu);
        atomic_store(&L->stop, 1);
        atomic_fetch_add(&L->gen, 1);
        pthread_cond_broadcast(&L->cv_prod);
        pthread_mutex_unlock(&L->mu);
        pthread_join(L->thread, NULL);
        pthread_cond_destroy(&L->cv_prod);
        pthread_cond_destroy(&L->cv_cons);
        pthread_mutex_destroy(&L->mu);
    }
    free_all(L);
}
