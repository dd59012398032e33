"""Random search: each decision drawn uniformly and independently (Li & Talwalkar 2019)."""
from __future__ import annotations

from .base import Strategy


class RandomSearch(Strategy):
    name = "random"

    def ask(self):
        return [self.space.random(self.rng)]

    def tell(self, archs, rewards):
        return {}
