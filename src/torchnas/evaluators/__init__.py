"""Evaluators: turn an architecture into a reward."""
from __future__ import annotations

from .base import Evaluation, Evaluator, FunctionEvaluator
from .tabular import NB201Table


def make_evaluator(name: str, space=None, data_dir: str | None = None, seed: int = 0, **kwargs) -> Evaluator:
    """``nb201``: the NAS-Bench-201 table; ``trainer``: train each child on image data."""
    try:
        if name == "nb201":
            return NB201Table(data_dir=data_dir, **kwargs)
        if name == "trainer":
            from .trainer import ChildTrainer
            data = dict(kwargs.pop("data", None) or {"name": "digits"})
            if data_dir and not data.get("data_dir") and not data.get("path"):
                data["data_dir"] = data_dir
            return ChildTrainer(space, data=data, seed=seed, **kwargs)
    except TypeError as e:  # an option the evaluator does not take
        raise ValueError(f"evaluator {name!r}: {e}") from None
    raise ValueError(f"unknown evaluator {name!r}; choose one of: nb201, trainer")


__all__ = ["Evaluation", "Evaluator", "FunctionEvaluator", "NB201Table", "make_evaluator"]
