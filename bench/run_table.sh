#!/bin/bash
# bench/run_table.sh: issue 7's table (fp32) and issue 15's (bf16),
# `randlora bench` and PyTorch side by side (make bench runs it after the
# kernel benchmark).
#
#   bash bench/run_table.sh [OUT.jsonl]
#
# Each configuration runs as `randlora bench --json` (a fresh child process
# per configuration, so its peak RSS is its own) and then, when Debian's
# PyTorch is importable, as bench/torch_baseline.py in its own process, on
# the same thread count; their JSON lines go to OUT.jsonl (default
# build/bench/table.jsonl) and bench/table.py pairs them into the table with
# the targets marked. Rows:
#   clip-vit-b-32, batch 32:        lora r=32, vera r=256, randlora r=6, full;
#                                   full again with --recompute (C only: the
#                                   memory it saves, against the same PyTorch)
#   clip-vit-b-32, 4 x 32 (accum.): randlora r=6, full   (C only: the target
#                                   compares RandLoRA with this project's full;
#                                   BENCH_TORCH_ACC=1 runs PyTorch too)
#   clip-tiny, batch 128:           lora, vera, randlora, full
# Steps (timed, after a warm-up of one micro-batch): BENCH_STEPS (3) for
# clip-vit-b-32 at batch 32, BENCH_STEPS_ACC (3) for the accumulated rows,
# BENCH_STEPS_TINY (5) for clip-tiny. About 7 minutes on 2 idle cores (a
# single timed 4 x 32 step proved too noisy: 0.91x to 1.30x between runs).
#
# bf16 (issue 15), when `randlora threads` reports a bf16 kernel (AMX or
# AVX512-BF16; BENCH_PRECISIONS chooses): the same models and methods at
# batch 32 and 128 with `randlora bench --precision bf16`, each against
# PyTorch under torch.autocast(bf16) (`--precision bf16`) and with its
# frozen linears cast to bf16 once (`--precision bf16-cast`), in the same
# run; table.py prints both tables, the ISA and the targets.
#
# Environment: BENCH_THREADS (2), RANDLORA (./randlora), TORCH_PYTHON (the
# python3 first on PATH when it imports torch, else /usr/bin/python3:
# Debian's python3-torch; the table prints the version),
# BENCH_PRECISIONS ("fp32 bf16"; "bf16" alone is the bf16 subset; bf16 is
# skipped with a note on a CPU without a bf16 kernel), BENCH_TORCH_WAIT
# (passive | default). By default PyTorch
# runs with OMP_WAIT_POLICY=passive and OPENBLAS_THREAD_TIMEOUT=16, the
# policies randlora itself runs with (core/threads.h): under libgomp's
# default active wait its OpenMP workers spin and starve OpenBLAS's threads
# (PyTorch 3.2-4.6x slower here, see docs/BENCHMARKS.md), and OpenBLAS's
# spinning workers slow its elementwise loops (~6% on clip-tiny), so the
# default baseline is PyTorch at its best; BENCH_TORCH_WAIT=default runs
# PyTorch as installed, both variables unset.
set -u
cd "$(dirname "$0")/.."

T=${BENCH_THREADS:-2}
S=${BENCH_STEPS:-3}
SA=${BENCH_STEPS_ACC:-3}
ST=${BENCH_STEPS_TINY:-5}
RL=${RANDLORA:-./randlora}
if [ -n "${TORCH_PYTHON:-}" ]; then
    PY=$TORCH_PYTHON
elif PY=$(command -v python3) && "$PY" -c 'import torch' 2>/dev/null; then
    :
else
    PY=/usr/bin/python3
fi
PRECISIONS=${BENCH_PRECISIONS:-fp32 bf16}
OUT=${1:-build/bench/table.jsonl}
case ${BENCH_TORCH_WAIT:-passive} in
    passive) TORCH_WAIT="OMP_WAIT_POLICY=passive OPENBLAS_THREAD_TIMEOUT=16" ;;
    default) TORCH_WAIT="-u OMP_WAIT_POLICY -u OPENBLAS_THREAD_TIMEOUT" ;;
    *) echo "run_table.sh: BENCH_TORCH_WAIT is passive or default" >&2; exit 2 ;;
esac

mkdir -p "$(dirname "$OUT")"
: > "$OUT"
if [ -x "$PY" ] && "$PY" -c 'import torch' 2>/dev/null; then
    TORCH=1
    TORCH_VERSION=$("$PY" -c 'import torch; print(torch.__version__)')
else
    TORCH=0
fi

# PyTorch's precisions paired with randlora's: fp32 with fp32; bf16 with
# autocast and with the frozen weights cast once
torch_precisions() {
    [ "$1" = bf16 ] && echo "bf16 bf16-cast" || echo fp32
}

# precision model method rank batch accumulate steps torch(0/1) [randlora bench options]
row() {
    local prec=$1 model=$2 method=$3 rank=$4 batch=$5 acc=$6 steps=$7 with_torch=$8 tp
    shift 8
    echo "  $prec $model $method r=$rank batch ${acc}x$batch, $steps steps: randlora $*" >&2
    "$RL" bench --model "$model" --method "$method" --rank "$rank" --batch "$batch" \
        --accumulate "$acc" --steps "$steps" --threads "$T" --precision "$prec" --json "$@" \
        >> "$OUT" || echo "    randlora bench failed (status $?)" >&2
    if [ "$TORCH" = 1 ] && [ "$with_torch" = 1 ]; then
        for tp in $(torch_precisions "$prec"); do
            echo "  $prec $model $method r=$rank batch ${acc}x$batch, $steps steps: pytorch $tp" >&2
            env $TORCH_WAIT OMP_NUM_THREADS=$T OPENBLAS_NUM_THREADS=$T \
                "$PY" bench/torch_baseline.py --model "$model" --method "$method" \
                --rank "$rank" --batch "$batch" --accumulate "$acc" --steps "$steps" \
                --threads "$T" --precision "$tp" >> "$OUT" ||
                echo "    torch_baseline.py failed (status $?)" >&2
        done
    fi
}

start=$(date +%s)
echo "issue 7/15 tables: $T threads; PyTorch: $([ $TORCH = 1 ] && echo "$TORCH_VERSION ($PY), wait policies ${BENCH_TORCH_WAIT:-passive}" || echo "not found ($PY cannot import torch): the C half only")" >&2
BF16_LINE=$("$RL" threads | sed -n 's/^bf16: //p')
echo "{\"impl\":\"env\",\"bf16\":\"$BF16_LINE\",\"cpu\":\"$(lscpu | sed -n 's/^Model name: *//p' | head -1)\",\"torch_python\":\"$PY\"}" >> "$OUT"
for prec in $PRECISIONS; do
    case $prec in
    fp32)
        row fp32 clip-vit-b-32 lora 32 32 1 "$S" 1
        row fp32 clip-vit-b-32 vera 256 32 1 "$S" 1
        row fp32 clip-vit-b-32 randlora 6 32 1 "$S" 1
        row fp32 clip-vit-b-32 full 1 32 1 "$S" 1
        row fp32 clip-vit-b-32 full 1 32 1 "$S" 0 --recompute
        row fp32 clip-vit-b-32 randlora 6 32 4 "$SA" "${BENCH_TORCH_ACC:-0}"
        row fp32 clip-vit-b-32 full 1 32 4 "$SA" "${BENCH_TORCH_ACC:-0}"
        for m in lora:32 vera:256 randlora:6 full:1; do
            row fp32 clip-tiny "${m%%:*}" "${m##*:}" 128 1 "$ST" 1
        done
        ;;
    bf16)
        case $BF16_LINE in
        *matmul=*) ;;
        *) echo "  bf16 skipped: $BF16_LINE" >&2; continue ;;
        esac
        for m in lora:32 vera:256 randlora:6 full:1; do
            row bf16 clip-vit-b-32 "${m%%:*}" "${m##*:}" 32 1 "$S" 1
        done
        for m in lora:32 vera:256 randlora:6 full:1; do
            row bf16 clip-tiny "${m%%:*}" "${m##*:}" 128 1 "$ST" 1
        done
        ;;
    *) echo "run_table.sh: BENCH_PRECISIONS takes fp32 and bf16" >&2; exit 2 ;;
    esac
done
echo "  (table measured in $(( $(date +%s) - start )) s; JSON lines in $OUT)" >&2
python3 bench/table.py "$OUT" $([ $TORCH = 1 ] || echo --no-torch)
