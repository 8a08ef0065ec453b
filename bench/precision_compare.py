#!/usr/bin/env python3
"""bench/precision_compare.py: fp32 against bf16 over whole runs.

    python3 bench/precision_compare.py out/runs/quickstart_precision \\
        out/runs/quickstart_precision_bf16

Pairs the run files of two sweeps of the same grid (the same run ids; the
second with train.precision = bf16, experiments/quickstart_precision.ini)
and prints, per run, the final validation and test accuracy of both, and
how far the bf16 training-loss curve lies from the fp32 one (the largest
absolute and relative difference over the steps); then, per method, the
mean over seeds of each precision against the seed-to-seed spread. Reads
the files with h5dump (hdf5-tools); standard library otherwise.
"""
import glob
import os
import re
import statistics
import subprocess
import sys


def dump(path, obj, attr=False):
    """the values of a dataset (or root attribute) as strings, via h5dump"""
    args = ["h5dump", "-a" if attr else "-d", obj, "-y", "-w", "0", path]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    body = out[out.index("DATA {") + 6:out.rindex("}")]
    return re.findall(r'"[^"]*"|[-+0-9.eE]+(?:nan|inf)?|nan|inf', body.split("}")[0])


def curve_rel(x, y):
    """the mean relative difference of two loss curves over their common steps"""
    n = min(len(x), len(y))
    return statistics.mean(abs(a - b) / abs(a) for a, b in zip(x[:n], y[:n]))


def run_info(path):
    losses = [float(v) for v in dump(path, "/train/loss")]
    return dict(loss=losses,
                val=float(dump(path, "/final/val_accuracy")[0]),
                test=float(dump(path, "/final/accuracy")[0]),
                precision=dump(path, "/precision", attr=True)[0].strip('"'))


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    a_dir, b_dir = sys.argv[1:]
    rows = []
    for pa in sorted(glob.glob(os.path.join(a_dir, "*.h5"))):
        pb = os.path.join(b_dir, os.path.basename(pa))
        if not os.path.exists(pb):
            continue
        try:
            a, b = run_info(pa), run_info(pb)
        except (subprocess.CalledProcessError, ValueError, IndexError):
            print("skipped %s: not a finished run in both (h5dump could not read it)"
                  % os.path.basename(pa), file=sys.stderr)
            continue
        n = min(len(a["loss"]), len(b["loss"]))
        d = [abs(x - y) for x, y in zip(a["loss"][:n], b["loss"][:n])]
        rel = [abs(x - y) / abs(x) for x, y in zip(a["loss"][:n], b["loss"][:n])]
        run_id = os.path.basename(pa)[:-3]
        rows.append(dict(id=run_id, method=run_id.split("-")[0], a=a, b=b, n=n,
                         dmax=max(d), rmax=max(rel), rmean=statistics.mean(rel),
                         dfinal=abs(a["loss"][n - 1] - b["loss"][n - 1])))
    print("%-26s %-10s %8s %8s %8s %8s %6s %9s %9s %9s" % (
        "run", "precision", "val", "val'", "test", "test'", "steps", "max|dL|", "max rel",
        "mean rel"))
    for r in rows:
        print("%-26s %-10s %8.4f %8.4f %8.4f %8.4f %6d %9.4f %9.4f %9.4f" % (
            r["id"], "%s/%s" % (r["a"]["precision"], r["b"]["precision"]), r["a"]["val"],
            r["b"]["val"], r["a"]["test"], r["b"]["test"], r["n"], r["dmax"], r["rmax"],
            r["rmean"]))
    print("(val, test: final validation and test accuracy of the first directory's run; "
          "val', test': the second's; max|dL|, max rel, mean rel: the training-loss curves' "
          "largest absolute, largest relative and mean relative difference over the steps)")
    print()
    print("%-10s %-22s %-22s %-22s %-22s %11s %11s" % (
        "method", "val (first)", "val (second)", "test (first)", "test (second)",
        "prec. rel", "seeds rel"))
    for m in sorted({r["method"] for r in rows}):
        rs = [r for r in rows if r["method"] == m]

        def ms(vals):
            return "%.4f +- %.4f (%d)" % (statistics.mean(vals),
                                          statistics.stdev(vals) if len(vals) > 1 else 0.0,
                                          len(vals))
        seeds = [curve_rel(x["a"]["loss"], y["a"]["loss"])
                 for i, x in enumerate(rs) for y in rs[i + 1:]]
        print("%-10s %-22s %-22s %-22s %-22s %11.4f %11s" % (
            m, ms([r["a"]["val"] for r in rs]), ms([r["b"]["val"] for r in rs]),
            ms([r["a"]["test"] for r in rs]), ms([r["b"]["test"] for r in rs]),
            statistics.mean(r["rmean"] for r in rs),
            "%.4f" % statistics.mean(seeds) if seeds else "-"))
    print("(mean +- sd over the seeds; prec. rel: the mean relative difference of a run's two "
          "loss curves (first vs second directory), averaged over the seeds; seeds rel: the "
          "same between the first directory's seeds, the band seed-to-seed variation alone "
          "gives)")


if __name__ == "__main__":
    main()
