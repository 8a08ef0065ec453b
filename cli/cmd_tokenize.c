/*
 * cmd_tokenize.c: `randlora tokenize`: byte-level BPE from a tokenizer.json
 * (models/bpe_tokenizer.h) on the lines of a file, to compare with what
 * Hugging Face `tokenizers` gives: --text encodes each line into a line of
 * ids, --ids decodes each line of ids into a line of text.
 *
 * Exit status: 0; 2 bad usage or bad input (the tokenizer.json, the input
 * file, an id that is not a number or not below the vocabulary size, a
 * text over the tokenizer's limit); 1 a failed write.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "core/read_file.h"
#include "core/status.h"
#include "models/bpe_tokenizer.h"

#define MAX_INPUT ((size_t)1 << 30)

static const char USAGE[] =
    "usage: randlora tokenize --tokenizer FILE (--text FILE | --ids FILE) [--no-special]\n"
    "                         [--keep-special]\n"
    "Byte-level BPE from a Hugging Face tokenizer.json, line by line (docs/models.md).\n"
    "  --tokenizer FILE  the tokenizer.json (GPT-2, Llama 3, Qwen2 style)\n"
    "  --text FILE       encode each line of FILE (its bytes without the newline): prints\n"
    "                    one line of space-separated ids per line\n"
    "  --ids FILE        decode each line of whitespace-separated ids: prints one line of text\n"
    "  --no-special      with --text: no template tokens (Llama 3's <|begin_of_text|>)\n"
    "  --keep-special    with --ids: keep special tokens in the text (skipped by default)\n";

static int encode_lines(const struct bpe_tokenizer *t, const char *path, const char *buf,
                        size_t len, bool special)
{
    size_t pos = 0, line = 0;

    while (pos < len) {
        const char *s = buf + pos, *nl = memchr(s, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - s) : len - pos, k;
        int32_t *ids;
        int rc;

        pos += n + (nl ? 1 : 0);
        line++;
        if ((rc = bpe_encode(t, s, n, special, &ids, &k)) != RL_OK)
            return cli_bad("tokenize", false, "%s:%zu: %s", path, line, rl_error_msg());
        for (size_t i = 0; i < k; i++)
            printf(i ? " %d" : "%d", (int)ids[i]);
        putchar('\n');
        free(ids);
    }
    return 0;
}

static int decode_lines(const struct bpe_tokenizer *t, const char *path, char *buf, size_t len,
                        bool keep_special)
{
    size_t pos = 0, line = 0;
    int32_t *ids = malloc((len / 2 + 1) * sizeof(*ids));

    if (!ids)
        return cli_bad("tokenize", false, "%s: out of memory", path);
    while (pos < len) {
        char *s = buf + pos, *nl = memchr(s, '\n', len - pos), *p, *end_line, *text;
        size_t n = 0, tl, ll = nl ? (size_t)(nl - s) : len - pos;

        pos += ll + (nl ? 1 : 0);
        end_line = s + ll;
        *end_line = '\0';                 /* the newline, or buf[len] (NUL already) */
        line++;
        for (p = s; p < end_line;) {
            char *end;
            long v;
            if (*p == ' ' || *p == '\t' || *p == '\r') {
                p++;
                continue;
            }
            errno = 0;
            v = strtol(p, &end, 10);
            if (end == p || errno || v < 0 || v >= bpe_vocab_size(t) ||
                (end < end_line && *end != ' ' && *end != '\t' && *end != '\r')) {
                free(ids);
                return cli_bad("tokenize", false, "%s:%zu: '%.20s' is not an id in [0, %d)", path,
                               line, p, (int)bpe_vocab_size(t));
            }
            ids[n++] = (int32_t)v;
            p = end;
        }
        if (bpe_decode(t, ids, n, !keep_special, &text, &tl) != RL_OK) {
            free(ids);
            return cli_bad("tokenize", false, "%s:%zu: %s", path, line, rl_error_msg());
        }
        fwrite(text, 1, tl, stdout);
        putchar('\n');
        free(text);
    }
    free(ids);
    return 0;
}

int cmd_tokenize(int argc, char **argv)
{
    const char *tok_path = NULL, *text_path = NULL, *ids_path = NULL;
    bool special = true, keep_special = false;
    struct bpe_tokenizer *t;
    char *buf;
    size_t len;
    int rc, status;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help")) {
            fputs(USAGE, stdout);
            return 0;
        }
        if (!strcmp(a, "--no-special")) {
            special = false;
        } else if (!strcmp(a, "--keep-special")) {
            keep_special = true;
        } else if (i + 1 < argc && !strcmp(a, "--tokenizer")) {
            tok_path = argv[++i];
        } else if (i + 1 < argc && !strcmp(a, "--text")) {
            text_path = argv[++i];
        } else if (i + 1 < argc && !strcmp(a, "--ids")) {
            ids_path = argv[++i];
        } else {
            return cli_bad("tokenize", true, "unexpected argument '%s'", a);
        }
    }
    if (!tok_path || !text_path == !ids_path)
        return cli_bad("tokenize", true, "needs --tokenizer and one of --text and --ids");
    if ((rc = bpe_tokenizer_load(&t, tok_path)) != RL_OK) {
        fprintf(stderr, "randlora tokenize: %s\n", rl_error_msg());
        return rl_exit_code(rc);
    }
    rc = rl_read_file(text_path ? text_path : ids_path, MAX_INPUT, &buf, &len);
    if (rc != RL_OK) {
        fprintf(stderr, "randlora tokenize: %s\n", rl_error_msg());
        bpe_tokenizer_free(t);
        return rl_exit_code(rc);
    }
    status = text_path ? encode_lines(t, text_path, buf, len, special)
                       : decode_lines(t, ids_path, buf, len, keep_special);
    free(buf);
    bpe_tokenizer_free(t);
    if (status == 0 && (fflush(stdout) != 0 || ferror(stdout))) {
        fprintf(stderr, "randlora tokenize: writing the output failed: %s\n", strerror(errno));
        return 1;
    }
    return status;
}
