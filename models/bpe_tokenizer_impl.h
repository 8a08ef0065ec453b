/*
 * bpe_tokenizer_impl.h: INTERNAL to bpe_tokenizer.c, bpe_tokenizer_load.c
 * and bpe_tokenizer_encode.c: the layout of struct bpe_tokenizer. The
 * public interface is bpe_tokenizer.h.
 *
 * The vocabulary (string -> id) and the merges ((left, right) -> rank,
 * merged id) live in a struct tokenizer's tables (tokenizer_impl.h), which
 * also holds the byte-symbol map. Ids are dense below BPE_MAX_ID, so id ->
 * string is an array (tokens) indexed by id.
 */
#ifndef RANDLORA_MODELS_BPE_TOKENIZER_IMPL_H
#define RANDLORA_MODELS_BPE_TOKENIZER_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "models/bpe_tokenizer.h"
#include "models/tokenizer_impl.h"

#define BPE_MAX_PRETOK   8     /* pre-tokenizers after flattening Sequences */
#define BPE_MAX_TEMPLATE 16    /* ids before and after $A in the template */

enum bpe_pretok_kind { BPE_PRE_SPLIT, BPE_PRE_BYTELEVEL };

struct bpe_pretok {
    enum bpe_pretok_kind kind;
    pcre2_code *re;            /* Split's pattern; ByteLevel's when use_regex, else NULL */
    bool keep_matches;         /* Split: Isolated (true) or Removed (false); ByteLevel: true */
    bool add_prefix_space;     /* ByteLevel */
};

struct bpe_added {
    char *content;             /* owned, valid UTF-8, not empty */
    char *match;               /* owned: what is matched in the text, the content
                                * normalized when the token is (tokenizers does so) */
    size_t len;                /* of match */
    int32_t id;
    bool special, lstrip, rstrip, single_word, normalized;
};

/* id -> string: the added token's match string (its content, normalized
 * when the token is) if id is one, else the vocabulary string (NULL: no
 * token has this id) */
struct bpe_idtok {
    const char *s;             /* into tab->pool or an added token's content */
    uint32_t len;
    int16_t added;             /* -1, or the index in added[] */
};

struct bpe_tokenizer {
    struct tokenizer *tab;     /* vocab, merges, byte symbols (owned) */
    bool ignore_merges;
    bool nfc;                  /* normalizer NFC */
    bool has_decoder;          /* decoder ByteLevel */
    struct bpe_pretok pre[BPE_MAX_PRETOK];
    int n_pre;
    struct bpe_added *added;   /* in file order */
    size_t n_added;
    bool any_normalized;       /* an added token with normalized=true */
    uint8_t added_first[256];  /* bit 0 (1): an added token with normalized false (true)
                                * starts with this byte */
    int32_t prefix[BPE_MAX_TEMPLATE], suffix[BPE_MAX_TEMPLATE];
    int n_prefix, n_suffix;    /* the post-processor's single template */
    int32_t byte_id[256];      /* vocabulary id of each byte's symbol */
    int32_t vocab_size;        /* 1 + largest id */
    struct bpe_idtok *tokens;  /* [vocab_size] */
    pcre2_code *re_word;       /* Rust regex's \w, for single_word */
    pcre2_match_context *mctx; /* the match limit for patterns from the file */
};

#define BPE_MATCH_LIMIT 10000000u  /* PCRE2 match limit per match call */

/* bpe_tokenizer_encode.c: NFC of s[0..n) (valid UTF-8) in a new buffer */
int bpe_nfc(const char *s, size_t n, char **out, size_t *on);

/* bpe_tokenizer.c: a PCRE2 pattern from an Oniguruma one (\s and friends
 * rewritten; see bpe_tokenizer.h), compiled with UTF + UCP. NULL with
 * rl_error set (RL_ERR_FORMAT naming what) when PCRE2 refuses it. */
pcre2_code *bpe_compile_regex(const char *pattern, size_t len, bool literal, const char *what);

#endif /* RANDLORA_MODELS_BPE_TOKENIZER_IMPL_H */
