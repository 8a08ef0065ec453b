/*
 * check_refusals.c: what is refused or reported, and how (issue 13,
 * findings 5-7):
 *
 *   chained_messages     a caller's context put before a callee's message
 *                        (rl_error_prefix) reads once, whole: the plan
 *                        expansion's "X.ini: lora with rank 4096: ..." and a
 *                        sweep's "/config is not one run: ..."
 *   nonfinite_weights    a checkpoint with a NaN (F32) or an Inf (F16) weight
 *                        is refused on load, naming the tensor and the first
 *                        bad index; encode --model with it exits 2, one line
 *   tmp_guard            a guarded temporary file is removed by SIGTERM and
 *                        by abort(), kept once the guard is cleared and when
 *                        the signal is ignored
 *   encode_killed        encode --text killed by SIGTERM while it writes
 *                        leaves neither OUT nor OUT.tmp.PID
 *   info_stopped         info on a run stopped for a non-finite loss prints
 *                        where and why
 *   no_fork              the core, loss and runner suites pass with CK_FORK=no
 *                        (README: for gdb); they aborted and hung before
 */
#include <check.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/tmp_guard.h"
#include "core/alloc.h"
#include "core/status.h"
#include "experiments/config.h"
#include "experiments/sweep.h"
#include "formats/safetensors.h"
#include "methods/adapter.h"
#include "models/clip.h"
#include "results/store.h"
#include "suites.h"
#include "test_cmd.h"
#include "test_proc.h"
#include "test_util.h"

static char tmpdir[256];
static char fixdir[PATH_MAX];     /* absolute path of tests/fixtures/clip_tiny */

static void tmp_setup(void)
{
    ck_assert_ptr_nonnull(test_tmpdir_make(tmpdir, sizeof(tmpdir), "refusals"));
    ck_assert_msg(realpath(fixture_path("clip_tiny"), fixdir) != NULL, "fixture: %s",
                  strerror(errno));
}

static void tmp_teardown(void)
{
    test_tmpdir_remove(tmpdir);
}

#define tp(...) test_path(tmpdir, __VA_ARGS__)

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");

    ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
    ck_assert_int_eq(fputs(text, f) >= 0, 1);
    ck_assert_int_eq(fclose(f), 0);
}

/* ------------------------------------------------------------------------ */

/* every targeted layer 128 x 128 */
static int square_shapes(void *ctx, const struct run_plan *plan,
                         const struct adapter_shape **shapes, size_t *n)
{
    static const struct adapter_shape sh[2] = { { 128, 128 }, { 128, 128 } };

    (void)ctx;
    (void)plan;
    *shapes = sh;
    *n = 2;
    return RL_OK;
}

START_TEST(test_chained_messages)
{
    struct experiment e;
    struct run_plan *p = NULL;
    size_t n = 0;
    char *parse_msg;

    /* the example: "X.ini: lora with rank 4096: X.ini: lora with
     * rank 4096: er 128x128" before; the reason once, whole, now */
    ck_assert_int_eq(experiment_parse(&e, "[method]\nmethods = lora\nrank = 4096\n", "X.ini",
                                      NULL, 0), RL_OK);
    ck_assert_int_eq(experiment_expand(&e, square_shapes, NULL, &p, &n), RL_ERR_ARG);
    ck_assert_str_eq(rl_error_msg(), "X.ini: lora with rank 4096: lora: rank 4096 exceeds "
                     "min(128, 128) of layer 128x128");
    experiment_free(&e);

    /* a run file whose /config does not parse: the parser's message after
     * the file's name, once */
    static const char bad_config[] = "[method]\nmethods = nope\n";
    const char *path = tp("run.h5");
    int64_t idx[1] = { 0 };
    struct store_run_info info = {
        .harness_version = "test", .git_commit = "0", .threads = "1", .blas = "openblas",
        .config_text = bad_config, .method = "lora", .rank = 4, .alpha = 1, .profile = "",
        .n_trainable = 8, .data_spec = "shapes-count", .shots = 1, .train_index = idx,
        .n_train_index = 1,
    };
    struct store *s;
    struct sweep_row row;
    char want[2048];

    ck_assert_int_ne(experiment_parse(&e, bad_config, path, NULL, 0), RL_OK);
    parse_msg = xstrdup(rl_error_msg());
    ck_assert_msg(store_create(&s, path, &info) == RL_OK, "%s", rl_error_msg());
    store_close(s);
    ck_assert_int_eq(sweep_read_row(path, &row), RL_ERR_FORMAT);
    snprintf(want, sizeof want, "%s: /config is not one run: %s", path, parse_msg);
    ck_assert_str_eq(rl_error_msg(), want);
    free(parse_msg);
}
END_TEST

/* the fixture model with one weight replaced, saved as dtype into dir with
 * the fixture's tokenizer; returns the tensor's name */
static const char *poisoned_model(const char *dir, size_t tensor, size_t index, float value,
                                  int dtype)
{
    static char name[256];
    struct clip_model m;
    const struct clip_tensor *t;
    char link[PATH_MAX + 32];

    ck_assert_msg(clip_model_load(&m, fixdir) == RL_OK, "%s", rl_error_msg());
    ck_assert_uint_lt(tensor, m.n_tensors);
    t = &m.tensors[tensor];
    ck_assert_uint_lt(index, t->numel);
    m.params[t->offset + index] = value;
    snprintf(name, sizeof name, "%s", t->name);
    ck_assert_msg(clip_model_save(&m, dir, dtype) == RL_OK, "%s", rl_error_msg());
    clip_model_free(&m);
    for (int k = 0; k < 2; k++) {
        const char *file = k ? "merges.txt" : "vocab.json";

        snprintf(link, sizeof link, "%s/%s", dir, file);
        ck_assert_int_eq(symlink(test_path(fixdir, "%s", file), link), 0);
    }
    return name;
}

START_TEST(test_nonfinite_weights)
{
    struct clip_model m;
    struct test_captured c;
    char want[512];
    const char *name;

    /* F32 NaN in the 4th tensor, element 5 */
    name = poisoned_model(tp("nan"), 3, 5, NAN, ST_F32);
    ck_assert_int_eq(clip_model_load(&m, tp("nan")), RL_ERR_FORMAT);
    snprintf(want, sizeof want, "%s/model.safetensors: tensor '%s' has a non-finite value (nan) "
             "at element 5; weights must be finite", tp("nan"), name);
    ck_assert_str_eq(rl_error_msg(), want);
    write_text(tp("captions.txt"), "a cat\n");
    c = test_run_cmd(tmpdir, cmd_encode, "encode", "--model", tp("nan"), "--text",
                     tp("captions.txt"), "-o", tp("out.h5"), NULL);
    test_assert_one_line_error(&c, "randlora encode: ", want + strlen(tp("nan")),
                               "NaN weight");
    ck_assert_int_ne(access(tp("out.h5"), F_OK), 0);
    test_captured_free(&c);

    /* F16 -Inf in the last tensor, element 0 */
    ck_assert_msg(clip_model_load(&m, fixdir) == RL_OK, "%s", rl_error_msg());
    size_t last = m.n_tensors - 1;
    clip_model_free(&m);
    name = poisoned_model(tp("inf"), last, 0, -INFINITY, ST_F16);
    ck_assert_int_eq(clip_model_load(&m, tp("inf")), RL_ERR_FORMAT);
    snprintf(want, sizeof want, "tensor '%s' has a non-finite value (-inf) at element 0", name);
    ck_assert_msg(strstr(rl_error_msg(), want) != NULL, "%s", rl_error_msg());

    /* finite extremes are weights like any other */
    name = poisoned_model(tp("big"), 3, 5, 3.0e38f, ST_F32);
    ck_assert_msg(clip_model_load(&m, tp("big")) == RL_OK, "%s", rl_error_msg());
    clip_model_free(&m);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* temporary files on fatal signals                                          */

enum guard_case { GUARD_TERM, GUARD_ABORT, GUARD_CLEARED, GUARD_IGNORED };

struct guard_child {
    const char *path;
    enum guard_case how;
};

/* child: create path, guard it, then die (or not) as told; exit 0 when it
 * lived on with its file, 3 when the file was gone */
static void guarded_child(void *arg)
{
    const struct guard_child *g = arg;
    FILE *f = fopen(g->path, "wb");

    if (!f || fputs("partial", f) < 0 || fclose(f) != 0)
        _exit(4);
    if (g->how == GUARD_IGNORED)
        signal(SIGTERM, SIG_IGN);
    tmp_guard_set(g->path);
    if (g->how == GUARD_CLEARED)
        tmp_guard_clear();
    if (g->how == GUARD_ABORT)
        abort();
    raise(SIGTERM);
    _exit(access(g->path, F_OK) == 0 ? 0 : 3);
}

START_TEST(test_tmp_guard)
{
    struct guard_child g = { .path = tp("out.h5.tmp.1") };
    int st;

    g.how = GUARD_TERM;
    st = test_in_child(guarded_child, &g);
    ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM, "wait status %d", st);
    ck_assert_msg(access(g.path, F_OK) != 0, "SIGTERM left the temporary file");

    g.how = GUARD_ABORT;
    st = test_in_child(guarded_child, &g);
    ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT, "wait status %d", st);
    ck_assert_msg(access(g.path, F_OK) != 0, "abort() left the temporary file");

    g.how = GUARD_CLEARED;
    st = test_in_child(guarded_child, &g);
    ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM, "wait status %d", st);
    ck_assert_msg(access(g.path, F_OK) == 0, "a cleared guard removed the file");
    unlink(g.path);

    g.how = GUARD_IGNORED;
    st = test_in_child(guarded_child, &g);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "an ignored SIGTERM: wait status %d",
                  st);
    unlink(g.path);
}
END_TEST

START_TEST(test_encode_killed)
{
    const size_t lines = 20000;
    char out[PATH_MAX], tmp[PATH_MAX + 32];
    FILE *f = fopen(tp("many.txt"), "wb");
    struct timespec nap = { 0, 200000 };
    bool seen = false;
    pid_t pid;
    int st;

    ck_assert_ptr_nonnull(f);
    for (size_t i = 0; i < lines; i++)
        fprintf(f, "a photo of %zu cats\n", i);
    ck_assert_int_eq(fclose(f), 0);
    snprintf(out, sizeof out, "%s", tp("emb.h5"));
    /* one caption per forward: the run lasts, the file exists a while */
    pid = test_fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        if (!freopen("/dev/null", "w", stdout) || !freopen("/dev/null", "w", stderr))
            _exit(4);
        _exit(cmd_encode(9, (char *[]){ "encode", "--model", fixdir, "--text",
                                        (char *)tp("many.txt"), "-o", out, "--batch", "1",
                                        NULL }) == 0 ? 0 : 3);
    }
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", out, (long)pid);
    /* wait for the temporary file (up to 60 s), then SIGTERM */
    for (int i = 0; i < 300000 && !seen; i++) {
        if (access(tmp, F_OK) == 0)
            seen = true;
        else if (waitpid(pid, &st, WNOHANG) == pid)
            ck_abort_msg("encode ended (wait status %d) before its temporary file was seen", st);
        else
            nanosleep(&nap, NULL);
    }
    ck_assert_msg(seen, "no temporary file %s appeared", tmp);
    ck_assert_int_eq(kill(pid, SIGTERM), 0);
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM,
                  "encode was not killed while writing (wait status %d): make many.txt longer",
                  st);
    ck_assert_msg(access(tmp, F_OK) != 0, "SIGTERM left %s", tmp);
    ck_assert_int_ne(access(out, F_OK), 0);
}
END_TEST

/* ------------------------------------------------------------------------ */

/* a run file as the runner leaves one it stopped at step 3 (runner.c: the
 * rows up to the bad step, store_finish, root attributes stopped and
 * stopped_step, store_commit) */
START_TEST(test_info_stopped)
{
    const char *path = tp("stopped.h5");
    const char *why = "non-finite loss (nan) at step 3, micro-batch 0";
    int64_t idx[1] = { 0 };
    struct store_run_info info = {
        .harness_version = "test", .git_commit = "0", .threads = "1", .blas = "openblas",
        .config_text = "", .method = "lora", .rank = 4, .alpha = 1, .profile = "",
        .n_trainable = 8, .data_spec = "shapes-count", .shots = 1, .train_index = idx,
        .n_train_index = 1,
    };
    struct store *s;
    struct test_captured c;
    char want[256];

    ck_assert_msg(store_create(&s, path, &info) == RL_OK, "%s", rl_error_msg());
    for (int64_t step = 1; step <= 3; step++) {
        struct store_train_row row = { step, step < 3 ? 2.0 : NAN, 1e-3, 1.0, 0.1 * step };

        ck_assert_int_eq(store_append_train(s, &row), RL_OK);
    }
    ck_assert_int_eq(store_finish(s), RL_OK);
    ck_assert_int_eq(store_attr_set_string(s, "/", "stopped", why), RL_OK);
    ck_assert_int_eq(store_attr_set_int64(s, "/", "stopped_step", 3), RL_OK);
    ck_assert_int_eq(store_commit(s), RL_OK);
    store_close(s);

    c = test_run_cmd(tmpdir, cmd_info, "info", path, NULL);
    ck_assert_msg(c.status == 0, "exit %d: %s", c.status, c.err);
    snprintf(want, sizeof want, "\nstopped      at step 3: %s\n", why);
    ck_assert_msg(strstr(c.out, want) != NULL, "no '%s' in:\n%s", want + 1, c.out);
    ck_assert_ptr_nonnull(strstr(c.out, "\nfinal        not written (the run stopped)\n"));
    test_captured_free(&c);
}
END_TEST

/* ------------------------------------------------------------------------ */

/* this test binary again with CK_FORK=no on one suite: its exit status and
 * its output in a file; killed after limit_s seconds (a hang) */
static int run_suite_nofork(const char *suite, const char *log, int limit_s)
{
    struct timespec nap = { 0, 50 * 1000 * 1000 };
    pid_t pid = test_fork();
    int st;

    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        setenv("CK_FORK", "no", 1);
        setenv("CK_RUN_SUITE", suite, 1);
        unsetenv("CK_RUN_CASE");
        if (!freopen(log, "w", stdout) || dup2(fileno(stdout), 2) < 0)
            _exit(126);
        execl("/proc/self/exe", "check_main", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < limit_s * 20; i++) {
        if (waitpid(pid, &st, WNOHANG) == pid)
            return st;
        nanosleep(&nap, NULL);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    return -1;
}

START_TEST(test_no_fork)
{
    static const char *const suites[] = { "core", "loss", "runner" };

    for (size_t i = 0; i < sizeof(suites) / sizeof(suites[0]); i++) {
        const char *log = tp("%s.log", suites[i]);
        int st = run_suite_nofork(suites[i], log, 240);
        char *text = test_slurp(log, NULL);

        ck_assert_msg(st != -1, "CK_FORK=no: suite %s hung (killed after 240 s):\n%s",
                      suites[i], text);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "CK_FORK=no: suite %s: wait "
                      "status %d:\n%s", suites[i], st, text);
        ck_assert_msg(strstr(text, "100%: Checks: ") != NULL, "CK_FORK=no: suite %s:\n%s",
                      suites[i], text);
        free(text);
    }
}
END_TEST

Suite *suite_refusals(void)
{
    Suite *s = suite_create("refusals");
    TCase *tc = tcase_create("refusals");

    tcase_add_checked_fixture(tc, tmp_setup, tmp_teardown);
    tcase_set_timeout(tc, 800);
    tcase_add_test(tc, test_chained_messages);
    tcase_add_test(tc, test_nonfinite_weights);
    tcase_add_test(tc, test_tmp_guard);
    tcase_add_test(tc, test_encode_killed);
    tcase_add_test(tc, test_info_stopped);
    tcase_add_test(tc, test_no_fork);
    suite_add_tcase(s, tc);
    return s;
}
