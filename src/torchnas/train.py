"""Retrain a found architecture from scratch and report its test accuracy (``torchnas train``).

The task of the architecture's space does the training (:mod:`torchnas.tasks`). A retraining
run directory holds ``config.yaml`` (architecture, space, data, settings),
``history.jsonl`` (one line per epoch: loss, validation accuracy, lr, seconds),
``checkpoint.pt`` (model, optimizer, RNG; atomic, every epoch), and at the end
``result.json`` (test accuracy, parameters, FLOPs) and ``model.pt`` (the trained weights).
``--resume`` continues from the last finished epoch and gives the same result as an
uninterrupted run.
"""
from __future__ import annotations

from typing import Callable

from .runs import RunDir, RunError, run_kind
from .spaces import space_from_config
from .tasks import task_of


def train_config(arch: str, space: dict, data: dict, settings: dict, seed: int = 0, net: dict | None = None) -> dict:
    """``net``: the keyword arguments of the network the space's task builds (``space.child``:
    channels, cells, auxiliary head, ...; ``space.language_model``: hidden size, dropouts, cell)."""
    space_ = space_from_config(space)
    task = task_of(space_)
    return {"kind": "train", "arch": arch, "space": space, "data": data, "net": task.check_net_settings(space_, net),
            "train": task.check_train_settings(settings), "seed": seed}


def retrain(run: RunDir, on_epoch: Callable[[dict], None] | None = None) -> dict:
    """Train (or continue training) the run's architecture; returns ``result.json``."""
    cfg = run.config()
    if run_kind(cfg) != "train":
        raise RunError(f"{run.path} is not a retraining run (its config has no 'kind: train')")
    done = run.read_json(RunDir.RESULT)
    if done is not None:
        return done
    space = space_from_config(cfg["space"])
    task = task_of(space)
    task.check_net_settings(space, cfg.get("net"), "final_net")     # a config edited since: one clear line
    result = task.retrain(run, cfg, space, space.parse(cfg["arch"]), on_epoch)
    run.write_json(RunDir.RESULT, result)
    return result
