#!/usr/bin/python3
"""Write tests/fixtures/adapter_io/{lora,vera,randlora}/: adapters in the
layout Hugging Face peft saves (PeftModel.save_pretrained with
save_projection=True), read back by tests/check_adapter_io.c.

Run from the repository root with Debian's interpreter (it has python3-torch):

    /usr/bin/python3 tests/ref/make_adapter_io_fixture.py

Neither peft nor the safetensors package is needed. The keys are the ones
peft's get_peft_model_state_dict produces for a PeftModel around a CLIP
model (the adapter name ".default" removed):

    base_model.model.<module path>.lora_A.weight        (r, d_in)
    base_model.model.<module path>.lora_B.weight        (d_out, r)
    base_model.model.<module path>.vera_lambda_b        (d_out,)
    base_model.model.<module path>.vera_lambda_d        (r,)
    base_model.vera_A / base_model.vera_B               (r, max_in) / (max_out, r)
    base_model.model.<module path>.randlora_lambda      (r, n)
    base_model.model.<module path>.randlora_gamma       (n, min(d_out, d_in))
    base_model.randlora_A / base_model.randlora_B       (r, 1, min_dim) / (max_dim, n_g, r)

adapter_config.json is written as peft's PeftConfig.save_pretrained does
(json.dumps(indent=2, sort_keys=True)) with the fields of peft's config
classes, including some this project ignores. The safetensors files are
written by hand from the format spec (u64 little-endian header length,
JSON header padded with spaces to a multiple of 8, tensors in the reference
writer's order: dtype alignment descending, then name). RandLoRA's shared
bases are stored as F16, the dtype peft's _kaiming_init creates them in on a
machine without bf16 CUDA, so the C loader's conversion is exercised.

Three modules of one CLIP text layer, both RandLoRA orientations:
    text_model.encoder.layers.0.self_attn.q_proj   16 x 16
    text_model.encoder.layers.0.mlp.fc1            48 x 16   (d_in < d_out)
    text_model.encoder.layers.0.mlp.fc2            16 x 48   (d_out < d_in)

expected.safetensors holds, per module, "x.<path>" (N, d_in) and
"y.<path>" (N, d_out): the adapter branch alone, computed in float64 with
peft's forward formulas (lora/layer.py, vera/layer.py, randlora/layer.py
get_scaled_bases + forward) from the stored (F16-rounded where F16) values.
"""
import json
import math
import os
import struct

import torch

OUT = "tests/fixtures/adapter_io"
MODULES = [
    ("text_model.encoder.layers.0.self_attn.q_proj", 16, 16),
    ("text_model.encoder.layers.0.mlp.fc1", 48, 16),
    ("text_model.encoder.layers.0.mlp.fc2", 16, 48),
]
N = 3
R = 4
MAX_OUT = max(m[1] for m in MODULES)
MAX_IN = max(m[2] for m in MODULES)
BASE = "openai/clip-vit-base-patch32"

DTYPES = {torch.float32: ("F32", 11), torch.float16: ("F16", 7)}


def raw_bytes(t):
    t = t.contiguous()
    if t.dtype == torch.float16:
        bits = t.view(torch.int16).reshape(-1).tolist()
        return struct.pack("<%dh" % len(bits), *bits)
    return struct.pack("<%df" % t.numel(), *t.reshape(-1).tolist())


def write_safetensors(path, tensors, metadata):
    order = sorted(tensors, key=lambda n: (-DTYPES[tensors[n].dtype][1], n))
    header = {"__metadata__": metadata}
    blobs, off = [], 0
    for name in order:
        t = tensors[name]
        b = raw_bytes(t)
        header[name] = {"dtype": DTYPES[t.dtype][0], "shape": list(t.shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def write_config(path, cfg):
    with open(path, "w") as f:
        f.write(json.dumps(cfg, indent=2, sort_keys=True))


def common_config(peft_type):
    return {
        "auto_mapping": None,
        "base_model_name_or_path": BASE,
        "bias": "none",
        "fan_in_fan_out": False,
        "inference_mode": True,
        "layers_pattern": None,
        "layers_to_transform": None,
        "modules_to_save": None,
        "peft_type": peft_type,
        "revision": None,
        "target_modules": sorted(m[0] for m in MODULES),
        "task_type": None,
    }


def key(path, name):
    return "base_model.model.%s.%s" % (path, name)


def kaiming_uniform(shape, fan_in, g):
    bound = math.sqrt(6.0 / fan_in)
    return (torch.rand(shape, generator=g) * 2 - 1) * bound


def save(method, tensors, cfg, expected):
    d = os.path.join(OUT, method)
    os.makedirs(d, exist_ok=True)
    write_safetensors(os.path.join(d, "adapter_model.safetensors"), tensors, {"format": "pt"})
    write_config(os.path.join(d, "adapter_config.json"), cfg)
    write_safetensors(os.path.join(d, "expected.safetensors"), expected,
                      {"source": "tests/ref/make_adapter_io_fixture.py"})


def inputs(g):
    return {p: torch.randn(N, di, generator=g) for p, do, di in MODULES}


def lora(g):
    alpha = 8
    s = alpha / R
    t, exp = {}, {}
    xs = inputs(g)
    for p, do, di in MODULES:
        A = kaiming_uniform((R, di), 6 * di, g)       # a=sqrt(5): bound 1/sqrt(d_in)
        B = torch.randn(do, R, generator=g) * 0.2     # trained: nonzero
        t[key(p, "lora_A.weight")] = A
        t[key(p, "lora_B.weight")] = B
        x = xs[p]
        # lora/layer.py: result + lora_B(lora_A(dropout(x))) * scaling
        y = (x.double() @ A.double().T @ B.double().T) * s
        exp["x." + p], exp["y." + p] = x, y.float()
    cfg = common_config("LORA")
    cfg.update({"r": R, "lora_alpha": alpha, "lora_dropout": 0.0, "use_rslora": False,
                "use_dora": False, "init_lora_weights": True, "rank_pattern": {},
                "alpha_pattern": {}, "exclude_modules": None, "lora_bias": False,
                "layer_replication": None, "loftq_config": {}, "megatron_config": None,
                "megatron_core": "megatron.core", "eva_config": None, "corda_config": None,
                "trainable_token_indices": None})
    save("lora", t, cfg, exp)


def vera(g):
    t, exp = {}, {}
    A = kaiming_uniform((R, MAX_IN), MAX_IN, g)       # vera/model.py _kaiming_init, A first
    B = kaiming_uniform((MAX_OUT, R), R, g)
    t["base_model.vera_A"], t["base_model.vera_B"] = A, B
    xs = inputs(g)
    for p, do, di in MODULES:
        lb = torch.randn(do, generator=g) * 0.5
        ld = torch.randn(R, generator=g) * 0.5
        t[key(p, "vera_lambda_b")] = lb
        t[key(p, "vera_lambda_d")] = ld
        x = xs[p].double()
        sA, sB = A[:, :di].double(), B[:do, :].double()
        # vera/layer.py: lambda_b * F.linear(lambda_d * F.linear(x, sliced_A), sliced_B)
        y = lb.double() * ((ld.double() * (x @ sA.T)) @ sB.T)
        exp["x." + p], exp["y." + p] = xs[p], y.float()
    cfg = common_config("VERA")
    cfg.update({"r": R, "projection_prng_key": 0, "save_projection": True,
                "vera_dropout": 0.0, "d_initial": 0.1, "init_weights": True})
    save("vera", t, cfg, exp)


def randlora(g):
    alpha = 20 * R                                    # "typically 20 times the rank"
    s = alpha / R
    min_dim, max_dim = min(MAX_OUT, MAX_IN), max(MAX_OUT, MAX_IN)
    n_g = math.ceil(min_dim / R)
    A = torch.rand(R, 1, min_dim, generator=g) * 2 - 1
    B = torch.rand(max_dim, n_g, R, generator=g) * 2 - 1
    A, B = (A / A.std()).half(), (B / B.std()).half()
    t, exp = {"base_model.randlora_A": A, "base_model.randlora_B": B}, {}
    xs = inputs(g)
    for p, do, di in MODULES:
        d, D = min(do, di), max(do, di)
        n = math.ceil(d / R)
        lam = torch.randn(R, n, generator=g) * 0.1
        gam = torch.randn(n, d, generator=g) * 0.1
        t[key(p, "randlora_lambda")] = lam
        t[key(p, "randlora_gamma")] = gam
        # randlora/layer.py get_scaled_bases, in float64
        sliced_A = A.double()[:, :n, :d]
        sliced_B = B.double()[:D, :n, :]
        update_B = sliced_B.flatten(start_dim=1)                                   # (D, n r)
        update_A = (lam.double()[:, :, None] * sliced_A * gam.double()[None]).flatten(end_dim=1)
        if d == di:
            first, second = update_A, update_B
        else:
            first, second = update_B.T, update_A.T
        # forward: F.linear(F.linear(dropout(x), update_B), update_A) * scaling
        x = xs[p].double()
        y = (x @ first.T) @ second.T * s
        exp["x." + p], exp["y." + p] = xs[p], y.float()
    cfg = common_config("RANDLORA")
    cfg.update({"r": R, "randlora_alpha": alpha, "randlora_dropout": 0.0,
                "projection_prng_key": 0, "save_projection": True, "sparse": False,
                "very_sparse": False, "init_weights": True})
    save("randlora", t, cfg, exp)


def main():
    g = torch.Generator().manual_seed(20250201)
    lora(g)
    vera(g)
    randlora(g)


if __name__ == "__main__":
    main()
