/*
 * tokenizer.h: text -> token ids for the text tower. Two kinds behind one
 * opaque struct (facts in shared/reference/clip.md section 5):
 *
 *   TOK_BPE    CLIP's byte-level BPE (openai/CLIP simple_tokenizer.py), loaded
 *              from vocab.json + merges.txt or from a tokenizer.json;
 *   TOK_BYTES  a byte-level tokenizer (clip-tiny): every byte b of the text
 *              is one id, b + offset; no normalisation, any bytes accepted.
 *
 * Both frame and pad the same way, as clip.tokenize(..., truncate=True)
 * does: [sot] + tokens + [eot], cut to the context length with the end token
 * forced into the last slot, then padded with pad_id. Defaults: context 77,
 * pad 0 (OpenAI; Hugging Face pads with the end token: tok_set_frame(t, 77,
 * tok_eot(t), true)). With truncate off, a text that does not fit is an
 * RL_ERR_ARG error instead. The padding value never changes a CLIP text
 * embedding (causal attention, pooling at the first end token).
 *
 * CLIP BPE, per text (identical ids to the reference, tested against a port
 * of SimpleTokenizer in tests/ref/make_tokenizer_fixture.py):
 *   1. UTF-8 decode; invalid input is REPLACED, not rejected: each maximal
 *      invalid subpart becomes U+FFFD, as Python's
 *      bytes.decode("utf-8", errors="replace") does (NUL bytes are ordinary
 *      characters with tok_encode_n);
 *   2. whitespace clean-up: runs of the regex's \s (Unicode White_Space)
 *      become one space, then characters Python's str.isspace() accepts
 *      (which adds U+001C..U+001F) are stripped from both ends;
 *   3. lower-casing as Python's str.lower(): Unicode simple lowercase from
 *      glibc's C.UTF-8 tables (identical to Python 3.11 for every code point
 *      but U+0130, handled: "i" + U+0307), and Greek final sigma by the
 *      Final_Sigma rule (\p{Cased} and \p{Case_Ignorable} from PCRE2);
 *   4. pre-tokenisation with the reference regex (PCRE2, UTF + UCP +
 *      CASELESS as IGNORECASE), \s spelt out as White_Space so that U+180E
 *      is not a separator, as in Python's `regex` module:
 *        <\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|
 *        [\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
 *      A literal "<|startoftext|>" / "<|endoftext|>" in the text becomes the
 *      special id, as in the reference (so an end token may come early;
 *      *eot_pos reports the FIRST one, where CLIP pools);
 *   5. BPE per word over the byte-to-unicode symbols with "</w>" on the last
 *      one, merging the lowest-ranked pair (all its non-overlapping
 *      occurrences, left to right) until no pair has a rank.
 * Not done, as in Hugging Face's tokenizers and unlike OpenAI's encode:
 * ftfy.fix_text and html.unescape ("&amp;" stays three words). Not done by
 * either reference without ftfy: NFC (Hugging Face fast applies it), so
 * decomposed input ("e" + U+0301) gives different ids from HF fast.
 * No per-word cache: the tokenizer is immutable after loading, so any number
 * of threads may encode with one tokenizer at once.
 *
 * Files (read as hostile; any problem is RL_ERR_FORMAT, or RL_ERR_IO when a
 * file cannot be read, with one line naming the file and, where there is
 * one, the line or token):
 *   - vocab.json: an object of token -> integer id in [0, 2^31 - 1); a repeated
 *     token keeps its last id (as Python's json does). It must hold the
 *     512 byte symbols (with and without "</w>"), "<|startoftext|>" and
 *     "<|endoftext|>" (the reference builds its vocabulary that way).
 *   - merges.txt: line 1 must be the "#version: ..." header (the references
 *     disagree on a file without one: OpenAI and HF slow drop line 1
 *     unconditionally, HF fast keeps it, so such a file is rejected rather
 *     than guessed at); then one "left right" pair per line; both sides and
 *     their concatenation must be in the vocabulary. As in the reference only
 *     the first 48,894 merges are used (the rest of the line list is
 *     ignored); trailing empty lines and "\r" line ends are accepted; a
 *     repeated pair keeps its last rank (Python's dict).
 *   - tokenizer.json: model.vocab and model.merges, merges as "a b" strings
 *     or as ["a", "b"] lists; the specials may also come from added_tokens;
 *     model.type, if present, must be "BPE" and model.end_of_word_suffix, if
 *     present, "</w>".
 *
 * Usage:
 *
 *     struct tokenizer *tok;
 *     int rc = tok_load_dir(&tok, "clip-vit-base-patch32");  // vocab.json+merges.txt, else tokenizer.json
 *     if (rc != RL_OK) return rc;                             // message already set
 *     int32_t ids[2 * 77];
 *     int eot[2];
 *     rc = tok_encode_batch(tok, (const char *[]){"a photo of a cat.", "a dog"}, 2, ids, eot);
 *     // ids[0..7] = 49406 320 1125 539 320 2368 269 49407, then 0s; eot[0] = 7
 *     tok_free(tok);
 *
 *     struct tokenizer *bt = tok_new_bytes(0, 256, 257);      // clip-tiny: 258 ids
 */
#ifndef RANDLORA_MODELS_TOKENIZER_H
#define RANDLORA_MODELS_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum tok_kind { TOK_BPE, TOK_BYTES };

#define TOK_CLIP_CONTEXT    77
#define TOK_CLIP_MAX_MERGES 48894   /* 49152 - 256 - 2: the reference's merges slice */

/* The longest text tok_encode_n frames, in bytes (1 MiB; a 77-token row
 * holds a few hundred bytes of prose). Its work is bounded by it: the text
 * is normalised whole (about 8 bytes per input byte), then BPE runs word by
 * word, about 110 bytes per byte of the longest word, and stops at the
 * words the row needs. */
#define TOK_MAX_TEXT_BYTES ((size_t)1 << 20)

struct tokenizer;

/* CLIP BPE from the two Hugging Face slow-tokenizer files. */
int tok_load_bpe(struct tokenizer **out, const char *vocab_json, const char *merges_txt);

/* CLIP BPE from a tokenizer.json (model.vocab + model.merges). */
int tok_load_json(struct tokenizer **out, const char *tokenizer_json);

/* DIR/vocab.json + DIR/merges.txt when both exist, else DIR/tokenizer.json;
 * RL_ERR_IO naming DIR when neither is there. */
int tok_load_dir(struct tokenizer **out, const char *dir);

/* Byte-level: id(b) = b + offset for every byte; sot and eot must be >= 0
 * and outside [offset, offset + 255] (abort otherwise: a programming error). */
struct tokenizer *tok_new_bytes(int32_t offset, int32_t sot, int32_t eot);

void tok_free(struct tokenizer *t);

enum tok_kind tok_kind(const struct tokenizer *t);
int32_t tok_sot(const struct tokenizer *t);
int32_t tok_eot(const struct tokenizer *t);
/* 1 + the largest id the tokenizer can produce (BPE: largest vocab id;
 * the pad id is not counted). */
int32_t tok_vocab_size(const struct tokenizer *t);
int tok_context(const struct tokenizer *t);

/* Framing: context length >= 2, pad_id >= 0, truncate as described above.
 * RL_ERR_ARG on a bad value. */
int tok_set_frame(struct tokenizer *t, int context, int32_t pad_id, bool truncate);

/* The unframed ids of len bytes of text (no sot/eot, no padding, no limit;
 * its work grows with len, so callers bound len):
 * *ids is allocated (caller frees; NULL when *n is 0). Always RL_OK for a
 * loaded tokenizer. */
int tok_tokenize(const struct tokenizer *t, const char *text, size_t len,
                 int32_t **ids, size_t *n);

/* One framed row of tok_context(t) ids; *eot_pos (may be NULL) = index of
 * the first end token. RL_ERR_ARG when the text does not fit and truncation
 * is off (ids are then still written, truncated), and when it is longer
 * than TOK_MAX_TEXT_BYTES ("a text of N bytes is longer than the
 * tokenizer's limit of 1048576 bytes"; nothing written). Only the words
 * the row needs go through BPE. tok_encode takes a NUL-terminated string,
 * tok_encode_n any bytes. */
int tok_encode_n(const struct tokenizer *t, const char *text, size_t len,
                 int32_t *ids, int *eot_pos);
int tok_encode(const struct tokenizer *t, const char *text, int32_t *ids, int *eot_pos);

/* n NUL-terminated strings into ids[n * tok_context(t)] (row-major) and, if
 * not NULL, eot_pos[n]. Stops at the first failing string. */
int tok_encode_batch(const struct tokenizer *t, const char *const *texts, size_t n,
                     int32_t *ids, int *eot_pos);

/* Text of ids, as the reference's decode: token strings concatenated,
 * "</w>" -> " ", symbols mapped back to bytes (byte-level: the bytes).
 * sot, eot and the pad id 0 of a row are NOT skipped; pass the span you
 * want. Ids the vocabulary lacks give RL_ERR_ARG. *text is allocated and
 * NUL-terminated, *len (may be NULL) its length in bytes. */
int tok_decode(const struct tokenizer *t, const int32_t *ids, size_t n, char **text, size_t *len);

#endif /* RANDLORA_MODELS_TOKENIZER_H */
