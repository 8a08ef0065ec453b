/*
 * bpe_tokenizer.h: byte-level BPE from a Hugging Face tokenizer.json, as the
 * `tokenizers` library encodes it for GPT-2, Llama 3 and Qwen2 (golden ids
 * from tests/ref/bpe_golden.py; docs/models.md, "Tokenizer (tokenizer.json)").
 * The CLIP text tower's tokenizer is a different one (tokenizer.h).
 *
 *     struct bpe_tokenizer *tok;
 *     int rc = bpe_tokenizer_load(&tok, "Qwen2-0.5B/tokenizer.json");
 *     if (rc != RL_OK) { fprintf(stderr, "randlora: %s\n", rl_error_msg()); return rl_exit_code(rc); }
 *     int32_t *ids; size_t n;
 *     rc = bpe_encode(tok, text, strlen(text), true, &ids, &n);   // true: the post-processor's BOS
 *     char *back; size_t len;
 *     rc = bpe_decode(tok, ids, n, true, &back, &len);            // true: skip special tokens
 *     free(ids); free(back);
 *     bpe_tokenizer_free(tok);
 *
 * Encoding, per text (the order of tokenizers' TokenizerImpl::encode):
 *   1. bytes that are not UTF-8: each maximal invalid subpart becomes U+FFFD
 *      (what Python's bytes.decode(errors="replace") gives the library);
 *   2. added tokens with normalized=false are cut out of the raw text
 *      (leftmost, then longest; lstrip / rstrip take the White_Space next to
 *      them; single_word needs no word character (\w as Rust's regex crate
 *      has it) on either side);
 *   3. the normalizer on each remaining piece: none or NFC (ICU);
 *   4. added tokens with normalized=true (their content normalized too) are
 *      cut out of the normalized text;
 *   5. the pre-tokenizers in order on each remaining piece: Split with a
 *      Regex or String pattern (behavior Isolated or Removed, invert false),
 *      then ByteLevel (add_prefix_space; use_regex: GPT-2's pattern), which
 *      must come last; empty pieces are dropped;
 *   6. BPE per piece on its byte symbols (model.ignore_merges: a piece that
 *      is itself in the vocabulary is one token), merging the lowest-ranked
 *      pair first, ties to the left, as tokenizers' Word::merge_all;
 *   7. with add_special, the post-processor's single-sequence template
 *      (TemplateProcessing: Llama 3's <|begin_of_text|> $A); ByteLevel or
 *      none adds nothing (GPT-2, Qwen2).
 * Regexes are Oniguruma's in tokenizers and PCRE2 here: \s \S \d \D \w \W
 * are rewritten to the Unicode sets Oniguruma gives them (\s: White_Space,
 * \d: Nd, \w: L, M, Nd, Pc) before compiling with UTF + UCP.
 * Refused at load, with one line naming the file and key: a model other
 * than BPE, byte_fallback, a continuing_subword_prefix or end_of_word_suffix,
 * dropout, other normalizers, pre-tokenizers, post-processors and decoders,
 * a vocabulary without the 256 byte symbols, ids outside [0, BPE_MAX_ID],
 * merges naming tokens that are not in the vocabulary. "truncation" and
 * "padding" are ignored (the caller cuts and pads ids).
 *
 * Decoding: each id becomes its added-token content (normalized when the
 * token is, as tokenizers' id_to_token gives it) or vocabulary string
 * (skip_special drops added tokens marked special), the ByteLevel decoder
 * maps each token's symbols back to bytes (a token with a character that is
 * not a byte symbol is copied as its UTF-8), and invalid UTF-8 in the result
 * becomes U+FFFD, as tokenizers' decode does.
 *
 * A loaded tokenizer is immutable: any number of threads may encode and
 * decode with it at once. Every failure leaves one line in rl_error_msg().
 */
#ifndef RANDLORA_MODELS_BPE_TOKENIZER_H
#define RANDLORA_MODELS_BPE_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BPE_MAX_ID         ((int32_t)1 << 24)   /* largest id accepted: 16,777,216 */
#define BPE_MAX_FILE_BYTES ((size_t)1 << 28)    /* tokenizer.json size limit: 256 MiB */
#define BPE_MAX_TEXT_BYTES ((size_t)1 << 26)    /* longest text bpe_encode takes: 64 MiB */

struct bpe_tokenizer;

/* Load and check a tokenizer.json. RL_ERR_IO when it cannot be read,
 * RL_ERR_FORMAT (malformed or unsupported, the line names the key). */
int  bpe_tokenizer_load(struct bpe_tokenizer **out, const char *tokenizer_json);
void bpe_tokenizer_free(struct bpe_tokenizer *t);

/* The ids of len bytes of text (any bytes; see steps 1-7). *ids is
 * allocated (caller frees; NULL when *n is 0). RL_ERR_ARG when len exceeds
 * BPE_MAX_TEXT_BYTES or the regex engine gives up (its match limit). */
int  bpe_encode(const struct bpe_tokenizer *t, const char *text, size_t len, bool add_special,
                int32_t **ids, size_t *n);

/* Text of n ids (allocated, NUL-terminated; *len may be NULL). RL_ERR_ARG
 * naming the first id that is neither an added token nor in the vocabulary. */
int  bpe_decode(const struct bpe_tokenizer *t, const int32_t *ids, size_t n, bool skip_special,
                char **text, size_t *len);

/* 1 + the largest id of the vocabulary and the added tokens */
int32_t bpe_vocab_size(const struct bpe_tokenizer *t);
/* The id of a token string (added tokens first, then the vocabulary; the
 * vocabulary holds byte symbols: " the" is "Ġthe"), -1 when there is none. */
int32_t bpe_token_id(const struct bpe_tokenizer *t, const char *token);
/* The id the post-processor puts first with add_special (Llama 3's
 * <|begin_of_text|>), -1 when it puts none (GPT-2, Qwen2). */
int32_t bpe_bos_id(const struct bpe_tokenizer *t);
/* The post-processor's single template: the ids before and after the
 * text (pointers into t; counts 0 when there are none). */
void bpe_template(const struct bpe_tokenizer *t, const int32_t **prefix, int *n_prefix,
                  const int32_t **suffix, int *n_suffix);
/* Whether id is an added token marked special. */
bool bpe_is_special(const struct bpe_tokenizer *t, int32_t id);

#endif /* RANDLORA_MODELS_BPE_TOKENIZER_H */
