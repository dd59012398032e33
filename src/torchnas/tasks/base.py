"""The task contract (see the package docstring)."""
from __future__ import annotations

from pathlib import Path


class Task:
    name: str = ""
    train_keys: frozenset = frozenset()     # the retraining settings (``train:``) the task takes
    SharedWeights: type | None = None       # ENAS's shared-weight phase (enas.py runs the loop around it)

    def check_train_settings(self, settings: dict) -> None:
        unknown = set(settings) - self.train_keys
        if unknown:
            raise ValueError(f"train settings {sorted(unknown)} are unknown; allowed: {sorted(self.train_keys)}")

    def check_exportable(self, space, arch) -> None:
        """Raise if ``space`` has no network to export (a table-only space)."""
        if not hasattr(space, "child"):
            raise ValueError(f"space {space.name!r} has no network to export ({arch} is looked up in a table)")

    def describe(self, space, arch, data: dict, net: dict) -> dict:
        """``torchnas train --dry-run``: the network built without loading data, its size."""
        raise NotImplementedError

    def retrain(self, run, cfg: dict, space, arch, on_epoch=None) -> dict:
        """Train the run's network from scratch (resuming from its checkpoint) and judge it on
        the test split; returns ``result.json``'s record and saves ``model.pt``."""
        raise NotImplementedError

    def export_network(self, space, arch, cfg: dict, net: dict, state: dict, out: Path):
        """(model with ``state`` loaded shape-wise built, example inputs, meta) for export."""
        raise NotImplementedError


class SharedWeights:
    """ENAS's shared-weight phase of a task (the loop is ``enas.ENASSearch``): ``training`` (its
    training loop), ``opt``, ``generator``, ``metric``; ``train_epoch(sample)``,
    ``valid_batch()``, ``reward(arch, batch)``, ``metric_of(reward)`` and the extra checkpoint
    state."""

    metric = "valid_acc"
    default_train_steps = 30

    @property
    def net(self):
        """The shared-weight network ω (its training loop's model)."""
        return self.training.model

    def metric_of(self, reward: float) -> float:
        return reward

    def extra_state(self):
        """What the checkpoint needs beyond ω, its optimizer and ``generator``."""
        return None

    def load_extra_state(self, state, epoch: int) -> None:
        self.training.epoch = epoch           # the loop's epoch: the learning rate's, on resume
