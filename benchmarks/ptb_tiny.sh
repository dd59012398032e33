#!/usr/bin/env bash
# The CPU-scale ENAS recurrent-cell results of docs/results.md: the enas-rnn-tiny search
# (REINFORCE controller, shared weights), then the derived cell, random cells and a plain
# LSTM of the same size, each trained from scratch with the preset's final settings and
# evaluated with exact valid/test perplexity. Prints a markdown table at the end.
#
#   benchmarks/ptb_tiny.sh [OUT_DIR] [RANDOM_CELLS]          (about 25 minutes on 2 cores)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-runs/ptb-tiny}
n_random=${2:-2}
bin=${TORCHNAS:-$here/.venv/bin/torchnas}
py=${PYTHON:-$here/.venv/bin/python}
export TORCHNAS_DATA=${TORCHNAS_DATA:-$here/../shared/data}
mkdir -p "$out"

train() {   # name, then train options
  local name=$1; shift
  [ -f "$out/$name/result.json" ] && return
  if [ -f "$out/$name/config.yaml" ]; then
    "$bin" train --resume "$out/$name" --quiet >> "$out/$name.log" 2>&1
  else
    "$bin" train --preset enas-rnn-tiny --out "$out/$name" --quiet "$@" > "$out/$name.log" 2>&1
  fi
}

if [ ! -f "$out/search/best.json" ]; then
  t0=$(date +%s)
  if [ -f "$out/search/config.yaml" ]; then
    "$bin" search --resume "$out/search" --no-retrain --quiet >> "$out/search.log" 2>&1
  else
    "$bin" search --preset enas-rnn-tiny --out "$out/search" --no-retrain --quiet > "$out/search.log" 2>&1
  fi
  echo $(( $(date +%s) - t0 )) > "$out/search.seconds"
fi
train derived --arch "$out/search/best.json"
for k in $(seq 1 "$n_random"); do
  arc=$("$py" -c "import random; from torchnas.spaces import ENASRNNSpace as S; s = S(); print(s.to_arc(s.random(random.Random($k))))")
  train "random-$k" --arc "$arc"
done
train lstm --arch "$out/search/best.json" --set final_net.cell=lstm
"$py" "$here/benchmarks/summarize_ptb.py" "$out"
