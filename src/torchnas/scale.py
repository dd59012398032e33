"""The search at cluster scale, simulated (``torchnas bench scale``; issue 29, Zoph & Le §3.3).

Every run is the real :class:`~torchnas.search.Search` with the real strategy and controller;
only the executor and the clock are simulated (:class:`SimulatedPool`). On NAS-Bench-201 a
child's reward is the table's 12-epoch validation accuracy (the search signal); on a space
without a table that the policy cannot exhaust (Zoph & Le's CNN space, ``preset: nas-cnn``) it is
a scripted stand-in (:class:`ScriptedReward`) and no cell is judged. A child's training time is
``seconds(flops) × noise``: ``seconds`` a line fitted on this machine (training steps of the
cheapest and the dearest of the space's networks, times the steps of the preset's protocol),
``noise`` a heavy-tailed log-normal factor of mean 1. The synchronous search asks one batch of W
children (one controller update per W children, every worker waiting for the slowest); the
asynchronous one keeps K replicas of m children in flight (Zoph & Le: m = 8, K = 100 for 800
workers) and ends by draining its last children or by cancelling them once the budget is logged
(``finish``). Utilisation counts only the children whose results were used (a cancelled child's
time is busy but wasted). The 200-epoch table only judges the best cell afterwards.
"""
from __future__ import annotations

import math
import random
import statistics
import time
from dataclasses import dataclass

from .evaluators.simulated import SimulatedPool

PROTOCOL_IMAGES = 12 * 25_000       # NAS-Bench-201's 12-epoch protocol: 12 epochs of the 25,000-image train split
CIFAR10_TRAIN = 50_000
STEP_BATCH = 64                     # the batch the calibration times


@dataclass
class DurationModel:
    """``seconds = base_s + per_gflop_s × GFLOPs of one training image``, times log-normal noise
    of mean 1 and shape ``sigma`` (drawn from ``rng`` as children start)."""
    base_s: float
    per_gflop_s: float
    sigma: float = 0.5

    def seconds(self, gflops: float) -> float:
        return self.base_s + self.per_gflop_s * gflops

    def sampler(self, flops_of, rng: random.Random):
        mu = -self.sigma ** 2 / 2
        return lambda arch: self.seconds(flops_of(arch)) * math.exp(rng.gauss(mu, self.sigma))

    def describe(self) -> str:
        return (f"child seconds = {self.base_s:.1f} + {self.per_gflop_s:.1f} x GFLOPs per image "
                f"(the protocol's training), x log-normal noise (sigma {self.sigma}, mean 1)")


class CellFlops:
    """Forward FLOPs per image of the benchmark's network (16 channels, 5 cells a stage) for any
    cell: every edge of a cell sees the same tensor sizes and the cell sums its edges, so the
    network's FLOPs are those of the all-``none`` cell plus one sixth of (all-``op`` − all-``none``)
    for each edge's op (six networks counted once)."""

    def __init__(self, space):
        import torch
        from .nn.flops import count_flops
        n = len(space.decisions)
        with torch.no_grad():
            whole = [count_flops(space.child(space.make(tuple([v] * n)), 3, 10), (3, 32, 32))
                     for v in range(len(space.decisions[0].options))]
        self.base = whole[0]
        self.per_edge = [(f - whole[0]) / n for f in whole]
        self.space = space

    def __call__(self, arch) -> float:
        """GFLOPs per image."""
        return (self.base + sum(self.per_edge[v] for v in arch.values)) / 1e9

    def extremes(self):
        """The cheapest and the dearest cell: one op on every edge."""
        n, cost = len(self.space.decisions), self.per_edge
        return [self.space.make(tuple([cost.index(f(cost))] * n)) for f in (min, max)]


class SpaceFlops:
    """GFLOPs per image from the space's own count (``space.flops``, no network built)."""

    def __init__(self, space, draws: int = 64):
        rng = random.Random(0)
        self.space = space
        self.sample = sorted((space.random(rng) for _ in range(draws)), key=self)   # random children, seeded

    def __call__(self, arch) -> float:
        return self.space.flops(arch) / 1e9

    def extremes(self):
        """The cheapest and the dearest of the random children."""
        return [self.sample[0], self.sample[-1]]


class ScriptedReward:
    """A stand-in reward for a space without a table (the scheduler's measure, not a search's):
    an accuracy that grows with the child's FLOPs and saturates, ``0.95 − 0.45 exp(−g / g₀)``
    with ``g₀`` the median GFLOPs of random children, plus noise of σ 0.01 seeded by the
    architecture (``arch_seed``: a child always gets the same reward)."""

    def __init__(self, flops: SpaceFlops):
        self.flops, self.g0 = flops, statistics.median(flops(a) for a in flops.sample)

    def __call__(self, arch) -> float:
        from .training.state import arch_seed
        noise = random.Random(arch_seed(0, arch)).gauss(0, 0.01)
        return 0.95 - 0.45 * math.exp(-self.flops(arch) / self.g0) + noise


def calibrate(space, flops, sigma: float = 0.5, steps: int = 3, images: int = PROTOCOL_IMAGES) -> DurationModel:
    """Time SGD steps (batch 64, this machine's threads) of the cheapest and the dearest network
    (``flops.extremes()``); the line through the two, scaled to ``images`` (the protocol's)."""
    import torch
    points = []
    for arch in flops.extremes():
        net = space.child(arch, 3, 10)
        opt = torch.optim.SGD(net.parameters(), lr=0.01)
        x, y = torch.randn(STEP_BATCH, 3, 32, 32), torch.randint(0, 10, (STEP_BATCH,))
        times = []
        for _ in range(steps + 1):
            t0 = time.perf_counter()
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(x), y).backward()
            opt.step()
            times.append(time.perf_counter() - t0)
        points.append((flops(arch), statistics.median(times[1:])))
    (g0, s0), (g1, s1) = points
    per_step_gflop = max(s1 - s0, 0.0) / (g1 - g0)
    scale = images / STEP_BATCH
    base = max(s0 - per_step_gflop * g0, 0.0)        # a busy machine's timings can tilt the line below 0
    return DurationModel(base_s=base * scale, per_gflop_s=per_step_gflop * scale, sigma=sigma)


def simulate(space, table, strategy_factory, mode: str, workers: int, children: int, m: int, replicas: int | None,
             model: DurationModel, flops, seed: int, finish: str = "drain") -> dict:
    """One search on ``workers`` simulated workers; returns its figures and the best-so-far
    trajectory against simulated time."""
    from .search import Search
    rng = random.Random(seed * 7919 + workers)
    pool = SimulatedPool(workers, model.sampler(flops, rng))
    batch = workers if mode == "sync" else m
    k = 1 if mode == "sync" else (replicas or -(-workers // m))
    strategy = strategy_factory(batch, seed)
    staleness: list[int] = []
    best: list[tuple[float, str, float]] = []                      # (time, arch, reward) at each new best

    def on_evaluation(rec):
        if not best or rec["reward"] > best[-1][2]:
            best.append((pool.now, rec["arch"], rec["reward"]))
    search = Search(space, strategy, table, children, executor=pool, replicas=k, on_evaluation=on_evaluation,
                    on_update=lambda stats: staleness.append((stats or {}).get("staleness", 0)),
                    finish=finish)
    t0 = time.perf_counter()
    result = search.run()
    return {"mode": mode, "finish": search.finish, "workers": workers, "replicas": k, "batch": batch, "seed": seed,
            "utilisation": pool.useful_utilisation(), "utilisation_busy": pool.utilisation(),
            "utilisation_steady": pool.utilisation(pool.last_start),
            "hours": pool.now / 3600, "trained": len(result.evaluations), "cancelled": result.cancelled,
            "stopped_early": result.stopped_early,
            "children_per_hour": len(result.evaluations) / (pool.now / 3600), "updates": len(staleness),
            "staleness": staleness, "best": best, "seconds": time.perf_counter() - t0}


def verdict_at(space, best: list, hours: float, data_dir) -> float | None:
    """The 200-epoch test accuracy of the best cell found by ``hours`` of simulated time."""
    found = [arch for t, arch, _ in best if t <= hours * 3600]
    if not found:
        return None
    return (space.ground_truth(space.parse(found[-1]), data_dir) or {}).get("test_acc_200ep")


def summary_row(space, run: dict, common_hours: float, data_dir) -> dict:
    st = sorted(run["staleness"])
    q = (lambda f: st[min(len(st) - 1, int(f * len(st)))]) if st else (lambda f: 0)
    return {"mode": run["mode"], "finish": run["finish"], "workers": run["workers"], "replicas": run["replicas"],
            "batch": run["batch"], "seed": run["seed"], "utilisation": round(run["utilisation"], 4),
            "utilisation_busy": round(run["utilisation_busy"], 4), "cancelled": run["cancelled"],
            "utilisation_steady": round(run["utilisation_steady"], 4),
            "children_per_hour": round(run["children_per_hour"], 1), "updates": run["updates"],
            "trained": run["trained"], "stopped_early": run["stopped_early"],
            "staleness_median": q(0.5), "staleness_p90": q(0.9), "staleness_max": st[-1] if st else 0,
            "hours": round(run["hours"], 2), "best_test_200ep": verdict_at(space, run["best"], run["hours"], data_dir),
            "best_test_200ep_at_common_time": verdict_at(space, run["best"], common_hours, data_dir),
            "common_hours": round(common_hours, 2), "wall_seconds": round(run["seconds"], 1)}


def check_preset(preset: str) -> None:
    """``bench scale`` simulates a table's children (NAS-Bench-201) or children whose FLOPs the
    space counts, trained on CIFAR-10 (their protocol's length): refused up front otherwise."""
    from .config import ConfigError, load_preset, preset_names, trains_networks
    from .registry import registered

    def fits(cfg: dict) -> bool:
        ev, space = cfg.get("evaluator") or {}, registered("space").get((cfg.get("space") or {}).get("name"))
        if "enas" in cfg or not ev:
            return False
        return not trains_networks(ev) or (hasattr(space, "flops") and (ev.get("data") or {}).get("name") == "cifar10")
    choices = [name for name in preset_names() if fits(load_preset(name))]
    if preset not in choices:
        why = ("no such preset" if preset not in preset_names() else "the simulator needs a table's children or a "
               "space that counts its children's FLOPs, trained on CIFAR-10")
        raise ConfigError(f"bench scale --preset {preset}: {why}; choose {', '.join(choices)}")


def run_scale(workers: list[int], children: int, m: int | list[int], replicas: list[int] | None, seeds: list[int],
              modes: list[str], finishes: tuple[str, ...] = ("drain",),
              strategy: str = "reinforce", preset: str = "nb201", sigma: float = 0.5, data_dir=None,
              model: DurationModel | None = None, on_run=None) -> dict:
    """Every (seed, workers, mode, way of ending) search, its figures, and the best cell judged at
    the simulated time all of them reached (the shortest)."""
    import copy
    from .config import RunConfig, build_evaluator, build_space, build_strategy, load_preset, trains_networks
    from .evaluators import FunctionEvaluator
    check_preset(preset)
    cfg = load_preset(preset)
    rc = RunConfig.of(cfg, strategy)
    space = build_space(rc)
    if trains_networks(cfg.get("evaluator")):     # no table: FLOPs and a scripted reward, no verdict
        flops = SpaceFlops(space)
        table = FunctionEvaluator(ScriptedReward(flops))
        ev = cfg["evaluator"]
        from .data.images import _count
        valid = ev["data"].get("valid_size") or 5000     # data/images.py's CIFAR-10 default; a share or a count
        images = ev["epochs"] * (CIFAR10_TRAIN - _count(valid, CIFAR10_TRAIN, "valid_size"))
    else:
        table = build_evaluator(rc, data_dir, space)
        table.check()
        space.baselines(data_dir)                # the verdict table is there before anything runs
        flops, images = CellFlops(space), PROTOCOL_IMAGES
    model = model or calibrate(space, flops, sigma, images=images)

    def factory(batch: int, seed: int):
        c = copy.deepcopy(cfg)
        settings = c.setdefault("strategies", {}).setdefault(strategy, {}) or {}
        c["strategies"][strategy] = settings
        if strategy != "evolution":
            settings["batch_size"] = batch
        return build_strategy(RunConfig.of(c, strategy), space, seed)
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)        # the controller's small operations: one thread is several times faster here
    try:
        rows = _runs(space, table, factory, workers, children, m, replicas, seeds, modes, finishes, model, flops,
                     data_dir, on_run)
    finally:
        torch.set_num_threads(threads)
    return {"model": model.describe(), "children": children, "m": m, "strategy": strategy, "preset": preset,
            "rows": rows}


def _runs(space, table, factory, workers, children, m, replicas, seeds, modes, finishes, model, flops, data_dir,
          on_run):
    t0 = time.perf_counter()
    rows = []
    for seed in seeds:
        for w in workers:
            runs = []
            ms = m if isinstance(m, list) else [m]
            plan = [(mode, mm, k, f) for mode in modes for mm in (ms[:1] if mode == "sync" else ms)
                    for k in ([None] if mode == "sync" else (replicas or [None]))
                    for f in (["drain"] if mode == "sync" else finishes)]
            for mode, mm, k, f in plan:
                runs.append(simulate(space, table, factory, mode, w, children, mm, k, model, flops, seed, f))
                if on_run is not None:          # searches done, of how many, seconds since the first began
                    on_run(len(rows) + len(runs), len(seeds) * len(workers) * len(plan), time.perf_counter() - t0)
            common = min(r["hours"] for r in runs)
            rows += [summary_row(space, r, common, data_dir) for r in runs]
    return rows
