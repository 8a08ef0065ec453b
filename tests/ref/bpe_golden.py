#!/usr/bin/env python3
"""
bpe_golden.py: tiny byte-level BPE tokenizer.json files in the GPT-2,
Llama 3 and Qwen2 configurations, and the ids Hugging Face `tokenizers`
gives for a varied text set, for tests/check_bpe_tokenizer.c.

Run from the repository root with a Python that has `tokenizers`
(0.23.3 made the committed fixtures):

    python3 tests/ref/bpe_golden.py

Writes tests/fixtures/bpe/:
  gpt2.json         ByteLevel pre-tokenizer with its own regex (GPT-2),
                    merges as "a b" strings (the older file form)
  gpt2_prefix.json  the same with add_prefix_space=true
  llama3.json       Split(Llama 3 regex, Isolated) + ByteLevel(use_regex=false),
                    ignore_merges=true (with a vocabulary entry no merge
                    reaches, "Ġunreachable"), TemplateProcessing
                    "<|begin_of_text|> $A"
  qwen2.json        NFC normalizer, Split(Qwen2 regex, Isolated) + ByteLevel,
                    ByteLevel post-processor (adds nothing), an added token
                    with normalized=true ("café!", matched after NFC) and one whose
                    content is decomposed ("née?" as e + U+0301: tokenizers
                    normalizes the content too)
  splits.json       Split("--", String, Isolated) + Split([0-9], Regex, Removed) +
                    ByteLevel(add_prefix_space=true, use_regex=true): the String
                    pattern, the Removed behavior, a prefix space per piece
  expected.json     per tokenizer, per text: the input bytes (hex), the ids
                    with and without special tokens added, and decode() of
                    the ids with and without skip_special_tokens (hex)

Each tokenizer is trained here on a procedural corpus (BpeTrainer, the
256-symbol ByteLevel alphabet, 700 tokens), then added tokens are appended
at the end of the vocabulary (special and not, lstrip/rstrip, single_word) so that
their ids are not contiguous with the trainer's specials.  Inputs that are
not UTF-8 are given to `tokenizers` decoded with errors="replace", which is
what the C encoder does with them.
"""
import json
import os
import random

from tokenizers import Tokenizer, Regex, AddedToken, normalizers, pre_tokenizers, decoders, processors
from tokenizers.models import BPE
from tokenizers.trainers import BpeTrainer

OUT = "tests/fixtures/bpe"

LLAMA3_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
             r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
            r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

WORDS = ("the a of and to in is was he for it with as his on be at by had are but from or "
         "have an they which one you were her all she there would their we him been has when "
         "who will more no if out so said what up its about into than them can only other new "
         "some could time these two may then do first any my now such like our over man me "
         "even most made after also did many before must through back years where much your "
         "way well down should because each just those people how too little state good very "
         "make world still own see men work long get here between both life being under never "
         "day same another know while last might us great old year off come since against go "
         "came right used take three question answer option solution ending true false").split()
UNI = ["café", "naïve", "résumé", "über", "straße", "Ωμέγα", "σοφία", "Привет", "мир", "日本語",
       "東京", "한국어", "مرحبا", "नमस्ते", "ภาษาไทย", "∑∫≈", "😀", "👍🏽", "🇫🇷", "€100", "½"]


def corpus(seed=17, n=3000):
    r = random.Random(seed)
    lines = []
    for _ in range(n):
        k = r.randint(3, 14)
        toks = []
        for _ in range(k):
            x = r.random()
            if x < 0.7:
                w = r.choice(WORDS)
                if r.random() < 0.15:
                    w = w.capitalize()
                if r.random() < 0.05:
                    w += r.choice(["'s", "'t", "'re", "'ll", "'d", "'ve", "'m"])
                toks.append(w)
            elif x < 0.82:
                toks.append(str(r.randint(0, 10 ** r.randint(1, 7))))
            elif x < 0.92:
                toks.append(r.choice(UNI))
            else:
                toks.append(r.choice([",", ".", "!", "?", ";", ":", "--", "(", ")", "\"", "...", "'"]))
        sep = r.choice([" ", " ", " ", "  ", "\t", "\n"])
        lines.append(sep.join(toks))
    return lines


TEXTS = [
    "Hello world",
    "Hello, World! How are you today?",
    "I'm sure you'll see they've gone, she'd say; it's John's.",
    "DON'T SHOUT: IT'S WE'LL THEY'RE I'M",
    "'S 'T 'Re 'vE 'M 'LL 'D and \u2019s curly",
    "numbers 1 12 123 1234 12345 1234567 3.14159 1,000,000 2024-06-01",
    "abc123def 4x4 x86_64 v1.2.3",
    "a--b -- c---d 1-2--3 --",
    "a  b   c    d\t\te\t \tf",
    "line one\nline two\n\nline four\r\nline five\r\n\r\n",
    "\n\n\nstarts with newlines",
    "ends with spaces   ",
    "   leading spaces",
    " ",
    "\t",
    "\n",
    "",
    "café naïve résumé Straße über",
    "cafe\u0301 decomposed e\u0301",
    "\u212b\u2126 singletons",
    "Ωμέγα ΣΊΣΥΦΟΣ σοφία",
    "Привет, мир! Как дела?",
    "日本語のテキストと東京",
    "한국어 텍스트",
    "مرحبا بالعالم",
    "नमस्ते दुनिया",
    "ภาษาไทย",
    "∑∫≈ ≠ ∞ ½ ² ₃ Ⅻ",
    "emoji 😀👍🏽 🇫🇷 👨\u200d👩\u200d👧 ❤️",
    "<|endoftext|>",
    "before<|endoftext|>after <|endoftext|> spaced",
    "<|endoftext|><|endoftext|>",
    "<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n",
    "<|begin_of_text|>text<|eot_id|>",
    "word [MARK] word  [MARK]  word[MARK]word",
    "lstrip <tail>  x and  <both>  y",
    "___---!!! ... ?!?! ((()))",
    "tabs\tand\u00a0nbsp\u2009thin\u3000ideographic",
    "nel\u0085here lsep\u2028psep\u2029 mongol\u180evowel",
    "fs\u001cgs\u001drs\u001eus\u001f",
    "nul\u0000byte",
    "\u017ftrange 'ſ long s",
    "The quick brown fox jumps over the lazy dog. " * 3,
    "a" * 200,
    "an unreachable word, unreachable",
    "solo solos _solo solo_ x solo, (solo) \u00e9solo",
    "caf\u00e9! and cafe\u0301! and cafe!",
    "n\u00e9e? and ne\u0301e? and nee?",
    "question: Which answer is right? answer1 answer2 option1 solution2 ending4 true",
]
# raw bytes that are not UTF-8 (C gets the bytes, tokenizers the replaced text)
RAW = [b"bad \xff byte", b"trunc \xe6\x97", b"\xc0\xaf overlong \xed\xa0\x80 surrogate", b"\x80\x80x"]


def base_tokenizer(kind):
    if kind == "llama3":
        tok = Tokenizer(BPE(ignore_merges=True))
    else:
        tok = Tokenizer(BPE())
    if kind.startswith("gpt2"):
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=(kind == "gpt2_prefix"))
        tok.post_processor = processors.ByteLevel(trim_offsets=True)
        specials = ["<|endoftext|>"]
    elif kind == "splits":
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split("--", behavior="isolated"),
            pre_tokenizers.Split(Regex(r"[0-9]"), behavior="removed"),
            pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True)])
        specials = ["<|endoftext|>"]
    elif kind == "llama3":
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(LLAMA3_RE), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)])
        specials = ["<|begin_of_text|>", "<|end_of_text|>"]
    else:
        tok.normalizer = normalizers.NFC()
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(QWEN2_RE), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)])
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
        specials = ["<|endoftext|>"]
    tok.decoder = decoders.ByteLevel()
    trainer = BpeTrainer(vocab_size=700, min_frequency=2, special_tokens=specials,
                         initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus(), trainer=trainer)
    # added tokens after the trained vocabulary
    if kind == "qwen2":
        tok.add_special_tokens(["<|im_start|>", "<|im_end|>"])
    if kind == "llama3":
        tok.add_special_tokens(["<|eot_id|>"])
        bos = tok.token_to_id("<|begin_of_text|>")
        tok.post_processor = processors.Sequence([
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(single="<|begin_of_text|> $A",
                                          pair="<|begin_of_text|> $A <|begin_of_text|> $B",
                                          special_tokens=[("<|begin_of_text|>", bos)])])
    if kind == "qwen2":
        tok.add_tokens([AddedToken("caf\u00e9!", normalized=True),
                        AddedToken("ne\u0301e?", normalized=True)])
    tok.add_tokens([AddedToken("solo", single_word=True, normalized=False),
                    AddedToken("[MARK]", normalized=False),
                    AddedToken("<tail>", lstrip=True, normalized=False),
                    AddedToken("<both>", lstrip=True, rstrip=True, normalized=False)])
    return tok


def hexs(b):
    return b.hex()


def main():
    os.makedirs(OUT, exist_ok=True)
    expected = {}
    for kind in ["gpt2", "gpt2_prefix", "llama3", "qwen2", "splits"]:
        tok = base_tokenizer(kind)
        path = os.path.join(OUT, kind + ".json")
        tok.save(path)
        if kind == "llama3":
            # a token no merge reaches: only ignore_merges finds it
            with open(path, encoding="utf-8") as f:
                j = json.load(f)
            # (tokenizers numbers added tokens after the vocabulary: shift them)
            top = len(j["model"]["vocab"])
            j["model"]["vocab"]["\u0120unreachable"] = top
            for a in j["added_tokens"]:
                if a["id"] >= top:
                    a["id"] += 1
            with open(path, "w", encoding="utf-8") as f:
                json.dump(j, f, ensure_ascii=False, indent=1)
            tok = Tokenizer.from_file(path)
        if kind.startswith("gpt2"):
            # the older file form: merges as "a b" strings
            with open(path, encoding="utf-8") as f:
                j = json.load(f)
            j["model"]["merges"] = [" ".join(m) if isinstance(m, list) else m for m in j["model"]["merges"]]
            with open(path, "w", encoding="utf-8") as f:
                json.dump(j, f, ensure_ascii=False, indent=1)
            tok = Tokenizer.from_file(path)
        cases = []
        inputs = [(t.encode("utf-8"), t) for t in TEXTS] + [(b, b.decode("utf-8", "replace")) for b in RAW]
        for raw, text in inputs:
            with_sp = tok.encode(text, add_special_tokens=True).ids
            plain = tok.encode(text, add_special_tokens=False).ids
            cases.append({
                "text": hexs(raw),
                "ids": with_sp,
                "ids_plain": plain,
                "decoded": hexs(tok.decode(with_sp, skip_special_tokens=False).encode("utf-8")),
                "decoded_skip": hexs(tok.decode(with_sp, skip_special_tokens=True).encode("utf-8")),
            })
        expected[kind] = cases
    with open(os.path.join(OUT, "expected.json"), "w", encoding="utf-8") as f:
        json.dump(expected, f, indent=0)


if __name__ == "__main__":
    main()
