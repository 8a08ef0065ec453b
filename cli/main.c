/*
 * main.c: the randlora command: subcommand dispatch.
 *
 * Each subcommand is a function taking the arguments after its name and
 * returning a process exit status: 0 success, 2 bad usage or bad input
 * (one clear line on stderr), 1 any other failure.
 */
#include <stdio.h>
#include <string.h>

#include "core/dist.h"
#include "core/threads.h"
#include "cli/commands.h"

struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
};

static const struct command commands[] = {
    { "demo",    cmd_demo,    "train a small transformer classifier and print its loss curve" },
    { "threads", cmd_threads, "print the thread policy (OpenBLAS and OpenMP counts)" },
    { "info",    cmd_info,    "what a results file, safetensors file or model directory holds" },
    { "params",  cmd_params,  "trainable-parameter counts and budget matching for a method" },
    { "pretrain", cmd_pretrain, "pretrain clip-tiny contrastively on the shapes corpus (cached)" },
    { "train",   cmd_train,   "one fine-tuning run of an experiment file into an HDF5 results file" },
    { "encode",  cmd_encode,  "image or caption embeddings from a model directory into an HDF5 file" },
    { "score",   cmd_score,   "per-token log-probabilities of token sequences under a Llama-family decoder, into an HDF5 file" },
    { "merge",   cmd_merge,   "merge a peft-format adapter into a model and save a full model directory" },
    { "analyze", cmd_analyze, "spectra, ranks and norms of each update (and CKA to a reference run), into the run files" },
    { "plot",    cmd_plot,    "figures (PNG + SVG with .gp and .tsv) from a directory of run files" },
    { "landscape", cmd_landscape, "the training loss on the plane of three runs' task vectors, and the barriers between them" },
    { "export",  cmd_export,  "a run's trained adapter in peft's format (adapter_model.safetensors + config)" },
    { "sweep",   cmd_sweep,   "the whole grid of an experiment file (--jobs, --shard, --resume) and summary.tsv" },
    { "report",  cmd_report,  "the comparison table: each method's setting chosen on validation, test accuracy over seeds" },
    { "bench",   cmd_bench,   "time full training steps on random weights: images/s, FLOP rate, GEMM share, peak RSS" },
    { "commonsense", cmd_commonsense, "commonsense-reasoning data: check files, write the procedural task or corpus" },
    { "tokenize", cmd_tokenize, "a tokenizer.json (byte-level BPE) on the lines of a file: text to ids or ids to text" },
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: randlora COMMAND [ARGS...]\n"
            "\n"
            "Fine-tune CLIP-style encoders with LoRA, VeRA, RandLoRA or full fine-tuning.\n"
            "\n"
            "commands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out,
            "\n"
            "randlora COMMAND --help describes one command.\n"
            "Exit status: 0 success, 2 bad usage or bad input, 1 other failure.\n");
}

/* the command argv[1] names, its exit status */
static int dispatch(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    /* under an MPI launcher with several ranks only `train` (data-parallel)
     * and `sweep` (whole runs per rank) divide their work (docs/cluster.md);
     * any other command would run K times over */
    if (dist_size() > 1 && strcmp(argv[1], "train") && strcmp(argv[1], "sweep")) {
        if (dist_rank() == 0)
            fprintf(stderr, "randlora: %s does not run on %d MPI ranks; only train and sweep do "
                    "(start it without mpirun, or on one rank)\n", argv[1], dist_size());
        return 2;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "randlora: unknown command '%s' (see randlora --help)\n", argv[1]);
    return 2;
}

int main(int argc, char **argv)
{
    int status;

    threads_exec_wait_policy(argv);             /* may exec: before MPI starts */
    dist_init(&argc, &argv);
    status = dispatch(argc, argv);
    dist_finalize();
    return status;
}
