/*
 * run_files.h: tiny synthetic run files for the report and summary tests:
 * a real results file (results/store.h) whose /config is the plan of one
 * run of a small experiment text with overrides, and whose /final holds the
 * given metrics; no training.
 */
#ifndef RANDLORA_TESTS_RUN_FILES_H
#define RANDLORA_TESTS_RUN_FILES_H

#include <stdbool.h>
#include <stddef.h>

/* The experiment the runs come from: methods lora, rank 4, shapes-count,
 * 4 shots, 10 steps, lr 1e-3, seed 1 (as INI text). */
extern const char run_files_base[];

struct run_file_spec {
    const char *const *overrides;   /* "section.key=value" on the base     */
    size_t n_overrides;
    const char *name;               /* file name in dir; NULL: "<id>.h5"   */
    bool   complete;                /* /final written                       */
    bool   has_val;                 /* /final/val_* written                 */
    double val_accuracy, val_loss, test_accuracy;
    size_t n_trainable;
};

/* Write dir/<name> (ck_assert on failure); returns the path (static
 * buffer, valid until the next call). */
const char *run_file_write(const char *dir, const struct run_file_spec *spec);

/* cmd(argc, argv) with stdout and stderr sent to the files out_path and
 * err_path (created); returns its exit status. */
int run_files_cmd_captured(int (*cmd)(int, char **), int argc, const char **argv,
                     const char *out_path, const char *err_path);

/* The whole file, allocated (caller frees); NULL when it cannot be read. */
char *run_files_slurp(const char *path);

#endif /* RANDLORA_TESTS_RUN_FILES_H */
