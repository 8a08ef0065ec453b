/*
 * check_stop.c: runs that stop before their end, through the commands:
 *   - a write that fails (an injected ENOSPC from the store's fault hook, at
 *     writes spread over a whole short run, the commit's included): `train`
 *     exits 1 with one line naming the file and the cause, and the file
 *     then resumes to the uninterrupted run's adapter, bit for bit; `sweep`
 *     counts such a run as failed;
 *   - SIGINT and SIGTERM (sent from the same hook at a write mid-run): the
 *     step is finished and recorded, `train` prints "interrupted at step N
 *     (SIGINT); resume with randlora train ... --resume" and exits 130 / 143,
 *     and that command finishes the run bit for bit; `sweep` passes the
 *     signal to its runs and says how to resume the sweep.
 * Every command runs in a child process (OpenMP does not survive a fork).
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "core/alloc.h"
#include "core/interrupt.h"
#include "core/status.h"
#include "results/store.h"
#include "runner_harness.h"
#include "suites.h"
#include "test_cmd.h"
#include "test_util.h"

/* what the fault hook does at write `at` */
enum action { COUNT, FAIL_FROM, SIGNAL_SELF, SIGNAL_PARENT };

struct hook {
    enum action action;
    unsigned long at;
    int sig;
    unsigned long count;       /* COUNT: the writes seen */
};

static int hook_fn(void *ctx, unsigned long n)
{
    struct hook *h = ctx;

    h->count = n;
    if (h->action == FAIL_FROM && n >= h->at)
        return ENOSPC;             /* a full disk stays full */
    if (n == h->at && h->action == SIGNAL_SELF)
        raise(h->sig);
    if (n == h->at && h->action == SIGNAL_PARENT) {
        /* the parent (a sweep) passes the signal on to this run: wait for
         * it (up to 30 s), or on a loaded machine the run may finish its
         * last steps before the signal arrives and there is nothing left
         * to interrupt */
        kill(getppid(), h->sig);
        for (int i = 0; i < 3000 && !interrupt_pending(); i++)
            usleep(10000);
    }
    return 0;
}

/* fn(argv) in a child with the hook set (NULL: none), stdout and stderr
 * into `out`; the exit status (-1 for a signal). *count: the writes the
 * child made (COUNT). */
static int cmd_child(int (*fn)(int, char **), char **argv, const char *out, struct hook *h)
{
    int status, fds[2], argc = 0;
    pid_t pid;

    while (argv[argc])
        argc++;
    ck_assert_int_eq(pipe(fds), 0);
    fflush(NULL);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        close(fds[0]);
        if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
            _exit(99);
        if (h)
            store_set_fault_hook(hook_fn, h);
        int rc = fn(argc, argv);
        fflush(NULL);
        if (h && write(fds[1], &h->count, sizeof h->count) != sizeof h->count)
            _exit(98);
        _exit(rc);
    }
    close(fds[1]);
    if (h && read(fds[0], &h->count, sizeof h->count) != sizeof h->count)
        h->count = 0;
    close(fds[0]);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}


static size_t count_lines(const char *s)
{
    size_t n = 0;

    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* the tiny experiment as a file, and `randlora CMD -c x.ini -s ... -o RUN`
 * (train) or `... -s experiment.output=DIR` (sweep), -q, optional extra */
struct cmdline {
    char *argv[40];
    int argc;
    char ini[128], out_arg[160];
};

static void cmdline(struct cmdline *c, const struct tmp *t, const char *cmd, const char *run_or_dir,
                    const char *extra)
{
    char text[2048];
    FILE *fp;

    snprintf(c->ini, sizeof c->ini, "%s/x.ini", t->dir);
    tiny_ini_text(text, sizeof text, t);
    ck_assert_ptr_nonnull(fp = fopen(c->ini, "w"));
    fputs(text, fp);
    fclose(fp);
    c->argc = 0;
    c->argv[c->argc++] = (char *)cmd;
    c->argv[c->argc++] = "-c";
    c->argv[c->argc++] = c->ini;
    for (size_t i = 0; i < RUN_SHORT_N; i++) {
        c->argv[c->argc++] = "-s";
        c->argv[c->argc++] = (char *)run_short[i];
    }
    if (!strcmp(cmd, "train")) {
        c->argv[c->argc++] = "-o";
        snprintf(c->out_arg, sizeof c->out_arg, "%s", run_or_dir);
    } else {
        c->argv[c->argc++] = "-s";
        snprintf(c->out_arg, sizeof c->out_arg, "experiment.output=%s", run_or_dir);
    }
    c->argv[c->argc++] = c->out_arg;
    c->argv[c->argc++] = "-q";
    if (extra)
        c->argv[c->argc++] = (char *)extra;
    c->argv[c->argc] = NULL;
}

/* the file's adapter equals ref's, bit for bit, and it is complete */
static void same_adapter(const char *path, const float *ref, size_t n_ref, const char *when)
{
    struct store *s;
    struct store_final f;
    int completed = 0;
    size_t n;

    ck_assert_msg(store_open(&s, path) == RL_OK, "%s: %s", when, rl_error_msg());
    ck_assert_int_eq(store_read_final(s, &f, &completed), RL_OK);
    store_close(s);
    ck_assert_msg(completed == 1, "%s: not complete", when);
    float *a = read_adapter(path, &n);
    ck_assert_msg(n == n_ref && memcmp(a, ref, n * sizeof(float)) == 0, "%s: adapter differs", when);
    free(a);
}

/* a test's setting: the tiny model, an uninterrupted `train` into ref.h5
 * (its adapter, and the writes it made), and the commands of the test, a
 * first one and the same with --resume, into path (train) or dir (sweep) */
struct fixture {
    struct tmp t;
    float *ref;
    size_t n_ref;
    unsigned long n_writes;
    char path[200], dir[128], out[128];
    struct cmdline c, r;
};

static void fixture_setup(struct fixture *f, const char *cmd)
{
    struct hook h = { .action = COUNT };
    char ref[128];

    tmp_setup(&f->t, true);
    snprintf(ref, sizeof ref, "%s/ref.h5", f->t.dir);
    snprintf(f->out, sizeof f->out, "%s/out.txt", f->t.dir);
    snprintf(f->dir, sizeof f->dir, "%s/sw", f->t.dir);
    cmdline(&f->c, &f->t, "train", ref, NULL);
    ck_assert_int_eq(cmd_child(cmd_train, f->c.argv, f->out, &h), 0);
    f->n_writes = h.count;
    ck_assert_uint_gt(f->n_writes, 60);
    f->ref = read_adapter(ref, &f->n_ref);
    if (!strcmp(cmd, "train"))
        snprintf(f->path, sizeof f->path, "%s/run.h5", f->t.dir);
    else
        snprintf(f->path, sizeof f->path, "%s/lora-r2-s4-seed1.h5", f->dir);
    cmdline(&f->c, &f->t, cmd, strcmp(cmd, "train") ? f->dir : f->path, NULL);
    cmdline(&f->r, &f->t, cmd, strcmp(cmd, "train") ? f->dir : f->path, "--resume");
}

static void fixture_free(struct fixture *f)
{
    free(f->ref);
    tmp_cleanup(&f->t);
}

/* the command with --resume (no hook) succeeds, says `want` (NULL: no
 * check) and leaves the uninterrupted run's adapter */
static void resume_matches(struct fixture *f, int (*fn)(int, char **), const char *want, const char *when)
{
    int status = cmd_child(fn, f->r.argv, f->out, NULL);
    char *txt = test_slurp(f->out, NULL);

    ck_assert_msg(status == 0 && (!want || strstr(txt, want)), "%s: resume: status %d: %s", when, status, txt);
    free(txt);
    same_adapter(f->path, f->ref, f->n_ref, when);
}

/* a full disk at write k, for k spread over a whole run (every 5th, and
 * every one of the last 40: the end of training and the commit) */
START_TEST(test_write_failure_train)
{
    struct fixture f;
    char when[64];
    unsigned long k;
    size_t tried = 0;

    fixture_setup(&f, "train");
    for (k = 1; k <= f.n_writes; k += k + 40 > f.n_writes ? 1 : 5) {
        struct hook h = { .action = FAIL_FROM, .at = k };

        snprintf(when, sizeof when, "write %lu of %lu failed", k, f.n_writes);
        unlink(f.path);
        int status = cmd_child(cmd_train, f.c.argv, f.out, &h);
        char *txt = test_slurp(f.out, NULL);
        ck_assert_msg(status == 1, "%s: exit status %d: %s", when, status, txt);
        /* the first failure is named, not the close that failed after it */
        ck_assert_msg(count_lines(txt) == 1 && strstr(txt, "randlora train: ") == txt && strstr(txt, f.path) &&
                      strstr(txt, "No space left on device") && !strstr(txt, "cannot close ("), "%s: %s", when, txt);
        free(txt);
        /* space is back: --resume finishes the run */
        resume_matches(&f, cmd_train, NULL, when);
        tried++;
    }
    ck_assert_uint_gt(tried, 50);
    fixture_free(&f);
}
END_TEST

/* a sweep whose run cannot write its file counts it as failed */
START_TEST(test_write_failure_sweep)
{
    struct fixture f;
    char cmd[300];

    fixture_setup(&f, "sweep");
    /* the last write (the directory's sync) and one in training */
    unsigned long at[2] = { f.n_writes, f.n_writes / 2 };
    for (int i = 0; i < 2; i++) {
        struct hook h = { .action = FAIL_FROM, .at = at[i] };
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", f.dir);
        ck_assert_int_eq(system(cmd), 0);
        int status = cmd_child(cmd_sweep, f.c.argv, f.out, &h);
        char *txt = test_slurp(f.out, NULL);
        ck_assert_msg(status == 1 && strstr(txt, "(0 skipped, 1 failed)") && strstr(txt, "FAILED") &&
                      strstr(txt, "No space left on device"), "write %lu: status %d: %s", at[i], status, txt);
        free(txt);
        resume_matches(&f, cmd_sweep, "0 failed", "sweep resumed");
    }
    fixture_free(&f);
}
END_TEST

/* the step named in "interrupted at step N" of txt; the file has rows
 * 1..N in /train and is not complete */
static size_t interrupted_file(const char *path, const char *txt)
{
    struct store *s;
    struct store_final fin;
    int completed = 1;
    int64_t *st;
    double *v;
    size_t rows, step = 0;
    const char *at = strstr(txt, "interrupted at step ");

    ck_assert_msg(at && sscanf(at, "interrupted at step %zu", &step) == 1, "%s", txt);
    ck_assert(step >= 1 && step <= RUN_SHORT_STEPS);
    ck_assert_msg(store_open(&s, path) == RL_OK, "%s", rl_error_msg());
    ck_assert_int_eq(store_read_final(s, &fin, &completed), RL_OK);
    ck_assert_int_eq(completed, 0);
    ck_assert_int_eq(store_read_curve(s, "train", "loss", &st, &v, &rows), RL_OK);
    ck_assert_uint_eq(rows, step);
    for (size_t i = 0; i < rows; i++)
        ck_assert_int_eq(st[i], (int64_t)i + 1);
    free(st);
    free(v);
    store_close(s);
    return step;
}

/* SIGINT and SIGTERM at a write in the middle of the run */
START_TEST(test_signal_train)
{
    static const int sigs[2] = { SIGINT, SIGTERM };
    struct fixture f;
    char want[1024];

    fixture_setup(&f, "train");
    /* the command the message names: this one with --resume */
    int len = snprintf(want, sizeof want, "; resume with randlora");
    for (int i = 0; i < f.r.argc; i++)
        len += snprintf(want + len, sizeof want - (size_t)len, " %s", f.r.argv[i]);
    for (int i = 0; i < 2; i++) {
        struct hook h = { .action = SIGNAL_SELF, .at = f.n_writes / 2, .sig = sigs[i] };
        unlink(f.path);
        int status = cmd_child(cmd_train, f.c.argv, f.out, &h);
        char *txt = test_slurp(f.out, NULL);
        ck_assert_msg(status == 128 + sigs[i], "exit status %d: %s", status, txt);
        ck_assert_msg(count_lines(txt) == 1 && strstr(txt, i ? "(SIGTERM)" : "(SIGINT)") && strstr(txt, want),
                      "%s\nwanted: %s", txt, want);
        interrupted_file(f.path, txt);
        free(txt);
        resume_matches(&f, cmd_train, NULL, "resumed after a signal");
    }
    fixture_free(&f);
}
END_TEST

/* SIGTERM to the sweep (not its run): passed on, the run records its step
 * and stops, the sweep says how to resume and exits 143 */
START_TEST(test_signal_sweep)
{
    struct fixture f;

    fixture_setup(&f, "sweep");
    struct hook h = { .action = SIGNAL_PARENT, .at = f.n_writes / 2, .sig = SIGTERM };
    int status = cmd_child(cmd_sweep, f.c.argv, f.out, &h);
    char *txt = test_slurp(f.out, NULL);
    ck_assert_msg(status == 143 && !strstr(txt, "FAILED") &&
                  strstr(txt, "interrupted (SIGTERM) with 1 of 1 runs unfinished; resume with randlora sweep -c"),
                  "status %d: %s", status, txt);
    interrupted_file(f.path, txt);
    free(txt);
    resume_matches(&f, cmd_sweep, "0 failed", "sweep resumed after SIGTERM");
    fixture_free(&f);
}
END_TEST

/* the command named in the interruption message: quoted where the shell
 * needs it, --force dropped (the file is to be continued), --resume once */
START_TEST(test_resume_command)
{
    char *argv1[] = { "train", "-c", "my exp.ini", "-s", "data.prompt=it's {}", "--force", "-q", NULL };
    char *c = cli_resume_command("train", 7, argv1);
    ck_assert_str_eq(c, "randlora train -c 'my exp.ini' -s 'data.prompt=it'\\''s {}' -q --resume");
    free(c);
    char *argv2[] = { "sweep", "--resume", "-c", "x.ini", "-s", "--force", NULL };
    c = cli_resume_command("sweep", 6, argv2);
    ck_assert_str_eq(c, "randlora sweep --resume -c x.ini -s --force");
    free(c);
}
END_TEST

Suite *suite_stop(void)
{
    Suite *s = suite_create("stop");
    TCase *tc = tcase_create("stop");

    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_write_failure_train);
    tcase_add_test(tc, test_write_failure_sweep);
    tcase_add_test(tc, test_signal_train);
    tcase_add_test(tc, test_signal_sweep);
    tcase_add_test(tc, test_resume_command);
    suite_add_tcase(s, tc);
    return s;
}
