/*
 * write_file.c: atomic whole-file text writes and path joining
 * (write_file.h).
 */
#include "core/write_file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/status.h"

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
