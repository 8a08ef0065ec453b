"""bench/torch_decoder.py: a Llama-family decoder (Hugging Face
LlamaForCausalLM / Qwen2ForCausalLM) in plain PyTorch, and the decoder
training step of `randlora bench --model qwen2-0.5b` (cli/bench_decoder.c)
written with it. Imported by bench/torch_baseline.py (the decoder presets)
and by tests/ref/torch_decoder_check.py, which loads a random tiny
transformers Qwen2 and Llama into this model and compares the losses.

The model uses HF's parameter names (model.embed_tokens.weight,
model.layers.N.self_attn.q_proj.weight, ..., model.norm.weight,
lm_head.weight), so a transformers state dict loads into it as is:

  embed_tokens -> L x [ x + o_proj(attn(rope(q), rope(k), v)) with
                        q, k, v = q/k/v_proj(RMSNorm(x)) (biases: Qwen2),
                        grouped-query attention (num_key_value_heads),
                        causal softmax(q k^T / sqrt(hs)) v through
                        F.scaled_dot_product_attention (transformers'
                        default attention on CPU);
                        h + down_proj(silu(gate_proj(n)) * up_proj(n)) ]
               -> RMSNorm -> lm_head (tied to embed_tokens when the config
                  says so)

RMSNorm is HF's: x * rsqrt(mean(x^2) + eps) in float32, times the weight.
Rotary embeddings are HF's rotate_half convention with inv_freq =
theta^(-2i/hs) (no rope_scaling: the presets do not use it).
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

# the presets of models/llama_presets.c (HF's config keys)
DECODER_PRESETS = {
    "llama-tiny": dict(arch="llama", hidden_size=128, intermediate_size=352,
                       num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
                       head_dim=32, vocab_size=258, max_position_embeddings=512,
                       rope_theta=10000.0, rms_norm_eps=1e-6, tie_word_embeddings=True),
    "qwen2-0.5b": dict(arch="qwen2", hidden_size=896, intermediate_size=4864,
                       num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                       head_dim=64, vocab_size=151936, max_position_embeddings=131072,
                       rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=True),
}
# the paper's targets, as randlora bench adapts them
DECODER_TARGETS = ("q_proj", "k_proj", "v_proj", "up_proj", "down_proj")


class RMSNorm(nn.Module):
    def __init__(self, C, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(C))
        self.eps = eps

    def forward(self, x):
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * xf.to(x.dtype)


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class DecoderAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        C, hs = c["hidden_size"], c["head_dim"]
        self.NH, self.KVH, self.hs = c["num_attention_heads"], c["num_key_value_heads"], hs
        bias = c["arch"] == "qwen2"
        self.q_proj = nn.Linear(C, self.NH * hs, bias=bias)
        self.k_proj = nn.Linear(C, self.KVH * hs, bias=bias)
        self.v_proj = nn.Linear(C, self.KVH * hs, bias=bias)
        self.o_proj = nn.Linear(self.NH * hs, C, bias=False)

    def forward(self, x, cos, sin):
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.NH, self.hs).transpose(1, 2)
        k = self.k_proj(x).view(B, T, self.KVH, self.hs).transpose(1, 2)
        v = self.v_proj(x).view(B, T, self.KVH, self.hs).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        rep = self.NH // self.KVH
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.o_proj(o.transpose(1, 2).reshape(B, T, self.NH * self.hs))


class DecoderMLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        C, Fd = c["hidden_size"], c["intermediate_size"]
        self.gate_proj = nn.Linear(C, Fd, bias=False)
        self.up_proj = nn.Linear(C, Fd, bias=False)
        self.down_proj = nn.Linear(Fd, C, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.input_layernorm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])
        self.self_attn = DecoderAttention(c)
        self.post_attention_layernorm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])
        self.mlp = DecoderMLP(c)

    def forward(self, x, cos, sin):
        h = x + self.self_attn(self.input_layernorm(x), cos, sin)
        return h + self.mlp(self.post_attention_layernorm(h))


class DecoderBody(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embed_tokens = nn.Embedding(c["vocab_size"], c["hidden_size"])
        self.layers = nn.ModuleList(DecoderLayer(c) for _ in range(c["num_hidden_layers"]))
        self.norm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])


class Decoder(nn.Module):
    """LlamaForCausalLM / Qwen2ForCausalLM in plain torch, HF's names"""

    def __init__(self, c):
        super().__init__()
        self.c = c
        self.model = DecoderBody(c)
        self.lm_head = nn.Linear(c["hidden_size"], c["vocab_size"], bias=False)
        if c["tie_word_embeddings"]:
            self.lm_head.weight = self.model.embed_tokens.weight
        hs = c["head_dim"]
        inv = 1.0 / (c["rope_theta"] ** (torch.arange(0, hs, 2, dtype=torch.int64).float() / hs))
        self.register_buffer("inv_freq", inv, persistent=False)

    def init_hf(self, gen):
        """HF's _init_weights: linears and the embedding N(0, 0.02), biases
        0, RMSNorm weights 1 (randlora's llama_model_init_random)"""
        std = self.c.get("initializer_range", 0.02)
        with torch.no_grad():
            for mod in self.modules():
                if isinstance(mod, (nn.Linear, nn.Embedding)):
                    if not (isinstance(mod, nn.Linear) and mod is self.lm_head
                            and self.c["tie_word_embeddings"]):
                        mod.weight.normal_(0.0, std, generator=gen)
                    if getattr(mod, "bias", None) is not None:
                        mod.bias.zero_()

    def hidden(self, ids):
        B, T = ids.shape
        pos = torch.arange(T, dtype=torch.float32)
        freqs = torch.outer(pos, self.inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos()[None, None], emb.sin()[None, None]
        x = self.model.embed_tokens(ids)
        for layer in self.model.layers:
            x = layer(x, cos, sin)
        return self.model.norm(x)

    def forward(self, ids):
        return self.lm_head(self.hidden(ids))

    def loss(self, ids):
        """the mean next-token cross-entropy over B (T-1) positions (HF's
        labels = ids, shifted inside the model)"""
        logits = self(ids)
        V = logits.shape[-1]
        return F.cross_entropy(logits[:, :-1].reshape(-1, V).float(),
                               ids[:, 1:].reshape(-1))


def decoder_sites(model, targets=DECODER_TARGETS):
    """(module, attribute) of every targeted linear of every layer"""
    sites = []
    for layer in model.model.layers:
        for parent in (layer.self_attn, layer.mlp):
            for name in targets:
                if isinstance(getattr(parent, name, None), nn.Linear):
                    sites.append((parent, name))
    return sites


def flops_per_token(c, T):
    """analytic forward FLOPs per token: every linear (2 d_in d_out), the
    head, attention's two products at the causal average (T+1)/2 keys"""
    C, Fd, L = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"]
    hs, NH, KVH = c["head_dim"], c["num_attention_heads"], c["num_key_value_heads"]
    lin = C * NH * hs * 2 + C * KVH * hs * 2 + 3 * C * Fd
    att = 2 * NH * hs * (T + 1) / 2
    return 2 * L * lin + 2 * L * att + 2 * C * c["vocab_size"]


def main_decoder(a, Adapted, Shared, cpu_capability):
    """the decoder step, timed as torch_baseline's main; prints one JSON
    line with tokens_per_s"""
    import json
    import os
    import resource
    import time

    c = DECODER_PRESETS[a.model]
    r = a.rank or 16
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    gen = torch.Generator().manual_seed(a.seed)
    model = Decoder(c)
    model.init_hf(gen)
    for p in model.parameters():
        p.requires_grad_(False)
    sites = decoder_sites(model)
    if a.method not in ("none", "full"):
        max_out = max(getattr(m, n).weight.shape[0] for m, n in sites)
        max_in = max(getattr(m, n).weight.shape[1] for m, n in sites)
        shared = Shared(a.method, r, max_out, max_in, gen)
    else:
        shared = None
    if a.method != "none":
        for mod, name in sites:
            setattr(mod, name, Adapted(getattr(mod, name), a.method, r, shared))
    params = [p for p in model.parameters() if p.requires_grad]
    trains = len(params) > 0
    opt = torch.optim.AdamW(params, lr=1e-4) if trains else None
    B, T = a.batch, a.seq
    ids = torch.randint(0, c["vocab_size"], (B, T), generator=gen)

    def step():
        if trains:
            opt.zero_grad(set_to_none=True)
        with torch.set_grad_enabled(trains):
            loss = model.loss(ids)
        if trains:
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
        return loss.item()

    def cpu_now():
        ru = resource.getrusage(resource.RUSAGE_SELF)
        return ru.ru_utime + ru.ru_stime

    losses = [step()]                                     # warm-up
    times, cpu = [], []
    for _ in range(a.steps):
        t0, c0 = time.perf_counter(), cpu_now()
        losses.append(step())
        times.append(time.perf_counter() - t0)
        cpu.append(cpu_now() - c0)
    # the median as randlora bench takes it (the upper one of an even count)
    med = sorted(times)[len(times) // 2]
    cpu_med = sorted(cpu)[len(cpu) // 2]
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps(dict(
        impl="torch", torch=torch.__version__, precision="fp32", cpu_capability=cpu_capability(),
        omp_wait_policy=os.environ.get("OMP_WAIT_POLICY", "default"),
        openblas_thread_timeout=os.environ.get("OPENBLAS_THREAD_TIMEOUT", "default"),
        model=a.model, method=a.method, rank=r,
        batch=B, accumulate=1, seq=T, steps=a.steps, threads=torch.get_num_threads(),
        n_trainable=sum(p.numel() for p in params), n_sites=len(sites),
        step_s=round(med, 6), step_min_s=round(min(times), 6), step_cpu_s=round(cpu_med, 6),
        tokens_per_s=round(B * T / med, 3), peak_rss_mb=round(rss_mb, 1),
        gflop_per_token_fwd=round(flops_per_token(c, T) / 1e9, 4),
        loss=round(losses[-1], 6), losses=[round(v, 6) for v in losses[:64]])), flush=True)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit("bench/torch_decoder.py is a module: run bench/torch_baseline.py "
                     "--model qwen2-0.5b")
