/*
 * cmd_score.c: `randlora score`: per-token next-token log-probabilities of
 * sequences under a Llama-family decoder, into a plain HDF5 file.
 *
 *     randlora score --model DIR|PRESET (--ids FILE | --text FILE) -o OUT.h5
 *                    [--batch N] [--seed N]
 *         /ids            int32   [N, T]    each line's ids, padded with -1
 *         /token_logprob  float32 [N, T-1]  log p(id[t+1] | id[0..t]); NaN
 *                                           past a line's end
 *         /logprob        float64 [N]       the sum of a line's entries
 *     root attributes (strings): model, source, kind ("ids" or "text"),
 *     harness ("randlora score")
 *     (T is the longest line; T-1 is at least 1 column.)
 *
 * --ids FILE: one sequence per line, whitespace-separated decimal ids, each
 * below the model's vocab_size, at most max_position_embeddings per line;
 * an empty line is an error (it has no tokens to score). --text FILE: one
 * text per line (a trailing "\r" dropped) through the model directory's
 * tokenizer.json (models/bpe_tokenizer.h) with its special tokens, as
 * tokenizers' encode(text) gives them (Llama 3: <|begin_of_text|> first;
 * Qwen2: none); the same limits on the ids, and a line that encodes to no
 * token is an error. A preset has no tokenizer: --text is refused.
 *
 * Lines run in batches of --batch (default 8), padded on the right: causal
 * attention keeps the padding from changing any scored position. The file
 * goes through OUT.tmp.PID and a rename (cli/h5out.h).
 *
 * Exit status: 0 written; 2 bad usage or bad input (one line on stderr
 * naming the file, line or key); 1 other failures.
 */
#include <ctype.h>
#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "cli/h5out.h"
#include "core/alloc.h"
#include "core/read_file.h"
#include "core/status.h"
#include "core/threads.h"
#include "core/timer.h"
#include "experiments/lm_model.h"
#include "models/bpe_tokenizer.h"
#include "models/llama.h"

#define SCORE_DEFAULT_BATCH 8
#define SCORE_MAX_BATCH     4096
#define IDS_MAX_BYTES       ((size_t)1 << 30)

static void score_usage(FILE *out)
{
    fprintf(out,
            "usage: randlora score --model DIR|PRESET (--ids FILE | --text FILE) -o OUT.h5\n"
            "                      [--run RUN.h5] [--batch N] [--seed N]\n"
            "\n"
            "Per-token next-token log-probabilities of each line under a Llama-family\n"
            "decoder (a Hugging Face LlamaForCausalLM or Qwen2ForCausalLM directory:\n"
            "config.json, model.safetensors or model.safetensors.index.json + shards;\n"
            "or a built-in preset, randomly initialised: %s%s%s).\n"
            "\n"
            "  --model M      the model directory or preset\n"
            "  --ids FILE     one sequence per line: whitespace-separated token ids\n"
            "  --text FILE    one text per line through the model directory's\n"
            "                 tokenizer.json (special tokens added as the tokenizer does)\n"
            "  -o OUT.h5      the output: /ids int32 [N,T] (padded with -1),\n"
            "                 /token_logprob float32 [N,T-1] (NaN past a line's end),\n"
            "                 /logprob float64 [N] (each line's sum)\n"
            "  --run RUN.h5   with the trained adapters of a decoder run (its results\n"
            "                 file; the model must be the run's)\n"
            "  --batch N      lines per forward (default %d)\n"
            "  --seed N       a preset's random-init seed (default 0)\n",
            llama_preset_names()[0], llama_preset_names()[1] ? ", " : "",
            llama_preset_names()[1] ? llama_preset_names()[1] : "", SCORE_DEFAULT_BATCH);
}

#define bad_usage(...) cli_bad("score", true, __VA_ARGS__)

/* the sequences of an ids file */
struct seqs {
    size_t n;                   /* lines                                    */
    size_t *off, *len;          /* (n) into ids                             */
    int32_t *ids;
    size_t max_len;
};

static void seqs_free(struct seqs *s)
{
    free(s->off);
    free(s->len);
    free(s->ids);
    memset(s, 0, sizeof(*s));
}

/* append one line's n ids (checked against V and max_T) to s */
static int seqs_add(struct seqs *s, size_t *cap_lines, size_t *cap_ids, const int32_t *ids,
                    size_t n, const char *path, size_t line, size_t V, size_t max_T)
{
    size_t total = s->n ? s->off[s->n - 1] + s->len[s->n - 1] : 0;

    if (n == 0)
        return rl_error_set(RL_ERR_FORMAT, "%s: line %zu is empty (every line needs at least "
                            "one token)", path, line);
    if (n > max_T)
        return rl_error_set(RL_ERR_FORMAT, "%s: line %zu: more than %zu ids (the model's "
                            "max_position_embeddings)", path, line, max_T);
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || (size_t)ids[i] >= V)
            return rl_error_set(RL_ERR_FORMAT, "%s: line %zu: id %ld is outside the model's "
                                "vocabulary (0..%zu)", path, line, (long)ids[i], V - 1);
    if (s->n == *cap_lines) {
        *cap_lines = *cap_lines ? 2 * *cap_lines : 16;
        s->off = xrealloc_array(s->off, *cap_lines, sizeof(size_t));
        s->len = xrealloc_array(s->len, *cap_lines, sizeof(size_t));
    }
    while (total + n > *cap_ids) {
        *cap_ids = *cap_ids ? 2 * *cap_ids : 256;
        s->ids = xrealloc_array(s->ids, *cap_ids, sizeof(int32_t));
    }
    memcpy(s->ids + total, ids, n * sizeof(int32_t));
    s->off[s->n] = total;
    s->len[s->n++] = n;
    if (n > s->max_len)
        s->max_len = n;
    return RL_OK;
}

/* the ids of one line of an ids file: whitespace-separated decimal numbers
 * (*n of them into buf, at most cap; more is "too many") */
static int parse_id_line(const char *p, size_t len, const char *path, size_t line,
                         int32_t *buf, size_t cap, size_t *n)
{
    *n = 0;
    for (size_t i = 0; i < len;) {
        unsigned long long v = 0;
        size_t digits = 0;

        if (p[i] == ' ' || p[i] == '\t' || p[i] == '\r') {
            i++;
            continue;
        }
        while (i < len && isdigit((unsigned char)p[i]) && digits < 12) {
            v = v * 10 + (unsigned long long)(p[i++] - '0');
            digits++;
        }
        if (digits == 0 || (i < len && !isspace((unsigned char)p[i])))
            return rl_error_set(RL_ERR_FORMAT, "%s: line %zu: expected whitespace-separated "
                                "token ids (decimal whole numbers)", path, line);
        if (*n == cap) {        /* one past the model's limit: seqs_add refuses it */
            (*n)++;
            return RL_OK;
        }
        buf[(*n)++] = v > INT32_MAX ? INT32_MAX : (int32_t)v;
    }
    return RL_OK;
}

/* Parse FILE, one sequence per line: its ids (tok NULL) or its text
 * through the tokenizer. Every line non-empty, ids < V, at most max_T. */
static int seqs_read(struct seqs *s, const char *path, const struct bpe_tokenizer *tok,
                     size_t V, size_t max_T)
{
    char *text = NULL;
    size_t len = 0, cap_lines = 0, cap_ids = 0, line = 0;
    int32_t *buf = tok ? NULL : xmalloc_array(max_T + 1, sizeof(int32_t));
    int rc = rl_read_file(path, IDS_MAX_BYTES, &text, &len);

    memset(s, 0, sizeof(*s));
    for (size_t i = 0; !rc && i < len;) {
        const char *nl = memchr(text + i, '\n', len - i);
        size_t end = nl ? (size_t)(nl - text) : len, n = 0, ll = end - i;
        int32_t *ids = buf;

        line++;
        if (tok) {
            if (ll > 0 && text[i + ll - 1] == '\r')
                ll--;
            rc = bpe_encode(tok, text + i, ll, true, &ids, &n);
            if (rc)
                rc = rl_error_prefix(rc, "%s: line %zu", path, line);
        } else {
            rc = parse_id_line(text + i, ll, path, line, buf, max_T, &n);
        }
        if (!rc)
            rc = seqs_add(s, &cap_lines, &cap_ids, ids, n, path, line, V, max_T);
        if (tok)
            free(ids);
        i = end + 1;
    }
    free(text);
    free(buf);
    if (!rc && s->n == 0)
        rc = rl_error_set(RL_ERR_FORMAT, "%s: no lines to score", path);
    if (rc)
        seqs_free(s);
    return rc;
}

struct score_args {
    const char *model, *ids, *text, *out, *run;
    size_t batch;
    uint64_t seed;
};

/* score every line and write the file */
static int score_run(const struct score_args *a, const struct llama_model *m,
                     const struct seqs *s, const struct llama_adapters *la)
{
    const size_t T = s->max_len, W = T > 1 ? T - 1 : 1, B = a->batch < s->n ? a->batch : s->n;
    struct llama_run r;
    struct h5out o = { .file = -1 };
    hid_t d_ids = -1, d_tok = -1, d_sum = -1;
    int32_t *ids = xmalloc_array(B * T, sizeof(int32_t)), *tgt = xmalloc_array(B * T, 4);
    int32_t *row_ids = xmalloc_array(B * T, sizeof(int32_t));
    float *lp = xmalloc_array(B * T, sizeof(float)), *tok = xmalloc_array(B * W, sizeof(float));
    double *sum = xmalloc_array(B, sizeof(double)), t0 = timer_now();
    int rc;

    llama_run_init(&r, m, B, T, false);
    if ((rc = h5out_create(&o, a->out)) ||
        (rc = h5out_attr_string(&o, "harness", "randlora score")) ||
        (rc = h5out_attr_string(&o, "kind", a->ids ? "ids" : "text")) ||
        (rc = h5out_attr_string(&o, "model", a->model)) ||
        (rc = h5out_attr_string(&o, "run", a->run ? a->run : "")) ||
        (rc = h5out_attr_string(&o, "source", a->ids ? a->ids : a->text)) ||
        (rc = h5out_dataset(&o, "ids", H5T_STD_I32LE, s->n, T, &d_ids)) ||
        (rc = h5out_dataset(&o, "token_logprob", H5T_IEEE_F32LE, s->n, W, &d_tok)) ||
        (rc = h5out_dataset(&o, "logprob", H5T_IEEE_F64LE, s->n, 0, &d_sum)))
        goto out;
    for (size_t b0 = 0; b0 < s->n && !rc; b0 += B) {
        const size_t nb = s->n - b0 < B ? s->n - b0 : B;
        size_t Tb = 1;

        for (size_t i = 0; i < nb; i++)
            Tb = s->len[b0 + i] > Tb ? s->len[b0 + i] : Tb;
        /* the batch at its own longest line, padded with id 0 (never scored) */
        for (size_t i = 0; i < nb; i++) {
            const int32_t *src = s->ids + s->off[b0 + i];
            const size_t n = s->len[b0 + i];

            for (size_t t = 0; t < Tb; t++) {
                ids[i * Tb + t] = t < n ? src[t] : 0;
                tgt[i * Tb + t] = t + 1 < n ? src[t + 1] : -1;
            }
            for (size_t t = 0; t < T; t++)
                row_ids[i * T + t] = t < n ? src[t] : -1;
        }
        if ((rc = llama_forward(&r, m, la, ids, nb, Tb)))
            break;
        llama_token_logprobs(&r, m, tgt, lp);
        for (size_t i = 0; i < nb; i++) {
            const size_t n = s->len[b0 + i];
            double acc = 0.0;

            for (size_t t = 0; t < W; t++) {
                const bool in = t + 1 < n;

                tok[i * W + t] = in ? lp[i * Tb + t] : NAN;
                if (in)
                    acc += (double)lp[i * Tb + t];
            }
            sum[i] = acc;
        }
        if ((rc = h5out_write_rows(&o, d_ids, H5T_NATIVE_INT32, b0, nb, T, row_ids)) ||
            (rc = h5out_write_rows(&o, d_tok, H5T_NATIVE_FLOAT, b0, nb, W, tok)) ||
            (rc = h5out_write_rows(&o, d_sum, H5T_NATIVE_DOUBLE, b0, nb, 0, sum)))
            break;
    }
    if (rc)
        goto out;
    H5Dclose(d_ids);
    H5Dclose(d_tok);
    H5Dclose(d_sum);
    d_ids = d_tok = d_sum = -1;
    if ((rc = h5out_commit(&o)))
        goto out;
    printf("wrote %s: %zu sequences of up to %zu tokens (%s, %.1f s)\n", a->out, s->n, T,
           a->model, timer_now() - t0);
out:
    if (d_ids >= 0)
        H5Dclose(d_ids);
    if (d_tok >= 0)
        H5Dclose(d_tok);
    if (d_sum >= 0)
        H5Dclose(d_sum);
    h5out_abort(&o);
    llama_run_free(&r);
    free(ids);
    free(tgt);
    free(row_ids);
    free(lp);
    free(tok);
    free(sum);
    return rc;
}

int cmd_score(int argc, char **argv)
{
    struct score_args a = { .batch = SCORE_DEFAULT_BATCH };
    struct llama_model m;
    struct seqs s;
    struct bpe_tokenizer *tok = NULL;
    size_t seed = 0;
    int rc = RL_OK;

    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];

        if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
            score_usage(stdout);
            return 0;
        }
        if (i + 1 >= argc)
            return bad_usage("option '%s' needs a value", o);
        const char *v = argv[++i];
        if (!strcmp(o, "--model"))
            a.model = v;
        else if (!strcmp(o, "--ids"))
            a.ids = v;
        else if (!strcmp(o, "--text"))
            a.text = v;
        else if (!strcmp(o, "--run"))
            a.run = v;
        else if (!strcmp(o, "-o") || !strcmp(o, "--output"))
            a.out = v;
        else if (!strcmp(o, "--batch")) {
            if (cli_parse_count(v, SCORE_MAX_BATCH, &a.batch))
                return bad_usage("--batch '%s': expected a whole number in 1..%d", v,
                                 SCORE_MAX_BATCH);
        } else if (!strcmp(o, "--seed")) {
            if (strcmp(v, "0") && cli_parse_count(v, (size_t)1 << 53, &seed))
                return bad_usage("--seed '%s': expected a whole number", v);
        } else
            return bad_usage("unknown option '%s'", o);
    }
    a.seed = seed;
    if (!a.model)
        return bad_usage("--model DIR is required");
    if (!a.ids == !a.text)
        return bad_usage("give exactly one of --ids FILE and --text FILE");
    if (!a.out || !*a.out)
        return bad_usage("-o OUT.h5 is required");
    if (a.text && llama_is_preset(a.model))
        return cli_bad("score", false, "--text: preset %s has no tokenizer.json; give a "
                       "model directory, or token ids with --ids FILE", a.model);

    threads_init(0);
    if (a.text) {
        char *tpath = rl_path_join(a.model, "tokenizer.json");

        rc = bpe_tokenizer_load(&tok, tpath);
        free(tpath);
    }
    if (!rc && (rc = llama_model_open(&m, a.model, a.seed)) == RL_OK) {
        if ((rc = seqs_read(&s, a.ids ? a.ids : a.text, tok, m.cfg.vocab_size,
                            m.cfg.max_position)) == RL_OK) {
            struct llama_adapters la;
            const size_t B = a.batch < s.n ? a.batch : s.n;

            /* --run: a decoder run's trained adapters (experiments/lm_model.h) */
            if (a.run && (rc = lm_run_adapters_load(a.run, &m, &la, B * s.max_len)) == RL_OK) {
                rc = score_run(&a, &m, &s, &la);
                llama_adapters_free(&la);
            } else if (!a.run) {
                rc = score_run(&a, &m, &s, NULL);
            }
            seqs_free(&s);
        }
        llama_model_free(&m);
    }
    bpe_tokenizer_free(tok);
    if (rc != RL_OK) {
        fprintf(stderr, "randlora score: %s\n", rl_error_msg());
        return rl_exit_code(rc);
    }
    return 0;
}
