/*
 * store_harness.h: what the store suites share (check_store.c, the life
 * cycle; check_store_hostile.c, corrupt files and `randlora info`): a
 * scratch directory, a run's phase-1 record, deterministic /train rows and
 * checkpoint blocks, and the one-line error assertion.
 */
#ifndef RANDLORA_TESTS_STORE_HARNESS_H
#define RANDLORA_TESTS_STORE_HARNESS_H

#include <stddef.h>

#include "results/store.h"

#define NTR 37          /* n_trainable of the test runs */
#define NIDX 12         /* sampled training indices of the test runs */

/* a fresh scratch directory; its paths; removed with what it holds */
void store_test_dir_make(void);
void store_test_dir_remove(void);
const char *store_test_dir(void);
const char *store_test_path(const char *name);   /* rotating static buffers */

/* the phase-1 record of the test runs (a static train index of NIDX) */
struct store_run_info store_test_run_info(size_t flush_every);
/* deterministic /train row i, with a non-finite grad_norm now and then */
struct store_train_row store_test_row_at(int i, double salt);
/* the trainable block, m and v (NTR floats each) of a checkpoint at step */
void store_test_block_at(int step, float *p, float *m, float *v);
/* in a forked child: create path, append 50 rows (an eval row every 10, a
 * checkpoint at 30) and _exit(0) without closing: an interrupted writer */
void store_test_writer_then_die(const char *path) __attribute__((noreturn));
/* rc == want and rl_error_msg() one line containing substr */
void store_test_expect_error(int rc, int want, const char *substr);

#endif /* RANDLORA_TESTS_STORE_HARNESS_H */
