"""Threads or processes for child training: one process with every core's thread against one
single-thread process per core, on children of several sizes (issue 14: the default executor).

    python benchmarks/workers.py [--children 8] [--cores 2]

For each case it samples ``--children`` architectures of the Zoph & Le space (seeded), trains
them with the case's evaluator settings once in this process with ``--cores`` torch threads and
once in a warm pool of ``--cores`` one-thread worker processes, and prints the mean forward
FLOPs of a training step (FLOPs per image x batch), the seconds each way and their ratio. The
``workers: auto`` rule (torchnas.evaluators.executors.auto_workers) takes its threshold from
these figures: docs/design.md records them.
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import time

import torch

from torchnas.evaluators.executors import LocalPool, Serial
from torchnas.evaluators.trainer import ChildTrainer
from torchnas.nn import count_flops
from torchnas.spaces import NASCNNSpace

# name: (space settings, evaluator settings)
CASES = {
    "digits 8x8, filters 8-24, 5 epochs (the README's main job)":
        ({"filter_sizes": (1, 3, 5, 7), "num_filters": (8, 12, 16, 24)},
         {"data": {"name": "digits"}, "epochs": 5, "batch_size": 64, "lr": 0.05}),
    "CIFAR-10 32x32 (500 images), filters 8-24, 1 epoch":
        ({"filter_sizes": (1, 3, 5, 7), "num_filters": (8, 12, 16, 24)},
         {"data": {"name": "cifar10", "per_class": 60, "valid_size": 100}, "epochs": 1, "batch_size": 64,
          "lr": 0.05}),
    "CIFAR-10 32x32 (500 images), filters 24-64 (the paper's), 1 epoch":
        ({"filter_sizes": (1, 3, 5, 7), "num_filters": (24, 36, 48, 64)},
         {"data": {"name": "cifar10", "per_class": 60, "valid_size": 100}, "epochs": 1, "batch_size": 64,
          "lr": 0.05}),
    "CIFAR-10 32x32 (2,000 images), 9 layers of filters 48-64, batch 128, 1 epoch":
        ({"filter_sizes": (3, 5, 7), "num_filters": (48, 64), "layers": 9},
         {"data": {"name": "cifar10", "per_class": 220, "valid_size": 200}, "epochs": 1, "batch_size": 128,
          "lr": 0.05}),
}


def step_flops(space, evaluator, archs) -> float:
    """Mean forward FLOPs of one training step (per image x batch) over ``archs``."""
    data = evaluator.data()
    per_image = [count_flops(space.child(a, data.shape[0], data.num_classes), data.shape) for a in archs]
    return statistics.mean(per_image) * evaluator.batch_size


def timed(executor, evaluator, archs) -> float:
    t = time.perf_counter()
    list(executor.map(evaluator, archs))
    return time.perf_counter() - t


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--children", type=int, default=8)
    p.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    p.add_argument("--only", type=int, nargs="*", help="case numbers to run (0-based; default all)")
    args = p.parse_args()
    print(f"{args.cores} cores; {args.children} children per case; torch {torch.__version__}")
    print("| case | forward MFLOP per step | 1 process x {0} threads | {0} processes x 1 thread | "
          "threads / processes |".format(args.cores))
    print("|---|---|---|---|---|")
    for k, (name, (space_cfg, ev_cfg)) in enumerate(CASES.items()):
        if args.only is not None and k not in args.only:
            continue
        space = NASCNNSpace(**{"layers": 6, **space_cfg})
        evaluator = ChildTrainer(space, **ev_cfg)
        evaluator.check()
        rng = random.Random(0)
        archs = [space.random(rng) for _ in range(args.children)]
        flops = step_flops(space, evaluator, archs)
        serial = Serial(args.cores)
        pool = LocalPool(args.cores, 1)
        try:
            timed(pool, evaluator, archs[:args.cores])          # warm: workers started, data loaded
            t_threads = timed(serial, evaluator, archs)
            t_procs = timed(pool, evaluator, archs)
        finally:
            pool.close()
        print(f"| {name} | {flops / 1e6:,.0f} | {t_threads:.1f} s | {t_procs:.1f} s | {t_threads / t_procs:.2f} |",
              flush=True)


if __name__ == "__main__":
    main()
