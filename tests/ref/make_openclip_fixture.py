#!/usr/bin/env python3
"""
make_openclip_fixture.py: a tiny random CLIP built and saved by open_clip
itself, in the layout the hub's open_clip repositories ship, and the same
model converted to the Hugging Face layout through transformers, for
tests/check_openclip.c. Run from the repository root with an interpreter
that has torch, open_clip_torch, transformers and safetensors:

    python3 tests/ref/make_openclip_fixture.py

Writes (committed, so `make check` needs none of these libraries):

  tests/fixtures/openclip_tiny/
      open_clip_config.json        open_clip's push_to_hf_hub.save_config_for_hf
      open_clip_model.safetensors  model.state_dict() as open_clip's save_for_hf
                                   writes it (safetensors.torch.save_file)
      vocab.json, merges.txt       clip_tiny's tokenizer (vocabulary of 555 ids,
                                   <|endoftext|> = 554, the argmax id)
      golden.bin                   open_clip's own outputs (RLGT, tests/golden.h):
                                   pixels (3,3,16,16), ids (3,12) as floats,
                                   image_features (3,16) = model.encode_image,
                                   text_features (3,16) = model.encode_text,
                                   logits (3,3) = logit_scale.exp() * cos
  tests/fixtures/openclip_tiny_hf/
      config.json, model.safetensors
                                   the same weights under Hugging Face names
                                   (in_proj split into q/k/v, visual.proj and
                                   text_projection transposed), saved by
                                   transformers' CLIPModel.save_pretrained after
                                   checking that CLIPModel computes open_clip's
                                   features and logits from them (max abs
                                   difference printed; must be < 1e-5)
      vocab.json, merges.txt

The tiny shapes: vision 16 px, patch 4, width 32, 2 layers, head_width 16 (2
heads), mlp_ratio 2; text context 12, vocabulary 555, width 24, 2 heads, 2
layers, mlp_ratio 2; embed_dim 16; quick_gelu true. Every weight is open_clip's
init plus N(0, 0.05) noise (so biases, layer norms and the class token all
carry signal), seed 20241204.
"""
import json
import os
import shutil
import struct
import sys

import torch

import open_clip
from open_clip.push_to_hf_hub import save_config_for_hf
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
import safetensors.torch
import transformers

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures")
OUT = os.path.join(ROOT, "openclip_tiny")
OUT_HF = os.path.join(ROOT, "openclip_tiny_hf")
TOK = os.path.join(ROOT, "clip_tiny")
SEED = 20241204

MODEL_CFG = {
    "embed_dim": 16,
    "quick_gelu": True,
    "vision_cfg": {"image_size": 16, "layers": 2, "width": 32, "head_width": 16,
                   "mlp_ratio": 2.0, "patch_size": 4},
    "text_cfg": {"context_length": 12, "vocab_size": 555, "width": 24, "heads": 2,
                 "layers": 2, "mlp_ratio": 2.0},
}


def write_golden(path, items):
    with open(path, "wb") as f:
        f.write(b"RLGT")
        f.write(struct.pack("<II", 1, len(items)))
        for name, t in items:
            t = t.detach().to(torch.float32).contiguous()
            nb = name.encode()
            f.write(struct.pack("<I", len(nb)))
            f.write(nb)
            f.write(struct.pack("<I", t.dim()))
            for d in t.shape:
                f.write(struct.pack("<I", d))
            f.write(t.numpy().astype("<f4").tobytes())


def hf_state_dict(sd, vision_layers, text_layers):
    """open_clip names -> CLIPModel names (the reference mapping, written from
    open_clip's transformer.py and transformers' modeling_clip.py)."""
    out = {}

    def layer(oc, hf, l):
        w = sd[f"{oc}resblocks.{l}.attn.in_proj_weight"]
        b = sd[f"{oc}resblocks.{l}.attn.in_proj_bias"]
        C = w.shape[1]
        for i, n in enumerate(("q_proj", "k_proj", "v_proj")):
            out[f"{hf}.encoder.layers.{l}.self_attn.{n}.weight"] = w[i * C:(i + 1) * C]
            out[f"{hf}.encoder.layers.{l}.self_attn.{n}.bias"] = b[i * C:(i + 1) * C]
        pairs = [("attn.out_proj", "self_attn.out_proj"), ("ln_1", "layer_norm1"),
                 ("ln_2", "layer_norm2"), ("mlp.c_fc", "mlp.fc1"), ("mlp.c_proj", "mlp.fc2")]
        for a, h in pairs:
            for s in ("weight", "bias"):
                out[f"{hf}.encoder.layers.{l}.{h}.{s}"] = sd[f"{oc}resblocks.{l}.{a}.{s}"]

    out["vision_model.embeddings.patch_embedding.weight"] = sd["visual.conv1.weight"]
    out["vision_model.embeddings.class_embedding"] = sd["visual.class_embedding"]
    out["vision_model.embeddings.position_embedding.weight"] = sd["visual.positional_embedding"]
    for s in ("weight", "bias"):
        out[f"vision_model.pre_layrnorm.{s}"] = sd[f"visual.ln_pre.{s}"]
        out[f"vision_model.post_layernorm.{s}"] = sd[f"visual.ln_post.{s}"]
        out[f"text_model.final_layer_norm.{s}"] = sd[f"ln_final.{s}"]
    for l in range(vision_layers):
        layer("visual.transformer.", "vision_model", l)
    for l in range(text_layers):
        layer("transformer.", "text_model", l)
    out["visual_projection.weight"] = sd["visual.proj"].t()
    out["text_model.embeddings.token_embedding.weight"] = sd["token_embedding.weight"]
    out["text_model.embeddings.position_embedding.weight"] = sd["positional_embedding"]
    out["text_projection.weight"] = sd["text_projection"].t()
    out["logit_scale"] = sd["logit_scale"]
    return {k: v.contiguous().clone() for k, v in out.items()}


def main():
    torch.manual_seed(SEED)
    model = open_clip.CLIP(**MODEL_CFG)
    model.eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
        model.logit_scale.fill_(2.0)
    model.visual.image_mean = OPENAI_DATASET_MEAN
    model.visual.image_std = OPENAI_DATASET_STD

    for d in (OUT, OUT_HF):
        os.makedirs(d, exist_ok=True)
        for f in ("vocab.json", "merges.txt"):
            shutil.copy(os.path.join(TOK, f), os.path.join(d, f))

    # open_clip's own layout, as save_for_hf writes it
    sd = model.state_dict()
    safetensors.torch.save_file(sd, os.path.join(OUT, "open_clip_model.safetensors"))
    from pathlib import Path
    save_config_for_hf(model, Path(OUT) / "open_clip_config.json", model_config=MODEL_CFG)

    # open_clip's outputs
    g = torch.Generator().manual_seed(SEED + 1)
    pixels = torch.randn(3, 3, 16, 16, generator=g)
    ids = torch.zeros(3, 12, dtype=torch.long)
    rows = [[553, 17, 300, 554], [553, 5, 6, 7, 8, 9, 10, 554],
            [553, 400, 401, 402, 403, 404, 405, 406, 407, 408, 409, 554]]
    for i, r in enumerate(rows):
        ids[i, :len(r)] = torch.tensor(r)
    with torch.no_grad():
        img = model.encode_image(pixels)
        txt = model.encode_text(ids)
        ni = img / img.norm(dim=-1, keepdim=True)
        nt = txt / txt.norm(dim=-1, keepdim=True)
        logits = model.logit_scale.exp() * ni @ nt.t()
    write_golden(os.path.join(OUT, "golden.bin"), [
        ("pixels", pixels), ("ids", ids.to(torch.float32)), ("image_features", img),
        ("text_features", txt), ("logits", logits)])

    # the Hugging Face layout through transformers, checked against open_clip
    v, t = MODEL_CFG["vision_cfg"], MODEL_CFG["text_cfg"]
    cfg = transformers.CLIPConfig(
        projection_dim=MODEL_CFG["embed_dim"],
        logit_scale_init_value=2.0,
        text_config=dict(vocab_size=t["vocab_size"], max_position_embeddings=t["context_length"],
                         hidden_size=t["width"], intermediate_size=int(t["width"] * t["mlp_ratio"]),
                         num_hidden_layers=t["layers"], num_attention_heads=t["heads"],
                         hidden_act="quick_gelu", layer_norm_eps=1e-5, bos_token_id=553,
                         eos_token_id=554, pad_token_id=0, projection_dim=MODEL_CFG["embed_dim"]),
        vision_config=dict(image_size=v["image_size"], patch_size=v["patch_size"],
                           hidden_size=v["width"], intermediate_size=int(v["width"] * v["mlp_ratio"]),
                           num_hidden_layers=v["layers"],
                           num_attention_heads=v["width"] // v["head_width"],
                           hidden_act="quick_gelu", layer_norm_eps=1e-5,
                           projection_dim=MODEL_CFG["embed_dim"]))
    hf = transformers.CLIPModel(cfg).eval()
    missing, unexpected = hf.load_state_dict(hf_state_dict(sd, v["layers"], t["layers"]),
                                             strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    assert not missing and not unexpected, (missing, unexpected)
    with torch.no_grad():
        out = hf(input_ids=ids, pixel_values=pixels, attention_mask=None)
        himg = hf.get_image_features(pixel_values=pixels)
        htxt = hf.get_text_features(input_ids=ids)
    himg = getattr(himg, "pooler_output", himg)
    htxt = getattr(htxt, "pooler_output", htxt)
    diffs = [(img - himg).abs().max().item(), (txt - htxt).abs().max().item(),
             (logits - out.logits_per_image).abs().max().item()]
    print("open_clip vs transformers CLIPModel: max |diff| image %.3g text %.3g logits %.3g"
          % tuple(diffs))
    assert max(diffs) < 1e-5
    hf.save_pretrained(OUT_HF, safe_serialization=True)
    print("wrote", OUT, "and", OUT_HF)


if __name__ == "__main__":
    sys.exit(main())
