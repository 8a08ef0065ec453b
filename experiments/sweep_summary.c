/*
 * sweep_summary.c: summary.tsv from the run files of a sweep's output
 * directory, the report table printed at the end of a sweep, and the run
 * files whose stored plan is not a run of the grid named (sweep.h).
 */
#include "experiments/sweep.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/status.h"
#include "results/report.h"
#include "results/store.h"

/* the hyperparameter columns: name, and the setting key they print (NULL:
 * derived) */
static const struct { const char *column, *key; } hyper_cols[SWEEP_N_HYPER] = {
    { "lr", "train.lr" },
    { "weight_decay", "train.weight_decay" },
    { "alpha", "method.alpha" },
    { "scaling", NULL },
    { "steps", "train.steps" },
    { "epochs", "train.epochs" },
    { "batch", "train.batch" },
    { "accumulate", "train.accumulate" },
    { "warmup", "train.warmup" },
    { "dropout", "method.dropout" },
    { "profile", "method.profile" },
    { "basis", "method.basis" },
    { "modules", "method.modules" },
    { "towers", "method.towers" },
};

const char *sweep_hyper_column(size_t i)
{
    return i < SWEEP_N_HYPER ? hyper_cols[i].column : NULL;
}

/* the adapter's scaling rule as text: LoRA alpha/r or alpha/sqrt(r)
 * (rsLoRA), RandLoRA by its profile's rule, NoLA alpha/r; "-" for the others */
static const char *scaling_text(const struct run_plan *p)
{
    if (!strcmp(p->method, "lora"))
        return p->adapter.rslora ? "alpha/sqrt(r)" : "alpha/r";
    if (!strcmp(p->method, "nola"))
        return "alpha/r";
    if (!strcmp(p->method, "randlora")) {
        switch (p->adapter.scaling) {
        case ADAPTER_SCALE_ALPHA_R:        return "alpha/r";
        case ADAPTER_SCALE_ALPHA_R_SQRT_N: return "alpha/(r*sqrt(n))";
        case ADAPTER_SCALE_ONE_OVER_R:     return "1/r";
        case ADAPTER_SCALE_TEN_OVER_R:     return "10/r";
        }
    }
    return "-";
}

/* a setting value for a TSV cell: list separators without spaces */
static char *cell_value(const char *v)
{
    char *c = xstrdup(v ? v : "-"), *w = c;

    for (const char *r = c; *r; r++)
        if (*r != ' ')
            *w++ = *r;
    *w = '\0';
    return c;
}

void sweep_row_free(struct sweep_row *r)
{
    free(r->id);
    free(r->dataset);
    free(r->method);
    free(r->status);
    for (size_t i = 0; i < SWEEP_N_HYPER; i++)
        free(r->hyper[i]);
    report_run_free(&r->run);
    memset(r, 0, sizeof(*r));
}

int sweep_read_row(const char *path, struct sweep_row *r)
{
    struct store *s = NULL;
    struct run_plan *plan = NULL;
    char *text = NULL;
    int64_t *steps = NULL;
    double *wall = NULL;
    size_t n = 0;
    int rc;

    memset(r, 0, sizeof(*r));
    if ((rc = store_open(&s, path)) != RL_OK)
        return rc;
    if ((rc = store_read_config(s, &text)) != RL_OK ||
        (rc = run_plan_from_config_text(text, path, &plan)) != RL_OK ||
        (rc = report_run_read(s, path, &r->run)) != RL_OK)
        goto out;
    r->id = xstrdup(plan->id);
    r->dataset = xstrdup(plan->dataset);
    r->method = xstrdup(plan->method);
    r->budget = plan->budget;
    r->shots = plan->shots;
    r->fraction = plan->shots ? 0.0 : plan->fraction;
    r->seed = plan->seed;
    for (size_t i = 0; i < SWEEP_N_HYPER; i++)
        r->hyper[i] = hyper_cols[i].key ? cell_value(run_key_get(&r->run.key, hyper_cols[i].key))
                                        : xstrdup(scaling_text(plan));
    if ((rc = store_attr_get_int64(s, "/method", "rank", &r->rank)) != RL_OK ||
        (rc = store_attr_get_int64(s, "/method", "n_trainable", &r->n_trainable)) != RL_OK ||
        (rc = store_read_curve(s, "train", "wall_s", &steps, &wall, &n)) != RL_OK)
        goto out;
    {
        struct store_final f;
        int completed = 0;

        if ((rc = store_read_final(s, &f, &completed)) != RL_OK)
            goto out;
        r->images_per_s = completed ? f.images_per_s : NAN;
        r->peak_rss_bytes = completed ? f.peak_rss_bytes : 0;
    }
    r->accuracy = r->run.test_accuracy;
    r->loss = r->run.test_loss;
    r->val_accuracy = r->run.completed ? r->run.val_accuracy : NAN;
    r->val_loss = r->run.completed ? r->run.val_loss : NAN;
    r->seconds = n ? wall[n - 1] : 0.0;
    if (store_attr_get_int64(s, "/", "runner_steps", &r->steps) != RL_OK)
        r->steps = n ? steps[n - 1] : 0;
    r->status = xstrdup(r->run.stopped ? "stopped" : r->run.completed ? "complete" : "incomplete");
    rl_error_clear();
out:
    if (rc != RL_OK)
        sweep_row_free(r);
    free(steps);
    free(wall);
    free(text);
    if (plan)
        run_plans_free(plan, 1);
    store_close(s);
    return rc;
}

struct row_entry {
    struct sweep_row row;
    char  *name;        /* file name */
    size_t order;       /* grid index, or SIZE_MAX */
};

static int entry_cmp(const void *a, const void *b)
{
    const struct row_entry *x = a, *y = b;

    if (x->order != y->order)
        return x->order < y->order ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* a TSV field: tabs and line ends become spaces */
static void put_field(FILE *fp, const char *s)
{
    for (; *s; s++)
        fputc(*s == '\t' || *s == '\n' || *s == '\r' ? ' ' : *s, fp);
}

static void put_double(FILE *fp, const char *fmt, double v)
{
    if (isnan(v))
        fputs("nan", fp);
    else
        fprintf(fp, fmt, v);
}

static void write_rows(FILE *fp, const struct row_entry *rows, size_t n)
{
    fputs("id\tdataset\tmethod\trank\tbudget\tshots\tfraction\tseed\tn_trainable\taccuracy\tloss"
          "\tsteps_done\tseconds\timages_per_s\tpeak_rss_bytes\tstatus\tval_accuracy\tval_loss",
          fp);
    for (size_t i = 0; i < SWEEP_N_HYPER; i++)
        fprintf(fp, "\t%s", hyper_cols[i].column);
    fputc('\n', fp);
    for (size_t i = 0; i < n; i++) {
        const struct sweep_row *r = &rows[i].row;

        put_field(fp, r->id);
        fputc('\t', fp);
        put_field(fp, r->dataset);
        fprintf(fp, "\t%s\t%lld\t%zu\t%zu\t%.17g\t%llu\t%lld\t", r->method, (long long)r->rank,
                r->budget, r->shots, r->fraction, (unsigned long long)r->seed,
                (long long)r->n_trainable);
        put_double(fp, "%.17g", r->accuracy);
        fputc('\t', fp);
        put_double(fp, "%.17g", r->loss);
        fprintf(fp, "\t%lld\t", (long long)r->steps);
        put_double(fp, "%.3f", r->seconds);
        fputc('\t', fp);
        put_double(fp, "%.3f", r->images_per_s);
        fprintf(fp, "\t%lld\t%s\t", (long long)r->peak_rss_bytes, r->status);
        put_double(fp, "%.17g", r->val_accuracy);
        fputc('\t', fp);
        put_double(fp, "%.17g", r->val_loss);
        for (size_t h = 0; h < SWEEP_N_HYPER; h++) {
            fputc('\t', fp);
            put_field(fp, r->hyper[h]);
        }
        fputc('\n', fp);
    }
}

/* dir/summary.tsv through a temporary file renamed over it */
static int write_tsv(const char *dir, const struct row_entry *rows, size_t n)
{
    size_t need = strlen(dir) + sizeof(SWEEP_SUMMARY_FILE) + 16;
    char *tmp = xmalloc(need), *final = xmalloc(need);
    FILE *fp;
    int fd, rc = RL_OK;

    snprintf(tmp, need, "%s/.%s.XXXXXX", dir, SWEEP_SUMMARY_FILE);
    snprintf(final, need, "%s/%s", dir, SWEEP_SUMMARY_FILE);
    if ((fd = mkstemp(tmp)) < 0) {
        rc = rl_error_set(RL_ERR_IO, "%s: cannot create a temporary file: %s", dir,
                          strerror(errno));
        goto out;
    }
    (void)fchmod(fd, 0644);
    if (!(fp = fdopen(fd, "w"))) {
        close(fd);
        unlink(tmp);
        rc = rl_error_set(RL_ERR_IO, "%s: %s", tmp, strerror(errno));
        goto out;
    }
    write_rows(fp, rows, n);
    if (fflush(fp) != 0 || ferror(fp) || fsync(fileno(fp)) != 0) {
        rc = rl_error_set(RL_ERR_IO, "%s: cannot write: %s", tmp, strerror(errno));
        fclose(fp);
        unlink(tmp);
        goto out;
    }
    if (fclose(fp) != 0 || rename(tmp, final) != 0) {
        rc = rl_error_set(RL_ERR_IO, "%s: cannot write: %s", final, strerror(errno));
        unlink(tmp);
    }
out:
    free(tmp);
    free(final);
    return rc;
}

int sweep_write_summary(const char *dir, const struct run_plan *plans, size_t n_plans,
                        FILE *table, FILE *err, size_t *n_rows)
{
    char **names = NULL;
    size_t n_names = 0, n = 0;
    struct row_entry *rows;
    struct report_set set = { 0 };
    struct report_options ro = { REPORT_VAL_ACCURACY, NULL, 0 };
    int rc;

    if (!err)
        err = stderr;
    if (n_rows)
        *n_rows = 0;
    if ((rc = report_list_run_files(dir, &names, &n_names)) != RL_OK)
        return rc;
    rows = xcalloc(n_names ? n_names : 1, sizeof(*rows));
    for (size_t i = 0; i < n_names; i++) {
        size_t need = strlen(dir) + strlen(names[i]) + 2;
        char *path = xmalloc(need);

        snprintf(path, need, "%s/%s", dir, names[i]);
        if (sweep_read_row(path, &rows[n].row) != RL_OK) {
            fprintf(err, "randlora sweep: %s: left out of %s: %s\n", path, SWEEP_SUMMARY_FILE,
                    rl_error_msg());
            free(path);
            continue;
        }
        free(path);
        rows[n].name = names[i];
        rows[n].order = SIZE_MAX;
        for (size_t p = 0; p < n_plans; p++) {
            size_t len = strlen(plans[p].id);

            if (!strncmp(names[i], plans[p].id, len) && !strcmp(names[i] + len, ".h5")) {
                rows[n].order = p;
                break;
            }
        }
        n++;
    }
    qsort(rows, n, sizeof(*rows), entry_cmp);
    rc = write_tsv(dir, rows, n);
    if (rc == RL_OK && n_rows)
        *n_rows = n;
    /* the report: its records move out of the rows */
    for (size_t i = 0; i < n; i++)
        report_set_add(&set, &rows[i].row.run);
    if (table)
        fputc('\n', table);
    if (plans || table) {
        int rc2 = report_set_print(table, err, "randlora sweep", &set, plans, n_plans, &ro,
                                   REPORT_TEXT, false);

        if (rc == RL_OK)
            rc = rc2;
    }
    report_set_free(&set);
    for (size_t i = 0; i < n; i++)
        sweep_row_free(&rows[i].row);
    free(rows);
    for (size_t i = 0; i < n_names; i++)
        free(names[i]);
    free(names);
    return rc;
}
