/*
 * suites.h: one Check suite per area; check_main.c runs them all.
 * Run one with CK_RUN_SUITE=name (and one case with CK_RUN_CASE=name).
 */
#ifndef RANDLORA_TESTS_SUITES_H
#define RANDLORA_TESTS_SUITES_H

#include <check.h>

Suite *suite_core(void);
Suite *suite_validators(void);
Suite *suite_nn(void);
Suite *suite_nn_embed(void);
Suite *suite_attention(void);
Suite *suite_loss(void);
Suite *suite_optim(void);
Suite *suite_block(void);
Suite *suite_block_pooled(void);
Suite *suite_adapters(void);
Suite *suite_adapter_counts(void);
Suite *suite_adapter_methods(void);
Suite *suite_nola(void);
Suite *suite_safetensors(void);
Suite *suite_datasets(void);
Suite *suite_images(void);
Suite *suite_tokenizer(void);
Suite *suite_bpe_tokenizer(void);
Suite *suite_bpe_hostile(void);
Suite *suite_commonsense(void);
Suite *suite_commonsense_synth(void);
Suite *suite_tokenize_cmd(void);
Suite *suite_commonsense_cmd(void);
Suite *suite_loader(void);
Suite *suite_analysis(void);
Suite *suite_plot_writer(void);
Suite *suite_clip(void);
Suite *suite_dinov2(void);
Suite *suite_train_head(void);
Suite *suite_clip_model(void);
Suite *suite_clip_paths(void);
Suite *suite_inproj(void);
Suite *suite_openclip(void);
Suite *suite_clip_recompute(void);
Suite *suite_adapter_io(void);
Suite *suite_adapter_io_hostile(void);
Suite *suite_config(void);
Suite *suite_config_grid(void);
Suite *suite_config_axes(void);
Suite *suite_config_store(void);
Suite *suite_val_split(void);
Suite *suite_store(void);
Suite *suite_store_hostile(void);
Suite *suite_store_heap(void);
Suite *suite_store_val(void);
Suite *suite_encode(void);
Suite *suite_model_cmds(void);
Suite *suite_runner(void);
Suite *suite_runner_val(void);
Suite *suite_overwrite(void);
Suite *suite_analyze(void);
Suite *suite_analyze_cka(void);
Suite *suite_landscape(void);
Suite *suite_adapter_io_layout(void);
Suite *suite_init_adapter(void);
Suite *suite_plot(void);
Suite *suite_sweep(void);
Suite *suite_dry_run(void);
Suite *suite_run_group(void);
Suite *suite_report(void);
Suite *suite_report_files(void);
Suite *suite_sweep_summary(void);
Suite *suite_bench(void);
Suite *suite_docs(void);
Suite *suite_commit(void);
Suite *suite_stop(void);
Suite *suite_limits(void);
Suite *suite_refusals(void);
Suite *suite_gemm_bf16(void);
Suite *suite_clip_bf16(void);
Suite *suite_dist(void);
Suite *suite_llama_nn(void);
Suite *suite_llama_model(void);
Suite *suite_llama_cmds(void);
Suite *suite_train_lm(void);

#endif /* RANDLORA_TESTS_SUITES_H */
