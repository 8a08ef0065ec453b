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
#   dinov2-vit-b-14, batch 32:      lora r=32 + a linear head (10 classes) on
#                                   [cls, mean patch] (cli/bench_dinov2.c;
#                                   PyTorch: the same layout in plain torch)
# Steps (timed, after a warm-up of one micro-batch): BENCH_STEPS (3) for
# clip-vit-b-32 at batch 32, BENCH_STEPS_ACC (3) for the accumulated rows,
# BENCH_STEPS_TINY (5) for clip-tiny. About 7 minutes on 2 idle cores (a
# single timed 4 x 32 step proved too noisy: 0.91x to 1.30x between runs).
#
# BENCH_ROWS=dinov2 runs the DINOv2 row only (fp32).
#
# Decoder rows (issue 17; BENCH_ROWS=decoder runs them alone, after the fp32
# table otherwise): qwen2-0.5b, one sequence of BENCH_DECODER_SEQ (256)
# tokens per step, adapters on q, k, v, up, down of every layer: lora r=16,
# lora r=32, randlora r=10 (LoRA-16's budget there), full; each as
# `randlora bench --model qwen2-0.5b` and as the same step in plain PyTorch
# (bench/torch_decoder.py through torch_baseline.py), in turn, BENCH_DECODER_ROUNDS
# (1) rounds interleaved; BENCH_STEPS_DECODER (2) timed steps after a
# warm-up. Then randlora's greedy generation at those shapes (C only: the
# evaluation's cost): 16 prompts of 128 tokens, 16 decoding steps.
# BENCH_DECODER_MODEL (qwen2-0.5b; llama-tiny for a quick look) picks the
# preset. About 5 minutes on 2 idle cores (~9 GB of memory for full).
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
SD=${BENCH_STEPS_DECODER:-2}
DSEQ=${BENCH_DECODER_SEQ:-256}
DMODEL=${BENCH_DECODER_MODEL:-qwen2-0.5b}
DROUNDS=${BENCH_DECODER_ROUNDS:-1}
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

# decoder rows: model method rank (randlora and PyTorch in turn)
decoder_row() {
    local model=$1 method=$2 rank=$3
    echo "  fp32 $model $method r=$rank, 1 x $DSEQ tokens, $SD steps: randlora" >&2
    "$RL" bench --model "$model" --method "$method" --rank "$rank" --batch 1 --seq "$DSEQ" \
        --steps "$SD" --threads "$T" --json >> "$OUT" ||
        echo "    randlora bench failed (status $?)" >&2
    if [ "$TORCH" = 1 ]; then
        echo "  fp32 $model $method r=$rank, 1 x $DSEQ tokens, $SD steps: pytorch" >&2
        env $TORCH_WAIT OMP_NUM_THREADS=$T OPENBLAS_NUM_THREADS=$T \
            "$PY" bench/torch_baseline.py --model "$model" --method "$method" --rank "$rank" \
            --batch 1 --seq "$DSEQ" --steps "$SD" --threads "$T" >> "$OUT" ||
            echo "    torch_baseline.py failed (status $?)" >&2
    fi
}

decoder_rows() {
    local round m
    for round in $(seq "$DROUNDS"); do
        for m in lora:16 lora:32 randlora:10 full:1; do
            decoder_row "$DMODEL" "${m%%:*}" "${m##*:}"
        done
    done
    echo "  fp32 $DMODEL lora r=16: randlora greedy generation, 16 x 128 prompt tokens, 16 steps" >&2
    "$RL" bench --model "$DMODEL" --method lora --rank 16 --batch 16 --seq 128 --generate 16 \
        --threads "$T" --json >> "$OUT" || echo "    randlora bench --generate failed" >&2
}

start=$(date +%s)
echo "issue 7/15 tables: $T threads; PyTorch: $([ $TORCH = 1 ] && echo "$TORCH_VERSION ($PY), wait policies ${BENCH_TORCH_WAIT:-passive}" || echo "not found ($PY cannot import torch): the C half only")" >&2
BF16_LINE=$("$RL" threads | sed -n 's/^bf16: //p')
echo "{\"impl\":\"env\",\"bf16\":\"$BF16_LINE\",\"cpu\":\"$(lscpu | sed -n 's/^Model name: *//p' | head -1)\",\"torch_python\":\"$PY\"}" >> "$OUT"
for prec in $PRECISIONS; do
    case $prec in
    fp32)
        if [ "${BENCH_ROWS:-all}" = dinov2 ]; then
            row fp32 dinov2-vit-b-14 lora 32 32 1 "$S" 1
            continue
        fi
        if [ "${BENCH_ROWS:-all}" = decoder ]; then
            decoder_rows
            continue
        fi
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
        row fp32 dinov2-vit-b-14 lora 32 32 1 "$S" 1
        decoder_rows
        ;;
    bf16)
        [ "${BENCH_ROWS:-all}" = all ] || continue
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
