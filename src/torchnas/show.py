"""``torchnas show``: what a run found, and figures of how it got there.

:func:`summarize` reads a run directory (a search, an ENAS search or a retraining run) into a
dict; :func:`show_run` prints it with Rich and writes ``RUN/figures/``; :func:`show_arch`
draws one architecture string.
"""
from __future__ import annotations

from pathlib import Path

from .runs import RunDir, run_kind

BASELINE_CELLS = {"lstm": "plain LSTM (baseline)", "nas": "Zoph & Le's NAS cell (baseline)"}   # final_net.cell


def _settings_text(section: dict | None, skip=("name",)) -> str:
    """``name (k=v, ...)`` of a config section's scalar settings (nested ones left out)."""
    if not section:
        return "-"
    items = [f"{k}={v}" for k, v in section.items() if k not in skip and not isinstance(v, dict)]
    name, items = section.get("name", ""), ", ".join(items)
    return f"{name} ({items})" if name and items else name or items or "-"


def _settings(cfg: dict, kind: str) -> dict:
    s = {"space": _settings_text(cfg["space"])}
    if kind == "train":
        s.update(architecture=cfg["arch"], data=_settings_text(cfg.get("data")),
                 training=_settings_text(cfg.get("train")), network=_settings_text(cfg.get("net")))
    else:
        s["strategy"] = _settings_text(cfg.get("strategy"))
        if kind == "enas":
            s["data"] = _settings_text(cfg["enas"].get("data"))
            s["enas"] = _settings_text(cfg["enas"], skip=("data", "epochs"))
            s["epochs"] = cfg["enas"].get("epochs")
        else:
            s["evaluator"] = _settings_text(cfg.get("evaluator"))
            s["budget"] = cfg.get("budget")
    s["seed"] = cfg.get("seed")
    s["preset"] = cfg.get("preset") or "-"
    return s


def summarize(run_dir, top: int = 5) -> dict:
    """What a run holds: kind, settings, progress, time spent, the best architectures (top
    ``top`` by reward; for ENAS the derived list), results of retraining."""
    run = RunDir(run_dir)
    cfg = run.config()
    kind = run_kind(cfg)
    out = {"path": str(run.path), "kind": kind, "settings": _settings(cfg, kind), "best": run.read_json(RunDir.BEST)}
    if kind == "search":
        evals = run.records(RunDir.EVALS)
        ranked = sorted(evals, key=lambda e: -e["reward"])[:top]       # stable: ties keep the earlier query
        out["top"] = [{"arch": e["arch"], "reward": e["reward"], "params": (e.get("metrics") or {}).get("params"),
                       "query": e["query"], "elapsed_s": e.get("elapsed_s")} for e in ranked]
        out["progress"] = {"evaluations": len(evals), "budget": cfg.get("budget"),
                           "updates": len(run.records(RunDir.STEPS))}
        out["time_s"] = max((e.get("elapsed_s") or 0 for e in evals), default=0.0)
    elif kind == "enas":
        epochs = run.records(RunDir.EPOCHS)
        out["derived"] = (run.read_json(RunDir.DERIVED) or [])[:top]
        out["progress"] = {"epochs": len(epochs), "of": cfg["enas"].get("epochs"),
                           "updates": len(run.records(RunDir.STEPS))}
        out["time_s"] = sum(e.get("seconds") or 0 for e in epochs)
        out["ground_truth"] = run.read_json(RunDir.GROUND_TRUTH)   # written after the search (ws_rank.py)
        out["ws_rank"] = run.read_json(RunDir.WS_RANK)
    else:
        history = run.records(RunDir.HISTORY)
        out["result"] = run.read_json(RunDir.RESULT)
        out["progress"] = {"epochs": len(history), "of": (cfg.get("train") or {}).get("epochs")}
        out["time_s"] = sum(h.get("seconds") or 0 for h in history)
    out["arch"] = cfg["arch"] if kind == "train" else (out["best"] or {}).get("arch")
    if kind == "train" and (cfg.get("net") or {}).get("cell") in BASELINE_CELLS:
        out["arch"] = None          # a baseline cell: the arch string in its config was not trained
    out["retrain"] = RunDir(run.path / RunDir.RETRAIN).read_json(RunDir.RESULT)
    return out


def write_figures(run_dir, summary: dict | None = None) -> dict[str, Path]:
    """The run's figures in ``RUN/figures/``; returns ``{name: file}`` for those written."""
    from .spaces import space_from_config
    from .viz import diagrams, figures
    run = RunDir(run_dir)
    cfg, summary = run.config(), summary or summarize(run_dir)
    d, name = run.path / RunDir.FIGURES, run.path.name
    written = {
        "controller": figures.controller_figure(run.records(RunDir.STEPS), d / "controller.png",
                                                f"{name}: controller"),
        "best_so_far": figures.best_so_far_figure(run.records(RunDir.EVALS), d / "best_so_far.png",
                                                  f"{name}: best reward so far"),
        "shared": figures.epochs_figure(run.records(RunDir.EPOCHS), d / "shared.png",
                                        f"{name}: shared weights"),
        "training": figures.epochs_figure(run.records(RunDir.HISTORY), d / "training.png",
                                          f"{name}: training", summary.get("result")),
        "retrain": figures.epochs_figure(RunDir(run.path / RunDir.RETRAIN).records(RunDir.HISTORY),
                                         d / "retrain.png", f"{name}: retraining", summary.get("retrain")),
    }
    if summary["arch"]:
        net = cfg.get("net") or (cfg.get("enas") or {}).get("net") or {}
        svg, png = diagrams.draw(space_from_config(cfg["space"]).parse(summary["arch"]), d / "best_arch",
                                 rnn_output=net.get("output", "average"))
        written.update(best_arch=svg, best_arch_png=png)
    return {k: v for k, v in written.items() if v is not None}


def _duration(s: float) -> str:
    s = float(s or 0)
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{int(s // 60)} min {int(s % 60):02d} s"
    return f"{int(s // 3600)} h {int(s % 3600 // 60):02d} min"


def _num(v) -> str:
    if v is None:
        return "-"
    return f"{v:,}" if isinstance(v, int) else f"{v:.4g}" if isinstance(v, float) else str(v)


def _metric(key: str, v) -> str:
    return "-" if v is None else f"{v:.2f}" if key.endswith("ppl") else f"{v:.4f}"


def _print(summary: dict, console) -> None:
    from rich.markup import escape
    from rich.table import Table
    kind = {"search": "search", "enas": "ENAS search", "train": "retraining"}[summary["kind"]]
    console.print(f"[bold]{kind} run[/bold] {escape(summary['path'])}", soft_wrap=True)
    t = Table(show_header=False, box=None, padding=(0, 2))
    t.add_column(style="bold")
    t.add_column(overflow="fold")
    for k, v in summary["settings"].items():
        t.add_row(k, escape(str(v)))
    p = summary["progress"]
    done = (f"{p['evaluations']} of {p['budget']} architectures, {p['updates']} strategy updates"
            if "evaluations" in p else f"{p['epochs']} of {p['of']} epochs"
            + (f", {p['updates']} controller updates" if "updates" in p else ""))
    t.add_row("progress", done)
    t.add_row("time", _duration(summary["time_s"]))
    console.print(t)
    if summary.get("top"):
        t = Table(title="best architectures", title_justify="left")
        for col in ("#", "reward", "params", "query", "found at"):
            t.add_column(col, justify="right")
        t.add_column("architecture", overflow="fold")
        for i, e in enumerate(summary["top"], 1):
            t.add_row(str(i), f"{e['reward']:.4f}", _num(e["params"]), str(e["query"]),
                      _duration(e["elapsed_s"]), escape(e["arch"]))
        console.print(t)
    if summary.get("derived"):
        metric = "valid_ppl" if "valid_ppl" in summary["derived"][0] else "valid_acc"
        t = Table(title="derived architectures (scored with the shared weights)", title_justify="left")
        for col in ("#", "reward", metric.replace("_", " ")):
            t.add_column(col, justify="right")
        t.add_column("architecture", overflow="fold")
        for i, d in enumerate(summary["derived"], 1):
            t.add_row(str(i), f"{d['reward']:.4f}", _metric(metric, d.get(metric)), escape(d["arch"]))
        console.print(t)
    best = summary["best"]
    if best:
        where = f" at query {best['query']} after {_duration(best.get('elapsed_s'))}" if "query" in best else ""
        where += "".join(f" ({m.replace('_', ' ')} {_metric(m, best[m])})" for m in ("valid_acc", "valid_ppl")
                         if best.get(m) is not None)
        console.print(f"[bold]best[/bold] reward {best['reward']:.4f}{where}: {escape(best['arch'])}", soft_wrap=True)
    _print_benchmark(summary, console, escape)
    for label, res in (("result", summary.get("result")), ("retrained", summary.get("retrain"))):
        if res:
            keys = ("test_acc", "valid_acc", "test_ppl", "valid_ppl", "params", "flops", "epochs", "train_seconds")
            vals = ", ".join(f"{k.replace('_', ' ')} {_num(res[k])}" for k in keys if k in res)
            name = BASELINE_CELLS.get(res.get("cell"), res["arch"])
            console.print(f"[bold]{label}[/bold] {escape(name)}: {vals}", soft_wrap=True)
    if summary["kind"] == "train" and not summary.get("result") and summary["arch"]:
        console.print(f"[bold]architecture[/bold] {escape(summary['arch'])} (training unfinished)", soft_wrap=True)


def _print_benchmark(summary: dict, console, escape) -> None:
    """What a benchmark's tables say of the derived cell, and the shared weights' ranking."""
    from .ws_rank import ranking_lines, verdict_line
    truth = summary.get("ground_truth")
    if truth and (truth.get("table") or truth.get("verdict_table")):
        console.print(f"[bold]benchmark table[/bold] {escape(truth['arch_str'])}: {escape(verdict_line(truth))}",
                      soft_wrap=True)
    rank = summary.get("ws_rank")
    if rank:
        lines = ranking_lines(rank)
        console.print(f"[bold]shared-weight ranking[/bold] {escape(lines[0])}", soft_wrap=True)
        for line in lines[1:]:
            console.print("  " + escape(line), soft_wrap=True)


def show_run(run_dir, figures: bool = True, top: int = 5, console=None) -> dict:
    """Print the summary of a run and (with ``figures``) write its figures; returns the
    summary with ``figures``: ``{name: file}`` of what was written."""
    from rich.console import Console
    console = console or Console()
    summary = summarize(run_dir, top)
    _print(summary, console)
    summary["figures"] = write_figures(run_dir, summary) if figures else {}
    for f in summary["figures"].values():
        console.print(f"wrote {f}", soft_wrap=True, markup=False, highlight=False)
    return summary


# -- one architecture ---------------------------------------------------------------------------
def parse_arch(text: str, space=None, preset: str | None = None):
    """``(space, architecture)`` of ``text``: parsed by ``space`` (a SearchSpace or a space
    config) or the space of ``preset`` (then the prefix may be left out, e.g. an enas_lm arc),
    else by the prefix's space with default settings or with a preset's settings."""
    from .config import load_preset, preset_names
    from .spaces import SearchSpace, get_space, space_from_config
    name, sep, _ = text.strip().partition(":")
    if not sep and (space is not None or preset is not None):
        space = space if isinstance(space, SearchSpace) else space_from_config(space or load_preset(preset)["space"])
        return space, space.parse(text)
    if not sep:
        raise ValueError(f"architecture {text!r} has no space prefix: write it as SPACE:v1,v2,... "
                         f"(e.g. nb201:...); for a reference arc, prefix it with its space (enas-rnn:0 0 1 1)")
    get_space(name.strip())                   # an unknown prefix: the error lists the known spaces
    if space is not None or preset is not None:
        space = space if isinstance(space, SearchSpace) else space_from_config(space or load_preset(preset)["space"])
        return space, space.parse(text)
    try:
        default = get_space(name.strip())
        return default, default.parse(text)
    except ValueError as e:
        error = e
    for p in preset_names():        # the same space with a preset's settings (e.g. nas-cnn-tiny)
        cfg = load_preset(p)["space"]
        if cfg["name"] == name.strip():
            try:
                s = space_from_config(cfg)
                return s, s.parse(text)
            except ValueError:
                pass
    raise ValueError(f"{error}; no preset's {name.strip()!r} space fits either: pass the space's "
                     f"settings (--preset NAME or a space config)") from None


def show_arch(text: str, space=None, preset: str | None = None, out=None, console=None, data_dir=None,
              plugins=None) -> list[Path]:
    """Draw the architecture string ``text`` (``SPACE:...``) to ``out`` (default ``./arch``)
    as SVG and PNG; prints and returns the files, and what the space's benchmark tables say of
    the architecture where the space has them and they are found (NAS-Bench-201's verdict).
    ``plugins``: files or modules registering the user's own space, imported first."""
    from .registry import load_plugins, plugin_paths
    load_plugins(plugin_paths(plugins))
    from rich.console import Console
    from .viz.diagrams import draw
    from .ws_rank import verdict_line
    console = console or Console()
    space, arch = parse_arch(text, space, preset)
    files = draw(arch, Path(out or "arch"))
    console.print(f"{arch}\nwrote {', '.join(map(str, files))}", soft_wrap=True, markup=False, highlight=False)
    truth = space.ground_truth(arch, data_dir)
    if truth and (truth.get("verdict_table") or truth.get("table")):
        console.print(f"benchmark table: {verdict_line({**truth, 'baselines': space.baselines(data_dir)})}",
                      soft_wrap=True, markup=False, highlight=False)
    return files


__all__ = ["parse_arch", "summarize", "show_run", "write_figures", "show_arch", "run_kind"]
