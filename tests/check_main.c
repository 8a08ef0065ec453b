/*
 * check_main.c: the test runner behind `make check`.
 *
 * Runs every suite in suites.h, prints Check's summary line, and exits
 * non-zero when any test failed. CK_RUN_SUITE / CK_RUN_CASE select a part;
 * CK_FORK=no runs in-process (for gdb and valgrind), on one thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/threads.h"
#include "suites.h"

int main(int argc, char **argv)
{
    Suite *(*const suites[])(void) = {
        suite_core,
        suite_validators,
        suite_nn,
        suite_nn_embed,
        suite_attention,
        suite_loss,
        suite_optim,
        suite_block,
        suite_block_pooled,
        suite_adapters,
        suite_adapter_counts,
        suite_adapter_methods,
        suite_nola,
        suite_safetensors,
        suite_datasets,
        suite_images,
        suite_tokenizer,
        suite_bpe_tokenizer,
        suite_bpe_hostile,
        suite_commonsense,
        suite_commonsense_synth,
        suite_tokenize_cmd,
        suite_commonsense_cmd,
        suite_loader,
        suite_analysis,
        suite_plot_writer,
        suite_clip,
        suite_clip_model,
        suite_dinov2,
        suite_dinov2_grads,
        suite_pretrain_vit,
        suite_clip_paths,
        suite_clip_recompute,
        suite_inproj,
        suite_openclip,
        suite_adapter_io,
        suite_adapter_io_hostile,
        suite_adapter_io_head,
        suite_init_head,
        suite_config,
        suite_config_grid,
        suite_config_axes,
        suite_config_store,
        suite_val_split,
        suite_store,
        suite_store_hostile,
        suite_store_heap,
        suite_store_val,
        suite_encode,
        suite_model_cmds,
        suite_runner,
        suite_runner_val,
        suite_train_head,
        suite_overwrite,
        suite_analyze,
        suite_analyze_cka,
        suite_landscape,
        suite_adapter_io_layout,
        suite_init_adapter,
        suite_plot,
        suite_sweep,
        suite_dry_run,
        suite_run_group,
        suite_report,
        suite_report_files,
        suite_sweep_summary,
        suite_bench,
        suite_docs,
        suite_commit,
        suite_stop,
        suite_limits,
        suite_refusals,
        suite_gemm_bf16,
        suite_gemm_f32,
        suite_bf16_isa,
        suite_bf16_branches,
        suite_clip_bf16,
        suite_bf16_acts,
        suite_bf16_memory,
        suite_run_precision,
        suite_dist,
        suite_llama_nn,
        suite_llama_model,
        suite_llama_cmds,
        suite_train_lm,
        suite_lm_merge,
        suite_dist_sweep,
        suite_protocol,
        suite_paper_ini,
        suite_inbatch,
        suite_zhou,
    };
    SRunner *sr = srunner_create(NULL);
    int n_failed;

    (void)argc;
    threads_exec_wait_policy(argv);
    /* CK_FORK=no (for gdb and valgrind) runs every test in this process,
     * and a child forked after OpenMP's pool has started (the tests'
     * children, a sweep's runs) hangs in its first parallel region: one
     * thread then, here and in every child (RANDLORA_THREADS) */
    if (getenv("CK_FORK") && !strcmp(getenv("CK_FORK"), "no")) {
        setenv("RANDLORA_THREADS", "1", 1);
        fprintf(stderr, "check_main: CK_FORK=no: every test in this process, on one thread\n");
    }
    /* tests run on few threads so timings of the suite are stable */
    threads_init(getenv("RANDLORA_THREADS") ? 0 : 2);
    for (size_t i = 0; i < sizeof(suites) / sizeof(suites[0]); i++)
        srunner_add_suite(sr, suites[i]());
    srunner_run_all(sr, CK_NORMAL);
    n_failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return n_failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
