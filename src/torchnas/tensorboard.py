"""TensorBoard logging of a run's JSONL records, live or after the fact.

Each numeric field of a record becomes a scalar tagged ``"{log}/{key}"`` (``steps/reward``,
``epochs/valid_ppl``, ``evaluations/reward``), nested ``metrics`` one level down
(``evaluations/metrics/params``); the step is the record's ``update``, ``query`` or ``epoch``.

Live: ``run.listeners.append(TensorBoardMirror(run.path / "tensorboard"))``.
Post hoc: :func:`export_run_to_tensorboard`.
"""
from __future__ import annotations

from pathlib import Path

from .runs import RunDir

STEP_KEYS = ("update", "query", "epoch")


def _summary_writer(log_dir, **kwargs):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as e:
        raise ImportError(f"TensorBoard logging needs the tensorboard package: pip install tensorboard ({e})") from None
    return SummaryWriter(str(log_dir), **kwargs)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def step_key(record: dict) -> str | None:
    """The record's step field: ``update``, ``query`` or ``epoch``, the first it has."""
    return next((k for k in STEP_KEYS if _is_number(record.get(k))), None)


def scalars(record: dict) -> dict[str, float]:
    """The numeric fields of ``record`` (``metrics/...`` for a nested dict), its step left out."""
    out, step = {}, step_key(record)
    for k, v in record.items():
        if isinstance(v, dict):
            out.update({f"{k}/{k2}": float(v2) for k2, v2 in v.items() if _is_number(v2)})
        elif _is_number(v) and k != step:
            out[k] = float(v)
    return out


class TensorBoardMirror:
    """A ``(name, record)`` listener: writes the record's numbers as scalars to ``log_dir``."""

    def __init__(self, log_dir, flush_secs: int = 10):
        self.log_dir = Path(log_dir)
        self.writer = _summary_writer(self.log_dir, flush_secs=flush_secs)
        self.counts: dict[str, int] = {}

    def __call__(self, name: str, record: dict) -> None:
        log = name[:-len(".jsonl")] if name.endswith(".jsonl") else name
        self.counts[log] = self.counts.get(log, 0) + 1
        key = step_key(record)
        step = record[key] if key else self.counts[log]
        for field, value in scalars(record).items():
            self.writer.add_scalar(f"{log}/{field}", value, int(step))

    def text(self, tag: str, text: str, step: int = 0) -> None:
        self.writer.add_text(tag, text, step)

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()

    def __enter__(self) -> "TensorBoardMirror":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def export_run_to_tensorboard(run_dir, log_dir=None) -> Path:
    """Replay a run's logs (and those of its ``retrain/``) into TensorBoard, with the best
    architecture as text (``best/arch``); ``log_dir`` defaults to ``RUN/tensorboard``, whose
    earlier event files are replaced."""
    run = RunDir(run_dir)
    cfg = run.config()
    log_dir = Path(log_dir) if log_dir else run.path / RunDir.TENSORBOARD
    for old in log_dir.glob("events.out.tfevents.*"):
        old.unlink()
    with TensorBoardMirror(log_dir) as mirror:
        for sub, prefix in ((run.path, ""), (run.path / RunDir.RETRAIN, RunDir.RETRAIN + "/")):
            for name in RunDir.LOGS:
                for rec in RunDir(sub).records(name):
                    mirror(prefix + name, rec)
        best = run.read_json(RunDir.BEST)
        arch = best["arch"] if best else cfg.get("arch")
        if arch:
            what = f" (reward {best['reward']:.4f})" if best else ""
            mirror.text("best/arch", f"`{arch}`{what}")
        result = run.read_json(RunDir.RESULT) or RunDir(run.path / RunDir.RETRAIN).read_json(RunDir.RESULT)
        if result:
            mirror.text("result", ", ".join(f"{k}: {v}" for k, v in result.items()))
    return log_dir


__all__ = ["TensorBoardMirror", "export_run_to_tensorboard", "scalars", "step_key"]
