"""What every training loop shares: the device and the checkpoint of a loop's state.

(The image and language-model loops themselves still live in ``evaluators/trainer.py`` and
``evaluators/language.py``; issue 12 moves them here.)
"""
from __future__ import annotations

from .device import default_device
from .state import load_training_state, training_state

__all__ = ["default_device", "training_state", "load_training_state"]
