"""The strategy contract: propose architectures, learn from their rewards, checkpoint.

A search loop (:mod:`torchnas.search`) calls :meth:`Strategy.ask` for a batch, has each new
architecture evaluated (a repeat is answered from the cache and costs no budget), then calls
:meth:`Strategy.tell` with the batch and its rewards. ``state_dict()`` holds everything
needed to continue exactly where the strategy stopped, random-number state included.
"""
from __future__ import annotations

import random
from abc import ABC, abstractmethod
from typing import Sequence

from ..spaces import Architecture, SearchSpace


class Strategy(ABC):
    name = ""

    def __init__(self, space: SearchSpace, seed: int = 0):
        self.space = space
        self.seed = seed
        self.rng = random.Random(seed)

    @abstractmethod
    def ask(self) -> list[Architecture]:
        """The next batch of architectures to evaluate."""

    @abstractmethod
    def tell(self, archs: Sequence[Architecture], rewards: Sequence[float]) -> dict:
        """Learn from rewards of ``archs`` (a prefix of the last batch asked); returns
        statistics for the run's step log."""

    def propose(self, n: int = 1) -> list[Architecture]:
        """Architectures to try without a tell (weight-sharing training, deriving)."""
        return [self.space.random(self.rng) for _ in range(n)]

    def state_dict(self) -> dict:
        return {"rng": self.rng.getstate()}

    def load_state_dict(self, state: dict) -> None:
        self.rng.setstate(_as_rng_state(state["rng"]))


def _as_rng_state(state):
    """random.Random states survive torch.save as tuples; lists (e.g. from JSON) are fixed."""
    version, internal, gauss = state
    return (version, tuple(internal), gauss)
