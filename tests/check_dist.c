/*
 * check_dist.c: data-parallel training (core/dist.h, docs/cluster.md).
 *
 * `mpirun -np 2 randlora train` on the tiny model against one process with
 * the same effective batch (train.batch 4 x train.accumulate 2), for LoRA
 * and full fine-tuning: the final adapters agree within DIST_BOUND (the
 * ranks' partial gradients are summed in rank order, one process sums the
 * micro-batches one after the other: the same sum, associated otherwise),
 * while a run with another effective batch does not; where the adapters are
 * the same bits, so are the final evaluations (split over the ranks). A
 * checkpoint one process wrote resumes on 2 ranks, and a 2-rank run stopped
 * by SIGTERM or by killing a rank resumes in one process, to the same
 * adapter. An MPI build started without mpirun runs as one process; under
 * mpirun the refusals (too few micro-batches for the ranks, commands other
 * than train) exit 2. Skipped, saying so, when mpirun is absent or the
 * build has no MPI (the one-process test still runs).
 * The binary is $RANDLORA_BIN (make check sets it).
 */
#include <check.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/dist.h"
#include "core/status.h"
#include "results/store.h"
#include "dist_harness.h"
#include "runner_harness.h"
#include "suites.h"
#include "test_cmd.h"
#include "test_proc.h"
#include "test_util.h"

/* largest |difference| allowed between the 2-rank and the 1-process
 * adapters after 3 AdamW steps: round-off of the gradients' summation order
 * (a few ulp of values of order 1) carried through Adam; measured 1.2e-7
 * for LoRA on both towers, 0 (bit for bit) for full fine-tuning of the
 * vision tower (RANDLORA_TEST_VERBOSE=1 prints both) */
#define DIST_BOUND 1e-5

/* the settings every run shares: 3 steps of 4 x 2 images, a small eval */
static const char *const common =
    "-q -s train.steps=3 -s train.batch=4 -s data.eval_limit=8 -s train.eval_every=0 "
    "-s train.checkpoint_every=0";

/* `[mpirun -np ranks] randlora train -c t/x.ini -o t/out args`, one thread
 * per process, its output into t/out.log; its exit status (-1: it did not
 * exit) */
static int train(const struct tmp *t, int ranks, const char *out, const char *args)
{
    char cmd[2048], launcher[256] = "";
    int st;

    if (ranks)
        snprintf(launcher, sizeof(launcher), MPIRUN "%d", ranks);
    snprintf(cmd, sizeof(cmd),
             "RANDLORA_THREADS=1 %s %s train -c %s/x.ini -o %s/%s %s >%s/%s.log 2>&1",
             launcher, dist_bin(), t->dir, t->dir, out, args, t->dir, out);
    st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* train(...) exiting with status want, else the test fails showing its
 * output */
static void expect_train(const struct tmp *t, int ranks, const char *out, const char *args,
                         int want)
{
    char path[256], *log;
    int got = train(t, ranks, out, args);

    if (got == want)
        return;
    snprintf(path, sizeof(path), "%s/%s.log", t->dir, out);
    log = test_slurp(path, NULL);
    ck_abort_msg("train on %d rank(s) -o %s: exit %d, expected %d:\n%s", ranks, out, got, want,
                 log);
}

static void setup(struct tmp *t)
{
    char text[2048], path[256];

    tmp_setup(t, true);
    tiny_ini_text(text, sizeof(text), t);
    snprintf(path, sizeof(path), "%s/x.ini", t->dir);
    test_write_text(path, text);
}

static float *adapter_of(const struct tmp *t, const char *name, size_t *n)
{
    char path[256];

    snprintf(path, sizeof(path), "%s/%s", t->dir, name);
    return read_adapter(path, n);
}

/* the adapters of files a and b in t's folder within DIST_BOUND (what
 * names the case; RANDLORA_TEST_VERBOSE=1 prints the difference) */
static void expect_close_adapters(const struct tmp *t, const char *a, const char *b,
                                  const char *what)
{
    float *pa, *pb;
    size_t na, nb;
    double d;

    pa = adapter_of(t, a, &na);
    pb = adapter_of(t, b, &nb);
    ck_assert_uint_eq(na, nb);
    d = test_max_abs_diff(pa, pb, na);
    if (getenv("RANDLORA_TEST_VERBOSE"))
        fprintf(stderr, "check_dist: %s: %g (bit for bit: %s)\n", what, d,
                memcmp(pa, pb, na * sizeof(float)) ? "no" : "yes");
    ck_assert_msg(d <= DIST_BOUND, "%s: max |diff| %g > %g", what, d, DIST_BOUND);
    free(pa);
    free(pb);
}

/* the final test-set evaluation of a finished file */
static struct store_final final_of(const struct tmp *t, const char *name)
{
    struct store_final f;
    struct store *st;
    char path[256];
    int completed = 0;

    snprintf(path, sizeof(path), "%s/%s", t->dir, name);
    ck_assert_int_eq(store_open(&st, path), RL_OK);
    ck_assert_int_eq(store_read_final(st, &f, &completed), RL_OK);
    ck_assert_int_eq(completed, 1);
    store_close(st);
    return f;
}

/* method (with its extra settings) on 2 ranks, on 1 process with the same
 * effective batch, and on 1 process with half of it */
static void two_ranks_match_one(const char *method)
{
    char same[512], half[512];
    struct tmp t;
    float *two, *one, *other;
    size_t n2, n1, n3;
    double d_same, d_other;

    if (!mpi_available("check_dist"))
        return;
    setup(&t);
    snprintf(same, sizeof(same), "%s %s -s train.accumulate=2", common, method);
    snprintf(half, sizeof(half), "%s %s -s train.accumulate=1", common, method);
    expect_train(&t, 2, "two.h5", same, 0);
    expect_train(&t, 0, "one.h5", same, 0);
    expect_train(&t, 0, "other.h5", half, 0);
    two = adapter_of(&t, "two.h5", &n2);
    one = adapter_of(&t, "one.h5", &n1);
    other = adapter_of(&t, "other.h5", &n3);
    ck_assert_uint_eq(n2, n1);
    ck_assert_uint_eq(n3, n1);
    d_same = test_max_abs_diff(two, one, n1);
    d_other = test_max_abs_diff(other, one, n1);
    if (getenv("RANDLORA_TEST_VERBOSE"))
        fprintf(stderr, "check_dist %s: %zu values, 2 ranks vs 1: %g (bit for bit: %s); "
                "half the batch: %g\n", method, n1, d_same,
                memcmp(two, one, n1 * sizeof(float)) ? "no" : "yes", d_other);
    ck_assert_msg(d_same <= DIST_BOUND, "2 ranks vs 1 process: max |diff| %g > %g", d_same,
                  DIST_BOUND);
    if (memcmp(two, one, n1 * sizeof(float)) == 0) {
        /* the same adapter: the evaluation split over the ranks (batch i
         * on rank i mod 2) sums to one process's numbers, bit for bit */
        struct store_final f2 = final_of(&t, "two.h5"), f1 = final_of(&t, "one.h5");

        ck_assert_msg(f2.loss == f1.loss && f2.accuracy == f1.accuracy,
                      "final eval on 2 ranks: loss %.17g accuracy %g; one process %.17g %g",
                      f2.loss, f2.accuracy, f1.loss, f1.accuracy);
    }
    /* the comparison can fail: another effective batch is far off */
    ck_assert_msg(d_other > 10 * DIST_BOUND, "half the batch: max |diff| only %g", d_other);
    free(two);
    free(one);
    free(other);
    tmp_cleanup(&t);
}

START_TEST(lora_two_ranks)
{
    two_ranks_match_one("-s method.methods=lora -s method.rank=2");
}
END_TEST

START_TEST(full_two_ranks)
{
    two_ranks_match_one("-s method.methods=full -s method.towers=vision -s train.lr=1e-3");
}
END_TEST

/* a checkpoint written by one process (killed after step 3, checkpoint
 * at 2) resumed on 2 ranks: the final adapter within DIST_BOUND of one
 * process straight through (a checkpoint holds nothing of the number of
 * ranks; rank 0 reads it and broadcasts it) */
START_TEST(resume_on_two_ranks)
{
    static const char *const ov[] = {
        "train.steps=4", "train.batch=4", "train.accumulate=2", "data.eval_limit=8",
        "train.eval_every=0", "train.checkpoint_every=2", "method.methods=lora",
        "method.rank=2", "method.towers=vision", "method.modules=q_proj",
    };
    const size_t n_ov = sizeof(ov) / sizeof(ov[0]);
    struct run_plan *plans;
    struct experiment e;
    struct tmp t;
    char args[1024] = "", path[256], *log;
    size_t len = 0, kill_step = 3, n_plans = 0;
    struct runner_shapes shapes = { 0 };
    struct runner_hooks h = { .ctx = &kill_step, .on_step = exit_at_step };
    pid_t pid;
    int st;

    if (!mpi_available("check_dist"))
        return;
    setup(&t);
    /* the plan as `randlora train -c x.ini -s ...` makes it (cmd_train.c) */
    snprintf(path, sizeof(path), "%s/x.ini", t.dir);
    ck_assert_msg(experiment_load(&e, path, ov, n_ov) == RL_OK, "%s", rl_error_msg());
    ck_assert_msg(experiment_expand(&e, runner_plan_shapes, &shapes, &plans, &n_plans) == RL_OK,
                  "%s", rl_error_msg());
    runner_shapes_free(&shapes);
    ck_assert_uint_eq(n_plans, 1);
    for (size_t i = 0; i < n_ov; i++)
        len += (size_t)snprintf(args + len, sizeof(args) - len, " -s %s", ov[i]);
    snprintf(path, sizeof(path), "%s/resumed.h5", t.dir);
    pid = test_fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        run_quiet(&plans[0], path, &h, false, NULL);
        _exit(3);                                 /* not reached */
    }
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    snprintf(args + len, sizeof(args) - len, " --resume");
    expect_train(&t, 2, "resumed.h5", args, 0);
    snprintf(path, sizeof(path), "%s/resumed.h5.log", t.dir);
    log = test_slurp(path, NULL);
    ck_assert_msg(strstr(log, "resuming at step 2 of 4"), "%s", log);
    expect_train(&t, 0, "straight.h5", args, 0);
    expect_close_adapters(&t, "resumed.h5", "straight.h5",
                          "1 process to step 3, resumed at 2 on 2 ranks vs 1 process");
    free(log);
    run_plans_free(plans, 1);
    experiment_free(&e);
    tmp_cleanup(&t);
}
END_TEST

/* the long run the stop tests interrupt: LoRA on the vision tower, 300
 * steps of 4 x 2, an eval line and a checkpoint every 2 steps */
static const char *const long_run =
    "-s train.steps=1000 -s train.batch=4 -s train.accumulate=2 -s data.eval_limit=8 "
    "-s train.eval_every=2 -s train.checkpoint_every=2 -s method.methods=lora -s method.rank=2 "
    "-s method.towers=vision -s method.modules=q_proj";

/* long_run on 2 ranks into t/stopped.h5 (log t/stopped.h5.log), started in
 * the background: mpirun's pid, once the run file holds a checkpoint (read
 * from the file: the log is block-buffered and lags). 1000 steps leave a
 * second or more before the run could end on its own. */
static pid_t start_long_run(const struct tmp *t)
{
    char cmd[2048], path[256], h5[256];
    pid_t pid;

    snprintf(path, sizeof(path), "%s/stopped.h5.log", t->dir);
    snprintf(h5, sizeof(h5), "%s/stopped.h5", t->dir);
    snprintf(cmd, sizeof(cmd), "exec env RANDLORA_THREADS=1 " MPIRUN "2 %s train -c %s/x.ini -o "
             "%s %s >%s 2>&1", dist_bin(), t->dir, h5, long_run, path);
    pid = start_shell(cmd);
    for (int i = 0; i < 6000 && !has_checkpoint(h5, 2); i++)    /* 60 s at most */
        usleep(10000);
    return pid;
}

/* t/stopped.h5 resumed by one process: the adapter of one process
 * straight through within DIST_BOUND (what names the case) */
static void resume_alone_and_compare(const struct tmp *t, const char *what)
{
    char args[1024], path[256], *log;

    snprintf(args, sizeof(args), "%s --resume", long_run);
    expect_train(t, 0, "stopped.h5", args, 0);
    snprintf(path, sizeof(path), "%s/stopped.h5.log", t->dir);
    log = test_slurp(path, NULL);
    ck_assert_msg(strstr(log, "resuming at step"), "%s",
                  strlen(log) > 1500 ? log + strlen(log) - 1500 : log);
    free(log);
    expect_train(t, 0, "straight.h5", long_run, 0);
    expect_close_adapters(t, "stopped.h5", "straight.h5", what);
}

/* a run on 2 ranks stopped by SIGTERM to mpirun (which forwards it: the
 * ranks agree to stop after the same step) resumes in one process (a
 * checkpoint holds nothing of the number of ranks) */
START_TEST(two_ranks_resumed_by_one)
{
    char path[256], *log;
    struct tmp t;
    pid_t pid;
    int st;

    if (!mpi_available("check_dist"))
        return;
    setup(&t);
    pid = start_long_run(&t);
    ck_assert_int_eq(kill(pid, SIGTERM), 0);
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    snprintf(path, sizeof(path), "%s/stopped.h5.log", t.dir);
    log = test_slurp(path, NULL);
    ck_assert_msg(strstr(log, "interrupted at step"), "the 2 ranks were not interrupted:\n%s",
                  strlen(log) > 1500 ? log + strlen(log) - 1500 : log);
    free(log);
    resume_alone_and_compare(&t, "stopped on 2 ranks, resumed by 1 process vs 1 process");
    tmp_cleanup(&t);
}
END_TEST

/* rank 1 killed (SIGKILL) mid-run: mpirun ends the job with a failure,
 * and rank 0's file resumes in one process like after any crash */
START_TEST(rank_killed_leaves_resumable_file)
{
    struct tmp t;
    pid_t pid;

    if (!mpi_available("check_dist"))
        return;
    setup(&t);
    pid = start_long_run(&t);
    if (!kill_rank(pid, 1, "check_dist", "rank_killed_leaves_resumable_file")) {
        tmp_cleanup(&t);
        return;
    }
    resume_alone_and_compare(&t, "rank 1 killed, resumed by 1 process vs 1 process");
    tmp_cleanup(&t);
}
END_TEST

/* without a launcher an MPI build is one process: rank 0 of 1, one result
 * line, the file written */
START_TEST(no_launcher_one_process)
{
    struct tmp t;
    char path[256], *log;
    float *a;
    size_t n;

    ck_assert_int_eq(dist_size(), 1);
    ck_assert_int_eq(dist_rank(), 0);
    setup(&t);
    expect_train(&t, 0, "plain.h5", common, 0);
    snprintf(path, sizeof(path), "%s/plain.h5.log", t.dir);
    log = test_slurp(path, NULL);
    ck_assert_msg(strstr(log, "accuracy") && !strstr(log, "MPI"), "%s", log);
    a = adapter_of(&t, "plain.h5", &n);
    ck_assert_uint_gt(n, 0);
    free(a);
    free(log);
    tmp_cleanup(&t);
}
END_TEST

/* under mpirun: fewer micro-batches than ranks, and a command that does
 * not divide its work, are refused with exit status 2 and one message */
START_TEST(refusals_under_mpirun)
{
    struct tmp t;
    char cmd[1024], path[256], *log;
    int st;

    if (!mpi_available("check_dist"))
        return;
    setup(&t);
    snprintf(cmd, sizeof(cmd), "%s -s train.accumulate=1", common);
    expect_train(&t, 2, "few.h5", cmd, 2);
    snprintf(path, sizeof(path), "%s/few.h5.log", t.dir);
    log = test_slurp(path, NULL);
    ck_assert_msg(strstr(log, "train.accumulate = 1, but 2 MPI ranks"), "%s", log);
    free(log);
    snprintf(path, sizeof(path), "%s/few.h5", t.dir);
    ck_assert_msg(access(path, F_OK) != 0, "a refused run left %s", path);

    snprintf(cmd, sizeof(cmd), MPIRUN "2 %s threads >%s/threads.log 2>&1", dist_bin(), t.dir);
    st = system(cmd);
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 2);
    snprintf(path, sizeof(path), "%s/threads.log", t.dir);
    log = test_slurp(path, NULL);
    ck_assert_msg(strstr(log, "threads does not run on 2 MPI ranks"), "%s", log);
    free(log);
    tmp_cleanup(&t);
}
END_TEST

Suite *suite_dist(void)
{
    Suite *s = suite_create("dist");
    TCase *tc = tcase_create("mpirun");

    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, lora_two_ranks);
    tcase_add_test(tc, full_two_ranks);
    tcase_add_test(tc, resume_on_two_ranks);
    tcase_add_test(tc, two_ranks_resumed_by_one);
    tcase_add_test(tc, rank_killed_leaves_resumable_file);
    tcase_add_test(tc, no_launcher_one_process);
    tcase_add_test(tc, refusals_under_mpirun);
    suite_add_tcase(s, tc);
    return s;
}
