"""The task contract (see the package docstring)."""
from __future__ import annotations

from pathlib import Path

from ..settings import checked
from ..training.device import default_device


class Task:
    name: str = ""
    Training: type | None = None            # the retraining loop: its keyword arguments are the ``train:`` settings
    network: str = "child"                  # the space's method that builds the network (``final_net:`` settings)
    network_fixed: tuple = ()               # that method's arguments the task passes itself
    SharedWeights: type | None = None       # ENAS's shared-weight phase (enas.py runs the loop around it)

    def check_train_settings(self, settings: dict) -> dict:
        """The ``train:`` settings, typed and range-checked (:func:`torchnas.settings.checked`)."""
        settings = checked("train", self.Training, settings, fixed=("model", "data", "corpus", "seed"))
        default_device(settings.get("device"), "train.device")   # a device that is not here: an error now (None: auto)
        return settings

    def check_net_settings(self, space, net: dict | None, where: str = "final_net") -> dict:
        """The network settings (``final_net:``, ``enas.net``) against the space's builder."""
        build = getattr(type(space), self.network, None)
        if build is None:
            if net:
                raise ValueError(f"{where}: space {space.name!r} builds no network, so it takes no network settings")
            return {}
        return checked(where, build, net, fixed=self.network_fixed)

    def check_exportable(self, space, arch) -> None:
        """Raise if ``space`` has no network to export (a table-only space)."""
        if not hasattr(space, "child"):
            raise ValueError(f"space {space.name!r} has no network to export ({arch} is looked up in a table)")

    def describe(self, space, arch, data: dict, net: dict, where: str = "evaluator.data") -> dict:
        """``torchnas train --dry-run``: the network built without loading data, its size
        (``data`` checked against the loader's settings, named as ``where`` in an error)."""
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

    def reward_tensor(self, arch, batch) -> "torch.Tensor":
        """The reward of ``arch`` on one validation ``batch``, as a 0-d tensor on the device."""
        raise NotImplementedError

    def rewards(self, pairs) -> list[float]:
        """The rewards of ``(architecture, validation batch)`` pairs: computed on the device and
        read back in one transfer (a controller update's samples, derive's candidates), so the
        device never waits for the host between them (issue 31)."""
        import torch
        pairs = list(pairs)
        return torch.stack([self.reward_tensor(a, b) for a, b in pairs]).tolist() if pairs else []

    def reward(self, arch, batch) -> float:
        """One architecture's reward on one batch (a read-back each: :meth:`rewards` for many)."""
        return self.rewards([(arch, batch)])[0]

    def extra_state(self):
        """What the checkpoint needs beyond ω, its optimizer and ``generator``."""
        return None

    def load_extra_state(self, state, epoch: int) -> None:
        self.training.epoch = epoch           # the loop's epoch: the learning rate's, on resume
