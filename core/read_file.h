/*
 * read_file.h: a whole file into memory, with a size limit; a text file
 * written atomically; a directory and a file name joined.
 *
 *     char *text;
 *     size_t len;
 *     int rc = rl_read_file(path, (size_t)1 << 20, &text, &len);
 *     if (rc != RL_OK)
 *         return rc;                         // message names path (and the limit)
 *     ...
 *     free(text);
 */
#ifndef RANDLORA_CORE_READ_FILE_H
#define RANDLORA_CORE_READ_FILE_H

#include <stddef.h>

/* The whole of path in a new buffer (caller frees), NUL-terminated after
 * *len bytes (NUL bytes inside are kept; *len says how many). A file of up
 * to max bytes is read, one of max + 1 or more is refused before more than
 * max + 1 bytes are held: RL_ERR_FORMAT "PATH: larger than MAX bytes".
 * RL_ERR_IO "PATH: cannot open: <errno text>" or "PATH: cannot read: ...".
 * On failure *out is NULL and *len 0. */
int rl_read_file(const char *path, size_t max, char **out, size_t *len);

/* Write text and a newline to path through a temporary file in the same
 * directory and rename(), so a reader never sees half of it. RL_ERR_IO
 * naming the path on failure. */
int rl_write_text_atomic(const char *path, const char *text);

/* dir + "/" + file, malloc'd (aborts on OOM) */
char *rl_path_join(const char *dir, const char *file);

#endif /* RANDLORA_CORE_READ_FILE_H */
