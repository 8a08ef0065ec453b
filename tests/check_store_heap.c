/*
 * check_store_heap.c: readers of run files on a corrupt global heap (the
 * variable-length strings; results/store_heap.c; issue 13, finding 3).
 *
 * The fixture tests/fixtures/run_lora.h5 is a finished run of a tiny LoRA
 * train on clip_tiny. Its global heap collections are found in its bytes
 * ("GCOL", version 1) and then:
 *   - flipped_object_size: bit 3 of the second byte of the first string's
 *     size (the byte that made `randlora info` spin forever inside libhdf5
 *     before the check; Check's timeout fails the test then) gives
 *     RL_ERR_FORMAT naming the file and "corrupt global heap" from the
 *     string readers, and `randlora info` exits 2;
 *   - every_heap_header_byte: each byte of each collection's header and of
 *     every object header, flipped with 0x08, 0x80 and 0xff, then every
 *     string, the config and the run's plan read: RL_OK or RL_ERR_FORMAT
 *     only, within seconds (under make SAN=1 check, no sanitizer report);
 *     some of them are refused;
 *   - pristine: the unmodified file reads, so the check refuses nothing
 *     whole.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "core/alloc.h"
#include "core/status.h"
#include "results/run_adapters.h"
#include "results/store.h"
#include "suites.h"
#include "test_cmd.h"
#include "test_util.h"

static char tmpdir[256];

static uint64_t le64(const unsigned char *p)
{
    uint64_t v = 0;

    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* offsets of the collections (at most cap) */
static size_t find_heaps(const unsigned char *f, size_t n, size_t *at, size_t cap)
{
    static const unsigned char magic[8] = { 'G', 'C', 'O', 'L', 1, 0, 0, 0 };
    size_t k = 0;

    for (size_t i = 0; i + 16 <= n && k < cap; i++)
        if (!memcmp(f + i, magic, 8))
            at[k++] = i;
    return k;
}

/* every string, the config and the plan; the first status that is not RL_OK */
static int read_strings(const char *path)
{
    static const char *const attrs[][2] = { { "/", "harness_version" }, { "/", "git_commit" },
                                            { "/", "created_utc" }, { "/", "host" },
                                            { "/", "threads" }, { "/", "blas" },
                                            { "/method", "method" }, { "/method", "profile" },
                                            { "/data", "spec" } };
    struct store *s;
    struct run_plan *plan = NULL;
    char *v = NULL;
    int rc = store_open(&s, path), first = RL_OK;

    if (rc)
        return rc;
    for (size_t i = 0; i < sizeof attrs / sizeof attrs[0]; i++) {
        rc = store_attr_get_string(s, attrs[i][0], attrs[i][1], &v);
        free(v);
        v = NULL;
        if (rc && !first)
            first = rc;
    }
    rc = store_read_config(s, &v);
    free(v);
    if (rc && !first)
        first = rc;
    rc = run_plan_read(s, &plan);
    if (rc == RL_OK)
        run_plans_free(plan, 1);
    else if (!first)
        first = rc;
    store_close(s);
    return first;
}

/* `randlora info FILE`, in-process; its exit status */
static int info_status(const char *path)
{
    struct test_captured c = test_run_cmd(tmpdir, cmd_info, "info", path, NULL);
    int status = c.status;

    test_captured_free(&c);
    return status;
}

/* the fixture's bytes (caller frees) */
static unsigned char *read_fixture(size_t *n)
{
    return (unsigned char *)test_slurp(fixture_path("run_lora.h5"), n);
}

static void setup(void)
{
    ck_assert_ptr_nonnull(test_tmpdir_make(tmpdir, sizeof tmpdir, "heap"));
}

static void teardown(void)
{
    test_tmpdir_remove(tmpdir);
}

START_TEST(test_pristine)
{
    size_t n, at[8];
    unsigned char *f = read_fixture(&n);
    const char *path = test_path(tmpdir, "run.h5");

    ck_assert_uint_ge(find_heaps(f, n, at, 8), 1);
    test_write_file(path, f, n);
    ck_assert_msg(read_strings(path) == RL_OK, "%s", rl_error_msg());
    ck_assert_int_eq(info_status(path), 0);
    free(f);
}
END_TEST

START_TEST(test_flipped_object_size)
{
    size_t n, at[8];
    unsigned char *f = read_fixture(&n);
    const char *path = test_path(tmpdir, "flipped.h5");
    struct store *s;
    char *v = NULL;

    ck_assert_uint_ge(find_heaps(f, n, at, 8), 1);
    /* the first object's size field: collection header 16, then index,
     * reference count, reserved (8), size (8) */
    f[at[0] + 16 + 8 + 1] ^= 0x08;
    test_write_file(path, f, n);
    ck_assert_int_eq(store_open(&s, path), RL_OK);     /* the layout reads */
    ck_assert_int_eq(store_attr_get_string(s, "/method", "method", &v), RL_ERR_FORMAT);
    ck_assert_ptr_null(v);
    ck_assert_msg(strstr(rl_error_msg(), "flipped.h5") && strstr(rl_error_msg(), "corrupt global heap"), "%s",
                  rl_error_msg());
    ck_assert_int_eq(store_read_config(s, &v), RL_ERR_FORMAT);
    store_close(s);
    ck_assert_int_eq(info_status(path), 2);
    free(f);
}
END_TEST

START_TEST(test_every_heap_header_byte)
{
    static const unsigned char masks[] = { 0x08, 0x80, 0xff };
    size_t n, at[8], nh, tried = 0, refused = 0;
    unsigned char *f = read_fixture(&n);
    const char *path = test_path(tmpdir, "mutant.h5");

    nh = find_heaps(f, n, at, 8);
    ck_assert_uint_ge(nh, 1);
    for (size_t h = 0; h < nh; h++) {
        uint64_t size = le64(f + at[h] + 8), p = 16;

        ck_assert(size >= 4096 && at[h] + size <= n);
        /* the collection header, then each object header */
        size_t offs[512], k = 0;
        for (size_t i = 0; i < 16; i++)
            offs[k++] = at[h] + i;
        while (p + 16 <= size && k + 16 <= 512) {
            unsigned idx = f[at[h] + p] | f[at[h] + p + 1] << 8;
            for (size_t i = 0; i < 16; i++)
                offs[k++] = at[h] + p + i;
            if (idx == 0)
                break;
            p += 16 + ((le64(f + at[h] + p + 8) + 7) & ~(uint64_t)7);
        }
        for (size_t i = 0; i < k; i++)
            for (size_t m = 0; m < sizeof masks; m++) {
                f[offs[i]] ^= masks[m];
                test_write_file(path, f, n);
                f[offs[i]] ^= masks[m];
                int rc = read_strings(path);
                ck_assert_msg(rc == RL_OK || rc == RL_ERR_FORMAT, "byte %zu ^ 0x%02x: status %d: %s", offs[i],
                              masks[m], rc, rl_error_msg());
                tried++;
                refused += rc != RL_OK;
            }
    }
    ck_assert_uint_gt(tried, 100);
    ck_assert_uint_gt(refused, 0);
    free(f);
}
END_TEST

Suite *suite_store_heap(void)
{
    Suite *s = suite_create("store_heap");
    TCase *tc = tcase_create("store_heap");
    TCase *all = tcase_create("every_byte");

    /* before the check, the flipped size spun inside libhdf5: the timeout
     * is what fails it then */
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, test_pristine);
    tcase_add_test(tc, test_flipped_object_size);
    suite_add_tcase(s, tc);
    tcase_add_checked_fixture(all, setup, teardown);
    tcase_set_timeout(all, 240);
    tcase_add_test(all, test_every_heap_header_byte);
    suite_add_tcase(s, all);
    return s;
}
