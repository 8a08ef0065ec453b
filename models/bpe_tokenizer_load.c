/*
 * bpe_tokenizer_load.c: reading a tokenizer.json (bpe_tokenizer.h) as
 * hostile input: the BPE model (vocab, merges in both forms, flags), the
 * added tokens, the normalizer, the pre-tokenizers, the post-processor's
 * single template and the decoder; what is not supported is refused with
 * one line naming the key. Builds the id -> token table.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/alloc.h"
#include "core/read_file.h"
#include "core/status.h"
#include "core/utf8.h"
#include "models/bpe_tokenizer_impl.h"

/* tokenizers' ByteLevel pattern (use_regex), in Oniguruma syntax */
static const char GPT2_PATTERN[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

static const cJSON *item(const cJSON *o, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(o, key);
}

static bool is_absent(const cJSON *v)
{
    return !v || cJSON_IsNull(v);
}

/* "type" of a component object, "" when missing */
static const char *type_of(const cJSON *o)
{
    const cJSON *ty = item(o, "type");

    return cJSON_IsString(ty) ? ty->valuestring : "";
}

/* a boolean key: absent or null gives dflt */
static int get_flag(const cJSON *o, const char *key, bool dflt, bool *out, const char *file,
                    const char *where)
{
    const cJSON *v = item(o, key);

    if (is_absent(v)) {
        *out = dflt;
        return RL_OK;
    }
    if (!cJSON_IsBool(v))
        return rl_error_set(RL_ERR_FORMAT, "%s: %s.%s is not true or false", file, where, key);
    *out = cJSON_IsTrue(v);
    return RL_OK;
}

static int get_id(const cJSON *v, int32_t *out)
{
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble < (double)BPE_MAX_ID) ||
        v->valuedouble != (double)(int32_t)v->valuedouble)
        return -1;
    *out = (int32_t)v->valuedouble;
    return 0;
}

/* ------------------------------------------------------------------ model */

/* model.merges as tokenizers reads them, which differs from the CLIP
 * reader's (tokenizer_load.c): a string splits at exactly one space,
 * "#version" entries are skipped without a rank, and there is no cap */
static int load_merges(struct bpe_tokenizer *t, const cJSON *arr, const char *file)
{
    const cJSON *e;
    int32_t rank = 0;
    size_t i = 0;

    if (!cJSON_IsArray(arr))
        return rl_error_set(RL_ERR_FORMAT, "%s: model.merges is not an array", file);
    cJSON_ArrayForEach(e, arr) {
        const char *a, *b;
        size_t na, nb;
        char where[64];
        int rc;

        snprintf(where, sizeof where, "model.merges[%zu]", i++);
        if (cJSON_IsString(e)) {
            const char *sp = strchr(e->valuestring, ' ');
            if (strncmp(e->valuestring, "#version", 8) == 0)
                continue;                   /* as tokenizers: not a merge, no rank */
            if (!sp || strchr(sp + 1, ' '))
                return rl_error_set(RL_ERR_FORMAT, "%s: %s: expected \"left right\" (one space)",
                                    file, where);
            a = e->valuestring;
            na = (size_t)(sp - a);
            b = sp + 1;
            nb = strlen(b);
        } else if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2 &&
                   cJSON_IsString(cJSON_GetArrayItem(e, 0)) &&
                   cJSON_IsString(cJSON_GetArrayItem(e, 1))) {
            a = cJSON_GetArrayItem(e, 0)->valuestring;
            b = cJSON_GetArrayItem(e, 1)->valuestring;
            na = strlen(a);
            nb = strlen(b);
        } else {
            return rl_error_set(RL_ERR_FORMAT, "%s: %s: expected \"left right\" or "
                                "[\"left\", \"right\"]", file, where);
        }
        rc = tok_add_merge(t->tab, a, na, b, nb, rank++, where, "model.vocab");
        if (rc != RL_OK)
            return rl_error_prefix(rc, "%s", file);
    }
    return RL_OK;
}

static int load_model(struct bpe_tokenizer *t, const cJSON *model, const char *file)
{
    const cJSON *v;
    bool fallback = false;
    int rc;

    if (!cJSON_IsObject(model))
        return rl_error_set(RL_ERR_FORMAT, "%s: no \"model\" object", file);
    if (item(model, "type") && strcmp(type_of(model), "BPE") != 0)
        return rl_error_set(RL_ERR_FORMAT, "%s: model.type \"%.40s\" is not supported (only "
                            "\"BPE\")", file, type_of(model));
    v = item(model, "dropout");
    if (!is_absent(v) && !(cJSON_IsNumber(v) && v->valuedouble == 0))
        return rl_error_set(RL_ERR_FORMAT, "%s: model.dropout is not supported (null expected)", file);
    for (int k = 0; k < 2; k++) {
        const char *key = k ? "end_of_word_suffix" : "continuing_subword_prefix";
        v = item(model, key);
        if (!is_absent(v) && !(cJSON_IsString(v) && v->valuestring[0] == '\0'))
            return rl_error_set(RL_ERR_FORMAT, "%s: model.%s is not supported by byte-level BPE "
                                "(null expected)", file, key);
    }
    if ((rc = get_flag(model, "byte_fallback", false, &fallback, file, "model")) != RL_OK ||
        (rc = get_flag(model, "ignore_merges", false, &t->ignore_merges, file, "model")) != RL_OK)
        return rc;
    if (fallback)
        return rl_error_set(RL_ERR_FORMAT, "%s: model.byte_fallback is not supported (a "
                            "byte-level vocabulary needs none)", file);
    rc = tok_load_vocab(t->tab, item(model, "vocab"), file, "model.vocab");
    if (rc == RL_OK)
        rc = load_merges(t, item(model, "merges"), file);
    return rc;
}

/* ------------------------------------------------------------------ added tokens */

static int load_added(struct bpe_tokenizer *t, const cJSON *arr, const char *file)
{
    const cJSON *e;
    size_t i = 0;
    int32_t top_added = -1, n_vocab = (int32_t)t->tab->vcount;

    if (is_absent(arr))
        return RL_OK;
    if (!cJSON_IsArray(arr))
        return rl_error_set(RL_ERR_FORMAT, "%s: added_tokens is not an array", file);
    t->added = xcalloc((size_t)cJSON_GetArraySize(arr) + 1, sizeof(*t->added));
    cJSON_ArrayForEach(e, arr) {
        struct bpe_added *a = &t->added[t->n_added];
        const cJSON *c = item(e, "content");
        char where[48];
        int32_t derived;
        int rc;

        snprintf(where, sizeof where, "added_tokens[%zu]", i++);
        if (!cJSON_IsString(c) || !c->valuestring[0] ||
            !utf8_valid((const unsigned char *)c->valuestring, strlen(c->valuestring)))
            return rl_error_set(RL_ERR_FORMAT, "%s: %s.content is not a non-empty UTF-8 string",
                                file, where);
        if (get_id(item(e, "id"), &a->id) != 0)
            return rl_error_set(RL_ERR_FORMAT, "%s: %s.id is not an integer in [0, %d)", file,
                                where, (int)BPE_MAX_ID);
        if ((rc = get_flag(e, "special", false, &a->special, file, where)) != RL_OK ||
            (rc = get_flag(e, "lstrip", false, &a->lstrip, file, where)) != RL_OK ||
            (rc = get_flag(e, "rstrip", false, &a->rstrip, file, where)) != RL_OK ||
            (rc = get_flag(e, "single_word", false, &a->single_word, file, where)) != RL_OK ||
            (rc = get_flag(e, "normalized", !a->special, &a->normalized, file, where)) != RL_OK)
            return rc;
        for (size_t k = 0; k < t->n_added; k++)
            if (strcmp(t->added[k].content, c->valuestring) == 0)
                return rl_error_set(RL_ERR_FORMAT, "%s: %s repeats the content of "
                                    "added_tokens[%zu]", file, where, k);
        /* tokenizers numbers them again on load: the vocabulary's id, else
         * the next one after the vocabulary and the added tokens so far */
        derived = tok_vocab_get(t->tab, c->valuestring, strlen(c->valuestring));
        if (derived < 0)
            derived = top_added < 0 ? n_vocab
                    : (top_added >= n_vocab || n_vocab == 0) ? top_added + 1 : n_vocab;
        if (derived != a->id)
            return rl_error_set(RL_ERR_FORMAT, "%s: %s '%.60s' has id %d but tokenizers gives "
                                "it %d (the vocabulary's id, else the next free one in file "
                                "order)", file, where, c->valuestring, (int)a->id, (int)derived);
        if (derived > top_added)
            top_added = derived;
        a->content = xstrdup(c->valuestring);
        t->any_normalized |= a->normalized;
        t->n_added++;
    }
    return RL_OK;
}

/* what each added token matches: its content, normalized when the token
 * is (as tokenizers' AddedVocabulary does), and the first-byte filter */
static int finish_added(struct bpe_tokenizer *t)
{
    for (size_t k = 0; k < t->n_added; k++) {
        struct bpe_added *a = &t->added[k];
        if (a->normalized && t->nfc) {
            int rc = bpe_nfc(a->content, strlen(a->content), &a->match, &a->len);
            if (rc != RL_OK)
                return rc;
        } else {
            a->match = xstrdup(a->content);
            a->len = strlen(a->match);
        }
        t->added_first[(uint8_t)a->match[0]] |= (uint8_t)(a->normalized ? 2 : 1);
    }
    return RL_OK;
}

/* ------------------------------------------------------------------ normalizer, pre-tokenizers */

static int load_normalizer(struct bpe_tokenizer *t, const cJSON *n, const char *file)
{
    const char *ty;

    if (is_absent(n))
        return RL_OK;
    ty = type_of(n);
    if (strcmp(ty, "NFC") == 0) {
        t->nfc = true;
        return RL_OK;
    }
    if (strcmp(ty, "Sequence") == 0 && cJSON_IsArray(item(n, "normalizers"))) {
        const cJSON *e;
        cJSON_ArrayForEach(e, item(n, "normalizers")) {
            int rc = load_normalizer(t, e, file);
            if (rc != RL_OK)
                return rc;
        }
        return RL_OK;
    }
    return rl_error_set(RL_ERR_FORMAT, "%s: normalizer \"%.40s\" is not supported (supported: "
                        "none, NFC)", file, ty);
}

static int load_split(struct bpe_tokenizer *t, struct bpe_pretok *p, const cJSON *o,
                      const char *file, const char *where)
{
    const cJSON *pat = item(o, "pattern"), *re = item(pat, "Regex"), *str = item(pat, "String");
    const cJSON *beh = item(o, "behavior");
    bool invert = false;
    int rc = get_flag(o, "invert", false, &invert, file, where);
    char what[160];

    if (rc != RL_OK)
        return rc;
    (void)t;
    if (invert)
        return rl_error_set(RL_ERR_FORMAT, "%s: %s.invert true is not supported", file, where);
    if (cJSON_IsString(beh) && strcmp(beh->valuestring, "Isolated") == 0)
        p->keep_matches = true;
    else if (cJSON_IsString(beh) && strcmp(beh->valuestring, "Removed") == 0)
        p->keep_matches = false;
    else
        return rl_error_set(RL_ERR_FORMAT, "%s: %s.behavior is not supported (supported: "
                            "\"Isolated\", \"Removed\")", file, where);
    if (!cJSON_IsString(re) && !cJSON_IsString(str))
        return rl_error_set(RL_ERR_FORMAT, "%s: %s.pattern is not {\"Regex\": ...} or "
                            "{\"String\": ...}", file, where);
    snprintf(what, sizeof what, "%s: %s.pattern", file, where);
    p->kind = BPE_PRE_SPLIT;
    if (cJSON_IsString(re))
        p->re = bpe_compile_regex(re->valuestring, strlen(re->valuestring), false, what);
    else if (!str->valuestring[0])
        return rl_error_set(RL_ERR_FORMAT, "%s: %s.pattern.String is empty", file, where);
    else
        p->re = bpe_compile_regex(str->valuestring, strlen(str->valuestring), true, what);
    return p->re ? RL_OK : RL_ERR_FORMAT;
}

static int load_pretok(struct bpe_tokenizer *t, const cJSON *o, const char *file, const char *where)
{
    const char *ty = type_of(o);
    struct bpe_pretok *p;
    int rc;

    if (strcmp(ty, "Sequence") == 0 && cJSON_IsArray(item(o, "pretokenizers"))) {
        const cJSON *e;
        size_t i = 0;
        cJSON_ArrayForEach(e, item(o, "pretokenizers")) {
            char sub[96];
            snprintf(sub, sizeof sub, "%.60s.pretokenizers[%zu]", where, i++);
            if ((rc = load_pretok(t, e, file, sub)) != RL_OK)
                return rc;
        }
        return RL_OK;
    }
    if (t->n_pre == BPE_MAX_PRETOK)
        return rl_error_set(RL_ERR_FORMAT, "%s: more than %d pre-tokenizers", file, BPE_MAX_PRETOK);
    if (t->n_pre && t->pre[t->n_pre - 1].kind == BPE_PRE_BYTELEVEL)
        return rl_error_set(RL_ERR_FORMAT, "%s: %s follows the ByteLevel pre-tokenizer (it must "
                            "come last)", file, where);
    p = &t->pre[t->n_pre];
    if (strcmp(ty, "Split") == 0) {
        rc = load_split(t, p, o, file, where);
        t->n_pre += p->re != NULL;
        return rc;
    }
    if (strcmp(ty, "ByteLevel") == 0) {
        bool use_regex = false;
        if ((rc = get_flag(o, "add_prefix_space", true, &p->add_prefix_space, file, where)) != RL_OK ||
            (rc = get_flag(o, "use_regex", true, &use_regex, file, where)) != RL_OK)
            return rc;
        p->kind = BPE_PRE_BYTELEVEL;
        p->keep_matches = true;
        if (use_regex &&
            !(p->re = bpe_compile_regex(GPT2_PATTERN, strlen(GPT2_PATTERN), false, "ByteLevel")))
            return RL_ERR_FORMAT;
        t->n_pre++;
        return RL_OK;
    }
    return rl_error_set(RL_ERR_FORMAT, "%s: %s: pre-tokenizer \"%.40s\" is not supported "
                        "(supported: Split, ByteLevel, Sequence)", file, where, ty);
}

/* ------------------------------------------------------------------ post-processor, decoder */

static int template_ids(struct bpe_tokenizer *t, const cJSON *tp, const char *name, int32_t *dst,
                        int *n, const char *file)
{
    const cJSON *st = item(item(tp, "special_tokens"), name), *ids = item(st, "ids"), *e;

    if (!cJSON_IsArray(ids))
        return rl_error_set(RL_ERR_FORMAT, "%s: post_processor.special_tokens has no ids for "
                            "'%.60s'", file, name);
    cJSON_ArrayForEach(e, ids) {
        if (*n == BPE_MAX_TEMPLATE)
            return rl_error_set(RL_ERR_FORMAT, "%s: post_processor template longer than %d ids",
                                file, BPE_MAX_TEMPLATE);
        if (get_id(e, &dst[*n]) != 0)
            return rl_error_set(RL_ERR_FORMAT, "%s: post_processor.special_tokens['%.60s'].ids "
                                "holds a value that is not an id", file, name);
        (*n)++;
    }
    (void)t;
    return RL_OK;
}

static int load_template(struct bpe_tokenizer *t, const cJSON *tp, const char *file)
{
    const cJSON *single = item(tp, "single"), *e;
    bool seen_a = false;

    if (t->n_prefix || t->n_suffix || !cJSON_IsArray(single))
        return rl_error_set(RL_ERR_FORMAT, "%s: post_processor: expected one TemplateProcessing "
                            "with a \"single\" array", file);
    cJSON_ArrayForEach(e, single) {
        const cJSON *sp = item(e, "SpecialToken"), *sq = item(e, "Sequence");
        int rc;
        if (cJSON_IsString(item(sp, "id"))) {
            rc = seen_a ? template_ids(t, tp, item(sp, "id")->valuestring, t->suffix, &t->n_suffix, file)
                        : template_ids(t, tp, item(sp, "id")->valuestring, t->prefix, &t->n_prefix, file);
            if (rc != RL_OK)
                return rc;
        } else if (cJSON_IsString(item(sq, "id")) && strcmp(item(sq, "id")->valuestring, "A") == 0 &&
                   !seen_a) {
            seen_a = true;
        } else {
            return rl_error_set(RL_ERR_FORMAT, "%s: post_processor.single: expected SpecialToken "
                                "items and one Sequence $A", file);
        }
    }
    if (!seen_a)
        return rl_error_set(RL_ERR_FORMAT, "%s: post_processor.single has no $A", file);
    return RL_OK;
}

static int load_post(struct bpe_tokenizer *t, const cJSON *p, const char *file)
{
    const char *ty;

    if (is_absent(p))
        return RL_OK;
    ty = type_of(p);
    if (strcmp(ty, "ByteLevel") == 0)
        return RL_OK;                        /* offsets only: no ids */
    if (strcmp(ty, "TemplateProcessing") == 0)
        return load_template(t, p, file);
    if (strcmp(ty, "Sequence") == 0 && cJSON_IsArray(item(p, "processors"))) {
        const cJSON *e;
        cJSON_ArrayForEach(e, item(p, "processors")) {
            int rc = load_post(t, e, file);
            if (rc != RL_OK)
                return rc;
        }
        return RL_OK;
    }
    return rl_error_set(RL_ERR_FORMAT, "%s: post_processor \"%.40s\" is not supported "
                        "(supported: none, ByteLevel, TemplateProcessing, Sequence)", file, ty);
}

static int load_decoder(struct bpe_tokenizer *t, const cJSON *d, const char *file)
{
    if (is_absent(d))
        return RL_OK;
    if (strcmp(type_of(d), "ByteLevel") != 0)
        return rl_error_set(RL_ERR_FORMAT, "%s: decoder \"%.40s\" is not supported (supported: "
                            "none, ByteLevel)", file, type_of(d));
    t->has_decoder = true;
    return RL_OK;
}

/* ------------------------------------------------------------------ tables */

static int build_tables(struct bpe_tokenizer *t, const char *file)
{
    const struct tokenizer *tab = t->tab;
    int32_t top = -1;

    for (int b = 0; b < 256; b++) {
        t->byte_id[b] = tok_vocab_get(tab, tab->byte_sym[b], strlen(tab->byte_sym[b]));
        if (t->byte_id[b] < 0)
            return rl_error_set(RL_ERR_FORMAT, "%s: model.vocab has no entry for the symbol of "
                                "byte 0x%02x ('%s')", file, b, tab->byte_sym[b]);
    }
    for (size_t i = 0; i < tab->vcap; i++)
        if (tab->vtab[i].off != UINT32_MAX && tab->vtab[i].id > top)
            top = tab->vtab[i].id;
    for (size_t k = 0; k < t->n_added; k++)
        if (t->added[k].id > top)
            top = t->added[k].id;
    if (top >= BPE_MAX_ID)
        return rl_error_set(RL_ERR_FORMAT, "%s: id %d is larger than the limit of %d", file,
                            (int)top, (int)BPE_MAX_ID - 1);
    t->vocab_size = top + 1;
    t->tokens = xcalloc((size_t)t->vocab_size, sizeof(*t->tokens));
    for (size_t i = 0; i < tab->vcap; i++) {
        const struct vslot *e = &tab->vtab[i];
        if (e->off == UINT32_MAX)
            continue;
        if (t->tokens[e->id].s)
            return rl_error_set(RL_ERR_FORMAT, "%s: model.vocab gives id %d to two tokens", file,
                                (int)e->id);
        t->tokens[e->id] = (struct bpe_idtok){ tab->pool + e->off, e->len, -1 };
    }
    for (size_t k = 0; k < t->n_added; k++)
        t->tokens[t->added[k].id] = (struct bpe_idtok){ t->added[k].match,   /* tokenizers' id_to_token */
                                                        (uint32_t)t->added[k].len, (int16_t)k };
    for (int k = 0; k < t->n_prefix + t->n_suffix; k++) {
        int32_t id = k < t->n_prefix ? t->prefix[k] : t->suffix[k - t->n_prefix];
        if (id >= t->vocab_size || !t->tokens[id].s)
            return rl_error_set(RL_ERR_FORMAT, "%s: the post_processor's id %d is not a token",
                                file, (int)id);
    }
    return RL_OK;
}

int bpe_tokenizer_load(struct bpe_tokenizer **out, const char *path)
{
    struct bpe_tokenizer *t = xcalloc(1, sizeof(*t));
    char *buf = NULL;
    size_t len;
    cJSON *root = NULL;
    int rc;

    *out = NULL;
    t->tab = tok_alloc(TOK_BPE);
    t->mctx = pcre2_match_context_create(NULL);
    RL_ASSERT(t->mctx != NULL);
    pcre2_set_match_limit(t->mctx, BPE_MATCH_LIMIT);
    tok_bytes_to_unicode(t->tab);
    rc = rl_read_file(path, BPE_MAX_FILE_BYTES, &buf, &len);
    if (rc == RL_OK)
        rc = tok_parse_json(path, buf, len, &root);
    if (rc == RL_OK && !cJSON_IsObject(root))
        rc = rl_error_set(RL_ERR_FORMAT, "%s: not a JSON object", path);
    if (rc == RL_OK)
        rc = load_model(t, item(root, "model"), path);
    if (rc == RL_OK && t->tab->vcount > (size_t)BPE_MAX_ID)
        rc = rl_error_set(RL_ERR_FORMAT, "%s: more than %d tokens", path, (int)BPE_MAX_ID);
    if (rc == RL_OK)
        rc = load_added(t, item(root, "added_tokens"), path);
    if (rc == RL_OK)
        rc = load_normalizer(t, item(root, "normalizer"), path);
    if (rc == RL_OK)
        rc = finish_added(t);
    if (rc == RL_OK && is_absent(item(root, "pre_tokenizer")))
        rc = rl_error_set(RL_ERR_FORMAT, "%s: no pre_tokenizer (a ByteLevel one is needed)", path);
    if (rc == RL_OK)
        rc = load_pretok(t, item(root, "pre_tokenizer"), path, "pre_tokenizer");
    if (rc == RL_OK && (t->n_pre == 0 || t->pre[t->n_pre - 1].kind != BPE_PRE_BYTELEVEL))
        rc = rl_error_set(RL_ERR_FORMAT, "%s: pre_tokenizer has no ByteLevel step (byte-level "
                          "BPE needs one, last)", path);
    if (rc == RL_OK)
        rc = load_post(t, item(root, "post_processor"), path);
    if (rc == RL_OK)
        rc = load_decoder(t, item(root, "decoder"), path);
    if (rc == RL_OK)
        rc = build_tables(t, path);
    if (rc == RL_OK && t->n_added) {
        t->re_word = bpe_compile_regex("[\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\x{200c}\\x{200d}]",
                                       49, false, "word characters");
        RL_ASSERT(t->re_word != NULL);                 /* a fixed pattern */
    }
    cJSON_Delete(root);
    free(buf);
    if (rc != RL_OK) {
        bpe_tokenizer_free(t);
        return rc;
    }
    *out = t;
    return RL_OK;
}
