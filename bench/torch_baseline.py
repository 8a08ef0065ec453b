#!/usr/bin/python3
"""bench/torch_baseline.py: the PyTorch side of `make bench` (issue 7).

The same step as `randlora bench` (experiments/cmd_bench.c), written in plain
PyTorch (Debian's python3-torch 1.13; run it with /usr/bin/python3):

  model    Hugging Face CLIPModel's layout: patch conv (no bias), class token,
           position embeddings, pre_layrnorm, pre-LN blocks with separate
           q/k/v/out_proj, quick_gelu MLP, post_layernorm, visual_projection;
           text: token + position embeddings, causal blocks, final_layer_norm,
           pooling at the first end-of-text, text_projection. Random weights:
           --init hf (default) is HF's CLIPPreTrainedModel._init_weights, the
           scheme randlora's clip_model_init_random follows (q/k/v and fc2
           std C^-0.5 (2L)^-0.5, out_proj C^-0.5, fc1 (2C)^-0.5, embeddings
           0.02, class embedding and projections C^-0.5), so both sides
           start from weights of the same scale (their losses are
           comparable, not equal: different random streams); --init normal
           is every linear N(0, 0.02), the scheme before (docs/BENCHMARKS.md:
           it changes how far an lr of 1e-3 moves the weights).
  methods  peft's semantics on q, k, v, out_proj, fc1, fc2 of every layer of
           both towers: LoRA (A kaiming, B zero, alpha 8), VeRA (shared
           vera_A / vera_B sized by the largest layer, lambda_d 0.1,
           lambda_b 0), RandLoRA (shared bases, n = ceil(min(d_in, d_out)/r),
           alpha 20 r, Lambda 0, Gamma 1/max(n, d), and peft's memory-saving
           autograd function UniqueBaseGrad), full (the targeted weights
           trainable), none (forward and loss only).
  dinov2   dinov2-vit-b-14: HF Dinov2Model's layout (patch conv with bias, class
           token, position embeddings, pre-LN blocks with LayerScale and exact
           GELU, final layernorm) at 224 px, features [class token, mean of the
           patch tokens] into a trainable linear head (--classes classes);
           the same adapters on q, k, v, out_proj, fc1, fc2; cross-entropy on
           the head's logits (randlora bench's DINOv2 step, cli/bench_dinov2.c).
  decoders llama-tiny, qwen2-0.5b (randlora bench's decoder presets,
           cli/bench_decoder.c): bench/torch_decoder.py, HF's LlamaForCausalLM /
           Qwen2ForCausalLM in plain torch (checked against transformers by
           tests/ref/torch_decoder_check.py), random weights as HF initialises
           them; the same adapters (peft's semantics above) on q_proj, k_proj,
           v_proj, up_proj, down_proj of every layer; a step: --batch random
           sequences of --seq tokens (default 1 x 256), next-token
           cross-entropy over every position, backward, clip_grad_norm_(1.0),
           AdamW; tokens_per_s in the JSON line.
  step     per micro-batch: the text tower on K class prompts (BOS, random
           ids, EOT at the positions cmd_bench.c uses, padded to the longest
           EOT + 1 as the tokenizer's padding=True does), the vision tower on
           B random images, exp(logit_scale) * cosine logits, cross-entropy,
           backward; then clip_grad_norm_(1.0) and AdamW.
  precision fp32 (default); bf16: the step under torch.autocast("cpu",
           dtype=torch.bfloat16), PyTorch's own mixed precision as a user
           writes it (master weights, gradients and AdamW in fp32; autocast
           casts each linear's inputs and weight to bf16 per call);
           bf16-cast: the same, with the frozen linears' weights and biases
           cast to bf16 once beforehand (no per-call cast of them; half
           their memory), as randlora's --precision bf16 keeps them.

Prints one JSON line (impl "torch"): median step time over --steps steps
after one warm-up step, images/s, and the peak RSS of this process
(resource.getrusage ru_maxrss; run each configuration in its own process),
the loss of the last step and of every step (the warm-up first).
"""
import argparse
import json
import math
import os
import resource
import statistics
import sys
import time

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from torch_decoder import DECODER_PRESETS, main_decoder
except ImportError:  # pragma: no cover
    print("torch_baseline: PyTorch not found (Debian: apt-get install python3-torch; "
          "run with /usr/bin/python3)", file=sys.stderr)
    sys.exit(3)

PRESETS = {
    "clip-tiny": dict(
        vision=dict(image_size=32, patch_size=4, channels=3, hidden=128, layers=4, heads=4,
                    intermediate=512),
        text=dict(vocab=258, context=32, hidden=128, layers=4, heads=4, intermediate=512,
                  bos=256, eos=257, pad=257),
        proj=128),
    "clip-vit-b-32": dict(
        vision=dict(image_size=224, patch_size=32, channels=3, hidden=768, layers=12, heads=12,
                    intermediate=3072),
        text=dict(vocab=49408, context=77, hidden=512, layers=12, heads=8, intermediate=2048,
                  bos=49406, eos=49407, pad=1),
        proj=512),
}
PRESETS["clip-vit-b-16"] = json.loads(json.dumps(PRESETS["clip-vit-b-32"]))
PRESETS["clip-vit-b-16"]["vision"]["patch_size"] = 16
# DINOv2 ViT-B/14 at 224 px (randlora bench's dinov2-vit-b-14): vision only,
# a linear head on [class token, mean patch token]
PRESETS["dinov2-vit-b-14"] = dict(
    dinov2=True,
    vision=dict(image_size=224, patch_size=14, channels=3, hidden=768, layers=12, heads=12,
                intermediate=3072))

DEFAULT_RANK = {"lora": 32, "vera": 256, "randlora": 6}
TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2")


# --------------------------------------------------------------------------
# peft's methods

class UniqueBaseGrad(torch.autograd.Function):
    """peft randlora/layer.py: Lambda (x) A (x) Gamma without saving it"""

    @staticmethod
    def forward(ctx, randlora_A, randlora_lambda, randlora_gamma):
        out = randlora_lambda[:, :, None] * randlora_A * randlora_gamma[None, ]
        ctx.save_for_backward(randlora_A, randlora_lambda, randlora_gamma)
        return out

    @staticmethod
    def backward(ctx, grad_output):
        randlora_A, randlora_lambda, randlora_gamma = ctx.saved_tensors
        grad_lambda = torch.einsum("kbj,kvj,bj->kb", grad_output, randlora_A, randlora_gamma)
        grad_gamma = torch.einsum("kbj,kvj,kb->bj", grad_output, randlora_A, randlora_lambda)
        return None, grad_lambda, grad_gamma


class Shared:
    """the model-wide frozen tensors of VeRA and RandLoRA (peft's BufferDicts)"""

    def __init__(self, method, r, max_out, max_in, gen):
        self.method, self.r = method, r
        if method == "vera":
            bound_a = math.sqrt(6.0 / max_in)
            bound_b = math.sqrt(6.0 / r)
            self.A = (torch.rand(r, max_in, generator=gen) * 2 - 1) * bound_a
            self.B = (torch.rand(max_out, r, generator=gen) * 2 - 1) * bound_b
        elif method == "randlora":
            max_dim, min_dim = max(max_out, max_in), min(max_out, max_in)
            n_g = -(-min_dim // r)
            A = torch.rand(r, 1, min_dim, generator=gen) * 2 - 1
            B = torch.rand(max_dim, n_g, r, generator=gen) * 2 - 1
            self.A, self.B = A / A.std(), B / B.std()


class Adapted(nn.Module):
    def __init__(self, base, method, r, shared):
        super().__init__()
        self.base, self.method = base, method
        d_out, d_in = base.weight.shape
        self.d_out, self.d_in = d_out, d_in
        if method == "lora":
            self.lora_A = nn.Parameter(torch.empty(r, d_in))
            nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
            self.lora_B = nn.Parameter(torch.zeros(d_out, r))
            self.scaling = 8.0 / r
        elif method == "vera":
            self.shared = shared
            self.vera_lambda_d = nn.Parameter(torch.full((r,), 0.1))
            self.vera_lambda_b = nn.Parameter(torch.zeros(d_out))
        elif method == "randlora":
            self.shared = shared
            d = min(d_in, d_out)
            self.n = -(-d // r)
            self.randlora_lambda = nn.Parameter(torch.zeros(r, self.n))
            self.randlora_gamma = nn.Parameter(torch.full((self.n, d), 1.0 / max(self.n, d)))
            self.scaling = 20.0 * r / r
        elif method == "full":
            base.weight.requires_grad_(True)

    def forward(self, x):
        y = self.base(x)
        if self.method == "lora":
            return y + F.linear(F.linear(x, self.lora_A), self.lora_B) * self.scaling
        if self.method == "vera":
            sA = self.shared.A[:, :self.d_in]
            sB = self.shared.B[:self.d_out, :]
            return y + self.vera_lambda_b * F.linear(self.vera_lambda_d * F.linear(x, sA), sB)
        if self.method == "randlora":
            d = min(self.d_in, self.d_out)
            D = max(self.d_in, self.d_out)
            sliced_A = self.shared.A[:, :self.n, :d]
            sliced_B = self.shared.B[:D, :self.n, :]
            update_B = sliced_B.flatten(start_dim=1)
            update_A = UniqueBaseGrad.apply(sliced_A, self.randlora_lambda,
                                            self.randlora_gamma).flatten(end_dim=1)
            if d == self.d_in:
                first, second = update_A, update_B
            else:
                first, second = update_B.T, update_A.T
            return y + F.linear(F.linear(x, first), second) * self.scaling
        return y


# --------------------------------------------------------------------------
# CLIP in plain torch (HF layout)

class Attention(nn.Module):
    def __init__(self, C, H):
        super().__init__()
        self.H, self.hs = H, C // H
        self.scale = self.hs ** -0.5
        self.q_proj, self.k_proj = nn.Linear(C, C), nn.Linear(C, C)
        self.v_proj, self.out_proj = nn.Linear(C, C), nn.Linear(C, C)

    def forward(self, x, mask):
        B, T, C = x.shape

        def heads(t):
            return t.view(B, T, self.H, self.hs).transpose(1, 2).reshape(B * self.H, T, self.hs)

        q = heads(self.q_proj(x) * self.scale)
        k, v = heads(self.k_proj(x)), heads(self.v_proj(x))
        w = torch.bmm(q, k.transpose(1, 2))
        if mask is not None:
            w = w + mask
        w = torch.softmax(w, dim=-1)
        o = torch.bmm(w, v).view(B, self.H, T, self.hs).transpose(1, 2).reshape(B, T, C)
        return self.out_proj(o)


class Layer(nn.Module):
    def __init__(self, C, H, Fd):
        super().__init__()
        self.self_attn = Attention(C, H)
        self.layer_norm1, self.layer_norm2 = nn.LayerNorm(C), nn.LayerNorm(C)
        self.fc1, self.fc2 = nn.Linear(C, Fd), nn.Linear(Fd, C)

    def forward(self, x, mask):
        x = x + self.self_attn(self.layer_norm1(x), mask)
        h = self.fc1(self.layer_norm2(x))
        h = h * torch.sigmoid(1.702 * h)                  # quick_gelu
        return x + self.fc2(h)


class Vision(nn.Module):
    def __init__(self, c, D):
        super().__init__()
        C = c["hidden"]
        self.patch_embedding = nn.Conv2d(c["channels"], C, c["patch_size"], c["patch_size"],
                                         bias=False)
        T = (c["image_size"] // c["patch_size"]) ** 2 + 1
        self.class_embedding = nn.Parameter(torch.randn(C) * C ** -0.5)
        self.position_embedding = nn.Parameter(torch.randn(T, C) * 0.02)
        self.pre_layrnorm, self.post_layernorm = nn.LayerNorm(C), nn.LayerNorm(C)
        self.layers = nn.ModuleList(Layer(C, c["heads"], c["intermediate"])
                                    for _ in range(c["layers"]))
        self.visual_projection = nn.Linear(C, D, bias=False)

    def forward(self, px):
        p = self.patch_embedding(px).flatten(2).transpose(1, 2)
        cls = self.class_embedding.expand(p.shape[0], 1, -1)
        x = self.pre_layrnorm(torch.cat([cls, p], dim=1) + self.position_embedding)
        for layer in self.layers:
            x = layer(x, None)
        return self.visual_projection(self.post_layernorm(x[:, 0]))


class Text(nn.Module):
    def __init__(self, c, D):
        super().__init__()
        C = c["hidden"]
        self.eos = c["eos"]
        self.token_embedding = nn.Embedding(c["vocab"], C)
        self.position_embedding = nn.Parameter(torch.randn(c["context"], C) * 0.01)
        self.layers = nn.ModuleList(Layer(C, c["heads"], c["intermediate"])
                                    for _ in range(c["layers"]))
        self.final_layer_norm = nn.LayerNorm(C)
        self.text_projection = nn.Linear(C, D, bias=False)

    def forward(self, ids):
        K, T = ids.shape
        x = self.token_embedding(ids) + self.position_embedding[:T]
        mask = torch.full((T, T), float("-inf")).triu(1)[None]
        for layer in self.layers:
            x = layer(x, mask)
        x = self.final_layer_norm(x)
        eot = (ids == self.eos).int().argmax(dim=-1)      # first end-of-text
        return self.text_projection(x[torch.arange(K), eot])


# --------------------------------------------------------------------------
# DINOv2 in plain torch (HF Dinov2Model's layout, q/k/v/out named as CLIP's)

class DinoLayer(Layer):
    """pre-LN block with LayerScale (lambda1) and exact GELU, eps 1e-6"""

    def __init__(self, C, H, Fd):
        super().__init__(C, H, Fd)
        self.layer_norm1, self.layer_norm2 = nn.LayerNorm(C, eps=1e-6), nn.LayerNorm(C, eps=1e-6)
        self.ls1, self.ls2 = nn.Parameter(torch.ones(C)), nn.Parameter(torch.ones(C))

    def forward(self, x, mask):
        x = x + self.ls1 * self.self_attn(self.layer_norm1(x), mask)
        return x + self.ls2 * self.fc2(F.gelu(self.fc1(self.layer_norm2(x))))


class Dinov2(nn.Module):
    """patch conv with bias, class token, position embeddings, DinoLayers,
    final layernorm; features [class token, mean of the patch tokens] (2C)
    into a linear head (Dinov2ForImageClassification's classifier)"""

    def __init__(self, c, classes):
        super().__init__()
        C = c["hidden"]
        self.patch_embedding = nn.Conv2d(c["channels"], C, c["patch_size"], c["patch_size"])
        T = (c["image_size"] // c["patch_size"]) ** 2 + 1
        self.cls_token = nn.Parameter(torch.randn(1, 1, C) * 0.02)
        self.position_embeddings = nn.Parameter(torch.randn(1, T, C) * 0.02)
        self.layers = nn.ModuleList(DinoLayer(C, c["heads"], c["intermediate"])
                                    for _ in range(c["layers"]))
        self.layernorm = nn.LayerNorm(C, eps=1e-6)
        self.classifier = nn.Linear(2 * C, classes)

    def forward(self, px):
        p = self.patch_embedding(px).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(p.shape[0], -1, -1), p], dim=1) + self.position_embeddings
        for layer in self.layers:
            x = layer(x, None)
        x = self.layernorm(x)
        return self.classifier(torch.cat([x[:, 0], x[:, 1:].mean(dim=1)], dim=-1))


def init_hf(model, cfg):
    """HF CLIPPreTrainedModel._init_weights (initializer_factor 1, range 0.02)"""
    for tower, c in ((model["vision"], cfg["vision"]), (model["text"], cfg["text"])):
        C, L = c["hidden"], c["layers"]
        in_std = C ** -0.5 * (2 * L) ** -0.5
        for layer in tower.layers:
            a = layer.self_attn
            for lin, std in ((a.q_proj, in_std), (a.k_proj, in_std), (a.v_proj, in_std),
                             (a.out_proj, C ** -0.5), (layer.fc1, (2 * C) ** -0.5),
                             (layer.fc2, in_std)):
                nn.init.normal_(lin.weight, std=std)
                nn.init.zeros_(lin.bias)
    v, t = model["vision"], model["text"]
    nn.init.normal_(v.class_embedding, std=cfg["vision"]["hidden"] ** -0.5)
    nn.init.normal_(v.patch_embedding.weight, std=0.02)
    nn.init.normal_(v.position_embedding, std=0.02)
    nn.init.normal_(t.token_embedding.weight, std=0.02)
    nn.init.normal_(t.position_embedding, std=0.02)
    nn.init.normal_(v.visual_projection.weight, std=cfg["vision"]["hidden"] ** -0.5)
    nn.init.normal_(t.text_projection.weight, std=cfg["text"]["hidden"] ** -0.5)


def cast_frozen_linears(model):
    """the frozen linears' weights and biases in bf16, once"""
    for mod in model.modules():
        if isinstance(mod, nn.Linear):
            for p in (mod.weight, mod.bias):
                if p is not None and not p.requires_grad:
                    p.data = p.data.to(torch.bfloat16)


def adapt(model, method, r, gen):
    """wrap every targeted linear; returns the trainable parameters"""
    for p in model.parameters():
        p.requires_grad_(False)
    if method == "none":
        return []
    sites = []
    for mod in model.modules():
        if isinstance(mod, (Attention, Layer)):
            for name in TARGETS:
                if isinstance(getattr(mod, name, None), nn.Linear):
                    sites.append((mod, name))
    max_out = max(getattr(m, n).weight.shape[0] for m, n in sites)
    max_in = max(getattr(m, n).weight.shape[1] for m, n in sites)
    shared = Shared(method, r, max_out, max_in, gen)
    for mod, name in sites:
        setattr(mod, name, Adapted(getattr(mod, name), method, r, shared))
    return [p for p in model.parameters() if p.requires_grad]


def prompts(c, K, gen):
    byte_level = c["vocab"] <= 512
    lo, span = (16, 8) if byte_level else (7, 3)
    eots = [min(lo + i % span, c["context"] - 1) for i in range(K)]
    T = max(eots) + 1
    lim = min(c["bos"], c["eos"])
    ids = torch.full((K, T), c["pad"], dtype=torch.long)
    for i, e in enumerate(eots):
        ids[i, 0] = c["bos"]
        ids[i, 1:e] = torch.randint(0, lim, (e - 1,), generator=gen)
        ids[i, e] = c["eos"]
    return ids


def cpu_capability():
    """what PyTorch's own kernels were built to use here (torch >= 2:
    torch.backends.cpu.get_cpu_capability, e.g. AVX512; oneDNN picks AMX for
    bf16 matmuls by itself), or "" when this torch cannot say"""
    try:
        return torch.backends.cpu.get_cpu_capability()
    except AttributeError:
        return ""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, choices=sorted(PRESETS) + sorted(DECODER_PRESETS))
    ap.add_argument("--method", required=True, choices=["lora", "vera", "randlora", "full",
                                                        "none"])
    ap.add_argument("--rank", type=int, default=0)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--accumulate", type=int, default=1)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--precision", choices=["fp32", "bf16", "bf16-cast"], default="fp32")
    ap.add_argument("--init", choices=["hf", "normal"], default="hf")
    ap.add_argument("--seq", type=int, default=256)
    a = ap.parse_args()
    if a.model in DECODER_PRESETS:                        # bench/torch_decoder.py
        if a.precision != "fp32" or a.accumulate != 1:
            ap.error("a decoder preset runs fp32 without accumulation")
        a.batch = a.batch if "--batch" in sys.argv else 1
        main_decoder(a, Adapted, Shared, cpu_capability)
        return
    r = a.rank or DEFAULT_RANK.get(a.method, 1)

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    gen = torch.Generator().manual_seed(a.seed)
    cfg = PRESETS[a.model]
    dino = cfg.get("dinov2", False)
    if dino:
        model = Dinov2(cfg["vision"], a.classes)
    else:
        vision, text = Vision(cfg["vision"], cfg["proj"]), Text(cfg["text"], cfg["proj"])
        model = nn.ModuleDict(dict(vision=vision, text=text))
    for mod in model.modules():
        if isinstance(mod, nn.Linear):
            nn.init.normal_(mod.weight, std=0.02)
            if mod.bias is not None:
                nn.init.zeros_(mod.bias)
    if a.init == "hf" and not dino:                      # CLIP's scheme; DINOv2: N(0, 0.02)
        init_hf(model, cfg)
    params = adapt(model, a.method, r, gen)
    if dino:                                              # the head trains with every method
        model.classifier.weight.requires_grad_(True)
        model.classifier.bias.requires_grad_(True)
        params = params + [model.classifier.weight, model.classifier.bias]
    if a.precision == "bf16-cast":
        cast_frozen_linears(model)
    trains = len(params) > 0
    opt = torch.optim.AdamW(params, lr=1e-3) if trains else None
    n_trainable = sum(p.numel() for p in params)

    B, K, A = a.batch, a.classes, a.accumulate
    vc = cfg["vision"]
    ids = prompts(cfg["text"], K, gen) if not dino else torch.zeros(K, 0, dtype=torch.long)
    pixels = torch.randn(A, B, vc["channels"], vc["image_size"], vc["image_size"],
                         generator=gen)
    labels = torch.randint(0, K, (A, B), generator=gen)
    scale = math.exp(math.log(1 / 0.07))

    def step(micro_batches):
        losses = []
        if trains:
            opt.zero_grad(set_to_none=True)
        for mb in range(micro_batches):
            with torch.set_grad_enabled(trains), \
                    torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.precision != "fp32"):
                if dino:
                    loss = F.cross_entropy(model(pixels[mb]), labels[mb])
                else:
                    txt = F.normalize(text(ids), dim=-1)
                    img = F.normalize(vision(pixels[mb]), dim=-1)
                    loss = F.cross_entropy(scale * img @ txt.t(), labels[mb])
            if trains:
                (loss / micro_batches).backward()
            losses.append(loss.item())
        if trains:
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
        return sum(losses) / len(losses)

    losses = [step(1)]                                    # warm-up: one micro-batch
    times = []
    for _ in range(a.steps):
        t0 = time.perf_counter()
        loss = step(A)
        times.append(time.perf_counter() - t0)
        losses.append(loss)
    med = statistics.median(times)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps(dict(
        impl="torch", torch=torch.__version__, precision=a.precision, init=a.init if not dino else "normal",
        cpu_capability=cpu_capability(),
        omp_wait_policy=os.environ.get("OMP_WAIT_POLICY", "default"),
        openblas_thread_timeout=os.environ.get("OPENBLAS_THREAD_TIMEOUT", "default"),
        model=a.model, method=a.method,
        rank=r if a.method in DEFAULT_RANK else 0, batch=B, accumulate=A, classes=K,
        text_tokens=int(ids.shape[1]), steps=a.steps, threads=torch.get_num_threads(),
        n_trainable=n_trainable, step_s=round(med, 6), step_min_s=round(min(times), 6),
        images_per_s=round(A * B / med, 4), peak_rss_mb=round(rss_mb, 1),
        loss=round(loss, 6), losses=[round(v, 6) for v in losses[:64]])), flush=True)


if __name__ == "__main__":
    main()
