/*
 * merge_files.h: the files `randlora merge` copies from the base model
 * directory into the merged one (cli/merge_files.c), for CLIP models
 * (cli/cmd_merge.c) and decoders (cli/merge_decoder.c).
 */
#ifndef RANDLORA_CLI_MERGE_FILES_H
#define RANDLORA_CLI_MERGE_FILES_H

#include <stddef.h>

/* "dir/file", malloc'd */
char *merge_path_join(const char *dir, const char *file);
/* copy src to dst through dst.tmp.PID and a rename (at most 1 GiB) */
int   merge_copy_file(const char *src, const char *dst);
/* Copy the tokenizer and preprocessing files model_dir has (vocab.json,
 * merges.txt, tokenizer.json, tokenizer_config.json,
 * special_tokens_map.json, preprocessor_config.json, tokenizer_bytes.json,
 * generation_config.json) into out_dir; *copied: how many. */
int   merge_copy_model_files(const char *model_dir, const char *out_dir, size_t *copied);

#endif /* RANDLORA_CLI_MERGE_FILES_H */
