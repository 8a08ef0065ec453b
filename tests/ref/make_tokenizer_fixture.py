#!/usr/bin/python3
"""
make_tokenizer_fixture.py: a tiny CLIP BPE vocabulary and the ids the
reference tokenizer gives for ~40 strings, for tests/check_tokenizer.c.

Run from the repository root with the system Python (needs the `regex`
module: Debian package python3-regex):

    /usr/bin/python3 tests/ref/make_tokenizer_fixture.py

Writes tests/fixtures/tokenizer/:
  vocab.json, merges.txt      the HF slow-tokenizer file pair
  tokenizer.json              the same under model.vocab / model.merges ("a b" strings)
  tokenizer_pairs.json        the same with merges as ["a", "b"] lists
  base_vocab.json, base_merges.txt
                              the 512 byte tokens with the specials at the real
                              CLIP ids 49406/49407 and no merges (to check the
                              golden rows of clip.md 5.7 that need no merges)
  expected.txt                one case per line:
                                hex(input bytes) TAB encode() ids TAB clip.tokenize ids
                              (hex "-" = empty input; ids space-separated;
                              clip.tokenize: context 77, truncate=True, pad 0)

The vocabulary is learned here by byte-pair encoding a small corpus (most
frequent adjacent pair, ties broken by the smaller pair) and laid out
exactly as OpenAI's SimpleTokenizer lays out its own: 256 byte symbols in
bytes_to_unicode order, the same with "</w>", one entry per merge, then
<|startoftext|>, <|endoftext|>.

The encoder below is a port of openai/CLIP clip/simple_tokenizer.py
(SimpleTokenizer.bpe / encode) and clip/clip.py (tokenize) with two
documented differences, which the C tokenizer shares:
  - no ftfy.fix_text and no html.unescape (Hugging Face's fast tokenizer
    does not unescape either); text is whitespace_clean(text.strip()).lower()
    as in OpenAI's encode;
  - input bytes that are not UTF-8 are decoded with errors="replace"
    (each maximal invalid subpart becomes U+FFFD), which is what the C
    tokenizer does.
"""
import json
import os

import regex

OUT = os.path.join("tests", "fixtures", "tokenizer")

PAT = regex.compile(
    r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
    regex.IGNORECASE)


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(2 ** 8):
        if b not in bs:
            bs.append(b)
            cs.append(2 ** 8 + n)
            n += 1
    cs = [chr(n) for n in cs]
    return dict(zip(bs, cs))


BYTE_ENCODER = bytes_to_unicode()


def whitespace_clean(text):
    text = regex.sub(r"\s+", " ", text)
    return text.strip()


def normalize(text):
    return whitespace_clean(text.strip()).lower()


def words_of(text):
    """the pre-tokenised words of a str, each as its byte-symbol string"""
    return ["".join(BYTE_ENCODER[b] for b in w.encode("utf-8"))
            for w in PAT.findall(normalize(text))]


# ---------------------------------------------------------------- learning

CORPUS = """
a photo of a cat. a photo of a dog. a photo of the big dog. a photo of a small cat.
a photo of a goldfish in a video game. itap of a goldfish. a centered satellite photo.
hello, world! hello world. the world is big. it's a dog's life. don't stop. we're here.
they've gone. i'm fine. we'll see. you'd know. the quick brown fox jumps over the lazy dog.
café naïve résumé façade café crème. über straße grüße.
猫の写真 犬の写真 写真 東京 東京タワー. 😀 😀 🐱 🐶 photo 🐱.
multiple spaces and newlines. word word word word word word word word.
an image of a bird. a kite (bird of prey). permanent crop land. photo photo photo.
""" * 3


def learn_merges(corpus, n_merges):
    freq = {}
    for w in words_of(corpus):
        syms = list(w)
        syms[-1] = syms[-1] + "</w>"
        t = tuple(syms)
        freq[t] = freq.get(t, 0) + 1
    merges = []
    for _ in range(n_merges):
        pairs = {}
        for word, f in freq.items():
            for a, b in zip(word, word[1:]):
                pairs[(a, b)] = pairs.get((a, b), 0) + f
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        if pairs[best] < 2:
            break
        merges.append(best)
        new = {}
        for word, f in freq.items():
            out, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and word[i] == best[0] and word[i + 1] == best[1]:
                    out.append(word[i] + word[i + 1])
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            new[tuple(out)] = new.get(tuple(out), 0) + f
        freq = new
    return merges


# ---------------------------------------------------------------- the reference encoder

def get_pairs(word):
    pairs = set()
    prev = word[0]
    for char in word[1:]:
        pairs.add((prev, char))
        prev = char
    return pairs


class SimpleTokenizer:
    """openai/CLIP simple_tokenizer.py, minus ftfy/html (see the module note)"""

    def __init__(self, merges):
        vocab = list(BYTE_ENCODER.values())
        vocab = vocab + [v + "</w>" for v in vocab]
        for merge in merges:
            vocab.append("".join(merge))
        vocab.extend(["<|startoftext|>", "<|endoftext|>"])
        self.vocab = vocab
        self.encoder = dict(zip(vocab, range(len(vocab))))
        self.bpe_ranks = dict(zip(merges, range(len(merges))))
        self.cache = {"<|startoftext|>": "<|startoftext|>", "<|endoftext|>": "<|endoftext|>"}

    def bpe(self, token):
        if token in self.cache:
            return self.cache[token]
        word = tuple(token[:-1]) + (token[-1] + "</w>",)
        pairs = get_pairs(word)
        if not pairs:
            return token + "</w>"
        while True:
            bigram = min(pairs, key=lambda pair: self.bpe_ranks.get(pair, float("inf")))
            if bigram not in self.bpe_ranks:
                break
            first, second = bigram
            new_word = []
            i = 0
            while i < len(word):
                try:
                    j = word.index(first, i)
                    new_word.extend(word[i:j])
                    i = j
                except ValueError:
                    new_word.extend(word[i:])
                    break
                if word[i] == first and i < len(word) - 1 and word[i + 1] == second:
                    new_word.append(first + second)
                    i += 2
                else:
                    new_word.append(word[i])
                    i += 1
            word = tuple(new_word)
            if len(word) == 1:
                break
            pairs = get_pairs(word)
        word = " ".join(word)
        self.cache[token] = word
        return word

    def encode(self, text):
        bpe_tokens = []
        text = normalize(text)
        for token in regex.findall(PAT, text):
            token = "".join(BYTE_ENCODER[b] for b in token.encode("utf-8"))
            bpe_tokens.extend(self.encoder[t] for t in self.bpe(token).split(" "))
        return bpe_tokens

    def tokenize(self, text, context_length=77):
        """clip.tokenize(text, truncate=True) for one string"""
        sot, eot = self.encoder["<|startoftext|>"], self.encoder["<|endoftext|>"]
        tokens = [sot] + self.encode(text) + [eot]
        if len(tokens) > context_length:
            tokens = tokens[:context_length]
            tokens[-1] = eot
        return tokens + [0] * (context_length - len(tokens))


CASES = [
    b"",
    b"a photo of a cat.",
    b"a photo of a dog.",
    b"A Photo Of A CAT.",
    b"Hello, World!",
    b"it's a dog's life",
    b"don't",
    b"IT'S WE'RE THEY'VE I'M WE'LL YOU'D",
    b"  multiple   spaces\tand\nnewlines ",
    b"1234",
    b"U.S.A.",
    b"a kite (bird of prey).",
    b"... !!! ?? -- (x)",
    "café naïve".encode(),
    "CAFÉ Naïve RÉSUMÉ".encode(),
    "Straße Über".encode(),
    "猫の写真".encode(),
    "東京タワー photo".encode(),
    "😀 🐱 cat 🐶!".encode(),
    "ΟΔΟΣ ΣΑ ΌΣΟΣ.".encode(),
    "İstanbul".encode(),
    "it'ſ x".encode(),
    "x\u3000y\u00a0z\u2028w".encode(),
    "a\x1cb \x1d".encode(),
    "x\u180ey".encode(),
    "Ⅻ ½ ٣ 3rd".encode(),
    b"&amp; <|endoftext|>",
    b"<|startoftext|>hello<|endoftext|>",
    b"tab\t\t\tend\r\n",
    b"goldfish in a video game",
    " ".join(["word"] * 100).encode(),
    ("a photo of a cat. " * 40).encode(),
    b"caf\xe9 cr\xe8me",
    b"\xed\xa0\x80x",
    b"\xe2\x82 euro",
    b"a\xc0\x80b",
    b"\xf4\x90\x80\x80\xff",
    b"nul\x00byte",
    b"   ",
    b"zzzz qqqq",
    b"photo" * 300,                           # long words: the C BPE is a heap, not passes
    b"ab" * 500 + b"cat",
    "café".encode() * 200,
    b"!?" * 400,
]


def main():
    os.makedirs(OUT, exist_ok=True)
    merges = learn_merges(CORPUS, 400)
    tok = SimpleTokenizer(merges)
    enc = tok.encoder

    with open(os.path.join(OUT, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(enc, f, ensure_ascii=False)
    with open(os.path.join(OUT, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        for a, b in merges:
            f.write(a + " " + b + "\n")
    for name, form in (("tokenizer.json", "str"), ("tokenizer_pairs.json", "list")):
        added = [{"id": enc[s], "content": s, "special": True}
                 for s in ("<|startoftext|>", "<|endoftext|>")]
        doc = {
            "version": "1.0",
            "added_tokens": added,
            "model": {
                "type": "BPE",
                "dropout": None,
                "unk_token": "<|endoftext|>",
                "continuing_subword_prefix": "",
                "end_of_word_suffix": "</w>",
                "fuse_unk": False,
                "vocab": enc,
                "merges": [a + " " + b if form == "str" else [a, b] for a, b in merges],
            },
        }
        with open(os.path.join(OUT, name), "w", encoding="utf-8") as f:
            json.dump(doc, f, ensure_ascii=False, indent=1)

    base = {s: i for i, s in enumerate(tok.vocab[:512])}
    base["<|startoftext|>"] = 49406
    base["<|endoftext|>"] = 49407
    with open(os.path.join(OUT, "base_vocab.json"), "w", encoding="utf-8") as f:
        json.dump(base, f, ensure_ascii=True)       # escaped \uXXXX form on purpose
    with open(os.path.join(OUT, "base_merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")

    with open(os.path.join(OUT, "expected.txt"), "w", encoding="ascii") as f:
        f.write("# made by tests/ref/make_tokenizer_fixture.py: hex(input) TAB encode ids "
                "TAB clip.tokenize(truncate=True) ids\n")
        for raw in CASES:
            text = raw.decode("utf-8", errors="replace")
            ids = tok.encode(text)
            framed = tok.tokenize(text)
            f.write("%s\t%s\t%s\n" % (raw.hex() or "-", " ".join(map(str, ids)),
                                      " ".join(map(str, framed))))
    print("%d merges, %d vocab entries, %d cases" % (len(merges), len(enc), len(CASES)))


if __name__ == "__main__":
    main()
