/*
 * merge_decoder.h: `randlora merge --run`: a decoder run's adapters merged
 * into its model and saved as a checkpoint directory (merge_decoder.c).
 */
#ifndef RANDLORA_CLI_MERGE_DECODER_H
#define RANDLORA_CLI_MERGE_DECODER_H

/* model_dir: the run's decoder (config.json + safetensors); run: its
 * results file; out_dir: checked by the caller (cli_output_dir_ok); dtype
 * ST_F32, ST_F16 or ST_BF16. RL_ERR_ARG / RL_ERR_FORMAT for bad input. */
int merge_decoder_run(const char *model_dir, const char *run, const char *out_dir, int dtype);

#endif /* RANDLORA_CLI_MERGE_DECODER_H */
