"""A markdown table of the search runs under a folder (benchmarks/cifar10_tiny_searches.sh)."""
from __future__ import annotations

import json
import sys
from pathlib import Path


def main(root: str) -> None:
    print("| search | strategy | search time | found architecture | search reward | params | retrain time | test accuracy |")
    print("|---|---|---|---|---|---|---|---|")
    for run in sorted(p for p in Path(root).iterdir() if (p / "best.json").exists()):
        best = json.loads((run / "best.json").read_text())
        res = run / "retrain" / "result.json"
        result = json.loads(res.read_text()) if res.exists() else {}
        seconds = run.with_suffix(".search_seconds")
        t = f"{int(seconds.read_text()) / 60:.1f} min" if seconds.exists() else "-"
        preset, _, strategy = run.name.rpartition("-")
        test = f"{100 * result['test_acc']:.2f} %" if result else "-"
        rt = f"{result['train_seconds'] / 60:.1f} min" if result else "-"
        params = f"{result['params'] / 1e6:.2f} M" if result else "-"
        print(f"| {preset} | {strategy} | {t} | `{best['arch']}` | {best['reward']:.4f} | {params} | {rt} | {test} |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/cifar10-tiny")
