"""Search strategies behind one contract (:class:`Strategy`): ask, tell, state_dict."""
from __future__ import annotations

from .base import Strategy
from .evolution import RegularizedEvolution
from .random import RandomSearch
from .reinforce import Reinforce

STRATEGIES: dict[str, type[Strategy]] = {
    Reinforce.name: Reinforce,
    RandomSearch.name: RandomSearch,
    RegularizedEvolution.name: RegularizedEvolution,
}


def make_strategy(name: str, space, seed: int = 0, **kwargs) -> Strategy:
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; choose one of {', '.join(sorted(STRATEGIES))}")
    try:
        return STRATEGIES[name](space, seed=seed, **kwargs)
    except TypeError as e:  # an option the strategy does not take
        raise ValueError(f"strategy {name!r}: {e}") from None


__all__ = ["Strategy", "Reinforce", "RandomSearch", "RegularizedEvolution", "STRATEGIES", "make_strategy"]
