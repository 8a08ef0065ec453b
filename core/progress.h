/*
 * progress.h: a progress line for long work.
 *
 * On a terminal the line redraws itself in place (at most ten times a
 * second); otherwise (a log file, CI) it prints a plain line every
 * `plain_every_s` seconds and at the end, so logs stay readable.
 *
 *     struct progress p;
 *     progress_init(&p, "train", n_steps, stderr);
 *     for (size_t step = 1; step <= n_steps; step++) {
 *         ...
 *         progress_update(&p, step, loss, lr, images_per_s);
 *     }
 *     progress_finish(&p);
 */
#ifndef RANDLORA_CORE_PROGRESS_H
#define RANDLORA_CORE_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

struct progress {
    const char *label;      /* borrowed; must outlive the progress line */
    size_t      total;      /* steps in all (0: unknown, no ETA)        */
    FILE       *out;
    bool        is_tty;
    double      t_start;
    double      t_last;     /* time of the last line drawn              */
    double      plain_every_s;
    size_t      last_step;
    char        line[160];  /* the line last formatted                  */
};

void progress_init(struct progress *p, const char *label, size_t total, FILE *out);
/* Draw if due. loss / lr / items_per_s < 0 are left out of the line. */
void progress_update(struct progress *p, size_t step, double loss, double lr, double items_per_s);
/* Draw the final state and end the line. */
void progress_finish(struct progress *p);
/* Format the current line into p->line without printing (used by tests). */
const char *progress_format(struct progress *p, size_t step, double loss, double lr,
                            double items_per_s, double now);

#endif /* RANDLORA_CORE_PROGRESS_H */
