/*
 * commonsense_synth.h: a procedural multiple-choice task in the commonsense
 * format (commonsense.h), for the offline language quickstart, and a
 * procedural text corpus to pretrain a tiny decoder on the same small world
 * (docs/datasets.md, "The procedural commonsense task").
 *
 * Five task types, one per answer-extraction kind, with the instruction
 * layout of the real sets (commonsense_170k.json):
 *   synth_boolq       true/false          "is a dog bigger than a mouse?",
 *                                          "is 47 greater than 23?"
 *   synth_piqa        solution1/2         reaching a sum by adding a number
 *   synth_qa          answer1-5           the day after a day, a thing's
 *                                          colour, a sum
 *   synth_hellaswag   ending1-4           counting on by a step
 *   synth_winogrande  option1/2           "the _ is heavier" between two animals
 * Everything is deterministic from the seed (core/rng.h streams; the same
 * seed gives the same bytes on every machine). The world is small: test
 * items can repeat training items (the numeric ones rarely do).
 *
 *     struct cs_set train, test;
 *     cs_synth_train(&train, 1, 2000);                  // the five types in turn
 *     cs_synth_test(&test, "synth_qa", 1, 200);         // another stream
 *     char *text = cs_synth_corpus(1, 1 << 20, &len);   // ~1 MiB of sentences
 */
#ifndef RANDLORA_DATASETS_COMMONSENSE_SYNTH_H
#define RANDLORA_DATASETS_COMMONSENSE_SYNTH_H

#include <stddef.h>
#include <stdint.h>

#include "datasets/commonsense.h"

#define CS_SYNTH_N_TASKS 5
extern const char *const CS_SYNTH_TASKS[CS_SYNTH_N_TASKS];

/* The kind of a procedural task by name; RL_ERR_ARG when it is not one. */
int cs_synth_task_kind(const char *name, enum cs_answer_kind *kind);
/* "synth_boolq, synth_piqa, ..." for messages */
const char *cs_synth_task_names(void);

/* n training items, the task types in turn (item i is type i % 5). */
void cs_synth_train(struct cs_set *set, uint64_t seed, size_t n);
/* n test items of one task (RL_ERR_ARG for an unknown name), from streams
 * the training items do not use. */
int  cs_synth_test(struct cs_set *set, const char *task, uint64_t seed, size_t n);
/* DIR/train.json and DIR/<task>/test.json for the five tasks (DIR and the
 * task folders are created). */
int  cs_synth_write(const char *dir, uint64_t seed, size_t n_train, size_t n_test);

/* About n_bytes (at least 1) of sentences stating the world's facts, one per
 * line, ending with a newline; allocated, *len its length. */
char *cs_synth_corpus(uint64_t seed, size_t n_bytes, size_t *len);

#endif /* RANDLORA_DATASETS_COMMONSENSE_SYNTH_H */
