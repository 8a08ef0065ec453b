/*
 * shapes.c: a deterministic procedural image-caption corpus.
 *
 * Item i of a split is a 64 x 64 RGB scene of one to three shapes on a dark,
 * slightly noisy background, each shape with a kind (circle, square,
 * triangle, diamond), a colour (red, green, blue, yellow, purple, orange,
 * white), a size (small, large), a texture (plain, striped) and a cell of a
 * 3 x 3 grid (no two shapes share a cell), and a caption naming them in order:
 *     "a large red circle at the top left and a small striped blue square on the right"
 * Everything about item i comes from rng_split(root of the split, i), with
 * integer rasterisation, so item i is the same image and caption on every
 * machine and in any order of access; the corpus is as large as one wants
 * (SHAPES_TRAIN_N / SHAPES_TEST_N items are exposed; train and test use
 * different roots).
 *
 * Classification tasks: "shapes" labels an item by the kind of its first
 * shape (4 classes), "shapes-count" by its number of shapes (3 classes).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/rng.h"
#include "core/status.h"
#include "datasets/dataset.h"

#define SHAPES_SIZE    64
#define SHAPES_TRAIN_N 100000
#define SHAPES_TEST_N  10000
#define SHAPES_MAX     3

enum { N_KINDS = 4, N_COLOURS = 7, N_CELLS = 9 };

static const char *const kind_names[N_KINDS] = { "circle", "square", "triangle", "diamond" };
static const char *const count_names[SHAPES_MAX] = { "one shape", "two shapes", "three shapes" };
static const char *const colour_names[N_COLOURS] = {
    "red", "green", "blue", "yellow", "purple", "orange", "white",
};
static const uint8_t colour_rgb[N_COLOURS][3] = {
    { 220, 40, 40 }, { 40, 180, 60 }, { 40, 80, 230 }, { 235, 215, 40 },
    { 155, 60, 195 }, { 245, 140, 30 }, { 245, 245, 245 },
};
static const char *const cell_names[N_CELLS] = {
    "at the top left", "at the top", "at the top right",
    "on the left", "in the center", "on the right",
    "at the bottom left", "at the bottom", "at the bottom right",
};

struct shape {
    int kind, colour, large, striped, cell, dx, dy;
};

struct scene {
    int          n;
    struct shape s[SHAPES_MAX];
};

struct shapes_impl {
    struct rng root;
    int        count_task;
};

static void make_scene(const struct shapes_impl *impl, size_t i, struct scene *sc, struct rng *r)
{
    int cells[N_CELLS];

    rng_split(r, &impl->root, (uint64_t)i);
    for (int c = 0; c < N_CELLS; c++)
        cells[c] = c;
    sc->n = 1 + (int)rng_below(r, SHAPES_MAX);
    for (int k = 0; k < sc->n; k++) {
        struct shape *s = &sc->s[k];
        int j = k + (int)rng_below(r, (uint64_t)(N_CELLS - k)), t = cells[k];

        cells[k] = cells[j];
        cells[j] = t;
        s->cell = cells[k];
        s->kind = (int)rng_below(r, N_KINDS);
        s->colour = (int)rng_below(r, N_COLOURS);
        s->large = (int)rng_below(r, 2);
        s->striped = rng_below(r, 4) == 0;
        s->dx = (int)rng_below(r, 5) - 2;   /* jitter inside the cell */
        s->dy = (int)rng_below(r, 5) - 2;
    }
}

static int inside(const struct shape *s, int x, int y)
{
    int cx = 11 + 21 * (s->cell % 3) + s->dx, cy = 11 + 21 * (s->cell / 3) + s->dy;
    int rad = s->large ? 9 : 5;
    int dx = x - cx, dy = y - cy, adx = abs(dx), ady = abs(dy);

    switch (s->kind) {
    case 0:  return dx * dx + dy * dy <= rad * rad + rad;   /* no one-pixel nubs */
    case 1:  return adx <= rad * 4 / 5 && ady <= rad * 4 / 5;
    case 2:  /* apex up: rows from cy - rad to cy + rad, half-width growing */
        return dy >= -rad && dy <= rad && 2 * adx <= dy + rad;
    default: return adx + ady <= rad;
    }
}

static int shapes_open_common(struct dataset *ds, enum ds_split split, int count_task)
{
    struct shapes_impl *impl = xmalloc(sizeof(*impl));
    int nc = count_task ? SHAPES_MAX : N_KINDS;

    rng_init(&impl->root, 0x5348415045530000ull + (uint64_t)split);
    impl->count_task = count_task;
    ds->impl = impl;
    ds->n = split == DS_TRAIN ? SHAPES_TRAIN_N : SHAPES_TEST_N;
    ds->n_classes = nc;
    ds->class_names = xmalloc_array((size_t)nc, sizeof(char *));
    for (int c = 0; c < nc; c++)
        ds->class_names[c] = xstrdup(count_task ? count_names[c] : kind_names[c]);
    ds->channels = 3;
    ds->height = SHAPES_SIZE;
    ds->width = SHAPES_SIZE;
    return RL_OK;
}

static int shapes_open(struct dataset *ds, const char *arg, enum ds_split split)
{
    (void)arg;
    return shapes_open_common(ds, split, 0);
}

static int shapes_count_open(struct dataset *ds, const char *arg, enum ds_split split)
{
    (void)arg;
    return shapes_open_common(ds, split, 1);
}

static int scene_label(const struct shapes_impl *impl, const struct scene *sc)
{
    return impl->count_task ? sc->n - 1 : sc->s[0].kind;
}

static int shapes_load(const struct dataset *ds, size_t i, struct ds_image *img, int *label)
{
    const struct shapes_impl *impl = ds->impl;
    struct scene sc;
    struct rng r;
    int rc = ds_image_reserve(img, 3, SHAPES_SIZE, SHAPES_SIZE);

    if (rc != RL_OK)
        return rc;
    make_scene(impl, i, &sc, &r);
    for (int y = 0; y < SHAPES_SIZE; y++) {
        for (int x = 0; x < SHAPES_SIZE; x++) {
            uint8_t *p = img->data + ((size_t)y * SHAPES_SIZE + (size_t)x) * 3;
            uint64_t noise = rng_u64(&r);

            for (int c = 0; c < 3; c++)
                p[c] = (uint8_t)(24 + ((noise >> (8 * c)) & 15));
            for (int k = 0; k < sc.n; k++) {
                const struct shape *s = &sc.s[k];

                if (inside(s, x, y) && !(s->striped && (y / 2) % 2 == 1))
                    memcpy(p, colour_rgb[s->colour], 3);
            }
        }
    }
    *label = scene_label(impl, &sc);
    return RL_OK;
}

static int shapes_label(const struct dataset *ds, size_t i)
{
    const struct shapes_impl *impl = ds->impl;
    struct scene sc;
    struct rng r;

    make_scene(impl, i, &sc, &r);
    return scene_label(impl, &sc);
}

static int shapes_caption(const struct dataset *ds, size_t i, char *buf, size_t cap)
{
    const struct shapes_impl *impl = ds->impl;
    struct scene sc;
    struct rng r;
    size_t off = 0;

    if (cap == 0)
        return rl_error_set(RL_ERR_ARG, "%s: caption buffer of 0 bytes", ds->spec);
    buf[0] = '\0';
    make_scene(impl, i, &sc, &r);
    for (int k = 0; k < sc.n && off < cap; k++) {
        const struct shape *s = &sc.s[k];
        const char *sep = k == 0 ? "" : k == sc.n - 1 ? " and " : ", ";
        int w = snprintf(buf + off, cap - off, "%sa %s %s%s %s %s", sep,
                         s->large ? "large" : "small", s->striped ? "striped " : "",
                         colour_names[s->colour], kind_names[s->kind], cell_names[s->cell]);

        if (w < 0)
            break;
        off += (size_t)w;
    }
    return RL_OK;
}

static void shapes_close(struct dataset *ds)
{
    free(ds->impl);
    ds->impl = NULL;
}

const struct dataset_ops dataset_shapes_ops = {
    .name    = "shapes",
    .usage   = "shapes                procedural 64x64 scenes with captions; label = kind of "
               "the first shape",
    .arg     = 0,
    .open    = shapes_open,
    .load    = shapes_load,
    .label   = shapes_label,
    .caption = shapes_caption,
    .close   = shapes_close,
};

const struct dataset_ops dataset_shapes_count_ops = {
    .name    = "shapes-count",
    .usage   = "shapes-count          the shapes scenes; label = number of shapes",
    .arg     = 0,
    .open    = shapes_count_open,
    .load    = shapes_load,
    .label   = shapes_label,
    .caption = shapes_caption,
    .close   = shapes_close,
};
