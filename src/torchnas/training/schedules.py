"""Learning-rate schedules: cosine annealing per step, and SGDR per epoch as ENAS applies it."""
from __future__ import annotations

import math


def cosine_lr(step: int, total_steps: int, lr: float) -> float:
    """Cosine annealing from ``lr`` to 0 over ``total_steps`` (Loshchilov & Hutter 2017, no restart)."""
    return 0.5 * lr * (1 + math.cos(math.pi * step / total_steps))


def cosine_restart_lr(epoch: int, lr_max: float, lr_min: float, t0: int, t_mul: int) -> float:
    """SGDR (Loshchilov & Hutter 2017) as the ENAS code applies it: constant within an epoch,
    period t0 epochs, each period t_mul times longer than the last (10+20+40+80+160 = 310 and
    +320 = 630: the ENAS search and final epoch counts)."""
    t_i, t_cur = t0, epoch
    while t_cur >= t_i:
        t_cur -= t_i
        t_i *= t_mul
    return lr_min + 0.5 * (lr_max - lr_min) * (1 + math.cos(math.pi * t_cur / t_i))
