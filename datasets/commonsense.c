/*
 * commonsense.c: the commonsense-reasoning format (commonsense.h): reading
 * and writing the JSON item arrays, the prompt templates of finetune.py and
 * commonsense_evaluate.py byte for byte, training tokenization with the
 * loss mask, and the answer extraction and accuracy of the evaluation.
 */
#include "datasets/commonsense.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/alloc.h"
#include "core/read_file.h"
#include "core/status.h"
#include "datasets/commonsense_synth.h"
#include "models/bpe_tokenizer.h"

const char *const CS_TASKS[CS_N_TASKS] = {
    "boolq", "piqa", "social_i_qa", "hellaswag", "winogrande", "ARC-Easy", "ARC-Challenge",
    "openbookqa",
};

static const enum cs_answer_kind TASK_KINDS[CS_N_TASKS] = {
    CS_KIND_TRUE_FALSE, CS_KIND_SOLUTION, CS_KIND_ANSWER, CS_KIND_ENDING, CS_KIND_OPTION,
    CS_KIND_ANSWER, CS_KIND_ANSWER, CS_KIND_ANSWER,
};

/* ------------------------------------------------------------------ reading and writing */

void cs_free(struct cs_set *set)
{
    for (size_t i = 0; i < set->n; i++) {
        free(set->items[i].instruction);
        free(set->items[i].input);
        free(set->items[i].output);
        free(set->items[i].answer);
    }
    free(set->items);
    set->items = NULL;
    set->n = 0;
}

/* key of item i as an owned string; optional keys may be null or absent */
static int get_field(const cJSON *o, const char *key, bool optional, char **out, const char *path,
                     size_t i)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

    if (optional && (!v || cJSON_IsNull(v))) {
        *out = xstrdup("");
        return RL_OK;
    }
    if (!cJSON_IsString(v))
        return rl_error_set(RL_ERR_FORMAT, "%s: item %zu: \"%s\" is %s, expected a string", path, i,
                            key, v ? "not a string" : "missing");
    if (strlen(v->valuestring) > CS_MAX_FIELD_BYTES)
        return rl_error_set(RL_ERR_FORMAT, "%s: item %zu: \"%s\" is longer than %zu bytes", path,
                            i, key, CS_MAX_FIELD_BYTES);
    *out = xstrdup(v->valuestring);
    return RL_OK;
}

int cs_load(struct cs_set *set, const char *path)
{
    char *text;
    size_t len, i = 0;
    cJSON *root, *e;
    int rc = rl_read_file(path, CS_MAX_FILE_BYTES, &text, &len);

    set->items = NULL;
    set->n = 0;
    if (rc != RL_OK)
        return rc;
    root = cJSON_ParseWithLength(text, len);
    free(text);
    if (!root)
        return rl_error_set(RL_ERR_FORMAT, "%s: malformed JSON", path);
    if (!cJSON_IsArray(root)) {
        cJSON_Delete(root);
        return rl_error_set(RL_ERR_FORMAT, "%s: not a JSON array of items", path);
    }
    set->items = xcalloc((size_t)cJSON_GetArraySize(root) + 1, sizeof(*set->items));
    cJSON_ArrayForEach(e, root) {
        struct cs_item *it = &set->items[i];
        if (!cJSON_IsObject(e)) {
            rc = rl_error_set(RL_ERR_FORMAT, "%s: item %zu is not an object", path, i);
            break;
        }
        set->n = ++i;                    /* cs_free frees what is set */
        if ((rc = get_field(e, "instruction", false, &it->instruction, path, i - 1)) != RL_OK ||
            (rc = get_field(e, "input", true, &it->input, path, i - 1)) != RL_OK ||
            (rc = get_field(e, "output", false, &it->output, path, i - 1)) != RL_OK ||
            (rc = get_field(e, "answer", false, &it->answer, path, i - 1)) != RL_OK)
            break;
    }
    cJSON_Delete(root);
    if (rc == RL_OK && set->n == 0)
        rc = rl_error_set(RL_ERR_FORMAT, "%s: no items", path);
    if (rc != RL_OK)
        cs_free(set);
    return rc;
}

int cs_write(const struct cs_set *set, const char *path)
{
    cJSON *root = cJSON_CreateArray();
    char *text;
    FILE *f;
    size_t len;
    bool ok;

    for (size_t i = 0; i < set->n; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "instruction", set->items[i].instruction);
        cJSON_AddStringToObject(o, "input", set->items[i].input);
        cJSON_AddStringToObject(o, "output", set->items[i].output);
        cJSON_AddStringToObject(o, "answer", set->items[i].answer);
        cJSON_AddItemToArray(root, o);
    }
    text = cJSON_Print(root);
    cJSON_Delete(root);
    RL_ASSERT(text != NULL);
    if (!(f = fopen(path, "wb"))) {
        free(text);
        return rl_error_set(RL_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    }
    len = strlen(text);
    ok = fwrite(text, 1, len, f) == len && fputc('\n', f) != EOF;
    ok = (fclose(f) == 0) && ok;
    free(text);
    return ok ? RL_OK : rl_error_set(RL_ERR_WRITE, "%s: write failed: %s", path, strerror(errno));
}

int cs_task_kind(const char *name, enum cs_answer_kind *kind)
{
    for (int k = 0; k < CS_N_TASKS; k++)
        if (strcmp(name, CS_TASKS[k]) == 0) {
            *kind = TASK_KINDS[k];
            return RL_OK;
        }
    if (cs_synth_task_kind(name, kind) == RL_OK)
        return RL_OK;
    return rl_error_set(RL_ERR_ARG, "commonsense task '%s' is unknown (known: boolq, piqa, "
                        "social_i_qa, hellaswag, winogrande, ARC-Easy, ARC-Challenge, "
                        "openbookqa, %s)", name, cs_synth_task_names());
}

int cs_load_task(struct cs_set *set, const char *dir, const char *name)
{
    enum cs_answer_kind kind;
    size_t n = strlen(dir) + strlen(name) + 16;
    char *path;
    int rc = cs_task_kind(name, &kind);

    if (rc != RL_OK)
        return rc;
    path = xmalloc(n);
    snprintf(path, n, "%s/%s/test.json", dir, name);
    rc = cs_load(set, path);
    free(path);
    return rc;
}

/* ------------------------------------------------------------------ prompts */

/* The RandLoRA fork's commonsense_reasoning/finetune.py lines 425-446 (the
 * same text as NVlabs/DoRA's lines 360-380): the triple-quoted f-strings
 * keep their 16-space indentation, "request." is followed by one space
 * (with input) or two (without), and the blank lines hold 16 spaces. */
#define IND "                "
static const char TRAIN_INPUT[] =
    "Below is an instruction that describes a task, paired with an input that provides further "
    "context. Write a response that appropriately completes the request. \n\n"
    IND "### Instruction:\n" IND "%s\n" IND "\n" IND "### Input:\n" IND "%s\n" IND "\n"
    IND "### Response:\n" IND "%s";
static const char TRAIN_PLAIN[] =
    "Below is an instruction that describes a task. Write a response that appropriately "
    "completes the request.  \n\n"
    IND "### Instruction:\n" IND "%s\n" IND "\n" IND "### Response:\n" IND "%s";
/* commonsense_evaluate.py lines 181-187 of the fork (DoRA's 177-183): one
 * space after "request.", empty blank lines, ends in the indentation */
static const char EVAL_PLAIN[] =
    "Below is an instruction that describes a task. Write a response that appropriately "
    "completes the request. \n\n"
    IND "### Instruction:\n" IND "%s\n\n" IND "### Response:\n" IND;

static char *format3(const char *fmt, const char *a, const char *b, const char *c)
{
    int n = snprintf(NULL, 0, fmt, a, b, c);
    char *s;

    RL_ASSERT(n >= 0);
    s = xmalloc((size_t)n + 1);
    snprintf(s, (size_t)n + 1, fmt, a, b, c);
    return s;
}

char *cs_train_prompt(const struct cs_item *it, bool with_output)
{
    const char *out = with_output ? it->output : "";

    if (it->input[0])                     /* Python: if data_point["input"] */
        return format3(TRAIN_INPUT, it->instruction, it->input, out);
    return format3(TRAIN_PLAIN, it->instruction, out, "");
}

char *cs_eval_prompt(const struct cs_item *it)
{
    return format3(EVAL_PLAIN, it->instruction, "", "");
}

/* ------------------------------------------------------------------ tokenization */

/* tokenizer(text, truncation=True, max_length=cutoff) then, with eos_id >= 0,
 * the eos rule of finetune.py's tokenize() */
static int tokenize_cut(const struct bpe_tokenizer *t, const char *text, size_t cutoff,
                        int32_t eos_id, int32_t **out, size_t *n_out)
{
    const int32_t *pre, *suf;
    int np, ns;
    int32_t *body, *ids;
    size_t nb, n = 0;
    int rc;

    bpe_template(t, &pre, &np, &suf, &ns);
    if (cutoff <= (size_t)(np + ns))
        return rl_error_set(RL_ERR_ARG, "cutoff length %zu leaves no room for text beside the "
                            "tokenizer's %d special tokens", cutoff, np + ns);
    if ((rc = bpe_encode(t, text, strlen(text), false, &body, &nb)) != RL_OK)
        return rc;
    if (nb > cutoff - (size_t)(np + ns))
        nb = cutoff - (size_t)(np + ns);
    ids = xmalloc_array(cutoff + 1, sizeof(*ids));
    for (int k = 0; k < np; k++)
        ids[n++] = pre[k];
    if (nb)
        memcpy(ids + n, body, nb * sizeof(*ids));
    n += nb;
    for (int k = 0; k < ns; k++)
        ids[n++] = suf[k];
    if (eos_id >= 0 && n > 0 && ids[n - 1] != eos_id && n < cutoff)
        ids[n++] = eos_id;
    free(body);
    *out = ids;
    *n_out = n;
    return RL_OK;
}

void cs_example_free(struct cs_example *ex)
{
    free(ex->ids);
    free(ex->target);
    ex->ids = NULL;
    ex->target = NULL;
    ex->n = 0;
}

int cs_tokenize_train(const struct bpe_tokenizer *t, const struct cs_item *it, int32_t eos_id,
                      size_t cutoff, bool train_on_inputs, struct cs_example *ex)
{
    char *full = cs_train_prompt(it, true);
    size_t user_len = 0;
    int rc = tokenize_cut(t, full, cutoff, eos_id, &ex->ids, &ex->n);

    free(full);
    if (rc == RL_OK && !train_on_inputs) {
        char *user = cs_train_prompt(it, false);
        int32_t *uids;
        rc = tokenize_cut(t, user, cutoff, -1, &uids, &user_len);
        free(user);
        if (rc == RL_OK)
            free(uids);
    }
    if (rc != RL_OK) {
        cs_example_free(ex);
        return rc;
    }
    ex->target = xmalloc(ex->n ? ex->n : 1);
    for (size_t i = 0; i < ex->n; i++)
        ex->target[i] = i > 0 && i >= user_len;
    return RL_OK;
}

/* ------------------------------------------------------------------ evaluation */

/* Python's str.isspace() */
static bool py_space(uint32_t c)
{
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
           c == 0x202F || c == 0x205F || c == 0x3000;
}

/* the code point of the (valid or not) UTF-8 sequence of k bytes at s */
static uint32_t decode_at(const unsigned char *s, size_t k)
{
    static const unsigned char lead_mask[5] = { 0, 0x7F, 0x1F, 0x0F, 0x07 };
    uint32_t c = s[0] & lead_mask[k];

    for (size_t j = 1; j < k; j++)
        c = (c << 6) | (s[j] & 0x3F);
    return c;
}

static size_t seq_len(unsigned char b)
{
    return b < 0x80 ? 1 : b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC0 ? 2 : 1;
}

char *cs_response(const char *decoded)
{
    static const char MARK[] = "### Response:";
    const char *p = decoded, *q, *end;
    char *out;

    while ((q = strstr(p, MARK)))
        p = q + sizeof(MARK) - 1;
    end = p + strlen(p);
    while (p < end) {                                  /* strip the front */
        size_t k = seq_len((unsigned char)*p);
        if (p + k > end || !py_space(decode_at((const unsigned char *)p, k)))
            break;
        p += k;
    }
    while (end > p) {                                  /* and the back */
        const char *s = end - 1;
        while (s > p && ((unsigned char)*s & 0xC0) == 0x80 && end - s < 4)
            s--;
        if (seq_len((unsigned char)*s) != (size_t)(end - s) ||
            !py_space(decode_at((const unsigned char *)s, (size_t)(end - s))))
            break;
        end = s;
    }
    out = xmalloc((size_t)(end - p) + 1);
    memcpy(out, p, (size_t)(end - p));
    out[end - p] = '\0';
    return out;
}

static const char *const ALTERNATIVES[][6] = {
    [CS_KIND_TRUE_FALSE] = { "true", "false" },
    [CS_KIND_SOLUTION]   = { "solution1", "solution2" },
    [CS_KIND_ANSWER]     = { "answer1", "answer2", "answer3", "answer4", "answer5" },
    [CS_KIND_ENDING]     = { "ending1", "ending2", "ending3", "ending4" },
    [CS_KIND_OPTION]     = { "option1", "option2" },
};

const char *cs_extract_answer(enum cs_answer_kind kind, const char *response)
{
    for (const char *p = response; *p; p++)
        for (int k = 0; k < 6 && ALTERNATIVES[kind][k]; k++)
            if (strncmp(p, ALTERNATIVES[kind][k], strlen(ALTERNATIVES[kind][k])) == 0)
                return ALTERNATIVES[kind][k];
    return "";
}

bool cs_is_correct(enum cs_answer_kind kind, const char *decoded, const char *label)
{
    char *r = cs_response(decoded);
    bool ok = strcmp(cs_extract_answer(kind, r), label) == 0;

    free(r);
    return ok;
}

double cs_accuracy(const struct cs_score *s)
{
    return s->total ? (double)s->correct / (double)s->total : NAN;
}

double cs_mean_accuracy(const struct cs_score *s, size_t n)
{
    double sum = 0;
    size_t k = 0;

    for (size_t i = 0; i < n; i++)
        if (s[i].total) {
            sum += cs_accuracy(&s[i]);
            k++;
        }
    return k ? sum / (double)k : NAN;
}
