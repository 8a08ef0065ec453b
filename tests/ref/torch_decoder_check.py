#!/usr/bin/env python3
"""tests/ref/torch_decoder_check.py: bench/torch_decoder.py (the plain-torch
decoder that `make bench` times against randlora) is the real thing: a random
tiny transformers Qwen2ForCausalLM and LlamaForCausalLM (GQA; Qwen2 with q/k/v
biases and a tied head, Llama with an untied head) are loaded into it by state
dict, and the next-token loss and the logits must agree with transformers'
within 1e-5, as must the gradients of every weight (relative to their largest
entry).

    python3 tests/ref/torch_decoder_check.py      # needs torch + transformers

Prints each comparison and exits 1 if one is out of tolerance. Not part of
`make check` (transformers is not a dependency).
"""
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench"))
from torch_decoder import Decoder  # noqa: E402

from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM  # noqa


def case(name, hf_cls, hf_cfg, ours_cfg):
    torch.manual_seed(0)
    hf = hf_cls(hf_cfg).float().eval()
    with torch.no_grad():                     # non-trivial norms and biases
        for n, p in hf.named_parameters():
            if n.endswith("norm.weight"):
                p.add_(0.1 * torch.randn_like(p))
            elif n.endswith(".bias"):
                p.normal_(0.0, 0.05)
    ours = Decoder(ours_cfg).eval()
    missing, unexpected = ours.load_state_dict(hf.state_dict(), strict=False)
    missing = [k for k in missing if not (k == "lm_head.weight" and ours_cfg["tie_word_embeddings"])]
    if missing or unexpected:
        print("%s: state dict mismatch: missing %s, unexpected %s" % (name, missing, unexpected))
        return False
    ids = torch.randint(0, ours_cfg["vocab_size"], (3, 17))
    out = hf(input_ids=ids, labels=ids)
    loss_ours = ours.loss(ids)
    logits_ours = ours(ids)
    out.loss.backward()
    loss_ours.backward()
    dl = abs(out.loss.item() - loss_ours.item())
    dz = (out.logits - logits_ours).abs().max().item()
    ours_grads = dict(ours.named_parameters())
    dg = 0.0
    for n, p in hf.named_parameters():
        if n not in ours_grads:
            continue
        g0, g1 = p.grad, ours_grads[n].grad
        dg = max(dg, ((g0 - g1).abs().max() / g0.abs().max().clamp_min(1e-30)).item())
    ok = dl <= 1e-5 and dz <= 1e-5 and dg <= 1e-5
    print("%-6s loss %.7f vs transformers %.7f: |diff| %.2e; logits max |diff| %.2e; "
          "gradients max relative diff %.2e: %s"
          % (name, loss_ours.item(), out.loss.item(), dl, dz, dg, "ok" if ok else "FAILED"))
    return ok


def main():
    common = dict(hidden_size=48, intermediate_size=80, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, vocab_size=97,
                  max_position_embeddings=64, rms_norm_eps=1e-6)
    ok = True
    q = dict(common, rope_theta=1000000.0, tie_word_embeddings=True)
    ok &= case("qwen2", Qwen2ForCausalLM,
               Qwen2Config(**q, use_sliding_window=False, attn_implementation="eager"),
               dict(q, arch="qwen2", head_dim=12))
    ll = dict(common, rope_theta=10000.0, tie_word_embeddings=False)
    ok &= case("llama", LlamaForCausalLM, LlamaConfig(**ll, attn_implementation="eager"),
               dict(ll, arch="llama", head_dim=12))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
