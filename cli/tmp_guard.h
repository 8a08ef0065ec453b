/*
 * tmp_guard.h: no temporary output left behind by a command that dies.
 *
 * A command that writes OUT through OUT.tmp.PID and a rename guards the
 * temporary name while it exists: a fatal signal (SIGINT, SIGTERM, SIGHUP,
 * and SIGABRT, SIGSEGV, SIGBUS, SIGFPE of an abort or a crash) then removes
 * it before the process dies of that signal (the handler unlinks the file,
 * puts the previous action back and raises the signal again). Normal
 * failures remove the file themselves and clear the guard.
 *
 *     tmp_guard_set(tmp);                  // before the file is created
 *     ... write tmp, rename(tmp, out) or unlink(tmp) ...
 *     tmp_guard_clear();                   // the previous handlers return
 *
 * A signal the process ignores stays ignored. One file at a time per
 * process; the path is copied (at most
 * TMP_GUARD_PATH_MAX - 1 bytes; a longer one is not guarded).
 */
#ifndef RANDLORA_CLI_TMP_GUARD_H
#define RANDLORA_CLI_TMP_GUARD_H

#define TMP_GUARD_PATH_MAX 4096

void tmp_guard_set(const char *path);
void tmp_guard_clear(void);

#endif /* RANDLORA_CLI_TMP_GUARD_H */
