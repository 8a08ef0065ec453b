/*
 * report_print.c: a built report as text, Markdown, TSV or LaTeX tables
 * (report.h): per table (dataset and model) methods as rows, shots /
 * fractions as columns; then the chosen settings with their validation
 * metric and 95% intervals, then the notes; with --all every setting.
 */
#include "results/report.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"

/* ------------------------------------------------------------------------ */
/* rows and columns of one table                                             */

static bool same_row(const struct run_key *a, const struct run_key *b)
{
    return !strcmp(a->method, b->method) && a->budget == b->budget &&
           (a->budget || a->rank == b->rank);
}

static bool same_col(const struct run_key *a, const struct run_key *b)
{
    return a->shots == b->shots && a->fraction == b->fraction;
}

static int col_cmp(const void *pa, const void *pb)
{
    const struct run_key *a = *(const struct run_key *const *)pa;
    const struct run_key *b = *(const struct run_key *const *)pb;

    if ((a->shots == 0) != (b->shots == 0))
        return a->shots ? -1 : 1;
    if (a->shots != b->shots)
        return a->shots < b->shots ? -1 : 1;
    return a->fraction < b->fraction ? -1 : a->fraction > b->fraction;
}

struct table {
    const struct run_key **rows, **cols;   /* a representative key of each */
    size_t n_rows, n_cols;
};

static void table_make(struct table *t, const struct report *rep, size_t table)
{
    memset(t, 0, sizeof(*t));
    t->rows = xcalloc(rep->n_groups ? rep->n_groups : 1, sizeof(*t->rows));
    t->cols = xcalloc(rep->n_groups ? rep->n_groups : 1, sizeof(*t->cols));
    for (size_t g = 0; g < rep->n_groups; g++) {
        const struct run_key *k = &rep->groups[g].first->key;
        size_t i;

        if (rep->groups[g].table != table)
            continue;
        for (i = 0; i < t->n_rows && !same_row(t->rows[i], k); i++)
            ;
        if (i == t->n_rows)
            t->rows[t->n_rows++] = k;
        for (i = 0; i < t->n_cols && !same_col(t->cols[i], k); i++)
            ;
        if (i == t->n_cols)
            t->cols[t->n_cols++] = k;
    }
    qsort(t->cols, t->n_cols, sizeof(*t->cols), col_cmp);
}

static void table_free(struct table *t)
{
    free(t->rows);
    free(t->cols);
}

static const struct report_group *cell(const struct report *rep, size_t table,
                                       const struct run_key *row, const struct run_key *col)
{
    for (size_t g = 0; g < rep->n_groups; g++) {
        const struct run_key *k = &rep->groups[g].first->key;

        if (rep->groups[g].table == table && same_row(k, row) && same_col(k, col))
            return &rep->groups[g];
    }
    return NULL;
}

static const struct report_setting *chosen(const struct report_group *g)
{
    return g && g->chosen >= 0 ? &g->settings[g->chosen] : NULL;
}

/* a row's trainable count (rank: its rank) over its cells: the chosen
 * settings' common value, or *varies when they differ */
static size_t row_value(const struct report *rep, size_t table, const struct table *t,
                        const struct run_key *row, bool rank, bool *varies)
{
    size_t n = 0;
    bool have = false;

    *varies = false;
    for (size_t c = 0; c < t->n_cols; c++) {
        const struct report_group *g = cell(rep, table, row, t->cols[c]);
        const struct report_setting *s = chosen(g);
        size_t v;

        if (!g)
            continue;
        if (!s)
            s = &g->settings[0];
        v = rank ? s->rank : s->n_trainable;
        if (have && v != n)
            *varies = true;
        n = v;
        have = true;
    }
    return n;
}

/* the rank column: the rank, or under a budget the matched rank */
static void rank_text(const struct report *rep, size_t table, const struct table *t,
                      const struct run_key *row, char *buf, size_t cap)
{
    bool varies;
    size_t r = row_value(rep, table, t, row, true, &varies);

    if (!r)
        snprintf(buf, cap, "-");
    else if (varies)
        snprintf(buf, cap, "varies");
    else
        snprintf(buf, cap, "%zu", r);
}

static void col_label(const struct run_key *k, char *buf, size_t cap)
{
    if (k->shots)
        snprintf(buf, cap, "%zu-shot", k->shots);
    else
        snprintf(buf, cap, "f=%g", k->fraction);
}

static void row_label(const struct run_key *k, char *buf, size_t cap)
{
    if (k->budget)
        snprintf(buf, cap, "%s b%zu", k->method, k->budget);
    else if (k->rank)
        snprintf(buf, cap, "%s r%zu", k->method, k->rank);
    else
        snprintf(buf, cap, "%s", k->method);
}

static void marks_text(unsigned m, char *buf)
{
    size_t n = 0;

    if (m & REPORT_MARK_INCOMPLETE)
        buf[n++] = '*';
    if (m & REPORT_MARK_NO_VAL)
        buf[n++] = '!';
    if (m & REPORT_MARK_TIE)
        buf[n++] = '=';
    buf[n] = '\0';
}

/* "0.4570 +- 0.0210 (3)" with pm the plus-minus sign of the format */
static void stat_text(const struct report_stat *s, const char *pm, char *buf, size_t cap)
{
    if (s->n == 0)
        snprintf(buf, cap, "-");
    else if (s->n == 1)
        snprintf(buf, cap, "%.4f (1)", s->mean);
    else
        snprintf(buf, cap, "%.4f%s%.4f (%zu)", s->mean, pm, s->sd, s->n);
}

static void interval_text(const struct report_stat *s, char *buf, size_t cap)
{
    if (s->n >= 3)
        snprintf(buf, cap, "[%.4f, %.4f]", s->lo, s->hi);
    else
        snprintf(buf, cap, "-");
}

/* a cell's text: statistics, or why there are none; then its marks */
static void cell_text(const struct report_group *g, const char *pm, char *buf, size_t cap)
{
    char marks[8];

    if (!g) {
        snprintf(buf, cap, "-");
        return;
    }
    marks_text(g->marks, marks);
    switch (g->choice) {
    case REPORT_NOT_SELECTABLE:
        snprintf(buf, cap, "no val split%s", marks);
        return;
    case REPORT_NONE_COMPLETE:
        snprintf(buf, cap, "unfinished%s", marks);
        return;
    default: {
        char st[96];

        stat_text(&g->settings[g->chosen].test, pm, st, sizeof(st));
        snprintf(buf, cap, "%s%s", st, marks);
    }
    }
}

static const char *choice_setting(const struct report_group *g)
{
    const struct report_setting *s = chosen(g);

    if (g->choice == REPORT_NOT_SELECTABLE)
        return "no validation split: not selectable";
    if (!s)
        return "-";
    if (!*s->compact)
        return g->choice == REPORT_ONLY ? "(the only setting)" : "(same as the others)";
    return s->compact;
}

/* ------------------------------------------------------------------------ */
/* text and Markdown                                                         */

static void print_heading(FILE *out, const struct report *rep, size_t table, bool md)
{
    for (size_t g = 0; g < rep->n_groups; g++)
        if (rep->groups[g].table == table) {
            const struct run_key *k = &rep->groups[g].first->key;

            fprintf(out, "%s%s, model %s: test accuracy, mean %s sd over seeds (n), at the "
                    "setting with the best mean %s\n\n", md ? "### " : "", k->dataset, k->model,
                    md ? "±" : "+-", report_metric_name(rep->metric));
            return;
        }
}

static void print_main(FILE *out, const struct report *rep, size_t table, const struct table *t,
                       bool md)
{
    const char *pm = md ? " ± " : " +- ";
    char buf[160];

    if (md) {
        fprintf(out, "| method | budget | rank | trainable |");
        for (size_t c = 0; c < t->n_cols; c++) {
            col_label(t->cols[c], buf, sizeof(buf));
            fprintf(out, " %s |", buf);
        }
        fprintf(out, "\n|---|---:|---:|---:|");
        for (size_t c = 0; c < t->n_cols; c++)
            fprintf(out, "---:|");
        fputc('\n', out);
    } else {
        fprintf(out, "%-10s %8s %5s %10s", "method", "budget", "rank", "trainable");
        for (size_t c = 0; c < t->n_cols; c++) {
            col_label(t->cols[c], buf, sizeof(buf));
            fprintf(out, "  %-24s", buf);
        }
        fputc('\n', out);
    }
    for (size_t r = 0; r < t->n_rows; r++) {
        const struct run_key *k = t->rows[r];
        bool varies;
        size_t tr = row_value(rep, table, t, k, false, &varies);
        char budget[32], rank[32], trainable[32];

        snprintf(budget, sizeof(budget), k->budget ? "%zu" : "-", k->budget);
        rank_text(rep, table, t, k, rank, sizeof(rank));
        snprintf(trainable, sizeof(trainable), varies ? "varies" : "%zu", tr);
        if (md)
            fprintf(out, "| %s | %s | %s | %s |", k->method, budget, rank, trainable);
        else
            fprintf(out, "%-10s %8s %5s %10s", k->method, budget, rank, trainable);
        for (size_t c = 0; c < t->n_cols; c++) {
            cell_text(cell(rep, table, k, t->cols[c]), pm, buf, sizeof(buf));
            if (md)
                fprintf(out, " %s |", buf);
            else
                fprintf(out, "  %-24s", buf);
        }
        fputc('\n', out);
    }
}

/* the chosen settings with their validation metric and the test interval */
static void print_chosen(FILE *out, const struct report *rep, size_t table,
                         const struct table *t, bool md)
{
    const char *pm = md ? " ± " : " +- ";
    char row[96], col[32], val[96], ci[64];

    if (md)
        fprintf(out, "\n| method | column | chosen setting | %s | test 95%% interval |\n"
                "|---|---|---|---:|---:|\n", report_metric_name(rep->metric));
    else
        fprintf(out, "\nchosen settings (%s on validation; test 95%% t interval for n >= 3)\n"
                "%-18s %-8s %-36s %-24s %s\n", report_metric_name(rep->metric), "method",
                "column", "setting", report_metric_name(rep->metric), "test 95% interval");
    for (size_t r = 0; r < t->n_rows; r++)
        for (size_t c = 0; c < t->n_cols; c++) {
            const struct report_group *g = cell(rep, table, t->rows[r], t->cols[c]);
            const struct report_setting *s = chosen(g);

            if (!g)
                continue;
            row_label(t->rows[r], row, sizeof(row));
            col_label(t->cols[c], col, sizeof(col));
            if (s) {
                stat_text(&s->val, pm, val, sizeof(val));
                interval_text(&s->test, ci, sizeof(ci));
            } else {
                snprintf(val, sizeof(val), "-");
                snprintf(ci, sizeof(ci), "-");
            }
            if (md)
                fprintf(out, "| %s | %s | %s | %s | %s |\n", row, col, choice_setting(g), val, ci);
            else
                fprintf(out, "%-18s %-8s %-36s %-24s %s\n", row, col, choice_setting(g), val, ci);
        }
}

static void print_notes(FILE *out, const struct report *rep, size_t table, bool md)
{
    unsigned all = 0;
    bool any = false;
    char row[96], col[32];

    for (size_t g = 0; g < rep->n_groups; g++) {
        const struct report_group *gr = &rep->groups[g];

        if (gr->table != table || !gr->notes)
            continue;
        all |= gr->marks;
        if (!any)
            fprintf(out, "\nnotes:\n");
        any = true;
        row_label(&gr->first->key, row, sizeof(row));
        col_label(&gr->first->key, col, sizeof(col));
        for (const char *p = gr->notes; *p;) {
            const char *nl = strchr(p, '\n');
            int len = nl ? (int)(nl - p) : (int)strlen(p);

            fprintf(out, "%s%s %s: %.*s\n", md ? "- " : "  ", row, col, len, p);
            p += len + (nl ? 1 : 0);
        }
    }
    if (all & REPORT_MARK_INCOMPLETE)
        fprintf(out, "%s* seeds missing or runs unfinished: the means are over the runs that "
                "completed\n", md ? "- " : "  ");
    if (all & REPORT_MARK_NO_VAL)
        fprintf(out, "%s! settings without a validation metric were left out of the choice\n",
                md ? "- " : "  ");
    if (all & REPORT_MARK_TIE)
        fprintf(out, "%s= the best mean was tied; the tie rule (docs/comparison.md) decided\n",
                md ? "- " : "  ");
}

/* every setting of every group of the table */
static void print_all(FILE *out, const struct report *rep, size_t table, bool md)
{
    const char *pm = md ? " ± " : " +- ";
    char row[96], col[32], val[96], test[96];

    if (md)
        fprintf(out, "\n| method | column | setting | runs | %s | test accuracy | chosen |\n"
                "|---|---|---|---:|---:|---:|---|\n", report_metric_name(rep->metric));
    else
        fprintf(out, "\nevery setting\n%-18s %-8s %-32s %4s %-24s %-24s %s\n", "method",
                "column", "setting", "runs", report_metric_name(rep->metric), "test accuracy",
                "chosen");
    for (size_t g = 0; g < rep->n_groups; g++) {
        const struct report_group *gr = &rep->groups[g];

        if (gr->table != table)
            continue;
        row_label(&gr->first->key, row, sizeof(row));
        col_label(&gr->first->key, col, sizeof(col));
        for (size_t s = 0; s < gr->n_settings; s++) {
            const struct report_setting *st = &gr->settings[s];
            const char *name = *st->compact ? st->compact : "(the only setting)";
            const char *ch = st->chosen ? "yes" : !st->selectable ? "not selectable" : "";

            stat_text(&st->val, pm, val, sizeof(val));
            stat_text(&st->test, pm, test, sizeof(test));
            if (md)
                fprintf(out, "| %s | %s | %s | %zu | %s | %s | %s |\n", row, col, name,
                        st->n_runs, val, test, ch);
            else
                fprintf(out, "%-18s %-8s %-32s %4zu %-24s %-24s %s\n", row, col, name,
                        st->n_runs, val, test, ch);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* TSV                                                                       */

static void tsv_num(FILE *out, double v)
{
    if (isnan(v))
        fputs("\tnan", out);
    else
        fprintf(out, "\t%.17g", v);
}

static void tsv_text(FILE *out, const char *s)
{
    fputc('\t', out);
    for (; s && *s; s++)
        fputc(*s == '\t' ? ' ' : *s == '\n' ? ';' : *s, out);
}

static const char *const choice_name[] = { "chosen", "only", "not_selectable", "unfinished" };

static void print_tsv(FILE *out, const struct report *rep, bool all)
{
    fprintf(out, "dataset\tmodel\tmethod\tbudget\trank\tshots\tfraction\tchoice\tsetting"
            "\ttrainable\truns\t%s_n\t%s_mean\t%s_sd\ttest_n\ttest_mean\ttest_sd\ttest_lo"
            "\ttest_hi\tmarks%s\tnotes\n", report_metric_name(rep->metric),
            report_metric_name(rep->metric), report_metric_name(rep->metric),
            all ? "\tchosen" : "");
    for (size_t g = 0; g < rep->n_groups; g++) {
        const struct report_group *gr = &rep->groups[g];
        const struct run_key *k = &gr->first->key;

        for (size_t s = 0; s < gr->n_settings; s++) {
            const struct report_setting *st = &gr->settings[s];
            const struct report_setting *sel = chosen(gr);
            char marks[8];

            if (!all && s > 0)
                break;
            if (!all)
                st = sel;
            marks_text(gr->marks, marks);
            fprintf(out, "%s\t%s\t%s\t%zu\t%zu\t%zu\t%.17g\t%s", k->dataset, k->model, k->method,
                    k->budget, k->rank, k->shots, k->fraction, choice_name[gr->choice]);
            if (st) {
                tsv_text(out, st->compact);
                fprintf(out, "\t%zu\t%zu\t%zu", st->n_trainable, st->n_runs, st->val.n);
                tsv_num(out, st->val.mean);
                tsv_num(out, st->val.sd);
                fprintf(out, "\t%zu", st->test.n);
                tsv_num(out, st->test.mean);
                tsv_num(out, st->test.sd);
                tsv_num(out, st->test.lo);
                tsv_num(out, st->test.hi);
            } else {
                fprintf(out, "\t\t%zu\t0\t0\tnan\tnan\t0\tnan\tnan\tnan\tnan",
                        gr->settings[0].n_trainable);
            }
            tsv_text(out, marks);
            if (all)
                fprintf(out, "\t%d", st && st->chosen);
            tsv_text(out, gr->notes);
            fputc('\n', out);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* LaTeX                                                                     */

static void tex_text(FILE *out, const char *s)
{
    for (; *s; s++) {
        if (strchr("_&%$#{}", *s))
            fputc('\\', out);
        fputc(*s, out);
    }
}

static void tex_cell(FILE *out, const struct report_group *g)
{
    char marks[8];

    if (!g) {
        fputs(" & --", out);
        return;
    }
    marks_text(g->marks, marks);
    if (g->choice == REPORT_NOT_SELECTABLE)
        fputs(" & n/s", out);
    else if (g->choice == REPORT_NONE_COMPLETE)
        fputs(" & --", out);
    else {
        const struct report_stat *t = &g->settings[g->chosen].test;

        if (t->n >= 2)
            fprintf(out, " & $%.4f \\pm %.4f$", t->mean, t->sd);
        else
            fprintf(out, " & $%.4f$", t->mean);
    }
    if (*marks)
        fprintf(out, "$^{%s}$", marks);
}

/* what the marks and "n/s" of the table mean, as comments */
static void latex_legend(FILE *out, const struct report *rep, size_t table)
{
    unsigned all = 0;
    bool ns = false;

    for (size_t g = 0; g < rep->n_groups; g++)
        if (rep->groups[g].table == table) {
            all |= rep->groups[g].marks;
            ns |= rep->groups[g].choice == REPORT_NOT_SELECTABLE;
        }
    if (all & REPORT_MARK_INCOMPLETE)
        fprintf(out, "%% *: seeds missing or runs unfinished (means over the completed runs)\n");
    if (all & REPORT_MARK_NO_VAL)
        fprintf(out, "%% !: settings without a validation metric left out of the choice\n");
    if (all & REPORT_MARK_TIE)
        fprintf(out, "%% =: a tie on the validation mean, decided by the tie rule\n");
    if (ns)
        fprintf(out, "%% n/s: several settings and no validation split: not selectable\n");
}

static void print_latex(FILE *out, const struct report *rep, size_t table, const struct table *t)
{
    char buf[96];

    fprintf(out, "%% test accuracy, mean \\pm sd over seeds, at the setting with the best mean "
            "%s\n\\begin{tabular}{lrrr", report_metric_name(rep->metric));
    for (size_t c = 0; c < t->n_cols; c++)
        fputc('c', out);
    fprintf(out, "}\n\\hline\nMethod & Budget & Rank & Trainable");
    for (size_t c = 0; c < t->n_cols; c++) {
        col_label(t->cols[c], buf, sizeof(buf));
        fprintf(out, " & %s", buf);
    }
    fprintf(out, " \\\\\n\\hline\n");
    for (size_t r = 0; r < t->n_rows; r++) {
        const struct run_key *k = t->rows[r];
        bool varies;
        size_t tr = row_value(rep, table, t, k, false, &varies);
        char rank[32];

        rank_text(rep, table, t, k, rank, sizeof(rank));
        tex_text(out, k->method);
        fprintf(out, k->budget ? " & %zu" : " & --", k->budget);
        fprintf(out, " & %s", strcmp(rank, "-") ? rank : "--");
        fprintf(out, varies ? " & varies" : " & %zu", tr);
        for (size_t c = 0; c < t->n_cols; c++)
            tex_cell(out, cell(rep, table, k, t->cols[c]));
        fprintf(out, " \\\\\n");
    }
    fprintf(out, "\\hline\n\\end{tabular}\n");
    latex_legend(out, rep, table);
    /* the chosen settings, as comments the source keeps */
    for (size_t r = 0; r < t->n_rows; r++)
        for (size_t c = 0; c < t->n_cols; c++) {
            const struct report_group *g = cell(rep, table, t->rows[r], t->cols[c]);

            if (!g)
                continue;
            row_label(t->rows[r], buf, sizeof(buf));
            fprintf(out, "%% %s ", buf);
            col_label(t->cols[c], buf, sizeof(buf));
            fprintf(out, "%s: %s\n", buf, choice_setting(g));
        }
}

/* ------------------------------------------------------------------------ */

void report_print(FILE *out, const struct report *rep, enum report_format fmt, bool all)
{
    if (fmt == REPORT_TSV) {
        print_tsv(out, rep, all);
        return;
    }
    if (!rep->n_groups) {
        fprintf(out, "no runs to report\n");
        return;
    }
    for (size_t table = 0; table < rep->n_tables; table++) {
        struct table t;

        table_make(&t, rep, table);
        if (table)
            fputc('\n', out);
        if (fmt == REPORT_LATEX) {
            print_latex(out, rep, table, &t);
        } else {
            bool md = fmt == REPORT_MD;

            print_heading(out, rep, table, md);
            print_main(out, rep, table, &t, md);
            print_chosen(out, rep, table, &t, md);
            print_notes(out, rep, table, md);
            if (all)
                print_all(out, rep, table, md);
        }
        table_free(&t);
    }
}
