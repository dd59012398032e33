"""The one place networks are trained: the image loop (:class:`Training`), the language-model
loop (:class:`LMTraining`, with exact perplexity), learning-rate schedules, the device, and the
checkpoint of a loop's state. Retraining, a search's children and ENAS's shared weights all
train through these (``train_epoch(arch_fn)`` samples an architecture per step for ENAS).
"""
from __future__ import annotations

from .device import default_device
from .images import Training, cutout, loss_with_aux, make_augment
from .language import LMTraining, perplexity
from .schedules import cosine_lr, cosine_restart_lr
from .runner import run_epochs
from .state import arch_seed, load_training_state, training_state

__all__ = ["default_device", "training_state", "load_training_state", "Training", "LMTraining", "perplexity",
           "cosine_lr", "cosine_restart_lr", "cutout", "loss_with_aux", "make_augment", "arch_seed", "run_epochs"]
