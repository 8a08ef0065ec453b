/*
 * check_dist_sweep.c: `randlora sweep` under mpirun (experiments/
 * sweep_ranks.h, docs/cluster.md): rank 0 hands whole runs to the ranks.
 *
 * On a grid of 4 tiny runs, 2 ranks do every run exactly once (one result
 * line and one start line per run, both ranks busy) and write the summary
 * one process writes (the same trainable counts, accuracies, losses and
 * steps, bit for bit in their %.17g text). A run that fails on rank 1 is
 * reported and the other still runs (exit 1, no hang: every mpirun is
 * under `timeout`). Rank 1 killed mid-sweep (SIGKILL): mpirun fails, the
 * runs' children stop (no lock left behind), and `--resume` on 2 ranks
 * finishes the grid with one process's summary. --jobs under mpirun is
 * refused with one line. Skipped, saying so, without mpirun or MPI.
 * The binary is $RANDLORA_BIN (make check sets it).
 */
#include <check.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dist_harness.h"
#include "runner_harness.h"
#include "suites.h"
#include "test_cmd.h"
#include "test_util.h"

#define N_GRID 4

static const char *const grid_ids[N_GRID] = {
    "lora-r4-s2-seed1", "lora-r4-s4-seed1", "vera-r16-s2-seed1", "vera-r16-s4-seed1",
};

/* summary.tsv's columns compared with one process's: id, n_trainable,
 * accuracy, loss, steps_done, status, val_accuracy */
static const int same_cols[] = { 0, 8, 9, 10, 11, 15, 16 };
#define N_SAME (sizeof(same_cols) / sizeof(same_cols[0]))

/* t/grid.ini: 2 methods x 2 shots on the tiny model, output t/two */
static void setup(struct tmp *t)
{
    char text[2048], path[256];

    tmp_setup(t, true);
    snprintf(text, sizeof(text),
             "[experiment]\nname = dsweep\noutput = %s/two\n"
             "[model]\nname = %s\n"
             "[data]\ndataset = shapes-count\neval = shapes-count:test\nprompt = {}\n"
             "shots = 2, 4\neval_limit = 16\n"
             "[method]\nmethods = lora, vera\nrank = 4\nrank.vera = 16\n"
             "towers = vision, text\nmodules = q_proj, v_proj, fc1\n"
             "[train]\nsteps = 4\nbatch = 6\nlr = 1e-2\nweight_decay = 0\n"
             "checkpoint_every = 2\n"
             "[sweep]\nseeds = 1\n", t->dir, t->model);
    snprintf(path, sizeof(path), "%s/grid.ini", t->dir);
    test_write_text(path, text);
}

/* `[timeout mpirun -np ranks] randlora sweep -c t/grid.ini args`, one
 * thread per run, output into t/log; its exit status (124: it hung) */
static int sweep(const struct tmp *t, int ranks, const char *args, const char *log)
{
    char cmd[2048], launcher[256] = "";
    int st;

    if (ranks)
        snprintf(launcher, sizeof(launcher), "timeout 120 env " MPIRUN "%d", ranks);
    snprintf(cmd, sizeof(cmd), "RANDLORA_THREADS=1 %s %s sweep -c %s/grid.ini %s >%s/%s 2>&1",
             launcher, dist_bin(), t->dir, args, t->dir, log);
    st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char *slurp_in(const struct tmp *t, const char *name)
{
    char path[256];

    snprintf(path, sizeof(path), "%s/%s", t->dir, name);
    return test_slurp(path, NULL);
}

/* the last 1500 characters (Check's message limit) */
static const char *tail(const char *text)
{
    size_t n = strlen(text);

    return n > 1500 ? text + n - 1500 : text;
}

static void expect_sweep(const struct tmp *t, int ranks, const char *args, const char *log,
                         int want)
{
    int got = sweep(t, ranks, args, log);
    char *text;

    if (got == want)
        return;
    text = slurp_in(t, log);
    ck_abort_msg("sweep on %d rank(s) %s: exit %d, expected %d:\n%s", ranks, args, got, want,
                 tail(text));
}

/* how many lines of text start with `prefix` and contain `word` */
static size_t count_lines(const char *text, const char *prefix, const char *word)
{
    size_t n = 0;

    for (const char *l = text; l && *l;) {
        const char *end = strchr(l, '\n');
        const size_t len = end ? (size_t)(end - l) : strlen(l);
        char line[1024];

        snprintf(line, sizeof(line), "%.*s", (int)(len < sizeof(line) ? len : sizeof(line) - 1),
                 l);
        if (!strncmp(line, prefix, strlen(prefix)) && strstr(line, word))
            n++;
        l = end ? end + 1 : NULL;
    }
    return n;
}

/* the row of summary text whose id is `id`, columns same_cols joined */
static void row_of(const char *text, const char *id, char *buf, size_t cap)
{
    char key[128];
    const char *row;
    size_t len = 0;

    snprintf(key, sizeof(key), "\n%s\t", id);
    row = strstr(text, key);
    ck_assert_msg(row != NULL, "no row %s in summary.tsv:\n%s", id, tail(text));
    row++;
    buf[0] = '\0';
    for (size_t c = 0; c < N_SAME; c++) {
        const char *f = row;
        size_t flen;

        for (int k = 0; k < same_cols[c]; k++) {
            f = strchr(f, '\t');
            ck_assert_ptr_nonnull(f);
            f++;
        }
        flen = strcspn(f, "\t\n");
        len += (size_t)snprintf(buf + len, cap - len, "%.*s|", (int)flen, f);
    }
}

/* t/two/summary.tsv and t/<one>/summary.tsv agree on the runs ids[0..n),
 * all complete */
static void expect_same_summary(const struct tmp *t, const char *one, const char *const *ids,
                                size_t n)
{
    char name[64];
    char *two_text, *one_text;

    two_text = slurp_in(t, "two/summary.tsv");
    snprintf(name, sizeof(name), "%s/summary.tsv", one);
    one_text = slurp_in(t, name);
    for (size_t i = 0; i < n; i++) {
        char a[1024], b[1024];

        row_of(two_text, ids[i], a, sizeof(a));
        row_of(one_text, ids[i], b, sizeof(b));
        ck_assert_msg(!strcmp(a, b), "%s: 2 ranks %s, 1 process %s", ids[i], a, b);
        ck_assert_msg(strstr(a, "|complete|"), "%s not complete: %s", ids[i], a);
    }
    free(two_text);
    free(one_text);
}

/* the grid on 2 ranks: each run once, both ranks used, one process's
 * summary */
START_TEST(two_ranks_run_each_once)
{
    struct tmp t;
    char *log, args[512];

    if (!mpi_available("check_dist_sweep"))
        return;
    setup(&t);
    expect_sweep(&t, 2, "", "two.log", 0);
    snprintf(args, sizeof(args), "-q -s experiment.output=%s/one", t.dir);
    expect_sweep(&t, 0, args, "one.log", 0);
    log = slurp_in(&t, "two.log");
    for (size_t i = 0; i < N_GRID; i++) {
        char word[64];

        snprintf(word, sizeof(word), " %s ", grid_ids[i]);
        ck_assert_msg(count_lines(log, "[", word) == 1, "%s: not one result line:\n%s",
                      grid_ids[i], tail(log));
        snprintf(word, sizeof(word), ": start %s ", grid_ids[i]);
        ck_assert_msg(count_lines(log, "rank ", word) == 1, "%s: not one start line:\n%s",
                      grid_ids[i], tail(log));
    }
    ck_assert_msg(count_lines(log, "[", "accuracy") == N_GRID, "%s", tail(log));
    ck_assert_msg(count_lines(log, "[", "  rank 0") >= 1 && count_lines(log, "[", "  rank 1") >= 1,
                  "both ranks should have run runs:\n%s", tail(log));
    ck_assert_msg(strstr(log, "running 4 runs on 2 MPI ranks"), "%s", tail(log));
    free(log);
    expect_same_summary(&t, "one", grid_ids, N_GRID);
    tmp_cleanup(&t);
}
END_TEST

/* rank 1's run fails (more shots than the data has; rank 1 gets the first
 * run of the grid): reported with its rank, rank 0's run completes, exit
 * status 1, nothing hangs; --jobs is refused under mpirun */
START_TEST(failed_run_on_a_rank)
{
    struct tmp t;
    char *log, *sum;

    if (!mpi_available("check_dist_sweep"))
        return;
    setup(&t);
    expect_sweep(&t, 2, "-q -s 'data.shots=100000, 2' -s method.methods=lora", "fail.log", 1);
    log = slurp_in(&t, "fail.log");
    ck_assert_msg(count_lines(log, "[", "lora-r4-s100000-seed1") == 1 &&
                  strstr(log, "FAILED after") && strstr(log, "  rank 1: ") &&
                  strstr(log, "fewer than 100000 shots"), "%s", tail(log));
    ck_assert_msg(strstr(log, "1 of 2 runs failed (lora-r4-s100000-seed1)"), "%s", tail(log));
    ck_assert_msg(count_lines(log, "[", "lora-r4-s2-seed1") == 1 &&
                  count_lines(log, "[", "accuracy") == 1, "%s", tail(log));
    free(log);
    sum = slurp_in(&t, "two/summary.tsv");
    ck_assert_msg(strstr(sum, "\nlora-r4-s2-seed1\t") && strstr(sum, "\tcomplete\t"), "%s", sum);
    free(sum);

    expect_sweep(&t, 2, "--jobs 2", "jobs.log", 2);
    log = slurp_in(&t, "jobs.log");
    ck_assert_msg(count_lines(log, "randlora sweep: --jobs 2: under mpirun", "") == 1, "%s",
                  tail(log));
    free(log);
    tmp_cleanup(&t);
}
END_TEST

/* the lock files left in dir (a run's child still alive holds one) */
static size_t lock_files(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    size_t n = 0;

    if (!d)
        return 0;
    while ((e = readdir(d)))
        if (e->d_name[0] == '.' && strstr(e->d_name, ".lock"))
            n++;
    closedir(d);
    return n;
}

/* rank 1 killed while both ranks run (the 2-shot runs: one each): the job
 * fails, rank 1's run stops with a resumable file instead of training on
 * (its parent is gone), and --resume on 2 ranks ends with one process's
 * summary */
START_TEST(rank_killed_then_resumed)
{
    static const char *const longer =
        "-s data.shots=2 -s train.steps=300 -s train.checkpoint_every=5";
    static const char *const two_ids[2] = { "lora-r4-s2-seed1", "vera-r16-s2-seed1" };
    char cmd[2048], dir[128], a[256], b[256], args[512];
    struct tmp t;
    pid_t mpirun;

    if (!mpi_available("check_dist_sweep"))
        return;
    setup(&t);
    snprintf(dir, sizeof(dir), "%s/two", t.dir);
    snprintf(a, sizeof(a), "%s/%s.h5", dir, two_ids[0]);
    snprintf(b, sizeof(b), "%s/%s.h5", dir, two_ids[1]);
    snprintf(cmd, sizeof(cmd), "exec env RANDLORA_THREADS=1 " MPIRUN "2 %s sweep -c %s/grid.ini "
             "%s >%s/killed.log 2>&1", dist_bin(), t.dir, longer, t.dir);
    mpirun = start_shell(cmd);
    for (int i = 0; i < 6000 && !(has_checkpoint(a, 5) && has_checkpoint(b, 5)); i++)
        usleep(10000);                                     /* 60 s at most */
    if (!kill_rank(mpirun, 1, "check_dist_sweep", "rank_killed_then_resumed")) {
        tmp_cleanup(&t);
        return;
    }
    /* the runs' children stop on their parents' death (no lock held on) */
    for (int i = 0; i < 1000 && lock_files(dir); i++)
        usleep(10000);
    ck_assert_msg(lock_files(dir) == 0, "a run of the killed sweep still holds its lock");

    snprintf(args, sizeof(args), "%s --resume", longer);
    expect_sweep(&t, 2, args, "resumed.log", 0);
    {
        char *log = slurp_in(&t, "resumed.log");

        char line[64];

        /* rank 1's run (the grid's first) stopped with its rank; rank 0's
         * may have finished before the kill on a loaded machine */
        snprintf(line, sizeof(line), "  %s ", two_ids[0]);
        ck_assert_msg(count_lines(log, line, "continue") == 1, "%s did not stop with rank 1:\n%s",
                      two_ids[0], tail(log));
        snprintf(line, sizeof(line), " %s ", two_ids[0]);
        ck_assert_msg(count_lines(log, "[", line) == 1 && count_lines(log, "[", "FAILED") == 0,
                      "%s", tail(log));
        free(log);
    }
    snprintf(args, sizeof(args), "-q %s -s experiment.output=%s/straight", longer, t.dir);
    expect_sweep(&t, 0, args, "straight.log", 0);
    expect_same_summary(&t, "straight", two_ids, 2);
    tmp_cleanup(&t);
}
END_TEST

Suite *suite_dist_sweep(void)
{
    Suite *s = suite_create("dist_sweep");
    TCase *tc = tcase_create("mpirun");

    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, two_ranks_run_each_once);
    tcase_add_test(tc, failed_run_on_a_rank);
    tcase_add_test(tc, rank_killed_then_resumed);
    suite_add_tcase(s, tc);
    return s;
}
