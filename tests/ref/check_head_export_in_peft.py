#!/usr/bin/env python3
"""Does peft load a `model.head = linear` run's export as a
Dinov2ForImageClassification adapter (LoRA + modules_to_save ["classifier"]),
and give the logits this project computes?

    ./randlora export RUN.h5 -o /tmp/adapter        # a DINOv2 head run
    make build/tests/ref/head_logits
    python3 tests/ref/check_head_export_in_peft.py MODEL_DIR /tmp/adapter \
        [--modules q_proj,v_proj,out_proj,fc1,fc2] [--pool cls_mean]

MODEL_DIR is the run's DINOv2 directory (config.json + model.safetensors in
Dinov2Model's names, e.g. tests/fixtures/dinov2_tiny). The script

  1. builds transformers' Dinov2ForImageClassification from MODEL_DIR with
     num_labels from the adapter's classifier (only the classifier missing);
  2. renames the adapter's module paths to that model's: our export names
     Dinov2Model checkpoint paths ("encoder.layer.L.attention.attention.query");
     Dinov2ForImageClassification nests them under "dinov2.", and
     transformers 5 renamed the attention linears (attention.q_proj, k_proj,
     v_proj, o_proj); the classifier keys (base_model.model.classifier.*)
     are used unchanged;
  3. loads it with PeftModel.from_pretrained (no missing or unexpected
     adapter keys allowed) and checks the classifier equals the file's bit
     for bit;
  4. feeds the same random normalised pixels to peft's model and to
     build/tests/ref/head_logits (this project's DINOv2 forward with the
     adapter and head read by adapter_io_import) and prints the largest
     |difference| of the logits relative to their scale; exit 1 above 1e-4.

Dinov2ForImageClassification's classifier reads [class token, mean of the
patch tokens] (2C): a cls_mean head. A cls head (C features) has no peft
counterpart there (the shapes differ): the script says so and exits 1.
Needs torch, transformers, peft; not run by `make check`.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import warnings

import numpy as np
import torch
from safetensors.torch import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))
TOOL = os.path.join(HERE, "..", "..", "build", "tests", "ref", "head_logits")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir")
    ap.add_argument("adapter_dir")
    ap.add_argument("--modules", default="q_proj,v_proj,out_proj,fc1,fc2")
    ap.add_argument("--pool", default="cls_mean")
    ap.add_argument("-n", type=int, default=4)
    a = ap.parse_args()

    from peft import PeftModel
    from transformers import Dinov2ForImageClassification

    sd = load_file(os.path.join(a.adapter_dir, "adapter_model.safetensors"))
    cfg = json.load(open(os.path.join(a.adapter_dir, "adapter_config.json")))
    w = sd["base_model.model.classifier.weight"]
    n_classes, fd = w.shape
    print(f"adapter: {cfg['peft_type']} r {cfg.get('r')}, modules_to_save {cfg['modules_to_save']}, "
          f"classifier {tuple(w.shape)}")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = Dinov2ForImageClassification.from_pretrained(a.model_dir, num_labels=n_classes)
    hidden = model.config.hidden_size
    if fd != 2 * hidden:
        print(f"the head reads {fd} features; Dinov2ForImageClassification's classifier reads "
              f"2 x {hidden} (cls + mean patch tokens): a cls head has no peft counterpart here")
        return 1
    names = dict(model.named_modules())
    new_attn = "dinov2.encoder.layer.0.attention.q_proj" in names
    ren = {"attention.attention.query": "attention.q_proj", "attention.attention.key": "attention.k_proj",
           "attention.attention.value": "attention.v_proj", "attention.output.dense": "attention.o_proj"}

    def rename(path):
        if not path.startswith("encoder."):
            return path
        if new_attn:
            for old, new in ren.items():
                path = path.replace(old, new)
        return "dinov2." + path

    pre = "base_model.model."
    out = {}
    for k, v in sd.items():
        out[pre + rename(k[len(pre):]) if k.startswith(pre) else k] = v
    cfg["target_modules"] = sorted(rename(t) for t in cfg["target_modules"])
    tmp = tempfile.mkdtemp(prefix="head_peft_")
    save_file(out, os.path.join(tmp, "adapter_model.safetensors"), metadata={"format": "pt"})
    json.dump(cfg, open(os.path.join(tmp, "adapter_config.json"), "w"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pm = PeftModel.from_pretrained(model, tmp)
    for wn in caught:
        msg = str(wn.message)
        if "missing adapter keys" in msg or "unexpected" in msg.lower():
            print("peft warned:", msg[:400])
            return 1
    pm.eval()
    cls = pm.base_model.model.classifier
    mod = cls.modules_to_save["default"] if hasattr(cls, "modules_to_save") else cls
    same = torch.equal(mod.weight.detach(), w) and \
        torch.equal(mod.bias.detach(), sd["base_model.model.classifier.bias"])
    print(f"peft's classifier ({type(cls).__name__}) equals the file's bit for bit: {same}")
    n_lora = sum(1 for n, _ in pm.named_modules() if n.endswith("lora_A"))
    print(f"peft placed LoRA on {n_lora} linears")

    S = model.config.image_size
    g = torch.Generator().manual_seed(0)
    px = torch.randn(a.n, 3, S, S, generator=g)
    with torch.no_grad():
        ref = pm(pixel_values=px).logits.double()
    with tempfile.TemporaryDirectory() as d:
        pf, of = os.path.join(d, "px.f32"), os.path.join(d, "logits.f32")
        px.numpy().astype(np.float32).tofile(pf)
        r = subprocess.run([TOOL, a.model_dir, a.adapter_dir, a.modules, a.pool, pf, str(a.n), of],
                           capture_output=True, text=True)
        if r.returncode != 0:
            print("head_logits failed:", r.stderr.strip())
            return 1
        ours = torch.from_numpy(np.fromfile(of, dtype=np.float32).reshape(a.n, n_classes)).double()
    scale = max(ref.abs().max().item(), 1e-12)
    worst = (ours - ref).abs().max().item() / scale
    print(f"logits {a.n} x {n_classes}: max |randlora - peft| / max|logit| = {worst:.3g} "
          f"(max |logit| {scale:.3g})")
    # the LoRA matters: without it the logits differ
    with torch.no_grad(), pm.disable_adapter():
        base = pm(pixel_values=px).logits.double()
    print(f"for scale: with peft's adapter disabled (LoRA and the saved classifier) the logits differ by "
          f"{(base - ref).abs().max().item() / scale:.3g}")
    return 0 if same and worst <= 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main())
