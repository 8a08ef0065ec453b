/*
 * runner_harness.c: what the runner suites share (runner_harness.h): a tiny
 * random CLIP in a temporary directory, a one-run plan on shapes-count,
 * quiet runs, the adapter of a run file, and a run interrupted in a child
 * process and resumed beside one run straight through.
 */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/status.h"
#include "formats/safetensors.h"
#include "results/store.h"
#include "runner_harness.h"
#include "test_proc.h"

void runner_tiny_config(struct clip_config *c)
{
    ck_assert_int_eq(clip_config_preset(c, "clip-tiny"), RL_OK);
    c->vision.image_size = 16;
    c->vision.patch_size = 4;
    c->vision.hidden = 32;
    c->vision.layers = 3;
    c->vision.heads = 2;
    c->vision.intermediate = 64;
    c->text.hidden = 32;
    c->text.layers = 3;
    c->text.heads = 2;
    c->text.intermediate = 64;
    c->projection_dim = 32;
}

void tmp_setup(struct tmp *t, bool with_model)
{
    struct clip_config c;
    struct clip_model m;

    snprintf(t->dir, sizeof(t->dir), "/tmp/rl_runner_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(t->dir));
    snprintf(t->model, sizeof(t->model), "%s/model", t->dir);
    if (!with_model)
        return;
    runner_tiny_config(&c);
    ck_assert_int_eq(clip_model_init(&m, &c), RL_OK);
    clip_model_init_random(&m, 7);
    ck_assert_int_eq(clip_model_save(&m, t->model, ST_F32), RL_OK);
    clip_model_free(&m);
}

void tmp_cleanup(struct tmp *t)
{
    char cmd[160];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t->dir);
    ck_assert_int_eq(system(cmd), 0);
}

const char *const run_short[RUN_SHORT_N] = {
    "method.rank=2", "method.towers=vision", "method.modules=q_proj", "train.steps=3",
    "train.batch=4", "train.eval_every=2", "train.checkpoint_every=2", "data.eval_limit=8",
};

void tiny_ini_text(char *text, size_t cap, const struct tmp *t)
{
    snprintf(text, cap,
             "[experiment]\nname = t\noutput = %s\n"
             "[model]\nname = %s\n"
             "[data]\ndataset = shapes-count\neval = shapes-count:test\nprompt = {}\n"
             "shots = 4\neval_limit = 48\n"
             "[method]\nmethods = lora\nrank = 4\ntowers = vision, text\n"
             "modules = q_proj, v_proj, fc1\n"
             "[train]\nsteps = 6\nbatch = 12\nlr = 1e-2\nweight_decay = 0\neval_every = 3\n"
             "checkpoint_every = 3\n"
             "[sweep]\nseeds = 1\n", t->dir, t->model);
}

/* the plan of a one-run experiment on the tiny model, with overrides */
void make_plan(struct run_plan **plans, struct experiment *e, const struct tmp *t,
               const char *const *ov, size_t n_ov)
{
    char text[2048];
    size_t n = 0;

    tiny_ini_text(text, sizeof(text), t);
    ck_assert_msg(experiment_parse(e, text, "test.ini", ov, n_ov) == RL_OK, "%s", rl_error_msg());
    ck_assert_msg(experiment_expand(e, NULL, NULL, plans, &n) == RL_OK, "%s", rl_error_msg());
    ck_assert_uint_eq(n, 1);
}

int run_quiet(const struct run_plan *p, const char *path, const struct runner_hooks *h,
              bool resume, struct runner_result *res)
{
    struct runner_options o;

    runner_options_init(&o);
    o.verbosity = 0;
    o.hooks = h;
    o.resume = resume;
    return runner_run(p, path, &o, res);
}

/* every /adapter tensor of a finished file, concatenated */
float *read_adapter(const char *path, size_t *n_out)
{
    struct store *s;
    char **sites = NULL;
    size_t n_sites = 0, total = 0;
    float *all = NULL;

    ck_assert_int_eq(store_open(&s, path), RL_OK);
    ck_assert_int_eq(store_list(s, "/adapter", &sites, &n_sites), RL_OK);
    ck_assert_uint_gt(n_sites, 0);
    for (size_t i = 0; i < n_sites; i++) {
        char grp[256], **names = NULL;
        size_t nn = 0;

        snprintf(grp, sizeof(grp), "/adapter/%s", sites[i]);
        ck_assert_int_eq(store_list(s, grp, &names, &nn), RL_OK);
        for (size_t k = 0; k < nn; k++) {
            char tp[512];
            float *d;
            size_t nd, dims[STORE_MAX_DIMS], cnt = 1;

            snprintf(tp, sizeof(tp), "%s/%s", grp, names[k]);
            ck_assert_int_eq(store_read_tensor(s, tp, &d, &nd, dims), RL_OK);
            for (size_t j = 0; j < nd; j++)
                cnt *= dims[j];
            all = realloc(all, (total + cnt) * sizeof(float));
            memcpy(all + total, d, cnt * sizeof(float));
            total += cnt;
            free(d);
        }
        store_free_names(names, nn);
    }
    store_free_names(sites, n_sites);
    store_close(s);
    *n_out = total;
    return all;
}

void exit_at_step(void *ctx, size_t step)
{
    if (step == *(size_t *)ctx)
        _exit(0);
}

/* plans[0] twice in t's folder: "interrupted.h5", killed at step 7 in a
 * child and resumed from its checkpoint at step 6, and "straight.h5", run
 * through; both adapters out, asserted to be the same size */
void interrupted_and_straight(const struct run_plan *plan, const struct tmp *t,
                              char a[256], char b[256], float **pa, float **pb,
                              size_t *n, struct runner_result *res)
{
    size_t kill_step = 7, nb;
    struct runner_hooks h = { .ctx = &kill_step, .on_step = exit_at_step };
    pid_t pid;
    int status;

    snprintf(a, 256, "%s/interrupted.h5", t->dir);
    snprintf(b, 256, "%s/straight.h5", t->dir);
    /* the child dies at step 7 without closing anything */
    pid = test_fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        run_quiet(plan, a, &h, false, res);
        _exit(3);                                 /* not reached */
    }
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ck_assert_msg(run_quiet(plan, a, NULL, true, res) == RL_OK, "%s", rl_error_msg());
    ck_assert_uint_eq(res->resumed_from, 6);
    ck_assert_msg(run_quiet(plan, b, NULL, false, res) == RL_OK, "%s", rl_error_msg());
    *pa = read_adapter(a, n);
    *pb = read_adapter(b, &nb);
    ck_assert_uint_eq(*n, nb);
}

int run_cmd_captured(cmd_fn cmd, int argc, char **argv, char **text)
{
    char path[] = "/tmp/rl_cmd_out_XXXXXX";
    int fd = mkstemp(path);
    int so = dup(1), se = dup(2);
    long n;
    FILE *fp;

    ck_assert_int_ge(fd, 0);
    fflush(stdout);
    fflush(stderr);
    dup2(fd, 1);
    dup2(fd, 2);
    int rc = cmd(argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(so, 1);
    dup2(se, 2);
    close(so);
    close(se);
    close(fd);
    fp = fopen(path, "rb");
    ck_assert_ptr_nonnull(fp);
    fseek(fp, 0, SEEK_END);
    n = ftell(fp);
    rewind(fp);
    *text = calloc((size_t)n + 1, 1);
    ck_assert_ptr_nonnull(*text);
    ck_assert_uint_eq(fread(*text, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    unlink(path);
    return rc;
}

/* the test loss a finished run file records (/final; completed) */
double run_final_loss(const char *path)
{
    struct store *s;
    struct store_final f;
    int completed = 0;

    ck_assert_int_eq(store_open(&s, path), RL_OK);
    ck_assert_int_eq(store_read_final(s, &f, &completed), RL_OK);
    ck_assert_int_eq(completed, 1);
    store_close(s);
    return f.loss;
}
