#!/bin/sh
# check_disk_full.sh: `randlora train` on a real full disk (docs/reliability.md).
#
# As root (it mounts small tmpfs file systems): pretrains a 2-step clip-tiny,
# trains one RandLoRA run into a normal directory (the reference), then the
# same run with its output on tmpfs of several sizes. Each must either finish
# or exit 1 with one line naming the file and "No space left on device"
# (never a crash), and after the file system is grown, `--resume` must
# finish the run with the reference's adapter byte for byte (compared through
# `randlora export`). Prints one line per size; exit status 1 if any failed.
#
#     sudo sh scripts/check_disk_full.sh            # from the repository root
set -u
BIN=${BIN:-./randlora}
W=$(mktemp -d /tmp/rl_diskfull_XXXXXX)
MNT=$W/mnt
bad=0
if [ "$(id -u)" != 0 ]; then echo "check_disk_full: needs root (mounts tmpfs); skipped"; exit 0; fi
mkdir -p "$MNT"
cat > "$W/x.ini" <<INI
[experiment]
name = diskfull
output = $MNT/runs
[model]
name = clip-tiny
pretrain_dir = $W/model
pretrain_data = shapes
pretrain_corpus = 256
pretrain_steps = 2
pretrain_batch = 16
[data]
dataset = shapes-count
eval = shapes-count:test
prompt = {}
shots = 4
eval_limit = 32
[method]
methods = randlora
rank = 8
[train]
steps = 6
batch = 8
eval_every = 2
checkpoint_every = 2
INI
RANDLORA_OUT=$W/out "$BIN" pretrain -c "$W/x.ini" > /dev/null 2>&1 || { echo "pretrain failed"; exit 1; }
"$BIN" train -c "$W/x.ini" -q -o "$W/ref.h5" > /dev/null 2>&1 || { echo "reference run failed"; exit 1; }
"$BIN" export "$W/ref.h5" -o "$W/ref" > /dev/null 2>&1 || { echo "export failed"; exit 1; }
for size in 20k 60k 120k 300k 1m 2m 3m 4m 5m 6m 8m; do
    mount -t tmpfs -o size=$size tmpfs "$MNT" && mkdir -p "$MNT/runs" || { echo "cannot mount tmpfs"; exit 1; }
    "$BIN" train -c "$W/x.ini" -q -o "$MNT/runs/r.h5" > "$W/first.txt" 2>&1
    first=$?
    mount -o remount,size=64m "$MNT"
    "$BIN" train -c "$W/x.ini" -q -o "$MNT/runs/r.h5" --resume > "$W/resume.txt" 2>&1
    resumed=$?
    rm -rf "$W/got"
    "$BIN" export "$MNT/runs/r.h5" -o "$W/got" > /dev/null 2>&1
    same=no
    cmp -s "$W/got/adapter_model.safetensors" "$W/ref/adapter_model.safetensors" && same=yes
    lines=$(wc -l < "$W/first.txt")
    ok=yes
    if [ $first -eq 1 ]; then
        grep -q "No space left on device" "$W/first.txt" && [ "$lines" -eq 1 ] || ok=no
    elif [ $first -ne 0 ]; then
        ok=no
    fi
    [ $resumed -eq 0 ] && [ $same = yes ] || ok=no
    [ $ok = yes ] || bad=1
    printf '%-5s exit %d, resume exit %d, adapter identical: %s, %s: %s\n' "$size" $first $resumed $same \
        "$([ $ok = yes ] && echo ok || echo FAILED)" "$(head -c 160 "$W/first.txt")"
    umount "$MNT"
done
rm -rf "$W"
exit $bad
