"""Regularized (aging) evolution, Real et al. (2019), Algorithm 1.

Fill a population of ``population_size`` random architectures; then repeatedly sample
``sample_size`` members uniformly with replacement (the tournament), mutate the best of them
in one decision (:meth:`SearchSpace.mutate`), add the child and remove the *oldest* member.
Defaults are NAS-Bench-201's REA settings (population 10, tournament 3; Dong & Yang 2020,
AutoDL-Projects ``R_EA.py``).
"""
from __future__ import annotations

from collections import deque

from ..registry import register
from .base import Strategy
from ..settings import Count


@register("strategy")
class RegularizedEvolution(Strategy):
    name = "evolution"

    def __init__(self, space, seed: int = 0, population_size: Count = 10, sample_size: Count = 3):
        super().__init__(space, seed)
        if population_size < 1 or not 1 <= sample_size:
            raise ValueError(f"evolution needs population_size >= 1 and sample_size >= 1 "
                             f"(got {population_size}, {sample_size})")
        self.population_size, self.sample_size = population_size, sample_size
        self.population: deque = deque()  # (arch, reward), oldest first

    def ask(self):
        if len(self.population) < self.population_size:
            return [self.space.random(self.rng)]
        tournament = [self.rng.choice(self.population) for _ in range(self.sample_size)]
        parent = max(tournament, key=lambda member: member[1])[0]
        return [self.space.mutate(parent, self.rng)]

    def tell(self, archs, rewards, version=None):
        for arch, reward in zip(archs, rewards):
            self.population.append((arch, float(reward)))
            if len(self.population) > self.population_size:
                self.population.popleft()
        return {}

    def state_dict(self):
        return {**super().state_dict(),
                "population": [(a.to_json(), r) for a, r in self.population]}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        from ..spaces import Architecture
        self.population = deque((Architecture.from_json(a, self.space), r) for a, r in state["population"])
