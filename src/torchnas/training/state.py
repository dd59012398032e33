"""The checkpoint of a training loop (image ``Training`` or language-model ``LMTraining``)."""
from __future__ import annotations

import hashlib

from ..runs import rng_states, set_rng_states


def training_state(t) -> dict:
    """Model, optimizer, data-order generator, counters, and the global RNGs, which drive
    dropout and drop-path, so a resumed run repeats them."""
    return {"model": t.model.state_dict(), "optimizer": t.opt.state_dict(), "generator": t.generator.get_state(),
            "torch_rng": rng_states(), "epoch": t.epoch, "step": t.step}


def load_training_state(t, state: dict) -> None:
    t.model.load_state_dict(state["model"])
    t.opt.load_state_dict(_in_parameter_order(t.model, state["model"], state["optimizer"]))
    t.generator.set_state(state["generator"])
    rng = state["torch_rng"]
    set_rng_states(rng if isinstance(rng, dict) else {"torch": rng})   # older checkpoints: the CPU state only
    t.epoch, t.step = state["epoch"], state["step"]


def arch_seed(seed: int, arch) -> int:
    """The seed of one architecture's training: from the run's seed and the architecture string,
    so a child gets the same weights whichever worker trains it and in whichever order."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{arch}".encode()).digest()[:4], "little")


def _in_parameter_order(model, saved_model: dict, opt_state: dict) -> dict:
    """The optimizer's state (kept by parameter position) in the order of ``model``'s parameters,
    for a checkpoint whose model renamed its weights since (``model.current_key``: the
    ``nas-cnn`` child, whose parameters came in another order before units had blocks)."""
    rename = getattr(model, "current_key", None)
    names = [n for n, _ in model.named_parameters()]
    groups = opt_state["param_groups"]
    if rename is None or len(groups) != 1 or groups[0]["params"] != list(range(len(names))):
        return opt_state
    params = set(names)
    saved = [k for k in map(rename, saved_model) if k in params]            # parameters, in the saved order
    if saved == names or sorted(saved) != sorted(names):
        return opt_state
    old = {n: i for i, n in enumerate(saved)}
    moved = {i: opt_state["state"][old[n]] for i, n in enumerate(names) if old[n] in opt_state["state"]}
    return {**opt_state, "state": moved}
