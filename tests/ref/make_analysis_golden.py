#!/usr/bin/python3
"""Write tests/fixtures/analysis_golden.txt: singular values, ranks and norms
of a few small float32 matrices, and linear CKA of two activation pairs,
computed with numpy in float64; replayed by tests/check_analysis.c.

Run from the repository root with Debian's interpreter (it has numpy):

    /usr/bin/python3 tests/ref/make_analysis_golden.py

Definitions (as results/analysis.h):
    s            numpy.linalg.svd(a.astype(float64), compute_uv=False)
    rank         #{s_i > max(m, n) * eps(float32) * s_1}
                 (== numpy.linalg.matrix_rank of the float32 array, checked)
    effective    exp(-sum p log p), p = s / sum(s)
    stable       ||a||_F^2 / s_1^2
    nuclear      sum(s);  frobenius ||a||_F
    cka          ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F), columns centred

Format (text, whitespace separated, '#' starts a comment line):
    randlora-analysis-golden 1
    matrix NAME D_OUT D_IN
    a D_OUT*D_IN floats (row-major, 9 significant digits: exact float32)
    s K doubles
    rank R effective E stable S nuclear N frobenius F
    cka NAME N P1 P2
    x N*P1 floats
    y N*P2 floats
    value V
    end
"""
import os

import numpy as np

SEED = 20250131
F32_EPS = float(np.finfo(np.float32).eps)


def f32s(v):
    return " ".join("%.9g" % float(t) for t in np.asarray(v, dtype=np.float32).ravel())


def f64s(v):
    return " ".join("%.17g" % float(t) for t in np.asarray(v, dtype=np.float64).ravel())


def orthonormal(rng, n, k):
    q, _ = np.linalg.qr(rng.standard_normal((n, k)))
    return q


def matrix_block(name, a32):
    a = a32.astype(np.float64)
    m, n = a.shape
    s = np.linalg.svd(a, compute_uv=False)
    tol = max(m, n) * F32_EPS * s[0]
    rank = int(np.sum(s > tol))
    assert rank == int(np.linalg.matrix_rank(a32)), name
    p = s / s.sum()
    p = p[p > 0]
    eff = float(np.exp(-np.sum(p * np.log(p))))
    fro = float(np.sqrt(np.sum(a * a)))
    stable = fro * fro / (s[0] * s[0])
    return [
        "matrix %s %d %d" % (name, m, n),
        "a " + f32s(a32),
        "s " + f64s(s),
        "rank %d effective %.17g stable %.17g nuclear %.17g frobenius %.17g"
        % (rank, eff, stable, float(s.sum()), fro),
    ]


def cka(x, y):
    x = x.astype(np.float64)
    y = y.astype(np.float64)
    x = x - x.mean(axis=0)
    y = y - y.mean(axis=0)
    num = np.linalg.norm(y.T @ x) ** 2
    return float(num / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)))


def cka_block(name, x32, y32):
    n, p1 = x32.shape
    p2 = y32.shape[1]
    return [
        "cka %s %d %d %d" % (name, n, p1, p2),
        "x " + f32s(x32),
        "y " + f32s(y32),
        "value %.17g" % cka(x32, y32),
    ]


def main():
    rng = np.random.default_rng(SEED)
    lines = [
        "randlora-analysis-golden 1",
        "# written by tests/ref/make_analysis_golden.py (numpy %s); regenerate with" % np.__version__,
        "#   /usr/bin/python3 tests/ref/make_analysis_golden.py",
    ]
    # plain Gaussian, both shapes
    lines += matrix_block("gauss_7x5", rng.standard_normal((7, 5)).astype(np.float32))
    lines += matrix_block("gauss_5x9", rng.standard_normal((5, 9)).astype(np.float32))
    # rank 3 (a LoRA-like B @ A), formed in float32 as the C code would
    b = rng.standard_normal((12, 3)).astype(np.float32)
    a = rng.standard_normal((3, 10)).astype(np.float32)
    lines += matrix_block("lowrank3_12x10", b @ a)
    # graded spectrum 1 .. 1e-4 (all above the float32 tolerance)
    s = np.logspace(0, -4, 6)
    g = orthonormal(rng, 6, 6) @ np.diag(s) @ orthonormal(rng, 8, 6).T
    lines += matrix_block("graded_6x8", g.astype(np.float32))
    # CKA: independent data, and Y a noisy linear map of X
    x = rng.standard_normal((40, 6)).astype(np.float32)
    y = rng.standard_normal((40, 4)).astype(np.float32)
    lines += cka_block("independent_40", x, y)
    w = rng.standard_normal((6, 5))
    y2 = (x.astype(np.float64) @ w + 0.5 * rng.standard_normal((40, 5)) + 3.0).astype(np.float32)
    lines += cka_block("linear_noisy_40", x, y2)
    lines.append("end")

    out = os.path.join("tests", "fixtures", "analysis_golden.txt")
    with open(out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote", out)


if __name__ == "__main__":
    main()
