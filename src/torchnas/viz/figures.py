"""Figures of a run's logs: records in, PNG files out (Matplotlib's Agg canvas, no pyplot).

* :func:`controller_figure`: reward and baseline, entropy, policy loss per controller update;
* :func:`best_so_far_figure`: the best reward after each query, every reward as a faint dot;
* :func:`epochs_figure`: loss and validation accuracy (or perplexity) per epoch, for the
  shared weights of an ENAS search or a retraining run.

Each returns the file written, or None when the records hold nothing to plot.
"""
from __future__ import annotations

import math
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

DPI = 150
PANEL_SIZE = (4.6, 3.4)          # inches per panel: 690 x 510 px at 150 dpi


def _values(records: list[dict], key: str) -> list[float]:
    """``key`` of each record as floats, NaN where missing or not a number."""
    out = []
    for r in records:
        v = r.get(key)
        out.append(float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan)
    return out


def _has(values: list[float]) -> bool:
    return any(math.isfinite(v) for v in values)


def _save(fig: Figure, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=DPI)
    return path


def plot_panels(records: list[dict], path, x: str, panels: list[tuple[str, list[str]]], title: str = "",
                log_y: tuple[str, ...] = (), names: dict[str, str] | None = None,
                marks: dict[str, tuple[str, float]] | None = None) -> Path | None:
    """One panel per ``(ylabel, keys)`` with a line per key against ``x``, in a legend by its
    name in ``names`` (else the key); panels (and keys) absent from the records are left out.
    ``log_y``: ylabels drawn on a log scale; ``marks``: per ylabel a labelled horizontal line
    (a final test result)."""
    names, marks = names or {}, marks or {}
    xs = [r.get(x, i + 1) for i, r in enumerate(records)]
    kept = []
    for ylabel, keys in panels:
        lines = [(k, ys) for k in keys if _has(ys := _values(records, k))]
        if lines:
            kept.append((ylabel, lines))
    if not kept:
        return None
    fig = Figure(figsize=(PANEL_SIZE[0] * len(kept), PANEL_SIZE[1]), layout="constrained")
    for ax, (ylabel, lines) in zip(fig.subplots(1, len(kept), squeeze=False)[0], kept):
        for key, ys in lines:
            ax.plot(xs, ys, label=names.get(key, key), marker="o" if len(xs) <= 30 else None, markersize=3,
                    linewidth=1.2)
        if ylabel in marks:
            label, value = marks[ylabel]
            ax.axhline(value, color="tab:red", linestyle="--", linewidth=1.0, label=label)
        ax.set_xlabel(x)
        ax.set_ylabel(ylabel)
        finite = [v for _, ys in lines for v in ys if math.isfinite(v)]
        if ylabel in log_y and min(finite) > 0 and max(finite) > 10 * min(finite):   # spans a decade
            ax.set_yscale("log")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def controller_figure(steps: list[dict], path, title: str = "controller") -> Path | None:
    """Reward and baseline, entropy and loss per update (``steps.jsonl``)."""
    return plot_panels(steps, path, "update", [("reward", ["reward", "baseline"]), ("entropy", ["entropy"]),
                                               ("policy loss", ["loss"])], title)


def best_so_far_figure(evaluations: list[dict], path, title: str = "search") -> Path | None:
    """Best reward after each query (a step line) over every query's reward (faint dots)."""
    evaluations = [e for e in evaluations if isinstance(e.get("reward"), (int, float))]
    if not evaluations:
        return None
    qs = [e.get("query", i + 1) for i, e in enumerate(evaluations)]
    rewards = [float(e["reward"]) for e in evaluations]
    best, running = -math.inf, []
    for r in rewards:
        best = max(best, r)
        running.append(best)
    i = rewards.index(best)
    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.subplots()
    ax.scatter(qs, rewards, s=10, alpha=0.3, color="tab:gray", label="reward of each query")
    ax.step(qs, running, where="post", color="tab:blue", linewidth=1.6, label="best so far")
    ax.scatter([qs[i]], [best], marker="*", s=120, color="tab:red", zorder=3,
               label=f"best {best:.4g} (query {qs[i]})")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("query")
    ax.set_ylabel("reward")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="lower right")
    ax.set_title(title)
    return _save(fig, path)


CURVES = {"loss": "training loss", "train_acc": "training", "valid_acc": "validation",
          "train_ppl": "training", "valid_ppl": "validation"}


def epochs_figure(epochs: list[dict], path, title: str = "", result: dict | None = None) -> Path | None:
    """Training loss, and training and validation accuracy or perplexity, per epoch
    (``epochs.jsonl`` of an ENAS search: shared-weight training; ``history.jsonl`` of a
    retraining run). ``result`` (a retraining's result.json): its test accuracy or perplexity
    is drawn as a line and put in the title."""
    marks, result = {}, result or {}
    if isinstance(result.get("test_acc"), (int, float)):
        marks["accuracy"] = (f"test {100 * result['test_acc']:.2f} %", result["test_acc"])
    if isinstance(result.get("test_ppl"), (int, float)):
        marks["perplexity"] = (f"test {result['test_ppl']:.2f}", result["test_ppl"])
    tests = ", ".join(label for label, _ in marks.values())
    if tests:
        title = f"{title} ({tests})" if title else tests
    return plot_panels(epochs, path, "epoch", [("loss", ["loss"]), ("accuracy", ["train_acc", "valid_acc"]),
                                               ("perplexity", ["train_ppl", "valid_ppl"])], title,
                       log_y=("perplexity",), names=CURVES, marks=marks)


__all__ = ["plot_panels", "controller_figure", "best_so_far_figure", "epochs_figure"]
