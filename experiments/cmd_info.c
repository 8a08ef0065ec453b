/*
 * cmd_info.c: `randlora info FILE`: what a file holds.
 *
 * The file's kind is sniffed from its bytes (sniff()), then one printer per
 * kind runs: today HDF5 results files (info_results); another format is one
 * more enum value, one more test in sniff() and one more case in cmd_info.
 * Exit status: 0 printed, 2 missing, unreadable or malformed file or bad
 * usage, 1 other failures.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "experiments/commands.h"
#include "results/store.h"

enum file_kind { KIND_UNKNOWN, KIND_HDF5 };

/* The HDF5 signature sits at offset 0 or, after a user block, at 512, 1024,
 * 2048, ... bytes. */
static int sniff(const char *path, enum file_kind *kind)
{
    static const unsigned char hdf5_sig[8] = { 0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n' };
    unsigned char buf[8];
    FILE *fp = fopen(path, "rb");

    *kind = KIND_UNKNOWN;
    if (!fp)
        return rl_error_set(RL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    for (long off = 0; off <= (1L << 30); off = off ? 2 * off : 512) {
        if (fseek(fp, off, SEEK_SET) != 0 || fread(buf, 1, 8, fp) != 8)
            break;
        if (!memcmp(buf, hdf5_sig, 8)) {
            *kind = KIND_HDF5;
            break;
        }
    }
    fclose(fp);
    return RL_OK;
}

static void print_attr_str(struct store *s, const char *obj, const char *name, const char *label)
{
    char *v = NULL;

    if (store_attr_get_string(s, obj, name, &v) == RL_OK)
        printf("%-12s %s\n", label, v);
    free(v);
}

static int info_results(const char *path)
{
    struct store *s = NULL;
    int rc = store_open(&s, path);
    char *str = NULL, *method = NULL, *profile = NULL;
    int64_t i64, rank = 0, ntr = 0, nfs = 0, shots = 0;
    double alpha = 0, fraction = 0;
    uint64_t seed = 0;
    size_t trows = 0, erows = 0;

    if (rc != RL_OK)
        return rc;
    printf("%-12s %s\n", "file", path);
    if (store_attr_get_int64(s, "/", "schema_version", &i64) == RL_OK)
        printf("%-12s randlora results, schema %lld\n", "kind", (long long)i64);
    print_attr_str(s, "/", "harness_version", "harness");
    print_attr_str(s, "/", "git_commit", "git commit");
    print_attr_str(s, "/", "created_utc", "created");
    print_attr_str(s, "/", "host", "host");
    print_attr_str(s, "/", "threads", "threads");
    print_attr_str(s, "/", "blas", "blas");

    if ((rc = store_attr_get_string(s, "/method", "method", &method)) ||
        (rc = store_attr_get_string(s, "/method", "profile", &profile)) ||
        (rc = store_attr_get_int64(s, "/method", "rank", &rank)) ||
        (rc = store_attr_get_double(s, "/method", "alpha", &alpha)) ||
        (rc = store_attr_get_int64(s, "/method", "n_trainable", &ntr)) ||
        (rc = store_attr_get_int64(s, "/method", "n_frozen_shared", &nfs)))
        goto done;
    printf("%-12s %s, rank %lld, alpha %g%s%s\n", "method", method, (long long)rank, alpha,
           *profile ? ", " : "", profile);
    printf("%-12s %lld trainable, %lld frozen shared\n", "parameters", (long long)ntr, (long long)nfs);

    if ((rc = store_attr_get_string(s, "/data", "spec", &str)) ||
        (rc = store_attr_get_int64(s, "/data", "shots", &shots)) ||
        (rc = store_attr_get_double(s, "/data", "fraction", &fraction)) ||
        (rc = store_attr_get_uint64(s, "/data", "sampling_seed", &seed)))
        goto done;
    int64_t *idx = NULL;
    size_t nidx = 0;
    if ((rc = store_read_train_index(s, &idx, &nidx)))
        goto done;
    free(idx);
    if (shots > 0)
        printf("%-12s %s, %lld shots, seed %llu, %zu training examples\n", "data", str, (long long)shots,
               (unsigned long long)seed, nidx);
    else
        printf("%-12s %s, fraction %g, seed %llu, %zu training examples\n", "data", str, fraction,
               (unsigned long long)seed, nidx);

    if ((rc = store_rows(s, &trows, &erows)))
        goto done;
    int64_t *steps = NULL;
    double *vals = NULL;
    size_t n = 0;
    if ((rc = store_read_curve(s, "train", "loss", &steps, &vals, &n)))
        goto done;
    if (n)
        printf("%-12s %zu rows, steps %lld..%lld, last loss %.6g\n", "train", n, (long long)steps[0],
               (long long)steps[n - 1], vals[n - 1]);
    else
        printf("%-12s no rows\n", "train");
    free(steps);
    free(vals);
    if ((rc = store_read_curve(s, "eval", "accuracy", &steps, &vals, &n)))
        goto done;
    if (n)
        printf("%-12s %zu rows, last at step %lld: accuracy %.4f\n", "eval", n, (long long)steps[n - 1],
               vals[n - 1]);
    else
        printf("%-12s no rows\n", "eval");
    free(steps);
    free(vals);

    struct store_checkpoint_info ci;
    rc = store_read_checkpoint(s, &ci, NULL, NULL, NULL, NULL);
    if (rc == RL_OK)
        printf("%-12s step %lld (covers %zu train, %zu eval rows)\n", "checkpoint", (long long)ci.step,
               ci.train_rows, ci.eval_rows);
    else if (rc == RL_ERR_NA)
        printf("%-12s none\n", "checkpoint");
    else
        goto done;

    struct store_final f;
    int completed = 0;
    if ((rc = store_read_final(s, &f, &completed)))
        goto done;
    if (completed)
        printf("%-12s accuracy %.4f, loss %.6g, peak RSS %.1f MiB, %.1f images/s\n", "final", f.accuracy, f.loss,
               (double)f.peak_rss_bytes / (1024.0 * 1024.0), f.images_per_s);
    else
        printf("%-12s not written (the run is live, was interrupted, or failed)\n", "final");

    char **names = NULL;
    size_t nn = 0;
    if ((rc = store_list(s, "/", &names, &nn)))
        goto done;
    printf("%-12s", "groups");
    for (size_t i = 0; i < nn; i++) {
        char p[512], **sub = NULL;
        size_t ns = 0;
        snprintf(p, sizeof p, "/%s", names[i]);
        if (!strcmp(names[i], "adapter") || !strcmp(names[i], "analysis")) {
            if (store_list(s, p, &sub, &ns) == RL_OK)
                printf(" %s (%zu layer%s)", p, ns, ns == 1 ? "" : "s");
            else
                printf(" %s", p);
            store_free_names(sub, ns);
        } else {
            printf(" %s", p);
        }
    }
    printf("\n");
    store_free_names(names, nn);
    rc = RL_OK;
done:
    free(str);
    free(method);
    free(profile);
    store_close(s);
    return rc;
}

int cmd_info(int argc, char **argv)
{
    enum file_kind kind;
    int rc;

    if (argc == 2 && !strcmp(argv[1], "--help")) {
        printf("usage: randlora info FILE\n"
               "Summarise a results file (HDF5): method, counts, steps trained, last loss,\n"
               "final accuracy, checkpoint, groups present.\n");
        return 0;
    }
    if (argc != 2 || argv[1][0] == '-') {
        fprintf(stderr, "randlora info: expected one FILE (see randlora info --help)\n");
        return 2;
    }
    const char *path = argv[1];
    if ((rc = sniff(path, &kind)) != RL_OK) {
        fprintf(stderr, "randlora info: %s\n", rl_error_msg());
        return rl_exit_code(rc);
    }
    switch (kind) {
    case KIND_HDF5:
        rc = info_results(path);
        break;
    default:
        rc = rl_error_set(RL_ERR_FORMAT, "%s: not an HDF5 file (info reads HDF5 results files)", path);
        break;
    }
    if (rc != RL_OK) {
        fprintf(stderr, "randlora info: %s\n", rl_error_msg());
        return rl_exit_code(rc);
    }
    return 0;
}
