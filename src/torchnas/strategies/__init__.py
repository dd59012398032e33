"""Search strategies behind one contract (:class:`Strategy`): ask, tell, state_dict."""
from __future__ import annotations

from .base import Strategy
from .evolution import RegularizedEvolution
from .random import RandomSearch
from .reinforce import Reinforce

from ..registry import lookup, registered
from ..settings import checked

STRATEGIES: dict[str, type[Strategy]] = registered("strategy")   # every strategy registers itself


def make_strategy(name: str, space, seed: int = 0, settings: dict | None = None, **kwargs) -> Strategy:
    """``settings`` (a config's section, which may hold any key: one the search sets itself, such
    as ``seed``, is refused by name) and ``kwargs`` checked against the strategy's signature."""
    cls = lookup("strategy", name)
    try:
        return cls(space, seed=seed, **checked(f"strategies.{name}", cls, {**(settings or {}), **kwargs},
                                               fixed=("space", "seed"), owner=f"strategy {name!r}"))
    except TypeError as e:  # an option the strategy does not take
        raise ValueError(f"strategy {name!r}: {e}") from None


__all__ = ["Strategy", "Reinforce", "RandomSearch", "RegularizedEvolution", "STRATEGIES", "make_strategy"]
