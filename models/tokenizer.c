/*
 * tokenizer.c: the tokenizer object (see tokenizer.h for the behaviour and
 * the reference it follows): allocation, the byte-level tokenizer, freeing,
 * the accessors and the framing settings. The rest lives next to it:
 * tokenizer_tables.c (vocabulary and merge tables), tokenizer_text.c (UTF-8,
 * normalisation, the regexes), tokenizer_load.c (reading and validating the
 * vocabulary files), tokenizer_encode.c (BPE, framing, decoding); the
 * layout they share is in tokenizer_impl.h.
 */
#include "models/tokenizer.h"

#include <stdint.h>
#include <stdlib.h>

#include "core/alloc.h"
#include "core/status.h"
#include "models/tokenizer_impl.h"

struct tokenizer *tok_alloc(enum tok_kind kind)
{
    struct tokenizer *t = xcalloc(1, sizeof(*t));

    t->kind = kind;
    t->ctx = TOK_CLIP_CONTEXT;
    t->pad = 0;
    t->truncate = true;
    return t;
}

struct tokenizer *tok_new_bytes(int32_t offset, int32_t sot, int32_t eot)
{
    struct tokenizer *t;

    RL_ASSERT(offset >= 0 && offset <= INT32_MAX - 256 && sot >= 0 && eot >= 0);
    RL_ASSERT(sot != eot && (sot < offset || sot > offset + 255) &&
              (eot < offset || eot > offset + 255));
    t = tok_alloc(TOK_BYTES);
    t->offset = offset;
    t->sot = sot;
    t->eot = eot;
    t->vocab_size = offset + 256;
    if (sot + 1 > t->vocab_size)
        t->vocab_size = sot + 1;
    if (eot + 1 > t->vocab_size)
        t->vocab_size = eot + 1;
    return t;
}

void tok_free(struct tokenizer *t)
{
    if (!t)
        return;
    free(t->pool);
    free(t->vtab);
    free(t->mtab);
    free(t->dec);
    pcre2_code_free(t->re);
    pcre2_code_free(t->re_cased);
    pcre2_code_free(t->re_ignorable);
    if (t->loc)
        freelocale(t->loc);
    free(t);
}

enum tok_kind tok_kind(const struct tokenizer *t) { return t->kind; }
int32_t tok_sot(const struct tokenizer *t) { return t->sot; }
int32_t tok_eot(const struct tokenizer *t) { return t->eot; }
int32_t tok_vocab_size(const struct tokenizer *t) { return t->vocab_size; }
int tok_context(const struct tokenizer *t) { return t->ctx; }

int tok_set_frame(struct tokenizer *t, int context, int32_t pad_id, bool truncate)
{
    if (context < 2)
        return rl_error_set(RL_ERR_ARG, "tokenizer: context length %d, at least 2 needed", context);
    if (pad_id < 0)
        return rl_error_set(RL_ERR_ARG, "tokenizer: pad id %d is negative", (int)pad_id);
    t->ctx = context;
    t->pad = pad_id;
    t->truncate = truncate;
    return RL_OK;
}
