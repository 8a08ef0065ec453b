#!/usr/bin/python3
"""Write tests/fixtures/st_torch.safetensors and tests/fixtures/st_torch_expected.txt,
read back by tests/check_safetensors.c.

Run from the repository root with Debian's interpreter (it has python3-torch):

    /usr/bin/python3 tests/ref/make_safetensors_fixture.py

The `safetensors` Python package is not needed: the file is written by hand
from the format spec (huggingface/safetensors README and src/tensor.rs):
u64 little-endian header length N, N bytes of JSON, then the raw
little-endian row-major bytes of each tensor; tensors laid out in the
reference writer's order (dtype alignment descending, then name) and the
header padded with spaces to a multiple of 8. The tensors are made in torch
as F32, F16, BF16 (plus an I64 `position_ids`-style legacy buffer, a scalar
and an empty tensor), and their bytes come from torch itself, so the C reader
is checked against torch's encodings of half and bfloat16.

The expected file is text, one item a line, floats as C99 hex floats
(exact; "inf", "-inf", "nan" for the specials, which strtof reads):

    randlora-safetensors-expected 1
    meta KEY VALUE
    tensor NAME DTYPE NDIM d0 .. d{NDIM-1} NUMEL v0 .. v{NUMEL-1}
        (the values are torch's t.float() of the stored tensor)
    round X F16BITS BF16BITS
        (torch's float32 -> half / bfloat16 rounding of X, bits in hex)
    end
"""
import json
import math
import struct

import torch

FIX = "tests/fixtures/st_torch.safetensors"
EXP = "tests/fixtures/st_torch_expected.txt"

torch.manual_seed(1234)

DTYPES = {  # torch dtype -> (safetensors name, rank in the reference enum)
    torch.int64: ("I64", 13),
    torch.float32: ("F32", 11),
    torch.bfloat16: ("BF16", 8),
    torch.float16: ("F16", 7),
}

specials = [0.0, -0.0, 1.0, -2.5, 65504.0, float("inf"), float("-inf"), float("nan"),
            2.0 ** -24, -(2.0 ** -24), 2.0 ** -14, 3.0 * 2.0 ** -20, 1e-3, 3.14159265,
            1e38, -1e-40]

tensors = {
    "text_model.embeddings.position_ids": torch.arange(7, dtype=torch.int64).reshape(1, 7),
    "vision_model.encoder.layers.0.self_attn.q_proj.weight":
        torch.randn(6, 5, dtype=torch.float32),
    "vision_model.encoder.layers.0.self_attn.q_proj.bias": torch.randn(6, dtype=torch.float32),
    "logit_scale": torch.tensor(4.6052, dtype=torch.float32),          # shape []
    "empty": torch.zeros(0, 3, dtype=torch.float32),                   # no bytes
    "half.weight": (torch.randn(4, 5) * 50).to(torch.float16),
    "half.special": torch.tensor(specials, dtype=torch.float32).to(torch.float16),
    "bf16.weight": torch.randn(3, 2, 4).to(torch.bfloat16),
    "bf16.special": torch.tensor(specials, dtype=torch.float32).to(torch.bfloat16),
}
metadata = {"format": "pt", "source": "tests/ref/make_safetensors_fixture.py"}


def raw_bytes(t):
    t = t.contiguous()
    if t.dtype in (torch.float16, torch.bfloat16):
        # reinterpret as int16 and pack little-endian
        bits = t.view(torch.int16).reshape(-1).tolist()
        return struct.pack("<%dh" % len(bits), *bits)
    if t.dtype == torch.float32:
        return struct.pack("<%df" % t.numel(), *t.reshape(-1).tolist())
    if t.dtype == torch.int64:
        return struct.pack("<%dq" % t.numel(), *t.reshape(-1).tolist())
    raise ValueError(t.dtype)


order = sorted(tensors, key=lambda n: (-DTYPES[tensors[n].dtype][1], n))
header = {"__metadata__": metadata}
blobs = []
pos = 0
for name in order:
    b = raw_bytes(tensors[name])
    header[name] = {"dtype": DTYPES[tensors[name].dtype][0],
                    "shape": list(tensors[name].shape),
                    "data_offsets": [pos, pos + len(b)]}
    blobs.append(b)
    pos += len(b)
hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
hjson += b" " * ((8 - len(hjson) % 8) % 8)
with open(FIX, "wb") as f:
    f.write(struct.pack("<Q", len(hjson)))
    f.write(hjson)
    for b in blobs:
        f.write(b)


def hexf(x):
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return float(x).hex()


def bits16(t):
    return t.view(torch.int16).item() & 0xFFFF


# round-trip probes: ties to even in both formats, overflow, subnormals
probes = [1.0, -2.5, 65504.0, 65519.0, 65520.0, 1e6, 2.0 ** -24, 2.0 ** -25,
          3 * 2.0 ** -26, 2.0 ** -26, 1.0 + 2.0 ** -11, 1.0 + 3 * 2.0 ** -11,
          1.0 + 2.0 ** -8, 1.0 + 3 * 2.0 ** -8, 1.0 + 2.0 ** -8 + 2.0 ** -20,
          -(1.0 + 2.0 ** -11), 3.4028234663852886e38, 6.1e-5, 5.96e-8, 1e-45,
          float("inf"), float("-inf"), 0.1, -0.3333333432674408]
probes += torch.randn(24).mul(100).tolist()

with open(EXP, "w") as f:
    f.write("randlora-safetensors-expected 1\n")
    for k in sorted(metadata):
        f.write("meta %s %s\n" % (k, metadata[k]))
    for name in sorted(tensors):
        t = tensors[name]
        vals = t.float().reshape(-1).tolist()
        f.write("tensor %s %s %d %s %d %s\n" % (
            name, DTYPES[t.dtype][0], t.dim(), " ".join(str(d) for d in t.shape),
            len(vals), " ".join(hexf(v) for v in vals)))
    for x in probes:
        x32 = torch.tensor([x], dtype=torch.float32)
        f.write("round %s %04x %04x\n" % (hexf(x32.item()), bits16(x32.half()),
                                          bits16(x32.bfloat16())))
    f.write("end\n")
print("wrote", FIX, EXP)
