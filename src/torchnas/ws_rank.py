"""How well shared weights rank architectures, judged against a benchmark's tables, after a search.

``torchnas bench ws-rank RUN`` loads a finished (or stopped) ENAS run's shared weights, draws
``samples`` *distinct* cells (uniform over the space's distinct functions, a fixed seed), scores
each exactly as the controller's reward does (``ENASSearch.reward``: accuracy with the shared
weights, the run's ``reward_bn``), averaged over the same ``batches`` validation minibatches for
every cell, and compares the scores with the benchmark (``space.ground_truth``): Kendall τ and
Spearman ρ against the verdict (NAS-Bench-201: the 200-epoch CIFAR-10 test accuracy) and the
12-epoch search signal; the same statistics for the parameter count on the same cells (the
heuristic a ranking must beat; the parameters the cell's function uses, ``function_params``);
τ-b within groups of equal parameter count, cells with the same convolutions at work that differ
in where they sit and in their parameter-free edges (what size cannot explain); the top-10 %
hit rate against the verdict (chance 0.1). It then draws from the run's
final policy: the draws' mean verdict against as many draws of the run's uniform sampler, and
the share that is the largest cell. Writes ``RUN/ws_rank.json`` and ``RUN/figures/ws_rank.png``.

:func:`report_ground_truth` writes ``RUN/ground_truth.json`` for the derived architecture. Both
read the tables only once the search is over: the search itself never does.
"""
from __future__ import annotations

import math
import random
import warnings

from .runs import RunDir, RunError


def report_ground_truth(run: RunDir, space, arch: str, data_dir=None) -> dict | None:
    """What the space's benchmark tables say of the run's derived ``arch``, with the baselines
    (None: the space has no table); written to ``RUN/ground_truth.json``."""
    truth = space.ground_truth(space.parse(arch), data_dir)
    if truth is None:
        return None
    truth = {"arch": arch, **truth, "baselines": space.baselines(data_dir)}
    run.write_json(RunDir.GROUND_TRUTH, truth)
    return truth


def verdict_line(truth: dict) -> str:
    """One line: the verdict (200-epoch test accuracy and rank) first, the 12-epoch signal second,
    then the baselines; what is missing is said."""
    parts = []
    if truth.get("test_acc_200ep") is not None:
        parts.append(f"200-epoch test {truth['test_acc_200ep']:.2f} % (rank {truth['rank_200ep']:,} of "
                     f"{truth.get('cells', 15625):,}, percentile {truth['percentile_200ep']:.1f})")
    if truth.get("valid_acc") is not None:
        parts.append(f"12-epoch valid {truth['valid_acc']:.2f} %, test {truth['test_acc']:.2f} % "
                     f"(percentile {truth['valid_percentile']:.1f}, rank {truth['valid_rank']:,})")
    if truth.get("baselines"):
        parts.append(baselines_line(truth["baselines"]))
    if truth.get("note"):
        parts.append(f"({truth['note']})")
    elif "verdict_table" not in truth:
        parts.append("(an older record without the 200-epoch verdict: a new search or ws-rank gives it)")
    return "; ".join(parts)


def baselines_line(b: dict) -> str:
    """``space.baselines()`` in words (or why there are none)."""
    if not b.get("verdict_table"):
        return f"no baselines ({b.get('note', 'no table')})"
    return (f"baselines (200-epoch test, from the table): largest cell {b['largest_cell']['test_acc_200ep']:.2f} % "
            f"(rank {b['largest_cell']['rank_200ep']:,}), random cell {b['random_cell']:.2f} % (distinct cells "
            f"{b['random_distinct_cell']:.2f} %), optimum {b['optimum']:.2f} %")


def search_from_run(run: RunDir):
    """(config, space, the ENAS search restored from the run's last checkpoint)."""
    from .config import RunConfig
    from .enas import build_enas
    cfg = run.config()
    if "enas" not in cfg:
        raise RunError(f"{run.path} is not an ENAS run: ws-rank needs the shared weights of one")
    rc = RunConfig.of(cfg)
    space, search = build_enas(rc)
    if run.load_checkpoint("enas", restore=search.load_state_dict) is None:
        raise RunError(f"{run.path} has no checkpoint yet: let the search finish an epoch first")
    return cfg, space, search


def _top(scores: list[float], k: int) -> set[int]:
    return set(sorted(range(len(scores)), key=lambda i: (-scores[i], i))[:k])


def within_group_tau(x: list[float], y: list[float], groups: list) -> tuple[float | None, int]:
    """Kendall's τ-b over the pairs of cells in the same group only (here: the same parameters at
    work, ``function_params``), the part of a ranking that the group cannot explain:
    (C − D) / √((P − Tx)(P − Ty)) with C, D the concordant and discordant pairs among the P
    within-group pairs and Tx, Ty those tied in ``x``, in ``y``. With one group it is SciPy's τ-b.
    Returns (τ, P); τ is None when every pair is tied in one of the two."""
    sign = lambda v: (v > 0) - (v < 0)
    total = pairs = tied_x = tied_y = 0
    for i in range(len(x)):
        for j in range(i + 1, len(x)):
            if groups[i] == groups[j]:
                sx, sy = sign(x[i] - x[j]), sign(y[i] - y[j])
                pairs += 1
                total += sx * sy
                tied_x += sx == 0
                tied_y += sy == 0
    norm = math.sqrt((pairs - tied_x) * (pairs - tied_y))
    return (total / norm if norm else None), pairs


def rank_stats(x: list[float], y: list[float]) -> tuple[float | None, float | None]:
    """Kendall τ (τ-b) and Spearman ρ of ``x`` against ``y`` (SciPy); None where undefined (a
    constant column: SciPy's warning is not passed on, the None says it)."""
    from scipy.stats import kendalltau, spearmanr
    clean = lambda v: None if math.isnan(v) else float(v)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return clean(kendalltau(x, y).statistic), clean(spearmanr(x, y).statistic)


def distinct_cells(space, samples: int, seed: int) -> list:
    """``samples`` cells uniform over the space's distinct functions, none computing what another
    does (``space.function_key``), in a seeded order."""
    rng, archs, keys, misses = random.Random(seed), [], set(), 0
    while len(archs) < samples:
        a = space.random_distinct(rng)
        key = space.function_key(a)
        if key in keys:
            misses += 1
            if misses > 200_000:         # in a row: the space has no more distinct cells to give
                raise ValueError(f"--samples {samples}: space {space.name!r} gave only {len(archs)} distinct cells")
            continue
        misses = 0
        keys.add(key)
        archs.append(a)
    return archs


def ws_rank(run_dir, *, samples: int, seed: int, batches: int, policy_samples: int, data_dir=None) -> dict:
    """Score ``samples`` distinct cells with the run's shared weights and rank them against the
    benchmark: the 200-epoch verdict first, the 12-epoch signal second, parameter count on the
    same cells beside them, τ within equal sizes; then ``policy_samples`` draws of the run's final
    policy judged by the verdict. Returns (and writes) the record. (The defaults are
    ``api.ws_rank``'s, the command's.)"""
    if samples < 3 or batches < 1 or policy_samples < 1:
        raise ValueError(f"ws-rank needs --samples >= 3, --batches >= 1 and --policy-samples >= 1 "
                         f"(got {samples}, {batches}, {policy_samples})")
    run = RunDir(run_dir)
    cfg, space, search = search_from_run(run)
    if space.size() < samples:
        raise ValueError(f"--samples {samples} is more than the {space.size()} architectures of {space.name!r}")
    data_dir = data_dir or cfg.get("data_dir")
    derived = (run.read_json(RunDir.BEST) or {}).get("arch")
    archs = distinct_cells(space, samples, seed)
    truth_of = lambda a: space.ground_truth(a, data_dir)
    first = truth_of(archs[0])      # the tables are checked before any cell is scored
    if first is None:
        raise ValueError(f"space {space.name!r} has no benchmark table to rank against (ws-rank needs nb201)")
    if first.get("verdict_table") is None or first.get("table") is None:
        raise ValueError(f"ws-rank needs the benchmark's tables: {first.get('note')}")
    truths = [truth_of(a) for a in archs]
    verdict = [t["test_acc_200ep"] for t in truths]
    signal = [t["valid_acc"] for t in truths]
    params = [t["function_params"] for t in truths]      # the size of the function, not of its encoding
    search.shared.generator.manual_seed(seed)
    val = [search.valid_batch() for _ in range(batches)]
    score = lambda a: sum(search.reward(a, b) for b in val) / len(val)
    ws = [score(a) for a in archs]
    k = max(1, round(0.1 * samples))
    record = {"run": str(run.path), "samples": samples, "seed": seed, "batches": batches,
              "images_per_cell": sum(len(b[1]) for b in val), "reward_bn": search.shared.reward_bn,
              "top10_hit_rate": len(_top(ws, k) & _top(verdict, k)) / k, "top_k": k}
    for name, target in (("200ep", verdict), ("12ep", signal)):
        record[f"tau_{name}"], record[f"rho_{name}"] = rank_stats(ws, target)
        record[f"params_tau_{name}"], record[f"params_rho_{name}"] = rank_stats(params, target)
        record[f"within_size_tau_{name}"], pairs = within_group_tau(ws, target, params)
    record["within_size_pairs"], record["sizes"] = pairs, len(set(params))
    record["baselines"] = baselines = space.baselines(data_dir)
    record["policy"] = _policy(space, search, archs, baselines, policy_samples, seed, truth_of)
    record["cells"] = [{"arch": str(a), "shared_acc": s, "test_acc_200ep": v, "table_valid_acc": t,
                        "function_params": p} for a, s, v, t, p in zip(archs, ws, verdict, signal, params)]
    if derived:
        d = space.parse(derived)
        t = truth_of(d)
        record["derived"] = {"arch": derived, "shared_acc": score(d), "test_acc_200ep": t["test_acc_200ep"],
                             "rank_200ep": t["rank_200ep"], "table_valid_acc": t["valid_acc"],
                             "function_params": t["function_params"]}
    run.write_json(RunDir.WS_RANK, record)
    record["figure"] = str(ws_rank_figure(record, run.path / RunDir.FIGURES / "ws_rank.png"))
    return record


def _policy(space, search, archs, baselines: dict, n: int, seed: int, truth_of) -> dict:
    """``n`` draws of the run's final policy (RSWS: its uniform draws) judged by the verdict,
    beside as many draws of the run's own uniform sampler and the distinct ``archs``."""
    draws = search.strategy.propose(n)
    rng = random.Random(seed)
    uniform = [space.random(rng) for _ in range(n)]
    largest = space.function_key(space.parse(baselines["largest_cell"]["arch_str"]))
    mean = lambda cells: sum(truth_of(a)["test_acc_200ep"] for a in cells) / len(cells)
    return {"draws": len(draws), "mean_200ep": mean(draws), "distinct": len({space.function_key(a) for a in draws}),
            "largest_cell_share": sum(space.function_key(a) == largest for a in draws) / len(draws),
            "uniform_draws_mean_200ep": mean(uniform), "distinct_cells_mean_200ep": mean(archs)}


def ranking_lines(r: dict) -> list[str]:
    """``ws_rank.json`` in words: the ranking against the verdict and the signal, beside size
    alone; the final policy's draws (a record of an older version: its τ and ρ only)."""
    f = lambda v: "n/a" if v is None else f"{v:.3f}"
    if "tau_200ep" not in r:
        return [f"{r['samples']} uniform cells: Kendall tau {f(r.get('kendall_tau'))} against the 12-epoch table, "
                f"Spearman rho {f(r.get('spearman_rho'))} (an older ws-rank: run it again for the 200-epoch verdict)"]
    lines = [f"{r['samples']} distinct cells scored with the shared weights on {r['images_per_cell']} validation "
             f"images each (reward_bn {r['reward_bn']})"]
    for name, what in (("200ep", "200-epoch test (the verdict)"), ("12ep", "12-epoch valid (the signal)")):
        lines.append(f"against the {what}: Kendall tau {f(r[f'tau_{name}'])}, Spearman rho {f(r[f'rho_{name}'])}; "
                     f"parameter count alone {f(r[f'params_tau_{name}'])}, {f(r[f'params_rho_{name}'])}; "
                     f"tau-b within equal sizes {f(r[f'within_size_tau_{name}'])} ({r['within_size_pairs']} pairs "
                     f"in {r['sizes']} sizes)")
    lines.append(f"top-10% hit rate {r['top10_hit_rate']:.2f} against the verdict (top {r['top_k']}; chance 0.10)")
    p = r["policy"]
    lines.append(f"final policy, {p['draws']} draws ({p['distinct']} distinct): mean 200-epoch test "
                 f"{p['mean_200ep']:.2f} % against {p['uniform_draws_mean_200ep']:.2f} % for as many draws of the "
                 f"run's uniform sampler and {p['distinct_cells_mean_200ep']:.2f} % for the distinct cells above; "
                 f"{100 * p['largest_cell_share']:.0f} % of draws are the largest cell")
    lines.append(baselines_line(r["baselines"]))
    if "derived" in r:
        d = r["derived"]
        lines.append(f"derived cell: shared-weight accuracy {d['shared_acc']:.4f}, 200-epoch test "
                     f"{d['test_acc_200ep']:.2f} % (rank {d['rank_200ep']:,}), 12-epoch valid {d['table_valid_acc']:.2f} %")
    return lines


def ws_rank_figure(record: dict, path):
    """Shared-weight accuracy against the verdict (200-epoch test accuracy), coloured by size."""
    from matplotlib.figure import Figure
    from .viz.figures import _save
    fig = Figure(figsize=(5.6, 4.4), layout="constrained")
    ax = fig.subplots()
    xs = [100 * c["shared_acc"] for c in record["cells"]]
    ys = [c["test_acc_200ep"] for c in record["cells"]]
    dots = ax.scatter(xs, ys, s=14, alpha=0.8, c=[c["function_params"] / 1e6 for c in record["cells"]], cmap="viridis",
                      label=f"{len(xs)} distinct cells")
    fig.colorbar(dots, ax=ax, label="parameters (M)")
    if "derived" in record:
        d = record["derived"]
        ax.scatter([100 * d["shared_acc"]], [d["test_acc_200ep"]], marker="*", s=160, color="C3",
                   label="derived cell")
    fmt = lambda v: "n/a" if v is None else f"{v:.2f}"
    ax.set_title(f"τ {fmt(record['tau_200ep'])} (size alone {fmt(record['params_tau_200ep'])}), "
                 f"within sizes {fmt(record['within_size_tau_200ep'])}", fontsize=9)
    ax.set_xlabel(f"shared-weight accuracy, % ({record['images_per_cell']} validation images)")
    ax.set_ylabel("NAS-Bench-201: 200-epoch test accuracy, %")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    return _save(fig, path)
