#!/usr/bin/python3
"""
make_block_golden.py: PyTorch reference values for tests/check_block.c.

Writes tests/fixtures/block_golden.bin (committed, so `make check` needs no
PyTorch). Run from the repository root with Debian's torch:

    /usr/bin/python3 tests/ref/make_block_golden.py

The reference is written from the definitions in the CLIP papers and
Hugging Face's CLIPEncoderLayer (pre-LN; q/k/v/out_proj with biases;
fc1 -> activation -> fc2; LayerNorm eps 1e-5), in plain torch and float32,
independently of the C code it checks.

Cases
  case1  B=2 T=5 C=16 NH=2 F=64, quick_gelu, no mask (vision-tower layer)
  case2  same shape, exact gelu, causal mask (text-tower layer)
  clip   the contrastive head: image/text embeddings (4,8), logit_scale

For each block case: every parameter (HF names relative to the layer), the
input x, a fixed upstream gradient R, the output y, loss = sum(y * R), and
the gradient of the loss with respect to every parameter and x
("<case>.grad.<name>"). "<case>.config" holds B, T, C, NH, F, causal
(0/1) and act (0 quick_gelu, 1 gelu) as floats, for a shape cross-check.

File format (all integers uint32 little-endian):
    magic   "RLGT" (0x52 0x4c 0x47 0x54)
    version 1
    count   number of tensors
    count x { name_len, name bytes (UTF-8, no NUL), ndim, dims[ndim],
              float32 little-endian data, prod(dims) values (1 if ndim = 0) }
"""
import math
import os
import struct
import sys

import torch
import torch.nn.functional as F

MAGIC = b"RLGT"
VERSION = 1
SEED = 20240611

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures",
                   "block_golden.bin")


# --------------------------------------------------------------------------
# reference modules

def quick_gelu(x):
    return x * torch.sigmoid(1.702 * x)


def gelu(x):
    return F.gelu(x)  # exact erf form (approximate='none')


def mha(h, p, NH, causal):
    """Self-attention as in CLIPAttention: separate q/k/v/out projections."""
    B, T, C = h.shape
    hs = C // NH
    q = F.linear(h, p["self_attn.q_proj.weight"], p["self_attn.q_proj.bias"])
    k = F.linear(h, p["self_attn.k_proj.weight"], p["self_attn.k_proj.bias"])
    v = F.linear(h, p["self_attn.v_proj.weight"], p["self_attn.v_proj.bias"])
    # (B, T, C) -> (B, NH, T, hs)
    q = q.view(B, T, NH, hs).transpose(1, 2)
    k = k.view(B, T, NH, hs).transpose(1, 2)
    v = v.view(B, T, NH, hs).transpose(1, 2)
    scores = torch.matmul(q, k.transpose(-2, -1)) * (hs ** -0.5)
    if causal:
        mask = torch.ones(T, T, dtype=torch.bool).triu(1)  # key j > query i
        scores = scores.masked_fill(mask, float("-inf"))
    att = torch.softmax(scores, dim=-1)
    o = torch.matmul(att, v).transpose(1, 2).reshape(B, T, C)
    return F.linear(o, p["self_attn.out_proj.weight"], p["self_attn.out_proj.bias"])


def encoder_layer(x, p, NH, causal, act):
    C = x.shape[-1]
    h = F.layer_norm(x, (C,), p["layer_norm1.weight"], p["layer_norm1.bias"], eps=1e-5)
    h = x + mha(h, p, NH, causal)
    m = F.layer_norm(h, (C,), p["layer_norm2.weight"], p["layer_norm2.bias"], eps=1e-5)
    m = F.linear(m, p["mlp.fc1.weight"], p["mlp.fc1.bias"])
    m = act(m)
    m = F.linear(m, p["mlp.fc2.weight"], p["mlp.fc2.bias"])
    return h + m


# --------------------------------------------------------------------------
# cases

def make_params(gen, C, Fh):
    def randn(*shape, std=1.0, mean=0.0):
        return (torch.randn(*shape, generator=gen, dtype=torch.float32) * std + mean)

    p = {}
    p["layer_norm1.weight"] = randn(C, std=0.1, mean=1.0)
    p["layer_norm1.bias"] = randn(C, std=0.1)
    for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
        p["self_attn.%s.weight" % name] = randn(C, C, std=C ** -0.5)
        p["self_attn.%s.bias" % name] = randn(C, std=0.1)
    p["layer_norm2.weight"] = randn(C, std=0.1, mean=1.0)
    p["layer_norm2.bias"] = randn(C, std=0.1)
    p["mlp.fc1.weight"] = randn(Fh, C, std=C ** -0.5)
    p["mlp.fc1.bias"] = randn(Fh, std=0.1)
    p["mlp.fc2.weight"] = randn(C, Fh, std=Fh ** -0.5)
    p["mlp.fc2.bias"] = randn(C, std=0.1)
    return p


def block_case(out, tag, gen, B, T, C, NH, Fh, causal, act_id):
    act = quick_gelu if act_id == 0 else gelu
    p = make_params(gen, C, Fh)
    x = torch.randn(B, T, C, generator=gen, dtype=torch.float32)
    R = torch.randn(B, T, C, generator=gen, dtype=torch.float32)
    for t in p.values():
        t.requires_grad_(True)
    x.requires_grad_(True)

    y = encoder_layer(x, p, NH, causal, act)
    loss = (y * R).sum()
    loss.backward()

    out.append((tag + ".config",
                torch.tensor([B, T, C, NH, Fh, int(causal), act_id], dtype=torch.float32)))
    for name, t in p.items():
        out.append((tag + "." + name, t.detach()))
    out.append((tag + ".x", x.detach()))
    out.append((tag + ".R", R))
    out.append((tag + ".y", y.detach()))
    out.append((tag + ".loss", loss.detach().reshape(())))
    for name, t in p.items():
        out.append((tag + ".grad." + name, t.grad))
    out.append((tag + ".grad.x", x.grad))
    print("%s: loss %.6f |y| %.4f |dx| %.4f" % (tag, loss.item(), y.abs().max().item(),
                                                 x.grad.abs().max().item()))


def clip_case(out, gen, N=4, D=8):
    img = torch.randn(N, D, generator=gen, dtype=torch.float32).requires_grad_(True)
    txt = torch.randn(N, D, generator=gen, dtype=torch.float32).requires_grad_(True)
    logit_scale = torch.tensor(math.log(1 / 0.07), dtype=torch.float32).requires_grad_(True)

    img_n = img / img.norm(dim=-1, keepdim=True)
    txt_n = txt / txt.norm(dim=-1, keepdim=True)
    logits = logit_scale.exp() * img_n @ txt_n.t()          # logits_per_image
    labels = torch.arange(N)
    loss = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2
    loss.backward()

    out.append(("clip.image_embeds", img.detach()))
    out.append(("clip.text_embeds", txt.detach()))
    out.append(("clip.logit_scale", logit_scale.detach().reshape(())))
    out.append(("clip.logits", logits.detach()))
    out.append(("clip.loss", loss.detach().reshape(())))
    out.append(("clip.grad.image_embeds", img.grad))
    out.append(("clip.grad.text_embeds", txt.grad))
    out.append(("clip.grad.logit_scale", logit_scale.grad.reshape(())))
    print("clip: loss %.6f dscale %.6f" % (loss.item(), logit_scale.grad.item()))


# --------------------------------------------------------------------------
# writer

def write(path, tensors):
    names = [n for n, _ in tensors]
    assert len(names) == len(set(names)), "duplicate tensor names"
    with open(path, "wb") as f:
        f.write(MAGIC)
        f.write(struct.pack("<II", VERSION, len(tensors)))
        for name, t in tensors:
            t = t.detach().to(torch.float32).contiguous()
            nb = name.encode("utf-8")
            f.write(struct.pack("<I", len(nb)))
            f.write(nb)
            f.write(struct.pack("<I", t.dim()))
            f.write(struct.pack("<%dI" % t.dim(), *t.shape))
            vals = t.reshape(-1).tolist()
            f.write(struct.pack("<%df" % len(vals), *vals))


def main():
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)
    tensors = []
    block_case(tensors, "case1", gen, B=2, T=5, C=16, NH=2, Fh=64, causal=False, act_id=0)
    block_case(tensors, "case2", gen, B=2, T=5, C=16, NH=2, Fh=64, causal=True, act_id=1)
    clip_case(tensors, gen)
    path = os.path.normpath(sys.argv[1] if len(sys.argv) > 1 else OUT)
    write(path, tensors)
    print("wrote %s: %d tensors, %d bytes" % (path, len(tensors), os.path.getsize(path)))


if __name__ == "__main__":
    main()
