/*
 * tokenizer_impl.h: INTERNAL to the tokenizer files in models/ (tokenizer.c,
 * tokenizer_tables.c, tokenizer_text.c, tokenizer_load.c,
 * tokenizer_encode.c): the layout of struct tokenizer and the helpers they
 * share. Not for use anywhere else; the public interface is tokenizer.h.
 * One exception: the byte-level BPE of tokenizer.json (bpe_tokenizer*.c)
 * keeps its vocabulary and merges in a struct tokenizer's tables and uses
 * the UTF-8 helpers, the byte-symbol map and tok_parse_json.
 *
 * Layout: token strings live in one pool; a string -> id open-addressing
 * table serves the vocabulary, a (left id, right id) -> (rank, merged id)
 * table the merges. BPE runs per word on a linked list of symbols with a
 * min-heap of candidate pairs ordered by (rank, position); all entries of
 * the lowest rank are taken at once and merged left to right, which is the
 * reference's "merge every occurrence of the best pair, then look again"
 * in O(n log n) instead of its O(n^2) (a long hostile word stays cheap).
 */
#ifndef RANDLORA_MODELS_TOKENIZER_IMPL_H
#define RANDLORA_MODELS_TOKENIZER_IMPL_H

#include <locale.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "models/tokenizer.h"

#define TOK_EOW "</w>"
#define TOK_EOW_LEN 4
#define TOK_SOT_STR "<|startoftext|>"
#define TOK_EOT_STR "<|endoftext|>"

struct vslot { uint32_t off, len, hash; int32_t id; };         /* off == UINT32_MAX: empty */
struct mslot { int32_t a, b, rank, id; };                       /* a < 0: empty */
struct dslot { int32_t id; uint32_t off, len, seq; };

struct tokenizer {
    enum tok_kind kind;
    int ctx;
    int32_t pad;
    bool truncate;
    int32_t sot, eot, vocab_size;
    int32_t offset;                  /* TOK_BYTES */

    /* TOK_BPE */
    char *pool;
    size_t pool_len, pool_cap;
    struct vslot *vtab;
    size_t vcap, vcount;
    struct mslot *mtab;
    size_t mcap, mcount;
    struct dslot *dec;
    size_t ndec;
    int32_t byte_id[256], byte_end_id[256];
    char byte_sym[256][3];           /* UTF-8 of bytes_to_unicode(b), NUL-terminated */
    int16_t cp_byte[0x144];          /* inverse map, -1 where none */
    pcre2_code *re, *re_cased, *re_ignorable;
    locale_t loc;
};

struct cJSON;

/* tokenizer_load.c: byte_sym / cp_byte filled with GPT-2's bytes_to_unicode;
 * buf[0..len] (buf[len] == NUL) parsed as one JSON value, RL_ERR_FORMAT
 * "PATH:LINE:COL: malformed JSON" otherwise. */
void tok_bytes_to_unicode(struct tokenizer *t);
/* obj (a JSON object token -> integer id in [0, 2^31 - 1), named what in
 * errors) into the vocabulary; RL_ERR_FORMAT when it is not one or empty */
int tok_load_vocab(struct tokenizer *t, const struct cJSON *obj, const char *file, const char *what);
/* the merge a + b at rank: a, b and their concatenation must be in the
 * vocabulary (RL_ERR_FORMAT "WHERE: merge token 'a' is not in VFILE") */
int tok_add_merge(struct tokenizer *t, const char *a, size_t na, const char *b, size_t nb,
                  int32_t rank, const char *where, const char *vfile);
int tok_parse_json(const char *path, const char *buf, size_t len, struct cJSON **out);

/* tokenizer.c: a zeroed tokenizer of that kind with the default framing */
struct tokenizer *tok_alloc(enum tok_kind kind);

/* tokenizer_tables.c: the vocabulary (string -> id; -1 when absent; put
 * overwrites, RL_ERR_FORMAT naming file when the pool outgrows 32-bit
 * offsets) and the merges ((a, b) -> rank and merged id; NULL when absent;
 * a repeated pair keeps its last rank). */
int32_t tok_vocab_get(const struct tokenizer *t, const char *s, size_t n);
int tok_vocab_put(struct tokenizer *t, const char *s, size_t n, int32_t id, const char *file);
void tok_merge_put(struct tokenizer *t, int32_t a, int32_t b, int32_t rank, int32_t id);
const struct mslot *tok_merge_get(const struct tokenizer *t, int32_t a, int32_t b);

/* tokenizer_text.c: UTF-8 (put writes 1..4 bytes to o and returns the
 * count; decode turns n bytes into at most n code points, see there), the
 * normalisation of tokenizer.h steps 1-3, and the compilation of the
 * regexes (t->re is the pre-tokenisation pattern of step 4) and the C.UTF-8
 * locale, done once a BPE vocabulary is loaded. */
int tok_utf8_put(uint32_t c, char *o);
size_t tok_utf8_decode(const uint8_t *s, size_t n, uint32_t *out);
char *tok_normalize(const struct tokenizer *t, const char *text, size_t len, size_t *out_len);
int tok_text_init(struct tokenizer *t);

#endif /* RANDLORA_MODELS_TOKENIZER_IMPL_H */
