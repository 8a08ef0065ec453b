/*
 * merge_decoder.c: `randlora merge --model DIR --run RUN.h5`: a decoder
 * run's trained adapters merged into the frozen decoder, written as a
 * Hugging Face LlamaForCausalLM / Qwen2ForCausalLM checkpoint directory.
 *
 * 1. the model: DIR/config.json + its safetensors (llama_model_load: one
 *    file or shards, F32/F16/BF16);
 * 2. the adapters: the run's plan rebuilds them on the model and every
 *    stored tensor is read over them (lm_run_adapters_load, as `randlora
 *    score --run` does); a run that is not a decoder run, a run of method
 *    none, or adapters that do not fit DIR's shapes are refused;
 * 3. W += dW for every adapted linear (llama_adapters_merge);
 * 4. OUT_DIR/config.json and OUT_DIR/model.safetensors (llama_model_save,
 *    one file, F32 unless --dtype), then the tokenizer files DIR has
 *    (merge_files.h) copied.
 *
 * The merged model's log-probabilities equal the adapted model's (tested
 * with `randlora score`, within 2e-5).
 */
#include <stdio.h>
#include <sys/stat.h>

#include "cli/merge_decoder.h"
#include "cli/merge_files.h"
#include "core/status.h"
#include "experiments/lm_model.h"
#include "formats/safetensors.h"
#include "models/llama.h"

int merge_decoder_run(const char *model_dir, const char *run, const char *out_dir, int dtype)
{
    struct llama_model m;
    struct llama_adapters la;
    struct stat sb;
    size_t copied = 0;
    int rc;

    if (stat(run, &sb) == 0 && S_ISDIR(sb.st_mode))
        return rl_error_set(RL_ERR_ARG, "--run %s is a directory: give one run's results file "
                            "(RUN.h5) in it", run);
    if ((rc = llama_model_load(&m, model_dir)))
        return rl_error_prefix(rc, "--model %s", model_dir);
    /* rows: the adapters' scratch for a forward, unused by the merge */
    if ((rc = lm_run_adapters_load(run, &m, &la, 1))) {
        llama_model_free(&m);
        return rl_error_prefix(rc == RL_ERR_IO ? RL_ERR_ARG : rc, "--run %s on --model %s",
                               run, model_dir);
    }
    llama_adapters_merge(&la, &m);
    if (!(rc = llama_model_save(&m, out_dir, dtype, 1)) &&
        !(rc = merge_copy_model_files(model_dir, out_dir, &copied)))
        printf("merged %s (%s, r %zu, %zu linears) into %s: config.json, model.safetensors "
               "(%s), %zu tokenizer file%s copied\n", run, la.method.cfg.method, la.method.cfg.r,
               la.n_sites, out_dir, st_dtype_name((enum st_dtype)dtype), copied,
               copied == 1 ? "" : "s");
    llama_adapters_free(&la);
    llama_model_free(&m);
    return rc;
}
