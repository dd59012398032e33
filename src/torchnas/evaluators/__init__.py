"""Evaluators: turn an architecture into a reward."""
from __future__ import annotations

from .base import Evaluation, Evaluator, FunctionEvaluator
from .tabular import NB201Table


def make_evaluator(name: str, data_dir: str | None = None, **kwargs) -> Evaluator:
    if name != "nb201":
        raise ValueError(f"unknown evaluator {name!r}; choose one of: nb201")
    try:
        return NB201Table(data_dir=data_dir, **kwargs)
    except TypeError as e:  # an option the evaluator does not take
        raise ValueError(f"evaluator {name!r}: {e}") from None


__all__ = ["Evaluation", "Evaluator", "FunctionEvaluator", "NB201Table", "make_evaluator"]
