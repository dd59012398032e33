"""A markdown table of benchmarks/ptb_tiny.sh's runs: cell, parameters, training time, valid/test ppl."""
from __future__ import annotations

import json
import sys
from pathlib import Path


def main(root: str) -> None:
    root = Path(root)
    seconds = root / "search.seconds"
    if (root / "search" / "best.json").exists():
        best = json.loads((root / "search" / "best.json").read_text())
        t = f"{int(seconds.read_text()) / 60:.1f} min" if seconds.exists() else "-"
        epochs = [json.loads(l) for l in (root / "search" / "epochs.jsonl").read_text().splitlines()]
        print(f"search: {t}, {len(epochs)} epochs, shared-weight train ppl {epochs[0]['train_ppl']:.1f} -> "
              f"{epochs[-1]['train_ppl']:.1f}, controller-phase valid ppl {epochs[0]['valid_ppl']:.1f} -> "
              f"{epochs[-1]['valid_ppl']:.1f}; derived `{best['arch']}` (valid ppl {best['valid_ppl']:.1f} on one window)\n")
    print("| model | cell (enas_lm arc) | parameters | training time | valid ppl | test ppl |")
    print("|---|---|---|---|---|---|")
    for run in sorted(p for p in root.iterdir() if (p / "result.json").exists()):
        r = json.loads((run / "result.json").read_text())
        arc = "LSTM" if r["cell"] == "lstm" else _arc(r["arch"])
        print(f"| {run.name} | {arc} | {r['params']:,} | {r['train_seconds'] / 60:.1f} min | "
              f"{r['valid_ppl']:.2f} | {r['test_ppl']:.2f} |")


def _arc(arch: str) -> str:
    from torchnas.spaces import ENASRNNSpace
    space = ENASRNNSpace(num_nodes=len(arch.split(":", 1)[-1].split(",")) // 2)
    return f"`{space.to_arc(space.parse(arch))}`"


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/ptb-tiny")
