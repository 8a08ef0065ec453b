/*
 * cmd_export.c: `randlora export RUN.h5 -o OUT_DIR [--force]`: a finished run's trained
 * adapter as a peft adapter directory (methods/adapter_io.h):
 * OUT_DIR/adapter_model.safetensors and OUT_DIR/adapter_config.json, the
 * shared frozen tensors included (save_projection). The adapters are rebuilt
 * from the run file (results/run_adapters.h). base_model_name_or_path is
 * what a user can load the base model from (export_base_model): the
 * checkpoint's own hub name when its config.json records one
 * ("_name_or_path", as transformers' save_pretrained writes it, when that
 * is a hub id "owner/name" and not a local path), else the model
 * directory's absolute path; never a preset name alone ("clip-tiny" names
 * nothing peft can find).
 *
 * OUT_DIR must be missing or empty unless --force (cli_output_dir_ok).
 *
 * Exit status: 0 written (or nothing to export for `none`), 2 bad usage, a
 * non-empty OUT_DIR without --force, or a bad or unfinished run file, 1
 * other failures.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/alloc.h"
#include "core/read_file.h"
#include "core/status.h"
#include "experiments/runner.h"
#include "cli/cli.h"
#include "cli/commands.h"
#include "methods/adapter_io.h"
#include "results/run_adapters.h"
#include "results/store.h"

static void export_usage(FILE *out)
{
    fprintf(out,
            "usage: randlora export RUN.h5 -o OUT_DIR [--force]\n"
            "\n"
            "Write the run's trained adapter in Hugging Face peft's format:\n"
            "OUT_DIR/" ADAPTER_IO_WEIGHTS_NAME " and OUT_DIR/" ADAPTER_IO_CONFIG_NAME "\n"
            "(peft key names; the shared frozen bases are saved too). OUT_DIR is created\n"
            "(one level) when missing; one that holds anything is refused unless --force\n"
            "(then the two files are replaced, other files left as they are).\n");
}

/* one usage error line (cli.h), exit status 2 */
#define bad(...) cli_bad("export", true, __VA_ARGS__)

/* a hub id: "owner/name", one slash, neither part empty, no path syntax */
static bool is_hub_id(const char *s)
{
    const char *slash = strchr(s, '/');

    return slash && slash != s && slash[1] && !strchr(slash + 1, '/') && s[0] != '.' && s[0] != '~' &&
           !strstr(s, "..") && strlen(s) < 256;
}

/* base_model_name_or_path for the run's model (above), malloc'd; *note
 * says where it came from */
static char *export_base_model(const struct run_plan *p, const char **note)
{
    const char *dir = runner_model_dir(&p->model);
    char path[PATH_MAX + 16], real[PATH_MAX], *text = NULL, *out = NULL;
    size_t len;

    snprintf(path, sizeof path, "%s/config.json", dir);
    if (rl_read_file(path, (size_t)1 << 24, &text, &len) == RL_OK) {
        cJSON *o = cJSON_ParseWithLength(text, len);
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(o, "_name_or_path");

        if (cJSON_IsString(n) && is_hub_id(n->valuestring)) {
            out = xstrdup(n->valuestring);
            *note = "the checkpoint's name in its config.json";
        }
        cJSON_Delete(o);
        free(text);
    }
    rl_error_clear();
    if (!out && realpath(dir, real)) {
        out = xstrdup(real);
        *note = "the model directory";
    }
    if (!out) {                  /* the directory is gone: its path, absolute */
        char cwd[PATH_MAX];

        if (dir[0] != '/' && getcwd(cwd, sizeof cwd)) {
            size_t n = strlen(cwd) + strlen(dir) + 2;

            out = xmalloc(n);
            snprintf(out, n, "%s/%s", cwd, dir);
        } else {
            out = xstrdup(dir);
        }
        *note = "the model directory's recorded path (not found now)";
    }
    return out;
}

int cmd_export(int argc, char **argv)
{
    const char *run = NULL, *out = NULL;
    bool force = false;
    struct store *s = NULL;
    struct run_adapters ra;
    struct adapter_io_module *mods = NULL;
    char *base = NULL;
    int rc;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            export_usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "-o") || !strcmp(argv[i], "--output")) {
            if (i + 1 >= argc)
                return bad("%s needs a directory", argv[i]);
            out = argv[++i];
        } else if (!strcmp(argv[i], "--force")) {
            force = true;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return bad("unknown option '%s'", argv[i]);
        } else if (run) {
            return bad("one run file at a time ('%s' and '%s' given)", run, argv[i]);
        } else {
            run = argv[i];
        }
    }
    if (!run)
        return bad("no run file given");
    if (!out || !*out)
        return bad("no output directory given (-o OUT_DIR)");
    if (cli_output_dir_ok("export", out, force))
        return 2;

    memset(&ra, 0, sizeof ra);
    if ((rc = store_open(&s, run)) || (rc = run_adapters_load(&ra, s)))
        goto done;
    if (ra.shared_loaded && ra.shared_max_diff > 0)
        fprintf(stderr,
                "randlora export: warning: %s: /adapter/shared differs from what the config's seed regenerates "
                "(max |diff| %.3g); the stored tensors are exported\n",
                run, ra.shared_max_diff);
    if (ra.n_sites == 0) {
        printf("%s: method %s has no adapted layers; nothing to export\n", run, ra.method);
        goto done;
    }
    mods = xcalloc(ra.n_sites, sizeof(*mods));
    for (size_t i = 0; i < ra.n_sites; i++) {
        mods[i].path = ra.sites[i].name;
        mods[i].adapter = &ra.sites[i].adapter;
    }
    const char *note = "";
    base = export_base_model(ra.plan, &note);
    struct adapter_io_files files = { .dir = out, .base_model = base };
    if ((rc = adapter_io_export(&files, &ra.m, mods, ra.n_sites)))
        goto done;
    printf("%s: %s adapter, %zu layers -> %s/" ADAPTER_IO_WEIGHTS_NAME ", %s/" ADAPTER_IO_CONFIG_NAME "\n", run,
           ra.method, ra.n_sites, out, out);
    printf("  base_model_name_or_path: %s (%s)\n", base, note);
done:
    if (rc)
        fprintf(stderr, "randlora export: %s\n", rl_error_msg());
    free(mods);
    free(base);
    run_adapters_free(&ra);
    store_close(s);
    return rl_exit_code(rc);
}
