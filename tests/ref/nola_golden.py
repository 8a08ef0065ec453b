#!/usr/bin/python3
"""Write tests/fixtures/nola_golden.bin: NoLA on one linear layer, computed in
PyTorch from the RandLoRA authors' vision code (PaulAlbert31/RandLoRA
vision_language/src/rand_lora.py at 4ac565e: gen_mats, register_param and
merge_BA for param_type 'nola', Linear.forward), for tests/check_nola.c.

Run from the repository root with Debian's interpreter (it has python3-torch):

    /usr/bin/python3 tests/ref/nola_golden.py

Written from the authors' expressions, not from the C:
    basis_b (n, in, r), basis_a (n, r, out)    each divided by its std
    lora_b = einsum('blk,b->lk', basis_b[:, :in_dim, :], coef[0])   (in, r)
    lora_a = einsum('blk,b->lk', basis_a[:, :, :out_dim], coef[1])  (r, out)
    y = x W^T + scaling * (x @ lora_b) @ lora_a,  scaling = lora_alpha / r
with the coefficients coef (2, n) initialised to 1/n. Gradients come from
torch.autograd in float64. The harness stores the bases transposed per basis
(its nola_A (n, r, max_in) is basis_b^T, nola_B (n, max_out, r) is basis_a^T),
so they are written in that layout, at maximum sizes larger than the layer so
the slicing is exercised.

Format: named float32 tensors as tests/golden.h reads them ("RLGT", version
1). Names "<case>.<what>"; <case>.meta = d_out d_in max_out max_in N r alpha n.
"""
import math
import os
import struct

import torch

MAGIC = b"RLGT"
VERSION = 1
SEED = 20240507
N = 4

torch.set_default_dtype(torch.float64)

# name, d_out, d_in, max_out, max_in, r, alpha, n
CASES = [
    ("nola_c1", 12, 7, 14, 9, 1, 1.0, 16),     # d_in < d_out, the paper's rank 1
    ("nola_c2", 6, 10, 8, 13, 2, 3.0, 24),     # d_out < d_in, rank 2, alpha 3
]


def f32(t):
    return t.to(torch.float32).to(torch.float64)


def kaiming_bases(g, n, rows, cols):
    """n kaiming-uniform (a = sqrt 5) (rows, cols) tensors, as gen_mats draws them"""
    fan_in = cols
    bound = 1.0 / math.sqrt(fan_in)
    return (torch.rand(n, rows, cols, generator=g) * 2 - 1) * bound


def main():
    g = torch.Generator().manual_seed(SEED)
    out = []
    for name, d_out, d_in, max_out, max_in, r, alpha, n in CASES:
        basis_b = kaiming_bases(g, n, max_in, r)            # (n, in, r)
        basis_a = kaiming_bases(g, n, r, max_out)           # (n, r, out)
        basis_b, basis_a = f32(basis_b / basis_b.std()), f32(basis_a / basis_a.std())
        init = torch.ones(2, n) / n
        coef = f32(init + 0.05 * torch.randn(2, n, generator=g)).requires_grad_()
        W = f32(0.3 * torch.randn(d_out, d_in, generator=g))
        x = f32(torch.randn(N, d_in, generator=g)).requires_grad_()
        dy = f32(torch.randn(N, d_out, generator=g))
        scaling = alpha / r

        lora_b = torch.einsum('blk,b->lk', basis_b[:, :d_in, :], coef[0])
        lora_a = torch.einsum('blk,b->lk', basis_a[:, :, :d_out], coef[1])
        y = x @ W.T + scaling * ((x @ lora_b) @ lora_a)
        (y * dy).sum().backward()
        delta = (scaling * (lora_b @ lora_a)).T.detach()   # (d_out, d_in)

        meta = [d_out, d_in, max_out, max_in, N, r, alpha, n]
        out.append((name + ".meta", torch.tensor(meta, dtype=torch.float64)))
        out.append((name + ".shared.nola_A", basis_b.permute(0, 2, 1)))
        out.append((name + ".shared.nola_B", basis_a.permute(0, 2, 1)))
        out.append((name + ".init.nola_coef", init))
        out.append((name + ".param.nola_coef", coef.detach()))
        out.append((name + ".W", W))
        out.append((name + ".x", x.detach()))
        out.append((name + ".dy", dy))
        out.append((name + ".y", y.detach()))
        out.append((name + ".dx", x.grad))
        out.append((name + ".grad.nola_coef", coef.grad))
        out.append((name + ".delta", delta))

    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.normpath(os.path.join(here, "..", "fixtures", "nola_golden.bin"))
    with open(path, "wb") as f:
        f.write(MAGIC)
        f.write(struct.pack("<II", VERSION, len(out)))
        for nm, t in out:
            nb = nm.encode()
            t = t.detach().to(torch.float32).contiguous()
            f.write(struct.pack("<I", len(nb)))
            f.write(nb)
            f.write(struct.pack("<I", t.dim()))
            f.write(struct.pack("<%dI" % t.dim(), *t.shape))
            vals = t.reshape(-1).tolist()
            f.write(struct.pack("<%df" % len(vals), *vals))
    print("wrote %s (%d tensors, %d bytes, torch %s)"
          % (path, len(out), os.path.getsize(path), torch.__version__))


if __name__ == "__main__":
    main()
