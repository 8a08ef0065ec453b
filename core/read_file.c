/*
 * read_file.c: a whole file into memory, with a size limit (read_file.h).
 *
 * The buffer doubles from 4 KiB up to max + 1 bytes: reading one byte past
 * max is what tells a file of exactly max bytes (read) from a longer one
 * (refused), whatever the file's size as stat reports it (pipes, /proc).
 */
#include "core/read_file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/status.h"

int rl_read_file(const char *path, size_t max, char **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    size_t n = 0, cap, limit;
    char *buf;

    *out = NULL;
    *len = 0;
    if (!f)
        return rl_error_set(RL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    RL_ASSERT(max < (size_t)-2);
    limit = max + 1;                     /* one byte more than may be kept */
    cap = limit < 4096 ? limit : 4096;
    buf = xmalloc(cap + 1);
    for (;;) {
        size_t got = fread(buf + n, 1, cap - n, f);

        n += got;
        if (n < cap) {
            if (ferror(f)) {
                int err = errno;

                fclose(f);
                free(buf);
                return rl_error_set(RL_ERR_IO, "%s: cannot read: %s", path,
                                    err ? strerror(err) : "read error");
            }
            break;                       /* end of file */
        }
        if (n == limit) {
            fclose(f);
            free(buf);
            return rl_error_set(RL_ERR_FORMAT, "%s: larger than %zu bytes", path, max);
        }
        cap = cap > limit / 2 ? limit : 2 * cap;
        buf = xrealloc_array(buf, cap + 1, 1);
    }
    fclose(f);
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return RL_OK;
}

int rl_write_text_atomic(const char *path, const char *text)
{
    size_t n = strlen(path) + 32;
    char *tmp = xmalloc(n);
    FILE *f;
    int ok;

    snprintf(tmp, n, "%s.tmp%ld", path, (long)getpid());
    f = fopen(tmp, "wb");
    if (!f) {
        int rc = rl_error_set(RL_ERR_IO, "%s: cannot write: %s", tmp, strerror(errno));
        free(tmp);
        return rc;
    }
    ok = fputs(text, f) >= 0 && fputc('\n', f) != EOF;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        int rc = rl_error_set(RL_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
        remove(tmp);
        free(tmp);
        return rc;
    }
    free(tmp);
    return RL_OK;
}

char *rl_path_join(const char *dir, const char *file)
{
    size_t n = strlen(dir) + strlen(file) + 2;
    char *p = xmalloc(n);

    snprintf(p, n, "%s/%s", dir, file);
    return p;
}
