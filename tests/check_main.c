/*
 * check_main.c: the test runner behind `make check`.
 *
 * Runs every suite in suites.h, prints Check's summary line, and exits
 * non-zero when any test failed. CK_RUN_SUITE / CK_RUN_CASE select a part;
 * CK_FORK=no runs in-process (for gdb and valgrind).
 */
#include <stdlib.h>

#include "core/threads.h"
#include "suites.h"

int main(int argc, char **argv)
{
    Suite *(*const suites[])(void) = {
        suite_core,
        suite_validators,
        suite_nn,
        suite_attention,
        suite_loss,
        suite_optim,
        suite_block,
        suite_block_pooled,
        suite_adapters,
        suite_safetensors,
        suite_datasets,
        suite_tokenizer,
        suite_loader,
        suite_analysis,
        suite_clip,
        suite_clip_paths,
        suite_clip_recompute,
        suite_adapter_io,
        suite_config,
        suite_val_split,
        suite_store,
        suite_store_val,
        suite_encode,
        suite_runner,
        suite_runner_val,
        suite_overwrite,
        suite_analyze,
        suite_sweep,
        suite_run_group,
        suite_report,
        suite_report_files,
        suite_sweep_summary,
        suite_bench,
        suite_gemm_bf16,
        suite_clip_bf16,
    };
    SRunner *sr = srunner_create(NULL);
    int n_failed;

    (void)argc;
    threads_exec_wait_policy(argv);
    /* tests run on few threads so timings of the suite are stable */
    threads_init(getenv("RANDLORA_THREADS") ? 0 : 2);
    for (size_t i = 0; i < sizeof(suites) / sizeof(suites[0]); i++)
        srunner_add_suite(sr, suites[i]());
    srunner_run_all(sr, CK_NORMAL);
    n_failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return n_failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
