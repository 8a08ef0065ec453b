/*
 * meta.h: class names and prompt templates of the paper's 22 datasets,
 * shipped as data files (datasets/meta/NAME.classes, NAME.templates, and
 * names.tsv: the names each set answers to), and applied to an opened
 * dataset by data.classnames (docs/datasets.md, "Dataset metadata"):
 *
 *     rc = ds_meta_select(&ds, "auto", "DescribableTextures");  // the dtd set
 *
 * Files: lines starting with '#' and empty lines are skipped; a .classes
 * file has one name per label, in label order; a .templates file one
 * template per line, each with one "{}".
 */
#ifndef RANDLORA_DATASETS_META_H
#define RANDLORA_DATASETS_META_H

#include <stddef.h>

#include "datasets/dataset.h"

/* The folder of the files: $RANDLORA_META when set and not empty, else
 * datasets/meta beside the executable, else ./datasets/meta. */
const char *ds_meta_dir(void);

/* The set answering to name (a set's own name or one of its names.tsv
 * names, ignoring case) into set: RL_OK, RL_ERR_NA when none does, an
 * error for an unreadable or malformed names.tsv. */
int ds_meta_lookup(const char *name, char *set, size_t cap);

/* The set's class names (when it has a .classes file) and templates (when
 * it has a .templates file) replace ds's. RL_ERR_ARG when the set has
 * another number of classes than ds, or when ds's own names are the set's
 * in another order (its labels would be named wrongly); RL_ERR_FORMAT for
 * a malformed file. */
int ds_meta_apply(struct dataset *ds, const char *set);

/* data.classnames: "dataset" leaves ds as it is; "auto" applies the set
 * answering to dataset_name if one does; any other value is a set (or a
 * name of one) that must exist (RL_ERR_ARG listing the sets). */
int ds_meta_select(struct dataset *ds, const char *choice, const char *dataset_name);

#endif /* RANDLORA_DATASETS_META_H */
