/*
 * cli.h: what the subcommands (commands.h) share in reading their command
 * line: the one-line usage error, positive whole numbers, the refusal to
 * write into an output directory that already holds something, and the
 * command line that resumes an interrupted train or sweep.
 */
#ifndef RANDLORA_EXPERIMENTS_CLI_H
#define RANDLORA_EXPERIMENTS_CLI_H

#include <stdbool.h>
#include <stddef.h>

/* "randlora CMD: MESSAGE" on stderr, followed by " (see randlora CMD
 * --help)" when help_hint; returns 2, the exit status of bad input */
int cli_bad(const char *cmd, bool help_hint, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* s a whole decimal number in 1..max, no sign, no other characters: 0 and
 * *out set, else -1 and *out untouched */
int cli_parse_count(const char *s, size_t max, size_t *out);

/* "randlora CMD ARG... --resume": argv[1..argc) shell-quoted where needed
 * ('it'\''s'), without --force, with --resume appended unless it is there
 * (an option's value is never taken for either); allocated, the caller
 * frees. */
char *cli_resume_command(const char *cmd, int argc, char **argv);
/* May CMD write into output directory `dir`? 0 when dir is missing or an
 * empty directory, or when force (the caller then writes into it, replacing
 * files of the same names and leaving the others). Otherwise one line naming
 * dir and --force (cli_bad) and 2; a dir that exists but is not a directory
 * is refused even with force. */
int cli_output_dir_ok(const char *cmd, const char *dir, bool force);

#endif /* RANDLORA_EXPERIMENTS_CLI_H */
