/*
 * target_spec.h: the item splitter shared by the adapter-target parsers
 * (clip_targets_parse, llama_targets_parse): a target list is items
 * separated by ';' or white space.
 */
#ifndef RANDLORA_MODELS_TARGET_SPEC_H
#define RANDLORA_MODELS_TARGET_SPEC_H

#include <ctype.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

/* The next item of spec at or after *pos: its offset in *start and its
 * length in *n; *pos moves past it. false when no item is left. */
static inline bool target_spec_next(const char *spec, size_t *pos, size_t *start, size_t *n)
{
    size_t i = *pos, j, len = strlen(spec);

    while (i < len && (spec[i] == ';' || isspace((unsigned char)spec[i])))
        i++;
    if (i >= len)
        return false;
    for (j = i; j < len && spec[j] != ';' && !isspace((unsigned char)spec[j]); j++)
        ;
    *start = i;
    *n = j - i;
    *pos = j;
    return true;
}

#endif /* RANDLORA_MODELS_TARGET_SPEC_H */
