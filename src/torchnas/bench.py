"""Seeded searches on NAS-Bench-201, summarized (``torchnas bench nb201``).

Each seed runs one search of ``queries`` distinct architectures against the tabular
evaluator; the architecture a search returns is its best by reward (the 12-epoch
validation accuracy by default). Once a search is over it is judged: its 200-epoch
CIFAR-10 test accuracy and rank (the verdict) first, then every column of the 12-epoch
table, as mean ± std over seeds, with the baselines (largest cell, random cell). Seeds run in
parallel worker processes, one torch thread each.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import statistics
import sys
import time

from .config import (RunConfig, apply_override, build, build_evaluator, build_space, build_strategy, load_preset,
                     trains_networks)
from .evaluators.executors import quiet_worker, sigint_blocked_in_children

_EVALUATORS = {}


def _one_seed(job):
    rc, seed, data_dir = job
    import torch
    torch.set_num_threads(1)
    key = (data_dir, repr(rc.evaluator))
    if key not in _EVALUATORS:  # one table per worker process
        _EVALUATORS[key] = build_evaluator(rc, data_dir)
    space = build_space(rc)
    strategy = build_strategy(rc, space, seed)
    evaluator = _EVALUATORS[key]
    from .search import Search
    result = Search(space, strategy, evaluator, rc.budget, max_proposals=rc.max_proposals).run()
    best = result.best
    arch = space.parse(best["arch"])
    return {"seed": seed, "arch_str": space.to_arch_str(arch), "reward": best["reward"],
            "metrics": best["metrics"], "trajectory": result.trajectory,
            "proposals": result.proposals, "stopped_early": result.stopped_early}


def _check_tabular(cfg: dict, preset: str) -> None:
    """The benchmark runs many searches against a table in seconds: refuse, before anything runs,
    a preset whose search trains networks (children or shared weights)."""
    from .registry import registered
    if "enas" in cfg:
        raise ValueError(f"bench nb201 runs searches against the NAS-Bench-201 table; preset {preset!r} is an "
                         f"ENAS search that trains shared weights (run it with torchnas search, judge it with "
                         f"torchnas bench ws-rank)")
    ev = cfg.get("evaluator")
    if not isinstance(ev, dict):
        raise ValueError(f"evaluator = {ev!r}: bench nb201 needs the preset's evaluator section (name: nb201)")
    if trains_networks(ev):
        tables = [n for n in sorted(registered("evaluator")) if not trains_networks({"name": n})]
        raise ValueError(f"bench nb201 runs searches against the NAS-Bench-201 table; preset {preset!r} "
                         f"evaluates with {ev.get('name')!r}, which trains networks (use a preset whose "
                         f"evaluator looks children up, such as nb201; evaluators that do: {', '.join(tables)})")


def _check_judged(space, preset: str) -> None:
    """What the benchmark needs of the space: a table that judges its cells (``ground_truth``)."""
    from .spaces.base import SearchSpace
    if type(space).ground_truth is SearchSpace.ground_truth:
        raise ValueError(f"bench nb201 judges each search's cell by its space's benchmark table; preset {preset!r} "
                         f"searches space {space.name!r}, which has none (use a NAS-Bench-201 preset, such as nb201)")


def run_nb201_bench(strategy: str, queries: int, seeds: int, preset: str = "nb201", overrides=(),
                    data_dir=None, workers=None, first_seed: int = 0, on_seed=None) -> dict:
    """``seeds`` searches (seeds ``first_seed``, ...) on worker processes; ``on_seed(done, total,
    seconds, result so far)`` after each, each finished search judged by the verdict at once."""
    cfg = load_preset(preset)
    for o in overrides:
        apply_override(cfg, o)
    _check_tabular(cfg, preset)
    cfg["budget"] = queries
    rc = RunConfig.of(cfg, strategy)
    if seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {seeds}")
    _check_judged(build_space(rc), preset)
    space, _, evaluator = build(rc, data_dir)  # fail fast, in this process, on bad config or missing data
    _EVALUATORS[(data_dir, repr(rc.evaluator))] = evaluator   # forked workers inherit the table
    jobs = [(rc, s, data_dir) for s in range(first_seed, first_seed + seeds)]
    workers = min(workers or os.cpu_count() or 1, seeds)
    result = {"strategy": strategy, "queries": queries, "config": rc.strategy, "seconds": 0.0, "runs": []}
    t0 = time.perf_counter()
    for r in _searches(jobs, workers):
        result.setdefault("baselines", space.baselines(data_dir))
        truth = space.ground_truth(space.parse(r["arch_str"]), data_dir) or {}    # the search is over
        r["verdict"] = {k: truth[k] for k in ("test_acc_200ep", "rank_200ep") if k in truth}
        result["runs"].append(r)
        result["seconds"] = round(time.perf_counter() - t0, 2)
        if on_seed is not None:
            on_seed(len(result["runs"]), seeds, time.perf_counter() - t0, result)
    return result


def _searches(jobs: list, workers: int):
    """Each job's search result, in seed order, from ``workers`` processes (or this one)."""
    if workers <= 1:
        yield from map(_one_seed, jobs)
        return
    ctx = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    with sigint_blocked_in_children():          # the pool starts its processes now
        pool = ctx.Pool(workers, initializer=quiet_worker, initargs=(os.getpid(),))
    with pool:
        yield from pool.imap(_one_seed, jobs)


def summarize(result: dict) -> dict:
    """``{metric: (mean, std)}`` over the seeds' returned cells: the verdict (200-epoch test
    accuracy and rank) first when its table is found, then the 12-epoch table's columns."""
    runs = result["runs"]
    out = {}
    for c in [*runs[0].get("verdict", {}), *runs[0]["metrics"]]:
        vals = [r["verdict"][c] if c in r.get("verdict", {}) else r["metrics"][c] for r in runs]
        out[c] = (statistics.mean(vals), statistics.stdev(vals) if len(vals) > 1 else 0.0)
    return out
