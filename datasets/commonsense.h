/*
 * commonsense.h: the commonsense-reasoning data of the RandLoRA paper's
 * language experiments, in the format of LLM-Adapters / DoRA / the RandLoRA
 * authors' fork (docs/datasets.md, "Commonsense reasoning", cites the files
 * and lines): a JSON array of items with "instruction", "input", "output"
 * and "answer" (commonsense_15k.json, commonsense_170k.json and the eight
 * test sets dataset/<name>/test.json), the prompt templates, tokenization
 * with the loss mask and cutoff length, and the answer extraction and
 * accuracy of commonsense_evaluate.py.
 *
 *     struct cs_set train;
 *     int rc = cs_load(&train, "commonsense_15k.json");           // RL_ERR_FORMAT naming item and key
 *     struct cs_example ex = {0};
 *     rc = cs_tokenize_train(tok, &train.items[0], eos_id, 256, false, &ex);
 *     // ex.ids[0..ex.n), ex.target[i] = 1 where the loss predicts ids[i]
 *     char *prompt = cs_eval_prompt(&test.items[i]);              // generate from here
 *     ... text = decode(prompt ids + generated ids, skip special) ...
 *     bool ok = cs_is_correct(CS_KIND_ANSWER, text, test.items[i].answer);
 *     cs_example_free(&ex); free(prompt); cs_free(&train);
 *
 * Every failure returns an rl_status with one line in rl_error_msg().
 */
#ifndef RANDLORA_DATASETS_COMMONSENSE_H
#define RANDLORA_DATASETS_COMMONSENSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bpe_tokenizer;

#define CS_MAX_FILE_BYTES ((size_t)1 << 30)   /* 1 GiB (commonsense_170k.json: ~80 MB) */
#define CS_MAX_FIELD_BYTES ((size_t)1 << 20)  /* one instruction/input/output/answer */

struct cs_item {
    char *instruction, *input, *output, *answer;   /* owned, NUL-terminated; input "" when absent */
};

struct cs_set {
    struct cs_item *items;
    size_t n;
};

/* A JSON array of items (the training file or a test.json). "instruction",
 * "output" and "answer" must be strings, "input" a string, null or absent.
 * Other keys are ignored. RL_ERR_IO / RL_ERR_FORMAT "PATH: item N: ..." */
int  cs_load(struct cs_set *set, const char *path);
void cs_free(struct cs_set *set);
/* The same array as JSON (items in order, the four keys), for the
 * procedural task; RL_ERR_WRITE / RL_ERR_IO naming path on failure. */
int  cs_write(const struct cs_set *set, const char *path);

/* How commonsense_evaluate.py's extract_answer reads a response. */
enum cs_answer_kind {
    CS_KIND_TRUE_FALSE,   /* boolq:                          true|false        */
    CS_KIND_SOLUTION,     /* piqa:                           solution1|solution2 */
    CS_KIND_ANSWER,       /* social_i_qa, ARC-*, openbookqa: answer1|..|answer5 */
    CS_KIND_ENDING,       /* hellaswag:                      ending1|..|ending4 */
    CS_KIND_OPTION,       /* winogrande:                     option1|option2   */
};

#define CS_N_TASKS 8
/* boolq piqa social_i_qa hellaswag winogrande ARC-Easy ARC-Challenge
 * openbookqa: the paper's Table 1 columns, in its order */
extern const char *const CS_TASKS[CS_N_TASKS];

/* The kind of a test set by name: the eight above and the procedural
 * tasks (commonsense_synth.h); RL_ERR_ARG listing the names otherwise. */
int cs_task_kind(const char *name, enum cs_answer_kind *kind);
/* DIR/<name>/test.json */
int cs_load_task(struct cs_set *set, const char *dir, const char *name);

/* finetune.py's generate_prompt(data_point): the training text, with the
 * item's output (with_output) or with "" in its place (the user prompt
 * whose length the loss mask skips). Allocated. */
char *cs_train_prompt(const struct cs_item *it, bool with_output);
/* commonsense_evaluate.py's generate_prompt(instruction): what generation
 * starts from (its evaluate() passes no input). Allocated. */
char *cs_eval_prompt(const struct cs_item *it);

/* One training example as finetune.py's generate_and_tokenize_prompt:
 * the full prompt with the template's special tokens, cut to cutoff ids
 * (the text's ids cut so that the template's fit), then eos_id appended
 * when it is >= 0, the last id is not eos_id and fewer than cutoff ids
 * are there. target[i] = 1 where ids[i] counts in the loss (a causal LM
 * predicts ids[i] from ids[0..i), so target[0] never counts): all ids when
 * train_on_inputs (finetune.py's default, which the authors' scripts keep),
 * else those past the length of the user prompt (the prompt with an empty
 * output, tokenized the same way without eos). */
struct cs_example {
    int32_t *ids;
    uint8_t *target;
    size_t n;
};
int  cs_tokenize_train(const struct bpe_tokenizer *t, const struct cs_item *it, int32_t eos_id,
                       size_t cutoff, bool train_on_inputs, struct cs_example *ex);
void cs_example_free(struct cs_example *ex);

/* Every item of set as cs_tokenize_train, items in parallel (OpenMP; the
 * tokenizer is read-only): *out is a new array of set->n examples. On a
 * failure nothing is kept and the message names the first failing item
 * ("item N: ..."). */
int  cs_tokenize_set(const struct bpe_tokenizer *t, const struct cs_set *set, int32_t eos_id,
                     size_t cutoff, bool train_on_inputs, struct cs_example **out);
void cs_examples_free(struct cs_example *ex, size_t n);

/* n examples (ex[idx[0..n)]) as one right-padded batch: T is the longest
 * length rounded up to a multiple of `multiple` (>= 1; finetune.py's
 * DataCollatorForSeq2Seq uses 8), ids[b * T + i] holds pad_id and
 * target[b * T + i] 0 past example b's length len[b]. (The reference pads
 * on the left; with rotary positions and the padding masked out a causal
 * LM gives the same result either way.) RL_ERR_ARG when n is 0. */
struct cs_batch {
    int32_t *ids;
    uint8_t *target;
    size_t *len;
    size_t n, T;
};
int  cs_batch_pad(const struct cs_example *ex, const size_t *idx, size_t n, int32_t pad_id,
                  size_t multiple, struct cs_batch *b);
void cs_batch_free(struct cs_batch *b);

/* evaluate(): decoded.split("### Response:")[-1].strip(), allocated */
char *cs_response(const char *decoded);
/* extract_answer: the first match in the stripped response (Python's
 * re.findall(...)[0], alternatives tried in order at each position), as a
 * static string, or "" when there is none */
const char *cs_extract_answer(enum cs_answer_kind kind, const char *response);
/* cs_extract_answer(kind, cs_response(decoded)) == label */
bool cs_is_correct(enum cs_answer_kind kind, const char *decoded, const char *label);

/* accuracy per task and the paper's average (the mean of the per-task
 * accuracies, not pooled); tasks with total 0 are skipped, NAN if none */
struct cs_score {
    const char *task;
    size_t correct, total;
};
double cs_accuracy(const struct cs_score *s);
double cs_mean_accuracy(const struct cs_score *s, size_t n);

#endif /* RANDLORA_DATASETS_COMMONSENSE_H */
