#!/usr/bin/env bash
# Issue 10 on a GPU, as one prepared command: ENAS and RSWS on the NAS-Bench-201 cell at the
# benchmark's depth (N = 5), EPOCHS epochs, seeds 0-2, all six searches at once on the one GPU
# (each `benchmarks/enas_nb201.py`, which runs ws-rank after its search), then each finished run
# re-derived with `benchmarks/nb201_rederive.py` (the table read after the searches only).
# With UNIQUE=1, every uniform draw is over the 6,466 distinct cells (space.sampling=unique).
# OUT_DIR receives 8 files (the device machine's limit): summary-TAG.md (each run's row and
# the re-derivation table), rederive-TAG.json, and one TAG-STRATEGY-SEED.tar.gz per run, its
# folder with its checkpoint and its logs, so that a session with no GPU can re-derive it; a
# search cut short resumes when the same command runs again on the unpacked folder. The data
# and the runs are made in WORK (default OUT_DIR-work). SEARCH_SECONDS, if set, stops the
# searches after that long (as a kill would: they resume) so that the packing still runs
# inside the device machine's time limit.
#
# SHARED (default ../shared) is the folder holding data/cifar10 and data/nasbench201; on the
# device machine, where ../shared does not travel, carry a copy inside the checkout and point
# SHARED at it.
#
#   benchmarks/nb201_gpu.sh EPOCHS OUT_DIR [extra --set KEY=VALUE ...]
#   e.g. on the device machine: SEARCH_SECONDS=420 benchmarks/nb201_gpu.sh 36 "$OUT"
#   (a 36-epoch N = 5 search took about 6 minutes on an H200 with four at a time)
#        on this machine, a smoke test: benchmarks/nb201_gpu.sh 1 /tmp/nbg --set enas.data.per_class=30 \
#            --set enas.data.valid_size=100 --set enas.derive_samples=4
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
epochs=${1:?EPOCHS}
out=${2:?OUT_DIR}
shift 2
py=${PYTHON:-$here/.venv/bin/python}
warmup=$(( epochs * 5 / 14 ))                      # the tiny preset's 5 of 14 epochs
tag="n5-e$epochs${UNIQUE:+-unique}"
sets=(--set enas.net.num_cells=5 --set strategies.reinforce.lr=0.05 --set "enas.epochs=$epochs"
      --set "enas.lr_t0=$epochs" --set "enas.warmup_epochs=$warmup")
[ -n "${UNIQUE:-}" ] && sets+=(--set space.sampling=unique)
sets+=("$@")
shared=${SHARED:-$here/../shared}
work=${WORK:-$out-work}
mkdir -p "$out" "$work/data"
out=$(cd "$out" && pwd)                            # absolute: the packing runs from the runs' folder
runs="$work/runs"
# the data root enas_nb201.py uses (WORK/data), made once here, before six searches start
"$py" "$shared/tools/cifar10_batches.py" "$work/data/cifar10" > /dev/null
[ -e "$work/data/nasbench201" ] || ln -s "$(cd "$shared/data/nasbench201" && pwd)" "$work/data/nasbench201"
for strategy in reinforce random; do
  for seed in 0 1 2; do
    ${SEARCH_SECONDS:+timeout -s INT "$SEARCH_SECONDS"} "$py" "$here/benchmarks/enas_nb201.py" --strategies "$strategy" --seeds 1 --first-seed "$seed" \
      --tag "$tag" --out "$runs" "${sets[@]}" > "$work/$strategy-$seed.out" 2>&1 &
  done
done
wait || true                                       # a failed search shows in its .out file
sleep 5                                            # searches stopped by SEARCH_SECONDS finish exiting
summary="$out/summary-$tag.md"
cat "$work"/*.out | grep -E '^\| (reinforce|random) ' > "$summary" || true
done_runs=$( (ls -d "$runs/$tag"/*-[0-9] 2>/dev/null || true) | while read -r r; do
  if [ -f "$r/ground_truth.json" ]; then echo "$r"; fi
done)
if [ -n "$done_runs" ]; then
  # shellcheck disable=SC2086
  "$py" "$here/benchmarks/nb201_rederive.py" $done_runs --ks 4 39 --data-dir "$work/data" \
    --out "$out/rederive-$tag.json" >> "$summary"
fi
cat "$summary"
for run in "$runs/$tag"/*-[0-9]; do
  [ -d "$run" ] || continue
  name=$(basename "$run")
  cp "$work/$name.out" "$runs/$tag/" 2>/dev/null || true
  (cd "$runs/$tag" && tar -czf "$out/$tag-$name.tar.gz" "$name" $(ls "$name.log" "$name.out" 2>/dev/null)) \
    || echo "could not pack $run" >&2
done
