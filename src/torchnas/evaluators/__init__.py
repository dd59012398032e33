"""Evaluators: turn an architecture into a reward. Each registers a factory
``(space, data_dir, seed, **settings) -> Evaluator`` under its config name."""
from __future__ import annotations

from ..registry import lookup
from ..settings import checked
from .base import Evaluation, Evaluator, FunctionEvaluator
from .tabular import NB201Table
from .trainer import ChildTrainer
from .lm_trainer import LMChildTrainer


def evaluator_class(name: str) -> type | None:
    """The Evaluator class registered as ``name``: the class itself, or the one its factory's
    return annotation names (None if it names none)."""
    import typing
    factory = lookup("evaluator", name)
    if isinstance(factory, type):
        return factory
    try:
        cls = typing.get_type_hints(factory).get("return")
    except Exception:               # noqa: BLE001 (an annotation that does not resolve)
        return None
    return cls if isinstance(cls, type) else None


FIXED = ("space", "data_dir", "seed")        # what the search passes an evaluator itself


def make_evaluator(name: str, space=None, data_dir: str | None = None, seed: int = 0, settings: dict | None = None,
                   **kwargs) -> Evaluator:
    """``nb201``: the NAS-Bench-201 table; ``trainer``: train each child on image data.
    ``settings``: a config's section (a key the search sets itself, such as ``seed``, is refused)."""
    factory = lookup("evaluator", name)
    kwargs = {**(settings or {}), **kwargs}
    fixed = sorted(set(kwargs) & set(FIXED))
    if fixed:
        raise ValueError(f"evaluator.{fixed[0]} is not a setting of evaluator {name!r}: the search sets it "
                         f"(from the top-level {'space section' if fixed[0] == 'space' else repr(fixed[0])})")
    if isinstance(factory, type):      # a registered class: its signature is its settings' schema
        kwargs = checked("evaluator", factory, kwargs, fixed=FIXED, owner=f"evaluator {name!r}")
    try:
        return factory(space=space, data_dir=data_dir, seed=seed, **kwargs)
    except TypeError as e:  # an option the evaluator does not take
        raise ValueError(f"evaluator {name!r}: {e}") from None


__all__ = ["Evaluation", "Evaluator", "FunctionEvaluator", "NB201Table", "ChildTrainer", "LMChildTrainer", "evaluator_class", "make_evaluator"]
