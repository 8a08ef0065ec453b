#!/usr/bin/env python3
"""Does the real Hugging Face peft load an adapter `randlora export` wrote,
and compute the update this project's `randlora merge` applied?

    ./randlora export RUN.h5 -o /tmp/adapter
    ./randlora merge --model MODEL_DIR --adapter /tmp/adapter -o /tmp/merged
    python3 tests/ref/check_export_in_peft.py MODEL_DIR /tmp/adapter /tmp/merged

MODEL_DIR is the run's model directory (model.safetensors). For every module
the adapter names, a torch.nn.Linear with the model's weight is placed at
that path in a module tree (the names peft matches on), PeftModel.from_pretrained
loads the adapter onto it (no missing or unexpected adapter keys allowed),
and peft's get_delta_weight is compared with merged - frozen weight. Prints
the largest difference per method and exits 1 when one exceeds 1e-5
relative to the update's scale. Needs torch, safetensors and peft; not run
by `make check`.
"""
import ast
import json
import sys
import warnings

import torch
from peft import PeftModel
from safetensors.torch import load_file


class Node(torch.nn.Module):
    pass


def module_paths(adapter_keys):
    names = ("lora_A", "lora_B", "vera_lambda_b", "vera_lambda_d", "randlora_lambda", "randlora_gamma",
             "randlora_A", "randlora_B")
    out = set()
    for k in adapter_keys:
        if not k.startswith("base_model.model."):
            continue
        rest = k[len("base_model.model."):]
        for n in names:
            i = rest.find("." + n)
            if i > 0:
                out.add(rest[:i])
    return sorted(out)


def main():
    model_dir, adapter_dir, merged_dir = sys.argv[1:4]
    base = load_file(f"{model_dir}/model.safetensors")
    merged = load_file(f"{merged_dir}/model.safetensors")
    adapter = load_file(f"{adapter_dir}/adapter_model.safetensors")
    cfg = json.load(open(f"{adapter_dir}/adapter_config.json"))
    paths = module_paths(adapter.keys())
    root = Node()
    for p in paths:
        w = base[p + ".weight"].float()
        lin = torch.nn.Linear(w.shape[1], w.shape[0], bias=False)
        with torch.no_grad():
            lin.weight.copy_(w)
        parent = root
        parts = p.split(".")
        for q in parts[:-1]:
            if not hasattr(parent, q):
                parent.add_module(q, Node())
            parent = getattr(parent, q)
        parent.add_module(parts[-1], lin)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = PeftModel.from_pretrained(root, adapter_dir)
    # peft versions that keep the shared bases under every module as well
    # (issue #3709) report those aliases as missing when a file holds the
    # model-level pair only; they are the same tensors, filled through the
    # model level. Any other missing or unexpected key is a failure.
    def alias(k):
        return k.rsplit(".", 2)[-2] in ("randlora_A", "randlora_B", "vera_A", "vera_B") and \
            k.startswith("base_model.model.")
    for w in caught:
        msg = str(w.message)
        if "missing adapter keys" in msg or "unexpected" in msg.lower():
            keys = ast.literal_eval(msg[msg.index("["):msg.rindex("]") + 1])
            others = [k for k in keys if not alias(k)]
            if others or "unexpected" in msg.lower():
                print("peft warned:", msg[:300])
                return 1
            print(f"note: peft reports the {len(keys)} per-module aliases of the shared bases as missing "
                  "(filled through the model-level pair)")
    worst = 0.0
    for p in paths:
        layer = model.base_model.model
        for q in p.split("."):
            layer = getattr(layer, q)
        d_peft = layer.get_delta_weight("default").double()
        d_ours = merged[p + ".weight"].double() - base[p + ".weight"].double()
        scale = max(d_ours.abs().max().item(), 1e-12)
        worst = max(worst, (d_peft - d_ours).abs().max().item() / scale)
    print(f"{cfg['peft_type']}: {len(paths)} modules, base_model_name_or_path {cfg['base_model_name_or_path']}; "
          f"largest |peft - merge| / max|dW| = {worst:.3g}")
    return 0 if worst <= 1e-5 else 1


if __name__ == "__main__":
    sys.exit(main())
