#!/usr/bin/env python3
"""bench/table.py: issue 7's (fp32) and issue 15's (bf16) tables from the JSON
lines of bench/run_table.sh.

    python3 bench/table.py build/bench/table.jsonl [--no-torch]

Pairs each `randlora bench` line (impl "c") with the bench/torch_baseline.py
lines of the same configuration (model, method, rank, batch, accumulate) in
the same precision (fp32 with fp32; bf16 with PyTorch's autocast and its
frozen-weights-cast variant) and prints them side by side, then each target
of the issues as met / NOT met. Standard library only (runs on any python3).
"""
import json
import sys


def key(r, precision=None):
    """a configuration; PyTorch's precision names (bf16, bf16-cast) given
    explicitly for a C row's partners"""
    return (r["model"], r["method"], r.get("rank", 0), r["batch"], r["accumulate"],
            precision or r.get("precision", "fp32"))


class Targets:
    """prints each target as met / NOT met / n/a (ok None) and counts them"""

    def __init__(self):
        self.met = self.total = 0

    def __call__(self, ok, text):
        if ok is None:
            print("  [ n/a   ] " + text)
            return
        self.total += 1
        self.met += bool(ok)
        print("  [%s] %s" % ("met    " if ok else "NOT met", text))


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    no_torch = "--no-torch" in sys.argv
    rows = []
    with open(args[0]) as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                rows.append(json.loads(line))
    env = next((r for r in rows if r["impl"] == "env"), {})
    dec = [r for r in rows if "seq" in r]                 # decoder rows (issue 17)
    rows = [r for r in rows if "seq" not in r]
    c_all = [r for r in rows if r["impl"] == "c"]
    c = [r for r in c_all if r.get("precision", "fp32") == "fp32"]
    c16 = [r for r in c_all if r.get("precision") == "bf16"]
    torch_all = {key(r): r for r in rows if r["impl"] == "torch"}
    torch = {k: v for k, v in torch_all.items() if k[5] == "fp32"}
    if env:
        print("CPU %s; bf16: %s" % (env.get("cpu", "?"), env.get("bf16", "?")))
    if c:
        fp32_table(c, torch, no_torch)
    if c16:
        bf16_table(c16, c, torch_all, env)
    if dec:
        decoder_table(dec, no_torch)


def decoder_table(rows, no_torch):
    """issue 17: randlora's decoder training step against the same step in
    plain PyTorch, each C row with the PyTorch rows of its configuration
    (several rounds: each pair in its own round, then the medians)"""
    def dkey(r):
        return (r["model"], r["method"], r["rank"], r["batch"], r["seq"])

    train = [r for r in rows if r.get("kind", "train") == "train"]
    gen = [r for r in rows if r.get("kind") == "generate"]
    order, c, t = [], {}, {}
    for r in train:
        k = dkey(r)
        if k not in order:
            order.append(k)
        (c if r["impl"] == "c" else t).setdefault(k, []).append(r)

    def med(v):
        v = sorted(v)
        return v[len(v) // 2] if len(v) % 2 else 0.5 * (v[len(v) // 2 - 1] + v[len(v) // 2])

    print("\ndecoder (issue 17): a training step, randlora against plain PyTorch, same run")
    hdr = ("model", "method", "r", "tokens", "trainable", "step s", "tok/s", "torch s",
           "torch tok/s", "x torch", "CPU s", "torch CPU", "x CPU", "RSS MiB", "torch RSS",
           "RSS x", "rounds")
    fmt = "%-11s %-8s %3s %7s %10s %7s %7s %8s %11s %7s %6s %9s %5s %7s %9s %5s %6s"
    print(fmt % hdr)
    print("-" * 150)
    for k in order:
        cs, ts = c.get(k, []), t.get(k, [])
        if not cs:
            continue
        ctok = med([r["tokens_per_s"] for r in cs])
        crss = max(r["peak_rss_mb"] for r in cs)
        ttok = med([r["tokens_per_s"] for r in ts]) if ts else None
        trss = max(r["peak_rss_mb"] for r in ts) if ts else None
        # each round's own ratio (the pairs ran one after the other)
        ratios = [a["tokens_per_s"] / b["tokens_per_s"] for a, b in zip(cs, ts)]
        cpu_ratios = [b["step_cpu_s"] / a["step_cpu_s"] for a, b in zip(cs, ts)
                      if a.get("step_cpu_s") and b.get("step_cpu_s")]
        ccpu = med([r["step_cpu_s"] for r in cs if "step_cpu_s" in r] or [0])
        tcpu = med([r["step_cpu_s"] for r in ts if "step_cpu_s" in r] or [0])
        print(fmt % (k[0], k[1], k[2] if k[1] != "full" else "-", "%dx%d" % (k[3], k[4]),
                     cs[0]["n_trainable"], "%.2f" % med([r["step_s"] for r in cs]),
                     "%.1f" % ctok, "%.2f" % med([r["step_s"] for r in ts]) if ts else "-",
                     "%.1f" % ttok if ts else "-",
                     "%.2f" % med(ratios) if ratios else "-",
                     "%.3g" % ccpu if ccpu else "-", "%.3g" % tcpu if tcpu else "-",
                     "%.2f" % med(cpu_ratios) if cpu_ratios else "-",
                     "%.0f" % crss, "%.0f" % trss if ts else "-",
                     "%.2f" % (crss / trss) if ts else "-", len(cs)))
    print("(tok/s: tokens per second of the whole step, forward, loss, backward, clipping, "
          "AdamW; x torch: randlora's over PyTorch's, the median of the rounds' ratios; "
          "CPU s: the CPU time of a step, every thread, x CPU: PyTorch's over randlora's, "
          "the steadier comparison on a shared machine; RSS: the peak of each process)")
    if no_torch or not t:
        print("PyTorch was not found: the C half only.")
    else:
        v = next(iter(t.values()))[0]
        print("PyTorch %s (plain torch: bench/torch_decoder.py), OMP_WAIT_POLICY %s"
              % (v.get("torch", "?"), v.get("omp_wait_policy", "?")))
    for g in gen:
        print("randlora greedy generation, %s %s r=%d: prefill %.1f tokens/s (%d prompts of %d "
              "tokens), decoding %.3f s per step of %d rows = %.1f tokens/s, peak RSS %.0f MiB"
              % (g["model"], g["method"], g["rank"], g["prefill_tokens_per_s"], g["batch"],
                 g["seq"], g["decode_step_s"], g["batch"], g["decode_tokens_per_s"],
                 g["peak_rss_mb"]))


def fp32_table(c, torch, no_torch):

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
    mark = Targets()

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
    print("%d of %d targets met" % (mark.met, mark.total))
    fu, rc = find(b32, "full", 32, 1), find(b32, "full", 32, 1, recompute=True)
    t = torch.get(key(fu)) if fu else None
    if fu and rc and t:
        print("(not a target) %s full batch 32 with --recompute: peak RSS %.0f vs PyTorch's %.0f "
              "MiB = %.2fx, at %.2fx the step time of storing the activations"
              % (b32, rc["peak_rss_mb"], t["peak_rss_mb"], rc["peak_rss_mb"] / t["peak_rss_mb"],
                 rc["step_s"] / fu["step_s"]))


def bf16_table(c16, c32, torch, env):
    """issue 15: randlora bf16 against PyTorch bf16 autocast and bf16-cast"""
    hdr = ("model", "method", "r", "batch", "step s", "img/s", "autocast", "x", "cast", "x",
           "fp32 img/s", "bf16 x", "bf16 GEMM %", "sgemm %", "rest %", "bf16 GF/s", "oneDNN",
           "%calib", "RSS MiB", "autocast RSS", "RSS x")
    fmt = ("%-13s %-8s %3s %5s %7s %7s %8s %5s %6s %5s %10s %6s %11s %7s %6s %9s %6s %6s "
           "%7s %12s %5s")
    print("\nbf16 (issue 15): randlora --precision bf16 against PyTorch bf16, same run")
    print(fmt % hdr)
    print("-" * 175)

    def f(v, spec):
        return spec % v if v is not None else "-"

    for r in c16:
        ta, tc = torch.get(key(r, "bf16")), torch.get(key(r, "bf16-cast"))
        r32 = next((x for x in c32 if key(x)[:5] == key(r)[:5] and not x.get("recompute")),
                   None)
        ips = r["images_per_s"]
        calib = r.get("peak_bf16_gflops") or 0
        rest = 1 - r["gemm_share"] - r.get("bf16_gemm_share", 0)
        print(fmt % (
            r["model"], r["method"], r["rank"] or "-", "%dx%d" % (r["accumulate"], r["batch"]),
            "%.3f" % r["step_s"], "%.2f" % ips,
            f(ta and ta["images_per_s"], "%.2f"), f(ta and ips / ta["images_per_s"], "%.2f"),
            f(tc and tc["images_per_s"], "%.2f"), f(tc and ips / tc["images_per_s"], "%.2f"),
            f(r32 and r32["images_per_s"], "%.2f"), f(r32 and ips / r32["images_per_s"], "%.2f"),
            "%.1f" % (100 * r.get("bf16_gemm_share", 0)), "%.1f" % (100 * r["gemm_share"]),
            "%.1f" % (100 * rest), "%.0f" % r.get("bf16_gemm_gflops", 0), "%.0f" % calib,
            f(calib and 100 * r.get("bf16_gemm_gflops", 0) / calib, "%.0f"),
            "%.0f" % r["peak_rss_mb"], f(ta and ta["peak_rss_mb"], "%.0f"),
            f(ta and r["peak_rss_mb"] / ta["peak_rss_mb"], "%.2f")))
    print("(autocast: PyTorch under torch.autocast(\"cpu\", bfloat16); cast: the same with the "
          "frozen linears cast to bf16 once; x: randlora's img/s over theirs; fp32 img/s: "
          "randlora fp32 in this run, bf16 x its speed-up; bf16 GEMM %, sgemm %: measured "
          "time in oneDNN's bf16 products and in cblas_sgemm, rest: everything else; "
          "bf16 GF/s: their rate, oneDNN: its calibration bf16 1024x3072x768 in the same "
          "process, %calib of it; RSS x: against autocast)")
    ts = {v.get("torch") for v in torch.values() if v.get("precision", "fp32") != "fp32"}
    caps = {v.get("cpu_capability") or "?" for v in torch.values()}
    if ts:
        print("PyTorch %s (cpu capability %s); randlora bf16: %s"
              % (" / ".join(sorted(ts)), " / ".join(sorted(caps)),
                 c16[0].get("bf16_backend") or env.get("bf16", "?")))

    print("\ntargets (issue 15, bf16):")
    mark = Targets()

    for r in c16:
        tag = "%s %s batch %d" % (r["model"], r["method"], r["batch"])
        ta = torch.get(key(r, "bf16"))
        if ta:
            x = r["images_per_s"] / ta["images_per_s"]
            mark(x >= 2.0, "%s: images/s >= 2x PyTorch bf16 autocast: %.2f vs %.2f = %.2fx"
                 % (tag, r["images_per_s"], ta["images_per_s"], x))
        else:
            mark(None, "%s: no PyTorch bf16 row" % tag)
        if r["model"] != "clip-vit-b-32":
            continue
        calib = r.get("peak_bf16_gflops") or 0
        if calib:
            x = r.get("bf16_gemm_gflops", 0) / calib
            mark(x >= 0.6, "%s: bf16 GEMMs >= 60%% of oneDNN's rate: %.0f vs %.0f GFLOP/s = "
                 "%.0f%%" % (tag, r.get("bf16_gemm_gflops", 0), calib, 100 * x))
        if ta:
            x = r["peak_rss_mb"] / ta["peak_rss_mb"]
            mark(x <= 0.6, "%s: peak RSS <= 0.6x PyTorch bf16's: %.0f vs %.0f MiB = %.2fx"
                 % (tag, r["peak_rss_mb"], ta["peak_rss_mb"], x))
    print("%d of %d targets met" % (mark.met, mark.total))


if __name__ == "__main__":
    main()
