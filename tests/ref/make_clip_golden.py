#!/usr/bin/python3
"""
make_clip_golden.py: a tiny random CLIP in Hugging Face layout and PyTorch
reference values for tests/check_clip.c.

Writes tests/fixtures/clip_tiny/, a complete HF-style model directory
(committed, so `make check` needs no PyTorch):
    config.json        a CLIPConfig (text_config / vision_config), with a few
                       keys the C reader must ignore
    model.safetensors  every CLIPModel tensor in F32 under its HF name, plus
                       the legacy int64 `position_ids` buffers of old hub
                       checkpoints (which the C loader must ignore)
    vocab.json, merges.txt
                       a tiny CLIP byte-level BPE (HF slow-tokenizer pair):
                       the 512 byte symbols, MERGES learned from a caption
                       corpus, <|startoftext|>, <|endoftext|> last, laid out
                       as OpenAI's SimpleTokenizer lays out its own; the
                       config's vocab_size is its size, bos/eos its last ids
    golden.bin         inputs, outputs and gradients (format below)

Run from the repository root with Debian's torch (no transformers needed;
python3-regex for the tokenizer):

    /usr/bin/python3 tests/ref/make_clip_golden.py

The model is written here from clip.md sections 3.1-3.4 (transformers'
modeling_clip.py CLIPModel) in plain torch, independently of the C:
  vision: conv patch embedding (no bias), class token, position embedding,
          pre_layrnorm, pre-LN encoder layers, post_layernorm on the class
          token, visual_projection (no bias)
  text:   token + position embedding, causal pre-LN layers, final_layer_norm,
          pooled at the first eos_token_id, text_projection (no bias)
  heads:  L2 normalise, logits_per_image = exp(logit_scale) img @ txt^T,
          contrastive loss (CE(rows) + CE(columns)) / 2
Every value stored is a float32; the maths runs in float64 on those values
(so the reference error is far below the tolerance the C is held to).
The adapters are peft's forward expressions (huggingface/peft
src/peft/tuners/{lora,vera,randlora}/layer.py), the same formulas as
tests/ref/make_adapter_golden.py, written from peft and not from the C; every
gradient comes from torch.autograd.

Shapes: image 16, patch 4 (17 tokens), vision width 32, 2 layers, 2 heads,
MLP 64, quick_gelu; text vocab = the BPE's size (bos, eos its last two ids),
context 12, width 24, 2 layers, 2 heads, MLP 48, exact gelu; projection 16.
The towers have different widths and activations so a swapped shape or act
shows.

The text inputs are the tokenizer's output (the port of OpenAI's
SimpleTokenizer in make_tokenizer_fixture.py, on this directory's vocab and
merges) for the CAPTIONS below, framed to context 12 as clip.tokenize
(truncate=True) does; row 1 is padded with the end token (Hugging Face's
padding), the others with 0.

golden.bin tensors:
  pixels (3,3,16,16); ids (3,12) as floats
  text.caption.<i> (bytes,): the UTF-8 bytes of caption i as floats;
  text.pad (3): the pad id of each row; text.eot (3): its end-of-text
  position. tok.caption (bytes,), tok.ids (12): one more caption, longer
  than the context (truncated, end token forced into the last slot)
  base.image_embeds (3,16), base.text_embeds (3,16), base.logits (3,3)
  (logits_per_image), base.loss (contrastive)
  base.grad.<HF name>: the contrastive loss's gradient w.r.t. the weights in
  GRAD_NAMES, and base.grad.pixels
  ce.targets (3); ce.loss: cross-entropy of logits_per_image against them;
  ce.grad.image_embeds, ce.grad.text_embeds
  for each adapter case <c> of ADAPTER_CASES (lora, vera, randlora_peft,
  randlora_paper, randlora_sparse), attached with non-zero trainable values
  to the linears of its `sites` in both towers:
    <c>.meta             r, alpha (0: the method's default), scaling used
    <c>.shared.<name>    the shared frozen tensors in peft's names and shapes
                         (vera_A (r, max_in), vera_B (max_out, r);
                         randlora_A (r, 1, min_dim), randlora_B
                         (max_dim, n_g, r)), max over the adapted linears
    <c>.<site>.<name>    the trainable tensors (lora_A.weight, lora_B.weight;
                         vera_lambda_b, vera_lambda_d; randlora_lambda,
                         randlora_gamma)
    <c>.image_embeds, <c>.text_embeds, <c>.logits, <c>.loss (contrastive)
    <c>.grad.<site>.<name>  the loss's gradient w.r.t. every trainable tensor

File format (all integers uint32 little-endian), as tests/golden.h reads:
    magic "RLGT", version 1, count, then count x { name_len, name, ndim,
    dims[ndim], float32 data }
"""
import json
import math
import os
import struct
import sys

import torch
import torch.nn.functional as F

SEED = 20250301
HERE = os.path.dirname(os.path.abspath(__file__))
OUT_DIR = os.path.normpath(os.path.join(HERE, "..", "fixtures", "clip_tiny"))
sys.path.insert(0, HERE)
from make_tokenizer_fixture import SimpleTokenizer, learn_merges  # noqa: E402

DT = torch.float64                      # compute dtype (values are float32)

# the tokenizer: merges learned from this corpus (ties: the smaller pair)
TOK_CORPUS = """a photo of a cat. a photo of a dog. a photo of the small dog. a photo of a big cat.
a blurry photo of a bird. a drawing of a cat. itap of a goldfish. a photo of my dog.
""" * 2
MERGES = 60                             # at most; learning stops at frequency 1
# (caption, pad with the end token?): EOT at 9, 4, 8, so the text tower is
# cut at 10 of 12 positions. "birds" and "café" are split into several BPE
# pieces; row 2 needs whitespace clean-up and lower-casing.
CAPTIONS = [("a photo of 2 birds.", False), ("A DOG!", True), ("  a Caf\u00e9\t!", False)]
TRUNC_CAPTION = "a blurry photo of a big cat and a small dog."

V = dict(image_size=16, patch_size=4, num_channels=3, hidden=32, layers=2, heads=2,
         intermediate=64, act="quick_gelu")
T = dict(vocab=None, ctx=12, hidden=24, layers=2, heads=2, intermediate=48, act="gelu",
         bos=None, eos=None)            # vocab, bos, eos: from the tokenizer
PROJ = 16
LOGIT_SCALE = math.log(1 / 0.07)
EPS = 1e-5

TOKEN_EMB = "text_model.embeddings.token_embedding.weight"
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

LORA_SITES = [
    "vision_model.encoder.layers.0.self_attn.q_proj",
    "vision_model.encoder.layers.1.mlp.fc2",
    "text_model.encoder.layers.0.self_attn.v_proj",
    "text_model.encoder.layers.1.mlp.fc1",
    "text_model.encoder.layers.1.self_attn.out_proj",
]
# VeRA and RandLoRA: square, wide (fc1: d_in < d_out, RandLoRA's case 1) and
# narrow (fc2: d_out < d_in, case 2) linears of both towers. The largest is
# 64 x 64 (vision fc1 / fc2), so every other layer uses a strict slice of
# the shared tensors.
VR_SITES = [
    "vision_model.encoder.layers.0.self_attn.k_proj",
    "vision_model.encoder.layers.0.mlp.fc1",
    "vision_model.encoder.layers.1.self_attn.v_proj",
    "vision_model.encoder.layers.1.mlp.fc2",
    "text_model.encoder.layers.0.self_attn.q_proj",
    "text_model.encoder.layers.0.mlp.fc2",
    "text_model.encoder.layers.1.self_attn.out_proj",
    "text_model.encoder.layers.1.mlp.fc1",
]
# the sparse case: a smaller set (largest 48 x 48: text fc1 / fc2), so its
# shared bases are smaller and sliced differently
SPARSE_SITES = [
    "vision_model.encoder.layers.1.self_attn.k_proj",
    "text_model.encoder.layers.0.mlp.fc1",
    "text_model.encoder.layers.0.mlp.fc2",
    "text_model.encoder.layers.1.self_attn.q_proj",
]
# name, method, r, alpha (0: the method's default), RandLoRA profile and
# basis, the std of the trainable values, the sites. The stds keep each
# dW about as large as the frozen W, so every branch matters and float32
# stays well conditioned.
ADAPTER_CASES = [
    dict(name="lora", method="lora", r=2, alpha=4.0, std=(0.5, 0.5), sites=LORA_SITES),
    dict(name="vera", method="vera", r=4, alpha=0.0, std=(0.8, 0.8), sites=VR_SITES),
    dict(name="randlora_peft", method="randlora", r=6, alpha=0.0, profile="peft",
         basis="dense", std=(0.05, 0.05), sites=VR_SITES),
    dict(name="randlora_paper", method="randlora", r=6, alpha=0.0, profile="paper",
         basis="dense", std=(0.6, 0.6), sites=VR_SITES),
    dict(name="randlora_sparse", method="randlora", r=4, alpha=3.0, profile="peft",
         basis="sparse", std=(0.25, 0.25), sites=SPARSE_SITES),
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


def linear(x, p, path, ad):
    """nn.Linear with an optional adapter branch: y = x W^T + b + branch(x)."""
    y = F.linear(x, p[path + ".weight"], p.get(path + ".bias"))
    if ad is not None and path in ad:
        y = y + ad[path](x)
    return y


def encoder_layer(x, p, pre, NH, causal, act, ad):
    Bn, Tn, C = x.shape
    hs = C // NH
    h = F.layer_norm(x, (C,), p[pre + "layer_norm1.weight"], p[pre + "layer_norm1.bias"], EPS)
    q = linear(h, p, pre + "self_attn.q_proj", ad).view(Bn, Tn, NH, hs).transpose(1, 2)
    k = linear(h, p, pre + "self_attn.k_proj", ad).view(Bn, Tn, NH, hs).transpose(1, 2)
    v = linear(h, p, pre + "self_attn.v_proj", ad).view(Bn, Tn, NH, hs).transpose(1, 2)
    s = torch.matmul(q, k.transpose(-2, -1)) * hs ** -0.5
    if causal:
        s = s.masked_fill(torch.ones(Tn, Tn, dtype=torch.bool).triu(1), float("-inf"))
    o = torch.matmul(torch.softmax(s, dim=-1), v).transpose(1, 2).reshape(Bn, Tn, C)
    x = x + linear(o, p, pre + "self_attn.out_proj", ad)
    h = F.layer_norm(x, (C,), p[pre + "layer_norm2.weight"], p[pre + "layer_norm2.bias"], EPS)
    h = act_fn(act, linear(h, p, pre + "mlp.fc1", ad))
    return x + linear(h, p, pre + "mlp.fc2", ad)


def vision(pixels, p, ad=None):
    C, ps = V["hidden"], V["patch_size"]
    x = F.conv2d(pixels, p["vision_model.embeddings.patch_embedding.weight"], stride=ps)
    x = x.flatten(2).transpose(1, 2)                        # (B, P, C), row-major grid
    cls = p["vision_model.embeddings.class_embedding"].expand(x.shape[0], 1, C)
    x = torch.cat([cls, x], dim=1) + p["vision_model.embeddings.position_embedding.weight"]
    x = F.layer_norm(x, (C,), p["vision_model.pre_layrnorm.weight"],
                     p["vision_model.pre_layrnorm.bias"], EPS)
    for l in range(V["layers"]):
        x = encoder_layer(x, p, f"vision_model.encoder.layers.{l}.", V["heads"], False,
                          V["act"], ad)
    pooled = F.layer_norm(x[:, 0, :], (C,), p["vision_model.post_layernorm.weight"],
                          p["vision_model.post_layernorm.bias"], EPS)
    return F.linear(pooled, p["visual_projection.weight"])


def text(ids, p, ad=None):
    C = T["hidden"]
    Tn = ids.shape[1]
    x = p["text_model.embeddings.token_embedding.weight"][ids] + \
        p["text_model.embeddings.position_embedding.weight"][:Tn]
    for l in range(T["layers"]):
        x = encoder_layer(x, p, f"text_model.encoder.layers.{l}.", T["heads"], True, T["act"],
                          ad)
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
# adapters: peft's forward expressions (make_adapter_golden.py has the same)

def n_bases(d, r, profile):
    """RandLoRA's number of bases for a dimension d"""
    if profile == "paper":  # the authors' vision code: min(1000, floor(d/r) + 1)
        return min(1000, d // r + 1)
    nb = d / r  # peft layer.py: int(n) if n.is_integer() else int(n) + 1
    return int(nb) if nb.is_integer() else int(nb) + 1


def f32_randn(g, shape, std):
    """float32 values (what the file holds), computed on in float64"""
    return (std * torch.randn(shape, generator=g)).float().to(DT)


def std_normalised(t):
    """peft divides each RandLoRA basis tensor by its (unbiased) std"""
    return (t / t.std()).float().to(DT)


def randlora_shared(g, r, lo, hi, n_g, basis):
    """randlora_A (r, 1, lo), randlora_B (hi, n_g, r): peft's
    _init_randlora_A_randlora_B (kaiming-uniform, then / std; the bound
    cancels) or _init_randlora_A_randlora_B_sparse (ternary, s = 3)"""
    if basis == "dense":
        A = 2 * torch.rand((r, 1, lo), generator=g) - 1
        B = 2 * torch.rand((hi, n_g, r), generator=g) - 1
    else:
        sp = 3.0
        ua = torch.rand((r, 1, lo), generator=g)
        ub = torch.rand((hi, n_g, r), generator=g)
        A, B = torch.zeros(ua.shape), torch.zeros(ub.shape)
        A[ua < 1 / (2 * sp)] = -1
        A[ua > 1 - 1 / (2 * sp)] = 1
        B[ub < 1 / (2 * sp)] = -1
        B[ub > 1 - 1 / (2 * sp)] = 1
    return std_normalised(A), std_normalised(B)


def make_adapters(g, case, shapes):
    """The shared tensors, the trainable leaves and the branches of one case.
    Returns (meta, shared {name: tensor}, params {site: {name: leaf}},
    branches {site: fn(x)}, deltas {site: fn() -> dW})."""
    r, method, sites = case["r"], case["method"], case["sites"]
    s_a, s_b = case["std"]
    dims = {site: shapes[site + ".weight"] for site in sites}          # (d_out, d_in)
    max_out = max(d[0] for d in dims.values())
    max_in = max(d[1] for d in dims.values())
    shared, params, branches, deltas = {}, {}, {}, {}

    if method == "lora":
        scale = case["alpha"] / r
        for site in sites:
            d_out, d_in = dims[site]
            A = f32_randn(g, (r, d_in), s_a).requires_grad_(True)      # lora_A.weight
            B = f32_randn(g, (d_out, r), s_b).requires_grad_(True)     # lora_B.weight
            params[site] = {"lora_A.weight": A, "lora_B.weight": B}
            # peft: lora_B(lora_A(dropout(x))) * scaling
            branches[site] = (lambda A, B: lambda x: F.linear(F.linear(x, A), B) * scale)(A, B)
            deltas[site] = (lambda A, B: lambda: (B @ A) * scale)(A, B)

    elif method == "vera":
        scale = 1.0
        # peft vera/model.py _kaiming_init (gain sqrt 2, fan_in): vera_A (r, max_in)
        # ~ U(+-sqrt(6 / max_in)), vera_B (max_out, r) ~ U(+-sqrt(6 / r)); A first
        bound_a, bound_b = math.sqrt(6 / max_in), math.sqrt(6 / r)
        vera_A = ((2 * torch.rand((r, max_in), generator=g) - 1) * bound_a).float().to(DT)
        vera_B = ((2 * torch.rand((max_out, r), generator=g) - 1) * bound_b).float().to(DT)
        shared = {"vera_A": vera_A, "vera_B": vera_B}
        for site in sites:
            d_out, d_in = dims[site]
            lam_b = f32_randn(g, (d_out,), s_a).requires_grad_(True)   # vera_lambda_b
            lam_d = f32_randn(g, (r,), s_b).requires_grad_(True)       # vera_lambda_d
            params[site] = {"vera_lambda_b": lam_b, "vera_lambda_d": lam_d}
            sA, sB = vera_A[:, :d_in], vera_B[:d_out, :]

            # peft: lambda_b * linear(lambda_d * linear(dropout(x), sliced_A), sliced_B)
            def br(x, lam_b=lam_b, lam_d=lam_d, sA=sA, sB=sB):
                return lam_b * F.linear(lam_d * F.linear(x, sA), sB)

            def dl(lam_b=lam_b, lam_d=lam_d, sA=sA, sB=sB):
                return (lam_b.unsqueeze(-1) * sB) @ (lam_d.unsqueeze(-1) * sA)

            branches[site], deltas[site] = br, dl

    else:                                                              # randlora
        prof = case["profile"]
        lo, hi = min(max_out, max_in), max(max_out, max_in)
        n_g = n_bases(lo, r, prof)
        randlora_A, randlora_B = randlora_shared(g, r, lo, hi, n_g, case["basis"])
        shared = {"randlora_A": randlora_A, "randlora_B": randlora_B}
        for site in sites:
            d_out, d_in = dims[site]
            min_dim, max_dim = min(d_out, d_in), max(d_out, d_in)
            n = n_bases(min_dim, r, prof)
            if prof == "paper":
                scale = 1.0 / r
            else:
                scale = (case["alpha"] if case["alpha"] > 0 else 20.0 * r) / r
            lam = f32_randn(g, (r, n), s_a).requires_grad_(True)       # randlora_lambda
            gam = f32_randn(g, (n, min_dim), s_b).requires_grad_(True)  # randlora_gamma
            params[site] = {"randlora_lambda": lam, "randlora_gamma": gam}

            def get_scaled_bases(lam=lam, gam=gam, n=n, min_dim=min_dim, max_dim=max_dim,
                                 d_in=d_in):                           # peft layer.py
                sliced_A = randlora_A[:, :n, :min_dim]
                sliced_B = randlora_B[:max_dim, :n, :]
                update_B = sliced_B.flatten(start_dim=1)
                # UniqueBaseGrad.forward: lambda[:, :, None] * A * gamma[None, ]
                update_A = (lam[:, :, None] * sliced_A * gam[None, ]).flatten(end_dim=1)
                if min_dim == d_in:
                    return update_A, update_B
                return update_B.T, update_A.T

            # peft: linear(linear(dropout(x), update_B), update_A) * scaling
            def br(x, gsb=get_scaled_bases, scale=scale):
                update_B, update_A = gsb()
                return F.linear(F.linear(x, update_B), update_A) * scale

            def dl(gsb=get_scaled_bases, scale=scale):                 # get_delta_weight
                update_B, update_A = gsb()
                return (update_B.T @ update_A.T).T * scale

            branches[site], deltas[site] = br, dl
    meta = torch.tensor([r, case["alpha"], scale], dtype=DT)
    return meta, shared, params, branches, deltas


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

def caption_bytes(text):
    return torch.tensor(list(text.encode("utf-8")), dtype=torch.float32)


def main():
    g = torch.Generator().manual_seed(SEED)

    # ---- the tokenizer first: it fixes the vocabulary size
    merges = learn_merges(TOK_CORPUS, MERGES)
    tok = SimpleTokenizer(merges)
    T["vocab"] = len(tok.encoder)
    T["bos"] = tok.encoder["<|startoftext|>"]
    T["eos"] = tok.encoder["<|endoftext|>"]
    assert (T["bos"], T["eos"]) == (T["vocab"] - 2, T["vocab"] - 1)
    assert max(tok.encoder.values()) == T["vocab"] - 1

    p32 = init_params(g)
    p = {k: v.to(DT) for k, v in p32.items()}
    shapes = dict(all_shapes())

    B = 3
    pixels = torch.randn(B, V["num_channels"], V["image_size"], V["image_size"],
                         generator=g).to(DT)
    bos, eos, ctx = T["bos"], T["eos"], T["ctx"]
    rows, pads, eots = [], [], []
    for text_, pad_eos in CAPTIONS:
        row = tok.tokenize(text_, ctx)          # clip.tokenize, truncate=True, pad 0
        e = row.index(eos)
        assert row[0] == bos and e < ctx - 1, "caption must fit without truncation"
        if pad_eos:                             # Hugging Face pads with the end token
            row[e + 1:] = [eos] * (ctx - e - 1)
        rows.append(row)
        pads.append(eos if pad_eos else 0)
        eots.append(e)
    ids = torch.tensor(rows, dtype=torch.long)
    trunc = tok.tokenize(TRUNC_CAPTION, ctx)
    assert trunc[-1] == eos and len(tok.encode(TRUNC_CAPTION)) > ctx - 2

    out = [("pixels", pixels), ("ids", ids.float())]
    out += [("text.caption.%d" % i, caption_bytes(c)) for i, (c, _) in enumerate(CAPTIONS)]
    out += [("text.pad", torch.tensor(pads, dtype=torch.float32)),
            ("text.eot", torch.tensor(eots, dtype=torch.float32)),
            ("tok.caption", caption_bytes(TRUNC_CAPTION)),
            ("tok.ids", torch.tensor(trunc, dtype=torch.float32))]

    # ---- base model: contrastive loss and weight / pixel gradients
    leaves = {k: v.clone().requires_grad_(True) for k, v in p.items()}
    px = pixels.clone().requires_grad_(True)
    img = vision(px, leaves)
    txt = text(ids, leaves)
    logits, loss = heads(img, txt, leaves["logit_scale"])
    loss.backward()
    out += [("base.image_embeds", img), ("base.text_embeds", txt), ("base.logits", logits),
            ("base.loss", loss)]
    for n in GRAD_NAMES:
        gr = leaves[n].grad
        if n == TOKEN_EMB:
            # only the rows of the ids that occur: every other row is exactly 0
            used = torch.unique(ids)
            unused = torch.ones(T["vocab"], dtype=torch.bool)
            unused[used] = False
            assert gr[unused].abs().max() == 0
            out.append(("base.grad.token_rows", used.float()))
            gr = gr[used]
        out.append(("base.grad." + n, gr))
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

    # ---- adapters on both towers, non-zero trainable values
    for case in ADAPTER_CASES:
        c = case["name"]
        meta, shared, params, branches, deltas = make_adapters(g, case, shapes)
        ratios = []
        for site in case["sites"]:
            dW = deltas[site]().detach()
            # the branch is x dW^T (peft's get_delta_weight): a self-check of this script
            xt = torch.randn(5, dW.shape[1], dtype=DT)
            assert torch.allclose(branches[site](xt).detach(), xt @ dW.T, atol=1e-10)
            ratios.append((dW.norm() / p[site + ".weight"].norm()).item())
        img = vision(pixels, p, branches)
        txt = text(ids, p, branches)
        logits, loss = heads(img, txt, p["logit_scale"])
        loss.backward()
        out.append((c + ".meta", meta))
        out += [(f"{c}.shared.{k}", v) for k, v in shared.items()]
        for site in case["sites"]:
            out += [(f"{c}.{site}.{k}", v) for k, v in params[site].items()]
        out += [(c + ".image_embeds", img), (c + ".text_embeds", txt), (c + ".logits", logits),
                (c + ".loss", loss)]
        gmax = 0.0
        for site in case["sites"]:
            for k, v in params[site].items():
                out.append((f"{c}.grad.{site}.{k}", v.grad))
                gmax = max(gmax, v.grad.abs().max().item())
        print(f"{c:16s} loss {loss.item():.6f}  |dW|/|W| {min(ratios):.2f}..{max(ratios):.2f}"
              f"  max |grad| {gmax:.3g}")

    # ---- files
    os.makedirs(OUT_DIR, exist_ok=True)
    with open(os.path.join(OUT_DIR, "config.json"), "w") as f:
        json.dump(config_json(), f, indent=2)
        f.write("\n")
    with open(os.path.join(OUT_DIR, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(tok.encoder, f, ensure_ascii=False)
    with open(os.path.join(OUT_DIR, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        for a_, b_ in merges:
            f.write(a_ + " " + b_ + "\n")
    st = [(n, "F32", list(t.shape), f32_bytes(t)) for n, t in p32.items()]
    ntok = (V["image_size"] // V["patch_size"]) ** 2 + 1
    for name, n in [("text_model.embeddings.position_ids", ctx),
                    ("vision_model.embeddings.position_ids", ntok)]:
        st.append((name, "I64", [1, n], struct.pack("<%dq" % n, *range(n))))
    write_safetensors(os.path.join(OUT_DIR, "model.safetensors"), st)
    write_golden(os.path.join(OUT_DIR, "golden.bin"), out)
    total = sum(os.path.getsize(os.path.join(OUT_DIR, f)) for f in os.listdir(OUT_DIR))
    print(f"wrote {OUT_DIR} ({total} bytes; vocab {T['vocab']}, {len(merges)} merges, "
          f"{len(out)} golden tensors)")


if __name__ == "__main__":
    main()
