#!/usr/bin/env python3
"""
bpe_large_check.py: `randlora tokenize` against Hugging Face `tokenizers` on a
tokenizer the size of Qwen2's (about 150,000 tokens and merges, 256 added
special tokens), which is too large to commit. Not part of `make check`.

Run from the repository root after `make`, with a Python that has
`tokenizers`:

    python3 tests/ref/bpe_large_check.py [WORKDIR]

It grows the Llama 3 fixture (tests/fixtures/bpe/llama3.json) with random
merges of its tokens up to 150,000 merges, appends 256 special tokens
"<|reserved_special_token_N|>", encodes the lines of a text (this
repository's docs, each line as one text, with the special-token template)
with both, and prints the load and encode times and whether every line's
ids are equal (exit status 1 if not).
"""
import glob
import json
import os
import random
import subprocess
import sys
import time

from tokenizers import Tokenizer


def main():
    work = sys.argv[1] if len(sys.argv) > 1 else "/tmp/bpe_large_check"
    os.makedirs(work, exist_ok=True)
    src = json.load(open("tests/fixtures/bpe/llama3.json", encoding="utf-8"))
    vocab = {k: v for k, v in src["model"]["vocab"].items() if k != "\u0120unreachable"}
    vocab = {k: i for i, k in enumerate(sorted(vocab, key=vocab.get))}
    merges = [m if isinstance(m, list) else m.split(" ") for m in src["model"]["merges"]]
    toks = list(vocab)
    seen = set(map(tuple, merges))
    r = random.Random(5)
    while len(merges) < 150000:
        a, b = r.choice(toks[:2000]), r.choice(toks[:3000])
        if (a, b) in seen or a + b in vocab or len(a + b) > 24:
            continue
        seen.add((a, b))
        merges.append([a, b])
        vocab[a + b] = len(vocab)
        toks.append(a + b)
    src["model"]["vocab"] = vocab
    src["model"]["merges"] = merges
    added = []
    for a in src["added_tokens"]:
        if a["content"] in vocab:
            a["id"] = vocab[a["content"]]
            added.append(a)
    for i in range(256):
        added.append({"id": len(vocab) + i, "content": f"<|reserved_special_token_{i}|>",
                      "single_word": False, "lstrip": False, "rstrip": False,
                      "normalized": False, "special": True})
    src["added_tokens"] = added
    bos = vocab["<|begin_of_text|>"]
    src["post_processor"]["processors"][1]["special_tokens"]["<|begin_of_text|>"]["ids"] = [bos]
    path = os.path.join(work, "tokenizer.json")
    json.dump(src, open(path, "w", encoding="utf-8"), ensure_ascii=False)

    lines = []
    for doc in sorted(glob.glob("docs/*.md")):
        lines += open(doc, encoding="utf-8").read().split("\n")
    lines += ["<|reserved_special_token_7|>x<|reserved_special_token_255|> <|x"] * 100
    text_path = os.path.join(work, "text.txt")
    with open(text_path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")

    t0 = time.time()
    tok = Tokenizer.from_file(path)
    t1 = time.time()
    want = [e.ids for e in tok.encode_batch(lines)]
    t2 = time.time()
    t3 = time.time()
    out = subprocess.run(["./randlora", "tokenize", "--tokenizer", path, "--text", text_path],
                         check=True, capture_output=True, text=True).stdout
    t4 = time.time()
    got = [[int(x) for x in l.split()] for l in out.split("\n")[:-1]]
    bad = [i for i, (g, w) in enumerate(zip(got, want)) if g != w]
    print(f"{len(vocab)} tokens, {len(merges)} merges, {len(lines)} lines "
          f"({os.path.getsize(text_path)} bytes)")
    print(f"tokenizers: load {t1 - t0:.2f} s, encode_batch {t2 - t1:.2f} s")
    print(f"randlora tokenize (load and encode): {t4 - t3:.2f} s")
    if len(got) != len(want) or bad:
        print(f"DIFFERENT: {len(bad)} lines, first {bad[:5]}; {len(got)} vs {len(want)} lines")
        return 1
    print("every line's ids equal")
    return 0


if __name__ == "__main__":
    sys.exit(main())
