/*
 * check_sweep.c: the sweep (experiments/sweep.h, `randlora sweep`): a grid of
 * 2 methods x 2 shots on a tiny random CLIP saved to a temporary directory
 * and the procedural shapes-count data; run files and summary.tsv, --resume
 * skipping finished runs, shards covering the grid exactly once, --jobs 2
 * equal to --jobs 1, dry runs, and usage errors.
 */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/status.h"
#include "cli/commands.h"
#include "experiments/config.h"
#include "experiments/run_lock.h"
#include "experiments/runner.h"
#include "experiments/sweep.h"
#include "models/clip.h"
#include "formats/safetensors.h"
#include "suites.h"
#include "test_proc.h"

#define N_GRID 4

static const char *const grid_ids[N_GRID] = {
    "lora-r4-s2-seed1", "lora-r4-s4-seed1", "vera-r16-s2-seed1", "vera-r16-s4-seed1",
};

struct tmp {
    char dir[64];
    char ini[128];
    char out[128];
};

/* a CLIP with clip-tiny's byte vocabulary, 16x16 images, width 32, 2 layers,
 * and an experiment of 2 methods x 2 shots on it, output in DIR/out */
static void tmp_setup(struct tmp *t)
{
    struct clip_config c;
    struct clip_model m;
    char model[128];
    FILE *fp;

    snprintf(t->dir, sizeof(t->dir), "/tmp/rl_sweep_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(t->dir));
    snprintf(model, sizeof(model), "%s/model", t->dir);
    snprintf(t->ini, sizeof(t->ini), "%s/exp.ini", t->dir);
    snprintf(t->out, sizeof(t->out), "%s/out", t->dir);

    ck_assert_int_eq(clip_config_preset(&c, "clip-tiny"), RL_OK);
    c.vision.image_size = 16;
    c.vision.patch_size = 4;
    c.vision.hidden = 32;
    c.vision.layers = 2;
    c.vision.heads = 2;
    c.vision.intermediate = 64;
    c.text.hidden = 32;
    c.text.layers = 2;
    c.text.heads = 2;
    c.text.intermediate = 64;
    c.projection_dim = 32;
    ck_assert_int_eq(clip_model_init(&m, &c), RL_OK);
    clip_model_init_random(&m, 7);
    ck_assert_int_eq(clip_model_save(&m, model, ST_F32), RL_OK);
    clip_model_free(&m);

    ck_assert_ptr_nonnull(fp = fopen(t->ini, "w"));
    fprintf(fp,
            "[experiment]\nname = sweeptest\noutput = %s\n"
            "[model]\nname = %s\n"
            "[data]\ndataset = shapes-count\neval = shapes-count:test\nprompt = {}\n"
            "shots = 2, 4\neval_limit = 32\n"
            "[method]\nmethods = lora, vera\nrank = 4\nrank.vera = 16\ntowers = vision, text\n"
            "modules = q_proj, v_proj, fc1\n"
            "[train]\nsteps = 4\nbatch = 6\nlr = 1e-2\nweight_decay = 0\ncheckpoint_every = 2\n"
            "[sweep]\nseeds = 1\n", t->out, model);
    fclose(fp);
}

static void tmp_cleanup(struct tmp *t)
{
    char cmd[160];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t->dir);
    ck_assert_int_eq(system(cmd), 0);
}

/* cmd_sweep with stdout and stderr sent to files in t->dir (NULL: /dev/null);
 * returns its exit status */
static int run_cmd(const struct tmp *t, const char *err_name, int argc, const char **argv)
{
    char path[192];
    int saved_out, saved_err, fo, fe, rc;

    snprintf(path, sizeof(path), "%s/%s", t->dir, err_name ? err_name : "stderr.txt");
    fflush(stdout);
    fflush(stderr);
    saved_out = dup(1);
    saved_err = dup(2);
    fo = open("/dev/null", O_WRONLY);
    fe = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ck_assert(fo >= 0 && fe >= 0 && saved_out >= 0 && saved_err >= 0);
    dup2(fo, 1);
    dup2(fe, 2);
    close(fo);
    close(fe);
    rc = cmd_sweep(argc, (char **)argv);
    fflush(stdout);
    fflush(stderr);
    dup2(saved_out, 1);
    dup2(saved_err, 2);
    close(saved_out);
    close(saved_err);
    return rc;
}

static char *slurp(const char *path)
{
    FILE *fp = fopen(path, "rb");
    char *buf;
    long n;

    if (!fp)
        return NULL;
    fseek(fp, 0, SEEK_END);
    n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    buf = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(buf);
    ck_assert_uint_eq(fread(buf, 1, (size_t)n, fp), (size_t)n);
    buf[n] = '\0';
    fclose(fp);
    return buf;
}

static size_t count_lines(const char *s)
{
    size_t n = 0;

    for (; s && *s; s++)
        n += *s == '\n';
    return n;
}

/* the summary of dir: its text; rows must be the grid's ids in order,
 * complete, and there must be exactly n_rows of them */
static char *check_summary(const char *dir, size_t n_rows)
{
    char path[192], *text;
    const char *line;

    snprintf(path, sizeof(path), "%s/%s", dir, SWEEP_SUMMARY_FILE);
    text = slurp(path);
    ck_assert_msg(text != NULL, "no %s", path);
    ck_assert_uint_eq(count_lines(text), 1 + n_rows);
    ck_assert(!strncmp(text, "id\tdataset\tmethod\trank\tbudget\tshots\tfraction\tseed\t"
                             "n_trainable\taccuracy\tloss\tsteps\tseconds\timages_per_s\t"
                             "peak_rss_bytes\tstatus\n", strlen("id\tdataset")));
    line = strchr(text, '\n') + 1;
    for (size_t i = 0; i < n_rows; i++) {
        const char *end = strchr(line, '\n');
        ck_assert_ptr_nonnull(end);
        const char *status = line;

        for (int f = 0; f < 15 && status; f++)       /* field 15: status */
            status = strchr(status, '\t') ? strchr(status, '\t') + 1 : NULL;
        ck_assert_msg(status && status < end && !strncmp(status, "complete\t", 9),
                      "row %zu: %.*s", i, (int)(end - line), line);
        line = end + 1;
    }
    return text;
}

/* the fields (0-based) of summary row `id` joined by '|' into buf */
static void row_fields(const char *text, const char *id, const int *fields, size_t nf, char *buf,
                       size_t size)
{
    char key[64];
    const char *line;
    size_t len = 0;

    snprintf(key, sizeof(key), "\n%s\t", id);
    line = strstr(text, key);
    ck_assert_msg(line != NULL, "no row %s", id);
    line++;
    buf[0] = '\0';
    for (size_t k = 0; k < nf; k++) {
        const char *f = line;
        size_t flen;

        for (int j = 0; j < fields[k]; j++)
            f = strchr(f, '\t') + 1;
        flen = strcspn(f, "\t\n");
        len += (size_t)snprintf(buf + len, size - len, "%.*s|", (int)flen, f);
    }
}

static struct timespec file_mtime(const char *dir, const char *id)
{
    char path[192];
    struct stat st;

    snprintf(path, sizeof(path), "%s/%s.h5", dir, id);
    ck_assert_msg(stat(path, &st) == 0, "no %s", path);
    return st.st_mtim;
}

static void load_grid(const struct tmp *t, struct experiment *e, struct run_plan **plans,
                      size_t *n)
{
    struct runner_shapes shapes = { 0 };

    ck_assert_msg(experiment_load(e, t->ini, NULL, 0) == RL_OK, "%s", rl_error_msg());
    ck_assert_msg(experiment_expand(e, runner_plan_shapes, &shapes, plans, n) == RL_OK, "%s",
                  rl_error_msg());
    runner_shapes_free(&shapes);
    ck_assert_uint_eq(*n, N_GRID);
    for (size_t i = 0; i < N_GRID; i++)
        ck_assert_str_eq((*plans)[i].id, grid_ids[i]);
}

static void die_at_step_3(void *ctx, size_t step)
{
    (void)ctx;
    if (step == 3)
        _exit(0);
}

/* a run killed after step 3 (in a child process), leaving its file with the
 * checkpoint of step 2 */
static void interrupted_run(const struct run_plan *p, const char *path)
{
    struct runner_hooks h = { .on_step = die_at_step_3 };
    struct sweep_row row;
    int status;
    pid_t pid;

    fflush(NULL);
    pid = test_fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        struct runner_options o;

        runner_options_init(&o);
        o.verbosity = 0;
        o.hooks = &h;
        runner_run(p, path, &o, NULL);
        _exit(1);
    }
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ck_assert_msg(sweep_read_row(path, &row) == RL_OK, "%s", rl_error_msg());
    ck_assert_str_eq(row.status, "incomplete");
    ck_assert_int_eq(row.steps, 3);
    sweep_row_free(&row);
}

START_TEST(test_parse_shard)
{
    size_t i = 9, n = 9;

    ck_assert_int_eq(sweep_parse_shard("0/2", &i, &n), RL_OK);
    ck_assert_uint_eq(i, 0);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(sweep_parse_shard("7/8", &i, &n), RL_OK);
    ck_assert_uint_eq(i, 7);
    ck_assert_uint_eq(n, 8);
    const char *bad[] = { "2/2", "1/0", "-1/2", "1", "1/", "/2", "a/2", "1/2x", " 1/2", "1/ 2",
                          "1/-2", "", "99999999999999999999/2" };
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++)
        ck_assert_msg(sweep_parse_shard(bad[k], &i, &n) == RL_ERR_ARG, "'%s' accepted", bad[k]);
    ck_assert_ptr_nonnull(strstr(rl_error_msg(), "I/N"));
}
END_TEST

/* the whole grid, then a refused rerun, then --resume skipping everything,
 * then --resume redoing a removed file only */
START_TEST(test_grid_and_resume)
{
    struct tmp t;
    struct experiment e;
    struct run_plan *plans;
    struct sweep_options o;
    struct sweep_counts c;
    struct timespec mt[N_GRID];
    char *first, *again, path[192];
    FILE *sink = fopen("/dev/null", "w");
    size_t n;

    ck_assert_ptr_nonnull(sink);
    tmp_setup(&t);
    load_grid(&t, &e, &plans, &n);
    sweep_options_init(&o);
    o.out = o.err = sink;
    o.verbosity = 0;
    ck_assert_msg(sweep_run(&e, plans, n, &o, &c) == RL_OK, "%s", rl_error_msg());
    ck_assert_uint_eq(c.grid, N_GRID);
    ck_assert_uint_eq(c.selected, N_GRID);
    ck_assert_uint_eq(c.run, N_GRID);
    ck_assert_uint_eq(c.failed, 0);
    ck_assert_uint_eq(c.skipped, 0);
    ck_assert_uint_eq(c.rows, N_GRID);
    first = check_summary(t.out, N_GRID);
    for (size_t i = 0; i < N_GRID; i++) {
        char want[80];
        const char *row;

        mt[i] = file_mtime(t.out, grid_ids[i]);
        snprintf(want, sizeof(want), "\n%s\tshapes-count\t%s\t", grid_ids[i], plans[i].method);
        ck_assert_msg((row = strstr(first, want)) != NULL, "row %s", grid_ids[i]);
        ck_assert(i == 0 || strstr(first, grid_ids[i - 1]) < row);      /* grid order */
    }

    /* without --resume: refused, nothing touched */
    ck_assert_int_eq(sweep_run(&e, plans, n, &o, &c), RL_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(rl_error_msg(), "--resume"));
    ck_assert_uint_eq(c.run, 0);

    /* --resume: every run complete, skipped; files unchanged; same summary */
    o.resume = true;
    ck_assert_msg(sweep_run(&e, plans, n, &o, &c) == RL_OK, "%s", rl_error_msg());
    ck_assert_uint_eq(c.run, 0);
    ck_assert_uint_eq(c.skipped, N_GRID);
    for (size_t i = 0; i < N_GRID; i++) {
        struct timespec m = file_mtime(t.out, grid_ids[i]);
        ck_assert(m.tv_sec == mt[i].tv_sec && m.tv_nsec == mt[i].tv_nsec);
    }
    again = check_summary(t.out, N_GRID);
    ck_assert_str_eq(again, first);
    free(again);

    /* one file replaced by an interrupted run (killed after step 3, checkpoint
     * at step 2): --resume continues it to the same values (deterministic) */
    snprintf(path, sizeof(path), "%s/%s.h5", t.out, grid_ids[2]);
    ck_assert_int_eq(unlink(path), 0);
    interrupted_run(&plans[2], path);
    ck_assert_msg(sweep_run(&e, plans, n, &o, &c) == RL_OK, "%s", rl_error_msg());
    ck_assert_uint_eq(c.run, 1);
    ck_assert_uint_eq(c.skipped, N_GRID - 1);
    again = check_summary(t.out, N_GRID);
    {
        const int f[] = { 3, 8, 9, 10, 11 };       /* rank n_trainable accuracy loss steps */
        char a[256], b[256];

        row_fields(first, grid_ids[2], f, 5, a, sizeof(a));
        row_fields(again, grid_ids[2], f, 5, b, sizeof(b));
        ck_assert_str_eq(a, b);
    }
    free(again);
    free(first);
    run_plans_free(plans, n);
    experiment_free(&e);
    fclose(sink);
    tmp_cleanup(&t);
}
END_TEST

/* --shard 0/2 and 1/2 cover the grid once; --jobs 2 (1 thread each) gives
 * the values of one process at a time (with RANDLORA_THREADS=1, the same
 * thread count) */
START_TEST(test_shards_and_jobs)
{
    struct tmp t;
    char ov[256], out2[128], path[192];
    char *text, *text2;
    const int f[] = { 3, 8, 9, 10, 11 };          /* rank n_trainable accuracy loss steps */

    const char *env = getenv("RANDLORA_THREADS");
    char *saved = env ? strdup(env) : NULL;      /* put back at the end (CK_FORK=no sets it) */

    tmp_setup(&t);
    setenv("RANDLORA_THREADS", "1", 1);
    {
        const char *a0[] = { "sweep", "-c", t.ini, "--shard", "0/2", "-q" };
        const char *a1[] = { "sweep", "-c", t.ini, "--shard", "1/2", "-q", "--resume" };

        ck_assert_int_eq(run_cmd(&t, NULL, 6, a0), 0);
        text = check_summary(t.out, 2);
        ck_assert_ptr_nonnull(strstr(text, grid_ids[0]));
        ck_assert_ptr_nonnull(strstr(text, grid_ids[2]));
        ck_assert_ptr_null(strstr(text, grid_ids[1]));
        free(text);
        ck_assert_int_eq(run_cmd(&t, NULL, 7, a1), 0);
    }
    text = check_summary(t.out, N_GRID);
    for (size_t i = 0; i < N_GRID; i++) {
        snprintf(path, sizeof(path), "%s/%s.h5", t.out, grid_ids[i]);
        ck_assert_int_eq(access(path, F_OK), 0);
    }

    /* the same grid with --jobs 2 into another directory */
    snprintf(out2, sizeof(out2), "%s/out2", t.dir);
    snprintf(ov, sizeof(ov), "experiment.output=%s", out2);
    {
        const char *a[] = { "sweep", "-c", t.ini, "-s", ov, "--jobs", "2", "-q" };

        ck_assert_int_eq(run_cmd(&t, NULL, 8, a), 0);
    }
    text2 = check_summary(out2, N_GRID);
    for (size_t i = 0; i < N_GRID; i++) {
        char a[256], b[256];

        row_fields(text, grid_ids[i], f, 5, a, sizeof(a));
        row_fields(text2, grid_ids[i], f, 5, b, sizeof(b));
        ck_assert_str_eq(a, b);
    }
    free(text);
    free(text2);
    if (saved)
        setenv("RANDLORA_THREADS", saved, 1);
    else
        unsetenv("RANDLORA_THREADS");
    free(saved);
    tmp_cleanup(&t);
}
END_TEST

/* a run that fails (more shots than the data has) is reported, the others
 * still run; exit status 1 */
START_TEST(test_failure_continues)
{
    struct tmp t;
    char *text, *err, path[192];
    const char *a[] = { "sweep", "-c", "", "-s", "data.shots=2, 100000", "-s", "method.methods=lora",
                        "-q" };

    tmp_setup(&t);
    a[2] = t.ini;
    ck_assert_int_eq(run_cmd(&t, "err.txt", 8, a), 1);
    text = check_summary(t.out, 1);
    ck_assert_ptr_nonnull(strstr(text, "\nlora-r4-s2-seed1\t"));
    snprintf(path, sizeof(path), "%s/err.txt", t.dir);
    err = slurp(path);
    ck_assert_ptr_nonnull(strstr(err, "1 of 2 runs failed (lora-r4-s100000-seed1)"));
    ck_assert_ptr_nonnull(strstr(err, "fewer than 100000 shots"));
    free(err);
    free(text);
    tmp_cleanup(&t);
}
END_TEST

/* the run lock shared by train and sweep: a second holder is refused with
 * a message naming the run, and the lock file goes away on release */
START_TEST(test_run_lock)
{
    char dir[] = "/tmp/rl-lock-XXXXXX", run[128], lockfile[160];
    struct run_lock a, b;

    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(run, sizeof(run), "%s/lora-r2-s1-seed1.h5", dir);
    snprintf(lockfile, sizeof(lockfile), "%s/.lora-r2-s1-seed1.lock", dir);
    ck_assert_int_eq(run_lock_acquire(&a, run), RL_OK);
    ck_assert_int_eq(access(lockfile, F_OK), 0);
    /* flock is per open file: a second open in this process conflicts */
    ck_assert_int_eq(run_lock_acquire(&b, run), RL_ERR);
    ck_assert_ptr_nonnull(strstr(rl_error_msg(), "lora-r2-s1-seed1.h5 is being written"));
    ck_assert_int_eq(b.fd, -1);
    run_lock_release(&a);
    ck_assert_int_ne(access(lockfile, F_OK), 0);
    ck_assert_int_eq(run_lock_acquire(&b, run), RL_OK);
    run_lock_release(&b);
    run_lock_release(&b);                      /* safe twice */
    ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

/* a run whose lock is held by another process fails without touching its
 * file; once the lock is free, --resume runs it */
START_TEST(test_locked_run)
{
    struct tmp t;
    char lock[192], path[192], *err;
    const char *a[] = { "sweep", "-c", "", "-s", "data.shots=2", "-s", "method.methods=lora",
                        "-q", "--resume" };
    int fd;

    tmp_setup(&t);
    a[2] = t.ini;
    ck_assert_int_eq(mkdir(t.out, 0755), 0);
    snprintf(lock, sizeof(lock), "%s/.%s.lock", t.out, grid_ids[0]);
    ck_assert_int_ge(fd = open(lock, O_RDWR | O_CREAT, 0644), 0);
    ck_assert_int_eq(flock(fd, LOCK_EX | LOCK_NB), 0);
    ck_assert_int_eq(run_cmd(&t, "err.txt", 9, a), 1);
    snprintf(path, sizeof(path), "%s/err.txt", t.dir);
    err = slurp(path);
    ck_assert_ptr_nonnull(strstr(err, "being written by another process"));
    free(err);
    snprintf(path, sizeof(path), "%s/%s.h5", t.out, grid_ids[0]);
    ck_assert_int_ne(access(path, F_OK), 0);
    close(fd);
    ck_assert_int_eq(run_cmd(&t, NULL, 9, a), 0);
    ck_assert_int_eq(access(path, F_OK), 0);
    ck_assert_int_ne(access(lock, F_OK), 0);              /* removed after the run */
    free(check_summary(t.out, 1));
    tmp_cleanup(&t);
}
END_TEST

START_TEST(test_dry_run)
{
    struct tmp t;
    struct experiment e;
    struct run_plan *plans;
    struct sweep_options o;
    struct sweep_counts c;
    FILE *out = tmpfile();
    char buf[4096];
    size_t n, got;

    ck_assert_ptr_nonnull(out);
    tmp_setup(&t);
    load_grid(&t, &e, &plans, &n);
    sweep_options_init(&o);
    o.out = out;
    o.dry_run = true;
    o.shard = 1;
    o.n_shards = 2;
    ck_assert_int_eq(sweep_run(&e, plans, n, &o, &c), RL_OK);
    ck_assert_uint_eq(c.selected, 2);
    ck_assert_uint_eq(c.run, 0);
    ck_assert_int_ne(access(t.out, F_OK), 0);             /* nothing created */
    rewind(out);
    got = fread(buf, 1, sizeof(buf) - 1, out);
    buf[got] = '\0';
    ck_assert_ptr_nonnull(strstr(buf, "4 runs, shard 1/2: 2 of them"));
    ck_assert_ptr_nonnull(strstr(buf, grid_ids[1]));
    ck_assert_ptr_nonnull(strstr(buf, grid_ids[3]));
    ck_assert_ptr_null(strstr(buf, grid_ids[0]));
    ck_assert_ptr_nonnull(strstr(buf, "trainable"));
    fclose(out);
    run_plans_free(plans, n);
    experiment_free(&e);
    tmp_cleanup(&t);
}
END_TEST

/* bad usage: exit 2 with one line on stderr, nothing run */
START_TEST(test_cmd_errors)
{
    struct tmp t;
    char path[192];

    tmp_setup(&t);
    snprintf(path, sizeof(path), "%s/stderr.txt", t.dir);
    {
        const char *a[] = { "sweep", "-c", t.ini, "--frobnicate" };
        const char *b[] = { "sweep", "-c", t.ini, "--shard", "2/2" };
        const char *b2[] = { "sweep", "-c", t.ini, "--shard", "x" };
        const char *m[] = { "sweep", "--resume" };
        const char *j[] = { "sweep", "-c", t.ini, "--jobs", "0" };
        const char *v[] = { "sweep", "-c", t.ini, "--jobs" };
        const char *k[] = { "sweep", "-c", t.ini, "-s", "train.nosuchkey=1" };
        const char *nf[] = { "sweep", "-c", "/nonexistent/exp.ini" };
        struct { int argc; const char **argv; const char *want; } cases[] = {
            { 4, a, "unknown option '--frobnicate'" },
            { 5, b, "--shard '2/2'" },
            { 5, b2, "--shard 'x'" },
            { 2, m, "-c FILE is required" },
            { 5, j, "--jobs '0'" },
            { 4, v, "--jobs needs a value" },
            { 5, k, "nosuchkey" },
            { 3, nf, "/nonexistent/exp.ini" },
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
            char *err;

            ck_assert_int_eq(run_cmd(&t, NULL, cases[i].argc, cases[i].argv), 2);
            err = slurp(path);
            ck_assert_uint_eq(count_lines(err), 1);
            ck_assert_msg(strstr(err, cases[i].want) != NULL, "case %zu: %s", i, err);
            ck_assert(!strncmp(err, "randlora sweep: ", 16));
            free(err);
        }
    }
    ck_assert_int_ne(access(t.out, F_OK), 0);             /* nothing created */
    tmp_cleanup(&t);
}
END_TEST

Suite *suite_sweep(void)
{
    Suite *s = suite_create("sweep");
    TCase *tc = tcase_create("sweep");

    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, test_parse_shard);
    tcase_add_test(tc, test_cmd_errors);
    tcase_add_test(tc, test_dry_run);
    tcase_add_test(tc, test_grid_and_resume);
    tcase_add_test(tc, test_shards_and_jobs);
    tcase_add_test(tc, test_failure_continues);
    tcase_add_test(tc, test_locked_run);
    tcase_add_test(tc, test_run_lock);
    suite_add_tcase(s, tc);
    return s;
}
