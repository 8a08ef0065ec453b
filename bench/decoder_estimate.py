#!/usr/bin/env python3
"""bench/decoder_estimate.py: the wall time of the RandLoRA paper's Qwen2-0.5B
commonsense_15k run (experiments/commonsense_qwen2_0.5b.ini) on this machine,
from the decoder rows of `make bench` (bench/run_table.sh's JSON lines).

    python3 bench/decoder_estimate.py build/bench/table.jsonl \
        [--train-tokens 96] [--prompt-tokens 88] [--decode-steps 8]

The run: 1 epoch of 15,000 items at cutoff 256, batch 16 (938 optimizer
steps), then greedy generation on the eight test sets (22,419 items in 1,406
batches of 16, as train_lm.c's evaluation runs them: per batch a
teacher-forced forward of the prompts with their answers, the prefill of each
prompt, then one decoding step of up to 16 rows per generated token until the
batch's last sequence stops).

    train  = 15,000 x train_tokens / (randlora's training tokens/s, the
             method's row at 1 x 256)
    eval   = 22,419 x (prompt_tokens + answer) / forward rate     (teacher-forced)
           + 22,419 x prompt_tokens / prefill rate                 (generation)
           + 1,406 x decode_steps x (one decoding step of 16 rows)

The forward rate is taken as the prefill rate (both are the decoder's forward
over whole prompts). Assumptions are arguments: --train-tokens the mean
tokens per training item after padding to the batch's longest (256: every
item at the cutoff, the upper bound), --prompt-tokens the mean prompt,
--decode-steps the tokens the batch's longest answer takes (a fine-tuned
model answers "the correct answer is X" and stops: about 8; 32 is
max_new_tokens, a model that never stops).

--project-idle: on a shared machine, also the same run on the machine to
itself: each training row's tokens/s taken from its CPU time instead of its
wall time (tokens / (CPU s / threads): every thread busy, as on idle cores,
an optimistic bound), and the evaluation's times divided by the factor its
own method's row lost (wall time / (CPU s / threads)) in the same run.
Standard library only.
"""
import argparse
import json

TRAIN_ITEMS = 15000
TEST_SETS = {"boolq": 3270, "piqa": 1838, "social_i_qa": 1954, "hellaswag": 10042,
             "winogrande": 1267, "ARC-Easy": 2376, "ARC-Challenge": 1172, "openbookqa": 500}
BATCH = 16
ANSWER_TOKENS = 8


def median(v):
    v = sorted(v)
    n = len(v)
    return v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("jsonl")
    ap.add_argument("--model", default="qwen2-0.5b")
    ap.add_argument("--train-tokens", type=float, default=96.0)
    ap.add_argument("--prompt-tokens", type=float, default=88.0)
    ap.add_argument("--decode-steps", type=float, default=8.0)
    ap.add_argument("--project-idle", action="store_true")
    a = ap.parse_args()
    rows = [json.loads(line) for line in open(a.jsonl) if line.startswith("{")]
    c = [r for r in rows if r.get("impl") == "c" and r.get("model") == a.model and "seq" in r]
    gen = [r for r in c if r.get("kind") == "generate"]
    train = [r for r in c if r.get("kind", "train") == "train"]
    if not gen or not train:
        raise SystemExit("decoder_estimate: no %s training or generation rows in %s"
                         % (a.model, a.jsonl))
    g = gen[-1]
    n_test = sum(TEST_SETS.values())
    n_batches = sum(-(-n // BATCH) for n in TEST_SETS.values())
    steps = -(-TRAIN_ITEMS // BATCH)
    prefill = g["prefill_tokens_per_s"]
    decode_step = g["decode_step_s"]
    t_forward = n_test * (a.prompt_tokens + ANSWER_TOKENS) / prefill
    t_prefill = n_test * a.prompt_tokens / prefill
    t_decode = n_batches * a.decode_steps * decode_step
    t_eval = t_forward + t_prefill + t_decode
    print("%s: %d training items in %d steps of %d; %d test items in %d batches"
          % (a.model, TRAIN_ITEMS, steps, BATCH, n_test, n_batches))
    print("assumed: %.0f tokens per training item, %.0f per prompt (+%d answer), %.0f decoding "
          "steps per batch" % (a.train_tokens, a.prompt_tokens, ANSWER_TOKENS, a.decode_steps))
    print("generation (%s r=%d): prefill %.1f tokens/s, decoding step of %d rows %.3f s"
          % (g["method"], g["rank"], prefill, g["batch"], decode_step))
    print("evaluation: forward %.2f h + prefill %.2f h + decoding %.2f h = %.2f h"
          % (t_forward / 3600, t_prefill / 3600, t_decode / 3600, t_eval / 3600))
    seen = []
    for r in train:
        k = (r["method"], r["rank"])
        if k in seen:
            continue
        seen.append(k)
        tps = median([x["tokens_per_s"] for x in train if (x["method"], x["rank"]) == k])
        t_train = TRAIN_ITEMS * a.train_tokens / tps
        print("%-8s r=%-3d %7.2f tokens/s: training %6.2f h, with evaluation %6.2f h"
              % (k[0], k[1], tps, t_train / 3600, (t_train + t_eval) / 3600))
    if not a.project_idle:
        return
    ref = [x for x in train if (x["method"], x["rank"]) == (g["method"], g["rank"])]
    if not ref or not all(x.get("step_cpu_s") for x in train):
        raise SystemExit("decoder_estimate: --project-idle needs step_cpu_s in every row and "
                         "a training row of the generation's method")
    slow = median([x["step_s"] / (x["step_cpu_s"] / x["threads"]) for x in ref])
    print("projected to idle cores (CPU time / threads; the evaluation / %.2f, the factor "
          "the %s r=%d row lost to the load):" % (slow, g["method"], g["rank"]))
    for k in seen:
        xs = [x for x in train if (x["method"], x["rank"]) == k]
        tps = median([x["batch"] * x["seq"] / (x["step_cpu_s"] / x["threads"]) for x in xs])
        t_train = TRAIN_ITEMS * a.train_tokens / tps
        print("%-8s r=%-3d %7.2f tokens/s: training %6.2f h, evaluation %5.2f h, total %6.2f h"
              % (k[0], k[1], tps, t_train / 3600, t_eval / slow / 3600,
                 (t_train + t_eval / slow) / 3600))


if __name__ == "__main__":
    main()
