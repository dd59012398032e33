"""Random search: each decision drawn uniformly and independently (Li & Talwalkar 2019)."""
from __future__ import annotations

from ..registry import register
from .base import Strategy
from ..settings import Count


@register("strategy")
class RandomSearch(Strategy):
    name = "random"

    def __init__(self, space, seed: int = 0, batch_size: Count = 1):
        super().__init__(space, seed)
        if batch_size < 1:
            raise ValueError(f"random batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size   # architectures per ask: what a parallel executor runs at once

    def ask(self):
        return [self.space.random(self.rng) for _ in range(self.batch_size)]

    def tell(self, archs, rewards, version=None):
        return {}
