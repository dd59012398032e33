"""The sweep that chose the `nb201` preset's REINFORCE settings (docs/results.md).

Every combination of lr ∈ {0.01, 0.03}, batch ∈ {1, 4} and tanh constant ∈ {1.5, 2.5, none},
100 queries on the NAS-Bench-201 table, seeds 1000–1049 (disjoint from the reported seeds
0–99). Prints a markdown table: mean 12-epoch validation / test accuracy of the returned cell
and how many searches stopped early (the policy collapsed onto cells already evaluated, so
`max_proposals` ended the search before 100 distinct queries).

    python benchmarks/nb201_reinforce_sweep.py [--seeds 50] [--first-seed 1000] [--queries 100]
"""
from __future__ import annotations

import argparse
import itertools
import os
import statistics
from pathlib import Path

from torchnas.bench import run_nb201_bench

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", type=int, default=50)
    p.add_argument("--first-seed", type=int, default=1000)
    p.add_argument("--queries", type=int, default=100)
    p.add_argument("--data-dir", default=os.environ.get("TORCHNAS_DATA") or str(SHARED))
    args = p.parse_args()
    print(f"REINFORCE on NAS-Bench-201, {args.queries} queries, seeds {args.first_seed}-{args.first_seed + args.seeds - 1}")
    print("| lr | batch | tanh constant | C10 valid | C10 test | early stops |")
    print("|---|---|---|---|---|---|")
    for lr, batch, tanh in itertools.product((0.01, 0.03), (1, 4), (1.5, 2.5, None)):
        sets = [f"strategies.reinforce.lr={lr}", f"strategies.reinforce.batch_size={batch}",
                f"strategies.reinforce.controller.tanh_constant={'null' if tanh is None else tanh}"]
        r = run_nb201_bench("reinforce", args.queries, args.seeds, overrides=sets, data_dir=args.data_dir,
                            first_seed=args.first_seed)
        runs = r["runs"]
        valid = statistics.mean(x["metrics"]["cifar10valid_xvalid_acc_12ep"] for x in runs)
        test = statistics.mean(x["metrics"]["cifar10_oritest_acc_12ep"] for x in runs)
        stops = sum(bool(x["stopped_early"]) for x in runs)
        print(f"| {lr} | {batch} | {tanh or 'none'} | {valid:.2f} | {test:.2f} | {stops} |", flush=True)


if __name__ == "__main__":
    main()
