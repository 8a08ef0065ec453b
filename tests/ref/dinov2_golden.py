#!/usr/bin/env python3
"""
dinov2_golden.py: PyTorch reference values for models/dinov2.c.

A plain-torch DINOv2 forward written here from the HF weight names (no
transformers in the reference itself): patch conv with bias, class token,
register tokens, position embeddings resized with F.interpolate as HF does
(bicubic, align_corners False; antialias=True for the register model),
pre-LN layers with LayerScale, exact GELU, final layernorm; features
cls = layernorm(x)[:, 0] and cls_mean = [cls, mean of the patch tokens].
Gradients: loss = sum(cls_mean * G) for a random G, w.r.t. every linear
weight of every layer and the pixels.

When `transformers` imports, the reference is also checked against
transformers' Dinov2Model / Dinov2WithRegistersModel on the same weights
(last_hidden_state and pooler_output, max |diff| printed; the script fails
above 1e-5).

Writes tests/fixtures/dinov2_tiny/ and tests/fixtures/dinov2_reg/, each a
model directory (config.json, model.safetensors) plus golden.bin (the
RLGT format of tests/golden.h):
    in{S}.pixels (B,3,S,S)   in{S}.cls (B,C)   in{S}.cls_mean (B,2C)
    in{S}.G (B,2C)           in{S}.dpixels     in{S}.grad.{l}.{q,k,v,o,fc1,fc2}
    interp.src (n*n, C), interp.up (m*m, C), interp.down (k*k, C)  (plain and _aa)
for S = the native size and a larger one (position interpolation).

    python3 tests/ref/dinov2_golden.py      # regenerates both fixtures
"""
import json
import math
import os
import sys

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_block_golden import write as write_golden  # noqa: E402  the RLGT writer

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.normpath(os.path.join(HERE, "..", "fixtures"))

LINEARS = [("q", "attention.attention.query"), ("k", "attention.attention.key"),
           ("v", "attention.attention.value"), ("o", "attention.output.dense"),
           ("fc1", "mlp.fc1"), ("fc2", "mlp.fc2")]


def make_weights(cfg, gen):
    C, L = cfg["hidden_size"], cfg["num_hidden_layers"]
    Fh = int(C * cfg["mlp_ratio"])
    ps, n = cfg["patch_size"], cfg["image_size"] // cfg["patch_size"]
    R = cfg.get("num_register_tokens", 0)

    def rn(*shape, std=0.2):
        return torch.randn(*shape, generator=gen) * std

    w = {
        "embeddings.cls_token": rn(1, 1, C),
        "embeddings.mask_token": rn(1, C),
        "embeddings.position_embeddings": rn(1, n * n + 1, C),
        "embeddings.patch_embeddings.projection.weight": rn(C, 3, ps, ps, std=0.1),
        "embeddings.patch_embeddings.projection.bias": rn(C),
        "layernorm.weight": 1 + rn(C),
        "layernorm.bias": rn(C),
    }
    if R:
        w["embeddings.register_tokens"] = rn(1, R, C)
    for l in range(L):
        p = "encoder.layer.%d." % l
        w[p + "norm1.weight"] = 1 + rn(C)
        w[p + "norm1.bias"] = rn(C)
        w[p + "norm2.weight"] = 1 + rn(C)
        w[p + "norm2.bias"] = rn(C)
        for _, mod in LINEARS:
            d_out = Fh if mod == "mlp.fc1" else C
            d_in = Fh if mod == "mlp.fc2" else C
            w[p + mod + ".weight"] = rn(d_out, d_in, std=1 / math.sqrt(d_in))
            w[p + mod + ".bias"] = rn(d_out)
        w[p + "layer_scale1.lambda1"] = 0.5 + rn(C)
        w[p + "layer_scale2.lambda1"] = 0.5 + rn(C)
    return w


def resize(pos, n, g, antialias):
    """HF interpolate_pos_encoding on the patch rows pos (n*n, C) -> (g*g, C)"""
    C = pos.shape[-1]
    x = pos.reshape(1, n, n, C).permute(0, 3, 1, 2)
    y = F.interpolate(x, size=(g, g), mode="bicubic", align_corners=False, antialias=antialias)
    return y.permute(0, 2, 3, 1).reshape(g * g, C)


def reference(w, cfg, pixels):
    """the plain-torch forward: (layernormed tokens, cls, cls_mean)"""
    C, NH, L = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_hidden_layers"]
    eps, ps = cfg["layer_norm_eps"], cfg["patch_size"]
    R = cfg.get("num_register_tokens", 0)
    B, _, S, _ = pixels.shape
    n, g = cfg["image_size"] // ps, S // ps
    hs = C // NH

    x = F.conv2d(pixels, w["embeddings.patch_embeddings.projection.weight"],
                 w["embeddings.patch_embeddings.projection.bias"], stride=ps)
    x = x.flatten(2).transpose(1, 2)                                   # (B, P, C)
    pos = w["embeddings.position_embeddings"][0]
    patch_pos = pos[1:] if g == n else resize(pos[1:], n, g, antialias=R > 0)
    cls = w["embeddings.cls_token"].expand(B, 1, C) + pos[0]
    x = x + patch_pos
    parts = [cls]
    if R:
        parts.append(w["embeddings.register_tokens"].expand(B, R, C))
    x = torch.cat(parts + [x], dim=1)
    T = x.shape[1]
    for l in range(L):
        p = "encoder.layer.%d." % l

        def lin(h, mod):
            return F.linear(h, w[p + mod + ".weight"], w[p + mod + ".bias"])

        h = F.layer_norm(x, (C,), w[p + "norm1.weight"], w[p + "norm1.bias"], eps)
        q = lin(h, "attention.attention.query").view(B, T, NH, hs).transpose(1, 2)
        k = lin(h, "attention.attention.key").view(B, T, NH, hs).transpose(1, 2)
        v = lin(h, "attention.attention.value").view(B, T, NH, hs).transpose(1, 2)
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hs), dim=-1)
        a = (att @ v).transpose(1, 2).reshape(B, T, C)
        x = x + lin(a, "attention.output.dense") * w[p + "layer_scale1.lambda1"]
        h = F.layer_norm(x, (C,), w[p + "norm2.weight"], w[p + "norm2.bias"], eps)
        h = lin(F.gelu(lin(h, "mlp.fc1")), "mlp.fc2")
        x = x + h * w[p + "layer_scale2.lambda1"]
    x = F.layer_norm(x, (C,), w["layernorm.weight"], w["layernorm.bias"], eps)
    cls_feat = x[:, 0]
    mean = x[:, 1 + R:].mean(dim=1)
    return x, cls_feat, torch.cat([cls_feat, mean], dim=-1)


def check_transformers(model_dir, cfg, pixels, seq, cls):
    """transformers' own model loaded from the fixture directory (its
    from_pretrained maps the checkpoint's key names)"""
    try:
        import transformers
    except ImportError:
        print("transformers not importable: reference not cross-checked")
        return None
    cls_name = ("Dinov2WithRegistersModel" if cfg.get("num_register_tokens", 0)
                else "Dinov2Model")
    model, info = getattr(transformers, cls_name).from_pretrained(model_dir,
                                                                  output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    model.eval()
    with torch.no_grad():
        out = model(pixel_values=pixels)
    d1 = (out.last_hidden_state - seq).abs().max().item()
    d2 = (out.pooler_output - cls).abs().max().item()
    print("  transformers %s %s at %dpx: max |diff| last_hidden_state %.2e, pooler %.2e"
          % (transformers.__version__, type(model).__name__, pixels.shape[-1], d1, d2))
    assert d1 < 1e-5 and d2 < 1e-5, "reference disagrees with transformers"
    return max(d1, d2)


def case(tensors, model_dir, w, cfg, S, B, gen):
    C = cfg["hidden_size"]
    pixels = torch.randn(B, 3, S, S, generator=gen).requires_grad_(True)
    params = {k: v.clone().requires_grad_(True) for k, v in w.items()}
    seq, cls, cls_mean = reference(params, cfg, pixels)
    check_transformers(model_dir, cfg, pixels.detach(), seq.detach(), cls.detach())
    G = torch.randn(B, 2 * C, generator=gen)
    (cls_mean * G).sum().backward()
    pre = "in%d." % S
    tensors += [(pre + "pixels", pixels), (pre + "cls", cls), (pre + "cls_mean", cls_mean),
                (pre + "G", G), (pre + "dpixels", pixels.grad)]
    for l in range(cfg["num_hidden_layers"]):
        for short, mod in LINEARS:
            tensors.append(("%sgrad.%d.%s" % (pre, l, short),
                            params["encoder.layer.%d.%s.weight" % (l, mod)].grad))


def interp_cases(tensors, gen):
    C, n = 3, 7
    src = torch.randn(n * n, C, generator=gen)
    tensors.append(("interp.src", src))
    for aa in (False, True):
        sfx = "_aa" if aa else ""
        tensors.append(("interp.up" + sfx, resize(src, n, 10, aa)))
        tensors.append(("interp.down" + sfx, resize(src, n, 3, aa)))
    # the real models' case: 37x37 (518 px) to 16x16 (224 px)
    big = torch.randn(37 * 37, 2, generator=gen)
    tensors.append(("interp.src37", big))
    tensors.append(("interp.down16", resize(big, 37, 16, False)))
    tensors.append(("interp.down16_aa", resize(big, 37, 16, True)))


def model_case(name, cfg, seed, sizes, with_interp):
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    w = make_weights(cfg, gen)
    out = os.path.join(FIX, name)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    save_file({k: v.contiguous() for k, v in w.items()}, os.path.join(out, "model.safetensors"),
              metadata={"format": "pt"})
    tensors = []
    for S in sizes:
        case(tensors, out, w, cfg, S, 2, gen)
    if with_interp:
        interp_cases(tensors, gen)
    write_golden(os.path.join(out, "golden.bin"), tensors)
    print("wrote %s: %d tensors" % (out, len(tensors)))


def main():
    base = {"model_type": "dinov2", "hidden_size": 32, "num_hidden_layers": 2,
            "num_attention_heads": 4, "mlp_ratio": 4, "hidden_act": "gelu",
            "layer_norm_eps": 1e-6, "image_size": 24, "patch_size": 4, "num_channels": 3,
            "qkv_bias": True, "layerscale_value": 1.0, "use_swiglu_ffn": False}
    model_case("dinov2_tiny", base, 20260419, (24, 32, 16), True)
    reg = dict(base, model_type="dinov2_with_registers", num_register_tokens=2)
    model_case("dinov2_reg", reg, 20260420, (24, 32), False)


if __name__ == "__main__":
    sys.exit(main())
