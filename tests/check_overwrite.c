/*
 * check_overwrite.c: nothing is replaced silently. `randlora train` refuses
 * an existing run file (exit 2 naming --resume and --force, the file left as
 * it was), continues it with --resume, replaces it with --force, and refuses
 * both flags at once; `export` and `merge` refuse a non-empty output
 * directory without --force, write into it with --force, and refuse an
 * output path that is a file. On the tiny random CLIP.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/commands.h"
#include "core/status.h"
#include "results/store.h"
#include "runner_harness.h"
#include "suites.h"

static char *read_all(const char *path, size_t *n)
{
    FILE *fp = fopen(path, "rb");
    char *buf;
    long len;

    ck_assert_ptr_nonnull(fp);
    fseek(fp, 0, SEEK_END);
    len = ftell(fp);
    rewind(fp);
    buf = malloc((size_t)len + 1);
    ck_assert_ptr_nonnull(buf);
    ck_assert_uint_eq(fread(buf, 1, (size_t)len, fp), (size_t)len);
    fclose(fp);
    *n = (size_t)len;
    return buf;
}

static size_t train_rows(const char *path)
{
    struct store *s;
    size_t tr = 0;

    ck_assert_int_eq(store_open(&s, path), RL_OK);
    ck_assert_int_eq(store_rows(s, &tr, NULL), RL_OK);
    store_close(s);
    return tr;
}

/* run cmd on argv (NULL-terminated); assert its status and that its output
 * holds `want` */
static void expect(cmd_fn cmd, int status, const char *want, char **argv)
{
    int argc = 0;
    char *txt;

    while (argv[argc])
        argc++;
    int rc = run_cmd_captured(cmd, argc, argv, &txt);
    ck_assert_msg(rc == status, "%s: status %d, expected %d: %s", argv[0], rc, status, txt);
    ck_assert_msg(strstr(txt, want) != NULL, "%s: '%s' lacks '%s'", argv[0], txt, want);
    free(txt);
}

#define EXPECT(cmd, status, want, ...) expect(cmd, status, want, (char *[]){ __VA_ARGS__, NULL })

START_TEST(test_train_export_merge_refuse)
{
    struct tmp t;
    char ini[160], run[160], exp[160], merged[160], afile[160];
    char *before, *after;
    size_t nb, na;
    FILE *fp;

    tmp_setup(&t, true);
    snprintf(ini, sizeof(ini), "%s/x.ini", t.dir);
    snprintf(run, sizeof(run), "%s/run.h5", t.dir);
    snprintf(exp, sizeof(exp), "%s/adapter", t.dir);
    snprintf(merged, sizeof(merged), "%s/merged", t.dir);
    snprintf(afile, sizeof(afile), "%s/a-file", t.dir);
    fp = fopen(ini, "w");
    ck_assert_ptr_nonnull(fp);
    fprintf(fp, "[model]\nname = %s\n[data]\ndataset = shapes-count\nprompt = {}\nshots = 2\nval = 2\n"
            "eval_limit = 24\n[method]\nmethods = lora\nrank = 2\n[train]\nsteps = 2\nbatch = 6\n",
            t.model);
    fclose(fp);

    /* train: a fresh file, then refusals and the two ways through */
    EXPECT(cmd_train, 0, "(val ", "train", "-q", "-c", ini, "-o", run);
    ck_assert_uint_eq(train_rows(run), 2);
    before = read_all(run, &nb);
    EXPECT(cmd_train, 2, "exists; continue it with --resume, or replace it with --force", "train", "-q",
           "-c", ini, "-o", run, "-s", "train.steps=3");
    after = read_all(run, &na);
    ck_assert_msg(na == nb && !memcmp(before, after, nb), "a refused train changed %s", run);
    free(before);
    free(after);
    EXPECT(cmd_train, 0, "already complete", "train", "-q", "-c", ini, "-o", run, "--resume");
    EXPECT(cmd_train, 2, "give one", "train", "-q", "-c", ini, "-o", run, "--resume", "--force");
    EXPECT(cmd_train, 0, "accuracy", "train", "-q", "-c", ini, "-o", run, "--force", "-s",
           "train.steps=3");
    ck_assert_uint_eq(train_rows(run), 3);

    /* export: a missing directory is created; a non-empty one needs --force */
    EXPECT(cmd_export, 0, "adapter_model.safetensors", "export", run, "-o", exp);
    EXPECT(cmd_export, 2, "is not empty (2 entries); write elsewhere, or add --force", "export", run,
           "-o", exp);
    EXPECT(cmd_export, 0, "adapter_model.safetensors", "export", run, "-o", exp, "--force");
    fp = fopen(afile, "w");
    ck_assert_ptr_nonnull(fp);
    fclose(fp);
    EXPECT(cmd_export, 2, "exists and is not a directory", "export", run, "-o", afile, "--force");

    /* merge: the same rule */
    EXPECT(cmd_merge, 0, "", "merge", "--model", t.model, "--adapter", exp, "-o", merged);
    EXPECT(cmd_merge, 2, "is not empty", "merge", "--model", t.model, "--adapter", exp, "-o", merged);
    EXPECT(cmd_merge, 0, "", "merge", "--force", "--model", t.model, "--adapter", exp, "-o", merged);
    EXPECT(cmd_merge, 2, "exists and is not a directory", "merge", "--model", t.model, "--adapter", exp,
           "-o", afile, "--force");
    /* an empty directory is fine without --force */
    snprintf(merged, sizeof(merged), "%s/empty", t.dir);
    ck_assert_int_eq(mkdir(merged, 0777), 0);
    EXPECT(cmd_merge, 0, "", "merge", "--model", t.model, "--adapter", exp, "-o", merged);
    tmp_cleanup(&t);
}
END_TEST

Suite *suite_overwrite(void)
{
    Suite *s = suite_create("overwrite");
    TCase *tc = tcase_create("overwrite");

    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_train_export_merge_refuse);
    suite_add_tcase(s, tc);
    return s;
}
