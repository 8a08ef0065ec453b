#!/usr/bin/env python3
"""bench/table.py: issue 7's table from the JSON lines of bench/run_table.sh.

    python3 bench/table.py build/bench/table.jsonl [--no-torch]

Pairs each `randlora bench` line (impl "c") with the bench/torch_baseline.py
line of the same configuration (model, method, rank, batch, accumulate) and
prints them side by side, then each target of the issue as met / NOT met.
Standard library only (runs on any python3).
"""
import json
import sys


def key(r):
    return (r["model"], r["method"], r.get("rank", 0), r["batch"], r["accumulate"])


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    no_torch = "--no-torch" in sys.argv
    rows = []
    with open(args[0]) as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                rows.append(json.loads(line))
    c = [r for r in rows if r["impl"] == "c"]
    torch = {key(r): r for r in rows if r["impl"] == "torch"}

    hdr = ("model", "method", "r", "batch", "step s", "img/s", "torch img/s", "x torch",
           "GFLOP/s", "peak", "%peak", "torch %peak", "GEMM %", "RSS MiB", "torch RSS", "RSS x")
    fmt = "%-15s %-8s %3s %6s %7s %7s %11s %7s %7s %5s %5s %11s %6s %7s %9s %5s"
    print(fmt % hdr)
    print("-" * 136)
    for r in c:
        t = torch.get(key(r))
        gf = r["model_gflop"] / r["step_s"]
        tgf = r["model_gflop"] / t["step_s"] if t else None
        print(fmt % (
            r["model"], r["method"] + ("+rc" if r.get("recompute") else ""), r["rank"] or "-",
            "%dx%d" % (r["accumulate"], r["batch"]),
            "%.3f" % r["step_s"], "%.2f" % r["images_per_s"],
            "%.2f" % t["images_per_s"] if t else "-",
            "%.2f" % (r["images_per_s"] / t["images_per_s"]) if t else "-",
            "%.1f" % gf, "%.0f" % r["peak_gflops"], "%.0f" % (100 * gf / r["peak_gflops"]),
            "%.0f" % (100 * tgf / r["peak_gflops"]) if t else "-",
            "%.1f" % (100 * r["gemm_share"]), "%.0f" % r["peak_rss_mb"],
            "%.0f" % t["peak_rss_mb"] if t else "-",
            "%.2f" % (r["peak_rss_mb"] / t["peak_rss_mb"]) if t else "-"))
    print("(GFLOP/s: analytic model FLOPs / median step; peak: GFLOP/s of the calibration "
          "sgemm 1024x3072x768 in the same process, %peak of it; GEMM %: measured time inside "
          "cblas_sgemm; +rc: --recompute, layers recomputed in the backward)")
    pols = sorted({r.get("omp_wait_policy", "?") for r in torch.values()})
    touts = sorted({r.get("openblas_thread_timeout", "?") for r in torch.values()})
    if pols:
        print("PyTorch %s, OMP_WAIT_POLICY %s, OPENBLAS_THREAD_TIMEOUT %s"
              % (next(iter(torch.values()))["torch"], " / ".join(pols), " / ".join(touts)))
    if no_torch:
        print("PyTorch was not found: the C half only; the ratio targets are not evaluated.")

    def find(model, method, batch, acc, recompute=False):
        for r in c:
            if ((r["model"], r["method"], r["batch"], r["accumulate"]) == (model, method, batch,
                                                                           acc)
                    and bool(r.get("recompute")) == recompute):
                return r
        return None

    print("\ntargets (issue 7):")
    met = total = 0

    def mark(ok, text):
        nonlocal met, total
        if ok is None:
            print("  [ n/a   ] " + text)
            return
        total += 1
        met += bool(ok)
        print("  [%s] %s" % ("met    " if ok else "NOT met", text))

    b32 = "clip-vit-b-32"
    for m in ("lora", "vera", "randlora", "full"):
        r = find(b32, m, 32, 1)
        if not r:
            mark(None, "%s %s batch 32: not measured" % (b32, m))
            continue
        t = torch.get(key(r))
        if t:
            x = r["images_per_s"] / t["images_per_s"]
            mark(x >= 2.0, "%s %s batch 32: images/s >= 2x PyTorch: %.2f vs %.2f = %.2fx"
                 % (b32, m, r["images_per_s"], t["images_per_s"], x))
            x = r["peak_rss_mb"] / t["peak_rss_mb"]
            mark(x <= 0.6, "%s %s batch 32: peak RSS <= 0.6x PyTorch: %.0f vs %.0f MiB = %.2fx"
                 % (b32, m, r["peak_rss_mb"], t["peak_rss_mb"], x))
        else:
            mark(None, "%s %s batch 32: PyTorch ratios (no PyTorch row)" % (b32, m))
        mark(r["gemm_share"] >= 0.8, "%s %s batch 32: GEMM share >= 80%%: %.1f%%"
             % (b32, m, 100 * r["gemm_share"]))
    rl, lo = find(b32, "randlora", 32, 1), find(b32, "lora", 32, 1)
    if rl and lo:
        x = rl["peak_rss_mb"] / lo["peak_rss_mb"]
        mark(x <= 1.15, "%s batch 32: RandLoRA peak RSS <= 1.15x LoRA's: %.0f vs %.0f MiB = "
             "%.2fx" % (b32, rl["peak_rss_mb"], lo["peak_rss_mb"], x))
    rl, fu = find(b32, "randlora", 32, 4), find(b32, "full", 32, 4)
    if rl and fu:
        x = rl["step_s"] / fu["step_s"]
        mark(x <= 1.15, "%s 4 x 32: RandLoRA time per optimizer step <= 1.15x full: %.2f vs "
             "%.2f s = %.2fx" % (b32, rl["step_s"], fu["step_s"], x))
    for m in ("lora", "vera", "randlora", "full"):
        r = find("clip-tiny", m, 128, 1)
        t = torch.get(key(r)) if r else None
        if r and t:
            x = r["images_per_s"] / t["images_per_s"]
            mark(x >= 3.0, "clip-tiny %s batch 128: images/s >= 3x PyTorch: %.1f vs %.1f = "
                 "%.2fx" % (m, r["images_per_s"], t["images_per_s"], x))
        else:
            mark(None, "clip-tiny %s batch 128: no %s row" % (m, "C" if not r else "PyTorch"))
    print("%d of %d targets met" % (met, total))
    fu, rc = find(b32, "full", 32, 1), find(b32, "full", 32, 1, recompute=True)
    t = torch.get(key(fu)) if fu else None
    if fu and rc and t:
        print("(not a target) %s full batch 32 with --recompute: peak RSS %.0f vs PyTorch's %.0f "
              "MiB = %.2fx, at %.2fx the step time of storing the activations"
              % (b32, rc["peak_rss_mb"], t["peak_rss_mb"], rc["peak_rss_mb"] / t["peak_rss_mb"],
                 rc["step_s"] / fu["step_s"]))


if __name__ == "__main__":
    main()
