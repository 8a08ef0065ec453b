/*
 * merge_files.c: copying the base model's tokenizer and preprocessing
 * files into a merged model directory (merge_files.h). Each file is
 * written to a temporary name and renamed into place.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/merge_files.h"
#include "core/alloc.h"
#include "core/status.h"

#define COPY_MAX_BYTES ((size_t)1 << 30)

static const char *const copied_files[] = {
    "vocab.json", "merges.txt", "tokenizer.json", "tokenizer_config.json",
    "special_tokens_map.json", "preprocessor_config.json", "tokenizer_bytes.json",
    "generation_config.json",
};

char *merge_path_join(const char *dir, const char *file)
{
    size_t n = strlen(dir) + strlen(file) + 2;
    char *p = xmalloc(n);

    snprintf(p, n, "%s/%s", dir, file);
    return p;
}

/* copy src to dst through dst.tmp.PID + rename */
int merge_copy_file(const char *src, const char *dst)
{
    size_t n = strlen(dst) + 32, got;
    char *tmp = xmalloc(n), buf[1 << 16];
    FILE *in = fopen(src, "rb"), *out = NULL;
    size_t total = 0;
    int rc = RL_OK;

    snprintf(tmp, n, "%s.tmp.%ld", dst, (long)getpid());
    if (!in) {
        rc = rl_error_set(RL_ERR_IO, "%s: cannot open: %s", src, strerror(errno));
        goto out;
    }
    if (!(out = fopen(tmp, "wb"))) {
        rc = rl_error_set(RL_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
        goto out;
    }
    while ((got = fread(buf, 1, sizeof buf, in)) > 0) {
        total += got;
        if (total > COPY_MAX_BYTES) {
            rc = rl_error_set(RL_ERR_FORMAT, "%s: larger than %zu bytes", src, COPY_MAX_BYTES);
            goto out;
        }
        if (fwrite(buf, 1, got, out) != got) {
            rc = rl_error_set(RL_ERR_IO, "%s: cannot write: %s", tmp, strerror(errno));
            goto out;
        }
    }
    if (ferror(in)) {
        rc = rl_error_set(RL_ERR_IO, "%s: cannot read", src);
        goto out;
    }
    if (fclose(out) != 0) {
        out = NULL;
        rc = rl_error_set(RL_ERR_IO, "%s: cannot write: %s", tmp, strerror(errno));
        goto out;
    }
    out = NULL;
    if (rename(tmp, dst) != 0)
        rc = rl_error_set(RL_ERR_IO, "%s: cannot rename into place: %s", dst, strerror(errno));
out:
    if (in)
        fclose(in);
    if (out)
        fclose(out);
    if (rc)
        unlink(tmp);
    free(tmp);
    return rc;
}

int merge_copy_model_files(const char *model_dir, const char *out_dir, size_t *copied)
{
    int rc = RL_OK;

    *copied = 0;
    for (size_t i = 0; i < sizeof(copied_files) / sizeof(copied_files[0]) && !rc; i++) {
        char *src = merge_path_join(model_dir, copied_files[i]);
        char *dst = merge_path_join(out_dir, copied_files[i]);

        if (access(src, F_OK) == 0) {
            rc = merge_copy_file(src, dst);
            *copied += rc == RL_OK;
        }
        free(src);
        free(dst);
    }
    return rc;
}
