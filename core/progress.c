/*
 * progress.c: a self-redrawing progress line on terminals, plain lines otherwise.
 */
#include "core/progress.h"

#include <stdio.h>
#include <unistd.h>

#include "core/timer.h"

void progress_init(struct progress *p, const char *label, size_t total, FILE *out)
{
    p->label = label;
    p->total = total;
    p->out = out;
    p->is_tty = isatty(fileno(out));
    p->t_start = timer_now();
    p->t_last = p->t_start;
    p->plain_every_s = 10.0;
    p->last_step = 0;
    p->line[0] = '\0';
}

/* h:mm:ss, or m:ss under an hour */
static void format_duration(char *buf, size_t len, double s)
{
    long t = s > 0 ? (long)(s + 0.5) : 0;

    if (t >= 3600)
        snprintf(buf, len, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, len, "%ld:%02ld", t / 60, t % 60);
}

const char *progress_format(struct progress *p, size_t step, double loss, double lr,
                            double items_per_s, double now)
{
    char eta[32] = "";
    int n;
    size_t len = sizeof(p->line);

    if (p->total)
        n = snprintf(p->line, len, "%s step %zu/%zu", p->label, step, p->total);
    else
        n = snprintf(p->line, len, "%s step %zu", p->label, step);
    if (loss >= 0 && n >= 0 && (size_t)n < len)
        n += snprintf(p->line + n, len - (size_t)n, " loss %.4f", loss);
    if (lr >= 0 && n >= 0 && (size_t)n < len)
        n += snprintf(p->line + n, len - (size_t)n, " lr %.3g", lr);
    if (items_per_s >= 0 && n >= 0 && (size_t)n < len)
        n += snprintf(p->line + n, len - (size_t)n, " %.1f img/s", items_per_s);
    if (p->total && step > 0 && step <= p->total && n >= 0 && (size_t)n < len) {
        double per_step = (now - p->t_start) / (double)step;
        format_duration(eta, sizeof(eta), per_step * (double)(p->total - step));
        snprintf(p->line + n, len - (size_t)n, " ETA %s", eta);
    }
    return p->line;
}

void progress_update(struct progress *p, size_t step, double loss, double lr, double items_per_s)
{
    double now = timer_now();
    double every = p->is_tty ? 0.1 : p->plain_every_s;

    p->last_step = step;
    if (now - p->t_last < every && step != p->total)
        return;
    p->t_last = now;
    progress_format(p, step, loss, lr, items_per_s, now);
    if (p->is_tty)
        fprintf(p->out, "\r\033[K%s", p->line);
    else
        fprintf(p->out, "%s\n", p->line);
    fflush(p->out);
}

void progress_finish(struct progress *p)
{
    char took[32];

    format_duration(took, sizeof(took), timer_now() - p->t_start);
    if (p->is_tty)
        fprintf(p->out, "\r\033[K%s (%s)\n", p->line, took);
    else
        fprintf(p->out, "%s done: %zu steps in %s\n", p->label, p->last_step, took);
    fflush(p->out);
}
