#!/usr/bin/env bash
# The CPU-scale CIFAR-10 searches of docs/results.md: NAS-RL (nas-cnn-tiny), ENAS micro and
# ENAS macro (the -tiny presets), each with the REINFORCE controller and with random
# architectures on the same budget; then each found architecture is retrained from scratch
# and tested on the 10,000 CIFAR-10 test images. Prints a markdown table at the end.
#
#   benchmarks/cifar10_tiny_searches.sh [OUT_DIR] [CIFAR_DIR]     (about an hour on 2 cores)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-runs/cifar10-tiny}
cifar=${2:-$out/cifar}
bin=${TORCHNAS:-$here/.venv/bin/torchnas}
py=${PYTHON:-$here/.venv/bin/python}
mkdir -p "$out"
"$py" "$here/../shared/tools/cifar10_batches.py" "$cifar" > /dev/null

run() {   # name, then search options
  local name=$1; shift
  [ -f "$out/$name/retrain/result.json" ] && return
  local t0=$(date +%s)
  "$bin" search --data cifar10 --data-dir "$cifar" --out "$out/$name" --no-retrain --quiet "$@" > "$out/$name.log" 2>&1 \
    || "$bin" search --resume "$out/$name" --no-retrain --quiet >> "$out/$name.log" 2>&1
  echo $(( $(date +%s) - t0 )) > "$out/$name.search_seconds"
  "$bin" train --arch "$out/$name" --out "$out/$name/retrain" --quiet >> "$out/$name.log" 2>&1 \
    || "$bin" train --resume "$out/$name/retrain" --quiet >> "$out/$name.log" 2>&1
}

for strategy in reinforce random; do
  run "nas-cnn-$strategy" --preset nas-cnn-tiny --strategy "$strategy" --queries 96 --set evaluator.data.per_class=100 \
    --set executor.workers=1 --set executor.threads=2   # as when docs/results.md was made (before workers: auto)
  run "enas-micro-$strategy" --preset enas-micro-tiny --strategy "$strategy"
  run "enas-macro-$strategy" --preset enas-macro-tiny --strategy "$strategy"
done
"$py" "$here/benchmarks/summarize_runs.py" "$out"
