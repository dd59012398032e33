#!/usr/bin/env bash
# Issue 31 on a GPU, as one prepared command that fits the device machine's 10 minutes:
#
#   1. readback.txt: tests/test_readback.py on the device (its CUDA test counts the synchronising
#      calls of a shared-weight epoch under torch.cuda.set_sync_debug_mode: the same for 2 and 4 steps);
#   2. ops-fp32.md, ops-bf16.md (and .json): benchmarks/enas_step_ops.py --device cuda for every ENAS
#      search preset at its own batch size: images (tokens) per second of the shared-weight step,
#      operators per step, and the step's time split into the device's busy (kernel) time and the
#      rest, the time it waits for the host;
#   3. micro-epoch-PRECISION.txt: one whole enas-micro search epoch (45,000 images, 30 controller
#      updates, derive) through `torchnas search`, timed, at fp32 and at the GPU default (bf16);
#   4. device_check.json / .txt: benchmarks/device_check.py (the paper-scale networks, as before).
#
# Everything is written under OUT_DIR (summary.md gathers the tables). SHARED (default ../shared,
# else ./shared inside the checkout) holds data/ptb and tools/cifar10_batches.py; CIFAR-10 is
# unpacked into OUT_DIR-work/data. A step that fails leaves its log and the script goes on.
#
#   benchmarks/gpu_speed.sh OUT_DIR
#   on this machine, a smoke test: DEVICE=cpu STEPS=1 QUICK=1 benchmarks/gpu_speed.sh /tmp/gs
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:?OUT_DIR}
py=${PYTHON:-$here/.venv/bin/python}
torchnas=${TORCHNAS:-$here/.venv/bin/torchnas}
device=${DEVICE:-cuda}
steps=${STEPS:-10}
shared=${SHARED:-$here/../shared}
[ -d "$shared/data" ] || shared=$here/shared
work=${WORK:-$out-work}
mkdir -p "$out" "$work/data"
out=$(cd "$out" && pwd)
data="$work/data"
[ -e "$data/ptb" ] || ln -s "$(cd "$shared/data/ptb" && pwd)" "$data/ptb"
if [ ! -e "$data/cifar10/cifar-10-batches-py" ]; then
    "$py" "$shared/tools/cifar10_batches.py" "$data/cifar10" > "$out/unpack.txt" 2>&1
fi
nvidia-smi > "$out/nvidia-smi.txt" 2>&1 || true
cd "$here"

echo "== 1. read-backs" | tee "$out/progress.txt"
timeout 60 "$py" -m pytest -q tests/test_readback.py > "$out/readback.txt" 2>&1
tail -3 "$out/readback.txt" | tee -a "$out/progress.txt"

echo "== 2. shared-weight steps, fp32 and bf16" | tee -a "$out/progress.txt"
for p in fp32 bf16; do
    timeout 90 "$py" benchmarks/enas_step_ops.py --data-dir "$data" --device "$device" --steps "$steps" \
        --precision "$p" --json "$out/ops-$p.json" > "$out/ops-$p.md" 2> "$out/ops-$p.err"
    grep -v '^USDT' "$out/ops-$p.md" | tee -a "$out/progress.txt"
done

echo "== 3. one enas-micro search epoch" | tee -a "$out/progress.txt"
quick=()
[ -n "${QUICK:-}" ] && quick=(--set enas.data.per_class=50 --set enas.data.valid_size=100 --set enas.train_steps=2
                               --set enas.derive_samples=4)
for p in fp32 auto; do
    rm -rf "$work/micro-$p"
    start=$(date +%s%N)
    timeout 120 "$torchnas" search --preset enas-micro --set enas.epochs=1 --set "enas.precision=$p" \
        --set "enas.device=$device" "${quick[@]}" --data-dir "$data" --out "$work/micro-$p" --no-retrain \
        > "$out/micro-epoch-$p.txt" 2>&1
    rc=$?
    end=$(date +%s%N)
    echo "enas-micro, one search epoch, precision $p: exit $rc, $(( (end - start) / 1000000 )) ms wall" \
        | tee -a "$out/micro-epoch-$p.txt" "$out/progress.txt"
    cp "$work/micro-$p/epochs.jsonl" "$out/micro-epochs-$p.jsonl" 2>/dev/null
done

echo "== 4. device_check" | tee -a "$out/progress.txt"
timeout 80 "$py" benchmarks/device_check.py --steps 5 ${QUICK:+--small} --device "$device" --out "$out/device_check.json" > "$out/device_check.txt" 2>&1
tail -12 "$out/device_check.txt" | tee -a "$out/progress.txt"
cp "$out/progress.txt" "$out/summary.md"
