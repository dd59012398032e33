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
    t.opt.load_state_dict(state["optimizer"])
    t.generator.set_state(state["generator"])
    rng = state["torch_rng"]
    set_rng_states(rng if isinstance(rng, dict) else {"torch": rng})   # older checkpoints: the CPU state only
    t.epoch, t.step = state["epoch"], state["step"]


def arch_seed(seed: int, arch) -> int:
    """The seed of one architecture's training: from the run's seed and the architecture string,
    so a child gets the same weights whichever worker trains it and in whichever order."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{arch}".encode()).digest()[:4], "little")
