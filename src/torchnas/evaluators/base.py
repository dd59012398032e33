"""The evaluator contract: architecture in, reward (and metrics) out."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Callable

from ..spaces import Architecture


@dataclass
class Evaluation:
    reward: float
    metrics: dict = field(default_factory=dict)
    seconds: float = 0.0   # wall time of the evaluation, set by the executor


class Evaluator(ABC):
    trains_networks = False     # True: trains child networks on a ``data`` section (--data, --device
                                # and the retraining of the best apply); False: a table or a function

    @abstractmethod
    def evaluate(self, arch: Architecture) -> Evaluation:
        """Evaluate one architecture; must be deterministic for a given arch and seed."""

    def check(self) -> None:
        """Open what :meth:`evaluate` reads (its data) and raise a clear error if it is unusable;
        called before a run directory exists, so a bad data set leaves nothing behind."""

    def step_flops(self, archs: list[Architecture]) -> float | None:
        """Mean forward FLOPs of one training step of these children on the CPU, which sizes
        ``executor.workers: auto``; None when evaluating trains nothing on the CPU (a table, a
        function, a GPU)."""
        return None


class FunctionEvaluator(Evaluator):
    """Reward from a plain function ``f(arch) -> float`` (toy problems, tests)."""

    def __init__(self, fn: Callable[[Architecture], float]):
        self.fn = fn

    def evaluate(self, arch):
        return Evaluation(float(self.fn(arch)))


def data_with_root(data: dict | None, data_dir: str | None, default: str) -> dict:
    """An evaluator's data config (``{name: default}`` if none) in the run's data root, unless
    it names its own (``data_dir`` or ``path``)."""
    data = dict(data or {"name": default})
    if data_dir and not data.get("data_dir") and not data.get("path"):
        data["data_dir"] = data_dir
    return data
