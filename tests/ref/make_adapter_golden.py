#!/usr/bin/python3
"""Write tests/fixtures/adapter_golden.bin: LoRA, VeRA, RandLoRA (peft and
paper profiles, and the authors' fork scaling), full and none on one linear
layer, in both orientations, computed in PyTorch from peft's definitions
(huggingface/peft src/peft/tuners/{lora,vera,randlora}/layer.py, as quoted in
../shared/reference/methods.md), for tests/check_adapters.c.

Run from the repository root with Debian's interpreter (it has python3-torch):

    /usr/bin/python3 tests/ref/make_adapter_golden.py

This is written from peft's code, not from the C: the forward is peft's
forward expression, the delta weight is peft's get_delta_weight expression,
and every gradient comes from torch.autograd (float64), so the C's
hand-written backward, its merged-path projection and its slicing of the
shared tensors are all checked against an independent computation.

For each case the inputs are fixed float32 tensors (W, x, the upstream
gradient dy, the shared frozen tensors at the method's maximum sizes, which
are larger than the layer so the slicing is exercised, and nonzero trainable
values); the outputs are y = x W^T + branch(x), dx, the gradient of every
trainable tensor for the loss sum(y * dy), and delta_weight. `init.*` tensors
are the values peft (or the paper's vision code) gives the deterministic
trainable tensors at initialisation.

Format: named float32 tensors, as tests/golden.h reads them (magic "RLGT",
version 1, little-endian). Names are "<case>.<what>"; <case>.meta holds
    d_out d_in max_out max_in N r alpha rslora
"""
import math
import os
import struct

import torch

MAGIC = b"RLGT"
VERSION = 1
SEED = 20250201
N = 4  # rows

torch.set_default_dtype(torch.float64)


def f32(t):
    """round to float32 (what the file can hold), keep computing in float64"""
    return t.to(torch.float32).to(torch.float64)


def randn(g, *shape, std=1.0):
    return f32(torch.randn(*shape, generator=g, dtype=torch.float64) * std)


def n_bases(d, r, profile):
    if profile == "paper":  # vision code: min(1000, floor(d/r) + 1)
        return min(1000, d // r + 1)
    nb = d / r  # peft layer.py: int(n) if n.is_integer() else int(n) + 1
    return int(nb) if nb.is_integer() else int(nb) + 1


def lora_case(g, d_out, d_in, r, alpha, rslora):
    s = alpha / math.sqrt(r) if rslora else alpha / r
    A = randn(g, r, d_in, std=0.5).requires_grad_()      # lora_A.weight
    B = randn(g, d_out, r, std=0.5).requires_grad_()     # lora_B.weight

    def branch(x):  # peft: lora_B(lora_A(dropout(x))) * scaling
        return torch.nn.functional.linear(torch.nn.functional.linear(x, A), B) * s

    def delta():    # peft: (weight_B @ weight_A) * scaling
        return (B @ A) * s

    params = {"lora_A.weight": A, "lora_B.weight": B}
    init = {"lora_B.weight": torch.zeros(d_out, r)}
    return {}, params, init, branch, delta


def vera_case(g, d_out, d_in, max_out, max_in, r):
    vera_A = randn(g, r, max_in)                         # shared, frozen
    vera_B = randn(g, max_out, r)
    lam_b = randn(g, d_out, std=0.5).requires_grad_()    # vera_lambda_b
    lam_d = randn(g, r, std=0.5).requires_grad_()        # vera_lambda_d
    sA = vera_A[:, :d_in]
    sB = vera_B[:d_out, :]

    def branch(x):  # peft: lambda_b * linear(lambda_d * linear(dropout(x), sliced_A), sliced_B)
        F = torch.nn.functional
        return lam_b * F.linear(lam_d * F.linear(x, sA), sB)

    def delta():    # peft get_delta_weight: (lambda_b * sliced_B) @ (lambda_d * sliced_A)
        return (lam_b.unsqueeze(-1) * sB) @ (lam_d.unsqueeze(-1) * sA)

    shared = {"vera_A": vera_A, "vera_B": vera_B}
    params = {"vera_lambda_b": lam_b, "vera_lambda_d": lam_d}
    init = {"vera_lambda_b": torch.zeros(d_out), "vera_lambda_d": torch.full((r,), 0.1)}
    return shared, params, init, branch, delta


def randlora_case(g, d_out, d_in, max_out, max_in, r, alpha, profile):
    lo, hi = min(max_out, max_in), max(max_out, max_in)
    n_g = n_bases(lo, r, "paper" if profile == "paper" else "peft")
    randlora_A = randn(g, r, 1, lo)                      # shared, frozen
    randlora_B = randn(g, hi, n_g, r)
    min_dim, max_dim = min(d_out, d_in), max(d_out, d_in)
    n = n_bases(min_dim, r, "paper" if profile == "paper" else "peft")
    lam = randn(g, r, n, std=0.5).requires_grad_()       # randlora_lambda
    gam = randn(g, n, min_dim, std=0.5).requires_grad_() # randlora_gamma
    if profile == "paper":
        s = 1.0 / r
        init = {"randlora_lambda": torch.full((r, n), 1.0 / max(n, r)),
                "randlora_gamma": torch.zeros(n, min_dim)}
    else:
        s = alpha / r if profile == "peft" else alpha / (r * math.sqrt(n))  # "fork"
        init = {"randlora_lambda": torch.zeros(r, n),
                "randlora_gamma": torch.full((n, min_dim), 1.0 / max(n, min_dim))}

    def get_scaled_bases():  # peft layer.py get_scaled_bases
        sliced_A = randlora_A[:, :n, :min_dim]
        sliced_B = randlora_B[:max_dim, :n, :]
        update_B = sliced_B.flatten(start_dim=1)
        # UniqueBaseGrad.forward: lambda[:, :, None] * A * gamma[None, ]
        update_A = (lam[:, :, None] * sliced_A * gam[None, ]).flatten(end_dim=1)
        if min_dim == d_in:
            return update_A, update_B
        return update_B.T, update_A.T

    def branch(x):  # peft forward: linear(linear(dropout(x), update_B), update_A) * scaling
        update_B, update_A = get_scaled_bases()
        F = torch.nn.functional
        return F.linear(F.linear(x, update_B), update_A) * s

    def delta():    # peft get_delta_weight
        update_B, update_A = get_scaled_bases()
        return (update_B.T @ update_A.T).T * s

    shared = {"randlora_A": randlora_A, "randlora_B": randlora_B}
    params = {"randlora_lambda": lam, "randlora_gamma": gam}
    return shared, params, init, branch, delta


def full_case(g, d_out, d_in):
    dW = randn(g, d_out, d_in, std=0.5).requires_grad_()

    def branch(x):
        return torch.nn.functional.linear(x, dW)

    return {}, {"weight_delta": dW}, {"weight_delta": torch.zeros(d_out, d_in)}, branch, lambda: dW


def none_case(g, d_out, d_in):
    return {}, {}, {}, lambda x: torch.zeros(x.shape[0], d_out), lambda: torch.zeros(d_out, d_in)


# name, method, builder arguments; d_out, d_in, max_out, max_in, r, alpha, rslora
CASES = [
    ("lora_c1",          "lora",     dict(d_out=10, d_in=6, max_out=10, max_in=6, r=2, alpha=4.0, rslora=0)),
    ("lora_c2_rs",       "lora",     dict(d_out=6, d_in=10, max_out=6, max_in=10, r=3, alpha=4.0, rslora=1)),
    ("vera_c1",          "vera",     dict(d_out=10, d_in=6, max_out=12, max_in=11, r=3, alpha=0.0, rslora=0)),
    ("vera_c2",          "vera",     dict(d_out=6, d_in=10, max_out=12, max_in=11, r=3, alpha=0.0, rslora=0)),
    ("randlora_peft_c1", "randlora", dict(d_out=10, d_in=6, max_out=12, max_in=11, r=2, alpha=3.0, rslora=0, profile="peft")),
    ("randlora_peft_c2", "randlora", dict(d_out=6, d_in=10, max_out=12, max_in=11, r=2, alpha=3.0, rslora=0, profile="peft")),
    ("randlora_peft_sq", "randlora", dict(d_out=7, d_in=7, max_out=12, max_in=11, r=4, alpha=40.0, rslora=0, profile="peft")),
    ("randlora_peft_r4", "randlora", dict(d_out=6, d_in=11, max_out=12, max_in=11, r=4, alpha=8.0, rslora=0, profile="peft")),
    ("randlora_paper_c1", "randlora", dict(d_out=10, d_in=6, max_out=12, max_in=11, r=2, alpha=0.0, rslora=0, profile="paper")),
    ("randlora_paper_c2", "randlora", dict(d_out=6, d_in=10, max_out=12, max_in=11, r=3, alpha=0.0, rslora=0, profile="paper")),
    ("randlora_fork_c2", "randlora", dict(d_out=6, d_in=10, max_out=12, max_in=11, r=2, alpha=4.0, rslora=0, profile="fork")),
    ("full_c2",          "full",     dict(d_out=6, d_in=10, max_out=6, max_in=10, r=0, alpha=0.0, rslora=0)),
    ("none_c1",          "none",     dict(d_out=10, d_in=6, max_out=10, max_in=6, r=0, alpha=0.0, rslora=0)),
]


def build(g, method, a):
    if method == "lora":
        return lora_case(g, a["d_out"], a["d_in"], a["r"], a["alpha"], a["rslora"])
    if method == "vera":
        return vera_case(g, a["d_out"], a["d_in"], a["max_out"], a["max_in"], a["r"])
    if method == "randlora":
        return randlora_case(g, a["d_out"], a["d_in"], a["max_out"], a["max_in"], a["r"],
                             a["alpha"], a["profile"])
    if method == "full":
        return full_case(g, a["d_out"], a["d_in"])
    return none_case(g, a["d_out"], a["d_in"])


def main():
    g = torch.Generator().manual_seed(SEED)
    out = []
    for name, method, a in CASES:
        d_out, d_in = a["d_out"], a["d_in"]
        W = randn(g, d_out, d_in, std=0.3)
        x = randn(g, N, d_in).requires_grad_()
        dy = randn(g, N, d_out)
        shared, params, init, branch, delta = build(g, method, a)

        y = torch.nn.functional.linear(x, W) + branch(x)
        (y * dy).sum().backward()
        dW = delta().detach()
        # the branch is x dW^T: a consistency check of this script itself
        assert torch.allclose(branch(x.detach()), x.detach() @ dW.T, atol=1e-10)

        meta = [d_out, d_in, a["max_out"], a["max_in"], N, a["r"], a["alpha"], a["rslora"]]
        out.append((name + ".meta", torch.tensor(meta, dtype=torch.float64)))
        out.append((name + ".W", W))
        out.append((name + ".x", x.detach()))
        out.append((name + ".dy", dy))
        for k, v in shared.items():
            out.append((name + ".shared." + k, v))
        for k, v in params.items():
            out.append((name + ".param." + k, v.detach()))
        for k, v in init.items():
            out.append((name + ".init." + k, v))
        out.append((name + ".y", y.detach()))
        out.append((name + ".dx", x.grad))
        for k, v in params.items():
            out.append((name + ".grad." + k, v.grad))
        out.append((name + ".delta", dW))

    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.normpath(os.path.join(here, "..", "fixtures", "adapter_golden.bin"))
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
