"""The simulator against the real engine (issue 29, item 4): the same searches on a local Ray
cluster of W workers whose children sleep for their scripted durations and return the
NAS-Bench-201 table's reward, and on ``SimulatedPool``; their utilisations side by side.

    python benchmarks/scale_check.py [--workers 16] [--children 96] [--mean 2.0] [--data-dir DIR]

Each child's duration is a deterministic function of its cell (the ``bench scale`` line in the
cell's FLOPs, 212 s + 180,000 s a GFLOP (the shape of one ``bench scale`` fit here), scaled so
that a uniformly drawn cell takes ``--mean`` seconds on average, times log-normal noise drawn from a
hash of the cell), so both engines give the same child the same time. Ray gets W logical
CPUs whatever the machine's cores: a sleeping child uses none; its W worker processes are started
(2W one-second children) before the clock starts, as a running cluster's are. Utilisation = the children's
scripted seconds over W × the search's wall-clock time (Ray) or simulated time. Synchronous
(batches of W) and asynchronous (W / m replicas of m = 2) searches, REINFORCE with the nb201
preset's controller. The goal: the simulator's utilisation within 10 % of the real one's.
"""
from __future__ import annotations

import argparse
import hashlib
import math
import random
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]


class Duration:
    """Seconds for a cell: (base + per-GFLOP x GFLOPs) x log-normal noise keyed by the cell."""

    def __init__(self, space, flops, mean_s: float, sigma: float = 0.5):
        from torchnas.scale import DurationModel
        self.flops, self.sigma, self.line = flops, sigma, DurationModel(212.0, 180_000.0)   # a shape; scaled below
        rng = random.Random(0)
        typical = sum(self.line.seconds(flops(space.random(rng))) for _ in range(1000)) / 1000
        self.scale = mean_s / typical

    def __call__(self, arch) -> float:
        rng = random.Random(int(hashlib.sha256(str(arch).encode()).hexdigest()[:12], 16))
        noise = math.exp(rng.gauss(-self.sigma ** 2 / 2, self.sigma))
        return self.scale * self.line.seconds(self.flops(arch)) * noise


class _Fixed:
    def __init__(self, seconds: float):
        self.seconds = seconds

    def __call__(self, arch) -> float:
        return self.seconds


class Sleeping:
    """The table's evaluation of a cell after sleeping its scripted duration (a Ray child)."""

    def __init__(self, table, duration):
        self.table, self.duration = table, duration
        self.trains_networks = False

    def evaluate(self, arch):
        time.sleep(self.duration(arch))
        return self.table.evaluate(arch)


def run(space, table, duration, mode: str, workers: int, children: int, m: int, engine: str) -> float:
    from torchnas.config import RunConfig, build_strategy, load_preset
    from torchnas.evaluators.executors import RayPool
    from torchnas.evaluators.simulated import SimulatedPool
    from torchnas.search import Search
    cfg = load_preset("nb201")
    cfg["strategies"]["reinforce"]["batch_size"] = workers if mode == "sync" else m
    strategy = build_strategy(RunConfig.of(cfg, "reinforce"), space, 0)
    replicas = 1 if mode == "sync" else workers // m
    if engine == "simulated":
        pool = SimulatedPool(workers, duration)
        Search(space, strategy, table, children, executor=pool, replicas=replicas).run()
        return pool.utilisation()
    pool = RayPool(workers=workers, threads=1)
    done = []
    try:
        rng = random.Random(0)                      # every Ray worker started (and torch imported) first
        list(pool.map(Sleeping(table, _Fixed(1.0)), [space.random(rng) for _ in range(2 * workers)]))
        t0 = time.perf_counter()
        Search(space, strategy, Sleeping(table, duration), children, executor=pool, replicas=replicas,
               on_evaluation=lambda rec: done.append(rec["arch"])).run()
        wall = time.perf_counter() - t0
    finally:
        pool.close()
    return sum(duration(space.parse(a)) for a in done) / (workers * wall)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=16)
    ap.add_argument("--children", type=int, default=96)
    ap.add_argument("--mean", type=float, default=2.0, help="mean child seconds (default 2.0)")
    ap.add_argument("--m", type=int, default=2, help="children per asynchronous replica (default 2)")
    ap.add_argument("--data-dir", default=str(HERE.parent / "shared" / "data"))
    args = ap.parse_args()
    from torchnas.evaluators.tabular import NB201Table
    from torchnas.scale import CellFlops
    from torchnas.spaces import NB201Space
    space = NB201Space()
    table = NB201Table(data_dir=args.data_dir)
    duration = Duration(space, CellFlops(space), args.mean)
    print(f"{args.workers} workers, {args.children} children, durations ~{args.mean} s a child on average")
    print("| mode | simulated utilisation | Ray utilisation | simulated / Ray |")
    print("|---|---|---|---|")
    ok = True
    for mode in ("sync", "async"):
        sim = run(space, table, duration, mode, args.workers, args.children, args.m, "simulated")
        ray = run(space, table, duration, mode, args.workers, args.children, args.m, "ray")
        ok &= abs(sim / ray - 1) <= 0.10
        print(f"| {mode} | {sim:.1%} | {ray:.1%} | {sim / ray:.3f} |", flush=True)
    print(f"goal (simulator within 10 % of the real engine, both modes): {'met' if ok else 'missed'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
