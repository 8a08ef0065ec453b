/*
 * cmd_pretrain.c: `randlora pretrain -c FILE [-s section.key=value ...]`:
 * contrastive pretraining of the experiment's [model] (clip-tiny on the
 * shapes corpus) into its pretrain_dir (experiments/pretrain.h). Cached: a
 * complete directory with the same settings is reported and skipped. After
 * training it prints the held-out figures: image->text retrieval and
 * zero-shot accuracy on the shapes classification tasks. A DINOv2-layout
 * preset (vit-tiny) is pretrained by supervised classification on shapes
 * instead (experiments/pretrain_vit.h): held-out loss and accuracy.
 * Exit status 0, 2 for bad usage or bad input (one line), 1 otherwise.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/status.h"
#include "core/threads.h"
#include "cli/cli.h"
#include "cli/commands.h"
#include "experiments/config.h"
#include "experiments/pretrain.h"
#include "experiments/pretrain_lm.h"
#include "experiments/pretrain_vit.h"
#include "models/dinov2.h"
#include "models/llama.h"
#include "experiments/runner.h"

#define MAX_OVERRIDES 256

static void pretrain_usage(FILE *out)
{
    fprintf(out,
            "usage: randlora pretrain -c FILE [-s section.key=value ...] [-q]\n"
            "\n"
            "Pretrain the experiment's model (a byte-level preset: clip-tiny, or the\n"
            "decoder llama-tiny by next-token prediction on the procedural corpus of the\n"
            "commonsense task, experiments/pretrain_lm.h) from scratch\n"
            "with the contrastive loss on [model] pretrain_data (shapes), and write it as a\n"
            "Hugging Face-style directory (config.json, model.safetensors,\n"
            "tokenizer_bytes.json, pretrain.json) at [model] pretrain_dir. A DINOv2-layout\n"
            "preset (vit-tiny) learns to classify pretrain_data (shapes: the kind of the\n"
            "first shape) with a temporary linear head, discarded (pretrain_vit.h);\n"
            "model.pretrain_steps = 0 writes its random init untrained. A directory\n"
            "already pretrained with the same settings is kept (the command says so).\n"
            "\n"
            "  -c FILE      the experiment file (INI); its [model] section is used\n"
            "  -s S.K=V     override a key (repeatable), e.g. -s model.pretrain_steps=100\n"
            "  -q           no progress line\n");
}

/* one usage error line (cli.h), exit status 2 */
#define bad(...) cli_bad("pretrain", false, __VA_ARGS__)

/* zero-shot on the shapes tasks: what the pretrained text tower knows */
static void report_zeroshot(const struct exp_model *model)
{
    static const char *const kind_templates[] = { "a {}", "a small {}", "a large {}" };
    static const char *const count_templates[] = { "{}", "a scene with {}" };
    struct clip_model m;
    struct tokenizer *tok = NULL;
    double a1 = 0, a2 = 0;

    if (runner_load_model(&m, model) != RL_OK ||
        runner_load_tokenizer(&tok, model->pretrain_dir, &m.cfg) != RL_OK ||
        pretrain_zeroshot(&m, tok, "shapes:test", kind_templates, 3, 2000, &a1) != RL_OK ||
        pretrain_zeroshot(&m, tok, "shapes-count:test", count_templates, 2, 2000, &a2) != RL_OK)
        fprintf(stderr, "randlora pretrain: zero-shot check: %s\n", rl_error_msg());
    else
        printf("zero-shot on 2000 held-out items: shapes (kind of the first shape) %.3f "
               "(chance 0.250), shapes-count %.3f (chance 0.333)\n", a1, a2);
    tok_free(tok);
    clip_model_free(&m);
}

int cmd_pretrain(int argc, char **argv)
{
    const char *file = NULL;
    const char *ov[MAX_OVERRIDES];
    size_t n_ov = 0;
    bool quiet = false;
    struct experiment e;
    struct pretrain_options o = { .verbosity = 1 };
    struct pretrain_result r;
    int rc;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];

        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            pretrain_usage(stdout);
            return 0;
        }
        if (!strcmp(a, "-q")) {
            quiet = true;
            continue;
        }
        if (strcmp(a, "-c") && strcmp(a, "-s"))
            return bad("unknown option '%s' (see randlora pretrain --help)", a);
        if (i + 1 >= argc)
            return bad("%s needs a value", a);
        if (!strcmp(a, "-c"))
            file = argv[++i];
        else if (n_ov == MAX_OVERRIDES)
            return bad("at most %d -s overrides", MAX_OVERRIDES);
        else
            ov[n_ov++] = argv[++i];
    }
    if (!file)
        return bad("-c FILE is required (see randlora pretrain --help)");

    threads_init(0);
    if ((rc = experiment_load(&e, file, ov, n_ov)) != RL_OK) {
        fprintf(stderr, "randlora pretrain: %s\n", rl_error_msg());
        return rl_exit_code(rc);
    }
    o.verbosity = quiet ? 0 : 1;
    o.log = stderr;
    if (e.model.preset && dinov2_is_preset(e.model.name)) {
        struct pretrain_vit_options vo = { .verbosity = o.verbosity, .log = stderr };
        struct pretrain_vit_result vr;

        rc = pretrain_vit_run(&e.model, &vo, &vr);
        if (rc != RL_OK)
            fprintf(stderr, "randlora pretrain: %s\n", rl_error_msg());
        else if (vr.skipped)
            printf("%s: cached (%s)\n", e.model.name, e.model.pretrain_dir);
        else if (vr.steps == 0)
            printf("%s: random init (model.pretrain_steps = 0), not trained -> %s\n",
                   e.model.name, e.model.pretrain_dir);
        else
            printf("%s: %zu steps, %.1f s, final loss %.4f; held-out %s (%zu items): loss "
                   "%.4f (init %.4f), accuracy %.3f (chance %.3f) -> %s\n", e.model.name,
                   vr.steps, vr.seconds, vr.final_loss, e.model.pretrain_data,
                   vr.heldout_items, vr.heldout_loss, vr.init_heldout_loss, vr.heldout_acc,
                   1.0 / (double)vr.classes, e.model.pretrain_dir);
        experiment_free(&e);
        return rc == RL_OK ? 0 : rl_exit_code(rc);
    }
    if (e.model.pretrain_steps == 0) {
        fprintf(stderr, "randlora pretrain: model.pretrain_steps = 0 (the random init, "
                "untrained) is for a DINOv2-layout preset (vit-tiny) only; %s needs > 0\n",
                e.model.name);
        experiment_free(&e);
        return 2;
    }
    if (llama_is_preset(e.model.name)) {
        /* a decoder preset: next-token pretraining (experiments/pretrain_lm.h) */
        struct pretrain_lm_result lr;

        rc = pretrain_lm_run(&e.model, o.verbosity, stderr, &lr);
        if (rc != RL_OK)
            fprintf(stderr, "randlora pretrain: %s\n", rl_error_msg());
        else if (lr.skipped)
            printf("%s: cached (%s)\n", e.model.name, e.model.pretrain_dir);
        else
            printf("%s: %zu steps, %.1f s, final loss %.4f, held-out corpus loss %.4f "
                   "(per byte; uniform: %.4f) -> %s\n", e.model.name, lr.steps, lr.seconds,
                   lr.final_loss, lr.heldout_loss, log(258.0), e.model.pretrain_dir);
        experiment_free(&e);
        return rc == RL_OK ? 0 : rl_exit_code(rc);
    }
    rc = pretrain_run(&e.model, &o, &r);
    if (rc != RL_OK) {
        fprintf(stderr, "randlora pretrain: %s\n", rl_error_msg());
        experiment_free(&e);
        return rl_exit_code(rc);
    }
    if (r.skipped && e.model.preset)
        printf("%s: cached (%s)\n", e.model.name, e.model.pretrain_dir);
    else if (!r.skipped) {
        printf("%s: %zu steps, %.1f s, final loss %.4f, held-out image->text top-1 %.3f among "
               "%zu -> %s\n", e.model.name, r.steps, r.seconds, r.final_loss, r.retrieval_acc,
               r.retrieval_group, e.model.pretrain_dir);
        report_zeroshot(&e.model);
    }
    experiment_free(&e);
    return 0;
}
