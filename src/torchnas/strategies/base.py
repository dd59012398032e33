"""The strategy contract: propose architectures, learn from their rewards, checkpoint.

A search loop (:mod:`torchnas.search`) calls :meth:`Strategy.ask_versioned` for a batch, has
each new architecture evaluated (a repeat is answered from the cache and costs no budget), then
calls :meth:`Strategy.tell` with the batch, its rewards and the version it was asked at.
``state_dict()`` holds everything needed to continue exactly where the strategy stopped,
random-number state included.

Asynchronous search (Zoph & Le §3.3) asks again while earlier batches are still in flight, so a
batch may be told after other batches' updates: ``version`` counts the updates a strategy has
applied, and a strategy whose update depends on the state it asked with (REINFORCE's gradient
under the sampling weights) keeps that state from ``ask_versioned`` until the batch is told.
Random search and regularized evolution need nothing kept (evolution is asynchronous in its own
paper, Real et al. 2019 §3).
"""
from __future__ import annotations

import random
from abc import ABC, abstractmethod
from typing import Sequence

from ..spaces import Architecture, SearchSpace


class Strategy(ABC):
    name = ""

    version = 0      # updates applied so far (a strategy whose state learns counts them)

    def __init__(self, space: SearchSpace, seed: int = 0):
        self.space = space
        self.seed = seed
        self.rng = random.Random(seed)

    @abstractmethod
    def ask(self) -> list[Architecture]:
        """The next batch of architectures to evaluate."""

    @abstractmethod
    def tell(self, archs: Sequence[Architecture], rewards: Sequence[float], version: int | None = None) -> dict:
        """Learn from rewards of ``archs`` (a prefix of a batch asked); ``version``: the one
        :meth:`ask_versioned` returned with it (None: the last batch asked, synchronously).
        Returns statistics for the run's step log."""

    def ask_versioned(self) -> tuple[list[Architecture], int]:
        """The next batch and the version it is asked at, kept (:meth:`hold`) until it is told."""
        archs, version = self.ask(), self.version
        self.hold(version)
        return archs, version

    def hold(self, version: int) -> None:
        """Keep what a batch asked at ``version`` needs when it is told (nothing, by default)."""

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
