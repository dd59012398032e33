"""NAS-Bench-201: every strategy at 100 and 300 queries x 100 seeds; prints a markdown table.

    python benchmarks/nb201_strategies.py [--seeds 100] [--queries 100 300] [--out-dir results/]

Each cell is the mean ± std over seeds of the table's metric for the architecture a search
returns (its best by the 12-epoch CIFAR-10 validation accuracy, the reward): first the verdict,
its 200-epoch CIFAR-10 test accuracy and rank among the 15,625 cells, then the 12-epoch columns;
the baselines (largest cell, expected random cell) are printed under the table. It also prints
each search's wall time, so the "under 2 minutes for 100 x 100" promise is checked here.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

from torchnas.bench import run_nb201_bench, summarize
from torchnas.spaces import NB201Space
from torchnas.ws_rank import baselines_line

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
COLUMNS = [("test_acc_200ep", "C10 test, 200 epochs (verdict)"), ("rank_200ep", "its rank"),
           ("cifar10valid_xvalid_acc_12ep", "C10 valid"), ("cifar10_oritest_acc_12ep", "C10 test"),
           ("cifar100_xtest_acc_12ep", "C100 test"), ("imagenet16_xtest_acc_12ep", "IN16 test")]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", type=int, default=100)
    p.add_argument("--queries", type=int, nargs="+", default=[100, 300])
    p.add_argument("--strategies", nargs="+", default=["random", "evolution", "reinforce"])
    p.add_argument("--out-dir", default=None, help="also write each result as JSON here")
    p.add_argument("--data-dir", default=os.environ.get("TORCHNAS_DATA") or str(SHARED),
                   help="data root holding nasbench201/ (default $TORCHNAS_DATA, else ../shared/data)")
    args = p.parse_args()
    rows = []
    for q in args.queries:
        for s in args.strategies:
            res = run_nb201_bench(s, q, args.seeds, data_dir=args.data_dir)
            stats = summarize(res)
            rows.append((q, s, res["seconds"], stats, sum(r["stopped_early"] for r in res["runs"])))
            if args.out_dir:
                Path(args.out_dir).mkdir(parents=True, exist_ok=True)
                Path(args.out_dir, f"nb201-{s}-{q}.json").write_text(json.dumps(res) + "\n")
    print(f"NAS-Bench-201, {args.seeds} seeds; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs")
    print("| queries | strategy | " + " | ".join(n for _, n in COLUMNS) + " | wall time | early stops |")
    print("|---|---|" + "---|" * len(COLUMNS) + "---|---|")
    for q, s, sec, stats, early in rows:
        digits = lambda c: 0 if c == "rank_200ep" else 2
        cells = " | ".join(f"{stats[c][0]:.{digits(c)}f} ± {stats[c][1]:.{digits(c)}f}" for c, _ in COLUMNS)
        print(f"| {q} | {s} | {cells} | {sec:.1f} s | {early} |")
    print("\n" + baselines_line(NB201Space().baselines(args.data_dir)))


if __name__ == "__main__":
    main()
