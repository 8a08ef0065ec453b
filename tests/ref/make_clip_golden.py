#!/usr/bin/python3
"""
make_clip_golden.py: a tiny random CLIP in Hugging Face layout and PyTorch
reference values for tests/check_clip.c.

Writes tests/fixtures/clip_tiny/ (committed, so `make check` needs no
PyTorch):
    config.json        a CLIPConfig (text_config / vision_config), with a few
                       keys the C reader must ignore
    model.safetensors  every CLIPModel tensor in F32 under its HF name, plus
                       the legacy int64 `position_ids` buffers of old hub
                       checkpoints (which the C loader must ignore)
    golden.bin         inputs, outputs and gradients (format below)

Run from the repository root with Debian's torch (no transformers needed):

    /usr/bin/python3 tests/ref/make_clip_golden.py

The model is written here from clip.md sections 3.1-3.4 (transformers'
modeling_clip.py CLIPModel) in plain torch float32, independently of the C:
  vision: conv patch embedding (no bias), class token, position embedding,
          pre_layrnorm, pre-LN encoder layers, post_layernorm on the class
          token, visual_projection (no bias)
  text:   token + position embedding, causal pre-LN layers, final_layer_norm,
          pooled at the first eos_token_id, text_projection (no bias)
  heads:  L2 normalise, logits_per_image = exp(logit_scale) img @ txt^T,
          contrastive loss (CE(rows) + CE(columns)) / 2
Shapes: image 16, patch 4 (17 tokens), vision width 32, 2 layers, 2 heads,
MLP 64, quick_gelu; text vocab 64 (62 = bos, 63 = eos), context 12, width
24, 2 layers, 2 heads, MLP 48, exact gelu; projection 16. The towers have
different widths and activations so a swapped shape or act shows.

golden.bin tensors:
  pixels (3,3,16,16); ids (3,12) as floats, eos at positions 3, 8, 5 (row 1
  padded with eos, rows 0 and 2 with 0)
  base.image_embeds (3,16), base.text_embeds (3,16), base.logits (3,3)
  (logits_per_image), base.loss (contrastive)
  base.grad.<HF name>: the contrastive loss's gradient w.r.t. the weights in
  GRAD_NAMES, and base.grad.pixels
  ce.targets (3); ce.loss: cross-entropy of logits_per_image against them;
  ce.grad.image_embeds, ce.grad.text_embeds
  lora.<module path>.lora_A.weight (r, d_in), .lora_B.weight (d_out, r):
  LoRA (r 2, alpha 4, scaling 2) on LORA_SITES with non-zero A and B;
  lora.image_embeds, lora.text_embeds, lora.loss, and
  lora.grad.<module path>.lora_{A,B}.weight

File format (all integers uint32 little-endian), as tests/golden.h reads:
    magic "RLGT", version 1, count, then count x { name_len, name, ndim,
    dims[ndim], float32 data }
"""
import json
import math
import os
import struct

import torch
import torch.nn.functional as F

SEED = 20250301
HERE = os.path.dirname(os.path.abspath(__file__))
OUT_DIR = os.path.normpath(os.path.join(HERE, "..", "fixtures", "clip_tiny"))

V = dict(image_size=16, patch_size=4, num_channels=3, hidden=32, layers=2, heads=2,
         intermediate=64, act="quick_gelu")
T = dict(vocab=64, ctx=12, hidden=24, layers=2, heads=2, intermediate=48, act="gelu",
         bos=62, eos=63)
PROJ = 16
LOGIT_SCALE = math.log(1 / 0.07)
EPS = 1e-5

GRAD_NAMES = [
    "vision_model.embeddings.patch_embedding.weight",
    "vision_model.embeddings.class_embedding",
    "vision_model.embeddings.position_embedding.weight",
    "vision_model.pre_layrnorm.weight",
    "vision_model.encoder.layers.0.mlp.fc2.weight",
    "vision_model.encoder.layers.1.self_attn.q_proj.weight",
    "vision_model.encoder.layers.1.self_attn.k_proj.bias",
    "vision_model.encoder.layers.1.layer_norm2.weight",
    "vision_model.post_layernorm.bias",
    "visual_projection.weight",
    "text_model.embeddings.token_embedding.weight",
    "text_model.embeddings.position_embedding.weight",
    "text_model.encoder.layers.0.mlp.fc1.weight",
    "text_model.encoder.layers.0.layer_norm1.bias",
    "text_model.encoder.layers.1.self_attn.out_proj.weight",
    "text_model.encoder.layers.1.self_attn.v_proj.weight",
    "text_model.final_layer_norm.weight",
    "text_projection.weight",
    "logit_scale",
]

LORA_R, LORA_ALPHA = 2, 4.0
LORA_SITES = [
    "vision_model.encoder.layers.0.self_attn.q_proj",
    "vision_model.encoder.layers.1.mlp.fc2",
    "text_model.encoder.layers.0.self_attn.v_proj",
    "text_model.encoder.layers.1.mlp.fc1",
    "text_model.encoder.layers.1.self_attn.out_proj",
]


# --------------------------------------------------------------------------
# parameters

def layer_shapes(C, Fh):
    return [
        ("layer_norm1.weight", [C]), ("layer_norm1.bias", [C]),
        ("self_attn.q_proj.weight", [C, C]), ("self_attn.q_proj.bias", [C]),
        ("self_attn.k_proj.weight", [C, C]), ("self_attn.k_proj.bias", [C]),
        ("self_attn.v_proj.weight", [C, C]), ("self_attn.v_proj.bias", [C]),
        ("self_attn.out_proj.weight", [C, C]), ("self_attn.out_proj.bias", [C]),
        ("layer_norm2.weight", [C]), ("layer_norm2.bias", [C]),
        ("mlp.fc1.weight", [Fh, C]), ("mlp.fc1.bias", [Fh]),
        ("mlp.fc2.weight", [C, Fh]), ("mlp.fc2.bias", [C]),
    ]


def all_shapes():
    Cv, Ct, ps = V["hidden"], T["hidden"], V["patch_size"]
    ntok = (V["image_size"] // ps) ** 2 + 1
    s = [
        ("vision_model.embeddings.patch_embedding.weight", [Cv, V["num_channels"], ps, ps]),
        ("vision_model.embeddings.class_embedding", [Cv]),
        ("vision_model.embeddings.position_embedding.weight", [ntok, Cv]),
        ("vision_model.pre_layrnorm.weight", [Cv]), ("vision_model.pre_layrnorm.bias", [Cv]),
    ]
    for l in range(V["layers"]):
        s += [(f"vision_model.encoder.layers.{l}.{n}", sh)
              for n, sh in layer_shapes(Cv, V["intermediate"])]
    s += [("vision_model.post_layernorm.weight", [Cv]),
          ("vision_model.post_layernorm.bias", [Cv]),
          ("text_model.embeddings.token_embedding.weight", [T["vocab"], Ct]),
          ("text_model.embeddings.position_embedding.weight", [T["ctx"], Ct])]
    for l in range(T["layers"]):
        s += [(f"text_model.encoder.layers.{l}.{n}", sh)
              for n, sh in layer_shapes(Ct, T["intermediate"])]
    s += [("text_model.final_layer_norm.weight", [Ct]),
          ("text_model.final_layer_norm.bias", [Ct]),
          ("visual_projection.weight", [PROJ, Cv]), ("text_projection.weight", [PROJ, Ct]),
          ("logit_scale", [])]
    return s


def init_params(g):
    """Random weights large enough that every path carries signal."""
    p = {}
    for name, shape in all_shapes():
        if name == "logit_scale":
            p[name] = torch.tensor(LOGIT_SCALE, dtype=torch.float32)
        elif "norm" in name and name.endswith(".weight"):
            p[name] = 1.0 + 0.1 * torch.randn(shape, generator=g)
        elif name.endswith(".bias"):
            p[name] = 0.05 * torch.randn(shape, generator=g)
        elif "embedding" in name:
            p[name] = 0.3 * torch.randn(shape, generator=g)
        else:                                   # linear weights: 1/sqrt(fan_in)
            fan_in = 1
            for d in shape[1:]:
                fan_in *= d
            p[name] = torch.randn(shape, generator=g) / math.sqrt(fan_in)
    return {k: v.float() for k, v in p.items()}


# --------------------------------------------------------------------------
# the model (clip.md 3.1-3.4)

def act_fn(name, x):
    if name == "quick_gelu":
        return x * torch.sigmoid(1.702 * x)
    return F.gelu(x)


def linear(x, p, path, lora):
    """nn.Linear with an optional LoRA branch: y = x W^T + b + s B A x."""
    y = F.linear(x, p[path + ".weight"], p.get(path + ".bias"))
    if lora is not None and path in lora:
        A, B = lora[path]
        y = y + (LORA_ALPHA / LORA_R) * F.linear(F.linear(x, A), B)
    return y


def encoder_layer(x, p, pre, NH, causal, act, lora):
    Bn, Tn, C = x.shape
    hs = C // NH
    h = F.layer_norm(x, (C,), p[pre + "layer_norm1.weight"], p[pre + "layer_norm1.bias"], EPS)
    q = linear(h, p, pre + "self_attn.q_proj", lora).view(Bn, Tn, NH, hs).transpose(1, 2)
    k = linear(h, p, pre + "self_attn.k_proj", lora).view(Bn, Tn, NH, hs).transpose(1, 2)
    v = linear(h, p, pre + "self_attn.v_proj", lora).view(Bn, Tn, NH, hs).transpose(1, 2)
    s = torch.matmul(q, k.transpose(-2, -1)) * hs ** -0.5
    if causal:
        s = s.masked_fill(torch.ones(Tn, Tn, dtype=torch.bool).triu(1), float("-inf"))
    o = torch.matmul(torch.softmax(s, dim=-1), v).transpose(1, 2).reshape(Bn, Tn, C)
    x = x + linear(o, p, pre + "self_attn.out_proj", lora)
    h = F.layer_norm(x, (C,), p[pre + "layer_norm2.weight"], p[pre + "layer_norm2.bias"], EPS)
    h = act_fn(act, linear(h, p, pre + "mlp.fc1", lora))
    return x + linear(h, p, pre + "mlp.fc2", lora)


def vision(pixels, p, lora=None):
    C, ps = V["hidden"], V["patch_size"]
    x = F.conv2d(pixels, p["vision_model.embeddings.patch_embedding.weight"], stride=ps)
    x = x.flatten(2).transpose(1, 2)                        # (B, P, C), row-major grid
    cls = p["vision_model.embeddings.class_embedding"].expand(x.shape[0], 1, C)
    x = torch.cat([cls, x], dim=1) + p["vision_model.embeddings.position_embedding.weight"]
    x = F.layer_norm(x, (C,), p["vision_model.pre_layrnorm.weight"],
                     p["vision_model.pre_layrnorm.bias"], EPS)
    for l in range(V["layers"]):
        x = encoder_layer(x, p, f"vision_model.encoder.layers.{l}.", V["heads"], False,
                          V["act"], lora)
    pooled = F.layer_norm(x[:, 0, :], (C,), p["vision_model.post_layernorm.weight"],
                          p["vision_model.post_layernorm.bias"], EPS)
    return F.linear(pooled, p["visual_projection.weight"])


def text(ids, p, lora=None):
    C = T["hidden"]
    Tn = ids.shape[1]
    x = p["text_model.embeddings.token_embedding.weight"][ids] + \
        p["text_model.embeddings.position_embedding.weight"][:Tn]
    for l in range(T["layers"]):
        x = encoder_layer(x, p, f"text_model.encoder.layers.{l}.", T["heads"], True, T["act"],
                          lora)
    x = F.layer_norm(x, (C,), p["text_model.final_layer_norm.weight"],
                     p["text_model.final_layer_norm.bias"], EPS)
    # HF (eos_token_id != 2): the first position whose id is eos
    eot = (ids == T["eos"]).int().argmax(dim=-1)
    pooled = x[torch.arange(x.shape[0]), eot]
    return F.linear(pooled, p["text_projection.weight"])


def heads(img, txt, logit_scale):
    a = img / img.norm(p=2, dim=-1, keepdim=True)
    b = txt / txt.norm(p=2, dim=-1, keepdim=True)
    logits = logit_scale.exp() * a @ b.t()
    labels = torch.arange(logits.shape[0])
    loss = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2
    return logits, loss


# --------------------------------------------------------------------------
# writers

def write_safetensors(path, tensors):
    """tensors: list of (name, dtype string, shape, raw bytes)."""
    header, offset, blobs = {"__metadata__": {"format": "pt"}}, 0, []
    for name, dt, shape, raw in sorted(tensors, key=lambda t: t[0]):
        header[name] = {"dtype": dt, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        blobs.append(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def f32_bytes(t):
    return t.detach().contiguous().float().numpy().astype("<f4").tobytes()


def write_golden(path, items):
    with open(path, "wb") as f:
        f.write(b"RLGT")
        f.write(struct.pack("<II", 1, len(items)))
        for name, t in items:
            t = t.detach().float().contiguous()
            nb = name.encode()
            f.write(struct.pack("<I", len(nb)))
            f.write(nb)
            f.write(struct.pack("<I", t.dim()))
            for d in t.shape:
                f.write(struct.pack("<I", d))
            f.write(t.numpy().astype("<f4").tobytes())


def config_json():
    return {
        "architectures": ["CLIPModel"],
        "model_type": "clip",
        "initializer_factor": 1.0,
        "logit_scale_init_value": 2.6592,
        "projection_dim": PROJ,
        "torch_dtype": "float32",
        "transformers_version": "4.30.0",
        "text_config": {
            "vocab_size": T["vocab"], "max_position_embeddings": T["ctx"],
            "hidden_size": T["hidden"], "intermediate_size": T["intermediate"],
            "num_hidden_layers": T["layers"], "num_attention_heads": T["heads"],
            "hidden_act": T["act"], "layer_norm_eps": EPS, "attention_dropout": 0.0,
            "bos_token_id": T["bos"], "eos_token_id": T["eos"], "pad_token_id": 0,
            "model_type": "clip_text_model", "projection_dim": PROJ,
        },
        "vision_config": {
            "image_size": V["image_size"], "patch_size": V["patch_size"],
            "num_channels": V["num_channels"], "hidden_size": V["hidden"],
            "intermediate_size": V["intermediate"], "num_hidden_layers": V["layers"],
            "num_attention_heads": V["heads"], "hidden_act": V["act"], "layer_norm_eps": EPS,
            "dropout": 0.0, "model_type": "clip_vision_model", "projection_dim": PROJ,
        },
    }


# --------------------------------------------------------------------------

def main():
    torch.manual_seed(SEED)
    g = torch.Generator().manual_seed(SEED)
    p = init_params(g)

    B = 3
    pixels = torch.randn(B, V["num_channels"], V["image_size"], V["image_size"], generator=g)
    bos, eos, ctx = T["bos"], T["eos"], T["ctx"]
    body = torch.randint(0, 62, (B, ctx), generator=g)
    ids = torch.zeros(B, ctx, dtype=torch.long)
    for b, (e, pad) in enumerate([(3, 0), (8, eos), (5, 0)]):
        ids[b, 0] = bos
        ids[b, 1:e] = body[b, 1:e]
        ids[b, e] = eos
        ids[b, e + 1:] = pad

    out = [("pixels", pixels), ("ids", ids.float())]

    # ---- base model: contrastive loss and weight / pixel gradients
    leaves = {k: v.clone().requires_grad_(True) for k, v in p.items()}
    px = pixels.clone().requires_grad_(True)
    img = vision(px, leaves)
    txt = text(ids, leaves)
    logits, loss = heads(img, txt, leaves["logit_scale"])
    loss.backward()
    out += [("base.image_embeds", img), ("base.text_embeds", txt), ("base.logits", logits),
            ("base.loss", loss)]
    out += [("base.grad." + n, leaves[n].grad) for n in GRAD_NAMES]
    out.append(("base.grad.pixels", px.grad))

    # ---- prompt classification: CE of logits_per_image against targets
    e_img = img.detach().clone().requires_grad_(True)
    e_txt = txt.detach().clone().requires_grad_(True)
    a = e_img / e_img.norm(p=2, dim=-1, keepdim=True)
    b = e_txt / e_txt.norm(p=2, dim=-1, keepdim=True)
    targets = torch.tensor([2, 0, 1])
    ce = F.cross_entropy(p["logit_scale"].exp() * a @ b.t(), targets)
    ce.backward()
    out += [("ce.targets", targets.float()), ("ce.loss", ce),
            ("ce.grad.image_embeds", e_img.grad), ("ce.grad.text_embeds", e_txt.grad)]

    # ---- LoRA on both towers, non-zero A and B
    shapes = dict(all_shapes())
    lora = {}
    for site in LORA_SITES:
        d_out, d_in = shapes[site + ".weight"]
        A = (0.5 * torch.randn(LORA_R, d_in, generator=g)).requires_grad_(True)
        Bm = (0.5 * torch.randn(d_out, LORA_R, generator=g)).requires_grad_(True)
        lora[site] = (A, Bm)
        out += [(f"lora.{site}.lora_A.weight", A), (f"lora.{site}.lora_B.weight", Bm)]
    img = vision(pixels, p, lora)
    txt = text(ids, p, lora)
    _, loss = heads(img, txt, p["logit_scale"])
    loss.backward()
    out += [("lora.image_embeds", img), ("lora.text_embeds", txt), ("lora.loss", loss)]
    for site in LORA_SITES:
        out += [(f"lora.grad.{site}.lora_A.weight", lora[site][0].grad),
                (f"lora.grad.{site}.lora_B.weight", lora[site][1].grad)]

    # ---- files
    os.makedirs(OUT_DIR, exist_ok=True)
    with open(os.path.join(OUT_DIR, "config.json"), "w") as f:
        json.dump(config_json(), f, indent=2)
        f.write("\n")
    st = [(n, "F32", list(t.shape), f32_bytes(t)) for n, t in p.items()]
    ntok = (V["image_size"] // V["patch_size"]) ** 2 + 1
    for name, n in [("text_model.embeddings.position_ids", ctx),
                    ("vision_model.embeddings.position_ids", ntok)]:
        st.append((name, "I64", [1, n], struct.pack("<%dq" % n, *range(n))))
    write_safetensors(os.path.join(OUT_DIR, "model.safetensors"), st)
    write_golden(os.path.join(OUT_DIR, "golden.bin"), out)
    total = sum(os.path.getsize(os.path.join(OUT_DIR, f)) for f in os.listdir(OUT_DIR))
    print(f"wrote {OUT_DIR} ({total} bytes); loss {loss.item():.6f}")


if __name__ == "__main__":
    main()
