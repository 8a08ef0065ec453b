/*
 * plot_render.c: running gnuplot on a figure's script, and plot_write (the
 * files, then the rendering), for results/plot.h. gnuplot is found on $PATH
 * (or named by $RANDLORA_GNUPLOT) and run without a shell, in the script's
 * directory, its stderr captured for the message.
 */
#define _GNU_SOURCE   /* posix_spawn_file_actions_addchdir_np (glibc >= 2.29) */

#include "results/plot.h"

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/status.h"
#include "results/plot_impl.h"

extern char **environ;

/* ------------------------------------------------------------------------ */
/* running gnuplot                                                           */

static int is_exec_file(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

/* gnuplot's path into a malloc'd string, or NULL (and *want names it) */
static char *find_gnuplot(const char **want)
{
    const char *env = getenv("RANDLORA_GNUPLOT");
    const char *name = env && *env ? env : "gnuplot";
    const char *path = getenv("PATH");

    *want = name;
    if (strchr(name, '/'))
        return is_exec_file(name) ? xstrdup(name) : NULL;
    if (!path)
        path = "/usr/local/bin:/usr/bin:/bin";
    for (const char *p = path;;) {
        const char *end = strchr(p, ':');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        size_t cap = len + strlen(name) + 3;
        char *cand = xmalloc(cap);

        snprintf(cand, cap, "%.*s/%s", len ? (int)len : 1, len ? p : ".", name);
        if (is_exec_file(cand))
            return cand;
        free(cand);
        if (!end)
            break;
        p = end + 1;
    }
    return NULL;
}

/* the captured stderr as one line: newlines become " | " */
static void one_line(char *s)
{
    size_t n = strlen(s);

    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' ' || s[n - 1] == '\r'))
        s[--n] = '\0';
    for (char *c = s; *c; c++)
        if (*c == '\n' || *c == '\r' || *c == '\t')
            *c = ' ';
}

int plot_render(const char *gp_path)
{
    const char *want;
    char *exe, *dir, *base, errbuf[1024];
    size_t errlen = 0;
    int pfd[2], rc, status, spawn_err;
    posix_spawn_file_actions_t fa;
    pid_t pid;
    const char *slash;

    if (!gp_path || !*gp_path)
        return rl_error_set(RL_ERR_ARG, "plot: no script to render");
    exe = find_gnuplot(&want);
    if (!exe)
        return rl_error_set(RL_ERR_NA, "plot: gnuplot ('%s') not found; %s written but not "
                            "rendered", want, gp_path);

    slash = strrchr(gp_path, '/');
    if (slash) {
        size_t dl = slash == gp_path ? 1 : (size_t)(slash - gp_path);

        dir = xmalloc(dl + 1);
        memcpy(dir, gp_path, dl);
        dir[dl] = '\0';
        base = xstrdup(slash + 1);
    } else {
        dir = xstrdup(".");
        base = xstrdup(gp_path);
    }

    if (pipe2(pfd, O_CLOEXEC) != 0) {
        rc = rl_error_set(RL_ERR, "plot: pipe: %s", strerror(errno));
        goto out;
    }
    posix_spawn_file_actions_init(&fa);
    spawn_err = posix_spawn_file_actions_addchdir_np(&fa, dir);
    if (!spawn_err)
        spawn_err = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    if (!spawn_err)
        spawn_err = posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    if (!spawn_err)
        spawn_err = posix_spawn_file_actions_adddup2(&fa, pfd[1], 2);
    if (!spawn_err) {
        char arg0[] = "gnuplot";
        char *argv[] = {arg0, base, NULL};

        spawn_err = posix_spawn(&pid, exe, &fa, NULL, argv, environ);
    }
    posix_spawn_file_actions_destroy(&fa);
    close(pfd[1]);
    if (spawn_err != 0) {
        close(pfd[0]);
        rc = rl_error_set(RL_ERR, "plot: cannot run %s on %s (in %s): %s", exe, base, dir,
                          strerror(spawn_err));
        goto out;
    }

    /* keep the start of stderr: gnuplot's first error names the line */
    for (;;) {
        char chunk[512];
        ssize_t got = read(pfd[0], chunk, sizeof(chunk));

        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        if (errlen < sizeof(errbuf) - 1) {
            size_t take = (size_t)got;

            if (take > sizeof(errbuf) - 1 - errlen)
                take = sizeof(errbuf) - 1 - errlen;
            memcpy(errbuf + errlen, chunk, take);
            errlen += take;
        }
    }
    errbuf[errlen] = '\0';
    close(pfd[0]);
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            rc = rl_error_set(RL_ERR, "plot: waiting for gnuplot: %s", strerror(errno));
            goto out;
        }
    }
    one_line(errbuf);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        rc = RL_OK;
    else if (WIFEXITED(status))
        rc = rl_error_set(RL_ERR, "plot: gnuplot failed (exit %d) on %s: %s",
                          WEXITSTATUS(status), gp_path, errlen ? errbuf : "(no message)");
    else
        rc = rl_error_set(RL_ERR, "plot: gnuplot killed by signal %d on %s: %s",
                          WIFSIGNALED(status) ? WTERMSIG(status) : -1, gp_path,
                          errlen ? errbuf : "(no message)");
out:
    free(exe);
    free(dir);
    free(base);
    return rc;
}

static int nonempty_file(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0;
}

int plot_write(const struct plot_figure *fig)
{
    char *gp, *png, *svg;
    int rc = plot_write_files(fig);

    if (rc != RL_OK)
        return rc;
    gp = plot_path_with(fig->stem, ".gp");
    png = plot_path_with(fig->stem, ".png");
    svg = plot_path_with(fig->stem, ".svg");
    /* no stale figure survives a failed render */
    remove(png);
    remove(svg);
    rc = plot_render(gp);
    if (rc == RL_OK && (!nonempty_file(png) || !nonempty_file(svg)))
        rc = rl_error_set(RL_ERR, "plot: gnuplot ran on %s but %s or %s is missing or empty",
                          gp, png, svg);
    free(gp);
    free(png);
    free(svg);
    return rc;
}
