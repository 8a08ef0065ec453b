#!/bin/bash
# bench/dist_scaling.sh: data-parallel training on 1 and on 2 MPI ranks
# side by side (docs/BENCHMARKS.md, "Data-parallel scaling").
#
#   bash bench/dist_scaling.sh [REPEATS]      (default 2)
#
# Each configuration is a short `randlora train` run (the real data-parallel
# path: loaders, both towers, the gradient sum, AdamW) on a randomly
# initialised model directory written by build/bench/random_model (clip-tiny
# and clip-vit-b-32 shapes; a byte-level tokenizer), shapes-count data, the
# same effective batch (batch x accumulate, accumulate 2) on 1 process and
# on `mpirun -np 2`, one thread per process (RANDLORA_THREADS,
# OMP_NUM_THREADS, OPENBLAS_NUM_THREADS = 1), 1 rank then 2 ranks, the whole
# list REPEATS times. One line per run:
#   model method ranks rep trainable s/step img/s sums exchange_ms wait_ms cpu_s
# s/step and img/s: the run's training time only (images / the steps' wall
# time, from the run file's /final images/s); exchange_ms and wait_ms: per
# gradient sum on rank 0 (its `MPI:` line: the gather + sum + broadcast, and
# the barrier before it, i.e. waiting for the slower rank); cpu_s: user +
# system seconds of the whole command (all ranks, loading and evaluation
# included). Needs mpirun (openmpi-bin), h5dump (hdf5-tools) and an MPI
# build.
#
# Environment: RANDLORA (build/randlora), DIST_BENCH_DIR (build/bench/dist:
# the model directories, 0.6 GB for clip-vit-b-32, and the run files).
set -euo pipefail
REPEATS=${1:-2}
RL=${RANDLORA:-build/randlora}
DIR=${DIST_BENCH_DIR:-build/bench/dist}
make -s build/bench/random_model randlora
mkdir -p "$DIR"
for m in clip-tiny clip-vit-b-32; do
    [ -f "$DIR/$m/model.safetensors" ] || build/bench/random_model "$m" "$DIR/$m"
done
echo "# cpu: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; load average at start:" \
     "$(cut -d' ' -f1-3 /proc/loadavg); OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}"
export RANDLORA_THREADS=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
echo "# model method ranks rep trainable s/step img/s sums exchange_ms wait_ms cpu_s"

# model method rank batch steps (full fine-tuning ignores the rank)
CONFIGS=(
    "clip-tiny lora 32 32 6"
    "clip-tiny full 1 32 6"
    "clip-vit-b-32 lora 32 8 3"
    "clip-vit-b-32 full 1 8 3"
)
TIMEFORMAT="%R %U %S"
for rep in $(seq 1 "$REPEATS"); do
    for cfg in "${CONFIGS[@]}"; do
        read -r model method rank batch steps <<<"$cfg"
        ini="$DIR/$model-$method.ini"
        cat >"$ini" <<INI
[experiment]
name = dist-bench
output = $DIR/runs
[model]
name = $DIR/$model
[data]
dataset = shapes-count
eval = shapes-count:test
shots = 16
eval_limit = 8
[method]
methods = $method
rank = $rank
towers = vision, text
modules = all
[train]
steps = $steps
batch = $batch
accumulate = 2
lr = 1e-4
eval_every = 0
checkpoint_every = 0
[sweep]
seeds = 1
INI
        for ranks in 1 2; do
            out="$DIR/runs/$model-$method-$ranks.h5"
            launch=()
            [ "$ranks" -gt 1 ] && launch=(mpirun --oversubscribe --allow-run-as-root -np "$ranks")
            log="$DIR/runs/$model-$method-$ranks.log"
            mkdir -p "$DIR/runs"
            { time "${launch[@]}" "$RL" train -c "$ini" -o "$out" --force -q >"$log" 2>&1; } \
                2>"$log.time" || { echo "failed: $model $method on $ranks rank(s), see $log"; exit 1; }
            read -r _ user sys <"$log.time"
            ips=$(h5dump -d /final/images_per_s "$out" | sed -n 's/^ *(0): *//p')
            trainable=$("$RL" info "$out" | sed -n 's/^parameters *\([0-9]*\) trainable.*/\1/p')
            sums=0 exch=0 wait=0
            if line=$(grep '^MPI:' "$log"); then
                sums=$(sed -n 's/.*ranks, \([0-9]*\) gradient sums.*/\1/p' <<<"$line")
                exch=$(sed -n 's/.*exchange \([0-9.]*\) s.*/\1/p' <<<"$line")
                wait=$(sed -n 's/.*waiting for other ranks \([0-9.]*\) s.*/\1/p' <<<"$line")
            fi
            awk -v m="$model" -v me="$method" -v k="$ranks" -v r="$rep" -v n="$trainable" \
                -v ips="$ips" -v eb=$((batch * 2)) -v s="$sums" -v ex="$exch" -v w="$wait" \
                -v cpu="$(awk -v u="$user" -v s="$sys" 'BEGIN { print u + s }')" 'BEGIN {
                    printf "%-14s %-5s %d %d %10d %7.3f %7.2f %3d %9.2f %9.2f %7.1f\n", m, me, k,
                           r, n, eb / ips, ips, s, s ? 1000 * ex / s : 0, s ? 1000 * w / s : 0, cpu
                }'
        done
    done
done
