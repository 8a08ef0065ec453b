/*
 * tokenizer_load.c: loading CLIP BPE (tokenizer.h, "Files"): reading
 * vocab.json + merges.txt or a tokenizer.json as hostile input, validating
 * them (ids, the 512 byte symbols, the specials, every merge and its result
 * in the vocabulary), and building the byte-symbol and decoding tables.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "core/alloc.h"
#include "core/status.h"
#include "models/tokenizer_impl.h"

#define TOK_MAX_FILE (256u << 20)   /* vocab/merges/tokenizer.json size limit */

/* ------------------------------------------------------------------ file reading */

static int read_whole(const char *path, char **buf, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    struct stat sb;
    char *p;
    size_t n;

    if (!fp)
        return rl_error_set(RL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (fstat(fileno(fp), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(fp);
        return rl_error_set(RL_ERR_IO, "%s: not a regular file", path);
    }
    if ((unsigned long long)sb.st_size > TOK_MAX_FILE) {
        fclose(fp);
        return rl_error_set(RL_ERR_FORMAT, "%s: %lld bytes, at most %u accepted", path,
                            (long long)sb.st_size, TOK_MAX_FILE);
    }
    n = (size_t)sb.st_size;
    p = xmalloc(n + 1);
    if (n && fread(p, 1, n, fp) != n) {
        free(p);
        fclose(fp);
        return rl_error_set(RL_ERR_IO, "%s: read failed", path);
    }
    fclose(fp);
    p[n] = '\0';
    *buf = p;
    *len = n;
    return RL_OK;
}

int tok_parse_json(const char *path, const char *buf, size_t len, cJSON **out)
{
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(buf, len + 1, &end, 1);   /* buf[len] is NUL; no trailing garbage */

    if (!root) {
        size_t line = 1, col = 1;
        for (const char *p = buf; end && p < end && p < buf + len; p++) {
            if (*p == '\n') {
                line++;
                col = 1;
            } else {
                col++;
            }
        }
        return rl_error_set(RL_ERR_FORMAT, "%s:%zu:%zu: malformed JSON", path, line, col);
    }
    *out = root;
    return RL_OK;
}

/* ------------------------------------------------------------------ loading */

void tok_bytes_to_unicode(struct tokenizer *t)
{
    int n = 0;

    for (int i = 0; i < 0x144; i++)
        t->cp_byte[i] = -1;
    for (int b = 0; b < 256; b++) {
        bool kept = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        uint32_t cp = kept ? (uint32_t)b : (uint32_t)(256 + n++);
        int k = tok_utf8_put(cp, t->byte_sym[b]);
        t->byte_sym[b][k] = '\0';
        t->cp_byte[cp] = (int16_t)b;
    }
}

int tok_load_vocab(struct tokenizer *t, const struct cJSON *obj, const char *file, const char *what)
{
    const cJSON *e;

    if (!cJSON_IsObject(obj))
        return rl_error_set(RL_ERR_FORMAT, "%s: %s is not a JSON object of token -> id", file, what);
    cJSON_ArrayForEach(e, obj) {
        double v = e->valuedouble;
        int rc;
        if (!cJSON_IsNumber(e) || !(v >= 0 && v < (double)INT32_MAX) || v != (double)(int32_t)v)
            return rl_error_set(RL_ERR_FORMAT, "%s: token '%.60s' has an id that is not an "
                                "integer in [0, 2^31 - 1)", file, e->string);
        rc = tok_vocab_put(t, e->string, strlen(e->string), (int32_t)v, file);
        if (rc != RL_OK)
            return rc;
    }
    if (t->vcount == 0)
        return rl_error_set(RL_ERR_FORMAT, "%s: %s is empty", file, what);
    return RL_OK;
}

/* one merge "a b" (a, b not NUL-terminated); where names the place for errors */
int tok_add_merge(struct tokenizer *t, const char *a, size_t na, const char *b, size_t nb,
                     int32_t rank, const char *where, const char *vfile)
{
    int32_t ia = tok_vocab_get(t, a, na), ib = tok_vocab_get(t, b, nb), im;
    char *cat;

    if (ia < 0)
        return rl_error_set(RL_ERR_FORMAT, "%s: merge token '%.*s' is not in %s", where,
                            (int)(na > 60 ? 60 : na), a, vfile);
    if (ib < 0)
        return rl_error_set(RL_ERR_FORMAT, "%s: merge token '%.*s' is not in %s", where,
                            (int)(nb > 60 ? 60 : nb), b, vfile);
    cat = xmalloc(na + nb + 1);
    memcpy(cat, a, na);
    memcpy(cat + na, b, nb);
    im = tok_vocab_get(t, cat, na + nb);
    free(cat);
    if (im < 0)
        return rl_error_set(RL_ERR_FORMAT, "%s: merged token '%.*s%.*s' is not in %s", where,
                            (int)(na > 40 ? 40 : na), a, (int)(nb > 40 ? 40 : nb), b, vfile);
    tok_merge_put(t, ia, ib, rank, im);
    return RL_OK;
}

/* split a merge line on runs of blanks into exactly two fields */
static int split_pair(const char *s, size_t n, const char **a, size_t *na, const char **b,
                      size_t *nb)
{
    const char *f[3];
    size_t fl[3];
    int nf = 0;
    size_t i = 0;

    while (i < n) {
        while (i < n && (s[i] == ' ' || s[i] == '\t'))
            i++;
        if (i == n)
            break;
        if (nf == 3)
            return -1;
        f[nf] = s + i;
        while (i < n && s[i] != ' ' && s[i] != '\t')
            i++;
        fl[nf] = (size_t)(s + i - f[nf]);
        nf++;
    }
    if (nf != 2)
        return -1;
    *a = f[0], *na = fl[0], *b = f[1], *nb = fl[1];
    return 0;
}

static int load_merges_txt(struct tokenizer *t, const char *path, const char *vfile)
{
    char *buf;
    size_t len, pos = 0, line = 0;
    int32_t rank = 0;
    size_t wsize = strlen(path) + 32;
    char *where;
    int rc = read_whole(path, &buf, &len);

    if (rc != RL_OK)
        return rc;
    where = xmalloc(wsize);
    while (pos < len && rank < TOK_CLIP_MAX_MERGES) {
        const char *s = buf + pos, *nl = memchr(s, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - s) : len - pos;
        const char *a, *b;
        size_t na, nb;

        pos += n + (nl ? 1 : 0);
        line++;
        if (n && s[n - 1] == '\r')
            n--;
        if (line == 1) {
            if (n < 8 || memcmp(s, "#version", 8) != 0) {
                rc = rl_error_set(RL_ERR_FORMAT, "%s:1: missing the '#version: 0.2' header line "
                                  "(the reference tokenizers disagree on such files)", path);
                goto out;
            }
            continue;
        }
        if (n == 0) {
            size_t k = pos;
            while (k < len && (buf[k] == '\n' || buf[k] == '\r'))
                k++;
            if (k == len)
                break;                 /* trailing empty lines */
            rc = rl_error_set(RL_ERR_FORMAT, "%s:%zu: empty line among the merges", path, line);
            goto out;
        }
        if (split_pair(s, n, &a, &na, &b, &nb) != 0) {
            rc = rl_error_set(RL_ERR_FORMAT, "%s:%zu: expected two tokens 'left right'", path, line);
            goto out;
        }
        snprintf(where, wsize, "%s:%zu", path, line);
        rc = tok_add_merge(t, a, na, b, nb, rank++, where, vfile);
        if (rc != RL_OK)
            goto out;
    }
    if (line == 0)
        rc = rl_error_set(RL_ERR_FORMAT, "%s: empty file (expected a '#version' header line)", path);
out:
    free(where);
    free(buf);
    return rc;
}

static int load_merges_json(struct tokenizer *t, const cJSON *arr, const char *file)
{
    const cJSON *e;
    int32_t rank = 0;
    size_t i = 0;

    if (!cJSON_IsArray(arr))
        return rl_error_set(RL_ERR_FORMAT, "%s: model.merges is not an array", file);
    cJSON_ArrayForEach(e, arr) {
        const char *a, *b;
        size_t na, nb;
        char where[80];
        int rc;

        if (rank >= TOK_CLIP_MAX_MERGES)
            break;
        if (cJSON_IsString(e)) {
            if (split_pair(e->valuestring, strlen(e->valuestring), &a, &na, &b, &nb) != 0)
                return rl_error_set(RL_ERR_FORMAT, "%s: model.merges[%zu]: expected \"left right\"",
                                    file, i);
        } else if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2 &&
                   cJSON_IsString(cJSON_GetArrayItem(e, 0)) &&
                   cJSON_IsString(cJSON_GetArrayItem(e, 1))) {
            a = cJSON_GetArrayItem(e, 0)->valuestring;
            b = cJSON_GetArrayItem(e, 1)->valuestring;
            na = strlen(a);
            nb = strlen(b);
        } else {
            return rl_error_set(RL_ERR_FORMAT, "%s: model.merges[%zu]: expected \"left right\" or "
                                "[\"left\", \"right\"]", file, i);
        }
        snprintf(where, sizeof(where), "model.merges[%zu]", i);
        rc = tok_add_merge(t, a, na, b, nb, rank++, where, "model.vocab");
        if (rc != RL_OK)
            return rl_error_prefix(rc, "%s", file);
        i++;
    }
    return RL_OK;
}

static int dslot_cmp(const void *pa, const void *pb)
{
    const struct dslot *a = pa, *b = pb;

    if (a->id != b->id)
        return a->id < b->id ? -1 : 1;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* checks and tables once vocab and merges are in */
static int finish_bpe(struct tokenizer *t, const char *vfile)
{
    size_t k = 0;

    for (int b = 0; b < 256; b++) {
        char sym[3 + TOK_EOW_LEN + 1];
        size_t n = strlen(t->byte_sym[b]);
        memcpy(sym, t->byte_sym[b], n);
        memcpy(sym + n, TOK_EOW, TOK_EOW_LEN + 1);
        t->byte_id[b] = tok_vocab_get(t, sym, n);
        t->byte_end_id[b] = tok_vocab_get(t, sym, n + TOK_EOW_LEN);
        if (t->byte_id[b] < 0 || t->byte_end_id[b] < 0)
            return rl_error_set(RL_ERR_FORMAT, "%s: no entry for the symbol of byte 0x%02x ('%s'%s)",
                                vfile, b, t->byte_id[b] < 0 ? t->byte_sym[b] : sym,
                                t->byte_id[b] < 0 ? "" : " with </w>");
    }
    if (t->sot < 0)
        t->sot = tok_vocab_get(t, TOK_SOT_STR, strlen(TOK_SOT_STR));
    if (t->eot < 0)
        t->eot = tok_vocab_get(t, TOK_EOT_STR, strlen(TOK_EOT_STR));
    if (t->sot < 0 || t->eot < 0)
        return rl_error_set(RL_ERR_FORMAT, "%s: no entry for %s", vfile,
                            t->sot < 0 ? TOK_SOT_STR : TOK_EOT_STR);

    t->dec = xmalloc_array(t->vcount + 2, sizeof(*t->dec));
    for (size_t i = 0; i < t->vcap; i++) {
        const struct vslot *e = &t->vtab[i];
        if (e->off == UINT32_MAX)
            continue;
        /* sequence = pool offset: file order, so the last token of an id wins */
        t->dec[k++] = (struct dslot){ e->id, e->off, e->len, e->off };
    }
    t->dec[k++] = (struct dslot){ t->sot, 0, 0, UINT32_MAX - 1 };   /* len 0: special, below */
    t->dec[k++] = (struct dslot){ t->eot, 0, 0, UINT32_MAX };
    qsort(t->dec, k, sizeof(*t->dec), dslot_cmp);
    t->ndec = 0;
    for (size_t i = 0; i < k; i++) {
        if (t->ndec && t->dec[t->ndec - 1].id == t->dec[i].id)
            t->ndec--;
        t->dec[t->ndec++] = t->dec[i];
    }
    t->vocab_size = t->dec[t->ndec - 1].id + 1;

    return tok_text_init(t);
}

int tok_load_bpe(struct tokenizer **out, const char *vocab_json, const char *merges_txt)
{
    struct tokenizer *t = tok_alloc(TOK_BPE);
    char *buf = NULL;
    size_t len;
    cJSON *root = NULL;
    int rc;

    *out = NULL;
    t->sot = t->eot = -1;
    tok_bytes_to_unicode(t);
    rc = read_whole(vocab_json, &buf, &len);
    if (rc == RL_OK)
        rc = tok_parse_json(vocab_json, buf, len, &root);
    if (rc == RL_OK)
        rc = tok_load_vocab(t, root, vocab_json, "the top level");
    cJSON_Delete(root);
    free(buf);
    if (rc == RL_OK)
        rc = load_merges_txt(t, merges_txt, vocab_json);
    if (rc == RL_OK)
        rc = finish_bpe(t, vocab_json);
    if (rc != RL_OK) {
        tok_free(t);
        return rc;
    }
    *out = t;
    return RL_OK;
}

static int32_t added_token(const cJSON *root, const char *content)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "added_tokens"), *e;

    if (!cJSON_IsArray(arr))
        return -1;
    cJSON_ArrayForEach(e, arr) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(e, "content");
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
        if (cJSON_IsString(c) && strcmp(c->valuestring, content) == 0 && cJSON_IsNumber(id) &&
            id->valuedouble >= 0 && id->valuedouble <= INT32_MAX &&
            id->valuedouble == (double)(int32_t)id->valuedouble)
            return (int32_t)id->valuedouble;
    }
    return -1;
}

int tok_load_json(struct tokenizer **out, const char *path)
{
    struct tokenizer *t = tok_alloc(TOK_BPE);
    char *buf = NULL;
    size_t len;
    cJSON *root = NULL;
    const cJSON *model = NULL, *ty, *eow;
    int rc;

    *out = NULL;
    t->sot = t->eot = -1;
    tok_bytes_to_unicode(t);
    rc = read_whole(path, &buf, &len);
    if (rc == RL_OK)
        rc = tok_parse_json(path, buf, len, &root);
    if (rc == RL_OK) {
        model = cJSON_GetObjectItemCaseSensitive(root, "model");
        if (!cJSON_IsObject(model))
            rc = rl_error_set(RL_ERR_FORMAT, "%s: no \"model\" object", path);
    }
    if (rc == RL_OK) {
        ty = cJSON_GetObjectItemCaseSensitive(model, "type");
        eow = cJSON_GetObjectItemCaseSensitive(model, "end_of_word_suffix");
        if (ty && !(cJSON_IsString(ty) && strcmp(ty->valuestring, "BPE") == 0))
            rc = rl_error_set(RL_ERR_FORMAT, "%s: model.type is not \"BPE\"", path);
        else if (eow && !cJSON_IsNull(eow) &&
                 !(cJSON_IsString(eow) && strcmp(eow->valuestring, TOK_EOW) == 0))
            rc = rl_error_set(RL_ERR_FORMAT, "%s: model.end_of_word_suffix is not \"</w>\"", path);
    }
    if (rc == RL_OK)
        rc = tok_load_vocab(t, cJSON_GetObjectItemCaseSensitive(model, "vocab"), path, "model.vocab");
    if (rc == RL_OK)
        rc = load_merges_json(t, cJSON_GetObjectItemCaseSensitive(model, "merges"), path);
    if (rc == RL_OK) {
        if (tok_vocab_get(t, TOK_SOT_STR, strlen(TOK_SOT_STR)) < 0)
            t->sot = added_token(root, TOK_SOT_STR);
        if (tok_vocab_get(t, TOK_EOT_STR, strlen(TOK_EOT_STR)) < 0)
            t->eot = added_token(root, TOK_EOT_STR);
        rc = finish_bpe(t, path);
    }
    cJSON_Delete(root);
    free(buf);
    if (rc != RL_OK) {
        tok_free(t);
        return rc;
    }
    *out = t;
    return RL_OK;
}

static bool is_file(const char *path)
{
    struct stat sb;

    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

int tok_load_dir(struct tokenizer **out, const char *dir)
{
    size_t n = strlen(dir) + 32;
    char *v = xmalloc(n), *m = xmalloc(n), *j = xmalloc(n);
    int rc;

    snprintf(v, n, "%s/vocab.json", dir);
    snprintf(m, n, "%s/merges.txt", dir);
    snprintf(j, n, "%s/tokenizer.json", dir);
    *out = NULL;
    if (is_file(v) && is_file(m))
        rc = tok_load_bpe(out, v, m);
    else if (is_file(j))
        rc = tok_load_json(out, j);
    else
        rc = rl_error_set(RL_ERR_IO, "%s: no vocab.json + merges.txt and no tokenizer.json", dir);
    free(v);
    free(m);
    free(j);
    return rc;
}
