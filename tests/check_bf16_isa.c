/*
 * check_bf16_isa.c: bf16 on a CPU without bf16 instructions, as a user
 * meets it: the built randlora (RANDLORA_BIN, default build/randlora) run
 * in a child with ONEDNN_MAX_CPU_ISA capping oneDNN's ISA, which simulates
 * an older CPU on this one (oneDNN reads the variable once, at its first
 * use; the re-exec for the wait policies keeps the environment).
 *
 *   refused        AVX2 (no bf16 matmul: oneDNN's reference kernel),
 *                  AVX512_CORE (emulated bf16, measured at 0.21-0.28x the
 *                  fp32 rate, docs/BENCHMARKS.md) and AVX512_CORE_BF16
 *                  (AVX512-BF16 without AMX: slower than fp32, measured;
 *                  where this CPU has AVX512-BF16): `bench --precision
 *                  bf16` exits 2 with one line on stderr naming the ISA and
 *                  saying to use fp32, and prints nothing else
 *   threads        `randlora threads` under the cap still exits 0 and says
 *                  bf16=refused with the capped ISA
 *   fp32 unaffected  `bench` in fp32 under the AVX2 cap runs (exit 0)
 *   wait policy    `threads` reports OMP_WAIT_POLICY=passive by default and
 *                  keeps the user's own value
 *   no AMX allowed AVX512_CORE_BF16 with RANDLORA_BF16_NO_AMX=1: `bench
 *                  --precision bf16` runs (exit 0) with one warning saying
 *                  fp32 is faster, and `threads` marks the line; skipped on
 *                  a CPU without AVX512-BF16, where the cap cannot add it
 */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/gemm_bf16.h"
#include "suites.h"
#include "test_cmd.h"
#include "test_util.h"

static const char *randlora_bin(void)
{
    const char *bin = getenv("RANDLORA_BIN");

    return bin && *bin ? bin : "build/randlora";
}

struct child_out {
    int status;         /* exit status (-1: not a normal exit) */
    char *out, *err;    /* stdout, stderr (caller frees)       */
};

/* this CPU has AVX512-BF16 (so a cap at AVX512_CORE_BF16 leaves it) */
static int cpu_has_avx512_bf16(const char *test)
{
    const char *isa = gemm_bf16_isa();

    if (!strcmp(isa, "avx512_core_bf16") || !strcmp(isa, "avx512_core_amx"))
        return 1;
    printf("check_bf16_isa: %s skipped: this CPU's isa is %s\n", test, isa);
    return 0;
}

/* randlora ARGS... with ONEDNN_MAX_CPU_ISA=isa (and RANDLORA_BF16_NO_AMX=1
 * when no_amx; OMP_WAIT_POLICY=wait, or unset when NULL), stdout and stderr
 * into files under dir, read back */
static struct child_out run_env(const char *dir, const char *isa, int no_amx, const char *wait,
                                const char *const *args)
{
    const char *out_path = test_path(dir, "out.txt"), *err_path = test_path(dir, "err.txt");
    char *argv[24];
    struct child_out r;
    size_t n = 0;
    int status;
    pid_t pid;

    argv[n++] = (char *)randlora_bin();
    while (args[n - 1] && n < 23) {
        argv[n] = (char *)args[n - 1];
        n++;
    }
    argv[n] = NULL;
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int fo = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int fe = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

        if (fo < 0 || fe < 0 || dup2(fo, 1) < 0 || dup2(fe, 2) < 0)
            _exit(126);
        setenv("ONEDNN_MAX_CPU_ISA", isa, 1);
        setenv("RANDLORA_THREADS", "1", 1);
        if (no_amx)
            setenv("RANDLORA_BF16_NO_AMX", "1", 1);
        else
            unsetenv("RANDLORA_BF16_NO_AMX");
        if (wait)
            setenv("OMP_WAIT_POLICY", wait, 1);
        else
            unsetenv("OMP_WAIT_POLICY");
        execv(argv[0], argv);
        _exit(127);
    }
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    ck_assert_msg(r.status != 127, "cannot run %s (build it: make randlora)", argv[0]);
    r.out = test_slurp(out_path, NULL);
    r.err = test_slurp(err_path, NULL);
    return r;
}

static struct child_out run_capped(const char *dir, const char *isa, int no_amx,
                                   const char *const *args)
{
    return run_env(dir, isa, no_amx, NULL, args);
}

static void child_out_free(struct child_out *r)
{
    free(r->out);
    free(r->err);
}

static const char *const bench_bf16[] = { "bench", "--model", "clip-tiny", "--method", "lora",
                                          "--batch", "2", "--steps", "1", "--in-process",
                                          "--precision", "bf16", NULL };

/* exit 2, exactly one line on stderr naming the capped ISA and fp32 */
START_TEST(test_bench_bf16_refused_without_bf16_isa)
{
    const char *caps[] = { "AVX2", "AVX512_CORE", "AVX512_CORE_BF16" };
    const char *names[] = { "isa avx2", "isa avx512_core ", "isa avx512_core_bf16" };
    char dir[256];

    ck_assert_ptr_nonnull(test_tmpdir_make(dir, sizeof(dir), "bf16isa"));
    for (size_t i = 0; i < 3; i++) {
        struct child_out r;
        const char *nl;

        if (i == 2 && !cpu_has_avx512_bf16("no-AMX refusal"))
            break;
        r = run_capped(dir, caps[i], 0, bench_bf16);
        nl = strchr(r.err, '\n');

        ck_assert_msg(r.status == 2, "%s: exit %d, stderr: %s", caps[i], r.status, r.err);
        ck_assert_msg(nl && nl[1] == '\0', "%s: not one line on stderr: %s", caps[i], r.err);
        ck_assert_msg(!strncmp(r.err, "randlora bench: --precision bf16: ", 34), "%s", r.err);
        ck_assert_msg(strstr(r.err, names[i]) && strstr(r.err, "use precision fp32"),
                      "%s: %s", caps[i], r.err);
        ck_assert_msg(r.out[0] == '\0', "%s: printed on stdout: %s", caps[i], r.out);
        child_out_free(&r);
    }
    test_tmpdir_remove(dir);
}
END_TEST

/* threads reports the refusal (exit 0); fp32 runs under the same cap */
START_TEST(test_threads_and_fp32_under_avx2)
{
    const char *const threads[] = { "threads", NULL };
    const char *const bench_fp32[] = { "bench", "--model", "clip-tiny", "--method", "lora",
                                       "--batch", "2", "--steps", "1", "--in-process", NULL };
    char dir[256];
    struct child_out r;

    ck_assert_ptr_nonnull(test_tmpdir_make(dir, sizeof(dir), "bf16isa"));
    r = run_capped(dir, "AVX2", 0, threads);
    ck_assert_msg(r.status == 0, "exit %d: %s", r.status, r.err);
    ck_assert_msg(strstr(r.out, "isa=avx2 bf16=refused"), "%s", r.out);
    child_out_free(&r);
    r = run_capped(dir, "AVX2", 0, bench_fp32);
    ck_assert_msg(r.status == 0, "fp32 bench under AVX2: exit %d: %s", r.status, r.err);
    ck_assert_msg(strstr(r.out, "images/s"), "%s", r.out);
    child_out_free(&r);
    test_tmpdir_remove(dir);
}
END_TEST

/* AVX512-BF16 without AMX, allowed: bf16 runs, with the warning */
START_TEST(test_bench_bf16_warns_without_amx)
{
    const char *const threads[] = { "threads", NULL };
    char dir[256];
    struct child_out r;

    if (!cpu_has_avx512_bf16("no-AMX allowed"))
        return;
    ck_assert_ptr_nonnull(test_tmpdir_make(dir, sizeof(dir), "bf16isa"));
    r = run_capped(dir, "AVX512_CORE_BF16", 1, bench_bf16);
    ck_assert_msg(r.status == 0, "exit %d: %s", r.status, r.err);
    ck_assert_msg(strstr(r.err, "bf16 on isa avx512_core_bf16 (AVX512-BF16, no AMX;") &&
                  strstr(r.err, "fp32 is faster") && strchr(r.err, '\n')[1] == '\0', "%s", r.err);
    ck_assert_msg(strstr(r.out, "images/s"), "%s", r.out);
    child_out_free(&r);
    r = run_capped(dir, "AVX512_CORE_BF16", 1, threads);
    ck_assert_msg(r.status == 0 && strstr(r.out, "brg:avx512_core_bf16 (no AMX: slower than fp32)"),
                  "exit %d: %s", r.status, r.out);
    child_out_free(&r);
    test_tmpdir_remove(dir);
}
END_TEST

/* the OpenMP wait policy: passive unless the user set one, which is kept
 * (core/threads.c; BENCHMARKS.md "The OpenMP wait policy") */
START_TEST(test_wait_policy_default_and_override)
{
    const char *const threads[] = { "threads", NULL };
    const char *const want[] = { "wait=passive", "wait=active", "wait=passive" };
    const char *const set[] = { NULL, "active", "passive" };
    char dir[256];

    ck_assert_ptr_nonnull(test_tmpdir_make(dir, sizeof(dir), "bf16isa"));
    for (size_t i = 0; i < 3; i++) {
        struct child_out r = run_env(dir, "ALL", 0, set[i], threads);

        ck_assert_msg(r.status == 0 && strstr(r.out, want[i]), "OMP_WAIT_POLICY=%s: %s",
                      set[i] ? set[i] : "(unset)", r.out);
        child_out_free(&r);
    }
    test_tmpdir_remove(dir);
}
END_TEST

Suite *suite_bf16_isa(void)
{
    Suite *s = suite_create("bf16_isa");
    TCase *tc = tcase_create("bf16_isa");

    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_bench_bf16_refused_without_bf16_isa);
    tcase_add_test(tc, test_threads_and_fp32_under_avx2);
    tcase_add_test(tc, test_bench_bf16_warns_without_amx);
    tcase_add_test(tc, test_wait_policy_default_and_override);
    suite_add_tcase(s, tc);
    return s;
}
