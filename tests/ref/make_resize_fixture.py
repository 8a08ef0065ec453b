#!/usr/bin/python3
"""Reference pixels for the Pillow-compatible bicubic resize (datasets/transforms.c).

Writes tests/fixtures/resize_pillow.txt. Run once with Debian's python3-pil
(apt-get install python3-pil) from the repository root:

    /usr/bin/python3 tests/ref/make_resize_fixture.py

Inputs are not stored: both this script and tests/check_datasets.c generate
them from (pattern, seed, mode, height, width) with the same integer formulas.

Line format (one case per two lines):
    resize MODE H W OH OW PATTERN SEED       Image.resize((OW, OH), BICUBIC)
    crop   MODE H W SIZE 0 PATTERN SEED      resize shortest side to SIZE
                                             (long = int(SIZE * long / short)),
                                             then torchvision's CenterCrop(SIZE)
    <output bytes, HWC, as hex>
MODE is L or RGB; PATTERN is noise or smooth.
"""
import sys

import PIL
from PIL import Image


def make_input(mode, h, w, pattern, seed):
    c = 1 if mode == "L" else 3
    out = bytearray(h * w * c)
    state = seed & 0xFFFFFFFF
    for i in range(h * w * c):
        if pattern == "noise":
            # xorshift32
            state ^= (state << 13) & 0xFFFFFFFF
            state ^= state >> 17
            state ^= (state << 5) & 0xFFFFFFFF
            out[i] = state >> 24
        else:
            ch = i % c
            x = (i // c) % w
            y = (i // c) // w
            out[i] = (x * 5 + y * 3 + ch * 40 + ((x * y + seed) >> 3)) & 255
    return Image.frombytes(mode, (w, h), bytes(out))


def shortest_side(w, h, size):
    short, long_ = min(w, h), max(w, h)
    new_long = int(size * long_ / short)
    return (size, new_long) if w <= h else (new_long, size)


def main():
    cases = [
        ("resize", "RGB", 37, 53, 16, 22, "noise", 1),
        ("resize", "RGB", 64, 48, 26, 20, "smooth", 2),
        ("resize", "L", 28, 28, 96, 96, "noise", 3),
        ("resize", "L", 28, 28, 40, 40, "smooth", 4),
        ("resize", "RGB", 300, 200, 15, 10, "noise", 5),
        ("resize", "RGB", 5, 9, 13, 7, "noise", 6),
        ("resize", "L", 17, 1, 3, 4, "smooth", 7),
        ("resize", "RGB", 10, 20, 10, 7, "noise", 8),
        ("resize", "RGB", 12, 30, 31, 30, "smooth", 9),
        ("resize", "RGB", 33, 33, 33, 33, "noise", 10),
        ("crop", "RGB", 50, 37, 24, 0, "noise", 11),
        ("crop", "RGB", 41, 77, 32, 0, "smooth", 12),
        ("crop", "L", 28, 28, 32, 0, "noise", 13),
        ("crop", "RGB", 27, 20, 16, 0, "noise", 14),
    ]
    lines = [
        "# bicubic resize reference pixels from Pillow %s (tests/ref/make_resize_fixture.py)"
        % PIL.__version__
    ]
    for kind, mode, h, w, a, b, pattern, seed in cases:
        im = make_input(mode, h, w, pattern, seed)
        if kind == "resize":
            out = im.resize((b, a), Image.BICUBIC)
        else:
            size = a
            nw, nh = shortest_side(w, h, size)
            r = im.resize((nw, nh), Image.BICUBIC)
            top = int(round((nh - size) / 2.0))
            left = int(round((nw - size) / 2.0))
            out = r.crop((left, top, left + size, top + size))
        lines.append("%s %s %d %d %d %d %s %d" % (kind, mode, h, w, a, b, pattern, seed))
        lines.append(out.tobytes().hex())
    path = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/resize_pillow.txt"
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
