"""The Python API: what the command line does, from a script, in a few lines.

    from torchnas import api

    run = api.search(preset="nas-cnn-tiny", queries=40, out="runs/demo")   # search, retrain the best
    print(run.best["arch"], run.result["test_acc"])
    api.show(run)                            # summary in the terminal, figures in runs/demo/figures/
    api.export(run)                          # model.py + state dict, TorchScript, ONNX, each checked
    api.draw("enas-rnn:0 2 1 0 2 1 2 2 4 0 5 0 3 2 6 2", "cell")   # a diagram of any architecture

(``torchnas.search``, ``torchnas.train``, ... are the modules these functions use.)

Every function takes the command's options as keyword arguments (``--data-dir`` is
``data_dir``; ``--set k=v`` is ``set={"k": v}``) and raises the same errors the command
prints. Runs are the same directories the CLI writes, so either can resume the other's.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .runs import RunDir, RunError


@dataclass
class Run:
    """A run directory (search, ENAS search or retraining) and what it holds so far."""

    path: Path

    def _json(self, name: str):
        p = self.path / name
        return json.loads(p.read_text()) if p.exists() else None

    @property
    def config(self) -> dict:
        return RunDir(self.path).config()

    @property
    def best(self) -> dict | None:
        """``best.json``: the best (or derived) architecture and its reward."""
        return self._json(RunDir.BEST)

    @property
    def result(self) -> dict | None:
        """The retraining result: ``result.json`` here, or of the search's ``retrain/`` run."""
        return self._json("result.json") or self._json("retrain/result.json")

    @property
    def retrain(self) -> "Run | None":
        return Run(self.path / "retrain") if (self.path / "retrain" / RunDir.CONFIG).exists() else None

    def log(self, name: str) -> list[dict]:
        """Records of ``evaluations``, ``steps``, ``epochs`` or ``history`` (.jsonl)."""
        from .show import read_records     # complete lines only: the run may still be writing
        return read_records(self.path / (name if name.endswith(".jsonl") else f"{name}.jsonl"))

    def __fspath__(self) -> str:
        return str(self.path)


def _args(command: str, options: dict):
    from .cli import build_parser
    args = build_parser().parse_args([command])
    overrides = options.pop("set", None) or {}
    if isinstance(overrides, dict):
        overrides = [f"{k}={json.dumps(v)}" for k, v in overrides.items()]
    elif isinstance(overrides, str):
        overrides = [overrides]
    args.set = list(overrides)
    for key, value in options.items():
        if not hasattr(args, key):
            raise TypeError(f"torchnas.api.{command}() got an unknown option {key!r}")
        setattr(args, key, str(value) if isinstance(value, Path) else value)
    return args


def search(*, retrain: bool = True, quiet: bool = True, **options) -> Run:
    """``torchnas search``: ``preset``, ``config``, ``strategy``, ``queries``, ``seed``, ``set``,
    ``data``, ``data_dir``, ``workers``, ``out``, ``resume``; ``retrain=False`` skips retraining
    the best architecture."""
    from .cli import run_search
    return Run(Path(run_search(_args("search", {**options, "no_retrain": not retrain, "quiet": quiet}))))


def train(*, quiet: bool = True, **options) -> Run:
    """``torchnas train``: ``arch`` (a string, a best.json, a search run or a :class:`Run`),
    ``preset``, ``epochs``, ``set``, ``data``, ``data_dir``, ``seed``, ``out``, ``resume``."""
    from .cli import run_train
    if isinstance(options.get("arch"), Run):
        options["arch"] = options["arch"].path
    if options.get("dry_run"):
        raise ValueError("torchnas.api.train(dry_run=True) has nothing to return; use the command line")
    return Run(Path(run_train(_args("train", {**options, "quiet": quiet}))))


def show(run, figures: bool = True, top: int = 5) -> dict:
    """``torchnas show RUN``: print the summary, write the figures; returns what was written."""
    from .show import show_run
    return show_run(Path(run), figures=figures, top=top)


def export(run, out=None, formats=("python", "torchscript", "onnx")) -> dict:
    """``torchnas export RUN``: the retrained network as model.py + state dict, TorchScript and
    ONNX, each loaded back and checked against the original; a search run exports its
    ``retrain/`` run."""
    from .export import export_run
    run = Path(run)
    if not (run / "model.pt").exists() and (run / "retrain" / RunDir.CONFIG).exists():
        run = run / "retrain"         # a search run: export its retraining (export_run says if unfinished)
    if not (run / RunDir.CONFIG).exists():
        raise RunError(f"{run} is not a run directory")
    record = export_run(run, out, formats=(formats,) if isinstance(formats, str) else tuple(formats))
    record.setdefault("out_dir", str(Path(out) if out else run / "export"))
    return record


def draw(arch, path, *, preset: str | None = None, formats=("svg", "png"), engine: str = "auto") -> list[Path]:
    """A diagram of an architecture (an :class:`Architecture`, or a string with its space
    prefix, or any string the ``preset``'s space parses)."""
    from .spaces import Architecture
    from .viz.diagrams import draw as _draw
    if not isinstance(arch, Architecture):
        from .show import parse_arch
        arch = parse_arch(str(arch), preset=preset)[1]
    return _draw(arch, path, formats=(formats,) if isinstance(formats, str) else tuple(formats), engine=engine)


__all__ = ["Run", "search", "train", "show", "export", "draw"]
