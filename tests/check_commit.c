/*
 * check_commit.c: the results file's commit protocol (results/store.h,
 * "Commit") proved by killing the process at every write the store makes:
 * a short run on the tiny model (runner_harness.h) is started in a child that
 * _exits at write k, for every k from 1 to the last, and the file left is
 * then either complete and whole (its adapter and final records those of an
 * uninterrupted run, bit for bit) or resumes to exactly that; the same for
 * a kill at every write of a resume, and of `randlora analyze`, which must
 * leave the finished file as it was or analyzed, never damaged.
 */
#include <check.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/commands.h"
#include "core/status.h"
#include "results/store.h"
#include "runner_harness.h"
#include "suites.h"
#include "test_cmd.h"
#include "test_util.h"

#define KILLED 77          /* the child died at the write it was told */
#define FINISHED 78        /* the child's run ended before that write */

static int kill_at(void *ctx, unsigned long n)
{
    if (n == *(const unsigned long *)ctx)
        _exit(KILLED);
    return 0;
}

/* what an uninterrupted run produced */
struct reference {
    float *adapter;
    size_t n;
    double accuracy, loss;
};

/* In a child (every run is: OpenMP's threads do not survive a fork, so
 * the parent never trains): run or resume p into path, killed at write k
 * (0: never). KILLED or FINISHED; a failed run fails the test with the
 * child's message (stderr). *already_complete: what the runner reported. */
static int run_child(const struct run_plan *p, const char *path, bool resume, unsigned long k,
                     bool *already_complete)
{
    int status, fds[2];
    pid_t pid;
    char done = 0;

    ck_assert_int_eq(pipe(fds), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        struct runner_result res;
        close(fds[0]);
        store_set_fault_hook(k ? kill_at : NULL, &k);
        int rc = run_quiet(p, path, NULL, resume, &res);
        if (rc != RL_OK)
            fprintf(stderr, "run_child: %s\n", rl_error_msg());
        done = res.already_complete ? 'c' : 'r';
        if (write(fds[1], &done, 1) != 1)
            _exit(2);
        _exit(rc == RL_OK ? FINISHED : 1);
    }
    close(fds[1]);
    if (read(fds[0], &done, 1) != 1)
        done = 0;
    close(fds[0]);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && (WEXITSTATUS(status) == KILLED || WEXITSTATUS(status) == FINISHED),
                  "write %lu of %s%s: child status 0x%x", k, path, resume ? " (resume)" : "", status);
    if (already_complete)
        *already_complete = done == 'c';
    return WEXITSTATUS(status);
}

static void reference_run(struct reference *ref, const struct run_plan *p, const char *path)
{
    struct store *s;
    struct store_final f;
    int completed = 0;

    ck_assert_int_eq(run_child(p, path, false, 0, NULL), FINISHED);
    ref->adapter = read_adapter(path, &ref->n);
    ck_assert_int_eq(store_open(&s, path), RL_OK);
    ck_assert_int_eq(store_read_final(s, &f, &completed), RL_OK);
    ck_assert_int_eq(completed, 1);
    ref->accuracy = f.accuracy;
    ref->loss = f.loss;
    store_close(s);
}

/* a complete file: /final/completed = 1 with the reference's results, the
 * adapter bit for bit, /train steps 1..steps once each; no working copy
 * beside it unless tmp_allowed (a killed analyze leaves its garbage, which
 * the next one overwrites) */
static void check_complete(const char *path, const struct reference *ref, size_t steps, const char *when,
                           bool tmp_allowed)
{
    struct store *s;
    struct store_final f;
    int completed = 0;
    int64_t *st;
    double *v;
    size_t n, na;
    char tmp[300];

    ck_assert_msg(store_open(&s, path) == RL_OK, "%s: %s", when, rl_error_msg());
    ck_assert_int_eq(store_read_final(s, &f, &completed), RL_OK);
    ck_assert_msg(completed == 1, "%s: not complete", when);
    ck_assert_msg(f.accuracy == ref->accuracy && f.loss == ref->loss, "%s: final %.17g %.17g, want %.17g %.17g",
                  when, f.accuracy, f.loss, ref->accuracy, ref->loss);
    ck_assert_int_eq(store_read_curve(s, "train", "loss", &st, &v, &n), RL_OK);
    ck_assert_msg(n == steps, "%s: %zu train rows", when, n);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(st[i] == (int64_t)i + 1, "%s: row %zu is step %lld", when, i, (long long)st[i]);
    free(st);
    free(v);
    store_close(s);
    float *a = read_adapter(path, &na);
    ck_assert_msg(na == ref->n && memcmp(a, ref->adapter, na * sizeof(float)) == 0, "%s: adapter differs", when);
    free(a);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    ck_assert_msg(tmp_allowed || access(tmp, F_OK) != 0, "%s: %s left behind", when, tmp);
}

enum left { LEFT_NOTHING, LEFT_UNFINISHED, LEFT_COMPLETE };

/* What a killed writer left at path: nothing, an unfinished run (which must
 * open and say so), or a complete one. Anything else fails the test. */
static enum left inspect(const char *path, const char *when)
{
    struct store *s;
    struct store_final f;
    int completed = 0;

    if (access(path, F_OK) != 0)
        return LEFT_NOTHING;
    ck_assert_msg(store_open(&s, path) == RL_OK, "%s: the file does not open: %s", when, rl_error_msg());
    ck_assert_msg(store_read_final(s, &f, &completed) == RL_OK, "%s: %s", when, rl_error_msg());
    store_close(s);
    return completed ? LEFT_COMPLETE : LEFT_UNFINISHED;
}

/* Resume what a kill left (a complete file: nothing to do) and check it.
 * Where nothing was left (a kill before store_create's rename) the resume is
 * a fresh run, which the reference is: only the first such is run. */
static enum left settle(const struct run_plan *p, const char *path, const struct reference *ref, const char *when,
                        bool *fresh_run)
{
    bool already_complete = false;
    enum left left = inspect(path, when);

    if (left == LEFT_NOTHING && *fresh_run)
        return left;
    *fresh_run |= left == LEFT_NOTHING;
    ck_assert_int_eq(run_child(p, path, true, 0, &already_complete), FINISHED);
    ck_assert_msg(already_complete == (left == LEFT_COMPLETE), "%s: already_complete %d, left %d", when,
                  already_complete, left);
    check_complete(path, ref, RUN_SHORT_STEPS, when, false);
    return left;
}

START_TEST(test_kill_at_every_write)
{
    struct tmp t;
    struct experiment e;
    struct run_plan *plans;
    struct reference ref;
    char ref_path[128], path[128], when[64];
    size_t seen[3] = { 0, 0, 0 };
    bool fresh_run = false;
    unsigned long k;

    tmp_setup(&t, true);
    make_plan(&plans, &e, &t, run_short, RUN_SHORT_N);
    snprintf(ref_path, sizeof ref_path, "%s/ref.h5", t.dir);
    snprintf(path, sizeof path, "%s/run.h5", t.dir);
    reference_run(&ref, &plans[0], ref_path);
    for (k = 1;; k++) {
        unlink(path);
        if (run_child(&plans[0], path, false, k, NULL) == FINISHED)
            break;
        snprintf(when, sizeof when, "killed at write %lu", k);
        seen[settle(&plans[0], path, &ref, when, &fresh_run)]++;
    }
    /* every kind of instant was met: in the creation, in training and
     * the commit (unfinished), after the rename (complete) */
    ck_assert_msg(k > 60, "only %lu writes", k - 1);
    ck_assert_msg(seen[LEFT_NOTHING] > 0 && seen[LEFT_UNFINISHED] > 0 && seen[LEFT_COMPLETE] > 0,
                  "left nothing %zu, unfinished %zu, complete %zu times", seen[0], seen[1], seen[2]);
    fprintf(stderr, "commit: %lu writes: nothing %zu, unfinished %zu, complete %zu\n", k - 1, seen[0], seen[1],
            seen[2]);
    free(ref.adapter);
    run_plans_free(plans, 1);
    experiment_free(&e);
    tmp_cleanup(&t);
}
END_TEST

/* a kill at every write of a resume (store_resume's truncation outside SWMR
 * mode, the step redone, the commit) leaves a file that resumes again */
START_TEST(test_kill_at_every_write_of_resume)
{
    struct tmp t;
    struct experiment e;
    struct run_plan *plans;
    struct reference ref;
    char ref_path[128], path[128], when[64];
    size_t seen[3] = { 0, 0, 0 }, n_mid, last = RUN_SHORT_STEPS;
    struct runner_hooks h = { .ctx = &last, .on_step = exit_at_step };
    bool fresh_run = false;
    unsigned long k;
    int status;
    pid_t pid;

    tmp_setup(&t, true);
    make_plan(&plans, &e, &t, run_short, RUN_SHORT_N);
    snprintf(ref_path, sizeof ref_path, "%s/ref.h5", t.dir);
    snprintf(path, sizeof path, "%s/run.h5", t.dir);
    reference_run(&ref, &plans[0], ref_path);
    /* the unfinished file: killed after its last step (checkpoint at 2) */
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        run_quiet(&plans[0], path, &h, false, NULL);
        _exit(1);
    }
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    char *mid = test_slurp(path, &n_mid);
    for (k = 1;; k++) {
        test_write_file(path, mid, n_mid);
        if (run_child(&plans[0], path, true, k, NULL) == FINISHED)
            break;
        snprintf(when, sizeof when, "resume killed at write %lu", k);
        seen[settle(&plans[0], path, &ref, when, &fresh_run)]++;
    }
    ck_assert_msg(k > 30, "only %lu writes", k - 1);
    ck_assert_msg(seen[LEFT_NOTHING] == 0 && seen[LEFT_UNFINISHED] > 0 && seen[LEFT_COMPLETE] > 0,
                  "left nothing %zu, unfinished %zu, complete %zu times", seen[0], seen[1], seen[2]);
    check_complete(path, &ref, RUN_SHORT_STEPS, "resumed through", false);
    free(mid);
    free(ref.adapter);
    run_plans_free(plans, 1);
    experiment_free(&e);
    tmp_cleanup(&t);
}
END_TEST

/* `randlora analyze RUN.h5` in a child killed at write k (0: never) */
static int analyze_child(const char *path, unsigned long k)
{
    int status;
    pid_t pid = fork();

    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        char *argv[] = { "analyze", (char *)path, NULL };
        int null = open("/dev/null", O_WRONLY);
        if (null < 0 || dup2(null, 1) < 0 || dup2(null, 2) < 0)
            _exit(2);
        store_set_fault_hook(k ? kill_at : NULL, &k);
        _exit(cmd_analyze(2, argv) == 0 ? FINISHED : 1);
    }
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && (WEXITSTATUS(status) == KILLED || WEXITSTATUS(status) == FINISHED),
                  "analyze, write %lu: child status 0x%x", k, status);
    return WEXITSTATUS(status);
}

/* analyze rewrites a finished file: killed at any write, the file is the
 * finished run as it was (byte for byte) or the analyzed one, whole */
START_TEST(test_kill_at_every_write_of_analyze)
{
    struct tmp t;
    struct experiment e;
    struct run_plan *plans;
    struct reference ref;
    char ref_path[128], path[128], when[64];
    size_t n_orig, n_now, as_was = 0, analyzed = 0;
    unsigned long k;
    struct store *s;
    int64_t topk = 0;

    tmp_setup(&t, true);
    make_plan(&plans, &e, &t, run_short, RUN_SHORT_N);
    snprintf(ref_path, sizeof ref_path, "%s/ref.h5", t.dir);
    snprintf(path, sizeof path, "%s/a.h5", t.dir);
    reference_run(&ref, &plans[0], ref_path);
    char *orig = test_slurp(ref_path, &n_orig);
    for (k = 1;; k++) {
        test_write_file(path, orig, n_orig);
        int how = analyze_child(path, k);
        snprintf(when, sizeof when, "analyze killed at write %lu", k);
        check_complete(path, &ref, RUN_SHORT_STEPS, when, true);
        ck_assert_int_eq(store_open(&s, path), RL_OK);
        bool has = store_has(s, "/analysis");
        if (has)   /* written last: the analysis is whole */
            ck_assert_msg(store_attr_get_int64(s, "/analysis", "topk", &topk) == RL_OK, "%s: %s", when,
                          rl_error_msg());
        store_close(s);
        if (has) {
            analyzed++;
        } else {
            char *now = test_slurp(path, &n_now);
            ck_assert_msg(n_now == n_orig && memcmp(now, orig, n_orig) == 0, "%s: the file changed", when);
            free(now);
            as_was++;
        }
        if (how == FINISHED)
            break;
    }
    /* analyzed: killed at the last write (the directory's fsync, after the
     * rename) and not killed */
    ck_assert_msg(k > 10 && as_was == k - 2 && analyzed == 2, "%lu writes: as it was %zu, analyzed %zu", k - 1,
                  as_was, analyzed);
    free(orig);
    free(ref.adapter);
    run_plans_free(plans, 1);
    experiment_free(&e);
    tmp_cleanup(&t);
}
END_TEST

Suite *suite_commit(void)
{
    Suite *s = suite_create("commit");
    TCase *tc = tcase_create("kill");

    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_kill_at_every_write);
    tcase_add_test(tc, test_kill_at_every_write_of_resume);
    tcase_add_test(tc, test_kill_at_every_write_of_analyze);
    suite_add_tcase(s, tc);
    return s;
}
