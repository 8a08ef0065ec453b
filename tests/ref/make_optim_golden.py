#!/usr/bin/python3
"""Write tests/fixtures/optim_golden.txt: PyTorch's AdamW and SGD, with a
cosine-with-warmup schedule (LambdaLR) and clip_grad_norm_, replayed by
tests/check_optim.c.

Run from the repository root with Debian's interpreter (it has python3-torch):

    /usr/bin/python3 tests/ref/make_optim_golden.py

Each optimizer starts from the same 37 parameters and, for each of 10 steps,
takes the same raw gradient (written to the file), then does

    norm = clip_grad_norm_(params, 1.0)   # gradient scaled in place when > 1
    opt.step()                            # with the lr LambdaLR set for this step
    sched.step()

The file records the raw gradients (before clipping), the lr used at each
step, the norm clip_grad_norm_ returned and the parameters after each step.
Gradient scales alternate so that some steps are clipped and some are not.

Format (text, whitespace separated, '#' starts a comment line):
    randlora-optim-golden 1
    n N  steps S
    <scalar hyper-parameters as "name value">
    params0 N floats
    grad k N floats                  (k = 0..S-1)
    adamw k lr norm N floats         (parameters after AdamW step k)
    sgd k lr norm N floats           (parameters after SGD step k)
    end
Floats are printed with 9 significant digits (exact float32 round trip).
"""
import math
import os

import torch

N = 37
STEPS = 10
SEED = 20240917

ADAMW = dict(lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1)
SGD = dict(lr=0.1, momentum=0.9, weight_decay=0.01)
MAX_NORM = 1.0
WARMUP = 3
TOTAL = STEPS
MIN_RATIO = 0.1  # floor: lr_min = MIN_RATIO * lr_max

# per-step gradient scale: randn(37) has norm ~6, so steps with scale >~ 0.17
# are clipped and the others are not
SCALES = [0.5, 0.02, 0.3, 0.05, 1.0, 0.01, 0.2, 0.08, 0.6, 0.03]


def lr_lambda(step):
    """transformers' get_cosine_schedule_with_warmup, with a floor."""
    if step < WARMUP:
        return step / max(1, WARMUP)
    progress = (step - WARMUP) / max(1, TOTAL - WARMUP)
    return MIN_RATIO + (1.0 - MIN_RATIO) * 0.5 * (1.0 + math.cos(math.pi * progress))


def fmt(t):
    return " ".join("%.9g" % float(x) for x in t.tolist())


def run(make_opt, p0, grads):
    p = torch.nn.Parameter(p0.clone())
    opt = make_opt([p])
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda)
    out = []
    for k in range(STEPS):
        lr = opt.param_groups[0]["lr"]
        p.grad = grads[k].clone()
        norm = torch.nn.utils.clip_grad_norm_([p], MAX_NORM)
        opt.step()
        sched.step()
        out.append((lr, float(norm), p.detach().clone()))
    return out


def main():
    torch.manual_seed(SEED)
    p0 = torch.randn(N, dtype=torch.float32)
    grads = [torch.randn(N, dtype=torch.float32) * s for s in SCALES]

    adamw = run(lambda ps: torch.optim.AdamW(ps, foreach=False, **ADAMW), p0, grads)
    sgd = run(lambda ps: torch.optim.SGD(ps, foreach=False, **SGD), p0, grads)

    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, "..", "fixtures", "optim_golden.txt")
    with open(path, "w") as f:
        f.write("randlora-optim-golden 1\n")
        f.write("# written by tests/ref/make_optim_golden.py (torch %s); regenerate with\n"
                % torch.__version__)
        f.write("#   /usr/bin/python3 tests/ref/make_optim_golden.py\n")
        f.write("n %d steps %d\n" % (N, STEPS))
        f.write("adamw_lr %.17g beta1 %.17g beta2 %.17g eps %.17g adamw_wd %.17g\n"
                % (ADAMW["lr"], ADAMW["betas"][0], ADAMW["betas"][1], ADAMW["eps"],
                   ADAMW["weight_decay"]))
        f.write("sgd_lr %.17g momentum %.17g sgd_wd %.17g\n"
                % (SGD["lr"], SGD["momentum"], SGD["weight_decay"]))
        f.write("max_norm %.17g warmup %d total %d min_ratio %.17g\n"
                % (MAX_NORM, WARMUP, TOTAL, MIN_RATIO))
        f.write("params0 %s\n" % fmt(p0))
        for k in range(STEPS):
            f.write("grad %d %s\n" % (k, fmt(grads[k])))
        for name, res in (("adamw", adamw), ("sgd", sgd)):
            for k, (lr, norm, p) in enumerate(res):
                f.write("%s %d %.17g %.9g %s\n" % (name, k, lr, norm, fmt(p)))
        f.write("end\n")
    print("wrote", os.path.normpath(path))


if __name__ == "__main__":
    main()
