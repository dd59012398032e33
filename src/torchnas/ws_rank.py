"""How well shared weights rank architectures, judged against a benchmark table, after a search.

``torchnas bench ws-rank RUN`` loads a finished (or stopped) ENAS run's shared weights, draws
``samples`` distinct architectures uniformly at random (a fixed seed), scores each exactly as the
controller's reward does (``ENASSearch.reward``: accuracy with the shared weights, the run's
``reward_bn``), averaged over the same ``batches`` validation minibatches for every cell, and
compares the scores with the table's ground truth (``space.ground_truth``: for NAS-Bench-201 the
12-epoch CIFAR-10 validation accuracy): Kendall τ and Spearman ρ (SciPy), and the top-10 % hit
rate (the share of the shared weights' top 10 % that is also in the table's top 10 % of the
sample; chance is 0.1). Writes ``RUN/ws_rank.json`` and ``RUN/figures/ws_rank.png``.

:func:`report_ground_truth` writes ``RUN/ground_truth.json`` for the derived architecture. Both
read the table only once the search is over: the search itself never does.
"""
from __future__ import annotations

import math
import random

from .runs import RunDir, RunError


def report_ground_truth(run: RunDir, space, arch: str, data_dir=None) -> dict | None:
    """What the space's benchmark table says of the run's derived ``arch`` (None: the space has
    no table); written to ``RUN/ground_truth.json``."""
    truth = space.ground_truth(space.parse(arch), data_dir)
    if truth is None:
        return None
    truth = {"arch": arch, **truth}
    run.write_json(RunDir.GROUND_TRUTH, truth)
    return truth


def search_from_run(run: RunDir):
    """(config, space, the ENAS search restored from the run's last checkpoint)."""
    from .config import build_space, build_strategy
    from .enas import make_enas
    cfg = run.config()
    if "enas" not in cfg:
        raise RunError(f"{run.path} is not an ENAS run: ws-rank needs the shared weights of one")
    space = build_space(cfg)
    search = make_enas(space, build_strategy(cfg, space), seed=cfg["seed"], **cfg["enas"])
    ckpt = run.load_checkpoint()
    if ckpt is None:
        raise RunError(f"{run.path} has no checkpoint yet: let the search finish an epoch first")
    search.load_state_dict(ckpt)
    return cfg, space, search


def _top(scores: list[float], k: int) -> set[int]:
    return set(sorted(range(len(scores)), key=lambda i: (-scores[i], i))[:k])


def ws_rank(run_dir, samples: int = 64, seed: int = 0, batches: int = 8, data_dir=None) -> dict:
    """Score ``samples`` uniformly drawn architectures with the run's shared weights and rank
    them against the table; returns (and writes) the record."""
    from scipy.stats import kendalltau, spearmanr
    if samples < 3 or batches < 1:
        raise ValueError(f"ws-rank needs --samples >= 3 and --batches >= 1 (got {samples}, {batches})")
    run = RunDir(run_dir)
    cfg, space, search = search_from_run(run)
    if space.size() < samples:
        raise ValueError(f"--samples {samples} is more than the {space.size()} architectures of {space.name!r}")
    derived = (run.read_json(RunDir.BEST) or {}).get("arch")
    rng, archs = random.Random(seed), []
    while len(archs) < samples:
        a = space.random(rng)
        if a not in archs:
            archs.append(a)
    truth_of = lambda a: space.ground_truth(a, data_dir or cfg.get("data_dir"))
    first = truth_of(archs[0])      # the table is checked before any cell is scored
    if first is None:
        raise ValueError(f"space {space.name!r} has no benchmark table to rank against (ws-rank needs nb201)")
    if first.get("table") is None:
        raise ValueError(f"ws-rank needs the benchmark table: {first.get('note')}")
    truth = [truth_of(a)["valid_acc"] for a in archs]
    search.shared.generator.manual_seed(seed)
    val = [search.valid_batch() for _ in range(batches)]
    score = lambda a: sum(search.reward(a, b) for b in val) / len(val)
    ws = [score(a) for a in archs]
    tau, rho = kendalltau(ws, truth).statistic, spearmanr(ws, truth).statistic
    k = max(1, round(0.1 * samples))
    record = {"run": str(run.path), "samples": samples, "seed": seed, "batches": batches,
              "images_per_cell": sum(len(b[1]) for b in val), "reward_bn": search.shared.reward_bn,
              "kendall_tau": None if math.isnan(tau) else float(tau),
              "spearman_rho": None if math.isnan(rho) else float(rho),
              "top10_hit_rate": len(_top(ws, k) & _top(truth, k)) / k, "top_k": k,
              "cells": [{"arch": str(a), "shared_acc": s, "table_valid_acc": t} for a, s, t in zip(archs, ws, truth)]}
    if derived:
        d = space.parse(derived)
        record["derived"] = {"arch": derived, "shared_acc": score(d), "table_valid_acc": truth_of(d)["valid_acc"]}
    run.write_json(RunDir.WS_RANK, record)
    record["figure"] = str(ws_rank_figure(record, run.path / RunDir.FIGURES / "ws_rank.png"))
    return record


def ws_rank_figure(record: dict, path):
    """Scatter of shared-weight accuracy against the table's validation accuracy."""
    from matplotlib.figure import Figure
    from .viz.figures import _save
    fig = Figure(figsize=(5.2, 4.2), layout="constrained")
    ax = fig.subplots()
    xs = [100 * c["shared_acc"] for c in record["cells"]]
    ys = [c["table_valid_acc"] for c in record["cells"]]
    ax.scatter(xs, ys, s=14, alpha=0.7, label=f"{len(xs)} uniform cells")
    if "derived" in record:
        d = record["derived"]
        ax.scatter([100 * d["shared_acc"]], [d["table_valid_acc"]], marker="*", s=160, color="C3",
                   label="derived cell")
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"
    ax.set_title(f"Kendall τ {fmt(record['kendall_tau'])}, Spearman ρ {fmt(record['spearman_rho'])}, "
                 f"top-10% hits {record['top10_hit_rate']:.2f}", fontsize=9)
    ax.set_xlabel(f"shared-weight accuracy, % ({record['images_per_cell']} validation images)")
    ax.set_ylabel("table: 12-epoch validation accuracy, %")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    return _save(fig, path)
