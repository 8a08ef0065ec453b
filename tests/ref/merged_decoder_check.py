#!/usr/bin/env python3
"""tests/ref/merged_decoder_check.py: a decoder merged by `randlora merge --run`
loads in transformers (AutoModelForCausalLM) and gives the log-probabilities
`randlora score` wrote for it.

    randlora merge --model DIR --run RUN.h5 -o MERGED
    randlora score --model MERGED --ids IDS.txt -o SCORE.h5
    python3 tests/ref/merged_decoder_check.py MERGED IDS.txt SCORE.h5 [BASE_DIR]

Prints the largest |difference| per token (and, given BASE_DIR, how far the
merged model moved from it) and exits 1 above 1e-5. Reads the score file
through h5dump (no h5py needed). Not part of `make check`.
"""
import re
import subprocess
import sys

import numpy as np
import torch
from transformers import AutoModelForCausalLM


def read_logprobs(path):
    out = subprocess.run(["h5dump", "-d", "/token_logprob", "-y", "-w", "0", "-m", "%.9g", path],
                         capture_output=True, text=True, check=True).stdout
    body = out[out.index("DATA {") + 6:]
    body = body[:body.index("}")]
    return [float(v) for v in re.findall(r"[-+]?(?:nan|inf|\d[\d.e+-]*)", body)]


def token_logprobs(model, ids):
    x = torch.tensor([ids])
    with torch.no_grad():
        lp = torch.log_softmax(model(x).logits[0].float(), -1)
    return lp[torch.arange(len(ids) - 1), x[0, 1:]].numpy()


def main():
    merged, ids_file, score = sys.argv[1:4]
    base = sys.argv[4] if len(sys.argv) > 4 else None
    ours = read_logprobs(score)
    ids = [list(map(int, line.split())) for line in open(ids_file) if line.strip()]
    T1 = max(len(s) for s in ids) - 1
    m = AutoModelForCausalLM.from_pretrained(merged, dtype=torch.float32).eval()
    b = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32).eval() if base else None
    worst = moved = 0.0
    for i, s in enumerate(ids):
        ref = token_logprobs(m, s)
        worst = max(worst, float(np.abs(ref - np.array(ours[i * T1:i * T1 + len(s) - 1])).max()))
        if b is not None:
            moved = max(moved, float(np.abs(ref - token_logprobs(b, s)).max()))
    print("%s: transformers %s on the merged directory vs randlora score: max |diff| %.2e%s"
          % (merged, type(m).__name__, worst,
             "; merged vs base model %.3g" % moved if b is not None else ""))
    return 0 if worst <= 1e-5 else 1


if __name__ == "__main__":
    sys.exit(main())
