/*
 * image_files.c: the items of readers whose images are files named by path
 * (folder.c, zhou.c): struct ds_files (dataset.h).
 */
#include <stdlib.h>

#include "core/status.h"
#include "datasets/dataset.h"
#include "datasets/image.h"

int ds_files_load(const struct dataset *ds, size_t i, struct ds_image *img, int *label)
{
    const struct ds_files *f = ds->impl;
    int rc = image_read_file(f->paths[i], img);

    if (rc != RL_OK)
        return rc;
    if ((rc = image_gray_to_rgb(img)) != RL_OK)
        return rc;
    *label = f->labels[i];
    return RL_OK;
}

int ds_files_label(const struct dataset *ds, size_t i)
{
    const struct ds_files *f = ds->impl;

    return f->labels[i];
}

void ds_files_close(struct dataset *ds)
{
    struct ds_files *f = ds->impl;

    if (!f)
        return;
    for (size_t i = 0; i < f->n; i++)
        free(f->paths[i]);
    free(f->paths);
    free(f->labels);
    free(f);
    ds->impl = NULL;
}
