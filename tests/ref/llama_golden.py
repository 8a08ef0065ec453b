#!/usr/bin/python3
"""
llama_golden.py: PyTorch reference values and tiny checkpoints for the
Llama-family decoder (tests/check_llama*.c).

Writes under tests/fixtures/llama/ (committed, so `make check` needs no
PyTorch):
    llama/     LlamaForCausalLM layout: GQA (4 query heads, 2 key/value
               heads), head_dim 12 != hidden/heads, llama3 rope_scaling,
               untied lm_head; F32, one model.safetensors
    llama_bf16/ the same model stored as BF16 (the reference is computed
               from the bf16-rounded weights)
    qwen2/     Qwen2ForCausalLM layout: q/k/v biases, 4 heads sharing 1
               key/value head, tied head; F32, sharded in two files with
               model.safetensors.index.json
    ids.txt    the token ids the score tests run (whitespace-separated,
               one sequence per line, lengths 1..9)
    golden.bin named tensors (format of tests/golden.h):
      <model>.ids            (N, T) ids of ids.txt, padded with -1
      <model>.token_logprob  (N, T-1) log p(id[t+1] | id[..t]), 0 past a line
      <model>.loss           mean next-token cross-entropy over the batch
      <model>.grad.<name>    d loss / d every weight (HF tensor names)
      kernel cases rmsnorm.*, rope.*, gqa.*, swiglu.* (inputs, a fixed
      upstream gradient R, outputs and every input gradient)

Run from the repository root with a Python that has torch:

    /usr/bin/python3 tests/ref/llama_golden.py [OUT_DIR]

The reference is plain torch in float32 written from HF's modeling_llama.py
and modeling_qwen2.py definitions (RMSNorm, rotate_half rotary embeddings,
repeat_kv grouped-query attention, causal mask, SiLU-gated MLP), not from
the C code it checks. When `transformers` imports, the script also builds
LlamaForCausalLM / Qwen2ForCausalLM from each fixture's config and weights
and checks that their logits equal this reference (max difference printed);
otherwise it says it skipped that check.
"""
import json
import math
import os
import struct
import sys

import torch

MAGIC = b"RLGT"
VERSION = 1
SEED = 20260512
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.normpath(sys.argv[1] if len(sys.argv) > 1 else
                       os.path.join(HERE, "..", "fixtures", "llama"))

LT_NAMES = [
    "input_layernorm.weight",
    "self_attn.q_proj.weight", "self_attn.q_proj.bias",
    "self_attn.k_proj.weight", "self_attn.k_proj.bias",
    "self_attn.v_proj.weight", "self_attn.v_proj.bias",
    "self_attn.o_proj.weight", "self_attn.o_proj.bias",
    "post_attention_layernorm.weight",
    "mlp.gate_proj.weight", "mlp.gate_proj.bias",
    "mlp.up_proj.weight", "mlp.up_proj.bias",
    "mlp.down_proj.weight", "mlp.down_proj.bias",
]


# --------------------------------------------------------------------------
# the reference

def rmsnorm(x, w, eps):
    var = x.pow(2).mean(-1, keepdim=True)
    return w * (x * torch.rsqrt(var + eps))


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def inv_freq_of(cfg):
    hd = cfg["head_dim"]
    base = cfg["rope_theta"]
    inv = 1.0 / (base ** (torch.arange(0, hd, 2, dtype=torch.int64).float() / hd))
    rs = cfg.get("rope_scaling")
    if rs and rs["rope_type"] == "linear":
        inv = inv / rs["factor"]
    elif rs and rs["rope_type"] == "llama3":
        factor, lo, hi = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
        old = rs["original_max_position_embeddings"]
        lo_w, hi_w = old / lo, old / hi
        wavelen = 2 * math.pi / inv
        inv_l = torch.where(wavelen > lo_w, inv / factor, inv)
        smooth = (old / wavelen - lo) / (hi - lo)
        smoothed = (1 - smooth) * inv_l / factor + smooth * inv_l
        medium = ~(wavelen < hi_w) * ~(wavelen > lo_w)
        inv = torch.where(medium, smoothed, inv_l)
    return inv


def rope_cos_sin(inv, T, pos0=0):
    pos = torch.arange(pos0, pos0 + T, dtype=torch.float32)
    freqs = pos[:, None] * inv[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


def apply_rope(x, cos, sin):
    # x (B, H, T, hs), cos/sin (T, hs)
    return x * cos + rotate_half(x) * sin


def gqa(q, k, v, NH, KVH):
    # q (B, NH, T, hs), k/v (B, KVH, T, hs): repeat_kv, causal softmax
    B, _, T, hs = q.shape
    rep = NH // KVH
    k = k[:, :, None].expand(B, KVH, rep, T, hs).reshape(B, NH, T, hs)
    v = v[:, :, None].expand(B, KVH, rep, T, hs).reshape(B, NH, T, hs)
    s = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(hs)
    mask = torch.ones(T, T, dtype=torch.bool).triu(1)
    s = s.masked_fill(mask, float("-inf"))
    return torch.matmul(torch.softmax(s, dim=-1), v)


def lin(x, p, name):
    b = p.get(name + ".bias")
    y = x @ p[name + ".weight"].t()
    return y + b if b is not None else y


def decoder(ids, p, cfg):
    """logits (B, T, V) of LlamaForCausalLM / Qwen2ForCausalLM"""
    B, T = ids.shape
    NH, KVH, hs = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    eps = cfg["rms_norm_eps"]
    cos, sin = rope_cos_sin(inv_freq_of(cfg), T)
    x = p["model.embed_tokens.weight"][ids]
    for l in range(cfg["num_hidden_layers"]):
        pre = "model.layers.%d." % l
        lp = {k[len(pre):]: v for k, v in p.items() if k.startswith(pre)}
        n1 = rmsnorm(x, lp["input_layernorm.weight"], eps)
        q = lin(n1, lp, "self_attn.q_proj").view(B, T, NH, hs).transpose(1, 2)
        k = lin(n1, lp, "self_attn.k_proj").view(B, T, KVH, hs).transpose(1, 2)
        v = lin(n1, lp, "self_attn.v_proj").view(B, T, KVH, hs).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        o = gqa(q, k, v, NH, KVH).transpose(1, 2).reshape(B, T, NH * hs)
        h = x + lin(o, lp, "self_attn.o_proj")
        n2 = rmsnorm(h, lp["post_attention_layernorm.weight"], eps)
        g = lin(n2, lp, "mlp.gate_proj")
        u = lin(n2, lp, "mlp.up_proj")
        x = h + lin(torch.nn.functional.silu(g) * u, lp, "mlp.down_proj")
    x = rmsnorm(x, p["model.norm.weight"], eps)
    head = p["model.embed_tokens.weight"] if cfg["tie_word_embeddings"] else p["lm_head.weight"]
    return x @ head.t()


# --------------------------------------------------------------------------
# models

def make_model(gen, cfg):
    """random weights in table order (HF names); norms near 1, biases small"""
    C, F, V = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    NH, KVH, hs = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    qd, kvd = NH * hs, KVH * hs
    qwen = cfg["model_type"] == "qwen2"
    qkv_bias = qwen or cfg.get("attention_bias", False)
    o_bias = (not qwen) and cfg.get("attention_bias", False)
    mlp_bias = cfg.get("mlp_bias", False)
    shapes = {"self_attn.q_proj": (qd, C), "self_attn.k_proj": (kvd, C),
              "self_attn.v_proj": (kvd, C), "self_attn.o_proj": (C, qd),
              "mlp.gate_proj": (F, C), "mlp.up_proj": (F, C), "mlp.down_proj": (C, F)}

    def randn(*shape, std=0.2, mean=0.0):
        return torch.randn(*shape, generator=gen) * std + mean

    p = {"model.embed_tokens.weight": randn(V, C, std=1.0)}
    for l in range(cfg["num_hidden_layers"]):
        pre = "model.layers.%d." % l
        for n in LT_NAMES:
            mod = n.rsplit(".", 1)[0]
            if n.endswith("layernorm.weight"):
                p[pre + n] = randn(C, std=0.1, mean=1.0)
            elif n.endswith(".weight"):
                p[pre + n] = randn(*shapes[mod], std=1.0 / math.sqrt(shapes[mod][1]))
            else:
                has = {"self_attn.q_proj": qkv_bias, "self_attn.k_proj": qkv_bias,
                       "self_attn.v_proj": qkv_bias, "self_attn.o_proj": o_bias}.get(mod, mlp_bias)
                if has:
                    p[pre + n] = randn(shapes[mod][0], std=0.1)
    p["model.norm.weight"] = randn(C, std=0.1, mean=1.0)
    if not cfg["tie_word_embeddings"]:
        p["lm_head.weight"] = randn(V, C, std=1.0 / math.sqrt(C))
    return p


def bf16_round(p):
    return {k: v.to(torch.bfloat16).to(torch.float32) for k, v in p.items()}


def st_bytes(tensors, dtype):
    """a safetensors file (header sorted by name, data in that order)"""
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        if dtype == "BF16":
            b = t.to(torch.bfloat16).view(torch.int16).numpy().tobytes()
        else:
            b = t.to(torch.float32).numpy().tobytes()
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def write_model(d, cfg, p, dtype="F32", shards=1):
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        os.remove(os.path.join(d, f))
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    if shards == 1:
        with open(os.path.join(d, "model.safetensors"), "wb") as f:
            f.write(st_bytes(p, dtype))
        return
    names = list(p)
    wm, total = {}, 0
    for s in range(shards):
        part = names[s * len(names) // shards:(s + 1) * len(names) // shards]
        fn = "model-%05d-of-%05d.safetensors" % (s + 1, shards)
        with open(os.path.join(d, fn), "wb") as f:
            f.write(st_bytes({n: p[n] for n in part}, dtype))
        for n in part:
            wm[n] = fn
            total += p[n].numel() * 4
    with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": wm}, f, indent=2)
        f.write("\n")


def model_case(out, tag, cfg, p, rows):
    N, T = len(rows), max(len(r) for r in rows)
    ids = torch.full((N, T), -1, dtype=torch.int64)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = torch.tensor(r)
    run = ids.clamp(min=0)
    params = {k: v.clone().requires_grad_(True) for k, v in p.items()}
    logits = decoder(run, params, cfg)
    logp = torch.log_softmax(logits, dim=-1)
    tgt = ids[:, 1:]
    valid = tgt >= 0
    tok = logp[:, :-1].gather(-1, tgt.clamp(min=0)[..., None])[..., 0]
    tok = torch.where(valid, tok, torch.zeros_like(tok))
    loss = -(tok.sum() / valid.sum())
    loss.backward()
    out.append((tag + ".ids", ids.float()))
    out.append((tag + ".token_logprob", tok.detach()))
    out.append((tag + ".loss", loss.detach()))
    for k, v in params.items():
        out.append((tag + ".grad." + k, v.grad))
    return logits.detach()


def compare_transformers(cfg, p, rows, logits, tag):
    try:
        import transformers
    except ImportError:
        print("%s: transformers is not importable here: the comparison with "
              "LlamaForCausalLM/Qwen2ForCausalLM was skipped" % tag)
        return
    if cfg["model_type"] == "qwen2":
        conf = transformers.Qwen2Config(**cfg)
        model = transformers.Qwen2ForCausalLM(conf)
    else:
        conf = transformers.LlamaConfig(**cfg)
        model = transformers.LlamaForCausalLM(conf)
    sd = dict(p)
    if cfg["tie_word_embeddings"]:
        sd["lm_head.weight"] = p["model.embed_tokens.weight"]
    missing, unexpected = model.load_state_dict(sd, strict=False)
    missing = [m for m in missing if "rotary_emb" not in m]
    assert not missing and not unexpected, (missing, unexpected)
    model.eval()
    N, T = len(rows), max(len(r) for r in rows)
    run = torch.zeros((N, T), dtype=torch.int64)
    for i, r in enumerate(rows):
        run[i, :len(r)] = torch.tensor(r)
    with torch.no_grad():
        hf = model(input_ids=run).logits
    diff = (hf - logits).abs().max().item()
    print("%s: transformers %s %s logits vs this reference: max |diff| %.3g" %
          (tag, transformers.__version__, type(model).__name__, diff))
    assert diff < 1e-4, diff


# --------------------------------------------------------------------------
# kernel cases

def kernel_cases(out, gen):
    def randn(*s):
        return torch.randn(*s, generator=gen)

    # RMSNorm (N=5, C=16)
    x, w, R = randn(5, 16), randn(16) * 0.3 + 1, randn(5, 16)
    x.requires_grad_(True)
    w.requires_grad_(True)
    y = rmsnorm(x, w, 1e-6)
    (y * R).sum().backward()
    out += [("rmsnorm.x", x.detach()), ("rmsnorm.w", w.detach()), ("rmsnorm.R", R),
            ("rmsnorm.out", y.detach()), ("rmsnorm.dx", x.grad), ("rmsnorm.dw", w.grad)]

    # rope: B=2, T=5, H=3, hs=8, theta 10000, positions 0..4
    cfg = {"head_dim": 8, "rope_theta": 10000.0}
    cos, sin = rope_cos_sin(inv_freq_of(cfg), 5)
    x, R = randn(2, 5, 3 * 8), randn(2, 5, 3 * 8)
    x.requires_grad_(True)
    xh = x.view(2, 5, 3, 8).transpose(1, 2)
    y = apply_rope(xh, cos, sin).transpose(1, 2).reshape(2, 5, 24)
    (y * R).sum().backward()
    out += [("rope.x", x.detach()), ("rope.R", R), ("rope.out", y.detach()),
            ("rope.dx", x.grad)]

    # GQA: B=2, T=5, NH=4, KVH=2, hs=6
    B, T, NH, KVH, hs = 2, 5, 4, 2, 6
    q, k, v = randn(B, T, NH * hs), randn(B, T, KVH * hs), randn(B, T, KVH * hs)
    R = randn(B, T, NH * hs)
    for t in (q, k, v):
        t.requires_grad_(True)
    o = gqa(q.view(B, T, NH, hs).transpose(1, 2), k.view(B, T, KVH, hs).transpose(1, 2),
            v.view(B, T, KVH, hs).transpose(1, 2), NH, KVH).transpose(1, 2).reshape(B, T, NH * hs)
    (o * R).sum().backward()
    out += [("gqa.q", q.detach()), ("gqa.k", k.detach()), ("gqa.v", v.detach()), ("gqa.R", R),
            ("gqa.out", o.detach()), ("gqa.dq", q.grad), ("gqa.dk", k.grad), ("gqa.dv", v.grad)]

    # SwiGLU (7, 11)
    g, u, R = randn(7, 11) * 3, randn(7, 11), randn(7, 11)
    g.requires_grad_(True)
    u.requires_grad_(True)
    y = torch.nn.functional.silu(g) * u
    (y * R).sum().backward()
    out += [("swiglu.gate", g.detach()), ("swiglu.up", u.detach()), ("swiglu.R", R),
            ("swiglu.out", y.detach()), ("swiglu.dgate", g.grad), ("swiglu.dup", u.grad)]


# --------------------------------------------------------------------------

def write_golden(path, tensors):
    with open(path, "wb") as f:
        f.write(MAGIC)
        f.write(struct.pack("<II", VERSION, len(tensors)))
        for name, t in tensors:
            t = t.detach().to(torch.float32).contiguous()
            nb = name.encode()
            f.write(struct.pack("<I", len(nb)))
            f.write(nb)
            f.write(struct.pack("<I", t.dim()))
            if t.dim():
                f.write(struct.pack("<%dI" % t.dim(), *t.shape))
            vals = t.reshape(-1).tolist()
            f.write(struct.pack("<%df" % len(vals), *vals))


LLAMA_CFG = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama",
    "hidden_size": 32, "intermediate_size": 40, "num_hidden_layers": 2,
    "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 12,
    "vocab_size": 61, "max_position_embeddings": 64, "rms_norm_eps": 1e-5,
    "rope_theta": 500.0,
    "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                     "high_freq_factor": 4.0, "original_max_position_embeddings": 16},
    "attention_bias": False, "mlp_bias": False, "tie_word_embeddings": False,
    "hidden_act": "silu", "initializer_range": 0.02, "bos_token_id": 1,
    "eos_token_id": [2, 3], "torch_dtype": "float32",
}
QWEN2_CFG = {
    "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2",
    "hidden_size": 24, "intermediate_size": 36, "num_hidden_layers": 2,
    "num_attention_heads": 4, "num_key_value_heads": 1, "vocab_size": 53,
    "max_position_embeddings": 128, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
    "rope_scaling": None, "tie_word_embeddings": True, "use_sliding_window": False,
    "sliding_window": 128, "hidden_act": "silu", "initializer_range": 0.02,
    "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "float32",
}


def main():
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)
    rows = [[5, 17, 33, 2, 9, 40, 11, 7, 30], [1, 8], [12, 12, 12, 50, 0], [3],
            [22, 41, 6, 19, 25, 36, 44]]
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "ids.txt"), "w") as f:
        for r in rows:
            f.write(" ".join(str(i) for i in r) + "\n")
    tensors = []
    llama_cfg = dict(LLAMA_CFG)
    qwen_cfg = dict(QWEN2_CFG)
    qwen_cfg["head_dim"] = qwen_cfg["hidden_size"] // qwen_cfg["num_attention_heads"]

    p = make_model(gen, llama_cfg)
    write_model(os.path.join(OUT, "llama"), LLAMA_CFG, p)
    logits = model_case(tensors, "llama", llama_cfg, p, rows)
    compare_transformers(llama_cfg, p, rows, logits, "llama")

    pb = bf16_round(p)
    bcfg = dict(LLAMA_CFG, torch_dtype="bfloat16")
    write_model(os.path.join(OUT, "llama_bf16"), bcfg, pb, dtype="BF16")
    logits = model_case(tensors, "llama_bf16", llama_cfg, pb, rows)

    q = make_model(gen, qwen_cfg)
    write_model(os.path.join(OUT, "qwen2"), QWEN2_CFG, q, shards=2)
    logits = model_case(tensors, "qwen2", qwen_cfg, q, rows)
    compare_transformers(qwen_cfg, q, rows, logits, "qwen2")

    kernel_cases(tensors, gen)
    path = os.path.join(OUT, "golden.bin")
    write_golden(path, tensors)
    print("wrote %s: %d tensors, %d bytes" % (path, len(tensors), os.path.getsize(path)))


if __name__ == "__main__":
    main()
