#!/usr/bin/env python3
"""lm_peft_check.py: a decoder run's exported adapter, loaded by peft onto the
transformers model it was trained from, gives the harness's log-probabilities.

    python3 tests/ref/lm_peft_check.py [./randlora]

For each of LoRA, VeRA and RandLoRA (peft has no NoLA; `full` exports a
weight delta, not a peft tuner):
  1. transformers builds a random tiny LlamaForCausalLM (vocab 258 = bytes +
     <s>, </s>; GQA; tied head) and saves it with a byte-level tokenizer.json;
  2. `randlora commonsense --synth` writes the procedural task, `randlora
     train` fine-tunes the model on it (a few steps, dropout on),
     `randlora export` writes adapter_model.safetensors + adapter_config.json;
  3. `randlora score --model DIR --run RUN.h5 --ids FILE` gives the harness's
     per-token log-probabilities with the run's adapters;
  4. peft's PeftModel.from_pretrained(model, export_dir) gives its logits on
     the same ids; the largest |difference| of the log-probabilities and the
     largest difference from the base model (so the adapter is not a no-op)
     are printed.
Needs torch, transformers and peft (not a dependency of make check) and
h5dump (hdf5-tools) to read the score file.
"""
import json
import os
import re
import subprocess
import sys
import tempfile

import torch
import transformers
import peft

RANDLORA = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "./randlora")


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(161, 173)) + list(range(174, 256))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def write_tokenizer(path):
    tok = lambda i, c: {"id": i, "content": c, "single_word": False, "lstrip": False,
                        "rstrip": False, "normalized": False, "special": True}
    bl = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    vocab = {ch: b for b, ch in bytes_to_unicode().items()}
    json.dump({"version": "1.0", "truncation": None, "padding": None,
               "added_tokens": [tok(256, "<s>"), tok(257, "</s>")], "normalizer": None,
               "pre_tokenizer": bl, "post_processor": None, "decoder": bl,
               "model": {"type": "BPE", "vocab": vocab, "merges": []}}, open(path, "w"))


def run(*args):
    r = subprocess.run([RANDLORA, *args], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("randlora %s failed:\n%s%s" % (" ".join(args), r.stdout, r.stderr))
    return r.stdout


def read_h5(path, name):
    out = subprocess.run(["h5dump", "-y", "-w", "0", "-d", name, path], capture_output=True,
                         text=True, check=True).stdout
    body = out[out.index("DATA {") + 6:out.rindex("}")]
    return [float(x) for x in re.findall(r"-?(?:nan|inf|\d+\.?\d*(?:e[-+]?\d+)?)", body)]


def main():
    torch.manual_seed(0)
    tmp = tempfile.mkdtemp(prefix="lm_peft_")
    model_dir = os.path.join(tmp, "model")
    cfg = transformers.LlamaConfig(vocab_size=258, hidden_size=32, intermediate_size=64,
                                   num_hidden_layers=2, num_attention_heads=4,
                                   num_key_value_heads=2, max_position_embeddings=512,
                                   tie_word_embeddings=True, bos_token_id=256, eos_token_id=257,
                                   rms_norm_eps=1e-6)
    base = transformers.LlamaForCausalLM(cfg).float().eval()
    base.save_pretrained(model_dir, safe_serialization=True)
    write_tokenizer(os.path.join(model_dir, "tokenizer.json"))
    run("commonsense", "--synth", os.path.join(tmp, "data"), "--n-train", "40", "--n-test", "4")
    ids = [[72, 101, 108, 108, 111, 32, 119, 111, 114, 108, 100],
           [84, 104, 101, 32, 97, 110, 115, 119, 101, 114, 32, 105, 115, 32, 49],
           [66, 101, 108, 111, 119, 58, 10, 35, 35, 35]]
    ids_path = os.path.join(tmp, "ids.txt")
    with open(ids_path, "w") as f:
        for line in ids:
            f.write(" ".join(map(str, line)) + "\n")
    with torch.no_grad():
        base_lp = [torch.log_softmax(base(torch.tensor([x])).logits[0].double(), -1)
                   for x in ids]
    print("torch %s, transformers %s, peft %s" % (torch.__version__, transformers.__version__,
                                                   peft.__version__))
    worst = 0.0
    for method, extra in (("lora", "rank = 4\nalpha = 8\n"), ("vera", "rank = 16\n"),
                          ("randlora", "rank = 4\n")):
        ini = os.path.join(tmp, method + ".ini")
        with open(ini, "w") as f:
            f.write("[experiment]\nname = %s\noutput = %s\n[model]\nname = %s\n"
                    "[data]\ndataset = commonsense:%s\ncutoff = 480\nmax_new_tokens = 4\n"
                    "eval_limit = 2\n[method]\nmethods = %s\n%sdropout = 0.1\n"
                    "modules = q_proj, k_proj, v_proj, out_proj, fc1, fc2\n"
                    "[train]\nsteps = 4\nbatch = 2\nlr = 2e-2\n"
                    % (method, tmp, model_dir, os.path.join(tmp, "data"), method, extra))
        h5 = os.path.join(tmp, method + ".h5")
        run("train", "-c", ini, "-o", h5, "-q")
        exp = os.path.join(tmp, method + "_peft")
        run("export", h5, "-o", exp)
        score = os.path.join(tmp, method + "_score.h5")
        run("score", "--model", model_dir, "--run", h5, "--ids", ids_path, "-o", score)
        got = read_h5(score, "/token_logprob")
        T = max(len(x) for x in ids) - 1
        model = peft.PeftModel.from_pretrained(
            transformers.LlamaForCausalLM.from_pretrained(model_dir).float(), exp).eval()
        keys = sorted(k for k in model.state_dict() if "layers.0.self_attn.q_proj" in k)
        diff = moved = 0.0
        with torch.no_grad():
            for i, x in enumerate(ids):
                lp = torch.log_softmax(model(torch.tensor([x])).logits[0].double(), -1)
                for t in range(len(x) - 1):
                    want = lp[t, x[t + 1]].item()
                    diff = max(diff, abs(got[i * T + t] - want))
                    moved = max(moved, abs(base_lp[i][t, x[t + 1]].item() - want))
        worst = max(worst, diff)
        print("%-9s peft keys e.g. %s" % (method, keys[0]))
        print("%-9s max |harness - peft| log-prob %.3g; max |peft - base| %.3g"
              % (method, diff, moved))
    print("OK" if worst < 1e-4 else "MISMATCH", "(largest difference %.3g)" % worst)
    return 0 if worst < 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main())
