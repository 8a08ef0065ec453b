/*
 * write_file.h: writing a whole text file so that a reader never sees half
 * of it, and joining a directory and a file name.
 */
#ifndef RANDLORA_CORE_WRITE_FILE_H
#define RANDLORA_CORE_WRITE_FILE_H

/* text and a newline to path through PATH.tmpPID and rename(); RL_ERR_IO
 * naming the path on failure (the temporary file is removed) */
int rl_write_text_atomic(const char *path, const char *text);

/* dir + "/" + file, malloc'd (aborts on OOM) */
char *rl_path_join(const char *dir, const char *file);

#endif /* RANDLORA_CORE_WRITE_FILE_H */
