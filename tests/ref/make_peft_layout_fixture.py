#!/usr/bin/env python3
"""Write tests/fixtures/adapter_io/randlora_peft{,_per_module,_disagree}/:
RandLoRA adapters saved by the real Hugging Face peft, in the layout that
stores the shared bases under every targeted module as well as once at the
model level, read back by tests/check_adapter_io_layout.c.

Run from the repository root with an interpreter that has peft and torch:

    python3 tests/ref/make_peft_layout_fixture.py

What peft writes (checked with peft 0.21.2, the version this was generated
with): PeftModel.save_pretrained of a RandLoRA model with save_projection
writes, besides each module's randlora_lambda and randlora_gamma,

    base_model.randlora_A, base_model.randlora_B          (the model level)
    base_model.model.<module>.randlora_A, ...randlora_B   (one copy per module)

because the layers hold references to the shared BufferDicts and
get_peft_model_state_dict keeps every key with the "randlora_" prefix;
save_pretrained clones the aliases so safetensors accepts them (peft issue
#3709, fixed by pull request #3714, which keeps only the model-level pair
and still loads files with the copies). VeRA never had such copies: its
per-layer prefix is "vera_lambda_", so vera_A and vera_B are saved at the
model level only (this script asserts both facts on the installed peft).

Directories:
    randlora_peft/             what peft saved, unchanged;
    randlora_per_module/       the same file with the model-level pair
                               removed (edited here with the safetensors
                               package: the copies alone);
    randlora_disagree/         randlora_peft with one module's copy of
                               randlora_B changed in one element (edited
                               here): an importer must refuse it.
Each holds expected.safetensors: per module "x.<path>" (3, d_in) and
"y.<path>" (3, d_out) = the module's output minus its base layer's, computed
by peft's own forward (in float64) after PeftModel.from_pretrained of
randlora_peft.
"""
import json
import os
import shutil

import torch
from peft import PeftModel, RandLoraConfig, VeraConfig, get_peft_model, get_peft_model_state_dict
from safetensors import safe_open
from safetensors.torch import save_file

OUT = "tests/fixtures/adapter_io"
BASE = "openai/clip-vit-base-patch32"
MODULES = [
    ("text_model.encoder.layers.0.self_attn.q_proj", 16, 16),
    ("text_model.encoder.layers.0.mlp.fc1", 48, 16),
    ("text_model.encoder.layers.0.mlp.fc2", 16, 48),
]


class Node(torch.nn.Module):
    pass


def clip_like(seed):
    """a module tree with CLIP's names for the three linears"""
    torch.manual_seed(seed)
    root = Node()
    for path, d_out, d_in in MODULES:
        parent = root
        parts = path.split(".")
        for p in parts[:-1]:
            if not hasattr(parent, p):
                parent.add_module(p, Node())
            parent = getattr(parent, p)
        parent.add_module(parts[-1], torch.nn.Linear(d_in, d_out))
    return root


def module(model, path):
    m = model
    for p in path.split("."):
        m = getattr(m, p)
    return m


def main():
    targets = [p for p, _, _ in MODULES]

    # VeRA: the shared pair at the model level only
    vera = get_peft_model(clip_like(1), VeraConfig(target_modules=targets, r=4, save_projection=True))
    vkeys = get_peft_model_state_dict(vera).keys()
    assert [k for k in vkeys if k.endswith(("vera_A", "vera_B"))] == ["base_model.vera_A", "base_model.vera_B"], vkeys

    model = get_peft_model(clip_like(1), RandLoraConfig(target_modules=targets, r=4, init_weights=False,
                                                        save_projection=True))
    model.peft_config["default"].base_model_name_or_path = BASE
    g = torch.Generator().manual_seed(2)
    for path, _, _ in MODULES:
        layer = module(model.base_model.model, path)
        for p in (layer.randlora_lambda["default"], layer.randlora_gamma["default"]):
            with torch.no_grad():
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)

    peft_dir = os.path.join(OUT, "randlora_peft")
    shutil.rmtree(peft_dir, ignore_errors=True)
    model.save_pretrained(peft_dir)
    os.remove(os.path.join(peft_dir, "README.md"))      # peft's model card: not needed
    weights = os.path.join(peft_dir, "adapter_model.safetensors")
    with safe_open(weights, "pt") as f:
        keys = list(f.keys())
        tensors = {k: f.get_tensor(k) for k in keys}
        meta = f.metadata()
    for path, _, _ in MODULES:   # the layout this fixture is about
        for s in ("randlora_A", "randlora_B"):
            k = f"base_model.model.{path}.{s}"
            assert k in keys, f"peft {__import__('peft').__version__} did not write {k}: regenerate differently"
            assert torch.equal(tensors[k], tensors[f"base_model.{s}"])

    # peft's forward on the saved adapter, in float64
    loaded = PeftModel.from_pretrained(clip_like(1), peft_dir).double().eval()
    g = torch.Generator().manual_seed(3)
    expected = {}
    with torch.no_grad():
        for path, _, d_in in MODULES:
            layer = module(loaded.base_model.model, path)
            x = torch.randn(3, d_in, generator=g, dtype=torch.float64)
            expected["x." + path] = x.float()
            expected["y." + path] = (layer(x) - layer.base_layer(x)).float()
    save_file(expected, os.path.join(peft_dir, "expected.safetensors"))

    def variant(name, edit):
        d = os.path.join(OUT, name)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        shutil.copy(os.path.join(peft_dir, "adapter_config.json"), d)
        shutil.copy(os.path.join(peft_dir, "expected.safetensors"), d)
        t = {k: v.clone() for k, v in tensors.items()}
        edit(t)
        save_file(t, os.path.join(d, "adapter_model.safetensors"), metadata=meta)

    variant("randlora_per_module", lambda t: [t.pop("base_model.randlora_A"), t.pop("base_model.randlora_B")])

    def disagree(t):
        k = f"base_model.model.{MODULES[1][0]}.randlora_B"
        t[k].view(-1)[5] += 0.25
    variant("randlora_disagree", disagree)
    with open(os.path.join(peft_dir, "adapter_config.json")) as f:
        assert json.load(f)["base_model_name_or_path"] == BASE
    for d in ("randlora_peft", "randlora_per_module", "randlora_disagree"):
        for name in os.listdir(os.path.join(OUT, d)):
            os.chmod(os.path.join(OUT, d, name), 0o644)
    print("wrote", peft_dir, "and its two variants; peft", __import__("peft").__version__)


if __name__ == "__main__":
    main()
