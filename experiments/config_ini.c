/*
 * config_ini.c: stage 1 of config.c: collecting an experiment file (libinih
 * through our line reader) and the overrides into slots (stage 2, resolving
 * them, is config_resolve.c); experiment_parse, experiment_load,
 * experiment_free.
 */
#include "experiments/config.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>

#include "core/alloc.h"
#include "core/status.h"
#include "core/utf8.h"
#include "datasets/dataset.h"
#include "experiments/config_impl.h"

/* ------------------------------------------------------------------------ */
/* stage 1: collect                                                          */

struct entry *cfg_slot(struct parser *ps, size_t k, size_t s)
{
    return &ps->ent[k * ps->n_slots + s];
}

const char *cfg_slot_suffix(const struct parser *ps, size_t s)
{
    (void)ps;
    return s ? adapter_registry()[s - 1]->name : NULL;
}

/* "FILE:LINE" or "-s" or "FILE" */
const char *cfg_loc(const struct parser *ps, const struct entry *en, char *buf, size_t cap)
{
    if (en && en->value && en->line == 0)
        snprintf(buf, cap, "-s");
    else if (en && en->value)
        snprintf(buf, cap, "%s:%d", en->src, en->line);
    else
        snprintf(buf, cap, "%s", ps->where);
    return buf;
}

void cfg_fail_at(struct parser *ps, int line, int rc, const char *fmt, ...)
{
    char msg[1536];
    va_list ap;

    if (ps->err_line)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    ps->err_line = line ? line : -1;
    ps->err_rc = rc;
    rl_error_set(rc, "%s", msg);
}

/* check the value of a complete entry */
static int check_entry(struct parser *ps, size_t k, size_t s, struct entry *en)
{
    char w[1024], where[512];
    struct value v;
    const char *suf = cfg_slot_suffix(ps, s);

    if (cfg_parse_value(&cfg_keys[k], en->value, &v, w, sizeof(w)) == 0) {
        cfg_value_free(&v);
        return 0;
    }
    cfg_fail_at(ps, en->line, RL_ERR_ARG, "%s: %s.%s%s%s = '%.120s': %s", cfg_loc(ps, en, where,
            sizeof(where)), cfg_keys[k].section, cfg_keys[k].key, suf ? "." : "", suf ? suf : "",
            en->value, w);
    return -1;
}

static int flush_pending(struct parser *ps)
{
    struct entry *en = ps->pending;

    ps->pending = NULL;
    return en ? check_entry(ps, ps->pending_key, ps->pending_slot, en) : 0;
}

/* Look up "key[.suffix]" of section; -1 with the error recorded. */
static int find_key(struct parser *ps, const char *section, const char *name, const char *value,
                    const char *at, int line, size_t *k_out, size_t *s_out)
{
    char keyname[128], list[512];
    const char *dot = strchr(name, '.'), *suffix = dot ? dot + 1 : NULL;
    size_t klen = dot ? (size_t)(dot - name) : strlen(name);
    int k = -1, m;

    if (!cfg_section_known(section)) {
        cfg_fail_at(ps, line, RL_ERR_ARG, "%s: unknown section [%s] (valid sections: %s)", at,
                section, cfg_join_words(cfg_sections, list, sizeof(list)));
        return -1;
    }
    if (klen < sizeof(keyname)) {
        memcpy(keyname, name, klen);
        keyname[klen] = '\0';
        k = cfg_key_index(section, keyname);
    }
    if (k < 0) {
        cfg_fail_at(ps, line, RL_ERR_ARG, "%s: unknown key %s.%.*s (valid keys in [%s]: %s)", at,
                section, (int)klen, name, section, cfg_section_keys(section, list, sizeof(list)));
        return -1;
    }
    *k_out = (size_t)k;
    *s_out = 0;
    if (!suffix)
        return 0;
    if (!(cfg_keys[k].flags & F_SUFFIX)) {
        cfg_fail_at(ps, line, RL_ERR_ARG,
                    "%s: %s.%s = '%.120s': %s.%s takes no .METHOD suffix (only "
                    "the [method] keys but methods and the [train] keys do)", at, section, name,
                    value, section, cfg_keys[k].key);
        return -1;
    }
    m = cfg_method_index(suffix);
    if (m < 0) {
        cfg_fail_at(ps, line, RL_ERR_ARG, "%s: %s.%s = '%.120s': unknown method '%s' in the suffix "
                "(known: %s)", at, section, name, value, suffix,
                cfg_method_names(list, sizeof(list)));
        return -1;
    }
    *s_out = 1 + (size_t)m;
    return 0;
}

static int on_key(void *user, const char *section, const char *name, const char *value)
{
    struct parser *ps = user;
    char at[512];
    size_t k, s;
    struct entry *en;

    if (ps->err_line)
        return 1;
    snprintf(at, sizeof(at), "%s:%d", ps->where, ps->line);
    /* an indented line continues the value before it */
    if (ps->indented && ps->pending) {
        if (strchr(value, '=')) {
            cfg_fail_at(ps, ps->line, RL_ERR_ARG,
                        "%s: indented line '%.120s' would continue %s.%s; "
                        "start keys at the beginning of a line (indent only continuation lines)",
                        at, value, cfg_keys[ps->pending_key].section, name);
            return 0;
        }
        {
            size_t a = strlen(ps->pending->value), b = strlen(value);
            char *joined = xmalloc(a + b + 2);

            memcpy(joined, ps->pending->value, a);
            joined[a] = ' ';
            memcpy(joined + a + 1, value, b + 1);
            free(ps->pending->value);
            ps->pending->value = joined;
        }
        return 1;
    }
    if (flush_pending(ps))
        return 0;
    if (!*section) {
        cfg_fail_at(ps, ps->line, RL_ERR_ARG, "%s: %s = '%.120s' is outside a section (start with "
                "a [section] line)", at, name, value);
        return 0;
    }
    if (find_key(ps, section, name, value, at, ps->line, &k, &s))
        return 0;
    en = cfg_slot(ps, k, s);
    if (en->value) {
        cfg_fail_at(ps, ps->line, RL_ERR_ARG, "%s: %s.%s is given twice (first at line %d)", at,
                section, name, en->line);
        return 0;
    }
    en->value = xstrdup(value);
    en->src = ps->where;
    en->line = ps->line;
    ps->pending = en;
    ps->pending_key = k;
    ps->pending_slot = s;
    return 1;
}

/* fgets over the text: counts lines, checks lengths and section names */
static char *read_line(char *str, int num, void *stream)
{
    struct parser *ps = stream;
    const char *nl, *s;
    size_t len, body;

    if (!*ps->p || ps->err_line)
        return NULL;
    nl = strchr(ps->p, '\n');
    len = nl ? (size_t)(nl - ps->p) + 1 : strlen(ps->p);
    body = len - (nl ? 1 : 0);
    if (body && ps->p[body - 1] == '\r')
        body--;
    ps->line++;
    if (body + 3 > (size_t)num) {
        cfg_fail_at(ps, ps->line, RL_ERR_ARG,
                    "%s:%d: line longer than %d characters (continue a long "
                    "value on indented lines)", ps->where, ps->line, num - 3);
        return NULL;
    }
    memcpy(str, ps->p, len);
    str[len] = '\0';
    ps->p += len;
    ps->indented = str[0] == ' ' || str[0] == '\t';
    s = str;
    if (*s == '[') {
        const char *end = strchr(s, ']');
        char name[128], list[256];

        if (end && (size_t)(end - s - 1) < sizeof(name)) {
            memcpy(name, s + 1, (size_t)(end - s - 1));
            name[end - s - 1] = '\0';
            if (!cfg_section_known(name))
                cfg_fail_at(ps, ps->line, RL_ERR_ARG,
                            "%s:%d: unknown section [%s] (valid sections: "
                            "%s)", ps->where, ps->line, name, cfg_join_words(cfg_sections, list,
                            sizeof(list)));
        }
        /* a new section ends the value before it */
        if (!ps->err_line && flush_pending(ps))
            return NULL;
        if (ps->err_line)
            return NULL;
    }
    return str;
}

static int apply_override(struct parser *ps, const char *ov)
{
    const char *eq = strchr(ov, '='), *dot;
    char lhs[160], section[64], *val;
    size_t k, s, a, b, bad = utf8_invalid_at((const unsigned char *)ov, strlen(ov));
    struct entry *en;
    int rc;

    if (bad < strlen(ov)) {
        cfg_fail_at(ps, -1, RL_ERR_ARG, "-s: an override is not valid UTF-8 (byte 0x%02x at offset "
                "%zu); values are stored as UTF-8 text", (unsigned char)ov[bad], bad);
        return -1;
    }
    if (!eq || (dot = memchr(ov, '.', (size_t)(eq - ov))) == NULL) {
        cfg_fail_at(ps, -1, RL_ERR_ARG, "-s: '%.120s': expected section.key=value", ov);
        return -1;
    }
    /* trim both sides */
    for (a = 0; ov[a] == ' '; a++)
        ;
    for (b = (size_t)(eq - ov); b > a && ov[b - 1] == ' '; b--)
        ;
    if (b - a >= sizeof(lhs)) {
        cfg_fail_at(ps, -1, RL_ERR_ARG, "-s: '%.120s': key too long", ov);
        return -1;
    }
    memcpy(lhs, ov + a, b - a);
    lhs[b - a] = '\0';
    dot = strchr(lhs, '.');
    if (!dot || (size_t)(dot - lhs) >= sizeof(section) || dot == lhs) {
        cfg_fail_at(ps, -1, RL_ERR_ARG, "-s: '%.120s': expected section.key=value", ov);
        return -1;
    }
    memcpy(section, lhs, (size_t)(dot - lhs));
    section[dot - lhs] = '\0';
    for (eq++; *eq == ' ' || *eq == '\t'; eq++)
        ;
    val = xstrdup(eq);
    for (size_t n = strlen(val); n && (val[n - 1] == ' ' || val[n - 1] == '\t'); n--)
        val[n - 1] = '\0';
    if (find_key(ps, section, dot + 1, val, "-s", -1, &k, &s)) {
        free(val);
        return -1;
    }
    en = cfg_slot(ps, k, s);
    free(en->value);
    en->value = val;
    en->src = "-s";
    en->line = 0;
    rc = check_entry(ps, k, s, en);
    return rc;
}

void cfg_parser_free(struct parser *ps)
{
    if (ps->ent)
        for (size_t i = 0; i < N_KEYS * ps->n_slots; i++)
            free(ps->ent[i].value);
    free(ps->ent);
    ps->ent = NULL;
}

int cfg_collect(struct parser *ps, const char *text, const char *where,
                   const char *const *ov, size_t n_ov)
{
    int ret;

    memset(ps, 0, sizeof(*ps));
    ps->n_slots = 1 + adapter_registry_size();
    ps->ent = xcalloc(N_KEYS * ps->n_slots, sizeof(*ps->ent));
    ps->where = where;
    ps->p = text;
    ret = ini_parse_stream(read_line, ps, on_key, ps);
    if (!ps->err_line)
        flush_pending(ps);
    if (ret > 0 && (!ps->err_line || ps->err_line < 0 || ret < ps->err_line)) {
        ps->err_line = 0;
        cfg_fail_at(ps, ret, RL_ERR_ARG,
                    "%s:%d: syntax error: expected [section], key = value, or a "
                    "comment", where, ret);
        ps->err_line = ret;
    } else if (ret < 0 && !ps->err_line) {
        cfg_fail_at(ps, -1, RL_ERR_NOMEM, "%s: the INI parser failed (%d)", where, ret);
    }
    for (size_t i = 0; i < n_ov && !ps->err_line; i++)
        apply_override(ps, ov[i]);
    return ps->err_line ? ps->err_rc : RL_OK;
}

void experiment_free(struct experiment *e)
{
    if (!e)
        return;
    free(e->source);
    free(e->name);
    free(e->output);
    free(e->description);
    free(e->init_adapter);
    free(e->model.name);
    free(e->model.pretrain_dir);
    free(e->model.pretrain_data);
    for (size_t i = 0; i < e->n_datasets; i++) {
        free(e->datasets[i]);
        if (e->evals)
            free(e->evals[i]);
    }
    free(e->datasets);
    free(e->evals);
    free(e->prompt);
    free(e->classnames);
    free(e->shots);
    free(e->fractions);
    free(e->val.spec);
    for (size_t i = 0; i < e->n_methods; i++) {
        free(e->methods[i].sizes);
        for (size_t j = 0; j < e->methods[i].n_settings; j++)
            free(e->methods[i].settings[j].tag);
        free(e->methods[i].settings);
        for (size_t j = 0; j < e->methods[i].n_epoch_table; j++)
            free(e->methods[i].epoch_names[j]);
        free(e->methods[i].epoch_names);
        free(e->methods[i].epoch_values);
    }
    free(e->methods);
    free(e->seeds);
    free(e->run_id);
    memset(e, 0, sizeof(*e));
}

int experiment_parse(struct experiment *e, const char *text, const char *where,
                     const char *const *overrides, size_t n_overrides)
{
    struct parser ps;
    int rc;

    memset(e, 0, sizeof(*e));
    if (!where)
        where = "(string)";
    {
        size_t len = strlen(text), bad = utf8_invalid_at((const unsigned char *)text, len);

        if (bad < len) {
            size_t line = 1, col = 1;

            for (size_t i = 0; i < bad; i++) {
                col = text[i] == '\n' ? 1 : col + 1;
                line += text[i] == '\n';
            }
            return rl_error_set(RL_ERR_ARG, "%s:%zu: not valid UTF-8 (byte 0x%02x at column %zu); "
                                "experiment files are UTF-8 text", where, line,
                                (unsigned char)text[bad], col);
        }
    }
    rc = cfg_collect(&ps, text, where, overrides, n_overrides);
    if (rc == RL_OK && cfg_resolve(&ps, e))
        rc = ps.err_rc;
    cfg_parser_free(&ps);
    if (rc != RL_OK) {
        experiment_free(e);
        return rc;
    }
    e->source = xstrdup(where);
    return RL_OK;
}

int experiment_load(struct experiment *e, const char *path,
                    const char *const *overrides, size_t n_overrides)
{
    FILE *f;
    char *text;
    size_t n;
    int rc;

    memset(e, 0, sizeof(*e));
    f = fopen(path, "rb");
    if (!f)
        return rl_error_set(RL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    text = xmalloc(MAX_FILE_BYTES + 1);
    n = fread(text, 1, MAX_FILE_BYTES + 1, f);
    if (ferror(f)) {
        fclose(f);
        free(text);
        return rl_error_set(RL_ERR_IO, "%s: read error", path);
    }
    fclose(f);
    if (n > MAX_FILE_BYTES) {
        free(text);
        return rl_error_set(RL_ERR_ARG, "%s: larger than %u bytes; not an experiment file", path,
                            MAX_FILE_BYTES);
    }
    if (memchr(text, '\0', n)) {
        free(text);
        return rl_error_set(RL_ERR_ARG, "%s: contains a NUL byte; not an experiment file", path);
    }
    text[n] = '\0';
    rc = experiment_parse(e, text, path, overrides, n_overrides);
    free(text);
    return rc;
}
